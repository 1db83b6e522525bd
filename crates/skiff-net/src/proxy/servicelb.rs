//! The service load balancer, as k3s's servicelb: a Service of type LoadBalancer is answered
//! on every node's own address at its port (each node's proxy rules do that), and its
//! `status.loadBalancer.ingress` lists those addresses, so `kubectl get svc` shows an
//! EXTERNAL-IP instead of `<pending>` forever.
//!
//! Every node runs this controller. The status is a pure function of the Ready nodes'
//! addresses (sorted, deduplicated) and is written only when it differs, so any number of
//! nodes compute the same value from the same Node objects and converge on it instead of
//! each overwriting the others with its own address. No leader election is needed: a
//! writer that acts on a stale Node cache is corrected once its cache catches up.

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Node, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use serde_json::json;
use skiff_reconcile::{Harness, ObjectKey, Outcome};
use std::net::IpAddr;
use std::sync::Arc;

/// The addresses a node answers load-balanced traffic on, if it is Ready: its ExternalIPs
/// when it has any, else its InternalIPs (k3s's choice). A node that is not Ready (or whose
/// readiness is Unknown) is left out, so a lost node stops being advertised.
pub fn node_addresses(node: &Node) -> Vec<IpAddr> {
    let Some(status) = node.status.as_ref() else {
        return Vec::new();
    };
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return Vec::new();
    }
    let of_type = |kind: &str| -> Vec<IpAddr> {
        status
            .addresses
            .iter()
            .flatten()
            .filter(|a| a.type_ == kind)
            .filter_map(|a| a.address.parse().ok())
            .collect()
    };
    let external = of_type("ExternalIP");
    if external.is_empty() {
        of_type("InternalIP")
    } else {
        external
    }
}

/// The status a Service should have: every Ready node's address (sorted, deduplicated, so
/// every node computes the same list) for a LoadBalancer, nothing for other types (a
/// Service changed away from LoadBalancer loses its ingress) or when no node is Ready.
pub fn desired<'a>(
    service: &Service,
    nodes: impl IntoIterator<Item = &'a Node>,
) -> Option<LoadBalancerStatus> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return None;
    }
    let mut ips: Vec<IpAddr> = nodes.into_iter().flat_map(node_addresses).collect();
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        return None;
    }
    Some(LoadBalancerStatus {
        ingress: Some(
            ips.into_iter()
                .map(|ip| LoadBalancerIngress {
                    ip: Some(ip.to_string()),
                    ip_mode: Some("VIP".into()),
                    ..LoadBalancerIngress::default()
                })
                .collect(),
        ),
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
    nodes: Store<Node>,
}

/// Keeps every Service's load-balancer status in step until the API goes away, on the
/// reconcile harness (a failed write is retried with per-key backoff). A Node change
/// requeues every LoadBalancer Service, since their status follows the Ready nodes.
pub async fn run(client: kube::Client) {
    let mut controller = Harness::new("service-lb-controller", client.clone()).watch::<Service>();
    let services = controller.store();
    let nodes = controller.cache::<Node>();
    let controller = controller.watches::<Node, _>(move |_| {
        services
            .state()
            .iter()
            .filter(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"))
            .filter_map(|s| ObjectKey::of(&s.metadata))
            .collect::<Vec<_>>()
    });
    let ctx = Arc::new(Ctx { client, nodes });
    controller.run(reconcile, ctx).await;
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Ctx>) -> Result<Outcome, kube::Error> {
    let nodes = ctx.nodes.state();
    let want = desired(&service, nodes.iter().map(|n| n.as_ref()));
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

    fn node(ready: &str, addresses: &[(&str, &str)]) -> Node {
        let addresses: Vec<_> = addresses
            .iter()
            .map(|(t, a)| json!({"type": t, "address": a}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {
                "conditions": [{"type": "Ready", "status": ready}],
                "addresses": addresses,
            },
        }))
        .unwrap()
    }

    fn ips(lb: Option<LoadBalancerStatus>) -> Vec<String> {
        lb.and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .into_iter()
            .map(|i| {
                assert_eq!(i.ip_mode.as_deref(), Some("VIP"));
                i.ip.unwrap()
            })
            .collect()
    }

    #[test]
    fn status_lists_every_ready_node_in_one_order() {
        let a = node("True", &[("InternalIP", "10.0.0.2"), ("Hostname", "a")]);
        let b = node("True", &[("InternalIP", "10.0.0.10")]);
        let b_too = node("True", &[("InternalIP", "10.0.0.10")]);
        let lost = node("Unknown", &[("InternalIP", "10.0.0.3")]);
        let not_ready = node("False", &[("InternalIP", "10.0.0.4")]);
        let public = node(
            "True",
            &[("InternalIP", "10.0.0.5"), ("ExternalIP", "203.0.113.7")],
        );
        let lb = svc("LoadBalancer");
        let cases: Vec<(&str, Vec<&Node>, Vec<&str>)> = vec![
            ("one node", vec![&a], vec!["10.0.0.2"]),
            // Numeric order, the same whichever node lists them.
            ("two nodes", vec![&b, &a], vec!["10.0.0.2", "10.0.0.10"]),
            ("other order", vec![&a, &b], vec!["10.0.0.2", "10.0.0.10"]),
            (
                "duplicates",
                vec![&b, &a, &b_too],
                vec!["10.0.0.2", "10.0.0.10"],
            ),
            (
                "lost and not-ready nodes left out",
                vec![&lost, &a, &not_ready],
                vec!["10.0.0.2"],
            ),
            (
                "ExternalIP preferred",
                vec![&public, &a],
                vec!["10.0.0.2", "203.0.113.7"],
            ),
            ("no ready node", vec![&lost], vec![]),
            ("no node", vec![], vec![]),
        ];
        for (name, nodes, want) in cases {
            assert_eq!(ips(desired(&lb, nodes)), want, "{name}");
        }
    }

    #[test]
    fn only_load_balancers_get_an_ingress() {
        let a = node("True", &[("InternalIP", "192.168.1.5")]);
        assert_eq!(
            ips(desired(&svc("LoadBalancer"), [&a])),
            vec!["192.168.1.5"]
        );
        assert_eq!(desired(&svc("ClusterIP"), [&a]), None);
        assert_eq!(desired(&svc("NodePort"), [&a]), None);
    }
}
