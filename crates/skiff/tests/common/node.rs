//! Test harness for the node agent: a `skiff server` in a network namespace of its own
//! (so its bridge, pod network and ports never meet another test's), driven by kubectl in
//! the same namespace; everything it made is removed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Issue 13's failover check, shared with the `node-failover` bench.
#[path = "../../../../bench/src/failover.rs"]
pub mod failover;

/// Why these tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (containers, network namespaces)".into());
    }
    for tool in ["runc", "kubectl", "nsenter", "ip"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!("needs {tool}"));
        }
    }
    if !Path::new(skiff_node::testing::HOST_BUSYBOX).exists() {
        return Some("needs busybox-static".into());
    }
    None
}

/// Whether this host can run the node tests. When it cannot, prints why, for the test to
/// return; under `CI` a missing prerequisite fails the test instead.
pub fn can_run() -> bool {
    let Some(why) = skip_reason() else {
        return true;
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "CI cannot run this test: {why}"
    );
    eprintln!("skipped: {why}");
    false
}

/// Returns a [`NodeCluster`] or prints why the test is skipped and returns.
#[macro_export]
macro_rules! node_cluster_or_skip {
    () => {
        match node::skip_reason() {
            Some(why) => {
                eprintln!("skipped: {why}");
                return;
            }
            None => node::NodeCluster::start(),
        }
    };
}

/// The node's address inside the test network namespace.
pub const NODE_IP: &str = "192.168.254.1";

/// A server with a node, in its own network namespace.
pub struct NodeCluster {
    pub dir: tempfile::TempDir,
    pub netns: String,
    cgroup_parent: String,
    child: Option<Child>,
    /// Server stderr lines, for failure messages.
    pub log: Arc<Mutex<Vec<String>>>,
    pub ready_after: Duration,
    /// The API's listen address (`--listen`).
    listen: String,
    /// More `skiff server` flags, given at every boot.
    server_args: Vec<String>,
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run command")
}

/// Brings up `netns` as a host's network: loopback, and a host interface with `addresses`
/// and a default route, as a real node has (the node registers its address; NodePort and
/// LoadBalancer Services answer on it). The interface is one end of a veth pair whose
/// other end is in the same namespace, so nothing sent its way ever leaves the namespace.
pub fn host_interface(netns: &str, addresses: &[&str]) {
    let mut steps = vec![
        vec!["link", "set", "lo", "up"],
        vec![
            "link",
            "add",
            "host0",
            "type",
            "veth",
            "peer",
            "name",
            "host0-peer",
        ],
        vec!["link", "set", "host0-peer", "up"],
    ];
    steps.extend(
        addresses
            .iter()
            .map(|a| vec!["addr", "add", a, "dev", "host0"]),
    );
    steps.push(vec!["link", "set", "host0", "up"]);
    steps.push(vec!["route", "add", "default", "dev", "host0"]);
    for args in steps {
        let out = run(Command::new("ip").args(["-n", netns]).args(&args));
        assert!(
            out.status.success(),
            "ip -n {netns} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl NodeCluster {
    pub fn start() -> NodeCluster {
        Self::start_listening("127.0.0.1:0")
    }

    /// A cluster whose API listens on `listen` (`0.0.0.0:0` for agents in other namespaces).
    /// A cluster whose server gets `args` besides the harness's own flags.
    pub fn start_with_args(args: &[&str]) -> NodeCluster {
        Self::start_inner("127.0.0.1:0", args)
    }

    pub fn start_listening(listen: &str) -> NodeCluster {
        Self::start_inner(listen, &[])
    }

    fn start_inner(listen: &str, server_args: &[&str]) -> NodeCluster {
        let suffix = skiff_node::unique_suffix();
        let netns = format!("skiff-test-{suffix}");
        assert!(run(Command::new("ip").args(["netns", "add", &netns]))
            .status
            .success());
        host_interface(&netns, &["192.168.254.1/24"]);
        let mut c = NodeCluster {
            dir: tempfile::tempdir().expect("temp dir"),
            netns,
            cgroup_parent: format!("skiff-test-{suffix}"),
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
            ready_after: Duration::ZERO,
            listen: listen.into(),
            server_args: server_args.iter().map(|a| a.to_string()).collect(),
        };
        c.boot();
        c
    }

    fn netns_path(&self) -> String {
        format!("--net=/run/netns/{}", self.netns)
    }

    /// Starts (or restarts) the server and waits for `skiff is ready`.
    pub fn boot(&mut self) {
        let started = Instant::now();
        let mut cmd = Command::new("nsenter");
        cmd.arg(self.netns_path())
            .arg(env!("CARGO_BIN_EXE_skiff"))
            .args(["server", "--listen", &self.listen, "--data-dir"])
            .arg(self.dir.path())
            .args(&self.server_args)
            .env("SKIFF_CGROUP_PARENT", &self.cgroup_parent)
            .env_remove("SKIFF_NODE");
        self.child = Some(spawn_until(cmd, "skiff is ready", &self.log));
        self.ready_after = started.elapsed();
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// `kill -9` of the server (containers keep running under their shims).
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM to the server (it keeps running until it exits by itself: [`Self::wait_exit`]).
    pub fn sigterm(&self) {
        let child = self.child.as_ref().expect("the server runs");
        // nsenter execs the server (no PID namespace), so this is the server's pid.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }

    /// The server's exit status once it exits; `None` if it still runs after `timeout`
    /// (it is then killed).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        wait_child_exit(&mut self.child, timeout)
    }

    /// The server's pid (nsenter execs it: no PID namespace of its own).
    pub fn server_pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A command run inside the cluster's network namespace.
    pub fn in_netns(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(self.netns_path()).arg(program);
        cmd
    }

    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.in_netns("kubectl");
        cmd.args(args).env("KUBECONFIG", self.kubeconfig());
        cmd
    }

    pub fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let input = child.stdin.take().expect("piped stdin");
        if let Some(s) = stdin {
            let mut input = input;
            input.write_all(s.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        crate::common::succeeded(self.kubectl_output(args, None), args, || {
            format!("\nserver log:\n{}", self.log_text())
        })
    }

    pub fn kubectl_in(&self, args: &[&str], stdin: &str) -> String {
        crate::common::succeeded(self.kubectl_output(args, Some(stdin)), args, String::new)
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl(&all)).expect("kubectl -o json prints JSON")
    }

    /// Polls `f` every 100 ms until it gives a value; panics with the server log after
    /// `timeout`.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, f: impl Fn() -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\nserver log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The logs of `pod` once they contain `marker`.
    pub fn wait_logs(&self, pod: &str, marker: &str, timeout: Duration) -> String {
        self.wait_for(&format!("{marker:?} in the logs of {pod}"), timeout, || {
            let out = self.kubectl_output(&["logs", pod], None);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains(marker).then_some(text)
        })
    }

    /// The logs of `pod` in `namespace` once they contain `marker`.
    pub fn wait_logs_in(
        &self,
        namespace: &str,
        pod: &str,
        marker: &str,
        timeout: Duration,
    ) -> String {
        self.wait_for(
            &format!("{marker:?} in the logs of {namespace}/{pod}"),
            timeout,
            || {
                let out = self.kubectl_output(&["logs", "-n", namespace, pod], None);
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.contains(marker).then_some(text)
            },
        )
    }

    /// Waits for the node to register (in the background after start-up) and its Lease,
    /// and returns its name.
    pub fn node_name(&self) -> String {
        self.wait_for("the node to register", Duration::from_secs(10), || {
            let nodes = self.json(&["get", "nodes"]);
            let name = nodes["items"][0]["metadata"]["name"].as_str()?.to_string();
            let leases = self.kubectl(&["get", "leases", "-n", "kube-node-lease", "-o", "name"]);
            leases.contains(&name).then_some(name)
        })
    }

    /// Polls `get pod NAME -o json` until `f` holds; panics with the last pod and the
    /// server log after `timeout`.
    pub fn wait_pod(
        &self,
        name: &str,
        timeout: Duration,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.kubectl_output(&["get", "pod", name, "-o", "json"], None);
            let pod: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
            if f(&pod) {
                return pod;
            }
            if Instant::now() > deadline {
                panic!(
                    "pod {name} never matched: {pod:#}\nserver log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `skiff image load` of a busybox test image named `name`.
    pub fn load_busybox(&self, name: &str) -> String {
        let archive = skiff_node::testing::busybox_oci_archive(name).expect("busybox archive");
        self.load_image(&archive)
    }

    /// `skiff image load` of an image archive; returns what the command printed.
    pub fn load_image(&self, archive: &[u8]) -> String {
        load_image_into(self.dir.path(), archive)
    }

    /// `skiff image load` of the busybox test image plus the host's dynamically linked
    /// `getent` and its glibc: a name resolver that behaves like any application's
    /// (search path, ndots), which busybox's static applets are not.
    pub fn load_busybox_with_getent(&self, name: &str) {
        use skiff_node::testing::{busybox_layer, oci_archive, LayerBuilder, TestImageConfig};
        let read = |p: &str| std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let extra = LayerBuilder::new()
            .dir("usr", 0o755)
            .dir("usr/bin", 0o755)
            .dir("lib", 0o755)
            .dir("lib/x86_64-linux-gnu", 0o755)
            .dir("lib64", 0o755)
            .file("usr/bin/getent", 0o755, &read("/usr/bin/getent"))
            .file(
                "lib/x86_64-linux-gnu/libc.so.6",
                0o755,
                &read("/lib/x86_64-linux-gnu/libc.so.6"),
            )
            .file(
                "lib64/ld-linux-x86-64.so.2",
                0o755,
                &read("/lib64/ld-linux-x86-64.so.2"),
            )
            .file("etc/nsswitch.conf", 0o644, b"hosts: files dns\n")
            .finish();
        let cfg = TestImageConfig {
            cmd: vec!["sh".into()],
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            ..Default::default()
        };
        let archive = oci_archive(
            name,
            &[busybox_layer().expect("busybox layer"), extra],
            &cfg,
        );
        self.load_image(&archive);
    }

    /// Ids of the containers on disk.
    pub fn container_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.dir.path().join("runtime/containers"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Host pid of a running container's process.
    pub fn container_pid(&self, id: &str) -> u32 {
        let p = self
            .dir
            .path()
            .join("runtime/containers")
            .join(id)
            .join("init.pid");
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .parse()
            .expect("pid")
    }

    fn cleanup(&mut self) {
        self.crash();
        remove_node_state(self.dir.path(), &self.cgroup_parent, "10.244.0.0/24");
        run(Command::new("ip").args(["netns", "del", &self.netns]));
    }
}

/// The exit status of `child` (taken) once it exits; `None` if it still runs after
/// `timeout` (it is then killed).
fn wait_child_exit(
    child: &mut Option<Child>,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let mut child = child.take()?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Starts `cmd` with its stderr collected into `log`, and waits (30 s at most) for a line
/// containing `ready`.
pub fn spawn_until(mut cmd: Command, ready: &str, log: &Arc<Mutex<Vec<String>>>) -> Child {
    let mut child = cmd
        .env(
            "RUST_LOG",
            std::env::var("SKIFF_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn skiff");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let (log, ready) = (log.clone(), ready.to_string());
    let lines = log.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&ready) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
            lines.lock().unwrap().push(line);
        }
    });
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("skiff not ready:\n{}", log.lock().unwrap().join("\n"));
    }
    child
}

/// `skiff image load` of an image archive into the node whose data dir is `dir`.
pub fn load_image_into(dir: &Path, archive: &[u8]) -> String {
    let path = dir.join("image.tar");
    std::fs::write(&path, archive).expect("write archive");
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["image", "load"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("skiff image load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes what a node left on the host (containers, shims, mounts, pod network
/// namespaces, cgroups) with `skiff killall`'s own code; the bridge and nftables tables go
/// with the test's network namespace.
fn remove_node_state(dir: &Path, cgroup_parent: &str, pod_cidr: &str) {
    use skiff_node::cleanup::{remove_pods, NodeSettings};
    let settings = NodeSettings::load(dir).unwrap_or(NodeSettings {
        cgroup_parent: cgroup_parent.into(),
        pod_cidr: pod_cidr.into(),
        ..Default::default()
    });
    remove_pods(dir, &settings);
}

/// A second node: `skiff agent` in a network namespace of its own, joined to a
/// [`NodeCluster`] over a link (the cluster's `host0`, whose peer moves here) so both nodes
/// share one network, as two hosts on a LAN.
pub struct AgentNode {
    pub dir: tempfile::TempDir,
    pub netns: String,
    cgroup_parent: String,
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
    pod_cidr: String,
    /// The agent's command, to start it again after [`AgentNode::power_off`].
    command: Vec<std::ffi::OsString>,
    token: String,
}

/// The agent node's address on the shared link.
pub const AGENT_IP: &str = "192.168.254.2";

impl AgentNode {
    /// Starts `skiff agent` as node `name` with pod CIDR `pod_cidr`, joined to `server`
    /// (which must listen beyond loopback: [`NodeCluster::start_listening`]) with the
    /// server's admin token.
    pub fn join(server: &NodeCluster, name: &str, pod_cidr: &str) -> AgentNode {
        let pki = server.dir.path().join("pki");
        let token = std::fs::read_to_string(pki.join("admin.token")).expect("token");
        AgentNode::join_with_token(server, name, pod_cidr, &token)
    }

    /// [`AgentNode::join`] with `token`: a bootstrap token (`skiff token create`) makes the
    /// agent ask for its own client certificate (TLS bootstrap).
    pub fn join_with_token(
        server: &NodeCluster,
        name: &str,
        pod_cidr: &str,
        token: &str,
    ) -> AgentNode {
        AgentNode::join_inner(server, name, pod_cidr, token, &[])
    }

    /// [`AgentNode::join`] with more `skiff agent` flags (`--shutdown-grace-period`).
    pub fn join_with_args(
        server: &NodeCluster,
        name: &str,
        pod_cidr: &str,
        args: &[&str],
    ) -> AgentNode {
        let pki = server.dir.path().join("pki");
        let token = std::fs::read_to_string(pki.join("admin.token")).expect("token");
        AgentNode::join_inner(server, name, pod_cidr, &token, args)
    }

    fn join_inner(
        server: &NodeCluster,
        name: &str,
        pod_cidr: &str,
        token: &str,
        args: &[&str],
    ) -> AgentNode {
        let suffix = skiff_node::unique_suffix();
        let netns = format!("skiff-agent-{suffix}");
        assert!(run(Command::new("ip").args(["netns", "add", &netns]))
            .status
            .success());
        let mut node = AgentNode {
            dir: tempfile::tempdir().expect("temp dir"),
            netns: netns.clone(),
            cgroup_parent: format!("skiff-agent-{suffix}"),
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
            pod_cidr: pod_cidr.into(),
            command: Vec::new(),
            token: String::new(),
        };
        let ip_n = |args: &[&str]| {
            let out = run(Command::new("ip").args(["-n", &netns]).args(args));
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        assert!(run(Command::new("ip").args([
            "-n",
            &server.netns,
            "link",
            "set",
            "host0-peer",
            "netns",
            &netns
        ]))
        .status
        .success());
        ip_n(&["link", "set", "lo", "up"]);
        ip_n(&[
            "addr",
            "add",
            &format!("{AGENT_IP}/24"),
            "dev",
            "host0-peer",
        ]);
        ip_n(&["link", "set", "host0-peer", "up"]);
        ip_n(&["route", "add", "default", "via", NODE_IP]);
        let config = std::fs::read_to_string(server.kubeconfig()).expect("kubeconfig");
        let port = config
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: https://"))
            .and_then(|a| a.rsplit(':').next())
            .expect("server port in the kubeconfig")
            .to_string();
        let pki = server.dir.path().join("pki");
        let mut command: Vec<std::ffi::OsString> = vec![
            format!("--net=/run/netns/{netns}").into(),
            env!("CARGO_BIN_EXE_skiff").into(),
        ];
        command.extend(
            [
                "agent",
                "--server",
                &format!("https://{NODE_IP}:{port}"),
                "--name",
                name,
                "--pod-cidr",
                pod_cidr,
            ]
            .map(Into::into),
        );
        command.extend(["--ca-file".into(), pki.join("ca.crt").into()]);
        command.extend(["--data-dir".into(), node.dir.path().into()]);
        command.extend(args.iter().map(Into::into));
        node.command = command;
        node.token = token.trim().to_owned();
        node.start_agent();
        node
    }

    /// Starts `skiff agent` and waits until it says it is ready.
    fn start_agent(&mut self) {
        let mut cmd = Command::new("nsenter");
        cmd.args(&self.command)
            .env("SKIFF_TOKEN", &self.token)
            .env("SKIFF_CGROUP_PARENT", &self.cgroup_parent);
        self.child = Some(spawn_until(cmd, "skiff agent is ready", &self.log));
    }

    /// SIGTERM to the agent (it keeps running until it exits by itself:
    /// [`AgentNode::wait_exit`]).
    pub fn sigterm(&self) {
        let child = self.child.as_ref().expect("the agent runs");
        // nsenter execs the agent (no PID namespace), so this is the agent's pid.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }

    /// The agent's exit status once it exits; `None` if it still runs after `timeout`
    /// (it is then killed).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        wait_child_exit(&mut self.child, timeout)
    }

    /// A power loss: the agent, every container shim and every container are killed at
    /// once (SIGKILL, nothing gets to clean up) and the node's link goes down.
    pub fn power_off(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        failover::power_off(self.dir.path(), &self.netns, "host0-peer")
            .unwrap_or_else(|e| panic!("power off: {e}"));
    }

    /// Power back: the link comes up and the agent starts again on the same data dir.
    pub fn power_on(&mut self) {
        let out =
            run(Command::new("ip").args(["-n", &self.netns, "link", "set", "host0-peer", "up"]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(Command::new("ip").args([
            "-n",
            &self.netns,
            "route",
            "replace",
            "default",
            "via",
            NODE_IP,
        ]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.start_agent();
    }

    /// The containers on this node's disk with their pod uid and whether they run.
    pub fn containers(&self) -> Vec<(String, String, bool)> {
        use skiff_node::runtime::{ContainerState, RuncConfig, RuncRuntime, Runtime};
        let mut cfg = RuncConfig::new(self.dir.path().join("runtime"), vec!["true".into()]);
        cfg.cgroup_parent = self.cgroup_parent.clone();
        let Ok(rt) = RuncRuntime::new(cfg) else {
            return Vec::new();
        };
        rt.list()
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let uid = c
                    .spec
                    .as_ref()
                    .and_then(|s| s.labels.get("io.kubernetes.pod.uid").cloned())
                    .unwrap_or_default();
                (c.id, uid, c.state == ContainerState::Running)
            })
            .collect()
    }

    /// `skiff image load` into this node's image store.
    pub fn load_busybox(&self, name: &str) {
        let archive = skiff_node::testing::busybox_oci_archive(name).expect("busybox archive");
        load_image_into(self.dir.path(), &archive);
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for AgentNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_node_state(self.dir.path(), &self.cgroup_parent, &self.pod_cidr);
        run(Command::new("ip").args(["netns", "del", &self.netns]));
    }
}

impl Drop for NodeCluster {
    fn drop(&mut self) {
        self.cleanup();
    }
}

impl NodeCluster {
    /// `GET http://{ip}:{port}{path}` from inside the cluster's network namespace; the
    /// response body, or `None` if nothing answered.
    pub fn http_get(&self, ip: &str, port: u16, path: &str) -> Option<String> {
        let netns = self.netns.clone();
        let (ip, path) = (ip.to_string(), path.to_string());
        std::thread::spawn(move || Self::http_getter(&netns)(&ip, port, &path))
            .join()
            .ok()
            .flatten()
    }

    /// Moves the calling thread into the cluster's network namespace (for good: call it on
    /// a thread of its own) and returns a plain HTTP/1.0 GET that answers the body, or
    /// `None` if nothing answered within 2 s.
    pub fn http_getter(netns: &str) -> impl Fn(&str, u16, &str) -> Option<String> {
        let get = Self::http_getter_why(netns);
        move |ip: &str, port: u16, path: &str| get(ip, port, path).ok()
    }

    /// [`NodeCluster::http_getter`] that says why a request failed (which step, and the
    /// OS error: refused, reset, timed out), so a rare failure under load can be told apart.
    pub fn http_getter_why(netns: &str) -> impl Fn(&str, u16, &str) -> Result<String, String> {
        use std::os::fd::AsRawFd;
        let entered = std::fs::File::open(format!("/run/netns/{netns}"))
            // SAFETY: setns on the calling thread only; the fd is valid while f lives.
            .map(|f| unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } == 0)
            .unwrap_or(false);
        move |ip: &str, port: u16, path: &str| {
            if !entered {
                return Err("could not enter the network namespace".into());
            }
            failover::http_get(ip, port, path)
        }
    }
}

/// A load generator on the node: GETs `ip:port` back to back from a thread of its own
/// until finished.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl Load {
    pub fn start(c: &NodeCluster, ip: &str, port: u16) -> Load {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (netns, ip, s) = (c.netns.clone(), ip.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let get = NodeCluster::http_getter_why(&netns);
            let (mut total, mut failures) = (0, Vec::new());
            while !s.load(Ordering::Relaxed) {
                let started = Instant::now();
                if let Err(why) = get(&ip, port, "/") {
                    failures.push(format!(
                        "at {} after {:?}: {why}",
                        k8s_openapi::jiff::Timestamp::now(),
                        started.elapsed()
                    ));
                }
                total += 1;
            }
            (total, failures)
        });
        Load { stop, thread }
    }

    /// Stops the load; (requests made, failures with when they started).
    pub fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("load thread")
    }
}

/// A test-support binary built next to this test's target directory
/// (`target/<profile>/deps/<test>-<hash>` -> `target/<profile>/<name>`).
pub fn target_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .ok_or("no target directory")?;
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "needs {} (cargo build -p test-webhook)",
            bin.display()
        ))
    }
}

/// A node and the test-support binary `name`, or `None` after saying why the test is
/// skipped; under `CI=true` a missing prerequisite fails the test instead.
pub fn node_and_binary_or_skip(name: &str) -> Option<PathBuf> {
    let why = match skip_reason() {
        Some(why) => why,
        None => match target_binary(name) {
            Ok(bin) => return Some(bin),
            Err(why) => why,
        },
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("prerequisite missing under CI=true: {why}");
    }
    eprintln!("skipped: {why}");
    None
}

/// An image named `image` with `bin` as its entrypoint (`/<file name>`), with the shared
/// libraries `ldd` says it needs, on the busybox layer.
pub fn binary_image(bin: &Path, image: &str) -> Vec<u8> {
    use skiff_node::testing::{busybox_layer, oci_archive, LayerBuilder, TestImageConfig};
    let out = Command::new("ldd").arg(bin).output().expect("run ldd");
    assert!(out.status.success(), "ldd {}", bin.display());
    let libs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-... (0x...)"
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| path.to_string())
        })
        .collect();
    let mut dirs = std::collections::BTreeSet::new();
    for lib in &libs {
        let mut dir = Path::new(lib.trim_start_matches('/')).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            dir = d.parent();
        }
    }
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut layer = LayerBuilder::new();
    // Parents sort before their children.
    for dir in &dirs {
        layer = layer.dir(dir, 0o755);
    }
    for lib in &libs {
        layer = layer.file(lib.trim_start_matches('/'), 0o755, &read(Path::new(lib)));
    }
    let file = bin
        .file_name()
        .expect("a binary's file name")
        .to_string_lossy()
        .into_owned();
    layer = layer.file(&file, 0o755, &read(bin));
    let cfg = TestImageConfig {
        entrypoint: vec![format!("/{file}")],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        ..Default::default()
    };
    oci_archive(
        image,
        &[busybox_layer().expect("busybox layer"), layer.finish()],
        &cfg,
    )
}
