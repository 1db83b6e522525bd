//! A short-lived cache of authenticated bearer tokens, as upstream's kube-apiserver wraps
//! its token authenticators (`cachedtokenauthenticator`, 10 s for successes, failures not
//! kept): verifying an ES256 signature and looking up the objects a token is bound to costs
//! more than the request it authenticates, and a client sends the same token on every
//! request.
//!
//! Entries are keyed by the token's SHA-256, so the cache holds no credential in clear. A
//! token revoked (its pod or Secret deleted) is still accepted until its entry is older than
//! the TTL, as upstream.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use skiff_apimachinery::user::UserInfo;

/// Upstream's `--token-auth-cache-ttl`-like default for successful authentications.
pub const SUCCESS_TTL: Duration = Duration::from_secs(10);
/// Entries kept at most; past it, expired entries go, then everything.
const MAX_ENTRIES: usize = 4096;

/// Successful token authentications, each kept for a TTL.
pub struct TokenCache {
    ttl: Duration,
    entries: RwLock<HashMap<[u8; 32], (Instant, UserInfo)>>,
}

impl Default for TokenCache {
    fn default() -> TokenCache {
        TokenCache::new(SUCCESS_TTL)
    }
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    pub fn new(ttl: Duration) -> TokenCache {
        TokenCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// Who `token` was authenticated as less than the TTL before `now`.
    pub fn get(&self, token: &str, now: Instant) -> Option<UserInfo> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let (at, user) = entries.get(&key(token))?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| user.clone())
    }

    /// Forgets every entry (an object tokens are bound to went away).
    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Remembers that `token` authenticated as `user` at `now`.
    pub fn put(&self, token: &str, user: &UserInfo, now: Instant) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key(token), (now, user.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_within_the_ttl_only() {
        let cache = TokenCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let user = crate::components::user("alice");
        assert!(cache.get("tok", t0).is_none());
        cache.put("tok", &user, t0);
        assert_eq!(cache.get("tok", t0 + Duration::from_secs(9)), Some(user));
        assert!(cache.get("tok", t0 + Duration::from_secs(10)).is_none());
        cache.put("tok", &crate::components::user("alice"), t0);
        cache.clear();
        assert!(cache.get("tok", t0).is_none());
        assert!(cache.get("other", t0).is_none());
    }

    #[test]
    fn stays_bounded() {
        let cache = TokenCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let user = crate::components::user("u");
        for i in 0..(MAX_ENTRIES + 10) {
            cache.put(&format!("t{i}"), &user, t0);
        }
        let len = cache.entries.read().unwrap().len();
        assert!(len <= MAX_ENTRIES, "{len}");
        assert!(cache.get(&format!("t{}", MAX_ENTRIES + 9), t0).is_some());
    }
}
