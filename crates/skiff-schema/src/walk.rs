//! The object walks upstream does beside OpenAPI validation: pruning (`pruning/algorithm.go`),
//! null pruning and defaulting (`defaulting/prunenulls.go`, `algorithm.go`), list-type
//! uniqueness (`listtype/validation.go`) and embedded-resource TypeMeta/ObjectMeta checks
//! (`objectmeta/validation.go`).

use std::collections::HashSet;

use serde_json::{Map, Value};
use skiff_apimachinery::validation::{
    is_dns1035_label, is_dns1123_label, is_qualified_name, is_valid_label_value,
};

use crate::error::{self, FieldError};
use crate::schema::Schema;

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// A `field.Path` being built: `Child` joins with `.`, `Key` and `Index` append `[..]`.
#[derive(Debug, Default, Clone)]
pub(crate) struct FieldPath(pub String);

impl FieldPath {
    pub fn child(&mut self, name: &str) -> usize {
        let base = self.0.len();
        if !self.0.is_empty() {
            self.0.push('.');
        }
        self.0.push_str(name);
        base
    }

    pub fn key(&mut self, k: &str) -> usize {
        let base = self.0.len();
        self.0.push('[');
        self.0.push_str(k);
        self.0.push(']');
        base
    }

    pub fn index(&mut self, i: usize) -> usize {
        let base = self.0.len();
        self.0.push('[');
        self.0.push_str(&i.to_string());
        self.0.push(']');
        base
    }

    pub fn reset(&mut self, base: usize) {
        self.0.truncate(base);
    }

    /// This path with `name` as a child, as a new string.
    pub fn with_child(&self, name: &str) -> String {
        if self.0.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.0)
        }
    }
}

/// Pruning: drops fields `s` does not specify, records their paths (`spec.foo`,
/// `spec.list[0].bar`). `embedded` keeps `apiVersion`, `kind` and `metadata` of this object.
pub(crate) fn prune(
    x: &mut Value,
    s: Option<&Schema>,
    embedded: bool,
    path: &mut String,
    pruned: &mut Vec<String>,
) {
    if let Some(s) = s {
        if s.preserves_unknown() {
            skip_prune(x, s, embedded || s.embedded, path, pruned);
            return;
        }
    }
    match x {
        Value::Object(m) => {
            let Some(s) = s else {
                for k in m.keys() {
                    pruned.push(join_key(path, k));
                }
                m.clear();
                return;
            };
            let embedded = embedded || s.embedded;
            let mut drop: Vec<String> = Vec::new();
            for (k, v) in m.iter_mut() {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(p) = s.properties.get(k) {
                    let base = push_key(path, k);
                    prune(v, Some(p), false, path, pruned);
                    path.truncate(base);
                } else if let Some(a) = &s.additional {
                    let base = push_key(path, k);
                    prune(v, a.schema.as_deref(), false, path, pruned);
                    path.truncate(base);
                } else {
                    drop.push(k.clone());
                }
            }
            for k in drop {
                pruned.push(join_key(path, &k));
                m.remove(&k);
            }
        }
        Value::Array(a) => {
            let items = s.and_then(|s| s.items.as_deref());
            for (i, v) in a.iter_mut().enumerate() {
                let base = path.len();
                path.push_str(&format!("[{i}]"));
                prune(v, items, false, path, pruned);
                path.truncate(base);
            }
        }
        _ => {}
    }
}

fn skip_prune(
    x: &mut Value,
    s: &Schema,
    embedded: bool,
    path: &mut String,
    pruned: &mut Vec<String>,
) {
    match x {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                let sub = match s.properties.get(k) {
                    Some(p) => Some(p),
                    None => match &s.additional {
                        Some(a) => a.schema.as_deref(),
                        None => continue,
                    },
                };
                let base = push_key(path, k);
                prune(v, sub, false, path, pruned);
                path.truncate(base);
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.items.as_deref() {
                for (i, v) in a.iter_mut().enumerate() {
                    let base = path.len();
                    path.push_str(&format!("[{i}]"));
                    skip_prune(v, items, items.embedded, path, pruned);
                    path.truncate(base);
                }
            }
        }
        _ => {}
    }
}

fn push_key(path: &mut String, k: &str) -> usize {
    let base = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(k);
    base
}

fn join_key(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// Removes `null`s the schema neither allows (`nullable`) nor defaults.
pub(crate) fn prune_nulls(x: &mut Value, s: Option<&Schema>) {
    match x {
        Value::Object(m) => {
            m.retain(|k, v| {
                let sub = s.and_then(|s| s.field(k));
                let drop = v.is_null() && sub.is_some_and(|p| !p.nullable && p.default.is_none());
                if !drop {
                    prune_nulls(v, sub);
                }
                !drop
            });
        }
        Value::Array(a) => {
            let items = s.and_then(|s| s.items.as_deref());
            for v in a {
                prune_nulls(v, items);
            }
        }
        _ => {}
    }
}

/// Fills in `default`s of missing fields and of non-nullable `null`s, recursively (defaults
/// are deep copies, and are themselves defaulted further down).
pub(crate) fn apply_defaults(x: &mut Value, s: &Schema) {
    match x {
        Value::Object(m) => {
            for (k, p) in &s.properties {
                if let Some(d) = &p.default {
                    match m.get_mut(k) {
                        None => {
                            m.insert(k.clone(), d.clone());
                        }
                        Some(v) if v.is_null() && !p.nullable => *v = d.clone(),
                        Some(_) => {}
                    }
                }
            }
            for (k, v) in m.iter_mut() {
                if let Some(p) = s.properties.get(k) {
                    apply_defaults(v, p);
                } else if let Some(ap) = s.additional.as_ref().and_then(|a| a.schema.as_deref()) {
                    if v.is_null() && !ap.nullable {
                        *v = ap.default.clone().unwrap_or(Value::Null);
                    }
                    apply_defaults(v, ap);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.items.as_deref() {
                for v in a {
                    if v.is_null() && !items.nullable {
                        *v = items.default.clone().unwrap_or(Value::Null);
                    }
                    apply_defaults(v, items);
                }
            }
        }
        _ => {}
    }
}

/// Whether any default could apply below `s` (so objects under default-free schemas are not
/// walked at all).
pub(crate) fn has_defaults(s: &Schema) -> bool {
    s.properties
        .values()
        .any(|p| p.default.is_some() || has_defaults(p))
        || s.items
            .as_deref()
            .is_some_and(|i| i.default.is_some() || has_defaults(i))
        || s.additional
            .as_ref()
            .and_then(|a| a.schema.as_deref())
            .is_some_and(|a| a.default.is_some() || has_defaults(a))
}

/// `x-kubernetes-list-type` `set` and `map` uniqueness: `Duplicate value` errors.
pub(crate) fn list_sets_and_maps(
    path: &mut FieldPath,
    s: &Schema,
    x: &Value,
    errs: &mut Vec<FieldError>,
) {
    match x {
        Value::Object(m) => {
            if let Some(ap) = s.additional.as_ref().and_then(|a| a.schema.as_deref()) {
                for (k, v) in m {
                    let base = path.key(k);
                    list_sets_and_maps(path, ap, v, errs);
                    path.reset(base);
                }
            }
            if !s.properties.is_empty() {
                for (k, v) in m {
                    if let Some(p) = s.properties.get(k) {
                        let base = path.child(k);
                        list_sets_and_maps(path, p, v, errs);
                        path.reset(base);
                    }
                }
            }
        }
        Value::Array(a) => {
            match s.list_type.as_deref() {
                Some("set") => {
                    for i in non_unique(a.iter()) {
                        let base = path.index(i);
                        errs.push(error::duplicate(&path.0, a[i].clone()));
                        path.reset(base);
                    }
                }
                Some("map") => list_map(path, s, a, errs),
                _ => {}
            }
            if let Some(items) = s.items.as_deref() {
                for (i, v) in a.iter().enumerate() {
                    let base = path.index(i);
                    list_sets_and_maps(path, items, v, errs);
                    path.reset(base);
                }
            }
        }
        _ => {}
    }
}

/// Indices of the second appearance of each repeated value.
fn non_unique<'a>(items: impl Iterator<Item = &'a Value>) -> Vec<usize> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut reported: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for (i, x) in items.enumerate() {
        // Go compares scalars by type and value and compounds by their JSON encoding; the
        // serialized form with a kind prefix distinguishes the same way (1 vs 1.0 vs "1").
        let key = canonical(x);
        if !seen.insert(key.clone()) && reported.insert(key) {
            out.push(i);
        }
    }
    out
}

fn canonical(x: &Value) -> String {
    match x {
        Value::Object(_) | Value::Array(_) => format!("c{}", sorted_json(x)),
        Value::Number(n) if n.as_i64().is_some() => format!("i{n}"),
        Value::Number(n) => format!("f{}", n.as_f64().unwrap_or(0.0)),
        other => format!("s{other}"),
    }
}

fn sorted_json(x: &Value) -> String {
    match x {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String((*k).clone()),
                        sorted_json(&m[k.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(sorted_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn list_map(path: &mut FieldPath, s: &Schema, a: &[Value], errs: &mut Vec<FieldError>) {
    for (i, x) in a.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            let base = path.index(i);
            errs.push(error::invalid(
                &path.0,
                x.clone(),
                "must be an object for an array of list-type map",
            ));
            path.reset(base);
            return;
        }
    }
    if a.len() <= 1 {
        return;
    }
    // The key of each item: the key fields present (a missing field or a null item means
    // "unspecified", distinct from an explicit null).
    let keys: Vec<Value> = a
        .iter()
        .map(|x| {
            let mut key = Map::new();
            if let Some(m) = x.as_object() {
                for k in &s.list_map_keys {
                    if let Some(v) = m.get(k) {
                        key.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(key)
        })
        .collect();
    for i in non_unique(keys.iter()) {
        let base = path.index(i);
        errs.push(error::duplicate(&path.0, keys[i].clone()));
        path.reset(base);
    }
}

/// `objectmeta.Validate` with `isResourceRoot=false`: TypeMeta and ObjectMeta of every
/// `x-kubernetes-embedded-resource` object.
pub(crate) fn embedded_meta(
    path: &mut FieldPath,
    s: &Schema,
    x: &Value,
    errs: &mut Vec<FieldError>,
) {
    match x {
        Value::Object(m) => {
            if s.embedded {
                validate_embedded(path, m, errs);
            }
            for (k, v) in m {
                if let Some(p) = s.properties.get(k) {
                    let base = path.child(k);
                    embedded_meta(path, p, v, errs);
                    path.reset(base);
                } else if let Some(ap) = s.additional.as_ref().and_then(|a| a.schema.as_deref()) {
                    let base = path.key(k);
                    embedded_meta(path, ap, v, errs);
                    path.reset(base);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.items.as_deref() {
                for (i, v) in a.iter().enumerate() {
                    let base = path.index(i);
                    embedded_meta(path, items, v, errs);
                    path.reset(base);
                }
            }
        }
        _ => {}
    }
}

/// Whether the schema has an embedded resource anywhere (so the walk can be skipped).
pub(crate) fn has_embedded(s: &Schema) -> bool {
    s.embedded
        || s.properties.values().any(has_embedded)
        || s.items.as_deref().is_some_and(has_embedded)
        || s.additional
            .as_ref()
            .and_then(|a| a.schema.as_deref())
            .is_some_and(has_embedded)
}

/// Whether the schema has a `set` or `map` list anywhere.
pub(crate) fn has_list_sets(s: &Schema) -> bool {
    matches!(s.list_type.as_deref(), Some("set" | "map"))
        || s.properties.values().any(has_list_sets)
        || s.items.as_deref().is_some_and(has_list_sets)
        || s.additional
            .as_ref()
            .and_then(|a| a.schema.as_deref())
            .is_some_and(has_list_sets)
}

pub(crate) fn validate_embedded(
    path: &FieldPath,
    m: &Map<String, Value>,
    errs: &mut Vec<FieldError>,
) {
    if !m.contains_key("apiVersion") {
        errs.push(FieldError::required(&path.with_child("apiVersion"), ""));
    }
    if !m.contains_key("kind") {
        errs.push(FieldError::required(&path.with_child("kind"), ""));
    }
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" => match v {
                Value::String(av) if av.is_empty() => errs.push(error::invalid(
                    &path.with_child("apiVersion"),
                    v.clone(),
                    "must not be empty",
                )),
                Value::String(av) if av != "/" && av.matches('/').count() > 1 => {
                    errs.push(error::invalid(
                        &path.with_child("apiVersion"),
                        v.clone(),
                        format!("unexpected GroupVersion string: {av}"),
                    ))
                }
                Value::String(_) => {}
                _ => errs.push(error::invalid(
                    &path.with_child("apiVersion"),
                    v.clone(),
                    "must be a string",
                )),
            },
            "kind" => match v {
                Value::String(kind) if kind.is_empty() => errs.push(error::invalid(
                    &path.with_child("kind"),
                    v.clone(),
                    "must not be empty",
                )),
                Value::String(kind) => {
                    let msgs = is_dns1035_label(&kind.to_lowercase());
                    if !msgs.is_empty() {
                        errs.push(error::invalid(
                            &path.with_child("kind"),
                            v.clone(),
                            format!(
                                "may have mixed case, but should otherwise match: {}",
                                msgs.join(",")
                            ),
                        ));
                    }
                }
                _ => errs.push(error::invalid(
                    &path.with_child("kind"),
                    v.clone(),
                    "must be a string",
                )),
            },
            "metadata" => validate_embedded_meta(&path.with_child("metadata"), v, errs),
            _ => {}
        }
    }
}

/// The `ValidateObjectMeta` checks that apply to embedded objects: name and generateName as
/// path segments, namespace as a DNS label, label and annotation keys and values.
fn validate_embedded_meta(path: &str, v: &Value, errs: &mut Vec<FieldError>) {
    let Some(m) = v.as_object() else {
        if !v.is_null() {
            errs.push(error::invalid(path, v.clone(), "must be an object"));
        }
        return;
    };
    let str_field = |k: &str, errs: &mut Vec<FieldError>| -> Option<String> {
        match m.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                errs.push(error::invalid(
                    &format!("{path}.{k}"),
                    other.clone(),
                    "must be a string",
                ));
                None
            }
        }
    };
    if let Some(name) = str_field("name", errs) {
        if !name.is_empty() {
            for msg in path_segment(&name, false) {
                errs.push(error::invalid(
                    &format!("{path}.name"),
                    Value::String(name.clone()),
                    msg,
                ));
            }
        }
    }
    if let Some(gn) = str_field("generateName", errs) {
        for msg in path_segment(&gn, true) {
            errs.push(error::invalid(
                &format!("{path}.generateName"),
                Value::String(gn.clone()),
                msg,
            ));
        }
    }
    if let Some(ns) = str_field("namespace", errs) {
        if !ns.is_empty() {
            for msg in is_dns1123_label(&ns) {
                errs.push(error::invalid(
                    &format!("{path}.namespace"),
                    Value::String(ns.clone()),
                    msg,
                ));
            }
        }
    }
    if let Some(labels) = m.get("labels").and_then(Value::as_object) {
        let lp = format!("{path}.labels");
        for (k, val) in labels {
            for msg in is_qualified_name(k) {
                errs.push(error::invalid(&lp, Value::String(k.clone()), msg));
            }
            let text = val.as_str().unwrap_or("");
            for msg in is_valid_label_value(text) {
                errs.push(error::invalid(&lp, val.clone(), msg));
            }
        }
    }
    if let Some(annotations) = m.get("annotations").and_then(Value::as_object) {
        let ap = format!("{path}.annotations");
        let mut total = 0usize;
        for (k, val) in annotations {
            for msg in is_qualified_name(&k.to_lowercase()) {
                errs.push(error::invalid(&ap, Value::String(k.clone()), msg));
            }
            total = total
                .saturating_add(k.len())
                .saturating_add(val.as_str().map_or(0, str::len));
        }
        if total > 256 * 1024 {
            errs.push(error::too_long(&ap, 256 * 1024));
        }
    }
}

fn path_segment(s: &str, prefix: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if !prefix && (s == "." || s == "..") {
        errs.push(format!("may not be '{s}'"));
        return errs;
    }
    for bad in ["/", "%"] {
        if s.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}
