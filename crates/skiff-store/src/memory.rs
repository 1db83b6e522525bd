//! An in-memory model of the store's semantics: the fake for other crates' tests and the
//! oracle the SQLite backend is checked against. Nothing here is durable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::hub::{Hub, Watch};
use crate::kvmap;
use crate::{Error, Event, EventKind, KeyValue, ListResult, Result, Revision, Store};

/// A [`Store`] kept in a `BTreeMap`, with its whole history in a `Vec`.
pub struct MemoryStore {
    state: Mutex<State>,
    hub: Arc<Hub>,
}

#[derive(Default)]
struct State {
    kv: BTreeMap<String, KeyValue>,
    history: Vec<Event>,
    revision: Revision,
    compacted: Revision,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            state: Mutex::default(),
            hub: Hub::new(0),
        }
    }
}

impl MemoryStore {
    pub fn new() -> Arc<MemoryStore> {
        Arc::new(MemoryStore::default())
    }

    /// An empty model whose history begins at `revision`, as a backend's does when its
    /// revisions do not start at 0 (a fresh etcd is at revision 1): the next write is
    /// `revision + 1` and watches from before it are compacted.
    pub fn starting_at(revision: Revision) -> Arc<MemoryStore> {
        Arc::new(MemoryStore {
            state: Mutex::new(State {
                revision,
                compacted: revision,
                ..State::default()
            }),
            hub: Hub::new(revision),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one write under the lock and publishes its event, like a batch of one.
    fn write(
        &self,
        key: String,
        expected: Option<Revision>,
        must_exist: bool,
        value: Option<Bytes>,
    ) -> Result<KeyValue> {
        let mut state = self.lock();
        let existing = state.kv.get(&key).cloned();
        match (&existing, must_exist) {
            (Some(_), false) => return Err(Error::AlreadyExists(key)),
            (None, true) => return Err(Error::NotFound(key)),
            _ => {}
        }
        if let (Some(expected), Some(cur)) = (expected, &existing) {
            if cur.mod_revision != expected {
                return Err(Error::Conflict {
                    key,
                    expected,
                    actual: cur.mod_revision,
                });
            }
        }
        state.revision += 1;
        let revision = state.revision;
        let create_revision = existing.as_ref().map_or(revision, |e| e.create_revision);
        let (kind, new_value) = match (&value, &existing) {
            (Some(v), None) => (EventKind::Created, v.clone()),
            (Some(v), Some(_)) => (EventKind::Updated, v.clone()),
            (None, Some(e)) => (EventKind::Deleted, e.value.clone()),
            (None, None) => unreachable!("delete of a missing key was refused above"),
        };
        let kv = KeyValue {
            key: key.clone(),
            value: new_value.clone(),
            create_revision,
            mod_revision: revision,
        };
        if value.is_some() {
            state.kv.insert(key.clone(), kv.clone());
        } else {
            state.kv.remove(&key);
        }
        let event = Event {
            kind,
            key,
            value: new_value,
            prev_value: existing.map(|e| e.value),
            revision,
            create_revision,
        };
        state.history.push(event.clone());
        // Publishing under the state lock keeps hub order equal to revision order.
        self.hub.publish(&[event]);
        Ok(kv)
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.lock().kv.get(key).cloned())
    }

    fn list(
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

    fn count_after(&self, prefix: &str, start_after: &str) -> Result<usize> {
        Ok(kvmap::count_after(&self.lock().kv, prefix, start_after))
    }

    fn current_revision(&self) -> Revision {
        self.lock().revision
    }

    fn compacted_revision(&self) -> Revision {
        self.lock().compacted
    }

    fn create(&self, key: String, value: Bytes) -> BoxFuture<'static, Result<KeyValue>> {
        let r = self.write(key, None, false, Some(value));
        Box::pin(async move { r })
    }

    fn update(
        &self,
        key: String,
        value: Bytes,
        expected: Option<Revision>,
    ) -> BoxFuture<'static, Result<KeyValue>> {
        let r = self.write(key, expected, true, Some(value));
        Box::pin(async move { r })
    }

    fn delete(
        &self,
        key: String,
        expected: Option<Revision>,
    ) -> BoxFuture<'static, Result<KeyValue>> {
        let r = self.write(key, expected, true, None);
        Box::pin(async move { r })
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        let state = self.lock();
        kvmap::watch(&self.hub, &state.history, state.compacted, prefix, after)
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'static, Result<()>> {
        let mut state = self.lock();
        let target = revision.min(state.revision);
        state.history.retain(|e| e.revision > target);
        state.compacted = state.compacted.max(target);
        Box::pin(async { Ok(()) })
    }
}
