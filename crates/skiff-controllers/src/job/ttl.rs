//! `ttlSecondsAfterFinished`: when a finished Job is deleted (upstream's
//! `pkg/controller/ttlafterfinished`, folded into the Job controller's pass because both
//! look at the same Job and only the finish time matters).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

/// What the TTL says about a Job now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// No TTL, or the Job has not finished.
    Keep,
    /// Delete the Job (in background propagation, as upstream).
    Expired,
    /// Look again after this long.
    After(Duration),
}

/// When the Job finished: its terminal condition's transition time (upstream's
/// `jobFinishTime`), falling back to `completionTime`.
pub fn finish_time(job: &Job) -> Option<Timestamp> {
    let status = job.status.as_ref()?;
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .or(status.completion_time.as_ref())
        .map(|t| t.0)
}

/// The TTL decision for `job` at `now`; a TTL whose expiry overflows the clock never expires.
pub fn decide(job: &Job, now: Timestamp) -> Ttl {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Ttl::Keep;
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ttl::Keep;
    }
    let Some(finished) = finish_time(job) else {
        return Ttl::Keep;
    };
    let Some(expiry) = finished.as_second().checked_add(i64::from(ttl.max(0))) else {
        return Ttl::Keep;
    };
    match u64::try_from(expiry.saturating_sub(now.as_second())) {
        Ok(0) | Err(_) => Ttl::Expired,
        Ok(left) => Ttl::After(Duration::from_secs(left)),
    }
}
