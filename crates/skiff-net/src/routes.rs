//! Routes to other nodes' pods: each node's `spec.podCIDR` via its InternalIP, as flannel's
//! host-gw backend does. Nodes on one network then reach each other's pods (and Services
//! DNAT to them) with no overlay and no NAT.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::reflector::{self, reflector};
use kube::runtime::{watcher, WatchStreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// Pod CIDR -> the node address that routes it, for every node but `me`.
pub fn desired(nodes: &[&Node], me: &str) -> BTreeMap<String, String> {
    nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(me))
        .filter_map(|n| {
            let cidr = n.spec.as_ref()?.pod_cidr.clone()?;
            let ip = n
                .status
                .as_ref()?
                .addresses
                .as_ref()?
                .iter()
                .find(|a| a.type_ == "InternalIP")?
                .address
                .clone();
            (!cidr.is_empty() && !ip.starts_with("127.")).then_some((cidr, ip))
        })
        .collect()
}

/// Keeps the routes to other nodes' pods in step with the Node objects, until the API goes
/// away.
pub async fn run(client: kube::Client, me: String) {
    let (nodes, writer) = reflector::store();
    let dirty = Arc::new(Notify::new());
    let stream = reflector(
        writer,
        watcher(Api::<Node>::all(client), watcher::Config::default()),
    )
    .default_backoff();
    {
        let dirty = dirty.clone();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while stream.next().await.is_some() {
                dirty.notify_one();
            }
        });
    }
    if nodes.wait_until_ready().await.is_err() {
        return;
    }
    let mut applied: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let all = nodes.state();
        let refs: Vec<&Node> = all.iter().map(|n| n.as_ref()).collect();
        let want = desired(&refs, &me);
        for (cidr, via) in &want {
            if applied.get(cidr) != Some(via) {
                match crate::cmd::run("ip", &["route", "replace", cidr, "via", via], None).await {
                    Ok(()) => {
                        tracing::info!(%cidr, %via, "route to a node's pods");
                        applied.insert(cidr.clone(), via.clone());
                    }
                    Err(error) => tracing::warn!(%error, "route to a node's pods not set"),
                }
            }
        }
        let gone: Vec<String> = applied
            .keys()
            .filter(|c| !want.contains_key(*c))
            .cloned()
            .collect();
        for cidr in gone {
            let _ = crate::cmd::run("ip", &["route", "del", &cidr], None).await;
            applied.remove(&cidr);
        }
        dirty.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: &str, ip: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "Hostname", "address": name},
                                     {"type": "InternalIP", "address": ip}]},
        }))
        .unwrap()
    }

    #[test]
    fn every_other_node_with_a_cidr_and_an_address() {
        let a = node("a", "10.244.0.0/24", "192.168.1.1");
        let b = node("b", "10.244.1.0/24", "192.168.1.2");
        let c = node("c", "", "192.168.1.3");
        let local = node("d", "10.244.3.0/24", "127.0.0.1");
        let want = desired(&[&a, &b, &c, &local], "a");
        assert_eq!(
            want.into_iter().collect::<Vec<_>>(),
            [("10.244.1.0/24".to_string(), "192.168.1.2".to_string())]
        );
    }
}
