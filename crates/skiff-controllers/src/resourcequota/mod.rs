//! The ResourceQuota controller, as upstream's: keeps each quota's `status.hard` equal to
//! `spec.hard` and `status.used` equal to what the namespace's objects use, so deletes
//! free quota that admission charged. Counting is `skiff_apimachinery::quota` (the same
//! rules admission charges by); the decision to write is the pure `plan`.
//!
//! The core kinds quotas name by default (pods, services, claims, configmaps, secrets,
//! replication controllers, quotas) are cached and their changes requeue the namespace's
//! quotas. Other `count/<resource>.<group>` kinds are listed (metadata only) when a quota
//! names them, and such quotas are looked at again every [`OTHER_KINDS_RESYNC`].

pub mod plan;
#[cfg(test)]
mod tests;

use crate::Error;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota, Secret, Service,
};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::runtime::reflector::Store;
use plan::Action;
use serde_json::Value;
use skiff_apimachinery::quota::{calculate_used, counted_kinds, parse_list};
use skiff_reconcile::{Harness, Metrics, Object, ObjectKey, Outcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a quota counting kinds that are not cached is counted again.
const OTHER_KINDS_RESYNC: Duration = Duration::from_secs(10);

/// What reconcile reads besides the quota.
struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    services: Store<Service>,
    claims: Store<PersistentVolumeClaim>,
    configmaps: Store<ConfigMap>,
    secrets: Store<Secret>,
    controllers: Store<ReplicationController>,
    quotas: Store<ResourceQuota>,
    /// Per quota uid: the resourceVersion last seen and since when, to tell a quota
    /// admission just charged from a settled one.
    seen: Mutex<HashMap<String, (String, Instant)>>,
}

/// Runs the controller until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let mut controller = Harness::new("resourcequota-controller", client.clone())
        .metrics(&metrics)
        .watch::<ResourceQuota>();
    let quotas = controller.store();
    let ctx = Arc::new(Ctx {
        pods: controller.cache(),
        services: controller.cache(),
        claims: controller.cache(),
        configmaps: controller.cache(),
        secrets: controller.cache(),
        controllers: controller.cache(),
        quotas: quotas.clone(),
        seen: Mutex::new(HashMap::new()),
        client,
    });
    // Any change of a counted object concerns every quota of its namespace.
    let of = |quotas: &Store<ResourceQuota>| {
        let quotas = quotas.clone();
        move |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            let ns = meta.namespace.clone();
            quotas
                .state()
                .iter()
                .filter(|q| q.metadata.namespace == ns)
                .filter_map(|q| ObjectKey::of(&q.metadata))
                .collect::<Vec<_>>()
        }
    };
    let (p, s, c, m, x, r) = (
        of(&quotas),
        of(&quotas),
        of(&quotas),
        of(&quotas),
        of(&quotas),
        of(&quotas),
    );
    controller
        .watches(move |o: &Pod| p(&o.metadata))
        .watches(move |o: &Service| s(&o.metadata))
        .watches(move |o: &PersistentVolumeClaim| c(&o.metadata))
        .watches(move |o: &ConfigMap| m(&o.metadata))
        .watches(move |o: &Secret| x(&o.metadata))
        .watches(move |o: &ReplicationController| r(&o.metadata))
        .run(reconcile, ctx)
        .await;
}

/// The namespace's cached objects of a kind, in wire form.
fn cached<K: Object + serde::Serialize>(store: &Store<K>, ns: &str) -> Vec<Value> {
    store
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(ns))
        .filter_map(|o| serde_json::to_value(o.as_ref()).ok())
        .collect()
}

/// Lists a kind that is not cached (metadata only: counting needs no more), or None when
/// the API does not serve it.
async fn listed(
    client: &kube::Client,
    group: &str,
    resource: &str,
    ns: &str,
) -> Result<Option<Vec<Value>>, Error> {
    let api_group = match kube::discovery::group(client, group).await {
        Ok(g) => g,
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some((ar, _)) = api_group
        .recommended_resources()
        .into_iter()
        .find(|(ar, _)| ar.plural == resource)
    else {
        return Ok(None);
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let list = api.list_metadata(&ListParams::default()).await?;
    Ok(Some(
        list.items
            .iter()
            .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
            .collect(),
    ))
}

/// How long the quota has had its current resourceVersion.
fn unchanged_for(ctx: &Ctx, quota: &ResourceQuota) -> Duration {
    let uid = quota.metadata.uid.clone().unwrap_or_default();
    let rv = quota.metadata.resource_version.clone().unwrap_or_default();
    let mut seen = ctx.seen.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let entry = seen.entry(uid).or_insert_with(|| (rv.clone(), now));
    if entry.0 != rv {
        *entry = (rv, now);
    }
    // Forget quotas that are gone, so the map does not grow with deleted ones.
    if seen.len() > ctx.quotas.state().len() * 2 + 16 {
        let live: Vec<String> = ctx
            .quotas
            .state()
            .iter()
            .filter_map(|q| q.metadata.uid.clone())
            .collect();
        seen.retain(|uid, _| live.contains(uid));
    }
    seen.get(quota.metadata.uid.as_deref().unwrap_or_default())
        .map_or(Duration::ZERO, |(_, since)| since.elapsed())
}

async fn reconcile(quota: Arc<ResourceQuota>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let ns = quota
        .metadata
        .namespace
        .clone()
        .ok_or(Error::Missing("namespace"))?;
    let name = quota.metadata.name.clone().ok_or(Error::Missing("name"))?;
    let wire = serde_json::to_value(quota.as_ref())?;
    let kinds = counted_kinds(&parse_list(&wire["spec"]["hard"]));
    let mut objects: HashMap<(String, String), Vec<Value>> = HashMap::new();
    let mut uncached = false;
    for (group, resource) in &kinds {
        let found = match (group.as_str(), resource.as_str()) {
            ("", "pods") => Some(cached(&ctx.pods, &ns)),
            ("", "services") => Some(cached(&ctx.services, &ns)),
            ("", "persistentvolumeclaims") => Some(cached(&ctx.claims, &ns)),
            ("", "configmaps") => Some(cached(&ctx.configmaps, &ns)),
            ("", "secrets") => Some(cached(&ctx.secrets, &ns)),
            ("", "replicationcontrollers") => Some(cached(&ctx.controllers, &ns)),
            ("", "resourcequotas") => Some(cached(&ctx.quotas, &ns)),
            _ => {
                uncached = true;
                listed(&ctx.client, group, resource, &ns).await?
            }
        };
        if let Some(found) = found {
            objects.insert((group.clone(), resource.clone()), found);
        }
    }
    let lookup = |group: &str, resource: &str| -> Option<Vec<&Value>> {
        objects
            .get(&(group.to_owned(), resource.to_owned()))
            .map(|v| v.iter().collect())
    };
    let counted = match calculate_used(&wire, &lookup, chrono::Utc::now()) {
        Ok(c) => c,
        Err(e) => {
            // Only absurd quantities overflow; nothing to retry until someone fixes them.
            tracing::warn!(quota = %name, namespace = %ns, error = %e, "cannot count quota usage");
            return Ok(Outcome::Done);
        }
    };
    let again = uncached.then_some(Outcome::RequeueAfter(OTHER_KINDS_RESYNC));
    match plan::plan(&wire, &counted, unchanged_for(&ctx, &quota)) {
        Action::Nothing => Ok(again.unwrap_or(Outcome::Done)),
        Action::Wait(after) => Ok(Outcome::RequeueAfter(after)),
        Action::WriteStatus(status) => {
            let mut next = quota.as_ref().clone();
            next.status = Some(serde_json::from_value(status)?);
            let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), &ns);
            // The cached resourceVersion makes this a compare-and-swap: a charge admission
            // made since the cache was read wins, and the quota is counted again.
            match api
                .replace_status(&name, &PostParams::default(), &next)
                .await
            {
                Ok(_) => Ok(again.unwrap_or(Outcome::Done)),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(Outcome::Done),
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    Ok(Outcome::RequeueAfter(Duration::from_millis(100)))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}
