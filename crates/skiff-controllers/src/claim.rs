//! Upstream's `ControllerRefManager`: which objects a controller owns. An owner keeps the
//! objects it controls that still match it, releases those that no longer do, and adopts
//! matching orphans (objects with no controller). One home for the decision (pure) and for
//! the two patches, shared by ReplicaSet, DaemonSet, StatefulSet and Job.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::meta::{controller_ref, is_controlled_by};

/// A change of ownership claiming decided, by object name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Adopt(String),
    Release(String),
}

/// The objects an owner controls after claiming, and the changes that make it so.
pub struct Claimed<'a, T> {
    /// Controlled and matching, plus the orphans being adopted, in input order.
    pub owned: Vec<&'a T>,
    /// Adoptions and releases, in input order.
    pub changes: Vec<Change>,
}

/// Upstream's `ClaimObject` over `objects` of the owner's namespace: a controlled object
/// that no longer `matches` is released unless it is terminating; a matching orphan is
/// adopted unless it or the owner is being deleted (`RecheckDeletionTimestamp`).
pub fn claim<'a, T: Resource>(
    owner: &ObjectMeta,
    matches: impl Fn(&T) -> bool,
    objects: &[&'a T],
) -> Claimed<'a, T> {
    let mut out = Claimed {
        owned: Vec::new(),
        changes: Vec::new(),
    };
    let Some(uid) = owner.uid.as_deref() else {
        return out;
    };
    let owner_deleting = owner.deletion_timestamp.is_some();
    for &object in objects {
        let meta = object.meta();
        if meta.namespace != owner.namespace {
            continue;
        }
        let name = meta.name.clone().unwrap_or_default();
        let terminating = meta.deletion_timestamp.is_some();
        if is_controlled_by(meta, uid) {
            if matches(object) {
                out.owned.push(object);
            } else if !terminating {
                out.changes.push(Change::Release(name));
            }
        } else if controller_ref(meta).is_none()
            && !owner_deleting
            && !terminating
            && matches(object)
        {
            out.changes.push(Change::Adopt(name));
            out.owned.push(object);
        }
    }
    out
}

/// Makes `owner` the controller of `name` (a strategic merge of one owner reference, as
/// upstream's adoption patch), adding `finalizers` (a Job's pod-tracking finalizer). An
/// object gone meanwhile needs nothing.
pub async fn adopt<K>(
    api: &Api<K>,
    name: &str,
    owner: &OwnerReference,
    finalizers: &[&str],
) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut meta = json!({ "ownerReferences": [owner] });
    if !finalizers.is_empty() {
        meta["finalizers"] = json!(finalizers);
    }
    patch(api, name, json!({ "metadata": meta })).await
}

/// Removes the owner reference of `owner_uid` from `name` (strategic merge `$patch:
/// delete`, as upstream's release patch).
pub async fn release<K>(api: &Api<K>, name: &str, owner_uid: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let body =
        json!({ "metadata": { "ownerReferences": [{ "$patch": "delete", "uid": owner_uid }] } });
    patch(api, name, body).await
}

async fn patch<K>(api: &Api<K>, name: &str, body: serde_json::Value) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api
        .patch(name, &PatchParams::default(), &Patch::Strategic(&body))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn owner(deleting: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("u1".into()),
            deletion_timestamp: deleting.then(|| Time(Default::default())),
            ..ObjectMeta::default()
        }
    }

    fn pod(name: &str, ns: &str, controller: Option<&str>, app: &str, deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: Some([("app".to_string(), app.to_string())].into()),
                owner_references: controller.map(|uid| {
                    vec![OwnerReference {
                        uid: uid.into(),
                        controller: Some(true),
                        ..OwnerReference::default()
                    }]
                }),
                deletion_timestamp: deleting.then(|| Time(Default::default())),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    #[test]
    fn claim_keeps_releases_and_adopts_as_upstream() {
        let pods = [
            pod("mine", "ns", Some("u1"), "web", false),
            pod("mine-relabelled", "ns", Some("u1"), "db", false),
            pod("mine-relabelled-going", "ns", Some("u1"), "db", true),
            pod("orphan", "ns", None, "web", false),
            pod("orphan-going", "ns", None, "web", true),
            pod("orphan-other-app", "ns", None, "db", false),
            pod("someone-elses", "ns", Some("u2"), "web", false),
            pod("other-namespace", "other", None, "web", false),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let matches = |p: &Pod| {
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.get("app").map(String::as_str) == Some("web"))
        };
        let names = |c: &Claimed<Pod>| -> Vec<String> {
            c.owned
                .iter()
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect()
        };
        let live = claim(&owner(false), matches, &refs);
        assert_eq!(names(&live), ["mine", "orphan"]);
        assert_eq!(
            live.changes,
            [
                Change::Release("mine-relabelled".into()),
                Change::Adopt("orphan".into())
            ]
        );
        // An owner being deleted adopts nothing, but still releases.
        let deleting = claim(&owner(true), matches, &refs);
        assert_eq!(names(&deleting), ["mine"]);
        assert_eq!(
            deleting.changes,
            [Change::Release("mine-relabelled".into())]
        );
    }
}
