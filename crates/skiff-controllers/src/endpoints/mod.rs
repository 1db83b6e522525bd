//! The Endpoints and EndpointSlice controllers (with upstream's EndpointSlice mirroring for
//! selector-less Services): which pods take a Service's traffic, written where the proxy
//! and DNS read it.
//!
//! One loop serves all three because they share their inputs (Services, Pods, Endpoints,
//! EndpointSlices) and their key (the Service). Watch events become Service keys on the
//! harness's queue; `reconcile(key)` reads the caches, asks [`plan`] what the objects should
//! hold and writes only the differences, so it is level-triggered and idempotent. That
//! includes cleanup: leftover Endpoints and slices map to their Service's key, so a Service
//! found absent (deleted while skiff was down too) has what this controller wrote for it
//! removed, without depending on a watch Delete event.

pub mod plan;
#[cfg(test)]
mod tests;

use crate::meta::new_controller_ref;
use crate::Error;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use plan::{SliceAction, SliceContent, MANAGED_BY, MANAGED_BY_LABEL, MIRRORED_BY};
use skiff_reconcile::{Harness, Metrics, ObjectKey, Outcome};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a created slice may take to show up in the cache before the cache is trusted
/// again; until then the Service is not reconciled, so it never gets a duplicate slice.
const CREATE_TTL: Duration = Duration::from_secs(5);

/// Marks Endpoints this controller wrote (upstream's label telling the mirroring controller
/// to leave them alone). It is also how a leftover is told from Endpoints a user wrote for
/// a selector-less Service, or before creating the Service: only ours go with the Service.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";

/// Caches and bookkeeping shared by the workers.
struct Ctx {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
    /// Slices created per Service key and not yet seen in the cache.
    created: Mutex<HashMap<String, (Vec<String>, Instant)>>,
}

/// Runs the controllers until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let managed = format!("{MANAGED_BY_LABEL} in ({MANAGED_BY},{MIRRORED_BY})");
    let slice_config = watcher::Config::default().labels(&managed);
    let mut controller = Harness::new("endpoint-controller", client.clone())
        .metrics(&metrics)
        .watch::<Service>();
    let ctx = Arc::new(Ctx {
        client,
        services: controller.store(),
        pods: controller.cache::<Pod>(),
        endpoints: controller.cache::<Endpoints>(),
        slices: controller.cache_with::<EndpointSlice>(slice_config.clone()),
        created: Mutex::new(HashMap::new()),
    });
    let (services, slices) = (ctx.services.clone(), ctx.slices.clone());
    controller
        .watches(move |pod: &Pod| services_of(&services, &slices, pod))
        .watches(|ep: &Endpoints| ObjectKey::of(&ep.metadata))
        .watches_with(slice_config, |slice: &EndpointSlice| {
            service_of_slice(slice)
        })
        .run_keys(reconcile, ctx)
        .await;
}

/// The Service a slice belongs to, by its `kubernetes.io/service-name` label.
fn service_of_slice(slice: &EndpointSlice) -> Option<ObjectKey> {
    let svc = slice
        .metadata
        .labels
        .as_ref()?
        .get(plan::SERVICE_NAME_LABEL)?;
    Some(ObjectKey::new(slice.metadata.namespace.as_deref(), svc))
}

/// The Services a pod event concerns: those selecting it now, and those still listing it
/// (it may have stopped matching or gone).
fn services_of(
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
    pod: &Pod,
) -> Vec<ObjectKey> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut keys: BTreeSet<ObjectKey> = services
        .state()
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(&ns))
        .filter(|s| plan::selects(s, pod.metadata.labels.as_ref()))
        .filter_map(|s| ObjectKey::of(&s.metadata))
        .collect();
    for slice in slices.state() {
        if slice.metadata.namespace.as_deref() == Some(&ns) && plan::lists_pod(&slice, &name) {
            keys.extend(service_of_slice(&slice));
        }
    }
    keys.into_iter().collect()
}

/// Whether slices created for `key` are all in the cache (or waited for long enough).
fn creations_seen(ctx: &Ctx, key: &str, ns: &str) -> bool {
    let mut created = ctx.created.lock().unwrap_or_else(|e| e.into_inner());
    let Some((names, since)) = created.get(key) else {
        return true;
    };
    let seen = names
        .iter()
        .all(|name| ctx.slices.get(&ObjectRef::new(name).within(ns)).is_some());
    if seen || since.elapsed() > CREATE_TTL {
        created.remove(key);
        return true;
    }
    false
}

/// Brings the Endpoints and slices of one Service in line, or removes them when the
/// Service is gone.
async fn reconcile(key: ObjectKey, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let ns = key
        .namespace
        .as_deref()
        .ok_or(Error::Missing("namespace"))?;
    let (name, key) = (key.name.as_str(), key.to_string());
    let (ctx, key) = (ctx.as_ref(), key.as_str());
    if !creations_seen(ctx, key, ns) {
        return Ok(Outcome::RequeueAfter(Duration::from_millis(50)));
    }
    let service = ctx.services.get(&ObjectRef::new(name).within(ns));
    let all_slices = ctx.slices.state();
    let owned = |by: &str| -> Vec<&EndpointSlice> {
        all_slices
            .iter()
            .map(|s| s.as_ref())
            .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
            .filter(|s| {
                let labels = s.metadata.labels.as_ref();
                labels
                    .and_then(|l| l.get(plan::SERVICE_NAME_LABEL))
                    .map(String::as_str)
                    == Some(name)
                    && labels
                        .and_then(|l| l.get(MANAGED_BY_LABEL))
                        .map(String::as_str)
                        == Some(by)
            })
            .collect()
    };
    let (ours, mirrored) = (owned(MANAGED_BY), owned(MIRRORED_BY));
    let slice_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    let Some(service) = service else {
        for slice in ours.iter().chain(&mirrored) {
            delete(
                &slice_api,
                slice.metadata.name.as_deref().unwrap_or_default(),
            )
            .await?;
        }
        let ours = ctx
            .endpoints
            .get(&ObjectRef::new(name).within(ns))
            .is_some_and(|ep| written_by_us(&ep));
        if ours {
            let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
            delete(&api, name).await?;
        }
        return Ok(Outcome::Done);
    };
    let current = ctx.endpoints.get(&ObjectRef::new(name).within(ns));
    let created;
    if plan::selector(&service).is_some() {
        let pods = ctx.pods.state();
        let pods: Vec<&Pod> = pods
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
            .collect();
        write_endpoints(
            ctx,
            &service,
            current.as_deref(),
            plan::subsets(&service, &pods),
        )
        .await?;
        let desired = plan::slices_from_pods(&service, &pods);
        let actions = plan::plan_slices(desired, &ours);
        created = apply_slices(&slice_api, &service, MANAGED_BY, &ours, actions).await?;
        for slice in &mirrored {
            delete(
                &slice_api,
                slice.metadata.name.as_deref().unwrap_or_default(),
            )
            .await?;
        }
    } else {
        let desired = current
            .as_deref()
            .map(plan::slices_from_endpoints)
            .unwrap_or_default();
        let actions = plan::plan_slices(desired, &mirrored);
        created = apply_slices(&slice_api, &service, MIRRORED_BY, &mirrored, actions).await?;
        for slice in &ours {
            delete(
                &slice_api,
                slice.metadata.name.as_deref().unwrap_or_default(),
            )
            .await?;
        }
    }
    if !created.is_empty() {
        ctx.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), (created, Instant::now()));
    }
    Ok(Outcome::Done)
}

/// Whether this controller wrote `ep` (see [`SKIP_MIRROR_LABEL`]).
fn written_by_us(ep: &Endpoints) -> bool {
    ep.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SKIP_MIRROR_LABEL))
        .is_some_and(|v| v == "true")
}

/// Deletes an object; already gone is fine.
async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Creates or rewrites the Service's Endpoints when its subsets or labels differ.
async fn write_endpoints(
    ctx: &Ctx,
    service: &Service,
    current: Option<&Endpoints>,
    subsets: Vec<k8s_openapi::api::core::v1::EndpointSubset>,
) -> Result<(), Error> {
    let ns = service.metadata.namespace.as_deref().unwrap_or_default();
    let mut labels = plan::labels(service);
    labels.insert(SKIP_MIRROR_LABEL.into(), "true".into());
    let subsets = (!subsets.is_empty()).then_some(subsets);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
    match current {
        Some(ep)
            if ep.subsets == subsets
                && ep.metadata.labels.clone().unwrap_or_default() == labels =>
        {
            Ok(())
        }
        Some(ep) => {
            let mut next = ep.clone();
            next.subsets = subsets;
            next.metadata.labels = Some(labels);
            let name = ep.metadata.name.as_deref().unwrap_or_default();
            api.replace(name, &PostParams::default(), &next).await?;
            Ok(())
        }
        None => {
            let ep = Endpoints {
                metadata: ObjectMeta {
                    name: service.metadata.name.clone(),
                    namespace: service.metadata.namespace.clone(),
                    labels: Some(labels),
                    ..ObjectMeta::default()
                },
                subsets,
            };
            api.create(&PostParams::default(), &ep).await?;
            Ok(())
        }
    }
}

/// Carries out slice actions; returns the names of the slices it created.
async fn apply_slices(
    api: &Api<EndpointSlice>,
    service: &Service,
    managed_by: &str,
    existing: &[&EndpointSlice],
    actions: Vec<SliceAction>,
) -> Result<Vec<String>, Error> {
    let svc_name = service
        .metadata
        .name
        .clone()
        .ok_or(Error::Missing("name"))?;
    let mut labels = plan::labels(service);
    labels.insert(plan::SERVICE_NAME_LABEL.into(), svc_name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), managed_by.into());
    let build = |meta: ObjectMeta, content: SliceContent| EndpointSlice {
        metadata: ObjectMeta {
            labels: Some(labels.clone()),
            owner_references: new_controller_ref("v1", "Service", &service.metadata)
                .map(|r| vec![r]),
            ..meta
        },
        address_type: "IPv4".into(),
        endpoints: content.endpoints,
        ports: Some(content.ports),
    };
    let mut created = Vec::new();
    for action in actions {
        match action {
            SliceAction::Create(content) => {
                let meta = ObjectMeta {
                    generate_name: Some(format!("{svc_name}-")),
                    namespace: service.metadata.namespace.clone(),
                    ..ObjectMeta::default()
                };
                let slice = api
                    .create(&PostParams::default(), &build(meta, content))
                    .await?;
                created.extend(slice.metadata.name);
            }
            SliceAction::Update(name, content) => {
                let Some(current) = existing
                    .iter()
                    .find(|s| s.metadata.name.as_deref() == Some(&name))
                else {
                    continue;
                };
                let slice = build(current.metadata.clone(), content);
                api.replace(&name, &PostParams::default(), &slice).await?;
            }
            SliceAction::Delete(name) => delete(api, &name).await?,
        }
    }
    Ok(created)
}
