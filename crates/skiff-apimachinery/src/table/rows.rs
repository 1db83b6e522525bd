//! Row cells for every kind with an upstream printer, one module per API group family;
//! Pod has its own module (`pod.rs`).

mod autoscaling;
mod cluster;
mod core;
mod networking;
mod storage;
mod workloads;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age, arr_at, str_at};

/// The cells for `group`/`kind`, or `None` when upstream has no printer for it.
pub(super) fn row(group: &str, kind: &str, obj: &Value, now: DateTime<Utc>) -> Option<Vec<Value>> {
    match group {
        "" if kind == "Pod" => Some(super::pod::pod_row(obj, now)),
        "" => core::row(kind, obj, now),
        "events.k8s.io" if kind == "Event" => Some(core::event(obj, now, true)),
        "apps" | "batch" => workloads::row(kind, obj, now),
        "autoscaling" => autoscaling::row(kind, obj, now),
        "networking.k8s.io" | "discovery.k8s.io" => networking::row(kind, obj, now),
        "storage.k8s.io" => storage::row(kind, obj, now),
        _ => cluster::row(group, kind, obj, now),
    }
}

/// The NAME cell.
fn name(obj: &Value) -> Value {
    json!(str_at(obj, "/metadata/name"))
}

/// The AGE cell.
fn age_cell(obj: &Value, now: DateTime<Utc>) -> Value {
    json!(age(obj, now))
}

/// Upstream's condition lookups: the first condition of `ty` decides.
fn condition_true(obj: &Value, ty: &str) -> bool {
    arr_at(obj, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == ty)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

/// A `*string` field: its value, or `absent` when the field is missing or null.
fn opt_str<'a>(obj: &'a Value, ptr: &str, absent: &'a str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or(absent)
}

/// A `*bool` field: its value, or `absent` when missing or null.
fn opt_bool(obj: &Value, ptr: &str, absent: bool) -> bool {
    obj.pointer(ptr).and_then(Value::as_bool).unwrap_or(absent)
}

/// True when a pointer field is set (present and not null).
fn is_set(obj: &Value, ptr: &str) -> bool {
    obj.pointer(ptr).is_some_and(|v| !v.is_null())
}

/// Upstream's `printBoolPtr`: `True`, `False` or `<unset>`.
fn bool_ptr(obj: &Value, ptr: &str) -> &'static str {
    match obj.pointer(ptr).and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}
