//! Debian's etcd (`etcd-server`) started by a test: one member on free loopback ports in a
//! temp dir, killed and removed when dropped. Shared by this crate's model test, the
//! server's end-to-end test and the benchmark, so there is one way to run it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A CA, a serving certificate for 127.0.0.1 and a client certificate, as PEM files in
/// `dir`: etcd's TLS for [`EtcdProcess::start_tls_or_skip`], and the client's files.
pub fn certificates(dir: &Path) -> (ServerTls, crate::TlsFiles) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf = |name: &str, usage: rcgen::ExtendedKeyUsagePurpose| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    };
    let ca_path = dir.join("ca.crt");
    std::fs::write(&ca_path, ca_pem).unwrap();
    let (server_cert, server_key) = leaf("server", rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf("client", rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    (
        ServerTls {
            ca: ca_path.clone(),
            cert: server_cert,
            key: server_key,
        },
        crate::TlsFiles {
            ca: Some(ca_path),
            cert: Some(client_cert),
            key: Some(client_key),
        },
    )
}

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
    binary: PathBuf,
    /// Its command line, to start it again on the same data and ports.
    args: Vec<String>,
    /// The plain-HTTP port of `/health`.
    metrics: u16,
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

    /// The member's process id (for a benchmark's CPU and memory accounting).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// etcd's Prometheus exposition (`/metrics` on its plain-HTTP metrics port), empty when
    /// it does not answer: what a benchmark reads etcd's watcher count from.
    pub fn metrics(&self) -> String {
        http_get(self.metrics, "/metrics").unwrap_or_default()
    }

    /// Kills the member (`kill -9`, as a crash), keeping its data and ports for
    /// [`EtcdProcess::restart`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the killed member again on the same data and ports and waits until it is
    /// healthy; panics with its log if it does not come back.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.binary, &self.args, self.dir.path())
            .unwrap_or_else(|e| panic!("restarting etcd: {e}"));
        if let Err(log) = self.wait_healthy() {
            panic!("etcd did not come back:\n{log}");
        }
    }

    /// Waits until `/health` says the member has a leader; on failure, its log.
    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            if healthy(self.metrics) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default())
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Several etcd members forming one cluster on loopback (plain HTTP), each killed when
/// dropped: what a highly available control plane stores its state in.
pub struct EtcdCluster {
    members: Vec<EtcdProcess>,
}

impl EtcdCluster {
    /// Starts `size` members and waits until each is healthy (the cluster has a leader);
    /// skips or fails as [`EtcdProcess::start_or_skip`] without the binary.
    pub fn start_or_skip(size: usize) -> Option<EtcdCluster> {
        let Some(binary) = find_binary() else {
            let why = "etcd is not installed (Debian: apt-get install etcd-server)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why}; CI must run this test");
            }
            eprintln!("skipping: {why}");
            return None;
        };
        let ports: Vec<(u16, u16, u16)> = (0..size)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer, _))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (i, (client, peer, metrics)) in ports.into_iter().enumerate() {
            let dir = tempfile::tempdir().expect("temp dir");
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let args = vec![
                format!("--name=m{i}"),
                format!("--data-dir={}", dir.path().join("data").display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster={initial}"),
                "--initial-cluster-state=new".to_owned(),
                "--initial-cluster-token=skiff-test".to_owned(),
                format!("--listen-metrics-urls=http://127.0.0.1:{metrics}"),
            ];
            let child = spawn(&binary, &args, dir.path())
                .unwrap_or_else(|e| panic!("starting etcd member {i}: {e}"));
            members.push(EtcdProcess {
                child,
                endpoint: client_url,
                dir,
                binary: binary.clone(),
                args,
                metrics,
            });
        }
        // Members elect a leader only once a quorum of them runs, so wait after starting all.
        for member in &mut members {
            if let Err(log) = member.wait_healthy() {
                panic!("etcd member did not become healthy:\n{log}");
            }
        }
        Some(EtcdCluster { members })
    }

    /// Every member's client URL, comma-separated, as `--datastore-endpoint` takes them.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Member `i`, to kill and restart.
    pub fn member(&mut self, i: usize) -> &mut EtcdProcess {
        &mut self.members[i]
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
    let mut args = Vec::new();
    if let Some(tls) = tls {
        args.extend([
            format!("--cert-file={}", tls.cert.display()),
            format!("--key-file={}", tls.key.display()),
            format!("--trusted-ca-file={}", tls.ca.display()),
            "--client-cert-auth".to_owned(),
        ]);
    }
    args.extend([
        "--name=test".to_owned(),
        format!("--data-dir={}", dir.path().join("data").display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=test={peer_url}"),
        // Plain HTTP `/health` whatever the client URLs speak, for the wait below.
        format!("--listen-metrics-urls=http://127.0.0.1:{metrics}"),
    ]);
    let child = spawn(binary, &args, dir.path())?;
    let mut etcd = EtcdProcess {
        child,
        endpoint: client_url,
        dir,
        binary: binary.to_owned(),
        args,
        metrics,
    };
    etcd.wait_healthy()?;
    Ok(etcd)
}

/// Runs etcd with `args`, its output appended to `dir/etcd.log`.
fn spawn(binary: &Path, args: &[String], dir: &Path) -> Result<Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("etcd.log"))
        .map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("running {}: {e}", binary.display()))
}

/// Whether etcd's `/health` on `port` says it is healthy (it has a leader).
fn healthy(port: u16) -> bool {
    http_get(port, "/health").is_some_and(|answer| answer.contains("\"health\":\"true\""))
}

/// The answer (head and body) to an HTTP/1.0 `GET path` on a loopback port.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    Some(answer)
}
