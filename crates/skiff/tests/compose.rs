//! `skiff compose`: the article's 12-compose.yaml on a real server, without a node. `up`
//! server-side applies kompose's manifests, kubectl sees them, `down` removes them, and
//! `convert`'s output applies unchanged with `kubectl apply -f -`.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{seed_manifest, Cluster};

fn skiff_compose(cluster: &Cluster, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("compose")
        .args(args)
        .env("KUBECONFIG", cluster.kubeconfig())
        .output()
        .expect("run skiff compose")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The names of the kind's objects kompose labelled in the namespace.
fn names(cluster: &Cluster, kind: &str, namespace: &str) -> Vec<String> {
    let list = cluster.json(&[
        "get",
        kind,
        "-n",
        namespace,
        "-l",
        "io.kompose.service",
        "-o",
        "json",
    ]);
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["metadata"]["name"].as_str().expect("name").to_string())
        .collect()
}

/// What the article's file must become in `namespace`, as kubectl reads it back.
fn assert_converted(cluster: &Cluster, namespace: &str) {
    assert_eq!(
        names(cluster, "deployments", namespace),
        ["collector", "postgres", "redis"]
    );
    assert_eq!(names(cluster, "services", namespace), ["collector"]);
    assert_eq!(
        names(cluster, "persistentvolumeclaims", namespace),
        ["pgdata"]
    );
    let svc = cluster.json(&["get", "service", "collector", "-n", namespace, "-o", "json"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["selector"]["io.kompose.service"], "collector");
    let pg = cluster.json(&[
        "get",
        "deployment",
        "postgres",
        "-n",
        namespace,
        "-o",
        "json",
    ]);
    let container = &pg["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "postgres:16");
    assert_eq!(
        container["env"],
        serde_json::json!([{"name": "POSTGRES_PASSWORD", "value": "events"}])
    );
    assert_eq!(
        pg["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "pgdata"
    );
    let pvc = cluster.json(&["get", "pvc", "pgdata", "-n", namespace, "-o", "json"]);
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "100Mi");
}

#[test]
fn compose_up_down_and_convert() {
    let cluster = Cluster::start();
    let file = seed_manifest("12-compose.yaml");
    let file = file.to_str().expect("utf-8 path");

    let out = skiff_compose(&cluster, &["up", "-f", file]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let stdout = ok(out, "compose up");
    assert!(stdout.contains("deployments/postgres applied"), "{stdout}");
    assert!(stderr.contains("build is not run"), "{stderr}");
    assert_converted(&cluster, "default");
    let dep = cluster.json(&[
        "get",
        "deployment",
        "redis",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    assert_eq!(
        dep["metadata"]["managedFields"][0]["manager"],
        "skiff-compose"
    );
    assert_eq!(dep["metadata"]["managedFields"][0]["operation"], "Apply");
    // A second `up` is a no-op apply, not a conflict.
    ok(
        skiff_compose(&cluster, &["up", "-f", file]),
        "second compose up",
    );

    ok(
        skiff_compose(&cluster, &["down", "-f", file]),
        "compose down",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: Vec<String> = ["deployments", "services", "persistentvolumeclaims"]
            .iter()
            .flat_map(|k| names(&cluster, k, "default"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left after down: {left:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let manifests = ok(skiff_compose(&cluster, &["convert", "-f", file]), "convert");
    cluster.kubectl(&["create", "namespace", "converted"]);
    cluster.kubectl_in(&["apply", "-n", "converted", "-f", "-"], &manifests);
    assert_converted(&cluster, "converted");

    cluster.kubectl(&["create", "namespace", "staging"]);
    ok(
        skiff_compose(&cluster, &["up", "-f", file, "--namespace", "staging"]),
        "compose up --namespace",
    );
    assert_converted(&cluster, "staging");

    let missing = skiff_compose(&cluster, &["convert", "-f", "/nonexistent/compose.yaml"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("reading /nonexistent/compose.yaml"));
}
