//! Admission webhooks: `MutatingWebhookConfiguration` and `ValidatingWebhookConfiguration`
//! called with AdmissionReview v1, as kube-apiserver's webhook admission plugins do.
//!
//! The handler calls [`Webhooks::mutate`] after the built-in mutations (defaults, registry
//! logic) and before validation, and [`Webhooks::validate`] after validation and the
//! admission policies, on create, update and delete.

use serde_json::Value;

use crate::error::Result;
use crate::handler::Api;
use crate::request::Params;
use crate::resources::ResourceInfo;

/// The admission operation, as AdmissionReview names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// What is being admitted: upstream's `admission.Attributes`.
pub struct Attributes<'a> {
    pub resource: &'a ResourceInfo,
    pub subresource: Option<&'a str>,
    pub operation: Operation,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub dry_run: bool,
    /// The request's parameters: warnings for the response are added here.
    pub params: &'a Params,
}

/// The webhook admission plugins' state.
#[derive(Default)]
pub struct Webhooks {}

impl Webhooks {
    /// Runs the mutating webhooks that match; returns the (possibly patched) object.
    pub async fn mutate(
        &self,
        _api: &Api,
        _attrs: &Attributes<'_>,
        object: Value,
        _old: Option<&Value>,
    ) -> Result<Value> {
        Ok(object)
    }

    /// Runs the validating webhooks that match; an error denies the request.
    pub async fn validate(
        &self,
        _api: &Api,
        _attrs: &Attributes<'_>,
        _object: Option<&Value>,
        _old: Option<&Value>,
    ) -> Result<()> {
        Ok(())
    }
}
