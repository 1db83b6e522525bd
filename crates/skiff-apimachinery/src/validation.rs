//! Upstream's API validation (`pkg/apis/<group>/validation`) on wire-form objects, with
//! field errors that print exactly like upstream's `field.Error`, so `kubectl` users see the
//! same `The Deployment "x" is invalid: ...` messages.
//!
//! Call [`validate`] after defaulting, and after the preparation upstream's registry does
//! first: `metadata.namespace` set from the request path, `metadata.name` generated from
//! `generateName`, uid/creationTimestamp copied from the old object on update, and
//! [`crate::defaults::generate_job_selector`] (Job create),
//! [`crate::defaults::carry_over_service_allocations`] (Service update),
//! [`crate::defaults::fold_secret_string_data`] (Secret writes). It covers writes to the main
//! resource; `status` and `binding` subresource writes have their own upstream rules.

pub mod admissionregistration;
pub mod apiextensions;
mod apiregistration;
mod apps;
mod container;
mod core;
mod ephemeral;
pub mod fmt_go;
mod meta;
pub mod names;
mod pod;
mod pod_update;
mod rbac;
mod scheduling;
pub mod security;
mod status;

use std::fmt;

use serde_json::Value;

pub use status::{aggregate_message, invalid_status};

pub use names::{
    is_config_map_key, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
    is_valid_label_value, is_valid_port_name,
};

/// Upstream's `field.ErrorType`: the machine-readable kind of a field error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A required value is missing.
    Required,
    /// A value is malformed or out of range.
    Invalid,
    /// An enumerated value is not one of the supported ones.
    NotSupported,
    /// A value that must be unique is repeated.
    Duplicate,
    /// A value is well-formed but not allowed here.
    Forbidden,
    /// A value is too long (the value itself is not printed).
    TooLong,
    /// A list has too many items.
    TooMany,
    /// A referenced value does not exist (e.g. a volume mount naming no volume).
    NotFound,
    /// A value has the wrong type (e.g. a string where a CRD schema wants an integer); prints
    /// as `Invalid value`.
    TypeInvalid,
    /// Something that is not the user's fault; the value is not printed.
    Internal,
}

impl ErrorKind {
    /// The `reason` of a `StatusCause` (upstream `CauseType`).
    pub fn reason(&self) -> &'static str {
        match self {
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::Invalid => "FieldValueInvalid",
            ErrorKind::NotSupported => "FieldValueNotSupported",
            ErrorKind::Duplicate => "FieldValueDuplicate",
            ErrorKind::Forbidden => "FieldValueForbidden",
            ErrorKind::TooLong => "FieldValueTooLong",
            ErrorKind::TooMany => "FieldValueTooMany",
            ErrorKind::NotFound => "FieldValueNotFound",
            ErrorKind::TypeInvalid => "FieldValueTypeInvalid",
            ErrorKind::Internal => "InternalError",
        }
    }

    /// The human text upstream prints for the kind.
    pub fn text(&self) -> &'static str {
        match self {
            ErrorKind::Required => "Required value",
            ErrorKind::Invalid | ErrorKind::TypeInvalid => "Invalid value",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::TooLong => "Too long",
            ErrorKind::TooMany => "Too many",
            ErrorKind::NotFound => "Not found",
            ErrorKind::Internal => "Internal error",
        }
    }
}

/// One validation failure, as upstream's `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The field path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    /// What is wrong.
    pub kind: ErrorKind,
    /// The offending value, when upstream prints one.
    pub value: Option<Value>,
    /// Extra explanation after the value.
    pub detail: String,
    /// How upstream prints `value` when it is not a plain JSON scalar (a Go struct, map or
    /// `fmt.Stringer`, e.g. `map[string]string{"app":"web"}`, or an `interface{}` via
    /// [`FieldError::untyped`]); `None` prints `value` itself.
    pub rendered_value: Option<String>,
}

impl FieldError {
    fn new(field: &str, kind: ErrorKind, value: Option<Value>, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            kind,
            value,
            detail: detail.into(),
            rendered_value: None,
        }
    }

    /// `field.Required(path, detail)`.
    pub fn required(field: &str, detail: impl Into<String>) -> Self {
        Self::new(field, ErrorKind::Required, None, detail)
    }

    /// `field.Invalid(path, value, detail)`.
    pub fn invalid(field: &str, value: Value, detail: impl Into<String>) -> Self {
        Self::new(field, ErrorKind::Invalid, Some(value), detail)
    }

    /// `field.NotSupported(path, value, valid)`: the detail lists the quoted valid values.
    pub fn not_supported(field: &str, value: Value, valid: &[impl AsRef<str>]) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| fmt_go::quote(v.as_ref())).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(field, ErrorKind::NotSupported, Some(value), detail)
    }

    /// `field.Duplicate(path, value)`.
    pub fn duplicate(field: &str, value: Value) -> Self {
        Self::new(field, ErrorKind::Duplicate, Some(value), "")
    }

    /// `field.Forbidden(path, detail)`.
    pub fn forbidden(field: &str, detail: impl Into<String>) -> Self {
        Self::new(field, ErrorKind::Forbidden, None, detail)
    }

    /// `field.TooLong(path, value, max)`.
    pub fn too_long(field: &str, max: usize) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self::new(
            field,
            ErrorKind::TooLong,
            None,
            format!("may not be more than {max} {unit}"),
        )
    }

    /// `field.TooMany(path, actual, max)`.
    pub fn too_many(field: &str, actual: usize, max: usize) -> Self {
        Self::new(
            field,
            ErrorKind::TooMany,
            Some(Value::from(actual)),
            format!("must have at most {max} items"),
        )
    }

    /// `field.NotFound(path, value)`.
    pub fn not_found(field: &str, value: Value) -> Self {
        Self::new(field, ErrorKind::NotFound, Some(value), "")
    }

    /// `field.TypeInvalid(path, value, detail)`.
    pub fn type_invalid(field: &str, value: Value, detail: impl Into<String>) -> Self {
        Self::new(field, ErrorKind::TypeInvalid, Some(value), detail)
    }

    /// `field.InternalError(path, err)`.
    pub fn internal(field: &str, detail: impl Into<String>) -> Self {
        Self::new(field, ErrorKind::Internal, None, detail)
    }

    /// Prints the value as Go prints an `interface{}` holding decoded JSON (maps as
    /// `map[string]interface {}{...}`, floats as `%v`), as upstream does for unstructured data
    /// such as custom resources checked against their schema.
    pub fn untyped(mut self) -> Self {
        self.rendered_value = self.value.as_ref().map(fmt_go::interface_value);
        self
    }

    /// Sets how the value prints when upstream prints a Go struct or map.
    pub fn rendered(mut self, rendered: impl Into<String>) -> Self {
        self.rendered_value = Some(rendered.into());
        self
    }

    /// Upstream's `ErrorBody()`: the message without the field, used as a `StatusCause`
    /// message.
    pub fn body(&self) -> String {
        let mut s = match self.kind {
            ErrorKind::Required
            | ErrorKind::Forbidden
            | ErrorKind::TooLong
            | ErrorKind::Internal => self.kind.text().to_string(),
            _ => match (&self.rendered_value, &self.value) {
                (Some(r), _) => format!("{}: {r}", self.kind.text()),
                (None, None) => self.kind.text().to_string(),
                (None, Some(v)) => format!("{}: {}", self.kind.text(), fmt_go::value(v)),
            },
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// Upstream's `field.Error.Error()`: `<field>: <body>`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for FieldError {}

/// `ValidatePodEphemeralContainersUpdate`, the rule of a write to a Pod's
/// `ephemeralcontainers` subresource: the pod's metadata update and spec as any pod's (with
/// its ephemeral containers' own checks), then only additions to the ephemeral containers.
pub fn validate_pod_ephemeral_containers_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = meta::validate_object_meta("", "Pod", new);
    errs.extend(meta::validate_object_meta_update(new, old));
    let null = Value::Null;
    errs.extend(pod::validate_pod_spec(
        new.get("spec").unwrap_or(&null),
        "spec",
        &[],
    ));
    let own = ephemeral::validate_update(new, old);
    if own.first().is_some_and(|e| e.field.is_empty()) {
        // A static pod: upstream answers with that alone.
        return own;
    }
    errs.extend(own);
    errs
}

/// Validates `obj` (and, on update, its transition from `old`) as upstream would for
/// `group`/`kind`. Kinds without upstream rules get the metadata checks only.
pub fn validate(group: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = meta::validate_object_meta(group, kind, obj);
    if let Some(old) = old {
        errs.extend(meta::validate_object_meta_update(obj, old));
    }
    match (group, kind) {
        ("", "Pod") => errs.extend(pod::validate_pod(obj, old)),
        ("", "PodTemplate") => errs.extend(pod::validate_pod_template_spec(
            obj.get("template"),
            "template",
            &[],
        )),
        ("", "ReplicationController") => errs.extend(apps::validate_replication_controller(obj)),
        ("apps", "Deployment") => errs.extend(apps::validate_deployment(obj, old)),
        ("apps", "ReplicaSet") => errs.extend(apps::validate_replica_set(obj, old)),
        ("apps", "StatefulSet") => errs.extend(apps::validate_stateful_set(obj, old)),
        ("apps", "DaemonSet") => errs.extend(apps::validate_daemon_set(obj, old)),
        ("batch", "Job") => errs.extend(apps::validate_job(obj, old)),
        ("batch", "CronJob") => errs.extend(apps::validate_cron_job(obj, old)),
        ("", "Service") => errs.extend(core::validate_service(obj, old)),
        ("", "ConfigMap") => errs.extend(core::validate_config_map(obj, old)),
        ("", "Secret") => errs.extend(core::validate_secret(obj, old)),
        ("", "Namespace") => errs.extend(core::validate_namespace(obj)),
        ("", "Node") => errs.extend(core::validate_node(obj)),
        ("", "Event") => errs.extend(core::validate_event(obj)),
        ("", "PersistentVolumeClaim") => errs.extend(core::validate_pvc(obj)),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            errs.extend(apiextensions::validate_crd(obj, old))
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => errs.extend(
            admissionregistration::validate_webhook_configuration(obj, old, false),
        ),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => errs.extend(
            admissionregistration::validate_webhook_configuration(obj, old, true),
        ),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => errs.extend(
            admissionregistration::validate_validating_admission_policy(obj, old),
        ),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            errs.extend(admissionregistration::validate_validating_admission_policy_binding(obj))
        }
        ("apiregistration.k8s.io", "APIService") => {
            errs.extend(apiregistration::validate_api_service(obj))
        }
        ("coordination.k8s.io", "Lease") => errs.extend(core::validate_lease(obj)),
        ("scheduling.k8s.io", "PriorityClass") => {
            errs.extend(scheduling::validate_priority_class(obj, old))
        }
        ("rbac.authorization.k8s.io", "Role") => errs.extend(rbac::validate_role(obj, true)),
        ("rbac.authorization.k8s.io", "ClusterRole") => {
            errs.extend(rbac::validate_role(obj, false))
        }
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            errs.extend(rbac::validate_binding(obj, old, true))
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            errs.extend(rbac::validate_binding(obj, old, false))
        }
        _ => {}
    }
    errs
}

/// Joins a field path and a child name the way upstream's `field.Path` prints.
fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// `path[i]`.
fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `path[key]` (upstream `Path.Key`).
fn key(parent: &str, k: &str) -> String {
    format!("{parent}[{k}]")
}

/// `ValidateNonnegativeField` for an optional integer field.
fn non_negative(obj: &Value, ptr: &str, field: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = obj.pointer(ptr).and_then(Value::as_i64) {
        if n < 0 {
            errs.push(FieldError::invalid(
                field,
                Value::from(n),
                names::IS_NEGATIVE_ERROR_MSG,
            ));
        }
    }
}

/// Upstream's `ValidateImmutableField` message.
const FIELD_IMMUTABLE: &str = "field is immutable";

#[cfg(test)]
mod tests;
