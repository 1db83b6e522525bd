use super::*;
use serde_json::json;

fn v2_spec(metrics: Value) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h", "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 3, "metrics": metrics,
        },
    })
}

fn cpu(target: Value) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu", "target": target}})
}

/// Upstream's TestConvert_autoscaling_HorizontalPodAutoscalerSpec_To_v1_... (#101370):
/// a cpu AverageValue metric before the Utilization one does not hide it.
#[test]
fn v1_cpu_target_is_the_first_cpu_utilization_metric() {
    let average = cpu(json!({"type": "AverageValue", "averageValue": "300m"}));
    let utilization = |u: i64| cpu(json!({"type": "Utilization", "averageUtilization": u}));
    let cases = [
        ("both", json!([average, utilization(70)]), Some(70)),
        ("without metrics", json!([]), None),
        ("utilization only", json!([utilization(60)]), Some(60)),
    ];
    for (name, metrics, want) in cases {
        let v1 = to_v1(v2_spec(metrics));
        assert_eq!(v1["apiVersion"], "autoscaling/v1", "{name}");
        assert_eq!(v1["spec"]["minReplicas"], 1, "{name}");
        assert_eq!(v1["spec"]["maxReplicas"], 3, "{name}");
        assert_eq!(
            v1["spec"]["targetCPUUtilizationPercentage"].as_i64(),
            want,
            "{name}"
        );
    }
}

/// What `kubectl autoscale --cpu-percent=50` posts is stored as one cpu Utilization metric
/// and read back unchanged.
#[test]
fn kubectl_autoscale_round_trips_through_v2() {
    let v1 = json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50,
        },
        "status": {"currentReplicas": 0, "desiredReplicas": 0},
    });
    let v2 = to_v2(v1.clone());
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"],
        json!([cpu(
            json!({"type": "Utilization", "averageUtilization": 50})
        )])
    );
    assert!(v2["spec"].get("targetCPUUtilizationPercentage").is_none());
    assert_eq!(to_v1(v2), v1);
}

/// autoscaling/v1 without a target gets upstream's explicit default, 80 % CPU.
#[test]
fn v1_without_a_target_defaults_to_80_percent_cpu() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"}, "spec": {"maxReplicas": 2,
        "scaleTargetRef": {"kind": "Deployment", "name": "web"}}});
    let v2 = to_v2(v1);
    assert_eq!(
        v2["spec"]["metrics"],
        json!([cpu(
            json!({"type": "Utilization", "averageUtilization": 80})
        )])
    );
    assert_eq!(to_v1(v2)["spec"]["targetCPUUtilizationPercentage"], 80);
}

/// Everything v1 has no field for travels in the annotations, in v1's metric shape, and
/// comes back whole: other metrics, current metrics, behavior and conditions.
#[test]
fn v2_only_fields_round_trip_through_the_annotations() {
    let mut v2 = v2_spec(json!([
        {"type": "Resource", "resource": {"name": "memory",
            "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
        {"type": "Pods", "pods": {"metric": {"name": "qps"},
            "target": {"type": "AverageValue", "averageValue": "10"}}},
        {"type": "Object", "object": {
            "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
            "metric": {"name": "rps", "selector": {"matchLabels": {"a": "b"}}},
            "target": {"type": "Value", "value": "2k"}}},
        {"type": "External", "external": {"metric": {"name": "queue"},
            "target": {"type": "AverageValue", "averageValue": "30"}}},
        {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
            "target": {"type": "Utilization", "averageUtilization": 40}}},
        cpu(json!({"type": "Utilization", "averageUtilization": 50})),
    ]));
    v2["metadata"]["annotations"] = json!({"team": "a"});
    v2["spec"]["behavior"] = json!({
        "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
    });
    v2["status"] = json!({
        "observedGeneration": 1, "currentReplicas": 2, "desiredReplicas": 3,
        "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageValue": "120m", "averageUtilization": 60}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "12"}}},
            {"type": "External", "external": {"metric": {"name": "queue"},
                "current": {"value": "0", "averageValue": "31"}}},
        ],
        "conditions": [{"type": "AbleToScale", "status": "True",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "ReadyForNewScale",
            "message": "recommended size matches current size"}],
    });

    let v1 = to_v1(v2.clone());
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
    assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 60);
    assert_eq!(v1["status"]["currentReplicas"], 2);
    let annotations = &v1["metadata"]["annotations"];
    assert_eq!(annotations["team"], "a");
    let others: Value = serde_json::from_str(annotations[METRICS].as_str().unwrap()).unwrap();
    assert_eq!(others.as_array().unwrap().len(), 5, "{others}");
    assert_eq!(
        others[0],
        json!({"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}})
    );
    assert_eq!(
        others[2],
        json!({"type": "Object", "object": {
            "target": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
            "metricName": "rps", "targetValue": "2k", "selector": {"matchLabels": {"a": "b"}}}})
    );
    let behavior: Value = serde_json::from_str(annotations[BEHAVIOR].as_str().unwrap()).unwrap();
    assert_eq!(behavior["ScaleDown"]["Policies"][0]["PeriodSeconds"], 15);
    assert!(annotations[CURRENT_METRICS].is_string());
    assert!(annotations[CONDITIONS].is_string());

    // Back to v2: the annotations are consumed, the user's stays.
    let mut back = to_v2(v1);
    // A v1 Pods status has no selector pointer, and external `value` is held by value:
    // upstream's round trip is exact for this object.
    assert_eq!(back["metadata"]["annotations"], json!({"team": "a"}));
    back["metadata"]["annotations"] = json!({"team": "a"});
    assert_eq!(back, v2);
}

#[test]
fn annotations_that_do_not_parse_are_left_in_place() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h", "annotations": {METRICS: "not json"}},
        "spec": {"maxReplicas": 2, "targetCPUUtilizationPercentage": 10}});
    let v2 = to_v2(v1);
    assert_eq!(v2["metadata"]["annotations"][METRICS], "not json");
    assert_eq!(v2["spec"]["metrics"].as_array().unwrap().len(), 1);
}

#[test]
fn the_annotation_map_goes_when_only_round_trip_annotations_were_in_it() {
    let v2 = v2_spec(json!([
        {"type": "Pods", "pods": {"metric": {"name": "qps"},
            "target": {"type": "AverageValue", "averageValue": "10"}}},
    ]));
    let v1 = to_v1(v2.clone());
    assert!(v1["metadata"]["annotations"][METRICS].is_string());
    // v1's status replica counts are held by value, so they come back as zeros.
    let mut want = v2;
    want["status"] = json!({"currentReplicas": 0, "desiredReplicas": 0});
    assert_eq!(to_v2(v1), want);
}
