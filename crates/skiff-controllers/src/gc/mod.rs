//! The garbage collector: deletes dependents of deleted owners (by ownerReferences uid) and
//! carries out foreground and orphan deletion (the `foregroundDeletion` and `orphan`
//! finalizers the API server adds for a propagationPolicy).
//!
//! Scope: owners and dependents among Deployments, ReplicaSets and Pods, the kinds the
//! controllers create. Owner references to other kinds are left alone rather than guessed.
//! Decisions are in `plan`; this runner keeps the caches and applies the actions.

pub mod plan;
#[cfg(test)]
mod tests;

use crate::Error;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, reflector, Store};
use kube::runtime::{watcher, WatchStreamExt};
pub use plan::{plan, Action, Kind, Obj, Propagation};
use serde_json::json;
use std::time::Duration;

/// The caches the collector plans from.
struct Caches {
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

/// A cache of `K` kept by a watch, and a stream that yields on every change.
fn cached<K>(client: &kube::Client) -> (Store<K>, impl Stream<Item = ()> + Send + 'static)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()).default_backoff(),
    )
    .map(|_| ());
    (store, stream)
}

/// Runs the collector until the process exits: a pass after every burst of changes, and a
/// periodic pass so nothing depends on one event being seen.
pub async fn run(client: kube::Client) {
    let (deployments, d) = cached::<Deployment>(&client);
    let (replicasets, r) = cached::<ReplicaSet>(&client);
    let (pods, p) = cached::<Pod>(&client);
    let caches = Caches {
        deployments,
        replicasets,
        pods,
    };
    let mut changes = futures::stream::select(futures::stream::select(d, r), p).boxed();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            change = changes.next() => if change.is_none() { return },
            _ = tick.tick() => {}
        }
        // Let the burst settle (and the watches catch up) before planning.
        let settle = tokio::time::sleep(Duration::from_millis(20));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                _ = &mut settle => break,
                change = changes.next() => if change.is_none() { return },
            }
        }
        for action in plan(&caches.snapshot()) {
            if let Err(error) = apply(&client, &action).await {
                tracing::warn!(%error, ?action, "garbage collection step failed; retrying later");
            }
        }
    }
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
