//! The roles of skiff's own components (decision 0036): upstream's controller roles
//! (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/controller_policy.go), each bound to its
//! controller's ServiceAccount in `kube-system`, upstream's `system:node-proxier`,
//! `system:volume-scheduler` and `system:kube-dns`, and narrow roles for what only skiff
//! runs in-process (cluster DNS, the Gateway, Event expiry).
//!
//! Upstream's controllers watch through shared informers made with the controller
//! manager's own identity (`system:kube-controller-manager` may list and watch everything)
//! and write with their ServiceAccount (`--use-service-account-credentials`). skiff's
//! controllers watch and write with one client each, their ServiceAccount's (decision
//! 0044), so a role here carries, marked `informer`, the `list`/`watch` of what its
//! controller caches that upstream's role leaves to the shared informers. A skiff
//! controller that does the work of several upstream ones (the endpoints controller also
//! writes EndpointSlices and mirrors them) is one more subject of the other roles' bindings.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Subject};

use crate::authorizer::GROUP;
use crate::bootstrap::{binding, events_rule, named, role, rule, subject, READ};

/// The controller manager's user: its own role only; each controller acts as its
/// ServiceAccount.
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
/// kube-proxy's user, which skiff's per-node networking (service proxy, routes, service
/// load balancer, cluster DNS, the Gateway's data plane) runs as.
pub const KUBE_PROXY: &str = "system:kube-proxy";

/// Prefix of a controller role (upstream's `saRolePrefix`).
pub const CONTROLLER_ROLE_PREFIX: &str = "system:controller:";
/// The namespace of the controllers' and add-ons' ServiceAccounts.
pub const NAMESPACE: &str = "kube-system";

const LIST_WATCH: &[&str] = &["list", "watch"];

/// A controller's role; `name` without the prefix.
fn controller(name: &str, rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule>) -> ClusterRole {
    role(&format!("{CONTROLLER_ROLE_PREFIX}{name}"), &[], rules)
}

/// What skiff's controllers write with a merge patch where upstream's update: `patch` on
/// these (role, groups, resources) is added to the role, beside upstream's `update`.
const PATCHED: &[(&str, &[&str], &[&str])] = &[
    (
        "daemon-set-controller",
        &["extensions", "apps"],
        &["daemonsets/status"],
    ),
    (
        "deployment-controller",
        &["extensions", "apps"],
        &["deployments", "deployments/status"],
    ),
    (
        "horizontal-pod-autoscaler",
        &["autoscaling"],
        &["horizontalpodautoscalers/status"],
    ),
    ("horizontal-pod-autoscaler", &["*"], &["*/scale"]),
    (
        "persistent-volume-binder",
        &[""],
        &[
            "persistentvolumes",
            "persistentvolumes/status",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
        ],
    ),
    (
        "replicaset-controller",
        &["apps", "extensions"],
        &["replicasets/status"],
    ),
    (
        "replication-controller",
        &[""],
        &["replicationcontrollers/status"],
    ),
    (
        "statefulset-controller",
        &["apps"],
        &["statefulsets/status"],
    ),
    ("statefulset-controller", &[""], &["persistentvolumeclaims"]),
    (
        "pvc-protection-controller",
        &[""],
        &["persistentvolumeclaims"],
    ),
    ("pv-protection-controller", &[""], &["persistentvolumes"]),
    (
        "certificate-controller",
        &["certificates.k8s.io"],
        &[
            "certificatesigningrequests/status",
            "certificatesigningrequests/approval",
        ],
    ),
];

/// The upstream controller roles skiff's controllers run with, with the `informer` reads
/// they need (see the module doc) and the `patch`es of [`PATCHED`].
pub fn controller_roles() -> Vec<ClusterRole> {
    let mut roles = upstream_controller_roles();
    for role in &mut roles {
        let name = role.metadata.name.as_deref().unwrap_or_default();
        let name = name.trim_start_matches(CONTROLLER_ROLE_PREFIX).to_owned();
        let rules = role.rules.get_or_insert_with(Vec::new);
        rules.extend(
            PATCHED
                .iter()
                .filter(|(r, _, _)| *r == name)
                .map(|(_, groups, resources)| rule(&["patch"], groups, resources)),
        );
    }
    roles
}

fn upstream_controller_roles() -> Vec<ClusterRole> {
    vec![
        controller(
            "cronjob-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &["batch"],
                    &["cronjobs"],
                ),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "delete", "patch",
                    ],
                    &["batch"],
                    &["jobs"],
                ),
                rule(&["update"], &["batch"], &["cronjobs/status"]),
                rule(&["update"], &["batch"], &["cronjobs/finalizers"]),
                rule(&["list", "watch", "delete"], &[""], &["pods"]),
                events_rule(),
            ],
        ),
        controller(
            "daemon-set-controller",
            vec![
                rule(READ, &["extensions", "apps"], &["daemonsets"]),
                rule(&["update"], &["extensions", "apps"], &["daemonsets/status"]),
                rule(
                    &["update"],
                    &["extensions", "apps"],
                    &["daemonsets/finalizers"],
                ),
                rule(LIST_WATCH, &[""], &["nodes"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
                rule(&["create"], &[""], &["pods/binding"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "delete", "update", "patch",
                    ],
                    &["apps"],
                    &["controllerrevisions"],
                ),
                events_rule(),
            ],
        ),
        controller(
            "deployment-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &["extensions", "apps"],
                    &["deployments"],
                ),
                rule(
                    &["update"],
                    &["extensions", "apps"],
                    &["deployments/status"],
                ),
                rule(
                    &["update"],
                    &["extensions", "apps"],
                    &["deployments/finalizers"],
                ),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &["apps", "extensions"],
                    &["replicasets"],
                ),
                rule(&["get", "list", "watch", "update"], &[""], &["pods"]),
                events_rule(),
            ],
        ),
        controller(
            "disruption-controller",
            vec![
                rule(READ, &["extensions", "apps"], &["deployments"]),
                rule(READ, &["apps", "extensions"], &["replicasets"]),
                rule(READ, &[""], &["replicationcontrollers"]),
                rule(READ, &["policy"], &["poddisruptionbudgets"]),
                rule(READ, &["apps"], &["statefulsets"]),
                rule(&["update"], &["policy"], &["poddisruptionbudgets/status"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["get"], &["*"], &["*/scale"]),
                events_rule(),
                // informer
                rule(LIST_WATCH, &[""], &["pods"]),
            ],
        ),
        controller(
            "endpoint-controller",
            vec![
                rule(READ, &[""], &["services", "pods"]),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &[""],
                    &["endpoints"],
                ),
                rule(&["create"], &[""], &["endpoints/restricted"]),
                events_rule(),
            ],
        ),
        controller(
            "endpointslice-controller",
            vec![
                rule(READ, &[""], &["services", "pods", "nodes"]),
                rule(&["update"], &[""], &["services/finalizers"]),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
                events_rule(),
            ],
        ),
        controller(
            "endpointslicemirroring-controller",
            vec![
                rule(READ, &[""], &["services", "endpoints"]),
                rule(&["update"], &[""], &["services/finalizers"]),
                rule(&["update"], &[""], &["endpoints/finalizers"]),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
                events_rule(),
            ],
        ),
        controller(
            "generic-garbage-collector",
            vec![
                rule(
                    &["get", "list", "watch", "patch", "update", "delete"],
                    &["*"],
                    &["*"],
                ),
                events_rule(),
            ],
        ),
        controller(
            "horizontal-pod-autoscaler",
            vec![
                rule(READ, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(
                    &["update"],
                    &["autoscaling"],
                    &["horizontalpodautoscalers/status"],
                ),
                rule(&["get", "update"], &["*"], &["*/scale"]),
                rule(LIST_WATCH, &[""], &["pods"]),
                rule(LIST_WATCH, &["metrics.k8s.io"], &["pods"]),
                rule(READ, &["custom.metrics.k8s.io"], &["*"]),
                rule(READ, &["external.metrics.k8s.io"], &["*"]),
                events_rule(),
            ],
        ),
        controller(
            "job-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    &["batch"],
                    &["jobs"],
                ),
                rule(&["update"], &["batch"], &["jobs/status"]),
                rule(&["update"], &["batch"], &["jobs/finalizers"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
                events_rule(),
            ],
        ),
        controller(
            "node-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update", "delete", "patch"],
                    &[""],
                    &["nodes"],
                ),
                rule(&["patch", "update"], &[""], &["nodes/status"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["list", "watch", "get", "delete"], &[""], &["pods"]),
                events_rule(),
                // informer: node Leases say whether a node is alive.
                rule(LIST_WATCH, &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        controller(
            "persistent-volume-binder",
            vec![
                rule(
                    &["get", "list", "watch", "update", "create", "delete"],
                    &[""],
                    &["persistentvolumes"],
                ),
                rule(&["update"], &[""], &["persistentvolumes/status"]),
                rule(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(&["update"], &[""], &["persistentvolumeclaims/status"]),
                rule(
                    &["list", "watch", "get", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                rule(READ, &["storage.k8s.io"], &["storageclasses"]),
                rule(LIST_WATCH, &[""], &["nodes"]),
                events_rule(),
                rule(&["watch"], &[""], &["events"]),
                rule(&["get"], &[""], &["services"]),
                // skiff's binder makes the default `local-path` StorageClass (upstream's
                // add-on manager does).
                named(
                    rule(
                        &["update", "patch"],
                        &["storage.k8s.io"],
                        &["storageclasses"],
                    ),
                    &["local-path"],
                ),
                rule(&["create"], &["storage.k8s.io"], &["storageclasses"]),
            ],
        ),
        controller(
            "pod-garbage-collector",
            vec![
                rule(&["list", "watch", "delete"], &[""], &["pods"]),
                rule(READ, &[""], &["nodes"]),
                rule(&["patch"], &[""], &["pods/status"]),
            ],
        ),
        controller(
            "replicaset-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &["apps", "extensions"],
                    &["replicasets"],
                ),
                rule(
                    &["update"],
                    &["apps", "extensions"],
                    &["replicasets/status"],
                ),
                rule(
                    &["update"],
                    &["apps", "extensions"],
                    &["replicasets/finalizers"],
                ),
                rule(
                    &["list", "watch", "patch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                events_rule(),
            ],
        ),
        controller(
            "replication-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["replicationcontrollers"],
                ),
                rule(&["update"], &[""], &["replicationcontrollers/status"]),
                rule(&["update"], &[""], &["replicationcontrollers/finalizers"]),
                rule(
                    &["list", "watch", "patch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                events_rule(),
            ],
        ),
        controller(
            "resourcequota-controller",
            vec![
                rule(LIST_WATCH, &["*"], &["*"]),
                rule(&["update"], &[""], &["resourcequotas/status"]),
                events_rule(),
            ],
        ),
        controller(
            "service-account-controller",
            vec![
                rule(&["create"], &[""], &["serviceaccounts"]),
                events_rule(),
                // informer
                rule(LIST_WATCH, &[""], &["namespaces", "serviceaccounts"]),
            ],
        ),
        controller(
            "service-controller",
            vec![
                rule(READ, &[""], &["services"]),
                rule(&["patch", "update"], &[""], &["services/status"]),
                rule(LIST_WATCH, &[""], &["nodes"]),
                events_rule(),
            ],
        ),
        controller(
            "statefulset-controller",
            vec![
                rule(LIST_WATCH, &[""], &["pods"]),
                rule(READ, &["apps"], &["statefulsets"]),
                rule(&["update"], &["apps"], &["statefulsets/status"]),
                rule(&["update"], &["apps"], &["statefulsets/finalizers"]),
                rule(
                    &["get", "create", "delete", "update", "patch"],
                    &[""],
                    &["pods"],
                ),
                rule(
                    &[
                        "get", "create", "delete", "update", "patch", "list", "watch",
                    ],
                    &["apps"],
                    &["controllerrevisions"],
                ),
                rule(
                    &["get", "create", "list", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(&["update", "delete"], &[""], &["persistentvolumeclaims"]),
                rule(&["update"], &[""], &["pods/finalizers"]),
                events_rule(),
            ],
        ),
        controller(
            "certificate-controller",
            vec![
                rule(
                    &["get", "list", "watch", "delete"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
                rule(
                    &["update"],
                    &["certificates.k8s.io"],
                    &[
                        "certificatesigningrequests/status",
                        "certificatesigningrequests/approval",
                    ],
                ),
                named(
                    rule(&["approve"], &["certificates.k8s.io"], &["signers"]),
                    &["kubernetes.io/kube-apiserver-client-kubelet"],
                ),
                named(
                    rule(&["sign"], &["certificates.k8s.io"], &["signers"]),
                    &[
                        "kubernetes.io/legacy-unknown",
                        "kubernetes.io/kube-apiserver-client",
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kubelet-serving",
                    ],
                ),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                events_rule(),
            ],
        ),
        controller(
            "pvc-protection-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(&["list", "watch", "get"], &[""], &["pods"]),
                events_rule(),
            ],
        ),
        controller(
            "pv-protection-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["persistentvolumes"],
                ),
                events_rule(),
            ],
        ),
        controller(
            "ttl-after-finished-controller",
            vec![
                rule(&["get", "list", "watch", "delete"], &["batch"], &["jobs"]),
                events_rule(),
            ],
        ),
        controller(
            "root-ca-cert-publisher",
            vec![
                rule(&["create", "update"], &[""], &["configmaps"]),
                events_rule(),
                // informer
                rule(LIST_WATCH, &[""], &["namespaces", "configmaps"]),
            ],
        ),
        // skiff's: Events expire through a controller, not an etcd lease (upstream's
        // --event-ttl).
        controller(
            "event-ttl-controller",
            vec![rule(
                &["list", "watch", "delete"],
                &["", "events.k8s.io"],
                &["events"],
            )],
        ),
    ]
}

/// Which controllers' ServiceAccounts are subjects of a role's binding besides the one it
/// is named after: skiff controllers doing the work of several upstream ones.
const ALSO_BOUND: &[(&str, &str)] = &[
    ("endpointslice-controller", "endpoint-controller"),
    ("endpointslicemirroring-controller", "endpoint-controller"),
    ("pv-protection-controller", "pvc-protection-controller"),
    ("ttl-after-finished-controller", "job-controller"),
    ("pod-garbage-collector", "node-controller"),
];

/// A ServiceAccount of `kube-system` as a binding's subject.
pub(crate) fn service_account(name: &str) -> Subject {
    Subject {
        api_group: None,
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(NAMESPACE.into()),
    }
}

/// Each controller role bound to its controller's ServiceAccount (upstream's
/// `addControllerRole`), and to the skiff controllers in [`ALSO_BOUND`].
pub fn controller_role_bindings() -> Vec<ClusterRoleBinding> {
    controller_roles()
        .iter()
        .filter_map(|r| r.metadata.name.as_deref())
        .map(|role_name| {
            let sa = role_name.trim_start_matches(CONTROLLER_ROLE_PREFIX);
            let mut subjects = vec![service_account(sa)];
            subjects.extend(
                ALSO_BOUND
                    .iter()
                    .filter(|(r, _)| *r == sa)
                    .map(|(_, also)| service_account(also)),
            );
            binding(role_name, subjects)
        })
        .collect()
}

/// The add-on roles: kube-proxy's, the scheduler's volume binding, cluster DNS, the
/// Gateway's.
pub fn component_roles() -> Vec<ClusterRole> {
    let gateway_reads = vec![
        rule(
            READ,
            &["gateway.networking.k8s.io"],
            &[
                "gatewayclasses",
                "gateways",
                "httproutes",
                "grpcroutes",
                "referencegrants",
            ],
        ),
        rule(
            READ,
            &["networking.k8s.io"],
            &["ingresses", "ingressclasses"],
        ),
        rule(READ, &[""], &["services", "namespaces", "secrets", "nodes"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
    ];
    let mut gateway_writes = vec![
        rule(
            &["get", "list", "watch", "create", "update", "patch"],
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
        ),
        rule(
            &["create", "update", "patch"],
            &["gateway.networking.k8s.io"],
            &["gatewayclasses"],
        ),
        rule(
            &["update", "patch"],
            &["gateway.networking.k8s.io"],
            &[
                "gatewayclasses/status",
                "gateways/status",
                "httproutes/status",
                "grpcroutes/status",
            ],
        ),
        rule(
            &["create", "update", "patch"],
            &["networking.k8s.io"],
            &["ingressclasses"],
        ),
        rule(
            &["update", "patch"],
            &["networking.k8s.io"],
            &["ingresses/status"],
        ),
        // The bundle's safe-upgrades ValidatingAdmissionPolicy and its binding.
        rule(
            &["get", "create", "update"],
            &["admissionregistration.k8s.io"],
            &[
                "validatingadmissionpolicies",
                "validatingadmissionpolicybindings",
            ],
        ),
        events_rule(),
    ];
    gateway_writes.extend(gateway_reads.clone());
    vec![
        role(
            "system:node-proxier",
            &[],
            vec![
                rule(LIST_WATCH, &[""], &["services", "endpoints"]),
                rule(READ, &[""], &["nodes"]),
                events_rule(),
                rule(LIST_WATCH, &["discovery.k8s.io"], &["endpointslices"]),
            ],
        ),
        role(
            "system:volume-scheduler",
            &[],
            vec![
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    &[""],
                    &["persistentvolumes"],
                ),
                rule(READ, &["storage.k8s.io"], &["storageclasses"]),
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
            ],
        ),
        role(
            "system:kube-dns",
            &[],
            vec![rule(LIST_WATCH, &[""], &["endpoints", "services"])],
        ),
        // skiff's cluster DNS also serves EndpointSlices and pod records, and publishes
        // `kube-system/kube-dns` pointing at each node's server.
        role(
            "system:skiff:dns",
            &[],
            vec![
                rule(LIST_WATCH, &[""], &["endpoints", "services", "pods"]),
                rule(LIST_WATCH, &["discovery.k8s.io"], &["endpointslices"]),
                rule(&["create"], &[""], &["services", "endpoints"]),
                named(
                    rule(&["get", "update"], &[""], &["services", "endpoints"]),
                    &["kube-dns"],
                ),
            ],
        ),
        // skiff's service load balancer on each node, as the cloud provider's service
        // controller: it writes Services' load-balancer status.
        role(
            "system:skiff:service-lb",
            &[],
            vec![
                rule(READ, &[""], &["services"]),
                rule(&["patch", "update"], &[""], &["services/status"]),
                rule(LIST_WATCH, &[""], &["nodes"]),
                events_rule(),
            ],
        ),
        // skiff's local-path volumes live on the node's disk, so the node removes the
        // directories of deleted PersistentVolumes (upstream's local-path provisioner does
        // it with a helper pod under its own account): it lists volumes to find them, which
        // the Node authorizer, answering single gets only, leaves to RBAC.
        role(
            "system:skiff:local-volume-reclaimer",
            &[],
            vec![rule(LIST_WATCH, &[""], &["persistentvolumes"])],
        ),
        // The Gateway's data plane on each node reads what it serves.
        role("system:skiff:gateway", &[], gateway_reads),
        // Its control plane installs the Gateway API and writes status.
        role("system:skiff:gateway-controller", &[], gateway_writes),
    ]
}

/// Who the add-on roles are bound to, as upstream binds them.
pub fn component_role_bindings() -> Vec<ClusterRoleBinding> {
    vec![
        binding("system:node-proxier", vec![subject("User", KUBE_PROXY)]),
        binding(
            "system:volume-scheduler",
            vec![subject("User", "system:kube-scheduler")],
        ),
        binding("system:kube-dns", vec![service_account("kube-dns")]),
        binding(
            "system:skiff:dns",
            vec![service_account("kube-dns"), subject("User", KUBE_PROXY)],
        ),
        binding(
            "system:skiff:gateway",
            vec![service_account("gateway"), subject("User", KUBE_PROXY)],
        ),
        binding(
            "system:skiff:local-volume-reclaimer",
            vec![subject("Group", "system:nodes")],
        ),
        // The service load balancer: the cloud controller's service controller.
        binding("system:skiff:service-lb", vec![subject("User", KUBE_PROXY)]),
        binding(
            "system:skiff:gateway-controller",
            vec![service_account("gateway-controller")],
        ),
    ]
}

/// Subjects earlier skiff releases bound that the current policy leaves to another
/// authorizer or identity: `system:nodes` on `system:node`, now the Node authorizer's
/// (upstream unbound it in 1.8 the same way), and the controller manager's user on the
/// kubelet-serving approver, now the certificate controller's. Reconciliation removes them,
/// and [`retired`] the controller manager's user from every controller role's binding
/// (each controller acts as its own ServiceAccount, decision 0044).
pub const RETIRED_SUBJECTS: &[(&str, &str, &str)] = &[
    ("system:node", "Group", "system:nodes"),
    (
        crate::bootstrap::KUBELET_SERVING_APPROVER,
        "User",
        CONTROLLER_MANAGER,
    ),
];

/// Whether `s` is a subject reconciliation takes off binding `name`: one of
/// [`RETIRED_SUBJECTS`], or the controller manager's user on a controller role's binding.
pub fn retired(name: &str, s: &Subject) -> bool {
    let listed = RETIRED_SUBJECTS
        .iter()
        .any(|(b, kind, subject)| *b == name && s.kind == *kind && s.name == *subject);
    let manager_on_controller_role = name.starts_with(CONTROLLER_ROLE_PREFIX)
        && s.kind == "User"
        && s.name == CONTROLLER_MANAGER;
    (listed || manager_on_controller_role) && s.api_group.as_deref().unwrap_or(GROUP) == GROUP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patched_rules_land_on_existing_roles() {
        let upstream = upstream_controller_roles();
        let roles = controller_roles();
        for (name, _, resources) in PATCHED {
            let full = format!("{CONTROLLER_ROLE_PREFIX}{name}");
            assert!(
                upstream
                    .iter()
                    .any(|r| r.metadata.name.as_deref() == Some(&full)),
                "{full} is no controller role"
            );
            let role = roles
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(&full))
                .unwrap();
            assert!(
                role.rules.iter().flatten().any(|r| r.verbs == ["patch"]
                    && r.resources.as_deref()
                        == Some(&resources.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..])),
                "{full} lacks patch on {resources:?}"
            );
        }
    }
}
