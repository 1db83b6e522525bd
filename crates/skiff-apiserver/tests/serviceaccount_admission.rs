//! The ServiceAccount admission plugin through the REST layer, as the server enables it.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::call;
use serde_json::{json, Value};
use skiff_apiserver::{router, Api, Server};
use skiff_store::MemoryStore;

async fn app() -> axum::Router {
    let (api, _background) = Api::new(MemoryStore::new()).unwrap();
    api.service_accounts.set_enabled(true);
    api.bootstrap().await.unwrap();
    router(Arc::new(Server {
        api: Arc::new(api),
        openapi: Default::default(),
        admin_tokens: vec![common::TOKEN.into()],
        address: "127.0.0.1:6443".into(),
    }))
}

fn pod(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

async fn account(app: &axum::Router, body: Value) {
    let (status, out) = call(
        app,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
}

fn token_volume(pod: &Value) -> Option<&Value> {
    pod["spec"]["volumes"].as_array()?.iter().find(|v| {
        v["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("kube-api-access-"))
    })
}

#[tokio::test]
async fn a_pod_needs_its_account_and_gets_its_token_volume() {
    let app = app().await;
    let pods = "/api/v1/namespaces/default/pods";

    // No account yet: upstream's 403, after waiting a moment for `default`; nothing stored.
    let (status, out) = call(&app, "POST", pods, Some(pod("early", json!({})))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{out}");
    assert_eq!(
        out["message"],
        "pods \"early\" is forbidden: error looking up service account default/default: serviceaccount \"default\" not found"
    );
    assert_eq!(out["reason"], "Forbidden");
    let (status, _) = call(&app, "GET", &format!("{pods}/early"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    account(
        &app,
        json!({"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "regcred"}]}),
    )
    .await;
    let (status, out) = call(&app, "POST", pods, Some(pod("p", json!({})))).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    assert_eq!(out["spec"]["serviceAccountName"], "default");
    assert_eq!(out["spec"]["serviceAccount"], "default");
    assert_eq!(
        out["spec"]["imagePullSecrets"],
        json!([{"name": "regcred"}])
    );
    let volume = token_volume(&out).unwrap_or_else(|| panic!("no token volume: {out:#}"));
    let name = volume["name"].as_str().unwrap();
    let suffix = name.strip_prefix("kube-api-access-").unwrap();
    assert_eq!(suffix.len(), 5, "{name}");
    assert!(
        suffix
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{name}"
    );
    assert_eq!(volume["projected"]["defaultMode"], 420);
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": name, "readOnly": true,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}])
    );

    // The deprecated field names the account when the new one is empty.
    account(
        &app,
        json!({"metadata": {"name": "builder"}, "automountServiceAccountToken": false}),
    )
    .await;
    let (status, out) = call(
        &app,
        "POST",
        pods,
        Some(pod("old", json!({"serviceAccount": "builder"}))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    assert_eq!(out["spec"]["serviceAccountName"], "builder");
    // The account says no token...
    assert!(token_volume(&out).is_none(), "{out:#}");
    // ...unless the pod says yes.
    let (status, out) = call(
        &app,
        "POST",
        pods,
        Some(pod(
            "yes",
            json!({"serviceAccountName": "builder", "automountServiceAccountToken": true}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    assert!(token_volume(&out).is_some(), "{out:#}");
    // A pod that says no gets none from an account that does not care.
    let (status, out) = call(
        &app,
        "POST",
        pods,
        Some(pod("no", json!({"automountServiceAccountToken": false}))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    assert!(token_volume(&out).is_none(), "{out:#}");

    // Any other missing account is refused at once.
    let (status, out) = call(
        &app,
        "POST",
        pods,
        Some(pod("ghost", json!({"serviceAccountName": "ghost"}))),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{out}");
    assert_eq!(
        out["message"],
        "pods \"ghost\" is forbidden: error looking up service account default/ghost: serviceaccount \"ghost\" not found"
    );
}
