//! securityContext validation, as upstream's `pkg/apis/core/validation`:
//! `validatePodSpecSecurityContext`, `ValidateSecurityContext`, the seccomp and AppArmor
//! profile fields, sysctl names, and the deprecated seccomp/AppArmor annotations (their
//! format, and on create that they agree with the fields). The kubelet trusts what the API
//! stored, so a bad profile or id must be refused here with upstream's 422, not found out
//! as a runtime error on some node.

use serde_json::{Map, Value};

use super::names::inclusive_range_error;
use super::pod::{arr, present};
use super::{child, index, key, FieldError};

/// `SeccompPodAnnotationKey`.
pub const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
/// `SeccompContainerAnnotationKeyPrefix`.
pub const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str =
    "container.seccomp.security.alpha.kubernetes.io/";
/// `DeprecatedAppArmorBetaContainerAnnotationKeyPrefix`.
pub const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// Upstream's `maxLocalhostProfileLength` (PATH_MAX - 1).
const MAX_APPARMOR_LOCALHOST_PROFILE: usize = 4095;
/// Upstream's `SysctlMaxLength`.
const SYSCTL_MAX_LENGTH: usize = 253;
/// The source of upstream's `sysctlContainSlashRegexp`, as its error message prints it.
const SYSCTL_REGEX: &str =
    r"^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$";

/// Where Go's `%#v` prints a non-nil pointer inside a struct, upstream's message holds the
/// pointer's address, which differs on every call; skiff prints this fixed one instead.
const GO_POINTER: &str = "0xc000000000";

/// Which kernel namespace a sysctl belongs to (`utilsysctl.GetNamespace`), deciding whether
/// a pod sharing that namespace with the host may set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlNamespace {
    /// `net.*`: the network namespace.
    Net,
    /// `kernel.shm*`, `kernel.msg*`, `kernel.sem`, `fs.mqueue.*`: the IPC namespace.
    Ipc,
    /// Anything else: not namespaced (the kubelet never allows these).
    Unknown,
}

/// `utilsysctl.GetNamespace` after converting a slash-separated name to dots.
pub fn sysctl_namespace(name: &str) -> SysctlNamespace {
    let name = normalize_sysctl(name);
    if name.starts_with("net.") {
        SysctlNamespace::Net
    } else if name.starts_with("kernel.shm")
        || name.starts_with("kernel.msg")
        || name == "kernel.sem"
        || name.starts_with("fs.mqueue.")
    {
        SysctlNamespace::Ipc
    } else {
        SysctlNamespace::Unknown
    }
}

/// `utilsysctl.NormalizeName`: `net/ipv4/ip_forward` → `net.ipv4.ip_forward`. A name whose
/// first separator is a dot is already in dot form (its slashes are part of a segment, e.g.
/// an interface name `net.ipv4.conf.eno2/100.rp_filter`) and keeps them as dots would swap.
pub fn normalize_sysctl(name: &str) -> String {
    let first = name.find(['.', '/']);
    match first.map(|i| &name[i..i + 1]) {
        Some("/") => name
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => name.to_string(),
    }
}

/// `IsValidSysctlName`: at most 253 characters matching [`SYSCTL_REGEX`] (segments of
/// `[a-z0-9]([-_a-z0-9]*[a-z0-9])?` joined by `.` or `/`).
pub fn is_valid_sysctl_name(name: &str) -> bool {
    if name.len() > SYSCTL_MAX_LENGTH || name.is_empty() {
        return false;
    }
    let segment_ok = |seg: &str| {
        let b = seg.as_bytes();
        let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && edge(b[0])
            && edge(b[b.len() - 1])
            && b.iter().all(|&c| edge(c) || c == b'-' || c == b'_')
    };
    name.split(['.', '/']).all(segment_ok)
}

/// `IsValidUserID` / `IsValidGroupID`: 0 to 2^31-1.
fn id_errors(id: i64) -> Option<String> {
    (!(0..=i64::from(i32::MAX)).contains(&id))
        .then(|| inclusive_range_error(0, i64::from(i32::MAX)))
}

fn check_id(sc: &Value, field: &str, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(id) = sc.get(field).and_then(Value::as_i64) {
        if let Some(msg) = id_errors(id) {
            errs.push(FieldError::invalid(
                &child(path, field),
                Value::from(id),
                msg,
            ));
        }
    }
}

/// `validatePodSpecSecurityContext` on `spec.securityContext`, with the spec's `hostPID`,
/// `hostNetwork`, `hostIPC` and `shareProcessNamespace` (upstream keeps them inside its
/// internal PodSecurityContext).
pub(super) fn validate_pod_security_context(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(sc) = spec.get("securityContext").filter(|v| v.is_object()) else {
        return errs;
    };
    check_id(sc, "fsGroup", path, &mut errs);
    check_id(sc, "runAsUser", path, &mut errs);
    check_id(sc, "runAsGroup", path, &mut errs);
    let groups_path = child(path, "supplementalGroups");
    for (i, gid) in arr(sc, "supplementalGroups").iter().enumerate() {
        if let Some(msg) = gid.as_i64().and_then(id_errors) {
            errs.push(FieldError::invalid(
                &index(&groups_path, i),
                gid.clone(),
                msg,
            ));
        }
    }
    let host_pid = spec.get("hostPID").and_then(Value::as_bool) == Some(true);
    // Upstream keeps shareProcessNamespace in the internal PodSecurityContext, so its path
    // is under securityContext even though the wire field is the spec's.
    if host_pid && spec.get("shareProcessNamespace").and_then(Value::as_bool) == Some(true) {
        errs.push(FieldError::invalid(
            &child(path, "shareProcessNamespace"),
            Value::Bool(true),
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    validate_sysctls(spec, sc, &child(path, "sysctls"), &mut errs);
    enum_field(
        sc,
        "fsGroupChangePolicy",
        path,
        &["Always", "OnRootMismatch"],
        &mut errs,
    );
    errs.extend(validate_seccomp_profile(
        sc.get("seccompProfile"),
        &child(path, "seccompProfile"),
    ));
    errs.extend(validate_apparmor_profile(
        sc.get("appArmorProfile"),
        &child(path, "appArmorProfile"),
    ));
    enum_field(
        sc,
        "supplementalGroupsPolicy",
        path,
        &["Merge", "Strict"],
        &mut errs,
    );
    enum_field(
        sc,
        "seLinuxChangePolicy",
        path,
        &["MountOption", "Recursive"],
        &mut errs,
    );
    errs
}

/// An optional enumerated field: when present it must be one of `valid` (upstream's sorted
/// `sets.List`, so `valid` is given sorted).
fn enum_field(sc: &Value, field: &str, path: &str, valid: &[&str], errs: &mut Vec<FieldError>) {
    if let Some(v) = sc.get(field).filter(|v| !v.is_null()) {
        let ok = v.as_str().is_some_and(|s| valid.contains(&s));
        if !ok {
            errs.push(FieldError::not_supported(
                &child(path, field),
                v.clone(),
                valid,
            ));
        }
    }
}

/// `validateSysctls` with `ValidateHostSysctl` (names, duplicates, and namespaced sysctls
/// refused when the pod shares that namespace with the host).
fn validate_sysctls(spec: &Value, sc: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut seen = std::collections::HashSet::new();
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let host_ipc = spec.get("hostIPC").and_then(Value::as_bool) == Some(true);
    for (i, s) in arr(sc, "sysctls").iter().enumerate() {
        let name_path = child(&index(path, i), "name");
        let name = s.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
        } else if !is_valid_sysctl_name(name) {
            errs.push(FieldError::invalid(
                &name_path,
                Value::from(name),
                format!("must have at most {SYSCTL_MAX_LENGTH} characters and match regex {SYSCTL_REGEX}"),
            ));
        } else if seen.contains(name) {
            errs.push(FieldError::duplicate(&name_path, Value::from(name)));
        }
        match sysctl_namespace(name) {
            SysctlNamespace::Net if host_network => errs.push(FieldError::invalid(
                &name_path,
                Value::from(name),
                "may not be specified when 'hostNetwork' is true",
            )),
            SysctlNamespace::Ipc if host_ipc => errs.push(FieldError::invalid(
                &name_path,
                Value::from(name),
                "may not be specified when 'hostIPC' is true",
            )),
            _ => {}
        }
        seen.insert(name);
    }
}

/// Whether the pod runs in the host's user namespace (`hostUsers`, true unless set false).
pub(super) fn host_users(spec: &Value) -> bool {
    spec.get("hostUsers").and_then(Value::as_bool) != Some(false)
}

/// `ValidateSecurityContext` for a container's `securityContext` at `path`. Privileged
/// containers are allowed (kube-apiserver with `--allow-privileged`, as kubeadm and k3s run
/// it): skiff's runtime implements them.
pub(super) fn validate_security_context(
    sc: Option<&Value>,
    path: &str,
    host_users: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(sc) = sc.filter(|v| v.is_object()) else {
        return errs;
    };
    check_id(sc, "runAsUser", path, &mut errs);
    check_id(sc, "runAsGroup", path, &mut errs);
    if let Some(pm) = sc.get("procMount").filter(|v| !v.is_null()) {
        let p = child(path, "procMount");
        match pm.as_str() {
            Some("Default") => {}
            Some("Unmasked") => {
                if host_users {
                    errs.push(FieldError::invalid(
                        &p,
                        pm.clone(),
                        "`hostUsers` must be false to use `Unmasked`",
                    ));
                }
            }
            _ => errs.push(FieldError::not_supported(
                &p,
                pm.clone(),
                &["Default", "Unmasked"],
            )),
        }
    }
    errs.extend(validate_seccomp_profile(
        sc.get("seccompProfile"),
        &child(path, "seccompProfile"),
    ));
    if sc.get("allowPrivilegeEscalation").and_then(Value::as_bool) == Some(false) {
        if sc.get("privileged").and_then(Value::as_bool) == Some(true) {
            errs.push(
                FieldError::invalid(
                    path,
                    sc.clone(),
                    "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                )
                .rendered(go_security_context(sc)),
            );
        }
        let adds = sc.get("capabilities").map(|c| arr(c, "add")).unwrap_or(&[]);
        for cap in adds {
            if cap.as_str() == Some("CAP_SYS_ADMIN") {
                errs.push(
                    FieldError::invalid(
                        path,
                        sc.clone(),
                        "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
                    )
                    .rendered(go_security_context(sc)),
                );
            }
        }
    }
    errs.extend(validate_apparmor_profile(
        sc.get("appArmorProfile"),
        &child(path, "appArmorProfile"),
    ));
    errs
}

/// `validateSeccompProfileField`.
fn validate_seccomp_profile(sp: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(sp) = sp.filter(|v| v.is_object()) else {
        return errs;
    };
    let ty = sp.get("type").and_then(Value::as_str).unwrap_or("");
    let type_path = child(path, "type");
    match ty {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errs.push(FieldError::required(
            &type_path,
            "type is required when seccompProfile is set",
        )),
        other => errs.push(FieldError::not_supported(
            &type_path,
            Value::from(other),
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    let lp_path = child(path, "localhostProfile");
    let localhost = sp.get("localhostProfile").filter(|v| !v.is_null());
    if ty == "Localhost" {
        match localhost.and_then(Value::as_str) {
            None => errs.push(FieldError::required(
                &lp_path,
                "must be set when seccomp type is Localhost",
            )),
            Some(p) => errs.extend(validate_local_descending_path(p, &lp_path)),
        }
    } else if let Some(lp) = localhost {
        let rendered = format!(
            "core.SeccompProfile{{Type:{}, LocalhostProfile:(*string)({GO_POINTER})}}",
            super::fmt_go::quote(ty)
        );
        errs.push(
            FieldError::invalid(
                &lp_path,
                json_pair(ty, lp),
                "can only be set when seccomp type is Localhost",
            )
            .rendered(rendered),
        );
    }
    errs
}

fn json_pair(ty: &str, lp: &Value) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::from(ty));
    m.insert("localhostProfile".into(), lp.clone());
    Value::Object(m)
}

/// `ValidateAppArmorProfileField`.
fn validate_apparmor_profile(profile: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(profile) = profile.filter(|v| v.is_object()) else {
        return errs;
    };
    let lp_path = child(path, "localhostProfile");
    let localhost = profile.get("localhostProfile").filter(|v| !v.is_null());
    match profile.get("type").and_then(Value::as_str).unwrap_or("") {
        "Localhost" => match localhost.and_then(Value::as_str) {
            None => errs.push(FieldError::required(
                &lp_path,
                "must be set when AppArmor type is Localhost",
            )),
            Some(lp) => {
                if lp.trim() != lp {
                    errs.push(FieldError::invalid(
                        &lp_path,
                        Value::from(lp),
                        "must not be padded with whitespace",
                    ));
                } else if lp.is_empty() {
                    errs.push(FieldError::required(
                        &lp_path,
                        "must be set when AppArmor type is Localhost",
                    ));
                }
                if lp.len() > MAX_APPARMOR_LOCALHOST_PROFILE {
                    errs.push(FieldError::too_long(
                        &lp_path,
                        MAX_APPARMOR_LOCALHOST_PROFILE,
                    ));
                }
            }
        },
        "RuntimeDefault" | "Unconfined" => {
            if let Some(lp) = localhost {
                errs.push(FieldError::invalid(
                    &lp_path,
                    lp.clone(),
                    "can only be set when AppArmor type is Localhost",
                ));
            }
        }
        "" => errs.push(FieldError::required(
            &child(path, "type"),
            "type is required when appArmorProfile is set",
        )),
        other => errs.push(FieldError::not_supported(
            &child(path, "type"),
            Value::from(other),
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    errs
}

/// `validateLocalDescendingPath`: relative, and no `..` segment.
fn validate_local_descending_path(p: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if p.starts_with('/') {
        errs.push(FieldError::invalid(
            path,
            Value::from(p),
            "must be a relative path",
        ));
    }
    if p.split('/').any(|seg| seg == "..") {
        errs.push(FieldError::invalid(
            path,
            Value::from(p),
            "must not contain '..'",
        ));
    }
    errs
}

/// `ValidateSeccompProfile` for an annotation value.
fn validate_seccomp_annotation(p: &str, path: &str) -> Vec<FieldError> {
    match p {
        "runtime/default" | "docker/default" | "unconfined" => Vec::new(),
        _ => match p.strip_prefix("localhost/") {
            Some(rest) => validate_local_descending_path(rest, path),
            None => vec![FieldError::invalid(
                path,
                Value::from(p),
                "must be a valid seccomp profile",
            )],
        },
    }
}

/// `ValidateAppArmorProfileFormat`.
fn apparmor_annotation_format_error(p: &str) -> Option<String> {
    if p.is_empty() || p == "runtime/default" || p == "unconfined" || p.starts_with("localhost/") {
        None
    } else {
        Some(format!(
            "invalid AppArmor profile name: {}",
            super::fmt_go::quote(p)
        ))
    }
}

/// Every container name in the spec: containers, init containers, ephemeral containers
/// (upstream's `VisitContainersWithPath` order), with the path of each.
fn containers_with_path<'a>(spec: &'a Value, spec_path: &str) -> Vec<(&'a Value, String)> {
    let mut out = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let p = child(spec_path, list);
        for (i, c) in arr(spec, list).iter().enumerate() {
            out.push((c, index(&p, i)));
        }
    }
    out
}

/// `ValidatePodSpecificAnnotations`' seccomp and AppArmor parts: annotation values in the
/// formats the kubelet understood, naming containers the pod has. `path` is the
/// annotations' path (`metadata.annotations` or `<template>.annotations`).
pub(super) fn validate_profile_annotations(
    annotations: Option<&Value>,
    spec: &Value,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(annotations) = annotations.and_then(Value::as_object) else {
        return errs;
    };
    let value = |k: &str| annotations.get(k).and_then(Value::as_str).unwrap_or("");
    if annotations.contains_key(SECCOMP_POD_ANNOTATION) {
        errs.extend(validate_seccomp_annotation(
            value(SECCOMP_POD_ANNOTATION),
            &child(path, SECCOMP_POD_ANNOTATION),
        ));
    }
    for k in annotations.keys() {
        if k.starts_with(SECCOMP_CONTAINER_ANNOTATION_PREFIX) {
            errs.extend(validate_seccomp_annotation(value(k), &child(path, k)));
        }
    }
    let names: Vec<&str> = containers_with_path(spec, "spec")
        .into_iter()
        .filter_map(|(c, _)| c.get("name").and_then(Value::as_str))
        .collect();
    for k in annotations.keys() {
        let Some(container) = k.strip_prefix(APPARMOR_ANNOTATION_PREFIX) else {
            continue;
        };
        if !names.contains(&container) {
            errs.push(FieldError::invalid(
                &key(path, k),
                Value::from(container),
                "container not found",
            ));
        }
        if let Some(msg) = apparmor_annotation_format_error(value(k)) {
            errs.push(FieldError::invalid(
                &key(path, k),
                Value::from(value(k)),
                msg,
            ));
        }
    }
    errs
}

/// `validateSeccompAnnotationsAndFields` and `validateAppArmorAnnotationsAndFieldsMatchOnCreate`:
/// where both a deprecated annotation and its field are set, they must say the same.
pub(super) fn validate_annotations_match_fields(
    annotations: Option<&Value>,
    spec: &Value,
    spec_path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(annotations) = annotations.and_then(Value::as_object) else {
        return errs;
    };
    let value = |k: &str| annotations.get(k).and_then(Value::as_str);
    let psc = spec.get("securityContext");
    if let (Some(field), Some(ann)) = (
        psc.and_then(|s| s.get("seccompProfile"))
            .filter(|v| v.is_object()),
        value(SECCOMP_POD_ANNOTATION),
    ) {
        let p = child(&child(spec_path, "securityContext"), "seccompProfile");
        errs.extend(profile_mismatch(
            ann,
            field,
            &p,
            "seccomp",
            &["runtime/default", "docker/default"],
        ));
    }
    for (c, cpath) in containers_with_path(spec, spec_path) {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        let csc = c.get("securityContext");
        if let (Some(field), Some(ann)) = (
            csc.and_then(|s| s.get("seccompProfile"))
                .filter(|v| v.is_object()),
            value(&format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{name}")),
        ) {
            let p = child(&child(&cpath, "securityContext"), "seccompProfile");
            errs.extend(profile_mismatch(
                ann,
                field,
                &p,
                "seccomp",
                &["runtime/default", "docker/default"],
            ));
        }
    }
    let windows = spec
        .get("os")
        .and_then(|o| o.get("name"))
        .and_then(Value::as_str)
        == Some("windows");
    if !windows {
        let pod_profile = psc
            .and_then(|s| s.get("appArmorProfile"))
            .filter(|v| v.is_object());
        for (c, cpath) in containers_with_path(spec, spec_path) {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            let field = c
                .get("securityContext")
                .and_then(|s| s.get("appArmorProfile"))
                .filter(|v| v.is_object())
                .or(pod_profile);
            let ann = value(&format!("{APPARMOR_ANNOTATION_PREFIX}{name}"));
            if let (Some(field), Some(ann)) = (field, ann) {
                let p = child(&child(&cpath, "securityContext"), "appArmorProfile");
                errs.extend(profile_mismatch(
                    ann,
                    field,
                    &p,
                    "apparmor",
                    &["runtime/default"],
                ));
            }
        }
    }
    errs
}

/// `validateSeccompAnnotationsAndFieldsMatch` and its AppArmor twin.
fn profile_mismatch(
    ann: &str,
    field: &Value,
    path: &str,
    what: &str,
    runtime_default: &[&str],
) -> Option<FieldError> {
    let type_err = || {
        FieldError::forbidden(
            &child(path, "type"),
            format!("{what} type in annotation and field must match"),
        )
    };
    match field.get("type").and_then(Value::as_str).unwrap_or("") {
        "Unconfined" if ann != "unconfined" => Some(type_err()),
        "RuntimeDefault" if !runtime_default.contains(&ann) => Some(type_err()),
        "Localhost" => match ann.strip_prefix("localhost/") {
            None => Some(type_err()),
            Some(name) if field.get("localhostProfile").and_then(Value::as_str) != Some(name) => {
                Some(FieldError::forbidden(
                    &child(path, "localhostProfile"),
                    format!("{what} profile in annotation and field must match"),
                ))
            }
            Some(_) => None,
        },
        _ => None,
    }
}

/// `ValidatePodSpecificAnnotationUpdates`' AppArmor rule: the deprecated AppArmor
/// annotations of a running pod may not be added, changed or removed (the kubelet applied
/// them at start).
pub(super) fn validate_apparmor_annotation_updates(
    new: Option<&Value>,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let empty = Map::new();
    let new = new.and_then(Value::as_object).unwrap_or(&empty);
    let old = old.and_then(Value::as_object).unwrap_or(&empty);
    let path = "metadata.annotations";
    let mut errs = Vec::new();
    for (k, v) in old {
        if k.starts_with(APPARMOR_ANNOTATION_PREFIX) && new.get(k) != Some(v) {
            errs.push(FieldError::forbidden(
                &key(path, k),
                "may not remove or update AppArmor annotations",
            ));
        }
    }
    for k in new.keys() {
        if k.starts_with(APPARMOR_ANNOTATION_PREFIX) && !old.contains_key(k) {
            errs.push(FieldError::forbidden(
                &key(path, k),
                "may not add AppArmor annotations",
            ));
        }
    }
    errs
}

/// Go's `%#v` of upstream's internal `core.SecurityContext`, as its `field.Invalid` on the
/// whole context prints: fields in declaration order, nil pointers as `(*T)(nil)`, set ones
/// as `(*T)(<address>)` (see [`GO_POINTER`]).
fn go_security_context(sc: &Value) -> String {
    const FIELDS: &[(&str, &str, &str)] = &[
        ("Capabilities", "capabilities", "core.Capabilities"),
        ("Privileged", "privileged", "bool"),
        ("SELinuxOptions", "seLinuxOptions", "core.SELinuxOptions"),
        (
            "WindowsOptions",
            "windowsOptions",
            "core.WindowsSecurityContextOptions",
        ),
        ("RunAsUser", "runAsUser", "int64"),
        ("RunAsGroup", "runAsGroup", "int64"),
        ("RunAsNonRoot", "runAsNonRoot", "bool"),
        ("ReadOnlyRootFilesystem", "readOnlyRootFilesystem", "bool"),
        (
            "AllowPrivilegeEscalation",
            "allowPrivilegeEscalation",
            "bool",
        ),
        ("ProcMount", "procMount", "core.ProcMountType"),
        ("SeccompProfile", "seccompProfile", "core.SeccompProfile"),
        ("AppArmorProfile", "appArmorProfile", "core.AppArmorProfile"),
    ];
    let fields: Vec<String> = FIELDS
        .iter()
        .map(|(go, json, ty)| {
            let addr = if present(sc, json) { GO_POINTER } else { "nil" };
            format!("{go}:(*{ty})({addr})")
        })
        .collect();
    format!("core.SecurityContext{{{}}}", fields.join(", "))
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
