//! Upstream defaulting (`SetDefaults_*` of the v1 API groups) applied to wire-form objects.
//!
//! Clients read back exactly what upstream stores, so every default here follows
//! `pkg/apis/<group>/<version>/defaults.go` plus the generated nested defaults of Kubernetes
//! 1.33 with its default feature gates. Defaulting never fails: malformed input is left for
//! validation to report. Apply it on every write (create, update, patch result).
//!
//! Registry-side preparation that needs server state is separate and must be called by the
//! apiserver before validation: [`generate_job_selector`] on Job create (needs the uid),
//! [`carry_over_service_allocations`] on Service update, [`fold_secret_string_data`] on
//! Secret writes, [`prepare_pod_create`] on Pod create (status phase and QoS class). Not
//! done at all here: Service `clusterIP(s)`/`nodePort` allocation; admission-plugin fields
//! (`serviceAccountName`, default tolerations, `priority`, `preemptionPolicy`);
//! `metadata.generation`; workload `status`.
//! Resource quantities are not rounded up to milli scale (`SetDefaults_ResourceList`).

mod admissionregistration;
mod json;
mod pod;
mod prepare;

use serde_json::{json, Map, Value};

use json::{default, each_obj, ensure_obj, get_obj, template_metadata};
pub use pod::pull_policy_for;
use pod::{pod_spec, pod_template, Owner};
pub use prepare::{
    carry_over_service_allocations, drop_service_type_dependent_fields, fold_secret_string_data,
    pod_qos_class, prepare_daemonset_create, prepare_daemonset_update, prepare_pod_create,
    DAEMONSET_TEMPLATE_GENERATION,
};

/// Applies upstream's defaults for `group`/`kind` to `obj` in place; kinds without upstream
/// defaults are left untouched.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match (group, kind) {
        ("", "Pod") => pod_spec(ensure_obj(root, "spec"), Owner::Pod),
        ("", "PodTemplate") => pod_template(ensure_obj(root, "template")),
        ("", "ReplicationController") => replication_controller(root),
        ("", "Service") => service(root),
        ("", "Secret") => default(root, "type", json!("Opaque")),
        ("", "Namespace") => namespace(root),
        ("", "PersistentVolumeClaim") => pvc(root),
        ("", "PersistentVolume") => persistent_volume(root),
        ("", "Endpoints") => each_obj(root, "subsets", |s| each_obj(s, "ports", tcp)),
        ("", "LimitRange") => each_obj(ensure_obj(root, "spec"), "limits", limit_range_item),
        ("", "Node") => node(root),
        ("apps", "Deployment") => deployment(root),
        ("apps", "ReplicaSet") => replica_set(root),
        ("apps", "StatefulSet") => stateful_set(root),
        ("apps", "DaemonSet") => daemon_set(root),
        ("batch", "Job") => job(root),
        ("batch", "CronJob") => cron_job(root),
        ("discovery.k8s.io", "EndpointSlice") => each_obj(root, "ports", endpoint_slice_port),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => role_binding(root),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(root),
        ("scheduling.k8s.io", "PriorityClass") => {
            default(root, "preemptionPolicy", json!("PreemptLowerPriority"))
        }
        ("storage.k8s.io", "StorageClass") => {
            default(root, "reclaimPolicy", json!("Delete"));
            default(root, "volumeBindingMode", json!("Immediate"));
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(ensure_obj(root, "spec")),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            admissionregistration::webhook_configuration(root, false)
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            admissionregistration::webhook_configuration(root, true)
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            admissionregistration::validating_admission_policy(root)
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            admissionregistration::validating_admission_policy_binding(root)
        }
        ("apiregistration.k8s.io", "APIService") => admissionregistration::api_service(root),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            default(ensure_obj(root, "spec"), "minReplicas", json!(1))
        }
        _ => {}
    }
}

/// `SetDefaults_CustomResourceDefinitionSpec`: singular and listKind from the kind, and
/// conversion `None`.
fn crd(spec: &mut Map<String, Value>) {
    let names = ensure_obj(spec, "names");
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if !kind.is_empty() {
        if names
            .get("singular")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if names
            .get("listKind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    default(spec, "conversion", json!({"strategy": "None"}));
}

/// Sets `protocol: TCP` on a port that has none.
fn tcp(port: &mut Map<String, Value>) {
    default(port, "protocol", json!("TCP"));
}

/// Replicas are a pointer upstream: only an absent (or null) value gets the default.
fn default_replicas(spec: &mut Map<String, Value>) {
    default(spec, "replicas", json!(1));
}

fn replication_controller(root: &mut Map<String, Value>) {
    let spec = ensure_obj(root, "spec");
    default_replicas(spec);
    let labels = get_obj(spec, "template").and_then(|t| {
        pod_template(t);
        t.get("metadata")
            .and_then(|m| m.get("labels"))
            .filter(|l| l.is_object())
            .cloned()
    });
    let Some(labels) = labels else { return };
    if spec
        .get("selector")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
    {
        spec.insert("selector".into(), labels.clone());
    }
    let meta = ensure_obj(root, "metadata");
    if meta
        .get("labels")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
    {
        meta.insert("labels".into(), labels);
    }
}

fn service(root: &mut Map<String, Value>) {
    let spec = ensure_obj(root, "spec");
    default(spec, "sessionAffinity", json!("None"));
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    default(spec, "type", json!("ClusterIP"));
    each_obj(spec, "ports", |p| {
        tcp(p);
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(n) => n.as_i64() == Some(0),
        };
        if unset {
            if let Some(port) = p.get("port").cloned() {
                p.insert("targetPort".into(), port);
            }
        }
    });
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let externally_accessible =
        ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && has_external_ips);
    if externally_accessible {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    ip_families(spec, &ty);
    // ServiceStatus.loadBalancer is a non-pointer struct, so upstream always shows it.
    ensure_obj(ensure_obj(root, "status"), "loadBalancer");
}

/// The registry's IP family defaults for a single-stack IPv4 cluster (upstream does this in
/// the Service REST storage, not in defaults.go). Headless Services without a selector are
/// `RequireDualStack` upstream; on a single-stack cluster they still get only IPv4.
fn ip_families(spec: &mut Map<String, Value>, ty: &str) {
    if ty == "ExternalName" {
        return;
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let has_selector = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_some_and(|s| !s.is_empty());
    let policy = if headless && !has_selector {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    default(spec, "ipFamilyPolicy", json!(policy));
    if spec
        .get("ipFamilies")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec.insert("ipFamilies".into(), json!(["IPv4"]));
    }
}

/// Namespaces carry their own name as a label (for namespace selectors), the `kubernetes`
/// finalizer (set by the namespace strategy upstream) and phase `Active`.
fn namespace(root: &mut Map<String, Value>) {
    let meta = ensure_obj(root, "metadata");
    if let Some(name) = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        let name = name.to_string();
        ensure_obj(meta, "labels").insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    // The `kubernetes` finalizer is not a default: upstream's strategy adds it on create
    // only (an emptied list must stay empty), so the apiserver's create path adds it.
    ensure_obj(root, "spec");
    default(ensure_obj(root, "status"), "phase", json!("Active"));
}

/// Defaults a `PersistentVolumeClaimSpec` (also used inside templates and ephemeral volumes).
pub(crate) fn pvc_spec(spec: &mut Map<String, Value>) {
    default(spec, "volumeMode", json!("Filesystem"));
    ensure_obj(spec, "resources");
}

fn pvc(root: &mut Map<String, Value>) {
    pvc_spec(ensure_obj(root, "spec"));
    default(ensure_obj(root, "status"), "phase", json!("Pending"));
}

fn persistent_volume(root: &mut Map<String, Value>) {
    let spec = ensure_obj(root, "spec");
    default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
    default(spec, "volumeMode", json!("Filesystem"));
    default(ensure_obj(root, "status"), "phase", json!("Pending"));
}

/// Container limits default from `max`, default requests from the default limit, then `min`.
fn limit_range_item(item: &mut Map<String, Value>) {
    if item.get("type").and_then(Value::as_str) != Some("Container") {
        return;
    }
    let resources = |item: &Map<String, Value>, k: &str| {
        item.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let mut limit = resources(item, "default");
    let mut request = resources(item, "defaultRequest");
    for (k, v) in resources(item, "max") {
        limit.entry(k).or_insert(v);
    }
    for (k, v) in limit.iter().chain(resources(item, "min").iter()) {
        request.entry(k.clone()).or_insert(v.clone());
    }
    // Go drops empty maps when serialising (omitempty).
    if !limit.is_empty() {
        item.insert("default".into(), Value::Object(limit));
    }
    if !request.is_empty() {
        item.insert("defaultRequest".into(), Value::Object(request));
    }
}

/// `status.allocatable` defaults to `status.capacity`.
fn node(root: &mut Map<String, Value>) {
    if let Some(status) = get_obj(root, "status") {
        if status.get("allocatable").is_none_or(Value::is_null) {
            if let Some(cap) = status.get("capacity").filter(|c| c.is_object()).cloned() {
                status.insert("allocatable".into(), cap);
            }
        }
    }
}

fn deployment(root: &mut Map<String, Value>) {
    let spec = ensure_obj(root, "spec");
    default_replicas(spec);
    let strategy = ensure_obj(spec, "strategy");
    default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = ensure_obj(strategy, "rollingUpdate");
        default(ru, "maxUnavailable", json!("25%"));
        default(ru, "maxSurge", json!("25%"));
    }
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    pod_template(ensure_obj(spec, "template"));
}

fn replica_set(root: &mut Map<String, Value>) {
    let spec = ensure_obj(root, "spec");
    default_replicas(spec);
    pod_template(ensure_obj(spec, "template"));
}

fn stateful_set(root: &mut Map<String, Value>) {
    let spec = ensure_obj(root, "spec");
    default(spec, "podManagementPolicy", json!("OrderedReady"));
    let strategy = ensure_obj(spec, "updateStrategy");
    if json::is_unset(strategy.get("type")) {
        strategy.insert("type".into(), json!("RollingUpdate"));
        ensure_obj(strategy, "rollingUpdate");
    }
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        if let Some(ru) = get_obj(strategy, "rollingUpdate") {
            default(ru, "partition", json!(0));
        }
    }
    let retention = ensure_obj(spec, "persistentVolumeClaimRetentionPolicy");
    default(retention, "whenDeleted", json!("Retain"));
    default(retention, "whenScaled", json!("Retain"));
    default_replicas(spec);
    default(spec, "revisionHistoryLimit", json!(10));
    pod_template(ensure_obj(spec, "template"));
    // The v1 conversion stamps apiVersion/kind on each claim template; claims are PVCs and
    // get the PVC defaults, status included.
    each_obj(spec, "volumeClaimTemplates", |t| {
        let mut claim = Map::new();
        claim.insert("apiVersion".into(), json!("v1"));
        claim.insert("kind".into(), json!("PersistentVolumeClaim"));
        for (k, v) in std::mem::take(t) {
            if k != "apiVersion" && k != "kind" {
                claim.insert(k, v);
            }
        }
        *t = claim;
        template_metadata(t);
        pvc(t);
    });
}

fn daemon_set(root: &mut Map<String, Value>) {
    let spec = ensure_obj(root, "spec");
    let strategy = ensure_obj(spec, "updateStrategy");
    default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = ensure_obj(strategy, "rollingUpdate");
        default(ru, "maxUnavailable", json!(1));
        default(ru, "maxSurge", json!(0));
    }
    default(spec, "revisionHistoryLimit", json!(10));
    pod_template(ensure_obj(spec, "template"));
}

/// Defaults a `JobSpec` and returns its template's labels, which a Job without labels of
/// its own inherits.
fn job_spec(spec: &mut Map<String, Value>) -> Option<Value> {
    let unset = |s: &Map<String, Value>, k: &str| s.get(k).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
    }
    default(spec, "parallelism", json!(1));
    // A per-index limit makes the global one unbounded, as upstream's SetDefaults_Job.
    let backoff_limit = if unset(spec, "backoffLimitPerIndex") {
        6
    } else {
        i32::MAX
    };
    default(spec, "backoffLimit", json!(backoff_limit));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    let replacement = if unset(spec, "podFailurePolicy") {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    default(spec, "podReplacementPolicy", json!(replacement));
    if let Some(pfp) = get_obj(spec, "podFailurePolicy") {
        each_obj(pfp, "rules", |r| {
            each_obj(r, "onPodConditions", |c| {
                default(c, "status", json!("True"))
            })
        });
    }
    let template = ensure_obj(spec, "template");
    pod_template(template);
    template
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .filter(|l| l.as_object().is_some_and(|l| !l.is_empty()))
        .cloned()
}

fn job(root: &mut Map<String, Value>) {
    let Some(labels) = job_spec(ensure_obj(root, "spec")) else {
        return;
    };
    let meta = ensure_obj(root, "metadata");
    if meta
        .get("labels")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
    {
        meta.insert("labels".into(), labels);
    }
}

fn cron_job(root: &mut Map<String, Value>) {
    let spec = ensure_obj(root, "spec");
    default(spec, "concurrencyPolicy", json!("Allow"));
    default(spec, "suspend", json!(false));
    default(spec, "successfulJobsHistoryLimit", json!(3));
    default(spec, "failedJobsHistoryLimit", json!(1));
    let template = ensure_obj(spec, "jobTemplate");
    template_metadata(template);
    job_spec(ensure_obj(template, "spec"));
}

/// Upstream's Job `PrepareForCreate` selector generation, which needs the Job's uid and so
/// is the apiserver's to call on create (before validation): unless `spec.manualSelector`
/// is true, the template gets the `job-name` and `controller-uid` labels (legacy and
/// `batch.kubernetes.io/` forms) and the selector matches the uid label.
pub fn generate_job_selector(job: &mut Value, uid: &str) {
    let Some(root) = job.as_object_mut() else {
        return;
    };
    let name = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let spec = ensure_obj(root, "spec");
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let labels = ensure_obj(
        ensure_obj(ensure_obj(spec, "template"), "metadata"),
        "labels",
    );
    for key in ["job-name", "batch.kubernetes.io/job-name"] {
        labels.entry(key).or_insert_with(|| json!(name));
    }
    for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
        labels.entry(key).or_insert_with(|| json!(uid));
    }
    let match_labels = ensure_obj(ensure_obj(spec, "selector"), "matchLabels");
    match_labels
        .entry("batch.kubernetes.io/controller-uid")
        .or_insert_with(|| json!(uid));
}

/// EndpointSlice port `name` is a pointer that defaults to `""`, which therefore shows.
fn endpoint_slice_port(p: &mut Map<String, Value>) {
    if p.get("name").is_none_or(Value::is_null) {
        p.insert("name".into(), json!(""));
    }
    tcp(p);
}

/// `roleRef.apiGroup` and User/Group subjects default to the RBAC group; ServiceAccount
/// subjects use the core group `""`, which Go omits, so nothing is written for them.
fn role_binding(root: &mut Map<String, Value>) {
    if let Some(r) = get_obj(root, "roleRef") {
        default(r, "apiGroup", json!("rbac.authorization.k8s.io"));
    }
    each_obj(root, "subjects", |s| {
        if matches!(
            s.get("kind").and_then(Value::as_str),
            Some("User" | "Group")
        ) {
            default(s, "apiGroup", json!("rbac.authorization.k8s.io"));
        }
    });
}

/// `policyTypes` defaults to `Ingress`, plus `Egress` when egress rules are given.
fn network_policy(root: &mut Map<String, Value>) {
    let spec = ensure_obj(root, "spec");
    for dir in ["ingress", "egress"] {
        each_obj(spec, dir, |rule| each_obj(rule, "ports", tcp));
    }
    if spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let types = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".into(), types);
    }
}

#[cfg(test)]
mod tests;
