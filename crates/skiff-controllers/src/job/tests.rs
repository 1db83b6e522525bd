//! Table-driven tests of the Job plan: given a Job and its pods, expect exactly these writes
//! (cases after upstream's `job_controller_test.go`).

use super::indexes::{COMPLETION_INDEX, INDEX_FAILURE_COUNT};
use super::plan::{plan, pod_for, Action, Input, NewPod, Plan, TRACKING_FINALIZER};
use k8s_openapi::api::batch::v1::{
    Job, JobCondition, JobSpec, JobStatus, PodFailurePolicy,
    PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule, UncountedTerminatedPods,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodCondition,
    PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

const UID: &str = "job-uid";
const NOW: i64 = 10_000;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn job(completions: Option<i32>, parallelism: i32) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some("pi".into()),
            namespace: Some("default".into()),
            uid: Some(UID.into()),
            resource_version: Some("5".into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            completions,
            parallelism: Some(parallelism),
            backoff_limit: Some(6),
            completion_mode: Some("NonIndexed".into()),
            suspend: Some(false),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(BTreeMap::from([("job-name".into(), "pi".into())])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "c".into(),
                        image: Some("busybox".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: Some(JobStatus {
            start_time: Some(Time(ts(NOW - 100))),
            ..Default::default()
        }),
    }
}

fn indexed(completions: i32, parallelism: i32) -> Job {
    let mut j = job(Some(completions), parallelism);
    if let Some(s) = j.spec.as_mut() {
        s.completion_mode = Some("Indexed".into());
    }
    j
}

/// A pod of the Job: `phase`, with the tracking finalizer unless `released`.
#[derive(Clone)]
struct P {
    name: &'static str,
    phase: &'static str,
    index: Option<i32>,
    failures: Option<i32>,
    exit: Option<i32>,
    finished: i64,
    ready: bool,
    released: bool,
    deleting: bool,
}

const RUNNING: P = P {
    name: "p",
    phase: "Running",
    index: None,
    failures: None,
    exit: None,
    finished: 0,
    ready: true,
    released: false,
    deleting: false,
};

fn pod(p: &P) -> Pod {
    let mut annotations = BTreeMap::new();
    if let Some(ix) = p.index {
        annotations.insert(COMPLETION_INDEX.to_string(), ix.to_string());
    }
    if let Some(f) = p.failures {
        annotations.insert(INDEX_FAILURE_COUNT.to_string(), f.to_string());
    }
    let terminated = matches!(p.phase, "Succeeded" | "Failed");
    Pod {
        metadata: ObjectMeta {
            name: Some(p.name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{}", p.name)),
            creation_timestamp: Some(Time(ts(NOW - 500))),
            annotations: Some(annotations),
            finalizers: (!p.released).then(|| vec![TRACKING_FINALIZER.to_string()]),
            deletion_timestamp: p.deleting.then(|| Time(ts(NOW - 1))),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: "pi".into(),
                uid: UID.into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node".into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(p.phase.into()),
            conditions: p.ready.then(|| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]
            }),
            container_statuses: terminated.then(|| {
                vec![ContainerStatus {
                    name: "c".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: p.exit.unwrap_or(if p.phase == "Failed" { 1 } else { 0 }),
                            finished_at: Some(Time(ts(p.finished))),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    }
}

fn done(name: &'static str, phase: &'static str) -> P {
    P {
        name,
        phase,
        ready: false,
        finished: NOW - 1000,
        ..RUNNING
    }
}

fn run(job: &Job, pods: &[P], expected: &[&str]) -> Plan {
    let pods: Vec<Pod> = pods.iter().map(pod).collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let expected: HashSet<String> = expected.iter().map(|s| format!("uid-{s}")).collect();
    plan(&Input {
        job,
        pods: &refs,
        expected_removals: &expected,
        now: ts(NOW),
    })
}

/// The status writes of a plan, in order.
fn statuses(p: &Plan) -> Vec<JobStatus> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Status(s) => Some((**s).clone()),
            _ => None,
        })
        .collect()
}

/// The last status a plan writes (the one the Job settles on).
fn last_status(p: &Plan) -> JobStatus {
    statuses(p).pop().unwrap_or_default()
}

/// The pod-level actions (creates, deletes, finalizer removals), without status or events.
fn pod_actions(p: &Plan) -> Vec<Action> {
    p.actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Create { .. } | Action::Delete { .. } | Action::RemoveFinalizer { .. }
            )
        })
        .cloned()
        .collect()
}

fn true_conditions(s: &JobStatus) -> Vec<(String, String)> {
    s.conditions
        .iter()
        .flatten()
        .filter(|c| c.status == "True")
        .map(|c| (c.type_.clone(), c.reason.clone().unwrap_or_default()))
        .collect()
}

fn creates(n: usize) -> Action {
    Action::Create {
        pods: vec![
            NewPod {
                index: None,
                index_failures: None
            };
            n
        ],
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn non_indexed_pod_counts_per_observed_pods() {
    let cases: Vec<(&str, Job, Vec<P>, Vec<Action>)> = vec![
        (
            "new job starts parallelism pods",
            job(Some(5), 2),
            vec![],
            vec![creates(2)],
        ),
        (
            "no more pods than completions left",
            job(Some(1), 3),
            vec![],
            vec![creates(1)],
        ),
        (
            "one running, one missing",
            job(Some(5), 2),
            vec![RUNNING],
            vec![creates(1)],
        ),
        (
            "lowered parallelism stops a pod",
            job(Some(5), 1),
            vec![
                P {
                    name: "a",
                    ..RUNNING
                },
                P {
                    name: "b",
                    ready: false,
                    ..RUNNING
                },
            ],
            vec![Action::Delete {
                pods: names(&["b"]),
            }],
        ),
        (
            "work queue starts parallelism pods",
            job(None, 3),
            vec![],
            vec![creates(3)],
        ),
        (
            "work queue with a success starts nothing new",
            job(None, 3),
            vec![
                done("ok", "Succeeded"),
                P {
                    name: "still",
                    ..RUNNING
                },
            ],
            vec![Action::RemoveFinalizer {
                pods: names(&["ok"]),
            }],
        ),
        (
            "a success is replaced until completions",
            job(Some(3), 1),
            vec![done("ok", "Succeeded")],
            vec![
                Action::RemoveFinalizer {
                    pods: names(&["ok"]),
                },
                creates(1),
            ],
        ),
    ];
    for (what, job, pods, want) in cases {
        assert_eq!(pod_actions(&run(&job, &pods, &[])), want, "{what}");
    }
}

#[test]
fn finished_pod_is_recorded_then_released_then_counted() {
    let got = run(&job(Some(3), 1), &[done("ok", "Succeeded")], &[]);
    let writes = statuses(&got);
    assert_eq!(writes.len(), 2, "record, then count");
    let recorded = writes[0]
        .uncounted_terminated_pods
        .clone()
        .unwrap_or_default();
    assert_eq!(recorded.succeeded, Some(names(&["uid-ok"])));
    assert_eq!(writes[0].succeeded, None, "not counted before release");
    assert!(
        matches!(got.actions[0], Action::Status(_)),
        "recorded first"
    );
    assert!(matches!(got.actions[1], Action::RemoveFinalizer { .. }));
    assert_eq!(writes[1].succeeded, Some(1));
    assert_eq!(
        writes[1].uncounted_terminated_pods,
        Some(UncountedTerminatedPods::default())
    );
    assert_eq!(writes[1].active, Some(1), "the replacement");
}

#[test]
fn restart_between_steps_neither_loses_nor_double_counts() {
    let mut recorded = job(Some(3), 1);
    if let Some(s) = recorded.status.as_mut() {
        s.succeeded = Some(1);
        s.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: Some(names(&["uid-ok"])),
            failed: None,
        });
    }
    let running = P {
        name: "next",
        ..RUNNING
    };
    // Restarted after the record, before the release: release, then count once.
    let got = run(&recorded, &[done("ok", "Succeeded"), running.clone()], &[]);
    assert_eq!(statuses(&got).len(), 1, "no second record");
    assert_eq!(
        pod_actions(&got),
        vec![Action::RemoveFinalizer {
            pods: names(&["ok"])
        }]
    );
    assert_eq!(last_status(&got).succeeded, Some(2));
    // Restarted after the release, before the count: count without touching the pod.
    let released = P {
        released: true,
        ..done("ok", "Succeeded")
    };
    let got = run(&recorded, &[released.clone(), running.clone()], &[]);
    assert_eq!(pod_actions(&got), vec![]);
    assert_eq!(last_status(&got).succeeded, Some(2));
    // Counted, and the cache still shows the finalizer: not recorded again.
    let mut counted = job(Some(3), 1);
    if let Some(s) = counted.status.as_mut() {
        s.succeeded = Some(2);
        s.active = Some(1);
        s.ready = Some(1);
        s.terminating = Some(0);
        s.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    }
    let got = run(&counted, &[done("ok", "Succeeded"), running], &["ok"]);
    assert_eq!(got.actions, vec![], "settled");
}

#[test]
fn completions_reached_completes_after_success_criteria() {
    let got = run(
        &job(Some(2), 2),
        &[done("a", "Succeeded"), done("b", "Succeeded")],
        &[],
    );
    let s = last_status(&got);
    assert_eq!(s.succeeded, Some(2));
    assert_eq!(
        true_conditions(&s),
        vec![
            ("SuccessCriteriaMet".into(), "CompletionsReached".into()),
            ("Complete".into(), "CompletionsReached".into())
        ]
    );
    assert_eq!(s.completion_time, Some(Time(ts(NOW))));
    assert!(got.actions.contains(&Action::Event {
        type_: "Normal",
        reason: "Completed",
        message: "Job completed".into()
    }));
    let work_queue = run(&job(None, 2), &[done("a", "Succeeded")], &[]);
    assert_eq!(
        true_conditions(&last_status(&work_queue))
            .last()
            .map(|c| c.0.clone()),
        Some("Complete".into()),
        "work queue completes on one success with none active"
    );
}

#[test]
fn backoff_limit_fails_the_job_once_pods_are_gone() {
    let mut j = job(Some(1), 1);
    if let Some(s) = j.spec.as_mut() {
        s.backoff_limit = Some(1);
    }
    let got = run(&j, &[done("f1", "Failed"), done("f2", "Failed")], &[]);
    let s = last_status(&got);
    assert_eq!(s.failed, Some(2));
    assert_eq!(
        true_conditions(&s),
        vec![
            ("FailureTarget".into(), "BackoffLimitExceeded".into()),
            ("Failed".into(), "BackoffLimitExceeded".into())
        ]
    );
    assert_eq!(s.completion_time, None, "only Complete sets completionTime");
    // With a pod still running: FailureTarget now, the pod is stopped and counted failed,
    // Failed waits for it to terminate.
    let got = run(
        &j,
        &[done("f1", "Failed"), done("f2", "Failed"), RUNNING],
        &[],
    );
    let s = last_status(&got);
    assert_eq!(
        true_conditions(&s),
        vec![("FailureTarget".into(), "BackoffLimitExceeded".into())]
    );
    assert_eq!(s.failed, Some(3));
    assert_eq!(s.terminating, Some(1));
    assert!(pod_actions(&got).contains(&Action::Delete {
        pods: names(&["p"])
    }));
}

#[test]
fn failed_pods_are_replaced_after_exponential_backoff() {
    let recent = |name, ago| P {
        finished: NOW - ago,
        ..done(name, "Failed")
    };
    type Case = (&'static str, Vec<P>, Vec<Action>, Option<Duration>);
    let cases: Vec<Case> = vec![
        (
            "one failure 4s ago waits 6s more",
            vec![recent("f1", 4)],
            vec![Action::RemoveFinalizer {
                pods: names(&["f1"]),
            }],
            Some(Duration::from_secs(6)),
        ),
        (
            "two failures wait 20s from the last",
            vec![recent("f1", 30), recent("f2", 15)],
            vec![Action::RemoveFinalizer {
                pods: names(&["f1", "f2"]),
            }],
            Some(Duration::from_secs(5)),
        ),
        (
            "backoff passed: replace",
            vec![recent("f1", 11)],
            vec![
                Action::RemoveFinalizer {
                    pods: names(&["f1"]),
                },
                creates(1),
            ],
            None,
        ),
    ];
    for (what, pods, want, requeue) in cases {
        let got = run(&job(Some(1), 1), &pods, &[]);
        assert_eq!(pod_actions(&got), want, "{what}");
        assert_eq!(got.requeue_after, requeue, "{what}");
    }
}

#[test]
fn active_deadline_fails_the_job_and_stops_its_pods() {
    let mut j = job(Some(1), 1);
    if let Some(s) = j.spec.as_mut() {
        s.active_deadline_seconds = Some(50);
    }
    let got = run(&j, &[RUNNING], &[]);
    assert_eq!(
        true_conditions(&last_status(&got)),
        vec![("FailureTarget".into(), "DeadlineExceeded".into())]
    );
    assert!(pod_actions(&got).contains(&Action::Delete {
        pods: names(&["p"])
    }));
    if let Some(s) = j.spec.as_mut() {
        s.active_deadline_seconds = Some(130);
    }
    let got = run(&j, &[RUNNING], &[]);
    assert_eq!(pod_actions(&got), vec![]);
    assert_eq!(got.requeue_after, Some(Duration::from_secs(30)));
}

#[test]
fn suspend_stops_pods_and_resume_restarts_the_clock() {
    let mut j = job(Some(2), 2);
    if let Some(s) = j.spec.as_mut() {
        s.suspend = Some(true);
    }
    let got = run(&j, &[RUNNING], &[]);
    assert_eq!(
        pod_actions(&got),
        vec![
            Action::RemoveFinalizer {
                pods: names(&["p"])
            },
            Action::Delete {
                pods: names(&["p"])
            }
        ]
    );
    let s = last_status(&got);
    assert_eq!(
        true_conditions(&s),
        vec![("Suspended".into(), "JobSuspended".into())]
    );
    assert_eq!(s.failed, None, "suspension is not failure");
    // Resume.
    if let Some(sp) = j.spec.as_mut() {
        sp.suspend = Some(false);
    }
    j.status = Some(s);
    let got = run(&j, &[], &[]);
    assert_eq!(pod_actions(&got), vec![creates(2)]);
    let s = last_status(&got);
    let suspended: Vec<&JobCondition> = s
        .conditions
        .iter()
        .flatten()
        .filter(|c| c.type_ == "Suspended")
        .collect();
    assert_eq!(suspended.len(), 1);
    assert_eq!(suspended[0].status, "False");
    assert_eq!(suspended[0].reason.as_deref(), Some("JobResumed"));
    assert_eq!(s.start_time, Some(Time(ts(NOW))));
}

fn ix(name: &'static str, index: i32) -> P {
    P {
        name,
        index: Some(index),
        ..RUNNING
    }
}

fn new_ix(index: i32) -> NewPod {
    NewPod {
        index: Some(index),
        index_failures: None,
    }
}

#[test]
fn indexed_jobs_run_each_index_once() {
    let cases: Vec<(&str, Vec<P>, Vec<Action>)> = vec![
        (
            "starts the lowest indexes",
            vec![],
            vec![Action::Create {
                pods: vec![new_ix(0), new_ix(1)],
            }],
        ),
        (
            "skips running and completed indexes",
            vec![
                P {
                    index: Some(0),
                    ..done("d0", "Succeeded")
                },
                ix("r1", 1),
            ],
            vec![
                Action::RemoveFinalizer {
                    pods: names(&["d0"]),
                },
                Action::Create {
                    pods: vec![new_ix(2)],
                },
            ],
        ),
        (
            "deletes a duplicate index and an out-of-range one",
            vec![
                ix("a", 1),
                P {
                    ready: false,
                    ..ix("b", 1)
                },
                ix("c", 9),
            ],
            vec![
                Action::Delete {
                    pods: names(&["b", "c"]),
                },
                Action::Create {
                    pods: vec![new_ix(0)],
                },
            ],
        ),
    ];
    for (what, pods, want) in cases {
        assert_eq!(
            pod_actions(&run(&indexed(3, 2), &pods, &[])),
            want,
            "{what}"
        );
    }
    let all = [
        P {
            index: Some(0),
            ..done("a", "Succeeded")
        },
        P {
            index: Some(1),
            ..done("b", "Succeeded")
        },
        P {
            index: Some(1),
            ..done("dup", "Succeeded")
        },
    ];
    let got = run(&indexed(2, 2), &all, &[]);
    let s = last_status(&got);
    assert_eq!(s.completed_indexes.as_deref(), Some("0-1"));
    assert_eq!(
        s.succeeded,
        Some(2),
        "a second success of one index is not counted"
    );
    assert_eq!(
        true_conditions(&s).last().map(|c| c.0.clone()),
        Some("Complete".into())
    );
}

#[test]
fn indexed_pod_gets_index_env_hostname_and_finalizer() {
    let j = indexed(3, 1);
    let pod = pod_for(&j, &new_ix(2)).unwrap_or_default();
    let meta = &pod.metadata;
    assert_eq!(meta.generate_name.as_deref(), Some("pi-2-"));
    let index = |m: &Option<BTreeMap<String, String>>| {
        m.as_ref().and_then(|m| m.get(COMPLETION_INDEX).cloned())
    };
    assert_eq!(index(&meta.annotations).as_deref(), Some("2"));
    assert_eq!(index(&meta.labels).as_deref(), Some("2"));
    assert_eq!(meta.finalizers, Some(names(&[TRACKING_FINALIZER])));
    let spec = pod.spec.unwrap_or_default();
    assert_eq!(spec.hostname.as_deref(), Some("pi-2"));
    let env = spec.containers[0].env.clone().unwrap_or_default();
    assert_eq!(env[0].name, "JOB_COMPLETION_INDEX");
    let path = env[0]
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.clone());
    assert_eq!(
        path.as_deref(),
        Some("metadata.annotations['batch.kubernetes.io/job-completion-index']")
    );
    let plain = pod_for(&job(Some(1), 1), &creates_one()).unwrap_or_default();
    assert_eq!(plain.metadata.generate_name.as_deref(), Some("pi-"));
    assert_eq!(plain.spec.unwrap_or_default().hostname, None);
}

fn creates_one() -> NewPod {
    NewPod {
        index: None,
        index_failures: None,
    }
}

#[test]
fn backoff_limit_per_index_fails_indexes_not_the_job() {
    let mut j = indexed(3, 3);
    if let Some(s) = j.spec.as_mut() {
        s.backoff_limit_per_index = Some(1);
        s.backoff_limit = Some(i32::MAX);
    }
    let failed = |name, index, failures| P {
        index: Some(index),
        failures: Some(failures),
        ..done(name, "Failed")
    };
    // Index 0 failed once (limit 1): retried with its count; index 1 failed its second
    // time: failed for good.
    let got = run(&j, &[failed("a", 0, 0), failed("b", 1, 1), ix("c", 2)], &[]);
    let s = last_status(&got);
    assert_eq!(s.failed_indexes.as_deref(), Some("1"));
    assert_eq!(s.failed, Some(2));
    assert!(pod_actions(&got).contains(&Action::Create {
        pods: vec![NewPod {
            index: Some(0),
            index_failures: Some(1)
        }]
    }));
    assert_eq!(true_conditions(&s), vec![]);
    // maxFailedIndexes 0: one failed index fails the Job.
    if let Some(sp) = j.spec.as_mut() {
        sp.max_failed_indexes = Some(0);
    }
    let got = run(&j, &[failed("b", 1, 1)], &[]);
    assert_eq!(
        true_conditions(&last_status(&got))
            .first()
            .map(|c| c.1.clone()),
        Some("MaxFailedIndexesExceeded".into())
    );
    // All indexes finished with one failed: FailedIndexes.
    if let Some(sp) = j.spec.as_mut() {
        sp.max_failed_indexes = None;
    }
    let ok = |name, index| P {
        index: Some(index),
        ..done(name, "Succeeded")
    };
    let got = run(&j, &[ok("a", 0), failed("b", 1, 1), ok("c", 2)], &[]);
    assert_eq!(
        true_conditions(&last_status(&got)),
        vec![
            ("FailureTarget".into(), "FailedIndexes".into()),
            ("Failed".into(), "FailedIndexes".into())
        ]
    );
}

fn with_policy(action: &str, codes: Vec<i32>) -> Job {
    let mut j = job(Some(1), 1);
    if let Some(s) = j.spec.as_mut() {
        s.pod_failure_policy = Some(PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: action.into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: None,
                    operator: "In".into(),
                    values: codes,
                }),
                on_pod_conditions: None,
            }],
        });
        s.pod_replacement_policy = Some("Failed".into());
    }
    j
}

#[test]
fn pod_failure_policy_decides_how_failures_count() {
    let exit42 = P {
        exit: Some(42),
        ..done("f", "Failed")
    };
    let got = run(
        &with_policy("FailJob", vec![42]),
        std::slice::from_ref(&exit42),
        &[],
    );
    let s = last_status(&got);
    assert_eq!(
        true_conditions(&s),
        vec![
            ("FailureTarget".into(), "PodFailurePolicy".into()),
            ("Failed".into(), "PodFailurePolicy".into())
        ]
    );
    let msg = s
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed")
        .and_then(|c| c.message.clone());
    assert_eq!(
        msg.as_deref(),
        Some("Container c for pod default/f failed with exit code 42 matching FailJob rule at index 0")
    );
    let got = run(
        &with_policy("Ignore", vec![42]),
        std::slice::from_ref(&exit42),
        &[],
    );
    let s = last_status(&got);
    assert_eq!(s.failed, None, "ignored");
    assert!(pod_actions(&got).contains(&creates(1)), "and replaced");
    let got = run(
        &with_policy("FailJob", vec![7]),
        std::slice::from_ref(&exit42),
        &[],
    );
    assert_eq!(
        last_status(&got).failed,
        Some(1),
        "no rule matched: counted"
    );
    assert_eq!(true_conditions(&last_status(&got)), vec![]);
    // A terminating pod is not failed yet when only failed pods are replaced.
    let deleting = P {
        deleting: true,
        ..RUNNING
    };
    let got = run(&with_policy("FailJob", vec![42]), &[deleting], &[]);
    assert_eq!(last_status(&got).failed, None);
    assert_eq!(last_status(&got).terminating, Some(1));
}

#[test]
fn restart_policy_on_failure_counts_container_restarts() {
    let mut j = job(Some(1), 1);
    if let Some(s) = j.spec.as_mut() {
        s.backoff_limit = Some(2);
        if let Some(t) = s.template.spec.as_mut() {
            t.restart_policy = Some("OnFailure".into());
        }
    }
    let mut p = pod(&RUNNING);
    if let Some(st) = p.status.as_mut() {
        st.container_statuses = Some(vec![ContainerStatus {
            name: "c".into(),
            restart_count: 2,
            ..Default::default()
        }]);
    }
    let refs = [&p];
    let got = plan(&Input {
        job: &j,
        pods: &refs,
        expected_removals: &HashSet::new(),
        now: ts(NOW),
    });
    assert_eq!(
        true_conditions(&last_status(&got)),
        vec![("FailureTarget".into(), "BackoffLimitExceeded".into())]
    );
}

fn finished(ttl: Option<i32>, at: i64) -> Job {
    let mut j = job(Some(1), 1);
    if let Some(s) = j.spec.as_mut() {
        s.ttl_seconds_after_finished = ttl;
    }
    j.status = Some(JobStatus {
        succeeded: Some(1),
        completion_time: Some(Time(ts(at))),
        conditions: Some(vec![JobCondition {
            type_: "Complete".into(),
            status: "True".into(),
            last_transition_time: Some(Time(ts(at))),
            ..Default::default()
        }]),
        ..Default::default()
    });
    j
}

#[test]
fn finished_jobs_release_leftovers_and_expire_after_their_ttl() {
    let got = run(&finished(Some(30), NOW - 40), &[], &[]);
    assert_eq!(got.actions, vec![Action::DeleteJob]);
    let got = run(&finished(Some(30), NOW - 10), &[], &[]);
    assert_eq!(got.actions, vec![]);
    assert_eq!(got.requeue_after, Some(Duration::from_secs(20)));
    let got = run(&finished(None, NOW - 10), &[done("late", "Failed")], &[]);
    assert_eq!(
        got.actions,
        vec![Action::RemoveFinalizer {
            pods: names(&["late"])
        }]
    );
    assert_eq!(got.requeue_after, None);
}

#[test]
fn settled_job_is_not_rewritten() {
    let mut j = job(Some(2), 1);
    if let Some(s) = j.status.as_mut() {
        s.active = Some(1);
        s.ready = Some(1);
        s.terminating = Some(0);
        s.succeeded = Some(1);
        s.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    }
    let released = P {
        released: true,
        ..done("ok", "Succeeded")
    };
    assert_eq!(run(&j, &[released, RUNNING], &[]).actions, vec![]);
}
