//! Pure ReplicaSet planning: from the ReplicaSet and the pods of its namespace, the changes.

use crate::claim::{claim, Change};
use crate::meta::{
    created, labels, pod_is_active, pod_is_available, pod_ready_since, selector_matches,
};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

/// Most pods created or deleted in one pass (upstream's `burstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// The observed counts written to `.status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub fully_labeled_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    pub observed_generation: i64,
}

/// One change to make through the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create this many pods from the template (sent in slow-start batches by
    /// `podcontrol::create_pods`).
    Create { count: usize },
    /// Delete this pod (scale down).
    Delete { pod: String },
    /// Take ownership of an orphan pod matching the selector.
    Adopt { pod: String },
    /// Drop ownership of a pod whose labels no longer match.
    Release { pod: String },
    /// Write these counts to `.status`.
    Status(Counts),
}

/// The plan for one reconcile pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// When to look again although nothing changes (a pod becoming available after
    /// minReadySeconds).
    pub requeue_after: Option<Duration>,
}

/// Ranks pods for deletion, most deletable first (upstream `ActivePods` ordering):
/// unscheduled, then pending, then not ready, then ready for less time, then newest.
fn deletion_rank(
    pod: &Pod,
) -> (
    u8,
    u8,
    u8,
    std::cmp::Reverse<Timestamp>,
    std::cmp::Reverse<Timestamp>,
) {
    let spec_node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let ready = pod_ready_since(pod);
    (
        u8::from(spec_node.is_some_and(|n| !n.is_empty())),
        match phase {
            Some("Pending") | None => 0,
            Some("Unknown") => 1,
            _ => 2,
        },
        u8::from(ready.is_some()),
        std::cmp::Reverse(ready.unwrap_or(Timestamp::UNIX_EPOCH)),
        std::cmp::Reverse(created(&pod.metadata)),
    )
}

/// Computes the changes that bring `pods` (all pods of the namespace) in line with `rs`.
pub fn plan(rs: &ReplicaSet, pods: &[&Pod], now: Timestamp) -> Plan {
    let mut out = Plan::default();
    if rs.metadata.uid.is_none() {
        return out;
    }
    let Some(spec) = rs.spec.as_ref() else {
        return out;
    };
    let rs_deleting = rs.metadata.deletion_timestamp.is_some();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let c = claim(
        &rs.metadata,
        |p: &Pod| selector_matches(&spec.selector, &labels(&p.metadata)),
        pods,
    );
    out.actions
        .extend(c.changes.into_iter().map(|change| match change {
            Change::Adopt(pod) => Action::Adopt { pod },
            Change::Release(pod) => Action::Release { pod },
        }));
    let claimed = c.owned;
    let active: Vec<&Pod> = claimed
        .iter()
        .copied()
        .filter(|p| pod_is_active(p))
        .collect();
    if !rs_deleting {
        let want = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
        if active.len() < want {
            let n = (want - active.len()).min(BURST_REPLICAS);
            out.actions.push(Action::Create { count: n });
        } else if active.len() > want {
            let mut ranked = active.clone();
            ranked.sort_by_key(|p| deletion_rank(p));
            for pod in ranked
                .iter()
                .take((active.len() - want).min(BURST_REPLICAS))
            {
                out.actions.push(Action::Delete {
                    pod: pod.metadata.name.clone().unwrap_or_default(),
                });
            }
        }
    }
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .map(labels)
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    let counts = Counts {
        replicas: active.len() as i32,
        fully_labeled_replicas: count(&|p| {
            let l = labels(&p.metadata);
            template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        }),
        ready_replicas: count(&|p| pod_ready_since(p).is_some()),
        available_replicas: count(&|p| pod_is_available(p, min_ready, now)),
        observed_generation: rs.metadata.generation.unwrap_or(0),
    };
    if min_ready > 0 {
        out.requeue_after = active
            .iter()
            .filter_map(|p| pod_ready_since(p))
            .map(|since| since.as_second() + i64::from(min_ready) - now.as_second())
            .filter(|left| *left > 0)
            .min()
            .map(|left| Duration::from_secs(left as u64 + 1));
    }
    if current_counts(rs) != counts {
        out.actions.push(Action::Status(counts));
    }
    out
}

/// The counts currently in `.status`.
pub fn current_counts(rs: &ReplicaSet) -> Counts {
    let s = rs.status.clone().unwrap_or_default();
    Counts {
        replicas: s.replicas,
        fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
        ready_replicas: s.ready_replicas.unwrap_or(0),
        available_replicas: s.available_replicas.unwrap_or(0),
        observed_generation: s.observed_generation.unwrap_or(0),
    }
}
