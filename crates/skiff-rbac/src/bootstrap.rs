//! The bootstrap policy upstream's kube-apiserver creates at startup
//! (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go), and its reconciliation as
//! the `rbac/bootstrap-roles` post-start hook does it: what is missing is added, what users
//! changed is kept, and an object annotated `rbac.authorization.kubernetes.io/autoupdate:
//! "false"` is left alone.
//!
//! skiff's components run with upstream's identities and these roles, nothing more
//! (decision 0036).

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use skiff_apimachinery::user::{ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, SYSTEM_MASTERS};

use crate::authorizer::GROUP;
use crate::rule::covers;

/// The annotation that lets reconciliation update an object ("true", the default when
/// absent on objects it made) or not ("false").
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// The label every bootstrap object carries.
pub const BOOTSTRAPPING: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
/// Labels that aggregate a ClusterRole into `admin`, `edit` and `view`.
pub const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
pub const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
pub const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// The role of the controllers' approver of nodes' serving certificates (decision 0034).
pub const KUBELET_SERVING_APPROVER: &str = "system:skiff:kubelet-serving-approver";
/// The group of every bootstrap token.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";
/// Upstream's role that lets the approver approve a new node's client certificate.
pub const NODE_CLIENT_APPROVAL: &str =
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient";
/// Upstream's role that lets the approver approve a node's renewal of its own.
pub const SELF_NODE_CLIENT_APPROVAL: &str =
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient";
pub(crate) const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

pub(crate) fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        ..PolicyRule::default()
    }
}

pub(crate) fn named(mut r: PolicyRule, names: &[&str]) -> PolicyRule {
    r.resource_names = Some(strings(names));
    r
}

fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: Some(strings(urls)),
        ..PolicyRule::default()
    }
}

pub(crate) fn meta(name: &str, extra_labels: &[(&str, &str)]) -> ObjectMeta {
    let mut labels = BTreeMap::from([(BOOTSTRAPPING.0.to_owned(), BOOTSTRAPPING.1.to_owned())]);
    labels.extend(
        extra_labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([(AUTOUPDATE.to_owned(), "true".to_owned())])),
        ..ObjectMeta::default()
    }
}

pub(crate) fn role(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, labels),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn aggregated(name: &str, labels: &[(&str, &str)], selector_label: &str) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, labels),
        rules: None,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    selector_label.to_owned(),
                    "true".to_owned(),
                )])),
                match_expressions: None,
            }]),
        }),
    }
}

/// `create`/`update`/`patch` of Events in both groups: upstream's `eventsRule()`.
pub(crate) fn events_rule() -> PolicyRule {
    rule(
        &["create", "update", "patch"],
        &["", "events.k8s.io"],
        &["events"],
    )
}

/// The bootstrap ClusterRoles, as upstream's `ClusterRoles()` and `ControllerRoles()` name
/// them, and the roles of skiff's components ([`crate::components`]).
pub fn cluster_roles() -> Vec<ClusterRole> {
    let mut roles = policy_roles();
    roles.extend(crate::components::controller_roles());
    roles.extend(crate::components::component_roles());
    roles
}

/// The roles of upstream's policy.go.
fn policy_roles() -> Vec<ClusterRole> {
    vec![
        role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        role(
            "system:discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        role(
            "system:monitoring",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/metrics",
                    "/metrics/slis",
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/livez/*",
                    "/readyz/*",
                    "/healthz/*",
                ],
            )],
        ),
        role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        aggregated("admin", &[], AGGREGATE_TO_ADMIN),
        aggregated("edit", &[(AGGREGATE_TO_ADMIN, "true")], AGGREGATE_TO_EDIT),
        aggregated("view", &[(AGGREGATE_TO_EDIT, "true")], AGGREGATE_TO_VIEW),
        role(
            "system:aggregate-to-admin",
            &[(AGGREGATE_TO_ADMIN, "true")],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                rule(READ_WRITE, &[GROUP], &["roles", "rolebindings"]),
            ],
        ),
        role(
            "system:aggregate-to-edit",
            &[(AGGREGATE_TO_EDIT, "true")],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                    ],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                        "persistentvolumeclaims",
                        "configmaps",
                        "secrets",
                        "events",
                    ],
                ),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    &["apps"],
                    &[
                        "statefulsets",
                        "statefulsets/scale",
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "replicasets",
                        "replicasets/scale",
                    ],
                ),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["jobs", "cronjobs"]),
                rule(
                    WRITE,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "ingresses",
                        "replicasets",
                        "replicasets/scale",
                        "replicationcontrollers/scale",
                        "networkpolicies",
                    ],
                ),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    WRITE,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses"],
                ),
                rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        role(
            "system:aggregate-to-view",
            &[(AGGREGATE_TO_VIEW, "true")],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "configmaps",
                    ],
                ),
                rule(
                    READ,
                    &[""],
                    &[
                        "limitranges",
                        "resourcequotas",
                        "bindings",
                        "events",
                        "pods/status",
                        "resourcequotas/status",
                        "namespaces/status",
                        "replicationcontrollers/status",
                        "pods/log",
                    ],
                ),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "statefulsets",
                        "statefulsets/status",
                        "statefulsets/scale",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/status",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/status",
                        "replicasets/scale",
                    ],
                ),
                rule(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                rule(
                    READ,
                    &["batch"],
                    &["jobs", "cronjobs", "cronjobs/status", "jobs/status"],
                ),
                rule(
                    READ,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "ingresses",
                        "ingresses/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "replicationcontrollers/scale",
                        "networkpolicies",
                    ],
                ),
                rule(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses", "ingresses/status"],
                ),
            ],
        ),
        role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        role(
            "system:service-account-issuer-discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
        ),
        role(
            "system:kube-controller-manager",
            &[],
            vec![
                events_rule(),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    rule(&["get", "update"], &["coordination.k8s.io"], &["leases"]),
                    &["kube-controller-manager"],
                ),
                rule(&["create"], &[""], &["secrets", "serviceaccounts"]),
                rule(&["delete"], &[""], &["secrets"]),
                rule(
                    &["get"],
                    &[""],
                    &["configmaps", "namespaces", "secrets", "serviceaccounts"],
                ),
                rule(&["update"], &[""], &["secrets", "serviceaccounts"]),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                rule(&["list", "watch"], &["*"], &["*"]),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
            ],
        ),
        role(
            "system:kube-scheduler",
            &[],
            vec![
                events_rule(),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    rule(&["get", "update"], &["coordination.k8s.io"], &["leases"]),
                    &["kube-scheduler"],
                ),
                rule(READ, &[""], &["nodes"]),
                rule(&["get", "list", "watch", "delete"], &[""], &["pods"]),
                rule(&["create"], &[""], &["pods/binding", "bindings"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(READ, &[""], &["services", "replicationcontrollers"]),
                rule(READ, &["apps", "extensions"], &["replicasets"]),
                rule(READ, &["apps"], &["statefulsets"]),
                rule(READ, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    READ,
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                rule(READ, &["storage.k8s.io"], &["csinodes"]),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["storage.k8s.io"], &["csidrivers"]),
                rule(READ, &["storage.k8s.io"], &["csistoragecapacities"]),
            ],
        ),
        // Full access to the kubelet API; bound to the API server's kubelet client below.
        role(
            "system:kubelet-api-admin",
            &[],
            vec![
                rule(READ, &[""], &["nodes"]),
                rule(&["proxy"], &[""], &["nodes"]),
                rule(
                    &["*"],
                    &[""],
                    &[
                        "nodes/proxy",
                        "nodes/metrics",
                        "nodes/spec",
                        "nodes/stats",
                        "nodes/log",
                    ],
                ),
            ],
        ),
        // Kubelet TLS bootstrap: a bootstrap token asks for a node's client certificate
        // and watches it signed; the approver approves what `nodeclient` (a new node) or
        // `selfnodeclient` (a node renewing its own) lets the requester create.
        role(
            "system:node-bootstrapper",
            &[],
            vec![rule(
                &["create", "get", "list", "watch"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
            )],
        ),
        role(
            NODE_CLIENT_APPROVAL,
            &[],
            vec![rule(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
            )],
        ),
        role(
            SELF_NODE_CLIENT_APPROVAL,
            &[],
            vec![rule(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
            )],
        ),
        // skiff's approver of nodes' own serving certificates (decision 0034); upstream
        // leaves that signer's approvals to an add-on.
        role(
            KUBELET_SERVING_APPROVER,
            &[],
            vec![
                rule(&["get"], &[""], &["nodes"]),
                rule(
                    &["update"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests/approval"],
                ),
                named(
                    rule(&["approve"], &["certificates.k8s.io"], &["signers"]),
                    &["kubernetes.io/kubelet-serving"],
                ),
            ],
        ),
        role(
            "system:node",
            &[],
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews", "localsubjectaccessreviews"],
                ),
                rule(READ, &[""], &["services"]),
                rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
                rule(&["update", "patch"], &[""], &["nodes/status"]),
                rule(&["update", "patch"], &[""], &["nodes"]),
                rule(&["create", "update", "patch"], &[""], &["events"]),
                rule(READ, &[""], &["pods"]),
                rule(&["create", "delete"], &[""], &["pods"]),
                rule(&["update", "patch"], &[""], &["pods/status"]),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(READ, &[""], &["secrets", "configmaps"]),
                rule(
                    &["get"],
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                rule(&["get"], &[""], &["endpoints"]),
                rule(
                    &["create", "get", "list", "watch"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
                rule(
                    &["get", "create", "update", "patch", "delete"],
                    &["coordination.k8s.io"],
                    &["leases"],
                ),
                rule(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    &["update", "patch"],
                    &[""],
                    &["persistentvolumeclaims/status"],
                ),
                rule(
                    &["get", "create", "update", "patch", "delete"],
                    &["storage.k8s.io"],
                    &["csinodes"],
                ),
                rule(
                    &["get", "watch", "list"],
                    &["storage.k8s.io"],
                    &["csidrivers"],
                ),
                rule(
                    &["get", "watch", "list"],
                    &["node.k8s.io"],
                    &["runtimeclasses"],
                ),
            ],
        ),
    ]
}

pub(crate) fn subject(kind: &str, name: &str) -> Subject {
    Subject {
        api_group: Some(GROUP.to_owned()),
        kind: kind.to_owned(),
        name: name.to_owned(),
        namespace: None,
    }
}

pub(crate) fn binding(role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    named_binding(role, role, subjects)
}

/// A binding of `role` under a name of its own.
fn named_binding(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, &[]),
        role_ref: RoleRef {
            api_group: GROUP.to_owned(),
            kind: "ClusterRole".to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(subjects),
    }
}

/// The bootstrap ClusterRoleBindings, each named after its role as upstream's. As upstream,
/// `system:node` is bound to nobody: the Node authorizer grants its rules to each node for
/// what is its own (decision 0036).
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    let mut bindings = policy_role_bindings();
    bindings.extend(crate::components::controller_role_bindings());
    bindings.extend(crate::components::component_role_bindings());
    bindings
}

fn policy_role_bindings() -> Vec<ClusterRoleBinding> {
    vec![
        binding("cluster-admin", vec![subject("Group", SYSTEM_MASTERS)]),
        binding(
            "system:monitoring",
            vec![subject("Group", "system:monitoring")],
        ),
        binding(
            "system:discovery",
            vec![subject("Group", ALL_AUTHENTICATED)],
        ),
        binding(
            "system:basic-user",
            vec![subject("Group", ALL_AUTHENTICATED)],
        ),
        binding(
            "system:public-info-viewer",
            vec![
                subject("Group", ALL_AUTHENTICATED),
                subject("Group", ALL_UNAUTHENTICATED),
            ],
        ),
        binding(
            "system:service-account-issuer-discovery",
            vec![subject("Group", "system:serviceaccounts")],
        ),
        binding(
            "system:kube-controller-manager",
            vec![subject("User", "system:kube-controller-manager")],
        ),
        binding(
            "system:kube-scheduler",
            vec![subject("User", "system:kube-scheduler")],
        ),
        binding("system:node", vec![]),
        // Upstream leaves this binding to the installer (kubeadm, k3s); skiff's API server
        // reaches nodes as `kube-apiserver-kubelet-client` (decision 0034).
        binding(
            "system:kubelet-api-admin",
            vec![subject("User", "kube-apiserver-kubelet-client")],
        ),
        // Kubelet TLS bootstrap, as kubeadm binds it (skiff is the installer): every
        // bootstrap token (`skiff token create`) may ask for a node's client certificate
        // and have it approved; nodes may have their renewals approved.
        named_binding(
            "skiff:kubelet-bootstrap",
            "system:node-bootstrapper",
            vec![subject("Group", BOOTSTRAPPERS)],
        ),
        named_binding(
            "skiff:node-autoapprove-bootstrap",
            NODE_CLIENT_APPROVAL,
            vec![subject("Group", BOOTSTRAPPERS)],
        ),
        named_binding(
            "skiff:node-autoapprove-certificate-rotation",
            SELF_NODE_CLIENT_APPROVAL,
            vec![subject("Group", "system:nodes")],
        ),
        // The certificate controller approves nodes' serving certificates.
        binding(
            KUBELET_SERVING_APPROVER,
            vec![crate::components::service_account("certificate-controller")],
        ),
    ]
}

/// What reconciliation does with one bootstrap object.
#[derive(Debug, Clone, PartialEq)]
pub enum Reconcile<T> {
    /// It does not exist: create the expected object.
    Create(T),
    /// Write this (the existing object with what was missing added).
    Update(T),
    /// The role reference changed, which cannot be updated: delete and create this.
    Recreate(T),
    /// Nothing to do (up to date, or protected by `autoupdate: "false"`).
    Keep,
}

fn protected(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(AUTOUPDATE))
        .is_some_and(|v| v == "false")
}

/// Existing labels and annotations win; the expected ones are added when missing.
fn merge_meta(existing: &ObjectMeta, expected: &ObjectMeta) -> ObjectMeta {
    let merge = |e: &Option<BTreeMap<String, String>>, x: &Option<BTreeMap<String, String>>| {
        let mut m = x.clone().unwrap_or_default();
        m.extend(e.clone().unwrap_or_default());
        (!m.is_empty()).then_some(m)
    };
    ObjectMeta {
        labels: merge(&existing.labels, &expected.labels),
        annotations: merge(&existing.annotations, &expected.annotations),
        ..existing.clone()
    }
}

/// Upstream's `computeReconciledRole` without removal of extra permissions: missing rules
/// are appended (an aggregated role gets missing selectors instead; its rules are the
/// aggregation's), labels and annotations are merged.
pub fn reconcile_cluster_role(
    existing: Option<&ClusterRole>,
    expected: &ClusterRole,
) -> Reconcile<ClusterRole> {
    let Some(existing) = existing else {
        return Reconcile::Create(expected.clone());
    };
    if protected(&existing.metadata) {
        return Reconcile::Keep;
    }
    let mut next = existing.clone();
    next.metadata = merge_meta(&existing.metadata, &expected.metadata);
    match &expected.aggregation_rule {
        Some(expected_rule) => {
            let mut selectors = existing
                .aggregation_rule
                .as_ref()
                .and_then(|r| r.cluster_role_selectors.clone())
                .unwrap_or_default();
            for s in expected_rule.cluster_role_selectors.iter().flatten() {
                if !selectors.contains(s) {
                    selectors.push(s.clone());
                }
            }
            next.aggregation_rule = Some(AggregationRule {
                cluster_role_selectors: Some(selectors),
            });
        }
        None => {
            let have = existing.rules.as_deref().unwrap_or(&[]);
            let (_, missing) = covers(have, expected.rules.as_deref().unwrap_or(&[]));
            if !missing.is_empty() {
                let mut rules = have.to_vec();
                rules.extend(missing);
                next.rules = Some(rules);
            }
        }
    }
    if &next == existing {
        Reconcile::Keep
    } else {
        Reconcile::Update(next)
    }
}

/// Upstream's `computeReconciledRoleBinding` without removal of extra subjects, except the
/// ones an earlier skiff bound that the policy now retires
/// ([`crate::components::RETIRED_SUBJECTS`]).
pub fn reconcile_cluster_role_binding(
    existing: Option<&ClusterRoleBinding>,
    expected: &ClusterRoleBinding,
) -> Reconcile<ClusterRoleBinding> {
    let Some(existing) = existing else {
        return Reconcile::Create(expected.clone());
    };
    if protected(&existing.metadata) {
        return Reconcile::Keep;
    }
    if existing.role_ref != expected.role_ref {
        let mut next = expected.clone();
        next.metadata = merge_meta(&existing.metadata, &expected.metadata);
        next.metadata.resource_version = None;
        next.metadata.uid = None;
        return Reconcile::Recreate(next);
    }
    let mut next = existing.clone();
    next.metadata = merge_meta(&existing.metadata, &expected.metadata);
    let name = existing.metadata.name.as_deref().unwrap_or_default();
    let mut subjects = existing.subjects.clone().unwrap_or_default();
    subjects.retain(|s| !crate::components::retired(name, s));
    for s in expected.subjects.iter().flatten() {
        if !subjects.contains(s) {
            subjects.push(s.clone());
        }
    }
    next.subjects = Some(subjects);
    if &next == existing {
        Reconcile::Keep
    } else {
        Reconcile::Update(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(name: &str) -> ClusterRole {
        cluster_roles()
            .into_iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap()
    }

    #[test]
    fn every_binding_names_a_bootstrap_role() {
        let roles = cluster_roles();
        for b in cluster_role_bindings() {
            assert!(
                roles
                    .iter()
                    .any(|r| r.metadata.name == Some(b.role_ref.name.clone())),
                "{}",
                b.role_ref.name
            );
        }
    }

    #[test]
    fn missing_is_created_and_current_is_kept() {
        let view = find("system:aggregate-to-view");
        assert_eq!(
            reconcile_cluster_role(None, &view),
            Reconcile::Create(view.clone())
        );
        assert_eq!(reconcile_cluster_role(Some(&view), &view), Reconcile::Keep);
    }

    #[test]
    fn missing_rules_are_added_user_rules_kept() {
        let expected = find("system:auth-delegator");
        let mut existing = expected.clone();
        let user_rule = rule(&["get"], &[""], &["pods"]);
        existing.rules = Some(vec![
            expected.rules.as_ref().unwrap()[0].clone(),
            user_rule.clone(),
        ]);
        existing
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("team".into(), "a".into());
        let Reconcile::Update(next) = reconcile_cluster_role(Some(&existing), &expected) else {
            panic!("expected an update");
        };
        let rules = next.rules.unwrap();
        assert!(rules.contains(&user_rule));
        assert!(covers(&rules, expected.rules.as_ref().unwrap()).0);
        assert_eq!(next.metadata.labels.unwrap()["team"], "a");
    }

    #[test]
    fn system_nodes_group_is_taken_off_system_node() {
        // A data dir from before the Node authorizer bound the role to the group.
        let expected = cluster_role_bindings()
            .into_iter()
            .find(|b| b.metadata.name.as_deref() == Some("system:node"))
            .unwrap();
        assert_eq!(expected.subjects.as_deref(), Some(&[][..]));
        let mut existing = expected.clone();
        existing.subjects = Some(vec![
            subject("Group", "system:nodes"),
            subject("User", "kept"),
        ]);
        let Reconcile::Update(next) = reconcile_cluster_role_binding(Some(&existing), &expected)
        else {
            panic!("expected an update");
        };
        assert_eq!(next.subjects, Some(vec![subject("User", "kept")]));
    }

    #[test]
    fn controller_manager_is_taken_off_controller_roles() {
        // A data dir from before per-controller identities bound every controller role
        // and the serving approver to the controller manager's user.
        for name in [
            "system:controller:replicaset-controller",
            KUBELET_SERVING_APPROVER,
        ] {
            let expected = cluster_role_bindings()
                .into_iter()
                .find(|b| b.metadata.name.as_deref() == Some(name))
                .unwrap();
            let mut existing = expected.clone();
            existing.subjects = Some(vec![
                subject("User", "system:kube-controller-manager"),
                subject("User", "kept"),
            ]);
            let Reconcile::Update(next) =
                reconcile_cluster_role_binding(Some(&existing), &expected)
            else {
                panic!("expected an update of {name}");
            };
            let mut want = vec![subject("User", "kept")];
            want.extend(expected.subjects.unwrap());
            assert_eq!(next.subjects, Some(want), "{name}");
        }
        // Its own role's binding keeps it.
        let own = cluster_role_bindings()
            .into_iter()
            .find(|b| b.metadata.name.as_deref() == Some("system:kube-controller-manager"))
            .unwrap();
        assert_eq!(
            reconcile_cluster_role_binding(Some(&own), &own),
            Reconcile::Keep
        );
    }

    #[test]
    fn controllers_are_bound_to_their_service_accounts() {
        let bindings = cluster_role_bindings();
        let find = |name: &str| {
            bindings
                .iter()
                .find(|b| b.metadata.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("{name}"))
        };
        let rs = find("system:controller:replicaset-controller");
        let s = &rs.subjects.as_ref().unwrap()[0];
        assert_eq!(
            (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()),
            (
                "ServiceAccount",
                "replicaset-controller",
                Some("kube-system")
            )
        );
        let slices = find("system:controller:endpointslice-controller");
        assert_eq!(slices.subjects.as_ref().unwrap().len(), 2);
        // Each controller acts as its ServiceAccount: the controller manager's user is on
        // no controller role's binding (decision 0044).
        for b in bindings.iter().filter(|b| {
            b.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("system:controller:"))
        }) {
            assert!(
                b.subjects
                    .iter()
                    .flatten()
                    .all(|s| s.name != "system:kube-controller-manager"),
                "{:?}",
                b.metadata.name
            );
        }
        assert_eq!(
            find("system:node-proxier").subjects.as_ref().unwrap()[0].name,
            "system:kube-proxy"
        );
        // Names are unique, as upstream's addControllerRole insists.
        let mut names: Vec<_> = cluster_roles()
            .into_iter()
            .filter_map(|r| r.metadata.name)
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn protected_objects_are_left_alone() {
        let expected = find("system:basic-user");
        let mut existing = expected.clone();
        existing.rules = Some(vec![]);
        existing
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(AUTOUPDATE.into(), "false".into());
        assert_eq!(
            reconcile_cluster_role(Some(&existing), &expected),
            Reconcile::Keep
        );
        let b = cluster_role_bindings().remove(0);
        let mut existing = b.clone();
        existing.subjects = Some(vec![]);
        existing
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(AUTOUPDATE.into(), "false".into());
        assert_eq!(
            reconcile_cluster_role_binding(Some(&existing), &b),
            Reconcile::Keep
        );
    }

    #[test]
    fn aggregated_roles_keep_their_rules_and_gain_selectors() {
        let expected = find("edit");
        let mut existing = expected.clone();
        existing.rules = Some(vec![rule(&["get"], &[""], &["pods"])]);
        assert_eq!(
            reconcile_cluster_role(Some(&existing), &expected),
            Reconcile::Keep
        );
        existing.aggregation_rule = None;
        let Reconcile::Update(next) = reconcile_cluster_role(Some(&existing), &expected) else {
            panic!("expected an update");
        };
        assert_eq!(next.aggregation_rule, expected.aggregation_rule);
        assert_eq!(next.rules, existing.rules);
    }

    #[test]
    fn bindings_gain_missing_subjects_and_recreate_on_new_role() {
        let expected = cluster_role_bindings().remove(0);
        let mut existing = expected.clone();
        existing.subjects = Some(vec![subject("User", "alice")]);
        let Reconcile::Update(next) = reconcile_cluster_role_binding(Some(&existing), &expected)
        else {
            panic!("expected an update");
        };
        assert_eq!(next.subjects.unwrap().len(), 2);
        existing.role_ref.name = "other".into();
        assert!(matches!(
            reconcile_cluster_role_binding(Some(&existing), &expected),
            Reconcile::Recreate(_)
        ));
    }
}
