//! The identity of a client certificate the TLS handshake verified against the cluster CA,
//! as upstream's x509 authenticator (`CommonNameUserConversion`): the subject's common name
//! is the username, its organizations are the groups.

use skiff_apimachinery::user::{UserInfo, ALL_AUTHENTICATED};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a verified certificate names no user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("the client certificate could not be parsed: {0}")]
    Malformed(String),
    /// Upstream treats such a certificate as no credential at all.
    #[error("the client certificate has no common name")]
    NoCommonName,
}

/// The user a client certificate (DER) names: CN, O... and `system:authenticated`.
pub fn user_from_certificate(der: &[u8]) -> Result<UserInfo, CertificateError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CertificateError::Malformed(e.to_string()))?;
    let subject = cert.subject();
    let username = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_owned();
    if username.is_empty() {
        return Err(CertificateError::NoCommonName);
    }
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned)
        .collect();
    groups.push(ALL_AUTHENTICATED.into());
    Ok(UserInfo {
        username,
        groups,
        ..UserInfo::default()
    })
}

/// The user a TLS peer's verified chain names, for every server that authenticates
/// connections by client certificate (the API server's port, the node agent's kubelet port):
/// the leaf decides, and no chain, or a leaf naming no one, is no credential at all.
pub fn user_from_peer_chain<C: AsRef<[u8]>>(chain: Option<&[C]>) -> Option<UserInfo> {
    user_from_certificate(chain?.first()?.as_ref()).ok()
}

/// When a certificate (DER) stops being valid: what the server's renewal at start reads.
pub fn not_after(der: &[u8]) -> Result<std::time::SystemTime, CertificateError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CertificateError::Malformed(e.to_string()))?;
    let secs = cert.validity().not_after.timestamp();
    let since_epoch = std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    Ok(std::time::UNIX_EPOCH + since_epoch)
}

/// Why a client certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("the cluster CA: {0}")]
    Ca(String),
    #[error("building the certificate: {0}")]
    Build(String),
}

/// A client certificate for `user` in `groups` (CN and one O each, as upstream's x509
/// authenticator reads them), valid from `not_before` to `not_after`, signed by the CA
/// (`ca_cert_pem`, `ca_key_pem`: an ECDSA P-256 key, as serve.rs makes it). Returns the
/// certificate and its new key, both PEM: what `skiff kubeconfig` hands out.
///
/// Built with x509-cert rather than rcgen because rcgen names one value per attribute
/// type, and a user may be in several groups.
pub fn client_certificate(
    user: &str,
    groups: &[String],
    not_before: std::time::SystemTime,
    not_after: std::time::SystemTime,
    ca_cert_pem: &str,
    ca_key_pem: &str,
) -> Result<(String, String), IssueError> {
    use p256::pkcs8::DecodePrivateKey;
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::der::asn1::{Any, ObjectIdentifier, SetOfVec, Utf8StringRef};
    use x509_cert::der::{Decode, DecodePem, EncodePem};
    use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::{Time, Validity};

    const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
    const ORGANIZATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
    const CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
    let build = |e: &dyn std::fmt::Display| IssueError::Build(e.to_string());
    let ca = x509_cert::Certificate::from_pem(ca_cert_pem.as_bytes())
        .map_err(|e| IssueError::Ca(e.to_string()))?;
    let signer = p256::ecdsa::SigningKey::from_pkcs8_pem(ca_key_pem)
        .map_err(|e| IssueError::Ca(e.to_string()))?;
    let rdn =
        |oid: ObjectIdentifier, value: &str| -> Result<RelativeDistinguishedName, IssueError> {
            let value = Any::encode_from(&Utf8StringRef::new(value).map_err(|e| build(&e))?)
                .map_err(|e| build(&e))?;
            let atv = x509_cert::attr::AttributeTypeAndValue { oid, value };
            Ok(RelativeDistinguishedName(
                SetOfVec::try_from(vec![atv]).map_err(|e| build(&e))?,
            ))
        };
    let mut names = Vec::new();
    for g in groups {
        names.push(rdn(ORGANIZATION, g)?);
    }
    names.push(rdn(COMMON_NAME, user)?);
    let subject: Name = RdnSequence(names);
    let key = rcgen::KeyPair::generate().map_err(|e| build(&e))?;
    let spki =
        SubjectPublicKeyInfoOwned::from_der(&rcgen::PublicKeyData::subject_public_key_info(&key))
            .map_err(|e| build(&e))?;
    // A positive 128-bit random serial.
    let mut serial = *uuid::Uuid::new_v4().as_bytes();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let validity = Validity {
        not_before: Time::try_from(not_before).map_err(|e| build(&e))?,
        not_after: Time::try_from(not_after).map_err(|e| build(&e))?,
    };
    let profile = Profile::Leaf {
        issuer: ca.tbs_certificate.subject.clone(),
        enable_key_agreement: false,
        enable_key_encipherment: true,
    };
    let mut builder = CertificateBuilder::new(
        profile,
        SerialNumber::new(&serial).map_err(|e| build(&e))?,
        validity,
        subject,
        spki,
        &signer,
    )
    .map_err(|e| build(&e))?;
    builder
        .add_extension(&x509_cert::ext::pkix::ExtendedKeyUsage(vec![CLIENT_AUTH]))
        .map_err(|e| build(&e))?;
    let cert = builder
        .build::<p256::ecdsa::DerSignature>()
        .map_err(|e| build(&e))?;
    let pem = cert
        .to_pem(x509_cert::der::pem::LineEnding::LF)
        .map_err(|e| build(&e))?;
    Ok((pem, key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn ca() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "skiff-ca");
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn der(pem: &str) -> Vec<u8> {
        use x509_cert::der::{DecodePem, Encode};
        x509_cert::Certificate::from_pem(pem.as_bytes())
            .unwrap()
            .to_der()
            .unwrap()
    }

    #[test]
    fn an_issued_certificate_names_its_user_and_every_group() {
        let (ca_cert, ca_key) = ca();
        let now = SystemTime::now();
        let groups = vec!["interns".to_owned(), "team, blue".to_owned()];
        let (cert, key) = client_certificate(
            "intern",
            &groups,
            now,
            now + Duration::from_secs(3600),
            &ca_cert,
            &ca_key,
        )
        .unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let user = user_from_certificate(&der(&cert)).unwrap();
        assert_eq!(user.username, "intern");
        assert_eq!(
            user.groups,
            ["interns", "team, blue", "system:authenticated"]
        );
        // It chains to the CA.
        let (leaf_der, ca_der) = (der(&cert), der(&ca_cert));
        let (_, parsed) = X509Certificate::from_der(&leaf_der).unwrap();
        let (_, ca_parsed) = X509Certificate::from_der(&ca_der).unwrap();
        parsed
            .verify_signature(Some(ca_parsed.public_key()))
            .unwrap();
    }

    #[test]
    fn a_certificate_without_common_name_names_no_one() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "interns");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            user_from_certificate(cert.der()),
            Err(CertificateError::NoCommonName)
        );
        assert!(matches!(
            user_from_certificate(b"junk"),
            Err(CertificateError::Malformed(_))
        ));
    }

    #[test]
    fn a_peer_chain_is_named_by_its_leaf() {
        let named = |cn: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name = rcgen::DistinguishedName::new();
            if !cn.is_empty() {
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, cn);
            }
            params.self_signed(&key).unwrap().der().to_vec()
        };
        let user = |chain: Option<&[Vec<u8>]>| user_from_peer_chain(chain).map(|u| u.username);
        assert_eq!(user(None), None);
        assert_eq!(user(Some(&[])), None);
        assert_eq!(user(Some(&[named("")])), None);
        assert_eq!(user(Some(&[b"junk".to_vec()])), None);
        assert_eq!(
            user(Some(&[named("leaf"), named("ca")])),
            Some("leaf".to_owned())
        );
    }
}
