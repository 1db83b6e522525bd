//! Logs across pods (issue 18): `kubectl logs -l SELECTOR --prefix -f` follows every matching
//! pod at once through the API server and the node, each line prefixed with its pod, and
//! `--max-log-requests` is honoured as kubectl enforces it.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Two pods that each print `tick N` five times a second.
const TICKERS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ticker
spec:
  replicas: 2
  selector:
    matchLabels: {app: ticker}
  template:
    metadata:
      labels: {app: ticker}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: tick
        image: busybox:test
        command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]
"#;

/// The pod name and tick of a prefixed line: `[pod/NAME/tick] tick N`.
fn parse(line: &str) -> Option<(String, u64)> {
    let rest = line.strip_prefix("[pod/")?;
    let (pod, rest) = rest.split_once('/')?;
    let n = rest.split_once("] tick ")?.1.trim().parse().ok()?;
    Some((pod.to_string(), n))
}

#[test]
fn logs_follow_every_pod_of_a_selector_with_prefixes_and_max_log_requests() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start();
    c.load_busybox("busybox:test");
    c.kubectl_in(&["apply", "-f", "-"], TICKERS);
    c.kubectl(&["rollout", "status", "deployment/ticker", "--timeout=120s"]);
    let pods = c.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=ticker",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert_eq!(pods.split_whitespace().count(), 2, "{pods}");

    // What each pod had printed before the follow began: a followed line past it is live.
    let before: HashMap<String, u64> =
        c.wait_for("a tick from both pods", Duration::from_secs(30), || {
            let out = c.kubectl(&["logs", "-l", "app=ticker", "--prefix", "--tail=1"]);
            let last: HashMap<String, u64> = out.lines().filter_map(parse).collect();
            (last.len() == 2).then_some(last)
        });

    let mut follow = c
        .kubectl_cmd(&[
            "logs",
            "-l",
            "app=ticker",
            "--prefix",
            "-f",
            "--tail=1",
            "--max-log-requests",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl logs -f");
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut live: HashMap<String, u64> = HashMap::new();
    let mut seen = Vec::new();
    while live.len() < 2 && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) else {
            continue;
        };
        if let Some((pod, n)) = parse(&line) {
            if before.get(&pod).is_some_and(|b| n > *b + 2) {
                live.insert(pod, n);
            }
        }
        seen.push(line);
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(
        live.len(),
        2,
        "both pods followed live; before: {before:?}, lines: {seen:?}\nserver log:\n{}",
        c.log_text()
    );

    // Following more pods than allowed is refused by kubectl before any request.
    let out = c.kubectl_output(
        &["logs", "-l", "app=ticker", "-f", "--max-log-requests", "1"],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "you are attempting to follow 2 log streams, but maximum allowed concurrency is 1"
        ),
        "{err}"
    );
}
