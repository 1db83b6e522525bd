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
pub mod endpointreconciler;
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

    /// The `default/kubernetes` Service every cluster has (10.96.0.1:443), and its Endpoints
    /// (see [`endpointreconciler`]): the address of every live server, this one's
    /// (`identity.address`, where pods reach it) included; a server pods cannot reach (it
    /// listens on loopback only) lists none of its own, as upstream with no reachable
    /// apiserver. [`Api::keep_kubernetes_endpoints`] keeps them so afterwards.
    pub async fn ensure_kubernetes_service(
        &self,
        identity: &endpointreconciler::Identity,
    ) -> Result<(), ApiError> {
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
        let services = self.target("", "v1", "services", "default", None)?;
        if self
            .get(&request::Target {
                name: Some("kubernetes".into()),
                ..services.clone()
            })
            .is_err()
        {
            match self.create(&services, &params, service).await {
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.reconcile_kubernetes_endpoints(identity, chrono::Utc::now())
            .await?;
        // Upstream's bootstrap controller is what keeps this Service and its endpoints.
        self.health.mark("bootstrap-controller");
        Ok(())
    }

    /// Renews this server's identity Lease and reconciles the `kubernetes` Endpoints every
    /// [`endpointreconciler::Identity::interval`], for as long as the server runs; a failed
    /// round (the datastore out of reach) is logged and tried again on the next tick.
    pub async fn keep_kubernetes_endpoints(
        self: Arc<Self>,
        identity: endpointreconciler::Identity,
    ) {
        let mut tick = tokio::time::interval(identity.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = self
                .reconcile_kubernetes_endpoints(&identity, chrono::Utc::now())
                .await
            {
                tracing::warn!(error = %e, "reconciling the kubernetes Service's endpoints");
            }
        }
    }

    /// One round: this server's Lease renewed, the live servers' addresses written to the
    /// Endpoints when they differ, expired Leases deleted.
    async fn reconcile_kubernetes_endpoints(
        &self,
        identity: &endpointreconciler::Identity,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ApiError> {
        let params = request::Params::default();
        let leases = self.target("coordination.k8s.io", "v1", "leases", "kube-system", None)?;
        let own = request::Target {
            name: Some(identity.lease_name.clone()),
            ..leases.clone()
        };
        let lease = identity.lease(now);
        match self.get(&own) {
            Ok(_) => {
                self.update_with(&own, &params, None, |old| {
                    let mut next = lease.clone();
                    next["metadata"] = old["metadata"].clone();
                    next["metadata"]["labels"] = lease["metadata"]["labels"].clone();
                    next["metadata"]["annotations"] = lease["metadata"]["annotations"].clone();
                    Ok(next)
                })
                .await?;
            }
            Err(ApiError::NotFound { .. }) => {
                match self.create(&leases, &params, lease.clone()).await {
                    Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        let mut list_params = request::Params::default();
        list_params.query.insert(
            "labelSelector".into(),
            format!(
                "{}={}",
                endpointreconciler::IDENTITY_LABEL,
                endpointreconciler::IDENTITY_VALUE
            ),
        );
        let listed = self.list(&leases, &list_params)?;
        let views: Vec<_> = listed["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(endpointreconciler::LeaseView::of)
                    .collect()
            })
            .unwrap_or_default();
        let plan = endpointreconciler::plan(&views, identity, now);
        self.write_kubernetes_endpoints(endpointreconciler::subsets(&plan.addresses))
            .await?;
        for name in plan.expired {
            let t = request::Target {
                name: Some(name),
                ..leases.clone()
            };
            match self.delete(&t, &options::DeleteOptions::default()).await {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `default/kubernetes` Endpoints with `subsets` (`Null`: none), written only when
    /// they differ.
    async fn write_kubernetes_endpoints(&self, subsets: Value) -> Result<(), ApiError> {
        let params = request::Params::default();
        let collection = self.target("", "v1", "endpoints", "default", None)?;
        let t = request::Target {
            name: Some("kubernetes".into()),
            ..collection.clone()
        };
        let current = match self.get(&t) {
            Ok(current) => Some(current),
            Err(ApiError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let Some(current) = current else {
            let mut endpoints = json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default"},
            });
            if !subsets.is_null() {
                endpoints["subsets"] = subsets;
            }
            return match self.create(&collection, &params, endpoints).await {
                // Another server wrote it first: the next round compares.
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e),
            };
        };
        if current["subsets"] == subsets {
            return Ok(());
        }
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

    /// The target of a built-in resource in `namespace`.
    fn target(
        &self,
        group: &str,
        version: &str,
        resource: &str,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<request::Target, ApiError> {
        Ok(request::Target {
            resource: self
                .registry
                .get(group, version, resource)
                .ok_or(ApiError::NoRoute)?,
            namespace: Some(namespace.into()),
            name: name.map(String::from),
            subresource: None,
        })
    }
}
