//! The one home of skiff's Prometheus metrics (docs/decisions/0033-component-metrics.md).
//!
//! Every component keeps its own families (`prometheus-client` metrics, updated without a
//! registry lookup) and adds them once to a [`Registry`]: one per process for the control
//! plane (served by the API server's `/metrics`), one per node (served on the node port's
//! `/metrics`). [`Name`] is the label value shared with the tables components already
//! keep, so recording into an existing series allocates nothing.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use std::collections::HashSet;
use std::fmt::Write;
use std::sync::{Arc, Mutex, RwLock};

pub use prometheus_client;

/// What [`Registry::encode`] writes: OpenMetrics text, which Prometheus and
/// VictoriaMetrics read (and which the Prometheus text parsers accept as well).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A shared registry: clones are the same registry.
#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<prometheus_client::registry::Registry>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Lets `add` register families or collectors.
    pub fn register(&self, add: impl FnOnce(&mut prometheus_client::registry::Registry)) {
        add(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Every family in the text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 << 10);
        let registry = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// A label value shared with a component's own tables (`Arc<str>`): cloning it into a
/// label set is a reference count, not an allocation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct Name(pub Arc<str>);

impl Name {
    /// The empty value, as upstream labels what does not apply (`subresource=""`).
    pub fn empty() -> Name {
        Name(Arc::from(""))
    }
}

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

/// Interned label values: a request path's group, version and resource become shared
/// [`Name`]s after their first sighting, so hot paths record without allocating.
///
/// Values come from clients (paths), so the set is bounded: beyond `limit` distinct values
/// a new one is labelled `other` rather than stored (a client walking random paths must
/// not grow the series without end).
#[derive(Debug)]
pub struct Interner {
    names: RwLock<HashSet<Arc<str>>>,
    limit: usize,
    other: Name,
}

impl Interner {
    /// An interner keeping at most `limit` values.
    pub fn new(limit: usize) -> Interner {
        Interner {
            names: RwLock::new(HashSet::new()),
            limit,
            other: Name(Arc::from("other")),
        }
    }

    /// The shared name for `value`.
    pub fn get(&self, value: &str) -> Name {
        if let Some(n) = self
            .names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(value)
        {
            return Name(n.clone());
        }
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = names.get(value) {
            return Name(n.clone());
        }
        if names.len() >= self.limit {
            return self.other.clone();
        }
        let n: Arc<str> = Arc::from(value);
        names.insert(n.clone());
        Name(n)
    }
}

/// Prometheus' default histogram buckets (client_golang's `DefBuckets`), which upstream
/// components use where they name none.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct L {
        resource: Name,
    }

    #[test]
    fn interned_names_are_shared_and_bounded() {
        let i = Interner::new(2);
        let a = i.get("pods");
        let b = i.get("pods");
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(&*i.get("nodes").0, "nodes");
        assert_eq!(&*i.get("a-third").0, "other");
        assert_eq!(&*i.get("pods").0, "pods");
    }

    #[test]
    fn clones_share_one_registry_and_encode_every_family() {
        let r = Registry::new();
        let family = Family::<L, Counter>::default();
        r.clone()
            .register(|reg| reg.register("things", "Things seen", family.clone()));
        let i = Interner::new(8);
        family
            .get_or_create(&L {
                resource: i.get("pods"),
            })
            .inc();
        let text = r.encode();
        assert!(text.contains("things_total{resource=\"pods\"} 1"), "{text}");
    }
}
