//! End to end: exec probes, startup probes and lifecycle hooks on real containers (root
//! only; skipped with a message otherwise), each test in its own network namespace.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::time::{Duration, Instant, SystemTime};

fn status(pod: &serde_json::Value, name: &str) -> serde_json::Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or_default()
}

/// `reason: message` of the events about `pod`, oldest first.
fn events(c: &node::NodeCluster, pod: &str) -> Vec<String> {
    let list = c.json(&["get", "events"]);
    let mut items: Vec<&serde_json::Value> = list["items"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    items.retain(|e| e["involvedObject"]["name"] == pod);
    items.sort_by_key(|e| e["firstTimestamp"].as_str().unwrap_or_default().to_string());
    items
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e["involvedObject"]["fieldPath"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn wait_event(c: &node::NodeCluster, pod: &str, needle: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let all = events(c, pod);
        if all.iter().any(|e| e.contains(needle)) {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "no event {needle:?} for {pod}: {all:#?}\nserver log:\n{}",
            c.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const PROBED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 2
  containers:
  - name: gated
    image: busybox:test
    command: ["sleep", "3600"]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
      failureThreshold: 1
  - name: dying
    image: busybox:test
    command: ["sh", "-c", "touch /tmp/alive; sleep 2; rm /tmp/alive; exec sleep 3600"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/alive"]}
      periodSeconds: 1
      failureThreshold: 2
  - name: slow
    image: busybox:test
    command: ["sleep", "3600"]
    startupProbe:
      exec: {command: ["test", "-f", "/tmp/started"]}
      periodSeconds: 1
      failureThreshold: 120
    livenessProbe:
      exec: {command: ["test", "-f", "/tmp/started"]}
      periodSeconds: 1
      failureThreshold: 1
  - name: hung
    image: busybox:test
    command: ["sleep", "3600"]
    readinessProbe:
      exec: {command: ["sleep", "30"]}
      timeoutSeconds: 1
      periodSeconds: 2
"#;

#[test]
fn exec_probes_gate_readiness_restart_on_liveness_and_wait_for_startup() {
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    let node = c.node_name();
    let applied = Instant::now();
    c.kubectl_in(&["apply", "-f", "-"], &PROBED.replace("NODE", &node));

    // Running but not ready while /tmp/ready is missing; the slow container not started.
    // The test itself creates the files the probes wait for, so a slow machine cannot
    // make the probes pass before these first checks.
    let pod = c.wait_pod("probed", Duration::from_secs(20), |p| {
        status(p, "gated")["state"]["running"].is_object()
            && status(p, "slow")["state"]["running"].is_object()
    });
    assert_eq!(status(&pod, "gated")["ready"], false, "{pod:#}");
    assert_eq!(status(&pod, "slow")["started"], false, "{pod:#}");
    assert_eq!(status(&pod, "slow")["ready"], false, "{pod:#}");

    c.kubectl(&["exec", "probed", "-c", "gated", "--", "touch", "/tmp/ready"]);
    let pod = c.wait_pod("probed", Duration::from_secs(20), |p| {
        status(p, "gated")["ready"] == true
    });
    eprintln!("exec readiness passed after {:?}", applied.elapsed());
    assert_eq!(status(&pod, "gated")["restartCount"], 0);

    // The startup probe passes once the file exists; the liveness probe on the same file
    // (threshold 1) must not have run before that, or the container would have restarted.
    c.kubectl(&[
        "exec",
        "probed",
        "-c",
        "slow",
        "--",
        "touch",
        "/tmp/started",
    ]);
    let pod = c.wait_pod("probed", Duration::from_secs(20), |p| {
        status(p, "slow")["started"] == true && status(p, "slow")["ready"] == true
    });
    assert_eq!(status(&pod, "slow")["restartCount"], 0, "{pod:#}");

    // The liveness probe starts failing after 2 s: one restart.
    let pod = c.wait_pod("probed", Duration::from_secs(30), |p| {
        status(p, "dying")["restartCount"].as_i64() >= Some(1)
    });
    let dying = status(&pod, "dying");
    // `sleep` as pid 1 ignores SIGTERM: SIGKILL after the 2 s grace period.
    assert_eq!(
        dying["lastState"]["terminated"]["exitCode"], 137,
        "{dying:#}"
    );

    // A hung exec probe fails by timeout and keeps the container unready.
    let all = wait_event(
        &c,
        "probed",
        "Readiness probe failed: command \"sleep 30\" timed out",
        Duration::from_secs(10),
    );
    assert_eq!(
        status(&c.json(&["get", "pod", "probed"]), "hung")["ready"],
        false
    );

    let all_text = all.join("\n");
    assert!(
        all_text.contains(
            "spec.containers{gated} Unhealthy: Readiness probe failed: cat: can't open \
             '/tmp/ready': No such file or directory"
        ),
        "{all_text}"
    );
    assert!(
        all_text.contains(
            "spec.containers{dying} Unhealthy: Liveness probe failed: cat: can't open '/tmp/alive'"
        ),
        "{all_text}"
    );
    assert!(
        all_text.contains(
            "spec.containers{dying} Killing: Container dying failed liveness probe, will be \
             restarted"
        ),
        "{all_text}"
    );
    assert!(
        all_text.contains("spec.containers{slow} Unhealthy: Startup probe failed"),
        "{all_text}"
    );
    assert!(
        !all_text.contains("spec.containers{slow} Unhealthy: Liveness"),
        "liveness ran before startup passed: {all_text}"
    );
    eprintln!("whole test: {:?}", applied.elapsed());
}

const HOOKED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hooked
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 10
  volumes:
  - name: data
    hostPath: {path: HOSTDIR}
  containers:
  - name: execstop
    image: busybox:test
    command: ["sh", "-c", "trap 'echo term >> /data/exec.log; exit 0' TERM; while true; do sleep 1 & wait $!; done"]
    volumeMounts: [{name: data, mountPath: /data}]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "sleep 2; echo poststart > /data/poststart"]}
      preStop:
        exec: {command: ["sh", "-c", "echo prestop >> /data/exec.log; sleep 1; echo prestop-done >> /data/exec.log"]}
  - name: sleepstop
    image: busybox:test
    command: ["sh", "-c", "trap 'echo term > /data/sleep.log; exit 0' TERM; while true; do sleep 1 & wait $!; done"]
    volumeMounts: [{name: data, mountPath: /data}]
    lifecycle:
      preStop:
        sleep: {seconds: 2}
"#;

const BADHOOK: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: badhook
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:test
    command: ["sleep", "3600"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo nope >&2; exit 7"]}
"#;

#[test]
fn hooks_run_post_start_before_running_and_pre_stop_before_sigterm() {
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    let node = c.node_name();
    let host_dir = c.dir.path().join("hostvol");
    std::fs::create_dir_all(&host_dir).unwrap();
    let started = Instant::now();
    let yaml = HOOKED
        .replace("NODE", &node)
        .replace("HOSTDIR", &host_dir.display().to_string());
    c.kubectl_in(&["apply", "-f", "-"], &yaml);
    c.kubectl_in(&["apply", "-f", "-"], &BADHOOK.replace("NODE", &node));

    // postStart: the container shows Running only once the hook (which sleeps 2 s and then
    // writes a file) returned.
    let pod = c.wait_pod("hooked", Duration::from_secs(30), |p| {
        status(p, "execstop")["state"]["running"].is_object()
    });
    assert!(
        host_dir.join("poststart").exists(),
        "running before postStart finished: {pod:#}"
    );
    c.wait_pod("hooked", Duration::from_secs(20), |p| {
        status(p, "sleepstop")["state"]["running"].is_object()
    });
    eprintln!("hooked pod running after {:?}", started.elapsed());

    // A failing postStart kills the container: event, then a restart.
    let all = wait_event(
        &c,
        "badhook",
        "FailedPostStartHook: PostStartHook failed",
        Duration::from_secs(20),
    );
    assert!(
        all.iter()
            .any(|e| e == "spec.containers{app} Killing: FailedPostStartHook"),
        "{all:#?}"
    );
    let pod = c.wait_pod("badhook", Duration::from_secs(20), |p| {
        status(p, "app")["restartCount"].as_i64() >= Some(1)
    });
    assert_eq!(status(&pod, "app")["ready"], false);

    // preStop: exec hook runs to completion before SIGTERM; the sleep hook delays SIGTERM
    // by its 2 s. Both containers exit on SIGTERM, well inside the 10 s grace period.
    let deleting = SystemTime::now();
    let t0 = Instant::now();
    c.kubectl(&["delete", "pod", "hooked", "--wait=true", "--timeout=30s"]);
    let took = t0.elapsed();
    eprintln!("delete with preStop hooks took {took:?}");
    let exec_log = std::fs::read_to_string(host_dir.join("exec.log")).unwrap_or_default();
    assert_eq!(exec_log, "prestop\nprestop-done\nterm\n");
    let term_at = std::fs::metadata(host_dir.join("sleep.log"))
        .and_then(|m| m.modified())
        .expect("sleepstop got SIGTERM");
    let delay = term_at.duration_since(deleting).unwrap_or_default();
    assert!(
        delay >= Duration::from_secs(2) && delay < Duration::from_secs(8),
        "SIGTERM {delay:?} after the delete"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    let all = events(&c, "hooked");
    assert!(
        all.iter()
            .any(|e| e == "spec.containers{sleepstop} Killing: Stopping container sleepstop"),
        "{all:#?}"
    );
    assert!(
        !all.iter().any(|e| e.contains("FailedPreStopHook")),
        "{all:#?}"
    );
    c.kubectl(&["delete", "pod", "badhook", "--wait=true", "--timeout=30s"]);
}
