//! `PodSpec` validation (`ValidatePodSpec` and the container, volume, probe and resource
//! checks under it) plus the Pod update rule, as upstream's `pkg/apis/core/validation`.

use std::collections::HashSet;

use serde_json::Value;

use super::meta::{validate_annotations, validate_labels};
use super::names::{
    inclusive_range_error, is_config_map_key, is_dns1123_label, is_dns1123_subdomain,
    is_relaxed_env_var_name, is_valid_port_name, is_valid_port_num,
};
use super::{child, index, security, FieldError};

const FILE_MODE_ERROR: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// Every volume source upstream knows, in upstream's checking order.
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "projected",
    "storageos",
    "csi",
    "ephemeral",
    "persistentVolumeClaim",
    "rbd",
    "configMap",
    "image",
];

pub(super) fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(super) fn present(v: &Value, k: &str) -> bool {
    v.get(k).is_some_and(|x| !x.is_null())
}

/// Validates a Pod: its spec, and on update upstream's narrow list of mutable fields.
pub(super) fn validate_pod(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let annotations = obj.pointer("/metadata/annotations");
    let mut errs =
        security::validate_profile_annotations(annotations, spec, "metadata.annotations");
    errs.extend(validate_pod_spec(spec, "spec", &[]));
    match old {
        Some(old) => errs.extend(super::pod_update::validate_pod_update(
            spec,
            old.get("spec").unwrap_or(&null),
        )),
        // `ValidatePodCreate`: they are added through `pods/ephemeralcontainers` only.
        None if !arr(spec, "ephemeralContainers").is_empty() => errs.push(FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        )),
        None => {}
    }
    match old {
        None => errs.extend(security::validate_annotations_match_fields(
            annotations,
            spec,
            "spec",
        )),
        Some(old) => errs.extend(security::validate_apparmor_annotation_updates(
            annotations,
            old.pointer("/metadata/annotations"),
        )),
    }
    errs
}

/// `ValidatePodTemplateSpec` at `path`; `extra_volumes` are names a StatefulSet's claim
/// templates add to the pod's volumes.
pub(crate) fn validate_pod_template_spec(
    template: Option<&Value>,
    path: &str,
    extra_volumes: &[String],
) -> Vec<FieldError> {
    let Some(template) = template.filter(|t| t.is_object()) else {
        return vec![FieldError::required(path, "")];
    };
    let meta = template.get("metadata");
    let mut errs = validate_labels(meta.and_then(|m| m.get("labels")), &child(path, "labels"));
    errs.extend(validate_annotations(
        meta.and_then(|m| m.get("annotations")),
        &child(path, "annotations"),
    ));
    let null = Value::Null;
    let spec = template.get("spec").unwrap_or(&null);
    let annotations = meta.and_then(|m| m.get("annotations"));
    errs.extend(security::validate_profile_annotations(
        annotations,
        spec,
        &child(path, "annotations"),
    ));
    errs.extend(validate_pod_spec(spec, &child(path, "spec"), extra_volumes));
    errs.extend(security::validate_annotations_match_fields(
        annotations,
        spec,
        &child(path, "spec"),
    ));
    if !arr(spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            &child(path, "spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// `ValidatePodSpec` at `path`.
pub(crate) fn validate_pod_spec(
    spec: &Value,
    path: &str,
    extra_volumes: &[String],
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut volumes: HashSet<String> =
        validate_volumes(arr(spec, "volumes"), &child(path, "volumes"), &mut errs);
    volumes.extend(extra_volumes.iter().cloned());

    let host_users = security::host_users(spec);
    let containers = arr(spec, "containers");
    let containers_path = child(path, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(&containers_path, ""));
    }
    let mut names = HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = index(&containers_path, i);
        errs.extend(validate_container_common(c, &volumes, &p));
        errs.extend(security::validate_security_context(
            c.get("securityContext"),
            &child(&p, "securityContext"),
            host_users,
        ));
        let name = s(c, "name");
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(&child(&p, "name"), Value::from(name)));
        }
        errs.extend(super::container::validate_probe(
            c.get("livenessProbe"),
            &child(&p, "livenessProbe"),
            true,
        ));
        errs.extend(super::container::validate_probe(
            c.get("readinessProbe"),
            &child(&p, "readinessProbe"),
            false,
        ));
        errs.extend(super::container::validate_probe(
            c.get("startupProbe"),
            &child(&p, "startupProbe"),
            true,
        ));
        if present(c, "restartPolicy") {
            errs.push(FieldError::forbidden(
                &child(&p, "restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }

    let init_path = child(path, "initContainers");
    for (i, c) in arr(spec, "initContainers").iter().enumerate() {
        let p = index(&init_path, i);
        errs.extend(validate_container_common(c, &volumes, &p));
        errs.extend(security::validate_security_context(
            c.get("securityContext"),
            &child(&p, "securityContext"),
            host_users,
        ));
        let name = s(c, "name");
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(&child(&p, "name"), Value::from(name)));
        }
        let restartable = match c.get("restartPolicy").and_then(Value::as_str) {
            None => false,
            Some("Always") => true,
            Some(other) => {
                errs.push(FieldError::not_supported(
                    &child(&p, "restartPolicy"),
                    Value::from(other),
                    &["Always"],
                ));
                false
            }
        };
        if restartable {
            errs.extend(super::container::validate_probe(
                c.get("livenessProbe"),
                &child(&p, "livenessProbe"),
                true,
            ));
            errs.extend(super::container::validate_probe(
                c.get("readinessProbe"),
                &child(&p, "readinessProbe"),
                false,
            ));
            errs.extend(super::container::validate_probe(
                c.get("startupProbe"),
                &child(&p, "startupProbe"),
                true,
            ));
        } else {
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if present(c, probe) {
                    errs.push(FieldError::forbidden(
                        &child(&p, probe),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }

    errs.extend(super::ephemeral::validate_ephemeral_containers(
        spec,
        &child(path, "ephemeralContainers"),
        &volumes,
        &names,
    ));

    validate_enum(
        spec,
        "restartPolicy",
        path,
        &["Always", "OnFailure", "Never"],
        &mut errs,
    );
    validate_enum(
        spec,
        "dnsPolicy",
        path,
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        &mut errs,
    );
    errs.extend(validate_labels(
        spec.get("nodeSelector"),
        &child(path, "nodeSelector"),
    ));
    errs.extend(security::validate_pod_security_context(
        spec,
        &child(path, "securityContext"),
    ));
    for (field, rule) in [
        (
            "serviceAccountName",
            is_dns1123_subdomain as fn(&str) -> Vec<String>,
        ),
        ("nodeName", is_dns1123_subdomain),
        ("hostname", is_dns1123_label),
        ("subdomain", is_dns1123_label),
    ] {
        let v = s(spec, field);
        if !v.is_empty() {
            for msg in rule(v) {
                errs.push(FieldError::invalid(
                    &child(path, field),
                    Value::from(v),
                    msg,
                ));
            }
        }
    }
    if let Some(ads) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        if !(1..=i64::from(i32::MAX)).contains(&ads) {
            errs.push(FieldError::invalid(
                &child(path, "activeDeadlineSeconds"),
                Value::from(ads),
                inclusive_range_error(1, i64::from(i32::MAX)),
            ));
        }
    }
    errs
}

/// An enumerated field that must be set (after defaulting) to one of `valid`.
fn validate_enum(obj: &Value, field: &str, path: &str, valid: &[&str], errs: &mut Vec<FieldError>) {
    let p = child(path, field);
    match obj.get(field).and_then(Value::as_str) {
        None | Some("") => errs.push(FieldError::required(&p, "")),
        Some(v) if valid.contains(&v) => {}
        Some(v) => errs.push(FieldError::not_supported(&p, Value::from(v), valid)),
    }
}

/// `ValidateVolumes`: returns the names of the valid volumes.
fn validate_volumes(volumes: &[Value], path: &str, errs: &mut Vec<FieldError>) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, vol) in volumes.iter().enumerate() {
        let p = index(path, i);
        let name_path = child(&p, "name");
        let mut el = validate_volume_source(vol, &p);
        let name = s(vol, "name");
        if name.is_empty() {
            el.push(FieldError::required(&name_path, ""));
        } else {
            for msg in is_dns1123_label(name) {
                el.push(FieldError::invalid(&name_path, Value::from(name), msg));
            }
        }
        if names.contains(name) {
            el.push(FieldError::duplicate(&name_path, Value::from(name)));
        }
        if el.is_empty() {
            names.insert(name.to_string());
        } else {
            errs.extend(el);
        }
    }
    names
}

fn validate_volume_source(vol: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut count = 0;
    for src in VOLUME_SOURCES.iter().filter(|k| present(vol, k)) {
        if count > 0 {
            errs.push(FieldError::forbidden(
                &child(path, src),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let v = &vol[*src];
        let p = child(path, src);
        let required = |field: &str, errs: &mut Vec<FieldError>| {
            if s(v, field).is_empty() {
                errs.push(FieldError::required(&child(&p, field), ""));
            }
        };
        match *src {
            "configMap" => required("name", &mut errs),
            "secret" => required("secretName", &mut errs),
            "persistentVolumeClaim" => required("claimName", &mut errs),
            "hostPath" => required("path", &mut errs),
            "nfs" => {
                required("server", &mut errs);
                required("path", &mut errs);
            }
            _ => {}
        }
        if let Some(mode) = v.get("defaultMode").and_then(Value::as_i64) {
            if !(0..=0o777).contains(&mode) {
                errs.push(FieldError::invalid(
                    &child(&p, "defaultMode"),
                    Value::from(mode),
                    FILE_MODE_ERROR,
                ));
            }
        }
        for (j, item) in arr(v, "items").iter().enumerate() {
            if !matches!(*src, "configMap" | "secret") {
                break;
            }
            let ip = index(&child(&p, "items"), j);
            let k = s(item, "key");
            if k.is_empty() {
                errs.push(FieldError::required(&child(&ip, "key"), ""));
            }
            if s(item, "path").is_empty() {
                errs.push(FieldError::required(&child(&ip, "path"), ""));
            }
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
    errs
}

/// `validateContainerCommon`: name, image, ports, env, mounts, pull policy, resources.
pub(super) fn validate_container_common(
    c: &Value,
    volumes: &HashSet<String>,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = s(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(&child(path, "name"), ""));
    } else {
        for msg in is_dns1123_label(name) {
            errs.push(FieldError::invalid(
                &child(path, "name"),
                Value::from(name),
                msg,
            ));
        }
    }
    if s(c, "image").is_empty() {
        errs.push(FieldError::required(&child(path, "image"), ""));
    }
    validate_enum(
        c,
        "terminationMessagePolicy",
        path,
        &["File", "FallbackToLogsOnError"],
        &mut errs,
    );
    errs.extend(validate_container_ports(
        arr(c, "ports"),
        &child(path, "ports"),
    ));
    errs.extend(validate_env(arr(c, "env"), &child(path, "env")));
    errs.extend(validate_volume_mounts(
        arr(c, "volumeMounts"),
        volumes,
        &child(path, "volumeMounts"),
    ));
    validate_enum(
        c,
        "imagePullPolicy",
        path,
        &["Always", "IfNotPresent", "Never"],
        &mut errs,
    );
    errs.extend(super::container::validate_resources(
        c.get("resources"),
        &child(path, "resources"),
    ));
    errs
}

fn validate_container_ports(ports: &[Value], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index(path, i);
        let name = s(port, "name");
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(FieldError::invalid(
                        &child(&p, "name"),
                        Value::from(name),
                        msg,
                    ));
                }
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(&child(&p, "name"), Value::from(name)));
            }
        }
        match port.get("containerPort").and_then(Value::as_i64) {
            None | Some(0) => errs.push(FieldError::required(&child(&p, "containerPort"), "")),
            Some(n) => {
                for msg in is_valid_port_num(n) {
                    errs.push(FieldError::invalid(
                        &child(&p, "containerPort"),
                        Value::from(n),
                        msg,
                    ));
                }
            }
        }
        if let Some(n) = port
            .get("hostPort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            for msg in is_valid_port_num(n) {
                errs.push(FieldError::invalid(
                    &child(&p, "hostPort"),
                    Value::from(n),
                    msg,
                ));
            }
        }
        validate_protocol(port, &p, &mut errs);
    }
    errs
}

/// `protocol` must be set (after defaulting) to TCP, UDP or SCTP.
pub(super) fn validate_protocol(port: &Value, path: &str, errs: &mut Vec<FieldError>) {
    validate_enum(port, "protocol", path, &["SCTP", "TCP", "UDP"], errs);
}

/// Upstream's `ValidatePortNumOrName` for an int-or-string port.
pub(super) fn validate_port_num_or_name(port: Option<&Value>, path: &str) -> Vec<FieldError> {
    match port {
        Some(Value::String(name)) => is_valid_port_name(name)
            .into_iter()
            .map(|msg| FieldError::invalid(path, Value::from(name.as_str()), msg))
            .collect(),
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            is_valid_port_num(n)
                .into_iter()
                .map(|msg| FieldError::invalid(path, Value::from(n), msg))
                .collect()
        }
        _ => is_valid_port_num(0)
            .into_iter()
            .map(|msg| FieldError::invalid(path, Value::from(0), msg))
            .collect(),
    }
}

fn validate_env(env: &[Value], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ev) in env.iter().enumerate() {
        let p = index(path, i);
        let name = s(ev, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&child(&p, "name"), ""));
        }
        for msg in is_relaxed_env_var_name(name) {
            errs.push(FieldError::invalid(
                &child(&p, "name"),
                Value::from(name),
                msg,
            ));
        }
        let Some(from) = ev.get("valueFrom").filter(|v| v.is_object()) else {
            continue;
        };
        let fp = child(&p, "valueFrom");
        let sources = [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
        ];
        let n = sources.iter().filter(|k| present(from, k)).count();
        for kind in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(r) = from.get(kind).filter(|r| r.is_object()) {
                let k = s(r, "key");
                if k.is_empty() {
                    errs.push(FieldError::required(&child(&child(&fp, kind), "key"), ""));
                } else {
                    for msg in is_config_map_key(k) {
                        errs.push(FieldError::invalid(
                            &child(&child(&fp, kind), "key"),
                            Value::from(k),
                            msg,
                        ));
                    }
                }
            }
        }
        if let Some(r) = from.get("fieldRef").filter(|r| r.is_object()) {
            if s(r, "fieldPath").is_empty() {
                errs.push(FieldError::required(
                    &child(&child(&fp, "fieldRef"), "fieldPath"),
                    "",
                ));
            }
        }
        if n == 0 {
            errs.push(FieldError::invalid(
                &fp,
                Value::from(""),
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !s(ev, "value").is_empty() {
            errs.push(FieldError::invalid(
                &fp,
                Value::from(""),
                "may not be specified when `value` is not empty",
            ));
        } else if n > 1 {
            errs.push(FieldError::invalid(
                &fp,
                Value::from(""),
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

fn validate_volume_mounts(
    mounts: &[Value],
    volumes: &HashSet<String>,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut mount_points = HashSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = index(path, i);
        let name = s(m, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&child(&p, "name"), ""));
        }
        if !volumes.contains(name) {
            errs.push(FieldError::not_found(&child(&p, "name"), Value::from(name)));
        }
        let mount_path = s(m, "mountPath");
        if mount_path.is_empty() {
            errs.push(FieldError::required(&child(&p, "mountPath"), ""));
        }
        if !mount_points.insert(mount_path) {
            errs.push(FieldError::invalid(
                &child(&p, "mountPath"),
                Value::from(mount_path),
                "must be unique",
            ));
        }
        let sub_path = s(m, "subPath");
        if sub_path.starts_with('/') {
            errs.push(FieldError::invalid(
                &child(path, "subPath"),
                Value::from(sub_path),
                "must be a relative path",
            ));
        } else if sub_path.split('/').any(|seg| seg == "..") {
            errs.push(FieldError::invalid(
                &child(path, "subPath"),
                Value::from(sub_path),
                "must not contain '..'",
            ));
        }
    }
    errs
}
