//! End to end: the service load balancer on two nodes (a server and `skiff agent` in
//! network namespaces of their own). A LoadBalancer Service's status lists both nodes'
//! addresses, as k3s's servicelb lists every node running the balancer, and stays put while
//! both nodes run it (no node overwrites the other's write); a node lost to a power cut
//! leaves the list once it is NotReady (root only; under `CI` a missing prerequisite fails
//! the test).

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::time::{Duration, Instant};

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: front
spec:
  type: LoadBalancer
  selector: {app: front}
  ports:
  - port: 8081
"#;

/// The Service's ingress addresses and its resourceVersion.
fn status(c: &node::NodeCluster) -> (Vec<String>, String) {
    let svc = c.json(&["get", "svc", "front"]);
    let ips = svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str().map(String::from))
        .collect();
    let rv = svc["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (ips, rv)
}

#[test]
fn load_balancer_status_lists_every_ready_node_and_stays_put() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start_listening("0.0.0.0:0");
    let mut b = node::AgentNode::join(&c, "node-b", "10.244.1.0/24");
    c.kubectl_in(&["apply", "-f", "-"], SERVICE);
    let both = vec![node::NODE_IP.to_string(), node::AGENT_IP.to_string()];
    let (_, rv) = c.wait_for(
        "the status to list both nodes",
        Duration::from_secs(30),
        || {
            let (ips, rv) = status(&c);
            (ips == both).then_some((ips, rv))
        },
    );

    // Both nodes' controllers keep running (and see Node heartbeats): none writes again.
    // An observation window, not a wait: any write within it is the bug.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let (ips, now) = status(&c);
        assert_eq!(
            (&ips, &now),
            (&both, &rv),
            "the status changed while both nodes ran\nserver log:\n{}\nagent log:\n{}",
            c.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // A lost node stops being advertised once it is NotReady.
    b.power_off();
    c.wait_for(
        "the lost node to leave the status",
        Duration::from_secs(40),
        || (status(&c).0 == [node::NODE_IP.to_string()]).then_some(()),
    );
}
