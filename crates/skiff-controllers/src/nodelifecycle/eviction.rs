//! Taint-based eviction (upstream's taint-eviction controller, once the node lifecycle
//! controller's "taint manager"): a pod on a node with a NoExecute taint it does not
//! tolerate is deleted at once; one whose tolerations all carry `tolerationSeconds` is
//! deleted when the shortest of them has passed since the taint was added; a toleration
//! without seconds keeps it forever. Deletion is graceful, with upstream's
//! `DisruptionTarget` condition and `TaintManagerEviction` event; the pod's owner replaces
//! it as soon as it is terminating.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use skiff_apimachinery::scheduling::tolerates;
use skiff_reconcile::events::{reference, Recorder};
use skiff_reconcile::{Harness, Metrics, ObjectKey, Outcome};

use crate::Error;

/// What becomes of a pod on a tainted node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It stays (no NoExecute taint, all tolerated forever, or already terminating).
    Keep,
    /// Delete it now.
    Delete,
    /// Delete it after this long, unless the taints change meanwhile.
    DeleteAfter(Duration),
}

/// Upstream's `GetMatchingTolerations`: for each taint the first toleration that tolerates
/// it, or `None` when some taint has none.
pub fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> Option<Vec<&'a Toleration>> {
    taints
        .iter()
        .map(|taint| tolerations.iter().find(|t| tolerates(t, taint)))
        .collect()
}

/// Upstream's `getMinTolerationTime`: the shortest `tolerationSeconds` (zero if any is zero
/// or negative), or `None` when none sets it (tolerated forever). No tolerations at all
/// means at once.
pub fn min_toleration(tolerations: &[&Toleration]) -> Option<Duration> {
    if tolerations.is_empty() {
        return Some(Duration::ZERO);
    }
    let mut min: Option<u64> = None;
    for t in tolerations {
        if let Some(s) = t.toleration_seconds {
            let s = u64::try_from(s).unwrap_or(0);
            min = Some(min.map_or(s, |m| m.min(s)));
        }
    }
    min.map(Duration::from_secs)
}

/// The verdict for `pod` under `taints` at `now`. The wait counts from the earliest
/// `timeAdded` of the NoExecute taints (the node lifecycle controller stamps it), or from
/// `first_seen` (when this controller first saw the pod under such a taint) for a taint
/// without one.
pub fn plan(pod: &Pod, taints: &[Taint], now: Timestamp, first_seen: Timestamp) -> Verdict {
    if pod.metadata.deletion_timestamp.is_some() {
        return Verdict::Keep;
    }
    let no_execute: Vec<Taint> = taints
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .cloned()
        .collect();
    if no_execute.is_empty() {
        return Verdict::Keep;
    }
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let Some(used) = matching_tolerations(&no_execute, &tolerations) else {
        return Verdict::Delete;
    };
    let Some(wait) = min_toleration(&used) else {
        return Verdict::Keep;
    };
    let since = no_execute
        .iter()
        .map(|t| t.time_added.as_ref().map_or(first_seen, |t| t.0))
        .min()
        .unwrap_or(first_seen);
    let due = since
        .checked_add(SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX);
    match Duration::try_from(now.duration_until(due)) {
        Ok(left) if !left.is_zero() => Verdict::DeleteAfter(left),
        _ => Verdict::Delete,
    }
}

struct Ctx {
    client: kube::Client,
    recorder: Recorder,
    nodes: Store<Node>,
    /// When a pod was first seen under a NoExecute taint without `timeAdded`, by uid.
    first_seen: Mutex<HashMap<String, Timestamp>>,
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Runs the controller until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let mut controller = Harness::new("taint-eviction-controller", client.clone())
        .metrics(&metrics)
        .watch::<Pod>();
    let pods = controller.store();
    // A node's taints changing concerns every pod on it.
    let mut controller = controller.watches(move |n: &Node| {
        let name = n.metadata.name.clone().unwrap_or_default();
        pods.state()
            .iter()
            .filter(|p| node_of(p) == Some(name.as_str()))
            .filter_map(|p| ObjectKey::of(&p.metadata))
            .collect::<Vec<_>>()
    });
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "taint-eviction-controller"),
        nodes: controller.cache::<Node>(),
        first_seen: Mutex::default(),
        client,
    });
    controller.run(reconcile, ctx).await;
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let taints = node_of(&pod)
        .and_then(|n| ctx.nodes.get(&ObjectRef::new(n)))
        .and_then(|n| n.spec.as_ref().and_then(|s| s.taints.clone()))
        .unwrap_or_default();
    let now = Timestamp::now();
    let first_seen = {
        let mut seen = ctx.first_seen.lock().unwrap_or_else(|e| e.into_inner());
        if taints.iter().any(|t| t.effect == "NoExecute") {
            *seen.entry(uid.clone()).or_insert(now)
        } else {
            seen.remove(&uid);
            now
        }
    };
    match plan(&pod, &taints, now, first_seen) {
        Verdict::Keep => Ok(Outcome::Done),
        Verdict::DeleteAfter(left) => Ok(Outcome::RequeueAfter(left)),
        Verdict::Delete => {
            evict(&ctx, &pod).await?;
            ctx.first_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&uid);
            Ok(Outcome::Done)
        }
    }
}

/// Upstream's `addConditionAndDeletePod`: the `DisruptionTarget` condition, then a graceful
/// delete of exactly this pod (its uid as precondition).
async fn evict(ctx: &Ctx, pod: &Pod) -> Result<(), Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().ok_or(Error::Missing("name"))?;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let recorder = ctx.recorder.clone();
    let me = reference("v1", "Pod", &pod.metadata);
    let message = format!("Marking for deletion Pod {ns}/{name}");
    tokio::spawn(async move {
        recorder
            .publish(&me, "Normal", "TaintManagerEviction", &message)
            .await
    });
    let patch = json!({"status": {"conditions": [{
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": Time(Timestamp::now()),
    }]}});
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => tracing::info!(pod = %format!("{ns}/{name}"), "evicted for a NoExecute taint"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn taint(key: &str, effect: &str, added: Option<i64>) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            value: None,
            time_added: added.map(|s| Time(ts(s))),
        }
    }

    fn toleration(key: &str, effect: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: (!effect.is_empty()).then(|| effect.into()),
            toleration_seconds: seconds,
            value: None,
        }
    }

    fn pod(tolerations: Vec<Toleration>) -> Pod {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"nodeName": "node1", "containers": []},
        }))
        .unwrap();
        p.spec.as_mut().unwrap().tolerations = Some(tolerations);
        p
    }

    const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
    const NOT_READY: &str = "node.kubernetes.io/not-ready";

    /// Upstream's taint_eviction_test cases (TestCreatePod, TestUpdateNodeWithMultipleTaints,
    /// TestGetMinTolerationTime), on the verdict rather than on a fake clientset's actions.
    #[test]
    fn pods_are_evicted_as_their_tolerations_say() {
        let now = ts(100);
        let cases: Vec<(&str, Vec<Toleration>, Vec<Taint>, Verdict)> = vec![
            (
                "not scheduled on tainted node",
                vec![],
                vec![],
                Verdict::Keep,
            ),
            (
                "NoSchedule taints never evict",
                vec![],
                vec![taint("k", "NoSchedule", Some(0))],
                Verdict::Keep,
            ),
            (
                "not tolerating a NoExecute taint",
                vec![],
                vec![taint(UNREACHABLE, "NoExecute", Some(99))],
                Verdict::Delete,
            ),
            (
                "tolerating with another effect only",
                vec![toleration(UNREACHABLE, "NoSchedule", None)],
                vec![taint(UNREACHABLE, "NoExecute", Some(99))],
                Verdict::Delete,
            ),
            (
                "tolerating forever",
                vec![toleration(UNREACHABLE, "NoExecute", None)],
                vec![taint(UNREACHABLE, "NoExecute", Some(0))],
                Verdict::Keep,
            ),
            (
                "an empty effect tolerates every effect",
                vec![toleration(UNREACHABLE, "", None)],
                vec![taint(UNREACHABLE, "NoExecute", Some(0))],
                Verdict::Keep,
            ),
            (
                "tolerating for a while: counted from timeAdded",
                vec![toleration(UNREACHABLE, "NoExecute", Some(5))],
                vec![taint(UNREACHABLE, "NoExecute", Some(98))],
                Verdict::DeleteAfter(Duration::from_secs(3)),
            ),
            (
                "the while is over",
                vec![toleration(UNREACHABLE, "NoExecute", Some(5))],
                vec![taint(UNREACHABLE, "NoExecute", Some(95))],
                Verdict::Delete,
            ),
            (
                "zero and negative seconds mean at once",
                vec![toleration(UNREACHABLE, "NoExecute", Some(-3))],
                vec![taint(UNREACHABLE, "NoExecute", Some(100))],
                Verdict::Delete,
            ),
            (
                "several taints: the shortest toleration wins",
                vec![
                    toleration(UNREACHABLE, "NoExecute", Some(300)),
                    toleration(NOT_READY, "NoExecute", Some(10)),
                ],
                vec![
                    taint(UNREACHABLE, "NoExecute", Some(100)),
                    taint(NOT_READY, "NoExecute", Some(100)),
                ],
                Verdict::DeleteAfter(Duration::from_secs(10)),
            ),
            (
                "several taints, one not tolerated",
                vec![toleration(UNREACHABLE, "NoExecute", None)],
                vec![
                    taint(UNREACHABLE, "NoExecute", Some(100)),
                    taint("dedicated", "NoExecute", Some(100)),
                ],
                Verdict::Delete,
            ),
            (
                "a forever toleration beside a timed one",
                vec![
                    toleration(UNREACHABLE, "NoExecute", None),
                    toleration(NOT_READY, "NoExecute", Some(20)),
                ],
                vec![
                    taint(UNREACHABLE, "NoExecute", Some(100)),
                    taint(NOT_READY, "NoExecute", Some(100)),
                ],
                Verdict::DeleteAfter(Duration::from_secs(20)),
            ),
            (
                "a taint without timeAdded counts from when it was first seen",
                vec![toleration(UNREACHABLE, "NoExecute", Some(30))],
                vec![taint(UNREACHABLE, "NoExecute", None)],
                Verdict::DeleteAfter(Duration::from_secs(20)),
            ),
        ];
        for (name, tolerations, taints, want) in cases {
            assert_eq!(
                plan(&pod(tolerations), &taints, now, ts(90)),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn terminating_pods_are_left_alone() {
        let mut p = pod(vec![]);
        p.metadata.deletion_timestamp = Some(Time(ts(0)));
        let taints = [taint(UNREACHABLE, "NoExecute", Some(0))];
        assert_eq!(plan(&p, &taints, ts(100), ts(0)), Verdict::Keep);
    }

    #[test]
    fn min_toleration_time_as_upstream() {
        let t = |s: Option<i64>| toleration("k", "NoExecute", s);
        let cases: Vec<(Vec<Toleration>, Option<Duration>)> = vec![
            (vec![], Some(Duration::ZERO)),
            (vec![t(None)], None),
            (vec![t(Some(-1))], Some(Duration::ZERO)),
            (
                vec![t(Some(10)), t(None), t(Some(5))],
                Some(Duration::from_secs(5)),
            ),
        ];
        for (tolerations, want) in cases {
            let refs: Vec<&Toleration> = tolerations.iter().collect();
            assert_eq!(min_toleration(&refs), want, "{tolerations:?}");
        }
    }
}
