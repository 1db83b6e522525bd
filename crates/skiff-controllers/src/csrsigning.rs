//! The `kubernetes.io/kube-apiserver-client` signer, as kube-controller-manager's
//! `csrsigning`: an approved, not failed, not yet issued CertificateSigningRequest for this
//! signer gets a client certificate from the cluster CA, valid for the shorter of its
//! `expirationSeconds` and a year (`--cluster-signing-duration`), backdated five minutes
//! for clock skew. A request the signer may not honour gets a `Failed` condition instead.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use skiff_reconcile::{Harness, Metrics, Outcome};

use crate::Error;

pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Upstream's default `--cluster-signing-duration`.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// How far back `notBefore` goes (upstream's backdate).
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Usages a client certificate of this signer may carry (upstream's
/// `kubeAPIServerClientRequiredUsages` and its optional ones); `client auth` is required.
const ALLOWED_USAGES: [&str; 3] = ["client auth", "digital signature", "key encipherment"];

/// What to do about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Issue a certificate valid for this long.
    Sign(Duration),
    /// Mark it Failed (reason `SignerValidationFailure`) with this message.
    Fail(String),
}

/// The decision for `csr`, or `None` when it is not this signer's to sign now.
pub fn plan(csr: &CertificateSigningRequest) -> Option<Action> {
    if csr.spec.signer_name != SIGNER {
        return None;
    }
    let status = csr.status.as_ref();
    if status
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
    {
        return None;
    }
    let has = |kind: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
    };
    if !has("Approved") || has("Denied") || has("Failed") {
        return None;
    }
    let usages = csr.spec.usages.clone().unwrap_or_default();
    if let Some(bad) = usages
        .iter()
        .find(|u| !ALLOWED_USAGES.contains(&u.as_str()))
    {
        return Some(Action::Fail(format!(
            "invalid usage for client certificate: {bad}"
        )));
    }
    if !usages.iter().any(|u| u == "client auth") {
        return Some(Action::Fail(
            "missing required usage for client certificate: client auth".into(),
        ));
    }
    let requested = csr
        .spec
        .expiration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(MAX_DURATION);
    Some(Action::Sign(requested.min(MAX_DURATION)))
}

/// Issues a client certificate (PEM) for the PKCS#10 `request_pem` from the CA, valid from
/// `now - 5m` to `now + ttl`, with the request's subject and the client usages asked for.
pub fn issue(
    request_pem: &str,
    usages: &[String],
    ttl: Duration,
    ca_cert_pem: &str,
    ca_key_pem: &str,
    now: SystemTime,
) -> Result<String, rcgen::Error> {
    let key = rcgen::KeyPair::from_pem(ca_key_pem)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_cert_pem, key)?;
    let mut csr = rcgen::CertificateSigningRequestParams::from_pem(request_pem)?;
    let params = &mut csr.params;
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + ttl).into();
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    // A random serial as upstream's (rcgen's default hashes the key, which repeats when a
    // key asks twice); the top bit clear keeps it a positive INTEGER.
    let mut serial = *uuid::Uuid::new_v4().as_bytes();
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = usages
        .iter()
        .filter_map(|u| match u.as_str() {
            "digital signature" => Some(rcgen::KeyUsagePurpose::DigitalSignature),
            "key encipherment" => Some(rcgen::KeyUsagePurpose::KeyEncipherment),
            _ => None,
        })
        .collect();
    params.use_authority_key_identifier_extension = true;
    Ok(csr.signed_by(&issuer)?.pem())
}

struct Ctx {
    client: kube::Client,
    ca_cert: String,
    ca_key: String,
}

/// Runs the signer with the cluster CA's certificate and key (PEM).
pub async fn run(client: kube::Client, metrics: Metrics, ca_cert: String, ca_key: String) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        ca_cert,
        ca_key,
    });
    Harness::new("csrsigning", client)
        .metrics(&metrics)
        .watch::<CertificateSigningRequest>()
        .run(reconcile, ctx)
        .await;
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let name = csr.metadata.name.as_deref().ok_or(Error::Missing("name"))?;
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let pp = PatchParams::default();
    let failed = |message: String| {
        let mut conditions = csr
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .map(serde_json::to_value)
            .transpose()
            .ok()
            .flatten()
            .unwrap_or_else(|| json!([]));
        if let Some(list) = conditions.as_array_mut() {
            list.push(json!({"type": "Failed", "status": "True",
                "reason": "SignerValidationFailure", "message": message}));
        }
        json!({"status": {"conditions": conditions}})
    };
    let patch = match plan(&csr) {
        None => return Ok(Outcome::Done),
        Some(Action::Fail(message)) => failed(message),
        Some(Action::Sign(ttl)) => {
            let request = String::from_utf8_lossy(&csr.spec.request.0).into_owned();
            let usages = csr.spec.usages.clone().unwrap_or_default();
            match issue(
                &request,
                &usages,
                ttl,
                &ctx.ca_cert,
                &ctx.ca_key,
                SystemTime::now(),
            ) {
                Ok(pem) => json!({"status": {"certificate":
                    base64::engine::general_purpose::STANDARD.encode(pem)}}),
                Err(e) => failed(format!("error auto signing csr: {e}")),
            }
        }
    };
    api.patch_status(name, &pp, &Patch::Merge(&patch)).await?;
    tracing::info!(csr = %name, "csrsigning: handled");
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequestCondition, CertificateSigningRequestSpec,
        CertificateSigningRequestStatus,
    };
    use k8s_openapi::ByteString;

    fn csr(
        signer: &str,
        usages: &[&str],
        conditions: &[&str],
        cert: bool,
        secs: Option<i32>,
    ) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                signer_name: signer.into(),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                expiration_seconds: secs,
                ..Default::default()
            },
            status: Some(CertificateSigningRequestStatus {
                certificate: cert.then(|| ByteString(b"x".to_vec())),
                conditions: Some(
                    conditions
                        .iter()
                        .map(|c| CertificateSigningRequestCondition {
                            type_: c.to_string(),
                            status: "True".into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn plan_signs_only_approved_unissued_requests_of_its_signer() {
        let day = Some(86400);
        let cases: Vec<(&str, CertificateSigningRequest, Option<Action>)> = vec![
            (
                "approved",
                csr(SIGNER, &["client auth"], &["Approved"], false, day),
                Some(Action::Sign(Duration::from_secs(86400))),
            ),
            (
                "no expiry asks the maximum",
                csr(
                    SIGNER,
                    &["client auth", "digital signature"],
                    &["Approved"],
                    false,
                    None,
                ),
                Some(Action::Sign(MAX_DURATION)),
            ),
            (
                "ten years capped",
                csr(
                    SIGNER,
                    &["client auth"],
                    &["Approved"],
                    false,
                    Some(315_360_000),
                ),
                Some(Action::Sign(MAX_DURATION)),
            ),
            (
                "pending",
                csr(SIGNER, &["client auth"], &[], false, day),
                None,
            ),
            (
                "denied",
                csr(SIGNER, &["client auth"], &["Denied"], false, day),
                None,
            ),
            (
                "failed",
                csr(
                    SIGNER,
                    &["client auth"],
                    &["Approved", "Failed"],
                    false,
                    day,
                ),
                None,
            ),
            (
                "issued",
                csr(SIGNER, &["client auth"], &["Approved"], true, day),
                None,
            ),
            (
                "other signer",
                csr("example.com/x", &["client auth"], &["Approved"], false, day),
                None,
            ),
            (
                "server usage",
                csr(
                    SIGNER,
                    &["client auth", "server auth"],
                    &["Approved"],
                    false,
                    day,
                ),
                Some(Action::Fail(
                    "invalid usage for client certificate: server auth".into(),
                )),
            ),
            (
                "no client auth",
                csr(SIGNER, &["digital signature"], &["Approved"], false, day),
                Some(Action::Fail(
                    "missing required usage for client certificate: client auth".into(),
                )),
            ),
        ];
        for (name, csr, want) in cases {
            assert_eq!(plan(&csr), want, "{name}");
        }
    }

    #[test]
    fn issued_certificates_chain_to_the_ca_with_the_requested_subject_and_lifetime() {
        use x509_parser::prelude::*;
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "skiff-ca");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bob");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "dev");
        let request = params.serialize_request(&key).unwrap().pem().unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let pem = issue(
            &request,
            &["client auth".into()],
            Duration::from_secs(3600),
            &ca.pem(),
            &ca_key.serialize_pem(),
            now,
        )
        .unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let cert = block.parse_x509().unwrap();
        let (_, ca_cert) = X509Certificate::from_der(ca.der()).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert_eq!(cert.issuer().to_string(), "CN=skiff-ca");
        assert_eq!(
            cert.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "bob"
        );
        assert_eq!(
            cert.subject()
                .iter_organization()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "dev"
        );
        assert_eq!(cert.validity().not_before.timestamp(), 2_000_000_000 - 300);
        assert_eq!(cert.validity().not_after.timestamp(), 2_000_000_000 + 3600);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!cert.is_ca());
    }
}
