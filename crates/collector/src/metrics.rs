//! Prometheus metrics, written out by hand in the text exposition format (version 0.0.4).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

/// Distinct `source` labels kept; past this, new sources count under `_other` so a client
/// inventing sources cannot grow memory or the scrape without bound.
pub const MAX_SOURCES: usize = 1000;
/// Label used once MAX_SOURCES is reached.
pub const OVERFLOW_SOURCE: &str = "_other";
/// Upper bounds of the request duration buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The collector's metrics; shared by handle, updated lock-free on the hot path.
#[derive(Default)]
pub struct Metrics {
    events: RwLock<HashMap<String, AtomicU64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_nanos: AtomicU64,
    errors: AtomicU64,
}

impl Metrics {
    /// Counts events stored from `source`.
    pub fn record_events<'a>(&self, sources: impl IntoIterator<Item = &'a str>) {
        let mut pending: Vec<&str> = Vec::new();
        if let Ok(map) = self.events.read() {
            for s in sources {
                match map.get(s) {
                    Some(c) => {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    None => pending.push(s),
                }
            }
        }
        if pending.is_empty() {
            return;
        }
        if let Ok(mut map) = self.events.write() {
            for s in pending {
                let key = if map.contains_key(s) || map.len() < MAX_SOURCES {
                    s
                } else {
                    OVERFLOW_SOURCE
                };
                map.entry(key.to_string())
                    .or_default()
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Observes one handled request.
    pub fn observe_request(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Counts one failure: a refused or failed request, or a failed NATS ingestion.
    pub fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The whole exposition, collector metrics then process metrics.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP collector_events_total Events stored, by source.\n");
        out.push_str("# TYPE collector_events_total counter\n");
        if let Ok(map) = self.events.read() {
            let mut sources: Vec<_> = map.iter().collect();
            sources.sort_by(|a, b| a.0.cmp(b.0));
            for (s, c) in sources {
                let _ = writeln!(
                    out,
                    "collector_events_total{{source=\"{}\"}} {}",
                    escape(s),
                    c.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP collector_request_duration_seconds Time to handle an HTTP request.\n");
        out.push_str("# TYPE collector_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "collector_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let sum = self.duration_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "collector_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "collector_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "collector_request_duration_seconds_count {count}");
        out.push_str(
            "# HELP collector_errors_total Requests refused or failed, and failed ingestions.\n",
        );
        out.push_str("# TYPE collector_errors_total counter\n");
        let _ = writeln!(
            out,
            "collector_errors_total {}",
            self.errors.load(Ordering::Relaxed)
        );
        render_process(&mut out);
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The standard process_* series, read from /proc/self (Linux only; absent elsewhere).
fn render_process(out: &mut String) {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
    let mut gauge = |name: &str, help: &str, kind: &str, v: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name, which may itself hold spaces.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Indices are field number minus 3 (state is field 3).
        let cpu = (num(11) + num(12)) / ticks;
        gauge(
            "process_cpu_seconds_total",
            "User and system CPU time spent in seconds.",
            "counter",
            cpu,
        );
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            "gauge",
            num(20),
        );
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            num(21) * page,
        );
        if let Some(boot) = boot_time() {
            let start = boot + num(19) / ticks;
            gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                "gauge",
                start,
            );
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            dir.count() as f64,
        );
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        let max = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(max) = max {
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                "gauge",
                max,
            );
        }
    }
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_articles_series() {
        let m = Metrics::default();
        m.record_events(["qa-runner", "qa-runner", "deploy-hooks"]);
        m.observe_request(Duration::from_millis(3));
        m.record_error();
        let text = m.render();
        assert!(
            text.contains("collector_events_total{source=\"qa-runner\"} 2"),
            "{text}"
        );
        assert!(text.contains("collector_events_total{source=\"deploy-hooks\"} 1"));
        assert!(text.contains("collector_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("collector_request_duration_seconds_count 1"));
        assert!(text.contains("collector_errors_total 1"));
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.contains("process_cpu_seconds_total "));
    }

    #[test]
    fn source_labels_stop_growing_at_the_cap() {
        let m = Metrics::default();
        let names: Vec<String> = (0..MAX_SOURCES + 50).map(|i| format!("s{i}")).collect();
        m.record_events(names.iter().map(String::as_str));
        let text = m.render();
        assert_eq!(
            text.matches("collector_events_total{").count(),
            MAX_SOURCES + 1
        );
        assert!(text.contains("collector_events_total{source=\"_other\"} 50"));
    }
}
