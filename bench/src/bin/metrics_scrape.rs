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
use skiff_bench::cpu_seconds;
use skiff_bench::server::ApiServer;
use std::time::{Duration, Instant};

const SCRAPES: usize = 200;
const INTERVAL_S: f64 = 15.0;

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
    let server = ApiServer::start(&binary);
    let pid = server.pid();
    let client = server.client().await;
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
