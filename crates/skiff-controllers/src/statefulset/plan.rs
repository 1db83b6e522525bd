//! Pure StatefulSet planning (upstream `stateful_set_control.go`): from the set and the pods,
//! claims and ControllerRevisions of its namespace, the writes of one pass.
//!
//! The upstream loop creates the update revision through the API and then goes on with it;
//! here the revision's name is a function of its data and the collision count, so the plan
//! names it up front, asks for its creation, and plans the pods against it. The runner stops
//! at the first failed write, so no pod is made from a revision that does not exist.

use super::pod::{
    apply_revision, claims_for, has_stale_pod_owner, identity_labels, identity_matches,
    is_finished, is_member, is_pending, is_running_and_available, is_running_and_ready,
    is_terminating, is_unavailable, new_pod, ordinal, ordinal_range, pod_revision, replicas,
    retention, revision_data, start_ordinal, wanted_claim_owners, MAX_BATCH,
};
use crate::claim::{claim, Change};
use crate::history;
use crate::meta::{controller_ref, labels, pod_ready_since, selector_matches};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Most name collisions tried before giving up on a pass (each one is another object that
/// happens to hold the name the data hashes to; more than a few means something is wrong).
const MAX_COLLISIONS: i32 = 32;

/// What the plan reads: the set and the objects of its namespace.
pub struct Observed<'a> {
    pub set: &'a StatefulSet,
    pub pods: &'a [&'a Pod],
    pub claims: &'a [&'a PersistentVolumeClaim],
    pub revisions: &'a [&'a ControllerRevision],
    pub now: Timestamp,
}

/// Why a pod is deleted (for the log and the Event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// It failed or succeeded and is replaced.
    Finished,
    /// Its ordinal is past the wanted range.
    ScaleDown,
    /// It is not at the update revision.
    Update,
}

/// One write through the API.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Take ownership of an orphan member matching the selector.
    AdoptPod { pod: String },
    /// Drop ownership of a pod that no longer matches.
    ReleasePod { pod: String },
    /// Take ownership of an orphan revision matching the selector.
    AdoptRevision { name: String },
    /// Record the set's template as a new revision.
    CreateRevision(Box<ControllerRevision>),
    /// Move an earlier revision with the same template to the top (a rollback).
    SetRevisionNumber { name: String, revision: i64 },
    /// Create a member's claim (before its pod).
    CreateClaim {
        claim: Box<PersistentVolumeClaim>,
        pod: String,
    },
    /// Create a member.
    CreatePod(Box<Pod>),
    /// Delete a member; `uid` as a precondition, so a recreated pod of the name is spared.
    DeletePod {
        pod: String,
        uid: Option<String>,
        why: Why,
    },
    /// Put back a member's identity labels.
    SetPodLabels {
        pod: String,
        labels: BTreeMap<String, String>,
    },
    /// Set a claim's owner references to follow the retention policy.
    SetClaimOwners {
        claim: String,
        owners: Vec<OwnerReference>,
    },
    /// Write `.status`.
    Status(StatefulSetStatus),
    /// Delete a revision past revisionHistoryLimit.
    DeleteRevision { name: String },
}

/// The writes of one pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// When to look again although nothing changes (a pod reaching minReadySeconds).
    pub requeue_after: Option<Duration>,
}

/// A member slot of the wanted range: the pod there, or none yet.
#[derive(Clone, Copy)]
enum Slot<'a> {
    Pod(&'a Pod),
    Missing(i32),
}

impl Slot<'_> {
    fn unavailable(&self, min_ready: i32, now: Timestamp) -> bool {
        match self {
            Slot::Pod(p) => is_unavailable(p, min_ready, now),
            Slot::Missing(_) => true,
        }
    }
}

/// The pods the set controls after adoption and release (upstream `ClaimPods` with the
/// `isMemberOf` filter), and the writes that make it so.
fn claim_pods<'a>(o: &Observed<'a>, out: &mut Vec<Action>) -> Vec<&'a Pod> {
    let set = o.set;
    let Some(spec) = set.spec.as_ref() else {
        return Vec::new();
    };
    let c = claim(
        &set.metadata,
        |p: &Pod| selector_matches(&spec.selector, &labels(&p.metadata)) && is_member(set, p),
        o.pods,
    );
    out.extend(c.changes.into_iter().map(|change| match change {
        Change::Adopt(pod) => Action::AdoptPod { pod },
        Change::Release(pod) => Action::ReleasePod { pod },
    }));
    c.owned
}

/// The current and update revisions and the collision count (upstream
/// `getStatefulSetRevisions`), with the writes that create or renumber the update revision.
fn revisions<'a>(
    o: &Observed<'a>,
    owned: &[&'a ControllerRevision],
    out: &mut Vec<Action>,
) -> Option<(ControllerRevision, ControllerRevision, i32)> {
    let set = o.set;
    let template_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .map(labels)
        .unwrap_or_default();
    let mut collision_count = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let next = history::next_revision(owned);
    let data = revision_data(set);
    // Upstream learns of a collision from the create's AlreadyExists; the cache shows it too.
    let candidate = loop {
        let candidate = history::new_revision(
            &set.metadata,
            "apps/v1",
            "StatefulSet",
            &template_labels,
            data.clone(),
            next,
            Some(collision_count),
        )?;
        let taken = o.revisions.iter().any(|r| {
            r.metadata.namespace == set.metadata.namespace
                && r.metadata.name == candidate.metadata.name
                && !history::equal_revision(r, &candidate)
        });
        if !taken || collision_count >= MAX_COLLISIONS {
            break candidate;
        }
        collision_count = collision_count.checked_add(1)?;
    };
    let equal = history::find_equal(owned, &candidate);
    let update = match (equal.last(), owned.last()) {
        (Some(eq), Some(last)) if history::equal_revision(eq, last) => (*last).clone(),
        (Some(eq), _) => {
            let mut eq = (*eq).clone();
            eq.revision = next;
            out.push(Action::SetRevisionNumber {
                name: eq.metadata.name.clone().unwrap_or_default(),
                revision: next,
            });
            eq
        }
        (None, _) => {
            out.push(Action::CreateRevision(Box::new(candidate.clone())));
            candidate
        }
    };
    let current_name = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref());
    let current = owned
        .iter()
        .find(|r| r.metadata.name.is_some() && r.metadata.name.as_deref() == current_name)
        .map(|r| (*r).clone())
        .unwrap_or_else(|| update.clone());
    Some((current, update, collision_count))
}

/// Counts of a pod list into `status` (upstream `updateStatus`/`computeReplicaStatus`).
fn count(
    status: &mut StatefulSetStatus,
    pods: &[&Pod],
    min_ready: i32,
    current: &str,
    update: &str,
    now: Timestamp,
) {
    let n = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    status.replicas = n(&|_| true);
    status.ready_replicas = Some(n(&is_running_and_ready));
    status.available_replicas = Some(n(&|p| {
        is_running_and_ready(p) && is_running_and_available(p, min_ready, now)
    }));
    status.current_replicas = Some(n(&|p| {
        !is_terminating(p) && pod_revision(p) == Some(current)
    }));
    status.updated_replicas = Some(n(&|p| {
        !is_terminating(p) && pod_revision(p) == Some(update)
    }));
}

/// maxUnavailable as a pod count, percentages rounded up, at least 1 (upstream
/// `getStatefulSetMaxUnavailable`).
pub fn max_unavailable(value: Option<&IntOrString>, replicas: i32) -> i32 {
    let n = match value {
        None => 1,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map(|p| {
                let scaled = (p.saturating_mul(i64::from(replicas)) + 99).div_euclid(100);
                i32::try_from(scaled).unwrap_or(i32::MAX)
            })
            .unwrap_or(1),
    };
    n.max(1)
}

/// The claims of `pod` that exist, each with the owner references the retention policy wants
/// when they differ (upstream `ClaimsMatchRetentionPolicy`/`UpdatePodClaimForRetentionPolicy`).
fn fix_claims(o: &Observed, pod: &Pod, out: &mut Vec<Action>) {
    let Some(ord) = ordinal(pod) else { return };
    for (_, want) in claims_for(o.set, ord) {
        let Some(claim) = find_claim(o, want.metadata.name.as_deref()) else {
            continue;
        };
        // A claim another controller owns is not ours to change (upstream
        // `hasUnexpectedController`).
        if controller_ref(&claim.metadata).is_some() {
            continue;
        }
        if let Some(owners) = wanted_claim_owners(claim, o.set, pod) {
            out.push(Action::SetClaimOwners {
                claim: claim.metadata.name.clone().unwrap_or_default(),
                owners,
            });
        }
    }
}

fn find_claim<'a>(o: &Observed<'a>, name: Option<&str>) -> Option<&'a PersistentVolumeClaim> {
    o.claims.iter().copied().find(|c| {
        c.metadata.namespace == o.set.metadata.namespace && c.metadata.name.as_deref() == name
    })
}

/// Whether a claim of the pod still belongs to an earlier pod of that name and waits for the
/// garbage collector (upstream `PodClaimIsStale`; only under whenScaled=Delete).
fn claim_is_stale(o: &Observed, ord: i32) -> bool {
    if !retention(o.set).delete_when_scaled {
        return false;
    }
    let name = super::pod::pod_name(o.set, ord);
    claims_for(o.set, ord).iter().any(|(_, c)| {
        find_claim(o, c.metadata.name.as_deref()).is_some_and(|c| has_stale_pod_owner(c, &name, ""))
    })
}

/// The claims a new pod needs created first; `None` when one is being deleted (upstream's
/// "pvc is being deleted": the pod must wait for it to go).
fn missing_claims(o: &Observed, ord: i32) -> Option<Vec<PersistentVolumeClaim>> {
    let set_ref = super::pod::owner_ref("apps/v1", "StatefulSet", &o.set.metadata);
    let policy = retention(o.set);
    let mut missing = Vec::new();
    for (_, mut claim) in claims_for(o.set, ord) {
        match find_claim(o, claim.metadata.name.as_deref()) {
            Some(existing) if existing.metadata.deletion_timestamp.is_some() => return None,
            Some(_) => {}
            None => {
                // The reference the policy wants for a member in range, set at creation
                // rather than in a second write.
                if policy.delete_when_deleted {
                    claim.metadata.owner_references = set_ref.clone().map(|r| vec![r]);
                }
                missing.push(claim);
            }
        }
    }
    Some(missing)
}

/// Computes the writes that bring the namespace's objects in line with the set.
pub fn plan(o: &Observed) -> Plan {
    let mut out = Plan::default();
    let set = o.set;
    let (Some(uid), Some(spec)) = (set.metadata.uid.as_deref(), set.spec.as_ref()) else {
        return out;
    };
    let now = o.now;
    let min_ready = spec.min_ready_seconds.unwrap_or(0).max(0);
    let deleting = set.metadata.deletion_timestamp.is_some();
    let mut actions: Vec<Action> = Vec::new();

    let mut owned: Vec<&ControllerRevision> =
        history::owned_or_orphaned(o.revisions, &spec.selector, uid);
    owned.retain(|r| r.metadata.namespace == set.metadata.namespace);
    history::sort_revisions(&mut owned);
    if !deleting {
        for r in &owned {
            if controller_ref(&r.metadata).is_none() {
                actions.push(Action::AdoptRevision {
                    name: r.metadata.name.clone().unwrap_or_default(),
                });
            }
        }
    }
    let pods = claim_pods(o, &mut actions);
    let Some((current, update, collision_count)) = revisions(o, &owned, &mut actions) else {
        out.actions = actions;
        return out;
    };
    let current_name = current.metadata.name.clone().unwrap_or_default();
    let update_name = update.metadata.name.clone().unwrap_or_default();
    let current_set = apply_revision(set, history::data(&current));
    let update_set = apply_revision(set, history::data(&update));

    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(current_name.clone()),
        update_revision: Some(update_name.clone()),
        collision_count: Some(collision_count),
        ..StatefulSetStatus::default()
    };
    let members: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| ordinal(p).is_some())
        .collect();
    count(
        &mut status,
        &members,
        min_ready,
        &current_name,
        &update_name,
        now,
    );

    let range = ordinal_range(set);
    let mut by_ordinal: BTreeMap<i32, &Pod> = BTreeMap::new();
    let mut condemned: Vec<&Pod> = Vec::new();
    for &pod in &pods {
        match ordinal(pod) {
            Some(ord) if range.contains(&i64::from(ord)) => {
                by_ordinal.insert(ord, pod);
            }
            Some(_) => condemned.push(pod),
            None => {}
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
    let slots: Vec<Slot> = range
        .clone()
        .filter_map(|ord| i32::try_from(ord).ok())
        .map(|ord| {
            by_ordinal
                .get(&ord)
                .map_or(Slot::Missing(ord), |p| Slot::Pod(p))
        })
        .collect();

    // The first unavailable member, else the lowest unavailable condemned pod: the one pod
    // monotonic scale-down may remove although it is not healthy.
    let first_unavailable: Option<&Pod> = slots
        .iter()
        .find(|s| s.unavailable(min_ready, now))
        .map(|s| match s {
            Slot::Pod(p) => Some(*p),
            Slot::Missing(_) => None,
        })
        .unwrap_or_else(|| {
            condemned
                .iter()
                .rev()
                .find(|p| is_unavailable(p, min_ready, now))
                .copied()
        });

    let finish = |mut actions: Vec<Action>, status: StatefulSetStatus| {
        finish_pass(
            o,
            &owned,
            &pods,
            &current_name,
            &update_name,
            status,
            &mut actions,
        );
        actions
    };

    if deleting {
        out.actions = finish(actions, status);
        return out;
    }

    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .map(|r| r.partition.unwrap_or(0).max(0));
    let current_replicas = set
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    let start = i64::from(start_ordinal(set));

    // Living members, in ordinal order (upstream `processReplica`).
    let mut created = 0usize;
    let mut blocked = false;
    for slot in &slots {
        match *slot {
            Slot::Missing(ord) => {
                if claim_is_stale(o, ord) {
                    if monotonic {
                        blocked = true;
                        break;
                    }
                    continue;
                }
                let Some(claims) = missing_claims(o, ord) else {
                    if monotonic {
                        blocked = true;
                        break;
                    }
                    continue;
                };
                if created >= MAX_BATCH {
                    blocked = true;
                    break;
                }
                // Below the partition (or, without one, below the count already current) a
                // new pod is made at the current revision (upstream
                // `newVersionedStatefulSetPod`, whose Go precedence is kept here).
                let ord64 = i64::from(ord);
                let at_current =
                    (rolling && partition.is_none() && ord64 < start + i64::from(current_replicas))
                        || partition.is_some_and(|p| ord64 < start + i64::from(p));
                let (from, revision) = if at_current {
                    (&current_set, &current_name)
                } else {
                    (&update_set, &update_name)
                };
                let Some(pod) = new_pod(from, ord, revision) else {
                    return out;
                };
                let name = pod.metadata.name.clone().unwrap_or_default();
                for claim in claims {
                    actions.push(Action::CreateClaim {
                        claim: Box::new(claim),
                        pod: name.clone(),
                    });
                }
                actions.push(Action::CreatePod(Box::new(pod)));
                created += 1;
                if monotonic {
                    blocked = true;
                    break;
                }
            }
            Slot::Pod(pod) => {
                let name = pod.metadata.name.clone().unwrap_or_default();
                if is_finished(pod) {
                    if !is_terminating(pod) {
                        actions.push(Action::DeletePod {
                            pod: name,
                            uid: pod.metadata.uid.clone(),
                            why: Why::Finished,
                        });
                    }
                    if monotonic {
                        blocked = true;
                        break;
                    }
                    continue;
                }
                if is_pending(pod) {
                    if let Some(ord) = ordinal(pod) {
                        for claim in missing_claims(o, ord).unwrap_or_default() {
                            actions.push(Action::CreateClaim {
                                claim: Box::new(claim),
                                pod: name.clone(),
                            });
                        }
                    }
                }
                if monotonic
                    && (is_terminating(pod)
                        || !is_running_and_ready(pod)
                        || !is_running_and_available(pod, min_ready, now))
                {
                    blocked = true;
                    break;
                }
                if !identity_matches(set, pod) {
                    if let Some(ord) = ordinal(pod) {
                        actions.push(Action::SetPodLabels {
                            pod: name.clone(),
                            labels: identity_labels(set, ord),
                        });
                    }
                }
                fix_claims(o, pod, &mut actions);
            }
        }
    }
    if blocked {
        out.actions = finish(actions, status);
        out.requeue_after = requeue_after(&pods, min_ready, now);
        return out;
    }

    // Claims of condemned pods follow the policy before the pods go, so whenScaled=Delete
    // claims are owned by their pod when it is deleted.
    for pod in &condemned {
        fix_claims(o, pod, &mut actions);
    }

    // Condemned pods, highest ordinal first (upstream `processCondemned`).
    for pod in &condemned {
        if is_terminating(pod) {
            if monotonic {
                blocked = true;
                break;
            }
            continue;
        }
        let is_first_unavailable = first_unavailable.is_some_and(|f| std::ptr::eq(f, *pod));
        if monotonic
            && !is_first_unavailable
            && (!is_running_and_ready(pod) || !is_running_and_available(pod, min_ready, now))
        {
            blocked = true;
            break;
        }
        actions.push(Action::DeletePod {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone(),
            why: Why::ScaleDown,
        });
        if monotonic {
            blocked = true;
            break;
        }
    }
    if blocked || !rolling {
        out.actions = finish(actions, status);
        out.requeue_after = requeue_after(&pods, min_ready, now);
        return out;
    }

    // Rolling update: with maxUnavailable, the highest outdated members first (upstream
    // `updateStatefulSetAfterInvariantEstablished`).
    let max = max_unavailable(
        spec.update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.as_ref()),
        replicas(set),
    );
    let unavailable = slots
        .iter()
        .filter(|s| s.unavailable(min_ready, now))
        .count();
    let unavailable = i32::try_from(unavailable).unwrap_or(i32::MAX);
    if unavailable < max {
        let mut to_delete = max - unavailable;
        let update_min = usize::try_from(partition.unwrap_or(0)).unwrap_or(usize::MAX);
        for (index, slot) in slots.iter().enumerate().rev() {
            if to_delete == 0 || index < update_min {
                break;
            }
            let Slot::Pod(pod) = slot else { continue };
            if pod_revision(pod) != Some(update_name.as_str()) && !is_terminating(pod) {
                actions.push(Action::DeletePod {
                    pod: pod.metadata.name.clone().unwrap_or_default(),
                    uid: pod.metadata.uid.clone(),
                    why: Why::Update,
                });
                to_delete -= 1;
                status.current_replicas = status.current_replicas.map(|c| c - 1);
            }
        }
    }
    out.actions = finish(actions, status);
    out.requeue_after = requeue_after(&pods, min_ready, now);
    out
}

/// Status and history at the end of every pass (upstream `updateStatefulSetStatus` and
/// `truncateHistory`).
fn finish_pass(
    o: &Observed,
    owned: &[&ControllerRevision],
    pods: &[&Pod],
    current: &str,
    update: &str,
    mut status: StatefulSetStatus,
    actions: &mut Vec<Action>,
) {
    let set = o.set;
    let spec_replicas = replicas(set);
    let rolling = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    // A finished rolling update makes the update revision current (upstream
    // `completeRollingUpdate`).
    if rolling
        && status.updated_replicas == Some(spec_replicas)
        && status.ready_replicas == Some(spec_replicas)
        && status.replicas == spec_replicas
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
    let old = set.status.clone().unwrap_or_default();
    let mut compare = status.clone();
    compare.conditions = old.conditions.clone();
    if compare != old {
        status.conditions = old.conditions;
        actions.push(Action::Status(status));
    }

    let limit = set
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10);
    let Ok(limit) = usize::try_from(limit) else {
        return;
    };
    let mut live: HashSet<&str> = [current, update].into();
    live.extend(pods.iter().filter_map(|p| pod_revision(p)));
    let old_revisions: Vec<&&ControllerRevision> = owned
        .iter()
        .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    if old_revisions.len() > limit {
        for r in &old_revisions[..old_revisions.len() - limit] {
            actions.push(Action::DeleteRevision {
                name: r.metadata.name.clone().unwrap_or_default(),
            });
        }
    }
}

/// When the earliest ready pod becomes available, if minReadySeconds holds one back.
fn requeue_after(pods: &[&Pod], min_ready: i32, now: Timestamp) -> Option<Duration> {
    if min_ready <= 0 {
        return None;
    }
    pods.iter()
        .filter_map(|p| pod_ready_since(p))
        .map(|since| since.as_second() + i64::from(min_ready) - now.as_second())
        .filter(|left| *left >= 0)
        .min()
        .map(|left| Duration::from_secs(u64::try_from(left).unwrap_or(0) + 1))
}
