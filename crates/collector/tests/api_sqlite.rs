//! The endpoint suite on SQLite, one test per case, plus the metrics endpoint.

mod common;

macro_rules! sqlite_case {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            common::suite::$name(common::sqlite_fixture()).await;
        }
    };
}

crate::for_each_case!(sqlite_case);

#[tokio::test]
async fn metrics_count_events_by_source_requests_and_errors() {
    let f = common::sqlite_fixture();
    common::post(
        &f.app,
        r#"[{"source":"qa-runner","action":"a"},{"source":"qa-runner","action":"b"}]"#,
    )
    .await;
    common::post(&f.app, r#"{"source":"deploy-hooks","action":"a"}"#).await;
    common::post(&f.app, r#"{"source":"","action":"a"}"#).await;
    common::get(&f.app, "/events").await;
    let r = common::get(&f.app, "/metrics").await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(
        r.text
            .contains("collector_events_total{source=\"qa-runner\"} 2"),
        "{}",
        r.text
    );
    assert!(r
        .text
        .contains("collector_events_total{source=\"deploy-hooks\"} 1"));
    assert!(
        r.text
            .contains("collector_request_duration_seconds_count 4"),
        "{}",
        r.text
    );
    assert!(r.text.contains("collector_errors_total 1"));
    assert!(r.text.contains("process_resident_memory_bytes"));
}

#[tokio::test]
async fn readyz_fails_once_shutting_down_while_healthz_stays_ok() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let store = collector::store::Store::Sqlite(
        collector::store::sqlite::SqliteStore::open(dir.path()).unwrap(),
    );
    let flag = Arc::new(AtomicBool::new(false));
    let app = collector::http::router(collector::http::AppState {
        store,
        metrics: Default::default(),
        cache: None,
        max_batch_size: 10,
        max_body_bytes: 1 << 20,
        shutting_down: flag.clone(),
        ingest_limit: Arc::new(tokio::sync::Semaphore::new(8)),
    });
    assert_eq!(common::get(&app, "/readyz").await.status.as_u16(), 200);
    flag.store(true, Ordering::SeqCst);
    assert_eq!(common::get(&app, "/readyz").await.status.as_u16(), 503);
    assert_eq!(common::get(&app, "/healthz").await.status.as_u16(), 200);
}
