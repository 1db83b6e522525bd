//! kube-aggregator inside skiff: every served group-version is listed as a Local
//! APIService, and an APIService that names a Service is proxied to it, with its
//! availability checked and its discovery merged into the server's.
//!
//! `register` decides the Local APIServices (built-in at start, CRDs as they come and go);
//! `status` decides the `Available` condition (pure); `controller` runs both and keeps the
//! routing table in step with the stored APIServices; `proxy` forwards requests; `client`
//! is the HTTPS client; `discovery` merges remote group-versions into discovery. The
//! OpenAPI v3 documents of remote group-versions are fetched with each availability check
//! and listed in `/openapi/v3` (upstream's apiservice-openapi controller).

mod client;
mod controller;
pub mod discovery;
mod proxy;
pub mod register;
pub mod status;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;

use crate::error::ApiError;

pub use controller::run;
pub use proxy::forward;

/// What went wrong in the aggregator's own work (requests it proxies answer with the
/// backend's response, or upstream's plain-text errors, not with these).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An APIService's TLS settings cannot be used (a `caBundle` with no certificate).
    #[error("{0}")]
    Tls(String),
    /// Reading or writing APIServices, Services or Endpoints failed.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// Listing or watching the stored APIServices failed.
    #[error(transparent)]
    Store(#[from] skiff_store::Error),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        Error::Api(Box::new(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One remote group-version: where its requests go and whether they may.
pub struct Route {
    /// The APIService's name (`<version>.<group>`).
    pub name: String,
    pub group: String,
    pub version: String,
    pub group_priority: i64,
    pub version_priority: i64,
    pub service: status::ServiceRef,
    /// The `Available` condition: requests are refused with 503 until it is True, as
    /// upstream's proxy does. Read from the stored APIService, and set by the checker just
    /// before it writes a new condition, so a client that saw the condition True is never
    /// refused for a table not yet rebuilt.
    available: AtomicBool,
    trust: client::Trust,
    /// The client requests are proxied with, or why none can be built (answered with 500).
    client: std::result::Result<client::Client, String>,
    /// The availability probe's client: upstream never verifies the backend for it.
    probe: std::result::Result<client::Client, String>,
    /// The client certificate both clients present.
    identity: Option<Arc<client::Identity>>,
}

impl Route {
    /// Whether requests may go to the backend.
    pub fn available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }
}

/// The aggregator's shared state: the routing table the HTTP edge consults on every
/// request, and the discovery documents of remote group-versions.
#[derive(Default)]
pub struct Aggregator {
    /// Remote routes by `group/version`, replaced whole on every APIService change.
    routes: RwLock<Arc<HashMap<String, Arc<Route>>>>,
    /// How many remote routes there are: with none, a request costs one atomic load.
    remote: AtomicUsize,
    /// The APIResourceList each remote APIService last answered, by APIService name; kept
    /// while the backend is down, so discovery can say Stale rather than forget it.
    discovery: Mutex<HashMap<String, Value>>,
    /// Spreads requests over a Service's endpoints.
    pick: AtomicUsize,
    /// The OpenAPI v3 document each remote APIService last answered, with its hash, by
    /// APIService name.
    openapi: Mutex<HashMap<String, (String, Arc<Value>)>>,
    /// The client certificate presented to backends (the front-proxy client).
    identity: RwLock<Option<Arc<client::Identity>>>,
    /// The APIServices the table was last built from (held while building, so builds do
    /// not interleave).
    services: Mutex<Vec<Value>>,
}

impl Aggregator {
    /// The remote route serving `path` (`/apis/<group>/<version>` and below), if any.
    pub fn route(&self, path: &str) -> Option<Arc<Route>> {
        if self.remote.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let rest = path.strip_prefix("/apis/")?;
        let mut parts = rest.splitn(3, '/');
        let group = parts.next()?;
        let version = parts.next().filter(|v| !v.is_empty())?;
        let key = &rest[..group.len() + 1 + version.len()];
        self.routes().get(key).cloned()
    }

    /// Every remote route, highest group priority first, then by name.
    pub fn remote_routes(&self) -> Vec<Arc<Route>> {
        let mut all: Vec<Arc<Route>> = self.routes().values().cloned().collect();
        all.sort_by(|a, b| {
            b.group_priority
                .cmp(&a.group_priority)
                .then_with(|| a.group.cmp(&b.group))
                .then_with(|| b.version_priority.cmp(&a.version_priority))
                .then_with(|| {
                    crate::crd::version_priority(&a.version)
                        .cmp(&crate::crd::version_priority(&b.version))
                })
        });
        all
    }

    fn routes(&self) -> Arc<HashMap<String, Arc<Route>>> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Makes every backend connection present this client certificate (PEM chain and
    /// key), as upstream's proxy presents `--proxy-client-cert-file`: extension servers
    /// believe `X-Remote-User` only from a client whose certificate the
    /// `requestheader-client-ca-file` signed.
    pub fn set_client_identity(&self, cert_pem: &str, key_pem: &str) -> Result<()> {
        let identity = Arc::new(client::Identity::from_pem(cert_pem, key_pem)?);
        *self.identity.write().unwrap_or_else(|p| p.into_inner()) = Some(identity);
        let services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        self.build_routes(&services);
        Ok(())
    }

    /// Rebuilds the routing table from the stored APIServices, keeping the clients (and
    /// their pooled connections) of routes whose backend identity did not change.
    fn set_routes(&self, api_services: &[Value]) {
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        *services = api_services.to_vec();
        self.build_routes(&services);
    }

    fn build_routes(&self, api_services: &[Value]) {
        let identity = self
            .identity
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let old = self.routes();
        let mut next: HashMap<String, Arc<Route>> = HashMap::new();
        for obj in api_services {
            let Some(service) = status::ServiceRef::of(obj) else {
                continue;
            };
            let spec = &obj["spec"];
            let group = spec["group"].as_str().unwrap_or("").to_owned();
            let version = spec["version"].as_str().unwrap_or("").to_owned();
            let name = crate::object::name(obj).unwrap_or("").to_owned();
            // `v1.` with a Service would take over `/api`: not supported, so kept Local.
            if group.is_empty() || version.is_empty() {
                continue;
            }
            let trust = trust_of(spec);
            let key = format!("{group}/{version}");
            let same_identity = |r: &Route| match (&r.identity, &identity) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            let (client, probe) = match old.get(&key) {
                Some(r) if r.service == service && r.trust == trust && same_identity(r) => {
                    (r.client.clone(), r.probe.clone())
                }
                _ => {
                    let server_name = service.server_name();
                    let id = identity.as_deref();
                    let client = client::build(&trust, &server_name, id).map_err(|e| e.to_string());
                    let probe = client::build(&client::Trust::Insecure, &server_name, id)
                        .map_err(|e| e.to_string());
                    (client, probe)
                }
            };
            next.insert(
                key,
                Arc::new(Route {
                    name,
                    group,
                    version,
                    group_priority: spec["groupPriorityMinimum"].as_i64().unwrap_or(0),
                    version_priority: spec["versionPriority"].as_i64().unwrap_or(0),
                    service,
                    available: AtomicBool::new(status::is_available(obj)),
                    trust,
                    client,
                    probe,
                    identity: identity.clone(),
                }),
            );
        }
        let names: std::collections::HashSet<&str> =
            next.values().map(|r| r.name.as_str()).collect();
        self.discovery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| names.contains(name.as_str()));
        self.openapi
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| names.contains(name.as_str()));
        self.remote.store(next.len(), Ordering::Relaxed);
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }

    fn set_discovery(&self, name: &str, list: Value) {
        self.discovery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), list);
    }

    /// Keeps `doc` as the OpenAPI v3 document of the APIService `name`, under a hash of
    /// its bytes (so the URL `/openapi/v3` lists changes when the document does).
    fn set_openapi(&self, name: &str, body: &[u8], doc: Value) {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut hasher);
        let hash = format!("{:016X}", hasher.finish());
        let mut docs = self.openapi.lock().unwrap_or_else(|p| p.into_inner());
        if docs.get(name).is_none_or(|(h, _)| *h != hash) {
            docs.insert(name.to_owned(), (hash, Arc::new(doc)));
        }
    }

    fn forget_openapi(&self, name: &str) {
        self.openapi
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// Adds to `/openapi/v3`'s `paths` every Available remote group-version whose backend
    /// has served its document.
    pub fn extend_openapi_root(&self, root: &mut Value) {
        if self.remote.load(Ordering::Relaxed) == 0 {
            return;
        }
        let docs = self.openapi.lock().unwrap_or_else(|p| p.into_inner());
        for route in self.routes().values() {
            let Some((hash, _)) = docs.get(&route.name).filter(|_| route.available()) else {
                continue;
            };
            let path = format!("apis/{}/{}", route.group, route.version);
            let url = format!("/openapi/v3/{path}?hash={hash}");
            root["paths"][path] = serde_json::json!({ "serverRelativeURL": url });
        }
    }

    /// The OpenAPI v3 document at `path` (`apis/<group>/<version>`) when that
    /// group-version is remote: `Some(None)` when its backend has none to give (or is not
    /// available), `None` when the group-version is not remote.
    pub fn openapi_document(&self, path: &str) -> Option<Option<Arc<Value>>> {
        let route = self.route(&format!("/{path}"))?;
        if format!("apis/{}/{}", route.group, route.version) != path {
            return None;
        }
        if !route.available() {
            return Some(None);
        }
        let docs = self.openapi.lock().unwrap_or_else(|p| p.into_inner());
        Some(docs.get(&route.name).map(|(_, doc)| doc.clone()))
    }

    fn cached_discovery(&self, name: &str) -> Option<Value> {
        self.discovery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}

/// How an APIService's backend is verified: skip, its `caBundle` (base64 in JSON), or the
/// system roots.
fn trust_of(spec: &Value) -> client::Trust {
    use base64::Engine;
    if spec["insecureSkipTLSVerify"] == true {
        return client::Trust::Insecure;
    }
    match spec["caBundle"].as_str().filter(|s| !s.is_empty()) {
        Some(b64) => client::Trust::Bundle(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default(),
        ),
        None => client::Trust::System,
    }
}
