//! The parsed form of a `JSONSchemaProps` (wire JSON), compiled once: one type serves the
//! structural schema, its nested value validations and the OpenAPI validator, as upstream's
//! `spec.Schema` does.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use crate::error::{self, FieldError};
use crate::formats::Format;

/// `additionalProperties`: a boolean or a schema (a schema means "allowed").
#[derive(Debug, Clone)]
pub(crate) struct Additional {
    pub allows: bool,
    pub schema: Option<Box<Schema>>,
}

/// A compiled `pattern`: the source, and the regex or why it does not compile.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    pub source: String,
    pub regex: Result<Regex, String>,
}

/// One `JSONSchemaProps` node.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schema {
    pub ty: String,
    pub format: String,
    /// The format as the validator sees it after upstream strips unsupported ones.
    pub vformat: Option<Format>,
    pub title: String,
    pub description: String,
    pub nullable: bool,
    pub default: Option<Value>,
    pub enum_: Option<Vec<Value>>,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub max_length: Option<i64>,
    pub min_length: Option<i64>,
    pub max_items: Option<i64>,
    pub min_items: Option<i64>,
    pub max_properties: Option<i64>,
    pub min_properties: Option<i64>,
    pub pattern: Option<Pattern>,
    pub unique_items: bool,
    pub multiple_of: Option<f64>,
    pub required: Vec<String>,
    pub items: Option<Box<Schema>>,
    /// `items` given as an array of schemas (not supported by CRDs).
    pub items_array: bool,
    pub properties: BTreeMap<String, Schema>,
    pub additional: Option<Additional>,
    pub all_of: Vec<Schema>,
    pub any_of: Vec<Schema>,
    pub one_of: Vec<Schema>,
    pub not: Option<Box<Schema>>,
    pub preserve_unknown: Option<bool>,
    pub embedded: bool,
    pub int_or_string: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub map_type: Option<String>,
    pub validations: Vec<Value>,
    pub external_docs: bool,
    /// Keys present that CRD schemas do not support (`id`, `$ref`, `definitions`, ...).
    pub unsupported: Vec<&'static str>,
    /// Index into the rule sites when this node carries `x-kubernetes-validations`.
    pub rule_site: Option<usize>,
    /// Whether this node or any node below it (properties, items, additionalProperties)
    /// carries rules, so CEL walks skip rule-free subtrees.
    pub rules_below: bool,
}

impl Schema {
    pub fn preserves_unknown(&self) -> bool {
        self.preserve_unknown == Some(true)
    }

    /// The schema applying to an object's field `k`: a property, else additionalProperties.
    pub fn field(&self, k: &str) -> Option<&Schema> {
        match self.properties.get(k) {
            Some(p) => Some(p),
            None => self.additional.as_ref().and_then(|a| a.schema.as_deref()),
        }
    }
}

/// Parses a schema node, collecting errors for fields of the wrong JSON type.
pub(crate) fn parse(v: &Value, path: &str, errs: &mut Vec<FieldError>) -> Schema {
    let mut s = Schema::default();
    let Some(m) = v.as_object() else {
        errs.push(error::invalid(path, v.clone(), "must be a JSON object"));
        return s;
    };
    for (k, val) in m {
        parse_key(&mut s, k, val, path, errs);
    }
    s.vformat = Format::supported(&s.format);
    s
}

fn child(path: &str, k: &str) -> String {
    format!("{path}.{k}")
}

fn get_str(val: &Value, path: &str, k: &str, errs: &mut Vec<FieldError>) -> String {
    match val {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => {
            errs.push(error::invalid(
                &child(path, k),
                other.clone(),
                "must be a string",
            ));
            String::new()
        }
    }
}

fn get_bool(val: &Value, path: &str, k: &str, errs: &mut Vec<FieldError>) -> Option<bool> {
    match val {
        Value::Bool(b) => Some(*b),
        Value::Null => None,
        other => {
            errs.push(error::invalid(
                &child(path, k),
                other.clone(),
                "must be a boolean",
            ));
            None
        }
    }
}

fn get_f64(val: &Value, path: &str, k: &str, errs: &mut Vec<FieldError>) -> Option<f64> {
    match val {
        Value::Number(n) => n.as_f64(),
        Value::Null => None,
        other => {
            errs.push(error::invalid(
                &child(path, k),
                other.clone(),
                "must be a number",
            ));
            None
        }
    }
}

fn get_i64(val: &Value, path: &str, k: &str, errs: &mut Vec<FieldError>) -> Option<i64> {
    match val {
        Value::Number(n) if n.as_i64().is_some() => n.as_i64(),
        Value::Null => None,
        other => {
            errs.push(error::invalid(
                &child(path, k),
                other.clone(),
                "must be an integer",
            ));
            None
        }
    }
}

fn get_strings(val: &Value, path: &str, k: &str, errs: &mut Vec<FieldError>) -> Vec<String> {
    match val {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .filter_map(|(i, x)| match x {
                Value::String(s) => Some(s.clone()),
                other => {
                    errs.push(error::invalid(
                        &format!("{path}.{k}[{i}]"),
                        other.clone(),
                        "must be a string",
                    ));
                    None
                }
            })
            .collect(),
        Value::Null => Vec::new(),
        other => {
            errs.push(error::invalid(
                &child(path, k),
                other.clone(),
                "must be an array of strings",
            ));
            Vec::new()
        }
    }
}

fn get_schemas(val: &Value, path: &str, k: &str, errs: &mut Vec<FieldError>) -> Vec<Schema> {
    match val {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| parse(x, &format!("{path}.{k}[{i}]"), errs))
            .collect(),
        Value::Null => Vec::new(),
        other => {
            errs.push(error::invalid(
                &child(path, k),
                other.clone(),
                "must be an array of schemas",
            ));
            Vec::new()
        }
    }
}

fn get_schema_map(
    val: &Value,
    path: &str,
    k: &str,
    errs: &mut Vec<FieldError>,
) -> BTreeMap<String, Schema> {
    match val {
        Value::Object(m) => m
            .iter()
            .map(|(name, x)| (name.clone(), parse(x, &format!("{path}.{k}[{name}]"), errs)))
            .collect(),
        Value::Null => BTreeMap::new(),
        other => {
            errs.push(error::invalid(
                &child(path, k),
                other.clone(),
                "must be an object of schemas",
            ));
            BTreeMap::new()
        }
    }
}

fn non_empty(val: &Value) -> bool {
    match val {
        Value::Null => false,
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn parse_key(s: &mut Schema, k: &str, val: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match k {
        "type" => s.ty = get_str(val, path, k, errs),
        "format" => s.format = get_str(val, path, k, errs),
        "title" => s.title = get_str(val, path, k, errs),
        "description" => s.description = get_str(val, path, k, errs),
        "nullable" => s.nullable = get_bool(val, path, k, errs).unwrap_or(false),
        "default" if !val.is_null() => s.default = Some(val.clone()),
        "example" => {}
        "enum" => match val {
            Value::Array(a) => s.enum_ = Some(a.clone()),
            Value::Null => {}
            other => errs.push(error::invalid(
                &child(path, k),
                other.clone(),
                "must be an array",
            )),
        },
        "maximum" => s.maximum = get_f64(val, path, k, errs),
        "minimum" => s.minimum = get_f64(val, path, k, errs),
        "exclusiveMaximum" => s.exclusive_maximum = get_bool(val, path, k, errs).unwrap_or(false),
        "exclusiveMinimum" => s.exclusive_minimum = get_bool(val, path, k, errs).unwrap_or(false),
        "maxLength" => s.max_length = get_i64(val, path, k, errs),
        "minLength" => s.min_length = get_i64(val, path, k, errs),
        "maxItems" => s.max_items = get_i64(val, path, k, errs),
        "minItems" => s.min_items = get_i64(val, path, k, errs),
        "maxProperties" => s.max_properties = get_i64(val, path, k, errs),
        "minProperties" => s.min_properties = get_i64(val, path, k, errs),
        "multipleOf" => s.multiple_of = get_f64(val, path, k, errs),
        "uniqueItems" => s.unique_items = get_bool(val, path, k, errs).unwrap_or(false),
        "pattern" => {
            let p = get_str(val, path, k, errs);
            if !p.is_empty() {
                let regex = crate::formats::compile_go_regex(&p);
                s.pattern = Some(Pattern { source: p, regex });
            }
        }
        "required" => s.required = get_strings(val, path, k, errs),
        "items" => match val {
            Value::Array(a) => {
                s.items_array = true;
                if let Some(first) = a.first() {
                    s.items = Some(Box::new(parse(first, &format!("{path}.items[0]"), errs)));
                }
            }
            Value::Null => {}
            other => s.items = Some(Box::new(parse(other, &child(path, k), errs))),
        },
        "properties" => s.properties = get_schema_map(val, path, k, errs),
        "additionalProperties" => match val {
            Value::Bool(b) => {
                s.additional = Some(Additional {
                    allows: *b,
                    schema: None,
                })
            }
            Value::Null => {}
            other => {
                let sub = parse(other, &child(path, k), errs);
                s.additional = Some(Additional {
                    allows: true,
                    schema: Some(Box::new(sub)),
                });
            }
        },
        "allOf" => s.all_of = get_schemas(val, path, k, errs),
        "anyOf" => s.any_of = get_schemas(val, path, k, errs),
        "oneOf" => s.one_of = get_schemas(val, path, k, errs),
        "not" if !val.is_null() => s.not = Some(Box::new(parse(val, &child(path, k), errs))),
        "x-kubernetes-preserve-unknown-fields" => s.preserve_unknown = get_bool(val, path, k, errs),
        "x-kubernetes-embedded-resource" => {
            s.embedded = get_bool(val, path, k, errs).unwrap_or(false)
        }
        "x-kubernetes-int-or-string" => {
            s.int_or_string = get_bool(val, path, k, errs).unwrap_or(false)
        }
        "x-kubernetes-list-type" if !val.is_null() => {
            s.list_type = Some(get_str(val, path, k, errs))
        }
        "x-kubernetes-list-map-keys" => s.list_map_keys = get_strings(val, path, k, errs),
        "x-kubernetes-map-type" if !val.is_null() => s.map_type = Some(get_str(val, path, k, errs)),
        "x-kubernetes-validations" => match val {
            Value::Array(a) => s.validations = a.clone(),
            Value::Null => {}
            other => errs.push(error::invalid(
                &child(path, k),
                other.clone(),
                "must be an array",
            )),
        },
        "externalDocs" => s.external_docs = !val.is_null(),
        "id" if non_empty(val) => s.unsupported.push("id"),
        "$ref" if !val.is_null() => s.unsupported.push("$ref"),
        "definitions" if non_empty(val) => s.unsupported.push("definitions"),
        "additionalItems" if !val.is_null() => s.unsupported.push("additionalItems"),
        "patternProperties" if non_empty(val) => s.unsupported.push("patternProperties"),
        "dependencies" if !val.is_null() => s.unsupported.push("dependencies"),
        _ => {}
    }
}
