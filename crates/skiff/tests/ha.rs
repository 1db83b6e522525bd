//! End-to-end: two `skiff server`s on a three-member etcd cluster serve one cluster. kubectl
//! works against either; the controllers run on the one holding the
//! `kube-system/kube-controller-manager` Lease; `kill -9` of that server hands the Lease to
//! the other within seconds, and a Deployment still scales; killing an etcd member leaves
//! the API serving.

mod common;

use std::path::Path;
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

/// Copies the files of `from` into `to` (a server's `pki` dir: flat, modes kept).
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
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
    let flags = ["--datastore-endpoint", endpoints.as_str()];
    let mut first = Cluster::start_with(&flags);
    // The second server shares the first's CA, signing keys, encryption key and admin
    // token, as a joining k3s server gets them (here copied by the test).
    let dir = tempfile::tempdir().unwrap();
    copy_files(&first.dir.path().join("pki"), &dir.path().join("pki"));
    let second = Cluster::start_in(dir, &flags);

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
    second.kubectl(&["scale", "deployment", "web", "--replicas=2"]);
    wait_until("the Deployment scales down with the member back", || {
        pods(&second) == 2
    });
}
