//! `kubectl get` tables: upstream's column definitions and row cells per kind, so the
//! apiserver can answer `Accept: application/json;as=Table` exactly as upstream prints.
//!
//! Upstream generates server-side tables with `Wide: true`, so [`row_cells`] always returns
//! the wide cells too; kubectl hides columns with `priority > 0` unless `-o wide`. Column
//! descriptions are shortened from upstream's swagger docs (kubectl never shows them).
//!
//! Custom resources whose CRD declares `additionalPrinterColumns` (Gateway API kinds do)
//! should use [`custom_resource_column_definitions`] and [`custom_resource_row_cells`];
//! [`column_definitions`] gives them upstream's fallback NAME, AGE.

mod custom;
mod format;
mod pod;
mod rows;

use chrono::{DateTime, Duration, Utc};

pub use custom::{custom_resource_column_definitions, custom_resource_row_cells};
use serde_json::{json, Value};

/// Upstream's `ObjectMeta.name` doc, the description of every Name column.
const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// Upstream's `ObjectMeta.creationTimestamp` doc, the description of every Age column.
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";

/// API groups served by Kubernetes itself. Kinds of these groups without a printer use the
/// apiserver's default table (NAME, CREATED AT); kinds of any other group are custom
/// resources, whose default table is NAME, AGE.
const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "resource.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "internal.apiserver.k8s.io",
    "storagemigration.k8s.io",
];

/// Builds one column definition; every field is present because upstream's JSON has no
/// `omitempty` on them.
fn col(name: &str, ty: &str, description: &str, priority: i64) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": description,
        "priority": priority})
}

fn name_col() -> Value {
    col("Name", "string", NAME_DESC, 0)
}

fn age_col() -> Value {
    col("Age", "string", AGE_DESC, 0)
}

/// A string column shown by default.
fn s(name: &str, description: &str) -> Value {
    col(name, "string", description, 0)
}

/// A string column shown only with `-o wide`.
fn wide(name: &str, description: &str) -> Value {
    col(name, "string", description, 1)
}

/// An integer column shown by default.
fn int(name: &str, description: &str) -> Value {
    col(name, "integer", description, 0)
}

/// The wide CONTAINERS, IMAGES (and optionally SELECTOR) columns of workload tables.
fn template_cols(selector: bool) -> Vec<Value> {
    let mut v = vec![
        wide("Containers", CONTAINERS_DESC),
        wide("Images", IMAGES_DESC),
    ];
    if selector {
        v.push(wide(
            "Selector",
            "A label query over pods that should match the replica count.",
        ));
    }
    v
}

/// Upstream's `columnDefinitions` for a kind's table.
pub fn column_definitions(group: &str, kind: &str) -> Vec<Value> {
    match (group, kind) {
        ("", "Pod") => vec![
            name_col(),
            s("Ready", "The aggregate readiness state of this pod for accepting traffic."),
            s("Status", "The aggregate status of the containers in this pod."),
            s("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            age_col(),
            wide("IP", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            wide("Node", "NodeName indicates in which node this pod is scheduled."),
            wide("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node."),
            wide("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness."),
        ],
        ("", "PodTemplate") => vec![
            name_col(),
            s("Containers", CONTAINERS_DESC),
            s("Images", IMAGES_DESC),
            s("Pod Labels", "The labels for the pod template."),
        ],
        ("", "ReplicationController") | ("apps", "ReplicaSet") => {
            let mut v = vec![
                name_col(),
                int("Desired", "Replicas is the number of desired replicas."),
                int("Current", "Replicas is the most recently observed number of replicas."),
                int("Ready", "The number of ready replicas for this replica set."),
                age_col(),
            ];
            v.extend(template_cols(true));
            v
        }
        ("apps", "Deployment") => {
            let mut v = vec![
                name_col(),
                s("Ready", "Number of the pod with ready state"),
                s("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                s("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
                age_col(),
            ];
            v.extend(template_cols(true));
            v
        }
        ("apps", "StatefulSet") => {
            let mut v = vec![name_col(), s("Ready", "Number of the pod with ready state"), age_col()];
            v.extend(template_cols(false));
            v
        }
        ("apps", "DaemonSet") => {
            let mut v = vec![
                name_col(),
                int("Desired", "The total number of nodes that should be running the daemon pod."),
                int("Current", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
                int("Ready", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
                int("Up-to-date", "The total number of nodes that are running updated daemon pod"),
                int("Available", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
                s("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on a node."),
                age_col(),
            ];
            v.extend(template_cols(true));
            v
        }
        ("apps", "ControllerRevision") => vec![
            name_col(),
            s("Controller", "Controller of the object"),
            s("Revision", "Revision indicates the revision of the state represented by Data."),
            age_col(),
        ],
        ("batch", "Job") => {
            let mut v = vec![
                name_col(),
                s("Status", "Status of the job."),
                s("Completions", "The number of pods which reached phase Succeeded."),
                s("Duration", "Time required to complete the job."),
                age_col(),
            ];
            v.extend(template_cols(true));
            v
        }
        ("batch", "CronJob") => {
            let mut v = vec![
                name_col(),
                s("Schedule", "The schedule in Cron format."),
                s("Timezone", "The time zone name for the given schedule."),
                col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions.", 0),
                int("Active", "A list of pointers to currently running jobs."),
                s("Last Schedule", "Information when was the last time the job was successfully scheduled."),
                age_col(),
            ];
            v.extend(template_cols(true));
            v
        }
        ("", "Service") => vec![
            name_col(),
            s("Type", "type determines how the Service is exposed."),
            s("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
            s("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            s("Port(s)", "The list of ports that are exposed by this service."),
            age_col(),
            wide("Selector", "Route service traffic to pods with label keys and values matching this selector."),
        ],
        ("", "Endpoints") => vec![
            name_col(),
            s("Endpoints", "The set of all endpoints is the union of all subsets."),
            age_col(),
        ],
        ("discovery.k8s.io", "EndpointSlice") => vec![
            name_col(),
            s("AddressType", "addressType specifies the type of address carried by this EndpointSlice."),
            s("Ports", "ports specifies the list of network ports exposed by each endpoint in this slice."),
            s("Endpoints", "endpoints is a list of unique endpoints in this slice."),
            age_col(),
        ],
        ("", "Node") => vec![
            name_col(),
            s("Status", "The status of the node"),
            s("Roles", "The roles of the node"),
            age_col(),
            s("Version", "Kubelet Version reported by the node."),
            wide("Internal-IP", "List of addresses reachable to the node."),
            wide("External-IP", "List of addresses reachable to the node."),
            wide("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            wide("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            wide("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ],
        ("", "Event") | ("events.k8s.io", "Event") => vec![
            s("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
            s("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
            s("Reason", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            s("Object", "The object that this event is about."),
            wide("Subobject", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
            wide("Source", "The component reporting this event."),
            s("Message", "A human-readable description of the status of this operation."),
            wide("First Seen", "The time at which the event was first recorded."),
            wide("Count", "The number of times this event has occurred."),
            col("Name", "string", NAME_DESC, 1),
        ],
        ("", "Namespace") => vec![name_col(), s("Status", "The status of the namespace"), age_col()],
        ("", "Secret") => vec![
            name_col(),
            s("Type", "Used to facilitate programmatic handling of secret data."),
            s("Data", "Data contains the secret data."),
            age_col(),
        ],
        ("", "ConfigMap") => vec![
            name_col(),
            s("Data", "Data contains the configuration data."),
            age_col(),
        ],
        ("", "ServiceAccount") => vec![
            name_col(),
            s("Secrets", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
            age_col(),
        ],
        ("", "PersistentVolume") => vec![
            name_col(),
            s("Capacity", "capacity is the description of the persistent volume's resources and capacity."),
            s("Access Modes", "accessModes contains all ways the volume can be mounted."),
            s("Reclaim Policy", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
            s("Status", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
            s("Claim", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
            s("StorageClass", "StorageClass of the pv"),
            s("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
            s("Reason", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
            age_col(),
            wide("VolumeMode", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
        ],
        ("", "PersistentVolumeClaim") => vec![
            name_col(),
            s("Status", "phase represents the current phase of PersistentVolumeClaim."),
            s("Volume", "volumeName is the binding reference to the PersistentVolume backing this claim."),
            s("Capacity", "capacity represents the actual resources of the underlying volume."),
            s("Access Modes", "accessModes contains the actual access modes the volume backing the PVC has."),
            s("StorageClass", "StorageClass of the pvc"),
            s("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
            age_col(),
            wide("VolumeMode", "volumeMode defines what type of volume is required by the claim."),
        ],
        ("", "ResourceQuota") => vec![
            name_col(),
            s("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
            s("Limit", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
            age_col(),
        ],
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let what = if kind == "RoleBinding" { "roleBinding" } else { "clusterRoleBinding" };
            vec![
                name_col(),
                s("Role", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
                age_col(),
                wide("Users", &format!("Users in the {what}")),
                wide("Groups", &format!("Groups in the {what}")),
                wide("ServiceAccounts", &format!("ServiceAccounts in the {what}")),
            ]
        }
        ("coordination.k8s.io", "Lease") => vec![
            name_col(),
            s("Holder", "holderIdentity contains the identity of the holder of a current lease."),
            age_col(),
        ],
        ("networking.k8s.io", "NetworkPolicy") => vec![
            name_col(),
            s("Pod-Selector", "podSelector selects the pods to which this NetworkPolicy object applies."),
            age_col(),
        ],
        ("networking.k8s.io", "Ingress") => vec![
            name_col(),
            s("Class", "The name of the IngressClass resource that should be used for additional configuration"),
            s("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
            s("Address", "Address is a list containing ingress points for the load-balancer"),
            s("Ports", "Ports of TLS configurations that open"),
            age_col(),
        ],
        ("policy", "PodDisruptionBudget") => vec![
            name_col(),
            s("Min Available", "The minimum number of pods that must be available."),
            s("Max Unavailable", "The maximum number of pods that may be unavailable."),
            int("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time."),
            age_col(),
        ],
        ("storage.k8s.io", "StorageClass") => vec![
            name_col(),
            s("Provisioner", "provisioner indicates the type of the provisioner."),
            s("ReclaimPolicy", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class."),
            s("VolumeBindingMode", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
            s("AllowVolumeExpansion", "allowVolumeExpansion shows whether the storage class allow volume expand."),
            age_col(),
        ],
        ("scheduling.k8s.io", "PriorityClass") => vec![
            name_col(),
            int("Value", "value represents the integer value of this priority class."),
            col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class.", 0),
            age_col(),
            s("PreemptionPolicy", "preemptionPolicy is the Policy for preempting pods with lower priority."),
        ],
        _ if is_built_in(group) => vec![
            name_col(),
            col("Created At", "date", AGE_DESC, 0),
        ],
        _ => vec![name_col(), col("Age", "date", AGE_DESC, 0)],
    }
}

fn is_built_in(group: &str) -> bool {
    BUILT_IN_GROUPS.contains(&group)
}

/// The cells of one row, in the order of [`column_definitions`], wide cells included.
pub fn row_cells(group: &str, kind: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    match rows::row(group, kind, obj, now) {
        Some(cells) => cells,
        None if is_built_in(group) => {
            // Upstream's default table convertor prints RFC 3339 in UTC, zero time included.
            let created = parse_time(obj.pointer("/metadata/creationTimestamp"))
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
            vec![json!(str_at(obj, "/metadata/name")), json!(created)]
        }
        None => vec![json!(str_at(obj, "/metadata/name")), json!(age(obj, now))],
    }
}

/// Upstream's `duration.HumanDuration`: about two significant figures, tolerating up to a
/// second of clock skew before calling a negative duration invalid.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Parses a `metav1.Time`/`MicroTime` string; absent, null or malformed count as zero time.
fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Upstream's `translateTimestampSince`: `<unknown>` for a zero time.
fn since(v: Option<&Value>, now: DateTime<Utc>) -> String {
    match parse_time(v) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// The AGE cell.
fn age(obj: &Value, now: DateTime<Utc>) -> String {
    since(obj.pointer("/metadata/creationTimestamp"), now)
}

/// The string at a JSON pointer, `""` when absent (Go's zero value).
fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The integer at a JSON pointer, `0` when absent.
fn int_at(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// The array at a JSON pointer, empty when absent.
fn arr_at<'a>(obj: &'a Value, ptr: &str) -> &'a [Value] {
    obj.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests;
