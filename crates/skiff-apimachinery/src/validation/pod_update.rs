//! The Pod update rule of `ValidatePodUpdate`: only images, a shrinking deadline, added
//! tolerations and a negative grace period raised to 1 may change.

use serde_json::{Map, Value};

use super::names::inclusive_range_error;
use super::pod::arr;
use super::{fmt_go, FieldError};

/// The fields a Pod update may change, in upstream's message order.
const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`'s spec rule: everything but images, a shrinking deadline, added
/// tolerations and a negative grace period raised to 1 is immutable.
pub(super) fn validate_pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let deadline_path = "spec.activeDeadlineSeconds";
    match (
        new.get("activeDeadlineSeconds").and_then(Value::as_i64),
        old.get("activeDeadlineSeconds").and_then(Value::as_i64),
    ) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid(
                deadline_path,
                Value::from(n),
                inclusive_range_error(0, i64::from(i32::MAX)),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                deadline_path,
                Value::from(n),
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => {
            errs.push(FieldError::invalid(
                deadline_path,
                Value::Null,
                "must not update from a positive integer to nil value",
            ));
        }
        _ => {}
    }

    // Copy every mutable field from the old spec into the new one, then compare.
    let mut munged = new.clone();
    for list in ["containers", "initContainers"] {
        let old_list = arr(old, list);
        if let Some(Value::Array(items)) = munged.get_mut(list) {
            if items.len() == old_list.len() {
                for (item, was) in items.iter_mut().zip(old_list) {
                    if let (Some(obj), Some(image)) = (item.as_object_mut(), was.get("image")) {
                        obj.insert("image".into(), image.clone());
                    }
                }
            }
        }
    }
    if let Some(obj) = munged.as_object_mut() {
        match old.get("activeDeadlineSeconds") {
            Some(v) => obj.insert("activeDeadlineSeconds".into(), v.clone()),
            None => obj.remove("activeDeadlineSeconds"),
        };
        let old_tolerations = arr(old, "tolerations");
        let new_tolerations = arr(new, "tolerations");
        if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
            match old.get("tolerations") {
                Some(v) => obj.insert("tolerations".into(), v.clone()),
                None => obj.remove("tolerations"),
            };
        }
        let old_grace = old
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        let new_grace = new
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
            if let Some(v) = old.get("terminationGracePeriodSeconds") {
                obj.insert("terminationGracePeriodSeconds".into(), v.clone());
            }
        }
    }
    if munged != *old {
        errs.push(FieldError::forbidden(
            "spec",
            format!(
                "pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n{}",
                struct_diff("core.PodSpec", old, &munged)
            ),
        ));
    }
    errs
}

/// A short stand-in for upstream's `cmp.Diff` of two values of Go type `type_name`: the
/// top-level fields that differ, old value first.
pub(super) fn struct_diff(type_name: &str, old: &Value, new: &Value) -> String {
    let empty = Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = format!("  {type_name}{{\n");
    for k in keys {
        if o.get(k) != n.get(k) {
            let render = |v: Option<&Value>| v.map_or("nil".to_string(), fmt_go::value);
            out.push_str(&format!(
                "- \t{k}: {},\n+ \t{k}: {},\n",
                render(o.get(k)),
                render(n.get(k))
            ));
        }
    }
    out.push_str("  }\n");
    out
}
