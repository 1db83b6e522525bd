//! DefaultTolerationSeconds (upstream's admission plugin of that name): a pod that says
//! nothing about the `not-ready` and `unreachable` NoExecute taints tolerates each for a
//! while, so it is evicted from a lost node after that long rather than at once. skiff's
//! default is 5 s where upstream's is 300 s (`--default-not-ready-toleration-seconds`,
//! `--default-unreachable-toleration-seconds`): a node is declared lost after 8 s here.

use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{json, Value};

use crate::webhook::{Attributes, Operation};

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The two default toleration periods, settable at start-up (the kube-apiserver flags).
#[derive(Debug)]
pub struct DefaultTolerationSeconds {
    not_ready: AtomicI64,
    unreachable: AtomicI64,
}

/// skiff's default for both.
pub const DEFAULT_SECONDS: i64 = 5;

impl Default for DefaultTolerationSeconds {
    fn default() -> DefaultTolerationSeconds {
        DefaultTolerationSeconds {
            not_ready: AtomicI64::new(DEFAULT_SECONDS),
            unreachable: AtomicI64::new(DEFAULT_SECONDS),
        }
    }
}

impl DefaultTolerationSeconds {
    /// Sets both periods.
    pub fn set(&self, not_ready: i64, unreachable: i64) {
        self.not_ready.store(not_ready, Ordering::Relaxed);
        self.unreachable.store(unreachable, Ordering::Relaxed);
    }

    /// The plugin's `Admit`: pods only, creates and updates, never a subresource.
    pub fn admit(&self, attrs: &Attributes<'_>, obj: &mut Value) {
        if !attrs.resource.group.is_empty()
            || attrs.resource.plural != "pods"
            || attrs.subresource.is_some()
            || !matches!(attrs.operation, Operation::Create | Operation::Update)
        {
            return;
        }
        add_default_tolerations(
            obj,
            self.not_ready.load(Ordering::Relaxed),
            self.unreachable.load(Ordering::Relaxed),
        );
    }
}

/// Whether `t` already tolerates `key`'s NoExecute taint as upstream judges it: the key is
/// that one or empty, and the effect NoExecute or empty (the operator is not looked at).
fn covers(t: &Value, key: &str) -> bool {
    let k = t["key"].as_str().unwrap_or_default();
    let effect = t["effect"].as_str().unwrap_or_default();
    (k == key || k.is_empty()) && (effect == "NoExecute" || effect.is_empty())
}

/// Appends the `not-ready` and `unreachable` NoExecute tolerations a pod lacks.
pub fn add_default_tolerations(pod: &mut Value, not_ready: i64, unreachable: i64) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let existing = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut added = Vec::new();
    for (key, seconds) in [(NOT_READY, not_ready), (UNREACHABLE, unreachable)] {
        if !existing.iter().any(|t| covers(t, key)) {
            added.push(
                json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                              "tolerationSeconds": seconds}),
            );
        }
    }
    if added.is_empty() {
        return;
    }
    let mut all = existing;
    all.extend(added);
    spec.insert("tolerations".into(), Value::Array(all));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream's admission_test.go TestForgivenessAdmission cases.
    #[test]
    fn default_tolerations_are_added_where_the_pod_says_nothing() {
        let nr = |s: i64| json!({"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": s});
        let ur = |s: i64| json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": s});
        let cases = vec![
            (
                "pod has no tolerations",
                json!(null),
                json!([nr(300), ur(300)]),
            ),
            (
                "pod has an unrelated toleration",
                json!([{"key": "foo", "operator": "Equal", "value": "bar", "effect": "NoSchedule", "tolerationSeconds": 700}]),
                json!([{"key": "foo", "operator": "Equal", "value": "bar", "effect": "NoSchedule", "tolerationSeconds": 700}, nr(300), ur(300)]),
            ),
            (
                "pod tolerates not-ready already",
                json!([nr(700)]),
                json!([nr(700), ur(300)]),
            ),
            (
                "pod tolerates unreachable already",
                json!([ur(700)]),
                json!([ur(700), nr(300)]),
            ),
            (
                "pod tolerates both",
                json!([nr(700), ur(60)]),
                json!([nr(700), ur(60)]),
            ),
            (
                "pod tolerates not-ready with an empty effect",
                json!([{"key": NOT_READY, "operator": "Exists"}]),
                json!([{"key": NOT_READY, "operator": "Exists"}, ur(300)]),
            ),
            (
                "pod tolerates not-ready forever",
                json!([{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"}]),
                json!([{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"}, ur(300)]),
            ),
            (
                "pod tolerates every taint",
                json!([{"operator": "Exists"}]),
                json!([{"operator": "Exists"}]),
            ),
            (
                "a NoSchedule toleration of not-ready is not enough",
                json!([{"key": NOT_READY, "operator": "Exists", "effect": "NoSchedule"}]),
                json!([{"key": NOT_READY, "operator": "Exists", "effect": "NoSchedule"}, nr(300), ur(300)]),
            ),
        ];
        for (name, tolerations, want) in cases {
            let mut pod = json!({"spec": {"containers": []}});
            if !tolerations.is_null() {
                pod["spec"]["tolerations"] = tolerations;
            }
            add_default_tolerations(&mut pod, 300, 300);
            assert_eq!(pod["spec"]["tolerations"], want, "{name}");
        }
    }
}
