//! The `skiff` binary: wires the store, the API server and (later) the controllers, the
//! scheduler and the node agent into one process. It only wires; every component lives in
//! its own crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod compose;
mod controllers;
mod datastore;
mod image;
mod join;
mod killall;
mod leader;
mod memory;
mod net;
mod node;
mod security;
mod snapshot;
mod tlsbootstrap;
mod token;
mod ui;

use anyhow::Context;
use clap::{Parser, Subcommand};
use skiff_apiserver::serve::Credentials;

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "Kubernetes for one machine, in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: store, API server (and, as they land, controllers,
    /// scheduler and node agent).
    Server(ServerArgs),
    /// Join a running server as one more node: the node agent, service proxy and DNS for
    /// this host, as API clients of that server.
    Agent(AgentArgs),
    /// Manage the node's local images (`load`, `pull`, `ls`, `rm`).
    Image(image::ImageArgs),
    /// A Compose file on the cluster, as kompose: `convert` prints its manifests, `up`
    /// applies them, `down` deletes them.
    Compose(compose::ComposeArgs),
    /// Write a kubeconfig for a new user: a client certificate for NAME (and its groups)
    /// signed by the cluster CA, ready to hand over.
    Kubeconfig(KubeconfigArgs),
    /// Bootstrap tokens for new nodes: `create` prints one for `skiff agent --token-file`,
    /// with which the agent gets its own client certificate (kubeadm's `token create`).
    Token(token::TokenArgs),
    /// A live view of the cluster in the browser: each workload's desired against actual
    /// state, the ownership trees and the reconcile timeline, with the kubeconfig's
    /// credentials (as `kubectl proxy`), on 127.0.0.1.
    Ui(ui::UiArgs),
    /// Encryption at rest of Secrets: `rotate` adds a key and rewrites every Secret with it.
    Secrets(security::SecretsArgs),
    /// The cluster's certificates: `rotate` renews them now.
    Certificate(security::CertificateArgs),
    /// Save the cluster's state while the server serves, or restore it (SQLite or etcd).
    Snapshot(snapshot::SnapshotArgs),
    /// Move the cluster's state between SQLite and etcd: `migrate --to etcd://...`.
    Datastore(snapshot::DatastoreArgs),
    /// Stop the server or agent of a data dir and every pod its node runs: containers,
    /// shims, mounts, network namespaces, cgroups, the pod bridge and nftables tables. A
    /// later `skiff server` on the data dir starts the pods again.
    Killall(killall::KillallArgs),
    /// `killall`, then delete the data dir.
    Uninstall(killall::UninstallArgs),
    /// The per-container shim (started by the node agent, not by users).
    #[command(hide = true)]
    InternalShim { args: Vec<std::ffi::OsString> },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Where state lives: the store, certificates, the kubeconfig.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = "./skiff-data")]
    data_dir: PathBuf,
    /// Address the API listens on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// The authorizers, as kube-apiserver's flag: `Node,RBAC` (the Node authorizer for
    /// the nodes' own objects, then RBAC), `RBAC`, or `AlwaysAllow` (everyone may do
    /// everything; for measurements).
    #[arg(long, default_value = "Node,RBAC")]
    authorization_mode: skiff_apiserver::authz::Mode,
    /// An upstream EncryptionConfiguration file (kube-apiserver's flag). Without it, Secrets
    /// are sealed with a key generated into `DIR/pki/encryption-config.yaml`.
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    #[command(flatten)]
    datastore: datastore::DatastoreArgs,
    #[command(flatten)]
    nodes: NodeFailureArgs,
    #[command(flatten)]
    lease: LeaseArgs,
    #[command(flatten)]
    leader_election: leader::LeaderElectionArgs,
    /// The IP address this server advertises to the cluster, kube-apiserver's flag: the
    /// `kubernetes` Service lists it (with the --listen port) while this server lives.
    /// Default: the node's address when listening on every address, the pod bridge's
    /// gateway when listening on loopback.
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// How long a server's address stays in the `kubernetes` Service's endpoints without
    /// being renewed (kube-apiserver's MasterEndpointReconcileTTL, 15s), a Go duration;
    /// each server renews it every two thirds of it.
    #[arg(long, default_value = "15s", value_parser = go_duration)]
    endpoint_reconcile_ttl: std::time::Duration,
}

/// How fast a lost node is noticed and its pods replaced (decision 0023): upstream's flags
/// with skiff's defaults (upstream: 50s grace, 300 s tolerations).
#[derive(clap::Args)]
struct NodeFailureArgs {
    /// How long a node may go without renewing its Lease before it is NotReady (Unknown),
    /// as a Go duration.
    #[arg(long, default_value = "8s", value_parser = go_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// The DefaultTolerationSeconds admission plugin's tolerationSeconds for
    /// `node.kubernetes.io/not-ready:NoExecute`, for pods that set none.
    #[arg(long, default_value_t = skiff_apiserver::plugins::tolerations::DEFAULT_SECONDS)]
    default_not_ready_toleration_seconds: i64,
    /// The same for `node.kubernetes.io/unreachable:NoExecute`.
    #[arg(long, default_value_t = skiff_apiserver::plugins::tolerations::DEFAULT_SECONDS)]
    default_unreachable_toleration_seconds: i64,
}

/// The node's kubelet flags: its Lease, its seccomp default.
#[derive(clap::Args)]
struct LeaseArgs {
    /// The node Lease's duration in seconds; the agent renews it every quarter of it (2 s).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=3600))]
    node_lease_duration_seconds: u64,
    /// The kubelet's SeccompDefault: containers that set no seccompProfile run under
    /// RuntimeDefault; `--seccomp-default=false` leaves them Unconfined (decision 0035).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    seccomp_default: bool,
    /// Graceful node shutdown (the kubelet's shutdownGracePeriod), a Go duration: on
    /// SIGTERM the node turns NotReady and kills its pods within it, marking them Failed.
    /// 0s (the default) leaves pods running while skiff is stopped (decision 0043).
    #[arg(long, default_value = "0s", value_parser = go_duration_or_zero)]
    shutdown_grace_period: std::time::Duration,
    /// The end of --shutdown-grace-period kept for critical pods (priority 2000000000
    /// and up), killed after all others (the kubelet's shutdownGracePeriodCriticalPods).
    #[arg(long, default_value = "0s", value_parser = go_duration_or_zero)]
    shutdown_grace_period_critical_pods: std::time::Duration,
}

impl LeaseArgs {
    /// The graceful shutdown periods, checked as the kubelet checks its configuration.
    fn shutdown(&self) -> anyhow::Result<skiff_node::agent::shutdown::ShutdownPeriods> {
        skiff_node::agent::shutdown::ShutdownPeriods::new(
            self.shutdown_grace_period,
            self.shutdown_grace_period_critical_pods,
        )
        .map_err(anyhow::Error::msg)
    }
}

/// A Go duration that may be zero (a setting that zero turns off).
fn go_duration_or_zero(s: &str) -> Result<std::time::Duration, String> {
    skiff_apiserver::request::parse_go_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration such as 0s, 30s or 1m"))
}

fn go_duration(s: &str) -> Result<std::time::Duration, String> {
    skiff_apiserver::request::parse_go_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} is not a positive duration such as 8s or 1m"))
}

#[derive(clap::Args)]
struct KubeconfigArgs {
    /// The server's data dir (its CA signs the certificate).
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = "./skiff-data")]
    data_dir: PathBuf,
    /// The user name (the certificate's common name).
    #[arg(long)]
    user: String,
    /// A group of the user (the certificate's organizations); repeatable.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// The context's namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// How long the certificate is valid, as a Go duration (`720h`, `90m`).
    #[arg(long, default_value = "8760h")]
    expires: String,
    /// The API server URL (default: the one in the data dir's admin kubeconfig).
    #[arg(long)]
    server: Option<String>,
    /// Write to this file (mode 0600) instead of stdout.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

#[derive(clap::Args)]
struct AgentArgs {
    /// The server's API address, e.g. `https://192.168.1.10:6443`; several, separated by
    /// commas, when several servers serve the cluster: the agent uses the first that
    /// answers and moves to the next when it stops answering.
    #[arg(long)]
    server: String,
    /// A file holding a bootstrap token (`skiff token create`), with which the agent asks
    /// for its own client certificate and then uses that (kubelet TLS bootstrap), or a
    /// bearer token for the API (a copy of the server's `DIR/pki/admin.token`). Without it,
    /// the token is read from the SKIFF_TOKEN environment variable; never from the command
    /// line, where `ps` shows it. Not needed while the agent holds a valid certificate.
    #[arg(long, env = "SKIFF_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The server's CA certificate (the server's `DIR/pki/ca.crt`).
    #[arg(long)]
    ca_file: PathBuf,
    /// Where this node keeps its state: images, containers, logs, volumes.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = "./skiff-agent-data")]
    data_dir: PathBuf,
    /// Node name (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// This node's pod network; each node needs its own /24 of 10.244.0.0/16 (the server's
    /// node has 10.244.0.0/24).
    #[arg(long, default_value = "10.244.1.0/24")]
    pod_cidr: String,
    #[command(flatten)]
    lease: LeaseArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::InternalShim { args } = cli.command {
        return std::process::ExitCode::from(skiff_node::runtime::shim::main(args) as u8);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in files or journals.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skiff: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server(args).await,
            Command::Agent(args) => agent(args).await,
            Command::Image(args) => image::run(args),
            Command::Compose(args) => compose::run(args).await,
            Command::Kubeconfig(args) => user_kubeconfig(args),
            Command::Token(args) => token::run(args).await,
            Command::Ui(args) => ui::run(args).await,
            Command::Secrets(args) => security::secrets(args).await,
            Command::Certificate(args) => security::certificate(args),
            Command::Snapshot(args) => snapshot::run(args).await,
            Command::Datastore(args) => snapshot::datastore(args).await,
            Command::Killall(args) => {
                tokio::task::spawn_blocking(|| killall::killall(args)).await?
            }
            Command::Uninstall(args) => {
                tokio::task::spawn_blocking(|| killall::uninstall(args)).await?
            }
            Command::InternalShim { .. } => unreachable!("handled before the runtime starts"),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skiff: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What the in-process components (API clients all) need to start.
#[derive(Clone)]
pub struct Components {
    /// The server's data dir; components keep their state in subdirectories of it.
    pub data_dir: PathBuf,
    /// A kubeconfig for the API server: the server's admin one (its address and CA are what
    /// components take from it), or the credential `skiff agent` was given.
    pub kubeconfig: PathBuf,
    /// The local API server, which issues each in-process component an in-memory token
    /// for its own identity (decision 0036); `None` in `skiff agent`.
    pub api: Option<Arc<skiff_apiserver::Api>>,
    /// `skiff agent`'s node client certificate (TLS bootstrap, decision 0044), which every
    /// client presents, a renewed one from the next connection on; `None` elsewhere.
    pub client_certificate: Option<Arc<skiff_node::agent::clientcert::Resolver>>,
    /// `skiff agent --server URL1,URL2,...`: the servers its clients fail over between
    /// (decision 0052); `None` in `skiff server`.
    pub servers: Option<Arc<skiff_node::agent::failover::Servers>>,
}

impl Components {
    /// The credential of `identity`: a token the local server issues for it, kept in
    /// memory only; `None` in `skiff agent`, whose components use its kubeconfig's.
    pub fn credential(
        &self,
        identity: skiff_apimachinery::user::UserInfo,
    ) -> anyhow::Result<Option<kube::config::AuthInfo>> {
        let Some(api) = &self.api else {
            return Ok(None);
        };
        let token = api.authn.components.issue(identity)?;
        Ok(Some(serde_json::from_value(
            serde_json::json!({ "token": token }),
        )?))
    }

    /// An API client of the local server for `component`, which its User-Agent names (the
    /// server attributes the component's writes, managedFields, to it, as upstream's
    /// `kube-controller-manager`, `kube-scheduler` and `kubelet`), acting as `identity`
    /// with only the rights RBAC gives it.
    pub async fn client(
        &self,
        component: &str,
        identity: skiff_apimachinery::user::UserInfo,
    ) -> anyhow::Result<kube::Client> {
        self.client_from(&self.config().await?, component, identity)
    }

    /// The kubeconfig's client configuration, which [`Components::client_from`] gives each
    /// client its identity on.
    pub async fn config(&self) -> anyhow::Result<kube::Config> {
        // kube's TLS client needs a process-wide crypto provider; ignore "already installed".
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        Ok(kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?)
    }

    /// [`Components::client`] on an already read `config`, for components making many
    /// clients (one per controller).
    pub fn client_from(
        &self,
        config: &kube::Config,
        component: &str,
        identity: skiff_apimachinery::user::UserInfo,
    ) -> anyhow::Result<kube::Client> {
        let mut config = config.clone();
        let agent = user_agent(component, &identity);
        if let Some(auth) = self.credential(identity)? {
            config.auth_info = auth;
        }
        config.headers.push((
            hyper::header::USER_AGENT,
            hyper::header::HeaderValue::from_str(&agent)?,
        ));
        match (&self.client_certificate, &self.servers) {
            (None, None) => Ok(kube::Client::try_from(config)?),
            (resolver, servers) => Ok(skiff_node::agent::clientcert::client(
                &config,
                resolver.clone(),
                servers.clone(),
            )?),
        }
    }
}

/// A component's User-Agent: `<component>/<version>`, and for a controller acting as its
/// ServiceAccount, the account's user name after it, as upstream's controller client
/// builder appends it (`kube-controller-manager/v1.31.0/system:serviceaccount:kube-system:
/// replicaset-controller`). managedFields name the component (the part before the first
/// `/`), as upstream's.
fn user_agent(component: &str, identity: &skiff_apimachinery::user::UserInfo) -> String {
    let base = format!("{component}/{}", skiff_apiserver::GIT_VERSION);
    if identity.username.starts_with("system:serviceaccount:") {
        format!("{base}/{}", identity.username)
    } else {
        base
    }
}

/// Names and addresses the serving certificate covers.
fn certificate_hosts(
    listen: SocketAddr,
    pod_gateway: Option<SocketAddr>,
    advertised: Option<std::net::IpAddr>,
) -> Vec<String> {
    let mut hosts: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "::1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The `kubernetes` Service's address, which in-cluster clients connect to.
    hosts.push(
        skiff_apimachinery::network::ClusterNetwork::default()
            .kubernetes_service_ip()
            .to_string(),
    );
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        hosts.push(name.trim().to_owned());
    }
    if listen.ip().is_unspecified() {
        // Listening everywhere: agents on other hosts reach it at the node's address.
        hosts.push(skiff_node::agent::node_ip());
    } else {
        hosts.push(listen.ip().to_string());
    }
    // A loopback-only server's address for pods, the `kubernetes` Service's endpoint.
    hosts.extend(pod_gateway.map(|a| a.ip().to_string()));
    // `--advertise-address`: where the `kubernetes` Service sends in-cluster clients.
    hosts.extend(advertised.map(|ip| ip.to_string()));
    hosts.sort();
    hosts.dedup();
    hosts
}

fn write_kubeconfig(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::io::Write::write_all(&mut f, contents.as_bytes())?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let shutdown_periods = args.lease.shutdown()?;
    let leader_timing = args.leader_election.timing()?;
    let data_dir = &args.data_dir;
    security::prepare_data_dir(data_dir)?;
    let _lock = security::lock_data_dir(data_dir, "one server per data dir")?;
    let store_metrics = skiff_store::StoreMetrics::default();
    // The raw datastore of the first server with --token, to publish the keys it makes.
    let mut first_server = None;
    let store = match args.datastore.connect().await? {
        Some(etcd) => {
            if let Some(token) = args.datastore.token() {
                if join::fetch(etcd.as_ref(), token, &data_dir.join("pki")).await? {
                    tracing::info!("joined the cluster with the keys in the datastore");
                } else {
                    first_server = Some(etcd.clone());
                }
            }
            security::encrypt_store(etcd, data_dir, args.encryption_provider_config.as_deref())?
        }
        None => security::open_store(
            data_dir,
            args.encryption_provider_config.as_deref(),
            &store_metrics,
        )?,
    };
    let (api, background) = skiff_apiserver::Api::new(store).context("loading the API")?;
    // The process registry, served on the API's /metrics: every in-process component's.
    let metrics = api.telemetry.registry();
    metrics.register(|r| store_metrics.register(r));
    api.rbac.set_mode(args.authorization_mode);
    api.default_tolerations.set(
        args.nodes.default_not_ready_toleration_seconds,
        args.nodes.default_unreachable_toleration_seconds,
    );
    // The ServiceAccount controller makes the accounts this plugin requires.
    api.service_accounts.set_enabled(true);
    let api = Arc::new(api);
    api.bootstrap()
        .await
        .context("creating default namespaces")?;
    tokio::spawn(api.clone().run_background(background));
    tokio::spawn(memory::give_back_freed_memory());

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let node_options = node::NodeOptions {
        lease_duration: std::time::Duration::from_secs(args.lease.node_lease_duration_seconds),
        seccomp_default: args.lease.seccomp_default,
        shutdown: shutdown_periods,
        ..Default::default()
    };
    // Listening on loopback only, the API is also served on the pod bridge's gateway, the
    // one address pods can reach (decision 0022); the bridge comes with the node, later.
    let bridge_listener = match node::pod_gateway(&node_options) {
        Some(gw) if addr.ip().is_loopback() => {
            let at = SocketAddr::new(gw.into(), addr.port());
            Some(
                skiff_apiserver::serve::bind_freebind(at)
                    .with_context(|| format!("cannot listen on {at}"))?,
            )
        }
        _ => None,
    };
    let bridge_addr = bridge_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    let credentials = Credentials::load_or_create(
        &data_dir.join("pki"),
        &certificate_hosts(addr, bridge_addr, args.advertise_address),
    )?;
    api.authn
        .load_signing_key(&data_dir.join("pki").join("sa.key"), &credentials.ca_pem)
        .map_err(anyhow::Error::msg)
        .context("loading the ServiceAccount signing key")?;
    if let (Some(etcd), Some(token)) = (first_server, args.datastore.token()) {
        join::publish(etcd.as_ref(), token, &data_dir.join("pki")).await?;
        tracing::info!("published the cluster's keys for the servers that join it");
    }
    api.aggregator
        .set_client_identity(
            &credentials.front_proxy_cert_pem,
            &credentials.front_proxy_key_pem,
        )
        .context("loading the front-proxy client certificate")?;
    api.nodes
        .set_identity(
            &credentials.ca_pem,
            &credentials.kubelet_client_cert_pem,
            &credentials.kubelet_client_key_pem,
        )
        .map_err(anyhow::Error::msg)
        .context("loading the kubelet client certificate")?;
    let client_addr = if addr.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), addr.port())
    } else {
        addr
    };
    let url = format!("https://{client_addr}");
    // Where pods reach the API: the node's address when listening everywhere, the bridge's
    // when listening on loopback only.
    let in_cluster = if let Some(ip) = args.advertise_address {
        Some(SocketAddr::new(ip, addr.port()))
    } else if addr.ip().is_unspecified() {
        skiff_node::agent::node_ip()
            .parse::<std::net::IpAddr>()
            .ok()
            .filter(|ip| !ip.is_loopback())
            .map(|ip| SocketAddr::new(ip, addr.port()))
    } else {
        Some(addr).filter(|a| !a.ip().is_loopback()).or(bridge_addr)
    };
    let identity = skiff_apiserver::endpointreconciler::Identity::new(
        &node::host_name(),
        &std::fs::canonicalize(data_dir)?.to_string_lossy(),
        in_cluster,
        args.endpoint_reconcile_ttl,
    );
    api.ensure_kubernetes_service(&identity)
        .await
        .context("creating the kubernetes Service")?;
    tokio::spawn(api.clone().keep_kubernetes_endpoints(identity));
    api.publish_authentication_info(&credentials.ca_pem)
        .await
        .context("publishing kube-system/extension-apiserver-authentication")?;
    let kubeconfig = data_dir.join("kubeconfig");
    write_kubeconfig(&kubeconfig, &credentials.kubeconfig(&url))?;

    let local_api = api.clone();
    let server = Arc::new(skiff_apiserver::Server {
        api,
        openapi: Default::default(),
        admin_tokens: vec![credentials.admin_token.clone()],
        address: client_addr.to_string(),
    });
    let router = skiff_apiserver::router(server);
    let components = Components {
        data_dir: data_dir.clone(),
        kubeconfig: kubeconfig.clone(),
        api: Some(local_api),
        client_certificate: None,
        servers: None,
    };
    let start_controllers = {
        let components = components.clone();
        let metrics = metrics.clone();
        let grace = args.nodes.node_monitor_grace_period;
        async move {
            let controller_metrics = controllers::start(&components, &metrics).await?;
            controllers::start_node_lifecycle(&components, grace, controller_metrics).await
        }
    };
    if args.datastore.shared() {
        leader::spawn(&components, leader_timing, start_controllers).await?;
    } else {
        start_controllers.await?;
    }
    let (node_settled, node) = node::start(&components, &node_options).await?;
    // Ready means the API answers and the node (when there is one) takes pods; the API
    // must serve for the node to register, so this is said from the background.
    tokio::spawn(async move {
        let _ = node_settled.await;
        tracing::info!(
            address = %url,
            kubeconfig = %kubeconfig.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "skiff is ready"
        );
    });
    let listeners = std::iter::once(listener).chain(bridge_listener).collect();
    // The node shuts down (when asked to, gracefully) while the API still serves: it
    // posts its own and its pods' status on the way.
    let shutdown = async move {
        shutdown_signal().await;
        node.shutdown().await;
    };
    skiff_apiserver::serve::serve_all(listeners, &credentials, router, shutdown).await?;
    Ok(())
}

/// `skiff kubeconfig`: a client certificate for the user, signed by the data dir's CA.
fn user_kubeconfig(args: KubeconfigArgs) -> anyhow::Result<()> {
    if args.user.is_empty() {
        anyhow::bail!("--user must not be empty");
    }
    let pki = args.data_dir.join("pki");
    let read = |name: &str| {
        let path = pki.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let (ca_cert, ca_key) = (read("ca.crt")?, read("ca.key")?);
    let lifetime = skiff_apiserver::request::parse_go_duration(&args.expires)
        .filter(|d| !d.is_zero())
        .with_context(|| {
            format!(
                "--expires {:?} is not a positive duration such as 720h",
                args.expires
            )
        })?;
    let server = match args.server {
        Some(s) => s,
        None => {
            let admin = args.data_dir.join("kubeconfig");
            let config = kube::config::Kubeconfig::read_from(&admin)
                .with_context(|| format!("reading {} (or pass --server)", admin.display()))?;
            config
                .clusters
                .iter()
                .find_map(|c| c.cluster.as_ref()?.server.clone())
                .with_context(|| format!("{} names no server", admin.display()))?
        }
    };
    let now = std::time::SystemTime::now();
    // Backdated a little, for clocks slightly behind this one.
    let not_before = now - std::time::Duration::from_secs(60);
    let not_after = now
        .checked_add(lifetime)
        .context("--expires is too far in the future")?;
    let (cert, key) = skiff_auth::x509::client_certificate(
        &args.user,
        &args.groups,
        not_before,
        not_after,
        &ca_cert,
        &ca_key,
    )?;
    let kubeconfig = skiff_apiserver::serve::client_certificate_kubeconfig(
        &server,
        &ca_cert,
        &args.user,
        &cert,
        &key,
        &args.namespace,
    );
    match args.output {
        Some(path) => write_kubeconfig(&path, &kubeconfig),
        None => {
            use std::io::Write;
            std::io::stdout().write_all(kubeconfig.as_bytes())?;
            Ok(())
        }
    }
}

/// The agent's API token: from `--token-file`, else from SKIFF_TOKEN.
fn agent_token(file: Option<&Path>) -> anyhow::Result<String> {
    let token = match file {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => std::env::var("SKIFF_TOKEN").map_err(|_| {
            anyhow::anyhow!("no API token: pass --token-file FILE or set SKIFF_TOKEN")
        })?,
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        anyhow::bail!("the API token is empty");
    }
    Ok(token)
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let shutdown_periods = args.lease.shutdown()?;
    if let Some(why) = node::unusable() {
        anyhow::bail!("this host cannot run pods: {why}");
    }
    tokio::spawn(memory::give_back_freed_memory());
    let data_dir = &args.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot use data dir {}", data_dir.display()))?;
    // One agent per data dir, and how `skiff killall` finds it.
    let _lock = security::lock_data_dir(data_dir, "one agent per data dir")?;
    let name = args.name.clone().unwrap_or_else(node::host_name);
    // Without the node's stored client certificate a token is the only way in, so a missing
    // token is what the agent says first, before reading any other file.
    let stored = skiff_node::agent::clientcert::stored(&tlsbootstrap::pki(data_dir), &name);
    let token = match stored {
        Some(_) => None,
        None => Some(agent_token(args.token_file.as_deref())?),
    };
    let ca = std::fs::read_to_string(&args.ca_file)
        .with_context(|| format!("reading {}", args.ca_file.display()))?;
    let servers = Arc::new(skiff_node::agent::failover::Servers::parse(&args.server)?);
    // The node's client certificate (TLS bootstrap), or the token it was given.
    let credential = tlsbootstrap::credential(&servers, &ca, &name, data_dir, || {
        token.map_or_else(|| agent_token(args.token_file.as_deref()), Ok)
    })
    .await?;
    let (client_certificate, renewal) = match credential {
        tlsbootstrap::Credential::Certificate(resolver, pair) => {
            (Some(resolver.clone()), Some((resolver, pair)))
        }
        tlsbootstrap::Credential::Token => (None, None),
    };
    let components = Components {
        data_dir: data_dir.clone(),
        kubeconfig: data_dir.join("kubeconfig"),
        api: None,
        client_certificate,
        servers: Some(servers),
    };
    if let Some((resolver, pair)) = renewal {
        // Renewed as the node itself, approved by `selfnodeclient`.
        let client = components
            .client("kubelet", skiff_auth::components::node(&name))
            .await?;
        tokio::spawn(skiff_node::agent::clientcert::keep_renewed(
            client,
            name.clone(),
            tlsbootstrap::pki(data_dir),
            pair,
            resolver,
        ));
    }
    let options = node::NodeOptions {
        name: Some(name),
        pod_cidr: Some(args.pod_cidr.clone()),
        lease_duration: std::time::Duration::from_secs(args.lease.node_lease_duration_seconds),
        seccomp_default: args.lease.seccomp_default,
        shutdown: shutdown_periods,
    };
    let (settled, node) = node::start(&components, &options).await?;
    let _ = settled.await;
    tracing::info!(server = %args.server, "skiff agent is ready");
    shutdown_signal().await;
    node.shutdown().await;
    Ok(())
}
