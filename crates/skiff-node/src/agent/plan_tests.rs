//! Table tests of the pod sync plan.

use super::*;
use serde_json::json;

fn pod(extra: serde_json::Value) -> Pod {
    let mut base = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}
    });
    merge(&mut base, extra);
    serde_json::from_value(base).unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn now() -> DateTime<Utc> {
    "2026-01-01T00:01:00Z".parse().unwrap()
}

fn exited(name: &str, attempt: u32, code: i32, finished: &str) -> Observed {
    Observed {
        id: format!("{name}-{attempt}"),
        name: name.into(),
        image_id: None,
        init: false,
        attempt,
        state: ContainerState::Exited(ExitInfo {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            finished_at: finished.into(),
        }),
        started_at: None,
    }
}

fn running(name: &str, attempt: u32) -> Observed {
    Observed {
        id: format!("{name}-{attempt}"),
        name: name.into(),
        image_id: None,
        init: false,
        attempt,
        state: ContainerState::Running,
        started_at: None,
    }
}

fn start(name: &str, init: bool, attempt: u32) -> Action {
    Action::StartContainer {
        name: name.into(),
        init,
        attempt,
    }
}

fn run(pod: &Pod, containers: &[Observed], sandbox: bool, image: ImageState) -> Plan {
    let images = BTreeMap::from([("busybox".to_string(), image)]);
    plan(&PlanInput {
        pod,
        containers,
        sandbox_ready: sandbox,
        images: &images,
        now: now(),
    })
}

#[test]
fn new_pod_gets_a_sandbox_then_its_container() {
    let p = run(&pod(json!({})), &[], false, ImageState::Present);
    assert_eq!(
        p.actions,
        vec![Action::CreateSandbox, start("app", false, 0)]
    );
}

#[test]
fn running_pod_needs_nothing() {
    let p = run(
        &pod(json!({})),
        &[running("app", 0)],
        true,
        ImageState::Present,
    );
    assert_eq!(p, Plan::default());
}

#[test]
fn failed_image_pull_keeps_the_container_waiting_with_its_reason() {
    for reason in ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"] {
        let waiting = Waiting {
            reason: reason.into(),
            message: Some("why".into()),
        };
        let p = run(
            &pod(json!({})),
            &[],
            true,
            ImageState::Failed(waiting.clone()),
        );
        assert!(p.actions.is_empty());
        assert_eq!(p.waiting["app"], waiting);
        assert_eq!(p.requeue_after, Some(Duration::from_secs(1)));
    }
}

#[test]
fn restarts_follow_policy_and_back_off() {
    let always = pod(json!({}));
    let never = pod(json!({"spec": {"restartPolicy": "Never"}}));
    let on_failure = pod(json!({"spec": {"restartPolicy": "OnFailure"}}));
    let cases: Vec<(&Pod, Observed, Option<Action>, Option<&str>)> = vec![
        // First crash restarts at once.
        (
            &always,
            exited("app", 0, 1, "2026-01-01T00:00:59Z"),
            Some(start("app", false, 1)),
            None,
        ),
        // Second crash waits 10 s.
        (
            &always,
            exited("app", 1, 1, "2026-01-01T00:00:55Z"),
            None,
            Some("CrashLoopBackOff"),
        ),
        (
            &always,
            exited("app", 1, 1, "2026-01-01T00:00:49Z"),
            Some(start("app", false, 2)),
            None,
        ),
        // Back-off is capped at 5 minutes.
        (
            &always,
            exited("app", 9, 1, "2026-01-01T00:00:00Z"),
            None,
            Some("CrashLoopBackOff"),
        ),
        (
            &always,
            exited("app", 0, 0, "2026-01-01T00:00:59Z"),
            Some(start("app", false, 1)),
            None,
        ),
        (
            &never,
            exited("app", 0, 1, "2026-01-01T00:00:00Z"),
            None,
            None,
        ),
        (
            &on_failure,
            exited("app", 0, 0, "2026-01-01T00:00:00Z"),
            None,
            None,
        ),
        (
            &on_failure,
            exited("app", 0, 2, "2026-01-01T00:00:00Z"),
            Some(start("app", false, 1)),
            None,
        ),
    ];
    for (i, (pod, c, action, waiting)) in cases.into_iter().enumerate() {
        let p = run(pod, &[c], true, ImageState::Present);
        assert_eq!(p.actions.first(), action.as_ref(), "case {i}");
        assert_eq!(
            p.waiting.get("app").map(|w| w.reason.as_str()),
            waiting,
            "case {i}"
        );
    }
    assert_eq!(backoff(9), BACKOFF_MAX);
    assert_eq!(backoff(2), Duration::from_secs(20));
}

#[test]
fn init_containers_run_first_one_at_a_time() {
    let p = pod(json!({"spec": {"initContainers": [
        {"name": "i1", "image": "busybox"}, {"name": "i2", "image": "busybox"}]}}));
    let plan0 = run(&p, &[], true, ImageState::Present);
    assert_eq!(plan0.actions, vec![start("i1", true, 0)]);
    assert_eq!(plan0.waiting["app"].reason, "PodInitializing");
    let mut i1 = exited("i1", 0, 0, "2026-01-01T00:00:00Z");
    i1.init = true;
    let plan1 = run(&p, std::slice::from_ref(&i1), true, ImageState::Present);
    assert_eq!(plan1.actions, vec![start("i2", true, 0)]);
    let mut i2 = i1.clone();
    i2.name = "i2".into();
    i2.id = "i2-0".into();
    let plan2 = run(&p, &[i1, i2], true, ImageState::Present);
    assert_eq!(plan2.actions, vec![start("app", false, 0)]);
}

#[test]
fn deletion_stops_with_the_grace_period_then_deletes_the_pod() {
    let p = pod(
        json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z",
        "deletionGracePeriodSeconds": 3}}),
    );
    let plan1 = run(&p, &[running("app", 0)], true, ImageState::Present);
    assert_eq!(
        plan1.actions,
        vec![Action::StopContainer {
            id: "app-0".into(),
            grace: Duration::from_secs(3)
        }]
    );
    let plan2 = run(
        &p,
        &[exited("app", 0, 137, "2026-01-01T00:00:00Z")],
        true,
        ImageState::Present,
    );
    assert_eq!(
        plan2.actions,
        vec![
            Action::RemoveContainer { id: "app-0".into() },
            Action::RemoveSandbox,
            Action::DeletePod
        ]
    );
}

#[test]
fn old_attempts_are_removed_keeping_the_previous_one() {
    let p = run(
        &pod(json!({})),
        &[
            exited("app", 0, 1, "2026-01-01T00:00:00Z"),
            exited("app", 1, 1, "2026-01-01T00:00:00Z"),
            running("app", 2),
        ],
        true,
        ImageState::Present,
    );
    assert_eq!(
        p.actions,
        vec![Action::RemoveContainer { id: "app-0".into() }]
    );
}

#[test]
fn half_created_container_is_replaced_by_the_same_attempt() {
    let mut c = running("app", 0);
    c.state = ContainerState::Unknown;
    let p = run(&pod(json!({})), &[c], true, ImageState::Present);
    assert_eq!(
        p.actions,
        vec![
            Action::RemoveContainer { id: "app-0".into() },
            start("app", false, 0)
        ]
    );
}

/// Ephemeral containers start once the pod is initialized and never again, whatever the
/// pod's restart policy; a running one is left alone.
#[test]
fn ephemeral_containers_start_once_and_are_never_restarted() {
    let debug = json!({"ephemeralContainers": [{"name": "debugger", "image": "busybox",
        "targetContainerName": "app"}]});
    let p = run(
        &pod(json!({"spec": debug.clone()})),
        &[running("app", 0)],
        true,
        ImageState::Present,
    );
    assert_eq!(p.actions, vec![start("debugger", false, 0)]);
    let p = run(
        &pod(json!({"spec": debug.clone()})),
        &[running("app", 0), running("debugger", 0)],
        true,
        ImageState::Present,
    );
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    for code in [0, 1] {
        let p = run(
            &pod(json!({"spec": debug.clone()})),
            &[
                running("app", 0),
                exited("debugger", 0, code, "2026-01-01T00:00:00Z"),
            ],
            true,
            ImageState::Present,
        );
        assert!(p.actions.is_empty(), "exit {code}: {:?}", p.actions);
        assert!(p.waiting.is_empty());
    }
    // Not before the init containers are done.
    let init = json!({"initContainers": [{"name": "init", "image": "busybox"}],
        "ephemeralContainers": debug["ephemeralContainers"].clone()});
    let mut init_running = running("init", 0);
    init_running.init = true;
    let p = run(
        &pod(json!({"spec": init})),
        &[init_running],
        true,
        ImageState::Present,
    );
    assert!(p.actions.is_empty(), "{:?}", p.actions);
}
