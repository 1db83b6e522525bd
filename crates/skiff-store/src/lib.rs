//! Revisioned key-value store with watch: "a database that fires events when things change".
//!
//! Every successful write is stamped with the next global revision, which becomes the
//! object's `resourceVersion` at the API. Readers see committed state only; watchers see every
//! committed change after a revision, in revision order, first replayed from history and then
//! live. Writes are acknowledged only once they are durable on disk.
//!
//! The [`Store`] trait is what the apiserver programs against, so a second backend (etcd) can
//! follow; [`SqliteStore`] is the embedded default and [`MemoryStore`] a tiny model of the
//! same semantics, used as a fake by other crates and as an oracle in tests.

mod hub;
pub mod kvmap;
mod memory;
pub mod metrics;
#[cfg(feature = "model-test")]
pub mod model_test;
pub mod snapshot;
mod sqlite;

use bytes::Bytes;
use futures::future::BoxFuture;

pub use hub::{Hub, ValueMap, Watch};
pub use memory::MemoryStore;
pub use metrics::StoreMetrics;
pub use sqlite::{SqliteOptions, SqliteStore};

/// A global, strictly increasing write counter. Revision 0 means "before any write".
pub type Revision = i64;

/// A stored value with the revisions that describe its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created this key (stable across updates).
    pub create_revision: Revision,
    /// Revision of the latest write to this key; the compare-and-swap token.
    pub mod_revision: Revision,
}

/// What a committed write did to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Updated,
    Deleted,
}

/// One committed change, as delivered to watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub key: String,
    /// The new value; for a deletion, the last value the key held.
    pub value: Bytes,
    /// The value before this write (None for a creation). Watchers filtering by content
    /// need it to tell "stopped matching" from "never matched".
    pub prev_value: Option<Bytes>,
    /// The revision of this write.
    pub revision: Revision,
    pub create_revision: Revision,
}

/// One page of a prefix listing, taken from one consistent snapshot.
#[derive(Debug, Clone, Default)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    /// The store revision the snapshot reflects; a watch from here misses nothing.
    pub revision: Revision,
    /// True when `limit` cut the listing short; continue after the last item's key.
    pub more: bool,
}

/// Everything that can go wrong in a store operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `create` found the key already present.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// `update` or `delete` found no such key.
    #[error("key {0} not found")]
    NotFound(String),
    /// A compare-and-swap precondition failed: someone else wrote first.
    #[error("key {key} was modified at revision {actual}, expected {expected}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    /// The requested revision is older than the history the store keeps.
    #[error("revision {requested} has been compacted (oldest kept is {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The watcher fell too far behind and was dropped so that writers never wait for it.
    #[error("watcher fell behind and was dropped; re-list and watch again")]
    WatcherTooSlow,
    /// A layer over the store could not turn a stored value back into an object (the
    /// apiserver's decryption at rest: unknown key, tampered value). The message is the
    /// client's 500, naming what failed.
    #[error("{0}")]
    Transform(String),
    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
    /// The embedded database failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A remote datastore (etcd) failed or could not be reached; the message says which
    /// and why.
    #[error("datastore: {0}")]
    Backend(String),
    /// The datastore could not be reached, or did not answer within the request's time
    /// (etcd down, or without quorum): upstream's unreachable storage. The apiserver answers
    /// it as a request timeout (504) rather than an internal error, since retrying later
    /// succeeds once the datastore is back; the message says which and why, for the log.
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
    /// A snapshot file is not one this store can restore (not SQLite, not a skiff store,
    /// damaged); the message says which.
    #[error("{0}")]
    InvalidSnapshot(String),
    /// The data directory could not be prepared.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The storage contract of the apiserver.
///
/// Reads are synchronous and cheap (they run against a committed snapshot); writes are
/// asynchronous because they complete only when durable, sharing an fsync with concurrent
/// writers (group commit).
pub trait Store: Send + Sync + 'static {
    /// The value at `key` now, or None.
    fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, in key order, strictly after `start_after` when given,
    /// at most `limit` items. All items and `revision` come from one snapshot.
    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult>;

    /// How many keys under `prefix` sort after `start_after`: what a paged list reports as
    /// `remainingItemCount`. The default walks the keys; backends answer it from an index.
    fn count_after(&self, prefix: &str, start_after: &str) -> Result<usize> {
        Ok(self.list(prefix, Some(start_after), None)?.items.len())
    }

    /// Whether a read that must be current can be answered now: upstream's consistent read
    /// (a get, or a list without `resourceVersion`) never returns state older than the
    /// datastore's. A backend serving reads from a copy of a remote datastore fails with
    /// [`Error::Unavailable`] while it has lost touch with it, rather than present stale
    /// state as current; reads at `resourceVersion=0` ("any") skip the check. A local store
    /// is always current.
    fn consistent_read(&self) -> Result<()> {
        Ok(())
    }

    /// The revision of the latest committed write (0 on an empty store).
    fn current_revision(&self) -> Revision;

    /// The oldest revision a watch may start after; older ones answer [`Error::Compacted`].
    fn compacted_revision(&self) -> Revision;

    /// Creates `key`; fails with [`Error::AlreadyExists`] if present.
    fn create(&self, key: String, value: Bytes) -> BoxFuture<'static, Result<KeyValue>>;

    /// Replaces the value of an existing `key`. With `expected`, fails with
    /// [`Error::Conflict`] unless the key's `mod_revision` equals it.
    fn update(
        &self,
        key: String,
        value: Bytes,
        expected: Option<Revision>,
    ) -> BoxFuture<'static, Result<KeyValue>>;

    /// Deletes `key`, returning its last value with `mod_revision` set to the deletion's
    /// revision. With `expected`, fails with [`Error::Conflict`] on a mismatch.
    fn delete(
        &self,
        key: String,
        expected: Option<Revision>,
    ) -> BoxFuture<'static, Result<KeyValue>>;

    /// Watches keys under `prefix` for changes with revision greater than `after`: history
    /// first, then live. Fails with [`Error::Compacted`] if `after` is older than history.
    fn watch(&self, prefix: &str, after: Revision) -> Result<Watch>;

    /// Discards history at and before `revision`.
    fn compact(&self, revision: Revision) -> BoxFuture<'static, Result<()>>;
}
