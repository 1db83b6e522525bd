//! Kubernetes' CEL environment — CRD `x-kubernetes-validations` rules and
//! ValidatingAdmissionPolicy expressions — on wire-form JSON, built on the `cel` crate.
//!
//! The `cel` crate parses and evaluates; this crate adds what Kubernetes layers on top:
//! variables declared with OpenAPI schemas (which decide ints vs doubles, int-or-string,
//! timestamps, property-name escaping), the Kubernetes function libraries (`library`),
//! a compile-time check of references (`check`), static and per-call cost limits (`cost`),
//! and a guard so that no expression can panic the caller.
//!
//! ```
//! use serde_json::json;
//! use skiff_cel::{Bindings, Env, Program};
//!
//! let schema = json!({"type": "object", "properties": {"replicas": {"type": "integer"}}});
//! let env = Env::crd_rule(&schema, false);
//! let program = Program::compile("self.replicas <= 10", &env).unwrap();
//! let object = json!({"replicas": 3});
//! let result = program.eval(&Bindings::new().with("self", &object)).unwrap();
//! assert_eq!(result, json!(true));
//! ```

mod check;
mod convert;
pub mod cost;
mod errors;
mod lazy;
mod library;
mod schema;
mod types;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

pub use errors::{CompileError, EvalError};

/// Upstream's per-evaluation runtime cost limit (`PerCallLimit`).
pub const PER_CALL_LIMIT: u64 = 1_000_000;

/// Upstream's runtime cost budget for all the rules evaluated on one custom resource
/// (`RuntimeCELCostBudget`): a caller sums [`Program::eval_with_cost`]'s charges against it.
pub const RUNTIME_COST_BUDGET: u64 = 10_000_000;

/// Programs whose static estimate is at most this are charged the estimate by
/// [`Program::eval_with_cost`]: cheap rules without loops over the input, where bounding the
/// charge by the input's sizes would cost more than running them. Over-charging them is at
/// most this much per evaluation, a hundred-thousandth of [`RUNTIME_COST_BUDGET`].
pub const CHEAP_PROGRAM_COST: u64 = 100;

/// Upstream's limit on one CRD rule's statically estimated cost
/// (`StaticEstimatedCostLimit`).
pub const STATIC_ESTIMATED_COST_LIMIT: u64 = 10_000_000;

/// The variables an expression may use, each with the OpenAPI schema that types it.
///
/// A schema decides how a JSON value becomes a CEL value (an `integer` field is an `int`, a
/// `number` field a `double` even when written `1`, `x-kubernetes-int-or-string` either,
/// `format: date-time` a timestamp) and bounds its size for cost estimation. A variable
/// without a schema is dynamic: JSON converted as it comes, sizes unbounded.
#[derive(Clone, Debug)]
pub struct Env {
    variables: Vec<Variable>,
    cost_limit: u64,
    per_call_limit: u64,
}

/// One declared variable.
#[derive(Clone, Debug)]
struct Variable {
    name: String,
    schema: Option<Arc<serde_json::Value>>,
    /// Bound as an optional (`optionalOldSelf`): `optional.none()` when not bound.
    optional: bool,
}

/// The variables of a ValidatingAdmissionPolicy (or MutatingAdmissionPolicy) expression.
///
/// Schemas are optional: without one, `object`, `oldObject`, `params` and `namespaceObject`
/// are dynamic and only the per-call cost limit bounds them, as upstream does for kinds whose
/// schema it can't resolve.
#[derive(Clone, Debug, Default)]
pub struct AdmissionVariables<'a> {
    /// Schema of `object` and `oldObject` (the resource the policy matches).
    pub object_schema: Option<&'a serde_json::Value>,
    /// Schema of `params`, when the policy has a `paramKind`.
    pub params_schema: Option<&'a serde_json::Value>,
    /// Whether `params` is declared (the policy has a `paramKind`).
    pub has_params: bool,
    /// Names of the policy's `variables`, reachable as `variables.<name>`.
    pub variable_names: Vec<String>,
}

impl Env {
    /// An environment with no variables; add them with [`Env::with_variable`].
    pub fn new() -> Env {
        Env {
            variables: Vec::new(),
            cost_limit: STATIC_ESTIMATED_COST_LIMIT,
            per_call_limit: PER_CALL_LIMIT,
        }
    }

    /// The environment of a CRD `x-kubernetes-validations` rule on the node with `schema`:
    /// `self`, and `oldSelf` when the rule may be a transition rule (upstream declares
    /// `oldSelf` on every rule and decides by use; pass `true` unless the caller knows there
    /// is never an old object).
    pub fn crd_rule(schema: &serde_json::Value, has_old_self: bool) -> Env {
        let schema = Arc::new(schema.clone());
        let mut env = Env::new();
        env.variables.push(Variable {
            name: "self".into(),
            schema: Some(schema.clone()),
            optional: false,
        });
        if has_old_self {
            env.variables.push(Variable {
                name: "oldSelf".into(),
                schema: Some(schema),
                optional: false,
            });
        }
        env
    }

    /// Makes `oldSelf` an optional (upstream's `optionalOldSelf: true`): the rule then also
    /// runs on create, with `oldSelf` bound to `optional.none()`.
    pub fn with_optional_old_self(mut self) -> Env {
        for v in &mut self.variables {
            if v.name == "oldSelf" {
                v.optional = true;
            }
        }
        self
    }

    /// The environment of a ValidatingAdmissionPolicy expression: `object`, `oldObject`,
    /// `request`, `namespaceObject`, `variables`, `authorizer` and, with a param kind,
    /// `params`.
    ///
    /// `request` and `namespaceObject` are dynamic (their shape is fixed by the API, and their
    /// sizes by the request); `variables` is a map the caller fills with the values of the
    /// composited variables it evaluated before. `authorizer` is declared so that
    /// expressions naming it compile, but its library is not implemented (see the crate
    /// README section in the report): calling it fails at evaluation.
    pub fn admission(vars: &AdmissionVariables<'_>) -> Env {
        let object = vars.object_schema.map(|s| Arc::new(s.clone()));
        let mut env = Env::new();
        let mut push = |name: &str, schema: Option<Arc<serde_json::Value>>| {
            env.variables.push(Variable {
                name: name.into(),
                schema,
                optional: false,
            })
        };
        push("object", object.clone());
        push("oldObject", object);
        push("request", None);
        push("namespaceObject", None);
        push("authorizer", None);
        let properties: serde_json::Map<String, serde_json::Value> = vars
            .variable_names
            .iter()
            .map(|n| (n.clone(), serde_json::json!({})))
            .collect();
        push(
            "variables",
            Some(Arc::new(serde_json::json!({
                "type": "object",
                "properties": properties,
                "x-skiff-dynamic-properties": true,
            }))),
        );
        if vars.has_params {
            push("params", vars.params_schema.map(|s| Arc::new(s.clone())));
        }
        env
    }

    /// Declares one more variable; `schema` `None` makes it dynamic.
    pub fn with_variable(mut self, name: &str, schema: Option<&serde_json::Value>) -> Env {
        self.variables.retain(|v| v.name != name);
        self.variables.push(Variable {
            name: name.into(),
            schema: schema.map(|s| Arc::new(s.clone())),
            optional: false,
        });
        self
    }

    /// Overrides the static estimated cost limit (default
    /// [`STATIC_ESTIMATED_COST_LIMIT`]); `u64::MAX` disables the check.
    pub fn with_cost_limit(mut self, limit: u64) -> Env {
        self.cost_limit = limit;
        self
    }

    /// Overrides the per-evaluation cost limit (default [`PER_CALL_LIMIT`]).
    pub fn with_per_call_limit(mut self, limit: u64) -> Env {
        self.per_call_limit = limit;
        self
    }

    fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().find(|v| v.name == name)
    }
}

impl Default for Env {
    fn default() -> Env {
        Env::new()
    }
}

/// The `cel` environment every program shares: the standard library, the optional types,
/// the strings and lists extensions, and the Kubernetes libraries. Built once, as building
/// registers a few hundred overloads.
fn cel_env() -> &'static Arc<cel::Env> {
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(library::build_env()))
}

/// A compiled expression: parsed and checked once, evaluated many times, shareable across
/// threads.
#[derive(Debug)]
pub struct Program {
    /// The parsed expression, with `matches` calls pointed at the cached-regex overload.
    expression: cel::IdedExpr,
    variables: Vec<Variable>,
    uses_old_self: bool,
    estimated_cost: u64,
    per_call_limit: u64,
}

impl Program {
    /// Parses `expression`, checks that it names only declared variables and known functions,
    /// and estimates its cost against `env`'s schemas.
    pub fn compile(expression: &str, env: &Env) -> Result<Program, CompileError> {
        let parsed = guard(|| cel_env().compile(expression));
        let program = match parsed {
            None => {
                return Err(CompileError::Internal {
                    message: "the CEL parser panicked".into(),
                })
            }
            Some(Err(errors)) => {
                return Err(CompileError::Syntax {
                    message: errors.to_string(),
                })
            }
            Some(Ok(p)) => p,
        };
        check::check(&program, env)?;
        let free = check::free_variables(program.expression());
        let used: Vec<Variable> = env
            .variables
            .iter()
            .filter(|v| free.contains(&v.name))
            .cloned()
            .collect();
        let uses_old_self = used.iter().any(|v| v.name == "oldSelf");
        let estimated_cost = cost::estimate(program.expression(), env);
        if estimated_cost > env.cost_limit {
            return Err(CompileError::CostExceeded {
                factor: cost::factor(estimated_cost, env.cost_limit),
            });
        }
        let mut expression = program.expression().clone();
        library::rewrite(&mut expression);
        Ok(Program {
            expression,
            variables: used,
            uses_old_self,
            estimated_cost,
            per_call_limit: env.per_call_limit,
        })
    }

    /// Whether the expression reads `oldSelf`: a transition rule, which upstream only
    /// evaluates on update, when there is an old value.
    pub fn uses_old_self(&self) -> bool {
        self.uses_old_self
    }

    /// The static worst-case cost estimate from the schemas' size bounds (`maxLength`,
    /// `maxItems`, `maxProperties`, else upstream's request-size bounds).
    pub fn estimated_cost(&self) -> u64 {
        self.estimated_cost
    }

    /// Evaluates against `bindings`: a JSON bool for a rule, a string for a
    /// `messageExpression`, any JSON for other expressions.
    pub fn eval(&self, bindings: &Bindings<'_>) -> Result<serde_json::Value, EvalError> {
        if self.estimated_cost > self.per_call_limit {
            // The schema allows costlier inputs than one call may spend: bound the cost with
            // the sizes of these inputs instead (see `cost` for how this differs upstream).
            let actual = cost::estimate_actual(&self.expression, &self.variables, bindings);
            if actual > self.per_call_limit {
                return Err(EvalError::CostLimitExceeded);
            }
        }
        self.run(bindings)
    }

    /// Evaluates as [`Program::eval`] and returns the cost charged for it, for a caller that
    /// keeps a budget over many evaluations (upstream's [`RUNTIME_COST_BUDGET`] across the
    /// rules of one custom resource).
    ///
    /// The `cel` crate has no running meter, so the charge is an upper bound of the run's
    /// cost (see [`cost`]): a program whose static estimate is at most
    /// [`CHEAP_PROGRAM_COST`] is charged that estimate, as bounding it further costs more
    /// than the program; a costlier one is charged its estimate over the sizes of these
    /// inputs. A refused evaluation (over the per-call limit) is charged what it would have
    /// cost.
    pub fn eval_with_cost(
        &self,
        bindings: &Bindings<'_>,
    ) -> (Result<serde_json::Value, EvalError>, u64) {
        let cost = if self.estimated_cost <= CHEAP_PROGRAM_COST {
            self.estimated_cost
        } else {
            cost::estimate_actual(&self.expression, &self.variables, bindings)
                .min(self.estimated_cost)
        };
        if cost > self.per_call_limit {
            return (Err(EvalError::CostLimitExceeded), cost);
        }
        (self.run(bindings), cost)
    }

    /// Converts the bound values and runs the program, unmetered.
    fn run(&self, bindings: &Bindings<'_>) -> Result<serde_json::Value, EvalError> {
        let mut values = Vec::with_capacity(self.variables.len());
        for variable in &self.variables {
            let value = bindings.get(&variable.name);
            let val = match (value, variable.optional) {
                (Some(json), false) => convert::to_val(json, variable.schema.as_deref()),
                (Some(json), true) => convert::to_optional(json, variable.schema.as_deref()),
                (None, true) => convert::none(),
                (None, false) => {
                    return Err(EvalError::Unbound {
                        name: variable.name.clone(),
                    })
                }
            };
            values.push((variable.name.as_str(), val));
        }
        let values = Values(values);
        let mut context = cel::Context::with_env(cel_env().clone());
        context.set_variable_resolver(&values);
        let result = guard(|| {
            cel::Value::resolve_val(&self.expression, &context)
                .map_err(EvalError::from_execution)
                .and_then(|value| convert::val_to_json(value.as_ref()))
        });
        result.unwrap_or_else(|| {
            Err(EvalError::Internal {
                message: "the CEL interpreter panicked".into(),
            })
        })
    }
}

/// The converted variables of one evaluation, looked up by the interpreter: cheaper than
/// the context's own variable map, which copies each name and allocates per evaluation.
struct Values<'a>(Vec<(&'a str, Box<dyn cel::common::value::Val + 'a>)>);

impl cel::context::VariableResolver for Values<'_> {
    fn resolve<'b>(&'b self, name: &str) -> Option<cel::common::value::CowVal<'b, 'b>> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| cel::common::value::CowVal::Borrowed(v.as_ref()))
    }
}

/// The values of a program's variables for one evaluation: names bound to borrowed JSON, so
/// building one copies nothing.
#[derive(Clone, Debug, Default)]
pub struct Bindings<'a> {
    values: Vec<(&'a str, &'a serde_json::Value)>,
}

impl<'a> Bindings<'a> {
    /// No bindings.
    pub fn new() -> Bindings<'a> {
        Bindings { values: Vec::new() }
    }

    /// Binds `name` to `value`, replacing an earlier binding of `name`.
    pub fn with(mut self, name: &'a str, value: &'a serde_json::Value) -> Bindings<'a> {
        self.set(name, value);
        self
    }

    /// Binds `name` to `value` in place.
    pub fn set(&mut self, name: &'a str, value: &'a serde_json::Value) {
        match self.values.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }

    fn get(&self, name: &str) -> Option<&'a serde_json::Value> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// Runs `f`, turning a panic inside the `cel` crate into `None`: an expression is user input
/// and must never take the API server down.
fn guard<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

#[cfg(test)]
mod tests;
