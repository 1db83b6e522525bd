//! Which nodes a DaemonSet runs on, and the pod it makes for one (upstream
//! `NodeShouldRunDaemonPod`, `NewPod` and `pkg/controller/daemon/util`): node name, node
//! selector, required node affinity, taints against the template's tolerations plus the
//! automatic ones every daemon pod gets. Pure.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};
pub use skiff_apimachinery::scheduling::NODE_NAME_FIELD;
use skiff_apimachinery::scheduling::{node_affinity_matches, tolerates_all};
use std::collections::BTreeMap;

/// Whether a daemon pod should start on a node and whether one already there may stay
/// (upstream's `shouldRun, shouldContinueRunning`): a node with an untolerated NoSchedule
/// taint gets no new pod but keeps a running one; only NoExecute evicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fit {
    pub should_run: bool,
    pub should_continue_running: bool,
}

/// Upstream `NodeShouldRunDaemonPod`.
pub fn node_should_run(node: &Node, ds: &DaemonSet) -> Fit {
    const NO: Fit = Fit {
        should_run: false,
        should_continue_running: false,
    };
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let spec = template_spec_with_tolerations(ds);
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return NO;
    }
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if !node_affinity_matches(&spec, labels, name) {
        return NO;
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    if !tolerates_all(tolerations, taints, &["NoSchedule", "NoExecute"]) {
        return Fit {
            should_run: false,
            should_continue_running: tolerates_all(tolerations, taints, &["NoExecute"]),
        };
    }
    Fit {
        should_run: true,
        should_continue_running: true,
    }
}

/// `(key, effect, only with hostNetwork)` of the tolerations every daemon pod gets (upstream
/// `AddOrUpdateDaemonPodTolerations`): node problems must not evict or keep out the agents
/// that are often there to fix them.
const DAEMON_TOLERATIONS: [(&str, &str, bool); 7] = [
    ("node.kubernetes.io/not-ready", "NoExecute", false),
    ("node.kubernetes.io/unreachable", "NoExecute", false),
    ("node.kubernetes.io/disk-pressure", "NoSchedule", false),
    ("node.kubernetes.io/memory-pressure", "NoSchedule", false),
    ("node.kubernetes.io/pid-pressure", "NoSchedule", false),
    ("node.kubernetes.io/unschedulable", "NoSchedule", false),
    ("node.kubernetes.io/network-unavailable", "NoSchedule", true),
];

/// Adds the automatic tolerations to `spec`, each replacing any toleration of the same key
/// and effect (upstream `AddOrUpdateTolerationInPodSpec`), so a user's `tolerationSeconds`
/// on one of them does not leave the pod evictable.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let host_network = spec.host_network == Some(true);
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect, needs_host_network) in DAEMON_TOLERATIONS {
        if needs_host_network && !host_network {
            continue;
        }
        let wanted = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Toleration::default()
        };
        match tolerations
            .iter_mut()
            .find(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect))
        {
            Some(existing) => *existing = wanted,
            None => tolerations.push(wanted),
        }
    }
}

/// The template's pod spec with the automatic tolerations (what upstream's `NewPod` checks).
pub fn template_spec_with_tolerations(ds: &DaemonSet) -> PodSpec {
    let mut spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    spec
}

/// Pins a pod to `node` through required node affinity on `metadata.name`, replacing any
/// required terms (upstream `ReplaceDaemonSetPodNodeNameNodeAffinity`): the controller has
/// already checked the node against them, and the scheduler then binds the pod there, so
/// resources and ports are still accounted for.
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: NODE_NAME_FIELD.into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(selector);
    affinity
}

/// The node a daemon pod is for (upstream `GetTargetNodeName`): its `nodeName` once bound,
/// else the single value of its `metadata.name In` affinity field. `None` for a pod that
/// names no single node (it is not counted on any).
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.as_deref().unwrap_or_default())
        .find(|r| r.key == NODE_NAME_FIELD && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([only]) => Some(only.as_str()),
            _ => None,
        })
}
