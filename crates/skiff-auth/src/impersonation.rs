//! The `Impersonate-*` headers, as upstream's impersonation filter reads them
//! (staging/src/k8s.io/apiserver/pkg/endpoints/filters/impersonation.go): what a request
//! asks to act as, each part of which the requester must be allowed to `impersonate`, and
//! the identity it then acts as.

use std::collections::BTreeMap;

use http::HeaderMap;
use skiff_apimachinery::user::{UserInfo, ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS};

use crate::serviceaccount;

pub const USER_HEADER: &str = "impersonate-user";
pub const UID_HEADER: &str = "impersonate-uid";
pub const GROUP_HEADER: &str = "impersonate-group";
pub const EXTRA_HEADER_PREFIX: &str = "impersonate-extra-";

/// A request that names groups, extras or a uid without a user, or an undecodable header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("requested {0} without impersonating a user")]
    NoUser(String),
    #[error("invalid impersonation header {0:?}: {1}")]
    Malformed(String, String),
}

/// One thing to impersonate, as the authorization check for verb `impersonate` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impersonation {
    /// `users`, `serviceaccounts`, `groups`, `userextras` or `uids`.
    pub resource: &'static str,
    /// `""` for users, groups and serviceaccounts; `authentication.k8s.io` for userextras
    /// and uids.
    pub api_group: &'static str,
    pub namespace: Option<String>,
    /// The user, group, uid or extra value impersonated.
    pub name: String,
    /// The extra's key, for `userextras`.
    pub subresource: Option<String>,
}

/// What the headers ask for: every part to authorize, and whether groups were given
/// (which then replace the groups a user or ServiceAccount would get).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    pub parts: Vec<Impersonation>,
    pub groups_specified: bool,
}

impl Requested {
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The identity the request acts as once every part is allowed.
    pub fn user(&self) -> UserInfo {
        let mut user = UserInfo::default();
        for p in &self.parts {
            match p.resource {
                "serviceaccounts" => {
                    let ns = p.namespace.as_deref().unwrap_or_default();
                    user.username = serviceaccount::make_username(ns, &p.name);
                    if !self.groups_specified {
                        user.groups = serviceaccount::group_names(ns);
                    }
                }
                "users" => user.username = p.name.clone(),
                "groups" => user.groups.push(p.name.clone()),
                "uids" => user.uid = p.name.clone(),
                _ => user
                    .extra
                    .entry(p.subresource.clone().unwrap_or_default())
                    .or_default()
                    .push(p.name.clone()),
            }
        }
        // A non-anonymous user is authenticated unless the groups say otherwise; the
        // anonymous user is unauthenticated.
        let (add, unless) = if user.username == ANONYMOUS {
            (ALL_UNAUTHENTICATED, &[ALL_UNAUTHENTICATED][..])
        } else {
            (
                ALL_AUTHENTICATED,
                &[ALL_AUTHENTICATED, ALL_UNAUTHENTICATED][..],
            )
        };
        if !user.groups.iter().any(|g| unless.contains(&g.as_str())) {
            user.groups.push(add.into());
        }
        user
    }
}

/// Reads the impersonation headers. Nothing asked is an empty [`Requested`].
pub fn requested(headers: &HeaderMap) -> Result<Requested, HeaderError> {
    let text = |name: &str, v: &http::HeaderValue| -> Result<String, HeaderError> {
        v.to_str()
            .map(str::to_owned)
            .map_err(|e| HeaderError::Malformed(name.to_owned(), e.to_string()))
    };
    let mut out = Requested::default();
    let user = match headers.get(USER_HEADER) {
        Some(v) => text(USER_HEADER, v)?,
        None => String::new(),
    };
    if !user.is_empty() {
        out.parts.push(match serviceaccount::split_username(&user) {
            Some((ns, name)) => Impersonation {
                resource: "serviceaccounts",
                api_group: "",
                namespace: Some(ns.into()),
                name: name.into(),
                subresource: None,
            },
            None => Impersonation {
                resource: "users",
                api_group: "",
                namespace: None,
                name: user.clone(),
                subresource: None,
            },
        });
    }
    for v in headers.get_all(GROUP_HEADER) {
        out.groups_specified = true;
        out.parts.push(Impersonation {
            resource: "groups",
            api_group: "",
            namespace: None,
            name: text(GROUP_HEADER, v)?,
            subresource: None,
        });
    }
    let mut extras: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, v) in headers {
        let Some(encoded) = name.as_str().strip_prefix(EXTRA_HEADER_PREFIX) else {
            continue;
        };
        // Keys are percent-encoded (url.PathEscape) into the header name.
        let key = percent_decode(encoded)
            .ok_or_else(|| {
                HeaderError::Malformed(name.to_string(), "invalid percent-encoding".into())
            })?
            .to_lowercase();
        extras.entry(key).or_default().push(text(name.as_str(), v)?);
    }
    for (key, values) in extras {
        for value in values {
            out.parts.push(Impersonation {
                resource: "userextras",
                api_group: "authentication.k8s.io",
                namespace: None,
                name: value,
                subresource: Some(key.clone()),
            });
        }
    }
    if let Some(v) = headers.get(UID_HEADER) {
        let uid = text(UID_HEADER, v)?;
        if !uid.is_empty() {
            out.parts.push(Impersonation {
                resource: "uids",
                api_group: "authentication.k8s.io",
                namespace: None,
                name: uid,
                subresource: None,
            });
        }
    }
    if user.is_empty() && !out.parts.is_empty() {
        let what: Vec<String> = out
            .parts
            .iter()
            .map(|p| format!("{} {:?}", p.resource, p.name))
            .collect();
        return Err(HeaderError::NoUser(format!("[{}]", what.join(", "))));
    }
    Ok(out)
}

/// Go's `url.PathUnescape`: `%XX` sequences decoded, the result UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Removes the impersonation headers, once acted on (upstream does, so nothing further
/// down, such as a proxied backend, sees them).
pub fn strip(headers: &mut HeaderMap) {
    let names: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn groups(u: &UserInfo) -> Vec<&str> {
        u.groups.iter().map(String::as_str).collect()
    }

    #[test]
    fn no_headers_ask_nothing() {
        assert!(requested(&headers(&[("accept", "*/*")]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_user_alone_is_authenticated() {
        let r = requested(&headers(&[("Impersonate-User", "intern")])).unwrap();
        assert_eq!(
            r.parts,
            [Impersonation {
                resource: "users",
                api_group: "",
                namespace: None,
                name: "intern".into(),
                subresource: None
            }]
        );
        let u = r.user();
        assert_eq!(u.username, "intern");
        assert_eq!(groups(&u), ["system:authenticated"]);
    }

    #[test]
    fn user_groups_uid_and_extras_as_upstream() {
        let r = requested(&headers(&[
            ("Impersonate-User", "intern"),
            ("Impersonate-Group", "interns"),
            ("Impersonate-Group", "readers"),
            ("Impersonate-Uid", "u-1"),
            ("Impersonate-Extra-Scopes", "view"),
            ("Impersonate-Extra-Scopes", "edit"),
            ("Impersonate-Extra-example.com%2Fteam", "blue"),
        ]))
        .unwrap();
        let resources: Vec<_> = r
            .parts
            .iter()
            .map(|p| {
                (
                    p.resource,
                    p.api_group,
                    p.name.as_str(),
                    p.subresource.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            resources,
            [
                ("users", "", "intern", None),
                ("groups", "", "interns", None),
                ("groups", "", "readers", None),
                (
                    "userextras",
                    "authentication.k8s.io",
                    "blue",
                    Some("example.com/team")
                ),
                (
                    "userextras",
                    "authentication.k8s.io",
                    "view",
                    Some("scopes")
                ),
                (
                    "userextras",
                    "authentication.k8s.io",
                    "edit",
                    Some("scopes")
                ),
                ("uids", "authentication.k8s.io", "u-1", None),
            ]
        );
        let u = r.user();
        assert_eq!(u.uid, "u-1");
        assert_eq!(groups(&u), ["interns", "readers", "system:authenticated"]);
        assert_eq!(u.extra["scopes"], ["view", "edit"]);
        assert_eq!(u.extra["example.com/team"], ["blue"]);
    }

    #[test]
    fn service_accounts_get_their_groups_unless_groups_are_given() {
        let r = requested(&headers(&[(
            "Impersonate-User",
            "system:serviceaccount:default:builder",
        )]))
        .unwrap();
        assert_eq!(r.parts[0].resource, "serviceaccounts");
        assert_eq!(r.parts[0].namespace.as_deref(), Some("default"));
        assert_eq!(r.parts[0].name, "builder");
        assert_eq!(
            groups(&r.user()),
            [
                "system:serviceaccounts",
                "system:serviceaccounts:default",
                "system:authenticated"
            ]
        );
        let r = requested(&headers(&[
            ("Impersonate-User", "system:serviceaccount:default:builder"),
            ("Impersonate-Group", "system:unauthenticated"),
        ]))
        .unwrap();
        assert_eq!(groups(&r.user()), ["system:unauthenticated"]);
    }

    #[test]
    fn anonymous_is_unauthenticated() {
        let r = requested(&headers(&[("Impersonate-User", "system:anonymous")])).unwrap();
        assert_eq!(groups(&r.user()), ["system:unauthenticated"]);
    }

    #[test]
    fn groups_extras_or_uid_without_a_user_are_refused() {
        for h in [
            vec![("Impersonate-Group", "interns")],
            vec![("Impersonate-Extra-scopes", "view")],
            vec![("Impersonate-Uid", "u-1")],
        ] {
            assert!(matches!(
                requested(&headers(&h)),
                Err(HeaderError::NoUser(_))
            ));
        }
        assert!(matches!(
            requested(&headers(&[
                ("Impersonate-User", "intern"),
                ("Impersonate-Extra-bad%zz", "v")
            ])),
            Err(HeaderError::Malformed(..))
        ));
    }

    #[test]
    fn headers_are_stripped_after_use() {
        let mut h = headers(&[
            ("Impersonate-User", "intern"),
            ("Impersonate-Extra-scopes", "view"),
            ("Accept", "*/*"),
        ]);
        strip(&mut h);
        assert_eq!(h.len(), 1);
    }
}
