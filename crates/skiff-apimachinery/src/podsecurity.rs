//! Pod Security admission's policy, pure: the checks of the `baseline` and `restricted`
//! levels as upstream's pod-security-admission `policy` package evaluates them (same
//! reasons, details and order), and the `pod-security.kubernetes.io/*` namespace labels
//! that choose a level per mode.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

/// The label prefix of the namespace policy labels.
pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// A Pod Security Standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A level at a policy version (`restricted:latest`, `baseline:v1.30`). The checks skiff
/// implements are those of the current version, which every supported version shares for
/// the controls checked here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub version: String,
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// What a namespace asks for, per mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub warn: LevelVersion,
    pub audit: LevelVersion,
}

fn valid_version(v: &str) -> bool {
    if v == "latest" {
        return true;
    }
    let Some(minor) = v.strip_prefix("v1.") else {
        return false;
    };
    let digits = !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit());
    digits && (minor == "0" || !minor.starts_with('0'))
}

/// The policy of a namespace's labels (upstream `PolicyToEvaluate`): an unset mode is
/// `privileged:latest`; an unparsable enforce level fails closed (`restricted`), an
/// unparsable warn or audit level fails open (`privileged`), an unparsable version is
/// `latest`. Warn follows an explicitly set, stricter enforce level when it has no label
/// of its own. Returns the label errors too, in upstream's wording.
pub fn policy(labels: Option<&Map<String, Value>>) -> (Policy, Vec<String>) {
    let mut errors = Vec::new();
    let get = |key: &str| {
        labels
            .and_then(|l| l.get(&format!("{LABEL_PREFIX}{key}")))
            .and_then(Value::as_str)
    };
    let latest = || LevelVersion {
        level: Level::Privileged,
        version: "latest".into(),
    };
    let mut p = Policy {
        enforce: latest(),
        warn: latest(),
        audit: latest(),
    };
    let level_of = |key: &str, fail: Level, errors: &mut Vec<String>| -> Option<Level> {
        let v = get(key)?;
        Some(Level::parse(v).unwrap_or_else(|| {
            errors.push(format!(
                "metadata.labels[{LABEL_PREFIX}{key}]: Invalid value: \"{v}\": must be one of privileged, baseline, restricted"
            ));
            fail
        }))
    };
    let enforce_level = level_of("enforce", Level::Restricted, &mut errors);
    let enforce_valid = get("enforce").and_then(Level::parse).is_some();
    let warn_level = level_of("warn", Level::Privileged, &mut errors);
    let audit_level = level_of("audit", Level::Privileged, &mut errors);
    let mut version_of = |key: &str| -> Option<String> {
        let v = get(key)?;
        if valid_version(v) {
            return Some(v.to_owned());
        }
        errors.push(format!(
            "metadata.labels[{LABEL_PREFIX}{key}]: Invalid value: \"{v}\": must be 'latest' or 'v1.x'"
        ));
        Some("latest".into())
    };
    let enforce_version = version_of("enforce-version");
    let warn_version = version_of("warn-version");
    let audit_version = version_of("audit-version");
    for (mode, level, version) in [
        (&mut p.enforce, enforce_level, &enforce_version),
        (&mut p.warn, warn_level, &warn_version),
        (&mut p.audit, audit_level, &audit_version),
    ] {
        if let Some(level) = level {
            mode.level = level;
        }
        if let Some(version) = version {
            mode.version = version.clone();
        }
    }
    if warn_level.is_none() && enforce_valid && p.enforce.level > p.warn.level {
        p.warn.level = p.enforce.level;
        if warn_version.is_none() {
            p.warn.version = p.enforce.version.clone();
        }
    }
    (p, errors)
}

/// One check's refusal: `reason (detail)` in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

/// The checks' findings joined as upstream's `ForbiddenDetail`: `reason (detail), ...`.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn pluralize<'a>(one: &'a str, many: &'a str, n: usize) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `container "a"` or `containers "a", "b"`, as upstream's messages name the offenders.
fn named_containers<S: AsRef<str>>(names: &[S]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Init containers, containers and ephemeral containers, in upstream's visiting order.
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |f| spec[f].as_array().into_iter().flatten())
}

fn cname(c: &Value) -> String {
    c["name"].as_str().unwrap_or_default().to_owned()
}

type Check = fn(&Value, &Value) -> Option<Violation>;

fn violation(reason: &str, detail: String) -> Option<Violation> {
    Some(Violation {
        reason: reason.into(),
        detail,
    })
}

fn app_armor(meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = BTreeSet::new();
    let bad_type = |v: &Value| {
        v["appArmorProfile"]["type"]
            .as_str()
            .filter(|t| !matches!(*t, "RuntimeDefault" | "Localhost"))
            .map(str::to_owned)
    };
    bad.extend(bad_type(&spec["securityContext"]));
    for c in containers(spec) {
        bad.extend(bad_type(&c["securityContext"]));
    }
    for (k, v) in meta["annotations"].as_object().into_iter().flatten() {
        if k.starts_with("container.apparmor.security.beta.kubernetes.io/") {
            let v = v.as_str().unwrap_or_default();
            if !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/")) {
                bad.insert(format!("{k}={v}"));
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    let bad: Vec<String> = bad.into_iter().collect();
    violation(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            bad.len(),
        ),
        join_quote(&bad),
    )
}

const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(c: &Value) -> impl Iterator<Item = &str> {
    c["securityContext"]["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn capabilities_baseline(_: &Value, spec: &Value) -> Option<Violation> {
    let mut names = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(spec) {
        let bad: Vec<&str> = added_capabilities(c)
            .filter(|cap| !BASELINE_CAPABILITIES.contains(cap))
            .collect();
        if !bad.is_empty() {
            names.push(cname(c));
            caps.extend(bad.into_iter().map(str::to_owned));
        }
    }
    if names.is_empty() {
        return None;
    }
    let caps: Vec<String> = caps.into_iter().collect();
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            named_containers(&names),
            join_quote(&caps)
        ),
    )
}

fn host_namespaces(_: &Value, spec: &Value) -> Option<Violation> {
    let set: Vec<&str> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|f| spec[*f] == Value::Bool(true))
        .collect();
    if set.is_empty() {
        return None;
    }
    let detail: Vec<String> = set.iter().map(|f| format!("{f}=true")).collect();
    violation("host namespaces", detail.join(", "))
}

fn volumes(spec: &Value) -> impl Iterator<Item = &Value> {
    spec["volumes"].as_array().into_iter().flatten()
}

fn host_path_volumes(_: &Value, spec: &Value) -> Option<Violation> {
    let names: Vec<String> = volumes(spec)
        .filter(|v| !v["hostPath"].is_null())
        .map(cname)
        .collect();
    if names.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names)
        ),
    )
}

fn host_ports(_: &Value, spec: &Value) -> Option<Violation> {
    let mut names = Vec::new();
    let mut ports = Vec::new();
    for c in containers(spec) {
        let mut uses = false;
        for p in c["ports"].as_array().into_iter().flatten() {
            if let Some(port) = p["hostPort"].as_i64().filter(|p| *p != 0) {
                uses = true;
                ports.push(port.to_string());
            }
        }
        if uses {
            names.push(cname(c));
        }
    }
    if names.is_empty() {
        return None;
    }
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            named_containers(&names),
            pluralize("uses", "use", names.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn privileged(_: &Value, spec: &Value) -> Option<Violation> {
    let names: Vec<String> = containers(spec)
        .filter(|c| c["securityContext"]["privileged"] == Value::Bool(true))
        .map(cname)
        .collect();
    if names.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            named_containers(&names)
        ),
    )
}

fn proc_mount(_: &Value, spec: &Value) -> Option<Violation> {
    // A pod in its own user namespace may unmask /proc (baseline since v1.33).
    if spec["hostUsers"] == Value::Bool(false) {
        return None;
    }
    let mut names = Vec::new();
    let mut values = BTreeSet::new();
    for c in containers(spec) {
        if let Some(m) = c["securityContext"]["procMount"].as_str() {
            if m != "Default" {
                names.push(cname(c));
                values.insert(m.to_owned());
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    let values: Vec<String> = values.into_iter().collect();
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            named_containers(&names),
            join_quote(&values)
        ),
    )
}

fn se_linux(_: &Value, spec: &Value) -> Option<Violation> {
    const TYPES: [&str; 5] = [
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
        "container_engine_t",
    ];
    let mut setters = Vec::new();
    let mut types = BTreeSet::new();
    let mut users = BTreeSet::new();
    let mut roles = BTreeSet::new();
    let mut bad = |o: &Value| -> bool {
        let mut found = false;
        if let Some(t) = o["type"].as_str().filter(|t| !TYPES.contains(t)) {
            types.insert(t.to_owned());
            found = true;
        }
        if let Some(u) = o["user"].as_str().filter(|u| !u.is_empty()) {
            users.insert(u.to_owned());
            found = true;
        }
        if let Some(r) = o["role"].as_str().filter(|r| !r.is_empty()) {
            roles.insert(r.to_owned());
            found = true;
        }
        found
    };
    if bad(&spec["securityContext"]["seLinuxOptions"]) {
        setters.push("pod".to_owned());
    }
    let names: Vec<String> = containers(spec)
        .filter(|c| bad(&c["securityContext"]["seLinuxOptions"]))
        .map(cname)
        .collect();
    if !names.is_empty() {
        setters.push(named_containers(&names));
    }
    if setters.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    for (what, set) in [("type", types), ("user", users), ("role", roles)] {
        if !set.is_empty() {
            let set: Vec<String> = set.into_iter().collect();
            parts.push(format!("{what} {}", join_quote(&set)));
        }
    }
    violation(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            parts.join("; ")
        ),
    )
}

fn seccomp_type(sc: &Value) -> Option<&str> {
    sc["seccompProfile"]["type"].as_str()
}

fn seccomp_baseline(_: &Value, spec: &Value) -> Option<Violation> {
    let mut setters = Vec::new();
    if seccomp_type(&spec["securityContext"]) == Some("Unconfined") {
        setters.push("pod".to_owned());
    }
    let names: Vec<String> = containers(spec)
        .filter(|c| seccomp_type(&c["securityContext"]) == Some("Unconfined"))
        .map(cname)
        .collect();
    if !names.is_empty() {
        setters.push(named_containers(&names));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
            setters.join(" and ")
        ),
    )
}

const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

fn sysctls(_: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = spec["securityContext"]["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .map(str::to_owned)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation("forbidden sysctls", bad.join(", "))
}

fn host_process(_: &Value, spec: &Value) -> Option<Violation> {
    let on = |sc: &Value| sc["windowsOptions"]["hostProcess"] == Value::Bool(true);
    let mut setters = Vec::new();
    if on(&spec["securityContext"]) {
        setters.push("pod".to_owned());
    }
    let names: Vec<String> = containers(spec)
        .filter(|c| on(&c["securityContext"]))
        .map(cname)
        .collect();
    if !names.is_empty() {
        setters.push(named_containers(&names));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    )
}

fn allow_privilege_escalation(_: &Value, spec: &Value) -> Option<Violation> {
    // Windows pods have no such control.
    if spec["os"]["name"] == "windows" {
        return None;
    }
    let names: Vec<String> = containers(spec)
        .filter(|c| c["securityContext"]["allowPrivilegeEscalation"] != Value::Bool(false))
        .map(cname)
        .collect();
    if names.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            named_containers(&names)
        ),
    )
}

fn capabilities_restricted(_: &Value, spec: &Value) -> Option<Violation> {
    if spec["os"]["name"] == "windows" {
        return None;
    }
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut forbidden = BTreeSet::new();
    for c in containers(spec) {
        let caps = &c["securityContext"]["capabilities"];
        if caps.is_null() {
            missing_drop.push(cname(c));
            continue;
        }
        let dropped_all = caps["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "ALL"));
        if !dropped_all {
            missing_drop.push(cname(c));
        }
        let bad: Vec<&str> = added_capabilities(c)
            .filter(|cap| *cap != "NET_BIND_SERVICE")
            .collect();
        if !bad.is_empty() {
            adding.push(cname(c));
            forbidden.extend(bad.into_iter().map(str::to_owned));
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            named_containers(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        let forbidden: Vec<String> = forbidden.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            named_containers(&adding),
            join_quote(&forbidden)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

/// The volume sources restricted allows.
const ALLOWED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// The volume sources upstream names when it refuses them.
const KNOWN_VOLUMES: [&str; 20] = [
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
];

fn restricted_volumes(_: &Value, spec: &Value) -> Option<Violation> {
    let mut names = Vec::new();
    let mut types = BTreeSet::new();
    for v in volumes(spec) {
        let present = |k: &&str| v.get(*k).is_some_and(|s| !s.is_null());
        if ALLOWED_VOLUMES.iter().any(present) {
            continue;
        }
        names.push(cname(v));
        let kind = KNOWN_VOLUMES
            .iter()
            .chain(std::iter::once(&"storageos"))
            .find(|k| present(k))
            .copied()
            .unwrap_or("unknown");
        types.insert(kind.to_owned());
    }
    if names.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names),
            pluralize("uses", "use", names.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

/// The checks shared by `pod`-and-container fields: a pod-level setting, containers that
/// set a bad value, containers that rely on an unset pod-level one.
fn pod_or_containers(
    spec: &Value,
    good: impl Fn(&Value) -> Option<bool>,
) -> (bool, Vec<String>, Vec<String>) {
    let mut pod_bad = false;
    let mut pod_good = false;
    match good(&spec["securityContext"]) {
        Some(false) => pod_bad = true,
        Some(true) => pod_good = true,
        None => {}
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match good(&c["securityContext"]) {
            Some(false) => explicit.push(cname(c)),
            Some(true) => {}
            None if !pod_good => implicit.push(cname(c)),
            None => {}
        }
    }
    (pod_bad, explicit, implicit)
}

fn setters(pod_bad: bool, explicit: &[String]) -> Vec<String> {
    let mut s = Vec::new();
    if pod_bad {
        s.push("pod".to_owned());
    }
    if !explicit.is_empty() {
        s.push(named_containers(explicit));
    }
    s
}

fn run_as_non_root(_: &Value, spec: &Value) -> Option<Violation> {
    let (pod_bad, explicit, implicit) = pod_or_containers(spec, |sc| sc["runAsNonRoot"].as_bool());
    let bad = setters(pod_bad, &explicit);
    if !bad.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                bad.join(" and ")
            ),
        );
    }
    if !implicit.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                named_containers(&implicit)
            ),
        );
    }
    None
}

fn run_as_user(_: &Value, spec: &Value) -> Option<Violation> {
    let root = |sc: &Value| sc["runAsUser"].as_i64() == Some(0);
    let pod_bad = root(&spec["securityContext"]);
    let names: Vec<String> = containers(spec)
        .filter(|c| root(&c["securityContext"]))
        .map(cname)
        .collect();
    let bad = setters(pod_bad, &names);
    if bad.is_empty() {
        return None;
    }
    violation(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", bad.join(" and ")),
    )
}

fn seccomp_restricted(_: &Value, spec: &Value) -> Option<Violation> {
    if spec["os"]["name"] == "windows" {
        return None;
    }
    let mut values = BTreeSet::new();
    let (pod_bad, explicit, implicit) = pod_or_containers(spec, |sc| {
        let t = seccomp_type(sc)?;
        Some(matches!(t, "RuntimeDefault" | "Localhost"))
    });
    if pod_bad {
        values.extend(seccomp_type(&spec["securityContext"]).map(str::to_owned));
    }
    for c in containers(spec) {
        if let Some(t) = seccomp_type(&c["securityContext"]) {
            if !matches!(t, "RuntimeDefault" | "Localhost") {
                values.insert(t.to_owned());
            }
        }
    }
    let bad = setters(pod_bad, &explicit);
    if !bad.is_empty() {
        let values: Vec<String> = values.into_iter().collect();
        return violation(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                bad.join(" and "),
                join_quote(&values)
            ),
        );
    }
    if !implicit.is_empty() {
        return violation(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                named_containers(&implicit)
            ),
        );
    }
    None
}

/// Baseline checks in upstream's registration order (by file name), without those the
/// restricted level replaces.
const BASELINE: [Check; 8] = [
    app_armor,
    host_namespaces,
    host_ports,
    privileged,
    proc_mount,
    se_linux,
    sysctls,
    host_process,
];
/// Baseline checks a restricted check replaces; evaluated only at the baseline level,
/// after the others (upstream's overlapping checks).
const BASELINE_OVERLAPPING: [Check; 3] =
    [capabilities_baseline, host_path_volumes, seccomp_baseline];
const RESTRICTED: [Check; 6] = [
    allow_privilege_escalation,
    capabilities_restricted,
    restricted_volumes,
    run_as_non_root,
    run_as_user,
    seccomp_restricted,
];

/// A pod (its metadata and spec) against a level: every failed check, in upstream's order.
pub fn check(level: Level, meta: &Value, spec: &Value) -> Vec<Violation> {
    let checks: Vec<Check> = match level {
        Level::Privileged => return vec![],
        Level::Baseline => BASELINE
            .iter()
            .chain(&BASELINE_OVERLAPPING)
            .copied()
            .collect(),
        Level::Restricted => BASELINE.iter().chain(&RESTRICTED).copied().collect(),
    };
    checks.iter().filter_map(|c| c(meta, spec)).collect()
}

/// Where a kind keeps the pod it makes: a Pod itself, or the template of a workload
/// (upstream's `PodSpecExtractor`: the workloads are only warned and audited).
pub fn pod_template<'a>(group: &str, kind: &str, obj: &'a Value) -> Option<(&'a Value, &'a Value)> {
    let template = match (group, kind) {
        ("", "Pod") => return Some((&obj["metadata"], &obj["spec"])),
        ("", "ReplicationController" | "PodTemplate")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => {
            if kind == "PodTemplate" {
                &obj["template"]
            } else {
                &obj["spec"]["template"]
            }
        }
        ("batch", "CronJob") => &obj["spec"]["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    Some((&template["metadata"], &template["spec"]))
}

#[cfg(test)]
mod tests;
