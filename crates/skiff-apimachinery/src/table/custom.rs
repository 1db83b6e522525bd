//! Tables for custom resources from their CRD's `additionalPrinterColumns`, as upstream's
//! CRD table convertor: simple JSONPath per column, first match only, typed cells.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{human_duration, parse_time, str_at, AGE_DESC, NAME_DESC};

/// The column upstream adds when a CRD version declares no printer columns.
fn default_columns() -> Vec<Value> {
    vec![
        json!({"name": "Age", "type": "date", "description": AGE_DESC,
        "jsonPath": ".metadata.creationTimestamp"}),
    ]
}

fn effective(printer_columns: &[Value]) -> Vec<Value> {
    if printer_columns.is_empty() {
        default_columns()
    } else {
        printer_columns.to_vec()
    }
}

/// Column definitions for a custom resource: Name, then one per printer column (the CRD
/// version's `additionalPrinterColumns`; empty means the default Age column).
pub fn custom_resource_column_definitions(printer_columns: &[Value]) -> Vec<Value> {
    let mut cols = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": NAME_DESC, "priority": 0})];
    for c in effective(printer_columns) {
        let path = str_at(&c, "/jsonPath");
        let description = match str_at(&c, "/description") {
            "" => format!("Custom resource definition column (in JSONPath format): {path}"),
            d => d.to_string(),
        };
        cols.push(json!({
            "name": str_at(&c, "/name"),
            "type": str_at(&c, "/type"),
            "format": str_at(&c, "/format"),
            "description": description,
            "priority": c.get("priority").and_then(Value::as_i64).unwrap_or(0),
        }));
    }
    cols
}

/// Row cells for a custom resource, in the order of
/// [`custom_resource_column_definitions`]; a column whose path finds nothing is `null`.
pub fn custom_resource_row_cells(
    printer_columns: &[Value],
    obj: &Value,
    now: DateTime<Utc>,
) -> Vec<Value> {
    let mut cells = vec![json!(str_at(obj, "/metadata/name"))];
    for c in effective(printer_columns) {
        let ty = str_at(&c, "/type");
        let cell = match find_first(obj, str_at(&c, "/jsonPath")) {
            None | Some(Value::Null) => Value::Null,
            Some(v) => typed_cell(ty, v, now),
        };
        cells.push(cell);
    }
    cells
}

/// Upstream's `cellForJSONValue`, with `string` columns printed as JSONPath prints values.
fn typed_cell(ty: &str, v: &Value, now: DateTime<Utc>) -> Value {
    match (ty, v) {
        ("string", Value::String(s)) => json!(s),
        ("string", other) => json!(other.to_string()),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(_)) => match parse_time(Some(v)) {
            Some(t) => json!(human_duration(now - t)),
            None => json!("<invalid>"),
        },
        _ => Value::Null,
    }
}

/// One step of the supported JSONPath subset.
#[derive(Debug, PartialEq)]
enum Step {
    /// `.name` (dots inside names escaped as `\.`).
    Field(String),
    /// `[3]`.
    Index(usize),
    /// `[*]` or `.*`.
    All,
    /// `[?(@.key=="value")]`.
    Filter(Vec<String>, String),
}

/// Parses `.a.b[0].c`, `.a[*].b`, `.a[?(@.type=="Ready")].status` (optionally in `{}`).
fn parse_path(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if name == "*" {
                    steps.push(Step::All);
                } else if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let end = chars[i..].iter().position(|c| *c == ']')? + i;
                let inner: String = chars[i + 1..end].iter().collect();
                steps.push(parse_bracket(&inner)?);
                i = end + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

fn parse_bracket(inner: &str) -> Option<Step> {
    let inner = inner.trim();
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(n) = inner.parse::<usize>() {
        return Some(Step::Index(n));
    }
    if let Some(q) = inner.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
        return Some(Step::Field(q.to_string()));
    }
    let expr = inner.strip_prefix("?(")?.strip_suffix(')')?;
    let (lhs, rhs) = expr.split_once("==")?;
    let key: Vec<String> = lhs
        .trim()
        .strip_prefix("@.")?
        .split('.')
        .map(String::from)
        .collect();
    let value = rhs
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string();
    Some(Step::Filter(key, value))
}

/// The first value the path finds, as upstream takes `results[0][0]`.
fn find_first<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let steps = parse_path(path)?;
    let mut current: Vec<&Value> = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(name) => next.extend(v.get(name.as_str())),
                Step::Index(n) => next.extend(v.get(*n)),
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(key, want) => {
                    if let Value::Array(a) = v {
                        next.extend(a.iter().filter(|item| {
                            let mut field = Some(*item);
                            for k in key {
                                field = field.and_then(|f| f.get(k.as_str()));
                            }
                            match field {
                                Some(Value::String(s)) => s == want,
                                Some(Value::Bool(b)) => want.parse::<bool>().ok() == Some(*b),
                                Some(Value::Number(n)) => want.parse::<f64>().ok() == n.as_f64(),
                                _ => false,
                            }
                        }));
                    }
                }
            }
        }
        current = next;
    }
    current.into_iter().next()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn gateway_columns_print_like_kubectl_get_gateway() {
        let columns = vec![
            json!({"name": "Class", "type": "string", "jsonPath": ".spec.gatewayClassName"}),
            json!({"name": "Address", "type": "string", "jsonPath": ".status.addresses[*].value"}),
            json!({"name": "Programmed", "type": "string",
                "jsonPath": ".status.conditions[?(@.type==\"Programmed\")].status"}),
            json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
        ];
        let gateway = json!({"metadata": {"name": "main-gateway",
            "creationTimestamp": "2026-01-10T11:55:00Z"},
            "spec": {"gatewayClassName": "nginx"},
            "status": {"conditions": [{"type": "Accepted", "status": "True"},
                {"type": "Programmed", "status": "False"}]}});
        let names: Vec<Value> = custom_resource_column_definitions(&columns)
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(
            names,
            [
                json!("Name"),
                json!("Class"),
                json!("Address"),
                json!("Programmed"),
                json!("Age")
            ]
        );
        assert_eq!(
            custom_resource_row_cells(&columns, &gateway, now()),
            [
                json!("main-gateway"),
                json!("nginx"),
                Value::Null,
                json!("False"),
                json!("5m")
            ]
        );
    }

    #[test]
    fn list_values_print_as_json_and_defaults_give_age() {
        let columns =
            vec![json!({"name": "Hostnames", "type": "string", "jsonPath": ".spec.hostnames"})];
        let route = json!({"metadata": {"name": "collector-route",
            "creationTimestamp": "2026-01-10T11:00:00Z"},
            "spec": {"hostnames": ["collector.example.com"]}});
        assert_eq!(
            custom_resource_row_cells(&columns, &route, now())[1],
            json!("[\"collector.example.com\"]")
        );
        assert_eq!(
            custom_resource_row_cells(&[], &route, now()),
            [json!("collector-route"), json!("60m")]
        );
        assert_eq!(custom_resource_column_definitions(&[])[1]["type"], "date");
    }

    #[test]
    fn json_paths_in_the_supported_subset_parse() {
        assert_eq!(
            parse_path(".a.b[0]"),
            Some(vec![
                Step::Field("a".into()),
                Step::Field("b".into()),
                Step::Index(0)
            ])
        );
        assert_eq!(
            parse_path(".metadata.annotations.example\\.com/x"),
            Some(vec![
                Step::Field("metadata".into()),
                Step::Field("annotations".into()),
                Step::Field("example.com/x".into())
            ])
        );
        assert_eq!(
            parse_path("{.spec.replicas}"),
            Some(vec![
                Step::Field("spec".into()),
                Step::Field("replicas".into())
            ])
        );
        assert_eq!(parse_path("spec"), None);
    }
}
