//! Defaulting and validation of `admissionregistration.k8s.io/v1` and `apiregistration.k8s.io/v1`
//! objects on write, as kube-apiserver's: 422 with upstream's field errors, defaults on read.

mod common;

use axum::http::StatusCode;
use common::{app, call};
use serde_json::{json, Value};

const AR: &str = "/apis/admissionregistration.k8s.io/v1";

fn webhook(extra: Value) -> Value {
    let mut h = json!({
        "name": "check.example.com",
        "clientConfig": {"service": {"namespace": "default", "name": "hook", "path": "/check"}},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"],
                   "operations": ["CREATE"]}],
        "admissionReviewVersions": ["v1"],
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        h[k] = v;
    }
    h
}

fn configuration(kind: &str, name: &str, hooks: Vec<Value>) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
           "metadata": {"name": name}, "webhooks": hooks})
}

#[tokio::test]
async fn a_webhook_without_side_effects_is_refused_as_upstream() {
    let (app, _) = app().await;
    let (code, body) = call(
        &app,
        "POST",
        &format!("{AR}/validatingwebhookconfigurations"),
        Some(configuration(
            "ValidatingWebhookConfiguration",
            "nosideeffects",
            vec![webhook(json!({}))],
        )),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["message"],
        "ValidatingWebhookConfiguration.admissionregistration.k8s.io \"nosideeffects\" is invalid: \
         webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"
    );
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "webhooks[0].sideEffects"
    );
    assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueRequired");
}

#[tokio::test]
async fn webhook_defaults_are_stored_and_read_back() {
    let (app, _) = app().await;
    let (code, body) = call(
        &app,
        "POST",
        &format!("{AR}/mutatingwebhookconfigurations"),
        Some(configuration(
            "MutatingWebhookConfiguration",
            "defaults",
            vec![webhook(json!({"sideEffects": "None"}))],
        )),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, got) = call(
        &app,
        "GET",
        &format!("{AR}/mutatingwebhookconfigurations/defaults"),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{got}");
    let h = &got["webhooks"][0];
    assert_eq!(h["failurePolicy"], "Fail");
    assert_eq!(h["matchPolicy"], "Equivalent");
    assert_eq!(h["namespaceSelector"], json!({}));
    assert_eq!(h["objectSelector"], json!({}));
    assert_eq!(h["timeoutSeconds"], 10);
    assert_eq!(h["reinvocationPolicy"], "Never");
    assert_eq!(h["rules"][0]["scope"], "*");
    assert_eq!(h["clientConfig"]["service"]["port"], 443);
}

#[tokio::test]
async fn a_match_condition_that_does_not_compile_is_refused() {
    let (app, _) = app().await;
    let hook = webhook(json!({"sideEffects": "None",
        "matchConditions": [{"name": "broken", "expression": "object.metadata.name ==="}]}));
    let (code, body) = call(
        &app,
        "POST",
        &format!("{AR}/validatingwebhookconfigurations"),
        Some(configuration(
            "ValidatingWebhookConfiguration",
            "broken",
            vec![hook],
        )),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let cause = &body["details"]["causes"][0];
    assert_eq!(cause["field"], "webhooks[0].matchConditions[0].expression");
    let message = cause["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Invalid value: \"object.metadata.name ===\": compilation failed: ERROR: <input>:1:"
        ),
        "{message}"
    );
}

fn policy(name: &str, expression: &str) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": name},
    "spec": {
        "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
        "validations": [{"expression": expression}]
    }})
}

#[tokio::test]
async fn a_policy_whose_expression_does_not_compile_is_refused() {
    let (app, _) = app().await;
    let (code, body) = call(
        &app,
        "POST",
        &format!("{AR}/validatingadmissionpolicies"),
        Some(policy("broken", "object.spec.replicas <= ")),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "ValidatingAdmissionPolicy.admissionregistration.k8s.io \"broken\" is invalid: \
             spec.validations[0].expression: Invalid value: \"object.spec.replicas <= \": \
             compilation failed: ERROR: <input>:1:"
        ),
        "{message}"
    );
    let (code, body) = call(
        &app,
        "POST",
        &format!("{AR}/validatingadmissionpolicies"),
        Some(policy("undeclared", "foo.bar > 1")),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "Invalid value: \"foo.bar > 1\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')"
    );
}

#[tokio::test]
async fn a_valid_policy_and_binding_are_defaulted_and_a_bad_binding_refused() {
    let (app, _) = app().await;
    let (code, body) = call(
        &app,
        "POST",
        &format!("{AR}/validatingadmissionpolicies"),
        Some(policy("replicas", "object.spec.replicas <= 5")),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["spec"]["failurePolicy"], "Fail");
    let m = &body["spec"]["matchConstraints"];
    assert_eq!(m["matchPolicy"], "Equivalent");
    assert_eq!(m["namespaceSelector"], json!({}));
    assert_eq!(m["resourceRules"][0]["scope"], "*");
    let (code, body) = call(
        &app,
        "POST",
        &format!("{AR}/validatingadmissionpolicybindings"),
        Some(json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "replicas"},
            "spec": {"policyName": "replicas", "validationActions": ["Deny", "Warn"]}})),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "Invalid value: []admissionregistration.ValidationAction{\"Deny\", \"Warn\"}: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)"
    );
}

#[tokio::test]
async fn an_api_service_must_be_named_version_dot_group() {
    let (app, _) = app().await;
    let (code, body) = call(
        &app,
        "POST",
        "/apis/apiregistration.k8s.io/v1/apiservices",
        Some(
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "metrics"},
            "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                     "groupPriorityMinimum": 100, "versionPriority": 100,
                     "service": {"namespace": "kube-system", "name": "metrics-server"}}}),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["message"],
        "APIService.apiregistration.k8s.io \"metrics\" is invalid: metadata.name: Invalid value: \
         \"metrics\": must be `spec.version+\".\"+spec.group`: \"v1beta1.metrics.k8s.io\""
    );
}
