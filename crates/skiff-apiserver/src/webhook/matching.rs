//! Whether a webhook applies to a request: its rules, namespaceSelector and objectSelector,
//! ported from upstream's `predicates/rules`, `predicates/namespace` and `predicates/object`.
//! Pure: the namespace's labels come from the caller.

use serde_json::{Map, Value};
use skiff_apimachinery::selector::LabelSelector;

use super::config::Rule;

/// The request as rules see it (upstream's `admission.Attributes` getters).
#[derive(Debug, Clone, Copy)]
pub struct RuleTarget<'a> {
    pub group: &'a str,
    pub version: &'a str,
    /// The plural, e.g. `pods`.
    pub resource: &'a str,
    /// Empty when the request is for the main resource.
    pub subresource: &'a str,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub operation: &'a str,
    /// Empty for cluster-scoped objects; a Namespace's own name for namespaces, as
    /// upstream sets `attr.GetNamespace()` for the namespace object itself.
    pub namespace: &'a str,
}

impl RuleTarget<'_> {
    fn is_namespace_resource(&self) -> bool {
        self.group.is_empty() && self.version == "v1" && self.resource == "namespaces"
    }
}

fn exact_or_wildcard(items: &[String], requested: &str) -> bool {
    items.iter().any(|i| i == "*" || i == requested)
}

/// Upstream's `rules.Matcher.Matches`: scope, operation, group, version and resource.
pub fn rule_matches(rule: &Rule, t: &RuleTarget<'_>) -> bool {
    scope(rule, t)
        && rule
            .operations
            .iter()
            .any(|op| op == "*" || op == t.operation)
        && exact_or_wildcard(&rule.api_groups, t.group)
        && exact_or_wildcard(&rule.api_versions, t.version)
        && resource(rule, t)
}

fn scope(rule: &Rule, t: &RuleTarget<'_>) -> bool {
    match rule.scope.as_deref() {
        None | Some("*") => true,
        Some("Namespaced") => !t.is_namespace_resource() && !t.namespace.is_empty(),
        Some("Cluster") => t.is_namespace_resource() || t.namespace.is_empty(),
        Some(_) => false,
    }
}

fn resource(rule: &Rule, t: &RuleTarget<'_>) -> bool {
    rule.resources.iter().any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r.as_str(), ""));
        (res == "*" || res == t.resource) && (sub == "*" || sub == t.subresource)
    })
}

/// Upstream's `IsExemptAdmissionConfigurationResource`: webhooks never see the admission
/// configuration kinds, so a broken webhook can always be removed.
pub fn is_exempt(group: &str, kind: &str) -> bool {
    group == "admissionregistration.k8s.io"
        && matches!(
            kind,
            "ValidatingWebhookConfiguration"
                | "MutatingWebhookConfiguration"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
                | "MutatingAdmissionPolicy"
                | "MutatingAdmissionPolicyBinding"
        )
}

/// Where a namespaceSelector reads its labels from (upstream's `GetNamespaceLabels`).
#[derive(Debug, PartialEq, Eq)]
pub enum NamespaceLabels<'a> {
    /// A create or update of a Namespace: the object's own (new) labels.
    Object,
    /// The stored Namespace of this name.
    Stored(&'a str),
}

/// Whether the namespaceSelector must be evaluated, and against what: `None` means the
/// request matches without looking (cluster-scoped objects other than namespaces are never
/// exempted, and an empty selector matches everything).
pub fn namespace_labels_needed<'a>(
    selector: &LabelSelector,
    t: &RuleTarget<'a>,
) -> Option<NamespaceLabels<'a>> {
    if t.namespace.is_empty() && t.resource != "namespaces" {
        return None;
    }
    if selector.is_empty() {
        return None;
    }
    if t.resource == "namespaces"
        && t.subresource.is_empty()
        && matches!(t.operation, "CREATE" | "UPDATE")
    {
        return Some(NamespaceLabels::Object);
    }
    Some(NamespaceLabels::Stored(t.namespace))
}

/// Upstream's `MatchObjectSelector`: the object's or the old object's labels match.
pub fn object_selector_matches(
    selector: &LabelSelector,
    object: Option<&Value>,
    old: Option<&Value>,
) -> bool {
    if selector.is_empty() {
        return true;
    }
    let matches = |o: Option<&Value>| match o {
        Some(o) if o.is_object() => selector.matches(labels(o)),
        _ => false,
    };
    matches(object) || matches(old)
}

/// An object's labels, if any.
pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.get("labels")?.as_object()
}

#[cfg(test)]
mod tests;
