//! Pure: what of the watched objects the routing table depends on, as one hash.
//!
//! The data-plane loop re-runs on any change of the kinds it reads, and most of those
//! changes are not about routing: the status writer's own patches to Gateways, HTTPRoutes
//! and Ingresses, a Service's `status.loadBalancer`, `resourceVersion` and `managedFields`
//! bumps. Rebuilding the table for each of them compiles every route's regular
//! expressions again and swaps the table (restarting every round-robin and weighted
//! counter), so the loop compares this fingerprint with the one of the table it serves
//! and skips the build when they are equal.

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// The metadata fields a table can depend on: identity, labels (EndpointSlices'
/// `kubernetes.io/service-name`, Namespace selectors), age (match precedence, oldest
/// Gateway keeps a port) and deletion. `resourceVersion`, `generation`, `uid`,
/// `managedFields` and annotations are not (except the one below).
const METADATA_KEPT: [&str; 5] = [
    "name",
    "namespace",
    "labels",
    "creationTimestamp",
    "deletionTimestamp",
];

/// The one annotation a table reads: an IngressClass marked default takes the Ingresses
/// naming no class.
const ANNOTATIONS_KEPT: [&str; 1] = [crate::ingress::DEFAULT_CLASS_ANNOTATION];

/// An object as the table sees it: without `status`, with only [`METADATA_KEPT`] and
/// [`ANNOTATIONS_KEPT`] of its metadata. Everything else (spec, an EndpointSlice's
/// endpoints, a Secret's data) is kept.
pub fn routing_view<K: Serialize>(obj: &K) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    let Value::Object(map) = &mut v else {
        return v;
    };
    map.remove("status");
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        let annotations = meta.remove("annotations");
        meta.retain(|k, _| METADATA_KEPT.contains(&k.as_str()));
        if let Some(Value::Object(a)) = annotations {
            let kept: Map<String, Value> = a
                .into_iter()
                .filter(|(k, _)| ANNOTATIONS_KEPT.contains(&k.as_str()))
                .collect();
            if !kept.is_empty() {
                meta.insert("annotations".into(), Value::Object(kept));
            }
        }
    }
    v
}

/// One object's [`routing_view`], hashed.
pub fn routing_hash<K: Serialize>(obj: &K) -> u64 {
    let mut h = DefaultHasher::new();
    routing_view(obj).to_string().hash(&mut h);
    h.finish()
}

/// Accumulates the objects of every kind into one fingerprint, independent of the order
/// the caches list them in.
#[derive(Default)]
pub struct Fingerprint {
    kinds: Vec<(&'static str, Vec<u64>)>,
}

impl Fingerprint {
    /// Adds every object of one kind.
    pub fn kind<'a, K: Serialize + 'a>(
        mut self,
        kind: &'static str,
        objs: impl IntoIterator<Item = &'a K>,
    ) -> Fingerprint {
        let mut hashes: Vec<u64> = objs.into_iter().map(routing_hash).collect();
        hashes.sort_unstable();
        self.kinds.push((kind, hashes));
        self
    }

    pub fn finish(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.kinds.hash(&mut h);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_and_bookkeeping_do_not_count_spec_and_identity_do() {
        let base = json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "ns", "resourceVersion": "1", "generation": 1,
                "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": "a"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"hostnames": ["a.test"]},
            "status": {"parents": []}});
        type Edit = fn(&mut Value);
        let cases: [(&str, Edit, bool); 13] = [
            ("nothing", |_| {}, false),
            (
                "status",
                |v| v["status"] = json!({"parents": [{"controllerName": "x"}]}),
                false,
            ),
            (
                "status removed",
                |v| {
                    v.as_object_mut().unwrap().remove("status");
                },
                false,
            ),
            (
                "resourceVersion",
                |v| v["metadata"]["resourceVersion"] = json!("2"),
                false,
            ),
            (
                "generation",
                |v| v["metadata"]["generation"] = json!(2),
                false,
            ),
            (
                "managedFields",
                |v| v["metadata"]["managedFields"] = json!([]),
                false,
            ),
            (
                "other annotation",
                |v| v["metadata"]["annotations"]["x"] = json!("y"),
                false,
            ),
            ("spec", |v| v["spec"]["hostnames"] = json!(["b.test"]), true),
            ("name", |v| v["metadata"]["name"] = json!("r2"), true),
            (
                "labels",
                |v| v["metadata"]["labels"]["app"] = json!("b"),
                true,
            ),
            (
                "deletion",
                |v| v["metadata"]["deletionTimestamp"] = json!("2026-01-02T00:00:00Z"),
                true,
            ),
            (
                "age",
                |v| v["metadata"]["creationTimestamp"] = json!("2026-01-03T00:00:00Z"),
                true,
            ),
            (
                "default class",
                |v| {
                    v["metadata"]["annotations"][crate::ingress::DEFAULT_CLASS_ANNOTATION] =
                        json!("true")
                },
                true,
            ),
        ];
        for (what, edit, changes) in cases {
            let mut v = base.clone();
            edit(&mut v);
            assert_eq!(
                routing_hash(&v) != routing_hash(&base),
                changes,
                "{what}: {}",
                routing_view(&v)
            );
        }
    }

    #[test]
    fn fingerprint_ignores_listing_order_but_not_kinds() {
        let (a, b) = (
            json!({"metadata": {"name": "a"}}),
            json!({"metadata": {"name": "b"}}),
        );
        let f = |objs: &[&Value], kind| {
            Fingerprint::default()
                .kind(kind, objs.iter().copied())
                .finish()
        };
        assert_eq!(f(&[&a, &b], "Service"), f(&[&b, &a], "Service"));
        assert_ne!(f(&[&a, &b], "Service"), f(&[&a], "Service"));
        assert_ne!(f(&[&a], "Service"), f(&[&a], "Namespace"));
    }
}
