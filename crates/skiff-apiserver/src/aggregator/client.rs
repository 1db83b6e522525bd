//! The HTTPS client to extension API servers: hyper-util's pooled client over a connector
//! that dials TCP and speaks TLS with tokio-rustls, verifying the server as
//! `<service>.<namespace>.svc` against the APIService's `caBundle` (or not at all, with
//! `insecureSkipTLSVerify`), as kube-aggregator's transport does, and presenting the
//! front-proxy client certificate (when the server has one) that extension servers require
//! before they believe `X-Remote-User`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use super::{Error, Result};

/// How long dialing a backend may take (upstream's dialer: 30 s; a backend this slow to
/// accept is as good as down for a request).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the system's trust roots are, for APIServices with neither a `caBundle` nor
/// `insecureSkipTLSVerify` (upstream then uses the system roots).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A client for one backend identity (TLS settings and server name).
pub type Client = hyper_util::client::legacy::Client<TlsConnector, axum::body::Body>;

/// How to verify a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Any certificate (`insecureSkipTLSVerify`, and upstream's availability probe).
    Insecure,
    /// Certificates chaining to these PEM roots (`caBundle`).
    Bundle(Vec<u8>),
    /// The system roots.
    System,
}

/// The client certificate (with its chain) and key the aggregator presents to backends
/// (upstream's `--proxy-client-cert-file`/`--proxy-client-key-file`).
#[derive(Debug)]
pub struct Identity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Reads a PEM certificate chain and its PEM private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Identity> {
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls(format!("proxy client certificate: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Tls(
                "proxy client certificate: no certificate in PEM".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| Error::Tls(format!("proxy client key: {e}")))?;
        Ok(Identity { certs, key })
    }
}

/// Builds a client that verifies backends as `server_name` under `trust`, presenting
/// `identity` when there is one.
pub fn build(trust: &Trust, server_name: &str, identity: Option<&Identity>) -> Result<Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = match trust {
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(skiff_auth::tls::InsecureVerifier::new(provider)),
        Trust::Bundle(pem) => builder.with_root_certificates(roots(pem, "caBundle")?),
        Trust::System => {
            let pem = std::fs::read(SYSTEM_ROOTS).unwrap_or_default();
            builder.with_root_certificates(
                roots(&pem, SYSTEM_ROOTS).unwrap_or_else(|_| rustls::RootCertStore::empty()),
            )
        }
    };
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.certs.clone(), id.key.clone_key())
            .map_err(|e| Error::Tls(format!("proxy client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    let server_name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| Error::Tls(format!("server name {server_name}: {e}")))?;
    let connector = TlsConnector {
        tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        server_name,
    };
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector),
    )
}

/// The root store of a PEM bundle; a bundle with no certificate in it is an error, as
/// upstream's `x509.CertPool.AppendCertsFromPEM` failing.
fn roots(pem: &[u8], what: &str) -> Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::Tls(format!("{what}: {e}")))?;
        store
            .add(cert)
            .map_err(|e| Error::Tls(format!("{what}: {e}")))?;
    }
    if store.is_empty() {
        return Err(Error::Tls(format!(
            "unable to load root certificates: {what} has no certificate"
        )));
    }
    Ok(store)
}

/// Dials `host:port` of each request's URI and wraps the stream in TLS for a fixed server
/// name (backends are reached by IP, but named by their Service).
#[derive(Clone)]
pub struct TlsConnector {
    tls: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl tower::Service<Uri> for TlsConnector {
    type Response = TlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let name = self.server_name.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "dial timed out"))??;
            let _ = tcp.set_nodelay(true);
            let stream = tls.connect(name, tcp).await?;
            Ok(TlsStream(TokioIo::new(stream)))
        })
    }
}

/// A TLS connection as hyper's client wants it.
pub struct TlsStream(TokioIo<tokio_rustls::client::TlsStream<TcpStream>>);

impl Connection for TlsStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
