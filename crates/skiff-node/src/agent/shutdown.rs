//! Graceful node shutdown, as the kubelet's GracefulNodeShutdown (decision 0043): asked to
//! stop with a `--shutdown-grace-period`, the node says `Ready=False` ("node is shutting
//! down"), rejects new pods, kills its pods in priority groups (everything else first, then
//! critical pods within `--shutdown-grace-period-critical-pods`), each container's grace
//! capped by its group's period, and marks each pod `Failed` / `Terminated` with the
//! kubelet's message and a `DisruptionTarget` condition, so controllers replace them at
//! once instead of waiting for the node to be found lost.
//!
//! The kubelet learns of a shutdown from systemd-logind's inhibitor lock; skiff's node is
//! told by its process (SIGTERM to `skiff server` or `skiff agent`). Without a period (the
//! default) nothing here runs and pods keep running across restarts, as k3s's do.
//!
//! The decisions (which group, which grace, what status) are pure functions with tests;
//! [`run`] carries them out through the pod workers' locks, so a pod worker in the middle
//! of a sync finishes its step before its pod is killed and never starts a container again.

use super::events;
use super::lifecycle::{kill_container, HookTarget, KillReason};
use super::plan::{pod_is_terminal, Plan};
use super::status::{pod_status, to_time, StatusInput};
use super::Shared;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodCondition, PodStatus};
use kube::api::{Api, Patch, PatchParams};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// `status.reason` of a pod killed by the shutdown (the kubelet's `nodeShutdownReason`).
pub const SHUTDOWN_REASON: &str = "Terminated";
/// `status.message` of a pod killed by the shutdown.
pub const SHUTDOWN_MESSAGE: &str = "Pod was terminated in response to imminent node shutdown.";
/// `status.reason` of a pod that arrives while the node shuts down.
pub const NOT_ADMITTED_REASON: &str = "NodeShutdown";
/// `status.message` of a pod that arrives while the node shuts down.
pub const NOT_ADMITTED_MESSAGE: &str = "Pod was rejected as the node is shutting down.";
/// The Ready condition's message while shutting down (the shutdown manager's error).
pub const NODE_MESSAGE: &str = "node is shutting down";
/// Upstream's `SystemCriticalPriority`: pods at or above it are the critical group.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// How long the shutdown may take in all, and how much of it is kept for critical pods
/// (the kubelet's `shutdownGracePeriod` and `shutdownGracePeriodCriticalPods`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownPeriods {
    /// The whole shutdown; zero turns graceful shutdown off.
    pub total: Duration,
    /// The part of it for critical pods, at the end.
    pub critical: Duration,
}

/// One priority group: pods with at least `priority` (up to the next group's) and how
/// long they get, in whole seconds as upstream's `ShutdownGracePeriodSeconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// The lowest priority of the group.
    pub priority: i32,
    /// Its period in seconds.
    pub seconds: i64,
}

impl ShutdownPeriods {
    /// Checks the two flags as the kubelet's configuration validation does.
    pub fn new(total: Duration, critical: Duration) -> Result<Self, String> {
        if critical > total {
            return Err(format!(
                "invalid configuration: shutdownGracePeriodCriticalPods ({}) must be <= shutdownGracePeriod ({})",
                go(critical),
                go(total)
            ));
        }
        Ok(ShutdownPeriods { total, critical })
    }

    /// Whether graceful shutdown is on.
    pub fn enabled(&self) -> bool {
        !self.total.is_zero()
    }

    /// The groups, lowest priority first (upstream's migration of the two settings to
    /// `shutdownGracePeriodByPodPriority`): everything else gets `total - critical`,
    /// critical pods `critical`; none when shutdown is off.
    pub fn groups(&self) -> Vec<Group> {
        if !self.enabled() {
            return Vec::new();
        }
        let rest = self.total.saturating_sub(self.critical);
        vec![
            Group {
                priority: 0,
                seconds: rest.as_secs() as i64,
            },
            Group {
                priority: SYSTEM_CRITICAL_PRIORITY,
                seconds: self.critical.as_secs() as i64,
            },
        ]
    }
}

fn go(d: Duration) -> String {
    skiff_apimachinery::duration::go_string(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Which of `groups` (sorted by priority) a pod of `priority` belongs to: the highest whose
/// priority it reaches; below the lowest, the lowest (upstream's `groupByPriority`).
pub fn group_of(groups: &[Group], priority: i32) -> usize {
    let index = groups.partition_point(|g| g.priority < priority);
    if index == groups.len() {
        groups.len().saturating_sub(1)
    } else if index > 0 && groups[index].priority > priority {
        index - 1
    } else {
        index
    }
}

/// The grace a pod gets: its group's period, or its own `terminationGracePeriodSeconds`
/// when that is shorter.
pub fn pod_grace(pod: &Pod, group: &Group) -> Duration {
    let own = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds);
    let seconds = match own {
        Some(s) if s <= group.seconds => s,
        _ => group.seconds,
    };
    Duration::from_secs(seconds.max(0) as u64)
}

/// The pods to kill, by group (lowest priority first): every pod not yet in a terminal
/// phase (upstream's active pods).
pub fn plan_groups<'a>(groups: &[Group], pods: &'a [Pod]) -> Vec<Vec<&'a Pod>> {
    let mut out = vec![Vec::new(); groups.len()];
    for pod in pods.iter().filter(|p| !pod_is_terminal(p)) {
        let priority = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        out[group_of(groups, priority)].push(pod);
    }
    out
}

/// Replaces the condition of `c`'s type, keeping its transition time when its status did
/// not change (upstream's `UpdatePodCondition`), or appends it.
fn set_condition(status: &mut PodStatus, mut c: PodCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|o| o.type_ == c.type_) {
        Some(old) => {
            if old.status == c.status {
                c.last_transition_time = old.last_transition_time.clone();
            }
            *old = c;
        }
        None => conditions.push(c),
    }
}

/// The status of a pod the shutdown killed, from the one computed from its stopped
/// containers: `Failed` (unless it had `Succeeded`), the kubelet's reason and message, and
/// `DisruptionTarget` (`TerminationByKubelet`), so its controller replaces it.
pub fn terminated_status(mut status: PodStatus, now: DateTime<Utc>) -> PodStatus {
    if status.phase.as_deref() != Some("Succeeded") {
        status.phase = Some("Failed".into());
    }
    status.reason = Some(SHUTDOWN_REASON.into());
    status.message = Some(SHUTDOWN_MESSAGE.into());
    set_condition(
        &mut status,
        PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("TerminationByKubelet".into()),
            message: Some(SHUTDOWN_MESSAGE.into()),
            last_transition_time: Some(to_time(now)),
            ..Default::default()
        },
    );
    status
}

/// The status of a pod refused because it arrived during the shutdown (upstream's
/// `rejectPod`: phase, reason and message only, its QoS class kept).
pub fn rejected_status(pod: &Pod) -> PodStatus {
    PodStatus {
        phase: Some("Failed".into()),
        reason: Some(NOT_ADMITTED_REASON.into()),
        message: Some(NOT_ADMITTED_MESSAGE.into()),
        qos_class: pod.status.as_ref().and_then(|s| s.qos_class.clone()),
        ..Default::default()
    }
}

/// The node's shutdown state, shared by the pod workers, the heartbeat and [`run`].
pub(crate) struct Shutdown {
    periods: ShutdownPeriods,
    /// Set once the shutdown starts; pod workers stop syncing, pulls and hooks waiting on
    /// a pod are abandoned.
    started: watch::Sender<bool>,
    /// The latest Pod each worker has, with the lock it holds while it syncs.
    pods: Mutex<HashMap<String, Tracked>>,
    /// Pods the shutdown kills; any other pod seen after it started is rejected.
    killed: Mutex<BTreeSet<String>>,
}

struct Tracked {
    pod: Pod,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Shutdown {
    pub(crate) fn new(periods: ShutdownPeriods) -> Self {
        Shutdown {
            periods,
            started: watch::channel(false).0,
            pods: Mutex::new(HashMap::new()),
            killed: Mutex::new(BTreeSet::new()),
        }
    }

    /// Whether the shutdown has started.
    pub(crate) fn started(&self) -> bool {
        *self.started.borrow()
    }

    /// Returns once the shutdown starts.
    pub(crate) async fn wait_started(&self) {
        let mut rx = self.started.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Records a worker's latest Pod; returns the lock it syncs under.
    pub(crate) fn track(&self, uid: &str, pod: &Pod) -> Arc<tokio::sync::Mutex<()>> {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let tracked = pods.entry(uid.to_string()).or_insert_with(|| Tracked {
            pod: pod.clone(),
            lock: Arc::default(),
        });
        tracked.pod = pod.clone();
        tracked.lock.clone()
    }

    /// Forgets a pod whose worker ended.
    pub(crate) fn untrack(&self, uid: &str) {
        self.pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    /// Whether the shutdown kills this pod (it ran here before the shutdown started).
    pub(crate) fn kills(&self, uid: &str) -> bool {
        self.killed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(uid)
    }
}

/// Shuts the node down gracefully, if a period is set; returns when every group is done or
/// its period ran out.
pub(crate) async fn run(shared: Arc<Shared>) {
    let periods = shared.shutdown.periods;
    if !periods.enabled() {
        return;
    }
    let started = std::time::Instant::now();
    let tracked: Vec<(Pod, Arc<tokio::sync::Mutex<()>>)> = {
        let pods = shared
            .shutdown
            .pods
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut killed = shared
            .shutdown
            .killed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for uid in pods.keys() {
            killed.insert(uid.clone());
        }
        pods.values()
            .map(|t| (t.pod.clone(), t.lock.clone()))
            .collect()
    };
    shared.shutdown.started.send_replace(true);
    tracing::info!(
        grace = ?periods.total,
        critical = ?periods.critical,
        pods = tracked.len(),
        "graceful node shutdown"
    );
    shared.recorder.event(
        node_ref(&shared.cfg.node_name),
        events::NORMAL,
        "Shutdown",
        "Shutdown manager detected shutdown event",
    );
    // Ready=False at once, as the kubelet syncs its status before killing pods.
    if let Err(e) = super::node::register(&shared, shared.kubelet_port).await {
        tracing::warn!(error = %e, "posting the node's shutting-down status");
    }
    let groups = periods.groups();
    let pods: Vec<Pod> = tracked.iter().map(|(p, _)| p.clone()).collect();
    let locks: HashMap<String, Arc<tokio::sync::Mutex<()>>> = tracked
        .into_iter()
        .map(|(p, l)| (p.metadata.uid.clone().unwrap_or_default(), l))
        .collect();
    let mut tasks = Vec::new();
    for (group, members) in groups.iter().zip(plan_groups(&groups, &pods)) {
        if members.is_empty() {
            continue;
        }
        let mut handles = Vec::new();
        for pod in members {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let lock = locks.get(&uid).cloned().unwrap_or_default();
            let grace = pod_grace(pod, group);
            let span = tracing::info_span!("pod", pod = %super::pods::pod_key(pod));
            handles.push(tokio::spawn(
                kill_pod(shared.clone(), pod.clone(), lock, grace).instrument(span),
            ));
        }
        let period = Duration::from_secs(group.seconds.max(0) as u64);
        let all = futures::future::join_all(handles.iter_mut());
        if tokio::time::timeout(period, all).await.is_err() {
            tracing::info!(priority = group.priority, "group's shutdown period over");
        }
        tasks.extend(handles);
    }
    // A kill ending with its SIGKILL at the end of the last period still writes its pod's
    // status; the API is up until this returns.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        futures::future::join_all(tasks.into_iter().filter(|t| !t.is_finished())),
    )
    .await;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "graceful node shutdown done"
    );
}

fn node_ref(name: &str) -> ObjectReference {
    ObjectReference {
        kind: Some("Node".into()),
        name: Some(name.into()),
        uid: Some(name.into()),
        ..Default::default()
    }
}

/// Kills one pod's containers together (preStop hooks included, within `grace`) once its
/// worker is between syncs, then writes its terminated status.
async fn kill_pod(
    shared: Arc<Shared>,
    pod: Pod,
    lock: Arc<tokio::sync::Mutex<()>>,
    grace: Duration,
) {
    let _guard = lock.lock().await;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let observed = match super::pods::observe_off_runtime(&shared, &uid).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "listing the pod's containers for shutdown");
            return;
        }
    };
    let (_, pod_ip) = super::pods::sandbox_ip(&shared, &uid);
    let stopping = observed
        .iter()
        .filter(|o| {
            matches!(
                o.state,
                crate::runtime::ContainerState::Running | crate::runtime::ContainerState::Created
            )
        })
        .filter_map(|o| {
            let container = super::pods::all_containers(&pod).find(|c| c.name == o.name)?;
            Some((o, container))
        })
        .map(|(o, container)| {
            let pod_ip = pod_ip.clone();
            let (shared, pod) = (&shared, &pod);
            async move {
                let t = HookTarget {
                    pod,
                    container,
                    container_id: &o.id,
                    pod_ip: pod_ip.as_deref(),
                    runtime: &shared.runtime,
                };
                if let Err(e) =
                    kill_container(&t, KillReason::NodeShutdown, grace, &shared.recorder).await
                {
                    tracing::warn!(container = %o.id, error = %e, "stopping container for shutdown");
                }
            }
        });
    futures::future::join_all(stopping).await;
    let observed = match super::pods::observe_off_runtime(&shared, &uid).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "listing the pod's stopped containers");
            return;
        }
    };
    let (sandbox_ready, pod_ip) = super::pods::sandbox_ip(&shared, &uid);
    let status = pod_status(
        &pod,
        &observed,
        &Plan::default(),
        &StatusInput {
            pod_ip,
            host_ip: shared.node_ip.clone(),
            sandbox_ready,
            image_ids: super::pods::image_info(&shared, &pod, |r| r.image_ref().to_string()),
            image_names: super::pods::image_info(&shared, &pod, |r| r.name.clone()),
            ..Default::default()
        },
        Utc::now(),
    );
    let status = terminated_status(status, Utc::now());
    write_status(&shared, &pod, &status).await;
    tracing::info!(grace = ?grace, "pod terminated for node shutdown");
}

/// Writes a pod's status, bounded in time: the shutdown must end even when the API is gone.
pub(crate) async fn write_status(shared: &Shared, pod: &Pod, status: &PodStatus) {
    let api: Api<Pod> = Api::namespaced(
        shared.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let patch = Patch::Merge(serde_json::json!({ "status": status }));
    let params = PatchParams::default();
    match tokio::time::timeout(
        Duration::from_secs(5),
        api.patch_status(name, &params, &patch),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(pod = %name, error = %e, "writing the pod's status"),
        Err(_) => tracing::warn!(pod = %name, "writing the pod's status timed out"),
    }
}

/// A pod that reached the worker after the shutdown started: refused as upstream's
/// admission does, unless it already finished or is being deleted.
pub(crate) async fn reject(shared: &Shared, pod: &Pod) {
    if pod_is_terminal(pod) || pod.metadata.deletion_timestamp.is_some() {
        return;
    }
    tracing::info!(pod = %super::pods::pod_key(pod), "pod rejected: the node is shutting down");
    write_status(shared, pod, &rejected_status(pod)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn pod(name: &str, priority: Option<i32>, grace: Option<i64>, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name},
            "spec": {"containers": [], "priority": priority,
                     "terminationGracePeriodSeconds": grace},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn the_flags_are_checked_as_the_kubelets_configuration() {
        assert!(ShutdownPeriods::new(secs(30), secs(10)).is_ok());
        assert!(ShutdownPeriods::new(secs(30), secs(30)).is_ok());
        assert!(ShutdownPeriods::new(Duration::ZERO, Duration::ZERO).is_ok());
        assert_eq!(
            ShutdownPeriods::new(secs(10), secs(30)).unwrap_err(),
            "invalid configuration: shutdownGracePeriodCriticalPods (30s) must be <= shutdownGracePeriod (10s)"
        );
    }

    #[test]
    fn two_groups_from_the_two_periods_in_whole_seconds() {
        let cases = [
            ("off", 0, 0, vec![]),
            (
                "30s with 10s critical",
                30_000,
                10_000,
                vec![(0, 20), (SYSTEM_CRITICAL_PRIORITY, 10)],
            ),
            (
                "no critical share",
                30_000,
                0,
                vec![(0, 30), (SYSTEM_CRITICAL_PRIORITY, 0)],
            ),
            (
                "all critical",
                10_000,
                10_000,
                vec![(0, 0), (SYSTEM_CRITICAL_PRIORITY, 10)],
            ),
            (
                "fractions truncated",
                6_500,
                2_700,
                vec![(0, 3), (SYSTEM_CRITICAL_PRIORITY, 2)],
            ),
        ];
        for (name, total, critical, want) in cases {
            let p = ShutdownPeriods::new(
                Duration::from_millis(total),
                Duration::from_millis(critical),
            )
            .unwrap();
            let got: Vec<(i32, i64)> = p.groups().iter().map(|g| (g.priority, g.seconds)).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    /// Upstream's `Test_groupByPriority` boundaries: below the lowest goes to the lowest,
    /// above the highest to the highest, between two to the lower one.
    #[test]
    fn a_pod_joins_the_highest_group_its_priority_reaches() {
        let groups = [
            Group {
                priority: 1,
                seconds: 10,
            },
            Group {
                priority: 2,
                seconds: 20,
            },
            Group {
                priority: 2_000_000_000,
                seconds: 30,
            },
            Group {
                priority: 2_147_483_647,
                seconds: 40,
            },
        ];
        let cases = [
            (-1, 0),
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 1),
            (1_999_999_999, 1),
            (2_000_000_000, 2),
            (2_000_001_000, 2),
            (2_147_483_647, 3),
        ];
        for (priority, want) in cases {
            assert_eq!(group_of(&groups, priority), want, "priority {priority}");
        }
    }

    #[test]
    fn pods_are_grouped_by_priority_and_finished_ones_left_alone() {
        let p = ShutdownPeriods::new(secs(30), secs(10)).unwrap();
        let pods = [
            pod("plain", None, None, "Running"),
            pod("negative", Some(-5), None, "Pending"),
            pod("node-critical", Some(2_000_001_000), None, "Running"),
            pod("cluster-critical", Some(2_000_000_000), None, "Running"),
            pod("high", Some(1_000_000_000), None, "Running"),
            pod("done", None, None, "Succeeded"),
            pod("failed", Some(2_000_001_000), None, "Failed"),
        ];
        let groups = plan_groups(&p.groups(), &pods);
        let names = |g: &Vec<&Pod>| -> Vec<String> {
            g.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
        };
        assert_eq!(names(&groups[0]), ["plain", "negative", "high"]);
        assert_eq!(names(&groups[1]), ["node-critical", "cluster-critical"]);
    }

    #[test]
    fn a_pods_own_grace_wins_only_when_shorter_than_its_groups() {
        let group = Group {
            priority: 0,
            seconds: 20,
        };
        let cases = [
            ("unset", None, 20),
            ("shorter", Some(5), 5),
            ("equal", Some(20), 20),
            ("longer", Some(600), 20),
            ("zero", Some(0), 0),
            ("negative", Some(-1), 0),
        ];
        for (name, own, want) in cases {
            let p = pod("p", None, own, "Running");
            assert_eq!(pod_grace(&p, &group), secs(want), "{name}");
        }
    }

    #[test]
    fn a_killed_pod_is_failed_with_the_kubelets_reason_and_a_disruption_condition() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:10Z")
            .unwrap()
            .with_timezone(&Utc);
        let before: PodStatus = serde_json::from_value(json!({
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ],
        }))
        .unwrap();
        let got = serde_json::to_value(terminated_status(before.clone(), now)).unwrap();
        assert_eq!(got["phase"], "Failed");
        assert_eq!(got["reason"], "Terminated");
        assert_eq!(
            got["message"],
            "Pod was terminated in response to imminent node shutdown."
        );
        assert_eq!(
            got["conditions"][1],
            json!({"type": "DisruptionTarget", "status": "True",
                   "reason": "TerminationByKubelet",
                   "message": "Pod was terminated in response to imminent node shutdown.",
                   "lastTransitionTime": "2026-01-01T00:00:10Z"})
        );
        assert_eq!(got["conditions"][0]["type"], "Ready", "others kept");

        // A pod that had succeeded stays Succeeded; a DisruptionTarget already True keeps
        // its transition time.
        let mut done = before;
        done.phase = Some("Succeeded".into());
        let done = terminated_status(done, now);
        let again = terminated_status(done.clone(), now + chrono::Duration::seconds(5));
        assert_eq!(again.phase.as_deref(), Some("Succeeded"));
        let dt = |s: &PodStatus| {
            s.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "DisruptionTarget")
                .and_then(|c| c.last_transition_time.clone())
        };
        assert_eq!(dt(&again), dt(&done));
        assert_eq!(again.conditions.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn a_pod_arriving_during_shutdown_is_rejected_as_upstreams_admission() {
        let mut p = pod("late", None, None, "Pending");
        p.status.as_mut().unwrap().qos_class = Some("BestEffort".into());
        assert_eq!(
            serde_json::to_value(rejected_status(&p)).unwrap(),
            json!({"phase": "Failed", "reason": "NodeShutdown",
                   "message": "Pod was rejected as the node is shutting down.",
                   "qosClass": "BestEffort"})
        );
    }
}
