//! End to end: a node lost to a power cut (agent, shims and containers killed at once, its
//! link down) while a Service takes load, on two nodes (a server and `skiff agent` in
//! network namespaces of their own). The node turns NotReady within the grace period, its
//! pods leave the Service's endpoints, its Deployment pods are replaced on the other node
//! after their default 5 s toleration, its StatefulSet pod only once the node is declared
//! out of service, and the node coming back runs none of the pods replaced meanwhile
//! (root only; under `CI` a missing prerequisite fails the test).

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use node::failover::{self, pod_ready, Timeline, Watch};
use serde_json::Value;

/// A StatefulSet beside the failover's Deployment and Service.
const STATEFULSET: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 2
  podManagementPolicy: Parallel
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: busybox:test
        command: ["sh", "-c", "exec sleep 100000"]
"#;

fn items<'a>(list: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |o| o["kind"] == kind)
}

#[test]
fn a_lost_node_is_noticed_and_its_pods_replaced_within_seconds() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start_listening("0.0.0.0:0");
    let node_a = c.node_name();
    let mut b = node::AgentNode::join(&c, "node-b", "10.244.1.0/24");
    c.load_busybox("busybox:test");
    b.load_busybox("busybox:test");
    c.wait_for("node-b to be Ready", Duration::from_secs(20), || {
        let n = c.json(&["get", "node", "node-b"]);
        let ready = n["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then_some(())
    });

    let workloads = format!(
        "{}---{STATEFULSET}",
        failover::web_manifest("busybox:test", 4)
    );
    c.kubectl_in(&["apply", "-f", "-"], &workloads);
    let pods = c.wait_for(
        "6 pods Ready on both nodes",
        Duration::from_secs(60),
        || {
            let pods = c.json(&["get", "pods"]);
            let ready: Vec<Value> = pods["items"]
                .as_array()?
                .iter()
                .filter(|p| pod_ready(p))
                .cloned()
                .collect();
            let nodes: BTreeSet<&str> = ready
                .iter()
                .filter_map(|p| p["spec"]["nodeName"].as_str())
                .collect();
            (ready.len() == 6 && nodes.len() == 2).then_some(ready)
        },
    );
    // Every pod tolerates the lost-node taints for skiff's default 5 s (DefaultTolerationSeconds).
    let tolerations = pods[0]["spec"]["tolerations"].to_string();
    assert!(
        tolerations.contains(
            r#""key":"node.kubernetes.io/unreachable","operator":"Exists","tolerationSeconds":5"#
        ),
        "{tolerations}"
    );
    let on_b = |app: &str| -> Vec<Value> {
        pods.iter()
            .filter(|p| p["spec"]["nodeName"] == "node-b" && p["metadata"]["labels"]["app"] == app)
            .cloned()
            .collect()
    };
    let (web_b, db_b) = (on_b("web"), on_b("db"));
    assert!(!web_b.is_empty(), "no web pod on node-b: {pods:#?}");
    assert_eq!(db_b.len(), 1, "one db pod per node: {pods:#?}");
    let old_uids: BTreeSet<String> = web_b
        .iter()
        .chain(&db_b)
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    let db_b_name = db_b[0]["metadata"]["name"].as_str().unwrap().to_string();
    let db_b_uid = db_b[0]["metadata"]["uid"].as_str().unwrap().to_string();

    // Load through the Service from node A, until every pod answers.
    let cluster_ip = c.kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    c.wait_for("the Service to answer", Duration::from_secs(20), || {
        c.http_get(&cluster_ip, 80, "/")
    });
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let netns = c.netns.clone();
    let ip = cluster_ip.clone();
    let loader = failover::load(
        move || {
            let get = node::NodeCluster::http_getter_why(&netns);
            move || get(&ip, 80, "/").is_ok()
        },
        stop.clone(),
        t0,
    );
    c.wait_for("some load", Duration::from_secs(10), || {
        (t0.elapsed() > Duration::from_millis(500)).then_some(())
    });

    // Power loss.
    let lost = Instant::now();
    b.power_off();
    let watch = Watch {
        lost_node: "node-b".into(),
        lost_pod_prefix: "10.244.1.".into(),
        survivor: node_a.clone(),
        app: "web".into(),
        replicas: 4,
    };
    let timeline = std::cell::RefCell::new(Timeline::default());
    c.wait_for(
        "replacements Running on node A",
        Duration::from_secs(60),
        || {
            let all = c.json(&["get", "nodes,endpoints,pods"]);
            let of = |kind: &str| items(&all, kind).cloned().collect::<Vec<_>>();
            let now = lost.elapsed();
            timeline
                .borrow_mut()
                .observe(&watch, &of("Node"), &of("Endpoints"), &of("Pod"), now)
                .then_some(())
        },
    );
    // A little more load after the replacements, then the verdict.
    let settled = t0.elapsed();
    c.wait_for("load after the failover", Duration::from_secs(10), || {
        (t0.elapsed() > settled + Duration::from_secs(2)).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let requests = loader.join().expect("load thread");
    let failed = requests.iter().filter(|r| !r.ok).count();
    let outage = failover::longest_failure(&requests);
    let t = timeline.into_inner();
    let (not_ready, endpoints_gone, replaced) = (
        t.not_ready.expect("node-b seen NotReady"),
        t.endpoints_removed
            .expect("node-b's pods seen out of the endpoints"),
        t.replaced.expect("replacements seen Running"),
    );
    eprintln!(
        "FAILOVER not_ready_ms={} endpoints_removed_ms={} replaced_running_ms={} requests={} failed={} longest_failure_ms={}",
        not_ready.as_millis(),
        endpoints_gone.as_millis(),
        replaced.as_millis(),
        requests.len(),
        failed,
        outage.as_millis()
    );
    // The issue's target is 15 s: grace (8 s) + toleration (5 s) leave about 2 s for the
    // eviction and the new pod's start, which a loaded CI machine (every e2e file runs in
    // parallel) can overrun; so can the 10 s outage target. The figures go to
    // docs/benchmarks.md; the test holds bounds that only a real regression crosses.
    assert!(
        replaced < Duration::from_secs(25),
        "replacements Running after {replaced:?}"
    );
    assert!(
        outage < Duration::from_secs(12),
        "requests failed for {outage:?}"
    );
    assert!(endpoints_gone <= replaced);

    // The node is Unknown with upstream's words, and tainted.
    let node_b = c.json(&["get", "node", "node-b"]);
    let ready = node_b["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap();
    assert_eq!(ready["status"], "Unknown", "{node_b:#}");
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    let taints = node_b["spec"]["taints"].to_string();
    for want in [
        r#""effect":"NoSchedule","key":"node.kubernetes.io/unreachable""#,
        r#""effect":"NoExecute","key":"node.kubernetes.io/unreachable""#,
    ] {
        assert!(taints.contains(want), "{taints}");
    }

    // The StatefulSet pod is not replaced while the node might still run it: evicted, it
    // stays terminating on node-b ...
    let db = c.json(&["get", "pod", &db_b_name]);
    assert_eq!(db["metadata"]["uid"], db_b_uid.as_str(), "{db:#}");
    assert_eq!(db["spec"]["nodeName"], "node-b");
    assert!(!db["metadata"]["deletionTimestamp"].is_null(), "{db:#}");
    // ... until the node is declared out of service: then PodGC force-deletes it and the
    // StatefulSet makes it again on node A.
    c.kubectl(&[
        "taint",
        "node",
        "node-b",
        "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute",
    ]);
    c.wait_pod(&db_b_name, Duration::from_secs(30), |p| {
        p["metadata"]["uid"] != db_b_uid.as_str()
            && p["spec"]["nodeName"] == node_a.as_str()
            && pod_ready(p)
    });
    c.kubectl(&[
        "taint",
        "node",
        "node-b",
        "node.kubernetes.io/out-of-service-",
    ]);

    // Power back: node-b is Ready again, loses its taints, and runs none of the pods
    // replaced meanwhile.
    b.power_on();
    c.wait_for(
        "node-b Ready and untainted",
        Duration::from_secs(30),
        || {
            let n = c.json(&["get", "node", "node-b"]);
            let ready = n["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let tainted = n["spec"]["taints"]
                .as_array()
                .is_some_and(|t| !t.is_empty());
            (ready && !tainted).then_some(())
        },
    );
    let pods = c.json(&["get", "pods", "--field-selector", "spec.nodeName=node-b"]);
    assert_eq!(pods["items"].as_array().map(Vec::len), Some(0), "{pods:#}");
    let running_old: Vec<_> = b
        .containers()
        .into_iter()
        .filter(|(_, uid, running)| *running && old_uids.contains(uid))
        .collect();
    assert!(
        running_old.is_empty(),
        "node-b runs replaced pods again: {running_old:?}\n{}",
        b.log_text()
    );
}

const BUDGETED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox:test
        command: ["sh", "-c", "hostname > /www/index.html; exec httpd -f -p 8080 -h /www"]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 2
  selector:
    matchLabels: {app: web}
"#;

/// Ready, not terminating `app=web` pods, by node.
fn ready_web(c: &node::NodeCluster) -> Vec<String> {
    let out = c.kubectl_output(&["get", "pods", "-l", "app=web", "-o", "json"], None);
    let pods: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| pod_ready(p))
        .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn drain_moves_pods_without_breaking_their_disruption_budget() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start_listening("0.0.0.0:0");
    let node_a = c.node_name();
    let b = node::AgentNode::join(&c, "node-b", "10.244.1.0/24");
    c.load_busybox("busybox:test");
    b.load_busybox("busybox:test");
    // Cordoned, node A takes no pods: all three land on node-b.
    let out = c.kubectl(&["cordon", &node_a]);
    assert!(out.contains("cordoned"), "{out}");
    c.wait_for(
        "node A tainted unschedulable",
        Duration::from_secs(10),
        || {
            let taints = c.json(&["get", "node", &node_a])["spec"]["taints"].to_string();
            taints
                .contains("node.kubernetes.io/unschedulable")
                .then_some(())
        },
    );
    c.kubectl_in(&["apply", "-f", "-"], BUDGETED);
    c.wait_for("3 pods Ready on node-b", Duration::from_secs(60), || {
        let ready = ready_web(&c);
        (ready.len() == 3 && ready.iter().all(|n| n == "node-b")).then_some(())
    });
    let out = c.kubectl(&["uncordon", &node_a]);
    assert!(out.contains("uncordoned"), "{out}");
    c.wait_for(
        "the budget to allow one disruption",
        Duration::from_secs(20),
        || {
            let pdb = c.json(&["get", "pdb", "web"]);
            (pdb["status"]["disruptionsAllowed"] == 1 && pdb["status"]["currentHealthy"] == 3)
                .then_some(())
        },
    );

    // Watch the Ready count while node-b is drained.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, netns, kubeconfig) = (stop.clone(), c.netns.clone(), c.kubeconfig());
        std::thread::spawn(move || {
            let mut lowest = usize::MAX;
            while !stop.load(Ordering::Relaxed) {
                let out = std::process::Command::new("nsenter")
                    .arg(format!("--net=/run/netns/{netns}"))
                    .args(["kubectl", "get", "pods", "-l", "app=web", "-o", "json"])
                    .env("KUBECONFIG", &kubeconfig)
                    .output()
                    .expect("kubectl");
                let pods: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                if let Some(items) = pods["items"].as_array() {
                    lowest = lowest.min(items.iter().filter(|p| pod_ready(p)).count());
                }
            }
            lowest
        })
    };
    let out = c.kubectl_output(
        &[
            "drain",
            "node-b",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ],
        None,
    );
    stop.store(true, Ordering::Relaxed);
    let lowest = watcher.join().expect("watcher");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "drain failed:\n{stdout}\n{stderr}\n{}",
        c.log_text()
    );
    assert!(stdout.contains("node/node-b drained"), "{stdout}");
    // The budget refused what would have broken it, and drain waited and retried.
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{stderr}"
    );
    assert!(
        lowest >= 2,
        "only {lowest} pods were Ready during the drain"
    );
    let ready = c.wait_for("3 pods Ready on node A", Duration::from_secs(30), || {
        let ready = ready_web(&c);
        (ready.len() == 3).then_some(ready)
    });
    assert!(ready.iter().all(|n| *n == node_a), "{ready:?}");
    let node_b = c.json(&["get", "node", "node-b"]);
    assert_eq!(node_b["spec"]["unschedulable"], true, "{node_b:#}");
}
