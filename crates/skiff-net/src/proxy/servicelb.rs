//! The service load balancer of a single-machine cluster, as k3s's servicelb: a Service of
//! type LoadBalancer is answered on the node's own address at its port (the proxy's rules
//! do that), and its `status.loadBalancer.ingress` says so, so `kubectl get svc` shows an
//! EXTERNAL-IP instead of `<pending>` forever.

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use skiff_reconcile::{Harness, Outcome};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// The status a Service should have: the node address for a LoadBalancer, nothing for
/// other types (a Service changed away from LoadBalancer loses its ingress).
pub fn desired(service: &Service, node_ip: Ipv4Addr) -> Option<LoadBalancerStatus> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return None;
    }
    Some(LoadBalancerStatus {
        ingress: Some(vec![LoadBalancerIngress {
            ip: Some(node_ip.to_string()),
            ip_mode: Some("VIP".into()),
            ..LoadBalancerIngress::default()
        }]),
    })
}

fn current(service: &Service) -> Option<LoadBalancerStatus> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.clone())
        .filter(|lb| lb.ingress.as_ref().is_some_and(|i| !i.is_empty()))
}

/// What reconcile needs besides the Service.
struct Ctx {
    client: kube::Client,
    node_ip: Ipv4Addr,
}

/// Keeps every Service's load-balancer status in step until the API goes away, on the
/// reconcile harness (a failed write is retried with per-key backoff).
pub async fn run(client: kube::Client, node_ip: Ipv4Addr) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        node_ip,
    });
    Harness::new("service-lb-controller", client)
        .watch::<Service>()
        .run(reconcile, ctx)
        .await;
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Ctx>) -> Result<Outcome, kube::Error> {
    let want = desired(&service, ctx.node_ip);
    if current(&service) == want {
        return Ok(Outcome::Done);
    }
    let ns = service.metadata.namespace.as_deref().unwrap_or_default();
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    let lb = match want {
        Some(lb) => json!(lb),
        None => json!({ "ingress": null }),
    };
    let patch = json!({ "status": { "loadBalancer": lb } });
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Outcome::Done),
        // Deleted meanwhile: nothing left to set.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Outcome::Done),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(type_: &str) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": {"type": type_}})).unwrap()
    }

    #[test]
    fn only_load_balancers_get_the_node_address() {
        let ip = Ipv4Addr::new(192, 168, 1, 5);
        let lb = desired(&svc("LoadBalancer"), ip).unwrap();
        let ingress = &lb.ingress.unwrap()[0];
        assert_eq!(ingress.ip.as_deref(), Some("192.168.1.5"));
        assert_eq!(ingress.ip_mode.as_deref(), Some("VIP"));
        assert_eq!(desired(&svc("ClusterIP"), ip), None);
        assert_eq!(desired(&svc("NodePort"), ip), None);
    }
}
