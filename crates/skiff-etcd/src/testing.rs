//! Debian's etcd (`etcd-server`) started by a test: one member on free loopback ports in a
//! temp dir, killed and removed when dropped. Shared by this crate's model test, the
//! server's end-to-end test and the benchmark, so there is one way to run it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// PEM files of etcd's serving certificate, its key and the CA its clients must present
/// certificates from.
pub struct ServerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A running etcd member.
pub struct EtcdProcess {
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
}

impl EtcdProcess {
    /// Starts etcd (`$SKIFF_TEST_ETCD` or `etcd` on the PATH) and waits until it answers
    /// `/health`. Without the binary: under `CI=true` the test fails (CI installs
    /// `etcd-server`); elsewhere it says so and returns `None`, and the test skips.
    pub fn start_or_skip() -> Option<EtcdProcess> {
        EtcdProcess::start_with_or_skip(None)
    }

    /// [`EtcdProcess::start_or_skip`] serving clients over TLS only, asking them for a
    /// certificate signed by `tls.ca`: `https://127.0.0.1:<port>`.
    pub fn start_tls_or_skip(tls: &ServerTls) -> Option<EtcdProcess> {
        EtcdProcess::start_with_or_skip(Some(tls))
    }

    fn start_with_or_skip(tls: Option<&ServerTls>) -> Option<EtcdProcess> {
        let Some(binary) = find_binary() else {
            let why = "etcd is not installed (Debian: apt-get install etcd-server)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why}; CI must run this test");
            }
            eprintln!("skipping: {why}");
            return None;
        };
        let mut last = String::new();
        // A free port can be taken between choosing it and etcd binding it; try again then.
        for _ in 0..3 {
            match start(&binary, tls) {
                Ok(etcd) => return Some(etcd),
                Err(log) => last = log,
            }
        }
        panic!("etcd did not start:\n{last}");
    }

    /// `http(s)://127.0.0.1:<port>`, the client URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where etcd keeps its data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SKIFF_TEST_ETCD") {
        return Some(path.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}

/// Starts one member; on failure, its log.
fn start(binary: &Path, tls: Option<&ServerTls>) -> Result<EtcdProcess, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let client_url = format!("{scheme}://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log_path = dir.path().join("etcd.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut command = Command::new(binary);
    if let Some(tls) = tls {
        command
            .arg(format!("--cert-file={}", tls.cert.display()))
            .arg(format!("--key-file={}", tls.key.display()))
            .arg(format!("--trusted-ca-file={}", tls.ca.display()))
            .arg("--client-cert-auth");
    }
    let child = command
        .arg("--name=test")
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=test={peer_url}"))
        // Plain HTTP `/health` whatever the client URLs speak, for the wait below.
        .arg(format!("--listen-metrics-urls=http://127.0.0.1:{metrics}"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("running {}: {e}", binary.display()))?;
    let mut etcd = EtcdProcess {
        child,
        endpoint: client_url,
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = etcd.child.try_wait() {
            break;
        }
        if healthy(metrics) {
            return Ok(etcd);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    Err(log)
}

/// Whether etcd's `/health` on `port` says it is healthy (it has a leader).
fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}
