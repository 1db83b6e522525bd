//! The store's shared semantics (skiff-store's `model_test`, the same checks SQLite passes)
//! against a real etcd started by the test.

use std::sync::Arc;

use skiff_etcd::testing::EtcdProcess;
use skiff_etcd::{EtcdOptions, EtcdStore};
use std::time::Duration;

use skiff_store::{model_test, Error, Store};

/// A store on a fresh etcd; compaction only when a test asks for it.
async fn store(etcd: &EtcdProcess) -> Arc<EtcdStore> {
    let mut options = EtcdOptions::new(vec![etcd.endpoint().to_owned()]);
    options.compaction_interval = None;
    EtcdStore::connect(options).await.unwrap()
}

#[tokio::test]
async fn random_histories_match_the_memory_model() {
    let Some(etcd) = EtcdProcess::start_or_skip() else {
        return;
    };
    model_test::random_histories_match_the_memory_model(store(&etcd).await, 2000).await;
}

#[tokio::test]
async fn crud_compare_and_swap_watch_and_counts_match_the_model() {
    let Some(etcd) = EtcdProcess::start_or_skip() else {
        return;
    };
    let s = store(&etcd).await;
    model_test::crud_and_cas(s.clone()).await;
    // The same store carries on: each check counts from the revision it starts at, under
    // its own keys.
    let s2 = store(&etcd).await;
    model_test::watch_replays_history_then_goes_live(s2).await;
    let etcd2 = EtcdProcess::start_or_skip().unwrap();
    model_test::counts_after(store(&etcd2).await).await;
}

/// kube-apiserver's compaction loop: after two intervals history before the first one's
/// revision is gone from etcd and from the cache, so a watch from there is 410 Gone.
#[tokio::test]
async fn periodic_compaction_makes_old_watches_gone() {
    let Some(etcd) = EtcdProcess::start_or_skip() else {
        return;
    };
    let mut options = EtcdOptions::new(vec![etcd.endpoint().to_owned()]);
    options.compaction_interval = Some(Duration::from_millis(200));
    let s = EtcdStore::connect(options).await.unwrap();
    let first = s.create("/r/a".into(), "1".into()).await.unwrap();
    s.update("/r/a".into(), "2".into(), None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while s.compacted_revision() < first.mod_revision {
        assert!(tokio::time::Instant::now() < deadline, "never compacted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(
        s.watch("/r/", first.mod_revision - 1),
        Err(Error::Compacted { .. })
    ));
    // etcd itself refuses the old revision too.
    let mut kv = s.client().kv_client();
    let old = kv
        .get(
            "/r/a",
            Some(etcd_client::GetOptions::new().with_revision(first.mod_revision)),
        )
        .await;
    assert!(
        old.is_err(),
        "etcd still had revision {}",
        first.mod_revision
    );
    // Writes and watches from now go on.
    let mut w = s.watch("/r/", s.current_revision()).unwrap();
    s.delete("/r/a".into(), None).await.unwrap();
    assert_eq!(w.next().await.unwrap().unwrap().key, "/r/a");
}

/// Two servers on one etcd: a write through one reaches the other's cache and watchers.
#[tokio::test]
async fn a_second_store_on_the_same_etcd_sees_writes_through_its_watch() {
    let Some(etcd) = EtcdProcess::start_or_skip() else {
        return;
    };
    let (a, b) = (store(&etcd).await, store(&etcd).await);
    let mut w = b.watch("/r/", b.current_revision()).unwrap();
    let created = a.create("/r/x".into(), "v".into()).await.unwrap();
    let event = w.next().await.unwrap().unwrap();
    assert_eq!(
        (event.key.as_str(), event.revision),
        ("/r/x", created.mod_revision)
    );
    assert_eq!(b.get("/r/x").unwrap(), Some(created));
    // A stale compare-and-swap through the other server conflicts.
    a.update("/r/x".into(), "w".into(), None).await.unwrap();
    assert!(matches!(
        b.update("/r/x".into(), "z".into(), Some(event.revision))
            .await,
        Err(Error::Conflict { .. })
    ));
}
