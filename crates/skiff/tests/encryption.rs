//! End-to-end: Secrets are encrypted at rest by default (decision 0024). A real `skiff
//! server`, real kubectl, and the store file read byte by byte.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::Cluster;

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

/// The store file and its WAL, as an attacker with a copy of the data dir reads them.
fn store_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in ["state.db", "state.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(f)) {
            all.extend(bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn assert_not_stored(dir: &Path, value: &str) {
    let bytes = store_bytes(dir);
    assert!(!bytes.is_empty());
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    assert!(!contains(&bytes, value), "{value} is in the store in clear");
    assert!(!contains(&bytes, &b64), "{value} is in the store in base64");
}

fn skiff(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .output()
        .expect("run skiff")
}

/// Starts `skiff server` on `dir` expecting it to refuse; returns its last stderr line.
fn refused_start(dir: &Path, extra: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("SKIFF_NODE", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn skiff server");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!status.success(), "{stderr}");
            return stderr.lines().last().unwrap_or_default().to_owned();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("skiff server started on a data dir it should have refused");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn create_secret(c: &Cluster, name: &str, value: &str) {
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        name,
        &format!("--from-literal=password={value}"),
    ]);
}

fn secret_value(c: &Cluster, name: &str) -> String {
    let s = c.json(&["get", "secret", name]);
    let b64 = s["data"]["password"].as_str().expect("data.password");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn secrets_are_encrypted_at_rest_rotated_and_a_bad_key_refuses_the_start() {
    let mut c = Cluster::start();
    let dir = c.dir.path().to_owned();
    let values: Vec<(String, String)> = (0..4)
        .map(|i| (format!("db-{i}"), unique(&format!("hunter{i}"))))
        .collect();
    for (name, value) in &values {
        create_secret(&c, name, value);
    }
    for (_, value) in &values {
        assert_not_stored(&dir, value);
    }
    assert!(contains(&store_bytes(&dir), "k8s:enc:secretbox:v1:key1:"));
    // kubectl still shows them, in the YAML too.
    let yaml = c.kubectl(&["get", "secret", "db-0", "-o", "yaml"]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&values[0].1);
    assert!(yaml.contains(&format!("password: {b64}")), "{yaml}");
    let listed = c.json(&["get", "secrets"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), values.len());

    // Honest file modes.
    assert_eq!(mode(&dir), 0o700);
    for f in [
        "state.db",
        "kubeconfig",
        "pki/encryption-config.yaml",
        "pki/ca.key",
        "pki/admin.token",
    ] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }

    // Offline rotation (the server stopped; online rotation has its own test).
    let dir_arg = dir.to_str().unwrap();
    c.terminate();
    let out = skiff(&["secrets", "rotate", "--data-dir", dir_arg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("added key key2"), "{stdout}");
    // Every Secret was sealed by key1, so all are rewritten (the cluster may hold more
    // Secrets than the test's four).
    let counts: Vec<usize> = stdout
        .split_once("rewrote ")
        .and_then(|(_, rest)| rest.split_once(" objects"))
        .map(|(n, _)| n.split(" of ").filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    assert!(
        counts.len() == 2 && counts[0] == counts[1] && counts[0] >= 4,
        "{stdout}"
    );
    let config = std::fs::read_to_string(dir.join("pki/encryption-config.yaml")).unwrap();
    assert!(
        config.find("key2").unwrap() < config.find("key1").unwrap(),
        "{config}"
    );
    assert_eq!(mode(&dir.join("pki/encryption-config.yaml")), 0o600);
    c.boot();
    for (name, value) in &values {
        assert_eq!(&secret_value(&c, name), value);
        assert_not_stored(&dir, value);
    }
    // New writes use the new key.
    create_secret(&c, "after", &unique("after"));
    assert!(contains(&store_bytes(&dir), "k8s:enc:secretbox:v1:key2:"));
    c.terminate();

    // A wrong key (the right name, other bytes) refuses the start with one line.
    let path = dir.join("pki/encryption-config.yaml");
    let good = std::fs::read_to_string(&path).unwrap();
    let key2 = good
        .lines()
        .skip_while(|l| !l.contains("name: key2"))
        .find_map(|l| l.trim().strip_prefix("secret: "))
        .unwrap()
        .to_owned();
    let other = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    std::fs::write(&path, good.replace(&key2, &other)).unwrap();
    let line = refused_start(&dir, &[]);
    assert!(
        line.contains("object(s) encrypted with key \"secretbox:key2\"")
            && line.contains("no configured key decrypts"),
        "{line}"
    );
    // A corrupt key file.
    std::fs::write(&path, good.replace(&key2, "not base64!")).unwrap();
    let line = refused_start(&dir, &[]);
    assert!(
        line.contains("could not obtain secret for named key key2"),
        "{line}"
    );
    // A missing key file is never replaced by a fresh key.
    std::fs::remove_file(&path).unwrap();
    let line = refused_start(&dir, &[]);
    assert!(
        line.contains("is missing but the store holds encrypted Secrets"),
        "{line}"
    );
    assert!(!path.exists());
    // Restored, everything reads again.
    std::fs::write(&path, &good).unwrap();
    c.boot();
    assert_eq!(secret_value(&c, "db-3"), values[3].1);
}

#[test]
fn a_secret_that_fails_to_decrypt_is_a_500_alone() {
    let mut c = Cluster::start();
    create_secret(&c, "good", "fine");
    create_secret(&c, "bad", "doomed");
    c.kubectl(&["create", "configmap", "cm", "--from-literal=a=b"]);
    c.terminate();
    // Garbage under a configured key's prefix: a tampered or damaged value.
    let out = Command::new("sqlite3")
        .arg(c.dir.path().join("state.db"))
        .arg("UPDATE kv SET value = CAST('k8s:enc:secretbox:v1:key1:' || hex(randomblob(64)) AS BLOB) WHERE key = '/registry/secrets/default/bad';")
        .output()
        .expect("sqlite3 (apt package sqlite3) is needed to damage a stored value");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.boot();
    let err = c.kubectl_err(&["get", "secret", "bad"], None);
    assert!(
        err.contains("Error from server (InternalError): Internal error occurred: decrypting with key \"secretbox:key1\": output array was not large enough for encryption"),
        "{err}"
    );
    assert_eq!(secret_value(&c, "good"), "fine");
    // A list fails naming the object (upstream's "unable to transform key").
    let err = c.kubectl_err(&["get", "secrets"], None);
    assert!(
        err.contains("unable to transform key \\\"/registry/secrets/default/bad\\\"")
            || err.contains("unable to transform key \"/registry/secrets/default/bad\""),
        "{err}"
    );
    // The rest of the API keeps working.
    c.kubectl(&["get", "configmap", "cm"]);
    c.kubectl(&["create", "secret", "generic", "new", "--from-literal=x=y"]);
    c.kubectl(&["get", "secret", "new"]);
}

#[test]
fn an_upstream_encryption_configuration_file_is_taken_unchanged() {
    let file = tempfile::NamedTempFile::new().unwrap();
    // The example of upstream's "Encrypting Confidential Data at Rest" page, aesgcm first.
    std::fs::write(
        file.path(),
        r#"---
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
      - configmaps
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: c2VjcmV0IGlzIHNlY3VyZQ==
            - name: key2
              secret: dGhpcyBpcyBwYXNzd29yZA==
      - identity: {}
"#,
    )
    .unwrap();
    let c = Cluster::start_with(&[
        "--encryption-provider-config",
        file.path().to_str().unwrap(),
    ]);
    let value = unique("upstream");
    create_secret(&c, "s", &value);
    c.kubectl(&[
        "create",
        "configmap",
        "cm",
        &format!("--from-literal=k={value}"),
    ]);
    assert_not_stored(c.dir.path(), &value);
    assert!(contains(
        &store_bytes(c.dir.path()),
        "k8s:enc:aesgcm:v1:key1:"
    ));
    assert_eq!(secret_value(&c, "s"), value);
    assert_eq!(
        c.json(&["get", "configmap", "cm"])["data"]["k"],
        value.as_str()
    );
    // No key of skiff's own was generated.
    assert!(!c.dir.path().join("pki/encryption-config.yaml").exists());
}

#[test]
fn a_data_dir_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let line = refused_start(dir.path(), &[]);
    assert!(
        line.ends_with("it is writable by group or others (mode 777); run chmod 700 on it"),
        "{line}"
    );
    assert!(!dir.path().join("state.db").exists());
}

/// `skiff secrets rotate` against a running server (decision 0045): the server puts the
/// new key in use without a restart and rewrites every Secret with it, so the old key can
/// then be removed; `skiff certificate rotate --admin-token` replaces the admin token.
#[test]
fn keys_rotate_while_the_server_runs_and_the_admin_token_rotates() {
    let mut c = Cluster::start();
    let dir = c.dir.path().to_path_buf();
    let dir_arg = dir.to_str().unwrap();
    let before = unique("before");
    create_secret(&c, "before", &before);
    assert!(contains(&store_bytes(&dir), "k8s:enc:secretbox:v1:key1:"));

    let started = Instant::now();
    let out = skiff(&["secrets", "rotate", "--data-dir", dir_arg]);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("added key key2"), "{stdout}");
    assert!(stdout.contains("the server rewrote "), "{stdout}");
    eprintln!("online rotation (reload and rewrite) took {took:?}");
    // The same server, never restarted, reads the rewritten Secret and seals new ones
    // with key2.
    assert_eq!(secret_value(&c, "before"), before);
    let after = unique("after");
    create_secret(&c, "after", &after);
    assert!(contains(&store_bytes(&dir), "k8s:enc:secretbox:v1:key2:"));
    assert_not_stored(&dir, &after);
    // A file the server cannot use (keys that read nothing stored) is refused with the
    // reason in its status, the keys in use kept.
    let path = dir.join("pki/encryption-config.yaml");
    let good = std::fs::read_to_string(&path).unwrap();
    let other = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let stranger: String = good
        .lines()
        .map(|l| match l.split_once("secret: ") {
            Some((indent, _)) => format!("{indent}secret: {other}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&path, stranger).unwrap();
    let status_path = dir.join("pki/encryption-config.status");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = std::fs::read_to_string(&status_path).unwrap_or_default();
        if status.contains(" error ") && status.contains("no configured key decrypts") {
            break status;
        }
        assert!(Instant::now() < deadline, "status: {status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.contains("encrypted with key \"secretbox:key"),
        "{status}"
    );
    assert_eq!(secret_value(&c, "before"), before);
    std::fs::write(&path, &good).unwrap();
    c.terminate();

    // Nothing is sealed with key1 any more: without it the server starts and reads all.
    let mut lines: Vec<&str> = good.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("name: key1"))
        .expect("key1 in the file");
    lines.drain(at..at + 2);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    c.boot();
    assert_eq!(secret_value(&c, "before"), before);
    assert_eq!(secret_value(&c, "after"), after);

    // A second online rotation on top, then a configuration the server refuses.
    let out = skiff(&["secrets", "rotate", "--data-dir", dir_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The first free name: key1 is free again.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("added key key1"), "{stdout}");
    assert_eq!(secret_value(&c, "before"), before);

    // The admin token: refused while the server runs, replaced when it is stopped.
    let out = skiff(&[
        "certificate",
        "rotate",
        "--admin-token",
        "--data-dir",
        dir_arg,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop the server before rotating"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old = std::fs::read_to_string(dir.join("pki/admin.token")).unwrap();
    c.terminate();
    let out = skiff(&[
        "certificate",
        "rotate",
        "--admin-token",
        "--data-dir",
        dir_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = std::fs::read_to_string(dir.join("pki/admin.token")).unwrap();
    assert_ne!(old.trim(), new.trim());
    assert_eq!(mode(&dir.join("pki/admin.token")), 0o600);
    let kubeconfig = std::fs::read_to_string(dir.join("kubeconfig")).unwrap();
    assert!(kubeconfig.contains(&format!("token: {}", new.trim())));
    c.boot();
    // The data dir's kubeconfig works; the old token is a 401.
    assert_eq!(secret_value(&c, "after"), after);
    let err = c.kubectl_err(&["--token", old.trim(), "get", "secrets"], None);
    assert!(err.contains("Unauthorized"), "{err}");
}
