//! The kubelet's metrics endpoints on the node port (decision 0033), named and labelled as
//! the kubelet and its embedded cAdvisor serve them, so the standard Prometheus
//! configuration and dashboards read them:
//!
//! - `/metrics`: `kubelet_running_pods`, `kubelet_running_containers{container_state}`,
//!   `kubelet_pod_start_duration_seconds`, and the node's other components (the service
//!   proxy, cluster DNS and the Gateway data plane register into [`registry`]);
//! - `/metrics/cadvisor`: per container `container_cpu_usage_seconds_total`,
//!   `container_memory_working_set_bytes`, `container_memory_usage_bytes`,
//!   `container_start_time_seconds`, and per pod `container_network_receive_bytes_total` /
//!   `container_network_transmit_bytes_total` (and packets), labelled `container`, `id`,
//!   `image`, `name`, `namespace`, `pod` as cAdvisor's;
//! - `/metrics/probes`: `prober_probe_total{probe_type, result, container, pod, namespace,
//!   pod_uid}`.
//!
//! cAdvisor figures are read from the cgroups and the pods' veths at each scrape (as
//! `/stats/summary`, `runtime/stats.rs`): there is no sampling loop on the node. The
//! registry is the process's kubelet registry, as the kubelet's `legacyregistry`: one node
//! agent per process.

use super::summary;
use super::Shared;
use crate::runtime::ContainerState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry as Families;
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// The kubelet's `kubelet_pod_start_duration_seconds` buckets.
const POD_START_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    container_state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    probe_type: &'static str,
    result: &'static str,
    container: String,
    pod: String,
    namespace: String,
    pod_uid: String,
}

/// The node's kubelet metrics.
struct NodeMetrics {
    registry: skiff_metrics::Registry,
    probes: skiff_metrics::Registry,
    running_pods: Gauge,
    running_containers: Family<StateLabel, Gauge>,
    pod_start: Histogram,
    probe_total: Family<ProbeLabels, Counter>,
    /// The node's loops on the reconcile harness: upstream's workqueue metrics.
    workqueue: skiff_reconcile::Metrics,
}

fn node() -> &'static NodeMetrics {
    static NODE: OnceLock<NodeMetrics> = OnceLock::new();
    NODE.get_or_init(|| {
        let registry = skiff_metrics::Registry::new();
        let m = NodeMetrics {
            workqueue: skiff_reconcile::Metrics::with_registry(&registry),
            registry,
            probes: skiff_metrics::Registry::new(),
            running_pods: Gauge::default(),
            running_containers: Family::default(),
            pod_start: Histogram::new(POD_START_BUCKETS),
            probe_total: Family::default(),
        };
        m.registry.register(|r| {
            r.register(
                "kubelet_running_pods",
                "Number of pods that have a running pod sandbox",
                m.running_pods.clone(),
            );
            r.register(
                "kubelet_running_containers",
                "Number of containers currently running",
                m.running_containers.clone(),
            );
            r.register(
                "kubelet_pod_start_duration_seconds",
                "Duration in seconds from kubelet seeing a pod for the first time to the pod \
                 starting to run",
                m.pod_start.clone(),
            );
        });
        m.probes.register(|r| {
            r.register(
                "prober_probe",
                "Cumulative number of a liveness, readiness or startup probe for a container \
                 by result.",
                m.probe_total.clone(),
            )
        });
        m
    })
}

/// The registry `/metrics` serves, for the node's other components to register into.
pub fn registry() -> skiff_metrics::Registry {
    node().registry.clone()
}

/// The workqueue metrics of the node's loops (pod workers, node status, volume refresh),
/// served on the node port's `/metrics` with a `name` label per loop.
pub(crate) fn workqueue() -> skiff_reconcile::Metrics {
    node().workqueue.clone()
}

/// Records one probe run (`result` as the kubelet's prober: `successful`, `failed`, or
/// `unknown` when the probe could not be run).
pub(crate) fn probe(
    kind: super::probes::Kind,
    outcome: &super::probes::Outcome,
    pod: &k8s_openapi::api::core::v1::Pod,
    container: &str,
) {
    use super::probes::Outcome;
    let meta = &pod.metadata;
    node()
        .probe_total
        .get_or_create(&ProbeLabels {
            probe_type: kind.label(),
            result: match outcome {
                Outcome::Success => "successful",
                Outcome::Failure(_) => "failed",
                Outcome::Error(_) => "unknown",
            },
            container: container.to_owned(),
            pod: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            pod_uid: meta.uid.clone().unwrap_or_default(),
        })
        .inc();
}

/// Records a pod that started running `took` after the agent first saw it.
pub(crate) fn pod_started(took: Duration) {
    node().pod_start.observe(took.as_secs_f64());
}

/// The routes, merged into the node port's router.
pub(crate) fn routes() -> axum::Router<Arc<Shared>> {
    axum::Router::new()
        .route("/metrics", axum::routing::get(kubelet))
        .route("/metrics/cadvisor", axum::routing::get(cadvisor))
        .route("/metrics/probes", axum::routing::get(probes))
}

fn text(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, skiff_metrics::CONTENT_TYPE)],
        body,
    )
        .into_response()
}

fn failed(e: impl std::fmt::Display) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

async fn kubelet(State(shared): State<Arc<Shared>>) -> Response {
    let count = move || shared.runtime.list().map(|all| running(&all));
    match tokio::task::spawn_blocking(count).await {
        Ok(Ok((pods, containers))) => {
            let m = node();
            m.running_pods.set(pods);
            m.running_containers
                .get_or_create(&StateLabel {
                    container_state: "running",
                })
                .set(containers);
            text(m.registry.encode())
        }
        Ok(Err(e)) => failed(e),
        Err(e) => failed(e),
    }
}

/// Pods with a running container, and running containers.
fn running(all: &[crate::runtime::ContainerStatus]) -> (i64, i64) {
    let running: Vec<_> = all
        .iter()
        .filter(|s| s.state == ContainerState::Running)
        .collect();
    let pods: BTreeSet<&str> = running
        .iter()
        .filter_map(|s| Some(s.spec.as_ref()?.sandbox.id.as_str()))
        .collect();
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    (count(pods.len()), count(running.len()))
}

async fn probes() -> Response {
    text(node().probes.encode())
}

/// One running container, as cAdvisor labels it.
#[derive(Debug, Clone, PartialEq)]
pub struct CadvisorContainer {
    /// Its reading (pod, namespace, container, usage, start).
    pub reading: summary::ContainerReading,
    /// The runtime's id (cAdvisor's `name`).
    pub id: String,
    /// Its cgroup (cAdvisor's `id`).
    pub cgroup: String,
    /// The image as the spec names it.
    pub image: String,
}

/// One pod's network counters, from its veth's host end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The sandbox id (cAdvisor's `name` for the pod-level series).
    pub sandbox: String,
    /// Bytes the pod received.
    pub rx_bytes: u64,
    /// Bytes the pod sent.
    pub tx_bytes: u64,
    /// Packets the pod received.
    pub rx_packets: u64,
    /// Packets the pod sent.
    pub tx_packets: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    container: String,
    id: String,
    image: String,
    name: String,
    namespace: String,
    pod: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NetworkLabels {
    container: String,
    id: String,
    image: String,
    interface: &'static str,
    name: String,
    namespace: String,
    pod: String,
}

/// The `/metrics/cadvisor` text for these readings (pure: the handler reads, this renders).
pub fn cadvisor_text(containers: &[CadvisorContainer], networks: &[PodNetwork]) -> String {
    let cpu = Family::<ContainerLabels, FloatCounter>::default();
    let working_set = Family::<ContainerLabels, Gauge>::default();
    let usage = Family::<ContainerLabels, Gauge>::default();
    let start = Family::<ContainerLabels, FloatGauge>::default();
    let bytes = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for c in containers {
        let r = &c.reading;
        let labels = ContainerLabels {
            container: r.container.clone(),
            id: c.cgroup.clone(),
            image: c.image.clone(),
            name: c.id.clone(),
            namespace: r.namespace.clone(),
            pod: r.pod.clone(),
        };
        // Nanoseconds to seconds; f64 keeps microsecond precision for years of CPU time.
        cpu.get_or_create(&labels)
            .inc_by(r.usage.cpu_ns as f64 / 1e9);
        working_set
            .get_or_create(&labels)
            .set(bytes(r.usage.working_set));
        usage
            .get_or_create(&labels)
            .set(bytes(r.usage.memory_usage));
        start
            .get_or_create(&labels)
            .set(r.started_at.timestamp_millis() as f64 / 1e3);
    }
    let rx = Family::<NetworkLabels, Counter>::default();
    let tx = Family::<NetworkLabels, Counter>::default();
    let rx_packets = Family::<NetworkLabels, Counter>::default();
    let tx_packets = Family::<NetworkLabels, Counter>::default();
    for n in networks {
        let labels = NetworkLabels {
            container: String::new(),
            id: String::new(),
            image: String::new(),
            interface: "eth0",
            name: n.sandbox.clone(),
            namespace: n.namespace.clone(),
            pod: n.pod.clone(),
        };
        rx.get_or_create(&labels).inc_by(n.rx_bytes);
        tx.get_or_create(&labels).inc_by(n.tx_bytes);
        rx_packets.get_or_create(&labels).inc_by(n.rx_packets);
        tx_packets.get_or_create(&labels).inc_by(n.tx_packets);
    }
    let mut r = Families::default();
    r.register(
        "container_cpu_usage_seconds",
        "Cumulative cpu time consumed in seconds.",
        cpu,
    );
    r.register(
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        working_set,
    );
    r.register(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was \
         accessed",
        usage,
    );
    r.register(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        start,
    );
    r.register(
        "container_network_receive_bytes",
        "Cumulative count of bytes received",
        rx,
    );
    r.register(
        "container_network_transmit_bytes",
        "Cumulative count of bytes transmitted",
        tx,
    );
    r.register(
        "container_network_receive_packets",
        "Cumulative count of packets received",
        rx_packets,
    );
    r.register(
        "container_network_transmit_packets",
        "Cumulative count of packets transmitted",
        tx_packets,
    );
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &r);
    out
}

/// A counter of a network interface (`/sys/class/net/<dev>/statistics/<name>`).
fn net_stat(dev: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/statistics/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

async fn cadvisor(State(shared): State<Arc<Shared>>) -> Response {
    let read = move || -> Result<String, String> {
        let statuses = shared.runtime.list().map_err(|e| e.to_string())?;
        let parent = &shared.cfg.cgroup_parent;
        let containers: Vec<CadvisorContainer> = statuses
            .iter()
            .filter_map(|s| {
                let reading = summary::reading(s, parent)?;
                Some(CadvisorContainer {
                    reading,
                    id: s.id.clone(),
                    cgroup: crate::runtime::cgroups_path(parent, &s.id),
                    image: s.spec.as_ref().map(|x| x.image.clone()).unwrap_or_default(),
                })
            })
            .collect();
        let running: BTreeSet<(&str, &str)> = containers
            .iter()
            .map(|c| (c.reading.namespace.as_str(), c.reading.pod.as_str()))
            .collect();
        // The host end of a pod's veth counts the other way round: what it transmits,
        // the pod receives.
        let networks: Vec<PodNetwork> = shared
            .sandboxes
            .list()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|s| running.contains(&(s.spec.namespace.as_str(), s.spec.name.as_str())))
            .filter_map(|s| {
                let veth = s.network.as_ref()?.host_veth.clone();
                Some(PodNetwork {
                    namespace: s.spec.namespace.clone(),
                    pod: s.spec.name.clone(),
                    sandbox: s.spec.id.clone(),
                    rx_bytes: net_stat(&veth, "tx_bytes"),
                    tx_bytes: net_stat(&veth, "rx_bytes"),
                    rx_packets: net_stat(&veth, "tx_packets"),
                    tx_packets: net_stat(&veth, "rx_packets"),
                })
            })
            .collect();
        Ok(cadvisor_text(&containers, &networks))
    };
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(body)) => text(body),
        Ok(Err(e)) => failed(e),
        Err(e) => failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::stats::Usage;

    #[test]
    fn cadvisor_names_and_labels() {
        let c = CadvisorContainer {
            reading: summary::ContainerReading {
                namespace: "default".into(),
                pod: "collector-0".into(),
                uid: "u1".into(),
                container: "collector".into(),
                started_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                usage: Usage {
                    cpu_ns: 2_500_000_000,
                    memory_usage: 4096,
                    working_set: 1024,
                },
            },
            id: "abc".into(),
            cgroup: "/skiff/abc".into(),
            image: "collector:v2".into(),
        };
        let n = PodNetwork {
            namespace: "default".into(),
            pod: "collector-0".into(),
            sandbox: "s1".into(),
            rx_bytes: 100,
            tx_bytes: 200,
            rx_packets: 1,
            tx_packets: 2,
        };
        let out = cadvisor_text(&[c], &[n]);
        let labels = "container=\"collector\",id=\"/skiff/abc\",image=\"collector:v2\",name=\"abc\",namespace=\"default\",pod=\"collector-0\"";
        for line in [
            format!("container_cpu_usage_seconds_total{{{labels}}} 2.5"),
            format!("container_memory_working_set_bytes{{{labels}}} 1024"),
            format!("container_memory_usage_bytes{{{labels}}} 4096"),
            format!("container_start_time_seconds{{{labels}}} 1700000000.0"),
            "container_network_receive_bytes_total{container=\"\",id=\"\",image=\"\",interface=\"eth0\",name=\"s1\",namespace=\"default\",pod=\"collector-0\"} 100".into(),
            "container_network_transmit_bytes_total{container=\"\",id=\"\",image=\"\",interface=\"eth0\",name=\"s1\",namespace=\"default\",pod=\"collector-0\"} 200".into(),
        ] {
            assert!(out.contains(&line), "missing {line:?} in\n{out}");
        }
    }

    #[test]
    fn probe_results_by_type_and_result() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"}
        }))
        .unwrap();
        use super::super::probes::{Kind, Outcome};
        probe(Kind::Readiness, &Outcome::Success, &pod, "c");
        probe(Kind::Liveness, &Outcome::Failure("x".into()), &pod, "c");
        let out = node().probes.encode();
        for line in [
            "prober_probe_total{probe_type=\"Readiness\",result=\"successful\",container=\"c\",pod=\"p\",namespace=\"ns\",pod_uid=\"u\"} 1",
            "prober_probe_total{probe_type=\"Liveness\",result=\"failed\",container=\"c\",pod=\"p\",namespace=\"ns\",pod_uid=\"u\"} 1",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
    }
}
