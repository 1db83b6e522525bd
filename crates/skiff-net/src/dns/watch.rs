//! Keeps the index current from the API: one kube-rs watcher per kind (Services,
//! EndpointSlices, and Pods when pod names are verified), all namespaces, each event
//! folded into the index as it arrives so a change is answerable within milliseconds.

use std::fmt::Debug;
use std::sync::{Arc, PoisonError, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::{DnsConfig, Error, PodRecords, Records, Server, SharedRecords};

/// Runs the cluster DNS: builds the index for `cfg.domain`, binds `cfg.listen` (UDP and
/// TCP), and serves while watchers keep the index current. Returns only if binding fails
/// (or the domain is invalid); watch errors are retried with backoff and logged.
pub async fn run(client: Client, cfg: DnsConfig) -> Result<(), Error> {
    run_with_metrics(client, cfg, &crate::metrics::DnsMetrics::default()).await
}

/// [`run`], recording queries and answers in `metrics` (which the node serves).
pub async fn run_with_metrics(
    client: Client,
    cfg: DnsConfig,
    metrics: &crate::metrics::DnsMetrics,
) -> Result<(), Error> {
    let records = Arc::new(RwLock::new(Records::new(&cfg)?));
    let server = Server::bind(cfg.listen, records.clone())
        .await?
        .with_metrics(metrics);
    info!(addr = %server.local_addr(), domain = %cfg.domain, "cluster DNS starting");
    tokio::select! {
        () = server.run() => {}
        () = keep_current(client, records, cfg.pods) => {}
    }
    Ok(())
}

/// Watches Services and EndpointSlices (and Pods in [`PodRecords::Verified`] mode) in all
/// namespaces and folds every event into `records`. Never returns: the watchers re-list
/// and back off on their own after errors.
pub async fn keep_current(client: Client, records: SharedRecords, pods: PodRecords) {
    let services = follow(Api::<Service>::all(client.clone()), records.clone());
    let slices = follow(Api::<EndpointSlice>::all(client.clone()), records.clone());
    if pods == PodRecords::Verified {
        let pods = follow(Api::<Pod>::all(client), records);
        tokio::join!(services, slices, pods);
    } else {
        tokio::join!(services, slices);
    }
}

/// How objects of one kind enter the index.
trait Indexed: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static {
    fn apply(records: &mut Records, obj: &Self);
    fn delete(records: &mut Records, obj: &Self);
    fn replace(records: &mut Records, objs: Vec<Self>);
}

impl Indexed for Service {
    fn apply(records: &mut Records, obj: &Self) {
        records.apply_service(obj);
    }
    fn delete(records: &mut Records, obj: &Self) {
        records.delete_service(obj);
    }
    fn replace(records: &mut Records, objs: Vec<Self>) {
        records.replace_services(objs);
    }
}

impl Indexed for EndpointSlice {
    fn apply(records: &mut Records, obj: &Self) {
        records.apply_endpoint_slice(obj);
    }
    fn delete(records: &mut Records, obj: &Self) {
        records.delete_endpoint_slice(obj);
    }
    fn replace(records: &mut Records, objs: Vec<Self>) {
        records.replace_endpoint_slices(objs);
    }
}

impl Indexed for Pod {
    fn apply(records: &mut Records, obj: &Self) {
        records.apply_pod(obj);
    }
    fn delete(records: &mut Records, obj: &Self) {
        records.delete_pod(obj);
    }
    fn replace(records: &mut Records, objs: Vec<Self>) {
        records.replace_pods(objs);
    }
}

/// One kind's watch loop. A (re-)list is collected and swapped in whole at `InitDone`, so
/// queries never see a half-listed kind; single events are applied at once.
async fn follow<K>(api: Api<K>, records: SharedRecords)
where
    K: Indexed,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let mut stream =
        std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
    let mut listing = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listing.clear(),
            Ok(Event::InitApply(obj)) => listing.push(obj),
            Ok(Event::InitDone) => {
                let n = listing.len();
                K::replace(&mut write(&records), std::mem::take(&mut listing));
                info!(%kind, objects = n, "cluster DNS index listed");
            }
            Ok(Event::Apply(obj)) => K::apply(&mut write(&records), &obj),
            Ok(Event::Delete(obj)) => K::delete(&mut write(&records), &obj),
            Err(e) => warn!(%kind, error = %e, "cluster DNS watch failed; retrying"),
        }
    }
}

fn write(records: &SharedRecords) -> std::sync::RwLockWriteGuard<'_, Records> {
    records.write().unwrap_or_else(PoisonError::into_inner)
}
