//! Upstream's column definitions per kind (`printers.go` `AddHandlers`, plus
//! kube-aggregator's APIService convertor). Descriptions are shortened from upstream's
//! swagger docs; kubectl never shows them.

use serde_json::{json, Value};

use super::{AGE_DESC, NAME_DESC};

const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";

/// Builds one column definition; every field is present because upstream's JSON has no
/// `omitempty` on them.
fn col_fmt(name: &str, ty: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description,
        "priority": priority})
}

/// A column whose format is "name" for the Name column and empty otherwise.
fn col(name: &str, ty: &str, description: &str, priority: i64) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    col_fmt(name, ty, format, description, priority)
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

/// The columns of `group`/`kind`, or `None` when upstream prints it with a default table.
pub(super) fn columns(group: &str, kind: &str) -> Option<Vec<Value>> {
    let cols = match (group, kind) {
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
        // autoscaling
        ("autoscaling", "HorizontalPodAutoscaler") => vec![
            name_col(),
            s("Reference", "scaleTargetRef points to the target resource to scale."),
            s("Targets", "metrics contains the specifications for which to use to calculate the desired replica count."),
            s("MinPods", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
            s("MaxPods", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
            s("Replicas", "currentReplicas is current number of replicas of pods managed by this autoscaler."),
            age_col(),
        ],
        // The scale subresource; upstream's Name column here has no "name" format.
        ("autoscaling", "Scale") => vec![
            col_fmt("Name", "string", "", NAME_DESC, 0),
            int("Desired", "replicas is the desired number of instances for the scaled object."),
            int("Available", "replicas is the actual number of observed instances of the scaled object."),
            age_col(),
        ],
        ("", "ComponentStatus") => vec![
            name_col(),
            s("Status", "Status of the component conditions"),
            s("Message", "Message of the component conditions"),
            s("Error", "Error of the component conditions"),
        ],
        // certificates.k8s.io
        ("certificates.k8s.io", "CertificateSigningRequest") => vec![
            name_col(),
            age_col(),
            s("SignerName", "signerName indicates the requested signer, and is a qualified name."),
            s("Requestor", "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block."),
            s("RequestedDuration", "expirationSeconds is the requested duration of validity of the issued certificate."),
            s("Condition", "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\"."),
        ],
        ("certificates.k8s.io", "ClusterTrustBundle") => vec![
            name_col(),
            s("SignerName", "signerName indicates the associated signer, if any."),
        ],
        ("coordination.k8s.io", "LeaseCandidate") => vec![
            name_col(),
            s("LeaseName", "LeaseName is the name of the lease for which this candidate is contending."),
            s("BinaryVersion", "BinaryVersion is the binary version."),
            s("EmulationVersion", "EmulationVersion is the emulation version."),
            age_col(),
        ],
        // networking.k8s.io
        ("networking.k8s.io", "IngressClass") => vec![
            name_col(),
            s("Controller", "Controller that is responsible for handling this class"),
            s("Parameters", "A reference to a resource with additional parameters"),
            age_col(),
        ],
        ("networking.k8s.io", "ServiceCIDR") => vec![
            name_col(),
            s("CIDRs", "CIDRs defines the IP blocks in CIDR notation from which to assign service cluster IPs."),
            age_col(),
        ],
        // Upstream declares no Age column here although its rows carry an age cell (which
        // kubectl drops); see `rows::cluster`.
        ("networking.k8s.io", "IPAddress") => vec![
            name_col(),
            s("ParentRef", "ParentRef references the resource that an IPAddress is attached to."),
        ],
        // storage.k8s.io
        ("storage.k8s.io", "VolumeAttributesClass") => vec![
            name_col(),
            s("DriverName", "Name of the CSI driver"),
            age_col(),
        ],
        // Upstream marks Attacher with the "name" format too.
        ("storage.k8s.io", "VolumeAttachment") => vec![
            name_col(),
            col_fmt("Attacher", "string", "name", "attacher indicates the name of the volume driver that MUST handle this request.", 0),
            s("PV", "persistentVolumeName represents the name of the persistent volume to attach."),
            s("Node", "nodeName represents the node that the volume should be attached to."),
            col("Attached", "boolean", "attached indicates the volume is successfully attached.", 0),
            age_col(),
        ],
        ("storage.k8s.io", "CSINode") => vec![
            name_col(),
            int("Drivers", "Drivers indicates the number of CSI drivers registered on the node"),
            age_col(),
        ],
        ("storage.k8s.io", "CSIDriver") => vec![
            name_col(),
            col("AttachRequired", "boolean", "attachRequired indicates this CSI volume driver requires an attach operation.", 0),
            col("PodInfoOnMount", "boolean", "podInfoOnMount indicates this CSI volume driver requires additional pod information during mount operations.", 0),
            col("StorageCapacity", "boolean", "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity.", 0),
            s("TokenRequests", "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for."),
            col("RequiresRepublish", "boolean", "requiresRepublish indicates the CSI driver wants NodePublishVolume being periodically called.", 0),
            s("Modes", "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports."),
            age_col(),
        ],
        ("node.k8s.io", "RuntimeClass") => vec![
            name_col(),
            s("Handler", "handler specifies the underlying runtime and configuration that the CRI implementation will use."),
            age_col(),
        ],
        // admissionregistration.k8s.io
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration") => vec![
            name_col(),
            int("Webhooks", "Webhooks indicates the number of webhooks registered in this configuration"),
            age_col(),
        ],
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => vec![
            name_col(),
            int("Validations", "Validations indicates the number of validation rules defined in this configuration"),
            s("ParamKind", "ParamKind specifies the kind of resources used to parameterize this policy"),
            age_col(),
        ],
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy") => vec![
            name_col(),
            int("Mutations", "Mutation indicates the number of mutations rules defined in this configuration"),
            s("ParamKind", "ParamKind specifies the kind of resources used to parameterize this policy"),
            age_col(),
        ],
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding" | "MutatingAdmissionPolicyBinding") => vec![
            name_col(),
            s("PolicyName", "PolicyName indicates the policy definition which the policy binding binded to"),
            s("ParamRef", "ParamRef indicates the param resource which sets the configration param"),
            age_col(),
        ],
        // flowcontrol.apiserver.k8s.io
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => vec![
            name_col(),
            s("PriorityLevel", "`name` is the name of the priority level configuration being referenced."),
            s("MatchingPrecedence", "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request."),
            s("DistinguisherMethod", "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema."),
            age_col(),
            s("MissingPL", "references a broken or non-existent PriorityLevelConfiguration"),
        ],
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => vec![
            name_col(),
            s("Type", "`type` indicates whether this priority level is subject to limitation on request execution."),
            s("NominalConcurrencyShares", "`nominalConcurrencyShares` (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level."),
            s("Queues", "`queues` is the number of queues for this priority level."),
            s("HandSize", "`handSize` is a small positive number that configures the shuffle sharding of requests into queues."),
            s("QueueLengthLimit", "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time."),
            age_col(),
        ],
        ("internal.apiserver.k8s.io", "StorageVersion") => vec![
            name_col(),
            s("CommonEncodingVersion", "If all API server instances agree on the same encoding storage version, then this field is set to that version."),
            s("StorageVersions", "The reported versions per API server instance."),
            age_col(),
        ],
        // Upstream's Name column here has no "name" format.
        ("storagemigration.k8s.io", "StorageVersionMigration") => vec![
            col_fmt("Name", "string", "", NAME_DESC, 0),
            s("Resource", "Fully qualified resource to migrate"),
        ],
        // resource.k8s.io
        ("resource.k8s.io", "DeviceClass" | "ResourceClaimTemplate") => vec![name_col(), age_col()],
        ("resource.k8s.io", "ResourceClaim") => vec![
            name_col(),
            s("State", "A summary of the current state (allocated, pending, reserved, etc.)."),
            age_col(),
        ],
        ("resource.k8s.io", "ResourceSlice") => vec![
            name_col(),
            s("Node", "NodeName identifies the node which provides the resources in this pool."),
            s("Driver", "Driver identifies the DRA driver providing the capacity information."),
            s("Pool", "Name is used to identify the pool."),
            age_col(),
        ],
        // Served by kube-aggregator, whose APIService storage has its own table convertor.
        ("apiregistration.k8s.io", "APIService") => vec![
            name_col(),
            s("Service", "The reference to the service that hosts this API endpoint."),
            s("Available", "Whether this service is available."),
            age_col(),
        ],
        _ => return None,
    };
    Some(cols)
}
