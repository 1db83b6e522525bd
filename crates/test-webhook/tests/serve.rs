//! The webhook binary answers AdmissionReviews over TLS. (This test also makes
//! `cargo test --workspace` build the binary that crates/skiff/tests/webhooks.rs packages.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};

struct Server {
    child: Child,
    addr: String,
    ca: CertificateDer<'static>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_test-webhook"))
        .env("WEBHOOK_LISTEN", "127.0.0.1:0")
        .env("WEBHOOK_CERT", dir.path().join("tls.crt"))
        .env("WEBHOOK_KEY", dir.path().join("tls.key"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("the listening address")
        .to_string();
    Server {
        child,
        addr,
        ca: cert.der().clone(),
        _dir: dir,
    }
}

/// POSTs an AdmissionReview of `object` to `path`; the response part of the answer.
fn review(server: &Server, path: &str, object: Value) -> Value {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect(&server.addr).unwrap();
    let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u-1", "object": object},
    })
    .to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let answer: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "u-1");
    answer["response"].clone()
}

#[test]
fn validates_and_mutates_over_tls() {
    let server = start();
    let cm = |data: Value| json!({"kind": "ConfigMap", "metadata": {"name": "a"}, "data": data});

    let denied = review(&server, "/validate", cm(json!({"forbidden": "x"})));
    assert_eq!(denied["allowed"], false);
    assert_eq!(
        denied["status"]["message"],
        "the test webhook refuses data key \"forbidden\""
    );
    assert_eq!(denied["status"]["code"], 403);
    let allowed = review(&server, "/validate", cm(json!({"fine": "x"})));
    assert_eq!(allowed["allowed"], true);

    let mutated = review(&server, "/mutate", cm(json!({})));
    assert_eq!(mutated["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(mutated["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch,
        json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "webhook"}}])
    );
}
