//! Review building, upstream's `VerifyAdmissionResponse` cases, patches and denials.

use base64::Engine;
use serde_json::json;

use super::*;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn gvk() -> Gvk {
    Gvk {
        group: "".into(),
        version: "v1".into(),
        kind: "ConfigMap".into(),
    }
}

fn gvr() -> Gvr {
    Gvr {
        group: "".into(),
        version: "v1".into(),
        resource: "configmaps".into(),
    }
}

#[test]
fn review_request_carries_upstream_fields() {
    let obj = json!({"metadata": {"name": "a"}});
    let req = ReviewRequest {
        uid: "u1",
        kind: gvk(),
        resource: gvr(),
        request_kind: gvk(),
        request_resource: gvr(),
        subresource: "",
        name: "a",
        namespace: "default",
        operation: "CREATE",
        object: Some(&obj),
        old_object: None,
        dry_run: true,
        options: options("CreateOptions", true, Some("kubectl")),
        user: &UserInfo {
            username: "intern".into(),
            uid: "u-1".into(),
            groups: vec!["interns".into(), "system:authenticated".into()],
            extra: [("scopes".to_owned(), vec!["a".to_owned()])].into(),
        },
    };
    let review = req.review("v1");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    let r = &review["request"];
    assert_eq!(r["uid"], "u1");
    assert_eq!(
        r["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(
        r["resource"],
        json!({"group": "", "version": "v1", "resource": "configmaps"})
    );
    assert_eq!(r["requestKind"], r["kind"]);
    assert_eq!(r["requestResource"], r["resource"]);
    assert!(r.get("subResource").is_none());
    assert_eq!(r["name"], "a");
    assert_eq!(r["namespace"], "default");
    assert_eq!(r["operation"], "CREATE");
    assert_eq!(
        r["userInfo"],
        json!({"username": "intern", "uid": "u-1", "groups": ["interns", "system:authenticated"],
               "extra": {"scopes": ["a"]}})
    );
    assert_eq!(r["object"], obj);
    assert_eq!(r["oldObject"], Value::Null);
    assert_eq!(r["dryRun"], true);
    assert_eq!(
        r["options"],
        json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"], "fieldManager": "kubectl"})
    );
}

fn response(resp: Value) -> Vec<u8> {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})
        .to_string()
        .into_bytes()
}

/// `admissionreview_test.go`'s `TestVerifyAdmissionResponse`, v1 cases.
#[test]
fn responses_are_verified_as_upstream() {
    let patch = b64(r#"[{"op":"add","path":"/foo","value":"bar"}]"#);
    /// Name, mutating, response body, and the error's start (or success).
    type Case = (&'static str, bool, Vec<u8>, Result<(), &'static str>);
    let cases: Vec<Case> = vec![
        (
            "v1 allowed",
            false,
            response(json!({"uid": "123", "allowed": true})),
            Ok(()),
        ),
        (
            "v1 no response",
            false,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            Err("webhook response was absent"),
        ),
        (
            "v1 wrong kind",
            false,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview2","response":{"uid":"123","allowed":true}}"#.to_vec(),
            Err("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview"),
        ),
        (
            "v1 wrong uid",
            false,
            response(json!({"uid": "1234", "allowed": true})),
            Err(r#"expected response.uid="123""#),
        ),
        (
            "v1 patch without patch type",
            true,
            response(json!({"uid": "123", "allowed": true, "patch": patch})),
            Err("webhook returned response.patch but not response.patchType"),
        ),
        (
            "v1 patch type without patch",
            true,
            response(json!({"uid": "123", "allowed": true, "patchType": "JSONPatch"})),
            Err("webhook returned response.patchType but not response.patch"),
        ),
        (
            "v1 empty patch type",
            true,
            response(json!({"uid": "123", "allowed": true, "patch": patch, "patchType": ""})),
            Err(r#"webhook returned invalid response.patchType of """#),
        ),
        (
            "v1 validating patch",
            false,
            response(json!({"uid": "123", "allowed": true, "patch": patch, "patchType": "JSONPatch"})),
            Err("validating webhook may not return response.patch"),
        ),
        (
            "v1 validating patch type",
            false,
            response(json!({"uid": "123", "allowed": true, "patchType": "JSONPatch"})),
            Err("validating webhook may not return response.patchType"),
        ),
        (
            "not JSON",
            false,
            b"<html>".to_vec(),
            Err("couldn't get version/kind; json parse error"),
        ),
        (
            "v1 mutating with patch",
            true,
            response(json!({"uid": "123", "allowed": true, "patch": patch, "patchType": "JSONPatch"})),
            Ok(()),
        ),
    ];
    for (name, mutating, body, want) in cases {
        let got = verify("123", "v1", mutating, &body);
        match (want, got) {
            (Ok(()), Ok(_)) => {}
            (Err(prefix), Err(e)) => assert!(e.starts_with(prefix), "{name}: {e}"),
            (want, got) => panic!("{name}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn verified_response_decodes_patch_and_keeps_warnings() {
    let body = response(json!({
        "uid": "123", "allowed": true,
        "patch": b64(r#"[{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]"#),
        "patchType": "JSONPatch",
        "warnings": ["w1", "w2"],
    }));
    let v = verify("123", "v1", true, &body).unwrap();
    assert!(v.allowed);
    assert_eq!(v.patch_type.as_deref(), Some("JSONPatch"));
    assert_eq!(v.warnings, vec!["w1", "w2"]);
    let mut obj = json!({"metadata": {"name": "x"}});
    assert!(apply_patch(&mut obj, v.patch.as_ref().unwrap()).unwrap());
    assert_eq!(obj["metadata"]["labels"]["a"], "b");
}

#[test]
fn v1beta1_responses_need_no_uid_and_pin_the_patch_type() {
    let body = br#"{"response":{"allowed":true,"patch":"W10="}}"#;
    let v = verify("123", "v1beta1", true, body).unwrap();
    assert_eq!(v.patch_type.as_deref(), Some("JSONPatch"));
    assert_eq!(v.patch, Some(json!([])));
}

#[test]
fn patches_that_do_not_apply_or_decode_are_errors() {
    let mut obj = json!({"metadata": {}});
    let missing = json!([{"op": "replace", "path": "/spec/x", "value": 1}]);
    assert!(matches!(
        apply_patch(&mut obj, &missing),
        Err(PatchError::Apply(_))
    ));
    let not_a_patch = json!({"op": "add"});
    assert!(matches!(
        apply_patch(&mut obj, &not_a_patch),
        Err(PatchError::Undecodable(_))
    ));
    assert!(!apply_patch(&mut obj, &json!([])).unwrap());
    assert_eq!(obj, json!({"metadata": {}}));
}

/// `statuserror_test.go`'s cases.
#[test]
fn denials_keep_the_webhook_status_with_upstream_message() {
    let status = |v: Value| match denial("webhook", Some(&v)) {
        crate::error::ApiError::Relayed {
            code,
            reason,
            message,
            ..
        } => (code, reason, message),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        status(json!({"code": 403, "message": "no"})),
        (
            403,
            "".into(),
            r#"admission webhook "webhook" denied the request: no"#.into()
        )
    );
    assert_eq!(
        status(json!({"reason": "Invalid"})),
        (
            400,
            "Invalid".into(),
            r#"admission webhook "webhook" denied the request: Invalid"#.into()
        )
    );
    assert_eq!(
        status(json!({"code": 200})),
        (
            400,
            "".into(),
            r#"admission webhook "webhook" denied the request without explanation"#.into()
        )
    );
    assert_eq!(
        status(json!({"code": 422, "message": "bad", "reason": "Invalid"})).0,
        422
    );
    match denial("webhook", None) {
        crate::error::ApiError::Relayed { code, message, .. } => {
            assert_eq!(code, 400);
            assert!(message.ends_with("without explanation"));
        }
        other => panic!("{other:?}"),
    }
}
