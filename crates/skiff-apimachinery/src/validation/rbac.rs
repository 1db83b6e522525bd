//! RBAC validation: role rules, binding role references and subjects
//! (`pkg/apis/rbac/validation`).

use serde_json::Value;

use super::names::{is_dns1123_label, is_dns1123_subdomain, is_valid_path_segment_name};
use super::{child, index, FieldError};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `ValidatePolicyRule` for every rule of a Role (`namespaced`) or ClusterRole.
pub(super) fn validate_role(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, rule) in arr(obj, "rules").iter().enumerate() {
        let p = index("rules", i);
        if arr(rule, "verbs").is_empty() {
            errs.push(FieldError::required(
                &child(&p, "verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = arr(rule, "nonResourceURLs");
        if !urls.is_empty() {
            if namespaced {
                errs.push(FieldError::invalid(
                    &child(&p, "nonResourceURLs"),
                    Value::Array(urls.to_vec()),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !arr(rule, "apiGroups").is_empty()
                || !arr(rule, "resources").is_empty()
                || !arr(rule, "resourceNames").is_empty()
            {
                errs.push(FieldError::invalid(
                    &child(&p, "nonResourceURLs"),
                    Value::Array(urls.to_vec()),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if arr(rule, "apiGroups").is_empty() {
            errs.push(FieldError::required(
                &child(&p, "apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if arr(rule, "resources").is_empty() {
            errs.push(FieldError::required(
                &child(&p, "resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    errs
}

/// RoleBinding (`namespaced`) and ClusterRoleBinding: role reference, subjects, and the
/// rule that `roleRef` never changes.
pub(super) fn validate_binding(
    obj: &Value,
    old: Option<&Value>,
    namespaced: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let null = Value::Null;
    let role_ref = obj.get("roleRef").unwrap_or(&null);
    if s(role_ref, "apiGroup") != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            Value::from(s(role_ref, "apiGroup")),
            &[RBAC_GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&s(role_ref, "kind")) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            Value::from(s(role_ref, "kind")),
            kinds,
        ));
    }
    let name = s(role_ref, "name");
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for msg in is_valid_path_segment_name(name) {
            errs.push(FieldError::invalid("roleRef.name", Value::from(name), msg));
        }
    }
    for (i, subject) in arr(obj, "subjects").iter().enumerate() {
        errs.extend(validate_subject(subject, namespaced, &index("subjects", i)));
    }
    if let Some(old) = old {
        if old.get("roleRef") != obj.get("roleRef") {
            let rendered = format!(
                "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
                super::fmt_go::quote(s(role_ref, "apiGroup")),
                super::fmt_go::quote(s(role_ref, "kind")),
                super::fmt_go::quote(name)
            );
            errs.push(
                FieldError::invalid("roleRef", role_ref.clone(), "cannot change roleRef")
                    .rendered(rendered),
            );
        }
    }
    errs
}

fn validate_subject(subject: &Value, namespaced: bool, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = s(subject, "name");
    if name.is_empty() {
        errs.push(FieldError::required(&child(path, "name"), ""));
    }
    let group = s(subject, "apiGroup");
    match s(subject, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                for msg in is_dns1123_subdomain(name) {
                    errs.push(FieldError::invalid(
                        &child(path, "name"),
                        Value::from(name),
                        msg,
                    ));
                }
            }
            if !group.is_empty() {
                errs.push(FieldError::not_supported(
                    &child(path, "apiGroup"),
                    Value::from(group),
                    &[""],
                ));
            }
            let ns = s(subject, "namespace");
            if !namespaced && ns.is_empty() {
                errs.push(FieldError::required(&child(path, "namespace"), ""));
            } else if !ns.is_empty() {
                for msg in is_dns1123_label(ns) {
                    errs.push(FieldError::invalid(
                        &child(path, "namespace"),
                        Value::from(ns),
                        msg,
                    ));
                }
            }
        }
        "User" | "Group" => {
            if group != RBAC_GROUP {
                errs.push(FieldError::not_supported(
                    &child(path, "apiGroup"),
                    Value::from(group),
                    &[RBAC_GROUP],
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            &child(path, "kind"),
            Value::from(other),
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errs
}
