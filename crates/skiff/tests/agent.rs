//! End to end: `skiff agent` joins a server as a second node from another "host" (a network
//! namespace of its own on a shared link), runs pods, serves their logs, and shares
//! Services and DNS with the first node (root only; skipped with a message otherwise).

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::collections::BTreeSet;
use std::time::Duration;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web-a
  labels:
    app: hello
spec:
  nodeName: NODE_A
  containers:
  - name: web
    image: busybox:test
    command: ["sh", "-c", "hostname > /www/index.html; echo serving; exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Pod
metadata:
  name: web-b
  labels:
    app: hello
spec:
  nodeName: node-b
  containers:
  - name: web
    image: busybox:test
    command: ["sh", "-c", "hostname > /www/index.html; echo serving; exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  selector:
    app: hello
  ports:
  - port: 80
    targetPort: 8080
"#;

#[test]
fn an_agent_on_another_host_runs_pods_and_shares_services() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start_listening("0.0.0.0:0");
    let node_a = c.node_name();
    let b = node::AgentNode::join(&c, "node-b", "10.244.1.0/24");
    c.load_busybox("busybox:test");
    b.load_busybox("busybox:test");

    let node_b = c.wait_for("node-b to be Ready", Duration::from_secs(20), || {
        let n = c.json(&["get", "node", "node-b"]);
        let ready = n["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then_some(n)
    });
    assert_eq!(node_b["spec"]["podCIDR"], "10.244.1.0/24", "{node_b:#}");
    let addresses = node_b["status"]["addresses"].to_string();
    assert!(addresses.contains(node::AGENT_IP), "{addresses}");
    let leases = c.kubectl(&["get", "leases", "-n", "kube-node-lease"]);
    assert!(leases.contains("node-b"), "{leases}");

    c.kubectl_in(&["apply", "-f", "-"], &PODS.replace("NODE_A", &node_a));
    c.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/web-a",
        "pod/web-b",
        "--timeout=60s",
    ]);
    let ip_b = c.kubectl(&["get", "pod", "web-b", "-o", "jsonpath={.status.podIP}"]);
    assert!(ip_b.starts_with("10.244.1."), "{ip_b}");
    // Logs come from the agent's own log endpoint, through the API server.
    let logs = c.wait_logs("web-b", "serving", Duration::from_secs(10));
    assert!(logs.contains("serving"), "{logs}");

    // The first node reaches the second node's pod directly (a route via node-b) ...
    let body = c.wait_for("node-b's pod from node A", Duration::from_secs(10), || {
        c.http_get(&ip_b, 8080, "/")
    });
    assert_eq!(body.trim(), "web-b");
    // ... and through the Service, which balances over both nodes.
    let cluster_ip = c.kubectl(&["get", "svc", "hello", "-o", "jsonpath={.spec.clusterIP}"]);
    let seen = c.wait_for(
        "both pods behind the Service",
        Duration::from_secs(10),
        || {
            let seen: BTreeSet<String> = (0..30)
                .filter_map(|_| c.http_get(&cluster_ip, 80, "/"))
                .map(|b| b.trim().to_string())
                .collect();
            (seen.len() == 2).then_some(seen)
        },
    );
    assert_eq!(
        seen,
        BTreeSet::from(["web-a".to_string(), "web-b".to_string()])
    );

    // A pod on node-b finds the Service by name (DNS served by either node) and reaches
    // pods on both nodes.
    c.kubectl_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: client-b
spec:
  nodeName: node-b
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:test
    command: ["sh", "-c", "ip=$(busybox nslookup hello.default.svc.cluster.local | sed -n 's/^Address: *//p' | tail -1); echo \"hello is $ip\"; for i in $(seq 1 30); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 $ip 80 | tail -1; done; echo DONE"]
"#,
    );
    let logs = c.wait_logs("client-b", "DONE", Duration::from_secs(60));
    assert!(logs.contains(&format!("hello is {cluster_ip}")), "{logs}");
    assert!(
        logs.contains("web-a") && logs.contains("web-b"),
        "a pod on node-b should reach pods on both nodes:\n{logs}\nagent log:\n{}",
        b.log_text()
    );
    // The API itself is a Service too: listening everywhere, its endpoint is the node.
    let api = c.kubectl(&[
        "get",
        "endpoints",
        "kubernetes",
        "-o",
        "jsonpath={.subsets[0].addresses[0].ip}",
    ]);
    assert_eq!(api, node::NODE_IP);
    let dns = c.kubectl(&[
        "get",
        "endpoints",
        "kube-dns",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.subsets[0].addresses[*].nodeName}",
    ]);
    assert!(
        dns.contains(&node_a) && dns.contains("node-b"),
        "every node serves DNS: {dns}"
    );
}
