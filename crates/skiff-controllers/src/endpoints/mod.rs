//! The Endpoints and EndpointSlice controllers (with upstream's EndpointSlice mirroring for
//! selector-less Services): which pods take a Service's traffic, written where the proxy
//! and DNS read it.
//!
//! One loop serves all three because they share their inputs (Services, Pods, Endpoints,
//! EndpointSlices) and their key (the Service). Watch events become Service keys on a queue;
//! `reconcile(key)` reads the caches, asks [`plan`] what the objects should hold and writes
//! only the differences, so it is level-triggered and idempotent.

pub mod plan;
#[cfg(test)]
mod tests;

use crate::meta::new_controller_ref;
use crate::Error;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{self, reflector, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use plan::{SliceAction, SliceContent, MANAGED_BY, MANAGED_BY_LABEL, MIRRORED_BY};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a created slice may take to show up in the cache before the cache is trusted
/// again; until then the Service is not reconciled, so it never gets a duplicate slice.
const CREATE_TTL: Duration = Duration::from_secs(5);
/// Retry delay after a failed reconcile (conflicts resolve on the next pass).
const RETRY: Duration = Duration::from_millis(200);

/// Caches and bookkeeping shared by the watch tasks and the workers.
struct Ctx {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
    /// Slices created per Service key and not yet seen in the cache.
    created: Mutex<HashMap<String, (Vec<String>, Instant)>>,
    /// Services seen deleted: their Endpoints go too (and only then, so Endpoints written
    /// before their Service are not taken for leftovers).
    deleted: Mutex<HashSet<String>>,
}

/// Runs the controllers until the process exits.
pub async fn run(client: kube::Client) {
    let (services, svc_w) = reflector::store();
    let (pods, pod_w) = reflector::store();
    let (endpoints, ep_w) = reflector::store();
    let (slices, slice_w) = reflector::store();
    let managed = format!("{MANAGED_BY_LABEL} in ({MANAGED_BY},{MIRRORED_BY})");
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        services,
        pods,
        endpoints,
        slices,
        created: Mutex::new(HashMap::new()),
        deleted: Mutex::new(HashSet::new()),
    });
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let all = watcher::Config::default();
    let svc_stream = reflector(
        svc_w,
        watcher(Api::<Service>::all(client.clone()), all.clone()),
    );
    let pod_stream = reflector(pod_w, watcher(Api::<Pod>::all(client.clone()), all.clone()));
    let ep_stream = reflector(ep_w, watcher(Api::<Endpoints>::all(client.clone()), all));
    let slice_stream = reflector(
        slice_w,
        watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default().labels(&managed),
        ),
    );
    {
        let (ctx, tx) = (ctx.clone(), tx.clone());
        tokio::spawn(feed(svc_stream, tx, move |event| {
            let (obj, deleted) = event;
            let key = crate::meta::key(&obj.metadata);
            if deleted {
                ctx.deleted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone());
            }
            vec![key]
        }));
    }
    {
        let (ctx, tx) = (ctx.clone(), tx.clone());
        tokio::spawn(feed(pod_stream, tx, move |(pod, _)| {
            services_of(&ctx, &pod)
        }));
    }
    tokio::spawn(feed(ep_stream, tx.clone(), |(ep, _)| {
        vec![crate::meta::key(&ep.metadata)]
    }));
    tokio::spawn(feed(slice_stream, tx.clone(), |(slice, _)| {
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(plan::SERVICE_NAME_LABEL))
            .map(|svc| vec![format!("{ns}/{svc}")])
            .unwrap_or_default()
    }));
    // Nothing is written before every cache holds a full list: an empty pod cache would
    // otherwise empty every Service.
    for ready in [
        ctx.services.wait_until_ready().await,
        ctx.pods.wait_until_ready().await,
        ctx.endpoints.wait_until_ready().await,
        ctx.slices.wait_until_ready().await,
    ] {
        if ready.is_err() {
            return;
        }
    }
    for svc in ctx.services.state() {
        let _ = tx.send(crate::meta::key(&svc.metadata));
    }
    work(ctx, rx, tx).await;
}

/// Drives one reflector stream, turning each object it touches into Service keys.
async fn feed<K, S>(
    stream: S,
    tx: mpsc::UnboundedSender<String>,
    keys: impl Fn((Arc<K>, bool)) -> Vec<String>,
) where
    S: Stream<Item = watcher::Result<watcher::Event<K>>>,
    K: Clone,
{
    let stream = stream.default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let touched = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (Arc::new(o), false),
            Ok(watcher::Event::Delete(o)) => (Arc::new(o), true),
            Ok(_) => continue,
            Err(error) => {
                tracing::debug!(%error, "endpoints watch error; retrying");
                continue;
            }
        };
        for key in keys(touched) {
            if tx.send(key).is_err() {
                return;
            }
        }
    }
}

/// The Services a pod event concerns: those selecting it now, and those still listing it
/// (it may have stopped matching or gone).
fn services_of(ctx: &Ctx, pod: &Pod) -> Vec<String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut keys: BTreeSet<String> = ctx
        .services
        .state()
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(&ns))
        .filter(|s| plan::selects(s, pod.metadata.labels.as_ref()))
        .map(|s| crate::meta::key(&s.metadata))
        .collect();
    for slice in ctx.slices.state() {
        if slice.metadata.namespace.as_deref() == Some(&ns) && plan::lists_pod(&slice, &name) {
            if let Some(svc) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(plan::SERVICE_NAME_LABEL))
            {
                keys.insert(format!("{ns}/{svc}"));
            }
        }
    }
    keys.into_iter().collect()
}

/// The queue's consumer: every key that arrived while the last batch ran is reconciled once,
/// distinct keys concurrently; failures come back after [`RETRY`].
async fn work(
    ctx: Arc<Ctx>,
    mut rx: mpsc::UnboundedReceiver<String>,
    tx: mpsc::UnboundedSender<String>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = BTreeSet::from([first]);
        while let Ok(key) = rx.try_recv() {
            batch.insert(key);
        }
        let results = futures::future::join_all(batch.into_iter().map(|key| {
            let ctx = ctx.clone();
            async move { (reconcile(&ctx, &key).await, key) }
        }))
        .await;
        for (result, key) in results {
            let retry_after = match result {
                Ok(None) => continue,
                Ok(Some(after)) => after,
                Err(error) => {
                    tracing::debug!(%key, %error, "endpoints reconcile failed; retrying");
                    RETRY
                }
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(retry_after).await;
                let _ = tx.send(key);
            });
        }
    }
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

/// Brings the Endpoints and slices of one Service in line; `Some(delay)` asks to come back.
async fn reconcile(ctx: &Ctx, key: &str) -> Result<Option<Duration>, Error> {
    let (ns, name) = key.split_once('/').ok_or(Error::Missing("namespace"))?;
    if !creations_seen(ctx, key, ns) {
        return Ok(Some(Duration::from_millis(50)));
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
        let was_deleted = ctx
            .deleted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        if was_deleted {
            let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
            delete(&api, name).await?;
        }
        return Ok(None);
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
    Ok(None)
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
    let labels = plan::labels(service);
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
