//! Pure Deployment planning: from a Deployment and its ReplicaSets, the next changes.

use super::hash::{equal_ignore_hash, template_hash, POD_TEMPLATE_HASH};
use crate::meta::{created, new_controller_ref};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

/// Annotation with a ReplicaSet's (and the Deployment's) revision number.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Annotation with the Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// Annotation with replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Deployment annotations never copied to its ReplicaSets (upstream `annotationsToSkip`).
const SKIPPED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// One change to make through the API.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create the ReplicaSet of the current template.
    Create(Box<ReplicaSet>),
    /// Set a ReplicaSet's replicas (and its desired/max-replicas annotations).
    Scale { rs: String, from: i32, to: i32 },
    /// Set a ReplicaSet's revision annotation (its template became current again).
    SetRevision { rs: String, revision: i64 },
    /// Set the Deployment's revision annotation.
    SetDeploymentRevision(i64),
    /// Delete an old, empty ReplicaSet beyond revisionHistoryLimit.
    Delete { rs: String },
    /// Write this status.
    Status(Box<DeploymentStatus>),
}

/// The plan for one reconcile pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// When to look again although nothing changes (the progress deadline).
    pub requeue_after: Option<Duration>,
}

/// What planning needs to know of a ReplicaSet, updated as the plan scales it.
#[derive(Clone, Debug)]
struct Rs {
    name: String,
    replicas: i32,
    status_replicas: i32,
    ready: i32,
    available: i32,
    revision: i64,
    created: Timestamp,
    deleting: bool,
    in_sync: bool,
    /// The desired-replicas annotation: the Deployment's replicas when this was last scaled.
    desired: Option<i32>,
    /// The max-replicas annotation: replicas + maxSurge when this was last scaled.
    max_replicas: Option<i32>,
}

impl Rs {
    fn of(rs: &ReplicaSet) -> Rs {
        let status = rs.status.clone().unwrap_or_default();
        Rs {
            name: rs.metadata.name.clone().unwrap_or_default(),
            replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            status_replicas: status.replicas,
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            revision: revision(&rs.metadata),
            created: created(&rs.metadata),
            deleting: rs.metadata.deletion_timestamp.is_some(),
            in_sync: rs.metadata.generation.unwrap_or(0) <= status.observed_generation.unwrap_or(0),
            desired: annotation(&rs.metadata, DESIRED_REPLICAS),
            max_replicas: annotation(&rs.metadata, MAX_REPLICAS),
        }
    }
}

fn annotation(meta: &ObjectMeta, key: &str) -> Option<i32> {
    meta.annotations.as_ref()?.get(key)?.parse().ok()
}

/// The revision annotation of an object, 0 when unset or unparsable.
pub fn revision(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resolves an int-or-percent against `total`, rounding up or down as upstream.
pub fn scaled_value(
    v: Option<&IntOrString>,
    default_percent: i32,
    total: i32,
    round_up: bool,
) -> i32 {
    let percent = match v {
        Some(IntOrString::Int(n)) => return *n,
        Some(IntOrString::String(s)) => match s.trim_end_matches('%').parse::<i32>() {
            Ok(p) => p,
            Err(_) => default_percent,
        },
        None => default_percent,
    };
    let num = i64::from(percent) * i64::from(total);
    let v = if round_up {
        (num + 99) / 100
    } else {
        num / 100
    };
    v as i32
}

/// maxSurge and maxUnavailable as pod counts (upstream `ResolveFenceposts`): surge rounds up,
/// unavailable down, and both zero becomes unavailable 1 so a rollout can progress.
pub fn resolve_fenceposts(d: &Deployment) -> (i32, i32) {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let surge = scaled_value(rolling.max_surge.as_ref(), 25, replicas, true);
    let unavailable = scaled_value(rolling.max_unavailable.as_ref(), 25, replicas, false);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// Upstream `MaxUnavailable`: 0 for Recreate, else the resolved value capped at replicas.
fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if is_recreate(d) || replicas == 0 {
        return 0;
    }
    resolve_fenceposts(d).1.min(replicas)
}

/// The ReplicaSet a Deployment creates for its current template.
pub fn new_replicaset(d: &Deployment, replicas: i32, revision: i64) -> Option<ReplicaSet> {
    let spec = d.spec.as_ref()?;
    let hash = template_hash(
        &spec.template,
        d.status.as_ref().and_then(|s| s.collision_count),
    );
    let name = d.metadata.name.as_deref()?;
    let mut template = spec.template.clone();
    let tmeta = template.metadata.get_or_insert_with(ObjectMeta::default);
    let labels = tmeta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let labels = labels.clone();
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let mut annotations: BTreeMap<String, String> = d
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !SKIPPED_ANNOTATIONS.contains(&k.as_str()))
        .collect();
    annotations.insert(REVISION.into(), revision.to_string());
    let (surge, _) = resolve_fenceposts(d);
    let want = spec.replicas.unwrap_or(1);
    annotations.insert(DESIRED_REPLICAS.into(), want.to_string());
    let max = if is_recreate(d) { want } else { want + surge };
    annotations.insert(MAX_REPLICAS.into(), max.to_string());
    Some(ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: d.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![new_controller_ref(
                "apps/v1",
                "Deployment",
                &d.metadata,
            )?]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    })
}

/// Computes the next changes for `d` given the ReplicaSets it controls.
pub fn plan(d: &Deployment, owned: &[&ReplicaSet], now: Timestamp) -> Plan {
    let mut out = Plan::default();
    let Some(spec) = d.spec.as_ref() else {
        return out;
    };
    let mut sorted: Vec<&ReplicaSet> = owned.to_vec();
    sorted.sort_by_key(|rs| (created(&rs.metadata), rs.metadata.name.clone()));
    let new_idx = sorted.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| equal_ignore_hash(t, &spec.template))
    });
    let mut new: Option<Rs> = new_idx.map(|i| Rs::of(sorted[i]));
    let mut old: Vec<Rs> = sorted
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .map(|(_, rs)| Rs::of(rs))
        .collect();
    let max_old_revision = old.iter().map(|r| r.revision).max().unwrap_or(0);
    let new_revision = max_old_revision + 1;
    let mut created_new = false;
    let deleting = d.metadata.deletion_timestamp.is_some();
    let paused = spec.paused == Some(true);

    if !deleting {
        if let Some(n) = new.as_mut() {
            if n.revision < new_revision {
                out.actions.push(Action::SetRevision {
                    rs: n.name.clone(),
                    revision: new_revision,
                });
                n.revision = new_revision;
            }
        }
        if paused || is_scaling_event(d, new.as_ref(), &old) {
            // Upstream `sync`: a paused Deployment, or one whose replicas changed, is only
            // scaled (proportionally across its ReplicaSets); the rollout resumes after.
            scale_proportionally(d, &mut new, &mut old, &mut out);
        } else if is_recreate(d) {
            recreate(
                d,
                &mut new,
                &mut old,
                new_revision,
                &mut out,
                &mut created_new,
            );
        } else {
            rolling(
                d,
                &mut new,
                &mut old,
                new_revision,
                &mut out,
                &mut created_new,
            );
        }
        let deployment_revision = revision(&d.metadata);
        let current = new.as_ref().map(|n| n.revision).unwrap_or(0);
        if current > 0 && deployment_revision != current {
            out.actions.push(Action::SetDeploymentRevision(current));
        }
    }

    let status = status(
        d,
        new.as_ref(),
        &old,
        now,
        created_new,
        paused,
        &mut out.requeue_after,
    );
    let complete = deployment_complete(d, &status);
    if complete && !deleting {
        cleanup(d, &old, &mut out);
    }
    if !same_status(d.status.as_ref(), &status) {
        out.actions.push(Action::Status(Box::new(status)));
    }
    out
}

fn scale(out: &mut Plan, rs: &mut Rs, to: i32) {
    if rs.replicas != to {
        out.actions.push(Action::Scale {
            rs: rs.name.clone(),
            from: rs.replicas,
            to,
        });
        rs.replicas = to;
    }
}

/// Upstream `scaleReplicaSet`: sets the size, and rewrites the desired/max-replicas
/// annotations when they are stale even if the size stays (else the scaling event would
/// never end).
fn resize(out: &mut Plan, rs: &mut Rs, to: i32, replicas: i32) {
    if rs.replicas != to || rs.desired != Some(replicas) {
        out.actions.push(Action::Scale {
            rs: rs.name.clone(),
            from: rs.replicas,
            to,
        });
        rs.replicas = to;
        rs.desired = Some(replicas);
    }
}

/// Upstream `isScalingEvent`: an active ReplicaSet was last scaled for another replica count.
fn is_scaling_event(d: &Deployment, new: Option<&Rs>, old: &[Rs]) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    new.into_iter()
        .chain(old)
        .filter(|r| r.replicas > 0)
        .any(|r| r.desired.is_some_and(|want| want != replicas))
}

/// Upstream `getReplicaSetFraction`: how much of the change this ReplicaSet takes, from its
/// share of the size the Deployment had when it was last scaled (max-replicas).
fn fraction(d: &Deployment, rs: &Rs) -> i32 {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if replicas == 0 {
        return -rs.replicas;
    }
    let allowed = replicas + resolve_fenceposts(d).0;
    let annotated = rs
        .max_replicas
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated <= 0 {
        return 0;
    }
    let size = f64::from(rs.replicas) * f64::from(allowed) / f64::from(annotated);
    size.round() as i32 - rs.replicas
}

/// Upstream `scale`: one active ReplicaSet takes the whole count; a saturated new one sends
/// the old ones to zero; otherwise (rolling update) the change is spread over the active
/// ReplicaSets in proportion to their size, larger first, leftovers to the largest.
fn scale_proportionally(d: &Deployment, new: &mut Option<Rs>, old: &mut [Rs], out: &mut Plan) {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let active = new
        .iter()
        .chain(old.iter())
        .filter(|r| r.replicas > 0)
        .count();
    if active <= 1 {
        // Upstream `FindActiveOrLatest`: the active one, else the new, else the newest old.
        let target = match new.as_mut() {
            Some(n) if active == 0 || n.replicas > 0 => Some(n),
            _ => old
                .iter_mut()
                .filter(|r| active == 0 || r.replicas > 0)
                .max_by_key(|r| r.created),
        };
        if let Some(rs) = target {
            resize(out, rs, replicas, replicas);
        }
        return;
    }
    if let Some(n) = new.as_ref() {
        let saturated =
            n.desired == Some(replicas) && n.replicas == replicas && n.available == replicas;
        if saturated {
            for rs in old.iter_mut().filter(|r| r.replicas > 0) {
                resize(out, rs, 0, replicas);
            }
            return;
        }
    }
    if is_recreate(d) {
        return;
    }
    let allowed = if replicas > 0 {
        replicas + resolve_fenceposts(d).0
    } else {
        0
    };
    let mut all: Vec<&mut Rs> = new
        .iter_mut()
        .chain(old.iter_mut())
        .filter(|r| r.replicas > 0)
        .collect();
    let to_add = allowed - all.iter().map(|r| r.replicas).sum::<i32>();
    if to_add == 0 {
        for rs in all {
            let size = rs.replicas;
            resize(out, rs, size, replicas);
        }
        return;
    }
    // Larger first; among equals, newer first when growing and older first when shrinking.
    all.sort_by(|a, b| {
        b.replicas.cmp(&a.replicas).then(if to_add > 0 {
            b.created.cmp(&a.created)
        } else {
            a.created.cmp(&b.created)
        })
    });
    let mut added = 0;
    let mut sizes = Vec::with_capacity(all.len());
    for rs in &all {
        let proportion = if to_add == added {
            0
        } else if to_add > 0 {
            fraction(d, rs).min(to_add - added)
        } else {
            fraction(d, rs).max(to_add - added)
        };
        sizes.push(rs.replicas + proportion);
        added += proportion;
    }
    sizes[0] = (sizes[0] + to_add - added).max(0);
    for (rs, size) in all.into_iter().zip(sizes) {
        resize(out, rs, size, replicas);
    }
}

/// Creates the new ReplicaSet (when missing) with `replicas`.
fn create_new(d: &Deployment, replicas: i32, revision: i64, out: &mut Plan) -> Option<Rs> {
    let rs = new_replicaset(d, replicas, revision)?;
    let mut sim = Rs::of(&rs);
    sim.status_replicas = 0;
    out.actions.push(Action::Create(Box::new(rs)));
    Some(sim)
}

/// Upstream `rolloutRecreate`: scale every old ReplicaSet to zero, wait for their pods to
/// go, then bring up the new one.
fn recreate(
    d: &Deployment,
    new: &mut Option<Rs>,
    old: &mut [Rs],
    revision: i64,
    out: &mut Plan,
    created_new: &mut bool,
) {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let mut scaled_down = false;
    for rs in old.iter_mut().filter(|r| r.replicas > 0) {
        scale(out, rs, 0);
        scaled_down = true;
    }
    if scaled_down || old.iter().any(|r| r.status_replicas > 0) {
        return;
    }
    match new {
        None => {
            *new = create_new(d, replicas, revision, out);
            *created_new = new.is_some();
        }
        Some(n) => scale(out, n, replicas),
    }
}

/// Upstream `rolloutRolling`: scale the new ReplicaSet up within maxSurge, then the old ones
/// down within maxUnavailable, one step per pass.
fn rolling(
    d: &Deployment,
    new: &mut Option<Rs>,
    old: &mut [Rs],
    revision: i64,
    out: &mut Plan,
    created_new: &mut bool,
) {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let (surge, _) = resolve_fenceposts(d);
    let total = |new: &Option<Rs>, old: &[Rs]| -> i32 {
        new.iter().map(|r| r.replicas).sum::<i32>() + old.iter().map(|r| r.replicas).sum::<i32>()
    };
    // Upstream `NewRSNewReplicas`.
    let new_target = |new: &Option<Rs>, old: &[Rs]| -> i32 {
        let current_new = new.as_ref().map(|r| r.replicas).unwrap_or(0);
        let current = total(new, old);
        let max_total = replicas + surge;
        if current >= max_total {
            return current_new;
        }
        current_new + (max_total - current).min(replicas - current_new).max(0)
    };
    match new {
        None => {
            let target = new_target(new, old);
            *new = create_new(d, target, revision, out);
            *created_new = new.is_some();
        }
        Some(n) if n.replicas > replicas => {
            scale(out, n, replicas);
            return;
        }
        Some(n) if n.replicas < replicas => {
            let target = new_target(&Some(n.clone()), old);
            if target != n.replicas {
                scale(out, n, target);
                return;
            }
        }
        Some(_) => {}
    }
    // Upstream `reconcileOldReplicaSets`.
    let Some(n) = new.as_ref() else {
        return;
    };
    if old.iter().map(|r| r.replicas).sum::<i32>() == 0 {
        return;
    }
    let min_available = replicas - max_unavailable(d);
    let new_unavailable = n.replicas - n.available;
    let max_scaled_down = total(new, old) - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return;
    }
    old.sort_by_key(|r| r.created);
    // Unhealthy old pods go first: they do not count towards availability anyway.
    let mut cleaned = 0;
    for rs in old.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        if rs.replicas == 0 || rs.replicas <= rs.available {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(rs.replicas - rs.available);
        let to = rs.replicas - down;
        scale(out, rs, to);
        cleaned += down;
    }
    // Then healthy ones, as long as enough stay available.
    let available: i32 = n.available + old.iter().map(|r| r.available.min(r.replicas)).sum::<i32>();
    if available <= min_available {
        return;
    }
    let mut left = available - min_available;
    for rs in old.iter_mut() {
        if left <= 0 {
            break;
        }
        if rs.replicas == 0 {
            continue;
        }
        let down = rs.replicas.min(left);
        let to = rs.replicas - down;
        scale(out, rs, to);
        left -= down;
    }
}

/// Upstream `DeploymentComplete`.
fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    s.updated_replicas.unwrap_or(0) == replicas
        && s.replicas.unwrap_or(0) == replicas
        && s.available_replicas.unwrap_or(0) == replicas
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Deletes the oldest empty ReplicaSets beyond revisionHistoryLimit (upstream
/// `cleanupDeployment`).
fn cleanup(d: &Deployment, old: &[Rs], out: &mut Plan) {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10);
    let mut alive: Vec<&Rs> = old.iter().filter(|r| !r.deleting).collect();
    let excess = alive.len() as i64 - i64::from(limit);
    if excess <= 0 {
        return;
    }
    alive.sort_by_key(|r| (r.revision, r.created));
    for rs in alive.into_iter().take(excess as usize) {
        if rs.replicas == 0 && rs.status_replicas == 0 && rs.in_sync {
            out.actions.push(Action::Delete {
                rs: rs.name.clone(),
            });
        }
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Upstream `SetDeploymentCondition`: same status and reason keeps the old condition; same
/// status keeps the transition time.
fn set_condition(conds: &mut Vec<DeploymentCondition>, mut c: DeploymentCondition) {
    if let Some(i) = conds.iter().position(|x| x.type_ == c.type_) {
        let cur = &conds[i];
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
        conds.remove(i);
    }
    conds.push(c);
}

fn get_condition<'a>(
    conds: &'a [DeploymentCondition],
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// Upstream `calculateStatus` + `syncRolloutStatus`: counts and the Available and
/// Progressing conditions.
fn status(
    d: &Deployment,
    new: Option<&Rs>,
    old: &[Rs],
    now: Timestamp,
    created_new: bool,
    paused: bool,
    requeue: &mut Option<Duration>,
) -> DeploymentStatus {
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let prev = d.status.clone().unwrap_or_default();
    let all: Vec<&Rs> = new.into_iter().chain(old.iter()).collect();
    let available: i32 = all.iter().map(|r| r.available).sum();
    let spec_total: i32 = all.iter().map(|r| r.replicas).sum();
    let mut s = DeploymentStatus {
        observed_generation: Some(d.metadata.generation.unwrap_or(0)),
        replicas: Some(all.iter().map(|r| r.status_replicas).sum()),
        updated_replicas: Some(new.map(|r| r.status_replicas).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(|r| r.ready).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((spec_total - available).max(0)),
        collision_count: prev.collision_count,
        conditions: prev.conditions.clone(),
        terminating_replicas: None,
    };
    let mut conds = s.conditions.take().unwrap_or_default();
    if available >= replicas - max_unavailable(d) {
        let msg = "Deployment has minimum availability.".to_string();
        set_condition(
            &mut conds,
            condition("Available", "True", "MinimumReplicasAvailable", msg, now),
        );
    } else {
        let msg = "Deployment does not have minimum availability.".to_string();
        set_condition(
            &mut conds,
            condition("Available", "False", "MinimumReplicasUnavailable", msg, now),
        );
    }
    let deadline = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    let name = d.metadata.name.clone().unwrap_or_default();
    let rs_name = new.map(|r| r.name.clone());
    let what = match &rs_name {
        Some(n) => format!("ReplicaSet {n:?}"),
        None => format!("Deployment {name:?}"),
    };
    let current = get_condition(&conds, "Progressing").cloned();
    if paused {
        if current.as_ref().and_then(|c| c.reason.as_deref()) != Some("DeploymentPaused") {
            let c = condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                now,
            );
            set_condition(&mut conds, c);
        }
    } else if current.as_ref().and_then(|c| c.reason.as_deref()) == Some("DeploymentPaused") {
        let c = condition(
            "Progressing",
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed".into(),
            now,
        );
        set_condition(&mut conds, c);
    } else if created_new {
        let msg = format!(
            "Created new replica set {:?}",
            rs_name.clone().unwrap_or_default()
        );
        let mut c = condition("Progressing", "True", "NewReplicaSetCreated", msg, now);
        if let Some(cur) = current.as_ref().filter(|c| c.status == "True") {
            c.last_transition_time = cur.last_transition_time.clone();
        }
        conds.retain(|c| c.type_ != "Progressing");
        conds.push(c);
    } else {
        let complete_before = s.replicas == s.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some("NewReplicaSetAvailable");
        if !complete_before {
            let old_before = prev.replicas.unwrap_or(0) - prev.updated_replicas.unwrap_or(0);
            let old_now = s.replicas.unwrap_or(0) - s.updated_replicas.unwrap_or(0);
            let progressing = s.updated_replicas > Some(prev.updated_replicas.unwrap_or(0))
                || old_now < old_before
                || s.ready_replicas > Some(prev.ready_replicas.unwrap_or(0))
                || s.available_replicas > Some(prev.available_replicas.unwrap_or(0));
            if deployment_complete(d, &s) {
                let msg = format!("{what} has successfully progressed.");
                set_condition(
                    &mut conds,
                    condition("Progressing", "True", "NewReplicaSetAvailable", msg, now),
                );
            } else if progressing {
                let msg = format!("{what} is progressing.");
                let mut c = condition("Progressing", "True", "ReplicaSetUpdated", msg, now);
                if let Some(cur) = current.as_ref().filter(|c| c.status == "True") {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                conds.retain(|c| c.type_ != "Progressing");
                conds.push(c);
            } else if let Some(cur) = current.as_ref() {
                let reason = cur.reason.as_deref();
                let since = cur
                    .last_update_time
                    .as_ref()
                    .map(|t| t.0.as_second())
                    .unwrap_or(0);
                let due = since + i64::from(deadline);
                if reason != Some("NewReplicaSetAvailable")
                    && reason != Some("ProgressDeadlineExceeded")
                {
                    if due < now.as_second() {
                        let msg = format!("{what} has timed out progressing.");
                        let c =
                            condition("Progressing", "False", "ProgressDeadlineExceeded", msg, now);
                        set_condition(&mut conds, c);
                    } else {
                        *requeue = Some(Duration::from_secs((due - now.as_second()) as u64 + 1));
                    }
                }
            }
        }
    }
    if requeue.is_none()
        && get_condition(&conds, "Progressing").is_some_and(|c| {
            matches!(
                c.reason.as_deref(),
                Some("ReplicaSetUpdated" | "NewReplicaSetCreated")
            )
        })
    {
        *requeue = Some(Duration::from_secs(
            u64::try_from(deadline).unwrap_or(600) + 1,
        ));
    }
    s.conditions = Some(conds);
    s
}

/// Whether two statuses are equal once unset counts read as zero (the server may omit them).
fn same_status(current: Option<&DeploymentStatus>, next: &DeploymentStatus) -> bool {
    fn norm(s: &DeploymentStatus) -> DeploymentStatus {
        let z = |v: Option<i32>| Some(v.unwrap_or(0));
        DeploymentStatus {
            available_replicas: z(s.available_replicas),
            collision_count: s.collision_count,
            conditions: Some(s.conditions.clone().unwrap_or_default()),
            observed_generation: Some(s.observed_generation.unwrap_or(0)),
            ready_replicas: z(s.ready_replicas),
            replicas: z(s.replicas),
            terminating_replicas: None,
            unavailable_replicas: z(s.unavailable_replicas),
            updated_replicas: z(s.updated_replicas),
        }
    }
    current.is_some_and(|c| norm(c) == norm(next))
}
