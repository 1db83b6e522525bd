//! Cost: a static worst-case estimate from the schemas' size bounds, checked against
//! [`crate::STATIC_ESTIMATED_COST_LIMIT`] at compile time, and the same estimate over the
//! actual inputs, checked against [`crate::PER_CALL_LIMIT`] before an evaluation.
//!
//! The model follows cel-go's estimator and upstream's library costs in outline (literals
//! free, an identifier or field 1, a list literal 10, a map literal 30, a comprehension its
//! range's size times its body, string work a tenth of a unit per character, a regex match
//! the string's cost times a quarter of the pattern's length, list functions one per
//! element), not to the unit. Simplifications, stated so callers don't rely on more:
//! - Unbounded sizes come from upstream's 3 MiB request bound divided by the element's
//!   smallest JSON size, as upstream does; map keys share the request bound among
//!   `maxProperties` keys.
//! - The per-call check is not a running meter: the `cel` crate has none. When the static
//!   estimate already fits the per-call limit the program runs unmetered (it cannot exceed
//!   it); otherwise the estimate is recomputed with the actual sizes of the bound values and
//!   the evaluation refused if that exceeds the limit. That bound is never lower than
//!   upstream's actual cost for the same model, so it may refuse an evaluation that
//!   short-circuits early where upstream would not.

use crate::{schema, Bindings, Env, Variable};
use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use serde_json::Value;

/// Upstream's bound on a request body, from which unbounded sizes are derived.
const MAX_REQUEST_BYTES: u64 = 3 * 1024 * 1024;

/// What the estimator knows about a value: a schema node, the actual values it may be (for
/// the per-call bound), or just a size bound.
#[derive(Clone, Debug)]
enum Shape<'s> {
    /// A value described by a schema node.
    Schema(&'s Value),
    /// A value that is one of these JSON values (the per-call estimate).
    Json(Vec<&'s Value>),
    /// A computed value at most this large (characters, elements or entries).
    Sized(u64),
    /// Nothing known: bounded by the request size only.
    Dynamic,
}

/// The static estimate of `expr` under `env`'s schemas.
pub(crate) fn estimate(expr: &IdedExpr, env: &Env) -> u64 {
    let lookup = |name: &str| -> Option<Shape<'_>> {
        env.variable(name).map(|v| match v.schema.as_deref() {
            Some(s) => Shape::Schema(s),
            None => Shape::Dynamic,
        })
    };
    let mut scope = Vec::new();
    Estimator { lookup: &lookup }.cost(expr, &mut scope).0
}

/// The estimate of `expr` with the sizes of the values in `bindings`.
pub(crate) fn estimate_actual(
    expr: &IdedExpr,
    variables: &[Variable],
    bindings: &Bindings<'_>,
) -> u64 {
    let lookup = |name: &str| -> Option<Shape<'_>> {
        variables
            .iter()
            .find(|v| v.name == name)
            .map(|v| match bindings.get(&v.name) {
                Some(json) => Shape::Json(vec![json]),
                None => Shape::Sized(0),
            })
    };
    let mut scope = Vec::new();
    Estimator { lookup: &lookup }.cost(expr, &mut scope).0
}

/// How far `cost` exceeds `limit`, printed as upstream does.
pub fn factor(cost: u64, limit: u64) -> String {
    let f = cost as f64 / limit.max(1) as f64;
    if f > 100.0 {
        "more than 100x".into()
    } else if f < 1.5 {
        format!("{f:.6}x")
    } else {
        format!("{f:.1}x")
    }
}

type Lookup<'l> = dyn Fn(&str) -> Option<Shape<'l>> + 'l;

struct Estimator<'l> {
    lookup: &'l Lookup<'l>,
}

/// Smallest JSON encoding of a value of this schema: how many can fit a request.
fn min_json_size(s: &Value) -> u64 {
    if schema::int_or_string(s) {
        return 1;
    }
    match schema::type_of(s) {
        Some("string") => 2,
        Some("boolean") => 4,
        Some("integer") | Some("number") => 1,
        Some("array") => 2,
        Some("object") => 2,
        _ => 1,
    }
}

/// Upper bound of the size of a value of this shape.
fn size_of(shape: &Shape<'_>) -> u64 {
    match shape {
        Shape::Schema(s) => {
            let declared = match schema::type_of(s) {
                Some("string") => schema::max(s, "maxLength"),
                Some("array") => schema::max(s, "maxItems"),
                Some("object") => schema::max(s, "maxProperties"),
                _ => None,
            };
            declared.unwrap_or_else(|| match schema::type_of(s) {
                Some("array") => {
                    let item = schema::items(s).map(min_json_size).unwrap_or(1);
                    (MAX_REQUEST_BYTES - 2) / (item + 1)
                }
                Some("object") => {
                    let value = schema::additional_properties(s)
                        .map(min_json_size)
                        .unwrap_or(1);
                    (MAX_REQUEST_BYTES - 2) / (value + 4)
                }
                Some("string") => MAX_REQUEST_BYTES - 2,
                Some(_) if !schema::int_or_string(s) => 1,
                _ => MAX_REQUEST_BYTES - 2,
            })
        }
        Shape::Json(values) => values
            .iter()
            .map(|v| match v {
                Value::String(s) => s.chars().count() as u64,
                Value::Array(a) => a.len() as u64,
                Value::Object(o) => o.len() as u64,
                _ => 1,
            })
            .max()
            .unwrap_or(0),
        Shape::Sized(n) => *n,
        Shape::Dynamic => MAX_REQUEST_BYTES,
    }
}

/// The shape of field `name` of a value of this shape.
fn field<'s>(shape: &Shape<'s>, name: &str) -> Shape<'s> {
    match shape {
        Shape::Schema(s) => {
            if let Some(p) = schema::property_by_cel_name(s, name) {
                return Shape::Schema(p);
            }
            match schema::additional_properties(s) {
                Some(Value::Null) | None => Shape::Dynamic,
                Some(a) => Shape::Schema(a),
            }
        }
        Shape::Json(values) => Shape::Json(
            values
                .iter()
                .filter_map(|v| v.as_object())
                .flat_map(|o| {
                    o.iter()
                        .filter(move |(k, _)| {
                            k.as_str() == name || schema::escape(k).as_deref() == Some(name)
                        })
                        .map(|(_, v)| v)
                })
                .collect(),
        ),
        Shape::Sized(_) | Shape::Dynamic => Shape::Dynamic,
    }
}

/// The shape of what a comprehension over a value of this shape binds: list elements or map
/// keys.
fn element<'s>(shape: &Shape<'s>) -> Shape<'s> {
    match shape {
        Shape::Schema(s) => match schema::type_of(s) {
            Some("array") => schema::items(s)
                .map(Shape::Schema)
                .unwrap_or(Shape::Dynamic),
            Some("object") => Shape::Sized(MAX_REQUEST_BYTES / size_of(shape).max(1)),
            _ => Shape::Dynamic,
        },
        Shape::Json(values) => {
            let mut out = Vec::new();
            let mut key_len = 0;
            for v in values {
                match v {
                    Value::Array(a) => out.extend(a.iter()),
                    Value::Object(o) => {
                        key_len = o
                            .keys()
                            .map(|k| k.len() as u64)
                            .max()
                            .unwrap_or(0)
                            .max(key_len)
                    }
                    _ => {}
                }
            }
            if out.is_empty() && key_len > 0 {
                Shape::Sized(key_len)
            } else {
                Shape::Json(out)
            }
        }
        Shape::Sized(n) => Shape::Sized(*n),
        Shape::Dynamic => Shape::Dynamic,
    }
}

/// `ceil(n * 0.1)`: cel-go's string traversal factor.
fn tenth(n: u64) -> u64 {
    n.div_ceil(10)
}

impl<'l> Estimator<'l> {
    /// The cost of `e` and the shape of its value.
    fn cost(&self, e: &IdedExpr, scope: &mut Vec<(String, Shape<'l>)>) -> (u64, Shape<'l>) {
        match &e.expr {
            Expr::Unspecified => (0, Shape::Sized(0)),
            Expr::Literal(l) => (
                0,
                Shape::Sized(match l {
                    LiteralValue::String(s) => s.inner().chars().count() as u64,
                    LiteralValue::Bytes(b) => b.inner().len() as u64,
                    _ => 1,
                }),
            ),
            Expr::Ident(name) => {
                if let Some((_, shape)) = scope.iter().rev().find(|(n, _)| n == name) {
                    return (1, shape.clone());
                }
                (1, (self.lookup)(name).unwrap_or(Shape::Dynamic))
            }
            Expr::Select(s) => {
                let (c, shape) = self.cost(&s.operand, scope);
                (c.saturating_add(1), field(&shape, &s.field))
            }
            Expr::List(l) => {
                let mut cost: u64 = 10;
                for x in &l.elements {
                    cost = cost.saturating_add(self.cost(x, scope).0);
                }
                (cost, Shape::Sized(l.elements.len() as u64))
            }
            Expr::Map(m) => {
                let mut cost: u64 = 30;
                for entry in &m.entries {
                    cost = cost.saturating_add(match &entry.expr {
                        EntryExpr::MapEntry(me) => self
                            .cost(&me.key, scope)
                            .0
                            .saturating_add(self.cost(&me.value, scope).0),
                        EntryExpr::StructField(f) => self.cost(&f.value, scope).0,
                    });
                }
                (cost, Shape::Sized(m.entries.len() as u64))
            }
            Expr::Struct(_) => (40, Shape::Dynamic),
            Expr::Comprehension(c) => {
                let (range_cost, range) = self.cost(&c.iter_range, scope);
                let n = size_of(&range);
                let (init_cost, _) = self.cost(&c.accu_init, scope);
                let depth = scope.len();
                scope.push((c.accu_var.clone(), Shape::Sized(n)));
                scope.push((c.iter_var.clone(), element(&range)));
                if let Some(v2) = &c.iter_var2 {
                    scope.push((v2.clone(), Shape::Dynamic));
                }
                let body = self
                    .cost(&c.loop_cond, scope)
                    .0
                    .saturating_add(self.cost(&c.loop_step, scope).0);
                scope.truncate(depth + 1);
                let (result_cost, _) = self.cost(&c.result, scope);
                scope.truncate(depth);
                let cost = range_cost
                    .saturating_add(init_cost)
                    .saturating_add(n.saturating_mul(body))
                    .saturating_add(result_cost);
                // map/filter build lists as long as their range.
                (cost, Shape::Sized(n))
            }
            Expr::Call(call) => self.call(call, scope),
        }
    }

    fn call(
        &self,
        call: &cel::common::ast::CallExpr,
        scope: &mut Vec<(String, Shape<'l>)>,
    ) -> (u64, Shape<'l>) {
        let target = call.target.as_ref().map(|t| self.cost(t, scope));
        let args: Vec<(u64, Shape<'l>)> = call.args.iter().map(|a| self.cost(a, scope)).collect();
        let mut cost = target.as_ref().map(|t| t.0).unwrap_or(0);
        let name = call.func_name.as_str();
        if name == "_?_:_" {
            let branch = args
                .get(1)
                .map(|a| a.0)
                .unwrap_or(0)
                .max(args.get(2).map(|a| a.0).unwrap_or(0));
            let shape = match (args.get(1), args.get(2)) {
                (Some(a), Some(b)) => Shape::Sized(size_of(&a.1).max(size_of(&b.1))),
                _ => Shape::Dynamic,
            };
            return (
                args.first()
                    .map(|a| a.0)
                    .unwrap_or(0)
                    .saturating_add(branch),
                shape,
            );
        }
        for a in &args {
            cost = cost.saturating_add(a.0);
        }
        let receiver = target.as_ref().map(|t| &t.1).or(args.first().map(|a| &a.1));
        let receiver_size = receiver.map(size_of).unwrap_or(1);
        let arg_size = |i: usize| {
            let offset = if target.is_some() { 0 } else { 1 };
            args.get(i + offset).map(|a| size_of(&a.1)).unwrap_or(1)
        };
        let (own, shape) = match name {
            "_&&_" | "_||_" | "!_" | "@not_strictly_false" | "-_" => (0, Shape::Sized(1)),
            "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" => {
                let min = args.iter().map(|a| size_of(&a.1)).min().unwrap_or(1);
                (1 + tenth(min), Shape::Sized(1))
            }
            "_+_" => {
                let total = args
                    .iter()
                    .map(|a| size_of(&a.1))
                    .fold(0u64, u64::saturating_add);
                (1 + tenth(total), Shape::Sized(total))
            }
            "@in" => (
                args.get(1).map(|a| size_of(&a.1)).unwrap_or(1).max(1),
                Shape::Sized(1),
            ),
            "_[_]" | "_[?_]" | "_?._" => {
                let shape = match (args.first(), args.get(1)) {
                    (Some(c), Some(k)) => match &call.args[1].expr {
                        Expr::Literal(LiteralValue::String(s)) => field(&c.1, s.inner()),
                        _ => match &c.1 {
                            Shape::Schema(s) if schema::type_of(s) == Some("array") => {
                                element(&c.1)
                            }
                            Shape::Schema(s) => schema::additional_properties(s)
                                .filter(|a| !a.is_null())
                                .map(Shape::Schema)
                                .unwrap_or(Shape::Dynamic),
                            Shape::Json(_) => {
                                let _ = k;
                                element(&c.1)
                            }
                            _ => Shape::Dynamic,
                        },
                    },
                    _ => Shape::Dynamic,
                };
                (1, shape)
            }
            "matches" | "@k8s_matches" | "find" | "findAll" => {
                let pattern = if target.is_some() {
                    arg_size(0)
                } else {
                    arg_size(1)
                };
                let string_cost = tenth(receiver_size.saturating_add(1));
                let regex_cost = pattern.div_ceil(4).max(1);
                (
                    string_cost.saturating_mul(regex_cost),
                    Shape::Sized(receiver_size),
                )
            }
            "contains" | "startsWith" | "endsWith" | "indexOf" | "lastIndexOf" | "charAt" => {
                (1 + tenth(receiver_size), Shape::Sized(receiver_size))
            }
            "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "reverse"
            | "split" => (1 + tenth(receiver_size), Shape::Sized(receiver_size)),
            "join" => (1 + receiver_size, Shape::Dynamic),
            "isSorted" | "sum" | "min" | "max" | "distinct" | "sort" | "flatten" | "slice" => {
                (1 + receiver_size, Shape::Sized(receiver_size))
            }
            "url" | "isURL" | "ip" | "isIP" | "cidr" | "isCIDR" | "quantity" | "isQuantity"
            | "ip.isCanonical" | "validate" => (1 + tenth(receiver_size), Shape::Sized(1)),
            "string" => (1, Shape::Sized(receiver_size.max(20))),
            "size" | "has" => (1, Shape::Sized(1)),
            _ => (1, Shape::Dynamic),
        };
        (cost.saturating_add(own), shape)
    }
}
