//! The kubelet's log endpoint, `GET /containerLogs/{namespace}/{pod}/{container}`, which
//! the API server proxies `pods/{name}/log` to; it also serves the streaming endpoints
//! of `streaming.rs`. All of it over HTTPS, authenticated and authorized (`nodeauth.rs`).

use super::pods::{LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_NAME, LABEL_NAMESPACE};
use super::Shared;
use crate::logs::{self, LogOptions};
use crate::runtime::ContainerState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Serves the endpoint until the process ends.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    auth: Arc<super::nodeauth::NodeAuth>,
) {
    let app = axum::Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            axum::routing::get(container_logs),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/stats/summary",
            axum::routing::get(super::summary::handler),
        )
        .merge(super::streaming::routes())
        .merge(super::metrics::routes())
        .with_state(shared);
    super::nodeauth::serve(listener, tls, super::nodeauth::protect(app, auth)).await;
}

fn text(code: StatusCode, msg: String) -> Response {
    (code, [("content-type", "text/plain")], msg).into_response()
}

async fn container_logs(
    State(shared): State<Arc<Shared>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let previous = flag("previous");
    let mut attempts: Vec<(u32, String, std::path::PathBuf)> = shared
        .runtime
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| {
            let spec = s.spec?;
            let l = &spec.labels;
            (l.get(LABEL_NAMESPACE) == Some(&namespace)
                && l.get(LABEL_NAME) == Some(&pod)
                && l.get(LABEL_CONTAINER) == Some(&container))
            .then_some(())?;
            Some((
                l.get(LABEL_ATTEMPT)?.parse().ok()?,
                s.id,
                spec.log_path.clone(),
            ))
        })
        .collect();
    attempts.sort();
    let chosen = if previous {
        attempts.len().checked_sub(2).map(|i| attempts[i].clone())
    } else {
        attempts.last().cloned()
    };
    let Some((_, id, path)) = chosen else {
        let msg = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            )
        };
        return text(StatusCode::BAD_REQUEST, msg);
    };
    let since = q
        .get("sinceSeconds")
        .and_then(|s| s.parse::<i64>().ok())
        // Any int64 may arrive; past chrono's range it means "since the beginning".
        .map(|s| {
            chrono::Duration::try_seconds(s)
                .and_then(|d| Utc::now().checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        })
        .or_else(|| {
            q.get("sinceTime")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        });
    let opts = LogOptions {
        tail: q
            .get("tailLines")
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .map(|n| n as usize),
        since,
        timestamps: flag("timestamps"),
    };
    if !flag("follow") {
        let timestamps = opts.timestamps;
        return match tokio::task::spawn_blocking(move || logs::read(&path, &opts)).await {
            Ok(Ok(entries)) => {
                let body: Vec<u8> = entries.iter().flat_map(|e| e.render(timestamps)).collect();
                (StatusCode::OK, [("content-type", "text/plain")], body).into_response()
            }
            Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let runtime = shared.runtime.clone();
    tokio::spawn(async move {
        let finished = move || {
            !matches!(
                runtime.state(&id).map(|s| s.state),
                Ok(ContainerState::Running | ContainerState::Created)
            )
        };
        if let Err(e) = logs::follow(path, opts, tx, finished).await {
            tracing::debug!(error = %e, "following log");
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
