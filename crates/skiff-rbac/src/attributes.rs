//! What a request asks to do, as upstream's `authorizer.Attributes`, and how it is derived
//! from the HTTP request, as upstream's `RequestInfoFactory`
//! (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go).

use skiff_apimachinery::selector::FieldSelector;
use skiff_apimachinery::user::UserInfo;

/// Verbs that come as a path segment before the resource (`/api/v1/watch/pods`).
const SPECIAL_VERBS: &[&str] = &["proxy", "watch"];
/// Special verbs whose trailing path is not a subresource but a proxied path.
const SPECIAL_VERBS_NO_SUBRESOURCES: &[&str] = &["proxy"];
/// Subresources of a namespace (`/api/v1/namespaces/x/status`), not resources inside it.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// The request's meaning for authorization, upstream's `RequestInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    pub path: String,
    pub verb: String,
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The path segments from the resource on (resource, name, subresource, rest).
    pub parts: Vec<String>,
}

impl RequestInfo {
    /// Derives the request info from method, path and raw query, exactly as upstream with
    /// API prefixes `api` and `apis` (`api` without a group). Paths that are not resource
    /// paths are non-resource requests whose verb is the lower-cased method.
    pub fn new(method: &str, path: &str, query: Option<&str>) -> RequestInfo {
        let r = RequestRef::parse(method, path, query);
        RequestInfo {
            is_resource_request: r.resource_request,
            path: path.to_owned(),
            verb: r.verb.into_owned(),
            api_prefix: r.api_prefix.to_owned(),
            api_group: r.api_group.to_owned(),
            api_version: r.api_version.to_owned(),
            namespace: r.namespace.to_owned(),
            resource: r.resource.to_owned(),
            subresource: r.subresource.to_owned(),
            name: r.name.into_owned(),
            parts: r
                .parts
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// [`RequestInfo`] borrowed from the request: what the authorizer's hot path reads, made
/// without allocating (only a name from an encoded `fieldSelector`, or an unusual method,
/// is owned). The one parser; [`RequestInfo::new`] owns its result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestRef<'a> {
    pub resource_request: bool,
    pub path: &'a str,
    pub verb: std::borrow::Cow<'a, str>,
    pub api_prefix: &'a str,
    pub api_group: &'a str,
    pub api_version: &'a str,
    pub namespace: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub name: std::borrow::Cow<'a, str>,
    /// The path from the resource on (resource, name, subresource, rest), `/`-separated.
    pub parts: &'a str,
}

/// `method` lower-cased, borrowed for the usual ones.
fn lower_method(method: &str) -> std::borrow::Cow<'static, str> {
    use std::borrow::Cow;
    match method {
        "GET" => Cow::Borrowed("get"),
        "HEAD" => Cow::Borrowed("head"),
        "POST" => Cow::Borrowed("post"),
        "PUT" => Cow::Borrowed("put"),
        "PATCH" => Cow::Borrowed("patch"),
        "DELETE" => Cow::Borrowed("delete"),
        "OPTIONS" => Cow::Borrowed("options"),
        other => Cow::Owned(other.to_ascii_lowercase()),
    }
}

/// The next `/`-separated segment of `rest` and what follows it.
fn segment(rest: &str) -> (&str, &str) {
    rest.split_once('/').unwrap_or((rest, ""))
}

impl<'a> RequestRef<'a> {
    /// See [`RequestInfo::new`].
    pub fn parse(method: &str, path: &'a str, query: Option<&'a str>) -> RequestRef<'a> {
        use std::borrow::Cow;
        let mut info = RequestRef {
            path,
            verb: lower_method(method),
            ..RequestRef::default()
        };
        let trimmed = path.trim_matches('/');
        // Segments from `rest` on; `count` of them in all (empty segments included, as
        // Go's strings.Split keeps them).
        let count = |rest: &str| {
            if rest.is_empty() {
                0
            } else {
                rest.split('/').count()
            }
        };
        if count(trimmed) < 3 {
            return info;
        }
        let (prefix, mut rest) = segment(trimmed);
        if !matches!(prefix, "api" | "apis") {
            return info;
        }
        info.api_prefix = prefix;
        if prefix != "api" {
            // Four parts at least: prefix, group, version, resource.
            if count(rest) < 3 {
                return info;
            }
            let (group, r) = segment(rest);
            info.api_group = group;
            rest = r;
        }
        info.resource_request = true;
        let (version, r) = segment(rest);
        info.api_version = version;
        rest = r;

        let (first, after) = segment(rest);
        if SPECIAL_VERBS.contains(&first) {
            if count(rest) < 2 {
                // Upstream errors ("unable to determine kind and namespace"); the request
                // is then refused as a resource request without a resource.
                info.verb = Cow::Borrowed(first);
                return info;
            }
            info.verb = Cow::Borrowed(first);
            rest = after;
        } else {
            info.verb = Cow::Borrowed(match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            });
        }

        let n = count(rest);
        let (first, after) = segment(rest);
        if first == "namespaces" {
            // A server-side apply creating a namespace PATCHes /namespaces/<new>: that
            // request is not inside the namespace it creates.
            if n == 2 && info.verb == "patch" {
            } else if n > 1 {
                let (ns, after_ns) = segment(after);
                info.namespace = ns;
                if n > 2 && !NAMESPACE_SUBRESOURCES.contains(&segment(after_ns).0) {
                    rest = after_ns;
                }
            }
        }
        info.parts = rest;
        let (resource, after) = segment(rest);
        let (name, after) = segment(after);
        let (subresource, _) = segment(after);
        let n = count(rest);
        if n >= 3 && !SPECIAL_VERBS_NO_SUBRESOURCES.contains(&info.verb.as_ref()) {
            info.subresource = subresource;
        }
        if n >= 2 {
            info.name = Cow::Borrowed(name);
        }
        if n >= 1 {
            info.resource = resource;
        }

        if info.name.is_empty() && info.verb == "get" {
            let mut watch = None;
            let mut field_selector = None;
            for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
                match k.as_ref() {
                    "watch" if watch.is_none() => watch = Some(v),
                    "fieldSelector" if field_selector.is_none() => field_selector = Some(v),
                    _ => {}
                }
            }
            // Any value but "0" or "false" is true, as Go's query-to-bool conversion.
            let watch =
                watch.is_some_and(|w| !(w.eq_ignore_ascii_case("false") || w.as_ref() == "0"));
            info.verb = Cow::Borrowed(if watch { "watch" } else { "list" });
            if let Some(Ok(selector)) = field_selector.as_deref().map(FieldSelector::parse) {
                if let Some(name) = selector.single_value("metadata.name") {
                    if is_valid_path_segment_name(name) {
                        info.name = Cow::Owned(name.to_owned());
                    }
                }
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = Cow::Borrowed("deletecollection");
        }
        info
    }

    /// The attributes of `user` making this request, borrowed.
    pub fn attributes<'u>(&'u self, user: &'u UserInfo) -> AttributesRef<'u> {
        AttributesRef {
            user,
            verb: &self.verb,
            namespace: self.namespace,
            api_group: self.api_group,
            resource: self.resource,
            subresource: self.subresource,
            name: &self.name,
            path: self.path,
            resource_request: self.resource_request,
        }
    }
}

/// [`Attributes`] borrowed: what rule matching reads.
#[derive(Debug, Clone, Copy)]
pub struct AttributesRef<'a> {
    pub user: &'a UserInfo,
    pub verb: &'a str,
    pub namespace: &'a str,
    pub api_group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub name: &'a str,
    pub path: &'a str,
    pub resource_request: bool,
}

/// Upstream's `path.IsValidPathSegmentName`: a name usable as one path segment.
fn is_valid_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// Who asks to do what, upstream's `authorizer.AttributesRecord`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub namespace: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The request path (non-resource requests are matched on it).
    pub path: String,
    pub resource_request: bool,
}

impl Attributes {
    /// The attributes of `user` making the request `info` describes.
    pub fn new(user: UserInfo, info: &RequestInfo) -> Attributes {
        Attributes {
            user,
            verb: info.verb.clone(),
            namespace: info.namespace.clone(),
            api_group: info.api_group.clone(),
            api_version: info.api_version.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            name: info.name.clone(),
            path: info.path.clone(),
            resource_request: info.is_resource_request,
        }
    }

    /// A resource request (for checks the server makes itself, such as `escalate`,
    /// `bind` or `impersonate`).
    pub fn resource(
        user: UserInfo,
        verb: &str,
        api_group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            user,
            verb: verb.into(),
            namespace: namespace.into(),
            api_group: api_group.into(),
            resource: resource.into(),
            name: name.into(),
            resource_request: true,
            ..Attributes::default()
        }
    }

    /// The same request on a subresource (`userextras/<key>` for impersonated extras).
    pub fn with_subresource(mut self, subresource: &str) -> Attributes {
        self.subresource = subresource.to_owned();
        self
    }

    /// These attributes, borrowed.
    pub fn as_ref(&self) -> AttributesRef<'_> {
        AttributesRef {
            user: &self.user,
            verb: &self.verb,
            namespace: &self.namespace,
            api_group: &self.api_group,
            resource: &self.resource,
            subresource: &self.subresource,
            name: &self.name,
            path: &self.path,
            resource_request: self.resource_request,
        }
    }

    /// The resource with its subresource, as rules name it (`pods/log`).
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_url(url: &str) -> (&str, Option<&str>) {
        match url.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (url, None),
        }
    }

    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a [&'a str],
    );

    /// Upstream's TestGetAPIRequestInfo success cases: method, url, verb, prefix, group,
    /// version, namespace, resource, subresource, name, parts.
    #[test]
    fn resource_requests() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("GET", "/api/v1/namespaces", "list", "api", "", "v1", "", "namespaces", "", "", &["namespaces"]),
            ("GET", "/api/v1/namespaces/other", "get", "api", "", "v1", "other", "namespaces", "", "other", &["namespaces", "other"]),
            ("GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", "", &["pods"]),
            ("GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo"]),
            ("HEAD", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo"]),
            ("GET", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", &["pods"]),
            ("HEAD", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", &["pods"]),
            ("PATCH", "/api/v1/namespaces/new-namespace", "patch", "api", "", "v1", "", "namespaces", "", "new-namespace", &["namespaces", "new-namespace"]),
            // special verbs
            ("GET", "/api/v1/proxy/namespaces/other/pods/foo", "proxy", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo"]),
            ("GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", "proxy", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo", "subpath", "not", "a", "subresource"]),
            ("GET", "/api/v1/watch/pods", "watch", "api", "", "v1", "", "pods", "", "", &["pods"]),
            ("GET", "/api/v1/pods?watch=true", "watch", "api", "", "v1", "", "pods", "", "", &["pods"]),
            ("GET", "/api/v1/pods?watch=false", "list", "api", "", "v1", "", "pods", "", "", &["pods"]),
            ("GET", "/api/v1/watch/namespaces/other/pods", "watch", "api", "", "v1", "other", "pods", "", "", &["pods"]),
            ("GET", "/api/v1/namespaces/other/pods?watch=1", "watch", "api", "", "v1", "other", "pods", "", "", &["pods"]),
            ("GET", "/api/v1/namespaces/other/pods?watch=0", "list", "api", "", "v1", "other", "pods", "", "", &["pods"]),
            // subresource identification
            ("GET", "/api/v1/namespaces/other/pods/foo/status", "get", "api", "", "v1", "other", "pods", "status", "foo", &["pods", "foo", "status"]),
            ("GET", "/api/v1/namespaces/other/pods/foo/proxy/subpath", "get", "api", "", "v1", "other", "pods", "proxy", "foo", &["pods", "foo", "proxy", "subpath"]),
            ("PUT", "/api/v1/namespaces/other/finalize", "update", "api", "", "v1", "other", "namespaces", "finalize", "other", &["namespaces", "other", "finalize"]),
            ("PUT", "/api/v1/namespaces/other/status", "update", "api", "", "v1", "other", "namespaces", "status", "other", &["namespaces", "other", "status"]),
            // verb identification
            ("PATCH", "/api/v1/namespaces/other/pods/foo", "patch", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo"]),
            ("DELETE", "/api/v1/namespaces/other/pods/foo", "delete", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo"]),
            ("POST", "/api/v1/namespaces/other/pods", "create", "api", "", "v1", "other", "pods", "", "", &["pods"]),
            // deletecollection verb identification
            ("DELETE", "/api/v1/nodes", "deletecollection", "api", "", "v1", "", "nodes", "", "", &["nodes"]),
            ("DELETE", "/api/v1/namespaces", "deletecollection", "api", "", "v1", "", "namespaces", "", "", &["namespaces"]),
            ("DELETE", "/api/v1/namespaces/other/pods", "deletecollection", "api", "", "v1", "other", "pods", "", "", &["pods"]),
            ("DELETE", "/apis/extensions/v1/namespaces/other/pods", "deletecollection", "apis", "extensions", "v1", "other", "pods", "", "", &["pods"]),
            // api group and version identification
            ("POST", "/apis/extensions/v1/namespaces/other/pods", "create", "apis", "extensions", "v1", "other", "pods", "", "", &["pods"]),
            ("POST", "/apis/extensions/v1beta3/namespaces/other/pods", "create", "apis", "extensions", "v1beta3", "other", "pods", "", "", &["pods"]),
        ];
        for &(method, url, verb, prefix, group, version, ns, resource, sub, name, parts) in cases {
            let (path, query) = split_url(url);
            let info = RequestInfo::new(method, path, query);
            assert!(info.is_resource_request, "{method} {url}");
            let got = (
                info.verb.as_str(),
                info.api_prefix.as_str(),
                info.api_group.as_str(),
                info.api_version.as_str(),
                info.namespace.as_str(),
                info.resource.as_str(),
                info.subresource.as_str(),
                info.name.as_str(),
            );
            assert_eq!(
                got,
                (verb, prefix, group, version, ns, resource, sub, name),
                "{method} {url}"
            );
            assert_eq!(info.parts, parts, "{method} {url}");
        }
    }

    /// Upstream's TestGetAPIRequestInfo error cases and TestGetNonAPIRequestInfo.
    #[test]
    fn non_resource_requests() {
        let cases = [
            ("/", false),
            ("/api/version/", false),
            ("/apis/group/version/", false),
            ("/badprefix/version/resource", false),
            ("/apis/version/resource", false),
            ("/api/version/resource", true),
            ("/apis/group/version/resource/name/subresource", true),
            ("/api/version/resource/name/subresource", true),
            ("/apis/batch/v1/job", true),
            ("/apis/batch/v1/job/foo", true),
            ("/apis/batch/v1/job/foo/scale", true),
            ("/not-api/version/resource", false),
            ("/apis/extensions/v1beta1", false),
            ("/apis/extensions/v1beta1/", false),
            ("/api/version", false),
            ("/api", false),
            ("", false),
        ];
        for (url, resource) in cases {
            let info = RequestInfo::new("GET", url, None);
            assert_eq!(info.is_resource_request, resource, "{url}");
            if !resource {
                assert_eq!(info.verb, "get", "{url}");
                assert_eq!(info.path, url);
            }
        }
    }

    /// Upstream's TestFieldSelectorParsing: url, name, verb.
    #[test]
    fn field_selector_names() {
        let cases = [
            ("/apis/group/version/resource", "", "list"),
            (
                "/apis/group/version/resource?fieldSelector=metadata.name=name1",
                "name1",
                "list",
            ),
            (
                "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1",
                "name1",
                "watch",
            ),
            (
                "/apis/group/version/resource?fieldSelector=foo=bar",
                "",
                "list",
            ),
            (
                "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo",
                "",
                "list",
            ),
            (
                "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true",
                "",
                "watch",
            ),
            (
                "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false",
                "",
                "list",
            ),
        ];
        for (url, name, verb) in cases {
            let (path, query) = split_url(url);
            let info = RequestInfo::new("GET", path, query);
            assert_eq!(
                (info.name.as_str(), info.verb.as_str()),
                (name, verb),
                "{url}"
            );
        }
    }
}
