//! Discovery documents: `/version`, `/api`, `/apis` and the per-group-version resource
//! lists clients read to map kinds to URLs (legacy, non-aggregated form).

use serde_json::{json, Value};

use crate::resources::{Registry, ResourceInfo};

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": crate::GIT_VERSION,
        "gitCommit": crate::VERSION_HASH,
        "gitTreeState": "clean",
        "buildDate": "2026-11-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }),
    })
}

/// `/api`: the core group's versions.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    })
}

fn groups(registry: &Registry) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (g, v, _) in registry.group_versions() {
        if g.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(name, _)| *name == g) {
            Some((_, versions)) => versions.push(v),
            None => out.push((g, vec![v])),
        }
    }
    out
}

/// `/apis`: every named group.
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = groups(registry)
        .iter()
        .map(|(g, versions)| group_entry(g, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    let (g, versions) = groups(registry).into_iter().find(|(g, _)| g == name)?;
    let mut entry = group_entry(&g, &versions);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

/// The verbs a resource is served with.
fn verbs(r: &ResourceInfo) -> &'static [&'static str] {
    if r.create_only {
        &["create"]
    } else if crate::metricsapi::served(r) {
        &crate::metricsapi::VERBS
    } else {
        &VERBS
    }
}

/// `discovery.StorageVersionHash`: the first 8 bytes of the SHA-256 of
/// `group/version/kind`, base64, so clients (the storage version migrator) notice when a
/// resource's storage version changes without learning what it is.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// The version a resource's objects are stored in: a CRD's storage version; a built-in kind
/// is stored as it is served.
fn storage_version(r: &ResourceInfo) -> &str {
    match &r.custom {
        Some(c) => &c.storage_version,
        None => &r.version,
    }
}

fn resource_entry(r: &ResourceInfo) -> Value {
    let mut entry = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": verbs(r),
        "storageVersionHash": storage_version_hash(&r.group, storage_version(r), &r.kind),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    entry
}

fn subresource(r: &ResourceInfo, name: &str, kind: &str, verbs: &[&str]) -> Value {
    json!({
        "name": format!("{}/{name}", r.plural),
        "singularName": "",
        "namespaced": r.namespaced,
        "kind": kind,
        "verbs": verbs,
    })
}

/// `/api/v1` or `/apis/<group>/<version>`: the resources and subresources served there.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let (_, _, resources) = registry
        .group_versions()
        .into_iter()
        .find(|(g, v, _)| g == group && v == version)?;
    let mut list = Vec::new();
    for r in &resources {
        list.push(resource_entry(r));
        if crate::certificates::is_csr(r) {
            list.push(subresource(
                r,
                "approval",
                &r.kind,
                &["get", "patch", "update"],
            ));
        }
        if r.status_subresource {
            list.push(subresource(
                r,
                "status",
                &r.kind,
                &["get", "patch", "update"],
            ));
        }
        if r.scale_subresource {
            let mut scale = subresource(r, "scale", "Scale", &["get", "patch", "update"]);
            scale["group"] = json!("autoscaling");
            scale["version"] = json!("v1");
            list.push(scale);
        }
        if (r.group.as_str(), r.kind.as_str()) == ("", "Pod") {
            list.push(subresource(r, "log", "Pod", &["get"]));
            list.push(subresource(r, "binding", "Binding", &["create"]));
            list.push(subresource(
                r,
                "ephemeralcontainers",
                "Pod",
                &["get", "patch", "update"],
            ));
            let mut eviction = subresource(r, "eviction", "Eviction", &["create"]);
            eviction["group"] = json!("policy");
            eviction["version"] = json!("v1");
            list.push(eviction);
        }
        if (r.group.as_str(), r.kind.as_str()) == ("", "ServiceAccount") {
            let mut token = subresource(r, "token", "TokenRequest", &["create"]);
            token["group"] = json!("authentication.k8s.io");
            token["version"] = json!("v1");
            list.push(token);
        }
        if (r.group.as_str(), r.kind.as_str()) == ("", "Namespace") {
            list.push(subresource(r, "finalize", "Namespace", &["update"]));
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": list,
    }))
}

/// A version of aggregated discovery (`apidiscovery.k8s.io`): kubectl 1.30+ asks for v2
/// first, 1.26–1.29 only for v2beta1. The two documents have the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregated {
    V2,
    V2beta1,
}

impl Aggregated {
    fn version(self) -> &'static str {
        match self {
            Aggregated::V2 => "v2",
            Aggregated::V2beta1 => "v2beta1",
        }
    }

    /// The response's Content-Type, which clients read to tell the formats apart.
    pub fn content_type(self) -> String {
        format!(
            "application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList",
            self.version()
        )
    }
}

/// Which discovery format an `Accept` header gets: the first acceptable media range in the
/// client's order (upstream negotiates the same way), matching the media-type parameters
/// exactly: `v=v2beta1` is not `v=v2`. `None` means the legacy documents.
pub fn negotiate(accept: &str) -> Option<Aggregated> {
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut group = None;
        let mut version = None;
        let mut as_kind = None;
        let mut quality_zero = false;
        for param in parts {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            match k.trim() {
                "g" => group = Some(v.trim()),
                "v" => version = Some(v.trim()),
                "as" => as_kind = Some(v.trim()),
                "q" => quality_zero = v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0),
                _ => {}
            }
        }
        if quality_zero {
            continue;
        }
        let wants_aggregated = group.is_some() || version.is_some() || as_kind.is_some();
        match media.as_str() {
            "application/json" if wants_aggregated => {
                let discovery = group == Some("apidiscovery.k8s.io")
                    && as_kind == Some("APIGroupDiscoveryList");
                match version {
                    Some("v2") if discovery => return Some(Aggregated::V2),
                    Some("v2beta1") if discovery => return Some(Aggregated::V2beta1),
                    _ => {}
                }
            }
            "application/json" | "*/*" | "application/*" => return None,
            _ => {}
        }
    }
    None
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let kind = |group: &str, version: &str, kind: &str| json!({"group": group, "version": version, "kind": kind});
    let mut subresources = Vec::new();
    if crate::certificates::is_csr(r) {
        subresources.push(json!({"subresource": "approval", "responseKind": kind(&r.group, &r.version, &r.kind), "verbs": ["get", "patch", "update"]}));
    }
    if r.status_subresource {
        subresources.push(json!({"subresource": "status", "responseKind": kind(&r.group, &r.version, &r.kind), "verbs": ["get", "patch", "update"]}));
    }
    if r.scale_subresource {
        subresources.push(json!({"subresource": "scale", "responseKind": kind("autoscaling", "v1", "Scale"), "verbs": ["get", "patch", "update"]}));
    }
    if (r.group.as_str(), r.kind.as_str()) == ("", "Pod") {
        subresources.push(
            json!({"subresource": "log", "responseKind": kind("", "", "Pod"), "verbs": ["get"]}),
        );
        subresources.push(json!({"subresource": "binding", "responseKind": kind("", "", "Binding"), "verbs": ["create"]}));
        subresources.push(json!({"subresource": "ephemeralcontainers", "responseKind": kind("", "", "Pod"), "verbs": ["get", "patch", "update"]}));
        subresources.push(json!({"subresource": "eviction", "responseKind": kind("policy", "v1", "Eviction"), "verbs": ["create"]}));
    }
    if (r.group.as_str(), r.kind.as_str()) == ("", "ServiceAccount") {
        subresources.push(json!({"subresource": "token", "responseKind": kind("authentication.k8s.io", "v1", "TokenRequest"), "verbs": ["create"]}));
    }
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": kind("", "", &r.kind),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": verbs(r),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

/// `/api` (core only) or `/apis` (named groups) in the aggregated form: every group,
/// version and resource in one response, so clients skip one request per group-version.
pub fn aggregated(registry: &Registry, core: bool, format: Aggregated) -> Value {
    let mut items: Vec<Value> = Vec::new();
    for (group, version, resources) in registry.group_versions() {
        if group.is_empty() != core {
            continue;
        }
        let entry = json!({
            "version": version,
            "resources": resources.iter().map(|r| aggregated_resource(r)).collect::<Vec<_>>(),
            "freshness": "Current",
        });
        match items
            .iter_mut()
            .find(|i| i["metadata"]["name"] == group.as_str())
        {
            Some(item) => item["versions"]
                .as_array_mut()
                .expect("versions is an array")
                .push(entry),
            None => items.push(json!({
                "metadata": {"name": group, "creationTimestamp": null},
                "versions": [entry],
            })),
        }
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{}", format.version()),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Accept headers each kubectl sends for `/api` and `/apis` (client-go's
    /// `AcceptV1`/`AcceptV2Beta1`/`AcceptV2` by release).
    #[test]
    fn storage_version_hash_is_upstreams() {
        // Upstream's own value for apps/v1 Deployment (`kubectl get --raw /apis/apps/v1`).
        assert_eq!(
            storage_version_hash("apps", "v1", "Deployment"),
            "8aSe+NMegvE="
        );
        assert_eq!(storage_version_hash("", "v1", "ConfigMap"), "qFsyl6wFWjQ=");
    }

    #[test]
    fn each_kubectl_gets_the_discovery_format_it_asks_for() {
        let v2beta1_only = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        let v2_first = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        let cases = [
            (v2beta1_only, Some(Aggregated::V2beta1)),
            (v2_first, Some(Aggregated::V2)),
            ("application/json", None),
            ("*/*", None),
            ("", None),
            ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json", None),
            ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,application/json", None),
            ("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList", Some(Aggregated::V2beta1)),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(accept), want, "{accept}");
        }
    }
}
