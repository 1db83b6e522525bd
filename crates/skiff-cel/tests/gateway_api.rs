//! Every `x-kubernetes-validations` rule of the Gateway API standard-channel CRDs compiles
//! with its schema, within the static cost limit.
//!
//! The CRDs are upstream data, not vendored here: the test reads them from the directory in
//! `SKIFF_GATEWAY_CRDS`, else `shared/gateway-api/` beside the repository, and says it skipped
//! when neither exists.

use serde_json::Value;
use skiff_cel::{Env, Program};
use std::path::PathBuf;

/// Where the CRD YAML files are, if anywhere.
fn crd_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("SKIFF_GATEWAY_CRDS") {
        return Some(PathBuf::from(dir));
    }
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/gateway-api");
    shared.is_dir().then_some(shared)
}

/// (file, schema path, schema node, rule) for every rule in every CRD.
fn rules() -> Option<Vec<(String, String, Value, Value)>> {
    let dir = crd_dir()?;
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files {
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).ok()?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let Ok(doc) = serde_yaml::Value::deserialize(doc) else {
                continue;
            };
            let Ok(json) = serde_json::to_value(doc) else {
                continue;
            };
            let Some(versions) = json.pointer("/spec/versions").and_then(Value::as_array) else {
                continue;
            };
            for version in versions {
                if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
                    let name =
                        format!("{}", path.file_name().unwrap_or_default().to_string_lossy());
                    walk(&name, "", schema, &mut out);
                }
            }
        }
    }
    Some(out)
}

use serde::Deserialize;

fn walk(file: &str, path: &str, schema: &Value, out: &mut Vec<(String, String, Value, Value)>) {
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules {
            out.push((
                file.to_string(),
                path.to_string(),
                schema.clone(),
                rule.clone(),
            ));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(file, &format!("{path}.{k}"), v, out);
        }
    }
    if let Some(items) = schema.get("items") {
        walk(file, &format!("{path}[]"), items, out);
    }
    if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        walk(file, &format!("{path}{{}}"), add, out);
    }
}

#[test]
fn every_gateway_api_standard_rule_compiles_within_the_cost_limit() {
    let Some(rules) = rules() else {
        eprintln!("skipped: no Gateway API CRDs (set SKIFF_GATEWAY_CRDS)");
        return;
    };
    assert!(rules.len() > 200, "found only {} rules", rules.len());
    let mut failures = Vec::new();
    let mut max_cost = 0;
    for (file, path, schema, rule) in &rules {
        let env = Env::crd_rule(schema, true);
        for key in ["rule", "messageExpression"] {
            let Some(expr) = rule.get(key).and_then(Value::as_str) else {
                continue;
            };
            match Program::compile(expr, &env) {
                Ok(p) => max_cost = max_cost.max(p.estimated_cost()),
                Err(e) => failures.push(format!("{file} {path} {key}: {e}\n  {expr}")),
            }
        }
    }
    eprintln!(
        "{} rules compiled, highest estimated cost {max_cost}",
        rules.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
