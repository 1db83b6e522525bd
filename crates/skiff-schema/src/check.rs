//! Schema checks at CRD create/update: upstream's `ValidateStructural` (schema/validation.go,
//! complete.go), the per-node `ValidateCustomResourceDefinitionOpenAPISchema` rules of
//! pkg/apis/apiextensions/validation, and `ValidateDefaults` (defaulting/validation.go).

use serde_json::Value;

use crate::error::{self, FieldError};
use crate::schema::Schema;
use crate::walk::{self, FieldPath};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

fn key(path: &str, k: &str) -> String {
    format!("{path}.properties[{k}]")
}

/// `ValidateStructural`: structural invariants and completeness, sorted by message.
pub(crate) fn structural(s: &Schema, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    invariants(s, Level::Root, path, &mut errs);
    completeness_value(s, Some(s), path, path, &mut errs);
    errs.sort_by_key(FieldError::message);
    errs
}

fn is_type_only(s: &Schema, ty: &str) -> bool {
    s.ty == ty
        && s.title.is_empty()
        && s.description.is_empty()
        && !s.nullable
        && s.default.is_none()
        && !s.external_docs
        && s.format.is_empty()
        && s.enum_.is_none()
        && s.maximum.is_none()
        && s.minimum.is_none()
        && !s.exclusive_maximum
        && !s.exclusive_minimum
        && s.max_length.is_none()
        && s.min_length.is_none()
        && s.max_items.is_none()
        && s.min_items.is_none()
        && s.max_properties.is_none()
        && s.min_properties.is_none()
        && s.pattern.is_none()
        && !s.unique_items
        && s.multiple_of.is_none()
        && s.required.is_empty()
        && s.items.is_none()
        && s.properties.is_empty()
        && s.additional.is_none()
        && s.all_of.is_empty()
        && s.any_of.is_empty()
        && s.one_of.is_empty()
        && s.not.is_none()
        && s.preserve_unknown.is_none()
        && !s.embedded
        && !s.int_or_string
        && s.list_type.is_none()
        && s.list_map_keys.is_empty()
        && s.map_type.is_none()
        && s.validations.is_empty()
}

fn is_int_or_string_any_of(any_of: &[Schema]) -> bool {
    any_of.len() == 2 && is_type_only(&any_of[0], "integer") && is_type_only(&any_of[1], "string")
}

fn invariants(s: &Schema, lvl: Level, path: &str, errs: &mut Vec<FieldError>) {
    if s.ty == "array" && s.items.is_none() {
        errs.push(FieldError::required(
            &format!("{path}.items"),
            "must be specified",
        ));
    }
    if let Some(items) = &s.items {
        invariants(items, Level::Item, &format!("{path}.items"), errs);
    }
    for (k, p) in &s.properties {
        invariants(p, Level::Field, &key(path, k), errs);
    }
    if let Some(a) = &s.additional {
        if lvl == Level::Root {
            errs.push(FieldError::forbidden(
                &format!("{path}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(ap) = &a.schema {
            invariants(
                ap,
                Level::Field,
                &format!("{path}.additionalProperties"),
                errs,
            );
        }
    }
    // extensions
    if s.int_or_string && s.preserves_unknown() {
        errs.push(error::invalid(
            &format!("{path}.x-kubernetes-preserve-unknown-fields"),
            Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if s.int_or_string && s.embedded {
        errs.push(error::invalid(
            &format!("{path}.x-kubernetes-embedded-resource"),
            Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let skip_any_of = is_int_or_string_any_of(&s.any_of);
    let skip_first_all_of_any_of = s
        .all_of
        .first()
        .is_some_and(|a| is_int_or_string_any_of(&a.any_of));
    value_validation(s, skip_any_of, skip_first_all_of_any_of, path, errs);

    let check_metadata = lvl == Level::Root || s.embedded;
    if s.embedded && s.ty != "object" {
        if s.ty.is_empty() {
            errs.push(FieldError::required(
                &format!("{path}.type"),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            errs.push(error::invalid(
                &format!("{path}.type"),
                Value::String(s.ty.clone()),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if s.ty.is_empty() && !s.int_or_string && !s.preserves_unknown() {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(&format!("{path}.type"), detail));
    }
    if s.embedded && s.additional.is_some() {
        errs.push(FieldError::forbidden(
            &format!("{path}.additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !s.ty.is_empty() && s.ty != "object" {
        errs.push(error::invalid(
            &format!("{path}.type"),
            Value::String(s.ty.clone()),
            "must be object at the root",
        ));
    }
    if check_metadata {
        for name in ["kind", "apiVersion"] {
            if let Some(p) = s.properties.get(name) {
                if p.ty != "string" {
                    errs.push(error::invalid(
                        &format!("{}.type", key(path, name)),
                        Value::String(p.ty.clone()),
                        "must be string",
                    ));
                }
            }
        }
    }
    if let Some(meta) = s.properties.get("metadata") {
        let mpath = key(path, "metadata");
        if check_metadata && meta.ty != "object" {
            errs.push(error::invalid(
                &format!("{mpath}.type"),
                Value::String(meta.ty.clone()),
                "must be object",
            ));
        }
        if lvl == Level::Root && !metadata_only_names(meta) {
            errs.push(FieldError::forbidden(
                &mpath,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if s.embedded && !s.preserves_unknown() && s.properties.is_empty() {
        errs.push(FieldError::required(
            &format!("{path}.properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// The root `metadata` schema may only restrict `name` and `generateName` (its type and
/// default are checked elsewhere).
fn metadata_only_names(m: &Schema) -> bool {
    let props_ok = m.properties.is_empty()
        || (m.properties.len() <= 2
            && m.properties
                .keys()
                .all(|k| k == "name" || k == "generateName"));
    let mut rest = m.clone();
    rest.ty = String::new();
    rest.default = None;
    rest.properties.clear();
    rest.rule_site = None;
    rest.rules_below = false;
    props_ok && is_type_only(&rest, "")
}

fn value_validation(
    s: &Schema,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, v) in s.any_of.iter().enumerate() {
            nested(v, false, &format!("{path}.anyOf[{i}]"), errs);
        }
    }
    for (i, v) in s.all_of.iter().enumerate() {
        nested(
            v,
            skip_first_all_of_any_of && i == 0,
            &format!("{path}.allOf[{i}]"),
            errs,
        );
    }
    for (i, v) in s.one_of.iter().enumerate() {
        nested(v, false, &format!("{path}.oneOf[{i}]"), errs);
    }
    if let Some(n) = &s.not {
        nested(n, false, &format!("{path}.not"), errs);
    }
    if let Some(p) = &s.pattern {
        if let Err(e) = &p.regex {
            errs.push(error::invalid(
                &format!("{path}.pattern"),
                Value::String(p.source.clone()),
                format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }
}

/// Checks a schema under `allOf`/`anyOf`/`oneOf`/`not`: value validations only.
fn nested(v: &Schema, skip_any_of: bool, path: &str, errs: &mut Vec<FieldError>) {
    value_validation(v, skip_any_of, false, path, errs);
    if let Some(items) = &v.items {
        nested(items, false, &format!("{path}.items"), errs);
    }
    for (k, p) in &v.properties {
        nested(p, false, &key(path, k), errs);
    }
    let forbid = |errs: &mut Vec<FieldError>, what: &str, detail: &str| {
        errs.push(FieldError::forbidden(&format!("{path}.{what}"), detail));
    };
    if !v.ty.is_empty() {
        forbid(errs, "type", "must be empty to be structural");
    }
    if v.additional.is_some() {
        forbid(
            errs,
            "additionalProperties",
            "must be undefined to be structural",
        );
    }
    if v.default.is_some() {
        forbid(errs, "default", "must be undefined to be structural");
    }
    if !v.title.is_empty() {
        forbid(errs, "title", "must be empty to be structural");
    }
    if !v.description.is_empty() {
        forbid(errs, "description", "must be empty to be structural");
    }
    if v.nullable {
        forbid(errs, "nullable", "must be false to be structural");
    }
    if v.external_docs {
        forbid(errs, "externalDocs", "must be undefined to be structural");
    }
    if v.preserves_unknown() {
        forbid(
            errs,
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        );
    }
    if v.embedded {
        forbid(
            errs,
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        );
    }
    if v.int_or_string {
        forbid(
            errs,
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        );
    }
    if !v.list_map_keys.is_empty() {
        forbid(
            errs,
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        );
    }
    if v.list_type.is_some() {
        forbid(
            errs,
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        );
    }
    if v.map_type.is_some() {
        forbid(
            errs,
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        );
    }
    if !v.validations.is_empty() {
        forbid(
            errs,
            "x-kubernetes-validations",
            "must be empty to be structural",
        );
    }
    if v.properties.contains_key("metadata") {
        errs.push(FieldError::forbidden(
            &key(path, "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

fn completeness_value(
    v: &Schema,
    s: Option<&Schema>,
    s_path: &str,
    v_path: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(n) = &v.not {
        completeness_nested(n, s, s_path, &format!("{v_path}.not"), errs);
    }
    for (i, x) in v.all_of.iter().enumerate() {
        completeness_nested(x, s, s_path, &format!("{v_path}.allOf[{i}]"), errs);
    }
    for (i, x) in v.any_of.iter().enumerate() {
        completeness_nested(x, s, s_path, &format!("{v_path}.anyOf[{i}]"), errs);
    }
    for (i, x) in v.one_of.iter().enumerate() {
        completeness_nested(x, s, s_path, &format!("{v_path}.oneOf[{i}]"), errs);
    }
}

fn completeness_nested(
    v: &Schema,
    s: Option<&Schema>,
    s_path: &str,
    v_path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        errs.push(FieldError::required(
            s_path,
            format!("because it is defined in {v_path}"),
        ));
        return;
    };
    completeness_value(v, Some(s), s_path, v_path, errs);
    if let Some(items) = &v.items {
        completeness_nested(
            items,
            s.items.as_deref(),
            &format!("{s_path}.items"),
            &format!("{v_path}.items"),
            errs,
        );
    }
    for (k, vf) in &v.properties {
        match s.properties.get(k) {
            None => errs.push(FieldError::required(
                &key(s_path, k),
                format!("because it is defined in {}", key(v_path, k)),
            )),
            Some(sf) => completeness_nested(vf, Some(sf), &key(s_path, k), &key(v_path, k), errs),
        }
    }
}

/// Options of the per-node CRD schema checks (`specStandardValidatorV3` state).
#[derive(Clone)]
struct Ssv {
    allow_defaults: bool,
    disallow_reason: String,
    inside_meta: bool,
    uncorrelatable: Option<String>,
}

const OPENAPI_V3_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];
const VALIDATION_REASONS: [&str; 4] = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// `ValidateCustomResourceDefinitionOpenAPISchema` for a v1 CRD created today (defaults
/// allowed, valid property types, atomic set items, map-list keys required or defaulted).
pub(crate) fn openapi_schema(s: &Schema, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ssv = Ssv {
        allow_defaults: true,
        disallow_reason: String::new(),
        inside_meta: false,
        uncorrelatable: None,
    };
    node(s, path, &ssv, true, &mut errs);
    errs
}

fn ssv_validate(s: &Schema, path: &str, ssv: &Ssv, errs: &mut Vec<FieldError>) {
    if !s.ty.is_empty() && !OPENAPI_V3_TYPES.contains(&s.ty.as_str()) {
        let valid: Vec<String> = OPENAPI_V3_TYPES.iter().map(|t| t.to_string()).collect();
        errs.push(error::not_supported(
            &format!("{path}.type"),
            Value::String(s.ty.clone()),
            &valid,
        ));
    }
    if s.default.is_some() && !ssv.allow_defaults {
        let mut detail = "must not be set".to_string();
        if !ssv.disallow_reason.is_empty() {
            detail.push(' ');
            detail.push_str(&ssv.disallow_reason);
        }
        errs.push(FieldError::forbidden(&format!("{path}.default"), detail));
    }
    for u in &s.unsupported {
        let (field, detail) = match *u {
            "id" => ("id", "id is not supported"),
            "additionalItems" => ("additionalItems", "additionalItems is not supported"),
            "patternProperties" => ("patternProperties", "patternProperties is not supported"),
            "definitions" => ("definitions", "definitions is not supported"),
            "dependencies" => ("dependencies", "dependencies is not supported"),
            _ => ("$ref", "$ref is not supported"),
        };
        errs.push(FieldError::forbidden(&format!("{path}.{field}"), detail));
    }
    if s.ty == "null" {
        errs.push(FieldError::forbidden(
            &format!("{path}.type"),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    if s.items_array {
        errs.push(FieldError::forbidden(
            &format!("{path}.items"),
            "items must be a schema object and not an array",
        ));
    }
    if ssv.inside_meta && s.embedded {
        errs.push(FieldError::forbidden(
            &format!("{path}.x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
}

fn node(s: &Schema, path: &str, ssv: &Ssv, is_root: bool, errs: &mut Vec<FieldError>) {
    ssv_validate(s, path, ssv, errs);
    if s.unique_items {
        errs.push(FieldError::forbidden(
            &format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if let Some(a) = &s.additional {
        if !s.properties.is_empty() && (!a.allows || a.schema.is_some()) {
            errs.push(FieldError::forbidden(
                &format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        let mut sub = ssv.clone();
        if ssv.inside_meta {
            sub.allow_defaults = false;
            sub.disallow_reason = "inside additionalProperties applying to object metadata".into();
        }
        if let Some(ap) = &a.schema {
            node(
                ap,
                &format!("{path}.additionalProperties"),
                &sub,
                false,
                errs,
            );
        }
    }
    for (k, p) in &s.properties {
        let mut sub = ssv.clone();
        if s.map_type.as_deref() == Some("atomic") && sub.uncorrelatable.is_none() {
            sub.uncorrelatable = Some(path.to_string());
        }
        if (is_root || s.embedded) && ["metadata", "kind", "apiVersion"].contains(&k.as_str()) {
            sub.inside_meta = true;
            if is_root {
                sub.allow_defaults = false;
                sub.disallow_reason = format!("in top-level {k}");
            }
        }
        node(p, &key(path, k), &sub, false, errs);
    }
    if let Some(n) = &s.not {
        node(n, &format!("{path}.not"), ssv, false, errs);
    }
    for (name, list) in [
        ("allOf", &s.all_of),
        ("oneOf", &s.one_of),
        ("anyOf", &s.any_of),
    ] {
        for (i, x) in list.iter().enumerate() {
            node(x, &format!("{path}.{name}[{i}]"), ssv, false, errs);
        }
    }
    if let Some(items) = &s.items {
        let mut sub = ssv.clone();
        if s.list_type.as_deref() != Some("map") && sub.uncorrelatable.is_none() {
            sub.uncorrelatable = Some(path.to_string());
        }
        node(items, &format!("{path}.items"), &sub, false, errs);
    }
    if s.preserve_unknown == Some(false) {
        errs.push(error::invalid(
            &format!("{path}.x-kubernetes-preserve-unknown-fields"),
            Value::Bool(false),
            "must be true or undefined",
        ));
    }
    if let Some(mt) = &s.map_type {
        if s.ty != "object" {
            type_must_be(s, path, "object", "x-kubernetes-map-type", errs);
        }
        if mt != "atomic" && mt != "granular" {
            errs.push(error::not_supported(
                &format!("{path}.x-kubernetes-map-type"),
                Value::String(mt.clone()),
                &["atomic".into(), "granular".into()],
            ));
        }
    }
    if let Some(lt) = &s.list_type {
        if s.ty != "array" {
            type_must_be(s, path, "array", "x-kubernetes-list-type", errs);
        } else if lt == "set" {
            if let Some(is) = &s.items {
                if is.ty == "array" && is.list_type.as_deref().is_some_and(|t| t != "atomic") {
                    errs.push(error::invalid(
                        &format!("{path}.items.x-kubernetes-list-type"),
                        Value::String(is.list_type.clone().unwrap_or_default()),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    ));
                }
                if is.ty == "object" && is.map_type.as_deref() != Some("atomic") {
                    errs.push(error::invalid(
                        &format!("{path}.items.x-kubernetes-map-type"),
                        is.list_type
                            .clone()
                            .map(Value::String)
                            .unwrap_or(Value::Null),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    ));
                }
            }
        }
        if lt != "atomic" && lt != "set" && lt != "map" {
            errs.push(error::not_supported(
                &format!("{path}.x-kubernetes-list-type"),
                Value::String(lt.clone()),
                &["atomic".into(), "set".into(), "map".into()],
            ));
        }
    }
    if !s.list_map_keys.is_empty() {
        match s.list_type.as_deref() {
            None => errs.push(FieldError::required(
                &format!("{path}.x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some("map") => {}
            Some(other) => errs.push(error::invalid(
                &format!("{path}.x-kubernetes-list-type"),
                Value::String(other.to_string()),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
        }
    }
    if s.list_type.as_deref() == Some("map") {
        list_map_checks(s, path, errs);
    }
    map_list_keys_map_set(s, path, errs);
    rules(s, path, errs);
}

fn type_must_be(s: &Schema, path: &str, want: &str, ext: &str, errs: &mut Vec<FieldError>) {
    let detail = format!("must be {want} if {ext} is specified");
    if s.ty.is_empty() {
        errs.push(FieldError::required(&format!("{path}.type"), detail));
    } else {
        errs.push(error::invalid(
            &format!("{path}.type"),
            Value::String(s.ty.clone()),
            detail,
        ));
    }
}

fn list_map_checks(s: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    if s.list_map_keys.is_empty() {
        errs.push(FieldError::required(
            &format!("{path}.x-kubernetes-list-map-keys"),
            "must not be empty if x-kubernetes-list-type is map",
        ));
    }
    let Some(items) = &s.items else {
        errs.push(FieldError::required(
            &format!("{path}.items"),
            "must have a schema if x-kubernetes-list-type is map",
        ));
        return;
    };
    if s.items_array {
        errs.push(error::invalid(
            &format!("{path}.items"),
            Value::String(String::new()),
            "must only have a single schema if x-kubernetes-list-type is map",
        ));
    }
    if items.ty != "object" {
        errs.push(error::invalid(
            &format!("{path}.items.type"),
            Value::String(items.ty.clone()),
            "must be object if parent array's x-kubernetes-list-type is map",
        ));
        return;
    }
    let keys_value = Value::Array(s.list_map_keys.iter().cloned().map(Value::String).collect());
    let mut seen = std::collections::HashSet::new();
    for k in &s.list_map_keys {
        match items.properties.get(k) {
            Some(p) if p.ty == "array" || p.ty == "object" => errs.push(error::invalid(
                &format!("{}.type", key(&format!("{path}.items"), k)),
                Value::String(items.ty.clone()),
                "must be a scalar type if parent array's x-kubernetes-list-type is map",
            )),
            Some(_) => {}
            None => errs.push(error::invalid(
                &format!("{path}.x-kubernetes-list-map-keys"),
                keys_value.clone(),
                "entries must all be names of item properties",
            )),
        }
        if !seen.insert(k.as_str()) {
            errs.push(error::invalid(
                &format!("{path}.x-kubernetes-list-map-keys"),
                keys_value.clone(),
                "must not contain duplicate entries",
            ));
        }
    }
}

fn map_list_keys_map_set(s: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    let Some(items) = &s.items else { return };
    let Some(lt) = s.list_type.as_deref() else {
        return;
    };
    if lt != "set" && lt != "map" {
        return;
    }
    if items.nullable {
        errs.push(FieldError::forbidden(
            &format!("{path}.items.nullable"),
            format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
        ));
    }
    if lt == "map" {
        for k in &s.list_map_keys {
            let Some(p) = items.properties.get(k) else {
                continue;
            };
            let ppath = key(&format!("{path}.items"), k);
            if !items.required.contains(k) && p.default.is_none() {
                errs.push(FieldError::required(
                    &format!("{ppath}.default"),
                    "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                ));
            }
            if p.nullable {
                errs.push(FieldError::forbidden(
                    &format!("{ppath}.nullable"),
                    "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                ));
            }
        }
    }
}

fn has_newlines(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

/// The static checks of `x-kubernetes-validations` entries (compiling the rules is the CEL
/// integration's job).
fn rules(s: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    for (i, r) in s.validations.iter().enumerate() {
        let rpath = format!("{path}.x-kubernetes-validations[{i}]");
        let Some(m) = r.as_object() else {
            errs.push(error::invalid(&rpath, r.clone(), "must be an object"));
            continue;
        };
        let get = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
        let rule = get("rule");
        let message = get("message");
        let message_expr = get("messageExpression");
        if rule.trim().is_empty() {
            errs.push(FieldError::required(
                &format!("{rpath}.rule"),
                "rule is not specified",
            ));
        } else if !message.is_empty() && message.trim().is_empty() {
            errs.push(error::invalid(
                &format!("{rpath}.message"),
                Value::String(message.into()),
                "message must be non-empty if specified",
            ));
        } else if has_newlines(message.trim()) {
            errs.push(error::invalid(
                &format!("{rpath}.message"),
                Value::String(message.into()),
                "message must not contain line breaks",
            ));
        } else if has_newlines(rule.trim()) && message.trim().is_empty() {
            errs.push(FieldError::required(
                &format!("{rpath}.message"),
                "message must be specified if rule contains line breaks",
            ));
        }
        if !message_expr.is_empty() && message_expr.trim().is_empty() {
            errs.push(FieldError::required(
                &format!("{rpath}.messageExpression"),
                "messageExpression must be non-empty if specified",
            ));
        }
        if let Some(reason) = m.get("reason").and_then(Value::as_str) {
            if !VALIDATION_REASONS.contains(&reason) {
                let valid: Vec<String> = VALIDATION_REASONS.iter().map(|r| r.to_string()).collect();
                errs.push(error::not_supported(
                    &format!("{rpath}.reason"),
                    Value::String(reason.into()),
                    &valid,
                ));
            }
        }
        let field_path = get("fieldPath");
        if !field_path.is_empty() && field_path.trim().is_empty() {
            errs.push(error::invalid(
                &format!("{rpath}.fieldPath"),
                Value::String(field_path.into()),
                "fieldPath must be non-empty if specified",
            ));
        }
        if has_newlines(field_path) {
            errs.push(error::invalid(
                &format!("{rpath}.fieldPath"),
                Value::String(field_path.into()),
                "fieldPath must not contain line breaks",
            ));
        }
        if !field_path.trim().is_empty()
            && !has_newlines(field_path)
            && !crate::cel::valid_field_path(s, field_path)
        {
            errs.push(error::invalid(
                &format!("{rpath}.fieldPath"),
                Value::String(field_path.into()),
                "fieldPath must be a valid path",
            ));
        }
    }
}

/// `ValidateDefaults`: every default validates against its schema and is already pruned.
/// Defaults under `additionalProperties` are not followed (they are forbidden there).
pub(crate) fn defaults(s: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    defaults_node(s, path, true, false, errs);
}

fn defaults_node(
    s: &Schema,
    path: &str,
    resource_root: bool,
    inside_meta: bool,
    errs: &mut Vec<FieldError>,
) {
    let embedded = resource_root || s.embedded;
    let inside_meta = inside_meta && !s.embedded;
    if let Some(d) = &s.default {
        let dpath = format!("{path}.default");
        if inside_meta {
            errs.extend(crate::openapi::validate(s, d, Some(&dpath)));
        } else {
            let mut pruned = d.clone();
            let mut ignored = Vec::new();
            walk::prune(
                &mut pruned,
                Some(s),
                s.embedded,
                &mut String::new(),
                &mut ignored,
            );
            if &pruned != d {
                errs.push(error::invalid(
                    &dpath,
                    d.clone(),
                    "must not have unknown fields",
                ));
            }
            let mut meta_errs = Vec::new();
            let mut fp = FieldPath(dpath.clone());
            walk::embedded_meta(&mut fp, s, d, &mut meta_errs);
            if !meta_errs.is_empty() {
                errs.extend(meta_errs);
            } else {
                errs.extend(crate::openapi::validate(s, d, Some(&dpath)));
            }
        }
    }
    if let Some(items) = &s.items {
        defaults_node(items, &format!("{path}.items"), false, inside_meta, errs);
    }
    for (k, p) in &s.properties {
        let sub_meta =
            inside_meta || (embedded && ["metadata", "apiVersion", "kind"].contains(&k.as_str()));
        defaults_node(p, &key(path, k), false, sub_meta, errs);
    }
}
