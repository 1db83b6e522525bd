//! certificates.k8s.io/v1 CertificateSigningRequests through the router: the requestor is
//! the authenticated user, `approval` sets only Approved/Denied, `status` the certificate.

mod common;

use axum::http::StatusCode;
use base64::Engine;
use common::*;
use serde_json::{json, Value};

const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

fn request_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bob");
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn csr(name: &str) -> Value {
    json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(request_pem()),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "expirationSeconds": 86400,
            "usages": ["client auth"],
            "username": "mallory", "groups": ["evil"],
        },
        "status": {"conditions": [{"type": "Approved", "status": "True"}]},
    })
}

fn condition_types(obj: &Value) -> Vec<String> {
    obj["status"]["conditions"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| c["type"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn discovery_serves_csr_with_approval_and_status() {
    let (app, _) = app().await;
    let (code, list) = call(&app, "GET", "/apis/certificates.k8s.io/v1", None).await;
    assert_eq!(code, StatusCode::OK);
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "certificatesigningrequests",
            "certificatesigningrequests/approval",
            "certificatesigningrequests/status"
        ]
    );
    let csr = &list["resources"][0];
    assert_eq!(csr["namespaced"], false);
    assert_eq!(csr["shortNames"], json!(["csr"]));
}

#[tokio::test]
async fn create_stamps_the_requestor_and_approval_and_status_write_their_own_parts() {
    let (app, _) = app().await;
    let (code, created) = call(&app, "POST", CSRS, Some(csr("bob"))).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let username = created["spec"]["username"].as_str().unwrap();
    assert_ne!(username, "mallory");
    assert!(!username.is_empty());
    assert!(!created["spec"]["groups"]
        .as_array()
        .unwrap()
        .contains(&json!("evil")));
    assert!(created.get("status").is_none(), "{created}");

    // The main resource cannot approve.
    let mut approve = created.clone();
    approve["status"] = json!({"conditions": [{"type": "Approved", "status": "True",
        "reason": "KubectlApprove", "message": "ok"}]});
    let (code, updated) = call(&app, "PUT", &format!("{CSRS}/bob"), Some(approve.clone())).await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert!(condition_types(&updated).is_empty());

    // Nor the status subresource.
    let (code, updated) = call(
        &app,
        "PUT",
        &format!("{CSRS}/bob/status"),
        Some(approve.clone()),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert!(condition_types(&updated).is_empty());

    // The approval subresource can, and only that (spec and certificate stay).
    approve["spec"]["usages"] = json!(["server auth"]);
    approve["status"]["certificate"] = json!("Y2VydA==");
    let (code, approved) = call(&app, "PUT", &format!("{CSRS}/bob/approval"), Some(approve)).await;
    assert_eq!(code, StatusCode::OK, "{approved}");
    assert_eq!(condition_types(&approved), ["Approved"]);
    assert_eq!(approved["spec"]["usages"], json!(["client auth"]));
    assert!(approved["status"].get("certificate").is_none());
    assert!(approved["status"]["conditions"][0]["lastUpdateTime"].is_string());
    let (code, got) = call(&app, "GET", &format!("{CSRS}/bob/approval"), None).await;
    assert_eq!(
        (code, condition_types(&got)),
        (StatusCode::OK, vec!["Approved".to_owned()])
    );

    // Denying what is approved is a 422: the two are exclusive.
    let mut deny = approved.clone();
    deny["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Denied", "status": "True"}));
    let (code, status) = call(&app, "PUT", &format!("{CSRS}/bob/approval"), Some(deny)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"
    );

    // Status sets the certificate, which must be one.
    let mut issued = approved.clone();
    issued["status"]["certificate"] = json!("Y2VydA==");
    let (code, status) = call(&app, "PUT", &format!("{CSRS}/bob/status"), Some(issued)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "status.certificate"
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["bob".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut issued = approved.clone();
    issued["status"]["certificate"] =
        json!(base64::engine::general_purpose::STANDARD.encode(cert.pem()));
    let (code, done) = call(&app, "PUT", &format!("{CSRS}/bob/status"), Some(issued)).await;
    assert_eq!(code, StatusCode::OK, "{done}");
    assert_eq!(condition_types(&done), ["Approved"]);
    assert!(done["status"]["certificate"].is_string());
}

#[tokio::test]
async fn invalid_requests_are_422_with_upstreams_messages() {
    let (app, _) = app().await;
    let mut bad = csr("bad");
    bad["spec"]["request"] = json!(base64::engine::general_purpose::STANDARD.encode("x"));
    bad["spec"]["expirationSeconds"] = json!(60);
    bad["spec"]["signerName"] = json!("example.com");
    let (code, status) = call(&app, "POST", CSRS, Some(bad)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(
        status["message"],
        "CertificateSigningRequest.certificates.k8s.io \"bad\" is invalid: [spec.request: Invalid value: []byte{0x78}: PEM block type must be CERTIFICATE REQUEST, spec.signerName: Invalid value: \"example.com\": must be a fully qualified domain and path of the form 'example.com/signer-name', spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)]"
    );
    let (code, _) = call(&app, "GET", &format!("{CSRS}/bad"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
