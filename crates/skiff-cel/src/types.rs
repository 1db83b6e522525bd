//! Static types of CEL expressions, to refuse at compile time what upstream's type checker
//! refuses: an operator applied to operands no overload of it takes (`self.replicas + 'a'`,
//! `self.name > 3`, `!self.count`). The `cel` crate evaluates without a checker, so without
//! this such a rule is accepted when its CRD is written and fails on every object.
//!
//! Conservative by construction: a type that cannot be told statically (a function's result,
//! an int-or-string, a preserved unknown field, an object) is `Dyn`, and an operand of type
//! `Dyn` satisfies every overload, so a rule upstream accepts is never refused here. Types
//! come from the variables' OpenAPI schemas as upstream maps them (`integer` → int, `number`
//! → double, `string` with format `date-time` → timestamp, `duration` → duration, `byte` →
//! bytes, arrays → list, `additionalProperties` → map).

use crate::{schema, CompileError, Env};
use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use serde_json::Value;

/// A CEL type, as far as it is known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty<'e> {
    Int,
    Uint,
    Double,
    String,
    Bool,
    Bytes,
    Null,
    Duration,
    Timestamp,
    List(Box<Ty<'e>>),
    Map(Box<Ty<'e>>, Box<Ty<'e>>),
    /// An object whose schema has properties: fields are typed from it.
    Object(&'e Value),
    /// Unknown statically.
    Dyn,
}

impl Ty<'_> {
    /// The name cel-go's checker prints in its overload errors.
    fn name(&self) -> String {
        match self {
            Ty::Int => "int".into(),
            Ty::Uint => "uint".into(),
            Ty::Double => "double".into(),
            Ty::String => "string".into(),
            Ty::Bool => "bool".into(),
            Ty::Bytes => "bytes".into(),
            Ty::Null => "null_type".into(),
            Ty::Duration => "google.protobuf.Duration".into(),
            Ty::Timestamp => "google.protobuf.Timestamp".into(),
            Ty::List(t) => format!("list({})", t.name()),
            Ty::Map(k, v) => format!("map({}, {})", k.name(), v.name()),
            Ty::Object(_) | Ty::Dyn => "dyn".into(),
        }
    }

    /// Whether the type is fully known (no `Dyn` or object anywhere in it): only such
    /// operands can be found to match no overload.
    fn known(&self) -> bool {
        match self {
            Ty::Dyn | Ty::Object(_) => false,
            Ty::List(t) => t.known(),
            Ty::Map(k, v) => k.known() && v.known(),
            _ => true,
        }
    }

    fn numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }
}

/// The type a schema gives its values.
pub(crate) fn of_schema(s: &Value) -> Ty<'_> {
    if schema::int_or_string(s) {
        return Ty::Dyn;
    }
    match schema::type_of(s) {
        Some("integer") => Ty::Int,
        Some("number") => Ty::Double,
        Some("boolean") => Ty::Bool,
        Some("string") => match schema::format_of(s) {
            Some("date-time") | Some("date") => Ty::Timestamp,
            Some("duration") => Ty::Duration,
            Some("byte") => Ty::Bytes,
            _ => Ty::String,
        },
        Some("array") => Ty::List(Box::new(schema::items(s).map_or(Ty::Dyn, of_schema))),
        Some("object") => {
            if schema::flag(s, "x-kubernetes-preserve-unknown-fields")
                || schema::flag(s, "x-kubernetes-embedded-resource")
            {
                Ty::Dyn
            } else if let Some(v) = schema::additional_properties(s) {
                Ty::Map(Box::new(Ty::String), Box::new(of_schema(v)))
            } else if schema::properties(s).is_some() {
                Ty::Object(s)
            } else {
                Ty::Dyn
            }
        }
        _ => Ty::Dyn,
    }
}

/// Comprehension variables in scope, innermost last.
type Scope<'e> = Vec<(String, Ty<'e>)>;

pub(crate) struct Typer<'e> {
    pub(crate) env: &'e Env,
    /// Where an error is: 1-based line and column of a node.
    pub(crate) position: &'e dyn Fn(u64) -> (usize, usize),
}

impl<'e> Typer<'e> {
    /// The type of `e`, checking every operator application on the way.
    pub(crate) fn infer(
        &self,
        e: &IdedExpr,
        scope: &mut Scope<'e>,
    ) -> Result<Ty<'e>, CompileError> {
        Ok(match &e.expr {
            Expr::Unspecified => Ty::Dyn,
            Expr::Literal(l) => match l {
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::UInt(_) => Ty::Uint,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Null => Ty::Null,
            },
            Expr::Ident(name) => match scope.iter().rev().find(|(n, _)| n == name) {
                Some((_, t)) => t.clone(),
                None => self
                    .env
                    .variable(name)
                    .filter(|v| !v.optional)
                    .and_then(|v| v.schema.as_deref())
                    .map_or(Ty::Dyn, of_schema),
            },
            Expr::Select(s) => {
                let operand = self.infer(&s.operand, scope)?;
                if s.test {
                    Ty::Bool
                } else {
                    match operand {
                        Ty::Object(parent) => schema::property_by_cel_name(parent, &s.field)
                            .map_or(Ty::Dyn, of_schema),
                        Ty::Map(_, v) => *v,
                        _ => Ty::Dyn,
                    }
                }
            }
            Expr::Call(call) => {
                if let Some(t) = &call.target {
                    self.infer(t, scope)?;
                }
                let args = call
                    .args
                    .iter()
                    .map(|a| self.infer(a, scope))
                    .collect::<Result<Vec<_>, _>>()?;
                if call.target.is_some() {
                    method_result(&call.func_name)
                } else {
                    self.apply(&call.func_name, &args, e.id)?
                }
            }
            Expr::List(list) => {
                let mut element: Option<Ty> = None;
                for x in &list.elements {
                    let t = self.infer(x, scope)?;
                    element = Some(match element {
                        Some(prev) if prev == t => prev,
                        Some(_) => Ty::Dyn,
                        None => t,
                    });
                }
                Ty::List(Box::new(element.unwrap_or(Ty::Dyn)))
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(m) => {
                            self.infer(&m.key, scope)?;
                            self.infer(&m.value, scope)?;
                        }
                        EntryExpr::StructField(f) => {
                            self.infer(&f.value, scope)?;
                        }
                    }
                }
                Ty::Map(Box::new(Ty::Dyn), Box::new(Ty::Dyn))
            }
            Expr::Struct(_) => Ty::Dyn,
            Expr::Comprehension(c) => {
                let range = self.infer(&c.iter_range, scope)?;
                let accu = self.infer(&c.accu_init, scope)?;
                // One variable: a list's element or a map's key; two: index and element,
                // or key and value.
                let (one, two) = match range {
                    Ty::List(t) => ((*t).clone(), (Ty::Int, *t)),
                    Ty::Map(k, v) => ((*k).clone(), (*k, *v)),
                    _ => (Ty::Dyn, (Ty::Dyn, Ty::Dyn)),
                };
                let depth = scope.len();
                scope.push((c.accu_var.clone(), accu));
                match &c.iter_var2 {
                    None => scope.push((c.iter_var.clone(), one)),
                    Some(v2) => {
                        scope.push((c.iter_var.clone(), two.0));
                        scope.push((v2.clone(), two.1));
                    }
                }
                let body = self
                    .infer(&c.loop_cond, scope)
                    .and_then(|_| self.infer(&c.loop_step, scope));
                // The result sees the accumulator only.
                let result = body.and_then(|_| {
                    scope.truncate(depth + 1);
                    self.infer(&c.result, scope)
                });
                scope.truncate(depth);
                // A `map` accumulates a list of whatever its transform gives.
                match result? {
                    Ty::List(_) => Ty::List(Box::new(Ty::Dyn)),
                    other => other,
                }
            }
        })
    }

    /// The result of a global function or operator, refusing operands that no overload of an
    /// operator takes.
    fn apply(&self, func: &str, args: &[Ty<'e>], id: u64) -> Result<Ty<'e>, CompileError> {
        let result = match (func, args) {
            ("_+_", [a, b]) => add(a, b),
            ("_-_", [a, b]) => sub(a, b),
            ("_*_" | "_/_", [a, b]) => same_numeric(a, b),
            ("_%_", [a, b]) => match (a, b) {
                (Ty::Int, Ty::Int) => Some(Ty::Int),
                (Ty::Uint, Ty::Uint) => Some(Ty::Uint),
                _ => None,
            },
            ("_<_" | "_<=_" | "_>_" | "_>=_", [a, b]) => ordered(a, b).then_some(Ty::Bool),
            ("_==_" | "_!=_", [a, b]) => comparable(a, b).then_some(Ty::Bool),
            ("_&&_" | "_||_", [a, b]) => {
                (matches!(a, Ty::Bool) && matches!(b, Ty::Bool)).then_some(Ty::Bool)
            }
            ("!_", [a]) => matches!(a, Ty::Bool).then_some(Ty::Bool),
            ("-_", [a]) => matches!(a, Ty::Int | Ty::Double).then(|| a.clone()),
            ("_?_:_", [c, a, b]) => {
                if !matches!(c, Ty::Bool) {
                    None
                } else if a == b {
                    Some(a.clone())
                } else if !a.known() || !b.known() || *a == Ty::Null || *b == Ty::Null {
                    Some(Ty::Dyn)
                } else {
                    None
                }
            }
            ("@in", [a, b]) => match b {
                Ty::List(t) | Ty::Map(t, _) => comparable(a, t).then_some(Ty::Bool),
                _ => None,
            },
            ("_[_]", [a, i]) => match (a, i) {
                (Ty::List(t), Ty::Int | Ty::Uint) => Some((**t).clone()),
                (Ty::List(_), _) => None,
                (Ty::Map(k, v), key) => comparable(k, key).then(|| (**v).clone()),
                _ => Some(Ty::Dyn),
            },
            ("size", [a]) => {
                matches!(a, Ty::String | Ty::Bytes | Ty::List(_) | Ty::Map(..)).then_some(Ty::Int)
            }
            ("int", _) => Some(Ty::Int),
            ("uint", _) => Some(Ty::Uint),
            ("double", _) => Some(Ty::Double),
            ("string", _) => Some(Ty::String),
            ("bool", _) => Some(Ty::Bool),
            ("bytes", _) => Some(Ty::Bytes),
            ("duration", _) => Some(Ty::Duration),
            ("timestamp", _) => Some(Ty::Timestamp),
            ("matches", _) => Some(Ty::Bool),
            _ => return Ok(Ty::Dyn),
        };
        match result {
            Some(t) => Ok(t),
            // An operand that is not fully known may be of a type some overload takes.
            None if args.iter().any(|a| !a.known()) => Ok(Ty::Dyn),
            None => {
                let (line, column) = (self.position)(id);
                Err(CompileError::NoMatchingOverload {
                    function: func.to_string(),
                    arguments: args.iter().map(Ty::name).collect::<Vec<_>>().join(", "),
                    line,
                    column,
                })
            }
        }
    }
}

/// Result types of the methods whose type is certain; others are `Dyn`.
fn method_result<'e>(name: &str) -> Ty<'e> {
    match name {
        "contains" | "startsWith" | "endsWith" | "matches" | "isSorted" | "hasValue" => Ty::Bool,
        "size" | "indexOf" | "lastIndexOf" => Ty::Int,
        "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "charAt" | "join" => {
            Ty::String
        }
        _ => Ty::Dyn,
    }
}

fn add<'e>(a: &Ty<'e>, b: &Ty<'e>) -> Option<Ty<'e>> {
    match (a, b) {
        (Ty::Int, Ty::Int) | (Ty::Uint, Ty::Uint) | (Ty::Double, Ty::Double) => Some(a.clone()),
        (Ty::String, Ty::String) | (Ty::Bytes, Ty::Bytes) => Some(a.clone()),
        (Ty::Duration, Ty::Duration) => Some(Ty::Duration),
        (Ty::Timestamp, Ty::Duration) | (Ty::Duration, Ty::Timestamp) => Some(Ty::Timestamp),
        (Ty::List(x), Ty::List(y)) => Some(if x == y {
            a.clone()
        } else {
            Ty::List(Box::new(Ty::Dyn))
        }),
        _ => None,
    }
}

fn sub<'e>(a: &Ty<'e>, b: &Ty<'e>) -> Option<Ty<'e>> {
    match (a, b) {
        (Ty::Int, Ty::Int) | (Ty::Uint, Ty::Uint) | (Ty::Double, Ty::Double) => Some(a.clone()),
        (Ty::Timestamp, Ty::Timestamp) => Some(Ty::Duration),
        (Ty::Timestamp, Ty::Duration) => Some(Ty::Timestamp),
        (Ty::Duration, Ty::Duration) => Some(Ty::Duration),
        _ => None,
    }
}

fn same_numeric<'e>(a: &Ty<'e>, b: &Ty<'e>) -> Option<Ty<'e>> {
    (a.numeric() && a == b).then(|| a.clone())
}

/// `<` and friends: the same orderable type, or two numbers (Kubernetes enables cel-go's
/// cross-type numeric comparisons).
fn ordered(a: &Ty, b: &Ty) -> bool {
    let orderable = |t: &Ty| {
        matches!(
            t,
            Ty::Int
                | Ty::Uint
                | Ty::Double
                | Ty::String
                | Ty::Bytes
                | Ty::Bool
                | Ty::Duration
                | Ty::Timestamp
        )
    };
    (a == b && orderable(a)) || (a.numeric() && b.numeric())
}

/// `==`: the same type (lists and maps element-wise), two numbers, or null against
/// anything.
fn comparable(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Ty::Null, _) | (_, Ty::Null) => true,
        (x, y) if !x.known() || !y.known() => true,
        (x, y) if x.numeric() && y.numeric() => true,
        (Ty::List(x), Ty::List(y)) => comparable(x, y),
        (Ty::Map(k1, v1), Ty::Map(k2, v2)) => comparable(k1, k2) && comparable(v1, v2),
        (x, y) => x == y,
    }
}
