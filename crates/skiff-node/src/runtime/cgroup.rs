//! What the runtime needs to know about the host's cgroups: v1 or v2, swap accounting,
//! where a container's memory controller lives (for OOM-kill counts), and removing the
//! parent cgroup the runtime created.

use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// Facts about the host's cgroup setup that change the generated config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostCgroups {
    /// Unified hierarchy (cgroup v2) mounted at `/sys/fs/cgroup`.
    pub(crate) v2: bool,
    /// cgroup v1 swap accounting exists (`memory.memsw.*`): set swap = limit so a
    /// container cannot escape its memory limit into swap.
    pub(crate) memsw: bool,
}

impl HostCgroups {
    /// Looks at `/sys/fs/cgroup`.
    pub(crate) fn detect() -> Self {
        let root = Path::new(ROOT);
        Self {
            v2: root.join("cgroup.controllers").exists(),
            memsw: root.join("memory/memory.memsw.limit_in_bytes").exists(),
        }
    }

    /// Directory of the memory controller for a runc `cgroupsPath` (`/parent/id`).
    pub(crate) fn memory_dir(&self, cgroups_path: &str) -> PathBuf {
        let rel = cgroups_path.trim_start_matches('/');
        if self.v2 {
            Path::new(ROOT).join(rel)
        } else {
            Path::new(ROOT).join("memory").join(rel)
        }
    }
}

/// How many processes the kernel OOM killer killed in this memory cgroup; 0 when the
/// cgroup is gone or the kernel does not count (then OOM cannot be told from SIGKILL).
pub(crate) fn oom_kill_count(memory_dir: &Path) -> u64 {
    // v2 has memory.events; v1 (kernel >= 4.13) has an oom_kill line in memory.oom_control.
    for file in ["memory.events", "memory.oom_control"] {
        if let Ok(text) = fs::read_to_string(memory_dir.join(file)) {
            let count = text
                .lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse().ok());
            if let Some(n) = count {
                return n;
            }
        }
    }
    0
}

/// Removes the (empty) parent cgroup from every hierarchy; runc removes the containers'
/// own cgroups on delete but never their parent.
pub(crate) fn remove_parent(parent: &str) {
    let parent = parent.trim_matches('/');
    if parent.is_empty() || parent.contains("..") {
        return;
    }
    let mut dirs = vec![Path::new(ROOT).join(parent)];
    if let Ok(entries) = fs::read_dir(ROOT) {
        for e in entries.flatten() {
            dirs.push(e.path().join(parent));
        }
    }
    for d in dirs {
        if d.is_dir() {
            if let Err(e) = fs::remove_dir(&d) {
                tracing::debug!(dir = %d.display(), error = %e, "cannot remove parent cgroup");
            }
        }
    }
}
