//! End-to-end: two `skiff server`s on a three-member etcd cluster serve one cluster, the
//! second joining with the keys the first published sealed with `--token`. kubectl works
//! against either (one admin token, one CA, Secrets sealed with one key); the controllers run on the one holding the
//! `kube-system/kube-controller-manager` Lease; `kill -9` of that server hands the Lease to
//! the other within seconds, and a Deployment still scales; killing an etcd member leaves
//! the API serving.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use skiff_etcd::testing::EtcdCluster;

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The Lease's holder as `c` serves it ("" when there is none yet).
fn holder(c: &Cluster) -> String {
    c.kubectl_output(
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-controller-manager",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    )
    .stdout
    .iter()
    .map(|b| *b as char)
    .collect()
}

/// Whether the candidate identity names server `c`'s process (`<host>_<pid>-<start>`).
fn held_by(identity: &str, c: &Cluster) -> bool {
    let pid = c.pid().expect("server runs");
    identity.contains(&format!("_{pid}-"))
}

fn pods(c: &Cluster) -> usize {
    c.kubectl(&["get", "pods", "-l", "app=web", "-o", "name"])
        .lines()
        .count()
}

#[test]
fn two_servers_share_three_etcd_members_and_fail_over_the_controllers() {
    let Some(mut etcd) = EtcdCluster::start_or_skip(3) else {
        return;
    };
    let endpoints = etcd.endpoints();
    let flags = [
        "--datastore-endpoint",
        endpoints.as_str(),
        "--token",
        "correct-horse-battery-staple",
    ];
    let mut first = Cluster::start_with(&flags);
    let second = Cluster::start_with(&flags);
    let read =
        |c: &Cluster, file: &str| std::fs::read(c.dir.path().join("pki").join(file)).unwrap();
    for file in [
        "ca.crt",
        "ca.key",
        "sa.key",
        "admin.token",
        "encryption-config.yaml",
    ] {
        assert!(
            read(&first, file) == read(&second, file),
            "{file} differs between the servers"
        );
    }
    // A server given another token is refused instead of starting a second cluster's
    // keys on the same data.
    let stranger = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(stranger.path())
        .args([
            "--datastore-endpoint",
            endpoints.as_str(),
            "--token",
            "wrong",
        ])
        .env("SKIFF_NODE", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "the datastore holds the keys of a cluster whose servers were given another --token"
        ),
        "{err}"
    );

    wait_until("the first server leads", || {
        held_by(&holder(&first), &first)
    });
    // One cluster, whichever server kubectl asks.
    first.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=registry.k8s.io/pause:3.10",
        "--replicas=1",
    ]);
    wait_until(
        "the Deployment's pod exists, seen through the second server",
        || pods(&second) == 1,
    );
    let secret = [
        "create",
        "secret",
        "generic",
        "shared",
        "--from-literal=k=v",
    ];
    second.kubectl(&secret);
    assert_eq!(
        first.kubectl(&["get", "secret", "shared", "-o", "jsonpath={.data.k}"]),
        "dg==",
        "a Secret sealed by one server opens on the other"
    );
    assert_eq!(holder(&second), holder(&first));

    // kill -9 of the leader: the second server takes the Lease and its controllers act.
    let killed = Instant::now();
    first.crash();
    wait_until("the second server leads", || {
        held_by(&holder(&second), &second)
    });
    let took_over = killed.elapsed();
    second.kubectl(&["scale", "deployment", "web", "--replicas=3"]);
    wait_until("the Deployment scales through the survivor", || {
        pods(&second) == 3
    });
    let scaled = killed.elapsed();
    eprintln!(
        "leader killed: lease taken over after {took_over:?}, Deployment scaled after {scaled:?}"
    );
    assert!(
        took_over < Duration::from_secs(10),
        "took {took_over:?} to take over"
    );

    // One etcd member of three killed: clients keep working (beyond one etcd election).
    etcd.member(0).kill();
    let member_killed = Instant::now();
    wait_until("a write succeeds with one etcd member down", || {
        second
            .kubectl_output(&["create", "configmap", "after-member-loss"], None)
            .status
            .success()
    });
    eprintln!(
        "etcd member killed: writes succeed after {:?}",
        member_killed.elapsed()
    );
    assert!(second
        .kubectl(&["get", "configmaps", "-o", "name"])
        .contains("configmap/after-member-loss"));
    etcd.member(0).restart();
    // The member rejoining can cost one more etcd election, during which a request gets
    // upstream's 504 (as the test of etcd out of reach shows); a client retries.
    wait_until("a scale succeeds with the member back", || {
        second
            .kubectl_output(&["scale", "deployment", "web", "--replicas=2"], None)
            .status
            .success()
    });
    wait_until("the Deployment scales down with the member back", || {
        pods(&second) == 2
    });
}
