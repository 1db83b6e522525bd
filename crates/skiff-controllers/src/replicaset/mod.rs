//! The ReplicaSet controller: keeps `replicas` pods matching the selector. The same
//! controller runs for ReplicationControllers (upstream's replication manager is the
//! ReplicaSet controller too), each kind seen through a ReplicaSet view by [`Replicated`].

pub mod plan;
#[cfg(test)]
mod tests;

use crate::events::{reference, Recorder};
use crate::expectations::{Expectations, PodWrites};
use crate::meta::{is_controlled_by, new_controller_ref};
use crate::Error;
use crate::{claim, podcontrol};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use plan::{Action, Counts};
use serde_json::json;
use skiff_reconcile::{Harness, Metrics, Object, ObjectKey, Outcome};
use std::sync::Arc;
use std::time::Duration;

/// What reconcile needs besides the ReplicaSet.
struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    recorder: Recorder,
    /// Pod creates and deletes per ReplicaSet uid not yet seen in the cache.
    expectations: Expectations<PodWrites>,
}

/// A kind this controller keeps replicas of: ReplicaSet, and ReplicationController (whose
/// selector is a plain map), each read through a ReplicaSet view that the plan works on.
pub trait Replicated: Object + kube::Resource<Scope = NamespaceResourceScope> {
    /// The controller's name (metrics, spans, Event source), as upstream's.
    const CONTROLLER: &'static str;
    /// The object as a ReplicaSet with the same metadata, spec and status.
    fn view(&self) -> ReplicaSet;
}

impl Replicated for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset-controller";
    fn view(&self) -> ReplicaSet {
        self.clone()
    }
}

impl Replicated for ReplicationController {
    const CONTROLLER: &'static str = "replication-controller";
    /// An RC's selector is a map of labels; when unset it is the template's labels (the
    /// API server defaults it so, and upstream's controller relies on that).
    fn view(&self) -> ReplicaSet {
        let spec = self.spec.clone().unwrap_or_default();
        let template_labels = spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone());
        let status = self.status.clone().unwrap_or_default();
        ReplicaSet {
            metadata: self.metadata.clone(),
            spec: Some(ReplicaSetSpec {
                replicas: spec.replicas,
                min_ready_seconds: spec.min_ready_seconds,
                selector: LabelSelector {
                    match_labels: spec.selector.filter(|s| !s.is_empty()).or(template_labels),
                    match_expressions: None,
                },
                template: spec.template,
            }),
            status: Some(ReplicaSetStatus {
                replicas: status.replicas,
                fully_labeled_replicas: status.fully_labeled_replicas,
                ready_replicas: status.ready_replicas,
                available_replicas: status.available_replicas,
                observed_generation: status.observed_generation,
                ..ReplicaSetStatus::default()
            }),
        }
    }
}

/// Runs the ReplicaSet controller until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    run_for::<ReplicaSet>(client, metrics).await
}

/// Runs the controller for `K` until the process exits.
pub async fn run_for<K: Replicated>(client: kube::Client, metrics: Metrics) {
    let mut controller = Harness::new(K::CONTROLLER, client.clone())
        .metrics(&metrics)
        .watch::<K>();
    let owners = controller.store();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), K::CONTROLLER),
        client,
        pods: controller.cache::<Pod>(),
        expectations: Expectations::default(),
    });
    controller
        .watches(move |pod: &Pod| owners_of(&owners, pod))
        .run(reconcile::<K>, ctx)
        .await;
}

/// The owners a pod event concerns: its controller, and any that could adopt it.
fn owners_of<K: Replicated>(owners: &Store<K>, pod: &Pod) -> Vec<ObjectKey> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let labels = crate::meta::labels(&pod.metadata);
    owners
        .state()
        .iter()
        .map(|o| o.view())
        .filter(|rs| rs.metadata.namespace.as_deref() == Some(&ns))
        .filter(|rs| {
            let uid = rs.metadata.uid.as_deref().unwrap_or_default();
            is_controlled_by(&pod.metadata, uid)
                || rs
                    .spec
                    .as_ref()
                    .is_some_and(|s| crate::meta::selector_matches(&s.selector, &labels))
        })
        .filter_map(|rs| ObjectKey::of(&rs.metadata))
        .collect()
}

async fn reconcile<K: Replicated>(owner: Arc<K>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let rs = owner.view();
    let ns = rs
        .metadata
        .namespace
        .clone()
        .ok_or(Error::Missing("namespace"))?;
    let uid = rs.metadata.uid.clone().ok_or(Error::Missing("uid"))?;
    let all = ctx.pods.state();
    let pods: Vec<&Pod> = all
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| p.metadata.namespace.as_deref() == Some(&ns))
        .collect();
    if !ctx
        .expectations
        .settle(&uid, |w, expired| expired || w.seen_in(&pods))
    {
        return Ok(Outcome::RequeueAfter(Duration::from_millis(500)));
    }
    let plan = plan::plan(&rs, &pods, Timestamp::now());
    if !plan.actions.is_empty() {
        tracing::debug!(actions = ?plan.actions, "replicaset plan");
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for action in plan.actions {
        apply::<K>(&rs, &uid, &api, &ctx, action).await?;
    }
    Ok(match plan.requeue_after {
        Some(after) => Outcome::RequeueAfter(after),
        None => Outcome::Done,
    })
}

async fn apply<K: Replicated>(
    rs: &ReplicaSet,
    uid: &str,
    api: &Api<Pod>,
    ctx: &Ctx,
    action: Action,
) -> Result<(), Error> {
    let (api_version, kind) = (K::api_version(&()), K::kind(&()));
    let me = reference(&api_version, &kind, &rs.metadata);
    match action {
        Action::Create { count } => {
            let pod = pod_from_template(rs, &api_version, &kind)?;
            let pods = vec![pod; count];
            podcontrol::create_pods(api, &pods, &ctx.recorder, &me, |name| {
                ctx.expectations.expect(uid, |w| w.creates.insert(name));
            })
            .await?;
        }
        Action::Delete { pod } => match api.delete(&pod, &DeleteParams::default()).await {
            Ok(_) => {
                ctx.expectations
                    .expect(uid, |w| w.deletes.insert(pod.clone()));
                let msg = format!("Deleted pod: {pod}");
                ctx.recorder
                    .publish(&me, "Normal", "SuccessfulDelete", &msg)
                    .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(error) => return Err(error.into()),
        },
        Action::Adopt { pod } => {
            let owner = new_controller_ref(&api_version, &kind, &rs.metadata)
                .ok_or(Error::Missing("name"))?;
            claim::adopt(api, &pod, &owner, &[]).await?;
        }
        Action::Release { pod } => claim::release(api, &pod, uid).await?,
        Action::Status(counts) => write_status::<K>(ctx, rs, &counts).await?,
    }
    Ok(())
}

async fn write_status<K: Replicated>(ctx: &Ctx, rs: &ReplicaSet, c: &Counts) -> Result<(), Error> {
    let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
    let name = rs.metadata.name.as_deref().ok_or(Error::Missing("name"))?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let patch = json!({ "status": {
        "replicas": c.replicas,
        "fullyLabeledReplicas": c.fully_labeled_replicas,
        "readyReplicas": c.ready_replicas,
        "availableReplicas": c.available_replicas,
        "observedGeneration": c.observed_generation,
    }});
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// The pod a ReplicaSet (or the `kind` seen as one) creates: its template, a generated name
/// and a controller reference.
pub fn pod_from_template(rs: &ReplicaSet, api_version: &str, kind: &str) -> Result<Pod, Error> {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or(Error::Missing("spec.template"))?;
    let name = rs.metadata.name.as_deref().ok_or(Error::Missing("name"))?;
    let tmeta = template.metadata.unwrap_or_default();
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: new_controller_ref(api_version, kind, &rs.metadata).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    })
}
