//! API errors and their one mapping to a Kubernetes `Status` response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::resources::ResourceInfo;

/// One field-level cause of an `Invalid` error, as upstream's `StatusCause`.
#[derive(Debug, Clone)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// Everything a request can fail with, each with its upstream status code and reason.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{qualified} \"{name}\" not found")]
    NotFound {
        group: String,
        plural: String,
        qualified: String,
        name: String,
    },
    #[error("{qualified} \"{name}\" already exists")]
    AlreadyExists {
        group: String,
        plural: String,
        qualified: String,
        name: String,
    },
    /// Optimistic concurrency: the object changed since the client read it.
    #[error("Operation cannot be fulfilled on {qualified} \"{name}\": {detail}")]
    Conflict {
        group: String,
        plural: String,
        qualified: String,
        name: String,
        detail: String,
    },
    /// A server-side apply changes fields other managers own (upstream's
    /// `NewApplyConflict`: the details carry only the causes).
    #[error("{message}")]
    ApplyConflict { message: String, causes: Vec<Cause> },
    /// Validation failed; `message` is already formatted as upstream.
    #[error("{message}")]
    Invalid {
        group: String,
        kind: String,
        name: String,
        message: String,
        causes: Vec<Cause>,
    },
    #[error("{0}")]
    BadRequest(String),
    /// A continue token whose revision is compacted; `token` continues from the same key at
    /// the latest revision, carried in the Status's metadata as upstream.
    #[error("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")]
    ExpiredContinue { token: String },
    /// A watch or list asked for history that has been compacted.
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// An admission plugin refused the object (upstream's `admission.NewForbidden`):
    /// `<resource> "name" is forbidden: <reason>`, details naming the object.
    #[error("{message}")]
    Denied {
        group: String,
        plural: String,
        name: String,
        message: String,
        causes: Vec<Cause>,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("the server could not find the requested resource")]
    NoRoute,
    #[error("Internal error occurred: {0}")]
    Internal(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    /// The request body is over the limit; the message is upstream's.
    #[error("{0}")]
    TooLarge(String),
    /// A read asked for a resourceVersion the store has not reached within the wait
    /// (upstream's `NewTooLargeResourceVersionError`).
    #[error("Timeout: Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion { requested: i64, current: i64 },
    /// The request could not complete in time because the datastore did not answer (etcd
    /// unreachable or without quorum): upstream's `NewTimeoutError` as its request-timeout
    /// filter and finisher send it when a storage call outlives the request.
    #[error("Timeout: {0}")]
    Timeout(String),
    /// A denial whose `Status` someone else wrote (an admission webhook's response): its
    /// code, reason and details are passed on as given, as upstream returns the webhook's
    /// `Status` itself.
    #[error("{message}")]
    Relayed {
        code: u16,
        reason: String,
        message: String,
        details: Option<Value>,
    },
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn not_found(r: &ResourceInfo, name: &str) -> ApiError {
        ApiError::NotFound {
            group: r.group.clone(),
            plural: r.plural.clone(),
            qualified: r.qualified(),
            name: name.to_owned(),
        }
    }

    pub fn already_exists(r: &ResourceInfo, name: &str) -> ApiError {
        ApiError::AlreadyExists {
            group: r.group.clone(),
            plural: r.plural.clone(),
            qualified: r.qualified(),
            name: name.to_owned(),
        }
    }

    pub fn conflict(r: &ResourceInfo, name: &str, detail: &str) -> ApiError {
        ApiError::Conflict {
            group: r.group.clone(),
            plural: r.plural.clone(),
            qualified: r.qualified(),
            name: name.to_owned(),
            detail: detail.to_owned(),
        }
    }

    /// An admission refusal of `name` (upstream's `NewForbidden`; a nameless object is
    /// `<resource> is forbidden: ...`).
    pub fn denied(r: &ResourceInfo, name: &str, reason: &str) -> ApiError {
        ApiError::denied_with(r, name, reason, vec![])
    }

    /// [`ApiError::denied`] with status causes (NamespaceTerminating).
    pub fn denied_with(r: &ResourceInfo, name: &str, reason: &str, causes: Vec<Cause>) -> ApiError {
        let message = if name.is_empty() {
            format!("{} is forbidden: {reason}", r.qualified())
        } else {
            format!("{} \"{name}\" is forbidden: {reason}", r.qualified())
        };
        ApiError::Denied {
            group: r.group.clone(),
            plural: r.plural.clone(),
            name: name.to_owned(),
            message,
            causes,
        }
    }

    /// The usual conflict: a stale resourceVersion.
    pub fn modified(r: &ResourceInfo, name: &str) -> ApiError {
        ApiError::conflict(
            r,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `Kind.group "name" is invalid: ...` with upstream's one-or-list formatting.
    pub fn invalid(r: &ResourceInfo, name: &str, causes: Vec<Cause>) -> ApiError {
        ApiError::invalid_kind(&r.group, &r.kind, name, causes)
    }

    /// [`ApiError::invalid`] for any group and kind (option kinds of meta.k8s.io,
    /// PodLogOptions): upstream's `NewInvalid`.
    pub fn invalid_kind(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let qualified_kind = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let list = match rendered.as_slice() {
            [one] => one.clone(),
            _ => format!("[{}]", rendered.join(", ")),
        };
        ApiError::Invalid {
            group: group.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            message: format!("{qualified_kind} \"{name}\" is invalid: {list}"),
            causes,
        }
    }

    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. }
            | ApiError::Conflict { .. }
            | ApiError::ApplyConflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Gone(_) | ApiError::ExpiredContinue { .. } => StatusCode::GONE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Denied { .. } => StatusCode::FORBIDDEN,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooLargeResourceVersion { .. } | ApiError::Timeout(_) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ApiError::Relayed { code, .. } => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Gone(_) | ApiError::ExpiredContinue { .. } => "Expired",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden(_) | ApiError::Denied { .. } => "Forbidden",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::Internal(_) => "InternalError",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::TooLarge(_) => "RequestEntityTooLarge",
            ApiError::TooLargeResourceVersion { .. } | ApiError::Timeout(_) => "Timeout",
            // Rendered from the relayed Status's own reason in `status`.
            ApiError::Relayed { .. } => "",
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            ApiError::NotFound {
                group,
                plural,
                name,
                ..
            }
            | ApiError::AlreadyExists {
                group,
                plural,
                name,
                ..
            }
            | ApiError::Conflict {
                group,
                plural,
                name,
                ..
            } => Some(details(name, group, plural)),
            ApiError::Invalid {
                group,
                kind,
                name,
                causes,
                ..
            } => {
                let mut d = details(name, group, kind);
                d["causes"] = causes.iter().map(cause_json).collect();
                Some(d)
            }
            ApiError::Denied {
                group,
                plural,
                name,
                causes,
                ..
            } => {
                let mut d = details(name, group, plural);
                if !causes.is_empty() {
                    d["causes"] = causes.iter().map(cause_json).collect();
                }
                Some(d)
            }
            ApiError::ApplyConflict { causes, .. } => Some(json!({
                "causes": causes.iter().map(cause_json).collect::<Vec<_>>(),
            })),
            // Upstream's generic 404 for a path it does not serve carries empty details.
            ApiError::NoRoute => Some(json!({})),
            ApiError::TooLargeResourceVersion { .. } => Some(json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1,
            })),
            // `retryAfterSeconds` 0 is omitted, leaving upstream's empty details.
            ApiError::Timeout(_) => Some(json!({})),
            ApiError::Relayed { details, .. } => details.clone(),
            _ => None,
        }
    }

    /// The upstream `Status` object for this error, its fields in upstream's order (kind,
    /// apiVersion, metadata, status, message, reason, details, code): some clients compare
    /// error bodies byte for byte.
    pub fn status(&self) -> Value {
        let mut status = serde_json::Map::new();
        status.insert("kind".into(), json!("Status"));
        status.insert("apiVersion".into(), json!("v1"));
        let metadata = match self {
            ApiError::ExpiredContinue { token } => json!({"continue": token}),
            _ => json!({}),
        };
        status.insert("metadata".into(), metadata);
        status.insert("status".into(), json!("Failure"));
        status.insert("message".into(), json!(self.to_string()));
        let reason = match self {
            ApiError::Relayed { reason, .. } => reason.as_str(),
            _ => self.reason(),
        };
        // Go's `Status.reason` is omitempty: a relayed Status may have none.
        if !reason.is_empty() {
            status.insert("reason".into(), json!(reason));
        }
        if let Some(d) = self.details() {
            status.insert("details".into(), d);
        }
        status.insert("code".into(), json!(self.code().as_u16()));
        Value::Object(status)
    }
}

/// `StatusDetails` in upstream's field order (name, group, kind), empty fields omitted.
fn details(name: &str, group: &str, kind: &str) -> Value {
    let mut d = serde_json::Map::new();
    for (key, value) in [("name", name), ("group", group), ("kind", kind)] {
        if !value.is_empty() {
            d.insert(key.into(), json!(value));
        }
    }
    Value::Object(d)
}

/// A `StatusCause` (reason, message, field), empty fields omitted as upstream.
fn cause_json(c: &Cause) -> Value {
    let mut m = serde_json::Map::new();
    for (key, value) in [
        ("reason", &c.reason),
        ("message", &c.message),
        ("field", &c.field),
    ] {
        if !value.is_empty() {
            m.insert(key.into(), json!(value));
        }
    }
    Value::Object(m)
}

/// Upstream's message when a request outlives its deadline waiting on storage
/// (`request did not complete within requested timeout - ` and the context's error).
pub const STORAGE_TIMEOUT: &str =
    "request did not complete within requested timeout - context deadline exceeded";

impl From<skiff_store::Error> for ApiError {
    fn from(e: skiff_store::Error) -> Self {
        match e {
            skiff_store::Error::Compacted { .. } => {
                ApiError::Gone(format!("too old resource version: {e}"))
            }
            skiff_store::Error::Closed => ApiError::ServiceUnavailable(e.to_string()),
            // The client gets upstream's words for a request that ran out of time; why the
            // datastore did not answer is for the server's log.
            skiff_store::Error::Unavailable(why) => {
                tracing::warn!(error = %why, "datastore unavailable");
                ApiError::Timeout(STORAGE_TIMEOUT.into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        if code.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut resp = crate::http::json_response(code, &self.status());
        if code == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert("www-authenticate", "Bearer".parse().expect("static header"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each store failure becomes the Status upstream's storage layer answers with.
    #[test]
    fn store_errors_map_to_upstream_statuses() {
        for (error, code, reason, message, details) in [
            (
                skiff_store::Error::Unavailable("etcd: grpc request error: no leader".into()),
                504,
                "Timeout",
                "Timeout: request did not complete within requested timeout - context deadline exceeded",
                Some(json!({})),
            ),
            (
                skiff_store::Error::Compacted {
                    requested: 3,
                    compacted: 9,
                },
                410,
                "Expired",
                "too old resource version: revision 3 has been compacted (oldest kept is 9)",
                None,
            ),
            (
                skiff_store::Error::Closed,
                503,
                "ServiceUnavailable",
                "store is closed",
                None,
            ),
            (
                skiff_store::Error::Backend("etcd: grpc request error: permission denied".into()),
                500,
                "InternalError",
                "Internal error occurred: datastore: etcd: grpc request error: permission denied",
                None,
            ),
        ] {
            let status = ApiError::from(error).status();
            assert_eq!(status["code"], code, "{status}");
            assert_eq!(status["reason"], reason, "{status}");
            assert_eq!(status["message"], message, "{status}");
            assert_eq!(status.get("details"), details.as_ref(), "{status}");
        }
    }
}
