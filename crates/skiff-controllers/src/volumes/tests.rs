//! Given these objects, expect exactly these writes.

use super::plan::*;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{json, Value};

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn local_path() -> StorageClass {
    default_storage_class()
}

fn immediate(name: &str) -> StorageClass {
    from(
        json!({"metadata": {"name": name}, "provisioner": PROVISIONER,
                "volumeBindingMode": "Immediate", "reclaimPolicy": "Retain"}),
    )
}

/// A claim `name` (uid `uid-<name>`) asking for `size`, RWO, with `class` when given.
fn claim(name: &str, size: &str, class: Option<&str>) -> PersistentVolumeClaim {
    let mut spec = json!({"accessModes": ["ReadWriteOnce"],
                          "resources": {"requests": {"storage": size}}});
    if let Some(class) = class {
        spec["storageClassName"] = json!(class);
    }
    from(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": spec,
        "status": {"phase": "Pending"},
    }))
}

fn bound_claim(name: &str, volume: &str) -> PersistentVolumeClaim {
    let mut c = serde_json::to_value(claim(name, "1Gi", Some(DEFAULT_CLASS))).unwrap();
    c["spec"]["volumeName"] = json!(volume);
    c["status"]["phase"] = json!("Bound");
    from(c)
}

/// A volume `name` of `size` and `class`, RWO, Available unless `claim` names its claim.
fn volume(name: &str, size: &str, class: &str, claim: Option<&str>) -> PersistentVolume {
    let mut v = json!({
        "metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": class, "persistentVolumeReclaimPolicy": "Retain",
                 "hostPath": {"path": format!("/srv/{name}")}},
        "status": {"phase": "Available"},
    });
    if let Some(c) = claim {
        v["spec"]["claimRef"] =
            json!({"namespace": "default", "name": c, "uid": format!("uid-{c}")});
        v["status"]["phase"] = json!("Bound");
    }
    from(v)
}

fn with<T: serde::Serialize + serde::de::DeserializeOwned>(t: T, f: impl FnOnce(&mut Value)) -> T {
    let mut v = serde_json::to_value(t).unwrap();
    f(&mut v);
    from(v)
}

fn pod_using(claim: &str, node: Option<&str>) -> Pod {
    from(json!({
        "metadata": {"name": "user", "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "c"}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]},
    }))
}

fn node(name: &str, dir: Option<&str>) -> Node {
    let mut n = json!({"metadata": {"name": name}});
    if let Some(d) = dir {
        n["metadata"]["annotations"] = json!({ANN_VOLUMES_DIR: d});
    }
    from(n)
}

#[derive(Default)]
struct World {
    classes: Vec<StorageClass>,
    claims: Vec<PersistentVolumeClaim>,
    volumes: Vec<PersistentVolume>,
    pods: Vec<Pod>,
    nodes: Vec<Node>,
}

impl World {
    fn plan(&self) -> Vec<Action> {
        let classes: Vec<_> = self.classes.iter().collect();
        let claims: Vec<_> = self.claims.iter().collect();
        let volumes: Vec<_> = self.volumes.iter().collect();
        let pods: Vec<_> = self.pods.iter().collect();
        let nodes: Vec<_> = self.nodes.iter().collect();
        plan(&Observed {
            classes: &classes,
            claims: &claims,
            volumes: &volumes,
            pods: &pods,
            nodes: &nodes,
        })
    }
}

fn key(name: &str) -> ClaimKey {
    ClaimKey {
        namespace: "default".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
    }
}

fn reasons(actions: &[Action]) -> Vec<&'static str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Report { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn bound_to(actions: &[Action]) -> Vec<(String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Bind { claim, volume, .. } => Some((claim.name.clone(), volume.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn quantities_parse_binary_and_decimal_suffixes() {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    for (q, bytes) in [
        ("1Gi", 1073741824),
        ("512Mi", 536870912),
        ("2G", 2_000_000_000),
        ("1500", 1500),
        ("1.5Ki", 1536),
        ("1e3", 1000),
    ] {
        assert_eq!(quantity_bytes(&Quantity(q.into())), Some(bytes), "{q}");
    }
    assert_eq!(quantity_bytes(&Quantity("lots".into())), None);
}

#[test]
fn a_cluster_without_storage_classes_gets_local_path_as_default() {
    let w = World::default();
    let actions = w.plan();
    let Some(Action::CreateClass(sc)) = actions.first() else {
        panic!("{actions:?}");
    };
    assert_eq!(sc.metadata.name.as_deref(), Some(DEFAULT_CLASS));
    assert_eq!(sc.provisioner, PROVISIONER);
    assert_eq!(
        sc.volume_binding_mode.as_deref(),
        Some("WaitForFirstConsumer")
    );
    assert_eq!(sc.reclaim_policy.as_deref(), Some("Delete"));
    let w = World {
        classes: vec![immediate("fast")],
        ..World::default()
    };
    assert!(w.plan().is_empty(), "an existing class is left alone");
}

#[test]
fn provisioning_waits_for_a_scheduled_consumer_and_a_published_directory() {
    struct Case {
        name: &'static str,
        pod: Option<Pod>,
        dir: Option<&'static str>,
        provisions_on: Option<&'static str>,
        reason: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "no pod uses the claim",
            pod: None,
            dir: Some("/data/volumes"),
            provisions_on: None,
            reason: Some("WaitForFirstConsumer"),
        },
        Case {
            name: "the pod is not scheduled yet",
            pod: Some(pod_using("data", None)),
            dir: Some("/data/volumes"),
            provisions_on: None,
            reason: Some("WaitForFirstConsumer"),
        },
        Case {
            name: "a pod of another claim",
            pod: Some(pod_using("other", Some("n1"))),
            dir: Some("/data/volumes"),
            provisions_on: None,
            reason: Some("WaitForFirstConsumer"),
        },
        Case {
            name: "the node has not said where its volumes go",
            pod: Some(pod_using("data", Some("n1"))),
            dir: None,
            provisions_on: None,
            reason: Some("ExternalProvisioning"),
        },
        Case {
            name: "scheduled consumer on a node with a directory",
            pod: Some(pod_using("data", Some("n1"))),
            dir: Some("/data/volumes"),
            provisions_on: Some("n1"),
            reason: None,
        },
    ];
    for case in cases {
        let w = World {
            classes: vec![local_path()],
            claims: vec![claim("data", "1Gi", Some(DEFAULT_CLASS))],
            pods: case.pod.into_iter().collect(),
            nodes: vec![node("n1", case.dir)],
            ..World::default()
        };
        let actions = w.plan();
        let provisioned: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Provision { node, .. } => Some(node.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            provisioned,
            Vec::from_iter(case.provisions_on),
            "{}",
            case.name
        );
        assert_eq!(
            reasons(&actions),
            Vec::from_iter(case.reason),
            "{}",
            case.name
        );
    }
}

#[test]
fn provisioned_volume_is_a_directory_on_the_consumers_node_prebound_to_the_claim() {
    let w = World {
        classes: vec![local_path()],
        claims: vec![claim("data", "2Gi", Some(DEFAULT_CLASS))],
        pods: vec![pod_using("data", Some("n1"))],
        nodes: vec![node("n1", Some("/var/lib/skiff/volumes/"))],
        ..World::default()
    };
    let actions = w.plan();
    let [Action::Provision { claim, volume, .. }] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(claim, &key("data"));
    let v = serde_json::to_value(volume).unwrap();
    assert_eq!(v["metadata"]["name"], "pvc-uid-data");
    assert_eq!(
        v["metadata"]["annotations"][ANN_PROVISIONED_BY],
        PROVISIONER
    );
    assert_eq!(
        v["spec"]["hostPath"],
        json!({"path": "/var/lib/skiff/volumes/pvc-uid-data", "type": "DirectoryOrCreate"})
    );
    assert_eq!(v["spec"]["capacity"]["storage"], "2Gi");
    assert_eq!(v["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(v["spec"]["storageClassName"], DEFAULT_CLASS);
    assert_eq!(v["spec"]["claimRef"]["uid"], "uid-data");
    assert_eq!(
        v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0],
        json!({"key": HOSTNAME_LABEL, "operator": "In", "values": ["n1"]})
    );
}

#[test]
fn a_claim_without_class_gets_the_default_written_and_provisioned_from_it() {
    let w = World {
        classes: vec![local_path(), immediate("fast")],
        claims: vec![claim("data", "1Gi", None)],
        pods: vec![pod_using("data", Some("n1"))],
        nodes: vec![node("n1", Some("/d"))],
        ..World::default()
    };
    let actions = w.plan();
    assert_eq!(
        actions[0],
        Action::SetClass {
            claim: key("data"),
            class: DEFAULT_CLASS.into()
        }
    );
    assert!(
        matches!(actions[1], Action::Provision { .. }),
        "{actions:?}"
    );
    // An explicit "" means no class: only class-less static volumes, never provisioning.
    let w = World {
        classes: vec![local_path()],
        claims: vec![claim("data", "1Gi", Some(""))],
        pods: vec![pod_using("data", Some("n1"))],
        nodes: vec![node("n1", Some("/d"))],
        ..World::default()
    };
    assert_eq!(reasons(&w.plan()), ["FailedBinding"]);
}

#[test]
fn a_volume_prebound_to_the_claim_is_bound_with_its_capacity() {
    let mut v = volume("pvc-uid-data", "1Gi", DEFAULT_CLASS, Some("data"));
    v = with(v, |v| v["status"]["phase"] = json!("Pending"));
    let w = World {
        classes: vec![local_path()],
        claims: vec![claim("data", "1Gi", Some(DEFAULT_CLASS))],
        volumes: vec![v],
        ..World::default()
    };
    let actions = w.plan();
    assert_eq!(
        actions,
        vec![
            Action::Bind {
                claim: key("data"),
                volume: "pvc-uid-data".into(),
                capacity: [(
                    "storage".to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into())
                )]
                .into(),
                access_modes: vec!["ReadWriteOnce".into()],
            },
            Action::VolumePhase {
                volume: "pvc-uid-data".into(),
                phase: "Available"
            },
        ]
    );
}

#[test]
fn static_binding_takes_the_smallest_volume_that_fits() {
    struct Case {
        name: &'static str,
        claim: PersistentVolumeClaim,
        volumes: Vec<PersistentVolume>,
        want: Option<&'static str>,
    }
    let rwx =
        |v: PersistentVolume| with(v, |v| v["spec"]["accessModes"] = json!(["ReadWriteMany"]));
    let cases = [
        Case {
            name: "smallest of those big enough",
            claim: claim("c", "1Gi", Some("manual")),
            volumes: vec![
                volume("big", "10Gi", "manual", None),
                volume("small", "500Mi", "manual", None),
                volume("fit", "2Gi", "manual", None),
            ],
            want: Some("fit"),
        },
        Case {
            name: "class must match",
            claim: claim("c", "1Gi", Some("manual")),
            volumes: vec![volume("other", "1Gi", "fast", None)],
            want: None,
        },
        Case {
            name: "access modes must be offered",
            claim: with(claim("c", "1Gi", Some("manual")), |c| {
                c["spec"]["accessModes"] = json!(["ReadWriteMany"])
            }),
            volumes: vec![
                volume("rwo", "1Gi", "manual", None),
                rwx(volume("rwx", "5Gi", "manual", None)),
            ],
            want: Some("rwx"),
        },
        Case {
            name: "a volume bound elsewhere is not free",
            claim: claim("c", "1Gi", Some("manual")),
            volumes: vec![volume("taken", "1Gi", "manual", Some("other"))],
            want: None,
        },
        Case {
            name: "the label selector narrows the choice",
            claim: with(claim("c", "1Gi", Some("manual")), |c| {
                c["spec"]["selector"] = json!({"matchLabels": {"disk": "ssd"}})
            }),
            volumes: vec![
                volume("plain", "1Gi", "manual", None),
                with(volume("ssd", "3Gi", "manual", None), |v| {
                    v["metadata"]["labels"] = json!({"disk": "ssd"})
                }),
            ],
            want: Some("ssd"),
        },
        Case {
            name: "volumeName asks for one volume",
            claim: with(claim("c", "1Gi", Some("manual")), |c| {
                c["spec"]["volumeName"] = json!("big")
            }),
            volumes: vec![
                volume("big", "10Gi", "manual", None),
                volume("fit", "1Gi", "manual", None),
            ],
            want: Some("big"),
        },
        Case {
            name: "class-less claim, class-less volume",
            claim: claim("c", "1Gi", Some("")),
            volumes: vec![volume("plain", "1Gi", "", None)],
            want: Some("plain"),
        },
    ];
    for case in cases {
        let w = World {
            claims: vec![case.claim],
            volumes: case.volumes,
            classes: vec![local_path()],
            ..World::default()
        };
        let binds = bound_to(&w.plan());
        let want: Vec<(String, String)> = case
            .want
            .map(|v| ("c".to_string(), v.to_string()))
            .into_iter()
            .collect();
        assert_eq!(binds, want, "{}", case.name);
    }
}

#[test]
fn two_claims_never_bind_the_same_volume_in_one_pass() {
    let w = World {
        classes: vec![immediate("manual")],
        claims: vec![
            claim("a", "1Gi", Some("manual")),
            claim("b", "1Gi", Some("manual")),
        ],
        volumes: vec![volume("one", "1Gi", "manual", None)],
        ..World::default()
    };
    let binds = bound_to(&w.plan());
    assert_eq!(binds.len(), 1, "{binds:?}");
}

#[test]
fn static_binding_to_a_wait_for_consumer_class_waits_for_the_pod() {
    let w = World {
        classes: vec![local_path()],
        claims: vec![claim("c", "1Gi", Some(DEFAULT_CLASS))],
        volumes: vec![volume("v", "1Gi", DEFAULT_CLASS, None)],
        ..World::default()
    };
    assert!(bound_to(&w.plan()).is_empty());
    let w = World {
        pods: vec![pod_using("c", Some("n1"))],
        ..w
    };
    assert_eq!(bound_to(&w.plan()), [("c".to_string(), "v".to_string())]);
}

#[test]
fn reclaim_follows_the_policy_once_the_claim_is_gone() {
    struct Case {
        name: &'static str,
        policy: &'static str,
        claims: Vec<PersistentVolumeClaim>,
        phase: &'static str,
        want: Vec<Action>,
    }
    let deleted = || Action::DeleteVolume {
        volume: "v".into(),
        claim: key("data"),
    };
    let cases = [
        Case {
            name: "claim gone, Delete",
            policy: "Delete",
            claims: vec![],
            phase: "Bound",
            want: vec![deleted()],
        },
        Case {
            name: "claim gone, Retain",
            policy: "Retain",
            claims: vec![],
            phase: "Bound",
            want: vec![Action::VolumePhase {
                volume: "v".into(),
                phase: "Released",
            }],
        },
        Case {
            name: "already released stays so",
            policy: "Retain",
            claims: vec![],
            phase: "Released",
            want: vec![],
        },
        Case {
            name: "a new claim of the same name is not the old one",
            policy: "Delete",
            claims: vec![with(claim("data", "1Gi", Some(DEFAULT_CLASS)), |c| {
                c["metadata"]["uid"] = json!("uid-new")
            })],
            phase: "Bound",
            want: vec![deleted()],
        },
        Case {
            name: "claim still there and bound",
            policy: "Delete",
            claims: vec![bound_claim("data", "v")],
            phase: "Bound",
            want: vec![],
        },
    ];
    for case in cases {
        let v = with(volume("v", "1Gi", DEFAULT_CLASS, Some("data")), |v| {
            v["spec"]["persistentVolumeReclaimPolicy"] = json!(case.policy);
            v["status"]["phase"] = json!(case.phase);
        });
        let w = World {
            classes: vec![local_path()],
            claims: case.claims,
            volumes: vec![v],
            ..World::default()
        };
        let actions: Vec<Action> = w
            .plan()
            .into_iter()
            .filter(|a| !matches!(a, Action::Report { .. } | Action::Provision { .. }))
            .collect();
        assert_eq!(actions, case.want, "{}", case.name);
    }
}

#[test]
fn bound_volumes_and_claims_are_left_alone_and_a_missing_volume_is_lost() {
    let w = World {
        classes: vec![local_path()],
        claims: vec![bound_claim("data", "v")],
        volumes: vec![volume("v", "1Gi", DEFAULT_CLASS, Some("data"))],
        ..World::default()
    };
    assert_eq!(w.plan(), vec![]);
    let w = World {
        volumes: vec![],
        ..w
    };
    assert_eq!(
        w.plan(),
        vec![Action::ClaimPhase {
            claim: key("data"),
            phase: "Lost"
        }]
    );
}

#[test]
fn a_new_static_volume_becomes_available() {
    let w = World {
        classes: vec![local_path()],
        volumes: vec![with(volume("v", "1Gi", "manual", None), |v| {
            v["status"]["phase"] = json!("Pending")
        })],
        ..World::default()
    };
    assert_eq!(
        w.plan(),
        vec![Action::VolumePhase {
            volume: "v".into(),
            phase: "Available"
        }]
    );
}
