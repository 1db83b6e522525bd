//! A real node for the benchmarks that need one: a `skiff server` (release binary) with its
//! node agent, service proxy and DNS, in a network namespace of its own, and everything it
//! made (server, runc containers, cgroup parent, pod networks, namespace) removed on drop.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The node's address inside the benchmark's network namespace.
pub const NODE_IP: [u8; 4] = [192, 168, 254, 1];

/// Checks what a node benchmark needs before it changes anything: root, the host `tools`
/// on `PATH`, and a skiff binary (`skiff`, default: next to this executable). Returns the
/// skiff binary. `bench` names the tool in the messages.
pub fn preflight(bench: &str, tools: &[&str], skiff: Option<&Path>) -> Result<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "{bench} must run as root: it creates a network namespace, containers, cgroups \
             and nftables rules (try: sudo {})",
            std::env::args().next().unwrap_or_default()
        );
    }
    for tool in ["runc", "ip"].iter().chain(tools) {
        if !Command::new("which").arg(tool).output()?.status.success() {
            bail!("{bench} needs `{tool}` on PATH");
        }
    }
    let skiff = match skiff {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?.with_file_name("skiff"),
    };
    if !skiff.is_file() {
        bail!(
            "no skiff binary at {} (build it: cargo build --release -p skiff, or pass --skiff)",
            skiff.display()
        );
    }
    Ok(skiff)
}

/// Runs `work` on a new tokio runtime until it ends or Ctrl-C; errors carry the tail of
/// `node`'s server log (all of it saved to a file). The runtime is gone before this
/// returns, so before `node` drops.
pub fn block_on<T>(node: &Node, work: impl Future<Output = Result<T>>) -> Result<T> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        }
    })
    .map_err(|e| {
        let path = std::env::temp_dir().join(format!("{}.log", node.netns));
        let saved = match std::fs::write(&path, node.log().join("\n")) {
            Ok(()) => format!("whole log in {}", path.display()),
            Err(e) => format!("log not saved: {e}"),
        };
        e.context(format!("server log (tail; {saved}):\n{}", node.log_tail()))
    })
}

/// A `skiff server` with its node in a network namespace of its own; the calling thread
/// (and every thread it starts afterwards) is moved into that namespace. Everything it made
/// is removed on drop.
pub struct Node {
    dir: tempfile::TempDir,
    skiff: PathBuf,
    netns: String,
    cgroup_parent: String,
    child: Option<Child>,
    /// Server stderr lines, for error messages.
    log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Starts a server with its node and waits until it says it is ready.
    pub fn start(skiff: &Path) -> Result<Node> {
        Node::start_with_env(skiff, &[])
    }

    /// As [`Node::start`], with extra environment for the server (`SKIFF_NODE=off`: none of
    /// node agent, proxy and DNS).
    pub fn start_with_env(skiff: &Path, env: &[(&str, &str)]) -> Result<Node> {
        Node::start_inner(skiff, env, "127.0.0.1:0")
    }

    /// As [`Node::start`], the API listening on `listen` (`0.0.0.0:0` for an [`Agent`]
    /// in a namespace of its own to reach it).
    pub fn start_listening(skiff: &Path, listen: &str) -> Result<Node> {
        Node::start_inner(skiff, &[], listen)
    }

    fn start_inner(skiff: &Path, env: &[(&str, &str)], listen: &str) -> Result<Node> {
        let suffix = skiff_node::unique_suffix();
        let mut node = Node {
            dir: tempfile::tempdir().context("temp dir")?,
            skiff: skiff.to_path_buf(),
            netns: format!("skiff-bench-{suffix}"),
            cgroup_parent: format!("skiff-bench-{suffix}"),
            child: None,
            log: Arc::default(),
        };
        run(Command::new("ip").args(["netns", "add", &node.netns]))?;
        // lo, and a host interface with an address and a default route as a real node
        // has: one end of a veth pair whose other end is in the same namespace.
        let node_cidr = format!("{}/24", IpAddr::from(NODE_IP));
        for args in [
            &["link", "set", "lo", "up"][..],
            &[
                "link",
                "add",
                "host0",
                "type",
                "veth",
                "peer",
                "name",
                "host0-peer",
            ],
            &["addr", "add", &node_cidr, "dev", "host0"],
            &["link", "set", "host0-peer", "up"],
            &["link", "set", "host0", "up"],
            &["route", "add", "default", "dev", "host0"],
        ] {
            run(Command::new("ip").args(["-n", &node.netns]).args(args))?;
        }
        let ns = std::fs::File::open(format!("/run/netns/{}", node.netns))?;
        // SAFETY: setns on the calling thread with a valid namespace fd.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        node.boot(env, listen)?;
        Ok(node)
    }

    /// Starts the server and waits for `skiff is ready`.
    fn boot(&mut self, env: &[(&str, &str)], listen: &str) -> Result<()> {
        let mut child = Command::new(&self.skiff)
            .args(["server", "--listen", listen, "--data-dir"])
            .arg(self.dir.path())
            .env(
                "RUST_LOG",
                std::env::var("SKIFF_LOG").unwrap_or("info".into()),
            )
            .env("SKIFF_CGROUP_PARENT", &self.cgroup_parent)
            .env_remove("SKIFF_NODE")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {}", self.skiff.display()))?;
        let ready = collect_log(&mut child, "skiff is ready", &self.log)?;
        self.child = Some(child);
        if ready.recv_timeout(Duration::from_secs(30)).is_err() {
            bail!("server not ready within 30 s:\n{}", self.log_tail());
        }
        Ok(())
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's data dir (a temporary directory).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The name of the node's network namespace.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The server log so far (stderr lines).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The last 40 lines of the server log.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        log[log.len().saturating_sub(40)..].join("\n")
    }

    /// Loads an OCI archive into the node's image store (`skiff image load`).
    pub fn load_image(&self, archive: &[u8]) -> Result<()> {
        load_image_into(&self.skiff, self.dir.path(), archive)
    }

    /// A kube-rs client of the server, from the kubeconfig it wrote.
    pub async fn client(&self) -> Result<kube::Client> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kc = kube::config::Kubeconfig::read_from(self.dir.path().join("kubeconfig"))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// The node's runc containers (any state), as `id (state)`; an error when the
    /// runtime cannot list them right now (a container removed while listing).
    pub fn containers(&self) -> Result<Vec<String>> {
        use skiff_node::runtime::Runtime;
        let rt = self.runtime().context("open the node's runtime")?;
        Ok(rt
            .list()?
            .into_iter()
            .map(|c| format!("{} ({:?})", c.id, c.state))
            .collect())
    }

    /// Stops and removes the node's containers behind the agent's back; returns how many.
    pub fn remove_containers(&self) -> usize {
        use skiff_node::runtime::Runtime;
        let Some(rt) = self.runtime() else { return 0 };
        let listed = rt.list().unwrap_or_default();
        listed.iter().filter(|c| rt.delete(&c.id).is_ok()).count()
    }

    /// The node's runtime, opened over the server's state to list and remove containers.
    fn runtime(&self) -> Option<skiff_node::runtime::RuncRuntime> {
        use skiff_node::runtime::{RuncConfig, RuncRuntime};
        let mut cfg = RuncConfig::new(self.dir.path().join("runtime"), vec!["true".into()]);
        cfg.cgroup_parent = self.cgroup_parent.clone();
        RuncRuntime::new(cfg).ok()
    }

    fn cleanup(&mut self) {
        use skiff_node::network::{Ipv4Cidr, Network, NetworkConfig};
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.remove_containers();
        if let Some(rt) = self.runtime() {
            rt.remove_cgroup_parent();
        }
        if let Ok(cidr) = Ipv4Cidr::parse("10.244.0.0/24") {
            let net = Network::new(NetworkConfig {
                bridge: "skiff0".into(),
                pod_cidr: cidr,
                state_dir: self.dir.path().join("network"),
                netns_prefix: "skiff-".into(),
            });
            if let Ok(net) = net {
                for n in net.list().unwrap_or_default() {
                    let _ = net.teardown(&n.sandbox_id);
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Collects `child`'s stderr lines into `log` on a thread of its own; the receiver hears
/// once a line contains `ready`.
fn collect_log(
    child: &mut Child,
    ready: &str,
    log: &Arc<Mutex<Vec<String>>>,
) -> Result<std::sync::mpsc::Receiver<()>> {
    let stderr = child.stderr.take().context("piped stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let (log, ready) = (log.clone(), ready.to_string());
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&ready) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
            if let Ok(mut log) = log.lock() {
                log.push(line);
            }
        }
    });
    Ok(rx)
}

/// `skiff image load` of an OCI archive into the node whose data dir is `dir`.
fn load_image_into(skiff: &Path, dir: &Path, archive: &[u8]) -> Result<()> {
    let path = dir.join("image.tar");
    std::fs::write(&path, archive)?;
    run(Command::new(skiff)
        .args(["image", "load"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir))
}

/// The agent node's address on the link it shares with the [`Node`].
pub const AGENT_IP: [u8; 4] = [192, 168, 254, 2];

/// A second node: `skiff agent` in a network namespace of its own, joined to a [`Node`]
/// (started with [`Node::start_listening`] beyond loopback) over the node's link (the
/// peer of its `host0` moves here), as two hosts on a LAN; everything it made is removed
/// on drop.
pub struct Agent {
    dir: tempfile::TempDir,
    skiff: PathBuf,
    netns: String,
    cgroup_parent: String,
    pod_cidr: String,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    /// Starts `skiff agent` as node `name` with pod CIDR `pod_cidr`, with `node`'s admin
    /// token (from the environment, never the command line), and waits until it is ready.
    pub fn join(node: &Node, name: &str, pod_cidr: &str) -> Result<Agent> {
        let suffix = skiff_node::unique_suffix();
        let mut agent = Agent {
            dir: tempfile::tempdir().context("temp dir")?,
            skiff: node.skiff.clone(),
            netns: format!("skiff-bench-agent-{suffix}"),
            cgroup_parent: format!("skiff-bench-agent-{suffix}"),
            pod_cidr: pod_cidr.into(),
            child: None,
            log: Arc::default(),
        };
        run(Command::new("ip").args(["netns", "add", &agent.netns]))?;
        run(Command::new("ip").args([
            "-n",
            &node.netns,
            "link",
            "set",
            "host0-peer",
            "netns",
            &agent.netns,
        ]))?;
        let agent_cidr = format!("{}/24", IpAddr::from(AGENT_IP));
        let node_ip = IpAddr::from(NODE_IP).to_string();
        for args in [
            &["link", "set", "lo", "up"][..],
            &["addr", "add", &agent_cidr, "dev", "host0-peer"],
            &["link", "set", "host0-peer", "up"],
            &["route", "add", "default", "via", &node_ip],
        ] {
            run(Command::new("ip").args(["-n", &agent.netns]).args(args))?;
        }
        let config = std::fs::read_to_string(node.data_dir().join("kubeconfig"))?;
        let port = config
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: https://"))
            .and_then(|a| a.rsplit(':').next())
            .context("the server's port in its kubeconfig")?
            .to_string();
        let pki = node.data_dir().join("pki");
        let token = std::fs::read_to_string(pki.join("admin.token"))?;
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", agent.netns))
            .arg(&agent.skiff)
            .args(["agent", "--server", &format!("https://{node_ip}:{port}")])
            .args(["--name", name, "--pod-cidr", pod_cidr, "--ca-file"])
            .arg(pki.join("ca.crt"))
            .arg("--data-dir")
            .arg(agent.dir.path())
            .env("SKIFF_TOKEN", token.trim())
            .env("SKIFF_CGROUP_PARENT", &agent.cgroup_parent)
            .env(
                "RUST_LOG",
                std::env::var("SKIFF_LOG").unwrap_or("info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn skiff agent")?;
        let ready = collect_log(&mut child, "skiff agent is ready", &agent.log)?;
        agent.child = Some(child);
        if ready.recv_timeout(Duration::from_secs(30)).is_err() {
            bail!("agent not ready within 30 s:\n{}", agent.log_tail());
        }
        Ok(agent)
    }

    /// Loads an OCI archive into the agent's image store.
    pub fn load_image(&self, archive: &[u8]) -> Result<()> {
        load_image_into(&self.skiff, self.dir.path(), archive)
    }

    /// The last 40 lines of the agent's log.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        log[log.len().saturating_sub(40)..].join("\n")
    }

    /// A power loss (`crate::failover::power_off`): the agent, its shims and its
    /// containers SIGKILLed, its link down.
    pub fn power_off(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        crate::failover::power_off(self.dir.path(), &self.netns, "host0-peer")
            .map_err(anyhow::Error::msg)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        use skiff_node::cleanup::{remove_pods, NodeSettings};
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let settings = NodeSettings::load(self.dir.path()).unwrap_or(NodeSettings {
            cgroup_parent: self.cgroup_parent.clone(),
            pod_cidr: self.pod_cidr.clone(),
            ..Default::default()
        });
        remove_pods(self.dir.path(), &settings);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

/// Runs a host command; an error carries its stderr.
pub fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
