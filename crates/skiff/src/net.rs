//! Wiring of service networking into `skiff server`: the service proxy, the service load
//! balancer, the Gateway data plane and cluster DNS run beside the node agent (they are
//! per-node, like kube-proxy and a node-local DNS), and `skiff-net`'s DNS publisher keeps
//! `kube-system/kube-dns` (the nameserver in pods' resolv.conf) pointing at this node's DNS
//! server.

use skiff_apimachinery::network::ClusterNetwork;
use std::net::{Ipv4Addr, SocketAddr};

/// What service networking needs to know of the node.
pub struct NetConfig {
    pub node_name: String,
    pub node_ip: Option<Ipv4Addr>,
    pub pod_cidr: String,
    pub bridge: String,
}

/// Starts the proxy, the service load balancer and DNS in the background.
pub fn start(client: kube::Client, cfg: NetConfig) -> anyhow::Result<()> {
    let network = ClusterNetwork::default();
    let gateway = skiff_node::network::Ipv4Cidr::parse(&cfg.pod_cidr)?.gateway();
    // Per-node components report on the node's /metrics, beside the kubelet's.
    let registry = skiff_node::agent::metrics::registry();
    let proxy_metrics = skiff_net::metrics::ProxyMetrics::default();
    let dns_metrics = skiff_net::metrics::DnsMetrics::default();
    let gateway_metrics = skiff_gateway::metrics::GatewayMetrics::default();
    registry.register(|r| {
        proxy_metrics.register(r);
        dns_metrics.register(r);
        gateway_metrics.register(r);
    });
    let proxy = skiff_net::proxy::ProxyConfig {
        metrics: proxy_metrics,
        node_ip: cfg.node_ip,
        pod_cidr: cfg.pod_cidr.clone(),
        cluster_cidr: network.cluster_cidr(),
        service_cidr: network.service_cidr(),
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
    tokio::spawn(skiff_net::proxy::servicelb::run(client.clone()));
    // Gateway listeners answer on the node's address, where Gateways report they are.
    let bind = cfg.node_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    tokio::spawn(skiff_gateway::run_node_with_metrics(
        client.clone(),
        bind.into(),
        gateway_metrics,
    ));
    let dns = skiff_net::dns::DnsConfig {
        listen: SocketAddr::from((gateway, 53)),
        ..Default::default()
    };
    {
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(error) = skiff_net::dns::run_with_metrics(client, dns, &dns_metrics).await {
                tracing::warn!(%error, "cluster DNS stopped");
            }
        });
    }
    tokio::spawn(skiff_net::dns::publish::run(
        client,
        network,
        cfg.node_name,
        gateway,
        None,
    ));
    Ok(())
}
