//! End to end: PersistentVolumeClaims bound to local directories, provisioned by the
//! default `local-path` class or bound to static volumes (root only; skipped otherwise).

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::path::PathBuf;
use std::time::Duration;

/// A pod that mounts claim `data` at /data and runs `script`.
fn pod(name: &str, script: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: data
  containers:
  - name: main
    image: busybox:test
    command: ["sh", "-c", "{script}; exec sleep 3600"]
    volumeMounts: [{{name: data, mountPath: /data}}]
"#
    )
}

const CLAIM: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"#;

/// `reason: message` of the events about the object named `name`.
fn events(c: &node::NodeCluster, name: &str) -> String {
    let list = c.json(&["get", "events"]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| {
            format!(
                "{}: {}\n",
                e["reason"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn waiting_reason(pod: &serde_json::Value) -> Option<&str> {
    pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].as_str()
}

/// A claim without a class gets a directory on the node from the default class once its
/// pod is scheduled; the pod waits for it, the data outlives the pod, and deleting the
/// claim deletes the volume and its directory.
#[test]
fn claims_without_class_get_a_local_directory_that_outlives_pods() {
    let c = node_cluster_or_skip!();
    c.node_name();
    c.load_busybox("busybox:test");
    let classes = c.wait_for("the default StorageClass", Duration::from_secs(10), || {
        let out = c.kubectl_output(&["get", "storageclass"], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("local-path").then_some(text)
    });
    assert!(classes.contains("(default)"), "{classes}");
    assert!(classes.contains("rancher.io/local-path"), "{classes}");
    assert!(classes.contains("WaitForFirstConsumer"), "{classes}");

    // The pod comes first: it waits, ContainerCreating, for a claim that does not exist.
    c.kubectl_in(
        &["apply", "-f", "-"],
        &pod("writer", "echo persisted > /data/file && echo WROTE"),
    );
    c.wait_pod("writer", Duration::from_secs(20), |p| {
        waiting_reason(p) == Some("ContainerCreating") && p["spec"]["nodeName"].is_string()
    });
    c.wait_for("a FailedMount event", Duration::from_secs(10), || {
        let events = events(&c, "writer");
        (events.contains("FailedMount")
            && events.contains(r#"persistentvolumeclaim "data" not found"#))
        .then_some(())
    });

    c.kubectl_in(&["apply", "-f", "-"], CLAIM);
    c.wait_logs("writer", "WROTE", Duration::from_secs(30));
    let claim = c.json(&["get", "pvc", "data"]);
    assert_eq!(claim["status"]["phase"], "Bound", "{claim:#}");
    assert_eq!(claim["status"]["capacity"]["storage"], "1Gi", "{claim:#}");
    assert_eq!(claim["spec"]["storageClassName"], "local-path", "{claim:#}");
    let uid = claim["metadata"]["uid"].as_str().unwrap();
    let volume = format!("pvc-{uid}");
    assert_eq!(claim["spec"]["volumeName"], volume.as_str(), "{claim:#}");
    let table = c.kubectl(&["get", "pvc", "data"]);
    assert!(
        table.contains("Bound") && table.contains(&volume) && table.contains("1Gi"),
        "{table}"
    );
    let table = c.kubectl(&["get", "pv"]);
    assert!(
        table.contains("Bound") && table.contains("default/data"),
        "{table}"
    );
    let pv = c.json(&["get", "pv", &volume]);
    let dir = PathBuf::from(pv["spec"]["hostPath"]["path"].as_str().unwrap());
    assert_eq!(dir, c.dir.path().join("volumes").join(&volume), "{pv:#}");
    assert_eq!(
        std::fs::read_to_string(dir.join("file")).unwrap(),
        "persisted\n"
    );
    let events = events(&c, "data");
    assert!(events.contains("ProvisioningSucceeded"), "{events}");

    // A new pod on the same claim reads what the first one wrote.
    c.kubectl(&["delete", "pod", "writer", "--timeout=30s"]);
    c.kubectl_in(
        &["apply", "-f", "-"],
        &pod("reader", "cat /data/file && echo READ"),
    );
    let logs = c.wait_logs("reader", "READ", Duration::from_secs(30));
    assert!(logs.contains("persisted"), "{logs}");

    // Reclaim policy Delete: the volume and then its directory go with the claim.
    c.kubectl(&["delete", "pod", "reader", "--timeout=30s"]);
    c.kubectl(&["delete", "pvc", "data", "--timeout=30s"]);
    c.wait_for("the volume to be deleted", Duration::from_secs(20), || {
        let out = c.kubectl_output(&["get", "pv", &volume], None);
        (!out.status.success()).then_some(())
    });
    c.wait_for(
        "its directory to be removed",
        Duration::from_secs(20),
        || (!dir.exists()).then_some(()),
    );
}

/// A claim binds the smallest pre-created volume of its class that fits; with reclaim
/// policy Retain the volume is Released, not deleted, when the claim goes.
#[test]
fn claims_bind_the_smallest_fitting_static_volume() {
    let c = node_cluster_or_skip!();
    c.node_name();
    c.load_busybox("busybox:test");
    let volume = |name: &str, size: &str| {
        let path = c.dir.path().join(name);
        format!(
            r#"
apiVersion: v1
kind: PersistentVolume
metadata:
  name: {name}
spec:
  storageClassName: manual
  capacity: {{storage: {size}}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: {}}}
"#,
            path.display()
        )
    };
    c.kubectl_in(&["apply", "-f", "-"], &volume("big", "5Gi"));
    c.kubectl_in(&["apply", "-f", "-"], &volume("small", "1Gi"));
    c.kubectl_in(
        &["apply", "-f", "-"],
        &CLAIM
            .replace("storage: 1Gi", "storage: 500Mi")
            .replace("spec:\n", "spec:\n  storageClassName: manual\n"),
    );
    let claim = c.wait_for("the claim to bind", Duration::from_secs(15), || {
        let claim = c.json(&["get", "pvc", "data"]);
        (claim["status"]["phase"] == "Bound").then_some(claim)
    });
    assert_eq!(claim["spec"]["volumeName"], "small", "{claim:#}");
    assert_eq!(claim["status"]["capacity"]["storage"], "1Gi", "{claim:#}");
    c.wait_for(
        "the other volume to be Available",
        Duration::from_secs(10),
        || {
            let big = c.json(&["get", "pv", "big"]);
            (big["status"]["phase"] == "Available" && big["spec"]["claimRef"].is_null())
                .then_some(())
        },
    );
    let small = c.json(&["get", "pv", "small"]);
    assert_eq!(small["status"]["phase"], "Bound", "{small:#}");
    assert_eq!(small["spec"]["claimRef"]["name"], "data", "{small:#}");

    c.kubectl_in(
        &["apply", "-f", "-"],
        &pod("user", "echo static > /data/file && echo WROTE"),
    );
    c.wait_logs("user", "WROTE", Duration::from_secs(30));
    let written = std::fs::read_to_string(c.dir.path().join("small/file")).unwrap();
    assert_eq!(written, "static\n");

    c.kubectl(&["delete", "pod", "user", "--timeout=30s"]);
    c.kubectl(&["delete", "pvc", "data", "--timeout=30s"]);
    c.wait_for("the volume to be released", Duration::from_secs(15), || {
        let pv = c.json(&["get", "pv", "small"]);
        (pv["status"]["phase"] == "Released").then_some(())
    });
    assert!(
        c.dir.path().join("small/file").exists(),
        "Retain keeps the data"
    );
}

/// Storage protection: a claim deleted while a running pod uses it stays Terminating, with
/// its volume and data, until the pod is gone; then the claim, the volume and the
/// directory go.
#[test]
fn a_claim_in_use_is_kept_until_its_pod_is_gone() {
    let c = node_cluster_or_skip!();
    c.node_name();
    c.load_busybox("busybox:test");
    c.kubectl_in(&["apply", "-f", "-"], CLAIM);
    c.kubectl_in(
        &["apply", "-f", "-"],
        &pod("user", "echo kept > /data/file && echo WROTE"),
    );
    c.wait_logs("user", "WROTE", Duration::from_secs(30));
    let claim = c.json(&["get", "pvc", "data"]);
    let finalizers = claim["metadata"]["finalizers"].to_string();
    assert!(
        finalizers.contains("kubernetes.io/pvc-protection"),
        "{claim:#}"
    );
    let volume = claim["spec"]["volumeName"].as_str().unwrap().to_string();
    let pv = c.json(&["get", "pv", &volume]);
    assert!(
        pv["metadata"]["finalizers"]
            .to_string()
            .contains("kubernetes.io/pv-protection"),
        "{pv:#}"
    );
    let dir = PathBuf::from(pv["spec"]["hostPath"]["path"].as_str().unwrap());

    c.kubectl(&["delete", "pvc", "data", "--wait=false"]);
    let claim = c.wait_for(
        "the claim to be Terminating",
        Duration::from_secs(10),
        || {
            let claim = c.json(&["get", "pvc", "data"]);
            claim["metadata"]["deletionTimestamp"]
                .is_string()
                .then_some(claim)
        },
    );
    assert!(
        claim["metadata"]["finalizers"]
            .to_string()
            .contains("kubernetes.io/pvc-protection"),
        "{claim:#}"
    );
    let table = c.kubectl(&["get", "pvc", "data"]);
    assert!(table.contains("Terminating"), "{table}");
    // The pod keeps running on its data while the claim waits: the volume stays bound.
    let pod = c.json(&["get", "pod", "user"]);
    assert_eq!(pod["status"]["phase"], "Running", "{pod:#}");
    let pv = c.json(&["get", "pv", &volume]);
    assert_eq!(pv["status"]["phase"], "Bound", "{pv:#}");
    assert!(pv["metadata"]["deletionTimestamp"].is_null(), "{pv:#}");
    assert_eq!(
        std::fs::read_to_string(dir.join("file")).unwrap_or_default(),
        "kept\n",
        "the data is still there"
    );
    let claim = c.json(&["get", "pvc", "data"]);
    assert!(
        claim["metadata"]["deletionTimestamp"].is_string(),
        "{claim:#}"
    );

    c.kubectl(&["delete", "pod", "user", "--timeout=30s"]);
    c.wait_for("the claim to be gone", Duration::from_secs(20), || {
        let out = c.kubectl_output(&["get", "pvc", "data"], None);
        (!out.status.success()).then_some(())
    });
    c.wait_for("the volume to be deleted", Duration::from_secs(20), || {
        let out = c.kubectl_output(&["get", "pv", &volume], None);
        (!out.status.success()).then_some(())
    });
    c.wait_for(
        "its directory to be removed",
        Duration::from_secs(20),
        || (!dir.exists()).then_some(()),
    );
}
