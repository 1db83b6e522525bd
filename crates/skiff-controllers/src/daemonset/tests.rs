//! Table tests of the DaemonSet plan, after upstream's `daemon_controller_test.go`,
//! `update_test.go` and `util/daemonset_util_test.go`: single passes ("given these objects,
//! expect these writes"), and rollouts run on a small in-memory cluster that applies the
//! writes and plays the scheduler (binds pods to the node of their affinity) and the kubelet.

use super::node::{
    add_daemon_tolerations, node_should_run, pin_to_node, target_node, Fit, NODE_NAME_FIELD,
};
use super::plan::{
    is_pod_updated, new_pod, plan, revision_data, scaled_value, update_counts, Action, Error,
    FailedBackoff, Observed, Plan, Why, FAILED_BACKOFF_INITIAL, REVISION_HASH_LABEL,
    TEMPLATE_GENERATION_ANNOTATION, TEMPLATE_GENERATION_LABEL,
};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, DaemonSetSpec, DaemonSetStatus, DaemonSetUpdateStrategy,
    RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, NodeSpec, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec, Taint,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

const UID: &str = "ds-uid";

fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("valid timestamp")
}

/// `foo` in `default`, pods labelled `name=simple-daemon`, image `foo/bar`, RollingUpdate
/// with the API's defaults (maxUnavailable 1, maxSurge 0).
fn ds() -> DaemonSet {
    DaemonSet {
        metadata: ObjectMeta {
            name: Some("foo".into()),
            namespace: Some("default".into()),
            uid: Some(UID.into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(l(&[("name", "simple-daemon")])),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(l(&[("name", "simple-daemon")])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "c".into(),
                        image: Some("foo/bar".into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(1)),
                    max_surge: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: Some(10),
            ..DaemonSetSpec::default()
        }),
        status: None,
    }
}

fn spec_mut(ds: &mut DaemonSet) -> &mut DaemonSetSpec {
    ds.spec.as_mut().expect("test daemon sets have a spec")
}

fn pod_spec_mut(ds: &mut DaemonSet) -> &mut PodSpec {
    spec_mut(ds)
        .template
        .spec
        .as_mut()
        .expect("test templates have a spec")
}

fn with_image(mut d: DaemonSet, image: &str) -> DaemonSet {
    pod_spec_mut(&mut d).containers[0].image = Some(image.into());
    d.metadata.generation = d.metadata.generation.map(|g| g + 1);
    d
}

fn strategy(mut d: DaemonSet, unavailable: IntOrString, surge: IntOrString) -> DaemonSet {
    spec_mut(&mut d).update_strategy = Some(DaemonSetUpdateStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDaemonSet {
            max_unavailable: Some(unavailable),
            max_surge: Some(surge),
        }),
    });
    d
}

fn on_delete(mut d: DaemonSet) -> DaemonSet {
    spec_mut(&mut d).update_strategy = Some(DaemonSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    d
}

fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(l(&[("kubernetes.io/hostname", name)])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: None,
    }
}

fn labelled(mut n: Node, pairs: &[(&str, &str)]) -> Node {
    n.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(l(pairs));
    n
}

fn tainted(mut n: Node, key: &str, value: &str, effect: &str) -> Node {
    n.spec
        .get_or_insert_with(NodeSpec::default)
        .taints
        .get_or_insert_with(Vec::new)
        .push(Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            time_added: None,
        });
    n
}

fn nodes(n: usize) -> Vec<Node> {
    (0..n).map(|i| node(&format!("node-{i}"))).collect()
}

fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
    Toleration {
        key: (!key.is_empty()).then(|| key.into()),
        operator: Some(op.into()),
        value: (!value.is_empty()).then(|| value.into()),
        effect: (!effect.is_empty()).then(|| effect.into()),
        toleration_seconds: None,
    }
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name: "foo".into(),
        uid: UID.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A bound, running daemon pod of `foo` on `node`, labelled with `hash`.
fn daemon_pod(name: &str, node: &str, hash: &str, created: i64) -> Pod {
    let mut labels = l(&[("name", "simple-daemon")]);
    if !hash.is_empty() {
        labels.insert(REVISION_HASH_LABEL.into(), hash.into());
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("{name}-uid")),
            labels: Some(labels),
            owner_references: Some(vec![owner()]),
            creation_timestamp: Some(Time(ts(created))),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..PodStatus::default()
        }),
    }
}

fn ready(mut p: Pod, since: i64) -> Pod {
    let status = p.status.get_or_insert_with(PodStatus::default);
    status.conditions = Some(vec![PodCondition {
        type_: "Ready".into(),
        status: "True".into(),
        last_transition_time: Some(Time(ts(since))),
        ..PodCondition::default()
    }]);
    p
}

fn failed(mut p: Pod) -> Pod {
    p.status.get_or_insert_with(PodStatus::default).phase = Some("Failed".into());
    p
}

fn terminating(mut p: Pod) -> Pod {
    p.metadata.deletion_timestamp = Some(Time(ts(1)));
    p
}

/// The hash the plan gives `d`'s current template (from a pass over an empty world).
fn hash_of(d: &DaemonSet) -> String {
    let p = once(d, &[], &[], &[]);
    p.actions
        .iter()
        .find_map(|a| match a {
            Action::CreateRevision(r) => r
                .metadata
                .labels
                .as_ref()?
                .get(REVISION_HASH_LABEL)
                .cloned(),
            _ => None,
        })
        .expect("a first pass records the template")
}

fn once(d: &DaemonSet, nodes: &[Node], pods: &[Pod], revisions: &[ControllerRevision]) -> Plan {
    let nodes: Vec<&Node> = nodes.iter().collect();
    let pods: Vec<&Pod> = pods.iter().collect();
    let revisions: Vec<&ControllerRevision> = revisions.iter().collect();
    plan(
        &Observed {
            ds: d,
            nodes: &nodes,
            pods: &pods,
            revisions: &revisions,
            now: ts(1000),
            expectations_met: true,
        },
        &mut FailedBackoff::default(),
    )
}

/// The nodes pods are created for, sorted.
fn created_on(p: &Plan) -> Vec<String> {
    let mut v: Vec<String> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreatePod { node, .. } => Some(node.clone()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn deleted(p: &Plan) -> Vec<String> {
    let mut v: Vec<String> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeletePod { pod, .. } => Some(pod.clone()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn events(p: &Plan) -> Vec<&'static str> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Event { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn status(p: &Plan) -> Option<&DaemonSetStatus> {
    p.actions.iter().find_map(|a| match a {
        Action::Status(s) => Some(s.as_ref()),
        _ => None,
    })
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A small cluster: applies the plan's writes, binds pods like the scheduler, and marks
/// them ready like the kubelet when asked.
struct World {
    ds: DaemonSet,
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    revisions: Vec<ControllerRevision>,
    clock: i64,
    seq: u32,
    backoff: FailedBackoff,
}

impl World {
    fn new(ds: DaemonSet, nodes: Vec<Node>) -> World {
        World {
            ds,
            nodes,
            pods: Vec::new(),
            revisions: Vec::new(),
            clock: 100,
            seq: 0,
            backoff: FailedBackoff::default(),
        }
    }

    fn pass(&mut self) -> Plan {
        self.clock += 1;
        let nodes: Vec<&Node> = self.nodes.iter().collect();
        let pods: Vec<&Pod> = self.pods.iter().collect();
        let revisions: Vec<&ControllerRevision> = self.revisions.iter().collect();
        let p = plan(
            &Observed {
                ds: &self.ds,
                nodes: &nodes,
                pods: &pods,
                revisions: &revisions,
                now: ts(self.clock),
                expectations_met: true,
            },
            &mut self.backoff,
        );
        for a in p.actions.clone() {
            self.apply(a);
        }
        self.schedule();
        p
    }

    fn apply(&mut self, a: Action) {
        match a {
            Action::CreateRevision(mut r) => {
                r.metadata.creation_timestamp = Some(Time(ts(self.clock)));
                self.revisions.push(*r);
            }
            Action::SetRevisionNumber { name, revision } => {
                for r in &mut self.revisions {
                    if r.metadata.name.as_deref() == Some(&name) {
                        r.revision = revision;
                    }
                }
            }
            Action::DeleteRevision { name } => self
                .revisions
                .retain(|r| r.metadata.name.as_deref() != Some(&name)),
            Action::CreatePod { mut pod, .. } => {
                self.seq += 1;
                self.clock += 1;
                pod.metadata.name = Some(format!("foo-{}", self.seq));
                pod.metadata.uid = Some(format!("pod-{}", self.seq));
                pod.metadata.creation_timestamp = Some(Time(ts(self.clock)));
                self.pods.push(*pod);
            }
            Action::DeletePod { pod, .. } => self
                .pods
                .retain(|p| p.metadata.name.as_deref() != Some(&pod)),
            Action::Status(s) => self.ds.status = Some(*s),
            _ => {}
        }
    }

    /// The scheduler: binds every pending pod to the node its affinity names.
    fn schedule(&mut self) {
        for p in &mut self.pods {
            let target = target_node(p).map(str::to_string);
            if let (Some(spec), Some(node)) = (p.spec.as_mut(), target) {
                spec.node_name = Some(node);
            }
        }
    }

    /// The kubelet: every pod becomes Running and Ready now.
    fn ready_all(&mut self) {
        let now = self.clock;
        for p in &mut self.pods {
            if p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_none()
            {
                *p = ready(p.clone(), now);
                p.status.get_or_insert_with(PodStatus::default).phase = Some("Running".into());
            }
        }
    }

    fn hashes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .pods
            .iter()
            .filter_map(|p| {
                p.metadata
                    .labels
                    .as_ref()?
                    .get(REVISION_HASH_LABEL)
                    .cloned()
            })
            .collect();
        v.sort();
        v
    }

    fn update(&mut self, f: impl FnOnce(DaemonSet) -> DaemonSet) {
        self.ds = f(self.ds.clone());
    }
}

/// (creates, deletes) of a pass, as upstream's `syncAndValidateDaemonSets`.
fn counts(p: &Plan) -> (usize, usize) {
    (created_on(p).len(), deleted(p).len())
}

// ---- Placement -------------------------------------------------------------------------

#[test]
fn a_pod_is_created_for_every_node() {
    let p = once(&ds(), &nodes(5), &[], &[]);
    assert_eq!(
        created_on(&p),
        names(&["node-0", "node-1", "node-2", "node-3", "node-4"])
    );
}

#[test]
fn pods_are_pinned_by_affinity_on_the_node_name_for_the_scheduler() {
    let p = once(&ds(), &nodes(1), &[], &[]);
    let pod = p
        .actions
        .iter()
        .find_map(|a| match a {
            Action::CreatePod { pod, .. } => Some(pod),
            _ => None,
        })
        .expect("a create");
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.node_name, None, "the scheduler binds it");
    let terms = &spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("required node affinity")
        .node_selector_terms;
    assert_eq!(
        terms,
        &vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: NODE_NAME_FIELD.into(),
                operator: "In".into(),
                values: Some(vec!["node-0".into()]),
            }]),
        }]
    );
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("foo-"));
    assert_eq!(pod.metadata.owner_references, Some(vec![owner()]));
    let labels = pod.metadata.labels.as_ref().expect("labels");
    assert_eq!(
        labels.get("name").map(String::as_str),
        Some("simple-daemon")
    );
    assert_eq!(
        labels.get(TEMPLATE_GENERATION_LABEL).map(String::as_str),
        Some("1")
    );
    assert!(labels.contains_key(REVISION_HASH_LABEL));
}

#[test]
fn no_nodes_means_no_pods() {
    let p = once(&ds(), &[], &[], &[]);
    assert_eq!(counts(&p), (0, 0));
    let s = status(&p).expect("status");
    assert_eq!(s.desired_number_scheduled, 0);
}

#[test]
fn existing_pods_are_kept_missing_ones_created_and_extra_ones_deleted() {
    // Upstream TestDealsWithExistingPods: nodes with 0, 1, 2 and 5 pods.
    let hash = hash_of(&ds());
    let mut pods = vec![daemon_pod("a1", "node-1", &hash, 1)];
    pods.extend((0..2).map(|i| daemon_pod(&format!("b{i}"), "node-2", &hash, 10 + i)));
    pods.extend((0..5).map(|i| daemon_pod(&format!("c{i}"), "node-3", &hash, 20 + i)));
    let p = once(&ds(), &nodes(4), &pods, &[]);
    assert_eq!(created_on(&p), names(&["node-0"]));
    // The oldest stays on each node.
    assert_eq!(deleted(&p), names(&["b1", "c1", "c2", "c3", "c4"]));
}

#[test]
fn node_selector_limits_pods_to_matching_nodes() {
    let mut d = ds();
    pod_spec_mut(&mut d).node_selector = Some(l(&[("color", "blue")]));
    let all = vec![
        labelled(node("node-0"), &[("color", "blue")]),
        labelled(node("node-1"), &[("color", "red")]),
        node("node-2"),
        labelled(node("node-3"), &[("color", "blue")]),
    ];
    let p = once(&d, &all, &[], &[]);
    assert_eq!(created_on(&p), names(&["node-0", "node-3"]));
    assert_eq!(status(&p).map(|s| s.desired_number_scheduled), Some(2));
}

#[test]
fn pods_on_nodes_the_selector_no_longer_matches_are_deleted() {
    let mut d = ds();
    pod_spec_mut(&mut d).node_selector = Some(l(&[("color", "blue")]));
    let hash = hash_of(&d);
    let all = vec![
        labelled(node("node-0"), &[("color", "blue")]),
        node("node-1"),
    ];
    let pods = vec![
        daemon_pod("keep", "node-0", &hash, 1),
        daemon_pod("gone", "node-1", &hash, 2),
    ];
    let p = once(&d, &all, &pods, &[]);
    assert_eq!(deleted(&p), names(&["gone"]));
    assert!(p.actions.contains(&Action::DeletePod {
        pod: "gone".into(),
        why: Why::NodeIneligible
    }));
    let s = status(&p).expect("status");
    assert_eq!((s.desired_number_scheduled, s.number_misscheduled), (1, 1));
}

#[test]
fn a_node_name_in_the_template_runs_the_pod_there_only() {
    let mut d = ds();
    pod_spec_mut(&mut d).node_name = Some("node-1".into());
    assert_eq!(
        created_on(&once(&d, &nodes(3), &[], &[])),
        names(&["node-1"])
    );
    pod_spec_mut(&mut d).node_name = Some("elsewhere".into());
    assert_eq!(counts(&once(&d, &nodes(3), &[], &[])), (0, 0));
}

#[test]
fn required_node_affinity_selects_the_nodes() {
    let mut d = ds();
    pod_spec_mut(&mut d).affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "color".into(),
                        operator: "In".into(),
                        values: Some(vec!["blue".into()]),
                    }]),
                    match_fields: None,
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    });
    let all = vec![
        labelled(node("node-0"), &[("color", "blue")]),
        labelled(node("node-1"), &[("color", "red")]),
    ];
    let p = once(&d, &all, &[], &[]);
    assert_eq!(created_on(&p), names(&["node-0"]));
    // The created pod's affinity names the node alone (upstream replaces the terms).
    let pod = p
        .actions
        .iter()
        .find_map(|a| match a {
            Action::CreatePod { pod, .. } => Some(pod),
            _ => None,
        })
        .expect("create");
    assert_eq!(target_node(pod), Some("node-0"));
}

#[test]
fn an_empty_selector_is_refused_with_an_event() {
    let mut d = ds();
    spec_mut(&mut d).selector = LabelSelector::default();
    let p = once(&d, &nodes(2), &[], &[]);
    assert_eq!(events(&p), ["SelectingAll"]);
    assert_eq!(counts(&p), (0, 0));
    assert!(status(&p).is_none());
}

#[test]
fn a_daemon_set_being_deleted_is_left_alone() {
    let mut d = ds();
    d.metadata.deletion_timestamp = Some(Time(ts(5)));
    assert!(once(&d, &nodes(2), &[], &[]).actions.is_empty());
}

#[test]
fn orphans_matching_the_selector_are_adopted_and_strays_released() {
    let hash = hash_of(&ds());
    let mut orphan = daemon_pod("orphan", "node-0", &hash, 1);
    orphan.metadata.owner_references = None;
    let mut stray = daemon_pod("stray", "node-1", &hash, 2);
    stray.metadata.labels = Some(l(&[("name", "other")]));
    let p = once(&ds(), &nodes(2), &[orphan, stray], &[]);
    assert!(p.actions.contains(&Action::AdoptPod {
        pod: "orphan".into()
    }));
    assert!(p.actions.contains(&Action::ReleasePod {
        pod: "stray".into()
    }));
    // The adopted pod serves node-0; node-1 gets a pod of its own.
    assert_eq!(created_on(&p), names(&["node-1"]));
}

#[test]
fn a_pod_being_deleted_holds_its_node_until_it_is_gone() {
    // Upstream TestDaemonSetRespectsTermination.
    let hash = hash_of(&ds());
    let p = once(
        &ds(),
        &nodes(1),
        &[terminating(daemon_pod("old", "node-0", &hash, 1))],
        &[],
    );
    assert_eq!(counts(&p), (0, 0));
}

#[test]
fn an_unbound_pod_for_a_node_that_is_gone_is_deleted() {
    let hash = hash_of(&ds());
    let mut pending = daemon_pod("pending", "", &hash, 1);
    if let Some(s) = pending.spec.as_mut() {
        s.node_name = None;
        s.affinity = Some(pin_to_node(None, "node-gone"));
    }
    let bound = daemon_pod("bound", "node-gone-too", &hash, 2);
    let p = once(&ds(), &nodes(1), &[pending, bound], &[]);
    assert_eq!(deleted(&p), names(&["pending"]));
    assert_eq!(created_on(&p), names(&["node-0"]));
}

// ---- Taints and tolerations --------------------------------------------------------------

#[test]
fn an_untolerated_no_schedule_taint_keeps_new_pods_off_but_running_ones_on() {
    // Upstream TestTaintedNodeDaemonDoesNotLaunchIntolerantPod and
    // TestNoScheduleTaintedDoesntEvicitRunningIntolerantPod.
    let hash = hash_of(&ds());
    let all = vec![
        tainted(node("node-0"), "dedicated", "x", "NoSchedule"),
        tainted(node("node-1"), "dedicated", "x", "NoSchedule"),
    ];
    let p = once(
        &ds(),
        &all,
        &[daemon_pod("running", "node-1", &hash, 1)],
        &[],
    );
    assert_eq!(counts(&p), (0, 0));
    let s = status(&p).expect("status");
    assert_eq!((s.desired_number_scheduled, s.number_misscheduled), (0, 1));
}

#[test]
fn an_untolerated_no_execute_taint_evicts_running_pods() {
    let hash = hash_of(&ds());
    let all = vec![tainted(node("node-0"), "dedicated", "x", "NoExecute")];
    let p = once(
        &ds(),
        &all,
        &[daemon_pod("running", "node-0", &hash, 1)],
        &[],
    );
    assert_eq!(deleted(&p), names(&["running"]));
}

#[test]
fn a_tolerated_taint_gets_a_pod() {
    let mut d = ds();
    pod_spec_mut(&mut d).tolerations =
        Some(vec![toleration("dedicated", "Equal", "x", "NoSchedule")]);
    let all = vec![
        tainted(node("node-0"), "dedicated", "x", "NoSchedule"),
        tainted(node("node-1"), "dedicated", "y", "NoSchedule"),
    ];
    assert_eq!(created_on(&once(&d, &all, &[], &[])), names(&["node-0"]));
}

#[test]
fn node_lifecycle_taints_are_tolerated_by_every_daemon_pod() {
    // Upstream TestNotReadyNodeDaemonLaunchesPod, TestUnreachableTaintedNodeDaemonLaunchesPod,
    // TestTaintPressureNodeDaemonLaunchesPod and the unschedulable (cordoned) node.
    let all = vec![
        tainted(
            node("not-ready"),
            "node.kubernetes.io/not-ready",
            "",
            "NoExecute",
        ),
        tainted(
            node("unreachable"),
            "node.kubernetes.io/unreachable",
            "",
            "NoExecute",
        ),
        tainted(
            node("disk"),
            "node.kubernetes.io/disk-pressure",
            "",
            "NoSchedule",
        ),
        tainted(
            node("memory"),
            "node.kubernetes.io/memory-pressure",
            "",
            "NoSchedule",
        ),
        tainted(
            node("pid"),
            "node.kubernetes.io/pid-pressure",
            "",
            "NoSchedule",
        ),
        tainted(
            node("cordoned"),
            "node.kubernetes.io/unschedulable",
            "",
            "NoSchedule",
        ),
    ];
    assert_eq!(created_on(&once(&ds(), &all, &[], &[])).len(), 6);
}

#[test]
fn network_unavailable_is_tolerated_only_by_host_network_pods() {
    // Upstream TestNetworkUnavailableNodeDaemonLaunchesPod.
    let all = vec![tainted(
        node("node-0"),
        "node.kubernetes.io/network-unavailable",
        "",
        "NoSchedule",
    )];
    assert_eq!(counts(&once(&ds(), &all, &[], &[])), (0, 0));
    let mut d = ds();
    pod_spec_mut(&mut d).host_network = Some(true);
    assert_eq!(created_on(&once(&d, &all, &[], &[])), names(&["node-0"]));
}

#[test]
fn daemon_tolerations_replace_a_users_of_the_same_key_and_effect() {
    let mut spec = PodSpec {
        tolerations: Some(vec![
            Toleration {
                toleration_seconds: Some(30),
                ..toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute")
            },
            toleration("mine", "Exists", "", ""),
        ]),
        ..PodSpec::default()
    };
    add_daemon_tolerations(&mut spec);
    let t = spec.tolerations.expect("tolerations");
    assert_eq!(t.len(), 7, "{t:?}");
    assert_eq!(
        t[0],
        toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute")
    );
    assert!(!t
        .iter()
        .any(|t| t.key.as_deref() == Some("node.kubernetes.io/network-unavailable")));
}

#[test]
fn node_should_run_follows_name_selector_affinity_and_taints() {
    // Upstream TestNodeShouldRunDaemonPod, the cases that do not involve resources (which
    // the scheduler checks when it binds).
    let run = Fit {
        should_run: true,
        should_continue_running: true,
    };
    let no = Fit {
        should_run: false,
        should_continue_running: false,
    };
    let keep = Fit {
        should_run: false,
        should_continue_running: true,
    };
    let mut selected = ds();
    pod_spec_mut(&mut selected).node_selector = Some(l(&[("type", "production")]));
    let mut named = ds();
    pod_spec_mut(&mut named).node_name = Some("other".into());
    let mut field_affinity = ds();
    pod_spec_mut(&mut field_affinity).affinity = Some(pin_to_node(None, "node-0"));
    let mut gt = ds();
    pod_spec_mut(&mut gt).affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "cores".into(),
                        operator: "Gt".into(),
                        values: Some(vec!["4".into()]),
                    }]),
                    match_fields: None,
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    });
    let cases: Vec<(&str, DaemonSet, Node, Fit)> = vec![
        ("plain node", ds(), node("node-0"), run),
        ("selector mismatch", selected.clone(), node("node-0"), no),
        (
            "selector match",
            selected,
            labelled(node("node-0"), &[("type", "production")]),
            run,
        ),
        ("other node name", named, node("node-0"), no),
        (
            "field affinity on this node",
            field_affinity.clone(),
            node("node-0"),
            run,
        ),
        (
            "field affinity on another",
            field_affinity,
            node("node-1"),
            no,
        ),
        (
            "Gt met",
            gt.clone(),
            labelled(node("node-0"), &[("cores", "8")]),
            run,
        ),
        (
            "Gt not met",
            gt.clone(),
            labelled(node("node-0"), &[("cores", "2")]),
            no,
        ),
        (
            "Gt not a number",
            gt,
            labelled(node("node-0"), &[("cores", "x")]),
            no,
        ),
        (
            "NoSchedule",
            ds(),
            tainted(node("node-0"), "a", "b", "NoSchedule"),
            keep,
        ),
        (
            "NoExecute",
            ds(),
            tainted(node("node-0"), "a", "b", "NoExecute"),
            no,
        ),
        (
            "PreferNoSchedule",
            ds(),
            tainted(node("node-0"), "a", "b", "PreferNoSchedule"),
            run,
        ),
    ];
    for (name, d, n, want) in cases {
        assert_eq!(node_should_run(&n, &d), want, "{name}");
    }
}

// ---- Failed pods ----------------------------------------------------------------------

#[test]
fn failed_pods_are_deleted_with_an_event_then_backed_off() {
    // Upstream TestDaemonKillFailedPods and TestDaemonKillFailedPodsBackoff.
    let hash = hash_of(&ds());
    let pods = [failed(daemon_pod("bad", "node-0", &hash, 1))];
    let nodes_ = nodes(1);
    let (np, pp): (Vec<&Node>, Vec<&Pod>) = (nodes_.iter().collect(), pods.iter().collect());
    let d = ds();
    let mut backoff = FailedBackoff::default();
    let at = |now: i64, backoff: &mut FailedBackoff| {
        plan(
            &Observed {
                ds: &d,
                nodes: &np,
                pods: &pp,
                revisions: &[],
                now: ts(now),
                expectations_met: true,
            },
            backoff,
        )
    };
    let first = at(100, &mut backoff);
    assert_eq!(deleted(&first), names(&["bad"]));
    assert!(first.actions.contains(&Action::DeletePod {
        pod: "bad".into(),
        why: Why::Finished
    }));
    assert_eq!(events(&first), ["FailedDaemonPod"]);
    // Failed again at once: within the backoff, nothing, and a requeue when it ends.
    let second = at(100, &mut backoff);
    assert_eq!(counts(&second), (0, 0));
    assert_eq!(second.requeue_after, Some(FAILED_BACKOFF_INITIAL));
    // After the delay it goes again, and the next delay doubles.
    let third = at(102, &mut backoff);
    assert_eq!(deleted(&third), names(&["bad"]));
    assert_eq!(
        at(102, &mut backoff).requeue_after,
        Some(Duration::from_secs(2))
    );
}

#[test]
fn failed_pod_backoff_doubles_to_a_cap_and_resets_after_quiet() {
    let mut b = FailedBackoff::default();
    let mut now = 0;
    let mut delays = Vec::new();
    for _ in 0..12 {
        b.next("k", ts(now));
        let d = b.remaining("k", ts(now)).expect("backing off");
        delays.push(d.as_secs());
        now += i64::try_from(d.as_secs()).expect("small");
    }
    assert_eq!(&delays[..4], &[1, 2, 4, 8]);
    assert_eq!(delays[11], 900);
    b.next("k", ts(now + 10_000));
    assert_eq!(
        b.remaining("k", ts(now + 10_000)),
        Some(FAILED_BACKOFF_INITIAL)
    );
    b.gc(ts(now + 20_000));
    assert_eq!(b.remaining("k", ts(now + 10_000)), None);
}

#[test]
fn succeeded_pods_are_replaced() {
    let hash = hash_of(&ds());
    let mut done = daemon_pod("done", "node-0", &hash, 1);
    done.status = Some(PodStatus {
        phase: Some("Succeeded".into()),
        ..PodStatus::default()
    });
    let p = once(&ds(), &nodes(1), &[done], &[]);
    assert_eq!(deleted(&p), names(&["done"]));
    assert_eq!(events(&p), ["SucceededDaemonPod"]);
}

// ---- Status ---------------------------------------------------------------------------

#[test]
fn status_counts_scheduled_ready_available_and_updated_pods() {
    // Upstream TestNumberReadyStatus and TestObservedGeneration.
    let mut d = ds();
    d.metadata.generation = Some(3);
    spec_mut(&mut d).min_ready_seconds = Some(10);
    let hash = hash_of(&d);
    let pods = vec![
        ready(daemon_pod("a", "node-0", &hash, 1), 0), // available
        ready(daemon_pod("b", "node-1", "old", 2), 995), // ready, not yet available
        daemon_pod("c", "node-2", &hash, 3),           // not ready
    ];
    let p = once(&d, &nodes(4), &pods, &[]);
    let s = status(&p).expect("status");
    assert_eq!(s.desired_number_scheduled, 4);
    assert_eq!(s.current_number_scheduled, 3);
    assert_eq!(s.number_ready, 2);
    assert_eq!(s.number_available, Some(1));
    assert_eq!(s.number_unavailable, Some(3));
    assert_eq!(s.updated_number_scheduled, Some(2));
    assert_eq!(s.observed_generation, Some(3));
    // Pod b is available 1005: look again then.
    assert_eq!(p.requeue_after, Some(Duration::from_secs(5)));
}

#[test]
fn an_unchanged_status_is_not_written() {
    let mut w = World::new(ds(), nodes(2));
    w.pass();
    w.ready_all();
    w.pass();
    let p = w.pass();
    assert!(status(&p).is_none(), "{:?}", p.actions);
}

#[test]
fn until_the_cache_shows_earlier_writes_only_the_status_is_written() {
    let mut d = ds();
    d.metadata.generation = Some(2);
    d.status = Some(DaemonSetStatus {
        observed_generation: Some(1),
        ..DaemonSetStatus::default()
    });
    let nodes_ = nodes(2);
    let np: Vec<&Node> = nodes_.iter().collect();
    let p = plan(
        &Observed {
            ds: &d,
            nodes: &np,
            pods: &[],
            revisions: &[],
            now: ts(1),
            expectations_met: false,
        },
        &mut FailedBackoff::default(),
    );
    assert_eq!(counts(&p), (0, 0));
    let s = status(&p).expect("status");
    assert_eq!(s.desired_number_scheduled, 2);
    assert_eq!(
        s.observed_generation,
        Some(1),
        "not raised before processing"
    );
}

// ---- Revisions ------------------------------------------------------------------------

#[test]
fn the_template_is_recorded_as_a_revision_and_pods_carry_its_hash() {
    let mut w = World::new(ds(), nodes(2));
    w.pass();
    assert_eq!(w.revisions.len(), 1);
    let r = &w.revisions[0];
    let hash = r
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_HASH_LABEL))
        .cloned();
    let hash = hash.expect("hash label");
    assert_eq!(
        r.metadata.name.as_deref(),
        Some(format!("foo-{hash}").as_str())
    );
    assert_eq!(r.revision, 1);
    assert_eq!(r.data.as_ref().map(|d| &d.0), Some(&revision_data(&w.ds)));
    let owner_ref = r.metadata.owner_references.as_ref().map(|o| o[0].clone());
    assert_eq!(owner_ref, Some(owner()));
    assert_eq!(w.hashes(), vec![hash.clone(), hash]);
    // The data is the patch `kubectl rollout undo` applies.
    let data = revision_data(&w.ds);
    assert_eq!(data["spec"]["template"]["$patch"], "replace");
    assert_eq!(
        data["spec"]["template"]["spec"]["containers"][0]["image"],
        "foo/bar"
    );
}

#[test]
fn a_rollback_renumbers_the_earlier_revision_instead_of_copying_it() {
    let mut w = World::new(ds(), nodes(1));
    w.pass();
    w.update(|d| with_image(d, "foo/v2"));
    w.pass();
    let rev = |w: &World, image: &str| {
        w.revisions
            .iter()
            .find(|r| {
                r.data
                    .as_ref()
                    .map(|d| &d.0["spec"]["template"]["spec"]["containers"][0]["image"])
                    == Some(&serde_json::json!(image))
            })
            .map(|r| r.revision)
    };
    assert_eq!((rev(&w, "foo/bar"), rev(&w, "foo/v2")), (Some(1), Some(2)));
    w.update(|d| with_image(d, "foo/bar"));
    let p = w.pass();
    assert!(!p
        .actions
        .iter()
        .any(|a| matches!(a, Action::CreateRevision(_))));
    assert_eq!((rev(&w, "foo/bar"), rev(&w, "foo/v2")), (Some(3), Some(2)));
}

#[test]
fn duplicate_current_revisions_are_removed_and_their_pods_relabelled() {
    let d = ds();
    let keep = super::plan::new_revision(&d, 2, 0).expect("revision");
    let mut dup = super::plan::new_revision(&d, 1, 1).expect("revision");
    dup.metadata.name = Some("foo-dup".into());
    dup.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_HASH_LABEL.into(), "duphash".into());
    let keep_hash = keep
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_HASH_LABEL))
        .cloned();
    let pods = vec![daemon_pod("p", "node-0", "duphash", 1)];
    let p = once(&d, &nodes(1), &pods, &[keep, dup]);
    assert!(p.actions.contains(&Action::RelabelPod {
        pod: "p".into(),
        hash: keep_hash.expect("hash")
    }));
    assert!(p.actions.contains(&Action::DeleteRevision {
        name: "foo-dup".into()
    }));
}

#[test]
fn revisions_past_the_history_limit_go_oldest_first_unless_pods_use_them() {
    let mut d = ds();
    spec_mut(&mut d).revision_history_limit = Some(1);
    let old = |n: i64, hash: &str| {
        let mut r = super::plan::new_revision(&with_image(ds(), &format!("img:{n}")), n, 0)
            .expect("revision");
        r.metadata.name = Some(format!("foo-{hash}"));
        r.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(REVISION_HASH_LABEL.into(), hash.into());
        r
    };
    let revisions = vec![old(1, "h1"), old(2, "h2"), old(3, "h3"), old(4, "h4")];
    let pods = vec![daemon_pod("p", "node-0", "h1", 1)];
    let p = once(&d, &nodes(1), &pods, &revisions);
    let gone: Vec<&str> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteRevision { name } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    // Four old, keep one: three go, skipping h1 (still running).
    assert_eq!(gone, ["foo-h2", "foo-h3", "foo-h4"]);
}

#[test]
fn a_name_held_by_other_data_bumps_the_collision_count() {
    let d = ds();
    let mut squatter = super::plan::new_revision(&d, 1, 0).expect("revision");
    squatter.data = Some(k8s_openapi::apimachinery::pkg::runtime::RawExtension(
        serde_json::json!({"other": true}),
    ));
    squatter.metadata.owner_references = None;
    squatter.metadata.labels = Some(l(&[("unrelated", "x")]));
    let p = once(&d, &nodes(1), &[], &[squatter.clone()]);
    let created = p
        .actions
        .iter()
        .find_map(|a| match a {
            Action::CreateRevision(r) => Some(r.metadata.name.clone()),
            _ => None,
        })
        .flatten();
    assert_ne!(created, squatter.metadata.name);
    assert_eq!(status(&p).and_then(|s| s.collision_count), Some(1));
}

// ---- Updates --------------------------------------------------------------------------

#[test]
fn is_pod_updated_matches_hash_or_template_generation() {
    // Upstream TestIsPodUpdated.
    let mk = |labels: Option<BTreeMap<String, String>>| Pod {
        metadata: ObjectMeta {
            labels,
            ..ObjectMeta::default()
        },
        ..Pod::default()
    };
    let both = Some(l(&[
        (TEMPLATE_GENERATION_LABEL, "12345"),
        (REVISION_HASH_LABEL, "55555"),
    ]));
    let no_hash = Some(l(&[(TEMPLATE_GENERATION_LABEL, "12345")]));
    let cases = [
        ("both match", Some(12345), mk(both.clone()), "55555", true),
        (
            "generation matches, hash not",
            Some(12345),
            mk(both.clone()),
            "55555123",
            true,
        ),
        (
            "generation matches, no hash label",
            Some(12345),
            mk(no_hash.clone()),
            "55555",
            true,
        ),
        (
            "generation matches, no hash",
            Some(12345),
            mk(no_hash),
            "",
            true,
        ),
        (
            "generation not, hash does",
            Some(12346),
            mk(both.clone()),
            "55555",
            true,
        ),
        ("neither", Some(12346), mk(both.clone()), "55555123", false),
        ("no generation", None, mk(both), "x", false),
        (
            "empty labels, no hash",
            Some(12345),
            mk(Some(BTreeMap::new())),
            "",
            false,
        ),
        (
            "empty labels",
            Some(12345),
            mk(Some(BTreeMap::new())),
            "55555",
            false,
        ),
        ("no labels", Some(12345), mk(None), "55555", false),
    ];
    for (name, generation, pod, hash, want) in cases {
        assert_eq!(is_pod_updated(&pod, hash, generation), want, "{name}");
    }
}

#[test]
fn the_template_generation_annotation_is_preferred_over_the_generation() {
    let mut d = ds();
    d.metadata.generation = Some(7);
    d.metadata.annotations = Some(l(&[(TEMPLATE_GENERATION_ANNOTATION, "3")]));
    let pod = new_pod(&d, "node-0", "h").expect("pod");
    let labels = pod.metadata.labels.expect("labels");
    assert_eq!(
        labels.get(TEMPLATE_GENERATION_LABEL).map(String::as_str),
        Some("3")
    );
    d.metadata.annotations = Some(l(&[(TEMPLATE_GENERATION_ANNOTATION, "x")]));
    let pod = new_pod(&d, "node-0", "").expect("pod");
    let labels = pod.metadata.labels.expect("labels");
    assert!(!labels.contains_key(TEMPLATE_GENERATION_LABEL));
    assert!(
        !labels.contains_key(REVISION_HASH_LABEL),
        "no hash, no label"
    );
}

#[test]
fn max_unavailable_and_surge_resolve_counts_and_percentages_rounding_up() {
    // Upstream TestGetUnavailableNumbers / TestUpdatedDesiredNodeCounts.
    use IntOrString::{Int, String as Pct};
    let with = |u: IntOrString, s: IntOrString| strategy(ds(), u, s);
    let cases = [
        ("no nodes", with(Int(0), Int(0)), 0, Ok((0, 0))),
        (
            "two nodes, 1 unavailable",
            with(Int(1), Int(0)),
            2,
            Ok((0, 1)),
        ),
        (
            "both zero becomes unavailable 1",
            with(Int(0), Int(0)),
            2,
            Ok((0, 1)),
        ),
        ("50% of 2", with(Pct("50%".into()), Int(0)), 2, Ok((0, 1))),
        (
            "50% of 3 rounds up",
            with(Pct("50%".into()), Int(0)),
            3,
            Ok((0, 2)),
        ),
        (
            "surge 25% of 5",
            with(Int(0), Pct("25%".into())),
            5,
            Ok((2, 0)),
        ),
        (
            "surge 100%",
            with(Int(0), Pct("100%".into())),
            5,
            Ok((5, 0)),
        ),
        (
            "not a percentage",
            with(Pct("half".into()), Int(0)),
            2,
            Err(Error::InvalidIntOrPercent {
                field: "MaxUnavailable",
                value: "half".into(),
            }),
        ),
    ];
    for (name, d, desired, want) in cases {
        assert_eq!(update_counts(&d, desired), want, "{name}");
    }
    assert_eq!(update_counts(&on_delete(ds()), 3), Ok((0, 1)));
    assert!(matches!(
        scaled_value(&Pct(format!("{}%", i64::MAX)), 3, "MaxSurge"),
        Err(Error::Overflow { .. })
    ));
    assert!(matches!(
        scaled_value(&Pct("3000000000%".into()), i32::MAX, "MaxSurge"),
        Err(Error::Overflow { .. })
    ));
}

#[test]
fn a_rolling_update_replaces_max_unavailable_pods_at_a_time() {
    // Upstream TestDaemonSetUpdatesPods: 5 nodes, maxUnavailable 2.
    let mut w = World::new(ds(), nodes(5));
    assert_eq!(counts(&w.pass()), (5, 0));
    w.ready_all();
    w.update(|d| {
        strategy(
            with_image(d, "foo2/bar2"),
            IntOrString::Int(2),
            IntOrString::Int(0),
        )
    });
    for expected in [(0, 2), (2, 0)] {
        assert_eq!(counts(&w.pass()), expected);
    }
    w.ready_all();
    for expected in [(0, 2), (2, 0)] {
        assert_eq!(counts(&w.pass()), expected);
    }
    w.ready_all();
    for expected in [(0, 1), (1, 0)] {
        assert_eq!(counts(&w.pass()), expected);
    }
    w.ready_all();
    assert_eq!(counts(&w.pass()), (0, 0));
    let new_hash = hash_of(&w.ds);
    assert!(w.hashes().iter().all(|h| *h == new_hash));
    let s = w.ds.status.clone().expect("status");
    assert_eq!(s.updated_number_scheduled, Some(5));
    assert_eq!(s.number_available, Some(5));
}

#[test]
fn a_rolling_update_waits_for_new_pods_to_be_ready() {
    // Upstream TestDaemonSetUpdatesWhenNewPodIsNotReady: maxUnavailable 3.
    let mut w = World::new(ds(), nodes(5));
    w.pass();
    w.ready_all();
    w.update(|d| {
        strategy(
            with_image(d, "foo2/bar2"),
            IntOrString::Int(3),
            IntOrString::Int(0),
        )
    });
    assert_eq!(counts(&w.pass()), (0, 3));
    assert_eq!(counts(&w.pass()), (3, 0));
    // The new pods are not ready: numUnavailable == maxUnavailable, nothing more.
    assert_eq!(counts(&w.pass()), (0, 0));
}

#[test]
fn a_rolling_update_replaces_all_unavailable_old_pods_at_once() {
    // Upstream TestDaemonSetUpdatesAllOldPodsNotReady.
    let mut w = World::new(ds(), nodes(5));
    w.pass();
    w.update(|d| {
        strategy(
            with_image(d, "foo2/bar2"),
            IntOrString::Int(3),
            IntOrString::Int(0),
        )
    });
    assert_eq!(counts(&w.pass()), (0, 5));
    assert_eq!(counts(&w.pass()), (5, 0));
}

#[test]
fn no_template_change_replaces_nothing() {
    // Upstream TestDaemonSetUpdatesNoTemplateChanged.
    let mut w = World::new(ds(), nodes(5));
    w.pass();
    w.update(|d| strategy(d, IntOrString::Int(3), IntOrString::Int(0)));
    assert_eq!(counts(&w.pass()), (0, 0));
}

#[test]
fn on_delete_replaces_only_pods_deleted_by_hand() {
    let mut w = World::new(on_delete(ds()), nodes(3));
    w.pass();
    w.ready_all();
    w.update(|d| with_image(d, "foo2/bar2"));
    assert_eq!(counts(&w.pass()), (0, 0));
    w.pods.remove(0);
    assert_eq!(counts(&w.pass()), (1, 0));
    let new_hash = hash_of(&w.ds);
    assert_eq!(w.hashes().iter().filter(|h| **h == new_hash).count(), 1);
}

#[test]
fn a_surging_update_starts_new_pods_before_deleting_old_ones() {
    // Upstream TestDaemonSetUpdatesPodsWithMaxSurge: 5 nodes, maxSurge 2, maxUnavailable 0.
    let mut w = World::new(ds(), nodes(5));
    w.pass();
    w.ready_all();
    w.update(|d| {
        strategy(
            with_image(d, "foo2/bar2"),
            IntOrString::Int(0),
            IntOrString::Int(2),
        )
    });
    assert_eq!(counts(&w.pass()), (2, 0), "two surge pods");
    assert_eq!(counts(&w.pass()), (0, 0), "waiting for them");
    w.ready_all();
    assert_eq!(
        counts(&w.pass()),
        (0, 2),
        "old pods go once new ones are available"
    );
    assert_eq!(counts(&w.pass()), (2, 0));
    w.ready_all();
    assert_eq!(counts(&w.pass()), (0, 2));
    assert_eq!(counts(&w.pass()), (1, 0));
    w.ready_all();
    assert_eq!(counts(&w.pass()), (0, 1));
    assert_eq!(counts(&w.pass()), (0, 0));
    assert_eq!(w.pods.len(), 5);
    let new_hash = hash_of(&w.ds);
    assert!(w.hashes().iter().all(|h| *h == new_hash));
}

#[test]
fn surging_replaces_an_unready_old_pod_at_once() {
    // Upstream TestSurgeCreatesNewPodWhenOldPodIsUnready: an old pod that is not available
    // gets its replacement regardless of maxSurge.
    let d = strategy(
        with_image(ds(), "new"),
        IntOrString::Int(0),
        IntOrString::Int(1),
    );
    let pods = vec![
        ready(daemon_pod("a", "node-0", "old", 1), 0),
        daemon_pod("b", "node-1", "old", 2),
        daemon_pod("c", "node-2", "old", 3),
    ];
    let p = once(&d, &nodes(3), &pods, &[]);
    assert_eq!(created_on(&p), names(&["node-0", "node-1", "node-2"]));
}

#[test]
fn surging_keeps_a_ready_old_pod_until_the_new_one_is_available() {
    // Upstream TestSurgePreservesReadyOldPods, TestSurgeDeletesUnreadyOldPods and
    // TestSurgePreservesOldReadyWithUnsatisfiedMinReady.
    let mut d = strategy(
        with_image(ds(), "new"),
        IntOrString::Int(0),
        IntOrString::Int(1),
    );
    spec_mut(&mut d).min_ready_seconds = Some(15);
    let hash = hash_of(&d);
    let pods = vec![
        ready(daemon_pod("old-ready", "node-0", "old", 1), 0),
        ready(daemon_pod("new-min-ready", "node-0", &hash, 2), 990),
        daemon_pod("old-unready", "node-1", "old", 3),
        daemon_pod("new-unready", "node-1", &hash, 4),
        ready(daemon_pod("old-ready-2", "node-2", "old", 5), 0),
        ready(daemon_pod("new-available", "node-2", &hash, 6), 900),
    ];
    let p = once(&d, &nodes(3), &pods, &[]);
    assert_eq!(deleted(&p), names(&["old-ready-2", "old-unready"]));
    assert_eq!(counts(&p).0, 0);
}

#[test]
fn without_surge_every_pod_but_the_oldest_on_a_node_goes() {
    let hash = hash_of(&ds());
    let pods = vec![
        daemon_pod("newer", "node-0", &hash, 5),
        daemon_pod("older", "node-0", "old", 1),
    ];
    let p = once(&ds(), &nodes(1), &pods, &[]);
    assert!(p.actions.contains(&Action::DeletePod {
        pod: "newer".into(),
        why: Why::Excess
    }));
}

#[test]
fn a_node_joining_gets_a_pod_and_a_node_leaving_is_no_longer_desired() {
    let mut w = World::new(ds(), nodes(2));
    w.pass();
    w.ready_all();
    w.pass();
    w.nodes.push(node("node-2"));
    assert_eq!(created_on(&w.pass()), names(&["node-2"]));
    w.nodes
        .retain(|n| n.metadata.name.as_deref() != Some("node-0"));
    w.pods.retain(|p| target_node(p) != Some("node-0"));
    w.pass();
    let s = w.ds.status.clone().expect("status");
    assert_eq!(s.desired_number_scheduled, 2);
}

#[test]
fn pods_are_created_at_most_a_burst_at_a_time() {
    let p = once(&ds(), &nodes(super::plan::BURST_REPLICAS + 10), &[], &[]);
    assert_eq!(counts(&p).0, super::plan::BURST_REPLICAS);
}
