//! Keeps the API-sourced volumes of running pods (configMap, secret, downwardAPI and
//! projected) in step with their sources, as the kubelet's volume manager does with its
//! watch-based ConfigMap and Secret managers: a change to a ConfigMap or Secret (seen on a
//! metadata-only watch of that one object) or to a pod's labels or annotations rewrites the volumes that show it,
//! through the atomic writer ([`super::atomic`]), within a moment instead of the kubelet's
//! sync period. Volumes not written yet (no container started) are left to the pod worker.

use super::env::Fetched;
use super::tokens::TokenKey;
use super::Shared;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Volume};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use kube::runtime::{watcher, WatchStreamExt};
use skiff_reconcile::{Harness, ObjectKey, Outcome, Queue};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A source object a volume shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

/// The ConfigMaps and Secrets the pod's volumes show, directly or projected.
pub fn volume_sources(pod: &Pod) -> BTreeSet<(SourceKind, String)> {
    let mut out = BTreeSet::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if let Some(c) = &v.config_map {
            out.insert((SourceKind::ConfigMap, c.name.clone()));
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            out.insert((SourceKind::Secret, s));
        }
        for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &s.config_map {
                out.insert((SourceKind::ConfigMap, c.name.clone()));
            }
            if let Some(c) = &s.secret {
                out.insert((SourceKind::Secret, c.name.clone()));
            }
        }
    }
    out
}

fn shows_metadata(v: &Volume) -> bool {
    v.downward_api.is_some()
        || v.projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
            .any(|s| s.downward_api.is_some())
}

/// Whether a pod update changes what its volumes show: labels or annotations, for a pod
/// with a downwardAPI volume (or projection).
pub fn metadata_changed(old: &Pod, new: &Pod) -> bool {
    let shows = new
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(shows_metadata);
    shows
        && (old.metadata.labels != new.metadata.labels
            || old.metadata.annotations != new.metadata.annotations)
}

fn updatable(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.secret.is_some()
        || v.downward_api.is_some()
        || v.projected.is_some()
}

/// One watched source object: kind, namespace, name.
type SourceKey = (SourceKind, String, String);

/// The source objects the known pods' volumes show.
pub fn watched(pods: &HashMap<String, Pod>) -> BTreeSet<SourceKey> {
    pods.values()
        .flat_map(|p| {
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            volume_sources(p)
                .into_iter()
                .map(move |(kind, name)| (kind, ns.clone(), name))
        })
        .collect()
}

/// The volume refresh loop's name on the reconcile harness (its workqueue metrics' `name`).
pub(crate) const CONTROLLER: &str = "volume-refresh";

/// What the loop works on.
struct Ctx {
    shared: Arc<Shared>,
    /// The pods bound to this node (the harness's cache of its primary kind).
    pods: Store<Pod>,
    queue: Arc<Queue<ObjectKey>>,
    /// One watch per source object the pods show, started and stopped with them.
    watches: Mutex<HashMap<SourceKey, tokio::task::JoinHandle<()>>>,
    /// How many times each watched source changed (or was listed again).
    changes: Arc<Mutex<HashMap<SourceKey, u64>>>,
    /// Per pod (by UID), what its volumes were last written from: the pod and the change
    /// count of each source.
    seen: Mutex<HashMap<String, Seen>>,
}

struct Seen {
    pod: Pod,
    sources: BTreeMap<SourceKey, u64>,
}

/// The sources one pod's volumes show, with their namespace.
fn sources_of(pod: &Pod) -> BTreeSet<SourceKey> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    volume_sources(pod)
        .into_iter()
        .map(|(kind, name)| (kind, ns.clone(), name))
        .collect()
}

/// The keys of the cached pods whose volumes show `source`.
fn showing(pods: &Store<Pod>, source: &SourceKey) -> Vec<ObjectKey> {
    pods.state()
        .iter()
        .filter(|p| sources_of(p).contains(source))
        .filter_map(|p| ObjectKey::of(&p.metadata))
        .collect()
}

/// A metadata-only watch of one object (`metadata.name` field selector in its namespace,
/// what the node authorizer lets a node read, as the kubelet's per-object watches): each
/// change (and each (re)list, for what was missed) counts in `changes` and queues the
/// pods showing it.
fn watch_source<K>(ctx: &Ctx, key: SourceKey) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api = Api::<PartialObjectMeta<K>>::namespaced(ctx.shared.client.clone(), &key.1);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={}", key.2));
    let (pods, queue, changes) = (ctx.pods.clone(), ctx.queue.clone(), ctx.changes.clone());
    tokio::spawn(async move {
        let mut events = watcher(api, cfg).default_backoff().boxed();
        while let Some(e) = events.next().await {
            let changed = matches!(
                e,
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone)
            );
            if changed {
                *changes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(key.clone())
                    .or_default() += 1;
                queue.add_all(showing(&pods, &key));
            }
        }
    })
}

/// Runs the loop on the reconcile harness until the agent stops: every change of a pod
/// bound to this node, and of a source object its volumes show, queues the pod's key; a
/// sync rewrites the pod's volumes when their sources or its shown metadata changed
/// since they were last written.
pub(crate) async fn run(shared: Arc<Shared>) {
    let node = format!("spec.nodeName={}", shared.cfg.node_name);
    let mut controller = Harness::new(CONTROLLER, shared.client.clone())
        .metrics(&super::metrics::workqueue())
        .watch_with::<Pod>(watcher::Config::default().fields(&node));
    let ctx = Arc::new(Ctx {
        pods: controller.store(),
        queue: controller.queue(),
        shared,
        watches: Mutex::default(),
        changes: Arc::default(),
        seen: Mutex::default(),
    });
    // Keys of deleted pods are synced too: their sources' watches stop.
    controller
        .run_keys(
            |key: ObjectKey, ctx: Arc<Ctx>| async move {
                let pod = ctx.pods.get(&key.to_ref::<Pod>());
                sync(&ctx, pod.as_deref()).await;
                Ok::<_, std::convert::Infallible>(Outcome::Done)
            },
            ctx,
        )
        .await;
}

/// One pod's sync: the source watches brought in line with the cached pods, then the
/// pod's volumes (if it is still there) rewritten if what they show changed.
async fn sync(ctx: &Ctx, pod: Option<&Pod>) {
    let pods = ctx.pods.state();
    let known: HashMap<String, Pod> = pods
        .iter()
        .map(|p| (p.metadata.uid.clone().unwrap_or_default(), (**p).clone()))
        .collect();
    let want = watched(&known);
    {
        let mut watches = ctx.watches.lock().unwrap_or_else(|e| e.into_inner());
        watches.retain(|key, task| {
            let keep = want.contains(key);
            if !keep {
                task.abort();
            }
            keep
        });
        for key in want {
            if let std::collections::hash_map::Entry::Vacant(slot) = watches.entry(key) {
                let key = slot.key().clone();
                slot.insert(match key.0 {
                    SourceKind::ConfigMap => watch_source::<ConfigMap>(ctx, key),
                    SourceKind::Secret => watch_source::<Secret>(ctx, key),
                });
            }
        }
    }
    let Some(pod) = pod else {
        ctx.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|uid, _| known.contains_key(uid));
        return;
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let sources: BTreeMap<SourceKey, u64> = {
        let changes = ctx.changes.lock().unwrap_or_else(|e| e.into_inner());
        sources_of(pod)
            .into_iter()
            .map(|k| {
                let n = changes.get(&k).copied().unwrap_or(0);
                (k, n)
            })
            .collect()
    };
    let due = {
        let mut seen = ctx.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|uid, _| known.contains_key(uid));
        let due = seen
            .get(&uid)
            .is_some_and(|s| metadata_changed(&s.pod, pod) || s.sources != sources);
        // A pod seen for the first time has its volumes written by its worker; its
        // sources' first lists count as changes and bring it back here.
        seen.insert(
            uid,
            Seen {
                pod: pod.clone(),
                sources,
            },
        );
        due
    };
    if due {
        refresh(&ctx.shared, pod.clone()).await;
    }
}

/// Fetches the pod's volume sources and rewrites its volumes that changed.
async fn refresh(shared: &Arc<Shared>, pod: Pod) {
    if pod.metadata.deletion_timestamp.is_some() {
        return;
    }
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut fetched = Fetched::default();
    for (kind, name) in volume_sources(&pod) {
        let got = match kind {
            SourceKind::ConfigMap => Api::<ConfigMap>::namespaced(shared.client.clone(), &ns)
                .get_opt(&name)
                .await
                .map(|c| {
                    if let Some(c) = c {
                        fetched.config_maps.insert(name.clone(), c);
                    }
                }),
            SourceKind::Secret => Api::<Secret>::namespaced(shared.client.clone(), &ns)
                .get_opt(&name)
                .await
                .map(|s| {
                    if let Some(s) = s {
                        fetched.secrets.insert(name.clone(), s);
                    }
                }),
        };
        if let Err(error) = got {
            // The volumes keep what they show until the next change.
            tracing::warn!(%error, ?kind, %name, "cannot read a volume's source");
            return;
        }
    }
    let data_dir = shared.cfg.data_dir.clone();
    let host_ip = shared.node_ip.clone();
    let written =
        tokio::task::spawn_blocking(move || refresh_volumes(&data_dir, &pod, fetched, &host_ip))
            .await;
    if let Ok((key, names)) = written {
        for name in names {
            tracing::info!(pod = %key, volume = %name, "volume updated");
        }
    }
}

/// Rewrites the written API-sourced volumes of `pod` from `fetched`; returns the pod's
/// key and the volumes that changed. Projected tokens are kept from the current version
/// (the token manager renews them).
fn refresh_volumes(
    data_dir: &Path,
    pod: &Pod,
    fetched: Fetched,
    host_ip: &str,
) -> (String, Vec<String>) {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let key = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
    let root = super::volumes::pod_dir(data_dir, uid).join("volumes");
    let mut updated = Vec::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = root.join(&v.name);
        if !updatable(v) || std::fs::read_link(dir.join("..data")).is_err() {
            continue;
        }
        let mut sources = fetched.clone();
        for t in v
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
            .filter_map(|s| s.service_account_token.as_ref())
        {
            if let Ok(token) = std::fs::read_to_string(dir.join("..data").join(&t.path)) {
                sources.tokens.insert(TokenKey::of(t), token);
            }
        }
        let files = super::volumes::volume_files(pod, v, &sources, host_ip, pod_ip.as_deref());
        match files {
            Ok(Some((files, mode))) => {
                match super::volumes::write_volume(&dir, &files, mode, &v.name) {
                    Ok(true) => {
                        if let Err(error) = super::volumes::own_rewritten_volume(pod, &dir) {
                            tracing::warn!(pod = %key, volume = %v.name, %error,
                                "cannot give an updated volume to the pod's fsGroup");
                        }
                        updated.push(v.name.clone());
                    }
                    Ok(false) => {}
                    Err(error) => tracing::warn!(pod = %key, volume = %v.name, %error,
                        "cannot update a volume"),
                }
            }
            Ok(None) => {}
            // A source deleted that is not optional: the volume keeps its content, as
            // upstream keeps the last good payload.
            Err(error) => tracing::warn!(pod = %key, volume = %v.name, %error,
                "volume not updated"),
        }
    }
    (key, updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(volumes: serde_json::Value, labels: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u", "labels": labels},
            "spec": {"containers": [{"name": "c"}], "volumes": volumes},
        }))
        .unwrap()
    }

    #[test]
    fn sources_of_volumes_direct_and_projected() {
        let p = pod(
            json!([
                {"name": "a", "configMap": {"name": "cfg"}},
                {"name": "b", "secret": {"secretName": "creds"}},
                {"name": "c", "projected": {"sources": [
                    {"configMap": {"name": "more"}},
                    {"secret": {"name": "creds"}},
                    {"serviceAccountToken": {"path": "token"}},
                ]}},
                {"name": "d", "emptyDir": {}},
                {"name": "e", "downwardAPI": {"items": []}},
            ]),
            json!({}),
        );
        let want: BTreeSet<(SourceKind, String)> = [
            (SourceKind::ConfigMap, "cfg".to_string()),
            (SourceKind::ConfigMap, "more".to_string()),
            (SourceKind::Secret, "creds".to_string()),
        ]
        .into();
        assert_eq!(volume_sources(&p), want);
        assert!(volume_sources(&pod(json!([{"name": "d", "emptyDir": {}}]), json!({}))).is_empty());
    }

    #[test]
    fn one_watch_per_object_the_pods_show() {
        let mut pods = HashMap::new();
        let mut a = pod(
            json!([{"name": "a", "configMap": {"name": "cfg"}}]),
            json!({}),
        );
        pods.insert("a".to_string(), a.clone());
        a.metadata.namespace = Some("other".into());
        pods.insert("b".to_string(), a);
        pods.insert(
            "c".to_string(),
            pod(
                json!([{"name": "b", "secret": {"secretName": "creds"}},
                       {"name": "c", "configMap": {"name": "cfg"}}]),
                json!({}),
            ),
        );
        let key = |k, ns: &str, n: &str| (k, ns.to_string(), n.to_string());
        let want: BTreeSet<SourceKey> = [
            key(SourceKind::ConfigMap, "default", "cfg"),
            key(SourceKind::ConfigMap, "other", "cfg"),
            key(SourceKind::Secret, "default", "creds"),
        ]
        .into();
        assert_eq!(watched(&pods), want);
        assert!(watched(&HashMap::new()).is_empty());
    }

    #[test]
    fn only_label_or_annotation_changes_of_pods_showing_them_count() {
        let downward = json!([{"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]);
        let projected = json!([{"name": "info", "projected": {"sources": [
            {"downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}}]);
        let plain = json!([{"name": "cfg", "configMap": {"name": "cfg"}}]);
        let cases = [
            (&downward, json!({"a": "1"}), json!({"a": "2"}), true),
            (&downward, json!({"a": "1"}), json!({"a": "1"}), false),
            (
                &projected,
                json!({"a": "1"}),
                json!({"a": "1", "b": "2"}),
                true,
            ),
            (&plain, json!({"a": "1"}), json!({"a": "2"}), false),
        ];
        for (volumes, before, after, want) in cases {
            let (old, new) = (pod(volumes.clone(), before), pod(volumes.clone(), after));
            assert_eq!(metadata_changed(&old, &new), want, "{volumes} {new:?}");
        }
    }
}
