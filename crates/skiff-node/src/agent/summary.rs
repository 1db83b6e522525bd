//! The kubelet's Summary API, `GET /stats/summary` on the node port: the node's and every
//! running container's cumulative CPU time and memory working set (the `statsapi.Summary`
//! shape, CPU and memory only). The API server's resource-metrics collector scrapes it to
//! serve `metrics.k8s.io` (docs/decisions/0025-resource-metrics-and-hpa.md).
//!
//! Timestamps carry milliseconds so the collector's rate windows are exact to the reading,
//! not rounded to whole seconds (Go's RFC 3339 parser reads fractional seconds).

use super::pods::{LABEL_CONTAINER, LABEL_NAME, LABEL_NAMESPACE, LABEL_UID};
use super::Shared;
use crate::runtime::stats::{CgroupStats, Usage};
use crate::runtime::{ContainerState, ContainerStatus};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// One running container's reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerReading {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's uid.
    pub uid: String,
    /// The container's name in the pod.
    pub container: String,
    /// When this attempt of the container started: a later start means a restart.
    pub started_at: DateTime<Utc>,
    /// What its cgroup read.
    pub usage: Usage,
}

/// The host's cgroup layout, found once: it does not change while the agent runs.
fn host() -> &'static CgroupStats {
    static HOST: OnceLock<CgroupStats> = OnceLock::new();
    HOST.get_or_init(CgroupStats::detect)
}

pub(crate) async fn handler(State(shared): State<Arc<Shared>>) -> Response {
    let read = move || -> Result<Value, String> {
        let now = Utc::now();
        let node = host().node().map_err(|e| format!("node cgroup: {e}"))?;
        let statuses = shared.runtime.list().map_err(|e| e.to_string())?;
        let parent = &shared.cfg.cgroup_parent;
        let readings = statuses
            .iter()
            .filter_map(|s| reading(s, parent))
            .collect::<Vec<_>>();
        Ok(summary(
            &shared.cfg.node_name,
            boot_time(),
            node,
            &readings,
            now,
        ))
    };
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(body)) => axum::Json(body).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// A running container's reading; `None` for containers not running, without pod labels,
/// or whose cgroup is already gone (a container that just exited).
pub(crate) fn reading(s: &ContainerStatus, cgroup_parent: &str) -> Option<ContainerReading> {
    if s.state != ContainerState::Running {
        return None;
    }
    let labels = &s.spec.as_ref()?.labels;
    let started_at = s
        .started_at
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())?
        .with_timezone(&Utc);
    let path = crate::runtime::cgroups_path(cgroup_parent, &s.id);
    let usage = host().container(&path).ok()?;
    Some(ContainerReading {
        namespace: labels.get(LABEL_NAMESPACE)?.clone(),
        pod: labels.get(LABEL_NAME)?.clone(),
        uid: labels.get(LABEL_UID).cloned().unwrap_or_default(),
        container: labels.get(LABEL_CONTAINER)?.clone(),
        started_at,
        usage,
    })
}

/// When the machine booted (`btime` of `/proc/stat`): the start of the node's counters.
fn boot_time() -> DateTime<Utc> {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<i64>().ok())
        })
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn cpu(u: &Usage, at: &str) -> Value {
    json!({"time": at, "usageCoreNanoSeconds": u.cpu_ns})
}

fn memory(u: &Usage, at: &str) -> Value {
    json!({"time": at, "usageBytes": u.memory_usage, "workingSetBytes": u.working_set})
}

/// The Summary document: pods in name order, each with its containers (a pod's usage is
/// the sum of its containers': skiff has no pod-level cgroup).
pub fn summary(
    node_name: &str,
    node_start: DateTime<Utc>,
    node: Usage,
    containers: &[ContainerReading],
    now: DateTime<Utc>,
) -> Value {
    let at = time(now);
    let mut pods: BTreeMap<(&str, &str), Vec<&ContainerReading>> = BTreeMap::new();
    for c in containers {
        pods.entry((&c.namespace, &c.pod)).or_default().push(c);
    }
    let pods: Vec<Value> = pods
        .into_iter()
        .map(|((namespace, name), mut cs)| {
            cs.sort_by(|a, b| a.container.cmp(&b.container));
            let total = cs.iter().fold(Usage::default(), |t, c| Usage {
                cpu_ns: t.cpu_ns.saturating_add(c.usage.cpu_ns),
                memory_usage: t.memory_usage.saturating_add(c.usage.memory_usage),
                working_set: t.working_set.saturating_add(c.usage.working_set),
            });
            let start = cs.iter().map(|c| c.started_at).min().unwrap_or(now);
            json!({
                "podRef": {"name": name, "namespace": namespace, "uid": cs[0].uid},
                "startTime": time(start),
                "containers": cs.iter().map(|c| json!({
                    "name": c.container,
                    "startTime": time(c.started_at),
                    "cpu": cpu(&c.usage, &at),
                    "memory": memory(&c.usage, &at),
                })).collect::<Vec<_>>(),
                "cpu": cpu(&total, &at),
                "memory": memory(&total, &at),
            })
        })
        .collect();
    json!({
        "node": {
            "nodeName": node_name,
            "startTime": time(node_start),
            "cpu": cpu(&node, &at),
            "memory": memory(&node, &at),
        },
        "pods": pods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn c(pod: &str, container: &str, cpu_ns: u64, ws: u64) -> ContainerReading {
        ContainerReading {
            namespace: "default".into(),
            pod: pod.into(),
            uid: format!("uid-{pod}"),
            container: container.into(),
            started_at: at("2026-12-07T06:00:00Z"),
            usage: Usage {
                cpu_ns,
                memory_usage: ws + 4096,
                working_set: ws,
            },
        }
    }

    #[test]
    fn containers_group_into_pods_with_summed_usage_in_the_kubelet_shape() {
        let node = Usage {
            cpu_ns: 9,
            memory_usage: 20,
            working_set: 10,
        };
        let readings = [
            c("web", "sidecar", 5, 1024),
            c("db", "main", 7, 2048),
            c("web", "app", 3, 4096),
        ];
        let s = summary(
            "n1",
            at("2026-12-01T00:00:00Z"),
            node,
            &readings,
            at("2026-12-07T06:00:10.250Z"),
        );
        assert_eq!(
            s["node"],
            json!({"nodeName": "n1", "startTime": "2026-12-01T00:00:00.000Z",
                "cpu": {"time": "2026-12-07T06:00:10.250Z", "usageCoreNanoSeconds": 9},
                "memory": {"time": "2026-12-07T06:00:10.250Z", "usageBytes": 20, "workingSetBytes": 10}})
        );
        let pods = s["pods"].as_array().unwrap();
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[0]["podRef"]["name"], "db");
        let web = &pods[1];
        assert_eq!(web["podRef"]["uid"], "uid-web");
        let names: Vec<&str> = web["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["app", "sidecar"]);
        assert_eq!(web["cpu"]["usageCoreNanoSeconds"], 8);
        assert_eq!(web["memory"]["workingSetBytes"], 5120);
        assert_eq!(
            web["containers"][0]["startTime"],
            "2026-12-07T06:00:00.000Z"
        );
    }
}
