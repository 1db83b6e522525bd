//! autoscaling/v1 HorizontalPodAutoscalers through the REST layer: served beside v2, stored
//! once as v2, converted as upstream converts them.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

const V1: &str = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers";
const V2: &str = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";

/// The body `kubectl autoscale deploy/web --cpu-percent=50 --min=1 --max=3` posts (kubectl
/// 1.32 and earlier).
fn kubectl_autoscale() -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50,
        },
        "status": {"currentReplicas": 0, "desiredReplicas": 0},
    })
}

#[tokio::test]
async fn discovery_serves_v1_beside_the_preferred_v2() {
    let (app, _) = app().await;
    let (code, group) = call(&app, "GET", "/apis/autoscaling", None).await;
    assert_eq!(code, StatusCode::OK);
    let versions: Vec<&str> = group["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v2", "v1"]);
    assert_eq!(group["preferredVersion"]["version"], "v2");
    let (code, list) = call(&app, "GET", "/apis/autoscaling/v1", None).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "horizontalpodautoscalers"
                && r["kind"] == "HorizontalPodAutoscaler")
    );
}

#[tokio::test]
async fn a_v1_hpa_is_stored_as_v2_and_v2_fields_survive_a_v1_update() {
    let (app, _) = app().await;
    let (code, created) = call(&app, "POST", V1, Some(kubectl_autoscale())).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["apiVersion"], "autoscaling/v1");
    assert_eq!(created["spec"]["targetCPUUtilizationPercentage"], 50);

    let (code, v2) = call(&app, "GET", &format!("{V2}/web"), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        v2["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}])
    );

    // A v2 client adds a Pods metric and a behavior.
    let mut v2 = v2;
    v2["spec"]["metrics"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Pods", "pods": {
        "metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}));
    v2["spec"]["behavior"] = json!({"scaleDown": {"stabilizationWindowSeconds": 60}});
    let (code, body) = call(&app, "PUT", &format!("{V2}/web"), Some(v2)).await;
    assert_eq!(code, StatusCode::OK, "{body}");

    // A v1 client sees them as annotations, and writes them back with its own change.
    let (code, mut v1) = call(&app, "GET", &format!("{V1}/web"), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
    let annotations = &v1["metadata"]["annotations"];
    let metrics: Value = serde_json::from_str(
        annotations["autoscaling.alpha.kubernetes.io/metrics"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        metrics,
        json!([{"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}}])
    );
    assert!(annotations["autoscaling.alpha.kubernetes.io/behavior"].is_string());
    v1["spec"]["maxReplicas"] = json!(5);
    let (code, body) = call(&app, "PUT", &format!("{V1}/web"), Some(v1)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["apiVersion"], "autoscaling/v1");

    let (_, v2) = call(&app, "GET", &format!("{V2}/web"), None).await;
    assert_eq!(v2["spec"]["maxReplicas"], 5);
    assert_eq!(v2["spec"]["metrics"].as_array().unwrap().len(), 2, "{v2}");
    assert_eq!(v2["spec"]["metrics"][0]["pods"]["metric"]["name"], "qps");
    assert_eq!(v2["spec"]["metrics"][1]["resource"]["name"], "cpu");
    assert_eq!(
        v2["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        60
    );
    assert!(v2["metadata"].get("annotations").is_none(), "{v2}");

    let (code, list) = call(&app, "GET", V1, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["apiVersion"], "autoscaling/v1");
    assert_eq!(list["kind"], "HorizontalPodAutoscalerList");
    assert_eq!(list["items"][0]["apiVersion"], "autoscaling/v1");
    assert_eq!(list["items"][0]["spec"]["maxReplicas"], 5);
}
