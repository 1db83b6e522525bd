//! Postgres backend: a connection pool, batch inserts through `unnest`, the same queries as SQLite.

use std::str::FromStr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use super::{Error, Query, Result};
use crate::event::{truncate_to_micros, Event, NewEvent};

/// Connections kept open; enough to overlap requests on two cores without starving the server.
const POOL_SIZE: usize = 8;
/// Insert statements in flight at once; the rest of the pool serves reads.
const BATCHERS: usize = 4;
/// Most events merged into one insert statement.
const MAX_EVENTS_PER_STATEMENT: usize = 10_000;
/// Insert requests queued before POSTs wait; bounds memory under overload.
const BATCH_QUEUE: usize = 4_096;
/// Rows one retention statement deletes, so a large backlog never holds locks for long.
const DELETE_CHUNK: i64 = 5_000;
/// Serialises schema creation when several replicas start at once.
const MIGRATION_LOCK: i64 = 0x636f_6c6c_6563_746f;

/// Handle to the Postgres store; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Insert requests waiting for a batcher; None once closed.
    inserts: Arc<std::sync::Mutex<Option<mpsc::Sender<InsertJob>>>>,
    batchers: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

/// One POST's events and where to send the stored result.
type InsertJob = (Vec<NewEvent>, oneshot::Sender<Result<Vec<Event>>>);

impl PgStore {
    /// Connects with the given connection string (URL or key=value form) and creates the schema.
    pub async fn connect(conn_str: &str) -> Result<Self> {
        let cfg = tokio_postgres::Config::from_str(conn_str)?;
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| Error::Pool(e.to_string()))?;
        let (tx, rx) = mpsc::channel(BATCH_QUEUE);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let batchers = (0..BATCHERS)
            .map(|_| tokio::spawn(batcher(pool.clone(), rx.clone())))
            .collect();
        let store = Self {
            pool,
            inserts: Arc::new(std::sync::Mutex::new(Some(tx))),
            batchers: Arc::new(std::sync::Mutex::new(batchers)),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        get_client(&self.pool).await
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS events (
                 id BIGSERIAL PRIMARY KEY,
                 source TEXT NOT NULL,
                 action TEXT NOT NULL,
                 time TIMESTAMPTZ NOT NULL
             );
             CREATE INDEX IF NOT EXISTS events_time_id ON events(time, id);
             CREATE INDEX IF NOT EXISTS events_source_time_id ON events(source, time, id);
             CREATE INDEX IF NOT EXISTS events_action_time_id ON events(action, time, id);",
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues the events for a batcher, which merges concurrent requests into one statement:
    /// with synchronous commit every statement waits for a WAL flush, so merging is what lets
    /// single-event POSTs go faster than one flush each.
    pub(super) async fn insert(&self, events: Vec<NewEvent>) -> Result<Vec<Event>> {
        let sender = self
            .inserts
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .ok_or(Error::WriterGone)?;
        let (reply, rx) = oneshot::channel();
        sender
            .send((events, reply))
            .await
            .map_err(|_| Error::WriterGone)?;
        rx.await.map_err(|_| Error::WriterGone)?
    }
}

/// Takes whatever inserts are queued (up to MAX_EVENTS_PER_STATEMENT) and stores them together.
async fn batcher(pool: Pool, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<InsertJob>>>) {
    loop {
        let mut jobs: Vec<InsertJob> = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut pending = first.0.len();
            jobs.push(first);
            while pending < MAX_EVENTS_PER_STATEMENT {
                match rx.try_recv() {
                    Ok(job) => {
                        pending += job.0.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        let all: Vec<&NewEvent> = jobs.iter().flat_map(|(e, _)| e.iter()).collect();
        match insert_rows(&pool, &all).await {
            Ok(mut stored) if stored.len() == all.len() => {
                for (events, reply) in jobs.into_iter().rev() {
                    let mine = stored.split_off(stored.len() - events.len());
                    let _ = reply.send(Ok(mine));
                }
            }
            _ => {
                // Store each request alone so one failure does not fail its neighbours.
                for (events, reply) in jobs {
                    let rows: Vec<&NewEvent> = events.iter().collect();
                    let _ = reply.send(insert_rows(&pool, &rows).await);
                }
            }
        }
    }
}

async fn get_client(pool: &Pool) -> Result<deadpool_postgres::Object> {
    pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Backend(e) => Error::Postgres(e),
        other => Error::Pool(other.to_string()),
    })
}

async fn insert_rows(pool: &Pool, events: &[&NewEvent]) -> Result<Vec<Event>> {
    {
        let client = get_client(pool).await?;
        let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        let times: Vec<DateTime<Utc>> = events.iter().map(|e| truncate_to_micros(e.time)).collect();
        // One statement is one transaction: the batch is stored whole or not at all. Ids come from
        // the sequence in row order; sorting by ordinality keeps the answer in body order.
        let stmt = client
            .prepare_cached(
                "WITH input AS (
                     SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
                         WITH ORDINALITY AS t(source, action, time, n)
                 ), ins AS (
                     INSERT INTO events (source, action, time)
                     SELECT source, action, time FROM input ORDER BY n
                     RETURNING id, source, action, time
                 )
                 SELECT id, source, action, time FROM ins ORDER BY id",
            )
            .await?;
        let rows = client.query(&stmt, &[&sources, &actions, &times]).await?;
        Ok(rows.iter().map(row_to_event).collect())
    }
}

impl PgStore {
    pub(super) async fn list(&self, q: &Query) -> Result<Vec<Event>> {
        let client = self.client().await?;
        let mut sql = String::from("SELECT id, source, action, time FROM events WHERE true");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut push = |cond: &str, v: Box<dyn ToSql + Sync + Send>, sql: &mut String| {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ${}", args.len()));
        };
        if let Some(s) = &q.source {
            push("source =", Box::new(s.clone()), &mut sql);
        }
        if let Some(a) = &q.action {
            push("action =", Box::new(a.clone()), &mut sql);
        }
        if let Some(t) = q.since {
            push("time >=", Box::new(t), &mut sql);
        }
        if let Some(t) = q.until {
            push("time <", Box::new(t), &mut sql);
        }
        if let Some(c) = q.cursor {
            args.push(Box::new(c.time));
            args.push(Box::new(c.id));
            sql.push_str(&format!(
                " AND (time, id) < (${}, ${})",
                args.len() - 1,
                args.len()
            ));
        }
        args.push(Box::new(q.limit as i64));
        sql.push_str(&format!(
            " ORDER BY time DESC, id DESC LIMIT ${}",
            args.len()
        ));
        let stmt = client.prepare_cached(&sql).await?;
        let refs: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&stmt, &refs).await?;
        Ok(rows.iter().map(row_to_event).collect())
    }

    pub(super) async fn get(&self, id: i64) -> Result<Option<Event>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT id, source, action, time FROM events WHERE id = $1")
            .await?;
        Ok(client
            .query_opt(&stmt, &[&id])
            .await?
            .as_ref()
            .map(row_to_event))
    }

    pub(super) async fn delete_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time < $1 ORDER BY time LIMIT $2)",
            )
            .await?;
        let mut total = 0;
        loop {
            let n = client.execute(&stmt, &[&cutoff, &DELETE_CHUNK]).await?;
            total += n;
            if n < DELETE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    pub(super) async fn ping(&self) -> Result<()> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    pub(super) async fn close(self) {
        let sender = self.inserts.lock().ok().and_then(|mut s| s.take());
        drop(sender);
        let batchers = self
            .batchers
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default();
        // Batchers finish what is queued, then see the closed channel and stop.
        for b in batchers {
            let _ = b.await;
        }
        self.pool.close();
    }
}

fn row_to_event(row: &tokio_postgres::Row) -> Event {
    Event {
        id: row.get(0),
        source: row.get(1),
        action: row.get(2),
        time: row.get(3),
    }
}
