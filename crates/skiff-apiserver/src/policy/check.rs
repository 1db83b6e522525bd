//! The CEL half of upstream's `admissionregistration.k8s.io` validation: every expression of
//! a webhook configuration or ValidatingAdmissionPolicy must compile before it is stored
//! (the structural rules are `skiff_apimachinery::validation`'s). Errors read as upstream's:
//! `spec.validations[0].expression: Invalid value: "...": compilation failed: ERROR: ...`.
//!
//! As upstream, on update the match conditions are compiled only when they (or the policy's
//! `paramKind`) changed, and expressions the old object already had are not held to the
//! stricter rules for new ones (here: not compiled again).

use std::collections::HashSet;

use serde_json::Value;
use skiff_apimachinery::validation::admissionregistration::match_conditions_checked;
use skiff_apimachinery::validation::FieldError;
use skiff_cel::{AdmissionVariables, Env, Program};

use crate::error::Cause;

/// Compile errors of the expressions of an `admissionregistration.k8s.io` object of `kind`.
pub fn validate_expressions(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let errs = match kind {
        "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration" => webhooks(obj, old),
        "ValidatingAdmissionPolicy" => policy(obj, old),
        _ => Vec::new(),
    };
    errs.iter()
        .map(|e| Cause {
            reason: e.kind.reason().to_owned(),
            message: e.body(),
            field: e.field.clone(),
        })
        .collect()
}

fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Compiles `compiled` (shown as `shown` in the error) unless it is empty or was already
/// stored.
fn compile(
    env: &Env,
    path: &str,
    compiled: &str,
    shown: &str,
    stored: &HashSet<String>,
    errs: &mut Vec<FieldError>,
) {
    if compiled.is_empty() || stored.contains(shown) {
        return;
    }
    if let Err(e) = Program::compile(compiled, env) {
        errs.push(FieldError::invalid(path, Value::from(shown), e.to_string()));
    }
}

fn env(has_params: bool, variable_names: Vec<String>) -> Env {
    Env::admission(&AdmissionVariables {
        has_params,
        variable_names,
        ..Default::default()
    })
    .with_cost_limit(u64::MAX)
}

/// Expressions found under `field` of each item of `items`.
fn collect<'a>(items: impl Iterator<Item = &'a Value>, field: &str) -> HashSet<String> {
    items.map(|i| s(i, field).to_owned()).collect()
}

fn webhooks(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !match_conditions_checked(obj, old) {
        return errs;
    }
    let stored = old.map_or_else(HashSet::new, |o| {
        collect(
            arr(o, "webhooks")
                .iter()
                .flat_map(|h| arr(h, "matchConditions")),
            "expression",
        )
    });
    let env = env(false, Vec::new());
    for (i, hook) in arr(obj, "webhooks").iter().enumerate() {
        for (j, c) in arr(hook, "matchConditions").iter().enumerate() {
            let expr = s(c, "expression").trim();
            let path = format!("webhooks[{i}].matchConditions[{j}].expression");
            compile(&env, &path, expr, expr, &stored, &mut errs);
        }
    }
    errs
}

fn policy(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let old_spec = old.map(|o| o.get("spec").unwrap_or(&null));
    let has_params = spec.get("paramKind").is_some_and(|p| !p.is_null());
    let variable_names: Vec<String> = arr(spec, "variables")
        .iter()
        .map(|v| s(v, "name").to_owned())
        .collect();
    let env = env(has_params, variable_names);
    let stored = |list: &str, field: &str| {
        old_spec.map_or_else(HashSet::new, |o| collect(arr(o, list).iter(), field))
    };
    if match_conditions_checked(obj, old) {
        let stored = stored("matchConditions", "expression");
        for (i, c) in arr(spec, "matchConditions").iter().enumerate() {
            let expr = s(c, "expression").trim();
            let path = format!("spec.matchConditions[{i}].expression");
            compile(&env, &path, expr, expr, &stored, &mut errs);
        }
    }
    let stored_validations = stored("validations", "expression");
    for (i, v) in arr(spec, "variables").iter().enumerate() {
        let expr = s(v, "expression");
        let path = format!("spec.variables[{i}].expression");
        compile(
            &env,
            &path,
            expr.trim(),
            expr,
            &stored_validations,
            &mut errs,
        );
    }
    let stored_messages = stored("validations", "messageExpression");
    for (i, v) in arr(spec, "validations").iter().enumerate() {
        let expr = s(v, "expression");
        let path = format!("spec.validations[{i}].expression");
        compile(
            &env,
            &path,
            expr.trim(),
            expr,
            &stored_validations,
            &mut errs,
        );
        let message = s(v, "messageExpression");
        let path = format!("spec.validations[{i}].messageExpression");
        compile(
            &env,
            &path,
            message.trim(),
            message,
            &stored_messages,
            &mut errs,
        );
    }
    let stored_annotations = stored("auditAnnotations", "valueExpression");
    for (i, a) in arr(spec, "auditAnnotations").iter().enumerate() {
        let expr = s(a, "valueExpression");
        if expr.trim().len() > 5 * 1024 {
            continue;
        }
        let path = format!("spec.auditAnnotations[{i}].valueExpression");
        compile(
            &env,
            &path,
            expr.trim(),
            expr,
            &stored_annotations,
            &mut errs,
        );
    }
    errs
}
