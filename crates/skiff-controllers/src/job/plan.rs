//! Pure Job planning (upstream's `syncJob`): from the Job, its pods and the clock, the
//! writes that move it on.
//!
//! Pods are tracked by the `batch.kubernetes.io/job-tracking` finalizer: a finished pod is
//! first recorded in `status.uncountedTerminatedPods`, then its finalizer is removed, then the
//! record is folded into `succeeded`/`failed`. The plan lists those three steps in that
//! order and the runner stops at the first failed write, so a restart at any point neither
//! loses a pod (its finalizer keeps it until it is recorded) nor counts it twice (a pod
//! without the finalizer is never new, and a recorded uid is never recorded again).

use super::indexes::{self, COMPLETION_INDEX, INDEX_FAILURE_COUNT};
use super::policy::{self, Verdict};
use super::ttl::{self, Ttl};
use crate::meta::{created, new_controller_ref, pod_is_active, pod_ready_since};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

/// The finalizer that keeps a pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Most pods created in one pass (upstream's `MaxPodCreateDeletePerSync`).
pub const MAX_CREATES_PER_PASS: usize = 500;
/// Most finished pods recorded per pass (upstream's `MaxUncountedPods`), which bounds the
/// size of the status write.
pub const MAX_UNCOUNTED_PODS: usize = 500;

/// What the plan looks at.
pub struct Input<'a> {
    /// The Job, as cached.
    pub job: &'a Job,
    /// The pods the Job controls.
    pub pods: &'a [&'a Pod],
    /// Uids of pods whose finalizer this controller removed but the cache still shows: they
    /// were counted already and must not be recorded again.
    pub expected_removals: &'a HashSet<String>,
    /// The clock, injected so deadlines and backoff are testable.
    pub now: Timestamp,
}

/// A pod to create from the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPod {
    /// The completion index (Indexed Jobs).
    pub index: Option<i32>,
    /// Failures of this index before it (backoffLimitPerIndex).
    pub index_failures: Option<i32>,
}

/// One change to make through the API, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Replace `.status` (guarded by the Job's resourceVersion).
    Status(Box<JobStatus>),
    /// Remove the tracking finalizer from these pods (by name).
    RemoveFinalizer { pods: Vec<String> },
    /// Delete these pods.
    Delete { pods: Vec<String> },
    /// Create these pods.
    Create { pods: Vec<NewPod> },
    /// Record an Event on the Job.
    Event {
        type_: &'static str,
        reason: &'static str,
        message: String,
    },
    /// Delete the Job itself: its TTL after finishing has passed.
    DeleteJob,
}

/// The plan for one pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// When to look again although nothing changes (deadline, backoff, TTL).
    pub requeue_after: Option<Duration>,
}

impl Plan {
    fn requeue(&mut self, after: Duration) {
        let after = after.max(Duration::from_secs(1));
        self.requeue_after = Some(self.requeue_after.map_or(after, |d| d.min(after)));
    }
}

/// Why the Job is finishing: the terminal condition it gets once its pods are gone.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Finish {
    failed: bool,
    reason: String,
    message: String,
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job has its terminal condition (Complete or Failed).
pub fn is_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .is_some_and(|s| condition(s, "Complete").is_some() || condition(s, "Failed").is_some())
}

/// Sets a condition as upstream's `ensureJobConditionStatus`: a new status moves
/// lastTransitionTime; the same status with a new reason or message only rewrites those.
/// Returns whether anything changed.
fn set_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status == status {
            if c.reason.as_deref() == Some(reason) && c.message.as_deref() == Some(message) {
                return false;
            }
        } else {
            c.status = status.to_string();
            c.last_transition_time = Some(Time(now));
        }
        c.reason = Some(reason.to_string());
        c.message = Some(message.to_string());
        c.last_probe_time = Some(Time(now));
        return true;
    }
    if status == "False" {
        // A False condition is only written to flip an existing True one (Suspended).
        return false;
    }
    conditions.push(JobCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    true
}

/// Container restarts of running pods reach the limit (`restartPolicy: OnFailure`, where
/// failures restart containers instead of failing pods: upstream's
/// `pastBackoffLimitOnFailure`).
fn past_backoff_limit_on_failure(job: &Job, pods: &[&Pod], limit: i32) -> bool {
    let on_failure = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    if !on_failure {
        return false;
    }
    let restarts: i64 = pods
        .iter()
        .filter(|p| matches!(phase(p), Some("Running" | "Pending")))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|cs| i64::from(cs.restart_count))
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= i64::from(limit)
    }
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Computes the changes that move `input.job` on.
pub fn plan(input: &Input) -> Plan {
    let job = input.job;
    let now = input.now;
    let mut out = Plan::default();
    let Some(spec) = job.spec.as_ref() else {
        return out;
    };
    let expected = |p: &Pod| input.expected_removals.contains(&uid(p));
    let leftover: Vec<String> = input
        .pods
        .iter()
        .filter(|p| has_finalizer(p) && !expected(p))
        .map(|p| name(p))
        .collect();
    if is_finished(job) || job.metadata.deletion_timestamp.is_some() {
        // Everything was counted before the terminal condition; pods still holding the
        // finalizer (created in a race, or of a Job being deleted) are let go.
        if !leftover.is_empty() {
            out.actions.push(Action::RemoveFinalizer { pods: leftover });
        }
        match ttl::decide(job, now) {
            Ttl::Keep => {}
            Ttl::Expired => out.actions.push(Action::DeleteJob),
            Ttl::After(d) => out.requeue(d),
        }
        return out;
    }

    let status = job.status.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions.unwrap_or(0).max(0);
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let per_index_limit = spec.backoff_limit_per_index.filter(|_| indexed);
    let backoff_limit = spec.backoff_limit.unwrap_or(6).max(0);
    let suspended = spec.suspend == Some(true);
    let pfp = spec.pod_failure_policy.as_ref();

    let recorded = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut unc_s: Vec<String> = recorded.succeeded.clone().unwrap_or_default();
    let mut unc_f: Vec<String> = recorded.failed.clone().unwrap_or_default();
    let recorded_uids: HashSet<String> = unc_s.iter().chain(unc_f.iter()).cloned().collect();
    let mut succeeded_ix = if indexed {
        indexes::parse(status.completed_indexes.as_deref(), completions)
    } else {
        BTreeSet::new()
    };
    let mut failed_ix = if per_index_limit.is_some() {
        indexes::parse(status.failed_indexes.as_deref(), completions)
    } else {
        BTreeSet::new()
    };
    let status_ix = (succeeded_ix.clone(), failed_ix.clone());

    // Finished pods still holding the finalizer: record them, then let them go.
    let mut release: Vec<String> = Vec::new();
    let mut fail_job: Option<String> = None;
    let mut new_records = 0usize;
    for &pod in input.pods {
        if !has_finalizer(pod) || expected(pod) {
            continue;
        }
        let id = uid(pod);
        if recorded_uids.contains(&id) {
            release.push(name(pod));
            continue;
        }
        if new_records >= MAX_UNCOUNTED_PODS {
            out.requeue(Duration::from_secs(1));
            break;
        }
        if phase(pod) == Some("Succeeded") {
            if !indexed {
                unc_s.push(id);
            } else if let Some(ix) = indexes::of_pod(pod, completions) {
                // A second success of one index is not counted (upstream).
                if succeeded_ix.insert(ix) {
                    unc_s.push(id);
                }
            }
            release.push(name(pod));
            new_records += 1;
        } else if policy::is_pod_failed(pod, job) {
            let verdict = match pfp {
                Some(p) if phase(pod) == Some("Failed") => policy::match_policy(p, pod),
                _ => Verdict::Count,
            };
            if let Verdict::FailJob(msg) = &verdict {
                fail_job.get_or_insert_with(|| msg.clone());
            }
            let index = indexes::of_pod(pod, completions);
            if !indexed || index.is_some() {
                if verdict.counts() {
                    unc_f.push(id);
                }
                if let (Some(limit), Some(ix)) = (per_index_limit, index) {
                    let failures = indexes::counter(pod, INDEX_FAILURE_COUNT);
                    if verdict == Verdict::FailIndex || (verdict.counts() && failures >= limit) {
                        failed_ix.insert(ix);
                    }
                }
            }
            release.push(name(pod));
            new_records += 1;
        }
    }

    let active: Vec<&Pod> = input
        .pods
        .iter()
        .copied()
        .filter(|p| pod_is_active(p))
        .collect();
    let mut terminating = input
        .pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .filter(|p| !matches!(phase(p), Some("Succeeded" | "Failed")))
        .count();
    let succeeded = status
        .succeeded
        .unwrap_or(0)
        .saturating_add(len_i32(unc_s.len()));
    let failed = status
        .failed
        .unwrap_or(0)
        .saturating_add(len_i32(unc_f.len()));

    let mut conditions = status.conditions.clone().unwrap_or_default();
    let mut start_time = status.start_time.clone();
    let mut completion_time = status.completion_time.clone();
    let mut events: Vec<Action> = Vec::new();
    let event = |type_, reason, message: &str| Action::Event {
        type_,
        reason,
        message: message.to_string(),
    };

    // Why the Job is finishing, if it is: a recorded interim condition wins (so the reason
    // survives a restart), then upstream's order of checks.
    let interim = |t: &str| {
        condition(&status, t).map(|c| Finish {
            failed: t == "FailureTarget",
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        })
    };
    let fail = |reason: &str, message: &str| {
        Some(Finish {
            failed: true,
            reason: reason.into(),
            message: message.into(),
        })
    };
    let deadline = spec.active_deadline_seconds.and_then(|ads| {
        let start = start_time.as_ref()?.0.as_second();
        start.checked_add(ads)
    });
    let mut finish = interim("FailureTarget").or_else(|| interim("SuccessCriteriaMet"));
    if finish.is_none() {
        let all_indexes_done =
            len_i32(succeeded_ix.len().saturating_add(failed_ix.len())) >= completions;
        finish = if let Some(msg) = fail_job {
            fail("PodFailurePolicy", &msg)
        } else if per_index_limit.is_some()
            && spec
                .max_failed_indexes
                .is_some_and(|max| len_i32(failed_ix.len()) > max)
        {
            fail(
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes",
            )
        } else if per_index_limit.is_none()
            && (failed > backoff_limit
                || past_backoff_limit_on_failure(job, input.pods, backoff_limit))
        {
            fail(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        } else if !suspended && deadline.is_some_and(|d| now.as_second() >= d) {
            fail(
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )
        } else if indexed && all_indexes_done && !failed_ix.is_empty() {
            fail("FailedIndexes", "Job has failed indexes")
        } else {
            let complete = if indexed {
                all_indexes_done
            } else if spec.completions.is_none() {
                succeeded > 0 && active.is_empty()
            } else {
                succeeded >= completions
            };
            complete.then(|| Finish {
                failed: false,
                reason: "CompletionsReached".into(),
                message: "Reached expected number of succeeded pods".into(),
            })
        };
    }

    let mut deletes: Vec<String> = Vec::new();
    let mut creates: Vec<NewPod> = Vec::new();
    let mut active_after = active.len();
    if let Some(f) = &finish {
        let interim_type = if f.failed {
            "FailureTarget"
        } else {
            "SuccessCriteriaMet"
        };
        set_condition(
            &mut conditions,
            interim_type,
            "True",
            &f.reason,
            &f.message,
            now,
        );
        for &pod in &active {
            deletes.push(name(pod));
            // Pods stopped because the Job failed count as failed (upstream); pods stopped
            // after success criteria were met do not.
            if has_finalizer(pod) && !expected(pod) && !recorded_uids.contains(&uid(pod)) {
                if f.failed {
                    unc_f.push(uid(pod));
                }
                release.push(name(pod));
            }
        }
        if active.is_empty() && terminating == 0 {
            let terminal = if f.failed { "Failed" } else { "Complete" };
            set_condition(
                &mut conditions,
                terminal,
                "True",
                &f.reason,
                &f.message,
                now,
            );
            if f.failed {
                events.push(event("Warning", reason_static(&f.reason), &f.message));
            } else {
                completion_time = Some(Time(now));
                events.push(event("Normal", "Completed", "Job completed"));
            }
        }
        terminating += active.len();
        active_after = 0;
    } else if suspended {
        for &pod in &active {
            deletes.push(name(pod));
            if has_finalizer(pod) && !expected(pod) {
                release.push(name(pod));
            }
        }
        terminating += active.len();
        active_after = 0;
        if set_condition(
            &mut conditions,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        ) {
            events.push(event("Normal", "Suspended", "Job suspended"));
        }
    } else {
        if set_condition(
            &mut conditions,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now,
        ) {
            // The deadline counts from the resume, as upstream.
            start_time = Some(Time(now));
            events.push(event("Normal", "Resumed", "Job resumed"));
        }
        if start_time.is_none() {
            start_time = Some(Time(now));
        }
        if let Some(ads) = spec.active_deadline_seconds {
            let start = start_time
                .as_ref()
                .map_or(now.as_second(), |t| t.0.as_second());
            let left = start.saturating_add(ads).saturating_sub(now.as_second());
            out.requeue(Duration::from_secs(u64::try_from(left).unwrap_or(0)));
        }
        let manage = Manage {
            input,
            active: &active,
            parallelism,
            completions,
            succeeded,
            succeeded_ix: &succeeded_ix,
            failed_ix: &failed_ix,
            per_index_limit,
        };
        let (del, new, wait) = if indexed {
            manage.indexed()
        } else {
            manage.non_indexed()
        };
        if let Some(wait) = wait {
            out.requeue(wait);
        }
        terminating += del.len();
        active_after = active_after.saturating_sub(del.len()) + new.len();
        deletes = del;
        creates = new;
    }

    let ready = active
        .iter()
        .filter(|p| !deletes.contains(&name(p)))
        .filter(|p| pod_ready_since(p).is_some())
        .count();
    let per_index = per_index_limit.is_some();
    let completed_indexes = indexes::format(&succeeded_ix);
    let failed_indexes = per_index.then(|| indexes::format(&failed_ix).unwrap_or_default());

    // Step 1: record newly finished pods before their finalizers go.
    let index_changed = (succeeded_ix.clone(), failed_ix.clone()) != status_ix;
    let newly_recorded = unc_s.len() + unc_f.len() > recorded_uids.len();
    if newly_recorded || index_changed {
        let mut s1 = status.clone();
        s1.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: (!unc_s.is_empty()).then(|| unc_s.clone()),
            failed: (!unc_f.is_empty()).then(|| unc_f.clone()),
        });
        s1.completed_indexes = completed_indexes.clone();
        s1.failed_indexes = failed_indexes.clone();
        if newly_recorded {
            out.actions.push(Action::Status(Box::new(s1)));
        }
    }
    // Step 2: let them go.
    release.sort();
    release.dedup();
    if !release.is_empty() {
        out.actions.push(Action::RemoveFinalizer { pods: release });
    }
    if !deletes.is_empty() {
        out.actions.push(Action::Delete { pods: deletes });
    }
    if !creates.is_empty() {
        out.actions.push(Action::Create { pods: creates });
    }
    // Step 3: fold the records into the counts, with everything else observed.
    let s2 = JobStatus {
        active: Some(len_i32(active_after)).filter(|n| *n > 0),
        ready: Some(len_i32(ready)),
        terminating: Some(len_i32(terminating)),
        succeeded: Some(succeeded).filter(|n| *n > 0),
        // Recounted: pods stopped because the Job failed were recorded after the checks.
        failed: Some(
            status
                .failed
                .unwrap_or(0)
                .saturating_add(len_i32(unc_f.len())),
        )
        .filter(|n| *n > 0),
        completed_indexes,
        failed_indexes,
        uncounted_terminated_pods: Some(UncountedTerminatedPods::default()),
        start_time,
        completion_time,
        conditions: (!conditions.is_empty()).then_some(conditions),
    };
    if s2 != normalized(&status) {
        out.actions.push(Action::Status(Box::new(s2)));
    }
    out.actions.extend(events);
    out
}

/// `status` with the fields the plan always writes given their written form, so a settled
/// Job compares equal and is not rewritten.
fn normalized(status: &JobStatus) -> JobStatus {
    let mut s = status.clone();
    let unc = s.uncounted_terminated_pods.take().unwrap_or_default();
    s.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: unc.succeeded.filter(|v| !v.is_empty()),
        failed: unc.failed.filter(|v| !v.is_empty()),
    });
    s.active = s.active.filter(|n| *n > 0);
    s.succeeded = s.succeeded.filter(|n| *n > 0);
    s.failed = s.failed.filter(|n| *n > 0);
    s.ready = Some(s.ready.unwrap_or(0));
    s.terminating = Some(s.terminating.unwrap_or(0));
    s
}

/// Upstream's failure reasons as `&'static str` for Events (an unknown reason, read back
/// from a recorded condition, is reported generically).
fn reason_static(reason: &str) -> &'static str {
    match reason {
        "BackoffLimitExceeded" => "BackoffLimitExceeded",
        "DeadlineExceeded" => "DeadlineExceeded",
        "PodFailurePolicy" => "PodFailurePolicy",
        "MaxFailedIndexesExceeded" => "MaxFailedIndexesExceeded",
        "FailedIndexes" => "FailedIndexes",
        _ => "JobFailed",
    }
}

/// Upstream's `manageJob`: how many pods to run, which to stop, which to start.
struct Manage<'a> {
    input: &'a Input<'a>,
    active: &'a [&'a Pod],
    parallelism: i32,
    completions: i32,
    succeeded: i32,
    succeeded_ix: &'a BTreeSet<i32>,
    failed_ix: &'a BTreeSet<i32>,
    per_index_limit: Option<i32>,
}

type Managed = (Vec<String>, Vec<NewPod>, Option<Duration>);

impl Manage<'_> {
    fn non_indexed(&self) -> Managed {
        let spec_completions = self.input.job.spec.as_ref().and_then(|s| s.completions);
        let active = len_i32(self.active.len());
        let want = match spec_completions {
            // Work-queue Jobs: once one pod succeeded, no new pods start.
            None if self.succeeded > 0 => active,
            None => self.parallelism,
            Some(c) => c.saturating_sub(self.succeeded).clamp(0, self.parallelism),
        };
        if active > want {
            let mut ranked = self.active.to_vec();
            ranked.sort_by_key(|p| deletion_rank(p));
            let n = usize::try_from(active - want).unwrap_or(0);
            let deletes = ranked.iter().take(n).map(|p| name(p)).collect();
            return (deletes, Vec::new(), None);
        }
        let missing = usize::try_from(want - active).unwrap_or(0);
        if missing == 0 {
            return (Vec::new(), Vec::new(), None);
        }
        let wait = self.global_backoff();
        if !wait.is_zero() {
            return (Vec::new(), Vec::new(), Some(wait));
        }
        let n = missing.min(MAX_CREATES_PER_PASS);
        let pods = (0..n)
            .map(|_| NewPod {
                index: None,
                index_failures: None,
            })
            .collect();
        (Vec::new(), pods, None)
    }

    fn indexed(&self) -> Managed {
        let mut deletes = Vec::new();
        let mut running: BTreeMap<i32, &Pod> = BTreeMap::new();
        let mut ranked = self.active.to_vec();
        ranked.sort_by_key(|p| std::cmp::Reverse(deletion_rank(p)));
        for pod in ranked {
            match indexes::of_pod(pod, self.completions) {
                Some(ix)
                    if !self.succeeded_ix.contains(&ix)
                        && !self.failed_ix.contains(&ix)
                        && !running.contains_key(&ix) =>
                {
                    running.insert(ix, pod);
                }
                // Out of range, already done, or a duplicate of a kept pod.
                _ => deletes.push(name(pod)),
            }
        }
        let running_ix: BTreeSet<i32> = running.keys().copied().collect();
        let remaining = self
            .completions
            .saturating_sub(len_i32(self.succeeded_ix.len()))
            .saturating_sub(len_i32(self.failed_ix.len()))
            .max(0);
        let want = remaining.min(self.parallelism);
        let running_n = len_i32(running.len());
        if running_n > want {
            // Stop the highest indexes beyond parallelism (it was lowered).
            let n = usize::try_from(running_n - want).unwrap_or(0);
            deletes.extend(running.values().rev().take(n).map(|p| name(p)));
            deletes.sort();
            return (deletes, Vec::new(), None);
        }
        let missing = usize::try_from(want - running_n).unwrap_or(0);
        deletes.sort();
        if missing == 0 {
            return (deletes, Vec::new(), None);
        }
        let global_wait = if self.per_index_limit.is_none() {
            self.global_backoff()
        } else {
            Duration::ZERO
        };
        if !global_wait.is_zero() {
            return (deletes, Vec::new(), Some(global_wait));
        }
        let candidates = indexes::first_pending(
            &[self.succeeded_ix, self.failed_ix, &running_ix],
            usize::try_from(self.completions).unwrap_or(0),
            self.completions,
        );
        let mut pods = Vec::new();
        let mut wait: Option<Duration> = None;
        for ix in candidates {
            if pods.len() >= missing.min(MAX_CREATES_PER_PASS) {
                break;
            }
            let (failures, remaining) = self.index_backoff(ix);
            if !remaining.is_zero() {
                wait = Some(wait.map_or(remaining, |w| w.min(remaining)));
                continue;
            }
            pods.push(NewPod {
                index: Some(ix),
                index_failures: self.per_index_limit.map(|_| failures),
            });
        }
        deletes.sort();
        (deletes, pods, wait)
    }

    /// Failed pods since the last success and the latest failure (upstream's backoff
    /// record, rebuilt from the pods so it survives a restart).
    fn global_backoff(&self) -> Duration {
        let pods = self.input.pods;
        let last_success = pods
            .iter()
            .filter(|p| phase(p) == Some("Succeeded"))
            .map(|p| policy::finished_at(p))
            .max();
        let failures: Vec<Timestamp> = pods
            .iter()
            .filter(|p| policy::is_pod_failed(p, self.input.job))
            .map(|p| policy::finished_at(p))
            .filter(|t| last_success.is_none_or(|s| *t > s))
            .collect();
        let n = u32::try_from(failures.len()).unwrap_or(u32::MAX);
        policy::remaining(n, failures.iter().max().copied(), self.input.now)
    }

    /// Failures of index `ix` so far and how long until it may be retried.
    fn index_backoff(&self, ix: i32) -> (i32, Duration) {
        let last_failed = self
            .input
            .pods
            .iter()
            .filter(|p| indexes::of_pod(p, self.completions) == Some(ix))
            .filter(|p| policy::is_pod_failed(p, self.input.job))
            .max_by_key(|p| policy::finished_at(p));
        let Some(last) = last_failed else {
            return (0, Duration::ZERO);
        };
        let failures = indexes::counter(last, INDEX_FAILURE_COUNT).saturating_add(1);
        let wait = policy::remaining(
            u32::try_from(failures).unwrap_or(u32::MAX),
            Some(policy::finished_at(last)),
            self.input.now,
        );
        (failures, wait)
    }
}

/// Ranks pods for deletion, most deletable first (upstream's `ActivePods` order):
/// unscheduled, pending, not ready, then newest.
fn deletion_rank(pod: &Pod) -> (u8, u8, u8, std::cmp::Reverse<Timestamp>) {
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    (
        u8::from(node.is_some_and(|n| !n.is_empty())),
        u8::from(!matches!(phase(pod), Some("Pending") | None)),
        u8::from(pod_ready_since(pod).is_some()),
        std::cmp::Reverse(created(&pod.metadata)),
    )
}

/// The pod a Job creates (upstream's `getPodTemplate` plus `addCompletionIndexEnvVariables`
/// and the tracking finalizer); `None` when the Job lacks a name or uid.
pub fn pod_for(job: &Job, new: &NewPod) -> Option<Pod> {
    let job_name = job.metadata.name.as_deref()?;
    let template: PodTemplateSpec = job.spec.as_ref()?.template.clone();
    let tmeta = template.metadata.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut finalizers = tmeta.finalizers.unwrap_or_default();
    finalizers.push(TRACKING_FINALIZER.to_string());
    let mut spec = template.spec.unwrap_or_default();
    let generate_name = match new.index {
        Some(ix) => {
            annotations.insert(COMPLETION_INDEX.into(), ix.to_string());
            labels.insert(COMPLETION_INDEX.into(), ix.to_string());
            if let Some(failures) = new.index_failures {
                annotations.insert(INDEX_FAILURE_COUNT.into(), failures.to_string());
            }
            if spec.hostname.is_none() {
                spec.hostname = Some(format!("{job_name}-{ix}"));
            }
            let env = EnvVar {
                name: "JOB_COMPLETION_INDEX".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                    }),
                    ..EnvVarSource::default()
                }),
            };
            let containers = spec
                .init_containers
                .iter_mut()
                .flatten()
                .chain(spec.containers.iter_mut());
            for c in containers {
                let vars = c.env.get_or_insert_with(Vec::new);
                if !vars.iter().any(|v| v.name == env.name) {
                    vars.push(env.clone());
                }
            }
            format!("{job_name}-{ix}-")
        }
        None => format!("{job_name}-"),
    };
    Some(Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![new_controller_ref("batch/v1", "Job", &job.metadata)?]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}
