//! The Node authorizer (upstream's plugin/pkg/auth/authorizer/node), pure: a node
//! (`system:node:<name>` in `system:nodes`) may read the Secrets, ConfigMaps, claims and
//! volumes of pods bound to it, ask tokens for their ServiceAccounts, use its own Lease,
//! CSINode and Node, list and watch only its own pods, and otherwise what the
//! `system:node` ClusterRole's rules allow, which no binding grants to anyone else.
//! NodeRestriction admission then limits writes to what is the node's own.
//!
//! Upstream keeps a graph of pods, their references and nodes; here the API server answers
//! [`Graph::related`] from the pods it stores, and [`pod_references`] says what one pod
//! refers to. Decisions follow upstream with `AuthorizeNodeWithSelectors` on (its default
//! since 1.32).

use std::sync::OnceLock;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;
use skiff_apimachinery::user::UserInfo;

use crate::attributes::Attributes;
use crate::authorizer::Decision;
use crate::rule::rule_allows;

/// The namespace of node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// What a node may reach through the pods bound to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    Secret,
    ConfigMap,
    PersistentVolumeClaim,
    PersistentVolume,
    ServiceAccount,
    VolumeAttachment,
}

/// Upstream's authorizer graph, asked one path at a time.
pub trait Graph: Send + Sync {
    /// Whether the object `kind` `namespace/name` has a path to node `node`: a pod bound to
    /// it (or the pod itself) refers to it, or, for a volume, to a claim bound to it.
    fn related(&self, node: &str, kind: Kind, namespace: &str, name: &str) -> bool;
}

/// The node a user is (upstream's default `NodeIdentifier`): `Some("")` for a user in
/// `system:nodes` with the prefix but no name, `None` for a user who is no node.
pub fn identify(user: &UserInfo) -> Option<&str> {
    if !user.in_group("system:nodes") {
        return None;
    }
    user.username.strip_prefix("system:node:")
}

/// The rules every node has (upstream's `NodeRules()`, the `system:node` ClusterRole).
pub fn node_rules() -> &'static [PolicyRule] {
    static RULES: OnceLock<Vec<PolicyRule>> = OnceLock::new();
    RULES.get_or_init(|| {
        crate::bootstrap::cluster_roles()
            .into_iter()
            .find(|r| r.metadata.name.as_deref() == Some("system:node"))
            .and_then(|r| r.rules)
            .unwrap_or_default()
    })
}

fn allow() -> Option<Decision> {
    Some(Decision {
        allowed: true,
        reason: String::new(),
    })
}

fn no_opinion(reason: impl Into<String>) -> Option<Decision> {
    Some(Decision {
        allowed: false,
        reason: reason.into(),
    })
}

/// Whether a field selector (the request's `fieldSelector`, URL-decoded) requires `field`
/// to equal `value` (`=` or `==`, as upstream's `selection.Equals`).
pub fn selects(field_selector: Option<&str>, field: &str, value: &str) -> bool {
    let Some(selector) = field_selector else {
        return false;
    };
    selector.split(',').any(|req| {
        let req = req.trim();
        let Some((k, v)) = req.split_once('=') else {
            return false;
        };
        if k.ends_with('!') {
            return false;
        }
        let v = v.strip_prefix('=').unwrap_or(v);
        k.trim() == field && v.trim() == value
    })
}

/// The Node authorizer's decision on `a`: `None` when the user is no node (no opinion, no
/// reason), else allowed or no opinion with upstream's reason. `field_selector` is the
/// request's, URL-decoded.
pub fn authorize(
    a: &Attributes,
    field_selector: Option<&str>,
    graph: &dyn Graph,
) -> Option<Decision> {
    let node = identify(&a.user)?;
    if node.is_empty() {
        return no_opinion(format!("unknown node for user {:?}", a.user.username));
    }
    if a.resource_request {
        let decision = match (a.api_group.as_str(), a.resource.as_str()) {
            ("", "secrets") => Some(read_namespaced(node, Kind::Secret, a, graph)),
            ("", "configmaps") => Some(read_namespaced(node, Kind::ConfigMap, a, graph)),
            ("", "persistentvolumeclaims") => Some(if a.subresource == "status" {
                status_update(node, Kind::PersistentVolumeClaim, a, graph)
            } else {
                get(node, Kind::PersistentVolumeClaim, a, graph)
            }),
            ("", "persistentvolumes") => Some(get(node, Kind::PersistentVolume, a, graph)),
            ("storage.k8s.io", "volumeattachments") => {
                Some(get(node, Kind::VolumeAttachment, a, graph))
            }
            ("", "serviceaccounts") => Some(create_token(node, a, graph)),
            ("coordination.k8s.io", "leases") => Some(lease(node, a)),
            ("storage.k8s.io", "csinodes") => Some(csi_node(node, a)),
            ("", "nodes") => Some(node_object(node, a)),
            ("", "pods") => Some(pod(node, a, field_selector, graph)),
            _ => None,
        };
        if let Some(d) = decision {
            return d;
        }
    }
    if node_rules().iter().any(|r| rule_allows(a, r)) {
        return allow();
    }
    no_opinion("")
}

fn relationship(node: &str, kind: Kind, a: &Attributes, graph: &dyn Graph) -> Option<Decision> {
    if a.name.is_empty() {
        return no_opinion("No Object name found");
    }
    if graph.related(node, kind, &a.namespace, &a.name) {
        allow()
    } else {
        no_opinion(format!(
            "no relationship found between node '{node}' and this object"
        ))
    }
}

fn status_update(node: &str, kind: Kind, a: &Attributes, graph: &dyn Graph) -> Option<Decision> {
    if !matches!(a.verb.as_str(), "update" | "patch") {
        return no_opinion("can only get/update/patch this type");
    }
    if a.subresource != "status" {
        return no_opinion("can only update status subresource");
    }
    relationship(node, kind, a, graph)
}

fn get(node: &str, kind: Kind, a: &Attributes, graph: &dyn Graph) -> Option<Decision> {
    if a.verb != "get" {
        return no_opinion("can only get individual resources of this type");
    }
    if !a.subresource.is_empty() {
        return no_opinion("cannot get subresource");
    }
    relationship(node, kind, a, graph)
}

fn read_namespaced(node: &str, kind: Kind, a: &Attributes, graph: &dyn Graph) -> Option<Decision> {
    if !matches!(a.verb.as_str(), "get" | "list" | "watch") {
        return no_opinion("can only read resources of this type");
    }
    if !a.subresource.is_empty() {
        return no_opinion("cannot read subresource");
    }
    if a.namespace.is_empty() {
        return no_opinion("can only read namespaced object of this type");
    }
    relationship(node, kind, a, graph)
}

fn create_token(node: &str, a: &Attributes, graph: &dyn Graph) -> Option<Decision> {
    if a.verb != "create" || a.name.is_empty() {
        return no_opinion("can only create tokens for individual service accounts");
    }
    if a.subresource != "token" {
        return no_opinion("can only create token subresource of serviceaccount");
    }
    relationship(node, Kind::ServiceAccount, a, graph)
}

fn lease(node: &str, a: &Attributes) -> Option<Decision> {
    if !matches!(
        a.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) {
        return no_opinion("can only get, create, update, patch, or delete a node lease");
    }
    if a.namespace != NODE_LEASE_NAMESPACE {
        return no_opinion(format!(
            "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
        ));
    }
    if a.verb != "create" && a.name != node {
        return no_opinion("can only access node lease with the same name as the requesting node");
    }
    allow()
}

fn csi_node(node: &str, a: &Attributes) -> Option<Decision> {
    if !matches!(
        a.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) {
        return no_opinion("can only get, create, update, patch, or delete a CSINode");
    }
    if !a.subresource.is_empty() {
        return no_opinion("cannot authorize CSINode subresources");
    }
    if a.verb != "create" && a.name != node {
        return no_opinion("can only access CSINode with the same name as the requesting node");
    }
    allow()
}

fn node_object(node: &str, a: &Attributes) -> Option<Decision> {
    match (a.subresource.as_str(), a.verb.as_str()) {
        // NodeRestriction limits a node to writing its own Node.
        ("", "create" | "update" | "patch") => allow(),
        ("", "get" | "list" | "watch") => {
            if a.name == node {
                allow()
            } else if a.name.is_empty() {
                no_opinion(format!(
                    "node '{node}' cannot read all nodes, only its own Node object"
                ))
            } else {
                no_opinion(format!(
                    "node '{node}' cannot read '{}', only its own Node object",
                    a.name
                ))
            }
        }
        ("status", "update" | "patch") => allow(),
        _ => no_opinion(""),
    }
}

fn pod(
    node: &str,
    a: &Attributes,
    field_selector: Option<&str>,
    graph: &dyn Graph,
) -> Option<Decision> {
    match (a.subresource.as_str(), a.verb.as_str()) {
        ("", "get") => get(node, Kind::Pod, a, graph),
        ("", "list" | "watch") => {
            if selects(field_selector, "spec.nodeName", node) {
                allow()
            } else if !a.name.is_empty() {
                relationship(node, Kind::Pod, a, graph)
            } else {
                no_opinion("can only list/watch pods with spec.nodeName field selector")
            }
        }
        // Mirror pods and the pods it runs: NodeRestriction limits both to the node's own.
        ("", "create" | "delete") => allow(),
        ("status", "update" | "patch") => allow(),
        ("eviction", "create") => allow(),
        _ => no_opinion(""),
    }
}

/// What a pod (wire JSON) refers to that its node may read: Secrets, ConfigMaps, claims
/// (each with its name), and its ServiceAccount, as upstream's graph populator adds edges
/// (`VisitPodSecretNames`, `VisitPodConfigmapNames`, claim and ephemeral volumes).
pub fn pod_references(pod: &Value) -> Vec<(Kind, String)> {
    let mut out: Vec<(Kind, String)> = Vec::new();
    let mut add = |kind: Kind, name: Option<&str>| {
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            if !out.iter().any(|(k, m)| *k == kind && m == n) {
                out.push((kind, n.to_owned()));
            }
        }
    };
    let spec = &pod["spec"];
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    add(
        Kind::ServiceAccount,
        spec["serviceAccountName"]
            .as_str()
            .or_else(|| spec["serviceAccount"].as_str()),
    );
    for s in spec["imagePullSecrets"].as_array().into_iter().flatten() {
        add(Kind::Secret, s["name"].as_str());
    }
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten());
    for c in containers {
        for e in c["envFrom"].as_array().into_iter().flatten() {
            add(Kind::Secret, e["secretRef"]["name"].as_str());
            add(Kind::ConfigMap, e["configMapRef"]["name"].as_str());
        }
        for e in c["env"].as_array().into_iter().flatten() {
            add(
                Kind::Secret,
                e["valueFrom"]["secretKeyRef"]["name"].as_str(),
            );
            add(
                Kind::ConfigMap,
                e["valueFrom"]["configMapKeyRef"]["name"].as_str(),
            );
        }
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        add(Kind::Secret, v["secret"]["secretName"].as_str());
        add(Kind::ConfigMap, v["configMap"]["name"].as_str());
        for source in v["projected"]["sources"].as_array().into_iter().flatten() {
            add(Kind::Secret, source["secret"]["name"].as_str());
            add(Kind::ConfigMap, source["configMap"]["name"].as_str());
        }
        // Volume plugins that name a Secret (upstream's VisitPodSecretNames).
        for plugin in [
            "azureFile",
            "cephfs",
            "cinder",
            "flexVolume",
            "rbd",
            "scaleIO",
            "iscsi",
            "storageos",
            "csi",
        ] {
            let p = &v[plugin];
            add(
                Kind::Secret,
                p["secretRef"]["name"]
                    .as_str()
                    .or_else(|| p["secretName"].as_str())
                    .or_else(|| p["nodePublishSecretRef"]["name"].as_str()),
            );
        }
        add(
            Kind::PersistentVolumeClaim,
            v["persistentVolumeClaim"]["claimName"].as_str(),
        );
        if v["ephemeral"].is_object() {
            let volume = v["name"].as_str().unwrap_or_default();
            add(
                Kind::PersistentVolumeClaim,
                Some(&format!("{pod_name}-{volume}")),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
