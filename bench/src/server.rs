//! A `skiff server` with no node (`SKIFF_NODE=off`), for the benchmarks whose nodes are
//! API objects only (as kwok's): started in a temporary data dir, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running server without a node agent; killed (and its data dir removed) on drop.
pub struct ApiServer {
    child: Child,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl ApiServer {
    /// Starts `binary` as `skiff server` and waits (30 s at most) for `skiff is ready`.
    /// Panics when it cannot: a benchmark without its server has nothing to measure.
    pub fn start(binary: impl AsRef<Path>) -> ApiServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(binary.as_ref())
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "warn,skiff=info")
            .env("SKIFF_NODE", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn skiff server");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps draining stderr after ready, so the server never blocks on a full pipe.
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
        rx.recv_timeout(Duration::from_secs(30))
            .expect("server ready");
        let kubeconfig = dir.path().join("kubeconfig");
        ApiServer {
            child,
            _dir: dir,
            kubeconfig,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A kube-rs client of the server, from the kubeconfig it wrote.
    pub async fn client(&self) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(config).expect("client")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
