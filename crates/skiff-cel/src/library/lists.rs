//! Upstream's lists library: `isSorted`, `sum`, `min`, `max`, `indexOf`, `lastIndexOf` on lists.

use super::{boolean, fail, int, Ret};
use cel::common::types::{CelDouble, CelInt, CelUInt, DYN_TYPE, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use std::cmp::Ordering;

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload("isSorted", "list_is_sorted", LIST_TYPE, vec![], is_sorted)?;
    env.add_member_overload("sum", "list_sum", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list_min", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list_max", LIST_TYPE, vec![], max)?;
    env.add_member_overload(
        "indexOf",
        "list_index_of",
        LIST_TYPE,
        vec![DYN_TYPE],
        index_of,
    )?;
    env.add_member_overload(
        "lastIndexOf",
        "list_last_index_of",
        LIST_TYPE,
        vec![DYN_TYPE],
        last_index_of,
    )?;
    Ok(())
}

/// The elements of the receiver.
fn elements<'x, 'v>(
    args: &'x [CowVal<'_, 'v>],
    function: &str,
) -> Result<Vec<&'x (dyn Val + 'v)>, ExecutionError> {
    let list = args
        .first()
        .and_then(|l| l.as_ref().as_iterable())
        .ok_or_else(|| fail(function, "receiver is not a list"))?;
    let mut iter = list.iter();
    let mut out = Vec::new();
    while let Some(v) = iter.next() {
        out.push(v);
    }
    Ok(out)
}

fn compare(a: &dyn Val, b: &dyn Val, function: &str) -> Result<Ordering, ExecutionError> {
    a.as_comparer()
        .ok_or_else(|| {
            fail(
                function,
                format!(
                    "no such overload: {} is not comparable",
                    a.get_type().name()
                ),
            )
        })?
        .compare(b)
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let items = elements(&args, "isSorted")?;
    for pair in items.windows(2) {
        if compare(pair[0], pair[1], "isSorted")? == Ordering::Greater {
            return boolean(false);
        }
    }
    boolean(true)
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let items = elements(&args, "sum")?;
    let Some(first) = items.first() else {
        return int(0);
    };
    let mut acc: Box<dyn Val + 'v> = first.clone_as_boxed();
    for item in &items[1..] {
        let adder = acc
            .as_adder()
            .ok_or_else(|| fail("sum", "no such overload"))?;
        let next = adder.add(*item)?.into_owned();
        acc = next;
    }
    if acc.downcast_ref::<CelInt>().is_none()
        && acc.downcast_ref::<CelUInt>().is_none()
        && acc.downcast_ref::<CelDouble>().is_none()
        && acc.get_type().name() != "google.protobuf.Duration"
    {
        return Err(fail("sum", "no such overload"));
    }
    Ok(CowVal::Owned(acc))
}

fn extreme<'b, 'v>(args: Vec<CowVal<'b, 'v>>, function: &str, want: Ordering) -> Ret<'b, 'v> {
    let items = elements(&args, function)?;
    let Some(mut best) = items.first().copied() else {
        return Err(fail(function, format!("{function} called on empty list")));
    };
    for item in &items[1..] {
        if compare(*item, best, function)? == want {
            best = *item;
        }
    }
    Ok(CowVal::Owned(best.clone_as_boxed()))
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    extreme(args, "min", Ordering::Less)
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    extreme(args, "max", Ordering::Greater)
}

fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let items = elements(&args, "indexOf")?;
    let needle = args
        .get(1)
        .ok_or_else(|| fail("indexOf", "missing argument"))?;
    let found = items.iter().position(|i| i.equals(needle.as_ref()));
    int(found.map(|i| i as i64).unwrap_or(-1))
}

fn last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let items = elements(&args, "lastIndexOf")?;
    let needle = args
        .get(1)
        .ok_or_else(|| fail("lastIndexOf", "missing argument"))?;
    let found = items.iter().rposition(|i| i.equals(needle.as_ref()));
    int(found.map(|i| i as i64).unwrap_or(-1))
}
