//! etcd killed under the store: writes and reads that must be current fail fast as
//! `Unavailable` (the apiserver's 504), reads at any revision are still answered from the
//! watch cache, and once etcd is back the same store works again by itself.

use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_etcd::testing::EtcdProcess;
use skiff_etcd::{EtcdOptions, EtcdStore};
use skiff_store::{Error, Store};

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_is_unavailable_and_the_store_recovers() {
    let Some(mut etcd) = EtcdProcess::start_or_skip() else {
        return;
    };
    let mut options = EtcdOptions::new(vec![etcd.endpoint().to_owned()]);
    options.compaction_interval = None;
    options.request_timeout = Duration::from_secs(5);
    let store = EtcdStore::connect(options).await.unwrap();
    store
        .create("/registry/a".into(), Bytes::from_static(b"1"))
        .await
        .unwrap();
    store.consistent_read().unwrap();

    tokio::task::block_in_place(|| etcd.kill());
    let started = Instant::now();
    let err = store
        .create("/registry/b".into(), Bytes::from_static(b"2"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "a write to a dead etcd took {:?}",
        started.elapsed()
    );
    // The cache notices its watch is gone: it no longer vouches for being current...
    wait_until("the cache refuses consistent reads", || {
        matches!(store.consistent_read(), Err(Error::Unavailable(_)))
    })
    .await;
    // ...but what it holds is still there for reads at any revision.
    assert_eq!(
        store.get("/registry/a").unwrap().map(|kv| kv.value),
        Some(Bytes::from_static(b"1"))
    );

    tokio::task::block_in_place(|| etcd.restart());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store
            .create("/registry/b".into(), Bytes::from_static(b"2"))
            .await
        {
            Ok(_) => break,
            Err(Error::Unavailable(why)) if Instant::now() < deadline => {
                eprintln!("still unavailable: {why}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("after etcd came back: {e}"),
        }
    }
    wait_until("the cache's watch is back", || {
        store.consistent_read().is_ok()
    })
    .await;
    // Acknowledged, so the cache holds it (read your writes).
    assert!(store.get("/registry/b").unwrap().is_some());
}
