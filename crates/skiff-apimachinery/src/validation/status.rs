//! The 422 `Status` upstream's `errors.NewInvalid` builds from field errors; kubectl prints
//! `The <Kind> "<name>" is invalid: ...` from its details and causes.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::FieldError;

/// Upstream's `ErrorList.ToAggregate().Error()`: one message as is, several deduplicated,
/// comma-separated and bracketed.
pub fn aggregate_message(errs: &[FieldError]) -> String {
    let mut seen = HashSet::new();
    let msgs: Vec<String> = errs
        .iter()
        .map(ToString::to_string)
        .filter(|m| seen.insert(m.clone()))
        .collect();
    match msgs.len() {
        1 => msgs[0].clone(),
        _ => format!("[{}]", msgs.join(", ")),
    }
}

/// The `metav1.Status` (code 422, reason `Invalid`) for `errs` on object `name` of
/// `group`/`kind`, with one cause per error as upstream.
pub fn invalid_status(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> Value {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let quoted = super::fmt_go::quote(name);
    let message = if errs.is_empty() {
        format!("{qualified} {quoted} is invalid")
    } else {
        format!(
            "{qualified} {quoted} is invalid: {}",
            aggregate_message(errs)
        )
    };
    let causes: Vec<Value> = errs
        .iter()
        .map(|e| json!({"reason": e.kind.reason(), "message": e.body(), "field": e.field}))
        .collect();
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": {"name": name, "group": group, "kind": kind, "causes": causes},
        "code": 422,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_status_matches_new_invalid() {
        let errs = vec![
            FieldError::required("spec.template.spec.containers[0].image", ""),
            FieldError::required("spec.template.spec.containers[0].image", ""),
            FieldError::invalid(
                "spec.replicas",
                json!(-1),
                "must be greater than or equal to 0",
            ),
        ];
        let status = invalid_status("apps", "Deployment", "web", &errs);
        assert_eq!(status["message"], "Deployment.apps \"web\" is invalid: [spec.template.spec.containers[0].image: Required value, spec.replicas: Invalid value: -1: must be greater than or equal to 0]");
        assert_eq!(
            status["details"]["causes"][2],
            json!({"reason": "FieldValueInvalid",
            "message": "Invalid value: -1: must be greater than or equal to 0", "field": "spec.replicas"})
        );
        let one = invalid_status("", "Pod", "web", &errs[..1]);
        assert_eq!(
            one["message"],
            "Pod \"web\" is invalid: spec.template.spec.containers[0].image: Required value"
        );
        assert_eq!(one["code"], 422);
    }
}
