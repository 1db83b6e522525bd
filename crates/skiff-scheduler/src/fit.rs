//! Pure scheduling decisions: which nodes can take a pod (`filter`) and which is best
//! (`score`), from node objects and the pods already bound to them.

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use skiff_apimachinery::quantity::Quantity;
use skiff_apimachinery::scheduling::{node_affinity_matches, tolerated, tolerates_all};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Resource amounts in milli-units (cpu in millicores, memory in thousandths of a byte),
/// keyed by resource name; `pods` counts pods.
pub type Resources = BTreeMap<String, i128>;

/// What the scheduler knows of a node: the object's fields that matter and what is bound.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub ready: bool,
    pub allocatable: Resources,
    pub requested: Resources,
    pub pods: i64,
    /// (protocol, port, hostIP) in use.
    pub host_ports: HashSet<(String, i32, String)>,
    /// Pods bound here per owner (controller) uid, for spreading.
    pub owners: HashMap<String, i64>,
}

/// Why a node cannot take a pod; the texts are upstream's, as FailedScheduling shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unfit {
    NotReady,
    Unschedulable,
    Taint,
    Affinity,
    Ports,
    TooManyPods,
    Insufficient(&'static str),
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::NotReady => write!(
                f,
                "node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}"
            ),
            Unfit::Unschedulable => write!(f, "node(s) were unschedulable"),
            Unfit::Taint => write!(f, "node(s) had untolerated taint(s)"),
            Unfit::Affinity => write!(f, "node(s) didn't match Pod's node affinity/selector"),
            Unfit::Ports => write!(
                f,
                "node(s) didn't have free ports for the requested pod ports"
            ),
            Unfit::TooManyPods => write!(f, "Too many pods"),
            Unfit::Insufficient(r) => write!(f, "Insufficient {r}"),
        }
    }
}

fn quantity(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> i128 {
    Quantity::parse(&q.0).map(|q| q.milli_value()).unwrap_or(0)
}

/// The pod's resource requests (upstream `computePodResourceRequest`): the sum over
/// containers, at least the largest init container, plus overhead. A limit without a
/// request counts as the request, as the API server defaults it.
pub fn pod_requests(pod: &Pod) -> Resources {
    let mut total = Resources::new();
    let Some(spec) = pod.spec.as_ref() else {
        return total;
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| -> Resources {
        let r = c.resources.clone().unwrap_or_default();
        let mut out: Resources = r
            .limits
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| (k.clone(), quantity(v)))
            .collect();
        for (k, v) in r.requests.unwrap_or_default() {
            out.insert(k, quantity(&v));
        }
        out
    };
    for c in &spec.containers {
        for (k, v) in of(c) {
            *total.entry(k).or_default() += v;
        }
    }
    for c in spec.init_containers.as_deref().unwrap_or_default() {
        for (k, v) in of(c) {
            let e = total.entry(k).or_default();
            *e = (*e).max(v);
        }
    }
    for (k, v) in spec.overhead.clone().unwrap_or_default() {
        *total.entry(k).or_default() += quantity(&v);
    }
    total
}

/// Host ports the pod asks for, as (protocol, port, hostIP).
pub fn pod_host_ports(pod: &Pod) -> Vec<(String, i32, String)> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .flat_map(|c| c.ports.as_deref().unwrap_or_default())
        .filter_map(|p| {
            let port = p.host_port.filter(|p| *p > 0)?;
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let ip = p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into());
            Some((proto, port, ip))
        })
        .collect()
}

/// The uid of the pod's controller, if any.
pub fn owner_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .as_deref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

impl NodeInfo {
    /// The node's fields that matter, with nothing bound yet.
    pub fn of(node: &Node) -> NodeInfo {
        let status = node.status.clone().unwrap_or_default();
        let spec = node.spec.clone().unwrap_or_default();
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec.taints.unwrap_or_default(),
            unschedulable: spec.unschedulable == Some(true),
            ready: status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            allocatable: status
                .allocatable
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| (k.clone(), quantity(v)))
                .collect(),
            ..NodeInfo::default()
        }
    }

    /// Accounts for a pod bound (or about to be bound) here.
    pub fn add(&mut self, pod: &Pod) {
        for (k, v) in pod_requests(pod) {
            *self.requested.entry(k).or_default() += v;
        }
        self.pods += 1;
        self.host_ports.extend(pod_host_ports(pod));
        if let Some(uid) = owner_uid(pod) {
            *self.owners.entry(uid.to_string()).or_default() += 1;
        }
    }
}

/// Whether `node` can take `pod`, or the first reason it cannot.
pub fn filter(pod: &Pod, node: &NodeInfo) -> Result<(), Unfit> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    if !node.ready {
        let not_ready = Taint {
            key: "node.kubernetes.io/not-ready".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        if !tolerated(&tolerations, &not_ready) {
            return Err(Unfit::NotReady);
        }
    }
    if node.unschedulable {
        let unschedulable = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        if !tolerated(&tolerations, &unschedulable) {
            return Err(Unfit::Unschedulable);
        }
    }
    let affinity_ok = pod
        .spec
        .as_ref()
        .is_none_or(|s| node_affinity_matches(s, &node.labels, &node.name));
    if !affinity_ok {
        return Err(Unfit::Affinity);
    }
    if !tolerates_all(&tolerations, &node.taints, &["NoSchedule", "NoExecute"]) {
        return Err(Unfit::Taint);
    }
    let ports = pod_host_ports(pod);
    let clash = ports.iter().any(|(proto, port, ip)| {
        node.host_ports.iter().any(|(p2, port2, ip2)| {
            p2 == proto && port2 == port && (ip == ip2 || ip == "0.0.0.0" || ip2 == "0.0.0.0")
        })
    });
    if clash {
        return Err(Unfit::Ports);
    }
    let max_pods = node
        .allocatable
        .get("pods")
        .map(|p| p / 1000)
        .unwrap_or(110);
    if i128::from(node.pods) + 1 > max_pods {
        return Err(Unfit::TooManyPods);
    }
    for (resource, want) in pod_requests(pod) {
        if want <= 0 {
            continue;
        }
        let have = node.allocatable.get(&resource).copied().unwrap_or(0);
        let used = node.requested.get(&resource).copied().unwrap_or(0);
        if used + want > have {
            let name: &'static str = match resource.as_str() {
                "cpu" => "cpu",
                "memory" => "memory",
                "ephemeral-storage" => "ephemeral-storage",
                _ => "resource",
            };
            return Err(Unfit::Insufficient(name));
        }
    }
    Ok(())
}

/// How good `node` is for `pod`, higher is better (0..=200): least allocated cpu and memory
/// after placing the pod (upstream `LeastAllocated`), plus spreading of pods of the same
/// owner (upstream `SelectorSpread`), normalised against `max_owner_count` over all nodes.
pub fn score(pod: &Pod, node: &NodeInfo, max_owner_count: i64) -> i64 {
    let want = pod_requests(pod);
    let mut parts = Vec::new();
    for resource in ["cpu", "memory"] {
        let have = node.allocatable.get(resource).copied().unwrap_or(0);
        if have <= 0 {
            continue;
        }
        let used = node.requested.get(resource).copied().unwrap_or(0)
            + want.get(resource).copied().unwrap_or(0);
        parts.push(((have - used).max(0) * 100 / have) as i64);
    }
    let least_allocated = if parts.is_empty() {
        100
    } else {
        parts.iter().sum::<i64>() / parts.len() as i64
    };
    let spread = match owner_uid(pod) {
        Some(uid) if max_owner_count > 0 => {
            let here = node.owners.get(uid).copied().unwrap_or(0);
            100 * (max_owner_count - here) / max_owner_count
        }
        _ => 100,
    };
    least_allocated + spread
}

/// The best node for `pod` among `nodes`, or the count of each reason nodes were unfit.
pub fn place<'a>(pod: &Pod, nodes: &'a [NodeInfo]) -> Result<&'a NodeInfo, BTreeMap<Unfit, usize>> {
    let mut reasons: BTreeMap<Unfit, usize> = BTreeMap::new();
    let fits: Vec<&NodeInfo> = nodes
        .iter()
        .filter(|n| match filter(pod, n) {
            Ok(()) => true,
            Err(r) => {
                *reasons.entry(r).or_default() += 1;
                false
            }
        })
        .collect();
    let owner = owner_uid(pod);
    let max_owner_count = owner
        .map(|uid| {
            fits.iter()
                .map(|n| n.owners.get(uid).copied().unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    fits.into_iter()
        .max_by(|a, b| {
            score(pod, a, max_owner_count)
                .cmp(&score(pod, b, max_owner_count))
                .then_with(|| b.name.cmp(&a.name))
        })
        .ok_or(reasons)
}

/// Upstream's FailedScheduling message: `0/3 nodes are available: 1 Insufficient cpu, ...`.
pub fn unschedulable_message(total: usize, reasons: &BTreeMap<Unfit, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    if parts.is_empty() {
        return format!("0/{total} nodes are available.");
    }
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}
