//! Builds the OCI runtime-spec `config.json` for a container: a pure function of the
//! [`ContainerSpec`] and host facts, so it is unit-tested without runc.

use super::cgroup::HostCgroups;
use super::process::Identity;
use super::security::{self, HostSecurity};
use super::ContainerSpec;
use serde_json::{json, Value};
use std::path::Path;

/// Highest `RLIMIT_NOFILE` given to containers (also capped by the agent's own hard limit,
/// since runc cannot raise a limit above its own).
pub(crate) const MAX_NOFILE: u64 = 20_000;

/// CFS period used with quotas (the kubelet's default).
const CPU_PERIOD: u64 = 100_000;

/// Host facts the config depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostFacts {
    pub(crate) cgroups: HostCgroups,
    /// The agent's hard `RLIMIT_NOFILE`.
    pub(crate) nofile_hard: u64,
    /// Capabilities and kernel version, for the security fields.
    pub(crate) security: HostSecurity,
}

impl HostFacts {
    pub(crate) fn detect() -> Self {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        Self {
            cgroups: HostCgroups::detect(),
            nofile_hard: if rc == 0 { lim.rlim_max } else { 1024 },
            security: HostSecurity::detect(),
        }
    }
}

/// The host's device nodes under `/dev` as OCI `linux.devices`, for privileged containers
/// (containerd's `WithHostDevices`): character and block devices, not those of the
/// pseudo-filesystems runc mounts itself (`/dev/pts`, `/dev/shm`, `/dev/mqueue`).
pub(crate) fn host_devices() -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    fn walk(dir: &Path, out: &mut Vec<Value>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                if !matches!(
                    path.to_str(),
                    Some("/dev/pts" | "/dev/shm" | "/dev/mqueue" | "/dev/fd")
                ) {
                    walk(&path, out);
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            if path == Path::new("/dev/console") {
                continue;
            }
            let rdev = meta.rdev();
            out.push(json!({
                "path": path,
                "type": kind,
                "major": libc::major(rdev),
                "minor": libc::minor(rdev),
                "fileMode": meta.mode() & 0o7777,
                "uid": meta.uid(),
                "gid": meta.gid(),
            }));
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out);
    out
}

/// CFS shares for a CPU request (the kubelet's `MilliCPUToShares`).
pub(crate) fn cpu_shares(milli: u64) -> u64 {
    (milli * 1024 / 1000).max(2)
}

/// CFS quota for a CPU limit (the kubelet's `MilliCPUToQuota`, 1ms minimum).
pub(crate) fn cpu_quota(milli: u64) -> u64 {
    (milli * CPU_PERIOD / 1000).max(1000)
}

fn bind(source: &Path, dest: &str, read_only: bool) -> Value {
    let mut options = vec!["rbind", "rprivate"];
    if read_only {
        options.push("ro");
    }
    json!({"destination": dest, "type": "bind", "source": source, "options": options})
}

/// What the security fields need from outside the spec: the parsed Localhost seccomp
/// profile if the container names one, and the host's devices for a privileged one.
#[derive(Debug, Clone, Default)]
pub(crate) struct SecurityInputs {
    pub(crate) localhost_profile: Option<Value>,
    pub(crate) devices: Vec<Value>,
}

pub(crate) fn oci_config(
    spec: &ContainerSpec,
    rootfs: &Path,
    identity: &Identity,
    cgroups_path: &str,
    host: &HostFacts,
    inputs: &SecurityInputs,
) -> Value {
    let nofile = MAX_NOFILE.min(host.nofile_hard);
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    let sb = &spec.sandbox;
    for (file, dest) in [
        (&sb.etc_hosts, "/etc/hosts"),
        (&sb.resolv_conf, "/etc/resolv.conf"),
        (&sb.etc_hostname, "/etc/hostname"),
    ] {
        if let Some(f) = file {
            mounts.push(bind(f, dest, false));
        }
    }
    for m in &spec.mounts {
        mounts.push(bind(&m.host_path, &m.container_path, m.read_only));
    }

    let pid = match &spec.pid_namespace {
        Some(path) => json!({"type": "pid", "path": path}),
        None => json!({"type": "pid"}),
    };
    let mut namespaces = vec![
        pid,
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if let Some(netns) = &sb.netns_path {
        namespaces.push(json!({"type": "network", "path": netns}));
    }

    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    let r = &spec.resources;
    if let Some(limit) = r.memory_limit {
        let mut memory = json!({"limit": limit});
        if host.cgroups.v2 || host.cgroups.memsw {
            // memory+swap = memory: no swap, so exceeding the limit OOM-kills.
            memory["swap"] = json!(limit);
        }
        resources["memory"] = memory;
    }
    let mut cpu = serde_json::Map::new();
    if let Some(req) = r.cpu_request_millis.or(r.cpu_limit_millis) {
        cpu.insert("shares".into(), json!(cpu_shares(req)));
    }
    if let Some(limit) = r.cpu_limit_millis {
        cpu.insert("quota".into(), json!(cpu_quota(limit)));
        cpu.insert("period".into(), json!(CPU_PERIOD));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }

    let mut gids = identity.additional_gids.clone();
    for g in &spec.security.supplemental_groups {
        if !gids.contains(g) {
            gids.push(*g);
        }
    }
    let mut config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": spec.stdio.tty,
            "user": {
                "uid": identity.uid,
                "gid": identity.gid,
                "additionalGids": gids,
            },
            "args": spec.process.args,
            "env": spec.process.env,
            "cwd": spec.process.cwd,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": sb.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": cgroups_path,
            "resources": resources,
        },
    });
    security::apply(
        &mut config,
        &spec.security,
        &host.security,
        inputs.localhost_profile.clone(),
        &inputs.devices,
    );
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Rotation;
    use crate::runtime::{Mount, ProcessSpec, Resources, SandboxRef};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            id: "c1".into(),
            image: "busybox".into(),
            rootfs_layers: vec![],
            process: ProcessSpec {
                args: vec!["sh".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/".into(),
                user: None,
            },
            sandbox: SandboxRef {
                id: "pod".into(),
                netns_path: Some("/run/netns/p".into()),
                hostname: "web-0".into(),
                etc_hosts: Some("/s/hosts".into()),
                resolv_conf: None,
                etc_hostname: None,
            },
            mounts: vec![Mount {
                host_path: "/data".into(),
                container_path: "/data".into(),
                read_only: true,
            }],
            resources: Resources {
                memory_limit: Some(64 << 20),
                cpu_limit_millis: Some(500),
                cpu_request_millis: Some(250),
            },
            log_path: "/l".into(),
            log_rotation: Rotation::default(),
            labels: Default::default(),
            security: Default::default(),
            stdio: Default::default(),
            pid_namespace: None,
        }
    }

    fn host(nofile_hard: u64) -> HostFacts {
        HostFacts {
            cgroups: HostCgroups {
                v2: false,
                memsw: true,
            },
            nofile_hard,
            security: HostSecurity {
                available: (1 << 41) - 1,
                kernel: (6, 1),
            },
        }
    }

    /// An ephemeral container joins its target's PID namespace; a `tty: true` container
    /// gets its terminal from runc.
    #[test]
    fn config_joins_a_target_pid_namespace_and_asks_for_a_terminal() {
        let mut s = spec();
        s.pid_namespace = Some("/proc/42/ns/pid".into());
        s.stdio.tty = true;
        let c = oci_config(
            &s,
            Path::new("/r"),
            &Identity::default(),
            "/skiff/c1",
            &host(1 << 20),
            &SecurityInputs::default(),
        );
        let ns = c["linux"]["namespaces"].as_array().unwrap();
        let pid = ns.iter().find(|n| n["type"] == "pid").unwrap();
        assert_eq!(pid["path"], "/proc/42/ns/pid");
        assert_eq!(c["process"]["terminal"], true);
        let plain = oci_config(
            &spec(),
            Path::new("/r"),
            &Identity::default(),
            "/skiff/c1",
            &host(1 << 20),
            &SecurityInputs::default(),
        );
        assert_eq!(plain["process"]["terminal"], false);
        let ns = plain["linux"]["namespaces"].as_array().unwrap();
        assert!(ns
            .iter()
            .any(|n| n["type"] == "pid" && n.get("path").is_none()));
    }

    #[test]
    fn config_joins_the_pod_netns_and_owns_the_other_namespaces() {
        let c = oci_config(
            &spec(),
            Path::new("/r"),
            &Identity::default(),
            "/skiff/c1",
            &host(1 << 20),
            &SecurityInputs::default(),
        );
        let ns = c["linux"]["namespaces"].as_array().unwrap();
        let net = ns.iter().find(|n| n["type"] == "network").unwrap();
        assert_eq!(net["path"], "/run/netns/p");
        for t in ["pid", "ipc", "uts", "mount"] {
            assert!(ns.iter().any(|n| n["type"] == t && n.get("path").is_none()));
        }
        assert_eq!(c["hostname"], "web-0");
        // Upstream's default: no_new_privs only for allowPrivilegeEscalation: false.
        assert_eq!(c["process"]["noNewPrivileges"], false);
        assert_eq!(
            c["process"]["capabilities"]["effective"],
            json!(security::DEFAULT_CAPABILITIES)
        );
    }

    #[test]
    fn supplemental_groups_join_the_images_groups_once() {
        let mut s = spec();
        s.security.supplemental_groups = vec![2000, 10, 2000];
        let identity = Identity {
            uid: 1000,
            gid: 3000,
            additional_gids: vec![10],
        };
        let c = oci_config(
            &s,
            Path::new("/r"),
            &identity,
            "/p",
            &host(1 << 20),
            &SecurityInputs::default(),
        );
        assert_eq!(
            c["process"]["user"],
            json!({"uid": 1000, "gid": 3000, "additionalGids": [10, 2000]})
        );
    }

    #[test]
    fn limits_become_cgroup_resources_without_swap() {
        let c = oci_config(
            &spec(),
            Path::new("/r"),
            &Identity::default(),
            "/skiff/c1",
            &host(1 << 20),
            &SecurityInputs::default(),
        );
        let r = &c["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["memory"]["swap"], 64 << 20);
        assert_eq!(r["cpu"]["shares"], 256);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(c["linux"]["cgroupsPath"], "/skiff/c1");
    }

    #[test]
    fn nofile_never_exceeds_20000_or_the_hosts_hard_limit() {
        let c = oci_config(
            &spec(),
            Path::new("/r"),
            &Identity::default(),
            "/p",
            &host(1 << 20),
            &SecurityInputs::default(),
        );
        assert_eq!(c["process"]["rlimits"][0]["hard"], 20_000);
        let c = oci_config(
            &spec(),
            Path::new("/r"),
            &Identity::default(),
            "/p",
            &host(4096),
            &SecurityInputs::default(),
        );
        assert_eq!(c["process"]["rlimits"][0]["soft"], 4096);
    }

    #[test]
    fn volumes_and_pod_files_are_bind_mounted() {
        let c = oci_config(
            &spec(),
            Path::new("/r"),
            &Identity::default(),
            "/p",
            &host(1 << 20),
            &SecurityInputs::default(),
        );
        let mounts = c["mounts"].as_array().unwrap();
        let hosts = mounts
            .iter()
            .find(|m| m["destination"] == "/etc/hosts")
            .unwrap();
        assert_eq!(hosts["source"], "/s/hosts");
        let data = mounts.iter().find(|m| m["destination"] == "/data").unwrap();
        assert!(data["options"].as_array().unwrap().contains(&json!("ro")));
        assert!(!mounts
            .iter()
            .any(|m| m["destination"] == "/etc/resolv.conf"));
    }
}
