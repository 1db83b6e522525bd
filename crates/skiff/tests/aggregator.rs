//! End-to-end: aggregated APIs with the real `kubectl`: the Local APIServices of a fresh
//! server, and an extension API server (a small Python HTTPS server) reached through a
//! registered APIService.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Cluster;

/// Serves `/apis/metrics.example.com/v1` discovery and a list of one Widget that says who
/// the aggregator told it the caller is.
const EXTENSION: &str = r#"
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
        elif path.endswith("/widgets"):
            seen = {"user": self.headers.get("X-Remote-User", ""),
                    "groups": ",".join(self.headers.get_all("X-Remote-Group") or [])}
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
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

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

    // kubectl finds the remote resource through discovery.
    let names = eventually("widgets in discovery", || {
        let out = c.kubectl_output(&["get", "widgets", "-n", "default", "-o", "name"], None);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(names.trim(), "widget.metrics.example.com/w1");

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
