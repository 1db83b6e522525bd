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

/// The ServiceAccounts in `kube-system` the controllers act as, one each (upstream's names,
/// as kube-controller-manager's `--use-service-account-credentials` gives each controller
/// its own): a controller can do only what its `system:controller:<name>` role allows, and
/// a denial of one leaves the others working. A skiff controller doing the work of several
/// upstream ones (endpoints and EndpointSlices; pvc and pv protection; node lifecycle,
/// taint eviction and pod GC) acts as the first and is bound to the others' roles too.
pub mod identity {
    pub const REPLICASET: &str = "replicaset-controller";
    pub const REPLICATION: &str = "replication-controller";
    pub const DEPLOYMENT: &str = "deployment-controller";
    pub const ENDPOINT: &str = "endpoint-controller";
    pub const PERSISTENT_VOLUME_BINDER: &str = "persistent-volume-binder";
    pub const STATEFULSET: &str = "statefulset-controller";
    pub const JOB: &str = "job-controller";
    pub const CRONJOB: &str = "cronjob-controller";
    pub const DAEMONSET: &str = "daemon-set-controller";
    pub const PVC_PROTECTION: &str = "pvc-protection-controller";
    pub const EVENT_TTL: &str = "event-ttl-controller";
    pub const RESOURCEQUOTA: &str = "resourcequota-controller";
    pub const HPA: &str = "horizontal-pod-autoscaler";
    pub const GARBAGE_COLLECTOR: &str = "generic-garbage-collector";
    pub const SERVICE_ACCOUNT: &str = "service-account-controller";
    pub const CERTIFICATE: &str = "certificate-controller";
    pub const ROOT_CA: &str = "root-ca-cert-publisher";
    pub const NODE: &str = "node-controller";
    pub const DISRUPTION: &str = "disruption-controller";

    /// Every identity above, for the controller manager to make their ServiceAccounts.
    pub const ALL: &[&str] = &[
        REPLICASET,
        REPLICATION,
        DEPLOYMENT,
        ENDPOINT,
        PERSISTENT_VOLUME_BINDER,
        STATEFULSET,
        JOB,
        CRONJOB,
        DAEMONSET,
        PVC_PROTECTION,
        EVENT_TTL,
        RESOURCEQUOTA,
        HPA,
        GARBAGE_COLLECTOR,
        SERVICE_ACCOUNT,
        CERTIFICATE,
        ROOT_CA,
        NODE,
        DISRUPTION,
    ];
}

/// Starts every workload, endpoint, volume, quota, Event-expiry and garbage-collector
/// controller, each on its own client `client(identity)` gives (see [`identity`]),
/// reporting into `metrics` (the process's, which the binary serves); each runs until the
/// process exits. Returns `metrics`, or the first error making a client.
pub fn spawn_all<E>(
    client: impl Fn(&'static str) -> Result<kube::Client, E>,
    metrics: skiff_reconcile::Metrics,
) -> Result<skiff_reconcile::Metrics, E> {
    use identity::*;
    let m = || metrics.clone();
    tokio::spawn(replicaset::run(client(REPLICASET)?, m()));
    tokio::spawn(deployment::run(client(DEPLOYMENT)?, m()));
    tokio::spawn(endpoints::run(client(ENDPOINT)?, m()));
    tokio::spawn(volumes::run(client(PERSISTENT_VOLUME_BINDER)?, m()));
    tokio::spawn(statefulset::run(client(STATEFULSET)?, m()));
    tokio::spawn(job::run(client(JOB)?, m()));
    tokio::spawn(cronjob::run(client(CRONJOB)?, m()));
    tokio::spawn(daemonset::run(client(DAEMONSET)?, m()));
    tokio::spawn(replicaset::run_for::<
        k8s_openapi::api::core::v1::ReplicationController,
    >(client(REPLICATION)?, m()));
    tokio::spawn(protection::run(client(PVC_PROTECTION)?, m()));
    tokio::spawn(eventttl::run(client(EVENT_TTL)?, m()));
    tokio::spawn(resourcequota::run(client(RESOURCEQUOTA)?, m()));
    tokio::spawn(hpa::run(client(HPA)?, m()));
    tokio::spawn(gc::run(client(GARBAGE_COLLECTOR)?, m()));
    Ok(metrics)
}
