//! Pure: the Gateway API objects of skiff's classes (Gateways, HTTPRoutes, GRPCRoutes),
//! and the Services, EndpointSlices and ReferenceGrants they name, become one immutable
//! routing [`Table`] (what the data plane serves) and a [`Report`] of every decision (what
//! `status` writes). A GRPCRoute's `method` match is a path match (`/service/method`) in
//! the same table, ranked by the GRPCRoute rules (service, then method characters, then
//! headers); an HTTPRoute and a GRPCRoute never share a hostname on a listener.
//!
//! Both come out of the one pass so the status a route shows is exactly what the proxy
//! does with it. Match precedence is the Gateway API's (HTTPRoute `hostnames` and `rules`
//! docs): the most specific hostname first (exact, then the longest wildcard, then none);
//! within it, an Exact path, a RegularExpression path (implementation-specific: skiff puts
//! it between Exact and PathPrefix, as Envoy Gateway does), the longest PathPrefix, a
//! method, the most header matches, the most query parameter matches; then the oldest
//! route, then `namespace/name`, then rule and match order.

use crate::api::{
    BackendRef, Gateway, GatewayClass, GrpcRoute, HeaderModifier, HttpRoute, HttpRouteFilter,
    Listener, ParentRef, ReferenceGrant, RequestRedirect, RouteGroupKind, UrlRewrite, GROUP,
};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use regex::Regex;
use rustls::sign::CertifiedKey;
use skiff_apimachinery::selector::LabelSelector;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Everything the table is built from (the caller's caches).
#[derive(Default)]
pub struct Inputs<'a> {
    /// skiff's `controllerName`: only classes naming it are served.
    pub controller_name: &'a str,
    pub classes: Vec<&'a GatewayClass>,
    pub gateways: Vec<&'a Gateway>,
    pub routes: Vec<&'a HttpRoute>,
    pub grpc_routes: Vec<&'a GrpcRoute>,
    pub services: Vec<&'a Service>,
    pub slices: Vec<&'a EndpointSlice>,
    pub grants: Vec<&'a ReferenceGrant>,
    /// For `allowedRoutes.namespaces.from: Selector`.
    pub namespaces: Vec<&'a Namespace>,
    /// For HTTPS listeners' `certificateRefs`.
    pub secrets: Vec<&'a Secret>,
    pub ingresses: Vec<&'a k8s_openapi::api::networking::v1::Ingress>,
    pub ingress_classes: Vec<&'a k8s_openapi::api::networking::v1::IngressClass>,
    /// The nodes' addresses: every Gateway is served on all of them.
    pub node_addresses: Vec<String>,
}

/// A condition's outcome: `Ok` or the `(reason, message)` of a False status.
pub type Verdict = Result<(), (&'static str, String)>;

/// What was decided for one listener.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerReport {
    pub name: String,
    pub port: i32,
    /// Accepted False reason (UnsupportedProtocol, PortUnavailable).
    pub accepted: Verdict,
    /// Conflicted True reason (HostnameConflict, ProtocolConflict).
    pub conflicted: Option<&'static str>,
    /// ResolvedRefs False reason (InvalidRouteKinds, InvalidCertificateRef).
    pub resolved: Verdict,
    pub supported_kinds: Vec<RouteGroupKind>,
    pub attached_routes: i64,
}

impl ListenerReport {
    /// Whether the data plane serves this listener.
    pub fn programmed(&self) -> bool {
        self.accepted.is_ok() && self.conflicted.is_none() && self.resolved.is_ok()
    }
}

/// What was decided for one of skiff's Gateways.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayReport {
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    /// Accepted False (UnsupportedAddress) decided at the Gateway level.
    pub address_error: Option<String>,
    pub addresses: Vec<String>,
    pub listeners: Vec<ListenerReport>,
}

/// What was decided for one parentRef of an HTTPRoute that names one of skiff's Gateways.
#[derive(Clone, Debug, PartialEq)]
pub struct ParentReport {
    pub parent: ParentRef,
    pub accepted: Verdict,
    pub resolved: Verdict,
}

/// What was decided for one HTTPRoute or GRPCRoute.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteReport {
    pub kind: RouteKind,
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    pub parents: Vec<ParentReport>,
}

/// The decisions the status writer turns into conditions.
#[derive(Debug, Default)]
pub struct Report {
    /// Names of the classes skiff claims.
    pub classes: Vec<String>,
    pub gateways: Vec<GatewayReport>,
    pub routes: Vec<RouteReport>,
    /// `(namespace, name)` of the Ingresses served.
    pub ingresses: Vec<(String, String)>,
}

/// The routing table: what each listening port serves.
#[derive(Debug, Default)]
pub struct Table {
    pub ports: BTreeMap<u16, PortRoutes>,
}

/// Routes of one port, per listener hostname: a request is served by the listener with
/// the most specific hostname that matches it, and only by that listener's routes
/// (listener isolation: `foo.bar.com` never falls through to `*.bar.com`'s routes).
#[derive(Debug, Default)]
pub struct PortRoutes {
    /// Exact hostnames first, then wildcards longest first, then the catch-all (`None`).
    listeners: Vec<(Option<String>, HostIndex)>,
    /// The certificates of an HTTPS port (`None`: plain HTTP).
    pub tls: Option<PortTls>,
}

/// The certificates of one HTTPS port, per listener hostname (SNI picks one).
#[derive(Debug, Default)]
pub struct PortTls {
    /// In the order of [`PortRoutes::listeners`]: most specific first.
    certs: Vec<(Option<String>, Arc<CertifiedKey>)>,
}

impl PortTls {
    /// Adds the certificate for `hostname` (`None`: the one for any name).
    pub(crate) fn add(&mut self, hostname: Option<String>, cert: Arc<CertifiedKey>) {
        self.certs.push((hostname, cert));
    }

    /// The certificate for a TLS handshake naming `sni`: the most specific listener
    /// hostname matching it; without SNI (or a name no listener has), the catch-all
    /// listener's, else the first.
    pub fn resolve(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let sni = sni.map(str::to_ascii_lowercase);
        let by_name = sni.as_deref().and_then(|h| {
            self.certs
                .iter()
                .find(|(p, _)| p.as_deref().is_some_and(|p| hostname_matches(p, h)))
        });
        by_name
            .or_else(|| self.certs.iter().find(|(p, _)| p.is_none()))
            .or_else(|| self.certs.first())
            .map(|(_, c)| c.clone())
    }

    fn sort(&mut self) {
        self.certs.sort_by(|a, b| {
            hostname_rank(&a.0)
                .cmp(&hostname_rank(&b.0))
                .then(a.0.cmp(&b.0))
        });
    }
}

/// Most specific first: exact names, then wildcards (longest first), then none.
fn hostname_rank(h: &Option<String>) -> (u8, std::cmp::Reverse<usize>) {
    match h {
        Some(h) if !h.starts_with('*') => (0, std::cmp::Reverse(h.len())),
        Some(h) => (1, std::cmp::Reverse(h.len())),
        None => (2, std::cmp::Reverse(0)),
    }
}

impl PortRoutes {
    /// The entry a request goes to, if any.
    pub fn route(&self, req: &RequestView<'_>) -> Option<&Arc<Entry>> {
        let (_, index) = self
            .listeners
            .iter()
            .find(|(h, _)| h.as_deref().is_none_or(|h| hostname_matches(h, req.host)))?;
        index.route(req)
    }

    pub(crate) fn listener(&mut self, hostname: Option<&str>) -> &mut HostIndex {
        let hostname = hostname.map(str::to_ascii_lowercase);
        let at = match self.listeners.iter().position(|(h, _)| *h == hostname) {
            Some(i) => i,
            None => {
                self.listeners.push((hostname, HostIndex::default()));
                self.listeners.len() - 1
            }
        };
        &mut self.listeners[at].1
    }

    fn finish(&mut self) {
        self.listeners.sort_by(|a, b| {
            hostname_rank(&a.0)
                .cmp(&hostname_rank(&b.0))
                .then(a.0.cmp(&b.0))
        });
        self.listeners.iter_mut().for_each(|(_, i)| i.finish());
        if let Some(tls) = &mut self.tls {
            tls.sort();
        }
    }

    /// Number of entries (tests and logs).
    pub fn len(&self) -> usize {
        self.listeners.iter().map(|(_, i)| i.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One listener hostname's routes, indexed by the route hostname they apply to.
#[derive(Debug, Default)]
pub struct HostIndex {
    exact: HashMap<String, Vec<Arc<Entry>>>,
    /// `(".example.com", entries)` of `*.example.com`, longest suffix first.
    wildcards: Vec<(String, Vec<Arc<Entry>>)>,
    any: Vec<Arc<Entry>>,
}

/// One match of one rule, and what to do with a request it matches.
#[derive(Debug)]
pub struct Entry {
    pub matcher: Matcher,
    pub action: Arc<Action>,
    /// `namespace/name` of the route, for the access log.
    pub route: Arc<str>,
    order: Order,
}

/// The precedence of an entry among those of the same hostname (smaller first).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Order {
    path_rank: u8,
    path_len: std::cmp::Reverse<usize>,
    /// A GRPCRoute match's method characters (after its service's, in `path_len`).
    method_len: std::cmp::Reverse<usize>,
    no_method: bool,
    headers: std::cmp::Reverse<usize>,
    query: std::cmp::Reverse<usize>,
    created: String,
    route: String,
    rule: usize,
    index: usize,
}

impl Order {
    /// The precedence of an Ingress path (Exact, then the longest Prefix).
    pub(crate) fn ingress(
        exact: bool,
        path: &str,
        created: String,
        key: &str,
        rule: usize,
        index: usize,
    ) -> Order {
        Order {
            path_rank: if exact { 0 } else { 2 },
            path_len: std::cmp::Reverse(path.trim_end_matches('/').len()),
            method_len: std::cmp::Reverse(0),
            no_method: true,
            headers: std::cmp::Reverse(0),
            query: std::cmp::Reverse(0),
            created,
            route: key.to_string(),
            rule,
            index,
        }
    }

    /// The match criteria, compared before hostname specificity.
    #[allow(clippy::type_complexity)]
    fn criteria(
        &self,
    ) -> (
        u8,
        std::cmp::Reverse<usize>,
        std::cmp::Reverse<usize>,
        bool,
        std::cmp::Reverse<usize>,
        std::cmp::Reverse<usize>,
    ) {
        (
            self.path_rank,
            self.path_len,
            self.method_len,
            self.no_method,
            self.headers,
            self.query,
        )
    }

    /// The tie-breakers after hostname specificity.
    fn tail(&self) -> (&str, &str, usize, usize) {
        (&self.created, &self.route, self.rule, self.index)
    }
}

/// A request's view for matching (lower-cased host without port).
pub struct RequestView<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a str,
    pub headers: &'a hyper::HeaderMap,
}

#[derive(Debug)]
pub enum PathMatcher {
    Exact(String),
    /// Without its trailing `/`; matches whole path elements.
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug)]
pub enum ValueMatcher {
    Exact(String),
    Regex(Regex),
}

impl ValueMatcher {
    fn matches(&self, v: &str) -> bool {
        match self {
            ValueMatcher::Exact(want) => v == want,
            ValueMatcher::Regex(re) => re.is_match(v),
        }
    }
}

/// One `matches[]` entry, compiled.
#[derive(Debug)]
pub struct Matcher {
    pub path: PathMatcher,
    pub headers: Vec<(hyper::header::HeaderName, ValueMatcher)>,
    pub query: Vec<(String, ValueMatcher)>,
    pub method: Option<String>,
}

impl Matcher {
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        let path_ok = match &self.path {
            PathMatcher::Exact(p) => req.path == p,
            PathMatcher::Prefix(p) => prefix_matches(p, req.path),
            PathMatcher::Regex(re) => re.is_match(req.path),
        };
        if !path_ok {
            return false;
        }
        if self.method.as_deref().is_some_and(|m| m != req.method) {
            return false;
        }
        for (name, want) in &self.headers {
            // Several values of one header are matched as their comma-joined list.
            let values: Vec<&str> = req
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if values.is_empty() || !want.matches(&values.join(",")) {
                return false;
            }
        }
        if !self.query.is_empty() {
            let pairs = query_pairs(req.query.unwrap_or(""));
            for (name, want) in &self.query {
                // The first value of a repeated parameter is the one matched (spec: "the
                // first one"; implementations may choose, this is the common choice).
                match pairs.iter().find(|(k, _)| k == name) {
                    Some((_, v)) if want.matches(v) => {}
                    _ => return false,
                }
            }
        }
        true
    }
}

/// An entry forwarding a path (Exact or element-wise prefix) to one backend, for Ingress.
pub(crate) fn single_backend_entry(
    exact: bool,
    path: &str,
    target: Result<Upstream, String>,
    route: Arc<str>,
    order: Order,
) -> Arc<Entry> {
    let prefix = path.trim_end_matches('/').to_string();
    let matcher = Matcher {
        path: if exact {
            PathMatcher::Exact(path.to_string())
        } else {
            PathMatcher::Prefix(prefix.clone())
        },
        headers: Vec::new(),
        query: Vec::new(),
        method: None,
    };
    let backend = WeightedBackend {
        weight: 1,
        target: target.map(Arc::new),
        request_headers: None,
        response_headers: None,
        series: Default::default(),
    };
    Arc::new(Entry {
        matcher,
        action: Arc::new(Action::new(Filters::default(), vec![backend], Some(prefix))),
        route,
        order,
    })
}

/// Splits a query string into decoded `(name, value)` pairs.
pub fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// PathPrefix semantics: element-wise, so `/foo` matches `/foo`, `/foo/` and `/foo/bar`
/// but not `/foobar`. `prefix` is stored without its trailing `/` (`/` itself is empty).
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.is_empty(),
        None => false,
    }
}

/// What a matched request gets.
#[derive(Debug)]
pub struct Action {
    pub request_headers: Option<HeaderModifier>,
    pub response_headers: Option<HeaderModifier>,
    pub redirect: Option<RequestRedirect>,
    pub rewrite: Option<UrlRewrite>,
    /// The path match the rewrite's `ReplacePrefixMatch` replaces.
    pub matched_prefix: Option<String>,
    pub backends: Vec<WeightedBackend>,
    /// The rule's timeouts.
    pub timeouts: Timeouts,
    /// RequestMirror filters whose backend resolved.
    pub mirrors: Vec<Mirror>,
    total_weight: u64,
    /// A stride coprime with `total_weight`, so consecutive picks interleave backends while
    /// every window of `total_weight` requests splits exactly by weight.
    stride: u64,
    counter: AtomicU64,
}

/// A rule's `timeouts`, parsed (`None`: no limit).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// From the request's arrival to the backend's response head, retries included.
    pub request: Option<Duration>,
    /// One attempt on one backend endpoint.
    pub backend_request: Option<Duration>,
}

/// A Gateway API duration (GEP-2257: one to four `<1-5 digits><h|m|s|ms>` parts, as
/// `1h30m` or `500ms`); `0s` is `None` (no timeout).
pub fn parse_duration(s: &str) -> Result<Option<Duration>, String> {
    let bad = || format!("invalid duration {s:?}");
    let mut total = Duration::ZERO;
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else {
            match rest.as_bytes().first() {
                Some(b'h') => (Duration::from_secs(3600), 1),
                Some(b'm') => (Duration::from_secs(60), 1),
                Some(b's') => (Duration::from_secs(1), 1),
                _ => return Err(bad()),
            }
        };
        rest = &rest[len..];
        total += unit * u32::try_from(n).map_err(|_| bad())?;
        parts += 1;
    }
    if parts == 0 || parts > 4 {
        return Err(bad());
    }
    Ok((!total.is_zero()).then_some(total))
}

/// One RequestMirror: where copies go, and which share of requests (exactly
/// `numerator` of every `denominator`, spread evenly).
#[derive(Debug)]
pub struct Mirror {
    pub upstream: Arc<Upstream>,
    numerator: u64,
    denominator: u64,
    counter: AtomicU64,
}

impl Mirror {
    pub fn new(upstream: Arc<Upstream>, numerator: u64, denominator: u64) -> Mirror {
        Mirror {
            upstream,
            numerator: numerator.min(denominator),
            denominator: denominator.max(1),
            counter: AtomicU64::new(0),
        }
    }

    /// Whether the next request is mirrored: the `n`th is when `n * numerator /
    /// denominator` steps up, so any `denominator` consecutive requests mirror exactly
    /// `numerator`.
    pub fn take(&self) -> bool {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) % self.denominator;
        (n + 1) * self.numerator / self.denominator > n * self.numerator / self.denominator
    }
}

/// One backendRef of a rule.
#[derive(Debug)]
pub struct WeightedBackend {
    pub weight: u64,
    /// The Service's ready endpoints, or why requests for it get a 500.
    pub target: Result<Arc<Upstream>, String>,
    pub request_headers: Option<HeaderModifier>,
    pub response_headers: Option<HeaderModifier>,
    /// Its metric series under this route, resolved at its first request.
    pub series: crate::metrics::SeriesSlot,
}

/// A Service port's ready endpoints, balanced round-robin.
#[derive(Debug)]
pub struct Upstream {
    /// `namespace/name:port`, for the access log and metrics.
    pub name: Arc<str>,
    pub endpoints: Vec<SocketAddr>,
    /// Each endpoint as a URI authority, made once here rather than per request.
    authorities: Vec<hyper::http::uri::Authority>,
    /// Spoken to in HTTP/2 with prior knowledge (the port's `appProtocol` is
    /// `kubernetes.io/h2c`).
    pub h2c: bool,
    next: AtomicU64,
}

impl Upstream {
    pub fn new(name: String, endpoints: Vec<SocketAddr>) -> Upstream {
        let authorities = endpoints
            .iter()
            .map(|a| {
                hyper::http::uri::Authority::try_from(a.to_string().as_str())
                    .expect("a socket address is an authority")
            })
            .collect();
        Upstream {
            name: name.into(),
            endpoints,
            authorities,
            h2c: false,
            next: AtomicU64::new(0),
        }
    }

    /// The URI authority of the endpoint [`Upstream::at`] picks.
    pub fn authority_at(
        &self,
        start: usize,
        attempt: usize,
    ) -> Option<&hyper::http::uri::Authority> {
        if self.authorities.is_empty() {
            return None;
        }
        Some(&self.authorities[start.wrapping_add(attempt) % self.authorities.len()])
    }

    /// Where the next request starts in the round-robin.
    pub fn start(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) as usize
    }

    /// The endpoint of `attempt` (0, then retries after a refusal) of a request that
    /// started at `start`: each retry goes to the next endpoint.
    pub fn at(&self, start: usize, attempt: usize) -> Option<SocketAddr> {
        if self.endpoints.is_empty() {
            return None;
        }
        Some(self.endpoints[start.wrapping_add(attempt) % self.endpoints.len()])
    }
}

impl Action {
    fn new(
        filters: Filters,
        backends: Vec<WeightedBackend>,
        matched_prefix: Option<String>,
    ) -> Action {
        let total_weight: u64 = backends.iter().map(|b| b.weight).sum();
        let stride = [7919u64, 104_729, 1]
            .into_iter()
            .find(|p| total_weight == 0 || gcd(*p, total_weight) == 1)
            .unwrap_or(1);
        Action {
            request_headers: filters.request_headers,
            response_headers: filters.response_headers,
            redirect: filters.redirect,
            rewrite: filters.rewrite,
            matched_prefix,
            backends,
            timeouts: filters.timeouts,
            mirrors: filters
                .mirrors
                .into_iter()
                .map(|(u, n, d)| Mirror::new(u, n, d))
                .collect(),
            total_weight,
            stride,
            counter: AtomicU64::new(0),
        }
    }

    /// The backend for the next request, by weight; `None` when every weight is 0.
    pub fn pick(&self) -> Option<&WeightedBackend> {
        if self.total_weight == 0 {
            return None;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut at = n.wrapping_mul(self.stride) % self.total_weight;
        for b in &self.backends {
            if at < b.weight {
                return Some(b);
            }
            at -= b.weight;
        }
        None
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl HostIndex {
    /// The entry a request goes to. Every route hostname group matching the host offers
    /// its first matching entry (groups are sorted by precedence); the best of those wins
    /// by match precedence, then by hostname specificity (exact, longest wildcard, none),
    /// then by age and name (conformance HTTPRouteMatchingAcrossRoutes: `/v2` of a
    /// `*.com` route beats `/` of an `example.com` route).
    pub fn route(&self, req: &RequestView<'_>) -> Option<&Arc<Entry>> {
        fn first<'e>(entries: &'e [Arc<Entry>], req: &RequestView<'_>) -> Option<&'e Arc<Entry>> {
            entries.iter().find(|e| e.matcher.matches(req))
        }
        type Rank = (u8, std::cmp::Reverse<usize>);
        let mut offers: Vec<(&Arc<Entry>, Rank)> = Vec::new();
        if let Some(entries) = self.exact.get(req.host) {
            offers.extend(first(entries, req).map(|e| (e, (0, std::cmp::Reverse(req.host.len())))));
        }
        for (suffix, entries) in &self.wildcards {
            if req.host.len() > suffix.len() && req.host.ends_with(suffix.as_str()) {
                offers
                    .extend(first(entries, req).map(|e| (e, (1, std::cmp::Reverse(suffix.len())))));
            }
        }
        offers.extend(first(&self.any, req).map(|e| (e, (2, std::cmp::Reverse(0)))));
        let mut best: Option<(&Arc<Entry>, Rank)> = None;
        for (e, rank) in offers {
            let better = match &best {
                None => true,
                Some((b, b_rank)) => {
                    (e.order.criteria(), rank, e.order.tail())
                        < (b.order.criteria(), *b_rank, b.order.tail())
                }
            };
            if better {
                best = Some((e, rank));
            }
        }
        best.map(|(e, _)| e)
    }

    pub(crate) fn push(&mut self, host: Option<&str>, entry: Arc<Entry>) {
        match host {
            None => self.any.push(entry),
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => match self.wildcards.iter_mut().find(|(s, _)| s == suffix) {
                    Some((_, v)) => v.push(entry),
                    None => self.wildcards.push((suffix.to_string(), vec![entry])),
                },
                None => self.exact.entry(h.to_string()).or_default().push(entry),
            },
        }
    }

    fn finish(&mut self) {
        let sort = |v: &mut Vec<Arc<Entry>>| v.sort_by(|a, b| a.order.cmp(&b.order));
        self.exact.values_mut().for_each(sort);
        self.wildcards.iter_mut().for_each(|(_, v)| sort(v));
        self.wildcards
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        sort(&mut self.any);
    }

    /// Number of entries (tests and logs).
    pub fn len(&self) -> usize {
        self.exact.values().map(Vec::len).sum::<usize>()
            + self.wildcards.iter().map(|(_, v)| v.len()).sum::<usize>()
            + self.any.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `host` matches `pattern` (`*.example.com` covers one or more labels).
pub fn hostname_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

/// The hostnames a route serves on a listener: the intersection of the listener's
/// hostname and the route's (`None` inside: any host). Empty when they do not intersect.
pub fn effective_hostnames(listener: Option<&str>, route: &[String]) -> Vec<Option<String>> {
    let route: Vec<String> = route.iter().map(|h| h.to_ascii_lowercase()).collect();
    let listener = listener.map(str::to_ascii_lowercase);
    match (listener, route.is_empty()) {
        (None, true) => vec![None],
        (Some(l), true) => vec![Some(l)],
        (None, false) => route.into_iter().map(Some).collect(),
        (Some(l), false) => {
            let mut out = Vec::new();
            for r in route {
                let hit = if r == l {
                    Some(r)
                } else if hostname_matches(&l, &r) {
                    // Route more specific than the listener's wildcard.
                    Some(r)
                } else if hostname_matches(&r, &l) {
                    Some(l.clone())
                } else {
                    None
                };
                if let Some(h) = hit {
                    if !out.contains(&Some(h.clone())) {
                        out.push(Some(h));
                    }
                }
            }
            out
        }
    }
}

/// The kinds a listener's protocol can carry.
fn kinds_for(protocol: &str) -> &'static [&'static str] {
    match protocol {
        "HTTP" | "HTTPS" => &["HTTPRoute", "GRPCRoute"],
        _ => &[],
    }
}

/// The route kinds skiff serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    Http,
    Grpc,
}

impl RouteKind {
    pub fn name(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
        }
    }

    fn is(self, k: &RouteGroupKind) -> bool {
        k.group.as_deref().unwrap_or(GROUP) == GROUP && k.kind == self.name()
    }
}

/// An HTTPRoute or a GRPCRoute: what attaching one to listeners reads.
#[derive(Clone, Copy)]
enum AnyRoute<'a> {
    Http(&'a HttpRoute),
    Grpc(&'a GrpcRoute),
}

impl<'a> AnyRoute<'a> {
    fn kind(self) -> RouteKind {
        match self {
            AnyRoute::Http(_) => RouteKind::Http,
            AnyRoute::Grpc(_) => RouteKind::Grpc,
        }
    }

    fn meta(self) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            AnyRoute::Http(r) => &r.metadata,
            AnyRoute::Grpc(r) => &r.metadata,
        }
    }

    fn parent_refs(self) -> &'a [ParentRef] {
        match self {
            AnyRoute::Http(r) => &r.spec.parent_refs,
            AnyRoute::Grpc(r) => &r.spec.parent_refs,
        }
    }

    fn hostnames(self) -> &'a [String] {
        match self {
            AnyRoute::Http(r) => &r.spec.hostnames,
            AnyRoute::Grpc(r) => &r.spec.hostnames,
        }
    }

    fn compile(self, inputs: &Inputs<'_>) -> Compiled {
        match self {
            AnyRoute::Http(r) => compile_rules(r, inputs),
            AnyRoute::Grpc(r) => compile_grpc_rules(r, inputs),
        }
    }
}

/// Whether two sets of effective hostnames (`None`: any host) share a host.
fn hostnames_intersect(a: &[Option<String>], b: &[Option<String>]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| match (x, y) {
            (None, _) | (_, None) => true,
            (Some(x), Some(y)) => {
                x == y
                    || hostname_matches(x, y)
                    || hostname_matches(y, x)
                    || (x.starts_with('*')
                        && y.starts_with('*')
                        && (x.ends_with(&y[1..]) || y.ends_with(&x[1..])))
            }
        })
    })
}

/// A listener of one of skiff's Gateways, with the decisions made so far.
struct ListenerState<'a> {
    gateway: &'a Gateway,
    listener: &'a Listener,
    report: ListenerReport,
    /// The kind and effective hostnames of each route attached so far (oldest first):
    /// an HTTPRoute and a GRPCRoute whose hostnames intersect are not both accepted.
    attached: Vec<(RouteKind, Vec<Option<String>>)>,
}

fn ns_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

pub(crate) fn created(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default()
}

/// The one pass: objects in, routing table and decisions out.
pub fn build(inputs: &Inputs<'_>) -> (Table, Report) {
    let mut report = Report::default();
    let ours: Vec<&str> = inputs
        .classes
        .iter()
        .filter(|c| c.spec.controller_name == inputs.controller_name)
        .map(|c| name_of(&c.metadata))
        .collect();
    report.classes = ours.iter().map(|s| s.to_string()).collect();
    let mut gateways: Vec<&Gateway> = inputs
        .gateways
        .iter()
        .copied()
        .filter(|g| ours.contains(&g.spec.gateway_class_name.as_str()))
        .filter(|g| g.metadata.deletion_timestamp.is_none())
        .collect();
    // Oldest first: an older Gateway keeps a port a newer one wants for another protocol.
    gateways.sort_by_key(|g| {
        (
            created(&g.metadata),
            ns_of(&g.metadata).to_string(),
            name_of(&g.metadata).to_string(),
        )
    });

    let mut listeners: Vec<ListenerState<'_>> = Vec::new();
    let mut port_protocol: HashMap<i32, (&str, String)> = HashMap::new();
    for g in &gateways {
        let key = format!("{}/{}", ns_of(&g.metadata), name_of(&g.metadata));
        let first = listeners.len();
        for l in &g.spec.listeners {
            listeners.push(ListenerState {
                gateway: g,
                listener: l,
                report: listener_report(l),
                attached: Vec::new(),
            });
        }
        // Conflicts inside the Gateway: same port with another protocol, or the same
        // port, protocol and hostname.
        let mine = first..listeners.len();
        for i in mine.clone() {
            for j in mine.clone() {
                if i == j {
                    continue;
                }
                let (a, b) = (listeners[i].listener, listeners[j].listener);
                if a.port != b.port {
                    continue;
                }
                let reason = if a.protocol != b.protocol {
                    Some("ProtocolConflict")
                } else if a.hostname.as_deref().map(str::to_ascii_lowercase)
                    == b.hostname.as_deref().map(str::to_ascii_lowercase)
                {
                    Some("HostnameConflict")
                } else {
                    None
                };
                if reason.is_some() && listeners[i].report.conflicted.is_none() {
                    listeners[i].report.conflicted = reason;
                }
            }
        }
        // Across Gateways, a port belongs to the first protocol given it.
        for state in &mut listeners[mine] {
            if state.report.accepted.is_err() || state.report.conflicted.is_some() {
                continue;
            }
            let l = state.listener;
            match port_protocol.get(&l.port) {
                Some((protocol, owner)) if *protocol != l.protocol.as_str() => {
                    state.report.accepted = Err((
                        "PortUnavailable",
                        format!(
                            "port {} is served with protocol {protocol} by Gateway {owner}",
                            l.port
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    port_protocol.insert(l.port, (l.protocol.as_str(), key.clone()));
                }
            }
        }
    }

    // HTTPS listeners' certificates, then a port (and a listener hostname, so that
    // isolation holds even for a listener without routes) for every served listener.
    let mut table = Table::default();
    for state in &mut listeners {
        let cert = if state.listener.protocol == "HTTPS" {
            match listener_certificate(state.listener, ns_of(&state.gateway.metadata), inputs) {
                Ok(c) => Some(c),
                Err(e) => {
                    if state.report.resolved.is_ok() {
                        state.report.resolved = Err(e);
                    }
                    None
                }
            }
        } else {
            None
        };
        if !state.report.programmed() {
            continue;
        }
        let Ok(port) = u16::try_from(state.listener.port) else {
            continue;
        };
        let hostname = state
            .listener
            .hostname
            .as_deref()
            .map(str::to_ascii_lowercase);
        let entry = table.ports.entry(port).or_default();
        entry.listener(hostname.as_deref());
        if let Some(cert) = cert {
            entry
                .tls
                .get_or_insert_with(PortTls::default)
                .certs
                .push((hostname, cert));
        }
    }
    // Both kinds, oldest first: of an HTTPRoute and a GRPCRoute conflicting on a
    // listener, the older is accepted (the spec's rule, as for listener ports).
    let mut routes: Vec<AnyRoute<'_>> = inputs
        .routes
        .iter()
        .map(|r| AnyRoute::Http(r))
        .chain(inputs.grpc_routes.iter().map(|r| AnyRoute::Grpc(r)))
        .filter(|r| r.meta().deletion_timestamp.is_none())
        .collect();
    routes.sort_by_key(|r| {
        (
            created(r.meta()),
            ns_of(r.meta()).to_string(),
            name_of(r.meta()).to_string(),
        )
    });
    for route in routes {
        let route_ns = ns_of(route.meta());
        let route_key: Arc<str> = format!("{route_ns}/{}", name_of(route.meta())).into();
        let mut parents = Vec::new();
        // Backends resolve once per route; every parent reports the same ResolvedRefs.
        let compiled = route.compile(inputs);
        for parent in route.parent_refs() {
            if parent.group.as_deref().unwrap_or(GROUP) != GROUP
                || parent.kind.as_deref().unwrap_or("Gateway") != "Gateway"
            {
                continue;
            }
            let parent_ns = parent.namespace.as_deref().unwrap_or(route_ns);
            let Some(gateway) = gateways
                .iter()
                .find(|g| ns_of(&g.metadata) == parent_ns && name_of(&g.metadata) == parent.name)
            else {
                continue;
            };
            let accepted = attach(
                route,
                parent,
                gateway,
                &mut listeners,
                inputs,
                &compiled,
                &route_key,
                &mut table,
            );
            let accepted = accepted.and(compiled.accepted.clone());
            let resolved = compiled.resolved.clone();
            parents.push(ParentReport {
                parent: parent.clone(),
                accepted,
                resolved,
            });
        }
        if !parents.is_empty() {
            report.routes.push(RouteReport {
                kind: route.kind(),
                namespace: route_ns.to_string(),
                name: name_of(route.meta()).to_string(),
                generation: route.meta().generation.unwrap_or(0),
                parents,
            });
        }
    }
    report.ingresses = crate::ingress::add(inputs, &mut table);
    for p in table.ports.values_mut() {
        p.finish();
    }

    for g in &gateways {
        let address_error = g
            .spec
            .addresses
            .iter()
            .find(|a| {
                a.type_.as_deref().unwrap_or("IPAddress") != "IPAddress"
                    || !inputs.node_addresses.contains(&a.value)
            })
            .map(|a| format!("address {:?} is not one of the nodes' addresses", a.value));
        report.gateways.push(GatewayReport {
            namespace: ns_of(&g.metadata).to_string(),
            name: name_of(&g.metadata).to_string(),
            generation: g.metadata.generation.unwrap_or(0),
            address_error,
            addresses: inputs.node_addresses.clone(),
            listeners: listeners
                .iter()
                .filter(|s| std::ptr::eq(s.gateway, *g))
                .map(|s| s.report.clone())
                .collect(),
        });
    }
    (table, report)
}

/// A listener's own checks (protocol, route kinds, TLS), before conflicts.
fn listener_report(l: &Listener) -> ListenerReport {
    let allowed = kinds_for(&l.protocol);
    let mut report = ListenerReport {
        name: l.name.clone(),
        port: l.port,
        accepted: Ok(()),
        conflicted: None,
        resolved: Ok(()),
        supported_kinds: Vec::new(),
        attached_routes: 0,
    };
    if l.protocol != "HTTP" && l.protocol != "HTTPS" {
        report.accepted = Err((
            "UnsupportedProtocol",
            format!(
                "protocol {:?} is not supported by skiff's gateway (HTTP and HTTPS only)",
                l.protocol
            ),
        ));
    }
    match l.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref()) {
        Some(kinds) if !kinds.is_empty() => {
            for k in kinds {
                if k.group.as_deref().unwrap_or(GROUP) == GROUP
                    && allowed.contains(&k.kind.as_str())
                {
                    report.supported_kinds.push(RouteGroupKind {
                        group: Some(GROUP.into()),
                        kind: k.kind.clone(),
                    });
                } else {
                    report.resolved = Err((
                        "InvalidRouteKinds",
                        format!(
                            "route kind {}/{} is not supported on a {} listener",
                            k.group.as_deref().unwrap_or(GROUP),
                            k.kind,
                            l.protocol
                        ),
                    ));
                }
            }
        }
        _ => {
            report.supported_kinds = allowed
                .iter()
                .map(|k| RouteGroupKind {
                    group: Some(GROUP.into()),
                    kind: k.to_string(),
                })
                .collect();
        }
    }
    report
}

/// Whether a listener lets a route of namespace `route_ns` attach.
fn namespace_allowed(l: &Listener, gateway_ns: &str, route_ns: &str, inputs: &Inputs<'_>) -> bool {
    let from = l
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    match from.and_then(|n| n.from.as_deref()).unwrap_or("Same") {
        "All" => true,
        "Selector" => {
            let Some(sel) = from.and_then(|n| n.selector.as_ref()) else {
                return false;
            };
            let Ok(sel) = LabelSelector::from_label_selector(sel) else {
                return false;
            };
            inputs
                .namespaces
                .iter()
                .find(|n| name_of(&n.metadata) == route_ns)
                .is_some_and(|n| {
                    let labels = serde_json::to_value(&n.metadata.labels).unwrap_or_default();
                    sel.matches(labels.as_object())
                })
        }
        // "Same", and anything the schema would have refused.
        _ => gateway_ns == route_ns,
    }
}

/// Attaches a route to the listeners of `gateway` its parentRef selects, adding its
/// entries to the table for every listener that takes it; the route's Accepted verdict.
#[allow(clippy::too_many_arguments)]
fn attach(
    route: AnyRoute<'_>,
    parent: &ParentRef,
    gateway: &Gateway,
    listeners: &mut [ListenerState<'_>],
    inputs: &Inputs<'_>,
    compiled: &Compiled,
    route_key: &Arc<str>,
    table: &mut Table,
) -> Verdict {
    let route_ns = ns_of(route.meta());
    let kind = route.kind();
    let gateway_ns = ns_of(&gateway.metadata);
    let selected: Vec<usize> = listeners
        .iter()
        .enumerate()
        .filter(|(_, s)| std::ptr::eq(s.gateway, gateway))
        .filter(|(_, s)| {
            parent
                .section_name
                .as_ref()
                .is_none_or(|n| *n == s.listener.name)
        })
        .filter(|(_, s)| parent.port.is_none_or(|p| p == s.listener.port))
        .map(|(i, _)| i)
        .collect();
    if selected.is_empty() {
        return Err((
            "NoMatchingParent",
            match (&parent.section_name, parent.port) {
                (Some(s), _) => format!(
                    "Gateway {gateway_ns}/{} has no listener named {s:?}",
                    parent.name
                ),
                (None, Some(p)) => format!(
                    "Gateway {gateway_ns}/{} has no listener on port {p}",
                    parent.name
                ),
                (None, None) => format!("Gateway {gateway_ns}/{} has no listeners", parent.name),
            },
        ));
    }
    let allowed: Vec<usize> = selected
        .into_iter()
        .filter(|i| {
            let s = &listeners[*i];
            namespace_allowed(s.listener, gateway_ns, route_ns, inputs)
                && s.report.supported_kinds.iter().any(|k| kind.is(k))
        })
        .collect();
    if allowed.is_empty() {
        return Err((
            "NotAllowedByListeners",
            format!(
                "no listener of Gateway {gateway_ns}/{} allows {}s from namespace {route_ns:?}",
                parent.name,
                kind.name()
            ),
        ));
    }
    let mut attached_any = false;
    let mut conflicted = false;
    for i in allowed {
        let hosts =
            effective_hostnames(listeners[i].listener.hostname.as_deref(), route.hostnames());
        if hosts.is_empty() {
            continue;
        }
        if listeners[i]
            .attached
            .iter()
            .any(|(k, h)| *k != kind && hostnames_intersect(h, &hosts))
        {
            conflicted = true;
            continue;
        }
        attached_any = true;
        listeners[i].attached.push((kind, hosts.clone()));
        listeners[i].report.attached_routes += 1;
        if !listeners[i].report.programmed() {
            continue;
        }
        let Ok(port) = u16::try_from(listeners[i].listener.port) else {
            continue;
        };
        let index = table
            .ports
            .entry(port)
            .or_default()
            .listener(listeners[i].listener.hostname.as_deref());
        for host in &hosts {
            for e in &compiled.entries {
                index.push(
                    host.as_deref(),
                    Arc::new(Entry {
                        matcher: e.matcher.clone_matcher(),
                        action: e.action.clone(),
                        route: route_key.clone(),
                        order: e.order.clone(),
                    }),
                );
            }
        }
    }
    if !attached_any && conflicted {
        let other = match kind {
            RouteKind::Http => RouteKind::Grpc,
            RouteKind::Grpc => RouteKind::Http,
        };
        return Err((
            "HostnameConflict",
            format!(
                "an older {} on the listener serves an intersecting hostname (an HTTPRoute \
                 and a GRPCRoute never share a hostname)",
                other.name()
            ),
        ));
    }
    if !attached_any {
        return Err((
            "NoMatchingListenerHostname",
            "no hostname of the route matches a listener's hostname".into(),
        ));
    }
    Ok(())
}

impl Matcher {
    fn clone_matcher(&self) -> Matcher {
        Matcher {
            path: match &self.path {
                PathMatcher::Exact(p) => PathMatcher::Exact(p.clone()),
                PathMatcher::Prefix(p) => PathMatcher::Prefix(p.clone()),
                PathMatcher::Regex(r) => PathMatcher::Regex(r.clone()),
            },
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), v.clone_value()))
                .collect(),
            query: self
                .query
                .iter()
                .map(|(n, v)| (n.clone(), v.clone_value()))
                .collect(),
            method: self.method.clone(),
        }
    }
}

impl ValueMatcher {
    fn clone_value(&self) -> ValueMatcher {
        match self {
            ValueMatcher::Exact(s) => ValueMatcher::Exact(s.clone()),
            ValueMatcher::Regex(r) => ValueMatcher::Regex(r.clone()),
        }
    }
}

/// A route's rules compiled once, whatever listeners it attaches to.
struct Compiled {
    entries: Vec<CompiledEntry>,
    /// ResolvedRefs: the first backend that did not resolve.
    resolved: Verdict,
    /// Accepted: the first filter or match skiff cannot apply (UnsupportedValue).
    accepted: Verdict,
}

struct CompiledEntry {
    matcher: Matcher,
    action: Arc<Action>,
    order: Order,
}

/// Rule-level filters, parsed.
#[derive(Default)]
struct Filters {
    request_headers: Option<HeaderModifier>,
    response_headers: Option<HeaderModifier>,
    redirect: Option<RequestRedirect>,
    rewrite: Option<UrlRewrite>,
    /// RequestMirror filters as written; resolved into `mirrors` by [`compile_action`].
    mirror_refs: Vec<crate::api::RequestMirror>,
    /// Resolved mirrors: backend, numerator, denominator.
    mirrors: Vec<(Arc<Upstream>, u64, u64)>,
    /// The rule's timeouts (not a filter, but carried with them into the action).
    timeouts: Timeouts,
}

fn parse_filters(filters: &[HttpRouteFilter]) -> Result<Filters, (&'static str, String)> {
    let mut out = Filters::default();
    for f in filters {
        match f.type_.as_str() {
            "RequestHeaderModifier" => out.request_headers = f.request_header_modifier.clone(),
            "ResponseHeaderModifier" => out.response_headers = f.response_header_modifier.clone(),
            "RequestRedirect" => out.redirect = f.request_redirect.clone(),
            "URLRewrite" => out.rewrite = f.url_rewrite.clone(),
            "RequestMirror" => out.mirror_refs.extend(f.request_mirror.clone()),
            other => {
                return Err((
                    "UnsupportedValue",
                    format!("filter type {other:?} is not supported by skiff's gateway"),
                ))
            }
        }
    }
    Ok(out)
}

/// Anchored: the Gateway API's regular expressions match the whole path or value.
fn full_regex(pattern: &str) -> Result<Regex, (&'static str, String)> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        (
            "UnsupportedValue",
            format!("invalid regular expression {pattern:?}: {e}"),
        )
    })
}

/// A rule's filters and backends; `Err` when the rule uses what skiff does not support
/// (its requests then get a 500, as the spec demands of a filter that cannot be applied).
fn compile_action(
    rule: &crate::api::HttpRouteRule,
    route_ns: &str,
    kind: RouteKind,
    inputs: &Inputs<'_>,
    resolved: &mut Verdict,
) -> Result<(Filters, Vec<WeightedBackend>), (&'static str, String)> {
    let mut filters = parse_filters(&rule.filters)?;
    if let Some(t) = &rule.timeouts {
        let parse = |d: &Option<String>| match d {
            Some(d) => parse_duration(d).map_err(|e| ("UnsupportedValue", e)),
            None => Ok(None),
        };
        filters.timeouts = Timeouts {
            request: parse(&t.request)?,
            backend_request: parse(&t.backend_request)?,
        };
    }
    for m in std::mem::take(&mut filters.mirror_refs) {
        let (numerator, denominator) = match (&m.fraction, m.percent) {
            (Some(f), _) => (f.numerator, f.denominator.unwrap_or(100)),
            (None, Some(p)) => (p, 100),
            (None, None) => (1, 1),
        };
        let (Ok(numerator), Ok(denominator)) =
            (u64::try_from(numerator), u64::try_from(denominator))
        else {
            return Err((
                "UnsupportedValue",
                "a mirror fraction is never negative".into(),
            ));
        };
        // A mirror whose backend does not resolve is dropped, and ResolvedRefs says why.
        match resolve_backend(route_ns, kind, &m.backend_ref, inputs) {
            Ok(u) => filters
                .mirrors
                .push((Arc::new(u), numerator, denominator.max(1))),
            Err((reason, message)) => {
                if resolved.is_ok() {
                    *resolved = Err((reason, format!("mirror: {message}")));
                }
            }
        }
    }
    let mut backends = Vec::new();
    for b in &rule.backend_refs {
        let bf = parse_filters(&b.filters)?;
        if bf.redirect.is_some() || bf.rewrite.is_some() || !bf.mirror_refs.is_empty() {
            return Err((
                "UnsupportedValue",
                "only header modifiers are supported as backendRef filters".into(),
            ));
        }
        let target = match resolve_backend(route_ns, kind, b, inputs) {
            Ok(u) => Ok(Arc::new(u)),
            Err((reason, message)) => {
                if resolved.is_ok() {
                    *resolved = Err((reason, message.clone()));
                }
                Err(message)
            }
        };
        backends.push(WeightedBackend {
            weight: u64::try_from(b.weight.unwrap_or(1)).unwrap_or(0),
            target,
            request_headers: bf.request_headers,
            response_headers: bf.response_headers,
            series: Default::default(),
        });
    }
    Ok((filters, backends))
}

/// One `matches[]` entry compiled, with what its precedence is made of.
struct CompiledMatch {
    matcher: Matcher,
    /// Exact 0, RegularExpression 1, PathPrefix 2 (a GRPCRoute's are all 0).
    rank: u8,
    /// The path's characters (a GRPCRoute's: its service's).
    path_len: usize,
    /// A GRPCRoute's method characters.
    method_len: usize,
    matched_prefix: Option<String>,
}

type MatchResult = Result<CompiledMatch, (&'static str, String)>;

/// One HTTPRoute `matches[]` entry compiled.
fn compile_match(m: &crate::api::HttpRouteMatch) -> MatchResult {
    let (path_type, path_value) = match &m.path {
        Some(p) => (
            p.type_.as_deref().unwrap_or("PathPrefix"),
            p.value.as_deref().unwrap_or("/"),
        ),
        None => ("PathPrefix", "/"),
    };
    let (path, rank, matched_prefix) = match path_type {
        "Exact" => (PathMatcher::Exact(path_value.to_string()), 0, None),
        "RegularExpression" => (PathMatcher::Regex(full_regex(path_value)?), 1, None),
        _ => {
            let p = path_value.trim_end_matches('/').to_string();
            (PathMatcher::Prefix(p.clone()), 2, Some(p))
        }
    };
    let mut query = Vec::new();
    for q in &m.query_params {
        query.push((q.name.clone(), value_matcher(q.type_.as_deref(), &q.value)?));
    }
    let matcher = Matcher {
        path,
        headers: header_matchers(&m.headers)?,
        query,
        method: m.method.clone(),
    };
    // `/v2/` and `/v2` are the same prefix: length without the trailing slash.
    let path_len = matched_prefix
        .as_ref()
        .map_or(path_value.len(), String::len);
    Ok(CompiledMatch {
        matcher,
        rank,
        path_len,
        method_len: 0,
        matched_prefix,
    })
}

fn header_matchers(
    headers: &[crate::api::ValueMatch],
) -> Result<Vec<(hyper::header::HeaderName, ValueMatcher)>, (&'static str, String)> {
    let mut out = Vec::new();
    for h in headers {
        let name = hyper::header::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
            (
                "UnsupportedValue",
                format!("invalid header name {:?}", h.name),
            )
        })?;
        out.push((name, value_matcher(h.type_.as_deref(), &h.value)?));
    }
    Ok(out)
}

/// One GRPCRoute `matches[]` entry compiled: a gRPC call is `POST /<service>/<method>`,
/// so its method match is a path match. `Exact` with both is that exact path; with the
/// service only, the service's path prefix; with the method only, any service's method.
/// `RegularExpression` matches each part whole (an absent part matches any).
fn compile_grpc_match(m: &crate::api::GrpcRouteMatch) -> MatchResult {
    let method = m.method.clone().unwrap_or_default();
    let (service, name) = (method.service.as_deref(), method.method.as_deref());
    let path = match (method.type_.as_deref().unwrap_or("Exact"), service, name) {
        (_, None, None) => PathMatcher::Prefix(String::new()),
        ("RegularExpression", s, n) => PathMatcher::Regex(full_regex(&format!(
            "/(?:{})/(?:{})",
            s.unwrap_or("[^/]+"),
            n.unwrap_or("[^/]+")
        ))?),
        (_, Some(s), Some(n)) => PathMatcher::Exact(format!("/{s}/{n}")),
        (_, Some(s), None) => PathMatcher::Prefix(format!("/{s}")),
        (_, None, Some(n)) => {
            PathMatcher::Regex(full_regex(&format!("/[^/]+/{}", regex::escape(n)))?)
        }
    };
    Ok(CompiledMatch {
        matcher: Matcher {
            path,
            headers: header_matchers(&m.headers)?,
            query: Vec::new(),
            method: None,
        },
        rank: 0,
        path_len: service.map_or(0, str::len),
        method_len: name.map_or(0, str::len),
        matched_prefix: None,
    })
}

fn compile_rules(route: &HttpRoute, inputs: &Inputs<'_>) -> Compiled {
    let rules = route.spec.rules.iter().map(|rule| {
        let matches: Vec<MatchResult> = if rule.matches.is_empty() {
            vec![compile_match(&crate::api::HttpRouteMatch::default())]
        } else {
            rule.matches.iter().map(compile_match).collect()
        };
        (std::borrow::Cow::Borrowed(rule), matches)
    });
    compile_with(&route.metadata, RouteKind::Http, rules, inputs)
}

/// A GRPCRoute's rules: their filters and backendRefs have HTTPRoute's shape, so they
/// compile as an HTTPRoute rule's (no redirect or rewrite can occur: the CRD refuses
/// those filter types).
fn compile_grpc_rules(route: &GrpcRoute, inputs: &Inputs<'_>) -> Compiled {
    let rules = route.spec.rules.iter().map(|rule| {
        let matches: Vec<MatchResult> = if rule.matches.is_empty() {
            vec![compile_grpc_match(&crate::api::GrpcRouteMatch::default())]
        } else {
            rule.matches.iter().map(compile_grpc_match).collect()
        };
        let action = crate::api::HttpRouteRule {
            filters: rule.filters.clone(),
            backend_refs: rule.backend_refs.clone(),
            ..Default::default()
        };
        (std::borrow::Cow::Owned(action), matches)
    });
    compile_with(&route.metadata, RouteKind::Grpc, rules, inputs)
}

/// A route's rules compiled: each rule's action (filters, backends) and its matches.
fn compile_with<'r>(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: RouteKind,
    rules: impl Iterator<
        Item = (
            std::borrow::Cow<'r, crate::api::HttpRouteRule>,
            Vec<MatchResult>,
        ),
    >,
    inputs: &Inputs<'_>,
) -> Compiled {
    let route_ns = ns_of(meta);
    let mut entries = Vec::new();
    let mut resolved: Verdict = Ok(());
    let mut accepted: Verdict = Ok(());
    for (rule_index, (rule, matches)) in rules.enumerate() {
        let (filters, backends) = match compile_action(&rule, route_ns, kind, inputs, &mut resolved)
        {
            Ok(a) => a,
            Err((reason, message)) => {
                if accepted.is_ok() {
                    accepted = Err((reason, message.clone()));
                }
                let failed = WeightedBackend {
                    weight: 1,
                    target: Err(message),
                    request_headers: None,
                    response_headers: None,
                    series: Default::default(),
                };
                (Filters::default(), vec![failed])
            }
        };
        for (index, m) in matches.into_iter().enumerate() {
            let m = match m {
                Ok(c) => c,
                // A match that cannot be evaluated matches nothing.
                Err(e) => {
                    if accepted.is_ok() {
                        accepted = Err(e);
                    }
                    continue;
                }
            };
            let order = Order {
                path_rank: m.rank,
                path_len: std::cmp::Reverse(m.path_len),
                method_len: std::cmp::Reverse(m.method_len),
                no_method: m.matcher.method.is_none(),
                headers: std::cmp::Reverse(m.matcher.headers.len()),
                query: std::cmp::Reverse(m.matcher.query.len()),
                created: created(meta),
                route: format!("{route_ns}/{}", name_of(meta)),
                rule: rule_index,
                index,
            };
            let action = Action::new(
                Filters {
                    request_headers: filters.request_headers.clone(),
                    response_headers: filters.response_headers.clone(),
                    redirect: filters.redirect.clone(),
                    rewrite: filters.rewrite.clone(),
                    mirror_refs: Vec::new(),
                    mirrors: filters.mirrors.clone(),
                    timeouts: filters.timeouts,
                },
                backends
                    .iter()
                    .map(|b| WeightedBackend {
                        weight: b.weight,
                        target: b.target.clone(),
                        request_headers: b.request_headers.clone(),
                        response_headers: b.response_headers.clone(),
                        series: Default::default(),
                    })
                    .collect(),
                m.matched_prefix,
            );
            entries.push(CompiledEntry {
                matcher: m.matcher,
                action: Arc::new(action),
                order,
            });
        }
    }
    Compiled {
        entries,
        resolved,
        accepted,
    }
}

fn value_matcher(kind: Option<&str>, value: &str) -> Result<ValueMatcher, (&'static str, String)> {
    match kind.unwrap_or("Exact") {
        "RegularExpression" => Ok(ValueMatcher::Regex(full_regex(value)?)),
        _ => Ok(ValueMatcher::Exact(value.to_string())),
    }
}

/// Whether a ReferenceGrant in `to_ns` lets HTTPRoutes of `from_ns` refer to Service `name`.
/// Whether a ReferenceGrant in `to_ns` lets `from_kind`s (of the Gateway API group) in
/// `from_ns` refer to the core `to_kind` named `name`.
fn granted(
    from_kind: &str,
    from_ns: &str,
    to_kind: &str,
    to_ns: &str,
    name: &str,
    grants: &[&ReferenceGrant],
) -> bool {
    grants.iter().any(|g| {
        ns_of(&g.metadata) == to_ns
            && g.spec
                .from
                .iter()
                .any(|f| f.group == GROUP && f.kind == from_kind && f.namespace == from_ns)
            && g.spec.to.iter().any(|t| {
                t.group.is_empty()
                    && t.kind == to_kind
                    && t.name.as_deref().is_none_or(|n| n.is_empty() || n == name)
            })
    })
}

/// An HTTPS listener's certificate: its first certificateRef, a `kubernetes.io/tls`
/// Secret whose `tls.crt` and `tls.key` parse; or ResolvedRefs' reason.
fn listener_certificate(
    l: &Listener,
    gateway_ns: &str,
    inputs: &Inputs<'_>,
) -> Result<Arc<CertifiedKey>, (&'static str, String)> {
    let tls = l.tls.clone().unwrap_or_default();
    if tls.mode.as_deref().unwrap_or("Terminate") != "Terminate" {
        return Err((
            "InvalidCertificateRef",
            "an HTTPS listener terminates TLS (mode Terminate)".into(),
        ));
    }
    let Some(r) = tls.certificate_refs.first() else {
        return Err((
            "InvalidCertificateRef",
            "an HTTPS listener needs a certificateRef".into(),
        ));
    };
    let kind = r.kind.as_deref().unwrap_or("Secret");
    if !r.group.as_deref().unwrap_or("").is_empty() || kind != "Secret" {
        return Err((
            "InvalidCertificateRef",
            format!("certificateRef kind {kind} is not supported (Secret only)"),
        ));
    }
    let ns = r.namespace.as_deref().unwrap_or(gateway_ns);
    if ns != gateway_ns && !granted("Gateway", gateway_ns, "Secret", ns, &r.name, &inputs.grants) {
        return Err((
            "RefNotPermitted",
            format!(
                "certificateRef to Secret {ns}/{} is not permitted by any ReferenceGrant",
                r.name
            ),
        ));
    }
    let Some(secret) = inputs
        .secrets
        .iter()
        .find(|s| ns_of(&s.metadata) == ns && name_of(&s.metadata) == r.name)
    else {
        return Err((
            "InvalidCertificateRef",
            format!("Secret {ns}/{} of type kubernetes.io/tls not found", r.name),
        ));
    };
    certified_key(secret).map_err(|why| {
        (
            "InvalidCertificateRef",
            format!("Secret {ns}/{}: {why}", r.name),
        )
    })
}

/// A `kubernetes.io/tls` Secret as a rustls signing certificate.
pub fn certified_key(secret: &Secret) -> Result<Arc<CertifiedKey>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let data = secret.data.as_ref();
    let field = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice());
    let (Some(crt), Some(key)) = (field("tls.crt"), field("tls.key")) else {
        return Err("tls.crt and tls.key are required".into());
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("tls.key: {e}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("tls.key: {e}"))?;
    let certified = CertifiedKey::new(chain, signer);
    certified
        .keys_match()
        .map_err(|e| format!("tls.key does not match tls.crt: {e}"))?;
    Ok(Arc::new(certified))
}

/// The `appProtocol` of a Service port spoken to in HTTP/2 with prior knowledge (KEP-3726).
pub const H2C: &str = "kubernetes.io/h2c";

/// What an EndpointSlice endpoint's conditions make of it.
#[derive(Debug, PartialEq)]
pub enum EndpointState {
    /// Ready: takes new requests.
    Ready,
    /// Terminating but still serving: takes requests only when nothing is Ready.
    Draining,
    Out,
}

/// An endpoint's state from its conditions (an unset `ready` is ready, as the API says;
/// an unset `serving` is `ready`).
pub fn endpoint_state(
    c: Option<&k8s_openapi::api::discovery::v1::EndpointConditions>,
) -> EndpointState {
    let ready = c.and_then(|c| c.ready).unwrap_or(true);
    let serving = c.and_then(|c| c.serving).unwrap_or(ready);
    let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
    match (ready, serving, terminating) {
        (true, _, _) => EndpointState::Ready,
        (false, true, true) => EndpointState::Draining,
        _ => EndpointState::Out,
    }
}

/// A backendRef's ready endpoints, or ResolvedRefs' reason and message.
pub(crate) fn resolve_backend(
    route_ns: &str,
    route_kind: RouteKind,
    b: &BackendRef,
    inputs: &Inputs<'_>,
) -> Result<Upstream, (&'static str, String)> {
    let group = b.group.as_deref().unwrap_or("");
    let kind = b.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        return Err((
            "InvalidKind",
            format!("backendRef kind {group}/{kind} is not supported (Service only)"),
        ));
    }
    let ns = b.namespace.as_deref().unwrap_or(route_ns);
    if ns != route_ns
        && !granted(
            route_kind.name(),
            route_ns,
            "Service",
            ns,
            &b.name,
            &inputs.grants,
        )
    {
        return Err((
            "RefNotPermitted",
            format!(
                "backendRef to Service {ns}/{} is not permitted by any ReferenceGrant",
                b.name
            ),
        ));
    }
    let Some(service) = inputs
        .services
        .iter()
        .find(|s| ns_of(&s.metadata) == ns && name_of(&s.metadata) == b.name)
    else {
        return Err((
            "BackendNotFound",
            format!("Service {ns}/{} not found", b.name),
        ));
    };
    let Some(port) = b.port else {
        return Err((
            "UnsupportedValue",
            "backendRef to a Service needs a port".into(),
        ));
    };
    let Some(svc_port) = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ps| ps.iter().find(|p| p.port == port))
    else {
        return Err((
            "BackendNotFound",
            format!("Service {ns}/{} has no port {port}", b.name),
        ));
    };
    let port_name = svc_port.name.clone().unwrap_or_default();
    let mut endpoints = Vec::new();
    let mut draining = Vec::new();
    for slice in &inputs.slices {
        if ns_of(&slice.metadata) != ns
            || slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .map(String::as_str)
                != Some(b.name.as_str())
        {
            continue;
        }
        let Some(target) = slice.ports.iter().flatten().find_map(|p| {
            (p.name.clone().unwrap_or_default() == port_name
                && p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                .then_some(p.port)
                .flatten()
        }) else {
            continue;
        };
        let Ok(target) = u16::try_from(target) else {
            continue;
        };
        for ep in &slice.endpoints {
            let list = match endpoint_state(ep.conditions.as_ref()) {
                EndpointState::Ready => &mut endpoints,
                EndpointState::Draining => &mut draining,
                EndpointState::Out => continue,
            };
            for a in &ep.addresses {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    let addr = SocketAddr::new(ip, target);
                    if !list.contains(&addr) {
                        list.push(addr);
                    }
                }
            }
        }
    }
    // With no ready endpoint left, terminating ones still serving take the traffic until
    // they stop (as kube-proxy does, KEP-1669), rather than every request failing while a
    // rollout replaces the last pods.
    if endpoints.is_empty() {
        endpoints = draining;
    }
    endpoints.sort();
    let mut upstream = Upstream::new(format!("{ns}/{}:{port}", b.name), endpoints);
    // gRPC is HTTP/2 end to end: a GRPCRoute's backends are spoken to in h2c whatever
    // the port's appProtocol says.
    upstream.h2c = route_kind == RouteKind::Grpc || svc_port.app_protocol.as_deref() == Some(H2C);
    Ok(upstream)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
