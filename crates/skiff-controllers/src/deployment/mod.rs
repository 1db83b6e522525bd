//! The Deployment controller: one ReplicaSet per template, rolled over by strategy.

pub mod hash;
pub mod plan;
#[cfg(test)]
mod tests;

use crate::events::{reference, Recorder};
use crate::meta::is_controlled_by;
use crate::Error;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use plan::{Action, DESIRED_REPLICAS, MAX_REPLICAS, REVISION};
use serde_json::json;
use skiff_reconcile::{Harness, Metrics, Outcome};
use std::sync::Arc;

/// What reconcile needs besides the Deployment.
struct Ctx {
    client: kube::Client,
    replicasets: Store<ReplicaSet>,
    recorder: Recorder,
}

/// Runs the controller until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let mut controller = Harness::new("deployment-controller", client.clone())
        .metrics(&metrics)
        .watch::<Deployment>();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "deployment-controller"),
        client,
        replicasets: controller.cache::<ReplicaSet>(),
    });
    controller.owns::<ReplicaSet>().run(reconcile, ctx).await;
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let ns = d
        .metadata
        .namespace
        .clone()
        .ok_or(Error::Missing("namespace"))?;
    let uid = d.metadata.uid.clone().ok_or(Error::Missing("uid"))?;
    let all = ctx.replicasets.state();
    let owned: Vec<&ReplicaSet> = all
        .iter()
        .map(|rs| rs.as_ref())
        .filter(|rs| rs.metadata.namespace.as_deref() == Some(&ns))
        .filter(|rs| is_controlled_by(&rs.metadata, &uid))
        .collect();
    let plan = plan::plan(&d, &owned, Timestamp::now());
    if !plan.actions.is_empty() {
        tracing::debug!(actions = ?plan.actions, "deployment plan");
    }
    for action in plan.actions {
        apply(&d, &ns, &ctx, action).await?;
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

async fn apply(d: &Deployment, ns: &str, ctx: &Ctx, action: Action) -> Result<(), Error> {
    let me = reference("apps/v1", "Deployment", &d.metadata);
    let name = d.metadata.name.as_deref().ok_or(Error::Missing("name"))?;
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let pp = PatchParams::default();
    match action {
        Action::Create(rs) => {
            let rs_name = rs.metadata.name.clone().unwrap_or_default();
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            match rs_api.create(&PostParams::default(), &rs).await {
                Ok(_) => {
                    if replicas > 0 {
                        let msg = format!("Scaled up replica set {rs_name} from 0 to {replicas}");
                        ctx.recorder
                            .publish(&me, "Normal", "ScalingReplicaSet", &msg)
                            .await;
                    }
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    let existing = rs_api.get(&rs_name).await?;
                    let ours = existing.metadata.uid.as_ref().is_some_and(|_| {
                        is_controlled_by(
                            &existing.metadata,
                            d.metadata.uid.as_deref().unwrap_or_default(),
                        )
                    });
                    let same = existing
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.as_ref())
                        .zip(d.spec.as_ref().map(|s| &s.template))
                        .is_some_and(|(a, b)| hash::equal_ignore_hash(a, b));
                    if !(ours && same) {
                        // A hash collision: bump collisionCount so the next name differs.
                        let count = d
                            .status
                            .as_ref()
                            .and_then(|s| s.collision_count)
                            .unwrap_or(0)
                            + 1;
                        let patch = json!({ "status": { "collisionCount": count } });
                        d_api.patch_status(name, &pp, &Patch::Merge(&patch)).await?;
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        Action::Scale { rs, from, to } => {
            let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let max = if d
                .spec
                .as_ref()
                .and_then(|s| s.strategy.as_ref())
                .and_then(|s| s.type_.as_deref())
                == Some("Recreate")
            {
                replicas
            } else {
                replicas + plan::resolve_fenceposts(d).0
            };
            let patch = json!({
                "metadata": { "annotations": {
                    DESIRED_REPLICAS: replicas.to_string(),
                    MAX_REPLICAS: max.to_string(),
                }},
                "spec": { "replicas": to },
            });
            ignore_missing(rs_api.patch(&rs, &pp, &Patch::Merge(&patch)).await)?;
            // Only the annotations change when the size stays: no event for that.
            if to != from {
                let dir = if to > from { "up" } else { "down" };
                let msg = format!("Scaled {dir} replica set {rs} from {from} to {to}");
                ctx.recorder
                    .publish(&me, "Normal", "ScalingReplicaSet", &msg)
                    .await;
            }
        }
        Action::SetRevision { rs, revision } => {
            let patch =
                json!({ "metadata": { "annotations": { REVISION: revision.to_string() } } });
            ignore_missing(rs_api.patch(&rs, &pp, &Patch::Merge(&patch)).await)?;
        }
        Action::SetDeploymentRevision(revision) => {
            let patch =
                json!({ "metadata": { "annotations": { REVISION: revision.to_string() } } });
            ignore_missing(d_api.patch(name, &pp, &Patch::Merge(&patch)).await)?;
        }
        Action::Delete { rs } => {
            ignore_missing(rs_api.delete(&rs, &DeleteParams::default()).await)?;
        }
        Action::Status(status) => {
            let patch = json!({ "status": status });
            ignore_missing(d_api.patch_status(name, &pp, &Patch::Merge(&patch)).await)?;
        }
    }
    Ok(())
}
