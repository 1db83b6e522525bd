//! The resource-metrics collector inside the API server: every [`RESOLUTION`] it reads each
//! node's kubelet Summary (`GET /stats/summary` on the node port, where `pods/log` goes
//! too), all nodes at once, and stores the round. No extra daemon: what metrics-server's
//! scraper does, in-process (docs/decisions/0025-resource-metrics-and-hpa.md).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::storage::{Batch, Point};
use crate::handler::Api;
use crate::request::{Params, Target};

/// How often nodes are scraped: figures are at most this old (plus one scrape), inside
/// the 15 s freshness kubectl top and the HPA's 15 s sync want.
pub const RESOLUTION: Duration = Duration::from_secs(10);
/// How long one node may take to answer before the round goes on without it.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest Summary document read (about 5,000 containers).
const MAX_BODY: usize = 4 << 20;

/// The parts of the kubelet's `statsapi.Summary` the metrics need.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub node: NodeStats,
    #[serde(default)]
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub start_time: DateTime<Utc>,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodRef,
    #[serde(default)]
    pub containers: Vec<ContainerStats>,
}

#[derive(Debug, Deserialize)]
pub struct PodRef {
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: DateTime<Utc>,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: DateTime<Utc>,
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: DateTime<Utc>,
    pub working_set_bytes: Option<u64>,
}

/// A reading from CPU and memory stats; `None` when either figure is missing (upstream's
/// decoder drops such points rather than report a zero).
fn point(
    start: DateTime<Utc>,
    cpu: Option<&CpuStats>,
    memory: Option<&MemoryStats>,
) -> Option<Point> {
    let (cpu, memory) = (cpu?, memory?);
    Some(Point {
        // The later of the two readings, as metrics-server's decoder takes it.
        timestamp: cpu.time.max(memory.time),
        start,
        cpu_ns: cpu.usage_core_nano_seconds?,
        working_set: memory.working_set_bytes?,
    })
}

/// Adds one node's Summary to a round.
pub fn add(batch: &mut Batch, node: &str, s: &Summary) {
    if let Some(p) = point(
        s.node.start_time,
        s.node.cpu.as_ref(),
        s.node.memory.as_ref(),
    ) {
        batch.nodes.insert(node.to_owned(), p);
    }
    for pod in &s.pods {
        let containers: HashMap<String, Point> = pod
            .containers
            .iter()
            .filter_map(|c| {
                let p = point(c.start_time, c.cpu.as_ref(), c.memory.as_ref())?;
                Some((c.name.clone(), p))
            })
            .collect();
        if !containers.is_empty() {
            batch.pods.insert(
                (pod.pod_ref.namespace.clone(), pod.pod_ref.name.clone()),
                containers,
            );
        }
    }
}

/// Scrapes every node each [`RESOLUTION`] until the API is dropped.
pub async fn run(api: Arc<Api>) {
    let mut tick = tokio::time::interval(RESOLUTION);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let batch = round(&api).await;
        api.metrics.store(batch);
    }
}

/// One round: every node, concurrently.
async fn round(api: &Api) -> Batch {
    let mut batch = Batch::default();
    let Some(nodes) = api.registry.get("", "v1", "nodes") else {
        return batch;
    };
    let target = Target {
        resource: nodes,
        namespace: None,
        name: None,
        subresource: None,
    };
    let names: Vec<String> = match api.list(&target, &Params::default()) {
        Ok(list) => list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "resource metrics: cannot list nodes");
            return batch;
        }
    };
    let scrapes = names.iter().map(|name| async move {
        let result = tokio::time::timeout(TIMEOUT, scrape(api, name)).await;
        (name, result)
    });
    for (name, result) in futures::future::join_all(scrapes).await {
        match result {
            Ok(Ok(summary)) => add(&mut batch, name, &summary),
            Ok(Err(e)) => tracing::debug!(node = %name, error = %e, "resource metrics scrape"),
            Err(_) => tracing::debug!(node = %name, "resource metrics scrape timed out"),
        }
    }
    batch
}

async fn scrape(api: &Api, node: &str) -> Result<Summary, String> {
    let resp = api
        .nodes
        .get(api, node, "/stats/summary?only_cpu_and_memory=true")
        .await?;
    if !resp.status().is_success() {
        return Err(format!("node answered {}", resp.status()));
    }
    let body = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), MAX_BODY)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Summary as the kubelet (and skiff's node) writes it decodes into one round;
    /// points without a CPU or memory figure are dropped.
    #[test]
    fn a_kubelet_summary_becomes_node_and_container_points() {
        let s: Summary = serde_json::from_value(serde_json::json!({
            "node": {"nodeName": "n1", "startTime": "2026-12-01T00:00:00Z",
                "cpu": {"time": "2026-12-07T06:00:10.250Z", "usageCoreNanoSeconds": 9},
                "memory": {"time": "2026-12-07T06:00:10.250Z", "usageBytes": 20, "workingSetBytes": 10}},
            "pods": [
                {"podRef": {"name": "web", "namespace": "default", "uid": "u"},
                 "startTime": "2026-12-07T06:00:00Z",
                 "containers": [
                    {"name": "app", "startTime": "2026-12-07T06:00:00Z",
                     "cpu": {"time": "2026-12-07T06:00:10Z", "usageCoreNanoSeconds": 5},
                     "memory": {"time": "2026-12-07T06:00:11Z", "workingSetBytes": 4096}},
                    {"name": "nocpu", "startTime": "2026-12-07T06:00:00Z",
                     "memory": {"time": "2026-12-07T06:00:11Z", "workingSetBytes": 4096}}]},
                {"podRef": {"name": "empty", "namespace": "default", "uid": "v"},
                 "startTime": "2026-12-07T06:00:00Z", "containers": []}
            ]
        }))
        .unwrap();
        let mut batch = Batch::default();
        add(&mut batch, "n1", &s);
        assert_eq!(batch.nodes["n1"].cpu_ns, 9);
        assert_eq!(batch.nodes["n1"].working_set, 10);
        assert_eq!(batch.pods.len(), 1);
        let web = &batch.pods[&("default".to_owned(), "web".to_owned())];
        assert_eq!(web.len(), 1);
        assert_eq!(web["app"].working_set, 4096);
        assert_eq!(
            web["app"].timestamp.to_rfc3339(),
            "2026-12-07T06:00:11+00:00"
        );
    }
}
