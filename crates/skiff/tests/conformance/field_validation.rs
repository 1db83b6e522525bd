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

// ---------------------------------------------------------------------------------------------
// Custom resources (the same file's CR cases)

/// The schema upstream's CR cases share: `spec` with a string, a cron pattern and a map list
/// of ports keyed by containerPort and protocol.
fn ports_schema(spec_extra: Value) -> Value {
    let mut spec = json!({
        "type": "object",
        "properties": {
            "foo": {"type": "string"},
            "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
            "ports": {
                "type": "array",
                "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                "x-kubernetes-list-type": "map",
                "items": {
                    "properties": {
                        "containerPort": {"format": "int32", "type": "integer"},
                        "hostIP": {"type": "string"},
                        "hostPort": {"format": "int32", "type": "integer"},
                        "name": {"type": "string"},
                        "protocol": {"type": "string"}
                    },
                    "required": ["containerPort", "protocol"],
                    "type": "object"
                }
            }
        }
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        for (k, v) in extra {
            if k == "properties" {
                for (pk, pv) in v.as_object().into_iter().flatten() {
                    spec["properties"][pk] = pv.clone();
                }
            } else {
                spec.insert(k.clone(), v.clone());
            }
        }
    }
    json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": spec}}})
}

/// `NewRandomNameMultipleVersionCustomResourceDefinition(ClusterScoped)` with `schema` (or
/// the fixture's allow-all one) on every version, created and in discovery.
async fn create_noxu(c: &Client, schema: Option<Value>) -> Value {
    let mut crd = new_random_name_multiple_version_crd("Cluster");
    if let Some(schema) = schema {
        for v in crd["spec"]["versions"].as_array_mut().unwrap() {
            v["schema"] = schema.clone();
        }
    }
    create_crd(c, &crd).await
}

/// A strict server-side apply of `yaml` as `mytest` in the CRD's first version.
async fn strict_apply(c: &Client, crd: &Value, yaml: &str) -> Resp {
    let uri = format!(
        "{}/mytest?fieldManager=field_validation_mgr&fieldValidation=Strict",
        cr_path(crd, "v1beta1", None)
    );
    apply(c, &uri, yaml).await
}

fn type_meta(crd: &Value) -> (String, String) {
    (
        format!("{}/v1beta1", crd["spec"]["group"].as_str().unwrap()),
        crd["spec"]["names"]["kind"].as_str().unwrap().to_owned(),
    )
}

/// Removes the test finalizer the CR cases set, then the CRD (upstream leaves both to the
/// namespace-less cluster; here the shared server is cleaned).
async fn cleanup_noxu(c: &Client, crd: &Value) {
    let uri = format!("{}/mytest", cr_path(crd, "v1beta1", None));
    let r = raw(
        c,
        Method::PATCH,
        &uri,
        &[("content-type", "application/merge-patch+json")],
        r#"{"metadata":{"finalizers":[]}}"#,
    )
    .await;
    assert!(
        r.status.is_success() || r.status == StatusCode::NOT_FOUND,
        "{}",
        r.body
    );
    delete_crd(c, crd).await;
}

/// field_validation.go "should create/apply a valid CR for CRD with validation schema"
/// (Conformance).
#[test]
fn field_validation_should_create_apply_a_valid_cr_for_crd_with_validation_schema() {
    run(|c| async move {
        let crd = create_noxu(&c, Some(ports_schema(json!({})))).await;
        let (api_version, kind) = type_meta(&crd);
        let yaml = format!(
            r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: mytest
  finalizers:
  - test-finalizer
spec:
  foo: foo1
  cronSpec: "* * * * */5"
  ports:
  - name: x
    containerPort: 80
    protocol: TCP"#
        );
        let r = strict_apply(&c, &crd, &yaml).await;
        ok(&r, "strict apply of a valid CR");
        cleanup_noxu(&c, &crd).await;
    });
}

/// field_validation.go "should create/apply a CR with unknown fields for CRD with no
/// validation schema" (Conformance).
#[test]
fn field_validation_should_create_apply_a_cr_with_unknown_fields_for_crd_with_no_validation_schema()
{
    run(|c| async move {
        let crd = create_noxu(&c, None).await;
        let (api_version, kind) = type_meta(&crd);
        let yaml = format!(
            r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: mytest
  finalizers:
  - test-finalizer
spec:
  unknown: uk1
  cronSpec: "* * * * */5"
  ports:
  - name: x
    containerPort: 80
    protocol: TCP"#
        );
        let r = strict_apply(&c, &crd, &yaml).await;
        ok(&r, "strict apply of a CR without a schema");
        cleanup_noxu(&c, &crd).await;
    });
}

/// field_validation.go "should create/apply an invalid CR with extra properties for CRD with
/// validation schema" (Conformance).
#[test]
fn field_validation_should_create_apply_an_invalid_cr_with_extra_properties_for_crd_with_validation_schema(
) {
    run(|c| async move {
        let crd = create_noxu(&c, Some(ports_schema(json!({})))).await;
        let (api_version, kind) = type_meta(&crd);
        let yaml = format!(
            r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: mytest
  finalizers:
  - test-finalizer
unknownField: unknown
spec:
  foo: foo1
  cronSpec: "* * * * */5"
  ports:
  - name: x
    containerPort: 80
    protocol: TCP"#
        );
        let r = strict_apply(&c, &crd, &yaml).await;
        assert!(
            r.body
                .contains(".unknownField: field not declared in schema"),
            "error missing unknown field: {}:\n{}",
            r.status,
            r.body
        );
        cleanup_noxu(&c, &crd).await;
    });
}

/// field_validation.go "should detect unknown metadata fields in both the root and embedded
/// object of a CR" (Conformance).
#[test]
fn field_validation_should_detect_unknown_metadata_fields_in_both_the_root_and_embedded_object_of_a_cr(
) {
    run(|c| async move {
        let ns = namespace(&c, "cf-fv-cr-meta").await;
        let schema = ports_schema(json!({
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"template": {
                "type": "object",
                "x-kubernetes-embedded-resource": true,
                "properties": {
                    "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
                    "spec": {"type": "object"}
                }
            }}
        }));
        let crd = create_noxu(&c, Some(schema)).await;
        let (api_version, kind) = type_meta(&crd);
        let yaml = format!(
            r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: mytest
  unknownMeta: unknown
  finalizers:
  - test-finalizer
spec:
  template:
    apiversion: foo/v1
    kind: Sub
    metadata:
        unknownSubMeta: unknown
        name: subobject
        namespace: {ns}
  foo: foo1
  cronSpec: "* * * * */5"
  ports:
  - name: x
    containerPort: 80
    protocol: TCP"#
        );
        let r = strict_apply(&c, &crd, &yaml).await;
        assert!(
            r.body
                .contains(".spec.template.metadata.unknownSubMeta: field not declared in schema")
                || r.body
                    .contains(".metadata.unknownMeta: field not declared in schema"),
            "error missing unknown metadata field: {}:\n{}",
            r.status,
            r.body
        );
        cleanup_noxu(&c, &crd).await;
    });
}

/// field_validation.go "should detect duplicates in a CR when preserving unknown fields"
/// (Conformance): the YAML decoder's own message, with the line.
#[test]
fn field_validation_should_detect_duplicates_in_a_cr_when_preserving_unknown_fields() {
    run(|c| async move {
        let schema = ports_schema(json!({"x-kubernetes-preserve-unknown-fields": true}));
        let crd = create_noxu(&c, Some(schema)).await;
        let (api_version, kind) = type_meta(&crd);
        let yaml = format!(
            r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: mytest
  finalizers:
  - test-finalizer
spec:
  unknown: uk1
  foo: foo1
  foo: foo2
  cronSpec: "* * * * */5"
  ports:
  - name: x
    containerPort: 80
    protocol: TCP"#
        );
        let r = strict_apply(&c, &crd, &yaml).await;
        assert!(
            r.body
                .contains(r#"line 11: key \"foo\" already set in map"#),
            "error missing duplicate field: {}:\n{}",
            r.status,
            r.body
        );
        cleanup_noxu(&c, &crd).await;
    });
}

/// test/integration/apiserver/field_validation_test.go testFieldValidationApplyCreate:
/// upstream's apply body with `paused` and `imagePullPolicy` repeated. Strict refuses it
/// with go-yaml's lines and stores nothing; Ignore creates it, the last value winning.
#[test]
fn field_validation_apply_create_names_repeated_keys_of_a_typed_object_by_line() {
    run(|c| async move {
        let ns = namespace(&c, "cf-fv-apply-dup").await;
        // Upstream's applyInvalidBody, shared with strict.rs's unit test (lines 10 and 27).
        let body =
            include_str!("../../../skiff-apiserver/testdata/apply-repeated-keys-deployment.json");
        let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/apply-dup");
        let r = apply(
            &c,
            &format!("{path}?fieldManager=mgr&fieldValidation=Strict"),
            body,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(
            r.json()["message"],
            "error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  line 10: key \"paused\" already set in map\n  line 27: key \"imagePullPolicy\" already set in map"
        );
        let r = raw(&c, Method::GET, &path, &[], "").await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "nothing stored: {}",
            r.body
        );
        let r = apply(
            &c,
            &format!("{path}?fieldManager=mgr&fieldValidation=Ignore"),
            body,
        )
        .await;
        let created = ok(&r, "apply with fieldValidation=Ignore");
        assert_eq!(created["spec"]["paused"], true);
        assert_eq!(
            created["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    });
}
