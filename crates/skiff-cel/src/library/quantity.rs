//! Upstream's quantity library: `quantity()`, `isQuantity()` and arithmetic and comparison on
//! resource quantities, exact in units of 10^-9 (skiff-apimachinery's `Quantity`).

use super::{boolean, fail, int, library_type, owned, str_arg, Ret};
use cel::common::types::{CelDouble, CelInt, INT_TYPE, STRING_TYPE};
use cel::common::value::CowVal;
use cel::{DeclarationError, Env};
use skiff_apimachinery::quantity::Quantity as Parsed;
use std::cmp::Ordering;

/// A quantity's exact value in nano units.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Quantity {
    nanos: i128,
}

library_type!(Quantity, QUANTITY_TYPE, "kubernetes.Quantity");

const NANO: i128 = 1_000_000_000;

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let q = || QUANTITY_TYPE.to_owned();
    env.add_type(q())?;
    env.add_overload(
        "quantity",
        "string_to_quantity",
        vec![STRING_TYPE],
        to_quantity,
    )?;
    env.add_overload(
        "isQuantity",
        "is_quantity_string",
        vec![STRING_TYPE],
        is_quantity,
    )?;
    env.add_member_overload("sign", "quantity_sign", q(), vec![], sign)?;
    env.add_member_overload("isInteger", "quantity_is_integer", q(), vec![], is_integer)?;
    env.add_member_overload("asInteger", "quantity_as_integer", q(), vec![], as_integer)?;
    env.add_member_overload(
        "asApproximateFloat",
        "quantity_as_float",
        q(),
        vec![],
        as_approximate_float,
    )?;
    env.add_member_overload(
        "compareTo",
        "quantity_compare_to",
        q(),
        vec![q()],
        compare_to,
    )?;
    env.add_member_overload("isLessThan", "quantity_less", q(), vec![q()], is_less_than)?;
    env.add_member_overload(
        "isGreaterThan",
        "quantity_greater",
        q(),
        vec![q()],
        is_greater_than,
    )?;
    env.add_member_overload("add", "quantity_add", q(), vec![q()], add)?;
    env.add_member_overload("add", "quantity_add_int", q(), vec![INT_TYPE], add)?;
    env.add_member_overload("sub", "quantity_sub", q(), vec![q()], sub)?;
    env.add_member_overload("sub", "quantity_sub_int", q(), vec![INT_TYPE], sub)?;
    Ok(())
}

/// Parses with upstream's error texts.
pub(crate) fn parse(s: &str) -> Result<Quantity, String> {
    Parsed::parse(s)
        .map(|p| Quantity {
            nanos: p.nano_value(),
        })
        .map_err(|e| e.to_string())
}

fn this<'x>(
    args: &'x [CowVal<'_, '_>],
    i: usize,
    f: &str,
) -> Result<&'x Quantity, cel::ExecutionError> {
    args.get(i)
        .and_then(|a| a.as_ref().downcast_ref::<Quantity>())
        .ok_or_else(|| fail(f, "argument is not a quantity"))
}

/// The second argument as nanos: a quantity, or an int.
fn operand(args: &[CowVal<'_, '_>], f: &str) -> Result<i128, cel::ExecutionError> {
    if let Some(q) = args
        .get(1)
        .and_then(|a| a.as_ref().downcast_ref::<Quantity>())
    {
        return Ok(q.nanos);
    }
    args.get(1)
        .and_then(|a| a.as_ref().downcast_ref::<CelInt>())
        .map(|i| i128::from(*i.inner()) * NANO)
        .ok_or_else(|| fail(f, "argument is not a quantity or int"))
}

fn to_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    owned(parse(str_arg(&args, 0, "quantity")?).map_err(|e| fail("quantity", e))?)
}

fn is_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    boolean(parse(str_arg(&args, 0, "isQuantity")?).is_ok())
}

fn sign<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    int(this(&args, 0, "sign")?.nanos.signum() as i64)
}

/// Upstream's `AsInt64`: an integral value that fits an int64.
fn as_i64(q: &Quantity) -> Option<i64> {
    if q.nanos % NANO != 0 {
        return None;
    }
    i64::try_from(q.nanos / NANO).ok()
}

fn is_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    boolean(as_i64(this(&args, 0, "isInteger")?).is_some())
}

fn as_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let q = this(&args, 0, "asInteger")?;
    int(as_i64(q).ok_or_else(|| fail("asInteger", "cannot convert value to integer"))?)
}

fn as_approximate_float<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let q = this(&args, 0, "asApproximateFloat")?;
    owned(CelDouble::from(q.nanos as f64 / NANO as f64))
}

fn ordering<'b, 'v>(args: &[CowVal<'b, 'v>], f: &str) -> Result<Ordering, cel::ExecutionError> {
    Ok(this(args, 0, f)?.nanos.cmp(&this(args, 1, f)?.nanos))
}

fn compare_to<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    int(ordering(&args, "compareTo")? as i64)
}

fn is_less_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    boolean(ordering(&args, "isLessThan")? == Ordering::Less)
}

fn is_greater_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    boolean(ordering(&args, "isGreaterThan")? == Ordering::Greater)
}

fn add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let a = this(&args, 0, "add")?.nanos;
    let b = operand(&args, "add")?;
    let nanos = a
        .checked_add(b)
        .ok_or_else(|| fail("add", "quantity overflow"))?;
    owned(Quantity { nanos })
}

fn sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let a = this(&args, 0, "sub")?.nanos;
    let b = operand(&args, "sub")?;
    let nanos = a
        .checked_sub(b)
        .ok_or_else(|| fail("sub", "quantity overflow"))?;
    owned(Quantity { nanos })
}
