//! The pod loop: watches the Pods bound to this node, keeps one worker per pod that
//! observes its containers, asks [`super::plan`] what to do, does it, and writes status.

use super::env::{expand_argv, referenced, resolve_env, Fetched};
use super::events;
use super::images::{ERR_IMAGE_PULL, IMAGE_PULL_BACK_OFF};
use super::lifecycle::{self, kill_container, HookTarget, KillReason};
use super::plan::{self, Action, ImageState, Observed, Plan, PlanInput, Waiting};
use super::probes::{self, ProbeState};
use super::status::{pod_status, StatusInput};
use super::{tokens, volumes, Shared};
use crate::logs;
use crate::runtime::{ContainerSpec, ContainerStatus, ProcessSpec, Resources, Runtime};
use crate::sandbox::{DnsConfig, SandboxSpec};
use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use skiff_apimachinery::network::ClusterNetwork;
use skiff_apimachinery::quantity::Quantity;
use skiff_reconcile::{Backoff, Config, Harness, ObjectKey, Outcome, Queue};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// Labels the agent puts on containers, to find them again after a restart.
pub(crate) const LABEL_UID: &str = "io.kubernetes.pod.uid";
pub(crate) const LABEL_NAME: &str = "io.kubernetes.pod.name";
pub(crate) const LABEL_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub(crate) const LABEL_CONTAINER: &str = "io.kubernetes.container.name";
pub(crate) const LABEL_ATTEMPT: &str = "io.kubernetes.container.restartCount";
pub(crate) const LABEL_INIT: &str = "skiff.io/init";
/// The `imageID` a container was started from, for its status after the tag moves on.
pub(crate) const LABEL_IMAGE_ID: &str = "skiff.io/image-id";

/// The pod workers' name on the reconcile harness (the `name` label of their workqueue
/// metrics), after the kubelet's pod workers.
pub(crate) const CONTROLLER: &str = "pod-workers";

/// Every pod is synced again this often although nothing woke it (the kubelet's
/// `syncFrequency` is 1 minute; skiff has no PLEG relist besides the shims' exits, so it
/// keeps a shorter safety net). Containers exiting, pod changes, probes, restart
/// back-offs and retries wake a pod's key on their own, so an idle pod costs nothing in
/// between, and all keys resync together over one shared container list (at 10 s, 100
/// idle pods cost 4 % of a core in their resyncs on a loaded machine; at 30 s a third).
const RESYNC: Duration = Duration::from_secs(30);

/// Syncs running at once: one per pod up to the kubelet's default `maxPods` (the Node's
/// `pods` capacity), since a sync may wait a whole grace period or image pull.
const WORKERS: usize = 110;

/// Retries of a failed sync (an API error, a container that could not be created): from
/// 100 ms doubling to the kubelet's 10 s `backOffPeriod`, jittered, reset on success.
const RETRY: Backoff = Backoff {
    base: Duration::from_millis(100),
    max: Duration::from_secs(10),
    jitter: 0.1,
};

/// A pod's key on the pod workers' queue: its UID, as the kubelet's pod workers (a pod
/// replaced under the same name is another pod, with containers of its own).
fn key_of(uid: &str) -> ObjectKey {
    ObjectKey::named(uid)
}

/// The pods bound to this node, by UID, as the pod watch last showed them: the pod
/// workers' source (the kubelet's pod config), read by each sync.
#[derive(Default)]
pub(crate) struct PodSource {
    pods: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    /// The latest Pod from the API; `None` once it is gone, until its cleanup ran.
    pod: Option<Pod>,
    /// The last Pod seen (names for the cleanup of a pod gone from the API).
    last: Option<Pod>,
    /// The same, for a sync in progress to see a deletion at once (an image pull or a
    /// postStart hook it waits on is abandoned).
    updates: watch::Sender<Option<Pod>>,
    /// State of the pod that is in neither the API nor the runtime; the queue never runs
    /// two syncs of one key at once, so this lock is never contended.
    state: Arc<tokio::sync::Mutex<WorkerState>>,
    /// Whether a pod that arrived during a graceful shutdown was refused already.
    rejected: bool,
}

impl PodSource {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the latest version of a pod.
    fn apply(&self, pod: Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut pods = self.lock();
        match pods.get_mut(&uid) {
            Some(e) => {
                e.updates.send_replace(Some(pod.clone()));
                e.last = Some(pod.clone());
                e.pod = Some(pod);
            }
            None => {
                pods.insert(
                    uid,
                    Entry {
                        updates: watch::channel(Some(pod.clone())).0,
                        last: Some(pod.clone()),
                        pod: Some(pod),
                        state: Arc::default(),
                        rejected: false,
                    },
                );
            }
        }
    }

    /// Marks a pod gone from the API; its next sync cleans up after it.
    fn gone(&self, uid: &str) -> bool {
        match self.lock().get_mut(uid) {
            Some(e) => {
                e.pod = None;
                e.updates.send_replace(None);
                true
            }
            None => false,
        }
    }

    /// UIDs of every pod known.
    fn uids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

/// What a pod's sync works on.
struct Ctx {
    shared: Arc<Shared>,
    source: Arc<PodSource>,
}

/// Runs the pod workers on the reconcile harness: the node's pod watch and the runtime's
/// exits queue pod UIDs, and each key is synced by [`reconcile`], one sync per pod at a
/// time, retried with per-key back-off, resynced every [`RESYNC`]. Runs forever.
pub(crate) async fn run(shared: Arc<Shared>) {
    tokio::spawn(volumes::maintain(shared.clone()));
    let source = Arc::new(PodSource::default());
    let resync = source.clone();
    let controller = Harness::new(CONTROLLER, shared.client.clone())
        .config(Config {
            workers: WORKERS,
            resync: Some(RESYNC),
            backoff: RETRY,
        })
        .metrics(&super::metrics::workqueue())
        .keys()
        .resync_from(move || resync.uids().iter().map(|u| key_of(u)).collect());
    let queue = controller.queue();
    tokio::spawn(watch_pods(shared.clone(), source.clone(), queue.clone()));
    if let Some(exits) = shared.runtime.exits() {
        tokio::spawn(wake_on_exits(exits, source.clone(), queue));
    }
    let ctx = Arc::new(Ctx { shared, source });
    controller.run_keys(reconcile, ctx).await;
}

/// Feeds the pod source from a watch of the pods bound to this node and queues each
/// change. On every (re)list, pods not seen before wait until the containers of pods that
/// are gone (deleted or replaced while this node was away) are removed, so a node coming
/// back never runs a pod twice, not even for a moment.
async fn watch_pods(shared: Arc<Shared>, source: Arc<PodSource>, queue: Arc<Queue<ObjectKey>>) {
    let pods: Api<Pod> = Api::all(shared.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.cfg.node_name));
    let mut stream = watcher(pods, cfg).default_backoff().boxed();
    let mut listed: Option<Vec<String>> = None;
    let mut held: Vec<Pod> = Vec::new();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Init => {
                listed = Some(Vec::new());
                held.clear();
            }
            watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(l) = listed.as_mut() {
                    l.push(uid.clone());
                }
                let known = source.lock().get(&uid).is_some_and(|e| e.pod.is_some());
                if known || listed.is_none() {
                    source.apply(pod);
                    queue.add(key_of(&uid));
                } else {
                    held.retain(|p| p.metadata.uid.as_deref() != Some(uid.as_str()));
                    held.push(pod);
                }
            }
            watcher::Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                held.retain(|p| p.metadata.uid.as_deref() != Some(uid.as_str()));
                if source.gone(&uid) {
                    queue.add(key_of(&uid));
                }
            }
            watcher::Event::InitDone => {
                let known = listed.take().unwrap_or_default();
                // Pods that went away while the watch was down.
                for uid in source.uids() {
                    if !known.contains(&uid) && source.gone(&uid) {
                        queue.add(key_of(&uid));
                    }
                }
                let cleaner = shared.clone();
                let known2 = known.clone();
                let _ =
                    tokio::task::spawn_blocking(move || remove_orphans(&cleaner, &known2)).await;
                for pod in held.drain(..) {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    source.apply(pod);
                    queue.add(key_of(&uid));
                }
            }
        }
    }
}

/// Wakes the key of the pod whose container exited, from the runtime's exit events (the
/// shims' pidfds); every pod when events were lost.
async fn wake_on_exits(
    mut exits: tokio::sync::broadcast::Receiver<String>,
    source: Arc<PodSource>,
    queue: Arc<Queue<ObjectKey>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match exits.recv().await {
            Ok(id) => {
                let uid = source.uids().into_iter().find(|uid| container_of(uid, &id));
                if let Some(uid) = uid {
                    queue.add(key_of(&uid));
                }
            }
            Err(RecvError::Lagged(_)) => queue.add_all(source.uids().iter().map(|u| key_of(u))),
            Err(RecvError::Closed) => return,
        }
    }
}

/// One sync of the pod with UID `key.name`: cleans up after a pod gone from the API, or
/// brings the pod's containers to what its spec says and writes its status.
async fn reconcile(key: ObjectKey, ctx: Arc<Ctx>) -> anyhow::Result<Outcome> {
    let shared = &ctx.shared;
    let uid = key.name;
    let found = ctx.source.lock().get(&uid).map(|e| {
        (
            e.pod.clone(),
            e.last.clone(),
            e.updates.subscribe(),
            e.state.clone(),
            e.rejected,
        )
    });
    let Some((pod, last, updates, state, rejected)) = found else {
        return Ok(Outcome::Done);
    };
    let Some(pod) = pod else {
        // The Pod is gone from the API: stop and clean up whatever is left.
        let names = last.as_ref().map(|p| {
            (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            )
        });
        let shown = last.as_ref().map(pod_key).unwrap_or_else(|| uid.clone());
        let span = tracing::info_span!("pod", pod = %shown);
        cleanup(shared, &uid, names, Duration::from_secs(2))
            .instrument(span)
            .await?;
        shared.shutdown.untrack(&uid);
        let mut pods = ctx.source.lock();
        if pods.get(&uid).is_some_and(|e| e.pod.is_none()) {
            pods.remove(&uid);
        }
        return Ok(Outcome::Done);
    };
    let span = tracing::info_span!("pod", pod = %pod_key(&pod));
    // A sync runs under the pod's lock, which graceful shutdown takes before killing
    // the pod; once the shutdown started, pods sync no more (decision 0043).
    let lock = shared.shutdown.track(&uid, &pod);
    let guard = lock.lock().await;
    if shared.shutdown.started() {
        drop(guard);
        if !shared.shutdown.kills(&uid) && !rejected {
            super::shutdown::reject(shared, &pod)
                .instrument(span.clone())
                .await;
            if let Some(e) = ctx.source.lock().get_mut(&uid) {
                e.rejected = true;
            }
        }
        return Ok(Outcome::Done);
    }
    let mut state = state.lock().await;
    let synced = sync(shared, &pod, &mut state, &updates)
        .instrument(span.clone())
        .await;
    drop(guard);
    match synced? {
        // The watch's Delete event queues the cleanup.
        SyncResult::Deleted => Ok(Outcome::Done),
        SyncResult::Requeue(Some(after)) if after < RESYNC => Ok(Outcome::RequeueAfter(after)),
        SyncResult::Requeue(_) => Ok(Outcome::Done),
    }
}

/// Whether a container belongs to one of the `known` pods (listed from the API), so it is
/// kept after a (re)list; anything else (a pod deleted or replaced while this node was
/// away, a container without our labels) is removed before any worker starts.
fn belongs_to_known_pod(s: &ContainerStatus, known: &[String]) -> bool {
    s.spec
        .as_ref()
        .and_then(|spec| spec.labels.get(LABEL_UID))
        .is_some_and(|uid| known.contains(uid))
}

/// Deletes containers and sandboxes of pods that no longer exist (after a restart).
fn remove_orphans(shared: &Shared, known: &[String]) {
    let keep = |s: &ContainerStatus| belongs_to_known_pod(s, known);
    match crate::runtime::remove_orphans(shared.runtime.as_ref(), keep) {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(count = removed.len(), "removed orphan containers")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "removing orphan containers"),
    }
    let keep = |s: &crate::sandbox::PodSandbox| known.contains(&s.spec.id);
    if let Err(e) = shared.sandboxes.remove_orphans(keep) {
        tracing::warn!(error = %e, "removing orphan sandboxes");
    }
}

/// Per-pod state that is not in the API or the runtime.
#[derive(Default)]
struct WorkerState {
    /// Images whose pull failed, by reference as written in the spec.
    image_backoff: HashMap<String, PullBackoff>,
    /// Containers that failed to be created or started, with why.
    start_errors: BTreeMap<String, Waiting>,
    /// Probe results by (container id, kind).
    probes: HashMap<(String, probes::Kind), probes::ProbeState>,
    /// The pod's projected ServiceAccount tokens, renewed before they expire.
    tokens: tokens::Cache,
    /// When a failed token request may be tried again.
    token_retry: Option<tokio::time::Instant>,
    /// When this agent first saw the pod, until it runs (`kubelet_pod_start_duration_seconds`).
    first_seen: Option<std::time::Instant>,
}

/// A failed pull of one image for this pod (upstream's back-off is per pod and image too).
struct PullBackoff {
    /// When it failed.
    failed: tokio::time::Instant,
    /// No new attempt before this.
    until: tokio::time::Instant,
    /// Failures in a row, for the exponential delay.
    failures: u32,
    /// What the container shows: `ErrImagePull` with the registry's error, ...
    waiting: Waiting,
    /// Whether the move to `ImagePullBackOff` has been recorded as an event.
    backoff_reported: bool,
}

/// Whether runtime id `id` is one of pod `uid`'s containers (see [`container_id`]).
fn container_of(uid: &str, id: &str) -> bool {
    let short: String = uid.chars().filter(|c| *c != '-').take(12).collect();
    !short.is_empty()
        && id
            .strip_prefix(short.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
}

pub(super) fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

enum SyncResult {
    /// Synced; sync again after this long, or `None`: when something changes (or at the
    /// resync).
    Requeue(Option<Duration>),
    Deleted,
}

/// [`observe`] off the async runtime: a list may run `runc` and read every container's
/// files.
pub(super) async fn observe_off_runtime(
    shared: &Shared,
    uid: &str,
) -> Result<Vec<Observed>, crate::runtime::Error> {
    let (runtime, uid) = (shared.runtime.clone(), uid.to_string());
    tokio::task::spawn_blocking(move || observe(runtime.as_ref(), &uid))
        .await
        .map_err(|e| crate::runtime::Error::Runc(e.to_string()))?
}

/// Containers of one pod as the plan sees them.
fn observe(runtime: &dyn Runtime, uid: &str) -> Result<Vec<Observed>, crate::runtime::Error> {
    Ok(observed_of(runtime.list()?, uid))
}

/// The containers of pod `uid` in a runtime listing, as the plan sees them: those whose
/// labels name the pod, a container and a numeric attempt (anything else is not ours to
/// plan for; [`remove_orphans`] deals with it).
fn observed_of(list: Vec<ContainerStatus>, uid: &str) -> Vec<Observed> {
    list.into_iter()
        .filter_map(|s| {
            let spec = s.spec.as_ref()?;
            if spec.labels.get(LABEL_UID).map(String::as_str) != Some(uid) {
                return None;
            }
            Some(Observed {
                id: s.id.clone(),
                name: spec.labels.get(LABEL_CONTAINER)?.clone(),
                image_id: spec.labels.get(LABEL_IMAGE_ID).cloned(),
                init: spec.labels.get(LABEL_INIT).is_some_and(|v| v == "true"),
                attempt: spec.labels.get(LABEL_ATTEMPT)?.parse().ok()?,
                state: s.state.clone(),
                started_at: s.started_at.clone(),
            })
        })
        .collect()
}

pub(super) fn sandbox_ip(shared: &Shared, uid: &str) -> (bool, Option<String>) {
    match shared.sandboxes.get(uid) {
        Some(s) if s.spec.host_network => (true, Some(shared.node_ip.clone())),
        Some(s) => (true, s.ip().map(|ip| ip.to_string())),
        None => (false, None),
    }
}

async fn sync(
    shared: &Arc<Shared>,
    pod: &Pod,
    state: &mut WorkerState,
    updates: &watch::Receiver<Option<Pod>>,
) -> anyhow::Result<SyncResult> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    // The kubelet's admission, before anything of the pod is made (decision 0045).
    if !super::admission::admitted(shared, pod).await {
        return Ok(SyncResult::Requeue(None));
    }
    let observed = observe_off_runtime(shared, &uid).await?;
    let (sandbox_ready, _) = sandbox_ip(shared, &uid);
    let images = image_states(shared, pod, state);
    let p = plan::plan(&PlanInput {
        pod,
        containers: &observed,
        sandbox_ready,
        images: &images,
        now: Utc::now(),
    });
    // Containers stop together, as upstream's killPod: each preStop hook and grace period
    // runs in parallel rather than adding up.
    let stops: Vec<(&str, Duration)> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::StopContainer { id, grace } => Some((id.as_str(), *grace)),
            _ => None,
        })
        .collect();
    if !stops.is_empty() {
        let (_, pod_ip) = sandbox_ip(shared, &uid);
        let stopping = stops.iter().map(|(id, grace)| {
            stop_for_deletion(shared, pod, &observed, id, *grace, pod_ip.as_deref())
        });
        for result in futures::future::join_all(stopping).await {
            result?;
        }
    }
    let mut fetched: Option<Fetched> = None;
    for action in &p.actions {
        tracing::debug!(?action, "pod action");
        match action {
            Action::CreateSandbox => {
                let spec = sandbox_spec(pod);
                let sandboxes = shared.clone();
                let create = async move {
                    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                        sandboxes.sandboxes.network().ensure_bridge()?;
                        sandboxes.sandboxes.create(&spec)?;
                        Ok(())
                    })
                    .await?
                };
                // The sandbox (network namespace, veth, files: local work) and the
                // containers' sources (tokens, Services, ConfigMaps: API calls) do not
                // depend on each other: a new pod waits for the longer, not the sum.
                let starts = p
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::StartContainer { .. }));
                if starts && fetched.is_none() {
                    let (created, sources) =
                        tokio::join!(create, fetch_sources(shared, pod, &mut state.tokens));
                    created?;
                    fetched = Some(sources?);
                } else {
                    create.await?;
                }
                tracing::info!("sandbox created");
            }
            Action::StartContainer {
                name,
                init,
                attempt,
            } => {
                if fetched.is_none() {
                    fetched = Some(fetch_sources(shared, pod, &mut state.tokens).await?);
                }
                let sources = fetched.as_ref().expect("fetched above");
                // A pod deleted during a pull stops waiting for it at once (the pull
                // itself goes on for other pods that may share it).
                let ensured = tokio::select! {
                    ensured = ensure_image(shared, pod, name, state) => ensured,
                    () = terminating(shared, updates.clone()) => {
                        tracing::info!(container = %name, "pod is terminating; image pull abandoned");
                        return Ok(SyncResult::Requeue(Some(Duration::ZERO)));
                    }
                };
                let image = match ensured {
                    Ok(image) => image,
                    Err(waiting) => {
                        tracing::warn!(container = %name, reason = %waiting.reason,
                            message = ?waiting.message, "image not available");
                        state.start_errors.insert(name.clone(), waiting);
                        continue;
                    }
                };
                let started =
                    start_container(shared, pod, name, *init, *attempt, &image, sources, updates)
                        .await;
                match started {
                    Ok(()) => {
                        state.start_errors.remove(name);
                        tracing::info!(container = %name, attempt, "container started");
                    }
                    Err(waiting) => {
                        tracing::warn!(container = %name, reason = %waiting.reason,
                            message = ?waiting.message, "container not started");
                        state.start_errors.insert(name.clone(), waiting);
                    }
                }
            }
            // Done above, all at once.
            Action::StopContainer { .. } => {}
            Action::RemoveContainer { id } => {
                let rt = shared.runtime.clone();
                let id = id.clone();
                tokio::task::spawn_blocking(move || rt.delete(&id)).await??;
            }
            Action::RemoveSandbox => {
                let s = shared.clone();
                let uid2 = uid.clone();
                tokio::task::spawn_blocking(move || remove_pod_files(&s, &uid2, None)).await?;
            }
            Action::DeletePod => {
                let api: Api<Pod> = Api::namespaced(
                    shared.client.clone(),
                    pod.metadata.namespace.as_deref().unwrap_or("default"),
                );
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                match api.delete(name, &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
                tracing::info!("pod stopped and deleted");
                return Ok(SyncResult::Deleted);
            }
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Ok(SyncResult::Requeue(Some(Duration::from_millis(100))));
    }
    refresh_tokens(shared, pod, state).await;
    // Status from what is there now.
    let observed = observe_off_runtime(shared, &uid).await?;
    let (sandbox_ready, pod_ip) = sandbox_ip(shared, &uid);
    let verdicts = run_probes(shared, pod, &observed, pod_ip.as_deref(), state).await;
    let mut for_status: Plan = p.clone();
    for (name, w) in &state.start_errors {
        for_status
            .waiting
            .entry(name.clone())
            .or_insert_with(|| w.clone());
    }
    let status = pod_status(
        pod,
        &observed,
        &for_status,
        &StatusInput {
            pod_ip,
            host_ip: shared.node_ip.clone(),
            sandbox_ready,
            image_ids: image_info(shared, pod, |r| r.image_ref().to_string()),
            image_names: image_info(shared, pod, |r| r.name.clone()),
            unready: verdicts.unready,
            not_started: verdicts.not_started,
        },
        Utc::now(),
    );
    let seen = *state.first_seen.get_or_insert_with(std::time::Instant::now);
    let was_running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    if status.phase.as_deref() == Some("Running") && !was_running {
        super::metrics::pod_started(seen.elapsed());
    }
    let new = serde_json::to_value(&status)?;
    let old = serde_json::to_value(pod.status.clone().unwrap_or_default())?;
    if new != old {
        let api: Api<Pod> = Api::namespaced(
            shared.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": new})),
        )
        .await?;
        tracing::debug!(phase = ?status.phase, "status written");
    }
    // A container that could not be created or started is retried with the key's
    // back-off (its status shows why meanwhile).
    if let Some((name, w)) = state.start_errors.iter().next() {
        anyhow::bail!("container {name}: {}", w.reason);
    }
    let now = tokio::time::Instant::now();
    let probe_due = verdicts
        .next_probe
        .map(|at| at.saturating_duration_since(now));
    let token_due = state
        .token_retry
        .map(|at| at.saturating_duration_since(now));
    Ok(SyncResult::Requeue(next_sync(&[
        p.requeue_after,
        probe_due,
        token_due,
    ])))
}

/// When a pod must be synced again although nothing wakes it: the earliest of what is
/// due (a restart back-off, the next probe run, a token retry); `None` when nothing is,
/// and the pod waits for a change, a container exit or the resync. Probes no longer ride
/// on a fixed status poll: each runs when its period says.
fn next_sync(due: &[Option<Duration>]) -> Option<Duration> {
    due.iter().flatten().min().copied()
}

/// Probe verdicts that the status shows.
#[derive(Debug, Default)]
struct ProbeVerdicts {
    /// Containers not ready: startup not passed yet, readiness failing, or just killed.
    unready: BTreeSet<String>,
    /// Running containers whose startup probe has not passed yet (`started: false`).
    not_started: BTreeSet<String>,
    /// When the next probe of a running container is due.
    next_probe: Option<tokio::time::Instant>,
}

/// When a container started, on tokio's clock (probe delays count from it).
fn started_instant(o: &Observed) -> tokio::time::Instant {
    o.started_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            (Utc::now() - t.with_timezone(&Utc))
                .to_std()
                .unwrap_or_default()
        })
        .and_then(|ago| tokio::time::Instant::now().checked_sub(ago))
        .unwrap_or_else(tokio::time::Instant::now)
}

/// Runs due probes of running containers as the kubelet's prober: the startup probe first
/// and alone until it passes; then readiness and liveness. Each failure is an `Unhealthy`
/// event; a startup or liveness probe that gives up kills the container (preStop and
/// grace period included) and the plan restarts it per policy.
async fn run_probes(
    shared: &Shared,
    pod: &Pod,
    observed: &[Observed],
    pod_ip: Option<&str>,
    state: &mut WorkerState,
) -> ProbeVerdicts {
    let mut out = ProbeVerdicts::default();
    let ip = pod_ip.unwrap_or("127.0.0.1");
    let running: Vec<&Observed> = observed
        .iter()
        .filter(|o| o.state == crate::runtime::ContainerState::Running && !o.init)
        .collect();
    state
        .probes
        .retain(|(id, _), _| running.iter().any(|o| &o.id == id));
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        let Some(o) = running.iter().find(|o| o.name == c.name) else {
            continue;
        };
        let started = started_instant(o);
        let target = probes::Target {
            pod_ip: ip.to_string(),
            container: c.clone(),
            container_id: o.id.clone(),
            runtime: shared.runtime.clone(),
        };
        for (kind, probe) in [
            (probes::Kind::Startup, &c.startup_probe),
            (probes::Kind::Readiness, &c.readiness_probe),
            (probes::Kind::Liveness, &c.liveness_probe),
        ] {
            let Some(probe) = probe else { continue };
            let s = state
                .probes
                .entry((o.id.clone(), kind))
                .or_insert_with(|| ProbeState::new(kind, probe, started));
            // A passed startup probe is never run again for this container.
            let runs = !(kind == probes::Kind::Startup && s.ok);
            if runs && s.take_due(probe) {
                let outcome = probes::run(probe, &target).await;
                super::metrics::probe(kind, &outcome, pod, &c.name);
                if let Some(message) = outcome.event_message(kind) {
                    tracing::info!(container = %c.name, %message, "probe failed");
                    shared.recorder.event(
                        events::container_ref(pod, Some(&c.name)),
                        events::WARNING,
                        "Unhealthy",
                        message,
                    );
                }
                if s.record(probe, outcome.passed()) {
                    tracing::info!(container = %c.name, ?kind, ok = s.ok, "probe verdict changed");
                }
            }
            let kill = match kind {
                probes::Kind::Startup if !s.ok => {
                    out.not_started.insert(c.name.clone());
                    out.unready.insert(c.name.clone());
                    s.gave_up(probe).then_some(KillReason::Startup)
                }
                probes::Kind::Readiness if !s.ok => {
                    out.unready.insert(c.name.clone());
                    None
                }
                probes::Kind::Liveness if !s.ok => Some(KillReason::Liveness),
                _ => None,
            };
            let startup_pending = kind == probes::Kind::Startup && !s.ok;
            let killed = kill.is_some();
            if runs && !killed {
                let next = s.next_due();
                out.next_probe = Some(out.next_probe.map_or(next, |n| n.min(next)));
            }
            if let Some(reason) = kill {
                out.unready.insert(c.name.clone());
                // The probe's own grace period wins over the pod's (GA since 1.28).
                let grace = probe
                    .termination_grace_period_seconds
                    .map(|s| Duration::from_secs(s.max(0) as u64))
                    .unwrap_or_else(|| plan::grace_period(pod));
                let t = HookTarget {
                    pod,
                    container: c,
                    container_id: &o.id,
                    pod_ip,
                    runtime: &shared.runtime,
                };
                if let Err(e) = kill_container(&t, reason, grace, &shared.recorder).await {
                    tracing::warn!(container = %c.name, error = %e, "stopping unhealthy container");
                }
            }
            // Until startup passes, readiness and liveness do not run (upstream).
            if startup_pending || killed {
                break;
            }
        }
    }
    out
}

pub(super) fn image_info(
    shared: &Shared,
    pod: &Pod,
    f: impl Fn(&crate::image::ImageRecord) -> String,
) -> BTreeMap<String, String> {
    all_containers(pod)
        .filter_map(|c| c.image.clone())
        .filter_map(|i| shared.images.store.get(&i).ok().map(|r| (i, f(&r))))
        .collect()
}

pub(super) fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
}

/// The container of the pod named `name`: an init or regular container, or an ephemeral
/// one with its `targetContainerName` (whose PID namespace it joins).
fn container_named(pod: &Pod, name: &str) -> Option<(Container, Option<String>)> {
    if let Some(c) = all_containers(pod).find(|c| c.name == name) {
        return Some((c.clone(), None));
    }
    let e = pod
        .spec
        .as_ref()?
        .ephemeral_containers
        .iter()
        .flatten()
        .find(|e| e.name == name)?;
    let target = e.target_container_name.clone().filter(|t| !t.is_empty());
    Some((super::status::ephemeral_as_container(e)?, target))
}

/// The PID namespace of the running `target` container of pod `uid`, which an ephemeral
/// container targeting it joins (`/proc/<its init>/ns/pid`), so `ps` in a debugging
/// container sees the target's processes, as with the kubelet's CRI runtimes.
async fn target_pid_namespace(
    shared: &Shared,
    uid: &str,
    target: &str,
) -> Result<std::path::PathBuf, Waiting> {
    let (runtime, uid, name) = (shared.runtime.clone(), uid.to_string(), target.to_string());
    let pid = tokio::task::spawn_blocking(move || -> Option<u32> {
        let latest = observe(runtime.as_ref(), &uid)
            .ok()?
            .into_iter()
            .filter(|o| o.name == name && !o.init)
            .max_by_key(|o| o.attempt)?;
        runtime.state(&latest.id).ok()?.pid
    })
    .await
    .ok()
    .flatten();
    match pid {
        Some(pid) => Ok(std::path::PathBuf::from(format!("/proc/{pid}/ns/pid"))),
        None => Err(waiting(
            "CreateContainerError",
            format!("target container {target:?} is not running"),
        )),
    }
}

/// How long a failed pull shows as `ErrImagePull` before `ImagePullBackOff`.
const ERR_IMAGE_PULL_SHOWN: Duration = Duration::from_secs(2);

/// Which images may be tried now: all but those whose failed pull still backs off, which
/// show `ErrImagePull` for a moment, then `ImagePullBackOff` (with a `BackOff` event, once
/// per failure, as upstream).
fn image_states(
    shared: &Shared,
    pod: &Pod,
    state: &mut WorkerState,
) -> BTreeMap<String, ImageState> {
    let now = tokio::time::Instant::now();
    let mut out = BTreeMap::new();
    for c in all_containers(pod) {
        let Some(image) = c.image.clone() else {
            continue;
        };
        let s = match state.image_backoff.get_mut(&image) {
            Some(b) => {
                let (s, report) = image_state(b, &image, now);
                if report {
                    b.backoff_reported = true;
                    let object = events::container_ref(pod, Some(&c.name));
                    shared.recorder.event(
                        object.clone(),
                        events::NORMAL,
                        "BackOff",
                        format!("Back-off pulling image {image:?}"),
                    );
                    shared.recorder.event(
                        object,
                        events::WARNING,
                        "Failed",
                        format!("Error: {IMAGE_PULL_BACK_OFF}"),
                    );
                }
                s
            }
            None => ImageState::Present,
        };
        out.entry(image).or_insert(s);
    }
    out
}

/// What a container sees of its image after a failed pull `b`, at `now`: present again
/// (may be tried) once the back-off ran out; before that `ErrImagePull` with the
/// registry's error for [`ERR_IMAGE_PULL_SHOWN`], then `ImagePullBackOff`. The flag says
/// to record the move to `ImagePullBackOff` (once per failure, as upstream).
fn image_state(b: &PullBackoff, image: &str, now: tokio::time::Instant) -> (ImageState, bool) {
    if now >= b.until {
        return (ImageState::Present, false);
    }
    if b.waiting.reason != ERR_IMAGE_PULL || now < b.failed + ERR_IMAGE_PULL_SHOWN {
        return (ImageState::Failed(b.waiting.clone()), false);
    }
    let cause = b.waiting.message.as_deref().unwrap_or_default();
    let state = ImageState::Failed(waiting(
        IMAGE_PULL_BACK_OFF,
        format!("Back-off pulling image {image:?}: {ERR_IMAGE_PULL}: {cause}"),
    ));
    (state, !b.backoff_reported)
}

/// How long after its `failures`-th failure in a row an image is not tried: doubling from
/// [`plan::BACKOFF_INITIAL`] for a failed pull, as the kubelet's; a missing image under
/// `Never` (`ErrImageNeverPull`) is looked for again after the first step every time,
/// since someone may load it any time.
fn pull_backoff(failures: u32, reason: &str) -> Duration {
    if reason == ERR_IMAGE_PULL {
        plan::backoff(failures).max(plan::BACKOFF_INITIAL)
    } else {
        plan::BACKOFF_INITIAL
    }
}

/// Makes a container's image present (pulling as its policy says) and keeps the pod's
/// per-image back-off: the delay doubles with each failure in a row, as the kubelet's.
async fn ensure_image(
    shared: &Shared,
    pod: &Pod,
    name: &str,
    state: &mut WorkerState,
) -> Result<crate::image::ImageRecord, Waiting> {
    let (c, _) = container_named(pod, name)
        .ok_or_else(|| waiting("CreateContainerConfigError", "no such container"))?;
    let image = c.image.clone().unwrap_or_default();
    match shared
        .images
        .ensure(&shared.client, pod, &c, &shared.recorder)
        .await
    {
        Ok(record) => {
            state.image_backoff.remove(&image);
            Ok(record)
        }
        Err(w) => {
            let now = tokio::time::Instant::now();
            let failures = state.image_backoff.get(&image).map_or(0, |b| b.failures) + 1;
            let delay = pull_backoff(failures, &w.reason);
            state.image_backoff.insert(
                image,
                PullBackoff {
                    failed: now,
                    until: now + delay,
                    failures,
                    waiting: w.clone(),
                    backoff_reported: false,
                },
            );
            Err(w)
        }
    }
}

fn sandbox_spec(pod: &Pod) -> SandboxSpec {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut dns = if spec.dns_policy.as_deref() == Some("Default") {
        DnsConfig::default()
    } else {
        // ClusterFirst: cluster DNS and the kubelet's search path for the namespace.
        let net = ClusterNetwork::default();
        DnsConfig {
            nameservers: vec![net.dns_service_ip().to_string()],
            searches: net.search_path(&ns).to_vec(),
            options: vec!["ndots:5".into()],
        }
    };
    if let Some(c) = &spec.dns_config {
        dns.nameservers
            .extend(c.nameservers.clone().unwrap_or_default());
        dns.searches.extend(c.searches.clone().unwrap_or_default());
    }
    SandboxSpec {
        id: pod.metadata.uid.clone().unwrap_or_default(),
        name: spec
            .hostname
            .clone()
            .or(pod.metadata.name.clone())
            .unwrap_or_default(),
        namespace: ns,
        host_network: spec.host_network.unwrap_or(false),
        dns,
        host_aliases: spec
            .host_aliases
            .iter()
            .flatten()
            .map(|a| (a.ip.clone(), a.hostnames.clone().unwrap_or_default()))
            .collect(),
    }
}

/// Renews the pod's projected tokens that are due and rewrites their files (off the
/// runtime). A failed request is logged and tried again a few seconds later: the token
/// in the files stays valid for a fifth of its lifetime yet.
async fn refresh_tokens(shared: &Arc<Shared>, pod: &Pod, state: &mut WorkerState) {
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let now = tokio::time::Instant::now();
    if finished
        || tokens::projections(pod).is_empty()
        || state.token_retry.is_some_and(|at| now < at)
    {
        return;
    }
    match tokens::ensure(&shared.client, pod, &mut state.tokens).await {
        Ok(false) => {}
        Ok(true) => {
            let current = tokens::current(&state.tokens);
            let (dir, pod) = (shared.cfg.data_dir.clone(), pod.clone());
            let written =
                tokio::task::spawn_blocking(move || volumes::write_tokens(&dir, &pod, &current))
                    .await;
            match written {
                Ok(Ok(())) => tracing::debug!("service account tokens written"),
                Ok(Err(error)) => tracing::warn!(%error, "writing service account tokens"),
                Err(error) => tracing::warn!(%error, "writing service account tokens"),
            }
        }
        Err(error) => {
            tracing::warn!(%error, "requesting a service account token");
            state.token_retry = Some(now + Duration::from_secs(5));
        }
    }
}

/// The Services whose variables the pod's containers get: the `kubernetes` Service, and
/// the namespace's when `enableServiceLinks` is not false.
async fn service_env(shared: &Shared, pod: &Pod) -> Result<Vec<(String, String)>, kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut services = Vec::new();
    if let Some(s) = Api::<Service>::namespaced(shared.client.clone(), "default")
        .get_opt("kubernetes")
        .await?
    {
        services.push(s);
    }
    if links {
        let api: Api<Service> = Api::namespaced(shared.client.clone(), ns);
        services.extend(api.list(&Default::default()).await?.items);
    }
    Ok(super::env::service_env(ns, links, &services))
}

async fn fetch_sources(
    shared: &Shared,
    pod: &Pod,
    cache: &mut tokens::Cache,
) -> anyhow::Result<Fetched> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (cms, secrets) = referenced(pod);
    let mut out = Fetched::default();
    tokens::ensure(&shared.client, pod, cache).await?;
    out.tokens = tokens::current(cache);
    out.service_env = service_env(shared, pod).await?;
    let cm_api: Api<ConfigMap> = Api::namespaced(shared.client.clone(), ns);
    for name in cms {
        if let Some(c) = cm_api.get_opt(&name).await? {
            out.config_maps.insert(name, c);
        }
    }
    let secret_api: Api<Secret> = Api::namespaced(shared.client.clone(), ns);
    for name in secrets {
        if let Some(s) = secret_api.get_opt(&name).await? {
            out.secrets.insert(name, s);
        }
    }
    volumes::fetch_claims(&shared.client, pod, &mut out).await?;
    Ok(out)
}

/// Runtime id of one attempt of a container: short, unique per pod, valid for runc.
pub(crate) fn container_id(uid: &str, name: &str, attempt: u32) -> String {
    let short: String = uid.chars().filter(|c| *c != '-').take(12).collect();
    let mut id = format!("{short}-{attempt}-{name}");
    id.truncate(64);
    id
}

fn waiting(reason: &str, message: impl ToString) -> Waiting {
    Waiting {
        reason: reason.into(),
        message: Some(message.to_string()),
    }
}

/// Bytes of a quantity (memory, sizes), rounded up as upstream's `Value()`; `None` when it
/// does not parse or is out of range. Through the one quantity parser.
pub(crate) fn quantity_bytes(q: &str) -> Option<u64> {
    u64::try_from(Quantity::parse(q).ok()?.value()).ok()
}

/// Millicores of a CPU quantity, rounded up as upstream's `MilliValue()`.
fn quantity_millis(q: &str) -> Option<u64> {
    u64::try_from(Quantity::parse(q).ok()?.milli_value()).ok()
}

fn resources(c: &Container) -> Resources {
    let r = c.resources.clone().unwrap_or_default();
    let limits = r.limits.unwrap_or_default();
    let requests = r.requests.unwrap_or_default();
    Resources {
        memory_limit: limits.get("memory").and_then(|q| quantity_bytes(&q.0)),
        cpu_limit_millis: limits.get("cpu").and_then(|q| quantity_millis(&q.0)),
        cpu_request_millis: requests.get("cpu").and_then(|q| quantity_millis(&q.0)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn start_container(
    shared: &Arc<Shared>,
    pod: &Pod,
    name: &str,
    init: bool,
    attempt: u32,
    image_record: &crate::image::ImageRecord,
    sources: &Fetched,
    updates: &watch::Receiver<Option<Pod>>,
) -> Result<(), Waiting> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let (c, target) = container_named(pod, name)
        .ok_or_else(|| waiting("CreateContainerConfigError", "no such container"))?;
    let pid_namespace = match target {
        Some(target) => Some(target_pid_namespace(shared, &uid, &target).await?),
        None => None,
    };
    let image = c.image.clone().unwrap_or_default();
    let rootfs = shared
        .images
        .store
        .rootfs_of(image_record)
        .map_err(|e| waiting("CreateContainerError", e))?;
    let sandbox = shared
        .sandboxes
        .get(&uid)
        .ok_or_else(|| waiting("CreateContainerError", "pod sandbox is missing"))?;
    let pod_ip = sandbox
        .ip()
        .map(|ip| ip.to_string())
        .or_else(|| sandbox.spec.host_network.then(|| shared.node_ip.clone()));
    let env = resolve_env(pod, &c, sources, &shared.node_ip, pod_ip.as_deref())
        .map_err(|e| waiting("CreateContainerConfigError", e))?;
    let (command, args) = expand_argv(&c, &env);
    let node_security = super::security::NodeSecurity {
        seccomp_default: shared.cfg.seccomp_default,
        seccomp_root: shared.cfg.data_dir.join("seccomp"),
        lsm: super::security::HostLsm::current().await,
    };
    let resolved = super::security::resolve(pod, &c, &rootfs.config.user, &node_security)
        .map_err(|e| waiting("CreateContainerConfigError", e))?;
    let process = ProcessSpec::resolve(
        &rootfs.config,
        &command,
        &args,
        &env,
        c.working_dir.as_deref(),
        resolved.user,
    )
    .map_err(|e| waiting("CreateContainerConfigError", e))?;
    // Volumes are files written (and tmpfs mounted) on disk: off the async runtime.
    let mounted = {
        let (dir, p, c, sources) = (
            shared.cfg.data_dir.clone(),
            pod.clone(),
            c.clone(),
            sources.clone(),
        );
        let (host_ip, pod_ip) = (shared.node_ip.clone(), pod_ip.clone());
        tokio::task::spawn_blocking(move || {
            volumes::mounts(&dir, &p, &c, &sources, &host_ip, pod_ip.as_deref())
        })
        .await
        .map_err(|e| waiting("CreateContainerConfigError", e))?
    };
    let mounts = mounted.map_err(|e| volumes::not_mounted(shared, pod, e))?;
    let labels = BTreeMap::from([
        (LABEL_UID.to_string(), uid.clone()),
        (LABEL_NAME.to_string(), pod_name.clone()),
        (LABEL_NAMESPACE.to_string(), ns.clone()),
        (LABEL_CONTAINER.to_string(), name.to_string()),
        (LABEL_ATTEMPT.to_string(), attempt.to_string()),
        (LABEL_INIT.to_string(), init.to_string()),
        (
            LABEL_IMAGE_ID.to_string(),
            image_record.image_ref().to_string(),
        ),
    ]);
    let spec = ContainerSpec {
        id: container_id(&uid, name, attempt),
        image,
        rootfs_layers: rootfs.layers,
        process,
        sandbox: sandbox.container_ref(),
        mounts,
        resources: resources(&c),
        log_path: logs::pod_log_path(
            &shared.cfg.data_dir.join("logs/pods"),
            &ns,
            &pod_name,
            &uid,
            name,
            attempt,
        ),
        log_rotation: logs::Rotation::default(),
        labels,
        security: resolved.security,
        stdio: crate::runtime::Stdio {
            stdin: c.stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
            tty: c.tty.unwrap_or(false),
        },
        pid_namespace,
    };
    let id = spec.id.clone();
    let rt = shared.runtime.clone();
    tokio::task::spawn_blocking(move || {
        rt.create(&spec)
            .map_err(|e| waiting("CreateContainerError", e))?;
        rt.start(&spec.id).map_err(|e| {
            let _ = rt.delete(&spec.id);
            waiting("RunContainerError", e)
        })
    })
    .await
    .map_err(|e| waiting("RunContainerError", e))??;
    let t = HookTarget {
        pod,
        container: &c,
        container_id: &id,
        pod_ip: pod_ip.as_deref(),
        runtime: &shared.runtime,
    };
    // The worker waits here, so the status keeps showing the container as creating until
    // the hook returns; deleting the pod abandons the hook (its stop kills the exec).
    tokio::select! {
        result = lifecycle::post_start(&t, &shared.recorder) => if let Err(e) = result {
            let grace = plan::grace_period(pod);
            if let Err(e) = kill_container(&t, KillReason::FailedPostStart, grace, &shared.recorder).await {
                tracing::warn!(container = %name, error = %e, "killing container after failed postStart");
            }
            return Err(waiting("PostStartHookError", e));
        },
        () = terminating(shared, updates.clone()) => {
            tracing::info!(container = %name, "pod is terminating; postStart hook abandoned");
        }
    }
    Ok(())
}

/// Returns once the pod is being deleted or is gone, or the node shuts down.
async fn terminating(shared: &Shared, updates: watch::Receiver<Option<Pod>>) {
    tokio::select! {
        () = deleted(updates) => {}
        () = shared.shutdown.wait_started() => {}
    }
}

/// Returns once the pod is being deleted or is gone.
async fn deleted(mut updates: watch::Receiver<Option<Pod>>) {
    loop {
        let done = updates
            .borrow_and_update()
            .as_ref()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some());
        if done || updates.changed().await.is_err() {
            return;
        }
    }
}

/// Stops one container of a pod being deleted: `Killing`, preStop, SIGTERM, SIGKILL.
async fn stop_for_deletion(
    shared: &Shared,
    pod: &Pod,
    observed: &[Observed],
    id: &str,
    grace: Duration,
    pod_ip: Option<&str>,
) -> Result<(), crate::runtime::Error> {
    let spec = observed
        .iter()
        .find(|o| o.id == id)
        .and_then(|o| all_containers(pod).find(|c| c.name == o.name));
    let Some(container) = spec else {
        // Not in the spec (cannot happen for a pod's own containers): plain stop.
        crate::runtime::stop(&shared.runtime, id, grace.max(lifecycle::MIN_GRACE)).await?;
        return Ok(());
    };
    let t = HookTarget {
        pod,
        container,
        container_id: id,
        pod_ip,
        runtime: &shared.runtime,
    };
    kill_container(&t, KillReason::PodDeleted, grace, &shared.recorder).await?;
    Ok(())
}

/// Removes a pod's sandbox, volumes and (when `logs_of` names it) logs.
fn remove_pod_files(shared: &Shared, uid: &str, logs_of: Option<(&str, &str)>) {
    if let Err(e) = shared.sandboxes.remove(uid) {
        tracing::warn!(error = %e, "removing sandbox");
    }
    volumes::remove_pod_dir(&shared.cfg.data_dir, uid);
    if let Some((ns, name)) = logs_of {
        let dir = shared
            .cfg
            .data_dir
            .join("logs/pods")
            .join(format!("{ns}_{name}_{uid}"));
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Stops and removes everything of a pod that disappeared from the API. Any step that
/// fails (the container list, a stop, a delete) fails the cleanup, and the harness tries
/// it again with back-off: a failed look is never taken for "no containers", which would
/// leave them running with nothing left to stop them.
async fn cleanup(
    shared: &Arc<Shared>,
    uid: &str,
    names: Option<(String, String)>,
    grace: Duration,
) -> anyhow::Result<()> {
    let observed = observe_off_runtime(shared, uid).await?;
    // Stopped together, as a deletion stops a pod's containers.
    let stopping = observed.iter().map(|c| async move {
        crate::runtime::stop(&shared.runtime, &c.id, grace).await?;
        let id = c.id.clone();
        crate::runtime::blocking(&shared.runtime, move |r| r.delete(&id)).await
    });
    let mut failed = None;
    for (c, result) in observed
        .iter()
        .zip(futures::future::join_all(stopping).await)
    {
        if let Err(e) = result {
            tracing::warn!(container = %c.id, error = %e, "removing container");
            failed = Some(e);
        }
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    let s = shared.clone();
    let uid = uid.to_string();
    tokio::task::spawn_blocking(move || {
        remove_pod_files(
            &s,
            &uid,
            names.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
        );
    })
    .await?;
    tracing::info!("pod cleaned up");
    Ok(())
}

#[cfg(test)]
mod quantity_tests {
    use super::{quantity_bytes, quantity_millis};

    #[test]
    fn container_resources_read_through_the_one_quantity_parser() {
        assert_eq!(quantity_bytes("64Mi"), Some(64 << 20));
        assert_eq!(quantity_bytes("1.5Gi"), Some(1536 << 20));
        assert_eq!(quantity_bytes("1e3"), Some(1000));
        assert_eq!(quantity_bytes("-1"), None);
        assert_eq!(quantity_bytes("lots"), None);
        assert_eq!(quantity_millis("250m"), Some(250));
        assert_eq!(quantity_millis("1.5"), Some(1500));
        assert_eq!(
            quantity_millis("0.0001"),
            Some(1),
            "rounded up, as MilliValue"
        );
    }
}

#[cfg(test)]
#[path = "pods_tests.rs"]
mod tests;
