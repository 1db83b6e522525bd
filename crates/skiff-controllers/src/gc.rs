//! The garbage collector: deletes dependents of deleted owners (by ownerReferences uid) and
//! carries out foreground and orphan deletion (the `foregroundDeletion` and `orphan`
//! finalizers the API server adds for a propagationPolicy).
//!
//! Scope: owners and dependents among Deployments, ReplicaSets and Pods, the kinds the
//! controllers create. Owner references to other kinds are left alone rather than guessed.

use crate::Error;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, reflector, Store};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// The kinds the collector handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Deployment,
    ReplicaSet,
    Pod,
}

impl Kind {
    fn of_ref(r: &OwnerReference) -> Option<Kind> {
        match (r.api_version.as_str(), r.kind.as_str()) {
            ("apps/v1", "Deployment") => Some(Kind::Deployment),
            ("apps/v1", "ReplicaSet") => Some(Kind::ReplicaSet),
            ("v1", "Pod") => Some(Kind::Pod),
            _ => None,
        }
    }
}

/// What the collector needs to know of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Obj {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

impl Obj {
    /// The summary of an object of `kind`.
    pub fn new(kind: Kind, meta: &ObjectMeta) -> Obj {
        Obj {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
        }
    }
}

/// One change to make through the API.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Delete a dependent, with this propagation.
    Delete { obj: Obj, foreground: bool },
    /// Delete a dependent whose owners are all absent from the cache, once the API confirms
    /// they are gone (the cache may simply lag behind a new owner).
    DeleteIfOrphaned { obj: Obj },
    /// Remove the reference to `owner_uid` from a dependent (orphan propagation).
    StripOwner { obj: Obj, owner_uid: String },
    /// Remove a finalizer from an owner whose dependents are dealt with.
    RemoveFinalizer { obj: Obj, finalizer: String },
}

/// Computes the collector's changes for a snapshot of every handled object.
pub fn plan(objects: &[Obj]) -> Vec<Action> {
    let mut by_uid: HashMap<&str, &Obj> = HashMap::new();
    let mut dependents: HashMap<&str, Vec<&Obj>> = HashMap::new();
    for o in objects {
        by_uid.insert(&o.uid, o);
        for r in &o.owners {
            dependents.entry(r.uid.as_str()).or_default().push(o);
        }
    }
    let mut actions = Vec::new();
    for owner in objects.iter().filter(|o| o.deleting) {
        let deps = dependents
            .get(owner.uid.as_str())
            .cloned()
            .unwrap_or_default();
        let deps: Vec<&Obj> = deps
            .into_iter()
            .filter(|d| d.namespace == owner.namespace)
            .collect();
        if owner.finalizers.iter().any(|f| f == "orphan") {
            if deps.is_empty() {
                actions.push(Action::RemoveFinalizer {
                    obj: owner.clone(),
                    finalizer: "orphan".into(),
                });
            }
            for d in deps {
                actions.push(Action::StripOwner {
                    obj: d.clone(),
                    owner_uid: owner.uid.clone(),
                });
            }
        } else if owner.finalizers.iter().any(|f| f == "foregroundDeletion") {
            if deps.is_empty() {
                actions.push(Action::RemoveFinalizer {
                    obj: owner.clone(),
                    finalizer: "foregroundDeletion".into(),
                });
            }
            for d in deps.into_iter().filter(|d| !d.deleting) {
                actions.push(Action::Delete {
                    obj: d.clone(),
                    foreground: true,
                });
            }
        }
    }
    for dep in objects
        .iter()
        .filter(|o| !o.deleting && !o.owners.is_empty())
    {
        let all_known = dep.owners.iter().all(|r| Kind::of_ref(r).is_some());
        let all_absent = dep.owners.iter().all(|r| {
            by_uid
                .get(r.uid.as_str())
                .is_none_or(|o| o.namespace != dep.namespace)
        });
        if all_known && all_absent {
            actions.push(Action::DeleteIfOrphaned { obj: dep.clone() });
        }
    }
    actions
}

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

async fn delete(client: &kube::Client, obj: &Obj, foreground: bool) -> Result<(), Error> {
    let mut dp = if foreground {
        DeleteParams::foreground()
    } else {
        DeleteParams::background()
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

async fn patch(client: &kube::Client, obj: &Obj, body: serde_json::Value) -> Result<(), Error> {
    let pp = PatchParams::default();
    let p = Patch::Merge(&body);
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
        Action::Delete { obj, foreground } => {
            tracing::info!(kind = ?obj.kind, "deleting dependent of a deleted owner");
            delete(client, obj, *foreground).await
        }
        Action::DeleteIfOrphaned { obj } => {
            for r in &obj.owners {
                if !owner_gone(client, &obj.namespace, r).await? {
                    return Ok(());
                }
            }
            tracing::info!(kind = ?obj.kind, "deleting object whose owners are gone");
            delete(client, obj, false).await
        }
        Action::StripOwner { obj, owner_uid } => {
            let refs: Vec<&OwnerReference> =
                obj.owners.iter().filter(|r| &r.uid != owner_uid).collect();
            let refs = if refs.is_empty() {
                serde_json::Value::Null
            } else {
                json!(refs)
            };
            patch(
                client,
                obj,
                json!({ "metadata": { "ownerReferences": refs, "uid": obj.uid } }),
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
            )
            .await
        }
    }
}

fn action_obj(action: &Action) -> &Obj {
    match action {
        Action::Delete { obj, .. }
        | Action::DeleteIfOrphaned { obj }
        | Action::StripOwner { obj, .. }
        | Action::RemoveFinalizer { obj, .. } => obj,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: Kind, name: &str, owners: &[&str], finalizers: &[&str], deleting: bool) -> Obj {
        Obj {
            kind,
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            owners: owners
                .iter()
                .map(|o| OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: (*o).into(),
                    uid: format!("uid-{o}"),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                })
                .collect(),
            finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
            deleting,
        }
    }

    #[test]
    fn dependents_of_a_vanished_owner_are_deleted_after_confirmation() {
        let pod = obj(Kind::Pod, "p", &["rs"], &[], false);
        assert_eq!(
            plan(std::slice::from_ref(&pod)),
            vec![Action::DeleteIfOrphaned { obj: pod }]
        );
    }

    #[test]
    fn dependents_of_a_live_owner_are_kept() {
        let rs = obj(Kind::ReplicaSet, "rs", &[], &[], false);
        let pod = obj(Kind::Pod, "p", &["rs"], &[], false);
        assert_eq!(plan(&[rs, pod]), vec![]);
    }

    #[test]
    fn foreground_deletes_dependents_then_drops_the_finalizer() {
        let rs = obj(Kind::ReplicaSet, "rs", &[], &["foregroundDeletion"], true);
        let pod = obj(Kind::Pod, "p", &["rs"], &[], false);
        let terminating = obj(Kind::Pod, "t", &["rs"], &[], true);
        assert_eq!(
            plan(&[rs.clone(), pod.clone(), terminating]),
            vec![Action::Delete {
                obj: pod,
                foreground: true
            }]
        );
        assert_eq!(
            plan(std::slice::from_ref(&rs)),
            vec![Action::RemoveFinalizer {
                obj: rs,
                finalizer: "foregroundDeletion".into()
            }]
        );
    }

    #[test]
    fn orphan_strips_owner_references_then_drops_the_finalizer() {
        let rs = obj(Kind::ReplicaSet, "rs", &[], &["orphan"], true);
        let pod = obj(Kind::Pod, "p", &["rs"], &[], false);
        assert_eq!(
            plan(&[rs.clone(), pod.clone()]),
            vec![Action::StripOwner {
                obj: pod,
                owner_uid: "uid-rs".into()
            }]
        );
        assert_eq!(
            plan(std::slice::from_ref(&rs)),
            vec![Action::RemoveFinalizer {
                obj: rs,
                finalizer: "orphan".into()
            }]
        );
    }

    #[test]
    fn owners_of_unknown_kinds_are_left_alone() {
        let mut pod = obj(Kind::Pod, "p", &["job"], &[], false);
        pod.owners[0].api_version = "batch/v1".into();
        pod.owners[0].kind = "Job".into();
        assert_eq!(plan(&[pod]), vec![]);
    }
}
