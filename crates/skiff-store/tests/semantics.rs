//! Store semantics checked on both backends, with the memory model as the oracle.

use std::sync::Arc;

use bytes::Bytes;
use skiff_store::{model_test, Error, MemoryStore, SqliteOptions, SqliteStore, Store};

fn sqlite(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    SqliteStore::open(&dir.path().join("state.db"), SqliteOptions::default()).unwrap()
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test]
async fn crud_and_compare_and_swap_behave_alike_on_both_backends() {
    model_test::crud_and_cas(MemoryStore::new()).await;
    let dir = tempfile::tempdir().unwrap();
    model_test::crud_and_cas(sqlite(&dir)).await;
}

#[tokio::test]
async fn watch_replays_history_then_goes_live_on_both_backends() {
    model_test::watch_replays_history_then_goes_live(MemoryStore::new()).await;
    let dir = tempfile::tempdir().unwrap();
    model_test::watch_replays_history_then_goes_live(sqlite(&dir)).await;
}

#[tokio::test]
async fn slow_watcher_is_dropped_instead_of_blocking_writers() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir);
    let mut w = store.watch("/r/", 0).unwrap();
    let writes: Vec<_> = (0..10_000)
        .map(|i| store.create(format!("/r/{i}"), b("v")))
        .collect();
    for f in futures::future::join_all(writes).await {
        f.unwrap();
    }
    let mut seen = 0;
    loop {
        match w.next().await {
            Some(Ok(_)) => seen += 1,
            Some(Err(Error::WatcherTooSlow)) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        seen < 10_000,
        "watcher should have been dropped, saw {seen}"
    );
}

#[tokio::test]
async fn acknowledged_writes_survive_reopen_and_revisions_continue() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = sqlite(&dir);
        let writes: Vec<_> = (0..500)
            .map(|i| store.create(format!("/r/{i:04}"), b("v")))
            .collect();
        for f in futures::future::join_all(writes).await {
            f.unwrap();
        }
    }
    let store = sqlite(&dir);
    assert_eq!(store.list("/r/", None, None).unwrap().items.len(), 500);
    assert_eq!(store.current_revision(), 500);
    let next = store.create("/r/new".into(), b("v")).await.unwrap();
    assert_eq!(next.mod_revision, 501);
}

/// A deterministic pseudo-random history applied to both backends must leave them equal.
#[tokio::test]
async fn random_histories_match_the_memory_model() {
    let dir = tempfile::tempdir().unwrap();
    model_test::random_histories_match_the_memory_model(sqlite(&dir), 2000).await;
}

/// Paged lists report `remainingItemCount` from this; both backends must agree.
#[tokio::test]
async fn count_after_agrees_on_both_backends() {
    model_test::counts_after(MemoryStore::new()).await;
    let dir = tempfile::tempdir().unwrap();
    model_test::counts_after(sqlite(&dir)).await;
}
