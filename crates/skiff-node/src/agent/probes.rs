//! Readiness and liveness probes (`httpGet`, `tcpSocket`; `exec` is not run yet and counts
//! as passing), with the kubelet's timing: initial delay, period, timeout, thresholds.

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Failing clears Ready.
    Readiness,
    /// Failing restarts the container.
    Liveness,
}

/// Results of one probe of one container attempt.
#[derive(Debug, Clone)]
pub struct ProbeState {
    next: Instant,
    successes: i32,
    failures: i32,
    /// Current verdict (readiness starts false, liveness true).
    pub ok: bool,
}

impl ProbeState {
    /// State for a container that started at `started`.
    pub fn new(kind: Kind, probe: &Probe, started: Instant) -> Self {
        let delay = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
        Self {
            next: started + Duration::from_secs(delay),
            successes: 0,
            failures: 0,
            ok: kind == Kind::Liveness,
        }
    }

    /// Runs the probe if it is due; returns whether the verdict changed.
    pub async fn run_if_due(&mut self, probe: &Probe, pod_ip: &str) -> bool {
        let now = Instant::now();
        if now < self.next {
            return false;
        }
        let period = probe.period_seconds.unwrap_or(10).max(1) as u64;
        self.next = now + Duration::from_secs(period);
        let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
        let passed = tokio::time::timeout(timeout, check(probe, pod_ip))
            .await
            .unwrap_or(false);
        let before = self.ok;
        if passed {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= probe.success_threshold.unwrap_or(1).max(1) {
                self.ok = true;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= probe.failure_threshold.unwrap_or(3).max(1) {
                self.ok = false;
            }
        }
        before != self.ok
    }
}

fn port(p: &IntOrString) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(s) => s.parse().ok(),
    }
}

async fn check(probe: &Probe, pod_ip: &str) -> bool {
    if let Some(t) = &probe.tcp_socket {
        let host = t.host.clone().unwrap_or_else(|| pod_ip.to_string());
        let Some(port) = port(&t.port) else {
            return false;
        };
        return tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .is_ok();
    }
    if let Some(h) = &probe.http_get {
        let host = h.host.clone().unwrap_or_else(|| pod_ip.to_string());
        let Some(port) = port(&h.port) else {
            return false;
        };
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let Ok(mut s) = tokio::net::TcpStream::connect((host.as_str(), port)).await else {
            return false;
        };
        let mut req = format!(
            "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\n"
        );
        for hdr in h.http_headers.iter().flatten() {
            req.push_str(&format!("{}: {}\r\n", hdr.name, hdr.value));
        }
        req.push_str("\r\n");
        if s.write_all(req.as_bytes()).await.is_err() {
            return false;
        }
        let mut head = [0u8; 16];
        let Ok(n) = s.read(&mut head).await else {
            return false;
        };
        let line = String::from_utf8_lossy(&head[..n]);
        return line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .is_some_and(|c| (200..400).contains(&c));
    }
    // exec and grpc probes are not run yet.
    true
}
