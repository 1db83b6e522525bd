//! The `kubernetes.io/kube-apiserver-client` and `kubernetes.io/kubelet-serving` signers,
//! as kube-controller-manager's `csrsigning`: an approved, not failed, not yet issued
//! CertificateSigningRequest for one of them gets a certificate from the cluster CA, valid
//! for the shorter of its `expirationSeconds` and a year (`--cluster-signing-duration`),
//! backdated five minutes for clock skew, with the extended key usages its usages name. A
//! request the signer may not honour gets a `Failed` condition instead. Nodes get their
//! serving certificates this way (decision 0034), and their client certificates
//! (`kubernetes.io/kube-apiserver-client-kubelet`, kubelet TLS bootstrap, decision 0044),
//! approved as upstream's csrapproving controller does: a valid kubelet client request is
//! approved when a SubjectAccessReview says its requester may `create`
//! `certificatesigningrequests/selfnodeclient` (a node renewing its own) or `/nodeclient`
//! (a bootstrap token asking for a new node).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use skiff_reconcile::{Harness, Metrics, Outcome};

use crate::Error;

pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The signer of nodes' kubelet serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// The signer of nodes' client certificates.
pub const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
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

/// The decision for `csr`, or `None` when it is not these signers' to sign now.
pub fn plan(csr: &CertificateSigningRequest) -> Option<Action> {
    let signer = csr.spec.signer_name.as_str();
    if signer != SIGNER && signer != KUBELET_SERVING && signer != KUBELET_CLIENT {
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
    let invalid = match signer {
        SIGNER => client_usages_error(&usages),
        KUBELET_CLIENT => kubelet_client_error(&csr.spec.request.0, &usages),
        _ => kubelet_serving_error(&csr.spec.request.0, &usages),
    };
    if let Some(message) = invalid {
        return Some(Action::Fail(message));
    }
    let requested = csr
        .spec
        .expiration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(MAX_DURATION);
    Some(Action::Sign(requested.min(MAX_DURATION)))
}

/// Why a `kube-apiserver-client` request's usages cannot be honoured, if they cannot.
fn client_usages_error(usages: &[String]) -> Option<String> {
    if let Some(bad) = usages
        .iter()
        .find(|u| !ALLOWED_USAGES.contains(&u.as_str()))
    {
        return Some(format!("invalid usage for client certificate: {bad}"));
    }
    if !usages.iter().any(|u| u == "client auth") {
        return Some("missing required usage for client certificate: client auth".into());
    }
    None
}

/// What a PKCS#10 request asks for, as far as the signers look.
#[derive(Debug, Default)]
struct Requested {
    organizations: Vec<String>,
    common_name: String,
    dns: Vec<String>,
    ips: Vec<std::net::IpAddr>,
    email: bool,
    uri: bool,
}

/// Parses a PEM certificate request.
fn parse_request(request_pem: &[u8]) -> Result<Requested, String> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;
    let (_, pem) = x509_parser::pem::parse_x509_pem(request_pem).map_err(|e| e.to_string())?;
    let (_, req) = X509CertificationRequest::from_der(&pem.contents).map_err(|e| e.to_string())?;
    let subject = &req.certification_request_info.subject;
    let mut out = Requested {
        organizations: subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect(),
        common_name: subject
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or("")
            .to_owned(),
        ..Requested::default()
    };
    for ext in req.requested_extensions().into_iter().flatten() {
        let ParsedExtension::SubjectAlternativeName(san) = ext else {
            continue;
        };
        for name in &san.general_names {
            match name {
                GeneralName::DNSName(d) => out.dns.push((*d).to_owned()),
                GeneralName::IPAddress(b) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                        out.ips.push(v4.into());
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                        out.ips.push(v6.into());
                    }
                }
                GeneralName::RFC822Name(_) => out.email = true,
                GeneralName::URI(_) => out.uri = true,
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Why a `kubelet-serving` request cannot be honoured, if it cannot: upstream's
/// `ValidateKubeletServingCSR` with its messages (organization exactly `system:nodes`, a
/// DNS or IP name and no email or URI, usages digital signature and server auth with or
/// without key encipherment, common name `system:node:<name>`).
fn kubelet_serving_error(request_pem: &[u8], usages: &[String]) -> Option<String> {
    let req = match parse_request(request_pem) {
        Ok(r) => r,
        Err(e) => return Some(format!("unable to parse csr: {e}")),
    };
    if req.organizations != ["system:nodes"] {
        return Some("subject organization is not system:nodes".into());
    }
    if req.dns.is_empty() && req.ips.is_empty() {
        return Some("DNS or IP subjectAltName is required".into());
    }
    if req.email {
        return Some("Email subjectAltNames are not allowed".into());
    }
    if req.uri {
        return Some("URI subjectAltNames are not allowed".into());
    }
    let mut got: Vec<&str> = usages.iter().map(String::as_str).collect();
    got.sort_unstable();
    got.dedup();
    if got != ["digital signature", "key encipherment", "server auth"]
        && got != ["digital signature", "server auth"]
    {
        return Some(
            "usages did not match [digital signature key encipherment server auth]".into(),
        );
    }
    if !req.common_name.starts_with("system:node:") {
        return Some("subject common name does not begin with system:node:".into());
    }
    None
}

/// Why a `kube-apiserver-client-kubelet` request cannot be honoured, if it cannot:
/// upstream's `ValidateKubeletClientCSR` with its messages (organization exactly
/// `system:nodes`, no names, common name `system:node:<name>`, usages client auth and
/// digital signature, with or without key encipherment).
fn kubelet_client_error(request_pem: &[u8], usages: &[String]) -> Option<String> {
    let req = match parse_request(request_pem) {
        Ok(r) => r,
        Err(e) => return Some(format!("unable to parse csr: {e}")),
    };
    if req.organizations != ["system:nodes"] {
        return Some("subject organization is not system:nodes".into());
    }
    if !req.dns.is_empty() {
        return Some("DNS subjectAltNames are not allowed".into());
    }
    if req.email {
        return Some("Email subjectAltNames are not allowed".into());
    }
    if !req.ips.is_empty() {
        return Some("IP subjectAltNames are not allowed".into());
    }
    if req.uri {
        return Some("URI subjectAltNames are not allowed".into());
    }
    if !req.common_name.starts_with("system:node:") {
        return Some("subject common name does not begin with system:node:".into());
    }
    let mut got: Vec<&str> = usages.iter().map(String::as_str).collect();
    got.sort_unstable();
    got.dedup();
    if got != ["client auth", "digital signature", "key encipherment"]
        && got != ["client auth", "digital signature"]
    {
        return Some(
            "usages did not match [client auth digital signature key encipherment]".into(),
        );
    }
    None
}

/// The permissions that would approve a pending kubelet client request, in upstream's
/// order (`selfnodeclient` first, when the requester is the node it names, then
/// `nodeclient`), each with upstream's approval message; none for anything else.
pub fn node_client_recognizers(
    csr: &CertificateSigningRequest,
) -> Vec<(&'static str, &'static str)> {
    if csr.spec.signer_name != KUBELET_CLIENT {
        return Vec::new();
    }
    let status = csr.status.as_ref();
    let issued = status
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    let decided = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| (c.type_ == "Approved" || c.type_ == "Denied") && c.status == "True")
        });
    let usages = csr.spec.usages.clone().unwrap_or_default();
    if issued || decided || kubelet_client_error(&csr.spec.request.0, &usages).is_some() {
        return Vec::new();
    }
    let Ok(req) = parse_request(&csr.spec.request.0) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if csr.spec.username.as_deref() == Some(req.common_name.as_str()) {
        out.push((
            "selfnodeclient",
            "Auto approving self kubelet client certificate after SubjectAccessReview.",
        ));
    }
    out.push((
        "nodeclient",
        "Auto approving kubelet client certificate after SubjectAccessReview.",
    ));
    out
}

/// The node a pending `kubelet-serving` request comes from, when a node asked it: the
/// requester is `system:node:<name>` in `system:nodes`.
pub fn serving_requester(csr: &CertificateSigningRequest) -> Option<&str> {
    if csr.spec.signer_name != KUBELET_SERVING {
        return None;
    }
    let decided = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| !cs.is_empty());
    let in_nodes = csr
        .spec
        .groups
        .as_ref()
        .is_some_and(|g| g.iter().any(|g| g == "system:nodes"));
    let name = csr.spec.username.as_deref()?.strip_prefix("system:node:")?;
    (!decided && in_nodes && !name.is_empty()).then_some(name)
}

/// Whether a node's own serving request is approved, as the community's kubelet-serving
/// approvers decide (upstream approves none by itself): valid for the signer, for the
/// requester's own name, and naming only that node's name, its addresses (`addresses` of
/// its status: type and address) and loopback. Anything else waits for a person.
pub fn approve_serving(
    csr: &CertificateSigningRequest,
    node: &str,
    addresses: &[(String, String)],
) -> bool {
    let usages = csr.spec.usages.clone().unwrap_or_default();
    if kubelet_serving_error(&csr.spec.request.0, &usages).is_some() {
        return false;
    }
    let Ok(req) = parse_request(&csr.spec.request.0) else {
        return false;
    };
    if req.common_name != format!("system:node:{node}") {
        return false;
    }
    let dns_ok = req.dns.iter().all(|d| {
        d == node
            || addresses.iter().any(|(kind, a)| {
                matches!(kind.as_str(), "Hostname" | "InternalDNS" | "ExternalDNS") && a == d
            })
    });
    let ips_ok = req.ips.iter().all(|ip| {
        ip.is_loopback()
            || addresses.iter().any(|(kind, a)| {
                matches!(kind.as_str(), "InternalIP" | "ExternalIP")
                    && a.parse::<std::net::IpAddr>().is_ok_and(|a| a == *ip)
            })
    });
    dns_ok && ips_ok
}

/// Issues a certificate (PEM) for the PKCS#10 `request_pem` from the CA, valid from
/// `now - 5m` to `now + ttl`, with the request's subject and names and the usages asked for
/// (`client auth` and `server auth` as extended key usages).
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
    params.extended_key_usages = usages
        .iter()
        .filter_map(|u| match u.as_str() {
            "client auth" => Some(rcgen::ExtendedKeyUsagePurpose::ClientAuth),
            "server auth" => Some(rcgen::ExtendedKeyUsagePurpose::ServerAuth),
            _ => None,
        })
        .collect();
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
    for (subresource, message) in node_client_recognizers(&csr) {
        if may_create(&ctx.client, &csr, subresource).await? {
            let approval = json!({"status": {"conditions": [{
                "type": "Approved", "status": "True", "reason": "AutoApproved",
                "message": message,
            }]}});
            api.patch_approval(name, &pp, &Patch::Merge(&approval))
                .await?;
            tracing::info!(csr = %name, %subresource, "csrapproving: approved a kubelet client certificate");
            // Signed when the approval comes back through the watch.
            return Ok(Outcome::Done);
        }
    }
    if let Some(node) = serving_requester(&csr) {
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(ctx.client.clone());
        let addresses: Vec<(String, String)> = nodes
            .get_opt(node)
            .await?
            .and_then(|n| n.status?.addresses)
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.type_, a.address))
            .collect();
        if approve_serving(&csr, node, &addresses) {
            let approval = json!({"status": {"conditions": [{
                "type": "Approved", "status": "True", "reason": "AutoApproved",
                "message": "Auto approving the node's serving certificate for its own names.",
            }]}});
            api.patch_approval(name, &pp, &Patch::Merge(&approval))
                .await?;
            tracing::info!(csr = %name, %node, "csrsigning: approved a node's serving certificate");
        }
        return Ok(Outcome::Done);
    }
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

/// Whether the requester of `csr` may `create` `certificatesigningrequests/<subresource>`,
/// by a SubjectAccessReview as upstream's approver asks.
async fn may_create(
    client: &kube::Client,
    csr: &CertificateSigningRequest,
    subresource: &str,
) -> Result<bool, Error> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let spec = &csr.spec;
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: spec.username.clone(),
            uid: spec.uid.clone(),
            groups: spec.groups.clone(),
            extra: spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                verb: Some("create".into()),
                subresource: Some(subresource.into()),
                version: Some("*".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&Default::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
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
            status: csr_status(conditions).map(|status| CertificateSigningRequestStatus {
                certificate: cert.then(|| ByteString(b"x".to_vec())),
                ..status
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

    /// A PEM request for `cn` in `orgs` naming `dns` and `ips`, and `email` when given.
    #[test]
    fn kubelet_client_requests_are_checked_as_upstream() {
        // Upstream's TestIsKubeletClientCSR / ValidateKubeletClientCSR cases.
        let node = "system:node:n1";
        let ok: &[&str] = &["client auth", "digital signature"];
        // (case, request, usages, error)
        type Case<'a> = (&'a str, Vec<u8>, &'a [&'a str], Option<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "ecdsa",
                request(node, &["system:nodes"], &[], &[], false),
                ok,
                None,
            ),
            (
                "rsa",
                request(node, &["system:nodes"], &[], &[], false),
                &["key encipherment", "digital signature", "client auth"],
                None,
            ),
            (
                "no organization",
                request(node, &[], &[], &[], false),
                ok,
                Some("subject organization is not system:nodes"),
            ),
            (
                "extra organization",
                request(node, &["system:nodes", "x"], &[], &[], false),
                ok,
                Some("subject organization is not system:nodes"),
            ),
            (
                "dns",
                request(node, &["system:nodes"], &["n1"], &[], false),
                ok,
                Some("DNS subjectAltNames are not allowed"),
            ),
            (
                "email",
                request(node, &["system:nodes"], &[], &[], true),
                ok,
                Some("Email subjectAltNames are not allowed"),
            ),
            (
                "ip",
                request(node, &["system:nodes"], &[], &["10.0.0.1"], false),
                ok,
                Some("IP subjectAltNames are not allowed"),
            ),
            (
                "common name",
                request("n1", &["system:nodes"], &[], &[], false),
                ok,
                Some("subject common name does not begin with system:node:"),
            ),
            (
                "server auth",
                request(node, &["system:nodes"], &[], &[], false),
                &["server auth", "digital signature"],
                Some("usages did not match [client auth digital signature key encipherment]"),
            ),
            (
                "no digital signature",
                request(node, &["system:nodes"], &[], &[], false),
                &["client auth"],
                Some("usages did not match [client auth digital signature key encipherment]"),
            ),
        ];
        for (name, req, usages, want) in cases {
            let usages: Vec<String> = usages.iter().map(|u| u.to_string()).collect();
            assert_eq!(
                kubelet_client_error(&req, &usages).as_deref(),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn kubelet_client_requests_are_recognized_as_upstream_approver() {
        let with = |username: &str, req: Vec<u8>, conditions: &[&str]| {
            let mut c = csr(
                KUBELET_CLIENT,
                &["digital signature", "client auth"],
                conditions,
                false,
                None,
            );
            c.spec.request = ByteString(req);
            c.spec.username = Some(username.into());
            c
        };
        let good = || request("system:node:n1", &["system:nodes"], &[], &[], false);
        let names = |c: &CertificateSigningRequest| {
            node_client_recognizers(c)
                .into_iter()
                .map(|(s, _)| s)
                .collect::<Vec<_>>()
        };
        // A bootstrap token asks for a new node: nodeclient only.
        assert_eq!(
            names(&with("system:bootstrap:abcdef", good(), &[])),
            ["nodeclient"]
        );
        // The node renews its own: selfnodeclient first.
        assert_eq!(
            names(&with("system:node:n1", good(), &[])),
            ["selfnodeclient", "nodeclient"]
        );
        // Another node's name is no renewal.
        assert_eq!(names(&with("system:node:n2", good(), &[])), ["nodeclient"]);
        // Decided, invalid or another signer's: nothing to approve.
        assert!(names(&with("system:node:n1", good(), &["Approved"])).is_empty());
        assert!(names(&with("system:node:n1", good(), &["Denied"])).is_empty());
        let bad = request("system:node:n1", &["system:nodes"], &["n1"], &[], false);
        assert!(names(&with("system:node:n1", bad, &[])).is_empty());
        let mut other = with("system:node:n1", good(), &[]);
        other.spec.signer_name = SIGNER.into();
        assert!(names(&other).is_empty());
        assert_eq!(
            node_client_recognizers(&with("system:bootstrap:abcdef", good(), &[]))[0].1,
            "Auto approving kubelet client certificate after SubjectAccessReview."
        );
    }

    fn request(cn: &str, orgs: &[&str], dns: &[&str], ips: &[&str], email: bool) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())
                .unwrap();
        for ip in ips {
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(ip.parse().unwrap()));
        }
        if email {
            params
                .subject_alt_names
                .push(rcgen::SanType::Rfc822Name("a@b.c".try_into().unwrap()));
        }
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        params
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
            .into_bytes()
    }

    #[test]
    fn kubelet_serving_requests_are_checked_as_upstream() {
        let node = "system:node:n1";
        let ecdsa = ["digital signature", "server auth"];
        let rsa = ["key encipherment", "digital signature", "server auth"];
        // Name, request, usages, the refusal wanted.
        type Case<'a> = (&'a str, Vec<u8>, &'a [&'a str], Option<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "node with names",
                request(node, &["system:nodes"], &["n1"], &["10.0.0.1"], false),
                &ecdsa,
                None,
            ),
            (
                "rsa usages",
                request(node, &["system:nodes"], &[], &["10.0.0.1"], false),
                &rsa,
                None,
            ),
            (
                "other organization",
                request(node, &["admins"], &["n1"], &[], false),
                &ecdsa,
                Some("subject organization is not system:nodes"),
            ),
            (
                "no names",
                request(node, &["system:nodes"], &[], &[], false),
                &ecdsa,
                Some("DNS or IP subjectAltName is required"),
            ),
            (
                "email",
                request(node, &["system:nodes"], &["n1"], &[], true),
                &ecdsa,
                Some("Email subjectAltNames are not allowed"),
            ),
            (
                "client usage",
                request(node, &["system:nodes"], &["n1"], &[], false),
                &["digital signature", "server auth", "client auth"],
                Some("usages did not match [digital signature key encipherment server auth]"),
            ),
            (
                "not a node",
                request("bob", &["system:nodes"], &["n1"], &[], false),
                &ecdsa,
                Some("subject common name does not begin with system:node:"),
            ),
        ];
        for (name, pem, usages, want) in cases {
            let usages: Vec<String> = usages.iter().map(|u| u.to_string()).collect();
            assert_eq!(
                kubelet_serving_error(&pem, &usages).as_deref(),
                want,
                "{name}"
            );
        }
        assert!(kubelet_serving_error(b"junk", &[]).is_some());
    }

    #[test]
    fn a_nodes_own_serving_request_is_approved_for_its_own_names_only() {
        let serving = |user: &str, groups: &[&str], pem: Vec<u8>| CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                signer_name: KUBELET_SERVING.into(),
                usages: Some(vec!["digital signature".into(), "server auth".into()]),
                username: Some(user.into()),
                groups: Some(groups.iter().map(|g| g.to_string()).collect()),
                request: ByteString(pem),
                ..Default::default()
            },
            ..Default::default()
        };
        let nodes = ["system:nodes", "system:authenticated"];
        let own = request(
            "system:node:n1",
            &["system:nodes"],
            &["n1"],
            &["10.0.0.1", "127.0.0.1"],
            false,
        );
        let addresses = vec![
            ("InternalIP".to_owned(), "10.0.0.1".to_owned()),
            ("Hostname".to_owned(), "n1".to_owned()),
        ];
        let csr = serving("system:node:n1", &nodes, own.clone());
        assert_eq!(serving_requester(&csr), Some("n1"));
        assert!(approve_serving(&csr, "n1", &addresses));
        // An address the node does not have.
        let other_ip = request(
            "system:node:n1",
            &["system:nodes"],
            &["n1"],
            &["10.0.0.9"],
            false,
        );
        assert!(!approve_serving(
            &serving("system:node:n1", &nodes, other_ip),
            "n1",
            &addresses
        ));
        // Another node's name in the subject.
        let other = request("system:node:n2", &["system:nodes"], &["n1"], &[], false);
        assert!(!approve_serving(
            &serving("system:node:n1", &nodes, other),
            "n1",
            &addresses
        ));
        // Requested by someone who is not a node: left to a person.
        assert_eq!(
            serving_requester(&serving("admin", &["system:masters"], own.clone())),
            None
        );
        assert_eq!(
            serving_requester(&serving("system:node:n1", &[], own.clone())),
            None
        );
        // Already decided.
        let mut decided = serving("system:node:n1", &nodes, own);
        decided.status = csr_status(&["Denied"]);
        assert_eq!(serving_requester(&decided), None);
    }

    /// A status holding `conditions`, each `True`.
    fn csr_status(conditions: &[&str]) -> Option<CertificateSigningRequestStatus> {
        Some(CertificateSigningRequestStatus {
            certificate: None,
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
        })
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
