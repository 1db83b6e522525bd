//! The node agent (skiff's kubelet): an API client that registers this host as a Node,
//! renews its Lease, and runs the Pods bound to it as containers, reporting their status.
//!
//! Pure decisions live in [`plan`] and [`status`]; [`pods`] carries them out.

pub use node::{lease_renew_interval, node_ip};

mod admission;
mod atomic;
pub mod clientcert;
pub mod env;
pub mod events;
pub mod failover;
pub mod images;
pub mod lifecycle;
mod logserver;
pub mod metrics;
mod node;
mod nodeauth;
pub mod plan;
mod pods;
mod probeclient;
pub mod probes;
mod pty;
mod security;
mod servingcert;
pub mod shutdown;
pub mod status;
mod streaming;
pub mod summary;
pub mod tokens;
mod volumerefresh;
mod volumes;

use crate::image::{ImageStore, Puller, RegistryConfig};
use crate::network::{Ipv4Cidr, Network, NetworkConfig};
use crate::runtime::{RuncConfig, RuncRuntime, Runtime};
use crate::sandbox::SandboxManager;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

/// Errors starting the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The kubeconfig could not be used.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What the agent was doing.
        what: String,
        /// Underlying error.
        #[source]
        source: kube::Error,
    },
    /// The runtime could not be opened.
    #[error("runtime: {0}")]
    Runtime(#[from] crate::runtime::Error),
    /// The image store could not be opened.
    #[error("images: {0}")]
    Image(#[from] crate::image::Error),
    /// The registry client could not be set up.
    #[error("image puller: {0}")]
    Puller(#[from] crate::image::PullError),
    /// Networking could not be set up.
    #[error("network: {0}")]
    Network(#[from] crate::network::Error),
    /// Sandboxes could not be set up.
    #[error("sandboxes: {0}")]
    Sandbox(#[from] crate::sandbox::Error),
    /// The kubelet port's serving certificate or TLS settings could not be had.
    #[error("kubelet port: {0}")]
    Serving(String),
    /// The log endpoint could not listen.
    #[error("log endpoint on port {port}: {source}")]
    Listen {
        /// Port.
        port: u16,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// How to run the agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Kubeconfig for the API server.
    pub kubeconfig: PathBuf,
    /// The node's credential, used instead of the kubeconfig's when set (the local
    /// server's in-memory token for `system:node:<name>`, decision 0036).
    pub auth: Option<kube::config::AuthInfo>,
    /// State root: `images/`, `runtime/`, `network/`, `sandboxes/`, `pods/`, `logs/`.
    pub data_dir: PathBuf,
    /// Node name (the host name by default).
    pub node_name: String,
    /// The node's pod CIDR, e.g. `10.244.0.0/24`.
    pub pod_cidr: String,
    /// Bridge the pods attach to.
    pub bridge: String,
    /// Port of the log endpoint (the kubelet's 10250).
    pub kubelet_port: u16,
    /// Command running the container shim.
    pub shim: Vec<OsString>,
    /// Parent cgroup of the containers.
    pub cgroup_parent: String,
    /// The node Lease's duration (the kubelet's `--node-lease-duration-seconds`); it is
    /// renewed every quarter of it.
    pub lease_duration: std::time::Duration,
    /// RuntimeDefault seccomp for containers that ask for no profile (the kubelet's
    /// `--seccomp-default`; on by default in skiff, decision 0035).
    pub seccomp_default: bool,
    /// Graceful node shutdown on [`Agent::shutdown`] (the kubelet's `shutdownGracePeriod`
    /// and `shutdownGracePeriodCriticalPods`); off when zero, and pods keep running.
    pub shutdown: shutdown::ShutdownPeriods,
    /// `skiff agent --server URL1,URL2,...`: the servers the agent's client fails over
    /// between (decision 0052); `None`: the kubeconfig's one server.
    pub servers: Option<Arc<failover::Servers>>,
}

/// Shared state of the running agent.
pub(crate) struct Shared {
    pub(crate) cfg: AgentConfig,
    pub(crate) client: kube::Client,
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) images: images::ImageManager,
    pub(crate) sandboxes: SandboxManager,
    pub(crate) node_ip: String,
    pub(crate) recorder: events::Recorder,
    /// The kubelet port actually listened on (the Node's `daemonEndpoints`).
    pub(crate) kubelet_port: u16,
    /// Graceful node shutdown's state.
    pub(crate) shutdown: shutdown::Shutdown,
}

/// A running agent, to shut its node down gracefully.
#[derive(Clone)]
pub struct Agent {
    shared: Arc<Shared>,
}

impl Agent {
    /// Graceful node shutdown, when a period is configured: the node turns NotReady,
    /// refuses new pods and kills its pods by priority group within the period, marking
    /// them Failed (decision 0043). Returns at once when no period is set, leaving the pods
    /// running. Call it while the API is still served: it posts the node's and pods' status.
    pub async fn shutdown(&self) {
        shutdown::run(self.shared.clone()).await;
    }
}

/// Starts the agent: opens the runtime, registers the Node and returns once it is Ready;
/// the lease, the pod loop and the log endpoint keep running in spawned tasks.
pub async fn start(cfg: AgentConfig) -> Result<Agent, AgentError> {
    let (client, cluster_ca) =
        client(&cfg.kubeconfig, cfg.auth.clone(), cfg.servers.clone()).await?;
    // Where this node's host state lives, for `skiff killall` (decision 0037).
    let settings = crate::cleanup::NodeSettings {
        bridge: cfg.bridge.clone(),
        cgroup_parent: cfg.cgroup_parent.clone(),
        pod_cidr: cfg.pod_cidr.clone(),
        netns_prefix: "skiff-".into(),
    };
    if let Err(e) = settings.save(&cfg.data_dir) {
        tracing::warn!(error = %e, "cannot record the node's settings; skiff killall will use defaults");
    }
    let mut runc = RuncConfig::new(cfg.data_dir.join("runtime"), cfg.shim.clone());
    runc.cgroup_parent = cfg.cgroup_parent.clone();
    // One container list shared by every pod worker (see runtime::CachedList).
    let runtime = Arc::new(crate::runtime::CachedList::new(RuncRuntime::new(runc)?));
    let images = images::ImageManager::new(
        ImageStore::open(cfg.data_dir.join("images"))?,
        Puller::new(RegistryConfig::from_env())?,
    );
    let network = Network::new(NetworkConfig {
        bridge: cfg.bridge.clone(),
        pod_cidr: Ipv4Cidr::parse(&cfg.pod_cidr)?,
        state_dir: cfg.data_dir.join("network"),
        netns_prefix: settings.netns_prefix.clone(),
    })?;
    // The bridge exists from the start, not from the first pod: the node's DNS server
    // listens on its address and service traffic is routed through it.
    network.ensure_bridge()?;
    let sandboxes = SandboxManager::new(cfg.data_dir.join("sandboxes"), network)?;
    let node_ip = node::node_ip();
    let listener = match tokio::net::TcpListener::bind((node_ip.as_str(), cfg.kubelet_port)).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(
                port = cfg.kubelet_port,
                "log endpoint port in use; using a free one"
            );
            tokio::net::TcpListener::bind((node_ip.as_str(), 0))
                .await
                .map_err(|source| AgentError::Listen { port: 0, source })?
        }
        Err(source) => {
            return Err(AgentError::Listen {
                port: cfg.kubelet_port,
                source,
            })
        }
    };
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(cfg.kubelet_port);
    let recorder = events::Recorder::spawn(client.clone(), cfg.node_name.clone());
    let shared = Arc::new(Shared {
        recorder,
        kubelet_port: port,
        shutdown: shutdown::Shutdown::new(cfg.shutdown),
        node_ip,
        cfg,
        client,
        runtime,
        images,
        sandboxes,
    });
    node::register(&shared, shared.kubelet_port).await?;
    // HTTPS with a certificate from the cluster CA, every request authenticated and
    // authorized through the API server (decision 0034). The certificate is asked for once
    // the Node exists: the approver checks the request's names against the Node's.
    let (cfg, client) = (&shared.cfg, &shared.client);
    let hosts = servingcert::hosts(&cfg.node_name, &shared.node_ip);
    let pki = cfg.data_dir.join("pki");
    let serving = servingcert::obtain(client, &cfg.node_name, &hosts, &pki)
        .await
        .map_err(|e| AgentError::Serving(e.to_string()))?;
    let resolver = Arc::new(
        servingcert::Resolver::new(&serving).map_err(|e| AgentError::Serving(e.to_string()))?,
    );
    let tls =
        nodeauth::server_config(&cluster_ca, resolver.clone()).map_err(AgentError::Serving)?;
    let auth = Arc::new(nodeauth::NodeAuth::new(
        client.clone(),
        cfg.node_name.clone(),
    ));
    tokio::spawn(servingcert::keep_renewed(
        client.clone(),
        cfg.node_name.clone(),
        hosts,
        pki,
        serving,
        resolver,
    ));
    tokio::spawn(logserver::serve(
        shared.clone(),
        listener,
        Arc::new(tls),
        auth,
    ));
    tokio::spawn(node::heartbeat(shared.clone(), port));
    tokio::spawn(volumerefresh::run(shared.clone()));
    tokio::spawn(pods::run(shared.clone()));
    Ok(Agent { shared })
}

/// The agent's API client and the cluster CA its kubeconfig trusts (DER), which also
/// verifies client certificates on the kubelet port.
async fn client(
    path: &std::path::Path,
    auth: Option<kube::config::AuthInfo>,
    servers: Option<Arc<failover::Servers>>,
) -> Result<(kube::Client, Vec<Vec<u8>>), AgentError> {
    let err = |message: String| AgentError::Kubeconfig {
        path: path.to_path_buf(),
        message,
    };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| err(e.to_string()))?;
    if let Some(auth) = auth {
        config.auth_info = auth;
    }
    let ca = config.root_cert.clone().unwrap_or_default();
    let client = match servers {
        Some(servers) => {
            clientcert::client(&config, None, Some(servers)).map_err(|e| err(e.to_string()))?
        }
        None => kube::Client::try_from(config).map_err(|e| err(e.to_string()))?,
    };
    Ok((client, ca))
}
