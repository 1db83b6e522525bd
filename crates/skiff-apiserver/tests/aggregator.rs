//! Aggregated APIs end to end in one process: a tiny HTTPS extension API server, registered
//! through an APIService pointing at a Service whose Endpoints name it, is checked
//! available, proxied to, merged into discovery and OpenAPI v3, and seen going away. The
//! extension server, as metrics-server does, accepts only clients with a certificate from
//! the cluster's request-header CA, and reports the certificate's CN.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::get;
use axum::Json;
use base64::Engine;
use common::*;
use http_body_util::BodyExt;
use rustls::pki_types::pem::PemObject;
use serde_json::{json, Value};
use skiff_apiserver::{router, Api, Server};
use skiff_store::MemoryStore;
use tower::ServiceExt;

const GROUP: &str = "metrics.example.com";
const V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// The extension server: a CA (for the APIService's caBundle) and a running HTTPS server
/// whose certificate names `metrics-server.kube-system.svc`, stopped by aborting `task`.
/// `openapi_rev` is written into its OpenAPI document, so a test can change the document.
struct Extension {
    ca_pem: String,
    port: u16,
    task: tokio::task::JoinHandle<()>,
    openapi_rev: Arc<AtomicUsize>,
}

/// The cluster's request-header CA and the aggregator's client certificate it signed (PEM
/// CA, certificate, key), as `skiff server` makes them: made once per test binary.
fn front_proxy() -> &'static (String, String, String) {
    static CELL: OnceLock<(String, String, String)> = OnceLock::new();
    CELL.get_or_init(|| {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "front-proxy-client");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).unwrap();
        (ca_pem, cert.pem(), key.serialize_pem())
    })
}

/// The subject CN of a DER certificate: the value after the last commonName OID (the
/// subject follows the issuer), in short-form length, as the test's certificates have it.
fn subject_cn(der: &[u8]) -> Option<String> {
    const CN_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = der.windows(5).rposition(|w| w == CN_OID)? + 5;
    let len = *der.get(at + 1)? as usize;
    let value = der.get(at + 2..at + 2 + len)?;
    String::from_utf8(value.to_vec()).ok()
}

/// The CN of the client certificate a connection presented.
#[derive(Clone)]
struct ClientCn(String);

fn openapi_doc(rev: usize) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Metrics", "version": format!("rev-{rev}")},
        "paths": {},
        "components": {"schemas": {
            "com.example.metrics.v1.Widget": {
                "type": "object",
                "description": "A Widget measures things.",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "size": {"type": "integer", "description": "How big the widget is."},
                },
                "x-kubernetes-group-version-kind": [
                    {"group": "metrics.example.com", "version": "v1", "kind": "Widget"}
                ],
            }
        }},
    })
}

fn extension_routes(openapi_rev: Arc<AtomicUsize>) -> axum::Router {
    axum::Router::new()
        .route(
            "/openapi/v3/apis/metrics.example.com/v1",
            get(move || {
                let rev = openapi_rev.load(Ordering::Relaxed);
                async move { Json(openapi_doc(rev)) }
            }),
        )
        .route(
            "/apis/metrics.example.com/v1",
            get(|| async {
                Json(json!({
                    "kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": "metrics.example.com/v1",
                    "resources": [
                        {"name": "widgets", "singularName": "widget", "namespaced": true,
                         "kind": "Widget", "verbs": ["get", "list", "watch"], "shortNames": ["wd"]},
                    ],
                }))
            }),
        )
        .route(
            "/apis/metrics.example.com/v1/namespaces/{ns}/widgets",
            get(
                |headers: HeaderMap,
                 axum::Extension(ClientCn(cn)): axum::Extension<ClientCn>,
                 axum::extract::RawQuery(query): axum::extract::RawQuery| async move {
                    if query.as_deref().is_some_and(|q| q.contains("watch=true")) {
                        // Two events a moment apart: the proxy must stream, not buffer.
                        let events = futures::stream::unfold(0, |n| async move {
                            if n == 2 {
                                return None;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            let line = format!(
                                "{}\n",
                                json!({"type": "ADDED", "object": {"kind": "Widget", "metadata": {"name": format!("w{n}")}}})
                            );
                            Some((Ok::<_, std::io::Error>(line), n + 1))
                        });
                        return axum::response::Response::builder()
                            .header("content-type", "application/json")
                            .body(Body::from_stream(events))
                            .unwrap();
                    }
                    let header = |name: &str| -> Vec<String> {
                        headers
                            .get_all(name)
                            .iter()
                            .map(|v| v.to_str().unwrap_or("").to_owned())
                            .collect()
                    };
                    let seen = json!({
                        "user": header("x-remote-user"),
                        "groups": header("x-remote-group"),
                        "authorization": header("authorization"),
                        "query": query,
                        "client_cn": cn,
                    });
                    axum::response::IntoResponse::into_response(Json(json!({
                        "kind": "WidgetList", "apiVersion": "metrics.example.com/v1",
                        "metadata": {},
                        "items": [{"kind": "Widget", "metadata": {"name": "w1", "namespace": "default"}, "seen": seen}],
                    })))
                },
            ),
        )
}

async fn start_extension() -> Extension {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_pem = ca_cert.pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["metrics-server.kube-system.svc".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Only clients with a certificate from the request-header CA get in.
    let mut client_roots = rustls::RootCertStore::empty();
    let (front_proxy_ca, _, _) = front_proxy();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(front_proxy_ca.as_bytes()) {
        client_roots.add(cert.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(client_roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let openapi_rev = Arc::new(AtomicUsize::new(1));
    let app = extension_routes(openapi_rev.clone());
    let task = tokio::spawn(async move {
        // Connections live in this set, so aborting the task closes them too.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            connections.spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // The CN of the (verified) client certificate, as a request-header
                // authenticator checks it against `requestheader-allowed-names`.
                let cn = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(|der| subject_cn(der))
                    .unwrap_or_default();
                let service = hyper_util::service::TowerToHyperService::new(
                    app.layer(axum::Extension(ClientCn(cn))),
                );
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    Extension {
        ca_pem,
        port,
        task,
        openapi_rev,
    }
}

/// A server whose background work (registration, availability) runs, presenting the
/// front-proxy client certificate to backends.
async fn running_app() -> axum::Router {
    running_app_with(true).await
}

async fn running_app_with(client_certificate: bool) -> axum::Router {
    let store = MemoryStore::new();
    let (api, background) = Api::new(store).unwrap();
    api.bootstrap().await.unwrap();
    if client_certificate {
        let (_, cert, key) = front_proxy();
        api.aggregator.set_client_identity(cert, key).unwrap();
    }
    let api = Arc::new(api);
    tokio::spawn(api.clone().run_background(background));
    router(Arc::new(Server {
        api,
        openapi: Default::default(),
        admin_tokens: vec![TOKEN.into()],
        address: "127.0.0.1:6443".into(),
    }))
}

/// The `Available` condition of an APIService, once `want` says it is what the test waits
/// for (or the last one seen, after 30 s).
async fn wait_condition(app: &axum::Router, name: &str, want: impl Fn(&Value) -> bool) -> Value {
    let url = format!("/apis/apiregistration.k8s.io/v1/apiservices/{name}");
    let mut last = Value::Null;
    for _ in 0..300 {
        let (code, obj) = call(app, "GET", &url, None).await;
        if code == StatusCode::OK {
            last = obj["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Available"))
                .cloned()
                .unwrap_or(Value::Null);
            if want(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("APIService {name} never reached the wanted condition; last: {last}");
}

fn endpoints(port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Endpoints",
           "metadata": {"name": "metrics-server", "namespace": "kube-system"},
           "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                        "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]})
}

async fn register_extension(app: &axum::Router, ext: &Extension) {
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "metrics-server", "namespace": "kube-system"},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": ext.port}]}});
    let (code, body) = call(
        app,
        "POST",
        "/api/v1/namespaces/kube-system/services",
        Some(service),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, body) = call(
        app,
        "POST",
        "/api/v1/namespaces/kube-system/endpoints",
        Some(endpoints(ext.port)),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let ca = base64::engine::general_purpose::STANDARD.encode(&ext.ca_pem);
    let api_service = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1.metrics.example.com"},
        "spec": {"group": GROUP, "version": "v1", "groupPriorityMinimum": 100, "versionPriority": 100,
                 "caBundle": ca,
                 "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443}}});
    let (code, body) = call(
        app,
        "POST",
        "/apis/apiregistration.k8s.io/v1/apiservices",
        Some(api_service),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
}

fn remote_group(doc: &Value) -> Option<Value> {
    doc["items"]
        .as_array()?
        .iter()
        .find(|i| i["metadata"]["name"] == GROUP)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_group_versions_are_listed_as_local_apiservices() {
    let app = running_app().await;
    let apps = wait_condition(&app, "v1.apps", |c| c["status"] == "True").await;
    assert_eq!(apps["reason"], "Local");
    assert_eq!(apps["message"], "Local APIServices are always available");
    let (_, core) = call(
        &app,
        "GET",
        "/apis/apiregistration.k8s.io/v1/apiservices/v1.",
        None,
    )
    .await;
    assert_eq!(core["spec"]["groupPriorityMinimum"], 18000);
    assert_eq!(core["spec"]["versionPriority"], 1);
    assert!(core["spec"].get("service").is_none());
    assert_eq!(
        core["metadata"]["labels"]["kube-aggregator.kubernetes.io/automanaged"],
        "onstart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_group_versions_come_and_go_as_automanaged_apiservices() {
    let app = running_app().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.stuff.example.com"},
        "spec": {"group": "stuff.example.com", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let (code, body) = call(
        &app,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        Some(crd),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let c = wait_condition(&app, "v1.stuff.example.com", |c| c["status"] == "True").await;
    assert_eq!(c["reason"], "Local");
    let url = "/apis/apiregistration.k8s.io/v1/apiservices/v1.stuff.example.com";
    let (_, obj) = call(&app, "GET", url, None).await;
    assert_eq!(
        obj["metadata"]["labels"]["kube-aggregator.kubernetes.io/automanaged"],
        "true"
    );
    assert_eq!(obj["spec"]["groupPriorityMinimum"], 1000);
    assert_eq!(obj["spec"]["versionPriority"], 100);
    let (code, _) = call(
        &app,
        "DELETE",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.stuff.example.com",
        None,
    )
    .await;
    assert!(code.is_success());
    for _ in 0..100 {
        if call(&app, "GET", url, None).await.0 == StatusCode::NOT_FOUND {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the CRD's APIService outlived the CRD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_api_server_is_proxied_discovered_and_seen_going_away() {
    let app = running_app().await;
    let ext = start_extension().await;
    register_extension(&app, &ext).await;

    let available = wait_condition(&app, "v1.metrics.example.com", |c| c["status"] == "True").await;
    assert_eq!(available["reason"], "Passed");
    assert_eq!(available["message"], "all checks passed");

    // The list goes through, as the aggregator's user, without the caller's credentials.
    let (code, list) = call(
        &app,
        "GET",
        "/apis/metrics.example.com/v1/namespaces/default/widgets?limit=5",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{list}");
    assert_eq!(list["kind"], "WidgetList");
    let seen = &list["items"][0]["seen"];
    assert_eq!(seen["user"], json!(["kubernetes-admin"]));
    assert_eq!(
        seen["groups"],
        json!(["system:masters", "system:authenticated"])
    );
    assert_eq!(seen["authorization"], json!([]));
    assert_eq!(seen["query"], "limit=5");
    assert_eq!(seen["client_cn"], "front-proxy-client");

    // A watch is streamed through as the backend writes it.
    let events = watch_events(
        &app,
        "/apis/metrics.example.com/v1/namespaces/default/widgets?watch=true",
    )
    .await;
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["object"]["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["w0", "w1"]);

    // Legacy discovery: the group list, the group, and the (proxied) resource list.
    let (_, groups) = call(&app, "GET", "/apis", None).await;
    let group = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == GROUP)
        .cloned()
        .expect("the remote group is listed");
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        "metrics.example.com/v1"
    );
    let (code, doc) = call(&app, "GET", "/apis/metrics.example.com", None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(doc["kind"], "APIGroup");
    assert_eq!(doc["versions"][0]["version"], "v1");
    let (_, resources) = call(&app, "GET", "/apis/metrics.example.com/v1", None).await;
    assert_eq!(resources["resources"][0]["name"], "widgets");

    // Aggregated discovery, both versions, with the remote resources and Current.
    for accept in [V2, V2BETA1] {
        let (code, doc) = call_with(&app, "GET", "/apis", None, accept).await;
        assert_eq!(code, StatusCode::OK);
        let item = remote_group(&doc).expect("the remote group is in aggregated discovery");
        let version = &item["versions"][0];
        assert_eq!(version["version"], "v1");
        assert_eq!(version["freshness"], "Current");
        assert_eq!(version["resources"][0]["resource"], "widgets");
        assert_eq!(version["resources"][0]["scope"], "Namespaced");
        assert_eq!(version["resources"][0]["shortNames"], json!(["wd"]));
    }

    // The backend stops: the discovery check fails, requests get 503, discovery is Stale.
    ext.task.abort();
    let down = wait_condition(&app, "v1.metrics.example.com", |c| c["status"] == "False").await;
    assert_eq!(down["reason"], "FailedDiscoveryCheck");
    assert!(
        down["message"]
            .as_str()
            .unwrap()
            .starts_with("failing or missing response from https://127.0.0.1:"),
        "{down}"
    );
    let (code, _, body) = raw(
        &app,
        "GET",
        "/apis/metrics.example.com/v1/namespaces/default/widgets",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(String::from_utf8_lossy(&body), "service unavailable\n");
    let (_, doc) = call_with(&app, "GET", "/apis", None, V2).await;
    let item = remote_group(&doc).expect("a known group stays listed while down");
    assert_eq!(item["versions"][0]["freshness"], "Stale");

    // Its endpoints lose their addresses: MissingEndpoints.
    let mut empty = endpoints(ext.port);
    empty.as_object_mut().unwrap().remove("subsets");
    let (code, body) = call(
        &app,
        "PUT",
        "/api/v1/namespaces/kube-system/endpoints/metrics-server",
        Some(empty),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let missing = wait_condition(&app, "v1.metrics.example.com", |c| {
        c["reason"] == "MissingEndpoints"
    })
    .await;
    assert_eq!(
        missing["message"],
        r#"endpoints for service/metrics-server in "kube-system" have no addresses with port name "https""#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_bundle_passes_the_check_but_is_refused_by_the_proxy() {
    let app = running_app().await;
    let ext = start_extension().await;
    let other = start_extension().await;
    register_extension(
        &app,
        &Extension {
            ca_pem: other.ca_pem.clone(),
            port: ext.port,
            task: tokio::spawn(async {}),
            openapi_rev: ext.openapi_rev.clone(),
        },
    )
    .await;
    // Upstream's availability probe never verifies the backend's certificate...
    wait_condition(&app, "v1.metrics.example.com", |c| c["status"] == "True").await;
    // ...but the proxy does, against the caBundle.
    let req = Request::builder()
        .uri("/apis/metrics.example.com/v1/namespaces/default/widgets")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("certificate"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_front_proxy_certificate_the_extension_refuses_the_aggregator() {
    let app = running_app_with(false).await;
    let ext = start_extension().await;
    register_extension(&app, &ext).await;
    let c = wait_condition(&app, "v1.metrics.example.com", |c| {
        c["reason"] == "FailedDiscoveryCheck"
    })
    .await;
    assert_eq!(c["status"], "False");
}

/// The `serverRelativeURL` `/openapi/v3` lists for the remote group-version, once there is
/// one that `want` accepts.
async fn remote_openapi_url(app: &axum::Router, want: impl Fn(&str) -> bool) -> String {
    let mut last = Value::Null;
    for _ in 0..300 {
        let (code, root) = call(app, "GET", "/openapi/v3", None).await;
        assert_eq!(code, StatusCode::OK);
        last = root["paths"]["apis/metrics.example.com/v1"].clone();
        if let Some(url) = last["serverRelativeURL"].as_str().filter(|u| want(u)) {
            return url.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/openapi/v3 never listed the wanted remote document; last: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_v3_of_an_extension_api_server_is_listed_and_served() {
    let app = running_app().await;
    let ext = start_extension().await;
    register_extension(&app, &ext).await;
    wait_condition(&app, "v1.metrics.example.com", |c| c["status"] == "True").await;

    let first = remote_openapi_url(&app, |_| true).await;
    assert!(
        first.starts_with("/openapi/v3/apis/metrics.example.com/v1?hash="),
        "{first}"
    );
    // Built-in group-versions are still listed beside it.
    let (_, root) = call(&app, "GET", "/openapi/v3", None).await;
    assert!(root["paths"]["apis/apps/v1"]["serverRelativeURL"].is_string());

    let (code, doc) = call(&app, "GET", &first, None).await;
    assert_eq!(code, StatusCode::OK, "{doc}");
    assert_eq!(doc["info"]["version"], "rev-1");
    let widget = &doc["components"]["schemas"]["com.example.metrics.v1.Widget"];
    assert_eq!(widget["properties"]["size"]["type"], "integer");

    // The backend's document changes: the listed hash does, and the new one is served.
    ext.openapi_rev.store(2, Ordering::Relaxed);
    let second = remote_openapi_url(&app, |u| u != first).await;
    let (code, doc) = call(&app, "GET", &second, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(doc["info"]["version"], "rev-2");

    // It goes away: no longer listed, and its document is not served.
    ext.task.abort();
    wait_condition(&app, "v1.metrics.example.com", |c| c["status"] == "False").await;
    let (_, root) = call(&app, "GET", "/openapi/v3", None).await;
    assert!(
        root["paths"].get("apis/metrics.example.com/v1").is_none(),
        "{root}"
    );
    let (code, _) = call(&app, "GET", "/openapi/v3/apis/metrics.example.com/v1", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
