//! Where upstream's built-in kinds declare `patchStrategy`/`patchMergeKey` (the struct tags in
//! `k8s.io/api/*/v1/types.go` and `apimachinery/pkg/apis/meta/v1/types.go`), as a static tree.
//!
//! Only fields that carry a strategy, or lead to one, are listed: every other field merges as
//! in JSON merge patch (maps recurse, lists are replaced). Checked against k8s.io/api at
//! v1.33+: note that `resizePolicy`, `tolerations`, `containerStatuses`, Node `images` and
//! `taints`, Endpoints `subsets` and every RBAC list carry no strategy, so they are replaced.

/// How a field's value is combined with the live value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Default: maps merge key by key, lists are replaced wholesale.
    Default,
    /// `patchStrategy:"merge"` on a list: items are merged by `merge_key` (maps) or unioned
    /// (primitives).
    Merge,
    /// `patchStrategy:"replace"` on a map (PodDisruptionBudget `spec.selector`).
    Replace,
}

/// Patch metadata of one field of a struct.
#[derive(Debug)]
pub(crate) struct Field {
    /// JSON field name.
    pub name: &'static str,
    /// The field's strategy.
    pub strategy: Strategy,
    /// `patchMergeKey`, empty for primitive lists and non-list fields.
    pub merge_key: &'static str,
    /// The fields of the struct this field holds (or of its list items), if any matter.
    pub ty: Option<&'static [Field]>,
}

/// A struct type: the fields with patch metadata, or leading to some.
pub(crate) type Schema = [Field];

/// A struct-typed field whose own fields matter.
const fn nested(name: &'static str, ty: &'static Schema) -> Field {
    Field {
        name,
        strategy: Strategy::Default,
        merge_key: "",
        ty: Some(ty),
    }
}

/// A list merged by key whose items have no further metadata.
const fn by_key(name: &'static str, merge_key: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::Merge,
        merge_key,
        ty: None,
    }
}

/// A list merged by key whose items have fields with metadata.
const fn by_key_of(name: &'static str, merge_key: &'static str, ty: &'static Schema) -> Field {
    Field {
        name,
        strategy: Strategy::Merge,
        merge_key,
        ty: Some(ty),
    }
}

/// A list of primitives merged as an ordered set.
const fn set(name: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::Merge,
        merge_key: "",
        ty: None,
    }
}

/// A map replaced wholesale.
const fn replaced(name: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::Replace,
        merge_key: "",
        ty: None,
    }
}

// ---- meta/v1 -----------------------------------------------------------------------------

const OBJECT_META: &Schema = &[set("finalizers"), by_key("ownerReferences", "uid")];

/// Any kind with nothing but ObjectMeta lists (ConfigMap, Secret, Endpoints, RBAC, ...).
const META_ONLY: &Schema = &[nested("metadata", OBJECT_META)];

/// `status.conditions` merged by `type`, the most common status shape.
const CONDITIONS: &Schema = &[by_key("conditions", "type")];

// ---- core/v1 -----------------------------------------------------------------------------

const CONTAINER: &Schema = &[
    by_key("ports", "containerPort"),
    by_key("env", "name"),
    by_key("volumeMounts", "mountPath"),
    by_key("volumeDevices", "devicePath"),
];

const POD_SPEC: &Schema = &[
    // Also `retainKeys`, which only changes how clients compute patches.
    by_key("volumes", "name"),
    by_key_of("initContainers", "name", CONTAINER),
    by_key_of("containers", "name", CONTAINER),
    by_key_of("ephemeralContainers", "name", CONTAINER),
    by_key("imagePullSecrets", "name"),
    by_key("hostAliases", "ip"),
    by_key("topologySpreadConstraints", "topologyKey"),
    by_key("schedulingGates", "name"),
    by_key("resourceClaims", "name"),
    by_key("evictionResponders", "name"),
];

const POD_STATUS: &Schema = &[
    by_key("conditions", "type"),
    by_key("hostIPs", "ip"),
    by_key("podIPs", "ip"),
    by_key("resourceClaimStatuses", "name"),
    by_key("nodeAllocatableResourceClaimStatuses", "resourceClaimName"),
];

const POD: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("spec", POD_SPEC),
    nested("status", POD_STATUS),
];

const POD_TEMPLATE_SPEC: &Schema = &[nested("metadata", OBJECT_META), nested("spec", POD_SPEC)];

const POD_TEMPLATE: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("template", POD_TEMPLATE_SPEC),
];

/// Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController: a pod
/// template under `spec.template` and conditions by type in status.
const TEMPLATED_SPEC: &Schema = &[nested("template", POD_TEMPLATE_SPEC)];
const TEMPLATED: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("spec", TEMPLATED_SPEC),
    nested("status", CONDITIONS),
];

const JOB_TEMPLATE_SPEC: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("spec", TEMPLATED_SPEC),
];
const CRON_JOB_SPEC: &Schema = &[nested("jobTemplate", JOB_TEMPLATE_SPEC)];
const CRON_JOB: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("spec", CRON_JOB_SPEC),
];

const SERVICE_SPEC: &Schema = &[by_key("ports", "port")];
const SERVICE: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("spec", SERVICE_SPEC),
    nested("status", CONDITIONS),
];

const NODE_SPEC: &Schema = &[set("podCIDRs")];
const NODE_STATUS: &Schema = &[by_key("conditions", "type"), by_key("addresses", "type")];
const NODE: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("spec", NODE_SPEC),
    nested("status", NODE_STATUS),
];

const WITH_STATUS_CONDITIONS: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("status", CONDITIONS),
];

const SERVICE_ACCOUNT: &Schema = &[nested("metadata", OBJECT_META), by_key("secrets", "name")];

const VOLUME_HEALTH: &Schema = &[by_key("healthConditions", "status")];
const PVC_STATUS: &Schema = &[
    by_key("conditions", "type"),
    nested("healthStatus", VOLUME_HEALTH),
];
const PVC: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("status", PVC_STATUS),
];

// ---- other groups ------------------------------------------------------------------------

const DEPLOYMENT_SPEC: &Schema = &[
    nested("template", POD_TEMPLATE_SPEC),
    // `patchStrategy:"retainKeys"`: clients send `$retainKeys`, which applies anywhere.
];
const DEPLOYMENT: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("spec", DEPLOYMENT_SPEC),
    nested("status", CONDITIONS),
];

const PDB_SPEC: &Schema = &[replaced("selector")];
const PDB: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("spec", PDB_SPEC),
    nested("status", CONDITIONS),
];

const MATCH_CONDITIONS: &Schema = &[by_key("matchConditions", "name")];
const WEBHOOK_CONFIGURATION: &Schema = &[
    nested("metadata", OBJECT_META),
    by_key_of("webhooks", "name", MATCH_CONDITIONS),
];
const ADMISSION_POLICY_SPEC: &Schema = &[
    by_key("matchConditions", "name"),
    by_key("variables", "name"),
];
const ADMISSION_POLICY: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("spec", ADMISSION_POLICY_SPEC),
];

const CSI_NODE_SPEC: &Schema = &[by_key("drivers", "name")];
const CSI_NODE: &Schema = &[
    nested("metadata", OBJECT_META),
    nested("spec", CSI_NODE_SPEC),
];

/// The patch schema of a built-in kind, `None` for kinds the apiserver does not compile in
/// (CRDs, aggregated APIs), which upstream cannot strategic-merge.
pub(crate) fn for_kind(group: &str, kind: &str) -> Option<&'static Schema> {
    Some(match (group, kind) {
        ("", "Pod") => POD,
        ("", "PodTemplate") => POD_TEMPLATE,
        ("", "ReplicationController") => TEMPLATED,
        ("", "Service") => SERVICE,
        ("", "Node") => NODE,
        ("", "Namespace") => WITH_STATUS_CONDITIONS,
        ("", "ComponentStatus") => COMPONENT_STATUS,
        ("", "ServiceAccount") => SERVICE_ACCOUNT,
        ("", "PersistentVolumeClaim") => PVC,
        (
            "",
            "ConfigMap" | "Secret" | "Endpoints" | "Event" | "LimitRange" | "ResourceQuota"
            | "PersistentVolume" | "Binding",
        ) => META_ONLY,
        ("apps", "Deployment") => DEPLOYMENT,
        ("apps", "ReplicaSet" | "StatefulSet" | "DaemonSet") => TEMPLATED,
        ("apps", "ControllerRevision") => META_ONLY,
        ("batch", "Job") => TEMPLATED,
        ("batch", "CronJob") => CRON_JOB,
        ("policy", "PodDisruptionBudget") => PDB,
        ("autoscaling", "HorizontalPodAutoscaler") => WITH_STATUS_CONDITIONS,
        ("autoscaling", "Scale") => META_ONLY,
        ("flowcontrol.apiserver.k8s.io", "FlowSchema" | "PriorityLevelConfiguration") => {
            WITH_STATUS_CONDITIONS
        }
        ("networking.k8s.io", "ServiceCIDR") => WITH_STATUS_CONDITIONS,
        ("networking.k8s.io", "Ingress" | "IngressClass" | "NetworkPolicy" | "IPAddress") => {
            META_ONLY
        }
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => WEBHOOK_CONFIGURATION,
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicy" | "MutatingAdmissionPolicy",
        ) => ADMISSION_POLICY,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => META_ONLY,
        ("storage.k8s.io", "CSINode") => CSI_NODE,
        (
            "storage.k8s.io",
            "StorageClass" | "CSIDriver" | "VolumeAttachment" | "CSIStorageCapacity",
        ) => META_ONLY,
        ("coordination.k8s.io", "Lease") => META_ONLY,
        ("discovery.k8s.io", "EndpointSlice") => META_ONLY,
        ("events.k8s.io", "Event") => META_ONLY,
        (
            "rbac.authorization.k8s.io",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        ) => META_ONLY,
        ("scheduling.k8s.io", "PriorityClass") => META_ONLY,
        ("node.k8s.io", "RuntimeClass") => META_ONLY,
        ("certificates.k8s.io", "CertificateSigningRequest") => META_ONLY,
        ("certificates.k8s.io", "PodCertificateRequest") => WITH_STATUS_CONDITIONS,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => META_ONLY,
        ("apiregistration.k8s.io", "APIService") => META_ONLY,
        _ => return None,
    })
}

const COMPONENT_STATUS: &Schema = &[
    nested("metadata", OBJECT_META),
    by_key("conditions", "type"),
];

/// The metadata of `name` within a struct schema (default when unknown or untyped).
pub(crate) fn lookup(schema: Option<&'static Schema>, name: &str) -> Option<&'static Field> {
    schema?.iter().find(|f| f.name == name)
}
