//! End-to-end: `skiff server --datastore-endpoint` on Debian's etcd started by the test.
//! The article's objects go in through kubectl, a watch sees changes, a `kill -9` of the
//! server loses no acknowledged write and changes no resourceVersion, Secrets are sealed in
//! etcd, and a watch from a revision etcd compacted is 410 Gone. With etcd gone, requests
//! fail fast with upstream's 504 Timeout, and service resumes when etcd is back.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{acknowledged_creates, seed_manifest, Cluster};
use skiff_etcd::testing::EtcdProcess;

/// `kind/namespace/name` → resourceVersion of everything listed.
fn versions(c: &Cluster, kinds: &str) -> BTreeMap<String, String> {
    let list = c.json(&["get", kinds, "-A"]);
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| {
            let m = &o["metadata"];
            (
                format!(
                    "{}/{}/{}",
                    o["kind"].as_str().unwrap_or_default(),
                    m["namespace"].as_str().unwrap_or_default(),
                    m["name"].as_str().unwrap_or_default()
                ),
                m["resourceVersion"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn skiff_on_etcd_serves_watches_survives_kill_9_and_answers_410_after_compaction() {
    let Some(etcd) = EtcdProcess::start_or_skip() else {
        return;
    };
    let mut c = Cluster::start_with(&[
        "--datastore-endpoint",
        etcd.endpoint(),
        // Short, so the test sees a compaction; kube-apiserver's default is 5m.
        "--etcd-compaction-interval",
        "1s",
    ]);

    let first = c.json(&["create", "configmap", "first", "--from-literal=k=v"]);
    let old = first["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_owned();

    // A watch, as `kubectl get -w` runs it, sees changes (touched until it has started).
    let mut watch = c
        .kubectl_cmd(&["get", "configmaps", "--watch-only", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let (seen_tx, seen) = std::sync::mpsc::channel();
    let out = watch.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = seen_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = (1..)
        .find_map(|round| {
            let touched = format!("touched={round}");
            c.kubectl(&["annotate", "--overwrite", "configmap", "first", &touched]);
            let line = seen.recv_timeout(Duration::from_millis(200)).ok();
            assert!(Instant::now() < deadline, "the watch saw nothing");
            line
        })
        .expect("a line");
    assert_eq!(line, "configmap/first");

    // The article's objects.
    for manifest in [
        "03-deployment.yaml",
        "04-service.yaml",
        "08-configmap.yaml",
        "09-secret.yaml",
    ] {
        c.kubectl(&["apply", "-f", seed_manifest(manifest).to_str().unwrap()]);
    }
    // The deployment controller acts on what etcd holds: its ReplicaSet appears.
    wait_until("the Deployment has a ReplicaSet", || {
        !c.kubectl(&["get", "rs", "-o", "name"]).trim().is_empty()
    });
    // Secrets reach etcd sealed by encryption at rest, as they reach SQLite.
    let secrets = runtime().block_on(async {
        let mut options = skiff_etcd::EtcdOptions::new(vec![etcd.endpoint().to_owned()]);
        options.prefix = "/registry/secrets/".into();
        options.compaction_interval = None;
        let store = skiff_etcd::EtcdStore::connect(options).await.unwrap();
        skiff_store::Store::list(store.as_ref(), "/registry/secrets/", None, None).unwrap()
    });
    assert!(!secrets.items.is_empty(), "no Secret in etcd");
    for kv in &secrets.items {
        assert!(
            kv.value.starts_with(b"k8s:enc:secretbox:v1:"),
            "{} is not sealed in etcd",
            kv.key
        );
    }

    // Compaction runs every second, keeping one interval: the first write's revision leaves
    // etcd and the watch cache, and a watch from it is upstream's 410 Gone.
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old}&timeoutSeconds=1"
    );
    wait_until("a watch from a compacted revision is 410 Gone", || {
        let out = c.kubectl(&["get", "--raw", &path]);
        out.contains("\"code\":410")
    });
    let out = c.kubectl(&["get", "--raw", &path]);
    let event: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("one event")).expect("JSON event");
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["reason"], "Expired");
    assert!(
        event["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version"),
        "{event}"
    );

    // A stream of creates, the server killed in the middle of it.
    let apply = c.apply_configmaps(300);
    wait_until("creates land", || {
        c.kubectl(&["get", "cm", "-o", "name"]).lines().count() > 40
    });
    let before = versions(&c, "configmaps,secrets,services,deployments");
    c.crash();
    let _ = watch.kill();
    let _ = watch.wait();
    let acknowledged = acknowledged_creates(apply);

    // The same server restarted on the same etcd: everything is there, unchanged.
    c.boot();
    let after = versions(&c, "configmaps,secrets,services,deployments");
    for (object, version) in &before {
        assert_eq!(
            after.get(object),
            Some(version),
            "{object} changed across the restart"
        );
    }
    for name in &acknowledged {
        assert!(
            after.contains_key(&format!("ConfigMap/default/{name}")),
            "acknowledged {name} lost after kill -9"
        );
    }
    // The Secret opens again with the data dir's key.
    assert!(!c
        .kubectl(&[
            "get",
            "secret",
            "collector-secrets",
            "-o",
            "jsonpath={.data}"
        ])
        .trim()
        .is_empty());
}

/// The code and JSON Status of a failing raw request (`kubectl ... --raw`), from kubectl's
/// `-v=8` log.
fn raw_status(c: &Cluster, args: &[&str], stdin: Option<&str>) -> (String, serde_json::Value) {
    let mut all = args.to_vec();
    all.push("-v=8");
    let out = c.kubectl_output(&all, stdin);
    assert!(!out.status.success(), "kubectl {args:?} succeeded");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = log
        .lines()
        .find_map(|l| l.split("\"Response\" status=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no response status in:\n{log}"))
        .to_owned();
    // The body is logged on the line after `"Response Body" body=<`.
    let mut lines = log.lines();
    lines
        .find(|l| l.contains("\"Response Body\""))
        .unwrap_or_else(|| panic!("no response body in:\n{log}"));
    let body = lines.next().unwrap_or_default().trim();
    (code, serde_json::from_str(body).expect("a Status body"))
}

#[test]
fn without_etcd_requests_fail_fast_with_504_and_service_resumes_when_it_returns() {
    let Some(mut etcd) = EtcdProcess::start_or_skip() else {
        return;
    };
    let c = Cluster::start_with(&["--datastore-endpoint", etcd.endpoint()]);
    c.kubectl(&["create", "configmap", "before", "--from-literal=k=v"]);

    etcd.kill();
    let started = Instant::now();
    let create = ["create", "configmap", "during", "--from-literal=k=v"];
    let err = c.kubectl_err(&create, None);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "a create took {took:?}");
    eprintln!("with etcd down, kubectl create failed after {took:?}");
    let upstream = "request did not complete within requested timeout - context deadline exceeded";
    assert_eq!(
        err.trim(),
        format!("error: failed to create configmap: Timeout: {upstream}")
    );
    let (code, status) = raw_status(
        &c,
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
            "-f",
            "-",
        ],
        Some(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"raw"}}"#),
    );
    assert!(code.starts_with("504 Gateway Timeout"), "{code}");
    assert_eq!(
        status,
        serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": format!("Timeout: {upstream}"),
            "reason": "Timeout",
            "details": {},
            "code": 504,
        })
    );
    // A list that must be current is not answered from a cache cut off from etcd...
    wait_until("a consistent list is refused", || {
        let out = c.kubectl_output(&["get", "configmaps"], None);
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr)
                .contains(&format!("Error from server (Timeout): Timeout: {upstream}"))
    });
    // ...one at any revision is, from what the cache holds.
    let any = c.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?resourceVersion=0",
    ]);
    assert!(any.contains("\"before\""), "{any}");

    etcd.restart();
    let back = Instant::now();
    wait_until("a create succeeds again", || {
        c.kubectl_output(&create, None).status.success()
    });
    eprintln!(
        "creates succeed again {:?} after etcd is healthy",
        back.elapsed()
    );
    let names = c.kubectl(&["get", "configmaps", "-o", "name"]);
    for name in ["configmap/before", "configmap/during"] {
        assert!(names.lines().any(|l| l == name), "{name} missing: {names}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
