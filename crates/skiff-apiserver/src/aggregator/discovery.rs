//! Remote group-versions in the server's discovery: the legacy `/apis` group list and
//! `/apis/<group>` documents from the APIServices, and aggregated discovery from the
//! APIResourceList each backend last answered (Stale while it is unavailable).

use serde_json::{json, Value};

use super::{Aggregator, Route};

fn version_entry(r: &Route) -> Value {
    json!({"groupVersion": format!("{}/{}", r.group, r.version), "version": r.version})
}

/// Remote routes grouped by group, in priority order, each group's versions preferred
/// first.
fn groups(agg: &Aggregator) -> Vec<(String, Vec<std::sync::Arc<Route>>)> {
    let mut out: Vec<(String, Vec<std::sync::Arc<Route>>)> = Vec::new();
    for r in agg.remote_routes() {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => versions.push(r),
            None => out.push((r.group.clone(), vec![r])),
        }
    }
    out
}

impl Aggregator {
    /// Adds the remote groups (and remote versions of local groups) to an `APIGroupList`.
    pub fn extend_group_list(&self, list: &mut Value) {
        if self.remote.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return;
        }
        let Some(items) = list["groups"].as_array_mut() else {
            return;
        };
        for (group, routes) in groups(self) {
            let entries: Vec<Value> = routes.iter().map(|r| version_entry(r)).collect();
            match items.iter_mut().find(|g| g["name"] == group.as_str()) {
                Some(existing) => {
                    if let Some(versions) = existing["versions"].as_array_mut() {
                        for e in entries {
                            if !versions.contains(&e) {
                                versions.push(e);
                            }
                        }
                    }
                }
                None => items.push(json!({
                    "name": group,
                    "versions": entries,
                    "preferredVersion": entries[0],
                })),
            }
        }
    }

    /// `/apis/<group>`: the local document (if the group is served here) with the remote
    /// versions added, or one made from the APIServices alone.
    pub fn group(&self, local: Option<Value>, group: &str) -> Option<Value> {
        let routes: Vec<_> = groups(self)
            .into_iter()
            .find(|(g, _)| g == group)
            .map(|(_, r)| r)
            .unwrap_or_default();
        if routes.is_empty() {
            return local;
        }
        let entries: Vec<Value> = routes.iter().map(|r| version_entry(r)).collect();
        match local {
            Some(mut doc) => {
                if let Some(versions) = doc["versions"].as_array_mut() {
                    for e in entries {
                        if !versions.contains(&e) {
                            versions.push(e);
                        }
                    }
                }
                Some(doc)
            }
            None => Some(json!({
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": group,
                "versions": entries,
                "preferredVersion": entries[0],
            })),
        }
    }

    /// Adds the remote group-versions whose resources are known to an aggregated
    /// `APIGroupDiscoveryList` (either version: both have this shape), `Stale` while their
    /// APIService is unavailable, as upstream's discovery manager marks them.
    pub fn extend_aggregated(&self, doc: &mut Value) {
        if self.remote.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return;
        }
        let Some(items) = doc["items"].as_array_mut() else {
            return;
        };
        for (group, routes) in groups(self) {
            let versions: Vec<Value> = routes
                .iter()
                .filter_map(|r| {
                    let list = self.cached_discovery(&r.name)?;
                    Some(json!({
                        "version": r.version,
                        "resources": aggregated_resources(&list),
                        "freshness": if r.available() { "Current" } else { "Stale" },
                    }))
                })
                .collect();
            if versions.is_empty() {
                continue;
            }
            match items
                .iter_mut()
                .find(|i| i["metadata"]["name"] == group.as_str())
            {
                Some(item) => {
                    if let Some(existing) = item["versions"].as_array_mut() {
                        existing.extend(versions);
                    }
                }
                None => items.push(json!({
                    "metadata": {"name": group, "creationTimestamp": null},
                    "versions": versions,
                })),
            }
        }
    }
}

/// A legacy `APIResourceList` in aggregated form: resources with their subresources
/// folded in (upstream's `convertAPIResourceList`).
pub fn aggregated_resources(list: &Value) -> Vec<Value> {
    let resources: Vec<&Value> = list["resources"].as_array().into_iter().flatten().collect();
    let kind = |r: &Value| {
        json!({
            "group": r["group"].as_str().unwrap_or(""),
            "version": r["version"].as_str().unwrap_or(""),
            "kind": r["kind"].as_str().unwrap_or(""),
        })
    };
    let mut out: Vec<Value> = Vec::new();
    for r in &resources {
        let Some(name) = r["name"].as_str().filter(|n| !n.contains('/')) else {
            continue;
        };
        let mut entry = json!({
            "resource": name,
            "responseKind": kind(r),
            "scope": if r["namespaced"] == true { "Namespaced" } else { "Cluster" },
            "singularResource": r["singularName"].as_str().unwrap_or(""),
            "verbs": r["verbs"].as_array().cloned().unwrap_or_default(),
        });
        for field in ["shortNames", "categories"] {
            if r[field].as_array().is_some_and(|a| !a.is_empty()) {
                entry[field] = r[field].clone();
            }
        }
        out.push(entry);
    }
    for r in &resources {
        let Some((parent, sub)) = r["name"].as_str().and_then(|n| n.split_once('/')) else {
            continue;
        };
        let Some(entry) = out.iter_mut().find(|e| e["resource"] == parent) else {
            continue;
        };
        let subresource = json!({
            "subresource": sub,
            "responseKind": kind(r),
            "verbs": r["verbs"].as_array().cloned().unwrap_or_default(),
        });
        match entry["subresources"].as_array_mut() {
            Some(subs) => subs.push(subresource),
            None => entry["subresources"] = json!([subresource]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lists_fold_subresources_into_their_parents() {
        let list = json!({"kind": "APIResourceList", "groupVersion": "metrics.k8s.io/v1beta1",
        "resources": [
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"], "shortNames": ["nm"]},
            {"name": "pods/status", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get"]},
            {"name": "orphans/status", "namespaced": true, "kind": "X", "verbs": ["get"]},
        ]});
        let got = aggregated_resources(&list);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["resource"], "pods");
        assert_eq!(got[0]["scope"], "Namespaced");
        assert_eq!(got[0]["responseKind"]["kind"], "PodMetrics");
        assert_eq!(got[0]["subresources"][0]["subresource"], "status");
        assert_eq!(got[1]["scope"], "Cluster");
        assert_eq!(got[1]["shortNames"], json!(["nm"]));
        assert!(got[1].get("subresources").is_none());
    }

    #[test]
    fn a_resource_list_of_the_wrong_shape_gives_no_resources() {
        assert!(aggregated_resources(&json!("nonsense")).is_empty());
        assert!(aggregated_resources(&json!({"resources": [{"name": 3}]})).is_empty());
    }
}
