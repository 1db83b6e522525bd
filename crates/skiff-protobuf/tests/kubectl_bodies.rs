//! Decodes protobuf bodies captured from real kubectl and compares them with the JSON
//! kubectl prints for the same command (fixtures/capture.sh records both).

use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Asserts that decoding NAME.pb gives exactly NAME.json.
fn assert_decodes_like_kubectl_json(name: &str) {
    let decoded = skiff_protobuf::decode(&fixture(&format!("{name}.pb"))).expect("decode");
    let want: Value =
        serde_json::from_slice(&fixture(&format!("{name}.json"))).expect("fixture json");
    assert_eq!(
        decoded,
        want,
        "{name}: decoded {}",
        serde_json::to_string_pretty(&decoded).unwrap_or_default()
    );
}

#[test]
fn configmap_from_kubectl_create_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("configmap");
}

#[test]
fn secret_binary_data_decodes_to_standard_base64() {
    assert_decodes_like_kubectl_json("secret");
}

#[test]
fn deployment_from_kubectl_create_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("deployment");
}

#[test]
fn service_target_port_decodes_to_a_number() {
    assert_decodes_like_kubectl_json("service");
}

#[test]
fn job_from_kubectl_create_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("job");
}

#[test]
fn cronjob_from_kubectl_create_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("cronjob");
}

#[test]
fn namespace_from_kubectl_create_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("namespace");
}

#[test]
fn serviceaccount_from_kubectl_create_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("serviceaccount");
}

#[test]
fn role_from_kubectl_create_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("role");
}

#[test]
fn rolebinding_from_kubectl_create_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("rolebinding");
}

#[test]
fn pdb_percentage_decodes_to_a_string() {
    assert_decodes_like_kubectl_json("pdb");
}

#[test]
fn quota_quantities_decode_to_strings() {
    assert_decodes_like_kubectl_json("quota");
}

#[test]
fn ingress_from_kubectl_create_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("ingress");
}

#[test]
fn priorityclass_from_kubectl_create_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("priorityclass");
}

#[test]
fn clusterrole_from_kubectl_create_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("clusterrole");
}

#[test]
fn clusterrolebinding_from_kubectl_create_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("clusterrolebinding");
}

#[test]
fn docker_registry_secret_decodes_to_its_json() {
    assert_decodes_like_kubectl_json("dockersecret");
}

#[test]
fn pdb_integer_max_unavailable_decodes_to_a_number() {
    assert_decodes_like_kubectl_json("pdbint");
}

#[test]
fn hpa_v2_keeps_null_for_unset_slice_without_omitempty() {
    assert_decodes_like_kubectl_json("hpa");
}

#[test]
fn token_request_keeps_its_pointer_expiration() {
    let decoded = skiff_protobuf::decode(&fixture("token.pb")).expect("decode");
    let want = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {"creationTimestamp": null},
        // kubectl passes --audience=a,b through as one audience.
        // boundObjectRef is a pointer without omitempty: Go's JSON has null for it.
        "spec": {"audiences": ["a,b"], "expirationSeconds": 3600, "boundObjectRef": null},
        // Go's TokenRequestStatus.token has no omitempty, so its empty value stays.
        "status": {"token": "", "expirationTimestamp": null}
    });
    assert_eq!(decoded, want);
}

#[test]
fn self_subject_access_review_from_auth_can_i_decodes() {
    let decoded = skiff_protobuf::decode(&fixture("selfsubjectaccessreview.pb")).expect("decode");
    let want = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {"creationTimestamp": null},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}},
        "status": {"allowed": false}
    });
    assert_eq!(decoded, want);
}

#[test]
fn self_subject_review_from_auth_whoami_decodes() {
    let decoded = skiff_protobuf::decode(&fixture("selfsubjectreview.pb")).expect("decode");
    let want = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "SelfSubjectReview",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {}}
    });
    assert_eq!(decoded, want);
}
