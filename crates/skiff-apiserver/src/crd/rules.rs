//! A CRD version's `x-kubernetes-validations`: compiled once when the CRD is served (and
//! checked when it is written), evaluated on every write of a custom resource with `self`
//! and, for transition rules, `oldSelf`, as upstream's `schema/cel` validator does.

use serde_json::{json, Value};
use skiff_cel::{Bindings, Env, Program};
use skiff_schema::{Rule, RuleSite, Structural};

use crate::error::Cause;

/// One compiled rule with what its failure reports.
pub struct CompiledRule {
    rule: Rule,
    program: Program,
    message: Option<Program>,
}

/// The compiled rules of every rule site of one schema, by site index.
#[derive(Default)]
pub struct Rules {
    sites: Vec<Vec<CompiledRule>>,
}

/// What a rule's compile failed with, as a field error of the CRD.
pub struct RuleError {
    pub field: String,
    pub rule: Rule,
    pub detail: String,
}

impl RuleError {
    /// Upstream prints the offending rule as the Go struct it is.
    pub fn cause(&self) -> Cause {
        let r = &self.rule;
        let opt = |o: &Option<String>, ty: &str| match o {
            Some(v) => format!("\"{v}\""),
            None => format!("({ty})(nil)"),
        };
        let value = format!(
            "apiextensions.ValidationRule{{Rule:{:?}, Message:{:?}, MessageExpression:{:?}, Reason:{}, FieldPath:{:?}, OptionalOldSelf:{}}}",
            r.rule,
            r.message.clone().unwrap_or_default(),
            r.message_expression.clone().unwrap_or_default(),
            opt(&r.reason, "*apiextensions.FieldValueErrorReason"),
            r.field_path.clone().unwrap_or_default(),
            match r.optional_old_self {
                Some(b) => format!("(*bool)({b})"),
                None => "(*bool)(nil)".into(),
            },
        );
        Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {value}: {}", self.detail),
            field: self.field.clone(),
        }
    }
}

/// The schema `self` has at a site: a resource root also has `apiVersion`, `kind` and
/// `metadata.name`/`generateName`, as upstream's `WithTypeAndObjectMeta`.
fn site_schema(site: &RuleSite) -> Value {
    let mut schema = site.schema.clone();
    if site.resource_root && schema.is_object() {
        if !schema["properties"].is_object() {
            schema["properties"] = json!({});
        }
        let props = &mut schema["properties"];
        props["apiVersion"] = json!({"type": "string"});
        props["kind"] = json!({"type": "string"});
        props["metadata"] = json!({"type": "object", "properties": {
            "name": {"type": "string"}, "generateName": {"type": "string"}}});
    }
    schema
}

/// Compiles every rule of `structural`; errors name the rule's place under `base`.
pub fn compile(structural: &Structural, base: &str) -> (Rules, Vec<RuleError>) {
    let mut rules = Rules::default();
    let mut errors = Vec::new();
    for site in structural.rule_sites() {
        let schema = site_schema(site);
        let mut compiled = Vec::new();
        for (i, rule) in site.rules.iter().enumerate() {
            let field = format!("{base}{}.x-kubernetes-validations[{i}]", site.schema_path);
            let mut env = Env::crd_rule(&schema, true);
            if rule.optional_old_self == Some(true) {
                env = env.with_optional_old_self();
            }
            let program = match Program::compile(&rule.rule, &env) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(RuleError {
                        field: format!("{field}.rule"),
                        rule: rule.clone(),
                        detail: e.to_string(),
                    });
                    continue;
                }
            };
            if program.uses_old_self() {
                if let Some(at) = &site.uncorrelatable {
                    errors.push(RuleError {
                        field: format!("{field}.rule"),
                        rule: rule.clone(),
                        detail: format!(
                            "oldSelf cannot be used on the uncorrelatable portion of the schema within {base}{at}"
                        ),
                    });
                    continue;
                }
            }
            let message = match &rule.message_expression {
                Some(expr) => match Program::compile(expr, &env) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        errors.push(RuleError {
                            field: format!("{field}.messageExpression"),
                            rule: rule.clone(),
                            detail: e.to_string(),
                        });
                        continue;
                    }
                },
                None => None,
            };
            compiled.push(CompiledRule {
                rule: rule.clone(),
                program,
                message,
            });
        }
        rules.sites.push(compiled);
    }
    (rules, errors)
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.sites.iter().all(Vec::is_empty)
    }

    /// Evaluates the rules on `object` (and `old`, on update), returning upstream's field
    /// errors for every rule that does not hold.
    pub fn validate(
        &self,
        structural: &Structural,
        object: &Value,
        old: Option<&Value>,
    ) -> Vec<Cause> {
        if self.is_empty() {
            return Vec::new();
        }
        // Charging each rule its static estimate is free and an upper bound: while those fit
        // the budget, the object is within it. Only an object whose estimates do not fit is
        // validated again with each evaluation's cost bounded over its inputs.
        self.validate_within(structural, object, old, false)
            .or_else(|| self.validate_within(structural, object, old, true))
            .unwrap_or_default()
    }

    /// Evaluates the rules against upstream's per-object budget: each evaluation's cost is
    /// taken from it, and running out (or one call over its own limit) stops all further
    /// rules. Unless `measured`, evaluations are charged their static estimates and running
    /// out returns `None`.
    fn validate_within(
        &self,
        structural: &Structural,
        object: &Value,
        old: Option<&Value>,
        measured: bool,
    ) -> Option<Vec<Cause>> {
        let mut causes = Vec::new();
        let mut remaining = skiff_cel::RUNTIME_COST_BUDGET;
        let mut stopped = false;
        let mut exhausted = false;
        structural.walk_rules(object, old, &mut |visit| {
            let Some(rules) = self.sites.get(visit.site_index) else {
                return;
            };
            if stopped || rules.is_empty() {
                return;
            }
            let ty = visit.site.schema["type"].as_str().unwrap_or("object").to_owned();
            let out_of_budget = |causes: &mut Vec<Cause>| {
                causes.push(field_cause(
                    visit.field_path,
                    &ty,
                    "validation failed due to running out of cost budget, no further validation rules will be run".into(),
                    None,
                ))
            };
            if remaining == 0 {
                out_of_budget(&mut causes);
                exhausted = true;
                stopped = true;
                return;
            }
            // Takes `cost` from the budget; false when it does not fit.
            let mut charge = |cost: u64| match remaining.checked_sub(cost) {
                Some(left) => {
                    remaining = left;
                    true
                }
                None => false,
            };
            for compiled in rules {
                let optional = compiled.rule.optional_old_self == Some(true);
                if compiled.program.uses_old_self() && visit.old_value.is_none() && !optional {
                    // A transition rule needs a value to compare with.
                    continue;
                }
                // Ratcheting: a rule without oldSelf is not run again on a value the update
                // left as it was (upstream's CRDValidationRatcheting).
                if !compiled.program.uses_old_self() && visit.old_value == Some(visit.value) {
                    continue;
                }
                let mut bindings = Bindings::new().with("self", visit.value);
                if let Some(old) = visit.old_value {
                    bindings.set("oldSelf", old);
                }
                let path = match compiled.rule.field_path.as_deref() {
                    Some(extra) if !extra.is_empty() => join_path(visit.field_path, extra),
                    _ => visit.field_path.to_owned(),
                };
                let fail = |detail: String, causes: &mut Vec<Cause>| {
                    causes.push(field_cause(&path, &ty, detail, compiled.rule.reason.as_deref()))
                };
                let (result, cost) = eval_charged(&compiled.program, &bindings, measured);
                if !matches!(result, Err(skiff_cel::EvalError::CostLimitExceeded)) && !charge(cost)
                {
                    out_of_budget(&mut causes);
                exhausted = true;
                    stopped = true;
                    return;
                }
                match result {
                    Ok(Value::Bool(true)) => {}
                    Ok(Value::Bool(false)) => {
                        let mut message = None;
                        if let Some(m) = &compiled.message {
                            let (result, cost) = eval_charged(m, &bindings, measured);
                            if !charge(cost) {
                                out_of_budget(&mut causes);
                exhausted = true;
                                stopped = true;
                                return;
                            }
                            message = match result {
                                Ok(Value::String(s)) => {
                                    let s = s.trim();
                                    (!s.is_empty() && !s.contains('\n')).then(|| s.to_owned())
                                }
                                _ => None,
                            };
                        }
                        let detail = message.unwrap_or_else(|| message_or_default(&compiled.rule));
                        fail(detail, &mut causes);
                    }
                    Ok(other) => fail(
                        format!("rule did not evaluate to a bool ({other}) evaluating rule: {}", error_string(&compiled.rule)),
                        &mut causes,
                    ),
                    Err(skiff_cel::EvalError::CostLimitExceeded) => {
                        fail(
                            format!(
                                "'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: {}",
                                error_string(&compiled.rule)
                            ),
                            &mut causes,
                        );
                        // As upstream: no further rules run on this object.
                        stopped = true;
                        return;
                    }
                    Err(e) => fail(
                        format!("{e} evaluating rule: {}", error_string(&compiled.rule)),
                        &mut causes,
                    ),
                }
            }
        });
        (measured || !exhausted).then_some(causes)
    }
}

/// One evaluation and the cost charged for it: the static estimate, or with `measured` the
/// bound over these inputs.
fn eval_charged(
    program: &Program,
    bindings: &Bindings<'_>,
    measured: bool,
) -> (Result<Value, skiff_cel::EvalError>, u64) {
    if measured {
        program.eval_with_cost(bindings)
    } else {
        (program.eval(bindings), program.estimated_cost())
    }
}

/// Upstream's `ruleMessageOrDefault`.
fn message_or_default(rule: &Rule) -> String {
    match rule.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => format!("failed rule: {}", error_string(rule)),
    }
}

/// Upstream's `ruleErrorString`.
fn error_string(rule: &Rule) -> String {
    match rule.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => rule.rule.trim().to_owned(),
    }
}

/// A rule's `fieldPath` (`.spec.x`, `['a.b']`, `[0]`) below the site's path.
fn join_path(base: &str, extra: &str) -> String {
    let extra = extra.strip_prefix('.').unwrap_or(extra);
    match (base.is_empty(), extra.starts_with('[')) {
        (true, _) => extra.to_owned(),
        (false, true) => format!("{base}{extra}"),
        (false, false) => format!("{base}.{extra}"),
    }
}

/// Upstream's `fieldErrorForReason`: the rule's `reason` picks the error's type; the value
/// printed is the schema type of `self`.
fn field_cause(path: &str, ty: &str, detail: String, reason: Option<&str>) -> Cause {
    let field = if path.is_empty() {
        "<nil>".to_owned()
    } else {
        path.to_owned()
    };
    let (reason, message) = match reason {
        Some("FieldValueForbidden") => ("FieldValueForbidden", format!("Forbidden: {detail}")),
        Some("FieldValueRequired") => ("FieldValueRequired", format!("Required value: {detail}")),
        Some("FieldValueDuplicate") => ("FieldValueDuplicate", format!("Duplicate value: {ty:?}")),
        _ => (
            "FieldValueInvalid",
            format!("Invalid value: {ty:?}: {detail}"),
        ),
    };
    Cause {
        reason: reason.into(),
        message,
        field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.min <= self.max", "message": "min must not exceed max"},
                    {"rule": "self.max <= 100", "messageExpression": "'max is ' + string(self.max)", "fieldPath": ".max"},
                    {"rule": "self.max >= oldSelf.max", "reason": "FieldValueForbidden"},
                ],
                "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
            }},
        })
    }

    fn check(obj: Value, old: Option<Value>) -> Vec<String> {
        let s = Structural::new(&schema(), "").unwrap();
        let (rules, errs) = compile(&s, "");
        assert!(errs.is_empty());
        rules
            .validate(&s, &obj, old.as_ref())
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn failing_rules_report_message_message_expression_and_field_path() {
        assert_eq!(
            check(json!({"spec": {"min": 5, "max": 200}}), None),
            vec![r#"spec.max: Invalid value: "object": max is 200"#.to_owned(),]
        );
        assert_eq!(
            check(json!({"spec": {"min": 5, "max": 3}}), None),
            vec![r#"spec: Invalid value: "object": min must not exceed max"#.to_owned()]
        );
    }

    #[test]
    fn transition_rules_run_only_on_update_with_their_reason() {
        assert!(check(json!({"spec": {"min": 1, "max": 3}}), None).is_empty());
        assert_eq!(
            check(
                json!({"spec": {"min": 1, "max": 3}}),
                Some(json!({"spec": {"min": 1, "max": 4}}))
            ),
            vec!["spec: Forbidden: failed rule: self.max >= oldSelf.max".to_owned()]
        );
    }

    /// Upstream's CRDValidationRatcheting for rules: a rule without oldSelf is not run on a
    /// value the update left unchanged; a changed value, and transition rules, still are.
    #[test]
    fn rules_without_old_self_ratchet_on_unchanged_values() {
        let stored = json!({"spec": {"min": 5, "max": 3}});
        let relabelled = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"min": 5, "max": 3}});
        assert!(check(relabelled, Some(stored.clone())).is_empty());
        assert_eq!(
            check(json!({"spec": {"min": 6, "max": 3}}), Some(stored)),
            vec![r#"spec: Invalid value: "object": min must not exceed max"#.to_owned()]
        );
    }

    #[test]
    fn rules_stop_with_upstreams_message_when_the_object_runs_out_of_cost_budget() {
        // Each list is within the per-call limit, but 40 of them exceed the object's budget.
        let schema = json!({"type": "object", "properties": {"lists": {
            "type": "array",
            "items": {
                "type": "array", "maxItems": 300, "items": {"type": "integer"},
                "x-kubernetes-validations": [{"rule": "self.all(x, self.all(y, x + y >= 0))"}],
            },
        }}});
        let s = Structural::new(&schema, "").unwrap();
        let (rules, errs) = compile(&s, "");
        assert!(
            errs.is_empty(),
            "{:?}",
            errs.iter().map(|e| &e.detail).collect::<Vec<_>>()
        );
        let list: Vec<i64> = (0..300).collect();
        let within = json!({"lists": vec![list.clone(); 5]});
        assert!(rules.validate(&s, &within, None).is_empty());
        // Static estimates over the budget, actual sizes well within it.
        let short: Vec<i64> = (0..10).collect();
        let many_short = json!({"lists": vec![short; 40]});
        assert!(rules.validate(&s, &many_short, None).is_empty());
        let over = json!({"lists": vec![list; 40]});
        let causes: Vec<String> = rules
            .validate(&s, &over, None)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert!(
            causes[0].ends_with(
                r#"Invalid value: "array": validation failed due to running out of cost budget, no further validation rules will be run"#
            ),
            "{causes:?}"
        );
    }

    #[test]
    fn a_rule_that_does_not_compile_is_a_crd_error_naming_the_rule() {
        let schema = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a == other"}],
            "properties": {"a": {"type": "string"}}});
        let s = Structural::new(&schema, "").unwrap();
        let (_, errs) = compile(&s, "spec.versions[0].schema.openAPIV3Schema");
        assert_eq!(errs.len(), 1);
        let cause = errs[0].cause();
        assert_eq!(
            cause.field,
            "spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[0].rule"
        );
        assert!(
            cause.message.starts_with(
                r#"Invalid value: apiextensions.ValidationRule{Rule:"self.a == other""#
            ),
            "{}",
            cause.message
        );
        assert!(
            cause.message.contains("compilation failed"),
            "{}",
            cause.message
        );
    }

    /// A type error is refused when the CRD is written, as upstream's checker does, with
    /// cel-go's message and position.
    #[test]
    fn type_errors_are_refused_when_the_crd_is_written() {
        let schema = json!({"type": "object",
            "x-kubernetes-validations": [{"rule": "self.replicas + 'a' > 0"}],
            "properties": {"replicas": {"type": "integer"}}});
        let s = Structural::new(&schema, "").unwrap();
        let (_, errs) = compile(&s, "spec.versions[0].schema.openAPIV3Schema");
        assert_eq!(errs.len(), 1);
        let message = errs[0].cause().message;
        assert!(
            message.ends_with(
                "compilation failed: ERROR: <input>:1:15: found no matching overload for '_+_' applied to '(int, string)'"
            ),
            "{message}"
        );
    }
}
