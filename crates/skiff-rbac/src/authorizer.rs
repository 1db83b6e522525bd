//! The RBAC authorizer over an in-memory index of Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings (upstream's plugin/pkg/auth/authorizer/rbac and the rule resolver of
//! pkg/registry/rbac/validation).
//!
//! Bindings are indexed by subject, so a request looks at the bindings naming its user, its
//! groups or its service account, never at every binding: the cost of a request does not
//! grow with the number of bindings for other subjects.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use skiff_apimachinery::user::{UserInfo, SYSTEM_MASTERS};

use crate::attributes::{Attributes, AttributesRef};
use crate::rule::{rule_allows, rule_allows_ref};

/// The API group of RBAC, and of User and Group subjects.
pub const GROUP: &str = "rbac.authorization.k8s.io";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// The answer for one request: upstream's `(Decision, reason)`; denial is "no opinion".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Why: the binding that allowed it, or the role-resolution errors met (empty when none).
    pub reason: String,
}

/// A subject as bindings are looked up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SubjectKey {
    User(String),
    Group(String),
    /// namespace, name
    ServiceAccount(String, String),
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn ns_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_default()
}

/// The index key of a binding's subject; `None` for subjects that can match nobody.
fn subject_key(s: &Subject, binding_namespace: &str) -> Option<SubjectKey> {
    match s.kind.as_str() {
        "User" => Some(SubjectKey::User(s.name.clone())),
        "Group" => Some(SubjectKey::Group(s.name.clone())),
        "ServiceAccount" => {
            // A RoleBinding may leave its service accounts' namespace to its own.
            let ns = s
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            (!ns.is_empty()).then(|| SubjectKey::ServiceAccount(ns.to_owned(), s.name.clone()))
        }
        _ => None,
    }
}

/// The keys bindings may name `user` by.
fn user_keys(user: &UserInfo) -> Vec<SubjectKey> {
    let mut keys = vec![SubjectKey::User(user.username.clone())];
    keys.extend(user.groups.iter().map(|g| SubjectKey::Group(g.clone())));
    if let Some((ns, name)) = user
        .username
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
    {
        keys.push(SubjectKey::ServiceAccount(ns.to_owned(), name.to_owned()));
    }
    keys
}

/// Upstream's `appliesTo`: the index of the first subject naming `user`.
pub fn applies_to(user: &UserInfo, subjects: &[Subject], binding_namespace: &str) -> Option<usize> {
    let keys = user_keys(user);
    subjects
        .iter()
        .position(|s| subject_key(s, binding_namespace).is_some_and(|k| keys.contains(&k)))
}

/// Upstream's `describeSubject`.
fn describe_subject(s: &Subject, binding_namespace: &str) -> String {
    match s.kind.as_str() {
        "ServiceAccount" => {
            let ns = s
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            format!("{} {:?}", s.kind, format!("{}/{}", s.name, ns))
        }
        _ => format!("{} {:?}", s.kind, s.name),
    }
}

/// Where a rule came from, for the `allowed by` reason.
pub struct Source<'a> {
    binding: &'a BindingRef<'a>,
    subject: &'a Subject,
}

enum BindingRef<'a> {
    Cluster(&'a ClusterRoleBinding),
    Namespaced(&'a RoleBinding),
}

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.binding {
            BindingRef::Cluster(b) => write!(
                f,
                "ClusterRoleBinding {:?} of {} {:?} to {}",
                name_of(&b.metadata),
                b.role_ref.kind,
                b.role_ref.name,
                describe_subject(self.subject, "")
            ),
            BindingRef::Namespaced(b) => {
                let ns = ns_of(&b.metadata);
                write!(
                    f,
                    "RoleBinding {:?} of {} {:?} to {}",
                    format!("{}/{}", name_of(&b.metadata), ns),
                    b.role_ref.kind,
                    b.role_ref.name,
                    describe_subject(self.subject, &ns)
                )
            }
        }
    }
}

/// What [`Policy::visit_rules_for`] calls with each rule (and its source) or each role
/// resolution error; it returns false to stop the visit.
pub type Visitor<'v> =
    dyn FnMut(Option<&Source<'_>>, Option<&PolicyRule>, Option<&str>) -> bool + 'v;

/// Bindings by the subjects they name, looked up by borrowed names: users, groups, and
/// service accounts by `<namespace>:<name>` (the tail of their user name), each to the
/// bindings naming it by binding name (the order upstream visits them in).
#[derive(Debug, Clone)]
struct BySubject<B> {
    users: HashMap<String, BTreeMap<String, Arc<B>>>,
    groups: HashMap<String, BTreeMap<String, Arc<B>>>,
    service_accounts: HashMap<String, BTreeMap<String, Arc<B>>>,
}

impl<B> Default for BySubject<B> {
    fn default() -> Self {
        BySubject {
            users: HashMap::new(),
            groups: HashMap::new(),
            service_accounts: HashMap::new(),
        }
    }
}

impl<B> BySubject<B> {
    fn map(
        &mut self,
        key: &SubjectKey,
    ) -> (&mut HashMap<String, BTreeMap<String, Arc<B>>>, String) {
        match key {
            SubjectKey::User(u) => (&mut self.users, u.clone()),
            SubjectKey::Group(g) => (&mut self.groups, g.clone()),
            SubjectKey::ServiceAccount(ns, name) => {
                (&mut self.service_accounts, format!("{ns}:{name}"))
            }
        }
    }

    fn insert(&mut self, key: &SubjectKey, name: &str, binding: &Arc<B>) {
        let (map, k) = self.map(key);
        map.entry(k)
            .or_default()
            .insert(name.to_owned(), binding.clone());
    }

    fn remove(&mut self, key: &SubjectKey, name: &str) {
        let (map, k) = self.map(key);
        if let Some(set) = map.get_mut(&k) {
            set.remove(name);
            if set.is_empty() {
                map.remove(&k);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty() && self.service_accounts.is_empty()
    }

    /// Every binding naming `user` (a binding naming it twice comes twice), by subject
    /// kind then binding name; no allocation.
    fn naming<'s>(
        &'s self,
        user: &'s UserInfo,
    ) -> impl Iterator<Item = (&'s String, &'s Arc<B>)> + 's {
        let sa = user
            .username
            .strip_prefix(SERVICE_ACCOUNT_PREFIX)
            .filter(|rest| rest.contains(':'));
        self.users
            .get(user.username.as_str())
            .into_iter()
            .chain(
                user.groups
                    .iter()
                    .filter_map(|g| self.groups.get(g.as_str())),
            )
            .chain(sa.and_then(|k| self.service_accounts.get(k)))
            .flatten()
    }
}

/// The four RBAC kinds, indexed for authorization. Cheap to clone (objects are shared), so
/// a writer can clone, change and publish a new index while readers keep the old one.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Roles by namespace and name.
    roles: HashMap<String, HashMap<String, Arc<Role>>>,
    cluster_roles: HashMap<String, Arc<ClusterRole>>,
    role_bindings: HashMap<(String, String), Arc<RoleBinding>>,
    cluster_role_bindings: HashMap<String, Arc<ClusterRoleBinding>>,
    /// Cluster bindings by subject.
    cluster_by_subject: BySubject<ClusterRoleBinding>,
    /// Namespaced bindings by namespace, then subject.
    namespaced_by_subject: HashMap<String, BySubject<RoleBinding>>,
}

impl Policy {
    pub fn new() -> Policy {
        Policy::default()
    }

    /// An index of the given objects (tests and bootstrap).
    pub fn from_objects(
        roles: Vec<Role>,
        role_bindings: Vec<RoleBinding>,
        cluster_roles: Vec<ClusterRole>,
        cluster_role_bindings: Vec<ClusterRoleBinding>,
    ) -> Policy {
        let mut p = Policy::new();
        roles.into_iter().for_each(|r| p.put_role(r));
        role_bindings
            .into_iter()
            .for_each(|b| p.put_role_binding(b));
        cluster_roles
            .into_iter()
            .for_each(|r| p.put_cluster_role(r));
        cluster_role_bindings
            .into_iter()
            .for_each(|b| p.put_cluster_role_binding(b));
        p
    }

    pub fn put_role(&mut self, r: Role) {
        self.roles
            .entry(ns_of(&r.metadata))
            .or_default()
            .insert(name_of(&r.metadata), Arc::new(r));
    }

    pub fn delete_role(&mut self, namespace: &str, name: &str) {
        if let Some(roles) = self.roles.get_mut(namespace) {
            roles.remove(name);
            if roles.is_empty() {
                self.roles.remove(namespace);
            }
        }
    }

    pub fn put_cluster_role(&mut self, r: ClusterRole) {
        self.cluster_roles.insert(name_of(&r.metadata), Arc::new(r));
    }

    pub fn delete_cluster_role(&mut self, name: &str) {
        self.cluster_roles.remove(name);
    }

    pub fn put_role_binding(&mut self, b: RoleBinding) {
        let (ns, name) = (ns_of(&b.metadata), name_of(&b.metadata));
        self.delete_role_binding(&ns, &name);
        let b = Arc::new(b);
        let index = self.namespaced_by_subject.entry(ns.clone()).or_default();
        for s in b.subjects.iter().flatten() {
            if let Some(k) = subject_key(s, &ns) {
                index.insert(&k, &name, &b);
            }
        }
        self.role_bindings.insert((ns, name), b);
    }

    pub fn delete_role_binding(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(old) = self.role_bindings.remove(&key) else {
            return;
        };
        if let Some(index) = self.namespaced_by_subject.get_mut(namespace) {
            for s in old.subjects.iter().flatten() {
                if let Some(k) = subject_key(s, namespace) {
                    index.remove(&k, name);
                }
            }
            if index.is_empty() {
                self.namespaced_by_subject.remove(namespace);
            }
        }
    }

    pub fn put_cluster_role_binding(&mut self, b: ClusterRoleBinding) {
        let name = name_of(&b.metadata);
        self.delete_cluster_role_binding(&name);
        let b = Arc::new(b);
        for s in b.subjects.iter().flatten() {
            if let Some(k) = subject_key(s, "") {
                self.cluster_by_subject.insert(&k, &name, &b);
            }
        }
        self.cluster_role_bindings.insert(name, b);
    }

    pub fn delete_cluster_role_binding(&mut self, name: &str) {
        let Some(old) = self.cluster_role_bindings.remove(name) else {
            return;
        };
        for s in old.subjects.iter().flatten() {
            if let Some(k) = subject_key(s, "") {
                self.cluster_by_subject.remove(&k, name);
            }
        }
    }

    pub fn cluster_role(&self, name: &str) -> Option<&ClusterRole> {
        self.cluster_roles.get(name).map(|r| &**r)
    }

    pub fn cluster_roles(&self) -> impl Iterator<Item = &ClusterRole> {
        self.cluster_roles.values().map(|r| &**r)
    }

    pub fn role_binding_count(&self) -> usize {
        self.role_bindings.len()
    }

    /// The rules of a role reference, `None` when the role is missing; no allocation.
    fn rules_of(&self, role_ref: &RoleRef, binding_namespace: &str) -> Option<&[PolicyRule]> {
        match role_ref.kind.as_str() {
            "Role" => self
                .roles
                .get(binding_namespace)?
                .get(role_ref.name.as_str())
                .map(|r| r.rules.as_deref().unwrap_or(&[])),
            "ClusterRole" => self
                .cluster_roles
                .get(role_ref.name.as_str())
                .map(|r| r.rules.as_deref().unwrap_or(&[])),
            _ => None,
        }
    }

    /// The rules a role reference grants, or upstream's lister error when the role is
    /// missing (a binding to a missing role grants nothing).
    pub fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        binding_namespace: &str,
    ) -> Result<&[PolicyRule], String> {
        self.rules_of(role_ref, binding_namespace)
            .ok_or_else(|| match role_ref.kind.as_str() {
                "Role" => format!("role.{GROUP} {:?} not found", role_ref.name),
                "ClusterRole" => format!("clusterrole.{GROUP} {:?} not found", role_ref.name),
                other => format!("unsupported role reference kind: {other:?}"),
            })
    }

    /// Whether RBAC allows `a`, the question every request asks: the same answer as
    /// [`Policy::authorize`] without its reason, looking only at the bindings that name
    /// the user and allocating nothing. Callers wanting the reason (or a denial's text)
    /// ask [`Policy::authorize`].
    pub fn allows(&self, a: &AttributesRef<'_>) -> bool {
        if a.user.in_group(SYSTEM_MASTERS) {
            return true;
        }
        let allowed_by = |rules: Option<&[PolicyRule]>| {
            rules.is_some_and(|rules| rules.iter().any(|r| rule_allows_ref(a, r)))
        };
        if self
            .cluster_by_subject
            .naming(a.user)
            .any(|(_, b)| allowed_by(self.rules_of(&b.role_ref, "")))
        {
            return true;
        }
        if a.namespace.is_empty() {
            return false;
        }
        self.namespaced_by_subject
            .get(a.namespace)
            .is_some_and(|index| {
                index
                    .naming(a.user)
                    .any(|(_, b)| allowed_by(self.rules_of(&b.role_ref, a.namespace)))
            })
    }

    /// Upstream's `VisitRulesFor`: every rule granted to `user` by cluster bindings, then by
    /// bindings in `namespace` (when not empty), each with its source, and every role
    /// resolution error met. `visit` returns false to stop.
    pub fn visit_rules_for(&self, user: &UserInfo, namespace: &str, visit: &mut Visitor<'_>) {
        let cluster: BTreeMap<&String, &Arc<ClusterRoleBinding>> =
            self.cluster_by_subject.naming(user).collect();
        for b in cluster.values() {
            let subjects = b.subjects.as_deref().unwrap_or(&[]);
            let Some(i) = applies_to(user, subjects, "") else {
                continue;
            };
            let binding = BindingRef::Cluster(b);
            let source = Source {
                binding: &binding,
                subject: &subjects[i],
            };
            match self.role_ref_rules(&b.role_ref, "") {
                Ok(rules) => {
                    for r in rules {
                        if !visit(Some(&source), Some(r), None) {
                            return;
                        }
                    }
                }
                Err(e) => {
                    if !visit(None, None, Some(&e)) {
                        return;
                    }
                }
            }
        }
        if namespace.is_empty() {
            return;
        }
        let Some(index) = self.namespaced_by_subject.get(namespace) else {
            return;
        };
        let namespaced: BTreeMap<&String, &Arc<RoleBinding>> = index.naming(user).collect();
        for b in namespaced.values() {
            let subjects = b.subjects.as_deref().unwrap_or(&[]);
            let Some(i) = applies_to(user, subjects, namespace) else {
                continue;
            };
            let binding = BindingRef::Namespaced(b);
            let source = Source {
                binding: &binding,
                subject: &subjects[i],
            };
            match self.role_ref_rules(&b.role_ref, namespace) {
                Ok(rules) => {
                    for r in rules {
                        if !visit(Some(&source), Some(r), None) {
                            return;
                        }
                    }
                }
                Err(e) => {
                    if !visit(None, None, Some(&e)) {
                        return;
                    }
                }
            }
        }
    }

    /// Upstream's `RulesFor`: the rules `user` has in `namespace` (cluster-wide ones
    /// included), and the role resolution errors met (the list is then incomplete).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit_rules_for(user, namespace, &mut |_, rule, err| {
            if let Some(r) = rule {
                rules.push(r.clone());
            }
            if let Some(e) = err {
                errors.push(e.to_owned());
            }
            true
        });
        (rules, errors)
    }

    /// The RBAC authorizer (upstream's `RBACAuthorizer.Authorize`) behind upstream's
    /// privileged-group authorizer: `system:masters` may do everything.
    pub fn authorize(&self, a: &Attributes) -> Decision {
        if a.user.in_group(SYSTEM_MASTERS) {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let mut allowed_by = None;
        let mut errors: Vec<String> = Vec::new();
        self.visit_rules_for(&a.user, &a.namespace, &mut |source, rule, err| {
            if let (Some(source), Some(rule)) = (source, rule) {
                if rule_allows(a, rule) {
                    allowed_by = Some(format!("RBAC: allowed by {source}"));
                    return false;
                }
            }
            if let Some(e) = err {
                errors.push(e.to_owned());
            }
            true
        });
        match allowed_by {
            Some(reason) => Decision {
                allowed: true,
                reason,
            },
            None => Decision {
                allowed: false,
                reason: if errors.is_empty() {
                    String::new()
                } else {
                    format!("RBAC: {}", aggregate(&errors))
                },
            },
        }
    }

    /// Upstream's `AllowedSubjects`: who may do `a` (`system:masters` first), cluster
    /// bindings' subjects then those of bindings in the request's namespace.
    pub fn allowed_subjects(&self, a: &Attributes) -> Vec<Subject> {
        let group = |name: &str| Subject {
            kind: "Group".into(),
            api_group: Some(GROUP.into()),
            name: name.into(),
            namespace: None,
        };
        let mut out = vec![group(SYSTEM_MASTERS)];
        let allows = |rules: Result<&[PolicyRule], String>| {
            rules.is_ok_and(|rules| rules.iter().any(|r| rule_allows(a, r)))
        };
        let mut names: Vec<&String> = self.cluster_role_bindings.keys().collect();
        names.sort();
        for name in names {
            let b = &self.cluster_role_bindings[name];
            if allows(self.role_ref_rules(&b.role_ref, "")) {
                out.extend(b.subjects.iter().flatten().cloned());
            }
        }
        if !a.namespace.is_empty() {
            let mut keys: Vec<&(String, String)> = self
                .role_bindings
                .keys()
                .filter(|(ns, _)| *ns == a.namespace)
                .collect();
            keys.sort();
            for key in keys {
                let b = &self.role_bindings[key];
                if allows(self.role_ref_rules(&b.role_ref, &a.namespace)) {
                    out.extend(b.subjects.iter().flatten().cloned());
                }
            }
        }
        let mut seen = Vec::new();
        out.retain(|s| {
            let fresh = !seen.contains(s);
            seen.push(s.clone());
            fresh
        });
        out
    }
}

/// Go's `utilerrors.NewAggregate(errs).Error()`: one error alone, else `[a, b]`.
fn aggregate(errors: &[String]) -> String {
    let mut unique: Vec<&String> = Vec::new();
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    if unique.len() == 1 {
        unique[0].clone()
    } else {
        format!(
            "[{}]",
            unique
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub fn split(s: &str) -> Option<Vec<String>> {
        Some(s.split(',').map(str::to_owned).collect())
    }

    /// Upstream's `newRule(verbs, apiGroups, resources, nonResourceURLs)`.
    pub fn new_rule(verbs: &str, groups: &str, resources: &str, urls: &str) -> PolicyRule {
        PolicyRule {
            verbs: split(verbs).unwrap_or_default(),
            api_groups: split(groups),
            resources: split(resources),
            non_resource_urls: split(urls),
            resource_names: None,
        }
    }

    pub fn meta(ns: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: (!ns.is_empty()).then(|| ns.to_owned()),
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        }
    }

    pub fn role(name: &str, ns: &str, rules: Vec<PolicyRule>) -> Role {
        Role {
            metadata: meta(ns, name),
            rules: Some(rules),
        }
    }

    pub fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
        ClusterRole {
            metadata: meta("", name),
            rules: Some(rules),
            aggregation_rule: None,
        }
    }

    pub fn subjects(list: &[&str]) -> Option<Vec<Subject>> {
        Some(
            list.iter()
                .map(|s| {
                    let (kind, name) = s.split_once(':').expect("kind:name");
                    let (namespace, name) = match kind {
                        "ServiceAccount" => {
                            let (ns, n) = name.split_once(':').unwrap_or(("", name));
                            ((!ns.is_empty()).then(|| ns.to_owned()), n)
                        }
                        _ => (None, name),
                    };
                    Subject {
                        api_group: (kind != "ServiceAccount").then(|| GROUP.to_owned()),
                        kind: kind.to_owned(),
                        name: name.to_owned(),
                        namespace,
                    }
                })
                .collect(),
        )
    }

    pub fn crb(name: &str, role: &str, subs: &[&str]) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: meta("", name),
            role_ref: RoleRef {
                api_group: GROUP.into(),
                kind: "ClusterRole".into(),
                name: role.into(),
            },
            subjects: subjects(subs),
        }
    }

    pub fn rb(ns: &str, name: &str, kind: &str, role: &str, subs: &[&str]) -> RoleBinding {
        RoleBinding {
            metadata: meta(ns, name),
            role_ref: RoleRef {
                api_group: GROUP.into(),
                kind: kind.into(),
                name: role.into(),
            },
            subjects: subjects(subs),
        }
    }

    pub fn user(name: &str, groups: &str) -> UserInfo {
        UserInfo {
            username: name.into(),
            groups: groups
                .split(',')
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect(),
            ..UserInfo::default()
        }
    }

    /// Upstream's `defaultAttributes{user, groups, verb, resource, subresource, namespace, apiGroup}`.
    pub fn attrs(
        u: &str,
        groups: &str,
        verb: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        group: &str,
    ) -> Attributes {
        Attributes {
            user: user(u, groups),
            verb: verb.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            api_group: group.into(),
            resource_request: true,
            ..Attributes::default()
        }
    }

    fn nonres(u: &str, groups: &str, verb: &str, path: &str) -> Attributes {
        Attributes {
            user: user(u, groups),
            verb: verb.into(),
            path: path.into(),
            ..Attributes::default()
        }
    }

    /// Upstream's cases, asked of both the full authorizer and the hot path's `allows`.
    fn check(p: &Policy, pass: &[Attributes], fail: &[Attributes]) {
        for a in pass {
            assert!(p.authorize(a).allowed, "incorrectly restricted {a:?}");
            assert!(
                p.allows(&a.as_ref()),
                "allows: incorrectly restricted {a:?}"
            );
        }
        for a in fail {
            assert!(!p.authorize(a).allowed, "incorrectly passed {a:?}");
            assert!(!p.allows(&a.as_ref()), "allows: incorrectly passed {a:?}");
        }
    }

    /// Upstream's TestAuthorizer.
    #[test]
    fn authorizer_cases() {
        let p = Policy::from_objects(
            vec![],
            vec![rb(
                "ns1",
                "b",
                "ClusterRole",
                "admin",
                &["User:admin", "Group:admins"],
            )],
            vec![cluster_role("admin", vec![new_rule("*", "*", "*", "*")])],
            vec![],
        );
        check(
            &p,
            &[
                attrs("admin", "", "get", "Pods", "", "ns1", ""),
                attrs("admin", "", "watch", "Pods", "", "ns1", ""),
                attrs("admin", "group1", "watch", "Foobar", "", "ns1", ""),
                attrs("joe", "admins", "watch", "Foobar", "", "ns1", ""),
                attrs("joe", "group1,admins", "watch", "Foobar", "", "ns1", ""),
            ],
            &[
                attrs("admin", "", "GET", "Pods", "", "ns2", ""),
                attrs("admin", "", "GET", "Nodes", "", "", ""),
                attrs("admin", "admins", "GET", "Pods", "", "ns2", ""),
                attrs("admin", "admins", "GET", "Nodes", "", "", ""),
            ],
        );

        let p = Policy::from_objects(
            vec![],
            vec![],
            vec![
                cluster_role(
                    "non-resource-url-getter",
                    vec![new_rule("get", "", "", "/apis")],
                ),
                cluster_role("non-resource-url", vec![new_rule("*", "", "", "/apis")]),
                cluster_role(
                    "non-resource-url-prefix",
                    vec![new_rule("get", "", "", "/apis/*")],
                ),
            ],
            vec![
                crb("b1", "non-resource-url-getter", &["User:foo", "Group:bar"]),
                crb("b2", "non-resource-url", &["User:admin", "Group:admin"]),
                crb(
                    "b3",
                    "non-resource-url-prefix",
                    &["User:prefixed", "Group:prefixed"],
                ),
            ],
        );
        check(
            &p,
            &[
                nonres("foo", "", "get", "/apis"),
                nonres("", "bar", "get", "/apis"),
                nonres("admin", "", "get", "/apis"),
                nonres("", "admin", "get", "/apis"),
                nonres("admin", "", "watch", "/apis"),
                nonres("", "admin", "watch", "/apis"),
                nonres("prefixed", "", "get", "/apis/v1"),
                nonres("", "prefixed", "get", "/apis/v1"),
                nonres("prefixed", "", "get", "/apis/v1/foobar"),
                nonres("", "prefixed", "get", "/apis/v1/foorbar"),
            ],
            &[
                nonres("foo", "", "watch", "/apis"),
                nonres("", "bar", "watch", "/apis"),
                nonres("foo", "", "get", "/api/v1"),
                nonres("", "bar", "get", "/api/v1"),
                nonres("admin", "", "get", "/api/v1"),
                nonres("", "admin", "get", "/api/v1"),
                nonres("prefixed", "", "get", "/api/v1"),
                nonres("", "prefixed", "get", "/api/v1"),
            ],
        );

        // subresource resolution
        let p = Policy::from_objects(
            vec![],
            vec![rb(
                "ns1",
                "b",
                "ClusterRole",
                "admin",
                &["User:admin", "Group:admins"],
            )],
            vec![cluster_role("admin", vec![new_rule("*", "*", "pods", "*")])],
            vec![],
        );
        check(
            &p,
            &[attrs("admin", "", "get", "pods", "", "ns1", "")],
            &[attrs("admin", "", "get", "pods", "status", "ns1", "")],
        );
        let p = Policy::from_objects(
            vec![],
            vec![rb(
                "ns1",
                "b",
                "ClusterRole",
                "admin",
                &["User:admin", "Group:admins"],
            )],
            vec![cluster_role(
                "admin",
                vec![new_rule("*", "*", "pods/status", "*")],
            )],
            vec![],
        );
        check(
            &p,
            &[attrs("admin", "", "get", "pods", "status", "ns1", "")],
            &[attrs("admin", "", "get", "pods", "", "ns1", "")],
        );
    }

    /// Upstream's TestDefaultRuleResolver.
    #[test]
    fn rule_resolver() {
        let read_pods = new_rule("GET,WATCH", "v1", "pods", "");
        let mut read_pods = read_pods;
        read_pods.non_resource_urls = None;
        let mut read_services = read_pods.clone();
        read_services.resources = split("services");
        let mut write_nodes = read_pods.clone();
        write_nodes.verbs = split("PUT,CREATE,UPDATE").unwrap();
        write_nodes.resources = split("nodes");
        let mut admin = read_pods.clone();
        admin.verbs = vec!["*".into()];
        admin.api_groups = split("*");
        admin.resources = split("*");
        let p = Policy::from_objects(
            vec![role(
                "readthings",
                "namespace1",
                vec![read_pods.clone(), read_services.clone()],
            )],
            vec![rb(
                "namespace1",
                "b",
                "Role",
                "readthings",
                &["User:foobar", "Group:group1"],
            )],
            vec![
                cluster_role("cluster-admin", vec![admin.clone()]),
                cluster_role("write-nodes", vec![write_nodes]),
            ],
            vec![crb("b", "cluster-admin", &["User:admin", "Group:admin"])],
        );
        assert_eq!(
            p.rules_for(&user("foobar", ""), "namespace1").0,
            vec![read_pods, read_services]
        );
        assert!(p.rules_for(&user("foobar", ""), "namespace2").0.is_empty());
        assert_eq!(p.rules_for(&user("foobar", "admin"), "").0, vec![admin]);
        assert!(p.rules_for(&UserInfo::default(), "").0.is_empty());
    }

    /// Upstream's TestAppliesTo.
    #[test]
    fn applies_to_cases() {
        let cases: &[(&[&str], UserInfo, &str, bool)] = &[
            (&["User:foobar"], user("foobar", ""), "", true),
            (
                &["User:barfoo", "User:foobar"],
                user("foobar", ""),
                "",
                true,
            ),
            (
                &["User:barfoo", "User:foobar"],
                user("zimzam", ""),
                "",
                false,
            ),
            (
                &["User:barfoo", "Group:foobar"],
                user("zimzam", "foobar"),
                "",
                true,
            ),
            (
                &["User:barfoo", "Group:foobar"],
                user("zimzam", "foobar"),
                "namespace1",
                true,
            ),
            (
                &[
                    "User:barfoo",
                    "Group:foobar",
                    "ServiceAccount:kube-system:default",
                ],
                user("system:serviceaccount:kube-system:default", ""),
                "default",
                true,
            ),
            (&["User:*"], user("foobar", ""), "default", false),
            (
                &["Group:system:authenticated", "Group:system:unauthenticated"],
                user("foobar", "system:authenticated"),
                "default",
                true,
            ),
            (
                &["Group:system:authenticated", "Group:system:unauthenticated"],
                user("system:anonymous", "system:unauthenticated"),
                "default",
                true,
            ),
        ];
        for (subs, u, ns, want) in cases {
            let got = applies_to(u, &subjects(subs).unwrap(), ns).is_some();
            assert_eq!(got, *want, "{subs:?} {u:?}");
        }
        // A service account named without a namespace in a RoleBinding is in the binding's.
        let subs = subjects(&["ServiceAccount:builder"]).unwrap();
        assert!(applies_to(&user("system:serviceaccount:ci:builder", ""), &subs, "ci").is_some());
        assert!(applies_to(&user("system:serviceaccount:ci:builder", ""), &subs, "").is_none());
    }

    #[test]
    fn missing_role_grants_nothing_and_says_why() {
        let p = Policy::from_objects(
            vec![],
            vec![rb("staging", "b", "Role", "missing", &["Group:interns"])],
            vec![],
            vec![crb("c", "gone", &["User:intern"])],
        );
        let d = p.authorize(&attrs(
            "intern", "interns", "get", "pods", "", "staging", "",
        ));
        assert!(!d.allowed);
        assert_eq!(
            d.reason,
            r#"RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, role.rbac.authorization.k8s.io "missing" not found]"#
        );
        let d = p.authorize(&attrs("other", "", "get", "pods", "", "staging", ""));
        assert_eq!(
            d,
            Decision {
                allowed: false,
                reason: String::new()
            }
        );
    }

    #[test]
    fn allowed_reason_names_binding_and_subject() {
        let p = Policy::from_objects(
            vec![role(
                "dev",
                "staging",
                vec![new_rule("get", "apps", "deployments", "")],
            )],
            vec![rb(
                "staging",
                "interns",
                "Role",
                "dev",
                &["User:x", "ServiceAccount:ci", "Group:interns"],
            )],
            vec![],
            vec![],
        );
        let d = p.authorize(&attrs(
            "intern",
            "interns",
            "get",
            "deployments",
            "",
            "staging",
            "apps",
        ));
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by RoleBinding "interns/staging" of Role "dev" to Group "interns""#
        );
        let d = p.authorize(&attrs(
            "system:serviceaccount:staging:ci",
            "",
            "get",
            "deployments",
            "",
            "staging",
            "apps",
        ));
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by RoleBinding "interns/staging" of Role "dev" to ServiceAccount "ci/staging""#
        );
    }

    #[test]
    fn masters_and_index_updates() {
        let mut p = Policy::new();
        assert!(
            p.authorize(&attrs(
                "root",
                SYSTEM_MASTERS,
                "delete",
                "nodes",
                "",
                "",
                ""
            ))
            .allowed
        );
        let a = attrs("intern", "interns", "list", "pods", "", "staging", "");
        assert!(!p.authorize(&a).allowed);
        p.put_role(role("r", "staging", vec![new_rule("list", "", "pods", "")]));
        p.put_role_binding(rb("staging", "b", "Role", "r", &["Group:interns"]));
        assert!(p.authorize(&a).allowed);
        // Changing the subjects re-indexes the binding.
        p.put_role_binding(rb("staging", "b", "Role", "r", &["Group:others"]));
        assert!(!p.authorize(&a).allowed);
        p.put_role_binding(rb("staging", "b", "Role", "r", &["Group:interns"]));
        p.delete_role_binding("staging", "b");
        assert!(!p.authorize(&a).allowed);
        p.put_cluster_role(cluster_role("cr", vec![new_rule("list", "", "pods", "")]));
        p.put_cluster_role_binding(crb("cb", "cr", &["User:intern"]));
        assert!(p.authorize(&a).allowed);
        p.delete_cluster_role("cr");
        assert!(!p.authorize(&a).allowed);
    }

    fn group_subject(name: &str) -> Subject {
        Subject {
            kind: "Group".into(),
            api_group: Some(GROUP.into()),
            name: name.into(),
            namespace: None,
        }
    }

    fn user_subject(name: &str) -> Subject {
        Subject {
            kind: "User".into(),
            api_group: Some(GROUP.into()),
            name: name.into(),
            namespace: None,
        }
    }

    /// Upstream's TestSubjectLocator (no super user: skiff has none besides system:masters).
    #[test]
    fn subject_locator() {
        let p = Policy::from_objects(
            vec![],
            vec![rb(
                "ns1",
                "b",
                "ClusterRole",
                "admin",
                &["User:admin", "Group:admins"],
            )],
            vec![cluster_role("admin", vec![new_rule("*", "*", "*", "*")])],
            vec![crb(
                "c",
                "admin",
                &["User:super-admin", "Group:super-admins"],
            )],
        );
        let cluster = vec![
            group_subject(SYSTEM_MASTERS),
            user_subject("super-admin"),
            group_subject("super-admins"),
        ];
        let mut all = cluster.clone();
        all.extend([user_subject("admin"), group_subject("admins")]);
        assert_eq!(
            p.allowed_subjects(&attrs("", "", "get", "Pods", "", "ns1", "")),
            all
        );
        assert_eq!(
            p.allowed_subjects(&attrs("", "", "*", "Pods", "", "*", "")),
            cluster
        );
        assert_eq!(
            p.allowed_subjects(&attrs("", "", "*", "Pods", "", "", "")),
            cluster
        );

        let p = Policy::from_objects(
            vec![role(
                "admin",
                "ns1",
                vec![new_rule("get", "*", "Pods", "*")],
            )],
            vec![rb(
                "ns1",
                "b",
                "Role",
                "admin",
                &["User:admin", "Group:admins"],
            )],
            vec![cluster_role("admin", vec![new_rule("*", "*", "*", "*")])],
            vec![crb(
                "c",
                "admin",
                &["User:super-admin", "Group:super-admins"],
            )],
        );
        assert_eq!(
            p.allowed_subjects(&attrs("", "", "get", "Pods", "", "ns1", "")),
            all
        );
        assert_eq!(
            p.allowed_subjects(&attrs("", "", "create", "Pods", "", "ns1", "")),
            cluster
        );
        assert_eq!(
            p.allowed_subjects(&attrs("", "", "get", "Pods", "", "ns2", "")),
            cluster
        );
    }
}
