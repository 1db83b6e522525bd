//! Optional Redis cache of GET /events pages, invalidated by a shared generation counter.
//!
//! Invalidation: every write bumps `collector:generation` after it commits, and pages are cached
//! under the generation read *before* the store was queried. A page computed before a write can
//! therefore only land under an old generation, which no reader looks up again; this holds across
//! any number of replicas sharing one Redis. A Redis failure degrades to a cache miss, and an
//! unreachable Redis at start to no cache (one log line) until a background retry reaches it.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The shared generation counter.
const GENERATION_KEY: &str = "collector:generation";
/// Prefix of cached pages: `collector:page:<generation>:<canonical query>`.
const PAGE_PREFIX: &str = "collector:page:";
/// Cached pages expire anyway, so an invalidation lost to a Redis outage heals by itself.
const PAGE_TTL_SECONDS: u64 = 30;
/// A cache slower than this is skipped: the store answers instead.
const OP_TIMEOUT: Duration = Duration::from_millis(250);
/// The bound on reaching Redis at start: without it an address that drops packets holds the
/// collector silent for the kernel's SYN timeout (over 110 s) before it serves anything.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an unreachable Redis is tried again in the background.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Reads the generation and the page under it in one round trip.
const LOOKUP_SCRIPT: &str = r"
local g = redis.call('GET', KEYS[1]) or '0'
return {g, redis.call('GET', ARGV[1] .. g .. ':' .. ARGV[2])}
";

/// Why the cache could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is malformed (an unreachable Redis is not an error: the collector runs
    /// without the cache).
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
    /// Empty while Redis has not been reached: every operation is then a miss.
    conn: Arc<OnceLock<ConnectionManager>>,
    script: redis::Script,
}

/// One bounded attempt to reach Redis (the manager's own retries included).
async fn reach(client: &redis::Client, within: Duration) -> Result<ConnectionManager, String> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(within)
        .set_response_timeout(OP_TIMEOUT.max(within))
        .set_number_of_retries(1);
    match tokio::time::timeout(within, client.get_connection_manager_with_config(config)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {within:?}")),
    }
}

impl Cache {
    /// Connects within a bound; fails only on a malformed URL. An unreachable Redis logs one
    /// warning and leaves the cache off (every lookup a miss) while a background task keeps
    /// trying, so the collector serves from its store instead of hanging at start.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_within(url, CONNECT_TIMEOUT, RETRY_INTERVAL).await
    }

    async fn connect_within(url: &str, within: Duration, retry: Duration) -> Result<Self, Error> {
        let client = redis::Client::open(url)?;
        let cache = Self {
            conn: Arc::new(OnceLock::new()),
            script: redis::Script::new(LOOKUP_SCRIPT),
        };
        match reach(&client, within).await {
            Ok(conn) => {
                let _ = cache.conn.set(conn);
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis unreachable: running without the cache, retrying in the background");
                let cell = Arc::downgrade(&cache.conn);
                tokio::spawn(retry_until_reached(client, cell, within, retry));
            }
        }
        Ok(cache)
    }

    /// The connection, once Redis has been reached.
    fn conn(&self) -> Option<ConnectionManager> {
        self.conn.get().cloned()
    }

    /// Looks up the page for a canonical query under the current generation.
    pub async fn lookup(&self, key: &str) -> Lookup {
        let Some(mut conn) = self.conn() else {
            return Lookup::Miss(None);
        };
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
        let Some(mut conn) = self.conn() else {
            return;
        };
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
        let Some(mut conn) = self.conn() else {
            return;
        };
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

/// Tries Redis every `retry` until reached (then the cache turns on) or until every handle to
/// the cache is gone.
async fn retry_until_reached(
    client: redis::Client,
    cell: Weak<OnceLock<ConnectionManager>>,
    within: Duration,
    retry: Duration,
) {
    loop {
        tokio::time::sleep(retry).await;
        if cell.strong_count() == 0 {
            return;
        }
        if let Ok(conn) = reach(&client, within).await {
            if let Some(cell) = cell.upgrade() {
                let _ = cell.set(conn);
                tracing::info!("redis reached: cache on");
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port nothing listens on (bound, then released).
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    #[tokio::test]
    async fn a_closed_port_degrades_to_no_cache_within_the_bound() {
        let started = std::time::Instant::now();
        let url = format!("redis://127.0.0.1:{}", closed_port());
        let cache =
            Cache::connect_within(&url, Duration::from_millis(500), Duration::from_secs(60))
                .await
                .expect("an unreachable Redis is not an error");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(cache.lookup("q").await, Lookup::Miss(None));
        cache.put_page(0, "q", "page").await;
        cache.invalidate().await;
    }

    #[tokio::test]
    async fn a_silent_server_is_bounded_too() {
        // Accepts connections (the kernel's backlog) and never answers: a hung Redis.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("redis://{}", listener.local_addr().expect("addr"));
        let started = std::time::Instant::now();
        let cache =
            Cache::connect_within(&url, Duration::from_millis(300), Duration::from_secs(60))
                .await
                .expect("a hung Redis is not an error");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(cache.lookup("q").await, Lookup::Miss(None));
    }

    #[tokio::test]
    async fn a_malformed_url_is_an_error() {
        assert!(Cache::connect("not a url").await.is_err());
    }
}
