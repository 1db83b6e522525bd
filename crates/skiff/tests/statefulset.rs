//! End to end: the article's StatefulSet (`05-statefulset.yaml`, with a test image) on a real
//! node with real kubectl: ordered start, a bound claim per member, identity and data kept
//! across deletion, peers resolving each other through the headless Service, rollout status,
//! history and undo, the immutable-field refusal, and scale-down in reverse (root only;
//! skipped otherwise).

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::time::Duration;

/// The article's manifest with the harness's image: busybox with glibc's `getent`, a loop
/// that counts its boots on the claim and resolves its peers, and a TERM trap so a deletion
/// does not wait out the grace period.
fn manifest() -> String {
    let path = common::seed_manifest("05-statefulset.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert!(text.contains("image: mystore:latest"), "{text}");
    let script = "trap 'exit 0' TERM; \
        echo previous boots: $(cat /var/data/boots 2>/dev/null | wc -l); \
        echo boot >> /var/data/boots; \
        while true; do \
          for n in mystore-0.mystore mystore-1.mystore mystore-2.mystore; do getent hosts $n; done; \
          sleep 1 & wait; \
        done";
    text.replace(
        "image: mystore:latest",
        &format!("image: busybox:test\n          command: [\"sh\", \"-c\", \"{script}\"]"),
    )
}

/// The headless Service the set's `serviceName` names (the article leaves it out).
const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: mystore
spec:
  clusterIP: None
  selector:
    app: mystore
  ports:
  - port: 9000
"#;

fn ready(pod: &serde_json::Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The pods named `mystore-*`, by name.
fn pods(c: &node::NodeCluster) -> std::collections::BTreeMap<String, serde_json::Value> {
    let list = c.json(&["get", "pods", "-l", "app=mystore"]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p.clone(),
            )
        })
        .collect()
}

fn status(c: &node::NodeCluster) -> serde_json::Value {
    c.json(&["get", "sts", "mystore"])["status"].clone()
}

#[test]
fn the_articles_statefulset_keeps_names_order_claims_and_data() {
    let c = node_cluster_or_skip!();
    c.node_name();
    c.load_busybox_with_getent("busybox:test");
    c.kubectl_in(&["apply", "-f", "-"], SERVICE);
    c.kubectl_in(&["apply", "-f", "-"], &manifest());

    // Ordered start: a member appears only once every lower one is Running and Ready.
    c.wait_for(
        "three ready members, started in order",
        Duration::from_secs(120),
        || {
            let pods = pods(&c);
            for i in 1..3 {
                if pods.contains_key(&format!("mystore-{i}")) {
                    let prev = pods.get(&format!("mystore-{}", i - 1));
                    assert!(
                        prev.is_some_and(ready),
                        "mystore-{i} exists before mystore-{} is ready: {pods:#?}",
                        i - 1
                    );
                }
            }
            (pods.len() == 3 && pods.values().all(ready)).then_some(())
        },
    );
    let s = status(&c);
    assert_eq!(
        (&s["replicas"], &s["readyReplicas"], &s["availableReplicas"]),
        (&3.into(), &3.into(), &3.into()),
        "{s:#}"
    );
    assert_eq!(s["currentRevision"], s["updateRevision"], "{s:#}");
    assert_eq!(s["currentReplicas"], 3, "{s:#}");
    assert_eq!(s["updatedReplicas"], 3, "{s:#}");

    // Identity: labels, hostname and subdomain, the claim as volume.
    let p0 = &pods(&c)["mystore-0"];
    assert_eq!(
        p0["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "mystore-0"
    );
    assert_eq!(
        p0["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
        "0"
    );
    assert_eq!(
        p0["metadata"]["labels"]["controller-revision-hash"],
        s["updateRevision"]
    );
    assert_eq!(p0["spec"]["hostname"], "mystore-0");
    assert_eq!(p0["spec"]["subdomain"], "mystore");
    let volume = p0["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == "data")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        volume["persistentVolumeClaim"]["claimName"],
        "data-mystore-0"
    );

    // A bound claim per member.
    c.wait_for(
        "claims data-mystore-0..2 bound",
        Duration::from_secs(30),
        || {
            let claims = c.json(&["get", "pvc"]);
            let bound: Vec<String> = claims["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["status"]["phase"] == "Bound")
                .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
                .collect();
            (bound == ["data-mystore-0", "data-mystore-1", "data-mystore-2"]).then_some(())
        },
    );

    // Peers find each other as `mystore-N.mystore` through the headless Service.
    let logs = c.wait_logs(
        "mystore-0",
        "mystore-2.mystore.default.svc.cluster.local",
        Duration::from_secs(30),
    );
    let ip2 = pods(&c)["mystore-2"]["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        logs.lines().any(|l| l.starts_with(&format!("{ip2} "))
            && l.ends_with(" mystore-2.mystore.default.svc.cluster.local")),
        "mystore-2.mystore should resolve to {ip2}: {logs}"
    );
    assert!(logs.contains("previous boots: 0"), "{logs}");

    // A deleted member comes back with its name, its claim and its data.
    let old_uid = pods(&c)["mystore-0"]["metadata"]["uid"].clone();
    c.kubectl(&["delete", "pod", "mystore-0", "--wait=false"]);
    c.wait_pod("mystore-0", Duration::from_secs(60), |p| {
        p["metadata"]["uid"] != old_uid && ready(p)
    });
    let logs = c.wait_logs("mystore-0", "previous boots:", Duration::from_secs(30));
    assert!(
        logs.contains("previous boots: 1"),
        "the claim kept its data: {logs}"
    );
    assert_eq!(
        c.json(&["get", "pvc"])["items"].as_array().map(Vec::len),
        Some(3)
    );

    // Immutable fields are refused as upstream.
    let out = c.kubectl_output(
        &[
            "patch",
            "sts",
            "mystore",
            "-p",
            r#"{"spec":{"serviceName":"other"}}"#,
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy'"),
        "{err}"
    );

    // Rollout: a template change rolls through, highest ordinal first, and completes.
    let first = status(&c)["updateRevision"].clone();
    c.kubectl(&["set", "env", "sts/mystore", "ROLLOUT=2"]);
    let out = c.kubectl(&["rollout", "status", "sts/mystore", "--timeout=180s"]);
    assert!(
        out.contains("partitioned roll out complete") || out.contains("rolling update complete"),
        "{out}"
    );
    let s = status(&c);
    assert_ne!(s["updateRevision"], first, "{s:#}");
    assert_eq!(s["currentRevision"], s["updateRevision"], "{s:#}");
    for (name, p) in pods(&c) {
        assert_eq!(
            p["metadata"]["labels"]["controller-revision-hash"], s["updateRevision"],
            "{name}"
        );
    }
    let history = c.kubectl(&["rollout", "history", "sts/mystore"]);
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );

    // Undo: back to the first template, as revision 3 of the same ControllerRevision.
    let out = c.kubectl(&["rollout", "undo", "sts/mystore"]);
    assert!(out.contains("rolled back"), "{out}");
    c.kubectl(&["rollout", "status", "sts/mystore", "--timeout=180s"]);
    let s = status(&c);
    assert_eq!(s["updateRevision"], first, "{s:#}");
    let env = c.kubectl(&[
        "get",
        "sts",
        "mystore",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env}",
    ]);
    assert!(!env.contains("ROLLOUT"), "{env}");
    let revisions = c.json(&["get", "controllerrevisions"]);
    let mut numbers: Vec<(i64, String)> = revisions["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["revision"].as_i64().unwrap_or(0),
                r["metadata"]["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    numbers.sort();
    assert_eq!(numbers.len(), 2, "{numbers:?}");
    assert_eq!(
        (numbers[1].0, Some(numbers[1].1.as_str())),
        (3, first.as_str()),
        "{numbers:?}"
    );

    // Scale down in reverse: mystore-2 is gone before mystore-1 goes.
    c.kubectl(&["scale", "sts", "mystore", "--replicas=1"]);
    c.wait_for("scale down to mystore-0", Duration::from_secs(60), || {
        let pods = pods(&c);
        if let Some(p1) = pods.get("mystore-1") {
            if !p1["metadata"]["deletionTimestamp"].is_null() {
                assert!(
                    !pods.contains_key("mystore-2"),
                    "mystore-1 went before mystore-2: {pods:#?}"
                );
            }
        }
        (pods.keys().collect::<Vec<_>>() == ["mystore-0"]).then_some(())
    });
    // Claims are retained (whenScaled: Retain), ready for a scale back up.
    assert_eq!(
        c.json(&["get", "pvc"])["items"].as_array().map(Vec::len),
        Some(3)
    );
    c.wait_for("status of one replica", Duration::from_secs(10), || {
        let s = status(&c);
        (s["replicas"] == 1 && s["readyReplicas"] == 1).then_some(())
    });

    // Deleting the set takes its pods and revisions (the garbage collector follows every
    // owner kind); the claims stay (whenDeleted: Retain).
    c.kubectl(&["delete", "sts", "mystore"]);
    c.wait_for(
        "pods and revisions of the deleted set",
        Duration::from_secs(60),
        || {
            let revisions = c.json(&["get", "controllerrevisions"])["items"]
                .as_array()
                .map(Vec::len);
            (pods(&c).is_empty() && revisions == Some(0)).then_some(())
        },
    );
    assert_eq!(
        c.json(&["get", "pvc"])["items"].as_array().map(Vec::len),
        Some(3)
    );
}
