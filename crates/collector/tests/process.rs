//! The real binary: SIGTERM under load, restarts, config errors and log format.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use common::{free_port, wait_for_port, ChildGuard};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn start(data: &Path, port: u16, extra: &[(&str, &str)]) -> ChildGuard {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_collector"));
    cmd.env_clear()
        .env("DATA_DIR", data)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = ChildGuard(cmd.spawn().expect("start collector"));
    assert!(
        wait_for_port(port, Duration::from_secs(20)),
        "collector did not start listening"
    );
    child
}

fn sigterm(child: &ChildGuard) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
}

async fn request(
    c: &HttpClient,
    method: &str,
    url: &str,
    body: Option<String>,
) -> Option<(u16, serde_json::Value)> {
    let mut req = hyper::Request::builder().method(method).uri(url);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .ok()?;
    let resp = c.request(req).await.ok()?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    Some((
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    ))
}

async fn all_events(c: &HttpClient, port: u16) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    let mut uri = "/events?limit=1000".to_string();
    loop {
        let (status, page) = request(c, "GET", &format!("http://127.0.0.1:{port}{uri}"), None)
            .await
            .expect("GET");
        assert_eq!(status, 200);
        for e in page["events"].as_array().unwrap() {
            out.insert(
                e["id"].as_i64().unwrap(),
                e["action"].as_str().unwrap().to_string(),
            );
        }
        match page["next"].as_str() {
            Some(n) => uri = n.to_string(),
            None => return out,
        }
    }
}

fn wait_exit(child: &mut ChildGuard, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(s)) = child.0.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_event_and_restart_keeps_them() {
    sigterm_under_load(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_on_postgres_loses_no_acknowledged_event() {
    let Some(cluster) = common::PgCluster::start() else {
        return;
    };
    let url = cluster.create_db("sigterm").await;
    sigterm_under_load(&[("POSTGRES_CONNECTION_STRING", &url)]).await;
}

/// Posts from 16 clients, sends SIGTERM mid-run, restarts on the same storage and checks that
/// every event that got a 201 is there.
async fn sigterm_under_load(extra: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = start(dir.path(), port, extra);
    let c = client();
    let acked = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (c, acked) = (c.clone(), acked.clone());
            tokio::spawn(async move {
                let url = format!("http://127.0.0.1:{port}/events");
                for i in 0.. {
                    if Instant::now() > deadline {
                        break;
                    }
                    let action = format!("w{w}-{i}");
                    let body = format!(r#"{{"source":"load","action":"{action}"}}"#);
                    match request(&c, "POST", &url, Some(body)).await {
                        Some((201, e)) => {
                            acked
                                .lock()
                                .unwrap()
                                .insert(e["id"].as_i64().unwrap(), action);
                        }
                        Some((status, e)) => panic!("unexpected {status}: {e}"),
                        // Refused after shutdown began: not acknowledged, may or may not be stored.
                        None => break,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sigterm(&child);
    for w in workers {
        w.await.unwrap();
    }
    let status =
        wait_exit(&mut child, Duration::from_secs(20)).expect("collector exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "load actually ran: {}", acked.len());

    let port2 = free_port();
    let _again = start(dir.path(), port2, extra);
    let stored = all_events(&client(), port2).await;
    for (id, action) in &acked {
        assert_eq!(stored.get(id), Some(action), "acknowledged event {id} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_at_once_on_sigterm_while_requests_still_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = start(dir.path(), port, &[("SHUTDOWN_DELAY_SECONDS", "2")]);
    let c = client();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(
        request(&c, "GET", &format!("{base}/readyz"), None)
            .await
            .unwrap()
            .0,
        200
    );
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        request(&c, "GET", &format!("{base}/readyz"), None)
            .await
            .unwrap()
            .0,
        503
    );
    assert_eq!(
        request(&c, "GET", &format!("{base}/healthz"), None)
            .await
            .unwrap()
            .0,
        200
    );
    let posted = request(
        &c,
        "POST",
        &format!("{base}/events"),
        Some(r#"{"source":"a","action":"b"}"#.into()),
    )
    .await;
    assert_eq!(
        posted.unwrap().0,
        201,
        "still serving during the shutdown delay"
    );
    drop(c);
    let status = wait_exit(&mut child, Duration::from_secs(20)).expect("exits after the delay");
    assert!(status.success());
}

#[test]
fn bad_config_value_fails_at_start_with_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_collector"))
        .env_clear()
        .env("RETENTION_DAYS", "ten")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("RETENTION_DAYS") && stderr.contains("ten"),
        "{stderr}"
    );
}

#[test]
fn logs_are_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = start(dir.path(), port, &[]);
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20))
        .expect("exits")
        .success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.lines().count() >= 2, "{stderr}");
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}
