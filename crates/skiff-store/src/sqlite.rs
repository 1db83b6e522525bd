//! The embedded default backend: one SQLite file in WAL mode, one writer thread.
//!
//! Schema: `kv` holds the current value of every key, `log` one row per revision (the
//! history watchers replay), `meta` the current and compacted revisions. Each write batch is
//! one transaction: concurrent writers queue on a channel, the writer thread takes everything
//! queued, commits it with one fsync (`synchronous=FULL`), then publishes the events and
//! answers the callers. A write is acknowledged only after its commit is durable.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::hub::{Hub, Watch};
use crate::{Error, Event, EventKind, KeyValue, ListResult, Result, Revision, Store};

/// Tuning knobs of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Revisions of history kept for watchers; older ones are compacted automatically.
    pub history_revisions: i64,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Where commit latency and the WAL's size are recorded.
    pub metrics: crate::metrics::StoreMetrics,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            history_revisions: 20_000,
            max_batch: 2048,
            metrics: Default::default(),
        }
    }
}

/// The SQLite-backed [`Store`].
pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::UnboundedSender<Request>,
    /// Idle read connections; WAL lets them read while the writer commits.
    readers: Mutex<Vec<Connection>>,
    hub: Arc<Hub>,
    compacted: Arc<AtomicI64>,
}

enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Option<Revision>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<KeyValue>>,
}

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY NOT NULL,
    key TEXT NOT NULL,
    kind INTEGER NOT NULL,
    value BLOB NOT NULL,
    prev BLOB,
    create_rev INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0);
";

impl SqliteStore {
    /// Opens (creating if needed) the store file at `path`.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Arc<SqliteStore>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let revision = meta(&conn, "revision")?;
        let compacted = Arc::new(AtomicI64::new(meta(&conn, "compacted")?));
        let hub = Hub::new(revision);
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            wal: wal_path(path),
            conn,
            hub: hub.clone(),
            compacted: compacted.clone(),
            revision,
            options,
        };
        std::thread::Builder::new()
            .name("skiff-store-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(Arc::new(SqliteStore {
            path: path.to_owned(),
            writer: tx,
            readers: Mutex::new(Vec::new()),
            hub,
            compacted,
        }))
    }

    /// Runs `f` on an idle read connection (opening one if none is idle).
    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match idle {
            Some(c) => c,
            None => {
                let c = Connection::open(&self.path)?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c.pragma_update(None, "query_only", true)?;
                c
            }
        };
        let out = f(&mut conn);
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        out
    }

    fn submit(&self, op: Op) -> BoxFuture<'static, Result<KeyValue>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.writer.send(Request { op, reply });
        Box::pin(async move {
            sent.map_err(|_| Error::Closed)?;
            rx.await.map_err(|_| Error::Closed)?
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.hub.close();
    }
}

fn meta(conn: &Connection, name: &str) -> Result<i64> {
    Ok(
        conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get(0)
        })?,
    )
}

/// The smallest string greater than every string starting with `prefix`, if any.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            return String::from_utf8(bytes).ok();
        }
    }
    None
}

fn kind_code(kind: EventKind) -> i64 {
    match kind {
        EventKind::Created => 0,
        EventKind::Updated => 1,
        EventKind::Deleted => 2,
    }
}

fn kind_from_code(code: i64) -> EventKind {
    match code {
        0 => EventKind::Created,
        1 => EventKind::Updated,
        _ => EventKind::Deleted,
    }
}

impl Store for SqliteStore {
    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT value, create_rev, mod_rev FROM kv WHERE key = ?1")?;
            Ok(stmt
                .query_row([key], |r| {
                    Ok(KeyValue {
                        key: key.to_owned(),
                        value: Bytes::from(r.get::<_, Vec<u8>>(0)?),
                        create_revision: r.get(1)?,
                        mod_revision: r.get(2)?,
                    })
                })
                .optional()?)
        })
    }

    fn count_after(&self, prefix: &str, start_after: &str) -> Result<usize> {
        self.read(|conn| {
            let lower = if start_after >= prefix {
                start_after
            } else {
                prefix
            };
            let upper = prefix_end(prefix).unwrap_or_else(|| "\u{7f}".repeat(8));
            let mut stmt =
                conn.prepare_cached("SELECT COUNT(*) FROM kv WHERE key > ?1 AND key < ?2")?;
            let n: i64 = stmt.query_row(params![lower, upper], |r| r.get(0))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult> {
        self.read(|conn| {
            let tx = conn.transaction()?;
            let revision = meta(&tx, "revision")?;
            let lower = start_after.filter(|s| *s >= prefix).unwrap_or(prefix);
            let upper = prefix_end(prefix).unwrap_or_else(|| "\u{7f}".repeat(8));
            let fetch = limit.map(|l| l as i64 + 1).unwrap_or(-1);
            let op = if start_after.is_some() { ">" } else { ">=" };
            let mut items = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT key, value, create_rev, mod_rev FROM kv \
                     WHERE key {op} ?1 AND key < ?2 ORDER BY key LIMIT ?3"
                ))?;
                let rows = stmt.query_map(params![lower, upper, fetch], |r| {
                    Ok(KeyValue {
                        key: r.get(0)?,
                        value: Bytes::from(r.get::<_, Vec<u8>>(1)?),
                        create_revision: r.get(2)?,
                        mod_revision: r.get(3)?,
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.finish()?;
            let more = limit.is_some_and(|l| items.len() > l);
            if let Some(l) = limit {
                items.truncate(l);
            }
            Ok(ListResult {
                items,
                revision,
                more,
            })
        })
    }

    fn current_revision(&self) -> Revision {
        self.hub.revision()
    }

    fn compacted_revision(&self) -> Revision {
        self.compacted.load(Ordering::Acquire)
    }

    fn create(&self, key: String, value: Bytes) -> BoxFuture<'static, Result<KeyValue>> {
        self.submit(Op::Create { key, value })
    }

    fn update(
        &self,
        key: String,
        value: Bytes,
        expected: Option<Revision>,
    ) -> BoxFuture<'static, Result<KeyValue>> {
        self.submit(Op::Update {
            key,
            value,
            expected,
        })
    }

    fn delete(
        &self,
        key: String,
        expected: Option<Revision>,
    ) -> BoxFuture<'static, Result<KeyValue>> {
        self.submit(Op::Delete { key, expected })
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        let (mut watch, live_after) = self.hub.subscribe(prefix)?;
        if after >= live_after {
            return Ok(watch);
        }
        let backlog = self.read(|conn| {
            let tx = conn.transaction()?;
            let compacted = meta(&tx, "compacted")?;
            if after < compacted {
                return Err(Error::Compacted {
                    requested: after,
                    compacted,
                });
            }
            let upper = prefix_end(prefix).unwrap_or_else(|| "\u{7f}".repeat(8));
            let events = {
                let mut stmt = tx.prepare_cached(
                    "SELECT rev, key, kind, value, prev, create_rev FROM log \
                     WHERE rev > ?1 AND rev <= ?2 AND key >= ?3 AND key < ?4 ORDER BY rev",
                )?;
                let rows = stmt.query_map(params![after, live_after, prefix, upper], |r| {
                    Ok(Event {
                        revision: r.get(0)?,
                        key: r.get(1)?,
                        kind: kind_from_code(r.get(2)?),
                        value: Bytes::from(r.get::<_, Vec<u8>>(3)?),
                        prev_value: r.get::<_, Option<Vec<u8>>>(4)?.map(Bytes::from),
                        create_revision: r.get(5)?,
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.finish()?;
            Ok(events)
        })?;
        watch.set_backlog(backlog);
        Ok(watch)
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'static, Result<()>> {
        let done = self.submit(Op::Compact { revision });
        Box::pin(async move { done.await.map(|_| ()) })
    }
}

/// The write-ahead log SQLite keeps beside the database file.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The single writer: owns the write connection and assigns revisions.
struct Writer {
    conn: Connection,
    /// The WAL file, whose size is a metric.
    wal: PathBuf,
    hub: Arc<Hub>,
    compacted: Arc<AtomicI64>,
    revision: Revision,
    options: SqliteOptions,
}

/// The outcome of one op inside a batch, before the batch commits.
struct Applied {
    result: Result<KeyValue>,
    event: Option<Event>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        let mut batch = Vec::with_capacity(self.options.max_batch);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < self.options.max_batch {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
            self.maybe_compact();
        }
        tracing::debug!("store writer stopped");
    }

    fn commit_batch(&mut self, batch: &mut Vec<Request>) {
        let started = std::time::Instant::now();
        let start_revision = self.revision;
        let outcome = (|| -> Result<Vec<Applied>> {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut revision = start_revision;
            let mut applied = Vec::with_capacity(batch.len());
            for req in batch.iter() {
                applied.push(apply(&tx, &req.op, &mut revision)?);
            }
            if revision != start_revision {
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE name = 'revision'",
                    [revision],
                )?;
            }
            tx.commit()?;
            self.revision = revision;
            Ok(applied)
        })();
        // Measured before anyone is answered, so a client that reads the metrics after its
        // write was acknowledged sees that commit counted.
        self.record_commit(started);
        match outcome {
            Ok(applied) => {
                let events: Vec<Event> = applied.iter().filter_map(|a| a.event.clone()).collect();
                if let Some(compact) = batch.iter().find_map(|r| match r.op {
                    Op::Compact { revision } => Some(revision.min(self.revision)),
                    _ => None,
                }) {
                    self.compacted.fetch_max(compact, Ordering::AcqRel);
                }
                self.hub.publish(&events);
                for (req, a) in batch.drain(..).zip(applied) {
                    let _ = req.reply.send(a.result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store batch failed; no write in it was applied");
                let message = e.to_string();
                for req in batch.drain(..) {
                    let _ = req
                        .reply
                        .send(Err(Error::Io(std::io::Error::other(message.clone()))));
                }
            }
        }
    }

    /// The commit's duration and the WAL's size after it.
    fn record_commit(&self, started: std::time::Instant) {
        let metrics = &self.options.metrics;
        metrics.commit.observe(started.elapsed().as_secs_f64());
        if let Ok(meta) = std::fs::metadata(&self.wal) {
            metrics
                .wal_bytes
                .set(i64::try_from(meta.len()).unwrap_or(i64::MAX));
        }
    }

    /// Keeps history bounded: once it holds twice the configured window, drop the older half.
    fn maybe_compact(&mut self) {
        let compacted = self.compacted.load(Ordering::Acquire);
        let target = self.revision - self.options.history_revisions;
        if target - compacted < self.options.history_revisions {
            return;
        }
        let result = (|| -> Result<()> {
            let tx = self.conn.transaction()?;
            compact_to(&tx, target)?;
            tx.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.compacted.fetch_max(target, Ordering::AcqRel);
            }
            Err(e) => tracing::warn!(error = %e, "automatic compaction failed"),
        }
    }
}

fn compact_to(tx: &Transaction<'_>, revision: Revision) -> Result<()> {
    tx.execute("DELETE FROM log WHERE rev <= ?1", [revision])?;
    tx.execute(
        "UPDATE meta SET value = max(value, ?1) WHERE name = 'compacted'",
        [revision],
    )?;
    Ok(())
}

/// Applies one op inside the batch transaction. Precondition failures are per-op results;
/// only database errors abort the batch.
fn apply(tx: &Transaction<'_>, op: &Op, revision: &mut Revision) -> Result<Applied> {
    let current = |key: &str| -> Result<Option<(Vec<u8>, Revision, Revision)>> {
        let mut stmt =
            tx.prepare_cached("SELECT value, create_rev, mod_rev FROM kv WHERE key = ?1")?;
        Ok(stmt
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?)
    };
    let refuse = |e: Error| {
        Ok(Applied {
            result: Err(e),
            event: None,
        })
    };
    match op {
        Op::Create { key, value } => {
            if current(key)?.is_some() {
                return refuse(Error::AlreadyExists(key.clone()));
            }
            *revision += 1;
            write(tx, key, value, *revision, *revision)?;
            log(
                tx,
                EventKind::Created,
                key,
                value,
                None,
                *revision,
                *revision,
            )
        }
        Op::Update {
            key,
            value,
            expected,
        } => {
            let Some((prev, create_rev, mod_rev)) = current(key)? else {
                return refuse(Error::NotFound(key.clone()));
            };
            if let Some(expected) = expected.filter(|e| *e != mod_rev) {
                return refuse(Error::Conflict {
                    key: key.clone(),
                    expected,
                    actual: mod_rev,
                });
            }
            *revision += 1;
            write(tx, key, value, create_rev, *revision)?;
            log(
                tx,
                EventKind::Updated,
                key,
                value,
                Some(prev),
                *revision,
                create_rev,
            )
        }
        Op::Delete { key, expected } => {
            let Some((prev, create_rev, mod_rev)) = current(key)? else {
                return refuse(Error::NotFound(key.clone()));
            };
            if let Some(expected) = expected.filter(|e| *e != mod_rev) {
                return refuse(Error::Conflict {
                    key: key.clone(),
                    expected,
                    actual: mod_rev,
                });
            }
            *revision += 1;
            tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                .execute([key])?;
            let last = Bytes::from(prev);
            log(
                tx,
                EventKind::Deleted,
                key,
                &last,
                Some(last.to_vec()),
                *revision,
                create_rev,
            )
        }
        Op::Compact { revision: target } => {
            compact_to(tx, (*target).min(*revision))?;
            Ok(Applied {
                result: Ok(KeyValue {
                    key: String::new(),
                    value: Bytes::new(),
                    create_revision: 0,
                    mod_revision: *revision,
                }),
                event: None,
            })
        }
    }
}

fn write(
    tx: &Transaction<'_>,
    key: &str,
    value: &[u8],
    create: Revision,
    modified: Revision,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev",
    )?
    .execute(params![key, value, create, modified])?;
    Ok(())
}

fn log(
    tx: &Transaction<'_>,
    kind: EventKind,
    key: &str,
    value: &Bytes,
    prev: Option<Vec<u8>>,
    revision: Revision,
    create_revision: Revision,
) -> Result<Applied> {
    tx.prepare_cached(
        "INSERT INTO log (rev, key, kind, value, prev, create_rev) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        revision,
        key,
        kind_code(kind),
        &value[..],
        prev.as_deref(),
        create_revision
    ])?;
    let kv = KeyValue {
        key: key.to_owned(),
        value: value.clone(),
        create_revision,
        mod_revision: revision,
    };
    Ok(Applied {
        event: Some(Event {
            kind,
            key: key.to_owned(),
            value: value.clone(),
            prev_value: prev.map(Bytes::from),
            revision,
            create_revision,
        }),
        result: Ok(kv),
    })
}
