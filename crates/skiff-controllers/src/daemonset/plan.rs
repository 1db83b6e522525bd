//! Pure DaemonSet planning (upstream `daemon_controller.go` `syncDaemonSet`, `manage`,
//! `podsShouldBeOnNode`, and `update.go`): from the DaemonSet, the nodes, and the pods and
//! ControllerRevisions of its namespace, the writes of one pass.
//!
//! As upstream, a pass first records the template as a revision, then makes each eligible
//! node run exactly one pod (two while surging), and only when that found nothing to do
//! replaces outdated pods within maxUnavailable/maxSurge ([`super::update`]); the status is
//! computed from what was observed, before any of this pass's writes.

use super::node::{node_should_run, pin_to_node, target_node, template_spec_with_tolerations};
pub use super::update::{
    allows_surge, new_revision, revision_data, scaled_value, surge_count, unavailable_count,
    update_counts,
};
use super::update::{cleanup_history, construct_history, rolling, rolling_update};
use crate::claim::{claim, Change};
use crate::meta::{
    created, labels, new_controller_ref, pod_is_available, pod_ready_since, selector_matches,
};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// The pod and revision label holding the revision's hash (upstream
/// `DefaultDaemonSetUniqueLabelKey`, `controller-revision-hash`).
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The pod label holding the template generation it was made from (upstream
/// `DaemonSetTemplateGenerationKey`), kept for clients that still read it.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Where apps/v1 DaemonSets carry their template generation (upstream
/// `DeprecatedTemplateGeneration`).
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// Most creates or deletes in one pass (upstream `BurstReplicas`).
pub const BURST_REPLICAS: usize = 250;
/// Most name collisions tried before giving up on a pass.
pub(super) const MAX_COLLISIONS: i32 = 32;
/// First delay before a failed daemon pod on a node is replaced again (upstream's
/// `failedPodsBackoff`: 1 s doubling to 15 min).
pub const FAILED_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Longest delay between replacements of failed pods on one node.
pub const FAILED_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// Why the plan could not go on with a rolling update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// maxUnavailable or maxSurge is neither a count nor a percentage (validation refuses
    /// these, so only an object written around it gets here).
    #[error("invalid value for {field}: {value:?}")]
    InvalidIntOrPercent { field: &'static str, value: String },
    /// A percentage of the node count does not fit a pod count.
    #[error("{field} of {value:?} overflows for {total} nodes")]
    Overflow {
        field: &'static str,
        value: String,
        total: i32,
    },
}

/// What the plan reads: the DaemonSet, every node, and the objects of its namespace.
pub struct Observed<'a> {
    pub ds: &'a DaemonSet,
    pub nodes: &'a [&'a Node],
    pub pods: &'a [&'a Pod],
    pub revisions: &'a [&'a ControllerRevision],
    pub now: Timestamp,
    /// Whether the cache shows every create and delete of earlier passes (upstream
    /// expectations): until it does, only the status is written, so a stale cache never
    /// creates a second pod on a node.
    pub expectations_met: bool,
}

/// Why a pod is deleted (for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// It failed or succeeded and is replaced.
    Finished,
    /// Its node no longer qualifies (selector, affinity, NoExecute taint) or is gone.
    NodeIneligible,
    /// A node has more daemon pods than it should.
    Excess,
    /// It is outdated and the rolling update replaces it.
    Update,
}

/// One write through the API.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Take ownership of an orphan pod matching the selector.
    AdoptPod { pod: String },
    /// Drop ownership of a pod that no longer matches.
    ReleasePod { pod: String },
    /// Take ownership of an orphan revision matching the selector.
    AdoptRevision { name: String },
    /// Drop ownership of a revision that no longer matches.
    ReleaseRevision { name: String },
    /// Record the template as a new revision.
    CreateRevision(Box<ControllerRevision>),
    /// Move the current revision to the top (a rollback to an earlier template).
    SetRevisionNumber { name: String, revision: i64 },
    /// Give a pod the hash of the revision kept when duplicates are removed.
    RelabelPod { pod: String, hash: String },
    /// Delete a duplicate or an old revision past revisionHistoryLimit.
    DeleteRevision { name: String },
    /// Create a daemon pod for `node`.
    CreatePod { node: String, pod: Box<Pod> },
    /// Delete a daemon pod.
    DeletePod { pod: String, why: Why },
    /// Record an Event on the DaemonSet.
    Event {
        type_: &'static str,
        reason: &'static str,
        message: String,
    },
    /// Write `.status`.
    Status(Box<DaemonSetStatus>),
}

/// The writes of one pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// When to look again although nothing changes (a failed pod's backoff ending, a pod
    /// reaching minReadySeconds).
    pub requeue_after: Option<Duration>,
    /// Why the rolling update could not be planned; the runner retries with backoff.
    pub error: Option<Error>,
}

impl Plan {
    fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |d| d.min(after)));
    }
}

/// Per-node backoff of failed-pod replacement (upstream `flowcontrol.Backoff` keyed by
/// `uid/observedGeneration/node`): a kubelet that rejects every pod would otherwise make
/// the controller and it fight in a hot loop.
#[derive(Debug, Default)]
pub struct FailedBackoff {
    entries: HashMap<String, (Duration, Timestamp)>,
}

impl FailedBackoff {
    /// The delay left at `now` for `key`, if it is still backing off.
    pub fn remaining(&self, key: &str, now: Timestamp) -> Option<Duration> {
        let (delay, last) = self.entries.get(key)?;
        let elapsed = Duration::try_from(now.duration_since(*last)).unwrap_or_default();
        delay.checked_sub(elapsed).filter(|d| !d.is_zero())
    }

    /// Records a replacement at `now`: the delay doubles up to the maximum, and starts over
    /// once the key has been quiet for twice the maximum.
    pub fn next(&mut self, key: &str, now: Timestamp) {
        let delay = match self.entries.get(key) {
            Some((delay, last)) if !expired(*last, now) => {
                delay.saturating_mul(2).min(FAILED_BACKOFF_MAX)
            }
            _ => FAILED_BACKOFF_INITIAL,
        };
        self.entries.insert(key.to_string(), (delay, now));
    }

    /// Forgets keys quiet for twice the maximum delay (upstream's periodic `GC`).
    pub fn gc(&mut self, now: Timestamp) {
        self.entries.retain(|_, (_, last)| !expired(*last, now));
    }
}

fn expired(last: Timestamp, now: Timestamp) -> bool {
    let quiet = Duration::try_from(now.duration_since(last)).unwrap_or_default();
    quiet > FAILED_BACKOFF_MAX.saturating_mul(2)
}

/// The template generation pods are labelled with (upstream `GetTemplateGeneration`): the
/// deprecated annotation, or `metadata.generation` when the API server does not write it
/// (both only grow when the template does here, as skiff bumps the generation on spec
/// changes, and the revision hash decides what is updated anyway). `None` when the
/// annotation does not parse, as upstream.
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    match ds
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
    {
        Some(v) => v.parse().ok(),
        None => ds.metadata.generation,
    }
}

/// Whether a pod is at the current template (upstream `IsPodUpdated`): its hash label or its
/// template generation label matches.
pub fn is_pod_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let l = pod.metadata.labels.as_ref();
    let get = |k: &str| l.and_then(|l| l.get(k)).map(String::as_str);
    let template_matches =
        generation.is_some_and(|g| get(TEMPLATE_GENERATION_LABEL) == Some(g.to_string().as_str()));
    let hash_matches = !hash.is_empty() && get(REVISION_HASH_LABEL) == Some(hash);
    hash_matches || template_matches
}

/// The pod of `ds` for `node` (upstream `CreatePodTemplate` plus the node affinity of
/// `syncNodes`): the template with the automatic tolerations, the generation and hash labels,
/// a controller reference, and pinned to the node for the scheduler to bind.
pub fn new_pod(ds: &DaemonSet, node: &str, hash: &str) -> Option<Pod> {
    let name = ds.metadata.name.as_deref()?;
    let tmeta = ds
        .spec
        .as_ref()?
        .template
        .metadata
        .clone()
        .unwrap_or_default();
    let mut l = tmeta.labels.unwrap_or_default();
    if let Some(g) = template_generation(ds) {
        l.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    if !hash.is_empty() {
        l.insert(REVISION_HASH_LABEL.into(), hash.into());
    }
    let mut spec = template_spec_with_tolerations(ds);
    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    Some(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(l),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![new_controller_ref(
                "apps/v1",
                "DaemonSet",
                &ds.metadata,
            )?]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// Oldest first, scheduled pods before pending ones (upstream `podByCreationTimestampAndPhase`).
fn sort_pods(pods: &mut [&Pod]) {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    pods.sort_by(|a, b| {
        scheduled(b)
            .cmp(&scheduled(a))
            .then_with(|| created(&a.metadata).cmp(&created(&b.metadata)))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

pub(super) fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

pub(super) fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub(super) fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The pods the DaemonSet controls after adoption and release (upstream `ClaimPods`).
fn claim_pods<'a>(o: &Observed<'a>, out: &mut Vec<Action>) -> Vec<&'a Pod> {
    let Some(spec) = o.ds.spec.as_ref() else {
        return Vec::new();
    };
    let c = claim(
        &o.ds.metadata,
        |p: &Pod| selector_matches(&spec.selector, &labels(&p.metadata)),
        o.pods,
    );
    out.extend(c.changes.into_iter().map(|change| match change {
        Change::Adopt(pod) => Action::AdoptPod { pod },
        Change::Release(pod) => Action::ReleasePod { pod },
    }));
    c.owned
}

/// Claimed pods by the node they are for (upstream `getNodesToDaemonPods`); terminal pods
/// already being deleted are left out unless `include_deleted_terminal`.
pub(super) fn by_node<'a>(
    pods: &[&'a Pod],
    include_deleted_terminal: bool,
) -> BTreeMap<String, Vec<&'a Pod>> {
    let mut map: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for &pod in pods {
        let terminal = matches!(phase(pod), "Succeeded" | "Failed");
        if !include_deleted_terminal && terminal && terminating(pod) {
            continue;
        }
        if let Some(node) = target_node(pod) {
            map.entry(node.to_string()).or_default().push(pod);
        }
    }
    map
}

/// The plan of one pass (upstream `syncDaemonSet`).
pub fn plan(o: &Observed, backoff: &mut FailedBackoff) -> Plan {
    let mut plan = Plan::default();
    let ds = o.ds;
    let (Some(spec), Some(uid)) = (ds.spec.as_ref(), ds.metadata.uid.as_deref()) else {
        return plan;
    };
    let selector = &spec.selector;
    if selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty())
    {
        plan.actions.push(Action::Event {
            type_: "Warning",
            reason: "SelectingAll",
            message: "This daemon set is selecting all pods. A non-empty selector is required."
                .into(),
        });
        return plan;
    }
    // Whether its pods and revisions still exist is unknown while it is being deleted, so
    // neither they nor its status are touched (upstream).
    if ds.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    let mut out = Vec::new();
    let claimed = claim_pods(o, &mut out);
    let Some((hash, collision_count, old)) = construct_history(o, uid, &claimed, &mut out) else {
        return plan;
    };
    let generation = template_generation(ds);
    let processed = o.expectations_met;
    if processed {
        let (creates, deletes) = manage(o, &claimed, &hash, backoff, &mut plan, &mut out);
        if creates == 0 && deletes == 0 && rolling(ds).is_some() {
            if let Err(e) = rolling_update(o, &claimed, &hash, generation, &mut out) {
                plan.error = Some(e);
            }
        }
        cleanup_history(ds, &claimed, &old, &mut out);
    } else {
        // Revisions may still be written: nothing about them depends on the pod cache.
        out.retain(|a| {
            matches!(
                a,
                Action::AdoptRevision { .. }
                    | Action::ReleaseRevision { .. }
                    | Action::CreateRevision(_)
                    | Action::SetRevisionNumber { .. }
            )
        });
    }
    plan.actions = out;
    let (status, available_in) = status(o, &claimed, &hash, generation, processed, collision_count);
    if let Some(after) = available_in {
        plan.requeue(after);
    }
    if let Some(status) = status {
        plan.actions.push(Action::Status(Box::new(status)));
    }
    plan
}

/// Creates and deletes so each eligible node runs one pod (upstream `manage` and
/// `podsShouldBeOnNode`); returns how many of each were planned.
fn manage(
    o: &Observed,
    claimed: &[&Pod],
    hash: &str,
    backoff: &mut FailedBackoff,
    plan: &mut Plan,
    out: &mut Vec<Action>,
) -> (usize, usize) {
    let ds = o.ds;
    let node_pods = by_node(claimed, false);
    let surge = allows_surge(ds);
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let uid = ds.metadata.uid.as_deref().unwrap_or_default();
    let observed_gen = ds
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    let ns = ds.metadata.namespace.as_deref().unwrap_or_default();
    let mut creates: Vec<String> = Vec::new();
    let mut deletes: Vec<(String, Why)> = Vec::new();
    for node in o.nodes {
        let node_name = node.metadata.name.clone().unwrap_or_default();
        let fit = node_should_run(node, ds);
        let pods = node_pods.get(&node_name);
        let exists = pods.is_some_and(|p| !p.is_empty());
        if fit.should_run && !exists {
            creates.push(node_name);
        } else if fit.should_continue_running {
            let mut running: Vec<&Pod> = Vec::new();
            for &pod in pods.map(Vec::as_slice).unwrap_or_default() {
                if terminating(pod) {
                    continue;
                }
                match phase(pod) {
                    "Failed" => {
                        let key = format!("{uid}/{observed_gen}/{node_name}");
                        if let Some(delay) = backoff.remaining(&key, o.now) {
                            plan.requeue(delay);
                            continue;
                        }
                        backoff.next(&key, o.now);
                        out.push(Action::Event {
                            type_: "Warning",
                            reason: "FailedDaemonPod",
                            message: format!(
                                "Found failed daemon pod {ns}/{} on node {node_name}, will try to kill it",
                                name(pod)
                            ),
                        });
                        deletes.push((name(pod), Why::Finished));
                    }
                    "Succeeded" => {
                        out.push(Action::Event {
                            type_: "Normal",
                            reason: "SucceededDaemonPod",
                            message: format!(
                                "Found succeeded daemon pod {ns}/{} on node {node_name}, will try to delete it",
                                name(pod)
                            ),
                        });
                        deletes.push((name(pod), Why::Finished));
                    }
                    _ => running.push(pod),
                }
            }
            sort_pods(&mut running);
            if !surge {
                // One pod per node: all but the oldest go.
                deletes.extend(running.iter().skip(1).map(|p| (name(p), Why::Excess)));
                continue;
            }
            if running.is_empty() {
                if fit.should_run {
                    creates.push(node_name);
                }
                continue;
            }
            // Surging: keep the oldest new pod and the oldest old one; the old one goes once
            // it is not ready or the new one is available.
            let (mut oldest_new, mut oldest_old) = (None, None);
            for &pod in &running {
                let slot = if is_pod_updated_hash(pod, hash) {
                    &mut oldest_new
                } else {
                    &mut oldest_old
                };
                if slot.is_none() {
                    *slot = Some(pod);
                } else {
                    deletes.push((name(pod), Why::Excess));
                }
            }
            if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                if pod_ready_since(old).is_none() || pod_is_available(new, min_ready, o.now) {
                    deletes.push((name(old), Why::Update));
                }
            }
        } else if exists {
            for &pod in pods.map(Vec::as_slice).unwrap_or_default() {
                if !terminating(pod) {
                    deletes.push((name(pod), Why::NodeIneligible));
                }
            }
        }
    }
    // Pods for nodes that are gone and never bound: no kubelet or pod GC will remove them.
    let known: HashSet<&str> = o
        .nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    for (node, pods) in &node_pods {
        if known.contains(node.as_str()) {
            continue;
        }
        for pod in pods {
            let bound = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty());
            if !bound {
                deletes.push((name(pod), Why::NodeIneligible));
            }
        }
    }
    sync_nodes(ds, creates, deletes, hash, out)
}

/// Only the hash decides here, as upstream's surge pruning compares the hash label alone.
fn is_pod_updated_hash(pod: &Pod, hash: &str) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_HASH_LABEL))
        .is_some_and(|h| h == hash)
}

/// Turns node names and pod names into writes, at most [`BURST_REPLICAS`] of each (upstream
/// `syncNodes`); returns how many creates and deletes were planned.
pub(super) fn sync_nodes(
    ds: &DaemonSet,
    creates: Vec<String>,
    deletes: Vec<(String, Why)>,
    hash: &str,
    out: &mut Vec<Action>,
) -> (usize, usize) {
    let mut created = 0;
    for node in creates.into_iter().take(BURST_REPLICAS) {
        if let Some(pod) = new_pod(ds, &node, hash) {
            out.push(Action::CreatePod {
                node,
                pod: Box::new(pod),
            });
            created += 1;
        }
    }
    let mut seen = HashSet::new();
    let deletes: Vec<_> = deletes
        .into_iter()
        .filter(|(p, _)| seen.insert(p.clone()))
        .take(BURST_REPLICAS)
        .collect();
    let deleted = deletes.len();
    out.extend(
        deletes
            .into_iter()
            .map(|(pod, why)| Action::DeletePod { pod, why }),
    );
    (created, deleted)
}

/// The status from what was observed (upstream `updateDaemonSetStatus`), `None` when it is
/// already so; and how long until a ready pod becomes available (to look again then).
fn status(
    o: &Observed,
    claimed: &[&Pod],
    hash: &str,
    generation: Option<i64>,
    processed: bool,
    collision_count: i32,
) -> (Option<DaemonSetStatus>, Option<Duration>) {
    let ds = o.ds;
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let node_pods = by_node(claimed, false);
    let (mut desired, mut current, mut misscheduled) = (0usize, 0usize, 0usize);
    let (mut ready, mut available, mut updated) = (0usize, 0usize, 0usize);
    let mut available_in: Option<Duration> = None;
    for node in o.nodes {
        let node_name = node.metadata.name.as_deref().unwrap_or_default();
        let fit = node_should_run(node, ds);
        let mut pods = node_pods.get(node_name).cloned().unwrap_or_default();
        let scheduled = !pods.is_empty();
        if !fit.should_run {
            if scheduled {
                misscheduled += 1;
            }
            continue;
        }
        desired += 1;
        if !scheduled {
            continue;
        }
        current += 1;
        sort_pods(&mut pods);
        let pod = pods[0];
        if let Some(since) = pod_ready_since(pod) {
            ready += 1;
            if pod_is_available(pod, min_ready, o.now) {
                available += 1;
            } else {
                let at = since.checked_add(SignedDuration::from_secs(i64::from(min_ready)));
                let wait = at
                    .ok()
                    .and_then(|at| Duration::try_from(at.duration_since(o.now)).ok())
                    .unwrap_or(Duration::from_secs(1))
                    .max(Duration::from_secs(1));
                available_in = Some(available_in.map_or(wait, |d| d.min(wait)));
            }
        }
        if is_pod_updated(pod, hash, generation) {
            updated += 1;
        }
    }
    let old = ds.status.clone().unwrap_or_default();
    let generation_now = ds.metadata.generation.unwrap_or(0);
    let observed = if processed {
        Some(generation_now)
    } else {
        old.observed_generation
    };
    let new = DaemonSetStatus {
        current_number_scheduled: count(current),
        desired_number_scheduled: count(desired),
        number_misscheduled: count(misscheduled),
        number_ready: count(ready),
        updated_number_scheduled: Some(count(updated)),
        number_available: Some(count(available)),
        number_unavailable: Some(count(desired.saturating_sub(available))),
        observed_generation: observed,
        collision_count: (collision_count > 0 || old.collision_count.is_some())
            .then_some(collision_count),
        conditions: old.conditions.clone(),
    };
    let same = old.current_number_scheduled == new.current_number_scheduled
        && old.desired_number_scheduled == new.desired_number_scheduled
        && old.number_misscheduled == new.number_misscheduled
        && old.number_ready == new.number_ready
        && old.updated_number_scheduled.unwrap_or(0) == count(updated)
        && old.number_available.unwrap_or(0) == count(available)
        && old.number_unavailable.unwrap_or(0) == count(desired.saturating_sub(available))
        && old.observed_generation.unwrap_or(0) >= observed.unwrap_or(0)
        && old.collision_count.unwrap_or(0) == collision_count;
    (if same { None } else { Some(new) }, available_in)
}
