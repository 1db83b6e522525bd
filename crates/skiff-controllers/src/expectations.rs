//! Upstream's `ControllerExpectations`: the writes a controller made for one owner that its
//! caches may not show yet. Without them a stale cache makes a controller create the same
//! pods twice, or delete one too many. One home for the bookkeeping; each controller says
//! what "seen" means for its writes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

/// How long a controller trusts its own unconfirmed writes over its caches. Upstream waits
/// 5 minutes; here a lost watch event then costs one extra pass, not a wedged owner.
pub const TTL: Duration = Duration::from_secs(10);

/// Pending writes per owner uid, each owner's kept as an `E`.
pub struct Expectations<E> {
    ttl: Duration,
    pending: Mutex<HashMap<String, (Instant, E)>>,
}

impl<E: Default> Default for Expectations<E> {
    fn default() -> Self {
        Expectations::new(TTL)
    }
}

impl<E: Default> Expectations<E> {
    pub fn new(ttl: Duration) -> Self {
        Expectations {
            ttl,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Notes a write made for owner `uid` (`f` adds it to the owner's pending writes), and
    /// restarts the owner's clock.
    pub fn expect<T>(&self, uid: &str, f: impl FnOnce(&mut E) -> T) -> T {
        let mut all = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (since, writes) = all
            .entry(uid.to_string())
            .or_insert_with(|| (Instant::now(), E::default()));
        *since = Instant::now();
        f(writes)
    }

    /// Whether the caches have caught up with owner `uid`'s writes. `settled` gets the
    /// pending writes and whether they are older than the TTL, and says whether the owner
    /// may be forgotten; an owner with nothing pending is settled.
    pub fn settle(&self, uid: &str, settled: impl FnOnce(&mut E, bool) -> bool) -> bool {
        let mut all = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some((since, writes)) = all.get_mut(uid) else {
            return true;
        };
        let expired = since.elapsed() > self.ttl;
        let done = settled(writes, expired);
        if done {
            all.remove(uid);
        }
        done
    }
}

/// Pods created and deleted by name: what ReplicaSet, DaemonSet and Job expect.
#[derive(Debug, Default)]
pub struct PodWrites {
    pub creates: HashSet<String>,
    pub deletes: HashSet<String>,
}

impl PodWrites {
    /// Whether `pods` (the owner's namespace in the cache) show every create, and none of
    /// the deleted pods is still there without a deletion timestamp.
    pub fn seen_in(&self, pods: &[&Pod]) -> bool {
        let live: HashSet<&str> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        self.creates.iter().all(|n| live.contains(n.as_str()))
            && self.deletes.iter().all(|n| !live.contains(n.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, deleting: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        if deleting {
            p.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
            );
        }
        p
    }

    #[test]
    fn pod_writes_are_seen_once_the_cache_shows_them() {
        let (a, b, b_going) = (pod("a", false), pod("b", false), pod("b", true));
        let writes = PodWrites {
            creates: ["a".to_string()].into(),
            deletes: ["b".to_string()].into(),
        };
        for (pods, want) in [
            (vec![], false),
            (vec![&a, &b], false),
            (vec![&a, &b_going], true),
            (vec![&a], true),
        ] {
            assert_eq!(writes.seen_in(&pods), want, "{pods:?}");
        }
    }

    #[test]
    fn an_owner_is_settled_when_seen_or_expired_and_then_forgotten() {
        let exp: Expectations<PodWrites> = Expectations::new(Duration::ZERO);
        assert!(exp.settle("u", |_, _| false), "nothing pending");
        exp.expect("u", |w| w.creates.insert("a".into()));
        assert!(!exp.settle("u", |w, _| w.seen_in(&[])));
        assert!(exp.settle("u", |w, expired| expired || w.seen_in(&[])));
        assert!(exp.settle("u", |_, _| false), "forgotten once settled");
        let exp: Expectations<PodWrites> = Expectations::new(Duration::from_secs(60));
        exp.expect("u", |w| w.creates.insert("a".into()));
        assert!(!exp.settle("u", |w, expired| expired || w.seen_in(&[])));
    }
}
