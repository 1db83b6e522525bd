//! Table tests ported from upstream's `replica_calculator_test.go` and
//! `horizontal_test.go` (same pods, usages, targets and expected counts).

use super::behavior::{normalize, History};
use super::replicas::{calculate, PodInfo, PodMetric, Replicas, Target};
use super::*;
use serde_json::json;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// Pods started an hour ago, ready since then unless `ready` says otherwise (an unready
/// pod's Ready=False dates from its start, as upstream's test pods).
fn pods(requests: &[i64], ready: &[bool]) -> Vec<PodInfo> {
    let start = now() - TimeDelta::hours(1);
    requests
        .iter()
        .enumerate()
        .map(|(i, r)| PodInfo {
            name: format!("test-pod-{i}"),
            phase: "Running".into(),
            deleting: false,
            ready: Some((ready.get(i).copied().unwrap_or(true), start)),
            start_time: Some(start),
            requests: vec![("c".into(), Some(*r))],
        })
        .collect()
}

fn metrics(values: &[Option<i64>]) -> HashMap<String, PodMetric> {
    values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            Some((
                format!("test-pod-{i}"),
                PodMetric {
                    value: (*v)?,
                    timestamp: now() - TimeDelta::seconds(5),
                    window: TimeDelta::seconds(30),
                },
            ))
        })
        .collect()
}

#[test]
fn replica_calculator_cases_from_upstream() {
    type Case = (
        &'static str,
        i32,
        Vec<i64>,
        Vec<bool>,
        Vec<Option<i64>>,
        Target,
        Result<(i32, Option<i32>), &'static str>,
    );
    let u = Target::Utilization;
    let cases: Vec<Case> = vec![
        (
            "scale up",
            3,
            vec![1000; 3],
            vec![],
            vec![Some(300), Some(500), Some(700)],
            u(30),
            Ok((5, Some(50))),
        ),
        (
            "scale down",
            5,
            vec![1000; 5],
            vec![],
            vec![Some(100), Some(300), Some(500), Some(250), Some(250)],
            u(50),
            Ok((3, Some(28))),
        ),
        (
            "within tolerance",
            3,
            vec![900, 1000, 1100],
            vec![],
            vec![Some(1010), Some(1050), Some(1020)],
            u(100),
            Ok((3, Some(102))),
        ),
        (
            "unready pods damp a scale up",
            3,
            vec![1000; 3],
            vec![false, true, true],
            vec![Some(300), Some(500), Some(700)],
            u(30),
            Ok((4, Some(60))),
        ),
        (
            "unready pods can cancel a scale up",
            3,
            vec![1000; 3],
            vec![true, false, false],
            vec![Some(400), Some(500), Some(700)],
            u(30),
            Ok((3, Some(40))),
        ),
        (
            "unready pods are ignored on a scale down",
            5,
            vec![1000; 5],
            vec![true, true, true, true, false],
            vec![Some(100), Some(300), Some(500), Some(250), Some(250)],
            u(50),
            Ok((3, Some(28))),
        ),
        (
            "a missing metric cancels a small scale up",
            2,
            vec![1000; 2],
            vec![],
            vec![Some(1100), None],
            u(100),
            Ok((2, Some(110))),
        ),
        (
            "missing metrics count as the request on a scale down",
            4,
            vec![1000; 4],
            vec![],
            vec![Some(400), Some(95), None, None],
            u(100),
            Ok((3, Some(24))),
        ),
        (
            "average value",
            3,
            vec![1000; 3],
            vec![],
            vec![Some(1000), Some(2000), Some(3000)],
            Target::AverageValue(1000),
            Ok((6, None)),
        ),
        (
            "no metrics at all",
            3,
            vec![1000; 3],
            vec![],
            vec![None, None, None],
            u(50),
            Err("did not receive metrics for targeted pods (pods might be unready)"),
        ),
        (
            "no pods",
            3,
            vec![],
            vec![],
            vec![],
            u(50),
            Err("no pods returned by selector while calculating replica count"),
        ),
    ];
    for (name, current, requests, ready, values, target, want) in cases {
        let got = calculate(
            current,
            target,
            "cpu",
            None,
            &pods(&requests, &ready),
            &metrics(&values),
            now(),
        )
        .map(
            |Replicas {
                 replicas,
                 utilization,
                 ..
             }| (replicas, utilization),
        );
        assert_eq!(got, want.map_err(String::from), "{name}");
    }
}

#[test]
fn a_container_without_a_request_is_an_error_for_utilization() {
    let mut p = pods(&[1000], &[]);
    p[0].requests.push(("sidecar".into(), None));
    let err = calculate(
        1,
        Target::Utilization(50),
        "cpu",
        None,
        &p,
        &metrics(&[Some(500)]),
        now(),
    );
    assert_eq!(
        err,
        Err("missing request for cpu in container sidecar of Pod test-pod-0".into())
    );
    // A container resource metric looks at its container only.
    let ok = calculate(
        1,
        Target::Utilization(50),
        "cpu",
        Some("c"),
        &p,
        &metrics(&[Some(1000)]),
        now(),
    );
    assert_eq!(ok.map(|r| r.replicas), Ok(2));
}

#[test]
fn behavior_cases_from_upstream() {
    let at = |secs: i64| now() - TimeDelta::seconds(secs);
    type Case = (
        &'static str,
        Value,
        History,
        (i32, i32, i32, i32),
        (i32, &'static str, &'static str, &'static str),
    );
    let cases: Vec<Case> = vec![
        (
            "default scale-up: the larger of +4 pods and +100 % per 15 s",
            json!(null),
            History::default(),
            (1, 10, 1, 20),
            (5, "ReadyForNewScale", "True", "ScaleUpLimit"),
        ),
        (
            "scale-up capped by maxReplicas",
            json!(null),
            History::default(),
            (3, 10, 1, 5),
            (5, "ReadyForNewScale", "True", "TooManyReplicas"),
        ),
        (
            "default scale-down window keeps the highest recent recommendation",
            json!(null),
            History {
                recommendations: vec![(5, at(100))],
                ..Default::default()
            },
            (5, 2, 1, 10),
            (5, "ScaleDownStabilized", "False", "DesiredWithinRange"),
        ),
        (
            "a recommendation older than the window no longer holds",
            json!({"scaleDown": {"stabilizationWindowSeconds": 60}}),
            History {
                recommendations: vec![(5, at(100))],
                ..Default::default()
            },
            (5, 2, 1, 10),
            (2, "ReadyForNewScale", "False", "DesiredWithinRange"),
        ),
        (
            "scale-down limited to 1 pod per minute",
            json!({"scaleDown": {"stabilizationWindowSeconds": 0,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}),
            History::default(),
            (5, 1, 1, 10),
            (4, "ReadyForNewScale", "True", "ScaleDownLimit"),
        ),
        (
            "a recent scale-up counts against the period's budget",
            json!({"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}}),
            History {
                ups: vec![(2, at(30))],
                ..Default::default()
            },
            (4, 10, 1, 20),
            (4, "ReadyForNewScale", "True", "ScaleUpLimit"),
        ),
        (
            "scale-down disabled",
            json!({"scaleDown": {"selectPolicy": "Disabled"}}),
            History::default(),
            (5, 2, 1, 10),
            (5, "ReadyForNewScale", "True", "ScaleDownLimit"),
        ),
        (
            "scale-up window keeps the lowest recent recommendation",
            json!({"scaleUp": {"stabilizationWindowSeconds": 60}}),
            History {
                recommendations: vec![(3, at(30))],
                ..Default::default()
            },
            (3, 6, 1, 10),
            (3, "ScaleUpStabilized", "False", "DesiredWithinRange"),
        ),
        (
            "Min select policy takes the smallest scale-up",
            json!({"scaleUp": {"selectPolicy": "Min", "policies": [
                {"type": "Pods", "value": 1, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}]}}),
            History::default(),
            (2, 10, 1, 20),
            (3, "ReadyForNewScale", "True", "ScaleUpLimit"),
        ),
        (
            "scale-down to minReplicas",
            json!({"scaleDown": {"stabilizationWindowSeconds": 0}}),
            History::default(),
            (5, 1, 2, 10),
            (2, "ReadyForNewScale", "True", "TooFewReplicas"),
        ),
    ];
    for (name, behavior, mut history, (current, proposed, min, max), want) in cases {
        let n = normalize(&behavior, &mut history, current, proposed, min, max, now());
        let (replicas, able, limited, limited_reason) = want;
        assert_eq!(n.replicas, replicas, "{name}");
        assert_eq!(n.conditions[0].2, able, "{name}");
        assert_eq!(
            (n.conditions[1].1, n.conditions[1].2),
            (limited, limited_reason),
            "{name}"
        );
        assert_eq!(
            history.recommendations.last(),
            Some(&(proposed, now())),
            "{name}"
        );
    }
}

fn hpa(metrics: Value, behavior: Value) -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default", "generation": 2},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 3, "metrics": metrics, "behavior": behavior},
    })
}

fn wire_pod(name: &str, request: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": request}}}]},
        "status": {"phase": "Running", "startTime": "2027-01-15T07:00:00Z",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2027-01-15T07:00:00Z"}]},
    })
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} in {status}"))
}

#[test]
fn cpu_above_target_scales_up_to_max_with_upstreams_status() {
    let hpa = hpa(
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}]),
        Value::Null,
    );
    let pods = [wire_pod("web-1", "100m")];
    let metrics = HashMap::from([(
        "web-1".to_owned(),
        PodUsage {
            containers: vec![("app".into(), 250, 4096 * 1000)],
            timestamp: now(),
            window: TimeDelta::seconds(10),
        },
    )]);
    let o = Observed {
        hpa: &hpa,
        current: 1,
        pods: &pods,
        metrics: &metrics,
        now: now(),
    };
    let p = plan(&o, &mut History::default());
    assert_eq!(
        p.rescale,
        Some((
            3,
            "cpu resource utilization (percentage of request) above target".into()
        ))
    );
    assert_eq!(p.status["desiredReplicas"], 3);
    assert_eq!(p.status["currentReplicas"], 1);
    assert_eq!(p.status["observedGeneration"], 2);
    assert_eq!(
        p.status["currentMetrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "current": {"averageValue": "250m", "averageUtilization": 250}}}])
    );
    assert_eq!(
        condition(&p.status, "AbleToScale")["reason"],
        "SucceededRescale"
    );
    assert_eq!(
        condition(&p.status, "ScalingActive")["reason"],
        "ValidMetricFound"
    );
    assert_eq!(
        condition(&p.status, "ScalingActive")["message"],
        "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"
    );
    let limited = condition(&p.status, "ScalingLimited");
    assert_eq!(
        (limited["status"].as_str(), limited["reason"].as_str()),
        (Some("True"), Some("TooManyReplicas"))
    );
    assert!(p.status["lastScaleTime"].is_string());
}

#[test]
fn object_and_external_metrics_answer_scaling_active_false() {
    for (metric, reason) in [
        (
            json!({"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "1"}}}),
            "FailedGetExternalMetric",
        ),
        (
            json!({"type": "Object", "object": {"metric": {"name": "rps"}, "describedObject": {"kind": "Service", "name": "s"}, "target": {"type": "Value", "value": "1"}}}),
            "FailedGetObjectMetric",
        ),
        (
            json!({"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "1"}}}),
            "FailedGetPodsMetric",
        ),
    ] {
        let hpa = hpa(json!([metric]), Value::Null);
        let pods = [wire_pod("web-1", "100m")];
        let o = Observed {
            hpa: &hpa,
            current: 2,
            pods: &pods,
            metrics: &HashMap::new(),
            now: now(),
        };
        let p = plan(&o, &mut History::default());
        assert_eq!(p.rescale, None);
        let active = condition(&p.status, "ScalingActive");
        assert_eq!(
            (active["status"].as_str(), active["reason"].as_str()),
            (Some("False"), Some(reason))
        );
        assert!(active["message"]
            .as_str()
            .unwrap()
            .starts_with("the HPA was unable to compute the replica count"));
    }
}

#[test]
fn zero_replicas_disable_scaling_and_out_of_range_counts_are_brought_back() {
    let hpa = hpa(json!([]), Value::Null);
    let none = HashMap::new();
    let o = |current| Observed {
        hpa: &hpa,
        current,
        pods: &[],
        metrics: &none,
        now: now(),
    };
    let p = plan(&o(0), &mut History::default());
    assert_eq!(p.rescale, None);
    assert_eq!(
        condition(&p.status, "ScalingActive")["reason"],
        "ScalingDisabled"
    );
    assert_eq!(
        plan(&o(7), &mut History::default()).rescale.map(|r| r.0),
        Some(3)
    );
    let low = hpa_with_min(2);
    let o = Observed {
        hpa: &low,
        current: 1,
        pods: &[],
        metrics: &none,
        now: now(),
    };
    assert_eq!(
        plan(&o, &mut History::default()).rescale.map(|r| r.0),
        Some(2)
    );
}

fn hpa_with_min(min: i64) -> Value {
    let mut h = hpa(json!([]), Value::Null);
    h["spec"]["minReplicas"] = json!(min);
    h
}

#[test]
fn conditions_keep_their_transition_time_while_unchanged() {
    let mut conditions = vec![json!({"type": "AbleToScale", "status": "True",
        "lastTransitionTime": "2020-01-01T00:00:00Z", "reason": "x", "message": "y"})];
    set_condition(
        &mut conditions,
        ("AbleToScale", "True", "SucceededGetScale", "m".into()),
        now(),
    );
    assert_eq!(conditions[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
    assert_eq!(conditions[0]["reason"], "SucceededGetScale");
    set_condition(
        &mut conditions,
        ("AbleToScale", "False", "FailedGetScale", "m".into()),
        now(),
    );
    assert_ne!(conditions[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
}

#[test]
fn metrics_windows_parse_as_go_durations() {
    assert_eq!(window("15s"), Some(TimeDelta::seconds(15)));
    assert_eq!(window("9.912s"), Some(TimeDelta::milliseconds(9912)));
    assert_eq!(window("1m0.5s"), Some(TimeDelta::milliseconds(60_500)));
    assert_eq!(window("500ms"), Some(TimeDelta::milliseconds(500)));
    assert_eq!(window("5x"), None);
}
