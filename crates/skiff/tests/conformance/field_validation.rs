//! FieldValidation: `test/e2e/apimachinery/field_validation.go` (typed objects).

use super::*;

/// field_validation.go "should detect unknown and duplicate fields of a typed object"
/// (Conformance): a strict create names both problems in one decoding error.
#[test]
fn field_validation_should_detect_unknown_and_duplicate_fields_of_a_typed_object() {
    run(|c| async move {
        let ns = namespace(&c, "cf-fv-typed").await;
        let body = r#"{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "my-dep", "labels": {"app": "nginx"}},
        "spec": {
            "unknownField": "foo",
            "replicas": 2,
            "replicas": 3,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}
            }
        }
    }"#;
        let uri = format!(
            "/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=field_validation_mgr&fieldValidation=Strict"
        );
        let r = raw(
            &c,
            Method::POST,
            &uri,
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.contains(
                r#"strict decoding error: unknown field "spec.unknownField", duplicate field "spec.replicas""#
            ),
            "error missing unknown/duplicate field, got: {message}"
        );
    });
}

/// field_validation.go "should detect unknown metadata fields of a typed object" (Conformance).
#[test]
fn field_validation_should_detect_unknown_metadata_fields_of_a_typed_object() {
    run(|c| async move {
        let ns = namespace(&c, "cf-fv-meta").await;
        let body = r#"{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "my-dep", "unknownMeta": "foo", "labels": {"app": "nginx"}},
        "spec": {
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}
            }
        }
    }"#;
        let uri = format!(
            "/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=field_validation_mgr&fieldValidation=Strict"
        );
        let r = raw(
            &c,
            Method::POST,
            &uri,
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.contains(r#"strict decoding error: unknown field "metadata.unknownMeta""#),
            "error missing unknown metadata field, got: {message}"
        );
    });
}
