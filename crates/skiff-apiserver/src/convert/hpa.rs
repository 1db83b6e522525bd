//! autoscaling/v1 HorizontalPodAutoscaler, served beside v2 and stored as v2, converted as
//! upstream's `pkg/apis/autoscaling/v1/conversion.go` does: v1's
//! `targetCPUUtilizationPercentage` is a `Resource` cpu `Utilization` metric, and what v1
//! has no field for (other metrics, current metrics, behavior, conditions) travels in
//! annotations, in v1's (v2beta1-era) metric shape, so a v1 client that reads, edits and
//! writes an object loses nothing. Those annotations are taken back out when a v1 object is
//! stored.

use serde_json::{json, Map, Value};

/// v2 metrics other than the CPU utilization target, in v1's MetricSpec shape.
pub const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// `status.currentMetrics`, all of them, in v1's MetricStatus shape.
pub const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// `spec.behavior`, as Go marshals the internal type (field names capitalised).
pub const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
/// `status.conditions`.
pub const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

/// The CPU utilization v1 has no target for (`autoscaling.DefaultCPUUtilization`).
const DEFAULT_CPU_UTILIZATION: i64 = 80;

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|v| !v.is_null())
}

/// Inserts `value` under `key` unless it is absent.
fn put(out: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    if let Some(v) = value.filter(|v| !v.is_null()) {
        out.insert(key.into(), v.clone());
    }
}

/// Inserts a quantity Go holds by value (not a pointer): an absent one is Go's zero, `0`.
fn put_quantity(out: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    let v = value.filter(|v| !v.is_null()).cloned();
    out.insert(key.into(), v.unwrap_or_else(|| json!("0")));
}

fn get_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer).filter(|v| !v.is_null())
}

fn is_cpu_resource(metric: &Value) -> bool {
    metric.get("type").and_then(Value::as_str) == Some("Resource")
        && metric.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
}

/// The stored (v2) object as autoscaling/v1 serves it.
pub fn to_v1(obj: Value) -> Value {
    let Value::Object(mut v2) = obj else {
        return obj;
    };
    let spec = v2.remove("spec").unwrap_or(Value::Null);
    let status = v2.remove("status").unwrap_or(Value::Null);
    let empty = Vec::new();
    let metrics = get(&spec, "metrics")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let current = get(&status, "currentMetrics")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let conditions = get(&status, "conditions")
        .and_then(Value::as_array)
        .unwrap_or(&empty);

    let mut out_spec = Map::new();
    put(
        &mut out_spec,
        "scaleTargetRef",
        get(&spec, "scaleTargetRef"),
    );
    put(&mut out_spec, "minReplicas", get(&spec, "minReplicas"));
    out_spec.insert(
        "maxReplicas".into(),
        get(&spec, "maxReplicas").cloned().unwrap_or(json!(0)),
    );
    // The first cpu Resource metric with a utilization target (kubernetes#101370: a cpu
    // AverageValue metric before it does not hide it).
    if let Some(u) = metrics
        .iter()
        .filter(|m| is_cpu_resource(m))
        .find_map(|m| get_at(m, "/resource/target/averageUtilization"))
    {
        out_spec.insert("targetCPUUtilizationPercentage".into(), u.clone());
    }

    let mut out_status = Map::new();
    put(
        &mut out_status,
        "observedGeneration",
        get(&status, "observedGeneration"),
    );
    put(
        &mut out_status,
        "lastScaleTime",
        get(&status, "lastScaleTime"),
    );
    for key in ["currentReplicas", "desiredReplicas"] {
        out_status.insert(key.into(), get(&status, key).cloned().unwrap_or(json!(0)));
    }
    // Every cpu Resource status is looked at; the last one with a utilization wins.
    for m in current.iter().filter(|m| is_cpu_resource(m)) {
        put(
            &mut out_status,
            "currentCPUUtilizationPercentage",
            m.pointer("/resource/current/averageUtilization"),
        );
    }

    let others: Vec<Value> = metrics
        .iter()
        .filter(|m| {
            !(is_cpu_resource(m) && get_at(m, "/resource/target/averageUtilization").is_some())
        })
        .map(|m| metric_to_v1(m, Side::Spec))
        .collect();
    let mut annotations = Vec::new();
    if !others.is_empty() {
        annotations.push((METRICS, Value::Array(others)));
    }
    if !current.is_empty() {
        annotations.push((
            CURRENT_METRICS,
            current
                .iter()
                .map(|m| metric_to_v1(m, Side::Status))
                .collect(),
        ));
    }
    if let Some(behavior) = get(&spec, "behavior") {
        annotations.push((BEHAVIOR, behavior_to_go(behavior)));
    }
    if !conditions.is_empty() {
        let conditions = conditions.iter().map(condition_to_v1).collect();
        annotations.push((CONDITIONS, Value::Array(conditions)));
    }
    if !annotations.is_empty() {
        let meta = v2
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(meta) = meta {
            let map = meta.entry("annotations").or_insert_with(|| json!({}));
            if !map.is_object() {
                *map = json!({});
            }
            let map = map.as_object_mut().expect("made an object above");
            for (key, value) in annotations {
                map.insert(key.into(), Value::String(value.to_string()));
            }
        }
    }
    v2.insert("apiVersion".into(), json!("autoscaling/v1"));
    v2.insert("spec".into(), Value::Object(out_spec));
    v2.insert("status".into(), Value::Object(out_status));
    Value::Object(v2)
}

/// An autoscaling/v1 object in the stored (v2) shape. An annotation that does not parse is
/// left where it is, unconsumed.
pub fn to_v2(obj: Value) -> Value {
    let Value::Object(mut v1) = obj else {
        return obj;
    };
    let spec = v1.remove("spec").unwrap_or(Value::Null);
    let status = v1.remove("status").unwrap_or(Value::Null);
    let mut taken = |key: &str| -> Option<Value> {
        let annotations = v1
            .get_mut("metadata")?
            .get_mut("annotations")?
            .as_object_mut()?;
        let parsed = serde_json::from_str(annotations.get(key)?.as_str()?).ok()?;
        annotations.remove(key);
        Some(parsed)
    };
    let others = taken(METRICS);
    let current_annotation = taken(CURRENT_METRICS);
    let behavior = taken(BEHAVIOR);
    let conditions = taken(CONDITIONS);
    if let Some(meta) = v1.get_mut("metadata").and_then(Value::as_object_mut) {
        if meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            meta.remove("annotations");
        }
    }

    let mut out_spec = Map::new();
    put(
        &mut out_spec,
        "scaleTargetRef",
        get(&spec, "scaleTargetRef"),
    );
    put(&mut out_spec, "minReplicas", get(&spec, "minReplicas"));
    put(&mut out_spec, "maxReplicas", get(&spec, "maxReplicas"));
    // The annotation's metrics first, then the CPU target, in upstream's order.
    let mut metrics = Vec::new();
    if let Some(Value::Array(others)) = &others {
        metrics.extend(others.iter().map(|m| metric_to_v2(m, Side::Spec)));
    }
    if let Some(cpu) = get(&spec, "targetCPUUtilizationPercentage") {
        metrics.push(cpu_utilization(cpu.clone()));
    }
    // v1 once defaulted this in the controller; upstream makes it explicit here, where
    // every metric (the annotation's too) is known.
    if metrics.is_empty() {
        metrics.push(cpu_utilization(json!(DEFAULT_CPU_UTILIZATION)));
    }
    out_spec.insert("metrics".into(), Value::Array(metrics));
    if let Some(behavior) = &behavior {
        out_spec.insert("behavior".into(), behavior_from_go(behavior));
    }

    let mut out_status = Map::new();
    put(
        &mut out_status,
        "observedGeneration",
        get(&status, "observedGeneration"),
    );
    put(
        &mut out_status,
        "lastScaleTime",
        get(&status, "lastScaleTime"),
    );
    put(
        &mut out_status,
        "currentReplicas",
        get(&status, "currentReplicas"),
    );
    put(
        &mut out_status,
        "desiredReplicas",
        get(&status, "desiredReplicas"),
    );
    // The annotation, when there is one, has more than the CPU figure and replaces it.
    let current = match &current_annotation {
        Some(Value::Array(list)) => {
            Some(list.iter().map(|m| metric_to_v2(m, Side::Status)).collect())
        }
        _ => get(&status, "currentCPUUtilizationPercentage").map(|u| {
            vec![json!({"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageUtilization": u}}})]
        }),
    };
    if let Some(current) = current {
        out_status.insert("currentMetrics".into(), Value::Array(current));
    }
    if let Some(conditions @ Value::Array(_)) = conditions {
        out_status.insert("conditions".into(), conditions);
    }
    v1.insert("apiVersion".into(), json!("autoscaling/v2"));
    v1.insert("spec".into(), Value::Object(out_spec));
    if !out_status.is_empty() || !status.is_null() {
        v1.insert("status".into(), Value::Object(out_status));
    }
    Value::Object(v1)
}

fn cpu_utilization(percent: Value) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": percent}}})
}

/// Which half of a metric is converted: a MetricSpec's target or a MetricStatus's current
/// reading.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Spec,
    Status,
}

/// One v1 field of a metric source and where v2 keeps it (a JSON pointer into the v2
/// source). `by_value` marks a Quantity Go declares by value, which is `0` when unset.
struct Field {
    v1: &'static str,
    v2: &'static str,
    by_value: bool,
}

const fn f(v1: &'static str, v2: &'static str, by_value: bool) -> Field {
    Field { v1, v2, by_value }
}

/// v1's fields of each metric source, as upstream's v1 (v2beta1-era) types declare them.
const RESOURCE_SPEC: &[Field] = &[
    f("name", "/name", false),
    f(
        "targetAverageUtilization",
        "/target/averageUtilization",
        false,
    ),
    f("targetAverageValue", "/target/averageValue", false),
    f("container", "/container", false),
];
const PODS_SPEC: &[Field] = &[
    f("metricName", "/metric/name", false),
    f("targetAverageValue", "/target/averageValue", true),
    f("selector", "/metric/selector", false),
];
const OBJECT_SPEC: &[Field] = &[
    f("target", "/describedObject", false),
    f("metricName", "/metric/name", false),
    f("targetValue", "/target/value", true),
    f("selector", "/metric/selector", false),
    f("averageValue", "/target/averageValue", false),
];
const EXTERNAL_SPEC: &[Field] = &[
    f("metricName", "/metric/name", false),
    f("metricSelector", "/metric/selector", false),
    f("targetValue", "/target/value", false),
    f("targetAverageValue", "/target/averageValue", false),
];
const RESOURCE_STATUS: &[Field] = &[
    f("name", "/name", false),
    f(
        "currentAverageUtilization",
        "/current/averageUtilization",
        false,
    ),
    f("currentAverageValue", "/current/averageValue", true),
    f("container", "/container", false),
];
const PODS_STATUS: &[Field] = &[
    f("metricName", "/metric/name", false),
    f("currentAverageValue", "/current/averageValue", true),
    f("selector", "/metric/selector", false),
];
const OBJECT_STATUS: &[Field] = &[
    f("target", "/describedObject", false),
    f("metricName", "/metric/name", false),
    f("currentValue", "/current/value", true),
    f("selector", "/metric/selector", false),
    f("averageValue", "/current/averageValue", false),
];
const EXTERNAL_STATUS: &[Field] = &[
    f("metricName", "/metric/name", false),
    f("metricSelector", "/metric/selector", false),
    f("currentValue", "/current/value", true),
    f("currentAverageValue", "/current/averageValue", false),
];

/// The source's key and v1 fields of a metric type; `None` for a type v1 does not know.
fn source_fields(side: Side, kind: &str) -> Option<(&'static str, &'static [Field])> {
    let (spec, status, key) = match kind {
        "Resource" => (RESOURCE_SPEC, RESOURCE_STATUS, "resource"),
        "ContainerResource" => (RESOURCE_SPEC, RESOURCE_STATUS, "containerResource"),
        "Pods" => (PODS_SPEC, PODS_STATUS, "pods"),
        "Object" => (OBJECT_SPEC, OBJECT_STATUS, "object"),
        "External" => (EXTERNAL_SPEC, EXTERNAL_STATUS, "external"),
        _ => return None,
    };
    Some((key, if side == Side::Spec { spec } else { status }))
}

/// A v2 MetricSpec or MetricStatus in autoscaling/v1's shape (`targetAverageValue`,
/// `currentAverageValue`, `metricName`, ...).
fn metric_to_v1(m: &Value, side: Side) -> Value {
    let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
    let Some((key, fields)) = source_fields(side, kind) else {
        return m.clone();
    };
    let mut out = Map::new();
    out.insert("type".into(), json!(kind));
    let Some(s) = m.get(key).filter(|v| v.is_object()) else {
        return Value::Object(out);
    };
    let mut source = Map::new();
    for field in fields {
        let value = get_at(s, field.v2);
        if field.by_value {
            put_quantity(&mut source, field.v1, value);
        } else {
            put(&mut source, field.v1, value);
        }
    }
    out.insert(key.into(), Value::Object(source));
    Value::Object(out)
}

/// A v1 (annotation) MetricSpec or MetricStatus in the v2 shape. A spec's target type
/// follows from which of v1's fields is set, as upstream's conversion picks it.
fn metric_to_v2(m: &Value, side: Side) -> Value {
    let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
    let Some((key, fields)) = source_fields(side, kind) else {
        return m.clone();
    };
    let mut out = Map::new();
    out.insert("type".into(), json!(kind));
    let Some(s) = m.get(key).filter(|v| v.is_object()) else {
        return Value::Object(out);
    };
    let mut source = Map::new();
    for field in fields {
        // Quantities v1 holds by value are always there (Go's zero when unset).
        let value = get(s, field.v1)
            .cloned()
            .or_else(|| field.by_value.then(|| json!("0")));
        if let Some(value) = value {
            set_at(&mut source, field.v2, value);
        }
    }
    let reading = if side == Side::Spec {
        "target"
    } else {
        "current"
    };
    let mut nested = vec![reading];
    if !matches!(kind, "Resource" | "ContainerResource") {
        nested.push("metric");
    }
    for name in nested {
        source.entry(name).or_insert_with(|| json!({}));
    }
    if side == Side::Spec {
        let target = &source["target"];
        let has = |k: &str| target.get(k).is_some();
        let target_type = match kind {
            "Pods" => "AverageValue",
            "Object" if has("averageValue") => "AverageValue",
            "Object" => "Value",
            "External" if has("value") => "Value",
            "External" => "AverageValue",
            _ if has("averageUtilization") => "Utilization",
            _ => "AverageValue",
        };
        if let Some(t) = source.get_mut("target").and_then(Value::as_object_mut) {
            t.insert("type".into(), json!(target_type));
        }
    }
    out.insert(key.into(), Value::Object(source));
    Value::Object(out)
}

/// Sets `value` at a `/a/b` pointer below `out`, making the objects on the way.
fn set_at(out: &mut Map<String, Value>, pointer: &str, value: Value) {
    let mut parts = pointer.trim_start_matches('/').split('/').peekable();
    let mut here = out;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            here.insert(part.into(), value);
            return;
        }
        let next = here.entry(part).or_insert_with(|| json!({}));
        if !next.is_object() {
            *next = json!({});
        }
        let Some(map) = next.as_object_mut() else {
            return;
        };
        here = map;
    }
}

/// JSON field names of the behavior types and the Go field names the annotation carries
/// (the internal type has no json tags).
const BEHAVIOR_FIELDS: [(&str, &str); 9] = [
    ("scaleUp", "ScaleUp"),
    ("scaleDown", "ScaleDown"),
    ("stabilizationWindowSeconds", "StabilizationWindowSeconds"),
    ("selectPolicy", "SelectPolicy"),
    ("policies", "Policies"),
    ("tolerance", "Tolerance"),
    ("type", "Type"),
    ("value", "Value"),
    ("periodSeconds", "PeriodSeconds"),
];

/// Renames object keys through `rename` at every depth.
fn rename_keys(v: &Value, rename: &dyn Fn(&str) -> Option<&'static str>) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = rename(k).map_or_else(|| k.clone(), str::to_owned);
                    (key, rename_keys(v, rename))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| rename_keys(v, rename)).collect()),
        other => other.clone(),
    }
}

/// `json.Marshal` of the internal behavior: Go's field names in struct order, nil pointers
/// and slices as `null`.
fn behavior_to_go(behavior: &Value) -> Value {
    let rules = |r: Option<&Value>| -> Value {
        let Some(r) = r.filter(|r| r.is_object()) else {
            return Value::Null;
        };
        let mut out = Map::new();
        out.insert(
            "StabilizationWindowSeconds".into(),
            get(r, "stabilizationWindowSeconds")
                .cloned()
                .unwrap_or(Value::Null),
        );
        out.insert(
            "SelectPolicy".into(),
            get(r, "selectPolicy").cloned().unwrap_or(Value::Null),
        );
        let policies = get(r, "policies").and_then(Value::as_array).map(|ps| {
            ps.iter()
                .map(|p| {
                    json!({"Type": p.get("type"), "Value": p.get("value"),
                        "PeriodSeconds": p.get("periodSeconds")})
                })
                .collect::<Vec<_>>()
        });
        out.insert("Policies".into(), json!(policies));
        put(&mut out, "Tolerance", get(r, "tolerance"));
        Value::Object(out)
    };
    json!({"ScaleUp": rules(get(behavior, "scaleUp")), "ScaleDown": rules(get(behavior, "scaleDown"))})
}

/// A condition in v1's field order (`type`, `status`, `lastTransitionTime`, `reason`,
/// `message`), as Go marshals it.
fn condition_to_v1(c: &Value) -> Value {
    let mut out = Map::new();
    for key in ["type", "status", "lastTransitionTime", "reason", "message"] {
        put(&mut out, key, get(c, key));
    }
    Value::Object(out)
}

/// Go's decoder matches field names case-insensitively, so either spelling is read.
fn behavior_from_go(behavior: &Value) -> Value {
    let renamed = rename_keys(&drop_nulls(behavior), &|k| {
        BEHAVIOR_FIELDS
            .iter()
            .find(|(json, _)| json.eq_ignore_ascii_case(k))
            .map(|(json, _)| *json)
    });
    renamed
}

/// The value without `null` members (Go's nil pointers), which the v2 object omits.
fn drop_nulls(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), drop_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(drop_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
#[path = "hpa_tests.rs"]
mod tests;
