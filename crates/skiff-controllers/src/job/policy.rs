//! How a failed pod counts: the Job's `podFailurePolicy` (upstream's
//! `pod_failure_policy.go`) and the delay before a failed pod is replaced
//! (`backoff_utils.go`).

use k8s_openapi::api::batch::v1::{Job, PodFailurePolicy};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

/// First delay before a failed pod is replaced (upstream's `DefaultJobPodFailureBackOff`).
pub const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// Longest such delay (upstream's `MaxJobPodFailureBackOff`).
pub const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(360);

/// What a matching rule says about a failed pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Fail the whole Job with this message (`FailJob`).
    FailJob(String),
    /// Do not count the failure (`Ignore`).
    Ignore,
    /// Fail the pod's index at once (`FailIndex`).
    FailIndex,
    /// Count the failure against the limits (`Count`, or no rule matched).
    Count,
}

impl Verdict {
    /// Whether the failure counts towards `status.failed` (upstream's `countFailed`).
    pub fn counts(&self) -> bool {
        !matches!(self, Verdict::Ignore)
    }
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Whether a pod counts as failed (upstream's `isPodFailed`): phase Failed, or, unless the
/// Job replaces only failed pods, terminating without having succeeded, so an orphan that
/// never reaches Failed still counts.
pub fn is_pod_failed(pod: &Pod, job: &Job) -> bool {
    if phase(pod) == Some("Failed") {
        return true;
    }
    if only_replace_failed_pods(job) {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && phase(pod) != Some("Succeeded")
}

/// `podReplacementPolicy: Failed`, which a pod failure policy implies.
pub fn only_replace_failed_pods(job: &Job) -> bool {
    job.spec.as_ref().is_some_and(|s| {
        s.pod_replacement_policy.as_deref() == Some("Failed") || s.pod_failure_policy.is_some()
    })
}

/// Applies `policy` to a failed pod (upstream's `matchPodFailurePolicy`): the first rule
/// whose exit codes or pod conditions match decides; no match counts the failure.
pub fn match_policy(policy: &PodFailurePolicy, pod: &Pod) -> Verdict {
    let Some(status) = pod.status.as_ref() else {
        return Verdict::Count;
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    for (index, rule) in policy.rules.iter().enumerate() {
        let hit = if let Some(req) = &rule.on_exit_codes {
            let statuses = status
                .container_statuses
                .iter()
                .flatten()
                .chain(status.init_container_statuses.iter().flatten());
            statuses
                .filter(|cs| {
                    req.container_name
                        .as_deref()
                        .is_none_or(|want| want == cs.name)
                })
                .find_map(|cs| {
                    let code = exit_code(cs).filter(|c| *c != 0)?;
                    let listed = req.values.contains(&code);
                    let matched = match req.operator.as_str() {
                        "In" => listed,
                        "NotIn" => !listed,
                        _ => false,
                    };
                    matched.then(|| {
                        format!(
                            "Container {} for pod {ns}/{name} failed with exit code {code} \
                             matching {} rule at index {index}",
                            cs.name, rule.action
                        )
                    })
                })
        } else if let Some(patterns) = &rule.on_pod_conditions {
            let conditions = status.conditions.as_deref().unwrap_or_default();
            patterns.iter().find_map(|p| {
                conditions
                    .iter()
                    .find(|c| c.type_ == p.type_ && c.status == p.status)
                    .map(|c| {
                        format!(
                            "Pod {ns}/{name} has condition {} matching {} rule at index {index}",
                            c.type_, rule.action
                        )
                    })
            })
        } else {
            None
        };
        let Some(message) = hit else {
            continue;
        };
        return match rule.action.as_str() {
            "FailJob" => Verdict::FailJob(message),
            "Ignore" => Verdict::Ignore,
            "FailIndex" => Verdict::FailIndex,
            "Count" => Verdict::Count,
            // An action this version does not know is skipped, as upstream's switch does.
            _ => continue,
        };
    }
    Verdict::Count
}

fn exit_code(cs: &ContainerStatus) -> Option<i32> {
    cs.state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code)
}

/// When a pod finished (upstream's `getFinishedTime`): its last container termination, else
/// its deletion time, else its Ready condition's last change, else its creation.
pub fn finished_at(pod: &Pod) -> Timestamp {
    let status = pod.status.as_ref();
    let terminated = status
        .into_iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|cs| cs.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    terminated
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| {
            status?
                .conditions
                .as_deref()?
                .iter()
                .find(|c| c.type_ == "Ready")?
                .last_transition_time
                .as_ref()
                .map(|t| t.0)
        })
        .unwrap_or_else(|| crate::meta::created(&pod.metadata))
}

/// The delay after `failures` successive failures: 10 s doubling, at most 6 minutes.
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    POD_FAILURE_BACKOFF
        .checked_mul(factor)
        .unwrap_or(MAX_POD_FAILURE_BACKOFF)
        .min(MAX_POD_FAILURE_BACKOFF)
}

/// How long until a replacement may be created, given the successive failures since the
/// last success and when the latest of them finished (upstream's `getRemainingTime`).
pub fn remaining(failures: u32, last_failure: Option<Timestamp>, now: Timestamp) -> Duration {
    let Some(last) = last_failure else {
        return Duration::ZERO;
    };
    let wait = backoff(failures);
    let elapsed = now.duration_since(last);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    wait.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_six_minutes() {
        let secs: Vec<u64> = (0..9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, vec![0, 10, 20, 40, 80, 160, 320, 360, 360]);
        assert_eq!(backoff(200), MAX_POD_FAILURE_BACKOFF);
    }

    #[test]
    fn remaining_counts_from_the_last_failure() {
        let t = |s| Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(remaining(2, Some(t(100)), t(105)), Duration::from_secs(15));
        assert_eq!(remaining(2, Some(t(100)), t(200)), Duration::ZERO);
        assert_eq!(remaining(0, None, t(200)), Duration::ZERO);
    }
}
