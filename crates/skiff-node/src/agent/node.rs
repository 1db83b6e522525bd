//! The Node object (capacity, addresses, nodeInfo, Ready) and its Lease heartbeat.

use super::{AgentError, Shared};
use chrono::Utc;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::time::Duration;

/// How often the Lease is renewed (the kubelet's default).
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How often the Ready condition's heartbeat is refreshed.
const STATUS_REFRESH: Duration = Duration::from_secs(60);

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
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
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
    renew_lease(shared)
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

async fn renew_lease(shared: &Shared) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), "kube-node-lease");
    let name = &shared.cfg.node_name;
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let node_uid = Api::<Node>::all(shared.client.clone())
        .get(name)
        .await
        .ok()
        .and_then(|n| n.metadata.uid);
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now},
    });
    if let Some(uid) = node_uid {
        lease["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]);
    }
    match leases.get_opt(name).await? {
        None => {
            let obj: Lease = serde_json::from_value(lease).expect("lease object is a Lease");
            leases.create(&PostParams::default(), &obj).await?;
        }
        Some(_) => {
            leases
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"holderIdentity": name, "renewTime": now}})),
                )
                .await?;
        }
    }
    Ok(())
}

/// Renews the Lease every 10 s and refreshes the Node status every minute (re-registering
/// the Node if it was deleted).
pub(crate) async fn heartbeat(shared: std::sync::Arc<Shared>, port: u16) {
    let mut since_status = Duration::ZERO;
    loop {
        tokio::time::sleep(LEASE_RENEW).await;
        since_status += LEASE_RENEW;
        if let Err(e) = renew_lease(&shared).await {
            tracing::warn!(node = %shared.cfg.node_name, error = %e, "renewing the node lease");
        }
        if since_status >= STATUS_REFRESH {
            since_status = Duration::ZERO;
            if let Err(e) = register(&shared, port).await {
                tracing::warn!(node = %shared.cfg.node_name, error = %e, "refreshing node status");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
