//! Bootstrap tokens: upstream's bootstrap token authenticator
//! (plugin/pkg/auth/authenticator/token/bootstrap) and the token format of
//! k8s.io/cluster-bootstrap, which `kubeadm token create` and `skiff token create` make.
//!
//! A token `<id>.<secret>` (6 and 16 characters of `[a-z0-9]`) is good while the Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` holds the same
//! id and secret, says `usage-bootstrap-authentication: "true"`, is not being deleted and
//! has not expired. It stands for `system:bootstrap:<id>` in `system:bootstrappers` and the
//! Secret's `auth-extra-groups`: a new node uses it once, to ask for its client
//! certificate (kubelet TLS bootstrap). Every refusal is the same 401 to the client, as
//! upstream's; the reason is for the server's log.

use std::collections::BTreeMap;

use skiff_apimachinery::user::{UserInfo, ALL_AUTHENTICATED};

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The namespace of bootstrap token Secrets.
pub const NAMESPACE: &str = "kube-system";
/// A bootstrap token Secret's name is this and the token's id.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The group of every bootstrap token user.
pub const GROUP: &str = "system:bootstrappers";
/// A bootstrap token user's name is this and the token's id.
pub const USER_PREFIX: &str = "system:bootstrap:";

/// The Secret keys upstream's bootstrap API names.
pub mod keys {
    pub const TOKEN_ID: &str = "token-id";
    pub const TOKEN_SECRET: &str = "token-secret";
    pub const EXPIRATION: &str = "expiration";
    pub const DESCRIPTION: &str = "description";
    pub const USAGE_AUTHENTICATION: &str = "usage-bootstrap-authentication";
    pub const USAGE_SIGNING: &str = "usage-bootstrap-signing";
    pub const EXTRA_GROUPS: &str = "auth-extra-groups";
}

/// A token's two halves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub id: &'a str,
    pub secret: &'a str,
}

impl Token<'_> {
    /// The Secret that holds this token.
    pub fn secret_name(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.id)
    }
}

fn token_chars(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `token` as a bootstrap token (`^[a-z0-9]{6}\.[a-z0-9]{16}$`), or `None` when it is not
/// one (and so for another authenticator).
pub fn parse(token: &str) -> Option<Token<'_>> {
    let (id, secret) = token.split_once('.')?;
    (token_chars(id, 6) && token_chars(secret, 16)).then_some(Token { id, secret })
}

/// Why a well-formed token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("bootstrap secret has type {0:?}, not {SECRET_TYPE:?}")]
    WrongType(String),
    #[error("bootstrap secret is being deleted")]
    Deleting,
    #[error("bootstrap token secret does not match")]
    SecretMismatch,
    #[error("bootstrap token id does not match its secret's")]
    IdMismatch,
    #[error("bootstrap token expired at {0}")]
    Expired(String),
    #[error("bootstrap token expiration {0:?} is not an RFC 3339 time")]
    BadExpiration(String),
    #[error("bootstrap token is not for authentication")]
    NotForAuthentication,
    #[error("bootstrap token has an invalid extra group {0:?}")]
    BadExtraGroup(String),
}

/// What the authenticator reads of a token's Secret: its type, whether it is being
/// deleted, and its data, decoded.
#[derive(Debug, Clone, Copy)]
pub struct Secret<'a> {
    pub type_: &'a str,
    pub deleting: bool,
    pub data: &'a BTreeMap<String, String>,
}

/// Whether `group` may be an extra group of a bootstrap token (upstream's
/// `ValidateBootstrapGroupName`: `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`).
pub fn valid_extra_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match rest.as_bytes().split_last() {
        Some((last, init)) => {
            allowed(*last)
                && init.len() <= 255
                && init.iter().all(|&b| allowed(b) || b == b':' || b == b'-')
        }
        None => false,
    }
}

/// Compares in time independent of where the strings differ (upstream's
/// `subtle.ConstantTimeCompare`).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Who `token` is, given its Secret, at `now` (Unix seconds): upstream's checks in
/// upstream's order.
pub fn authenticate(token: Token<'_>, secret: Secret<'_>, now: i64) -> Result<UserInfo, Refusal> {
    if secret.deleting {
        return Err(Refusal::Deleting);
    }
    if secret.type_ != SECRET_TYPE {
        return Err(Refusal::WrongType(secret.type_.to_owned()));
    }
    let get = |k: &str| secret.data.get(k).map(String::as_str).unwrap_or_default();
    if !same(get(keys::TOKEN_SECRET), token.secret) {
        return Err(Refusal::SecretMismatch);
    }
    if get(keys::TOKEN_ID) != token.id {
        return Err(Refusal::IdMismatch);
    }
    let expiration = get(keys::EXPIRATION);
    if !expiration.is_empty() {
        let at = chrono::DateTime::parse_from_rfc3339(expiration)
            .map_err(|_| Refusal::BadExpiration(expiration.to_owned()))?;
        if at.timestamp() <= now {
            return Err(Refusal::Expired(expiration.to_owned()));
        }
    }
    if get(keys::USAGE_AUTHENTICATION) != "true" {
        return Err(Refusal::NotForAuthentication);
    }
    let mut groups = vec![GROUP.to_owned()];
    for g in get(keys::EXTRA_GROUPS)
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        if !valid_extra_group(g) {
            return Err(Refusal::BadExtraGroup(g.to_owned()));
        }
        if !groups.iter().any(|have| have == g) {
            groups.push(g.to_owned());
        }
    }
    groups.push(ALL_AUTHENTICATED.into());
    Ok(UserInfo {
        username: format!("{USER_PREFIX}{}", token.id),
        groups,
        ..UserInfo::default()
    })
}

/// A new random token (upstream's `GenerateBootstrapToken`).
pub fn generate() -> Result<String, crate::components::NoRandomness> {
    use ring::rand::SecureRandom;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(23);
    // Rejection sampling keeps every character equally likely (256 is not a multiple of 36).
    while out.len() < 23 {
        if out.len() == 6 {
            out.push('.');
            continue;
        }
        let mut b = [0u8; 1];
        rng.fill(&mut b)
            .map_err(|_| crate::components::NoRandomness)?;
        if b[0] < 252 {
            out.push(CHARS[usize::from(b[0] % 36)] as char);
        }
    }
    Ok(out)
}

/// The `expiration` of a token made at `now` for `ttl` (RFC 3339, UTC, in seconds, as
/// kubeadm writes it); `None` when that is out of range.
pub fn expiration(now: std::time::SystemTime, ttl: std::time::Duration) -> Option<String> {
    let at = chrono::DateTime::<chrono::Utc>::from(now)
        .checked_add_signed(chrono::Duration::from_std(ttl).ok()?)?;
    Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The data of a token's Secret (upstream's `kubeadm token create` writes the same keys):
/// good for authentication and signing until `expiration` (RFC 3339; none never expires),
/// with the extra groups.
pub fn secret_data(
    token: Token<'_>,
    description: &str,
    expiration: Option<&str>,
    extra_groups: &[String],
) -> BTreeMap<String, String> {
    let mut data = BTreeMap::from([
        (keys::TOKEN_ID.to_owned(), token.id.to_owned()),
        (keys::TOKEN_SECRET.to_owned(), token.secret.to_owned()),
        (keys::USAGE_AUTHENTICATION.to_owned(), "true".to_owned()),
        (keys::USAGE_SIGNING.to_owned(), "true".to_owned()),
    ]);
    if !description.is_empty() {
        data.insert(keys::DESCRIPTION.to_owned(), description.to_owned());
    }
    if let Some(at) = expiration {
        data.insert(keys::EXPIRATION.to_owned(), at.to_owned());
    }
    if !extra_groups.is_empty() {
        data.insert(keys::EXTRA_GROUPS.to_owned(), extra_groups.join(","));
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "foobar";
    const SECRET: &str = "circumnavigation";

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut d = BTreeMap::from([
            (keys::TOKEN_ID.to_owned(), ID.to_owned()),
            (keys::TOKEN_SECRET.to_owned(), SECRET.to_owned()),
            (keys::USAGE_AUTHENTICATION.to_owned(), "true".to_owned()),
        ]);
        for (k, v) in pairs {
            if v.is_empty() {
                d.remove(*k);
            } else {
                d.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        d
    }

    #[test]
    fn token_format() {
        // Upstream's bootstrap token regexp: exactly 6 and 16 of [a-z0-9].
        assert_eq!(
            parse("foobar.circumnavigation"),
            Some(Token {
                id: ID,
                secret: SECRET
            })
        );
        for bad in [
            "",
            "foobar",
            "foobar.",
            "fooba.circumnavigation",
            "foobar.circumnavigatio",
            "foobar.circumnavigationn",
            "FOOBAR.circumnavigation",
            "foobar:circumnavigation",
            "foo-ar.circumnavigation",
            "foobar.circumnavigation.x",
            "eyJhbGciOi.JFUzI1NiJ9xyzxyzxy",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(
            parse("abcdef.0123456789abcdef").unwrap().secret_name(),
            "bootstrap-token-abcdef"
        );
    }

    #[test]
    fn authenticate_as_upstream() {
        // The cases of upstream's bootstrap authenticator test (TestTokenAuthenticator).
        let now = 1_700_000_000;
        let token = parse("foobar.circumnavigation").unwrap();
        let past = "2009-11-10T23:00:00Z";
        let future = "2100-11-10T23:00:00Z";
        type Case<'a> = (
            &'a str,
            &'a str,
            bool,
            Vec<(&'a str, &'a str)>,
            Result<Vec<&'a str>, Refusal>,
        );
        let cases: Vec<Case> = vec![
            ("valid token", SECRET_TYPE, false, vec![], Ok(vec![GROUP])),
            (
                "valid token with extra group",
                SECRET_TYPE,
                false,
                vec![(keys::EXTRA_GROUPS, "system:bootstrappers:foo")],
                Ok(vec![GROUP, "system:bootstrappers:foo"]),
            ),
            (
                "invalid group",
                SECRET_TYPE,
                false,
                vec![(keys::EXTRA_GROUPS, "foo")],
                Err(Refusal::BadExtraGroup("foo".into())),
            ),
            (
                "invalid secret",
                SECRET_TYPE,
                false,
                vec![(keys::TOKEN_SECRET, "barfoo")],
                Err(Refusal::SecretMismatch),
            ),
            (
                "no usage",
                SECRET_TYPE,
                false,
                vec![(keys::USAGE_AUTHENTICATION, "")],
                Err(Refusal::NotForAuthentication),
            ),
            (
                "usage false",
                SECRET_TYPE,
                false,
                vec![(keys::USAGE_AUTHENTICATION, "false")],
                Err(Refusal::NotForAuthentication),
            ),
            (
                "wrong token id",
                SECRET_TYPE,
                false,
                vec![(keys::TOKEN_ID, "barfoo")],
                Err(Refusal::IdMismatch),
            ),
            (
                "deleted token",
                SECRET_TYPE,
                true,
                vec![],
                Err(Refusal::Deleting),
            ),
            (
                "expired token",
                SECRET_TYPE,
                false,
                vec![(keys::EXPIRATION, past)],
                Err(Refusal::Expired(past.into())),
            ),
            (
                "not expired token",
                SECRET_TYPE,
                false,
                vec![(keys::EXPIRATION, future)],
                Ok(vec![GROUP]),
            ),
            (
                "garbage expiration",
                SECRET_TYPE,
                false,
                vec![(keys::EXPIRATION, "tomorrow")],
                Err(Refusal::BadExpiration("tomorrow".into())),
            ),
            (
                "wrong type",
                "Opaque",
                false,
                vec![],
                Err(Refusal::WrongType("Opaque".into())),
            ),
        ];
        for (name, type_, deleting, pairs, want) in cases {
            let d = data(&pairs);
            let got = authenticate(
                token,
                Secret {
                    type_,
                    deleting,
                    data: &d,
                },
                now,
            );
            match want {
                Ok(groups) => {
                    let user = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(user.username, "system:bootstrap:foobar", "{name}");
                    let mut want: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
                    want.push(ALL_AUTHENTICATED.into());
                    assert_eq!(user.groups, want, "{name}");
                }
                Err(e) => assert_eq!(got.unwrap_err(), e, "{name}"),
            }
        }
    }

    #[test]
    fn extra_group_names() {
        for good in [
            "system:bootstrappers:foo",
            "system:bootstrappers:kubeadm:default-node-token",
            "system:bootstrappers:a",
        ] {
            assert!(valid_extra_group(good), "{good}");
        }
        for bad in [
            "system:bootstrappers",
            "system:bootstrappers:",
            "system:bootstrappers:foo-",
            "system:bootstrappers:Foo",
            "system:nodes",
            "foo",
        ] {
            assert!(!valid_extra_group(bad), "{bad}");
        }
        assert!(!valid_extra_group(&format!(
            "system:bootstrappers:{}",
            "a".repeat(257)
        )));
    }

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(parse(&a).is_some(), "{a}");
        assert_ne!(a, b);
        let t = parse(&a).unwrap();
        let d = secret_data(t, "for node-b", Some("2100-01-01T00:00:00Z"), &[]);
        let user = authenticate(
            t,
            Secret {
                type_: SECRET_TYPE,
                deleting: false,
                data: &d,
            },
            0,
        )
        .unwrap();
        assert_eq!(user.username, format!("system:bootstrap:{}", t.id));
        assert_eq!(d[keys::USAGE_SIGNING], "true");
        let epoch = std::time::SystemTime::UNIX_EPOCH;
        assert_eq!(
            expiration(epoch, std::time::Duration::from_secs(86400)).as_deref(),
            Some("1970-01-02T00:00:00Z")
        );
        assert_eq!(expiration(epoch, std::time::Duration::MAX), None);
    }
}
