//! The collector's view of the cluster, as upstream's `graph_builder.go` monitors: every
//! resource that can be listed, watched and deleted, found through API discovery (again
//! periodically and whenever a CustomResourceDefinition or APIService changes, so custom
//! resources are covered once established), each with one metadata-only watch into a cache.

use super::plan::{is_dependent_or_finalizing, may_make_garbage, GroupKind, Obj, Scopes};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::core::discovery::verbs;
use kube::discovery::{ApiResource, Discovery, Scope};
use kube::runtime::reflector::{store::Writer, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use skiff_reconcile::{ObjectKey, Queue};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Resources never collected, as upstream's `DefaultIgnoredResources`: Events are many,
/// short-lived and never owners.
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// Changes are collected into one pass per this long: a burst of pod updates costs a few
/// passes, not one per event.
const BATCH: Duration = Duration::from_millis(100);

/// A monitor whose cache is not listed after this long no longer holds the collector back
/// (upstream's sync timeout): a resource whose list fails must not stop all collection.
const SYNC_GRACE: Duration = Duration::from_secs(60);

/// Where a resource is served, and whether it is namespaced.
#[derive(Clone, Debug)]
pub struct Served {
    pub resource: ApiResource,
    pub namespaced: bool,
}

impl Served {
    /// The API of this resource in `namespace` (ignored when cluster-scoped).
    pub fn api(&self, client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
        if self.namespaced {
            Api::namespaced_with(client.clone(), namespace, &self.resource)
        } else {
            Api::all_with(client.clone(), &self.resource)
        }
    }
}

type Meta = PartialObjectMeta<DynamicObject>;

/// One resource's watch and cache.
struct Monitor {
    served: Served,
    store: Store<Meta>,
    synced: Arc<AtomicBool>,
    started: Instant,
    task: JoinHandle<()>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The objects of one pass, or why there is none yet.
pub enum Snapshot {
    Ready {
        objects: Vec<Obj>,
        scopes: Scopes,
    },
    /// Some caches are still listing: planning now could see a foreground owner without its
    /// dependents and release it early.
    Syncing,
}

/// Every monitored resource, by kind.
pub struct Monitors {
    client: kube::Client,
    queue: Arc<Queue<ObjectKey>>,
    key: ObjectKey,
    /// Wakes the discovery loop (a CRD or APIService changed).
    rediscover: Arc<Notify>,
    /// Never held across an await.
    monitors: Mutex<HashMap<GroupKind, Monitor>>,
}

impl Monitors {
    /// Monitors that queue `key` on `queue` when something the collector cares about changes.
    pub fn new(client: kube::Client, queue: Arc<Queue<ObjectKey>>, key: ObjectKey) -> Monitors {
        Monitors {
            client,
            queue,
            key,
            rediscover: Arc::new(Notify::new()),
            monitors: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GroupKind, Monitor>> {
        self.monitors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs discovery now, then again every `every` or when woken, until the process exits.
    pub async fn discover_forever(self: Arc<Self>, every: Duration) {
        loop {
            if let Err(error) = self.discover().await {
                tracing::warn!(%error, "garbage collector discovery failed; keeping the resources known");
            }
            tokio::select! {
                _ = self.rediscover.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Starts a monitor for every deletable resource served and not monitored yet, and stops
    /// those no longer served (a deleted CRD).
    async fn discover(&self) -> Result<(), kube::Error> {
        let discovery = match Discovery::new(self.client.clone()).run_aggregated().await {
            Ok(d) => d,
            Err(_) => Discovery::new(self.client.clone()).run().await?,
        };
        let mut served: HashMap<GroupKind, Served> = HashMap::new();
        for group in discovery.groups() {
            // Every resource at its most stable version, as upstream's
            // `ServerPreferredResources`: a group's preferred version need not serve them
            // all (two CRDs of one group, one serving only v1beta1, the other v1).
            for (resource, caps) in group.resources_by_stability() {
                let deletable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                    .iter()
                    .all(|v| caps.supports_operation(v));
                let ignored = IGNORED
                    .iter()
                    .any(|(g, p)| *g == resource.group && *p == resource.plural);
                if !deletable || ignored {
                    continue;
                }
                let kind = GroupKind {
                    group: resource.group.clone(),
                    kind: resource.kind.clone(),
                };
                let namespaced = matches!(caps.scope, Scope::Namespaced);
                served.insert(
                    kind,
                    Served {
                        resource,
                        namespaced,
                    },
                );
            }
        }
        let mut monitors = self.lock();
        let before = monitors.len();
        monitors.retain(|kind, m| {
            served.get(kind).is_some_and(|s| {
                s.resource.version == m.served.resource.version
                    && s.resource.plural == m.served.resource.plural
            })
        });
        let stopped = before - monitors.len();
        let mut started = Vec::new();
        for (kind, s) in served {
            if let std::collections::hash_map::Entry::Vacant(slot) = monitors.entry(kind) {
                started.push(format!("{}.{}", s.resource.plural, s.resource.group));
                let monitor = self.start(slot.key().clone(), s);
                slot.insert(monitor);
            }
        }
        if !started.is_empty() || stopped > 0 {
            tracing::info!(?started, stopped, "garbage collector monitors changed");
        }
        Ok(())
    }

    /// Starts watching one resource (metadata only, stripped of what the collector never
    /// reads so the caches stay small).
    fn start(&self, kind: GroupKind, served: Served) -> Monitor {
        let mut writer: Writer<Meta> = Writer::new(served.resource.clone());
        let store = writer.as_reader();
        let synced = Arc::new(AtomicBool::new(false));
        // An `Api` of `PartialObjectMeta` lists and watches metadata only.
        let api: Api<Meta> = Api::all_with(self.client.clone(), &served.resource);
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|o| {
                o.metadata.managed_fields = None;
                o.metadata.annotations = None;
                o.metadata.labels = None;
            });
        let (queue, key, flag) = (self.queue.clone(), self.key.clone(), synced.clone());
        let (cache, resource) = (store.clone(), served.resource.clone());
        // Discovery follows CRDs and APIServices: they add and remove resources.
        let rediscover = ((kind.group == "apiextensions.k8s.io"
            && kind.kind == "CustomResourceDefinition")
            || (kind.group == "apiregistration.k8s.io" && kind.kind == "APIService"))
            .then(|| self.rediscover.clone());
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        tracing::debug!(%error, kind = %kind.kind, "watch failed; retrying");
                        continue;
                    }
                };
                let trigger = match &event {
                    // Only a change to a dependent's owners or a finalizing owner can make
                    // garbage (compared with the cache before it takes the change); a
                    // deletion can orphan anything.
                    watcher::Event::Apply(o) => {
                        let before = cache.get(&ObjectRef::from_obj_with(o, resource.clone()));
                        may_make_garbage(before.as_deref().map(|b| &b.metadata), &o.metadata)
                    }
                    watcher::Event::Delete(_) => true,
                    watcher::Event::InitDone => {
                        flag.store(true, Ordering::Release);
                        true
                    }
                    watcher::Event::Init | watcher::Event::InitApply(_) => false,
                };
                writer.apply_watcher_event(&event);
                if trigger {
                    queue.add_after(key.clone(), BATCH);
                }
                if let (Some(notify), watcher::Event::Apply(_) | watcher::Event::Delete(_)) =
                    (&rediscover, &event)
                {
                    notify.notify_one();
                }
            }
        });
        Monitor {
            served,
            store,
            synced,
            started: Instant::now(),
            task,
        }
    }

    /// Where the resource of `kind` is served, if it is monitored.
    pub fn served(&self, kind: &GroupKind) -> Option<Served> {
        self.lock().get(kind).map(|m| m.served.clone())
    }

    /// The objects that own or are owned, from every cache, once all are listed (or past
    /// their grace).
    pub fn snapshot(&self) -> Snapshot {
        let (stores, scopes) = {
            let monitors = self.lock();
            if monitors.is_empty() {
                return Snapshot::Syncing;
            }
            let mut stores = Vec::new();
            for (kind, m) in monitors.iter() {
                if m.synced.load(Ordering::Acquire) {
                    stores.push((kind.clone(), m.store.clone()));
                } else if m.started.elapsed() < SYNC_GRACE {
                    return Snapshot::Syncing;
                } else {
                    tracing::warn!(kind = %kind.kind, group = %kind.group, "cache not listed in time; collecting without it");
                }
            }
            let scopes: Scopes = monitors
                .iter()
                .map(|(k, m)| (k.clone(), m.served.namespaced))
                .collect();
            (stores, scopes)
        };
        let states: Vec<(GroupKind, Vec<Arc<Meta>>)> =
            stores.into_iter().map(|(k, s)| (k, s.state())).collect();
        let referenced: HashSet<&str> = states
            .iter()
            .flat_map(|(_, objects)| objects.iter())
            .flat_map(|o| o.metadata.owner_references.iter().flatten())
            .map(|r| r.uid.as_str())
            .collect();
        let mut objects = Vec::new();
        for (kind, metas) in &states {
            for o in metas {
                let m = &o.metadata;
                let named = m.uid.as_deref().is_some_and(|u| referenced.contains(u));
                if named || is_dependent_or_finalizing(m) {
                    objects.push(Obj::new(kind.clone(), m));
                }
            }
        }
        Snapshot::Ready { objects, scopes }
    }
}
