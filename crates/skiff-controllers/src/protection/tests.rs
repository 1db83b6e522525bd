//! Table-driven tests of storage protection: given a claim (or volume) and what uses it,
//! expect exactly this change.

use super::plan::{plan_claim, plan_volume, Action, PVC_FINALIZER, PV_FINALIZER};
use k8s_openapi::api::core::v1::{
    EphemeralVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimVolumeSource, PersistentVolumeSpec, PersistentVolumeStatus, Pod, PodSpec,
    PodStatus, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

fn meta(ns: Option<&str>, name: &str, finalizer: Option<&str>, deleting: bool) -> ObjectMeta {
    ObjectMeta {
        namespace: ns.map(Into::into),
        name: Some(name.into()),
        uid: Some(format!("uid-{name}")),
        finalizers: finalizer.map(|f| vec![f.to_string()]),
        deletion_timestamp: deleting.then_some(Time(Timestamp::UNIX_EPOCH)),
        ..Default::default()
    }
}

fn claim(finalizer: bool, deleting: bool) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(
            Some("default"),
            "data",
            finalizer.then_some(PVC_FINALIZER),
            deleting,
        ),
        ..Default::default()
    }
}

/// A pod in `ns` mounting the claim `data` (or, `ephemeral`, a generic ephemeral volume
/// `data` of the pod `web`, whose claim is `web-data`), in `phase`.
fn pod(ns: &str, claim: &str, phase: &str) -> Pod {
    Pod {
        metadata: meta(Some(ns), "web", None, false),
        spec: Some(PodSpec {
            volumes: Some(vec![Volume {
                name: "vol".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.into(),
                    read_only: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

#[test]
fn a_claim_keeps_its_finalizer_while_a_running_pod_uses_it() {
    let running = pod("default", "data", "Running");
    let pending = pod("default", "data", "Pending");
    let succeeded = pod("default", "data", "Succeeded");
    let failed = pod("default", "data", "Failed");
    let elsewhere = pod("other", "data", "Running");
    let other_claim = pod("default", "logs", "Running");
    let terminating = Pod {
        metadata: ObjectMeta {
            deletion_timestamp: Some(Time(Timestamp::UNIX_EPOCH)),
            deletion_grace_period_seconds: Some(30),
            ..running.metadata.clone()
        },
        ..running.clone()
    };
    let force_deleted = Pod {
        metadata: ObjectMeta {
            deletion_grace_period_seconds: Some(0),
            ..terminating.metadata.clone()
        },
        ..running.clone()
    };
    let mut ephemeral = pod("default", "unused", "Running");
    ephemeral.metadata.name = Some("app".into());
    if let Some(v) = ephemeral.spec.as_mut().and_then(|s| s.volumes.as_mut()) {
        v[0] = Volume {
            name: "data".into(),
            ephemeral: Some(EphemeralVolumeSource::default()),
            ..Default::default()
        };
    }
    let mut ephemeral_claim = claim(true, true);
    ephemeral_claim.metadata.name = Some("app-data".into());
    let table: Vec<(&str, PersistentVolumeClaim, Vec<&Pod>, Option<Action>)> = vec![
        (
            "new claim: protected",
            claim(false, false),
            vec![],
            Some(Action::AddFinalizer),
        ),
        (
            "protected, live: nothing",
            claim(true, false),
            vec![&running],
            None,
        ),
        (
            "deleted, used by a running pod: kept",
            claim(true, true),
            vec![&running],
            None,
        ),
        (
            "deleted, used by a pending pod: kept",
            claim(true, true),
            vec![&pending],
            None,
        ),
        (
            "deleted, pod terminating with grace: kept",
            claim(true, true),
            vec![&terminating],
            None,
        ),
        (
            "deleted, pod force-deleted: released",
            claim(true, true),
            vec![&force_deleted],
            Some(Action::RemoveFinalizer),
        ),
        (
            "deleted, pods finished: released",
            claim(true, true),
            vec![&succeeded, &failed],
            Some(Action::RemoveFinalizer),
        ),
        (
            "deleted, only pods of another namespace or claim: released",
            claim(true, true),
            vec![&elsewhere, &other_claim],
            Some(Action::RemoveFinalizer),
        ),
        (
            "deleted, no pods: released",
            claim(true, true),
            vec![],
            Some(Action::RemoveFinalizer),
        ),
        (
            "deleted, finalizer already gone: nothing",
            claim(false, true),
            vec![],
            None,
        ),
        (
            "ephemeral claim of a running pod: kept",
            ephemeral_claim,
            vec![&ephemeral],
            None,
        ),
    ];
    for (name, c, pods, want) in table {
        assert_eq!(plan_claim(&c, &pods), want, "{name}");
    }
}

fn volume(finalizer: bool, deleting: bool, phase: &str) -> PersistentVolume {
    PersistentVolume {
        metadata: meta(None, "pv", finalizer.then_some(PV_FINALIZER), deleting),
        spec: Some(PersistentVolumeSpec {
            claim_ref: Some(ObjectReference {
                namespace: Some("default".into()),
                name: Some("data".into()),
                uid: Some("uid-data".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

#[test]
fn a_volume_keeps_its_finalizer_while_bound() {
    let bound_claim = claim(true, true);
    let mut namesake = claim(true, false);
    namesake.metadata.uid = Some("uid-new".into());
    let table: Vec<(
        &str,
        PersistentVolume,
        Vec<&PersistentVolumeClaim>,
        Option<Action>,
    )> = vec![
        (
            "new volume: protected",
            volume(false, false, "Available"),
            vec![],
            Some(Action::AddFinalizer),
        ),
        (
            "deleted while bound to a claim (even terminating): kept",
            volume(true, true, "Bound"),
            vec![&bound_claim],
            None,
        ),
        (
            "deleted, released: freed",
            volume(true, true, "Released"),
            vec![&bound_claim],
            Some(Action::RemoveFinalizer),
        ),
        (
            "deleted, available: freed",
            volume(true, true, "Available"),
            vec![],
            Some(Action::RemoveFinalizer),
        ),
        (
            "deleted, Bound but its claim is gone: freed",
            volume(true, true, "Bound"),
            vec![],
            Some(Action::RemoveFinalizer),
        ),
        (
            "deleted, Bound but the claim is a namesake: freed",
            volume(true, true, "Bound"),
            vec![&namesake],
            Some(Action::RemoveFinalizer),
        ),
        (
            "live and protected: nothing",
            volume(true, false, "Bound"),
            vec![&bound_claim],
            None,
        ),
    ];
    for (name, v, claims, want) in table {
        assert_eq!(plan_volume(&v, &claims), want, "{name}");
    }
}
