//! The volume controller: the default `local-path` StorageClass, its provisioner (a
//! directory on the node of the claim's first consumer, as k3s's local-path provisioner),
//! the binder of claims to volumes, and reclaiming volumes whose claim is gone.
//!
//! Claims and volumes bind to each other, so one pass plans over the whole state rather
//! than per key: the harness runs it under a single key that any watch event (or the
//! resync) queues; it reads the caches, asks [`plan::plan`] for the writes and applies
//! them. Every write is idempotent.
//! The directories themselves are made and removed by the node agent that holds them
//! (docs/decisions/0011-local-volumes.md).

pub mod plan;
#[cfg(test)]
mod tests;

use crate::events::{reference, Recorder};
use crate::Error;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use plan::{Action, ClaimKey, Observed};
use serde_json::json;
use skiff_reconcile::{Config, Harness, Metrics, ObjectKey, Outcome};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// A pass runs at least this often although nothing changed (a missed event is made up for
/// no later than this; failed writes are retried sooner, with backoff).
const RESYNC: Duration = Duration::from_secs(10);

/// Caches and bookkeeping of the controller.
struct Ctx {
    client: kube::Client,
    classes: Store<StorageClass>,
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    recorder: Recorder,
    /// Events already posted, by claim uid, reason and message: a claim that waits is
    /// planned again on every pass, but told once.
    reported: std::sync::Mutex<HashSet<(String, &'static str, String)>>,
}

/// Runs the controller until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let pass_key = ObjectKey::named("volumes");
    let config = Config {
        resync: Some(RESYNC),
        ..Config::default()
    };
    let mut controller = Harness::new("persistentvolume-controller", client.clone())
        .metrics(&metrics)
        .config(config)
        .keys()
        .key(pass_key.clone());
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "persistentvolume-controller"),
        client,
        classes: controller.cache(),
        claims: controller.cache(),
        volumes: controller.cache(),
        pods: controller.cache(),
        nodes: controller.cache(),
        reported: std::sync::Mutex::new(HashSet::new()),
    });
    controller
        .triggers::<StorageClass>()
        .triggers::<PersistentVolumeClaim>()
        .triggers::<PersistentVolume>()
        .triggers::<Node>()
        // Only pods with claims concern volumes; a pass for every other pod event would
        // spend a core on busy clusters.
        .watches(move |pod: &Pod| uses_claims(pod).then(|| pass_key.clone()))
        .run_keys(
            |_key, ctx: Arc<Ctx>| async move { pass(&ctx).await.map(|()| Outcome::Done) },
            ctx,
        )
        .await;
}

/// Whether a pod mounts any PersistentVolumeClaim.
fn uses_claims(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| v.iter().any(|v| v.persistent_volume_claim.is_some()))
}

/// One level-triggered pass: plan from the caches, apply every action.
#[tracing::instrument(skip_all)]
async fn pass(ctx: &Ctx) -> Result<(), Error> {
    let (classes, claims, volumes, pods, nodes) = (
        ctx.classes.state(),
        ctx.claims.state(),
        ctx.volumes.state(),
        ctx.pods.state(),
        ctx.nodes.state(),
    );
    let (classes, claims, volumes, pods, nodes) = (
        refs(&classes),
        refs(&claims),
        refs(&volumes),
        refs(&pods),
        refs(&nodes),
    );
    let actions = plan::plan(&Observed {
        classes: &classes,
        claims: &claims,
        volumes: &volumes,
        pods: &pods,
        nodes: &nodes,
    });
    let mut failed = None;
    for action in actions {
        tracing::debug!(?action, "volume action");
        if let Err(error) = apply(ctx, action).await {
            tracing::warn!(%error, "volume action failed");
            failed = Some(error);
        }
    }
    failed.map_or(Ok(()), Err)
}

fn refs<K>(v: &[Arc<K>]) -> Vec<&K> {
    v.iter().map(|a| a.as_ref()).collect()
}

/// Treats "not found" and "already exists" as done: the action was someone else's too.
fn settled<T>(result: Result<T, kube::Error>) -> Result<(), Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

fn claim_api(ctx: &Ctx, claim: &ClaimKey) -> Api<PersistentVolumeClaim> {
    Api::namespaced(ctx.client.clone(), &claim.namespace)
}

/// The claim as an event's object (from the cache; the uid is what describe filters on).
fn claim_ref(claim: &ClaimKey) -> k8s_openapi::api::core::v1::ObjectReference {
    let meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(claim.name.clone()),
        namespace: Some(claim.namespace.clone()),
        uid: Some(claim.uid.clone()),
        ..Default::default()
    };
    reference("v1", "PersistentVolumeClaim", &meta)
}

async fn apply(ctx: &Ctx, action: Action) -> Result<(), Error> {
    let pp = PatchParams::default();
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match action {
        Action::CreateClass(sc) => {
            let api: Api<StorageClass> = Api::all(ctx.client.clone());
            settled(api.create(&PostParams::default(), &sc).await)?;
            tracing::info!(class = plan::DEFAULT_CLASS, "default StorageClass created");
        }
        Action::SetClass { claim, class } => {
            let patch = json!({"spec": {"storageClassName": class}});
            settled(
                claim_api(ctx, &claim)
                    .patch(&claim.name, &pp, &Patch::Merge(&patch))
                    .await,
            )?;
        }
        Action::Provision {
            claim,
            node,
            volume,
        } => {
            let name = volume.metadata.name.clone().unwrap_or_default();
            let me = claim_ref(&claim);
            let msg = format!(
                "External provisioner is provisioning volume for claim \"{}/{}\"",
                claim.namespace, claim.name
            );
            ctx.recorder
                .publish(&me, "Normal", "Provisioning", &msg)
                .await;
            let patch = json!({"metadata": {"annotations": {
                plan::ANN_SELECTED_NODE: node,
                plan::ANN_STORAGE_PROVISIONER: plan::PROVISIONER,
                "volume.beta.kubernetes.io/storage-provisioner": plan::PROVISIONER,
            }}});
            settled(
                claim_api(ctx, &claim)
                    .patch(&claim.name, &pp, &Patch::Merge(&patch))
                    .await,
            )?;
            match volumes.create(&PostParams::default(), &volume).await {
                Ok(_) => {
                    tracing::info!(claim = %format!("{}/{}", claim.namespace, claim.name),
                        volume = %name, %node, "volume provisioned");
                    let msg = format!("Successfully provisioned volume {name}");
                    ctx.recorder
                        .publish(&me, "Normal", "ProvisioningSucceeded", &msg)
                        .await;
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(error) => {
                    let msg = format!("failed to provision volume: {error}");
                    ctx.recorder
                        .publish(&me, "Warning", "ProvisioningFailed", &msg)
                        .await;
                    return Err(error.into());
                }
            }
        }
        Action::Bind {
            claim,
            volume,
            capacity,
            access_modes,
        } => {
            let claim_ref = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": claim.namespace, "name": claim.name, "uid": claim.uid,
            });
            let patch = json!({
                "metadata": {"annotations": {plan::ANN_BOUND_BY_CONTROLLER: "yes"}},
                "spec": {"claimRef": claim_ref},
            });
            volumes.patch(&volume, &pp, &Patch::Merge(&patch)).await?;
            let status = json!({"status": {"phase": "Bound"}});
            volumes
                .patch_status(&volume, &pp, &Patch::Merge(&status))
                .await?;
            let api = claim_api(ctx, &claim);
            let patch = json!({
                "metadata": {"annotations": {
                    plan::ANN_BIND_COMPLETED: "yes",
                    plan::ANN_BOUND_BY_CONTROLLER: "yes",
                }},
                "spec": {"volumeName": volume},
            });
            settled(api.patch(&claim.name, &pp, &Patch::Merge(&patch)).await)?;
            let status = json!({"status": {
                "phase": "Bound", "capacity": capacity, "accessModes": access_modes,
            }});
            settled(
                api.patch_status(&claim.name, &pp, &Patch::Merge(&status))
                    .await,
            )?;
            tracing::info!(claim = %format!("{}/{}", claim.namespace, claim.name),
                %volume, "claim bound");
        }
        Action::VolumePhase { volume, phase } => {
            let status = json!({"status": {"phase": phase}});
            settled(
                volumes
                    .patch_status(&volume, &pp, &Patch::Merge(&status))
                    .await,
            )?;
        }
        Action::ClaimPhase { claim, phase } => {
            // The caches are separate watches: a claim seen Bound before its new volume
            // shows up is not lost. Ask the API before saying so.
            let api = claim_api(ctx, &claim);
            let current = api.get_opt(&claim.name).await?;
            let volume = current
                .and_then(|c| c.spec)
                .and_then(|s| s.volume_name)
                .unwrap_or_default();
            if !volume.is_empty() && volumes.get_opt(&volume).await?.is_some() {
                return Ok(());
            }
            let status = json!({"status": {"phase": phase}});
            settled(
                api.patch_status(&claim.name, &pp, &Patch::Merge(&status))
                    .await,
            )?;
            let msg = format!("Bound claim has lost its PersistentVolume {volume}");
            ctx.recorder
                .publish(&claim_ref(&claim), "Warning", "ClaimLost", &msg)
                .await;
        }
        Action::DeleteVolume { volume, claim } => {
            // Only once the API confirms the claim is gone: deleting a volume loses data.
            let current = claim_api(ctx, &claim).get_opt(&claim.name).await?;
            if current.is_some_and(|c| c.metadata.uid.as_deref() == Some(claim.uid.as_str())) {
                return Ok(());
            }
            settled(volumes.delete(&volume, &DeleteParams::default()).await)?;
            tracing::info!(%volume, "released volume deleted (reclaim policy Delete)");
        }
        Action::Report {
            claim,
            type_,
            reason,
            message,
        } => {
            let first = {
                let mut reported = ctx.reported.lock().unwrap_or_else(|e| e.into_inner());
                // Bounded memory: forgetting only means one repeated event.
                if reported.len() > 4096 {
                    reported.clear();
                }
                reported.insert((claim.uid.clone(), reason, message.clone()))
            };
            if first {
                ctx.recorder
                    .publish(&claim_ref(&claim), type_, reason, &message)
                    .await;
            }
        }
    }
    Ok(())
}
