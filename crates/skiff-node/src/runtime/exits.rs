//! Container exits pushed to the agent: the shim writes `exit.json` and then exits, so its
//! own exit is the "exit recorded" event. One thread waits on a pidfd per shim (epoll), so
//! the agent learns of every exit at once without asking runc, and no longer needs a
//! thread per shim to reap it.
//!
//! Shims the runtime started are watched from their start; shims of containers adopted
//! after an agent restart are watched from the first time the runtime sees them running.
//! A shim that is our child is reaped here (the kernel keeps a child's zombie until then).

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// How many exits a slow subscriber may fall behind before it is told it lagged (and
/// then looks at everything again).
const BACKLOG: usize = 1024;

/// Watches shim processes and broadcasts the container id of each one that exits.
pub struct ExitWatcher {
    inner: Arc<Inner>,
}

struct Inner {
    epoll: OwnedFd,
    /// pidfds by their fd number, with the container id.
    watched: Mutex<HashMap<RawFd, (OwnedFd, String)>>,
    /// Ids being watched (each at most once).
    ids: Mutex<HashSet<String>>,
    events: broadcast::Sender<String>,
}

/// Errors setting up the watcher.
#[derive(Debug, thiserror::Error)]
#[error("exit watcher: {0}")]
pub struct WatchError(#[from] std::io::Error);

impl std::fmt::Debug for ExitWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids = self.inner.ids.lock().map(|i| i.len()).unwrap_or(0);
        f.debug_struct("ExitWatcher")
            .field("watched", &ids)
            .finish()
    }
}

impl ExitWatcher {
    /// Starts the watcher's thread.
    pub fn start() -> Result<Self, WatchError> {
        // SAFETY: epoll_create1 returns a new fd we own, or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: fd was just created and is owned by nothing else.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let inner = Arc::new(Inner {
            epoll,
            watched: Mutex::new(HashMap::new()),
            ids: Mutex::new(HashSet::new()),
            events: broadcast::channel(BACKLOG).0,
        });
        let thread = inner.clone();
        std::thread::Builder::new()
            .name("shim-exits".into())
            .spawn(move || thread.run())?;
        Ok(ExitWatcher { inner })
    }

    /// Exits from now on: the id of each container whose shim exited.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.inner.events.subscribe()
    }

    /// Whether container `id`'s shim is watched already.
    pub fn is_watched(&self, id: &str) -> bool {
        self.inner
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Watches container `id`'s shim, process `pid`. A shim already gone is reported at
    /// once (its pidfd cannot be had, or is readable already).
    pub fn watch(&self, id: &str, pid: u32) {
        let mut ids = self.inner.ids.lock().unwrap_or_else(|e| e.into_inner());
        if !ids.insert(id.to_string()) {
            return;
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as RawFd;
        if fd < 0 {
            ids.remove(id);
            drop(ids);
            let _ = self.inner.events.send(id.to_string());
            return;
        }
        // SAFETY: fd was just returned by pidfd_open and is owned by nothing else.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        self.inner
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fd, (pidfd, id.to_string()));
        // SAFETY: both fds are open; event is a valid epoll_event.
        let added = unsafe {
            libc::epoll_ctl(
                self.inner.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd,
                &mut event,
            )
        };
        if added != 0 {
            tracing::warn!(container = id, error = %std::io::Error::last_os_error(),
                "cannot watch the shim's exit");
            self.inner
                .watched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&fd);
            ids.remove(id);
        }
    }
}

impl Inner {
    fn run(&self) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        loop {
            // SAFETY: events is a valid buffer of the length given.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    -1,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "shim exit watcher stopped");
                return;
            }
            for event in &events[..n as usize] {
                let fd = event.u64 as RawFd;
                let Some((pidfd, id)) = self
                    .watched
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&fd)
                else {
                    continue;
                };
                // SAFETY: pidfd is open; removing it from the epoll set before closing it.
                unsafe {
                    libc::epoll_ctl(
                        self.epoll.as_raw_fd(),
                        libc::EPOLL_CTL_DEL,
                        pidfd.as_raw_fd(),
                        std::ptr::null_mut(),
                    );
                }
                reap(&pidfd);
                drop(pidfd);
                self.ids
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                let _ = self.events.send(id);
            }
        }
    }
}

/// Reaps the process if it is our child (a shim this agent started); for one adopted after
/// a restart the call fails with ECHILD, which is fine.
fn reap(pidfd: &OwnedFd) {
    // P_PIDFD (Linux 5.4); not every libc build names it.
    const P_PIDFD: libc::idtype_t = 3;
    // SAFETY: info is a zeroed siginfo_t the kernel fills; pidfd is open.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn next(rx: &mut broadcast::Receiver<String>) -> Option<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            match rx.try_recv() {
                Ok(id) => return Some(id),
                Err(broadcast::error::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        }
        None
    }

    #[test]
    fn an_exiting_child_is_reported_and_reaped() {
        let watcher = ExitWatcher::start().unwrap();
        let mut rx = watcher.subscribe();
        let child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let pid = child.id();
        watcher.watch("c1", pid);
        assert!(watcher.is_watched("c1"));
        watcher.watch("c1", pid); // once only
        let started = std::time::Instant::now();
        assert_eq!(next(&mut rx).as_deref(), Some("c1"));
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "not before it exits"
        );
        assert!(!watcher.is_watched("c1"));
        assert_eq!(rx.try_recv().ok(), None, "reported once");
        // Reaped: no zombie left under our pid.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        assert!(stat.is_err(), "{stat:?}");
        drop(child);
    }

    #[test]
    fn a_process_already_gone_is_reported_at_once() {
        let watcher = ExitWatcher::start().unwrap();
        let mut rx = watcher.subscribe();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        watcher.watch("gone", pid);
        assert_eq!(next(&mut rx).as_deref(), Some("gone"));
    }
}
