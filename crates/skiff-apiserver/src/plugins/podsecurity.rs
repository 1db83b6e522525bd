//! The PodSecurity admission plugin: pods are checked against their namespace's
//! `pod-security.kubernetes.io/enforce` level (a violation is upstream's 403) and `warn`
//! level (a violation is a `Warning` header); workloads' pod templates are only warned
//! about, as upstream. The checks are `skiff_apimachinery::podsecurity`.

use serde_json::Value;
use skiff_apimachinery::podsecurity::{self, Level, LevelVersion, Violation};

use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::object;
use crate::webhook::{Attributes, Operation};

/// The namespace's labels, if it exists.
fn namespace_labels(api: &Api, ns: &str) -> Result<Option<Value>> {
    let Some(namespaces) = api.registry.get("", "v1", "namespaces") else {
        return Ok(None);
    };
    match api.store.get(&namespaces.key(None, Some(ns)))? {
        Some(kv) => {
            let obj = crate::handler::materialize(&kv)?;
            Ok(Some(obj["metadata"]["labels"].clone()))
        }
        None => Ok(None),
    }
}

/// Whether an update changes what the policy looks at: upstream ignores updates that leave
/// the pod spec alone but for images, tolerations and the active deadline, so pods
/// admitted under an older policy can still be relabelled or get new images.
fn significant_update(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut spec = v["spec"].clone();
        for f in ["initContainers", "containers", "ephemeralContainers"] {
            if let Some(cs) = spec[f].as_array_mut() {
                for c in cs {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("image");
                    }
                }
            }
        }
        if let Some(s) = spec.as_object_mut() {
            s.remove("tolerations");
            s.remove("activeDeadlineSeconds");
        }
        spec
    };
    strip(new) != strip(old) || new["metadata"]["annotations"] != old["metadata"]["annotations"]
}

fn evaluate(level: &LevelVersion, meta: &Value, spec: &Value) -> Vec<Violation> {
    podsecurity::check(level.level, meta, spec)
}

/// Enforces and warns for pods; warns for workloads' templates.
pub fn validate(api: &Api, attrs: &Attributes<'_>, obj: &Value, old: Option<&Value>) -> Result<()> {
    let r = attrs.resource;
    let Some(ns) = attrs.namespace else {
        return Ok(());
    };
    if !matches!(attrs.operation, Operation::Create | Operation::Update) {
        return Ok(());
    }
    // Pods' status, binding and other subresources do not change what is checked; only
    // ephemeral containers would, and skiff does not serve that subresource.
    if attrs.subresource.is_some() {
        return Ok(());
    }
    let Some((meta, spec)) = podsecurity::pod_template(&r.group, &r.kind, obj) else {
        return Ok(());
    };
    if let Some(old) = old {
        let is_pod = r.group.is_empty() && r.kind == "Pod";
        let unchanged = match podsecurity::pod_template(&r.group, &r.kind, old) {
            Some((_, old_spec)) if !is_pod => old_spec == spec,
            Some(_) => !significant_update(obj, old),
            None => false,
        };
        if unchanged {
            return Ok(());
        }
    }
    let Some(labels) = namespace_labels(api, ns)? else {
        return Ok(());
    };
    let (policy, _) = podsecurity::policy(labels.as_object());
    let is_pod = r.group.is_empty() && r.kind == "Pod";
    if is_pod && policy.enforce.level != Level::Privileged {
        let violations = evaluate(&policy.enforce, meta, spec);
        if !violations.is_empty() {
            let name = object::name(obj).unwrap_or(attrs.name);
            return Err(ApiError::denied(
                r,
                name,
                &format!(
                    "violates PodSecurity \"{}\": {}",
                    policy.enforce,
                    podsecurity::describe(&violations)
                ),
            ));
        }
    }
    if policy.warn.level != Level::Privileged {
        let violations = evaluate(&policy.warn, meta, spec);
        if !violations.is_empty() {
            attrs.params.warn(format!(
                "would violate PodSecurity \"{}\": {}",
                policy.warn,
                podsecurity::describe(&violations)
            ));
        }
    }
    Ok(())
}
