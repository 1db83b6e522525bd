//! The built-in admission plugins through the REST layer: NamespaceLifecycle,
//! LimitRanger, PodSecurity and ResourceQuota, with upstream's codes and messages.

mod common;

use axum::http::StatusCode;
use common::{app, call, raw};
use serde_json::{json, Value};

const PODS: &str = "/api/v1/namespaces/default/pods";

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "app", "image": "busybox"}]}})
}

/// A quota whose status the quota controller would have written: hard from spec, used as given.
async fn quota(app: &axum::Router, name: &str, hard: Value, used: Value) {
    let uri = "/api/v1/namespaces/default/resourcequotas";
    let (code, body) = call(
        app,
        "POST",
        uri,
        Some(json!({"apiVersion": "v1", "kind": "ResourceQuota",
                    "metadata": {"name": name}, "spec": {"hard": hard}})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let mut q = body;
    q["status"] = json!({"hard": hard, "used": used});
    let (code, body) = call(app, "PUT", &format!("{uri}/{name}/status"), Some(q)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

async fn used(app: &axum::Router, name: &str) -> Value {
    let (_, q) = call(
        app,
        "GET",
        &format!("/api/v1/namespaces/default/resourcequotas/{name}"),
        None,
    )
    .await;
    q["status"]["used"].clone()
}

#[tokio::test]
async fn quota_charges_creates_and_refuses_past_the_limit_storing_nothing() {
    let (app, _) = app().await;
    quota(&app, "pods", json!({"pods": "2"}), json!({"pods": "1"})).await;
    let (code, body) = call(&app, "POST", PODS, Some(pod("a"))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(used(&app, "pods").await, json!({"pods": "2"}));

    let (code, body) = call(&app, "POST", PODS, Some(pod("b"))).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "pods \"b\" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2"
    );
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(body["details"], json!({"name": "b", "kind": "pods"}));
    let (code, _) = call(&app, "GET", &format!("{PODS}/b"), None).await;
    assert_eq!(
        code,
        StatusCode::NOT_FOUND,
        "a refused create stores nothing"
    );
    assert_eq!(used(&app, "pods").await, json!({"pods": "2"}));
}

#[tokio::test]
async fn a_dry_run_is_checked_but_never_charged() {
    let (app, _) = app().await;
    quota(&app, "pods", json!({"pods": "1"}), json!({"pods": "0"})).await;
    let (code, body) = call(&app, "POST", &format!("{PODS}?dryRun=All"), Some(pod("a"))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(used(&app, "pods").await, json!({"pods": "0"}));
    quota(
        &app,
        "none",
        json!({"count/pods": "0"}),
        json!({"count/pods": "0"}),
    )
    .await;
    let (code, body) = call(&app, "POST", &format!("{PODS}?dryRun=All"), Some(pod("a"))).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn racing_creates_cannot_both_take_the_last_unit() {
    let (app, _) = app().await;
    quota(
        &app,
        "cms",
        json!({"configmaps": "3"}),
        json!({"configmaps": "0"}),
    )
    .await;
    let creates = (0..12).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            call(
                &app,
                "POST",
                "/api/v1/namespaces/default/configmaps",
                Some(common::cm(&format!("cm-{i}"))),
            )
            .await
            .0
        })
    });
    let codes = futures::future::join_all(creates).await;
    let created = codes
        .iter()
        .filter(|c| *c.as_ref().unwrap() == StatusCode::CREATED)
        .count();
    assert_eq!(created, 3, "{codes:?}");
    assert_eq!(used(&app, "cms").await, json!({"configmaps": "3"}));
}

#[tokio::test]
async fn a_quota_on_compute_needs_every_container_to_state_it() {
    let (app, _) = app().await;
    quota(
        &app,
        "compute",
        json!({"limits.cpu": "2"}),
        json!({"limits.cpu": "0"}),
    )
    .await;
    let (code, body) = call(&app, "POST", PODS, Some(pod("a"))).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "pods \"a\" is forbidden: failed quota: compute: must specify limits.cpu for: app"
    );
}

#[tokio::test]
async fn limit_range_defaults_fill_pods_and_its_max_refuses() {
    let (app, _) = app().await;
    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/limitranges",
        Some(
            json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"},
                "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "250m"}}]}}),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, body) = call(&app, "POST", PODS, Some(pod("a"))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "500m"}})
    );
    assert_eq!(
        body["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu request for container app; cpu limit for container app"
    );
    let mut big = pod("b");
    big["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "2"}});
    let (code, body) = call(&app, "POST", PODS, Some(big)).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "pods \"b\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
    );
}

#[tokio::test]
async fn pod_security_enforces_and_warns_per_namespace_labels() {
    let (app, _) = app().await;
    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces",
        Some(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "locked",
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let mut privileged = pod("p");
    privileged["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces/locked/pods",
        Some(privileged.clone()),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "pods \"p\" is forbidden: violates PodSecurity \"restricted:latest\": privileged (container \"app\" must not set securityContext.privileged=true), allowPrivilegeEscalation != false"
        ),
        "{message}"
    );

    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces",
        Some(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "watched",
            "labels": {"pod-security.kubernetes.io/warn": "baseline"}}}),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, headers, body) = raw(
        &app,
        "POST",
        "/api/v1/namespaces/watched/pods",
        Some("application/json"),
        privileged.to_string().into_bytes(),
    )
    .await;
    assert_eq!(
        code,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let warnings: Vec<&str> = headers
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains(
            "would violate PodSecurity \\\"baseline:latest\\\": privileged (container \\\"app\\\" must not set securityContext.privileged=true)"
        ) || w.contains(
            "would violate PodSecurity \"baseline:latest\": privileged (container \"app\" must not set securityContext.privileged=true)"
        )),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn creating_in_a_missing_namespace_is_upstreams_404() {
    let (app, _) = app().await;
    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces/nowhere/configmaps",
        Some(common::cm("a")),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["message"], "namespaces \"nowhere\" not found");
    assert_eq!(
        body["details"],
        json!({"name": "nowhere", "kind": "namespaces"})
    );
}

#[tokio::test]
async fn creating_in_a_terminating_namespace_is_forbidden() {
    let (app, _) = app().await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "going"}});
    let (code, _) = call(&app, "POST", "/api/v1/namespaces", Some(ns)).await;
    assert_eq!(code, StatusCode::CREATED);
    // The termination task is not running here, so the namespace stays Terminating.
    let (code, _) = call(&app, "DELETE", "/api/v1/namespaces/going", None).await;
    assert!(code.is_success());
    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces/going/configmaps",
        Some(common::cm("a")),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "configmaps \"a\" is forbidden: unable to create new content in namespace going because it is being terminated"
    );
    assert_eq!(
        body["details"]["causes"][0]["reason"],
        "NamespaceTerminating"
    );
}

#[tokio::test]
async fn namespace_policy_labels_are_validated_and_a_stricter_level_warns_about_existing_pods() {
    let (app, _) = app().await;
    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces",
        Some(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bad",
            "labels": {"pod-security.kubernetes.io/enforce": "strict"}}}),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["message"],
        "Namespace \"bad\" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted"
    );

    let mut privileged = pod("p");
    privileged["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let (code, _) = call(&app, "POST", PODS, Some(privileged)).await;
    assert_eq!(code, StatusCode::CREATED);
    let patch = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}});
    let (code, headers, body) = raw(
        &app,
        "PATCH",
        "/api/v1/namespaces/default",
        Some("application/merge-patch+json"),
        patch.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let warnings: Vec<String> = headers
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("existing pods in namespace")
            && warnings[0].contains("baseline:latest"),
        "{warnings:?}"
    );
    assert!(warnings[1].contains("p: privileged"), "{warnings:?}");
}

#[tokio::test]
async fn workloads_are_warned_about_never_refused() {
    let (app, _) = app().await;
    let (code, _) = call(
        &app,
        "POST",
        "/api/v1/namespaces",
        Some(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "locked",
            "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"hostNetwork": true, "containers": [{"name": "app", "image": "nginx"}]}}}});
    let (code, headers, body) = raw(
        &app,
        "POST",
        "/apis/apps/v1/namespaces/locked/deployments",
        Some("application/json"),
        deployment.to_string().into_bytes(),
    )
    .await;
    assert_eq!(
        code,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let warnings: Vec<&str> = headers
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("baseline:latest")
                && w.contains("host namespaces (hostNetwork=true)")),
        "warn follows the enforce level for workloads: {warnings:?}"
    );
}
