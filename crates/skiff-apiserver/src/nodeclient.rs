//! The API server's client to nodes' kubelet endpoints (decision 0034): every call the API
//! server makes to a node — `pods/log`, `pods/exec`, `attach` and `portforward`, the
//! resource-metrics scrape of `/stats/summary` — dials through [`NodeClient::connect`]:
//! HTTPS to the node's InternalIP and `kubeletEndpoint` port, the node's serving
//! certificate verified against the cluster CA for that address, and the API server's own
//! client certificate (CN `kube-apiserver-kubelet-client`) presented, as kube-apiserver's
//! `--kubelet-certificate-authority` and `--kubelet-client-certificate` do.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::handler::Api;
use crate::podlogs::node_endpoint;

/// How long dialing a node and the TLS handshake may take (upstream's kubelet dialer: 30 s;
/// a node this slow to accept is as good as unreachable for a request).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS settings for nodes, set once the server has its credentials.
#[derive(Default)]
pub struct NodeClient {
    config: RwLock<Option<Arc<rustls::ClientConfig>>>,
}

/// One HTTP/1.1 connection to a node, its driver spawned with upgrades enabled.
pub struct Connection {
    pub sender: SendRequest<Body>,
    /// `host:port`, for the `Host` header.
    pub authority: String,
}

impl NodeClient {
    /// Trusts nodes whose serving certificate chains to `ca_pem` and presents the client
    /// certificate `cert_pem` with `key_pem` (all PEM).
    pub fn set_identity(&self, ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        let config = client_config(ca_pem, cert_pem, key_pem)?;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(config));
        Ok(())
    }

    /// Connects to the kubelet endpoint of `node_name`; the error says why, for the caller
    /// to wrap in its own message.
    pub async fn connect(&self, api: &Api, node_name: &str) -> Result<Connection, String> {
        let config = self
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or("the API server has no kubelet client certificate")?;
        let (host, port) = node_endpoint(api, node_name).map_err(|e| e.to_string())?;
        let authority = format!("{host}:{port}");
        let address = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = match address.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(address.to_owned()).map_err(|e| e.to_string())?,
        };
        let dial = async {
            let tcp = tokio::net::TcpStream::connect(&authority)
                .await
                .map_err(|e| format!("dial tcp {authority}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            tokio_rustls::TlsConnector::from(config)
                .connect(server_name, tcp)
                .await
                .map_err(|e| format!("tls with {authority}: {e}"))
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, dial)
            .await
            .map_err(|_| format!("dial tcp {authority}: i/o timeout"))??;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "node connection");
            }
        });
        Ok(Connection { sender, authority })
    }

    /// `GET path_and_query` on `node_name`'s kubelet endpoint; the response body streams
    /// from the node as it is read.
    pub async fn get(
        &self,
        api: &Api,
        node_name: &str,
        path_and_query: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let mut conn = self.connect(api, node_name).await?;
        let req = hyper::Request::get(path_and_query)
            .header(hyper::header::HOST, &conn.authority)
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        conn.sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The rustls client configuration for nodes: the cluster CA as the only root, the client
/// certificate for authentication, HTTP/1.1 (the streaming upgrades need it).
fn client_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("cluster CA: {e}"))?;
        roots.add(cert).map_err(|e| format!("cluster CA: {e}"))?;
    }
    if roots.is_empty() {
        return Err("cluster CA: no certificate in PEM".into());
    }
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("kubelet client certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("kubelet client key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| format!("kubelet client certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_must_be_pem() {
        let client = NodeClient::default();
        assert!(client.set_identity("junk", "junk", "junk").is_err());
    }
}
