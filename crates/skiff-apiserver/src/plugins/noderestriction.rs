//! Upstream's NodeRestriction admission plugin (plugin/pkg/admission/noderestriction): a
//! node may write only what is its own — its Node (no taints, no `node-restriction` or
//! unknown `kubernetes.io` labels), its Lease, the status of pods bound to it, the deletion
//! and eviction of those pods, tokens bound to them, mirror pods — what the Node
//! authorizer lets every node attempt (decision 0036).
//!
//! [`decide`] is the pure decision; the API server calls [`check`] at validating admission
//! (create, update), on delete, on eviction and on TokenRequest, with the pod a request
//! names read from the store.

use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::resources::ResourceInfo;
use crate::webhook::Operation;

/// One request as NodeRestriction sees it.
pub struct Request<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub operation: Operation,
    pub namespace: &'a str,
    /// The object's name from the URL (empty on create).
    pub name: &'a str,
    /// The object written (the TokenRequest for a token, the Eviction for an eviction).
    pub object: Option<&'a Value>,
    pub old: Option<&'a Value>,
}

/// What `decide` needs to read: the pod named by a delete, an eviction or a token's binding,
/// and the node's uid for a mirror pod's owner.
pub trait Lookup {
    fn pod(&self, namespace: &str, name: &str) -> Option<Value>;
    fn node_uid(&self, name: &str) -> Option<String>;
}

/// Why a request is refused, or a pod it names is missing (upstream returns the NotFound).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Forbidden(String),
    PodNotFound(String),
}

fn forbid<T>(reason: impl Into<String>) -> std::result::Result<T, Refusal> {
    Err(Refusal::Forbidden(reason.into()))
}

/// Upstream's `Admit` for node `node` (empty: a node user without a name).
pub fn decide(
    node: &str,
    user: &str,
    r: &Request<'_>,
    lookup: &dyn Lookup,
) -> std::result::Result<(), Refusal> {
    if node.is_empty() {
        return forbid(format!("could not determine node from user {user:?}"));
    }
    match (r.group, r.resource) {
        ("", "pods") => match r.subresource {
            "" => pod(node, r, lookup),
            "status" => pod_status(node, r),
            "eviction" => eviction(node, r, lookup),
            other => forbid(format!(
                "unexpected pod subresource {other:?}, only 'status' and 'eviction' are allowed"
            )),
        },
        ("", "nodes") => node_object(node, r),
        ("", "persistentvolumeclaims") => match r.subresource {
            "status" => pvc_status(node, r),
            _ => forbid("may only update PVC status"),
        },
        ("", "serviceaccounts") => token(node, r, lookup),
        ("coordination.k8s.io", "leases") => lease(node, r),
        ("storage.k8s.io", "csinodes") => {
            let name = target_name(r);
            if name != node {
                return forbid("can only access CSINode with the same name as the requesting node");
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn bound_to(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or_default()
}

fn pod(node: &str, r: &Request<'_>, lookup: &dyn Lookup) -> std::result::Result<(), Refusal> {
    match r.operation {
        Operation::Create => mirror_pod(node, r.object.unwrap_or(&Value::Null), lookup),
        Operation::Delete => {
            let Some(existing) = lookup.pod(r.namespace, r.name) else {
                return Err(Refusal::PodNotFound(r.name.to_owned()));
            };
            if bound_to(&existing) != node {
                return forbid(format!(
                    "node {node:?} can only delete pods with spec.nodeName set to itself"
                ));
            }
            Ok(())
        }
        op => forbid(format!(
            "unexpected operation {:?}, node {node:?} can only create and delete mirror pods",
            op.as_str()
        )),
    }
}

const MIRROR: &str = "kubernetes.io/config.mirror";

fn mirror_pod(node: &str, pod: &Value, lookup: &dyn Lookup) -> std::result::Result<(), Refusal> {
    if pod["metadata"]["annotations"][MIRROR].is_null() {
        return forbid(format!(
            "pod does not have {MIRROR:?} annotation, node {node:?} can only create mirror pods"
        ));
    }
    if bound_to(pod) != node {
        return forbid(format!(
            "node {node:?} can only create pods with spec.nodeName set to itself"
        ));
    }
    let owners = pod["metadata"]["ownerReferences"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    match owners {
        [] => {
            return forbid(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            ))
        }
        [owner] => {
            if owner["apiVersion"] != "v1" || owner["kind"] != "Node" || owner["name"] != node {
                return forbid(format!(
                    "node {node:?} can only create pods with an owner reference set to itself"
                ));
            }
            if owner["controller"] != true {
                return forbid(format!(
                    "node {node:?} can only create pods with a controller owner reference set to itself"
                ));
            }
            if owner["blockOwnerDeletion"] == true {
                return forbid(format!(
                    "node {node:?} must not set blockOwnerDeletion on an owner reference"
                ));
            }
            let uid = owner["uid"].as_str().unwrap_or_default();
            match lookup.node_uid(node) {
                None => return forbid(format!("error looking up node {node} to verify uid")),
                Some(actual) if actual != uid => {
                    return forbid(format!(
                        "node {node} UID mismatch: expected {uid} got {actual}"
                    ))
                }
                Some(_) => {}
            }
        }
        _ => {
            return forbid(format!(
                "node {node:?} can only create pods with a single owner reference set to itself"
            ))
        }
    }
    let refs = skiff_rbac::node::pod_references(pod);
    use skiff_rbac::node::Kind;
    if !pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        return forbid(format!(
            "node {node:?} can not create pods that reference a service account"
        ));
    }
    for (kind, what) in [
        (Kind::Secret, "secrets"),
        (Kind::ConfigMap, "configmaps"),
        (Kind::PersistentVolumeClaim, "persistentvolumeclaims"),
    ] {
        if refs.iter().any(|(k, _)| *k == kind) {
            return forbid(format!(
                "node {node:?} can not create pods that reference {what}"
            ));
        }
    }
    Ok(())
}

fn pod_status(node: &str, r: &Request<'_>) -> std::result::Result<(), Refusal> {
    if r.operation != Operation::Update {
        return forbid(format!("unexpected operation {:?}", r.operation.as_str()));
    }
    let old = r.old.unwrap_or(&Value::Null);
    if bound_to(old) != node {
        return forbid(format!(
            "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
        ));
    }
    let new = r.object.unwrap_or(&Value::Null);
    if labels(old) != labels(new) {
        return forbid(format!(
            "node {node:?} cannot update labels through pod status"
        ));
    }
    if old["status"]["resourceClaimStatuses"] != new["status"]["resourceClaimStatuses"] {
        return forbid(format!(
            "node {node:?} cannot update resource claim statues"
        ));
    }
    Ok(())
}

fn eviction(node: &str, r: &Request<'_>, lookup: &dyn Lookup) -> std::result::Result<(), Refusal> {
    if r.operation != Operation::Create {
        return forbid(format!("unexpected operation {}", r.operation.as_str()));
    }
    let name = if r.name.is_empty() {
        r.object
            .and_then(|e| e["metadata"]["name"].as_str())
            .unwrap_or_default()
    } else {
        r.name
    };
    if name.is_empty() {
        return forbid("could not determine pod from request data");
    }
    let Some(existing) = lookup.pod(r.namespace, name) else {
        return Err(Refusal::PodNotFound(name.to_owned()));
    };
    if bound_to(&existing) != node {
        return forbid(format!(
            "node {node} can only evict pods with spec.nodeName set to itself"
        ));
    }
    Ok(())
}

fn pvc_status(node: &str, r: &Request<'_>) -> std::result::Result<(), Refusal> {
    if r.operation != Operation::Update {
        return forbid(format!("unexpected operation {:?}", r.operation.as_str()));
    }
    // Everything but status.capacity, status.conditions, resourceVersion and managedFields
    // must be unchanged: a node must not relabel, add finalizers or owners.
    let strip = |v: Option<&Value>| {
        let mut v = v.cloned().unwrap_or(Value::Null);
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
        if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
            status.remove("capacity");
            status.remove("conditions");
            status.remove("allocatedResourceStatuses");
            status.remove("allocatedResources");
        }
        v
    };
    if strip(r.old) != strip(r.object) {
        return forbid(format!(
            "node {node:?} is not allowed to update fields other than status.capacity and status.conditions"
        ));
    }
    Ok(())
}

fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Upstream's `kubeletapis.IsKubeletLabel`: the `kubernetes.io` labels a kubelet may set.
fn is_kubelet_label(key: &str) -> bool {
    const LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "kubernetes.io/os",
        "kubernetes.io/arch",
    ];
    if LABELS.contains(&key) {
        return true;
    }
    let namespace = label_namespace(key);
    ["kubelet.kubernetes.io", "node.kubernetes.io"]
        .iter()
        .any(|ns| namespace == *ns || namespace.ends_with(&format!(".{ns}")))
}

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map(|(ns, _)| ns).unwrap_or_default()
}

/// Upstream's `getForbiddenLabels` over the keys that differ between `new` and `old`.
fn forbidden_labels(new: &Value, old: Option<&Value>) -> Vec<String> {
    let (a, b) = (labels(new), old.map(labels).unwrap_or_default());
    let mut modified: Vec<&String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k)
        .chain(
            b.iter()
                .filter(|(k, v)| a.get(*k) != Some(v))
                .map(|(k, _)| k),
        )
        .collect();
    modified.sort();
    modified.dedup();
    modified
        .into_iter()
        .filter(|key| {
            let ns = label_namespace(key);
            let restricted = ns == "node-restriction.kubernetes.io"
                || ns.ends_with(".node-restriction.kubernetes.io");
            let kubernetes = ns == "kubernetes.io"
                || ns.ends_with(".kubernetes.io")
                || ns == "k8s.io"
                || ns.ends_with(".k8s.io");
            restricted || (kubernetes && !is_kubelet_label(key))
        })
        .cloned()
        .collect()
}

fn node_object(node: &str, r: &Request<'_>) -> std::result::Result<(), Refusal> {
    let requested = match r.operation {
        Operation::Create if r.name.is_empty() => r
            .object
            .and_then(|o| o["metadata"]["name"].as_str())
            .unwrap_or_default(),
        _ => r.name,
    };
    if requested != node {
        return forbid(format!(
            "node {node:?} is not allowed to modify node {requested:?}"
        ));
    }
    let new = r.object.unwrap_or(&Value::Null);
    match r.operation {
        Operation::Create => {
            if !new["spec"]["configSource"].is_null() {
                return forbid(format!(
                    "node {node:?} is not allowed to create pods with a non-nil configSource"
                ));
            }
            let bad = forbidden_labels(new, None);
            if !bad.is_empty() {
                return forbid(format!(
                    "node {node:?} is not allowed to set the following labels: {}",
                    bad.join(", ")
                ));
            }
        }
        Operation::Update => {
            let old = r.old.unwrap_or(&Value::Null);
            let source = &new["spec"]["configSource"];
            if !source.is_null() && *source != old["spec"]["configSource"] {
                return forbid(format!(
                    "node {node:?} is not allowed to update configSource to a new non-nil configSource"
                ));
            }
            let taints = |v: &Value| match &v["spec"]["taints"] {
                Value::Array(a) if a.is_empty() => Value::Null,
                t => t.clone(),
            };
            if taints(new) != taints(old) {
                return forbid(format!("node {node:?} is not allowed to modify taints"));
            }
            let bad = forbidden_labels(new, Some(old));
            if !bad.is_empty() {
                return forbid(format!(
                    "is not allowed to modify labels: {}",
                    bad.join(", ")
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

fn token(node: &str, r: &Request<'_>, lookup: &dyn Lookup) -> std::result::Result<(), Refusal> {
    if r.operation != Operation::Create || r.subresource != "token" {
        return Ok(());
    }
    let spec = r.object.map(|o| &o["spec"]).unwrap_or(&Value::Null);
    let bound = &spec["boundObjectRef"];
    let name = bound["name"].as_str().unwrap_or_default();
    if bound["apiVersion"] != "v1" || bound["kind"] != "Pod" || name.is_empty() {
        return forbid("node requested token not bound to a pod");
    }
    let uid = bound["uid"].as_str().unwrap_or_default();
    if uid.is_empty() {
        return forbid("node requested token with a pod binding without a uid");
    }
    let Some(pod) = lookup.pod(r.namespace, name) else {
        return Err(Refusal::PodNotFound(name.to_owned()));
    };
    if pod["metadata"]["uid"].as_str() != Some(uid) {
        return forbid(format!(
            "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
        ));
    }
    if bound_to(&pod) != node {
        return forbid("node requested token bound to a pod scheduled on a different node");
    }
    Ok(())
}

/// The name a request acts on: the new object's on create (the URL has none), else the URL's.
fn target_name<'a>(r: &Request<'a>) -> &'a str {
    match r.operation {
        Operation::Create => r
            .object
            .and_then(|o| o["metadata"]["name"].as_str())
            .unwrap_or_default(),
        _ => r.name,
    }
}

fn lease(node: &str, r: &Request<'_>) -> std::result::Result<(), Refusal> {
    if r.namespace != skiff_rbac::node::NODE_LEASE_NAMESPACE {
        return forbid(format!(
            "can only access leases in the {:?} system namespace",
            skiff_rbac::node::NODE_LEASE_NAMESPACE
        ));
    }
    let name = target_name(r);
    if name != node {
        return forbid("can only access node lease with the same name as the requesting node");
    }
    Ok(())
}

/// Reads pods and nodes from the store.
struct StoreLookup<'a>(&'a Api);

impl Lookup for StoreLookup<'_> {
    fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.0.core_object("pods", Some(namespace), name)
    }

    fn node_uid(&self, name: &str) -> Option<String> {
        self.0
            .core_object("nodes", None, name)
            .and_then(|n| n["metadata"]["uid"].as_str().map(str::to_owned))
    }
}

impl Api {
    /// One core/v1 object as stored now, if it exists and reads.
    pub(crate) fn core_object(&self, plural: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let r = self.registry.get("", "v1", plural)?;
        let kv = self.store.get(&r.key(ns, Some(name))).ok()??;
        crate::handler::materialize(&kv).ok()
    }
}

/// NodeRestriction for a request of `user` on `resource`: nothing unless the user is a
/// node; upstream's 403 (or the named pod's 404) otherwise.
pub(crate) fn check(
    api: &Api,
    user: &skiff_apimachinery::user::UserInfo,
    resource: &ResourceInfo,
    r: &Request<'_>,
) -> Result<()> {
    let Some(node) = skiff_rbac::node::identify(user) else {
        return Ok(());
    };
    match decide(node, &user.username, r, &StoreLookup(api)) {
        Ok(()) => Ok(()),
        Err(Refusal::Forbidden(reason)) => Err(ApiError::denied(resource, r.name, &reason)),
        Err(Refusal::PodNotFound(name)) => {
            let pods = api
                .registry
                .get("", "v1", "pods")
                .ok_or(ApiError::NoRoute)?;
            Err(ApiError::not_found(&pods, &name))
        }
    }
}

/// [`check`] for a request admission describes with `attrs`.
pub(crate) fn check_attrs(
    api: &Api,
    attrs: &crate::webhook::Attributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<()> {
    let r = Request {
        group: &attrs.resource.group,
        resource: &attrs.resource.plural,
        subresource: attrs.subresource.unwrap_or_default(),
        operation: attrs.operation,
        namespace: attrs.namespace.unwrap_or_default(),
        name: attrs.name,
        object,
        old,
    };
    check(api, &attrs.params.user, attrs.resource, &r)
}

#[cfg(test)]
mod tests;
