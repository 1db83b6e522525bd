//! skiff's front door: the Gateway API, built in.
//!
//! An API client only (kube-rs), like `skiff-net`. [`install`] puts the vendored upstream
//! CRDs and the default GatewayClass in place; [`config`] (pure) turns the Gateway API
//! objects and the Services they name into one routing table and the decisions behind it;
//! [`status`] (pure) renders those decisions as the spec's conditions; [`proxy`] is the
//! per-node HTTP data plane on hyper, fed by [`controller`]'s loops, forwarding over
//! [`upstream`]'s per-worker connection pools.

pub mod api;
pub mod config;
pub mod controller;
pub mod fingerprint;
pub mod ingress;
pub mod install;
pub mod metrics;
pub mod proxy;
pub mod status;
pub mod upstream;

pub use install::{CONTROLLER_NAME, DEFAULT_CLASS};

/// The cluster-wide part, started once by `skiff server`: installs the Gateway API, then
/// writes status for skiff's classes, Gateways and routes.
pub async fn run_control_plane(client: kube::Client) {
    install::run(client.clone()).await;
    controller::run_status(client).await;
}

/// The per-node part: serves every listener of skiff's Gateways on `bind` (the node's
/// address).
pub async fn run_node(client: kube::Client, bind: std::net::IpAddr) {
    run_node_with_metrics(client, bind, metrics::GatewayMetrics::default()).await;
}

/// [`run_node`], recording per-route and per-backend request metrics into `metrics`
/// (registered by the caller on the registry it serves).
pub async fn run_node_with_metrics(
    client: kube::Client,
    bind: std::net::IpAddr,
    metrics: metrics::GatewayMetrics,
) {
    controller::run_data_plane(client, bind, metrics).await;
}
