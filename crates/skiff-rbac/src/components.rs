//! The roles of skiff's own components (decision 0036): upstream's controller roles
//! (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/controller_policy.go), each bound to its
//! controller's ServiceAccount in `kube-system`, upstream's `system:node-proxier`,
//! `system:volume-scheduler` and `system:kube-dns`, and narrow roles for what only skiff
//! runs in-process (cluster DNS, the Gateway, Event expiry).
//!
//! Upstream's controllers watch through shared informers made with the controller
//! manager's own identity (`system:kube-controller-manager` may list and watch everything)
//! and write with their ServiceAccount. skiff's controllers watch and write with one client,
//! their ServiceAccount's, so a role here carries, marked `informer`, the `list`/`watch` of
//! what its controller caches that upstream's role leaves to the shared informers. A skiff
//! controller that does the work of several upstream ones (the endpoints controller also
//! writes EndpointSlices and mirrors them) is one more subject of the other roles' bindings.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Subject};

use crate::authorizer::GROUP;
use crate::bootstrap::{binding, events_rule, named, role, rule, subject, READ};

/// The controller manager's user, which skiff's controllers run as.
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

/// The upstream controller roles skiff's controllers run with, with the `informer` reads
/// they need (see the module doc).
pub fn controller_roles() -> Vec<ClusterRole> {
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

fn service_account(name: &str) -> Subject {
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
            // skiff's controllers run in one client per controller manager, as upstream
            // without --use-service-account-credentials, whose own user then needs every
            // controller role.
            subjects.push(subject("User", CONTROLLER_MANAGER));
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
/// authorizer: `system:nodes` on `system:node`, now the Node authorizer's (upstream
/// unbound it in 1.8 the same way). Reconciliation removes them.
pub const RETIRED_SUBJECTS: &[(&str, &str, &str)] = &[("system:node", "Group", "system:nodes")];

/// Whether `s` is a subject [`RETIRED_SUBJECTS`] takes off binding `name`.
pub fn retired(name: &str, s: &Subject) -> bool {
    RETIRED_SUBJECTS
        .iter()
        .any(|(b, kind, subject)| *b == name && s.kind == *kind && s.name == *subject)
        && s.api_group.as_deref().unwrap_or(GROUP) == GROUP
}
