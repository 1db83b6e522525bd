//! A [`Runtime`] that only records calls and keeps states in memory, for testing the
//! agent's sync logic without root, runc or images.

use super::{
    validate_id, ContainerSpec, ContainerState, ContainerStatus, Error, ExecOutput, ExitInfo,
    Result, Runtime,
};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One call made on the fake, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `create(spec)`, recorded with the spec's id.
    Create(String),
    /// `start(id)`.
    Start(String),
    /// `kill(id, signal)`.
    Kill(String, i32),
    /// `delete(id)`.
    Delete(String),
    /// `exec(id, argv, _)`.
    Exec(String, Vec<String>),
}

/// What an exec'd command does in the fake, set per command line with
/// [`FakeRuntime::on_exec`]; commands without one exit 0 silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeExec {
    /// Exits with this code, printing this on stdout.
    Exit(i32, String),
    /// Never finishes: the exec fails with [`Error::ExecTimeout`] when it has a timeout.
    Hang,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<Call>,
    containers: BTreeMap<String, ContainerStatus>,
    /// Exit codes applied when a signal arrives; absent means the signal is ignored (a
    /// process that only stops on SIGKILL).
    exit_on_signal: BTreeMap<i32, i32>,
    /// Scripted exec results by space-joined command line.
    exec: BTreeMap<String, FakeExec>,
}

/// Records calls; containers exit when the test says so ([`FakeRuntime::exit`]) or on
/// signals configured with [`FakeRuntime::exit_on`] (SIGKILL always kills, with 137).
#[derive(Debug, Default)]
pub struct FakeRuntime {
    inner: Mutex<Inner>,
}

impl FakeRuntime {
    /// A fake with one running busybox container `id`: what most agent unit tests start from.
    pub fn with_running(id: &str) -> Self {
        let rt = Self::new();
        rt.create(&minimal_spec(id)).expect("fake create");
        rt.start(id).expect("fake start");
        rt
    }

    /// An empty fake.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Makes containers exit with `code` when they receive `signal`.
    pub fn exit_on(&self, signal: i32, code: i32) {
        self.lock().exit_on_signal.insert(signal, code);
    }

    /// Scripts what exec of `command` (argv joined by spaces) does from now on.
    pub fn on_exec(&self, command: &str, result: FakeExec) {
        self.lock().exec.insert(command.to_string(), result);
    }

    /// Makes a container exit now, as if its process ended.
    pub fn exit(&self, id: &str, exit_code: i32, reason: &str) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.pid = None;
            c.state = ContainerState::Exited(ExitInfo {
                exit_code,
                reason: reason.to_string(),
                finished_at: chrono::Utc::now().to_rfc3339(),
            });
        }
    }
}

impl Runtime for FakeRuntime {
    fn create(&self, spec: &ContainerSpec) -> Result<()> {
        validate_id(&spec.id)?;
        let mut inner = self.lock();
        inner.calls.push(Call::Create(spec.id.clone()));
        if inner.containers.contains_key(&spec.id) {
            return Err(Error::AlreadyExists(spec.id.clone()));
        }
        inner.containers.insert(
            spec.id.clone(),
            ContainerStatus {
                id: spec.id.clone(),
                state: ContainerState::Created,
                pid: None,
                started_at: None,
                spec: Some(spec.clone()),
            },
        );
        Ok(())
    }

    fn start(&self, id: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.calls.push(Call::Start(id.to_string()));
        let c = inner
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        if c.state != ContainerState::Created {
            return Err(Error::Runc(format!("cannot start {id}: not created")));
        }
        c.state = ContainerState::Running;
        c.pid = Some(4242);
        c.started_at = Some(chrono::Utc::now().to_rfc3339());
        Ok(())
    }

    fn kill(&self, id: &str, signal: i32) -> Result<()> {
        let code = {
            let mut inner = self.lock();
            inner.calls.push(Call::Kill(id.to_string(), signal));
            if !inner.containers.contains_key(id) {
                return Err(Error::NotFound(id.to_string()));
            }
            match signal {
                libc::SIGKILL => Some(137),
                s => inner.exit_on_signal.get(&s).copied(),
            }
        };
        let running = matches!(
            self.state(id)?.state,
            ContainerState::Running | ContainerState::Created
        );
        if let (Some(code), true) = (code, running) {
            self.exit(id, code, if code == 0 { "Completed" } else { "Error" });
        }
        Ok(())
    }

    fn state(&self, id: &str) -> Result<ContainerStatus> {
        self.lock()
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    fn delete(&self, id: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.calls.push(Call::Delete(id.to_string()));
        inner.containers.remove(id);
        Ok(())
    }

    fn list(&self) -> Result<Vec<ContainerStatus>> {
        Ok(self.lock().containers.values().cloned().collect())
    }

    fn exec(
        &self,
        id: &str,
        argv: &[String],
        timeout: Option<std::time::Duration>,
    ) -> Result<ExecOutput> {
        let mut inner = self.lock();
        inner.calls.push(Call::Exec(id.to_string(), argv.to_vec()));
        let c = inner
            .containers
            .get(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        if c.state != ContainerState::Running {
            return Err(Error::NotRunning(id.to_string()));
        }
        let command = argv.join(" ");
        match inner.exec.get(&command).cloned() {
            None => Ok(ExecOutput::default()),
            Some(FakeExec::Exit(exit_code, stdout)) => Ok(ExecOutput {
                exit_code,
                stdout: stdout.into_bytes(),
                stderr: Vec::new(),
            }),
            Some(FakeExec::Hang) => match timeout {
                Some(timeout) => Err(Error::ExecTimeout { command, timeout }),
                None => Err(Error::Runc(format!("fake: {command} hangs forever"))),
            },
        }
    }
}

/// The smallest container spec the fake accepts: a busybox container with defaults.
pub fn minimal_spec(id: &str) -> ContainerSpec {
    ContainerSpec {
        id: id.into(),
        image: "busybox".into(),
        rootfs_layers: vec![],
        process: crate::runtime::ProcessSpec::default(),
        sandbox: crate::runtime::SandboxRef::default(),
        mounts: vec![],
        resources: crate::runtime::Resources::default(),
        log_path: "/dev/null".into(),
        log_rotation: Default::default(),
        labels: Default::default(),
        security: Default::default(),
        stdio: Default::default(),
        pid_namespace: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::stop;
    use std::time::Duration;

    fn spec(id: &str) -> ContainerSpec {
        minimal_spec(id)
    }

    #[tokio::test(start_paused = true)]
    async fn stop_sends_sigkill_only_after_the_grace_period() {
        let rt = std::sync::Arc::new(FakeRuntime::new());
        rt.create(&spec("c")).unwrap();
        rt.start("c").unwrap();
        let started = tokio::time::Instant::now();
        let runtime: std::sync::Arc<dyn Runtime> = rt.clone();
        let status = stop(&runtime, "c", Duration::from_secs(30)).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(30));
        assert_eq!(
            rt.calls()[2..],
            [
                Call::Kill("c".into(), libc::SIGTERM),
                Call::Kill("c".into(), libc::SIGKILL)
            ]
        );
        match status.state {
            ContainerState::Exited(e) => assert_eq!(e.exit_code, 137),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stop_returns_early_when_sigterm_is_honoured() {
        let rt = std::sync::Arc::new(FakeRuntime::new());
        rt.exit_on(libc::SIGTERM, 0);
        rt.create(&spec("c")).unwrap();
        rt.start("c").unwrap();
        let started = tokio::time::Instant::now();
        let runtime: std::sync::Arc<dyn Runtime> = rt.clone();
        let status = stop(&runtime, "c", Duration::from_secs(30)).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(!rt.calls().contains(&Call::Kill("c".into(), libc::SIGKILL)));
        assert!(matches!(status.state, ContainerState::Exited(ref e) if e.reason == "Completed"));
    }
}
