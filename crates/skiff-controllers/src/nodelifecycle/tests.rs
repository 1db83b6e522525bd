//! Table tests of the node lifecycle plan, after upstream's node_lifecycle_controller_test
//! (TestMonitorNodeHealthUpdateStatus, TestApplyNoExecuteTaints,
//! TestSwapUnreachableNotReadyTaints, TestTaintsNodeByCondition, TestMonitorNodeHealthMarkPodsNotReady,
//! TestMonitorNodeHealthEvictPodsWithDisruption's zone states).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::plan::*;
use super::pods_to_mark_not_ready;

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(1_325_376_000 + s).unwrap() // 2012-01-01, as upstream's fixtures
}

fn node(conditions: serde_json::Value, taints: serde_json::Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": "node0", "creationTimestamp": "2012-01-01T00:00:00Z"},
        "spec": {"taints": taints},
        "status": {"conditions": conditions},
    }))
    .unwrap()
}

fn cond(type_: &str, status: &str, heartbeat: i64) -> serde_json::Value {
    json!({"type": type_, "status": status, "reason": "KubeletReady", "message": "ok",
           "lastHeartbeatTime": Time(ts(heartbeat)), "lastTransitionTime": Time(ts(heartbeat))})
}

fn heard(last: i64, now: i64) -> Heard {
    Heard {
        last: ts(last),
        now: ts(now),
        grace: Duration::from_secs(8),
        startup_grace: Duration::from_secs(60),
    }
}

fn unknown(c: &NodeCondition) -> (String, String, String, String) {
    (
        c.type_.clone(),
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

#[test]
fn a_node_never_posting_status_is_unknown_after_the_startup_grace() {
    let n = node(json!([]), json!([]));
    // Within the startup grace: nothing, and a look again when it ends.
    let h = health(&n, heard(0, 30));
    assert_eq!(h.conditions, None);
    assert_eq!(h.recheck, Some(Duration::from_secs(30)));
    // Past it: every watched condition added as never updated.
    let h = health(&n, heard(0, 61));
    let conditions = h.conditions.expect("conditions set");
    let got: Vec<_> = conditions.iter().map(unknown).collect();
    let want: Vec<_> = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"]
        .iter()
        .map(|t| {
            (
                t.to_string(),
                "Unknown".to_string(),
                "NodeStatusNeverUpdated".to_string(),
                "Kubelet never posted node status.".to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(conditions[0].last_heartbeat_time, Some(Time(ts(0))));
    assert_eq!(conditions[0].last_transition_time, Some(Time(ts(61))));
    assert_eq!(h.ready, "Unknown");
}

#[test]
fn a_node_heard_recently_is_left_alone() {
    let n = node(
        json!([
            cond("Ready", "True", 100),
            cond("MemoryPressure", "False", 100)
        ]),
        json!([]),
    );
    let h = health(&n, heard(100, 105));
    assert_eq!(h.conditions, None);
    assert_eq!(h.ready, "True");
    assert_eq!(h.recheck, Some(Duration::from_secs(3)));
}

#[test]
fn a_silent_node_has_its_conditions_set_unknown() {
    let n = node(
        json!([
            cond("Ready", "True", 100),
            cond("MemoryPressure", "False", 100),
            cond("DiskPressure", "False", 100),
            cond("PIDPressure", "False", 100),
            cond("NetworkUnavailable", "False", 100)
        ]),
        json!([]),
    );
    let h = health(&n, heard(100, 109));
    let conditions = h.conditions.expect("conditions set");
    for c in &conditions[..4] {
        assert_eq!(
            unknown(c),
            (
                c.type_.clone(),
                "Unknown".into(),
                "NodeStatusUnknown".into(),
                "Kubelet stopped posting node status.".into()
            )
        );
        // The heartbeat stays the last one heard; the transition is now.
        assert_eq!(c.last_heartbeat_time, Some(Time(ts(100))));
        assert_eq!(c.last_transition_time, Some(Time(ts(109))));
    }
    // NetworkUnavailable is the control plane's, never touched.
    assert_eq!(conditions[4].status, "False");
    assert_eq!(h.ready, "Unknown");
    // Already Unknown: nothing more to write.
    let again = node(serde_json::to_value(&conditions).unwrap(), json!([]));
    let h = health(&again, heard(100, 120));
    assert_eq!(h.conditions, None);
    assert_eq!(h.ready, "Unknown");
}

fn taint_keys(taints: &[Taint]) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = taints
        .iter()
        .map(|t| (t.key.clone(), t.effect.clone(), t.time_added.is_some()))
        .collect();
    v.sort();
    v
}

#[test]
fn taints_follow_the_ready_condition() {
    let now = ts(200);
    let k = |key: &str, effect: &str, stamped: bool| (key.to_string(), effect.to_string(), stamped);
    let cases = vec![
        (
            "ready: no taints",
            node(json!([cond("Ready", "True", 0)]), json!([])),
            "True",
            NoExecute::Apply,
            None,
        ),
        (
            "unknown: unreachable NoSchedule and NoExecute",
            node(json!([cond("Ready", "Unknown", 0)]), json!([])),
            "Unknown",
            NoExecute::Apply,
            Some(vec![
                k(TAINT_UNREACHABLE, "NoExecute", true),
                k(TAINT_UNREACHABLE, "NoSchedule", false),
            ]),
        ),
        (
            "not ready: not-ready taints",
            node(json!([cond("Ready", "False", 0)]), json!([])),
            "False",
            NoExecute::Apply,
            Some(vec![
                k(TAINT_NOT_READY, "NoExecute", true),
                k(TAINT_NOT_READY, "NoSchedule", false),
            ]),
        ),
        (
            "swap unreachable for not-ready",
            node(
                json!([cond("Ready", "False", 0)]),
                json!([{"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2012-01-01T00:00:00Z"},
                       {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}]),
            ),
            "False",
            NoExecute::Apply,
            Some(vec![
                k(TAINT_NOT_READY, "NoExecute", true),
                k(TAINT_NOT_READY, "NoSchedule", false),
            ]),
        ),
        (
            "back to ready: the node's own taints stay, ours go",
            node(
                json!([cond("Ready", "True", 0)]),
                json!([{"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2012-01-01T00:00:00Z"},
                       {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"},
                       {"key": "dedicated", "value": "db", "effect": "NoExecute"}]),
            ),
            "True",
            NoExecute::Defer,
            Some(vec![k("dedicated", "NoExecute", false)]),
        ),
        (
            "rate limited: NoSchedule now, NoExecute later",
            node(json!([cond("Ready", "Unknown", 0)]), json!([])),
            "Unknown",
            NoExecute::Defer,
            Some(vec![k(TAINT_UNREACHABLE, "NoSchedule", false)]),
        ),
        (
            "full disruption: evictions cancelled",
            node(
                json!([cond("Ready", "Unknown", 0)]),
                json!([{"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2012-01-01T00:00:00Z"},
                       {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}]),
            ),
            "Unknown",
            NoExecute::Cancel,
            Some(vec![k(TAINT_UNREACHABLE, "NoSchedule", false)]),
        ),
        (
            "pressure conditions and cordon taint NoSchedule",
            serde_json::from_value(json!({
                "metadata": {"name": "node0"},
                "spec": {"unschedulable": true},
                "status": {"conditions": [cond("Ready", "True", 0), cond("MemoryPressure", "True", 0),
                                          cond("DiskPressure", "True", 0), cond("PIDPressure", "False", 0),
                                          cond("NetworkUnavailable", "True", 0)]},
            }))
            .unwrap(),
            "True",
            NoExecute::Apply,
            Some(vec![
                k(TAINT_DISK_PRESSURE, "NoSchedule", false),
                k(TAINT_MEMORY_PRESSURE, "NoSchedule", false),
                k(TAINT_NETWORK_UNAVAILABLE, "NoSchedule", false),
                k(TAINT_UNSCHEDULABLE, "NoSchedule", false),
            ]),
        ),
        (
            "uncordoned: unschedulable goes",
            node(
                json!([cond("Ready", "True", 0)]),
                json!([{"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}]),
            ),
            "True",
            NoExecute::Apply,
            Some(vec![]),
        ),
    ];
    for (name, n, ready, mode, want) in cases {
        let got = taints(&n, ready, mode, now).map(|t| taint_keys(&t));
        assert_eq!(got, want, "{name}");
    }
    // The NoExecute taint is stamped with now: tolerationSeconds count from it.
    let n = node(json!([cond("Ready", "Unknown", 0)]), json!([]));
    let t = taints(&n, "Unknown", NoExecute::Apply, now).unwrap();
    let no_execute = t.iter().find(|t| t.effect == "NoExecute").unwrap();
    assert_eq!(no_execute.time_added, Some(Time(now)));
    // Taints already right are not rewritten.
    let settled = node(
        json!([cond("Ready", "Unknown", 0)]),
        serde_json::to_value(&t).unwrap(),
    );
    assert_eq!(taints(&settled, "Unknown", NoExecute::Apply, ts(300)), None);
}

#[test]
fn the_cluster_is_one_zone_for_disruption() {
    let cases: Vec<(Vec<&str>, Disruption)> = vec![
        (vec!["True", "True"], Disruption::Normal),
        (vec!["True", "Unknown"], Disruption::Normal),
        (vec!["Unknown"], Disruption::Full),
        (vec!["Unknown", "False"], Disruption::Full),
        (vec!["True", "Unknown", "Unknown"], Disruption::Normal),
        (
            vec!["True", "Unknown", "Unknown", "False"],
            Disruption::Partial,
        ),
        (
            vec!["True", "True", "Unknown", "Unknown", "False"],
            Disruption::Partial,
        ),
        (
            vec!["True", "True", "True", "Unknown", "Unknown", "False"],
            Disruption::Normal,
        ),
        (vec![], Disruption::Normal),
    ];
    for (ready, want) in cases {
        assert_eq!(disruption(ready.iter().copied(), 0.55), want, "{ready:?}");
    }
    let rates = Rates::default();
    assert_eq!(eviction_rate(Disruption::Normal, 3, &rates), Some(0.1));
    assert_eq!(eviction_rate(Disruption::Partial, 10, &rates), Some(0.0));
    assert_eq!(eviction_rate(Disruption::Partial, 100, &rates), Some(0.01));
    assert_eq!(eviction_rate(Disruption::Full, 3, &rates), None);
}

#[test]
fn the_limiter_lets_one_node_through_then_one_per_period() {
    let mut l = Limiter::default();
    assert!(l.try_take(ts(0), 0.1));
    assert!(!l.try_take(ts(5), 0.1));
    assert_eq!(l.wait(ts(5), 0.1), Some(Duration::from_secs(5)));
    assert!(l.try_take(ts(10), 0.1));
    assert!(!l.try_take(ts(100), 0.0), "a zero rate stops evictions");
}

#[test]
fn pods_of_a_node_not_ready_are_marked_not_ready() {
    let pod = |name: &str, node: &str, ready: Option<&str>| -> Arc<Pod> {
        let conditions = ready.map_or(json!([]), |r| json!([{"type": "Ready", "status": r}]));
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": node, "containers": []},
                "status": {"conditions": conditions},
            }))
            .unwrap(),
        )
    };
    let pods = vec![
        pod("ready", "node0", Some("True")),
        pod("already-not-ready", "node0", Some("False")),
        pod("no-condition-yet", "node0", None),
        pod("elsewhere", "node1", Some("True")),
    ];
    let got: Vec<_> = pods_to_mark_not_ready(&pods, "node0")
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(got, vec!["ready"]);
}
