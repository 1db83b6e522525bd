//! Upstream's predicate tests (`rules_test.go`, `namespace/matcher_test.go`,
//! `object/matcher_test.go`), table for table.

use serde_json::json;

use super::*;

/// A request like upstream's test helper `a(...)`: namespace `ns` unless cluster-scoped.
fn t<'a>(
    group: &'a str,
    version: &'a str,
    resource: &'a str,
    subresource: &'a str,
    operation: &'a str,
    namespace: &'a str,
) -> RuleTarget<'a> {
    RuleTarget {
        group,
        version,
        resource,
        subresource,
        operation,
        namespace,
    }
}

fn ns<'a>(group: &'a str, version: &'a str, resource: &'a str, sub: &'a str) -> RuleTarget<'a> {
    t(group, version, resource, sub, "CREATE", "ns")
}

fn cluster<'a>(
    group: &'a str,
    version: &'a str,
    resource: &'a str,
    sub: &'a str,
) -> RuleTarget<'a> {
    t(group, version, resource, sub, "CREATE", "")
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A rule with wildcards everywhere but what a test sets.
fn any() -> Rule {
    Rule {
        operations: strs(&["*"]),
        api_groups: strs(&["*"]),
        api_versions: strs(&["*"]),
        resources: strs(&["*/*"]),
        scope: None,
    }
}

fn check(name: &str, rule: &Rule, matching: &[RuleTarget<'_>], not_matching: &[RuleTarget<'_>]) {
    for m in matching {
        assert!(rule_matches(rule, m), "{name}: expected match {m:?}");
    }
    for m in not_matching {
        assert!(!rule_matches(rule, m), "{name}: expected no match {m:?}");
    }
}

#[test]
fn rule_groups_match_exactly_or_by_wildcard() {
    check("wildcard", &any(), &[ns("g", "v", "r", "")], &[]);
    let rule = Rule {
        api_groups: strs(&["g1", "g2"]),
        ..any()
    };
    check(
        "exact",
        &rule,
        &[ns("g1", "v", "r", ""), ns("g2", "v2", "r3", "")],
        &[ns("g3", "v", "r", ""), ns("g4", "v", "r", "")],
    );
}

#[test]
fn rule_versions_match_exactly_or_by_wildcard() {
    let rule = Rule {
        api_versions: strs(&["v1", "v2"]),
        ..any()
    };
    check(
        "exact",
        &rule,
        &[ns("g1", "v1", "r", ""), ns("g2", "v2", "r", "")],
        &[ns("g1", "v3", "r", ""), ns("g2", "v4", "r", "")],
    );
}

#[test]
fn rule_operations_match_exactly_or_by_wildcard() {
    let op = |o| t("g", "v", "r", "", o, "ns");
    let all = [op("CREATE"), op("UPDATE"), op("DELETE"), op("CONNECT")];
    check("wildcard", &any(), &all, &[]);
    for (ops, matching) in [
        (vec!["CREATE"], vec!["CREATE"]),
        (vec!["UPDATE"], vec!["UPDATE"]),
        (vec!["DELETE"], vec!["DELETE"]),
        (vec!["CONNECT"], vec!["CONNECT"]),
        (vec!["UPDATE", "DELETE"], vec!["UPDATE", "DELETE"]),
    ] {
        let rule = Rule {
            operations: strs(&ops),
            ..any()
        };
        let (yes, no): (Vec<_>, Vec<_>) = all
            .iter()
            .copied()
            .partition(|a| matching.contains(&a.operation));
        check(&format!("{ops:?}"), &rule, &yes, &no);
    }
}

#[test]
fn rule_resources_match_subresources_only_when_named() {
    let with = |resources: &[&str]| Rule {
        resources: strs(resources),
        ..any()
    };
    check(
        "no subresources",
        &with(&["*"]),
        &[ns("g", "v", "r", ""), ns("2", "v", "r2", "")],
        &[ns("g", "v", "r", "exec"), ns("2", "v", "r2", "proxy")],
    );
    check(
        "r & subresources",
        &with(&["r/*"]),
        &[ns("g", "v", "r", ""), ns("g", "v", "r", "exec")],
        &[ns("2", "v", "r2", ""), ns("2", "v", "r2", "proxy")],
    );
    check(
        "r & subresources or r2",
        &with(&["r/*", "r2"]),
        &[
            ns("g", "v", "r", ""),
            ns("g", "v", "r", "exec"),
            ns("2", "v", "r2", ""),
        ],
        &[ns("2", "v", "r2", "proxy")],
    );
    check(
        "proxy or exec",
        &with(&["*/proxy", "*/exec"]),
        &[
            ns("g", "v", "r", "exec"),
            ns("2", "v", "r2", "proxy"),
            ns("2", "v", "r3", "proxy"),
        ],
        &[
            ns("g", "v", "r", ""),
            ns("2", "v", "r2", ""),
            ns("2", "v", "r4", "scale"),
        ],
    );
}

#[test]
fn rule_scope_treats_namespaces_as_cluster_scoped() {
    let with = |scope: &str| Rule {
        scope: Some(scope.into()),
        ..any()
    };
    // Upstream's namespace objects carry their own name as namespace.
    let namespace_obj = |sub| t("", "v1", "namespaces", sub, "CREATE", "ns");
    let namespace_cluster = |sub| t("", "v1", "namespaces", sub, "CREATE", "");
    check(
        "cluster scope",
        &with("Cluster"),
        &[
            cluster("g", "v", "r", ""),
            cluster("g", "v", "r", "exec"),
            namespace_cluster(""),
            namespace_cluster("finalize"),
            namespace_obj(""),
            namespace_obj("finalize"),
        ],
        &[ns("g", "v", "r", ""), ns("g", "v", "r", "exec")],
    );
    check(
        "namespace scope",
        &with("Namespaced"),
        &[ns("g", "v", "r", ""), ns("g", "v", "r", "exec")],
        &[
            namespace_cluster(""),
            namespace_cluster("finalize"),
            namespace_obj(""),
            namespace_obj("finalize"),
            cluster("g", "v", "r", ""),
            cluster("g", "v", "r", "exec"),
        ],
    );
    check(
        "all scopes",
        &with("*"),
        &[
            ns("g", "v", "r", ""),
            ns("g", "v", "r", "exec"),
            cluster("g", "v", "r", ""),
            cluster("g", "v", "r", "exec"),
            namespace_cluster(""),
            namespace_obj("finalize"),
        ],
        &[],
    );
}

#[test]
fn admission_configuration_kinds_are_exempt_from_webhooks() {
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
    ] {
        assert!(is_exempt("admissionregistration.k8s.io", kind), "{kind}");
    }
    assert!(!is_exempt("", "ConfigMap"));
    assert!(!is_exempt("admissionregistration.k8s.io", "Other"));
    assert!(!is_exempt("example.com", "ValidatingWebhookConfiguration"));
}

/// `namespace/matcher_test.go`: which labels a namespaceSelector is evaluated against.
#[test]
fn namespace_selector_reads_the_right_labels() {
    let selector =
        LabelSelector::from_label_selector(&json!({"matchLabels": {"runlevel": "1"}})).unwrap();
    let empty = LabelSelector::everything();
    // Cluster-scoped objects other than namespaces are never exempted.
    assert_eq!(
        namespace_labels_needed(
            &selector,
            &cluster("rbac.authorization.k8s.io", "v1", "clusterroles", "")
        ),
        None
    );
    // An empty selector matches everything without a lookup.
    assert_eq!(
        namespace_labels_needed(&empty, &ns("", "v1", "pods", "")),
        None
    );
    // Namespaced objects: their namespace's stored labels.
    assert_eq!(
        namespace_labels_needed(&selector, &ns("", "v1", "pods", "")),
        Some(NamespaceLabels::Stored("ns"))
    );
    // Creating or updating a namespace: the new object's labels.
    for op in ["CREATE", "UPDATE"] {
        assert_eq!(
            namespace_labels_needed(&selector, &t("", "v1", "namespaces", "", op, "ns")),
            Some(NamespaceLabels::Object)
        );
    }
    // Deleting one, or its subresources: the stored namespace.
    assert_eq!(
        namespace_labels_needed(&selector, &t("", "v1", "namespaces", "", "DELETE", "ns")),
        Some(NamespaceLabels::Stored("ns"))
    );
    assert_eq!(
        namespace_labels_needed(
            &selector,
            &t("", "v1", "namespaces", "finalize", "UPDATE", "ns")
        ),
        Some(NamespaceLabels::Stored("ns"))
    );
}

/// `object/matcher_test.go`: the object or the old object may match.
#[test]
fn object_selector_matches_object_or_old_object() {
    let selector =
        LabelSelector::from_label_selector(&json!({"matchLabels": {"runlevel": "0"}})).unwrap();
    let labelled = json!({"metadata": {"labels": {"runlevel": "0"}}});
    let other = json!({"metadata": {"labels": {"runlevel": "1"}}});
    let bare = json!({"metadata": {}});
    let cases: [(Option<&Value>, Option<&Value>, bool); 6] = [
        (Some(&labelled), None, true),
        (None, Some(&labelled), true),
        (Some(&other), Some(&labelled), true),
        (Some(&other), Some(&bare), false),
        (None, None, false),
        (Some(&bare), None, false),
    ];
    for (i, (object, old, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            object_selector_matches(&selector, object, old),
            want,
            "case {i}"
        );
    }
    // An empty selector matches even a request with no objects.
    assert!(object_selector_matches(
        &LabelSelector::everything(),
        None,
        None
    ));
    // matchExpressions work as in every label selector.
    let exists = LabelSelector::from_label_selector(
        &json!({"matchExpressions": [{"key": "runlevel", "operator": "NotIn", "values": ["0", "1"]}]}),
    )
    .unwrap();
    assert!(!object_selector_matches(&exists, Some(&labelled), None));
    assert!(object_selector_matches(&exists, Some(&bare), None));
}
