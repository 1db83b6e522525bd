//! Event storage: one interface over SQLite (the default) and Postgres, with identical semantics.
//!
//! Semantics every backend keeps, method by method:
//! - `insert` stores a whole batch or nothing; it returns only after the events are committed, so
//!   an event the HTTP layer acknowledged survives a crash or restart of the process. Ids are
//!   assigned in batch order and are strictly increasing across calls.
//! - `list` returns events newest first: by `time` descending, ties by `id` descending. With a
//!   cursor it returns only events strictly after the cursor in that order, so paging from the
//!   last event seen never skips or repeats one. Ordering by time (not id) lets one index serve
//!   time ranges, source and action filters alike, on both backends.
//! - `delete_before` removes events whose time is older than the cutoff, in bounded chunks.

pub mod postgres;
pub mod sqlite;

use chrono::{DateTime, Utc};

use crate::event::{Event, NewEvent};

/// What failed in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite returned an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Postgres returned an error or the connection broke.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No Postgres connection could be had from the pool.
    #[error("postgres pool: {0}")]
    Pool(String),
    /// The data directory could not be created.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The SQLite writer thread has stopped, so nothing more can be stored.
    #[error("the storage writer has stopped")]
    WriterGone,
    /// A blocking storage task panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Task(String),
}

/// Storage result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Filters and paging for `list`; all conditions are ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Query {
    /// Only events from this source.
    pub source: Option<String>,
    /// Only events with this action.
    pub action: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events strictly before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only events that sort after this one (the paging cursor).
    pub cursor: Option<Cursor>,
    /// At most this many events.
    pub limit: usize,
}

/// Position in the newest-first order: the `time` and `id` of the last event of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// Time of the last event seen.
    pub time: DateTime<Utc>,
    /// Id of the last event seen; breaks ties between events stored in the same instant.
    pub id: i64,
}

impl Cursor {
    /// The cursor after this event.
    pub fn after(e: &Event) -> Self {
        Self {
            time: e.time,
            id: e.id,
        }
    }

    /// Opaque text form used in next links.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.time.timestamp_micros(), self.id)
    }

    /// Parses what `encode` produced; None for anything else.
    pub fn decode(s: &str) -> Option<Self> {
        let (t, id) = s.split_once('.')?;
        let time = DateTime::from_timestamp_micros(t.parse().ok()?)?;
        let id = id.parse().ok().filter(|n: &i64| *n > 0)?;
        Some(Self { time, id })
    }
}

/// The storage backend chosen at start; an enum rather than a trait object keeps async simple.
#[derive(Clone)]
pub enum Store {
    /// A file under the data directory.
    Sqlite(sqlite::SqliteStore),
    /// A Postgres database given by connection string.
    Postgres(postgres::PgStore),
}

impl Store {
    /// Stores the events atomically and returns them with ids, in the same order.
    pub async fn insert(&self, events: Vec<NewEvent>) -> Result<Vec<Event>> {
        match self {
            Self::Sqlite(s) => s.insert(events).await,
            Self::Postgres(s) => s.insert(events).await,
        }
    }

    /// Events matching the query, newest first.
    pub async fn list(&self, q: &Query) -> Result<Vec<Event>> {
        match self {
            Self::Sqlite(s) => s.list(q.clone()).await,
            Self::Postgres(s) => s.list(q).await,
        }
    }

    /// One event by id.
    pub async fn get(&self, id: i64) -> Result<Option<Event>> {
        match self {
            Self::Sqlite(s) => s.get(id).await,
            Self::Postgres(s) => s.get(id).await,
        }
    }

    /// Deletes events older than the cutoff and says how many went.
    pub async fn delete_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        match self {
            Self::Sqlite(s) => s.delete_before(cutoff).await,
            Self::Postgres(s) => s.delete_before(cutoff).await,
        }
    }

    /// Cheap round trip used by `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        match self {
            Self::Sqlite(s) => s.ping().await,
            Self::Postgres(s) => s.ping().await,
        }
    }

    /// Which backend this is, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Flushes and stops background work; waits for the SQLite writer to commit what it holds.
    pub async fn close(self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}
