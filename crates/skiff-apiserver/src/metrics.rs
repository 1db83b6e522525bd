//! The API server's own Prometheus metrics, named and labelled as kube-apiserver's
//! (decision 0033), and `GET /metrics`, which serves the whole process's registry (the
//! store, controllers, scheduler and gateway controller register into it too).
//!
//! - `apiserver_request_total{verb, dry_run, group, version, resource, subresource, scope,
//!   component, code}` and `apiserver_request_duration_seconds` (without `code`, upstream's
//!   buckets), recorded once per request at the edge (`http::dispatch`); a watch's
//!   duration is the time to its response head, as it is upstream since watches stopped
//!   counting their whole life;
//! - `apiserver_longrunning_requests`: watches open now (the response body holds a guard);
//! - `apiserver_storage_objects{resource}`: objects stored per resource, counted in the
//!   background (upstream counts each minute; here every 15 s, the usual scrape interval).
//!
//! Label values are interned (`skiff_metrics::Interner`) and the label set is a handful of
//! reference counts and static strings: recording into an existing series allocates
//! nothing beyond what authorization already parsed.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use skiff_metrics::{Interner, Name, Registry};
use skiff_rbac::attributes::RequestInfo;

use crate::handler::Api;

/// kube-apiserver's `apiserver_request_duration_seconds` buckets.
const REQUEST_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// How often stored objects are counted.
const COUNT_EVERY: Duration = Duration::from_secs(15);

/// Distinct path-derived label values kept before new ones are labelled `other`.
const MAX_NAMES: usize = 2048;

/// Connect subresources: upstream's installer reports their requests as `CONNECT`.
const CONNECT: [&str; 4] = ["exec", "attach", "portforward", "proxy"];

/// The labels of a request's duration and of long-running requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    verb: &'static str,
    dry_run: &'static str,
    group: Name,
    version: Name,
    resource: Name,
    subresource: Name,
    scope: &'static str,
    component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    verb: &'static str,
    dry_run: &'static str,
    group: Name,
    version: Name,
    resource: Name,
    subresource: Name,
    scope: &'static str,
    component: &'static str,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    resource: String,
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

/// The API server's metrics and the process registry they live in.
pub struct ApiMetrics {
    registry: Registry,
    requests: Family<CodeLabels, Counter>,
    durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
    longrunning: Family<RequestLabels, Gauge>,
    objects: Family<ObjectLabels, Gauge>,
    names: Interner,
}

impl Default for ApiMetrics {
    fn default() -> ApiMetrics {
        let m = ApiMetrics {
            registry: Registry::new(),
            requests: Family::default(),
            durations: Family::new_with_constructor(request_histogram),
            longrunning: Family::default(),
            objects: Family::default(),
            names: Interner::new(MAX_NAMES),
        };
        m.registry.register(|r| {
            r.register(
                "apiserver_request",
                "Counter of apiserver requests broken out for each verb, dry run value, \
                 group, version, resource, scope, component, and HTTP response code.",
                m.requests.clone(),
            );
            r.register(
                "apiserver_request_duration_seconds",
                "Response latency distribution in seconds for each verb, dry run value, \
                 group, version, resource, subresource, scope and component.",
                m.durations.clone(),
            );
            r.register(
                "apiserver_longrunning_requests",
                "Gauge of all active long-running apiserver requests broken out by verb, \
                 group, version, resource, scope and component. Not all requests are \
                 tracked this way.",
                m.longrunning.clone(),
            );
            r.register(
                "apiserver_storage_objects",
                "Number of stored objects at the time of last check split by kind.",
                m.objects.clone(),
            );
        });
        m
    }
}

/// What a request is, for its metrics: resolved once, before it is handled.
#[derive(Clone, Debug)]
pub struct Classified {
    labels: RequestLabels,
}

impl Classified {
    /// Whether the request is a watch (long-running while its body streams).
    pub fn is_watch(&self) -> bool {
        self.labels.verb == "WATCH"
    }
}

/// Upstream's reported verb (`CleanVerb` over the installer's action verbs) for a request
/// info's verb.
pub fn reported_verb(method: &Method, info: &RequestInfo, apply: bool) -> &'static str {
    if !info.is_resource_request {
        return match *method {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
    }
    if CONNECT.contains(&info.subresource.as_str()) {
        return "CONNECT";
    }
    match info.verb.as_str() {
        "get" => "GET",
        "list" => "LIST",
        "watch" => "WATCH",
        "create" => "POST",
        "update" => "PUT",
        "patch" if apply => "APPLY",
        "patch" => "PATCH",
        "delete" => "DELETE",
        "deletecollection" => "DELETECOLLECTION",
        _ => "other",
    }
}

/// Upstream's `CleanScope`: one object (or a create), a namespace, the cluster, or none
/// for non-resource requests.
pub fn scope(info: &RequestInfo) -> &'static str {
    if !info.name.is_empty() || info.verb == "create" {
        "resource"
    } else if !info.namespace.is_empty() {
        "namespace"
    } else if info.is_resource_request {
        "cluster"
    } else {
        ""
    }
}

/// Upstream's `dry_run` label: `All` when the request asks for a dry run.
fn dry_run(query: Option<&str>) -> &'static str {
    let asked = query.is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "dryRun" && v == "All")
    });
    if asked {
        "All"
    } else {
        ""
    }
}

impl ApiMetrics {
    /// The process registry: other components register into it, `/metrics` serves it.
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// Resolves a request's labels (before it is handled: handling consumes the request).
    pub fn classify(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &axum::http::HeaderMap,
    ) -> Classified {
        let info = RequestInfo::new(method.as_str(), path, query);
        let apply = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/apply-patch+yaml"));
        // Non-resource requests carry their path as the subresource, as upstream labels
        // `/healthz`, `/readyz` and `/metrics`.
        let subresource = if info.is_resource_request {
            &info.subresource
        } else {
            path
        };
        Classified {
            labels: RequestLabels {
                verb: reported_verb(method, &info, apply),
                dry_run: dry_run(query),
                group: self.names.get(&info.api_group),
                version: self.names.get(&info.api_version),
                resource: self.names.get(&info.resource),
                subresource: self.names.get(subresource),
                scope: scope(&info),
                component: "apiserver",
            },
        }
    }

    /// Records an answered request.
    pub fn observe(&self, c: &Classified, code: StatusCode, elapsed: Duration) {
        let l = &c.labels;
        self.requests
            .get_or_create(&CodeLabels {
                verb: l.verb,
                dry_run: l.dry_run,
                group: l.group.clone(),
                version: l.version.clone(),
                resource: l.resource.clone(),
                subresource: l.subresource.clone(),
                scope: l.scope,
                component: l.component,
                code: code.as_u16(),
            })
            .inc();
        self.durations
            .get_or_create(l)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a long-running request until the returned guard is dropped.
    pub fn long_running(&self, c: &Classified) -> LongRunning {
        let gauge = self.longrunning.get_or_create_owned(&c.labels);
        gauge.inc();
        LongRunning(gauge)
    }

    /// `GET /metrics`: every family of the process.
    pub fn response(&self) -> Response {
        let mut resp = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, skiff_metrics::CONTENT_TYPE)],
            self.registry.encode(),
        )
            .into_response();
        resp.extensions_mut().insert(crate::negotiate::AsBuilt);
        resp
    }

    /// Sets `apiserver_storage_objects` from the store: one count per stored resource
    /// (resources sharing storage, as Events in two groups, counted once).
    pub fn count_objects(&self, api: &Api) {
        for r in api.registry.per_storage() {
            if r.create_only {
                continue;
            }
            let Ok(n) = api.store.count_after(&r.key(None, None), "") else {
                continue;
            };
            self.objects
                .get_or_create(&ObjectLabels {
                    resource: r.qualified(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// Keeps `apiserver_storage_objects` current until the API is dropped.
pub async fn count_objects(api: std::sync::Weak<Api>) {
    loop {
        let Some(strong) = api.upgrade() else { return };
        let _ = tokio::task::spawn_blocking(move || strong.telemetry.count_objects(&strong)).await;
        tokio::time::sleep(COUNT_EVERY).await;
    }
}

/// One long-running request in `apiserver_longrunning_requests`; dropping it ends it.
pub struct LongRunning(Gauge);

impl Drop for LongRunning {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Wraps a streamed response body so the request counts as long-running while it streams.
pub fn track_body(resp: Response, guard: LongRunning) -> Response {
    use futures::StreamExt;
    let guard = Arc::new(guard);
    resp.map(|body| {
        let stream = body.into_data_stream().map(move |chunk| {
            let _held = &guard;
            chunk
        });
        axum::body::Body::from_stream(stream)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, path: &str, query: Option<&str>) -> RequestInfo {
        RequestInfo::new(method, path, query)
    }

    /// One case: method, path, query, whether the patch is an apply, reported verb, scope.
    type VerbCase<'a> = (&'a str, &'a str, Option<&'a str>, bool, &'a str, &'a str);

    /// Upstream's reported verbs and scopes (metrics_test.go's CleanVerb and CleanScope
    /// cases, and the installer's action verbs).
    #[test]
    fn verbs_and_scopes_as_upstream_reports_them() {
        let cases: &[VerbCase] = &[
            ("GET", "/api/v1/pods", None, false, "LIST", "cluster"),
            (
                "GET",
                "/api/v1/namespaces/ns/pods",
                None,
                false,
                "LIST",
                "namespace",
            ),
            (
                "GET",
                "/api/v1/namespaces/ns/pods/p",
                None,
                false,
                "GET",
                "resource",
            ),
            (
                "GET",
                "/api/v1/pods",
                Some("watch=true"),
                false,
                "WATCH",
                "cluster",
            ),
            ("GET", "/api/v1/watch/pods", None, false, "WATCH", "cluster"),
            (
                "POST",
                "/api/v1/namespaces/ns/pods",
                None,
                false,
                "POST",
                "resource",
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/ns/deployments/d",
                None,
                false,
                "PUT",
                "resource",
            ),
            (
                "PATCH",
                "/api/v1/namespaces/ns/pods/p",
                None,
                false,
                "PATCH",
                "resource",
            ),
            (
                "PATCH",
                "/api/v1/namespaces/ns/pods/p",
                None,
                true,
                "APPLY",
                "resource",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/ns/pods/p",
                None,
                false,
                "DELETE",
                "resource",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/ns/pods",
                None,
                false,
                "DELETECOLLECTION",
                "namespace",
            ),
            (
                "POST",
                "/api/v1/namespaces/ns/pods/p/exec",
                None,
                false,
                "CONNECT",
                "resource",
            ),
            (
                "GET",
                "/api/v1/nodes/n/proxy/metrics",
                None,
                false,
                "CONNECT",
                "resource",
            ),
            ("GET", "/healthz", None, false, "GET", ""),
            ("GET", "/metrics", None, false, "GET", ""),
        ];
        for (method, path, query, apply, verb, want_scope) in cases {
            let m: Method = method.parse().unwrap();
            let i = info(method, path, *query);
            assert_eq!(
                reported_verb(&m, &i, *apply),
                *verb,
                "{method} {path} {query:?}"
            );
            assert_eq!(scope(&i), *want_scope, "{method} {path}");
        }
    }

    #[test]
    fn dry_run_only_for_all() {
        assert_eq!(dry_run(Some("dryRun=All")), "All");
        assert_eq!(dry_run(Some("fieldManager=x&dryRun=All")), "All");
        assert_eq!(dry_run(Some("dryRun=")), "");
        assert_eq!(dry_run(None), "");
    }

    #[test]
    fn requests_counted_with_upstream_labels_and_watches_while_open() {
        let m = ApiMetrics::default();
        let headers = axum::http::HeaderMap::new();
        let c = m.classify(
            &Method::GET,
            "/apis/apps/v1/namespaces/default/deployments",
            None,
            &headers,
        );
        m.observe(&c, StatusCode::OK, Duration::from_millis(3));
        m.observe(&c, StatusCode::OK, Duration::from_millis(30));
        let w = m.classify(&Method::GET, "/api/v1/pods", Some("watch=1"), &headers);
        assert!(w.is_watch());
        let guard = m.long_running(&w);
        let text = m.registry.encode();
        for line in [
            "apiserver_request_total{verb=\"LIST\",dry_run=\"\",group=\"apps\",version=\"v1\",resource=\"deployments\",subresource=\"\",scope=\"namespace\",component=\"apiserver\",code=\"200\"} 2",
            "apiserver_request_duration_seconds_count{verb=\"LIST\",dry_run=\"\",group=\"apps\"",
            "apiserver_longrunning_requests{verb=\"WATCH\",dry_run=\"\",group=\"\",version=\"v1\",resource=\"pods\",subresource=\"\",scope=\"cluster\",component=\"apiserver\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        drop(guard);
        assert!(m
            .registry
            .encode()
            .contains("apiserver_longrunning_requests{verb=\"WATCH\",dry_run=\"\",group=\"\",version=\"v1\",resource=\"pods\",subresource=\"\",scope=\"cluster\",component=\"apiserver\"} 0"));
    }
}
