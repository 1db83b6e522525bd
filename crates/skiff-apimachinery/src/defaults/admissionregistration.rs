//! `admissionregistration.k8s.io/v1` defaults (`pkg/apis/admissionregistration/v1/defaults.go`
//! and its generated nested defaults) and `apiregistration.k8s.io/v1` APIService defaults
//! (kube-aggregator's `SetDefaults_ServiceReference`).

use serde_json::{json, Map, Value};

use super::json::{default, each_obj, ensure_obj, get_obj};

/// `SetDefaults_ValidatingWebhook` / `SetDefaults_MutatingWebhook` on every webhook of a
/// configuration, with `SetDefaults_Rule` on its rules and `SetDefaults_ServiceReference` on
/// its service.
pub(super) fn webhook_configuration(root: &mut Map<String, Value>, mutating: bool) {
    each_obj(root, "webhooks", |hook| {
        default(hook, "failurePolicy", json!("Fail"));
        default(hook, "matchPolicy", json!("Equivalent"));
        default_selector(hook, "namespaceSelector");
        default_selector(hook, "objectSelector");
        default(hook, "timeoutSeconds", json!(10));
        if mutating {
            default(hook, "reinvocationPolicy", json!("Never"));
        }
        each_obj(hook, "rules", rule);
        if let Some(service) = get_obj(hook, "clientConfig").and_then(|c| get_obj(c, "service")) {
            default(service, "port", json!(443));
        }
    });
}

/// `SetDefaults_ValidatingAdmissionPolicySpec` and the match constraints' defaults.
pub(super) fn validating_admission_policy(root: &mut Map<String, Value>) {
    let spec = ensure_obj(root, "spec");
    default(spec, "failurePolicy", json!("Fail"));
    if let Some(m) = get_obj(spec, "matchConstraints") {
        match_resources(m);
    }
}

/// A binding's optional `matchResources` gets `SetDefaults_MatchResources`.
pub(super) fn validating_admission_policy_binding(root: &mut Map<String, Value>) {
    let spec = ensure_obj(root, "spec");
    if let Some(m) = get_obj(spec, "matchResources") {
        match_resources(m);
    }
}

/// kube-aggregator's `SetDefaults_ServiceReference`: port 443.
pub(super) fn api_service(root: &mut Map<String, Value>) {
    if let Some(service) = get_obj(ensure_obj(root, "spec"), "service") {
        default(service, "port", json!(443));
    }
}

/// `SetDefaults_MatchResources`, and `SetDefaults_Rule` on its (exclude) resource rules.
fn match_resources(m: &mut Map<String, Value>) {
    default(m, "matchPolicy", json!("Equivalent"));
    default_selector(m, "namespaceSelector");
    default_selector(m, "objectSelector");
    each_obj(m, "resourceRules", rule);
    each_obj(m, "excludeResourceRules", rule);
}

/// `SetDefaults_Rule`: scope `*`.
fn rule(r: &mut Map<String, Value>) {
    default(r, "scope", json!("*"));
}

/// A nil selector pointer becomes the empty selector `{}`.
fn default_selector(map: &mut Map<String, Value>, key: &str) {
    if matches!(map.get(key), None | Some(Value::Null)) {
        map.insert(key.to_string(), json!({}));
    }
}
