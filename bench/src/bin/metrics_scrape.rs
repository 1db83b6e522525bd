//! What Prometheus' scrape of the API server's `/metrics` costs (decision 0033): with 1,000
//! pods stored (bound to a Node that is only an API object, tolerating its NotReady taints
//! so they stay, as kwok's), the server's CPU
//! time per scrape, as a share of one core at a 15 s scrape interval, and the exposition's
//! size. Also the server's idle CPU over 15 s without scrapes (the storage-object count
//! runs every 15 s in the background), and `GET /metrics` latency. Starts its own
//! `skiff server`; prints Markdown.
//!
//! Usage: `cargo run --release -p skiff-bench --bin metrics-scrape -- [path/to/skiff] [pods]`

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRAPES: usize = 200;
const INTERVAL_S: f64 = 15.0;

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(binary: &str) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(binary)
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
    Server {
        child,
        _dir: dir,
        kubeconfig,
    }
}

/// The process' user + system CPU time so far, in seconds (`/proc/PID/stat`, clock ticks).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

async fn scrape(client: &kube::Client) -> String {
    let req = hyper::http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    client.request_text(req).await.expect("GET /metrics")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let binary = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/release/skiff".into());
    let pods: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = start(&binary);
    let pid = server.child.id();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    // The default ServiceAccount must exist before pods are admitted.
    for _ in 0..100 {
        if kube::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
            client.clone(),
            "default",
        )
        .get_opt("default")
        .await
        .ok()
        .flatten()
        .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let node: k8s_openapi::api::core::v1::Node =
        serde_json::from_value(json!({"metadata": {"name": "nowhere"}})).expect("node");
    Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let created = Instant::now();
    futures::stream::iter(0..pods)
        .map(|i| {
            let api = api.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("p-{i:05}"), "labels": {"app": "bench"}},
                    "spec": {
                        "nodeName": "nowhere",
                        "automountServiceAccountToken": false,
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{"name": "c", "image": "busybox"}]
                    }
                }))
                .expect("pod");
                api.create(&PostParams::default(), &pod)
                    .await
                    .expect("create pod");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    eprintln!("{pods} pods created in {:?}", created.elapsed());
    // Let the controllers and the storage count settle.
    tokio::time::sleep(Duration::from_secs(20)).await;

    let idle_start = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs_f64(INTERVAL_S)).await;
    let idle = cpu_seconds(pid) - idle_start;

    let first = scrape(&client).await;
    let before = cpu_seconds(pid);
    let mut latencies = Vec::with_capacity(SCRAPES);
    let began = Instant::now();
    for _ in 0..SCRAPES {
        let t = Instant::now();
        let _ = scrape(&client).await;
        latencies.push(t.elapsed());
    }
    let wall = began.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - before;
    latencies.sort();
    let per_scrape = cpu / SCRAPES as f64;
    let series = first
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    let objects = first
        .lines()
        .find(|l| l.starts_with("apiserver_storage_objects{resource=\"pods\"}"))
        .unwrap_or("apiserver_storage_objects{resource=\"pods\"} ?");
    println!("| figure | value |");
    println!("|---|---|");
    println!("| pods stored | {pods} (`{objects}`) |");
    println!(
        "| exposition size | {} KiB, {series} samples |",
        first.len() / 1024
    );
    println!(
        "| server CPU per scrape | {:.2} ms ({SCRAPES} scrapes back to back in {wall:.1} s) |",
        per_scrape * 1e3
    );
    println!(
        "| scrape cost at a 15 s interval | {:.3} % of a core |",
        per_scrape / INTERVAL_S * 100.0
    );
    println!(
        "| server CPU over 15 s without scrapes (storage count included) | {:.3} % of a core |",
        idle / INTERVAL_S * 100.0
    );
    println!(
        "| GET /metrics latency p50 / p99 | {:.2} / {:.2} ms |",
        skiff_bench::percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        skiff_bench::percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
}
