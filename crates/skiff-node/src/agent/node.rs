//! The Node object (capacity, addresses, nodeInfo, Ready) and its Lease heartbeat.

use super::{AgentError, Shared};
use chrono::Utc;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher};
use serde_json::{json, Value};
use skiff_reconcile::{Backoff, Config, Harness, ObjectKey, Outcome};
use std::time::Duration;

/// How often the Ready condition's heartbeat is refreshed when nothing changed (the
/// kubelet's `nodeStatusReportFrequency`, 5 min upstream; the Lease is the liveness signal).
const STATUS_REFRESH: Duration = Duration::from_secs(60);

/// How often the Lease is renewed: a quarter of its duration, as the kubelet's
/// `renewInterval` (10 s for upstream's 40 s, 2 s for skiff's 8 s).
pub fn lease_renew_interval(lease_duration: Duration) -> Duration {
    (lease_duration / 4).max(Duration::from_millis(100))
}

/// Whether the Node as the API holds it needs this agent's status posted now, before the
/// periodic refresh: the node lifecycle controller marked it Unknown (or anything else made
/// Ready not True), as the kubelet posts at once when its conditions differ from the API's.
pub(crate) fn status_needs_posting(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    ready.is_none_or(|c| c.status != "True")
}

/// The address other components reach this host on: the source address of the default
/// route, or loopback on a host without one.
pub fn node_ip() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("10.255.255.255:9")?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .ok()
        .filter(|ip| ip != "0.0.0.0")
        .unwrap_or_else(|| "127.0.0.1".into())
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn memory_kib() -> u64 {
    read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn disk_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return 0;
        }
        s.f_blocks as u64 * s.f_frsize as u64
    }
}

fn os_image() -> String {
    read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The Node as this agent registers it (pure but for reading host facts).
pub(crate) fn node_object(shared: &Shared) -> Value {
    let name = &shared.cfg.node_name;
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch(),
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch(),
            },
        },
        "spec": {"podCIDR": shared.cfg.pod_cidr, "podCIDRs": [shared.cfg.pod_cidr]},
    })
}

fn node_status(shared: &Shared, port: u16) -> Value {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let resources = json!({
        "cpu": cpus.to_string(),
        "memory": format!("{}Ki", memory_kib()),
        "ephemeral-storage": format!("{}", disk_bytes(&shared.cfg.data_dir)),
        "pods": "110",
        "hugepages-2Mi": "0",
    });
    let runc_version = std::process::Command::new("runc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().last().map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".into());
    let machine_id = read("/etc/machine-id");
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "capacity": resources,
        "allocatable": resources,
        "addresses": [
            {"type": "InternalIP", "address": shared.node_ip},
            {"type": "Hostname", "address": shared.cfg.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": machine_id,
            "systemUUID": machine_id,
            "bootID": read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": read("/proc/sys/kernel/osrelease"),
            "osImage": os_image(),
            "containerRuntimeVersion": format!("runc://{runc_version}"),
            "kubeletVersion": "v1.33.0",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": arch(),
        },
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                      "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure",
                      "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID",
                      "kubelet has sufficient PID available"),
            if shared.shutdown.started() {
                // The kubelet's Ready setter with the shutdown manager's error.
                condition("Ready", "False", "KubeletNotReady", super::shutdown::NODE_MESSAGE)
            } else {
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
            },
        ],
    })
}

/// Creates the Node if missing and writes its status (Ready).
pub(crate) async fn register(shared: &Shared, port: u16) -> Result<(), AgentError> {
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let name = &shared.cfg.node_name;
    let api_err = |what: &str| {
        let what = what.to_string();
        move |source| AgentError::Api { what, source }
    };
    let obj: Node = serde_json::from_value(node_object(shared)).expect("node object is a Node");
    match nodes.create(&PostParams::default(), &obj).await {
        Ok(_) => tracing::info!(node = %name, "node registered"),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = node_object(shared);
            nodes
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api_err("updating the node"))?;
        }
        Err(e) => return Err(api_err("registering the node")(e)),
    }
    let mut status = node_status(shared, port);
    let current = nodes.get(name).await.map_err(api_err("reading the node"))?;
    keep_transition_times(
        &mut status,
        &serde_json::to_value(&current).unwrap_or_default(),
    );
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .map_err(api_err("writing node status"))?;
    renew_lease(shared, current.metadata.uid.as_deref())
        .await
        .map_err(api_err("creating the node lease"))?;
    Ok(())
}

/// Conditions whose status did not change keep their `lastTransitionTime`.
fn keep_transition_times(status: &mut Value, current: &Value) {
    let Some(conditions) = status["conditions"].as_array_mut() else {
        return;
    };
    for c in conditions {
        let old = current["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|o| o["type"] == c["type"]));
        if let Some(old) = old.filter(|o| o["status"] == c["status"]) {
            if old["lastTransitionTime"].is_string() {
                c["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
        }
    }
}

/// Renews the node's Lease in `kube-node-lease` (created, owned by the Node, when missing).
/// One PATCH per renewal; the create path runs only for a new or deleted Lease.
async fn renew_lease(shared: &Shared, node_uid: Option<&str>) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), "kube-node-lease");
    let name = &shared.cfg.node_name;
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let duration = shared.cfg.lease_duration.as_secs().max(1);
    let renewed = leases
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": now,
            }})),
        )
        .await;
    match renewed {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let mut lease = json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": duration,
                         "renewTime": now},
            });
            if let Some(uid) = node_uid {
                lease["metadata"]["ownerReferences"] =
                    json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]);
            }
            let obj: Lease = serde_json::from_value(lease).expect("lease object is a Lease");
            match leases.create(&PostParams::default(), &obj).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// The node status loop's name on the reconcile harness (its workqueue metrics' `name`).
pub(crate) const STATUS_CONTROLLER: &str = "node-status";

/// What the node status loop works on.
struct StatusCtx {
    shared: std::sync::Arc<Shared>,
    port: u16,
    /// This node's Node as the API holds it (a watch of it alone), so a heartbeat reads
    /// nothing from the API.
    node: reflector::Store<Node>,
    /// When the status was last posted.
    posted: std::sync::Mutex<tokio::time::Instant>,
}

/// Runs the node's status loop on the reconcile harness: one key, the node's name,
/// synced every quarter of the Lease's duration (2 s by default) and at once when the
/// API's Node stops being Ready (the node lifecycle controller marked it Unknown while this
/// agent was away). Each sync renews the Lease, or posts the Node status when a minute has
/// passed, the Node is not Ready or it is gone (registered again). A failed sync is
/// retried with back-off within the renew interval.
pub(crate) async fn heartbeat(shared: std::sync::Arc<Shared>, port: u16) {
    let renew = lease_renew_interval(shared.cfg.lease_duration);
    let name = shared.cfg.node_name.clone();
    let key = ObjectKey::named(&name);
    let mut controller = Harness::new(STATUS_CONTROLLER, shared.client.clone())
        .config(Config {
            workers: 1,
            resync: None,
            backoff: Backoff {
                base: Duration::from_millis(100),
                max: renew,
                jitter: 0.1,
            },
        })
        .metrics(&super::metrics::workqueue())
        .keys()
        .key(key.clone());
    let own = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let node = controller.cache_with::<Node>(own.clone());
    let controller = controller.watches_with::<Node, _>(own, move |n: &Node| {
        status_needs_posting(n).then(|| key.clone())
    });
    let ctx = std::sync::Arc::new(StatusCtx {
        shared,
        port,
        node,
        posted: std::sync::Mutex::new(tokio::time::Instant::now()),
    });
    controller
        .run_keys(move |_, ctx| beat(ctx, renew), ctx)
        .await;
}

/// One heartbeat: the Lease renewed, or the status posted (which renews the Lease too).
async fn beat(ctx: std::sync::Arc<StatusCtx>, renew: Duration) -> Result<Outcome, AgentError> {
    let shared = &ctx.shared;
    let node = ctx
        .node
        .get(&reflector::ObjectRef::new(&shared.cfg.node_name));
    let post = {
        let posted = ctx.posted.lock().unwrap_or_else(|e| e.into_inner());
        match &node {
            None => true,
            Some(node) => status_needs_posting(node) || posted.elapsed() >= STATUS_REFRESH,
        }
    };
    if post {
        register(shared, ctx.port).await?;
        *ctx.posted.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now();
    } else {
        let uid = node.as_ref().and_then(|n| n.metadata.uid.as_deref());
        renew_lease(shared, uid)
            .await
            .map_err(|source| AgentError::Api {
                what: "renewing the node lease".into(),
                source,
            })?;
    }
    Ok(Outcome::RequeueAfter(renew))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_renewed_every_quarter_of_its_duration() {
        assert_eq!(
            lease_renew_interval(Duration::from_secs(40)),
            Duration::from_secs(10)
        );
        assert_eq!(
            lease_renew_interval(Duration::from_secs(8)),
            Duration::from_secs(2)
        );
        assert_eq!(
            lease_renew_interval(Duration::ZERO),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn status_is_posted_at_once_when_the_api_says_not_ready() {
        let node = |conditions: Value| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n"},
                "status": {"conditions": conditions}}))
            .unwrap()
        };
        let cases = [
            ("ready", json!([{"type": "Ready", "status": "True"}]), false),
            (
                "marked unknown by the controller",
                json!([{"type": "Ready", "status": "Unknown"}]),
                true,
            ),
            (
                "not ready",
                json!([{"type": "Ready", "status": "False"}]),
                true,
            ),
            ("no ready condition", json!([]), true),
        ];
        for (name, conditions, want) in cases {
            assert_eq!(status_needs_posting(&node(conditions)), want, "{name}");
        }
    }

    #[test]
    fn refreshed_conditions_keep_their_transition_time_unless_status_changed() {
        let current = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "DiskPressure", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]}});
        let mut status = json!({"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-02-02T00:00:00Z"},
            {"type": "DiskPressure", "status": "False", "lastTransitionTime": "2026-02-02T00:00:00Z"}
        ]});
        keep_transition_times(&mut status, &current);
        assert_eq!(
            status["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            status["conditions"][1]["lastTransitionTime"],
            "2026-02-02T00:00:00Z"
        );
    }
}
