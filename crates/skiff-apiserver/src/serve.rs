//! Serving the API over HTTPS: the cluster CA and serving certificate, the admin token,
//! the kubeconfig that ties them together, and the accept loop (HTTP/1.1 and HTTP/2).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Why the server could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The common name of the aggregator's client certificate, the one name
/// `requestheader-allowed-names` allows.
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";
/// The common name of the client certificate the API server presents to nodes' kubelet
/// endpoints (kubeadm's `apiserver-kubelet-client`); RBAC binds it to
/// `system:kubelet-api-admin` (decision 0034).
pub const KUBELET_CLIENT: &str = "kube-apiserver-kubelet-client";

/// The cluster's credentials, kept under `<data-dir>/pki`.
pub struct Credentials {
    pub ca_pem: String,
    pub admin_token: String,
    /// The aggregator's client certificate (CN `front-proxy-client`, signed by the CA) and
    /// its key, PEM: what it presents to extension API servers.
    pub front_proxy_cert_pem: String,
    pub front_proxy_key_pem: String,
    /// The API server's client certificate for nodes (CN `kube-apiserver-kubelet-client`)
    /// and its key, PEM: what it presents on the kubelet port (upstream's
    /// `--kubelet-client-certificate`).
    pub kubelet_client_cert_pem: String,
    pub kubelet_client_key_pem: String,
    server_cert: CertificateDer<'static>,
    server_key: PrivateKeyDer<'static>,
}

/// Writes a key or token readable by its owner only: 0600 also when the file was there
/// before with wider permissions (`mode` applies to new files alone).
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), ServeError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(path))?;
    std::io::Write::write_all(&mut f, contents.as_bytes()).map_err(io_err(path))
}

/// How long the CA is valid: upstream kubeadm's and k3s's ten years.
pub const CA_LIFETIME: Duration = Duration::from_secs(3650 * 24 * 3600);
/// Serving and client certificates: kubeadm's and k3s's one year.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates closer than this to their end are renewed at start, as k3s does.
pub const RENEW_BEFORE: Duration = Duration::from_secs(90 * 24 * 3600);

/// Valid from a minute ago (clock skew) for `lifetime`.
fn set_validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(60)).into();
    params.not_after = (now + lifetime).into();
}

/// The self-signed CA certificate for `key`, written to `path`.
fn write_ca(path: &Path, key: &KeyPair) -> Result<(), ServeError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "skiff-ca");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_LIFETIME);
    let cert = params.self_signed(key)?;
    std::fs::write(path, cert.pem()).map_err(io_err(path))
}

/// When the certificate at `path` stops being valid.
pub fn not_after(path: &Path) -> Result<SystemTime, ServeError> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(io_err(path))?;
    let unreadable =
        |e: String| ServeError::Tls(rustls::Error::General(format!("{}: {e}", path.display())));
    let der = CertificateDer::from_pem_slice(&pem).map_err(|e| unreadable(e.to_string()))?;
    skiff_auth::x509::not_after(&der).map_err(|e| unreadable(e.to_string()))
}

/// Whether the certificate at `path` is within [`RENEW_BEFORE`] of its end.
fn renewal_due(path: &Path) -> Result<bool, ServeError> {
    Ok(needs_renewal(not_after(path)?, SystemTime::now()))
}

/// The renewal rule, pure: less than [`RENEW_BEFORE`] left (or already expired).
pub fn needs_renewal(not_after: SystemTime, now: SystemTime) -> bool {
    not_after
        .duration_since(now)
        .map_or(true, |left| left < RENEW_BEFORE)
}

/// `skiff certificate rotate`: renews the CA certificate (same key) and the front-proxy
/// and kubelet client certificates now, whatever their dates. Returns each file renewed with its new end
/// (RFC 3339). The serving certificate is issued afresh at every start.
pub fn rotate_certificates(dir: &Path) -> Result<Vec<(String, String)>, ServeError> {
    let ca_key_path = dir.join("ca.key");
    let ca_cert_path = dir.join("ca.crt");
    let key_pem = std::fs::read_to_string(&ca_key_path).map_err(io_err(&ca_key_path))?;
    write_ca(&ca_cert_path, &KeyPair::from_pem(&key_pem)?)?;
    // Missing files are reissued by the load that follows.
    for (stem, _) in CLIENT_CERTIFICATES {
        let _ = std::fs::remove_file(dir.join(format!("{stem}.crt")));
    }
    Credentials::load_or_create(dir, &[])?;
    let mut out = Vec::new();
    let names = ["ca.crt".to_owned()].into_iter().chain(
        CLIENT_CERTIFICATES
            .iter()
            .map(|(stem, _)| format!("{stem}.crt")),
    );
    for name in names {
        let end: chrono::DateTime<chrono::Utc> = not_after(&dir.join(&name))?.into();
        out.push((name, end.to_rfc3339()));
    }
    Ok(out)
}

/// The client certificates kept under the data dir, by file stem and common name: the
/// aggregator's for extension servers and the API server's for nodes.
const CLIENT_CERTIFICATES: [(&str, &str); 2] = [
    ("front-proxy-client", FRONT_PROXY_CLIENT),
    ("apiserver-kubelet-client", KUBELET_CLIENT),
];

/// The client certificate `<stem>.crt` and its key `<stem>.key` (PEM) for `common_name`,
/// signed by the CA: issued when missing, due for renewal, or `force`d (a new CA).
fn client_leaf(
    dir: &Path,
    (stem, common_name): (&str, &str),
    issuer: &Issuer<'_, KeyPair>,
    force: bool,
) -> Result<(String, String), ServeError> {
    let cert_path = dir.join(format!("{stem}.crt"));
    let key_path = dir.join(format!("{stem}.key"));
    if force || !cert_path.exists() || !key_path.exists() || renewal_due(&cert_path)? {
        // Upstream signs the front-proxy certificate with a separate front-proxy CA; skiff
        // has one CA, and extension servers tell this certificate from users' by its CN
        // (`requestheader-allowed-names`).
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        set_validity(&mut params, LEAF_LIFETIME);
        let cert = params.signed_by(&key, issuer)?;
        write_private(&key_path, &key.serialize_pem())?;
        std::fs::write(&cert_path, cert.pem()).map_err(io_err(&cert_path))?;
    }
    let cert = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
    let key = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
    Ok((cert, key))
}

impl Credentials {
    /// Loads the CA and admin token, creating them on first start, and issues a fresh
    /// serving certificate for `hosts` (names and IPs) signed by the CA.
    pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Credentials, ServeError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let ca_key_path = dir.join("ca.key");
        let ca_cert_path = dir.join("ca.crt");
        let token_path = dir.join("admin.token");
        let new_ca = !ca_key_path.exists() || !ca_cert_path.exists();
        if new_ca {
            let key = KeyPair::generate()?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            write_ca(&ca_cert_path, &key)?;
        } else if renewal_due(&ca_cert_path)? {
            // Same key and name: everything the old CA certificate signed stays valid.
            let key_pem = std::fs::read_to_string(&ca_key_path).map_err(io_err(&ca_key_path))?;
            write_ca(&ca_cert_path, &KeyPair::from_pem(&key_pem)?)?;
            tracing::info!(path = %ca_cert_path.display(), "renewed the CA certificate");
        }
        if !token_path.exists() {
            let token = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            write_private(&token_path, &token)?;
        }
        let ca_pem = std::fs::read_to_string(&ca_cert_path).map_err(io_err(&ca_cert_path))?;
        let ca_key_pem = std::fs::read_to_string(&ca_key_path).map_err(io_err(&ca_key_path))?;
        let admin_token = std::fs::read_to_string(&token_path)
            .map_err(io_err(&token_path))?
            .trim()
            .to_owned();
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key_pem)?)?;
        let [(front_proxy_cert_pem, front_proxy_key_pem), (kubelet_client_cert_pem, kubelet_client_key_pem)] = [
            client_leaf(dir, CLIENT_CERTIFICATES[0], &issuer, new_ca)?,
            client_leaf(dir, CLIENT_CERTIFICATES[1], &issuer, new_ca)?,
        ];
        let server_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut params, LEAF_LIFETIME);
        let cert = params.signed_by(&server_key, &issuer)?;
        Ok(Credentials {
            ca_pem,
            admin_token,
            front_proxy_cert_pem,
            front_proxy_key_pem,
            kubelet_client_cert_pem,
            kubelet_client_key_pem,
            server_cert: cert.der().clone(),
            server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        })
    }

    /// The TLS configuration: this server's certificate, and client certificates signed
    /// by the cluster CA accepted but not required (upstream's `--client-ca-file`), so
    /// token clients and certificate clients share the port.
    fn tls_config(&self) -> Result<rustls::ServerConfig, ServeError> {
        use rustls::pki_types::pem::PemObject;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(self.ca_pem.as_bytes())
            .map_err(|e| rustls::Error::General(format!("the cluster CA: {e}")))?;
        roots.add(ca)?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| rustls::Error::General(format!("client certificate verifier: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.server_cert.clone()], self.server_key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// A kubeconfig for the admin at `server_url`.
    pub fn kubeconfig(&self, server_url: &str) -> String {
        kubeconfig(server_url, &self.ca_pem, &self.admin_token)
    }
}

/// A kubeconfig for `server_url` that trusts `ca_pem` and authenticates with `token` (what
/// `skiff server` writes for users, and `skiff agent` for itself).
pub fn kubeconfig(server_url: &str, ca_pem: &str, token: &str) -> String {
    kubeconfig_for(
        server_url,
        ca_pem,
        "admin",
        &format!("    token: {token}\n"),
        "default",
    )
}

/// A kubeconfig for `user` that authenticates with a client certificate and its key (PEM),
/// in `namespace`: what `skiff kubeconfig` hands to a new user.
pub fn client_certificate_kubeconfig(
    server_url: &str,
    ca_pem: &str,
    user: &str,
    cert_pem: &str,
    key_pem: &str,
    namespace: &str,
) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    kubeconfig_for(
        server_url,
        ca_pem,
        user,
        &format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(cert_pem),
            b64(key_pem)
        ),
        namespace,
    )
}

/// A kubeconfig for `user` whose client certificate and key are read from `pem` (one file
/// holding both, which its owner renews in place): what `skiff agent` writes once it has
/// its node certificate, as the kubelet's kubeconfig points at
/// `kubelet-client-current.pem`.
pub fn client_certificate_file_kubeconfig(
    server_url: &str,
    ca_pem: &str,
    user: &str,
    pem: &std::path::Path,
) -> String {
    // A JSON string is a YAML scalar, whatever the path holds.
    let path = serde_json::Value::from(pem.to_string_lossy().into_owned()).to_string();
    kubeconfig_for(
        server_url,
        ca_pem,
        user,
        &format!("    client-certificate: {path}\n    client-key: {path}\n"),
        "default",
    )
}

/// The one kubeconfig layout: cluster `skiff`, one user (`credentials` are its indented
/// `user:` fields), one context. Names are quoted, being user input.
fn kubeconfig_for(
    server_url: &str,
    ca_pem: &str,
    user: &str,
    credentials: &str,
    namespace: &str,
) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let user = serde_json::to_string(user).expect("strings serialize");
    let namespace = serde_json::to_string(namespace).expect("strings serialize");
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n{credentials}contexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: {user}\n    namespace: {namespace}\ncurrent-context: skiff\npreferences: {{}}\n"
    )
}

/// A listener on `addr` that may be bound before the address exists on this host
/// (`IP_FREEBIND`): a loopback-only server's second listener on the pod bridge's gateway,
/// which the node agent creates after the API serves (decision 0022). Connections arrive
/// once the bridge has the address; until then nothing can reach it.
pub fn bind_freebind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |source| ServeError::Io {
        path: PathBuf::from(addr.to_string()),
        source,
    };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    match addr {
        SocketAddr::V4(_) => socket.set_freebind_v4(true),
        SocketAddr::V6(_) => socket.set_freebind_v6(true),
    }
    .map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    TcpListener::from_std(socket.into()).map_err(err)
}

/// Accepts TLS connections on `listener` and serves `router` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    credentials: &Credentials,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_all(vec![listener], credentials, router, shutdown).await
}

/// [`serve`] on several listeners at once: the same router, TLS credentials and
/// authentication on each.
pub async fn serve_all(
    listeners: Vec<TcpListener>,
    credentials: &Credentials,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let acceptor = TlsAcceptor::from(Arc::new(credentials.tls_config()?));
    if listeners.is_empty() {
        shutdown.await;
        return Ok(());
    }
    tokio::pin!(shutdown);
    loop {
        let accepts = futures::future::select_all(listeners.iter().map(|l| Box::pin(l.accept())));
        let (tcp, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            (accepted, _, _) = accepts => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            // The handshake verified any certificate against the CA; who it names goes
            // with every request of the connection.
            let identity = crate::http::PeerIdentity(
                skiff_auth::x509::user_from_peer_chain(tls.get_ref().1.peer_certificates())
                    .map(Arc::new),
            );
            let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                router,
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(identity.clone());
                    req
                },
            ));
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_rule() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let day = Duration::from_secs(24 * 3600);
        let cases = [
            (now + 365 * day, false),
            (now + 91 * day, false),
            (now + 89 * day, true),
            (now, true),
            (now - day, true),
        ];
        for (end, want) in cases {
            assert_eq!(needs_renewal(end, now), want, "{end:?}");
        }
    }

    #[test]
    fn certificates_have_finite_lifetimes_and_rotate_with_the_same_ca_key() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Credentials::load_or_create(dir.path(), &["localhost".into()]).unwrap();
        let left = |name: &str| {
            not_after(&dir.path().join(name))
                .unwrap()
                .duration_since(SystemTime::now())
                .unwrap()
        };
        let close =
            |got: Duration, want: Duration| got <= want && got + Duration::from_secs(300) > want;
        assert!(close(left("ca.crt"), CA_LIFETIME));
        assert!(close(left("front-proxy-client.crt"), LEAF_LIFETIME));
        let serving = skiff_auth::x509::not_after(&creds.server_cert).unwrap();
        assert!(close(
            serving.duration_since(SystemTime::now()).unwrap(),
            LEAF_LIFETIME
        ));

        let key = std::fs::read(dir.path().join("ca.key")).unwrap();
        let proxy = std::fs::read(dir.path().join("front-proxy-client.crt")).unwrap();
        let renewed = rotate_certificates(dir.path()).unwrap();
        assert_eq!(renewed.len(), 3);
        assert_eq!(std::fs::read(dir.path().join("ca.key")).unwrap(), key);
        assert_ne!(
            std::fs::read(dir.path().join("front-proxy-client.crt")).unwrap(),
            proxy
        );
    }
}
