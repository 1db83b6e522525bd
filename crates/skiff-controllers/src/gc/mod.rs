//! The garbage collector: deletes dependents of deleted owners (by ownerReferences uid) and
//! carries out foreground and orphan deletion (the `foregroundDeletion` and `orphan`
//! finalizers the API server adds for a propagationPolicy).
//!
//! Scope: owners and dependents among Deployments, ReplicaSets and Pods, the kinds the
//! controllers create. Owner references to other kinds are left alone rather than guessed.
//! Decisions are in `plan`; this runner keeps the caches and applies the actions, as one
//! pass over the whole state under a single key of the harness (queued by any change and
//! by a short resync, so nothing depends on one event being seen).

pub mod plan;
#[cfg(test)]
mod tests;

use crate::Error;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
pub use plan::{plan, Action, Kind, Obj, Propagation};
use serde_json::json;
use skiff_reconcile::{Config, Harness, Metrics, ObjectKey, Outcome};
use std::sync::Arc;
use std::time::Duration;

/// A pass runs at least this often although nothing changed.
const RESYNC: Duration = Duration::from_secs(5);

/// The caches the collector plans from, and its client.
struct Caches {
    client: kube::Client,
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
}

impl Caches {
    fn snapshot(&self) -> Vec<Obj> {
        let d = self
            .deployments
            .state()
            .into_iter()
            .map(|o| Obj::new(Kind::Deployment, &o.metadata));
        let r = self
            .replicasets
            .state()
            .into_iter()
            .map(|o| Obj::new(Kind::ReplicaSet, &o.metadata));
        let p = self
            .pods
            .state()
            .into_iter()
            .map(|o| Obj::new(Kind::Pod, &o.metadata));
        d.chain(r).chain(p).collect()
    }
}

/// Runs the collector until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let config = Config {
        resync: Some(RESYNC),
        ..Config::default()
    };
    let mut controller = Harness::new("garbage-collector-controller", client.clone())
        .metrics(&metrics)
        .config(config)
        .keys()
        .key(ObjectKey::named("graph"));
    let caches = Arc::new(Caches {
        client,
        deployments: controller.cache(),
        replicasets: controller.cache(),
        pods: controller.cache(),
    });
    controller
        .triggers::<Deployment>()
        .triggers::<ReplicaSet>()
        .triggers::<Pod>()
        .run_keys(|_key, caches: Arc<Caches>| collect(caches), caches)
        .await;
}

/// One pass: plans from the caches and applies every action; a failed action does not stop
/// the others, and the pass is retried with backoff.
async fn collect(caches: Arc<Caches>) -> Result<Outcome, Error> {
    let mut failed = None;
    for action in plan(&caches.snapshot()) {
        if let Err(error) = apply(&caches.client, &action).await {
            tracing::debug!(%error, ?action, "garbage collection step failed");
            failed = Some(error);
        }
    }
    failed.map_or(Ok(Outcome::Done), Err)
}

fn api<K>(client: &kube::Client, ns: &str) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(client.clone(), ns)
}

/// Whether the owner `r` of an object in `ns` is gone (absent, or replaced by a new uid).
async fn owner_gone(client: &kube::Client, ns: &str, r: &OwnerReference) -> Result<bool, Error> {
    let meta = match Kind::of_ref(r) {
        Some(Kind::Deployment) => api::<Deployment>(client, ns)
            .get_opt(&r.name)
            .await?
            .map(|o| o.metadata),
        Some(Kind::ReplicaSet) => api::<ReplicaSet>(client, ns)
            .get_opt(&r.name)
            .await?
            .map(|o| o.metadata),
        Some(Kind::Pod) => api::<Pod>(client, ns)
            .get_opt(&r.name)
            .await?
            .map(|o| o.metadata),
        None => return Ok(false),
    };
    Ok(meta.is_none_or(|m| m.uid.as_deref() != Some(&r.uid)))
}

async fn delete(client: &kube::Client, obj: &Obj, propagation: Propagation) -> Result<(), Error> {
    let mut dp = match propagation {
        Propagation::Background => DeleteParams::background(),
        Propagation::Foreground => DeleteParams::foreground(),
        Propagation::Orphan => DeleteParams::orphan(),
    };
    dp.preconditions = Some(kube::api::Preconditions {
        uid: Some(obj.uid.clone()),
        resource_version: None,
    });
    let result = match obj.kind {
        Kind::Deployment => api::<Deployment>(client, &obj.namespace)
            .delete(&obj.name, &dp)
            .await
            .map(|_| ()),
        Kind::ReplicaSet => api::<ReplicaSet>(client, &obj.namespace)
            .delete(&obj.name, &dp)
            .await
            .map(|_| ()),
        Kind::Pod => api::<Pod>(client, &obj.namespace)
            .delete(&obj.name, &dp)
            .await
            .map(|_| ()),
    };
    match result {
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        other => other.map_err(Error::from),
    }
}

/// Patches `obj` with a merge patch, or with a strategic merge patch (`strategic`), which
/// merges `ownerReferences` by uid and so leaves concurrent changes to other references be.
async fn patch(
    client: &kube::Client,
    obj: &Obj,
    body: serde_json::Value,
    strategic: bool,
) -> Result<(), Error> {
    let pp = PatchParams::default();
    let p = if strategic {
        Patch::Strategic(&body)
    } else {
        Patch::Merge(&body)
    };
    let result = match obj.kind {
        Kind::Deployment => api::<Deployment>(client, &obj.namespace)
            .patch(&obj.name, &pp, &p)
            .await
            .map(|_| ()),
        Kind::ReplicaSet => api::<ReplicaSet>(client, &obj.namespace)
            .patch(&obj.name, &pp, &p)
            .await
            .map(|_| ()),
        Kind::Pod => api::<Pod>(client, &obj.namespace)
            .patch(&obj.name, &pp, &p)
            .await
            .map(|_| ()),
    };
    match result {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map_err(Error::from),
    }
}

#[tracing::instrument(skip_all, fields(key = %format!("{}/{}", action_obj(action).namespace, action_obj(action).name)))]
async fn apply(client: &kube::Client, action: &Action) -> Result<(), Error> {
    match action {
        Action::Delete {
            obj,
            propagation,
            unblock,
        } => {
            if *unblock {
                // upstream's unblockOwnerReferencesStrategicMergePatch: the blocking references
                // again, with blockOwnerDeletion false, merged by uid; the uid is a precondition.
                let refs: Vec<OwnerReference> = obj
                    .owners
                    .iter()
                    .filter(|r| r.block_owner_deletion == Some(true))
                    .map(|r| OwnerReference {
                        block_owner_deletion: Some(false),
                        ..r.clone()
                    })
                    .collect();
                tracing::info!(kind = ?obj.kind, "dependent may close an ownership cycle; unblocking its owners");
                patch(
                    client,
                    obj,
                    json!({ "metadata": { "ownerReferences": refs, "uid": obj.uid } }),
                    true,
                )
                .await?;
            }
            tracing::info!(kind = ?obj.kind, ?propagation, "deleting dependent of a deleted owner");
            delete(client, obj, *propagation).await
        }
        Action::DeleteIfOrphaned { obj } => {
            for r in &obj.owners {
                if !owner_gone(client, &obj.namespace, r).await? {
                    return Ok(());
                }
            }
            tracing::info!(kind = ?obj.kind, "deleting object whose owners are gone");
            delete(client, obj, Propagation::Background).await
        }
        Action::StripOwners { obj, owner_uids } => {
            // upstream's deleteOwnerRefStrategicMergePatch; when no reference would be left,
            // the field is removed instead of left as `[]` (upstream's omitempty drops it).
            let left = obj.owners.iter().any(|r| !owner_uids.contains(&r.uid));
            let deletes = if left {
                json!(owner_uids
                    .iter()
                    .map(|uid| json!({ "$patch": "delete", "uid": uid }))
                    .collect::<Vec<_>>())
            } else {
                serde_json::Value::Null
            };
            tracing::info!(owners = ?owner_uids, "removing owner references");
            patch(
                client,
                obj,
                json!({ "metadata": { "ownerReferences": deletes, "uid": obj.uid } }),
                true,
            )
            .await
        }
        Action::RemoveFinalizer { obj, finalizer } => {
            let rest: Vec<&String> = obj.finalizers.iter().filter(|f| *f != finalizer).collect();
            tracing::info!(%finalizer, "dependents handled; removing finalizer");
            patch(
                client,
                obj,
                json!({ "metadata": { "finalizers": rest, "uid": obj.uid } }),
                false,
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
