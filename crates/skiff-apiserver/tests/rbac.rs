//! RBAC through the REST layer: requests of users other than the admin (as a verified
//! client certificate names them) are authorized against the bootstrap policy and the
//! roles and bindings the admin creates; denials are upstream's 403 Status; writes of roles
//! and bindings cannot grant more than their writer holds.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_apimachinery::user::UserInfo;
use skiff_apiserver::http::PeerIdentity;
use tower::ServiceExt;

use common::call;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    groups.push("system:authenticated".into());
    UserInfo {
        username: name.into(),
        groups,
        ..UserInfo::default()
    }
}

/// A request as `who` (anonymous when `None`).
async fn call_as(
    app: &axum::Router,
    who: Option<&UserInfo>,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    req.extensions_mut()
        .insert(PeerIdentity(who.map(|u| Arc::new(u.clone()))));
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// Waits until the RBAC index (kept by a watch) answers `verb` on `resource` in `ns` for
/// `who` as `allowed`: what the admin just wrote is seen.
async fn wait_for(
    app: &axum::Router,
    who: &UserInfo,
    verb: &str,
    group: &str,
    resource: &str,
    ns: &str,
    allowed: bool,
) {
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": who.username, "groups": who.groups,
                 "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "namespace": ns}}});
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, body) = call(
            app,
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            Some(review.clone()),
        )
        .await;
        if body["status"]["allowed"] == allowed {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "RBAC never answered {allowed} for {verb} {resource}: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

async fn admin_create(app: &axum::Router, uri: &str, body: Value) {
    let (status, body) = call(app, "POST", uri, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn namespaces(app: &axum::Router, names: &[&str]) {
    for ns in names {
        admin_create(
            app,
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await;
    }
}

/// The staging Role of the issue: interns may get, list and create deployments and pods.
async fn intern_role(app: &axum::Router) {
    namespaces(app, &["staging", "production"]).await;
    admin_create(
        app,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/staging/roles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "dev"},
               "rules": [{"apiGroups": ["", "apps"], "resources": ["deployments", "pods"],
                          "verbs": ["get", "list", "create"]}]}),
    )
    .await;
    admin_create(
        app,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/staging/rolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "interns"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "dev"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "interns"}]}),
    )
    .await;
    wait_for(
        app,
        &user("intern", &["interns"]),
        "create",
        "apps",
        "deployments",
        "staging",
        true,
    )
    .await;
}

#[tokio::test]
async fn anonymous_gets_health_and_version_only() {
    let app = common::app_with_background().await;
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let (status, _) = call_as(&app, None, "GET", path, None).await;
        assert_ne!(status, StatusCode::FORBIDDEN, "{path}");
    }
    // Discovery is for authenticated users only, as upstream since 1.14.
    let (status, body) = call_as(&app, None, "GET", "/api", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "forbidden: User \"system:anonymous\" cannot get path \"/api\"",
               "reason": "Forbidden", "details": {}, "code": 403})
    );
    let someone = user("someone", &[]);
    let (status, _) = call_as(&app, Some(&someone), "GET", "/apis", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call_as(&app, None, "GET", "/api/v1/namespaces/default/pods", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
}

#[tokio::test]
async fn the_intern_works_in_staging_and_cannot_delete_production() {
    let app = common::app_with_background().await;
    intern_role(&app).await;
    let intern = user("intern", &["interns"]);
    let (status, body) = call_as(
        &app,
        Some(&intern),
        "GET",
        "/apis/apps/v1/namespaces/staging/deployments",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let (status, body) = call_as(
        &app,
        Some(&intern),
        "POST",
        "/apis/apps/v1/namespaces/staging/deployments",
        Some(deployment.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    admin_create(
        &app,
        "/apis/apps/v1/namespaces/production/deployments",
        deployment,
    )
    .await;
    let (status, body) = call_as(
        &app,
        Some(&intern),
        "DELETE",
        "/apis/apps/v1/namespaces/production/deployments/x",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "deployments.apps \"x\" is forbidden: User \"intern\" cannot delete resource \"deployments\" in API group \"apps\" in the namespace \"production\"",
               "reason": "Forbidden",
               "details": {"name": "x", "group": "apps", "kind": "deployments"},
               "code": 403})
    );
    // Nothing was deleted.
    let (status, _) = call(
        &app,
        "GET",
        "/apis/apps/v1/namespaces/production/deployments/x",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The same user without the group has nothing in staging.
    let loner = user("intern", &[]);
    let (status, _) = call_as(
        &app,
        Some(&loner),
        "GET",
        "/api/v1/namespaces/staging/pods",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_binding_to_a_missing_role_grants_nothing() {
    let app = common::app_with_background().await;
    namespaces(&app, &["staging"]).await;
    admin_create(
        &app,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/staging/rolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "dangling"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "missing"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "intern"}]}),
    )
    .await;
    let intern = user("intern", &[]);
    // The binding is indexed once its resolution error shows in the denial.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = call_as(
            &app,
            Some(&intern),
            "GET",
            "/api/v1/namespaces/staging/pods",
            None,
        )
        .await;
        let indexed = body["message"].as_str().is_some_and(|m| m.contains("RBAC"));
        if indexed || std::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "pods is forbidden: User \"intern\" cannot list resource \"pods\" in API group \"\" in the namespace \"staging\": RBAC: role.rbac.authorization.k8s.io \"missing\" not found"
    );
}

#[tokio::test]
async fn role_writers_cannot_grant_what_they_do_not_hold() {
    let app = common::app_with_background().await;
    namespaces(&app, &["dev"]).await;
    admin_create(
        &app,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/roles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "role-maker"},
               "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create"]}]}),
    )
    .await;
    admin_create(
        &app,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/rolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "maker"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "role-maker"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "maker"}]}),
    )
    .await;
    let maker = user("maker", &[]);
    wait_for(
        &app,
        &maker,
        "create",
        "rbac.authorization.k8s.io",
        "roles",
        "dev",
        true,
    )
    .await;
    let role = |name: &str, rules: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": name}, "rules": rules})
    };
    let (status, body) = call_as(
        &app,
        Some(&maker),
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/roles",
        Some(role(
            "deleter",
            json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["delete"]}]),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "roles.rbac.authorization.k8s.io \"deleter\" is forbidden: user \"maker\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"delete\"]}"
    );
    assert_eq!(
        body["details"],
        json!({"name": "deleter", "group": "rbac.authorization.k8s.io", "kind": "roles"})
    );
    let (status, _) = call(
        &app,
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/roles/deleter",
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a refused role is not stored"
    );
    // What it holds, it may hand on.
    let (status, body) = call_as(
        &app,
        Some(&maker),
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/roles",
        Some(role("copy", json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create"]}]))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Binding needs the bound role's rules, or `bind`: it has neither for cluster-admin,
    // and no right to create bindings at all.
    let (status, body) = call_as(
        &app,
        Some(&maker),
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/rolebindings",
        Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "up"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "maker"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn access_reviews_answer_for_any_subject_and_self() {
    let app = common::app_with_background().await;
    intern_role(&app).await;
    let sar = |verb: &str, ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "spec": {"user": "intern", "groups": ["interns"],
                        "resourceAttributes": {"verb": verb, "group": "apps", "resource": "deployments", "namespace": ns}}})
    };
    let uri = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let (status, body) = call(&app, "POST", uri, Some(sar("create", "staging"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["status"]["allowed"], true);
    assert_eq!(
        body["status"]["reason"],
        "RBAC: allowed by RoleBinding \"interns/staging\" of Role \"dev\" to Group \"interns\""
    );
    let (_, body) = call(&app, "POST", uri, Some(sar("delete", "production"))).await;
    assert_eq!(body["status"], json!({"allowed": false}));
    // Neither user nor groups: invalid.
    let (status, _) = call(
        &app,
        "POST",
        uri,
        Some(json!({"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Anybody authenticated may ask about themselves (system:basic-user) but not others.
    let intern = user("intern", &["interns"]);
    let (status, body) = call_as(
        &app,
        Some(&intern),
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        Some(
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                    "spec": {"namespace": "staging"}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let rules = body["status"]["resourceRules"].as_array().unwrap();
    assert!(rules.contains(&json!({"verbs": ["get", "list", "create"], "apiGroups": ["", "apps"], "resources": ["deployments", "pods"]})), "{rules:?}");
    assert_eq!(body["status"]["incomplete"], false);
    let (status, _) = call_as(
        &app,
        Some(&intern),
        "POST",
        uri,
        Some(sar("get", "staging")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// A CSR for a fresh key with subject `CN=<cn>, O=<org>`.
fn csr_with_org(name: &str, cn: &str, org: &str) -> Value {
    use base64::Engine;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, org);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
           "metadata": {"name": name},
           "spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem),
                    "signerName": "kubernetes.io/kube-apiserver-client",
                    "usages": ["client auth"]}})
}

/// Upstream's certificate admission plugins: approving needs `approve` on the signer (or
/// its domain's `*`) besides `update` on the approval subresource, and nobody may ask the
/// client signer for a `system:masters` certificate.
#[tokio::test]
async fn approving_a_csr_needs_approve_on_its_signer() {
    const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    let app = common::app_with_background().await;
    let (code, body) = call(
        &app,
        "POST",
        CSRS,
        Some(csr_with_org("masters", "x", "system:masters")),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "certificatesigningrequests.certificates.k8s.io \"masters\" is forbidden: use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
    );
    let (code, created) = call(&app, "POST", CSRS, Some(csr_with_org("bob", "bob", "dev"))).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");

    admin_create(
        &app,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "csr-approver"},
               "rules": [{"apiGroups": ["certificates.k8s.io"],
                          "resources": ["certificatesigningrequests/approval", "certificatesigningrequests/status"],
                          "verbs": ["update"]}]}),
    )
    .await;
    admin_create(
        &app,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "approvers"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "csr-approver"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "approvers"}]}),
    )
    .await;
    let approver = user("ann", &["approvers"]);
    let mut approve = created.clone();
    approve["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}]});
    let uri = format!("{CSRS}/bob/approval");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (code, body) = loop {
        let (code, body) = call_as(&app, Some(&approver), "PUT", &uri, Some(approve.clone())).await;
        // Until the binding is indexed, RBAC itself refuses the subresource.
        if !body["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot update")
        {
            break (code, body);
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "certificatesigningrequests.certificates.k8s.io \"bob\" is forbidden: user not permitted to approve requests with signerName \"kubernetes.io/kube-apiserver-client\""
    );

    admin_create(
        &app,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "kubernetes-signers"},
               "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
                          "resourceNames": ["kubernetes.io/*"], "verbs": ["approve"]}]}),
    )
    .await;
    admin_create(
        &app,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "signer-approvers"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubernetes-signers"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "approvers"}]}),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (code, body) = call_as(&app, Some(&approver), "PUT", &uri, Some(approve.clone())).await;
        if code == StatusCode::OK {
            assert_eq!(body["status"]["conditions"][0]["type"], "Approved");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // Approving is not signing: a certificate needs `sign` on the signer.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["bob".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut issued = approve.clone();
    issued["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    issued["status"]["certificate"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        cert.pem()
    ));
    let (code, body) = call_as(
        &app,
        Some(&approver),
        "PUT",
        &format!("{CSRS}/bob/status"),
        Some(issued),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "certificatesigningrequests.certificates.k8s.io \"bob\" is forbidden: user not permitted to sign requests with signerName \"kubernetes.io/kube-apiserver-client\""
    );
}
