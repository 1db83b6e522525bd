//! `/healthz`, `/livez` and `/readyz`, as kube-apiserver's `healthz` package serves them:
//! named checks, each `[+]name ok` or `[-]name failed`, the verbose listing, single checks
//! at `/<endpoint>/<name>`, and `exclude=`.
//!
//! A post-start hook is reported done only when the component it names has really done its
//! first work (the CRDs are loaded and served, the system namespaces exist, ...): each
//! component marks its own hook, so the listing is what a client may rely on, not a list of
//! names.

use std::collections::BTreeSet;
use std::sync::Mutex;

use axum::http::StatusCode;

use crate::handler::Api;

/// The post-start hooks kube-apiserver reports that skiff has a component for, in
/// upstream's order.
const HOOKS: [&str; 18] = [
    "generic-apiserver-start-informers",
    "start-apiserver-admission-initializer",
    "start-kube-apiserver-admission-initializer",
    "start-apiextensions-informers",
    "start-apiextensions-controllers",
    "crd-informer-synced",
    "bootstrap-controller",
    "start-system-namespaces-controller",
    "rbac/bootstrap-roles",
    "scheduling/bootstrap-system-priority-classes",
    "start-cluster-authentication-info-controller",
    "start-kube-aggregator-informers",
    "apiservice-registration-controller",
    "apiservice-status-available-controller",
    "kube-apiserver-autoregistration",
    "apiservice-openapi-controller",
    "autoregister-completion",
    "informer-sync",
];

/// The hooks that are checks of their own rather than `poststarthook/...` (upstream's
/// naming).
const PLAIN_CHECKS: [&str; 2] = ["autoregister-completion", "informer-sync"];

/// Which endpoint is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Healthz,
    Livez,
    Readyz,
}

impl Endpoint {
    pub fn parse(segment: &str) -> Option<Endpoint> {
        match segment {
            "healthz" => Some(Endpoint::Healthz),
            "livez" => Some(Endpoint::Livez),
            "readyz" => Some(Endpoint::Readyz),
            _ => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Endpoint::Healthz => "healthz",
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
        }
    }
}

/// The hooks that have finished.
#[derive(Default)]
pub struct Health {
    done: Mutex<BTreeSet<&'static str>>,
}

impl Health {
    /// Records that the component behind `hook` has done its first work.
    pub fn mark(&self, hook: &'static str) {
        debug_assert!(HOOKS.contains(&hook), "unknown hook {hook}");
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hook);
    }

    fn is_done(&self, hook: &str) -> bool {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(hook)
    }
}

/// Every check of an endpoint with its result, in upstream's order.
fn checks(api: &Api, endpoint: Endpoint) -> Vec<(String, bool)> {
    let mut out = vec![
        ("ping".to_owned(), true),
        ("log".to_owned(), true),
        // The store answers a read: what upstream's etcd check asks of etcd.
        ("etcd".to_owned(), api.store.get("/registry/health").is_ok()),
    ];
    for hook in HOOKS {
        if hook == "informer-sync" && endpoint != Endpoint::Readyz {
            continue;
        }
        let name = if PLAIN_CHECKS.contains(&hook) {
            hook.to_owned()
        } else {
            format!("poststarthook/{hook}")
        };
        let ok = match hook {
            // A boot-sequence check, as upstream's: the built-in group-versions' APIServices
            // exist. Once it passes it stays passed, so a CRD group appearing later (the
            // Gateway API's, installed just after start) never makes a ready server unready.
            "kube-apiserver-autoregistration" | "autoregister-completion" => {
                api.health.is_done(hook) || {
                    let ok = autoregistered(api);
                    if ok {
                        api.health.mark(hook);
                    }
                    ok
                }
            }
            _ => api.health.is_done(hook),
        };
        out.push((name, ok));
    }
    out
}

/// Whether every local APIService of the built-in group-versions is stored (CRD groups come
/// and go after boot; upstream's check covers the set registered at start).
fn autoregistered(api: &Api) -> bool {
    let Some(r) = api
        .registry
        .get("apiregistration.k8s.io", "v1", "apiservices")
    else {
        return false;
    };
    crate::aggregator::register::desired(&api.registry.snapshot())
        .iter()
        .filter(|d| d.sync == crate::aggregator::register::Sync::OnStart)
        .all(|d| matches!(api.store.get(&r.key(None, Some(&d.name()))), Ok(Some(_))))
}

/// Answers `/<endpoint>[/<check>]` with `query`.
pub fn respond(
    api: &Api,
    endpoint: Endpoint,
    check: Option<&str>,
    query: &str,
) -> (StatusCode, String) {
    let all = checks(api, endpoint);
    if let Some(name) = check {
        return match all.iter().find(|(n, _)| n == name) {
            Some((_, true)) => (StatusCode::OK, "ok".into()),
            Some((n, false)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: {n} failed\n"),
            ),
            None => (StatusCode::NOT_FOUND, "404 page not found\n".into()),
        };
    }
    let mut verbose = false;
    let mut excluded: Vec<String> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "verbose" => verbose = true,
            "exclude" => excluded.push(v.into_owned()),
            _ => {}
        }
    }
    let mut body = String::new();
    let mut failed = false;
    for (name, ok) in &all {
        if excluded.iter().any(|e| e == name) {
            body.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        if *ok {
            body.push_str(&format!("[+]{name} ok\n"));
        } else {
            failed = true;
            body.push_str(&format!("[-]{name} failed: reason withheld\n"));
        }
    }
    let which = endpoint.name();
    if failed {
        body.push_str(&format!("{which} check failed\n"));
        return (StatusCode::INTERNAL_SERVER_ERROR, body);
    }
    if !verbose {
        return (StatusCode::OK, "ok".into());
    }
    body.push_str(&format!("{which} check passed\n"));
    (StatusCode::OK, body)
}
