//! The per-container shim: a small process that outlives agent restarts, runs
//! `runc create`, writes the container's stdout/stderr to its CRI log and records how the
//! container exited (exit code, OOM kill) in `exit.json`.
//!
//! It is what containerd-shim and conmon are for other runtimes: the container's pipes and
//! its exit status need an owner that is not the agent, or restarting the agent would
//! SIGPIPE every container and lose exit codes. It becomes a child subreaper so the
//! container's init is re-parented to it and can be `waitpid`ed.
//!
//! Protocol with the agent: argv is `<shim program...> <container dir>`; the dir holds
//! `shim.json` ([`ShimConfig`]). The shim prints one line on stdout, `ok <pid>` once the
//! container is created or `error: <why>`, then detaches from the agent's pipes.

use crate::logs::{LineSplitter, LogWriter, Rotation, Stream};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// What the shim needs, written by the runtime as `<container dir>/shim.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    /// runc binary.
    pub runc: PathBuf,
    /// runc `--root`.
    pub runc_root: PathBuf,
    /// Container id.
    pub id: String,
    /// Bundle dir (holds `config.json`).
    pub bundle: PathBuf,
    /// Where runc writes the init pid.
    pub pid_file: PathBuf,
    /// runc's own log (JSON), read back for error messages.
    pub runc_log: PathBuf,
    /// Container log file (CRI format).
    pub log_path: PathBuf,
    /// Its rotation.
    pub rotation: Rotation,
    /// Where the exit record goes.
    pub exit_file: PathBuf,
    /// Memory cgroup dir, read for OOM-kill counts after the exit.
    pub memory_cgroup: PathBuf,
}

/// How the container ended, as the shim saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Exit code, or 128 + signal.
    pub exit_code: i32,
    /// Killing signal, if any.
    pub signal: Option<i32>,
    /// The cgroup recorded an OOM kill.
    pub oom_killed: bool,
    /// RFC 3339 time of the exit.
    pub finished_at: String,
}

/// Entry point for a binary that acts as the shim (`skiff-node-shim`, or a hidden
/// subcommand of `skiff`): pass the arguments after the program/subcommand name.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let Some(dir) = args.into_iter().next().map(PathBuf::from) else {
        eprintln!("usage: shim <container dir>");
        return 2;
    };
    let config: ShimConfig = match std::fs::read(dir.join("shim.json"))
        .map_err(|e| e.to_string())
        .and_then(|raw| serde_json::from_slice(&raw).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            println!("error: reading shim.json: {e}");
            return 1;
        }
    };
    match run(&config) {
        Ok(()) => 0,
        Err(e) => {
            // Stdout may be gone already (after the ready line); stderr is shim.log.
            eprintln!("shim {}: {e}", config.id);
            1
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own exclusively.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are not owned elsewhere.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn ready(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run(cfg: &ShimConfig) -> Result<(), String> {
    // SAFETY: plain syscalls on our own process with no pointers retained.
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        // Writing to the agent's pipe after it died must not kill the shim.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let fail = |msg: String| {
        ready(&format!("error: {msg}"));
        msg
    };
    let writer = LogWriter::open(&cfg.log_path, cfg.rotation).map_err(|e| fail(e.to_string()))?;
    let writer = Arc::new(Mutex::new(writer));
    let (out_r, out_w) = pipe().map_err(|e| fail(format!("pipe: {e}")))?;
    let (err_r, err_w) = pipe().map_err(|e| fail(format!("pipe: {e}")))?;
    let status = {
        // The Command holds our copies of the write ends; dropping it at the end of this
        // block leaves the container as their only writer, so EOF means it exited.
        let mut cmd = Command::new(&cfg.runc);
        cmd.arg("--root")
            .arg(&cfg.runc_root)
            .arg("--log")
            .arg(&cfg.runc_log)
            .arg("--log-format")
            .arg("json")
            .arg("create")
            .arg("--bundle")
            .arg(&cfg.bundle)
            .arg("--pid-file")
            .arg(&cfg.pid_file)
            .arg(&cfg.id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w));
        cmd.status()
    };
    let status = status.map_err(|e| fail(format!("spawning runc: {e}")))?;
    if !status.success() {
        return Err(fail(format!(
            "runc create: {status}: {}",
            runc_log_tail(&cfg.runc_log)
        )));
    }
    let pid: i32 = std::fs::read_to_string(&cfg.pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| fail("runc create wrote no pid file".into()))?;
    ready(&format!("ok {pid}"));
    detach_stdio(&cfg.bundle.join("shim.log"));

    let (done_tx, done_rx) = mpsc::channel();
    for (fd, stream) in [(out_r, Stream::Stdout), (err_r, Stream::Stderr)] {
        let writer = writer.clone();
        let done_tx = done_tx.clone();
        std::thread::spawn(move || {
            copy_stream(File::from(fd), stream, &writer);
            let _ = done_tx.send(());
        });
    }
    let (exit_code, signal) = wait_for(pid);
    // Any OOM kill in the container's cgroup counts, as in containerd: the victim may be a
    // child whose death made init exit with some other code.
    let oom_killed = super::cgroup::oom_kill_count(&cfg.memory_cgroup) > 0;
    // The pid namespace died with its init, so the pipes reach EOF promptly; the timeout
    // only guards against a writer that escaped it.
    for _ in 0..2 {
        let _ = done_rx.recv_timeout(Duration::from_secs(5));
    }
    let record = ExitRecord {
        exit_code,
        signal,
        oom_killed,
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    };
    let raw = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    crate::util::write_atomic(&cfg.exit_file, &raw).map_err(|e| e.to_string())?;
    Ok(())
}

/// Points stdin/stdout at /dev/null and stderr at `log`, cutting the shim loose from the
/// agent's pipes.
fn detach_stdio(log: &Path) {
    let null = File::options().read(true).write(true).open("/dev/null");
    let log = File::options().create(true).append(true).open(log);
    if let Ok(null) = null {
        // SAFETY: dup2 onto the standard fds; `null` stays open until after the calls.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
    if let Ok(log) = log {
        // SAFETY: as above.
        unsafe {
            libc::dup2(log.as_raw_fd(), 2);
        }
    }
}

fn copy_stream(mut src: File, stream: Stream, writer: &Mutex<LogWriter>) {
    let mut splitter = LineSplitter::new(stream);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = splitter.feed(&buf[..n], &mut w) {
            eprintln!("writing log: {e}");
        }
    }
    let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
    let _ = splitter.finish(&mut w);
}

/// Reaps children until `pid` exits; returns (exit code, signal).
fn wait_for(pid: i32) -> (i32, Option<i32>) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into our local.
        let got = unsafe { libc::waitpid(-1, &mut status, 0) };
        if got == pid {
            if libc::WIFEXITED(status) {
                return (libc::WEXITSTATUS(status), None);
            }
            if libc::WIFSIGNALED(status) {
                let sig = libc::WTERMSIG(status);
                return (128 + sig, Some(sig));
            }
            continue;
        }
        if got < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // Not our child (should not happen with the subreaper bit): poll until gone.
            // SAFETY: signal 0 only checks existence.
            while unsafe { libc::kill(pid, 0) } == 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            return (255, None);
        }
    }
}

/// The last error message runc logged, for a useful error line.
fn runc_log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .and_then(|v| v["msg"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.lines().last().unwrap_or("no log").to_string())
}
