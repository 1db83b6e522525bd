//! The PodSecurity admission plugin: pods are checked against their namespace's
//! `pod-security.kubernetes.io/enforce` level (a violation is upstream's 403) and `warn`
//! level (a violation is a `Warning` header); workloads' pod templates are only warned
//! about, as upstream. The checks are `skiff_apimachinery::podsecurity`.

use serde_json::Value;
use skiff_apimachinery::podsecurity::{self, Level, LevelVersion, Violation};

use crate::error::{ApiError, Cause, Result};
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
    if !matches!(attrs.operation, Operation::Create | Operation::Update) {
        return Ok(());
    }
    if r.group.is_empty() && r.kind == "Namespace" && attrs.subresource.is_none() {
        return namespace(api, attrs, obj, old);
    }
    let Some(ns) = attrs.namespace else {
        return Ok(());
    };
    // Pods' status, binding and other subresources do not change what is checked; the
    // ephemeral containers added through `ephemeralcontainers` are checked as the pod's.
    if attrs
        .subresource
        .is_some_and(|s| s != "ephemeralcontainers")
    {
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

/// A namespace's policy labels: invalid ones are refused (422, upstream's field errors);
/// a newly stricter enforce level is checked against the pods already there, which are
/// reported in warnings (upstream's dry run of the new level), not evicted.
fn namespace(api: &Api, attrs: &Attributes<'_>, ns: &Value, old: Option<&Value>) -> Result<()> {
    let labels = ns["metadata"]["labels"].as_object();
    let (policy, errors) = podsecurity::policy(labels);
    if !errors.is_empty() {
        let causes = errors
            .iter()
            .map(|e| {
                let (field, message) = e.split_once(": ").unwrap_or(("", e));
                Cause {
                    reason: "FieldValueInvalid".into(),
                    message: message.to_owned(),
                    field: field.to_owned(),
                }
            })
            .collect();
        return Err(ApiError::invalid(attrs.resource, attrs.name, causes));
    }
    let Some(old) = old else {
        return Ok(());
    };
    let (before, _) = podsecurity::policy(old["metadata"]["labels"].as_object());
    if policy.enforce == before.enforce || policy.enforce.level == Level::Privileged {
        return Ok(());
    }
    let pods = api.namespace_objects("pods", attrs.name)?;
    for warning in existing_pod_warnings(attrs.name, &policy.enforce, &pods) {
        attrs.params.warn(warning);
    }
    Ok(())
}

/// Upstream's warnings for pods that violate a new enforce level: a header line, then one
/// line per distinct set of reasons, naming the first pod and counting the others.
fn existing_pod_warnings(ns: &str, level: &LevelVersion, pods: &[Value]) -> Vec<String> {
    let mut groups: Vec<(String, String, usize)> = Vec::new();
    for pod in pods {
        let violations = evaluate(level, &pod["metadata"], &pod["spec"]);
        if violations.is_empty() {
            continue;
        }
        let reasons: Vec<&str> = violations.iter().map(|v| v.reason.as_str()).collect();
        let reasons = reasons.join(", ");
        let name = object::name(pod).unwrap_or_default().to_owned();
        match groups.iter_mut().find(|(_, r, _)| *r == reasons) {
            Some(group) => group.2 += 1,
            None => groups.push((name, reasons, 1)),
        }
    }
    if groups.is_empty() {
        return vec![];
    }
    let mut warnings = vec![format!(
        "existing pods in namespace \"{ns}\" violate the new PodSecurity enforce level \"{level}\""
    )];
    for (first, reasons, count) in groups {
        warnings.push(match count {
            1 => format!("{first}: {reasons}"),
            n => format!(
                "{first} (and {} other {}): {reasons}",
                n - 1,
                if n == 2 { "pod" } else { "pods" }
            ),
        });
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_breaking_a_new_enforce_level_are_warned_about_in_groups() {
        let pod = |name: &str, privileged: bool| {
            json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "a",
                "securityContext": {"privileged": privileged}}]}})
        };
        let level = LevelVersion {
            level: Level::Baseline,
            version: "latest".into(),
        };
        let pods = [
            pod("a", true),
            pod("b", false),
            pod("c", true),
            pod("d", true),
        ];
        assert_eq!(
            existing_pod_warnings("team", &level, &pods),
            vec![
                "existing pods in namespace \"team\" violate the new PodSecurity enforce level \"baseline:latest\"",
                "a (and 2 other pods): privileged",
            ]
        );
        assert!(existing_pod_warnings("team", &level, &[pod("b", false)]).is_empty());
    }
}
