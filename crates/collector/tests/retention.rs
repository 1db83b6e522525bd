//! Retention through the running server: expired events go as soon as it starts.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use collector::config::Config;
use collector::event::NewEvent;
use collector::store::{sqlite::SqliteStore, Query, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_deletes_events_older_than_retention_days_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Sqlite(SqliteStore::open(dir.path()).unwrap());
    let at = |days: i64, action: &str| NewEvent {
        source: "s".into(),
        action: action.into(),
        time: Utc::now() - chrono::Duration::days(days),
    };
    store
        .insert(vec![at(10, "expired"), at(8, "expired too"), at(1, "kept")])
        .await
        .unwrap();
    store.close().await;

    let config = Config {
        data_dir: dir.path().to_path_buf(),
        retention_days: 7,
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(collector::server::run_on(config, listener, async move {
        let _ = stopped.await;
    }));

    let reader = Store::Sqlite(SqliteStore::open(dir.path()).unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    let remaining = loop {
        let events = reader
            .list(&Query {
                limit: 10,
                ..Query::default()
            })
            .await
            .unwrap();
        if events.len() == 1 || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        remaining
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        ["kept"]
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    reader.close().await;
}
