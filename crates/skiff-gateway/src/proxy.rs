//! The data plane: one HTTP server per listening port on the node's address, serving the
//! current [`Table`] through hyper and forwarding to endpoints over each worker's own
//! pool of keep-alive connections ([`crate::upstream`]).
//!
//! The table is swapped atomically ([`arc_swap`]): a request reads the table once when it
//! arrives and finishes on it, so a config change never drops an in-flight request, and
//! open client connections carry on with the next request on the new table. A port that
//! leaves the table stops accepting; its open connections are left to finish.

use crate::api::{HeaderModifier, RequestRedirect};
use crate::config::{Action, Entry, Mirror, RequestView, Table, Upstream, WeightedBackend};
use crate::metrics::GatewayMetrics;
use crate::upstream::{self, SendError};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bodies through the proxy: a client's or pod's stream, or one the proxy made.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1): never
/// forwarded in either direction. Names made once: removing by `&str` parses the name
/// at every call.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The listening sockets' accept queue (nginx's benchmark configuration uses 4096; the
/// kernel caps it at `net.core.somaxconn`).
const BACKLOG: u32 = 4096;

/// Where a request came in: listener port, client, scheme.
pub struct Origin {
    pub port: u16,
    pub remote: SocketAddr,
    pub scheme: &'static str,
}

/// How many endpoints a refused request is tried on before it fails with 502.
const CONNECT_ATTEMPTS: usize = 3;

/// The node's proxy: the table every listener serves, and the listeners.
///
/// Thread per core, as nginx's workers: each worker is a single-threaded runtime watching
/// every port's one listening socket, with its own pool of backend connections
/// ([`crate::upstream`]), so a request and its backend connection are served by one
/// thread with no cross-thread wake-ups (on the shared multi-threaded runtime those cost
/// the gateway a third of nginx's throughput).
pub struct DataPlane {
    /// Shared with the TLS certificate resolvers, which read it at every handshake.
    table: Arc<ArcSwap<Table>>,
    workers: Vec<Worker>,
    bind: IpAddr,
    metrics: GatewayMetrics,
    /// Accept loops by port (one per worker), and whether the port terminates TLS.
    listeners: Mutex<HashMap<u16, (bool, AcceptLoops)>>,
}

/// One port's accept loops, one per worker.
type AcceptLoops = Vec<tokio::task::JoinHandle<()>>;

/// One data-plane thread: its runtime, how many client connections it serves, and where
/// other workers hand it connections they accepted.
struct Worker {
    runtime: tokio::runtime::Handle,
    open: AtomicUsize,
    handoff: tokio::sync::mpsc::UnboundedSender<Handoff>,
}

/// A client connection accepted by one worker for another to serve.
struct Handoff {
    stream: std::net::TcpStream,
    remote: SocketAddr,
    port: u16,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// How many more connections than the least busy worker an accepting worker may hold
/// before it hands new ones over.
const IMBALANCE: usize = 2;

/// `me`, unless some worker holds [`IMBALANCE`] fewer connections (`open`, by worker):
/// then the least busy, the first of equals.
fn least_busy(me: usize, open: &[usize]) -> usize {
    let mine = open.get(me).copied().unwrap_or(0);
    match open.iter().enumerate().min_by_key(|(_, n)| **n) {
        Some((least, n)) if n + IMBALANCE <= mine => least,
        _ => me,
    }
}

/// Counts a connection out of its worker's `open` when its task ends (or is dropped).
struct OpenGuard(Arc<DataPlane>, usize);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.workers[self.1].open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts a worker thread running a single-threaded runtime for the process's lifetime.
/// Everything spawned on it (connections both ways, the pool's sweeper) runs on that
/// thread, where its connection pool is.
fn start_worker(index: usize) -> std::io::Result<tokio::runtime::Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name(format!("gateway-{index}"))
        .spawn(move || runtime.block_on(upstream::sweep_forever()))?;
    Ok(handle)
}

/// Picks an HTTPS port's certificate by SNI from the current table at each handshake, so
/// a certificate change needs no new listener.
#[derive(Debug)]
struct Certificates {
    table: Arc<ArcSwap<Table>>,
    port: u16,
}

impl rustls::server::ResolvesServerCert for Certificates {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let table = self.table.load();
        table
            .ports
            .get(&self.port)?
            .tls
            .as_ref()?
            .resolve(hello.server_name())
    }
}

fn tls_acceptor(table: Arc<ArcSwap<Table>>, port: u16) -> Option<tokio_rustls::TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Certificates { table, port }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl DataPlane {
    /// A data plane whose listeners bind `bind` (the node's address).
    pub fn new(bind: IpAddr) -> Arc<DataPlane> {
        DataPlane::with_metrics(bind, GatewayMetrics::default())
    }

    /// [`DataPlane::new`], recording every request into `metrics`.
    pub fn with_metrics(bind: IpAddr, metrics: GatewayMetrics) -> Arc<DataPlane> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut workers = Vec::new();
        let mut inboxes = Vec::new();
        for index in 0..cores {
            let runtime = start_worker(index).expect("start the gateway's worker threads");
            let (handoff, inbox) = tokio::sync::mpsc::unbounded_channel();
            workers.push(Worker {
                runtime,
                open: AtomicUsize::new(0),
                handoff,
            });
            inboxes.push(inbox);
        }
        let dp = Arc::new(DataPlane {
            table: Arc::new(ArcSwap::from_pointee(Table::default())),
            workers,
            bind,
            metrics,
            listeners: Mutex::new(HashMap::new()),
        });
        for (index, inbox) in inboxes.into_iter().enumerate() {
            dp.workers[index]
                .runtime
                .spawn(dp.clone().take_handoffs(index, inbox));
        }
        dp
    }

    /// Serves the connections other workers hand to worker `me`.
    async fn take_handoffs(
        self: Arc<Self>,
        me: usize,
        mut inbox: tokio::sync::mpsc::UnboundedReceiver<Handoff>,
    ) {
        while let Some(h) = inbox.recv().await {
            let guard = OpenGuard(self.clone(), me);
            // Registers with this worker's reactor.
            if let Ok(stream) = tokio::net::TcpStream::from_std(h.stream) {
                tokio::spawn(
                    self.clone()
                        .connection(stream, h.remote, h.port, h.tls, guard),
                );
            }
        }
    }

    /// The worker to serve a connection worker `me` accepted: `me`, unless it holds
    /// [`IMBALANCE`] more connections than the least busy one. Workers share one listening
    /// socket and the first awake takes every queued connection: without this a burst of
    /// keep-alive clients all land on one worker and the other cores idle (nginx's
    /// workers have `EPOLLEXCLUSIVE` and accept one connection per wake-up instead).
    fn pick_worker(&self, me: usize) -> usize {
        let open: Vec<usize> = self
            .workers
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .collect();
        least_busy(me, &open)
    }

    /// Serves `table` from now on: new ports start listening, ports gone stop accepting.
    /// Returns the ports that could not be bound (retried on the next swap).
    pub async fn swap(self: &Arc<Self>, table: Table) -> Vec<(u16, String)> {
        let wanted: Vec<(u16, bool)> = table
            .ports
            .iter()
            .map(|(port, p)| (*port, p.tls.is_some()))
            .collect();
        self.table.store(Arc::new(table));
        let mut failed = Vec::new();
        let mut to_bind = Vec::new();
        {
            let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            listeners.retain(|port, (tls, tasks)| {
                let keep =
                    wanted.contains(&(*port, *tls)) && !tasks.iter().any(|t| t.is_finished());
                if !keep {
                    tasks.iter().for_each(|t| t.abort());
                }
                keep
            });
            for (port, tls) in &wanted {
                if !listeners.contains_key(port) {
                    to_bind.push((*port, *tls));
                }
            }
        }
        for (port, tls) in to_bind {
            let addr = SocketAddr::new(self.bind, port);
            let acceptor = match tls {
                true => match tls_acceptor(self.table.clone(), port) {
                    Some(a) => Some(a),
                    None => {
                        failed.push((port, "no TLS configuration".into()));
                        continue;
                    }
                },
                false => None,
            };
            // One listening socket, watched by every worker: an idle worker takes the next
            // connection (as nginx's workers share theirs), where per-worker sockets would
            // pin each connection by hash to a worker that may be busy.
            let shared = match bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    failed.push((port, e.to_string()));
                    continue;
                }
            };
            let mut tasks = Vec::new();
            for (index, worker) in self.workers.iter().enumerate() {
                // The socket registers with the reactor of the runtime it is made in.
                let bound = shared.try_clone().and_then(|l| {
                    let _in_worker = worker.runtime.enter();
                    tokio::net::TcpListener::from_std(l)
                });
                match bound {
                    Ok(listener) => tasks.push(worker.runtime.spawn(self.clone().accept(
                        listener,
                        port,
                        acceptor.clone(),
                        index,
                    ))),
                    Err(e) => {
                        failed.push((port, e.to_string()));
                        break;
                    }
                }
            }
            if tasks.len() == self.workers.len() {
                tracing::info!(%addr, tls, workers = tasks.len(), "gateway listener started");
                self.listeners
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(port, (tls, tasks));
            } else {
                tasks.iter().for_each(|t| t.abort());
            }
        }
        failed
    }

    async fn accept(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        port: u16,
        tls: Option<tokio_rustls::TlsAcceptor>,
        me: usize,
    ) {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(c) => c,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep listening.
                    tracing::warn!(%error, port, "gateway accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let target = self.pick_worker(me);
            self.workers[target].open.fetch_add(1, Ordering::Relaxed);
            let guard = OpenGuard(self.clone(), target);
            if target == me {
                tokio::spawn(
                    self.clone()
                        .connection(stream, remote, port, tls.clone(), guard),
                );
                continue;
            }
            // Taken off this worker's reactor, registered with the target's.
            if let Ok(stream) = stream.into_std() {
                let handoff = Handoff {
                    stream,
                    remote,
                    port,
                    tls: tls.clone(),
                };
                // The count moves with the connection: the target's task counts it out.
                if self.workers[target].handoff.send(handoff).is_ok() {
                    std::mem::forget(guard);
                }
            }
        }
    }

    /// Serves one client connection on this worker; `_open` counts it out at the end.
    async fn connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        remote: SocketAddr,
        port: u16,
        tls: Option<tokio_rustls::TlsAcceptor>,
        _open: OpenGuard,
    ) {
        let _ = stream.set_nodelay(true);
        let https = tls.is_some();
        let dp = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let dp = dp.clone();
            async move { Ok::<_, Infallible>(dp.handle(req, port, remote, https).await) }
        });
        let result = match tls {
            None => serve_connection(stream, service).await,
            Some(acceptor) => match acceptor.accept(stream).await {
                Ok(stream) => serve_connection(stream, service).await,
                Err(error) => {
                    tracing::debug!(%error, %remote, "gateway TLS handshake failed");
                    return;
                }
            },
        };
        if let Err(error) = result {
            tracing::debug!(%error, %remote, "gateway connection ended");
        }
    }

    /// One request: route it, then redirect, fail or forward it; one access log line.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        port: u16,
        remote: SocketAddr,
        https: bool,
    ) -> Response<Body> {
        let started = Instant::now();
        let origin = Origin {
            port,
            remote,
            scheme: if https { "https" } else { "http" },
        };
        let table = self.table.load_full();
        let grpc = is_grpc(req.headers());
        let method = req.method().clone();
        let host = request_host(&req);
        // Shares the request's bytes: kept for the log line after the request is gone.
        let uri = req.uri().clone();
        let view = RequestView {
            host: &host,
            path: uri.path(),
            query: uri.query(),
            method: method.as_str(),
            headers: req.headers(),
        };
        let entry = table.ports.get(&port).and_then(|p| p.route(&view));
        let (response, served) = match entry {
            None => (
                plain(StatusCode::NOT_FOUND, "no route matches\n"),
                Served::default(),
            ),
            Some(entry) => self.serve(entry, req, &host, &origin, started).await,
        };
        let elapsed = started.elapsed();
        let code = response.status().as_u16();
        match (entry, served.backend, served.upstream) {
            // The common case: the backend's series, resolved once.
            (Some(e), Some(b), Some(u)) => {
                let series = self.metrics.series(&b.series, &e.route, &u.name);
                self.metrics.observe_series(series, code, elapsed);
            }
            (e, _, u) => {
                self.metrics
                    .observe(e.map(|e| &e.route), u.map(|u| &u.name), code, elapsed)
            }
        }
        tracing::info!(
            target: "skiff_gateway::access",
            %remote,
            %method,
            host = %host,
            path = %uri.path(),
            status = response.status().as_u16(),
            route = entry.as_ref().map(|e| &*e.route).unwrap_or("-"),
            upstream = served.upstream.as_ref().map(|u| &*u.name).unwrap_or("-"),
            endpoint = %served.endpoint.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
            elapsed_us = elapsed.as_micros() as u64,
            "request"
        );
        match response.extensions().get::<LocalReply>() {
            Some(LocalReply(message)) if grpc => grpc_reply(response.status(), message),
            _ => response,
        }
    }

    async fn serve<'e>(
        &self,
        entry: &'e Entry,
        mut req: Request<Incoming>,
        host: &str,
        origin: &Origin,
        started: Instant,
    ) -> (Response<Body>, Served<'e>) {
        let action = &entry.action;
        if let Some(redirect) = &action.redirect {
            return (
                redirect_response(redirect, action, &req, host, origin),
                Served::default(),
            );
        }
        let Some(backend) = action.pick() else {
            return (
                plain(StatusCode::INTERNAL_SERVER_ERROR, "no backend\n"),
                Served::default(),
            );
        };
        let upstream = match &backend.target {
            Ok(u) => u,
            Err(why) => {
                return (
                    plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{why}\n")),
                    Served::default(),
                );
            }
        };
        let mut served = Served {
            backend: Some(backend),
            upstream: Some(upstream),
            endpoint: None,
        };
        if upstream.endpoints.is_empty() {
            return (
                plain(StatusCode::SERVICE_UNAVAILABLE, "no ready endpoints\n"),
                served,
            );
        }
        // An HTTP/1.1 upgrade (WebSocket): the client's side of it, and its protocol.
        let upgrade = upgrade_protocol(&req)
            .filter(|_| !upstream.h2c)
            .map(|p| (p, hyper::upgrade::on(&mut req)));
        let (mut parts, body) = req.into_parts();
        let path_and_query = match action.rewrite.as_ref().and_then(|r| r.path.as_ref()) {
            None => parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
            Some(_) => match rewritten_path(action, &parts.uri).parse() {
                Ok(p) => p,
                Err(_) => return (plain(StatusCode::BAD_REQUEST, "bad path\n"), served),
            },
        };
        // gRPC servers may insist on `te: trailers` (RFC 9113 §8.2.2 lets HTTP/2 carry
        // that one value): kept for an HTTP/2 backend, stripped as hop-by-hop otherwise.
        let te_trailers = upstream.h2c
            && parts
                .headers
                .get_all(header::TE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
        prepare_request_headers(&mut parts.headers, action, backend, host, origin);
        if te_trailers {
            parts
                .headers
                .insert(header::TE, HeaderValue::from_static("trailers"));
        }
        if let Some((protocol, _)) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol.clone());
        }
        let mut body = Some(body.boxed());
        // Mirrors get a copy of a bodiless request (a body is streamed once, to the
        // backend that answers; copying it would mean holding it whole).
        if !action.mirrors.is_empty() && body.as_ref().is_some_and(|b| b.is_end_stream()) {
            for m in action.mirrors.iter().filter(|m| m.take()) {
                mirror(m, &parts, &path_and_query);
            }
        }
        // Only a request without a body can be sent again; only an idempotent one may be.
        let retryable = body.as_ref().is_some_and(|b| b.is_end_stream())
            && is_idempotent(&parts.method)
            && upgrade.is_none();
        let attempts = if retryable {
            CONNECT_ATTEMPTS.min(upstream.endpoints.len())
        } else {
            1
        };
        let deadline = action.timeouts.request.map(|t| started + t);
        let start = upstream.start();
        let mut last_error = String::new();
        // One request, sent again as it is when an endpoint refuses the connection (it
        // never left): no copy of its headers per attempt.
        let mut out = Request::new(body.take().unwrap_or_else(empty));
        *out.method_mut() = parts.method;
        *out.headers_mut() = parts.headers;
        for attempt in 0..attempts {
            let (Some(addr), Some(authority)) = (
                upstream.at(start, attempt),
                upstream.authority_at(start, attempt),
            ) else {
                break;
            };
            served.endpoint = Some(addr);
            // HTTP/1.1 takes the origin form (`Host` says the rest); HTTP/2 the absolute
            // form (its `:authority` and `:scheme`).
            *out.uri_mut() = if upstream.h2c {
                let mut uri = hyper::http::uri::Parts::default();
                uri.scheme = Some(hyper::http::uri::Scheme::HTTP);
                uri.authority = Some(authority.clone());
                uri.path_and_query = Some(path_and_query.clone());
                match Uri::from_parts(uri) {
                    Ok(uri) => uri,
                    Err(_) => return (plain(StatusCode::BAD_REQUEST, "bad path\n"), served),
                }
            } else {
                Uri::from(path_and_query.clone())
            };
            let limit = match (deadline, action.timeouts.backend_request) {
                (Some(d), Some(b)) => Some(d.min(Instant::now() + b)),
                (Some(d), None) => Some(d),
                (None, Some(b)) => Some(Instant::now() + b),
                (None, None) => None,
            };
            let sent = upstream::send(addr, upstream.h2c, out);
            let result = match limit {
                None => sent.await,
                Some(at) => match tokio::time::timeout_at(at.into(), sent).await {
                    Ok(r) => r,
                    Err(_) => {
                        return (
                            plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n"),
                            served,
                        )
                    }
                },
            };
            match result {
                Ok(mut resp) => {
                    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                        if let Some((_, client_side)) = upgrade {
                            let backend_side = hyper::upgrade::on(&mut resp);
                            tokio::spawn(splice(client_side, backend_side));
                            return (resp, served);
                        }
                    }
                    let (mut rparts, rbody) = resp.into_parts();
                    strip_hop_by_hop(&mut rparts.headers);
                    if let Some(m) = &action.response_headers {
                        modify(&mut rparts.headers, m);
                    }
                    if let Some(m) = &backend.response_headers {
                        modify(&mut rparts.headers, m);
                    }
                    return (Response::from_parts(rparts, rbody), served);
                }
                Err(SendError::Connect { error, request }) if retryable => {
                    last_error = format!("{addr}: {error}");
                    out = *request;
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, %addr, "upstream request failed");
                    let why = if e.is_connect() {
                        "upstream refused the connection\n"
                    } else {
                        "upstream failed\n"
                    };
                    return (plain(StatusCode::BAD_GATEWAY, why), served);
                }
            }
        }
        tracing::debug!(error = %last_error, "no endpoint took the connection");
        (
            plain(StatusCode::BAD_GATEWAY, "upstream refused the connection\n"),
            served,
        )
    }
}

/// hyper's HTTP/2 client preface: a connection starting with it speaks HTTP/2 (with prior
/// knowledge, or after ALPN `h2`); any other is HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves one client connection in HTTP/1.1 (upgrades allowed) or HTTP/2, by its first
/// bytes. They are read here in one read of up to 4 KiB (a whole request, usually) and
/// handed to hyper ahead of the socket: hyper-util's `auto` server reads 24 bytes first,
/// one more read system call per connection.
async fn serve_connection<S, Svc>(mut stream: S, service: Svc) -> Result<(), hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    Svc::Future: Send + 'static,
{
    use tokio::io::AsyncReadExt;
    let mut first = bytes::BytesMut::with_capacity(4096);
    loop {
        match stream.read_buf(&mut first).await {
            // Closed (or broken) before a whole first line: nothing to serve.
            Ok(0) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
        if first.len() >= H2_PREFACE.len() || !H2_PREFACE.starts_with(&first) {
            break;
        }
    }
    let h2 = first.starts_with(H2_PREFACE);
    let io = TokioIo::new(Prefixed {
        first: first.freeze(),
        inner: stream,
    });
    if h2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .with_upgrades()
            .await
    }
}

/// A stream whose first bytes were already read: they are read again first.
struct Prefixed<S> {
    first: Bytes,
    inner: S,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.first.is_empty() {
            return std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.first.len().min(buf.remaining());
        buf.put_slice(&this.first.split_to(n));
        std::task::Poll::Ready(Ok(()))
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Sends a copy of a bodiless request to one endpoint of the mirror's backend, in the
/// background; its answer is dropped.
fn mirror(m: &Mirror, parts: &hyper::http::request::Parts, pq: &PathAndQuery) {
    let start = m.upstream.start();
    let (Some(addr), Some(authority)) =
        (m.upstream.at(start, 0), m.upstream.authority_at(start, 0))
    else {
        return;
    };
    let uri = if m.upstream.h2c {
        let mut uri = hyper::http::uri::Parts::default();
        uri.scheme = Some(hyper::http::uri::Scheme::HTTP);
        uri.authority = Some(authority.clone());
        uri.path_and_query = Some(pq.clone());
        let Ok(uri) = Uri::from_parts(uri) else {
            return;
        };
        uri
    } else {
        Uri::from(pq.clone())
    };
    let mut out = Request::new(empty());
    *out.method_mut() = parts.method.clone();
    *out.uri_mut() = uri;
    *out.headers_mut() = parts.headers.clone();
    out.headers_mut().remove(header::UPGRADE);
    out.headers_mut().remove(header::CONNECTION);
    let sent = upstream::send(addr, m.upstream.h2c, out);
    let name = m.upstream.name.clone();
    tokio::spawn(async move {
        match tokio::time::timeout(MIRROR_TIMEOUT, sent).await {
            Ok(Ok(resp)) => {
                // Read the answer to its end, so the connection goes back to the pool.
                let _ = resp.into_body().collect().await;
            }
            Ok(Err(error)) => tracing::debug!(%error, mirror = %name, "mirror failed"),
            Err(_) => tracing::debug!(mirror = %name, "mirror timed out"),
        }
    });
}

/// What served a request, for the access log and metrics.
#[derive(Default)]
struct Served<'e> {
    backend: Option<&'e WeightedBackend>,
    upstream: Option<&'e Upstream>,
    endpoint: Option<SocketAddr>,
}

/// How long a mirrored request may take before it is dropped.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(30);

/// The `Upgrade` protocol of an HTTP/1.1 request asking for one (`Connection: upgrade`).
fn upgrade_protocol<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != hyper::Version::HTTP_11 {
        return None;
    }
    let asks = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| req.headers().get(header::UPGRADE).cloned())
        .flatten()
}

/// Joins the two sides of an upgraded connection until either closes.
async fn splice(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "upgrade failed");
            return;
        }
    };
    let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(%error, "upgraded connection ended");
    }
}

/// A non-blocking listening socket on `addr`, registered with no runtime (each worker
/// registers its own handle). Needs a runtime context, which it leaves as it found it.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)?.into_std()
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// Marks a response the proxy made itself (not a backend's), with its message.
#[derive(Clone)]
struct LocalReply(String);

/// A short plain-text response made by the proxy itself.
pub fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(text.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.extensions_mut()
        .insert(LocalReply(text.trim_end().to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Whether a request is a gRPC call (`content-type: application/grpc[+proto|;...]`).
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.strip_prefix("application/grpc")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';']))
        })
}

/// The gRPC status code of an HTTP status (gRPC's "HTTP to gRPC Status Code Mapping",
/// as Envoy applies it to its own replies).
pub fn grpc_status(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// The proxy's own error answer to a gRPC call, as gRPC clients read one: a
/// Trailers-Only response (HTTP 200, `grpc-status` and `grpc-message` in its only
/// headers), so the client sees the reason instead of a protocol error.
fn grpc_reply(status: StatusCode, message: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(
        "grpc-status",
        HeaderValue::from(u16::from(grpc_status(status))),
    );
    // grpc-message is percent-encoded: everything outside printable ASCII, and `%`.
    let encoded: String = message
        .bytes()
        .map(|b| match b {
            b' '..=b'~' if b != b'%' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&encoded) {
        h.insert("grpc-message", v);
    }
    r
}

/// The host a request names (Host header, or the URI authority of HTTP/2), lower-cased
/// and without a port.
pub fn request_host<B>(req: &Request<B>) -> String {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    strip_port(raw).to_ascii_lowercase()
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map(|(h, _)| &h[1..]).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers a Connection header lists are hop-by-hop too.
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Applies a RequestHeaderModifier or ResponseHeaderModifier: set, then add, then remove.
pub fn modify(headers: &mut HeaderMap, m: &HeaderModifier) {
    for h in &m.set {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_str(&h.value),
        ) {
            headers.insert(n, v);
        }
    }
    for h in &m.add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_str(&h.value),
        ) {
            headers.append(n, v);
        }
    }
    for name in &m.remove {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(n);
        }
    }
}

fn prepare_request_headers(
    headers: &mut HeaderMap,
    action: &Action,
    backend: &WeightedBackend,
    host: &str,
    origin: &Origin,
) {
    let remote = origin.remote;
    strip_hop_by_hop(headers);
    if !headers.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, v);
        }
    }
    if let Some(rewrite_host) = action.rewrite.as_ref().and_then(|r| r.hostname.as_deref()) {
        if let Ok(v) = HeaderValue::from_str(rewrite_host) {
            headers.insert(header::HOST, v);
        }
    }
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", remote.ip()),
        None => remote.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(origin.scheme));
    if let Some(m) = &action.request_headers {
        modify(headers, m);
    }
    if let Some(m) = &backend.request_headers {
        modify(headers, m);
    }
}

/// `path?query` after a URLRewrite's path modifier (if any).
pub fn rewritten_path(action: &Action, uri: &Uri) -> String {
    let path = uri.path();
    let new_path = match action.rewrite.as_ref().and_then(|r| r.path.as_ref()) {
        Some(m) => modified_path(m, action.matched_prefix.as_deref(), path),
        None => path.to_string(),
    };
    match uri.query() {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    }
}

/// A path modifier applied to `path`: ReplaceFullPath, or ReplacePrefixMatch of the
/// matched PathPrefix (element-wise: `/foo` → `/bar` turns `/foo/x` into `/bar/x`).
pub fn modified_path(
    m: &crate::api::PathModifier,
    matched_prefix: Option<&str>,
    path: &str,
) -> String {
    match m.type_.as_str() {
        "ReplaceFullPath" => m.replace_full_path.clone().unwrap_or_else(|| "/".into()),
        "ReplacePrefixMatch" => {
            let Some(prefix) = matched_prefix else {
                return path.to_string();
            };
            let rest = path.strip_prefix(prefix).unwrap_or(path);
            let replacement = m.replace_prefix_match.as_deref().unwrap_or("/");
            let mut out = format!("{}{rest}", replacement.trim_end_matches('/'));
            if out.is_empty() {
                out.push('/');
            }
            out
        }
        _ => path.to_string(),
    }
}

/// The `Location` of a RequestRedirect (spec: an unset scheme is the request's; an unset
/// port is the scheme's well-known port when the scheme is set, else the listener's;
/// well-known ports are left out).
pub fn redirect_location(
    r: &RequestRedirect,
    matched_prefix: Option<&str>,
    host: &str,
    origin: &Origin,
    uri: &Uri,
) -> String {
    let listener_port = origin.port;
    let scheme = r.scheme.clone().unwrap_or_else(|| origin.scheme.into());
    let port: Option<i64> = match (r.port, &r.scheme) {
        (Some(p), _) => Some(p.into()),
        (None, Some(_)) => None,
        (None, None) => Some(listener_port.into()),
    };
    let port = port.filter(|p| !matches!((scheme.as_str(), *p), ("http", 80) | ("https", 443)));
    let host = r.hostname.clone().unwrap_or_else(|| host.to_string());
    let path = match &r.path {
        Some(m) => modified_path(m, matched_prefix, uri.path()),
        None => uri.path().to_string(),
    };
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    match port {
        Some(p) => format!("{scheme}://{host}:{p}{path}{query}"),
        None => format!("{scheme}://{host}{path}{query}"),
    }
}

fn redirect_response<B>(
    r: &RequestRedirect,
    action: &Action,
    req: &Request<B>,
    host: &str,
    origin: &Origin,
) -> Response<Body> {
    let location = redirect_location(r, action.matched_prefix.as_deref(), host, origin, req.uri());
    let status = r
        .status_code
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::FOUND);
    let mut resp = plain(status, "");
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(m) = &action.response_headers {
        modify(resp.headers_mut(), m);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PathModifier;

    fn prefix(to: &str) -> PathModifier {
        PathModifier {
            type_: "ReplacePrefixMatch".into(),
            replace_prefix_match: Some(to.into()),
            ..Default::default()
        }
    }

    #[test]
    fn connections_go_to_the_accepting_worker_unless_it_is_busier() {
        for (me, open, want) in [
            (0, vec![0, 0], 0),
            (0, vec![1, 0], 0),
            (0, vec![2, 0], 1),
            (1, vec![0, 5], 0),
            (1, vec![4, 5], 1),
            (2, vec![3, 1, 3], 1),
            (0, vec![7], 0),
        ] {
            assert_eq!(least_busy(me, &open), want, "{me} of {open:?}");
        }
        // A burst of keep-alive clients accepted by one worker ends up spread.
        let mut open = vec![0, 0];
        for _ in 0..16 {
            let w = least_busy(0, &open);
            open[w] += 1;
        }
        assert!(open[0].abs_diff(open[1]) <= IMBALANCE, "{open:?}");
    }

    #[test]
    fn prefix_rewrites() {
        // Cases of the conformance suite's HTTPRouteRewritePath and HTTPRouteRedirectPath.
        for (matched, to, path, want) in [
            ("/prefix/one", "/one", "/prefix/one/two", "/one/two"),
            ("/prefix/one", "/one", "/prefix/one", "/one"),
            ("/strip-prefix", "/", "/strip-prefix/three", "/three"),
            ("/strip-prefix", "/", "/strip-prefix", "/"),
            ("", "/api", "/x", "/api/x"),
            ("/foo", "/bar/", "/foo/baz", "/bar/baz"),
        ] {
            assert_eq!(
                modified_path(&prefix(to), Some(matched), path),
                want,
                "{matched} -> {to} on {path}"
            );
        }
        let full = PathModifier {
            type_: "ReplaceFullPath".into(),
            replace_full_path: Some("/one".into()),
            ..Default::default()
        };
        assert_eq!(modified_path(&full, Some("/full"), "/full/path"), "/one");
    }

    fn origin(port: u16) -> Origin {
        Origin {
            port,
            remote: "10.0.0.1:5000".parse().unwrap(),
            scheme: if port == 443 { "https" } else { "http" },
        }
    }

    #[test]
    fn redirect_locations() {
        let uri: Uri = "/path?x=1".parse().unwrap();
        let r = |scheme: Option<&str>, host: Option<&str>, port: Option<i32>| RequestRedirect {
            scheme: scheme.map(Into::into),
            hostname: host.map(Into::into),
            port,
            ..Default::default()
        };
        for (redirect, listener, want) in [
            (
                r(None, Some("example.org"), None),
                80,
                "http://example.org/path?x=1",
            ),
            (
                r(None, None, None),
                8080,
                "http://a.example.com:8080/path?x=1",
            ),
            (
                r(Some("https"), None, None),
                8080,
                "https://a.example.com/path?x=1",
            ),
            (
                r(Some("https"), None, Some(8443)),
                80,
                "https://a.example.com:8443/path?x=1",
            ),
            (
                r(Some("https"), None, Some(443)),
                80,
                "https://a.example.com/path?x=1",
            ),
            (
                r(None, None, Some(8081)),
                80,
                "http://a.example.com:8081/path?x=1",
            ),
            // From an HTTPS listener the scheme stays https; 443 is left out.
            (r(None, None, None), 443, "https://a.example.com/path?x=1"),
            (
                r(Some("http"), None, None),
                443,
                "http://a.example.com/path?x=1",
            ),
        ] {
            assert_eq!(
                redirect_location(&redirect, None, "a.example.com", &origin(listener), &uri),
                want
            );
        }
    }

    #[test]
    fn hosts_and_headers() {
        let req = Request::builder()
            .uri("/")
            .header("host", "Collector.Example.com:80")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), "collector.example.com");
        let req = Request::builder()
            .uri("http://[::1]:8080/")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), "::1");
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        let m = HeaderModifier {
            set: vec![crate::api::HeaderValue {
                name: "X-Kept".into(),
                value: "2".into(),
            }],
            add: vec![crate::api::HeaderValue {
                name: "x-new".into(),
                value: "a".into(),
            }],
            remove: vec!["X-Other".into()],
        };
        h.insert("x-other", HeaderValue::from_static("gone"));
        modify(&mut h, &m);
        assert_eq!(h["x-kept"], "2");
        assert_eq!(h["x-new"], "a");
        assert!(!h.contains_key("x-other"));
    }
}

/// The data plane in-process on loopback: a real upstream, real sockets, no root.
#[cfg(test)]
mod live_tests {
    use super::*;
    use crate::config::{build, Inputs};
    use serde_json::json;

    fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// An upstream on 127.0.0.1:port answering "upstream" and echoing `x-added` back.
    async fn upstream(port: u16) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let added = req.headers().get("x-added").cloned();
                        let mut resp = Response::new(Full::new(Bytes::from("upstream")));
                        if let Some(v) = added {
                            resp.headers_mut().insert("x-echo", v);
                        }
                        Ok::<_, Infallible>(resp)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }

    /// A table: Gateway listener on `port`, and (with `route`) a.test to a Service whose
    /// endpoints are 127.0.0.2 (nothing listens: refused) and 127.0.0.1 on `up`.
    fn table(port: u16, up: u16, route: bool) -> Table {
        let class: crate::api::GatewayClass =
            obj(json!({"metadata": {"name": "c"}, "spec": {"controllerName": "x/y"}}));
        let gw: crate::api::Gateway = obj(json!({"metadata": {"name": "gw", "namespace": "ns"},
            "spec": {"gatewayClassName": "c", "listeners": [{"name": "h", "protocol": "HTTP", "port": port}]}}));
        let r: crate::api::HttpRoute = obj(json!({"metadata": {"name": "r", "namespace": "ns"},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["a.test"], "rules": [{
                "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-added", "value": "yes"}]}}],
                "backendRefs": [{"name": "svc", "port": 80}]}]}}));
        let svc: k8s_openapi::api::core::v1::Service =
            obj(json!({"metadata": {"name": "svc", "namespace": "ns"},
            "spec": {"ports": [{"port": 80}]}}));
        let slice: k8s_openapi::api::discovery::v1::EndpointSlice = obj(json!({
            "metadata": {"name": "svc-1", "namespace": "ns", "labels": {"kubernetes.io/service-name": "svc"}},
            "addressType": "IPv4", "ports": [{"port": up}],
            "endpoints": [{"addresses": ["127.0.0.2"]}, {"addresses": ["127.0.0.1"]}]}));
        let routes = if route { vec![&r] } else { vec![] };
        build(&Inputs {
            controller_name: "x/y",
            classes: vec![&class],
            gateways: vec![&gw],
            routes,
            services: vec![&svc],
            slices: vec![&slice],
            ..Default::default()
        })
        .0
    }

    async fn send(
        sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        host: &str,
    ) -> (StatusCode, String, Option<String>) {
        let req = Request::builder()
            .uri("/")
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let echo = resp
            .headers()
            .get("x-echo")
            .map(|v| v.to_str().unwrap().to_string());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned(), echo)
    }

    #[tokio::test]
    async fn proxies_retries_refused_and_swaps_under_open_connections() {
        let (port, up) = (free_port(), free_port());
        upstream(up).await;
        let metrics = GatewayMetrics::default();
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let plane = DataPlane::with_metrics("127.0.0.1".parse().unwrap(), metrics);
        assert!(plane.swap(table(port, up, true)).await.is_empty());
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        // Half the picks start at the refusing endpoint: every request still succeeds,
        // with the route's request header added.
        for _ in 0..6 {
            let got = send(&mut sender, "a.test").await;
            assert_eq!(got, (StatusCode::OK, "upstream".into(), Some("yes".into())));
        }
        assert_eq!(send(&mut sender, "b.test").await.0, StatusCode::NOT_FOUND);
        // The route goes; the same connection carries on, on the new table.
        assert!(plane.swap(table(port, up, false)).await.is_empty());
        assert_eq!(send(&mut sender, "a.test").await.0, StatusCode::NOT_FOUND);
        assert!(plane.swap(table(port, up, true)).await.is_empty());
        assert_eq!(send(&mut sender, "a.test").await.0, StatusCode::OK);
        // Every request counted by route, backend and code.
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"skiff_gateway_requests_total{route="ns/r",backend="ns/svc:80",code="200"} 7"#,
            r#"skiff_gateway_requests_total{route="-",backend="-",code="404"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    /// An upstream on 127.0.0.1:port that notes each request's path in `seen`, answers
    /// `/slow` after 2 s, turns `/ws` into an echo of raw bytes after a `101`, and answers
    /// everything else with `name`.
    async fn rich_upstream(port: u16, name: &'static str, seen: Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                        let seen = seen.clone();
                        async move {
                            seen.lock().unwrap().push(req.uri().path().to_string());
                            let mut resp = Response::new(Full::new(Bytes::from(name)));
                            match req.uri().path() {
                                "/slow" => tokio::time::sleep(Duration::from_secs(2)).await,
                                "/ws" => {
                                    let upgraded = hyper::upgrade::on(&mut req);
                                    tokio::spawn(async move {
                                        let mut io = TokioIo::new(upgraded.await.unwrap());
                                        let (mut r, mut w) = tokio::io::split(&mut io);
                                        let _ = tokio::io::copy(&mut r, &mut w).await;
                                    });
                                    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                                    resp.headers_mut().insert(
                                        header::CONNECTION,
                                        HeaderValue::from_static("upgrade"),
                                    );
                                    resp.headers_mut()
                                        .insert(header::UPGRADE, HeaderValue::from_static("echo"));
                                }
                                _ => {}
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
    }

    /// A Gateway on `port` with HTTPRoute `rule` for host a.test, and Services `main` and
    /// `copy` whose one endpoint is 127.0.0.1 on `main_port` and `copy_port`.
    fn rich_table(port: u16, main_port: u16, copy_port: u16, rule: serde_json::Value) -> Table {
        rich_table_with(port, main_port, copy_port, rule, None)
    }

    /// [`rich_table`] with an `appProtocol` on `main`'s port.
    fn rich_table_with(
        port: u16,
        main_port: u16,
        copy_port: u16,
        rule: serde_json::Value,
        app_protocol: Option<&str>,
    ) -> Table {
        let class: crate::api::GatewayClass =
            obj(json!({"metadata": {"name": "c"}, "spec": {"controllerName": "x/y"}}));
        let gw: crate::api::Gateway = obj(json!({"metadata": {"name": "gw", "namespace": "ns"},
            "spec": {"gatewayClassName": "c", "listeners": [{"name": "h", "protocol": "HTTP", "port": port}]}}));
        let r: crate::api::HttpRoute = obj(json!({"metadata": {"name": "r", "namespace": "ns"},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["a.test"], "rules": [rule]}}));
        let mut services: Vec<k8s_openapi::api::core::v1::Service> = Vec::new();
        let mut slices: Vec<k8s_openapi::api::discovery::v1::EndpointSlice> = Vec::new();
        for (name, up) in [("main", main_port), ("copy", copy_port)] {
            let protocol = app_protocol.filter(|_| name == "main");
            services.push(obj(json!({"metadata": {"name": name, "namespace": "ns"},
                "spec": {"ports": [{"port": 80, "appProtocol": protocol}]}})));
            slices.push(obj(json!({
                "metadata": {"name": format!("{name}-1"), "namespace": "ns", "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "ports": [{"port": up}],
                "endpoints": [{"addresses": ["127.0.0.1"]}]})));
        }
        build(&Inputs {
            controller_name: "x/y",
            classes: vec![&class],
            gateways: vec![&gw],
            routes: vec![&r],
            services: services.iter().collect(),
            slices: slices.iter().collect(),
            ..Default::default()
        })
        .0
    }

    async fn get_path(port: u16, path: &str) -> (StatusCode, String) {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::builder()
            .uri(path)
            .header("host", "a.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn timeouts_mirrors_and_upgrades() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (port, main_port, copy_port) = (free_port(), free_port(), free_port());
        let main_seen = Arc::new(Mutex::new(Vec::new()));
        let copy_seen = Arc::new(Mutex::new(Vec::new()));
        rich_upstream(main_port, "main", main_seen.clone()).await;
        rich_upstream(copy_port, "copy", copy_seen.clone()).await;
        let plane = DataPlane::new("127.0.0.1".parse().unwrap());
        let rule = json!({
            "timeouts": {"request": "300ms"},
            "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "copy", "port": 80}}}],
            "backendRefs": [{"name": "main", "port": 80}]});
        assert!(plane
            .swap(rich_table(port, main_port, copy_port, rule))
            .await
            .is_empty());

        // Served by main; a copy reaches the mirror, whose answer nobody sees.
        assert_eq!(
            get_path(port, "/mirrored").await,
            (StatusCode::OK, "main".into())
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while !copy_seen.lock().unwrap().contains(&"/mirrored".to_string()) {
            assert!(
                Instant::now() < deadline,
                "the mirror never got the request"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        // The request timeout: a 504 long before the backend's 2 s.
        let started = Instant::now();
        assert_eq!(get_path(port, "/slow").await.0, StatusCode::GATEWAY_TIMEOUT);
        assert!(started.elapsed() < Duration::from_millis(1500));

        // An upgrade passes through: the 101, then raw bytes both ways.
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream
            .write_all(
                b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
            )
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "{head:?}");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: echo"), "{head}");
        stream.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        stream.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"ping");
        // Without the timeout the slow path answers, late.
        let rule = json!({"backendRefs": [{"name": "main", "port": 80}],
            "timeouts": {"request": "0s", "backendRequest": "10s"}});
        assert!(plane
            .swap(rich_table(port, main_port, copy_port, rule))
            .await
            .is_empty());
        assert_eq!(
            get_path(port, "/slow").await,
            (StatusCode::OK, "main".into())
        );
    }

    #[tokio::test]
    async fn h2c_backends_by_app_protocol() {
        let (port, h2_port) = (free_port(), free_port());
        // An upstream speaking only HTTP/2 with prior knowledge, answering its version.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", h2_port))
            .await
            .unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let v = format!("{:?}", req.version());
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(v))))
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let plane = DataPlane::new("127.0.0.1".parse().unwrap());
        let rule = json!({"backendRefs": [{"name": "main", "port": 80}]});
        let table = rich_table_with(
            port,
            h2_port,
            h2_port,
            rule.clone(),
            Some(crate::config::H2C),
        );
        assert!(plane.swap(table).await.is_empty());
        assert_eq!(
            get_path(port, "/").await,
            (StatusCode::OK, "HTTP/2.0".into())
        );
        // Without the appProtocol the gateway speaks HTTP/1.1, which this upstream refuses.
        assert!(plane
            .swap(rich_table(port, h2_port, h2_port, rule))
            .await
            .is_empty());
        assert_eq!(get_path(port, "/").await.0, StatusCode::BAD_GATEWAY);
    }

    /// A gRPC message of one string (prost's derive: no codegen needed).
    #[derive(Clone, PartialEq, prost::Message)]
    struct Say {
        #[prost(string, tag = "1")]
        text: String,
    }

    /// A unary `Say` method answering `"{name}: {text}"`, or NOT_FOUND for `fail`.
    struct Echo(&'static str);

    impl tonic::server::UnaryService<Say> for Echo {
        type Response = Say;
        type Future = std::future::Ready<Result<tonic::Response<Say>, tonic::Status>>;
        fn call(&mut self, req: tonic::Request<Say>) -> Self::Future {
            let text = req.into_inner().text;
            std::future::ready(match text.as_str() {
                "fail" => Err(tonic::Status::not_found("no such thing")),
                _ => Ok(tonic::Response::new(Say {
                    text: format!("{}: {text}", self.0),
                })),
            })
        }
    }

    /// A gRPC server (HTTP/2 only, as gRPC servers are) on 127.0.0.1:port whose every
    /// path is [`Echo`] named `name`.
    async fn grpc_upstream(port: u16, name: &'static str) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<Incoming>| async move {
                            let codec = tonic_prost::ProstCodec::<Say, Say>::default();
                            let mut grpc = tonic::server::Grpc::new(codec);
                            Ok::<_, Infallible>(grpc.unary(Echo(name), req).await)
                        });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }

    /// One unary call of `path` through the gateway on `port`, with `x-tier: tier`.
    async fn grpc_call(
        port: u16,
        path: &'static str,
        text: &str,
        tier: Option<&str>,
    ) -> Result<String, (tonic::Code, String)> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .origin("http://grpc.test".parse().unwrap())
            .connect()
            .await
            .unwrap();
        let mut client = tonic::client::Grpc::new(channel);
        client.ready().await.unwrap();
        let mut req = tonic::Request::new(Say { text: text.into() });
        if let Some(t) = tier {
            req.metadata_mut().insert("x-tier", t.parse().unwrap());
        }
        let codec = tonic_prost::ProstCodec::<Say, Say>::default();
        client
            .unary(req, PathAndQuery::from_static(path), codec)
            .await
            .map(|r| r.into_inner().text)
            .map_err(|s| (s.code(), s.message().to_string()))
    }

    /// Real gRPC calls (tonic) through a GRPCRoute: matched by service, method and
    /// header; the backends spoken to in h2c with no appProtocol; a gRPC error status
    /// (in trailers) passes through; an unrouted method is the client's UNIMPLEMENTED.
    #[tokio::test]
    async fn grpc_routes_carry_real_grpc_calls() {
        let (port, main_port, gold_port) = (free_port(), free_port(), free_port());
        grpc_upstream(main_port, "main").await;
        grpc_upstream(gold_port, "gold").await;
        let class: crate::api::GatewayClass =
            obj(json!({"metadata": {"name": "c"}, "spec": {"controllerName": "x/y"}}));
        let gw: crate::api::Gateway = obj(json!({"metadata": {"name": "gw", "namespace": "ns"},
            "spec": {"gatewayClassName": "c", "listeners": [{"name": "h", "protocol": "HTTP", "port": port}]}}));
        let r: crate::api::GrpcRoute = obj(json!({"metadata": {"name": "g", "namespace": "ns"},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["grpc.test"], "rules": [
                {"matches": [{"method": {"service": "echo.Echo", "method": "Say"},
                              "headers": [{"name": "x-tier", "value": "gold"}]}],
                 "backendRefs": [{"name": "gold", "port": 80}]},
                {"matches": [{"method": {"service": "echo.Echo", "method": "Say"}}],
                 "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "x-via", "value": "skiff"}]}}],
                 "backendRefs": [{"name": "main", "port": 80}]}]}}));
        let mut services: Vec<k8s_openapi::api::core::v1::Service> = Vec::new();
        let mut slices: Vec<k8s_openapi::api::discovery::v1::EndpointSlice> = Vec::new();
        for (name, up) in [("main", main_port), ("gold", gold_port)] {
            services.push(obj(json!({"metadata": {"name": name, "namespace": "ns"},
                "spec": {"ports": [{"port": 80}]}})));
            slices.push(obj(json!({
                "metadata": {"name": format!("{name}-1"), "namespace": "ns", "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "ports": [{"port": up}],
                "endpoints": [{"addresses": ["127.0.0.1"]}]})));
        }
        let table = build(&Inputs {
            controller_name: "x/y",
            classes: vec![&class],
            gateways: vec![&gw],
            grpc_routes: vec![&r],
            services: services.iter().collect(),
            slices: slices.iter().collect(),
            ..Default::default()
        })
        .0;
        let plane = DataPlane::new("127.0.0.1".parse().unwrap());
        assert!(plane.swap(table).await.is_empty());
        assert_eq!(
            grpc_call(port, "/echo.Echo/Say", "hi", None).await,
            Ok("main: hi".into())
        );
        assert_eq!(
            grpc_call(port, "/echo.Echo/Say", "hi", Some("gold")).await,
            Ok("gold: hi".into())
        );
        assert_eq!(
            grpc_call(port, "/echo.Echo/Say", "fail", None).await,
            Err((tonic::Code::NotFound, "no such thing".into()))
        );
        // The gateway's own 404, as gRPC clients read it.
        assert_eq!(
            grpc_call(port, "/echo.Echo/Other", "hi", None).await,
            Err((tonic::Code::Unimplemented, "no route matches".into()))
        );
    }
}
