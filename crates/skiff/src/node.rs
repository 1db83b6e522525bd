//! Wiring of the node agent into `skiff server`: runs this host as a node when it can
//! (root and runc present), and says why not otherwise. Service networking (proxy, DNS)
//! follows the node: it runs where pods run.

use crate::Components;
use std::sync::{Arc, OnceLock};
use tokio::sync::oneshot;
/// Per-node settings that flags may give (`skiff agent`); unset ones come from the
/// environment, then the defaults.
#[derive(Default)]
pub struct NodeOptions {
    pub name: Option<String>,
    pub pod_cidr: Option<String>,
    /// The node Lease's duration (`--node-lease-duration-seconds`).
    pub lease_duration: std::time::Duration,
    /// RuntimeDefault seccomp for containers that set no profile (`--seccomp-default`).
    pub seccomp_default: bool,
    /// Graceful node shutdown (`--shutdown-grace-period`, decision 0043).
    pub shutdown: skiff_node::agent::shutdown::ShutdownPeriods,
}

/// The node this process runs, once it registered: what SIGTERM shuts down.
#[derive(Clone, Default)]
pub struct Node {
    agent: Arc<OnceLock<skiff_node::agent::Agent>>,
}

impl Node {
    /// Graceful node shutdown when configured and the node runs; else returns at once.
    pub async fn shutdown(&self) {
        if let Some(agent) = self.agent.get() {
            agent.shutdown().await;
        }
    }
}

/// Why this host cannot run pods, if it cannot.
pub fn unusable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (containers need mounts, namespaces, cgroups)".into());
    }
    let runc = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("runc").is_file()))
        .unwrap_or(false);
    if !runc {
        return Some("runc not found in PATH (apt-get install runc)".into());
    }
    None
}

/// This host's name, the default node name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The pod network this host's node takes: the flag, `SKIFF_POD_CIDR`, or the cluster
/// network's first /24.
fn pod_cidr(options: &NodeOptions) -> String {
    match &options.pod_cidr {
        Some(cidr) => cidr.clone(),
        None => std::env::var("SKIFF_POD_CIDR").unwrap_or_else(|_| {
            skiff_apimachinery::network::ClusterNetwork::default()
                .node_pod_cidr(0)
                .unwrap_or_default()
        }),
    }
}

/// Whether `SKIFF_NODE` turns this host's node off.
fn disabled() -> bool {
    std::env::var("SKIFF_NODE").is_ok_and(|v| v == "off" || v == "0")
}

/// The address pods on this host's node have as default gateway (the bridge's), where a
/// server listening on loopback only also serves the API (decision 0022); `None` when this
/// host runs no node.
pub fn pod_gateway(options: &NodeOptions) -> Option<std::net::Ipv4Addr> {
    if disabled() || unusable().is_some() {
        return None;
    }
    skiff_node::network::Ipv4Cidr::parse(&pod_cidr(options))
        .ok()
        .map(|cidr| cidr.gateway())
}

/// Starts the node agent for this host as an API client of the local server, in the
/// background. The returned receiver fires once the node is Ready (or the agent gave up,
/// or there is no node), which is when `skiff server` says it is ready; the [`Node`] is
/// what to shut down.
pub async fn start(
    components: &Components,
    options: &NodeOptions,
) -> anyhow::Result<(oneshot::Receiver<()>, Node)> {
    let (done, settled) = oneshot::channel();
    let node = Node::default();
    if disabled() {
        tracing::info!("node agent disabled by SKIFF_NODE; running without a node");
        let _ = done.send(());
        return Ok((settled, node));
    }
    if let Some(why) = unusable() {
        tracing::warn!("running without a node: {why}");
        let _ = done.send(());
        return Ok((settled, node));
    }
    let env = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.to_string());
    let exe = std::env::current_exe()?;
    let data_dir = std::path::absolute(&components.data_dir)?;
    let cfg = skiff_node::agent::AgentConfig {
        kubeconfig: components.kubeconfig.clone(),
        data_dir,
        node_name: match &options.name {
            Some(name) => name.clone(),
            None => env("SKIFF_NODE_NAME", &host_name()),
        },
        pod_cidr: pod_cidr(options),
        bridge: env("SKIFF_BRIDGE", "skiff0"),
        kubelet_port: env("SKIFF_KUBELET_PORT", "10250").parse()?,
        shim: vec![exe.into(), "internal-shim".into()],
        cgroup_parent: env("SKIFF_CGROUP_PARENT", "skiff"),
        lease_duration: options.lease_duration,
        seccomp_default: options.seccomp_default,
        shutdown: options.shutdown,
        auth: None,
        servers: components.servers.clone(),
    };
    // The node's own identity for the agent, kube-proxy's for service networking.
    let mut cfg = cfg;
    cfg.auth = components.credential(skiff_auth::components::node(&cfg.node_name))?;
    let client = components
        .client(
            "kube-proxy",
            skiff_auth::components::user("system:kube-proxy"),
        )
        .await?;
    // The API serves only once start-up returns, so the agent registers in the background.
    let registered = node.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let net = crate::net::NetConfig {
            node_name: cfg.node_name.clone(),
            node_ip: skiff_node::agent::node_ip().parse().ok(),
            pod_cidr: cfg.pod_cidr.clone(),
            bridge: cfg.bridge.clone(),
        };
        match skiff_node::agent::start(cfg).await {
            Ok(agent) => {
                let _ = registered.agent.set(agent);
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "node is Ready"
                )
            }
            Err(e) => {
                tracing::warn!("running without a node: {e}");
                let _ = done.send(());
                return;
            }
        }
        if let Err(e) = crate::net::start(client, net) {
            tracing::warn!("running without service networking: {e}");
        }
        let _ = done.send(());
    });
    Ok((settled, node))
}
