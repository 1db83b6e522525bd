//! What authorizing one request costs the API server, the request path's two ways in one
//! run: the full authorizer (owned `RequestInfo` and `Attributes`, the user cloned, the
//! `allowed by` reason formatted), which denials and reviews still take, and the hot path
//! (`RequestRef` borrowed from the request, `Policy::allows` on the subject index).
//!
//! The policy is bench/api-load's `--rolebindings 1000`: the bootstrap policy, 1,000
//! RoleBindings for other users in the namespace, and the user's own Role and binding, the
//! last one created; the request is a get of one ConfigMap by that user.
//!
//! `cargo run --release -p skiff-rbac --example authorize_cost [iterations]`

use std::hint::black_box;
use std::time::Instant;

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use skiff_apimachinery::user::UserInfo;
use skiff_rbac::attributes::{Attributes, RequestInfo, RequestRef};
use skiff_rbac::{bootstrap, Policy};

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..ObjectMeta::default()
    }
}

fn binding(ns: &str, name: &str, user: &str, role: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(ns, name),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: user.into(),
            namespace: None,
        }]),
    }
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let role = Role {
        metadata: meta("bench", "configmaps"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: ["get", "list", "create"].map(String::from).to_vec(),
            ..PolicyRule::default()
        }]),
    };
    let mut bindings: Vec<RoleBinding> = (0..1000)
        .map(|i| {
            binding(
                "bench",
                &format!("other-{i}"),
                &format!("user-{i}"),
                "configmaps",
            )
        })
        .collect();
    bindings.push(binding("bench", "bench-user", "bench-user", "configmaps"));
    let policy = Policy::from_objects(
        vec![role],
        bindings,
        bootstrap::cluster_roles(),
        bootstrap::cluster_role_bindings(),
    );
    let user = UserInfo {
        username: "bench-user".into(),
        groups: vec!["system:authenticated".into()],
        ..UserInfo::default()
    };
    let path = "/api/v1/namespaces/bench/configmaps/cm-123";

    let full = || {
        let info = RequestInfo::new("GET", black_box(path), None);
        let attrs = Attributes::new(user.clone(), &info);
        policy.authorize(&attrs).allowed
    };
    let hot = || {
        let request = RequestRef::parse("GET", black_box(path), None);
        policy.allows(&request.attributes(&user))
    };
    assert!(full() && hot(), "the user must be allowed");
    for (name, f) in [
        ("full authorizer", &full as &dyn Fn() -> bool),
        ("hot path", &hot),
    ] {
        // Alternate rounds, best of three, as bench/api-load does.
        let mut best = f64::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            for _ in 0..n {
                black_box(f());
            }
            best = best.min(started.elapsed().as_nanos() as f64 / f64::from(n));
        }
        println!("{name}: {best:.0} ns per request");
    }
}
