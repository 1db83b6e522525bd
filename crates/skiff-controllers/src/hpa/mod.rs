//! The HorizontalPodAutoscaler controller (autoscaling/v2), as upstream's: every 15 s each
//! HPA's target is read through its `scale` subresource (Deployments, StatefulSets,
//! ReplicaSets, custom resources with a scale subresource alike), the pods its selector
//! picks and their `metrics.k8s.io` figures give a proposal per metric ([`replicas`]), the
//! highest one is stabilized and rate-limited ([`behavior`]), written to the scale, and
//! the status (current metrics, AbleToScale, ScalingActive, ScalingLimited) follows.
//! Pods, Object and External metrics need custom or external metrics APIs skiff does not
//! serve: they answer ScalingActive=False with the reason upstream gives when those APIs
//! fail, never silently. The decision is the pure [`plan`].

pub mod behavior;
pub mod replicas;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{json, Value};
use skiff_apimachinery::quantity::Quantity;
use skiff_reconcile::events::Recorder;
use skiff_reconcile::{Harness, Metrics, Outcome};

use behavior::History;
use replicas::{PodInfo, PodMetric, Target};

/// How often every HPA is looked at (`--horizontal-pod-autoscaler-sync-period`).
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);

/// One pod's `metrics.k8s.io` figures: per container (CPU millicores, memory millibytes).
#[derive(Debug, Clone, PartialEq)]
pub struct PodUsage {
    pub containers: Vec<(String, i64, i64)>,
    pub timestamp: DateTime<Utc>,
    pub window: TimeDelta,
}

/// What the controller read for one HPA.
pub struct Observed<'a> {
    pub hpa: &'a Value,
    /// The scale's `spec.replicas`.
    pub current: i32,
    /// The pods the scale's selector picks, in wire form.
    pub pods: &'a [Value],
    /// Their figures by pod name.
    pub metrics: &'a HashMap<String, PodUsage>,
    pub now: DateTime<Utc>,
}

/// What to do: scale (from, to, why) and the new status.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub rescale: Option<(i32, String)>,
    pub status: Value,
}

fn set_condition(
    conditions: &mut Vec<Value>,
    (type_, status, reason, message): (&str, &str, &str, String),
    now: DateTime<Utc>,
) {
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match conditions.iter_mut().find(|c| c["type"] == type_) {
        Some(c) => {
            if c["status"] != status {
                c["lastTransitionTime"] = json!(at);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => conditions.push(json!({"type": type_, "status": status,
            "lastTransitionTime": at, "reason": reason, "message": message})),
    }
}

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn milli(q: &Value) -> Option<i64> {
    let q = Quantity::parse(q.as_str()?).ok()?;
    i64::try_from(q.milli_value()).ok()
}

/// A pod as the calculator sees it, with its requests of `resource`.
fn pod_info(pod: &Value, resource: &str) -> PodInfo {
    let ready = pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| {
            (
                c["status"] == "True",
                parse_time(&c["lastTransitionTime"]).unwrap_or_default(),
            )
        });
    PodInfo {
        name: pod["metadata"]["name"].as_str().unwrap_or_default().into(),
        phase: pod["status"]["phase"].as_str().unwrap_or_default().into(),
        deleting: !pod["metadata"]["deletionTimestamp"].is_null(),
        ready,
        start_time: parse_time(&pod["status"]["startTime"]),
        requests: pod["spec"]["containers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or_default().to_owned(),
                            milli(&c["resources"]["requests"][resource]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// One metric's proposal: (replicas, its name for messages, its status entry).
type Proposal = (i32, String, Value);
/// One metric's failure: (condition reason, message).
type Failure = (&'static str, String);

fn resource_proposal(o: &Observed, spec: &Value, container: bool) -> Result<Proposal, Failure> {
    let (kind, key) = if container {
        ("ContainerResource", "containerResource")
    } else {
        ("Resource", "resource")
    };
    let m = &spec[key];
    let resource = m["name"].as_str().unwrap_or_default();
    let container_name = container.then(|| m["container"].as_str().unwrap_or_default());
    let failed = |e: String| {
        let what = if m["target"]["type"] == "Utilization" {
            format!("failed to get {resource} utilization: {e}")
        } else {
            format!("failed to get {resource} usage: {e}")
        };
        (
            if container {
                "FailedGetContainerResourceMetric"
            } else {
                "FailedGetResourceMetric"
            },
            format!("the HPA was unable to compute the replica count: {what}"),
        )
    };
    let target = match m["target"]["type"].as_str() {
        Some("Utilization") => Target::Utilization(
            m["target"]["averageUtilization"]
                .as_i64()
                .and_then(|u| i32::try_from(u).ok())
                .ok_or_else(|| failed("missing target utilization".into()))?,
        ),
        Some("AverageValue") => Target::AverageValue(
            milli(&m["target"]["averageValue"])
                .ok_or_else(|| failed("missing target average value".into()))?,
        ),
        other => {
            return Err(failed(format!(
                "invalid resource metric source: target type {} is not supported",
                other.unwrap_or("")
            )))
        }
    };
    let metrics: HashMap<String, PodMetric> = o
        .metrics
        .iter()
        .filter_map(|(pod, u)| {
            let mut value: i64 = 0;
            let mut found = false;
            for (name, cpu, memory) in &u.containers {
                if container_name.is_some_and(|c| c != name) {
                    continue;
                }
                found = true;
                value = value.saturating_add(match resource {
                    "cpu" => *cpu,
                    _ => *memory,
                });
            }
            found.then(|| {
                (
                    pod.clone(),
                    PodMetric {
                        value,
                        timestamp: u.timestamp,
                        window: u.window,
                    },
                )
            })
        })
        .collect();
    if resource != "cpu" && resource != "memory" {
        return Err(failed(format!(
            "unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
        )));
    }
    if metrics.is_empty() {
        return Err(failed(format!(
            "unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
        )));
    }
    let pods: Vec<PodInfo> = o.pods.iter().map(|p| pod_info(p, resource)).collect();
    let r = replicas::calculate(
        o.current,
        target,
        resource,
        container_name,
        &pods,
        &metrics,
        o.now,
    )
    .map_err(failed)?;
    let mut current = json!({"averageValue": Quantity::from_nanos(
        u64::try_from(r.average).unwrap_or(0).saturating_mul(1_000_000)).to_string()});
    if let Some(u) = r.utilization {
        current["averageUtilization"] = json!(u);
    }
    let mut status = json!({"type": kind, key: {"name": resource, "current": current}});
    if let Some(c) = container_name {
        status[key]["container"] = json!(c);
    }
    let what = match (container, r.utilization.is_some()) {
        (false, true) => format!("{resource} resource utilization (percentage of request)"),
        (false, false) => format!("{resource} resource"),
        (true, true) => {
            format!("{resource} container resource utilization (percentage of request)")
        }
        (true, false) => format!("{resource} container resource"),
    };
    Ok((r.replicas, what, status))
}

/// One metric's proposal, or why there is none.
fn proposal(o: &Observed, spec: &Value) -> Result<Proposal, Failure> {
    match spec["type"].as_str().unwrap_or_default() {
        "Resource" => resource_proposal(o, spec, false),
        "ContainerResource" => resource_proposal(o, spec, true),
        "Pods" => Err((
            "FailedGetPodsMetric",
            format!(
                "the HPA was unable to compute the replica count: unable to get metric {}: no custom metrics API (custom.metrics.k8s.io) is served",
                spec["pods"]["metric"]["name"].as_str().unwrap_or_default()
            ),
        )),
        "Object" => Err((
            "FailedGetObjectMetric",
            format!(
                "the HPA was unable to compute the replica count: unable to get metric {}: no custom metrics API (custom.metrics.k8s.io) is served",
                spec["object"]["metric"]["name"].as_str().unwrap_or_default()
            ),
        )),
        "External" => Err((
            "FailedGetExternalMetric",
            format!(
                "the HPA was unable to compute the replica count: unable to get external metric {}: no external metrics API (external.metrics.k8s.io) is served",
                spec["external"]["metric"]["name"].as_str().unwrap_or_default()
            ),
        )),
        other => Err((
            "InvalidMetricSourceType",
            format!("the HPA was unable to compute the replica count: unknown metric source type {other:?}"),
        )),
    }
}

/// Upstream's `reconcileAutoscaler`, from what was read to the scale and status to write.
pub fn plan(o: &Observed, history: &mut History) -> Plan {
    let spec = &o.hpa["spec"];
    let min = spec["minReplicas"].as_i64().unwrap_or(1) as i32;
    let max = spec["maxReplicas"].as_i64().unwrap_or(1) as i32;
    let current = o.current;
    let old = &o.hpa["status"];
    let mut conditions: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();
    let mut set = |c: (&str, &str, &str, String)| set_condition(&mut conditions, c, o.now);
    set((
        "AbleToScale",
        "True",
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
    ));
    let mut current_metrics = old["currentMetrics"].clone();
    let mut desired = old["desiredReplicas"].as_i64().unwrap_or(0) as i32;
    let mut rescale = None;
    if current == 0 && min != 0 {
        desired = 0;
        set((
            "ScalingActive",
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
        ));
    } else if current > max {
        desired = max;
        rescale = Some((
            max,
            "Current number of replicas above Spec.MaxReplicas".into(),
        ));
    } else if current < min {
        desired = min;
        rescale = Some((
            min,
            "Current number of replicas below Spec.MinReplicas".into(),
        ));
    } else {
        let specs: Vec<Value> = spec["metrics"].as_array().cloned().unwrap_or_default();
        let mut best: Option<(i32, String)> = None;
        let mut statuses = Vec::new();
        let mut failure: Option<Failure> = None;
        let mut failures = 0;
        for m in &specs {
            match proposal(o, m) {
                Ok((r, name, status)) => {
                    statuses.push(status);
                    if best.as_ref().is_none_or(|(b, _)| r > *b) {
                        best = Some((r, name));
                    }
                }
                Err(f) => {
                    failures += 1;
                    failure.get_or_insert(f);
                }
            }
        }
        current_metrics = json!(statuses);
        // Upstream: every metric failing, or some failing while the others would scale
        // down, leaves the scale alone.
        let blocked = match &best {
            None => true,
            Some((r, _)) => failures > 0 && *r < current,
        };
        if blocked {
            let (reason, message) = failure.unwrap_or((
                "InvalidMetricSourceType",
                "the HPA was unable to compute the replica count: no metrics are specified".into(),
            ));
            set(("ScalingActive", "False", reason, message));
        } else if let Some((proposed, name)) = best {
            set((
                "ScalingActive",
                "True",
                "ValidMetricFound",
                format!("the HPA was able to successfully calculate a replica count from {name}"),
            ));
            let n = behavior::normalize(
                &spec["behavior"],
                history,
                current,
                proposed,
                min,
                max,
                o.now,
            );
            for c in n.conditions {
                set(c);
            }
            desired = n.replicas;
            if desired != current {
                let why = if desired > current {
                    format!("{name} above target")
                } else {
                    "All metrics below target".into()
                };
                rescale = Some((desired, why));
            }
        }
    }
    if let Some((to, _)) = &rescale {
        set((
            "AbleToScale",
            "True",
            "SucceededRescale",
            format!("the HPA controller was able to update the target scale to {to}"),
        ));
    }
    let mut status = json!({
        "currentReplicas": current,
        "desiredReplicas": desired,
        "conditions": conditions,
    });
    if let Some(g) = o.hpa["metadata"]["generation"].as_i64() {
        status["observedGeneration"] = json!(g);
    }
    if current_metrics.as_array().is_some_and(|a| !a.is_empty()) {
        status["currentMetrics"] = current_metrics;
    }
    let last = if rescale.is_some() {
        json!(o.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    } else {
        old["lastScaleTime"].clone()
    };
    if !last.is_null() {
        status["lastScaleTime"] = last;
    }
    Plan { rescale, status }
}

struct Ctx {
    client: kube::Client,
    recorder: Recorder,
    /// Per HPA uid: recommendations and scale events of earlier syncs.
    history: Mutex<HashMap<String, History>>,
}

/// Runs the controller until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let controller = Harness::new("horizontal-pod-autoscaler", client.clone())
        .metrics(&metrics)
        .watch::<HorizontalPodAutoscaler>();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "horizontal-pod-autoscaler"),
        history: Mutex::new(HashMap::new()),
        client,
    });
    controller.run(reconcile, ctx).await;
}

/// A PodMetrics `window`: Go's `Duration.String()` of whole and fractional hours, minutes,
/// seconds and milliseconds (`15s`, `9.912s`, `1m0.5s`, `500ms`).
pub fn window(s: &str) -> Option<TimeDelta> {
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let (scale, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else {
            return None;
        };
        total += value * scale;
        rest = &rest[len..];
    }
    TimeDelta::try_milliseconds((total * 1000.0).round() as i64)
}

/// A PodMetrics object's figures.
fn pod_usage(m: &Value) -> Option<(String, PodUsage)> {
    let name = m["metadata"]["name"].as_str()?.to_owned();
    let window = m["window"].as_str().and_then(window).unwrap_or_default();
    let containers = m["containers"]
        .as_array()?
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                milli(&c["usage"]["cpu"]).unwrap_or(0),
                milli(&c["usage"]["memory"]).unwrap_or(0),
            )
        })
        .collect();
    Some((
        name,
        PodUsage {
            containers,
            timestamp: parse_time(&m["timestamp"])?,
            window,
        },
    ))
}

async fn reconcile(
    hpa: Arc<HorizontalPodAutoscaler>,
    ctx: Arc<Ctx>,
) -> Result<Outcome, crate::Error> {
    let ns = hpa
        .metadata
        .namespace
        .clone()
        .ok_or(crate::Error::Missing("namespace"))?;
    let name = hpa
        .metadata
        .name
        .clone()
        .ok_or(crate::Error::Missing("name"))?;
    let uid = hpa.metadata.uid.clone().unwrap_or_default();
    let hpa_value = serde_json::to_value(hpa.as_ref())?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
    let reference = ObjectReference {
        api_version: Some("autoscaling/v2".into()),
        kind: Some("HorizontalPodAutoscaler".into()),
        name: Some(name.clone()),
        namespace: Some(ns.clone()),
        uid: Some(uid.clone()),
        ..Default::default()
    };
    let target = &hpa
        .spec
        .as_ref()
        .ok_or(crate::Error::Missing("spec"))?
        .scale_target_ref;
    let (group, version) = match target.api_version.as_deref().unwrap_or("").split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (
            String::new(),
            target.api_version.clone().unwrap_or_default(),
        ),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, &target.kind);
    let scale = match kube::discovery::pinned_kind(&ctx.client, &gvk).await {
        Ok((ar, _)) => {
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
            api.get_scale(&target.name).await.map(|s| (api, s))
        }
        Err(e) => Err(e),
    };
    let (scale_api, scale) = match scale {
        Ok(s) => s,
        Err(e) => {
            let message =
                format!("the HPA controller was unable to get the target's current scale: {e}");
            ctx.recorder
                .publish(&reference, "Warning", "FailedGetScale", &e.to_string())
                .await;
            let mut conditions: Vec<Value> = hpa_value["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            set_condition(
                &mut conditions,
                ("AbleToScale", "False", "FailedGetScale", message),
                Utc::now(),
            );
            let patch = json!({"status": {"conditions": conditions}});
            hpas.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            return Ok(Outcome::RequeueAfter(SYNC_PERIOD));
        }
    };
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let selector = scale
        .status
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let pods: Vec<Value> = if selector.is_empty() {
        vec![]
    } else {
        Api::<Pod>::namespaced(ctx.client.clone(), &ns)
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect()
    };
    let metrics_ar = ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    };
    let metrics: HashMap<String, PodUsage> = if selector.is_empty() {
        HashMap::new()
    } else {
        match Api::<DynamicObject>::namespaced_with(ctx.client.clone(), &ns, &metrics_ar)
            .list(&ListParams::default().labels(&selector))
            .await
        {
            Ok(list) => list
                .items
                .iter()
                .filter_map(|m| pod_usage(&serde_json::to_value(m).ok()?))
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, "listing pod metrics");
                HashMap::new()
            }
        }
    };
    let now = Utc::now();
    let observed = Observed {
        hpa: &hpa_value,
        current,
        pods: &pods,
        metrics: &metrics,
        now,
    };
    let mut history = ctx
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&uid)
        .unwrap_or_default();
    let mut plan = plan(&observed, &mut history);
    if let Some((to, why)) = &plan.rescale {
        let patch = json!({"spec": {"replicas": to}});
        match scale_api
            .patch_scale(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                behavior::record_scale(
                    &hpa_value["spec"]["behavior"],
                    &mut history,
                    current,
                    *to,
                    now,
                );
                ctx.recorder
                    .publish(
                        &reference,
                        "Normal",
                        "SuccessfulRescale",
                        &format!("New size: {to}; reason: {why}"),
                    )
                    .await;
            }
            Err(e) => {
                let mut conditions: Vec<Value> = plan.status["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                set_condition(
                    &mut conditions,
                    (
                        "AbleToScale",
                        "False",
                        "FailedUpdateScale",
                        format!("the HPA controller was unable to update the target scale: {e}"),
                    ),
                    now,
                );
                plan.status["conditions"] = json!(conditions);
                plan.status["desiredReplicas"] = json!(current);
                ctx.recorder
                    .publish(
                        &reference,
                        "Warning",
                        "FailedRescale",
                        &format!("New size: {to}; reason: {why}; error: {e}"),
                    )
                    .await;
            }
        }
    }
    ctx.history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(uid, history);
    if plan.status != hpa_value["status"] {
        let patch = json!({"status": plan.status});
        hpas.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(Outcome::RequeueAfter(SYNC_PERIOD))
}
