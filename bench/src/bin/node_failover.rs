//! Failover benchmark (issue 13, "How it is checked"): two nodes, a `skiff server` (node A)
//! and a `skiff agent` (node-b) in network namespaces of their own on one link; a
//! Deployment behind a Service with load through the Service from node A; then node-b
//! loses power (agent, shims and containers SIGKILLed, its link down). Measured from the
//! power loss, read from the API every 100 ms: node-b NotReady, its pods out of the
//! Service's endpoints, the replacements Ready on node A; and from the load, the longest
//! stretch of failing requests. Targets: replacements within 15 s, no request failing for
//! more than 10 s. A fresh pair of nodes per run; prints Markdown (p50 and max over runs).
//!
//! The scenario and its measurement are [`skiff_bench::failover`], which the e2e test
//! `crates/skiff/tests/nodefailure.rs` shares.
//!
//! Usage (as root): `node-failover [--skiff PATH] [--runs N] [--replicas N]`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Node as KubeNode, Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use serde::Deserialize;
use serde_json::Value;
use skiff_bench::failover::{self, Timeline, Watch};
use skiff_bench::node::{self, Agent, Node};
use skiff_bench::percentile;

/// The image the pods run.
const IMAGE: &str = "busybox:bench";
/// The node that loses power, and its pod network.
const LOST: &str = "node-b";
const LOST_CIDR: &str = "10.244.1.0/24";
const LOST_PREFIX: &str = "10.244.1.";

#[derive(Parser)]
#[command(
    about = "Time to NotReady, endpoints removed and replacements Running after a node's power loss"
)]
struct Args {
    /// The skiff binary (default: `skiff` next to this executable).
    #[arg(long)]
    skiff: Option<PathBuf>,
    /// Power losses, each on a fresh pair of nodes.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Pods of the Deployment.
    #[arg(long, default_value_t = 4)]
    replicas: usize,
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Figures {
    not_ready: Duration,
    endpoints_removed: Duration,
    replaced: Duration,
    longest_failure: Duration,
    requests: usize,
    failed: usize,
    lost_pods: usize,
}

/// A line of the table: what, which figure, the target.
type Row = (&'static str, fn(&Figures) -> Duration, &'static str);

fn main() -> Result<()> {
    let args = Args::parse();
    let skiff = node::preflight("node-failover", &["nsenter"], args.skiff.as_deref())?;
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let f = one_run(&skiff, args.replicas).with_context(|| format!("run {run}"))?;
        eprintln!(
            "run {run}: NotReady {} ms, endpoints removed {} ms, replacements Running {} ms, \
             longest failure {} ms ({} of {} requests failed; {} pods lost)",
            f.not_ready.as_millis(),
            f.endpoints_removed.as_millis(),
            f.replaced.as_millis(),
            f.longest_failure.as_millis(),
            f.failed,
            f.requests,
            f.lost_pods
        );
        runs.push(f);
    }
    println!(
        "## Node failover: power loss of node-b under load through a Service \
         ({} replicas, {} runs)\n",
        args.replicas,
        runs.len()
    );
    println!("| from the power loss | p50 | max | target |");
    println!("|---|---:|---:|---:|");
    let rows: [Row; 4] = [
        ("node-b NotReady", |f| f.not_ready, ""),
        ("its pods out of the endpoints", |f| f.endpoints_removed, ""),
        ("replacements Running on node A", |f| f.replaced, "15 s"),
        (
            "longest stretch of failing requests",
            |f| f.longest_failure,
            "10 s",
        ),
    ];
    for (name, get, target) in rows {
        let mut v: Vec<Duration> = runs.iter().map(get).collect();
        v.sort();
        println!(
            "| {name} | {:.1} s | {:.1} s | {target} |",
            percentile(&v, 0.5).as_secs_f64(),
            v.last().copied().unwrap_or_default().as_secs_f64()
        );
    }
    let (failed, total): (usize, usize) = runs
        .iter()
        .fold((0, 0), |(f, t), r| (f + r.failed, t + r.requests));
    println!("\n{failed} of {total} requests failed over all runs.");
    Ok(())
}

/// A pair of nodes, the workload, the load, the power loss and the watch.
fn one_run(skiff: &Path, replicas: usize) -> Result<Figures> {
    let node = Node::start_listening(skiff, "0.0.0.0:0")?;
    let mut agent = Agent::join(&node, LOST, LOST_CIDR)?;
    let archive = skiff_node::testing::busybox_oci_archive(IMAGE)?;
    node.load_image(&archive)?;
    agent.load_image(&archive)?;
    let (survivor, cluster_ip, lost_pods) = node::block_on(&node, prepare(&node, replicas))?;

    // Load through the Service from node A (this thread's network namespace, which the
    // load's thread inherits).
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let ip = cluster_ip.clone();
    let loader = failover::load(
        move || move || failover::http_get(&ip, 80, "/").is_ok(),
        stop.clone(),
        t0,
    );
    std::thread::sleep(Duration::from_millis(500));

    let lost = Instant::now();
    agent.power_off()?;
    let watch = Watch {
        lost_node: LOST.into(),
        lost_pod_prefix: LOST_PREFIX.into(),
        survivor,
        app: "web".into(),
        replicas,
    };
    let timeline = node::block_on(&node, observe(&node, &watch, lost));
    // A little more load after the replacements, then the verdict.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let requests = loader
        .join()
        .map_err(|_| anyhow::anyhow!("load thread panicked"))?;
    let timeline = timeline?;
    drop(agent);
    Ok(Figures {
        not_ready: timeline.not_ready.context("node-b never seen NotReady")?,
        endpoints_removed: timeline
            .endpoints_removed
            .context("node-b's pods never seen out of the endpoints")?,
        replaced: timeline.replaced.context("replacements never seen")?,
        longest_failure: failover::longest_failure(&requests),
        requests: requests.len(),
        failed: requests.iter().filter(|r| !r.ok).count(),
        lost_pods,
    })
}

/// Waits for both nodes, creates the Deployment and Service, waits for every pod Ready
/// (some on node-b) and the Service answering; returns node A's name, the
/// Service's address and how many pods node-b runs. (Each runtime makes its own client:
/// a client's connections and buffer live on the runtime that made it.)
async fn prepare(node: &Node, replicas: usize) -> Result<(String, String, usize)> {
    let client = node.client().await?;
    let nodes = &Api::<KubeNode>::all(client.clone());
    let survivor = poll("both nodes Ready", Duration::from_secs(60), || async move {
        let list = nodes.list(&ListParams::default()).await.ok()?;
        let ready: Vec<String> = list
            .items
            .iter()
            .filter(|n| failover::node_ready(&serde_json::to_value(n).unwrap_or_default()))
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        (ready.len() == 2 && ready.iter().any(|n| n == LOST))
            .then(|| ready.into_iter().find(|n| n != LOST))
            .flatten()
    })
    .await?;
    for doc in serde_yaml::Deserializer::from_str(&failover::web_manifest(IMAGE, replicas)) {
        let v: Value = serde_json::to_value(serde_yaml::Value::deserialize(doc)?)?;
        match v["kind"].as_str() {
            Some("Deployment") => {
                Api::<Deployment>::namespaced(client.clone(), "default")
                    .create(&PostParams::default(), &serde_json::from_value(v)?)
                    .await?;
            }
            Some("Service") => {
                Api::<Service>::namespaced(client.clone(), "default")
                    .create(&PostParams::default(), &serde_json::from_value(v)?)
                    .await?;
            }
            other => bail!("unexpected {other:?} in the manifest"),
        }
    }
    let pods = &Api::<Pod>::namespaced(client.clone(), "default");
    let lost_pods = poll("every pod Ready", Duration::from_secs(120), || async move {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let ready: Vec<Value> = list
            .items
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .filter(failover::pod_ready)
            .collect();
        let on_lost = ready
            .iter()
            .filter(|p| p["spec"]["nodeName"] == LOST)
            .count();
        (ready.len() == replicas).then_some(on_lost)
    })
    .await?;
    if lost_pods == 0 {
        bail!("the scheduler put no pod on {LOST}: nothing to fail over");
    }
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .get("web")
        .await?;
    let cluster_ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the Service's cluster IP")?;
    let ip = cluster_ip.clone();
    poll("the Service to answer", Duration::from_secs(30), || {
        let ip = ip.clone();
        async move {
            tokio::task::spawn_blocking(move || failover::http_get(&ip, 80, "/").ok())
                .await
                .ok()
                .flatten()
        }
    })
    .await?;
    Ok((survivor, cluster_ip, lost_pods))
}

/// Reads nodes, endpoints and pods every 100 ms from the power loss until the
/// replacements run (60 s at most).
async fn observe(node: &Node, w: &Watch, lost: Instant) -> Result<Timeline> {
    let client = node.client().await?;
    let nodes: Api<KubeNode> = Api::all(client.clone());
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut timeline = Timeline::default();
    let lp = ListParams::default();
    loop {
        let (n, e, p) = futures::try_join!(nodes.list(&lp), endpoints.list(&lp), pods.list(&lp))?;
        let now = lost.elapsed();
        let (n, e, p) = (values(&n.items), values(&e.items), values(&p.items));
        if timeline.observe(w, &n, &e, &p, now) {
            return Ok(timeline);
        }
        if now > Duration::from_secs(60) {
            bail!("no replacements within 60 s: {timeline:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Objects as the API serves them (JSON).
fn values<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|i| serde_json::to_value(i).ok())
        .collect()
}

/// Polls `f` every 100 ms until it gives a value, for `timeout` at most.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, f: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
