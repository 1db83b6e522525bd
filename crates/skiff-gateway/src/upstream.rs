//! Connections from the data plane to endpoints: one pool per worker thread, on hyper's
//! own client connections (`hyper::client::conn`), with no lock and no task per request.
//!
//! Each data-plane worker is a single-threaded runtime (see [`crate::proxy`]), so its
//! pool is a thread-local: a request checks a connection out and the response body puts
//! it back on the same thread, with no mutex and no cross-thread wake-up. hyper-util's
//! pooled client (used before, decision 0058) locked a shared pool per checkout and
//! spawned a task per request to wait for the connection to turn idle; those two made
//! much of the gateway's per-request user time.
//!
//! HTTP/1.1 connections are kept idle per endpoint (most recently used first) and taken
//! back when a response body has been read to its end; HTTP/2 (h2c) connections are
//! shared by every request of the worker to that endpoint. Idle connections are dropped
//! after [`IDLE_TIMEOUT`]; a pooled connection the endpoint closed meanwhile is retried
//! once on a new connection when the request was not sent on it.

use crate::proxy::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How long an unused connection to an endpoint is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a new connection to an endpoint may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle HTTP/1.1 connections kept per endpoint and worker (the rest are closed).
const MAX_IDLE_PER_ENDPOINT: usize = 256;

thread_local! {
    /// This worker's connections.
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection to the endpoint (refused, unreachable, timed out): the request was
    /// not sent, and is given back to go to another endpoint.
    #[error("connect: {error}")]
    Connect {
        error: std::io::Error,
        request: Box<Request<Body>>,
    },
    /// The exchange failed on an open connection.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl SendError {
    /// Whether the connection was never made (the request did not leave).
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect { .. })
    }
}

/// One worker's idle connections by endpoint.
#[derive(Default)]
struct Pool {
    http1: HashMap<SocketAddr, Vec<(http1::SendRequest<Body>, Instant)>>,
    h2: HashMap<SocketAddr, http2::SendRequest<Body>>,
}

impl Pool {
    /// The most recently used idle HTTP/1.1 connection to `addr` still open; stale and
    /// closed ones met on the way are dropped.
    fn take(&mut self, addr: SocketAddr, now: Instant) -> Option<http1::SendRequest<Body>> {
        let idle = self.http1.get_mut(&addr)?;
        while let Some((sender, since)) = idle.pop() {
            if !sender.is_closed() && now.saturating_duration_since(since) < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    }

    fn put(&mut self, addr: SocketAddr, sender: http1::SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let idle = self.http1.entry(addr).or_default();
        if idle.len() < MAX_IDLE_PER_ENDPOINT {
            idle.push((sender, Instant::now()));
        }
    }

    /// Drops connections idle for longer than [`IDLE_TIMEOUT`] or closed, and endpoints
    /// left with none (those of pods gone from the table).
    fn sweep(&mut self, now: Instant) {
        self.http1.retain(|_, idle| {
            idle.retain(|(s, since)| {
                !s.is_closed() && now.saturating_duration_since(*since) < IDLE_TIMEOUT
            });
            !idle.is_empty()
        });
        self.h2.retain(|_, s| !s.is_closed());
    }

    fn counts(&self) -> (usize, usize) {
        (self.http1.values().map(Vec::len).sum(), self.h2.len())
    }
}

/// Drops this worker's stale idle connections every few seconds, for the process's
/// lifetime. Spawned once on each worker runtime.
pub async fn sweep_forever() {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT / 4);
    loop {
        tick.tick().await;
        let now = Instant::now();
        POOL.with(|p| p.borrow_mut().sweep(now));
    }
}

/// Idle HTTP/1.1 connections and HTTP/2 connections this thread's pool holds (tests).
pub fn pooled_here() -> (usize, usize) {
    POOL.with(|p| p.borrow().counts())
}

/// How a new connection failed.
enum Dial {
    /// No TCP connection: the request can go elsewhere.
    Connect(std::io::Error),
    Handshake(hyper::Error),
}

impl Dial {
    fn with(self, request: Request<Body>) -> SendError {
        match self {
            Dial::Connect(error) => SendError::Connect {
                error,
                request: Box::new(request),
            },
            Dial::Handshake(e) => SendError::Http(e),
        }
    }
}

async fn connect(addr: SocketAddr) -> Result<TokioIo<tokio::net::TcpStream>, Dial> {
    let stream =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(Dial::Connect(e)),
            Err(_) => {
                return Err(Dial::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )))
            }
        };
    let _ = stream.set_nodelay(true);
    Ok(TokioIo::new(stream))
}

/// A new HTTP/1.1 connection to `addr`, its connection task running on this worker.
async fn connect_http1(addr: SocketAddr) -> Result<http1::SendRequest<Body>, Dial> {
    let io = connect(addr).await?;
    let (sender, conn) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(Dial::Handshake)?;
    tokio::spawn(async move {
        // Upgrades (WebSocket): the connection hands its socket over after a 101.
        if let Err(error) = conn.with_upgrades().await {
            tracing::debug!(%error, %addr, "upstream connection ended");
        }
    });
    Ok(sender)
}

/// This worker's HTTP/2 connection to `addr`, made when there is none open.
async fn h2_sender(addr: SocketAddr) -> Result<http2::SendRequest<Body>, Dial> {
    let open = POOL.with(|p| p.borrow().h2.get(&addr).filter(|s| !s.is_closed()).cloned());
    if let Some(s) = open {
        return Ok(s);
    }
    let io = connect(addr).await?;
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(io)
        .await
        .map_err(Dial::Handshake)?;
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, %addr, "upstream h2 connection ended");
        }
    });
    POOL.with(|p| p.borrow_mut().h2.insert(addr, sender.clone()));
    Ok(sender)
}

/// Sends `req` (its URI in origin form, its `Host` header set) to `addr`, over HTTP/2
/// with prior knowledge when `h2c`, on a pooled connection when one is idle.
pub async fn send(
    addr: SocketAddr,
    h2c: bool,
    req: Request<Body>,
) -> Result<Response<Body>, SendError> {
    if h2c {
        let mut sender = match h2_sender(addr).await {
            Ok(s) => s,
            Err(e) => return Err(e.with(req)),
        };
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        return Ok(resp.map(BodyExt::boxed));
    }
    let pooled = POOL.with(|p| p.borrow_mut().take(addr, Instant::now()));
    let req = match pooled {
        Some(mut sender) => match sender.ready().await {
            Ok(()) => match sender.try_send_request(req).await {
                Ok(resp) => return Ok(release_at_end(resp, addr, sender)),
                // The endpoint closed the idle connection as the request went out: it
                // was not sent, so it goes again on a new connection.
                Err(mut e) => match e.take_message() {
                    Some(req) => {
                        tracing::debug!(error = %e.error(), %addr, "pooled connection closed");
                        req
                    }
                    None => return Err(SendError::Http(e.into_error())),
                },
            },
            Err(error) => {
                tracing::debug!(%error, %addr, "pooled connection closed");
                req
            }
        },
        None => req,
    };
    let mut sender = match connect_http1(addr).await {
        Ok(s) => s,
        Err(e) => return Err(e.with(req)),
    };
    let resp = sender.send_request(req).await?;
    Ok(release_at_end(resp, addr, sender))
}

/// The response, whose body gives `sender` back to this worker's pool once read to its
/// end (a 101's connection is the upgrade's, never pooled).
fn release_at_end(
    resp: Response<Incoming>,
    addr: SocketAddr,
    sender: http1::SendRequest<Body>,
) -> Response<Body> {
    let back = (resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS).then_some(sender);
    resp.map(|inner| {
        Pooled {
            inner,
            addr,
            sender: back,
        }
        .boxed()
    })
}

/// A response body that returns its connection to the pool when it ends.
struct Pooled {
    inner: Incoming,
    addr: SocketAddr,
    sender: Option<http1::SendRequest<Body>>,
}

impl Pooled {
    fn release(&mut self) {
        if let Some(sender) = self.sender.take() {
            // At thread exit the pool is gone: the connection just closes.
            let _ = POOL.try_with(|p| p.borrow_mut().put(self.addr, sender));
        }
    }
}

impl hyper::body::Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            // A broken body leaves the connection unusable.
            Poll::Ready(Some(Err(_))) => this.sender = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // A body dropped before its end (the client went away) leaves the connection
        // mid-response: it is closed, not pooled.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// An HTTP/1.1 server on a free loopback port answering `n` (its connection count so
    /// far, from 1) to every request; returns its address and that count.
    async fn counting_server() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let c = connections.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| async move {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(n.to_string()))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, connections)
    }

    fn get(addr: SocketAddr) -> Request<Body> {
        Request::builder()
            .uri("/")
            .header("host", addr.to_string())
            .body(http_body_util::Empty::new().map_err(|n| match n {}).boxed())
            .unwrap()
    }

    async fn body(resp: Response<Body>) -> String {
        let b = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&b).into_owned()
    }

    /// A read response gives its connection back, and the next request reuses it; an
    /// unread one does not, and the next request opens another.
    #[tokio::test(flavor = "current_thread")]
    async fn connections_come_back_when_bodies_end() {
        let (addr, connections) = counting_server().await;
        for _ in 0..3 {
            let resp = send(addr, false, get(addr)).await.unwrap();
            assert_eq!(body(resp).await, "1");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        assert_eq!(pooled_here().0, 1);
        // Two at once: the second needs a connection of its own.
        let (a, b) = tokio::join!(send(addr, false, get(addr)), send(addr, false, get(addr)));
        let mut seen = vec![body(a.unwrap()).await, body(b.unwrap()).await];
        seen.sort();
        assert_eq!(seen, ["1", "2"]);
        assert_eq!(pooled_here().0, 2);
    }

    /// A pooled connection the endpoint closed is not an error: the request goes on a
    /// new connection.
    #[tokio::test(flavor = "current_thread")]
    async fn a_closed_pooled_connection_is_replaced() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            // Each connection answers one request, keep-alive, then closes.
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                drop(s);
            }
        });
        for _ in 0..3 {
            let resp = send(addr, false, get(addr)).await.unwrap();
            assert_eq!(body(resp).await, "ok");
            // Let the pooled connection see its close.
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn refused_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = send(addr, false, get(addr)).await.unwrap_err();
        assert!(e.is_connect(), "{e}");
    }

    /// Idle connections past [`IDLE_TIMEOUT`] are dropped by the sweep, and not taken.
    #[tokio::test(flavor = "current_thread")]
    async fn stale_connections_are_dropped() {
        let (addr, _) = counting_server().await;
        let mut pool = Pool::default();
        let long_ago = Instant::now() - IDLE_TIMEOUT - Duration::from_secs(1);
        for _ in 0..2 {
            let sender = connect_http1(addr).await.ok().unwrap();
            pool.http1.entry(addr).or_default().push((sender, long_ago));
        }
        let fresh = connect_http1(addr).await.ok().unwrap();
        pool.http1
            .entry(addr)
            .or_default()
            .insert(0, (fresh, Instant::now()));
        // The two stale ones are skipped (most recent first), the fresh one is taken.
        assert!(pool.take(addr, Instant::now()).is_some());
        assert_eq!(pool.counts(), (0, 0));
        let (stale, fresh) = (connect_http1(addr).await, connect_http1(addr).await);
        pool.http1
            .entry(addr)
            .or_default()
            .push((stale.ok().unwrap(), long_ago));
        pool.http1
            .entry(addr)
            .or_default()
            .push((fresh.ok().unwrap(), Instant::now()));
        pool.sweep(Instant::now());
        assert_eq!(pool.counts(), (1, 0));
        pool.sweep(Instant::now() + IDLE_TIMEOUT);
        assert!(pool.http1.is_empty());
    }
}
