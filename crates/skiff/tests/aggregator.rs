//! End-to-end: aggregated APIs with the real `kubectl`: the Local APIServices of a fresh
//! server, and an extension API server (a small Python HTTPS server) reached through a
//! registered APIService, which (as metrics-server does) accepts only clients with a
//! certificate from the request-header CA skiff publishes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Cluster;

/// Serves `/apis/metrics.example.com/v1` discovery, its OpenAPI v3 document, and a list of
/// one Widget that says who the aggregator told it the caller is and which client
/// certificate it presented. Clients need a certificate signed by the CA in `argv[3]`.
const EXTENSION: &str = r##"
import json, ssl, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/apis/metrics.example.com/v1":
            body = {"kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": "metrics.example.com/v1",
                    "resources": [{"name": "widgets", "singularName": "widget", "namespaced": True,
                                   "kind": "Widget", "verbs": ["get", "list"]}]}
        elif path == "/openapi/v3/apis/metrics.example.com/v1":
            # kubectl explain finds the kind from an operation on the resource's path.
            op = {"x-kubernetes-group-version-kind":
                      {"group": "metrics.example.com", "version": "v1", "kind": "Widget"},
                  "responses": {"200": {"description": "OK", "content": {"application/json": {
                      "schema": {"$ref": "#/components/schemas/com.example.metrics.v1.Widget"}}}}}}
            body = {"openapi": "3.0.0", "info": {"title": "Metrics", "version": "v1"},
                    "paths": {"/apis/metrics.example.com/v1/namespaces/{namespace}/widgets": {"get": op}},
                    "components": {"schemas": {"com.example.metrics.v1.Widget": {
                        "type": "object", "description": "A Widget measures things.",
                        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                       "metadata": {"type": "object"},
                                       "size": {"type": "integer", "description": "How big the widget is."}},
                        "x-kubernetes-group-version-kind": [
                            {"group": "metrics.example.com", "version": "v1", "kind": "Widget"}]}}}}
        elif path.endswith("/widgets"):
            subject = dict(x[0] for x in self.connection.getpeercert()["subject"])
            seen = {"user": self.headers.get("X-Remote-User", ""),
                    "groups": ",".join(self.headers.get_all("X-Remote-Group") or []),
                    "client-cn": subject.get("commonName", "")}
            body = {"kind": "WidgetList", "apiVersion": "metrics.example.com/v1", "metadata": {},
                    "items": [{"kind": "Widget", "apiVersion": "metrics.example.com/v1",
                               "metadata": {"name": "w1", "namespace": "default",
                                            "creationTimestamp": "2024-01-01T00:00:00Z",
                                            "annotations": seen}}]}
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(sys.argv[3])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"##;

/// The Python extension server, killed on drop.
struct Extension {
    child: Child,
    port: u16,
}

impl Drop for Extension {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_extension(dir: &std::path::Path) -> Extension {
    let (cert, key) = (dir.join("ext.crt"), dir.join("ext.key"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=metrics-server.kube-system.svc"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success());
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(EXTENSION)
        .arg(&cert)
        .arg(&key)
        // The request-header CA skiff publishes (its cluster CA).
        .arg(dir.join("pki/ca.crt"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("the extension server prints its port");
    let port = line.trim().parse().expect("a port number");
    Extension { child, port }
}

/// Retries `f` until it returns `Some`, for up to 30 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The words of the row of `kubectl get apiservices` for `name`.
fn apiservice_row(c: &Cluster, name: &str) -> Option<Vec<String>> {
    let table = c.kubectl(&["get", "apiservices"]);
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|words| words.first().map(String::as_str) == Some(name))
}

#[test]
fn kubectl_lists_local_apiservices_and_reaches_an_extension_api_server() {
    let c = Cluster::start();
    // The aggregator's client certificate, and what extension servers are told to accept.
    {
        use std::os::unix::fs::PermissionsExt;
        let pki = c.dir.path().join("pki");
        assert!(pki.join("front-proxy-client.crt").exists());
        let mode = std::fs::metadata(pki.join("front-proxy-client.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let cm = c.json(&[
            "get",
            "configmap",
            "-n",
            "kube-system",
            "extension-apiserver-authentication",
        ]);
        assert_eq!(
            cm["data"]["requestheader-allowed-names"],
            r#"["front-proxy-client"]"#
        );
        assert_eq!(
            cm["data"]["requestheader-client-ca-file"],
            std::fs::read_to_string(pki.join("ca.crt")).unwrap()
        );
    }
    let header = c.kubectl(&["get", "apiservices"]);
    let header: Vec<&str> = header.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SERVICE", "AVAILABLE", "AGE"]);
    for name in [
        "v1.",
        "v1.apps",
        "v1.batch",
        "v2.autoscaling",
        "v1.apiextensions.k8s.io",
    ] {
        let row = eventually(name, || {
            apiservice_row(&c, name).filter(|r| r.get(2).map(String::as_str) == Some("True"))
        });
        assert_eq!(row[1], "Local", "{row:?}");
    }

    let ext = start_extension(c.dir.path());
    let manifest = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: metrics-server, namespace: kube-system}}
spec:
  ports: [{{name: https, port: 443, targetPort: {port}}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: metrics-server, namespace: kube-system}}
subsets:
- addresses: [{{ip: 127.0.0.1}}]
  ports: [{{name: https, port: {port}}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1.metrics.example.com}}
spec:
  group: metrics.example.com
  version: v1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {{namespace: kube-system, name: metrics-server, port: 443}}
"#,
        port = ext.port
    );
    c.kubectl_in(&["apply", "-f", "-"], &manifest);
    c.kubectl(&[
        "wait",
        "--for=condition=Available",
        "--timeout=30s",
        "apiservice/v1.metrics.example.com",
    ]);
    let row = apiservice_row(&c, "v1.metrics.example.com").unwrap();
    assert_eq!(row[1..3], ["kube-system/metrics-server", "True"], "{row:?}");

    let raw = c.kubectl(&[
        "get",
        "--raw",
        "/apis/metrics.example.com/v1/namespaces/default/widgets",
    ]);
    let list: serde_json::Value = serde_json::from_str(&raw).expect("JSON from the extension");
    let seen = &list["items"][0]["metadata"]["annotations"];
    assert_eq!(seen["user"], "kubernetes-admin", "{raw}");
    assert_eq!(
        seen["groups"], "system:masters,system:authenticated",
        "{raw}"
    );
    assert_eq!(seen["client-cn"], "front-proxy-client", "{raw}");

    // kubectl finds the remote resource through discovery.
    let names = eventually("widgets in discovery", || {
        let out = c.kubectl_output(&["get", "widgets", "-n", "default", "-o", "name"], None);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(names.trim(), "widget.metrics.example.com/w1");

    // kubectl explains the remote kind from the OpenAPI v3 document skiff lists for it.
    let explained = eventually("kubectl explain widgets", || {
        let out = c.kubectl_output(&["explain", "widgets.size"], None);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert!(explained.contains("How big the widget is."), "{explained}");

    // It stops: the APIService says why, and kubectl gets 503.
    drop(ext);
    let row = eventually("the APIService to go unavailable", || {
        apiservice_row(&c, "v1.metrics.example.com")
            .filter(|r| r.get(2).map(String::as_str) == Some("False"))
    });
    assert_eq!(row[3], "(FailedDiscoveryCheck)", "{row:?}");
    let err = c.kubectl_err(
        &[
            "get",
            "--raw",
            "/apis/metrics.example.com/v1/namespaces/default/widgets",
        ],
        None,
    );
    assert!(
        err.contains("ServiceUnavailable") || err.contains("503"),
        "{err}"
    );
}
