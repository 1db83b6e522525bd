//! Walks of wire-form values guided by a [`Schema`], as upstream's `typed` package: the set
//! of fields a value sets, the comparison of two values, the merge of an applied
//! configuration into a live object, and the removal of a set of fields. Each walk visits
//! every node once (list items are indexed by their path element), so cost is linear in the
//! size of the object.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::path::{values_equal, PathElement};
use crate::schema::{Atom, Field, ListType, Schema, Shape, TypeId};
use crate::set::Set;
use crate::{Error, Result};

/// What changed between two values: fields only in the new one, fields in both with
/// another value, fields only in the old one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Fields set by the new value only.
    pub added: Set,
    /// Leaves whose value changed.
    pub modified: Set,
    /// Fields set by the old value only.
    pub removed: Set,
}

impl Comparison {
    fn attach(&mut self, pe: &PathElement, child: Comparison) {
        self.added.attach(pe.clone(), child.added);
        self.modified.attach(pe.clone(), child.modified);
        self.removed.attach(pe.clone(), child.removed);
    }

    /// Drops fields that are not tracked.
    pub(crate) fn filter(self, f: &impl Fn(Set) -> Set) -> Comparison {
        Comparison {
            added: f(self.added),
            modified: f(self.modified),
            removed: f(self.removed),
        }
    }
}

/// Nesting deeper than this is refused (objects are client input; recursion must end).
const MAX_DEPTH: usize = 128;

fn too_deep(depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::InvalidObject("object nested too deeply".into()));
    }
    Ok(())
}

/// The path element of a list item: its key fields (with the schema's defaults for absent
/// keys, so a port without `protocol` is `"TCP"`), or its value for sets.
fn item_element(
    schema: &Schema,
    elem: TypeId,
    list_type: &ListType,
    item: &Value,
    index: usize,
) -> Result<PathElement> {
    match list_type {
        ListType::Map(keys) => {
            let Value::Object(m) = item else {
                return Err(Error::InvalidObject(
                    "associative list with keys may not have non-map elements".into(),
                ));
            };
            let declared = match schema.atom(elem) {
                Atom::Map { fields, .. } => Some(fields),
                _ => None,
            };
            let mut fields = Vec::with_capacity(keys.len());
            for k in keys {
                if let Some(v) = m.get(k) {
                    fields.push((k.clone(), v.clone()));
                } else if let Some(Field {
                    default: Some(d), ..
                }) = declared.and_then(|f| f.get(k))
                {
                    fields.push((k.clone(), d.clone()));
                }
            }
            if fields.is_empty() {
                return Err(Error::InvalidObject(format!(
                    "associative list with keys has an element that omits all key fields {keys:?}"
                )));
            }
            Ok(PathElement::key(fields))
        }
        ListType::Set => match item {
            Value::Object(_) | Value::Array(_) => Err(Error::InvalidObject(
                "set list may only hold scalars".into(),
            )),
            v => Ok(PathElement::Value(v.clone())),
        },
        ListType::Atomic => Ok(PathElement::Index(index)),
    }
}

/// The fields `value` sets (upstream `ToFieldSet`): leaves and atomic values, list items of
/// keyed lists and sets (with their fields), map keys (not struct fields) and empty maps.
pub fn to_field_set(schema: &Schema, value: &Value) -> Result<Set> {
    let mut out = Set::new();
    field_set(schema, schema.root(), value, &mut out, 0)?;
    Ok(out)
}

fn field_set(
    schema: &Schema,
    ty: TypeId,
    value: &Value,
    out: &mut Set,
    depth: usize,
) -> Result<()> {
    too_deep(depth)?;
    match schema.shape(ty, value) {
        Shape::Leaf => {}
        Shape::Map { fields, elem } => {
            let Value::Object(m) = value else {
                return Ok(());
            };
            for (k, v) in m {
                let (cty, named) = Schema::field_type(fields, elem, k);
                let pe = PathElement::Field(k.clone());
                let mut child = Set::new();
                field_set(schema, cty, v, &mut child, depth + 1)?;
                let is_leaf = matches!(schema.shape(cty, v), Shape::Leaf);
                let empty_map = matches!(v, Value::Object(o) if o.is_empty());
                if is_leaf || empty_map || named.is_none() {
                    out.insert_member(pe.clone());
                }
                out.attach(pe, child);
            }
        }
        Shape::List { elem, list_type } => {
            let Value::Array(items) = value else {
                return Ok(());
            };
            let pes = items
                .iter()
                .enumerate()
                .map(|(i, item)| item_element(schema, elem, list_type, item, i))
                .collect::<Result<Vec<_>>>()?;
            let mut counts: BTreeMap<&PathElement, usize> = BTreeMap::new();
            for pe in &pes {
                *counts.entry(pe).or_default() += 1;
            }
            for (pe, item) in pes.iter().zip(items) {
                if counts.get(pe).copied().unwrap_or(0) > 1 {
                    // Duplicates are owned as a whole, never field by field.
                    out.insert_member(pe.clone());
                    continue;
                }
                let mut child = Set::new();
                field_set(schema, elem, item, &mut child, depth + 1)?;
                out.insert_member(pe.clone());
                out.attach(pe.clone(), child);
            }
        }
    }
    Ok(())
}

static EMPTY: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| Value::Object(Map::new()));

/// Upstream's typed objects always carry Go struct fields that are not pointers (they
/// encode as `{}`); the table marks them with a `{}` default. Treating an absent one as
/// `{}` makes comparisons give upstream's answer (no `"."` for `spec` on create).
fn zero_present<'a>(
    field: Option<&Field>,
    v: Option<&'a Value>,
    other: Option<&Value>,
) -> Option<&'a Value> {
    match (v, other, field) {
        (
            None,
            Some(Value::Object(_)),
            Some(Field {
                default: Some(Value::Object(d)),
                ..
            }),
        ) if d.is_empty() => Some(&EMPTY),
        _ => v,
    }
}

/// Compares two versions of an object (upstream `Compare`).
pub fn compare(schema: &Schema, old: &Value, new: &Value) -> Result<Comparison> {
    let mut out = Comparison::default();
    compare_children(schema, schema.root(), Some(old), Some(new), &mut out, 0)?;
    Ok(out)
}

fn is_empty_container(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// Compares one node; paths in `out` are relative to the node's parent, under `pe`.
fn compare_node(
    schema: &Schema,
    ty: TypeId,
    pe: &PathElement,
    l: Option<&Value>,
    r: Option<&Value>,
    out: &mut Comparison,
    depth: usize,
) -> Result<()> {
    too_deep(depth)?;
    let ls = l.map(|v| schema.shape(ty, v));
    let rs = r.map(|v| schema.shape(ty, v));
    let granular = match (ls, rs) {
        (Some(Shape::Map { .. }), Some(Shape::Map { .. }))
        | (Some(Shape::List { .. }), Some(Shape::List { .. }))
        | (Some(Shape::Map { .. } | Shape::List { .. }), None)
        | (None, Some(Shape::Map { .. } | Shape::List { .. })) => {
            !(is_empty_container(l) && is_empty_container(r))
        }
        _ => false,
    };
    if !granular {
        match (l, r) {
            (None, Some(_)) => out.added.insert_member(pe.clone()),
            (Some(_), None) => out.removed.insert_member(pe.clone()),
            (Some(a), Some(b)) if !values_equal(a, b) => out.modified.insert_member(pe.clone()),
            _ => {}
        }
        return Ok(());
    }
    let mut child = Comparison::default();
    compare_children(schema, ty, l, r, &mut child, depth + 1)?;
    out.attach(pe, child);
    if l.is_none() {
        out.added.insert_member(pe.clone());
    } else if r.is_none() {
        out.removed.insert_member(pe.clone());
    }
    Ok(())
}

fn compare_children(
    schema: &Schema,
    ty: TypeId,
    l: Option<&Value>,
    r: Option<&Value>,
    out: &mut Comparison,
    depth: usize,
) -> Result<()> {
    let shape = match l.or(r) {
        Some(v) => schema.shape(ty, v),
        None => return Ok(()),
    };
    match shape {
        Shape::Leaf => {}
        Shape::Map { fields, elem } => {
            let lm = l.and_then(Value::as_object);
            let rm = r.and_then(Value::as_object);
            let keys = lm.into_iter().flat_map(|m| m.keys()).chain(
                rm.into_iter()
                    .flat_map(|m| m.keys())
                    .filter(|k| lm.is_none_or(|m| !m.contains_key(*k))),
            );
            for k in keys {
                let (cty, named) = Schema::field_type(fields, elem, k);
                let lv = lm.and_then(|m| m.get(k));
                let rv = rm.and_then(|m| m.get(k));
                let (lv, rv) = (zero_present(named, lv, rv), zero_present(named, rv, lv));
                compare_node(
                    schema,
                    cty,
                    &PathElement::Field(k.clone()),
                    lv,
                    rv,
                    out,
                    depth,
                )?;
            }
        }
        Shape::List { elem, list_type } => {
            let li = index_items(schema, elem, list_type, l)?;
            let ri = index_items(schema, elem, list_type, r)?;
            let rmap: BTreeMap<&PathElement, &Vec<&Value>> =
                ri.iter().map(|(p, v)| (p, v)).collect();
            let lmap: BTreeMap<&PathElement, &Vec<&Value>> =
                li.iter().map(|(p, v)| (p, v)).collect();
            let all = li
                .iter()
                .map(|(p, _)| p)
                .chain(ri.iter().map(|(p, _)| p).filter(|p| !lmap.contains_key(p)));
            for pe in all {
                let ll = lmap.get(pe).map(|v| v.as_slice()).unwrap_or(&[]);
                let rl = rmap.get(pe).map(|v| v.as_slice()).unwrap_or(&[]);
                match (ll.len(), rl.len()) {
                    (a, b) if a <= 1 && b <= 1 => compare_node(
                        schema,
                        elem,
                        pe,
                        ll.first().copied(),
                        rl.first().copied(),
                        out,
                        depth,
                    )?,
                    (a, b) if a >= 2 && b >= 2 => {
                        let same = a == b && ll.iter().zip(rl).all(|(x, y)| values_equal(x, y));
                        if !same {
                            out.modified.insert_member(pe.clone());
                        }
                    }
                    (a, _) if a >= 2 => {
                        if let Some(rv) = rl.first() {
                            compare_node(schema, elem, pe, None, Some(rv), out, depth)?;
                        }
                        out.removed.insert_member(pe.clone());
                    }
                    _ => {
                        if let Some(lv) = ll.first() {
                            compare_node(schema, elem, pe, Some(lv), None, out, depth)?;
                        }
                        out.added.insert_member(pe.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

/// List items grouped by path element, in first-seen order (duplicates grouped).
fn index_items<'v>(
    schema: &Schema,
    elem: TypeId,
    list_type: &ListType,
    v: Option<&'v Value>,
) -> Result<Vec<(PathElement, Vec<&'v Value>)>> {
    let mut order: Vec<(PathElement, Vec<&'v Value>)> = Vec::new();
    let mut at: BTreeMap<PathElement, usize> = BTreeMap::new();
    if let Some(Value::Array(items)) = v {
        for (i, item) in items.iter().enumerate() {
            let pe = item_element(schema, elem, list_type, item, i)?;
            match at.get(&pe) {
                Some(&j) => order[j].1.push(item),
                None => {
                    at.insert(pe.clone(), order.len());
                    order.push((pe, vec![item]));
                }
            }
        }
    }
    Ok(order)
}

/// Merges an applied configuration into a live object (upstream `Merge`): maps merged key
/// by key, keyed lists and sets merged item by item in upstream's order, anything atomic
/// replaced by the configuration.
pub fn merge(schema: &Schema, live: &Value, config: &Value) -> Result<Value> {
    Ok(merge_node(schema, schema.root(), Some(live), Some(config), 0)?.unwrap_or(Value::Null))
}

fn merge_node(
    schema: &Schema,
    ty: TypeId,
    l: Option<&Value>,
    r: Option<&Value>,
    depth: usize,
) -> Result<Option<Value>> {
    too_deep(depth)?;
    let Some(rv) = r else { return Ok(l.cloned()) };
    let lshape = l.map(|v| schema.shape(ty, v));
    match schema.shape(ty, rv) {
        Shape::Map { fields, elem } if matches!(lshape, None | Some(Shape::Map { .. })) => {
            let empty = Map::new();
            let rm = rv.as_object().unwrap_or(&empty);
            let lm = l.and_then(Value::as_object);
            let mut out = Map::new();
            if let Some(lm) = lm {
                for (k, lv) in lm {
                    let (cty, _) = Schema::field_type(fields, elem, k);
                    if let Some(v) = merge_node(schema, cty, Some(lv), rm.get(k), depth + 1)? {
                        out.insert(k.clone(), v);
                    }
                }
            }
            for (k, v) in rm {
                if lm.is_some_and(|m| m.contains_key(k)) {
                    continue;
                }
                let (cty, _) = Schema::field_type(fields, elem, k);
                if let Some(v) = merge_node(schema, cty, None, Some(v), depth + 1)? {
                    out.insert(k.clone(), v);
                }
            }
            Ok(Some(Value::Object(out)))
        }
        Shape::List { elem, list_type } if matches!(lshape, None | Some(Shape::List { .. })) => {
            merge_list(schema, elem, list_type, l, rv, depth).map(Some)
        }
        _ => Ok(Some(rv.clone())),
    }
}

/// Upstream's list merge order: live items keep their places, items of the configuration
/// that are shared with the live list follow the configuration's order, new items are
/// inserted after the shared item that precedes them in the configuration.
fn merge_list(
    schema: &Schema,
    elem: TypeId,
    list_type: &ListType,
    l: Option<&Value>,
    r: &Value,
    depth: usize,
) -> Result<Value> {
    let empty = Vec::new();
    let litems = l.and_then(Value::as_array).unwrap_or(&empty);
    let ritems = r.as_array().unwrap_or(&empty);
    let rpes = ritems
        .iter()
        .enumerate()
        .map(|(i, v)| item_element(schema, elem, list_type, v, i))
        .collect::<Result<Vec<_>>>()?;
    let mut robs: BTreeMap<&PathElement, &Value> = BTreeMap::new();
    for (pe, v) in rpes.iter().zip(ritems) {
        if robs.insert(pe, v).is_some() {
            return Err(Error::InvalidObject(format!(
                "duplicate entries for key {pe}"
            )));
        }
    }
    let lpes = litems
        .iter()
        .enumerate()
        .map(|(i, v)| item_element(schema, elem, list_type, v, i))
        .collect::<Result<Vec<_>>>()?;
    let mut lobs: BTreeMap<&PathElement, Option<&Value>> = BTreeMap::new();
    for (pe, v) in lpes.iter().zip(litems) {
        lobs.entry(pe).and_modify(|e| *e = None).or_insert(Some(v));
    }
    let mut shared = rpes.iter().filter(|pe| lobs.contains_key(pe));
    let mut next_shared = shared.next();
    let mut merged_r: BTreeMap<&PathElement, ()> = BTreeMap::new();
    let mut out = Vec::with_capacity(litems.len().max(ritems.len()));
    let (mut li, mut ri) = (0, 0);
    let merge_item = |pe: &PathElement,
                      lv: Option<&Value>,
                      rv: Option<&Value>,
                      out: &mut Vec<Value>|
     -> Result<()> {
        let _ = pe;
        if let Some(v) = merge_node(schema, elem, lv, rv, depth + 1)? {
            out.push(v);
        }
        Ok(())
    };
    while li < lpes.len() || ri < rpes.len() {
        if li < lpes.len() && ri < rpes.len() {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_r.insert(pe, ());
                merge_item(
                    pe,
                    lobs.get(pe).copied().flatten(),
                    robs.get(pe).copied(),
                    &mut out,
                )?;
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if robs.contains_key(pe) && next_shared.is_some_and(|s| s != pe) {
                li += 1;
                continue;
            }
        }
        if li < lpes.len() {
            let pe = &lpes[li];
            if !robs.contains_key(pe) {
                merge_item(pe, Some(&litems[li]), None, &mut out)?;
                li += 1;
                continue;
            } else if merged_r.contains_key(pe) {
                li += 1;
            }
        }
        if ri < rpes.len() {
            let pe = &rpes[ri];
            merged_r.insert(pe, ());
            merge_item(
                pe,
                lobs.get(pe).copied().flatten(),
                robs.get(pe).copied(),
                &mut out,
            )?;
            ri += 1;
            if next_shared.is_some_and(|s| s == pe) {
                next_shared = shared.next();
            }
        }
    }
    Ok(Value::Array(out))
}

/// Removes the fields of `set` from `value` (upstream `RemoveItems`). A map or list left
/// empty by the removal is dropped from its parent, as upstream's typed objects omit it.
pub fn remove(schema: &Schema, value: &Value, set: &Set) -> Value {
    remove_node(schema, schema.root(), value, set).unwrap_or_else(|| Value::Object(Map::new()))
}

fn remove_node(schema: &Schema, ty: TypeId, value: &Value, set: &Set) -> Option<Value> {
    match schema.shape(ty, value) {
        Shape::Leaf => Some(value.clone()),
        Shape::Map { fields, elem } => {
            let m = value.as_object()?;
            let mut out = Map::new();
            for (k, v) in m {
                let pe = PathElement::Field(k.clone());
                if set.has_member(&pe) {
                    continue;
                }
                match set.child(&pe) {
                    Some(sub) => {
                        let (cty, _) = Schema::field_type(fields, elem, k);
                        if let Some(v) = remove_node(schema, cty, v, sub) {
                            out.insert(k.clone(), v);
                        }
                    }
                    None => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Shape::List { elem, list_type } => {
            let items = value.as_array()?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Ok(pe) = item_element(schema, elem, list_type, item, i) else {
                    out.push(item.clone());
                    continue;
                };
                if set.has_member(&pe) {
                    continue;
                }
                match set.child(&pe) {
                    Some(sub) => out.push(
                        remove_node(schema, elem, item, sub)
                            .unwrap_or_else(|| Value::Object(Map::new())),
                    ),
                    None => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
    }
}

/// Adds the declared struct fields a set reaches into as members (upstream
/// `EnsureNamedFieldsAreMembers`), so pruning can drop a struct left with no owner.
pub fn ensure_named_fields(schema: &Schema, set: &Set) -> Set {
    ensure_named(schema, schema.root(), set)
}

fn ensure_named(schema: &Schema, ty: TypeId, set: &Set) -> Set {
    let mut out = Set::new();
    for m in set.members() {
        out.insert_member(m.clone());
    }
    for (pe, child) in set.children() {
        if let PathElement::Field(name) = pe {
            if schema.named_field(ty, name) {
                out.insert_member(pe.clone());
            }
        }
        out.attach(
            pe.clone(),
            ensure_named(schema, schema.child_type(ty, pe), child),
        );
    }
    out
}
