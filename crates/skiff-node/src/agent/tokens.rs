//! Projected `serviceAccountToken` volume sources, as the kubelet's token manager: each
//! gets a token from the TokenRequest API bound to the pod (its audience and lifetime),
//! kept per worker and asked for again once 80 % of its lifetime has passed or it is a day
//! old, so a running pod always holds a valid token. The files are written by
//! [`super::volumes`] (each with a temporary file and a rename, so a reader never sees half
//! a token).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::api::{Api, PostParams};

/// The API's default lifetime of a projected token (the field's default).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// A token older than this is renewed whatever its lifetime (the kubelet's `maxTTL`).
pub const MAX_TTL_SECONDS: i64 = 24 * 3600;

/// What a token is asked for with: its audience (empty: the API server's) and lifetime.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenKey {
    /// The audience asked for; empty for the API server's own.
    pub audience: String,
    /// The lifetime asked for, in seconds.
    pub expiration_seconds: i64,
}

impl TokenKey {
    /// The key of a projection, its lifetime defaulted as the API defaults it.
    pub fn of(p: &ServiceAccountTokenProjection) -> TokenKey {
        TokenKey {
            audience: p.audience.clone().unwrap_or_default(),
            expiration_seconds: p.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        }
    }
}

/// A token the API issued.
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    /// The JWT.
    pub token: String,
    /// `status.expirationTimestamp`.
    pub expires: DateTime<Utc>,
    /// The lifetime asked for (`spec.expirationSeconds` of the answer).
    pub expiration_seconds: i64,
}

/// The tokens a pod worker holds.
pub type Cache = BTreeMap<TokenKey, Issued>;

/// Every token projection of the pod, by volume.
pub fn projections(pod: &Pod) -> Vec<(String, ServiceAccountTokenProjection)> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .flat_map(|v| {
            v.projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
                .filter_map(|s| s.service_account_token.clone())
                .map(|t| (v.name.clone(), t))
        })
        .collect()
}

/// Whether a token must be asked for again at `now`, as the kubelet's `requiresRefresh`:
/// once a day old, or within the last 20 % of its lifetime (`jitter` seconds earlier, so
/// pods started together do not all ask at once).
pub fn needs_refresh(t: &Issued, now: DateTime<Utc>, jitter: i64) -> bool {
    let seconds = chrono::Duration::seconds;
    let Some(issued) = t.expires.checked_sub_signed(seconds(t.expiration_seconds)) else {
        return true;
    };
    let aged = issued
        .checked_add_signed(seconds(MAX_TTL_SECONDS - jitter))
        .is_none_or(|at| now > at);
    // Integer division as upstream: 20 % of the lifetime, in whole seconds.
    let fifth = t.expiration_seconds.saturating_mul(20) / 100;
    let late = t
        .expires
        .checked_sub_signed(seconds(fifth.saturating_add(jitter)))
        .is_none_or(|at| now > at);
    aged || late
}

/// The keys of the pod that have no token yet or need a new one.
pub fn due(pod: &Pod, cache: &Cache, now: DateTime<Utc>, jitter: i64) -> Vec<TokenKey> {
    let mut keys: Vec<TokenKey> = projections(pod)
        .iter()
        .map(|(_, p)| TokenKey::of(p))
        .filter(|k| cache.get(k).is_none_or(|t| needs_refresh(t, now, jitter)))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Asks the TokenRequest API for a token of the pod's ServiceAccount bound to the pod.
pub async fn request(
    client: &kube::Client,
    pod: &Pod,
    key: &TokenKey,
) -> Result<Issued, kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: if key.audience.is_empty() {
                Vec::new()
            } else {
                vec![key.audience.clone()]
            },
            expiration_seconds: Some(key.expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let answer = api
        .create_token_request(account, &PostParams::default(), &request)
        .await?;
    let (token, expires) = match answer.status {
        Some(s) => (
            s.token,
            DateTime::from_timestamp(s.expiration_timestamp.0.as_second(), 0),
        ),
        None => (String::new(), None),
    };
    // An answer without its expiry is treated as expiring now: asked for again next time.
    let expires = expires.unwrap_or_else(Utc::now);
    Ok(Issued {
        token,
        expires,
        expiration_seconds: answer
            .spec
            .expiration_seconds
            .unwrap_or(key.expiration_seconds),
    })
}

/// Gets every token of the pod that is missing or due into `cache`; returns whether any
/// was issued (its files need writing).
pub async fn ensure(
    client: &kube::Client,
    pod: &Pod,
    cache: &mut Cache,
) -> Result<bool, kube::Error> {
    let jitter = jitter_seconds();
    let due = due(pod, cache, Utc::now(), jitter);
    for key in &due {
        let issued = request(client, pod, key).await?;
        tracing::debug!(audience = %key.audience, expires = %issued.expires, "service account token issued");
        cache.insert(key.clone(), issued);
    }
    Ok(!due.is_empty())
}

/// The tokens to write: each key's current token.
pub fn current(cache: &Cache) -> BTreeMap<TokenKey, String> {
    cache
        .iter()
        .map(|(k, t)| (k.clone(), t.token.clone()))
        .collect()
}

/// A random number of seconds below ten, for the refresh jitter (std's per-process
/// random hash keys are enough for spreading refreshes).
fn jitter_seconds() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    let n = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (n % 10) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn issued(expires: &str, seconds: i64) -> Issued {
        Issued {
            token: "t".into(),
            expires: at(expires),
            expiration_seconds: seconds,
        }
    }

    #[test]
    fn tokens_are_renewed_at_80_percent_of_their_life_or_after_a_day() {
        // Cases of the kubelet's token manager tests (TestRequiresRefresh), no jitter.
        let cases = [
            (
                "fresh hour-long token",
                issued("2026-01-01T01:00:00Z", 3600),
                "2026-01-01T00:10:00Z",
                false,
            ),
            (
                "just before 80 %",
                issued("2026-01-01T01:00:00Z", 3600),
                "2026-01-01T00:47:59Z",
                false,
            ),
            (
                "just after 80 %",
                issued("2026-01-01T01:00:00Z", 3600),
                "2026-01-01T00:48:01Z",
                true,
            ),
            (
                "expired",
                issued("2026-01-01T01:00:00Z", 3600),
                "2026-01-01T02:00:00Z",
                true,
            ),
            (
                "a week-long token, 23 h old",
                issued("2026-01-08T00:00:00Z", 7 * 86400),
                "2026-01-01T23:00:00Z",
                false,
            ),
            (
                "a week-long token, 25 h old",
                issued("2026-01-08T00:00:00Z", 7 * 86400),
                "2026-01-02T01:00:00Z",
                true,
            ),
            (
                "admission's 3607 s token at 47 min",
                issued("2026-01-01T01:00:07Z", 3607),
                "2026-01-01T00:47:00Z",
                false,
            ),
            (
                "admission's 3607 s token at 49 min",
                issued("2026-01-01T01:00:07Z", 3607),
                "2026-01-01T00:49:00Z",
                true,
            ),
        ];
        for (what, token, now, want) in cases {
            assert_eq!(needs_refresh(&token, at(now), 0), want, "{what}");
        }
        // Jitter only moves the moment earlier.
        let t = issued("2026-01-01T01:00:00Z", 3600);
        assert!(needs_refresh(&t, at("2026-01-01T00:47:55Z"), 9));
    }

    #[test]
    fn each_distinct_projection_is_asked_for_once() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [], "volumes": [
                {"name": "a", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                    {"configMap": {"name": "kube-root-ca.crt"}}]}},
                {"name": "b", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                    {"serviceAccountToken": {"path": "vault", "audience": "vault"}}]}},
                {"name": "c", "emptyDir": {}},
            ]},
        }))
        .unwrap();
        assert_eq!(projections(&pod).len(), 3);
        let api = TokenKey {
            audience: String::new(),
            expiration_seconds: 3607,
        };
        let vault = TokenKey {
            audience: "vault".into(),
            expiration_seconds: 3600,
        };
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(
            due(&pod, &Cache::new(), now, 0),
            vec![api.clone(), vault.clone()]
        );
        let mut cache = Cache::new();
        cache.insert(api.clone(), issued("2026-01-01T01:00:07Z", 3607));
        assert_eq!(due(&pod, &cache, now, 0), vec![vault.clone()]);
        cache.insert(vault.clone(), issued("2026-01-01T00:10:00Z", 3600));
        assert_eq!(due(&pod, &cache, now, 0), vec![vault]);
    }
}
