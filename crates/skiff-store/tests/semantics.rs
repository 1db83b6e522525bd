//! Store semantics checked on both backends, with the memory model as the oracle.

use std::sync::Arc;

use bytes::Bytes;
use skiff_store::{Error, EventKind, MemoryStore, SqliteOptions, SqliteStore, Store};

fn sqlite(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    SqliteStore::open(&dir.path().join("state.db"), SqliteOptions::default()).unwrap()
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn crud_and_cas(store: Arc<dyn Store>) {
    let a = store.create("/r/pods/a".into(), b("1")).await.unwrap();
    assert_eq!(a.mod_revision, 1);
    assert!(matches!(
        store.create("/r/pods/a".into(), b("x")).await,
        Err(Error::AlreadyExists(_))
    ));
    let a2 = store
        .update("/r/pods/a".into(), b("2"), Some(1))
        .await
        .unwrap();
    assert_eq!((a2.create_revision, a2.mod_revision), (1, 2));
    assert!(matches!(
        store.update("/r/pods/a".into(), b("3"), Some(1)).await,
        Err(Error::Conflict {
            expected: 1,
            actual: 2,
            ..
        })
    ));
    assert!(matches!(
        store.update("/r/pods/zz".into(), b("3"), None).await,
        Err(Error::NotFound(_))
    ));
    store.create("/r/pods/b".into(), b("b")).await.unwrap();
    store.create("/r/podsx/c".into(), b("c")).await.unwrap();
    let list = store.list("/r/pods/", None, None).unwrap();
    assert_eq!(list.items.len(), 2);
    assert_eq!(list.revision, 4);
    let page = store.list("/r/pods/", None, Some(1)).unwrap();
    assert!(page.more);
    let rest = store
        .list("/r/pods/", Some(&page.items[0].key), Some(1))
        .unwrap();
    assert_eq!(rest.items[0].key, "/r/pods/b");
    assert!(!rest.more);
    let gone = store.delete("/r/pods/a".into(), Some(2)).await.unwrap();
    assert_eq!((gone.value, gone.mod_revision), (b("2"), 5));
    assert!(store.get("/r/pods/a").unwrap().is_none());
    assert_eq!(store.current_revision(), 5);
}

#[tokio::test]
async fn crud_and_compare_and_swap_behave_alike_on_both_backends() {
    crud_and_cas(MemoryStore::new()).await;
    let dir = tempfile::tempdir().unwrap();
    crud_and_cas(sqlite(&dir)).await;
}

async fn watch_replays_history_then_goes_live(store: Arc<dyn Store>) {
    store.create("/r/a/1".into(), b("1")).await.unwrap();
    store.create("/r/b/1".into(), b("x")).await.unwrap();
    store.update("/r/a/1".into(), b("2"), None).await.unwrap();
    let mut w = store.watch("/r/a/", 0).unwrap();
    store.delete("/r/a/1".into(), None).await.unwrap();
    let kinds: Vec<_> = [
        w.next().await.unwrap().unwrap(),
        w.next().await.unwrap().unwrap(),
        w.next().await.unwrap().unwrap(),
    ]
    .into_iter()
    .map(|e| (e.kind, e.revision))
    .collect();
    assert_eq!(
        kinds,
        vec![
            (EventKind::Created, 1),
            (EventKind::Updated, 3),
            (EventKind::Deleted, 4)
        ]
    );
    assert_eq!(w.progress(), 4);
    store.compact(3).await.unwrap();
    assert!(matches!(
        store.watch("/r/a/", 1),
        Err(Error::Compacted {
            requested: 1,
            compacted: 3
        })
    ));
    let mut w = store.watch("/r/a/", 3).unwrap();
    let e = w.next().await.unwrap().unwrap();
    assert_eq!((e.kind, e.prev_value), (EventKind::Deleted, Some(b("2"))));
}

#[tokio::test]
async fn watch_replays_history_then_goes_live_on_both_backends() {
    watch_replays_history_then_goes_live(MemoryStore::new()).await;
    let dir = tempfile::tempdir().unwrap();
    watch_replays_history_then_goes_live(sqlite(&dir)).await;
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
    let real = sqlite(&dir);
    let model = MemoryStore::new();
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut real_watch = real.watch("/k/", 0).unwrap();
    let mut model_watch = model.watch("/k/", 0).unwrap();
    for _ in 0..2000 {
        let key = format!("/k/{}", next() % 20);
        let expected = match next() % 3 {
            0 => None,
            _ => Some((next() % 40) as i64),
        };
        let value = Bytes::from(next().to_string());
        let (r, m) = match next() % 3 {
            0 => (
                real.create(key.clone(), value.clone()).await,
                model.create(key, value).await,
            ),
            1 => (
                real.update(key.clone(), value.clone(), expected).await,
                model.update(key, value, expected).await,
            ),
            _ => (
                real.delete(key.clone(), expected).await,
                model.delete(key, expected).await,
            ),
        };
        assert_eq!(format!("{r:?}"), format!("{m:?}"));
    }
    let r = real.list("/k/", None, None).unwrap();
    let m = model.list("/k/", None, None).unwrap();
    assert_eq!(r.items, m.items);
    assert_eq!(r.revision, m.revision);
    for _ in 0..r.revision {
        let a = real_watch.next().await.unwrap().unwrap();
        let b = model_watch.next().await.unwrap().unwrap();
        assert_eq!(a, b);
    }
}

async fn counts_after(store: Arc<dyn Store>) {
    for key in ["/r/a/1", "/r/a/2", "/r/a/3", "/r/b/1", "/r/a0"] {
        store.create(key.into(), b("v")).await.unwrap();
    }
    assert_eq!(store.count_after("/r/a/", "/r/a/1").unwrap(), 2);
    assert_eq!(store.count_after("/r/a/", "/r/a/3").unwrap(), 0);
    assert_eq!(store.count_after("/r/", "/r/a/2").unwrap(), 3);
    // A start before the prefix counts the whole prefix.
    assert_eq!(store.count_after("/r/b/", "/r/a/9").unwrap(), 1);
}

/// Paged lists report `remainingItemCount` from this; both backends must agree.
#[tokio::test]
async fn count_after_agrees_on_both_backends() {
    counts_after(MemoryStore::new()).await;
    let dir = tempfile::tempdir().unwrap();
    counts_after(sqlite(&dir)).await;
}
