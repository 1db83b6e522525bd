//! The builder that wires a controller: caches of the kinds it reads, the watches that
//! turn their changes into keys, and the [`Runner`] that reconciles those keys.
//!
//! Each kind is watched once per controller (however many triggers and readers it has),
//! through kube-runtime's watcher and reflector. Nothing is reconciled before every cache
//! holds a full list (an empty pod cache would otherwise empty every Service's Endpoints),
//! and once they do, every key derivable from the caches is queued: a Service deleted while
//! skiff was down is reconciled because its leftover Endpoints map to its key.

use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::runner::Runner;
use crate::{Config, ObjectKey, Outcome};
use futures::future::BoxFuture;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, reflector, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use std::any::{Any, TypeId};
use std::fmt::{Debug, Display};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// What the harness can watch and cache: any typed Kubernetes object.
pub trait Object:
    Resource<DynamicType = ()> + Clone + Debug + serde::de::DeserializeOwned + Send + Sync + 'static
{
}

impl<T> Object for T where
    T: Resource<DynamicType = ()>
        + Clone
        + Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// The start of every controller: its name (span field and metrics label), its client, its
/// [`Config`] and where its metrics go.
pub struct Harness {
    name: String,
    client: kube::Client,
    config: Config,
    metrics: Metrics,
}

impl Harness {
    /// A controller named `name` (`replicaset-controller`, as upstream's) on `client`, with
    /// skiff's default [`Config`] and metrics in a registry of its own until
    /// [`Harness::metrics`] gives the shared one.
    pub fn new(name: &str, client: kube::Client) -> Harness {
        Harness {
            name: name.to_string(),
            client,
            config: Config::default(),
            metrics: Metrics::new(),
        }
    }

    /// Replaces the queue and worker settings.
    pub fn config(mut self, config: Config) -> Harness {
        self.config = config;
        self
    }

    /// Reports into `metrics` (the process-wide registry).
    pub fn metrics(mut self, metrics: &Metrics) -> Harness {
        self.metrics = metrics.clone();
        self
    }

    /// A controller of `K`: every `K` change queues that object's key.
    pub fn watch<K: Object>(self) -> Controller<K> {
        self.watch_with::<K>(watcher::Config::default())
    }

    /// A controller of the `K`s `config` selects.
    pub fn watch_with<K: Object>(self, config: watcher::Config) -> Controller<K> {
        let mut c = Controller::empty(self);
        c.informer::<K>(Some(config))
            .mappers
            .push(Arc::new(|o: &K| {
                ObjectKey::of(o.meta()).into_iter().collect()
            }));
        c
    }

    /// A controller whose keys are not objects of one kind: they come from
    /// [`Controller::key`] and [`Controller::watches`] mappers, and reconcile reads what it
    /// needs from caches ([`Controller::cache`]).
    pub fn keys(self) -> Controller<()> {
        Controller::empty(self)
    }
}

/// Turns a changed object into the keys it concerns.
type Mapper<T> = Arc<dyn Fn(&T) -> Vec<ObjectKey> + Send + Sync>;

/// A cache of `T`, its watch and the mappers its changes go through.
struct Informer<T: Object> {
    store: Store<T>,
    writer: Option<reflector::store::Writer<T>>,
    config: watcher::Config,
    mappers: Vec<Mapper<T>>,
}

/// An informer whose kind is erased, so one controller can hold several.
trait AnyInformer: Send {
    fn as_any(&mut self) -> &mut dyn Any;
    fn start(self: Box<Self>, client: &kube::Client, queue: Arc<Queue<ObjectKey>>) -> Started;
}

/// A running informer: resolves `ready` once listed (false if its watch ended), and
/// `resync` maps every cached object to keys.
struct Started {
    ready: BoxFuture<'static, bool>,
    resync: Box<dyn Fn() -> Vec<ObjectKey> + Send + Sync>,
}

impl<T: Object> AnyInformer for Informer<T> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn start(self: Box<Self>, client: &kube::Client, queue: Arc<Queue<ObjectKey>>) -> Started {
        let Informer {
            store,
            writer,
            config,
            mappers,
        } = *self;
        let map = move |o: &T| -> Vec<ObjectKey> { mappers.iter().flat_map(|m| m(o)).collect() };
        let map = Arc::new(map);
        if let Some(writer) = writer {
            let stream = reflector(
                writer,
                watcher(Api::<T>::all(client.clone()), config).default_backoff(),
            );
            let map = map.clone();
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(
                            watcher::Event::Apply(o)
                            | watcher::Event::Delete(o)
                            | watcher::Event::InitApply(o),
                        ) => queue.add_all(map(&o)),
                        Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                        Err(error) => {
                            let kind = T::kind(&());
                            tracing::debug!(%error, %kind, "watch failed; retrying");
                        }
                    }
                }
            });
        }
        let (ready_store, resync_store) = (store.clone(), store);
        Started {
            ready: Box::pin(async move { ready_store.wait_until_ready().await.is_ok() }),
            resync: Box::new(move || resync_store.state().iter().flat_map(|o| map(o)).collect()),
        }
    }
}

/// Keys of a controller's own state (not a watched kind's cache), queued at start and on
/// every resync.
type KeySource = Box<dyn Fn() -> Vec<ObjectKey> + Send + Sync>;

/// A controller being built: `K` is its primary kind (`()` for [`Harness::keys`]).
pub struct Controller<K> {
    harness: Harness,
    informers: Vec<(TypeId, Box<dyn AnyInformer>)>,
    keys: Vec<ObjectKey>,
    key_sources: Vec<KeySource>,
    /// Made with the controller, so triggers other than watches can hold its queue
    /// before it runs ([`Controller::queue`]).
    runner: Runner,
    primary: PhantomData<fn() -> K>,
}

impl<K> Controller<K> {
    fn empty(harness: Harness) -> Controller<K> {
        let runner = Runner::new(&harness.name, harness.config.clone(), &harness.metrics);
        Controller {
            harness,
            informers: Vec::new(),
            keys: Vec::new(),
            key_sources: Vec::new(),
            runner,
            primary: PhantomData,
        }
    }

    /// The controller's queue, for triggers that are not kube watches: a node's container
    /// exits, its own source of pods, a timer. Keys added before [`Controller::run_keys`]
    /// wait until the caches are listed, like everything else.
    pub fn queue(&self) -> Arc<Queue<ObjectKey>> {
        self.runner.queue()
    }

    /// Keys `source` returns (a controller's own state, such as the pods a node agent
    /// holds) are queued at start and on every resync, as a watched kind's are.
    pub fn resync_from(
        mut self,
        source: impl Fn() -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Controller<K> {
        self.key_sources.push(Box::new(source));
        self
    }

    /// The informer of `T`, made on first use. A kind is watched once per controller; the
    /// first watcher config given for it is the one used.
    fn informer<T: Object>(&mut self, config: Option<watcher::Config>) -> &mut Informer<T> {
        let id = TypeId::of::<T>();
        let index = match self.informers.iter().position(|(t, _)| *t == id) {
            Some(i) => i,
            None => {
                let (store, writer) = reflector::store();
                let informer = Informer::<T> {
                    store,
                    writer: Some(writer),
                    config: config.unwrap_or_default(),
                    mappers: Vec::new(),
                };
                self.informers.push((id, Box::new(informer)));
                self.informers.len() - 1
            }
        };
        match self.informers[index]
            .1
            .as_any()
            .downcast_mut::<Informer<T>>()
        {
            Some(informer) => informer,
            // The TypeId matched, so the downcast cannot fail.
            None => unreachable!("informer stored under another kind's TypeId"),
        }
    }

    /// A cache of every `T`, for reconcile to read (no trigger).
    pub fn cache<T: Object>(&mut self) -> Store<T> {
        self.informer::<T>(None).store.clone()
    }

    /// A cache of the `T`s `config` selects (label or field selector), for reconcile to read.
    pub fn cache_with<T: Object>(&mut self, config: watcher::Config) -> Store<T> {
        self.informer::<T>(Some(config)).store.clone()
    }

    /// Queues `mapper(object)` whenever a `T` is added, changed or deleted (a deleted
    /// object is passed as last seen), and for every cached `T` at start and resync.
    pub fn watches<T, I>(self, mapper: impl Fn(&T) -> I + Send + Sync + 'static) -> Controller<K>
    where
        T: Object,
        I: IntoIterator<Item = ObjectKey>,
    {
        self.watches_with(watcher::Config::default(), mapper)
    }

    /// [`Controller::watches`] for the `T`s `config` selects.
    pub fn watches_with<T, I>(
        mut self,
        config: watcher::Config,
        mapper: impl Fn(&T) -> I + Send + Sync + 'static,
    ) -> Controller<K>
    where
        T: Object,
        I: IntoIterator<Item = ObjectKey>,
    {
        let mapper: Mapper<T> = Arc::new(move |o: &T| mapper(o).into_iter().collect());
        self.informer::<T>(Some(config)).mappers.push(mapper);
        self
    }

    /// A key queued at start and on every resync, whatever the watches say (the single
    /// key of a loop over the whole state).
    pub fn key(mut self, key: ObjectKey) -> Controller<K> {
        self.keys.push(key);
        self
    }

    /// Queues every [`Controller::key`] whenever a `T` changes.
    pub fn triggers<T: Object>(self) -> Controller<K> {
        let keys = self.keys.clone();
        self.watches::<T, _>(move |_| keys.clone())
    }

    /// Runs the controller until its watches end: `reconcile(key, ctx)` for every key,
    /// whether or not an object of that name exists, so a reconcile can see that its
    /// object is gone and clean up after it (level-triggered deletion).
    pub async fn run_keys<F, Fut, E, C>(self, reconcile: F, ctx: Arc<C>)
    where
        F: Fn(ObjectKey, Arc<C>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Outcome, E>> + Send + 'static,
        E: Display + Send + 'static,
        C: Send + Sync + 'static,
    {
        let Controller {
            harness,
            informers,
            keys,
            key_sources,
            runner,
            ..
        } = self;
        let queue = runner.queue();
        let started: Vec<Started> = informers
            .into_iter()
            .map(|(_, informer)| informer.start(&harness.client, queue.clone()))
            .collect();
        let mut resyncs = Vec::new();
        for s in started {
            if !s.ready.await {
                return;
            }
            resyncs.push(s.resync);
        }
        let all_keys = Arc::new(move || {
            let mut all = keys.clone();
            for resync in &resyncs {
                all.extend(resync());
            }
            for source in &key_sources {
                all.extend(source());
            }
            all
        });
        queue.add_all(all_keys());
        tracing::debug!(controller = %harness.name, queued = queue.len(), "caches synced; starting workers");
        let resync = harness.config.resync.map(|every| {
            let (queue, all_keys) = (queue.clone(), all_keys.clone());
            tokio::spawn(resync_every(every, move || queue.add_all(all_keys())))
        });
        runner.run(move |key| reconcile(key, ctx.clone())).await;
        if let Some(task) = resync {
            task.abort();
        }
    }
}

impl<K: Object> Controller<K> {
    /// The cache of the primary kind.
    pub fn store(&mut self) -> Store<K> {
        self.cache::<K>()
    }

    /// Queues the controlling owner of every `T` whose controller reference names a `K`
    /// (the owner is looked up in the dependent's namespace, as kube-runtime's `owns`).
    pub fn owns<T: Object>(self) -> Controller<K> {
        let (kind, api_version) = (K::kind(&()).to_string(), K::api_version(&()).to_string());
        self.watches::<T, _>(move |o: &T| {
            let meta = o.meta();
            meta.owner_references
                .iter()
                .flatten()
                .filter(|r| r.controller == Some(true))
                .filter(|r| r.kind == kind && r.api_version == api_version)
                .map(|r| ObjectKey::new(meta.namespace.as_deref(), &r.name))
                .collect::<Vec<_>>()
        })
    }

    /// Runs the controller until its watches end: `reconcile(object, ctx)` for every queued
    /// key whose object is in the cache. Keys of absent objects are dropped; a controller
    /// that cleans up after deleted objects uses [`Controller::run_keys`].
    pub async fn run<F, Fut, E, C>(mut self, reconcile: F, ctx: Arc<C>)
    where
        F: Fn(Arc<K>, Arc<C>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Outcome, E>> + Send + 'static,
        E: Display + Send + 'static,
        C: Send + Sync + 'static,
    {
        let store = self.store();
        let reconcile = Arc::new(reconcile);
        self.run_keys(
            move |key: ObjectKey, ctx: Arc<C>| {
                let object = store.get(&key.to_ref::<K>());
                let reconcile = reconcile.clone();
                async move {
                    match object {
                        Some(object) => reconcile(object, ctx).await,
                        None => Ok(Outcome::Done),
                    }
                }
            },
            ctx,
        )
        .await
    }
}

/// Calls `resync` every `every`, first one period after start.
async fn resync_every(every: Duration, resync: impl Fn()) {
    let start = tokio::time::Instant::now() + every;
    let mut tick = tokio::time::interval_at(start, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        resync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Backoff;
    use std::sync::Mutex;

    /// A client that is never called: these controllers watch nothing.
    fn client() -> kube::Client {
        let service = tower::service_fn(|_: http::Request<kube::client::Body>| async {
            Err::<http::Response<kube::client::Body>, std::io::Error>(std::io::Error::other(
                "no API server in this test",
            ))
        });
        kube::Client::new(service, "default")
    }

    fn config(resync: Option<Duration>) -> Config {
        Config {
            workers: 4,
            resync,
            backoff: Backoff {
                jitter: 0.0,
                ..Backoff::default()
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keys_from_outside_watches_are_reconciled_and_resynced_from_their_source() {
        let seen: Arc<Mutex<Vec<(Duration, String)>>> = Arc::default();
        let start = tokio::time::Instant::now();
        let controller = Harness::new("pod-workers", client())
            .config(config(Some(Duration::from_secs(10))))
            .keys()
            .resync_from(|| vec![ObjectKey::named("held")]);
        let queue = controller.queue();
        // Queued before the controller runs, as a node's pod source does while starting.
        queue.add(ObjectKey::named("early"));
        let log = seen.clone();
        tokio::spawn(controller.run_keys(
            move |key: ObjectKey, _: Arc<()>| {
                let log = log.clone();
                async move {
                    log.lock().unwrap().push((start.elapsed(), key.name));
                    Ok::<_, std::convert::Infallible>(Outcome::Done)
                }
            },
            Arc::new(()),
        ));
        tokio::time::sleep(Duration::from_millis(1)).await;
        queue.add(ObjectKey::named("exit"));
        tokio::time::sleep(Duration::from_secs(11)).await;
        let seen = seen.lock().unwrap().clone();
        let names: Vec<&str> = seen.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["early", "held", "exit", "held"], "{seen:?}");
        assert!(
            seen[3].0 >= Duration::from_secs(10),
            "resynced at 10 s: {seen:?}"
        );
    }
}
