//! The node's client certificate, as the kubelet's TLS bootstrap and client certificate
//! rotation (decision 0044): with a bootstrap token, `skiff agent` makes a key and asks for
//! a `kubernetes.io/kube-apiserver-client-kubelet` certificate for `system:node:<name>` in
//! `system:nodes`; the controllers' approver approves it (the token's group may create
//! `certificatesigningrequests/nodeclient`) and the signer signs it. The certificate and its
//! key are kept together in `<data-dir>/pki/kubelet-client-current.pem` (0600), as the
//! kubelet keeps them, and reused at the next start while valid, so the bootstrap token is
//! needed once. Every API client of the agent presents the current certificate through a
//! [`Resolver`]; after 80 % of its lifetime the node asks for a new one with its own
//! identity (`selfnodeclient`), and new connections present it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::servingcert;
pub use super::servingcert::{Error, Pair};

/// The signer of kubelet client certificates.
pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The file holding the certificate and its key (PEM), in the node's `pki` directory.
pub const FILE: &str = "kubelet-client-current.pem";
/// What the kubelet asks for with an ECDSA key.
const USAGES: [&str; 2] = ["digital signature", "client auth"];
/// After a failed renewal, the next attempt.
const RETRY: Duration = Duration::from_secs(30);

/// Where the certificate of the node whose `pki` directory is `dir` is kept.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The certificate (all `CERTIFICATE` blocks) and key (the other block) of one PEM file.
fn split(pem: &str) -> Option<Pair> {
    let (mut certs, mut key) = (String::new(), String::new());
    let mut current: Option<&mut String> = None;
    for line in pem.lines() {
        if let Some(label) = line.strip_prefix("-----BEGIN ") {
            current = Some(if label.starts_with("CERTIFICATE") {
                &mut certs
            } else {
                &mut key
            });
        }
        if let Some(out) = current.as_deref_mut() {
            out.push_str(line);
            out.push('\n');
        }
        if line.starts_with("-----END ") {
            current = None;
        }
    }
    (!certs.is_empty() && !key.is_empty()).then_some(Pair {
        cert_pem: certs,
        key_pem: key,
    })
}

/// The subject common name of a PEM certificate.
fn common_name(cert_pem: &str) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// Whether `pair` is `node_name`'s certificate and still valid at `now`.
fn valid_for(pair: &Pair, node_name: &str, now: SystemTime) -> bool {
    common_name(&pair.cert_pem).as_deref() == Some(&format!("system:node:{node_name}"))
        && servingcert::inspect(&pair.cert_pem).is_some_and(|(from, to, _)| from <= now && now < to)
}

/// The stored certificate of `node_name`, when there is one still valid.
pub fn stored(dir: &Path, node_name: &str) -> Option<Pair> {
    let pair = split(&std::fs::read_to_string(path(dir)).ok()?)?;
    valid_for(&pair, node_name, SystemTime::now()).then_some(pair)
}

/// Writes `pair` as one file (0600), replacing the old one by a rename, so a reader sees
/// the old or the new pair whole.
fn store(dir: &Path, pair: &Pair) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (file, tmp) = (path(dir), dir.join(format!("{FILE}.tmp")));
    servingcert::write_private(&tmp, &format!("{}{}", pair.cert_pem, pair.key_pem))
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &file).map_err(io(&file))
}

/// Asks the cluster for a client certificate for `node_name` with `client`'s credentials
/// (a bootstrap token's, or the node's own when renewing), waits for it, and stores it in
/// `dir`.
pub async fn request(client: &kube::Client, node_name: &str, dir: &Path) -> Result<Pair, Error> {
    let pair = servingcert::request(client, node_name, SIGNER, &USAGES, &[], false).await?;
    store(dir, &pair)?;
    Ok(pair)
}

/// The client certificate rustls presents; [`Resolver::set`] swaps in a renewed one.
#[derive(Debug)]
pub struct Resolver(RwLock<Arc<CertifiedKey>>);

impl Resolver {
    /// Presents `pair`.
    pub fn new(pair: &Pair) -> Result<Resolver, Error> {
        Ok(Resolver(RwLock::new(servingcert::certified(pair)?)))
    }

    /// Presents `pair` from the next handshake on.
    pub fn set(&self, pair: &Pair) -> Result<(), Error> {
        let key = servingcert::certified(pair)?;
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }
}

impl ResolvesClientCert for Resolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client of `config`'s server (its CA, headers and timeouts): kube's own stack, but
/// presenting `resolver`'s current certificate when there is one (kube reads the TLS
/// client's certificate once, when it builds a client), and connecting through
/// `servers`' failover when given (`skiff agent --server URL1,URL2`, see
/// [`super::failover`]).
pub fn client(
    config: &kube::Config,
    resolver: Option<Arc<Resolver>>,
    servers: Option<Arc<super::failover::Servers>>,
) -> Result<kube::Client, Error> {
    use kube::client::ConfigExt;
    let kube_err = |e: kube::Error| Error::Key(e.to_string());
    let mut tls = config.rustls_client_config().map_err(kube_err)?;
    if let Some(resolver) = resolver {
        tls.client_auth_cert_resolver = resolver;
    }
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let several = servers.as_ref().is_some_and(|s| s.len() > 1);
    http.set_connect_timeout(match several {
        true => Some(super::failover::CONNECT_TIMEOUT),
        false => config.connect_timeout,
    });
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    match servers {
        Some(servers) => stack(
            config,
            super::failover::FailoverConnector::new(https, servers),
        ),
        None => stack(config, https),
    }
}

/// kube's layers (base URI, auth, headers) over a hyper client on `connector`.
fn stack<C>(config: &kube::Config, connector: C) -> Result<kube::Client, Error>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    use kube::client::ConfigExt;
    let kube_err = |e: kube::Error| Error::Key(e.to_string());
    let inner = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(kube_err)?)
        .layer(config.extra_headers_layer().map_err(kube_err)?)
        .map_err(tower::BoxError::from)
        .service(inner);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}

/// Renews the certificate after 80 % of its lifetime, as the node itself, for as long as
/// the agent runs; each new certificate is stored and presented from the next connection.
pub async fn keep_renewed(
    client: kube::Client,
    node_name: String,
    dir: PathBuf,
    mut current: Pair,
    resolver: Arc<Resolver>,
) {
    loop {
        let at = servingcert::inspect(&current.cert_pem)
            .map(|(from, to, _)| servingcert::renew_at(from, to))
            .unwrap_or_else(SystemTime::now);
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::time::sleep(wait).await;
        let renewed = request(&client, &node_name, &dir)
            .await
            .and_then(|pair| resolver.set(&pair).map(|()| pair));
        match renewed {
            Ok(pair) => {
                tracing::info!("renewed the node's client certificate");
                current = pair;
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the node's client certificate");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(cn: &str, valid: bool) -> Pair {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(if valid { 2100 } else { 2001 }, 1, 1);
        Pair {
            cert_pem: params.self_signed(&key).unwrap().pem(),
            key_pem: key.serialize_pem(),
        }
    }

    #[test]
    fn stored_pair_round_trips_and_is_the_nodes_own() {
        let dir = tempfile::tempdir().unwrap();
        let pair = certificate("system:node:n1", true);
        store(dir.path(), &pair).unwrap();
        let back = stored(dir.path(), "n1").expect("stored");
        assert_eq!(back.cert_pem, pair.cert_pem);
        assert_eq!(back.key_pem, pair.key_pem);
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Another node's certificate is no use to this one.
        assert!(stored(dir.path(), "n2").is_none());
        assert!(Resolver::new(&back).is_ok());
    }

    #[test]
    fn expired_or_garbled_certificates_are_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), &certificate("system:node:n1", false)).unwrap();
        assert!(stored(dir.path(), "n1").is_none());
        std::fs::write(path(dir.path()), "not a pem").unwrap();
        assert!(stored(dir.path(), "n1").is_none());
        assert!(split("-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n").is_none());
    }
}
