//! Fan-out of committed events to watchers, shared by every backend.
//!
//! Writers publish whole committed batches under the hub lock, so a watcher that registers
//! under the same lock knows exactly which revision its live stream starts after: history up
//! to that revision is replayed from the backend, everything later arrives on its channel.
//! Channels are bounded and a full one gets its watcher dropped: writers never wait.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{Error, Event, Result, Revision};

/// Events a watcher may have buffered before it counts as too slow.
const WATCH_BUFFER: usize = 8192;

/// The watcher registry of a backend. Public so that a backend outside this crate (etcd's
/// watch cache) hands out the same [`Watch`] streams with the same ordering guarantees.
pub struct Hub {
    state: Mutex<HubState>,
}

struct HubState {
    /// Revision of the latest published (committed) write.
    revision: Revision,
    next_id: u64,
    watchers: Vec<Slot>,
    closed: bool,
}

struct Slot {
    id: u64,
    prefix: String,
    tx: mpsc::Sender<Event>,
    overflowed: Arc<AtomicBool>,
}

impl Hub {
    pub fn new(revision: Revision) -> Arc<Hub> {
        Arc::new(Hub {
            state: Mutex::new(HubState {
                revision,
                next_id: 0,
                watchers: Vec::new(),
                closed: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock leaves the state consistent (every mutation is a
        // single push/retain), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn revision(&self) -> Revision {
        self.lock().revision
    }

    /// Registers a watcher for `prefix`. Returns it with the revision its live stream starts
    /// after; the caller fills the backlog with history up to that revision.
    pub fn subscribe(self: &Arc<Self>, prefix: &str) -> Result<(Watch, Revision)> {
        let mut state = self.lock();
        if state.closed {
            return Err(Error::Closed);
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let overflowed = Arc::new(AtomicBool::new(false));
        let id = state.next_id;
        state.next_id += 1;
        state.watchers.push(Slot {
            id,
            prefix: prefix.to_owned(),
            tx,
            overflowed: overflowed.clone(),
        });
        let watch = Watch {
            hub: self.clone(),
            id,
            backlog: VecDeque::new(),
            rx,
            overflowed,
            last_revision: state.revision,
            map: None,
        };
        Ok((watch, state.revision))
    }

    /// Delivers a committed batch (in revision order) to every interested watcher.
    pub fn publish(&self, events: &[Event]) {
        let mut state = self.lock();
        for event in events {
            state.watchers.retain(|slot| {
                if !event.key.starts_with(&slot.prefix) {
                    return !slot.tx.is_closed();
                }
                match slot.tx.try_send(event.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::warn!(prefix = %slot.prefix, "dropping slow watcher");
                        slot.overflowed.store(true, Ordering::Release);
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
            state.revision = state.revision.max(event.revision);
        }
    }

    /// Ends every watch stream but stays open, with later watchers starting after
    /// `revision`: a backend that lost its event stream and re-listed (etcd's watch cache
    /// after a compaction) cannot tell its watchers what they missed, so their clients
    /// re-list, as upstream's cacher makes them.
    pub fn reset(&self, revision: Revision) {
        let mut state = self.lock();
        state.watchers.clear();
        state.revision = revision;
    }

    /// Ends every watch stream; used when the store shuts down.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.watchers.clear();
    }

    fn unsubscribe(&self, id: u64) {
        self.lock().watchers.retain(|s| s.id != id);
    }
}

/// A stream of committed events under one prefix, in revision order.
pub struct Watch {
    hub: Arc<Hub>,
    id: u64,
    backlog: VecDeque<Event>,
    rx: mpsc::Receiver<Event>,
    overflowed: Arc<AtomicBool>,
    last_revision: Revision,
    map: Option<ValueMap>,
}

/// Rewrites every value a watcher delivers (key, stored value → value): how a layer over the
/// store, such as the apiserver's decryption of Secrets at rest, reaches watch events too.
pub type ValueMap = Arc<dyn Fn(&str, Bytes) -> Result<Bytes> + Send + Sync>;

impl Watch {
    /// The history a new watcher replays before its live stream: events after the revision it
    /// asked for, up to the one [`Hub::subscribe`] returned, in order.
    pub fn set_backlog(&mut self, backlog: Vec<Event>) {
        self.backlog = backlog.into();
    }

    /// This watch with `map` applied to each event's value and previous value. An error from
    /// `map` is delivered once and ends the stream, as upstream's watcher ends on a value it
    /// cannot transform.
    pub fn map_values(mut self, map: ValueMap) -> Watch {
        self.map = Some(match self.map.take() {
            None => map,
            Some(inner) => Arc::new(move |key: &str, value: Bytes| map(key, inner(key, value)?)),
        });
        self
    }

    /// The next event; `None` once the store closes. After [`Error::WatcherTooSlow`] the
    /// stream is over and the client must re-list.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        let event = match self.backlog.pop_front() {
            Some(e) => e,
            None => match self.rx.recv().await {
                Some(e) => e,
                None if self.overflowed.load(Ordering::Acquire) => {
                    return Some(Err(Error::WatcherTooSlow))
                }
                None => return None,
            },
        };
        self.last_revision = event.revision;
        match &self.map {
            None => Some(Ok(event)),
            Some(map) => Some(map_event(map, event).inspect_err(|_| {
                // Nothing after a failed event is delivered: the stream is over.
                self.backlog.clear();
                self.rx.close();
                while self.rx.try_recv().is_ok() {}
            })),
        }
    }

    /// A revision this watcher has provably seen everything up to, for bookmarks: the
    /// store's revision when nothing is pending, else the last delivered event's.
    pub fn progress(&self) -> Revision {
        let state = self.hub.lock();
        // Publishing happens entirely under this lock, so an empty channel here means every
        // event up to `state.revision` has been handed to this watcher already.
        if self.backlog.is_empty() && self.rx.is_empty() {
            state.revision.max(self.last_revision)
        } else {
            self.last_revision
        }
    }
}

fn map_event(map: &ValueMap, mut event: Event) -> Result<Event> {
    event.value = map(&event.key, event.value)?;
    if let Some(prev) = event.prev_value.take() {
        event.prev_value = Some(map(&event.key, prev)?);
    }
    Ok(event)
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.id);
    }
}
