//! The container runtime boundary: what to run ([`ContainerSpec`]), what is running
//! ([`ContainerStatus`]), and the [`Runtime`] trait with a runc implementation and a fake.
//!
//! The trait is synchronous: each call is a short `runc` invocation or a file read, and
//! the agent's async layers call it from `spawn_blocking`. Waiting (graceful stop) lives in
//! the async [`stop`] helper so it runs on tokio's clock and can be tested paused.

mod cached;
mod cgroup;
pub mod exits;
pub mod fake;
mod process;
mod runc;
pub mod security;
pub mod shim;
mod spec;
pub mod stats;

pub use cached::CachedList;
pub use process::ProcessSpec;
pub use runc::{ExecCommand, RuncConfig, RuncRuntime};
pub use security::{Capabilities, Seccomp, Security};

/// The runc `cgroupsPath` of container `id` under the parent cgroup `parent`: `/parent/id`.
pub fn cgroups_path(parent: &str, id: &str) -> String {
    format!("/{}/{id}", parent.trim_matches('/'))
}

use crate::logs::Rotation;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Errors of container operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the runtime's state could not be used.
    #[error("runtime state {path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `runc` (or the shim running it) failed; the message carries its stderr.
    #[error("runc: {0}")]
    Runc(String),
    /// Mounting or unmounting the container's root filesystem failed.
    #[error("mount {target}: {source}")]
    Mount {
        /// Mount point.
        target: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The spec cannot be run as given (bad id, unknown user, no layers...).
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// No container with this id exists.
    #[error("container not found: {0}")]
    NotFound(String),
    /// A container with this id exists already.
    #[error("container already exists: {0}")]
    AlreadyExists(String),
    /// An exec'd command did not finish in time and was killed. The text is the kubelet's
    /// (`command "..." timed out`), since exec probes report it as their output.
    #[error("command {command:?} timed out")]
    ExecTimeout {
        /// The command line, space-joined.
        command: String,
        /// The timeout it overran.
        timeout: Duration,
    },
    /// Exec needs a running container.
    #[error("container {0} is not running")]
    NotRunning(String),
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// The pod-level namespaces and files a container joins; produced by the sandbox layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRef {
    /// Pod sandbox id (for listing containers by pod).
    pub id: String,
    /// Network namespace to join (`/run/netns/<name>`); `None` means the host network.
    pub netns_path: Option<PathBuf>,
    /// Hostname inside the container (the pod name).
    pub hostname: String,
    /// Files bind-mounted as `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`, if any.
    pub etc_hosts: Option<PathBuf>,
    /// See [`SandboxRef::etc_hosts`].
    pub resolv_conf: Option<PathBuf>,
    /// See [`SandboxRef::etc_hosts`].
    pub etc_hostname: Option<PathBuf>,
}

/// A host path bind-mounted into the container (emptyDir, hostPath, configMap files...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Source on the host.
    pub host_path: PathBuf,
    /// Destination inside the container (absolute).
    pub container_path: String,
    /// Mount read-only.
    pub read_only: bool,
}

/// cgroup limits of a container, in Kubernetes units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes; exceeding it gets the container OOM-killed.
    pub memory_limit: Option<u64>,
    /// CPU limit in millicores (CFS quota).
    pub cpu_limit_millis: Option<u64>,
    /// CPU request in millicores (CFS shares / weight).
    pub cpu_request_millis: Option<u64>,
}

/// How a container's standard streams are kept: the pod spec's `stdin`, `stdinOnce` and
/// `tty`. The shim serves them on the container's attach socket (see [`shim`]), so
/// `kubectl attach` reaches the main process as the kubelet's CRI attach does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stdio {
    /// The process gets a stdin that attached clients write to (else `/dev/null`).
    pub stdin: bool,
    /// The stdin is closed when the first attached client that wrote to it detaches.
    pub stdin_once: bool,
    /// The process gets a terminal as its stdio (output is then one stream).
    pub tty: bool,
}

/// Everything needed to run one container; plain data so it is stored with the container
/// and can be compared with the desired state after an agent restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Unique runtime id: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64 characters.
    pub id: String,
    /// The image reference it was created from (informational, for status and GC).
    pub image: String,
    /// Unpacked image layers, bottom first (from [`crate::image::ImageStore::rootfs`]).
    pub rootfs_layers: Vec<PathBuf>,
    /// The process to run (see [`ProcessSpec::resolve`]).
    pub process: ProcessSpec,
    /// The pod it belongs to.
    pub sandbox: SandboxRef,
    /// Volumes.
    pub mounts: Vec<Mount>,
    /// Limits.
    pub resources: Resources,
    /// CRI log file for stdout and stderr.
    pub log_path: PathBuf,
    /// Log rotation for `log_path`.
    pub log_rotation: Rotation,
    /// Free-form labels (pod uid, container name, restart count...) for the sync loop.
    pub labels: BTreeMap<String, String>,
    /// Capabilities, seccomp, privileged and the rest of the securityContext; absent in
    /// specs stored before it existed, which ran unconfined with the default capabilities.
    #[serde(default)]
    pub security: Security,
    /// Its standard streams; absent in specs stored before attach existed (no stdin, no
    /// terminal).
    #[serde(default)]
    pub stdio: Stdio,
    /// A PID namespace to join (`/proc/<pid>/ns/pid` of another container's init) instead
    /// of a new one: an ephemeral container's `targetContainerName`.
    #[serde(default)]
    pub pid_namespace: Option<PathBuf>,
}

/// Lifecycle state, as the kubelet distinguishes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Created, process not started yet.
    Created,
    /// Process running.
    Running,
    /// Process gone; exit recorded.
    Exited(ExitInfo),
    /// Neither runc nor the shim left a usable record (e.g. half-created before a crash);
    /// the agent should delete it.
    Unknown,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code; 128 + signal number when killed by a signal (137 for SIGKILL).
    pub exit_code: i32,
    /// Kubernetes reason: `Completed`, `Error` or `OOMKilled`.
    pub reason: String,
    /// When the process ended (RFC 3339).
    pub finished_at: String,
}

/// What the runtime knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// Runtime id.
    pub id: String,
    /// Current state.
    pub state: ContainerState,
    /// Host pid of the container's init while it runs.
    pub pid: Option<u32>,
    /// When the process was started (RFC 3339), once it was; Kubernetes' `startedAt`.
    pub started_at: Option<String>,
    /// The spec it was created with, when still on disk.
    pub spec: Option<ContainerSpec>,
}

/// What a command run with [`Runtime::exec`] produced (the CRI's `ExecSyncResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code; 128 + signal number when killed by a signal.
    pub exit_code: i32,
    /// Standard output, at most [`EXEC_OUTPUT_LIMIT`] bytes.
    pub stdout: Vec<u8>,
    /// Standard error, at most [`EXEC_OUTPUT_LIMIT`] bytes.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Stdout then stderr as text, the way the kubelet reports probe and hook output.
    pub fn combined(&self) -> String {
        let mut all = self.stdout.clone();
        all.extend_from_slice(&self.stderr);
        String::from_utf8_lossy(&all).into_owned()
    }
}

/// How much of each exec stream is kept: probe commands are meant to be short, and a
/// chatty one must not grow the agent (the kubelet keeps 10 KiB of probe output).
pub const EXEC_OUTPUT_LIMIT: usize = 16 << 10;

/// Runs containers. Implementations: [`RuncRuntime`] and [`fake::FakeRuntime`].
///
/// All methods are idempotent where the kubelet needs it: `kill` of an exited container
/// and `delete` of a missing one succeed, so a reconcile pass can repeat them safely.
pub trait Runtime: Send + Sync {
    /// Prepares the container (rootfs, namespaces, cgroup, log capture) without starting it.
    fn create(&self, spec: &ContainerSpec) -> Result<()>;
    /// Starts the process of a created container.
    fn start(&self, id: &str) -> Result<()>;
    /// Sends a signal to the container's init process.
    fn kill(&self, id: &str, signal: i32) -> Result<()>;
    /// Current status.
    fn state(&self, id: &str) -> Result<ContainerStatus>;
    /// Removes the container and everything it holds (killing it if still running).
    fn delete(&self, id: &str) -> Result<()>;
    /// Every container this runtime has state for, including ones created before a restart.
    fn list(&self) -> Result<Vec<ContainerStatus>>;
    /// Runs `argv` inside a running container with its process settings (env, cwd, user,
    /// capabilities) and waits for it: the CRI's `ExecSync`, which exec probes and
    /// lifecycle hooks are built on. `None` waits without limit (hooks, as upstream);
    /// past `timeout` the command is killed and [`Error::ExecTimeout`] returned. Like
    /// containerd's by default, it waits for the output to close, so a background child
    /// that keeps stdout open holds it up to the timeout.
    fn exec(&self, id: &str, argv: &[String], timeout: Option<Duration>) -> Result<ExecOutput>;
    /// Prepares `argv` to run inside a running container with the caller's stdio (`kubectl
    /// exec`'s streaming exec): the caller spawns the command and connects its pipes; with
    /// `tty` the command gets a terminal, and the caller must give runc one as its stdio.
    /// Only a runtime with real processes has it.
    fn exec_command(&self, id: &str, argv: &[String], tty: bool) -> Result<ExecCommand> {
        let _ = (id, argv, tty);
        Err(Error::InvalidSpec(
            "streaming exec is not supported by this runtime".into(),
        ))
    }
    /// Container exits as they are recorded: the id of each container whose shim just
    /// wrote its exit ([`exits`]); `None` when this runtime cannot tell, and callers poll.
    fn exits(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }
    /// The unix socket the container's shim serves its stdio on (`kubectl attach`); see
    /// [`shim`] for the framing. Only a runtime with real processes has it.
    fn attach_socket(&self, id: &str) -> Result<PathBuf> {
        Err(Error::InvalidSpec(format!(
            "attach to {id} is not supported by this runtime"
        )))
    }
}

/// Runs one runtime call on tokio's blocking pool. A call runs `runc` or reads the
/// container's files and can take seconds on a loaded host; on the async workers, which
/// `skiff server` shares with the API server, it would stall unrelated requests.
pub async fn blocking<T: Send + 'static>(
    runtime: &Arc<dyn Runtime>,
    call: impl FnOnce(&dyn Runtime) -> Result<T> + Send + 'static,
) -> Result<T> {
    let runtime = runtime.clone();
    tokio::task::spawn_blocking(move || call(runtime.as_ref()))
        .await
        .map_err(|e| Error::Runc(format!("runtime call: {e}")))?
}

/// Stops a container as the kubelet does: SIGTERM, wait up to `grace`, then SIGKILL, and
/// wait for the exit to be recorded. Returns the final status. Every runtime call runs off
/// the async runtime ([`blocking`]).
pub async fn stop(
    runtime: &Arc<dyn Runtime>,
    id: &str,
    grace: Duration,
) -> Result<ContainerStatus> {
    let poll = Duration::from_millis(50);
    let state = || {
        let id = id.to_string();
        blocking(runtime, move |r| r.state(&id))
    };
    let kill = |signal: i32| {
        let id = id.to_string();
        blocking(runtime, move |r| r.kill(&id, signal))
    };
    let status = state().await?;
    if matches!(status.state, ContainerState::Exited(_)) {
        return Ok(status);
    }
    kill(libc::SIGTERM).await?;
    // A pod may ask for any int64 of grace: past the clock's range it means "no deadline".
    let now = tokio::time::Instant::now();
    let deadline = now
        .checked_add(grace)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
    loop {
        let status = state().await?;
        if matches!(
            status.state,
            ContainerState::Exited(_) | ContainerState::Unknown
        ) {
            return Ok(status);
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(poll).await;
    }
    tracing::info!(container = id, "grace period over, sending SIGKILL");
    kill(libc::SIGKILL).await?;
    // SIGKILL cannot be ignored; this only waits for the shim to record the exit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = state().await?;
        if !matches!(
            status.state,
            ContainerState::Running | ContainerState::Created
        ) || tokio::time::Instant::now() >= deadline
        {
            return Ok(status);
        }
        tokio::time::sleep(poll).await;
    }
}

/// Deletes every container `keep` rejects (after an agent restart: those no Pod wants,
/// and half-created ones in [`ContainerState::Unknown`]); returns the deleted ids.
pub fn remove_orphans<R: Runtime + ?Sized>(
    runtime: &R,
    keep: impl Fn(&ContainerStatus) -> bool,
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for status in runtime.list()? {
        if status.state != ContainerState::Unknown && keep(&status) {
            continue;
        }
        tracing::info!(container = %status.id, state = ?status.state, "removing orphan container");
        runtime.delete(&status.id)?;
        removed.push(status.id);
    }
    Ok(removed)
}

/// Checks a container id before it becomes a path component and a runc argument.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!("bad container id {id:?}")))
    }
}

#[cfg(test)]
mod stop_tests {
    use super::*;
    use crate::runtime::fake::FakeRuntime;

    /// A pod may ask for any int64 of grace; the deadline once overflowed the clock.
    #[tokio::test]
    async fn a_grace_period_past_the_clocks_range_does_not_overflow() {
        let fake = Arc::new(FakeRuntime::with_running("c"));
        fake.exit_on(libc::SIGTERM, 0);
        let runtime: Arc<dyn Runtime> = fake;
        let status = stop(&runtime, "c", Duration::from_secs(i64::MAX as u64))
            .await
            .unwrap();
        assert!(matches!(status.state, ContainerState::Exited(_)));
    }
}
