//! The node lifecycle decisions, pure (upstream's node_lifecycle_controller): when a node
//! stopped being heard from, what its conditions become, which taints its conditions call
//! for, and how much of the cluster may be evicted at once.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Taint keys upstream's controllers and kubelet use (`k8s.io/api/core/v1` well-known taints).
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const TAINT_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// The conditions the controller sets Unknown when the kubelet goes quiet (upstream leaves
/// NetworkUnavailable alone: the control plane manages it).
const WATCHED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The conditions that taint a node NoSchedule, with the status that does (upstream's
/// `nodeConditionToTaintKeyStatusMap`).
const NO_SCHEDULE_CONDITIONS: [(&str, &str, &str); 6] = [
    ("Ready", "False", TAINT_NOT_READY),
    ("Ready", "Unknown", TAINT_UNREACHABLE),
    ("MemoryPressure", "True", TAINT_MEMORY_PRESSURE),
    ("DiskPressure", "True", TAINT_DISK_PRESSURE),
    ("NetworkUnavailable", "True", TAINT_NETWORK_UNAVAILABLE),
    ("PIDPressure", "True", TAINT_PID_PRESSURE),
];

/// A node's `Ready` condition, if it has one.
pub fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
}

/// Whether the node's `Ready` condition is `True` (upstream's `IsNodeReady`).
pub fn is_ready(node: &Node) -> bool {
    ready_condition(node).is_some_and(|c| c.status == "True")
}

/// What the controller knows of a node's liveness when it looks at it.
#[derive(Debug, Clone, Copy)]
pub struct Heard {
    /// When the controller last saw the node's Lease renewed or its Ready heartbeat move
    /// (its own clock: upstream's `probeTimestamp`, immune to the node's clock skew).
    pub last: Timestamp,
    /// Now.
    pub now: Timestamp,
    /// How long a node may stay silent (`--node-monitor-grace-period`).
    pub grace: Duration,
    /// How long a node that never posted a Ready condition has (upstream's
    /// `--node-startup-grace-period`).
    pub startup_grace: Duration,
}

/// The outcome of a node's health check.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// The node's new `status.conditions`, when the controller changes them.
    pub conditions: Option<Vec<NodeCondition>>,
    /// The Ready status after the check: `True`, `False` or `Unknown`.
    pub ready: String,
    /// When to look again if nothing is heard (the end of the grace period).
    pub recheck: Option<Duration>,
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// Upstream's `tryUpdateNodeHealth`: once the node has been silent for longer than its
/// grace period, each watched condition becomes `Unknown` ("Kubelet stopped posting node
/// status."), and a condition never posted is added as `Unknown` ("Kubelet never posted
/// node status."). Before that nothing changes and the node is looked at again when the
/// grace period ends.
pub fn health(node: &Node, heard: Heard) -> Health {
    let current = ready_condition(node);
    let grace = if current.is_some() {
        heard.grace
    } else {
        heard.startup_grace
    };
    let ready_now = current.map_or("Unknown", |c| c.status.as_str()).to_string();
    let deadline = heard.last.checked_add(signed(grace)).ok();
    let left = deadline.map(|d| heard.now.duration_until(d));
    if let Some(left) = left.filter(|l| l.is_positive()) {
        return Health {
            conditions: None,
            ready: ready_now,
            recheck: Duration::try_from(left).ok(),
        };
    }
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    let now = Time(heard.now);
    for type_ in WATCHED_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => {
                changed = true;
                conditions.push(NodeCondition {
                    type_: type_.to_string(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(now.clone()),
                });
            }
            Some(c) if c.status != "Unknown" => {
                changed = true;
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(now.clone());
            }
            Some(_) => {}
        }
    }
    Health {
        conditions: changed.then_some(conditions),
        ready: "Unknown".into(),
        recheck: None,
    }
}

/// What may happen to a node's NoExecute taints now (upstream's eviction queues per zone,
/// here one zone: the cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoExecute {
    /// Add the NoExecute taint the Ready condition calls for.
    Apply,
    /// Keep what the node has; adding waits for the rate limiter.
    Defer,
    /// The whole cluster is down (the controller's own connectivity is the likelier
    /// culprit): no evictions, and the NoExecute taints go.
    Cancel,
}

fn has_taint(taints: &[Taint], key: &str, effect: &str) -> bool {
    taints.iter().any(|t| t.key == key && t.effect == effect)
}

/// The node's taints after the NoSchedule pass (upstream's `doNoScheduleTaintingPass`) and
/// the NoExecute pass (`doNoExecuteTaintingPass`, `markNodeAsReachable`), or `None` when
/// they stay as they are.
///
/// NoSchedule: one taint per adverse condition, plus `unschedulable` for a cordoned node.
/// NoExecute: `not-ready` when Ready is False, `unreachable` when Unknown (swapping one for
/// the other), neither when True; each stamped with `timeAdded`, from which tolerations'
/// `tolerationSeconds` count. Taints of other keys are kept untouched.
pub fn taints(
    node: &Node,
    ready: &str,
    no_execute: NoExecute,
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let status_of = |type_: &str| -> Option<String> {
        if type_ == "Ready" {
            return Some(ready.to_string());
        }
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.status.clone())
    };
    let mut no_schedule: Vec<&str> = NO_SCHEDULE_CONDITIONS
        .iter()
        .filter(|(type_, status, _)| status_of(type_).as_deref() == Some(*status))
        .map(|(_, _, key)| *key)
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        no_schedule.push(TAINT_UNSCHEDULABLE);
    }
    let managed_no_schedule = |t: &Taint| {
        t.effect == "NoSchedule"
            && (NO_SCHEDULE_CONDITIONS.iter().any(|(_, _, k)| *k == t.key)
                || t.key == TAINT_UNSCHEDULABLE)
    };
    let wanted_no_execute = match ready {
        "False" => Some(TAINT_NOT_READY),
        "Unknown" => Some(TAINT_UNREACHABLE),
        _ => None,
    };
    let managed_no_execute = |t: &Taint| {
        t.effect == "NoExecute" && (t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE)
    };
    let mut next: Vec<Taint> = Vec::new();
    for t in &current {
        let keep = if managed_no_schedule(t) {
            no_schedule.contains(&t.key.as_str())
        } else if managed_no_execute(t) {
            match no_execute {
                NoExecute::Cancel => false,
                // A swap (unreachable to not-ready) waits like an addition; a node back
                // to Ready loses its taint at once (upstream's `markNodeAsReachable`).
                NoExecute::Defer => wanted_no_execute.is_some(),
                NoExecute::Apply => wanted_no_execute == Some(t.key.as_str()),
            }
        } else {
            true
        };
        if keep {
            next.push(t.clone());
        }
    }
    for key in no_schedule {
        if !has_taint(&next, key, "NoSchedule") {
            next.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            });
        }
    }
    if let (NoExecute::Apply, Some(key)) = (no_execute, wanted_no_execute) {
        if !has_taint(&next, key, "NoExecute") {
            next.push(Taint {
                key: key.into(),
                effect: "NoExecute".into(),
                time_added: Some(Time(now)),
                value: None,
            });
        }
    }
    (next != current).then_some(next)
}

/// Whether the node is missing the NoExecute taint its Ready status calls for (the one
/// change the rate limiter meters).
pub fn needs_no_execute_taint(node: &Node, ready: &str) -> bool {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    match ready {
        "False" => !has_taint(&current, TAINT_NOT_READY, "NoExecute"),
        "Unknown" => !has_taint(&current, TAINT_UNREACHABLE, "NoExecute"),
        _ => false,
    }
}

/// The cluster's disruption state (upstream's `ComputeZoneState`, the cluster taken as one
/// zone): no node ready is a full disruption; more than two not ready and at least
/// `unhealthy_threshold` of all is a partial one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruption {
    Normal,
    Partial,
    Full,
}

/// Upstream's `ComputeZoneState` over the Ready statuses of every node.
pub fn disruption<'a>(
    ready: impl IntoIterator<Item = &'a str>,
    unhealthy_threshold: f64,
) -> Disruption {
    let (mut up, mut down) = (0usize, 0usize);
    for r in ready {
        if r == "True" {
            up += 1;
        } else {
            down += 1;
        }
    }
    if up == 0 && down > 0 {
        Disruption::Full
    } else if down > 2 && down as f64 / (up + down) as f64 >= unhealthy_threshold {
        Disruption::Partial
    } else {
        Disruption::Normal
    }
}

/// How fast nodes may be tainted NoExecute in each state (upstream's `--node-eviction-rate`
/// 0.1/s, `--secondary-node-eviction-rate` 0.01/s, 0 for a partially disrupted cluster of at
/// most `--large-cluster-size-threshold` nodes), or `None` when evictions are cancelled.
pub fn eviction_rate(state: Disruption, nodes: usize, rates: &Rates) -> Option<f64> {
    match state {
        Disruption::Normal => Some(rates.normal),
        Disruption::Partial if nodes <= rates.large_cluster => Some(0.0),
        Disruption::Partial => Some(rates.secondary),
        Disruption::Full => None,
    }
}

/// Upstream's eviction rate settings.
#[derive(Debug, Clone)]
pub struct Rates {
    pub normal: f64,
    pub secondary: f64,
    pub large_cluster: usize,
    pub unhealthy_threshold: f64,
}

impl Default for Rates {
    fn default() -> Rates {
        Rates {
            normal: 0.1,
            secondary: 0.01,
            large_cluster: 50,
            unhealthy_threshold: 0.55,
        }
    }
}

/// A token bucket of burst 1 (upstream's `NewTokenBucketRateLimiter(qps, 1)` behind each
/// zone's tainting queue): the first node is tainted at once, the next after `1/rate`.
#[derive(Debug, Default)]
pub struct Limiter {
    last: Option<Timestamp>,
}

impl Limiter {
    /// Takes the token if one is there at `now` under `rate` per second.
    pub fn try_take(&mut self, now: Timestamp, rate: f64) -> bool {
        if rate <= 0.0 || !rate.is_finite() {
            return false;
        }
        let period = SignedDuration::from_secs_f64((1.0 / rate).min(1e9));
        let ready = match self.last {
            None => true,
            Some(last) => last.checked_add(period).map_or(true, |at| at <= now),
        };
        if ready {
            self.last = Some(now);
        }
        ready
    }

    /// How long until a token is there under `rate` (for requeueing a deferred node).
    pub fn wait(&self, now: Timestamp, rate: f64) -> Option<Duration> {
        if rate <= 0.0 || !rate.is_finite() {
            return None;
        }
        let period = SignedDuration::from_secs_f64((1.0 / rate).min(1e9));
        let at = self.last?.checked_add(period).ok()?;
        Duration::try_from(now.duration_until(at)).ok()
    }
}
