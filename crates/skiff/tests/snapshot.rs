//! End-to-end: `skiff snapshot save` while the server serves, `skiff snapshot restore` with
//! it stopped, on SQLite and on Debian's etcd; `skiff datastore migrate` from SQLite to etcd
//! and back. The state the snapshot saw comes back through kubectl, later changes are gone,
//! Secrets are never in clear text in a snapshot, and a restore or move refuses to run
//! beside a server (decision 0053).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{acknowledged_creates, seed_manifest, Cluster};
use skiff_etcd::testing::EtcdProcess;

/// Leader election of a server on etcd, slower than the 5 s default: a leader that misses
/// its renew deadline exits (decision 0042), and these tests run beside others on loaded
/// machines. A restore's check that no server runs waits twice the lease.
const ELECTION: [&str; 4] = [
    "--leader-elect-lease-duration",
    "15s",
    "--leader-elect-renew-deadline",
    "10s",
];

/// Clear text that must never appear in a snapshot file.
const SECRET: &str = "snapshot-clear-text-3b1f9c";

fn skiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .env_remove("SKIFF_DATA_DIR")
        .output()
        .expect("run skiff")
}

/// The stdout of a skiff command that must succeed.
fn skiff_ok(args: &[&str]) -> String {
    let out = skiff(args);
    assert!(
        out.status.success(),
        "skiff {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The stderr of a skiff command that must fail.
fn skiff_err(args: &[&str]) -> String {
    let out = skiff(args);
    assert!(
        !out.status.success(),
        "skiff {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The article's Deployment, ConfigMap and Secret, and a Secret of the test's own.
fn create_objects(c: &Cluster) {
    for manifest in ["03-deployment.yaml", "08-configmap.yaml", "09-secret.yaml"] {
        c.kubectl(&["apply", "-f", seed_manifest(manifest).to_str().unwrap()]);
    }
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "snap",
        &format!("--from-literal=password={SECRET}"),
    ]);
}

/// Changes after the snapshot: what a restore must undo.
fn change_objects(c: &Cluster) {
    c.kubectl(&["delete", "configmap", "collector-config"]);
    c.kubectl(&["scale", "deployment", "collector", "--replicas=1"]);
    c.kubectl(&["create", "secret", "generic", "later", "--from-literal=k=v"]);
    c.kubectl(&["delete", "secret", "snap"]);
    assert!(c
        .kubectl_err(&["get", "configmap", "collector-config"], None)
        .contains("NotFound"));
}

/// The state at the snapshot, through kubectl.
fn assert_snapshot_state(c: &Cluster) {
    assert_eq!(
        c.kubectl(&[
            "get",
            "deployment",
            "collector",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );
    assert!(!c
        .kubectl(&["get", "configmap", "collector-config", "-o", "name"])
        .trim()
        .is_empty());
    let password = c.kubectl(&["get", "secret", "snap", "-o", "jsonpath={.data.password}"]);
    let decoded = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(password.as_bytes())?;
            child.wait_with_output()
        })
        .expect("base64");
    assert_eq!(String::from_utf8_lossy(&decoded.stdout), SECRET);
    assert!(c
        .kubectl_err(&["get", "secret", "later"], None)
        .contains("NotFound"));
    // Objects made before the snapshot keep working: the controller acts on them.
    c.kubectl(&["get", "deployment", "collector"]);
}

fn assert_no_clear_text(file: &Path) {
    let data = std::fs::read(file).expect("read snapshot");
    assert!(
        !data.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "{} holds the Secret in clear text",
        file.display()
    );
}

fn require_sqlite3() -> bool {
    match Command::new("sqlite3").arg("-version").output() {
        Ok(out) if out.status.success() => true,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("sqlite3 (apt package sqlite3) is needed; CI must run this test")
        }
        _ => {
            eprintln!("skipped: no sqlite3");
            false
        }
    }
}

#[test]
fn sqlite_snapshot_saved_while_serving_restores_the_saved_state() {
    if !require_sqlite3() {
        return;
    }
    let mut c = Cluster::start();
    let data_dir = c.dir.path().to_str().unwrap().to_owned();
    create_objects(&c);
    let snapshots = tempfile::tempdir().unwrap();
    let file = snapshots.path().join("skiff.db");
    let file_arg = file.to_str().unwrap();

    // Saved while writes stream in: the snapshot is one consistent revision of them.
    let apply = c.apply_configmaps(300);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while c
        .kubectl_output(&["get", "configmap", "cm-20", "-o", "name"], None)
        .stdout
        .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "cm-20 never came");
    }
    let out = skiff_ok(&["snapshot", "save", file_arg, "--data-dir", &data_dir]);
    eprintln!("{out}");
    assert!(out.contains("keys at revision"), "{out}");
    let acknowledged = acknowledged_creates(apply);
    assert_eq!(acknowledged.len(), 300);

    // A plain SQLite database anyone can open, 0600, with Secrets sealed.
    let tables = Command::new("sqlite3")
        .arg(&file)
        .arg(".tables")
        .output()
        .expect("sqlite3");
    assert!(tables.status.success());
    let tables = String::from_utf8_lossy(&tables.stdout);
    for table in ["kv", "log", "meta"] {
        assert!(tables.split_whitespace().any(|t| t == table), "{tables}");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_no_clear_text(&file);
    let saved_configmaps: usize = {
        let out = Command::new("sqlite3")
            .arg(&file)
            .arg("SELECT COUNT(*) FROM kv WHERE key LIKE '/registry/configmaps/default/cm-%'")
            .output()
            .expect("sqlite3");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };

    change_objects(&c);
    // Not beside a running server.
    let err = skiff_err(&["snapshot", "restore", file_arg, "--data-dir", &data_dir]);
    assert!(err.contains("stop the server before a restore"), "{err}");
    assert_eq!(
        c.kubectl(&[
            "get",
            "deployment",
            "collector",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "1"
    );
    let latest_rv = list_revision(&c);
    c.terminate();
    // A file that is no snapshot is refused, and changes nothing.
    let bogus = snapshots.path().join("bogus");
    std::fs::write(&bogus, "not a database").unwrap();
    let err = skiff_err(&[
        "snapshot",
        "restore",
        bogus.to_str().unwrap(),
        "--data-dir",
        &data_dir,
    ]);
    assert!(err.contains("not an SQLite database"), "{err}");
    let out = skiff_ok(&["snapshot", "restore", file_arg, "--data-dir", &data_dir]);
    eprintln!("{out}");
    c.boot();
    assert_snapshot_state(&c);
    // Every ConfigMap the snapshot held, and only those.
    let listed = c.json(&["get", "configmaps"]);
    let streamed = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["metadata"]["name"].as_str().unwrap().starts_with("cm-"))
        .count();
    assert_eq!(streamed, saved_configmaps);
    assert!(
        (21..=300).contains(&saved_configmaps),
        "the snapshot missed acknowledged ConfigMaps: {saved_configmaps}"
    );
    // Revisions go on past every one clients saw before the restore.
    let rv = list_revision(&c);
    assert!(rv > latest_rv, "{rv} <= {latest_rv}");
}

/// The revision a list of ConfigMaps is at.
fn list_revision(c: &Cluster) -> i64 {
    let list = c.kubectl(&["get", "--raw", "/api/v1/configmaps?limit=1"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn etcd_snapshot_saved_while_serving_restores_the_saved_state() {
    let Some(etcd) = EtcdProcess::start_or_skip() else {
        return;
    };
    let endpoint = etcd.endpoint().to_owned();
    let mut args = vec!["--datastore-endpoint", &endpoint];
    args.extend(ELECTION);
    let mut c = Cluster::start_with(&args);
    create_objects(&c);
    let snapshots = tempfile::tempdir().unwrap();
    let file = snapshots.path().join("etcd.snapshot");
    let file_arg = file.to_str().unwrap();
    let out = skiff_ok(&[
        "snapshot",
        "save",
        file_arg,
        "--datastore-endpoint",
        &endpoint,
    ]);
    eprintln!("{out}");
    assert!(out.contains("etcd's snapshot"), "{out}");
    assert_no_clear_text(&file);

    change_objects(&c);
    // Not while a server writes to that etcd.
    let restore = [
        "snapshot",
        "restore",
        file_arg,
        "--datastore-endpoint",
        &endpoint,
    ];
    let err = skiff_err(&restore);
    assert!(err.contains("stop every server on it first"), "{err}");
    assert_eq!(
        c.kubectl(&[
            "get",
            "deployment",
            "collector",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "1"
    );
    c.terminate();
    let out = skiff_ok(&[
        "snapshot",
        "restore",
        file_arg,
        "--datastore-endpoint",
        &endpoint,
    ]);
    eprintln!("{out}");
    assert!(out.contains("Restored"), "{out}");
    c.boot();
    assert_snapshot_state(&c);
}

#[test]
fn migrate_moves_a_cluster_from_sqlite_to_etcd_and_back() {
    let Some(etcd) = EtcdProcess::start_or_skip() else {
        return;
    };
    let endpoint = etcd.endpoint().to_owned();
    let host = endpoint
        .strip_prefix("http://")
        .expect("a plain-HTTP test etcd")
        .to_owned();
    let to_etcd = format!("etcd://{host}");
    let mut c = Cluster::start();
    let data_dir = c.dir.path().to_str().unwrap().to_owned();
    create_objects(&c);
    let before = c.json(&["get", "deployments,configmaps,secrets", "-A"]);

    // Never beside a running server.
    let err = skiff_err(&[
        "datastore",
        "migrate",
        "--to",
        &to_etcd,
        "--data-dir",
        &data_dir,
    ]);
    assert!(err.contains("stop the server"), "{err}");
    c.terminate();
    let out = skiff_ok(&[
        "datastore",
        "migrate",
        "--to",
        &to_etcd,
        "--data-dir",
        &data_dir,
    ]);
    eprintln!("{out}");
    assert!(
        out.contains("Moved ") && out.contains("to etcd at"),
        "{out}"
    );
    // A target that holds a cluster already is refused without --overwrite.
    let err = skiff_err(&[
        "datastore",
        "migrate",
        "--to",
        &to_etcd,
        "--data-dir",
        &data_dir,
    ]);
    assert!(err.contains("--overwrite"), "{err}");

    c.args = ["--datastore-endpoint", &endpoint]
        .into_iter()
        .chain(ELECTION)
        .map(str::to_owned)
        .collect();
    c.boot();
    assert_same_objects(
        &before,
        &c.json(&["get", "deployments,configmaps,secrets", "-A"]),
    );
    assert_snapshot_state(&c);
    // The cluster on etcd works: a write goes in.
    c.kubectl(&["create", "configmap", "on-etcd", "--from-literal=k=v"]);

    // And back to the data dir's SQLite, which still holds the old state.
    c.terminate();
    let back = [
        "datastore",
        "migrate",
        "--to",
        "sqlite://",
        "--datastore-endpoint",
        &endpoint,
        "--data-dir",
        &data_dir,
    ];
    let err = skiff_err(&back);
    assert!(err.contains("--overwrite"), "{err}");
    let mut overwrite = back.to_vec();
    overwrite.push("--overwrite");
    let out = skiff_ok(&overwrite);
    eprintln!("{out}");
    assert!(out.contains("replacing"), "{out}");
    c.args.clear();
    c.boot();
    assert_snapshot_state(&c);
    c.kubectl(&["get", "configmap", "on-etcd"]);
}

/// The same objects by kind, namespace and name, with the same contents apart from what
/// the move changes (resourceVersions) or the controllers keep changing (status).
fn assert_same_objects(before: &serde_json::Value, after: &serde_json::Value) {
    let index = |list: &serde_json::Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let m = &o["metadata"];
                let key = format!("{}/{}/{}", o["kind"], m["namespace"], m["name"]);
                let mut o = o.clone();
                let meta = o["metadata"].as_object_mut().unwrap();
                meta.remove("resourceVersion");
                meta.remove("managedFields");
                meta.remove("generation");
                meta.remove("annotations");
                o.as_object_mut().unwrap().remove("status");
                (
                    key,
                    (
                        o["metadata"]["uid"].clone(),
                        o["spec"].clone(),
                        o["data"].clone(),
                    ),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (before, after) = (index(before), index(after));
    for (key, object) in &before {
        assert_eq!(after.get(key), Some(object), "{key} changed in the move");
    }
}

#[test]
fn a_move_and_a_snapshot_reach_etcd_over_tls_with_the_datastore_flags() {
    let certs = tempfile::tempdir().unwrap();
    let (server, client) = skiff_etcd::testing::certificates(certs.path());
    let Some(etcd) = EtcdProcess::start_tls_or_skip(&server) else {
        return;
    };
    let endpoint = etcd.endpoint().to_owned();
    let host = endpoint.strip_prefix("https://").expect("a TLS etcd");
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().unwrap().to_str().unwrap().to_owned();
    let tls = [
        "--datastore-cafile".to_owned(),
        path(&client.ca),
        "--datastore-certfile".to_owned(),
        path(&client.cert),
        "--datastore-keyfile".to_owned(),
        path(&client.key),
    ];
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let mut c = Cluster::start();
    let data_dir = c.dir.path().to_str().unwrap().to_owned();
    create_objects(&c);
    c.terminate();

    let to = format!("etcd://{host}");
    let mut migrate = vec!["datastore", "migrate", "--to", &to, "--data-dir", &data_dir];
    migrate.extend(&tls);
    let out = skiff_ok(&migrate);
    assert!(out.contains(&format!("to etcd at {endpoint}")), "{out}");

    let snapshots = tempfile::tempdir().unwrap();
    let file = snapshots.path().join("etcd.snapshot");
    let mut save = vec![
        "snapshot",
        "save",
        file.to_str().unwrap(),
        "--datastore-endpoint",
        &endpoint,
    ];
    save.extend(&tls);
    let out = skiff_ok(&save);
    assert!(out.contains("keys under /registry/"), "{out}");
    assert_no_clear_text(&file);

    c.args = ["--datastore-endpoint", &endpoint]
        .into_iter()
        .chain(tls.iter().copied())
        .chain(ELECTION)
        .map(str::to_owned)
        .collect();
    c.boot();
    assert_snapshot_state(&c);
}
