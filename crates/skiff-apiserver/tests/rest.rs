//! The REST layer without a socket: requests go straight into the router over a memory store.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_store::Store;
use tower::ServiceExt;

/// Without credentials a request is `system:anonymous` (kube-apiserver's default
/// `--anonymous-auth`), which RBAC lets read health and version only: anything else is 403
/// with upstream's message. A bad token is 401, never anonymous.
#[tokio::test]
async fn requests_without_the_token_are_anonymous_and_forbidden() {
    let (app, _) = app().await;
    let req = Request::builder()
        .uri("/api/v1/namespaces")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        body["message"],
        "namespaces is forbidden: User \"system:anonymous\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
    );
    let req = Request::builder()
        .uri("/api/v1/namespaces")
        .header("authorization", "Bearer not-a-token")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let req = Request::builder()
        .uri("/version")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.oneshot(req).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn discovery_lists_scale_subresources_in_autoscaling_v1() {
    let (app, _) = app().await;
    let (code, list) = call(&app, "GET", "/apis/apps/v1", None).await;
    assert_eq!(code, StatusCode::OK);
    let scale = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .unwrap();
    assert_eq!(
        (
            scale["group"].as_str(),
            scale["version"].as_str(),
            scale["kind"].as_str()
        ),
        (Some("autoscaling"), Some("v1"), Some("Scale"))
    );
    let (_, groups) = call(&app, "GET", "/apis", None).await;
    assert!(groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "apps"));
}

#[tokio::test]
async fn create_conflicts_and_not_found_answer_upstream_status_bodies() {
    let (app, _) = app().await;
    let (code, created) = create_cm(&app, "a").await;
    assert_eq!(code, StatusCode::CREATED);
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["resourceVersion"].is_string());
    let (code, status) = create_cm(&app, "a").await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(status["reason"], "AlreadyExists");
    assert_eq!(status["message"], "configmaps \"a\" already exists");
    assert_eq!(
        status["details"],
        json!({"name": "a", "kind": "configmaps"})
    );
    let (code, status) = call(
        &app,
        "GET",
        "/api/v1/namespaces/default/configmaps/zz",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(status["message"], "configmaps \"zz\" not found");
    let (code, status) = call(
        &app,
        "POST",
        "/api/v1/namespaces/nope/configmaps",
        Some(cm("b")),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(status["message"], "namespaces \"nope\" not found");

    let (code, _) = call(
        &app,
        "PUT",
        "/api/v1/namespaces/default/configmaps/a",
        Some(created.clone()),
    )
    .await;
    assert_eq!(
        code,
        StatusCode::OK,
        "an identical update is a no-op, not a conflict"
    );
    let mut first = created.clone();
    first["data"]["k"] = json!("first");
    let (code, _) = call(
        &app,
        "PUT",
        "/api/v1/namespaces/default/configmaps/a",
        Some(first),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let mut late = created;
    late["data"]["k"] = json!("second");
    let (code, status) = call(
        &app,
        "PUT",
        "/api/v1/namespaces/default/configmaps/a",
        Some(late),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(status["reason"], "Conflict");
}

#[tokio::test]
async fn lists_page_with_continue_tokens() {
    let (app, _) = app().await;
    for i in 0..5 {
        create_cm(&app, &format!("c{i}")).await;
    }
    let mut names = Vec::new();
    let mut uri = "/api/v1/namespaces/default/configmaps?limit=2".to_owned();
    loop {
        let (_, page) = call(&app, "GET", &uri, None).await;
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(token) => {
                uri = format!("/api/v1/namespaces/default/configmaps?limit=2&continue={token}")
            }
            None => break,
        }
    }
    assert_eq!(names, vec!["c0", "c1", "c2", "c3", "c4"]);
}

/// A change made between two pages to an object already listed must reach a client that
/// watches from the list's resourceVersion (as kube-rs and client-go reflectors do); the
/// token expires once its revision is compacted.
#[tokio::test]
async fn a_paged_list_then_watch_misses_no_change() {
    let (app, store) = app().await;
    for i in 0..4 {
        create_cm(&app, &format!("c{i}")).await;
    }
    let (_, first) = call(
        &app,
        "GET",
        "/api/v1/namespaces/default/configmaps?limit=2",
        None,
    )
    .await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    // c0 was on the first page; it changes before the second page is read.
    call(
        &app,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/c0",
        None,
    )
    .await;
    let uri = format!("/api/v1/namespaces/default/configmaps?limit=2&continue={token}");
    let (_, second) = call(&app, "GET", &uri, None).await;
    assert!(second["metadata"]["continue"].is_null());
    let rv = second["metadata"]["resourceVersion"].as_str().unwrap();
    assert_eq!(rv, first["metadata"]["resourceVersion"].as_str().unwrap());
    let events = watch_events(
        &app,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
    )
    .await;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "DELETED" && e["object"]["metadata"]["name"] == "c0"),
        "{events:#?}"
    );
    store.compact(store.current_revision()).await.unwrap();
    let (code, status) = call(&app, "GET", &uri, None).await;
    assert_eq!(code, StatusCode::GONE);
    assert_eq!(status["reason"], "Expired");
}

#[tokio::test]
async fn watch_replays_from_a_revision_and_compacted_ones_get_410() {
    let (app, store) = app().await;
    let (_, a) = create_cm(&app, "a").await;
    let rv: i64 = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    call(
        &app,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/a",
        None,
    )
    .await;
    let events = watch_events(&app, &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1")).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "DELETED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "a");
    store.compact(store.current_revision()).await.unwrap();
    let events = watch_events(&app, &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1")).await;
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[tokio::test]
async fn streaming_lists_end_initial_events_with_an_annotated_bookmark() {
    let (app, _) = app().await;
    create_cm(&app, "a").await;
    let events = watch_events(
        &app,
        "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
    )
    .await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let (code, _) = call(
        &app,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn tables_carry_upstream_columns_and_partial_metadata() {
    let (app, _) = app().await;
    create_cm(&app, "a").await;
    let (_, table) = call_with(
        &app,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        None,
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .await;
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, vec!["Name", "Data", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "a");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert!(table["metadata"]["resourceVersion"].is_string());
}

#[tokio::test]
async fn scale_subresource_reads_and_writes_replicas() {
    let (app, _) = app().await;
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                 "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}
    });
    call(
        &app,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        Some(deploy),
    )
    .await;
    let (_, scale) = call(
        &app,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/d/scale",
        None,
    )
    .await;
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=d");
    let req = Request::builder()
        .method("PATCH")
        .uri("/apis/apps/v1/namespaces/default/deployments/d/scale")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/merge-patch+json")
        .body(Body::from(r#"{"spec":{"replicas":5}}"#))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    let (_, d) = call(
        &app,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/d",
        None,
    )
    .await;
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 2);
}

#[tokio::test]
async fn aggregated_discovery_answers_when_asked_first() {
    let (app, _) = app().await;
    let req = Request::builder()
        .uri("/apis")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let apps = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "apps")
        .unwrap();
    let deploy = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    assert_eq!(deploy["scope"], "Namespaced");
    assert!(deploy["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["subresource"] == "scale" && s["responseKind"]["group"] == "autoscaling"));
    // Plain JSON still gets the legacy form.
    let (_, legacy) = call(&app, "GET", "/apis", None).await;
    assert_eq!(legacy["kind"], "APIGroupList");
}

#[tokio::test]
async fn binding_assigns_the_node_and_a_second_binding_conflicts() {
    let (app, _) = app().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    call(&app, "POST", "/api/v1/namespaces/default/pods", Some(pod)).await;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"kind": "Node", "name": "node-a"}});
    let (code, status) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/pods/p/binding",
        Some(binding.clone()),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{status}");
    let (_, p) = call(&app, "GET", "/api/v1/namespaces/default/pods/p", None).await;
    assert_eq!(p["spec"]["nodeName"], "node-a");
    assert_eq!(p["status"]["conditions"][0]["type"], "PodScheduled");
    assert_eq!(p["status"]["conditions"][0]["status"], "True");
    let (code, status) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/pods/p/binding",
        Some(binding),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("is already assigned to node \"node-a\""));
    // An ordinary update still may not move a pod.
    let mut moved = p.clone();
    moved["spec"]["nodeName"] = json!("node-b");
    let (code, _) = call(
        &app,
        "PUT",
        "/api/v1/namespaces/default/pods/p",
        Some(moved),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Post-start hooks are reported by the components that did their work: before the
/// background tasks run and the kubernetes Service exists, the listing says so.
#[tokio::test]
async fn health_checks_report_what_has_really_started() {
    let (app, _) = common::app().await;
    let (status, body) = common::call(&app, "GET", "/healthz/etcd", None).await;
    assert_eq!((status, body), (StatusCode::OK, Value::String("ok".into())));
    let (status, body) = common::call(&app, "GET", "/readyz?verbose=1", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let body = body.as_str().unwrap().to_owned();
    for line in [
        "[+]ping ok",
        "[+]poststarthook/crd-informer-synced ok",
        "[+]poststarthook/start-system-namespaces-controller ok",
        "[+]poststarthook/rbac/bootstrap-roles ok",
        "[+]poststarthook/scheduling/bootstrap-system-priority-classes ok",
        "[+]informer-sync ok",
        "[-]poststarthook/bootstrap-controller failed: reason withheld",
        "[-]poststarthook/start-apiextensions-controllers failed: reason withheld",
        "readyz check failed",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in {body}"
        );
    }
    let (status, _) = common::call(
        &app,
        "GET",
        "/livez/poststarthook/bootstrap-controller",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

/// `pods/ephemeralcontainers` as kubectl debug uses it: a strategic merge patch adds a
/// container and changes nothing else; existing ones may not change; the main resource
/// may not add them.
#[tokio::test]
async fn ephemeral_containers_are_added_through_their_subresource_only() {
    let (app, _) = app().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (code, created) = call(&app, "POST", "/api/v1/namespaces/default/pods", Some(pod)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let uri = "/api/v1/namespaces/default/pods/p/ephemeralcontainers";
    let (code, got) = call(&app, "GET", uri, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got["kind"], "Pod");
    let patch = |body: Value| {
        let app = app.clone();
        async move {
            let (code, _, bytes) = raw(
                &app,
                "PATCH",
                uri,
                Some("application/strategic-merge-patch+json"),
                body.to_string().into_bytes(),
            )
            .await;
            (code, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    // Other fields in the patch are dropped, as upstream's strategy does.
    let (code, patched) = patch(json!({"metadata": {"labels": {"x": "y"}},
        "spec": {"activeDeadlineSeconds": 5, "ephemeralContainers": [{"name": "debugger",
        "image": "busybox:v1", "stdin": true, "tty": true, "targetContainerName": "c"}]}}))
    .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    let eph = &patched["spec"]["ephemeralContainers"][0];
    assert_eq!(eph["name"], "debugger");
    assert_eq!(eph["terminationMessagePolicy"], "File", "defaulted");
    assert!(patched["metadata"]["labels"].is_null(), "{patched}");
    assert!(patched["spec"]["activeDeadlineSeconds"].is_null());
    let managed = patched["metadata"]["managedFields"].as_array().unwrap();
    assert!(
        managed
            .iter()
            .any(|m| m["subresource"] == "ephemeralcontainers"),
        "{managed:?}"
    );
    // Changing it is refused with upstream's message, and changes nothing.
    let (code, status) = patch(json!({"spec": {"ephemeralContainers": [{"name": "debugger",
        "image": "busybox:v2"}]}}))
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "spec.ephemeralContainers[debugger]"
    );
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("existing ephemeral containers \"debugger\" may not be changed"));
    // Ports are not for debugging containers; a name must be unique in the pod.
    let (code, status) = patch(json!({"spec": {"ephemeralContainers": [{"name": "c",
        "image": "busybox", "ports": [{"containerPort": 80}]}]}}))
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap().rsplit('.').next().unwrap())
        .collect();
    assert_eq!(fields, ["name", "ports"], "{status}");
    // Removing them through a PUT of the subresource is refused too.
    let mut emptied = patched.clone();
    emptied["spec"]["ephemeralContainers"] = json!([]);
    let (code, status) = call(&app, "PUT", uri, Some(emptied)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("may not be removed"));
    // The main resource cannot add them.
    let (_, now) = call(&app, "GET", "/api/v1/namespaces/default/pods/p", None).await;
    let mut more = now.clone();
    more["spec"]["ephemeralContainers"]
        .as_array_mut()
        .unwrap()
        .push(
            json!({"name": "d2", "image": "busybox", "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent"}),
        );
    let (code, _) = call(&app, "PUT", "/api/v1/namespaces/default/pods/p", Some(more)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    // Other kinds have no such subresource.
    let (code, _) = call(
        &app,
        "GET",
        "/api/v1/namespaces/default/configmaps/p/ephemeralcontainers",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
