//! Hollow nodes, as kubemark's and kwok's: Nodes that exist as API objects only, kept alive by
//! renewing their Leases, with a fake kubelet that moves each pod bound to them to where a
//! real kubelet would take it (Running and Ready, or Succeeded when its containers are
//! one-shot). Benchmarks of the controllers use them so that the figures measure the control
//! plane, not runc and the pod network.

use std::collections::HashSet;
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::{Timestamp, Unit};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

/// What the fake kubelet does with a pod bound to a hollow node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodOutcome {
    /// Running and Ready, as long-running containers are once started.
    Ready,
    /// Every container exits 0: the pod is Succeeded (restartPolicy Never or OnFailure).
    Succeed,
}

/// The name of hollow node `i`.
pub fn node_name(i: usize) -> String {
    format!("sim-{i:03}")
}

/// Hollow node `i`: large allocatable, Ready, labelled `type=simulated`.
pub fn node(i: usize) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node_name(i), "labels": {"type": "simulated"}},
        "status": {
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
        }
    }))
    .expect("node")
}

/// Creates hollow nodes `0..n` and keeps them alive (see [`renew_leases`]) for as long as the
/// returned task runs.
pub async fn start_nodes(client: &kube::Client, n: usize) -> tokio::task::JoinHandle<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..n {
        nodes
            .create(&PostParams::default(), &node(i))
            .await
            .expect("create node");
    }
    renew_leases(client.clone(), n)
}

/// Renews the Leases of hollow nodes `0..n` every 2 s (skiff's agent interval), so the node
/// lifecycle controller keeps them Ready (and their pods) while the task runs.
pub fn renew_leases(client: kube::Client, n: usize) -> tokio::task::JoinHandle<()> {
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    tokio::spawn(async move {
        loop {
            for i in 0..n {
                let renew = json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": node_name(i)},
                    "spec": {"holderIdentity": node_name(i), "leaseDurationSeconds": 40,
                        "renewTime": MicroTime(now())}
                });
                let _ = leases
                    .patch(
                        &node_name(i),
                        &PatchParams::apply("hollow-kubelet").force(),
                        &Patch::Apply(&renew),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    })
}

fn now() -> Timestamp {
    Timestamp::now()
}

/// The status a kubelet would post for `pod` once it reached `outcome`.
fn status(pod: &Pod, outcome: PodOutcome) -> serde_json::Value {
    let now = Time(now().round(Unit::Second).unwrap_or_else(|_| now()));
    let containers: Vec<_> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().collect())
        .unwrap_or_default();
    let state = match outcome {
        PodOutcome::Ready => json!({"running": {"startedAt": now}}),
        PodOutcome::Succeed => json!({"terminated": {"exitCode": 0, "reason": "Completed",
            "startedAt": now, "finishedAt": now}}),
    };
    let statuses: Vec<_> = containers
        .iter()
        .map(|c| {
            json!({"name": c.name, "image": c.image, "imageID": "", "restartCount": 0,
                "ready": outcome == PodOutcome::Ready, "state": state})
        })
        .collect();
    let (phase, ready) = match outcome {
        PodOutcome::Ready => ("Running", "True"),
        PodOutcome::Succeed => ("Succeeded", "False"),
    };
    json!({"status": {"phase": phase, "startTime": now,
        "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": now}],
        "containerStatuses": statuses}})
}

/// A fake kubelet for every hollow node: each pod in `namespace` (all when `None`) bound to a
/// node named `sim-*` gets the status of `outcome` once, and a pod being deleted is removed at
/// once, as a kubelet does after its containers stop.
pub fn fake_kubelet(
    client: kube::Client,
    namespace: Option<&str>,
    selector: Option<&str>,
    outcome: PodOutcome,
) -> tokio::task::JoinHandle<()> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut config = watcher::Config::default();
    if let Some(s) = selector {
        config = config.labels(s);
    }
    tokio::spawn(async move {
        let stream = watcher::watcher(api, config);
        futures::pin_mut!(stream);
        let mut done: HashSet<String> = HashSet::new();
        while let Ok(Some(event)) = stream.try_next().await {
            let (Event::Apply(p) | Event::InitApply(p)) = event else {
                continue;
            };
            let on_hollow = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| n.starts_with("sim-"));
            let (Some(name), Some(ns)) = (p.metadata.name.clone(), p.metadata.namespace.clone())
            else {
                continue;
            };
            if !on_hollow {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            if p.metadata.deletion_timestamp.is_some() {
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
                continue;
            }
            let key = format!("{ns}/{name}/{}", p.metadata.uid.as_deref().unwrap_or(""));
            if done.contains(&key) {
                continue;
            }
            let patched = api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&status(&p, outcome)),
                )
                .await;
            if patched.is_ok() {
                done.insert(key);
            }
        }
    })
}
