//! Fuzzing: schemathesis generates requests from the OpenAPI v3 documents skiff serves
//! (`/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`) and fails on any 5xx or hang. Bounded
//! in time (SKIFF_FUZZ_SECONDS per document, the documents in parallel) and reproducible:
//! the seed is fixed (SKIFF_FUZZ_SEED overrides it) and each failure prints as a curl command.

mod common;
mod compat;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{json, Value};

const DOCUMENTS: [&str; 2] = ["/openapi/v3/api/v1", "/openapi/v3/apis/apps/v1"];
const DEFAULT_SECONDS: &str = "75";
const DEFAULT_SEED: &str = "20260601";

/// Templated path parameters (`{namespace}`, `{name}`) that neither the path item nor the
/// operation declares: OpenAPI 3.0 requires each to be declared, and schemathesis refuses
/// to test such an operation.
fn undeclared_path_parameters(doc: &Value) -> BTreeSet<String> {
    let mut missing = BTreeSet::new();
    let declared = |params: &Value| -> BTreeSet<String> {
        params
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect()
    };
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let on_path = declared(&item["parameters"]);
        for (method, op) in item.as_object().into_iter().flatten() {
            if method == "parameters" {
                continue;
            }
            let on_op = declared(&op["parameters"]);
            for template in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
                if !on_path.contains(template) && !on_op.contains(template) {
                    missing.insert(format!("{} {path}: {{{template}}}", method.to_uppercase()));
                }
            }
        }
    }
    missing
}

/// The document as the fuzzer gets it:
/// - `watch` dropped: `watch=true` holds the response open by design (watch has its own tests);
/// - undeclared path parameters declared (reported separately), so every operation is fuzzed;
/// - `{namespace}` pinned to `default`, so bodies reach admission instead of a 404.
fn prepare_for_fuzzing(mut doc: Value) -> Value {
    let paths = doc["paths"].as_object_mut().expect("document has paths");
    for (path, item) in paths.iter_mut() {
        let path_level: Vec<Value> = item["parameters"].as_array().cloned().unwrap_or_default();
        for (method, op) in item.as_object_mut().expect("path item").iter_mut() {
            if method == "parameters" {
                continue;
            }
            let mut params: Vec<Value> = op["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p["name"] != "watch")
                .collect();
            for template in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
                let declared = path_level
                    .iter()
                    .chain(&params)
                    .any(|p| p["in"] == "path" && p["name"] == template);
                if !declared {
                    params.push(json!({
                        "name": template, "in": "path", "required": true,
                        "schema": {"type": "string"}
                    }));
                }
            }
            for p in &mut params {
                if p["in"] == "path" && p["name"] == "namespace" {
                    p["schema"] = json!({"type": "string", "enum": ["default"]});
                }
            }
            op["parameters"] = Value::Array(params);
        }
        if let Some(level) = item.get_mut("parameters").and_then(Value::as_array_mut) {
            for p in level {
                if p["in"] == "path" && p["name"] == "namespace" {
                    p["schema"] = json!({"type": "string", "enum": ["default"]});
                }
            }
        }
    }
    doc
}

#[test]
fn no_generated_request_gets_a_server_error() {
    let Some(schemathesis) = compat::schemathesis() else {
        if let Some(why) = compat::missing("schemathesis") {
            panic!("{why}");
        }
        return;
    };
    let cluster = common::Cluster::start();
    let tmp = tempfile::tempdir().expect("temp dir");
    let kubectl = compat::Kubectl::new(compat::default_kubectl(), &cluster, tmp.path());
    let server = kubectl.run(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    assert!(server.ok(), "{}", server.show());
    let pki = cluster.dir.path().join("pki");
    let token = std::fs::read_to_string(pki.join("admin.token")).expect("admin token");
    let seconds = std::env::var("SKIFF_FUZZ_SECONDS").unwrap_or_else(|_| DEFAULT_SECONDS.into());
    let seed = std::env::var("SKIFF_FUZZ_SEED").unwrap_or_else(|_| DEFAULT_SEED.into());

    let mut problems = Vec::new();
    let mut runs = Vec::new();
    for document in DOCUMENTS {
        let got = kubectl.run(&["get", "--raw", document]);
        assert!(got.ok(), "{}", got.show());
        let doc: Value = serde_json::from_str(&got.stdout).expect("the document is JSON");
        assert_eq!(
            doc["openapi"].as_str().map(|v| &v[..2]),
            Some("3."),
            "{document}"
        );
        let missing = undeclared_path_parameters(&doc);
        if !missing.is_empty() {
            problems.push(format!(
                "{document} leaves {} path parameters undeclared (OpenAPI 3.0 requires them; \
                 upstream declares name/namespace in each path item's parameters), e.g.:\n  {}",
                missing.len(),
                missing
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
        let file = tmp.path().join(format!(
            "{}.json",
            document.trim_start_matches('/').replace('/', "_")
        ));
        std::fs::write(
            &file,
            serde_json::to_vec(&prepare_for_fuzzing(doc)).unwrap(),
        )
        .unwrap();
        let mut cmd = Command::new(&schemathesis);
        cmd.current_dir(tmp.path())
            .arg("run")
            .arg(&file)
            .args(["--url", server.stdout.trim()])
            .arg("--header")
            .arg(format!("Authorization: Bearer {}", token.trim()))
            .arg("--tls-verify")
            .arg(pki.join("ca.crt"))
            .args(["--checks", "not_a_server_error"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--max-time", &seconds, "--seed", &seed])
            .args(["--request-timeout", "10"])
            // One worker: hypothesis's lambda introspection races across threads on Python 3.11.
            .args(["--workers", "1"])
            .args(["--output-sanitize", "false"])
            .env("NO_COLOR", "1")
            .env(
                "HYPOTHESIS_STORAGE_DIRECTORY",
                tmp.path().join(".hypothesis"),
            );
        runs.push((document, std::thread::spawn(move || compat::run(cmd, None))));
    }
    for (document, run) in runs {
        let run = run.join().expect("schemathesis thread");
        let summary = run
            .stdout
            .lines()
            .rev()
            .find(|l| l.contains(" in "))
            .unwrap_or("")
            .to_owned();
        eprintln!(
            "{document}: {}",
            summary.trim_matches(|c| c == '=' || c == ' ')
        );
        if !run.ok() {
            problems.push(format!(
                "schemathesis found failures in {document} (seed {seed}; rerun with \
                 SKIFF_FUZZ_SEED={seed}); each failure below ends with a curl command:\n{}\n{}",
                failures_section(&run.stdout),
                run.stderr.trim_end()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// The FAILURES/ERRORS part of a schemathesis report, without its banner and summary.
fn failures_section(stdout: &str) -> String {
    let start = stdout
        .find("FAILURES")
        .or_else(|| stdout.find("ERRORS"))
        .unwrap_or(0);
    let end = stdout[start..]
        .find("SUMMARY")
        .map_or(stdout.len(), |e| start + e);
    stdout[start..end].to_string()
}
