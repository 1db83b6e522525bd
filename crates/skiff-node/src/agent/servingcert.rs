//! The node's serving certificate for its kubelet port (decision 0034), as the kubelet's
//! certificate manager with `serverTLSBootstrap`: a key made here, a
//! CertificateSigningRequest for `kubernetes.io/kubelet-serving` (CN `system:node:<name>`,
//! O `system:nodes`, the node's name and addresses and 127.0.0.1 as names), signed by the
//! cluster CA through the controllers' `csrsigning`. Upstream leaves the approval to the
//! cluster's operator or an approver: skiff's controllers approve a node's request for its
//! own names, and an agent running with admin credentials approves its own request. Kept in `<data-dir>/pki/kubelet-server.{crt,key}` and
//! reused while it covers the node's names, renewed after 80 % of its lifetime (the
//! kubelet rotates at 70–90 %) and swapped into the TLS server without a restart.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The signer of kubelet serving certificates.
pub const SIGNER: &str = "kubernetes.io/kubelet-serving";
/// How long the agent waits for its request to be signed.
const SIGNING_TIMEOUT: Duration = Duration::from_secs(60);
/// After a failed renewal, the next attempt.
const RETRY: Duration = Duration::from_secs(60);

/// Why the serving (or client, `clientcert`) certificate could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key, the request or the signed certificate could not be made or read.
    #[error("node certificate: {0}")]
    Key(String),
    /// An API call failed.
    #[error("node certificate request: {0}")]
    Api(#[from] kube::Error),
    /// The request was denied, failed, or not signed in time.
    #[error("node certificate request {name}: {reason}")]
    Refused {
        /// The CertificateSigningRequest.
        name: String,
        /// Why.
        reason: String,
    },
    /// The certificate could not be stored.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Names the certificate covers: the node name, its address and loopback.
pub fn hosts(node_name: &str, node_ip: &str) -> Vec<String> {
    let mut hosts = vec![node_name.to_owned(), node_ip.to_owned(), "127.0.0.1".into()];
    let mut seen = std::collections::HashSet::new();
    hosts.retain(|h| seen.insert(h.clone()));
    hosts
}

/// When a certificate valid from `not_before` to `not_after` is renewed: after 80 % of its
/// lifetime.
pub fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let life = not_after.duration_since(not_before).unwrap_or_default();
    not_before + life.mul_f64(0.8)
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Pair {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// Validity and names of a PEM certificate.
pub(crate) fn inspect(cert_pem: &str) -> Option<(SystemTime, SystemTime, Vec<String>)> {
    use x509_parser::extensions::GeneralName;
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let at = |t: i64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).ok()?));
    let (from, to) = (
        at(cert.validity().not_before.timestamp())?,
        at(cert.validity().not_after.timestamp())?,
    );
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => names.push((*d).to_owned()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => names
                        .push(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                    16 => names
                        .push(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Some((from, to, names))
}

/// Whether `pair` (a stored certificate) can still be served for `hosts` at `now`.
fn usable(pair: &Pair, hosts: &[String], now: SystemTime) -> bool {
    inspect(&pair.cert_pem).is_some_and(|(from, to, names)| {
        now < renew_at(from, to) && hosts.iter().all(|h| names.contains(h))
    })
}

/// The stored certificate when it is usable, else a newly signed one (stored).
pub async fn obtain(
    client: &kube::Client,
    node_name: &str,
    hosts: &[String],
    dir: &std::path::Path,
) -> Result<Pair, Error> {
    let (cert_path, key_path) = (
        dir.join("kubelet-server.crt"),
        dir.join("kubelet-server.key"),
    );
    if let (Ok(cert_pem), Ok(key_pem)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        let pair = Pair { cert_pem, key_pem };
        if usable(&pair, hosts, SystemTime::now()) {
            return Ok(pair);
        }
    }
    // An ECDSA key: no key encipherment, as the kubelet asks.
    let usages = ["digital signature", "server auth"];
    let pair = request(client, node_name, SIGNER, &usages, hosts, true).await?;
    let io = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_private(&key_path, &pair.key_pem).map_err(io(&key_path))?;
    std::fs::write(&cert_path, &pair.cert_pem).map_err(io(&cert_path))?;
    Ok(pair)
}

pub(crate) fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    std::io::Write::write_all(&mut f, contents.as_bytes())
}

/// Asks the cluster for a certificate of `signer` for the node (CN `system:node:<name>`, O
/// `system:nodes`, `hosts` as names), waits for its approval and signature, and returns it
/// with its new key. With `self_approve` the request approves itself when its requester
/// may (an agent on admin credentials); otherwise the cluster's approver decides.
pub(crate) async fn request(
    client: &kube::Client,
    node_name: &str,
    signer: &str,
    usages: &[&str],
    hosts: &[String],
    self_approve: bool,
) -> Result<Pair, Error> {
    let key_err = |e: rcgen::Error| Error::Key(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(key_err)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(key_err)?;
    for host in hosts {
        params.subject_alt_names.push(match host.parse() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(host.clone().try_into().map_err(key_err)?),
        });
    }
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("system:node:{node_name}"),
    );
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(key_err)?;
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let csr = CertificateSigningRequest {
        metadata: kube::api::ObjectMeta {
            generate_name: Some("csr-".into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.into_bytes()),
            signer_name: signer.into(),
            usages: Some(usages.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    let created = api.create(&PostParams::default(), &csr).await?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let approval = serde_json::json!({"status": {"conditions": [{
        "type": "Approved", "status": "True", "reason": "AutoApproved",
        "message": "the skiff node agent approved its own serving certificate",
    }]}});
    let waiting = || tracing::info!(csr = %name, %signer, "waiting for the certificate's approval");
    if self_approve {
        match api
            .patch_approval(&name, &PatchParams::default(), &Patch::Merge(&approval))
            .await
        {
            Ok(_) => {}
            // A node identity may not approve: the controllers' approver (for a node's
            // own names) or a person does.
            Err(kube::Error::Api(status)) if status.is_forbidden() => waiting(),
            Err(e) => return Err(e.into()),
        }
    } else {
        waiting();
    }
    let refused = |reason: String| Error::Refused {
        name: name.clone(),
        reason,
    };
    let signed = kube::runtime::wait::await_condition(
        api,
        &name,
        |csr: Option<&CertificateSigningRequest>| {
            csr.and_then(|c| c.status.as_ref()).is_some_and(|s| {
                s.certificate.as_ref().is_some_and(|c| !c.0.is_empty())
                    || s.conditions
                        .iter()
                        .flatten()
                        .any(|c| (c.type_ == "Failed" || c.type_ == "Denied") && c.status == "True")
            })
        },
    );
    let csr = tokio::time::timeout(SIGNING_TIMEOUT, signed)
        .await
        .map_err(|_| refused(format!("not signed within {SIGNING_TIMEOUT:?}")))?
        .map_err(|e| refused(e.to_string()))?
        .and_then(|c| c.status)
        .ok_or_else(|| refused("deleted before it was signed".into()))?;
    match csr.certificate {
        Some(cert) if !cert.0.is_empty() => Ok(Pair {
            cert_pem: String::from_utf8_lossy(&cert.0).into_owned(),
            key_pem: key.serialize_pem(),
        }),
        _ => {
            let why = csr
                .conditions
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.type_ == "Failed" || c.type_ == "Denied")
                .map(|c| format!("{}: {}", c.type_, c.message.unwrap_or_default()))
                .unwrap_or_default();
            Err(refused(why))
        }
    }
}

/// The certificate rustls serves; [`Resolver::set`] swaps in a renewed one.
#[derive(Debug)]
pub struct Resolver(RwLock<Arc<CertifiedKey>>);

impl Resolver {
    /// Serves `pair`.
    pub fn new(pair: &Pair) -> Result<Resolver, Error> {
        Ok(Resolver(RwLock::new(certified(pair)?)))
    }

    /// Serves `pair` from the next handshake on.
    pub fn set(&self, pair: &Pair) -> Result<(), Error> {
        let key = certified(pair)?;
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

pub(crate) fn certified(pair: &Pair) -> Result<Arc<CertifiedKey>, Error> {
    let bad = |e: &dyn std::fmt::Display| Error::Key(e.to_string());
    let certs = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).map_err(|e| bad(&e))?;
    let signer = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad(&e))?;
    Ok(Arc::new(CertifiedKey::new(certs, signer)))
}

/// Renews the certificate after 80 % of its lifetime, for as long as the agent runs.
pub async fn keep_renewed(
    client: kube::Client,
    node_name: String,
    hosts: Vec<String>,
    dir: std::path::PathBuf,
    mut current: Pair,
    resolver: Arc<Resolver>,
) {
    loop {
        let at = inspect(&current.cert_pem)
            .map(|(from, to, _)| renew_at(from, to))
            .unwrap_or_else(SystemTime::now);
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::time::sleep(wait).await;
        let renewed = obtain(&client, &node_name, &hosts, &dir)
            .await
            .and_then(|pair| resolver.set(&pair).map(|()| pair));
        match renewed {
            Ok(pair) => {
                tracing::info!("renewed the node's serving certificate");
                current = pair;
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the node's serving certificate");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_after_four_fifths_of_the_lifetime() {
        let from = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let to = from + Duration::from_secs(1_000);
        assert_eq!(renew_at(from, to), from + Duration::from_secs(800));
        // A certificate that ends before it starts is due at once.
        assert_eq!(renew_at(to, from), to);
    }

    #[test]
    fn hosts_are_the_name_address_and_loopback_once_each() {
        assert_eq!(hosts("n1", "10.0.0.1"), ["n1", "10.0.0.1", "127.0.0.1"]);
        assert_eq!(hosts("n1", "127.0.0.1"), ["n1", "127.0.0.1"]);
    }

    #[test]
    fn a_stored_certificate_is_reused_only_while_it_covers_the_names_and_is_not_due() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["n1".to_owned(), "10.0.0.1".to_owned()]).unwrap();
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(100)).into();
        params.not_after = (now + Duration::from_secs(10_000)).into();
        let pair = Pair {
            cert_pem: params.self_signed(&key).unwrap().pem(),
            key_pem: key.serialize_pem(),
        };
        let names = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(usable(&pair, &names(&["n1", "10.0.0.1"]), now));
        assert!(!usable(&pair, &names(&["n1", "10.0.0.2"]), now));
        assert!(!usable(
            &pair,
            &names(&["n1"]),
            now + Duration::from_secs(9_000)
        ));
        assert!(Resolver::new(&pair).is_ok());
    }
}
