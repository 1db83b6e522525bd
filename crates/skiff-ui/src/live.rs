//! The live model: kube-rs watches (which resume from their last resourceVersion and re-list
//! only when it expired) feed one in-memory copy of the objects the viewer may read; each
//! change becomes a few operations (a fragment put or removed, a timeline line) broadcast to
//! every open page. A page that connects, or falls behind, gets a snapshot instead.

use crate::model::{parent_of, pod_counts, workload_gap, CustomKind, Key, Kind};
use crate::render::{fragment, line_html, Fragment};
use crate::timeline::{change_line, event_line, Line, OwnerGap};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use kube::runtime::{watcher, WatchStreamExt};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{broadcast, mpsc};

/// How many timeline lines the model keeps for a page that connects.
const TIMELINE: usize = 300;
/// Operations sent in one message at most; a burst is split rather than held.
const BATCH: usize = 2000;

/// One change to the page.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    /// Forget everything: a snapshot follows.
    Reset,
    /// Add or replace a node.
    Put(Fragment),
    /// Remove a node.
    Del { id: String },
    /// A timeline line (prepended: newest first).
    Line { ns: String, html: String },
    /// Something the viewer should know about what they cannot see.
    Notice { text: String },
}

/// What watches deliver to the model.
pub type Update = (Kind, watcher::Event<DynamicObject>);

/// The objects, their tree and the timeline.
#[derive(Default)]
pub struct Model {
    objects: HashMap<Key, Value>,
    /// Parent → children, for counting a workload's pods.
    children: HashMap<Key, HashSet<Key>>,
    timeline: VecDeque<Line>,
    /// Objects of a kind being re-listed, until the list is complete.
    listing: HashMap<Kind, BTreeMap<Key, Value>>,
    /// Kinds whose first list is done: changes after it are reconcile actions.
    listed: HashSet<Kind>,
    notices: Vec<String>,
}

impl Model {
    /// Records a notice shown to every page.
    pub fn notice(&mut self, text: String) -> Op {
        self.notices.push(text.clone());
        Op::Notice { text }
    }

    /// The owner's gap for a pod: desired replicas and how many of its pods counted before
    /// this change.
    fn owner_gap(
        &self,
        kind: Kind,
        key: &Key,
        old: Option<&Value>,
        obj: &Value,
    ) -> Option<OwnerGap> {
        if kind != Kind::Pod {
            return None;
        }
        let parent = parent_of(kind, obj)?;
        let desired = workload_gap(parent.kind, self.objects.get(&parent)?)?.desired;
        let siblings = self
            .children
            .get(&parent)
            .into_iter()
            .flatten()
            .filter(|k| *k != key)
            .filter(|k| self.objects.get(*k).is_some_and(pod_counts))
            .count() as i64;
        Some(OwnerGap {
            desired,
            actual_before: siblings + i64::from(old.is_some_and(pod_counts)),
        })
    }

    fn link(&mut self, kind: Kind, key: &Key, old: Option<&Value>, new: Option<&Value>) {
        let was = old.and_then(|o| parent_of(kind, o));
        let is = new.and_then(|n| parent_of(kind, n));
        if was == is {
            return;
        }
        if let Some(p) = was {
            if let Some(set) = self.children.get_mut(&p) {
                set.remove(key);
                if set.is_empty() {
                    self.children.remove(&p);
                }
            }
        }
        if let Some(p) = is {
            self.children.entry(p).or_default().insert(key.clone());
        }
    }

    fn push_line(&mut self, line: Line, ops: &mut Vec<Op>) {
        ops.push(Op::Line {
            ns: line.namespace.clone(),
            html: line_html(&line),
        });
        if self.timeline.len() == TIMELINE {
            self.timeline.pop_front();
        }
        self.timeline.push_back(line);
    }

    /// Applies one object as it now is; `lines` says whether the change is a reconcile
    /// action to put on the timeline (not during the first list).
    fn upsert(&mut self, kind: Kind, new: Value, lines: bool, ops: &mut Vec<Op>) {
        let Some(key) = Key::of(kind, &new) else {
            return;
        };
        let old = self.objects.get(&key).cloned();
        if kind == Kind::Event {
            let changed = old.as_ref().is_none_or(|o| {
                o["count"] != new["count"] || o["lastTimestamp"] != new["lastTimestamp"]
            });
            if changed {
                if let Some(line) = event_line(&new) {
                    if lines {
                        self.push_line(line, ops);
                    } else {
                        self.timeline.push_back(line);
                    }
                }
            }
            self.objects.insert(key, new);
            return;
        }
        if lines {
            let gap = self.owner_gap(kind, &key, old.as_ref(), &new);
            if let Some(line) = change_line(kind, old.as_ref(), Some(&new), gap) {
                self.push_line(line, ops);
            }
        }
        let frag = fragment(kind, &new);
        if frag.is_some() && frag != old.as_ref().and_then(|o| fragment(kind, o)) {
            ops.extend(frag.map(Op::Put));
        }
        self.link(kind, &key, old.as_ref(), Some(&new));
        self.objects.insert(key, new);
    }

    fn remove(&mut self, kind: Kind, key: &Key, lines: bool, ops: &mut Vec<Op>) {
        let Some(old) = self.objects.remove(key) else {
            return;
        };
        if kind == Kind::Event {
            return;
        }
        self.link(kind, key, Some(&old), None);
        if lines {
            let gap = self.owner_gap(kind, key, Some(&old), &old);
            if let Some(line) = change_line(kind, Some(&old), None, gap) {
                self.push_line(line, ops);
            }
        }
        ops.push(Op::Del { id: key.id() });
    }

    /// Applies one watch event, returning what the pages must do.
    pub fn apply(&mut self, (kind, event): Update) -> Vec<Op> {
        let mut ops = Vec::new();
        let value = |obj: DynamicObject| serde_json::to_value(obj).ok();
        match event {
            watcher::Event::Apply(obj) => {
                if let Some(v) = value(obj) {
                    let lines = self.listed.contains(&kind);
                    self.upsert(kind, v, lines, &mut ops);
                }
            }
            watcher::Event::Delete(obj) => {
                if let Some(key) = value(obj).and_then(|v| Key::of(kind, &v)) {
                    let lines = self.listed.contains(&kind);
                    self.remove(kind, &key, lines, &mut ops);
                }
            }
            watcher::Event::Init => {
                self.listing.insert(kind, BTreeMap::new());
            }
            watcher::Event::InitApply(obj) => {
                if let Some(v) = value(obj) {
                    if let Some(key) = Key::of(kind, &v) {
                        self.listing.entry(kind).or_default().insert(key, v);
                    }
                }
            }
            watcher::Event::InitDone => {
                let listed = self.listing.remove(&kind).unwrap_or_default();
                // A re-list (the watch's resourceVersion expired) reports what changed while
                // away; the first list is the starting point, not news.
                let lines = self.listed.contains(&kind);
                let gone: Vec<Key> = self
                    .objects
                    .keys()
                    .filter(|k| k.kind == kind && !listed.contains_key(*k))
                    .cloned()
                    .collect();
                for key in gone {
                    self.remove(kind, &key, lines, &mut ops);
                }
                for (_, v) in listed {
                    self.upsert(kind, v, lines, &mut ops);
                }
                if kind == Kind::Event && !lines {
                    let mut sorted: Vec<Line> = self.timeline.drain(..).collect();
                    sorted.sort_by(|a, b| a.time.cmp(&b.time));
                    let skip = sorted.len().saturating_sub(TIMELINE);
                    self.timeline = sorted.into_iter().skip(skip).collect();
                }
                self.listed.insert(kind);
            }
        }
        ops
    }

    /// Everything a page needs to start: a reset, every node (parents before children:
    /// kinds are ordered so), the timeline (oldest first, each prepended) and the notices.
    pub fn snapshot(&self) -> Vec<Op> {
        let mut keys: Vec<&Key> = self
            .objects
            .keys()
            .filter(|k| k.kind != Kind::Event)
            .collect();
        keys.sort();
        let mut ops = vec![Op::Reset];
        ops.extend(
            keys.into_iter()
                .filter_map(|k| fragment(k.kind, &self.objects[k]).map(Op::Put)),
        );
        ops.extend(self.timeline.iter().map(|l| Op::Line {
            ns: l.namespace.clone(),
            html: line_html(l),
        }));
        ops.extend(self.notices.iter().map(|t| Op::Notice { text: t.clone() }));
        ops
    }

    /// An object as last seen.
    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }
}

/// The model shared by the watch loop and the pages, and the channel of changes.
pub struct Hub {
    model: Mutex<Model>,
    tx: broadcast::Sender<Arc<str>>,
}

fn encode(ops: &[Op]) -> Arc<str> {
    Arc::from(serde_json::to_string(ops).unwrap_or_else(|_| "[]".to_owned()))
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub {
            model: Mutex::new(Model::default()),
            tx: broadcast::channel(1024).0,
        })
    }

    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A snapshot and the changes after it, taken under one lock so none is missed.
    pub fn subscribe(&self) -> (Arc<str>, broadcast::Receiver<Arc<str>>) {
        let model = self.model();
        (encode(&model.snapshot()), self.tx.subscribe())
    }

    /// The YAML view of an object, when it is known.
    pub fn yaml(&self, key: &Key) -> Option<String> {
        self.model()
            .get(key)
            .map(|obj| crate::render::yaml_html(key, obj))
    }

    /// Shows a notice on every page, now and later.
    pub fn notice(&self, text: String) {
        let mut model = self.model();
        let op = model.notice(text);
        let _ = self.tx.send(encode(&[op]));
    }

    /// Applies updates as they come; what arrived together goes out as one message.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Update>) {
        while let Some(first) = rx.recv().await {
            let mut model = self.model();
            let mut ops = model.apply(first);
            while ops.len() < BATCH {
                match rx.try_recv() {
                    Ok(update) => ops.extend(model.apply(update)),
                    Err(_) => break,
                }
            }
            if !ops.is_empty() {
                // No receiver (no page open) is fine.
                let _ = self.tx.send(encode(&ops));
            }
        }
    }
}

fn api_resource(kind: Kind) -> ApiResource {
    let (group, version, plural) = kind.resource();
    ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.name().to_owned(),
        plural: plural.to_owned(),
    }
}

/// Why a kind is not watched (yet).
enum Unwatched {
    /// Not served (a CRD not installed yet) or the API unreachable: asked again later.
    Later(String),
    /// RBAC refuses listing it even in the viewer's namespace: said once on the page.
    Denied(String),
}

/// Where a kind can be watched with the viewer's credentials: across namespaces when RBAC
/// allows it, else in the kubeconfig's namespace (as kubectl falls back to it), else not at
/// all, with the reason.
async fn scope(
    client: &kube::Client,
    kind: Kind,
    namespace: &str,
) -> Result<(Api<DynamicObject>, bool), Unwatched> {
    let ar = api_resource(kind);
    let probe = ListParams::default().limit(1);
    let later = |e: kube::Error| Unwatched::Later(format!("{}s: cannot list: {e}", kind.name()));
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    match all.list_metadata(&probe).await {
        Ok(_) => return Ok((all, true)),
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        Err(e) => return Err(later(e)),
    }
    let ns: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    match ns.list_metadata(&probe).await {
        Ok(_) => Ok((ns, false)),
        Err(kube::Error::Api(s)) if s.code == 403 => Err(Unwatched::Denied(format!(
            "{}s: you may not list them in namespace {namespace}",
            kind.name()
        ))),
        Err(e) => Err(later(e)),
    }
}

/// Feeds `kind`'s watch events to the model until the model is gone. The watcher resumes
/// from the last resourceVersion it saw and re-lists only when that expired (410); errors
/// back off and retry.
async fn watch(kind: Kind, api: Api<DynamicObject>, tx: mpsc::Sender<Update>) {
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                if tx.send((kind, event)).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!(kind = kind.name(), error = %e, "watch failed; retrying"),
        }
    }
}

/// Asks again, less and less often (1 s doubling to a minute), whether a kind not served
/// yet is now (the Gateway API's CRDs are installed after the server starts), then watches it.
async fn watch_when_served(
    client: kube::Client,
    kind: Kind,
    namespace: String,
    tx: mpsc::Sender<Update>,
    hub: Arc<Hub>,
) {
    let wait = std::time::Duration::from_secs(1);
    tokio::time::sleep(wait).await;
    watch_served(client, kind, namespace, tx, hub, wait).await
}

/// [`watch_when_served`] without the first wait: asks now, then after `wait`, doubling.
async fn watch_served(
    client: kube::Client,
    kind: Kind,
    namespace: String,
    tx: mpsc::Sender<Update>,
    hub: Arc<Hub>,
    mut wait: std::time::Duration,
) {
    loop {
        match scope(&client, kind, &namespace).await {
            Ok((api, all)) => {
                if !all {
                    hub.notice(format!(
                        "Only namespace {namespace} is shown for {}: you may not list them \
                         across namespaces",
                        kind.name()
                    ));
                }
                return watch(kind, api, tx).await;
            }
            Err(Unwatched::Denied(why)) => return hub.notice(why),
            Err(Unwatched::Later(why)) => {
                tracing::debug!(kind = kind.name(), %why, "not watched yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(60));
            }
        }
    }
}

/// Which custom kinds to stop and start watching when the CRDs are `crds`, pure: a kind
/// whose definition changed (another version, other scale paths) is one to stop and one
/// to start.
pub fn custom_changes(
    watched: &HashMap<String, &'static CustomKind>,
    crds: &HashMap<String, &'static CustomKind>,
) -> (Vec<&'static CustomKind>, Vec<(String, &'static CustomKind)>) {
    let stop = watched
        .iter()
        .filter(|(name, k)| crds.get(*name) != Some(*k))
        .map(|(_, k)| *k)
        .collect();
    let start = crds
        .iter()
        .filter(|(name, k)| watched.get(*name) != Some(*k))
        .map(|(name, k)| (name.clone(), *k))
        .collect();
    (stop, start)
}

/// Watches the CRDs and, for each that serves a kind with a scale subresource, that kind's
/// objects, as workload cards: the view follows an operator's custom resources as it
/// follows Deployments. A kind whose CRD goes away (or changes) is stopped, and its cards
/// removed. Without the right to list CRDs, a notice says custom resources are not shown.
async fn watch_custom_kinds(
    client: kube::Client,
    namespace: String,
    tx: mpsc::Sender<Update>,
    hub: Arc<Hub>,
) {
    let ar = ApiResource {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiextensions.k8s.io/v1".into(),
        kind: "CustomResourceDefinition".into(),
        plural: "customresourcedefinitions".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return hub.notice(
                "Custom resources with a scale subresource are not shown: you may not list \
                 CustomResourceDefinitions"
                    .into(),
            );
        }
        _ => {}
    }
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    // CRD name → its scale-able kind, as last seen; and what is being watched.
    let mut crds: HashMap<String, &'static CustomKind> = HashMap::new();
    let mut listing: Option<HashMap<String, &'static CustomKind>> = None;
    let mut watched: HashMap<String, (&'static CustomKind, tokio::task::AbortHandle)> =
        HashMap::new();
    while let Some(item) = stream.next().await {
        let scalable = |obj: &DynamicObject| {
            let v = serde_json::to_value(obj).ok()?;
            let name = v["metadata"]["name"].as_str()?.to_owned();
            Some((name, CustomKind::of_crd(&v).map(CustomKind::intern)))
        };
        match item {
            Ok(watcher::Event::Init) => listing = Some(HashMap::new()),
            Ok(watcher::Event::InitApply(obj)) => {
                if let (Some(list), Some((name, Some(kind)))) = (&mut listing, scalable(&obj)) {
                    list.insert(name, kind);
                }
            }
            Ok(watcher::Event::InitDone) => crds = listing.take().unwrap_or_default(),
            Ok(watcher::Event::Apply(obj)) => match scalable(&obj) {
                Some((name, Some(kind))) => {
                    crds.insert(name, kind);
                }
                Some((name, None)) => {
                    crds.remove(&name);
                }
                None => {}
            },
            Ok(watcher::Event::Delete(obj)) => {
                if let Some((name, _)) = scalable(&obj) {
                    crds.remove(&name);
                }
            }
            Err(e) => tracing::warn!(error = %e, "CRD watch failed; retrying"),
        }
        if listing.is_some() {
            continue;
        }
        let current: HashMap<String, &'static CustomKind> =
            watched.iter().map(|(n, (k, _))| (n.clone(), *k)).collect();
        let (stop, start) = custom_changes(&current, &crds);
        for kind in stop {
            watched.retain(|_, (k, handle)| {
                let keep = *k != kind;
                if !keep {
                    handle.abort();
                }
                keep
            });
            CustomKind::serve(kind, false);
            // An empty re-list removes the kind's cards.
            for event in [watcher::Event::Init, watcher::Event::InitDone] {
                if tx.send((Kind::Custom(kind), event)).await.is_err() {
                    return;
                }
            }
        }
        for (name, kind) in start {
            CustomKind::serve(kind, true);
            let task = tokio::spawn(watch_served(
                client.clone(),
                Kind::Custom(kind),
                namespace.clone(),
                tx.clone(),
                hub.clone(),
                std::time::Duration::from_secs(1),
            ));
            watched.insert(name, (kind, task.abort_handle()));
        }
    }
}

/// Starts one watch per kind the viewer may list, feeding `hub`.
pub async fn start(client: kube::Client, namespace: String, hub: Arc<Hub>) {
    let (tx, rx) = mpsc::channel::<Update>(4096);
    tokio::spawn(hub.clone().run(rx));
    let mut narrowed = Vec::new();
    for kind in Kind::ALL {
        match scope(&client, kind, &namespace).await {
            Ok((api, all)) => {
                if !all {
                    narrowed.push(kind.name());
                }
                tokio::spawn(watch(kind, api, tx.clone()));
            }
            Err(Unwatched::Denied(why)) => hub.notice(why),
            Err(Unwatched::Later(_)) => {
                tokio::spawn(watch_when_served(
                    client.clone(),
                    kind,
                    namespace.clone(),
                    tx.clone(),
                    hub.clone(),
                ));
            }
        }
    }
    tokio::spawn(watch_custom_kinds(
        client.clone(),
        namespace.clone(),
        tx.clone(),
        hub.clone(),
    ));
    if !narrowed.is_empty() {
        hub.notice(format!(
            "Only namespace {namespace} is shown for {}: you may not list them across namespaces",
            narrowed.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    fn rs(replicas: i64) -> DynamicObject {
        obj(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-1", "namespace": "d", "generation": 1},
            "spec": {"replicas": replicas}, "status": {}}))
    }

    fn pod(name: &str) -> DynamicObject {
        obj(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "d",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                    "uid": "u", "controller": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                    "time": "2026-01-01T00:00:00Z"}]},
            "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": {"phase": "Pending"}}))
    }

    fn lines(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .filter_map(|o| match o {
                Op::Line { html, .. } => Some(html.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn first_list_is_quiet_and_later_creations_carry_the_gap() {
        let mut m = Model::default();
        m.apply((Kind::ReplicaSet, watcher::Event::Init));
        m.apply((Kind::ReplicaSet, watcher::Event::InitApply(rs(3))));
        let ops = m.apply((Kind::ReplicaSet, watcher::Event::InitDone));
        assert!(lines(&ops).is_empty());
        assert!(matches!(&ops[..], [Op::Put(f)] if f.id == "n_ReplicaSet_d_web-1"));
        m.apply((Kind::Pod, watcher::Event::Init));
        m.apply((Kind::Pod, watcher::Event::InitApply(pod("a"))));
        m.apply((Kind::Pod, watcher::Event::InitApply(pod("b"))));
        assert!(lines(&m.apply((Kind::Pod, watcher::Event::InitDone))).is_empty());
        let ops = m.apply((Kind::Pod, watcher::Event::Apply(pod("c"))));
        let text = lines(&ops).join("\n");
        assert!(
            text.contains("replicaset-controller</b> created pod c — desired 3, actual 2"),
            "{text}"
        );
        assert!(ops.iter().any(|o| matches!(o, Op::Put(f)
            if f.parent.as_deref() == Some("n_ReplicaSet_d_web-1"))));
        // The same object again changes nothing on the page.
        assert!(m
            .apply((Kind::Pod, watcher::Event::Apply(pod("c"))))
            .is_empty());
        let ops = m.apply((Kind::Pod, watcher::Event::Delete(pod("a"))));
        assert!(lines(&ops)[0].contains("pod a deleted — desired 3, actual 3"));
        assert!(matches!(ops.last(), Some(Op::Del { id }) if id == "n_Pod_d_a"));
    }

    #[test]
    fn relist_removes_what_went_away_and_snapshot_orders_parents_first() {
        let mut m = Model::default();
        for update in [
            watcher::Event::Init,
            watcher::Event::InitApply(pod("a")),
            watcher::Event::InitApply(pod("b")),
            watcher::Event::InitDone,
        ] {
            m.apply((Kind::Pod, update));
        }
        m.apply((Kind::ReplicaSet, watcher::Event::Apply(rs(1))));
        let ops = [
            watcher::Event::Init,
            watcher::Event::InitApply(pod("b")),
            watcher::Event::InitDone,
        ]
        .into_iter()
        .flat_map(|u| m.apply((Kind::Pod, u)))
        .collect::<Vec<_>>();
        assert!(ops
            .iter()
            .any(|o| matches!(o, Op::Del { id } if id == "n_Pod_d_a")));
        let snap = m.snapshot();
        let ids: Vec<&str> = snap
            .iter()
            .filter_map(|o| match o {
                Op::Put(f) => Some(f.id.as_str()),
                _ => None,
            })
            .collect();
        assert!(matches!(snap[0], Op::Reset));
        assert_eq!(ids, ["n_ReplicaSet_d_web-1", "n_Pod_d_b"]);
    }

    #[test]
    fn events_seed_the_timeline_in_time_order_then_stream() {
        let event = |name: &str, t: &str, count: i64| {
            obj(json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": "d"}, "reason": "R", "message": name,
                "source": {"component": "c"}, "involvedObject": {"kind": "Pod", "name": "p"},
                "lastTimestamp": t, "count": count}))
        };
        let mut m = Model::default();
        m.apply((Kind::Event, watcher::Event::Init));
        m.apply((
            Kind::Event,
            watcher::Event::InitApply(event("late", "2026-01-01T00:00:09Z", 1)),
        ));
        m.apply((
            Kind::Event,
            watcher::Event::InitApply(event("early", "2026-01-01T00:00:01Z", 1)),
        ));
        assert!(m.apply((Kind::Event, watcher::Event::InitDone)).is_empty());
        let texts: Vec<String> = lines(&m.snapshot());
        assert!(
            texts[0].contains("early") && texts[1].contains("late"),
            "{texts:?}"
        );
        let ops = m.apply((
            Kind::Event,
            watcher::Event::Apply(event("late", "2026-01-01T00:00:10Z", 2)),
        ));
        assert!(lines(&ops)[0].contains("(×2)"));
    }

    #[test]
    fn custom_kinds_start_and_stop_with_their_crds() {
        let kind = |version: &str| {
            CustomKind {
                group: "db.example.com".into(),
                version: version.into(),
                plural: "databases".into(),
                kind: "Database".into(),
                tag: "Database.db.example.com".into(),
                spec_replicas_path: ".spec.replicas".into(),
                status_replicas_path: ".status.replicas".into(),
            }
            .intern()
        };
        let (v1, v2) = (kind("v1"), kind("v2"));
        assert!(std::ptr::eq(v1, kind("v1")), "interned once");
        let map =
            |entries: &[(&str, &'static CustomKind)]| -> HashMap<String, &'static CustomKind> {
                entries.iter().map(|(n, k)| ((*n).to_owned(), *k)).collect()
            };
        let name = "databases.db.example.com";
        let cases = [
            ("new CRD", map(&[]), map(&[(name, v1)]), vec![], vec![v1]),
            (
                "unchanged",
                map(&[(name, v1)]),
                map(&[(name, v1)]),
                vec![],
                vec![],
            ),
            (
                "another version",
                map(&[(name, v1)]),
                map(&[(name, v2)]),
                vec![v1],
                vec![v2],
            ),
            ("CRD gone", map(&[(name, v2)]), map(&[]), vec![v2], vec![]),
        ];
        for (what, watched, crds, stop, start) in cases {
            let (got_stop, got_start) = custom_changes(&watched, &crds);
            assert_eq!(got_stop, stop, "{what}");
            assert_eq!(
                got_start.into_iter().map(|(_, k)| k).collect::<Vec<_>>(),
                start,
                "{what}"
            );
        }
    }
}
