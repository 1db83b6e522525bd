//! Removing everything a node made on the host (decision 0037): what `skiff killall` and
//! `skiff uninstall` do, and what the e2e harness does after each test, in one place.
//!
//! A node records where its host state lives ([`NodeSettings`], `<data-dir>/node.json`:
//! bridge, cgroup parent, pod CIDR, netns prefix) when it starts, so clean-up needs only
//! the data dir. What to remove is decided by pure functions over listings (the mount
//! table, `/proc/locks`, `nft list tables`, the routing table); the rest carries it out,
//! each step tolerating what is already gone.

use crate::network::{Ipv4Cidr, Network, NetworkConfig};
use crate::runtime::{RuncConfig, RuncRuntime, Runtime};
use crate::sandbox::SandboxManager;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The file in the data dir that holds [`NodeSettings`].
pub const SETTINGS_FILE: &str = "node.json";

/// Where a node keeps its state on the host, beyond its data dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSettings {
    /// The pod bridge.
    pub bridge: String,
    /// Parent cgroup of every container.
    pub cgroup_parent: String,
    /// The node's pod CIDR.
    pub pod_cidr: String,
    /// Prefix of the pod network namespaces' names.
    pub netns_prefix: String,
}

impl Default for NodeSettings {
    /// A `skiff server`'s defaults.
    fn default() -> Self {
        Self {
            bridge: "skiff0".into(),
            cgroup_parent: "skiff".into(),
            pod_cidr: "10.244.0.0/24".into(),
            netns_prefix: "skiff-".into(),
        }
    }
}

impl NodeSettings {
    /// Records the settings in the data dir (the agent, at start).
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let raw = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::util::write_atomic(&data_dir.join(SETTINGS_FILE), &raw)
    }

    /// The settings a node recorded in `data_dir`, if it ever ran there.
    pub fn load(data_dir: &Path) -> Option<Self> {
        let raw = std::fs::read(data_dir.join(SETTINGS_FILE)).ok()?;
        serde_json::from_slice(&raw).ok()
    }
}

/// What a clean-up did, and what it could not do.
#[derive(Debug, Default)]
pub struct Report {
    /// One line per thing removed.
    pub removed: Vec<String>,
    /// One line per failure (clean-up goes on after each).
    pub failed: Vec<String>,
}

impl Report {
    fn done(&mut self, what: String) {
        tracing::info!("removed {what}");
        self.removed.push(what);
    }

    fn result<E: std::fmt::Display>(&mut self, what: String, r: Result<(), E>) {
        match r {
            Ok(()) => self.done(what),
            Err(e) => {
                tracing::warn!("cannot remove {what}: {e}");
                self.failed.push(format!("{what}: {e}"));
            }
        }
    }
}

/// Removes the pods of the node whose data dir is `data_dir` (absolute): containers and
/// their shims, pod sandboxes with their network namespaces and veths, every mount under
/// the data dir, and the cgroups under the node's parent. Nothing that belongs to the
/// network namespace the node ran in (bridge, nftables): see [`remove_host_network`]. The
/// node's processes must be stopped first, or they start the pods again.
pub fn remove_pods(data_dir: &Path, settings: &NodeSettings) -> Report {
    let mut report = Report::default();
    let mut cfg = RuncConfig::new(data_dir.join("runtime"), vec!["true".into()]);
    cfg.cgroup_parent = settings.cgroup_parent.clone();
    let shims = shim_pids(&data_dir.join("runtime/containers"));
    if data_dir.join("runtime").is_dir() {
        match RuncRuntime::new(cfg) {
            Ok(rt) => {
                for c in rt.list().unwrap_or_default() {
                    let r = rt.delete(&c.id);
                    report.result(format!("container {}", c.id), r);
                }
            }
            Err(e) => report.failed.push(format!("runtime: {e}")),
        }
    }
    // A shim whose container is gone exits by itself; one that lingers is killed, after
    // checking the pid is still a shim of this data dir.
    for pid in shims {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if is_shim_of(&cmdline, data_dir) {
            // SAFETY: kill(2) on a pid just checked to be one of this node's shims.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            report.done(format!("shim {pid}"));
        }
    }
    let has_pods = ["network", "sandboxes"]
        .iter()
        .any(|d| data_dir.join(d).is_dir());
    if let Some(cidr) = Ipv4Cidr::parse(&settings.pod_cidr)
        .ok()
        .filter(|_| has_pods)
    {
        let net = Network::new(NetworkConfig {
            bridge: settings.bridge.clone(),
            pod_cidr: cidr,
            state_dir: data_dir.join("network"),
            netns_prefix: settings.netns_prefix.clone(),
        });
        let sandboxes = net.and_then(|n| {
            SandboxManager::new(data_dir.join("sandboxes"), n).map_err(|e| match e {
                crate::sandbox::Error::Network(e) => e,
                other => crate::network::Error::InvalidConfig(other.to_string()),
            })
        });
        match sandboxes {
            Ok(sandboxes) => {
                for s in sandboxes.list().unwrap_or_default() {
                    let what = match &s.network {
                        Some(n) => format!("pod sandbox {} (netns {})", s.spec.id, n.netns),
                        None => format!("pod sandbox {}", s.spec.id),
                    };
                    let r = sandboxes.remove(&s.spec.id);
                    report.result(what, r);
                }
            }
            Err(e) => report.failed.push(format!("sandboxes: {e}")),
        }
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for target in mounts_under(&mountinfo, data_dir) {
        let r = unmount(&target);
        report.result(format!("mount {}", target.display()), r);
    }
    for dir in cgroup_dirs(&settings.cgroup_parent) {
        let r = remove_cgroup(&dir);
        report.result(format!("cgroup {}", dir.display()), r);
    }
    report
}

/// Removes what the node made in the network namespace this runs in: the pod bridge, the
/// nftables `tables` (family `ip`) and the routes to other nodes' pods within
/// `pod_network` (the cluster's, e.g. 10.244.0.0/16).
pub fn remove_host_network(settings: &NodeSettings, tables: &[&str], pod_network: &str) -> Report {
    let mut report = Report::default();
    if crate::util::run("ip", &["link", "show", "dev", &settings.bridge]).is_ok() {
        let r = crate::util::run("ip", &["link", "del", &settings.bridge]).map(drop);
        report.result(format!("bridge {}", settings.bridge), r);
    }
    if let Ok(out) = crate::util::run("nft", &["list", "tables"]) {
        for table in tables_to_delete(&String::from_utf8_lossy(&out.stdout), tables) {
            let r = crate::util::run("nft", &["delete", "table", "ip", &table]).map(drop);
            report.result(format!("nftables table ip {table}"), r);
        }
    }
    if let Ok(out) = crate::util::run("ip", &["-4", "route", "show"]) {
        for dst in routes_to_delete(&String::from_utf8_lossy(&out.stdout), pod_network) {
            let r = crate::util::run("ip", &["route", "del", &dst]).map(drop);
            report.result(format!("route {dst}"), r);
        }
    }
    report
}

/// Pids of the processes holding a `flock` on `lock_file` (the server or agent of a data
/// dir), from `/proc/locks`.
pub fn lock_holders(lock_file: &Path) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(lock_file) else {
        return Vec::new();
    };
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    holders_of(&locks, meta.dev(), meta.ino())
}

/// Sends SIGTERM to `pids`, waits up to `grace` for them to let go of `lock_file`, then
/// SIGKILLs those that still hold it. Returns the pids stopped.
pub fn stop_lock_holders(lock_file: &Path, grace: Duration) -> Vec<i32> {
    let pids = lock_holders(lock_file);
    for &pid in &pids {
        // SAFETY: kill(2) on a pid that holds this data dir's lock.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + grace;
    while !lock_holders(lock_file).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in lock_holders(lock_file) {
        tracing::warn!(pid, "did not stop within {grace:?}; killing it");
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lock_holders(lock_file).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    pids
}

/// Whether the entries of a directory make it a skiff data dir, which `skiff uninstall`
/// may delete: a server's or agent's lock, a node's settings, or an older agent's
/// runtime and images side by side.
pub fn is_data_dir(entries: &[&str]) -> bool {
    let has = |name: &str| entries.contains(&name);
    has("skiff.lock") || has(SETTINGS_FILE) || (has("runtime") && has("images"))
}

/// The pids in `/proc/locks` text holding a lock on the file `dev`:`ino`. A line reads
/// `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF` (major:minor in hex); the `->`
/// lines are waiters, not holders.
pub fn holders_of(locks: &str, dev: u64, ino: u64) -> Vec<i32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let mut pids: Vec<i32> = locks
        .lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (pid, file) = (f.get(4)?.parse::<i32>().ok()?, f.get(5)?);
            let mut parts = file.split(':');
            let ma = u32::from_str_radix(parts.next()?, 16).ok()?;
            let mi = u32::from_str_radix(parts.next()?, 16).ok()?;
            let i: u64 = parts.next()?.parse().ok()?;
            (ma == major && mi == minor && i == ino && pid > 0).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Mount points at or under `dir` in `/proc/self/mountinfo` text, deepest first, so a
/// mount is never unmounted before one inside it.
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(crate::runtime::stats::unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by(|a, b| {
        b.components()
            .count()
            .cmp(&a.components().count())
            .then(b.cmp(a))
    });
    out.dedup();
    out
}

/// The tables of `nft list tables` output (`table ip skiff-proxy` lines) that are among
/// `owned`, family `ip` only.
pub fn tables_to_delete(listing: &str, owned: &[&str]) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table ip "))
        .map(str::trim)
        .filter(|t| owned.contains(t))
        .map(String::from)
        .collect()
}

/// Destinations of `ip -4 route show` lines that route a network inside `pod_network`
/// via another node (`10.244.1.0/24 via 192.168.1.2 dev eth0`): what the node's
/// `routes` added. Routes of the bridge itself go with it.
pub fn routes_to_delete(listing: &str, pod_network: &str) -> Vec<String> {
    let Ok(net) = Ipv4Cidr::parse(pod_network) else {
        return Vec::new();
    };
    listing
        .lines()
        .filter(|l| l.contains(" via "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|dst| {
            Ipv4Cidr::parse(dst).is_ok_and(|c| {
                c.prefix >= net.prefix
                    && Ipv4Cidr::parse(&format!("{}/{}", c.addr, net.prefix))
                        .is_ok_and(|outer| outer == net)
            })
        })
        .map(String::from)
        .collect()
}

/// Whether a `/proc/<pid>/cmdline` (NUL-separated) is a container shim of the node whose
/// data dir is `data_dir`: `skiff internal-shim <data-dir>/runtime/containers/<id>`.
pub fn is_shim_of(cmdline: &[u8], data_dir: &Path) -> bool {
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let containers = data_dir.join("runtime/containers");
    let containers = containers.as_os_str().as_encoded_bytes();
    args.contains(&b"internal-shim".as_slice())
        && args.iter().any(|a| {
            a.starts_with(containers) && a.get(containers.len()).is_none_or(|b| *b == b'/')
        })
}

/// Cgroup directories under `parent` in every hierarchy, deepest first.
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let parent = parent.trim_matches('/');
    if parent.is_empty() || parent.split('/').any(|c| c == "..") {
        return Vec::new();
    }
    let root = Path::new("/sys/fs/cgroup");
    let mut tops = vec![root.join(parent)];
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        tops.push(e.path().join(parent));
    }
    let mut out = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
        out.push(dir.to_path_buf());
    }
    for top in tops.into_iter().filter(|t| t.is_dir()) {
        walk(&top, &mut out);
    }
    out.sort();
    out.dedup();
    out.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    out
}

/// Kills what is left in a cgroup, then removes it.
fn remove_cgroup(dir: &Path) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        for &pid in &pids {
            // SAFETY: kill(2) on a process inside one of this node's cgroups.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn unmount(target: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(std::io::Error::other)?;
    // SAFETY: a valid NUL-terminated path; MNT_DETACH so a lingering user cannot block it.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    // EINVAL: no longer a mount point (went with its parent).
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(()),
        _ => Err(e),
    }
}

/// Pids in the `shim.pid` files of the containers under `containers`.
fn shim_pids(containers: &Path) -> Vec<i32> {
    std::fs::read_dir(containers)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("shim.pid")).ok())
        .filter_map(|s| s.trim().parse().ok())
        .filter(|p| *p > 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_under_the_data_dir_deepest_first() {
        let mountinfo = "\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
30 22 0:40 / /d/runtime/containers/a/rootfs rw - overlay overlay rw
31 22 0:41 / /d/pods/u/volumes/cache rw - tmpfs tmpfs rw
32 30 0:42 / /d/runtime/containers/a/rootfs/proc rw - proc proc rw
33 22 0:43 / /dx/other rw - tmpfs tmpfs rw
34 22 0:44 / /d/pods/u/volumes/with\\040space rw - tmpfs tmpfs rw
35 22 0:45 / /e/d rw - tmpfs tmpfs rw";
        let got = mounts_under(mountinfo, Path::new("/d"));
        assert_eq!(
            got,
            [
                "/d/runtime/containers/a/rootfs/proc",
                "/d/runtime/containers/a/rootfs",
                "/d/pods/u/volumes/with space",
                "/d/pods/u/volumes/cache",
            ]
            .map(PathBuf::from)
        );
        assert!(mounts_under(mountinfo, Path::new("/nothing")).is_empty());
    }

    #[test]
    fn lock_holders_come_from_proc_locks() {
        // dev 8:1 (major 8, minor 1), inode 5678.
        let dev = libc::makedev(8, 1);
        let locks = "\
1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF
1: -> FLOCK  ADVISORY  WRITE 999 08:01:5678 0 EOF
2: POSIX  ADVISORY  WRITE 42 08:01:77 0 EOF
3: FLOCK  ADVISORY  WRITE 4321 fd:00:5678 0 EOF
4: OFDLCK ADVISORY  READ  -1 08:01:5678 0 EOF
garbage";
        assert_eq!(holders_of(locks, dev, 5678), [1234]);
        assert_eq!(holders_of(locks, libc::makedev(0xfd, 0), 5678), [4321]);
        assert!(holders_of(locks, dev, 1).is_empty());
    }

    #[test]
    fn only_skiff_data_dirs_may_be_uninstalled() {
        let cases: &[(&[&str], bool)] = &[
            (&["skiff.lock", "kubeconfig", "pki", "store.db"], true),
            (&["node.json", "runtime"], true),
            (&["runtime", "images", "kubeconfig"], true),
            (&["kubeconfig"], false),
            (&["images"], false),
            (&["bin", "etc", "home", "usr"], false),
            (&[], false),
        ];
        for (entries, want) in cases {
            assert_eq!(is_data_dir(entries), *want, "{entries:?}");
        }
    }

    #[test]
    fn only_owned_ip_tables_are_deleted() {
        let listing =
            "table ip skiff-proxy\ntable inet filter\ntable ip nat\ntable ip6 skiff-proxy\n";
        assert_eq!(tables_to_delete(listing, &["skiff-proxy"]), ["skiff-proxy"]);
        assert!(tables_to_delete("table inet filter\n", &["skiff-proxy"]).is_empty());
    }

    #[test]
    fn only_routes_to_other_nodes_pods_are_deleted() {
        let listing = "\
default via 192.168.1.1 dev eth0
10.244.1.0/24 via 192.168.1.2 dev eth0
10.244.0.0/24 dev skiff0 proto kernel scope link src 10.244.0.1
10.96.0.0/12 dev skiff0 scope link
10.245.0.0/24 via 192.168.1.3 dev eth0
192.168.1.0/24 dev eth0 proto kernel scope link";
        assert_eq!(
            routes_to_delete(listing, "10.244.0.0/16"),
            ["10.244.1.0/24"]
        );
        assert!(routes_to_delete(listing, "garbage").is_empty());
    }

    #[test]
    fn shims_are_told_by_their_container_dir() {
        let d = Path::new("/var/lib/skiff");
        let shim = b"/usr/bin/skiff\0internal-shim\0/var/lib/skiff/runtime/containers/abc\0";
        assert!(is_shim_of(shim, d));
        assert!(!is_shim_of(shim, Path::new("/var/lib/skiff2")));
        assert!(!is_shim_of(
            b"/usr/bin/skiff\0internal-shim\0/var/lib/skiff/runtime/containersX/abc\0",
            d
        ));
        assert!(!is_shim_of(
            b"/usr/bin/skiff\0server\0--data-dir\0/var/lib/skiff\0",
            d
        ));
        assert!(!is_shim_of(b"", d));
    }

    #[test]
    fn settings_round_trip_through_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(NodeSettings::load(dir.path()), None);
        let s = NodeSettings {
            cgroup_parent: "skiff-test".into(),
            ..Default::default()
        };
        s.save(dir.path()).unwrap();
        assert_eq!(NodeSettings::load(dir.path()), Some(s));
    }
}
