//! The LimitRanger admission plugin: a new pod gets its namespace's LimitRange defaults,
//! and pods and PersistentVolumeClaims are held to the ranges' bounds (rules in
//! `skiff_apimachinery::limitrange`).

use serde_json::Value;
use skiff_apimachinery::limitrange;

use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::webhook::{Attributes, Operation};

fn is(attrs: &Attributes<'_>, resource: &str) -> bool {
    attrs.resource.group.is_empty()
        && attrs.resource.plural == resource
        && attrs.subresource.is_none()
}

/// Fills a new pod's missing container requests and limits from the LimitRanges.
pub fn default(api: &Api, attrs: &Attributes<'_>, pod: &mut Value) -> Result<()> {
    let Some(ns) = attrs.namespace else {
        return Ok(());
    };
    if !is(attrs, "pods") {
        return Ok(());
    }
    let ranges = api.namespace_objects("limitranges", ns)?;
    if !ranges.is_empty() {
        limitrange::apply_defaults(&ranges, pod);
    }
    Ok(())
}

/// Refuses a pod (on create: containers cannot change later) or a claim (create and
/// update) outside the ranges, with upstream's 403.
pub fn validate(api: &Api, attrs: &Attributes<'_>, obj: &Value) -> Result<()> {
    let Some(ns) = attrs.namespace else {
        return Ok(());
    };
    let pod = is(attrs, "pods") && attrs.operation == Operation::Create;
    let claim = is(attrs, "persistentvolumeclaims")
        && matches!(attrs.operation, Operation::Create | Operation::Update);
    if !pod && !claim {
        return Ok(());
    }
    let ranges = api.namespace_objects("limitranges", ns)?;
    if ranges.is_empty() {
        return Ok(());
    }
    let errors = if pod {
        limitrange::validate_pod(&ranges, obj)
    } else {
        limitrange::validate_claim(&ranges, obj)
    };
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::denied(
        attrs.resource,
        attrs.name,
        &limitrange::aggregate(&errors),
    ))
}
