//! Rollouts of a DaemonSet (upstream `update.go`): its template recorded as
//! ControllerRevisions (creation, rollback renumbering, deduplication, the history limit),
//! and the rolling update that replaces outdated pods within maxUnavailable, or surges new
//! ones within maxSurge. Pure, called from [`super::plan`].

use super::node::node_should_run;
use super::plan::{
    by_node, count, is_pod_updated, name, sync_nodes, terminating, Action, Error, Observed, Why,
    MAX_COLLISIONS, REVISION_HASH_LABEL,
};
use crate::history;
use crate::meta::{controller_ref, is_controlled_by, labels, pod_is_available, selector_matches};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, RollingUpdateDaemonSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The data of a revision: a strategic merge patch replacing `spec.template` (upstream
/// `getPatch`), which is what `kubectl rollout undo` applies and `rollout history` shows.
pub fn revision_data(ds: &DaemonSet) -> Value {
    let mut template = ds
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(&s.template).ok())
        .unwrap_or_else(|| json!({}));
    if let Some(m) = template.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    history::canonical(&json!({ "spec": { "template": template } }))
}

/// The revision recording the DaemonSet's template (upstream `snapshot`): named
/// `<ds>-<hash>`, labelled with the template's labels and the hash, annotated as the
/// DaemonSet (so `rollout history` shows its change-cause).
pub fn new_revision(
    ds: &DaemonSet,
    revision: i64,
    collision_count: i32,
) -> Option<ControllerRevision> {
    let template_labels = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .map(labels)
        .unwrap_or_default();
    let mut cr = history::new_revision(
        &ds.metadata,
        "apps/v1",
        "DaemonSet",
        &template_labels,
        revision_data(ds),
        revision,
        Some(collision_count),
    )?;
    let l = cr.metadata.labels.get_or_insert_with(BTreeMap::new);
    let hash = l.remove(history::HASH_LABEL)?;
    l.insert(REVISION_HASH_LABEL.into(), hash);
    cr.metadata.annotations = ds.metadata.annotations.clone();
    Some(cr)
}

/// An int-or-percent resolved against `total`, percentages rounded up (upstream
/// `GetScaledValueFromIntOrPercent(v, total, true)`), checked: the values are the client's.
pub fn scaled_value(value: &IntOrString, total: i32, field: &'static str) -> Result<i32, Error> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let invalid = || Error::InvalidIntOrPercent {
                field,
                value: s.clone(),
            };
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(invalid)?;
            let overflow = || Error::Overflow {
                field,
                value: s.clone(),
                total,
            };
            let scaled = percent
                .checked_mul(i64::from(total))
                .and_then(|n| n.checked_add(99))
                .ok_or_else(overflow)?
                .div_euclid(100);
            i32::try_from(scaled).map_err(|_| overflow())
        }
    }
}

pub(super) fn rolling(ds: &DaemonSet) -> Option<&RollingUpdateDaemonSet> {
    let strategy = ds.spec.as_ref()?.update_strategy.as_ref()?;
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return None;
    }
    strategy.rolling_update.as_ref()
}

/// maxSurge as a pod count for `total` nodes, 0 when not rolling or unset (upstream
/// `SurgeCount`).
pub fn surge_count(ds: &DaemonSet, total: i32) -> Result<i32, Error> {
    match rolling(ds).and_then(|r| r.max_surge.as_ref()) {
        Some(v) => scaled_value(v, total, "MaxSurge"),
        None => Ok(0),
    }
}

/// maxUnavailable as a pod count for `total` nodes, 0 when not rolling (upstream
/// `UnavailableCount`; the API defaults it to 1).
pub fn unavailable_count(ds: &DaemonSet, total: i32) -> Result<i32, Error> {
    match rolling(ds).and_then(|r| r.max_unavailable.as_ref()) {
        Some(v) => scaled_value(v, total, "MaxUnavailable"),
        None => Ok(0),
    }
}

/// Whether the DaemonSet may run two pods on a node during an update (upstream `AllowsSurge`).
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1).is_ok_and(|n| n != 0)
}

/// `(maxSurge, maxUnavailable)` for `desired` nodes, both 0 becoming unavailable 1 so an
/// update can progress (upstream `updatedDesiredNodeCounts`).
pub fn update_counts(ds: &DaemonSet, desired: i32) -> Result<(i32, i32), Error> {
    let unavailable = unavailable_count(ds, desired)?;
    let surge = surge_count(ds, desired)?;
    if desired > 0 && unavailable == 0 && surge == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

/// The current revision's hash and the old revisions, with the writes that adopt, create,
/// renumber and deduplicate (upstream `controlledHistories` and `constructHistory`).
pub(super) fn construct_history<'a>(
    o: &Observed<'a>,
    uid: &str,
    claimed: &[&Pod],
    out: &mut Vec<Action>,
) -> Option<(String, i32, Vec<&'a ControllerRevision>)> {
    let ds = o.ds;
    let selector = &ds.spec.as_ref()?.selector;
    let in_ns: Vec<&ControllerRevision> = o
        .revisions
        .iter()
        .copied()
        .filter(|r| r.metadata.namespace == ds.metadata.namespace)
        .collect();
    for r in &in_ns {
        let rname = r.metadata.name.clone().unwrap_or_default();
        let matches = selector_matches(selector, &labels(&r.metadata));
        if is_controlled_by(&r.metadata, uid) && !matches {
            out.push(Action::ReleaseRevision { name: rname });
        } else if controller_ref(&r.metadata).is_none() && matches {
            out.push(Action::AdoptRevision { name: rname });
        }
    }
    let owned = history::owned_or_orphaned(&in_ns, selector, uid);
    let mut collision_count = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let probe = new_revision(ds, 0, collision_count)?;
    let (current, old): (Vec<_>, Vec<_>) = owned
        .iter()
        .copied()
        .partition(|r| history::equal_revision(r, &probe));
    let next = old
        .iter()
        .map(|r| r.revision)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let hash_of = |r: &ControllerRevision| {
        r.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_HASH_LABEL))
            .cloned()
            // Upstream labels a revision lacking the hash with its name; the name serves.
            .or_else(|| r.metadata.name.clone())
            .unwrap_or_default()
    };
    let hash = match current.iter().max_by_key(|r| r.revision) {
        None => {
            // The name is a function of the data and the collision count; another object
            // holding it means a collision, so count up until a free name (upstream learns
            // this from the create's AlreadyExists).
            let candidate = loop {
                let candidate = new_revision(ds, next, collision_count)?;
                let taken = in_ns.iter().any(|r| {
                    r.metadata.name == candidate.metadata.name
                        && !history::equal_revision(r, &candidate)
                });
                if !taken || collision_count >= MAX_COLLISIONS {
                    break candidate;
                }
                collision_count = collision_count.checked_add(1)?;
            };
            let hash = hash_of(&candidate);
            out.push(Action::CreateRevision(Box::new(candidate)));
            hash
        }
        Some(keep) => {
            let keep_hash = hash_of(keep);
            let duplicates: Vec<&&ControllerRevision> = current
                .iter()
                .filter(|r| r.metadata.name != keep.metadata.name)
                .collect();
            let dup_hashes: HashSet<String> = duplicates.iter().map(|r| hash_of(r)).collect();
            // Pods of a duplicate are pods of the kept revision: give them its hash before
            // the duplicate goes, so the rolling update does not replace them.
            for pod in claimed {
                let pod_hash = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(REVISION_HASH_LABEL));
                if pod_hash.is_some_and(|h| dup_hashes.contains(h)) {
                    out.push(Action::RelabelPod {
                        pod: name(pod),
                        hash: keep_hash.clone(),
                    });
                }
            }
            for dup in duplicates {
                out.push(Action::DeleteRevision {
                    name: dup.metadata.name.clone().unwrap_or_default(),
                });
            }
            if keep.revision < next {
                out.push(Action::SetRevisionNumber {
                    name: keep.metadata.name.clone().unwrap_or_default(),
                    revision: next,
                });
            }
            keep_hash
        }
    };
    Some((hash, collision_count, old))
}

/// Replaces outdated pods within maxUnavailable, or surges new ones within maxSurge
/// (upstream `rollingUpdate`). Deleted pods do not count as unavailable, so an update
/// progresses while a node is down.
pub(super) fn rolling_update(
    o: &Observed,
    claimed: &[&Pod],
    hash: &str,
    generation: Option<i64>,
    out: &mut Vec<Action>,
) -> Result<(), Error> {
    let ds = o.ds;
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let mut node_pods = by_node(claimed, false);
    let fits: HashMap<&str, bool> = o
        .nodes
        .iter()
        .filter_map(|n| {
            Some((
                n.metadata.name.as_deref()?,
                node_should_run(n, ds).should_run,
            ))
        })
        .collect();
    let mut desired = 0i32;
    for (node, should_run) in &fits {
        if *should_run {
            desired = desired.saturating_add(1);
            node_pods.entry(node.to_string()).or_default();
        }
    }
    let should_run = |node: &str| fits.get(node).copied().unwrap_or(false);
    let (max_surge, max_unavailable) = update_counts(ds, desired)?;
    let available = |p: &Pod| pod_is_available(p, min_ready, o.now);

    if max_surge == 0 {
        let mut num_unavailable = 0i32;
        let mut replacements = Vec::new();
        let mut candidates = Vec::new();
        for pods in node_pods.values() {
            let Some((new, old)) = find_updated_pods_on_node(pods, hash, generation) else {
                // Excess pods: the manage loop prunes them; count the node as unavailable.
                num_unavailable = num_unavailable.saturating_add(1);
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => {
                    num_unavailable = num_unavailable.saturating_add(1)
                }
                (Some(new), None) => {
                    if !available(new) {
                        num_unavailable = num_unavailable.saturating_add(1);
                    }
                }
                (None, Some(old)) => {
                    if !available(old) {
                        replacements.push(name(old));
                        num_unavailable = num_unavailable.saturating_add(1);
                    } else if num_unavailable < max_unavailable {
                        candidates.push(name(old));
                    }
                }
            }
        }
        let remaining = usize::try_from(max_unavailable.saturating_sub(num_unavailable))
            .unwrap_or(0)
            .min(candidates.len());
        replacements.extend(candidates.into_iter().take(remaining));
        sync_nodes(
            ds,
            Vec::new(),
            replacements.into_iter().map(|p| (p, Why::Update)).collect(),
            hash,
            out,
        );
        return Ok(());
    }

    let mut deletes = Vec::new();
    let mut should_not_run = Vec::new();
    let mut candidates = Vec::new();
    let mut allowed = Vec::new();
    let (mut num_surge, mut num_available) = (0i32, 0i32);
    for (node, pods) in &node_pods {
        let Some((new, old)) = find_updated_pods_on_node(pods, hash, generation) else {
            num_surge = num_surge.saturating_add(1);
            continue;
        };
        if let Some(p) = old.or(new) {
            if available(p) {
                num_available = num_available.saturating_add(1);
            }
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(old) {
                    if should_run(node) {
                        allowed.push(node.clone());
                    } else {
                        deletes.push(name(old));
                    }
                } else if !should_run(node) {
                    should_not_run.push(name(old));
                } else if num_surge < max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    deletes.push(name(old));
                } else {
                    num_surge = num_surge.saturating_add(1);
                }
            }
        }
    }
    // With surge the owner expects full availability: a pod on a node that no longer
    // qualifies goes only once enough pods elsewhere are available.
    let deletable = usize::try_from(num_available.saturating_sub(desired))
        .unwrap_or(0)
        .min(should_not_run.len());
    deletes.extend(should_not_run.into_iter().take(deletable));
    let remaining = usize::try_from(max_surge.saturating_sub(num_surge))
        .unwrap_or(0)
        .min(candidates.len());
    allowed.extend(candidates.into_iter().take(remaining));
    sync_nodes(
        ds,
        allowed,
        deletes.into_iter().map(|p| (p, Why::Update)).collect(),
        hash,
        out,
    );
    Ok(())
}

/// The new and old pod on a node among those not being deleted, or `None` when there is
/// more than one of either (upstream `findUpdatedPodsOnNode`).
#[allow(clippy::type_complexity)]
fn find_updated_pods_on_node<'a>(
    pods: &[&'a Pod],
    hash: &str,
    generation: Option<i64>,
) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for &pod in pods {
        if terminating(pod) {
            continue;
        }
        let slot = if is_pod_updated(pod, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod);
    }
    Some((new, old))
}

/// Deletes the oldest revisions past revisionHistoryLimit that no pod still carries
/// (upstream `cleanupHistory`).
pub(super) fn cleanup_history(
    ds: &DaemonSet,
    claimed: &[&Pod],
    old: &[&ControllerRevision],
    out: &mut Vec<Action>,
) {
    let keep = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10);
    let mut to_kill = count(old.len()).saturating_sub(keep.max(0));
    if to_kill <= 0 {
        return;
    }
    let live: HashSet<&str> = claimed
        .iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION_HASH_LABEL))
        .map(String::as_str)
        .collect();
    let mut old = old.to_vec();
    old.sort_by_key(|r| r.revision);
    for r in old {
        if to_kill <= 0 {
            break;
        }
        let hash = r
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_HASH_LABEL));
        if hash.is_some_and(|h| live.contains(h.as_str())) {
            continue;
        }
        out.push(Action::DeleteRevision {
            name: r.metadata.name.clone().unwrap_or_default(),
        });
        to_kill -= 1;
    }
}
