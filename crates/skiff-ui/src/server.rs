//! The local web server: the page, its two assets, the server-sent events and the YAML view.
//! It listens on loopback only and answers only a browser that holds the session token
//! printed at start (a cookie after the first visit) and names this address in `Host`, so
//! neither another local user nor a web page rebinding a DNS name to 127.0.0.1 can read
//! the cluster with the viewer's credentials.

use crate::live::Hub;
use crate::model::Key;
use crate::render::escape;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");
const COOKIE: &str = "skiff-ui";

/// What the handlers share.
pub struct App {
    pub hub: Arc<Hub>,
    /// The session token (in the printed URL, then a cookie).
    pub token: String,
    /// The `Host` values a browser on this machine sends.
    pub hosts: [String; 2],
    /// Shown in the page header: the server and user of the kubeconfig.
    pub context: String,
}

/// The router of the UI.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(script))
        .route("/assets/app.css", get(style))
        .route("/events", get(events))
        .route("/object/{kind}/{namespace}/{name}", get(object))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Equal in constant time, so the token cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

/// The Host check, the token check, and the security headers on every answer.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !app.hosts.iter().any(|h| h == host) {
        return (
            StatusCode::FORBIDDEN,
            "skiff ui answers only http://127.0.0.1 or http://localhost on its own port\n",
        )
            .into_response();
    }
    let token = app.token.as_bytes();
    let mut response = if cookie_token(request.headers()).is_some_and(|t| same(t.as_bytes(), token))
    {
        next.run(request).await
    } else if query_token(request.uri().query()).is_some_and(|t| same(t.as_bytes(), token)) {
        // The printed URL: keep the token in a cookie and drop it from the address bar.
        let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            app.token
        )) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "open the URL `skiff ui` printed (it holds this session's token)\n",
        )
            .into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn index(State(app): State<Arc<App>>) -> Response {
    let page = INDEX.replace("{{context}}", &escape(&app.context));
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

#[derive(serde::Deserialize)]
struct ObjectPath {
    kind: String,
    namespace: String,
    name: String,
}

/// The YAML of one object, desired and actual side by side, as an HTML fragment.
async fn object(State(app): State<Arc<App>>, Path(p): Path<ObjectPath>) -> Response {
    let key = Key::parse_path(&format!("{}/{}/{}", p.kind, p.namespace, p.name));
    match key.and_then(|k| app.hub.yaml(&k)) {
        Some(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        None => (StatusCode::NOT_FOUND, "no such object in the view\n").into_response(),
    }
}

/// Server-sent events: a snapshot, then each batch of changes; a snapshot again when this
/// page fell behind. The browser's EventSource reconnects by itself and gets a snapshot.
async fn events(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (snapshot, rx) = app.hub.subscribe();
    let hub = app.hub.clone();
    let stream = futures::stream::unfold(
        (Some(snapshot), rx, hub),
        |(first, mut rx, hub)| async move {
            let batch = |data: &str| Ok(Event::default().event("batch").data(data));
            if let Some(s) = first {
                return Some((batch(&s), (None, rx, hub)));
            }
            match rx.recv().await {
                Ok(msg) => Some((batch(&msg), (None, rx, hub))),
                Err(RecvError::Lagged(_)) => {
                    let (s, rx) = hub.subscribe();
                    Some((batch(&s), (None, rx, hub)))
                }
                Err(RecvError::Closed) => None,
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_cookie_or_the_query() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; skiff-ui=tok; c=d"),
        );
        assert_eq!(cookie_token(&headers), Some("tok"));
        assert_eq!(query_token(Some("x=1&token=abc")), Some("abc"));
        assert_eq!(query_token(None), None);
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
