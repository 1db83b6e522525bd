//! Every `x-kubernetes-validations` rule of the Gateway API standard-channel CRDs compiles
//! with its schema, within the static cost limit.
//!
//! The CRDs are upstream data, vendored once for the repository (`vendor/gateway-api/`, with
//! their licence); `SKIFF_GATEWAY_CRDS` points the test at another directory of CRD files
//! (e.g. the separate standard-channel files). It says it skipped when it finds none.

use serde_json::Value;
use skiff_cel::{Env, Program};
use std::path::PathBuf;

/// The CRD YAML files: those in `SKIFF_GATEWAY_CRDS`, else the repository's vendored
/// `vendor/gateway-api/standard-install.yaml`, else `shared/gateway-api/` beside the repository.
fn crd_files() -> Option<Vec<PathBuf>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = match std::env::var("SKIFF_GATEWAY_CRDS") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => {
            let vendored = root.join("vendor/gateway-api/standard-install.yaml");
            if vendored.is_file() {
                return Some(vec![vendored]);
            }
            root.join("../shared/gateway-api")
        }
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .collect();
    files.sort();
    Some(files)
}

/// (file, schema path, schema node, rule) for every rule in every CRD.
fn rules() -> Option<Vec<(String, String, Value, Value)>> {
    let mut out = Vec::new();
    for path in crd_files()? {
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
