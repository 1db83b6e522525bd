//! The ServiceAccount controller, as upstream's `serviceaccount-controller`: every active
//! namespace has a ServiceAccount named `default`, made again when it is deleted, so pods
//! that name no ServiceAccount (admission gives them `default`) can always be admitted.
//!
//! Keys are namespaces; a change of a `default` ServiceAccount requeues its namespace, so a
//! deletion is seen as the account's absence in the cache.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::runtime::reflector::Store;
use skiff_reconcile::{Harness, Metrics, ObjectKey, Outcome};

use crate::Error;

/// The ServiceAccounts every namespace gets (upstream's `serviceAccountsToEnsure`).
pub const ENSURED: &[&str] = &["default"];

/// Whether a namespace takes new objects: upstream syncs only `Active` namespaces (a
/// namespace without a phase yet is treated as active, as the API server defaults it).
pub fn is_active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Active")
}

/// The ServiceAccounts to create in a namespace, given which of [`ENSURED`] exist.
pub fn plan(active: bool, exists: impl Fn(&str) -> bool) -> Vec<&'static str> {
    if !active {
        return Vec::new();
    }
    ENSURED.iter().copied().filter(|n| !exists(n)).collect()
}

/// Whether a create failed only because the namespace is gone or being deleted: nothing to
/// retry (upstream ignores both).
pub(crate) fn namespace_going(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404
        || (s.code == 403 && s.message.contains("because it is being terminated")))
}

struct Ctx {
    client: kube::Client,
    accounts: Store<ServiceAccount>,
}

/// Runs the controller until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let mut controller = Harness::new("serviceaccount-controller", client.clone())
        .metrics(&metrics)
        .watch::<Namespace>();
    let ctx = Arc::new(Ctx {
        accounts: controller.cache(),
        client,
    });
    controller
        .watches(|sa: &ServiceAccount| {
            let ensured = sa
                .metadata
                .name
                .as_deref()
                .is_some_and(|n| ENSURED.contains(&n));
            sa.metadata
                .namespace
                .as_deref()
                .filter(|_| ensured)
                .map(ObjectKey::named)
        })
        .run(reconcile, ctx)
        .await;
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let name = ns.metadata.name.as_deref().ok_or(Error::Missing("name"))?;
    let exists = |sa: &str| {
        ctx.accounts
            .get(&ObjectKey::new(Some(name), sa).to_ref())
            .is_some()
    };
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), name);
    for sa in plan(is_active(&ns), exists) {
        let account = ServiceAccount {
            metadata: kube::api::ObjectMeta {
                name: Some(sa.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &account).await {
            Ok(_) => tracing::info!(namespace = %name, serviceaccount = %sa, "created"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) if namespace_going(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn namespace(v: serde_json::Value) -> Namespace {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn default_is_made_in_active_namespaces_only() {
        let cases = [
            (
                "active, none yet",
                json!({"status": {"phase": "Active"}}),
                false,
                vec!["default"],
            ),
            (
                "active, present",
                json!({"status": {"phase": "Active"}}),
                true,
                vec![],
            ),
            ("no phase yet", json!({}), false, vec!["default"]),
            (
                "terminating",
                json!({"status": {"phase": "Terminating"}}),
                false,
                vec![],
            ),
            (
                "being deleted",
                json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
                       "status": {"phase": "Active"}}),
                false,
                vec![],
            ),
        ];
        for (what, ns, present, want) in cases {
            let ns = namespace(ns);
            assert_eq!(plan(is_active(&ns), |_| present), want, "{what}");
        }
    }

    #[test]
    fn only_a_gone_or_terminating_namespace_ends_a_failed_create() {
        let err = |code: u16, message: &str| {
            kube::Error::Api(
                serde_json::from_value(json!({"status": "Failure", "message": message,
                    "reason": "", "code": code}))
                .unwrap(),
            )
        };
        assert!(namespace_going(&err(404, "namespaces \"x\" not found")));
        assert!(namespace_going(&err(
            403,
            "serviceaccounts \"default\" is forbidden: unable to create new content in namespace x because it is being terminated"
        )));
        assert!(!namespace_going(&err(403, "forbidden by RBAC")));
        assert!(!namespace_going(&err(500, "internal")));
    }
}
