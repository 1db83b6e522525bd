//! Path elements (one step into an object) and paths, ordered and printed as upstream's
//! `fieldpath` package so sets serialize and conflicts print byte-for-byte the same.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// One step into an object. Upstream's four kinds: a map/struct field, an associative
/// list item by its key fields, a set item by its value, an atomic-ish list item by index.
#[derive(Debug, Clone)]
pub enum PathElement {
    /// `f:<name>`: a field of a struct or a key of a map.
    Field(String),
    /// `k:{...}`: an item of an associative list, by its key fields sorted by name.
    Key(Vec<(String, Value)>),
    /// `v:<json>`: an item of a set (a list of scalars), by value.
    Value(Value),
    /// `i:<n>`: an item of a list by position (only lists with no better identity).
    Index(usize),
}

impl PathElement {
    /// A field element, the most common kind.
    pub fn field(name: impl Into<String>) -> Self {
        PathElement::Field(name.into())
    }

    /// A key element from unsorted key fields (they are sorted here, as upstream does).
    pub fn key(mut fields: Vec<(String, Value)>) -> Self {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }
}

impl Ord for PathElement {
    /// Fields, then keys, then values, then indexes; within a kind as upstream's `Compare`.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => compare_key_fields(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

fn compare_key_fields(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let c = x.0.cmp(&y.0).then_with(|| compare_values(&x.1, &y.1));
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

/// A total order over JSON values as upstream's `value.Compare`: floats, ints (numbers
/// compared numerically across the two), strings, bools, lists, maps, null.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(n) if n.is_f64() => 0,
            Value::Number(_) => 1,
            Value::String(_) => 2,
            Value::Bool(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
            Value::Null => 6,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(i), Some(j)) = (x.as_i64(), y.as_i64()) {
                i.cmp(&j)
            } else if let (Some(i), Some(j)) = (x.as_u64(), y.as_u64()) {
                i.cmp(&j)
            } else {
                let (i, j) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                i.partial_cmp(&j).unwrap_or(Ordering::Equal)
            }
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let c = compare_values(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for (p, q) in xs.iter().zip(&ys) {
                let c = p.0.cmp(q.0).then_with(|| compare_values(p.1, q.1));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Equality of JSON values with numbers compared numerically (`1` equals `1.0`), as upstream.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => compare_values(a, b) == Ordering::Equal,
    }
}

/// A value as upstream's `value.ToString` prints it inside a path: strings quoted.
fn value_string(v: &Value) -> String {
    v.to_string()
}

impl fmt::Display for PathElement {
    /// `.name`, `[k1=v1,k2=v2]`, `[=value]`, `[3]`: upstream's `PathElement.String`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(n) => write!(f, ".{n}"),
            PathElement::Key(fields) => {
                f.write_str("[")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k}={}", value_string(v))?;
                }
                f.write_str("]")
            }
            PathElement::Value(v) => write!(f, "[={}]", value_string(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the object root, printed as upstream (`.spec.containers[name="a"].image`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Path(pub Vec<PathElement>);

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in &self.0 {
            write!(f, "{pe}")?;
        }
        Ok(())
    }
}

impl Path {
    /// A path of field names, the common case in tests and strip lists.
    pub fn fields(names: &[&str]) -> Self {
        Path(names.iter().map(|n| PathElement::field(*n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn elements_order_fields_keys_values_indexes() {
        let mut v = [
            PathElement::Index(0),
            PathElement::Value(json!("a")),
            PathElement::key(vec![("name".into(), json!("x"))]),
            PathElement::field("b"),
            PathElement::field("a"),
        ];
        v.sort();
        let printed: Vec<String> = v.iter().map(|p| p.to_string()).collect();
        assert_eq!(printed, [".a", ".b", "[name=\"x\"]", "[=\"a\"]", "[0]"]);
    }

    #[test]
    fn numbers_compare_across_int_and_float() {
        assert!(values_equal(&json!(1), &json!(1.0)));
        assert_eq!(compare_values(&json!(2), &json!(10)), Ordering::Less);
        assert_eq!(compare_values(&json!(1.5), &json!("a")), Ordering::Less);
    }

    #[test]
    fn paths_print_as_upstream() {
        let p = Path(vec![
            PathElement::field("spec"),
            PathElement::field("ports"),
            PathElement::key(vec![
                ("protocol".into(), json!("TCP")),
                ("port".into(), json!(80)),
            ]),
            PathElement::field("targetPort"),
        ]);
        assert_eq!(
            p.to_string(),
            ".spec.ports[port=80,protocol=\"TCP\"].targetPort"
        );
    }
}
