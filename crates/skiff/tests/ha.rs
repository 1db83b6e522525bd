//! End-to-end: two `skiff server`s on a three-member etcd cluster serve one cluster, the
//! second joining with the keys the first published sealed with `--token`. kubectl works
//! against either (one admin token, one CA, Secrets sealed with one key); the controllers run on the one holding the
//! `kube-system/kube-controller-manager` Lease; `kill -9` of that server hands the Lease to
//! the other within seconds, and a Deployment still scales; killing an etcd member leaves
//! the API serving. The `kubernetes` Service lists both servers and drops the killed one
//! once its identity Lease expires; a `skiff agent --server URL1,URL2` node stays Ready
//! and starts a pod through the survivor (decision 0052). Losing etcd quorum: writes get
//! upstream's 504 Timeout, `resourceVersion=0` reads are still answered, and writes work
//! again once quorum returns (decision 0042).
//!
//! Everything (etcd, servers, the agent and its pods) runs in a network namespace of the
//! test's own, which the test thread enters: the servers listen on its addresses and the
//! agent's bridge and rules stay in it. Needs root and runc (under `CI=true` their absence
//! fails).

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::Cluster;
use skiff_etcd::testing::EtcdCluster;

/// The servers' addresses in the test's network namespace.
const FIRST_IP: &str = "192.168.254.1";
const SECOND_IP: &str = "192.168.254.3";

/// A network namespace of the test's own, which the calling thread (and every process it
/// starts) is moved into; deleted on drop.
struct TestNetns(String);

impl TestNetns {
    fn enter() -> TestNetns {
        use std::os::fd::AsRawFd;
        let name = format!("skiff-ha-{}", skiff_node::unique_suffix());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run ip");
        assert!(out.status.success(), "ip netns add: {out:?}");
        let netns = TestNetns(name.clone());
        // The servers' two addresses on a host interface.
        node::host_interface(&name, &["192.168.254.1/24", "192.168.254.3/24"]);
        let f = std::fs::File::open(format!("/run/netns/{name}")).expect("open the netns");
        // SAFETY: setns on the calling thread only; the fd is valid while `f` lives.
        assert_eq!(
            unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns"
        );
        netns
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `skiff agent` in the test's network namespace, given every server; its pods removed
/// with `skiff killall`'s code on drop.
struct Agent {
    dir: tempfile::TempDir,
    cgroup_parent: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

const AGENT: &str = "ha-node";
const AGENT_POD_CIDR: &str = "10.244.1.0/24";

impl Agent {
    /// Started in a mount namespace whose `/sys/class/net` is the test namespace's (sysfs
    /// shows the interfaces of the namespace that mounted it, and the node looks for its
    /// bridge there), the rest of `/sys` (cgroups) the host's.
    fn start(servers: &str, pki: &Path) -> Agent {
        let dir = tempfile::tempdir().expect("temp dir");
        let cgroup_parent = format!("skiff-ha-{}", skiff_node::unique_suffix());
        let token = std::fs::read_to_string(pki.join("admin.token")).expect("admin token");
        let sysfs = dir.path().join("sysfs");
        std::fs::create_dir(&sysfs).expect("sysfs mount point");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "slave", "sh", "-c"])
            .arg(
                "mount -t sysfs sysfs \"$0\" && mount --bind \"$0/class/net\" /sys/class/net \
                 && exec \"$@\"",
            )
            .arg(&sysfs)
            .args([env!("CARGO_BIN_EXE_skiff"), "agent", "--server", servers])
            .args(["--name", AGENT])
            .args(["--pod-cidr", AGENT_POD_CIDR, "--ca-file"])
            .arg(pki.join("ca.crt"))
            .arg("--data-dir")
            .arg(dir.path())
            .env("SKIFF_TOKEN", token.trim())
            .env("SKIFF_CGROUP_PARENT", &cgroup_parent)
            .env_remove("SKIFF_NODE");
        let log = Arc::new(Mutex::new(Vec::new()));
        let child = node::spawn_until(cmd, "skiff agent is ready", &log);
        Agent {
            dir,
            cgroup_parent,
            child,
            log,
        }
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// `skiff image load` of the busybox test image.
    fn load_busybox(&self) {
        let archive = skiff_node::testing::busybox_oci_archive("busybox:test").expect("busybox");
        node::load_image_into(self.dir.path(), &archive);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        use skiff_node::cleanup::{remove_pods, NodeSettings};
        let settings = NodeSettings::load(self.dir.path()).unwrap_or(NodeSettings {
            cgroup_parent: self.cgroup_parent.clone(),
            pod_cidr: AGENT_POD_CIDR.into(),
            ..Default::default()
        });
        remove_pods(self.dir.path(), &settings);
    }
}

/// The server URL in `c`'s kubeconfig.
fn url(c: &Cluster) -> String {
    std::fs::read_to_string(c.kubeconfig())
        .expect("kubeconfig")
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: ").map(String::from))
        .expect("a server in the kubeconfig")
}

/// The `kubernetes` Endpoints' addresses as `c` serves them, sorted.
fn apiserver_endpoints(c: &Cluster) -> Vec<String> {
    let out = c.kubectl_output(
        &[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={range .subsets[*]}{range .addresses[*]}{.ip}:{end}{.ports[0].port} {end}",
        ],
        None,
    );
    let mut all: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    all.sort();
    all
}

/// The `ip:port` `c` listens on, from its kubeconfig (`ip` given: a server listening on
/// every address advertises `ip`).
fn endpoint_of(c: &Cluster, ip: &str) -> String {
    let url = url(c);
    let port = url.rsplit(':').next().expect("a port");
    format!("{ip}:{port}")
}

fn node_ready(c: &Cluster) -> bool {
    c.kubectl_output(
        &[
            "get",
            "node",
            AGENT,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        None,
    )
    .stdout
        == b"True"
}

fn pod_running(c: &Cluster, name: &str) -> bool {
    c.kubectl_output(
        &["get", "pod", name, "-o", "jsonpath={.status.phase}"],
        None,
    )
    .stdout
        == b"Running"
}

/// A busybox pod that sleeps, on the agent's image.
fn sleeper(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - {{name: c, image: busybox:test, imagePullPolicy: Never, command: [sleep, '3600']}}\n"
    )
}

/// The node Lease's renewTime as `c` serves it.
fn node_renewed(c: &Cluster) -> Option<chrono::DateTime<chrono::Utc>> {
    let out = c.kubectl_output(
        &[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            AGENT,
            "-o",
            "jsonpath={.spec.renewTime}",
        ],
        None,
    );
    chrono::DateTime::parse_from_rfc3339(String::from_utf8_lossy(&out.stdout).trim())
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn wait_until(what: &str, done: impl FnMut() -> bool) {
    wait_until_or(what, done, String::new)
}

/// [`wait_until`], saying `context()` (a log) if it times out.
fn wait_until_or(what: &str, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}\n{}",
            context()
        );
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
    if !node::can_run() {
        return;
    }
    let _netns = TestNetns::enter();
    let Some(mut etcd) = EtcdCluster::start_or_skip(3) else {
        return;
    };
    let endpoints = etcd.endpoints();
    let flags = [
        "--datastore-endpoint",
        endpoints.as_str(),
        "--token",
        "correct-horse-battery-staple",
        // A dead server's address leaves the `kubernetes` Service within 3 s + 2 s.
        "--endpoint-reconcile-ttl",
        "3s",
    ];
    let first_listen = format!("{FIRST_IP}:0");
    let mut first = Cluster::start_with(&[&flags[..], &["--listen", &first_listen]].concat());
    // The second listens everywhere and says which address is its own.
    let second = Cluster::start_with(
        &[
            &flags[..],
            &["--listen", "0.0.0.0:0", "--advertise-address", SECOND_IP],
        ]
        .concat(),
    );
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
    // The `kubernetes` Service lists both servers, each renewing its identity Lease.
    let both = {
        let mut both = vec![
            endpoint_of(&first, FIRST_IP),
            endpoint_of(&second, SECOND_IP),
        ];
        both.sort();
        both
    };
    wait_until("the kubernetes Endpoints list both servers", || {
        apiserver_endpoints(&second) == both
    });
    let identities = [
        "get",
        "leases",
        "-n",
        "kube-system",
        "-l",
        "apiserver.kubernetes.io/identity=kube-apiserver",
        "-o",
        "name",
    ];
    assert_eq!(first.kubectl(&identities).lines().count(), 2);
    wait_until("the kubernetes EndpointSlice mirrors both servers", || {
        let ips = second.kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=kubernetes",
            "-o",
            "jsonpath={.items[*].endpoints[*].addresses[*]}",
        ]);
        ips.contains(FIRST_IP) && ips.contains(SECOND_IP)
    });

    // A node given both servers, using the first.
    let agent = Agent::start(
        &format!("{},{}", url(&first), url(&second)),
        &first.dir.path().join("pki"),
    );
    agent.load_busybox();
    let agent_log = || {
        format!(
            "{}\n{}",
            agent.log_text(),
            String::from_utf8_lossy(
                &second
                    .kubectl_output(&["get", "nodes", "-o", "yaml"], None)
                    .stdout
            )
        )
    };
    wait_until_or(
        "the agent's node is Ready",
        || node_ready(&second),
        agent_log,
    );
    first.kubectl_in(&["apply", "-f", "-"], &sleeper("before"));
    wait_until_or(
        "a pod runs on the agent's node",
        || pod_running(&second, "before"),
        || {
            format!(
                "{}\n{}",
                agent.log_text(),
                String::from_utf8_lossy(
                    &second
                        .kubectl_output(&["get", "pod", "before", "-o", "yaml"], None)
                        .stdout
                )
            )
        },
    );
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
    let killed_at = chrono::DateTime::<chrono::Utc>::from(SystemTime::now());
    first.crash();
    // The agent's node Lease renewed through the survivor: the agent failed over.
    wait_until_or(
        "the agent renews its node Lease through the second server",
        || node_renewed(&second).is_some_and(|t| t > killed_at),
        || agent.log_text(),
    );
    let agent_moved = killed.elapsed();
    let only_second = vec![endpoint_of(&second, SECOND_IP)];
    wait_until("the killed server leaves the kubernetes Endpoints", || {
        apiserver_endpoints(&second) == only_second
    });
    let endpoint_gone = killed.elapsed();
    wait_until("the killed server's identity Lease is deleted", || {
        second.kubectl(&identities).lines().count() == 1
    });
    wait_until("the second server leads", || {
        held_by(&holder(&second), &second)
    });
    let took_over = killed.elapsed();
    assert!(node_ready(&second), "the agent's node stayed Ready");
    second.kubectl_in(&["apply", "-f", "-"], &sleeper("after"));
    wait_until("a new pod runs on the agent's node", || {
        pod_running(&second, "after")
    });
    let new_pod = killed.elapsed();
    assert!(
        agent
            .log_text()
            .contains("API server unreachable; using the next one"),
        "{}",
        agent.log_text()
    );
    eprintln!(
        "server killed: agent's node Lease renewed through the other after {agent_moved:?}, \
         its address left the kubernetes Endpoints after {endpoint_gone:?}, a new pod ran \
         after {new_pod:?}"
    );
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
    let last_error = std::cell::RefCell::new(String::new());
    wait_until_or(
        "a write succeeds with one etcd member down",
        || {
            let out = second.kubectl_output(&["create", "configmap", "after-member-loss"], None);
            *last_error.borrow_mut() = String::from_utf8_lossy(&out.stderr).into_owned();
            out.status.success()
        },
        || last_error.borrow().clone(),
    );
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

    // Quorum lost (two members of three down): a write gets upstream's 504 Timeout, while
    // a read at resourceVersion=0 is still answered from the watch cache. The leader exits
    // when it cannot renew its Lease (decision 0042), so the killed server comes back
    // first, as a server that leads nothing, to be asked.
    first.boot();
    wait_until("the restarted server sees the cluster", || {
        first
            .kubectl_output(&["get", "configmap", "after-member-loss"], None)
            .status
            .success()
    });
    etcd.member(1).kill();
    etcd.member(2).kill();
    let quorum_lost = Instant::now();
    let refused = std::cell::RefCell::new(String::new());
    wait_until_or(
        "a write is refused with 504 Timeout",
        || {
            let started = Instant::now();
            let out =
                first.kubectl_output(&["create", "configmap", "during-quorum-loss", "-v=6"], None);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let done = !out.status.success() && stderr.contains("504 Gateway Timeout");
            *refused.borrow_mut() = format!("after {:?}: {stderr}", started.elapsed());
            done
        },
        || refused.borrow().clone(),
    );
    let refused = refused.into_inner();
    eprintln!(
        "quorum lost: writes refused after {:?}",
        quorum_lost.elapsed()
    );
    assert!(refused.contains(
            "Timeout: request did not complete within requested timeout - context deadline exceeded"
        ), "{refused}");
    let cached = first.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?resourceVersion=0",
    ]);
    assert!(cached.contains("after-member-loss"), "{cached}");
    etcd.member(1).restart();
    etcd.member(2).restart();
    let restarted = Instant::now();
    wait_until("a write succeeds with quorum back", || {
        first
            .kubectl_output(&["create", "configmap", "after-quorum-loss"], None)
            .status
            .success()
    });
    eprintln!(
        "quorum back: writes succeed after {:?}",
        restarted.elapsed()
    );
    drop(agent);
}
