//! autoscaling: HorizontalPodAutoscaler (v2 shape, v1 converted into it) and the scale
//! subresource's Scale.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::super::format::quantity_or;
use super::super::{arr_at, int_at, str_at};
use super::{age_cell, is_set, name};

pub(super) fn row(kind: &str, obj: &Value, now: DateTime<Utc>) -> Option<Vec<Value>> {
    let name = name(obj);
    let age = age_cell(obj, now);
    let cells = match kind {
        "HorizontalPodAutoscaler" => {
            let reference = format!(
                "{}/{}",
                str_at(obj, "/spec/scaleTargetRef/kind"),
                str_at(obj, "/spec/scaleTargetRef/name")
            );
            let (specs, statuses) = metrics(obj);
            let min_pods = match obj.pointer("/spec/minReplicas").and_then(Value::as_i64) {
                Some(n) => n.to_string(),
                None => "<unset>".into(),
            };
            vec![
                name,
                json!(reference),
                json!(format_metrics(&specs, &statuses)),
                json!(min_pods),
                json!(int_at(obj, "/spec/maxReplicas")),
                json!(int_at(obj, "/status/currentReplicas")),
                age,
            ]
        }
        "Scale" => vec![
            name,
            json!(int_at(obj, "/spec/replicas")),
            json!(int_at(obj, "/status/replicas")),
            age,
        ],
        _ => return None,
    };
    Some(cells)
}

/// `spec.metrics` and `status.currentMetrics` in the v2 shape upstream prints from. An
/// autoscaling/v1 object converts as upstream converts it: its CPU utilization target and
/// current value become one `Resource` metric each.
fn metrics(obj: &Value) -> (Cow<'_, [Value]>, Cow<'_, [Value]>) {
    let v1 = obj.pointer("/spec/metrics").is_none()
        && (str_at(obj, "/apiVersion") == "autoscaling/v1"
            || is_set(obj, "/spec/targetCPUUtilizationPercentage"));
    if !v1 {
        return (
            Cow::Borrowed(arr_at(obj, "/spec/metrics")),
            Cow::Borrowed(arr_at(obj, "/status/currentMetrics")),
        );
    }
    let specs = match obj
        .pointer("/spec/targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
    {
        Some(target) => vec![json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": target}}})],
        None => vec![],
    };
    let statuses = match obj
        .pointer("/status/currentCPUUtilizationPercentage")
        .and_then(Value::as_i64)
    {
        Some(current) => vec![json!({"type": "Resource", "resource": {"name": "cpu",
            "current": {"averageUtilization": current}}})],
        None => vec![],
    };
    (Cow::Owned(specs), Cow::Owned(statuses))
}

/// Upstream's `formatHPAMetrics`: one `current/target` entry per metric spec, its current
/// value from the status at the same index, the first two shown, then "+ N more...".
fn format_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            // The status of the same source type at this index, when the API server has
            // reported one.
            let status = |source: &str| {
                statuses
                    .get(i)
                    .and_then(|s| s.get(source))
                    .filter(|s| s.is_object())
            };
            match str_at(spec, "/type") {
                "External" => value_metric(&spec["external"], status("external")),
                "Object" => value_metric(&spec["object"], status("object")),
                "Pods" => {
                    let current = match status("pods") {
                        Some(s) => quantity_or(s, "/current/averageValue", "<nil>"),
                        None => "<unknown>".into(),
                    };
                    let target = quantity_or(spec, "/pods/target/averageValue", "<nil>");
                    format!("{current}/{target}")
                }
                "Resource" => resource_metric(&spec["resource"], status("resource")),
                "ContainerResource" => {
                    resource_metric(&spec["containerResource"], status("containerResource"))
                }
                _ => "<unknown type>".into(),
            }
        })
        .collect();
    if list.len() > 2 {
        return format!("{} + {} more...", list[..2].join(", "), list.len() - 2);
    }
    list.join(", ")
}

/// External and Object metrics: an average-value target prints with "(avg)".
fn value_metric(source: &Value, status: Option<&Value>) -> String {
    if is_set(source, "/target/averageValue") {
        let current = match status {
            Some(s) if is_set(s, "/current/averageValue") => {
                quantity_or(s, "/current/averageValue", "<nil>")
            }
            _ => "<unknown>".into(),
        };
        let target = quantity_or(source, "/target/averageValue", "<nil>");
        format!("{current}/{target} (avg)")
    } else {
        let current = match status {
            Some(s) => quantity_or(s, "/current/value", "<nil>"),
            None => "<unknown>".into(),
        };
        let target = quantity_or(source, "/target/value", "<nil>");
        format!("{current}/{target}")
    }
}

/// Resource and ContainerResource metrics: `name: current/target`, as a quantity for an
/// average-value target, else as a utilization percentage (`<auto>` without a target).
fn resource_metric(source: &Value, status: Option<&Value>) -> String {
    let resource = str_at(source, "/name");
    if is_set(source, "/target/averageValue") {
        let current = match status {
            Some(s) => quantity_or(s, "/current/averageValue", "<nil>"),
            None => "<unknown>".into(),
        };
        let target = quantity_or(source, "/target/averageValue", "<nil>");
        return format!("{resource}: {current}/{target}");
    }
    let percent = |v: Option<&Value>| v.and_then(Value::as_i64).map(|n| format!("{n}%"));
    let current = status
        .and_then(|s| percent(s.pointer("/current/averageUtilization")))
        .unwrap_or_else(|| "<unknown>".into());
    let target =
        percent(source.pointer("/target/averageUtilization")).unwrap_or_else(|| "<auto>".into());
    format!("{resource}: {current}/{target}")
}
