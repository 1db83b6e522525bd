//! `admissionregistration.k8s.io` validation (`pkg/apis/admissionregistration/validation`):
//! webhook configurations, ValidatingAdmissionPolicy and its bindings.
//!
//! Everything structural is here. Compiling the CEL expressions (match conditions,
//! validations, message expressions, variables, audit annotations) needs `skiff-cel`, which
//! depends on this crate, so the API server does it next to this validation; which
//! expressions it must compile follows [`match_conditions_checked`] as upstream's
//! `ignoreMatchConditions` option.

use std::collections::HashSet;

use serde_json::Value;

use super::apps::validate_label_selector;
use super::names::{
    is_dns1035_label, is_dns1123_subdomain, is_qualified_name, is_valid_path_segment_name,
    is_valid_port_num,
};
use super::{child, fmt_go, index, FieldError};

const FAILURE_POLICIES: &[&str] = &["Fail", "Ignore"];
const MATCH_POLICIES: &[&str] = &["Equivalent", "Exact"];
const ALL_SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun", "Some", "Unknown"];
const NO_SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const REINVOCATION_POLICIES: &[&str] = &["IfNeeded", "Never"];
const SCOPES: &[&str] = &["*", "Cluster", "Namespaced"];
const POLICY_REASONS: &[&str] = &["Forbidden", "Invalid", "RequestEntityTooLarge"];
const VALIDATION_ACTIONS: &[&str] = &["Audit", "Deny", "Warn"];
/// `AcceptedAdmissionReviewVersions`.
const ADMISSION_REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];
const MAX_AUDIT_ANNOTATIONS: usize = 20;
const MAX_AUDIT_ANNOTATION_VALUE_EXPRESSION_LENGTH: usize = 5 * 1024;
const MAX_MATCH_CONDITIONS: usize = 64;

fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// A Go pointer field: set unless absent or `null`.
fn present<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.get(k).filter(|x| !x.is_null())
}

fn strs(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i.as_str().unwrap_or("")).collect()
}

/// `%#v` of a slice of a named string type, e.g.
/// `[]admissionregistration.OperationType{"CREATE", "*"}`.
fn typed_slice(ty: &str, items: &[Value]) -> String {
    let body: Vec<String> = strs(items).iter().map(|i| fmt_go::quote(i)).collect();
    format!("[]{ty}{{{}}}", body.join(", "))
}

/// A value of a named string type as `%#v` prints it (quoted, like a plain string).
fn str_value(v: &Value) -> Value {
    match v {
        Value::String(_) => v.clone(),
        other => Value::String(other.to_string()),
    }
}

/// `ValidateQualifiedName`.
fn validate_qualified_name(value: &str, path: &str, errs: &mut Vec<FieldError>) {
    for msg in is_qualified_name(value) {
        errs.push(FieldError::invalid(path, Value::from(value), msg));
    }
}

/// `utilvalidation.IsFullyQualifiedName`.
fn fully_qualified_name(path: &str, name: &str) -> Option<FieldError> {
    if name.is_empty() {
        return Some(FieldError::required(path, ""));
    }
    let errs = is_dns1123_subdomain(name);
    if !errs.is_empty() {
        return Some(FieldError::invalid(path, Value::from(name), errs.join(",")));
    }
    if name.split('.').count() < 3 {
        return Some(FieldError::invalid(
            path,
            Value::from(name),
            "should be a domain with at least three segments separated by dots",
        ));
    }
    None
}

fn has_wildcard(items: &[&str]) -> bool {
    items.contains(&"*")
}

/// `validateResources` (rules that allow subresources).
fn validate_resources(resources: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    if resources.is_empty() {
        errs.push(FieldError::required(path, ""));
    }
    let mut with_wildcard_sub: HashSet<&str> = HashSet::new();
    let mut sub_with_wildcard_res: HashSet<&str> = HashSet::new();
    let mut double_wildcard = false;
    let mut single_wildcard = false;
    let mut without_sub = false;
    let list = strs(resources);
    for (i, res_sub) in list.iter().enumerate() {
        if res_sub.is_empty() {
            errs.push(FieldError::required(&index(path, i), ""));
            continue;
        }
        if *res_sub == "*/*" {
            double_wildcard = true;
        }
        if *res_sub == "*" {
            single_wildcard = true;
        }
        let Some((res, sub)) = res_sub.split_once('/') else {
            without_sub = *res_sub != "*";
            continue;
        };
        if with_wildcard_sub.contains(res) {
            errs.push(FieldError::invalid(
                &index(path, i),
                Value::from(*res_sub),
                format!("if '{res}/*' is present, must not specify {res_sub}"),
            ));
        }
        if sub_with_wildcard_res.contains(sub) {
            errs.push(FieldError::invalid(
                &index(path, i),
                Value::from(*res_sub),
                format!("if '*/{sub}' is present, must not specify {res_sub}"),
            ));
        }
        if sub == "*" {
            with_wildcard_sub.insert(res);
        }
        if res == "*" {
            sub_with_wildcard_res.insert(sub);
        }
    }
    if resources.len() > 1 && double_wildcard {
        errs.push(FieldError::invalid(
            path,
            Value::Array(resources.to_vec()),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if single_wildcard && without_sub {
        errs.push(FieldError::invalid(
            path,
            Value::Array(resources.to_vec()),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
}

/// `validateRule` with subresources allowed.
fn validate_rule(rule: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let groups = arr(rule, "apiGroups");
    if groups.is_empty() {
        errs.push(FieldError::required(&child(path, "apiGroups"), ""));
    }
    if groups.len() > 1 && has_wildcard(&strs(groups)) {
        errs.push(FieldError::invalid(
            &child(path, "apiGroups"),
            Value::Array(groups.to_vec()),
            "if '*' is present, must not specify other API groups",
        ));
    }
    let versions = arr(rule, "apiVersions");
    if versions.is_empty() {
        errs.push(FieldError::required(&child(path, "apiVersions"), ""));
    }
    if versions.len() > 1 && has_wildcard(&strs(versions)) {
        errs.push(FieldError::invalid(
            &child(path, "apiVersions"),
            Value::Array(versions.to_vec()),
            "if '*' is present, must not specify other API versions",
        ));
    }
    for (i, v) in strs(versions).iter().enumerate() {
        if v.is_empty() {
            errs.push(FieldError::required(
                &index(&child(path, "apiVersions"), i),
                "",
            ));
        }
    }
    validate_resources(arr(rule, "resources"), &child(path, "resources"), errs);
    if let Some(scope) = present(rule, "scope") {
        if !SCOPES.contains(&scope.as_str().unwrap_or("\0")) {
            errs.push(FieldError::not_supported(
                &child(path, "scope"),
                str_value(scope),
                SCOPES,
            ));
        }
    }
}

/// `validateRuleWithOperations`.
fn validate_rule_with_operations(rule: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let ops = arr(rule, "operations");
    let op_path = child(path, "operations");
    if ops.is_empty() {
        errs.push(FieldError::required(&op_path, ""));
    }
    if ops.len() > 1 && has_wildcard(&strs(ops)) {
        errs.push(
            FieldError::invalid(
                &op_path,
                Value::Array(ops.to_vec()),
                "if '*' is present, must not specify other operations",
            )
            .rendered(typed_slice("admissionregistration.OperationType", ops)),
        );
    }
    for (i, op) in ops.iter().enumerate() {
        if !OPERATIONS.contains(&op.as_str().unwrap_or("\0")) {
            errs.push(FieldError::not_supported(
                &index(&op_path, i),
                str_value(op),
                OPERATIONS,
            ));
        }
    }
    validate_rule(rule, path, errs);
}

/// `validateNamedRuleWithOperations`.
fn validate_named_rule(rule: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let names_path = child(path, "resourceNames");
    let mut seen = HashSet::new();
    for (i, name) in strs(arr(rule, "resourceNames")).into_iter().enumerate() {
        for msg in is_valid_path_segment_name(name) {
            errs.push(FieldError::invalid(
                &index(&names_path, i),
                Value::from(name),
                msg,
            ));
        }
        if !seen.insert(name) {
            errs.push(FieldError::duplicate(
                &index(&names_path, i),
                Value::from(name),
            ));
        }
    }
    validate_rule_with_operations(rule, path, errs);
}

/// `validateAdmissionReviewVersions`.
fn validate_admission_review_versions(
    versions: &[Value],
    require_recognized: bool,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if versions.is_empty() {
        errs.push(FieldError::required(
            path,
            format!(
                "must specify one of {}",
                ADMISSION_REVIEW_VERSIONS.join(", ")
            ),
        ));
        return;
    }
    let mut seen = HashSet::new();
    let mut accepted = false;
    for (i, v) in strs(versions).into_iter().enumerate() {
        if !seen.insert(v) {
            errs.push(FieldError::invalid(
                &index(path, i),
                Value::from(v),
                "duplicate version",
            ));
            continue;
        }
        for msg in is_dns1035_label(v) {
            errs.push(FieldError::invalid(&index(path, i), Value::from(v), msg));
        }
        if ADMISSION_REVIEW_VERSIONS.contains(&v) {
            accepted = true;
        }
    }
    if require_recognized && !accepted {
        errs.push(FieldError::invalid(
            path,
            Value::Array(versions.to_vec()),
            format!(
                "must include at least one of {}",
                ADMISSION_REVIEW_VERSIONS.join(", ")
            ),
        ));
    }
}

/// `webhook.ValidateWebhookURL` with https forced.
fn validate_webhook_url(path: &str, url: &str, errs: &mut Vec<FieldError>) {
    const FORM: &str = "; desired format: https://host[/path]";
    let parsed = GoUrl::parse(url);
    if parsed.scheme != "https" {
        errs.push(FieldError::invalid(
            path,
            Value::from(parsed.scheme.as_str()),
            format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    if parsed.host.is_empty() {
        errs.push(FieldError::invalid(
            path,
            Value::from(parsed.host.as_str()),
            format!("host must be provided{FORM}"),
        ));
    }
    if let Some(user) = &parsed.user {
        errs.push(FieldError::invalid(
            path,
            Value::from(user.as_str()),
            "user information is not permitted in the URL",
        ));
    }
    if !parsed.fragment.is_empty() {
        errs.push(FieldError::invalid(
            path,
            Value::from(parsed.fragment.as_str()),
            "fragments are not permitted in the URL",
        ));
    }
    if !parsed.query.is_empty() {
        errs.push(FieldError::invalid(
            path,
            Value::from(parsed.query.as_str()),
            "query parameters are not permitted in the URL",
        ));
    }
}

/// The parts of Go's `url.Parse` the webhook URL rules look at.
struct GoUrl {
    scheme: String,
    user: Option<String>,
    host: String,
    query: String,
    fragment: String,
}

impl GoUrl {
    fn parse(raw: &str) -> GoUrl {
        let (rest, fragment) = match raw.split_once('#') {
            Some((r, f)) => (r, f.to_string()),
            None => (raw, String::new()),
        };
        let (scheme, rest) = match rest.split_once(':') {
            Some((sch, r))
                if !sch.is_empty()
                    && sch.as_bytes()[0].is_ascii_alphabetic()
                    && sch
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) =>
            {
                (sch.to_ascii_lowercase(), r)
            }
            _ => (String::new(), rest),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, q.to_string()),
            None => (rest, String::new()),
        };
        let (mut user, mut host) = (None, String::new());
        if let Some(after) = rest.strip_prefix("//") {
            let authority = after.split('/').next().unwrap_or("");
            match authority.rsplit_once('@') {
                Some((u, h)) => {
                    user = Some(u.to_string());
                    host = h.to_string();
                }
                None => host = authority.to_string(),
            }
        }
        GoUrl {
            scheme,
            user,
            host,
            query,
            fragment,
        }
    }
}

/// `webhook.ValidateWebhookService`. Upstream passes the service's name where the function
/// takes the namespace and the other way round, so a missing name is reported as the
/// namespace; kept as upstream does.
fn validate_webhook_service(path: &str, service: &Value, errs: &mut Vec<FieldError>) {
    let (namespace, name) = (s(service, "name"), s(service, "namespace"));
    if name.is_empty() {
        errs.push(FieldError::required(
            &child(path, "name"),
            "service name is required",
        ));
    }
    if namespace.is_empty() {
        errs.push(FieldError::required(
            &child(path, "namespace"),
            "service namespace is required",
        ));
    }
    let port = service.get("port").and_then(Value::as_i64).unwrap_or(0);
    let port_errs = is_valid_port_num(port);
    if !port_errs.is_empty() {
        errs.push(FieldError::invalid(
            &child(path, "port"),
            Value::from(port),
            format!("port is not valid: {}", port_errs.join(", ")),
        ));
    }
    let Some(url_path) = service.get("path").and_then(Value::as_str) else {
        return;
    };
    let p = child(path, "path");
    if url_path == "/" || url_path.is_empty() {
        return;
    }
    if url_path == "//" {
        errs.push(FieldError::invalid(
            &p,
            Value::from(url_path),
            "segment[0] may not be empty",
        ));
        return;
    }
    if !url_path.starts_with('/') {
        errs.push(FieldError::invalid(
            &p,
            Value::from(url_path),
            "must start with a '/'",
        ));
    }
    let mut check = &url_path[url_path.chars().next().map_or(0, char::len_utf8)..];
    check = check.strip_suffix('/').unwrap_or(check);
    for (i, step) in check.split('/').enumerate() {
        if step.is_empty() {
            errs.push(FieldError::invalid(
                &p,
                Value::from(url_path),
                format!("segment[{i}] may not be empty"),
            ));
            continue;
        }
        for failure in is_dns1123_subdomain(step) {
            errs.push(FieldError::invalid(
                &p,
                Value::from(url_path),
                format!("segment[{i}]: {failure}"),
            ));
        }
    }
}

/// `validateMatchConditions` without the expression compilation.
fn validate_match_conditions(conditions: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    if conditions.len() > MAX_MATCH_CONDITIONS {
        errs.push(FieldError::too_many(
            path,
            conditions.len(),
            MAX_MATCH_CONDITIONS,
        ));
    }
    let mut names = HashSet::new();
    for (i, c) in conditions.iter().enumerate() {
        let p = index(path, i);
        if s(c, "expression").trim().is_empty() {
            errs.push(FieldError::required(&child(&p, "expression"), ""));
        }
        let name = s(c, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&child(&p, "name"), ""));
        } else {
            validate_qualified_name(name, &child(&p, "name"), errs);
        }
        if !name.is_empty() && !names.insert(name) {
            errs.push(FieldError::duplicate(&child(&p, "name"), Value::from(name)));
        }
    }
}

/// The per-configuration options upstream derives on update from the old object, so that
/// objects stored before a rule was tightened stay writable.
struct WebhookOptions {
    ignore_match_conditions: bool,
    require_no_side_effects: bool,
    require_recognized_admission_review_version: bool,
    require_unique_webhook_names: bool,
}

impl WebhookOptions {
    fn new(obj: &Value, old: Option<&Value>) -> WebhookOptions {
        let Some(old) = old else {
            return WebhookOptions {
                ignore_match_conditions: false,
                require_no_side_effects: true,
                require_recognized_admission_review_version: true,
                require_unique_webhook_names: true,
            };
        };
        let hooks = arr(old, "webhooks");
        WebhookOptions {
            ignore_match_conditions: !match_conditions_checked(obj, Some(old)),
            require_no_side_effects: hooks.iter().all(|h| {
                h.get("sideEffects")
                    .and_then(Value::as_str)
                    .is_some_and(|e| NO_SIDE_EFFECTS.contains(&e))
            }),
            require_recognized_admission_review_version: hooks.iter().all(|h| {
                let versions = strs(arr(h, "admissionReviewVersions"));
                versions.is_empty()
                    || versions
                        .iter()
                        .any(|v| ADMISSION_REVIEW_VERSIONS.contains(v))
            }),
            require_unique_webhook_names: {
                let mut seen = HashSet::new();
                hooks.iter().all(|h| seen.insert(s(h, "name")))
            },
        }
    }
}

/// Whether upstream validates (and compiles) the match conditions of this write: always on
/// create; on update of a webhook configuration only when some webhook's match conditions
/// changed (or webhooks were added or removed), and of a ValidatingAdmissionPolicy only when
/// its `paramKind` or `matchConditions` changed.
pub fn match_conditions_checked(obj: &Value, old: Option<&Value>) -> bool {
    let Some(old) = old else {
        return true;
    };
    if obj.get("webhooks").is_some() || old.get("webhooks").is_some() {
        let (new, old) = (arr(obj, "webhooks"), arr(old, "webhooks"));
        return new.len() != old.len()
            || new
                .iter()
                .zip(old)
                .any(|(n, o)| conditions_of(n) != conditions_of(o));
    }
    let (ns, os) = (&obj["spec"], &old["spec"]);
    present(ns, "paramKind") != present(os, "paramKind") || conditions_of(ns) != conditions_of(os)
}

fn conditions_of(v: &Value) -> &[Value] {
    arr(v, "matchConditions")
}

/// ValidatingWebhookConfiguration and MutatingWebhookConfiguration (`mutating`), on create
/// and on update from `old`.
pub(super) fn validate_webhook_configuration(
    obj: &Value,
    old: Option<&Value>,
    mutating: bool,
) -> Vec<FieldError> {
    let opts = WebhookOptions::new(obj, old);
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (i, hook) in arr(obj, "webhooks").iter().enumerate() {
        let p = index("webhooks", i);
        validate_webhook(hook, &opts, mutating, &p, &mut errs);
        validate_admission_review_versions(
            arr(hook, "admissionReviewVersions"),
            opts.require_recognized_admission_review_version,
            &child(&p, "admissionReviewVersions"),
            &mut errs,
        );
        let name = s(hook, "name");
        if opts.require_unique_webhook_names && !name.is_empty() && !names.insert(name) {
            errs.push(FieldError::duplicate(&child(&p, "name"), Value::from(name)));
        }
    }
    errs
}

/// `validateValidatingWebhook` / `validateMutatingWebhook`.
fn validate_webhook(
    hook: &Value,
    opts: &WebhookOptions,
    mutating: bool,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    errs.extend(fully_qualified_name(&child(path, "name"), s(hook, "name")));
    for (i, rule) in arr(hook, "rules").iter().enumerate() {
        validate_rule_with_operations(rule, &index(&child(path, "rules"), i), errs);
    }
    enum_field(hook, "failurePolicy", FAILURE_POLICIES, path, errs);
    enum_field(hook, "matchPolicy", MATCH_POLICIES, path, errs);
    let allowed = if opts.require_no_side_effects {
        NO_SIDE_EFFECTS
    } else {
        ALL_SIDE_EFFECTS
    };
    // Typed clients (and the API server's own typed round trip) send a missing
    // `sideEffects` as "", so "" counts as missing.
    if present(hook, "sideEffects").is_none_or(|e| e == "") {
        errs.push(FieldError::required(
            &child(path, "sideEffects"),
            format!("must specify one of {}", allowed.join(", ")),
        ));
    }
    if !s(hook, "sideEffects").is_empty() {
        enum_field(hook, "sideEffects", allowed, path, errs);
    }
    if let Some(t) = present(hook, "timeoutSeconds").and_then(Value::as_i64) {
        if !(1..=30).contains(&t) {
            errs.push(FieldError::invalid(
                &child(path, "timeoutSeconds"),
                Value::from(t),
                "the timeout value must be between 1 and 30 seconds",
            ));
        }
    }
    for sel in ["namespaceSelector", "objectSelector"] {
        if let Some(v) = present(hook, sel) {
            errs.extend(validate_label_selector(v, &child(path, sel)));
        }
    }
    if mutating {
        enum_field(
            hook,
            "reinvocationPolicy",
            REINVOCATION_POLICIES,
            path,
            errs,
        );
    }
    let null = Value::Null;
    let cc = hook.get("clientConfig").unwrap_or(&null);
    let cc_path = child(path, "clientConfig");
    match (present(cc, "url"), present(cc, "service")) {
        (Some(url), None) => {
            validate_webhook_url(&child(&cc_path, "url"), url.as_str().unwrap_or(""), errs)
        }
        (None, Some(service)) => {
            validate_webhook_service(&child(&cc_path, "service"), service, errs)
        }
        _ => errs.push(FieldError::required(
            &cc_path,
            "exactly one of url or service is required",
        )),
    }
    if !opts.ignore_match_conditions {
        validate_match_conditions(
            arr(hook, "matchConditions"),
            &child(path, "matchConditions"),
            errs,
        );
    }
}

/// An optional enumerated field: when set, one of `allowed`.
fn enum_field(v: &Value, key: &str, allowed: &[&str], path: &str, errs: &mut Vec<FieldError>) {
    if let Some(x) = present(v, key) {
        if !allowed.contains(&x.as_str().unwrap_or("\0")) {
            errs.push(FieldError::not_supported(
                &child(path, key),
                str_value(x),
                allowed,
            ));
        }
    }
}

/// `validateMatchResources`.
fn validate_match_resources(m: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match present(m, "matchPolicy") {
        None => errs.push(FieldError::required(&child(path, "matchPolicy"), "")),
        Some(_) => enum_field(m, "matchPolicy", MATCH_POLICIES, path, errs),
    }
    for sel in ["namespaceSelector", "objectSelector"] {
        match present(m, sel) {
            None => errs.push(FieldError::required(&child(path, sel), "")),
            Some(v) => errs.extend(validate_label_selector(v, &child(path, sel))),
        }
    }
    for list in ["resourceRules", "excludeResourceRules"] {
        for (i, rule) in arr(m, list).iter().enumerate() {
            validate_named_rule(rule, &index(&child(path, list), i), errs);
        }
    }
}

/// Go's `schema.ParseGroupVersion` as the admissionregistration validation copies it.
fn parse_group_version(gv: &str) -> Result<(&str, &str), String> {
    if gv.is_empty() || gv == "/" {
        return Ok(("", ""));
    }
    match gv.matches('/').count() {
        0 => Ok(("", gv)),
        1 => Ok(gv.split_once('/').unwrap_or(("", gv))),
        _ => Err(format!("unexpected GroupVersion string: {gv}")),
    }
}

/// `validateParamKind`.
fn validate_param_kind(pk: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let api_version = s(pk, "apiVersion");
    let av_path = child(path, "apiVersion");
    if api_version.is_empty() {
        errs.push(FieldError::required(&av_path, ""));
    } else {
        match parse_group_version(api_version) {
            Err(e) => errs.push(FieldError::invalid(&av_path, Value::from(api_version), e)),
            Ok((group, version)) => {
                if !group.is_empty() {
                    let e = is_dns1123_subdomain(group);
                    if !e.is_empty() {
                        errs.push(FieldError::invalid(
                            &av_path,
                            Value::from(group),
                            e.join(","),
                        ));
                    }
                }
                if version.is_empty() {
                    errs.push(FieldError::invalid(
                        &av_path,
                        Value::from(api_version),
                        "version must be specified",
                    ));
                } else {
                    let e = is_dns1035_label(version);
                    if !e.is_empty() {
                        errs.push(FieldError::invalid(
                            &av_path,
                            Value::from(version),
                            e.join(","),
                        ));
                    }
                }
            }
        }
    }
    let kind = s(pk, "kind");
    if kind.is_empty() {
        errs.push(FieldError::required(&child(path, "kind"), ""));
    } else {
        let e = is_dns1035_label(&kind.to_lowercase());
        if !e.is_empty() {
            errs.push(FieldError::invalid(
                &child(path, "kind"),
                Value::from(kind),
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    e.join(",")
                ),
            ));
        }
    }
}

fn has_newlines(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

/// ValidatingAdmissionPolicy, without the CEL compilation.
pub(super) fn validate_validating_admission_policy(
    obj: &Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let path = "spec";
    match present(spec, "failurePolicy") {
        None => errs.push(FieldError::required(&child(path, "failurePolicy"), "")),
        Some(_) => enum_field(spec, "failurePolicy", FAILURE_POLICIES, path, &mut errs),
    }
    if let Some(pk) = present(spec, "paramKind") {
        validate_param_kind(pk, &child(path, "paramKind"), &mut errs);
    }
    match present(spec, "matchConstraints") {
        None => errs.push(FieldError::required(&child(path, "matchConstraints"), "")),
        Some(m) => {
            validate_match_resources(m, &child(path, "matchConstraints"), &mut errs);
            if arr(m, "resourceRules").is_empty() {
                errs.push(FieldError::required(
                    "spec.matchConstraints.resourceRules",
                    "",
                ));
            }
        }
    }
    if match_conditions_checked(obj, old) {
        validate_match_conditions(
            arr(spec, "matchConditions"),
            &child(path, "matchConditions"),
            &mut errs,
        );
    }
    for (i, v) in arr(spec, "variables").iter().enumerate() {
        let p = index(&child(path, "variables"), i);
        let name = s(v, "name");
        if name.trim().is_empty() {
            errs.push(FieldError::required(
                &child(&p, "name"),
                "name is not specified",
            ));
        } else if !crate::cel::is_identifier(name) {
            errs.push(FieldError::invalid(
                &child(&p, "name"),
                Value::from(name),
                "name is not a valid CEL identifier",
            ));
        }
        if s(v, "expression").trim().is_empty() {
            errs.push(FieldError::required(
                &child(&p, "expression"),
                "expression is not specified",
            ));
        }
    }
    let validations = arr(spec, "validations");
    let annotations = arr(spec, "auditAnnotations");
    if validations.is_empty() && annotations.is_empty() {
        let msg = "validations or auditAnnotations must contain at least one item";
        errs.push(FieldError::required("spec.validations", msg));
        errs.push(FieldError::required("spec.auditAnnotations", msg));
        return errs;
    }
    for (i, v) in validations.iter().enumerate() {
        validate_validation(v, &index("spec.validations", i), &mut errs);
    }
    if annotations.len() > MAX_AUDIT_ANNOTATIONS {
        errs.push(FieldError::invalid(
            "spec.auditAnnotations",
            Value::Array(annotations.to_vec()),
            format!("must not have more than {MAX_AUDIT_ANNOTATIONS} auditAnnotations"),
        ));
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut keys = HashSet::new();
    for (i, a) in annotations.iter().enumerate() {
        let p = index("spec.auditAnnotations", i);
        let key = s(a, "key");
        if name.is_empty() {
            errs.push(FieldError::invalid(
                &child(&p, "key"),
                Value::from(key),
                "requires metadata.name be non-empty",
            ));
        } else {
            validate_qualified_name(&format!("{name}/{key}"), &child(&p, "key"), &mut errs);
        }
        let value = s(a, "valueExpression").trim();
        if value.is_empty() {
            errs.push(FieldError::required(
                &child(&p, "valueExpression"),
                "valueExpression is not specified",
            ));
        } else if value.len() > MAX_AUDIT_ANNOTATION_VALUE_EXPRESSION_LENGTH {
            errs.push(FieldError::required(
                &child(&p, "valueExpression"),
                format!(
                    "must not exceed {MAX_AUDIT_ANNOTATION_VALUE_EXPRESSION_LENGTH} bytes in length"
                ),
            ));
        }
        if !keys.insert(key) {
            errs.push(FieldError::duplicate(&child(&p, "key"), Value::from(key)));
        }
    }
    errs
}

/// `validateValidation`, without the CEL compilation.
fn validate_validation(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if s(v, "expression").trim().is_empty() {
        errs.push(FieldError::required(
            &child(path, "expression"),
            "expression is not specified",
        ));
    }
    let message_expression = s(v, "messageExpression");
    if !message_expression.is_empty() && message_expression.trim().is_empty() {
        errs.push(FieldError::invalid(
            &child(path, "messageExpression"),
            Value::from(message_expression),
            "must be non-empty if specified",
        ));
    }
    let message = s(v, "message");
    if !message.is_empty() && message.trim().is_empty() {
        errs.push(FieldError::invalid(
            &child(path, "message"),
            Value::from(message),
            "message must be non-empty if specified",
        ));
    } else if has_newlines(message.trim()) {
        errs.push(FieldError::invalid(
            &child(path, "message"),
            Value::from(message),
            "message must not contain line breaks",
        ));
    }
    enum_field(v, "reason", POLICY_REASONS, path, errs);
}

/// ValidatingAdmissionPolicyBinding.
pub(super) fn validate_validating_admission_policy_binding(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let policy = s(spec, "policyName");
    if policy.is_empty() {
        errs.push(FieldError::required("spec.policyName", ""));
    } else {
        for msg in is_dns1123_subdomain(policy) {
            errs.push(FieldError::invalid(
                "spec.policyName",
                Value::from(policy),
                msg,
            ));
        }
    }
    if let Some(pr) = present(spec, "paramRef") {
        validate_param_ref(pr, "spec.paramRef", &mut errs);
    }
    if let Some(m) = present(spec, "matchResources") {
        validate_match_resources(m, "spec.matchResources", &mut errs);
    }
    validate_validation_actions(arr(spec, "validationActions"), &mut errs);
    errs
}

/// `validateParamRef`.
fn validate_param_ref(pr: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let name = s(pr, "name");
    let selector = present(pr, "selector");
    const EXCLUSIVE: &str = "name and selector are mutually exclusive";
    if !name.is_empty() {
        for msg in is_valid_path_segment_name(name) {
            errs.push(FieldError::invalid(
                &child(path, "name"),
                Value::from(name),
                msg,
            ));
        }
        if selector.is_some() {
            errs.push(FieldError::forbidden(&child(path, "name"), EXCLUSIVE));
        }
    }
    if let Some(sel) = selector {
        errs.extend(validate_label_selector(sel, &child(path, "selector")));
        if !name.is_empty() {
            errs.push(FieldError::forbidden(&child(path, "selector"), EXCLUSIVE));
        }
    }
    if name.is_empty() && selector.is_none() {
        errs.push(FieldError::required(
            path,
            "one of name or selector must be specified",
        ));
    }
    match present(pr, "parameterNotFoundAction") {
        Some(Value::String(a)) if !a.is_empty() => {
            if a != "Deny" && a != "Allow" {
                errs.push(FieldError::not_supported(
                    &child(path, "parameterNotFoundAction"),
                    Value::from(a.as_str()),
                    &["Deny", "Allow"],
                ));
            }
        }
        _ => errs.push(FieldError::required(
            &child(path, "parameterNotFoundAction"),
            "",
        )),
    }
}

/// `validateValidationActions`.
fn validate_validation_actions(actions: &[Value], errs: &mut Vec<FieldError>) {
    let path = "spec.validationActions";
    let mut seen = HashSet::new();
    for (i, a) in actions.iter().enumerate() {
        let name = a.as_str().unwrap_or("");
        if !VALIDATION_ACTIONS.contains(&name) {
            errs.push(FieldError::not_supported(
                &index(path, i),
                str_value(a),
                VALIDATION_ACTIONS,
            ));
        }
        if !seen.insert(name) {
            errs.push(FieldError::duplicate(&index(path, i), str_value(a)));
        }
    }
    if seen.contains("Deny") && seen.contains("Warn") {
        errs.push(
            FieldError::invalid(
                path,
                Value::Array(actions.to_vec()),
                "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
            )
            .rendered(typed_slice("admissionregistration.ValidationAction", actions)),
        );
    }
    if seen.is_empty() {
        errs.push(FieldError::required(
            path,
            "at least one validation action is required",
        ));
    }
}

#[cfg(test)]
#[path = "admissionregistration_tests.rs"]
mod tests;
