//! Optional Redis cache of GET /events pages, invalidated by a shared generation counter.
//!
//! Invalidation: every write bumps `collector:generation` after it commits, and pages are cached
//! under the generation read *before* the store was queried. A page computed before a write can
//! therefore only land under an old generation, which no reader looks up again; this holds across
//! any number of replicas sharing one Redis. A Redis failure degrades to a cache miss.

use std::time::Duration;

use redis::aio::ConnectionManager;

/// The shared generation counter.
const GENERATION_KEY: &str = "collector:generation";
/// Prefix of cached pages: `collector:page:<generation>:<canonical query>`.
const PAGE_PREFIX: &str = "collector:page:";
/// Cached pages expire anyway, so an invalidation lost to a Redis outage heals by itself.
const PAGE_TTL_SECONDS: u64 = 30;
/// A cache slower than this is skipped: the store answers instead.
const OP_TIMEOUT: Duration = Duration::from_millis(250);

/// Reads the generation and the page under it in one round trip.
const LOOKUP_SCRIPT: &str = r"
local g = redis.call('GET', KEYS[1]) or '0'
return {g, redis.call('GET', ARGV[1] .. g .. ':' .. ARGV[2])}
";

/// Why the cache could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is wrong or Redis is unreachable at start.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A cached page.
    Hit(String),
    /// No page; cache the fresh one under this generation (None: Redis failed, do not cache).
    Miss(Option<i64>),
}

/// Handle to the cache; cheap to clone, reconnects by itself.
#[derive(Clone)]
pub struct Cache {
    conn: ConnectionManager,
    script: redis::Script,
}

impl Cache {
    /// Connects; fails if Redis is unreachable so a bad REDIS_URL is caught at start.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        Ok(Self {
            conn,
            script: redis::Script::new(LOOKUP_SCRIPT),
        })
    }

    /// Looks up the page for a canonical query under the current generation.
    pub async fn lookup(&self, key: &str) -> Lookup {
        let mut conn = self.conn.clone();
        let mut inv = self.script.key(GENERATION_KEY);
        inv.arg(PAGE_PREFIX).arg(key);
        let call = inv.invoke_async::<(String, Option<String>)>(&mut conn);
        match tokio::time::timeout(OP_TIMEOUT, call).await {
            Ok(Ok((_, Some(page)))) => Lookup::Hit(page),
            Ok(Ok((generation, None))) => Lookup::Miss(generation.parse().ok()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "redis lookup failed");
                Lookup::Miss(None)
            }
            Err(_) => {
                tracing::warn!("redis lookup timed out");
                Lookup::Miss(None)
            }
        }
    }

    /// Stores a page computed from a store read that started at `generation`.
    pub async fn put_page(&self, generation: i64, key: &str, value: &str) {
        let mut conn = self.conn.clone();
        let full = format!("{PAGE_PREFIX}{generation}:{key}");
        let mut cmd = redis::cmd("SET");
        cmd.arg(full).arg(value).arg("EX").arg(PAGE_TTL_SECONDS);
        let call = cmd.query_async::<()>(&mut conn);
        match tokio::time::timeout(OP_TIMEOUT, call).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "redis store failed"),
            Err(_) => tracing::warn!("redis store timed out"),
        }
    }

    /// Makes every cached page unreachable; call after a write or deletion commits.
    pub async fn invalidate(&self) {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("INCR");
        cmd.arg(GENERATION_KEY);
        let call = cmd.query_async::<i64>(&mut conn);
        match tokio::time::timeout(OP_TIMEOUT, call).await {
            Ok(Ok(_)) => {}
            // Pages already cached stay valid until they expire (PAGE_TTL_SECONDS).
            Ok(Err(e)) => tracing::warn!(error = %e, "redis invalidation failed"),
            Err(_) => tracing::warn!("redis invalidation timed out"),
        }
    }
}
