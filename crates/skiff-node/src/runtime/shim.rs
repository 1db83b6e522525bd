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
//!
//! Attach (`kubectl attach`, the CRI's Attach): the shim keeps the container's stdio
//! attachable on `<container dir>/attach.sock`. Every connected client gets what the
//! container writes from the moment it connects (fanned out beside the log); what a client
//! sends goes to the container's stdin when the pod spec gave it one (`stdin: true`, a
//! pipe the shim holds the other end of), and resizes reach its terminal (`tty: true`: runc
//! makes the terminal and hands its master over `--console-socket`). Both directions are
//! frames of [`FRAME_HEADER`] bytes (a kind byte and a big-endian u32 length) and the data:
//! from the shim [`STDOUT`] and [`STDERR`]; from a client [`STDIN`], [`STDIN_CLOSE`] (its
//! input ended; closes the container's stdin under `stdinOnce`) and [`RESIZE`] (width
//! then height, u16 each). Each client has a bounded queue that the container's output
//! waits on, as containerd's fan-out does: a slow client slows the container, never grows
//! the shim. The shim closes every client once the container has exited.

use crate::logs::{LineSplitter, LogWriter, Rotation, Stream};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// The attach socket's name in the container dir.
pub const ATTACH_SOCKET: &str = "attach.sock";
/// runc's `--console-socket`, in the container dir, while it is created.
const CONSOLE_SOCKET: &str = "console.sock";
/// Bytes before each frame's data: the kind and the data's length (u32, big-endian).
pub const FRAME_HEADER: usize = 5;
/// Frame kind: data the container wrote on stdout (all of it with a terminal).
pub const STDOUT: u8 = 1;
/// Frame kind: data the container wrote on stderr.
pub const STDERR: u8 = 2;
/// Frame kind: data for the container's stdin.
pub const STDIN: u8 = 0;
/// Frame kind: the client's input ended.
pub const STDIN_CLOSE: u8 = 3;
/// Frame kind: the client's terminal size, width then height (u16 each, big-endian).
pub const RESIZE: u8 = 4;
/// The largest frame a client may send; more closes its connection.
pub const MAX_FRAME: usize = 1 << 20;
/// Frames queued per attached client before the container's output waits for it.
const CLIENT_QUEUE: usize = 16;

/// Connects to a shim's attach socket by a short path through an open descriptor of its
/// directory: the socket's own path may be longer than a unix address holds (108 bytes).
/// Blocking (opens the directory): call it off the async runtime.
pub fn connect(socket: &Path) -> std::io::Result<UnixStream> {
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return Err(std::io::Error::other("bad attach socket path"));
    };
    let dir = File::open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    UnixStream::connect(short)
}

/// One frame, header and data.
pub fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + data.len());
    out.push(kind);
    // Callers send chunks of at most a few tens of KiB; the length always fits.
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// A frame's kind and data length from its header; `None` past [`MAX_FRAME`].
pub fn parse_header(header: [u8; FRAME_HEADER]) -> Option<(u8, usize)> {
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    (len <= MAX_FRAME).then_some((header[0], len))
}

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
    /// The container's stdin and terminal (absent in configs written before attach).
    #[serde(default)]
    pub stdio: super::Stdio,
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
    // The sockets are named relative to the container dir: its absolute path may be longer
    // than a unix socket address holds (108 bytes). runc inherits this directory too.
    std::env::set_current_dir(&cfg.bundle)
        .map_err(|e| fail(format!("entering {}: {e}", cfg.bundle.display())))?;
    let writer = LogWriter::open(&cfg.log_path, cfg.rotation).map_err(|e| fail(e.to_string()))?;
    let writer = Arc::new(Mutex::new(writer));
    let bind = |name: &str| {
        let _ = std::fs::remove_file(name);
        UnixListener::bind(name).map_err(|e| fail(format!("binding {name}: {e}")))
    };
    let attach = bind(ATTACH_SOCKET)?;
    let tty = cfg.stdio.tty;
    let console = if tty {
        Some(bind(CONSOLE_SOCKET)?)
    } else {
        None
    };
    // Without a terminal the container's stdio are pipes (stdin only when asked for).
    let stdin_pipe = if cfg.stdio.stdin && !tty {
        Some(pipe().map_err(|e| fail(format!("pipe: {e}")))?)
    } else {
        None
    };
    let mut outputs: Vec<(File, Stream)> = Vec::new();
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
            .arg(&cfg.pid_file);
        if tty {
            // runc makes the terminal inside the container and sends its master here;
            // its own stdio is then not the container's.
            cmd.arg("--console-socket")
                .arg(CONSOLE_SOCKET)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        } else {
            let (out_r, out_w) = pipe().map_err(|e| fail(format!("pipe: {e}")))?;
            let (err_r, err_w) = pipe().map_err(|e| fail(format!("pipe: {e}")))?;
            outputs.push((File::from(out_r), Stream::Stdout));
            outputs.push((File::from(err_r), Stream::Stderr));
            cmd.stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
            match &stdin_pipe {
                Some((read, _)) => {
                    let read = read.try_clone().map_err(|e| fail(format!("pipe: {e}")))?;
                    cmd.stdin(Stdio::from(read));
                }
                None => {
                    cmd.stdin(Stdio::null());
                }
            }
        }
        cmd.arg(&cfg.id);
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
    let master = match &console {
        Some(listener) => {
            let master = receive_console(listener)
                .map_err(|e| fail(format!("receiving the terminal from runc: {e}")))?;
            let _ = std::fs::remove_file(CONSOLE_SOCKET);
            let reader = master
                .try_clone()
                .map_err(|e| fail(format!("terminal: {e}")))?;
            outputs.push((File::from(reader), Stream::Stdout));
            Some(master)
        }
        None => None,
    };
    drop(console);
    let stdin = match (&master, stdin_pipe) {
        (Some(m), _) if cfg.stdio.stdin => Some(File::from(
            m.try_clone().map_err(|e| fail(format!("terminal: {e}")))?,
        )),
        (None, Some((_, write))) => Some(File::from(write)),
        _ => None,
    };
    ready(&format!("ok {pid}"));
    detach_stdio(&cfg.bundle.join("shim.log"));

    let hub = Arc::new(Hub {
        clients: Mutex::new(Vec::new()),
        next_id: Mutex::new(0),
        stdin: Mutex::new(stdin),
        stdin_once: cfg.stdio.stdin_once,
        master,
    });
    {
        let hub = hub.clone();
        std::thread::spawn(move || {
            for conn in attach.incoming().flatten() {
                let hub = hub.clone();
                std::thread::spawn(move || hub.serve(conn));
            }
        });
    }
    let (done_tx, done_rx) = mpsc::channel();
    let streams = outputs.len();
    for (src, stream) in outputs {
        let writer = writer.clone();
        let done_tx = done_tx.clone();
        let hub = hub.clone();
        std::thread::spawn(move || {
            copy_stream(src, stream, &writer, &hub);
            let _ = done_tx.send(());
        });
    }
    let (exit_code, signal) = wait_for(pid);
    // Any OOM kill in the container's cgroup counts, as in containerd: the victim may be a
    // child whose death made init exit with some other code.
    let oom_killed = super::cgroup::oom_kill_count(&cfg.memory_cgroup) > 0;
    // The pid namespace died with its init, so the pipes reach EOF promptly; the timeout
    // only guards against a writer that escaped it.
    for _ in 0..streams {
        let _ = done_rx.recv_timeout(Duration::from_secs(5));
    }
    // Attached clients see the end once all output is out.
    hub.close();
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

/// The terminal master runc sent to the console socket during `runc create` (queued in
/// the socket: runc connected, sent and closed before create returned).
fn receive_console(listener: &UnixListener) -> std::io::Result<OwnedFd> {
    listener.set_nonblocking(true)?;
    let (conn, _) = listener.accept().map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            std::io::Error::other("runc sent no terminal")
        } else {
            e
        }
    })?;
    conn.set_nonblocking(false)?;
    receive_fd(&conn)
}

/// One file descriptor passed as `SCM_RIGHTS` (runc's `utils.SendFile`: the terminal's
/// name as data, the master as the right).
fn receive_fd(sock: &UnixStream) -> std::io::Result<OwnedFd> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: recvmsg fills the buffers msg points at, within their stated sizes.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: CMSG_* walk the control buffer recvmsg filled, bounded by msg_controllen.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(std::io::Error::other("no file descriptor received"));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// The attached clients and the container's input.
struct Hub {
    /// A queue per connected client, by id.
    clients: Mutex<Vec<(u64, mpsc::SyncSender<Vec<u8>>)>>,
    next_id: Mutex<u64>,
    /// The container's stdin (pipe or terminal master), while it is open.
    stdin: Mutex<Option<File>>,
    stdin_once: bool,
    /// The terminal master, for resizes.
    master: Option<OwnedFd>,
}

impl Hub {
    /// Sends one chunk of output to every client, waiting for room in each queue.
    fn broadcast(&self, kind: u8, data: &[u8]) {
        let clients = lock(&self.clients).clone();
        if clients.is_empty() {
            return;
        }
        let bytes = frame(kind, data);
        for (id, tx) in clients {
            if tx.send(bytes.clone()).is_err() {
                lock(&self.clients).retain(|(c, _)| *c != id);
            }
        }
    }

    /// Serves one client until it goes or the container ends.
    fn serve(&self, conn: UnixStream) {
        let Ok(mut out) = conn.try_clone() else {
            return;
        };
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(CLIENT_QUEUE);
        let id = {
            let mut next = lock(&self.next_id);
            *next += 1;
            *next
        };
        lock(&self.clients).push((id, tx));
        std::thread::spawn(move || {
            for bytes in rx {
                if out.write_all(&bytes).is_err() {
                    break;
                }
            }
            // The container ended (or the client went): the client sees EOF.
            let _ = out.shutdown(std::net::Shutdown::Both);
        });
        let mut conn = conn;
        loop {
            let mut header = [0u8; FRAME_HEADER];
            if conn.read_exact(&mut header).is_err() {
                break;
            }
            let Some((kind, len)) = parse_header(header) else {
                break;
            };
            let mut data = vec![0u8; len];
            if conn.read_exact(&mut data).is_err() {
                break;
            }
            match kind {
                STDIN => {
                    let mut stdin = lock(&self.stdin);
                    if let Some(f) = stdin.as_mut() {
                        if f.write_all(&data).is_err() {
                            *stdin = None;
                        }
                    }
                }
                STDIN_CLOSE if self.stdin_once => *lock(&self.stdin) = None,
                RESIZE if data.len() == 4 => {
                    if let Some(master) = &self.master {
                        let size = libc::winsize {
                            ws_col: u16::from_be_bytes([data[0], data[1]]),
                            ws_row: u16::from_be_bytes([data[2], data[3]]),
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        // SAFETY: TIOCSWINSZ reads the winsize on our stack.
                        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
                    }
                }
                _ => {}
            }
        }
        lock(&self.clients).retain(|(c, _)| *c != id);
        let _ = conn.shutdown(std::net::Shutdown::Both);
    }

    /// Ends every client's queue, so each is closed once its last output is written.
    fn close(&self) {
        lock(&self.clients).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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

fn copy_stream(mut src: File, stream: Stream, writer: &Mutex<LogWriter>, hub: &Hub) {
    let mut splitter = LineSplitter::new(stream);
    let kind = match stream {
        Stream::Stdout => STDOUT,
        Stream::Stderr => STDERR,
    };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A terminal's master reads EIO once the container's side is all closed.
            Err(_) => break,
        };
        {
            let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = splitter.feed(&buf[..n], &mut w) {
                eprintln!("writing log: {e}");
            }
        }
        hub.broadcast(kind, &buf[..n]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_kind_and_length() {
        let f = frame(STDOUT, b"hello");
        assert_eq!(f, [1, 0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
        let header: [u8; FRAME_HEADER] = f[..FRAME_HEADER].try_into().unwrap();
        assert_eq!(parse_header(header), Some((STDOUT, 5)));
        assert_eq!(frame(STDIN_CLOSE, b""), [STDIN_CLOSE, 0, 0, 0, 0]);
    }

    #[test]
    fn an_oversized_frame_is_refused() {
        let mut header = [STDIN, 0, 0, 0, 0];
        header[1..].copy_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
        assert_eq!(parse_header(header), None);
        header[1..].copy_from_slice(&(MAX_FRAME as u32).to_be_bytes());
        assert_eq!(parse_header(header), Some((STDIN, MAX_FRAME)));
    }
}
