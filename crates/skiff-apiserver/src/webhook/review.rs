//! AdmissionReview bodies: the request a webhook is sent, the checks its response must pass
//! (upstream's `request/admissionreview.go`), JSON patches applied to the object, and a
//! denial turned into the Status the client sees (upstream's `errors/statuserror.go`).

use serde_json::{json, Map, Value};
use skiff_apimachinery::user::UserInfo;

/// `group/version/kind` and `group/version/resource` of a request or an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gvr {
    pub group: String,
    pub version: String,
    pub resource: String,
}

/// What goes into one AdmissionReview request.
pub struct ReviewRequest<'a> {
    pub uid: &'a str,
    /// The kind and resource the webhook matched (an equivalent one under matchPolicy
    /// Equivalent).
    pub kind: Gvk,
    pub resource: Gvr,
    /// The kind and resource the client addressed.
    pub request_kind: Gvk,
    pub request_resource: Gvr,
    pub subresource: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
    pub operation: &'a str,
    pub object: Option<&'a Value>,
    pub old_object: Option<&'a Value>,
    pub dry_run: bool,
    pub options: Value,
    /// Who makes the request.
    pub user: &'a UserInfo,
}

impl ReviewRequest<'_> {
    /// The `request` field (also what matchConditions see as `request`).
    pub fn request(&self) -> Value {
        let mut r = Map::new();
        r.insert("uid".into(), json!(self.uid));
        r.insert("kind".into(), gvk(&self.kind));
        r.insert("resource".into(), gvr(&self.resource));
        if !self.subresource.is_empty() {
            r.insert("subResource".into(), json!(self.subresource));
        }
        r.insert("requestKind".into(), gvk(&self.request_kind));
        r.insert("requestResource".into(), gvr(&self.request_resource));
        if !self.subresource.is_empty() {
            r.insert("requestSubResource".into(), json!(self.subresource));
        }
        if !self.name.is_empty() {
            r.insert("name".into(), json!(self.name));
        }
        if !self.namespace.is_empty() {
            r.insert("namespace".into(), json!(self.namespace));
        }
        r.insert("operation".into(), json!(self.operation));
        r.insert("userInfo".into(), json!(self.user));
        r.insert("object".into(), self.object.cloned().unwrap_or(Value::Null));
        r.insert(
            "oldObject".into(),
            self.old_object.cloned().unwrap_or(Value::Null),
        );
        r.insert("dryRun".into(), json!(self.dry_run));
        r.insert("options".into(), self.options.clone());
        Value::Object(r)
    }

    /// The whole AdmissionReview in `version` (`v1` or `v1beta1`: same shape).
    pub fn review(&self, version: &str) -> Value {
        json!({
            "kind": "AdmissionReview",
            "apiVersion": format!("admission.k8s.io/{version}"),
            "request": self.request(),
        })
    }
}

fn gvk(k: &Gvk) -> Value {
    json!({"group": k.group, "version": k.version, "kind": k.kind})
}

fn gvr(r: &Gvr) -> Value {
    json!({"group": r.group, "version": r.version, "resource": r.resource})
}

/// The options object of a write, as upstream sends it (`CreateOptions`, `UpdateOptions`,
/// `DeleteOptions`).
pub fn options(kind: &str, dry_run: bool, field_manager: Option<&str>) -> Value {
    let mut o = Map::new();
    o.insert("kind".into(), json!(kind));
    o.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
    if dry_run {
        o.insert("dryRun".into(), json!(["All"]));
    }
    if let Some(m) = field_manager {
        o.insert("fieldManager".into(), json!(m));
    }
    Value::Object(o)
}

/// A response that passed upstream's checks (`AdmissionResponse`).
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// The decoded JSON patch (mutating webhooks only).
    pub patch: Option<Value>,
    pub patch_type: Option<String>,
    /// `response.status`, when given.
    pub status: Option<Value>,
    pub warnings: Vec<String>,
}

/// Upstream's `VerifyAdmissionResponse`: the body must be an AdmissionReview of the version
/// sent, answering this uid, with a patch only from a mutating webhook and only with its type.
/// The error strings are upstream's; the caller wraps them per failurePolicy.
pub fn verify(uid: &str, version: &str, mutating: bool, body: &[u8]) -> Result<Verdict, String> {
    let review: Value = serde_json::from_slice(body)
        .map_err(|e| format!("couldn't get version/kind; json parse error: {e}"))?;
    let Some(review) = review.as_object() else {
        return Err("couldn't get version/kind; json parse error: not an object".into());
    };
    let Some(response) = review.get("response").filter(|r| r.is_object()) else {
        return Err("webhook response was absent".into());
    };
    let v1 = version == "v1";
    if v1 {
        let got_uid = response["uid"].as_str().unwrap_or_default();
        if got_uid != uid {
            return Err(format!("expected response.uid={uid:?}, got {got_uid:?}"));
        }
        let api_version = review
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
        if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
            let got = if api_version.is_empty() {
                format!("/, Kind={kind}")
            } else {
                format!("{api_version}, Kind={kind}")
            };
            return Err(format!(
                "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {got}"
            ));
        }
    }
    let patch_b64 = response["patch"].as_str().filter(|p| !p.is_empty());
    let patch_type = match &response["patchType"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => {
            return Err(format!(
                "webhook returned invalid response.patchType of {other}"
            ))
        }
    };
    let mut verdict = Verdict {
        allowed: response["allowed"].as_bool().unwrap_or(false),
        status: response.get("status").filter(|s| s.is_object()).cloned(),
        warnings: response["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        ..Verdict::default()
    };
    if !mutating {
        if patch_b64.is_some() {
            return Err("validating webhook may not return response.patch".into());
        }
        if patch_type.is_some() && v1 {
            return Err("validating webhook may not return response.patchType".into());
        }
        return Ok(verdict);
    }
    if v1 {
        match (patch_b64, &patch_type) {
            (Some(_), None) => {
                return Err("webhook returned response.patch but not response.patchType".into())
            }
            (None, Some(_)) => {
                return Err("webhook returned response.patchType but not response.patch".into())
            }
            (_, Some(t)) if t.is_empty() => {
                return Err(format!(
                    "webhook returned invalid response.patchType of {t:?}"
                ))
            }
            _ => {}
        }
    }
    if let Some(b64) = patch_b64 {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("illegal base64 data in response.patch: {e}"))?;
        let patch: Value = serde_json::from_slice(&raw)
            .map_err(|e| format!("received undecodable patch in webhook response: {e}"))?;
        verdict.patch = Some(patch);
        // v1beta1 never checked the type; upstream pins it to the only one there is.
        verdict.patch_type = Some(patch_type.unwrap_or_else(|| "JSONPatch".into()));
    }
    Ok(verdict)
}

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// Not a JSON patch document (upstream's `jsonpatch.DecodePatch` failure).
    #[error("received undecodable patch in webhook response: {0}")]
    Undecodable(String),
    /// An operation failed against the object (a missing path, a failed `test`).
    #[error("{0}")]
    Apply(String),
}

/// Applies a JSON patch; returns whether it had any operations (an empty one is no change).
pub fn apply_patch(object: &mut Value, patch: &Value) -> Result<bool, PatchError> {
    let patch: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::Undecodable(e.to_string()))?;
    if patch.0.is_empty() {
        return Ok(false);
    }
    json_patch::patch(object, &patch).map_err(|e| PatchError::Apply(e.to_string()))?;
    Ok(true)
}

/// Upstream's `ToStatusErr`: a denial as the Status the client gets, the webhook's own
/// code (at least 400), reason and details kept.
pub fn denial(webhook: &str, status: Option<&Value>) -> crate::error::ApiError {
    let empty = Value::Null;
    let status = status.unwrap_or(&empty);
    let code = status["code"]
        .as_u64()
        .filter(|c| (400..=999).contains(c))
        .unwrap_or(400) as u16;
    let denied_by = format!("admission webhook {webhook:?} denied the request");
    let message = match (
        status["message"].as_str().filter(|m| !m.is_empty()),
        status["reason"].as_str().filter(|r| !r.is_empty()),
    ) {
        (Some(m), _) => format!("{denied_by}: {m}"),
        (None, Some(r)) => format!("{denied_by}: {r}"),
        (None, None) => format!("{denied_by} without explanation"),
    };
    crate::error::ApiError::Relayed {
        code,
        reason: status["reason"].as_str().unwrap_or_default().to_owned(),
        message,
        details: status.get("details").filter(|d| d.is_object()).cloned(),
    }
}

#[cfg(test)]
mod tests;
