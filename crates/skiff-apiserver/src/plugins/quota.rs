//! The ResourceQuota admission plugin, last before storage: the object's usage is checked
//! against every quota of its namespace that tracks it, and the new `status.used` of each
//! is written with a compare-and-swap on the quota's resourceVersion, as upstream's quota
//! evaluator does, so two racing creates cannot both take the last unit. A refusal stores
//! nothing; a dry run is checked but never charged. Usage freed by deletes comes back
//! through the quota controller, which recomputes `status.used` from the objects.

use std::collections::HashSet;

use serde_json::Value;
use skiff_apimachinery::quota::{self, QuotaError, Resource};

use crate::error::{ApiError, Result};
use crate::handler::{encode, materialize, Api};
use crate::webhook::{Attributes, Operation};

/// How many times a charge is retried when another request charged a quota first.
const CHARGE_RETRIES: usize = 16;

/// Whether upstream's quota admission looks at this request: creates of any namespaced
/// kind, updates of the kinds whose usage can grow in place (a Service's type, a claim's
/// size). Subresources (status, binding, scale) are not charged.
fn handles(attrs: &Attributes<'_>) -> bool {
    if attrs.subresource.is_some() || !attrs.resource.namespaced {
        return false;
    }
    match attrs.operation {
        Operation::Create => true,
        Operation::Update => {
            attrs.resource.group.is_empty()
                && matches!(
                    attrs.resource.plural.as_str(),
                    "services" | "persistentvolumeclaims"
                )
        }
        _ => false,
    }
}

/// Checks `obj` against its namespace's quotas and, unless this is a dry run, charges
/// them. Called after every other admission step, just before the object is stored.
pub async fn charge(
    api: &Api,
    attrs: &Attributes<'_>,
    obj: &Value,
    old: Option<&Value>,
) -> Result<()> {
    let Some(ns) = attrs.namespace else {
        return Ok(());
    };
    if !handles(attrs) {
        return Ok(());
    }
    let Some(quotas_resource) = api.registry.get("", "v1", "resourcequotas") else {
        return Ok(());
    };
    let r = Resource::new(&attrs.resource.group, &attrs.resource.plural);
    // Quotas already charged by an earlier attempt of this request are not charged again.
    let mut charged: HashSet<String> = HashSet::new();
    for _ in 0..CHARGE_RETRIES {
        let listed = api
            .store
            .list(&quotas_resource.key(Some(ns), None), None, None)?
            .items;
        let mut quotas = Vec::new();
        let mut revisions = Vec::new();
        for kv in &listed {
            let q = materialize(kv)?;
            if charged.contains(crate::object::name(&q).unwrap_or_default()) {
                continue;
            }
            revisions.push((kv.key.clone(), kv.mod_revision));
            quotas.push(q);
        }
        if quotas.is_empty() {
            return Ok(());
        }
        let charges =
            quota::admit(&quotas, r, obj, old, chrono::Utc::now()).map_err(|e| match e {
                QuotaError::Forbidden(reason) => {
                    ApiError::denied(attrs.resource, attrs.name, &reason)
                }
                QuotaError::Overflow(_) => {
                    ApiError::denied(attrs.resource, attrs.name, &e.to_string())
                }
                QuotaError::Scope { .. } => ApiError::Internal(e.to_string()),
            })?;
        if attrs.dry_run || charges.is_empty() {
            return Ok(());
        }
        let mut conflicted = false;
        for c in charges {
            let mut q = quotas[c.index].clone();
            q["status"]["used"] = quota::to_json(&c.used);
            let (key, revision) = &revisions[c.index];
            match api
                .store
                .update(key.clone(), encode(&quotas_resource, &q)?, Some(*revision))
                .await
            {
                Ok(_) => {
                    charged.insert(crate::object::name(&q).unwrap_or_default().to_owned());
                }
                // Charged meanwhile by another request, or deleted: read the quotas again.
                Err(skiff_store::Error::Conflict { .. } | skiff_store::Error::NotFound(_)) => {
                    conflicted = true;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !conflicted {
            return Ok(());
        }
    }
    Err(ApiError::conflict(
        attrs.resource,
        attrs.name,
        "too many conflicts charging the namespace's resource quotas; please try again",
    ))
}
