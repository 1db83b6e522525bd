//! The HTTPS client of one webhook: hyper-util's pooled client over a connector that resolves
//! the webhook's URL host, or its Service's ready endpoints, and speaks TLS verified with the
//! `caBundle` (the system roots when there is none), as upstream's `webhookutil.ClientManager`.
//!
//! For a Service the TLS server name is `<name>.<namespace>.svc` while the TCP connection goes
//! to an endpoint's address: upstream dials through its service resolver the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How much of a webhook's response is read; a larger one is a failed call.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Where a webhook is reached.
#[derive(Clone)]
pub enum Endpoint {
    /// `clientConfig.url`: `https://host[:port][/path]`.
    Url {
        host: String,
        port: u16,
        /// The URL as written, for requests and messages.
        url: String,
    },
    /// `clientConfig.service`, resolved through its Endpoints on each new connection.
    Service {
        namespace: String,
        name: String,
        port: u16,
        path: String,
        service_key: String,
        endpoints_key: String,
        store: Arc<dyn skiff_store::Store>,
    },
}

impl Endpoint {
    /// Parses a `url` client config; upstream's validation allows only `https`.
    pub fn url(url: &str) -> Result<Endpoint, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("invalid webhook URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!(
                "invalid webhook URL {url:?}: 'https' is the only allowed URL scheme"
            ));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("invalid webhook URL {url:?}: host must be specified"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Endpoint::Url {
            host,
            port: uri.port_u16().unwrap_or(443),
            url: url.to_owned(),
        })
    }

    /// The TLS server name the webhook's certificate must be valid for.
    fn server_name(&self) -> String {
        match self {
            Endpoint::Url { host, .. } => host.clone(),
            Endpoint::Service {
                namespace, name, ..
            } => format!("{name}.{namespace}.svc"),
        }
    }

    /// The URL a request goes to, before the `timeout` parameter.
    fn base_url(&self) -> String {
        match self {
            Endpoint::Url { url, .. } => url.clone(),
            Endpoint::Service { port, path, .. } => {
                format!("https://{}:{port}{path}", self.server_name())
            }
        }
    }

    /// The address to connect to: the URL's host looked up, or a ready endpoint of the
    /// Service (upstream's `ResolveEndpoint`, with its messages).
    async fn resolve(&self, turn: usize) -> Result<SocketAddr, String> {
        match self {
            Endpoint::Url { host, port, .. } => {
                let mut addrs = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| format!("dial tcp: lookup {host}: {e}"))?;
                addrs
                    .next()
                    .ok_or_else(|| format!("dial tcp: lookup {host}: no such host"))
            }
            Endpoint::Service {
                name,
                port,
                service_key,
                endpoints_key,
                store,
                ..
            } => {
                let read = |key: &str| -> Result<Option<Value>, String> {
                    match store.get(key).map_err(|e| e.to_string())? {
                        None => Ok(None),
                        Some(kv) => serde_json::from_slice(&kv.value)
                            .map(Some)
                            .map_err(|e| e.to_string()),
                    }
                };
                let svc =
                    read(service_key)?.ok_or_else(|| format!("service \"{name}\" not found"))?;
                let svc_type = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
                if !matches!(svc_type, "ClusterIP" | "LoadBalancer" | "NodePort") {
                    return Err(format!("unsupported service type {svc_type:?}"));
                }
                let svc_port = svc["spec"]["ports"]
                    .as_array()
                    .and_then(|ports| {
                        ports
                            .iter()
                            .find(|p| p["port"].as_u64() == Some(*port as u64))
                    })
                    .ok_or_else(|| format!("no service port {port} found for service {name:?}"))?;
                let port_name = svc_port["name"].as_str().unwrap_or_default();
                let eps = read(endpoints_key)?
                    .ok_or_else(|| format!("endpoints \"{name}\" not found"))?;
                let no_endpoints = || format!("no endpoints available for service {name:?}");
                let subsets = eps["subsets"].as_array().ok_or_else(no_endpoints)?;
                for i in 0..subsets.len() {
                    let ss = &subsets[(turn + i) % subsets.len()];
                    let Some(addresses) = ss["addresses"].as_array().filter(|a| !a.is_empty())
                    else {
                        continue;
                    };
                    let Some(target) = ss["ports"].as_array().and_then(|ports| {
                        ports
                            .iter()
                            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
                    }) else {
                        continue;
                    };
                    let ip = addresses[turn % addresses.len()]["ip"]
                        .as_str()
                        .unwrap_or_default();
                    let target_port = target["port"].as_u64().unwrap_or(0) as u16;
                    return ip
                        .parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, target_port))
                        .map_err(|_| format!("endpoint address {ip:?} is not an IP"));
                }
                Err(no_endpoints())
            }
        }
    }
}

/// The system's root certificates, loaded once (a blocking read of the trust store; callers
/// build clients off the async runtime).
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    })
}

/// TLS settings: the `caBundle`'s certificates as the only roots, else the system's.
fn tls_config(ca_bundle: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let roots = match ca_bundle {
        None => system_roots().clone(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("unable to load root certificates: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("unable to load root certificates: {e}"))?;
            }
            if roots.is_empty() {
                return Err("unable to load root certificates: no certificates found".into());
            }
            roots
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Makes connections for the pooled client: resolve, TCP, TLS.
#[derive(Clone)]
struct Connector {
    endpoint: Arc<Endpoint>,
    tls: TlsConnector,
    server_name: ServerName<'static>,
    /// Rotates through a Service's endpoints across new connections.
    turn: Arc<AtomicUsize>,
}

/// A TLS connection as hyper's pooled client wants it.
struct Stream(TokioIo<TlsStream<TcpStream>>);

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Why a connection could not be made, in Go's words where they are well known.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ConnectError(String);

fn dial_error(addr: SocketAddr, e: &std::io::Error) -> String {
    let what = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        std::io::ErrorKind::ConnectionReset => "connection reset by peer".to_owned(),
        std::io::ErrorKind::HostUnreachable => "no route to host".to_owned(),
        std::io::ErrorKind::NetworkUnreachable => "network is unreachable".to_owned(),
        _ => e.to_string(),
    };
    format!("dial tcp {addr}: connect: {what}")
}

fn tls_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("UnknownIssuer") {
        return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
            .into();
    }
    if text.contains("NotValidForName") {
        return format!("tls: failed to verify certificate: x509: {text}");
    }
    format!("remote error: tls: {text}")
}

impl tower::Service<hyper::Uri> for Connector {
    type Response = Stream;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: hyper::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let turn = this.turn.fetch_add(1, Ordering::Relaxed);
            let addr = this.endpoint.resolve(turn).await.map_err(ConnectError)?;
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| ConnectError(dial_error(addr, &e)))?;
            let _ = tcp.set_nodelay(true);
            let tls = this
                .tls
                .connect(this.server_name.clone(), tcp)
                .await
                .map_err(|e| ConnectError(tls_error(&e)))?;
            Ok(Stream(TokioIo::new(tls)))
        })
    }
}

/// One webhook's client: connections are pooled across requests.
pub struct HookClient {
    client: Client<Connector, String>,
    base_url: String,
}

/// How a call failed, worded as Go's HTTP client words it after `Post "<url>": `.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Connecting, sending or reading failed, or the timeout passed.
    #[error("Post {url:?}: {reason}")]
    Transport { url: String, reason: String },
    /// The webhook answered with an error status (client-go's unstructured response error).
    #[error("{0}")]
    Status(String),
}

impl HookClient {
    /// Builds a client; fails on a caBundle with no usable certificate or a bad server name.
    pub fn new(endpoint: Endpoint, ca_bundle: Option<&[u8]>) -> Result<HookClient, String> {
        let server_name = ServerName::try_from(endpoint.server_name())
            .map_err(|e| format!("invalid server name: {e}"))?;
        let base_url = endpoint.base_url();
        let connector = Connector {
            endpoint: Arc::new(endpoint),
            tls: TlsConnector::from(Arc::new(tls_config(ca_bundle)?)),
            server_name,
            turn: Arc::new(AtomicUsize::new(0)),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(HookClient { client, base_url })
    }

    /// POSTs `body` and returns the response body, within `timeout` (sent to the webhook as
    /// `?timeout=`, as upstream's REST client does).
    pub async fn post(&self, body: String, timeout: Duration) -> Result<bytes::Bytes, CallError> {
        let separator = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{separator}timeout={}s", self.base_url, timeout.as_secs());
        let transport = |reason: String| CallError::Transport {
            url: url.clone(),
            reason,
        };
        let uri: hyper::Uri = url.parse().map_err(|e| transport(format!("{e}")))?;
        let req = hyper::Request::post(uri)
            .header("content-type", "application/json")
            .header("accept", "application/json, */*")
            .body(body)
            .map_err(|e| transport(e.to_string()))?;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| transport(root_cause(&e)))?;
            let status = resp.status();
            let body =
                axum::body::to_bytes(axum::body::Body::new(resp.into_body()), MAX_RESPONSE_BYTES)
                    .await
                    .map_err(|e| transport(root_cause(&e)))?;
            if !status.is_success() {
                return Err(CallError::Status(status_error(status, &body)));
            }
            Ok(body)
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(transport("context deadline exceeded".into())),
        }
    }
}

/// The innermost cause of a client error: our connector's message, or hyper's.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = current.source() {
        if let Some(c) = next.downcast_ref::<ConnectError>() {
            return c.0.clone();
        }
        current = next;
    }
    current.to_string()
}

/// client-go's `newUnstructuredResponseError`, or the Status's message when the body is one.
fn status_error(status: hyper::StatusCode, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if v["kind"] == "Status" {
            if let Some(m) = v["message"].as_str() {
                return m.to_owned();
            }
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    match status.as_u16() {
        400 => "the server rejected our request for an unknown reason".into(),
        401 => "Unauthorized".into(),
        403 => text,
        404 => "the server could not find the requested resource".into(),
        405 => "the server does not allow this method on the requested resource".into(),
        409 => "the server reported a conflict".into(),
        413 => "the server has rejected the request due to its size".into(),
        429 => "the server has received too many requests and has asked us to try again later"
            .into(),
        500 => format!("an error on the server ({text:?}) has prevented the request from succeeding"),
        503 => "the server is currently unable to handle the request".into(),
        504 => "the server was unable to return a response in the time allotted, but may still be processing the request".into(),
        code => format!("an error on the server ({text:?}) has prevented the request from succeeding (post {code})"),
    }
}
