//! End-to-end: kubectl's typed clients ask for protobuf (`Accept:
//! application/vnd.kubernetes.protobuf,application/json`) and get it, as from kube-apiserver
//! (decision 0026): creates, gets, lists (describe), subresources (token) and errors.

mod common;

use common::Cluster;

/// The response Content-Types kubectl logged at `-v=8`.
fn response_types(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("Content-Type: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn kubectl_typed_clients_get_protobuf_answers_they_decode() {
    let c = Cluster::start();
    // kubectl create: protobuf body, protobuf answer, printed back as the object.
    let out = c.kubectl_output(
        &[
            "create",
            "configmap",
            "cfg",
            "--from-literal=LOG=debug",
            "-o",
            "json",
            "-v=8",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("Accept: application/vnd.kubernetes.protobuf,application/json"),
        "{log}"
    );
    let types = response_types(&log);
    assert!(
        types
            .last()
            .is_some_and(|t| t == "application/vnd.kubernetes.protobuf"),
        "response types {types:?}"
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let got = c.json(&["get", "cm", "cfg"]);
    assert_eq!(created["data"], got["data"]);
    assert_eq!(created["metadata"]["uid"], got["metadata"]["uid"]);
    assert_eq!(
        created["metadata"]["creationTimestamp"],
        got["metadata"]["creationTimestamp"]
    );

    // A deployment: nested pod template, IntOrString, quantities and defaults survive.
    let created: serde_json::Value = serde_json::from_str(&c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=2",
        "--port=80",
        "-o",
        "json",
    ]))
    .expect("json");
    let got = c.json(&["get", "deploy", "web"]);
    assert_eq!(created["spec"], got["spec"]);

    // describe reads through the typed clientset (get + event list, protobuf).
    let described = c.kubectl(&["describe", "deployment", "web"]);
    assert!(
        described.contains("Replicas:               2 desired"),
        "{described}"
    );
    assert!(described.contains("nginx:1.27"), "{described}");

    // A subresource answer (TokenRequest) in protobuf.
    let token = c.kubectl(&["create", "token", "default"]);
    assert!(token.trim().starts_with("eyJ"), "{token}");

    // A Status error in protobuf still reads as upstream's message.
    let err = c.kubectl_err(&["create", "configmap", "cfg", "--from-literal=a=b"], None);
    assert!(err.contains(r#"configmaps "cfg" already exists"#), "{err}");
}

/// An object over etcd's 1.5 MiB (a body under the 3 MiB request limit) is refused with
/// 413 and nothing is stored; one just under it is stored. A ControllerRevision's `data`
/// has no size validation of its own (a ConfigMap's 1 MiB check would answer first).
#[test]
fn objects_larger_than_etcd_stores_are_refused_with_413() {
    let c = Cluster::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = |name: &str, bytes: usize| {
        let path = dir.path().join(name);
        let obj = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": name}, "revision": 1,
            "data": {"blob": "x".repeat(bytes)}
        });
        std::fs::write(&path, obj.to_string()).expect("write");
        path
    };
    let big = manifest("big", 2 * 1024 * 1024);
    let err = c.kubectl_err(&["create", "-f", big.to_str().expect("utf-8")], None);
    assert!(
        err.contains("Request entity too large: etcdserver: request is too large"),
        "{err}"
    );
    let missing = c.kubectl_err(&["get", "controllerrevision", "big"], None);
    assert!(missing.contains("NotFound"), "{missing}");
    let fits = manifest("fits", 1024 * 1024);
    c.kubectl(&["create", "-f", fits.to_str().expect("utf-8")]);
}
