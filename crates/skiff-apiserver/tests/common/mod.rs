//! The REST layer without a socket: requests go straight into the router over a memory store.
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_apiserver::{router, Api, Server};
use skiff_store::MemoryStore;
use tower::ServiceExt;

pub const TOKEN: &str = "test-token";

pub async fn app() -> (axum::Router, Arc<MemoryStore>) {
    let store = MemoryStore::new();
    let (api, _background) = Api::new(store.clone()).unwrap();
    api.bootstrap().await.unwrap();
    (router_for(Arc::new(api)), store)
}

/// [`app`] with the API's background work running (watches that keep its indexes current,
/// such as RBAC's), as a server runs it.
pub async fn app_with_background() -> axum::Router {
    let (api, background) = Api::new(MemoryStore::new()).unwrap();
    api.bootstrap().await.unwrap();
    let api = Arc::new(api);
    tokio::spawn(api.clone().run_background(background));
    router_for(api)
}

fn router_for(api: Arc<Api>) -> axum::Router {
    let server = Arc::new(Server {
        api,
        openapi: Default::default(),
        admin_tokens: vec![TOKEN.into()],
        address: "127.0.0.1:6443".into(),
    });
    router(server)
}

pub async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_with(app, method, uri, body, "application/json").await
}

pub async fn call_with(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    accept: &str,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// Reads a (finite) watch stream into its events.
pub async fn watch_events(app: &axum::Router, uri: &str) -> Vec<Value> {
    let (_, body) = call(app, "GET", uri, None).await;
    match body {
        Value::String(s) => s
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        one => vec![one],
    }
}

/// POSTs a ConfigMap named `name` into `default`.
pub async fn create_cm(app: &axum::Router, name: &str) -> (StatusCode, Value) {
    call(
        app,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(cm(name)),
    )
    .await
}

pub fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

/// One request with any body, content type and headers, answered with the raw bytes.
pub async fn raw(
    app: &axum::Router,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}
