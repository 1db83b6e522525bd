//! One request against the bound policies: matching (constraints, then the binding's
//! resources), params, match conditions, variables and validations, and the binding's
//! actions on a failure, as upstream's validating policy dispatcher.

use serde_json::{json, Map, Value};
use skiff_cel::Bindings;

use super::compile::{Bound, Compiled, Matcher};
use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::object;
use crate::request::{Params, Target};
use crate::webhook::matching::{
    namespace_labels_needed, object_selector_matches, rule_matches, NamespaceLabels, RuleTarget,
};
use crate::webhook::review::{options, Gvk, Gvr, ReviewRequest};
use crate::webhook::{Attributes, Operation};

/// What a policy decided about a request.
enum Decision {
    Admit,
    /// A validation failed, or evaluation failed under `failurePolicy: Fail`.
    Fail {
        message: String,
        reason: String,
    },
}

/// Evaluates every bound policy; the first denial is the request's error.
pub async fn run(
    api: &Api,
    bound: &[Bound],
    attrs: &Attributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<()> {
    let mut namespace: Option<Value> = None;
    let mut request: Option<Value> = None;
    for b in bound {
        let policy = &b.policy;
        let matched = matches(api, &policy.constraints, attrs, object, old, &mut namespace)
            .and_then(|m| match (&b.matcher, m) {
                (Some(binding), true) => matches(api, binding, attrs, object, old, &mut namespace),
                (_, m) => Ok(m),
            });
        let decisions = match matched {
            Ok(false) => continue,
            Err(e) => vec![failure(policy.ignore_failures, e)],
            Ok(true) => {
                let request = request.get_or_insert_with(|| request_of(attrs, object, old));
                let ns_object = namespace_object(api, attrs, &mut namespace);
                match params(api, b, attrs) {
                    Err(e) => vec![failure(policy.ignore_failures, e)],
                    Ok(None) => vec![],
                    Ok(Some(list)) => list
                        .iter()
                        .map(|param| decide(b, object, old, request, param, &ns_object))
                        .collect(),
                }
            }
        };
        for decision in decisions {
            let Decision::Fail { message, reason } = decision else {
                continue;
            };
            if b.warn {
                attrs.params.warn(format!(
                    "Validation failed for ValidatingAdmissionPolicy '{}' with binding '{}': {message}",
                    policy.name, b.binding
                ));
            }
            if b.deny {
                return Err(denial(attrs, &policy.name, &b.binding, &message, &reason));
            }
        }
    }
    Ok(())
}

/// An error under the policy's failure policy: ignored, or a failure to act on.
fn failure(ignore: bool, message: String) -> Decision {
    if ignore {
        Decision::Admit
    } else {
        Decision::Fail {
            message,
            reason: "Invalid".into(),
        }
    }
}

/// Upstream's `Matcher.Matches`: a resource rule (and resource name) matches, no exclude
/// rule does, and the namespace and object selectors match.
fn matches(
    api: &Api,
    m: &Matcher,
    attrs: &Attributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
    namespace: &mut Option<Value>,
) -> std::result::Result<bool, String> {
    let r = attrs.resource;
    let is_namespace = r.group.is_empty() && r.plural == "namespaces";
    let ns = match attrs.namespace {
        Some(ns) => ns,
        None if is_namespace => attrs.name,
        None => "",
    };
    let t = RuleTarget {
        group: &r.group,
        version: &r.version,
        resource: &r.plural,
        subresource: attrs.subresource.unwrap_or(""),
        operation: attrs.operation.as_str(),
        namespace: ns,
    };
    let named = |names: &[String]| names.is_empty() || names.iter().any(|n| n == attrs.name);
    if !m
        .rules
        .iter()
        .any(|(rule, names)| rule_matches(rule, &t) && named(names))
    {
        return Ok(false);
    }
    if m.exclude
        .iter()
        .any(|(rule, names)| rule_matches(rule, &t) && named(names))
    {
        return Ok(false);
    }
    let ns_selector = m.namespace_selector.as_ref().map_err(Clone::clone)?;
    match namespace_labels_needed(ns_selector, &t) {
        None => {}
        Some(NamespaceLabels::Object) if !ns_selector.matches(object.and_then(object::labels)) => {
            return Ok(false);
        }
        Some(NamespaceLabels::Object) => {}
        Some(NamespaceLabels::Stored(name)) => {
            let ns = load_namespace(api, name, namespace);
            if !ns_selector.matches(ns.and_then(object::labels)) {
                return Ok(false);
            }
        }
    }
    let obj_selector = m.object_selector.as_ref().map_err(Clone::clone)?;
    Ok(object_selector_matches(obj_selector, object, old))
}

/// The request's namespace object, read once per request.
fn load_namespace<'a>(api: &Api, name: &str, cache: &'a mut Option<Value>) -> Option<&'a Value> {
    if cache.is_none() {
        let namespaces = api.registry.get("", "v1", "namespaces")?;
        let t = Target {
            resource: namespaces,
            namespace: None,
            name: Some(name.to_owned()),
            subresource: None,
        };
        *cache = api.get(&t).ok();
    }
    cache.as_ref()
}

fn namespace_object(api: &Api, attrs: &Attributes<'_>, cache: &mut Option<Value>) -> Value {
    match attrs.namespace {
        Some(ns) if attrs.resource.namespaced => load_namespace(api, ns, cache)
            .cloned()
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// CEL's `request`: the AdmissionReview request a webhook would be sent.
fn request_of(attrs: &Attributes<'_>, object: Option<&Value>, old: Option<&Value>) -> Value {
    let r = attrs.resource;
    let kind = Gvk {
        group: r.group.clone(),
        version: r.version.clone(),
        kind: r.kind.clone(),
    };
    let resource = Gvr {
        group: r.group.clone(),
        version: r.version.clone(),
        resource: r.plural.clone(),
    };
    let options_kind = match attrs.operation {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
        Operation::Connect => "",
    };
    let uid = uuid::Uuid::new_v4().to_string();
    ReviewRequest {
        uid: &uid,
        request_kind: kind.clone(),
        request_resource: resource.clone(),
        kind,
        resource,
        subresource: attrs.subresource.unwrap_or(""),
        name: attrs.name,
        namespace: attrs.namespace.unwrap_or(""),
        operation: attrs.operation.as_str(),
        object,
        old_object: old,
        dry_run: attrs.dry_run,
        options: options(
            options_kind,
            attrs.dry_run,
            attrs.params.get("fieldManager"),
        ),
        user: &attrs.params.user,
    }
    .request()
}

/// The params a binding evaluates with: `[null]` without a paramKind, the objects its
/// paramRef selects otherwise; `None` when none are found and the binding allows that.
fn params(
    api: &Api,
    b: &Bound,
    attrs: &Attributes<'_>,
) -> std::result::Result<Option<Vec<Value>>, String> {
    let Some((group, kind)) = &b.policy.param_kind else {
        return Ok(Some(vec![Value::Null]));
    };
    let Some(param_ref) = &b.param_ref else {
        return Err(format!(
            "failed to configure binding: no paramRef specified for policy '{}'",
            b.policy.name
        ));
    };
    let r = api
        .registry
        .by_kind(group, kind)
        .ok_or_else(|| format!("failed to configure policy: failed to find resource referenced by paramKind: '{group}/{kind}'"))?;
    let namespace = match (r.namespaced, param_ref["namespace"].as_str()) {
        (false, _) => None,
        (true, Some(ns)) => Some(ns.to_owned()),
        (true, None) => match attrs.namespace {
            Some(ns) => Some(ns.to_owned()),
            None => {
                return Err("cannot use namespaced paramRef in policy binding that matches cluster-scoped resources".into())
            }
        },
    };
    let found: Vec<Value> = match param_ref["name"].as_str() {
        Some(name) => {
            let t = Target {
                resource: r.clone(),
                namespace: namespace.clone(),
                name: Some(name.to_owned()),
                subresource: None,
            };
            api.get(&t).ok().into_iter().collect()
        }
        None => {
            let t = Target {
                resource: r.clone(),
                namespace,
                name: None,
                subresource: None,
            };
            let mut p = Params::default();
            if let Ok(sel) = skiff_apimachinery::selector::LabelSelector::from_label_selector(
                &param_ref["selector"],
            ) {
                p.query.insert("labelSelector".into(), sel.to_string());
            }
            api.list(&t, &p).map_err(|e| e.to_string())?["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    };
    if !found.is_empty() {
        return Ok(Some(found));
    }
    match param_ref["parameterNotFoundAction"].as_str() {
        Some("Allow") => Ok(None),
        _ => Err("no params found for policy binding with `Deny` parameterNotFoundAction".into()),
    }
}

/// One policy with one param: match conditions, variables, then each validation.
fn decide(
    b: &Bound,
    object: Option<&Value>,
    old: Option<&Value>,
    request: &Value,
    param: &Value,
    namespace: &Value,
) -> Decision {
    let policy = &b.policy;
    let null = Value::Null;
    let mut bindings = Bindings::new()
        .with("object", object.unwrap_or(&null))
        .with("oldObject", old.unwrap_or(&null))
        .with("request", request)
        .with("namespaceObject", namespace);
    if policy.param_kind.is_some() {
        bindings.set("params", param);
    }
    let eval =
        |program: &Compiled, bindings: &Bindings<'_>| -> std::result::Result<Value, String> {
            let p = program
                .as_ref()
                .map_err(|e| format!("compilation error: {e}"))?;
            p.eval(bindings).map_err(|e| e.to_string())
        };
    // Variables first (each may use the ones before it), so conditions can use them too.
    let mut variables = Map::new();
    for (name, program) in &policy.variables {
        let vars = Value::Object(variables.clone());
        let with_vars = bindings.clone().with("variables", &vars);
        match eval(program, &with_vars) {
            Ok(v) => {
                variables.insert(name.clone(), v);
            }
            Err(e) => {
                return failure(
                    policy.ignore_failures,
                    format!("variable '{name}' resulted in error: {e}"),
                )
            }
        }
    }
    let vars = Value::Object(variables);
    bindings.set("variables", &vars);
    for (name, program) in &policy.match_conditions {
        match eval(program, &bindings) {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => return Decision::Admit,
            Ok(other) => {
                return failure(
                    policy.ignore_failures,
                    format!("matchCondition '{name}' did not evaluate to a bool: {other}"),
                )
            }
            Err(e) => {
                return failure(
                    policy.ignore_failures,
                    format!("failed to evaluate matchCondition '{name}': {e}"),
                )
            }
        }
    }
    for v in &policy.validations {
        match eval(&v.program, &bindings) {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => {
                let message = v
                    .message_expression
                    .as_ref()
                    .and_then(|m| match eval(m, &bindings) {
                        Ok(Value::String(s)) if !s.trim().is_empty() && !s.contains('\n') => {
                            Some(s.trim().to_owned())
                        }
                        _ => None,
                    })
                    .or_else(|| v.message.clone())
                    .unwrap_or_else(|| format!("failed expression: {}", v.expression));
                return Decision::Fail {
                    message,
                    reason: v.reason.clone().unwrap_or_else(|| "Invalid".into()),
                };
            }
            Ok(other) => {
                return failure(
                    policy.ignore_failures,
                    format!(
                        "expression '{}' resulted in a non-bool: {other}",
                        v.expression
                    ),
                )
            }
            Err(e) => {
                return failure(
                    policy.ignore_failures,
                    format!("expression '{}' resulted in error: {e}", v.expression),
                )
            }
        }
    }
    Decision::Admit
}

/// Upstream's denial: `admission.NewForbidden` with the validation's reason and its code.
fn denial(
    attrs: &Attributes<'_>,
    policy: &str,
    binding: &str,
    message: &str,
    reason: &str,
) -> ApiError {
    let r = attrs.resource;
    let why = format!(
        "ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {message}"
    );
    let text = if attrs.name.is_empty() {
        format!("{} is forbidden: {why}", r.qualified())
    } else {
        format!("{} \"{}\" is forbidden: {why}", r.qualified(), attrs.name)
    };
    let code = match reason {
        "Unauthorized" => 401,
        "Forbidden" => 403,
        "RequestEntityTooLarge" => 413,
        _ => 422,
    };
    let mut details = json!({"group": r.group, "kind": r.plural, "causes": [{"message": why}]});
    if !attrs.name.is_empty() {
        details["name"] = json!(attrs.name);
    }
    ApiError::Relayed {
        code,
        reason: reason.to_owned(),
        message: text,
        details: Some(details),
    }
}
