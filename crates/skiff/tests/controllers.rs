//! End-to-end tests of the controllers and the scheduler with real kubectl. No node agent
//! runs pods here: the tests play kubelet by patching pod status, and create Node objects
//! that exist only in the API.

mod common;

use common::{seed_manifest, Cluster};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const READY: &str =
    r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;

/// Polls `f` until it returns Some, or panics with `what` after `secs`.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Live (not terminating) pods with `selector`.
fn live_pods(c: &Cluster, selector: &str) -> Vec<Value> {
    items(&c.json(&["get", "pods", "-l", selector]))
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn name(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Plays kubelet once: marks every live, not yet ready pod with `selector` Running and Ready.
fn kubelet_pass(c: &Cluster, selector: &str) -> Vec<Value> {
    let pods = live_pods(c, selector);
    for p in pods.iter().filter(|p| !is_ready(p)) {
        let out = c.kubectl_output(
            &[
                "patch",
                "pod",
                &name(p),
                "--subresource=status",
                "--type=merge",
                "-p",
                READY,
            ],
            None,
        );
        // The pod may have been deleted meanwhile; the next pass sees the new state.
        let _ = out;
    }
    pods
}

#[test]
fn replicaset_keeps_three_pods_and_replaces_a_deleted_one() {
    let c = Cluster::start();
    let manifest = seed_manifest("02-replicaset.yaml");
    c.kubectl(&["apply", "-f", manifest.to_str().unwrap_or_default()]);
    let first = wait_for(20, "3 pods", || {
        let pods = live_pods(&c, "app=collector");
        (pods.len() == 3).then_some(pods)
    });
    for p in &first {
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicaSet");
        assert_eq!(owner["controller"], true);
    }
    let victim = name(&first[0]);
    c.kubectl(&["delete", "pod", &victim]);
    wait_for(20, "a replacement pod", || {
        let pods = live_pods(&c, "app=collector");
        (pods.len() == 3 && pods.iter().all(|p| name(p) != victim)).then_some(())
    });
    kubelet_pass(&c, "app=collector");
    wait_for(20, "status readyReplicas 3", || {
        let rs = c.json(&["get", "rs", "collector"]);
        (rs["status"]["readyReplicas"] == 3 && rs["status"]["replicas"] == 3).then_some(())
    });
    let describe = c.kubectl(&["describe", "rs", "collector"]);
    assert!(describe.contains("SuccessfulCreate"), "{describe}");
    assert!(describe.contains("Created pod: collector-"), "{describe}");
    let out = c.kubectl(&["scale", "rs", "collector", "--replicas=1"]);
    assert!(out.contains("scaled"), "{out}");
    wait_for(20, "scale down to 1", || {
        (live_pods(&c, "app=collector").len() == 1).then_some(())
    });
    let describe = c.kubectl(&["describe", "rs", "collector"]);
    assert!(describe.contains("SuccessfulDelete"), "{describe}");
}

/// Rollout bounds seen while the fake kubelet ran: (most live pods, fewest ready pods).
struct Watch {
    max_total: usize,
    min_ready: usize,
}

fn rollout_status(c: &Cluster) {
    let out = c.kubectl_output(
        &["rollout", "status", "deploy/collector", "--timeout=60s"],
        None,
    );
    assert!(
        out.status.success(),
        "rollout status failed: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn deployment_rolls_out_within_surge_and_unavailable_and_undoes() {
    let c = Cluster::start();
    let manifest = seed_manifest("03-deployment.yaml");
    c.kubectl(&["apply", "-f", manifest.to_str().unwrap_or_default()]);
    let stop = AtomicBool::new(false);
    let recording = AtomicBool::new(false);
    let watch = Mutex::new(Watch {
        max_total: 0,
        min_ready: usize::MAX,
    });
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let pods = kubelet_pass(&c, "app=collector");
                if recording.load(Ordering::Relaxed) {
                    let mut w = watch.lock().unwrap_or_else(|e| e.into_inner());
                    w.max_total = w.max_total.max(pods.len());
                    w.min_ready = w.min_ready.min(pods.iter().filter(|p| is_ready(p)).count());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        rollout_status(&c);
        recording.store(true, Ordering::Relaxed);
        c.kubectl(&["set", "image", "deploy/collector", "collector=collector:v3"]);
        rollout_status(&c);
        recording.store(false, Ordering::Relaxed);
        let rs = items(&c.json(&["get", "rs", "-l", "app=collector"]));
        assert_eq!(rs.len(), 2, "one ReplicaSet per template");
        let history = c.kubectl(&["rollout", "history", "deploy/collector"]);
        assert!(
            history.contains("\n1 ") && history.contains("\n2 "),
            "{history}"
        );
        c.kubectl(&["rollout", "undo", "deploy/collector"]);
        rollout_status(&c);
        stop.store(true, Ordering::Relaxed);
    });
    let w = watch.into_inner().unwrap_or_else(|e| e.into_inner());
    // Defaults: maxSurge 25% of 3 rounds up to 1, maxUnavailable 25% rounds down to 0.
    assert!(
        w.max_total <= 4,
        "saw {} pods, more than replicas + maxSurge",
        w.max_total
    );
    assert!(w.min_ready >= 3, "ready pods dropped to {}", w.min_ready);
    let d = c.json(&["get", "deploy", "collector"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "collector:v2"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        items(&c.json(&["get", "rs", "-l", "app=collector"])).len(),
        2,
        "undo reuses v2's ReplicaSet"
    );
    let history = c.kubectl(&["rollout", "history", "deploy/collector"]);
    assert!(
        history.contains("\n2 ") && history.contains("\n3 "),
        "{history}"
    );
    let describe = c.kubectl(&["describe", "deploy", "collector"]);
    assert!(describe.contains("ScalingReplicaSet"), "{describe}");
    assert!(describe.contains("NewReplicaSetAvailable"), "{describe}");
}

fn create_web(c: &Cluster, name: &str) {
    c.kubectl(&[
        "create",
        "deployment",
        name,
        "--image=collector:v2",
        "--replicas=2",
    ]);
    let selector = format!("app={name}");
    wait_for(20, "2 pods", || {
        (live_pods(c, &selector).len() == 2).then_some(())
    });
}

#[test]
fn deleting_a_deployment_removes_its_replicasets_and_pods() {
    let c = Cluster::start();
    for (name, cascade) in [("bg", "background"), ("fg", "foreground")] {
        create_web(&c, name);
        c.kubectl(&["delete", "deploy", name, &format!("--cascade={cascade}")]);
        let selector = format!("app={name}");
        wait_for(20, "ReplicaSets and pods gone", || {
            let rs = items(&c.json(&["get", "rs", "-l", &selector]));
            let pods = items(&c.json(&["get", "pods", "-l", &selector]));
            (rs.is_empty() && pods.is_empty()).then_some(())
        });
        let left = c.kubectl_output(&["get", "deploy", name], None);
        assert!(
            !left.status.success(),
            "{cascade}: the Deployment itself is gone"
        );
    }
}

#[test]
fn orphan_cascade_keeps_replicasets_and_pods() {
    let c = Cluster::start();
    create_web(&c, "web");
    c.kubectl(&["delete", "deploy", "web", "--cascade=orphan"]);
    let rs = wait_for(20, "orphaned ReplicaSet", || {
        let rs = items(&c.json(&["get", "rs", "-l", "app=web"]));
        let gone = !c
            .kubectl_output(&["get", "deploy", "web"], None)
            .status
            .success();
        (gone && rs.len() == 1 && rs[0]["metadata"]["ownerReferences"].is_null()).then_some(rs)
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(live_pods(&c, "app=web").len(), 2, "pods kept");
    assert_eq!(
        items(&c.json(&["get", "rs", "-l", "app=web"])).len(),
        1,
        "{rs:?}"
    );
}

const NODE: &str = r#"{
  "apiVersion": "v1", "kind": "Node",
  "metadata": {"name": "fake-node", "labels": {"kubernetes.io/hostname": "fake-node"}},
  "status": {
    "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
    "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
  }
}"#;

#[test]
fn scheduler_binds_pods_to_a_ready_node_and_explains_misfits() {
    let c = Cluster::start();
    c.kubectl_in(&["create", "-f", "-"], NODE);
    let node = c.json(&["get", "node", "fake-node"]);
    if node["status"]["conditions"].is_null() {
        // The API server dropped status on create; set it as a kubelet would.
        let status = serde_json::json!({ "status": serde_json::from_str::<Value>(NODE).unwrap_or_default()["status"] });
        c.kubectl(&[
            "patch",
            "node",
            "fake-node",
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ]);
    }
    c.kubectl(&["run", "p", "--image=collector:v2"]);
    wait_for(20, "pod bound to fake-node", || {
        let p = c.json(&["get", "pod", "p"]);
        (p["spec"]["nodeName"] == "fake-node").then_some(())
    });
    let describe = wait_for(10, "Scheduled event", || {
        let d = c.kubectl(&["describe", "pod", "p"]);
        d.contains("Successfully assigned default/p to fake-node")
            .then_some(d)
    });
    assert!(describe.contains("Scheduled"), "{describe}");
    c.kubectl(&["run", "big", "--image=collector:v2", "--overrides", r#"{"spec":{"containers":[{"name":"big","image":"collector:v2","resources":{"requests":{"cpu":"64"}}}]}}"#]);
    let describe = wait_for(20, "FailedScheduling event", || {
        let d = c.kubectl(&["describe", "pod", "big"]);
        d.contains("FailedScheduling").then_some(d)
    });
    assert!(
        describe.contains("0/1 nodes are available: 1 Insufficient cpu."),
        "{describe}"
    );
    let big = c.json(&["get", "pod", "big"]);
    let cond = big["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled").cloned())
        .unwrap_or_default();
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "Unschedulable");
    assert!(big["spec"]["nodeName"].is_null());
}

const RC: &str = r#"
apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
spec:
  replicas: 2
  selector:
    app: legacy
  template:
    metadata:
      labels:
        app: legacy
    spec:
      containers:
      - name: main
        image: collector:v2
"#;

#[test]
fn replication_controller_keeps_its_replicas() {
    let c = Cluster::start();
    c.kubectl_in(&["create", "-f", "-"], RC);
    let pods = wait_for(20, "2 pods", || {
        let pods = live_pods(&c, "app=legacy");
        (pods.len() == 2).then_some(pods)
    });
    for p in &pods {
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicationController", "{p:#}");
        assert_eq!(owner["apiVersion"], "v1", "{p:#}");
        assert_eq!(owner["controller"], true, "{p:#}");
        // No node runs here: the pods stay Pending.
        assert_eq!(p["status"]["phase"], "Pending", "{p:#}");
    }
    wait_for(20, "status replicas 2", || {
        let rc = c.json(&["get", "rc", "legacy"]);
        (rc["status"]["replicas"] == 2).then_some(())
    });
    c.kubectl(&["scale", "rc", "legacy", "--replicas=3"]);
    wait_for(20, "3 pods", || {
        (live_pods(&c, "app=legacy").len() == 3).then_some(())
    });
    // Deleting it deletes its pods, through the garbage collector.
    c.kubectl(&["delete", "rc", "legacy"]);
    wait_for(20, "pods gone", || {
        items(&c.json(&["get", "pods", "-l", "app=legacy"]))
            .is_empty()
            .then_some(())
    });
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

/// A ConfigMap owned by the Widget `owner` (uid `uid`), and a Widget owned by a ConfigMap.
fn owned_configmap(name: &str, owner: &str, uid: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "ConfigMap",
  "metadata": {{"name": "{name}", "ownerReferences": [
    {{"apiVersion": "example.com/v1", "kind": "Widget", "name": "{owner}", "uid": "{uid}",
      "blockOwnerDeletion": true}}]}}}}"#
    )
}

/// Custom resources are owners and dependents like any kind, once their CRD is established:
/// background and foreground deletion reach built-in dependents of a Widget, and a Widget
/// owned by a deleted ConfigMap is collected.
#[test]
fn garbage_collection_covers_custom_resources() {
    let c = Cluster::start();
    c.kubectl_in(&["create", "-f", "-"], WIDGET_CRD);
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.example.com",
        "--timeout=30s",
    ]);
    for (widget, cascade) in [("bg", "background"), ("fg", "foreground")] {
        c.kubectl_in(
            &["create", "-f", "-"],
            &format!(r#"{{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {{"name": "{widget}"}}}}"#),
        );
        let uid = c.json(&["get", "widget", widget])["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let cm = format!("{widget}-config");
        c.kubectl_in(&["create", "-f", "-"], &owned_configmap(&cm, widget, &uid));
        c.kubectl(&["delete", "widget", widget, &format!("--cascade={cascade}")]);
        wait_for(30, "the owned ConfigMap to be collected", || {
            let out = c.kubectl_output(&["get", "configmap", &cm], None);
            (!out.status.success()).then_some(())
        });
        let left = c.kubectl_output(&["get", "widget", widget], None);
        assert!(!left.status.success(), "{cascade}: the Widget is gone");
    }

    c.kubectl(&["create", "configmap", "owner"]);
    let uid = c.json(&["get", "configmap", "owner"])["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    c.kubectl_in(
        &["create", "-f", "-"],
        &format!(
            r#"{{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {{"name": "dependent",
  "ownerReferences": [{{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "{uid}"}}]}}}}"#
        ),
    );
    c.kubectl(&["delete", "configmap", "owner"]);
    wait_for(30, "the owned Widget to be collected", || {
        let out = c.kubectl_output(&["get", "widget", "dependent"], None);
        (!out.status.success()).then_some(())
    });
}

/// A Job adopts the orphan pods its selector matches (upstream's getPodsForJob), with the
/// tracking finalizer, and counts them instead of creating more. The orphan names a scheduler
/// nobody runs, so it stays Pending: a pod bound to a node that does not exist would be
/// removed by the pod garbage collector, as upstream's PodGC does.
#[test]
fn a_job_adopts_matching_orphan_pods() {
    let c = Cluster::start();
    c.kubectl_in(
        &["create", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "labels": {"app": "batch"}},
  "spec": {"restartPolicy": "Never", "schedulerName": "nobody",
           "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}"#,
    );
    c.kubectl_in(
        &["create", "-f", "-"],
        r#"{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "adopter"},
  "spec": {"manualSelector": true, "selector": {"matchLabels": {"app": "batch"}},
           "parallelism": 1, "completions": 1,
           "template": {"metadata": {"labels": {"app": "batch"}},
                        "spec": {"restartPolicy": "Never",
                                 "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}"#,
    );
    let uid = c.json(&["get", "job", "adopter"])["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pod = wait_for(30, "the orphan to be adopted", || {
        let p = c.json(&["get", "pod", "orphan"]);
        let owned = p["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|r| {
                r.iter()
                    .any(|r| r["uid"] == uid.as_str() && r["controller"] == true)
            });
        owned.then_some(p)
    });
    let finalizers = pod["metadata"]["finalizers"].to_string();
    assert!(
        finalizers.contains("batch.kubernetes.io/job-tracking"),
        "adopted with the tracking finalizer: {finalizers}"
    );
    wait_for(30, "the Job to count the adopted pod as active", || {
        (c.json(&["get", "job", "adopter"])["status"]["active"] == 1).then_some(())
    });
    let pods = items(&c.json(&["get", "pods", "-l", "app=batch", "-o", "json"]));
    assert_eq!(pods.len(), 1, "no second pod for a parallelism of 1");
}
