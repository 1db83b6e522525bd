//! Table-driven tests of the ReplicaSet plan: given these pods, expect exactly these changes.

use super::plan::{plan, Action, Counts};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

const UID: &str = "rs-uid";

fn app(v: &str) -> BTreeMap<String, String> {
    [("app".to_string(), v.to_string())].into()
}

fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some(UID.into()),
            generation: Some(2),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: Some(min_ready),
            selector: LabelSelector {
                match_labels: Some(app("web")),
                ..Default::default()
            },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(app("web")),
                    ..Default::default()
                }),
                spec: Some(PodSpec::default()),
            }),
        }),
        status: Some(ReplicaSetStatus::default()),
    }
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("valid timestamp")
}

/// A pod: `owner` None = orphan; `ready` = seconds since epoch it became ready.
struct P {
    name: &'static str,
    owner: Option<&'static str>,
    label: &'static str,
    created: i64,
    node: bool,
    phase: &'static str,
    ready: Option<i64>,
    deleting: bool,
}

const BASE: P = P {
    name: "",
    owner: Some(UID),
    label: "web",
    created: 100,
    node: true,
    phase: "Running",
    ready: Some(100),
    deleting: false,
};

fn pod(p: &P) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(p.name.into()),
            namespace: Some("default".into()),
            labels: Some(app(p.label)),
            creation_timestamp: Some(Time(ts(p.created))),
            deletion_timestamp: p.deleting.then(|| Time(ts(500))),
            owner_references: p.owner.map(|uid| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "x".into(),
                    uid: uid.into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: p.node.then(|| "node".into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(p.phase.into()),
            conditions: p.ready.map(|t| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(t))),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    }
}

fn replica_actions(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| !matches!(a, Action::Status(_)))
        .cloned()
        .collect()
}

#[test]
fn replica_changes_per_observed_pods() {
    let d = |pod: &str| Action::Delete { pod: pod.into() };
    let cases: Vec<(&str, i32, Vec<P>, Vec<Action>)> = vec![
        (
            "no pods: create all in batches",
            3,
            vec![],
            vec![Action::Create { count: 3 }],
        ),
        (
            "one missing: create one",
            3,
            vec![P { name: "a", ..BASE }, P { name: "b", ..BASE }],
            vec![Action::Create { count: 1 }],
        ),
        (
            "exact: nothing",
            2,
            vec![P { name: "a", ..BASE }, P { name: "b", ..BASE }],
            vec![],
        ),
        (
            "terminating pods do not count",
            2,
            vec![
                P { name: "a", ..BASE },
                P {
                    name: "b",
                    deleting: true,
                    ..BASE
                },
            ],
            vec![Action::Create { count: 1 }],
        ),
        (
            "failed pods do not count",
            1,
            vec![P {
                name: "a",
                phase: "Failed",
                ready: None,
                ..BASE
            }],
            vec![Action::Create { count: 1 }],
        ),
        (
            "scale down deletes not-ready before ready",
            1,
            vec![
                P {
                    name: "ready",
                    ..BASE
                },
                P {
                    name: "unready",
                    ready: None,
                    ..BASE
                },
            ],
            vec![d("unready")],
        ),
        (
            "scale down deletes unscheduled first",
            1,
            vec![
                P {
                    name: "pending",
                    phase: "Pending",
                    ready: None,
                    ..BASE
                },
                P {
                    name: "unbound",
                    node: false,
                    phase: "Pending",
                    ready: None,
                    ..BASE
                },
            ],
            vec![d("unbound")],
        ),
        (
            "scale down deletes the newest among equals",
            1,
            vec![
                P {
                    name: "old",
                    created: 10,
                    ready: Some(100),
                    ..BASE
                },
                P {
                    name: "new",
                    created: 50,
                    ready: Some(100),
                    ..BASE
                },
            ],
            vec![d("new")],
        ),
        (
            "scale down deletes the most recently ready first",
            2,
            vec![
                P {
                    name: "a",
                    ready: Some(10),
                    ..BASE
                },
                P {
                    name: "b",
                    ready: Some(90),
                    ..BASE
                },
                P {
                    name: "c",
                    ready: Some(50),
                    ..BASE
                },
            ],
            vec![d("b")],
        ),
        (
            "adopts a matching orphan instead of creating",
            1,
            vec![P {
                name: "orphan",
                owner: None,
                ..BASE
            }],
            vec![Action::Adopt {
                pod: "orphan".into(),
            }],
        ),
        (
            "leaves pods of other controllers alone",
            1,
            vec![P {
                name: "theirs",
                owner: Some("other"),
                ..BASE
            }],
            vec![Action::Create { count: 1 }],
        ),
        (
            "ignores orphans that do not match",
            1,
            vec![P {
                name: "stranger",
                owner: None,
                label: "db",
                ..BASE
            }],
            vec![Action::Create { count: 1 }],
        ),
        (
            "releases an owned pod whose labels changed and replaces it",
            1,
            vec![P {
                name: "relabeled",
                label: "debug",
                ..BASE
            }],
            vec![
                Action::Release {
                    pod: "relabeled".into(),
                },
                Action::Create { count: 1 },
            ],
        ),
    ];
    for (what, replicas, pods, want) in cases {
        let pods: Vec<Pod> = pods.iter().map(pod).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let got = plan(&rs(replicas, 0), &refs, ts(1000));
        assert_eq!(replica_actions(&got.actions), want, "{what}");
    }
}

#[test]
fn status_counts_ready_and_available_after_min_ready_seconds() {
    let pods: Vec<Pod> = [
        P {
            name: "long-ready",
            ready: Some(900),
            ..BASE
        },
        P {
            name: "just-ready",
            ready: Some(995),
            ..BASE
        },
        P {
            name: "not-ready",
            ready: None,
            ..BASE
        },
    ]
    .iter()
    .map(pod)
    .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let got = plan(&rs(3, 10), &refs, ts(1000));
    let want = Counts {
        replicas: 3,
        fully_labeled_replicas: 3,
        ready_replicas: 2,
        available_replicas: 1,
        observed_generation: 2,
    };
    assert_eq!(got.actions, vec![Action::Status(want)]);
    assert_eq!(got.requeue_after, Some(std::time::Duration::from_secs(6)));
}

#[test]
fn running_twice_on_settled_state_changes_nothing() {
    let pods: Vec<Pod> = [P { name: "a", ..BASE }].iter().map(pod).collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let mut settled = rs(1, 0);
    settled.status = Some(ReplicaSetStatus {
        replicas: 1,
        fully_labeled_replicas: Some(1),
        ready_replicas: Some(1),
        available_replicas: Some(1),
        observed_generation: Some(2),
        ..Default::default()
    });
    assert_eq!(plan(&settled, &refs, ts(1000)).actions, vec![]);
}

#[test]
fn deleting_replicaset_neither_creates_nor_adopts() {
    let mut deleting = rs(3, 0);
    deleting.metadata.deletion_timestamp = Some(Time(ts(1)));
    let pods: Vec<Pod> = [P {
        name: "orphan",
        owner: None,
        ..BASE
    }]
    .iter()
    .map(pod)
    .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    assert_eq!(
        replica_actions(&plan(&deleting, &refs, ts(1000)).actions),
        vec![]
    );
}

/// A ReplicationController with `selector` (a plain map; None = unset) and 2 replicas.
fn rc(
    selector: Option<BTreeMap<String, String>>,
) -> k8s_openapi::api::core::v1::ReplicationController {
    use k8s_openapi::api::core::v1::{ReplicationController, ReplicationControllerSpec};
    let template = rs(2, 0).spec.and_then(|s| s.template);
    ReplicationController {
        metadata: rs(2, 0).metadata,
        spec: Some(ReplicationControllerSpec {
            replicas: Some(2),
            selector,
            template,
            ..Default::default()
        }),
        status: None,
    }
}

#[test]
fn a_replication_controller_is_planned_as_a_replicaset_with_its_map_selector() {
    use super::Replicated;
    let orphan = pod(&P {
        name: "orphan",
        owner: None,
        ..BASE
    });
    let other = pod(&P {
        name: "other",
        owner: None,
        label: "api",
        ..BASE
    });
    for (name, selector) in [
        ("selector set", Some(app("web"))),
        ("selector unset: the template's labels", None),
    ] {
        let view = rc(selector).view();
        let actions = plan(&view, &[&orphan, &other], ts(1000)).actions;
        assert_eq!(
            replica_actions(&actions),
            vec![
                Action::Adopt {
                    pod: "orphan".into()
                },
                Action::Create { count: 1 },
            ],
            "{name}"
        );
    }
}

#[test]
fn replication_controller_pods_are_owned_by_the_controller() {
    use super::Replicated;
    let view = rc(Some(app("web"))).view();
    let pod = super::pod_from_template(&view, "v1", "ReplicationController").expect("pod");
    let owner = &pod.metadata.owner_references.expect("owner")[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.uid.as_str()
        ),
        ("v1", "ReplicationController", UID)
    );
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
}
