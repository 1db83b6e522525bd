//! SQLite backend: one writer thread that group-commits, and a small pool of WAL readers.
//!
//! Why a single writer: SQLite allows one writer at a time anyway, and funnelling every insert
//! through one thread lets it commit many requests in one transaction (group commit), which is
//! what makes tens of thousands of single-event POSTs per second possible. A request is answered
//! only after the transaction holding its events has committed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{Error, Query, Result};
use crate::event::{truncate_to_micros, Event, NewEvent};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "events.db";
/// Most events one transaction commits; bounds writer memory and commit latency.
const MAX_EVENTS_PER_COMMIT: usize = 20_000;
/// Rows one retention pass deletes per transaction, so inserts are never blocked for long.
const DELETE_CHUNK: usize = 5_000;
/// Concurrent readers; bounds memory (each holds a page cache) whatever the GET load.
const READERS: usize = 4;
/// Requests queued for the writer before POSTs wait; bounds memory under overload.
const WRITER_QUEUE: usize = 4_096;

/// What an acknowledged event survives; SQLITE_SYNCHRONOUS picks one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// `normal`: a crash or kill of the process (WAL, synchronous=NORMAL), not a power loss.
    Process,
    /// `full`: also a power loss or kernel crash of the host (one fsync per group commit, which
    /// group commit makes cheap: about 5% of single-event throughput); the default.
    #[default]
    Host,
}

/// Work for the writer thread.
enum Job {
    Insert(Vec<NewEvent>, oneshot::Sender<Result<Vec<Event>>>),
    DeleteChunk(DateTime<Utc>, oneshot::Sender<Result<u64>>),
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Idle read connections; lock held only to push or pop.
    readers: Mutex<Vec<Connection>>,
    read_permits: Semaphore,
}

/// Handle to the SQLite store; cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl SqliteStore {
    /// Opens (creating if needed) `events.db` under `data_dir` and starts the writer thread.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_with(data_dir, Durability::default())
    }

    /// Opens with the given durability (SQLITE_SYNCHRONOUS).
    pub fn open_with(data_dir: &Path, durability: Durability) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        let sync = match durability {
            Durability::Process => "NORMAL",
            Durability::Host => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync};"
        ))?;
        conn.execute_batch(
            "PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS events (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 source TEXT NOT NULL,
                 action TEXT NOT NULL,
                 time INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS events_time_id ON events(time, id);
             CREATE INDEX IF NOT EXISTS events_source_time_id ON events(source, time, id);
             CREATE INDEX IF NOT EXISTS events_action_time_id ON events(action, time, id);",
        )?;
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| Error::Task(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                readers: Mutex::new(Vec::new()),
                read_permits: Semaphore::new(READERS),
            }),
        })
    }

    fn sender(&self) -> Result<mpsc::Sender<Job>> {
        self.inner
            .writer
            .lock()
            .map_err(|_| Error::WriterGone)?
            .clone()
            .ok_or(Error::WriterGone)
    }

    pub(super) async fn insert(&self, events: Vec<NewEvent>) -> Result<Vec<Event>> {
        let (reply, rx) = oneshot::channel();
        self.sender()?
            .send(Job::Insert(events, reply))
            .await
            .map_err(|_| Error::WriterGone)?;
        rx.await.map_err(|_| Error::WriterGone)?
    }

    pub(super) async fn delete_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let mut total = 0;
        loop {
            let (reply, rx) = oneshot::channel();
            self.sender()?
                .send(Job::DeleteChunk(cutoff, reply))
                .await
                .map_err(|_| Error::WriterGone)?;
            let n = rx.await.map_err(|_| Error::WriterGone)??;
            total += n;
            if n < DELETE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    /// Runs `f` on a pooled read connection in the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .inner
            .read_permits
            .acquire()
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut v| v.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&inner.path)?,
            };
            let out = f(&conn);
            if let Ok(mut v) = inner.readers.lock() {
                v.push(conn);
            }
            Ok(out?)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }

    pub(super) async fn list(&self, q: Query) -> Result<Vec<Event>> {
        self.read(move |conn| {
            let mut sql = String::from("SELECT id, source, action, time FROM events WHERE 1=1");
            let mut args: Vec<SqlValue> = Vec::new();
            if let Some(s) = q.source {
                sql.push_str(" AND source = ?");
                args.push(SqlValue::Text(s));
            }
            if let Some(a) = q.action {
                sql.push_str(" AND action = ?");
                args.push(SqlValue::Text(a));
            }
            if let Some(t) = q.since {
                sql.push_str(" AND time >= ?");
                args.push(SqlValue::Integer(t.timestamp_micros()));
            }
            if let Some(t) = q.until {
                sql.push_str(" AND time < ?");
                args.push(SqlValue::Integer(t.timestamp_micros()));
            }
            if let Some(c) = q.cursor {
                sql.push_str(" AND (time, id) < (?, ?)");
                args.push(SqlValue::Integer(c.time.timestamp_micros()));
                args.push(SqlValue::Integer(c.id));
            }
            sql.push_str(" ORDER BY time DESC, id DESC LIMIT ?");
            args.push(SqlValue::Integer(q.limit as i64));
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), row_to_event)?;
            rows.collect()
        })
        .await
    }

    pub(super) async fn get(&self, id: i64) -> Result<Option<Event>> {
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT id, source, action, time FROM events WHERE id = ?")?;
            let mut rows = stmt.query_map(params![id], row_to_event)?;
            rows.next().transpose()
        })
        .await
    }

    pub(super) async fn ping(&self) -> Result<()> {
        let alive = self
            .inner
            .thread
            .lock()
            .ok()
            .and_then(|t| t.as_ref().map(|t| !t.is_finished()));
        if alive != Some(true) {
            return Err(Error::WriterGone);
        }
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    pub(super) async fn close(self) {
        let sender = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        drop(sender);
        let thread = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            // The writer drains its queue and exits once every sender is gone.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let micros: i64 = row.get(3)?;
    Ok(Event {
        id: row.get(0)?,
        source: row.get(1)?,
        action: row.get(2)?,
        time: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
    })
}

/// The writer: takes whatever is queued (up to a bound) and commits it in one transaction.
fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut inserts = Vec::new();
        let mut pending = 0;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Insert(events, reply) => {
                    pending += events.len();
                    inserts.push((events, reply));
                }
                Job::DeleteChunk(cutoff, reply) => {
                    let _ = reply.send(delete_chunk(&conn, cutoff).map_err(Error::from));
                }
            }
            if pending < MAX_EVENTS_PER_COMMIT {
                next = rx.try_recv().ok();
            }
        }
        if inserts.is_empty() {
            continue;
        }
        let groups: Vec<&[NewEvent]> = inserts.iter().map(|(e, _)| e.as_slice()).collect();
        match commit(&mut conn, &groups) {
            Ok(stored) => {
                for ((_, reply), events) in inserts.into_iter().zip(stored) {
                    let _ = reply.send(Ok(events));
                }
            }
            Err(_) => {
                // Commit each request alone so one failure does not fail its neighbours and
                // each caller learns its own error.
                for (events, reply) in inserts {
                    let result = commit(&mut conn, &[events.as_slice()]).map(|mut v| v.remove(0));
                    let _ = reply.send(result.map_err(Error::from));
                }
            }
        }
    }
}

fn commit(conn: &mut Connection, groups: &[&[NewEvent]]) -> rusqlite::Result<Vec<Vec<Event>>> {
    let tx = conn.transaction()?;
    let mut out = Vec::with_capacity(groups.len());
    {
        let mut stmt =
            tx.prepare_cached("INSERT INTO events (source, action, time) VALUES (?1, ?2, ?3)")?;
        for group in groups {
            let mut stored = Vec::with_capacity(group.len());
            for e in *group {
                let time = truncate_to_micros(e.time);
                stmt.execute(params![e.source, e.action, time.timestamp_micros()])?;
                stored.push(Event {
                    id: tx.last_insert_rowid(),
                    source: e.source.clone(),
                    action: e.action.clone(),
                    time,
                });
            }
            out.push(stored);
        }
    }
    tx.commit()?;
    Ok(out)
}

fn delete_chunk(conn: &Connection, cutoff: DateTime<Utc>) -> rusqlite::Result<u64> {
    let n = conn.execute(
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time < ?1 ORDER BY time LIMIT ?2)",
        params![cutoff.timestamp_micros(), DELETE_CHUNK as i64],
    )?;
    Ok(n as u64)
}
