//! The two loops over the whole Gateway API state, on the reconcile harness (one key
//! each, triggered by any change of the kinds they read):
//!
//! - [`run_data_plane`], on every node: rebuilds the routing table and swaps it into the
//!   node's [`DataPlane`] (EndpointSlice changes reach traffic within the watch latency);
//! - [`run_status`], once per cluster (in `skiff server`): writes the conditions of skiff's
//!   GatewayClasses, their Gateways and the HTTPRoutes attached to them, only when they
//!   differ from what is stored.

use crate::api::{Gateway, GatewayClass, GrpcRoute, HttpRoute, ReferenceGrant};
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
    grpc_routes: Store<GrpcRoute>,
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
    grpc_routes: Vec<Arc<GrpcRoute>>,
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
            grpc_routes: c.cache(),
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
            grpc_routes: self.grpc_routes.state(),
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
    /// What the routing table depends on (every kind but Nodes), as one hash: equal
    /// fingerprints build equal tables.
    fn fingerprint(&self) -> u64 {
        use crate::fingerprint::Fingerprint;
        Fingerprint::default()
            .kind("GatewayClass", self.classes.iter().map(|a| &**a))
            .kind("Gateway", self.gateways.iter().map(|a| &**a))
            .kind("HTTPRoute", self.routes.iter().map(|a| &**a))
            .kind("GRPCRoute", self.grpc_routes.iter().map(|a| &**a))
            .kind("Service", self.services.iter().map(|a| &**a))
            .kind("ReferenceGrant", self.grants.iter().map(|a| &**a))
            .kind("Namespace", self.namespaces.iter().map(|a| &**a))
            .kind("Secret", self.secrets.iter().map(|a| &**a))
            .kind("Ingress", self.ingresses.iter().map(|a| &**a))
            .kind("IngressClass", self.ingress_classes.iter().map(|a| &**a))
            .kind("EndpointSlice", self.slices.iter().map(|a| &**a))
            .finish()
    }

    fn inputs(&self, node_addresses: Vec<String>) -> Inputs<'_> {
        Inputs {
            controller_name: CONTROLLER_NAME,
            classes: self.classes.iter().map(|a| a.as_ref()).collect(),
            gateways: self.gateways.iter().map(|a| a.as_ref()).collect(),
            routes: self.routes.iter().map(|a| a.as_ref()).collect(),
            grpc_routes: self.grpc_routes.iter().map(|a| a.as_ref()).collect(),
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
        .triggers::<GrpcRoute>()
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
    metrics: crate::metrics::GatewayMetrics,
    /// The [`Snapshot::fingerprint`] of the table served, once every port of it is bound.
    served: std::sync::Mutex<Option<u64>>,
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
        plane: DataPlane::with_metrics(bind, metrics.clone()),
        metrics,
        served: std::sync::Mutex::new(None),
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
    let fingerprint = snapshot.fingerprint();
    let served = |f: Option<u64>| *ctx.served.lock().unwrap_or_else(|e| e.into_inner()) = f;
    if *ctx.served.lock().unwrap_or_else(|e| e.into_inner()) == Some(fingerprint) {
        // A status write or bookkeeping change: the table served is already this one.
        ctx.metrics.table_build(false);
        return Ok(Outcome::Done);
    }
    let (table, _) = config::build(&snapshot.inputs(Vec::new()));
    let ports: Vec<u16> = table.ports.keys().copied().collect();
    let failed = ctx.plane.swap(table).await;
    ctx.metrics.table_build(true);
    tracing::debug!(?ports, "gateway routing table swapped");
    if failed.is_empty() {
        served(Some(fingerprint));
        Ok(Outcome::Done)
    } else {
        // Built again on the retry, which binds the ports that failed.
        served(None);
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

/// The route kinds whose status parents skiff writes.
trait RouteObject:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
    const KIND: config::RouteKind;
    fn status(&self) -> &Value;
}

impl RouteObject for HttpRoute {
    const KIND: config::RouteKind = config::RouteKind::Http;
    fn status(&self) -> &Value {
        &self.status
    }
}

impl RouteObject for GrpcRoute {
    const KIND: config::RouteKind = config::RouteKind::Grpc;
    fn status(&self) -> &Value {
        &self.status
    }
}

/// Writes the parents of every route of one kind whose status differs from what
/// `report` decided; returns how many were written.
async fn route_statuses<K: RouteObject>(
    client: &kube::Client,
    routes: &[Arc<K>],
    report: &config::Report,
    now: &str,
) -> Result<usize, kube::Error> {
    let mut writes = 0;
    for route in routes {
        let meta = route.meta();
        let ns = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let empty = config::RouteReport {
            kind: K::KIND,
            namespace: ns.clone(),
            name: name.clone(),
            generation: meta.generation.unwrap_or(0),
            parents: Vec::new(),
        };
        let r = report
            .routes
            .iter()
            .find(|r| r.kind == K::KIND && r.namespace == ns && r.name == name)
            .unwrap_or(&empty);
        let want = status::route(route.status(), r, CONTROLLER_NAME, now);
        let current_parents = route.status().get("parents").cloned().unwrap_or(json!([]));
        if want["parents"] != current_parents {
            patch_status(Api::<K>::namespaced(client.clone(), &ns), &name, want).await?;
            writes += 1;
        }
    }
    Ok(writes)
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
    writes += route_statuses(&ctx.client, &snapshot.routes, &report, &now).await?;
    writes += route_statuses(&ctx.client, &snapshot.grpc_routes, &report, &now).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::{store, store::Writer};
    use kube::runtime::watcher::Event;

    fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn apply<K>(w: &mut Writer<K>, o: K)
    where
        K: kube::Resource<DynamicType = ()> + Clone,
    {
        w.apply_watcher_event(&Event::Apply(o));
    }

    /// The data-plane loop run against caches filled by hand: a status write, a
    /// `resourceVersion` bump and an annotation build nothing; a new endpoint does.
    #[tokio::test]
    async fn status_only_changes_build_no_table() {
        let (classes, mut w_classes) = store::<GatewayClass>();
        let (gateways, mut w_gateways) = store::<Gateway>();
        let (routes, mut w_routes) = store::<HttpRoute>();
        let (services, mut w_services) = store::<Service>();
        let (slices, mut w_slices) = store::<EndpointSlice>();
        let caches = Caches {
            classes,
            gateways,
            routes,
            grpc_routes: store::<GrpcRoute>().0,
            services,
            grants: store::<ReferenceGrant>().0,
            namespaces: store::<Namespace>().0,
            secrets: store::<Secret>().0,
            ingresses: store::<Ingress>().0,
            ingress_classes: store::<IngressClass>().0,
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        apply(
            &mut w_classes,
            obj(
                json!({"metadata": {"name": "skiff", "resourceVersion": "1"},
                "spec": {"controllerName": CONTROLLER_NAME}}),
            ),
        );
        let gateway = json!({"metadata": {"name": "gw", "namespace": "ns", "resourceVersion": "1"},
            "spec": {"gatewayClassName": "skiff",
                "listeners": [{"name": "h", "protocol": "HTTP", "port": port}]}});
        apply(&mut w_gateways, obj(gateway.clone()));
        let route = json!({"metadata": {"name": "r", "namespace": "ns", "resourceVersion": "1"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}]}});
        apply(&mut w_routes, obj(route.clone()));
        let service = json!({"metadata": {"name": "svc", "namespace": "ns", "resourceVersion": "1"},
            "spec": {"ports": [{"port": 80}]}});
        apply(&mut w_services, obj(service.clone()));
        let slice = json!({"metadata": {"name": "svc-1", "namespace": "ns", "resourceVersion": "1",
                "labels": {"kubernetes.io/service-name": "svc"}},
            "addressType": "IPv4", "ports": [{"port": 8080}],
            "endpoints": [{"addresses": ["127.0.0.1"]}]});
        apply(&mut w_slices, obj(slice.clone()));

        let metrics = crate::metrics::GatewayMetrics::default();
        let ctx = Arc::new(PlaneCtx {
            caches,
            slices,
            plane: DataPlane::with_metrics("127.0.0.1".parse().unwrap(), metrics.clone()),
            metrics: metrics.clone(),
            served: std::sync::Mutex::new(None),
        });
        let run = || reconcile_plane(ObjectKey::named("routing-table"), ctx.clone());
        run().await.unwrap();
        assert_eq!(
            (metrics.table_builds(true), metrics.table_builds(false)),
            (1, 0)
        );

        // What the status writer does, and bookkeeping: no table is built.
        let mut g = gateway.clone();
        g["metadata"]["resourceVersion"] = json!("2");
        g["status"] = json!({"conditions": [{"type": "Programmed", "status": "True"}]});
        apply(&mut w_gateways, obj(g));
        run().await.unwrap();
        let mut r = route.clone();
        r["metadata"]["resourceVersion"] = json!("2");
        r["status"] = json!({"parents": [{"controllerName": CONTROLLER_NAME}]});
        apply(&mut w_routes, obj(r));
        run().await.unwrap();
        let mut s = service.clone();
        s["metadata"]["resourceVersion"] = json!("2");
        s["metadata"]["annotations"] = json!({"note": "x"});
        s["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}});
        apply(&mut w_services, obj(s));
        run().await.unwrap();
        assert_eq!(
            (metrics.table_builds(true), metrics.table_builds(false)),
            (1, 3)
        );

        // An endpoint more: a new table.
        let mut sl = slice.clone();
        sl["metadata"]["resourceVersion"] = json!("2");
        sl["endpoints"] = json!([{"addresses": ["127.0.0.1"]}, {"addresses": ["127.0.0.2"]}]);
        apply(&mut w_slices, obj(sl));
        run().await.unwrap();
        assert_eq!(
            (metrics.table_builds(true), metrics.table_builds(false)),
            (2, 3)
        );
        // And a route's spec edit too.
        let mut r = route.clone();
        r["metadata"]["resourceVersion"] = json!("3");
        r["spec"]["hostnames"] = json!(["a.test"]);
        apply(&mut w_routes, obj(r));
        run().await.unwrap();
        assert_eq!(
            (metrics.table_builds(true), metrics.table_builds(false)),
            (3, 3)
        );
    }
}
