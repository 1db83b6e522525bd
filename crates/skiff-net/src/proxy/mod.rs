//! The service proxy: keeps the kernel's NAT rules (nftables) equal to what the Services and
//! their EndpointSlices say, as kube-proxy's nftables mode does.
//!
//! Kernel rules rather than a userspace proxy because the packets then never leave the
//! kernel: a ClusterIP costs one conntrack entry and a map lookup, not two socket copies
//! (docs/decisions/0008-service-proxy.md has the measurements). The loop is level-triggered:
//! every watch event marks the rules stale, and one sync renders the whole ruleset from the
//! caches and applies it in a single `nft -f` transaction, so a half-applied state is never
//! visible and a burst of events costs one sync.

pub mod rules;
pub mod servicelb;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, reflector, Store};
use kube::runtime::{watcher, WatchStreamExt};
use rules::{Names, NodeConfig, ServicePort};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Errors of the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `nft` or `ip` could not be run or refused the change.
    #[error(transparent)]
    Command(#[from] crate::cmd::CommandError),
    /// A watch cache never filled (the API went away).
    #[error("watch cache never became ready")]
    CacheNotReady,
}

/// Where the proxy runs.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The node's address (NodePort and LoadBalancer Services answer on it).
    pub node_ip: Option<Ipv4Addr>,
    /// The node's pod network, e.g. `10.244.0.0/24`.
    pub pod_cidr: String,
    /// All nodes' pod networks, e.g. `10.244.0.0/16`: pod traffic may go anywhere in it
    /// (other nodes' pods), never outside it.
    pub cluster_cidr: String,
    /// The service network, e.g. `10.96.0.0/16`: routed to the pod bridge so that the node
    /// itself reaches cluster IPs even without a default route, and never sends them out.
    pub service_cidr: String,
    /// The pod bridge.
    pub bridge: String,
    /// Where rule syncs are recorded.
    pub metrics: crate::metrics::ProxyMetrics,
}

/// Whether bridged packets pass through netfilter here (per network namespace).
fn bridge_netfilter() -> bool {
    std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .is_ok_and(|v| v.trim() == "1")
}

/// The proxy's state between syncs.
struct Syncer {
    node: NodeConfig,
    cfg: ProxyConfig,
    /// What the kernel holds (None: unknown, recreate the table).
    applied: Option<(Vec<ServicePort>, Names)>,
    routed: bool,
}

impl Syncer {
    async fn sync(&mut self, services: &Store<Service>, slices: &Store<EndpointSlice>) {
        if !self.routed {
            let r = crate::cmd::run(
                "ip",
                &[
                    "route",
                    "replace",
                    &self.cfg.service_cidr,
                    "dev",
                    &self.cfg.bridge,
                ],
                None,
            )
            .await;
            self.routed = r.is_ok();
        }
        let services = services.state();
        let slices = slices.state();
        let svc_refs: Vec<&Service> = services.iter().map(|s| s.as_ref()).collect();
        let slice_refs: Vec<&EndpointSlice> = slices.iter().map(|s| s.as_ref()).collect();
        let ports = rules::service_ports(&svc_refs, &slice_refs);
        if self.applied.as_ref().is_some_and(|(p, _)| *p == ports) {
            return;
        }
        let synced = Instant::now();
        let previous = self.applied.take().map(|(_, names)| names);
        let (script, names) = rules::render(&self.node, &ports, previous.as_ref());
        let started = Instant::now();
        match crate::cmd::run("nft", &["-f", "-"], Some(&script)).await {
            Ok(()) => {
                self.cfg.metrics.synced(synced.elapsed());
                tracing::debug!(
                    ports = ports.len(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "service rules synced"
                );
                self.applied = Some((ports, names));
            }
            Err(error) => {
                // Next sync recreates the table from scratch.
                tracing::warn!(%error, "service rules not applied; retrying");
                tracing::debug!(script, "rejected ruleset");
            }
        }
    }
}

/// Runs the proxy until the API goes away: watches Services and EndpointSlices and keeps
/// the `skiff-proxy` nftables table in step (changes land within milliseconds).
pub async fn run(client: kube::Client, cfg: ProxyConfig) -> Result<(), Error> {
    // Service traffic from pods is routed (pod -> bridge -> DNAT -> pod) by the node.
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
        tracing::warn!("cannot enable ip_forward: {e}; pods may not reach Services");
    }
    let (services, svc_w) = reflector::store();
    let (slices, slice_w) = reflector::store();
    let dirty = Arc::new(Notify::new());
    let svc_stream = reflector(
        svc_w,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    );
    let slice_stream = reflector(
        slice_w,
        watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default(),
        ),
    );
    for stream in [
        svc_stream.map(|e| e.map(|_| ())).boxed(),
        slice_stream.map(|e| e.map(|_| ())).boxed(),
    ] {
        let dirty = dirty.clone();
        tokio::spawn(async move {
            let stream = stream.default_backoff();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                if let Err(error) = event {
                    tracing::debug!(%error, "proxy watch error; retrying");
                }
                dirty.notify_one();
            }
        });
    }
    services
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheNotReady)?;
    slices
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheNotReady)?;
    let mut syncer = Syncer {
        node: NodeConfig {
            node_ip: cfg.node_ip,
            pod_cidr: cfg.pod_cidr.clone(),
            cluster_cidr: cfg.cluster_cidr.clone(),
            service_cidr: cfg.service_cidr.clone(),
            bridge_netfilter: bridge_netfilter(),
        },
        cfg,
        applied: None,
        routed: false,
    };
    tracing::info!(
        bridge_netfilter = syncer.node.bridge_netfilter,
        "service proxy started (nftables)"
    );
    loop {
        syncer.sync(&services, &slices).await;
        // Retry soon while something is not in place; otherwise wait for a change.
        let retry = syncer.applied.is_none() || !syncer.routed;
        if retry {
            let _ = tokio::time::timeout(Duration::from_secs(1), dirty.notified()).await;
        } else {
            dirty.notified().await;
        }
    }
}
