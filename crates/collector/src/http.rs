//! The HTTP API: routes, input checks, JSON errors naming the field, and request metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::cache::{Cache, Lookup};
use crate::event::{parse_body, Incoming, InvalidEvent};
use crate::metrics::Metrics;
use crate::store::{self, Cursor, Query, Store};

/// Events per page when the client gives no `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page; bounds the memory one GET can use however many events are stored.
pub const MAX_LIMIT: usize = 1000;
/// Default for `AppState::ingest_limit`: far more than group commit needs to reach full speed,
/// few enough that 128 bodies of MAX_BODY_BYTES (1 MiB by default) bound ingest memory.
pub const MAX_INGESTS_IN_FLIGHT: usize = 128;
/// Built as the article's v2 (cargo feature `article-v2`, the image `collector:v2`): every
/// `POST /events` answers this much later. The article's v2 ships a latency regression that
/// only its metrics reveal ("You deployed v2 at 3:47pm and the latency spike is obvious"); this is
/// that regression, made on purpose and named as such, so the walkthrough's Prometheus has a
/// real spike to find and its canary a real reason to be rolled back. `latest` has none.
pub const ARTICLE_V2_REGRESSION: Duration = if cfg!(feature = "article-v2") {
    Duration::from_millis(100)
} else {
    Duration::ZERO
};
/// How long `/readyz` waits for the store before calling it unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a handler needs; cloned per request (all handles).
#[derive(Clone)]
pub struct AppState {
    /// Where events live.
    pub store: Store,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Optional Redis cache of GET /events pages.
    pub cache: Option<Cache>,
    /// MAX_BATCH_SIZE.
    pub max_batch_size: usize,
    /// MAX_BODY_BYTES.
    pub max_body_bytes: usize,
    /// Set on SIGTERM so `/readyz` fails at once while in-flight work finishes.
    pub shutting_down: Arc<AtomicBool>,
    /// POSTs reading or storing a body at once; bounds memory to about this many bodies
    /// whatever the number of clients (the rest wait before their body is read).
    pub ingest_limit: Arc<Semaphore>,
}

/// What a request did wrong or what failed serving it; rendered once as `{"error", "field"}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body failed validation.
    #[error(transparent)]
    Invalid(#[from] InvalidEvent),
    /// The body is longer than MAX_BODY_BYTES.
    #[error("body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The body could not be read off the connection.
    #[error("cannot read body: {0}")]
    BodyRead(String),
    /// The body is not declared as JSON.
    #[error("content-type must be application/json")]
    UnsupportedMediaType,
    /// A query parameter or path segment is wrong.
    #[error("{message}")]
    BadParam {
        /// Which parameter.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No event has this id.
    #[error("no event with id {0}")]
    NotFound(i64),
    /// Storage failed; the client may retry.
    #[error("storage unavailable")]
    Store(#[from] store::Error),
}

impl ApiError {
    fn bad(field: &str, message: impl Into<String>) -> Self {
        Self::BadParam {
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(InvalidEvent::BatchTooLarge { .. }) | Self::BodyTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::Invalid(_) | Self::BadParam { .. } | Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let field = match &self {
            Self::Invalid(e) => e.field().map(str::to_string),
            Self::BadParam { field, .. } => Some(field.clone()),
            Self::UnsupportedMediaType => Some("content-type".into()),
            _ => None,
        };
        if let Self::Store(e) = &self {
            tracing::error!(error = %e, "storage failed");
        }
        let body = json!({ "error": self.to_string(), "field": field });
        (self.status(), axum::Json(body)).into_response()
    }
}

/// The router; tests drive it with `oneshot`, the server binds it to a socket.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/events", get(list_events).post(post_events))
        .route("/events/{id}", get(get_event))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Times API requests and counts failures; probes and scrapes are left out of the histogram.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let method = req.method().clone();
    let span =
        tracing::debug_span!("request", %method, path = path.as_deref().unwrap_or("unmatched"));
    let response = tracing::Instrument::instrument(next.run(req), span).await;
    let status = response.status();
    if matches!(path.as_deref(), Some("/events") | Some("/events/{id}")) {
        state.metrics.observe_request(start.elapsed());
        if status.is_client_error() || status.is_server_error() {
            state.metrics.record_error();
        }
    }
    tracing::debug!(%method, path = path.as_deref().unwrap_or("unmatched"), status = status.as_u16(),
        micros = start.elapsed().as_micros() as u64, "handled");
    response
}

async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes) {
        return Err(ApiError::BodyTooLarge(state.max_body_bytes));
    }
    if !ARTICLE_V2_REGRESSION.is_zero() {
        // Before the ingest permit: the regression slows each request, not the store.
        tokio::time::sleep(ARTICLE_V2_REGRESSION).await;
    }
    // Closed only if the state is torn down; then there is nothing left to store into.
    let _permit = state
        .ingest_limit
        .acquire()
        .await
        .map_err(|_| ApiError::Store(store::Error::WriterGone))?;
    let bytes = axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                ApiError::BodyTooLarge(state.max_body_bytes)
            } else {
                ApiError::BodyRead(e.to_string())
            }
        })?;
    let incoming = parse_body(&bytes, state.max_batch_size, Utc::now())?;
    let single = matches!(incoming, Incoming::One(_));
    let stored = store_events(&state, incoming.into_events()).await?;
    if single {
        let Some(event) = stored.first() else {
            return Err(ApiError::Store(store::Error::Task(
                "store answered no event".into(),
            )));
        };
        let location = HeaderValue::from_str(&format!("/events/{}", event.id)).ok();
        let mut resp = (StatusCode::CREATED, axum::Json(event)).into_response();
        if let Some(l) = location {
            resp.headers_mut().insert(header::LOCATION, l);
        }
        Ok(resp)
    } else {
        Ok((StatusCode::CREATED, axum::Json(stored)).into_response())
    }
}

/// Stores, counts and invalidates the cache; shared by HTTP and NATS ingestion.
pub async fn store_events(
    state: &AppState,
    events: Vec<crate::event::NewEvent>,
) -> Result<Vec<crate::event::Event>, store::Error> {
    let stored = state.store.insert(events).await?;
    state
        .metrics
        .record_events(stored.iter().map(|e| e.source.as_str()));
    if let Some(cache) = &state.cache {
        // After the commit, so a reader can never cache a page older than this write under
        // the new generation.
        cache.invalidate().await;
    }
    Ok(stored)
}

/// Parsed GET /events parameters, kept alongside the query so the next link repeats them.
struct ListParams {
    query: Query,
    /// Filter parameters as given, re-sent in the next link.
    filters: Vec<(&'static str, String)>,
}

fn parse_list_params(raw: Option<&str>) -> Result<ListParams, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad("query", format!("malformed query string: {e}")))?;
    let mut query = Query {
        limit: DEFAULT_LIMIT,
        ..Query::default()
    };
    let mut filters = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in pairs {
        if !seen.insert(k.clone()) {
            return Err(ApiError::bad(&k, format!("{k} given more than once")));
        }
        match k.as_str() {
            "source" | "action" => {
                if v.is_empty() {
                    return Err(ApiError::bad(&k, format!("{k} must not be empty")));
                }
                let name = if k == "source" { "source" } else { "action" };
                filters.push((name, v.clone()));
                if name == "source" {
                    query.source = Some(v);
                } else {
                    query.action = Some(v);
                }
            }
            "since" | "until" => {
                let t = DateTime::parse_from_rfc3339(&v)
                    .map_err(|_| {
                        ApiError::bad(
                            &k,
                            format!("{k} must be an RFC 3339 time like 2024-05-01T12:00:00Z"),
                        )
                    })?
                    .with_timezone(&Utc);
                if k == "since" {
                    query.since = Some(t);
                    filters.push(("since", v));
                } else {
                    query.until = Some(t);
                    filters.push(("until", v));
                }
            }
            "limit" => {
                query.limit = match v.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                    _ => {
                        return Err(ApiError::bad(
                            "limit",
                            format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                        ))
                    }
                };
            }
            "cursor" => {
                query.cursor = match Cursor::decode(&v) {
                    Some(c) => Some(c),
                    None => {
                        return Err(ApiError::bad(
                            "cursor",
                            "cursor is not one this server handed out",
                        ))
                    }
                };
            }
            other => {
                return Err(ApiError::bad(
                    other,
                    format!("unknown query parameter {other}"),
                ))
            }
        }
    }
    Ok(ListParams { query, filters })
}

async fn list_events(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = parse_list_params(raw.as_deref())?;
    let mut canonical = params.filters.clone();
    canonical.push(("limit", params.query.limit.to_string()));
    if let Some(c) = params.query.cursor {
        canonical.push(("cursor", c.encode()));
    }
    let cache_key = serde_urlencoded::to_string(&canonical).unwrap_or_default();
    let mut generation = None;
    if let Some(cache) = &state.cache {
        match cache.lookup(&cache_key).await {
            // Stored as "<next link>\n<body>" so a hit needs no JSON parsing.
            Lookup::Hit(cached) => {
                if let Some((next, body)) = cached.split_once('\n') {
                    return Ok(json_response(
                        body.to_string(),
                        Some(next).filter(|n| !n.is_empty()),
                    ));
                }
            }
            Lookup::Miss(g) => generation = g,
        }
    }
    let mut query = params.query.clone();
    query.limit += 1;
    let mut events = state.store.list(&query).await?;
    let next = if events.len() > params.query.limit {
        events.truncate(params.query.limit);
        events.last().map(|last| {
            let mut p = params.filters.clone();
            p.push(("limit", params.query.limit.to_string()));
            p.push(("cursor", Cursor::after(last).encode()));
            format!(
                "/events?{}",
                serde_urlencoded::to_string(&p).unwrap_or_default()
            )
        })
    } else {
        None
    };
    let body = json!({ "events": events, "next": next }).to_string();
    if let (Some(cache), Some(generation)) = (&state.cache, generation) {
        let value = format!("{}\n{body}", next.as_deref().unwrap_or(""));
        cache.put_page(generation, &cache_key, &value).await;
    }
    Ok(json_response(body, next.as_deref()))
}

fn json_response(body: String, next: Option<&str>) -> Response {
    // The next link also goes in a Link header, for clients that follow those.
    let mut resp = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(l) = next.and_then(|n| HeaderValue::from_str(&format!("<{n}>; rel=\"next\"")).ok())
    {
        resp.headers_mut().insert(header::LINK, l);
    }
    resp
}

async fn get_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = match id.parse::<i64>() {
        Ok(n) if n > 0 => n,
        _ => return Err(ApiError::bad("id", "id must be a positive whole number")),
    };
    match state.store.get(id).await? {
        Some(e) => Ok(axum::Json(e).into_response()),
        None => Err(ApiError::NotFound(id)),
    }
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutting_down.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "shutting down" })),
        )
            .into_response();
    }
    match tokio::time::timeout(PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => {
            axum::Json(json!({ "status": "ready", "store": state.store.kind() })).into_response()
        }
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "storage unreachable", "error": e.to_string() })),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "storage timed out" })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
