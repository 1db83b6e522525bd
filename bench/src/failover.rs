//! Issue 13's failover check, one home for the e2e test (`crates/skiff/tests/nodefailure.rs`,
//! which includes this file by path) and the `node-failover` bench: a Deployment behind a
//! Service under load from node A while node-b loses power (its agent, shims and
//! containers SIGKILLed, its link down), and the timeline read from the API: node-b not
//! Ready, its pods out of the Service's endpoints, the replacements Ready on node A, and
//! the longest stretch of failing requests. Only std, serde_json and libc, so both crates
//! build it.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Deployment `web` (busybox httpd answering its hostname on 8080, `replicas` pods)
/// and the Service `web` (port 80) in front of it.
pub fn web_manifest(image: &str, replicas: usize) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {image}
        command: ["sh", "-c", "hostname > /www/index.html; exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 8080
"#
    )
}

/// A plain HTTP/1.0 `GET http://{ip}:{port}{path}` from the calling thread's network
/// namespace: the body, or why it failed (which step and the OS error: refused, reset,
/// timed out within 2 s), so a rare failure under load can be told apart.
pub fn http_get(ip: &str, port: u16, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = format!("{ip}:{port}")
        .parse()
        .map_err(|e| format!("address: {e}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n");
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| format!("set timeout: {e}"))?;
    s.write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {out:?}"))?;
    if head.starts_with("HTTP/1") {
        Ok(body.to_string())
    } else {
        Err(format!("not HTTP: {head:?}"))
    }
}

/// One request of the load: when it started (since the load began), how long it took,
/// whether it was answered.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub at: Duration,
    pub took: Duration,
    pub ok: bool,
}

/// Sends requests back to back on a thread of its own until `stop`: `make_get` runs on
/// that thread first (to enter a network namespace) and gives the request, true when
/// answered.
pub fn load<G: Fn() -> bool>(
    make_get: impl FnOnce() -> G + Send + 'static,
    stop: Arc<AtomicBool>,
    t0: Instant,
) -> JoinHandle<Vec<Request>> {
    std::thread::spawn(move || {
        let get = make_get();
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let ok = get();
            out.push(Request {
                at: started - t0,
                took: started.elapsed(),
                ok,
            });
        }
        out
    })
}

/// The longest stretch during which requests kept failing: from the start of a failing
/// request to the start of the next request that succeeded (to the end of the last one
/// when none did).
pub fn longest_failure(requests: &[Request]) -> Duration {
    let (mut longest, mut since) = (Duration::ZERO, None);
    for r in requests {
        match (r.ok, since) {
            (false, None) => since = Some(r.at),
            (true, Some(s)) => {
                longest = longest.max(r.at - s);
                since = None;
            }
            _ => {}
        }
    }
    if let (Some(s), Some(last)) = (since, requests.last()) {
        longest = longest.max(last.at + last.took - s);
    }
    longest
}

/// Whether a pod (JSON) is Running, Ready and not terminating.
pub fn pod_ready(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether a node (JSON) says Ready True.
pub fn node_ready(n: &Value) -> bool {
    n["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// What the failover is watched for.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The node that loses power.
    pub lost_node: String,
    /// The start of its pod addresses (`10.244.1.`).
    pub lost_pod_prefix: String,
    /// The node that takes the pods over.
    pub survivor: String,
    /// The Deployment's pods' `app` label, and the Service's (and Endpoints') name.
    pub app: String,
    /// How many Ready pods on the survivor mean the replacements run.
    pub replicas: usize,
}

/// When each step of the failover was first seen, since the power loss.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeline {
    pub not_ready: Option<Duration>,
    pub endpoints_removed: Option<Duration>,
    pub replaced: Option<Duration>,
}

impl Timeline {
    /// Records what `nodes`, `endpoints` and `pods` (objects as the API serves them) show
    /// `now` after the power loss; true once the replacements run.
    pub fn observe(
        &mut self,
        w: &Watch,
        nodes: &[Value],
        endpoints: &[Value],
        pods: &[Value],
        now: Duration,
    ) -> bool {
        let lost = nodes
            .iter()
            .find(|n| n["metadata"]["name"] == w.lost_node.as_str());
        if lost.is_some_and(|n| !node_ready(n)) && self.not_ready.is_none() {
            self.not_ready = Some(now);
        }
        let ep = endpoints
            .iter()
            .find(|e| e["metadata"]["name"] == w.app.as_str());
        let serves_lost = ep.is_none_or(|e| {
            e["subsets"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["addresses"].as_array().into_iter().flatten())
                .any(|a| {
                    a["ip"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with(&w.lost_pod_prefix)
                })
        });
        if ep.is_some() && !serves_lost && self.endpoints_removed.is_none() {
            self.endpoints_removed = Some(now);
        }
        let on_survivor = pods
            .iter()
            .filter(|p| {
                p["metadata"]["labels"]["app"] == w.app.as_str()
                    && p["spec"]["nodeName"] == w.survivor.as_str()
                    && pod_ready(p)
            })
            .count();
        if on_survivor >= w.replicas && self.replaced.is_none() {
            self.replaced = Some(now);
        }
        self.replaced.is_some()
    }
}

/// A power loss of the node whose data dir is `data_dir`, after its agent was SIGKILLed:
/// every container shim and container process SIGKILLed (nothing gets to clean up), then
/// `link` in network namespace `netns` down.
pub fn power_off(data_dir: &Path, netns: &str, link: &str) -> Result<(), String> {
    let containers = data_dir.join("runtime/containers");
    for file in ["shim.pid", "init.pid"] {
        for entry in std::fs::read_dir(&containers)
            .into_iter()
            .flatten()
            .flatten()
        {
            let pid = std::fs::read_to_string(entry.path().join(file))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(pid) = pid.filter(|p| *p > 1) {
                // SAFETY: kill has no memory preconditions; the pid was written by this
                // node's runtime for a process of its own.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let out = Command::new("ip")
        .args(["-n", netns, "link", "set", link, "down"])
        .output()
        .map_err(|e| format!("run ip: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn req(at_ms: u64, ok: bool) -> Request {
        Request {
            at: Duration::from_millis(at_ms),
            took: Duration::from_millis(10),
            ok,
        }
    }

    #[test]
    fn longest_failure_spans_from_the_first_failure_to_the_next_success() {
        let cases = [
            (vec![], 0),
            (vec![req(0, true), req(10, true)], 0),
            (
                vec![
                    req(0, true),
                    req(10, false),
                    req(500, false),
                    req(900, true),
                ],
                890,
            ),
            (
                vec![
                    req(0, false),
                    req(100, true),
                    req(200, false),
                    req(1200, true),
                ],
                1000,
            ),
            // Still failing at the end: up to the end of the last request.
            (vec![req(0, true), req(100, false), req(300, false)], 210),
        ];
        for (requests, want_ms) in cases {
            assert_eq!(
                longest_failure(&requests),
                Duration::from_millis(want_ms),
                "{requests:?}"
            );
        }
    }

    #[test]
    fn the_timeline_records_each_step_once() {
        let w = Watch {
            lost_node: "node-b".into(),
            lost_pod_prefix: "10.244.1.".into(),
            survivor: "a".into(),
            app: "web".into(),
            replicas: 1,
        };
        let node = |ready: &str| {
            json!({"metadata": {"name": "node-b"},
                   "status": {"conditions": [{"type": "Ready", "status": ready}]}})
        };
        let ep = |ip: &str| json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": ip}]}]});
        let pod = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "a"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        let mut t = Timeline::default();
        let s = Duration::from_secs;
        assert!(!t.observe(&w, &[node("True")], &[ep("10.244.1.5")], &[], s(1)));
        assert!(!t.observe(&w, &[node("Unknown")], &[ep("10.244.1.5")], &[], s(2)));
        assert!(!t.observe(&w, &[node("Unknown")], &[ep("10.244.0.5")], &[], s(3)));
        assert!(t.observe(&w, &[node("Unknown")], &[ep("10.244.0.5")], &[pod], s(4)));
        assert_eq!(t.not_ready, Some(s(2)));
        assert_eq!(t.endpoints_removed, Some(s(3)));
        assert_eq!(t.replaced, Some(s(4)));
    }
}
