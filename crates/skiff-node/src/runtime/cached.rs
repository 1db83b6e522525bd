//! A node-wide, short-lived cache of the container list.
//!
//! Every pod worker looks at its containers on each sync (every 500 ms, twice per sync), and
//! a real list costs a `runc list` plus every container's state files: with N pods that is
//! O(N²) work per second, which saturated 2 cores with 50 idle pods. Sharing one list taken
//! at most every [`MAX_AGE`] makes it O(N). Any change made through the runtime drops the
//! cache, so a worker always sees its own creates, starts, kills and deletes; only changes
//! from outside (a process exiting) are seen up to [`MAX_AGE`] late, well inside the sync
//! period.

use super::{ContainerSpec, ContainerStatus, ExecOutput, Result, Runtime};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How old a shared list may be.
pub const MAX_AGE: Duration = Duration::from_millis(200);

/// Wraps a runtime, sharing its `list` between callers for [`MAX_AGE`].
pub struct CachedList<R> {
    inner: R,
    /// The last list and when it was taken; the lock is held while refreshing, so callers
    /// that arrive meanwhile wait for that list instead of taking their own.
    cache: Mutex<Option<(Instant, Vec<ContainerStatus>)>>,
    /// Exits reported by the runtime since the last look: any drops the shared list, so a
    /// worker woken by its container's exit sees it at once.
    exits: Mutex<Option<tokio::sync::broadcast::Receiver<String>>>,
}

impl<R: Runtime> CachedList<R> {
    /// Shares `inner`'s list between callers.
    pub fn new(inner: R) -> Self {
        CachedList {
            exits: Mutex::new(inner.exits()),
            inner,
            cache: Mutex::new(None),
        }
    }

    fn invalidate(&self) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Runs a change and drops the cache (also when the change failed half-way).
    fn changing<T>(&self, change: impl FnOnce(&R) -> Result<T>) -> Result<T> {
        let out = change(&self.inner);
        self.invalidate();
        out
    }
}

impl<R: Runtime> Runtime for CachedList<R> {
    fn create(&self, spec: &ContainerSpec) -> Result<()> {
        self.changing(|r| r.create(spec))
    }

    fn start(&self, id: &str) -> Result<()> {
        self.changing(|r| r.start(id))
    }

    fn kill(&self, id: &str, signal: i32) -> Result<()> {
        self.changing(|r| r.kill(id, signal))
    }

    fn state(&self, id: &str) -> Result<ContainerStatus> {
        self.inner.state(id)
    }

    fn delete(&self, id: &str) -> Result<()> {
        self.changing(|r| r.delete(id))
    }

    fn list(&self) -> Result<Vec<ContainerStatus>> {
        let exited = self
            .exits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .is_some_and(|rx| {
                let mut any = false;
                while !matches!(
                    rx.try_recv(),
                    Err(tokio::sync::broadcast::error::TryRecvError::Empty
                        | tokio::sync::broadcast::error::TryRecvError::Closed)
                ) {
                    any = true;
                }
                any
            });
        if exited {
            self.invalidate();
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, list)) = cache.as_ref() {
            if at.elapsed() < MAX_AGE {
                return Ok(list.clone());
            }
        }
        let list = self.inner.list()?;
        *cache = Some((Instant::now(), list.clone()));
        Ok(list)
    }

    fn exec(&self, id: &str, argv: &[String], timeout: Option<Duration>) -> Result<ExecOutput> {
        self.inner.exec(id, argv, timeout)
    }

    fn exits(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        self.inner.exits()
    }

    fn exec_command(&self, id: &str, argv: &[String], tty: bool) -> Result<super::ExecCommand> {
        self.inner.exec_command(id, argv, tty)
    }

    fn attach_socket(&self, id: &str) -> Result<std::path::PathBuf> {
        self.inner.attach_socket(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::{minimal_spec, FakeRuntime};

    #[test]
    fn lists_are_shared_until_a_change_or_max_age() {
        let rt = CachedList::new(FakeRuntime::new());
        rt.create(&minimal_spec("a")).unwrap();
        assert_eq!(
            rt.list().unwrap().len(),
            1,
            "a change through it is seen at once"
        );
        // A change from outside (as a process exiting) is seen only once the list is old.
        rt.inner.create(&minimal_spec("b")).unwrap();
        assert_eq!(rt.list().unwrap().len(), 1, "served from the shared list");
        std::thread::sleep(MAX_AGE);
        assert_eq!(rt.list().unwrap().len(), 2, "an old list is taken again");
        rt.delete("a").unwrap();
        assert_eq!(
            rt.list().unwrap().len(),
            1,
            "a delete through it is seen at once"
        );
    }
}
