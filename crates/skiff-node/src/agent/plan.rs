//! The pure part of pod sync: from a Pod and the containers observed for it, the actions
//! that bring them in line (the kubelet's `computePodActions`), with no I/O.

use crate::runtime::{ContainerState, ExitInfo};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;
use std::time::Duration;

/// Restart back-off starts here and doubles per restart...
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// ...up to this, as the kubelet's.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A container of the pod as the runtime reports it (one per attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Runtime id.
    pub id: String,
    /// Container name in the pod spec.
    pub name: String,
    /// `imageID` it was started from (a tag may have moved since), when recorded.
    pub image_id: Option<String>,
    /// Whether it is an init container.
    pub init: bool,
    /// Restart count it was started as (0 for the first run).
    pub attempt: u32,
    /// Runtime state.
    pub state: ContainerState,
    /// When the process started (RFC 3339).
    pub started_at: Option<String>,
}

/// Whether a container's image may be used to start it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageState {
    /// In the store, or to be pulled (as its pull policy says) when the container starts.
    Present,
    /// The last pull failed (or may not happen: `Never`) and the retry waits; the
    /// container shows this waiting reason (`ErrImagePull`, `ImagePullBackOff`,
    /// `ErrImageNeverPull`) meanwhile.
    Failed(Waiting),
}

/// Everything [`plan`] looks at.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// Desired state.
    pub pod: &'a Pod,
    /// Containers of this pod in the runtime, every attempt.
    pub containers: &'a [Observed],
    /// Whether the sandbox (netns, files) exists.
    pub sandbox_ready: bool,
    /// Image availability by image reference as written in the spec.
    pub images: &'a BTreeMap<String, ImageState>,
    /// The clock.
    pub now: DateTime<Utc>,
}

/// One step of pod sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the pod sandbox (network namespace, hosts files).
    CreateSandbox,
    /// Create and start a container.
    StartContainer {
        /// Container name.
        name: String,
        /// Init container or not.
        init: bool,
        /// Restart count it runs as.
        attempt: u32,
    },
    /// SIGTERM, wait up to `grace`, SIGKILL.
    StopContainer {
        /// Runtime id.
        id: String,
        /// Grace period.
        grace: Duration,
    },
    /// Delete a container (exited, stale or half-created).
    RemoveContainer {
        /// Runtime id.
        id: String,
    },
    /// Tear down the sandbox.
    RemoveSandbox,
    /// Everything is stopped: delete the Pod object with grace 0.
    DeletePod,
}

/// Why a container waits, as shown in its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// `ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`, `PodInitializing`...
    pub reason: String,
    /// Human text.
    pub message: Option<String>,
}

/// The outcome of [`plan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// Waiting reasons by container name, for the status.
    pub waiting: BTreeMap<String, Waiting>,
    /// Look again after this long even if nothing changes (back-off expiry).
    pub requeue_after: Option<Duration>,
}

/// Restart delay after `restarts` restarts: the first restart is immediate, then 10 s
/// doubling up to 5 min.
pub fn backoff(restarts: u32) -> Duration {
    if restarts == 0 {
        return Duration::ZERO;
    }
    let factor = 1u64 << (restarts - 1).min(16);
    (BACKOFF_INITIAL * factor as u32).min(BACKOFF_MAX)
}

/// Latest attempt of a container.
pub fn latest<'a>(containers: &'a [Observed], name: &str, init: bool) -> Option<&'a Observed> {
    containers
        .iter()
        .filter(|c| c.name == name && c.init == init)
        .max_by_key(|c| c.attempt)
}

/// Attempt before the latest (its exit is the `lastState`).
pub fn previous<'a>(containers: &'a [Observed], name: &str, init: bool) -> Option<&'a Observed> {
    let last = latest(containers, name, init)?;
    containers
        .iter()
        .filter(|c| c.name == name && c.init == init && c.attempt < last.attempt)
        .max_by_key(|c| c.attempt)
}

/// Grace period for stopping the pod's containers.
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or(pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

fn exit_of(c: &Observed) -> Option<&ExitInfo> {
    match &c.state {
        ContainerState::Exited(e) => Some(e),
        _ => None,
    }
}

/// Whether the pod reached a terminal phase (no container will run again).
pub fn pod_is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// Computes what to do for one pod. Level-triggered: the same input gives the same plan,
/// and once carried out the next plan is empty.
pub fn plan(input: &PlanInput) -> Plan {
    let mut out = Plan::default();
    let pod = input.pod;
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    // Only the latest two attempts of each container matter (state and lastState).
    for c in input.containers {
        let latest_attempt = latest(input.containers, &c.name, c.init).map(|l| l.attempt);
        if latest_attempt.is_some_and(|a| c.attempt + 1 < a) && exit_of(c).is_some() {
            out.actions
                .push(Action::RemoveContainer { id: c.id.clone() });
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        let grace = grace_period(pod);
        let mut running = false;
        for c in input.containers {
            if matches!(c.state, ContainerState::Running | ContainerState::Created) {
                running = true;
                out.actions.push(Action::StopContainer {
                    id: c.id.clone(),
                    grace,
                });
            }
        }
        if !running {
            out.actions.clear();
            for c in input.containers {
                out.actions
                    .push(Action::RemoveContainer { id: c.id.clone() });
            }
            if input.sandbox_ready {
                out.actions.push(Action::RemoveSandbox);
            }
            out.actions.push(Action::DeletePod);
        }
        return out;
    }
    if pod_is_terminal(pod) {
        return out;
    }
    // Half-created or unknown containers are replaced by the same attempt.
    let broken: Vec<&Observed> = input
        .containers
        .iter()
        .filter(|c| matches!(c.state, ContainerState::Unknown | ContainerState::Created))
        .collect();
    for c in &broken {
        out.actions
            .push(Action::RemoveContainer { id: c.id.clone() });
    }
    if !input.sandbox_ready {
        out.actions.push(Action::CreateSandbox);
    }
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let pod_key = format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    );
    // Init containers, one at a time.
    for c in spec.init_containers.iter().flatten() {
        match next_step(
            input,
            &mut out,
            &c.name,
            c.image.as_deref(),
            true,
            policy,
            &pod_key,
        ) {
            Step::Done => continue,
            Step::Blocked => {
                for r in &spec.containers {
                    out.waiting.insert(
                        r.name.clone(),
                        Waiting {
                            reason: "PodInitializing".into(),
                            message: None,
                        },
                    );
                }
                return out;
            }
        }
    }
    for c in &spec.containers {
        next_step(
            input,
            &mut out,
            &c.name,
            c.image.as_deref(),
            false,
            policy,
            &pod_key,
        );
    }
    // Ephemeral containers (`kubectl debug`) start once the pod is initialized and are
    // never restarted, whatever the pod's policy, as the kubelet's.
    for c in spec.ephemeral_containers.iter().flatten() {
        next_step(
            input,
            &mut out,
            &c.name,
            c.image.as_deref(),
            false,
            "Never",
            &pod_key,
        );
    }
    out
}

enum Step {
    /// The container completed (init) or needs nothing.
    Done,
    /// An init container is still running, starting or failing: later ones wait.
    Blocked,
}

#[allow(clippy::too_many_arguments)]
fn next_step(
    input: &PlanInput,
    out: &mut Plan,
    name: &str,
    image: Option<&str>,
    init: bool,
    policy: &str,
    pod_key: &str,
) -> Step {
    let latest = latest(input.containers, name, init);
    let start = |attempt: u32, out: &mut Plan| {
        let image = image.unwrap_or_default();
        match input.images.get(image) {
            Some(ImageState::Failed(waiting)) => {
                out.waiting.insert(name.to_string(), waiting.clone());
                out.requeue_after = min_some(out.requeue_after, Duration::from_secs(1));
            }
            _ => out.actions.push(Action::StartContainer {
                name: name.to_string(),
                init,
                attempt,
            }),
        }
    };
    let Some(last) = latest else {
        start(0, out);
        return if init { Step::Blocked } else { Step::Done };
    };
    match &last.state {
        ContainerState::Running => {
            if init {
                Step::Blocked
            } else {
                Step::Done
            }
        }
        ContainerState::Created | ContainerState::Unknown => {
            start(last.attempt, out);
            if init {
                Step::Blocked
            } else {
                Step::Done
            }
        }
        ContainerState::Exited(exit) => {
            let restart = match policy {
                "Never" => false,
                "OnFailure" => exit.exit_code != 0,
                _ => !init || exit.exit_code != 0,
            };
            if !restart {
                return if init && exit.exit_code != 0 {
                    Step::Blocked
                } else {
                    Step::Done
                };
            }
            let delay = backoff(last.attempt);
            let finished = DateTime::parse_from_rfc3339(&exit.finished_at)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(input.now);
            let due = finished + chrono::Duration::from_std(delay).unwrap_or_default();
            if input.now >= due {
                start(last.attempt + 1, out);
            } else {
                out.waiting.insert(
                    name.to_string(),
                    Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: Some(format!(
                            "back-off {} restarting failed container={name} pod={pod_key}",
                            go_duration(delay)
                        )),
                    },
                );
                let left = (due - input.now).to_std().unwrap_or_default();
                out.requeue_after = min_some(out.requeue_after, left);
            }
            if init {
                Step::Blocked
            } else {
                Step::Done
            }
        }
    }
}

fn min_some(a: Option<Duration>, b: Duration) -> Option<Duration> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// Go's `time.Duration` text of a backoff in whole seconds (`10s`, `1m20s`, `5m0s`).
fn go_duration(d: Duration) -> String {
    use skiff_apimachinery::duration;
    duration::go_string(duration::truncated(d, Duration::from_secs(1)))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
