//! Wiring of service networking into `skiff server`: the service proxy, the service load
//! balancer and cluster DNS run beside the node agent (they are per-node, like kube-proxy
//! and a node-local DNS), and `kube-system/kube-dns` points pods' `nameserver 10.96.0.10`
//! at this node's DNS server.

use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Api, PostParams};
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The cluster DNS Service IP every pod's resolv.conf names (kubeadm's default).
const CLUSTER_DNS_IP: &str = "10.96.0.10";
/// The service network the API server allocates from.
const SERVICE_CIDR: &str = "10.96.0.0/16";
/// All nodes' pod networks (each node has a /24 of it).
const CLUSTER_CIDR: &str = "10.244.0.0/16";

/// What service networking needs to know of the node.
pub struct NetConfig {
    pub node_name: String,
    pub node_ip: Option<Ipv4Addr>,
    pub pod_cidr: String,
    pub bridge: String,
}

/// Starts the proxy, the service load balancer and DNS in the background.
pub fn start(client: kube::Client, cfg: NetConfig) -> anyhow::Result<()> {
    let gateway = skiff_node::network::Ipv4Cidr::parse(&cfg.pod_cidr)?.gateway();
    let proxy = skiff_net::proxy::ProxyConfig {
        node_ip: cfg.node_ip,
        pod_cidr: cfg.pod_cidr.clone(),
        cluster_cidr: CLUSTER_CIDR.into(),
        service_cidr: SERVICE_CIDR.into(),
        bridge: cfg.bridge.clone(),
    };
    {
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(error) = skiff_net::proxy::run(client, proxy).await {
                tracing::warn!(%error, "service proxy stopped");
            }
        });
    }
    tokio::spawn(skiff_net::routes::run(
        client.clone(),
        cfg.node_name.clone(),
    ));
    if let Some(ip) = cfg.node_ip {
        tokio::spawn(skiff_net::proxy::servicelb::run(client.clone(), ip));
    }
    let dns = skiff_net::dns::DnsConfig {
        listen: SocketAddr::from((gateway, 53)),
        ..Default::default()
    };
    {
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(error) = skiff_net::dns::run(client, dns).await {
                tracing::warn!(%error, "cluster DNS stopped");
            }
        });
    }
    tokio::spawn(async move {
        // Retried: the API may still be starting, and a user may hold the address.
        loop {
            match ensure_kube_dns(&client, gateway, &cfg.node_name).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, "kube-system/kube-dns not in place; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    });
    Ok(())
}

/// Creates (or corrects) the selector-less `kube-dns` Service at [`CLUSTER_DNS_IP`] and its
/// Endpoints at this node's DNS server, so DNS goes through the proxy like any Service.
async fn ensure_kube_dns(
    client: &kube::Client,
    dns_ip: Ipv4Addr,
    node_name: &str,
) -> Result<(), kube::Error> {
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let ports = json!([
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
    ]);
    if services.get_opt("kube-dns").await?.is_none() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "skiff-dns"}},
            "spec": {"clusterIP": CLUSTER_DNS_IP, "ports": ports},
        }))
        .map_err(kube::Error::SerdeError)?;
        services.create(&PostParams::default(), &svc).await?;
    }
    // Each node serves DNS at its own bridge address and lists itself here, keeping the
    // other nodes' entries.
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "kube-system");
    let current = endpoints.get_opt("kube-dns").await?;
    let mut addresses: Vec<serde_json::Value> = current
        .as_ref()
        .and_then(|e| e.subsets.as_ref())
        .into_iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.node_name.as_deref() != Some(node_name))
        .map(|a| json!({"ip": a.ip, "nodeName": a.node_name}))
        .collect();
    addresses.push(json!({"ip": dns_ip.to_string(), "nodeName": node_name}));
    addresses.sort_by_key(|a| a["nodeName"].as_str().unwrap_or_default().to_string());
    let subsets = json!([{
        "addresses": addresses,
        "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        ],
    }]);
    let want: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns"}},
        "subsets": subsets,
    }))
    .map_err(kube::Error::SerdeError)?;
    match current {
        None => {
            endpoints.create(&PostParams::default(), &want).await?;
        }
        Some(current) if current.subsets != want.subsets => {
            let mut next = current;
            next.subsets = want.subsets;
            // A conflict (another node wrote meanwhile) is retried by the caller.
            endpoints
                .replace("kube-dns", &PostParams::default(), &next)
                .await?;
        }
        Some(_) => {}
    }
    Ok(())
}
