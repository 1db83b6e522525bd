//! End to end: Prometheus discovery and scraping with a real scraper (decision 0033).
//! Debian's `victoria-metrics` (Debian's `prometheus` 2.42 has no Kubernetes discovery)
//! runs in the node's network namespace with the standard Prometheus Kubernetes example
//! jobs — the apiserver through the `kubernetes` Endpoints, every node's `/metrics` and
//! `/metrics/cadvisor` through the API server's node proxy, pods by their
//! `prometheus.io/*` annotations, and an annotated Service's endpoints (role endpointslice) and
//! the Service itself (role service) — authenticated as a ServiceAccount with Prometheus'
//! usual ClusterRole. The test then finds the collector's `collector_events_total` per pod,
//! the pods' `container_cpu_usage_seconds_total`, and `apiserver_request_total` growing
//! with kubectl calls.
//!
//! Needs root, runc, kubectl, victoria-metrics and the collector binary
//! (`cargo build -p collector`); under `CI=true` a missing one fails the test.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Where victoria-metrics answers, inside the node's network namespace.
const VM: &str = "127.0.0.1:8428";

const COLLECTOR: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: collector
spec:
  replicas: 2
  selector:
    matchLabels: {app: collector}
  template:
    metadata:
      labels: {app: collector}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "8080"
        prometheus.io/path: "/metrics"
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: collector
        image: collector:prom
        env:
        - {name: DATA_DIR, value: /data}
        ports:
        - containerPort: 8080
        volumeMounts:
        - {name: data, mountPath: /data}
      volumes:
      - name: data
        emptyDir: {}
---
apiVersion: v1
kind: Service
metadata:
  name: collector
  annotations:
    prometheus.io/scrape: "true"
spec:
  selector: {app: collector}
  ports:
  - {name: http, port: 8080}
"#;

/// Prometheus' usual in-cluster permissions (its Helm chart's ClusterRole).
const RBAC: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: prometheus
  namespace: default
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: prometheus
rules:
- apiGroups: [""]
  resources: [nodes, nodes/proxy, nodes/metrics, services, endpoints, pods]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- nonResourceURLs: [/metrics]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: prometheus
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: prometheus}
subjects:
- {kind: ServiceAccount, name: prometheus, namespace: default}
"#;

/// The standard Prometheus Kubernetes example jobs (prometheus/documentation/examples/
/// prometheus-kubernetes.yml), with the API server's address for `kubernetes.default.svc`
/// (the scraper runs beside the node, not in a pod) and `namespace`/`pod` target labels.
fn scrape_config(api: &str, ca: &Path, token: &Path) -> String {
    let (ca, token) = (ca.display(), token.display());
    let sd = |role: &str| {
        format!(
            "  kubernetes_sd_configs:\n  - role: {role}\n    api_server: https://{api}\n    \
             bearer_token_file: {token}\n    tls_config: {{ca_file: {ca}}}\n"
        )
    };
    let auth =
        format!("  scheme: https\n  tls_config: {{ca_file: {ca}}}\n  bearer_token_file: {token}\n");
    let node_job = |name: &str, path: &str| {
        format!(
            "- job_name: {name}\n{auth}{}  relabel_configs:\n  \
             - action: labelmap\n    regex: __meta_kubernetes_node_label_(.+)\n  \
             - target_label: __address__\n    replacement: {api}\n  \
             - source_labels: [__meta_kubernetes_node_name]\n    regex: (.+)\n    \
             target_label: __metrics_path__\n    replacement: /api/v1/nodes/${{1}}/proxy{path}\n",
            sd("node")
        )
    };
    format!(
        "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:\n\
         - job_name: kubernetes-apiservers\n{auth}{}  relabel_configs:\n  \
         - source_labels: [__meta_kubernetes_namespace, __meta_kubernetes_service_name, \
         __meta_kubernetes_endpoint_port_name]\n    action: keep\n    regex: default;kubernetes;https\n\
         {}{}\
         - job_name: kubernetes-pods\n{}  relabel_configs:\n  \
         - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]\n    action: keep\n    regex: true\n  \
         - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]\n    action: replace\n    \
         target_label: __metrics_path__\n    regex: (.+)\n  \
         - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]\n    \
         action: replace\n    regex: ([^:]+)(?::\\d+)?;(\\d+)\n    replacement: $1:$2\n    target_label: __address__\n  \
         - action: labelmap\n    regex: __meta_kubernetes_pod_label_(.+)\n  \
         - source_labels: [__meta_kubernetes_namespace]\n    action: replace\n    target_label: namespace\n  \
         - source_labels: [__meta_kubernetes_pod_name]\n    action: replace\n    target_label: pod\n\
         - job_name: kubernetes-service-endpoints\n{}  relabel_configs:\n  \
         - source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]\n    action: keep\n    regex: true\n  \
         - source_labels: [__meta_kubernetes_service_name]\n    target_label: service\n  \
         - source_labels: [__meta_kubernetes_pod_name]\n    target_label: pod\n\
         - job_name: kubernetes-services\n{}  relabel_configs:\n  \
         - source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]\n    action: keep\n    regex: true\n  \
         - source_labels: [__address__, __meta_kubernetes_service_cluster_ip]\n    \
         regex: '[^:]+:(\\d+);(.+)'\n    replacement: $2:$1\n    target_label: __address__\n  \
         - source_labels: [__meta_kubernetes_service_name]\n    target_label: service\n",
        sd("endpoints"),
        node_job("kubernetes-nodes", "/metrics"),
        node_job("kubernetes-cadvisor", "/metrics/cadvisor"),
        sd("pod"),
        sd("endpointslice"),
        // The service role's address is the Service's DNS name, which the scraper on the
        // node does not resolve; its job scrapes the cluster IP at the address's port.
        sd("service"),
    )
}

/// victoria-metrics, stopped (and waited for) on drop.
struct Scraper(Child);

impl Drop for Scraper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Percent-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The instant vector `query` gives: each series' labels and value.
fn query(c: &node::NodeCluster, q: &str) -> Vec<(serde_json::Value, f64)> {
    let (host, port) = VM.split_once(':').expect("host:port");
    let body = c
        .http_get(
            host,
            port.parse().expect("port"),
            &format!("/api/v1/query?query={}", encode(q)),
        )
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|s| {
                    let value = s["value"][1].as_str()?.parse().ok()?;
                    Some((s["metric"].clone(), value))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn prometheus_discovers_and_scrapes_pods_nodes_and_the_apiserver() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(collector) = node::node_and_binary_or_skip("collector") else {
        return;
    };
    if !on_path("victoria-metrics") {
        let why = "needs victoria-metrics (apt-get install victoria-metrics)";
        assert!(!ci, "CI=true and this test cannot run: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let c = node::NodeCluster::start();
    let node_name = c.node_name();
    c.load_image(&node::binary_image(&collector, "collector:prom"));

    // /metrics is authorized by nonResourceURLs: system:monitoring and cluster-admin may,
    // a user without a role may not.
    let own = c.kubectl(&["get", "--raw", "/metrics"]);
    assert!(own.contains("apiserver_request_total{"), "{own}");
    assert!(own.contains("workqueue_adds_total{name=\"deployment-controller\"}"));
    assert!(own.contains("scheduler_schedule_attempts_total{"));
    assert!(own.contains("etcd_disk_backend_commit_duration_seconds_bucket"));
    assert!(own.contains("skiff_store_wal_size_bytes"));
    let monitoring = c.kubectl(&[
        "get",
        "--raw",
        "/metrics",
        "--as=watcher",
        "--as-group=system:monitoring",
    ]);
    assert!(monitoring.contains("apiserver_request_duration_seconds_bucket"));
    let denied = c.kubectl_output(&["get", "--raw", "/metrics", "--as=alice"], None);
    let why = String::from_utf8_lossy(&denied.stderr);
    assert!(!denied.status.success(), "alice read /metrics");
    assert!(
        why.contains("Forbidden") || why.contains("forbidden"),
        "{why}"
    );

    c.kubectl_in(&["apply", "-f", "-"], RBAC);
    c.kubectl_in(&["apply", "-f", "-"], COLLECTOR);
    let token = c.kubectl(&["create", "token", "prometheus", "--duration=1h"]);
    let work = tempfile::tempdir().expect("temp dir");
    let token_file = work.path().join("token");
    std::fs::write(&token_file, token.trim()).expect("write token");
    let ca = c.dir.path().join("pki").join("ca.crt");
    let kubeconfig = std::fs::read_to_string(c.kubeconfig()).expect("kubeconfig");
    let api = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .expect("server in kubeconfig")
        .to_string();
    let config = work.path().join("prometheus.yml");
    std::fs::write(&config, scrape_config(&api, &ca, &token_file)).expect("write config");
    let check = c
        .in_netns("victoria-metrics")
        .arg(format!("-promscrape.config={}", config.display()))
        .arg("-promscrape.config.dryRun")
        .output()
        .expect("run victoria-metrics");
    assert!(
        check.status.success(),
        "config refused: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = std::fs::File::create(work.path().join("vm.log")).expect("log file");
    let _vm = Scraper(
        c.in_netns("victoria-metrics")
            .arg(format!("-promscrape.config={}", config.display()))
            .arg(format!(
                "-storageDataPath={}",
                work.path().join("data").display()
            ))
            .arg(format!("-httpListenAddr={VM}"))
            .arg("-search.latencyOffset=1s")
            .arg("-search.disableCache")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start victoria-metrics"),
    );
    let vm_log = || std::fs::read_to_string(work.path().join("vm.log")).unwrap_or_default();

    // Each collector pod gets an event, so its counter has a series.
    let pods: Vec<(String, String)> =
        c.wait_for("two running collectors", Duration::from_secs(60), || {
            let list = c.json(&["get", "pods", "-l", "app=collector"]);
            let running: Vec<(String, String)> = list["items"]
                .as_array()?
                .iter()
                .filter(|p| p["status"]["phase"] == "Running")
                .filter_map(|p| {
                    Some((
                        p["metadata"]["name"].as_str()?.to_string(),
                        p["status"]["podIP"].as_str()?.to_string(),
                    ))
                })
                .collect();
            (running.len() == 2).then_some(running)
        });
    for (_, ip) in &pods {
        c.wait_for(
            "the collector to take an event",
            Duration::from_secs(30),
            || {
                let out = c
                    .in_netns("curl")
                    .args(["-sf", "-X", "POST", "-H", "content-type: application/json"])
                    .args(["-d", r#"{"source":"prometheus-test","action":"scraped"}"#])
                    .arg(format!("http://{ip}:8080/events"))
                    .output()
                    .ok()?;
                out.status.success().then_some(())
            },
        );
    }

    // The collector's counter, per pod, through pod discovery and the annotations.
    let series = c.wait_for(
        "collector_events_total per pod in victoria-metrics",
        Duration::from_secs(90),
        || {
            let s = query(
                &c,
                "collector_events_total{job=\"kubernetes-pods\",source=\"prometheus-test\"}",
            );
            (s.len() == 2).then_some(s)
        },
    );
    let mut scraped: Vec<String> = series
        .iter()
        .map(|(m, _)| m["pod"].as_str().unwrap_or_default().to_string())
        .collect();
    scraped.sort();
    let mut want: Vec<String> = pods.iter().map(|(n, _)| n.clone()).collect();
    want.sort();
    assert_eq!(scraped, want, "{series:?}\n{}", vm_log());
    assert!(
        series
            .iter()
            .all(|(m, v)| *v == 1.0 && m["app"] == "collector"),
        "{series:?}"
    );

    // The same pods through the Service's EndpointSlice (role endpointslice, the Service's
    // annotation), and the Service itself (role service, its cluster IP and port).
    let sliced = c.wait_for(
        "collector_events_total per endpoint of the Service's slice",
        Duration::from_secs(90),
        || {
            let s = query(
                &c,
                "collector_events_total{job=\"kubernetes-service-endpoints\",source=\"prometheus-test\"}",
            );
            (s.len() == 2).then_some(s)
        },
    );
    let mut by_slice: Vec<String> = sliced
        .iter()
        .map(|(m, _)| m["pod"].as_str().unwrap_or_default().to_string())
        .collect();
    by_slice.sort();
    assert_eq!(by_slice, want, "{sliced:?}\n{}", vm_log());
    assert!(
        sliced.iter().all(|(m, _)| m["service"] == "collector"),
        "{sliced:?}"
    );
    let service = c.wait_for(
        "collector_events_total through the Service",
        Duration::from_secs(90),
        || {
            query(
                &c,
                "collector_events_total{job=\"kubernetes-services\",service=\"collector\"}",
            )
            .into_iter()
            .next()
        },
    );
    let cluster_ip = c.kubectl(&[
        "get",
        "service",
        "collector",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(
        service.0["instance"],
        format!("{}:8080", cluster_ip.trim()),
        "{service:?}"
    );

    // cAdvisor's CPU of those pods, from the node through the API server's proxy.
    let pod = &pods[0].0;
    let cpu = c.wait_for("the pod's container_cpu_usage_seconds_total", Duration::from_secs(60), || {
        let s = query(
            &c,
            &format!("container_cpu_usage_seconds_total{{job=\"kubernetes-cadvisor\",pod=\"{pod}\",container=\"collector\"}}"),
        );
        s.into_iter().next()
    });
    assert_eq!(cpu.0["namespace"], "default", "{cpu:?}");
    assert_eq!(cpu.0["image"], "collector:prom", "{cpu:?}");
    assert!(cpu.1 > 0.0, "{cpu:?}");
    let memory = query(
        &c,
        &format!("container_memory_working_set_bytes{{pod=\"{pod}\",container=\"collector\"}}"),
    );
    assert!(memory.first().is_some_and(|(_, v)| *v > 0.0), "{memory:?}");
    // The kubelet's own metrics, by the node job.
    let running = c.wait_for("kubelet_running_pods", Duration::from_secs(30), || {
        query(&c, "kubelet_running_pods{job=\"kubernetes-nodes\"}")
            .into_iter()
            .next()
    });
    assert!(running.1 >= 2.0, "{running:?}");
    assert_eq!(
        running.0["kubernetes_io_hostname"], node_name,
        "{running:?}"
    );

    // apiserver_request_total grows with kubectl calls.
    let total = || {
        query(
            &c,
            "sum(apiserver_request_total{job=\"kubernetes-apiservers\"})",
        )
    };
    let before = c.wait_for("apiserver_request_total", Duration::from_secs(60), || {
        total().first().map(|(_, v)| *v)
    });
    let calls = 25;
    for _ in 0..calls {
        c.kubectl(&["get", "pods", "-l", "app=collector", "-o", "name"]);
    }
    let after = c.wait_for(
        "apiserver_request_total to count the calls",
        Duration::from_secs(30),
        || {
            total()
                .first()
                .map(|(_, v)| *v)
                .filter(|v| *v >= before + f64::from(calls))
        },
    );
    eprintln!(
        "collector series {series:?}\ncpu {cpu:?}\napiserver_request_total {before} -> {after}"
    );
    let lists = query(
        &c,
        "apiserver_request_total{job=\"kubernetes-apiservers\",verb=\"LIST\",resource=\"pods\",scope=\"namespace\",code=\"200\"}",
    );
    assert!(!lists.is_empty(), "{}", vm_log());
}
