//! The 403 a denied request gets, as upstream's `responsewriters.Forbidden` and
//! `apierrors.NewForbidden` write it.

use crate::attributes::Attributes;

/// What the `Status` of a denial carries: its message and its `details`
/// (`name`, `group`, `kind` = the resource, empty ones omitted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    pub message: String,
    pub name: String,
    pub group: String,
    pub resource: String,
}

/// Upstream's `forbiddenMessage`: who cannot do what, where.
pub fn forbidden_message(a: &Attributes) -> String {
    let user = &a.user.username;
    if !a.resource_request {
        return format!("User {user:?} cannot {} path {:?}", a.verb, a.path);
    }
    let resource = a.combined_resource();
    if a.namespace.is_empty() {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            a.verb, a.api_group
        )
    } else {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            a.verb, a.api_group, a.namespace
        )
    }
}

/// Upstream's `NewForbidden(groupResource, name, err)`: the message prefixed by the
/// qualified resource and name.
pub fn new_forbidden(group: &str, resource: &str, name: &str, err: &str) -> Forbidden {
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    let message = if resource.is_empty() && group.is_empty() {
        format!("forbidden: {err}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {err}")
    } else {
        format!("{qualified} {name:?} is forbidden: {err}")
    };
    Forbidden {
        message,
        name: name.to_owned(),
        group: group.to_owned(),
        resource: resource.to_owned(),
    }
}

/// The denial of the request `a`, with the authorizer's reason appended when it has one.
pub fn forbidden(a: &Attributes, reason: &str) -> Forbidden {
    let mut err = forbidden_message(a);
    if !reason.is_empty() {
        err = format!("{err}: {reason}");
    }
    new_forbidden(&a.api_group, &a.resource, &a.name, &err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::RequestInfo;
    use skiff_apimachinery::user::UserInfo;

    fn attrs(user: &str, method: &str, path: &str) -> Attributes {
        let u = UserInfo {
            username: user.into(),
            ..UserInfo::default()
        };
        Attributes::new(u, &RequestInfo::new(method, path, None))
    }

    #[test]
    fn messages_as_upstream() {
        let f = forbidden(
            &attrs(
                "intern",
                "DELETE",
                "/apis/apps/v1/namespaces/production/deployments/x",
            ),
            "",
        );
        assert_eq!(
            f.message,
            r#"deployments.apps "x" is forbidden: User "intern" cannot delete resource "deployments" in API group "apps" in the namespace "production""#
        );
        assert_eq!(
            (f.name.as_str(), f.group.as_str(), f.resource.as_str()),
            ("x", "apps", "deployments")
        );
        let f = forbidden(&attrs("intern", "GET", "/api/v1/nodes"), "");
        assert_eq!(
            f.message,
            r#"nodes is forbidden: User "intern" cannot list resource "nodes" in API group "" at the cluster scope"#
        );
        let f = forbidden(&attrs("system:anonymous", "GET", "/foo"), "");
        assert_eq!(
            f.message,
            r#"forbidden: User "system:anonymous" cannot get path "/foo""#
        );
        let f = forbidden(
            &attrs("intern", "GET", "/api/v1/namespaces/a/pods/p/log"),
            "RBAC: x",
        );
        assert_eq!(
            f.message,
            r#"pods "p" is forbidden: User "intern" cannot get resource "pods/log" in API group "" in the namespace "a": RBAC: x"#
        );
    }
}
