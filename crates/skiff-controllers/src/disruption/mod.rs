//! The disruption controller (upstream's `disruption` controller): keeps each
//! PodDisruptionBudget's status true, which the `pods/eviction` subresource spends from:
//! `expectedPods` (the scale of the pods' controllers, or the pods themselves for an
//! integer `minAvailable`), `currentHealthy` (Ready, not terminating, not evicted yet),
//! `desiredHealthy` (from `minAvailable` or `maxUnavailable`, percentages rounded up),
//! `disruptionsAllowed`, the `disruptedPods` the eviction recorded until the pod is seen
//! going (or 2 minutes pass), `observedGeneration` and the `DisruptionAllowed` condition.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::runtime::reflector::Store;
use serde_json::{json, Value};
use skiff_apimachinery::selector::LabelSelector;
use skiff_reconcile::{Harness, Metrics, ObjectKey, Outcome};

use crate::Error;

/// How long an eviction recorded in `disruptedPods` counts before the pod is seen deleted
/// (upstream's `DeletionTimeout`).
const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

/// The pods a budget covers: same namespace, matching its selector (none without one).
pub fn covered<'a>(pdb: &PodDisruptionBudget, pods: &'a [Arc<Pod>]) -> Vec<&'a Pod> {
    let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return Vec::new();
    };
    let Ok(selector) = serde_json::to_value(selector)
        .ok()
        .map(|v| LabelSelector::from_label_selector(&v))
        .transpose()
        .map(|s| s.unwrap_or_else(LabelSelector::nothing))
    else {
        return Vec::new();
    };
    pods.iter()
        .map(|p| p.as_ref())
        .filter(|p| p.metadata.namespace == pdb.metadata.namespace)
        .filter(|p| {
            let labels = serde_json::to_value(&p.metadata.labels).unwrap_or_default();
            selector.matches(labels.as_object())
        })
        .collect()
}

/// `value` of `total`: an integer as is, a percentage rounded up
/// (`GetScaledValueFromIntOrPercent(.., roundUp=true)`); `None` for a malformed one.
pub fn scaled(value: &IntOrString, total: i32) -> Option<i32> {
    match value {
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let v = (pct * i64::from(total) + 99) / 100;
            i32::try_from(v).ok()
        }
    }
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The budget's new status. `expected` is the controllers' scale (used for percentages and
/// `maxUnavailable`; an integer `minAvailable` counts the pods themselves, as upstream).
pub fn status(pdb: &PodDisruptionBudget, pods: &[&Pod], expected: i32, now: Timestamp) -> Value {
    let spec = pdb.spec.clone().unwrap_or_default();
    let old = pdb.status.clone().unwrap_or_default();
    // Evictions recorded by the API, kept until the pod is seen going or they expire.
    let mut disrupted = BTreeMap::new();
    for (name, at) in old.disrupted_pods.unwrap_or_default() {
        let alive = pods.iter().any(|p| {
            p.metadata.name.as_deref() == Some(name.as_str())
                && p.metadata.deletion_timestamp.is_none()
        });
        let fresh =
            at.0.checked_add(DELETION_TIMEOUT)
                .is_ok_and(|end| end > now);
        if alive && fresh {
            disrupted.insert(name, at);
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .count();
    let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(min)), _) => (i32::try_from(pods.len()).unwrap_or(i32::MAX), *min),
        (Some(min), _) => (expected, scaled(min, expected).unwrap_or(expected)),
        (None, Some(max)) => (
            expected,
            (expected - scaled(max, expected).unwrap_or(0)).max(0),
        ),
        (None, None) => (expected, expected),
    };
    let allowed = (healthy - desired).max(0);
    let (cond_status, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let previous = old
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "DisruptionAllowed");
    let transition = previous
        .filter(|c| c.status == cond_status)
        .map(|c| json!(c.last_transition_time))
        .unwrap_or_else(|| json!(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)));
    json!({
        "observedGeneration": pdb.metadata.generation,
        "disruptedPods": disrupted,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [{"type": "DisruptionAllowed", "status": cond_status, "reason": reason,
                        "message": "", "observedGeneration": pdb.metadata.generation,
                        "lastTransitionTime": transition}],
    })
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    statefulsets: Store<StatefulSet>,
    controllers: Store<ReplicationController>,
}

/// The scale of the covered pods' controllers, each counted once (upstream's
/// `getExpectedScale`); a pod without a known controller counts for itself.
fn expected_scale(ctx: &Ctx, pods: &[&Pod]) -> i32 {
    let mut owners: HashMap<String, i32> = HashMap::new();
    let mut loose = 0i32;
    for pod in pods {
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true));
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let scale = owner.and_then(|r| {
            match r.kind.as_str() {
                "ReplicaSet" => scale_of(&ctx.replicasets, &r.name, ns, |o| {
                    o.spec.as_ref().and_then(|s| s.replicas)
                }),
                "StatefulSet" => scale_of(&ctx.statefulsets, &r.name, ns, |o| {
                    o.spec.as_ref().and_then(|s| s.replicas)
                }),
                "ReplicationController" => scale_of(&ctx.controllers, &r.name, ns, |o| {
                    o.spec.as_ref().and_then(|s| s.replicas)
                }),
                _ => None,
            }
            .map(|scale| (r.uid.clone(), scale))
        });
        match scale {
            Some((uid, scale)) => {
                owners.insert(uid, scale);
            }
            None => loose = loose.saturating_add(1),
        }
    }
    owners.values().fold(loose, |a, b| a.saturating_add(*b))
}

/// The replicas of the controller `name` in `ns`, from its cache (1 when unset, the API's
/// default).
fn scale_of<K: kube::Resource<DynamicType = ()> + Clone>(
    store: &Store<K>,
    name: &str,
    ns: &str,
    replicas: impl Fn(&K) -> Option<i32>,
) -> Option<i32> {
    store
        .get(&kube::runtime::reflector::ObjectRef::new(name).within(ns))
        .map(|o| replicas(&o).unwrap_or(1))
}

/// Runs the controller until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let mut controller = Harness::new("disruption-controller", client.clone())
        .metrics(&metrics)
        .watch::<PodDisruptionBudget>();
    let budgets = controller.store();
    let mut controller = controller.watches(move |p: &Pod| {
        let pod = Arc::new(p.clone());
        budgets
            .state()
            .iter()
            .filter(|b| !covered(b, std::slice::from_ref(&pod)).is_empty())
            .filter_map(|b| ObjectKey::of(&b.metadata))
            .collect::<Vec<_>>()
    });
    let ctx = Arc::new(Ctx {
        pods: controller.cache::<Pod>(),
        replicasets: controller.cache::<ReplicaSet>(),
        statefulsets: controller.cache::<StatefulSet>(),
        controllers: controller.cache::<ReplicationController>(),
        client,
    });
    controller.run(reconcile, ctx).await;
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let all = ctx.pods.state();
    let pods = covered(&pdb, &all);
    let expected = expected_scale(&ctx, &pods);
    let new = status(&pdb, &pods, expected, Timestamp::now());
    let old = serde_json::to_value(&pdb.status)?;
    if new == old {
        return Ok(Outcome::Done);
    }
    let ns = pdb
        .metadata
        .namespace
        .as_deref()
        .ok_or(Error::Missing("namespace"))?;
    let name = pdb.metadata.name.as_deref().ok_or(Error::Missing("name"))?;
    let mut object = serde_json::to_value(pdb.as_ref())?;
    object["status"] = new;
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), ns);
    // A replace with the cached resourceVersion: an eviction that spent a disruption
    // meanwhile makes this a conflict, retried on the fresh budget.
    let object: PodDisruptionBudget = serde_json::from_value(object)?;
    api.replace_status(name, &PostParams::default(), &object)
        .await?;
    // Recorded evictions expire: look again then.
    Ok(Outcome::RequeueAfter(std::time::Duration::from_secs(30)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool, deleting: bool) -> Arc<Pod> {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": []},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap();
        if deleting {
            p.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
            );
        }
        Arc::new(p)
    }

    fn pdb(spec: Value, status: Value) -> PodDisruptionBudget {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "web"}});
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "generation": 3},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    /// Upstream's disruption_test.go cases (TestNoSelector, TestUnavailable,
    /// TestIntegerMaxUnavailable, TestReplicaSet percentages), on the computed status.
    #[test]
    fn budgets_status_as_upstream() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let pods = vec![
            pod("a", true, false),
            pod("b", true, false),
            pod("c", false, false),
        ];
        let cases = vec![
            (
                "minAvailable 2 of 2 healthy",
                json!({"minAvailable": 2}),
                3,
                (2, 2, 0, 3),
            ),
            (
                "minAvailable 1",
                json!({"minAvailable": 1}),
                3,
                (2, 1, 1, 3),
            ),
            (
                "minAvailable 50% of 3 rounds up",
                json!({"minAvailable": "50%"}),
                3,
                (2, 2, 0, 3),
            ),
            (
                "maxUnavailable 1 of 3",
                json!({"maxUnavailable": 1}),
                3,
                (2, 2, 0, 3),
            ),
            (
                "maxUnavailable 2 of 4 expected",
                json!({"maxUnavailable": 2}),
                4,
                (2, 2, 0, 4),
            ),
            (
                "maxUnavailable 100%",
                json!({"maxUnavailable": "100%"}),
                3,
                (2, 0, 2, 3),
            ),
        ];
        for (name, spec, expected, (healthy, desired, allowed, expected_pods)) in cases {
            let budget = pdb(spec, json!({}));
            let refs: Vec<&Pod> = covered(&budget, &pods);
            let s = status(&budget, &refs, expected, now);
            assert_eq!(
                (
                    s["currentHealthy"].as_i64().unwrap(),
                    s["desiredHealthy"].as_i64().unwrap(),
                    s["disruptionsAllowed"].as_i64().unwrap(),
                    s["expectedPods"].as_i64().unwrap()
                ),
                (healthy, desired, allowed, expected_pods),
                "{name}"
            );
            assert_eq!(s["observedGeneration"], 3);
            let reason = if allowed > 0 {
                "SufficientPods"
            } else {
                "InsufficientPods"
            };
            assert_eq!(s["conditions"][0]["reason"], reason, "{name}");
        }
    }

    #[test]
    fn evicted_pods_stop_counting_until_seen_going_or_expired() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let pods = vec![
            pod("a", true, false),
            pod("b", true, false),
            pod("c", true, true),
        ];
        let budget = pdb(
            json!({"minAvailable": 1}),
            json!({"disruptedPods": {
                "a": "2026-01-01T00:09:30Z",   // recent: a does not count as healthy
                "b": "2026-01-01T00:00:00Z",   // expired: forgotten
                "c": "2026-01-01T00:09:50Z",   // terminating now: confirmed, forgotten
            }}),
        );
        let refs: Vec<&Pod> = covered(&budget, &pods);
        let s = status(&budget, &refs, 3, now);
        assert_eq!(s["disruptedPods"], json!({"a": "2026-01-01T00:09:30Z"}));
        assert_eq!(s["currentHealthy"], 1);
        assert_eq!(s["disruptionsAllowed"], 0);
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&IntOrString::String("50%".into()), 3), Some(2));
        assert_eq!(scaled(&IntOrString::String("10%".into()), 10), Some(1));
        assert_eq!(scaled(&IntOrString::Int(4), 10), Some(4));
        assert_eq!(scaled(&IntOrString::String("x".into()), 10), None);
    }
}
