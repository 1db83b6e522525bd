//! Storage protection: the `kubernetes.io/pvc-protection` and `kubernetes.io/pv-protection`
//! finalizers, as upstream's two controllers of that name. A claim deleted while a running
//! pod uses it stays Terminating (with its volume and data) until the pod is done.
//! Decisions are in `plan`; the admission step adds the finalizers on create and these
//! loops add them to objects created without.

pub mod plan;
#[cfg(test)]
mod tests;

use crate::Error;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use plan::{Action, PVC_FINALIZER, PV_FINALIZER};
use serde_json::json;
use skiff_reconcile::{Harness, Metrics, ObjectKey, Outcome};
use std::sync::Arc;

/// What the claim loop reads besides the claim.
struct ClaimCtx {
    client: kube::Client,
    pods: Store<Pod>,
}

/// What the volume loop reads besides the volume.
struct VolumeCtx {
    client: kube::Client,
    claims: Store<PersistentVolumeClaim>,
}

/// Runs both loops until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    tokio::join!(
        run_claims(client.clone(), metrics.clone()),
        run_volumes(client, metrics)
    );
}

async fn run_claims(client: kube::Client, metrics: Metrics) {
    let mut controller = Harness::new("pvc-protection-controller", client.clone())
        .metrics(&metrics)
        .watch::<PersistentVolumeClaim>();
    let ctx = Arc::new(ClaimCtx {
        client,
        pods: controller.cache(),
    });
    controller
        // A pod's changes (finishing, going away) concern the claims it mounts.
        .watches(|pod: &Pod| {
            let ns = pod.metadata.namespace.clone();
            plan::claims_of(pod)
                .into_iter()
                .map(move |c| ObjectKey::new(ns.as_deref(), &c))
        })
        .run(reconcile_claim, ctx)
        .await;
}

async fn run_volumes(client: kube::Client, metrics: Metrics) {
    let mut controller = Harness::new("pv-protection-controller", client.clone())
        .metrics(&metrics)
        .watch::<PersistentVolume>();
    let ctx = Arc::new(VolumeCtx {
        client,
        claims: controller.cache(),
    });
    controller
        // A claim going away unbinds its volume.
        .watches(|c: &PersistentVolumeClaim| {
            c.spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .filter(|v| !v.is_empty())
                .map(ObjectKey::named)
        })
        .run(reconcile_volume, ctx)
        .await;
}

async fn reconcile_claim(
    claim: Arc<PersistentVolumeClaim>,
    ctx: Arc<ClaimCtx>,
) -> Result<Outcome, Error> {
    let ns = claim
        .metadata
        .namespace
        .as_deref()
        .ok_or(Error::Missing("namespace"))?;
    let cached = ctx.pods.state();
    let pods: Vec<&Pod> = cached.iter().map(|p| p.as_ref()).collect();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    match plan::plan_claim(&claim, &pods) {
        Some(Action::RemoveFinalizer) => {
            // upstream's askAPIServer: the cache may not show a pod created a moment ago.
            let live = Api::<Pod>::namespaced(ctx.client.clone(), ns)
                .list(&ListParams::default())
                .await?;
            let live: Vec<&Pod> = live.items.iter().collect();
            if plan::claim_in_use(&claim, &live) {
                return Ok(Outcome::Done);
            }
            tracing::info!("claim no longer used by any pod; removing its protection");
            set_finalizers(&api, &claim.metadata, PVC_FINALIZER, false).await?;
        }
        Some(Action::AddFinalizer) => {
            set_finalizers(&api, &claim.metadata, PVC_FINALIZER, true).await?
        }
        None => {}
    }
    Ok(Outcome::Done)
}

async fn reconcile_volume(
    volume: Arc<PersistentVolume>,
    ctx: Arc<VolumeCtx>,
) -> Result<Outcome, Error> {
    let cached = ctx.claims.state();
    let claims: Vec<&PersistentVolumeClaim> = cached.iter().map(|c| c.as_ref()).collect();
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match plan::plan_volume(&volume, &claims) {
        Some(Action::RemoveFinalizer) => {
            tracing::info!("volume no longer bound; removing its protection");
            set_finalizers(&api, &volume.metadata, PV_FINALIZER, false).await?
        }
        Some(Action::AddFinalizer) => {
            set_finalizers(&api, &volume.metadata, PV_FINALIZER, true).await?
        }
        None => {}
    }
    Ok(Outcome::Done)
}

/// Adds (`add`) or removes `finalizer`, as a merge patch of the whole list locked to the
/// resourceVersion it was computed from: a concurrent change to the list is a conflict,
/// retried with backoff, never overwritten.
async fn set_finalizers<K>(
    api: &Api<K>,
    meta: &ObjectMeta,
    finalizer: &str,
    add: bool,
) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = meta.name.as_deref().ok_or(Error::Missing("name"))?;
    let mut finalizers: Vec<String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    if add {
        finalizers.push(finalizer.to_string());
    }
    let patch = json!({ "metadata": {
        "finalizers": finalizers,
        "resourceVersion": meta.resource_version,
    }});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}
