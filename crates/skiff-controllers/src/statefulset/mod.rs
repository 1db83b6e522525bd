//! The StatefulSet controller: members with stable names `<set>-<ordinal>`, a claim per member
//! and template, ordered or parallel scaling, and rollouts recorded as ControllerRevisions.
//! Decisions are in [`plan`]; this runner keeps the caches and applies the writes in order,
//! stopping at the first failure so nothing is done out of sequence.

pub mod plan;
pub mod pod;
#[cfg(test)]
mod tests;

use crate::claim;
use crate::events::{reference, Recorder};
use crate::expectations::Expectations;
use crate::meta::{is_controlled_by, new_controller_ref};
use crate::Error;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::Store;
use plan::{Action, Observed};
use serde_json::json;
use skiff_reconcile::{Harness, Metrics, ObjectKey, Outcome};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// How soon to look again while the cache has not caught up with our writes.
const EXPECTATIONS_RETRY: Duration = Duration::from_millis(200);

/// Pod creates and deletes made for one set and not yet seen in the cache: without them a
/// stale cache would delete one pod too many in a rolling update with maxUnavailable.
#[derive(Default)]
struct SetWrites {
    creates: HashSet<String>,
    /// `(name, uid)`: a pod of the name with another uid is a replacement, not the old one.
    deletes: HashSet<(String, String)>,
}

impl SetWrites {
    /// Whether the cache shows every created pod (terminating or not: a member's name is
    /// taken either way) and none of the deleted ones still live.
    fn seen_in(&self, pods: &[&Pod]) -> bool {
        let live = |name: &str, uid: &str| {
            pods.iter().any(|p| {
                p.metadata.name.as_deref() == Some(name)
                    && p.metadata.deletion_timestamp.is_none()
                    && p.metadata.uid.as_deref() == Some(uid)
            })
        };
        self.creates.iter().all(|n| {
            pods.iter()
                .any(|p| p.metadata.name.as_deref() == Some(n.as_str()))
        }) && self.deletes.iter().all(|(n, u)| !live(n, u))
    }
}

/// What reconcile needs besides the StatefulSet.
struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    claims: Store<PersistentVolumeClaim>,
    revisions: Store<ControllerRevision>,
    recorder: Recorder,
    expectations: Expectations<SetWrites>,
}

/// Runs the controller until the process exits: a set is reconciled when it changes, when
/// one of its revisions, pods (or would-be members) or claims changes, and on resync.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let mut controller = Harness::new("statefulset-controller", client.clone())
        .metrics(&metrics)
        .watch::<StatefulSet>();
    let sets = controller.store();
    let sets_for_claims = sets.clone();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "statefulset-controller"),
        client,
        pods: controller.cache::<Pod>(),
        claims: controller.cache::<PersistentVolumeClaim>(),
        revisions: controller.cache::<ControllerRevision>(),
        expectations: Expectations::default(),
    });
    controller
        .owns::<ControllerRevision>()
        .watches(move |pod: &Pod| sets_of_pod(&sets, pod))
        .watches(move |claim: &PersistentVolumeClaim| sets_of_claim(&sets_for_claims, claim))
        .run(reconcile, ctx)
        .await;
}

/// The sets a pod event concerns: its controller, and any whose member it could be.
fn sets_of_pod(sets: &Store<StatefulSet>, pod: &Pod) -> Vec<ObjectKey> {
    sets.state()
        .iter()
        .filter(|s| s.metadata.namespace == pod.metadata.namespace)
        .filter(|s| {
            let uid = s.metadata.uid.as_deref().unwrap_or_default();
            is_controlled_by(&pod.metadata, uid) || pod::is_member(s, pod)
        })
        .filter_map(|s| ObjectKey::of(&s.metadata))
        .collect()
}

/// The sets a claim event concerns: those with a template whose claims it could be
/// (`<template>-<set>-<ordinal>`), so a pod waiting on a claim's deletion is retried.
fn sets_of_claim(sets: &Store<StatefulSet>, claim: &PersistentVolumeClaim) -> Vec<ObjectKey> {
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    sets.state()
        .iter()
        .filter(|s| s.metadata.namespace == claim.metadata.namespace)
        .filter(|s| {
            let set = s.metadata.name.as_deref().unwrap_or_default();
            pod::claim_templates(s).iter().any(|t| {
                let prefix = format!("{}-{set}-", t.metadata.name.as_deref().unwrap_or_default());
                name.strip_prefix(&prefix)
                    .is_some_and(|ord| !ord.is_empty() && ord.bytes().all(|b| b.is_ascii_digit()))
            })
        })
        .filter_map(|s| ObjectKey::of(&s.metadata))
        .collect()
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let ns = set
        .metadata
        .namespace
        .clone()
        .ok_or(Error::Missing("namespace"))?;
    let uid = set.metadata.uid.clone().ok_or(Error::Missing("uid"))?;
    let in_ns = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.namespace.as_deref() == Some(ns.as_str())
    };
    let all_pods = ctx.pods.state();
    let pods: Vec<&Pod> = all_pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| in_ns(&p.metadata))
        .collect();
    if !ctx
        .expectations
        .settle(&uid, |w, expired| expired || w.seen_in(&pods))
    {
        return Ok(Outcome::RequeueAfter(EXPECTATIONS_RETRY));
    }
    let all_claims = ctx.claims.state();
    let claims: Vec<&PersistentVolumeClaim> = all_claims
        .iter()
        .map(|c| c.as_ref())
        .filter(|c| in_ns(&c.metadata))
        .collect();
    let all_revisions = ctx.revisions.state();
    let revisions: Vec<&ControllerRevision> = all_revisions
        .iter()
        .map(|r| r.as_ref())
        .filter(|r| in_ns(&r.metadata))
        .collect();
    let plan = plan::plan(&Observed {
        set: &set,
        pods: &pods,
        claims: &claims,
        revisions: &revisions,
        now: Timestamp::now(),
    });
    if !plan.actions.is_empty() {
        tracing::debug!(actions = ?plan.actions, "statefulset plan");
    }
    for action in plan.actions {
        apply(&set, &ns, &uid, &ctx, action).await?;
    }
    Ok(match plan.requeue_after {
        Some(after) => Outcome::RequeueAfter(after),
        None => Outcome::Done,
    })
}

/// Treats "not found" as done: the object went away, which is what a retry would find too.
fn ignore_missing<T>(result: Result<T, kube::Error>) -> Result<(), Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

fn api<K>(ctx: &Ctx, ns: &str) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(ctx.client.clone(), ns)
}

async fn apply(
    set: &StatefulSet,
    ns: &str,
    uid: &str,
    ctx: &Ctx,
    action: Action,
) -> Result<(), Error> {
    let me = reference("apps/v1", "StatefulSet", &set.metadata);
    let set_name = set.metadata.name.as_deref().ok_or(Error::Missing("name"))?;
    let pp = PatchParams::default();
    let pods: Api<Pod> = api(ctx, ns);
    let revisions: Api<ControllerRevision> = api(ctx, ns);
    let claims: Api<PersistentVolumeClaim> = api(ctx, ns);
    match action {
        Action::AdoptPod { pod } => {
            let owner = new_controller_ref("apps/v1", "StatefulSet", &set.metadata)
                .ok_or(Error::Missing("uid"))?;
            claim::adopt(&pods, &pod, &owner, &[]).await?;
        }
        Action::ReleasePod { pod } => claim::release(&pods, &pod, uid).await?,
        Action::AdoptRevision { name } => {
            let owner = new_controller_ref("apps/v1", "StatefulSet", &set.metadata)
                .ok_or(Error::Missing("uid"))?;
            claim::adopt(&revisions, &name, &owner, &[]).await?;
        }
        Action::CreateRevision(revision) => {
            let name = revision.metadata.name.clone().unwrap_or_default();
            match revisions.create(&PostParams::default(), &*revision).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    // Ours already (a stale cache), or another object holds the name: then
                    // a bumped collisionCount gives the next pass another name.
                    let existing = revisions.get(&name).await?;
                    if !crate::history::equal_revision(&existing, &revision) {
                        let count = set
                            .status
                            .as_ref()
                            .and_then(|s| s.collision_count)
                            .unwrap_or(0)
                            .saturating_add(1);
                        let sets: Api<StatefulSet> = api(ctx, ns);
                        let patch = json!({ "status": { "collisionCount": count } });
                        sets.patch_status(set_name, &pp, &Patch::Merge(&patch))
                            .await?;
                        return Err(Error::Missing("a free revision name (collision)"));
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        Action::SetRevisionNumber { name, revision } => {
            let patch = json!({ "revision": revision });
            ignore_missing(revisions.patch(&name, &pp, &Patch::Merge(&patch)).await)?;
        }
        Action::DeleteRevision { name } => {
            ignore_missing(revisions.delete(&name, &DeleteParams::default()).await)?;
        }
        Action::CreateClaim { claim, pod } => {
            let name = claim.metadata.name.clone().unwrap_or_default();
            match claims.create(&PostParams::default(), &*claim).await {
                Ok(_) => {
                    let msg =
                        format!("create Claim {name} Pod {pod} in StatefulSet {set_name} success");
                    ctx.recorder
                        .publish(&me, "Normal", "SuccessfulCreate", &msg)
                        .await;
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(error) => {
                    let msg = format!(
                        "create Claim {name} for Pod {pod} in StatefulSet {set_name} failed error: {error}"
                    );
                    ctx.recorder
                        .publish(&me, "Warning", "FailedCreate", &msg)
                        .await;
                    return Err(error.into());
                }
            }
        }
        Action::CreatePod(pod) => {
            let name = pod.metadata.name.clone().unwrap_or_default();
            match pods.create(&PostParams::default(), &*pod).await {
                Ok(_) => {
                    ctx.expectations
                        .expect(uid, |w| w.creates.insert(name.clone()));
                    let msg = format!("create Pod {name} in StatefulSet {set_name} successful");
                    ctx.recorder
                        .publish(&me, "Normal", "SuccessfulCreate", &msg)
                        .await;
                }
                // The cache had not shown it yet; the next pass sees it.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(error) => {
                    let msg = format!(
                        "create Pod {name} in StatefulSet {set_name} failed error: {error}"
                    );
                    ctx.recorder
                        .publish(&me, "Warning", "FailedCreate", &msg)
                        .await;
                    return Err(error.into());
                }
            }
        }
        Action::DeletePod {
            pod,
            uid: pod_uid,
            why,
        } => {
            let dp = DeleteParams {
                preconditions: pod_uid.clone().map(|u| Preconditions {
                    uid: Some(u),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match pods.delete(&pod, &dp).await {
                Ok(_) => {
                    ctx.expectations
                        .expect(uid, |w| w.deletes.extend(pod_uid.map(|u| (pod.clone(), u))));
                    tracing::info!(pod, ?why, "deleted pod");
                    let msg = format!("delete Pod {pod} in StatefulSet {set_name} successful");
                    ctx.recorder
                        .publish(&me, "Normal", "SuccessfulDelete", &msg)
                        .await;
                }
                // Gone already, or replaced by a pod of the same name (uid precondition).
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(error) => {
                    let msg =
                        format!("delete Pod {pod} in StatefulSet {set_name} failed error: {error}");
                    ctx.recorder
                        .publish(&me, "Warning", "FailedDelete", &msg)
                        .await;
                    return Err(error.into());
                }
            }
        }
        Action::SetPodLabels { pod, labels } => {
            let patch = json!({ "metadata": { "labels": labels } });
            ignore_missing(pods.patch(&pod, &pp, &Patch::Merge(&patch)).await)?;
        }
        Action::SetClaimOwners { claim, owners } => {
            let patch = json!({ "metadata": { "ownerReferences": owners } });
            ignore_missing(claims.patch(&claim, &pp, &Patch::Merge(&patch)).await)?;
        }
        Action::Status(status) => {
            let sets: Api<StatefulSet> = api(ctx, ns);
            let patch = json!({ "status": status });
            ignore_missing(
                sets.patch_status(set_name, &pp, &Patch::Merge(&patch))
                    .await,
            )?;
        }
    }
    Ok(())
}
