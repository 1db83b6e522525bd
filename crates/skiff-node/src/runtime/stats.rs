//! Resource usage of containers and of the node, read from cgroups the way cAdvisor reads
//! them for the kubelet: cumulative CPU time and the memory *working set*, which is usage
//! minus `inactive_file` (page cache the kernel can drop at once), floored at zero. The
//! working set is what the kubelet's eviction, `kubectl top` and the HPA all look at.
//!
//! cgroup v1 (separate `cpuacct` and `memory` hierarchies, found in `/proc/self/mountinfo`
//! because their directory names vary: `cpuacct`, `cpu,cpuacct`) and v2 (one unified
//! hierarchy) are both read. Every call does blocking file reads: callers on the async
//! runtime use `spawn_blocking`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One reading of a cgroup (a container's, or the node's root).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time consumed so far, in nanoseconds (all cores).
    pub cpu_ns: u64,
    /// Memory charged to the cgroup, page cache included, in bytes.
    pub memory_usage: u64,
    /// `memory_usage` minus inactive file pages, in bytes (cAdvisor's working set).
    pub working_set: u64,
}

/// Where the host keeps the controllers skiff reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1: the mount points of the `cpuacct` and `memory` hierarchies.
    V1 {
        /// Where `cpuacct` is mounted (`/sys/fs/cgroup/cpu,cpuacct`).
        cpuacct: PathBuf,
        /// Where `memory` is mounted.
        memory: PathBuf,
    },
    /// cgroup v2.
    V2 {
        /// The unified hierarchy's mount point.
        root: PathBuf,
    },
}

/// Reads container and node usage from one host's cgroups.
#[derive(Debug, Clone)]
pub struct CgroupStats {
    layout: Layout,
    /// `/proc`, where the node-wide memory figures of a v2 host come from.
    proc_root: PathBuf,
}

impl CgroupStats {
    /// Looks at the host: v2 when `/sys/fs/cgroup` is the unified hierarchy, else the v1
    /// mount points listed in `/proc/self/mountinfo` (`/sys/fs/cgroup/<name>` when absent).
    pub fn detect() -> Self {
        let root = Path::new("/sys/fs/cgroup");
        let layout = if root.join("cgroup.controllers").exists() {
            Layout::V2 { root: root.into() }
        } else {
            let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            Layout::V1 {
                cpuacct: v1_mount(&mountinfo, "cpuacct").unwrap_or_else(|| root.join("cpuacct")),
                memory: v1_mount(&mountinfo, "memory").unwrap_or_else(|| root.join("memory")),
            }
        };
        Self::new(layout, "/proc")
    }

    /// A reader over explicit paths (tests use fixture directories).
    pub fn new(layout: Layout, proc_root: impl Into<PathBuf>) -> Self {
        CgroupStats {
            layout,
            proc_root: proc_root.into(),
        }
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Usage of the cgroup runc created for `cgroups_path` (`/parent/id`).
    pub fn container(&self, cgroups_path: &str) -> io::Result<Usage> {
        let rel = relative(cgroups_path)?;
        match &self.layout {
            Layout::V1 { cpuacct, memory } => v1_usage(&cpuacct.join(rel), &memory.join(rel)),
            Layout::V2 { root } => {
                let dir = root.join(rel);
                let usage = read_u64(&dir.join("memory.current"))?;
                let stat = fs::read_to_string(dir.join("memory.stat"))?;
                Ok(Usage {
                    cpu_ns: v2_cpu_ns(&dir)?,
                    memory_usage: usage,
                    working_set: working_set(usage, flat_keyed(&stat, "inactive_file")),
                })
            }
        }
    }

    /// Usage of the whole node: the root cgroups, as cAdvisor's `/` container. A v2 root
    /// has no `memory.current`, so memory comes from `/proc/meminfo` there (as runc's
    /// libcontainer does for the root): MemTotal - MemFree, minus Inactive(file).
    pub fn node(&self) -> io::Result<Usage> {
        match &self.layout {
            Layout::V1 { cpuacct, memory } => v1_usage(cpuacct, memory),
            Layout::V2 { root } => {
                let meminfo = fs::read_to_string(self.proc_root.join("meminfo"))?;
                let field = |k| meminfo_bytes(&meminfo, k).unwrap_or(0);
                let usage = field("MemTotal").saturating_sub(field("MemFree"));
                Ok(Usage {
                    cpu_ns: v2_cpu_ns(root)?,
                    memory_usage: usage,
                    working_set: working_set(usage, meminfo_bytes(&meminfo, "Inactive(file)")),
                })
            }
        }
    }
}

/// A runc `cgroupsPath` as a path relative to a hierarchy's mount point; `..` and empty
/// components are refused so a label cannot point the reader elsewhere.
fn relative(cgroups_path: &str) -> io::Result<&Path> {
    let rel = cgroups_path.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c.is_empty() || c == "..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad cgroups path {cgroups_path:?}"),
        ));
    }
    Ok(Path::new(rel))
}

fn v1_usage(cpuacct: &Path, memory: &Path) -> io::Result<Usage> {
    let usage = read_u64(&memory.join("memory.usage_in_bytes"))?;
    let stat = fs::read_to_string(memory.join("memory.stat"))?;
    Ok(Usage {
        cpu_ns: read_u64(&cpuacct.join("cpuacct.usage"))?,
        memory_usage: usage,
        // cAdvisor reads the hierarchical total on v1 (the cgroup and its children).
        working_set: working_set(usage, flat_keyed(&stat, "total_inactive_file")),
    })
}

fn v2_cpu_ns(dir: &Path) -> io::Result<u64> {
    let stat = fs::read_to_string(dir.join("cpu.stat"))?;
    flat_keyed(&stat, "usage_usec")
        .and_then(|us| us.checked_mul(1000))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "cpu.stat has no usage_usec"))
}

/// cAdvisor's working set: usage minus inactive file pages, never below zero.
pub fn working_set(usage: u64, inactive_file: Option<u64>) -> u64 {
    usage.saturating_sub(inactive_file.unwrap_or(0))
}

/// One value of a flat-keyed cgroup file (`memory.stat`, `cpu.stat`: `key value` lines).
pub fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A `/proc/meminfo` field in bytes (the file counts kB).
pub fn meminfo_bytes(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k != key {
            return None;
        }
        let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().ok()?;
        kb.checked_mul(1024)
    })
}

/// The mount point of the v1 hierarchy carrying `controller`, from mountinfo lines such as
/// `35 25 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct`.
pub fn v1_mount(mountinfo: &str, controller: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let mut fs = fs.split(' ');
        if fs.next()? != "cgroup" {
            return None;
        }
        let options = fs.nth(1)?;
        options.split(',').any(|o| o == controller).then_some(())?;
        mount.split(' ').nth(4).map(|p| PathBuf::from(unescape(p)))
    })
}

/// mountinfo escapes spaces, tabs, newlines and backslashes as octal (`\040`).
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn read_u64(path: &Path) -> io::Result<u64> {
    let text = fs::read_to_string(path)?;
    text.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        fs::create_dir_all(dir).unwrap();
        for (name, text) in files {
            fs::write(dir.join(name), text).unwrap();
        }
    }

    /// A v1 container cgroup: cAdvisor subtracts the hierarchical `total_inactive_file`,
    /// not the cgroup's own `inactive_file`.
    #[test]
    fn v1_container_working_set_is_usage_minus_total_inactive_file() {
        let tmp = tempfile::tempdir().unwrap();
        let cpuacct = tmp.path().join("cpu,cpuacct");
        let memory = tmp.path().join("memory");
        write(
            &cpuacct.join("skiff/c1"),
            &[("cpuacct.usage", "2500000000\n")],
        );
        write(
            &memory.join("skiff/c1"),
            &[
                ("memory.usage_in_bytes", "10485760\n"),
                (
                    "memory.stat",
                    "cache 4096\ninactive_file 1\nrss 8192\ntotal_inactive_file 2097152\ntotal_active_file 4096\n",
                ),
            ],
        );
        let stats = CgroupStats::new(Layout::V1 { cpuacct, memory }, tmp.path());
        assert_eq!(
            stats.container("/skiff/c1").unwrap(),
            Usage {
                cpu_ns: 2_500_000_000,
                memory_usage: 10_485_760,
                working_set: 8_388_608,
            }
        );
    }

    #[test]
    fn v2_container_reads_cpu_stat_and_memory_current() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            &tmp.path().join("skiff/c1"),
            &[
                (
                    "cpu.stat",
                    "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
                ),
                ("memory.current", "6291456\n"),
                (
                    "memory.stat",
                    "anon 4194304\nfile 2097152\nactive_file 1048576\ninactive_file 1048576\n",
                ),
            ],
        );
        let stats = CgroupStats::new(
            Layout::V2 {
                root: tmp.path().into(),
            },
            tmp.path(),
        );
        assert_eq!(
            stats.container("skiff/c1").unwrap(),
            Usage {
                cpu_ns: 1_500_000_000,
                memory_usage: 6_291_456,
                working_set: 5_242_880,
            }
        );
    }

    #[test]
    fn node_totals_come_from_the_root_cgroups_or_meminfo_on_v2() {
        let tmp = tempfile::tempdir().unwrap();
        let cpuacct = tmp.path().join("cpuacct");
        let memory = tmp.path().join("memory");
        write(&cpuacct, &[("cpuacct.usage", "51565414370752\n")]);
        write(
            &memory,
            &[
                ("memory.usage_in_bytes", "8000000000\n"),
                ("memory.stat", "total_inactive_file 2892472320\n"),
            ],
        );
        let v1 = CgroupStats::new(Layout::V1 { cpuacct, memory }, tmp.path());
        assert_eq!(
            v1.node().unwrap(),
            Usage {
                cpu_ns: 51_565_414_370_752,
                memory_usage: 8_000_000_000,
                working_set: 5_107_527_680,
            }
        );

        let root = tmp.path().join("unified");
        write(&root, &[("cpu.stat", "usage_usec 42\n")]);
        let proc_root = tmp.path().join("proc");
        write(
            &proc_root,
            &[(
                "meminfo",
                "MemTotal:        4000 kB\nMemFree:         1000 kB\nInactive(file):   500 kB\n",
            )],
        );
        let v2 = CgroupStats::new(Layout::V2 { root }, proc_root);
        assert_eq!(
            v2.node().unwrap(),
            Usage {
                cpu_ns: 42_000,
                memory_usage: 3000 * 1024,
                working_set: 2500 * 1024,
            }
        );
    }

    #[test]
    fn working_set_never_goes_below_zero() {
        assert_eq!(working_set(100, Some(200)), 0);
        assert_eq!(working_set(100, None), 100);
    }

    #[test]
    fn missing_or_malformed_files_are_errors_not_zeros() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        write(&root.join("skiff/c1"), &[("cpu.stat", "user_usec 1\n")]);
        let stats = CgroupStats::new(Layout::V2 { root }, tmp.path());
        assert!(stats.container("/skiff/c1").is_err());
        assert!(stats.container("/skiff/gone").is_err());
        for bad in ["", "/", "/skiff/../etc", "skiff//c1"] {
            assert!(stats.container(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn v1_mount_points_are_found_by_controller_option() {
        let mountinfo = "\
25 1 0:23 / /sys rw,nosuid - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
33 30 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/memory rw,relatime shared:15 - cgroup cgroup rw,memory
37 30 0:33 / /sys/fs/cgroup/odd\\040name rw - cgroup cgroup rw,pids
";
        assert_eq!(
            v1_mount(mountinfo, "cpuacct"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(
            v1_mount(mountinfo, "memory"),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            v1_mount(mountinfo, "pids"),
            Some(PathBuf::from("/sys/fs/cgroup/odd name"))
        );
        // "cpu" is an option of the cpu,cpuacct mount; "cpuset" is not "cpu".
        assert_eq!(v1_mount(mountinfo, "cpuset"), None);
    }

    #[test]
    fn flat_keyed_and_meminfo_parse_exact_keys() {
        let stat = "inactive_file 10\ntotal_inactive_file 20\n";
        assert_eq!(flat_keyed(stat, "inactive_file"), Some(10));
        assert_eq!(flat_keyed(stat, "total_inactive_file"), Some(20));
        assert_eq!(flat_keyed(stat, "active_file"), None);
        let meminfo = "MemTotal:       16384 kB\nInactive(file):  2 kB\n";
        assert_eq!(meminfo_bytes(meminfo, "MemTotal"), Some(16384 * 1024));
        assert_eq!(meminfo_bytes(meminfo, "Inactive(file)"), Some(2048));
        assert_eq!(meminfo_bytes(meminfo, "MemFree"), None);
    }
}
