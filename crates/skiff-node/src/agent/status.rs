//! The pure part of status: a Pod's `status` from its spec, the observed containers and
//! the plan's waiting reasons, written the way the kubelet writes it.

use super::plan::{latest, pod_is_terminal, previous, Observed, Plan};
use crate::runtime::ContainerState;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState as KState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, EphemeralContainer, Pod, PodCondition, PodIP,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;

/// Facts from outside the pod spec that the status shows.
#[derive(Debug, Clone, Default)]
pub struct StatusInput {
    /// The pod's IP, once its sandbox has one (the host IP for hostNetwork pods).
    pub pod_ip: Option<String>,
    /// The node's address.
    pub host_ip: String,
    /// Whether the sandbox exists.
    pub sandbox_ready: bool,
    /// `imageID` by image reference as written in the spec.
    pub image_ids: BTreeMap<String, String>,
    /// Normalized image name by reference as written in the spec.
    pub image_names: BTreeMap<String, String>,
    /// Containers whose readiness (or startup) probe does not pass (yet).
    pub unready: std::collections::BTreeSet<String>,
    /// Running containers whose startup probe has not passed yet: `started: false`.
    pub not_started: std::collections::BTreeSet<String>,
}

fn time(s: &str) -> Option<Time> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| to_time(t.with_timezone(&Utc)))
}

/// API `Time` (whole seconds, as it is serialized) of a chrono time.
pub fn to_time(t: DateTime<Utc>) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap_or_default())
}

/// The container ID as shown in status (`<runtime>://<id>`).
pub fn container_id(id: &str) -> String {
    format!("skiff://{id}")
}

fn terminated(c: &Observed) -> Option<ContainerStateTerminated> {
    let ContainerState::Exited(e) = &c.state else {
        return None;
    };
    Some(ContainerStateTerminated {
        exit_code: e.exit_code,
        reason: Some(e.reason.clone()),
        started_at: c.started_at.as_deref().and_then(time),
        finished_at: time(&e.finished_at),
        container_id: Some(container_id(&c.id)),
        ..Default::default()
    })
}

fn container_status(
    c: &Container,
    init: bool,
    observed: &[Observed],
    plan: &Plan,
    input: &StatusInput,
) -> ContainerStatus {
    let image = c.image.clone().unwrap_or_default();
    let last = latest(observed, &c.name, init);
    let prev = previous(observed, &c.name, init);
    let waiting = plan.waiting.get(&c.name);
    let mut status = ContainerStatus {
        name: c.name.clone(),
        image: input
            .image_names
            .get(&image)
            .cloned()
            .unwrap_or(image.clone()),
        image_id: last
            .and_then(|l| l.image_id.clone())
            .or_else(|| input.image_ids.get(&image).cloned())
            .unwrap_or_default(),
        restart_count: last.map_or(0, |l| l.attempt as i32),
        container_id: last.map(|l| container_id(&l.id)),
        ..Default::default()
    };
    let mut last_state = prev.and_then(terminated);
    let state = match (last.map(|l| &l.state), waiting) {
        (Some(ContainerState::Running), _) => KState {
            running: Some(ContainerStateRunning {
                started_at: last.and_then(|l| l.started_at.as_deref()).and_then(time),
            }),
            ..Default::default()
        },
        (Some(ContainerState::Exited(_)), Some(w)) => {
            // Waiting to restart: the exit moves to lastState.
            last_state = last.and_then(terminated);
            waiting_state(&w.reason, w.message.clone())
        }
        (Some(ContainerState::Exited(_)), None) => KState {
            terminated: last.and_then(terminated),
            ..Default::default()
        },
        (_, Some(w)) => waiting_state(&w.reason, w.message.clone()),
        _ => waiting_state("ContainerCreating", None),
    };
    let running = state.running.is_some();
    status.state = Some(state);
    status.last_state = Some(KState {
        terminated: last_state,
        ..Default::default()
    });
    status.ready = running && !init && !input.unready.contains(&c.name);
    status.started = Some(running && !input.not_started.contains(&c.name));
    if init {
        status.ready = matches!(
            last.map(|l| &l.state),
            Some(ContainerState::Exited(e)) if e.exit_code == 0
        );
        status.started = Some(running);
    }
    status
}

/// An ephemeral container as the container it runs as: the same fields, less the target
/// (which only decides the PID namespace it joins).
pub(super) fn ephemeral_as_container(e: &EphemeralContainer) -> Option<Container> {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// `ephemeralContainerStatuses`: reported as containers are, never ready (they serve no
/// traffic), as the kubelet's.
fn ephemeral_statuses(
    pod: &Pod,
    observed: &[Observed],
    plan: &Plan,
    input: &StatusInput,
) -> Vec<ContainerStatus> {
    pod.spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .filter_map(ephemeral_as_container)
        .map(|c| {
            let mut status = container_status(&c, false, observed, plan, input);
            status.ready = false;
            status
        })
        .collect()
}

#[cfg(test)]
mod ephemeral_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ephemeral_containers_have_their_own_statuses_never_ready() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}],
                "ephemeralContainers": [
                    {"name": "debugger", "image": "busybox:v1", "targetContainerName": "app"},
                    {"name": "later", "image": "busybox:v1"}]},
        }))
        .unwrap();
        let observed = [
            Observed {
                id: "u-0-app".into(),
                name: "app".into(),
                image_id: None,
                init: false,
                attempt: 0,
                state: ContainerState::Running,
                started_at: Some("2026-01-01T00:00:00Z".into()),
            },
            Observed {
                id: "u-0-debugger".into(),
                name: "debugger".into(),
                image_id: None,
                init: false,
                attempt: 0,
                state: ContainerState::Running,
                started_at: Some("2026-01-01T00:00:01Z".into()),
            },
        ];
        let now: DateTime<Utc> = "2026-01-01T00:00:02Z".parse().unwrap();
        let status = pod_status(
            &pod,
            &observed,
            &Plan::default(),
            &StatusInput::default(),
            now,
        );
        let eph = status.ephemeral_container_statuses.unwrap();
        assert_eq!(eph.len(), 2);
        assert_eq!(eph[0].name, "debugger");
        assert!(eph[0].state.as_ref().unwrap().running.is_some());
        assert_eq!(eph[0].container_id.as_deref(), Some("skiff://u-0-debugger"));
        assert!(!eph[0].ready);
        assert_eq!(eph[0].image, "busybox:v1");
        assert_eq!(
            eph[1]
                .state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );
        // The pod's own containers are what its phase and readiness follow.
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.container_statuses.unwrap().len(), 1);
    }
}

fn waiting_state(reason: &str, message: Option<String>) -> KState {
    KState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..Default::default()
    }
}

fn condition(
    pod: &Pod,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: DateTime<Utc>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let previous = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    let since = previous
        .filter(|p| p.status == status)
        .and_then(|p| p.last_transition_time.clone())
        .unwrap_or(to_time(now));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_transition_time: Some(since),
        reason: reason.map(str::to_string),
        message,
        ..Default::default()
    }
}

/// The pod conditions the kubelet writes itself (upstream's `PodConditionByKubelet`).
const KUBELET_CONDITIONS: [&str; 5] = [
    "PodScheduled",
    "Ready",
    "Initialized",
    "ContainersReady",
    "PodReadyToStartContainers",
];

/// Computes the pod's status. Fields the node does not own (qosClass, nominatedNodeName,
/// PodScheduled) are kept from the current status.
pub fn pod_status(
    pod: &Pod,
    observed: &[Observed],
    plan: &Plan,
    input: &StatusInput,
    now: DateTime<Utc>,
) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let inits: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(c, true, observed, plan, input))
        .collect();
    let containers: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, false, observed, plan, input))
        .collect();
    let ephemeral = ephemeral_statuses(pod, observed, plan, input);
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");

    let init_pending: Vec<&str> = inits
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let init_failed = inits.iter().any(|s| {
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .is_some_and(|t| t.exit_code != 0)
    });
    let initialized = init_pending.is_empty();
    let unready: Vec<&str> = containers
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let terminated = |s: &ContainerStatus| {
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .map(|t| t.exit_code)
    };
    let ever_ran = |s: &ContainerStatus| {
        s.state.as_ref().is_some_and(|st| st.waiting.is_none())
            || s.last_state
                .as_ref()
                .is_some_and(|st| st.terminated.is_some())
    };
    let running = containers
        .iter()
        .any(|s| s.state.as_ref().is_some_and(|st| st.running.is_some()));
    let all_terminated =
        !containers.is_empty() && containers.iter().all(|s| terminated(s).is_some());
    let phase = if pod_is_terminal(pod) {
        old.phase.clone().unwrap_or_default()
    } else if !initialized {
        if init_failed && policy == "Never" {
            "Failed".to_string()
        } else {
            "Pending".to_string()
        }
    } else if containers.iter().any(|s| !ever_ran(s)) {
        "Pending".to_string()
    } else if running {
        "Running".to_string()
    } else if all_terminated && policy != "Always" {
        if containers.iter().all(|s| terminated(s) == Some(0)) {
            "Succeeded".to_string()
        } else if policy == "Never" {
            "Failed".to_string()
        } else {
            "Running".to_string()
        }
    } else {
        "Running".to_string()
    };
    let completed = phase == "Succeeded" || phase == "Failed";
    let list = |names: &[&str]| format!("[{}]", names.join(" "));
    let ready_reason = if completed {
        Some("PodCompleted")
    } else if unready.is_empty() {
        None
    } else {
        Some("ContainersNotReady")
    };
    let ready_message = (!completed && !unready.is_empty())
        .then(|| format!("containers with unready status: {}", list(&unready)));
    let ready = unready.is_empty() && !completed;
    let scheduled = old
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled").cloned())
        .unwrap_or_else(|| condition(pod, "PodScheduled", true, None, None, now));
    let mut conditions = vec![
        condition(
            pod,
            "PodReadyToStartContainers",
            input.sandbox_ready,
            None,
            None,
            now,
        ),
        condition(
            pod,
            "Initialized",
            initialized,
            (!initialized).then_some("ContainersNotInitialized"),
            (!initialized)
                .then(|| format!("containers with incomplete status: {}", list(&init_pending))),
            now,
        ),
        condition(
            pod,
            "Ready",
            ready,
            ready_reason,
            ready_message.clone(),
            now,
        ),
        condition(
            pod,
            "ContainersReady",
            ready,
            ready_reason,
            ready_message,
            now,
        ),
        scheduled,
    ];
    // Conditions the kubelet does not own (readiness gates, DisruptionTarget set by an
    // eviction or the node's shutdown) are kept, as upstream's generateAPIPodStatus.
    conditions.extend(
        old.conditions
            .iter()
            .flatten()
            .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
            .cloned(),
    );
    let pod_ip = input.pod_ip.clone();
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        host_ip: Some(input.host_ip.clone()),
        host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP {
            ip: input.host_ip.clone(),
        }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: old.start_time.clone().or(Some(to_time(now))),
        init_container_statuses: (!inits.is_empty()).then_some(inits),
        container_statuses: Some(containers),
        ephemeral_container_statuses: (!ephemeral.is_empty()).then_some(ephemeral),
        qos_class: old.qos_class.clone(),
        nominated_node_name: old.nominated_node_name.clone(),
        // Why a pod ended (an eviction, the node's shutdown) stays with it, as its phase.
        reason: old.reason.clone().filter(|_| pod_is_terminal(pod)),
        message: old.message.clone().filter(|_| pod_is_terminal(pod)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Conditions another component owns survive the kubelet's status; its own are
    /// recomputed (a stale Ready from the old status is not carried over twice).
    #[test]
    fn conditions_the_kubelet_does_not_own_are_kept() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            "status": {"phase": "Failed", "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"},
                {"type": "example.com/gate", "status": "False"},
            ]},
        }))
        .unwrap();
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let status = pod_status(&pod, &[], &Plan::default(), &StatusInput::default(), now);
        let types: Vec<&str> = status
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
                "DisruptionTarget",
                "example.com/gate"
            ]
        );
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready");
        assert_eq!(ready.unwrap().status, "False", "recomputed, not kept");
    }

    /// A finished pod keeps why it finished (a node restart must not erase the
    /// shutdown's `Terminated`); a running one shows no reason the node did not give.
    #[test]
    fn reason_and_message_stay_with_a_terminal_pod_only() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        for (phase, kept) in [("Failed", true), ("Succeeded", true), ("Running", false)] {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": "p", "uid": "u"},
                "spec": {"containers": [{"name": "app"}]},
                "status": {"phase": phase, "reason": "Terminated", "message": "why"},
            }))
            .unwrap();
            let status = pod_status(&pod, &[], &Plan::default(), &StatusInput::default(), now);
            assert_eq!(status.reason.is_some(), kept, "{phase}");
            assert_eq!(status.message.is_some(), kept, "{phase}");
        }
    }
}
