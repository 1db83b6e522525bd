//! End-to-end admission for teams sharing a cluster, with real kubectl: a namespace's
//! ResourceQuota stops a Deployment at its limit and frees up on scale-down, LimitRange
//! defaults and bounds, Pod Security labels, NamespaceLifecycle, and Priority (a pod's
//! class gives its priority). No node runs pods: quota counts pods from the moment they are
//! stored.

mod common;

use common::Cluster;
use serde_json::Value;
use std::time::{Duration, Instant};

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

fn live_pods(c: &Cluster, ns: &str) -> usize {
    items(&c.json(&["get", "pods", "-n", ns, "-l", "app=web"]))
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .count()
}

/// The `pods` row of `kubectl describe quota`: used and hard.
fn described_pods(c: &Cluster, ns: &str) -> Option<(String, String)> {
    let out = c.kubectl(&["describe", "quota", "pods", "-n", ns]);
    out.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        match cols.as_slice() {
            ["pods", used, hard] => Some((used.to_string(), hard.to_string())),
            _ => None,
        }
    })
}

fn quota_used(c: &Cluster, ns: &str) -> Option<String> {
    let q = c.json(&["get", "quota", "pods", "-n", ns]);
    q["status"]["used"]["pods"].as_str().map(str::to_owned)
}

#[test]
fn a_namespace_quota_stops_a_deployment_at_its_limit_and_scaling_down_frees_it() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "team"]);
    c.kubectl(&["create", "quota", "pods", "-n", "team", "--hard=pods=4"]);
    // The quota controller fills in status; until then admission would refuse pods.
    wait_for(20, "the quota's status", || {
        (quota_used(&c, "team").as_deref() == Some("0")).then_some(())
    });
    c.kubectl(&[
        "create",
        "deployment",
        "web",
        "-n",
        "team",
        "--image=nginx",
        "--replicas=6",
    ]);
    let failed = wait_for(30, "a FailedCreate event", || {
        let events = c.json(&["get", "events", "-n", "team"]);
        items(&events)
            .into_iter()
            .find(|e| e["reason"] == "FailedCreate")
    });
    let message = failed["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Error creating: pods \"web-")
            && message.ends_with(
                "is forbidden: exceeded quota: pods, requested: pods=1, used: pods=4, limited: pods=4"
            ),
        "{message}"
    );
    assert_eq!(failed["involvedObject"]["kind"], "ReplicaSet");
    assert_eq!(live_pods(&c, "team"), 4, "the quota let a fifth pod in");
    assert_eq!(described_pods(&c, "team"), Some(("4".into(), "4".into())));

    c.kubectl(&["scale", "deployment", "web", "-n", "team", "--replicas=3"]);
    wait_for(30, "the quota freed by the scale-down", || {
        (live_pods(&c, "team") == 3 && quota_used(&c, "team").as_deref() == Some("3")).then_some(())
    });
    assert_eq!(described_pods(&c, "team"), Some(("3".into(), "4".into())));
    c.kubectl(&["scale", "deployment", "web", "-n", "team", "--replicas=4"]);
    wait_for(30, "the fourth pod again", || {
        (live_pods(&c, "team") == 4 && quota_used(&c, "team").as_deref() == Some("4")).then_some(())
    });
}

const LIMIT_RANGE: &str = r#"
apiVersion: v1
kind: LimitRange
metadata:
  name: limits
  namespace: team
spec:
  limits:
  - type: Container
    max: {cpu: "1", memory: 1Gi}
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 100m, memory: 128Mi}
"#;

#[test]
fn limit_range_defaults_apply_and_its_max_refuses_with_upstreams_message() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "team"]);
    c.kubectl_in(&["apply", "-f", "-"], LIMIT_RANGE);
    c.kubectl(&["run", "plain", "-n", "team", "--image=nginx"]);
    let pod = c.json(&["get", "pod", "plain", "-n", "team"]);
    let resources = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"]["cpu"], "500m", "{resources}");
    assert_eq!(resources["requests"]["memory"], "128Mi", "{resources}");

    let big = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big", "namespace": "team"},
        "spec": {"containers": [{"name": "app", "image": "nginx",
                                 "resources": {"limits": {"cpu": "2"}}}]}}"#;
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(big));
    assert!(
        err.contains(
            "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{err}"
    );
    let got = c.kubectl_output(&["get", "pod", "big", "-n", "team"], None);
    assert!(!got.status.success(), "a refused pod is not stored");
}

const PRIVILEGED: &str = r#"{"apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "priv"},
    "spec": {"containers": [{"name": "app", "image": "nginx",
                             "securityContext": {"privileged": true}}]}}"#;

#[test]
fn pod_security_labels_enforce_and_warn_as_upstream() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "locked"]);
    c.kubectl(&[
        "label",
        "namespace",
        "locked",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    let err = c.kubectl_err(&["apply", "-n", "locked", "-f", "-"], Some(PRIVILEGED));
    assert!(
        err.contains(
            "pods \"priv\" is forbidden: violates PodSecurity \"restricted:latest\": privileged (container \"app\" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false)"
        ),
        "{err}"
    );

    c.kubectl(&["create", "namespace", "watched"]);
    c.kubectl(&[
        "label",
        "namespace",
        "watched",
        "pod-security.kubernetes.io/warn=baseline",
    ]);
    let out = c.kubectl_output(&["apply", "-n", "watched", "-f", "-"], Some(PRIVILEGED));
    assert!(out.status.success(), "warn does not refuse");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "Warning: would violate PodSecurity \"baseline:latest\": privileged (container \"app\" must not set securityContext.privileged=true)"
        ),
        "{stderr}"
    );
}

#[test]
fn creating_in_a_missing_namespace_is_upstreams_not_found() {
    let c = Cluster::start();
    let cm = r#"{"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "nowhere"}, "data": {"a": "b"}}"#;
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(cm));
    assert!(
        err.contains("Error from server (NotFound)")
            && err.contains("namespaces \"nowhere\" not found"),
        "{err}"
    );
}

/// A pod of `spec` (JSON fields after `containers`) named `name`.
fn pod_with(name: &str, spec: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
            "spec": {{"containers": [{{"name": "app", "image": "nginx"}}]{spec}}}}}"#
    )
}

#[test]
fn priority_admission_resolves_classes_and_refuses_as_upstream() {
    let c = Cluster::start();
    // The built-in classes exist, with upstream's values.
    let classes = c.kubectl(&["get", "priorityclasses", "-o", "name"]);
    assert!(
        classes.contains("priorityclass.scheduling.k8s.io/system-node-critical")
            && classes.contains("priorityclass.scheduling.k8s.io/system-cluster-critical"),
        "{classes}"
    );
    // A class's value becomes the pod's priority, with its preemption policy.
    c.kubectl_in(
        &["apply", "-f", "-"],
        &pod_with(
            "critical",
            r#", "priorityClassName": "system-node-critical""#,
        ),
    );
    let spec = &c.json(&["get", "pod", "critical"])["spec"];
    assert_eq!(spec["priority"], 2_000_001_000, "{spec}");
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority", "{spec}");
    // No class and no default: priority 0.
    c.kubectl_in(&["apply", "-f", "-"], &pod_with("plain", ""));
    let spec = &c.json(&["get", "pod", "plain"])["spec"];
    assert_eq!(spec["priority"], 0, "{spec}");
    assert!(spec.get("priorityClassName").is_none(), "{spec}");

    // A missing class is 403 with upstream's words, and nothing is stored.
    let err = c.kubectl_err(
        &["apply", "-f", "-"],
        Some(&pod_with("orphan", r#", "priorityClassName": "missing""#)),
    );
    assert!(
        err.contains("Error from server (Forbidden)")
            && err.contains(
                r#"pods "orphan" is forbidden: no PriorityClass with name missing was found"#
            ),
        "{err}"
    );
    let got = c.kubectl_output(&["get", "pod", "orphan"], None);
    assert!(!got.status.success(), "a refused pod is not stored");
    // A priority the pod sets itself must be its class's.
    let err = c.kubectl_err(
        &["apply", "-f", "-"],
        Some(&pod_with(
            "boastful",
            r#", "priorityClassName": "system-cluster-critical", "priority": 5"#,
        )),
    );
    assert!(
        err.contains(
            r#"pods "boastful" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 2000000000 from the given PriorityClass name"#
        ),
        "{err}"
    );

    // The global default applies where a pod names no class; only one default may exist.
    let class = |name: &str, value: i64, default: bool| {
        format!(
            r#"{{"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {{"name": "{name}"}}, "value": {value}, "globalDefault": {default}}}"#
        )
    };
    c.kubectl_in(&["apply", "-f", "-"], &class("everyday", 100, true));
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&class("another", 200, true)));
    assert!(
        err.contains(
            r#"priorityclasses.scheduling.k8s.io "another" is forbidden: PriorityClass everyday is already marked as default. Only one default can exist"#
        ),
        "{err}"
    );
    c.kubectl_in(&["apply", "-f", "-"], &pod_with("defaulted", ""));
    let spec = &c.json(&["get", "pod", "defaulted"])["spec"];
    assert_eq!(spec["priority"], 100, "{spec}");
    assert_eq!(spec["priorityClassName"], "everyday", "{spec}");
    // An update that leaves the priority and policy out keeps them (upstream's update
    // branch): the stored pod, without them, replaced.
    let mut stored = c.json(&["get", "pod", "plain"]);
    let spec = stored["spec"].as_object_mut().unwrap();
    spec.remove("priority");
    spec.remove("preemptionPolicy");
    stored["metadata"]["labels"] = serde_json::json!({"edited": "yes"});
    c.kubectl_in(&["replace", "-f", "-"], &stored.to_string());
    let plain = c.json(&["get", "pod", "plain"]);
    assert_eq!(plain["metadata"]["labels"]["edited"], "yes", "{plain}");
    assert_eq!(plain["spec"]["priority"], 0, "{plain}");
    assert_eq!(
        plain["spec"]["preemptionPolicy"], "PreemptLowerPriority",
        "{plain}"
    );

    // Validation: the system prefix is reserved, user values are bounded, a value never
    // changes.
    let err = c.kubectl_err(
        &["apply", "-f", "-"],
        Some(&class("system-mine", 10, false)),
    );
    assert!(
        err.contains(
            r#"The PriorityClass "system-mine" is invalid: metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"#
        ),
        "{err}"
    );
    let err = c.kubectl_err(
        &["apply", "-f", "-"],
        Some(&class("huge", 1_000_000_001, false)),
    );
    assert!(
        err.contains(
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
        ),
        "{err}"
    );
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&class("everyday", 101, true)));
    assert!(
        err.contains("value: Forbidden: may not be changed in an update."),
        "{err}"
    );
}
