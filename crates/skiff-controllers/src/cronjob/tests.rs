//! Table-driven tests of the CronJob plan (cases after upstream's
//! `TestControllerV2SyncCronJob` and `TestMostRecentScheduleTime`).

use super::plan::{job_for, job_name, plan, Action, Plan, SCHEDULED_TIMESTAMP};
use k8s_openapi::api::batch::v1::{
    CronJob, CronJobSpec, CronJobStatus, Job, JobCondition, JobStatus, JobTemplateSpec,
};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

/// 2024-05-01T10:00:00Z, a whole hour.
const T0: i64 = 1_714_557_600;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn cron(schedule: &str, policy: &str) -> CronJob {
    CronJob {
        metadata: ObjectMeta {
            name: Some("report".into()),
            namespace: Some("default".into()),
            uid: Some("cj-uid".into()),
            creation_timestamp: Some(Time(ts(T0 - 3600))),
            ..Default::default()
        },
        spec: Some(CronJobSpec {
            schedule: schedule.into(),
            concurrency_policy: Some(policy.into()),
            suspend: Some(false),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(1),
            job_template: JobTemplateSpec::default(),
            ..Default::default()
        }),
        status: None,
    }
}

fn scheduled_at(mut cj: CronJob, last: i64) -> CronJob {
    cj.status = Some(CronJobStatus {
        last_schedule_time: Some(Time(ts(last))),
        ..Default::default()
    });
    cj
}

fn job(name: &str, state: Option<&str>, started: i64) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: "report".into(),
                uid: "cj-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: None,
        status: Some(JobStatus {
            start_time: Some(Time(ts(started))),
            completion_time: (state == Some("Complete")).then(|| Time(ts(started + 10))),
            conditions: state.map(|s| {
                vec![JobCondition {
                    type_: s.into(),
                    status: "True".into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    }
}

fn run(cj: &CronJob, jobs: &[Job], now: i64) -> Plan {
    let refs: Vec<&Job> = jobs.iter().collect();
    plan(cj, &refs, ts(now))
}

/// The creates and deletes of a plan, as (verb, job name).
fn writes(p: &Plan) -> Vec<(&'static str, String)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateJob { name, .. } => Some(("create", name.clone())),
            Action::DeleteJob { name } => Some(("delete", name.clone())),
            _ => None,
        })
        .collect()
}

fn reasons(p: &Plan) -> Vec<&'static str> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Event { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn at_minute(m: i64) -> String {
    job_name("report", ts(T0 + 60 * m))
}

#[test]
fn scheduled_times_create_jobs_per_concurrency_policy() {
    let running = || vec![job("report-old", None, T0 - 60)];
    type Case = (
        &'static str,
        CronJob,
        Vec<Job>,
        i64,
        Vec<(&'static str, String)>,
    );
    let cases: Vec<Case> = vec![
        (
            "due: create the job of the scheduled minute",
            scheduled_at(cron("*/1 * * * *", "Allow"), T0 - 60),
            vec![],
            T0 + 5,
            vec![("create", at_minute(0))],
        ),
        (
            "not due yet",
            scheduled_at(cron("*/1 * * * *", "Allow"), T0),
            vec![],
            T0 + 30,
            vec![],
        ),
        (
            "already created for this time",
            scheduled_at(cron("*/1 * * * *", "Allow"), T0 - 60),
            vec![job(&at_minute(0), None, T0)],
            T0 + 5,
            vec![],
        ),
        (
            "Allow runs alongside an active job",
            scheduled_at(cron("*/1 * * * *", "Allow"), T0 - 60),
            running(),
            T0 + 5,
            vec![("create", at_minute(0))],
        ),
        (
            "Forbid skips while a job is active",
            scheduled_at(cron("*/1 * * * *", "Forbid"), T0 - 60),
            running(),
            T0 + 5,
            vec![],
        ),
        (
            "Replace deletes the active job first",
            scheduled_at(cron("*/1 * * * *", "Replace"), T0 - 60),
            running(),
            T0 + 5,
            vec![("delete", "report-old".into()), ("create", at_minute(0))],
        ),
        (
            "several missed: only the most recent runs",
            scheduled_at(cron("*/1 * * * *", "Allow"), T0 - 600),
            vec![],
            T0 + 5,
            vec![("create", at_minute(0))],
        ),
        (
            "hourly descriptor",
            scheduled_at(cron("@hourly", "Allow"), T0 - 3600),
            vec![],
            T0 + 5,
            vec![("create", at_minute(0))],
        ),
    ];
    for (what, cj, jobs, now, want) in cases {
        assert_eq!(writes(&run(&cj, &jobs, now)), want, "{what}");
    }
}

#[test]
fn created_job_moves_last_schedule_time_and_requeues_for_the_next() {
    let got = run(
        &scheduled_at(cron("*/1 * * * *", "Allow"), T0 - 60),
        &[],
        T0 + 5,
    );
    let status = got.actions.iter().find_map(|a| match a {
        Action::Status(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(
        status.and_then(|s| s.last_schedule_time),
        Some(Time(ts(T0)))
    );
    assert!(
        matches!(got.actions[0], Action::CreateJob { .. }),
        "the status follows the create"
    );
    assert_eq!(reasons(&got), vec!["SuccessfulCreate"]);
    assert_eq!(got.requeue_after, Some(Duration::from_millis(55_100)));
}

#[test]
fn starting_deadline_and_suspend_hold_runs_back() {
    let mut late = scheduled_at(cron("0 * * * *", "Allow"), T0 - 3600);
    if let Some(s) = late.spec.as_mut() {
        s.starting_deadline_seconds = Some(200);
    }
    assert_eq!(
        writes(&run(&late, &[], T0 + 300)),
        vec![],
        "past the deadline"
    );
    assert_eq!(
        writes(&run(&late, &[], T0 + 100)),
        vec![("create", at_minute(0))],
        "within the deadline"
    );
    let mut suspended = scheduled_at(cron("*/1 * * * *", "Allow"), T0 - 60);
    if let Some(s) = suspended.spec.as_mut() {
        s.suspend = Some(true);
    }
    let got = run(&suspended, &[], T0 + 5);
    assert_eq!(writes(&got), vec![]);
    assert_eq!(got.requeue_after, None);
}

#[test]
fn too_many_missed_start_times_warn_and_run_the_latest() {
    let never = cron("*/1 * * * *", "Allow"); // created an hour before T0, never ran
    let got = run(&never, &[], T0 + 6000 + 5);
    assert_eq!(writes(&got), vec![("create", at_minute(100))]);
    assert!(reasons(&got).contains(&"TooManyMissedTimes"));
    let got = run(&never, &[], T0 + 5);
    assert!(
        !reasons(&got).contains(&"TooManyMissedTimes"),
        "60 missed is fine"
    );
}

#[test]
fn history_limits_delete_the_oldest_finished_jobs() {
    let mut cj = scheduled_at(cron("0 0 1 1 *", "Allow"), T0);
    if let Some(s) = cj.spec.as_mut() {
        s.successful_jobs_history_limit = Some(1);
        s.failed_jobs_history_limit = Some(0);
    }
    let jobs = vec![
        job("ok-new", Some("Complete"), T0 - 100),
        job("ok-old", Some("Complete"), T0 - 300),
        job("ok-mid", Some("Complete"), T0 - 200),
        job("bad", Some("Failed"), T0 - 50),
        job("running", None, T0 - 10),
    ];
    assert_eq!(
        writes(&run(&cj, &jobs, T0 + 5)),
        vec![
            ("delete", "ok-old".into()),
            ("delete", "ok-mid".into()),
            ("delete", "bad".into())
        ]
    );
}

#[test]
fn finished_jobs_leave_active_and_set_last_successful_time() {
    let mut cj = scheduled_at(cron("0 0 1 1 *", "Allow"), T0);
    cj.status = Some(CronJobStatus {
        active: Some(vec![ObjectReference {
            name: Some("report-1".into()),
            ..Default::default()
        }]),
        last_schedule_time: Some(Time(ts(T0))),
        last_successful_time: None,
    });
    let got = run(&cj, &[job("report-1", Some("Complete"), T0)], T0 + 60);
    let status = got.actions.iter().find_map(|a| match a {
        Action::Status(s) => Some(s.clone()),
        _ => None,
    });
    let status = status.unwrap_or_default();
    assert_eq!(status.active, None);
    assert_eq!(status.last_successful_time, Some(Time(ts(T0 + 10))));
    assert_eq!(reasons(&got), vec!["SawCompletedJob"]);
    // Settled: nothing to write.
    let mut settled = cj.clone();
    settled.status = Some(status);
    assert_eq!(
        run(&settled, &[job("report-1", Some("Complete"), T0)], T0 + 60).actions,
        vec![]
    );
}

#[test]
fn bad_schedule_or_zone_is_reported_not_run() {
    let got = run(&cron("bogus", "Allow"), &[], T0);
    assert_eq!(writes(&got), vec![]);
    assert_eq!(reasons(&got), vec!["UnparseableSchedule"]);
    let mut zoned = cron("*/1 * * * *", "Allow");
    if let Some(s) = zoned.spec.as_mut() {
        s.time_zone = Some("Mars/Olympus".into());
    }
    assert_eq!(reasons(&run(&zoned, &[], T0)), vec!["UnknownTimeZone"]);
}

#[test]
fn job_from_template_is_named_by_minute_and_stamped_in_the_zone() {
    let mut cj = cron("0 9 * * *", "Allow");
    if let Some(s) = cj.spec.as_mut() {
        s.time_zone = Some("Europe/Paris".into());
    }
    let made = job_for(&cj, ts(T0)).unwrap_or_default();
    assert_eq!(made.metadata.name, Some(format!("report-{}", T0 / 60)));
    let stamp = made
        .metadata
        .annotations
        .and_then(|a| a.get(SCHEDULED_TIMESTAMP).cloned());
    assert_eq!(stamp.as_deref(), Some("2024-05-01T12:00:00+02:00"));
    let owner = made.metadata.owner_references.unwrap_or_default();
    assert_eq!(owner[0].kind, "CronJob");
    assert_eq!(owner[0].controller, Some(true));
}

#[test]
fn time_zone_moves_the_schedule() {
    // 09:00 in Paris is 07:00 UTC in May.
    let mut cj = scheduled_at(cron("0 9 * * *", "Allow"), T0 - 86_400);
    if let Some(s) = cj.spec.as_mut() {
        s.time_zone = Some("Europe/Paris".into());
    }
    assert_eq!(
        writes(&run(&cj, &[], T0 - 3 * 3600 + 5)),
        vec![("create", job_name("report", ts(T0 - 3 * 3600)))]
    );
}
