//! skiff controllers: the ReplicaSet, Deployment, Endpoints/EndpointSlice and
//! garbage-collector reconcile loops.
//!
//! Each controller watches the kinds it cares about, computes changes with a pure `plan`
//! function and applies them through the API (see DESIGN.md, "Reconcile loops"). All of
//! them run on `skiff-reconcile`'s harness: its queue gives per-key exponential backoff,
//! requeue-after and resync, so nothing here sleeps or retries by hand.

pub mod claim;
pub mod cronjob;
pub mod csrsigning;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod events;
pub mod eventttl;
pub mod expectations;
pub mod gc;
pub mod history;
pub mod hpa;
pub mod job;
pub mod meta;
pub mod nodelifecycle;
pub mod podcontrol;
pub mod protection;
pub mod replicaset;
pub mod resourcequota;
pub mod rootca;
pub mod serviceaccount;
pub mod statefulset;
pub mod volumes;

/// Why a reconcile failed; transient errors are requeued with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("API call failed: {0}")]
    Api(#[from] kube::Error),
    /// An object could not be encoded for a request.
    #[error("encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    /// An object lacks a field the controller needs (name, namespace, uid).
    #[error("object lacks {0}")]
    Missing(&'static str),
}

/// Starts every controller on `client`, reporting into `metrics` (the process's, which the
/// binary serves); each runs until the process exits. Returns `metrics`.
pub fn spawn_all(
    client: kube::Client,
    metrics: skiff_reconcile::Metrics,
) -> skiff_reconcile::Metrics {
    tokio::spawn(replicaset::run(client.clone(), metrics.clone()));
    tokio::spawn(deployment::run(client.clone(), metrics.clone()));
    tokio::spawn(endpoints::run(client.clone(), metrics.clone()));
    tokio::spawn(volumes::run(client.clone(), metrics.clone()));
    tokio::spawn(statefulset::run(client.clone(), metrics.clone()));
    tokio::spawn(job::run(client.clone(), metrics.clone()));
    tokio::spawn(cronjob::run(client.clone(), metrics.clone()));
    tokio::spawn(daemonset::run(client.clone(), metrics.clone()));
    tokio::spawn(replicaset::run_for::<
        k8s_openapi::api::core::v1::ReplicationController,
    >(client.clone(), metrics.clone()));
    tokio::spawn(protection::run(client.clone(), metrics.clone()));
    tokio::spawn(eventttl::run(client.clone(), metrics.clone()));
    tokio::spawn(resourcequota::run(client.clone(), metrics.clone()));
    tokio::spawn(hpa::run(client.clone(), metrics.clone()));
    tokio::spawn(gc::run(client, metrics.clone()));
    metrics
}
