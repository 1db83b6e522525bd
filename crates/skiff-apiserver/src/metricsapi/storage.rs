//! The last two readings of every node and container, and the usage they give, as
//! metrics-server's storage keeps them: CPU is a rate, so a figure needs two cumulative
//! readings of the same process (no restart in between), and the window is the time
//! between them. Pure: the collector feeds scrape batches in, the API reads usage out.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

/// A container started this long before its first reading has its start as the earlier
/// point (cumulative CPU 0), when the scrape interval is longer than this: shorter spans
/// give inaccurate rates (metrics-server's `freshContainerMinMetricsResolution`).
pub const FRESH_MIN: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// One cumulative reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// When it was read.
    pub timestamp: DateTime<Utc>,
    /// When the process (container, or node) started: a later start means a restart.
    pub start: DateTime<Utc>,
    /// CPU time since `start`, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory working set at `timestamp`, in bytes.
    pub working_set: u64,
}

/// Usage over a window: CPU in nanocores, memory in bytes, as of `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub timestamp: DateTime<Utc>,
    pub window: chrono::TimeDelta,
    pub nanocores: u64,
    pub memory: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Series {
    last: Point,
    prev: Option<Point>,
}

/// What one scrape round read: every node's reading and every running container's,
/// by (namespace, pod) then container name.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub nodes: HashMap<String, Point>,
    pub pods: HashMap<(String, String), HashMap<String, Point>>,
}

/// The stored readings. A node or pod missing from a batch is forgotten, as upstream's.
#[derive(Debug, Default)]
pub struct Storage {
    nodes: HashMap<String, Series>,
    pods: HashMap<(String, String), HashMap<String, Series>>,
    /// The scrape interval.
    resolution: chrono::TimeDelta,
}

/// The next series of one node or container given its new reading (metrics-server's
/// `Store`): a fresh process uses its start as the earlier point; otherwise, without a
/// restart, the stored last point becomes the earlier one when the new point is newer, or
/// the stored earlier point is kept when the new one repeats the last.
fn advance(old: Option<&Series>, new: Point, resolution: chrono::TimeDelta) -> Series {
    let age = new.timestamp - new.start;
    let prev = if new.start < new.timestamp && age < resolution && age >= FRESH_MIN {
        Some(Point {
            timestamp: new.start,
            cpu_ns: 0,
            ..new
        })
    } else {
        old.filter(|o| new.start < o.last.timestamp).and_then(|o| {
            if new.timestamp > o.last.timestamp {
                Some(o.last)
            } else {
                o.prev.filter(|p| p.timestamp < new.timestamp)
            }
        })
    };
    Series { last: new, prev }
}

/// Usage between the two points of a series; `None` without an earlier point, over an
/// empty window or when the counter went down (metrics-server's "unexpected decrease").
fn usage(s: &Series) -> Option<Usage> {
    let prev = s.prev?;
    let window = s.last.timestamp - prev.timestamp;
    let window_ns = u128::try_from(window.num_nanoseconds()?)
        .ok()
        .filter(|w| *w > 0)?;
    let used = s.last.cpu_ns.checked_sub(prev.cpu_ns)?;
    let nanocores = u128::from(used) * 1_000_000_000 / window_ns;
    Some(Usage {
        timestamp: s.last.timestamp,
        window,
        nanocores: u64::try_from(nanocores).unwrap_or(u64::MAX),
        memory: s.last.working_set,
    })
}

impl Storage {
    /// Storage for scrapes every `resolution`.
    pub fn new(resolution: std::time::Duration) -> Storage {
        Storage {
            resolution: chrono::TimeDelta::from_std(resolution).unwrap_or(FRESH_MIN),
            ..Storage::default()
        }
    }

    /// Takes in one scrape round.
    pub fn store(&mut self, batch: Batch) {
        let resolution = self.resolution;
        self.nodes = batch
            .nodes
            .into_iter()
            .map(|(name, p)| {
                let s = advance(self.nodes.get(&name), p, resolution);
                (name, s)
            })
            .collect();
        self.pods = batch
            .pods
            .into_iter()
            .map(|(pod, containers)| {
                let old = self.pods.get(&pod);
                let containers = containers
                    .into_iter()
                    .map(|(name, p)| {
                        let s = advance(old.and_then(|o| o.get(&name)), p, resolution);
                        (name, s)
                    })
                    .collect();
                (pod, containers)
            })
            .collect();
    }

    /// A node's usage, once two readings are known.
    pub fn node(&self, name: &str) -> Option<Usage> {
        usage(self.nodes.get(name)?)
    }

    /// A pod's usage per container (in name order) and the earliest of their timestamps
    /// and windows; `None` unless every container has two readings. A container whose
    /// counter went down is left out, as upstream skips it.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<(Usage, Vec<(String, Usage)>)> {
        let containers = self.pods.get(&(namespace.to_owned(), name.to_owned()))?;
        if containers.values().any(|s| s.prev.is_none()) {
            return None;
        }
        let mut out: Vec<(String, Usage)> = containers
            .iter()
            .filter_map(|(n, s)| Some((n.clone(), usage(s)?)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        let earliest = out.iter().map(|(_, u)| *u).min_by_key(|u| u.timestamp)?;
        Some((earliest, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn p(ts: i64, start: i64, cpu_ns: u64) -> Point {
        Point {
            timestamp: t(ts),
            start: t(start),
            cpu_ns,
            working_set: 1000 + cpu_ns,
        }
    }

    fn batch_of(node: Option<Point>, containers: &[(&str, Point)]) -> Batch {
        let mut b = Batch::default();
        if let Some(n) = node {
            b.nodes.insert("n1".into(), n);
        }
        if !containers.is_empty() {
            b.pods.insert(
                ("default".into(), "web".into()),
                containers
                    .iter()
                    .map(|(n, p)| (n.to_string(), *p))
                    .collect(),
            );
        }
        b
    }

    /// Cases after metrics-server's storage tests: the readings of one container over
    /// successive scrapes (resolution 15 s) and the usage the last one gives.
    #[test]
    fn container_usage_follows_metrics_servers_rules() {
        let sec = 1_000_000_000u64;
        type Case = (&'static str, Vec<Point>, Option<(i64, i64, u64)>);
        let cases: Vec<Case> = vec![
            ("one reading of an old container: nothing yet", vec![p(100, 0, 5 * sec)], None),
            (
                "two readings: rate over the window",
                vec![p(100, 0, 5 * sec), p(115, 0, 8 * sec)],
                // (timestamp, window secs, nanocores): 3 s of CPU over 15 s = 200m.
                Some((115, 15, 200_000_000)),
            ),
            (
                "a fresh container (started 12 s before, under the resolution): its start is the earlier point",
                vec![p(112, 100, 6 * sec)],
                Some((112, 12, 500_000_000)),
            ),
            (
                "too fresh (under 10 s): no figure from one reading",
                vec![p(105, 100, sec)],
                None,
            ),
            (
                "a restart between readings drops the old point",
                vec![p(100, 0, 50 * sec), p(130, 125, sec)],
                None,
            ),
            (
                "a repeated reading keeps the earlier point",
                vec![p(100, 0, sec), p(115, 0, 4 * sec), p(115, 0, 4 * sec)],
                Some((115, 15, 200_000_000)),
            ),
            (
                "a decreasing counter gives no figure",
                vec![p(100, 0, 9 * sec), p(115, 0, 4 * sec)],
                None,
            ),
        ];
        for (name, readings, want) in cases {
            let mut s = Storage::new(std::time::Duration::from_secs(15));
            for r in &readings {
                s.store(batch_of(None, &[("app", *r)]));
            }
            let got = s.pod("default", "web").map(|(u, _)| {
                (
                    (u.timestamp - t(0)).num_seconds(),
                    u.window.num_seconds(),
                    u.nanocores,
                )
            });
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_pod_needs_every_container_and_reports_the_earliest_timestamp() {
        let sec = 1_000_000_000u64;
        let mut s = Storage::new(std::time::Duration::from_secs(10));
        s.store(batch_of(None, &[("a", p(100, 0, 0)), ("b", p(101, 0, 0))]));
        s.store(batch_of(
            None,
            &[
                ("a", p(110, 0, sec)),
                ("b", p(111, 0, 2 * sec)),
                ("c", p(111, 0, 0)),
            ],
        ));
        assert_eq!(s.pod("default", "web"), None, "c has one reading");
        s.store(batch_of(
            None,
            &[
                ("a", p(120, 0, 2 * sec)),
                ("b", p(122, 0, 3 * sec)),
                ("c", p(121, 0, sec)),
            ],
        ));
        let (pod, containers) = s.pod("default", "web").unwrap();
        assert_eq!(pod.timestamp, t(120));
        let names: Vec<&str> = containers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(containers[0].1.nanocores, 100_000_000);
        assert_eq!(containers[0].1.memory, 1000 + 2 * sec);
    }

    #[test]
    fn nodes_and_pods_missing_from_a_round_are_forgotten() {
        let mut s = Storage::new(std::time::Duration::from_secs(10));
        s.store(batch_of(Some(p(100, 0, 0)), &[("a", p(100, 0, 0))]));
        s.store(batch_of(
            Some(p(110, 0, 10_000_000_000)),
            &[("a", p(110, 0, 0))],
        ));
        let node = s.node("n1").unwrap();
        assert_eq!(node.nanocores, 1_000_000_000);
        assert_eq!(node.window, chrono::TimeDelta::seconds(10));
        assert!(s.pod("default", "web").is_some());
        s.store(Batch::default());
        assert_eq!(s.node("n1"), None);
        assert_eq!(s.pod("default", "web"), None);
    }
}
