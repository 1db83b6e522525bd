//! JSON to CEL values as the schema types them, and CEL results back to JSON.

use crate::lazy::JsonMap;
use crate::schema;
use crate::EvalError;
use cel::common::types::{
    CelBool, CelDouble, CelDuration, CelInt, CelList, CelNull, CelOptional, CelString, CelTimestamp,
};
use cel::common::value::Val;
use serde_json::Value;

/// Converts `json` to a CEL value borrowing its strings, typed by `schema` (`None`: dynamic).
///
/// Objects become [`JsonMap`]s, which convert their fields when read: those with `properties`
/// expose their fields under escaped names (`__namespace__`) as upstream's object types do;
/// maps (`additionalProperties`) and schemaless objects keep their keys. Lists are converted
/// at once, as their elements are cheap until read. Numbers follow the schema's `type`; strings with `format: date-time`/`date` or
/// `duration` become timestamps and durations when they parse (else stay strings, as
/// validation reports the format error anyway).
pub(crate) fn to_val<'a>(json: &'a Value, schema: Option<&'a Value>) -> Box<dyn Val + 'a> {
    match json {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => number(n, schema),
        Value::String(s) => string(s, schema),
        Value::Array(items) => {
            let item_schema = schema.and_then(schema::items);
            let list: Vec<Box<dyn Val + 'a>> =
                items.iter().map(|i| to_val(i, item_schema)).collect();
            Box::new(CelList::from(list))
        }
        Value::Object(fields) => Box::new(JsonMap::new(fields, schema)),
    }
}

/// `optional.of(json)`, for an `optionalOldSelf` binding.
pub(crate) fn to_optional<'a>(json: &'a Value, schema: Option<&'a Value>) -> Box<dyn Val + 'a> {
    Box::new(CelOptional::of(to_val(json, schema)))
}

/// `optional.none()`.
pub(crate) fn none<'a>() -> Box<dyn Val + 'a> {
    Box::new(CelOptional::none())
}

fn number<'a>(n: &serde_json::Number, schema: Option<&Value>) -> Box<dyn Val + 'a> {
    let declared = schema.and_then(schema::type_of);
    if declared == Some("number") {
        return Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)));
    }
    if let Some(i) = n.as_i64() {
        return Box::new(CelInt::from(i));
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if declared == Some("integer") && f.fract() == 0.0 && f.abs() < 9.2e18 {
        return Box::new(CelInt::from(f as i64));
    }
    Box::new(CelDouble::from(f))
}

fn string<'a>(s: &'a str, schema: Option<&Value>) -> Box<dyn Val + 'a> {
    if let Some(schema) = schema {
        if schema::type_of(schema) == Some("string") {
            match schema::format_of(schema) {
                Some("date-time") | Some("datetime") => {
                    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                        return Box::new(CelTimestamp::from(t));
                    }
                }
                Some("date") => {
                    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                        let t = d.and_time(chrono::NaiveTime::MIN).and_utc().fixed_offset();
                        return Box::new(CelTimestamp::from(t));
                    }
                }
                Some("duration") => {
                    if let Some(d) = parse_duration(s) {
                        return Box::new(CelDuration::from(d));
                    }
                }
                _ => {}
            }
        }
    }
    Box::new(CelString::from(s))
}

/// Parses a Go duration string (`1h30m`, `-1.5s`, `300ms`, `0`), as `format: duration` holds.
pub(crate) fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        if number.is_empty() || number == "." {
            return None;
        }
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut value = int.checked_mul(scale)?;
        let mut unit_scale = scale;
        for d in frac.bytes() {
            unit_scale /= 10;
            value = value.checked_add(i128::from(d - b'0') * unit_scale)?;
        }
        total_nanos = total_nanos.checked_add(value)?;
    }
    let nanos = i64::try_from(if negative { -total_nanos } else { total_nanos }).ok()?;
    Some(chrono::Duration::nanoseconds(nanos))
}

/// Converts an evaluation result to JSON, going through `Val`'s traits for maps and lists so
/// that [`JsonMap`]s (which `cel::Value` has no conversion for) convert like built-in maps.
pub(crate) fn val_to_json(value: &dyn Val) -> Result<Value, EvalError> {
    use cel::common::types::Kind;
    let unsupported = || EvalError::UnsupportedResult {
        message: format!("{} has no JSON representation", value.get_type().name()),
    };
    match value.get_type().kind() {
        Kind::List => {
            let mut items = value.as_iterable().ok_or_else(unsupported)?.iter();
            let mut out = Vec::new();
            while let Some(item) = items.next() {
                out.push(val_to_json(item)?);
            }
            Ok(Value::Array(out))
        }
        Kind::Map => {
            let indexer = value.as_indexer().ok_or_else(unsupported)?;
            let mut keys = value.as_iterable().ok_or_else(unsupported)?.iter();
            let mut out = serde_json::Map::new();
            while let Some(key) = keys.next() {
                let name = match key.downcast_ref::<CelString>() {
                    Some(s) => s.inner().to_owned(),
                    None => match val_to_json(key)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                };
                let item = indexer.get(key).map_err(EvalError::from_execution)?;
                out.insert(name, val_to_json(item.as_ref())?);
            }
            Ok(Value::Object(out))
        }
        _ => to_json(&cel::Value::try_from(value).map_err(EvalError::from_execution)?),
    }
}

/// Converts an evaluation result to JSON: what a rule (bool) or a `messageExpression`
/// (string) returns, and any plain data an admission expression computes.
fn to_json(value: &cel::Value) -> Result<Value, EvalError> {
    use cel::Value as V;
    Ok(match value {
        V::Null => Value::Null,
        V::Bool(b) => Value::Bool(*b),
        V::Int(i) => Value::from(*i),
        V::UInt(u) => Value::from(*u),
        V::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| EvalError::UnsupportedResult {
                message: format!("double {f} has no JSON representation"),
            })?,
        V::String(s) => Value::String(s.to_string()),
        V::List(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        V::Map(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.map.iter() {
                let key = match k {
                    cel::objects::Key::String(s) => s.to_string(),
                    cel::objects::Key::Int(i) => i.to_string(),
                    cel::objects::Key::Uint(u) => u.to_string(),
                    cel::objects::Key::Bool(b) => b.to_string(),
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        V::Timestamp(t) => Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        V::Duration(d) => Value::String(format!("{}s", d.num_milliseconds() as f64 / 1000.0)),
        other => {
            return Err(EvalError::UnsupportedResult {
                message: format!("{:?} has no JSON representation", other.type_of()),
            })
        }
    })
}
