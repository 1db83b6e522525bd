//! Which nodes a pod may go to by its own rules: required node affinity (upstream
//! component-helpers `nodeaffinity`, node selector plus `requiredDuringScheduling` terms) and
//! taints against tolerations (upstream `Toleration.ToleratesTaint`). The scheduler filters
//! nodes with them and the DaemonSet controller picks its nodes with them, so both decide
//! alike.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

/// The node field a `matchFields` requirement may name (upstream `NodeFieldSelectorKeyNodeName`).
pub const NODE_NAME_FIELD: &str = "metadata.name";

/// Upstream `GetRequiredNodeAffinity(pod).Match(node)`: every `nodeSelector` label, and any
/// one required node affinity term, against a node's labels and name.
pub fn node_affinity_matches(
    spec: &PodSpec,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    let selector_ok = spec
        .node_selector
        .as_ref()
        .is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok
        && required.is_none_or(|r| {
            r.node_selector_terms
                .iter()
                .any(|t| term_matches(t, labels, name))
        })
}

/// A node selector term matches when all its requirements do; a term with none matches
/// nothing. `matchFields` may name only the node name, with `In` or `NotIn`.
pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == NODE_NAME_FIELD
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_matches(r, Some(name))
        })
}

/// One requirement against the value it names (`None` when the node has no such label);
/// `Gt` and `Lt` take exactly one integer.
fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let has = |v: &str| values.iter().any(|x| x == v);
    match r.operator.as_str() {
        "In" => value.is_some_and(has),
        "NotIn" => value.is_none_or(|v| !has(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value.and_then(|v| v.parse::<i64>().ok()), values) else {
                return false;
            };
            let Ok(bound) = bound.parse::<i64>() else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Upstream `Toleration.ToleratesTaint`: an empty effect or key matches any; `Exists` ignores
/// the value, `Equal` (or no operator) compares it.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// Upstream `TolerationsTolerateTaint`: whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// Whether every taint whose effect is one of `effects` is tolerated (upstream
/// `FindMatchingUntoleratedTaint` finding none).
pub fn tolerates_all(tolerations: &[Toleration], taints: &[Taint], effects: &[&str]) -> bool {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .all(|t| tolerated(tolerations, t))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector};

    use super::*;

    fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.into()),
            operator: Some(op.into()),
            value: (!value.is_empty()).then(|| value.into()),
            effect: (!effect.is_empty()).then(|| effect.into()),
            toleration_seconds: None,
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: None,
            effect: effect.into(),
            time_added: None,
        }
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn with_terms(terms: Vec<NodeSelectorTerm>) -> PodSpec {
        PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: terms,
                    }),
                    ..NodeAffinity::default()
                }),
                ..Affinity::default()
            }),
            ..PodSpec::default()
        }
    }

    #[test]
    fn tolerations_match_taints_as_upstream() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let cases = [
            (toleration("k", "Equal", "v", "NoSchedule"), true),
            (toleration("k", "Equal", "w", "NoSchedule"), false),
            (toleration("k", "", "v", ""), true),
            (toleration("k", "Exists", "", ""), true),
            (toleration("k", "Exists", "", "NoExecute"), false),
            (toleration("other", "Exists", "", ""), false),
            (toleration("", "Exists", "", ""), true),
            (toleration("k", "Bogus", "v", ""), false),
        ];
        for (t, want) in cases {
            assert_eq!(tolerates(&t, &taint), want, "{t:?}");
        }
    }

    #[test]
    fn tolerates_all_checks_only_the_named_effects() {
        let taints = [taint("a", "NoSchedule"), taint("b", "PreferNoSchedule")];
        let effects = ["NoSchedule", "NoExecute"];
        assert!(!tolerates_all(&[], &taints, &effects));
        assert!(tolerates_all(
            &[toleration("a", "Exists", "", "")],
            &taints,
            &effects
        ));
        assert!(tolerates_all(&[], &taints, &["NoExecute"]));
    }

    #[test]
    fn node_selector_and_any_one_term_must_match() {
        let node = labels(&[("color", "blue"), ("cores", "8")]);
        let mut spec = with_terms(vec![
            NodeSelectorTerm {
                match_expressions: Some(vec![req("color", "In", &["red"])]),
                match_fields: None,
            },
            NodeSelectorTerm {
                match_expressions: Some(vec![req("cores", "Gt", &["4"])]),
                match_fields: None,
            },
        ]);
        assert!(node_affinity_matches(&spec, &node, "n"));
        spec.node_selector = Some(labels(&[("color", "red")]));
        assert!(!node_affinity_matches(&spec, &node, "n"));
        assert!(node_affinity_matches(&PodSpec::default(), &node, "n"));
    }

    #[test]
    fn requirements_follow_upstream_operators() {
        let node = labels(&[("color", "blue"), ("cores", "8")]);
        let cases = [
            (req("color", "In", &["blue", "red"]), true),
            (req("color", "NotIn", &["blue"]), false),
            (req("missing", "NotIn", &["blue"]), true),
            (req("color", "Exists", &[]), true),
            (req("color", "DoesNotExist", &[]), false),
            (req("cores", "Gt", &["4"]), true),
            (req("cores", "Lt", &["4"]), false),
            (req("cores", "Gt", &["4", "5"]), false),
            (req("color", "Gt", &["4"]), false),
            (req("color", "Bogus", &["blue"]), false),
        ];
        for (r, want) in cases {
            let term = NodeSelectorTerm {
                match_expressions: Some(vec![r.clone()]),
                match_fields: None,
            };
            assert_eq!(term_matches(&term, &node, "n"), want, "{r:?}");
        }
        let empty = NodeSelectorTerm::default();
        assert!(
            !term_matches(&empty, &node, "n"),
            "an empty term matches nothing"
        );
    }

    #[test]
    fn match_fields_select_the_node_name_with_in_and_not_in_only() {
        let node = labels(&[]);
        let fields = |r| NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![r]),
        };
        let on_node = fields(req(NODE_NAME_FIELD, "In", &["node-0"]));
        assert!(term_matches(&on_node, &node, "node-0"));
        assert!(!term_matches(&on_node, &node, "node-1"));
        let not_on = fields(req(NODE_NAME_FIELD, "NotIn", &["node-0"]));
        assert!(term_matches(&not_on, &node, "node-1"));
        assert!(!term_matches(
            &fields(req(NODE_NAME_FIELD, "Exists", &[])),
            &node,
            "node-0"
        ));
        assert!(!term_matches(
            &fields(req("metadata.uid", "In", &["node-0"])),
            &node,
            "node-0"
        ));
    }
}
