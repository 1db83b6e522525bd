//! End to end: Pods run as real containers on the server's node (root only; skipped with
//! a message otherwise), in a network namespace per test.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: busybox:test
    env:
    - name: GREETING
      value: hello-from-pod
    command: ["sh", "-c", "echo $(GREETING) > /tmp/index.html; echo serving; exec httpd -f -vv -p 8080 -h /tmp"]
"#;

fn ready(pod: &serde_json::Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn http_get(c: &node::NodeCluster, ip: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(body) = c.http_get(ip, 8080, "/index.html") {
            return body;
        }
        assert!(Instant::now() < deadline, "no answer from {ip}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn container_id(pod: &serde_json::Value) -> String {
    pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .expect("containerID")
        .trim_start_matches("skiff://")
        .to_string()
}

#[test]
fn pod_runs_serves_http_logs_restarts_and_is_deleted() {
    let c = node_cluster_or_skip!();
    let loaded = c.load_busybox("busybox:test");
    assert!(
        loaded.contains("docker.io/library/busybox:test"),
        "{loaded}"
    );
    let node = c.node_name();
    let node_obj = c.json(&["get", "node", &node]);
    assert!(node_obj["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True"));

    let created = Instant::now();
    c.kubectl_in(&["apply", "-f", "-"], &WEB.replace("NODE", &node));
    let pod = c.wait_pod("web", Duration::from_secs(30), ready);
    eprintln!("pod create-to-Ready: {:?}", created.elapsed());
    assert_eq!(pod["status"]["phase"], "Running");
    let ip = pod["status"]["podIP"].as_str().expect("podIP").to_string();
    assert!(ip.starts_with("10.244.0."), "{ip}");
    assert_eq!(pod["status"]["podIPs"][0]["ip"], ip.as_str());
    assert!(pod["status"]["startTime"].is_string());
    let cs = &pod["status"]["containerStatuses"][0];
    assert_eq!(cs["image"], "docker.io/library/busybox:test");
    assert!(cs["imageID"].as_str().unwrap().starts_with("sha256:"));
    assert!(cs["state"]["running"]["startedAt"].is_string());
    assert_eq!(cs["restartCount"], 0);

    assert_eq!(http_get(&c, &ip), "hello-from-pod\n");

    // kubectl logs, and -f streaming a line written after it started.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = c.kubectl(&["logs", "web"]);
        if logs.contains("serving") {
            break;
        }
        assert!(Instant::now() < deadline, "logs: {logs:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ts = c.kubectl(&["logs", "web", "-c", "httpd", "--timestamps", "--tail", "1"]);
    assert!(ts.starts_with("20"), "{ts}");
    let mut follow = c
        .kubectl_cmd(&["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl logs -f");
    std::thread::sleep(Duration::from_millis(500));
    http_get(&c, &ip);
    let mut stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut all = String::new();
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
            if all.contains("index.html") {
                let _ = tx.send(all.clone());
                break;
            }
        }
    });
    let streamed = rx.recv_timeout(Duration::from_secs(10));
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(streamed.is_ok(), "logs -f did not stream the request line");

    // Killing the process restarts the container.
    let first = container_id(&pod);
    let pid = c.container_pid(&first);
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let pod = c.wait_pod("web", Duration::from_secs(20), |p| {
        p["status"]["containerStatuses"][0]["restartCount"] == 1 && ready(p)
    });
    let cs = &pod["status"]["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 137, "{cs:#}");
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    let previous = c.kubectl(&["logs", "web", "--previous"]);
    assert!(previous.contains("serving"), "{previous}");

    // A missing image.
    let missing = WEB
        .replace("NODE", &node)
        .replace("name: web", "name: nope")
        .replace("busybox:test", "nosuch:1.0");
    c.kubectl_in(&["apply", "-f", "-"], &missing);
    let pod = c.wait_pod("nope", Duration::from_secs(20), |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
    });
    assert_eq!(pod["status"]["phase"], "Pending");

    // Deletion stops the container and the pod goes away.
    let running = container_id(&c.json(&["get", "pod", "web"]));
    c.kubectl(&[
        "delete",
        "pod",
        "web",
        "nope",
        "--wait=true",
        "--timeout=30s",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.container_ids().contains(&running) {
        assert!(Instant::now() < deadline, "container {running} still there");
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone = c.kubectl_output(&["get", "pod", "web"], None);
    assert!(!gone.status.success());
}

#[test]
fn restarted_server_adopts_running_containers() {
    let mut c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    let node = c.node_name();
    c.kubectl_in(&["apply", "-f", "-"], &WEB.replace("NODE", &node));
    let pod = c.wait_pod("web", Duration::from_secs(30), ready);
    let id = container_id(&pod);
    let ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    let before = c.container_ids();

    c.crash();
    c.boot();
    std::thread::sleep(Duration::from_secs(2));
    let pod = c.wait_pod("web", Duration::from_secs(10), ready);
    assert_eq!(container_id(&pod), id);
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(c.container_ids(), before, "no duplicate containers");
    assert_eq!(http_get(&c, &ip), "hello-from-pod\n");
}

const PROBED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox:test
    command: ["sh", "-c", "(sleep 2; echo ok > /tmp/ready.html) & exec httpd -f -p 8080 -h /tmp"]
    readinessProbe:
      httpGet: {path: /ready.html, port: 8080}
      periodSeconds: 1
      failureThreshold: 1
  - name: unhealthy
    image: busybox:test
    command: ["sleep", "3600"]
    livenessProbe:
      tcpSocket: {port: 9999}
      periodSeconds: 1
      failureThreshold: 2
"#;

#[test]
fn readiness_gates_ready_and_liveness_failures_restart() {
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    let node = c.node_name();
    c.kubectl_in(&["apply", "-f", "-"], &PROBED.replace("NODE", &node));
    let status = |p: &serde_json::Value, name: &str| {
        p["status"]["containerStatuses"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name).cloned())
            .unwrap_or_default()
    };
    let pod = c.wait_pod("probed", Duration::from_secs(20), |p| {
        status(p, "web")["state"]["running"].is_object()
    });
    assert_eq!(
        status(&pod, "web")["ready"],
        false,
        "ready before its probe passed"
    );
    c.wait_pod("probed", Duration::from_secs(20), |p| {
        status(p, "web")["ready"] == true
    });
    let pod = c.wait_pod("probed", Duration::from_secs(30), |p| {
        status(p, "unhealthy")["restartCount"].as_i64() >= Some(1)
    });
    assert!(!ready(&pod) || status(&pod, "unhealthy")["ready"] == true);
    assert_eq!(status(&pod, "web")["restartCount"], 0);
}

/// A container over its memory limit is killed by the kernel, and the pod says so as
/// upstream does: OOMKilled, exit code 137, then a restart (restartPolicy Always).
#[test]
fn a_container_over_its_memory_limit_is_oom_killed() {
    let c = node_cluster_or_skip!();
    let node = c.node_name();
    c.load_busybox("busybox:test");
    let manifest = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  nodeName: NODE
  containers:
  - name: hog
    image: busybox:test
    command: ["sh", "-c", "x=0123456789abcdef; while true; do x=\"$x$x\"; done"]
    resources:
      limits:
        memory: 32Mi
"#
    .replace("NODE", &node);
    c.kubectl_in(&["apply", "-f", "-"], &manifest);
    let pod = c.wait_pod("hog", Duration::from_secs(60), |p| {
        p["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"] == "OOMKilled"
    });
    let last = &pod["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{pod:#}");
    assert!(
        pod["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1),
        "{pod:#}"
    );
    let describe = c.kubectl(&["describe", "pod", "hog"]);
    assert!(describe.contains("OOMKilled"), "{describe}");
}

/// An emptyDir with `medium: Memory` is a tmpfs shared by the pod's containers, bounded by
/// its sizeLimit, and unmounted when the pod goes.
#[test]
fn memory_empty_dirs_are_shared_bounded_tmpfs_and_go_with_the_pod() {
    let c = node_cluster_or_skip!();
    let node = c.node_name();
    c.load_busybox("busybox:test");
    let manifest = r#"
apiVersion: v1
kind: Pod
metadata:
  name: cache
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  volumes:
  - name: scratch
    emptyDir:
      medium: Memory
      sizeLimit: 8Mi
  containers:
  - name: writer
    image: busybox:test
    command: ["sh", "-c", "grep ' /scratch ' /proc/mounts; echo shared > /scratch/note; dd if=/dev/zero of=/scratch/big bs=1M count=16 2>&1; echo WROTE; exec sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  - name: reader
    image: busybox:test
    command: ["sh", "-c", "until test -e /scratch/note; do sleep 0.2; done; cat /scratch/note; echo READ; exec sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
"#
    .replace("NODE", &node);
    c.kubectl_in(&["apply", "-f", "-"], &manifest);
    let writer = c.wait_for("the writer", Duration::from_secs(60), || {
        let out = c.kubectl_output(&["logs", "cache", "-c", "writer"], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("WROTE").then_some(text)
    });
    assert!(writer.contains("tmpfs"), "the volume is a tmpfs: {writer}");
    assert!(
        writer.contains("No space left on device"),
        "8Mi bounds it: {writer}"
    );
    let reader = c.wait_for("the reader", Duration::from_secs(30), || {
        let out = c.kubectl_output(&["logs", "cache", "-c", "reader"], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("READ").then_some(text)
    });
    assert!(reader.contains("shared"), "{reader}");
    let uid = c.kubectl(&["get", "pod", "cache", "-o", "jsonpath={.metadata.uid}"]);
    let mounted = || {
        std::fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains(&uid) && l.starts_with("tmpfs"))
    };
    assert!(
        mounted(),
        "the tmpfs is mounted on the host while the pod runs"
    );
    c.kubectl(&["delete", "pod", "cache", "--timeout=60s"]);
    c.wait_for("the tmpfs to be unmounted", Duration::from_secs(10), || {
        (!mounted()).then_some(())
    });
}

const IDLE: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: idle
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: sleeper
    image: busybox:test
    command: ["sleep", "3600"]
"#;

const READY_EVERY_SECOND: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: checked
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: sleeper
    image: busybox:test
    command: ["sleep", "3600"]
    readinessProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
"#;

/// The value of the first sample of `series` (name and labels, as in the exposition) in
/// the node's `/metrics`, read through the API server's node proxy.
fn node_metric(c: &node::NodeCluster, series: &str) -> Option<f64> {
    let path = format!("/api/v1/nodes/{}/proxy/metrics", c.node_name());
    c.kubectl(&["get", "--raw", &path])
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Polls `metric` until `window` has passed; returns how much it grew.
fn growth(c: &node::NodeCluster, window: Duration, metric: impl Fn() -> f64) -> f64 {
    let before = metric();
    let start = Instant::now();
    c.wait_for("the measuring window", window * 2, || {
        (start.elapsed() >= window).then_some(())
    });
    metric() - before
}

/// The pod workers run on the reconcile harness and nothing polls: an idle pod without
/// probes is not synced again until something happens (the shims' exits, a change, the
/// 30 s resync), where a 500 ms status poll synced it twice a second; a readiness probe
/// still runs every period, because each sync asks for the next one when the probe is due.
#[test]
fn idle_pods_are_not_polled_and_probes_run_on_their_period() {
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    let node = c.node_name();
    c.kubectl_in(&["apply", "-f", "-"], &IDLE.replace("NODE", &node));
    c.wait_pod("idle", Duration::from_secs(30), ready);
    let series = "workqueue_adds_total{name=\"pod-workers\"}";
    let added = node_metric(&c, series);
    assert!(
        added.is_some_and(|n| n >= 1.0),
        "the pod workers report upstream's workqueue metrics: {added:?}"
    );
    let adds = || node_metric(&c, series).unwrap_or(0.0);
    // Whatever the start still queues (its status write coming back on the watch).
    c.wait_for("the pod workers to settle", Duration::from_secs(20), || {
        (growth(&c, Duration::from_millis(1500), adds) == 0.0).then_some(())
    });
    let woken = growth(&c, Duration::from_secs(3), adds);
    assert!(
        woken <= 1.0,
        "an idle pod was synced {woken} times in 3 s (at most the resync's once)"
    );

    c.kubectl_in(
        &["apply", "-f", "-"],
        &READY_EVERY_SECOND.replace("NODE", &node),
    );
    c.wait_pod("checked", Duration::from_secs(30), ready);
    let series = "prober_probe_total{probe_type=\"Readiness\",result=\"successful\",\
                  container=\"sleeper\",pod=\"checked\"";
    let probes = || {
        let path = format!("/api/v1/nodes/{node}/proxy/metrics/probes");
        c.kubectl(&["get", "--raw", &path])
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let ran = growth(&c, Duration::from_secs(3), probes);
    assert!(
        (2.0..=4.0).contains(&ran),
        "a 1 s readiness probe ran {ran} times in 3 s"
    );
}
