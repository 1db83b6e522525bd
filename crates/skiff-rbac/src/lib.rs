//! RBAC, pure: may this user do this? Request attributes derived as upstream's
//! `RequestInfoFactory` ([`attributes`]), rule matching and coverage ([`rule`]), the
//! authorizer over an index of the four RBAC kinds ([`authorizer`]), the 403 upstream writes
//! ([`forbidden`]), escalation prevention ([`escalation`]), the bootstrap policy and its
//! reconciliation ([`bootstrap`]) and ClusterRole aggregation ([`aggregation`]). No I/O:
//! the API server keeps the index current and asks.

pub mod aggregation;
pub mod attributes;
pub mod authorizer;
pub mod bootstrap;
pub mod components;
pub mod escalation;
pub mod forbidden;
pub mod node;
pub mod rule;

pub use attributes::{Attributes, RequestInfo};
pub use authorizer::{Decision, Policy};
pub use forbidden::Forbidden;

/// A malformed RBAC object (wire JSON that is not a Role, ClusterRole or binding).
#[derive(Debug, thiserror::Error)]
#[error("malformed {kind}: {source}")]
pub struct Error {
    pub kind: &'static str,
    #[source]
    pub source: serde_json::Error,
}

/// Decodes one stored or sent RBAC object from its wire JSON.
pub fn decode<T: serde::de::DeserializeOwned>(kind: &'static str, json: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(json).map_err(|source| Error { kind, source })
}
