//! The Priority admission plugin (upstream's `plugin/pkg/admission/priority`): a new pod's
//! `priorityClassName` (or the global default class) gives its `spec.priority` and
//! `spec.preemptionPolicy`, an update keeps them, and a PriorityClass may become the
//! global default only while no other is. The decisions are
//! `skiff_apimachinery::priority`'s; this reads the classes from the store.

use serde_json::Value;
use skiff_apimachinery::priority;

use crate::error::{ApiError, Result};
use crate::handler::{materialize, Api};
use crate::webhook::{Attributes, Operation};

fn is(attrs: &Attributes<'_>, group: &str, plural: &str) -> bool {
    attrs.resource.group == group && attrs.resource.plural == plural && attrs.subresource.is_none()
}

/// Every PriorityClass as stored now (upstream reads its informer's cache; a class is
/// a handful of objects, read per pod create).
fn classes(api: &Api) -> Result<Vec<Value>> {
    let Some(r) = api
        .registry
        .get("scheduling.k8s.io", "v1", "priorityclasses")
    else {
        return Ok(vec![]);
    };
    api.store
        .list(&r.key(None, None), None, None)?
        .items
        .iter()
        .map(materialize)
        .collect()
}

/// The plugin's `Admit` on pods: resolves a new pod's priority, keeps an updated pod's.
pub fn admit(
    api: &Api,
    attrs: &Attributes<'_>,
    pod: &mut Value,
    old: Option<&Value>,
) -> Result<()> {
    if !is(attrs, "", "pods") {
        return Ok(());
    }
    match (attrs.operation, old) {
        (Operation::Create, _) => priority::admit_pod_create(pod, &classes(api)?)
            .map_err(|reason| ApiError::denied(attrs.resource, attrs.name, &reason)),
        (Operation::Update, Some(old)) => {
            priority::admit_pod_update(pod, old);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The plugin's `Validate` on PriorityClass creates and updates: one global default.
pub fn validate(api: &Api, attrs: &Attributes<'_>, class: &Value) -> Result<()> {
    if !is(attrs, "scheduling.k8s.io", "priorityclasses")
        || !matches!(attrs.operation, Operation::Create | Operation::Update)
    {
        return Ok(());
    }
    priority::validate_class(class, &classes(api)?, attrs.operation == Operation::Update)
        .map_err(|reason| ApiError::denied(attrs.resource, attrs.name, &reason))
}
