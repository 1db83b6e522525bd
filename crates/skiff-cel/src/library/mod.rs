//! The Kubernetes CEL libraries (upstream `k8s.io/apiserver/pkg/cel/library`) registered as
//! overloads on the `cel` crate's environment, next to its standard library and the strings and
//! lists extensions.

pub(crate) mod format;
pub(crate) mod ip;
pub(crate) mod lists;
pub(crate) mod quantity;
pub(crate) mod regex;
pub(crate) mod urls;

use cel::common::types::{CelBool, CelInt, CelString};
use cel::common::value::{CowVal, Val};
use cel::ExecutionError;

/// Marker message of a library function that stopped because the evaluation ran out of
/// budget; mapped to `EvalError::CostLimitExceeded`.
pub(crate) const COST_EXCEEDED: &str = "operation cancelled: actual cost limit exceeded";

/// Registers one library's overloads.
type Library = fn(&mut cel::Env) -> Result<(), cel::DeclarationError>;

/// The shared environment: standard library (with optional types), strings, lists, math and
/// encoder extensions, and the Kubernetes libraries.
///
/// Registration only fails on a duplicate overload, a programming error that every test
/// catches at once; the environment is then built without that library rather than panic.
pub(crate) fn build_env() -> cel::Env {
    let mut env = cel::Env::stdlib();
    let libraries: [(&str, Library); 10] = [
        ("strings", cel::extensions::strings),
        ("lists extension", cel::extensions::lists),
        ("math", cel::extensions::math),
        ("encoders", cel::extensions::encoders),
        ("kubernetes lists", lists::register),
        ("regex", regex::register),
        ("urls", urls::register),
        ("quantity", quantity::register),
        ("ip", ip::register),
        ("format", format::register),
    ];
    for (name, library) in libraries {
        if let Err(e) = env.add_extension(library) {
            debug_assert!(false, "registering the {name} library: {e}");
        }
    }
    env
}

/// Points calls at the overloads this crate substitutes for the `cel` crate's (see
/// [`regex::CACHED_MATCHES`]) and puts map and list literals on the right of `==`; run once
/// per program, after checking.
pub(crate) fn rewrite(e: &mut cel::IdedExpr) {
    use cel::common::ast::{EntryExpr, Expr};
    match &mut e.expr {
        Expr::Call(call) => {
            if call.func_name == "matches" {
                call.func_name = regex::CACHED_MATCHES.to_string();
            }
            // A built-in map or list on the left of `==` is only equal to built-in ones, not
            // to the input's objects (`crate::lazy`); equality is symmetric, so put literals
            // on the right, where the input's values compare with anything.
            let equality = call.func_name == "_==_" || call.func_name == "_!=_";
            let literal = |e: &cel::IdedExpr| matches!(e.expr, Expr::Map(_) | Expr::List(_));
            if equality && call.args.len() == 2 && literal(&call.args[0]) && !literal(&call.args[1])
            {
                call.args.swap(0, 1);
            }
            if let Some(t) = call.target.as_deref_mut() {
                rewrite(t);
            }
            call.args.iter_mut().for_each(rewrite);
        }
        Expr::Select(s) => rewrite(&mut s.operand),
        Expr::List(l) => l.elements.iter_mut().for_each(rewrite),
        Expr::Map(m) => m
            .entries
            .iter_mut()
            .for_each(|entry| match &mut entry.expr {
                EntryExpr::MapEntry(me) => {
                    rewrite(&mut me.key);
                    rewrite(&mut me.value);
                }
                EntryExpr::StructField(f) => rewrite(&mut f.value),
            }),
        Expr::Struct(st) => st.entries.iter_mut().for_each(|entry| {
            if let EntryExpr::StructField(f) = &mut entry.expr {
                rewrite(&mut f.value)
            }
        }),
        Expr::Comprehension(c) => {
            rewrite(&mut c.iter_range);
            rewrite(&mut c.accu_init);
            rewrite(&mut c.loop_cond);
            rewrite(&mut c.loop_step);
            rewrite(&mut c.result);
        }
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

/// A call's result.
pub(crate) type Ret<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

/// An owned result.
pub(crate) fn owned<'b, 'v>(v: impl Val + 'v) -> Ret<'b, 'v> {
    Ok(CowVal::owned(v))
}

/// A `bool` result.
pub(crate) fn boolean<'b, 'v>(b: bool) -> Ret<'b, 'v> {
    owned(CelBool::from(b))
}

/// An `int` result.
pub(crate) fn int<'b, 'v>(i: i64) -> Ret<'b, 'v> {
    owned(CelInt::from(i))
}

/// A `string` result.
pub(crate) fn string<'b, 'v>(s: String) -> Ret<'b, 'v> {
    owned(CelString::from(s))
}

/// Argument `i` as a string.
pub(crate) fn str_arg<'x>(
    args: &'x [CowVal<'_, '_>],
    i: usize,
    function: &str,
) -> Result<&'x str, ExecutionError> {
    args.get(i)
        .and_then(|a| a.as_ref().downcast_ref::<CelString>())
        .map(|s| s.inner())
        .ok_or_else(|| {
            ExecutionError::function_error(function, format!("argument {i} is not a string"))
        })
}

/// A library error with upstream's message.
pub(crate) fn fail(function: &str, message: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

/// Implements `Val` for a `'static`, `Clone + PartialEq` library type with the given CEL type.
macro_rules! library_type {
    ($ty:ty, $cel_type:ident, $name:literal) => {
        pub(crate) static $cel_type: cel::common::types::Type =
            cel::common::types::Type::new_unspecified_type($name);

        impl cel::common::value::Val for $ty {
            fn get_type(&self) -> &cel::common::types::Type {
                &$cel_type
            }
            fn cel_type() -> &'static cel::common::types::Type {
                &$cel_type
            }
            fn equals(&self, other: &dyn cel::common::value::Val) -> bool {
                other.downcast_ref::<$ty>().is_some_and(|o| o == self)
            }
            fn clone_as_boxed<'v>(&self) -> Box<dyn cel::common::value::Val + 'v> {
                Box::new(self.clone())
            }
            fn as_any(&self) -> Option<&dyn std::any::Any> {
                Some(self)
            }
        }
        impl cel::common::value::StaticVal for $ty {}
    };
}
pub(crate) use library_type;
