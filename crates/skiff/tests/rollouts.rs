//! End to end: Deployment rollouts on a real node behind a Service (root only; skipped with a
//! message otherwise): a broken image stalls with ProgressDeadlineExceeded while the old pods
//! keep serving, scaling it then spreads proportionally, `rollout undo` (also `--to-revision`), `restart`, `pause`/`resume`, and
//! deletion cleaning everything up; a load generator on the node sees no failed request.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use serde_json::Value;
use std::time::Duration;

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  progressDeadlineSeconds: 6
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: busybox:test
        command: ["sh", "-c", "hostname > /www/index.html; exec httpd -f -p 8080 -h /www"]
        readinessProbe:
          exec:
            command: ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 127.0.0.1 8080 | grep -q 200"]
          periodSeconds: 1
        lifecycle:
          preStop:
            sleep:
              seconds: 2
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
"#;

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// `kubectl rollout status`: (succeeded, output).
fn rollout_status(c: &node::NodeCluster, timeout: &str) -> (bool, String) {
    let out = c.kubectl_output(
        &[
            "rollout",
            "status",
            "deploy/web",
            &format!("--timeout={timeout}"),
        ],
        None,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn assert_rolled_out(c: &node::NodeCluster) {
    let (ok, text) = rollout_status(c, "90s");
    assert!(
        ok,
        "rollout status failed: {text}\nserver log:\n{}",
        c.log_text()
    );
}

fn image_of(c: &node::NodeCluster) -> String {
    c.json(&["get", "deploy", "web"])["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn rollouts_stall_undo_restart_and_pause_without_dropping_traffic() {
    // A failed request is a rare race: the proxy's and the endpoints controller's debug
    // lines, printed on failure, show which rules were in place when it happened.
    if std::env::var_os("SKIFF_TEST_LOG").is_none() {
        std::env::set_var(
            "SKIFF_TEST_LOG",
            "info,skiff_net::proxy=debug,skiff_controllers::endpoints=debug",
        );
    }
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    c.kubectl_in(&["apply", "-f", "-"], WEB);
    assert_rolled_out(&c);
    let ip = c.kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    c.wait_for("the service to answer", Duration::from_secs(10), || {
        c.http_get(&ip, 80, "/")
    });
    let traffic = node::Load::start(&c, &ip, 80);

    // A broken image: the new pods never pull, the rollout stalls past its deadline and
    // says so, and the old pods keep serving.
    c.kubectl(&["set", "image", "deploy/web", "web=busybox:missing"]);
    let (ok, text) = rollout_status(&c, "60s");
    assert!(!ok, "rollout status should fail: {text}");
    assert!(
        text.contains("exceeded its progress deadline"),
        "kubectl should say why: {text}"
    );
    let d = c.json(&["get", "deploy", "web"]);
    let progressing = d["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Progressing")
        .cloned()
        .unwrap_or_default();
    assert_eq!(progressing["status"], "False", "{d:#}");
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded", "{d:#}");
    assert_eq!(
        d["status"]["readyReplicas"], 2,
        "old pods keep serving: {d:#}"
    );
    let pods = c.kubectl(&["get", "pods", "-l", "app=web"]);
    assert!(
        pods.contains("ErrImagePull") || pods.contains("ImagePullBackOff"),
        "{pods}"
    );

    // Scaled while stalled (2 old + 1 new of 2 + surge 1): upstream spreads the change over
    // both ReplicaSets in proportion (4 + surge 1 = 5: old 2 -> 3, new 1 -> 2).
    c.kubectl(&["scale", "deploy/web", "--replicas=4"]);
    let sizes = c.wait_for("proportional scaling", Duration::from_secs(20), || {
        let rs = items(&c.json(&["get", "rs", "-l", "app=web"]));
        let size = |image: &str| {
            rs.iter()
                .find(|r| r["spec"]["template"]["spec"]["containers"][0]["image"] == image)
                .and_then(|r| r["spec"]["replicas"].as_i64())
        };
        let sizes = (size("busybox:test")?, size("busybox:missing")?);
        (sizes == (3, 2)).then_some(sizes)
    });
    assert_eq!(sizes, (3, 2));

    // Undo: back to the working template; the broken ReplicaSet is scaled to zero.
    c.kubectl(&["rollout", "undo", "deploy/web"]);
    assert_rolled_out(&c);
    assert_eq!(image_of(&c), "busybox:test");
    c.wait_for(
        "the broken ReplicaSet to scale to 0",
        Duration::from_secs(20),
        || {
            let rs = items(&c.json(&["get", "rs", "-l", "app=web"]));
            let broken = rs.iter().find(|r| {
                r["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:missing"
            })?;
            (broken["spec"]["replicas"] == 0
                && broken["status"]["replicas"].as_i64().unwrap_or(0) == 0)
                .then_some(())
        },
    );
    let history = c.kubectl(&["rollout", "history", "deploy/web"]);
    assert!(
        history.contains("\n2 ") && history.contains("\n3 "),
        "{history}"
    );

    // Restart: every pod replaced, a new revision (4).
    let before: Vec<String> = items(&c.json(&["get", "pods", "-l", "app=web"]))
        .iter()
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    c.kubectl(&["rollout", "restart", "deploy/web"]);
    assert_rolled_out(&c);
    c.wait_for("the old pods to go", Duration::from_secs(30), || {
        let now = items(&c.json(&["get", "pods", "-l", "app=web"]));
        now.iter()
            .all(|p| !before.iter().any(|b| p["metadata"]["name"] == b.as_str()))
            .then_some(())
    });
    let annotations =
        &c.json(&["get", "deploy", "web"])["spec"]["template"]["metadata"]["annotations"];
    assert!(
        annotations["kubectl.kubernetes.io/restartedAt"].is_string(),
        "{annotations}"
    );

    // Undo to a named revision: 3 is the template before the restart.
    c.kubectl(&["rollout", "undo", "deploy/web", "--to-revision=3"]);
    assert_rolled_out(&c);
    let d = c.json(&["get", "deploy", "web"]);
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_null(),
        "revision 3 had no restart annotation: {d:#}"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "5"
    );

    // Paused: template changes wait; resume rolls them out.
    c.kubectl(&["rollout", "pause", "deploy/web"]);
    let rs_before = items(&c.json(&["get", "rs", "-l", "app=web"])).len();
    c.kubectl(&["set", "env", "deploy/web", "GREETING=hi"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        items(&c.json(&["get", "rs", "-l", "app=web"])).len(),
        rs_before,
        "a paused Deployment must not create a ReplicaSet"
    );
    c.kubectl(&["rollout", "resume", "deploy/web"]);
    assert_rolled_out(&c);
    assert_eq!(
        items(&c.json(&["get", "rs", "-l", "app=web"])).len(),
        rs_before + 1
    );

    let (total, failed) = traffic.finish();
    assert!(total > 100, "the load generator barely ran ({total})");
    assert!(
        failed.is_empty(),
        "{} of {total} requests failed during the rollouts: {failed:?}\nserver log:\n{}",
        failed.len(),
        c.log_text()
    );
    eprintln!("rollouts: {total} requests through the Service, 0 failed");

    // Deleting the Deployment leaves no ReplicaSet and no pod.
    c.kubectl(&["delete", "deploy", "web"]);
    c.wait_for("everything to be gone", Duration::from_secs(60), || {
        let rs = items(&c.json(&["get", "rs", "-l", "app=web"]));
        let pods = items(&c.json(&["get", "pods", "-l", "app=web"]));
        (rs.is_empty() && pods.is_empty()).then_some(())
    });
    c.wait_for("no endpoints left", Duration::from_secs(10), || {
        let ep = c.json(&["get", "endpoints", "web"]);
        ep["subsets"].is_null().then_some(())
    });
}
