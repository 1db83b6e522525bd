//! Pure CronJob planning (upstream's `syncCronJob` in `cronjob_controllerv2.go` and
//! `utils.go`): from the CronJob, the Jobs it owns and the clock, the writes to make.

use crate::meta::{created, new_controller_ref};
use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use skiff_apimachinery::cron::{self, Schedule};
use std::time::Duration;

/// The annotation a scheduled Job carries with its scheduled time (RFC 3339, in the
/// CronJob's time zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream's limit on missed start times before it warns (`TooManyMissedTimes`).
pub const MAX_MISSED: u32 = 100;
/// Margin after the next scheduled time before looking again (upstream's
/// `nextScheduleDelta`), so the pass lands after the minute has turned.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// One change to make through the API, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create the Job for this scheduled time.
    CreateJob { name: String, scheduled: Timestamp },
    /// Delete this Job (Replace policy, or history beyond its limit), in background.
    DeleteJob { name: String },
    /// Write `.status`; the runner adds the Jobs it created in this pass to `active`.
    Status(CronJobStatus),
    /// Record an Event on the CronJob.
    Event {
        type_: &'static str,
        reason: &'static str,
        message: String,
    },
}

/// The plan for one pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// When the next scheduled time falls.
    pub requeue_after: Option<Duration>,
}

fn to_chrono(t: Timestamp) -> DateTime<Utc> {
    Utc.timestamp_opt(t.as_second(), 0)
        .single()
        .unwrap_or_default()
}

fn to_jiff(t: DateTime<Utc>) -> Timestamp {
    Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn finished(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some("Complete"),
            "Failed" => Some("Failed"),
            _ => None,
        })
}

/// The Job name for a scheduled time: minutes since the epoch, as upstream's `getJobName`.
pub fn job_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second().div_euclid(60))
}

/// The most recent scheduled time not after `now` that has not run, and how many were
/// missed (upstream's `mostRecentScheduleTime`, counting at most `MAX_MISSED + 1`).
fn most_recent(
    schedule: &Schedule,
    zone: Option<chrono_tz::Tz>,
    earliest: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, u32) {
    let next = |t| schedule.next_after(t, zone);
    let Some(mut t) = next(earliest).filter(|t| *t <= now) else {
        return (None, 0);
    };
    let mut missed = 1u32;
    while let Some(n) = next(t).filter(|n| *n <= now) {
        missed = missed.saturating_add(1);
        t = n;
        if missed > MAX_MISSED {
            // Jump close to `now` by the current interval, then walk the rest; the count
            // only needs to say "more than 100".
            if let Some(after) = next(t) {
                let step = (after - t).num_seconds().max(1);
                let gap = (now - t).num_seconds() / step;
                if gap > 1 {
                    let jump = chrono::Duration::seconds(step.saturating_mul(gap - 1));
                    t = t.checked_add_signed(jump).unwrap_or(t);
                }
            }
            while let Some(n) = next(t).filter(|n| *n <= now) {
                t = n;
            }
            break;
        }
    }
    (Some(t), missed)
}

/// Computes the changes for `cj` given the Jobs it controls, at `now`.
pub fn plan(cj: &CronJob, jobs: &[&Job], now: Timestamp) -> Plan {
    let mut out = Plan::default();
    let Some(spec) = cj.spec.as_ref() else {
        return out;
    };
    let name = cj.metadata.name.clone().unwrap_or_default();
    let status = cj.status.clone().unwrap_or_default();
    let event = |type_, reason, message: String| Action::Event {
        type_,
        reason,
        message,
    };

    // Active Jobs and the last success, re-read from the Jobs themselves.
    let mut active: Vec<&Job> = jobs
        .iter()
        .copied()
        .filter(|j| finished(j).is_none())
        .collect();
    active.sort_by_key(|j| j.metadata.name.clone());
    let mut last_successful = status.last_successful_time.clone();
    for job in jobs {
        if finished(job) != Some("Complete") {
            continue;
        }
        let done = job.status.as_ref().and_then(|s| s.completion_time.clone());
        if let Some(done) = done {
            if last_successful.as_ref().is_none_or(|l| l.0 < done.0) {
                last_successful = Some(done);
            }
        }
    }
    let was_active: Vec<String> = status
        .active
        .iter()
        .flatten()
        .filter_map(|r| r.name.clone())
        .collect();
    for job in jobs {
        let job_name = job.metadata.name.clone().unwrap_or_default();
        if let Some(state) = finished(job) {
            if was_active.contains(&job_name) {
                out.actions.push(event(
                    "Normal",
                    "SawCompletedJob",
                    format!("Saw completed job: {job_name}, status: {state}"),
                ));
            }
        }
    }
    let mut last_schedule = status.last_schedule_time.clone();

    let deleting = cj.metadata.deletion_timestamp.is_some();
    let zone = match spec.time_zone.as_deref() {
        None => Ok(None),
        Some(tz) => cron::parse_time_zone(tz).map(Some),
    };
    let schedule = cron::parse(&spec.schedule);
    let mut scheduled_now: Option<Timestamp> = None;
    let mut deleted_active: Vec<String> = Vec::new();
    match (&schedule, &zone) {
        _ if deleting => {}
        (Err(e), _) => out.actions.push(event(
            "Warning",
            "UnparseableSchedule",
            format!("unparseable schedule: {:?} : {e}", spec.schedule),
        )),
        (_, Err(_)) => out.actions.push(event(
            "Warning",
            "UnknownTimeZone",
            format!(
                "invalid timeZone: {:?}: unknown time zone {}",
                spec.time_zone.as_deref().unwrap_or_default(),
                spec.time_zone.as_deref().unwrap_or_default()
            ),
        )),
        _ if spec.suspend == Some(true) => {}
        (Ok(schedule), Ok(zone)) => {
            let now_c = to_chrono(now);
            let mut earliest = last_schedule
                .as_ref()
                .map(|t| to_chrono(t.0))
                .unwrap_or_else(|| to_chrono(created(&cj.metadata)));
            if let Some(sds) = spec.starting_deadline_seconds {
                let deadline = now_c.timestamp().saturating_sub(sds);
                if deadline > earliest.timestamp() {
                    earliest = Utc.timestamp_opt(deadline, 0).single().unwrap_or(earliest);
                }
            }
            let (recent, missed) = most_recent(schedule, *zone, earliest, now_c);
            if missed > MAX_MISSED {
                out.actions.push(event(
                    "Warning",
                    "TooManyMissedTimes",
                    format!(
                        "too many missed start times: {missed}. Set or decrease \
                         .spec.startingDeadlineSeconds or check clock skew"
                    ),
                ));
            }
            if let Some(next) = schedule.next_after(now_c, *zone) {
                let wait = (next - now_c).to_std().unwrap_or_default();
                out.requeue_after = Some(wait + NEXT_SCHEDULE_DELTA);
            }
            if let Some(t) = recent {
                let t_j = to_jiff(t);
                let job_name = job_name(&name, t_j);
                let too_late = spec
                    .starting_deadline_seconds
                    .is_some_and(|sds| t.timestamp().saturating_add(sds) < now_c.timestamp());
                let exists = jobs
                    .iter()
                    .any(|j| j.metadata.name.as_deref() == Some(&job_name));
                if too_late {
                    out.actions.push(event(
                        "Warning",
                        "MissSchedule",
                        format!(
                            "Missed scheduled time to start a job: {}",
                            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                    ));
                } else if exists {
                    // Already ran for this time (the status write may have been lost).
                } else if spec.concurrency_policy.as_deref() == Some("Forbid") && !active.is_empty()
                {
                    out.actions.push(event(
                        "Normal",
                        "JobAlreadyActive",
                        "Not starting job because prior execution is running and \
                         concurrency policy is Forbid"
                            .into(),
                    ));
                } else {
                    if spec.concurrency_policy.as_deref() == Some("Replace") {
                        for job in &active {
                            let n = job.metadata.name.clone().unwrap_or_default();
                            out.actions.push(Action::DeleteJob { name: n.clone() });
                            out.actions.push(event(
                                "Normal",
                                "SuccessfulDelete",
                                format!("Deleted job {n}"),
                            ));
                            deleted_active.push(n);
                        }
                    }
                    out.actions.push(Action::CreateJob {
                        name: job_name,
                        scheduled: t_j,
                    });
                    scheduled_now = Some(t_j);
                    last_schedule = Some(Time(t_j));
                }
            }
        }
    }
    active.retain(|j| {
        !deleted_active
            .iter()
            .any(|d| j.metadata.name.as_deref() == Some(d))
    });

    // History: keep the newest finished Jobs of each kind up to its limit.
    for (state, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut done: Vec<&Job> = jobs
            .iter()
            .copied()
            .filter(|j| finished(j) == Some(state))
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .collect();
        let keep = usize::try_from(limit.max(0)).unwrap_or(0);
        if done.len() <= keep {
            continue;
        }
        done.sort_by_key(|j| {
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0)
                .unwrap_or_else(|| created(&j.metadata))
        });
        let excess = done.len() - keep;
        for job in done.into_iter().take(excess) {
            let n = job.metadata.name.clone().unwrap_or_default();
            out.actions.push(Action::DeleteJob { name: n.clone() });
            out.actions.push(event(
                "Normal",
                "SuccessfulDelete",
                format!("Deleted job {n}"),
            ));
        }
    }

    let new_status = CronJobStatus {
        active: Some(active.iter().map(|j| job_ref(j)).collect::<Vec<_>>())
            .filter(|a| !a.is_empty()),
        last_schedule_time: last_schedule,
        last_successful_time: last_successful,
    };
    let current = CronJobStatus {
        active: status.active.clone().filter(|a| !a.is_empty()),
        ..status
    };
    if new_status != current || scheduled_now.is_some() {
        // After the create, so a failed create leaves lastScheduleTime unmoved and the
        // time is tried again.
        let pos = out
            .actions
            .iter()
            .rposition(|a| matches!(a, Action::CreateJob { .. }))
            .map_or(0, |p| p + 1);
        out.actions.insert(pos, Action::Status(new_status));
    }
    if let Some(t) = scheduled_now {
        let pos = out
            .actions
            .iter()
            .rposition(|a| matches!(a, Action::CreateJob { .. }))
            .map_or(0, |p| p + 1);
        let job_name = job_name(&name, t);
        out.actions.insert(
            pos,
            event(
                "Normal",
                "SuccessfulCreate",
                format!("Created job {job_name}"),
            ),
        );
    }
    out
}

/// An `ObjectReference` to a Job for `status.active` (upstream's `getRef`).
pub fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// The Job a CronJob creates for `scheduled` (upstream's `getJobFromTemplate2`): the
/// template's labels, annotations and spec, a name from the scheduled minute, the
/// scheduled-timestamp annotation and a controller reference. `None` without name or uid.
pub fn job_for(cj: &CronJob, scheduled: Timestamp) -> Option<Job> {
    let spec = cj.spec.as_ref()?;
    let template = spec.job_template.clone();
    let tmeta = template.metadata.unwrap_or_default();
    let name = cj.metadata.name.as_deref()?;
    let zone = spec
        .time_zone
        .as_deref()
        .and_then(|tz| cron::parse_time_zone(tz).ok())
        .unwrap_or(chrono_tz::Tz::UTC);
    let stamp = to_chrono(scheduled)
        .with_timezone(&zone)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), stamp);
    Some(Job {
        metadata: ObjectMeta {
            name: Some(job_name(name, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![new_controller_ref(
                "batch/v1",
                "CronJob",
                &cj.metadata,
            )?]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    })
}
