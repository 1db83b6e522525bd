//! Registry authentication: `WWW-Authenticate` challenges (RFC 7235) and the credentials a
//! pod's `imagePullSecrets` carry (`.dockerconfigjson`), kept apart from the HTTP client so
//! both are plain functions with table tests.

use base64::Engine;
use std::collections::BTreeMap;

/// What a registry's `401` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Fetch a token from `realm` (Docker's token protocol) and send it as `Bearer`.
    Bearer {
        /// Token endpoint URL.
        realm: String,
        /// `service` parameter to pass back, when given.
        service: Option<String>,
        /// `scope` parameter to pass back, when given.
        scope: Option<String>,
    },
    /// Send `user:password` as `Basic`.
    Basic,
}

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    /// Never prints the password (errors and spans may show credentials).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The `Authorization` value for a `Basic` challenge (and for token endpoints).
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Parses a `WWW-Authenticate` value; `None` for schemes a registry pull cannot answer.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key=value` and `key="quoted, \"escaped\" value"` pairs separated by commas; keys are
/// case-insensitive (RFC 7235 §2.1), and commas inside quotes belong to the value (scopes
/// such as `repository:a:pull,push` have them).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
            value = value.trim().to_string();
        }
        out.insert(key, value);
    }
}

/// The host a `.dockerconfigjson` key stands for: keys may be URLs
/// (`https://index.docker.io/v1/`) or bare `host:port`, and Docker Hub has several names.
fn config_key_host(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or_default().to_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            super::reference::DOCKER_HUB.to_string()
        }
        _ => host,
    }
}

/// Credentials for `registry` from `.dockerconfigjson` documents (the data of
/// `kubernetes.io/dockerconfigjson` Secrets), first match winning as in the kubelet's
/// keyring; entries that do not parse are skipped, since one bad secret must not stop a
/// pull that needs none.
pub fn credentials_for(registry: &str, docker_configs: &[Vec<u8>]) -> Option<Credentials> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        auths: BTreeMap<String, Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        auth: Option<String>,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
    }
    let wanted = registry.to_lowercase();
    for raw in docker_configs {
        let Ok(config) = serde_json::from_slice::<Config>(raw) else {
            continue;
        };
        for (key, entry) in config.auths {
            if config_key_host(&key) != wanted {
                continue;
            }
            if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
                return Some(Credentials {
                    username: username.clone(),
                    password: password.clone(),
                });
            }
            let decoded = entry
                .auth
                .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                .and_then(|b| String::from_utf8(b).ok());
            if let Some((username, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                return Some(Credentials {
                    username: username.to_string(),
                    password: password.to_string(),
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_bearer_challenge_yields_realm_service_and_scope() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        assert_eq!(
            parse_challenge(h),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
    }

    #[test]
    fn challenge_params_keep_quoted_commas_and_escapes_and_ignore_key_case() {
        let h = r#"bearer Realm="http://127.0.0.1:1/t", scope="repository:a:pull,push",error="a \"b\"", service=reg"#;
        let Some(Challenge::Bearer {
            realm,
            service,
            scope,
        }) = parse_challenge(h)
        else {
            panic!("not bearer");
        };
        assert_eq!(realm, "http://127.0.0.1:1/t");
        assert_eq!(scope.as_deref(), Some("repository:a:pull,push"));
        assert_eq!(service.as_deref(), Some("reg"));
    }

    #[test]
    fn basic_is_recognized_and_unknown_or_realmless_challenges_are_not() {
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
    }

    #[test]
    fn dockerconfigjson_credentials_match_by_host_with_docker_hub_aliases() {
        let hub = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"}}}"#;
        let local = br#"{"auths":{"127.0.0.1:5000":{"username":"u","password":"p:w"}}}"#;
        let configs = vec![b"not json".to_vec(), hub.to_vec(), local.to_vec()];
        let c = credentials_for("docker.io", &configs).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("user", "pass"));
        let c = credentials_for("127.0.0.1:5000", &configs).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:w"));
        assert_eq!(c.basic_header(), "Basic dTpwOnc=");
        assert!(credentials_for("quay.io", &configs).is_none());
        assert!(!format!("{c:?}").contains("p:w"));
    }
}
