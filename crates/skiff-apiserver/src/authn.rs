//! Authentication in the API server: ServiceAccount bearer tokens verified against the
//! store, impersonation, and the `authentication.k8s.io` APIs — TokenReview,
//! SelfSubjectReview (`kubectl auth whoami`), the ServiceAccount `token` subresource
//! (TokenRequest, `kubectl create token`) — and the OIDC discovery documents of the token
//! issuer. The decisions themselves are `skiff-auth`'s.

use std::path::Path;
use std::sync::OnceLock;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use skiff_apimachinery::user::UserInfo;
use skiff_auth::impersonation::{self, Impersonation};
use skiff_auth::serviceaccount::{
    BoundObject, LiveObject, ObjectKind, Ref, TokenAuthenticator, TokenError, TokenSpec,
    DEFAULT_ISSUER,
};
use skiff_auth::{ObjectLookup, SigningKey};

use crate::authz::Impersonated;
use crate::error::{ApiError, Cause, Result};
use crate::handler::Api;
use crate::http::json_response;
use crate::request::{Params, Target};

const GROUP: &str = "authentication.k8s.io";
/// TokenRequest's default and bounds (upstream's defaulting and `ValidateTokenRequest`).
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// The ServiceAccount token issuer, once the server has its signing key.
#[derive(Default)]
pub struct Authn {
    tokens: OnceLock<TokenAuthenticator>,
    /// The cluster CA (PEM), which legacy token Secrets carry as `ca.crt`.
    ca_pem: OnceLock<String>,
    /// The in-memory tokens of skiff's own components (decision 0036).
    pub components: skiff_auth::components::StaticTokens,
    /// ServiceAccount tokens authenticated in the last 10 s (upstream's token cache).
    cache: skiff_auth::cache::TokenCache,
}

impl Authn {
    /// Forgets cached token authentications (see `Api::revoke_cached_tokens`).
    pub fn forget_tokens(&self) {
        self.cache.clear();
    }

    /// Loads (or first generates, mode 0600) the signing key at `key_path`, for tokens of
    /// upstream's default issuer whose API audience is the issuer; `ca_pem` is the cluster
    /// CA that token Secrets hand out.
    pub fn load_signing_key(
        &self,
        key_path: &Path,
        ca_pem: &str,
    ) -> std::result::Result<(), String> {
        let key = SigningKey::load_or_create(key_path).map_err(|e| e.to_string())?;
        let tokens = TokenAuthenticator::new(key, DEFAULT_ISSUER, vec![DEFAULT_ISSUER.into()]);
        let _ = self.ca_pem.set(ca_pem.to_owned());
        self.tokens
            .set(tokens)
            .map_err(|_| "the ServiceAccount signing key is already loaded".to_owned())
    }

    pub fn tokens(&self) -> Option<&TokenAuthenticator> {
        self.tokens.get()
    }
}

/// Reads the objects a token names from the store.
struct StoreLookup<'a>(&'a Api);

impl ObjectLookup for StoreLookup<'_> {
    fn lookup(
        &self,
        kind: ObjectKind,
        namespace: &str,
        name: &str,
    ) -> std::result::Result<Option<LiveObject>, String> {
        let plural = match kind {
            ObjectKind::ServiceAccount => "serviceaccounts",
            ObjectKind::Pod => "pods",
            ObjectKind::Secret => "secrets",
        };
        let target =
            core_target(self.0, plural, namespace, Some(name)).map_err(|e| e.to_string())?;
        let obj = match self.0.get(&target) {
            Ok(obj) => obj,
            Err(ApiError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let meta = &obj["metadata"];
        let token = obj["data"]["token"].as_str().and_then(|t| {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
            String::from_utf8(bytes).ok()
        });
        Ok(Some(LiveObject {
            uid: meta["uid"].as_str().unwrap_or_default().to_owned(),
            deletion_timestamp: meta["deletionTimestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp()),
            token,
        }))
    }
}

fn core_target(api: &Api, plural: &str, namespace: &str, name: Option<&str>) -> Result<Target> {
    Ok(Target {
        resource: api
            .registry
            .get("", "v1", plural)
            .ok_or(ApiError::NoRoute)?,
        namespace: Some(namespace.to_owned()),
        name: name.map(str::to_owned),
        subresource: None,
    })
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Who a bootstrap token (`<id>.<secret>`) stands for, by its Secret in `kube-system`
/// (upstream's bootstrap token authenticator); `None` when `token` is no bootstrap token.
fn bootstrap_user(api: &Api, token: &str) -> Option<std::result::Result<UserInfo, String>> {
    use skiff_auth::bootstrap;
    let parsed = bootstrap::parse(token)?;
    let secret = (|| {
        let target = core_target(
            api,
            "secrets",
            bootstrap::NAMESPACE,
            Some(&parsed.secret_name()),
        )
        .map_err(|e| e.to_string())?;
        match api.get(&target) {
            Ok(obj) => Ok(obj),
            Err(ApiError::NotFound { .. }) => Err(format!(
                "no bootstrap token secret {}",
                parsed.secret_name()
            )),
            Err(e) => Err(e.to_string()),
        }
    })();
    let secret = match secret {
        Ok(s) => s,
        Err(e) => return Some(Err(e)),
    };
    let data: std::collections::BTreeMap<String, String> = secret["data"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str()?)
                .ok()?;
            Some((k.clone(), String::from_utf8(bytes).ok()?))
        })
        .collect();
    let view = bootstrap::Secret {
        type_: secret["type"].as_str().unwrap_or_default(),
        deleting: !secret["metadata"]["deletionTimestamp"].is_null(),
        data: &data,
    };
    Some(bootstrap::authenticate(parsed, view, now()).map_err(|e| e.to_string()))
}

/// Who a bearer token other than the admin's stands for: a component's in-memory token, a
/// bootstrap token, or a ServiceAccount token of this issuer for the API's audiences
/// (remembered 10 s, as upstream caches token authentication); anything else is a 401.
pub fn authenticate_token(api: &Api, token: &str) -> Result<UserInfo> {
    if let Some(user) = api.authn.components.lookup(token) {
        return Ok(user);
    }
    let at = std::time::Instant::now();
    if let Some(user) = api.authn.cache.get(token, at) {
        return Ok(user);
    }
    if let Some(result) = bootstrap_user(api, token) {
        return match result {
            Ok(user) => {
                api.authn.cache.put(token, &user, at);
                Ok(user)
            }
            Err(e) => {
                tracing::debug!(error = %e, "bootstrap token refused");
                Err(ApiError::Unauthorized)
            }
        };
    }
    let tokens = api.authn.tokens().ok_or(ApiError::Unauthorized)?;
    match tokens.authenticate(token, &[], &StoreLookup(api), now()) {
        Ok(a) => {
            api.authn.cache.put(token, &a.user, at);
            Ok(a.user)
        }
        Err(e) => {
            tracing::debug!(error = %e, "bearer token refused");
            Err(ApiError::Unauthorized)
        }
    }
}

/// The identity a request acts as: `user`, or whom its `Impersonate-*` headers name when
/// RBAC lets `user` `impersonate` every part of it (upstream's impersonation filter). A
/// refusal is upstream's 403: `users "intern" is forbidden: User "bob" cannot impersonate
/// resource "users" in API group "" at the cluster scope`.
pub fn impersonate(api: &Api, user: UserInfo, headers: &HeaderMap) -> Result<UserInfo> {
    // Upstream answers a malformed request with a 500; it is the client's error, so 400.
    let requested =
        impersonation::requested(headers).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if requested.is_empty() {
        return Ok(user);
    }
    for part in &requested.parts {
        api.rbac.impersonate(&user, &impersonated(part))?;
    }
    let acting = requested.user();
    tracing::debug!(user = %user.username, as_user = %acting.username, "impersonating");
    Ok(acting)
}

/// One impersonated part as the authorizer's check names it.
fn impersonated(part: &Impersonation) -> Impersonated<'_> {
    match part.resource {
        "serviceaccounts" => Impersonated::ServiceAccount {
            namespace: part.namespace.as_deref().unwrap_or_default(),
            name: &part.name,
        },
        "groups" => Impersonated::Group(&part.name),
        "uids" => Impersonated::Uid(&part.name),
        "userextras" => Impersonated::Extra {
            key: part.subresource.as_deref().unwrap_or_default(),
            value: &part.name,
        },
        _ => Impersonated::User(&part.name),
    }
}

/// The `authentication.k8s.io` create-only kinds, by URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    Token,
    /// SelfSubjectReview, of `v1` (upstream 1.33 serves no other version by default).
    SelfSubject(&'static str),
}

impl Review {
    pub fn parse(path: &str) -> Option<Review> {
        match path.trim_end_matches('/') {
            "/apis/authentication.k8s.io/v1/tokenreviews" => Some(Review::Token),
            "/apis/authentication.k8s.io/v1/selfsubjectreviews" => Some(Review::SelfSubject("v1")),
            _ => None,
        }
    }
}

/// Answers a TokenReview or SelfSubjectReview POSTed by `user`: 201 with the object and its
/// status, as upstream's registries (nothing is stored).
pub fn review(
    api: &Api,
    admin_tokens: &[String],
    user: &UserInfo,
    review: Review,
    body: &Value,
) -> Result<Response> {
    let (version, kind) = match review {
        Review::Token => ("v1", "TokenReview"),
        Review::SelfSubject(v) => (v, "SelfSubjectReview"),
    };
    check_kind(body, version, kind)?;
    if body["metadata"]["namespace"]
        .as_str()
        .is_some_and(|ns| !ns.is_empty())
    {
        return Err(ApiError::BadRequest(
            "namespace is not allowed on this type".into(),
        ));
    }
    let mut out = json!({
        "kind": kind,
        "apiVersion": format!("{GROUP}/{version}"),
        "metadata": {"creationTimestamp": null},
    });
    if let Some(name) = body["metadata"]["name"].as_str() {
        out["metadata"]["name"] = json!(name);
    }
    match review {
        Review::SelfSubject(_) => {
            out["status"] = json!({"userInfo": user});
        }
        Review::Token => {
            let spec = &body["spec"];
            let token = spec["token"].as_str().unwrap_or_default();
            if token.is_empty() {
                return Err(ApiError::BadRequest("spec.token is required".into()));
            }
            let audiences = string_list(&spec["audiences"]);
            out["spec"] = spec.clone();
            out["status"] = token_review_status(api, admin_tokens, token, &audiences);
        }
    }
    Ok(json_response(StatusCode::CREATED, &out))
}

/// `status` of a TokenReview: the admin token, then ServiceAccount tokens, as the request
/// authenticators would see the token.
fn token_review_status(
    api: &Api,
    admin_tokens: &[String],
    token: &str,
    audiences: &[String],
) -> Value {
    // Static tokens (the admin's, the components') are good for every API audience.
    let user = if admin_tokens.iter().any(|t| t == token) {
        Some(UserInfo::cluster_admin())
    } else if let Some(bootstrap) = bootstrap_user(api, token) {
        // Bootstrap tokens are good for every API audience too.
        match bootstrap {
            Ok(user) => Some(user),
            Err(_) => return json!({"user": {}}),
        }
    } else {
        api.authn.components.lookup(token)
    };
    if let Some(user) = user {
        let auds = if audiences.is_empty() {
            api.authn
                .tokens()
                .map(|t| t.api_audiences().to_vec())
                .unwrap_or_default()
        } else {
            audiences.to_vec()
        };
        return json!({"authenticated": true, "user": user, "audiences": auds});
    }
    let Some(tokens) = api.authn.tokens() else {
        return json!({"user": {}});
    };
    match tokens.authenticate(token, audiences, &StoreLookup(api), now()) {
        Ok(a) => json!({"authenticated": true, "user": a.user, "audiences": a.audiences}),
        Err(TokenError::NotOurs) => json!({"user": {}}),
        Err(e) => json!({"user": {}, "error": format!("[invalid bearer token, {e}]")}),
    }
}

fn check_kind(body: &Value, version: &str, kind: &str) -> Result<()> {
    let want = format!("{GROUP}/{version}");
    let api_version = body["apiVersion"].as_str().unwrap_or(&want);
    let got_kind = body["kind"].as_str().unwrap_or(kind);
    if !body.is_object() || api_version != want || got_kind != kind {
        return Err(ApiError::BadRequest(format!(
            "the body of the request was not a {kind} of {want}"
        )));
    }
    Ok(())
}

fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `POST .../serviceaccounts/<name>/token`: a TokenRequest, answered with a signed bound
/// token, as upstream's TokenREST: the ServiceAccount must exist; a bound Pod must run
/// as it; a bound object's uid, when given, must match.
pub fn token_request(api: &Api, t: &Target, p: &Params, body: &Value) -> Result<Response> {
    let name = t.name()?.to_owned();
    let namespace = t.namespace.clone().unwrap_or_default();
    check_kind(body, "v1", "TokenRequest")?;
    // NodeRestriction: a node's tokens are bound to its own pods.
    let nr = crate::plugins::noderestriction::Request {
        group: "",
        resource: "serviceaccounts",
        subresource: "token",
        operation: crate::webhook::Operation::Create,
        namespace: &namespace,
        name: &name,
        object: Some(body),
        old: None,
    };
    crate::plugins::noderestriction::check(api, &p.user, &t.resource, &nr)?;
    let invalid = |field: &str, message: String| {
        ApiError::invalid_kind(
            GROUP,
            "TokenRequest",
            &name,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message,
                field: field.into(),
            }],
        )
    };
    let meta = &body["metadata"];
    if let Some(n) = meta["name"]
        .as_str()
        .filter(|n| !n.is_empty() && *n != name)
    {
        return Err(invalid(
            "metadata.name",
            format!("Invalid value: {n:?}: must match the service account name if specified"),
        ));
    }
    if let Some(ns) = meta["namespace"]
        .as_str()
        .filter(|ns| !ns.is_empty() && *ns != namespace)
    {
        return Err(invalid(
            "metadata.namespace",
            format!("Invalid value: {ns:?}: must match the service account namespace if specified"),
        ));
    }
    let spec = &body["spec"];
    let seconds = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        v => v.as_i64().ok_or_else(|| {
            ApiError::BadRequest("spec.expirationSeconds must be an integer".into())
        })?,
    };
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            "spec.expirationSeconds",
            format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes"),
        ));
    }
    if seconds > MAX_EXPIRATION_SECONDS {
        return Err(invalid(
            "spec.expirationSeconds",
            format!(
                "Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
            ),
        ));
    }
    let tokens = api.authn.tokens().ok_or_else(|| {
        ApiError::ServiceUnavailable("the ServiceAccount token issuer is not ready".into())
    })?;
    let account = api.get(&core_target(
        api,
        "serviceaccounts",
        &namespace,
        Some(&name),
    )?)?;
    let mut bound = None;
    let bound_ref = &spec["boundObjectRef"];
    if bound_ref.is_object() {
        let kind = bound_ref["kind"].as_str().unwrap_or_default();
        let api_version = bound_ref["apiVersion"].as_str().unwrap_or_default();
        let object_name = bound_ref["name"].as_str().unwrap_or_default();
        let plural = match (api_version, kind) {
            ("v1", "Pod") => "pods",
            ("v1", "Secret") => "secrets",
            _ => {
                let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
                return Err(ApiError::BadRequest(format!(
                    "cannot bind token to object of type {}, Kind={kind}",
                    if group.is_empty() {
                        version.to_owned()
                    } else {
                        format!("{group}/{version}")
                    }
                )));
            }
        };
        let object = api.get(&core_target(api, plural, &namespace, Some(object_name))?)?;
        if kind == "Pod" {
            let runs_as = object["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("default");
            if runs_as != name {
                return Err(ApiError::BadRequest(format!(
                    "cannot bind token for serviceaccount {name:?} to pod running with serviceaccount {runs_as:?}"
                )));
            }
        }
        let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
        if let Some(want) = bound_ref["uid"].as_str().filter(|u| !u.is_empty()) {
            if want != uid {
                return Err(ApiError::Conflict {
                    group: String::new(),
                    plural: kind.to_owned(),
                    qualified: kind.to_owned(),
                    name: object_name.to_owned(),
                    detail: format!("the UID in the bound object reference ({want}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"),
                });
            }
        }
        let r = Ref {
            name: object_name.to_owned(),
            uid: uid.to_owned(),
        };
        bound = Some(if kind == "Pod" {
            BoundObject::Pod(r)
        } else {
            BoundObject::Secret(r)
        });
    }
    let audiences = string_list(&spec["audiences"]);
    let token_spec = TokenSpec {
        namespace: namespace.clone(),
        service_account: Ref {
            name: name.clone(),
            uid: account["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        },
        bound,
        audiences,
        expiration_seconds: seconds,
    };
    let now = now();
    let claims = tokens.claims(&token_spec, now);
    let token = tokens
        .sign(&claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let expires = chrono::DateTime::from_timestamp(claims.exp, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let mut out_spec = json!({"audiences": claims.aud, "expirationSeconds": seconds});
    if bound_ref.is_object() {
        let mut r = bound_ref.clone();
        if let Some(BoundObject::Pod(b) | BoundObject::Secret(b)) = &token_spec.bound {
            r["uid"] = json!(b.uid);
        }
        out_spec["boundObjectRef"] = r;
    }
    let out = json!({
        "kind": "TokenRequest",
        "apiVersion": format!("{GROUP}/v1"),
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": crate::object::now_rfc3339()},
        "spec": out_spec,
        "status": {"token": token, "expirationTimestamp": expires},
    });
    Ok(json_response(StatusCode::CREATED, &out))
}

/// `/.well-known/openid-configuration` and `/openid/v1/jwks`, as upstream serves them
/// (cacheable for an hour); `None` for other paths.
pub fn oidc(api: &Api, path: &str) -> Option<Response> {
    let tokens = api.authn.tokens()?;
    let (body, content_type) = match path {
        "/.well-known/openid-configuration" => (
            skiff_auth::keys::openid_configuration(tokens.issuer()),
            "application/json",
        ),
        "/openid/v1/jwks" => (tokens.key().jwks(), "application/jwk-set+json"),
        _ => return None,
    };
    let mut bytes = serde_json::to_vec(&body).expect("Value serializes");
    bytes.push(b'\n');
    Some(
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            bytes,
        )
            .into_response(),
    )
}

/// The Secret type that holds a legacy ServiceAccount token, and its annotations.
const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
const SA_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
const SA_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// Legacy tokens "when asked for": a Secret of type `kubernetes.io/service-account-token`
/// created for a ServiceAccount gets its `token`, `ca.crt` and `namespace`, and the
/// account's uid annotation, as upstream's tokens controller fills it. Done as the Secret is
/// created rather than after, since the API server holds the signing key. The Secret must
/// name its ServiceAccount (upstream's validation); one whose ServiceAccount is missing or
/// has another uid is stored unfilled, and its token never authenticates.
pub fn fill_legacy_token(
    api: &Api,
    r: &crate::resources::ResourceInfo,
    obj: &mut Value,
) -> Result<()> {
    if !(r.group.is_empty() && r.kind == "Secret") || obj["type"] != TOKEN_SECRET_TYPE {
        return Ok(());
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let namespace = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let annotations = &obj["metadata"]["annotations"];
    let Some(account_name) = annotations[SA_NAME_ANNOTATION]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
    else {
        return Err(ApiError::invalid(
            r,
            &name,
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: format!("metadata.annotations[{SA_NAME_ANNOTATION}]"),
            }],
        ));
    };
    if obj["data"]["token"].as_str().is_some_and(|t| !t.is_empty()) {
        return Ok(());
    }
    let (Some(tokens), Some(ca_pem)) = (api.authn.tokens(), api.authn.ca_pem.get()) else {
        return Ok(());
    };
    let account = match api.get(&core_target(
        api,
        "serviceaccounts",
        &namespace,
        Some(&account_name),
    )?) {
        Ok(a) => a,
        Err(ApiError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let uid = account["metadata"]["uid"].as_str().unwrap_or_default();
    if annotations[SA_UID_ANNOTATION]
        .as_str()
        .is_some_and(|u| !u.is_empty() && u != uid)
    {
        return Ok(());
    }
    let sa = Ref {
        name: account_name,
        uid: uid.to_owned(),
    };
    let token = tokens
        .legacy_token(&namespace, &sa, &name)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    use base64::Engine;
    let b64 = |s: &str| json!(base64::engine::general_purpose::STANDARD.encode(s));
    obj["metadata"]["annotations"][SA_UID_ANNOTATION] = json!(sa.uid);
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    obj["data"]["token"] = b64(&token);
    obj["data"]["ca.crt"] = b64(ca_pem);
    obj["data"]["namespace"] = b64(&namespace);
    Ok(())
}
