//! The watch cache: everything under the prefix, in memory, kept current by one etcd watch.
//!
//! It is primed by a paged list at one revision, then applies the watch's events in
//! revision order, keeps the last `history` of them for watches that start in the past, and
//! fans them out through the store's [`Hub`] to every watcher. Events are applied and
//! published under one lock, so a watcher registering under it replays exactly the history
//! its live stream does not carry (the same contract as the SQLite backend).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{Client, EventType, WatchOptions};
use skiff_store::{
    kvmap, Error, Event, EventKind, Hub, KeyValue, ListResult, Result, Revision, Watch,
};

use crate::{backend, page_options, timed_out, EtcdOptions};

/// Keys per request while listing (what upstream's reflector asks for, 500, doubled).
const PAGE: i64 = 1000;

pub(crate) struct Cache {
    state: Mutex<State>,
    hub: Arc<Hub>,
    /// The revision the cache has applied, for writers waiting to read their own write.
    applied: tokio::sync::watch::Sender<Revision>,
    prefix: String,
    history: usize,
    timeout: Duration,
    /// Whether the etcd watch is established: while it is not (etcd down, or its member
    /// without a leader), the cache may be missing writes and cannot answer a read that
    /// must be current.
    watching: AtomicBool,
}

struct State {
    kv: BTreeMap<String, KeyValue>,
    history: VecDeque<Event>,
    revision: Revision,
    /// Watches must start at or after this revision; earlier starts are compacted.
    compacted: Revision,
}

impl Cache {
    pub(crate) async fn prime(client: &Client, options: &EtcdOptions) -> Result<Arc<Cache>> {
        let (items, revision) = list_all(client, &options.prefix, options.request_timeout).await?;
        Ok(Arc::new(Cache {
            state: Mutex::new(State {
                kv: items.into_iter().map(|kv| (kv.key.clone(), kv)).collect(),
                history: VecDeque::new(),
                revision,
                compacted: revision,
            }),
            hub: Hub::new(revision),
            applied: tokio::sync::watch::Sender::new(revision),
            prefix: options.prefix.clone(),
            history: options.history,
            timeout: options.request_timeout,
            // Just listed at one revision, and the watch starts from the next at once.
            watching: AtomicBool::new(true),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation completes under the lock without panicking paths in between, so a
        // poisoned lock still guards a consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether writes to `key` reach the cache (and so whether a writer can wait for them).
    pub(crate) fn watches(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
    }

    /// Waits until the cache has applied `revision`, so that a read after an acknowledged
    /// write sees it.
    pub(crate) async fn wait_for(&self, revision: Revision, timeout: Duration) -> Result<()> {
        let mut applied = self.applied.subscribe();
        let reached = tokio::time::timeout(timeout, applied.wait_for(|r| *r >= revision))
            .await
            .map(|r| r.is_ok());
        match reached {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Closed),
            Err(_) => Err(timed_out(
                &format!("the watch cache catching up to revision {revision}"),
                timeout,
            )),
        }
    }

    /// Refuses reads that must be current while the watch is down (upstream answers them
    /// from etcd's quorum, which is then out of reach).
    pub(crate) fn consistent_read(&self) -> Result<()> {
        if self.watching.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Error::Unavailable(
                "etcd: the watch cache has lost its watch on etcd, so its state may be stale"
                    .into(),
            ))
        }
    }

    fn set_watching(&self, watching: bool) {
        if self.watching.swap(watching, Ordering::AcqRel) != watching {
            tracing::info!(watching, "etcd watch of the cache");
        }
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.lock().kv.get(key).cloned())
    }

    pub(crate) fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult> {
        let state = self.lock();
        Ok(kvmap::list(
            &state.kv,
            state.revision,
            prefix,
            start_after,
            limit,
        ))
    }

    pub(crate) fn count_after(&self, prefix: &str, start_after: &str) -> Result<usize> {
        Ok(kvmap::count_after(&self.lock().kv, prefix, start_after))
    }

    pub(crate) fn revision(&self) -> Revision {
        self.lock().revision
    }

    pub(crate) fn compacted(&self) -> Revision {
        self.lock().compacted
    }

    pub(crate) fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        let state = self.lock();
        kvmap::watch(&self.hub, &state.history, state.compacted, prefix, after)
    }

    /// Forgets history at and before `revision` (clamped to what the cache has applied):
    /// etcd no longer has it, so watches from there answer 410 as they would on etcd.
    pub(crate) fn compact(&self, revision: Revision) {
        let mut state = self.lock();
        let target = revision.min(state.revision);
        state.history.retain(|e| e.revision > target);
        state.compacted = state.compacted.max(target);
    }

    pub(crate) fn close(&self) {
        self.hub.close();
    }

    /// Applies one watch response's events (in revision order) and publishes them.
    fn apply(&self, events: &[etcd_client::Event]) {
        let mut state = self.lock();
        let mut published = Vec::with_capacity(events.len());
        for event in events {
            let Some(kv) = event.kv() else { continue };
            let Ok(key) = kv.key_str() else {
                tracing::warn!(key = ?kv.key(), "etcd key is not UTF-8; not cached");
                continue;
            };
            let revision = kv.mod_revision();
            let event = match event.event_type() {
                EventType::Put => {
                    let value = Bytes::copy_from_slice(kv.value());
                    let previous = state.kv.insert(
                        key.to_owned(),
                        KeyValue {
                            key: key.to_owned(),
                            value: value.clone(),
                            create_revision: kv.create_revision(),
                            mod_revision: revision,
                        },
                    );
                    Event {
                        kind: match previous {
                            Some(_) => EventKind::Updated,
                            None => EventKind::Created,
                        },
                        key: key.to_owned(),
                        value,
                        prev_value: previous.map(|p| p.value),
                        revision,
                        create_revision: kv.create_revision(),
                    }
                }
                EventType::Delete => {
                    // A delete of a key the cache never held changed nothing it serves.
                    let Some(last) = state.kv.remove(key) else {
                        continue;
                    };
                    Event {
                        kind: EventKind::Deleted,
                        key: key.to_owned(),
                        value: last.value.clone(),
                        prev_value: Some(last.value),
                        revision,
                        create_revision: last.create_revision,
                    }
                }
            };
            state.revision = state.revision.max(revision);
            state.history.push_back(event.clone());
            published.push(event);
        }
        while state.history.len() > self.history {
            if let Some(oldest) = state.history.pop_front() {
                state.compacted = state.compacted.max(oldest.revision);
            }
        }
        self.hub.publish(&published);
        self.applied.send_replace(state.revision);
    }

    /// Starts over from a fresh list: the watch could not resume because etcd compacted
    /// past the cache. Every watcher ends (its client re-lists, as after upstream's cacher
    /// re-lists) and history starts at `revision`.
    fn replace(&self, items: Vec<KeyValue>, revision: Revision) {
        let mut state = self.lock();
        state.kv = items.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        state.history.clear();
        state.revision = revision;
        state.compacted = revision;
        self.hub.reset(revision);
        self.applied.send_replace(revision);
    }
}

/// Everything under `prefix` at one revision, a page at a time. A page whose revision was
/// compacted meanwhile restarts the listing at the current revision.
async fn list_all(
    client: &Client,
    prefix: &str,
    timeout: Duration,
) -> Result<(Vec<KeyValue>, Revision)> {
    let mut kv = client.kv_client();
    'again: loop {
        let mut items = Vec::new();
        let mut revision = 0;
        let mut from = prefix.as_bytes().to_vec();
        loop {
            let options = page_options(prefix, revision, PAGE);
            let page = match tokio::time::timeout(timeout, kv.get(from.clone(), Some(options)))
                .await
                .map_err(|_| timed_out("listing", timeout))?
            {
                Ok(page) => page,
                Err(e) if revision != 0 && crate::compactor::is_compacted(&e) => continue 'again,
                Err(e) => return Err(backend(e)),
            };
            if revision == 0 {
                revision = page.header().map_or(0, |h| h.revision());
            }
            for kv in page.kvs() {
                let Ok(key) = kv.key_str() else {
                    tracing::warn!(key = ?kv.key(), "etcd key is not UTF-8; not cached");
                    continue;
                };
                items.push(KeyValue {
                    key: key.to_owned(),
                    value: Bytes::copy_from_slice(kv.value()),
                    create_revision: kv.create_revision(),
                    mod_revision: kv.mod_revision(),
                });
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok((items, revision)),
            }
        }
    }
}

/// Why one etcd watch ended.
enum Ended {
    /// etcd compacted past where the watch had to resume: re-list.
    Compacted,
    /// The connection or stream failed: resume from the cache's revision.
    Broken(String),
}

/// The cache's one etcd watch, resumed after failures for as long as the store lives.
pub(crate) async fn feed(client: Client, cache: Arc<Cache>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let resume = cache.revision() + 1;
        let ended = watch_from(&client, &cache, resume).await;
        cache.set_watching(false);
        match ended {
            Ended::Compacted => {
                tracing::warn!(resume, "etcd compacted past the watch cache; re-listing");
                match list_all(&client, &cache.prefix, cache.timeout).await {
                    Ok((items, revision)) => cache.replace(items, revision),
                    Err(e) => tracing::warn!(error = %e, "re-listing etcd failed"),
                }
            }
            Ended::Broken(why) => {
                tracing::warn!(resume, error = %why, "etcd watch broke; resuming");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        backoff = Duration::from_millis(100);
    }
}

async fn watch_from(client: &Client, cache: &Cache, from: Revision) -> Ended {
    let options = WatchOptions::new().with_prefix().with_start_revision(from);
    let mut stream = match client
        .watch_client()
        .watch(cache.prefix.as_str(), Some(options))
        .await
    {
        Ok(stream) => stream,
        Err(e) => return Ended::Broken(e.to_string()),
    };
    loop {
        match stream.message().await {
            Ok(Some(response)) => {
                if response.created() && !response.canceled() {
                    cache.set_watching(true);
                }
                if response.canceled() {
                    return match response.compact_revision() {
                        0 => {
                            Ended::Broken(format!("canceled by etcd: {}", response.cancel_reason()))
                        }
                        _ => Ended::Compacted,
                    };
                }
                if !response.events().is_empty() {
                    cache.apply(response.events());
                }
            }
            Ok(None) => return Ended::Broken("stream ended".into()),
            Err(e) => return Ended::Broken(e.to_string()),
        }
    }
}
