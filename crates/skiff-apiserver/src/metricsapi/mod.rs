//! `metrics.k8s.io/v1beta1`, served by the API server itself (decision 0025): NodeMetrics
//! and PodMetrics as metrics-server answers them — list and get, label and field
//! selectors, namespaces; `timestamp`, `window` and `usage` with upstream's quantity
//! forms (CPU in nanocores, memory in binary SI). The figures come from [`collector`],
//! which scrapes each node's Summary; the group is a row of the resource table (so
//! discovery lists it) and gets a Local APIService `v1beta1.metrics.k8s.io`.

pub mod collector;
pub mod storage;

use std::sync::{Arc, Mutex};

use axum::http::Method;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};
use skiff_apimachinery::quantity::{Format, Quantity};

use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::request::{Params, Target};
use crate::resources::ResourceInfo;
use storage::{Batch, Storage, Usage};

/// The API group.
pub const GROUP: &str = "metrics.k8s.io";
/// Its one version.
pub const VERSION: &str = "v1beta1";

/// The collector's latest readings, shared by the collector and the request handlers.
pub struct Metrics {
    storage: Mutex<Storage>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            storage: Mutex::new(Storage::new(collector::RESOLUTION)),
        }
    }
}

impl Metrics {
    /// Takes in one scrape round.
    pub fn store(&self, batch: Batch) {
        self.storage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .store(batch);
    }

    fn read<T>(&self, f: impl FnOnce(&Storage) -> T) -> T {
        f(&self.storage.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn row(kind: &str, plural: &str, namespaced: bool) -> ResourceInfo {
    ResourceInfo {
        group: GROUP.into(),
        version: VERSION.into(),
        kind: kind.into(),
        plural: plural.into(),
        // metrics-server's discovery has no singular names.
        singular: String::new(),
        namespaced,
        short_names: vec![],
        categories: vec![],
        status_subresource: false,
        scale_subresource: false,
        generation: false,
        // Never stored: the rows only route requests here.
        storage: format!("{GROUP}/{plural}"),
        schema_name: format!("io.k8s.metrics.pkg.apis.metrics.{VERSION}.{kind}"),
        schema: None,
        decode: None,
        custom: None,
        create_only: false,
    }
}

/// The rows of the resource table: `nodes` (NodeMetrics) and `pods` (PodMetrics).
pub fn resources() -> Vec<ResourceInfo> {
    vec![
        row("NodeMetrics", "nodes", false),
        row("PodMetrics", "pods", true),
    ]
}

/// Whether a row is one of these (served by [`handle`], read-only).
pub fn served(r: &ResourceInfo) -> bool {
    r.group == GROUP && r.custom.is_none()
}

/// The verbs discovery lists for them.
pub const VERBS: [&str; 2] = ["get", "list"];

/// Serves a request to a metrics row: `get` and `list` only (no watch, as upstream).
pub fn handle(api: &Api, t: &Target, p: &Params, method: &Method) -> Result<Value> {
    if method != Method::GET || p.flag("watch") || t.subresource.is_some() {
        return Err(ApiError::MethodNotAllowed(
            "the server does not allow this method on the requested resource".into(),
        ));
    }
    let pods = t.resource.kind == "PodMetrics";
    let source = api
        .registry
        .get("", "v1", if pods { "pods" } else { "nodes" })
        .ok_or(ApiError::NoRoute)?;
    let source_target = Target {
        resource: source,
        namespace: t.namespace.clone(),
        name: t.name.clone(),
        subresource: None,
    };
    let now = Utc::now();
    match &t.name {
        Some(name) => {
            // The pod's or node's own NotFound when it does not exist, as upstream's.
            let obj = api.get(&source_target)?;
            let item = if pods {
                pod_item(api, &obj, now)
            } else {
                node_item(api, &obj, now)
            };
            item.ok_or_else(|| {
                let shown = match &t.namespace {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name.clone(),
                };
                ApiError::not_found(&t.resource, &shown)
            })
        }
        None => {
            // Only the selectors apply: paging and resource versions mean nothing here.
            let objects = match p.get("fieldSelector") {
                // Field selectors match the whole source object: the full list reads it.
                Some(fields) => {
                    let mut q = Params::default();
                    q.query.insert("fieldSelector".into(), fields.into());
                    if let Some(v) = p.get("labelSelector") {
                        q.query.insert("labelSelector".into(), v.into());
                    }
                    let list = api.list(&source_target, &q)?;
                    let mut objects: Vec<Value> = match list.get("items") {
                        Some(Value::Array(items)) => items.clone(),
                        _ => vec![],
                    };
                    // The order the API lists pods in: namespace, then name.
                    objects.sort_by(|a, b| {
                        let key = |o: &Value| {
                            (
                                o["metadata"]["namespace"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_owned(),
                                o["metadata"]["name"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_owned(),
                            )
                        };
                        key(a).cmp(&key(b))
                    });
                    objects
                }
                None => thin_list(api, &source_target, p)?,
            };
            let items: Vec<Value> = objects
                .iter()
                .filter_map(|o| {
                    if pods {
                        pod_item(api, o, now)
                    } else {
                        node_item(api, o, now)
                    }
                })
                .collect();
            Ok(json!({
                "kind": format!("{}List", t.resource.kind),
                "apiVersion": format!("{GROUP}/{VERSION}"),
                "metadata": {},
                "items": items,
            }))
        }
    }
}

/// What a metrics item needs of its pod or node: name, namespace, labels and phase.
/// Decoding only these skips the rest of each stored object (spec, managedFields) without
/// building it, which is most of the cost of `kubectl top pod` on the server.
#[derive(serde::Deserialize)]
struct Thin {
    metadata: ThinMeta,
    #[serde(default)]
    status: ThinStatus,
}

#[derive(serde::Deserialize)]
struct ThinMeta {
    #[serde(default)]
    name: Value,
    #[serde(default)]
    namespace: Value,
    #[serde(default)]
    labels: Value,
}

#[derive(serde::Deserialize, Default)]
struct ThinStatus {
    #[serde(default)]
    phase: Value,
}

/// Decodes the part of a stored pod or node [`pod_item`], [`node_item`] and a label
/// selector read, in the same JSON shape.
fn thin_object(bytes: &[u8]) -> Option<Value> {
    let t: Thin = serde_json::from_slice(bytes).ok()?;
    let mut metadata = json!({"name": t.metadata.name});
    if !t.metadata.namespace.is_null() {
        metadata["namespace"] = t.metadata.namespace;
    }
    if !t.metadata.labels.is_null() {
        metadata["labels"] = t.metadata.labels;
    }
    Some(json!({"metadata": metadata, "status": {"phase": t.status.phase}}))
}

/// The source objects a list without a field selector covers, label-selected, in the
/// store's key order (namespace, then name, as the API lists them).
fn thin_list(api: &Api, source: &Target, p: &Params) -> Result<Vec<Value>> {
    let labels = p.label_selector()?;
    let prefix = source.resource.key(source.namespace.as_deref(), None);
    let mut out = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = api.store.list(&prefix, start.as_deref(), None)?;
        for kv in &page.items {
            let Some(obj) = thin_object(&kv.value) else {
                continue;
            };
            if labels.matches(crate::object::labels(&obj)) {
                out.push(obj);
            }
        }
        match (page.more, page.items.last()) {
            (true, Some(last)) => start = Some(last.key.clone()),
            _ => break,
        }
    }
    Ok(out)
}

fn time(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Upstream's usage list: CPU as a nanocore quantity, memory as bytes in binary SI.
fn usage_of(u: &Usage) -> Value {
    json!({
        "cpu": Quantity::from_nanos(u.nanocores).to_string(),
        "memory": Quantity::new(u.memory, Format::BinarySI).to_string(),
    })
}

fn meta(obj: &Value, namespaced: bool, now: chrono::DateTime<Utc>) -> Value {
    let m = &obj["metadata"];
    let mut out = json!({"name": m["name"], "creationTimestamp": time(now)});
    if namespaced {
        out["namespace"] = m["namespace"].clone();
    }
    if m["labels"].is_object() {
        out["labels"] = m["labels"].clone();
    }
    out
}

fn node_item(api: &Api, node: &Value, now: chrono::DateTime<Utc>) -> Option<Value> {
    let name = node["metadata"]["name"].as_str()?;
    let u = api.metrics.read(|s| s.node(name))?;
    Some(json!({
        "kind": "NodeMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": meta(node, false, now),
        "timestamp": time(u.timestamp),
        "window": go_duration(u.window),
        "usage": usage_of(&u),
    }))
}

/// A running pod's metrics; pods in other phases have none, as upstream's.
fn pod_item(api: &Api, pod: &Value, now: chrono::DateTime<Utc>) -> Option<Value> {
    if pod["status"]["phase"] != "Running" {
        return None;
    }
    let namespace = pod["metadata"]["namespace"].as_str()?;
    let name = pod["metadata"]["name"].as_str()?;
    let (u, containers) = api.metrics.read(|s| s.pod(namespace, name))?;
    Some(json!({
        "kind": "PodMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": meta(pod, true, now),
        "timestamp": time(u.timestamp),
        "window": go_duration(u.window),
        "containers": containers.iter().map(|(name, u)| json!({
            "name": name,
            "usage": usage_of(u),
        })).collect::<Vec<_>>(),
    }))
}

/// A `metav1.Duration` as written: Go's `Duration.String()` of the nanoseconds (a window
/// beyond Go's range, ±292 years, cannot occur; it saturates).
pub fn go_duration(d: chrono::TimeDelta) -> String {
    let ns = d
        .num_nanoseconds()
        .unwrap_or(if d < chrono::TimeDelta::zero() {
            i64::MIN
        } else {
            i64::MAX
        });
    skiff_apimachinery::duration::go_string(ns)
}

/// Starts the collector for `api`.
pub fn spawn(api: Arc<Api>) {
    tokio::spawn(collector::run(api));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thin decode keeps what an item and a label selector read, in the full
    /// object's shape, and drops the rest; a node has no namespace, and an object without
    /// labels or status gets none.
    #[test]
    fn thin_objects_keep_what_items_and_selectors_read() {
        let pod = json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"},
                "managedFields": [{"manager": "kubectl"}], "uid": "u"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"},
        });
        let node = json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "2"}}});
        let bare = json!({"metadata": {"name": "b", "namespace": "ns"}});
        let cases = [
            (
                pod,
                json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
                    "status": {"phase": "Running"}}),
            ),
            (
                node,
                json!({"metadata": {"name": "n"}, "status": {"phase": null}}),
            ),
            (
                bare,
                json!({"metadata": {"name": "b", "namespace": "ns"}, "status": {"phase": null}}),
            ),
        ];
        for (full, want) in cases {
            let bytes = serde_json::to_vec(&full).unwrap();
            assert_eq!(thin_object(&bytes), Some(want), "{full}");
        }
        assert_eq!(thin_object(b"not json"), None);
    }

    #[test]
    fn windows_print_as_go_durations() {
        let ms = chrono::TimeDelta::milliseconds;
        let cases = [
            (ms(15_000), "15s"),
            (ms(10_085), "10.085s"),
            (ms(60_500), "1m0.5s"),
            (ms(3_723_000), "1h2m3s"),
            (ms(500), "500ms"),
            (ms(0), "0s"),
            (chrono::TimeDelta::microseconds(1_500), "1.5ms"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want);
        }
    }

    /// metrics-server's quantities: nanocores canonicalised (`250m`, `123456789n`),
    /// memory in binary SI (`1Mi`, `12345678` when not a multiple of 1024).
    #[test]
    fn usage_prints_upstreams_quantities() {
        let at = Utc::now();
        let u = |nanocores, memory| Usage {
            timestamp: at,
            window: chrono::TimeDelta::seconds(10),
            nanocores,
            memory,
        };
        let cases = [
            (
                u(250_000_000, 1 << 20),
                json!({"cpu": "250m", "memory": "1Mi"}),
            ),
            (
                u(123_456_789, 12_345_678),
                json!({"cpu": "123456789n", "memory": "12345678"}),
            ),
            (u(0, 0), json!({"cpu": "0", "memory": "0"})),
            (
                u(2_000_000_000, 3_000 * 1024),
                json!({"cpu": "2", "memory": "3000Ki"}),
            ),
        ];
        for (usage, want) in cases {
            assert_eq!(usage_of(&usage), want);
        }
    }
}
