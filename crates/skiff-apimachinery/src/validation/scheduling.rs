//! `scheduling.k8s.io` validation: upstream's `ValidatePriorityClass` and
//! `ValidatePriorityClassUpdate` (`pkg/apis/scheduling/validation`). The metadata checks
//! run first in [`super::validate`].

use serde_json::Value;

use super::{FieldError, FIELD_IMMUTABLE};
use crate::priority::{
    is_known_system_class, HIGHEST_USER_DEFINABLE_PRIORITY, PREEMPT_LOWER_PRIORITY,
    SYSTEM_PRIORITY_CLASS_PREFIX,
};

/// `ValidatePriorityClass`, and on update what `ValidatePriorityClassUpdate` adds: the
/// value and the preemption policy never change.
pub(super) fn validate_priority_class(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let value = obj["value"].as_i64().unwrap_or(0);
    let global_default = obj["globalDefault"].as_bool().unwrap_or(false);
    if old.is_none() {
        if name.starts_with(SYSTEM_PRIORITY_CLASS_PREFIX) {
            if let Err(e) = is_known_system_class(name, value, global_default) {
                errs.push(FieldError::forbidden(
                    "metadata.name",
                    format!(
                        "priority class names with '{SYSTEM_PRIORITY_CLASS_PREFIX}' prefix are \
                         reserved for system use only. error: {e}"
                    ),
                ));
            }
        } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
            errs.push(FieldError::forbidden(
                "value",
                format!(
                    "maximum allowed value of a user defined priority is \
                     {HIGHEST_USER_DEFINABLE_PRIORITY}"
                ),
            ));
        }
        if let Some(policy) = obj.get("preemptionPolicy").and_then(Value::as_str) {
            if policy != PREEMPT_LOWER_PRIORITY && policy != "Never" {
                errs.push(FieldError::not_supported(
                    "preemptionPolicy",
                    Value::from(policy),
                    &[PREEMPT_LOWER_PRIORITY, "Never"],
                ));
            }
        }
        return errs;
    }
    let old = old.unwrap_or(&Value::Null);
    if old["value"].as_i64().unwrap_or(0) != value {
        errs.push(FieldError::forbidden(
            "value",
            "may not be changed in an update.",
        ));
    }
    let policy = obj.get("preemptionPolicy").filter(|p| !p.is_null());
    if policy != old.get("preemptionPolicy").filter(|p| !p.is_null()) {
        errs.push(FieldError::invalid(
            "preemptionPolicy",
            policy.cloned().unwrap_or(Value::Null),
            FIELD_IMMUTABLE,
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::validate;

    fn messages(obj: &serde_json::Value, old: Option<&serde_json::Value>) -> Vec<String> {
        validate("scheduling.k8s.io", "PriorityClass", obj, old)
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn class(name: &str, value: i64) -> serde_json::Value {
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value,
            "preemptionPolicy": "PreemptLowerPriority"})
    }

    /// Upstream's `TestValidatePriorityClass`, with the messages upstream prints.
    #[test]
    fn priority_class_create() {
        let ok = [
            ("no description", class("tier1", 100)),
            ("with description", {
                let mut c = class("tier1", 200);
                c["description"] = json!("Used for the highest priority pods.");
                c
            }),
            (
                "system node critical",
                class("system-node-critical", 2_000_001_000),
            ),
            (
                "system cluster critical",
                class("system-cluster-critical", 2_000_000_000),
            ),
            ("the highest user value", class("tier1", 1_000_000_000)),
        ];
        for (name, c) in ok {
            assert_eq!(messages(&c, None), Vec::<String>::new(), "{name}");
        }
        let bad = [
            (
                "invalid name",
                class("tier&1", 100),
                "metadata.name: Invalid value: \"tier&1\"",
            ),
            (
                "incorrect system class name",
                class("system-node-critical", 0),
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: value of system-node-critical PriorityClass must be 2000001000",
            ),
            (
                "incorrect system class value",
                class("system-something", 2_000_001_000),
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-something is not a known system priority class",
            ),
            (
                "a system class as global default",
                {
                    let mut c = class("system-cluster-critical", 2_000_000_000);
                    c["globalDefault"] = json!(true);
                    c
                },
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: globalDefault of system-cluster-critical PriorityClass must be false",
            ),
            (
                "a user value above the highest",
                class("tier1", 1_000_000_001),
                "value: Forbidden: maximum allowed value of a user defined priority is 1000000000",
            ),
            (
                "an unknown preemption policy",
                {
                    let mut c = class("tier1", 1);
                    c["preemptionPolicy"] = json!("Sometimes");
                    c
                },
                "preemptionPolicy: Unsupported value: \"Sometimes\": supported values: \"PreemptLowerPriority\", \"Never\"",
            ),
        ];
        for (name, c, want) in bad {
            let got = messages(&c, None);
            assert!(got.iter().any(|m| m.starts_with(want)), "{name}: {got:?}");
        }
    }

    /// Upstream's `TestValidatePriorityClassUpdate`.
    #[test]
    fn priority_class_update() {
        let mut old = class("tier1", 100);
        old["metadata"]["resourceVersion"] = json!("1");
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c = class("tier1", 100);
            c["metadata"]["resourceVersion"] = json!("2");
            f(&mut c);
            c
        };
        let ok = [
            ("no change", with(&|_| {})),
            (
                "change description",
                with(&|c| c["description"] = json!("A different description.")),
            ),
            (
                "change globalDefault",
                with(&|c| c["globalDefault"] = json!(true)),
            ),
        ];
        for (name, c) in ok {
            assert_eq!(messages(&c, Some(&old)), Vec::<String>::new(), "{name}");
        }
        let bad = [
            (
                "remove value",
                with(&|c| {
                    c.as_object_mut().unwrap().remove("value");
                }),
                "value: Forbidden: may not be changed in an update.",
            ),
            (
                "change value",
                with(&|c| c["value"] = json!(101)),
                "value: Forbidden: may not be changed in an update.",
            ),
            (
                "change preemptionPolicy",
                with(&|c| c["preemptionPolicy"] = json!("Never")),
                "preemptionPolicy: Invalid value: \"Never\": field is immutable",
            ),
        ];
        for (name, c, want) in bad {
            assert_eq!(messages(&c, Some(&old)), vec![want.to_string()], "{name}");
        }
    }
}
