//! Wires the components together and runs them until shutdown, draining in-flight work.
//!
//! Components, in start order: store (SQLite or Postgres), Redis cache (optional), HTTP listener,
//! retention sweeper, NATS ingestion (optional). Shutdown runs in reverse: readiness fails at
//! once, the listener stops after SHUTDOWN_DELAY_SECONDS, in-flight requests finish, NATS
//! unsubscribes, the store commits what it holds.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cache::{self, Cache};
use crate::config::Config;
use crate::http::{router, AppState};
use crate::metrics::Metrics;
use crate::nats;
use crate::store::{self, postgres::PgStore, sqlite::SqliteStore, Store};

/// How often retention runs; events are at most this much older than RETENTION_DAYS.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// What stopped the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be opened.
    #[error("storage: {0}")]
    Store(#[from] store::Error),
    /// Redis was configured but is unreachable.
    #[error("cache: {0}")]
    Cache(#[from] cache::Error),
    /// NATS was configured but is unreachable.
    #[error("{0}")]
    Nats(#[from] nats::Error),
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(#[source] std::io::Error),
}

/// Opens the store the configuration asks for.
pub async fn open_store(config: &Config) -> Result<Store, store::Error> {
    match &config.postgres {
        Some(conn) => Ok(Store::Postgres(PgStore::connect(conn).await?)),
        None => Ok(Store::Sqlite(SqliteStore::open_with(
            &config.data_dir,
            config.sqlite_durability,
        )?)),
    }
}

/// Binds LISTEN_ADDR and runs until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen_addr,
            source,
        })?;
    run_on(config, listener, shutdown).await
}

/// Runs on an already bound listener (tests bind port 0 to avoid races).
pub async fn run_on(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = open_store(&config).await?;
    let cache = match &config.redis_url {
        Some(url) => Some(Cache::connect(url).await?),
        None => None,
    };
    let state = AppState {
        store: store.clone(),
        metrics: Arc::new(Metrics::default()),
        cache,
        max_batch_size: config.max_batch_size,
        max_body_bytes: config.max_body_bytes,
        shutting_down: Arc::new(AtomicBool::new(false)),
        ingest_limit: Arc::new(tokio::sync::Semaphore::new(
            crate::http::MAX_INGESTS_IN_FLIGHT,
        )),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let ingest = match &config.nats_url {
        Some(url) => {
            let ingest = nats::Ingest::connect(url, &config.nats_subject).await?;
            Some(tokio::spawn(ingest.run(state.clone(), stop_rx.clone())))
        }
        None => None,
    };
    let retention = tokio::spawn(retention_loop(
        state.clone(),
        config.retention_days,
        stop_rx,
    ));
    tracing::info!(
        addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        store = store.kind(),
        cache = state.cache.is_some(),
        nats = ingest.is_some(),
        retention_days = config.retention_days,
        empty_source_refused = !crate::event::ARTICLE_V1,
        post_delay_ms = crate::http::ARTICLE_V2_REGRESSION.as_millis() as u64,
        "collector listening"
    );

    let flag = state.shutting_down.clone();
    let delay = Duration::from_secs(config.shutdown_delay_seconds);
    let drain = async move {
        shutdown.await;
        // Fail readiness first so load balancers stop sending, keep serving while they notice.
        flag.store(true, Ordering::SeqCst);
        tracing::info!(
            delay_seconds = delay.as_secs(),
            "shutting down: readiness now fails"
        );
        tokio::time::sleep(delay).await;
        tracing::info!("no longer accepting connections; finishing in-flight requests");
    };
    let app = router(state);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(drain)
        .await;

    let _ = stop_tx.send(true);
    if let Some(task) = ingest {
        let _ = task.await;
    }
    let _ = retention.await;
    store.close().await;
    tracing::info!("stopped");
    served.map_err(Error::Serve)
}

/// Deletes expired events every RETENTION_INTERVAL, starting at once.
async fn retention_loop(state: AppState, days: u32, mut stop: watch::Receiver<bool>) {
    if days == 0 {
        return;
    }
    loop {
        let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
        match state.store.delete_before(cutoff).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(deleted = n, %cutoff, "retention removed old events");
                if let Some(cache) = &state.cache {
                    cache.invalidate().await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention pass failed; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RETENTION_INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
