//! Reading the parts of an OpenAPI (structural) schema that CEL typing and costing need.

use serde_json::Value;
use std::borrow::Cow;

/// The schema's `type`, if it names one.
pub(crate) fn type_of(schema: &Value) -> Option<&str> {
    schema.get("type").and_then(Value::as_str)
}

/// The schema's `format`, if any.
pub(crate) fn format_of(schema: &Value) -> Option<&str> {
    schema.get("format").and_then(Value::as_str)
}

/// Whether the schema has `x-kubernetes-int-or-string: true`.
pub(crate) fn int_or_string(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-int-or-string")
}

/// Whether the boolean extension `name` is set.
pub(crate) fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// The `properties` of an object schema.
pub(crate) fn properties(schema: &Value) -> Option<&serde_json::Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// The schema of the property whose escaped CEL name is `cel_name` (`__namespace__` is the
/// property `namespace`).
pub(crate) fn property_by_cel_name<'s>(schema: &'s Value, cel_name: &str) -> Option<&'s Value> {
    let props = properties(schema)?;
    if let Some(s) = props.get(cel_name) {
        if escape(cel_name).as_deref() == Some(cel_name) {
            return Some(s);
        }
    }
    props
        .iter()
        .find(|(k, _)| escape(k).as_deref() == Some(cel_name))
        .map(|(_, v)| v)
}

/// The `items` schema of an array schema.
pub(crate) fn items(schema: &Value) -> Option<&Value> {
    schema.get("items").filter(|i| i.is_object())
}

/// The `additionalProperties` schema of a map schema (`true` is the empty schema).
pub(crate) fn additional_properties(schema: &Value) -> Option<&Value> {
    static EMPTY: Value = Value::Null;
    match schema.get("additionalProperties") {
        Some(v @ Value::Object(_)) => Some(v),
        Some(Value::Bool(true)) => Some(&EMPTY),
        _ => None,
    }
}

/// A numeric bound such as `maxLength`.
pub(crate) fn max(schema: &Value, name: &str) -> Option<u64> {
    schema.get(name).and_then(Value::as_u64)
}

/// A property name as CEL code reaches it (upstream `cel.Escape`): reserved words become
/// `__word__`, and `__`, `.`, `-`, `/` become `__underscores__`, `__dot__`, `__dash__`,
/// `__slash__`. `None` for names that can't be escaped (empty, leading digit, other
/// characters), which CEL code cannot reach as fields.
pub fn escape(name: &str) -> Option<Cow<'_, str>> {
    let first = name.chars().next()?;
    if first.is_ascii_digit() {
        return None;
    }
    // Reserved words are escaped as `__word__`.
    if skiff_apimachinery::cel::RESERVED.contains(&name) {
        return Some(Cow::Owned(format!("__{name}__")));
    }
    let plain =
        name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !name.contains("__");
    if plain {
        return Some(Cow::Borrowed(name));
    }
    let mut out = String::with_capacity(name.len() + 16);
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("__") {
            out.push_str("__underscores__");
            rest = &rest[2..];
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(Cow::Owned(out))
}
