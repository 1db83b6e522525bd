//! `ObjectMeta` validation (`ValidateObjectMeta`, `ValidateObjectMetaUpdate`): names per
//! kind, namespace scope, labels, annotations, owner references and finalizers.

use serde_json::{Map, Value};

use super::names::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
    is_valid_label_value, is_valid_path_segment_name,
};
use super::{child, FieldError, FIELD_IMMUTABLE};

/// Upstream's `TotalAnnotationSizeLimitB`.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Kinds upstream serves cluster-scoped; a namespace on them is forbidden.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("networking.k8s.io", "IPAddress"),
    ("storage.k8s.io", "VolumeAttributesClass"),
    ("node.k8s.io", "RuntimeClass"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("apiregistration.k8s.io", "APIService"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
];

/// Groups whose kinds not listed in [`CLUSTER_SCOPED`] are namespaced; other groups are
/// custom resources whose scope only their CRD knows, so it is not checked here.
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
    "storage.k8s.io",
    "scheduling.k8s.io",
];

/// The name rule of a kind, as upstream's per-kind `ValidateNameFunc`.
fn name_rule(group: &str, kind: &str) -> fn(&str) -> Vec<String> {
    match (group, kind) {
        ("", "Namespace") => is_dns1123_label,
        ("", "Service") => is_dns1035_label,
        ("rbac.authorization.k8s.io", _) => is_valid_path_segment_name,
        // kube-aggregator's: `v1.` (the core group's APIService) must be a valid name.
        ("apiregistration.k8s.io", "APIService") => is_valid_path_segment_name,
        _ => is_dns1123_subdomain,
    }
}

/// A `generateName` prefix may end in '-': upstream masks the trailing dash before checking.
fn mask_trailing_dash(s: &str) -> String {
    match s.strip_suffix('-') {
        Some(rest) if !rest.is_empty() => format!("{rest}a"),
        _ => s.to_string(),
    }
}

fn meta_str<'a>(meta: Option<&'a Map<String, Value>>, key: &str) -> &'a str {
    meta.and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `ValidateObjectMeta` with the name rule and scope of `group`/`kind`.
pub(super) fn validate_object_meta(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = obj.get("metadata").and_then(Value::as_object);
    let rule = name_rule(group, kind);

    let generate_name = meta_str(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in rule(&mask_trailing_dash(generate_name)) {
            errs.push(FieldError::invalid(
                "metadata.generateName",
                Value::from(generate_name),
                msg,
            ));
        }
    }
    let name = meta_str(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in rule(name) {
            errs.push(FieldError::invalid("metadata.name", Value::from(name), msg));
        }
    }

    let namespace = meta_str(meta, "namespace");
    if CLUSTER_SCOPED.contains(&(group, kind)) {
        if !namespace.is_empty() {
            errs.push(FieldError::forbidden(
                "metadata.namespace",
                "not allowed on this type",
            ));
        }
    } else if BUILT_IN_GROUPS.contains(&group) {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for msg in is_dns1123_label(namespace) {
                errs.push(FieldError::invalid(
                    "metadata.namespace",
                    Value::from(namespace),
                    msg,
                ));
            }
        }
    }

    if let Some(g) = meta
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
    {
        if g < 0 {
            errs.push(FieldError::invalid(
                "metadata.generation",
                Value::from(g),
                super::names::IS_NEGATIVE_ERROR_MSG,
            ));
        }
    }
    errs.extend(validate_labels(
        meta.and_then(|m| m.get("labels")),
        "metadata.labels",
    ));
    errs.extend(validate_annotations(
        meta.and_then(|m| m.get("annotations")),
        "metadata.annotations",
    ));
    errs.extend(validate_owner_references(
        meta.and_then(|m| m.get("ownerReferences")),
    ));
    if let Some(Value::Array(finalizers)) = meta.and_then(|m| m.get("finalizers")) {
        for f in finalizers.iter().filter_map(Value::as_str) {
            for msg in is_qualified_name(f) {
                errs.push(FieldError::invalid(
                    "metadata.finalizers",
                    Value::from(f),
                    msg,
                ));
            }
        }
    }
    errs
}

/// `ValidateLabels`: every key a qualified name, every value a label value; errors point at
/// the whole map, as upstream.
pub(super) fn validate_labels(labels: Option<&Value>, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(labels) = labels.and_then(Value::as_object) else {
        return errs;
    };
    for (k, v) in labels {
        for msg in is_qualified_name(k) {
            errs.push(FieldError::invalid(field, Value::from(k.as_str()), msg));
        }
        let v = v.as_str().unwrap_or("");
        for msg in is_valid_label_value(v) {
            errs.push(FieldError::invalid(field, Value::from(v), msg));
        }
    }
    errs
}

/// `ValidateAnnotations`: keys are case-insensitive qualified names, total size ≤ 256 KiB.
pub(super) fn validate_annotations(annotations: Option<&Value>, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(annotations) = annotations.and_then(Value::as_object) else {
        return errs;
    };
    let mut total = 0usize;
    for (k, v) in annotations {
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(field, Value::from(k.as_str()), msg));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

fn validate_owner_references(refs: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(refs) = refs.and_then(Value::as_array) else {
        return errs;
    };
    let field = "metadata.ownerReferences";
    let mut controllers = Vec::new();
    for r in refs {
        let get = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        let api_version = get("apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(
                &child(field, "apiVersion"),
                Value::from(api_version),
                "version must not be empty",
            ));
        }
        if get("kind").is_empty() {
            errs.push(FieldError::invalid(
                &child(field, "kind"),
                Value::from(""),
                "kind must not be empty",
            ));
        }
        if get("name").is_empty() {
            errs.push(FieldError::invalid(
                &child(field, "name"),
                Value::from(""),
                "name must not be empty",
            ));
        }
        if get("uid").is_empty() {
            errs.push(FieldError::invalid(
                &child(field, "uid"),
                Value::from(""),
                "uid must not be empty",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers.push(format!("{}/{}", get("kind"), get("name")));
        }
    }
    if controllers.len() > 1 {
        errs.push(FieldError::invalid(
            field,
            Value::Array(refs.clone()),
            format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
    errs
}

/// `ValidateObjectMetaUpdate`: name, namespace and uid never change. The apiserver copies
/// uid and creationTimestamp from the old object when a client omits them, as upstream's
/// `BeforeUpdate` does, before calling this.
pub(super) fn validate_object_meta_update(obj: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let new_meta = obj.get("metadata").and_then(Value::as_object);
    let old_meta = old.get("metadata").and_then(Value::as_object);
    for key in ["name", "namespace", "uid"] {
        let new = meta_str(new_meta, key);
        let was = meta_str(old_meta, key);
        if new != was && !(key == "uid" && (new.is_empty() || was.is_empty())) {
            errs.push(FieldError::invalid(
                &format!("metadata.{key}"),
                Value::from(new),
                FIELD_IMMUTABLE,
            ));
        }
    }
    errs
}
