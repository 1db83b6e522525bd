//! The garbage collector: deletes dependents of deleted owners (by ownerReferences uid) and
//! carries out foreground and orphan deletion (the `foregroundDeletion` and `orphan`
//! finalizers the API server adds for a propagationPolicy), for every kind served that can
//! be listed, watched and deleted, custom resources included.
//!
//! `monitors` keeps one metadata-only watch per discovered resource; decisions are in
//! `plan`; this runner applies the actions, as one pass over the whole state under a
//! single key of the harness's queue (queued by relevant changes, batched, and by a
//! resync, so nothing depends on one event being seen).

pub mod monitors;
pub mod plan;
#[cfg(test)]
mod tests;

use crate::Error;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams};
use monitors::{Monitors, Snapshot};
pub use plan::{plan, Action, GroupKind, Obj, Propagation, Scopes};
use serde_json::json;
use skiff_reconcile::{Config, Metrics, ObjectKey, Outcome, Runner};
use std::sync::Arc;
use std::time::Duration;

/// A pass runs at least this often although nothing changed.
const RESYNC: Duration = Duration::from_secs(10);
/// Discovery runs at least this often (upstream's `ResourceResyncTime`), besides when a
/// CRD or APIService changes.
const REDISCOVER: Duration = Duration::from_secs(30);

/// The collector's monitors and client.
struct Ctx {
    client: kube::Client,
    monitors: Arc<Monitors>,
}

/// Runs the collector until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let config = Config {
        resync: Some(RESYNC),
        ..Config::default()
    };
    let key = ObjectKey::named("graph");
    let runner = Runner::new("garbage-collector-controller", config, &metrics);
    let queue = runner.queue();
    let monitors = Arc::new(Monitors::new(client.clone(), queue.clone(), key.clone()));
    let discovery = tokio::spawn(monitors.clone().discover_forever(REDISCOVER));
    let resync = tokio::spawn(async move {
        let mut tick = tokio::time::interval(RESYNC);
        loop {
            tick.tick().await;
            queue.add(key.clone());
        }
    });
    let ctx = Arc::new(Ctx { client, monitors });
    runner.run(move |_key| collect(ctx.clone())).await;
    discovery.abort();
    resync.abort();
}

/// One pass: plans from the caches and applies every action; a failed action does not stop
/// the others, and the pass is retried with backoff.
async fn collect(ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let (objects, scopes) = match ctx.monitors.snapshot() {
        Snapshot::Ready { objects, scopes } => (objects, scopes),
        // The monitor that finishes listing queues the pass again.
        Snapshot::Syncing => return Ok(Outcome::Done),
    };
    let mut failed = None;
    for action in plan(&objects, &scopes) {
        if let Err(error) = apply(&ctx, &action).await {
            tracing::debug!(%error, ?action, "garbage collection step failed");
            failed = Some(error);
        }
    }
    failed.map_or(Ok(Outcome::Done), Err)
}

/// Whether the owner `r` of an object in `ns` is gone (absent, or replaced by a new uid).
/// An owner of a kind not served is not known to be gone.
async fn owner_gone(ctx: &Ctx, ns: &str, r: &OwnerReference) -> Result<bool, Error> {
    let Some(served) = ctx.monitors.served(&GroupKind::of_ref(r)) else {
        return Ok(false);
    };
    if served.namespaced && ns.is_empty() {
        return Ok(false);
    }
    let owner = served
        .api(&ctx.client, ns)
        .get_metadata_opt(&r.name)
        .await?;
    Ok(owner.is_none_or(|o| o.metadata.uid.as_deref() != Some(&r.uid)))
}

async fn delete(ctx: &Ctx, obj: &Obj, propagation: Propagation) -> Result<(), Error> {
    let Some(served) = ctx.monitors.served(&obj.kind) else {
        return Ok(());
    };
    let mut dp = match propagation {
        Propagation::Background => DeleteParams::background(),
        Propagation::Foreground => DeleteParams::foreground(),
        Propagation::Orphan => DeleteParams::orphan(),
    };
    dp.preconditions = Some(kube::api::Preconditions {
        uid: Some(obj.uid.clone()),
        resource_version: None,
    });
    match served
        .api(&ctx.client, &obj.namespace)
        .delete(&obj.name, &dp)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}

/// Changes the owner references of `obj`: a strategic merge patch (`strategic`), which
/// merges them by uid and so leaves concurrent changes to other references be; where the
/// server does not serve strategic merge (custom resources: 415), upstream's fallback, a
/// JSON merge patch of the whole list (`merged`) locked to the resourceVersion planned from.
async fn patch_owners(
    ctx: &Ctx,
    obj: &Obj,
    strategic: serde_json::Value,
    merged: Vec<OwnerReference>,
) -> Result<(), Error> {
    match patch(ctx, obj, Patch::Strategic(strategic)).await {
        Err(Error::Api(kube::Error::Api(e))) if e.code == 415 => {
            let refs = if merged.is_empty() {
                serde_json::Value::Null
            } else {
                json!(merged)
            };
            let body = json!({ "metadata": {
                "ownerReferences": refs,
                "uid": obj.uid,
                "resourceVersion": obj.resource_version,
            }});
            patch(ctx, obj, Patch::Merge(body)).await
        }
        other => other,
    }
}

async fn patch(ctx: &Ctx, obj: &Obj, p: Patch<serde_json::Value>) -> Result<(), Error> {
    let Some(served) = ctx.monitors.served(&obj.kind) else {
        return Ok(());
    };
    let api = served.api(&ctx.client, &obj.namespace);
    match api.patch(&obj.name, &PatchParams::default(), &p).await {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}

#[tracing::instrument(skip_all, fields(key = %format!("{}/{}", action_obj(action).namespace, action_obj(action).name), kind = %action_obj(action).kind.kind))]
async fn apply(ctx: &Ctx, action: &Action) -> Result<(), Error> {
    match action {
        Action::Delete {
            obj,
            propagation,
            unblock,
        } => {
            if *unblock {
                // upstream's unblockOwnerReferencesStrategicMergePatch: the blocking references
                // again, with blockOwnerDeletion false, merged by uid; the uid is a precondition.
                let unblocked = |r: &OwnerReference| OwnerReference {
                    block_owner_deletion: Some(false),
                    ..r.clone()
                };
                let refs: Vec<OwnerReference> = obj
                    .owners
                    .iter()
                    .filter(|r| r.block_owner_deletion == Some(true))
                    .map(unblocked)
                    .collect();
                let all = obj.owners.iter().map(unblocked).collect();
                tracing::info!("dependent may close an ownership cycle; unblocking its owners");
                patch_owners(
                    ctx,
                    obj,
                    json!({ "metadata": { "ownerReferences": refs, "uid": obj.uid } }),
                    all,
                )
                .await?;
            }
            tracing::info!(?propagation, "deleting dependent of a deleted owner");
            delete(ctx, obj, *propagation).await
        }
        Action::DeleteIfOrphaned { obj } => {
            for r in &obj.owners {
                if !owner_gone(ctx, &obj.namespace, r).await? {
                    return Ok(());
                }
            }
            tracing::info!("deleting object whose owners are gone");
            delete(ctx, obj, Propagation::Background).await
        }
        Action::StripOwners { obj, owner_uids } => {
            // upstream's deleteOwnerRefStrategicMergePatch; when no reference would be left,
            // the field is removed instead of left as `[]` (upstream's omitempty drops it).
            let rest: Vec<OwnerReference> = obj
                .owners
                .iter()
                .filter(|r| !owner_uids.contains(&r.uid))
                .cloned()
                .collect();
            let deletes = if rest.is_empty() {
                serde_json::Value::Null
            } else {
                json!(owner_uids
                    .iter()
                    .map(|uid| json!({ "$patch": "delete", "uid": uid }))
                    .collect::<Vec<_>>())
            };
            tracing::info!(owners = ?owner_uids, "removing owner references");
            patch_owners(
                ctx,
                obj,
                json!({ "metadata": { "ownerReferences": deletes, "uid": obj.uid } }),
                rest,
            )
            .await
        }
        Action::RemoveFinalizer { obj, finalizer } => {
            let rest: Vec<&String> = obj.finalizers.iter().filter(|f| *f != finalizer).collect();
            tracing::info!(%finalizer, "dependents handled; removing finalizer");
            patch(
                ctx,
                obj,
                Patch::Merge(json!({ "metadata": { "finalizers": rest, "uid": obj.uid } })),
            )
            .await
        }
    }
}

fn action_obj(action: &Action) -> &Obj {
    match action {
        Action::Delete { obj, .. }
        | Action::DeleteIfOrphaned { obj }
        | Action::StripOwners { obj, .. }
        | Action::RemoveFinalizer { obj, .. } => obj,
    }
}
