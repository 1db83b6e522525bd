//! End to end: resource metrics (decision 0025). The node reads its containers' cgroups,
//! the API server scrapes each node's `/stats/summary` and serves `metrics.k8s.io`, and
//! real `kubectl top` reads it (root, runc and busybox needed; under `CI=true` their
//! absence fails the test).

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::time::{Duration, Instant};

/// A bounded CPU burner: a busy loop held to 200m by its CFS limit, so it shows in the
/// figures without taking a core from the other work on the machine.
const BURNER: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: burner
  labels: {app: burner}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 0
  containers:
  - name: spin
    image: busybox:test
    command: ["sh", "-c", "while :; do :; done"]
    resources:
      requests: {cpu: 100m, memory: 16Mi}
      limits: {cpu: 200m, memory: 32Mi}
  - name: idle
    image: busybox:test
    command: ["sleep", "3600"]
"#;

fn cluster() -> Option<node::NodeCluster> {
    match node::skip_reason() {
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and this test cannot run: {why}")
        }
        Some(why) => {
            eprintln!("skipped: {why}");
            None
        }
        None => Some(node::NodeCluster::start()),
    }
}

/// Millicores from a `kubectl top` CPU cell (`123m`, or whole cores `1`).
fn millicores(cell: &str) -> u64 {
    match cell.strip_suffix('m') {
        Some(m) => m.parse().expect("millicores"),
        None => cell.parse::<u64>().expect("cores") * 1000,
    }
}

fn columns(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn kubectl_top_shows_a_cpu_burning_pod_within_30s() {
    let Some(c) = cluster() else { return };
    c.load_busybox("busybox:test");
    let node = c.node_name();

    // The group is discoverable and registered as an available Local APIService.
    let apiservice = c.wait_for("the metrics APIService", Duration::from_secs(20), || {
        let out = c.kubectl_output(
            &["get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json"],
            None,
        );
        let obj: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let available = obj["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Available" && c["status"] == "True");
        available.then_some(obj)
    });
    assert_eq!(apiservice["spec"]["groupPriorityMinimum"], 100);
    let resources = c.kubectl(&["api-resources", "--api-group=metrics.k8s.io", "-o", "wide"]);
    assert!(resources.contains("NodeMetrics"), "{resources}");
    assert!(resources.contains("PodMetrics"), "{resources}");

    let created = Instant::now();
    c.kubectl_in(&["apply", "-f", "-"], &BURNER.replace("NODE", &node));
    c.wait_pod("burner", Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Running"
    });

    // Within 30 s of creation the burner shows with its CPU, per container.
    let (lines, latency) = c.wait_for(
        "the burner in kubectl top pod",
        Duration::from_secs(30).saturating_sub(created.elapsed()),
        || {
            let asked = Instant::now();
            let out = c.kubectl_output(&["top", "pod", "burner", "--containers"], None);
            let latency = asked.elapsed();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let spin = lines.iter().find(|l| columns(l).get(1) == Some(&"spin"))?;
            (millicores(columns(spin)[2]) >= 50).then_some((lines, latency))
        },
    );
    eprintln!(
        "burner in kubectl top after {:?}; kubectl top pod took {latency:?}",
        created.elapsed()
    );
    assert_eq!(
        columns(&lines[0]),
        ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
        "{lines:?}"
    );
    let row = |name: &str| {
        let line = lines
            .iter()
            .find(|l| columns(l).get(1) == Some(&name))
            .unwrap_or_else(|| panic!("no {name} row: {lines:?}"));
        columns(line)
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let spin = row("spin");
    assert_eq!(spin[0], "burner");
    // Held to 200m by its limit (a little over is the window's edges).
    assert!(millicores(&spin[2]) <= 260, "{spin:?}");
    assert!(spin[3].ends_with("Mi"), "{spin:?}");
    assert!(millicores(&row("idle")[2]) < 20);

    // The plain pod view sums the containers; a label selector picks it out.
    let by_label = c.kubectl(&["top", "pod", "-l", "app=burner"]);
    eprintln!("{}\n{by_label}", lines.join("\n"));
    let by_label: Vec<&str> = by_label.lines().collect();
    assert_eq!(
        columns(by_label[0]),
        ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    );
    assert_eq!(columns(by_label[1])[0], "burner");
    let none = c.kubectl_output(&["top", "pod", "-l", "app=nothing"], None);
    let none_text = String::from_utf8_lossy(&none.stderr);
    assert!(none_text.contains("No resources found"), "{none_text}");

    // The raw objects have metrics-server's shape.
    let raw: serde_json::Value = serde_json::from_str(&c.kubectl(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/burner",
    ]))
    .expect("PodMetrics JSON");
    eprintln!("{raw}");
    assert_eq!(raw["kind"], "PodMetrics");
    assert_eq!(raw["metadata"]["namespace"], "default");
    assert!(raw["window"].as_str().unwrap().ends_with('s'), "{raw}");
    assert!(raw["timestamp"].as_str().unwrap().ends_with('Z'), "{raw}");
    assert_eq!(raw["containers"][1]["name"], "spin");
    let missing = c.kubectl_output(
        &[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope",
        ],
        None,
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NotFound"));

    // The node: upstream's columns, a CPU figure at least the burner's.
    let top_node = c.kubectl(&["top", "node"]);
    eprintln!("{top_node}");
    let top_node: Vec<&str> = top_node.lines().collect();
    assert_eq!(
        columns(top_node[0]),
        ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"],
        "{top_node:?}"
    );
    let node_row = columns(top_node[1]);
    assert_eq!(node_row[0], node);
    assert!(millicores(node_row[1]) >= 50, "{node_row:?}");
    assert!(node_row[2].ends_with('%') && node_row[4].ends_with('%'));

    c.kubectl(&["delete", "pod", "burner", "--wait=false"]);
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: httpd
        image: busybox:test
        command: ["sh", "-c", "echo hello > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
        resources:
          requests: {cpu: 20m}
          limits: {cpu: 100m}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 10
"#;

fn replicas(c: &node::NodeCluster) -> Option<i64> {
    let out = c.kubectl_output(&["get", "deployment", "web", "-o", "json"], None);
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    d["spec"]["replicas"].as_i64()
}

/// An HPA at 50 % CPU of the requests scales a Deployment 1 → 3 under a bounded load from
/// inside the node's network namespace (one client, requests back to back, the pod held to
/// 100m by its limit), and back to 1 once the load stops and the shortened scale-down
/// stabilization window (10 s) has passed.
#[test]
fn an_hpa_scales_a_deployment_up_under_load_and_back_down() {
    let Some(c) = cluster() else { return };
    c.load_busybox("busybox:test");
    c.node_name();
    c.kubectl_in(&["apply", "-f", "-"], WEB);
    let ip = c.wait_for("the first web pod", Duration::from_secs(60), || {
        let pods = c.json(&["get", "pods", "-l", "app=web"]);
        let pod = &pods["items"][0];
        let ready = pod["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready
            .then(|| pod["status"]["podIP"].as_str().map(str::to_owned))
            .flatten()
    });
    // Idle: the HPA finds its metric and keeps one replica.
    c.wait_for("the HPA's first metric", Duration::from_secs(60), || {
        let hpa = c.json(&["get", "hpa", "web"]);
        let active = hpa["status"]["conditions"].as_array()?.iter().any(|c| {
            c["type"] == "ScalingActive"
                && c["status"] == "True"
                && c["reason"] == "ValidMetricFound"
        });
        active.then_some(())
    });
    assert_eq!(replicas(&c), Some(1));

    let load = node::Load::start(&c, &ip, 8080);
    let loaded = Instant::now();
    c.wait_for("a scale-up to 3", Duration::from_secs(120), || {
        (replicas(&c)? == 3).then_some(())
    });
    let up = loaded.elapsed();
    let table = c.kubectl(&["get", "hpa", "web"]);
    eprintln!("scaled up {up:?} after the load started\n{table}");
    let header = columns(table.lines().next().unwrap_or_default());
    assert_eq!(
        header,
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(
        row.contains("Deployment/web") && row.contains("%/50%"),
        "{row}"
    );
    let (requests, _) = load.finish();
    assert!(requests > 0);
    let hpa = c.json(&["get", "hpa", "web"]);
    assert!(
        hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
            .as_i64()
            .is_some(),
        "{hpa}"
    );

    let idle = Instant::now();
    c.wait_for("a scale-down to 1", Duration::from_secs(180), || {
        (replicas(&c)? == 1).then_some(())
    });
    eprintln!("scaled down {:?} after the load stopped", idle.elapsed());
    let events = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "reason=SuccessfulRescale",
    ]);
    assert!(events.contains("New size: 3"), "{events}");
    assert!(
        events.contains("New size: 1; reason: All metrics below target"),
        "{events}"
    );
    c.kubectl(&["delete", "hpa,deployment", "web", "--wait=false"]);
}

/// A v1 HPA as kubectl 1.32 and earlier post it for `kubectl autoscale deploy/web
/// --cpu-percent=50 --min=1 --max=3`.
const V1_HPA: &str = r#"
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  targetCPUUtilizationPercentage: 50
"#;

/// autoscaling/v1 (decision 0029): a v1 HPA is stored as the v2 the controller acts on, and
/// reads back in the v1 shape with the controller's v2-only status (its conditions) in
/// upstream's annotation. No node needed: the controller reads the Deployment's scale.
#[test]
fn an_autoscaling_v1_hpa_reads_back_as_v1_and_is_stored_as_v2() {
    let c = common::Cluster::start();
    let create = [
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--",
        "sleep",
        "3600",
    ];
    c.kubectl(&create);
    c.kubectl_in(&["create", "-f", "-"], V1_HPA);

    let v2 = c.json(&["get", "horizontalpodautoscalers.v2.autoscaling", "web"]);
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"],
        serde_json::json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}])
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let v1 = loop {
        let v1 = c.json(&["get", "horizontalpodautoscalers.v1.autoscaling", "web"]);
        let conditions =
            &v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/conditions"];
        if conditions
            .as_str()
            .is_some_and(|s| s.contains("AbleToScale"))
        {
            break v1;
        }
        assert!(
            Instant::now() < deadline,
            "no controller status through v1: {v1}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
    assert!(v1["spec"].get("metrics").is_none(), "{v1}");
    let yaml = c.kubectl(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "-o",
        "yaml",
    ]);
    assert!(
        yaml.contains("targetCPUUtilizationPercentage: 50"),
        "{yaml}"
    );

    // A v1 edit keeps what only v2 holds; the table prints the one object either way.
    c.kubectl(&[
        "patch",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "-p",
        r#"{"spec":{"targetCPUUtilizationPercentage":30}}"#,
    ]);
    let table = c.kubectl(&["get", "hpa", "web"]);
    assert!(table.contains("/30%"), "{table}");
}
