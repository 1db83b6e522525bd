//! [`Runtime`] on runc: an overlayfs rootfs per container, a generated `config.json`, and a
//! shim per container that owns its stdio and exit status.
//!
//! State lives under `state_dir` so a restarted agent finds everything again:
//! `runc/` is runc's `--root`; `containers/<id>/` holds `spec.json` (the [`ContainerSpec`]),
//! `config.json`, `rootfs/` (the overlay mount), `upper/` and `work/`, `shim.json`,
//! `shim.pid`, `init.pid`, `started_at` and, once the container exited, `exit.json`.

use super::cgroup;
use super::process::resolve_user;
use super::security::Seccomp;
use super::shim::{ExitRecord, ShimConfig};
use super::spec::{host_devices, oci_config, HostFacts, SecurityInputs};
use super::{
    io_err, validate_id, ContainerSpec, ContainerState, ContainerStatus, Error, ExecOutput,
    ExitInfo, Result, Runtime, EXEC_OUTPUT_LIMIT,
};
use serde::Deserialize;
use std::ffi::{CString, OsString};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How to run containers on this node.
#[derive(Debug, Clone)]
pub struct RuncConfig {
    /// Root of the runtime's state (e.g. `<data-dir>/runtime`).
    pub state_dir: PathBuf,
    /// The runc binary (`runc` from `$PATH` by default).
    pub runc: PathBuf,
    /// Command that runs the shim; the container dir is appended. The `skiff` binary passes
    /// itself with a hidden subcommand; tests pass this crate's `skiff-node-shim`.
    pub shim: Vec<OsString>,
    /// cgroup under which every container's cgroup is created (`/<parent>/<id>`).
    pub cgroup_parent: String,
}

impl RuncConfig {
    /// Defaults for a data dir and a shim command.
    pub fn new(state_dir: impl Into<PathBuf>, shim: Vec<OsString>) -> Self {
        Self {
            state_dir: state_dir.into(),
            runc: "runc".into(),
            shim,
            cgroup_parent: "skiff".into(),
        }
    }
}

/// Containers via runc; see the module docs for the on-disk layout.
#[derive(Debug)]
pub struct RuncRuntime {
    cfg: RuncConfig,
    host: HostFacts,
    /// Shims' exits, pushed to whoever subscribes (the pod workers).
    exits: super::exits::ExitWatcher,
}

/// The fields of `runc state` / `runc list` output that matter here.
#[derive(Debug, Deserialize)]
struct RuncState {
    id: String,
    #[serde(default)]
    pid: u32,
    status: String,
}

impl RuncRuntime {
    /// Opens the runtime over `cfg.state_dir`, adopting whatever containers it holds.
    pub fn new(cfg: RuncConfig) -> Result<Self> {
        if cfg.shim.is_empty() {
            return Err(Error::InvalidSpec("no shim command configured".into()));
        }
        // overlayfs option syntax gives ':' and ',' meaning; keep them out of our paths.
        let s = cfg.state_dir.to_string_lossy();
        if s.contains(':') || s.contains(',') || !cfg.state_dir.is_absolute() {
            return Err(Error::InvalidSpec(format!(
                "state dir must be absolute without ':' or ',': {s}"
            )));
        }
        for d in [cfg.state_dir.join("runc"), cfg.state_dir.join("containers")] {
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let exits = super::exits::ExitWatcher::start().map_err(|e| Error::Runc(e.to_string()))?;
        Ok(Self {
            cfg,
            host: HostFacts::detect(),
            exits,
        })
    }

    /// Removes the parent cgroup once no container uses it (agent shutdown, tests).
    pub fn remove_cgroup_parent(&self) {
        cgroup::remove_parent(&self.cfg.cgroup_parent);
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.cfg.state_dir.join("containers").join(id)
    }

    fn cgroups_path(&self, id: &str) -> String {
        super::cgroups_path(&self.cfg.cgroup_parent, id)
    }

    fn runc(&self, args: &[&str]) -> Result<std::process::Output> {
        let root = self.cfg.state_dir.join("runc");
        let out = Command::new(&self.cfg.runc)
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Runc(format!("spawning {}: {e}", self.cfg.runc.display())))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(Error::Runc(format!(
                "{}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    fn runc_state(&self, id: &str) -> Option<RuncState> {
        let out = self.runc(&["state", id]).ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    fn prepare(&self, spec: &ContainerSpec, dir: &Path) -> Result<()> {
        for sub in ["rootfs", "upper", "work"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let raw = serde_json::to_vec_pretty(spec).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        write(&dir.join("spec.json"), &raw)?;
        let rootfs = dir.join("rootfs");
        mount_overlay(
            &spec.rootfs_layers,
            &dir.join("upper"),
            &dir.join("work"),
            &rootfs,
        )?;
        let identity = resolve_user(&rootfs, spec.process.user.as_deref())?;
        let cgroups_path = self.cgroups_path(&spec.id);
        let inputs = SecurityInputs {
            localhost_profile: match &spec.security.seccomp {
                Seccomp::Localhost(path) if !spec.security.privileged => {
                    Some(localhost_profile(path)?)
                }
                _ => None,
            },
            devices: if spec.security.privileged {
                host_devices()
            } else {
                Vec::new()
            },
        };
        let config = oci_config(spec, &rootfs, &identity, &cgroups_path, &self.host, &inputs);
        write(
            &dir.join("config.json"),
            &serde_json::to_vec_pretty(&config).map_err(|e| Error::InvalidSpec(e.to_string()))?,
        )?;
        let shim = ShimConfig {
            runc: self.cfg.runc.clone(),
            runc_root: self.cfg.state_dir.join("runc"),
            id: spec.id.clone(),
            bundle: dir.to_path_buf(),
            pid_file: dir.join("init.pid"),
            runc_log: dir.join("runc.log"),
            log_path: spec.log_path.clone(),
            rotation: spec.log_rotation,
            exit_file: dir.join("exit.json"),
            memory_cgroup: self.host.cgroups.memory_dir(&cgroups_path),
            stdio: spec.stdio,
        };
        write(
            &dir.join("shim.json"),
            &serde_json::to_vec_pretty(&shim).map_err(|e| Error::InvalidSpec(e.to_string()))?,
        )?;
        self.spawn_shim(dir)
    }

    fn spawn_shim(&self, dir: &Path) -> Result<()> {
        let log = dir.join("shim.log");
        let stderr = fs::File::create(&log).map_err(io_err(&log))?;
        let mut child = Command::new(&self.cfg.shim[0])
            .args(&self.cfg.shim[1..])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| Error::Runc(format!("spawning shim {:?}: {e}", self.cfg.shim[0])))?;
        write(&dir.join("shim.pid"), child.id().to_string().as_bytes())?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        // The shim lives on after this; the exit watcher reports its end (the container's
        // exit recorded) and reaps it, so it leaves no zombie.
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.exits.watch(&id, child.id());
        drop(child);
        match line.trim().strip_prefix("ok ") {
            Some(_) => Ok(()),
            None => {
                let why = line.trim().trim_start_matches("error: ");
                let why = if why.is_empty() {
                    fs::read_to_string(&log).unwrap_or_default()
                } else {
                    why.to_string()
                };
                Err(Error::Runc(why.trim().to_string()))
            }
        }
    }

    /// Status from the files in the container dir and runc's view (fetched only when the
    /// exit record does not settle it; `list` passes what one `runc list` returned).
    fn status_of(
        &self,
        id: &str,
        runc_state: impl FnOnce() -> Option<RuncState>,
    ) -> Result<ContainerStatus> {
        let spec = self.read_spec(id);
        let has_dir = self.dir(id).exists();
        let mut status = ContainerStatus {
            id: id.to_string(),
            state: ContainerState::Unknown,
            pid: None,
            started_at: fs::read_to_string(self.dir(id).join("started_at")).ok(),
            spec,
        };
        if let Some(exit) = self.read_exit(id) {
            status.state = ContainerState::Exited(exit);
            return Ok(status);
        }
        match runc_state() {
            Some(s) => match s.status.as_str() {
                "created" => status.state = ContainerState::Created,
                "running" | "paused" | "pausing" => {
                    status.state = ContainerState::Running;
                    status.pid = Some(s.pid);
                    self.watch_exit(id);
                }
                // Stopped but no exit record: the shim is still writing it, or died.
                _ if self.shim_alive(id) => status.state = ContainerState::Running,
                // It may have written the record and exited since the first look.
                _ => match self.read_exit(id) {
                    Some(exit) => status.state = ContainerState::Exited(exit),
                    None => status.state = ContainerState::Unknown,
                },
            },
            None if has_dir => status.state = ContainerState::Unknown,
            None => return Err(Error::NotFound(id.to_string())),
        }
        Ok(status)
    }

    fn read_spec(&self, id: &str) -> Option<ContainerSpec> {
        let raw = fs::read(self.dir(id).join("spec.json")).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    fn read_exit(&self, id: &str) -> Option<ExitInfo> {
        let raw = fs::read(self.dir(id).join("exit.json")).ok()?;
        let rec: ExitRecord = serde_json::from_slice(&raw).ok()?;
        let reason = if rec.oom_killed {
            "OOMKilled"
        } else if rec.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        Some(ExitInfo {
            exit_code: rec.exit_code,
            reason: reason.to_string(),
            finished_at: rec.finished_at,
        })
    }

    /// Watches a running container's shim for its exit, if not yet (a container adopted
    /// after an agent restart is first seen here).
    fn watch_exit(&self, id: &str) {
        if self.exits.is_watched(id) {
            return;
        }
        let pid = fs::read_to_string(self.dir(id).join("shim.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if let Some(pid) = pid {
            self.exits.watch(id, pid);
        }
    }

    fn shim_alive(&self, id: &str) -> bool {
        pid_alive(&self.dir(id).join("shim.pid"))
    }

    /// The container's own OCI process with `argv` swapped in, so an exec runs as the
    /// container does (user, env, cwd, capabilities, rlimits), as containerd builds it.
    fn exec_process(&self, id: &str, argv: &[String]) -> Result<serde_json::Value> {
        let path = self.dir(id).join("config.json");
        let raw = fs::read(&path).map_err(io_err(&path))?;
        let config: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        let mut process = config["process"].clone();
        if !process.is_object() {
            return Err(Error::InvalidSpec(format!(
                "{}: no process",
                path.display()
            )));
        }
        process["args"] = serde_json::json!(argv);
        process["terminal"] = serde_json::json!(false);
        Ok(process)
    }

    fn wait_shim_gone(&self, id: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.shim_alive(id) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Runtime for RuncRuntime {
    fn create(&self, spec: &ContainerSpec) -> Result<()> {
        validate_id(&spec.id)?;
        if spec.rootfs_layers.is_empty() {
            return Err(Error::InvalidSpec("no image layers".into()));
        }
        if let Some(missing) = spec.rootfs_layers.iter().find(|l| !l.is_dir()) {
            return Err(Error::InvalidSpec(format!(
                "image layer missing: {}",
                missing.display()
            )));
        }
        let dir = self.dir(&spec.id);
        // create_dir (not _all) is the atomic claim on the id among concurrent creates.
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(spec.id.clone()))
            }
            Err(e) => return Err(io_err(&dir)(e)),
        }
        tracing::info!(container = %spec.id, image = %spec.image, "creating container");
        if let Err(e) = self.prepare(spec, &dir) {
            tracing::warn!(container = %spec.id, error = %e, "create failed, cleaning up");
            let _ = self.delete(&spec.id);
            return Err(e);
        }
        Ok(())
    }

    fn start(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        tracing::info!(container = id, "starting container");
        self.runc(&["start", id])?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        write(&self.dir(id).join("started_at"), now.as_bytes())
    }

    fn kill(&self, id: &str, signal: i32) -> Result<()> {
        validate_id(id)?;
        match self.runc(&["kill", id, &signal.to_string()]) {
            Ok(_) => Ok(()),
            Err(e) => match self.state(id)?.state {
                // Already gone: killing it again is a no-op.
                ContainerState::Exited(_) | ContainerState::Unknown => Ok(()),
                _ => Err(e),
            },
        }
    }

    fn state(&self, id: &str) -> Result<ContainerStatus> {
        validate_id(id)?;
        self.status_of(id, || self.runc_state(id))
    }

    fn delete(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let dir = self.dir(id);
        if let Err(e) = self.runc(&["delete", "--force", id]) {
            if self.runc_state(id).is_some() {
                return Err(e);
            }
        }
        // The shim exits once the container's pipes close; let it finish its records.
        self.wait_shim_gone(id, Duration::from_secs(10));
        let rootfs = dir.join("rootfs");
        unmount(&rootfs)?;
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        tracing::info!(container = id, "container deleted");
        Ok(())
    }

    fn exec(&self, id: &str, argv: &[String], timeout: Option<Duration>) -> Result<ExecOutput> {
        validate_id(id)?;
        if argv.is_empty() {
            return Err(Error::InvalidSpec("exec: empty command".into()));
        }
        if self.state(id)?.state != ContainerState::Running {
            return Err(Error::NotRunning(id.to_string()));
        }
        let dir = self.dir(id);
        let tag = crate::util::unique_suffix();
        let files = ExecFiles {
            process: dir.join(format!("exec-{tag}.json")),
            pid: dir.join(format!("exec-{tag}.pid")),
            log: dir.join(format!("exec-{tag}.log")),
        };
        let process = self.exec_process(id, argv)?;
        write(
            &files.process,
            &serde_json::to_vec(&process).map_err(|e| Error::InvalidSpec(e.to_string()))?,
        )?;
        let started = Instant::now();
        let mut child = Command::new(&self.cfg.runc)
            .arg("--root")
            .arg(self.cfg.state_dir.join("runc"))
            .arg("--log")
            .arg(&files.log)
            .arg("--log-format")
            .arg("json")
            .arg("exec")
            .arg("--process")
            .arg(&files.process)
            .arg("--pid-file")
            .arg(&files.pid)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Runc(format!("spawning {}: {e}", self.cfg.runc.display())))?;
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(s) = child.stdout.take() {
            read_limited(s, 1, tx.clone());
        }
        if let Some(s) = child.stderr.take() {
            read_limited(s, 2, tx);
        }
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) => {}
                Err(e) => {
                    files.remove();
                    return Err(Error::Runc(format!("waiting for runc exec: {e}")));
                }
            }
            if timeout.is_some_and(|t| started.elapsed() >= t) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let Some(status) = status else {
            // SIGKILL the command itself: runc forwards signals to it, but not SIGKILL.
            if let Some(pid) = read_pid(&files.pid) {
                // SAFETY: kill(2) with a pid runc just wrote; at worst it is already gone.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = child.kill();
            let _ = child.wait();
            files.remove();
            let command = argv.join(" ");
            tracing::info!(container = id, %command, ?timeout, "exec timed out, killed");
            return Err(Error::ExecTimeout {
                command,
                timeout: timeout.unwrap_or_default(),
            });
        };
        // A background child of the command may hold the pipes open; do not wait for it.
        let mut out = ExecOutput::default();
        let deadline = Instant::now() + Duration::from_millis(500);
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((1, data)) => out.stdout = data,
                Ok((_, data)) => out.stderr = data,
                Err(_) => break,
            }
        }
        out.exit_code = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => code,
            (None, Some(sig)) => 128 + sig,
            (None, None) => 255,
        };
        // runc's own failures (no such binary, container gone) are errors, not exit codes:
        // the kubelet reports them as "probe errored", not as the command failing.
        let runc_error = (out.exit_code != 0)
            .then(|| runc_log_error(&files.log))
            .flatten();
        files.remove();
        match runc_error {
            Some(msg) => Err(Error::Runc(format!("exec {}: {msg}", argv.join(" ")))),
            None => Ok(out),
        }
    }

    fn attach_socket(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        let path = self.dir(id).join(super::shim::ATTACH_SOCKET);
        if path.exists() {
            Ok(path)
        } else {
            Err(Error::NotFound(id.to_string()))
        }
    }

    fn exec_command(&self, id: &str, argv: &[String], tty: bool) -> Result<ExecCommand> {
        validate_id(id)?;
        if argv.is_empty() {
            return Err(Error::InvalidSpec("exec: empty command".into()));
        }
        if self.state(id)?.state != ContainerState::Running {
            return Err(Error::NotRunning(id.to_string()));
        }
        let dir = self.dir(id);
        let tag = crate::util::unique_suffix();
        let files = ExecFiles {
            process: dir.join(format!("exec-{tag}.json")),
            pid: dir.join(format!("exec-{tag}.pid")),
            log: dir.join(format!("exec-{tag}.log")),
        };
        let mut process = self.exec_process(id, argv)?;
        // With a terminal, runc (in the foreground) makes the container's and copies it to
        // and from its own stdio, which must then be a terminal too (the caller's).
        process["terminal"] = serde_json::json!(tty);
        write(
            &files.process,
            &serde_json::to_vec(&process).map_err(|e| Error::InvalidSpec(e.to_string()))?,
        )?;
        let mut command = Command::new(&self.cfg.runc);
        command
            .arg("--root")
            .arg(self.cfg.state_dir.join("runc"))
            .arg("--log")
            .arg(&files.log)
            .arg("--log-format")
            .arg("json")
            .arg("exec")
            .arg("--process")
            .arg(&files.process)
            .arg("--pid-file")
            .arg(&files.pid);
        command.arg(id);
        Ok(ExecCommand { command, files })
    }

    fn exits(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        Some(self.exits.subscribe())
    }

    fn list(&self) -> Result<Vec<ContainerStatus>> {
        let mut ids = std::collections::BTreeSet::new();
        let containers = self.cfg.state_dir.join("containers");
        for e in fs::read_dir(&containers)
            .map_err(io_err(&containers))?
            .flatten()
        {
            ids.insert(e.file_name().to_string_lossy().into_owned());
        }
        // One `runc list` instead of a `runc state` per container: the sync loop relists
        // often. Containers runc knows but whose dir is gone (crash mid-delete) are
        // orphans too.
        let mut known = std::collections::BTreeMap::new();
        let listed = self.runc(&["list", "--format", "json"]).ok();
        if let Some(out) = &listed {
            let states: Option<Vec<RuncState>> = serde_json::from_slice(&out.stdout).ok();
            for s in states.unwrap_or_default() {
                ids.insert(s.id.clone());
                known.insert(s.id.clone(), s);
            }
        }
        let mut out = Vec::new();
        for id in ids.into_iter().filter(|id| validate_id(id).is_ok()) {
            let status = match listed {
                Some(_) => {
                    let s = known.remove(&id);
                    self.status_of(&id, || s)
                }
                None => self.state(&id),
            };
            match status {
                Ok(s) => out.push(s),
                // Deleted while we listed (another pod's worker removed it): not an error of
                // the list, which would otherwise fail for every caller at once.
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// A `runc exec` ready to spawn, for streaming exec: the caller connects its stdio. Its
/// files in the container dir go when it is dropped.
pub struct ExecCommand {
    /// `runc exec` with its arguments; stdio is the caller's to set.
    pub command: Command,
    files: ExecFiles,
}

impl ExecCommand {
    /// SIGKILLs the command inside the container: runc forwards other signals to it, but
    /// a killed `runc exec` leaves its command running.
    pub fn kill_process(&self) {
        if let Some(pid) = read_pid(&self.files.pid) {
            // SAFETY: kill(2) on the pid runc wrote for this exec; at worst it is gone.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// runc's own failure (no such executable, container gone), once `runc exec` exited
    /// non-zero: an error of the exec, not an exit code of the command.
    pub fn runc_error(&self) -> Option<String> {
        runc_log_error(&self.files.log)
    }
}

impl Drop for ExecCommand {
    fn drop(&mut self) {
        self.files.remove();
    }
}

/// Per-exec files in the container dir, removed when the exec ends.
struct ExecFiles {
    process: PathBuf,
    pid: PathBuf,
    log: PathBuf,
}

impl ExecFiles {
    fn remove(&self) {
        for f in [&self.process, &self.pid, &self.log] {
            let _ = fs::remove_file(f);
        }
    }
}

/// Reads a stream to its end on a thread, keeping the first [`EXEC_OUTPUT_LIMIT`] bytes
/// but draining the rest so the writer never blocks; sends `(tag, bytes)` at EOF.
fn read_limited(
    mut src: impl Read + Send + 'static,
    tag: u8,
    tx: std::sync::mpsc::Sender<(u8, Vec<u8>)>,
) {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = EXEC_OUTPUT_LIMIT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send((tag, kept));
    });
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The last error runc logged (JSON log format), if any.
fn runc_log_error(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error" || v["level"] == "fatal")
        .and_then(|v| v["msg"].as_str().map(str::to_string))
}

/// A Localhost seccomp profile: OCI `LinuxSeccomp` JSON in a file on the node, as
/// containerd loads it; a missing or malformed file fails the create.
fn localhost_profile(path: &Path) -> Result<serde_json::Value> {
    let raw = fs::read(path).map_err(|e| {
        Error::InvalidSpec(format!(
            "cannot load seccomp profile {:?}: {e}",
            path.display()
        ))
    })?;
    let profile: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
        Error::InvalidSpec(format!(
            "decoding seccomp profile {:?} failed: {e}",
            path.display()
        ))
    })?;
    if !profile.is_object() {
        return Err(Error::InvalidSpec(format!(
            "seccomp profile {:?} is not a JSON object",
            path.display()
        )));
    }
    Ok(profile)
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    crate::util::write_atomic(path, data).map_err(io_err(path))
}

fn pid_alive(pid_file: &Path) -> bool {
    let Some(pid) = fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return false;
    };
    // A zombie still answers kill(0); look at its state instead.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|e| Error::InvalidSpec(e.to_string()))
}

fn mount_overlay(layers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    // overlayfs lists lower dirs top first.
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    if lower.iter().any(|l| l.contains(':') || l.contains(',')) {
        return Err(Error::InvalidSpec(
            "layer paths must not contain ':' or ','".into(),
        ));
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    let opts = CString::new(opts).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let target_c = cstring(target)?;
    let fstype = CString::new("overlay").map_err(|e| Error::InvalidSpec(e.to_string()))?;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target_c.as_ptr(),
            fstype.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(Error::Mount {
            target: target.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Unmounts the rootfs if mounted (lazily, so a lingering reader cannot block cleanup).
fn unmount(target: &Path) -> Result<()> {
    if !target.exists() {
        return Ok(());
    }
    let c = cstring(target)?;
    // SAFETY: valid NUL-terminated path.
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        // EINVAL: not a mount point (never mounted, or already unmounted).
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(Error::Mount {
                target: target.to_path_buf(),
                source: err,
            });
        }
    }
    Ok(())
}
