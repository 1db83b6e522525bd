//! `certificates.k8s.io/v1` CertificateSigningRequest: upstream's registry strategies
//! (pkg/registry/certificates/certificates/strategy.go) and validation
//! (pkg/apis/certificates/validation). The generic handler serves the kind; this module
//! holds what is particular to it: the requestor stamped on create, what the `status` and
//! `approval` subresources may each change, and the request's own rules.

use base64::Engine;
use serde_json::{json, Value};
use skiff_apimachinery::user::UserInfo;
use skiff_apimachinery::validation::{is_dns1123_label, is_dns1123_subdomain, FieldError};

use crate::resources::ResourceInfo;

pub const GROUP: &str = "certificates.k8s.io";
pub const KIND: &str = "CertificateSigningRequest";

/// Whether `r` is the CertificateSigningRequest resource.
pub fn is_csr(r: &ResourceInfo) -> bool {
    r.custom.is_none() && r.group == GROUP && r.kind == KIND
}

/// Condition types only the `approval` subresource sets.
const APPROVAL_TYPES: [&str; 2] = ["Approved", "Denied"];

/// Upstream's `allValidUsages`, sorted as `sets.String.List()` prints them.
const USAGES: [&str; 23] = [
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// The create strategy: who asked is the authenticated user, never what the client wrote,
/// and a new request has no status.
pub fn prepare_create(obj: &mut Value, user: &UserInfo) {
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    let spec = spec.as_object_mut().expect("made an object above");
    for field in ["username", "uid", "groups", "extra"] {
        spec.remove(field);
    }
    spec.insert("username".into(), json!(user.username));
    if !user.uid.is_empty() {
        spec.insert("uid".into(), json!(user.uid));
    }
    if !user.groups.is_empty() {
        spec.insert("groups".into(), json!(user.groups));
    }
    if !user.extra.is_empty() {
        spec.insert("extra".into(), json!(user.extra));
    }
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
}

fn conditions(obj: &Value) -> Vec<Value> {
    obj["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn is_approval(c: &Value) -> bool {
    APPROVAL_TYPES.iter().any(|t| c["type"] == *t)
}

/// What a write through `sub` keeps of `new` over `old` (the stored object, which the
/// caller already copied metadata and spec from): `status` sets the certificate and every
/// condition but Approved/Denied, `approval` sets only those two.
pub fn merge_subresource(sub: &str, old: &Value, new: &Value) -> Value {
    let mut merged = old.clone();
    let (from_new, from_old): (Vec<Value>, Vec<Value>) = match sub {
        "approval" => (
            conditions(new).into_iter().filter(is_approval).collect(),
            conditions(old)
                .into_iter()
                .filter(|c| !is_approval(c))
                .collect(),
        ),
        _ => {
            match new["status"].get("certificate") {
                Some(cert) => merged["status"]["certificate"] = cert.clone(),
                None => {
                    if let Some(s) = merged["status"].as_object_mut() {
                        s.remove("certificate");
                    }
                }
            }
            (
                conditions(new)
                    .into_iter()
                    .filter(|c| !is_approval(c))
                    .collect(),
                conditions(old).into_iter().filter(is_approval).collect(),
            )
        }
    };
    let mut all: Vec<Value> = from_old.into_iter().chain(from_new).collect();
    stamp_conditions(&mut all, &conditions(old), &crate::object::now_rfc3339());
    if all.is_empty() {
        if let Some(s) = merged["status"].as_object_mut() {
            s.remove("conditions");
        }
    } else {
        merged["status"]["conditions"] = json!(all);
    }
    merged
}

/// Upstream's `populateConditionTimestamps`: a condition without `lastUpdateTime` gets now;
/// one without `lastTransitionTime` keeps the time of an old condition of the same type
/// and status, or gets now.
fn stamp_conditions(conditions: &mut [Value], old: &[Value], now: &str) {
    for c in conditions {
        if c["lastUpdateTime"].as_str().unwrap_or("").is_empty() {
            c["lastUpdateTime"] = json!(now);
        }
        if c["lastTransitionTime"].as_str().unwrap_or("").is_empty() {
            let kept = old
                .iter()
                .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
                .and_then(|o| o["lastTransitionTime"].as_str())
                .filter(|t| !t.is_empty())
                .unwrap_or(now)
                .to_owned();
            c["lastTransitionTime"] = json!(kept);
        }
    }
}

/// Go's `%#v` of a `[]byte`, how upstream prints an invalid `spec.request`.
fn go_bytes(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:#x}")).collect();
    format!("[]byte{{{}}}", hex.join(", "))
}

/// Upstream's `ParseCSR` then `CheckSignature`: a PEM `CERTIFICATE REQUEST` block whose
/// PKCS#10 request parses and is signed by its own key.
fn check_request(pem: &[u8]) -> Result<(), String> {
    const TYPE_ERR: &str = "PEM block type must be CERTIFICATE REQUEST";
    let text = std::str::from_utf8(pem).map_err(|_| TYPE_ERR.to_owned())?;
    let begin = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| TYPE_ERR.to_owned())?;
    if begin != "CERTIFICATE REQUEST" {
        return Err(TYPE_ERR.into());
    }
    use rustls::pki_types::pem::{PemObject, SectionKind};
    use x509_parser::prelude::FromDer;
    let der = <(SectionKind, Vec<u8>)>::pem_slice_iter(pem)
        .find_map(|s| s.ok().filter(|(k, _)| *k == SectionKind::Csr))
        .map(|(_, der)| der)
        .ok_or_else(|| "asn1: syntax error: data truncated".to_owned())?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| format!("asn1: structure error: {e}"))?;
    csr.verify_signature()
        .map_err(|_| "x509: signature verification failure".to_owned())
}

/// The subject organizations (`O=`) of the object's request; none when it does not parse
/// (validation refuses it then).
pub fn request_organizations(obj: &Value) -> Vec<String> {
    use rustls::pki_types::pem::{PemObject, SectionKind};
    use x509_parser::prelude::FromDer;
    let pem = bytes_at(obj, "/spec/request");
    let Some(der) = <(SectionKind, Vec<u8>)>::pem_slice_iter(&pem)
        .find_map(|s| s.ok().filter(|(k, _)| *k == SectionKind::Csr))
        .map(|(_, der)| der)
    else {
        return vec![];
    };
    let Ok((_, csr)) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
    else {
        return vec![];
    };
    csr.certification_request_info
        .subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect()
}

/// Upstream's `ValidateCertificateSigningRequestSignerName`.
fn validate_signer_name(name: &str) -> Vec<FieldError> {
    const F: &str = "spec.signerName";
    if name.is_empty() {
        return vec![FieldError::required(F, "signerName must be provided")];
    }
    let segments: Vec<&str> = name.split('/').collect();
    let [domain, path] = segments[..] else {
        return vec![FieldError::invalid(
            F,
            json!(name),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        )];
    };
    let mut errs = Vec::new();
    if domain.len() > 253 {
        errs.push(FieldError::too_long(F, 253));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if let Some((label, problems)) = labels
        .iter()
        .map(|l| (l, is_dns1123_label(l)))
        .find(|(_, p)| !p.is_empty())
    {
        errs.extend(problems.iter().map(|p| {
            FieldError::invalid(
                F,
                json!(domain),
                format!("validating label \"{label}\": {p}"),
            )
        }));
    }
    if labels.len() < 2 {
        errs.push(FieldError::invalid(
            F,
            json!(domain),
            "should be a domain with at least two segments separated by dots",
        ));
    }
    if let Some((label, problems)) = path
        .split('.')
        .map(|l| (l, is_dns1123_subdomain(l)))
        .find(|(_, p)| !p.is_empty())
    {
        errs.extend(problems.iter().map(|p| {
            FieldError::invalid(F, json!(path), format!("validating label \"{label}\": {p}"))
        }));
    }
    let max = 253 + (253 + 63 + 1) + 1;
    if name.len() > max {
        errs.push(FieldError::too_long(F, max));
    }
    errs
}

/// Upstream's `validateConditions` under the v1 API's strict options.
fn validate_conditions(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let (mut approved, mut denied) = (false, false);
    for (i, c) in conditions(obj).iter().enumerate() {
        let at = |f: &str| format!("status.conditions[{i}].{f}");
        let kind = c["type"].as_str().unwrap_or("");
        let status = c["status"].as_str().unwrap_or("");
        if kind.is_empty() {
            errs.push(FieldError::required(&at("type"), ""));
        }
        let allowed: &[&str] = if matches!(kind, "Approved" | "Denied" | "Failed") {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        if status.is_empty() {
            errs.push(FieldError::required(&at("status"), ""));
        } else if !allowed.contains(&status) {
            errs.push(FieldError::not_supported(
                &at("status"),
                json!(status),
                allowed,
            ));
        }
        let exclusive = match kind {
            "Approved" => {
                approved = true;
                denied
            }
            "Denied" => {
                denied = true;
                approved
            }
            _ => false,
        };
        if exclusive {
            errs.push(FieldError::invalid(
                &at("type"),
                json!(kind),
                "Approved and Denied conditions are mutually exclusive",
            ));
        }
        if seen.iter().any(|s| s == kind) {
            errs.push(FieldError::duplicate(&at("type"), json!(kind)));
        }
        seen.push(kind.to_owned());
    }
    errs
}

/// Upstream's `validateCertificate`: empty, or only parseable `CERTIFICATE` PEM blocks.
fn check_certificate(pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::pem::{PemObject, SectionKind};
    if pem.is_empty() {
        return Ok(());
    }
    let mut blocks = 0;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| e.to_string())?;
        if kind != SectionKind::Certificate {
            return Err(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                format!("{kind:?}")
            ));
        }
        x509_parser::parse_x509_certificate(&der).map_err(|e| format!("x509: {e}"))?;
        blocks += 1;
    }
    if blocks == 0 {
        return Err("must contain at least one CERTIFICATE PEM block".into());
    }
    Ok(())
}

fn bytes_at(obj: &Value, pointer: &str) -> Vec<u8> {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .unwrap_or_default()
}

/// Upstream's `ValidateCertificateSigningRequestCreate`/`Update` for the v1 API (object
/// metadata is checked by the generic validation). On update, Approved, Denied and Failed
/// conditions may not be removed; which endpoint may set what is the strategy's
/// ([`merge_subresource`]).
pub fn validate(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let request = bytes_at(obj, "/spec/request");
    if let Err(e) = check_request(&request) {
        errs.push(FieldError::invalid("spec.request", json!(null), e).rendered(go_bytes(&request)));
    }
    let usages: Vec<&str> = obj["spec"]["usages"]
        .as_array()
        .map(|u| u.iter().map(|u| u.as_str().unwrap_or("")).collect())
        .unwrap_or_default();
    if usages.is_empty() {
        errs.push(FieldError::required(
            "spec.usages",
            "usages must be provided",
        ));
    }
    for (i, usage) in usages.iter().enumerate() {
        if !USAGES.contains(usage) {
            errs.push(FieldError::not_supported(
                &format!("spec.usages[{i}]"),
                json!(usage),
                &USAGES,
            ));
        }
    }
    for (i, usage) in usages.iter().enumerate() {
        if usages[..i].contains(usage) {
            errs.push(FieldError::duplicate(
                &format!("spec.usages[{i}]"),
                json!(usage),
            ));
        }
    }
    let signer = obj["spec"]["signerName"].as_str().unwrap_or("");
    if signer == "kubernetes.io/legacy-unknown" {
        errs.push(FieldError::invalid(
            "spec.signerName",
            json!(signer),
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        errs.extend(validate_signer_name(signer));
    }
    if let Some(seconds) = obj["spec"]["expirationSeconds"].as_i64() {
        if seconds < 600 {
            errs.push(FieldError::invalid(
                "spec.expirationSeconds",
                json!(seconds),
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    errs.extend(validate_conditions(obj));
    if let Err(e) = check_certificate(&bytes_at(obj, "/status/certificate")) {
        errs.push(
            FieldError::invalid("status.certificate", json!(null), e)
                .rendered("\"<certificate data>\""),
        );
    }
    if let Some(old) = old {
        for kind in ["Approved", "Denied", "Failed"] {
            let count = |o: &Value| conditions(o).iter().filter(|c| c["type"] == kind).count();
            if count(obj) < count(old) {
                errs.push(FieldError::forbidden(
                    "status.conditions",
                    format!("updates may not remove a condition of type \"{kind}\""),
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn csr(spec: Value) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD.encode(csr_pem());
        let mut obj = json!({"metadata": {"name": "x"}, "spec": {
            "request": b64, "usages": ["digital signature", "client auth"],
            "signerName": "example.com/signer"}});
        for (k, v) in spec.as_object().unwrap() {
            obj["spec"][k] = v.clone();
        }
        obj
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(FieldError::message).collect()
    }

    /// Cases of upstream's TestValidateCertificateSigningRequestCreate.
    #[test]
    fn create_rules_as_upstream() {
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("valid", json!({}), vec![]),
            ("valid with 600s", json!({"expirationSeconds": 600}), vec![]),
            ("missing usages", json!({"usages": []}), vec!["spec.usages: Required value: usages must be provided"]),
            ("unknown usage", json!({"usages": ["digital signature", "bogus"]}), vec!["spec.usages[1]: Unsupported value: \"bogus\": supported values: \"any\", \"cert sign\", \"client auth\", \"code signing\", \"content commitment\", \"crl sign\", \"data encipherment\", \"decipher only\", \"digital signature\", \"email protection\", \"encipher only\", \"ipsec end system\", \"ipsec tunnel\", \"ipsec user\", \"key agreement\", \"key encipherment\", \"microsoft sgc\", \"netscape sgc\", \"ocsp signing\", \"s/mime\", \"server auth\", \"signing\", \"timestamping\""]),
            ("duplicate usage", json!({"usages": ["client auth", "client auth"]}), vec!["spec.usages[1]: Duplicate value: \"client auth\""]),
            ("missing signer", json!({"signerName": ""}), vec!["spec.signerName: Required value: signerName must be provided"]),
            ("legacy signer", json!({"signerName": "kubernetes.io/legacy-unknown"}), vec!["spec.signerName: Invalid value: \"kubernetes.io/legacy-unknown\": the legacy signerName is not allowed via this API version"]),
            ("no path", json!({"signerName": "example.com"}), vec!["spec.signerName: Invalid value: \"example.com\": must be a fully qualified domain and path of the form 'example.com/signer-name'"]),
            ("two slashes", json!({"signerName": "example.com/a/b"}), vec!["spec.signerName: Invalid value: \"example.com/a/b\": must be a fully qualified domain and path of the form 'example.com/signer-name'"]),
            ("one-label domain", json!({"signerName": "example/signer"}), vec!["spec.signerName: Invalid value: \"example\": should be a domain with at least two segments separated by dots"]),
            ("599s", json!({"expirationSeconds": 599}), vec!["spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)"]),
            ("negative", json!({"expirationSeconds": -1}), vec!["spec.expirationSeconds: Invalid value: -1: may not specify a duration less than 600 seconds (10 minutes)"]),
        ];
        for (name, spec, want) in cases {
            assert_eq!(messages(&validate(&csr(spec), None)), want, "{name}");
        }
    }

    #[test]
    fn the_request_must_be_a_certificate_request_block() {
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            check_request(cert.as_bytes()),
            Err("PEM block type must be CERTIFICATE REQUEST".into())
        );
        assert!(check_request(b"").is_err());
        let garbage =
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        assert!(check_request(garbage.as_bytes()).is_err());
        assert_eq!(check_request(csr_pem().as_bytes()), Ok(()));
        let errs = validate(
            &csr(json!({"request": base64::engine::general_purpose::STANDARD.encode("x")})),
            None,
        );
        assert_eq!(
            messages(&errs),
            vec!["spec.request: Invalid value: []byte{0x78}: PEM block type must be CERTIFICATE REQUEST"]
        );
    }

    /// Cases of upstream's TestValidateCertificateSigningRequestStatusUpdate conditions.
    #[test]
    fn conditions_as_upstream() {
        let with = |conds: Value| {
            let mut o = csr(json!({}));
            o["status"] = json!({"conditions": conds});
            messages(&validate(&o, None))
        };
        assert!(with(
            json!([{"type": "Approved", "status": "True"}, {"type": "Other", "status": "False"}])
        )
        .is_empty());
        assert_eq!(with(json!([{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}])),
            vec!["status.conditions[1].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"]);
        assert_eq!(with(json!([{"type": "Approved", "status": "False"}])),
            vec!["status.conditions[0].status: Unsupported value: \"False\": supported values: \"True\""]);
        assert_eq!(with(json!([{"type": "Other", "status": "Bogus"}])),
            vec!["status.conditions[0].status: Unsupported value: \"Bogus\": supported values: \"False\", \"True\", \"Unknown\""]);
        assert_eq!(
            with(json!([{"type": "", "status": ""}])),
            vec![
                "status.conditions[0].type: Required value",
                "status.conditions[0].status: Required value"
            ]
        );
        assert_eq!(
            with(
                json!([{"type": "Failed", "status": "True"}, {"type": "Failed", "status": "True"}])
            ),
            vec!["status.conditions[1].type: Duplicate value: \"Failed\""]
        );
    }

    #[test]
    fn updates_may_not_remove_approval() {
        let mut old = csr(json!({}));
        old["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}]});
        assert_eq!(
            messages(&validate(&csr(json!({})), Some(&old))),
            vec!["status.conditions: Forbidden: updates may not remove a condition of type \"Approved\""]
        );
    }

    #[test]
    fn create_stamps_the_requestor_over_the_clients_claims() {
        let mut obj = csr(json!({"username": "mallory", "groups": ["system:masters"], "uid": "u"}));
        obj["status"] = json!({"certificate": "eA=="});
        let user = UserInfo {
            username: "bob".into(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            ..UserInfo::default()
        };
        prepare_create(&mut obj, &user);
        assert_eq!(obj["spec"]["username"], "bob");
        assert_eq!(
            obj["spec"]["groups"],
            json!(["dev", "system:authenticated"])
        );
        assert!(obj["spec"].get("uid").is_none());
        assert!(obj.get("status").is_none());
    }

    #[test]
    fn approval_sets_only_approval_conditions_and_status_the_rest() {
        let old = json!({"spec": {"username": "bob"}, "status": {"conditions": [
            {"type": "Failed", "status": "True", "lastUpdateTime": "t0", "lastTransitionTime": "t0"}]}});
        let new = json!({"spec": {"username": "eve"}, "status": {"certificate": "Y2VydA==", "conditions": [
            {"type": "Approved", "status": "True"}]}});
        let approved = merge_subresource("approval", &old, &new);
        assert_eq!(approved["spec"]["username"], "bob");
        assert!(approved["status"].get("certificate").is_none());
        let types: Vec<&Value> = approved["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["type"])
            .collect();
        assert_eq!(types, vec!["Failed", "Approved"]);
        assert!(approved["status"]["conditions"][1]["lastUpdateTime"].is_string());

        let status = merge_subresource(
            "status",
            &approved,
            &json!({"status": {"certificate": "Y2VydA==", "conditions": []}}),
        );
        assert_eq!(status["status"]["certificate"], "Y2VydA==");
        let types: Vec<&Value> = status["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["type"])
            .collect();
        assert_eq!(
            types,
            vec!["Approved"],
            "status keeps approval, sets the rest"
        );
    }
}
