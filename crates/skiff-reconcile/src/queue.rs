//! One controller's work queue, with client-go's workqueue semantics on tokio's clock:
//!
//! - a key added while it is already queued is not queued twice (`dirty`);
//! - a key being reconciled is not handed to a second worker: added meanwhile, it is queued
//!   again when the first reconcile is [`Queue::done`] (`processing`);
//! - delayed adds wait in `waiting` (only the earliest deadline per key is kept) and are
//!   promoted by whichever worker waits for work;
//! - failures per key set the next delay ([`Backoff`]) until [`Queue::forget`].
//!
//! Keys are handed out first in, first out. One mutex guards all of it; nothing awaits
//! while holding it.

use crate::backoff::Backoff;
use crate::metrics::ControllerMetrics;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A controller's queue of keys `Q`.
pub struct Queue<Q> {
    state: Mutex<State<Q>>,
    /// Wakes a worker waiting in [`Queue::get`]: a key was queued, an earlier deadline was
    /// set, or the queue shuts down.
    wake: Notify,
    backoff: Backoff,
    metrics: Option<ControllerMetrics>,
}

struct State<Q> {
    /// Keys ready to be handed out, in order.
    ready: VecDeque<Q>,
    /// Keys queued and not yet handed out (including those queued again while processing),
    /// with when they were added.
    dirty: HashMap<Q, Instant>,
    /// Keys being reconciled, with when they were handed out.
    processing: HashMap<Q, Instant>,
    /// Delayed adds by deadline (with a sequence number to keep equal deadlines apart).
    waiting: BTreeMap<(Instant, u64), Q>,
    /// The deadline of each waiting key.
    deadlines: HashMap<Q, (Instant, u64)>,
    /// Consecutive failures per key.
    failures: HashMap<Q, u32>,
    seq: u64,
    shut_down: bool,
}

impl<Q: Clone + Eq + Hash> Queue<Q> {
    /// An empty queue retrying failed keys with `backoff`; `metrics` when it reports.
    pub fn new(backoff: Backoff, metrics: Option<ControllerMetrics>) -> Queue<Q> {
        Queue {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                dirty: HashMap::new(),
                processing: HashMap::new(),
                waiting: BTreeMap::new(),
                deadlines: HashMap::new(),
                failures: HashMap::new(),
                seq: 0,
                shut_down: false,
            }),
            wake: Notify::new(),
            backoff,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<Q>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` now, unless it is already queued.
    pub fn add(&self, key: Q) {
        let mut s = self.lock();
        if self.insert(&mut s, key, Instant::now()) {
            drop(s);
            self.wake.notify_one();
        }
    }

    /// Queues every key of `keys` (a resync, a relist).
    pub fn add_all(&self, keys: impl IntoIterator<Item = Q>) {
        let now = Instant::now();
        let mut s = self.lock();
        let mut any = false;
        for key in keys {
            any |= self.insert(&mut s, key, now);
        }
        drop(s);
        if any {
            self.wake.notify_one();
        }
    }

    /// Marks `key` dirty; true when it became ready to hand out.
    fn insert(&self, s: &mut State<Q>, key: Q, now: Instant) -> bool {
        if s.shut_down || s.dirty.contains_key(&key) {
            return false;
        }
        if let Some(m) = &self.metrics {
            m.adds.inc();
        }
        s.dirty.insert(key.clone(), now);
        self.report_depth(s);
        if s.processing.contains_key(&key) {
            // Handed out again by `done`, so two workers never hold the key.
            return false;
        }
        s.ready.push_back(key);
        true
    }

    fn report_depth(&self, s: &State<Q>) {
        if let Some(m) = &self.metrics {
            m.depth.set(s.dirty.len() as i64);
        }
    }

    /// Queues `key` once `delay` has passed (at once for a zero delay). A key already
    /// waiting keeps the earlier of its two deadlines.
    pub fn add_after(&self, key: Q, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        let mut s = self.lock();
        if s.shut_down {
            return;
        }
        if let Some(&(old, seq)) = s.deadlines.get(&key) {
            if old <= at {
                return;
            }
            s.waiting.remove(&(old, seq));
        }
        s.seq += 1;
        let slot = (at, s.seq);
        s.waiting.insert(slot, key.clone());
        s.deadlines.insert(key, slot);
        let earliest = s.waiting.keys().next() == Some(&slot);
        drop(s);
        if earliest {
            // A worker may be sleeping until a later deadline.
            self.wake.notify_one();
        }
    }

    /// Queues `key` after its backoff delay and counts the failure; returns the delay.
    pub fn add_rate_limited(&self, key: Q) -> Duration {
        let delay = {
            let mut s = self.lock();
            let failures = s.failures.entry(key.clone()).or_insert(0);
            let delay = self.backoff.delay(*failures);
            *failures = failures.saturating_add(1);
            delay
        };
        if let Some(m) = &self.metrics {
            m.retries.inc();
        }
        self.add_after(key, delay);
        delay
    }

    /// Consecutive failures recorded for `key`.
    pub fn failures(&self, key: &Q) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Forgets `key`'s failures: its next failure starts again at the base delay.
    pub fn forget(&self, key: &Q) {
        self.lock().failures.remove(key);
    }

    /// Moves waiting keys whose deadline passed to the ready queue.
    fn promote(&self, s: &mut State<Q>, now: Instant) {
        while let Some(entry) = s.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            s.deadlines.remove(&key);
            self.insert(s, key, now);
        }
    }

    /// Waits for the next key to reconcile and marks it processing; `None` once the queue
    /// is shut down. Every key returned must be given back with [`Queue::done`].
    pub async fn get(&self) -> Option<Q> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            // Registered before looking, so a wake between the look and the wait is kept.
            notified.as_mut().enable();
            let next = {
                let mut s = self.lock();
                if s.shut_down {
                    return None;
                }
                let now = Instant::now();
                self.promote(&mut s, now);
                if let Some(key) = s.ready.pop_front() {
                    if let Some(added) = s.dirty.remove(&key) {
                        if let Some(m) = &self.metrics {
                            m.queue_duration
                                .observe(now.duration_since(added).as_secs_f64());
                        }
                    }
                    s.processing.insert(key.clone(), now);
                    self.report_depth(&s);
                    let more = !s.ready.is_empty() || !s.waiting.is_empty();
                    drop(s);
                    if more {
                        // Pass the baton: another worker takes the next key or the timer.
                        self.wake.notify_one();
                    }
                    return Some(key);
                }
                s.waiting.keys().next().map(|(at, _)| *at)
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Gives `key` back after its reconcile; queued again if it was added meanwhile.
    pub fn done(&self, key: &Q) {
        let mut s = self.lock();
        if let Some(started) = s.processing.remove(key) {
            if let Some(m) = &self.metrics {
                m.work_duration.observe(started.elapsed().as_secs_f64());
            }
        }
        if s.dirty.contains_key(key) && !s.shut_down {
            s.ready.push_back(key.clone());
            drop(s);
            self.wake.notify_one();
        }
    }

    /// Keys queued (ready or added again while processing), as upstream's depth.
    pub fn len(&self) -> usize {
        self.lock().dirty.len()
    }

    /// Whether no key is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys waiting for a deadline (backoff or requeue-after).
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Stops handing out keys: every [`Queue::get`] returns `None`.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.wake.notify_waiters();
        // A worker between `enable` and its wait holds a registration `notify_waiters`
        // reached; one that registers later sees `shut_down` when it looks.
    }

    /// Updates the gauges of work in progress (upstream samples them every 500 ms).
    pub fn report_unfinished(&self) {
        let Some(m) = &self.metrics else { return };
        let now = Instant::now();
        let s = self.lock();
        let ages = s.processing.values().map(|t| now.duration_since(*t));
        let (total, longest) = ages.fold((0.0, 0.0f64), |(sum, max), age| {
            let secs = age.as_secs_f64();
            (sum + secs, max.max(secs))
        });
        m.unfinished.set(total);
        m.longest.set(longest);
    }
}

#[cfg(test)]
mod tests;
