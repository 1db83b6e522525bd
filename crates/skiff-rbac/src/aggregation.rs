//! ClusterRole aggregation, pure (upstream's ClusterRoleAggregationController,
//! pkg/controller/clusterroleaggregation): a ClusterRole with an `aggregationRule` has as
//! rules the union of the rules of every other ClusterRole its selectors match, in selector
//! order, then role name order, each rule once.

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use skiff_apimachinery::selector::LabelSelector;

/// The rules `role` should have, or `None` when it is not aggregated. A selector that does
/// not parse selects nothing.
pub fn aggregated_rules(role: &ClusterRole, all: &[&ClusterRole]) -> Option<Vec<PolicyRule>> {
    let selectors = role
        .aggregation_rule
        .as_ref()?
        .cluster_role_selectors
        .as_deref()
        .unwrap_or(&[]);
    let mut sorted: Vec<&ClusterRole> = all.to_vec();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut rules: Vec<PolicyRule> = Vec::new();
    for s in selectors {
        let Ok(selector) = serde_json::to_value(s)
            .map_err(|_| ())
            .and_then(|v| LabelSelector::from_label_selector(&v).map_err(|_| ()))
        else {
            continue;
        };
        for other in &sorted {
            if other.metadata.name == role.metadata.name {
                continue;
            }
            let labels = serde_json::to_value(&other.metadata.labels).unwrap_or_default();
            if !selector.matches(labels.as_object()) {
                continue;
            }
            for r in other.rules.iter().flatten() {
                if !rules.contains(r) {
                    rules.push(r.clone());
                }
            }
        }
    }
    Some(rules)
}

/// The aggregated ClusterRoles whose rules are not what aggregation gives, each with the
/// rules to write, in name order.
pub fn plan(all: &[&ClusterRole]) -> Vec<(String, Vec<PolicyRule>)> {
    let mut out = Vec::new();
    for role in all {
        if let Some(rules) = aggregated_rules(role, all) {
            if role.rules.as_deref().unwrap_or(&[]) != rules.as_slice() {
                out.push((role.metadata.name.clone().unwrap_or_default(), rules));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::{cluster_roles, AGGREGATE_TO_VIEW};
    use std::collections::BTreeMap;

    fn with_label(mut r: ClusterRole, key: &str) -> ClusterRole {
        r.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), "true".into());
        r
    }

    fn plain(name: &str, resource: &str) -> ClusterRole {
        ClusterRole {
            metadata: crate::authorizer::tests::meta("", name),
            rules: Some(vec![PolicyRule {
                verbs: vec!["get".into()],
                api_groups: Some(vec!["example.com".into()]),
                resources: Some(vec![resource.into()]),
                ..PolicyRule::default()
            }]),
            aggregation_rule: None,
        }
    }

    #[test]
    fn bootstrap_view_edit_admin_chain() {
        let roles = cluster_roles();
        let refs: Vec<&ClusterRole> = roles.iter().collect();
        let planned = plan(&refs);
        let names: Vec<&str> = planned.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["admin", "edit", "view"]);
        // view gets exactly system:aggregate-to-view's rules.
        let view_rules = &planned[2].1;
        let source = roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some("system:aggregate-to-view"))
            .unwrap();
        assert_eq!(Some(view_rules), source.rules.as_ref());
    }

    #[test]
    fn labelled_roles_join_and_rules_are_unique() {
        let mut roles = cluster_roles();
        roles.push(with_label(
            plain("widgets-view", "widgets"),
            AGGREGATE_TO_VIEW,
        ));
        roles.push(with_label(
            plain("widgets-view-again", "widgets"),
            AGGREGATE_TO_VIEW,
        ));
        roles.push(plain("unlabelled", "gadgets"));
        let refs: Vec<&ClusterRole> = roles.iter().collect();
        let view = roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some("view"))
            .unwrap();
        let rules = aggregated_rules(view, &refs).unwrap();
        let widgets = rules
            .iter()
            .filter(|r| r.resources.as_deref() == Some(&["widgets".to_owned()][..]))
            .count();
        assert_eq!(widgets, 1);
        assert!(!rules
            .iter()
            .any(|r| r.resources.as_deref() == Some(&["gadgets".to_owned()][..])));
        // Once written, nothing is left to do for view.
        let mut updated = view.clone();
        updated.rules = Some(rules);
        let mut again: Vec<&ClusterRole> = refs
            .iter()
            .filter(|r| r.metadata.name.as_deref() != Some("view"))
            .copied()
            .collect();
        again.push(&updated);
        assert!(!plan(&again).iter().any(|(n, _)| n == "view"));
        // Not aggregated: no opinion.
        assert_eq!(aggregated_rules(&plain("x", "y"), &refs), None);
    }
}
