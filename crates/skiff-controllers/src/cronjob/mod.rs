//! The CronJob controller: creates a Job per scheduled time, applies the concurrency
//! policy and deadlines, and trims finished Jobs to the history limits.

pub mod plan;
#[cfg(test)]
mod tests;

use crate::events::{reference, Recorder};
use crate::meta::is_controlled_by;
use crate::Error;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::reflector::Store;
use plan::Action;
use skiff_reconcile::{Harness, Metrics, Outcome};
use std::sync::Arc;
use std::time::Duration;

/// What reconcile needs besides the CronJob.
struct Ctx {
    client: kube::Client,
    jobs: Store<Job>,
    recorder: Recorder,
}

/// Runs the controller until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let mut controller = Harness::new("cronjob-controller", client.clone())
        .metrics(&metrics)
        .watch::<CronJob>();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "cronjob-controller"),
        client,
        jobs: controller.cache::<Job>(),
    });
    controller.owns::<Job>().run(reconcile, ctx).await;
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
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
                        return Ok(Outcome::RequeueAfter(Duration::from_millis(200)));
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
        Some(after) => Outcome::RequeueAfter(after),
        None => Outcome::Done,
    })
}
