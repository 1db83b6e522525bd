//! The Local APIServices: one per served group-version, as kube-apiserver's autoregister
//! and crdregistration controllers keep them. Built-in group-versions are synced once at
//! start (label `onstart`), CRD group-versions for as long as the server runs (label
//! `true`); an APIService without the label belongs to its user and is left alone.

use serde_json::{json, Value};

use crate::resources::Snapshot;

/// The label that marks an APIService as the server's own.
pub const AUTOMANAGED: &str = "kube-aggregator.kubernetes.io/automanaged";

/// When an automanaged APIService is synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// Created, updated or deleted only when the server starts (built-in group-versions).
    OnStart,
    /// Kept in step all the time (CRD group-versions).
    Always,
}

impl Sync {
    fn label(self) -> &'static str {
        match self {
            Sync::OnStart => "onstart",
            Sync::Always => "true",
        }
    }
}

/// One APIService the server wants to exist.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub group: String,
    pub version: String,
    pub group_priority: i64,
    pub version_priority: i64,
    pub sync: Sync,
}

impl Desired {
    /// `<version>.<group>`: `v1.` for the core group.
    pub fn name(&self) -> String {
        format!("{}.{}", self.version, self.group)
    }

    fn spec(&self) -> Value {
        json!({
            "group": self.group,
            "version": self.version,
            "groupPriorityMinimum": self.group_priority,
            "versionPriority": self.version_priority,
        })
    }

    fn object(&self) -> Value {
        json!({
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": self.name(), "labels": {AUTOMANAGED: self.sync.label()}},
            "spec": self.spec(),
        })
    }
}

/// Upstream's `apiVersionPriorities` (kube-apiserver's table merged over the generic
/// control plane's), for the group-versions skiff can serve: (groupPriorityMinimum,
/// versionPriority). A group-version not listed gets no APIService, as upstream.
pub fn priority(group: &str, version: &str) -> Option<(i64, i64)> {
    Some(match (group, version) {
        ("", "v1") => (18000, 1),
        ("events.k8s.io", "v1") => (17750, 15),
        ("events.k8s.io", "v1beta1") => (17750, 5),
        ("apps", "v1") => (17800, 15),
        ("authentication.k8s.io", "v1") => (17700, 15),
        ("authorization.k8s.io", "v1") => (17600, 15),
        ("autoscaling", "v1") => (17500, 15),
        ("autoscaling", "v2") => (17500, 30),
        ("batch", "v1") => (17400, 15),
        ("certificates.k8s.io", "v1") => (17300, 15),
        ("networking.k8s.io", "v1") => (17200, 15),
        ("policy", "v1") => (17100, 15),
        ("rbac.authorization.k8s.io", "v1") => (17000, 15),
        ("storage.k8s.io", "v1") => (16800, 15),
        ("apiextensions.k8s.io", "v1") => (16700, 15),
        ("admissionregistration.k8s.io", "v1") => (16700, 15),
        ("scheduling.k8s.io", "v1") => (16600, 15),
        ("coordination.k8s.io", "v1") => (16500, 15),
        ("node.k8s.io", "v1") => (16300, 15),
        ("discovery.k8s.io", "v1") => (16200, 15),
        ("flowcontrol.apiserver.k8s.io", "v1") => (16100, 21),
        ("resource.k8s.io", "v1beta2") => (16200, 15),
        // metrics-server's APIService; skiff serves the group itself (decision 0025).
        ("metrics.k8s.io", "v1beta1") => (100, 100),
        _ => return None,
    })
}

/// The APIServices the served table calls for: built-in group-versions with an upstream
/// priority, and every CRD group-version at upstream's CRD priorities (1000, 100).
pub fn desired(snapshot: &Snapshot) -> Vec<Desired> {
    let mut out = Vec::new();
    for (group, version, resources) in snapshot.group_versions() {
        let custom = resources.iter().all(|r| r.custom.is_some());
        let (group_priority, version_priority, sync) = if custom {
            (1000, 100, Sync::Always)
        } else {
            match priority(&group, &version) {
                Some((g, v)) => (g, v, Sync::OnStart),
                None => continue,
            }
        };
        out.push(Desired {
            group,
            version,
            group_priority,
            version_priority,
            sync,
        });
    }
    out
}

/// One write the registration controller makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Create(Value),
    /// The whole new object (its spec and label replaced).
    Update(Value),
    Delete(String),
}

/// Upstream's `checkAPIService` table, over every desired and current APIService:
///
/// | current \ desired          | none          | on start      | always |
/// |----------------------------|---------------|---------------|--------|
/// | not found                  | -             | create once   | create |
/// | not automanaged            | -             | -             | -      |
/// | automanaged on start       | delete once   | update once   | update once |
/// | automanaged always         | delete        | update once   | update |
///
/// "once" means on the first pass after the server starts (`first_pass`).
pub fn plan(desired: &[Desired], current: &[Value], first_pass: bool) -> Vec<Change> {
    let mut changes = Vec::new();
    let label = |obj: &Value| {
        obj["metadata"]["labels"][AUTOMANAGED]
            .as_str()
            .map(String::from)
    };
    for d in desired {
        let name = d.name();
        let existing = current
            .iter()
            .find(|c| c["metadata"]["name"] == name.as_str());
        let Some(existing) = existing else {
            if first_pass || d.sync == Sync::Always {
                changes.push(Change::Create(d.object()));
            }
            continue;
        };
        let managed = label(existing);
        let update_allowed = match managed.as_deref() {
            None => false,
            Some("onstart") => first_pass,
            Some(_) => first_pass || d.sync == Sync::Always,
        };
        let same = existing["spec"] == d.spec() && managed.as_deref() == Some(d.sync.label());
        if update_allowed && !same {
            let mut next = existing.clone();
            next["spec"] = d.spec();
            next["metadata"]["labels"][AUTOMANAGED] = json!(d.sync.label());
            changes.push(Change::Update(next));
        }
    }
    for c in current {
        let Some(name) = c["metadata"]["name"].as_str() else {
            continue;
        };
        if desired.iter().any(|d| d.name() == name) {
            continue;
        }
        match label(c).as_deref() {
            Some("onstart") if first_pass => changes.push(Change::Delete(name.to_owned())),
            Some("true") => changes.push(Change::Delete(name.to_owned())),
            _ => {}
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{builtins, Registry};

    fn d(group: &str, version: &str, sync: Sync) -> Desired {
        Desired {
            group: group.into(),
            version: version.into(),
            group_priority: 1000,
            version_priority: 100,
            sync,
        }
    }

    fn current(name: &str, label: Option<&str>, spec: Value) -> Value {
        let mut obj = json!({"metadata": {"name": name}, "spec": spec});
        if let Some(l) = label {
            obj["metadata"]["labels"] = json!({AUTOMANAGED: l});
        }
        obj
    }

    fn names(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::Create(o) => format!("create {}", o["metadata"]["name"].as_str().unwrap()),
                Change::Update(o) => format!("update {}", o["metadata"]["name"].as_str().unwrap()),
                Change::Delete(n) => format!("delete {n}"),
            })
            .collect()
    }

    #[test]
    fn built_in_group_versions_get_upstream_names_priorities_and_the_onstart_label() {
        let registry = Registry::new(builtins());
        let desired = desired(&registry.snapshot());
        let core = desired.iter().find(|d| d.name() == "v1.").unwrap();
        assert_eq!((core.group_priority, core.version_priority), (18000, 1));
        let apps = desired.iter().find(|d| d.name() == "v1.apps").unwrap();
        assert_eq!((apps.group_priority, apps.version_priority), (17800, 15));
        let hpa = desired
            .iter()
            .find(|d| d.name() == "v2.autoscaling")
            .unwrap();
        assert_eq!((hpa.group_priority, hpa.version_priority), (17500, 30));
        assert!(desired.iter().all(|d| d.sync == Sync::OnStart));
        // The aggregator's own group has no entry upstream, so no APIService.
        assert!(!desired.iter().any(|d| d.group == "apiregistration.k8s.io"));
        let obj = core.object();
        assert_eq!(obj["metadata"]["labels"][AUTOMANAGED], "onstart");
        assert!(obj["spec"].get("service").is_none());
    }

    #[test]
    fn missing_apiservices_are_created_on_start_and_crd_ones_at_any_time() {
        let desired = [
            d("apps", "v1", Sync::OnStart),
            d("example.com", "v1", Sync::Always),
        ];
        assert_eq!(
            names(&plan(&desired, &[], true)),
            ["create v1.apps", "create v1.example.com"]
        );
        assert_eq!(
            names(&plan(&desired, &[], false)),
            ["create v1.example.com"]
        );
    }

    #[test]
    fn apiservices_without_the_label_belong_to_their_user() {
        let desired = [d("example.com", "v1", Sync::Always)];
        let user = current("v1.example.com", None, json!({"group": "example.com"}));
        let other = current("v1beta1.metrics.k8s.io", None, json!({}));
        assert!(plan(&desired, &[user, other], true).is_empty());
    }

    #[test]
    fn stale_automanaged_apiservices_are_deleted_onstart_ones_only_at_start() {
        let onstart = current("v1beta1.gone", Some("onstart"), json!({}));
        let always = current("v1.old-crd.example.com", Some("true"), json!({}));
        let cur = [onstart, always];
        assert_eq!(
            names(&plan(&[], &cur, true)),
            ["delete v1beta1.gone", "delete v1.old-crd.example.com"]
        );
        assert_eq!(
            names(&plan(&[], &cur, false)),
            ["delete v1.old-crd.example.com"]
        );
    }

    #[test]
    fn changed_specs_are_updated_and_equal_ones_left_alone() {
        let want = d("example.com", "v1", Sync::Always);
        let same = current("v1.example.com", Some("true"), want.spec());
        assert!(plan(std::slice::from_ref(&want), &[same], false).is_empty());
        let changed = current(
            "v1.example.com",
            Some("true"),
            json!({"group": "example.com"}),
        );
        let changes = plan(std::slice::from_ref(&want), &[changed], false);
        let [Change::Update(obj)] = changes.as_slice() else {
            panic!("{changes:?}")
        };
        assert_eq!(obj["spec"], want.spec());
        // An onstart one is brought up to date only when the server starts.
        let apps = d("apps", "v1", Sync::OnStart);
        let old = current("v1.apps", Some("onstart"), json!({"group": "apps"}));
        assert!(plan(
            std::slice::from_ref(&apps),
            std::slice::from_ref(&old),
            false
        )
        .is_empty());
        assert_eq!(names(&plan(&[apps], &[old], true)), ["update v1.apps"]);
    }
}
