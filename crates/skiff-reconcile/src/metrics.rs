//! Controller metrics in Prometheus form, named as upstream's so existing dashboards read
//! them: client-go's workqueue metrics (label `name`, the controller) and
//! controller-runtime's reconcile totals (label `controller`).
//!
//! One [`Metrics`] per process, registered in the process registry
//! ([`Metrics::with_registry`], `skiff-metrics`); each controller takes its label's series
//! once ([`ControllerMetrics`]) and updates them without further lookups.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Label of the workqueue metrics: the controller's name, as client-go's `name`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    name: String,
}

/// Label of controller-runtime's reconcile error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

/// Labels of controller-runtime's reconcile counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// client-go's buckets for queue and work durations: 10 ns to 1000 s by powers of ten.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-8, 10.0, 12))
}

struct Families {
    adds: Family<QueueLabel, Counter>,
    depth: Family<QueueLabel, Gauge>,
    queue_duration: Family<QueueLabel, Histogram, fn() -> Histogram>,
    work_duration: Family<QueueLabel, Histogram, fn() -> Histogram>,
    retries: Family<QueueLabel, Counter>,
    unfinished: Family<QueueLabel, FloatGauge>,
    longest: Family<QueueLabel, FloatGauge>,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ControllerLabel, Counter>,
}

/// Every controller's metrics and the registry that holds them. Cloning shares them; the
/// binary makes one on the process registry, which the API server serves on /metrics.
#[derive(Clone)]
pub struct Metrics {
    families: Arc<Families>,
    registry: skiff_metrics::Registry,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// The workqueue and reconcile families in a registry of their own.
    pub fn new() -> Metrics {
        Metrics::with_registry(&skiff_metrics::Registry::new())
    }

    /// The workqueue and reconcile families, registered in `registry` (once per process:
    /// a second registration would repeat the families).
    pub fn with_registry(registry: &skiff_metrics::Registry) -> Metrics {
        let families = Families {
            adds: Family::default(),
            depth: Family::default(),
            queue_duration: Family::new_with_constructor(duration_histogram),
            work_duration: Family::new_with_constructor(duration_histogram),
            retries: Family::default(),
            unfinished: Family::default(),
            longest: Family::default(),
            reconciles: Family::default(),
            errors: Family::default(),
        };
        registry.register(|r| Metrics::register(&families, r));
        Metrics {
            families: Arc::new(families),
            registry: registry.clone(),
        }
    }

    fn register(families: &Families, r: &mut prometheus_client::registry::Registry) {
        // Counters get their `_total` suffix from the encoder.
        r.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            families.adds.clone(),
        );
        r.register(
            "workqueue_depth",
            "Current depth of workqueue",
            families.depth.clone(),
        );
        r.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            families.queue_duration.clone(),
        );
        r.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            families.work_duration.clone(),
        );
        r.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            families.retries.clone(),
        );
        r.register(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been \
             observed by work_duration",
            families.unfinished.clone(),
        );
        r.register(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running",
            families.longest.clone(),
        );
        r.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            families.reconciles.clone(),
        );
        r.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            families.errors.clone(),
        );
    }

    /// The registry, for serving and for other components to register their own metrics.
    pub fn registry(&self) -> skiff_metrics::Registry {
        self.registry.clone()
    }

    /// The registry in Prometheus' text exposition format.
    pub fn encode(&self) -> String {
        self.registry.encode()
    }

    /// The series of one controller.
    pub fn controller(&self, name: &str) -> ControllerMetrics {
        let q = QueueLabel {
            name: name.to_string(),
        };
        let c = ControllerLabel {
            controller: name.to_string(),
        };
        let result = |r: &str| ResultLabels {
            controller: name.to_string(),
            result: r.to_string(),
        };
        let f = &self.families;
        ControllerMetrics {
            adds: f.adds.get_or_create_owned(&q),
            depth: f.depth.get_or_create_owned(&q),
            queue_duration: f.queue_duration.get_or_create_owned(&q),
            work_duration: f.work_duration.get_or_create_owned(&q),
            retries: f.retries.get_or_create_owned(&q),
            unfinished: f.unfinished.get_or_create_owned(&q),
            longest: f.longest.get_or_create_owned(&q),
            success: f.reconciles.get_or_create_owned(&result("success")),
            requeue_after: f.reconciles.get_or_create_owned(&result("requeue_after")),
            error: f.reconciles.get_or_create_owned(&result("error")),
            errors: f.errors.get_or_create_owned(&c),
        }
    }
}

/// One controller's series, resolved once.
#[derive(Clone, Debug)]
pub struct ControllerMetrics {
    pub(crate) adds: Counter,
    pub(crate) depth: Gauge,
    pub(crate) queue_duration: Histogram,
    pub(crate) work_duration: Histogram,
    pub(crate) retries: Counter,
    pub(crate) unfinished: FloatGauge,
    pub(crate) longest: FloatGauge,
    pub(crate) success: Counter,
    pub(crate) requeue_after: Counter,
    pub(crate) error: Counter,
    pub(crate) errors: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_encodes_upstream_workqueue_names_with_the_controller_label() {
        let metrics = Metrics::new();
        let c = metrics.controller("replicaset-controller");
        c.adds.inc();
        c.depth.set(3);
        c.queue_duration.observe(0.002);
        c.retries.inc();
        c.success.inc();
        c.errors.inc();
        let text = metrics.encode();
        for line in [
            "workqueue_adds_total{name=\"replicaset-controller\"} 1",
            "workqueue_depth{name=\"replicaset-controller\"} 3",
            "workqueue_queue_duration_seconds_count{name=\"replicaset-controller\"} 1",
            "workqueue_work_duration_seconds_count{name=\"replicaset-controller\"} 0",
            "workqueue_retries_total{name=\"replicaset-controller\"} 1",
            "workqueue_unfinished_work_seconds{name=\"replicaset-controller\"} 0",
            "workqueue_longest_running_processor_seconds{name=\"replicaset-controller\"} 0",
            "controller_runtime_reconcile_total{controller=\"replicaset-controller\",result=\"success\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"replicaset-controller\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
