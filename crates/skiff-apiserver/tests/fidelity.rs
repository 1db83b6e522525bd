//! Where skiff once differed from kube-apiserver in ways clients feel (issue 10): dry-run from
//! the DeleteOptions body, option validation, media types, body limits and Status bytes.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

async fn get_cm(app: &axum::Router, name: &str) -> StatusCode {
    call(
        app,
        "GET",
        &format!("/api/v1/namespaces/default/configmaps/{name}"),
        None,
    )
    .await
    .0
}

/// kubectl sends `dryRun` in the DeleteOptions body of a DELETE, not in the query.
#[tokio::test]
async fn delete_with_dry_run_in_the_body_deletes_nothing() {
    let (app, _) = app().await;
    create_cm(&app, "kept").await;
    let options = json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"], "propagationPolicy": "Background"});
    let (code, _, out) = raw(
        &app,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/kept",
        Some("application/json"),
        body(&options),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&out));
    assert_eq!(get_cm(&app, "kept").await, StatusCode::OK);

    // A namespace too, and a whole collection.
    let team = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
    call(&app, "POST", "/api/v1/namespaces", Some(team)).await;
    let (code, _, _) = raw(
        &app,
        "DELETE",
        "/api/v1/namespaces/team",
        Some("application/json"),
        body(&options),
    )
    .await;
    assert!(code.is_success());
    let (_, ns) = call(&app, "GET", "/api/v1/namespaces/team", None).await;
    assert!(ns["metadata"]["deletionTimestamp"].is_null(), "{ns}");
    let (code, _, _) = raw(
        &app,
        "DELETE",
        "/api/v1/namespaces/default/configmaps",
        Some("application/json"),
        body(&options),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(get_cm(&app, "kept").await, StatusCode::OK);

    // The query form still works without a body.
    let (code, _) = call(
        &app,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/kept?dryRun=All",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(get_cm(&app, "kept").await, StatusCode::OK);
}

#[tokio::test]
async fn dry_run_on_create_update_patch_and_subresources_writes_nothing() {
    let (app, store) = app().await;
    create_cm(&app, "a").await;
    let before = skiff_store::Store::current_revision(store.as_ref());
    let (code, created) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/configmaps?dryRun=All",
        Some(cm("b")),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert!(
        created["metadata"]["uid"].is_string(),
        "admission still ran"
    );
    let mut changed = cm("a");
    changed["data"]["k"] = json!("changed");
    let (code, _) = call(
        &app,
        "PUT",
        "/api/v1/namespaces/default/configmaps/a?dryRun=All",
        Some(changed),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _, _) = raw(
        &app,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/a?dryRun=All",
        Some("application/merge-patch+json"),
        body(&json!({"data": {"k": "patched"}})),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _, _) = raw(
        &app,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c?dryRun=All&fieldManager=test",
        Some("application/apply-patch+yaml"),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n".to_vec(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(
        skiff_store::Store::current_revision(store.as_ref()),
        before,
        "a dry run wrote to the store"
    );
    let (_, a) = call(&app, "GET", "/api/v1/namespaces/default/configmaps/a", None).await;
    assert_eq!(a["data"]["k"], "v");
    assert_eq!(get_cm(&app, "b").await, StatusCode::NOT_FOUND);
    assert_eq!(get_cm(&app, "c").await, StatusCode::NOT_FOUND);
}

/// Upstream validates each verb's options first (`ValidateCreateOptions` and friends) and
/// answers 422 on the options kind; a bad resourceVersion is a 400.
#[tokio::test]
async fn bogus_options_are_refused_and_change_nothing() {
    let (app, store) = app().await;
    let before = skiff_store::Store::current_revision(store.as_ref());
    let cases = [
        ("POST", "/api/v1/namespaces/default/configmaps?dryRun=Bogus", 422, "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Bogus\"}: supported values: \"All\""),
        ("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Bogus", 422, "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Bogus\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""),
        ("DELETE", "/api/v1/namespaces/default/configmaps/x?propagationPolicy=Bogus", 422, "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Bogus\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""),
        ("GET", "/api/v1/namespaces/default/configmaps?resourceVersion=abc", 400, "resourceVersion: Invalid value: \"abc\": strconv.ParseUint: parsing \"abc\": invalid syntax"),
        ("GET", "/api/v1/namespaces/default/configmaps?resourceVersion=1&resourceVersionMatch=Bogus", 422, "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"Bogus\": supported values: \"Exact\", \"NotOlderThan\", \"\""),
    ];
    for (method, uri, want, message) in cases {
        let payload = if method == "POST" {
            body(&cm("x"))
        } else {
            vec![]
        };
        let (code, _, out) = raw(&app, method, uri, Some("application/json"), payload).await;
        let status: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(code.as_u16(), want, "{method} {uri}: {status}");
        assert_eq!(status["message"], message, "{method} {uri}");
    }
    assert_eq!(skiff_store::Store::current_revision(store.as_ref()), before);
}

#[tokio::test]
async fn bodies_in_unknown_media_types_get_415() {
    let (app, _) = app().await;
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let (code, _, out) = raw(
            &app,
            "POST",
            "/api/v1/namespaces/default/configmaps",
            ct,
            body(&cm("t")),
        )
        .await;
        assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        let status: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(status["reason"], "UnsupportedMediaType");
    }
    assert_eq!(get_cm(&app, "t").await, StatusCode::NOT_FOUND);
    // No Content-Type at all is JSON, as upstream (the python client sends none).
    let (code, _, _) = raw(
        &app,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        None,
        body(&cm("t")),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_after_being_read() {
    let (app, _) = app().await;
    let mut big = cm("big");
    big["data"]["k"] = json!("x".repeat(skiff_apiserver::http::MAX_BODY));
    let (code, _, out) = raw(
        &app,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some("application/json"),
        body(&big),
    )
    .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    let status: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(status["reason"], "RequestEntityTooLarge");
    assert_eq!(
        status["message"],
        "Request entity too large: limit is 3145728"
    );
    assert_eq!(get_cm(&app, "big").await, StatusCode::NOT_FOUND);
}

/// kube-apiserver writes Status fields in Go struct order with `json.Encoder`'s newline.
#[tokio::test]
async fn status_bodies_are_byte_compatible_with_upstream() {
    let (app, _) = app().await;
    let (code, _, out) = raw(
        &app,
        "GET",
        "/api/v1/namespaces/default/configmaps/missing",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"configmaps \\\"missing\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"missing\",\"kind\":\"configmaps\"},\"code\":404}\n"
    );
    let (_, _, out) = raw(
        &app,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/missing",
        None,
        vec![],
    )
    .await;
    assert!(String::from_utf8(out).unwrap().contains(
        "\"details\":{\"name\":\"missing\",\"group\":\"apps\",\"kind\":\"deployments\"},\"code\":404}\n"
    ));
    // A path nothing serves: a subresource pods do not have.
    let (code, _, out) = raw(
        &app,
        "GET",
        "/api/v1/namespaces/default/pods/p/notasubresource",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"the server could not find the requested resource\",\"reason\":\"NotFound\",\"details\":{},\"code\":404}\n"
    );
    create_cm(&app, "dup").await;
    let (code, _, out) = raw(
        &app,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some("application/json"),
        body(&cm("dup")),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"configmaps \\\"dup\\\" already exists\",\"reason\":\"AlreadyExists\",\"details\":{\"name\":\"dup\",\"kind\":\"configmaps\"},\"code\":409}\n"
    );
}

/// A grace period of any int64 once overflowed the deletion timestamp (a panic on input).
#[tokio::test]
async fn huge_grace_periods_do_not_overflow() {
    let (app, _) = app().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": i64::MAX,
                 "containers": [{"name": "c", "image": "busybox"}]}});
    let (code, out) = call(&app, "POST", "/api/v1/namespaces/default/pods", Some(pod)).await;
    assert_eq!(code, StatusCode::CREATED, "{out}");
    for query in [
        format!("gracePeriodSeconds={}", i64::MAX),
        format!("gracePeriodSeconds={}", i64::MIN),
        String::new(),
    ] {
        let (code, out) = call(
            &app,
            "DELETE",
            &format!("/api/v1/namespaces/default/pods/p?dryRun=All&{query}"),
            None,
        )
        .await;
        assert!(code.is_success(), "{query}: {code} {out}");
    }
    let (code, _) = call(
        &app,
        "GET",
        "/api/v1/namespaces/default/pods/p/log?sinceSeconds=-9223372036854775808",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A watch from a revision the store has not reached sends nothing older than it; a list
/// from one waits, then answers upstream's 504 "Too large resource version".
#[tokio::test]
async fn reads_from_a_future_resource_version_send_nothing_older() {
    let (app, store) = app().await;
    let future = skiff_store::Store::current_revision(store.as_ref()) + 1000;
    let (code, _, out) = raw(
        &app,
        "GET",
        &format!("/api/v1/namespaces/default/configmaps?resourceVersion={future}"),
        None,
        vec![],
    )
    .await;
    assert_eq!(code, StatusCode::GATEWAY_TIMEOUT);
    let status: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(status["reason"], "Timeout");
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
    let app2 = app.clone();
    let watcher = tokio::spawn(async move {
        watch_events(
            &app2,
            &format!(
                "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={future}&timeoutSeconds=1"
            ),
        )
        .await
    });
    for i in 0..5 {
        create_cm(&app, &format!("older-{i}")).await;
    }
    let events = watcher.await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| e.is_null() || e == "" || e["type"] == "BOOKMARK"),
        "{events:?}"
    );
}

/// Fuzzers and generators read the path parameters from the document (they were missing).
#[tokio::test]
async fn openapi_declares_path_parameters() {
    let (app, _) = app().await;
    let (code, doc) = call(&app, "GET", "/openapi/v3/api/v1", None).await;
    assert_eq!(code, StatusCode::OK);
    let item = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"];
    let names: Vec<&str> = item["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["name", "namespace"]);
    assert!(item["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["in"] == "path" && p["required"] == true));
    let nodes = &doc["paths"]["/api/v1/nodes/{name}"]["parameters"];
    assert_eq!(nodes[0]["name"], "name");
    assert!(
        doc["paths"]["/api/v1/namespaces/{namespace}/configmaps"]["parameters"][0]["name"]
            == "namespace"
    );
}

/// Upstream's `dropTypeDependentFields`: a LoadBalancer patched to ClusterIP loses the node
/// ports and policies the server filled in, instead of failing validation on them.
#[tokio::test]
async fn a_load_balancer_service_can_be_patched_back_to_cluster_ip() {
    let (app, _) = app().await;
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "lb"},
                 "ports": [{"port": 80, "targetPort": 8080}]}});
    let (code, created) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/services",
        Some(svc),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let node_port = created["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    let cluster_ip = created["spec"]["clusterIP"].clone();
    let (code, _, out) = raw(
        &app,
        "PATCH",
        "/api/v1/namespaces/default/services/lb",
        Some("application/strategic-merge-patch+json"),
        body(&json!({"spec": {"type": "ClusterIP"}})),
    )
    .await;
    let patched: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(code, StatusCode::OK, "{patched}");
    assert_eq!(patched["spec"]["type"], "ClusterIP");
    assert!(
        patched["spec"]["ports"][0]["nodePort"].is_null(),
        "{patched}"
    );
    assert!(patched["spec"]["externalTrafficPolicy"].is_null());
    assert!(patched["spec"]["allocateLoadBalancerNodePorts"].is_null());
    assert_eq!(
        patched["spec"]["clusterIP"], cluster_ip,
        "the cluster IP stays"
    );

    // The freed node port can be taken by another Service.
    let other = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]}});
    let (code, out) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/services",
        Some(other),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{out}");
}

async fn apply(app: &axum::Router, manager: &str, extra: &str, yaml: &str) -> (StatusCode, Value) {
    let (code, _, out) = raw(
        app,
        "PATCH",
        &format!("/api/v1/namespaces/default/configmaps/settings?fieldManager={manager}{extra}"),
        Some("application/apply-patch+yaml"),
        yaml.as_bytes().to_vec(),
    )
    .await;
    (code, serde_json::from_slice(&out).unwrap())
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_owned(),
                e["operation"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Helm 4 upgrades with server-side apply: a key the chart no longer renders must go.
#[tokio::test]
async fn a_key_dropped_from_an_apply_is_removed() {
    let (app, _) = app().await;
    let v1 =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '1'\n  b: '2'\n";
    let v2 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '1'\n";
    let (code, created) = apply(&app, "helm", "", v1).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(managers(&created), [("helm".into(), "Apply".into())]);
    assert_eq!(
        created["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );
    let (code, upgraded) = apply(&app, "helm", "", v2).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(upgraded["data"], json!({"a": "1"}), "{upgraded}");
    // Applying the same again changes nothing, not even the resourceVersion.
    let (_, again) = apply(&app, "helm", "", v2).await;
    assert_eq!(
        again["metadata"]["resourceVersion"],
        upgraded["metadata"]["resourceVersion"]
    );
}

/// Two managers setting one field: 409 with upstream's message and causes, then `force`.
#[tokio::test]
async fn a_second_manager_conflicts_until_it_forces() {
    let (app, _) = app().await;
    let mine = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '1'\n";
    let theirs = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '2'\n";
    apply(&app, "a", "", mine).await;
    let (code, status) = apply(&app, "b", "", theirs).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"a\": .data.a"
    );
    assert_eq!(
        status["details"],
        json!({"causes": [{"reason": "FieldManagerConflict", "message": "conflict with \"a\"", "field": ".data.a"}]})
    );
    // The same value is shared ownership, not a conflict.
    let (code, shared) = apply(&app, "b", "", mine).await;
    assert_eq!(code, StatusCode::OK, "{shared}");
    let (code, forced) = apply(&app, "c", "&force=true", theirs).await;
    assert_eq!(code, StatusCode::OK, "{forced}");
    assert_eq!(forced["data"]["a"], "2");
    assert_eq!(managers(&forced), [("c".into(), "Apply".into())]);
}

/// Writes that are not applies are tracked too (operation Update), by fieldManager or the
/// User-Agent's product name, and a dry-run apply stores nothing.
#[tokio::test]
async fn updates_are_owned_by_their_writer_and_dry_run_applies_store_nothing() {
    let (app, store) = app().await;
    let (code, created) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(
        managers(&created),
        [("kubectl-create".into(), "Update".into())]
    );
    let (code, _, out) = raw(
        &app,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/settings",
        Some("application/merge-patch+json"),
        body(&json!({"data": {"b": "2"}})),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let patched: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        managers(&patched),
        [
            ("kubectl-create".into(), "Update".into()),
            ("unknown".into(), "Update".into())
        ]
    );
    let before = skiff_store::Store::current_revision(store.as_ref());
    let (code, out) = apply(
        &app,
        "x",
        "&dryRun=All",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  c: '3'\n",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{out}");
    assert_eq!(out["data"]["c"], "3");
    assert_eq!(skiff_store::Store::current_revision(store.as_ref()), before);
}

#[tokio::test]
async fn system_namespaces_cannot_be_deleted_nor_namespaces_deleted_as_a_collection() {
    let (app, _) = app().await;
    for ns in ["default", "kube-system", "kube-public"] {
        let (code, status) = call(&app, "DELETE", &format!("/api/v1/namespaces/{ns}"), None).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{ns}: {status}");
        assert_eq!(
            status["message"],
            format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted")
        );
    }
    let (code, _) = call(&app, "DELETE", "/api/v1/namespaces", None).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let (_, ns) = call(&app, "GET", "/api/v1/namespaces/default", None).await;
    assert!(ns["metadata"]["deletionTimestamp"].is_null());
}

/// Unknown and duplicate fields: 400 under Strict with upstream's message (conformance
/// "should detect unknown and duplicate fields of a typed object"), Warning headers under
/// the default Warn, nothing under Ignore.
#[tokio::test]
async fn unknown_and_duplicate_fields_follow_field_validation() {
    let (app, _) = app().await;
    let deployment = br#"{"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "my-dep", "labels": {"app": "nginx"}},
        "spec": {"unknownField": "foo", "replicas": 2, "replicas": 3,
                 "selector": {"matchLabels": {"app": "nginx"}},
                 "template": {"metadata": {"labels": {"app": "nginx"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}}}}"#;
    let uri = "/apis/apps/v1/namespaces/default/deployments";
    let (code, _, out) = raw(
        &app,
        "POST",
        &format!("{uri}?fieldValidation=Strict"),
        Some("application/json"),
        deployment.to_vec(),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let status: Value = serde_json::from_slice(&out).unwrap();
    assert!(
        status["message"].as_str().unwrap().contains(
            "strict decoding error: unknown field \"spec.unknownField\", duplicate field \"spec.replicas\""
        ),
        "{status}"
    );
    let (code, headers, out) = raw(
        &app,
        "POST",
        uri,
        Some("application/json"),
        deployment.to_vec(),
    )
    .await;
    assert_eq!(
        code,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&out)
    );
    let warnings: Vec<&str> = headers
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        [
            "299 - \"unknown field \\\"spec.unknownField\\\"\"",
            "299 - \"duplicate field \\\"spec.replicas\\\"\""
        ]
    );
    let created: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(created["spec"]["replicas"], 3);
    let (code, headers, _) = raw(
        &app,
        "PUT",
        &format!("{uri}/my-dep?fieldValidation=Ignore"),
        Some("application/json"),
        deployment.to_vec(),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert!(headers.get("warning").is_none());
}

/// A requested ClusterIP outside the service network, or one taken, is refused with
/// upstream's allocator errors on `spec.clusterIPs`, and nothing is stored.
#[tokio::test]
async fn requested_cluster_ips_must_be_free_and_in_the_service_network() {
    let (app, _) = app().await;
    let svc = |name: &str, ip: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"clusterIP": ip, "ports": [{"port": 80}]}})
    };
    let path = "/api/v1/namespaces/default/services";
    let (code, out) = call(&app, "POST", path, Some(svc("a", "10.96.7.7"))).await;
    assert_eq!(code, StatusCode::CREATED, "{out}");
    for (name, ip, why) in [
        ("b", "10.96.7.7", "provided IP is already allocated".to_string()),
        (
            "c",
            "10.0.0.5",
            "the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/16".to_string(),
        ),
    ] {
        let (code, out) = call(&app, "POST", path, Some(svc(name, ip))).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
        let cause = &out["details"]["causes"][0];
        assert_eq!(cause["field"], "spec.clusterIPs", "{out}");
        assert_eq!(
            cause["message"],
            format!("Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: {why}"),
        );
        let (code, _) = call(&app, "GET", &format!("{path}/{name}"), None).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{name} was not stored");
    }
}

/// DaemonSets carry their template generation in `deprecated.daemonset.template.generation`
/// as upstream's strategy sets it: 1 on create, +1 only when the pod template changes.
#[tokio::test]
async fn daemonset_template_generation_is_kept_by_the_server() {
    let (app, _) = app().await;
    let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let path = "/apis/apps/v1/namespaces/default/daemonsets";
    let (code, out) = call(&app, "POST", path, Some(ds)).await;
    assert_eq!(code, StatusCode::CREATED, "{out}");
    let generation = |v: &Value| {
        v["metadata"]["annotations"]["deprecated.daemonset.template.generation"].clone()
    };
    assert_eq!(generation(&out), "1");
    let patch = |body: Value| {
        let app = app.clone();
        async move {
            let (code, _, out) = raw(
                &app,
                "PATCH",
                "/apis/apps/v1/namespaces/default/daemonsets/agent",
                Some("application/merge-patch+json"),
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
            assert_eq!(code, StatusCode::OK);
            serde_json::from_slice::<Value>(&out).unwrap()
        }
    };
    let out = patch(json!({"spec": {"minReadySeconds": 3}})).await;
    assert_eq!(generation(&out), "1", "a spec change outside the template");
    let out = patch(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}})).await;
    assert_eq!(generation(&out), "2", "a template change");
}
