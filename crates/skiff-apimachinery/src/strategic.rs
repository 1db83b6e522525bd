//! Strategic merge patch and JSON merge patch, applied server-side exactly as upstream's
//! `k8s.io/apimachinery/pkg/util/strategicpatch` (`StrategicMergePatch`) would, so
//! `kubectl apply/patch/edit/set/label/rollout restart` store the same objects as upstream.
//!
//! Semantics (from upstream's `mergeMap`/`mergeSlice`):
//! - maps merge key by key; `null` deletes; a key absent from the live object takes the
//!   patch value with nulls and directives dropped (a map carrying `$patch` is dropped whole,
//!   as upstream's `removeDirectives` does);
//! - lists tagged `patchStrategy: merge` merge items by `patchMergeKey` (or union primitives);
//!   other lists are replaced;
//! - directives: `$patch: replace|delete` in maps, `$patch: replace|delete` items in merge
//!   lists, `$retainKeys`, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`;
//! - ordering: items named in the patch keep the patch (or `$setElementOrder`) order and are
//!   interleaved with server-only items by their live positions; items new to the list go
//!   before the server-only items that follow them, as upstream (so a bare
//!   `{"containers":[{"name":"new"}]}` puts `new` first).
//!
//! Checked against `kubectl patch --local --type=strategic` (the same Go code) on generated
//! patches. Known, deliberate differences, all outside what kubectl generates:
//! - With `$setElementOrder` plus item deletions or additions *and* live items the directive
//!   does not name, Go's in-place slice edits can leak into the live order used to place
//!   those items, depending on slice capacities the wire JSON does not determine; this module
//!   uses the live order as it was (what upstream does when capacity equals length).
//! - Upstream visits patch keys in random (Go map) order; here they are visited in patch
//!   order, which only matters when one patch both adds and deletes the same primitive.
//! - Values taken whole (no live counterpart) lose directive keys and nulls here; upstream
//!   keeps them in the map and its typed decoding drops them afterwards.

mod schema;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use schema::{Field, Schema, Strategy};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Why a patch could not be applied. Messages are upstream's (`mergepatch` errors); the HTTP
/// status upstream's apiserver answers with differs per error, see [`PatchError::status_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The live object or the patch is not a JSON object.
    #[error("invalid JSON document")]
    NotAnObject,
    /// `$patch` has a value other than `replace`/`delete` (or `merge` in a map).
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType {
        /// The directive's value.
        directive: String,
        /// The map holding it.
        map: String,
    },
    /// `$patch: merge` as a list item, which upstream never implemented.
    #[error("merging lists cannot yet be specified in the patch")]
    MergingListsUnsupported,
    /// An item of a merge list lacks the list's merge key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey {
        /// The item.
        map: String,
        /// The merge key, e.g. `name` or `containerPort`.
        key: String,
    },
    /// A value has the wrong JSON type for where it appears (e.g. a merge-list item that is
    /// not a map).
    #[error("expected a {expected}, but received a {received}")]
    BadArgType {
        /// What was expected.
        expected: &'static str,
        /// What was found.
        received: &'static str,
    },
    /// `$retainKeys` is not a list, or the patch sets a key its own `$retainKeys` list would
    /// clear (upstream reports both the same way).
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// `$setElementOrder/...` is malformed.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// The patch list's items are not in the order `$setElementOrder` gives.
    #[error("the order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}")]
    SetElementOrderMismatch {
        /// The patch list.
        patch: String,
        /// The `$setElementOrder` list.
        order: String,
    },
    /// `$deleteFromPrimitiveList/...` is malformed.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// A list of lists, which the API never has.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// `$setElementOrder` names a list that is empty both live and in the patch.
    #[error("no elements in any of the given slices")]
    NoElements,
    /// A list mixes element types (e.g. strings and numbers).
    #[error("list element types are not identical: {0}")]
    MixedListTypes(String),
}

impl PatchError {
    /// The HTTP status to answer with: upstream's (`interpretStrategicMergePatchError`) 400
    /// for the malformed-document and malformed-directive errors and 422 for lists of lists.
    /// Upstream answers the errors it does not classify (a missing merge key, `$patch:
    /// explode`) with a 500; every one of them is the client's patch at fault, so here they
    /// are a 400 with the same message.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::NotAnObject
            | PatchError::BadRetainKeys
            | PatchError::BadSetElementOrder
            | PatchError::BadPrimitiveList => 400,
            PatchError::ListOfLists => 422,
            _ => 400,
        }
    }
}

/// Whether `group`/`kind` is a built-in kind with a strategic-merge schema. Upstream refuses
/// `application/strategic-merge-patch+json` for other kinds (CRDs) with 415; the server may do
/// the same, while [`strategic_merge_patch`] falls back to JSON merge patch for them.
pub fn supports_strategic_merge(group: &str, kind: &str) -> bool {
    schema::for_kind(group, kind).is_some()
}

/// Applies a strategic merge patch to a live object of the given built-in kind (`group` is
/// `""` for core). Kinds without a schema (CRDs) get [`json_merge_patch`].
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    group: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    let (Value::Object(original), Value::Object(patch)) = (original, patch) else {
        return Err(PatchError::NotAnObject);
    };
    let Some(schema) = schema::for_kind(group, kind) else {
        return Ok(json_merge_patch(
            &Value::Object(original.clone()),
            &Value::Object(patch.clone()),
        ));
    };
    merge_map(original.clone(), patch.clone(), Some(schema)).map(Value::Object)
}

/// RFC 7386 JSON merge patch (`application/merge-patch+json`): objects merge recursively,
/// `null` deletes, anything else replaces.
pub fn json_merge_patch(original: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut target = match original {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    for (k, v) in patch {
        if v.is_null() {
            target.shift_remove(k);
        } else {
            let merged = json_merge_patch(target.get(k).unwrap_or(&Value::Null), v);
            target.insert(k.clone(), merged);
        }
    }
    Value::Object(target)
}

// ---- maps --------------------------------------------------------------------------------

/// Upstream's `mergeMap`: directives first (`$patch`, `$retainKeys`, `$setElementOrder`), then
/// every remaining key.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Option<&'static Schema>,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(DIRECTIVE);
                Ok(sanitize_map(patch))
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(PatchError::BadPatchType {
                directive: display_scalar(directive),
                map: Value::Object(patch.clone()).to_string(),
            }),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_set_element_order(&mut original, &mut patch, schema)?;

    for (key, patch_value) in patch {
        let (key, is_delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (
                directive_target(&key, DELETE_FROM_PRIMITIVE_LIST)
                    .ok_or(PatchError::BadPrimitiveList)?,
                true,
            )
        } else if key.starts_with('$') {
            // Not a directive upstream knows: its typed decoding would drop the key.
            continue;
        } else {
            (key, false)
        };
        let field = schema::lookup(schema, &key);
        if patch_value.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let merged = match original.get_mut(&key) {
            None | Some(Value::Null) if is_delete_list => continue,
            Some(Value::Object(live)) if patch_value.is_object() => {
                let Value::Object(p) = patch_value else {
                    unreachable!("checked is_object")
                };
                if field.is_some_and(|f| f.strategy == Strategy::Replace) {
                    Value::Object(sanitize_map(p))
                } else {
                    Value::Object(merge_map(
                        std::mem::take(live),
                        p,
                        field.and_then(|f| f.ty),
                    )?)
                }
            }
            Some(Value::Array(live)) if patch_value.is_array() => {
                let Value::Array(p) = patch_value else {
                    unreachable!("checked is_array")
                };
                match field {
                    Some(f) if f.strategy == Strategy::Merge => {
                        Value::Array(merge_list(std::mem::take(live), p, f, is_delete_list)?)
                    }
                    // A deletion list only makes sense for a merge list; ignore it elsewhere.
                    _ if is_delete_list => continue,
                    _ => sanitize(Value::Array(p)),
                }
            }
            // Absent, or a different JSON type: the patch value wins.
            _ if is_delete_list => continue,
            _ => match without_directives(patch_value) {
                Some(v) => v,
                None => {
                    original.shift_remove(&key);
                    continue;
                }
            },
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// A patch value for a key the live object lacks (or holds with another JSON type), as
/// upstream takes it: nulls discarded, any map carrying `$patch` dropped (with its key or list
/// slot), other directive keys dropped as its typed decoding would.
fn without_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
                    .filter_map(|(k, v)| without_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(without_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Upstream's `applyRetainKeysDirective`: every key the patch sets must be listed, and live
/// keys not listed are cleared (how `kubectl apply` drops `rollingUpdate` when switching a
/// Deployment to `Recreate`).
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadRetainKeys);
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !listed(k) {
            return Err(PatchError::BadRetainKeys);
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// The list name after `<prefix>/`, or `None` when the key is malformed.
fn directive_target(key: &str, prefix: &str) -> Option<String> {
    match key.split_once('/') {
        Some((p, rest)) if p == prefix => Some(rest.to_string()),
        _ => None,
    }
}

/// Upstream's `mergePatchIntoOriginal`: for each `$setElementOrder/<list>`, merge the list
/// (if patched) and order it as the directive says, server-only items keeping their places.
fn apply_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Option<&'static Schema>,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let order = patch.shift_remove(&key).unwrap_or(Value::Null);
        let Value::Array(order) = order else {
            return Err(PatchError::BadSetElementOrder);
        };
        let list_key =
            directive_target(&key, SET_ELEMENT_ORDER).ok_or(PatchError::BadSetElementOrder)?;
        let live = match original.get(&list_key) {
            None | Some(Value::Null) => None,
            Some(Value::Array(l)) => Some(l.clone()),
            Some(other) => return Err(bad_arg("list", other)),
        };
        let patched = match patch.get(&list_key) {
            None => None,
            Some(Value::Array(l)) => Some(l.clone()),
            Some(other) => return Err(bad_arg("list", other)),
        };
        let field = schema::lookup(schema, &list_key);
        let merge_key = field.map_or("", |f| f.merge_key);
        if let Some(p) = &patched {
            validate_against_order(p, &order, merge_key)?;
        }
        let is_merge = field.is_some_and(|f| f.strategy == Strategy::Merge);
        // Upstream types the list by the live and patch lists, and fails when both are empty.
        let kind = element_kind(
            live.as_deref().unwrap_or_default(),
            patched.as_deref().unwrap_or_default(),
        )?;
        let merged = match (&live, patched) {
            (None, None) => continue,
            (Some(l), None) => l.clone(),
            (None, Some(p)) => match without_directives(Value::Array(p)) {
                Some(Value::Array(p)) => p,
                _ => Vec::new(),
            },
            (Some(l), Some(p)) => match field {
                Some(f) if is_merge => merge_list(l.clone(), p, f, false)?,
                _ => p.into_iter().map(sanitize).collect(),
            },
        };
        if kind == ElementKind::Empty {
            return Err(PatchError::NoElements);
        }
        let live = live.unwrap_or_default();
        let (in_order, server_only) = partition(merged, &order, merge_key)?;
        let ordered = normalize_order(in_order, server_only, &order, &live, merge_key, kind)?;
        original.insert(list_key.clone(), Value::Array(ordered));
        patch.shift_remove(&list_key);
    }
    Ok(())
}

/// Upstream's `validatePatchWithSetOrderList`: the patch list's (non-deleting) items must
/// appear in `$setElementOrder` in the same relative order.
fn validate_against_order(
    patch: &[Value],
    order: &[Value],
    merge_key: &str,
) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let kept: Vec<&Value> = if merge_key.is_empty() {
        patch.iter().collect()
    } else {
        let mut kept = Vec::new();
        for item in patch {
            let Value::Object(m) = item else {
                return Err(bad_arg("map", item));
            };
            if m.get(DIRECTIVE).and_then(Value::as_str) != Some("delete") {
                kept.push(item);
            }
        }
        kept
    };
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if kept[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        if merge_key_eq(kept[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() && o >= order.len() {
        return Err(PatchError::SetElementOrderMismatch {
            patch: Value::Array(patch.to_vec()).to_string(),
            order: Value::Array(order.to_vec()).to_string(),
        });
    }
    Ok(())
}

// ---- lists -------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Empty,
    Map,
    String,
    Number,
    Bool,
}

/// Upstream's `sliceElementType`: all items of all lists share one type, never a list.
fn element_kind(a: &[Value], b: &[Value]) -> Result<ElementKind, PatchError> {
    let mut kind = ElementKind::Empty;
    for v in a.iter().chain(b) {
        let k = match v {
            Value::Object(_) => ElementKind::Map,
            Value::String(_) => ElementKind::String,
            Value::Number(_) => ElementKind::Number,
            Value::Bool(_) => ElementKind::Bool,
            Value::Array(_) => return Err(PatchError::ListOfLists),
            // Go's reflect sees nil apart from every other type.
            Value::Null => {
                return Err(PatchError::MixedListTypes(format!(
                    "{} {}",
                    Value::Array(a.to_vec()),
                    Value::Array(b.to_vec())
                )))
            }
        };
        if kind != ElementKind::Empty && kind != k {
            return Err(PatchError::MixedListTypes(format!(
                "{} {}",
                Value::Array(a.to_vec()),
                Value::Array(b.to_vec())
            )));
        }
        kind = k;
    }
    Ok(kind)
}

/// Upstream's `mergeSlice` for a `patchStrategy: merge` list.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: &'static Field,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&original, &patch)?;
    let merge_key = field.merge_key;
    if kind != ElementKind::Map {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.iter().any(|d| scalar_eq(v, d)))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(&patch) {
            if !merged.iter().any(|m| scalar_eq(m, v)) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only) = partition(merged, &patch, "")?;
        return normalize_order(in_patch, server_only, &patch, &original, "", kind);
    }
    if merge_key.is_empty() {
        return Err(PatchError::BadArgType {
            expected: "merge key",
            received: "none",
        });
    }
    let (original, patch) = apply_list_directives(original, patch, merge_key)?;
    let mut merged = original.clone();
    for item in &patch {
        let Value::Object(p) = item else {
            return Err(bad_arg("map", item));
        };
        let wanted = p
            .get(merge_key)
            .ok_or_else(|| no_merge_key(item, merge_key))?;
        match find_by_key(&merged, merge_key, wanted)? {
            Some(i) => {
                let Value::Object(live) = std::mem::take(&mut merged[i]) else {
                    unreachable!("find_by_key only returns maps")
                };
                merged[i] = Value::Object(merge_map(live, p.clone(), field.ty)?);
            }
            None => merged.push(sanitize(item.clone())),
        }
    }
    let (in_patch, server_only) = partition(merged, &patch, merge_key)?;
    normalize_order(in_patch, server_only, &patch, &original, merge_key, kind)
}

/// Upstream's `mergeSliceWithSpecialElements`: `$patch: delete` items remove every live item
/// with that key, `$patch: replace` makes the patch's other items the whole list.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(m) = &item else {
            return Err(bad_arg("map", &item));
        };
        let Some(directive) = m.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let wanted = m
                    .get(merge_key)
                    .ok_or_else(|| no_merge_key(&item, merge_key))?;
                let mut kept = Vec::with_capacity(original.len());
                for live in original {
                    let Value::Object(l) = &live else {
                        return Err(bad_arg("map", &live));
                    };
                    if !l.get(merge_key).is_some_and(|v| scalar_eq(v, wanted)) {
                        kept.push(live);
                    }
                }
                original = kept;
            }
            Some("replace") => replace = true,
            Some("merge") => return Err(PatchError::MergingListsUnsupported),
            _ => {
                return Err(PatchError::BadPatchType {
                    directive: display_scalar(directive),
                    map: item.to_string(),
                })
            }
        }
    }
    if replace {
        let replaced = plain.into_iter().map(sanitize).collect();
        Ok((replaced, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// Index of the first map whose `merge_key` equals `wanted`.
fn find_by_key(
    list: &[Value],
    merge_key: &str,
    wanted: &Value,
) -> Result<Option<usize>, PatchError> {
    for (i, v) in list.iter().enumerate() {
        let Value::Object(m) = v else {
            return Err(bad_arg("map", v));
        };
        if m.get(merge_key).is_some_and(|x| scalar_eq(x, wanted)) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Splits `list` into items named in `by` (by merge key, or by value for primitives) and the
/// rest (upstream's `partitionMapsByPresentInList`/`partitionPrimitivesByPresentInList`).
fn partition(
    list: Vec<Value>,
    by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut named = Vec::new();
    let mut rest = Vec::new();
    for item in list {
        let present = if merge_key.is_empty() {
            by.iter().any(|b| scalar_eq(b, &item))
        } else {
            let Value::Object(m) = &item else {
                return Err(bad_arg("map", &item));
            };
            let value = m
                .get(merge_key)
                .ok_or_else(|| no_merge_key(&item, merge_key))?;
            by.iter()
                .any(|b| b.get(merge_key).is_some_and(|x| scalar_eq(x, value)))
        };
        if present {
            named.push(item);
        } else {
            rest.push(item);
        }
    }
    Ok((named, rest))
}

/// Position of `item` in `order`, by merge key for maps and by value otherwise.
fn position(order: &[Value], item: &Value, merge_key: &str) -> Option<usize> {
    if merge_key.is_empty() {
        return order.iter().position(|o| scalar_eq(o, item));
    }
    let wanted = item.get(merge_key)?;
    order
        .iter()
        .position(|o| o.get(merge_key).is_some_and(|v| scalar_eq(v, wanted)))
}

/// Upstream's `normalizeElementOrder`: patch items sorted by the patch order, server-only
/// items by the live order, then interleaved by live positions (`mergeSortedSlice`).
fn normalize_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: ElementKind,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key, kind)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, kind)?;
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (
                    position(server_order, l, merge_key),
                    position(server_order, r, merge_key),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

/// Upstream's `normalizeSliceOrder`: a stable sort by position in `order` (items missing
/// from it keep their relative order after the others); `$patch: delete` items go last.
fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: ElementKind,
) -> Result<Vec<Value>, PatchError> {
    let (mut items, deletes) = if kind == ElementKind::Map {
        for v in items.iter().chain(order) {
            let Value::Object(m) = v else {
                return Err(bad_arg("map", v));
            };
            if !m.contains_key(merge_key) {
                return Err(no_merge_key(v, merge_key));
            }
        }
        items.into_iter().partition::<Vec<Value>, _>(|v| {
            v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete")
        })
    } else {
        (items, Vec::new())
    };
    items.sort_by_key(|v| position(order, v, merge_key).unwrap_or(usize::MAX));
    items.extend(deletes);
    Ok(items)
}

// ---- helpers -----------------------------------------------------------------------------

/// Go's `==` on decoded JSON scalars: numbers compare as float64, other types must match.
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Upstream's `mergeKeyValueEqual`.
fn merge_key_eq(a: &Value, b: &Value, merge_key: &str) -> Result<bool, PatchError> {
    if merge_key.is_empty() {
        return Ok(scalar_eq(a, b));
    }
    let Value::Object(l) = a else {
        return Err(bad_arg("map", a));
    };
    let Value::Object(r) = b else {
        return Err(bad_arg("map", b));
    };
    let lv = l.get(merge_key).ok_or_else(|| no_merge_key(a, merge_key))?;
    let rv = r.get(merge_key).ok_or_else(|| no_merge_key(b, merge_key))?;
    Ok(scalar_eq(lv, rv))
}

fn is_directive_key(k: &str) -> bool {
    k == DIRECTIVE
        || k == RETAIN_KEYS
        || k.starts_with(SET_ELEMENT_ORDER)
        || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// Drops directive keys and null values, recursively: what upstream's typed decoding of a
/// wholesale-taken patch value leaves.
fn sanitize(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(sanitize_map(m)),
        Value::Array(items) => Value::Array(items.into_iter().map(sanitize).collect()),
        other => other,
    }
}

fn sanitize_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
        .map(|(k, v)| (k, sanitize(v)))
        .collect()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

fn bad_arg(expected: &'static str, got: &Value) -> PatchError {
    PatchError::BadArgType {
        expected,
        received: type_name(got),
    }
}

fn no_merge_key(item: &Value, key: &str) -> PatchError {
    PatchError::NoMergeKey {
        map: item.to_string(),
        key: key.to_string(),
    }
}

fn display_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
