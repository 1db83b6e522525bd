//! The two loops over the whole Gateway API state, on the reconcile harness (one key
//! each, triggered by any change of the kinds they read):
//!
//! - [`run_data_plane`], on every node: rebuilds the routing table and swaps it into the
//!   node's [`DataPlane`] (EndpointSlice changes reach traffic within the watch latency);
//! - [`run_status`], once per cluster (in `skiff server`): writes the conditions of skiff's
//!   GatewayClasses, their Gateways and the HTTPRoutes attached to them, only when they
//!   differ from what is stored.

use crate::api::{Gateway, GatewayClass, HttpRoute, ReferenceGrant};
use crate::config::{self, Inputs};
use crate::install::{BUNDLE_VERSION, CONTROLLER_NAME};
use crate::proxy::DataPlane;
use crate::status;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use serde_json::{json, Value};
use skiff_reconcile::{Harness, ObjectKey, Outcome};
use std::net::IpAddr;
use std::sync::Arc;

/// The caches both loops read.
struct Caches {
    classes: Store<GatewayClass>,
    gateways: Store<Gateway>,
    routes: Store<HttpRoute>,
    services: Store<Service>,
    grants: Store<ReferenceGrant>,
    namespaces: Store<Namespace>,
    /// TLS Secrets only (a field selector): the rest are none of the gateway's business.
    secrets: Store<Secret>,
    ingresses: Store<Ingress>,
    ingress_classes: Store<IngressClass>,
}

/// Snapshots of the caches, so [`Inputs`] can borrow them.
struct Snapshot {
    classes: Vec<Arc<GatewayClass>>,
    gateways: Vec<Arc<Gateway>>,
    routes: Vec<Arc<HttpRoute>>,
    services: Vec<Arc<Service>>,
    grants: Vec<Arc<ReferenceGrant>>,
    namespaces: Vec<Arc<Namespace>>,
    secrets: Vec<Arc<Secret>>,
    ingresses: Vec<Arc<Ingress>>,
    ingress_classes: Vec<Arc<IngressClass>>,
    slices: Vec<Arc<EndpointSlice>>,
}

impl Caches {
    fn new<K>(c: &mut skiff_reconcile::Controller<K>) -> Caches {
        Caches {
            classes: c.cache(),
            gateways: c.cache(),
            routes: c.cache(),
            services: c.cache(),
            grants: c.cache(),
            namespaces: c.cache(),
            ingresses: c.cache(),
            ingress_classes: c.cache(),
            secrets: c.cache_with(
                kube::runtime::watcher::Config::default().fields("type=kubernetes.io/tls"),
            ),
        }
    }

    fn snapshot(&self, slices: Vec<Arc<EndpointSlice>>) -> Snapshot {
        Snapshot {
            classes: self.classes.state(),
            gateways: self.gateways.state(),
            routes: self.routes.state(),
            services: self.services.state(),
            grants: self.grants.state(),
            namespaces: self.namespaces.state(),
            secrets: self.secrets.state(),
            ingresses: self.ingresses.state(),
            ingress_classes: self.ingress_classes.state(),
            slices,
        }
    }
}

impl Snapshot {
    fn inputs(&self, node_addresses: Vec<String>) -> Inputs<'_> {
        Inputs {
            controller_name: CONTROLLER_NAME,
            classes: self.classes.iter().map(|a| a.as_ref()).collect(),
            gateways: self.gateways.iter().map(|a| a.as_ref()).collect(),
            routes: self.routes.iter().map(|a| a.as_ref()).collect(),
            services: self.services.iter().map(|a| a.as_ref()).collect(),
            slices: self.slices.iter().map(|a| a.as_ref()).collect(),
            grants: self.grants.iter().map(|a| a.as_ref()).collect(),
            namespaces: self.namespaces.iter().map(|a| a.as_ref()).collect(),
            secrets: self.secrets.iter().map(|a| a.as_ref()).collect(),
            ingresses: self.ingresses.iter().map(|a| a.as_ref()).collect(),
            ingress_classes: self.ingress_classes.iter().map(|a| a.as_ref()).collect(),
            node_addresses,
        }
    }
}

fn with_triggers<K>(c: skiff_reconcile::Controller<K>) -> skiff_reconcile::Controller<K> {
    c.triggers::<GatewayClass>()
        .triggers::<Gateway>()
        .triggers::<HttpRoute>()
        .triggers::<Service>()
        .triggers::<ReferenceGrant>()
        .triggers::<Namespace>()
        .triggers::<Secret>()
        .triggers::<Ingress>()
        .triggers::<IngressClass>()
}

struct PlaneCtx {
    caches: Caches,
    slices: Store<EndpointSlice>,
    plane: Arc<DataPlane>,
}

/// Runs this node's data plane until the API goes away: listeners on `bind`, the routing
/// table rebuilt on every change.
pub async fn run_data_plane(
    client: kube::Client,
    bind: IpAddr,
    metrics: crate::metrics::GatewayMetrics,
) {
    let key = ObjectKey::named("routing-table");
    let mut c = Harness::new("gateway-data-plane", client).keys().key(key);
    let caches = Caches::new(&mut c);
    let slices = c.cache::<EndpointSlice>();
    let c = with_triggers(c).triggers::<EndpointSlice>();
    let ctx = Arc::new(PlaneCtx {
        caches,
        slices,
        plane: DataPlane::with_metrics(bind, metrics),
    });
    c.run_keys(reconcile_plane, ctx).await;
}

#[derive(Debug, thiserror::Error)]
enum PlaneError {
    #[error("ports not bound: {0}")]
    Bind(String),
}

async fn reconcile_plane(_: ObjectKey, ctx: Arc<PlaneCtx>) -> Result<Outcome, PlaneError> {
    let snapshot = ctx.caches.snapshot(ctx.slices.state());
    let (table, _) = config::build(&snapshot.inputs(Vec::new()));
    let ports: Vec<u16> = table.ports.keys().copied().collect();
    let failed = ctx.plane.swap(table).await;
    tracing::debug!(?ports, "gateway routing table swapped");
    if failed.is_empty() {
        Ok(Outcome::Done)
    } else {
        let list: Vec<String> = failed.iter().map(|(p, e)| format!("{p}: {e}")).collect();
        Err(PlaneError::Bind(list.join("; ")))
    }
}

struct StatusCtx {
    caches: Caches,
    nodes: Store<Node>,
    crds: Store<CustomResourceDefinition>,
    client: kube::Client,
}

/// Runs the status writer until the API goes away.
pub async fn run_status(client: kube::Client) {
    let key = ObjectKey::named("gateway-status");
    let mut c = Harness::new("gateway-controller", client.clone())
        .keys()
        .key(key);
    let caches = Caches::new(&mut c);
    let nodes = c.cache::<Node>();
    let crds = c.cache::<CustomResourceDefinition>();
    let c = with_triggers(c)
        .triggers::<Node>()
        .triggers::<CustomResourceDefinition>();
    let ctx = Arc::new(StatusCtx {
        caches,
        nodes,
        crds,
        client,
    });
    c.run_keys(reconcile_status, ctx).await;
}

/// Every node's InternalIP (ExternalIP when it has none), sorted.
pub fn node_addresses(nodes: &[&Node]) -> Vec<String> {
    let mut out: Vec<String> = nodes
        .iter()
        .filter_map(|n| {
            let addrs = n.status.as_ref()?.addresses.as_ref()?;
            addrs
                .iter()
                .find(|a| a.type_ == "InternalIP")
                .or_else(|| addrs.iter().find(|a| a.type_ == "ExternalIP"))
                .map(|a| a.address.clone())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn patch_status<K>(api: Api<K>, name: &str, status: Value) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing to report on.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn reconcile_status(_: ObjectKey, ctx: Arc<StatusCtx>) -> Result<Outcome, kube::Error> {
    let snapshot = ctx.caches.snapshot(Vec::new());
    let nodes = ctx.nodes.state();
    let addresses = node_addresses(&nodes.iter().map(|n| n.as_ref()).collect::<Vec<_>>());
    let (_, report) = config::build(&snapshot.inputs(addresses.clone()));
    let now = now();
    let bundle = ctx
        .crds
        .state()
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("gateways.gateway.networking.k8s.io"))
        .and_then(|c| {
            c.metadata
                .annotations
                .as_ref()?
                .get(BUNDLE_VERSION)
                .cloned()
        });
    let supported = status::supported_version(bundle.as_deref());
    let mut writes = 0;
    for class in &snapshot.classes {
        let name = class.metadata.name.clone().unwrap_or_default();
        if !report.classes.contains(&name) {
            continue;
        }
        let want = status::gateway_class(
            &class.status,
            class.metadata.generation.unwrap_or(0),
            &supported,
            &now,
        );
        if want != class.status {
            patch_status(Api::<GatewayClass>::all(ctx.client.clone()), &name, want).await?;
            writes += 1;
        }
    }
    for g in &report.gateways {
        let Some(current) = snapshot.gateways.iter().find(|o| {
            o.metadata.namespace.as_deref() == Some(&g.namespace)
                && o.metadata.name.as_deref() == Some(&g.name)
        }) else {
            continue;
        };
        let want = status::gateway(&current.status, g, &now);
        if want != current.status {
            patch_status(
                Api::<Gateway>::namespaced(ctx.client.clone(), &g.namespace),
                &g.name,
                want,
            )
            .await?;
            writes += 1;
        }
    }
    for route in &snapshot.routes {
        let ns = route.metadata.namespace.clone().unwrap_or_default();
        let name = route.metadata.name.clone().unwrap_or_default();
        let empty = config::RouteReport {
            namespace: ns.clone(),
            name: name.clone(),
            generation: route.metadata.generation.unwrap_or(0),
            parents: Vec::new(),
        };
        let r = report
            .routes
            .iter()
            .find(|r| r.namespace == ns && r.name == name)
            .unwrap_or(&empty);
        let want = status::route(&route.status, r, CONTROLLER_NAME, &now);
        let current_parents = route.status.get("parents").cloned().unwrap_or(json!([]));
        if want["parents"] != current_parents {
            patch_status(
                Api::<HttpRoute>::namespaced(ctx.client.clone(), &ns),
                &name,
                want,
            )
            .await?;
            writes += 1;
        }
    }
    // Ingresses: status.loadBalancer names the nodes, as k3s's Traefik does.
    let want_ips: Vec<Value> = addresses.iter().map(|ip| json!({"ip": ip})).collect();
    for ing in &snapshot.ingresses {
        let ns = ing.metadata.namespace.clone().unwrap_or_default();
        let name = ing.metadata.name.clone().unwrap_or_default();
        let ours = report.ingresses.iter().any(|(n, m)| *n == ns && *m == name);
        let current = ing
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|i| serde_json::to_value(i).unwrap_or_default())
            .unwrap_or(json!([]));
        let want = if ours {
            json!(want_ips)
        } else {
            current.clone()
        };
        if want != current {
            let api = Api::<Ingress>::namespaced(ctx.client.clone(), &ns);
            patch_status(api, &name, json!({"loadBalancer": {"ingress": want}})).await?;
            writes += 1;
        }
    }
    if writes > 0 {
        tracing::debug!(writes, "gateway status written");
    }
    Ok(Outcome::Done)
}
