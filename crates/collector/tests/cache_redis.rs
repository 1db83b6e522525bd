//! The Redis cache against a real redis-server: hits, invalidation across replicas, outages.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::Utc;
use collector::cache::Cache;
use collector::event::NewEvent;
use collector::http::{router, AppState};
use collector::store::{sqlite::SqliteStore, Store};

fn app(store: Store, cache: Cache) -> axum::Router {
    router(AppState {
        store,
        metrics: Default::default(),
        cache: Some(cache),
        max_batch_size: 10,
        max_body_bytes: 1 << 20,
        shutting_down: Arc::new(AtomicBool::new(false)),
        ingest_limit: Arc::new(tokio::sync::Semaphore::new(
            collector::http::MAX_INGESTS_IN_FLIGHT,
        )),
    })
}

fn actions(r: &common::Resp) -> Vec<String> {
    r.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_pages_are_served_until_a_write_invalidates_them_on_every_replica() {
    let Some((_redis, url)) = common::start_redis() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Sqlite(SqliteStore::open(dir.path()).unwrap());
    invalidation_case(store, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_invalidation_behaves_the_same_on_postgres() {
    let Some((_redis, url)) = common::start_redis() else {
        return;
    };
    let Some(cluster) = common::PgCluster::start() else {
        return;
    };
    let f = common::postgres_fixture(&cluster, "cached").await;
    invalidation_case(f.store, &url).await;
}

/// Two replicas share one store and one Redis.
async fn invalidation_case(store: Store, url: &str) {
    let a = app(store.clone(), Cache::connect(url).await.unwrap());
    let b = app(store.clone(), Cache::connect(url).await.unwrap());

    common::post(&a, r#"{"source":"s","action":"first"}"#).await;
    assert_eq!(actions(&common::get(&b, "/events").await), ["first"]);
    // Written behind the cache's back: a cached page must still be served, proving hits happen.
    store
        .insert(vec![NewEvent {
            source: "s".into(),
            action: "hidden".into(),
            time: Utc::now(),
        }])
        .await
        .unwrap();
    assert_eq!(
        actions(&common::get(&b, "/events").await),
        ["first"],
        "page came from the cache"
    );
    assert_eq!(
        actions(&common::get(&a, "/events").await),
        ["first"],
        "replica a shares the cache"
    );
    // A write through any replica invalidates every replica's view.
    common::post(&a, r#"{"source":"s","action":"second"}"#).await;
    assert_eq!(
        actions(&common::get(&b, "/events").await),
        ["second", "hidden", "first"]
    );
    // Filters and paging are cached under their own keys, next links included.
    let page = common::get(&b, "/events?limit=1").await;
    assert_eq!(actions(&page), ["second"]);
    let again = common::get(&b, "/events?limit=1").await;
    assert_eq!(again.json, page.json);
    assert_eq!(again.headers.get("link"), page.headers.get("link"));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_still_work_when_redis_goes_away() {
    let Some((redis, url)) = common::start_redis() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Sqlite(SqliteStore::open(dir.path()).unwrap());
    let a = app(store.clone(), Cache::connect(&url).await.unwrap());
    common::post(&a, r#"{"source":"s","action":"one"}"#).await;
    drop(redis);
    let r = common::post(&a, r#"{"source":"s","action":"two"}"#).await;
    assert_eq!(r.status.as_u16(), 201, "writes do not depend on the cache");
    assert_eq!(actions(&common::get(&a, "/events").await), ["two", "one"]);
    store.close().await;
}
