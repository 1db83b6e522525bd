//! Test support, not part of skiff: a tiny admission webhook server that the end-to-end
//! test `crates/skiff/tests/webhooks.rs` packages into an image and runs as a pod behind a
//! Service.
//!
//! It listens on HTTPS `0.0.0.0:8443` (`WEBHOOK_LISTEN` overrides; it prints the address it got) with the certificate and
//! key in the PEM files `WEBHOOK_CERT` and `WEBHOOK_KEY` (default `/certs/tls.crt` and
//! `/certs/tls.key`, where a `kubernetes.io/tls` Secret mounted at `/certs` puts them), and
//! answers AdmissionReview v1:
//! - `/validate` denies an object whose `data` has the key `forbidden`, with the message
//!   [`DENIED`]; anything else is allowed.
//! - `/mutate` adds the label `mutated-by: webhook` with a base64 JSONPatch.
//! - `/healthz` answers `ok`.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

/// What `/validate` says when it refuses an object.
const DENIED: &str = "the test webhook refuses data key \"forbidden\"";

/// An AdmissionReview answering `review` with `response` (its uid filled in).
fn answer(review: &Value, mut response: Value) -> Json<Value> {
    response["uid"] = review["request"]["uid"].clone();
    Json(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }))
}

async fn validate(Json(review): Json<Value>) -> Json<Value> {
    let object = &review["request"]["object"];
    if object["data"].get("forbidden").is_some() {
        let status = json!({"code": 403, "reason": "Forbidden", "message": DENIED});
        return answer(&review, json!({"allowed": false, "status": status}));
    }
    answer(&review, json!({"allowed": true}))
}

async fn mutate(Json(review): Json<Value>) -> Json<Value> {
    let object = &review["request"]["object"];
    let patch = if object["metadata"]["labels"].is_object() {
        json!([{"op": "add", "path": "/metadata/labels/mutated-by", "value": "webhook"}])
    } else {
        json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "webhook"}}])
    };
    let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
    answer(
        &review,
        json!({"allowed": true, "patchType": "JSONPatch", "patch": patch}),
    )
}

/// The TLS settings from the PEM files named by `WEBHOOK_CERT` and `WEBHOOK_KEY`.
fn tls() -> Result<rustls::ServerConfig, String> {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let (cert, key) = (
        var("WEBHOOK_CERT", "/certs/tls.crt"),
        var("WEBHOOK_KEY", "/certs/tls.key"),
    );
    let certs = CertificateDer::pem_file_iter(&cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("{key}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls()?));
    let app = Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }));
    let listen = std::env::var("WEBHOOK_LISTEN").unwrap_or_else(|_| "0.0.0.0:8443".into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("test-webhook listening on {local}");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = TowerToHyperService::new(app);
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
