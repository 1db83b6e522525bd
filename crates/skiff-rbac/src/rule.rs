//! One policy rule against one request (upstream's `RuleAllows` and the `rbacv1helpers`
//! matchers), and whether a set of rules covers another (upstream's `Covers`, the heart of
//! escalation prevention in pkg/registry/rbac/validation).

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::attributes::{Attributes, AttributesRef};

/// Matches everything in verbs, apiGroups, resources and nonResourceURLs.
pub const ALL: &str = "*";

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

/// True when the rule lists the verb or `*`.
pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

/// True when the rule lists the API group or `*`.
pub fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    list(&rule.api_groups)
        .iter()
        .any(|g| g == ALL || g == group)
}

/// True when the rule lists `*`, the combined `resource/subresource`, or `*/subresource`.
pub fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    list(&rule.resources).iter().any(|r| {
        r == ALL
            || r == combined
            || (!subresource.is_empty()
                && r.len() == subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(subresource))
    })
}

/// True when the rule names no resources (all of them) or names this one.
pub fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    let names = list(&rule.resource_names);
    names.is_empty() || names.iter().any(|n| n == name)
}

/// True when a URL of the rule is `*`, the path, or a prefix ending in `*` of it.
pub fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    list(&rule.non_resource_urls).iter().any(|u| {
        u == ALL
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
    })
}

/// Whether `rule` allows the request (the user is not looked at: bindings decide that).
pub fn rule_allows(a: &Attributes, rule: &PolicyRule) -> bool {
    rule_allows_ref(&a.as_ref(), rule)
}

/// [`rule_allows`] on borrowed attributes, without allocating: the authorizer's hot path.
pub fn rule_allows_ref(a: &AttributesRef<'_>, rule: &PolicyRule) -> bool {
    if a.resource_request {
        verb_matches(rule, a.verb)
            && api_group_matches(rule, a.api_group)
            && list(&rule.resources).iter().any(|r| {
                r == ALL
                    || is_combined(r, a.resource, a.subresource)
                    || (!a.subresource.is_empty()
                        && r.len() == a.subresource.len() + 2
                        && r.starts_with("*/")
                        && r.ends_with(a.subresource))
            })
            && resource_name_matches(rule, a.name)
    } else {
        verb_matches(rule, a.verb) && non_resource_url_matches(rule, a.path)
    }
}

/// Whether `r` is `resource`, or `resource/subresource` when there is a subresource.
fn is_combined(r: &str, resource: &str, subresource: &str) -> bool {
    if subresource.is_empty() {
        return r == resource;
    }
    r.len() == resource.len() + 1 + subresource.len()
        && r.starts_with(resource)
        && r.as_bytes()[resource.len()] == b'/'
        && r.ends_with(subresource)
}

/// Whether `owner` rules grant everything `servant` rules do, and the pieces they do not
/// (each a rule of one verb and one group, resource and name, or one verb and URL).
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let mut missing = Vec::new();
    for rule in servant {
        for piece in breakdown(rule) {
            if !owner.iter().any(|o| rule_covers(o, &piece)) {
                missing.push(piece);
            }
        }
    }
    (missing.is_empty(), missing)
}

fn one(s: &str) -> Option<Vec<String>> {
    Some(vec![s.to_owned()])
}

/// Upstream's `BreakdownRule`: the rule as single-valued rules.
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let names = list(&rule.resource_names);
                if names.is_empty() {
                    out.push(PolicyRule {
                        api_groups: one(group),
                        resources: one(resource),
                        verbs: vec![verb.clone()],
                        ..PolicyRule::default()
                    });
                }
                for name in names {
                    out.push(PolicyRule {
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        verbs: vec![verb.clone()],
                        ..PolicyRule::default()
                    });
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: vec![verb.clone()],
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn has_all(v: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| v.contains(w))
}

/// Upstream's `ruleCovers`: `owner` covers the single-valued `servant` rule.
fn rule_covers(owner: &PolicyRule, servant: &PolicyRule) -> bool {
    let all = ALL.to_owned();
    let verbs = owner.verbs.contains(&all) || has_all(&owner.verbs, &servant.verbs);
    let groups = list(&owner.api_groups).contains(&all)
        || has_all(list(&owner.api_groups), list(&servant.api_groups));
    // Exact, `*`, or `*/sub` for a subresource `x/sub`.
    let resources = list(&servant.resources).iter().all(|r| {
        let owned = list(&owner.resources);
        owned.iter().any(|o| o == ALL || o == r)
            || r.split_once('/')
                .is_some_and(|(_, sub)| owned.iter().any(|o| o.strip_prefix("*/") == Some(sub)))
    });
    let urls = list(&servant.non_resource_urls).iter().all(|r| {
        list(&owner.non_resource_urls)
            .iter()
            .any(|o| non_resource_url_covers(o, r))
    });
    // An owner rule naming resources covers only those names, never all of them.
    let owner_names = list(&owner.resource_names);
    let servant_names = list(&servant.resource_names);
    let names = owner_names.is_empty()
        || (!servant_names.is_empty() && has_all(owner_names, servant_names));
    verbs && groups && resources && urls && names
}

/// Whether the owner's URL (exact, `*`, or a prefix ending in `*`) covers the requested one.
pub fn non_resource_url_covers(owner: &str, requested: &str) -> bool {
    owner == requested
        || owner == ALL
        || owner
            .strip_suffix('*')
            .is_some_and(|prefix| requested.starts_with(prefix))
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

/// Upstream's `CompactString`, the form escalation errors list missing rules in:
/// `{APIGroups:["apps"], Resources:["deployments"], Verbs:["delete"]}`.
pub fn compact_string(r: &PolicyRule) -> String {
    let mut parts = Vec::new();
    for (label, v) in [
        ("APIGroups", list(&r.api_groups)),
        ("Resources", list(&r.resources)),
        ("NonResourceURLs", list(&r.non_resource_urls)),
        ("ResourceNames", list(&r.resource_names)),
        ("Verbs", &r.verbs[..]),
    ] {
        if !v.is_empty() {
            parts.push(format!("{label}:{}", go_quoted(v)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn strs(v: &[&str]) -> Option<Vec<String>> {
        (!v.is_empty()).then(|| v.iter().map(|s| (*s).to_owned()).collect())
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
            api_groups: strs(groups),
            resources: strs(resources),
            resource_names: strs(names),
            ..PolicyRule::default()
        }
    }

    fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
            non_resource_urls: strs(urls),
            ..PolicyRule::default()
        }
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            resource_request: true,
            ..Attributes::default()
        }
    }

    fn nonres(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Attributes::default()
        }
    }

    /// Upstream's TestRuleMatches.
    #[test]
    fn rule_matches() {
        let verbs = ["verb1", "verb2"];
        let groups = ["group1", "group2"];
        let resources = ["resource1", "resource2"];
        // star verb, exact match other
        let r = rule(&["*"], &["group1"], &["resource1"], &[]);
        for v in verbs {
            for g in groups {
                for x in resources {
                    let want = g == "group1" && x == "resource1";
                    assert_eq!(rule_allows(&res(v, g, x, ""), &r), want, "{v} {g} {x}");
                }
            }
        }
        // star group
        let r = rule(&["verb1"], &["*"], &["resource1"], &[]);
        for v in verbs {
            for g in groups {
                for x in resources {
                    let want = v == "verb1" && x == "resource1";
                    assert_eq!(rule_allows(&res(v, g, x, ""), &r), want);
                }
            }
        }
        // star resource
        let r = rule(&["verb1"], &["group1"], &["*"], &[]);
        for v in verbs {
            for g in groups {
                for x in resources {
                    let want = v == "verb1" && g == "group1";
                    assert_eq!(rule_allows(&res(v, g, x, ""), &r), want);
                }
            }
        }
        // tuple expansion
        let r = rule(&verbs, &groups, &resources, &[]);
        for v in verbs {
            for g in groups {
                for x in resources {
                    assert!(rule_allows(&res(v, g, x, ""), &r));
                }
            }
        }
        // subresource expansion
        let r = rule(&["*"], &["*"], &["resource1/subresource1"], &[]);
        for v in verbs {
            assert!(rule_allows(
                &res(v, "group1", "resource1", "subresource1"),
                &r
            ));
            assert!(!rule_allows(
                &res(v, "group2", "resource1", "subresource2"),
                &r
            ));
            assert!(!rule_allows(
                &res(v, "group1", "resource2", "subresource1"),
                &r
            ));
            assert!(!rule_allows(
                &res(v, "group2", "resource2", "subresource1"),
                &r
            ));
        }
        // star nonresource, exact match other
        let r = urls(&["verb1"], &["*"]);
        for p in [
            "/foo",
            "/foo/bar",
            "/foo/baz",
            "/foo/bar/one",
            "/foo/baz/one",
        ] {
            assert!(rule_allows(&nonres("verb1", p), &r));
            assert!(!rule_allows(&nonres("verb2", p), &r));
        }
        // star nonresource subpath
        let r = urls(&["verb1"], &["/foo/*"]);
        for (p, want) in [
            ("/foo", false),
            ("/foo/bar", true),
            ("/foo/baz", true),
            ("/foo/bar/one", true),
            ("/foo/baz/one", true),
            ("/notfoo", false),
            ("/notfoo/bar", false),
            ("/notfoo/baz", false),
            ("/notfoo/bar/one", false),
            ("/notfoo/baz/one", false),
        ] {
            assert_eq!(rule_allows(&nonres("verb1", p), &r), want, "{p}");
        }
        // star verb, exact nonresource
        let r = urls(&["*"], &["/foo", "/foo/bar/one"]);
        for v in verbs {
            for (p, want) in [
                ("/foo", true),
                ("/foo/bar", false),
                ("/foo/baz", false),
                ("/foo/bar/one", true),
                ("/foo/baz/one", false),
            ] {
                assert_eq!(rule_allows(&nonres(v, p), &r), want, "{v} {p}");
            }
        }
    }

    #[test]
    fn star_subresource_and_names() {
        let r = rule(&["get"], &["apps"], &["*/scale"], &[]);
        assert!(rule_allows(&res("get", "apps", "deployments", "scale"), &r));
        assert!(!rule_allows(&res("get", "apps", "deployments", ""), &r));
        assert!(!rule_allows(
            &res("get", "apps", "deployments", "status"),
            &r
        ));
        let r = rule(&["get"], &[""], &["pods/log"], &["web"]);
        let mut a = res("get", "", "pods", "log");
        assert!(!rule_allows(&a, &r));
        a.name = "web".into();
        assert!(rule_allows(&a, &r));
    }

    fn check(
        owner: Vec<PolicyRule>,
        servant: Vec<PolicyRule>,
        covered: bool,
        missing: Vec<PolicyRule>,
    ) {
        let (got, got_missing) = covers(&owner, &servant);
        assert_eq!(got, covered, "{owner:?} / {servant:?}");
        assert_eq!(got_missing.len(), missing.len(), "{got_missing:?}");
        for m in &missing {
            assert!(got_missing.contains(m), "{m:?} not in {got_missing:?}");
        }
    }

    /// Upstream's policy_comparator_test.go cases.
    #[test]
    fn covers_cases() {
        let r = |v: &[&str], g: &[&str], x: &[&str]| rule(v, g, x, &[]);
        check(
            vec![r(&["get"], &["v1"], &["builds"])],
            vec![r(&["get"], &["v1"], &["builds"])],
            true,
            vec![],
        );
        check(
            vec![
                r(&["delete"], &["v1"], &["deployments"]),
                r(&["delete"], &["v1"], &["builds"]),
                r(&["update"], &["v1"], &["builds", "deployments"]),
            ],
            vec![r(
                &["delete", "update"],
                &["v1"],
                &["builds", "deployments"],
            )],
            true,
            vec![],
        );
        let per_group = |g: &str| {
            vec![
                r(&["delete"], &[g], &["deployments"]),
                r(&["delete"], &[g], &["builds"]),
                r(&["update"], &[g], &["builds", "deployments"]),
            ]
        };
        let mut both = per_group("group1");
        both.extend(per_group("group2"));
        let combined = vec![r(
            &["delete", "update"],
            &["group1", "group2"],
            &["builds", "deployments"],
        )];
        check(both.clone(), combined.clone(), true, vec![]);
        check(combined, both, true, vec![]);
        check(
            vec![
                r(&["delete", "update"], &["v1"], &["builds", "deployments"]),
                r(&["delete"], &["v1"], &["pods"]),
            ],
            vec![r(
                &["delete", "update"],
                &["v1"],
                &["builds", "deployments", "pods"],
            )],
            false,
            vec![r(&["update"], &["v1"], &["pods"])],
        );
        check(
            vec![r(&["get"], &["*"], &["roles"])],
            vec![r(&["get"], &["group1", "group2"], &["roles"])],
            true,
            vec![],
        );
        check(
            vec![r(&["get"], &["dummy-group"], &["roles"])],
            vec![r(&["get"], &["*"], &["roles"])],
            false,
            vec![r(&["get"], &["*"], &["roles"])],
        );
        check(
            vec![r(&["get"], &["*"], &["roles"])],
            vec![r(&["get"], &["*"], &["roles"])],
            true,
            vec![],
        );
        check(
            vec![r(&["*"], &["v1"], &["roles"])],
            vec![r(&["watch", "list"], &["v1"], &["roles"])],
            true,
            vec![],
        );
        check(
            vec![r(
                &["get", "list", "watch", "create", "update", "delete", "exec"],
                &["v1"],
                &["roles"],
            )],
            vec![r(&["*"], &["v1"], &["roles"])],
            false,
            vec![r(&["*"], &["v1"], &["roles"])],
        );
        check(
            vec![r(&["*"], &["v1"], &["roles"])],
            vec![r(&["*"], &["v1"], &["roles"])],
            true,
            vec![],
        );
        check(
            vec![r(&["get"], &["v1"], &["*"])],
            vec![r(&["get"], &["v1"], &["resourcegroup:deployments"])],
            true,
            vec![],
        );
        check(
            vec![r(
                &["get"],
                &["v1"],
                &["roles", "resourcegroup:deployments"],
            )],
            vec![r(&["get"], &["v1"], &["*"])],
            false,
            vec![r(&["get"], &["v1"], &["*"])],
        );
        check(
            vec![r(&["get"], &["v1"], &["*"])],
            vec![r(&["get"], &["v1"], &["*"])],
            true,
            vec![],
        );
        check(
            vec![r(&["get"], &["v1"], &["pods"])],
            vec![rule(&["get"], &["v1"], &["pods"], &["foo", "bar"])],
            true,
            vec![],
        );
        check(
            vec![rule(&["get"], &["v1"], &["pods"], &["foo", "bar"])],
            vec![r(&["get"], &["v1"], &["pods"])],
            false,
            vec![r(&["get"], &["v1"], &["pods"])],
        );
        check(
            vec![urls(&["*"], &["/apis"])],
            vec![urls(&["*"], &["/apis"])],
            true,
            vec![],
        );
        check(
            vec![urls(&["*"], &["*"])],
            vec![urls(&["*"], &["/apis", "/apis/v1", "/"])],
            true,
            vec![],
        );
        check(
            vec![urls(&["*"], &["/apis/*"])],
            vec![urls(&["get"], &["/apis", "/apis/v1"])],
            false,
            vec![urls(&["get"], &["/apis"])],
        );
        check(
            vec![urls(&["*"], &["/apis/*"])],
            vec![urls(&["get"], &["/apis/v1/foo", "/apis/v1"])],
            true,
            vec![],
        );
        let mut both = r(&["get"], &["v1"], &["builds"]);
        both.non_resource_urls = strs(&["/apis"]);
        check(vec![both.clone()], vec![both.clone()], true, vec![]);
        check(
            vec![r(&["get"], &["v1"], &["builds"])],
            vec![both],
            false,
            vec![urls(&["get"], &["/apis"])],
        );
    }

    /// Upstream's TestNonResourceURLCovers.
    #[test]
    fn url_covers() {
        for (owner, requested, want) in [
            ("*", "/api", true),
            ("/api", "/api", true),
            ("/apis", "/api", false),
            ("/api/v1", "/api", false),
            ("/api/v1", "/api/v1", true),
            ("/api/*", "/api/v1", true),
            ("/api/*", "/api", false),
            ("/api/*/*", "/api/v1", false),
            ("/*/v1/*", "/api/v1", false),
        ] {
            assert_eq!(
                non_resource_url_covers(owner, requested),
                want,
                "{owner} {requested}"
            );
        }
    }

    #[test]
    fn compact() {
        let r = rule(&["delete"], &["apps"], &["deployments"], &[]);
        assert_eq!(
            compact_string(&r),
            r#"{APIGroups:["apps"], Resources:["deployments"], Verbs:["delete"]}"#
        );
        assert_eq!(
            compact_string(&urls(&["get", "list"], &["/x"])),
            r#"{NonResourceURLs:["/x"], Verbs:["get" "list"]}"#
        );
    }
}
