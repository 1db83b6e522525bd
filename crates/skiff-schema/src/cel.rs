//! What the CEL integration needs from a schema: every node carrying `x-kubernetes-validations`
//! (a [`RuleSite`], so rules compile once per CRD), and a walk of an object beside its schema
//! that yields each value at a rule site with its correlated old value (a [`RuleVisit`]).
//!
//! Old values follow upstream's correlation (apiextensions-apiserver `schema/cel/validation.go`):
//! object properties and `additionalProperties` entries correlate by key unless the map is
//! `x-kubernetes-map-type: atomic`; list items correlate only in `x-kubernetes-list-type: map`
//! lists, by their map keys; `set` and `atomic` list items never have an old value. `null`
//! values are not visited (upstream validates only non-null values).

use serde_json::Value;

use crate::schema::Schema;

/// One `x-kubernetes-validations` entry as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The CEL expression.
    pub rule: String,
    /// `message`, if set.
    pub message: Option<String>,
    /// `messageExpression`, if set.
    pub message_expression: Option<String>,
    /// `reason` (`FieldValueInvalid` when unset, as upstream defaults it).
    pub reason: Option<String>,
    /// `fieldPath`, relative to the node, if set.
    pub field_path: Option<String>,
    /// `optionalOldSelf`, if set.
    pub optional_old_self: Option<bool>,
}

impl Rule {
    fn from_value(v: &Value) -> Rule {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Rule {
            rule: s("rule").unwrap_or_default(),
            message: s("message"),
            message_expression: s("messageExpression"),
            reason: s("reason"),
            field_path: s("fieldPath"),
            optional_old_self: v.get("optionalOldSelf").and_then(Value::as_bool),
        }
    }
}

/// A schema node with `x-kubernetes-validations`.
#[derive(Debug, Clone)]
pub struct RuleSite {
    /// The node's path in the schema below the base given to `Structural::new`, in upstream's
    /// CRD error form: `""` for the root, `.properties[spec].properties[ports].items`. Errors
    /// about the rules (compile errors, cost) go to `<base><schema_path>.x-kubernetes-validations[i].rule`.
    pub schema_path: String,
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// The sub-schema as wire JSON: the type of `self` (and `oldSelf`) for compiling.
    pub schema: Value,
    /// Whether the node is the root of a resource (the schema root or an
    /// `x-kubernetes-embedded-resource` object): there `self` also has `apiVersion`, `kind` and
    /// `metadata.name`/`generateName`, as upstream's CEL type for resource roots.
    pub resource_root: bool,
    /// When old values cannot be correlated here: the schema path (same form as
    /// `schema_path`) of the outermost list or atomic map that prevents it. A rule using
    /// `oldSelf` at such a site is a CRD error, upstream's `oldSelf cannot be used on the
    /// uncorrelatable portion of the schema within <base><path>`.
    pub uncorrelatable: Option<String>,
}

/// A value at a rule site during [`crate::Structural::walk_rules`].
#[derive(Debug, Clone, Copy)]
pub struct RuleVisit<'a> {
    /// Index into [`crate::Structural::rule_sites`].
    pub site_index: usize,
    /// The rule site.
    pub site: &'a RuleSite,
    /// The value's field path as upstream's CEL errors print it: `spec.ports[0]`,
    /// `spec.labels[key]` for `additionalProperties` entries, `""` for the root object
    /// (upstream prints `<nil>` there).
    pub field_path: &'a str,
    /// `self`.
    pub value: &'a Value,
    /// `oldSelf`: the correlated old value, `None` on create or when uncorrelatable.
    pub old_value: Option<&'a Value>,
}

/// Collects rule sites below `s` (properties, items, additionalProperties: where structural
/// schemas allow rules), numbering each node and marking subtrees that carry rules.
pub(crate) fn collect(
    s: &mut Schema,
    raw: &Value,
    path: &str,
    resource_root: bool,
    uncorrelatable: Option<&str>,
    sites: &mut Vec<RuleSite>,
) -> bool {
    let mut below = false;
    if !s.validations.is_empty() {
        s.rule_site = Some(sites.len());
        sites.push(RuleSite {
            schema_path: path.to_string(),
            rules: s.validations.iter().map(Rule::from_value).collect(),
            schema: raw.clone(),
            resource_root: resource_root || s.embedded,
            uncorrelatable: uncorrelatable.map(str::to_string),
        });
        below = true;
    }
    let atomic_map = s.map_type.as_deref() == Some("atomic");
    let props_unc = match uncorrelatable {
        Some(u) => Some(u.to_string()),
        None if atomic_map => Some(path.to_string()),
        None => None,
    };
    let raw_props = raw.get("properties");
    for (k, p) in s.properties.iter_mut() {
        let sub_raw = raw_props.and_then(|r| r.get(k)).unwrap_or(&Value::Null);
        below |= collect(
            p,
            sub_raw,
            &format!("{path}.properties[{k}]"),
            false,
            props_unc.as_deref(),
            sites,
        );
    }
    if let Some(ap) = s.additional.as_mut().and_then(|a| a.schema.as_deref_mut()) {
        let sub_raw = raw.get("additionalProperties").unwrap_or(&Value::Null);
        below |= collect(
            ap,
            sub_raw,
            &format!("{path}.additionalProperties"),
            false,
            props_unc.as_deref(),
            sites,
        );
    }
    let list_map = s.list_type.as_deref() == Some("map");
    if let Some(items) = s.items.as_deref_mut() {
        let items_unc = match uncorrelatable {
            Some(u) => Some(u.to_string()),
            None if !list_map => Some(path.to_string()),
            None => None,
        };
        let sub_raw = raw.get("items").unwrap_or(&Value::Null);
        below |= collect(
            items,
            sub_raw,
            &format!("{path}.items"),
            false,
            items_unc.as_deref(),
            sites,
        );
    }
    s.rules_below = below;
    below
}

/// Walks `v` (and the correlated `old`) beside `s`, calling `visit` at every rule site.
pub(crate) fn walk<'a>(
    s: &'a Schema,
    sites: &'a [RuleSite],
    v: &'a Value,
    old: Option<&'a Value>,
    path: &mut String,
    visit: &mut dyn FnMut(RuleVisit<'_>),
) {
    if !s.rules_below || v.is_null() {
        return;
    }
    if let Some(i) = s.rule_site {
        if let Some(site) = sites.get(i) {
            visit(RuleVisit {
                site_index: i,
                site,
                field_path: path,
                value: v,
                old_value: old,
            });
        }
    }
    match v {
        Value::Object(m) => {
            let correlatable = s.map_type.as_deref() != Some("atomic");
            let old_map = if correlatable {
                old.and_then(Value::as_object)
            } else {
                None
            };
            let ap = s.additional.as_ref().and_then(|a| a.schema.as_deref());
            for (k, child) in m {
                let (sub, keyed) = match s.properties.get(k) {
                    Some(p) => (p, false),
                    None => match ap {
                        Some(a) => (a, true),
                        None => continue,
                    },
                };
                if !sub.rules_below {
                    continue;
                }
                let base = path.len();
                if keyed {
                    path.push('[');
                    path.push_str(k);
                    path.push(']');
                } else {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                }
                walk(
                    sub,
                    sites,
                    child,
                    old_map.and_then(|o| o.get(k)),
                    path,
                    visit,
                );
                path.truncate(base);
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = s.items.as_deref() else {
                return;
            };
            if !item_schema.rules_below {
                return;
            }
            let old_items = if s.list_type.as_deref() == Some("map") {
                old.and_then(Value::as_array)
            } else {
                None
            };
            for (i, item) in items.iter().enumerate() {
                let old_item = old_items
                    .and_then(|olds| olds.iter().find(|o| same_map_key(s, item_schema, item, o)));
                let base = path.len();
                path.push('[');
                path.push_str(&i.to_string());
                path.push(']');
                walk(item_schema, sites, item, old_item, path, visit);
                path.truncate(base);
            }
        }
        _ => {}
    }
}

/// Whether two items of a map-list have the same key (a missing key field takes the key
/// property's default, as upstream's map-list correlation does).
fn same_map_key(list: &Schema, item_schema: &Schema, a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return false;
    };
    list.list_map_keys.iter().all(|k| {
        let default = item_schema
            .properties
            .get(k)
            .and_then(|p| p.default.as_ref());
        let av = a.get(k).or(default);
        let bv = b.get(k).or(default);
        av.is_some() && av == bv
    })
}

/// Upstream's `ValidFieldPath` for a rule's `fieldPath`: `.name` and `['name']` steps through
/// properties or additionalProperties, `[n]` through list items.
pub(crate) fn valid_field_path(s: &Schema, path: &str) -> bool {
    let mut cur = s;
    let mut rest = path;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let name: String;
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            name = r[..end].to_string();
            if name.is_empty() {
                return false;
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("['") {
            let Some(end) = r.find("']") else {
                return false;
            };
            name = r[..end].to_string();
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { return false };
            if r[..end].parse::<usize>().is_err() {
                return false;
            }
            let Some(items) = cur.items.as_deref() else {
                return false;
            };
            cur = items;
            rest = &r[end + 1..];
            continue;
        } else {
            return false;
        }
        match cur.field(&name) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    true
}
