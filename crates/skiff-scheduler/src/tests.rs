//! Table tests of `filter`, `score` and `place`.

use crate::fit::{filter, place, unschedulable_message, NodeInfo, Unfit};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, Pod, PodSpec, ResourceRequirements, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

fn node(name: &str, cpu: &str, memory: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        ready: true,
        allocatable: [
            ("cpu".to_string(), q(cpu)),
            ("memory".to_string(), q(memory)),
            ("pods".to_string(), q("110")),
        ]
        .into(),
        ..NodeInfo::default()
    }
}

fn q(s: &str) -> i128 {
    skiff_apimachinery::quantity::Quantity::parse(s)
        .expect("quantity")
        .milli_value()
}

fn pod(cpu: &str, memory: &str) -> Pod {
    let requests: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), Quantity(cpu.into())),
        ("memory".to_string(), Quantity(memory.into())),
    ]
    .into();
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("default".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "rs".into(),
                uid: "rs-uid".into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    requests: Some(requests),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

fn with_spec(mut p: Pod, f: impl FnOnce(&mut PodSpec)) -> Pod {
    if let Some(s) = p.spec.as_mut() {
        f(s);
    }
    p
}

fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: Some(value.into()),
        effect: effect.into(),
        time_added: None,
    }
}

fn toleration(key: &str, op: &str, value: Option<&str>, effect: Option<&str>) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some(op.into()),
        value: value.map(Into::into),
        effect: effect.map(Into::into),
        toleration_seconds: None,
    }
}

fn affinity(op: &str, values: &[&str]) -> Affinity {
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "zone".into(),
                        operator: op.into(),
                        values: Some(values.iter().map(|v| v.to_string()).collect()),
                    }]),
                    match_fields: None,
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn host_port(port: i32) -> Vec<Container> {
    vec![Container {
        name: "c".into(),
        ports: Some(vec![ContainerPort {
            container_port: 80,
            host_port: Some(port),
            ..Default::default()
        }]),
        ..Default::default()
    }]
}

#[test]
fn filter_checks_resources_readiness_selectors_taints_and_ports() {
    let mut busy = node("n", "2", "4Gi");
    busy.requested = [("cpu".to_string(), q("1500m"))].into();
    let mut zoned = node("n", "2", "4Gi");
    zoned.labels = [("zone".to_string(), "a".to_string())].into();
    let mut tainted = node("n", "2", "4Gi");
    tainted.taints = vec![taint("gpu", "yes", "NoSchedule")];
    let mut soft_taint = node("n", "2", "4Gi");
    soft_taint.taints = vec![taint("gpu", "yes", "PreferNoSchedule")];
    let mut not_ready = node("n", "2", "4Gi");
    not_ready.ready = false;
    let mut cordoned = node("n", "2", "4Gi");
    cordoned.unschedulable = true;
    let mut port_taken = node("n", "2", "4Gi");
    port_taken
        .host_ports
        .insert(("TCP".into(), 8080, "0.0.0.0".into()));
    let mut full = node("n", "2", "4Gi");
    full.allocatable.insert("pods".into(), q("1"));
    full.pods = 1;

    let cases: Vec<(&str, Pod, NodeInfo, Result<(), Unfit>)> = vec![
        (
            "fits an empty node",
            pod("1", "1Gi"),
            node("n", "2", "4Gi"),
            Ok(()),
        ),
        (
            "exactly fits",
            pod("2", "4Gi"),
            node("n", "2", "4Gi"),
            Ok(()),
        ),
        (
            "too much cpu",
            pod("3", "1Gi"),
            node("n", "2", "4Gi"),
            Err(Unfit::Insufficient("cpu")),
        ),
        (
            "too much memory",
            pod("1", "5Gi"),
            node("n", "2", "4Gi"),
            Err(Unfit::Insufficient("memory")),
        ),
        (
            "bound pods count",
            pod("600m", "1Gi"),
            busy.clone(),
            Err(Unfit::Insufficient("cpu")),
        ),
        ("remaining cpu suffices", pod("500m", "1Gi"), busy, Ok(())),
        (
            "not ready",
            pod("1", "1Gi"),
            not_ready,
            Err(Unfit::NotReady),
        ),
        (
            "cordoned",
            pod("1", "1Gi"),
            cordoned.clone(),
            Err(Unfit::Unschedulable),
        ),
        (
            "cordon tolerated",
            with_spec(pod("1", "1Gi"), |s| {
                s.tolerations = Some(vec![toleration(
                    "node.kubernetes.io/unschedulable",
                    "Exists",
                    None,
                    None,
                )])
            }),
            cordoned,
            Ok(()),
        ),
        (
            "nodeSelector matches",
            with_spec(pod("1", "1Gi"), |s| {
                s.node_selector = Some([("zone".to_string(), "a".to_string())].into())
            }),
            zoned.clone(),
            Ok(()),
        ),
        (
            "nodeSelector mismatch",
            with_spec(pod("1", "1Gi"), |s| {
                s.node_selector = Some([("zone".to_string(), "b".to_string())].into())
            }),
            zoned.clone(),
            Err(Unfit::Affinity),
        ),
        (
            "required affinity In",
            with_spec(pod("1", "1Gi"), |s| {
                s.affinity = Some(affinity("In", &["a", "c"]))
            }),
            zoned.clone(),
            Ok(()),
        ),
        (
            "required affinity NotIn",
            with_spec(pod("1", "1Gi"), |s| {
                s.affinity = Some(affinity("NotIn", &["a"]))
            }),
            zoned,
            Err(Unfit::Affinity),
        ),
        (
            "untolerated taint",
            pod("1", "1Gi"),
            tainted.clone(),
            Err(Unfit::Taint),
        ),
        (
            "tolerated taint (Equal)",
            with_spec(pod("1", "1Gi"), |s| {
                s.tolerations = Some(vec![toleration(
                    "gpu",
                    "Equal",
                    Some("yes"),
                    Some("NoSchedule"),
                )])
            }),
            tainted.clone(),
            Ok(()),
        ),
        (
            "toleration with another value",
            with_spec(pod("1", "1Gi"), |s| {
                s.tolerations = Some(vec![toleration("gpu", "Equal", Some("no"), None)])
            }),
            tainted.clone(),
            Err(Unfit::Taint),
        ),
        (
            "tolerate everything",
            with_spec(pod("1", "1Gi"), |s| {
                s.tolerations = Some(vec![toleration("", "Exists", None, None)])
            }),
            tainted,
            Ok(()),
        ),
        (
            "PreferNoSchedule does not filter",
            pod("1", "1Gi"),
            soft_taint,
            Ok(()),
        ),
        (
            "host port free",
            with_spec(pod("1", "1Gi"), |s| s.containers = host_port(9090)),
            port_taken.clone(),
            Ok(()),
        ),
        (
            "host port taken",
            with_spec(pod("1", "1Gi"), |s| s.containers = host_port(8080)),
            port_taken,
            Err(Unfit::Ports),
        ),
        (
            "pod limit reached",
            pod("1", "1Gi"),
            full,
            Err(Unfit::TooManyPods),
        ),
    ];
    for (what, pod, node, want) in cases {
        assert_eq!(filter(&pod, &node), want, "{what}");
    }
}

#[test]
fn place_prefers_least_allocated() {
    let mut busy = node("a", "4", "8Gi");
    busy.requested = [
        ("cpu".to_string(), q("3")),
        ("memory".to_string(), q("6Gi")),
    ]
    .into();
    let idle = node("b", "4", "8Gi");
    let nodes = vec![busy, idle];
    assert_eq!(
        place(&pod("100m", "100Mi"), &nodes).map(|n| n.name.as_str()),
        Ok("b")
    );
}

#[test]
fn place_spreads_pods_of_one_owner() {
    let mut crowded = node("a", "4", "8Gi");
    crowded.owners.insert("rs-uid".into(), 3);
    let mut other = node("b", "4", "8Gi");
    // b is a little busier, but has none of this owner's pods.
    other.requested = [("cpu".to_string(), q("500m"))].into();
    let nodes = vec![crowded, other];
    assert_eq!(
        place(&pod("100m", "100Mi"), &nodes).map(|n| n.name.as_str()),
        Ok("b")
    );
}

#[test]
fn no_fit_explains_every_reason() {
    let mut cordoned = node("a", "4", "8Gi");
    cordoned.unschedulable = true;
    let nodes = vec![cordoned, node("b", "1", "8Gi"), node("c", "1", "8Gi")];
    let reasons = place(&pod("2", "1Gi"), &nodes).expect_err("nothing fits");
    assert_eq!(
        unschedulable_message(nodes.len(), &reasons),
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
    );
}

/// DaemonSet pods name their node as upstream's controller does: a required term with
/// `matchFields` on `metadata.name`, which only that node satisfies.
#[test]
fn a_match_fields_term_on_the_node_name_fits_only_that_node() {
    let pinned = |op: &str, values: &[&str]| {
        with_spec(pod("100m", "64Mi"), |s| {
            s.affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: None,
                            match_fields: Some(vec![NodeSelectorRequirement {
                                key: "metadata.name".into(),
                                operator: op.into(),
                                values: Some(values.iter().map(|v| v.to_string()).collect()),
                            }]),
                        }],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })
    };
    let (a, b) = (node("node-a", "2", "4Gi"), node("node-b", "2", "4Gi"));
    let p = pinned("In", &["node-b"]);
    assert_eq!(filter(&p, &a), Err(Unfit::Affinity));
    assert_eq!(filter(&p, &b), Ok(()));
    let placed = place(&p, &[a.clone(), b.clone()]).map(|n| n.name.clone());
    assert_eq!(placed, Ok("node-b".to_string()));
    let not_a = pinned("NotIn", &["node-a"]);
    assert_eq!(filter(&not_a, &a), Err(Unfit::Affinity));
    assert_eq!(filter(&not_a, &b), Ok(()));
    // Only the node name is a selectable field.
    let mut other = pinned("In", &["node-a"]);
    if let Some(t) = other
        .spec
        .as_mut()
        .and_then(|s| s.affinity.as_mut())
        .and_then(|a| a.node_affinity.as_mut())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_mut()
        })
    {
        if let Some(f) = t.node_selector_terms[0].match_fields.as_mut() {
            f[0].key = "metadata.uid".into();
        }
    }
    assert_eq!(filter(&other, &a), Err(Unfit::Affinity));
}

#[test]
fn unschedulable_pods_back_off_as_upstreams_scheduling_queue() {
    let secs: Vec<u64> = (0..6)
        .map(|attempts| super::POD_BACKOFF.step(attempts).as_secs())
        .collect();
    assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
}
