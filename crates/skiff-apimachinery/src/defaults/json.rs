//! Small helpers for setting defaults on wire-form JSON, mirroring Go's zero-value checks.

use serde_json::{Map, Value};

/// True when a field counts as unset the way Go sees it after decoding: absent, `null`, or the
/// empty string (Go defaulting compares string fields with `""`).
pub(crate) fn is_unset(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// True when a numeric field is unset or zero; Go's non-pointer ints (probe timings) are
/// defaulted when they decode to `0`.
pub(crate) fn is_unset_or_zero(v: Option<&Value>) -> bool {
    is_unset(v) || v.and_then(Value::as_f64) == Some(0.0)
}

/// Sets `key` to `value` when it is unset (absent, null or "").
pub(crate) fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if is_unset(map.get(key)) {
        map.insert(key.to_string(), value);
    }
}

/// Sets `key` to `value` when it is unset or the number zero.
pub(crate) fn default_nonzero(map: &mut Map<String, Value>, key: &str, value: Value) {
    if is_unset_or_zero(map.get(key)) {
        map.insert(key.to_string(), value);
    }
}

/// Returns the object under `key`, creating `{}` when it is absent or not an object; used for
/// Go struct fields that always exist (a non-pointer struct is never nil).
pub(crate) fn ensure_obj<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> &'a mut Map<String, Value> {
    let slot = map.entry(key.to_string()).or_insert(Value::Null);
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        // Just replaced with an object above.
        _ => unreachable!("slot was set to an object"),
    }
}

/// Returns the object under `key` only when it exists; used for Go pointer fields, which are
/// defaulted only when the client sent them.
pub(crate) fn get_obj<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// Iterates over the objects of the array under `key`, skipping non-object items (those are
/// rejected later by schema validation).
pub(crate) fn each_obj(
    map: &mut Map<String, Value>,
    key: &str,
    mut f: impl FnMut(&mut Map<String, Value>),
) {
    if let Some(Value::Array(items)) = map.get_mut(key) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            f(item);
        }
    }
}

/// Marks a template's `metadata` the way Go serialises an embedded zero `ObjectMeta` in 1.33:
/// `metadata: {creationTimestamp: null}`, so read-backs match `kubectl get -o yaml` upstream.
pub(crate) fn template_metadata(template: &mut Map<String, Value>) {
    let meta = ensure_obj(template, "metadata");
    if !meta.contains_key("creationTimestamp") {
        meta.insert("creationTimestamp".into(), Value::Null);
    }
}
