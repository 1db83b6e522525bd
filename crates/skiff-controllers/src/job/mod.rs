//! The Job controller: runs pods to completion, tracking each finished pod exactly once
//! through the `batch.kubernetes.io/job-tracking` finalizer, and deletes finished Jobs after
//! `ttlSecondsAfterFinished`.

pub mod indexes;
pub mod plan;
pub mod policy;
#[cfg(test)]
mod tests;
pub mod ttl;

use crate::claim;
use crate::events::{reference, Recorder};
use crate::expectations::Expectations;
use crate::meta::{controller_ref, labels, new_controller_ref, selector_matches};
use crate::podcontrol;
use crate::Error;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::reflector::Store;
use plan::{Action, Input, TRACKING_FINALIZER};
use serde_json::json;
use skiff_reconcile::{Harness, Metrics, ObjectKey, Outcome};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The label the API server puts on a Job's pod template (and so on its pods).
const JOB_NAME_LABELS: [&str; 2] = ["batch.kubernetes.io/job-name", "job-name"];

/// Writes this controller made for one Job that its caches may not show yet.
#[derive(Default)]
struct JobWrites {
    /// Pods created (by name) and not yet seen.
    creates: HashSet<String>,
    /// Pods deleted (by name) and still seen without a deletion timestamp.
    deletes: HashSet<String>,
    /// Pods (by uid) whose finalizer was removed after they were counted.
    removals: HashSet<String>,
    /// The Job's resourceVersion after our last status write.
    written_rv: Option<u64>,
}

/// What reconcile needs besides the Job.
struct Ctx {
    client: kube::Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    recorder: Recorder,
    expectations: Expectations<JobWrites>,
}

/// Runs the controller until the process exits. Keys are Jobs; a pod queues its Job's key
/// (its controller, or for a tracked pod that lost its controller, its job-name label), and
/// reconcile runs for keys whose Job is gone too, so pods left holding the tracking
/// finalizer are released however and whenever their Job went away.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let mut controller = Harness::new("job-controller", client.clone())
        .metrics(&metrics)
        .watch::<Job>();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "job-controller"),
        client,
        jobs: controller.store(),
        pods: controller.cache::<Pod>(),
        expectations: Expectations::default(),
    });
    controller
        .watches(|pod: &Pod| job_key(pod))
        .run_keys(reconcile_key, ctx)
        .await;
}

/// The Job key a pod concerns: its controller when that is a Job; for a pod that holds the
/// tracking finalizer without a controller (orphaned), the Job its labels name (`""` when
/// none, a name no Job has).
fn job_key(pod: &Pod) -> Option<ObjectKey> {
    let ns = pod.metadata.namespace.as_deref()?;
    match controller_ref(&pod.metadata) {
        Some(owner) if owner.kind == "Job" && owner.api_version.starts_with("batch/") => {
            Some(ObjectKey::new(Some(ns), &owner.name))
        }
        Some(_) => None,
        None if holds_finalizer(pod) => Some(ObjectKey::new(Some(ns), orphan_job_name(pod))),
        None => None,
    }
}

fn holds_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

fn orphan_job_name(pod: &Pod) -> &str {
    let labels = pod.metadata.labels.as_ref();
    JOB_NAME_LABELS
        .iter()
        .find_map(|l| labels.and_then(|m| m.get(*l)))
        .map_or("", String::as_str)
}

/// Reconciles the Job of `key` if it exists, after letting go of the pods of that key whose
/// Job no longer exists (deleted while the controller was down, in background propagation,
/// or replaced by a Job of the same name) or that lost their controller: their tracking
/// finalizer is removed, so the garbage collector's deletion of them completes. A Job's
/// pods are created only after the Job is in this same cache, so an owner missing from it
/// is gone.
async fn reconcile_key(key: ObjectKey, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let job = ctx.jobs.get(&key.to_ref::<Job>());
    let live = job.as_ref().and_then(|j| j.metadata.uid.as_deref());
    let orphans: Vec<String> = ctx
        .pods
        .state()
        .iter()
        .filter(|p| p.metadata.namespace == key.namespace && holds_finalizer(p))
        .filter(|p| match controller_ref(&p.metadata) {
            Some(r) => {
                r.kind == "Job"
                    && r.api_version.starts_with("batch/")
                    && r.name == key.name
                    && Some(r.uid.as_str()) != live
            }
            None => orphan_job_name(p) == key.name,
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    if !orphans.is_empty() {
        let ns = key.namespace.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        tracing::debug!(pods = ?orphans, "releasing pods of a deleted job");
        let results =
            futures::future::join_all(orphans.iter().map(|n| remove_finalizer(&api, n))).await;
        results.into_iter().collect::<Result<(), Error>>()?;
    }
    match job {
        Some(job) => reconcile(job, ctx).await,
        None => Ok(Outcome::Done),
    }
}

fn resource_version(job: &Job) -> Option<u64> {
    job.metadata.resource_version.as_deref()?.parse().ok()
}

/// Whether the caches show every write made for `uid`; returns the finalizer removals the
/// pod cache still lags behind on.
fn caches_caught_up(ctx: &Ctx, job: &Job, uid: &str, pods: &[&Pod]) -> Option<HashSet<String>> {
    // Nothing pending: caught up, with no removals outstanding.
    let mut removals = Some(HashSet::new());
    ctx.expectations.settle(uid, |exp, expired| {
        let live: HashSet<&str> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        exp.creates.retain(|n| !live.contains(n.as_str()));
        exp.deletes.retain(|n| live.contains(n.as_str()));
        exp.removals.retain(|u| {
            pods.iter().any(|p| {
                p.metadata.uid.as_deref() == Some(u)
                    && p.metadata
                        .finalizers
                        .as_ref()
                        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
            })
        });
        let job_fresh = exp
            .written_rv
            .is_none_or(|w| resource_version(job).is_some_and(|rv| rv >= w));
        let met = exp.creates.is_empty() && exp.deletes.is_empty() && job_fresh;
        if !(met || expired) {
            removals = None;
            return false;
        }
        exp.creates.clear();
        exp.deletes.clear();
        exp.written_rv = None;
        removals = Some(exp.removals.clone());
        exp.removals.is_empty()
    });
    removals
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let ns = job
        .metadata
        .namespace
        .clone()
        .ok_or(Error::Missing("namespace"))?;
    let uid = job.metadata.uid.clone().ok_or(Error::Missing("uid"))?;
    let all = ctx.pods.state();
    let in_ns: Vec<&Pod> = all
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| p.metadata.namespace.as_deref() == Some(&ns))
        .collect();
    // Upstream's getPodsForJob: orphans matching the selector (a manualSelector Job's, or
    // pods left by `--cascade=orphan`) are adopted, with the tracking finalizer so they
    // are counted exactly once; pods that stopped matching are released.
    let selector = job.spec.as_ref().and_then(|s| s.selector.clone());
    let claimed = claim::claim(
        &job.metadata,
        |p: &Pod| {
            selector
                .as_ref()
                .is_some_and(|s| selector_matches(s, &labels(&p.metadata)))
        },
        &in_ns,
    );
    if !claimed.changes.is_empty() {
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        let owner =
            new_controller_ref("batch/v1", "Job", &job.metadata).ok_or(Error::Missing("name"))?;
        for change in &claimed.changes {
            match change {
                claim::Change::Adopt(pod) => {
                    claim::adopt(&api, pod, &owner, &[TRACKING_FINALIZER]).await?
                }
                claim::Change::Release(pod) => claim::release(&api, pod, &uid).await?,
            }
        }
    }
    let pods = claimed.owned;
    let Some(expected_removals) = caches_caught_up(&ctx, &job, &uid, &pods) else {
        return Ok(Outcome::RequeueAfter(Duration::from_millis(200)));
    };
    let plan = plan::plan(&Input {
        job: &job,
        pods: &pods,
        expected_removals: &expected_removals,
        now: Timestamp::now(),
    });
    if !plan.actions.is_empty() {
        tracing::debug!(actions = ?plan.actions, "job plan");
    }
    let mut current = (*job).clone();
    for action in plan.actions {
        if !apply(&mut current, &uid, &pods, &ctx, action).await? {
            // A status write lost to a newer Job: look again at once.
            return Ok(Outcome::RequeueAfter(Duration::from_millis(100)));
        }
    }
    Ok(match plan.requeue_after {
        Some(after) => Outcome::RequeueAfter(after),
        None => Outcome::Done,
    })
}

/// Applies one action; `Ok(false)` when a status write conflicted.
async fn apply(
    job: &mut Job,
    uid: &str,
    pods: &[&Pod],
    ctx: &Ctx,
    action: Action,
) -> Result<bool, Error> {
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let name = job.metadata.name.clone().ok_or(Error::Missing("name"))?;
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let me = reference("batch/v1", "Job", &job.metadata);
    match action {
        Action::Status(status) => {
            job.status = Some(*status);
            match job_api
                .replace_status(&name, &PostParams::default(), job)
                .await
            {
                Ok(written) => {
                    let rv = resource_version(&written);
                    ctx.expectations.expect(uid, |e| e.written_rv = rv);
                    job.metadata.resource_version = written.metadata.resource_version;
                }
                Err(kube::Error::Api(e)) if e.code == 409 => return Ok(false),
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
                Err(error) => return Err(error.into()),
            }
        }
        Action::RemoveFinalizer { pods: names } => {
            let results =
                futures::future::join_all(names.iter().map(|n| remove_finalizer(&pod_api, n)))
                    .await;
            for (n, result) in names.iter().zip(results) {
                result?;
                let pod_uid = pods
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(n))
                    .and_then(|p| p.metadata.uid.clone());
                ctx.expectations.expect(uid, |e| e.removals.extend(pod_uid));
            }
        }
        Action::Delete { pods: names } => {
            let dp = DeleteParams::default();
            let results =
                futures::future::join_all(names.iter().map(|n| pod_api.delete(n, &dp))).await;
            for (n, result) in names.iter().zip(results) {
                match result {
                    Ok(_) => {
                        ctx.expectations
                            .expect(uid, |e| e.deletes.insert(n.clone()));
                        let msg = format!("Deleted pod: {n}");
                        ctx.recorder
                            .publish(&me, "Normal", "SuccessfulDelete", &msg)
                            .await;
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Action::Create { pods: new } => {
            let pods: Vec<Pod> = new
                .iter()
                .map(|n| plan::pod_for(job, n).ok_or(Error::Missing("spec.template")))
                .collect::<Result<_, _>>()?;
            podcontrol::create_pods(&pod_api, &pods, &ctx.recorder, &me, |pod| {
                ctx.expectations.expect(uid, |e| e.creates.insert(pod));
            })
            .await?;
        }
        Action::Event {
            type_,
            reason,
            message,
        } => ctx.recorder.publish(&me, type_, reason, &message).await,
        Action::DeleteJob => {
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
    }
    Ok(true)
}

/// Removes only the tracking finalizer, leaving any others (strategic merge's
/// `$deleteFromPrimitiveList`, as upstream); a pod already gone needs nothing.
async fn remove_finalizer(api: &Api<Pod>, pod: &str) -> Result<(), Error> {
    let patch = json!({ "metadata": {
        "$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER],
    }});
    match api
        .patch(pod, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}
