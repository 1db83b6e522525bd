//! Upstream's three certificate admission plugins (plugin/pkg/admission/certificates):
//! CertificateApproval (an `approval` write needs `approve` on the signer), CertificateSigning
//! (a `status` write that changes the certificate needs `sign` on the signer) and
//! CertificateSubjectRestriction (no `system:masters` client certificates from
//! `kubernetes.io/kube-apiserver-client`).

use serde_json::Value;
use skiff_apimachinery::user::UserInfo;
use skiff_rbac::attributes::Attributes as AuthzAttributes;

use crate::certificates::is_csr;
use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::webhook::{Attributes, Operation};

const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";

pub(crate) fn validate(
    api: &Api,
    attrs: &Attributes<'_>,
    obj: &Value,
    old: Option<&Value>,
) -> Result<()> {
    if !is_csr(attrs.resource) {
        return Ok(());
    }
    let signer = obj["spec"]["signerName"].as_str().unwrap_or("");
    let user = &attrs.params.user;
    let reason = match (attrs.operation, attrs.subresource) {
        (Operation::Update, Some("approval"))
            if !authorized_for_signer(api, user, "approve", signer) =>
        {
            format!("user not permitted to approve requests with signerName {signer:?}")
        }
        (Operation::Update, Some("status"))
            if old.is_some_and(|o| o["status"]["certificate"] != obj["status"]["certificate"])
                && !authorized_for_signer(api, user, "sign", signer) =>
        {
            format!("user not permitted to sign requests with signerName {signer:?}")
        }
        (Operation::Create, None)
            if signer == KUBE_APISERVER_CLIENT
                && crate::certificates::request_organizations(obj)
                    .iter()
                    .any(|o| o == skiff_apimachinery::user::SYSTEM_MASTERS) =>
        {
            format!(
                "use of {KUBE_APISERVER_CLIENT} signer with system:masters group is not allowed"
            )
        }
        _ => return Ok(()),
    };
    Err(ApiError::denied(attrs.resource, attrs.name, &reason))
}

/// Upstream's `IsAuthorizedForSignerName`: `verb` on the `signers` resource named
/// `signer`, or on its domain's wildcard `<domain>/*`.
fn authorized_for_signer(api: &Api, user: &UserInfo, verb: &str, signer: &str) -> bool {
    let allowed = |name: &str| {
        let a = AuthzAttributes::resource(
            user.clone(),
            verb,
            crate::certificates::GROUP,
            "signers",
            "",
            name,
        );
        api.rbac.authorize(&a).allowed
    };
    if allowed(signer) {
        return true;
    }
    match signer.split_once('/') {
        Some((domain, _)) => allowed(&format!("{domain}/*")),
        None => false,
    }
}
