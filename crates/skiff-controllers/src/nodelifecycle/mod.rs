//! Node failure, handled in seconds (decision 0023): upstream's node lifecycle controller
//! (a silent node's conditions become Unknown, its taints follow its conditions, its pods
//! stop being Ready so Services drop them), its taint-eviction controller ([`eviction`]:
//! pods not tolerating a NoExecute taint are deleted, at once or after their
//! `tolerationSeconds`) and the pod garbage collector's node cases ([`podgc`]: pods of a
//! deleted or out-of-service node are force-deleted). Each is a pure plan with table tests
//! ([`plan`], and beside each runner) on `skiff-reconcile`'s harness.
//!
//! A node is heard from through its Lease in `kube-node-lease` (renewed every 2 s by skiff's
//! agent) and its Ready heartbeat. The controller keeps, per node, the moment *it* last saw
//! either move (upstream's `probeTimestamp`): node clocks never matter, and a controller
//! that just started gives every node a full grace period.

pub mod eviction;
pub mod plan;
pub mod podgc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use skiff_reconcile::events::{reference, Recorder};
use skiff_reconcile::{Harness, Metrics, ObjectKey, Outcome};

use crate::Error;
use plan::{Disruption, Heard, Limiter, NoExecute, Rates};

/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Settings, as kube-controller-manager's flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--node-monitor-grace-period`: how long a node may go unheard before it is Unknown
    /// (skiff: 8 s; upstream: 50 s).
    pub grace: Duration,
    /// `--node-startup-grace-period`: the same for a node that never posted Ready.
    pub startup_grace: Duration,
    /// Eviction rates and the disruption threshold.
    pub rates: Rates,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            grace: Duration::from_secs(8),
            startup_grace: Duration::from_secs(60),
            rates: Rates::default(),
        }
    }
}

/// Starts the node lifecycle, taint-eviction and pod GC controllers, and the disruption
/// controller that keeps PodDisruptionBudgets for evictions and drains, reporting into
/// `metrics` (the process's); returns it. The first three act as the node controller, the
/// last as the disruption controller, each on the client `client(identity)` gives
/// ([`crate::identity`]).
pub fn spawn<E>(
    client: impl Fn(&'static str) -> Result<kube::Client, E>,
    options: Options,
    metrics: Metrics,
) -> Result<Metrics, E> {
    let node = client(crate::identity::NODE)?;
    tokio::spawn(run(node.clone(), metrics.clone(), options.clone()));
    tokio::spawn(eviction::run(node.clone(), metrics.clone()));
    tokio::spawn(podgc::run(node, metrics.clone(), options.grace));
    tokio::spawn(crate::disruption::run(
        client(crate::identity::DISRUPTION)?,
        metrics.clone(),
    ));
    Ok(metrics)
}

/// When the controller last heard from a node, and what it heard.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    renew: Option<Timestamp>,
    heartbeat: Option<Timestamp>,
    at: Timestamp,
}

struct Ctx {
    client: kube::Client,
    recorder: Recorder,
    options: Options,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    seen: Mutex<HashMap<String, Seen>>,
    limiter: Mutex<Limiter>,
}

/// Runs the node lifecycle controller until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics, options: Options) {
    let mut controller = Harness::new("node-lifecycle-controller", client.clone())
        .metrics(&metrics)
        .watch::<Node>()
        .watches(|l: &Lease| {
            (l.metadata.namespace.as_deref() == Some(LEASE_NAMESPACE))
                .then(|| ObjectKey::named(l.metadata.name.as_deref().unwrap_or_default()))
        })
        .watches(|p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .filter(|n| !n.is_empty())
                .map(ObjectKey::named)
        });
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "node-controller"),
        options,
        nodes: controller.store(),
        leases: controller.cache::<Lease>(),
        pods: controller.cache::<Pod>(),
        seen: Mutex::default(),
        limiter: Mutex::default(),
        client,
    });
    controller.run(reconcile, ctx).await;
}

/// The last time the node said it was alive, as it says (the controller compares these
/// between looks; it never trusts them as a clock).
fn signs_of_life(node: &Node, lease: Option<&Lease>) -> (Option<Timestamp>, Option<Timestamp>) {
    let renew = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let heartbeat = plan::ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    (renew, heartbeat)
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let name = node.metadata.name.clone().ok_or(Error::Missing("name"))?;
    let now = Timestamp::now();
    let lease = ctx
        .leases
        .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
    let (renew, heartbeat) = signs_of_life(&node, lease.as_deref());
    let last = {
        let mut seen = ctx.seen.lock().unwrap_or_else(|e| e.into_inner());
        let entry = seen.entry(name.clone()).or_insert(Seen {
            renew,
            heartbeat,
            at: now,
        });
        if entry.renew != renew || entry.heartbeat != heartbeat {
            *entry = Seen {
                renew,
                heartbeat,
                at: now,
            };
        }
        entry.at
    };
    let health = plan::health(
        &node,
        Heard {
            last,
            now,
            grace: ctx.options.grace,
            startup_grace: ctx.options.startup_grace,
        },
    );
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    let mut node: Node = (*node).clone();
    let was_ready = plan::is_ready(&node);
    if let Some(conditions) = &health.conditions {
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "status": {"conditions": conditions},
        });
        node = nodes_api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await?;
        tracing::info!(node = %name, "node stopped posting status; conditions set to Unknown");
        if was_ready {
            let recorder = ctx.recorder.clone();
            let me = reference("v1", "Node", &node.metadata);
            let message = format!("Node {name} status is now: NodeNotReady");
            tokio::spawn(async move {
                recorder
                    .publish(&me, "Normal", "NodeNotReady", &message)
                    .await
            });
        }
    }
    let mut recheck = health.recheck;

    // The cluster's state, this node counted as it is now.
    let all = ctx.nodes.state();
    let statuses: Vec<String> = all
        .iter()
        .map(|n| {
            if n.metadata.name.as_deref() == Some(name.as_str()) {
                health.ready.clone()
            } else {
                plan::ready_condition(n).map_or("Unknown".into(), |c| c.status.clone())
            }
        })
        .collect();
    let state = plan::disruption(
        statuses.iter().map(String::as_str),
        ctx.options.rates.unhealthy_threshold,
    );
    let no_execute = match plan::eviction_rate(state, all.len(), &ctx.options.rates) {
        None => NoExecute::Cancel,
        Some(rate) if plan::needs_no_execute_taint(&node, &health.ready) => {
            let mut limiter = ctx.limiter.lock().unwrap_or_else(|e| e.into_inner());
            if limiter.try_take(now, rate) {
                NoExecute::Apply
            } else {
                // Upstream's monitor period: look again while the limiter holds it back.
                let wait = limiter.wait(now, rate).unwrap_or(Duration::from_secs(5));
                recheck = Some(recheck.map_or(wait, |r| r.min(wait)));
                NoExecute::Defer
            }
        }
        Some(_) => NoExecute::Apply,
    };
    if state != Disruption::Normal {
        tracing::debug!(node = %name, ?state, "cluster disrupted; evictions limited");
    }
    if let Some(taints) = plan::taints(&node, &health.ready, no_execute, now) {
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": taints},
        });
        nodes_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(node = %name, ready = %health.ready, "node taints updated");
    }
    if health.ready != "True" {
        mark_pods_not_ready(&ctx, &name, now).await?;
    }
    Ok(match recheck {
        Some(d) => Outcome::RequeueAfter(d + Duration::from_millis(10)),
        None => Outcome::Done,
    })
}

/// Pods on `node` whose Ready condition is not False (upstream's `MarkPodsNotReady`).
pub fn pods_to_mark_not_ready<'a>(pods: &'a [Arc<Pod>], node: &str) -> Vec<&'a Pod> {
    pods.iter()
        .map(|p| p.as_ref())
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status != "False")
        })
        .collect()
}

/// Upstream's `MarkPodsNotReady`: every pod of a node that is not Ready gets Ready=False, so
/// the endpoints controllers take it out of its Services at once (the kubelet that would
/// say so is the one not heard from).
async fn mark_pods_not_ready(ctx: &Ctx, node: &str, now: Timestamp) -> Result<(), Error> {
    let pods = ctx.pods.state();
    for pod in pods_to_mark_not_ready(&pods, node) {
        let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            continue;
        };
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": Time(now)},
        ]}});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e.into()),
        }
        tracing::info!(pod = %format!("{ns}/{name}"), %node, "pod marked not ready");
        let recorder = ctx.recorder.clone();
        let me = reference("v1", "Pod", &pod.metadata);
        tokio::spawn(async move {
            recorder
                .publish(&me, "Warning", "NodeNotReady", "Node is not ready")
                .await
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
