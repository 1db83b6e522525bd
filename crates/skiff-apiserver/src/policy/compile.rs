//! Policies and bindings as stored, turned into what a request is checked against: matchers
//! and compiled CEL programs. Compile errors are kept, not dropped, so a broken policy fails
//! its requests per its failure policy as upstream's does.

use std::sync::Arc;

use serde_json::Value;
use skiff_apimachinery::selector::LabelSelector;
use skiff_cel::{AdmissionVariables, Env, Program};

use crate::webhook::config::{rule, selector, Rule};

/// A compiled expression, or why it did not compile.
pub type Compiled = std::result::Result<Program, String>;

/// One validation of a policy.
pub struct Validation {
    pub expression: String,
    pub program: Compiled,
    pub message: Option<String>,
    pub message_expression: Option<Compiled>,
    /// `Unauthorized`, `Forbidden`, `Invalid` (default) or `RequestEntityTooLarge`.
    pub reason: Option<String>,
}

/// Which requests a policy (or a binding) is about: upstream's `MatchResources`.
pub struct Matcher {
    pub rules: Vec<(Rule, Vec<String>)>,
    pub exclude: Vec<(Rule, Vec<String>)>,
    pub namespace_selector: std::result::Result<LabelSelector, String>,
    pub object_selector: std::result::Result<LabelSelector, String>,
}

/// One policy, compiled.
pub struct CompiledPolicy {
    pub name: String,
    pub ignore_failures: bool,
    /// `(group, kind)` of the params, when the policy takes params.
    pub param_kind: Option<(String, String)>,
    pub constraints: Matcher,
    pub match_conditions: Vec<(String, Compiled)>,
    pub variables: Vec<(String, Compiled)>,
    pub validations: Vec<Validation>,
}

/// A binding of a policy, ready to evaluate.
pub struct Bound {
    pub policy: Arc<CompiledPolicy>,
    pub binding: String,
    pub deny: bool,
    pub warn: bool,
    pub matcher: Option<Matcher>,
    pub param_ref: Option<Value>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn named_rules(v: &Value) -> Vec<(Rule, Vec<String>)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|r| (rule(r), strings(&r["resourceNames"])))
        .collect()
}

fn matcher(v: &Value) -> Matcher {
    Matcher {
        rules: named_rules(&v["resourceRules"]),
        exclude: named_rules(&v["excludeResourceRules"]),
        namespace_selector: selector(&v["namespaceSelector"]),
        object_selector: selector(&v["objectSelector"]),
    }
}

/// Compiles one policy.
pub fn policy(p: &Value) -> CompiledPolicy {
    let spec = &p["spec"];
    let param_kind = spec["paramKind"].as_object().map(|k| {
        let api_version = k.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let group = api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
            .to_owned();
        let kind = k
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        (group, kind)
    });
    let variable_names: Vec<String> = spec["variables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    // Upstream bounds admission expressions at run time only (the per-call limit); the
    // static estimate is a CRD-rule check, and unbounded request objects would fail it.
    let env = Env::admission(&AdmissionVariables {
        has_params: param_kind.is_some(),
        variable_names,
        ..Default::default()
    })
    .with_cost_limit(u64::MAX);
    let compile = |expr: &str| Program::compile(expr, &env).map_err(|e| e.to_string());
    let named = |list: &Value, field: &str| -> Vec<(String, Compiled)> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let name = c["name"].as_str().unwrap_or("").to_owned();
                (name, compile(c[field].as_str().unwrap_or("")))
            })
            .collect()
    };
    CompiledPolicy {
        name: p["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        ignore_failures: spec["failurePolicy"].as_str() == Some("Ignore"),
        param_kind,
        constraints: matcher(&spec["matchConstraints"]),
        match_conditions: named(&spec["matchConditions"], "expression"),
        variables: named(&spec["variables"], "expression"),
        validations: spec["validations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                let expression = v["expression"].as_str().unwrap_or("").to_owned();
                Validation {
                    program: compile(&expression),
                    expression,
                    message: v["message"].as_str().map(str::to_owned),
                    message_expression: v["messageExpression"].as_str().map(compile),
                    reason: v["reason"].as_str().map(str::to_owned),
                }
            })
            .collect(),
    }
}

/// Pairs each binding with its (compiled) policy; bindings of missing policies do nothing,
/// as upstream's.
pub fn bind(policies: &[Value], bindings: &[Value]) -> Vec<Bound> {
    let compiled: Vec<Arc<CompiledPolicy>> = policies.iter().map(|p| Arc::new(policy(p))).collect();
    let mut bound = Vec::new();
    for b in bindings {
        let spec = &b["spec"];
        let Some(name) = spec["policyName"].as_str() else {
            continue;
        };
        let Some(policy) = compiled.iter().find(|p| p.name == name) else {
            continue;
        };
        let actions = strings(&spec["validationActions"]);
        bound.push(Bound {
            policy: policy.clone(),
            binding: b["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            deny: actions.iter().any(|a| a == "Deny"),
            warn: actions.iter().any(|a| a == "Warn"),
            matcher: spec["matchResources"]
                .is_object()
                .then(|| matcher(&spec["matchResources"])),
            param_ref: spec["paramRef"]
                .is_object()
                .then(|| spec["paramRef"].clone()),
        });
    }
    bound.sort_by(|a, b| a.binding.cmp(&b.binding));
    bound
}
