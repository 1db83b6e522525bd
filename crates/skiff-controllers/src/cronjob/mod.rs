//! The CronJob controller: creates a Job per scheduled time, applies the concurrency
//! policy and deadlines, and trims finished Jobs to the history limits.

pub mod plan;
#[cfg(test)]
mod tests;

use crate::events::{reference, Recorder};
use crate::meta::{controller_ref, is_controlled_by, key};
use crate::Error;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::reflector::{self, reflector, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use plan::Action;
use std::sync::Arc;
use std::time::Duration;

/// Backoff after a failed reconcile (the Controller also rate-limits per key).
const ERROR_REQUEUE: Duration = Duration::from_secs(2);

/// What reconcile needs besides the CronJob.
struct Ctx {
    client: kube::Client,
    jobs: Store<Job>,
    recorder: Recorder,
}

/// Runs the controller until the process exits.
pub async fn run(client: kube::Client) {
    let (jobs, writer) = reflector::store();
    let job_events = reflector(
        writer,
        watcher(Api::<Job>::all(client.clone()), watcher::Config::default()).default_backoff(),
    )
    .touched_objects();
    let controller = Controller::new(
        Api::<CronJob>::all(client.clone()),
        watcher::Config::default(),
    );
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "cronjob-controller"),
        client,
        jobs,
    });
    controller
        .watches_stream(job_events, |job: Job| owner_of(&job))
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "cronjob reconcile failed");
            }
        })
        .await;
}

/// The CronJob a Job event concerns: its controller, when that is a CronJob.
fn owner_of(job: &Job) -> Option<ObjectRef<CronJob>> {
    let owner = controller_ref(&job.metadata)?;
    if owner.kind != "CronJob" {
        return None;
    }
    let ns = job.metadata.namespace.as_deref()?;
    Some(ObjectRef::new(&owner.name).within(ns))
}

fn error_policy(_cj: Arc<CronJob>, error: &Error, _ctx: Arc<Ctx>) -> Requeue {
    tracing::warn!(%error, "cronjob reconcile failed; retrying");
    Requeue::requeue(ERROR_REQUEUE)
}

#[tracing::instrument(skip_all, fields(key = %key(&cj.metadata)))]
async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Requeue, Error> {
    let ns = cj
        .metadata
        .namespace
        .clone()
        .ok_or(Error::Missing("namespace"))?;
    let uid = cj.metadata.uid.clone().ok_or(Error::Missing("uid"))?;
    let name = cj.metadata.name.clone().ok_or(Error::Missing("name"))?;
    let all = ctx.jobs.state();
    let jobs: Vec<&Job> = all
        .iter()
        .map(|j| j.as_ref())
        .filter(|j| j.metadata.namespace.as_deref() == Some(&ns))
        .filter(|j| is_controlled_by(&j.metadata, &uid))
        .collect();
    let plan = plan::plan(&cj, &jobs, Timestamp::now());
    if !plan.actions.is_empty() {
        tracing::debug!(actions = ?plan.actions, "cronjob plan");
    }
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let me = reference("batch/v1", "CronJob", &cj.metadata);
    let mut created = Vec::new();
    for action in plan.actions {
        match action {
            Action::CreateJob { name: _, scheduled } => {
                let job = plan::job_for(&cj, scheduled).ok_or(Error::Missing("name"))?;
                match job_api.create(&PostParams::default(), &job).await {
                    Ok(made) => created.push(plan::job_ref(&made)),
                    // Created by an earlier pass whose status write was lost.
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(error) => {
                        let msg = format!("Error creating job: {error}");
                        ctx.recorder
                            .publish(&me, "Warning", "FailedCreate", &msg)
                            .await;
                        return Err(error.into());
                    }
                }
            }
            Action::DeleteJob { name } => {
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..DeleteParams::default()
                };
                match job_api.delete(&name, &dp).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Action::Status(mut status) => {
                if !created.is_empty() {
                    status
                        .active
                        .get_or_insert_with(Vec::new)
                        .append(&mut created);
                }
                let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
                let mut next = (*cj).clone();
                next.status = Some(status);
                match api
                    .replace_status(&name, &PostParams::default(), &next)
                    .await
                {
                    Ok(_) => {}
                    // A newer CronJob is on its way through the watch; its pass decides.
                    Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
                        return Ok(Requeue::requeue(Duration::from_millis(200)));
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Action::Event {
                type_,
                reason,
                message,
            } => ctx.recorder.publish(&me, type_, reason, &message).await,
        }
    }
    Ok(match plan.requeue_after {
        Some(after) => Requeue::requeue(after),
        None => Requeue::await_change(),
    })
}
