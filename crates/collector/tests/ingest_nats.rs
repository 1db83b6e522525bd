//! NATS ingestion against a real nats-server, through the whole server.

mod common;

use std::time::Duration;

use collector::config::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_on_the_subject_are_validated_stored_and_acknowledged() {
    let Some((_nats, url)) = common::start_nats() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        nats_url: Some(url.clone()),
        nats_subject: "collector.events".into(),
        ..Config::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(collector::server::run_on(config, listener, async move {
        let _ = stopped.await;
    }));

    let client = async_nats::connect(&url).await.unwrap();
    let ask = |body: &'static str| {
        let client = client.clone();
        async move {
            let msg = tokio::time::timeout(
                Duration::from_secs(10),
                client.request("collector.events", body.into()),
            )
            .await
            .expect("reply in time")
            .expect("request");
            serde_json::from_slice::<serde_json::Value>(&msg.payload).unwrap()
        }
    };
    // The subscription may not be in place the instant the server task starts: retry the first.
    let mut first = serde_json::Value::Null;
    for _ in 0..50 {
        let c = client.clone();
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            c.request(
                "collector.events",
                r#"{"source":"nats","action":"one"}"#.into(),
            ),
        )
        .await;
        if let Ok(Ok(msg)) = r {
            first = serde_json::from_slice(&msg.payload).unwrap();
            break;
        }
        // "No responders" comes back at once until the subscription exists.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(first[0]["action"], "one", "{first}");
    let batch =
        ask(r#"[{"source":"nats","action":"two"},{"source":"nats","action":"three"}]"#).await;
    assert_eq!(batch.as_array().unwrap().len(), 2);
    let bad = ask(r#"{"source":"","action":"x"}"#).await;
    assert_eq!(bad["field"], "source", "{bad}");

    // Fire-and-forget publishes are stored too.
    client
        .publish(
            "collector.events",
            r#"{"source":"nats","action":"four"}"#.into(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();
    let _ = ask(r#"{"source":"nats","action":"five"}"#).await; // ordered after "four" on the subject

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let store = collector::store::sqlite::SqliteStore::open(dir.path()).unwrap();
    let store = collector::store::Store::Sqlite(store);
    let events = store
        .list(&collector::store::Query {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["five", "four", "three", "two", "one"]);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_store_each_published_event_once() {
    let Some((_nats, url)) = common::start_nats() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut stops = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            nats_url: Some(url.clone()),
            nats_subject: "replicated".into(),
            ..Config::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        servers.push(tokio::spawn(collector::server::run_on(
            config,
            listener,
            async move {
                let _ = stopped.await;
            },
        )));
    }
    let client = async_nats::connect(&url).await.unwrap();
    // Wait until both replicas have subscribed: the server reports its subscribers per subject.
    let mut acked = 0;
    let mut attempts = 0;
    while acked < 20 && attempts < 400 {
        attempts += 1;
        let body = format!(r#"{{"source":"r","action":"{acked}"}}"#);
        match tokio::time::timeout(
            Duration::from_secs(5),
            client.request("replicated", body.into()),
        )
        .await
        {
            Ok(Ok(_)) => acked += 1,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(acked, 20);
    for s in stops {
        let _ = s.send(());
    }
    for s in servers {
        s.await.unwrap().unwrap();
    }
    let store = collector::store::Store::Sqlite(
        collector::store::sqlite::SqliteStore::open(dir.path()).unwrap(),
    );
    let events = store
        .list(&collector::store::Query {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        events.len(),
        20,
        "each message stored exactly once across replicas"
    );
    store.close().await;
}
