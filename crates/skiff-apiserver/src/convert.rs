//! Conversions between a resource's served shape and its stored shape.
//!
//! Events need one: `events.k8s.io/v1` Events are the same objects as core `v1` Events,
//! stored once in the core shape (as upstream does), so `kubectl describe` shows events
//! recorded through either API. autoscaling/v1 HorizontalPodAutoscalers are stored as v2
//! ([`hpa`]). Custom resources are stored in their CRD's storage version and served in any
//! other with only `apiVersion` changed (conversion strategy `None`).

use serde_json::{Map, Value};

use crate::resources::ResourceInfo;

pub mod hpa;

/// Field renames between core/v1 Event (left) and events.k8s.io/v1 Event (right).
const EVENT_FIELDS: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn is_events_v1(r: &ResourceInfo) -> bool {
    r.group == "events.k8s.io" && r.kind == "Event"
}

/// autoscaling/v1 HorizontalPodAutoscalers are stored as v2 (see [`hpa`]).
fn is_hpa_v1(r: &ResourceInfo) -> bool {
    r.group == "autoscaling" && r.version == "v1" && r.kind == "HorizontalPodAutoscaler"
}

fn rename(obj: Value, api_version: &str, to_new: bool) -> Value {
    let Value::Object(map) = obj else { return obj };
    let mut out = Map::with_capacity(map.len());
    for (k, v) in map {
        let key = EVENT_FIELDS
            .iter()
            .find(|(core, new)| if to_new { k == *core } else { k == *new })
            .map(|(core, new)| if to_new { *new } else { *core })
            .unwrap_or(k.as_str())
            .to_owned();
        out.insert(key, v);
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    Value::Object(out)
}

/// The stored (core) shape of an object written through `r`.
pub fn to_storage(r: &ResourceInfo, obj: Value) -> Value {
    if is_events_v1(r) {
        return rename(obj, "v1", false);
    }
    if is_hpa_v1(r) {
        return hpa::to_v2(obj);
    }
    match &r.custom {
        Some(c) if c.storage_version != r.version => {
            with_api_version(obj, format!("{}/{}", r.group, c.storage_version))
        }
        _ => obj,
    }
}

fn with_api_version(mut obj: Value, api_version: String) -> Value {
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(api_version));
    }
    obj
}

/// The shape `r` serves for a stored object.
pub fn from_storage(r: &ResourceInfo, obj: Value) -> Value {
    if is_events_v1(r) {
        return rename(obj, "events.k8s.io/v1", true);
    }
    if is_hpa_v1(r) {
        return hpa::to_v1(obj);
    }
    let Some(c) = &r.custom else { return obj };
    let mut obj = if c.storage_version != r.version {
        with_api_version(obj, r.api_version())
    } else {
        obj
    };
    // Upstream defaults custom resources on read too, so a default added to the schema
    // later shows on objects stored before it.
    if let Some(schema) = &c.structural {
        schema.apply_defaults(&mut obj);
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{builtins, Registry};
    use serde_json::json;

    #[test]
    fn events_round_trip_between_core_and_events_api_shapes() {
        let reg = Registry::new(builtins());
        let ev = reg.get("events.k8s.io", "v1", "events").unwrap();
        let core = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi",
            "reason": "Started", "count": 2, "reportingComponent": "kubelet"
        });
        let served = from_storage(&ev, core.clone());
        assert_eq!(served["apiVersion"], "events.k8s.io/v1");
        assert_eq!(served["regarding"]["name"], "p");
        assert_eq!(served["note"], "hi");
        assert_eq!(served["deprecatedCount"], 2);
        assert_eq!(served["reportingController"], "kubelet");
        assert_eq!(to_storage(&ev, served), core);
    }
}
