//! skiff scheduler: binds pending pods to nodes that fit, through `pods/binding`.
//!
//! The decisions are the pure functions of [`fit`]; this module keeps the caches, assumes
//! pods onto nodes as soon as it decides (so a burst of pods does not wait for the watch to
//! show each binding), and writes bindings, events and the PodScheduled condition.

pub mod fit;
pub mod metrics;
#[cfg(test)]
mod tests;

use fit::NodeInfo;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, reflector, Store};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;
use skiff_reconcile::backoff::Backoff;
use skiff_reconcile::{reference, Recorder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The scheduler name pods ask for by default.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Bindings in flight at once.
const BIND_CONCURRENCY: usize = 32;
/// When an unschedulable pod is tried again although nothing seems to change: upstream's
/// per-pod backoff (`podInitialBackoffDuration` 1 s doubling to `podMaxBackoffDuration`
/// 10 s), by the pod's consecutive failed attempts. A node change retries them all at once.
const POD_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    max: Duration::from_secs(10),
    jitter: 0.0,
};

/// A pod that did not fit: why, and when to try it again.
struct Unschedulable {
    message: String,
    attempts: u32,
    retry_at: Instant,
}

/// Why a binding or a status write failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("API call failed: {0}")]
    Api(#[from] kube::Error),
    /// A request body could not be encoded.
    #[error("encoding failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// Pods decided but not yet seen bound in the cache: (node, pod) per pod uid.
type Assumed = Arc<Mutex<HashMap<String, (String, Pod)>>>;

fn cached<K>(client: &kube::Client) -> (Store<K>, impl Stream<Item = ()> + Send + 'static)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let api = Api::<K>::all(client.clone());
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    )
    .map(|_| ());
    (store, stream)
}

fn is_pending(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let unbound = spec
        .and_then(|s| s.node_name.as_deref())
        .is_none_or(str::is_empty);
    let ours = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .is_none_or(|n| n == SCHEDULER_NAME);
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    unbound
        && ours
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Node infos from the node cache, the bound pods and the assumed ones.
fn node_infos(nodes: &Store<Node>, pods: &[Arc<Pod>], assumed: &Assumed) -> Vec<NodeInfo> {
    let mut infos: Vec<NodeInfo> = nodes.state().iter().map(|n| NodeInfo::of(n)).collect();
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    let index: HashMap<String, usize> = infos
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    let mut assumed = assumed.lock().unwrap_or_else(|e| e.into_inner());
    let mut bound_uids = std::collections::HashSet::new();
    let known: std::collections::HashSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.uid.as_deref())
        .collect();
    for pod in pods {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if node.is_empty() || finished {
            continue;
        }
        if let Some(uid) = pod.metadata.uid.as_deref() {
            bound_uids.insert(uid.to_string());
        }
        if let Some(&i) = index.get(node) {
            infos[i].add(pod);
        }
    }
    // Forget assumptions the cache has caught up with, and pods that are gone.
    assumed.retain(|uid, _| !bound_uids.contains(uid) && known.contains(uid.as_str()));
    for (node, pod) in assumed.values() {
        if let Some(&i) = index.get(node) {
            infos[i].add(pod);
        }
    }
    infos
}

/// Runs the scheduler until the process exits.
pub async fn run(client: kube::Client) {
    run_with_metrics(client, metrics::SchedulerMetrics::default()).await
}

/// [`run`], recording into `metrics` (which the process serves).
pub async fn run_with_metrics(client: kube::Client, metrics: metrics::SchedulerMetrics) {
    let (nodes, node_changes) = cached::<Node>(&client);
    let (pods, pod_changes) = cached::<Pod>(&client);
    let assumed: Assumed = Arc::default();
    // Unschedulable pods: uid -> (message, when last tried); retried when nodes change.
    let mut failed: HashMap<String, Unschedulable> = HashMap::new();
    let node_changes = node_changes.map(|_| true);
    let pod_changes = pod_changes.map(|_| false);
    let mut changes = futures::stream::select(node_changes, pod_changes).boxed();
    let (bind_tx, bind_rx) = tokio::sync::mpsc::channel::<(Pod, String)>(4096);
    let (report_tx, report_rx) = tokio::sync::mpsc::channel::<Report>(4096);
    tokio::spawn(binder(
        client.clone(),
        bind_rx,
        assumed.clone(),
        report_tx.clone(),
    ));
    tokio::spawn(reporter(client.clone(), report_rx));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let (mut nodes_changed, ticked) = tokio::select! {
            change = changes.next() => match change { Some(n) => (n, false), None => return },
            _ = tick.tick() => (false, true),
        };
        // Drain whatever else is ready so a burst is handled in one pass.
        while let Some(Some(n)) = changes.now_or_never_ready() {
            nodes_changed |= n;
        }
        if nodes_changed {
            failed.clear();
        }
        let all = pods.state();
        let mut pending: Vec<&Arc<Pod>> = all.iter().filter(|p| is_pending(p)).collect();
        // Most changes are status updates of bound pods, with nothing to place: the node
        // infos (a walk over every pod) are built only when there is, and on the tick, which
        // also forgets the assumptions the cache has caught up with.
        if pending.is_empty() && !ticked {
            continue;
        }
        let mut infos = node_infos(&nodes, &all, &assumed);
        pending.sort_by_key(|p| {
            let priority = p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
            (
                std::cmp::Reverse(priority),
                p.metadata.creation_timestamp.clone(),
            )
        });
        for pod in pending {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if assumed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&uid)
            {
                continue;
            }
            if failed
                .get(&uid)
                .is_some_and(|f| Instant::now() < f.retry_at)
            {
                continue;
            }
            let cycle = Instant::now();
            let decision = {
                let _span = tracing::debug_span!("schedule", key = %key(&pod.metadata)).entered();
                let decision = fit::place(pod, &infos).map(|n| n.name.clone());
                tracing::debug!(?decision, "scheduling decision");
                decision
            };
            match decision {
                Ok(name) => {
                    if let Some(info) = infos.iter_mut().find(|n| n.name == name) {
                        info.add(pod);
                    }
                    metrics.attempt(metrics::Outcome::Scheduled, cycle.elapsed());
                    let attempts = failed.get(&uid).map_or(1, |f| f.attempts.saturating_add(2));
                    metrics.scheduled(attempts, since_created(pod));
                    failed.remove(&uid);
                    assumed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(uid, (name.clone(), pod.as_ref().clone()));
                    if bind_tx.send((pod.as_ref().clone(), name)).await.is_err() {
                        return;
                    }
                }
                Err(reasons) => {
                    metrics.attempt(metrics::Outcome::Unschedulable, cycle.elapsed());
                    let message = fit::unschedulable_message(infos.len(), &reasons);
                    let before = failed.get(&uid);
                    let repeat = before.is_some_and(|f| f.message == message);
                    let attempts = before.map_or(0, |f| f.attempts.saturating_add(1));
                    failed.insert(
                        uid,
                        Unschedulable {
                            message: message.clone(),
                            attempts,
                            retry_at: Instant::now() + POD_BACKOFF.step(attempts),
                        },
                    );
                    if !repeat {
                        let report = Report::Unschedulable(pod.as_ref().clone(), message);
                        if report_tx.send(report).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// How long ago the pod was created (zero when it has no timestamp or the clock is behind).
fn since_created(pod: &Pod) -> Duration {
    let Some(created) = &pod.metadata.creation_timestamp else {
        return Duration::ZERO;
    };
    let ms = Timestamp::now()
        .as_millisecond()
        .saturating_sub(created.0.as_millisecond());
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Polls a stream once without waiting.
trait NowOrNever: Stream + Unpin {
    fn now_or_never_ready(&mut self) -> Option<Option<Self::Item>> {
        futures::FutureExt::now_or_never(self.next())
    }
}
impl<S: Stream + Unpin> NowOrNever for S {}

/// Writes bindings with bounded concurrency; a failed binding un-assumes the pod so the
/// next pass tries again.
async fn binder(
    client: kube::Client,
    rx: tokio::sync::mpsc::Receiver<(Pod, String)>,
    assumed: Assumed,
    reports: tokio::sync::mpsc::Sender<Report>,
) {
    tokio_stream_from(rx)
        .for_each_concurrent(BIND_CONCURRENCY, |(pod, node)| {
            let client = client.clone();
            let assumed = assumed.clone();
            let reports = reports.clone();
            async move {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                match bind(&client, &pod, &node).await {
                    Ok(()) => {
                        let _ = reports.send(Report::Scheduled(pod, node)).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, pod = %key(&pod.metadata), %node, "binding failed");
                        assumed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&uid);
                    }
                }
            }
        })
        .await;
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn key(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Records an event about `pod` from the scheduler (repeats aggregated by the recorder).
async fn event(recorder: &Recorder, pod: &Pod, type_: &str, reason: &str, message: &str) {
    let action = if reason == "Scheduled" {
        "Binding"
    } else {
        "Scheduling"
    };
    let object = reference("v1", "Pod", &pod.metadata);
    recorder
        .publish_action(&object, type_, reason, action, message)
        .await;
}

/// Binds `pod` to `node` through the binding subresource and records the Scheduled event.
pub async fn bind(client: &kube::Client, pod: &Pod, node: &str) -> Result<(), Error> {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": { "name": name, "uid": pod.metadata.uid },
        "target": { "apiVersion": "v1", "kind": "Node", "name": node },
    });
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        &name,
        &PostParams::default(),
        &binding,
    )
    .await?;
    Ok(())
}

/// What the scheduler tells the API besides bindings: best effort, as upstream's event
/// broadcaster, and never in the way of binding.
enum Report {
    /// Bound: the `Scheduled` event.
    Scheduled(Pod, String),
    /// No fit: `PodScheduled=False` and a `FailedScheduling` event.
    Unschedulable(Pod, String),
}

/// Reports in flight at once. Bounded because every request in flight holds a connection
/// of its own (kube's client speaks HTTP/1.1): a burst of a thousand unschedulable pods
/// would otherwise open a thousand TLS connections.
const REPORT_CONCURRENCY: usize = 8;

async fn reporter(client: kube::Client, rx: tokio::sync::mpsc::Receiver<Report>) {
    let recorder = Recorder::new(client.clone(), SCHEDULER_NAME);
    tokio_stream_from(rx)
        .for_each_concurrent(REPORT_CONCURRENCY, |report| {
            let (client, recorder) = (client.clone(), recorder.clone());
            async move {
                let result = match &report {
                    Report::Scheduled(pod, node) => {
                        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                        let name = pod.metadata.name.as_deref().unwrap_or_default();
                        let message = format!("Successfully assigned {ns}/{name} to {node}");
                        event(&recorder, pod, "Normal", "Scheduled", &message).await;
                        Ok(())
                    }
                    Report::Unschedulable(pod, message) => {
                        report_unschedulable(&client, &recorder, pod, message).await
                    }
                };
                if let Err(error) = result {
                    tracing::debug!(%error, "scheduler report not recorded");
                }
            }
        })
        .await;
}

/// Records FailedScheduling and sets PodScheduled=False (reason Unschedulable).
async fn report_unschedulable(
    client: &kube::Client,
    recorder: &Recorder,
    pod: &Pod,
    message: &str,
) -> Result<(), Error> {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now =
        Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::now()));
    // A strategic merge keyed by condition type, as upstream's PatchPodStatus sends: only
    // PodScheduled changes, so conditions others wrote meanwhile (the kubelet's, a user's
    // apply to /status) are never overwritten from this possibly stale copy of the pod.
    let patch = json!({ "status": { "conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastTransitionTime": now,
        "lastProbeTime": null,
    }] } });
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(error) => return Err(error.into()),
    }
    event(recorder, pod, "Warning", "FailedScheduling", message).await;
    Ok(())
}
