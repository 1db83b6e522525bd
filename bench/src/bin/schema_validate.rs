//! Times skiff-schema on a large real schema: the Gateway API HTTPRoute CRD (vendored in
//! crates/skiff-schema/testdata), prune + default + validate of one HTTPRoute per iteration,
//! as the API server does on every write. Prints µs per object for each step and in total.

use std::time::Instant;

use serde_json::{json, Value};
use skiff_schema::Structural;

const CRD: &str =
    include_str!("../../../crates/skiff-schema/testdata/gateway.networking.k8s.io_httproutes.yaml");

fn route(i: usize) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": format!("web-{i}"), "namespace": "default"},
        "spec": {
            "parentRefs": [{"name": "gw", "sectionName": "http"}],
            "hostnames": ["example.com", "*.example.org"],
            "unknownField": true,
            "rules": [
                {
                    "matches": [{"path": {"value": "/api"}, "headers": [{"name": "x-env", "value": "prod"}]}],
                    "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "b"}]}}],
                    "backendRefs": [{"name": "api", "port": 8080, "weight": 90}, {"name": "api-canary", "port": 8080, "weight": 10}]
                },
                {
                    "matches": [{"path": {"type": "Exact", "value": "/"}, "method": "GET"}],
                    "backendRefs": [{"name": "web", "port": 80}]
                }
            ]
        }
    })
}

fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let crd: Value = serde_yaml::from_str(CRD)?;
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];

    let start = Instant::now();
    let s = Structural::new(schema, "spec.versions[0].schema.openAPIV3Schema").map_err(|e| {
        anyhow::anyhow!(
            "schema rejected: {:?}",
            e.iter().map(|e| e.message()).collect::<Vec<_>>()
        )
    })?;
    println!(
        "schema check + compile: {:.0} µs ({} CEL rule sites)",
        start.elapsed().as_secs_f64() * 1e6,
        s.rule_sites().len()
    );

    let objects: Vec<Value> = (0..iterations).map(route).collect();
    let (mut t_prune, mut t_default, mut t_validate) = (0f64, 0f64, 0f64);
    let mut errors = 0usize;
    let total = Instant::now();
    for obj in &objects {
        let mut o = obj.clone();
        let t = Instant::now();
        let pruned = s.prune(&mut o);
        t_prune += t.elapsed().as_secs_f64();
        let t = Instant::now();
        s.apply_defaults(&mut o);
        t_default += t.elapsed().as_secs_f64();
        let t = Instant::now();
        errors += s.validate(&o).len();
        t_validate += t.elapsed().as_secs_f64();
        assert_eq!(pruned.len(), 1);
    }
    let total = total.elapsed().as_secs_f64();
    assert_eq!(errors, 0, "the benchmark object is valid");
    let n = iterations as f64;
    println!("objects: {iterations}");
    println!("prune:    {:>7.2} µs/object", t_prune / n * 1e6);
    println!("default:  {:>7.2} µs/object", t_default / n * 1e6);
    println!("validate: {:>7.2} µs/object", t_validate / n * 1e6);
    println!(
        "prune+default+validate: {:.2} µs/object ({:.2} µs/object including the clone)",
        (t_prune + t_default + t_validate) / n * 1e6,
        total / n * 1e6
    );
    Ok(())
}
