//! Admission webhooks end to end through the REST layer: a real HTTPS webhook server in the
//! test process (certificate from rcgen, trusted through `caBundle`), configurations created
//! through the API and picked up by the server's watch.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use common::{call, raw, TOKEN};
use serde_json::{json, Value};
use skiff_apiserver::{router, Api, Server};
use skiff_store::MemoryStore;

/// Reviews the webhook server received, newest last.
type Seen = Arc<Mutex<Vec<Value>>>;

/// The webhook server: each path answers as its name says, echoing the request's uid.
async fn review(
    State(seen): State<Seen>,
    Path(behaviour): Path<String>,
    Json(review): Json<Value>,
) -> Json<Value> {
    seen.lock().unwrap().push(review.clone());
    let uid = review["request"]["uid"].clone();
    let mut response = json!({"uid": uid, "allowed": true});
    match behaviour.as_str() {
        "deny" => {
            response["allowed"] = json!(false);
            response["status"] = json!({"code": 403, "message": "no thanks"});
        }
        "deny-plain" => {
            response["allowed"] = json!(false);
            response["status"] = json!({"message": "missing label"});
        }
        "label" => {
            let has_labels = review["request"]["object"]["metadata"]["labels"].is_object();
            let patch = if has_labels {
                json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}])
            };
            response["patch"] =
                json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
            response["patchType"] = json!("JSONPatch");
        }
        "count" => {
            // Appends to an annotation each time it runs: shows reinvocation.
            let runs = review["request"]["object"]["metadata"]["annotations"]["runs"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let patch = if review["request"]["object"]["metadata"]["annotations"].is_object() {
                json!([{"op": "add", "path": "/metadata/annotations/runs", "value": format!("{runs}x")}])
            } else {
                json!([{"op": "add", "path": "/metadata/annotations", "value": {"runs": "x"}}])
            };
            response["patch"] =
                json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
            response["patchType"] = json!("JSONPatch");
        }
        "slow" => tokio::time::sleep(Duration::from_secs(5)).await,
        "warn" => response["warnings"] = json!(["careful now"]),
        "garbage" => return Json(json!({"not": "a review"})),
        _ => {}
    }
    Json(
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}),
    )
}

/// A running HTTPS webhook server.
struct WebhookServer {
    base: String,
    ca_bundle: String,
    seen: Seen,
    _dir: tempfile::TempDir,
}

async fn webhook_server() -> WebhookServer {
    let dir = tempfile::tempdir().unwrap();
    let creds =
        skiff_apiserver::serve::Credentials::load_or_create(dir.path(), &["127.0.0.1".into()])
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Default::default();
    let app = axum::Router::new()
        .route("/{behaviour}", axum::routing::post(review))
        .with_state(seen.clone());
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&creds.ca_pem);
    tokio::spawn(async move {
        let _ = skiff_apiserver::serve::serve(listener, &creds, app, std::future::pending()).await;
    });
    WebhookServer {
        base: format!("https://127.0.0.1:{port}"),
        ca_bundle,
        seen,
        _dir: dir,
    }
}

/// The API with its background tasks (the webhook configuration watch among them).
async fn app() -> axum::Router {
    app_and_store().await.0
}

/// [`app`], with its store for writing objects as an older server stored them.
async fn app_and_store() -> (axum::Router, Arc<MemoryStore>) {
    let store = MemoryStore::new();
    let (api, background) = Api::new(store.clone()).unwrap();
    api.bootstrap().await.unwrap();
    let api = Arc::new(api);
    tokio::spawn(api.clone().run_background(background));
    let app = router(Arc::new(Server {
        api,
        openapi: Default::default(),
        admin_tokens: vec![TOKEN.into()],
        address: "127.0.0.1:6443".into(),
    }));
    (app, store)
}

/// One webhook on ConfigMaps calling `url`.
fn hook(name: &str, url: &str, ca_bundle: &str, extra: Value) -> Value {
    let mut h = json!({
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"],
                   "operations": ["CREATE", "UPDATE", "DELETE"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        h[k] = v;
    }
    h
}

async fn configure(app: &axum::Router, stage: &str, name: &str, hooks: Vec<Value>) {
    let kind = match stage {
        "validating" => "ValidatingWebhookConfiguration",
        _ => "MutatingWebhookConfiguration",
    };
    let (code, body) = call(
        app,
        "POST",
        &format!("/apis/admissionregistration.k8s.io/v1/{stage}webhookconfigurations"),
        Some(
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                    "metadata": {"name": name}, "webhooks": hooks}),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "labels": {"app": "demo"}}, "data": {"k": "v"}})
}

/// Creates ConfigMaps until `done` holds for the answer (the configuration watch has
/// caught up), for at most 5 s; returns the last answer.
async fn create_until(
    app: &axum::Router,
    query: &str,
    done: impl Fn(StatusCode, &axum::http::HeaderMap, &Value) -> bool,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let i = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (code, headers, body) = raw(
            app,
            "POST",
            &format!("/api/v1/namespaces/default/configmaps{query}"),
            Some("application/json"),
            cm(&format!("probe-{i}")).to_string().into_bytes(),
        )
        .await;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if done(code, &headers, &body) || Instant::now() > deadline {
            return (code, headers, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn warnings(headers: &axum::http::HeaderMap) -> Vec<String> {
    headers
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn validating_webhook_denial_is_relayed_with_its_code_and_message() {
    let wh = webhook_server().await;
    let app = app().await;
    let url = format!("{}/deny", wh.base);
    configure(
        &app,
        "validating",
        "deny",
        vec![hook("deny.example.com", &url, &wh.ca_bundle, json!({}))],
    )
    .await;
    let (code, _, body) = create_until(&app, "", |c, _, _| c != StatusCode::CREATED).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        r#"admission webhook "deny.example.com" denied the request: no thanks"#
    );
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["code"], 403);
    // Nothing is stored by a denied create.
    let count = || async {
        let (_, list) = call(&app, "GET", "/api/v1/namespaces/default/configmaps", None).await;
        list["items"].as_array().unwrap().len()
    };
    let before = count().await;
    let (code, _) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(cm("denied")),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(count().await, before);
    // The review carried what upstream sends.
    let seen = wh.seen.lock().unwrap().last().cloned().unwrap();
    let r = &seen["request"];
    assert_eq!(seen["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(r["operation"], "CREATE");
    assert_eq!(
        r["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(r["namespace"], "default");
    assert_eq!(r["object"]["data"]["k"], "v");
    assert_eq!(r["oldObject"], Value::Null);
    assert_eq!(r["userInfo"]["username"], "kubernetes-admin");
    assert_eq!(r["options"]["kind"], "CreateOptions");
}

#[tokio::test]
async fn denial_without_code_answers_400() {
    let wh = webhook_server().await;
    let app = app().await;
    let url = format!("{}/deny-plain", wh.base);
    configure(
        &app,
        "validating",
        "plain",
        vec![hook("plain.example.com", &url, &wh.ca_bundle, json!({}))],
    )
    .await;
    let (code, _, body) = create_until(&app, "", |c, _, _| c != StatusCode::CREATED).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["message"],
        r#"admission webhook "plain.example.com" denied the request: missing label"#
    );
}

#[tokio::test]
async fn mutating_webhook_json_patch_adds_a_label() {
    let wh = webhook_server().await;
    let app = app().await;
    let url = format!("{}/label", wh.base);
    configure(
        &app,
        "mutating",
        "label",
        vec![hook("label.example.com", &url, &wh.ca_bundle, json!({}))],
    )
    .await;
    let (code, _, body) = create_until(&app, "", |_, _, b| {
        b["metadata"]["labels"]["mutated"] == "yes"
    })
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["metadata"]["labels"]["app"], "demo");
    let name = body["metadata"]["name"].as_str().unwrap();
    let (_, stored) = call(
        &app,
        "GET",
        &format!("/api/v1/namespaces/default/configmaps/{name}"),
        None,
    )
    .await;
    assert_eq!(stored["metadata"]["labels"]["mutated"], "yes");
}

#[tokio::test]
async fn reinvocation_if_needed_runs_an_earlier_webhook_again_after_a_later_change() {
    let wh = webhook_server().await;
    let app = app().await;
    let count = format!("{}/count", wh.base);
    let label = format!("{}/label", wh.base);
    // Configurations run in name order: "a-count" first, then "b-label" changes the object.
    configure(
        &app,
        "mutating",
        "a-count",
        vec![hook(
            "count.example.com",
            &count,
            &wh.ca_bundle,
            json!({"reinvocationPolicy": "IfNeeded"}),
        )],
    )
    .await;
    configure(
        &app,
        "mutating",
        "b-label",
        vec![hook("label.example.com", &label, &wh.ca_bundle, json!({}))],
    )
    .await;
    let (code, _, body) = create_until(&app, "", |_, _, b| {
        b["metadata"]["labels"]["mutated"] == "yes"
            && b["metadata"]["annotations"]["runs"].is_string()
    })
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["metadata"]["annotations"]["runs"], "xx", "{body}");
}

#[tokio::test]
async fn failure_policy_fail_denies_and_ignore_skips_an_unreachable_webhook() {
    let wh = webhook_server().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = format!("https://127.0.0.1:{closed}/validate");
    let app = app().await;
    // Ignore: the request goes through; a second webhook's warning shows the configuration
    // is active.
    let warn = format!("{}/warn", wh.base);
    configure(
        &app,
        "validating",
        "ignored",
        vec![
            hook(
                "down.example.com",
                &down,
                &wh.ca_bundle,
                json!({"failurePolicy": "Ignore"}),
            ),
            hook("warn.example.com", &warn, &wh.ca_bundle, json!({})),
        ],
    )
    .await;
    let (code, headers, body) = create_until(&app, "", |_, h, _| !warnings(h).is_empty()).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(warnings(&headers), vec![r#"299 - "careful now""#]);
    // Fail (the default): denied with upstream's message.
    configure(
        &app,
        "validating",
        "failing",
        vec![hook("down.example.com", &down, &wh.ca_bundle, json!({}))],
    )
    .await;
    let (code, _, body) = create_until(&app, "", |c, _, _| c != StatusCode::CREATED).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(
        body["message"],
        format!(
            "Internal error occurred: failed calling webhook \"down.example.com\": failed to call webhook: Post \"https://127.0.0.1:{closed}/validate?timeout=10s\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
        )
    );
}

#[tokio::test]
async fn slow_webhook_is_cut_at_its_timeout() {
    let wh = webhook_server().await;
    let app = app().await;
    let url = format!("{}/slow", wh.base);
    configure(
        &app,
        "validating",
        "slow",
        vec![hook(
            "slow.example.com",
            &url,
            &wh.ca_bundle,
            json!({"timeoutSeconds": 1}),
        )],
    )
    .await;
    let start = Instant::now();
    let (code, _, body) = create_until(&app, "", |c, _, _| c != StatusCode::CREATED).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(
        body["message"],
        format!(
            "Internal error occurred: failed calling webhook \"slow.example.com\": failed to call webhook: Post \"{url}?timeout=1s\": context deadline exceeded"
        )
    );
    // Well before the webhook's 5 s answer (and the default 10 s timeout).
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn webhook_warnings_become_warning_headers() {
    let wh = webhook_server().await;
    let app = app().await;
    let url = format!("{}/warn", wh.base);
    configure(
        &app,
        "mutating",
        "warn",
        vec![hook("warn.example.com", &url, &wh.ca_bundle, json!({}))],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (code, headers, _) = raw(
            &app,
            "POST",
            "/api/v1/namespaces/default/configmaps?dryRun=All",
            Some("application/json"),
            cm("w").to_string().into_bytes(),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        if !warnings(&headers).is_empty() || Instant::now() > deadline {
            assert_eq!(warnings(&headers), vec![r#"299 - "careful now""#]);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn dry_run_is_refused_by_a_webhook_with_side_effects() {
    let wh = webhook_server().await;
    let (app, store) = app_and_store().await;
    let url = format!("{}/allow", wh.base);
    // v1 refuses side effects other than None and NoneOnDryRun on create, as upstream; a
    // configuration stored through v1beta1 by an older server can still have them.
    let mut hook = hook(
        "effects.example.com",
        &url,
        &wh.ca_bundle,
        json!({"sideEffects": "Unknown"}),
    );
    hook["failurePolicy"] = json!("Fail");
    hook["matchPolicy"] = json!("Equivalent");
    hook["timeoutSeconds"] = json!(10);
    let config = json!({"apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "effects", "uid": "2f6c1a0e-6d0b-4d3c-9a57-6f1f3c2b9e10",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "webhooks": [hook]});
    skiff_store::Store::create(
        &*store,
        "/registry/validatingwebhookconfigurations/effects".into(),
        serde_json::to_vec(&config).unwrap().into(),
    )
    .await
    .unwrap();
    let (code, _, body) =
        create_until(&app, "?dryRun=All", |c, _, _| c != StatusCode::CREATED).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["message"],
        r#"admission webhook "effects.example.com" does not support dry run"#
    );
    // Without dryRun the webhook is called and allows.
    let (code, _) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(cm("real")),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
}

#[tokio::test]
async fn delete_webhooks_get_the_old_object_and_delete_options() {
    let wh = webhook_server().await;
    let app = app().await;
    let (code, _) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(cm("doomed")),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let url = format!("{}/deny", wh.base);
    let mut h = hook("nodelete.example.com", &url, &wh.ca_bundle, json!({}));
    h["rules"][0]["operations"] = json!(["DELETE"]);
    configure(&app, "validating", "nodelete", vec![h]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let (code, body) = loop {
        // Dry runs until the configuration is active, so the object stays.
        let (code, body) = call(
            &app,
            "DELETE",
            "/api/v1/namespaces/default/configmaps/doomed?gracePeriodSeconds=0&dryRun=All",
            None,
        )
        .await;
        if code != StatusCode::OK || Instant::now() > deadline {
            break (code, body);
        }
        // Lets the configuration watch run (the test runtime has one thread).
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let (code, body) = call(
        &app,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/doomed?gracePeriodSeconds=0",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        r#"admission webhook "nodelete.example.com" denied the request: no thanks"#
    );
    let seen = wh.seen.lock().unwrap().last().cloned().unwrap();
    let r = &seen["request"];
    assert_eq!(r["operation"], "DELETE");
    assert_eq!(r["name"], "doomed");
    assert_eq!(r["object"], Value::Null);
    assert_eq!(r["oldObject"]["metadata"]["name"], "doomed");
    assert_eq!(r["options"]["kind"], "DeleteOptions");
    assert_eq!(r["options"]["gracePeriodSeconds"], 0);
    let (code, _) = call(
        &app,
        "GET",
        "/api/v1/namespaces/default/configmaps/doomed",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn webhook_configurations_are_never_sent_to_webhooks() {
    let wh = webhook_server().await;
    let app = app().await;
    let url = format!("{}/deny", wh.base);
    let mut h = hook("everything.example.com", &url, &wh.ca_bundle, json!({}));
    h["rules"] = json!([{"apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "operations": ["*"]}]);
    configure(&app, "validating", "everything", vec![h]).await;
    let (code, _, _) = create_until(&app, "", |c, _, _| c != StatusCode::CREATED).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // The locked-out cluster can still be repaired.
    let (code, body) = call(
        &app,
        "DELETE",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/everything",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, _, _) = create_until(&app, "", |c, _, _| c == StatusCode::CREATED).await;
    assert_eq!(code, StatusCode::CREATED);
}

#[tokio::test]
async fn object_selector_limits_which_objects_are_sent() {
    let wh = webhook_server().await;
    let app = app().await;
    let url = format!("{}/deny", wh.base);
    let warn = format!("{}/warn", wh.base);
    configure(
        &app,
        "validating",
        "selective",
        vec![
            hook(
                "deny.example.com",
                &url,
                &wh.ca_bundle,
                json!({"objectSelector": {"matchLabels": {"app": "other"}}}),
            ),
            hook("warn.example.com", &warn, &wh.ca_bundle, json!({})),
        ],
    )
    .await;
    // Labelled app=demo: allowed, once the configuration is active (its warning shows).
    let (code, headers, body) = create_until(&app, "", |_, h, _| !warnings(h).is_empty()).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(warnings(&headers).len(), 1);
    let mut other = cm("other");
    other["metadata"]["labels"]["app"] = json!("other");
    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(other),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
}
