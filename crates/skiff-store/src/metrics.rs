//! The store's Prometheus metrics (decision 0033). The store stands where etcd stands
//! upstream, so its commit latency keeps etcd's name and buckets; the WAL has no etcd
//! equivalent and is named for skiff.
//!
//! - `etcd_disk_backend_commit_duration_seconds`: one group commit (the transaction and its
//!   fsync), as etcd's backend commit;
//! - `skiff_store_wal_size_bytes`: the SQLite write-ahead log's size after the last commit
//!   (it grows until a checkpoint copies it into the database).

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The store's series; clones share them. Recorded by the writer thread, registered by
/// the process that serves them.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    /// Seconds per committed batch.
    pub commit: Histogram,
    /// Bytes in the write-ahead log.
    pub wal_bytes: Gauge,
}

impl Default for StoreMetrics {
    fn default() -> StoreMetrics {
        StoreMetrics {
            // etcd's: 1 ms doubling to about 8 s.
            commit: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            wal_bytes: Gauge::default(),
        }
    }
}

impl StoreMetrics {
    /// Adds the series to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            self.commit.clone(),
        );
        registry.register(
            "skiff_store_wal_size_bytes",
            "Size of the store's SQLite write-ahead log after the last commit.",
            self.wal_bytes.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteOptions, SqliteStore, Store};

    #[tokio::test]
    async fn commits_are_timed_and_the_wal_measured() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = StoreMetrics::default();
        let options = SqliteOptions {
            metrics: metrics.clone(),
            ..Default::default()
        };
        let store = SqliteStore::open(&dir.path().join("state.db"), options).unwrap();
        store
            .create("/registry/pods/a".into(), bytes::Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("etcd_disk_backend_commit_duration_seconds_count 1"),
            "{text}"
        );
        assert!(metrics.wal_bytes.get() > 0, "{text}");
    }
}
