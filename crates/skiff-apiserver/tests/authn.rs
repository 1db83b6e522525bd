//! TokenRequest, TokenReview and SelfSubjectReview without a socket: upstream's status
//! codes and Status bodies for bad input, and bearer tokens that must be 401, never 500.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_apiserver::{router, Api, Server};
use skiff_store::MemoryStore;
use tower::ServiceExt;

/// The API with a ServiceAccount signing key (and the key's temp dir, kept alive).
async fn app_with_issuer() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (api, _background) = Api::new(MemoryStore::new()).unwrap();
    api.bootstrap().await.unwrap();
    api.authn
        .load_signing_key(&dir.path().join("sa.key"), "test CA")
        .unwrap();
    let server = Arc::new(Server {
        api: Arc::new(api),
        openapi: Default::default(),
        admin_tokens: vec![TOKEN.into()],
        address: "127.0.0.1:6443".into(),
    });
    (router(server), dir)
}

fn token_request(seconds: Option<i64>, bound: Option<Value>) -> Value {
    let mut spec = json!({});
    if let Some(s) = seconds {
        spec["expirationSeconds"] = json!(s);
    }
    if let Some(b) = bound {
        spec["boundObjectRef"] = b;
    }
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
}

const TOKEN_URL: &str = "/api/v1/namespaces/default/serviceaccounts/robot/token";

async fn with_robot() -> (axum::Router, tempfile::TempDir) {
    let (app, dir) = app_with_issuer().await;
    let (code, _) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts",
        Some(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    (app, dir)
}

/// A request with `Authorization: <authorization>`.
async fn with_authorization(
    app: &axum::Router,
    uri: &str,
    authorization: &str,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .uri(uri)
        .header("authorization", authorization)
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let code = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn token_requests_default_validate_and_sign() {
    let (app, _dir) = with_robot().await;
    let (code, body) = call(&app, "POST", TOKEN_URL, Some(token_request(None, None))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["kind"], "TokenRequest");
    assert_eq!(body["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        body["spec"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let token = body["status"]["token"].as_str().unwrap().to_owned();
    assert!(body["status"]["expirationTimestamp"].is_string());

    // The token authenticates requests (RBAC then refuses what the account may not do).
    let (code, body) =
        with_authorization(&app, "/api/v1/namespaces", &format!("Bearer {token}")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("User \"system:serviceaccount:default:robot\" cannot list"));
    let (code, review) = call(
        &app,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(review["status"]["authenticated"], true);
    assert_eq!(
        review["status"]["user"]["username"],
        "system:serviceaccount:default:robot"
    );

    let (code, body) = call(
        &app,
        "POST",
        TOKEN_URL,
        Some(token_request(Some(599), None)),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["message"],
        "TokenRequest.authentication.k8s.io \"robot\" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
    );
    let (code, body) = call(
        &app,
        "POST",
        TOKEN_URL,
        Some(token_request(Some((1 << 32) + 1), None)),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/missing/token",
        Some(token_request(None, None)),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "serviceaccounts \"missing\" not found");
    let (code, body) = call(
        &app,
        "POST",
        TOKEN_URL,
        Some(token_request(
            None,
            Some(json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})),
        )),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "cannot bind token to object of type apps/v1, Kind=Deployment"
    );
    let (code, _) = call(
        &app,
        "POST",
        TOKEN_URL,
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": "soon"}})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_bound_secret_must_keep_its_uid() {
    let (app, _dir) = with_robot().await;
    let (code, _) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/secrets",
        Some(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, body) = call(
        &app,
        "POST",
        TOKEN_URL,
        Some(token_request(
            None,
            Some(json!({"apiVersion": "v1", "kind": "Secret", "name": "s", "uid": "not-it"})),
        )),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().contains(
        "the UID in the bound object reference (not-it) does not match the UID in record"
    ));
}

#[tokio::test]
async fn bad_bearer_tokens_are_401_never_500() {
    let (app, _dir) = with_robot().await;
    for authorization in [
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL2t1YmVybmV0ZXMuZGVmYXVsdC5zdmMuY2x1c3Rlci5sb2NhbCJ9.c2ln",
        "Basic YTpi",
        "Bearer",
    ] {
        let (code, body) = with_authorization(&app, "/api/v1/namespaces", authorization).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{authorization}");
        assert_eq!(body["reason"], "Unauthorized");
        assert_eq!(body["code"], 401);
    }
}

#[tokio::test]
async fn reviews_refuse_bad_bodies_and_other_verbs() {
    let (app, _dir) = app_with_issuer().await;
    let (code, body) = call(
        &app,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {}})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (code, _) = call(
        &app,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap"})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = call(
        &app,
        "GET",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let (code, body) = call(
        &app,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(body["status"]["userInfo"]["username"], "kubernetes-admin");
    // A garbage token reviewed is simply not authenticated.
    let (code, body) = call(
        &app,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "garbage"}})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_ne!(body["status"]["authenticated"], true);
}
