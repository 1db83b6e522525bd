//! CEL rule evaluation speed: compiles every `x-kubernetes-validations` rule of the Gateway
//! API HTTPRoute CRD and evaluates each on the matching nodes of an example route (3 rules with
//! matches, filters and backend refs), as the API server would on a create. Prints compile
//! time, evaluations per object, ns per evaluation and µs per route (mean, and best of 10
//! batches). Markdown. With `CEL_EVAL_TOP=1`, also the 15 costliest rules on stderr.
//!
//! Usage: `cargo run --release -p skiff-bench --bin cel-eval -- vendor/gateway-api/standard-install.yaml [rounds]`
//! (the HTTPRoute CRD is picked out of the install; a file with that CRD alone works too).

use serde::Deserialize;
use serde_json::{json, Value};
use skiff_cel::{Bindings, Env, Program};
use std::time::Instant;

/// An HTTPRoute exercising most of the schema's rule-carrying nodes.
fn example_route() -> Value {
    let rule = |prefix: &str| {
        json!({
            "matches": [
                {"path": {"type": "PathPrefix", "value": prefix},
                 "headers": [{"type": "Exact", "name": "x-env", "value": "canary"}],
                 "queryParams": [{"type": "Exact", "name": "debug", "value": "1"}],
                 "method": "GET"},
                {"path": {"type": "Exact", "value": format!("{prefix}/health")}}
            ],
            "filters": [
                {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                    "set": [{"name": "x-route", "value": "web"}], "remove": ["x-debug"]}},
                {"type": "URLRewrite", "urlRewrite": {"hostname": "backend.internal",
                    "path": {"type": "ReplaceFullPath", "replaceFullPath": "/v2"}}}
            ],
            "backendRefs": [
                {"group": "", "kind": "Service", "name": "web", "port": 8080, "weight": 90},
                {"group": "", "kind": "Service", "name": "web-canary", "port": 8080, "weight": 10}
            ],
            "timeouts": {"request": "10s", "backendRequest": "5s"}
        })
    };
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "parentRefs": [
                {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw", "namespace": "infra", "sectionName": "https"}
            ],
            "hostnames": ["example.com", "*.example.org"],
            "rules": [rule("/api"), rule("/shop"), rule("/static")]
        }
    })
}

/// Every (schema node, rule) of the CRD's first served version.
fn rules_of(crd: &Value) -> Vec<(Vec<String>, Value, String)> {
    let mut out = Vec::new();
    let schema = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|v| v.iter().find(|v| v["served"] == json!(true)))
        .and_then(|v| v.pointer("/schema/openAPIV3Schema"));
    if let Some(schema) = schema {
        walk(&mut Vec::new(), schema, &mut out);
    }
    out
}

fn walk(path: &mut Vec<String>, schema: &Value, out: &mut Vec<(Vec<String>, Value, String)>) {
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(r) = rule["rule"].as_str() {
            out.push((path.clone(), schema.clone(), r.to_string()));
        }
    }
    for (k, v) in schema["properties"].as_object().into_iter().flatten() {
        path.push(k.clone());
        walk(path, v, out);
        path.pop();
    }
    if schema["items"].is_object() {
        path.push("[]".into());
        walk(path, &schema["items"], out);
        path.pop();
    }
}

/// The values at `path` in `obj` (`[]` fans out over list items).
fn nodes<'a>(obj: &'a Value, path: &[String], out: &mut Vec<&'a Value>) {
    match path.split_first() {
        None => out.push(obj),
        Some((step, rest)) if step == "[]" => {
            for item in obj.as_array().into_iter().flatten() {
                nodes(item, rest, out);
            }
        }
        Some((step, rest)) => {
            if let Some(v) = obj.get(step) {
                nodes(v, rest, out);
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let crd_path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: cel-eval <httproutes CRD yaml> [rounds]"))?;
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(2_000);
    let text = std::fs::read_to_string(&crd_path)?;
    // The file may be one CRD or a whole install (several documents): take HTTPRoute's.
    let mut crd = None;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let doc: Value = serde_json::to_value(serde_yaml::Value::deserialize(doc)?)?;
        if doc.pointer("/spec/names/kind") == Some(&json!("HTTPRoute")) {
            crd = Some(doc);
            break;
        }
    }
    let crd = crd.ok_or_else(|| anyhow::anyhow!("no HTTPRoute CRD in {crd_path}"))?;

    let rules = rules_of(&crd);
    let start = Instant::now();
    let mut programs = Vec::new();
    for (path, schema, rule) in &rules {
        let env = Env::crd_rule(schema, true);
        let program = Program::compile(rule, &env).map_err(|e| anyhow::anyhow!("{rule}: {e}"))?;
        programs.push((path, program, rule));
    }
    let compile = start.elapsed();

    let route = example_route();
    let mut work = Vec::new();
    for (path, program, rule) in &programs {
        if program.uses_old_self() {
            continue;
        }
        let mut found = Vec::new();
        nodes(&route, path, &mut found);
        for node in found {
            work.push((program, node, rule));
        }
    }
    for (program, node, rule) in &work {
        match program.eval(&Bindings::new().with("self", node)) {
            Ok(Value::Bool(true)) => {}
            other => eprintln!("not true: {rule} on {node}: {other:?}"),
        }
    }
    // Batches, reporting the best: on a shared machine the fastest batch is the one least
    // disturbed by other processes, and what the code costs.
    let batches = 10;
    let per_batch = rounds.div_ceil(batches).max(1);
    let mut failed = 0;
    let mut best = f64::MAX;
    let start = Instant::now();
    for _ in 0..batches {
        let batch = Instant::now();
        for _ in 0..per_batch {
            for (program, node, _) in &work {
                match program.eval(&Bindings::new().with("self", node)) {
                    Ok(Value::Bool(true)) => {}
                    _ => failed += 1,
                }
            }
        }
        best = best.min(batch.elapsed().as_secs_f64() / per_batch as f64);
    }
    let elapsed = start.elapsed();
    let rounds = batches * per_batch;
    let evals = (rounds * work.len()) as f64;
    if std::env::var_os("CEL_EVAL_TOP").is_some() {
        // Where the time goes: each rule's total over its nodes, slowest first.
        let mut per_rule: Vec<(f64, usize, &str)> = Vec::new();
        for (program, node, rule) in &work {
            let start = Instant::now();
            for _ in 0..rounds {
                let _ = program.eval(&Bindings::new().with("self", node));
            }
            let us = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
            match per_rule.iter_mut().find(|(_, _, r)| *r == rule.as_str()) {
                Some(slot) => {
                    slot.0 += us;
                    slot.1 += 1;
                }
                None => per_rule.push((us, 1, rule.as_str())),
            }
        }
        per_rule.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (us, nodes, rule) in per_rule.iter().take(15) {
            let rule: String = rule.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!(
                "{us:8.1} us  {nodes:3} nodes  {}",
                rule.chars().take(110).collect::<String>()
            );
        }
    }
    println!("| rules compiled | compile total | evals per route | ns per eval (mean) | us per route (mean) | us per route (best batch) | failed evals |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.1} ms | {} | {:.0} | {:.1} | {:.1} | {} |",
        programs.len(),
        compile.as_secs_f64() * 1e3,
        work.len(),
        elapsed.as_nanos() as f64 / evals,
        elapsed.as_secs_f64() * 1e6 / rounds as f64,
        best * 1e6,
        failed
    );
    Ok(())
}
