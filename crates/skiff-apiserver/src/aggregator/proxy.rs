//! Forwards a request for a remote group-version to its APIService's backend, as
//! kube-aggregator's proxy handler does: method, path, query, headers and body passed
//! through, the caller named in `X-Remote-User`/`X-Remote-Group`, the response (a watch
//! stream, or an upgraded connection) streamed back.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Version};
use axum::response::{IntoResponse, Response};

use super::status::{self, Backend, ServiceRef};
use super::Route;
use crate::handler::Api;
use crate::request::Target;
use skiff_apimachinery::user::UserInfo;

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1), and are not
/// forwarded; `Connection` and `Upgrade` are, for an upgrade.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Upstream's `http.Error`: a plain-text body with a trailing newline.
fn plain(code: StatusCode, message: &str) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{message}\n"),
    )
        .into_response()
}

/// Answers `req` from the backend of `route`.
pub async fn forward(api: &Api, route: &Route, user: &UserInfo, mut req: Request) -> Response {
    if !route.available() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "service unavailable");
    }
    let client = match &route.client {
        Ok(c) => c.clone(),
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let pick = api.aggregator.pick.fetch_add(1, Ordering::Relaxed);
    let backend = match resolve_backend(api, &route.service, pick) {
        Ok(b) => b,
        Err(why) => {
            let why = why.message;
            tracing::warn!(apiservice = %route.name, %why, "cannot resolve the APIService's service");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "service unavailable");
        }
    };
    let upgrade = is_upgrade(req.headers());
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri: hyper::Uri = match format!("{}{path}", backend.base_url()).parse() {
        Ok(u) => u,
        Err(e) => return plain(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let mut out = hyper::Request::new(if upgrade { Body::empty() } else { body });
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.version_mut() = Version::HTTP_11;
    *out.headers_mut() = request_headers(parts.headers, upgrade, user);
    let mut resp = match client.request(out).await {
        Ok(r) => r,
        Err(e) => {
            let why = error_chain(&e);
            tracing::debug!(apiservice = %route.name, error = %why, "proxying failed");
            return plain(StatusCode::SERVICE_UNAVAILABLE, &why);
        }
    };
    if let (Some(client_side), StatusCode::SWITCHING_PROTOCOLS) = (on_upgrade, resp.status()) {
        let backend_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match futures::future::try_join(client_side, backend_side).await {
                Ok((a, b)) => {
                    let mut a = hyper_util::rt::TokioIo::new(a);
                    let mut b = hyper_util::rt::TokioIo::new(b);
                    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                }
                Err(e) => tracing::debug!(error = %e, "upgrading a proxied connection failed"),
            }
        });
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    let (mut parts, body) = resp.into_parts();
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    Response::from_parts(parts, Body::new(body))
}

/// The headers sent on: the caller's, without hop-by-hop ones, its credentials or identity
/// claims, with the aggregator's statement of who it is (`SetAuthProxyHeaders`).
fn request_headers(mut headers: HeaderMap, upgrade: bool, user: &UserInfo) -> HeaderMap {
    for h in HOP_BY_HOP {
        if !(upgrade && (h == "connection" || h == "upgrade")) {
            headers.remove(h);
        }
    }
    headers.remove(header::HOST);
    headers.remove(header::AUTHORIZATION);
    let claims: Vec<header::HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            k.starts_with("x-remote-") || k.starts_with("impersonate-")
        })
        .cloned()
        .collect();
    for k in claims {
        headers.remove(k);
    }
    // Names and groups come from a verified credential, but a value a header cannot carry
    // is dropped rather than sent mangled.
    if let Ok(v) = HeaderValue::from_str(&user.username) {
        headers.insert("x-remote-user", v);
    }
    for g in &user.groups {
        if let Ok(v) = HeaderValue::from_str(g) {
            headers.append("x-remote-group", v);
        }
    }
    // Extra keys are percent-encoded into the header name, as upstream's requestheader
    // authenticator expects (`X-Remote-Extra-<url.PathEscape(key)>`).
    for (key, values) in &user.extra {
        let name = format!("x-remote-extra-{}", extra_key_escape(key));
        let Ok(name) = header::HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.append(name.clone(), v);
            }
        }
    }
    headers
}

/// Go's `url.PathEscape` of an extra key, lowercased as HTTP/2 header names must be
/// (upstream unescapes and lowercases keys on the receiving side).
fn extra_key_escape(key: &str) -> String {
    let mut out = String::new();
    for b in key.to_ascii_lowercase().bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a request asks to switch protocols (`kubectl exec`, `port-forward`).
fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// An error with its causes, as Go's wrapped errors read (`dial tcp ...: connection
/// refused`).
pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Reads the Service and Endpoints named by `svc` and picks a backend, as upstream's
/// service resolver does for each request; the condition says why there is none.
pub(super) fn resolve_backend(
    api: &Api,
    svc: &ServiceRef,
    pick: usize,
) -> Result<Backend, status::Condition> {
    let read = |plural: &str| -> Option<serde_json::Value> {
        let resource = api.registry.get("", "v1", plural)?;
        api.get(&Target {
            resource,
            namespace: Some(svc.namespace.clone()),
            name: Some(svc.name.clone()),
            subresource: None,
        })
        .ok()
    };
    let service = read("services");
    let endpoints = read("endpoints");
    status::check_service(svc, service.as_ref(), endpoints.as_ref(), pick)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_identity_claims_are_replaced_by_the_aggregators() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        h.insert("x-remote-user", HeaderValue::from_static("mallory"));
        h.insert("x-remote-extra-scopes", HeaderValue::from_static("all"));
        h.insert("impersonate-user", HeaderValue::from_static("root"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        let user = UserInfo {
            username: "intern".into(),
            groups: vec!["interns".into(), "system:authenticated".into()],
            extra: [("example.com/team".to_owned(), vec!["blue".to_owned()])].into(),
            ..UserInfo::default()
        };
        let out = request_headers(h, false, &user);
        assert!(out.get("authorization").is_none());
        assert_eq!(out["x-remote-extra-example.com%2Fteam"], "blue");
        assert!(out.get("x-remote-extra-scopes").is_none());
        assert!(out.get("impersonate-user").is_none());
        assert!(out.get("connection").is_none());
        assert_eq!(out["x-remote-user"], "intern");
        let groups: Vec<&str> = out
            .get_all("x-remote-group")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(groups, ["interns", "system:authenticated"]);
        assert_eq!(out["accept"], "application/json");
    }

    #[test]
    fn upgrades_keep_their_connection_and_upgrade_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        let out = request_headers(h, true, &UserInfo::cluster_admin());
        assert_eq!(out["upgrade"], "websocket");
        assert_eq!(out["connection"], "Upgrade");
    }
}
