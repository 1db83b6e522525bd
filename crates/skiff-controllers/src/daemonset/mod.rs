//! The DaemonSet controller: one pod on every eligible node, pinned there by node affinity
//! for the scheduler to bind, rollouts recorded as ControllerRevisions. Decisions are in
//! [`plan`] and [`node`]; this runner keeps the caches and applies the writes in order,
//! stopping at the first failure so no pod is made from a revision that does not exist.

pub mod node;
pub mod plan;
#[cfg(test)]
mod tests;
pub mod update;

use crate::events::{reference, Recorder};
use crate::expectations::{Expectations, PodWrites};
use crate::meta::{is_controlled_by, key, labels, new_controller_ref, selector_matches};
use crate::{claim, podcontrol};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use plan::{Action, FailedBackoff, Observed};
use serde_json::{json, Value};
use skiff_reconcile::{Harness, Metrics, ObjectKey, Outcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How soon to look again while the cache has not caught up with our writes.
const EXPECTATIONS_RETRY: Duration = Duration::from_millis(500);

/// Why a DaemonSet reconcile failed; every variant is retried with the queue's backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("API call failed: {0}")]
    Api(#[from] kube::Error),
    /// The DaemonSet lacks a field the controller needs (namespace, name, uid).
    #[error("daemon set lacks {0}")]
    Missing(&'static str),
    /// maxUnavailable or maxSurge could not be resolved.
    #[error("rolling update not planned: {0}")]
    Plan(#[from] plan::Error),
    /// Another object holds the revision name; `status.collisionCount` was bumped so the
    /// next pass hashes to another name.
    #[error("revision name {0} is taken by another object")]
    Collision(String),
}

/// What reconcile needs besides the DaemonSet.
struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    recorder: Recorder,
    /// Pod creates and deletes per DaemonSet uid not yet seen in the cache: without them
    /// a stale cache would put a second pod on a node.
    expectations: Expectations<PodWrites>,
    backoff: Mutex<FailedBackoff>,
}

/// Runs the controller until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let mut controller = Harness::new("daemonset-controller", client.clone())
        .metrics(&metrics)
        .watch::<DaemonSet>();
    let sets = controller.store();
    let nodes = controller.cache::<Node>();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "daemonset-controller"),
        client,
        pods: controller.cache::<Pod>(),
        nodes: nodes.clone(),
        revisions: controller.cache::<ControllerRevision>(),
        expectations: Expectations::default(),
        backoff: Mutex::new(FailedBackoff::default()),
    });
    let (sets_for_pods, sets_for_nodes) = (sets.clone(), sets);
    let seen_nodes: Mutex<HashMap<String, Value>> = Mutex::new(HashMap::new());
    controller
        .owns::<ControllerRevision>()
        .watches(move |pod: &Pod| sets_of_pod(&sets_for_pods, pod))
        .watches(move |node: &Node| {
            if node_changed(&nodes, &seen_nodes, node) {
                all_keys(&sets_for_nodes)
            } else {
                Vec::new()
            }
        })
        .run(reconcile, ctx)
        .await;
}

/// The DaemonSets a pod event concerns: its controller, and any that could adopt it.
fn sets_of_pod(sets: &Store<DaemonSet>, pod: &Pod) -> Vec<ObjectKey> {
    let pod_labels = labels(&pod.metadata);
    sets.state()
        .iter()
        .filter(|ds| ds.metadata.namespace == pod.metadata.namespace)
        .filter(|ds| {
            let uid = ds.metadata.uid.as_deref().unwrap_or_default();
            is_controlled_by(&pod.metadata, uid)
                || ds
                    .spec
                    .as_ref()
                    .is_some_and(|s| selector_matches(&s.selector, &pod_labels))
        })
        .filter_map(|ds| ObjectKey::of(&ds.metadata))
        .collect()
}

fn all_keys(sets: &Store<DaemonSet>) -> Vec<ObjectKey> {
    sets.state()
        .iter()
        .filter_map(|ds| ObjectKey::of(&ds.metadata))
        .collect()
}

/// Whether a node event can change where daemon pods run: the node came or went, or its
/// labels, taints, name-bearing spec or set of true conditions changed. Status heartbeats
/// change nothing and would otherwise requeue every DaemonSet every few seconds (upstream
/// `shouldIgnoreNodeUpdate`). The cache is updated before the mapper runs, so a node
/// missing from it was deleted.
fn node_changed(nodes: &Store<Node>, seen: &Mutex<HashMap<String, Value>>, node: &Node) -> bool {
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    if nodes.get(&ObjectRef::new(&name)).is_none() {
        seen.remove(&name);
        return true;
    }
    let true_conditions: Vec<&str> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.status == "True")
        .map(|c| c.type_.as_str())
        .collect();
    let fingerprint = json!({
        "labels": node.metadata.labels,
        "spec": node.spec,
        "conditions": true_conditions,
    });
    seen.insert(name, fingerprint.clone()) != Some(fingerprint)
}

#[tracing::instrument(skip_all, fields(key = %key(&ds.metadata)))]
async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let ns = ds
        .metadata
        .namespace
        .clone()
        .ok_or(Error::Missing("namespace"))?;
    let uid = ds.metadata.uid.clone().ok_or(Error::Missing("uid"))?;
    let in_ns = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.namespace.as_deref() == Some(ns.as_str())
    };
    let all_pods = ctx.pods.state();
    let pods: Vec<&Pod> = all_pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| in_ns(&p.metadata))
        .collect();
    let all_nodes = ctx.nodes.state();
    let nodes: Vec<&Node> = all_nodes.iter().map(|n| n.as_ref()).collect();
    let all_revisions = ctx.revisions.state();
    let revisions: Vec<&ControllerRevision> = all_revisions
        .iter()
        .map(|r| r.as_ref())
        .filter(|r| in_ns(&r.metadata))
        .collect();
    let expectations_met = ctx
        .expectations
        .settle(&uid, |w, expired| expired || w.seen_in(&pods));
    let now = Timestamp::now();
    let plan = {
        let mut backoff = ctx.backoff.lock().unwrap_or_else(|e| e.into_inner());
        backoff.gc(now);
        plan::plan(
            &Observed {
                ds: &ds,
                nodes: &nodes,
                pods: &pods,
                revisions: &revisions,
                now,
                expectations_met,
            },
            &mut backoff,
        )
    };
    if !plan.actions.is_empty() {
        tracing::debug!(actions = ?plan.actions, "daemonset plan");
    }
    let mut creates = Vec::new();
    for action in plan.actions {
        match action {
            // Creates are gathered and sent in slow-start batches once the writes before
            // them (the revision they are labelled with) are done.
            Action::CreatePod { pod, .. } => creates.push(*pod),
            other => {
                create_pods(&ds, &ns, &uid, &ctx, std::mem::take(&mut creates)).await?;
                apply(&ds, &ns, &uid, &ctx, other).await?;
            }
        }
    }
    create_pods(&ds, &ns, &uid, &ctx, creates).await?;
    if let Some(error) = plan.error {
        return Err(error.into());
    }
    let requeue = match (plan.requeue_after, expectations_met) {
        (Some(after), true) => Some(after),
        (Some(after), false) => Some(after.min(EXPECTATIONS_RETRY)),
        (None, false) => Some(EXPECTATIONS_RETRY),
        (None, true) => None,
    };
    Ok(requeue.map_or(Outcome::Done, Outcome::RequeueAfter))
}

/// Creates the gathered pods (in slow-start batches: a quota or admission error then costs
/// one request, not one per node, and one Event).
async fn create_pods(
    ds: &DaemonSet,
    ns: &str,
    uid: &str,
    ctx: &Ctx,
    pods: Vec<k8s_openapi::api::core::v1::Pod>,
) -> Result<(), Error> {
    let me = reference("apps/v1", "DaemonSet", &ds.metadata);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    podcontrol::create_pods(&api, &pods, &ctx.recorder, &me, |name| {
        ctx.expectations.expect(uid, |w| w.creates.insert(name));
    })
    .await?;
    Ok(())
}

/// Treats "not found" as done: the object went away, which is what a retry would find too.
fn ignore_missing<T>(result: Result<T, kube::Error>) -> Result<(), Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

async fn apply(
    ds: &DaemonSet,
    ns: &str,
    uid: &str,
    ctx: &Ctx,
    action: Action,
) -> Result<(), Error> {
    let me = reference("apps/v1", "DaemonSet", &ds.metadata);
    let ds_name = ds.metadata.name.as_deref().ok_or(Error::Missing("name"))?;
    let pp = PatchParams::default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let revisions: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), ns);
    let sets: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), ns);
    let owner =
        || new_controller_ref("apps/v1", "DaemonSet", &ds.metadata).ok_or(Error::Missing("uid"));
    match action {
        Action::AdoptPod { pod } => claim::adopt(&pods, &pod, &owner()?, &[]).await?,
        Action::ReleasePod { pod } => claim::release(&pods, &pod, uid).await?,
        Action::AdoptRevision { name } => {
            claim::adopt(&revisions, &name, &owner()?, &[]).await?;
        }
        Action::ReleaseRevision { name } => {
            claim::release(&revisions, &name, uid).await?;
        }
        Action::CreateRevision(revision) => {
            let name = revision.metadata.name.clone().unwrap_or_default();
            match revisions.create(&PostParams::default(), &revision).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    // Ours already (a stale cache), or another object holds the name: then a
                    // bumped collisionCount gives the next pass another name.
                    let existing = revisions.get(&name).await?;
                    if !crate::history::equal_revision(&existing, &revision) {
                        let count = ds
                            .status
                            .as_ref()
                            .and_then(|s| s.collision_count)
                            .unwrap_or(0)
                            .saturating_add(1);
                        let patch = json!({ "status": { "collisionCount": count } });
                        sets.patch_status(ds_name, &pp, &Patch::Merge(&patch))
                            .await?;
                        return Err(Error::Collision(name));
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        Action::SetRevisionNumber { name, revision } => {
            let patch = json!({ "revision": revision });
            ignore_missing(revisions.patch(&name, &pp, &Patch::Merge(&patch)).await)?;
        }
        Action::RelabelPod { pod, hash } => {
            let patch = json!({ "metadata": { "labels": { plan::REVISION_HASH_LABEL: hash } } });
            ignore_missing(pods.patch(&pod, &pp, &Patch::Merge(&patch)).await)?;
        }
        Action::DeleteRevision { name } => {
            ignore_missing(revisions.delete(&name, &DeleteParams::default()).await)?;
        }
        Action::CreatePod { pod, .. } => create_pods(ds, ns, uid, ctx, vec![*pod]).await?,
        Action::DeletePod { pod, why } => match pods.delete(&pod, &DeleteParams::default()).await {
            Ok(_) => {
                ctx.expectations
                    .expect(uid, |w| w.deletes.insert(pod.clone()));
                tracing::info!(pod, ?why, "deleted daemon pod");
                let msg = format!("Deleted pod: {pod}");
                ctx.recorder
                    .publish(&me, "Normal", "SuccessfulDelete", &msg)
                    .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(error) => {
                let msg = format!("Error deleting: {error}");
                ctx.recorder
                    .publish(&me, "Warning", "FailedDelete", &msg)
                    .await;
                return Err(error.into());
            }
        },
        Action::Event {
            type_,
            reason,
            message,
        } => ctx.recorder.publish(&me, type_, reason, &message).await,
        Action::Status(status) => {
            let patch = json!({ "status": status });
            ignore_missing(sets.patch_status(ds_name, &pp, &Patch::Merge(&patch)).await)?;
        }
    }
    Ok(())
}
