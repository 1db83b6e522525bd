//! What the view shows of one object, pure: its kind, its key, its place in the ownership
//! tree, and for a workload the desired state against the actual state and the gap between
//! them. Everything here reads the object's wire-form JSON and nothing else, so one change
//! costs one object's work.

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

/// A custom resource kind whose CRD declares a scale subresource: a workload like any other,
/// its desired replicas at `specReplicasPath` and its actual ones at `statusReplicasPath`.
#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomKind {
    pub group: String,
    /// The version watched: the storage version when it is served with the subresource,
    /// else the first served version that has it.
    pub version: String,
    pub plural: String,
    pub kind: String,
    /// `Kind.group`: names the kind in element ids and object paths, where a bare kind
    /// could be a built-in one.
    pub tag: String,
    /// The CRD's `.spec.replicas`-like JSON paths.
    pub spec_replicas_path: String,
    pub status_replicas_path: String,
}

/// Every custom kind seen (interned, so a kind is a `Copy` pointer; bounded by the distinct
/// CRD definitions of a session), and the ones served now by tag and by `(group, kind)`.
#[derive(Default)]
struct Customs {
    interned: HashSet<&'static CustomKind>,
    served: HashMap<String, &'static CustomKind>,
}

static CUSTOMS: Mutex<Option<Customs>> = Mutex::new(None);

fn customs<T>(f: impl FnOnce(&mut Customs) -> T) -> T {
    let mut guard = CUSTOMS.lock().unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(Customs::default))
}

impl CustomKind {
    /// The scale-able kind a CRD serves, if any: established, with a served version that
    /// declares `subresources.scale` (the storage version preferred).
    pub fn of_crd(crd: &Value) -> Option<CustomKind> {
        let spec = &crd["spec"];
        let established = crd["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        if !established {
            return None;
        }
        let versions = spec["versions"].as_array()?;
        let scalable = |v: &&Value| {
            v["served"].as_bool() == Some(true) && v["subresources"]["scale"].is_object()
        };
        let version = versions
            .iter()
            .filter(scalable)
            .find(|v| v["storage"].as_bool() == Some(true))
            .or_else(|| versions.iter().find(scalable))?;
        let scale = &version["subresources"]["scale"];
        let group = spec["group"].as_str()?.to_owned();
        let kind = spec["names"]["kind"].as_str()?.to_owned();
        Some(CustomKind {
            tag: format!("{kind}.{group}"),
            version: version["name"].as_str()?.to_owned(),
            plural: spec["names"]["plural"].as_str()?.to_owned(),
            spec_replicas_path: scale["specReplicasPath"].as_str()?.to_owned(),
            status_replicas_path: scale["statusReplicasPath"].as_str()?.to_owned(),
            group,
            kind,
        })
    }

    /// The one `'static` copy of this definition.
    pub fn intern(self) -> &'static CustomKind {
        customs(|c| match c.interned.get(&self) {
            Some(k) => *k,
            None => {
                let k: &'static CustomKind = Box::leak(Box::new(self));
                c.interned.insert(k);
                k
            }
        })
    }

    /// Marks `kind` as served (its objects can be named and own others) or, with `false`,
    /// as gone.
    pub fn serve(kind: &'static CustomKind, served: bool) {
        customs(|c| {
            if served {
                c.served.insert(kind.tag.clone(), kind);
            } else if c.served.get(&kind.tag) == Some(&kind) {
                c.served.remove(&kind.tag);
            }
        })
    }

    /// The served custom kind of a tag (`Kind.group`).
    pub fn served(tag: &str) -> Option<&'static CustomKind> {
        customs(|c| c.served.get(tag).copied())
    }
}

/// A value at a CRD scale path (`.spec.replicas`: dotted field names, as upstream's CRD
/// validation allows for these paths).
pub fn at_path<'a>(obj: &'a Value, path: &str) -> &'a Value {
    path.trim_start_matches('.')
        .split('.')
        .fold(obj, |v, field| &v[field])
}

/// The kinds the view watches. The order is the order of the tree's siblings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A custom resource with a scale subresource (an operator's database, say): first, as
    /// it may own any of the kinds below.
    Custom(&'static CustomKind),
    Gateway,
    HTTPRoute,
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    ReplicaSet,
    Service,
    EndpointSlice,
    Pod,
    Event,
}

impl Kind {
    /// Every built-in watched kind (custom ones come and go with their CRDs).
    pub const ALL: [Kind; 11] = [
        Kind::Gateway,
        Kind::HTTPRoute,
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::Job,
        Kind::ReplicaSet,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Pod,
        Kind::Event,
    ];

    /// The API kind name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Custom(c) => &c.kind,
            Kind::Gateway => "Gateway",
            Kind::HTTPRoute => "HTTPRoute",
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Job => "Job",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Pod => "Pod",
            Kind::Event => "Event",
        }
    }

    /// The kind of an API kind name, when the view watches it.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What names the kind in element ids and paths: the kind, or `Kind.group` for a custom
    /// one (which may share a built-in kind's name).
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Custom(c) => &c.tag,
            k => k.name(),
        }
    }

    /// The kind of a [`Kind::tag`].
    pub fn parse_tag(tag: &str) -> Option<Kind> {
        Kind::parse(tag).or_else(|| CustomKind::served(tag).map(Kind::Custom))
    }

    /// The kind an ownerReference names: a served custom kind by its API group, else a
    /// built-in one by name.
    pub fn of_owner(owner: &Value) -> Option<Kind> {
        let kind = owner["kind"].as_str()?;
        let group = owner["apiVersion"]
            .as_str()
            .and_then(|v| v.rsplit_once('/'))
            .map(|(g, _)| g);
        group
            .and_then(|g| CustomKind::served(&format!("{kind}.{g}")))
            .map(Kind::Custom)
            .or_else(|| Kind::parse(kind))
    }

    /// Place among siblings (the enum's order).
    pub fn order(self) -> u8 {
        match self {
            Kind::Custom(_) => 0,
            Kind::Gateway => 1,
            Kind::HTTPRoute => 2,
            Kind::Deployment => 3,
            Kind::StatefulSet => 4,
            Kind::DaemonSet => 5,
            Kind::Job => 6,
            Kind::ReplicaSet => 7,
            Kind::Service => 8,
            Kind::EndpointSlice => 9,
            Kind::Pod => 10,
            Kind::Event => 11,
        }
    }

    /// Group, version and plural resource, for the watch.
    pub fn resource(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Custom(c) => (&c.group, &c.version, &c.plural),
            Kind::Gateway => ("gateway.networking.k8s.io", "v1", "gateways"),
            Kind::HTTPRoute => ("gateway.networking.k8s.io", "v1", "httproutes"),
            Kind::Deployment => ("apps", "v1", "deployments"),
            Kind::StatefulSet => ("apps", "v1", "statefulsets"),
            Kind::DaemonSet => ("apps", "v1", "daemonsets"),
            Kind::ReplicaSet => ("apps", "v1", "replicasets"),
            Kind::Job => ("batch", "v1", "jobs"),
            Kind::Service => ("", "v1", "services"),
            Kind::Pod => ("", "v1", "pods"),
            Kind::Event => ("", "v1", "events"),
            Kind::EndpointSlice => ("discovery.k8s.io", "v1", "endpointslices"),
        }
    }

    /// Whether objects of this kind have desired replicas and a gap to draw.
    pub fn is_workload(self) -> bool {
        matches!(
            self,
            Kind::Custom(_)
                | Kind::Deployment
                | Kind::ReplicaSet
                | Kind::StatefulSet
                | Kind::DaemonSet
                | Kind::Job
        )
    }

    /// The controller that writes this kind's status, as upstream names it in Events.
    pub fn controller(self) -> Option<&'static str> {
        match self {
            Kind::Deployment => Some("deployment-controller"),
            Kind::ReplicaSet => Some("replicaset-controller"),
            Kind::StatefulSet => Some("statefulset-controller"),
            Kind::DaemonSet => Some("daemonset-controller"),
            Kind::Job => Some("job-controller"),
            Kind::EndpointSlice | Kind::Service => Some("endpointslice-controller"),
            Kind::Gateway | Kind::HTTPRoute => Some("gateway-controller"),
            // An operator's controller has a name of its own: its manager's.
            Kind::Custom(_) | Kind::Pod | Kind::Event => None,
        }
    }
}

/// One object of the view: kind, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl Key {
    /// The key of `obj`, which must have a name.
    pub fn of(kind: Kind, obj: &Value) -> Option<Key> {
        let meta = &obj["metadata"];
        Some(Key {
            kind,
            namespace: meta["namespace"].as_str().unwrap_or_default().to_owned(),
            name: meta["name"].as_str()?.to_owned(),
        })
    }

    /// The element id of the object's node in the page. Kinds, namespaces and names never
    /// hold `_`, so the id is unambiguous.
    pub fn id(&self) -> String {
        format!("n_{}_{}_{}", self.kind.tag(), self.namespace, self.name)
    }

    /// The path that names the object in `/object/...`.
    pub fn path(&self) -> String {
        format!("{}/{}/{}", self.kind.tag(), self.namespace, self.name)
    }

    /// Parses [`Key::path`].
    pub fn parse_path(path: &str) -> Option<Key> {
        let mut parts = path.splitn(3, '/');
        let kind = Kind::parse_tag(parts.next()?)?;
        let namespace = parts.next()?.to_owned();
        let name = parts.next()?.to_owned();
        (!name.is_empty() && !name.contains('/')).then_some(Key {
            kind,
            namespace,
            name,
        })
    }
}

/// A node's state at a glance: what its colour says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Actual matches desired.
    Converged,
    /// A controller is closing a gap.
    Reconciling,
    /// Stuck or failed: the gap will not close by itself.
    Failed,
    /// Nothing to compare (a Service, an empty slice).
    Idle,
}

impl State {
    /// The word shown and matched by tests.
    pub fn word(self) -> &'static str {
        match self {
            State::Converged => "converged",
            State::Reconciling => "reconciling",
            State::Failed => "failed",
            State::Idle => "idle",
        }
    }
}

/// A workload's desired state against its actual state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// What the number compared is called: `replicas`, `scheduled` (DaemonSet) or
    /// `completions` (Job).
    pub unit: &'static str,
    pub desired: i64,
    /// Pods that exist (`status.replicas`; a Job's active plus succeeded).
    pub current: i64,
    pub ready: i64,
    pub updated: Option<i64>,
    pub available: Option<i64>,
    pub generation: i64,
    pub observed_generation: i64,
    pub images: Vec<String>,
    /// `(type, status, reason)` of each condition.
    pub conditions: Vec<(String, String, String)>,
    pub state: State,
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
}

fn count(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The images of a pod spec's containers, in order, without repeats.
pub fn images(pod_spec: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in pod_spec["containers"].as_array().into_iter().flatten() {
        if let Some(image) = c["image"].as_str() {
            if !out.iter().any(|i| i == image) {
                out.push(image.to_owned());
            }
        }
    }
    out
}

fn conditions(status: &Value) -> Vec<(String, String, String)> {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let s = |f: &str| c[f].as_str().unwrap_or_default().to_owned();
            (s("type"), s("status"), s("reason"))
        })
        .collect()
}

fn condition_is(conditions: &[(String, String, String)], kind: &str, status: &str) -> bool {
    conditions.iter().any(|(t, s, _)| t == kind && s == status)
}

/// The gap of a workload, with upstream's notion of done for each kind (`kubectl rollout
/// status` for Deployments, StatefulSets and DaemonSets; the Complete condition for Jobs).
pub fn workload_gap(kind: Kind, obj: &Value) -> Option<Gap> {
    let spec = &obj["spec"];
    let status = &obj["status"];
    let generation = count(&obj["metadata"]["generation"]);
    let observed_generation = count(&status["observedGeneration"]);
    let conditions = conditions(status);
    let images = images(&spec["template"]["spec"]);
    let replicas = int(&spec["replicas"]).unwrap_or(1);
    let seen = observed_generation >= generation;
    let mut gap = Gap {
        unit: "replicas",
        desired: replicas,
        current: count(&status["replicas"]),
        ready: count(&status["readyReplicas"]),
        updated: None,
        available: Some(count(&status["availableReplicas"])),
        generation,
        observed_generation,
        images,
        conditions,
        state: State::Reconciling,
    };
    let converged = match kind {
        Kind::Custom(c) => {
            // Only what the scale subresource declares: desired and actual replicas. A
            // status without observedGeneration is taken as current.
            gap.desired = int(at_path(obj, &c.spec_replicas_path)).unwrap_or(0);
            gap.current = count(at_path(obj, &c.status_replicas_path));
            gap.ready = gap.current;
            gap.available = None;
            (seen || status["observedGeneration"].is_null()) && gap.current == gap.desired
        }
        Kind::Deployment => {
            let updated = count(&status["updatedReplicas"]);
            gap.updated = Some(updated);
            if condition_is(&gap.conditions, "Progressing", "False")
                && gap
                    .conditions
                    .iter()
                    .any(|(t, _, r)| t == "Progressing" && r == "ProgressDeadlineExceeded")
            {
                gap.state = State::Failed;
                return Some(gap);
            }
            seen && updated == replicas
                && gap.current == replicas
                && gap.available == Some(replicas)
        }
        Kind::ReplicaSet => {
            seen && gap.current == replicas
                && gap.ready == replicas
                && gap.available == Some(replicas)
        }
        Kind::StatefulSet => {
            let updated = count(&status["updatedReplicas"]);
            gap.updated = Some(updated);
            let revisions_match = match (
                status["currentRevision"].as_str(),
                status["updateRevision"].as_str(),
            ) {
                (Some(c), Some(u)) => c == u,
                _ => true,
            };
            seen && gap.ready == replicas
                && updated == replicas
                && gap.current == replicas
                && revisions_match
        }
        Kind::DaemonSet => {
            gap.unit = "scheduled";
            gap.desired = count(&status["desiredNumberScheduled"]);
            gap.current = count(&status["currentNumberScheduled"]);
            gap.ready = count(&status["numberReady"]);
            let updated = count(&status["updatedNumberScheduled"]);
            gap.updated = Some(updated);
            gap.available = Some(count(&status["numberAvailable"]));
            seen && updated == gap.desired
                && gap.available == Some(gap.desired)
                && gap.ready == gap.desired
        }
        Kind::Job => {
            gap.unit = "completions";
            // Without completions, one success finishes the Job (a work queue).
            gap.desired = int(&spec["completions"]).unwrap_or(1);
            gap.ready = count(&status["succeeded"]);
            gap.current = count(&status["active"]) + gap.ready;
            gap.available = None;
            if condition_is(&gap.conditions, "Failed", "True") {
                gap.state = State::Failed;
                return Some(gap);
            }
            condition_is(&gap.conditions, "Complete", "True")
        }
        _ => return None,
    };
    if converged {
        gap.state = State::Converged;
    } else if gap
        .conditions
        .iter()
        .any(|(t, s, r)| t == "ReplicaFailure" && s == "True" || r == "FailedCreate")
    {
        gap.state = State::Failed;
    }
    Some(gap)
}

/// A container of a pod, for the tree's leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// `running`, `waiting: ImagePullBackOff`, `terminated: Completed`, or `not started`.
    pub status: String,
    pub ready: bool,
    pub restarts: i64,
}

/// A pod's state and a word for it, as `kubectl get pods` would summarize it.
pub fn pod_state(pod: &Value) -> (State, String) {
    let status = &pod["status"];
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return (State::Reconciling, "Terminating".into());
    }
    let phase = status["phase"].as_str().unwrap_or("Pending");
    let bad_wait = status["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["state"]["waiting"]["reason"].as_str())
        .find(|r| {
            matches!(
                *r,
                "CrashLoopBackOff"
                    | "ImagePullBackOff"
                    | "ErrImagePull"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
                    | "InvalidImageName"
            )
        });
    if let Some(reason) = bad_wait {
        return (State::Failed, reason.to_owned());
    }
    let ready = conditions(status)
        .iter()
        .any(|(t, s, _)| t == "Ready" && s == "True");
    match phase {
        "Running" if ready => (State::Converged, "Running, ready".into()),
        "Running" => (State::Reconciling, "Running, not ready".into()),
        "Succeeded" => (State::Converged, "Succeeded".into()),
        "Failed" => (
            State::Failed,
            format!("Failed{}", reason_suffix(&status["reason"])),
        ),
        _ if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) => {
            (State::Reconciling, "Pending (unscheduled)".into())
        }
        _ => (State::Reconciling, "Pending".into()),
    }
}

fn reason_suffix(reason: &Value) -> String {
    reason
        .as_str()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

/// A pod's containers with their status, in spec order.
pub fn containers(pod: &Value) -> Vec<Container> {
    let statuses = pod["status"]["containerStatuses"].as_array();
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default().to_owned();
            let st = statuses
                .into_iter()
                .flatten()
                .find(|s| s["name"].as_str() == Some(name.as_str()));
            let status = match st.map(|s| &s["state"]) {
                Some(s) if s["running"].is_object() => "running".to_owned(),
                Some(s) if s["waiting"].is_object() => format!(
                    "waiting{}",
                    s["waiting"]["reason"]
                        .as_str()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                Some(s) if s["terminated"].is_object() => format!(
                    "terminated{}",
                    s["terminated"]["reason"]
                        .as_str()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                _ => "not started".to_owned(),
            };
            Container {
                image: c["image"].as_str().unwrap_or_default().to_owned(),
                ready: st.is_some_and(|s| s["ready"].as_bool() == Some(true)),
                restarts: st.map(|s| count(&s["restartCount"])).unwrap_or(0),
                status,
                name,
            }
        })
        .collect()
}

/// Where an object hangs in the ownership tree: its controller owner (Deployment →
/// ReplicaSet → Pod, StatefulSet/DaemonSet/Job → Pod), its Service (an EndpointSlice, by
/// the `kubernetes.io/service-name` label) or its first Gateway (an HTTPRoute's parentRefs).
/// `None` puts it at the top, as a card of its own.
pub fn parent_of(kind: Kind, obj: &Value) -> Option<Key> {
    let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    match kind {
        Kind::EndpointSlice => {
            let service = obj["metadata"]["labels"]["kubernetes.io/service-name"].as_str()?;
            Some(Key {
                kind: Kind::Service,
                namespace: namespace.to_owned(),
                name: service.to_owned(),
            })
        }
        Kind::HTTPRoute => obj["spec"]["parentRefs"]
            .as_array()?
            .iter()
            .find(|p| {
                p["kind"].as_str().unwrap_or("Gateway") == "Gateway"
                    && p["group"].as_str().unwrap_or("gateway.networking.k8s.io")
                        == "gateway.networking.k8s.io"
            })
            .and_then(|p| {
                Some(Key {
                    kind: Kind::Gateway,
                    namespace: p["namespace"].as_str().unwrap_or(namespace).to_owned(),
                    name: p["name"].as_str()?.to_owned(),
                })
            }),
        Kind::Event => None,
        _ => {
            let owner = obj["metadata"]["ownerReferences"]
                .as_array()?
                .iter()
                .find(|o| o["controller"].as_bool() == Some(true))?;
            let owner_kind = Kind::of_owner(owner)?;
            // Only kinds that can own this one count; anything else (a CronJob's Job) is a
            // top-level card. A custom resource (an operator's) may own any workload or pod.
            let fits = matches!(
                (owner_kind, kind),
                (Kind::Deployment, Kind::ReplicaSet)
                    | (
                        Kind::Custom(_),
                        Kind::Deployment
                            | Kind::StatefulSet
                            | Kind::DaemonSet
                            | Kind::Job
                            | Kind::ReplicaSet
                            | Kind::Pod
                    )
                    | (
                        Kind::ReplicaSet | Kind::StatefulSet | Kind::DaemonSet | Kind::Job,
                        Kind::Pod
                    )
            );
            fits.then(|| Key {
                kind: owner_kind,
                namespace: namespace.to_owned(),
                name: owner["name"].as_str().unwrap_or_default().to_owned(),
            })
            .filter(|k| !k.name.is_empty())
        }
    }
}

/// The kind of an object's controller owner, whatever it is (for naming the controller that
/// wrote it).
pub fn controller_owner_kind(obj: &Value) -> Option<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"].as_bool() == Some(true))?["kind"]
        .as_str()
}

/// An EndpointSlice's endpoints: `(target pod or address, ready)`.
pub fn endpoints(slice: &Value) -> Vec<(String, bool)> {
    slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let name = e["targetRef"]["name"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| e["addresses"][0].as_str().map(str::to_owned))
                .unwrap_or_default();
            // Upstream: a nil ready means ready.
            (name, e["conditions"]["ready"].as_bool() != Some(false))
        })
        .collect()
}

/// The state of a node that is not a workload or a pod.
pub fn other_state(kind: Kind, obj: &Value) -> State {
    match kind {
        Kind::EndpointSlice => {
            let eps = endpoints(obj);
            if eps.is_empty() {
                State::Idle
            } else if eps.iter().all(|(_, ready)| *ready) {
                State::Converged
            } else {
                State::Reconciling
            }
        }
        Kind::Gateway => {
            let conds = conditions(&obj["status"]);
            if condition_is(&conds, "Accepted", "False") {
                State::Failed
            } else if condition_is(&conds, "Programmed", "True") {
                State::Converged
            } else {
                State::Reconciling
            }
        }
        Kind::HTTPRoute => {
            let parents = obj["status"]["parents"].as_array();
            let conds: Vec<_> = parents.into_iter().flatten().flat_map(conditions).collect();
            if conds.is_empty() {
                State::Reconciling
            } else if conds.iter().any(|(_, s, _)| s == "False") {
                State::Failed
            } else {
                State::Converged
            }
        }
        _ => State::Idle,
    }
}

/// An HTTPRoute's backend Services, in rule order, without repeats.
pub fn route_backends(route: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for rule in route["spec"]["rules"].as_array().into_iter().flatten() {
        for b in rule["backendRefs"].as_array().into_iter().flatten() {
            if b["kind"].as_str().unwrap_or("Service") != "Service" {
                continue;
            }
            if let Some(name) = b["name"].as_str() {
                let shown = match b["port"].as_i64() {
                    Some(p) => format!("{name}:{p}"),
                    None => name.to_owned(),
                };
                if !out.contains(&shown) {
                    out.push(shown);
                }
            }
        }
    }
    out
}

/// Whether a pod counts toward its owner's actual replicas (it exists and is not going).
pub fn pod_counts(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_string()
        && !matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i64, status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "generation": 2},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "a", "image": "nginx:1.27"}, {"name": "b", "image": "nginx:1.27"},
                {"name": "c", "image": "busybox"}]}}},
            "status": status,
        })
    }

    #[test]
    fn workload_gap_says_converged_only_when_every_count_matches() {
        let cases = [
            (
                "scaled up, old pods ready",
                Kind::Deployment,
                deployment(
                    5,
                    json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                           "readyReplicas": 3, "availableReplicas": 3}),
                ),
                State::Reconciling,
            ),
            (
                "all five there",
                Kind::Deployment,
                deployment(
                    5,
                    json!({"observedGeneration": 2, "replicas": 5, "updatedReplicas": 5,
                           "readyReplicas": 5, "availableReplicas": 5}),
                ),
                State::Converged,
            ),
            (
                "generation not yet observed",
                Kind::Deployment,
                deployment(
                    5,
                    json!({"observedGeneration": 1, "replicas": 5, "updatedReplicas": 5,
                           "readyReplicas": 5, "availableReplicas": 5}),
                ),
                State::Reconciling,
            ),
            (
                "old replicas still terminating",
                Kind::Deployment,
                deployment(
                    3,
                    json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3,
                           "readyReplicas": 4, "availableReplicas": 3}),
                ),
                State::Reconciling,
            ),
            (
                "progress deadline exceeded",
                Kind::Deployment,
                deployment(
                    3,
                    json!({"observedGeneration": 2, "conditions": [{"type": "Progressing",
                           "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
                ),
                State::Failed,
            ),
            (
                "replica set short of ready",
                Kind::ReplicaSet,
                deployment(
                    2,
                    json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 1,
                           "availableReplicas": 1}),
                ),
                State::Reconciling,
            ),
            (
                "replica set scaled to zero and empty",
                Kind::ReplicaSet,
                deployment(0, json!({"observedGeneration": 2, "replicas": 0})),
                State::Converged,
            ),
            (
                "replica set cannot create pods",
                Kind::ReplicaSet,
                deployment(
                    2,
                    json!({"observedGeneration": 2, "conditions": [{"type": "ReplicaFailure",
                           "status": "True", "reason": "FailedCreate"}]}),
                ),
                State::Failed,
            ),
            (
                "stateful set mid rolling update",
                Kind::StatefulSet,
                deployment(
                    2,
                    json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
                           "updatedReplicas": 2, "currentRevision": "a", "updateRevision": "b"}),
                ),
                State::Reconciling,
            ),
            (
                "daemon set on every node",
                Kind::DaemonSet,
                deployment(
                    1,
                    json!({"observedGeneration": 2, "desiredNumberScheduled": 2,
                           "currentNumberScheduled": 2, "numberReady": 2,
                           "updatedNumberScheduled": 2, "numberAvailable": 2}),
                ),
                State::Converged,
            ),
            (
                "job running",
                Kind::Job,
                json!({"metadata": {"generation": 1}, "spec": {"completions": 3},
                       "status": {"active": 2, "succeeded": 1}}),
                State::Reconciling,
            ),
            (
                "job complete",
                Kind::Job,
                json!({"metadata": {"generation": 1}, "spec": {"completions": 3},
                       "status": {"succeeded": 3, "conditions": [
                           {"type": "Complete", "status": "True"}]}}),
                State::Converged,
            ),
            (
                "job failed",
                Kind::Job,
                json!({"metadata": {"generation": 1}, "spec": {},
                       "status": {"failed": 7, "conditions": [
                           {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}),
                State::Failed,
            ),
        ];
        for (name, kind, obj, want) in cases {
            let gap = workload_gap(kind, &obj).expect(name);
            assert_eq!(gap.state, want, "{name}: {gap:?}");
        }
    }

    #[test]
    fn workload_gap_reads_desired_actual_and_images() {
        let gap = workload_gap(
            Kind::Deployment,
            &deployment(
                5,
                json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 2,
                       "readyReplicas": 1, "availableReplicas": 1}),
            ),
        )
        .unwrap();
        assert_eq!(
            (
                gap.desired,
                gap.current,
                gap.ready,
                gap.updated,
                gap.available
            ),
            (5, 3, 1, Some(2), Some(1))
        );
        assert_eq!((gap.generation, gap.observed_generation), (2, 1));
        assert_eq!(gap.images, ["nginx:1.27", "busybox"]);
        // Upstream's default of one replica.
        let gap = workload_gap(
            Kind::ReplicaSet,
            &json!({"metadata": {}, "spec": {}, "status": {}}),
        )
        .unwrap();
        assert_eq!(gap.desired, 1);
        assert_eq!(gap.state, State::Reconciling);
        let job = workload_gap(
            Kind::Job,
            &json!({"metadata": {}, "spec": {}, "status": {"active": 1}}),
        )
        .unwrap();
        assert_eq!((job.unit, job.desired, job.current), ("completions", 1, 1));
        assert!(workload_gap(Kind::Pod, &json!({})).is_none());
    }

    #[test]
    fn pod_state_names_what_kubectl_would() {
        let cases = [
            (
                json!({"spec": {}, "status": {"phase": "Pending"}}),
                State::Reconciling,
                "Pending (unscheduled)",
            ),
            (
                json!({"spec": {"nodeName": "n"}, "status": {"phase": "Pending"}}),
                State::Reconciling,
                "Pending",
            ),
            (
                json!({"spec": {"nodeName": "n"}, "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True"}]}}),
                State::Converged,
                "Running, ready",
            ),
            (
                json!({"spec": {"nodeName": "n"}, "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "False"}]}}),
                State::Reconciling,
                "Running, not ready",
            ),
            (
                json!({"spec": {}, "status": {"phase": "Pending", "containerStatuses": [
                {"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}),
                State::Failed,
                "ImagePullBackOff",
            ),
            (
                json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {},
                "status": {"phase": "Running"}}),
                State::Reconciling,
                "Terminating",
            ),
            (
                json!({"spec": {}, "status": {"phase": "Failed", "reason": "Evicted"}}),
                State::Failed,
                "Failed: Evicted",
            ),
            (
                json!({"spec": {}, "status": {"phase": "Succeeded"}}),
                State::Converged,
                "Succeeded",
            ),
        ];
        for (pod, state, word) in cases {
            assert_eq!(pod_state(&pod), (state, word.to_owned()), "{pod}");
        }
    }

    #[test]
    fn containers_pair_spec_with_status() {
        let pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
            "status": {"containerStatuses": [{"name": "b", "ready": true, "restartCount": 2,
                "state": {"running": {}}}]}});
        let got = containers(&pod);
        assert_eq!(got[0].status, "not started");
        assert!(!got[0].ready);
        assert_eq!(
            (got[1].status.as_str(), got[1].ready, got[1].restarts),
            ("running", true, 2)
        );
    }

    #[test]
    fn parent_of_builds_the_three_trees() {
        let owned = |kind: &str, controller: bool| {
            json!({"metadata": {"namespace": "ns", "name": "x", "ownerReferences": [
                {"kind": kind, "name": "owner", "controller": controller}]}})
        };
        let key = |kind, name: &str| {
            Some(Key {
                kind,
                namespace: "ns".into(),
                name: name.into(),
            })
        };
        let cases = [
            (
                Kind::Pod,
                owned("ReplicaSet", true),
                key(Kind::ReplicaSet, "owner"),
            ),
            (
                Kind::ReplicaSet,
                owned("Deployment", true),
                key(Kind::Deployment, "owner"),
            ),
            (
                Kind::Pod,
                owned("StatefulSet", true),
                key(Kind::StatefulSet, "owner"),
            ),
            (Kind::Pod, owned("Job", true), key(Kind::Job, "owner")),
            // Not the controller: no parent.
            (Kind::Pod, owned("ReplicaSet", false), None),
            // A CronJob is not drawn: its Jobs are cards.
            (Kind::Job, owned("CronJob", true), None),
            // A kind that cannot own this one.
            (Kind::Pod, owned("Deployment", true), None),
            (
                Kind::EndpointSlice,
                json!({"metadata": {"namespace": "ns", "name": "web-abc",
                    "labels": {"kubernetes.io/service-name": "web"}}}),
                key(Kind::Service, "web"),
            ),
            (
                Kind::HTTPRoute,
                json!({"metadata": {"namespace": "ns", "name": "r"}, "spec": {"parentRefs": [
                    {"kind": "Service", "group": "", "name": "mesh"}, {"name": "front"}]}}),
                key(Kind::Gateway, "front"),
            ),
            (
                Kind::HTTPRoute,
                json!({"metadata": {"namespace": "ns", "name": "r"}, "spec": {"parentRefs": [
                    {"name": "shared", "namespace": "infra"}]}}),
                Some(Key {
                    kind: Kind::Gateway,
                    namespace: "infra".into(),
                    name: "shared".into(),
                }),
            ),
            (Kind::Deployment, json!({"metadata": {"name": "d"}}), None),
        ];
        for (kind, obj, want) in cases {
            assert_eq!(parent_of(kind, &obj), want, "{kind:?} {obj}");
        }
    }

    #[test]
    fn keys_round_trip_through_paths() {
        let key = Key {
            kind: Kind::Pod,
            namespace: "team-a".into(),
            name: "web-1".into(),
        };
        assert_eq!(key.id(), "n_Pod_team-a_web-1");
        assert_eq!(Key::parse_path(&key.path()), Some(key));
        for bad in ["Pod/ns", "Nope/ns/x", "Pod/ns/", "Pod/ns/a/b"] {
            assert_eq!(Key::parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn other_states_follow_endpoints_and_conditions() {
        let slice = |eps: Value| json!({"endpoints": eps});
        assert_eq!(
            other_state(Kind::EndpointSlice, &slice(json!([]))),
            State::Idle
        );
        assert_eq!(
            other_state(
                Kind::EndpointSlice,
                &slice(json!([{"addresses": ["10.0.0.1"]}]))
            ),
            State::Converged
        );
        assert_eq!(
            other_state(
                Kind::EndpointSlice,
                &slice(json!([{"addresses": ["10.0.0.1"]},
                    {"addresses": ["10.0.0.2"], "conditions": {"ready": false}}]))
            ),
            State::Reconciling
        );
        let gw = |s: &str| {
            json!({"status": {"conditions": [{"type": "Accepted", "status": "True"},
                {"type": "Programmed", "status": s}]}})
        };
        assert_eq!(other_state(Kind::Gateway, &gw("True")), State::Converged);
        assert_eq!(
            other_state(Kind::Gateway, &gw("Unknown")),
            State::Reconciling
        );
        let route = json!({"status": {"parents": [{"conditions": [
            {"type": "Accepted", "status": "True"}, {"type": "ResolvedRefs", "status": "False"}]}]}});
        assert_eq!(other_state(Kind::HTTPRoute, &route), State::Failed);
        assert_eq!(
            route_backends(&json!({"spec": {"rules": [{"backendRefs": [
                {"name": "web", "port": 80}, {"name": "web", "port": 80}, {"name": "api"}]}]}})),
            ["web:80", "api"]
        );
    }

    /// A CRD as the API server stores it once established: `v1` (storage) and `v2` served,
    /// the scale subresource on the versions `scale_on` names.
    fn crd(group: &str, kind: &str, scale_on: &[&str], established: &str) -> Value {
        let version = |name: &str, storage: bool| {
            let mut v = json!({"name": name, "served": true, "storage": storage});
            if scale_on.contains(&name) {
                v["subresources"] = json!({"scale": {"specReplicasPath": format!(".spec.{name}size"),
                    "statusReplicasPath": ".status.count"}});
            }
            v
        };
        json!({"metadata": {"name": format!("{}s.{group}", kind.to_lowercase())},
            "spec": {"group": group, "names": {"kind": kind, "plural": format!("{}s", kind.to_lowercase())},
                "versions": [version("v2", false), version("v1", true)]},
            "status": {"conditions": [{"type": "Established", "status": established}]}})
    }

    #[test]
    fn a_crd_serves_a_scalable_kind_only_with_the_scale_subresource_once_established() {
        /// What a case expects: the version watched and its spec path.
        type Want = Option<(&'static str, &'static str)>;
        let cases: &[(&str, Value, Want)] = &[
            (
                "storage version has it",
                crd("db.example.com", "Database", &["v1", "v2"], "True"),
                Some(("v1", ".spec.v1size")),
            ),
            (
                "only another served version",
                crd("db.example.com", "Database", &["v2"], "True"),
                Some(("v2", ".spec.v2size")),
            ),
            (
                "no scale subresource",
                crd("db.example.com", "Database", &[], "True"),
                None,
            ),
            (
                "not established yet",
                crd("db.example.com", "Database", &["v1"], "False"),
                None,
            ),
        ];
        for (name, crd, want) in cases {
            let got = CustomKind::of_crd(crd);
            assert_eq!(
                got.as_ref()
                    .map(|k| (k.version.as_str(), k.spec_replicas_path.as_str())),
                *want,
                "{name}"
            );
            if let Some(k) = got {
                assert_eq!(
                    (
                        k.tag.as_str(),
                        k.plural.as_str(),
                        k.status_replicas_path.as_str()
                    ),
                    ("Database.db.example.com", "databases", ".status.count")
                );
            }
        }
    }

    #[test]
    fn a_custom_resource_is_a_workload_card_with_its_scale_paths_and_owns_its_workloads() {
        let kind = CustomKind::of_crd(&crd("model.example.com", "Deployment", &["v1"], "True"))
            .unwrap()
            .intern();
        let custom = Kind::Custom(kind);
        let cr = |size: Value, status: Value| {
            json!({"metadata": {"name": "pg", "namespace": "db", "generation": 2},
                "spec": {"v1size": size}, "status": status})
        };
        let cases = [
            (
                "scaled up",
                cr(json!(5), json!({"count": 3})),
                (5, 3),
                State::Reconciling,
            ),
            (
                "caught up",
                cr(json!(5), json!({"count": 5})),
                (5, 5),
                State::Converged,
            ),
            (
                "no status yet",
                cr(json!(1), json!(null)),
                (1, 0),
                State::Reconciling,
            ),
            (
                "status of an older generation",
                cr(json!(2), json!({"count": 2, "observedGeneration": 1})),
                (2, 2),
                State::Reconciling,
            ),
            (
                "status of this generation",
                cr(json!(2), json!({"count": 2, "observedGeneration": 2})),
                (2, 2),
                State::Converged,
            ),
            (
                "no desired replicas: zero, as upstream's scale",
                cr(json!(null), json!({})),
                (0, 0),
                State::Converged,
            ),
        ];
        for (name, obj, (desired, current), state) in cases {
            let gap = workload_gap(custom, &obj).unwrap();
            assert_eq!(
                (gap.desired, gap.current, gap.state),
                (desired, current, state),
                "{name}"
            );
        }
        // A kind of the same name as a built-in one keeps its own ids and paths.
        let key = Key::of(custom, &cr(json!(1), json!({}))).unwrap();
        assert_eq!(key.id(), "n_Deployment.model.example.com_db_pg");
        assert_eq!(Key::parse_path(&key.path()), None, "not served yet");
        CustomKind::serve(kind, true);
        assert_eq!(Key::parse_path(&key.path()), Some(key.clone()));
        assert_eq!(
            Key::parse_path("Deployment/db/pg").unwrap().kind,
            Kind::Deployment
        );
        // Its StatefulSet hangs under it; a built-in owner of that name does not match.
        let sts = |api_version: &str| {
            json!({"metadata": {"name": "pg", "namespace": "db", "ownerReferences": [
                {"apiVersion": api_version, "kind": "Deployment", "name": "pg", "controller": true}]}})
        };
        assert_eq!(
            parent_of(Kind::StatefulSet, &sts("model.example.com/v1")),
            Some(key)
        );
        assert_eq!(parent_of(Kind::StatefulSet, &sts("apps/v1")), None);
        CustomKind::serve(kind, false);
        assert_eq!(
            parent_of(Kind::StatefulSet, &sts("model.example.com/v1")),
            None
        );
    }
}
