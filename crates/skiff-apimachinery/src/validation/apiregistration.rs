//! `apiregistration.k8s.io` validation: kube-aggregator's `ValidateAPIService`
//! (`pkg/apis/apiregistration/validation`). The generic metadata checks (a path-segment
//! name) run first in [`super::validate`]; this adds the `<version>.<group>` name rule.

use serde_json::Value;

use super::names::{
    is_dns1035_label, is_dns1123_subdomain, is_valid_path_segment_name, is_valid_port_num,
};
use super::{fmt_go, FieldError};

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `ValidateAPIService` (also what `ValidateAPIServiceUpdate` adds to the metadata update
/// checks).
pub(super) fn validate_api_service(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let (group, version) = (s(spec, "group"), s(spec, "version"));
    let required_name = format!("{version}.{group}");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !name.is_empty() && is_valid_path_segment_name(name).is_empty() && name != required_name {
        errs.push(FieldError::invalid(
            "metadata.name",
            Value::from(name),
            format!(
                "must be `spec.version+\".\"+spec.group`: {}",
                fmt_go::quote(&required_name)
            ),
        ));
    }
    if group.is_empty() && version != "v1" {
        errs.push(FieldError::required(
            "spec.group",
            "only v1 may have an empty group and it better be legacy kube",
        ));
    }
    if !group.is_empty() {
        for msg in is_dns1123_subdomain(group) {
            errs.push(FieldError::invalid("spec.group", Value::from(group), msg));
        }
    }
    for msg in is_dns1035_label(version) {
        errs.push(FieldError::invalid(
            "spec.version",
            Value::from(version),
            msg,
        ));
    }
    let int = |k: &str| spec.get(k).and_then(Value::as_i64).unwrap_or(0);
    let group_priority = int("groupPriorityMinimum");
    if group_priority <= 0 || group_priority > 20000 {
        errs.push(FieldError::invalid(
            "spec.groupPriorityMinimum",
            Value::from(group_priority),
            "must be positive and less than 20000",
        ));
    }
    let version_priority = int("versionPriority");
    if version_priority <= 0 || version_priority > 1000 {
        errs.push(FieldError::invalid(
            "spec.versionPriority",
            Value::from(version_priority),
            "must be positive and less than 1000",
        ));
    }
    let insecure = spec
        .get("insecureSkipTLSVerify")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let ca_bundle = s(spec, "caBundle");
    let Some(service) = spec.get("service").filter(|v| !v.is_null()) else {
        if !ca_bundle.is_empty() {
            errs.push(FieldError::invalid(
                "spec.caBundle",
                Value::from(format!("{} bytes", decoded_len(ca_bundle))),
                "local APIServices may not have a caBundle",
            ));
        }
        if insecure {
            errs.push(FieldError::invalid(
                "spec.insecureSkipTLSVerify",
                Value::Bool(true),
                "local APIServices may not have insecureSkipTLSVerify",
            ));
        }
        return errs;
    };
    if s(service, "namespace").is_empty() {
        errs.push(FieldError::required("spec.service.namespace", ""));
    }
    if s(service, "name").is_empty() {
        errs.push(FieldError::required("spec.service.name", ""));
    }
    let port = service.get("port").and_then(Value::as_i64).unwrap_or(0);
    let port_errs = is_valid_port_num(port);
    if !port_errs.is_empty() {
        errs.push(FieldError::invalid(
            "spec.service.port",
            Value::from(port),
            format!("port is not valid: {}", port_errs.join(", ")),
        ));
    }
    if insecure && !ca_bundle.is_empty() {
        errs.push(FieldError::invalid(
            "spec.insecureSkipTLSVerify",
            Value::Bool(true),
            "may not be true if caBundle is present",
        ));
    }
    errs
}

/// The byte length of a base64 `[]byte` field as decoded (padding and line breaks aside).
fn decoded_len(b64: &str) -> usize {
    let n = b64
        .bytes()
        .filter(|b| !matches!(b, b'=' | b'\n' | b'\r'))
        .count();
    n * 3 / 4
}
