//! The compile-time checks the `cel` crate leaves to its caller: every identifier is a declared
//! variable (or a comprehension's), every function is one the environment registers, every
//! field selected from a value whose schema is known is one the schema declares, and literal
//! arguments that upstream validates at compile time (regexes, quantities, URLs, IPs) are
//! valid.
//!
//! The `cel` crate has no type checker; `types` adds the part of upstream's that refuses
//! operators applied to operands no overload takes (`self.replicas + 'a'`), conservatively
//! (what it cannot type is `dyn`). Schemas are followed through field selection, indexing and
//! comprehension variables over lists; a value computed otherwise (a function's result, a
//! ternary) is unchecked for fields.

use crate::{schema, CompileError, Env};
use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use serde_json::Value;
use std::collections::HashSet;

/// Comprehension variables in scope, innermost last, with the schema of their values when
/// known (an element of a list with `items`).
type Scope<'e> = Vec<(String, Option<&'e Value>)>;

/// Functions and methods the shared environment registers (standard library, optional types,
/// strings and lists extensions, and the Kubernetes libraries), by the name a call spells.
const FUNCTIONS: &[&str] = &[
    // standard library
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "duration",
    "timestamp",
    "type",
    "dyn",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
    // optional types
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "hasValue",
    "value",
    "or",
    "orValue",
    "optMap",
    "optFlatMap",
    // strings extension
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "join",
    "format",
    "strings.quote",
    "reverse",
    // lists extension
    "slice",
    "flatten",
    "distinct",
    "sort",
    "sortBy",
    "lists.range",
    // math extension
    "math.greatest",
    "math.least",
    "math.abs",
    "math.ceil",
    "math.floor",
    "math.round",
    "math.trunc",
    "math.sign",
    "math.isInf",
    "math.isNaN",
    "math.isFinite",
    "math.sqrt",
    "math.bitAnd",
    "math.bitOr",
    "math.bitXor",
    "math.bitNot",
    "math.bitShiftLeft",
    "math.bitShiftRight",
    // encoders
    "base64.encode",
    "base64.decode",
    // Kubernetes lists
    "isSorted",
    "sum",
    "min",
    "max",
    // Kubernetes regex
    "find",
    "findAll",
    // Kubernetes URLs
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    // Kubernetes quantity
    "quantity",
    "isQuantity",
    "compareTo",
    "isLessThan",
    "isGreaterThan",
    "add",
    "sub",
    "asInteger",
    "isInteger",
    "asApproximateFloat",
    "sign",
    // Kubernetes IP and CIDR
    "ip",
    "isIP",
    "cidr",
    "isCIDR",
    "family",
    "containsIP",
    "containsCIDR",
    "prefixLength",
    "masked",
    "isLoopback",
    "isUnspecified",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "ip.isCanonical",
    // Kubernetes format
    "format.dns1123Label",
    "format.dns1123Subdomain",
    "format.dns1035Label",
    "format.qualifiedName",
    "format.dns1123LabelPrefix",
    "format.dns1123SubdomainPrefix",
    "format.dns1035LabelPrefix",
    "format.labelValue",
    "format.uri",
    "format.uuid",
    "format.byte",
    "format.date",
    "format.datetime",
    "format.named",
    "validate",
];

/// Names an expression may use as values without declaring them: the type names.
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "optional_type",
];

/// Runs the checks on a parsed program.
pub(crate) fn check(program: &cel::Program, env: &Env) -> Result<(), CompileError> {
    let checker = Checker {
        env,
        source: &program.source_info().source,
        info: program.source_info(),
    };
    let mut scope = Vec::new();
    checker.expr(program.expression(), &mut scope)?;
    let position = |id| checker.position(id);
    let typer = crate::types::Typer {
        env,
        position: &position,
    };
    typer.infer(program.expression(), &mut Vec::new()).map(drop)
}

struct Checker<'e> {
    env: &'e Env,
    source: &'e str,
    info: &'e cel::common::ast::SourceInfo,
}

impl<'e> Checker<'e> {
    fn expr(&self, e: &IdedExpr, scope: &mut Scope<'e>) -> Result<(), CompileError> {
        match &e.expr {
            Expr::Unspecified | Expr::Literal(_) => Ok(()),
            Expr::Ident(name) => {
                if scope.iter().any(|(s, _)| s == name)
                    || self.env.variable(name).is_some()
                    || TYPE_NAMES.contains(&name.as_str())
                {
                    Ok(())
                } else {
                    Err(self.undeclared(name, e.id))
                }
            }
            Expr::Select(select) => {
                self.expr(&select.operand, scope)?;
                match self.schema_of(&select.operand, scope) {
                    Some(s) if !field_defined(s, &select.field) => {
                        let (line, column) = self.position(e.id);
                        Err(CompileError::UndefinedField {
                            name: select.field.clone(),
                            line,
                            column,
                        })
                    }
                    _ => Ok(()),
                }
            }
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    let qualified =
                        qualified_name(target).map(|t| format!("{t}.{}", call.func_name));
                    match qualified {
                        Some(q) if FUNCTIONS.contains(&q.as_str()) => {}
                        _ => {
                            self.expr(target, scope)?;
                            self.function(&call.func_name, e.id)?;
                        }
                    }
                } else {
                    self.function(&call.func_name, e.id)?;
                }
                for arg in &call.args {
                    self.expr(arg, scope)?;
                }
                self.literal_arguments(&call.func_name, call.target.as_deref(), &call.args, e.id)
            }
            Expr::List(list) => list.elements.iter().try_for_each(|x| self.expr(x, scope)),
            Expr::Map(map) => map.entries.iter().try_for_each(|entry| match &entry.expr {
                EntryExpr::MapEntry(m) => {
                    self.expr(&m.key, scope)?;
                    self.expr(&m.value, scope)
                }
                EntryExpr::StructField(f) => self.expr(&f.value, scope),
            }),
            Expr::Struct(s) => Err(self.undeclared(&s.type_name, e.id)),
            Expr::Comprehension(c) => {
                self.expr(&c.iter_range, scope)?;
                self.expr(&c.accu_init, scope)?;
                // A list's elements have its `items` schema: the value variable of the loop.
                let element = self
                    .schema_of(&c.iter_range, scope)
                    .filter(|s| schema::type_of(s) == Some("array"))
                    .and_then(schema::items);
                let depth = scope.len();
                scope.push((c.accu_var.clone(), None));
                match &c.iter_var2 {
                    None => scope.push((c.iter_var.clone(), element)),
                    Some(v2) => {
                        scope.push((c.iter_var.clone(), None));
                        scope.push((v2.clone(), element));
                    }
                }
                let result = self
                    .expr(&c.loop_cond, scope)
                    .and_then(|_| self.expr(&c.loop_step, scope))
                    .and_then(|_| {
                        scope.truncate(depth + 1);
                        self.expr(&c.result, scope)
                    });
                scope.truncate(depth);
                result
            }
        }
    }

    /// The schema of `e`'s value, when the checker can tell: a declared variable with a
    /// schema, a comprehension variable over a list of known items, and fields or elements
    /// of those.
    fn schema_of(&self, e: &IdedExpr, scope: &Scope<'e>) -> Option<&'e Value> {
        match &e.expr {
            Expr::Ident(name) => match scope.iter().rev().find(|(n, _)| n == name) {
                Some((_, s)) => *s,
                // An optional variable (`optionalOldSelf`) is an optional, not the object.
                None => self
                    .env
                    .variable(name)
                    .filter(|v| !v.optional)
                    .and_then(|v| v.schema.as_deref()),
            },
            Expr::Select(s) if !s.test => {
                let parent = self.schema_of(&s.operand, scope)?;
                schema::property_by_cel_name(parent, &s.field)
                    .or_else(|| schema::additional_properties(parent))
                    .filter(|s| s.is_object())
            }
            Expr::Call(call) if call.func_name == "_[_]" && call.args.len() == 2 => {
                let parent = self.schema_of(&call.args[0], scope)?;
                match schema::type_of(parent) {
                    Some("array") => schema::items(parent),
                    _ => schema::additional_properties(parent).filter(|s| s.is_object()),
                }
            }
            _ => None,
        }
    }

    fn function(&self, name: &str, id: u64) -> Result<(), CompileError> {
        let operator = name.starts_with(['_', '@', '!', '-']);
        if operator || FUNCTIONS.contains(&name) {
            Ok(())
        } else {
            Err(self.undeclared(name, id))
        }
    }

    /// Upstream's libraries validate constant arguments when compiling (`matches` and `find`
    /// with an invalid regex, `quantity('x')`, `url('x')`, `ip('x')`, `cidr('x')`), so a
    /// rule that would fail on every object is refused when the CRD is written.
    fn literal_arguments(
        &self,
        function: &str,
        target: Option<&IdedExpr>,
        args: &[IdedExpr],
        id: u64,
    ) -> Result<(), CompileError> {
        let literal = |e: &IdedExpr| match &e.expr {
            Expr::Literal(LiteralValue::String(s)) => Some(s.inner().to_string()),
            _ => None,
        };
        let problem = match (function, target, args) {
            ("matches" | "find" | "findAll", Some(_), [pattern, ..])
            | ("matches", None, [_, pattern]) => {
                literal(pattern).and_then(|p| crate::library::regex::compile(&p).err())
            }
            ("quantity", None, [arg]) => {
                literal(arg).and_then(|s| crate::library::quantity::parse(&s).err())
            }
            ("url", None, [arg]) => {
                literal(arg).and_then(|s| crate::library::urls::parse(&s).err())
            }
            ("ip", None, [arg]) => {
                literal(arg).and_then(|s| crate::library::ip::parse_ip(&s).err())
            }
            ("cidr", None, [arg]) => {
                literal(arg).and_then(|s| crate::library::ip::parse_cidr(&s).err())
            }
            _ => None,
        };
        match problem {
            None => Ok(()),
            Some(message) => {
                let (line, column) = self.position(id);
                Err(CompileError::InvalidArgument {
                    message,
                    line,
                    column,
                })
            }
        }
    }

    fn undeclared(&self, name: &str, id: u64) -> CompileError {
        let (line, column) = self.position(id);
        CompileError::UndeclaredReference {
            name: name.to_string(),
            line,
            column,
        }
    }

    /// 1-based line and column (in characters) of node `id`.
    fn position(&self, id: u64) -> (usize, usize) {
        let Some((start, _)) = self.info.offset_for(id) else {
            return (1, 1);
        };
        let start = (start as usize).min(self.source.len());
        let before = self.source.get(..start).unwrap_or(self.source);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }
}

/// Whether a value of `schema` has the field CEL calls `field`: always, unless the schema is
/// an object with a fixed set of properties (no `additionalProperties`, no preserved unknown
/// fields, not an embedded resource, whose metadata upstream adds).
fn field_defined(schema: &Value, field: &str) -> bool {
    if schema::type_of(schema) != Some("object")
        || schema::flag(schema, "x-kubernetes-preserve-unknown-fields")
        || schema::flag(schema, "x-kubernetes-embedded-resource")
        || schema::flag(schema, "x-skiff-dynamic-properties")
        || schema::additional_properties(schema).is_some()
    {
        return true;
    }
    schema::property_by_cel_name(schema, field).is_some()
}

/// `a.b.c` for an identifier chain, else `None`.
fn qualified_name(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Ident(name) => Some(name.clone()),
        Expr::Select(s) if !s.test => {
            qualified_name(&s.operand).map(|p| format!("{p}.{}", s.field))
        }
        _ => None,
    }
}

/// Names of variables (not comprehension variables) the expression reads.
pub(crate) fn free_variables(e: &IdedExpr) -> HashSet<String> {
    let mut out = HashSet::new();
    collect(e, &mut Vec::new(), &mut out);
    out
}

fn collect(e: &IdedExpr, scope: &mut Vec<String>, out: &mut HashSet<String>) {
    match &e.expr {
        Expr::Ident(n) if !scope.contains(n) => {
            out.insert(n.clone());
        }
        Expr::Select(s) => collect(&s.operand, scope, out),
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                collect(t, scope, out);
            }
            c.args.iter().for_each(|a| collect(a, scope, out));
        }
        Expr::List(l) => l.elements.iter().for_each(|x| collect(x, scope, out)),
        Expr::Map(m) => m.entries.iter().for_each(|en| match &en.expr {
            EntryExpr::MapEntry(me) => {
                collect(&me.key, scope, out);
                collect(&me.value, scope, out);
            }
            EntryExpr::StructField(f) => collect(&f.value, scope, out),
        }),
        Expr::Comprehension(c) => {
            collect(&c.iter_range, scope, out);
            collect(&c.accu_init, scope, out);
            let depth = scope.len();
            scope.push(c.accu_var.clone());
            scope.push(c.iter_var.clone());
            if let Some(v) = &c.iter_var2 {
                scope.push(v.clone());
            }
            collect(&c.loop_cond, scope, out);
            collect(&c.loop_step, scope, out);
            collect(&c.result, scope, out);
            scope.truncate(depth);
        }
        _ => {}
    }
}
