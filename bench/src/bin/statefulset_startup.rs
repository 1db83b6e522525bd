//! StatefulSet benchmark: a set of N members to Ready in order (OrderedReady), against N
//! single pods created one after the other, each waited for until Ready: the controller's
//! cost on top of the node's pod start-up, which ordered creation pays N times.
//!
//! As root, with the busybox test image, on a real node (see [`skiff_bench::node`]); the
//! pods go through the scheduler, as a set's do. Rounds alternate: R rounds of (N single
//! pods, a set of N without claims, a set of N with a claim template), everything deleted
//! and the containers gone between rounds. Prints Markdown.
//!
//! Usage (as root): `statefulset-startup [--skiff PATH] [--replicas N] [--rounds R]`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use skiff_bench::is_ready;
use skiff_bench::node::{self, Node};

/// The image the pods run.
const IMAGE: &str = "busybox:bench";

#[derive(Parser)]
#[command(about = "StatefulSet of N to Ready in order vs N single pods create-to-Ready")]
struct Args {
    /// The skiff binary (default: `skiff` next to this executable).
    #[arg(long)]
    skiff: Option<PathBuf>,
    /// Members of the set, and single pods in the baseline.
    #[arg(long, default_value_t = 10)]
    replicas: usize,
    /// Rounds of each variant.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let skiff = node::preflight("statefulset-startup", &[], args.skiff.as_deref())?;
    let node = Node::start(&skiff)?;
    node.load_image(&skiff_node::testing::busybox_oci_archive(IMAGE)?)?;
    let rows = node::block_on(&node, measure(&node, &args))?;
    println!("| variant | rounds | total to all Ready (median) | min | max | per pod (median) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, mut times) in rows {
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "| {name} | {} | {:.2} s | {:.2} s | {:.2} s | {:.0} ms |",
            times.len(),
            median.as_secs_f64(),
            times[0].as_secs_f64(),
            times[times.len() - 1].as_secs_f64(),
            median.as_secs_f64() * 1000.0 / args.replicas as f64
        );
    }
    Ok(())
}

fn pod_spec() -> serde_json::Value {
    json!({
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}],
    })
}

async fn measure(node: &Node, args: &Args) -> Result<Vec<(&'static str, Vec<Duration>)>> {
    let client = node.client().await?;
    wait_for_node(&client).await?;
    let mut single = Vec::new();
    let mut plain = Vec::new();
    let mut claimed = Vec::new();
    for round in 0..args.rounds {
        single.push(singles(&client, args.replicas).await?);
        clean(node, &client).await?;
        plain.push(set(&client, args.replicas, false).await?);
        clean(node, &client).await?;
        claimed.push(set(&client, args.replicas, true).await?);
        clean(node, &client).await?;
        eprintln!("round {} done", round + 1);
    }
    Ok(vec![
        ("N single pods, one after the other", single),
        ("StatefulSet of N, OrderedReady", plain),
        ("StatefulSet of N, OrderedReady, a claim each", claimed),
    ])
}

async fn wait_for_node(client: &kube::Client) -> Result<()> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    for _ in 0..200 {
        if !nodes.list(&ListParams::default()).await?.items.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the node never registered")
}

/// Waits until `n` pods matching `labels` are Ready, on a watch started before `start`.
async fn until_ready(
    pods: Api<Pod>,
    labels: &str,
    n: usize,
) -> Result<tokio::sync::oneshot::Receiver<Instant>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let cfg = watcher::Config::default().labels(labels);
    let mut stream = watcher::watcher(pods, cfg).boxed();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready = std::collections::HashSet::new();
        let mut started = Some(started_tx);
        while let Some(Ok(event)) = stream.next().await {
            match event {
                Event::InitDone => {
                    if let Some(s) = started.take() {
                        let _ = s.send(());
                    }
                }
                Event::Apply(p) | Event::InitApply(p) if is_ready(&p) => {
                    ready.insert(p.metadata.name.clone().unwrap_or_default());
                    if ready.len() == n {
                        let _ = tx.send(Instant::now());
                        return;
                    }
                }
                _ => {}
            }
        }
    });
    started_rx.await.context("watch ended before it started")?;
    Ok(rx)
}

/// N pods, each created once the previous one is Ready: what OrderedReady does by hand.
async fn singles(client: &kube::Client, n: usize) -> Result<Duration> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let start = Instant::now();
    for i in 0..n {
        let done = until_ready(pods.clone(), &format!("bench=single,i=i{i}"), 1).await?;
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("single-{i}"), "labels": {"bench": "single", "i": format!("i{i}")}},
            "spec": pod_spec(),
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
        tokio::time::timeout(Duration::from_secs(60), done)
            .await
            .context("a single pod never became Ready")??;
    }
    Ok(start.elapsed())
}

/// A set of N, from create to its last member Ready.
async fn set(client: &kube::Client, n: usize, claims: bool) -> Result<Duration> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let done = until_ready(pods, "bench=sts", n).await?;
    let mut spec = pod_spec();
    let mut templates = json!([]);
    if claims {
        spec["containers"][0]["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
        templates = json!([{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }]);
    }
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": n,
            "serviceName": "bench",
            "selector": {"matchLabels": {"bench": "sts"}},
            "template": {"metadata": {"labels": {"bench": "sts"}}, "spec": spec},
            "volumeClaimTemplates": templates,
        },
    }))?;
    let start = Instant::now();
    sets.create(&PostParams::default(), &set).await?;
    let end = tokio::time::timeout(Duration::from_secs(300), done)
        .await
        .context("the set never became Ready")??;
    Ok(end - start)
}

/// Deletes the set, pods and claims of a round and waits until the pods and containers are
/// gone, so rounds do not overlap.
async fn clean(node: &Node, client: &kube::Client) -> Result<()> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let dp = DeleteParams::default();
    let _ = sets.delete("bench", &dp).await;
    let lp = ListParams::default();
    for _ in 0..600 {
        // The set's pods are deleted here too: the garbage collector may not follow
        // StatefulSet owners.
        let _ = pods.delete_collection(&dp, &lp).await;
        let _ = claims.delete_collection(&dp, &lp).await;
        let left = pods.list(&lp).await?.items.len() + claims.list(&lp).await?.items.len();
        if left == 0 && node.containers().map(|c| c.is_empty()).unwrap_or(false) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the round's pods, claims or containers never went away")
}
