//! Test harness: a real `skiff server` in a temp dir, driven by the real `kubectl`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running server; killed (and its data dir removed) on drop.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub ready_after: Duration,
    /// More `skiff server` flags, for every boot.
    pub args: Vec<String>,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// A server started with more flags.
    pub fn start_with(args: &[&str]) -> Cluster {
        Cluster::start_in(tempfile::tempdir().expect("temp dir"), args)
    }

    /// A server with more flags on a data dir the test prepared (another server's
    /// certificates and keys in it, say).
    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Cluster {
        let mut cluster = Cluster {
            dir,
            child: None,
            ready_after: Duration::ZERO,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        cluster.boot();
        cluster
    }

    /// Starts (or restarts) the server on the same data dir and waits for `skiff is ready`.
    pub fn boot(&mut self) {
        let started = Instant::now();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
        cmd.arg("server");
        // A free port on loopback, unless the test said where to listen.
        if !self.args.iter().any(|a| a == "--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = cmd
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(&self.args)
            .env("RUST_LOG", "info")
            // These tests run without a node agent (pods stay unbound or bound to fake
            // nodes); tests/pods.rs runs real nodes in network namespaces of their own.
            .env("SKIFF_NODE", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn skiff server");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("skiff is ready") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("skiff server did not become ready");
        self.ready_after = started.elapsed();
        self.child = Some(child);
    }

    /// Starts `kubectl apply -f -` of `count` ConfigMaps `cm-0`, `cm-1`, …: a stream of
    /// creates for a test to crash the server in the middle of. Read what it acknowledged
    /// with [`acknowledged_creates`].
    pub fn apply_configmaps(&self, count: usize) -> Child {
        use std::io::Write;
        let mut docs = String::new();
        for i in 0..count {
            docs.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  i: \"{i}\"\n"
            ));
        }
        let mut apply = self
            .kubectl_cmd(&["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kubectl apply");
        // Dropped at the end of this statement: kubectl sees the end of its input.
        apply
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(docs.as_bytes())
            .expect("write manifests");
        apply
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as a service manager stops it; returns how the server exited.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server is running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(exit) = child.try_wait().expect("wait for server") {
                return exit;
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.args(args).env("KUBECONFIG", self.kubeconfig());
        cmd
    }

    pub fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.kubectl_cmd(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        } else {
            drop(child.stdin.take());
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl and returns stdout, panicking with stderr if it fails.
    pub fn kubectl(&self, args: &[&str]) -> String {
        succeeded(self.kubectl_output(args, None), args, String::new)
    }

    /// Runs kubectl with `stdin`, returning stdout.
    pub fn kubectl_in(&self, args: &[&str], stdin: &str) -> String {
        succeeded(self.kubectl_output(args, Some(stdin)), args, String::new)
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn kubectl_err(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl_output(args, stdin);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed but printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl(&all)).expect("kubectl -o json prints JSON")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.crash();
    }
}

/// The article's manifests, read from ../shared (tests may read them; the project does not
/// depend on them otherwise).
pub fn seed_manifest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/seed/manifests")
        .join(name)
}

/// The stdout of a kubectl run that must have succeeded; otherwise panics with its stderr
/// and `context()` (the server log, when the caller has one; built only on failure). Both
/// harnesses use it.
pub fn succeeded(
    out: std::process::Output,
    args: &[&str],
    context: impl FnOnce() -> String,
) -> String {
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        context()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The ConfigMap names `apply` (from [`Cluster::apply_configmaps`]) printed as created, once
/// it has ended (the server killed under it); asserts there is at least one, as a crash
/// before any create proves nothing.
pub fn acknowledged_creates(mut apply: Child) -> Vec<String> {
    use std::io::Read;
    let mut printed = String::new();
    apply
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut printed)
        .expect("kubectl output");
    let _ = apply.wait();
    let acknowledged: Vec<String> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("configmap/"))
        .filter_map(|l| l.strip_suffix(" created"))
        .map(String::from)
        .collect();
    assert!(
        !acknowledged.is_empty(),
        "nothing was created before the kill"
    );
    acknowledged
}
