//! Object helpers shared by the controllers: selectors, ownership, pod readiness.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

/// Whether `labels` satisfy `selector`, through the one selector matcher
/// (`skiff_apimachinery::selector`). An empty selector matches nothing here, as a controller
/// with one must not grab every pod; so does one that does not parse (upstream's controllers
/// stop at `LabelSelectorAsSelector`'s error; the API server refuses such selectors anyway).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let Ok(json) = serde_json::to_value(selector) else {
        return false;
    };
    match skiff_apimachinery::selector::LabelSelector::from_label_selector(&json) {
        Ok(s) if !s.is_empty() => s.matches_by(|k| labels.get(k).map(String::as_str)),
        _ => false,
    }
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta` is controlled by the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_ref(meta).is_some_and(|r| r.uid == uid)
}

/// A controller owner reference to `owner`, as upstream's `NewControllerRef`.
pub fn new_controller_ref(
    api_version: &str,
    kind: &str,
    owner: &ObjectMeta,
) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone()?,
        uid: owner.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Labels of an object, empty when unset.
pub fn labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

/// Whether the pod counts towards a controller's replicas (not finished, not terminating).
pub fn pod_is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod's Ready condition became True, or `None` when it is not ready.
/// A ready condition without a transition time reads as ready since the epoch.
pub fn pod_ready_since(pod: &Pod) -> Option<Timestamp> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        cond.last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

/// Whether the pod has been ready for at least `min_ready_seconds` at `now`.
pub fn pod_is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match pod_ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => since.as_second() + i64::from(min_ready_seconds) <= now.as_second(),
    }
}

/// The creation time of an object as a sortable value (epoch when unset).
pub fn created(meta: &ObjectMeta) -> Timestamp {
    meta.creation_timestamp
        .as_ref()
        .map(|t: &Time| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `namespace/name` of an object, for logs and span fields.
pub fn key(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_matches_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some(l(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        assert!(selector_matches(&sel, &l(&[("app", "web")])));
        assert!(selector_matches(
            &sel,
            &l(&[("app", "web"), ("tier", "fe")])
        ));
        assert!(!selector_matches(
            &sel,
            &l(&[("app", "web"), ("tier", "db")])
        ));
        assert!(!selector_matches(&sel, &l(&[("app", "api")])));
    }

    #[test]
    fn empty_selector_matches_nothing() {
        assert!(!selector_matches(
            &LabelSelector::default(),
            &l(&[("a", "b")])
        ));
    }
}
