//! Ephemeral containers (`kubectl debug`): upstream's `validateEphemeralContainers`, part of
//! every pod spec's validation, and `ValidatePodEphemeralContainersUpdate`, the rule of the
//! `pods/ephemeralcontainers` subresource: ephemeral containers are only ever added, never
//! changed or removed, because the node may already be running them.

use std::collections::HashSet;

use serde_json::Value;

use super::pod::{arr, s, validate_container_common};
use super::pod_update::struct_diff;
use super::{child, index, security, FieldError};

/// The container fields an ephemeral container may not set, in upstream's struct order:
/// everything outside upstream's `allowedEphemeralContainerFields` (they are for workloads,
/// which a debugging container must not become: no ports, probes, hooks, resources).
const NOT_ALLOWED: [&str; 8] = [
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
];

/// Upstream's "is this field set": Go's zero value is absent, `null`, an empty string or
/// false, and (for structs such as `resources`) an object whose fields are all zero. An
/// empty list is a non-nil slice in Go, hence set.
fn is_set(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(m)) => m.values().any(|v| is_set(Some(v))),
        Some(_) => true,
    }
}

/// `validateEphemeralContainers` of the spec at `path` (`spec.ephemeralContainers`):
/// `regular` holds the names of the pod's containers and init containers.
pub(super) fn validate_ephemeral_containers(
    spec: &Value,
    path: &str,
    volumes: &HashSet<String>,
    regular: &HashSet<String>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut all: HashSet<String> = regular.clone();
    let host_users = security::host_users(spec);
    for (i, c) in arr(spec, "ephemeralContainers").iter().enumerate() {
        let p = index(path, i);
        errs.extend(validate_container_common(c, volumes, &p));
        // A debug container is a container like the others to the kernel: upstream's
        // validateContainerCommon checks its securityContext too.
        errs.extend(security::validate_security_context(
            c.get("securityContext"),
            &child(&p, "securityContext"),
            host_users,
        ));
        let image = s(c, "image");
        if image.len() != image.trim().len() {
            errs.push(FieldError::invalid(
                &child(&p, "image"),
                Value::from(image),
                "must not have leading or trailing whitespace",
            ));
        }
        let name = s(c, "name");
        if !all.insert(name.to_string()) {
            errs.push(FieldError::duplicate(&child(&p, "name"), Value::from(name)));
        }
        let target = s(c, "targetContainerName");
        if !target.is_empty() && !regular.contains(target) {
            errs.push(FieldError::not_found(
                &child(&p, "targetContainerName"),
                Value::from(target),
            ));
        }
        for field in NOT_ALLOWED {
            if is_set(c.get(field)) {
                errs.push(FieldError::forbidden(
                    &child(&p, field),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        for (j, m) in arr(c, "volumeMounts").iter().enumerate() {
            for field in ["subPath", "subPathExpr"] {
                if !s(m, field).is_empty() {
                    errs.push(FieldError::forbidden(
                        &child(&index(&child(&p, "volumeMounts"), j), field),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
    }
    errs
}

/// The subresource's own rule (after the pod's metadata and spec passed): a mirror pod
/// takes none, and every ephemeral container of `old` is still there, unchanged. The
/// lists are matched by name, since a patch does not keep their order.
pub(super) fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    if old
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return vec![FieldError::forbidden(
            "",
            "static pods do not support ephemeral containers",
        )];
    }
    let null = Value::Null;
    let new_spec = new.get("spec").unwrap_or(&null);
    let path = "spec.ephemeralContainers";
    let mut errs = Vec::new();
    for was in arr(old.get("spec").unwrap_or(&null), "ephemeralContainers") {
        let name = s(was, "name");
        match arr(new_spec, "ephemeralContainers")
            .iter()
            .find(|c| s(c, "name") == name)
        {
            None => errs.push(FieldError::forbidden(
                path,
                format!("existing ephemeral containers {name:?} may not be removed\n"),
            )),
            Some(now) if now != was => errs.push(FieldError::forbidden(
                &format!("{path}[{name}]"),
                format!(
                    "existing ephemeral containers {name:?} may not be changed\n{}",
                    struct_diff("core.EphemeralContainer", was, now)
                ),
            )),
            Some(_) => {}
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::validation::{validate, validate_pod_ephemeral_containers_update};

    fn container(name: &str) -> Value {
        json!({"name": name, "image": "busybox:v1", "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent"})
    }

    fn pod(ephemeral: Vec<Value>) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u", "resourceVersion": "5",
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [container("c")], "initContainers": [container("init")],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                "volumes": [{"name": "data", "emptyDir": {}}],
                "ephemeralContainers": ephemeral}})
    }

    fn with(name: &str, extra: Value) -> Value {
        let mut c = container(name);
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    /// What a case is called, the ephemeral containers before and after, the errors.
    type Case = (&'static str, Vec<Value>, Vec<Value>, Vec<&'static str>);

    /// The errors of adding `new` ephemeral containers to a pod that has `old` ones.
    fn errors(old: Vec<Value>, new: Vec<Value>) -> Vec<String> {
        validate_pod_ephemeral_containers_update(&pod(new), &pod(old))
            .iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn ephemeral_container_updates_follow_upstreams_rules() {
        let debug = container("debugger");
        let cases: Vec<Case> = vec![
            ("adding one", vec![], vec![debug.clone()], vec![]),
            (
                "adding one that targets a container",
                vec![],
                vec![with("debugger", json!({"targetContainerName": "c", "stdin": true, "tty": true}))],
                vec![],
            ),
            (
                "adding a second, keeping the first",
                vec![debug.clone()],
                vec![debug.clone(), container("debugger-2")],
                vec![],
            ),
            (
                "a name taken by a container",
                vec![],
                vec![container("c")],
                vec!["spec.ephemeralContainers[0].name: Duplicate value: \"c\""],
            ),
            (
                "a name taken by an init container",
                vec![],
                vec![container("init")],
                vec!["spec.ephemeralContainers[0].name: Duplicate value: \"init\""],
            ),
            (
                "two with one name",
                vec![],
                vec![debug.clone(), debug.clone()],
                vec!["spec.ephemeralContainers[1].name: Duplicate value: \"debugger\""],
            ),
            (
                "a target that is not a container",
                vec![],
                vec![with("debugger", json!({"targetContainerName": "nope"}))],
                vec!["spec.ephemeralContainers[0].targetContainerName: Not found: \"nope\""],
            ),
            (
                "a target that is ephemeral itself",
                vec![debug.clone()],
                vec![debug.clone(), with("d2", json!({"targetContainerName": "debugger"}))],
                vec!["spec.ephemeralContainers[1].targetContainerName: Not found: \"debugger\""],
            ),
            (
                "ports, resources, probes and hooks",
                vec![],
                vec![with(
                    "debugger",
                    json!({"ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {"limits": {"cpu": "1"}},
                        "readinessProbe": {"exec": {"command": ["true"]}},
                        "lifecycle": {"preStop": {"exec": {"command": ["true"]}}}}),
                )],
                vec![
                    "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
                    "spec.ephemeralContainers[0].resources: Forbidden: cannot be set for an Ephemeral Container",
                    "spec.ephemeralContainers[0].readinessProbe: Forbidden: cannot be set for an Ephemeral Container",
                    "spec.ephemeralContainers[0].lifecycle: Forbidden: cannot be set for an Ephemeral Container",
                ],
            ),
            (
                "a securityContext upstream refuses",
                vec![],
                vec![with(
                    "debugger",
                    json!({"securityContext": {"privileged": true, "allowPrivilegeEscalation": false}}),
                )],
                vec!["spec.ephemeralContainers[0].securityContext: Invalid value: core.SecurityContext{Capabilities:(*core.Capabilities)(nil), Privileged:(*bool)(0xc000000000), SELinuxOptions:(*core.SELinuxOptions)(nil), WindowsOptions:(*core.WindowsSecurityContextOptions)(nil), RunAsUser:(*int64)(nil), RunAsGroup:(*int64)(nil), RunAsNonRoot:(*bool)(nil), ReadOnlyRootFilesystem:(*bool)(nil), AllowPrivilegeEscalation:(*bool)(0xc000000000), ProcMount:(*core.ProcMountType)(nil), SeccompProfile:(*core.SeccompProfile)(nil), AppArmorProfile:(*core.AppArmorProfile)(nil)}: cannot set `allowPrivilegeEscalation` to false and `privileged` to true"],
            ),
            (
                "empty resources are not set",
                vec![],
                vec![with("debugger", json!({"resources": {}}))],
                vec![],
            ),
            (
                "a subPath",
                vec![],
                vec![with(
                    "debugger",
                    json!({"volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "x"}]}),
                )],
                vec!["spec.ephemeralContainers[0].volumeMounts[0].subPath: Forbidden: cannot be set for an Ephemeral Container"],
            ),
            (
                "removing one",
                vec![debug.clone()],
                vec![],
                vec!["spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debugger\" may not be removed\n"],
            ),
            (
                "an image with spaces",
                vec![],
                vec![with("debugger", json!({"image": " busybox"}))],
                vec!["spec.ephemeralContainers[0].image: Invalid value: \" busybox\": must not have leading or trailing whitespace"],
            ),
        ];
        for (what, old, new, want) in cases {
            assert_eq!(errors(old, new), want, "{what}");
        }
    }

    #[test]
    fn an_existing_ephemeral_container_may_not_change() {
        let errs = errors(
            vec![container("debugger")],
            vec![with("debugger", json!({"image": "busybox:v2"}))],
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("spec.ephemeralContainers[debugger]: Forbidden: existing ephemeral containers \"debugger\" may not be changed\n  core.EphemeralContainer{\n"),
            "{}",
            errs[0]
        );
        assert!(errs[0].contains("busybox:v2"), "{}", errs[0]);
    }

    #[test]
    fn static_pods_take_no_ephemeral_containers() {
        let mut old = pod(vec![]);
        old["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
        let mut new = pod(vec![container("debugger")]);
        new["metadata"]["annotations"] = old["metadata"]["annotations"].clone();
        let errs = validate_pod_ephemeral_containers_update(&new, &old);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].body(),
            "Forbidden: static pods do not support ephemeral containers"
        );
    }

    #[test]
    fn a_pod_is_created_without_them_and_an_update_cannot_add_them() {
        let errs: Vec<String> = validate("", "Pod", &pod(vec![container("debugger")]), None)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect();
        assert_eq!(
            errs,
            ["spec.ephemeralContainers: Forbidden: cannot be set on create"]
        );
        let update = validate(
            "",
            "Pod",
            &pod(vec![container("debugger")]),
            Some(&pod(vec![])),
        );
        assert!(
            update.iter().any(
                |e| e.field == "spec" && e.body().contains("pod updates may not change fields")
            ),
            "{update:?}"
        );
    }
}
