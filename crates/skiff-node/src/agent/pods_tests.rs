//! Table tests of the pod loop's pure decisions: which containers are a pod's, which
//! survive a relist, and how a failed image pull backs off.

use super::*;
use crate::runtime::fake::minimal_spec;
use crate::runtime::{ContainerState, ExitInfo};

const UID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

fn status(id: &str, labels: &[(&str, &str)], state: ContainerState) -> ContainerStatus {
    let mut spec = minimal_spec(id);
    spec.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ContainerStatus {
        id: id.into(),
        state,
        pid: None,
        started_at: Some("2026-01-01T00:00:00Z".into()),
        spec: Some(spec),
    }
}

fn labels<'a>(uid: &'a str, name: &'a str, attempt: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        (LABEL_UID, uid),
        (LABEL_CONTAINER, name),
        (LABEL_ATTEMPT, attempt),
    ]
}

#[test]
fn container_ids_are_short_unique_per_attempt_and_name_their_pod() {
    let cases = [
        (UID, "app", 0, "0f1e2d3c4b5a-0-app"),
        (UID, "app", 12, "0f1e2d3c4b5a-12-app"),
        ("abc", "x", 1, "abc-1-x"),
    ];
    for (uid, name, attempt, want) in cases {
        let id = container_id(uid, name, attempt);
        assert_eq!(id, want);
        assert!(crate::runtime::validate_id(&id).is_ok(), "{id}");
        assert!(container_of(uid, &id), "{id} is {uid}'s");
    }
    let long = "n".repeat(80);
    assert_eq!(container_id(UID, &long, 3).len(), 64, "cut to runc's limit");
}

#[test]
fn an_exit_wakes_only_the_worker_of_its_pod() {
    let cases = [
        ("0f1e2d3c4b5a-0-app", true),
        ("0f1e2d3c4b5a-7-init-db", true),
        ("0f1e2d3c4b5b-0-app", false),
        ("0f1e2d3c4b5a0-app", false),
        ("0f1e2d3c4b5", false),
        ("", false),
    ];
    for (id, want) in cases {
        assert_eq!(container_of(UID, id), want, "{id}");
    }
    assert!(!container_of("", "-0-app"), "no uid owns nothing");
}

#[test]
fn a_pods_containers_are_those_its_labels_name_fully() {
    let exited = ContainerState::Exited(ExitInfo {
        exit_code: 1,
        reason: "Error".into(),
        finished_at: "2026-01-01T00:00:01Z".into(),
    });
    let mut init = labels(UID, "setup", "0");
    init.push((LABEL_INIT, "true"));
    init.push((LABEL_IMAGE_ID, "sha256:1"));
    let list = vec![
        status("a", &labels(UID, "app", "1"), ContainerState::Running),
        status("b", &init, exited.clone()),
        status(
            "other-pod",
            &labels("u2", "app", "0"),
            ContainerState::Running,
        ),
        status(
            "no-name",
            &[(LABEL_UID, UID), (LABEL_ATTEMPT, "0")],
            ContainerState::Running,
        ),
        status(
            "bad-attempt",
            &labels(UID, "app", "x"),
            ContainerState::Running,
        ),
        ContainerStatus {
            spec: None,
            ..status("no-spec", &[], ContainerState::Unknown)
        },
    ];
    let got = observed_of(list, UID);
    let summary: Vec<(&str, &str, u32, bool, Option<&str>)> = got
        .iter()
        .map(|o| {
            (
                o.id.as_str(),
                o.name.as_str(),
                o.attempt,
                o.init,
                o.image_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a", "app", 1, false, None),
            ("b", "setup", 0, true, Some("sha256:1")),
        ]
    );
    assert_eq!(got[1].state, exited);
    assert_eq!(got[0].started_at.as_deref(), Some("2026-01-01T00:00:00Z"));
}

#[test]
fn after_a_relist_only_containers_of_listed_pods_are_kept() {
    let known = vec![UID.to_string()];
    let cases = [
        (
            "listed pod",
            status("a", &labels(UID, "app", "0"), ContainerState::Running),
            true,
        ),
        (
            "pod gone while away",
            status("b", &labels("gone", "app", "0"), ContainerState::Running),
            false,
        ),
        (
            "no labels",
            status("c", &[], ContainerState::Running),
            false,
        ),
        (
            "no spec on disk",
            ContainerStatus {
                spec: None,
                ..status("d", &[], ContainerState::Unknown)
            },
            false,
        ),
    ];
    for (name, s, want) in cases {
        assert_eq!(belongs_to_known_pod(&s, &known), want, "{name}");
    }
}

#[test]
fn a_failed_pull_backs_off_doubling_from_ten_seconds() {
    let s = Duration::from_secs;
    let cases = [
        (1, ERR_IMAGE_PULL, s(10)),
        (2, ERR_IMAGE_PULL, s(20)),
        (3, ERR_IMAGE_PULL, s(40)),
        (6, ERR_IMAGE_PULL, s(300)),
        (40, ERR_IMAGE_PULL, s(300)),
        (1, "ErrImageNeverPull", s(10)),
        (9, "ErrImageNeverPull", s(10)),
        (3, "InvalidImageName", s(10)),
    ];
    for (failures, reason, want) in cases {
        assert_eq!(
            pull_backoff(failures, reason),
            want,
            "{failures} x {reason}"
        );
    }
}

#[test]
fn a_failed_pull_shows_err_image_pull_then_image_pull_back_off_then_is_tried_again() {
    let t0 = tokio::time::Instant::now();
    let ms = Duration::from_millis;
    let failed = |reason: &str, reported: bool| PullBackoff {
        failed: t0,
        until: t0 + Duration::from_secs(10),
        failures: 1,
        waiting: waiting(reason, "connection refused"),
        backoff_reported: reported,
    };
    type Want = (Option<(&'static str, &'static str)>, bool);
    let back_off_message = "Back-off pulling image \"busybox\": ErrImagePull: connection refused";
    let cases: [(&str, PullBackoff, Duration, Want); 6] = [
        (
            "just failed",
            failed(ERR_IMAGE_PULL, false),
            ms(500),
            (Some((ERR_IMAGE_PULL, "connection refused")), false),
        ),
        (
            "shown long enough",
            failed(ERR_IMAGE_PULL, false),
            ERR_IMAGE_PULL_SHOWN,
            (Some((IMAGE_PULL_BACK_OFF, back_off_message)), true),
        ),
        (
            "back-off already recorded",
            failed(ERR_IMAGE_PULL, true),
            ms(5_000),
            (Some((IMAGE_PULL_BACK_OFF, back_off_message)), false),
        ),
        (
            "back-off over",
            failed(ERR_IMAGE_PULL, true),
            ms(10_000),
            (None, false),
        ),
        (
            "never pulled: shown as is",
            failed("ErrImageNeverPull", false),
            ms(5_000),
            (Some(("ErrImageNeverPull", "connection refused")), false),
        ),
        (
            "never pulled: looked for again",
            failed("ErrImageNeverPull", false),
            ms(10_001),
            (None, false),
        ),
    ];
    for (name, b, after, (want, report)) in cases {
        let (got, reported) = image_state(&b, "busybox", t0 + after);
        let got = match &got {
            ImageState::Present => None,
            ImageState::Failed(w) => Some((w.reason.as_str(), w.message.as_deref().unwrap())),
        };
        assert_eq!(got, want, "{name}");
        assert_eq!(reported, report, "{name}");
    }
}

#[test]
fn a_pod_is_synced_again_at_its_earliest_deadline_or_only_when_woken() {
    let ms = Duration::from_millis;
    type Case = (&'static str, Vec<Option<Duration>>, Option<Duration>);
    let cases: [Case; 5] = [
        (
            "nothing due: no poll, only changes, exits and the resync",
            vec![None, None, None],
            None,
        ),
        (
            "a readiness probe every second",
            vec![None, Some(ms(1000)), None],
            Some(ms(1000)),
        ),
        (
            "a probe due before a restart back-off",
            vec![Some(ms(9000)), Some(ms(700)), None],
            Some(ms(700)),
        ),
        (
            "a token retry first",
            vec![Some(ms(9000)), Some(ms(700)), Some(ms(5))],
            Some(ms(5)),
        ),
        (
            "a probe overdue runs at once",
            vec![None, Some(Duration::ZERO), None],
            Some(Duration::ZERO),
        ),
    ];
    for (name, due, want) in cases {
        assert_eq!(next_sync(&due), want, "{name}");
    }
}

#[test]
fn the_pod_source_keeps_a_gone_pod_until_its_cleanup_and_never_revives_an_unknown_uid() {
    let pod = |uid: &str| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": uid}
        }))
        .unwrap()
    };
    let source = PodSource::default();
    source.apply(pod("a"));
    let mut seen = source.lock().get("a").unwrap().updates.subscribe();
    assert!(seen.borrow_and_update().is_some());
    assert!(source.gone("a"), "a known pod is marked gone");
    assert!(
        seen.has_changed().unwrap(),
        "a sync in progress sees the deletion"
    );
    assert!(seen.borrow_and_update().is_none());
    let entry = source.lock();
    let a = entry.get("a").unwrap();
    assert!(a.pod.is_none());
    assert_eq!(
        a.last.as_ref().and_then(|p| p.metadata.name.as_deref()),
        Some("web"),
        "the cleanup still knows its names"
    );
    drop(entry);
    assert!(
        !source.gone("b"),
        "an unknown pod is not queued for cleanup"
    );
    assert_eq!(source.uids(), vec!["a".to_string()]);
}
