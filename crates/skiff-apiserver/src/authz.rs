//! Authorization: every request, after authentication, is asked of the RBAC authorizer
//! (`skiff-rbac`) over an in-memory index of Roles, ClusterRoles and their bindings that a
//! watch of the store keeps current, so the request path never reads the store. Also here:
//! escalation prevention on writes of roles and bindings, the `authorization.k8s.io/v1`
//! reviews (`kubectl auth can-i`), the bootstrap policy upstream's `rbac/bootstrap-roles`
//! post-start hook reconciles, and ClusterRole aggregation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::http::StatusCode;
use axum::response::Response;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::{json, Value};
use skiff_apimachinery::user::UserInfo;
use skiff_rbac::bootstrap::{self, Reconcile};
use skiff_rbac::escalation::{self, Write};
use skiff_rbac::{Attributes, Decision, Forbidden, Policy, RequestInfo};

use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::request::{Params, Target};
use crate::webhook::{Attributes as AdmissionAttributes, Operation};

const RBAC: &str = "rbac.authorization.k8s.io";
const AUTHORIZATION: &str = "authorization.k8s.io";
/// The four RBAC kinds by their plural (their storage prefix too).
const PLURALS: [&str; 4] = [
    "roles",
    "clusterroles",
    "rolebindings",
    "clusterrolebindings",
];

/// The RBAC index requests are authorized against, replaced whole on every change so a
/// request reads one consistent snapshot without waiting for writers.
#[derive(Default)]
pub struct Rbac {
    policy: RwLock<Arc<Policy>>,
    /// Upstream's `--authorization-mode=AlwaysAllow`: every request is allowed (for
    /// measuring what authorization costs; never a default).
    always_allow: AtomicBool,
    /// Whether the Node authorizer runs before RBAC (`Node,RBAC`, the default).
    node: AtomicBool,
    /// What the Node authorizer asks about pods and their references (the store's).
    graph: std::sync::OnceLock<Box<dyn skiff_rbac::node::Graph>>,
}

/// The authorizers a server runs, as upstream's `--authorization-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// system:masters, the Node authorizer, then RBAC (upstream's default).
    NodeRbac,
    /// system:masters, then RBAC: nodes get nothing (`system:node` is bound to nobody).
    Rbac,
    /// Everything is allowed.
    AlwaysAllow,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Mode, String> {
        match s {
            "Node,RBAC" => Ok(Mode::NodeRbac),
            "RBAC" => Ok(Mode::Rbac),
            "AlwaysAllow" => Ok(Mode::AlwaysAllow),
            other => Err(format!(
                "authorization mode {other:?} is not one of Node,RBAC, RBAC, AlwaysAllow"
            )),
        }
    }
}

impl Rbac {
    /// Chooses the authorizers (RBAC unless told otherwise).
    pub fn set_mode(&self, mode: Mode) {
        self.always_allow
            .store(mode == Mode::AlwaysAllow, Ordering::Relaxed);
        self.node.store(mode == Mode::NodeRbac, Ordering::Relaxed);
    }

    /// The Node authorizer's opinion, when it runs and the user is a node.
    fn node_decision(&self, a: &Attributes, field_selector: Option<&str>) -> Option<Decision> {
        if !self.node.load(Ordering::Relaxed) {
            return None;
        }
        let graph = self.graph.get()?;
        skiff_rbac::node::authorize(a, field_selector, graph.as_ref())
    }

    /// The current index.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `f` on the current index, under the read lock (no reference count touched).
    fn read_policy<T>(&self, f: impl FnOnce(&Policy) -> T) -> T {
        f(&self.policy.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn install(&self, policy: Policy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
    }

    /// Upstream's authorizer chain (system:masters, Node, then RBAC) on `a`.
    pub fn authorize(&self, a: &Attributes) -> Decision {
        self.authorize_selected(a, None)
    }

    /// [`Rbac::authorize`] for a request with a field selector (which the Node authorizer
    /// reads: a node lists only its own pods).
    fn authorize_selected(&self, a: &Attributes, field_selector: Option<&str>) -> Decision {
        if self.always_allow.load(Ordering::Relaxed) {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let node = self.node_decision(a, field_selector);
        if let Some(d) = node.as_ref().filter(|d| d.allowed) {
            return d.clone();
        }
        let rbac = self.policy().authorize(a);
        match node {
            // Upstream's union authorizer joins the reasons of the authorizers that said no.
            Some(n) if !rbac.allowed && !n.reason.is_empty() => Decision {
                allowed: false,
                reason: if rbac.reason.is_empty() {
                    n.reason
                } else {
                    format!("{}, {}", n.reason, rbac.reason)
                },
            },
            _ => rbac,
        }
    }

    /// Authorizes one HTTP request of `user`: `Ok` or upstream's 403.
    pub fn authorize_request(
        &self,
        user: &UserInfo,
        method: &str,
        path: &str,
        query: Option<&str>,
    ) -> Result<()> {
        // The privileged group skips building attributes: the admin's hot path.
        if user.in_group(skiff_apimachinery::user::SYSTEM_MASTERS)
            || self.always_allow.load(Ordering::Relaxed)
        {
            return Ok(());
        }
        // Everyone else's: borrowed attributes and the subject index, no allocation. Nodes
        // (whose answer may need the store) and denials (which need a reason) go the long
        // way.
        let request = skiff_rbac::attributes::RequestRef::parse(method, path, query);
        let is_node =
            self.node.load(Ordering::Relaxed) && skiff_rbac::node::identify(user).is_some();
        if !is_node && self.read_policy(|p| p.allows(&request.attributes(user))) {
            return Ok(());
        }
        let info = RequestInfo::new(method, path, query);
        let attrs = Attributes::new(user.clone(), &info);
        let selector = field_selector(query);
        let decision = self.authorize_selected(&attrs, selector.as_deref());
        if decision.allowed {
            return Ok(());
        }
        Err(forbidden(skiff_rbac::forbidden::forbidden(
            &attrs,
            &decision.reason,
        )))
    }

    /// The check impersonation needs (upstream's impersonation filter): may `requester` act
    /// as `target`? `Ok` or upstream's 403 naming what was refused.
    pub fn impersonate(&self, requester: &UserInfo, target: &Impersonated<'_>) -> Result<()> {
        let mut attrs = match target {
            Impersonated::User(name) => {
                Attributes::resource(requester.clone(), "impersonate", "", "users", "", name)
            }
            Impersonated::Group(name) => {
                Attributes::resource(requester.clone(), "impersonate", "", "groups", "", name)
            }
            Impersonated::ServiceAccount { namespace, name } => Attributes::resource(
                requester.clone(),
                "impersonate",
                "",
                "serviceaccounts",
                namespace,
                name,
            ),
            Impersonated::Uid(uid) => Attributes::resource(
                requester.clone(),
                "impersonate",
                "authentication.k8s.io",
                "uids",
                "",
                uid,
            ),
            Impersonated::Extra { key, value } => Attributes::resource(
                requester.clone(),
                "impersonate",
                "authentication.k8s.io",
                "userextras",
                "",
                value,
            )
            .with_subresource(key),
        };
        attrs.api_version = "v1".into();
        let decision = self.authorize(&attrs);
        if decision.allowed {
            return Ok(());
        }
        Err(forbidden(skiff_rbac::forbidden::forbidden(
            &attrs,
            &decision.reason,
        )))
    }
}

/// Who a request asks to act as, one impersonation header at a time.
#[derive(Debug, Clone, Copy)]
pub enum Impersonated<'a> {
    /// `Impersonate-User` naming a user (not a service account).
    User(&'a str),
    /// `Impersonate-Group`.
    Group(&'a str),
    /// `Impersonate-User: system:serviceaccount:<namespace>:<name>`.
    ServiceAccount { namespace: &'a str, name: &'a str },
    /// `Impersonate-Uid`.
    Uid(&'a str),
    /// `Impersonate-Extra-<key>: <value>`.
    Extra { key: &'a str, value: &'a str },
}

/// A denial as the `Status` upstream writes: 403, reason Forbidden, details naming the
/// resource (empty details for a path).
fn forbidden(f: Forbidden) -> ApiError {
    let mut details = serde_json::Map::new();
    for (key, value) in [
        ("name", &f.name),
        ("group", &f.group),
        ("kind", &f.resource),
    ] {
        if !value.is_empty() {
            details.insert(key.into(), json!(value));
        }
    }
    ApiError::Relayed {
        code: 403,
        reason: "Forbidden".into(),
        message: f.message,
        details: Some(Value::Object(details)),
    }
}

fn target(
    api: &Api,
    group: &str,
    plural: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Target> {
    Ok(Target {
        resource: api
            .registry
            .get(group, "v1", plural)
            .ok_or(ApiError::NoRoute)?,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        subresource: None,
    })
}

/// Reads the four kinds into a fresh index; returns the revision read at.
fn refresh(api: &Api) -> Result<i64> {
    let revision = api.store.current_revision();
    let mut policy = Policy::new();
    for plural in PLURALS {
        let t = target(api, RBAC, plural, None, None)?;
        let list = api.store.list(&t.resource.key(None, None), None, None)?;
        for kv in &list.items {
            apply(&mut policy, plural, &kv.key, Some(&kv.value));
        }
    }
    api.rbac.install(policy);
    Ok(revision)
}

/// Applies one stored object (or its deletion, `value` None) to the index; true when it
/// was a ClusterRole (aggregation may have work). A value that does not decode is left out
/// and logged: the API validated it on the way in.
fn apply(policy: &mut Policy, plural: &str, key: &str, value: Option<&[u8]>) -> bool {
    let rest = key
        .strip_prefix("/registry/")
        .and_then(|k| k.strip_prefix(plural))
        .and_then(|k| k.strip_prefix('/'))
        .unwrap_or_default();
    let (ns, name) = rest.split_once('/').unwrap_or(("", rest));
    let decoded = |kind| {
        value.and_then(|v| match skiff_rbac::decode::<Value>(kind, v) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(key, error = %e, "RBAC object left out of the index");
                None
            }
        })
    };
    macro_rules! put {
        ($kind:literal, $ty:ty, $put:ident, $delete:expr) => {
            match decoded($kind).map(serde_json::from_value::<$ty>) {
                Some(Ok(obj)) => policy.$put(obj),
                Some(Err(e)) => {
                    tracing::warn!(key, error = %e, "RBAC object left out of the index");
                    $delete
                }
                None => $delete,
            }
        };
    }
    match plural {
        "roles" => put!("Role", Role, put_role, policy.delete_role(ns, name)),
        "clusterroles" => {
            put!(
                "ClusterRole",
                ClusterRole,
                put_cluster_role,
                policy.delete_cluster_role(name)
            );
            return true;
        }
        "rolebindings" => put!(
            "RoleBinding",
            RoleBinding,
            put_role_binding,
            policy.delete_role_binding(ns, name)
        ),
        "clusterrolebindings" => put!(
            "ClusterRoleBinding",
            ClusterRoleBinding,
            put_cluster_role_binding,
            policy.delete_cluster_role_binding(name)
        ),
        _ => {}
    }
    false
}

/// Installs the stored policy before the first request is answered.
pub fn load(api: &Api) -> Result<()> {
    let graph = StoreGraph {
        store: api.store.clone(),
        pods: api
            .registry
            .get("", "v1", "pods")
            .ok_or(ApiError::NoRoute)?,
        claims: api
            .registry
            .get("", "v1", "persistentvolumeclaims")
            .ok_or(ApiError::NoRoute)?,
    };
    let _ = api.rbac.graph.set(Box::new(graph));
    refresh(api).map(|_| ())
}

/// The `fieldSelector` of a raw query, URL-decoded.
fn field_selector(query: Option<&str>) -> Option<String> {
    let query = query.filter(|q| q.contains("fieldSelector"))?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "fieldSelector")
        .map(|(_, v)| v.into_owned())
}

/// Upstream's node authorizer graph, answered from the stored pods: an object is related
/// to a node when a pod bound to the node refers to it (a volume: through a claim bound
/// to it). Only node requests for such objects ask, which the kubelet makes when it starts
/// a pod, so a scan of the namespace's pods costs less than keeping a graph current.
struct StoreGraph {
    store: Arc<dyn skiff_store::Store>,
    pods: Arc<crate::resources::ResourceInfo>,
    claims: Arc<crate::resources::ResourceInfo>,
}

impl StoreGraph {
    fn pods_on(&self, node: &str, namespace: Option<&str>) -> Vec<Value> {
        let Ok(list) = self.store.list(&self.pods.key(namespace, None), None, None) else {
            return Vec::new();
        };
        list.items
            .iter()
            .filter_map(|kv| crate::handler::materialize(kv).ok())
            .filter(|p| p["spec"]["nodeName"] == node)
            .collect()
    }
}

impl skiff_rbac::node::Graph for StoreGraph {
    fn related(
        &self,
        node: &str,
        kind: skiff_rbac::node::Kind,
        namespace: &str,
        name: &str,
    ) -> bool {
        use skiff_rbac::node::{pod_references, Kind};
        match kind {
            Kind::Pod => self
                .store
                .get(&self.pods.key(Some(namespace), Some(name)))
                .ok()
                .flatten()
                .and_then(|kv| crate::handler::materialize(&kv).ok())
                .is_some_and(|p| p["spec"]["nodeName"] == node),
            Kind::PersistentVolume => self.pods_on(node, None).iter().any(|p| {
                let ns = p["metadata"]["namespace"].as_str().unwrap_or_default();
                pod_references(p).iter().any(|(k, claim)| {
                    *k == Kind::PersistentVolumeClaim
                        && self
                            .store
                            .get(&self.claims.key(Some(ns), Some(claim)))
                            .ok()
                            .flatten()
                            .and_then(|kv| crate::handler::materialize(&kv).ok())
                            .is_some_and(|c| c["spec"]["volumeName"] == name)
                })
            }),
            // skiff attaches no volumes.
            Kind::VolumeAttachment => false,
            _ => self.pods_on(node, Some(namespace)).iter().any(|p| {
                pod_references(p)
                    .iter()
                    .any(|(k, n)| *k == kind && n == name)
            }),
        }
    }
}

/// Runs until the API is dropped: keeps the index current and aggregated ClusterRoles
/// filled.
pub async fn run(api: Arc<Api>) {
    crate::follow::forever("RBAC roles and bindings", || follow(&api)).await
}

async fn follow(api: &Arc<Api>) -> Result<()> {
    let revision = {
        let api = api.clone();
        tokio::task::spawn_blocking(move || refresh(&api))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    };
    let mut watches = Vec::new();
    for plural in PLURALS {
        let t = target(api, RBAC, plural, None, None)?;
        let watch = api.store.watch(&t.resource.key(None, None), revision)?;
        watches.push(
            futures::stream::unfold(watch, move |mut w| async move {
                w.next().await.map(|e| ((plural, e), w))
            })
            .boxed(),
        );
    }
    let mut events = futures::stream::select_all(watches);
    aggregate(api).await;
    while let Some(first) = events.next().await {
        // Every event already delivered goes into one new index.
        let mut policy = Policy::clone(&api.rbac.policy());
        let mut roles_changed = false;
        let mut next = Some(first);
        while let Some((plural, event)) = next {
            let event = event?;
            let value = match event.kind {
                skiff_store::EventKind::Deleted => None,
                _ => Some(&event.value[..]),
            };
            roles_changed |= apply(&mut policy, plural, &event.key, value);
            next = events.next().now_or_never().flatten();
        }
        api.rbac.install(policy);
        if roles_changed {
            aggregate(api).await;
        }
    }
    Ok(())
}

/// Writes the rules of aggregated ClusterRoles that differ from what aggregation gives
/// (upstream's ClusterRoleAggregationController).
async fn aggregate(api: &Api) {
    let policy = api.rbac.policy();
    let roles: Vec<&ClusterRole> = policy.cluster_roles().collect();
    for (name, rules) in skiff_rbac::aggregation::plan(&roles) {
        let Ok(t) = target(api, RBAC, "clusterroles", None, Some(&name)) else {
            return;
        };
        let rules = serde_json::to_value(&rules).unwrap_or_default();
        let result = api
            .update_with(&t, &Params::default(), None, |old| {
                let mut new = old.clone();
                new["rules"] = rules.clone();
                Ok(new)
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(clusterrole = %name, error = %e, "aggregating ClusterRole rules");
        }
    }
}

/// Upstream's `rbac/bootstrap-roles` post-start hook: creates the bootstrap ClusterRoles
/// and bindings that are missing and adds what is missing to those that exist, never
/// removing what users added, nor touching objects annotated `autoupdate: "false"`.
pub async fn bootstrap(api: &Api) -> Result<()> {
    let params = Params::default();
    for expected in bootstrap::cluster_roles() {
        let name = expected.metadata.name.clone().unwrap_or_default();
        let one = target(api, RBAC, "clusterroles", None, Some(&name))?;
        let existing = existing::<ClusterRole>(api, &one)?;
        match bootstrap::reconcile_cluster_role(existing.as_ref(), &expected) {
            Reconcile::Create(obj) => create(api, "clusterroles", "ClusterRole", &obj).await?,
            Reconcile::Update(obj) | Reconcile::Recreate(obj) => {
                let obj = typed_json("ClusterRole", &obj);
                api.update_with(&one, &params, None, |_| Ok(obj.clone()))
                    .await?;
            }
            Reconcile::Keep => {}
        }
    }
    for expected in bootstrap::cluster_role_bindings() {
        let name = expected.metadata.name.clone().unwrap_or_default();
        let one = target(api, RBAC, "clusterrolebindings", None, Some(&name))?;
        let existing = existing::<ClusterRoleBinding>(api, &one)?;
        match bootstrap::reconcile_cluster_role_binding(existing.as_ref(), &expected) {
            Reconcile::Create(obj) => {
                create(api, "clusterrolebindings", "ClusterRoleBinding", &obj).await?
            }
            Reconcile::Update(obj) => {
                let obj = typed_json("ClusterRoleBinding", &obj);
                api.update_with(&one, &params, None, |_| Ok(obj.clone()))
                    .await?;
            }
            Reconcile::Recreate(obj) => {
                api.delete(&one, &Default::default()).await?;
                create(api, "clusterrolebindings", "ClusterRoleBinding", &obj).await?;
            }
            Reconcile::Keep => {}
        }
    }
    // Requests answered before the watch runs see the bootstrap policy.
    refresh(api)?;
    aggregate(api).await;
    refresh(api)?;
    api.health.mark("rbac/bootstrap-roles");
    Ok(())
}

fn typed_json<T: serde::Serialize>(kind: &str, obj: &T) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    v["apiVersion"] = json!(format!("{RBAC}/v1"));
    v["kind"] = json!(kind);
    v
}

fn existing<T: serde::de::DeserializeOwned>(api: &Api, t: &Target) -> Result<Option<T>> {
    match api.get(t) {
        Ok(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| ApiError::Internal(format!("stored RBAC object: {e}"))),
        Err(ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn create<T: serde::Serialize>(api: &Api, plural: &str, kind: &str, obj: &T) -> Result<()> {
    let t = target(api, RBAC, plural, None, None)?;
    match api
        .create(&t, &Params::default(), typed_json(kind, obj))
        .await
    {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Escalation prevention on a create or update of a Role, ClusterRole or binding (upstream's
/// policy-based RBAC storage): the writer must hold what it grants, or have `escalate`
/// (roles) or `bind` (bindings). Updates that change only what garbage collection changes
/// (owner references, finalizers) are not checked, as upstream.
pub fn check_escalation(
    api: &Api,
    attrs: &AdmissionAttributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<()> {
    let r = attrs.resource;
    if r.group != RBAC || attrs.subresource.is_some() {
        return Ok(());
    }
    if !matches!(attrs.operation, Operation::Create | Operation::Update) {
        return Ok(());
    }
    let Some(object) = object else {
        return Ok(());
    };
    if old.is_some_and(|old| only_gc_fields_differ(old, object)) {
        return Ok(());
    }
    let user = &attrs.params.user;
    let namespace = attrs.namespace.unwrap_or("");
    let policy = api.rbac.policy();
    let decode_err = |e: serde_json::Error| ApiError::BadRequest(e.to_string());
    let result = match r.kind.as_str() {
        "Role" | "ClusterRole" => {
            let rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule> =
                serde_json::from_value(object.get("rules").cloned().unwrap_or(json!([])))
                    .map_err(decode_err)?;
            let aggregated = r.kind == "ClusterRole"
                && object.get("aggregationRule").is_some_and(|a| !a.is_null());
            escalation::check(
                &policy,
                user,
                &Write::Role {
                    namespace,
                    name: attrs.name,
                    rules: &rules,
                    aggregated,
                },
            )
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let role_ref: k8s_openapi::api::rbac::v1::RoleRef =
                serde_json::from_value(object.get("roleRef").cloned().unwrap_or_default())
                    .map_err(decode_err)?;
            escalation::check(
                &policy,
                user,
                &Write::Binding {
                    namespace,
                    role_ref: &role_ref,
                },
            )
        }
        _ => Ok(()),
    };
    result.map_err(|e| {
        forbidden(skiff_rbac::forbidden::new_forbidden(
            &r.group, &r.plural, attrs.name, &e,
        ))
    })
}

/// Upstream's `IsOnlyMutatingGCFields`: nothing but owner references and finalizers (and
/// the server's bookkeeping) changed.
fn only_gc_fields_differ(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "ownerReferences",
                "finalizers",
                "managedFields",
                "resourceVersion",
            ] {
                meta.remove(field);
            }
        }
        v
    };
    strip(old) == strip(new)
}

/// One of the `authorization.k8s.io/v1` reviews, by its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    SubjectAccess,
    SelfSubjectAccess,
    LocalSubjectAccess { namespace: String },
    SelfSubjectRules,
}

impl Review {
    /// The review a POST path names, if any.
    pub fn parse(path: &str) -> Option<Review> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segs.as_slice() {
            ["apis", AUTHORIZATION, "v1", "subjectaccessreviews"] => Some(Review::SubjectAccess),
            ["apis", AUTHORIZATION, "v1", "selfsubjectaccessreviews"] => {
                Some(Review::SelfSubjectAccess)
            }
            ["apis", AUTHORIZATION, "v1", "selfsubjectrulesreviews"] => {
                Some(Review::SelfSubjectRules)
            }
            ["apis", AUTHORIZATION, "v1", "namespaces", ns, "localsubjectaccessreviews"] => {
                Some(Review::LocalSubjectAccess {
                    namespace: (*ns).to_owned(),
                })
            }
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Review::SubjectAccess => "SubjectAccessReview",
            Review::SelfSubjectAccess => "SelfSubjectAccessReview",
            Review::LocalSubjectAccess { .. } => "LocalSubjectAccessReview",
            Review::SelfSubjectRules => "SelfSubjectRulesReview",
        }
    }
}

fn invalid(kind: &str, field: &str, value: &Value, detail: &str) -> ApiError {
    let shown = match value {
        Value::Null => "null".to_owned(),
        other => format!("{other}"),
    };
    ApiError::invalid_kind(
        AUTHORIZATION,
        kind,
        "",
        vec![crate::error::Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {shown}: {detail}"),
            field: field.into(),
        }],
    )
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// The attributes a SubjectAccessReview spec asks about (upstream's
/// `ResourceAttributesFrom` / `NonResourceAttributesFrom`).
fn spec_attributes(kind: &str, spec: &Value, user: UserInfo) -> Result<Attributes> {
    let resource = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    match (resource, non_resource) {
        (Some(r), None) => Ok(Attributes {
            user,
            verb: str_of(r, "verb").into(),
            namespace: str_of(r, "namespace").into(),
            api_group: str_of(r, "group").into(),
            api_version: str_of(r, "version").into(),
            resource: str_of(r, "resource").into(),
            subresource: str_of(r, "subresource").into(),
            name: str_of(r, "name").into(),
            path: String::new(),
            resource_request: true,
        }),
        (None, Some(n)) => Ok(Attributes {
            user,
            verb: str_of(n, "verb").into(),
            path: str_of(n, "path").into(),
            ..Attributes::default()
        }),
        (Some(_), Some(_)) => Err(invalid(
            kind,
            "spec.resourceAttributes",
            spec.get("resourceAttributes").unwrap_or(&Value::Null),
            "cannot be specified in combination with nonResourceAttributes",
        )),
        (None, None) => Err(invalid(
            kind,
            "spec.resourceAttributes",
            &Value::Null,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

/// Answers a review (create only; nothing is stored): the object sent back with its
/// `status`, 201 as upstream.
pub fn review(api: &Api, user: &UserInfo, review: &Review, mut obj: Value) -> Result<Response> {
    let kind = review.kind();
    if !obj.is_object() {
        return Err(ApiError::BadRequest(format!("a {kind} must be an object")));
    }
    obj["apiVersion"] = json!(format!("{AUTHORIZATION}/v1"));
    obj["kind"] = json!(kind);
    if obj.get("metadata").is_none_or(Value::is_null) {
        obj["metadata"] = json!({"creationTimestamp": null});
    }
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let policy = api.rbac.policy();
    let status = match review {
        Review::SelfSubjectRules => {
            let namespace = str_of(&spec, "namespace");
            if namespace.is_empty() {
                return Err(ApiError::BadRequest("no namespace on request".into()));
            }
            let (rules, errors) = policy.rules_for(user, namespace);
            let mut resource_rules = Vec::new();
            let mut non_resource_rules = Vec::new();
            for r in rules {
                let urls = r.non_resource_urls.clone().unwrap_or_default();
                if !urls.is_empty() {
                    non_resource_rules.push(json!({"verbs": r.verbs, "nonResourceURLs": urls}));
                }
                if r.resources.as_ref().is_some_and(|v| !v.is_empty()) {
                    let mut rule = json!({"verbs": r.verbs,
                        "apiGroups": r.api_groups.clone().unwrap_or_default(),
                        "resources": r.resources.clone().unwrap_or_default()});
                    if let Some(names) = r.resource_names.clone().filter(|n| !n.is_empty()) {
                        rule["resourceNames"] = json!(names);
                    }
                    resource_rules.push(rule);
                }
            }
            let mut status = json!({
                "resourceRules": resource_rules,
                "nonResourceRules": non_resource_rules,
                "incomplete": !errors.is_empty(),
            });
            if !errors.is_empty() {
                status["evaluationError"] = json!(aggregate_errors(&errors));
            }
            status
        }
        _ => {
            let subject = match review {
                Review::SelfSubjectAccess => user.clone(),
                _ => {
                    let who = UserInfo {
                        username: str_of(&spec, "user").into(),
                        uid: str_of(&spec, "uid").into(),
                        groups: strings(spec.get("groups")),
                        extra: serde_json::from_value(
                            spec.get("extra").cloned().unwrap_or(json!({})),
                        )
                        .unwrap_or_default(),
                    };
                    if who.username.is_empty() && who.groups.is_empty() {
                        return Err(invalid(
                            kind,
                            "spec.user",
                            &json!(""),
                            "at least one of user or group must be specified",
                        ));
                    }
                    who
                }
            };
            let attrs = spec_attributes(kind, &spec, subject)?;
            if let Review::LocalSubjectAccess { namespace } = review {
                if !attrs.resource_request || attrs.namespace != *namespace {
                    return Err(invalid(
                        kind,
                        "spec.resourceAttributes.namespace",
                        &json!(attrs.namespace),
                        "must match metadata.namespace",
                    ));
                }
                obj["metadata"]["namespace"] = json!(namespace);
            }
            let decision = api.rbac.authorize(&attrs);
            let mut status = json!({"allowed": decision.allowed});
            if !decision.reason.is_empty() {
                status["reason"] = json!(decision.reason);
            }
            status
        }
    };
    obj["status"] = status;
    Ok(crate::http::json_response(StatusCode::CREATED, &obj))
}

fn aggregate_errors(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_paths() {
        assert_eq!(
            Review::parse("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
            Some(Review::SelfSubjectAccess)
        );
        assert_eq!(
            Review::parse("/apis/authorization.k8s.io/v1/namespaces/a/localsubjectaccessreviews"),
            Some(Review::LocalSubjectAccess {
                namespace: "a".into()
            })
        );
        assert_eq!(Review::parse("/apis/authorization.k8s.io/v1/other"), None);
    }

    #[test]
    fn impersonation_needs_the_impersonate_verb() {
        use k8s_openapi::api::rbac::v1::{
            ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
        };
        let rbac = Rbac::default();
        let mut policy = Policy::new();
        policy.put_cluster_role(ClusterRole {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("impersonator".into()),
                ..Default::default()
            },
            rules: Some(vec![PolicyRule {
                verbs: vec!["impersonate".into()],
                api_groups: Some(vec!["".into()]),
                resources: Some(vec!["users".into()]),
                resource_names: Some(vec!["intern".into()]),
                ..Default::default()
            }]),
            aggregation_rule: None,
        });
        policy.put_cluster_role_binding(ClusterRoleBinding {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("bob".into()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: RBAC.into(),
                kind: "ClusterRole".into(),
                name: "impersonator".into(),
            },
            subjects: Some(vec![Subject {
                kind: "User".into(),
                name: "bob".into(),
                ..Default::default()
            }]),
        });
        rbac.install(policy);
        let bob = UserInfo {
            username: "bob".into(),
            ..UserInfo::default()
        };
        assert!(rbac
            .impersonate(&bob, &Impersonated::User("intern"))
            .is_ok());
        let err = rbac
            .impersonate(&bob, &Impersonated::User("admin"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"users "admin" is forbidden: User "bob" cannot impersonate resource "users" in API group "" at the cluster scope"#
        );
        let err = rbac
            .impersonate(
                &bob,
                &Impersonated::ServiceAccount {
                    namespace: "ci",
                    name: "builder",
                },
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"serviceaccounts "builder" is forbidden: User "bob" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "ci""#
        );
        assert!(rbac
            .impersonate(
                &UserInfo::cluster_admin(),
                &Impersonated::Group("system:masters")
            )
            .is_ok());
        // AlwaysAllow allows everything.
        rbac.set_mode(Mode::AlwaysAllow);
        assert!(rbac.impersonate(&bob, &Impersonated::User("admin")).is_ok());
    }

    #[test]
    fn gc_only_updates() {
        let old = json!({"metadata": {"name": "r", "resourceVersion": "1"}, "rules": []});
        let mut new = old.clone();
        new["metadata"]["finalizers"] = json!(["x"]);
        assert!(only_gc_fields_differ(&old, &new));
        new["rules"] = json!([{"verbs": ["*"]}]);
        assert!(!only_gc_fields_differ(&old, &new));
    }

    #[test]
    fn spec_attributes_need_exactly_one_kind() {
        let user = UserInfo::anonymous();
        let both = json!({"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"verb": "get"}});
        assert!(spec_attributes("SubjectAccessReview", &both, user.clone()).is_err());
        assert!(spec_attributes("SubjectAccessReview", &json!({}), user.clone()).is_err());
        let a = spec_attributes(
            "SubjectAccessReview",
            &json!({"resourceAttributes": {"verb": "delete", "group": "apps", "resource": "deployments", "namespace": "production"}}),
            user,
        )
        .unwrap();
        assert!(a.resource_request);
        assert_eq!((a.verb.as_str(), a.api_group.as_str()), ("delete", "apps"));
    }
}
