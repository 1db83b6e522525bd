//! Issue-then-verify round trips and the cases of upstream's jwt_test.go and claims_test.go
//! that apply: expired, not yet valid, wrong audience, wrong key, foreign issuer, deleted
//! or recreated ServiceAccount and bound pod, legacy tokens.

use std::collections::HashMap;

use super::*;

const NOW: i64 = 1_800_000_000;

fn authenticator() -> TokenAuthenticator {
    let key = SigningKey::from_pem(&rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    TokenAuthenticator::new(key, DEFAULT_ISSUER, vec![DEFAULT_ISSUER.into()])
}

#[derive(Default)]
struct Objects(HashMap<(&'static str, String), LiveObject>);

impl Objects {
    fn with(mut self, kind: &'static str, name: &str, uid: &str) -> Objects {
        self.0.insert(
            (kind, name.into()),
            LiveObject {
                uid: uid.into(),
                ..LiveObject::default()
            },
        );
        self
    }
}

impl ObjectLookup for Objects {
    fn lookup(
        &self,
        kind: ObjectKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<LiveObject>, String> {
        assert_eq!(namespace, "default");
        let kind = match kind {
            ObjectKind::ServiceAccount => "sa",
            ObjectKind::Pod => "pod",
            ObjectKind::Secret => "secret",
        };
        Ok(self.0.get(&(kind, name.to_owned())).cloned())
    }
}

fn spec(bound: Option<BoundObject>, audiences: &[&str], seconds: i64) -> TokenSpec {
    TokenSpec {
        namespace: "default".into(),
        service_account: Ref {
            name: "default".into(),
            uid: "sa-1".into(),
        },
        bound,
        audiences: audiences.iter().map(|a| a.to_string()).collect(),
        expiration_seconds: seconds,
    }
}

fn issue(a: &TokenAuthenticator, s: &TokenSpec, at: i64) -> String {
    a.sign(&a.claims(s, at)).unwrap()
}

#[test]
fn a_fresh_token_is_the_service_account() {
    let a = authenticator();
    let token = issue(&a, &spec(None, &[], 3600), NOW);
    let objects = Objects::default().with("sa", "default", "sa-1");
    let got = a.authenticate(&token, &[], &objects, NOW + 10).unwrap();
    assert_eq!(got.user.username, "system:serviceaccount:default:default");
    assert_eq!(got.user.uid, "sa-1");
    assert_eq!(
        got.user.groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ]
    );
    assert!(got.user.extra[EXTRA_CREDENTIAL_ID][0].starts_with("JTI="));
    assert_eq!(got.audiences, [DEFAULT_ISSUER]);
}

#[test]
fn claims_as_upstream_shapes_them() {
    let a = authenticator();
    let pod = Ref {
        name: "web".into(),
        uid: "pod-1".into(),
    };
    let c = a.claims(&spec(Some(BoundObject::Pod(pod)), &["vault"], 600), NOW);
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["iss"], DEFAULT_ISSUER);
    assert_eq!(v["sub"], "system:serviceaccount:default:default");
    assert_eq!(v["aud"], serde_json::json!(["vault"]));
    assert_eq!(v["exp"], NOW + 600);
    assert_eq!(v["iat"], NOW);
    assert_eq!(v["nbf"], NOW);
    assert_eq!(
        v["kubernetes.io"],
        serde_json::json!({"namespace": "default",
            "serviceaccount": {"name": "default", "uid": "sa-1"},
            "pod": {"name": "web", "uid": "pod-1"}})
    );
}

#[test]
fn time_is_checked_with_upstreams_leeway() {
    let a = authenticator();
    let objects = Objects::default().with("sa", "default", "sa-1");
    let token = issue(&a, &spec(None, &[], 600), NOW);
    for (at, want) in [
        (NOW + 600 + LEEWAY_SECONDS, Ok(())),
        (NOW + 600 + LEEWAY_SECONDS + 1, Err(TokenError::Expired)),
        (NOW - LEEWAY_SECONDS, Ok(())),
        (NOW - LEEWAY_SECONDS - 1, Err(TokenError::NotYetValid)),
    ] {
        let got = a.authenticate(&token, &[], &objects, at).map(|_| ());
        assert_eq!(got, want, "at {}", at - NOW);
    }
}

#[test]
fn a_token_for_another_audience_is_refused() {
    let a = authenticator();
    let objects = Objects::default().with("sa", "default", "sa-1");
    let token = issue(&a, &spec(None, &["vault"], 600), NOW);
    assert!(matches!(
        a.authenticate(&token, &[], &objects, NOW),
        Err(TokenError::Audience { .. })
    ));
    let got = a
        .authenticate(&token, &["vault".into(), "other".into()], &objects, NOW)
        .unwrap();
    assert_eq!(got.audiences, ["vault"]);
}

#[test]
fn a_token_signed_by_another_key_is_refused() {
    let ours = authenticator();
    let theirs = authenticator();
    let objects = Objects::default().with("sa", "default", "sa-1");
    let token = issue(&theirs, &spec(None, &[], 600), NOW);
    assert!(matches!(
        ours.authenticate(&token, &[], &objects, NOW),
        Err(TokenError::Invalid(_))
    ));
    // A tampered payload fails the signature too.
    let good = issue(&ours, &spec(None, &[], 600), NOW);
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "system:serviceaccount:kube-system:admin".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert!(matches!(
        ours.authenticate(&forged, &[], &objects, NOW),
        Err(TokenError::Invalid(_))
    ));
}

#[test]
fn garbage_and_foreign_tokens_are_not_ours() {
    let a = authenticator();
    let objects = Objects::default();
    for token in [
        "garbage",
        "a.b.c",
        "a.b.c.d",
        "",
        // {"iss":"https://accounts.example.com"}
        "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2FjY291bnRzLmV4YW1wbGUuY29tIn0.c2ln",
    ] {
        assert_eq!(
            a.authenticate(token, &[], &objects, NOW),
            Err(TokenError::NotOurs),
            "{token}"
        );
    }
}

#[test]
fn a_deleted_or_recreated_service_account_revokes_its_tokens() {
    let a = authenticator();
    let token = issue(&a, &spec(None, &[], 600), NOW);
    let gone = Objects::default();
    assert!(matches!(
        a.authenticate(&token, &[], &gone, NOW),
        Err(TokenError::Revoked(m)) if m == "serviceaccounts \"default\" not found"
    ));
    let recreated = Objects::default().with("sa", "default", "sa-2");
    assert!(matches!(
        a.authenticate(&token, &[], &recreated, NOW),
        Err(TokenError::Revoked(m)) if m == "service account UID (sa-2) does not match claim (sa-1)"
    ));
    let mut deleting = Objects::default().with("sa", "default", "sa-1");
    deleting
        .0
        .get_mut(&("sa", "default".into()))
        .unwrap()
        .deletion_timestamp = Some(NOW - 2 * LEEWAY_SECONDS);
    assert!(matches!(
        a.authenticate(&token, &[], &deleting, NOW),
        Err(TokenError::Revoked(_))
    ));
}

#[test]
fn a_pod_bound_token_lives_as_long_as_its_pod() {
    let a = authenticator();
    let pod = Ref {
        name: "web".into(),
        uid: "pod-1".into(),
    };
    let token = issue(&a, &spec(Some(BoundObject::Pod(pod)), &[], 600), NOW);
    let running = Objects::default()
        .with("sa", "default", "sa-1")
        .with("pod", "web", "pod-1");
    let user = a.authenticate(&token, &[], &running, NOW).unwrap().user;
    assert_eq!(user.extra[EXTRA_POD_NAME], ["web"]);
    assert_eq!(user.extra[EXTRA_POD_UID], ["pod-1"]);
    let gone = Objects::default().with("sa", "default", "sa-1");
    assert_eq!(
        a.authenticate(&token, &[], &gone, NOW),
        Err(TokenError::Revoked(
            "service account token has been invalidated".into()
        ))
    );
    let replaced = Objects::default()
        .with("sa", "default", "sa-1")
        .with("pod", "web", "pod-2");
    assert!(matches!(
        a.authenticate(&token, &[], &replaced, NOW),
        Err(TokenError::Revoked(m)) if m.starts_with("pod UID (pod-2)")
    ));
}

#[test]
fn legacy_tokens_live_in_their_secret() {
    let a = authenticator();
    let sa = Ref {
        name: "default".into(),
        uid: "sa-1".into(),
    };
    let token = a.legacy_token("default", &sa, "default-token").unwrap();
    let mut objects =
        Objects::default()
            .with("sa", "default", "sa-1")
            .with("secret", "default-token", "s-1");
    objects
        .0
        .get_mut(&("secret", "default-token".into()))
        .unwrap()
        .token = Some(token.clone());
    // No expiry, no audience: valid for whatever is asked, years later.
    let got = a
        .authenticate(&token, &[], &objects, NOW + 86_400 * 3650)
        .unwrap();
    assert_eq!(got.user.username, "system:serviceaccount:default:default");
    objects
        .0
        .get_mut(&("secret", "default-token".into()))
        .unwrap()
        .token = Some("another".into());
    assert_eq!(
        a.authenticate(&token, &[], &objects, NOW),
        Err(TokenError::Revoked(
            "token does not match server's copy".into()
        ))
    );
}

#[test]
fn service_account_usernames_split_as_upstream() {
    for (name, want) in [
        (
            "system:serviceaccount:default:builder",
            Some(("default", "builder")),
        ),
        ("system:serviceaccount:ns:a.b", Some(("ns", "a.b"))),
        ("system:serviceaccount:default", None),
        ("system:serviceaccount:default:a:b", None),
        ("system:serviceaccount::name", None),
        ("system:serviceaccount:Bad:name", None),
        ("intern", None),
    ] {
        assert_eq!(split_username(name), want, "{name}");
    }
}
