//! The store's semantics as test functions over any [`Store`], with [`MemoryStore`] as the
//! oracle. Every backend runs these same checks: SQLite in this crate's tests, etcd in
//! skiff-etcd's. A backend's revisions need not start at 0 (a fresh etcd is at revision 1),
//! so every check counts from the store's revision when it starts.

use std::sync::Arc;

use bytes::Bytes;

use crate::{Error, EventKind, MemoryStore, Revision, Store};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Create, update, delete, compare-and-swap and paging.
pub async fn crud_and_cas(store: Arc<dyn Store>) {
    let base = store.current_revision();
    let a = store.create("/r/pods/a".into(), b("1")).await.unwrap();
    assert_eq!(a.mod_revision, base + 1);
    assert!(matches!(
        store.create("/r/pods/a".into(), b("x")).await,
        Err(Error::AlreadyExists(_))
    ));
    let a2 = store
        .update("/r/pods/a".into(), b("2"), Some(base + 1))
        .await
        .unwrap();
    assert_eq!((a2.create_revision, a2.mod_revision), (base + 1, base + 2));
    match store
        .update("/r/pods/a".into(), b("3"), Some(base + 1))
        .await
    {
        Err(Error::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (base + 1, base + 2)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        store.update("/r/pods/zz".into(), b("3"), None).await,
        Err(Error::NotFound(_))
    ));
    store.create("/r/pods/b".into(), b("b")).await.unwrap();
    store.create("/r/podsx/c".into(), b("c")).await.unwrap();
    let list = store.list("/r/pods/", None, None).unwrap();
    assert_eq!(list.items.len(), 2);
    assert_eq!(list.revision, base + 4);
    let page = store.list("/r/pods/", None, Some(1)).unwrap();
    assert!(page.more);
    let rest = store
        .list("/r/pods/", Some(&page.items[0].key), Some(1))
        .unwrap();
    assert_eq!(rest.items[0].key, "/r/pods/b");
    assert!(!rest.more);
    let gone = store
        .delete("/r/pods/a".into(), Some(base + 2))
        .await
        .unwrap();
    assert_eq!((gone.value, gone.mod_revision), (b("2"), base + 5));
    assert!(store.get("/r/pods/a").unwrap().is_none());
    assert_eq!(store.current_revision(), base + 5);
}

/// A watch replays history after its revision, then delivers live events; compacted
/// history answers [`Error::Compacted`].
pub async fn watch_replays_history_then_goes_live(store: Arc<dyn Store>) {
    let base = store.current_revision();
    store.create("/r/a/1".into(), b("1")).await.unwrap();
    store.create("/r/b/1".into(), b("x")).await.unwrap();
    store.update("/r/a/1".into(), b("2"), None).await.unwrap();
    let mut w = store.watch("/r/a/", base).unwrap();
    store.delete("/r/a/1".into(), None).await.unwrap();
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let e = w.next().await.unwrap().unwrap();
        kinds.push((e.kind, e.revision - base));
    }
    assert_eq!(
        kinds,
        vec![
            (EventKind::Created, 1),
            (EventKind::Updated, 3),
            (EventKind::Deleted, 4)
        ]
    );
    assert_eq!(w.progress(), base + 4);
    store.compact(base + 3).await.unwrap();
    match store.watch("/r/a/", base + 1) {
        Err(Error::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (base + 1, base + 3)),
        other => panic!("expected compacted, got {:?}", other.map(|_| ())),
    }
    let mut w = store.watch("/r/a/", base + 3).unwrap();
    let e = w.next().await.unwrap().unwrap();
    assert_eq!((e.kind, e.prev_value), (EventKind::Deleted, Some(b("2"))));
}

/// `count_after`, which paged lists report as `remainingItemCount`.
pub async fn counts_after(store: Arc<dyn Store>) {
    for key in ["/r/a/1", "/r/a/2", "/r/a/3", "/r/b/1", "/r/a0"] {
        store.create(key.into(), b("v")).await.unwrap();
    }
    assert_eq!(store.count_after("/r/a/", "/r/a/1").unwrap(), 2);
    assert_eq!(store.count_after("/r/a/", "/r/a/3").unwrap(), 0);
    assert_eq!(store.count_after("/r/", "/r/a/2").unwrap(), 3);
    // A start before the prefix counts the whole prefix.
    assert_eq!(store.count_after("/r/b/", "/r/a/9").unwrap(), 1);
}

/// A deterministic pseudo-random history of creates, updates and deletes (with and without
/// compare-and-swap, on 20 keys so that conflicts, duplicates and misses are common) applied
/// to `real` and to the model: every answer, the final listing and every watch event must be
/// equal. `real` must hold nothing under `/k/` and see no other writes meanwhile.
pub async fn random_histories_match_the_memory_model(real: Arc<dyn Store>, steps: usize) {
    let base: Revision = real.current_revision();
    let model = MemoryStore::starting_at(base);
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut real_watch = real.watch("/k/", base).unwrap();
    let mut model_watch = model.watch("/k/", base).unwrap();
    for _ in 0..steps {
        let key = format!("/k/{}", next() % 20);
        let expected = match next() % 3 {
            0 => None,
            _ => Some(base + (next() % 40) as i64),
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
    for _ in base..r.revision {
        let a = real_watch.next().await.unwrap().unwrap();
        let b = model_watch.next().await.unwrap().unwrap();
        assert_eq!(a, b);
    }
}
