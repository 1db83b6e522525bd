//! The data plane's Prometheus metrics, per route and per backend, on `prometheus-client`
//! (the crate `skiff-reconcile`'s controller metrics use, so one registry takes both):
//!
//! - `skiff_gateway_requests_total{route, backend, code}`: requests answered;
//! - `skiff_gateway_request_duration_seconds{route, backend}`: from the request's arrival
//!   to its response head (the body streams after), as a histogram;
//! - `skiff_gateway_table_builds_total{outcome}`: runs of the data-plane loop that built
//!   and swapped a routing table (`built`) or found nothing routing-relevant changed
//!   (`unchanged`: a status write, a `resourceVersion` bump).
//!
//! `route` is `namespace/name` of the HTTPRoute or Ingress (`-`: no route matched);
//! `backend` is `namespace/service:port` (`-`: none, as for a redirect or a 404). Label
//! values are the table's shared names, so recording a request allocates nothing once its
//! series exists. A backend of a route resolves its series once ([`SeriesSlot`], kept in
//! the routing table) and then records with no label hashing and no family lock.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::fmt::Write;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A label value shared with the routing table (`Arc<str>`).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Name(pub Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: Name,
    pub backend: Name,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub route: Name,
    pub backend: Name,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub outcome: &'static str,
}

/// Status codes whose counters a [`Series`] keeps at hand; further codes are looked up.
const CODES_AT_HAND: usize = 8;

/// The series of one route and backend, resolved from the families once: recording into
/// it hashes no labels and takes no family lock (per request, both cost more than the
/// recording itself).
#[derive(Debug)]
pub struct Series {
    route: Name,
    backend: Name,
    duration: Histogram,
    /// Counters by status code, filled as codes appear (lock-free: a slot is set once).
    codes: [OnceLock<(u16, Counter)>; CODES_AT_HAND],
}

/// Where a routing table keeps a backend's [`Series`], resolved at its first request
/// (routes never requested make no series, as before).
#[derive(Debug, Default)]
pub struct SeriesSlot(OnceLock<Series>);

/// The data plane's metrics; cheap to clone (the families are shared).
#[derive(Clone)]
pub struct GatewayMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    builds: Family<BuildLabels, Counter>,
    none: Name,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            builds: Family::default(),
            none: Name("-".into()),
        }
    }
}

impl GatewayMetrics {
    /// Adds the families to `registry` (under the `skiff_gateway` prefix).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("skiff_gateway");
        r.register(
            "requests",
            "Requests answered by the gateway, by route, backend Service port and status code",
            self.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from a request's arrival to its response head, by route and backend",
            self.duration.clone(),
        );
        r.register(
            "table_builds",
            "Runs of the data-plane loop, by outcome: built (a new routing table swapped in) \
             or unchanged (no routing-relevant change, nothing built)",
            self.builds.clone(),
        );
    }

    /// Counts one run of the data-plane loop: `built` a table, or found it unchanged.
    pub fn table_build(&self, built: bool) {
        let outcome = if built { "built" } else { "unchanged" };
        self.builds.get_or_create(&BuildLabels { outcome }).inc();
    }

    /// How many runs had `outcome` (`built` or `unchanged`) so far.
    pub fn table_builds(&self, built: bool) -> u64 {
        let outcome = if built { "built" } else { "unchanged" };
        self.builds.get_or_create(&BuildLabels { outcome }).get()
    }

    /// The series of `route` and `backend`, from `slot` once resolved.
    pub fn series<'s>(
        &self,
        slot: &'s SeriesSlot,
        route: &Arc<str>,
        backend: &Arc<str>,
    ) -> &'s Series {
        slot.0.get_or_init(|| {
            let (route, backend) = (Name(route.clone()), Name(backend.clone()));
            let duration = self
                .duration
                .get_or_create(&LatencyLabels {
                    route: route.clone(),
                    backend: backend.clone(),
                })
                .clone();
            Series {
                route,
                backend,
                duration,
                codes: Default::default(),
            }
        })
    }

    /// Records one answered request of `series`.
    pub fn observe_series(&self, series: &Series, code: u16, elapsed: Duration) {
        series.duration.observe(elapsed.as_secs_f64());
        for slot in &series.codes {
            let (c, counter) = slot.get_or_init(|| {
                let counter = self
                    .requests
                    .get_or_create(&RequestLabels {
                        route: series.route.clone(),
                        backend: series.backend.clone(),
                        code,
                    })
                    .clone();
                (code, counter)
            });
            if *c == code {
                counter.inc();
                return;
            }
        }
        self.requests
            .get_or_create(&RequestLabels {
                route: series.route.clone(),
                backend: series.backend.clone(),
                code,
            })
            .inc();
    }

    /// Records one answered request.
    pub fn observe(
        &self,
        route: Option<&Arc<str>>,
        backend: Option<&Arc<str>>,
        code: u16,
        elapsed: Duration,
    ) {
        let name = |n: Option<&Arc<str>>| n.map_or_else(|| self.none.clone(), |n| Name(n.clone()));
        let (route, backend) = (name(route), name(backend));
        self.duration
            .get_or_create(&LatencyLabels {
                route: route.clone(),
                backend: backend.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                route,
                backend,
                code,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_per_route_backend_and_code() {
        let m = GatewayMetrics::default();
        let mut registry = Registry::default();
        m.register(&mut registry);
        let route: Arc<str> = "default/shop".into();
        let backend: Arc<str> = "default/web:80".into();
        m.observe(Some(&route), Some(&backend), 200, Duration::from_millis(3));
        m.observe(Some(&route), Some(&backend), 200, Duration::from_millis(1));
        m.observe(Some(&route), Some(&backend), 503, Duration::from_millis(1));
        m.observe(None, None, 404, Duration::from_micros(100));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"skiff_gateway_requests_total{route="default/shop",backend="default/web:80",code="200"} 2"#,
            r#"skiff_gateway_requests_total{route="default/shop",backend="default/web:80",code="503"} 1"#,
            r#"skiff_gateway_requests_total{route="-",backend="-",code="404"} 1"#,
            r#"skiff_gateway_request_duration_seconds_count{route="default/shop",backend="default/web:80"} 3"#,
            r#"skiff_gateway_request_duration_seconds_bucket{le="0.001",route="default/shop",backend="default/web:80"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    /// A resolved series records into the same families as [`GatewayMetrics::observe`],
    /// past the codes it keeps at hand too.
    #[test]
    fn resolved_series_record_as_lookups() {
        let m = GatewayMetrics::default();
        let mut registry = Registry::default();
        m.register(&mut registry);
        let route: Arc<str> = "default/shop".into();
        let backend: Arc<str> = "default/web:80".into();
        let slot = SeriesSlot::default();
        let series = m.series(&slot, &route, &backend);
        assert!(std::ptr::eq(series, m.series(&slot, &route, &backend)));
        m.observe(Some(&route), Some(&backend), 200, Duration::from_millis(3));
        m.observe_series(series, 200, Duration::from_millis(1));
        for code in 500..510 {
            m.observe_series(series, code, Duration::from_millis(1));
        }
        m.observe_series(series, 509, Duration::from_millis(1));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"skiff_gateway_requests_total{route="default/shop",backend="default/web:80",code="200"} 2"#,
            r#"skiff_gateway_requests_total{route="default/shop",backend="default/web:80",code="500"} 1"#,
            r#"skiff_gateway_requests_total{route="default/shop",backend="default/web:80",code="509"} 2"#,
            r#"skiff_gateway_request_duration_seconds_count{route="default/shop",backend="default/web:80"} 13"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
