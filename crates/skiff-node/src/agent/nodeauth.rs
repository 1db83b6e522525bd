//! The kubelet port's security (decision 0034): HTTPS only, every request authenticated and
//! authorized as the kubelet's webhook modes do it.
//!
//! - **TLS**: the serving certificate from `servingcert`; client certificates are asked for
//!   and, when given, verified against the cluster CA (the kubelet's `--client-ca-file`).
//! - **Authentication**: a verified client certificate names the user (CN, O as groups),
//!   else an `Authorization: Bearer` token, else (for a WebSocket upgrade) a token in a
//!   `base64url.bearer.authorization.k8s.io.<token>` subprotocol, is checked with a
//!   TokenReview against the API server, its answer cached two minutes (the kubelet's
//!   `authentication.webhook.cacheTTL`).
//!   Anything else is 401 `Unauthorized`: there is no anonymous access.
//! - **Authorization**: a SubjectAccessReview for the node resource, with the kubelet's
//!   attribute mapping ([`attributes`]); allowed answers cached five minutes, denials thirty
//!   seconds (`cacheAuthorizedTTL`, `cacheUnauthorizedTTL`). A denial is 403 with the
//!   kubelet's `Forbidden (user=..., verb=..., resource=nodes, subresource(s)=[...])`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use rustls::pki_types::CertificateDer;
use skiff_apimachinery::user::UserInfo;

/// How long a TokenReview's answer is kept (the kubelet's default).
const TOKEN_TTL: Duration = Duration::from_secs(120);
/// How long an allowed SubjectAccessReview is kept.
const ALLOWED_TTL: Duration = Duration::from_secs(300);
/// How long a denied SubjectAccessReview is kept.
const DENIED_TTL: Duration = Duration::from_secs(30);
/// Entries a cache holds before expired ones are dropped (and, if still full, all).
const CACHE_SIZE: usize = 4096;

/// The identity a connection's verified client certificate names, if any.
#[derive(Clone)]
struct PeerUser(Option<Arc<UserInfo>>);

/// A small map whose entries expire.
struct Cache<V> {
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> Cache<V> {
    fn new() -> Self {
        Cache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: String, value: V, ttl: Duration) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_SIZE {
            let now = Instant::now();
            entries.retain(|_, (until, _)| *until > now);
            if entries.len() >= CACHE_SIZE {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now() + ttl, value));
    }
}

/// Authentication and authorization of the kubelet port, through the API server.
pub struct NodeAuth {
    client: kube::Client,
    node_name: String,
    /// TokenReview answers by the token's SHA-256: the user, or `None` when refused.
    tokens: Cache<Option<Arc<UserInfo>>>,
    /// SubjectAccessReview answers by user and attributes.
    decisions: Cache<bool>,
}

/// What a request asks of the node, in RBAC terms: its verb and `nodes` subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `create`, `update`, `patch`, `delete`, or empty for other methods.
    pub verb: &'static str,
    /// The `nodes` subresource: `proxy`, `stats`, `metrics`, `log` or `spec`.
    pub subresource: &'static str,
}

/// Whether `path` is `base` or below it, as the kubelet's `isSubpath`.
fn is_subpath(path: &str, base: &str) -> bool {
    path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The kubelet's `GetRequestAttributes`: the verb from the HTTP method (an unknown method
/// has none, which no rule grants), subresource `stats`, `metrics`, `log` or `spec` for
/// those paths and `proxy` for everything else (logs of containers, exec, attach,
/// port-forward, run, health).
pub fn attributes(method: &Method, path: &str) -> Attributes {
    let verb = match *method {
        Method::POST => "create",
        Method::GET => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    };
    let subresource = [
        ("/stats", "stats"),
        ("/metrics", "metrics"),
        ("/logs", "log"),
        ("/spec", "spec"),
    ]
    .iter()
    .find(|(base, _)| is_subpath(path, base))
    .map_or("proxy", |(_, sub)| sub);
    Attributes { verb, subresource }
}

/// The kubelet's 403 text (Go's `%v` of a string slice is `[a b]`).
pub fn forbidden_message(user: &str, a: &Attributes) -> String {
    format!(
        "Forbidden (user={user}, verb={}, resource=nodes, subresource(s)=[{}])\n",
        a.verb, a.subresource
    )
}

/// The bearer token of an `Authorization` header value, as upstream's bearer-token
/// authenticator reads it.
fn bearer(value: &str) -> Option<&str> {
    let mut parts = value.trim().splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The subprotocol prefix of a bearer token sent by a WebSocket client that cannot set
/// headers (a browser): `base64url.bearer.authorization.k8s.io.<token in unpadded
/// base64url>`.
const BEARER_PROTOCOL_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// Upstream's websocket `ProtocolAuthenticator` reading of a request: for a WebSocket
/// upgrade, the token in a `base64url.bearer.authorization.k8s.io.` subprotocol and the
/// other subprotocols (what the header keeps once the token is accepted, so it is never
/// echoed back). `Ok(None)` when there is no such token; `Err` with upstream's reasons
/// for a malformed one.
fn websocket_token(headers: &HeaderMap) -> Result<Option<(String, String)>, &'static str> {
    let is_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("upgrade"));
    let is_websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    if !is_upgrade || !is_websocket {
        return Ok(None);
    }
    let mut token: Option<String> = None;
    let mut others: Vec<&str> = Vec::new();
    for value in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        let Ok(value) = value.to_str() else { continue };
        for protocol in value.split(',').map(str::trim) {
            let Some(encoded) = protocol.strip_prefix(BEARER_PROTOCOL_PREFIX) else {
                others.push(protocol);
                continue;
            };
            if token.is_some() {
                return Err("multiple base64.bearer.authorization tokens specified");
            }
            use base64::Engine;
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .map_err(|_| "invalid base64.bearer.authorization token encoding")?;
            token = Some(
                String::from_utf8(decoded)
                    .map_err(|_| "invalid base64.bearer.authorization token")?,
            );
        }
    }
    match token {
        Some(t) if !t.is_empty() && others.is_empty() => Err("missing additional subprotocol"),
        Some(t) if !t.is_empty() => Ok(Some((t, others.join(",")))),
        _ => Ok(None),
    }
}

fn text(code: StatusCode, msg: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

impl NodeAuth {
    /// Reviews through `client` for the node `node_name`.
    pub fn new(client: kube::Client, node_name: String) -> NodeAuth {
        NodeAuth {
            client,
            node_name,
            tokens: Cache::new(),
            decisions: Cache::new(),
        }
    }

    /// The user of a bearer token, from the cache or a TokenReview.
    async fn review_token(&self, token: &str) -> Result<Option<Arc<UserInfo>>, kube::Error> {
        use sha2::Digest;
        let key = format!("{:x}", sha2::Sha256::digest(token.as_bytes()));
        if let Some(user) = self.tokens.get(&key) {
            return Ok(user);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        let user = answer
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .map(|u| {
                Arc::new(UserInfo {
                    username: u.username.unwrap_or_default(),
                    uid: u.uid.unwrap_or_default(),
                    groups: u.groups.unwrap_or_default(),
                    extra: u.extra.unwrap_or_default().into_iter().collect(),
                })
            });
        self.tokens.put(key, user.clone(), TOKEN_TTL);
        Ok(user)
    }

    /// Whether `user` may do `a` on this node, from the cache or a SubjectAccessReview.
    async fn review_access(&self, user: &UserInfo, a: &Attributes) -> Result<bool, kube::Error> {
        let key = serde_json::json!([user, a.verb, a.subresource]).to_string();
        if let Some(allowed) = self.decisions.get(&key) {
            return Ok(allowed);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.username.clone()),
                uid: Some(user.uid.clone()).filter(|u| !u.is_empty()),
                groups: Some(user.groups.clone()),
                extra: Some(user.extra.clone().into_iter().collect())
                    .filter(|e: &std::collections::BTreeMap<_, _>| !e.is_empty()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(a.verb.into()),
                    version: Some("v1".into()),
                    resource: Some("nodes".into()),
                    subresource: Some(a.subresource.into()),
                    name: Some(self.node_name.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        let ttl = if allowed { ALLOWED_TTL } else { DENIED_TTL };
        self.decisions.put(key, allowed, ttl);
        Ok(allowed)
    }
}

/// The filter every request of the kubelet port passes, as the kubelet's
/// `InstallAuthFilter`.
async fn guard(State(auth): State<Arc<NodeAuth>>, mut req: Request, next: Next) -> Response {
    let from_certificate = req.extensions().get::<PeerUser>().and_then(|p| p.0.clone());
    let user = match from_certificate {
        Some(user) => user,
        None => {
            let header_token = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer)
                .map(str::to_string);
            // The kubelet's union: the Authorization header, then a WebSocket
            // subprotocol token (kept out of the protocols echoed back once accepted).
            let (token, keep_protocols) = match header_token {
                Some(t) => (t, None),
                None => match websocket_token(req.headers()) {
                    Ok(Some((t, others))) => (t, Some(others)),
                    Ok(None) => return text(StatusCode::UNAUTHORIZED, "Unauthorized".into()),
                    Err(why) => {
                        tracing::debug!(reason = why, "kubelet port: websocket token refused");
                        return text(StatusCode::UNAUTHORIZED, "Unauthorized".into());
                    }
                },
            };
            match auth.review_token(&token).await {
                Ok(Some(user)) => {
                    if let Some(others) = keep_protocols {
                        match header::HeaderValue::from_str(&others) {
                            Ok(v) => {
                                req.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, v);
                            }
                            Err(_) => {
                                req.headers_mut().remove(header::SEC_WEBSOCKET_PROTOCOL);
                            }
                        }
                    }
                    user
                }
                Ok(None) => return text(StatusCode::UNAUTHORIZED, "Unauthorized".into()),
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet port: TokenReview failed");
                    return text(StatusCode::UNAUTHORIZED, "Unauthorized".into());
                }
            }
        }
    };
    let attrs = attributes(req.method(), req.uri().path());
    match auth.review_access(&user, &attrs).await {
        Ok(true) => next.run(req).await,
        Ok(false) => text(
            StatusCode::FORBIDDEN,
            forbidden_message(&user.username, &attrs),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "kubelet port: SubjectAccessReview failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "Authorization error (user={}, verb={}, resource=nodes, subresource={})",
                    user.username, attrs.verb, attrs.subresource
                ),
            )
        }
    }
}

/// `router` behind authentication and authorization.
pub fn protect(router: axum::Router, auth: Arc<NodeAuth>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(auth, guard))
}

/// The TLS settings of the kubelet port: the serving certificate from `resolver`, client
/// certificates optional and verified against `ca` (DER; none means tokens only).
pub fn server_config(
    ca: &[Vec<u8>],
    resolver: Arc<super::servingcert::Resolver>,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for der in ca {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| format!("cluster CA: {e}"))?;
    }
    let verifier = if roots.is_empty() {
        rustls::server::WebPkiClientVerifier::no_client_auth()
    } else {
        rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))?
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts TLS connections on `listener` and serves `router` (already [`protect`]ed) on
/// them, with the verified client certificate's user on every request.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: axum::Router,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (tcp, peer): (tokio::net::TcpStream, SocketAddr) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "kubelet port: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "kubelet port: TLS handshake failed");
                    return;
                }
            };
            let user = PeerUser(
                skiff_auth::x509::user_from_peer_chain(tls.get_ref().1.peer_certificates())
                    .map(Arc::new),
            );
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(user.clone());
                    // An axum Router is always ready: no poll_ready needed.
                    let mut router = router.clone();
                    async move { tower_service::Service::call(&mut router, req).await }
                },
            );
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "kubelet port: connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_as_the_kubelet_maps_them() {
        let cases = [
            (Method::GET, "/containerLogs/ns/pod/c", "get", "proxy"),
            (Method::POST, "/exec/ns/pod/c", "create", "proxy"),
            (Method::GET, "/exec/ns/pod/c", "get", "proxy"),
            (Method::POST, "/portForward/ns/pod", "create", "proxy"),
            (Method::POST, "/run/ns/pod/c", "create", "proxy"),
            (Method::GET, "/healthz", "get", "proxy"),
            (Method::GET, "/stats/summary", "get", "stats"),
            (Method::GET, "/stats", "get", "stats"),
            (Method::GET, "/stats/", "get", "stats"),
            (Method::GET, "/statsfoo", "get", "proxy"),
            (Method::GET, "/metrics", "get", "metrics"),
            (Method::GET, "/metrics/cadvisor", "get", "metrics"),
            (Method::GET, "/metricsx", "get", "proxy"),
            (Method::GET, "/logs/syslog", "get", "log"),
            (Method::GET, "/spec/", "get", "spec"),
            (Method::PUT, "/pods", "update", "proxy"),
            (Method::PATCH, "/pods", "patch", "proxy"),
            (Method::DELETE, "/pods", "delete", "proxy"),
            (Method::HEAD, "/pods", "", "proxy"),
        ];
        for (method, path, verb, subresource) in cases {
            assert_eq!(
                attributes(&method, path),
                Attributes { verb, subresource },
                "{method} {path}"
            );
        }
    }

    #[test]
    fn the_kubelets_forbidden_text() {
        let a = attributes(&Method::GET, "/containerLogs/default/db/db");
        assert_eq!(
            forbidden_message("system:serviceaccount:default:reader", &a),
            "Forbidden (user=system:serviceaccount:default:reader, verb=get, resource=nodes, subresource(s)=[proxy])\n"
        );
    }

    #[test]
    fn bearer_tokens_as_upstream_reads_them() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("  Bearer abc  "), Some("abc"));
        assert_eq!(bearer("Bearer abc def"), Some("abc"));
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Basic abc"), None);
    }

    #[test]
    fn websocket_subprotocol_tokens_as_upstream_reads_them() {
        fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(
                    header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    header::HeaderValue::from_str(v).unwrap(),
                );
            }
            h
        }
        let ws = [
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "websocket"),
        ];
        let with = |protocols: &[&str]| {
            let mut pairs = ws.to_vec();
            pairs.extend(protocols.iter().map(|p| ("Sec-WebSocket-Protocol", *p)));
            headers(&pairs)
        };
        // "token" in unpadded base64url is dG9rZW4.
        assert_eq!(
            websocket_token(&with(&[
                "base64url.bearer.authorization.k8s.io.dG9rZW4, v5.channel.k8s.io"
            ])),
            Ok(Some(("token".into(), "v5.channel.k8s.io".into())))
        );
        // The header may repeat; other protocols keep their order.
        assert_eq!(
            websocket_token(&with(&[
                "v5.channel.k8s.io",
                "base64url.bearer.authorization.k8s.io.dG9rZW4",
                "v4.channel.k8s.io"
            ])),
            Ok(Some((
                "token".into(),
                "v5.channel.k8s.io,v4.channel.k8s.io".into()
            )))
        );
        assert_eq!(
            websocket_token(&with(&["base64url.bearer.authorization.k8s.io.dG9rZW4"])),
            Err("missing additional subprotocol")
        );
        assert_eq!(
            websocket_token(&with(&[
                "base64url.bearer.authorization.k8s.io.dG9rZW4,base64url.bearer.authorization.k8s.io.dG9rZW4,v5.channel.k8s.io"
            ])),
            Err("multiple base64.bearer.authorization tokens specified")
        );
        assert_eq!(
            websocket_token(&with(&[
                "base64url.bearer.authorization.k8s.io.dG9rZW4=, v5.channel.k8s.io"
            ])),
            Err("invalid base64.bearer.authorization token encoding")
        );
        assert_eq!(
            websocket_token(&with(&[
                "base64url.bearer.authorization.k8s.io._w, v5.channel.k8s.io"
            ])),
            Err("invalid base64.bearer.authorization token")
        );
        assert_eq!(websocket_token(&with(&["v5.channel.k8s.io"])), Ok(None));
        // Only WebSocket upgrades carry it.
        assert_eq!(
            websocket_token(&headers(&[(
                "Sec-WebSocket-Protocol",
                "base64url.bearer.authorization.k8s.io.dG9rZW4, v5.channel.k8s.io"
            )])),
            Ok(None)
        );
    }

    #[test]
    fn cache_entries_expire() {
        let cache: Cache<bool> = Cache::new();
        cache.put("a".into(), true, Duration::from_secs(60));
        cache.put("b".into(), false, Duration::ZERO);
        assert_eq!(cache.get("a"), Some(true));
        assert_eq!(cache.get("b"), None);
        assert_eq!(cache.get("c"), None);
    }
}
