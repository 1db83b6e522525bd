//! The Kubernetes REST API over a [`skiff_store::Store`]: discovery, OpenAPI, the generic
//! verbs (driven by one table of resources), watch, patch, tables and validation.
//!
//! Layering: `http` parses and authenticates requests and maps errors to `Status` once;
//! `handler` implements the verbs on wire-form objects; `admission` holds the per-kind rules
//! (defaulting, validation, allocation) applied between decoding and storing.

pub mod admission;
pub mod aggregator;
mod apply;
pub mod authn;
pub mod authz;
pub mod certificates;
mod convert;
pub mod crd;
pub mod discovery;
pub mod encryption;
pub mod error;
mod eviction;
mod follow;
pub mod handler;
pub mod health;
pub mod http;
pub mod managed;
pub mod metrics;
pub mod metricsapi;
mod namespace;
pub mod negotiate;
pub mod nodeclient;
mod nodeproxy;
pub mod object;
pub mod openapi;
pub mod options;
pub mod plugins;
mod podlogs;
pub mod policy;
pub mod request;
pub mod resources;
pub mod serve;
mod streaming;
mod strict;
mod subresources;
pub mod table;
pub mod watch;
pub mod webhook;

use std::sync::Arc;

use serde_json::{json, Value};
use skiff_store::Store;

pub use error::ApiError;
pub use handler::Api;
pub use http::{router, Server};

/// The Kubernetes release whose API this server speaks.
pub const GIT_VERSION: &str = "v1.33.0-skiff";
/// Reported as the build's commit and used as the OpenAPI document hash.
pub const VERSION_HASH: &str = "0000000000000000000000000000000000000001";

/// Work the API needs done beside request handling; see [`Api::run_background`].
pub struct Background {
    queue: tokio::sync::mpsc::UnboundedReceiver<String>,
}

/// Namespaces every cluster has.
pub const DEFAULT_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

impl Api {
    /// Builds the API over `store` with the built-in resources.
    ///
    /// Returns the receiving end of the namespace-termination queue, for
    /// [`Api::run_background`].
    pub fn new(store: Arc<dyn Store>) -> Result<(Api, Background), ApiError> {
        let registry = resources::Registry::new(resources::builtins());
        let admission = admission::Admission::load(store.as_ref(), &registry)?;
        let (terminating, queue) = tokio::sync::mpsc::unbounded_channel();
        let api = Api {
            store,
            registry,
            admission,
            webhooks: Default::default(),
            policies: Default::default(),
            health: Default::default(),
            terminating,
            aggregator: Default::default(),
            authn: Default::default(),
            rbac: Default::default(),
            metrics: Default::default(),
            telemetry: Default::default(),
            default_tolerations: Default::default(),
            service_accounts: Default::default(),
            nodes: Default::default(),
        };
        api.health.mark("generic-apiserver-start-informers");
        crd::load(&api)?;
        api.health.mark("start-apiextensions-informers");
        api.health.mark("crd-informer-synced");
        policy::load(&api)?;
        webhook::load(&api)?;
        authz::load(&api)?;
        api.health.mark("start-apiserver-admission-initializer");
        api.health
            .mark("start-kube-apiserver-admission-initializer");
        api.health.mark("informer-sync");
        Ok((api, Background { queue }))
    }

    /// Runs the API's own background work (namespace termination, event expiry) until the API is
    /// dropped, first resuming namespaces a previous run left terminating.
    pub async fn run_background(self: Arc<Self>, background: Background) {
        if let Some(namespaces) = self.registry.get("", "v1", "namespaces") {
            if let Ok(list) = self.store.list(&namespaces.key(None, None), None, None) {
                for kv in list.items {
                    if let Ok(ns) = handler::materialize(&kv) {
                        if object::is_deleting(&ns) {
                            let name = object::name(&ns).unwrap_or_default().to_owned();
                            let _ = self.terminating.send(name);
                        }
                    }
                }
            }
        }
        tokio::spawn(metrics::count_objects(Arc::downgrade(&self)));
        tokio::spawn(crd::run(self.clone()));
        self.health.mark("start-apiextensions-controllers");
        tokio::spawn(policy::run(self.clone()));
        tokio::spawn(webhook::run(self.clone()));
        tokio::spawn(aggregator::run(self.clone()));
        tokio::spawn(authz::run(self.clone()));
        metricsapi::spawn(self.clone());
        for hook in [
            "start-kube-aggregator-informers",
            "apiservice-registration-controller",
            "apiservice-status-available-controller",
            // The same loop fetches remote OpenAPI v3 documents with each check.
            "apiservice-openapi-controller",
        ] {
            self.health.mark(hook);
        }
        namespace::run(self, background.queue).await;
    }

    /// Creates the default namespaces if they do not exist yet.
    pub async fn bootstrap(&self) -> Result<(), ApiError> {
        let namespaces = self
            .registry
            .get("", "v1", "namespaces")
            .ok_or(ApiError::NoRoute)?;
        let target = request::Target {
            resource: namespaces,
            namespace: None,
            name: None,
            subresource: None,
        };
        for ns in DEFAULT_NAMESPACES {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            self.create_if_absent(&target, obj).await?;
        }
        self.health.mark("start-system-namespaces-controller");
        // Upstream's system priority classes, which critical pods name.
        let classes = request::Target {
            resource: self
                .registry
                .get("scheduling.k8s.io", "v1", "priorityclasses")
                .ok_or(ApiError::NoRoute)?,
            namespace: None,
            name: None,
            subresource: None,
        };
        for class in skiff_apimachinery::priority::SYSTEM_CLASSES {
            self.create_if_absent(&classes, class.object()).await?;
        }
        self.health
            .mark("scheduling/bootstrap-system-priority-classes");
        authz::bootstrap(self).await
    }

    /// Creates `obj` unless an object of its name exists.
    async fn create_if_absent(&self, t: &request::Target, obj: Value) -> Result<(), ApiError> {
        match self.create(t, &request::Params::default(), obj).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `kube-system/extension-apiserver-authentication`: how extension API servers (behind
    /// APIServices) authenticate clients and the aggregator's proxied requests, as
    /// upstream's cluster-authentication-info controller publishes it.
    pub async fn publish_authentication_info(&self, client_ca_pem: &str) -> Result<(), ApiError> {
        let t = request::Target {
            resource: self
                .registry
                .get("", "v1", "configmaps")
                .ok_or(ApiError::NoRoute)?,
            namespace: Some("kube-system".into()),
            name: Some("extension-apiserver-authentication".into()),
            subresource: None,
        };
        let data = json!({
            "client-ca-file": client_ca_pem,
            "requestheader-client-ca-file": client_ca_pem,
            // The aggregator's client certificate (serve.rs), signed by the same CA.
            "requestheader-allowed-names": json!([serve::FRONT_PROXY_CLIENT]).to_string(),
            "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
            "requestheader-group-headers": "[\"X-Remote-Group\"]",
            "requestheader-username-headers": "[\"X-Remote-User\"]",
        });
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
            "data": data});
        let params = request::Params::default();
        match self.get(&t) {
            Ok(_) => {
                self.update_with(&t, &params, None, |old| {
                    let mut new = old.clone();
                    new["data"] = data.clone();
                    Ok(new)
                })
                .await?;
            }
            Err(ApiError::NotFound { .. }) => {
                let collection = request::Target { name: None, ..t };
                self.create_if_absent(&collection, obj).await?;
            }
            Err(e) => return Err(e),
        }
        self.health
            .mark("start-cluster-authentication-info-controller");
        Ok(())
    }

    /// The `default/kubernetes` Service every cluster has (10.96.0.1:443), and its Endpoints:
    /// `endpoint` is where pods reach this API server, `None` when they cannot (it listens on
    /// loopback only), in which case the Service has no endpoints, as upstream would with no
    /// reachable apiserver.
    pub async fn ensure_kubernetes_service(
        &self,
        endpoint: Option<std::net::SocketAddr>,
    ) -> Result<(), ApiError> {
        let target = |resource: &str, name: Option<&str>| -> Result<request::Target, ApiError> {
            Ok(request::Target {
                resource: self
                    .registry
                    .get("", "v1", resource)
                    .ok_or(ApiError::NoRoute)?,
                namespace: Some("default".into()),
                name: name.map(String::from),
                subresource: None,
            })
        };
        let params = request::Params::default();
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": skiff_apimachinery::network::ClusterNetwork::default()
                         .kubernetes_service_ip().to_string(),
                     "type": "ClusterIP", "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
        });
        // Looked up first: creating it again would fail on its (taken) IP, not its name.
        if self.get(&target("services", Some("kubernetes"))?).is_err() {
            match self
                .create(&target("services", None)?, &params, service)
                .await
            {
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let subsets = match endpoint {
            Some(a) => json!([{
                "addresses": [{"ip": a.ip().to_string()}],
                "ports": [{"name": "https", "port": a.port(), "protocol": "TCP"}],
            }]),
            None => Value::Null,
        };
        let mut endpoints = json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default"},
        });
        if !subsets.is_null() {
            endpoints["subsets"] = subsets.clone();
        }
        let result = match self
            .create(&target("endpoints", None)?, &params, endpoints)
            .await
        {
            Ok(_) => Ok(()),
            Err(ApiError::AlreadyExists { .. }) => {
                let t = target("endpoints", Some("kubernetes"))?;
                self.update_with(&t, &params, None, |old| {
                    let mut next = old.clone();
                    match next.as_object_mut() {
                        Some(o) if subsets.is_null() => {
                            o.remove("subsets");
                        }
                        Some(o) => {
                            o.insert("subsets".into(), subsets.clone());
                        }
                        None => {}
                    }
                    Ok(next)
                })
                .await
                .map(|_| ())
            }
            Err(e) => Err(e),
        };
        if result.is_ok() {
            // Upstream's bootstrap controller is what keeps this Service and its endpoints.
            self.health.mark("bootstrap-controller");
        }
        result
    }
}
