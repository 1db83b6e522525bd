//! What graceful node shutdown (decision 0043) leaves behind, checked alike for
//! `skiff server`'s own node and a `skiff agent` node: the Node's Ready condition and the
//! pods it stopped.
#![allow(dead_code)]

use serde_json::Value;

use crate::node::NodeCluster;

/// The message of a pod stopped by the shutdown (upstream's `nodeShutdownMessage`).
pub const SHUTDOWN_MESSAGE: &str = "Pod was terminated in response to imminent node shutdown.";

/// A pod as stored now.
pub fn pod(c: &NodeCluster, ns: &str, name: &str) -> Value {
    c.json(&["get", "pod", "-n", ns, name])
}

/// The Ready condition of node `name`.
pub fn ready_condition(c: &NodeCluster, name: &str) -> Value {
    let n = c.json(&["get", "node", name]);
    n["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
        .unwrap_or_default()
}

/// Waits (within `timeout`) for node `name` to say it is shutting down, as the kubelet's
/// Ready setter does; returns the condition.
pub fn wait_shutting_down(c: &NodeCluster, name: &str, timeout: std::time::Duration) -> Value {
    let ready = c.wait_for("the node to say it is shutting down", timeout, || {
        let r = ready_condition(c, name);
        (r["status"] == "False").then_some(r)
    });
    assert_eq!(ready["reason"], "KubeletNotReady", "{ready}");
    assert_eq!(ready["message"], "node is shutting down", "{ready}");
    ready
}

/// Asserts that pod `name` (its JSON `p`) was stopped by the shutdown: Failed, reason
/// Terminated, DisruptionTarget True / TerminationByKubelet; returns its first container's
/// `terminated` state.
pub fn assert_stopped_by_shutdown(name: &str, p: &Value) -> Value {
    let s = &p["status"];
    assert_eq!(s["phase"], "Failed", "{name}: {s}");
    assert_eq!(s["reason"], "Terminated", "{name}: {s}");
    assert_eq!(s["message"], SHUTDOWN_MESSAGE, "{name}: {s}");
    let disruption = s["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionTarget"))
        .unwrap_or_else(|| panic!("{name}: no DisruptionTarget: {s}"));
    assert_eq!(disruption["status"], "True", "{name}: {s}");
    assert_eq!(disruption["reason"], "TerminationByKubelet", "{name}: {s}");
    assert_eq!(disruption["message"], SHUTDOWN_MESSAGE, "{name}: {s}");
    s["containerStatuses"][0]["state"]["terminated"].clone()
}
