//! Postgres backend: a connection pool, batch inserts through `unnest`, the same queries as SQLite.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use super::{Error, Query, Result};
use crate::event::{truncate_to_micros, Event, NewEvent};

/// Connections kept open; enough to overlap requests on two cores without starving the server.
const POOL_SIZE: usize = 8;
/// Rows one retention statement deletes, so a large backlog never holds locks for long.
const DELETE_CHUNK: i64 = 5_000;
/// Serialises schema creation when several replicas start at once.
const MIGRATION_LOCK: i64 = 0x636f_6c6c_6563_746f;

/// Handle to the Postgres store; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

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
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => Error::Postgres(e),
            other => Error::Pool(other.to_string()),
        })
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

    pub(super) async fn insert(&self, events: Vec<NewEvent>) -> Result<Vec<Event>> {
        let client = self.client().await?;
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

    pub(super) fn close(self) {
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
