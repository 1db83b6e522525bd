//! Publishes cluster DNS as a Service: `kube-system/kube-dns` at the cluster network's DNS
//! address, selector-less, with Endpoints listing every node's DNS server. Pods' resolv.conf
//! names the ClusterIP, so DNS goes through the service proxy like any Service.
//!
//! Level-triggered on the reconcile harness: a deleted or edited Service or Endpoints is put
//! back on its next change or resync, and each node keeps only its own address in the list
//! (other nodes' entries are kept).

use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service,
};
use kube::api::{Api, PostParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use serde_json::json;
use skiff_apimachinery::network::ClusterNetwork;
use skiff_reconcile::{Harness, Metrics, ObjectKey, Outcome};

const NAMESPACE: &str = "kube-system";
const NAME: &str = "kube-dns";

/// One write to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateService(Box<Service>),
    CreateEndpoints(Box<Endpoints>),
    /// The current Endpoints with the wanted subsets (its resourceVersion guards the write).
    ReplaceEndpoints(Box<Endpoints>),
}

/// The Service cluster DNS needs (created only when missing: its ClusterIP is immutable, and
/// an admin's labels or annotations stay).
pub fn service(net: &ClusterNetwork) -> Service {
    let ports = json!([
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
    ]);
    serde_json::from_value(json!({
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "skiff-dns"}},
        "spec": {"clusterIP": net.dns_service_ip().to_string(), "ports": ports},
    }))
    .expect("a literal Service")
}

/// The subsets the Endpoints should have: every other node's entries as they are, plus
/// this node's DNS server, ordered by node name.
fn subsets(current: Option<&Endpoints>, node: &str, dns_ip: Ipv4Addr) -> Vec<EndpointSubset> {
    let mut addresses: Vec<EndpointAddress> = current
        .and_then(|e| e.subsets.as_ref())
        .into_iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.node_name.as_deref() != Some(node))
        .map(|a| EndpointAddress {
            ip: a.ip.clone(),
            node_name: a.node_name.clone(),
            ..EndpointAddress::default()
        })
        .collect();
    addresses.push(EndpointAddress {
        ip: dns_ip.to_string(),
        node_name: Some(node.to_string()),
        ..EndpointAddress::default()
    });
    addresses.sort_by(|a, b| a.node_name.cmp(&b.node_name));
    let port = |name: &str, protocol: &str| EndpointPort {
        name: Some(name.into()),
        port: 53,
        protocol: Some(protocol.into()),
        ..EndpointPort::default()
    };
    vec![EndpointSubset {
        addresses: Some(addresses),
        ports: Some(vec![port("dns", "UDP"), port("dns-tcp", "TCP")]),
        ..EndpointSubset::default()
    }]
}

/// What to write, given what the caches show.
pub fn plan(
    net: &ClusterNetwork,
    current_service: Option<&Service>,
    current_endpoints: Option<&Endpoints>,
    node: &str,
    dns_ip: Ipv4Addr,
) -> Vec<Action> {
    let mut actions = Vec::new();
    if current_service.is_none() {
        actions.push(Action::CreateService(Box::new(service(net))));
    }
    let want = subsets(current_endpoints, node, dns_ip);
    match current_endpoints {
        None => actions.push(Action::CreateEndpoints(Box::new(Endpoints {
            metadata: kube::api::ObjectMeta {
                name: Some(NAME.into()),
                namespace: Some(NAMESPACE.into()),
                labels: Some([("k8s-app".to_string(), "kube-dns".to_string())].into()),
                ..Default::default()
            },
            subsets: Some(want),
        }))),
        Some(current) if current.subsets.as_ref() != Some(&want) => {
            let mut next = current.clone();
            next.subsets = Some(want);
            actions.push(Action::ReplaceEndpoints(Box::new(next)));
        }
        Some(_) => {}
    }
    actions
}

struct Ctx {
    client: kube::Client,
    net: ClusterNetwork,
    node: String,
    dns_ip: Ipv4Addr,
    services: Store<Service>,
    endpoints: Store<Endpoints>,
}

/// Keeps `kube-system/kube-dns` and this node's entry in its Endpoints in place until the
/// API goes away. `dns_ip` is where this node's DNS server listens.
pub async fn run(
    client: kube::Client,
    net: ClusterNetwork,
    node: String,
    dns_ip: Ipv4Addr,
    metrics: Option<Metrics>,
) {
    let mut harness = Harness::new("kube-dns-publisher", client.clone());
    if let Some(m) = &metrics {
        harness = harness.metrics(m);
    }
    let only_ours = || watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    let mut controller = harness.keys().key(ObjectKey::new(Some(NAMESPACE), NAME));
    let ctx = Arc::new(Ctx {
        client,
        net,
        node,
        dns_ip,
        services: controller.cache_with::<Service>(only_ours()),
        endpoints: controller.cache_with::<Endpoints>(only_ours()),
    });
    controller
        .triggers::<Service>()
        .triggers::<Endpoints>()
        .run_keys(reconcile, ctx)
        .await;
}

async fn reconcile(key: ObjectKey, ctx: Arc<Ctx>) -> Result<Outcome, kube::Error> {
    let service = ctx.services.get(&key.to_ref());
    let endpoints = ctx.endpoints.get(&key.to_ref());
    let actions = plan(
        &ctx.net,
        service.as_deref(),
        endpoints.as_deref(),
        &ctx.node,
        ctx.dns_ip,
    );
    let pp = PostParams::default();
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    let eps: Api<Endpoints> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    for action in actions {
        let result = match action {
            Action::CreateService(s) => services.create(&pp, &s).await.map(drop),
            Action::CreateEndpoints(e) => eps.create(&pp, &e).await.map(drop),
            Action::ReplaceEndpoints(e) => eps.replace(NAME, &pp, &e).await.map(drop),
        };
        match result {
            // Another node (or a lagging cache) got there first: the next pass sees it.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                return Ok(Outcome::RequeueAfter(std::time::Duration::from_millis(200)))
            }
            other => other?,
        }
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(entries: &[(&str, &str)]) -> Endpoints {
        serde_json::from_value(json!({
            "metadata": {"name": NAME, "namespace": NAMESPACE, "resourceVersion": "7"},
            "subsets": [{
                "addresses": entries.iter().map(|(ip, node)| json!({"ip": ip, "nodeName": node})).collect::<Vec<_>>(),
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                          {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
            }],
        }))
        .unwrap()
    }

    #[test]
    fn plan_creates_what_is_missing_and_keeps_other_nodes() {
        let net = ClusterNetwork::default();
        let ip = Ipv4Addr::new(10, 244, 1, 1);
        let svc = service(&net);
        assert_eq!(
            svc.spec.as_ref().unwrap().cluster_ip.as_deref(),
            Some("10.96.0.10")
        );
        let ours = endpoints(&[("10.244.0.1", "a"), ("10.244.1.1", "b")]);
        let stale = endpoints(&[("10.244.0.1", "a"), ("10.244.9.9", "b")]);
        let others = endpoints(&[("10.244.0.1", "a")]);
        type Case<'a> = (
            &'a str,
            Option<&'a Service>,
            Option<&'a Endpoints>,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing yet",
                None,
                None,
                vec!["CreateService", "CreateEndpoints"],
            ),
            ("service deleted", None, Some(&ours), vec!["CreateService"]),
            ("in place", Some(&svc), Some(&ours), vec![]),
            (
                "our address changed",
                Some(&svc),
                Some(&stale),
                vec!["ReplaceEndpoints"],
            ),
            (
                "only another node",
                Some(&svc),
                Some(&others),
                vec!["ReplaceEndpoints"],
            ),
        ];
        for (name, s, e, want) in cases {
            let got: Vec<&str> = plan(&net, s, e, "b", ip)
                .iter()
                .map(|a| match a {
                    Action::CreateService(_) => "CreateService",
                    Action::CreateEndpoints(_) => "CreateEndpoints",
                    Action::ReplaceEndpoints(_) => "ReplaceEndpoints",
                })
                .collect();
            assert_eq!(got, want, "{name}");
        }
        // A replace keeps node a's entry, puts ours in, and keeps the resourceVersion.
        let Action::ReplaceEndpoints(next) = &plan(&net, Some(&svc), Some(&stale), "b", ip)[0]
        else {
            panic!("expected a replace");
        };
        assert_eq!(next.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(next.subsets, ours.subsets);
    }
}
