//! ServiceAccount tokens, as upstream's `pkg/serviceaccount`: bound tokens (issued by the
//! TokenRequest API with audiences, expiry and an optional Pod or Secret binding) and
//! legacy tokens (kept in `kubernetes.io/service-account-token` Secrets, no expiry).
//!
//! Verification is signature first, then the claims as pure functions of the current time
//! and the objects they name, which the API server looks up through [`ObjectLookup`].

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use skiff_apimachinery::user::{UserInfo, ALL_AUTHENTICATED};

use crate::keys::{SigningKey, ALGORITHM};

/// The issuer kind and kubeadm clusters use, which pods reach as the `kubernetes` Service.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The issuer of legacy Secret tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// Clock skew tolerated on `exp` and `nbf`, and on deletions (go-jose's `DefaultLeeway`).
pub const LEEWAY_SECONDS: i64 = 60;
/// Group of every ServiceAccount.
pub const ALL_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
const USERNAME_PREFIX: &str = "system:serviceaccount:";

/// Extra keys upstream puts in a ServiceAccount's user info.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// Why a token does not authenticate. Every case is a 401 to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT from this issuer: another authenticator's, or garbage.
    #[error("invalid bearer token")]
    NotOurs,
    /// Undecodable, or not signed by this issuer's key.
    #[error("{0}")]
    Invalid(String),
    #[error("service account token has expired")]
    Expired,
    #[error("service account token is not valid yet")]
    NotYetValid,
    #[error("token audiences {token:?} is invalid for the target audiences {target:?}")]
    Audience {
        token: Vec<String>,
        target: Vec<String>,
    },
    /// The object the token names is gone, being deleted, or another of the same name.
    #[error("{0}")]
    Revoked(String),
    #[error("could not look up the token's objects: {0}")]
    Lookup(String),
    #[error("failed to generate token: {0}")]
    Signing(String),
}

/// `system:serviceaccount:<namespace>:<name>`.
pub fn make_username(namespace: &str, name: &str) -> String {
    format!("{USERNAME_PREFIX}{namespace}:{name}")
}

/// The namespace and name of a ServiceAccount username, when it is one (valid namespace
/// and ServiceAccount names, as upstream's `SplitUsername`).
pub fn split_username(username: &str) -> Option<(&str, &str)> {
    use skiff_apimachinery::validation::names;
    let (namespace, name) = username.strip_prefix(USERNAME_PREFIX)?.split_once(':')?;
    (!name.contains(':')
        && names::is_dns1123_label(namespace).is_empty()
        && names::is_dns1123_subdomain(name).is_empty())
    .then_some((namespace, name))
}

/// The groups of every ServiceAccount of `namespace`.
pub fn group_names(namespace: &str) -> Vec<String> {
    vec![
        ALL_SERVICE_ACCOUNTS.into(),
        format!("{ALL_SERVICE_ACCOUNTS}:{namespace}"),
    ]
}

/// A name and uid, as the `kubernetes.io` claim refers to objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// The private `kubernetes.io` claim of a bound token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
}

/// A bound token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundClaims {
    pub iss: String,
    pub sub: String,
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// JWT's `aud` is a string or an array of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A legacy Secret token's claims (upstream's `legacyPrivateClaims`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyClaims {
    pub iss: String,
    pub sub: String,
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    pub namespace: String,
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    pub secret_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    pub service_account_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    pub service_account_uid: String,
}

/// What a token may be bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundObject {
    Pod(Ref),
    Secret(Ref),
}

/// What a TokenRequest asks for, once its ServiceAccount and bound object are looked up.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub namespace: String,
    pub service_account: Ref,
    pub bound: Option<BoundObject>,
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
}

/// The kinds of object a token's claims name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    ServiceAccount,
    Pod,
    Secret,
}

/// What verification needs to know of a live object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveObject {
    pub uid: String,
    /// `metadata.deletionTimestamp`, in seconds since the epoch.
    pub deletion_timestamp: Option<i64>,
    /// A Secret's `data.token`, decoded (legacy tokens must match it).
    pub token: Option<String>,
}

/// How verification reads objects: the API server implements it over its store.
pub trait ObjectLookup {
    /// The object, `None` when there is none of that name.
    fn lookup(
        &self,
        kind: ObjectKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<LiveObject>, String>;
}

/// A token that authenticated: who it stands for, and which of the requested audiences
/// it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user: UserInfo,
    pub audiences: Vec<String>,
}

/// Issues and verifies ServiceAccount tokens of one issuer.
pub struct TokenAuthenticator {
    key: SigningKey,
    issuer: String,
    api_audiences: Vec<String>,
}

impl TokenAuthenticator {
    /// `api_audiences` are what a token must be for to authenticate to this server
    /// (upstream's `--api-audiences`, which defaults to the issuer).
    pub fn new(key: SigningKey, issuer: &str, api_audiences: Vec<String>) -> TokenAuthenticator {
        TokenAuthenticator {
            key,
            issuer: issuer.to_owned(),
            api_audiences,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The claims of a bound token issued at `now` (seconds since the epoch), as
    /// upstream's `serviceaccount.Claims`.
    pub fn claims(&self, spec: &TokenSpec, now: i64) -> BoundClaims {
        let audiences = if spec.audiences.is_empty() {
            self.api_audiences.clone()
        } else {
            spec.audiences.clone()
        };
        let (pod, secret) = match &spec.bound {
            Some(BoundObject::Pod(r)) => (Some(r.clone()), None),
            Some(BoundObject::Secret(r)) => (None, Some(r.clone())),
            None => (None, None),
        };
        BoundClaims {
            iss: self.issuer.clone(),
            sub: make_username(&spec.namespace, &spec.service_account.name),
            aud: audiences,
            exp: now.saturating_add(spec.expiration_seconds),
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: KubernetesClaim {
                namespace: spec.namespace.clone(),
                serviceaccount: spec.service_account.clone(),
                pod,
                secret,
            },
        }
    }

    /// Signs `claims` (any of the two claim sets) into a compact JWT.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, TokenError> {
        // Upstream's header carries the algorithm and key id, no `typ`.
        let mut header = Header::new(ALGORITHM);
        header.typ = None;
        header.kid = Some(self.key.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// A legacy token for the ServiceAccount `sa` of `namespace`, to be kept in Secret
    /// `secret_name`.
    pub fn legacy_token(
        &self,
        namespace: &str,
        sa: &Ref,
        secret_name: &str,
    ) -> Result<String, TokenError> {
        self.sign(&LegacyClaims {
            iss: LEGACY_ISSUER.into(),
            sub: make_username(namespace, &sa.name),
            namespace: namespace.into(),
            secret_name: secret_name.into(),
            service_account_name: sa.name.clone(),
            service_account_uid: sa.uid.clone(),
        })
    }

    /// Who `token` stands for, if it is a valid ServiceAccount token of this issuer for one
    /// of `audiences` (the API audiences when empty), at `now`.
    pub fn authenticate(
        &self,
        token: &str,
        audiences: &[String],
        lookup: &dyn ObjectLookup,
        now: i64,
    ) -> Result<Authenticated, TokenError> {
        let issuer = unverified_issuer(token).ok_or(TokenError::NotOurs)?;
        if issuer != self.issuer && issuer != LEGACY_ISSUER {
            return Err(TokenError::NotOurs);
        }
        let claims = self.verify_signature(token)?;
        let target = if audiences.is_empty() {
            &self.api_audiences
        } else {
            audiences
        };
        if issuer == LEGACY_ISSUER {
            let claims: LegacyClaims =
                serde_json::from_value(claims).map_err(|e| TokenError::Invalid(e.to_string()))?;
            let user = check_legacy(&claims, token, lookup, now)?;
            // Legacy tokens have no audience: they are for whatever was asked.
            return Ok(Authenticated {
                user,
                audiences: target.to_vec(),
            });
        }
        let claims: BoundClaims =
            serde_json::from_value(claims).map_err(|e| TokenError::Invalid(e.to_string()))?;
        check_time(&claims, now)?;
        let audiences = check_audience(&claims.aud, target)?;
        let user = check_bound(&claims, lookup, now)?;
        Ok(Authenticated { user, audiences })
    }

    /// The claims of a token this key signed, as JSON.
    fn verify_signature(&self, token: &str) -> Result<Value, TokenError> {
        let mut validation = Validation::new(ALGORITHM);
        // Time and audience are checked by the pure functions below, with upstream's
        // messages; legacy tokens have neither.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &self.key.decoding, &validation)
            .map(|d| d.claims)
            .map_err(|e| {
                TokenError::Invalid(match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "invalid signature".to_owned()
                    }
                    _ => format!("token could not be validated: {e}"),
                })
            })
    }
}

/// The `iss` of a JWT, read before its signature is checked, to tell this issuer's tokens
/// from others' (upstream's `hasCorrectIssuer`).
fn unverified_issuer(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let payload = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&payload).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Expiry and not-before, with the leeway.
pub fn check_time(claims: &BoundClaims, now: i64) -> Result<(), TokenError> {
    if now > claims.exp.saturating_add(LEEWAY_SECONDS) {
        return Err(TokenError::Expired);
    }
    if now < claims.nbf.saturating_sub(LEEWAY_SECONDS) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// The audiences a token is for among `target`: none is an error.
pub fn check_audience(token: &[String], target: &[String]) -> Result<Vec<String>, TokenError> {
    let both: Vec<String> = target
        .iter()
        .filter(|a| token.contains(a))
        .cloned()
        .collect();
    if both.is_empty() {
        return Err(TokenError::Audience {
            token: token.to_vec(),
            target: target.to_vec(),
        });
    }
    Ok(both)
}

/// The object `name` of `kind`, present and not deleted for longer than the leeway.
fn live(
    lookup: &dyn ObjectLookup,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
    now: i64,
) -> Result<Option<LiveObject>, TokenError> {
    let obj = lookup
        .lookup(kind, namespace, name)
        .map_err(TokenError::Lookup)?;
    Ok(obj.filter(|o| {
        o.deletion_timestamp
            .is_none_or(|t| t >= now.saturating_sub(LEEWAY_SECONDS))
    }))
}

/// The ServiceAccount and bound object of a bound token still exist with their uids, as
/// upstream's validator checks; the identity they give.
pub fn check_bound(
    claims: &BoundClaims,
    lookup: &dyn ObjectLookup,
    now: i64,
) -> Result<UserInfo, TokenError> {
    let k = &claims.kubernetes;
    let ns = &k.namespace;
    let sa = &k.serviceaccount;
    let account = lookup
        .lookup(ObjectKind::ServiceAccount, ns, &sa.name)
        .map_err(TokenError::Lookup)?
        .ok_or_else(|| TokenError::Revoked(format!("serviceaccounts \"{}\" not found", sa.name)))?;
    if account
        .deletion_timestamp
        .is_some_and(|t| t < now.saturating_sub(LEEWAY_SECONDS))
    {
        return Err(TokenError::Revoked(format!(
            "service account {ns}/{} has been deleted",
            sa.name
        )));
    }
    if account.uid != sa.uid {
        return Err(TokenError::Revoked(format!(
            "service account UID ({}) does not match claim ({})",
            account.uid, sa.uid
        )));
    }
    let invalidated = || TokenError::Revoked("service account token has been invalidated".into());
    if let Some(secret) = &k.secret {
        let live =
            live(lookup, ObjectKind::Secret, ns, &secret.name, now)?.ok_or_else(invalidated)?;
        if live.uid != secret.uid {
            return Err(TokenError::Revoked(format!(
                "secret UID ({}) does not match service account secret ref claim ({})",
                live.uid, secret.uid
            )));
        }
    }
    let mut user = service_account_user(ns, sa);
    if let Some(pod) = &k.pod {
        let live = live(lookup, ObjectKind::Pod, ns, &pod.name, now)?.ok_or_else(invalidated)?;
        if live.uid != pod.uid {
            return Err(TokenError::Revoked(format!(
                "pod UID ({}) does not match service account pod ref claim ({})",
                live.uid, pod.uid
            )));
        }
        user.extra
            .insert(EXTRA_POD_NAME.into(), vec![pod.name.clone()]);
        user.extra
            .insert(EXTRA_POD_UID.into(), vec![pod.uid.clone()]);
    }
    if !claims.jti.is_empty() {
        user.extra.insert(
            EXTRA_CREDENTIAL_ID.into(),
            vec![format!("JTI={}", claims.jti)],
        );
    }
    Ok(user)
}

/// A legacy token's Secret still holds it and its ServiceAccount still exists with the
/// uid it names (upstream's legacy validator).
pub fn check_legacy(
    claims: &LegacyClaims,
    token: &str,
    lookup: &dyn ObjectLookup,
    now: i64,
) -> Result<UserInfo, TokenError> {
    if claims.namespace.is_empty()
        || claims.secret_name.is_empty()
        || claims.service_account_name.is_empty()
        || claims.sub != make_username(&claims.namespace, &claims.service_account_name)
    {
        return Err(TokenError::Invalid("token claims are incomplete".into()));
    }
    let ns = &claims.namespace;
    let secret = live(lookup, ObjectKind::Secret, ns, &claims.secret_name, now)?
        .ok_or_else(|| TokenError::Revoked("token has been invalidated".into()))?;
    if secret.token.as_deref() != Some(token) {
        return Err(TokenError::Revoked(
            "token does not match server's copy".into(),
        ));
    }
    let account = live(
        lookup,
        ObjectKind::ServiceAccount,
        ns,
        &claims.service_account_name,
        now,
    )?
    .ok_or_else(|| {
        TokenError::Revoked(format!(
            "serviceaccounts \"{}\" not found",
            claims.service_account_name
        ))
    })?;
    if account.uid != claims.service_account_uid {
        return Err(TokenError::Revoked(format!(
            "service account UID ({}) does not match claim ({})",
            account.uid, claims.service_account_uid
        )));
    }
    Ok(service_account_user(
        ns,
        &Ref {
            name: claims.service_account_name.clone(),
            uid: claims.service_account_uid.clone(),
        },
    ))
}

/// A ServiceAccount's identity: its username and uid, its groups and
/// `system:authenticated`.
pub fn service_account_user(namespace: &str, sa: &Ref) -> UserInfo {
    let mut groups = group_names(namespace);
    groups.push(ALL_AUTHENTICATED.into());
    UserInfo {
        username: make_username(namespace, &sa.name),
        uid: sa.uid.clone(),
        groups,
        extra: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests;
