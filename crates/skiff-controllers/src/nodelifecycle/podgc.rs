//! The pod garbage collector's node cases (upstream's PodGC `gcOrphaned`,
//! `gcUnscheduledTerminating` and `gcTerminating`): pods bound to a node that no longer
//! exists, terminating pods never scheduled, and terminating pods on a node that is not
//! Ready and carries `node.kubernetes.io/out-of-service` are marked Failed and
//! force-deleted. That is the one way a StatefulSet pod of a lost node is replaced: its
//! graceful deletion never completes without a kubelet, so the StatefulSet controller waits
//! until someone confirms the node is gone (deletes it, or taints it out-of-service).
//!
//! Orphans wait out a quarantine first, as upstream's (a pod may be bound to a node whose
//! registration the cache has not seen yet): upstream's 40 s for a node this controller
//! never saw, the node monitor grace period (8 s) for one it saw deleted, long enough for a
//! live agent to register its Node again (it does within one Lease renewal), short enough
//! that a dead node's StatefulSet pods are replaced seconds after `kubectl delete node`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::Store;
use serde_json::json;
use skiff_reconcile::{Harness, Metrics, ObjectKey, Outcome};

use super::plan::{is_ready, TAINT_OUT_OF_SERVICE};
use crate::Error;

/// Why a pod is collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Bound to a node that does not exist (confirmed by a GET before acting).
    Orphaned,
    /// Terminating and never scheduled.
    UnscheduledTerminating,
    /// Terminating on a node not Ready and tainted out-of-service.
    OutOfService,
}

/// The pods to collect, given every pod and node.
pub fn plan<'a>(pods: &'a [Arc<Pod>], nodes: &[Arc<Node>]) -> Vec<(&'a Pod, Reason)> {
    let nodes: HashMap<&str, &Node> = nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n.as_ref())))
        .collect();
    let mut out = Vec::new();
    for pod in pods {
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let reason = if node_name.is_empty() {
            terminating.then_some(Reason::UnscheduledTerminating)
        } else {
            match nodes.get(node_name) {
                None => Some(Reason::Orphaned),
                Some(node) => {
                    let out_of_service = node
                        .spec
                        .as_ref()
                        .and_then(|s| s.taints.as_ref())
                        .is_some_and(|ts| ts.iter().any(|t| t.key == TAINT_OUT_OF_SERVICE));
                    (terminating && out_of_service && !is_ready(node))
                        .then_some(Reason::OutOfService)
                }
            }
        };
        if let Some(reason) = reason {
            out.push((pod.as_ref(), reason));
        }
    }
    out
}

/// Upstream's quarantine for nodes never seen (`quarantineTime`).
pub const QUARANTINE_UNSEEN: Duration = Duration::from_secs(40);

/// How long an orphan's node must stay missing before its pods go, given when it was first
/// found missing: `None` once the quarantine is over.
pub fn quarantine_left(
    missing_since: Timestamp,
    seen_before: bool,
    grace: Duration,
    now: Timestamp,
) -> Option<Duration> {
    let quarantine = if seen_before {
        grace
    } else {
        QUARANTINE_UNSEEN
    };
    let end = missing_since
        .checked_add(SignedDuration::try_from(quarantine).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX);
    Duration::try_from(now.duration_until(end))
        .ok()
        .filter(|d| !d.is_zero())
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    grace: Duration,
    /// Nodes this controller has seen in its cache.
    seen: Mutex<HashSet<String>>,
    /// When each missing node was first found missing.
    missing: Mutex<HashMap<String, Timestamp>>,
}

/// Runs the collector until the process exits: one pass over all pods whenever a pod or a
/// node changes.
pub async fn run(client: kube::Client, metrics: Metrics, grace: Duration) {
    let mut controller = Harness::new("pod-garbage-collector", client.clone())
        .metrics(&metrics)
        .keys()
        .key(ObjectKey::named("podgc"))
        .triggers::<Pod>()
        .triggers::<Node>();
    let ctx = Arc::new(Ctx {
        pods: controller.cache::<Pod>(),
        nodes: controller.cache::<Node>(),
        grace,
        seen: Mutex::default(),
        missing: Mutex::default(),
        client,
    });
    controller.run_keys(|_, ctx| reconcile(ctx), ctx).await;
}

async fn reconcile(ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let (pods, nodes) = (ctx.pods.state(), ctx.nodes.state());
    let now = Timestamp::now();
    {
        let mut seen = ctx.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut missing = ctx.missing.lock().unwrap_or_else(|e| e.into_inner());
        for n in &nodes {
            if let Some(name) = &n.metadata.name {
                seen.insert(name.clone());
                missing.remove(name);
            }
        }
    }
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    let mut confirmed: HashMap<String, bool> = HashMap::new();
    let mut recheck: Option<Duration> = None;
    for (pod, reason) in plan(&pods, &nodes) {
        if reason == Reason::Orphaned {
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            let left = {
                let seen = ctx.seen.lock().unwrap_or_else(|e| e.into_inner());
                let mut missing = ctx.missing.lock().unwrap_or_else(|e| e.into_inner());
                let since = *missing.entry(node.clone()).or_insert(now);
                quarantine_left(since, seen.contains(&node), ctx.grace, now)
            };
            if let Some(left) = left {
                recheck = Some(recheck.map_or(left, |r| r.min(left)));
                continue;
            }
            // The cache may lag a registration: only the API's 404 says it is gone.
            let gone = match confirmed.get(&node) {
                Some(gone) => *gone,
                None => {
                    let gone = nodes_api.get_opt(&node).await?.is_none();
                    confirmed.insert(node, gone);
                    gone
                }
            };
            if !gone {
                continue;
            }
        }
        mark_failed_and_delete(&ctx.client, pod, reason).await?;
    }
    Ok(match recheck {
        Some(d) => Outcome::RequeueAfter(d + Duration::from_millis(10)),
        None => Outcome::Done,
    })
}

/// Upstream's `markFailedAndDeletePodWithCondition`: phase Failed (with `DisruptionTarget`
/// for an orphan) unless already finished, then a delete with grace period 0.
async fn mark_failed_and_delete(
    client: &kube::Client,
    pod: &Pod,
    reason: Reason,
) -> Result<(), Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().ok_or(Error::Missing("name"))?;
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if !matches!(phase, Some("Succeeded" | "Failed")) {
        let mut status = json!({"phase": "Failed"});
        if reason == Reason::Orphaned {
            status["conditions"] = json!([{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists",
                "lastTransitionTime": Time(Timestamp::now()),
            }]);
        }
        match api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Strategic(json!({"status": status})),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => tracing::info!(pod = %format!("{ns}/{name}"), ?reason, "PodGC force-deleted pod"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, terminating: bool) -> Arc<Pod> {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": []},
        }))
        .unwrap();
        if terminating {
            p.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        }
        Arc::new(p)
    }

    fn node(name: &str, ready: &str, taints: serde_json::Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"taints": taints},
                "status": {"conditions": [{"type": "Ready", "status": ready}]},
            }))
            .unwrap(),
        )
    }

    /// Upstream's gc_controller_test cases TestGCOrphaned, TestGCUnscheduledTerminating and
    /// TestGCTerminating (out-of-service), as verdicts.
    #[test]
    fn pods_of_gone_or_out_of_service_nodes_are_collected() {
        let oos =
            json!([{"key": TAINT_OUT_OF_SERVICE, "value": "nodeshutdown", "effect": "NoExecute"}]);
        let nodes = vec![
            node("up", "True", json!([])),
            node("down", "Unknown", json!([])),
            node("down-oos", "Unknown", oos.clone()),
            node("up-oos", "True", oos),
        ];
        let pods = vec![
            pod("on-up", "up", false),
            pod("on-gone", "gone", false),
            pod("terminating-on-gone", "gone", true),
            pod("unscheduled", "", false),
            pod("unscheduled-terminating", "", true),
            pod("terminating-on-down", "down", true),
            pod("running-on-down-oos", "down-oos", false),
            pod("terminating-on-down-oos", "down-oos", true),
            pod("terminating-on-ready-oos", "up-oos", true),
        ];
        let got: Vec<(String, Reason)> = plan(&pods, &nodes)
            .into_iter()
            .map(|(p, r)| (p.metadata.name.clone().unwrap(), r))
            .collect();
        let want = vec![
            ("on-gone".to_string(), Reason::Orphaned),
            ("terminating-on-gone".to_string(), Reason::Orphaned),
            (
                "unscheduled-terminating".to_string(),
                Reason::UnscheduledTerminating,
            ),
            ("terminating-on-down-oos".to_string(), Reason::OutOfService),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn orphans_wait_out_a_quarantine() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |s: i64| t0.checked_add(SignedDuration::from_secs(s)).unwrap();
        let grace = Duration::from_secs(8);
        // A node seen deleted: the grace period.
        assert_eq!(
            quarantine_left(t0, true, grace, at(3)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(quarantine_left(t0, true, grace, at(8)), None);
        // A node never seen: upstream's 40 s.
        assert_eq!(
            quarantine_left(t0, false, grace, at(8)),
            Some(Duration::from_secs(32))
        );
        assert_eq!(quarantine_left(t0, false, grace, at(41)), None);
    }
}
