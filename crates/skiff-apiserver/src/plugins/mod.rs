//! The built-in admission plugins, run in upstream's order around the generic stages:
//! NamespaceLifecycle (`Api::require_namespace`, first), LimitRanger (defaults before the
//! mutating webhooks, checks first among the validating plugins), Priority (a new pod's
//! priority from its class; one default class), PodSecurity, then
//! ValidatingAdmissionPolicy and the validating webhooks, and ResourceQuota last, which
//! charges the namespace's quotas just before the object is stored.
//!
//! Each plugin reads what it needs (LimitRanges, ResourceQuotas, the Namespace) from the
//! store and decides with the pure rules of `skiff_apimachinery`.

pub mod certificates;
pub mod limits;
pub mod noderestriction;
pub mod podsecurity;
pub mod priority;
pub mod quota;
pub mod serviceaccount;
pub mod tolerations;

use serde_json::Value;

use crate::error::Result;
use crate::handler::{materialize, Api};
use crate::webhook::{Attributes, Operation};

impl Api {
    /// The mutating built-ins, after the registry's own preparation and before the
    /// mutating webhooks: LimitRanger's container defaults, Priority, then
    /// DefaultTolerationSeconds (upstream's order).
    pub(crate) fn admit_builtin(&self, attrs: &Attributes<'_>, obj: &mut Value) -> Result<()> {
        if attrs.operation == Operation::Create && attrs.subresource.is_none() {
            limits::default(self, attrs, obj)?;
        }
        priority::admit(self, attrs, obj, None)?;
        self.default_tolerations.admit(attrs, obj);
        Ok(())
    }

    /// The mutating built-ins on an update, before the mutating webhooks: Priority keeps
    /// what it set at create.
    pub(crate) fn admit_builtin_update(
        &self,
        attrs: &Attributes<'_>,
        obj: &mut Value,
        old: &Value,
    ) -> Result<()> {
        priority::admit(self, attrs, obj, Some(old))
    }

    /// The validating built-ins before admission policies and webhooks: NodeRestriction,
    /// LimitRanger's bounds, ServiceAccount, the certificate plugins, Priority, then
    /// PodSecurity.
    pub(crate) fn validate_builtin(
        &self,
        attrs: &Attributes<'_>,
        obj: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<()> {
        noderestriction::check_attrs(self, attrs, obj, old)?;
        let Some(obj) = obj else {
            return Ok(());
        };
        limits::validate(self, attrs, obj)?;
        serviceaccount::validate(self, attrs, obj)?;
        certificates::validate(self, attrs, obj, old)?;
        priority::validate(self, attrs, obj)?;
        podsecurity::validate(self, attrs, obj, old)
    }

    /// The objects of `resource` (core group, v1) in `ns`, as stored now.
    pub(crate) fn namespace_objects(&self, resource: &str, ns: &str) -> Result<Vec<Value>> {
        let Some(r) = self.registry.get("", "v1", resource) else {
            return Ok(vec![]);
        };
        self.store
            .list(&r.key(Some(ns), None), None, None)?
            .items
            .iter()
            .map(materialize)
            .collect()
    }
}
