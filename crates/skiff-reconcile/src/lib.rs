//! skiff's reconcile harness: the one way every controller in the project watches, queues,
//! retries, records Events and reports metrics.
//!
//! A controller is a [`Harness`]: name it, say which kinds it watches and how their changes
//! map to keys of the primary kind, and give it `reconcile(object, ctx)`. The harness keeps
//! a cache per kind (kube-runtime's reflector), one [`Queue`] per controller with
//! client-go's workqueue semantics (a key is queued once however often it changes, never
//! reconciled twice at once, retried with per-key exponential backoff and jitter on error,
//! requeued when reconcile asks, and resynced periodically), a bounded number of workers,
//! and upstream's workqueue metrics ([`Metrics`]). Events go through one [`Recorder`] that
//! aggregates repeats as client-go's event correlator does.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Pod};
//! # use skiff_reconcile::{Harness, Outcome};
//! # struct Ctx;
//! # #[derive(Debug, thiserror::Error)] #[error("x")] struct Error;
//! async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
//!     Ok(Outcome::Done)
//! }
//! # async fn f(client: kube::Client) {
//! Harness::new("replicaset-controller", client)
//!     .watch::<ReplicaSet>()
//!     .owns::<Pod>()
//!     .run(reconcile, Arc::new(Ctx))
//!     .await;
//! # }
//! ```

pub mod backoff;
pub mod events;
mod harness;
pub mod leaderelection;
pub mod metrics;
pub mod queue;
mod runner;

pub use backoff::Backoff;
pub use events::{reference, Recorder};
pub use harness::{Controller, Harness, Object};
pub use metrics::Metrics;
pub use queue::Queue;
pub use runner::Runner;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use std::fmt;
use std::time::Duration;

/// What a reconcile asks of the queue when it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing more to do until something changes (or the next resync).
    Done,
    /// Come back after this long although nothing changed (a minReadySeconds deadline, a
    /// create not yet visible in the cache).
    RequeueAfter(Duration),
}

/// The key a controller queues and reconciles: an object's namespace and name, or any name
/// for loops that are not about one object (a node's whole nftables script, the volume
/// binder's pass).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The namespace; `None` for cluster-scoped objects and object-less keys.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// A key from a namespace (if any) and a name.
    pub fn new(namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    /// A key that is not about one object (`ObjectKey::named("nftables")`).
    pub fn named(name: &str) -> ObjectKey {
        ObjectKey::new(None, name)
    }

    /// The key of an object; `None` when it has no name (never so for stored objects).
    pub fn of(meta: &ObjectMeta) -> Option<ObjectKey> {
        Some(ObjectKey {
            namespace: meta.namespace.clone(),
            name: meta.name.clone()?,
        })
    }

    /// The key as a reference into a kube-runtime cache of `K`.
    pub fn to_ref<K: kube::Resource<DynamicType = ()>>(&self) -> ObjectRef<K> {
        let r = ObjectRef::new(&self.name);
        match &self.namespace {
            Some(ns) => r.within(ns),
            None => r,
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// How a controller's queue and workers behave. The defaults are skiff's, documented per
/// field; controllers override what their loop needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Reconciles running at once (distinct keys). Upstream runs 5 goroutines per
    /// controller; skiff's workers are tasks that mostly wait on the API, so more are cheap
    /// and keep bursts (a Deployment of 100 pods, 1,000 Services) moving. Default 16.
    pub workers: usize,
    /// Every key of every watched kind is queued again this often, so nothing depends on
    /// one watch event being seen. Default 5 minutes; `None` turns it off.
    pub resync: Option<Duration>,
    /// Per-key retry delays after failures.
    pub backoff: Backoff,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            workers: 16,
            resync: Some(Duration::from_secs(300)),
            backoff: Backoff::default(),
        }
    }
}
