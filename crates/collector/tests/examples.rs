//! The example manifests parse, use the collector image, and carry settings the collector accepts.

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine;
use collector::config::{Cli, Config};
use serde::Deserialize;
use serde_yaml::Value;

fn docs() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/collector");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v =
                    Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.push((path.file_name().unwrap().to_string_lossy().to_string(), v));
            }
        }
    }
    out
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    &docs
        .iter()
        .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name}"))
        .1
}

#[test]
fn every_collector_workload_uses_the_collector_image_and_port() {
    let docs = docs();
    let mut seen = 0;
    for (file, d) in &docs {
        let spec = if d["kind"] == "Pod" {
            &d["spec"]
        } else {
            &d["spec"]["template"]["spec"]
        };
        for c in spec["containers"].as_sequence().into_iter().flatten() {
            if c["name"] == "collector" {
                seen += 1;
                assert!(
                    c["image"].as_str().unwrap().starts_with("collector:"),
                    "{file}"
                );
                assert_eq!(c["ports"][0]["containerPort"], 8080, "{file}");
            }
        }
    }
    assert_eq!(
        seen, 4,
        "pod, replicaset, deployment v2, production deployment"
    );
}

#[test]
fn service_selects_the_collector_pods() {
    let docs = docs();
    assert_eq!(
        find(&docs, "Service", "collector")["spec"]["selector"]["app"],
        "collector"
    );
    let route = find(&docs, "HTTPRoute", "collector-route");
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"][0]["name"],
        "collector"
    );
}

#[test]
fn configmap_and_secret_hold_settings_the_collector_accepts() {
    let docs = docs();
    let mut env: HashMap<String, String> = HashMap::new();
    for (k, v) in find(&docs, "ConfigMap", "collector-config")["data"]
        .as_mapping()
        .unwrap()
    {
        env.insert(k.as_str().unwrap().into(), v.as_str().unwrap().into());
    }
    let secret = find(&docs, "Secret", "collector-secrets");
    let url = secret["data"]["POSTGRES_CONNECTION_STRING"]
        .as_str()
        .unwrap();
    let url = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(url)
            .unwrap(),
    )
    .unwrap();
    env.insert("POSTGRES_CONNECTION_STRING".into(), url.clone());
    let config = Config::load(Cli::default(), |k| env.get(k).cloned()).unwrap();
    assert_eq!(config.retention_days, 30);
    assert_eq!(config.max_batch_size, 1000);
    assert_eq!(config.postgres.as_deref(), Some(url.as_str()));
    url.parse::<tokio_postgres::Config>()
        .expect("a valid Postgres connection string");
}

#[test]
fn production_deployment_has_probes_annotations_and_config() {
    let docs = docs();
    let d = docs
        .iter()
        .find(|(f, _)| f == "10-deployment-production.yaml")
        .map(|(_, d)| d)
        .unwrap();
    let pod = &d["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/path"],
        "/metrics"
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["envFrom"][0]["configMapRef"]["name"], "collector-config");
}
