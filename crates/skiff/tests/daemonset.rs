//! End to end: a DaemonSet on two nodes (the server's own and a `skiff agent` in a network
//! namespace of its own) with real kubectl: one pod per node bound by the scheduler, a node
//! labelled out of the nodeSelector losing its pod and getting it back, a rolling update to
//! a new image with `kubectl rollout status`, `rollout history` and `rollout undo` (root
//! only; skipped otherwise).

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::collections::BTreeMap;
use std::time::Duration;

/// Pods on nodes labelled `agents=yes`; a TERM trap so a rolling update does not wait out the
/// grace period.
const DAEMONSET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
  template:
    metadata:
      labels:
        app: agent
    spec:
      nodeSelector:
        agents: "yes"
      terminationGracePeriodSeconds: 5
      containers:
      - name: agent
        image: busybox:test
        command: ["sh", "-c", "trap 'exit 0' TERM; echo agent up; while true; do sleep 1 & wait; done"]
"#;

/// Live (not terminating) pods of the DaemonSet: node name → (pod name, image, ready).
fn pods(c: &node::NodeCluster) -> BTreeMap<String, Vec<(String, String, bool)>> {
    let list = c.json(&["get", "pods", "-l", "app=agent"]);
    let mut by_node: BTreeMap<String, Vec<(String, String, bool)>> = BTreeMap::new();
    for p in list["items"].as_array().into_iter().flatten() {
        if !p["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let ready = p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        by_node
            .entry(p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
            .or_default()
            .push((
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                ready,
            ));
    }
    by_node
}

/// Waits until every node in `nodes` (and no other) runs exactly one ready pod of `image`.
fn wait_one_per_node(c: &node::NodeCluster, nodes: &[&str], image: &str) {
    let what = format!("one ready {image} pod on each of {nodes:?}");
    c.wait_for(&what, Duration::from_secs(120), || {
        let by_node = pods(c);
        let on: Vec<&str> = by_node.keys().map(String::as_str).collect();
        let good = on == nodes
            && by_node
                .values()
                .all(|p| p.len() == 1 && p[0].1 == image && p[0].2);
        good.then_some(())
    });
}

fn status(c: &node::NodeCluster, field: &str) -> String {
    c.kubectl(&[
        "get",
        "ds",
        "agent",
        "-o",
        &format!("jsonpath={{.status.{field}}}"),
    ])
}

#[test]
fn a_daemon_set_runs_one_pod_per_selected_node_and_rolls_out_and_back() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start_listening("0.0.0.0:0");
    let node_a = c.node_name();
    let b = node::AgentNode::join(&c, "node-b", "10.244.1.0/24");
    for image in ["busybox:test", "busybox:v2"] {
        c.load_busybox(image);
        b.load_busybox(image);
    }
    c.wait_for("node-b to be Ready", Duration::from_secs(30), || {
        let n = c.json(&["get", "node", "node-b"]);
        n["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
            .then_some(())
    });
    let mut both = vec![node_a.as_str(), "node-b"];
    both.sort();
    for n in &both {
        c.kubectl(&["label", "node", n, "agents=yes", "--overwrite"]);
    }

    // One pod per selected node, placed through the scheduler by node affinity.
    c.kubectl_in(&["apply", "-f", "-"], DAEMONSET);
    let out = c.kubectl(&["rollout", "status", "ds/agent", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_one_per_node(&c, &both, "busybox:test");
    assert_eq!(status(&c, "desiredNumberScheduled"), "2");
    let pod = c.json(&["get", "pods", "-l", "app=agent"])["items"][0].clone();
    let field = &pod["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchFields"]
        [0];
    assert_eq!(field["key"], "metadata.name", "{pod:#}");
    let labels = &pod["metadata"]["labels"];
    assert!(labels["controller-revision-hash"].is_string(), "{labels}");
    assert_eq!(labels["pod-template-generation"], "1", "{labels}");
    let tolerations = pod["spec"]["tolerations"].to_string();
    assert!(
        tolerations.contains("node.kubernetes.io/unreachable"),
        "{tolerations}"
    );

    // A node labelled out of the selector loses its pod; labelled back in, gets one again.
    c.kubectl(&["label", "node", "node-b", "agents=no", "--overwrite"]);
    wait_one_per_node(&c, &[node_a.as_str()], "busybox:test");
    c.wait_for("desiredNumberScheduled 1", Duration::from_secs(30), || {
        (status(&c, "desiredNumberScheduled") == "1").then_some(())
    });
    c.kubectl(&["label", "node", "node-b", "agents=yes", "--overwrite"]);
    wait_one_per_node(&c, &both, "busybox:test");

    // A rolling update to a new image, watched by kubectl.
    c.kubectl(&["set", "image", "ds/agent", "agent=busybox:v2"]);
    let out = c.kubectl(&["rollout", "status", "ds/agent", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_one_per_node(&c, &both, "busybox:v2");
    assert_eq!(status(&c, "updatedNumberScheduled"), "2");
    let history = c.kubectl(&["rollout", "history", "ds/agent"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let shown = c.kubectl(&["rollout", "history", "ds/agent", "--revision=2"]);
    assert!(shown.contains("busybox:v2"), "{shown}");

    // And back: the first template becomes revision 3.
    let out = c.kubectl(&["rollout", "undo", "ds/agent"]);
    assert!(out.contains("rolled back"), "{out}");
    let out = c.kubectl(&["rollout", "status", "ds/agent", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_one_per_node(&c, &both, "busybox:test");
    let history = c.kubectl(&["rollout", "history", "ds/agent"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    let revs = c.kubectl(&[
        "get",
        "controllerrevisions",
        "-l",
        "app=agent",
        "-o",
        "name",
    ]);
    assert_eq!(revs.lines().count(), 2, "{revs}");

    // Deleting the DaemonSet takes its pods with it (owner references, garbage collector).
    c.kubectl(&["delete", "ds", "agent", "--wait=true"]);
    c.wait_for("the daemon pods to go", Duration::from_secs(60), || {
        pods(&c).is_empty().then_some(())
    });
    drop(b);
}
