//! End to end: graceful node shutdown (decision 0043) on a real node (root, runc; under
//! `CI=true` a missing prerequisite fails). `skiff server --shutdown-grace-period 8s
//! --shutdown-grace-period-critical-pods 3s` gets SIGTERM with three pods running:
//! the node turns NotReady ("node is shutting down"), a pod bound to it meanwhile is
//! rejected, ordinary pods are stopped first (one exits on SIGTERM, one ignoring it is
//! killed when the 5 s of its group run out, not after its own 600 s), the critical pod
//! after them, every one marked Failed/Terminated; then the server exits by itself. The
//! critical pod names `system-node-critical`: Priority admission gives it its value.
//! Then the same on a `skiff agent` node: SIGTERM to the agent marks its node NotReady
//! and its pods Failed with DisruptionTarget, read from the server that keeps running.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;
#[path = "common/shutdown.rs"]
mod shutdown;

use std::time::{Duration, Instant};

use shutdown::pod;

/// Each container says when it runs, and handles SIGTERM as its name says.
const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: app
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 3' TERM; echo up; while true; do sleep 1; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 600
  containers:
  - name: app
    image: busybox:test
    command: ["sh", "-c", "trap '' TERM; echo up; while true; do sleep 1; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: critical, namespace: kube-system}
spec:
  priorityClassName: system-node-critical
  terminationGracePeriodSeconds: 30
  containers:
  - name: app
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 4' TERM; echo up; while true; do sleep 1; done"]
"#;

/// Seconds since the epoch of an API time (`2026-01-02T03:04:05Z`).
fn epoch_seconds(t: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 { t[r].parse().expect("a number") };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

#[test]
fn sigterm_stops_pods_by_priority_within_the_grace_period_and_marks_them_failed() {
    if !node::can_run() {
        return;
    }
    let mut c = node::NodeCluster::start_with_args(&[
        "--shutdown-grace-period",
        "8s",
        "--shutdown-grace-period-critical-pods",
        "3s",
    ]);
    let node_name = c.node_name();
    c.load_busybox("busybox:test");
    c.kubectl_in(&["apply", "-f", "-"], PODS);
    for (ns, name) in [
        ("default", "graceful"),
        ("default", "stubborn"),
        ("kube-system", "critical"),
    ] {
        c.wait_logs_in(ns, name, "up", Duration::from_secs(60));
    }
    assert_eq!(
        pod(&c, "kube-system", "critical")["spec"]["priority"],
        2_000_001_000
    );

    let late = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "late"}},
            "spec": {{"nodeName": "{node_name}", "containers": [
              {{"name": "app", "image": "busybox:test", "command": ["sleep", "3600"]}}]}}}}"#
    );

    let sent = Instant::now();
    c.sigterm();
    // While it shuts down, the API still serves: the node says why it is not Ready.
    shutdown::wait_shutting_down(&c, &node_name, Duration::from_secs(4));
    // Bound to the node now (no scheduler involved): refused, never run.
    c.kubectl_in(&["apply", "-f", "-"], &late);
    let status = c.wait_exit(Duration::from_secs(30));
    let took = sent.elapsed();
    let status = status
        .unwrap_or_else(|| panic!("the server still ran 30 s after SIGTERM:\n{}", c.log_text()));
    assert!(status.success(), "{status}\n{}", c.log_text());
    // The non-critical group's 5 s (the stubborn pod is killed then), then the critical
    // pod's few; never the stubborn pod's own 600 s.
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(20),
        "shutdown took {took:?}\n{}",
        c.log_text()
    );

    // What the node wrote is read back from a restarted server (same data dir).
    c.boot();
    let mut finished = std::collections::BTreeMap::new();
    for (ns, name, exit_code) in [
        ("default", "graceful", 3),
        ("default", "stubborn", 137),
        ("kube-system", "critical", 4),
    ] {
        let terminated = shutdown::assert_stopped_by_shutdown(name, &pod(&c, ns, name));
        assert_eq!(terminated["exitCode"], exit_code, "{name}: {terminated}");
        let at = terminated["finishedAt"].as_str().expect("finishedAt");
        finished.insert(name, epoch_seconds(at));
    }
    // SIGTERM handled at once; SIGKILL for the one ignoring it only when its group's 5 s
    // ran out; the critical pod only after that group.
    assert!(
        finished["stubborn"] - finished["graceful"] >= 3,
        "{finished:?}"
    );
    assert!(finished["critical"] >= finished["stubborn"], "{finished:?}");

    let late = pod(&c, "default", "late");
    let s = &late["status"];
    assert_eq!(s["phase"], "Failed", "{s}");
    assert_eq!(s["reason"], "NodeShutdown", "{s}");
    assert_eq!(
        s["message"], "Pod was rejected as the node is shutting down.",
        "{s}"
    );
    let ran = s["containerStatuses"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            !c["state"]["running"].is_null()
                || !c["state"]["terminated"].is_null()
                || !c["lastState"]["terminated"].is_null()
        })
    });
    assert!(!ran, "never run: {s}");
}

/// Pods bound to the agent node `node-b`: one ordinary, one critical, each saying when it
/// runs and leaving with its own code on SIGTERM.
const AGENT_PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: ordinary}
spec:
  nodeName: node-b
  terminationGracePeriodSeconds: 30
  containers:
  - name: app
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 3' TERM; echo up; while true; do sleep 1; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: critical-b, namespace: kube-system}
spec:
  nodeName: node-b
  priorityClassName: system-node-critical
  terminationGracePeriodSeconds: 30
  containers:
  - name: app
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 4' TERM; echo up; while true; do sleep 1; done"]
"#;

#[test]
fn sigterm_to_an_agent_stops_its_pods_and_marks_its_node_not_ready() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start_listening("0.0.0.0:0");
    let mut b = node::AgentNode::join_with_args(
        &c,
        "node-b",
        "10.244.1.0/24",
        &[
            "--shutdown-grace-period",
            "6s",
            "--shutdown-grace-period-critical-pods",
            "2s",
        ],
    );
    b.load_busybox("busybox:test");
    c.wait_for("node-b to be Ready", Duration::from_secs(20), || {
        let out = c.kubectl_output(&["get", "node", "node-b", "-o", "json"], None);
        let n: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        node::failover::node_ready(&n).then_some(())
    });
    c.kubectl_in(&["apply", "-f", "-"], AGENT_PODS);
    for (ns, name) in [("default", "ordinary"), ("kube-system", "critical-b")] {
        c.wait_logs_in(ns, name, "up", Duration::from_secs(60));
    }

    b.sigterm();
    shutdown::wait_shutting_down(&c, "node-b", Duration::from_secs(4));
    let status = b.wait_exit(Duration::from_secs(30));
    let status = status
        .unwrap_or_else(|| panic!("the agent still ran 30 s after SIGTERM:\n{}", b.log_text()));
    assert!(status.success(), "{status}\n{}", b.log_text());

    // The agent posted each pod's end before it exited; the server, still up, has them.
    let mut finished = std::collections::BTreeMap::new();
    for (ns, name, exit_code) in [("default", "ordinary", 3), ("kube-system", "critical-b", 4)] {
        let terminated = shutdown::assert_stopped_by_shutdown(name, &pod(&c, ns, name));
        assert_eq!(terminated["exitCode"], exit_code, "{name}: {terminated}");
        let at = terminated["finishedAt"].as_str().expect("finishedAt");
        finished.insert(name, epoch_seconds(at));
    }
    // The critical pod, in the last group, is stopped after the ordinary one.
    assert!(
        finished["critical-b"] >= finished["ordinary"],
        "{finished:?}"
    );
    // The node lifecycle controller keeps new pods off the node it was told is going.
    c.wait_for("node-b tainted not-ready", Duration::from_secs(20), || {
        let taints = c.json(&["get", "node", "node-b"])["spec"]["taints"].to_string();
        taints
            .contains("node.kubernetes.io/not-ready")
            .then_some(())
    });
}

/// The kubelet's configuration check, before anything is touched.
#[test]
fn a_critical_period_longer_than_the_whole_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--shutdown-grace-period",
            "10s",
            "--shutdown-grace-period-critical-pods",
            "30s",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .expect("run skiff");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "invalid configuration: shutdownGracePeriodCriticalPods (30s) must be <= shutdownGracePeriod (10s)"
        ),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists(), "nothing made");
}
