//! Test fixtures: throwaway Postgres, Redis and NATS servers on free ports, and an HTTP helper.
#![allow(dead_code)]

pub mod suite;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use collector::http::{router, AppState};
use collector::metrics::Metrics;
use collector::store::{postgres::PgStore, sqlite::SqliteStore, Store};
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// MAX_BATCH_SIZE used by the endpoint suite, small so the limit is cheap to hit.
pub const MAX_BATCH: usize = 5;
/// MAX_BODY_BYTES used by the endpoint suite.
pub const MAX_BODY: usize = 16 * 1024;

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on the port.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Finds a server binary on PATH or in Debian's versioned Postgres directory.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from));
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// A child process killed and reaped on drop, so no test leaves a server behind.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `redis-server` on a free port, or None (with a message) if it is not installed.
pub fn start_redis() -> Option<(ChildGuard, String)> {
    let Some(bin) = find_binary("redis-server") else {
        eprintln!("SKIP: redis-server not installed (apt-get install redis-server)");
        return None;
    };
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let guard = ChildGuard(child);
    assert!(
        wait_for_port(port, Duration::from_secs(10)),
        "redis-server did not start"
    );
    Some((guard, format!("redis://127.0.0.1:{port}/")))
}

/// Starts `nats-server` on a port it picks itself (`-p -1`), or None (with a message) if it
/// is not installed. Returns once the server logs "Server is ready" with the port it
/// listens on: picking a free port first and waiting for it to accept raced with the other
/// tests' servers (a client once got "connection reset by peer").
pub fn start_nats() -> Option<(ChildGuard, String)> {
    use std::io::{BufRead, BufReader};
    let Some(bin) = find_binary("nats-server") else {
        eprintln!("SKIP: nats-server not installed (apt-get install nats-server)");
        return None;
    };
    let mut child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nats-server");
    let stderr = child.stderr.take().expect("piped stderr");
    let guard = ChildGuard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut port = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("Listening for client connections on ").nth(1) {
                port = addr
                    .trim()
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok());
            }
            if line.contains("Server is ready") {
                let _ = tx.send(port);
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(10))
        .ok()
        .flatten()
        .expect("nats-server did not become ready");
    Some((guard, format!("nats://127.0.0.1:{port}")))
}

/// A throwaway Postgres cluster in a temp dir, stopped on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    run_as: Option<String>,
    pub port: u16,
}

fn as_user(run_as: &Option<String>, bin: &Path) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

impl PgCluster {
    /// Starts a cluster, or None (with a message) if initdb/pg_ctl are not installed.
    pub fn start() -> Option<Self> {
        let (Some(initdb), Some(pg_ctl)) = (find_binary("initdb"), find_binary("pg_ctl")) else {
            eprintln!("SKIP: Postgres binaries (initdb, pg_ctl) not installed (apt-get install postgresql)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        // Postgres refuses to run as root: hand the directory to an unprivileged user.
        // SAFETY: geteuid has no preconditions.
        let run_as = if unsafe { libc::geteuid() } == 0 {
            let user = if Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success())
            {
                "postgres"
            } else {
                "nobody"
            };
            let ok = Command::new("chown")
                .arg("-R")
                .arg(user)
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of the Postgres temp dir failed");
            Some(user.to_string())
        } else {
            None
        };
        let data = dir.path().join("data");
        let out = as_user(&run_as, &initdb)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            dir.path().display()
        );
        let status = as_user(&run_as, &pg_ctl)
            .args(["-w", "-t", "60", "-D"])
            .arg(&data)
            .args(["-l"])
            .arg(dir.path().join("log"))
            .args(["-o", &opts, "start"])
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl");
        let cluster = Self {
            dir,
            pg_ctl,
            run_as,
            port,
        };
        assert!(status.success(), "pg_ctl start failed: {}", cluster.log());
        Some(cluster)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Connection string for a database on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        )
    }

    /// Creates an empty database and returns its connection string.
    pub async fn create_db(&self, db: &str) -> String {
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        drop(client);
        let _ = task.await;
        self.url(db)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = as_user(&self.run_as, &self.pg_ctl)
            .args(["-D"])
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Reopens the same storage, as a restarted process would.
pub type Reopen = Arc<dyn Fn() -> BoxFuture<'static, Store> + Send + Sync>;

/// One backend under test, with an app built on it.
pub struct Fixture {
    pub store: Store,
    pub app: Router,
    pub reopen: Reopen,
    _keep: Box<dyn std::any::Any + Send>,
}

/// Builds the router the server would, with the suite's limits.
pub fn app_for(store: Store) -> Router {
    router(AppState {
        store,
        metrics: Arc::new(Metrics::default()),
        cache: None,
        max_batch_size: MAX_BATCH,
        max_body_bytes: MAX_BODY,
        shutting_down: Arc::new(AtomicBool::new(false)),
        ingest_limit: Arc::new(tokio::sync::Semaphore::new(
            collector::http::MAX_INGESTS_IN_FLIGHT,
        )),
    })
}

/// A fresh SQLite store in its own temp dir.
pub fn sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let store = Store::Sqlite(SqliteStore::open(&path).unwrap());
    let reopen: Reopen = Arc::new(move || {
        let path = path.clone();
        Box::pin(async move { Store::Sqlite(SqliteStore::open(&path).unwrap()) })
    });
    Fixture {
        app: app_for(store.clone()),
        store,
        reopen,
        _keep: Box::new(dir),
    }
}

/// A fresh Postgres database on the given cluster.
pub async fn postgres_fixture(cluster: &PgCluster, db: &str) -> Fixture {
    let url = cluster.create_db(db).await;
    let store = Store::Postgres(PgStore::connect(&url).await.unwrap());
    let reopen: Reopen = Arc::new(move || {
        let url = url.clone();
        Box::pin(async move { Store::Postgres(PgStore::connect(&url).await.unwrap()) })
    });
    Fixture {
        app: app_for(store.clone()),
        store,
        reopen,
        _keep: Box::new(()),
    }
}

/// A response reduced to what tests look at.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

/// Sends one request through the router without a socket.
pub async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = app
        .clone()
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        json,
        text,
    }
}

/// POST /events with a JSON body.
pub async fn post(app: &Router, body: &str) -> Resp {
    send(
        app,
        "POST",
        "/events",
        Some("application/json"),
        body.to_string(),
    )
    .await
}

/// GET a path.
pub async fn get(app: &Router, uri: &str) -> Resp {
    send(app, "GET", uri, None, Body::empty()).await
}
