//! End-to-end authentication with the real kubectl: who the admin, a user with a client
//! certificate from `skiff kubeconfig`, an impersonated user and a ServiceAccount token are
//! (`kubectl auth whoami`); `kubectl create token` and TokenReview; expiry and audiences in
//! the JWT; tokens that stop working when their ServiceAccount or pod goes; bad tokens get
//! 401; the issuer's OIDC discovery documents.

mod common;

use std::process::Output;

use base64::Engine;
use common::Cluster;
use serde_json::Value;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `kubectl auth whoami -o json` with `extra` arguments: the user info it reports.
fn whoami(c: &Cluster, extra: &[&str]) -> Value {
    let mut args = vec!["auth", "whoami", "-o", "json"];
    args.extend(extra);
    let review: Value = serde_json::from_str(&c.kubectl(&args)).expect("whoami prints JSON");
    assert_eq!(review["kind"], "SelfSubjectReview");
    review["status"]["userInfo"].clone()
}

fn groups(user: &Value) -> Vec<String> {
    user["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A TokenReview of `token` for `audiences` (the API's when empty), as the API answers it.
fn token_review(c: &Cluster, token: &str, audiences: &[&str]) -> Value {
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": audiences},
    });
    let out = c.kubectl_in(&["create", "-f", "-", "-o", "json"], &review.to_string());
    serde_json::from_str(&out).expect("TokenReview JSON")
}

/// The claims of a JWT, unverified.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Makes sure the `default` ServiceAccount exists (the ServiceAccount controller may not
/// have made it yet).
fn default_service_account(c: &Cluster) {
    c.kubectl_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: default\n",
    );
}

#[test]
fn whoami_as_admin_certificate_user_and_impersonated() {
    let c = Cluster::start();
    let admin = whoami(&c, &[]);
    assert_eq!(admin["username"], "kubernetes-admin");
    assert!(groups(&admin).contains(&"system:masters".to_owned()));

    // A user with a client certificate signed by the cluster CA.
    let file = c.dir.path().join("intern.kubeconfig");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args([
            "kubeconfig",
            "--user",
            "intern",
            "--group",
            "interns",
            "--group",
            "readers",
        ])
        .args(["--namespace", "staging", "--expires", "24h", "--data-dir"])
        .arg(c.dir.path())
        .arg("-o")
        .arg(&file)
        .output()
        .expect("run skiff kubeconfig");
    assert!(out.status.success(), "skiff kubeconfig: {}", stderr(&out));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let kubeconfig = std::fs::read_to_string(&file).unwrap();
    assert!(kubeconfig.contains("client-certificate-data"));
    assert!(!kubeconfig.contains("token"));
    let intern = whoami(&c, &["--kubeconfig", file.to_str().unwrap()]);
    assert_eq!(intern["username"], "intern");
    assert_eq!(
        groups(&intern),
        ["interns", "readers", "system:authenticated"]
    );
    // Its context's namespace is the one asked for.
    let ns = c.kubectl(&[
        "--kubeconfig",
        file.to_str().unwrap(),
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.contexts[0].context.namespace}",
    ]);
    assert_eq!(ns, "staging");

    // The admin may impersonate; the impersonated user is who the request acts as.
    let acting = whoami(&c, &["--as", "intern"]);
    assert_eq!(acting["username"], "intern");
    assert_eq!(groups(&acting), ["system:authenticated"]);
    let acting = whoami(
        &c,
        &["--as", "intern", "--as-group", "interns", "--as-uid", "u-1"],
    );
    assert_eq!(acting["uid"], "u-1");
    // Given groups, and system:authenticated as upstream adds it to a named user's.
    assert_eq!(groups(&acting), ["interns", "system:authenticated"]);
    let acting = whoami(&c, &["--as", "system:serviceaccount:default:builder"]);
    assert_eq!(
        groups(&acting),
        [
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ]
    );

    // The intern may not impersonate the admin: upstream's 403.
    let out = c.kubectl_output(
        &[
            "--kubeconfig",
            file.to_str().unwrap(),
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods",
            "--as",
            "kubernetes-admin",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "users \"kubernetes-admin\" is forbidden: User \"intern\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        ),
        "{}",
        stderr(&out)
    );

    // RBAC's impersonate verb lets the intern act as bob, and only bob.
    c.kubectl(&[
        "create",
        "clusterrole",
        "impersonate-bob",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=bob",
    ]);
    c.kubectl(&[
        "create",
        "clusterrolebinding",
        "intern-impersonates-bob",
        "--clusterrole=impersonate-bob",
        "--user=intern",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let bob = loop {
        let out = c.kubectl_output(
            &[
                "--kubeconfig",
                file.to_str().unwrap(),
                "auth",
                "whoami",
                "-o",
                "json",
                "--as",
                "bob",
            ],
            None,
        );
        if out.status.success() {
            break serde_json::from_slice::<Value>(&out.stdout).unwrap();
        }
        // The binding reaches the authorizer through a watch.
        assert!(std::time::Instant::now() < deadline, "{}", stderr(&out));
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(bob["status"]["userInfo"]["username"], "bob");
    let out = c.kubectl_output(
        &[
            "--kubeconfig",
            file.to_str().unwrap(),
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods",
            "--as",
            "alice",
        ],
        None,
    );
    assert!(
        stderr(&out).contains("users \"alice\" is forbidden"),
        "{}",
        stderr(&out)
    );

    // A certificate from another cluster's CA does not get through the handshake.
    let other = Cluster::start();
    let foreign = other.dir.path().join("foreign.kubeconfig");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args([
            "kubeconfig",
            "--user",
            "mallory",
            "--group",
            "system:masters",
            "--data-dir",
        ])
        .arg(other.dir.path())
        .args(["--server", &server_url(&c)])
        .arg("-o")
        .arg(&foreign)
        .output()
        .expect("run skiff kubeconfig");
    assert!(out.status.success(), "{}", stderr(&out));
    // Trusting this cluster's CA, presenting the other's certificate.
    let ca_line = |text: &str| {
        text.lines()
            .find(|l| l.contains("certificate-authority-data"))
            .unwrap()
            .to_owned()
    };
    let ours = std::fs::read_to_string(c.kubeconfig()).unwrap();
    let theirs = std::fs::read_to_string(&foreign).unwrap();
    std::fs::write(&foreign, theirs.replace(&ca_line(&theirs), &ca_line(&ours))).unwrap();
    let out = c.kubectl_output(
        &["--kubeconfig", foreign.to_str().unwrap(), "get", "pods"],
        None,
    );
    assert!(!out.status.success(), "{}", stdout(&out));
}

fn server_url(c: &Cluster) -> String {
    c.kubectl(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ])
}

#[test]
fn create_token_review_and_expiry() {
    let c = Cluster::start();
    default_service_account(&c);
    let token = c.kubectl(&["create", "token", "default"]).trim().to_owned();
    let review = token_review(&c, &token, &[]);
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    let user = &review["status"]["user"];
    assert_eq!(user["username"], "system:serviceaccount:default:default");
    assert_eq!(
        groups(user),
        [
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ]
    );
    let sa_uid = c.kubectl(&["get", "sa", "default", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(user["uid"], sa_uid.as_str());
    let c1 = claims(&token);
    assert_eq!(c1["iss"], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(c1["sub"], "system:serviceaccount:default:default");
    assert_eq!(
        c1["kubernetes.io"]["serviceaccount"]["uid"],
        sa_uid.as_str()
    );
    // The default lifetime is an hour.
    assert_eq!(
        c1["exp"].as_i64().unwrap() - c1["iat"].as_i64().unwrap(),
        3600
    );

    // The token authenticates requests as the ServiceAccount.
    let me = whoami(&c, &["--token", &token]);
    assert_eq!(me["username"], "system:serviceaccount:default:default");

    // --duration and --audience go into the JWT.
    let short = c
        .kubectl(&[
            "create",
            "token",
            "default",
            "--duration=10m",
            "--audience=vault",
        ])
        .trim()
        .to_owned();
    let c2 = claims(&short);
    assert_eq!(
        c2["exp"].as_i64().unwrap() - c2["iat"].as_i64().unwrap(),
        600
    );
    assert_eq!(c2["aud"], serde_json::json!(["vault"]));
    let review = token_review(&c, &short, &["vault"]);
    assert_eq!(review["status"]["authenticated"], true);
    assert_eq!(review["status"]["audiences"], serde_json::json!(["vault"]));
    // It is not for the API server.
    let review = token_review(&c, &short, &[]);
    assert_ne!(review["status"]["authenticated"], true);
    assert!(review["status"]["error"]
        .as_str()
        .unwrap_or_default()
        .contains("audiences"));
    let out = c.kubectl_output(&["--token", &short, "get", "pods"], None);
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));

    // Less than ten minutes is refused as upstream.
    let err = c.kubectl_err(&["create", "token", "default", "--duration=5m"], None);
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let err = c.kubectl_err(&["create", "token", "missing"], None);
    assert!(
        err.contains("serviceaccounts \"missing\" not found"),
        "{err}"
    );

    // Garbage and foreign tokens: 401, never 500, and TokenReview says no.
    for bad in [
        "garbage",
        "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2V4YW1wbGUuY29tIn0.c2ln",
    ] {
        let out = c.kubectl_output(&["--token", bad, "get", "--raw", "/api/v1/pods"], None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
        let review = token_review(&c, bad, &[]);
        assert_ne!(review["status"]["authenticated"], true);
    }
    // A forged signature is refused as well.
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[2] = "AAAA";
    let forged = parts.join(".");
    let out = c.kubectl_output(&["--token", &forged, "get", "pods"], None);
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));

    // Deleting the ServiceAccount revokes its tokens, even when one of the same name
    // comes back.
    c.kubectl(&["delete", "sa", "default"]);
    default_service_account(&c);
    let review = token_review(&c, &token, &[]);
    assert_ne!(review["status"]["authenticated"], true);
    assert!(
        review["status"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("does not match claim"),
        "{review}"
    );
    let out = c.kubectl_output(&["--token", &token, "get", "pods"], None);
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
}

#[test]
fn pod_bound_tokens_die_with_their_pod() {
    let c = Cluster::start();
    default_service_account(&c);
    c.kubectl(&["run", "web", "--image=nginx", "--restart=Never"]);
    let token = c
        .kubectl(&[
            "create",
            "token",
            "default",
            "--bound-object-kind=Pod",
            "--bound-object-name=web",
        ])
        .trim()
        .to_owned();
    let pod_uid = c.kubectl(&["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(
        claims(&token)["kubernetes.io"]["pod"]["uid"],
        pod_uid.as_str()
    );
    let review = token_review(&c, &token, &[]);
    assert_eq!(review["status"]["authenticated"], true);
    let extra = &review["status"]["user"]["extra"];
    assert_eq!(
        extra["authentication.kubernetes.io/pod-name"],
        serde_json::json!(["web"])
    );
    // A pod running as another ServiceAccount cannot be bound.
    c.kubectl_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: builder\n",
    );
    let err = c.kubectl_err(
        &[
            "create",
            "token",
            "builder",
            "--bound-object-kind=Pod",
            "--bound-object-name=web",
        ],
        None,
    );
    assert!(
        err.contains("cannot bind token for serviceaccount \"builder\" to pod running with serviceaccount \"default\""),
        "{err}"
    );
    c.kubectl(&["delete", "pod", "web", "--grace-period=0", "--force"]);
    let review = token_review(&c, &token, &[]);
    assert_ne!(review["status"]["authenticated"], true, "{review}");
}

#[test]
fn discovery_openapi_and_oidc_documents() {
    let c = Cluster::start();
    let resources = c.kubectl(&[
        "api-resources",
        "--api-group=authentication.k8s.io",
        "-o",
        "wide",
    ]);
    for kind in ["TokenReview", "SelfSubjectReview"] {
        let line = resources
            .lines()
            .find(|l| l.contains(kind))
            .unwrap_or_else(|| panic!("{kind} missing from {resources}"));
        let verbs = line.split_whitespace().nth(4);
        assert_eq!(verbs, Some("create"), "{line}");
    }
    let core: Value = serde_json::from_str(&c.kubectl(&["get", "--raw", "/api/v1"])).unwrap();
    let token = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "serviceaccounts/token")
        .expect("serviceaccounts/token in discovery");
    assert_eq!(token["kind"], "TokenRequest");
    assert_eq!(token["group"], "authentication.k8s.io");
    // Reviews are created, never read.
    let out = c.kubectl_output(
        &[
            "get",
            "--raw",
            "/apis/authentication.k8s.io/v1/tokenreviews",
        ],
        None,
    );
    assert!(
        stderr(&out).contains("MethodNotAllowed"),
        "{}",
        stderr(&out)
    );

    let config: Value =
        serde_json::from_str(&c.kubectl(&["get", "--raw", "/.well-known/openid-configuration"]))
            .unwrap();
    assert_eq!(
        config["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        config["jwks_uri"],
        "https://kubernetes.default.svc.cluster.local/openid/v1/jwks"
    );
    let jwks: Value =
        serde_json::from_str(&c.kubectl(&["get", "--raw", "/openid/v1/jwks"])).unwrap();
    default_service_account(&c);
    let token = c.kubectl(&["create", "token", "default"]).trim().to_owned();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    // The key is private to the data dir.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(c.dir.path().join("pki/sa.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn legacy_secret_tokens_when_asked_for() {
    let c = Cluster::start();
    default_service_account(&c);
    c.kubectl_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: default-token\n  annotations:\n    kubernetes.io/service-account.name: default\ntype: kubernetes.io/service-account-token\n",
    );
    let secret = c.json(&["get", "secret", "default-token"]);
    let sa_uid = c.kubectl(&["get", "sa", "default", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(
        secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
        sa_uid.as_str()
    );
    let decode = |field: &str| {
        let b = base64::engine::general_purpose::STANDARD
            .decode(secret["data"][field].as_str().expect(field))
            .unwrap();
        String::from_utf8(b).unwrap()
    };
    assert_eq!(decode("namespace"), "default");
    assert!(decode("ca.crt").contains("BEGIN CERTIFICATE"));
    let token = decode("token");
    let c1 = claims(&token);
    assert_eq!(c1["iss"], "kubernetes/serviceaccount");
    assert!(c1.get("exp").is_none());
    let review = token_review(&c, &token, &[]);
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(
        review["status"]["user"]["username"],
        "system:serviceaccount:default:default"
    );
    // A token Secret must name its ServiceAccount.
    let err = c.kubectl_err(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Secret\nmetadata:\n  name: orphan\ntype: kubernetes.io/service-account-token\n"),
    );
    assert!(
        err.contains("metadata.annotations[kubernetes.io/service-account.name]: Required value"),
        "{err}"
    );
    // Deleting the Secret revokes the token.
    c.kubectl(&["delete", "secret", "default-token"]);
    let out = c.kubectl_output(&["--token", &token, "get", "pods"], None);
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
}
