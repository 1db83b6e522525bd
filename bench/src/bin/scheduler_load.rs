//! Scheduler and controller benchmark: scheduling throughput against 100 nodes that exist
//! only as API objects (as kwok does), reconcile latency from a spec change to the
//! controller's first write, and a 10-replica rolling update with a fake kubelet that marks
//! pods ready as soon as they appear. Starts its own `skiff server`; prints Markdown.
//!
//! Usage: `cargo run --release -p skiff-bench --bin scheduler-load -- [path/to/skiff] [pods]`

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use skiff_bench::hollow::{self, PodOutcome};
use skiff_bench::server::ApiServer;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const NODES: usize = 100;

fn pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("load-{i:05}"), "labels": {"bench": "sched"}},
        "spec": {"containers": [{"name": "c", "image": "collector:v2",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
    }))
    .expect("pod")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Pods created before any node exists wait as unschedulable; then 100 nodes appear and the
/// time until every pod is bound is the scheduler's throughput.
async fn scheduling(client: &kube::Client, pods: usize) -> (f64, Duration) {
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    futures::stream::iter(0..pods)
        .map(|i| {
            let api = pod_api.clone();
            async move {
                api.create(&PostParams::default(), &pod(i))
                    .await
                    .expect("create pod")
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    // Let the scheduler see the backlog (and report it unschedulable) before nodes arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let watch_api = pod_api.clone();
    let bound = tokio::spawn(async move {
        let mut names = HashSet::new();
        let stream = watcher::watcher(watch_api, watcher::Config::default().labels("bench=sched"));
        futures::pin_mut!(stream);
        while let Ok(Some(event)) = stream.try_next().await {
            let objs = match event {
                Event::Apply(p) | Event::InitApply(p) => vec![p],
                _ => vec![],
            };
            for p in objs {
                if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                    names.insert(p.metadata.name.clone().unwrap_or_default());
                }
            }
            if names.len() >= pods {
                return Instant::now();
            }
        }
        Instant::now()
    });
    let node_api: Api<Node> = Api::all(client.clone());
    let started = Instant::now();
    futures::stream::iter(0..NODES)
        .map(|i| {
            let api = node_api.clone();
            async move {
                api.create(&PostParams::default(), &hollow::node(i))
                    .await
                    .expect("create node")
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let nodes_created = started.elapsed();
    // Kept alive for the rest of the run; the process ends with it.
    let _leases = hollow::renew_leases(client.clone(), NODES);
    let done = tokio::time::timeout(Duration::from_secs(300), bound)
        .await
        .expect("all pods bound in 5 min")
        .expect("watch task");
    let took = done - started;
    (pods as f64 / took.as_secs_f64(), nodes_created)
}

/// Time from a write's response to the controller's resulting object in a watch.
async fn first_action<K, F>(api: Api<K>, selector: &str, change: F) -> Duration
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: std::future::Future<Output = ()>,
{
    let seen: HashSet<String> = api
        .list(&kube::api::ListParams::default().labels(selector))
        .await
        .expect("list")
        .items
        .iter()
        .filter_map(|o| o.meta().name.clone())
        .collect();
    let stream = watcher::watcher(api, watcher::Config::default().labels(selector));
    futures::pin_mut!(stream);
    // Wait for the initial listing so the watch is live before the change.
    while let Ok(Some(event)) = stream.try_next().await {
        if matches!(event, Event::InitDone) {
            break;
        }
    }
    change.await;
    let t0 = Instant::now();
    while let Ok(Some(event)) = stream.try_next().await {
        if let Event::Apply(o) = event {
            if !seen.contains(o.meta().name.as_deref().unwrap_or_default()) {
                return t0.elapsed();
            }
        }
    }
    t0.elapsed()
}

async fn latencies(client: &kube::Client, rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "lat"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "lat"}},
            "template": {"metadata": {"labels": {"app": "lat"}},
                "spec": {"containers": [{"name": "c", "image": "collector:v2"}]}}}
    }))
    .expect("rs");
    rs_api
        .create(&PostParams::default(), &rs)
        .await
        .expect("create rs");
    let mut rs_lat = Vec::new();
    for i in 1..=rounds {
        let api = rs_api.clone();
        let patch = json!({"spec": {"replicas": i}});
        let change = async move {
            api.patch("lat", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("scale");
        };
        rs_lat.push(first_action(pod_api.clone(), "app=lat", change).await);
    }
    let d_api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dlat"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "dlat"}},
            "template": {"metadata": {"labels": {"app": "dlat"}},
                "spec": {"containers": [{"name": "c", "image": "collector:v0"}]}}}
    }))
    .expect("deployment");
    d_api
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut d_lat = Vec::new();
    for i in 1..=rounds {
        let api = d_api.clone();
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": format!("collector:v{i}")}]}}}});
        let change = async move {
            api.patch("dlat", &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .expect("set image");
        };
        d_lat.push(first_action(rs_api.clone(), "app=dlat", change).await);
    }
    rs_lat.sort();
    d_lat.sort();
    (rs_lat, d_lat)
}

async fn complete(api: &Api<Deployment>, name: &str, replicas: i32) {
    loop {
        let d = api.get(name).await.expect("get deployment");
        let s = d.status.unwrap_or_default();
        let done = s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(replicas)
            && s.replicas == Some(replicas)
            && s.available_replicas == Some(replicas);
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn rolling_update(client: &kube::Client) -> Duration {
    let kubelet = hollow::fake_kubelet(
        client.clone(),
        Some("default"),
        Some("app=roll"),
        PodOutcome::Ready,
    );
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "roll"},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "roll"}},
            "template": {"metadata": {"labels": {"app": "roll"}},
                "spec": {"containers": [{"name": "c", "image": "collector:v1"}]}}}
    }))
    .expect("deployment");
    api.create(&PostParams::default(), &d)
        .await
        .expect("create");
    complete(&api, "roll", 10).await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "collector:v2"}]}}}});
    let t0 = Instant::now();
    api.patch("roll", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("set image");
    complete(&api, "roll", 10).await;
    let took = t0.elapsed();
    kubelet.abort();
    took
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let binary = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/release/skiff".into());
    let pods: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    // Nodes here are API objects only; no node agent for this host.
    let server = ApiServer::start(&binary);
    let client = server.client().await;
    let (rate, nodes_created) = scheduling(&client, pods).await;
    let (rs_lat, d_lat) = latencies(&client, 20).await;
    let roll = rolling_update(&client).await;
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!("| measure | value |");
    println!("|---|---|");
    println!("| pods scheduled per second ({pods} pods, {NODES} nodes) | {rate:.0} |");
    println!(
        "| (creating the {NODES} nodes took) | {} |",
        ms(nodes_created)
    );
    println!(
        "| ReplicaSet scale → first pod created, p50 / p99 (20 rounds) | {} / {} |",
        ms(percentile(&rs_lat, 0.5)),
        ms(percentile(&rs_lat, 0.99))
    );
    println!(
        "| Deployment template change → new ReplicaSet, p50 / p99 (20 rounds) | {} / {} |",
        ms(percentile(&d_lat, 0.5)),
        ms(percentile(&d_lat, 0.99))
    );
    println!(
        "| 10-replica rolling update (25%/25%, pods ready at once) | {} |",
        ms(roll)
    );
}
