//! Escalation prevention (upstream's pkg/registry/rbac: `ConfirmNoEscalation`,
//! `EscalationAllowed`, `RoleEscalationAuthorized`, `BindingAuthorized`): nobody grants, by
//! writing a role or a binding, what they do not hold themselves, unless RBAC gives them
//! the `escalate` (roles) or `bind` (bindings) verb.

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use skiff_apimachinery::user::{UserInfo, SYSTEM_MASTERS};

use crate::attributes::Attributes;
use crate::authorizer::{Policy, GROUP};
use crate::rule::{compact_string, covers};

/// A write of one RBAC object, as the escalation check sees it.
#[derive(Debug, Clone)]
pub enum Write<'a> {
    /// A Role (namespace set) or ClusterRole (namespace empty) with its rules; an aggregated
    /// ClusterRole needs full authority, since its rules are whatever gets aggregated.
    Role {
        namespace: &'a str,
        name: &'a str,
        rules: &'a [PolicyRule],
        aggregated: bool,
    },
    /// A RoleBinding (namespace set) or ClusterRoleBinding to `role_ref`.
    Binding {
        namespace: &'a str,
        role_ref: &'a RoleRef,
    },
}

fn go_quoted(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

/// Checks a write of a role or binding by `user`; the error is upstream's message (the
/// server wraps it in a 403 for the object).
pub fn check(policy: &Policy, user: &UserInfo, write: &Write<'_>) -> Result<(), String> {
    if user.in_group(SYSTEM_MASTERS) {
        return Ok(());
    }
    match write {
        Write::Role {
            namespace,
            name,
            rules,
            aggregated,
        } => {
            let resource = if namespace.is_empty() {
                "clusterroles"
            } else {
                "roles"
            };
            let escalate =
                Attributes::resource(user.clone(), "escalate", GROUP, resource, namespace, name);
            if policy.authorize(&escalate).allowed {
                return Ok(());
            }
            let full = [
                PolicyRule {
                    verbs: vec!["*".into()],
                    api_groups: Some(vec!["*".into()]),
                    resources: Some(vec!["*".into()]),
                    ..PolicyRule::default()
                },
                PolicyRule {
                    verbs: vec!["*".into()],
                    non_resource_urls: Some(vec!["*".into()]),
                    ..PolicyRule::default()
                },
            ];
            let rules: &[PolicyRule] = if *aggregated { &full } else { rules };
            confirm_no_escalation(policy, user, namespace, rules)
        }
        Write::Binding {
            namespace,
            role_ref,
        } => {
            let resource = match role_ref.kind.as_str() {
                "Role" => "roles",
                _ => "clusterroles",
            };
            let bind = Attributes::resource(
                user.clone(),
                "bind",
                GROUP,
                resource,
                namespace,
                &role_ref.name,
            );
            if policy.authorize(&bind).allowed {
                return Ok(());
            }
            let rules = policy.role_ref_rules(role_ref, namespace)?;
            confirm_no_escalation(policy, user, namespace, rules)
        }
    }
}

/// Upstream's `ConfirmNoEscalation`: `user`'s rules in `namespace` cover `rules`.
pub fn confirm_no_escalation(
    policy: &Policy,
    user: &UserInfo,
    namespace: &str,
    rules: &[PolicyRule],
) -> Result<(), String> {
    let (owner, errors) = policy.rules_for(user, namespace);
    let (covered, missing) = covers(&owner, rules);
    if covered {
        return Ok(());
    }
    let mut lines: Vec<String> = compact_rules(&missing).iter().map(compact_string).collect();
    lines.sort();
    lines.dedup();
    let mut msg = format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.username,
        go_quoted(&user.groups),
        lines.join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
    }
    Err(msg)
}

/// Upstream's `CompactRules`: single-group, single-resource rules (at most one name, no
/// URLs) that differ only in verbs become one rule.
pub fn compact_rules(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    let mut simple: Vec<(String, String, Option<String>, PolicyRule)> = Vec::new();
    for r in rules {
        let groups = r.api_groups.as_deref().unwrap_or(&[]);
        let resources = r.resources.as_deref().unwrap_or(&[]);
        let names = r.resource_names.as_deref().unwrap_or(&[]);
        let is_simple = names.len() <= 1
            && r.non_resource_urls.as_deref().unwrap_or(&[]).is_empty()
            && groups.len() == 1
            && resources.len() == 1;
        if !is_simple {
            out.push(r.clone());
            continue;
        }
        let key = (
            groups[0].clone(),
            resources[0].clone(),
            names.first().cloned(),
        );
        match simple
            .iter_mut()
            .find(|(g, x, n, _)| (g, x, n) == (&key.0, &key.1, &key.2))
        {
            Some((_, _, _, existing)) => existing.verbs.extend(r.verbs.iter().cloned()),
            None => simple.push((key.0, key.1, key.2, r.clone())),
        }
    }
    out.extend(simple.into_iter().map(|(_, _, _, r)| r));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorizer::tests::{cluster_role, crb, new_rule, rb, role, user};

    fn rule(verbs: &str, group: &str, resources: &str) -> PolicyRule {
        let mut r = new_rule(verbs, group, resources, "");
        r.non_resource_urls = None;
        r
    }

    fn policy() -> Policy {
        Policy::from_objects(
            vec![
                role(
                    "role-maker",
                    "dev",
                    vec![rule(
                        "create",
                        "rbac.authorization.k8s.io",
                        "roles,rolebindings",
                    )],
                ),
                role("pod-reader", "dev", vec![rule("get,list", "", "pods")]),
            ],
            vec![
                rb("dev", "maker", "Role", "role-maker", &["User:maker"]),
                rb("dev", "reader", "Role", "pod-reader", &["User:reader"]),
            ],
            vec![
                cluster_role(
                    "escalator",
                    vec![rule("escalate", "rbac.authorization.k8s.io", "roles")],
                ),
                cluster_role(
                    "binder",
                    vec![rule("bind", "rbac.authorization.k8s.io", "clusterroles")],
                ),
                cluster_role("admin", vec![rule("*", "*", "*")]),
            ],
            vec![
                crb("esc", "escalator", &["User:escalator"]),
                crb("bind", "binder", &["User:binder"]),
            ],
        )
    }

    #[test]
    fn role_writes() {
        let p = policy();
        let wanted = [
            rule("delete", "apps", "deployments"),
            rule("get", "", "pods"),
        ];
        let write = Write::Role {
            namespace: "dev",
            name: "r",
            rules: &wanted,
            aggregated: false,
        };
        let err = check(&p, &user("maker", "interns"), &write).unwrap_err();
        assert_eq!(
            err,
            "user \"maker\" (groups=[\"interns\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\"]}\n{APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"delete\"]}"
        );
        // Holding the rules is enough.
        let held = [rule("get", "", "pods")];
        let write = Write::Role {
            namespace: "dev",
            name: "r",
            rules: &held,
            aggregated: false,
        };
        assert!(check(&p, &user("reader", ""), &write).is_ok());
        // An aggregated role needs everything.
        let write = Write::Role {
            namespace: "",
            name: "r",
            rules: &[],
            aggregated: true,
        };
        assert!(check(&p, &user("reader", ""), &write).is_err());
        // `escalate` on roles, or system:masters, allows anything.
        let write = Write::Role {
            namespace: "dev",
            name: "r",
            rules: &wanted,
            aggregated: false,
        };
        assert!(check(&p, &user("escalator", ""), &write).is_ok());
        assert!(check(&p, &UserInfo::cluster_admin(), &write).is_ok());
    }

    #[test]
    fn binding_writes() {
        let p = policy();
        let to = |kind: &str, name: &str| RoleRef {
            api_group: GROUP.into(),
            kind: kind.into(),
            name: name.into(),
        };
        let reader = to("Role", "pod-reader");
        let admin = to("ClusterRole", "admin");
        let missing = to("Role", "missing");
        // The reader may hand out the pod-reader role it holds; the maker may not.
        assert!(check(
            &p,
            &user("reader", ""),
            &Write::Binding {
                namespace: "dev",
                role_ref: &reader
            }
        )
        .is_ok());
        assert!(check(
            &p,
            &user("maker", ""),
            &Write::Binding {
                namespace: "dev",
                role_ref: &reader
            }
        )
        .is_err());
        assert!(check(
            &p,
            &user("reader", ""),
            &Write::Binding {
                namespace: "dev",
                role_ref: &admin
            }
        )
        .is_err());
        assert_eq!(
            check(
                &p,
                &user("reader", ""),
                &Write::Binding {
                    namespace: "dev",
                    role_ref: &missing
                }
            ),
            Err("role.rbac.authorization.k8s.io \"missing\" not found".into())
        );
        // `bind` on clusterroles allows binding any of them.
        assert!(check(
            &p,
            &user("binder", ""),
            &Write::Binding {
                namespace: "dev",
                role_ref: &admin
            }
        )
        .is_ok());
    }

    #[test]
    fn compacts_verbs() {
        let rules = [
            rule("get", "", "pods"),
            rule("list", "", "pods"),
            rule("get", "apps", "deployments"),
        ];
        let c = compact_rules(&rules);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].verbs, vec!["get", "list"]);
    }
}
