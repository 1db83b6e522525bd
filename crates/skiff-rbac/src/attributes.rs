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
        let mut info = RequestInfo {
            path: path.to_owned(),
            verb: method.to_ascii_lowercase(),
            ..RequestInfo::default()
        };
        let trimmed = path.trim_matches('/');
        let mut parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
            return info;
        }
        info.api_prefix = parts[0].to_owned();
        parts.remove(0);
        if info.api_prefix != "api" {
            // Four parts at least: prefix, group, version, resource.
            if parts.len() < 3 {
                return info;
            }
            info.api_group = parts.remove(0).to_owned();
        }
        info.is_resource_request = true;
        info.api_version = parts.remove(0).to_owned();

        if SPECIAL_VERBS.contains(&parts[0]) {
            if parts.len() < 2 {
                // Upstream errors ("unable to determine kind and namespace"); the request
                // is then refused as a resource request without a resource.
                info.verb = parts[0].to_owned();
                return info;
            }
            info.verb = parts.remove(0).to_owned();
        } else {
            info.verb = match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_owned();
        }

        if parts[0] == "namespaces" {
            // A server-side apply creating a namespace PATCHes /namespaces/<new>: that
            // request is not inside the namespace it creates.
            if parts.len() == 2 && info.verb == "patch" {
            } else if parts.len() > 1 {
                info.namespace = parts[1].to_owned();
                if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
                    parts.drain(..2);
                }
            }
        }
        info.parts = parts.iter().map(|s| (*s).to_owned()).collect();
        if parts.len() >= 3 && !SPECIAL_VERBS_NO_SUBRESOURCES.contains(&info.verb.as_str()) {
            info.subresource = parts[2].to_owned();
        }
        if parts.len() >= 2 {
            info.name = parts[1].to_owned();
        }
        if !parts.is_empty() {
            info.resource = parts[0].to_owned();
        }

        if info.name.is_empty() && info.verb == "get" {
            let mut watch = None;
            let mut field_selector = None;
            for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
                match k.as_ref() {
                    "watch" if watch.is_none() => watch = Some(v.into_owned()),
                    "fieldSelector" if field_selector.is_none() => {
                        field_selector = Some(v.into_owned())
                    }
                    _ => {}
                }
            }
            // Any value but "0" or "false" is true, as Go's query-to-bool conversion.
            let watch =
                watch.is_some_and(|w| !matches!(w.to_ascii_lowercase().as_str(), "false" | "0"));
            info.verb = if watch { "watch" } else { "list" }.to_owned();
            if let Some(Ok(selector)) = field_selector.as_deref().map(FieldSelector::parse) {
                if let Some(name) = selector.single_value("metadata.name") {
                    if is_valid_path_segment_name(name) {
                        info.name = name.to_owned();
                    }
                }
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".into();
        }
        info
    }
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
