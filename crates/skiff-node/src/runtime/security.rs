//! What confines a container's process beyond what it runs: the CRI's
//! `LinuxContainerSecurityContext` once the kubelet resolved it ([`Security`]), and its
//! mapping onto the OCI spec as containerd's CRI plugin does it (capabilities, privileged,
//! seccomp, AppArmor, the SELinux label, no_new_privs, read-only root, masked paths,
//! sysctls). Pure: host facts come in
//! as arguments, so every rule is table-tested without runc.
//!
//! The RuntimeDefault seccomp profile is moby's `profiles/seccomp/default.json` (vendored
//! unchanged beside this file with its Apache-2.0 licence, `seccomp/`), the profile
//! containerd's generated default mirrors; [`default_profile`] filters it for the
//! container's capabilities, the machine's architecture and kernel, as both do.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// containerd's (and Docker's) default capability set, which Kubernetes containers get
/// unless they ask otherwise.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability by number (`capabilities(7)`); "all" is those of them the agent
/// itself holds, as containerd's (`cap.Current()`): a runtime cannot grant more.
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The kubelet's default masked paths (`securitycontext.ConvertToRuntimeMaskedPaths` for
/// the Default procMount).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The kubelet's default read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// moby's default seccomp profile, vendored unchanged.
const DEFAULT_PROFILE: &str = include_str!("seccomp/default.json");

/// The seccomp profile a container runs under (the CRI's `SecurityProfile`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seccomp {
    /// No filter. What containers made before this field existed ran with.
    #[default]
    Unconfined,
    /// The runtime's default profile ([`default_profile`]).
    RuntimeDefault,
    /// A profile in OCI `LinuxSeccomp` JSON, read from this file on the node.
    Localhost(std::path::PathBuf),
}

/// The capability changes a container asks for (names as in the Pod: `NET_ADMIN`, `ALL`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Added to the default set.
    pub add: Vec<String>,
    /// Removed from it (after the adds).
    pub drop: Vec<String>,
}

/// Everything the runtime enforces on a container's process besides its user: plain
/// data, stored with the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// All capabilities, every host device, no seccomp, no masked paths.
    pub privileged: bool,
    /// Changes to [`DEFAULT_CAPABILITIES`].
    pub capabilities: Capabilities,
    /// `no_new_privs` (the Pod's `allowPrivilegeEscalation: false`).
    pub no_new_privileges: bool,
    /// Mount the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// The seccomp profile.
    pub seccomp: Seccomp,
    /// `procMount: Unmasked`: no masked or read-only paths under /proc.
    pub unmasked_proc: bool,
    /// Groups the process gets besides its primary one (supplementalGroups and fsGroup).
    pub supplemental_groups: Vec<u32>,
    /// Namespaced kernel parameters set in the container's namespaces.
    pub sysctls: BTreeMap<String, String>,
    /// The AppArmor profile the process is confined by; `None` leaves it unconfined (a
    /// host without AppArmor, `Unconfined`, or a privileged container that asked for
    /// nothing). Absent in specs stored before AppArmor was applied.
    #[serde(default)]
    pub apparmor: Option<AppArmor>,
    /// The SELinux process label (`user:role:type:level`) when the host enforces SELinux
    /// and the pod gives `seLinuxOptions`; absent otherwise, as containerd.
    #[serde(default)]
    pub selinux_label: Option<String>,
}

/// An AppArmor profile to run under (the CRI's `SecurityProfile` for AppArmor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppArmor {
    /// The runtime's default profile, [`APPARMOR_DEFAULT_PROFILE`].
    RuntimeDefault,
    /// A profile already loaded on the node, by name.
    Localhost(String),
}

/// The name skiff loads moby's default AppArmor profile under (Docker's `docker-default`,
/// containerd's `cri-containerd.apparmor.d`).
pub const APPARMOR_DEFAULT_PROFILE: &str = "skiff-default";

/// moby's default AppArmor profile template, vendored unchanged (`apparmor/`).
const APPARMOR_TEMPLATE: &str = include_str!("apparmor/template");

/// What moby's `generate` fills its template with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppArmorProfileData {
    /// `abi/3.0` when the host's `/etc/apparmor.d` has it.
    pub abi: Option<String>,
    /// Lines before the profile (`#include <tunables/global>`, else `@{PROC}=/proc/`).
    pub imports: Vec<String>,
    /// Lines inside it (`#include <abstractions/base>` when present).
    pub inner_imports: Vec<String>,
    /// The profile's name.
    pub name: String,
    /// The profile of the process that sends containers signals (the agent's own).
    pub daemon_profile: String,
}

impl AppArmorProfileData {
    /// moby's `generate` choices given which of `/etc/apparmor.d`'s macros exist and the
    /// agent's own profile (`/proc/self/attr/current`).
    pub fn for_host(name: &str, macro_exists: impl Fn(&str) -> bool, own: &str) -> Self {
        let own = own.trim();
        let own = own.split(" (").next().unwrap_or_default();
        Self {
            abi: macro_exists("abi/3.0").then(|| "abi/3.0".to_string()),
            imports: vec![if macro_exists("tunables/global") {
                "#include <tunables/global>".to_string()
            } else {
                "@{PROC}=/proc/".to_string()
            }],
            inner_imports: if macro_exists("abstractions/base") {
                vec!["#include <abstractions/base>".to_string()]
            } else {
                Vec::new()
            },
            name: name.to_string(),
            daemon_profile: if own.is_empty() {
                "unconfined".to_string()
            } else {
                own.to_string()
            },
        }
    }
}

/// moby's default AppArmor profile rendered for `data`: its template executed as Go's
/// `text/template` does for the few actions it uses (`{{.Field}}`, `{{if .F}}`,
/// `{{range $value := .F}}`, `{{$value}}`, `{{end}}`, and `{{-` trimming).
pub fn apparmor_default_profile(data: &AppArmorProfileData) -> String {
    // Split into text and actions, applying `{{-` / `-}}` trimming to the text around.
    let mut parts: Vec<(bool, String)> = Vec::new();
    let mut rest = APPARMOR_TEMPLATE;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_string();
        if trim_next {
            text = text.trim_start().to_string();
        }
        let end = rest[start..]
            .find("}}")
            .map(|e| start + e)
            .unwrap_or(rest.len());
        let mut action = &rest[start + 2..end];
        if let Some(a) = action.strip_prefix('-') {
            text = text.trim_end().to_string();
            action = a;
        }
        trim_next = action.ends_with('-');
        let action = action.trim_end_matches('-').trim().to_string();
        parts.push((false, text));
        parts.push((true, action));
        rest = rest.get(end + 2..).unwrap_or_default();
    }
    let tail = if trim_next { rest.trim_start() } else { rest };
    parts.push((false, tail.to_string()));

    let list = |field: &str| -> Vec<String> {
        match field {
            ".Imports" => data.imports.clone(),
            ".InnerImports" => data.inner_imports.clone(),
            ".Abi" => data.abi.iter().cloned().collect(),
            _ => Vec::new(),
        }
    };
    let scalar = |field: &str| -> String {
        match field {
            ".Name" => data.name.clone(),
            ".DaemonProfile" => data.daemon_profile.clone(),
            ".Abi" => data.abi.clone().unwrap_or_default(),
            _ => String::new(),
        }
    };
    // Evaluate with a stack of (items to repeat over, body start, current index).
    fn block_end(parts: &[(bool, String)], from: usize) -> usize {
        let mut depth = 0;
        for (i, (is_action, a)) in parts.iter().enumerate().skip(from) {
            if !is_action {
                continue;
            }
            if a.starts_with("if ") || a.starts_with("range ") {
                depth += 1;
            } else if a == "end" {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
            }
        }
        parts.len()
    }
    fn eval(
        parts: &[(bool, String)],
        range: std::ops::Range<usize>,
        value: Option<&str>,
        list: &dyn Fn(&str) -> Vec<String>,
        scalar: &dyn Fn(&str) -> String,
        out: &mut String,
    ) {
        let mut i = range.start;
        while i < range.end {
            let (is_action, a) = &parts[i];
            if !is_action {
                out.push_str(a);
                i += 1;
                continue;
            }
            if let Some(field) = a.strip_prefix("if ") {
                let end = block_end(parts, i + 1);
                if !list(field.trim()).is_empty() {
                    eval(parts, i + 1..end, value, list, scalar, out);
                }
                i = end + 1;
            } else if let Some(spec) = a.strip_prefix("range ") {
                let end = block_end(parts, i + 1);
                let field = spec.split(":=").nth(1).unwrap_or_default().trim();
                for item in list(field) {
                    eval(parts, i + 1..end, Some(&item), list, scalar, out);
                }
                i = end + 1;
            } else if a == "$value" {
                out.push_str(value.unwrap_or_default());
                i += 1;
            } else {
                out.push_str(&scalar(a));
                i += 1;
            }
        }
    }
    let mut out = String::new();
    eval(&parts, 0..parts.len(), None, &list, &scalar, &mut out);
    out
}

/// Host facts the security fields depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSecurity {
    /// The agent's own bounding set (`CapBnd` of `/proc/self/status`), bit n for
    /// capability n: what "all capabilities" means on this host.
    pub available: u64,
    /// The kernel's `major.minor`, for the profile's `minKernel` conditions.
    pub kernel: (u32, u32),
}

impl HostSecurity {
    /// Reads the facts of this machine.
    pub fn detect() -> Self {
        let available = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapBnd:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(u64::MAX);
        let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: uname fills the struct we own; its fields are NUL-terminated.
        let release = if unsafe { libc::uname(&mut uts) } == 0 {
            // SAFETY: release is a NUL-terminated array inside `uts`.
            unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        } else {
            String::new()
        };
        Self {
            available,
            kernel: kernel_version(&release),
        }
    }

    /// The capabilities a privileged container gets: those the agent holds.
    pub fn all_capabilities(&self) -> Vec<String> {
        ALL_CAPABILITIES
            .iter()
            .enumerate()
            .filter(|(n, _)| self.available & (1u64 << n) != 0)
            .map(|(_, c)| c.to_string())
            .collect()
    }
}

/// `major.minor` of a kernel release string (`6.1.0-18-amd64` → (6, 1)).
pub fn kernel_version(release: &str) -> (u32, u32) {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

/// A Pod's capability name as the OCI spec spells it: upper case with the `CAP_` prefix
/// (the Pod API leaves the prefix out; one already there is kept, not doubled).
fn cap_name(c: &str) -> String {
    let c = c.to_ascii_uppercase();
    if c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

/// The capability set of the process (bounding = effective = permitted), as containerd's
/// `WithCapabilities`: privileged gets all; otherwise the default set, replaced by all for
/// `add: [ALL]`, emptied for `drop: [ALL]` (which wins over `add: [ALL]`), then the named
/// adds, then the named drops.
pub fn capabilities(sec: &Security, host: &HostSecurity) -> Vec<String> {
    let all = host.all_capabilities();
    if sec.privileged {
        return all;
    }
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let mut caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    if sec.capabilities.add.iter().any(is_all) {
        caps = all;
    }
    if sec.capabilities.drop.iter().any(is_all) {
        caps.clear();
    }
    for c in sec.capabilities.add.iter().filter(|c| !is_all(c)) {
        let c = cap_name(c);
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    for c in sec.capabilities.drop.iter().filter(|c| !is_all(c)) {
        let c = cap_name(c);
        caps.retain(|x| *x != c);
    }
    caps
}

/// Go's `GOARCH` name of this build's architecture, which the profile's conditions use.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

/// libseccomp's name of a Go architecture (moby's `goToNative` then `nativeToSeccomp`).
fn seccomp_arch(go: &str) -> Option<&'static str> {
    Some(match go {
        "amd64" => "SCMP_ARCH_X86_64",
        "386" => "SCMP_ARCH_X86",
        "arm64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "s390x" => "SCMP_ARCH_S390X",
        _ => return None,
    })
}

/// The profile condition names arches as libseccomp's native strings (`x86` for 386).
fn native_arch(go: &str) -> &str {
    match go {
        "386" => "x86",
        other => other,
    }
}

/// The RuntimeDefault profile in OCI form for a process with `caps` in its bounding set:
/// moby's default profile with each rule kept only when its `includes` hold (every
/// capability present, this architecture, kernel at least `minKernel`) and its `excludes`
/// do not (any capability present, this architecture, kernel at least `minKernel`).
pub fn default_profile(caps: &[String], host: &HostSecurity) -> Value {
    profile_for(caps, host, go_arch())
}

fn profile_for(caps: &[String], host: &HostSecurity, go: &str) -> Value {
    let profile: Value =
        serde_json::from_str(DEFAULT_PROFILE).expect("the vendored seccomp profile is JSON");
    let arch = native_arch(go);
    let min_kernel_ok = |v: &Value| {
        v.as_str()
            .map(kernel_version)
            .is_some_and(|min| host.kernel >= min)
    };
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut architectures = Vec::new();
    if let Some(native) = seccomp_arch(go) {
        for a in profile["archMap"].as_array().into_iter().flatten() {
            if a["architecture"] == native {
                architectures.push(native.to_string());
                architectures.extend(strs(&a["subArchitectures"]));
            }
        }
    }
    let mut syscalls = Vec::new();
    for call in profile["syscalls"].as_array().into_iter().flatten() {
        let ex = &call["excludes"];
        if strs(&ex["arches"]).iter().any(|a| a == arch)
            || strs(&ex["caps"]).iter().any(|c| caps.contains(c))
            || (!ex["minKernel"].is_null() && min_kernel_ok(&ex["minKernel"]))
        {
            continue;
        }
        let inc = &call["includes"];
        let arches = strs(&inc["arches"]);
        if (!arches.is_empty() && !arches.iter().any(|a| a == arch))
            || !strs(&inc["caps"]).iter().all(|c| caps.contains(c))
            || (!inc["minKernel"].is_null() && !min_kernel_ok(&inc["minKernel"]))
        {
            continue;
        }
        let mut rule = json!({"names": call["names"], "action": call["action"]});
        for field in ["errnoRet", "args"] {
            if !call[field].is_null() {
                rule[field] = call[field].clone();
            }
        }
        syscalls.push(rule);
    }
    json!({
        "defaultAction": profile["defaultAction"],
        "defaultErrnoRet": profile["defaultErrnoRet"],
        "architectures": architectures,
        "syscalls": syscalls,
    })
}

/// Applies `sec` to an OCI config: the process's capabilities and no_new_privs, the root's
/// read-only flag, seccomp, masked and read-only paths, sysctls, and for privileged
/// containers every host device and writable sysfs and cgroupfs. `localhost` is the
/// parsed Localhost profile when [`Security::seccomp`] names one; `devices` the host's
/// device nodes (only used when privileged).
pub fn apply(
    config: &mut Value,
    sec: &Security,
    host: &HostSecurity,
    localhost: Option<Value>,
    devices: &[Value],
) {
    let caps = capabilities(sec, host);
    config["process"]["capabilities"] = json!({
        "bounding": caps,
        "effective": caps,
        "permitted": caps,
    });
    config["process"]["noNewPrivileges"] = json!(sec.no_new_privileges);
    config["root"]["readonly"] = json!(sec.readonly_rootfs);
    // containerd sets both for privileged containers too, when they are given.
    match &sec.apparmor {
        Some(AppArmor::RuntimeDefault) => {
            config["process"]["apparmorProfile"] = json!(APPARMOR_DEFAULT_PROFILE)
        }
        Some(AppArmor::Localhost(name)) => config["process"]["apparmorProfile"] = json!(name),
        None => {}
    }
    if let Some(label) = &sec.selinux_label {
        config["process"]["selinuxLabel"] = json!(label);
    }
    let linux = &mut config["linux"];
    if !sec.sysctls.is_empty() {
        linux["sysctl"] = json!(sec.sysctls);
    }
    if sec.privileged {
        // containerd: no seccomp, no masked paths, host devices all allowed, /sys and
        // /sys/fs/cgroup writable.
        linux["devices"] = json!(devices);
        linux["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
        if let Some(mounts) = config["mounts"].as_array_mut() {
            for m in mounts.iter_mut() {
                if m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup" {
                    if let Some(opts) = m["options"].as_array_mut() {
                        opts.retain(|o| o != "ro");
                        opts.push(json!("rw"));
                    }
                }
            }
        }
        return;
    }
    if !sec.unmasked_proc {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    match &sec.seccomp {
        Seccomp::Unconfined => {}
        Seccomp::RuntimeDefault => linux["seccomp"] = default_profile(&caps, host),
        Seccomp::Localhost(_) => {
            if let Some(p) = localhost {
                linux["seccomp"] = p;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: HostSecurity = HostSecurity {
        available: (1 << 41) - 1,
        kernel: (6, 1),
    };

    fn caps(add: &[&str], drop: &[&str]) -> Security {
        Security {
            capabilities: Capabilities {
                add: add.iter().map(|s| s.to_string()).collect(),
                drop: drop.iter().map(|s| s.to_string()).collect(),
            },
            ..Default::default()
        }
    }

    /// containerd's `TestContainerCapabilities` cases (pkg/cri/server/container_create_linux_test.go).
    #[test]
    fn capabilities_follow_containerds_add_then_drop() {
        let default: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        let all = HOST.all_capabilities();
        let without = |base: &[String], gone: &[&str]| -> Vec<String> {
            base.iter()
                .filter(|c| !gone.contains(&c.as_str()))
                .cloned()
                .collect()
        };
        let with = |base: &[String], more: &[&str]| -> Vec<String> {
            let mut v = base.to_vec();
            v.extend(more.iter().map(|s| s.to_string()));
            v
        };
        let cases: Vec<(&str, Security, Vec<String>)> = vec![
            ("nothing asked", caps(&[], &[]), default.clone()),
            (
                "add and drop names",
                caps(&["SYS_ADMIN"], &["CHOWN"]),
                with(&without(&default, &["CAP_CHOWN"]), &["CAP_SYS_ADMIN"]),
            ),
            ("add ALL", caps(&["ALL"], &[]), all.clone()),
            ("drop ALL", caps(&[], &["ALL"]), vec![]),
            (
                "add ALL, drop one",
                caps(&["ALL"], &["CHOWN"]),
                without(&all, &["CAP_CHOWN"]),
            ),
            (
                "drop ALL, add one",
                caps(&["NET_ADMIN"], &["ALL"]),
                vec!["CAP_NET_ADMIN".to_string()],
            ),
            ("add ALL and drop ALL", caps(&["ALL"], &["ALL"]), vec![]),
            (
                "lower case and a CAP_ prefix",
                caps(&["net_admin", "CAP_SYS_TIME"], &["kill"]),
                with(
                    &without(&default, &["CAP_KILL"]),
                    &["CAP_NET_ADMIN", "CAP_SYS_TIME"],
                ),
            ),
            (
                "adding a default one keeps one copy",
                caps(&["CHOWN"], &[]),
                default.clone(),
            ),
            (
                "privileged ignores drops",
                Security {
                    privileged: true,
                    ..caps(&[], &["ALL"])
                },
                all.clone(),
            ),
        ];
        for (name, sec, want) in cases {
            assert_eq!(capabilities(&sec, &HOST), want, "{name}");
        }
    }

    #[test]
    fn all_capabilities_are_those_the_agent_holds() {
        // An older kernel (up to CAP_AUDIT_READ), and a sandbox without CAP_SYS_RESOURCE.
        let old = HostSecurity {
            available: (1 << 38) - 1,
            kernel: (5, 4),
        };
        let all = old.all_capabilities();
        assert_eq!(all.len(), 38);
        assert_eq!(all.last().unwrap(), "CAP_AUDIT_READ");
        let boxed = HostSecurity {
            available: 0x1ff_feff_ffff,
            kernel: (6, 1),
        };
        let all = boxed.all_capabilities();
        assert_eq!(all.len(), 40);
        assert!(!all.contains(&"CAP_SYS_RESOURCE".to_string()));
    }

    fn allowed(profile: &Value, name: &str) -> bool {
        profile["syscalls"].as_array().unwrap().iter().any(|r| {
            r["action"] == "SCMP_ACT_ALLOW"
                && r["names"].as_array().unwrap().iter().any(|n| n == name)
        })
    }

    #[test]
    fn the_default_profile_is_filtered_by_capabilities_arch_and_kernel() {
        let default: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        let p = profile_for(&default, &HOST, "amd64");
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(p["defaultErrnoRet"], 1);
        assert_eq!(
            p["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        assert!(allowed(&p, "read") && allowed(&p, "arch_prctl"));
        // CAP_SYS_ADMIN's group (mount, unshare, setns...) is out without it.
        assert!(!allowed(&p, "unshare") && !allowed(&p, "mount"));
        // CAP_SYS_CHROOT is in the default set: chroot is allowed.
        assert!(allowed(&p, "chroot"));
        // clone3 answers ENOSYS without CAP_SYS_ADMIN, so libc falls back to clone.
        let clone3 = p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"] == json!(["clone3"]))
            .unwrap();
        assert_eq!(clone3["errnoRet"], 38);
        // ptrace needs kernel 4.8 (or CAP_SYS_PTRACE).
        assert!(allowed(&p, "ptrace"));
        let old = HostSecurity {
            available: HOST.available,
            kernel: (4, 4),
        };
        assert!(!allowed(&profile_for(&default, &old, "amd64"), "ptrace"));
        // Arch-specific rules follow the architecture.
        let arm = profile_for(&default, &HOST, "arm64");
        assert!(!allowed(&arm, "arch_prctl") && allowed(&arm, "set_tls"));
        assert_eq!(
            arm["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        // With CAP_SYS_ADMIN the group comes in and clone3's ENOSYS goes.
        let mut admin = default.clone();
        admin.push("CAP_SYS_ADMIN".into());
        let p = profile_for(&admin, &HOST, "amd64");
        assert!(allowed(&p, "unshare") && allowed(&p, "mount"));
        assert!(!p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["names"] == json!(["clone3"]) && r["action"] == "SCMP_ACT_ERRNO"));
    }

    fn base() -> Value {
        json!({
            "process": {"noNewPrivileges": true},
            "root": {"path": "/r", "readonly": false},
            "mounts": [
                {"destination": "/sys", "options": ["nosuid", "ro"]},
                {"destination": "/sys/fs/cgroup", "options": ["ro"]},
            ],
            "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}},
        })
    }

    #[test]
    fn apply_maps_each_field_as_containerd() {
        let mut c = base();
        apply(&mut c, &Security::default(), &HOST, None, &[]);
        assert_eq!(c["process"]["noNewPrivileges"], false);
        assert_eq!(c["root"]["readonly"], false);
        assert_eq!(c["linux"]["maskedPaths"], json!(MASKED_PATHS));
        assert_eq!(c["linux"]["readonlyPaths"], json!(READONLY_PATHS));
        assert!(c["linux"].get("seccomp").is_none());
        assert!(c["process"]["capabilities"].get("ambient").is_none());
        assert!(c["process"]["capabilities"].get("inheritable").is_none());

        let sec = Security {
            no_new_privileges: true,
            readonly_rootfs: true,
            seccomp: Seccomp::RuntimeDefault,
            unmasked_proc: true,
            sysctls: BTreeMap::from([("net.ipv4.tcp_syncookies".into(), "1".into())]),
            ..Default::default()
        };
        let mut c = base();
        apply(&mut c, &sec, &HOST, None, &[]);
        assert_eq!(c["process"]["noNewPrivileges"], true);
        assert_eq!(c["root"]["readonly"], true);
        assert_eq!(c["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(c["linux"].get("maskedPaths").is_none());
        assert_eq!(c["linux"]["sysctl"]["net.ipv4.tcp_syncookies"], "1");

        let local = json!({"defaultAction": "SCMP_ACT_LOG"});
        let sec = Security {
            seccomp: Seccomp::Localhost("/p.json".into()),
            ..Default::default()
        };
        let mut c = base();
        apply(&mut c, &sec, &HOST, Some(local.clone()), &[]);
        assert_eq!(c["linux"]["seccomp"], local);
    }

    #[test]
    fn privileged_gets_everything_and_no_filter() {
        let sec = Security {
            privileged: true,
            seccomp: Seccomp::RuntimeDefault,
            ..Default::default()
        };
        let dev = json!({"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229});
        let mut c = base();
        apply(&mut c, &sec, &HOST, None, std::slice::from_ref(&dev));
        assert_eq!(
            c["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            41
        );
        assert!(c["linux"].get("seccomp").is_none());
        assert!(c["linux"].get("maskedPaths").is_none());
        assert_eq!(c["linux"]["devices"], json!([dev]));
        assert_eq!(c["linux"]["resources"]["devices"][0]["allow"], true);
        for m in c["mounts"].as_array().unwrap() {
            assert!(!m["options"].as_array().unwrap().contains(&json!("ro")));
        }
    }

    #[test]
    fn kernel_versions_parse_from_release_strings() {
        assert_eq!(kernel_version("6.1.0-18-amd64"), (6, 1));
        assert_eq!(kernel_version("4.8"), (4, 8));
        assert_eq!(kernel_version("garbage"), (0, 0));
    }

    #[test]
    fn the_default_apparmor_profile_renders_as_mobys_generate() {
        let full =
            AppArmorProfileData::for_host(APPARMOR_DEFAULT_PROFILE, |_| true, "unconfined\n");
        let text = apparmor_default_profile(&full);
        assert!(text.starts_with(
            "# profile generated by github.com/moby/profiles/apparmor.\nabi <abi/3.0>,\n\n#include <tunables/global>\n\nprofile \"skiff-default\" flags=(attach_disconnected,mediate_deleted) {\n  #include <abstractions/base>\n\n  network,\n"
        ), "{text}");
        assert!(text.contains("  signal (receive) peer=\"unconfined\",\n"));
        assert!(text.contains("  signal (send,receive) peer=\"skiff-default\",\n"));
        assert!(text.contains("  ptrace (trace,tracedby,read,readby) peer=\"skiff-default\",\n}\n"));
        assert!(!text.contains("{{"), "{text}");

        // A host without the abstractions: no abi line, PROC defined inline, and the
        // agent's own profile (its mode suffix cut) as the signalling peer.
        let bare = AppArmorProfileData::for_host("p", |_| false, "skiff-agent (enforce)\n");
        let text = apparmor_default_profile(&bare);
        assert!(text.starts_with(
            "# profile generated by github.com/moby/profiles/apparmor.\n\n\n@{PROC}=/proc/\n\nprofile \"p\" flags=(attach_disconnected,mediate_deleted) {\n  network,\n"
        ), "{text}");
        assert!(text.contains("peer=\"skiff-agent\","));
    }

    #[test]
    fn apparmor_and_selinux_go_into_the_process() {
        for (apparmor, want) in [
            (None, Value::Null),
            (Some(AppArmor::RuntimeDefault), json!("skiff-default")),
            (
                Some(AppArmor::Localhost("k8s-deny-write".into())),
                json!("k8s-deny-write"),
            ),
        ] {
            for privileged in [false, true] {
                let mut config = base();
                let sec = Security {
                    privileged,
                    apparmor: apparmor.clone(),
                    selinux_label: Some("system_u:system_r:container_t:s0:c1,c2".into()),
                    ..Default::default()
                };
                apply(&mut config, &sec, &HOST, None, &[]);
                assert_eq!(config["process"]["apparmorProfile"], want, "{apparmor:?}");
                assert_eq!(
                    config["process"]["selinuxLabel"],
                    "system_u:system_r:container_t:s0:c1,c2"
                );
            }
        }
        let mut config = base();
        apply(&mut config, &Security::default(), &HOST, None, &[]);
        assert!(config["process"].get("selinuxLabel").is_none());
        assert!(config["process"].get("apparmorProfile").is_none());
    }

    #[test]
    fn specs_stored_before_apparmor_still_load() {
        let old = json!({"privileged": false, "capabilities": {"add": [], "drop": []},
            "no_new_privileges": false, "readonly_rootfs": false, "seccomp": "Unconfined",
            "unmasked_proc": false, "supplemental_groups": [], "sysctls": {}});
        let sec: Security = serde_json::from_value(old).expect("old spec");
        assert_eq!(sec.apparmor, None);
        assert_eq!(sec.selinux_label, None);
    }
}
