//! The server itself: `server_version.go`, `health_handlers.go`, `protocol.go`, `request_timeout.go`.

use super::*;

/// server_version.go "should find the server version" (Conformance).
#[test]
fn server_version_should_find_the_server_version() {
    run(|c| async move {
        let v = c.apiserver_version().await.expect("ServerVersion");
        let major_digit: String = v
            .major
            .chars()
            .filter(|ch| ('1'..='9').contains(ch))
            .take(1)
            .collect();
        assert_eq!(major_digit, v.major, "major version {:?}", v.major);
        let minor: String = v.minor.chars().filter(char::is_ascii_digit).collect();
        let minor: u32 = minor.parse().expect("numeric minor version");
        assert!(minor > 0, "minor version {:?}", v.minor);
    });
}

// ---------------------------------------------------------------------------------------------
// health handlers (test/e2e/apimachinery/health_handlers.go)

/// health_handlers.go "should contain necessary checks": `/healthz`, `/livez` and `/readyz`
/// with `verbose=1` list every check kube-apiserver has.
#[test]
fn health_handlers_should_contain_necessary_checks() {
    run(|c| async move {
        let hooks = [
            "[+]poststarthook/start-apiextensions-informers ok",
            "[+]poststarthook/start-apiextensions-controllers ok",
            "[+]poststarthook/crd-informer-synced ok",
            "[+]poststarthook/bootstrap-controller ok",
            "[+]poststarthook/start-system-namespaces-controller ok",
            "[+]poststarthook/rbac/bootstrap-roles ok",
            "[+]poststarthook/scheduling/bootstrap-system-priority-classes ok",
            "[+]poststarthook/start-cluster-authentication-info-controller ok",
            "[+]poststarthook/start-kube-aggregator-informers ok",
            "[+]poststarthook/apiservice-registration-controller ok",
            "[+]poststarthook/apiservice-status-available-controller ok",
            "[+]poststarthook/kube-apiserver-autoregistration ok",
            "[+]autoregister-completion ok",
            "[+]poststarthook/apiservice-openapi-controller ok",
        ];
        let common = [
            "[+]ping ok",
            "[+]log ok",
            "[+]etcd ok",
            "[+]poststarthook/generic-apiserver-start-informers ok",
        ];
        let healthz: Vec<&str> = common
            .iter()
            .chain(["[+]poststarthook/start-apiserver-admission-initializer ok"].iter())
            .chain(hooks.iter())
            .copied()
            .collect();
        let livez: Vec<&str> = common
            .iter()
            .chain(["[+]poststarthook/start-kube-apiserver-admission-initializer ok"].iter())
            .chain(hooks.iter())
            .copied()
            .collect();
        let mut readyz = livez.clone();
        readyz.push("[+]informer-sync ok");
        for (path, required) in [
            ("/healthz?verbose=1", healthz),
            ("/livez?verbose=1", livez),
            ("/readyz?verbose=1", readyz),
        ] {
            let r = eventually(30, path, || async {
                let r = get(&c, path).await;
                (r.status == StatusCode::OK).then_some(r)
            })
            .await;
            let lines: Vec<&str> = r.body.split('\n').collect();
            let missing: Vec<&&str> = required
                .iter()
                .filter(|want| !lines.contains(want))
                .collect();
            assert!(
                missing.is_empty(),
                "missing required {path} checks: {missing:?} in: {}",
                r.body
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// client-go protocol (test/e2e/apimachinery/protocol.go)

/// "client-go should negotiate watch and report errors with accept <accept>": a watch by
/// name from a list's resourceVersion opens under that Accept header and its first event is
/// the created object (or a 410).
async fn negotiate_watch(c: Client, accept: &str, ns: &str) {
    let ns = namespace(&c, ns).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), &ns);
    let before = api.list(&ListParams::default()).await.unwrap();
    let name = "e2e-client-go-test-negotiation";
    api.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": name}})),
    )
    .await
    .unwrap();
    let rv = before.metadata.resource_version.unwrap();
    let uri = format!(
        "/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3D{name}&timeoutSeconds=30"
    );
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header("accept", accept);
    req = req.header("user-agent", "conformance");
    let res = c
        .send(req.body(kube::client::Body::from(Vec::new())).unwrap())
        .await
        .expect("watch");
    assert_eq!(res.status(), StatusCode::OK, "watch with accept {accept}");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // The first Accept range the server can serve decides, as upstream's negotiation: a
    // protobuf watch is length-prefixed metav1.WatchEvent frames, a JSON one one event a line.
    let protobuf = ct == skiff_protobuf::WATCH_CONTENT_TYPE;
    let want_protobuf = accept.starts_with("application/vnd.kubernetes.protobuf");
    assert_eq!(
        protobuf, want_protobuf,
        "content type {ct} for accept {accept}"
    );
    if !protobuf {
        assert!(
            ct.starts_with("application/json"),
            "content type {ct} for accept {accept}"
        );
    }
    let mut body = res.into_body();
    let mut buf = Vec::new();
    let event = tokio::time::timeout(Duration::from_secs(30), async {
        use hyper::body::Body as _;
        loop {
            if protobuf && buf.len() >= 4 {
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if buf.len() >= 4 + len {
                    let (kind, object) = skiff_protobuf::decode_watch_event(&buf[4..4 + len])
                        .expect("watch frame is a protobuf WatchEvent");
                    return json!({"type": kind, "object": object});
                }
            }
            if !protobuf {
                if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    return serde_json::from_slice::<Value>(&buf[..pos])
                        .expect("watch event is JSON");
                }
            }
            let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
                .await
                .expect("watch closed before an event")
                .expect("watch body");
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
            }
        }
    })
    .await
    .expect("no watch event within 30s");
    match event["type"].as_str() {
        Some("ADDED") | Some("MODIFIED") => assert_eq!(event["object"]["metadata"]["name"], name),
        Some("ERROR") => assert!(event["object"]["code"] == 410, "unexpected error: {event}"),
        other => panic!("unexpected type {other:?}: {event}"),
    }
}

/// protocol.go "client-go should negotiate watch and report errors with accept
/// \"application/json\"".
#[test]
fn protocol_should_negotiate_watch_and_report_errors_with_accept_json() {
    run(|c| negotiate_watch(c, "application/json", "cf-proto-json"));
}

/// protocol.go "... with accept \"application/vnd.kubernetes.protobuf\"".
#[test]
fn protocol_should_negotiate_watch_and_report_errors_with_accept_protobuf() {
    run(|c| negotiate_watch(c, "application/vnd.kubernetes.protobuf", "cf-proto-pb"));
}

/// protocol.go "... with accept \"application/vnd.kubernetes.protobuf,application/json\"".
#[test]
fn protocol_should_negotiate_watch_and_report_errors_with_accept_protobuf_then_json() {
    run(|c| {
        negotiate_watch(
            c,
            "application/vnd.kubernetes.protobuf,application/json",
            "cf-proto-pb-json",
        )
    });
}

/// protocol.go "... with accept \"application/json,application/vnd.kubernetes.protobuf\"".
#[test]
fn protocol_should_negotiate_watch_and_report_errors_with_accept_json_then_protobuf() {
    run(|c| {
        negotiate_watch(
            c,
            "application/json,application/vnd.kubernetes.protobuf",
            "cf-proto-json-pb",
        )
    });
}

// ---------------------------------------------------------------------------------------------
// Server request timeout (test/e2e/apimachinery/request_timeout.go)

/// request_timeout.go "should return HTTP status code 400 if the user specifies an invalid
/// timeout in the request URL".
#[test]
fn request_timeout_should_return_http_status_code_400_if_the_user_specifies_an_invalid_timeout_in_the_request_url(
) {
    run(|c| async move {
        let r = get(&c, "/version?timeout=invalid").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(
            r.body.contains("invalid timeout specified in the request URL"),
            "expected HTTP status message to contain: invalid timeout specified in the request URL, but got: {}",
            r.body
        );
    });
}

/// request_timeout.go "the request should be served with a default timeout if the specified
/// timeout in the request URL exceeds maximum allowed".
#[test]
fn request_timeout_the_request_should_be_served_with_a_default_timeout_if_the_specified_timeout_in_the_request_url_exceeds_maximum_allowed(
) {
    run(|c| async move {
        let r = get(&c, "/version?timeout=3m").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    });
}

/// request_timeout.go "default timeout should be used if the specified timeout in the request
/// URL is 0s".
#[test]
fn request_timeout_default_timeout_should_be_used_if_the_specified_timeout_in_the_request_url_is_0s(
) {
    run(|c| async move {
        let r = get(&c, "/version?timeout=0s").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    });
}
