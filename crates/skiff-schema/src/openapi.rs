//! kube-openapi's `SchemaValidator` (pkg/validation/validate) on wire JSON: the same validators
//! in the same order, the same match counting that picks which `anyOf`/`oneOf` failure to
//! report, the same messages, and upstream's translation of its errors into field errors
//! (`kubeOpenAPIResultToFieldErrors`).
//!
//! Numbers are seen as Go's unstructured JSON holds them: integers as `int64`, everything else
//! (fractions, exponents, integers beyond `int64`) as `float64`, with Go's conversions between
//! them where upstream converts (enum matching, `maximum` on integers).

use serde_json::{Map, Value};

use crate::error::{self, go_float, go_json, quote, FieldError};
use crate::schema::Schema;

const IN: &str = "body";

/// kube-openapi error codes that upstream maps to specific field errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Required,
    TooLong,
    Enum,
    MaxItems,
    TooManyProperties,
    InvalidType,
    /// Everything else becomes `field.Invalid`.
    Other,
}

/// One kube-openapi error: a `*errors.Validation` (with a name) or a plain error.
#[derive(Debug, Clone)]
enum OErr {
    Validation {
        code: Code,
        name: String,
        value: Option<Value>,
        valid: Option<i64>,
        values: Vec<Value>,
        message: String,
    },
    Plain(String),
}

impl OErr {
    fn message(&self) -> &str {
        match self {
            OErr::Validation { message, .. } => message,
            OErr::Plain(m) => m,
        }
    }
}

/// kube-openapi's `Result`: errors (deduplicated by message) and the match count.
#[derive(Debug, Default)]
struct Res {
    errs: Vec<OErr>,
    matches: u64,
}

impl Res {
    fn add(&mut self, e: OErr) {
        if !self.errs.iter().any(|x| x.message() == e.message()) {
            self.errs.push(e);
        }
    }

    fn merge(&mut self, other: Res) {
        for e in other.errs {
            self.add(e);
        }
        self.matches = self.matches.saturating_add(other.matches);
    }

    fn inc(&mut self) {
        self.matches = self.matches.saturating_add(1);
    }

    fn valid(&self) -> bool {
        self.errs.is_empty()
    }

    fn err(e: OErr) -> Res {
        Res {
            errs: vec![e],
            matches: 0,
        }
    }
}

/// A JSON value's Go kind after unstructured decoding.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Str,
    Int(i64),
    Float(f64),
    Slice,
    Map,
}

fn kind(v: &Value) -> Option<Kind> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(_) => Kind::Bool,
        Value::String(_) => Kind::Str,
        Value::Number(n) => match n.as_i64() {
            Some(i) => Kind::Int(i),
            None => Kind::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::Array(_) => Kind::Slice,
        Value::Object(_) => Kind::Map,
    })
}

/// Validates `data` against `s` and returns upstream's field errors; `root` is the field path
/// prefix (`None` prints upstream's `<nil>` for root-level errors).
pub(crate) fn validate(s: &Schema, data: &Value, root: Option<&str>) -> Vec<FieldError> {
    let mut path = String::new();
    let res = validate_node(s, data, &mut path);
    res.errs
        .into_iter()
        .map(|e| to_field_error(e, root))
        .collect()
}

fn types(s: &Schema) -> &'static [&'static str] {
    if s.int_or_string {
        return &["integer", "string"];
    }
    match s.ty.as_str() {
        "" => &[],
        "object" => &["object"],
        "array" => &["array"],
        "string" => &["string"],
        "integer" => &["integer"],
        "number" => &["number"],
        "boolean" => &["boolean"],
        "null" => &["null"],
        _ => &["?"],
    }
}

fn type_name(s: &Schema) -> String {
    if s.int_or_string {
        "integer,string".into()
    } else {
        s.ty.clone()
    }
}

/// The validated format's name ("" when stripped).
fn vformat(s: &Schema) -> &str {
    if s.vformat.is_some() {
        &s.format
    } else {
        ""
    }
}

fn validate_node(s: &Schema, data: &Value, path: &mut String) -> Res {
    let mut res = Res::default();
    let Some(k) = kind(data) else {
        res.merge(type_validate(s, data, None, path));
        res.merge(common_validate(s, data, path));
        return res;
    };
    if !types(s).is_empty() || !vformat(s).is_empty() {
        res.merge(type_validate(s, data, Some(k), path));
        res.inc();
    }
    res.merge(props_validate(s, data, path));
    res.inc();
    if let Kind::Str = k {
        res.merge(string_validate(s, data, path));
        res.inc();
        if let Some(f) = s.vformat {
            if let Value::String(text) = data {
                if !f.validates(text) {
                    res.add(invalid_type(path, &s.format, Value::String(text.clone())));
                }
            }
            res.inc();
        }
    }
    if let Kind::Int(_) | Kind::Float(_) = k {
        res.merge(number_validate(s, k, data, path));
        res.inc();
    }
    if let Value::Array(items) = data {
        res.merge(slice_validate(s, items, path));
        res.inc();
    }
    res.merge(common_validate(s, data, path));
    res.inc();
    if let Value::Object(m) = data {
        res.merge(object_validate(s, m, path));
        res.inc();
    }
    res.inc();
    res
}

fn invalid_type(path: &str, type_name: &str, value: Value) -> OErr {
    let message = match &value {
        Value::String(v) => format!("{path} in {IN} must be of type {type_name}: {}", quote(v)),
        _ => format!("{path} in {IN} must be of type {type_name}"),
    };
    OErr::Validation {
        code: Code::InvalidType,
        name: path.to_string(),
        value: Some(value),
        valid: None,
        values: Vec::new(),
        message,
    }
}

fn validation(code: Code, path: &str, value: Option<Value>, message: String) -> OErr {
    OErr::Validation {
        code,
        name: path.to_string(),
        value,
        valid: None,
        values: Vec::new(),
        message,
    }
}

/// go-openapi's `IsFloat64AJSONInteger`.
fn is_json_integer(f: f64) -> bool {
    const MAX: f64 = 9007199254740991.0;
    if f.is_nan() || f.is_infinite() || !(-MAX..=MAX).contains(&f) {
        return false;
    }
    let g = f.trunc();
    if f == g {
        return true;
    }
    let diff = (f - g).abs();
    let epsilon = 1e-9;
    if f == 0.0 || g == 0.0 || diff < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / (f.abs() + g.abs()).min(f64::MAX) < epsilon
}

fn type_validate(s: &Schema, data: &Value, k: Option<Kind>, path: &str) -> Res {
    let mut res = Res::default();
    res.inc();
    let ts = types(s);
    let Some(k) = k else {
        if !ts.is_empty() && !ts.contains(&"null") && !s.nullable {
            return Res::err(invalid_type(
                path,
                &type_name(s),
                Value::String("null".into()),
            ));
        }
        return res;
    };
    let (sch_type, format) = match k {
        Kind::Bool => ("boolean", ""),
        Kind::Str => ("string", ""),
        Kind::Int(_) => ("integer", "int64"),
        Kind::Float(_) => ("number", "float64"),
        Kind::Slice => ("array", ""),
        Kind::Map => ("object", ""),
    };
    let _ = data;
    let fmt = vformat(s);
    let contains = |t: &str| ts.contains(&t);
    let is_float_int = matches!(k, Kind::Float(f) if is_json_integer(f)) && contains("integer");
    let is_int_float = sch_type == "integer" && contains("number");
    let stringish = matches!(k, Kind::Str | Kind::Slice);
    if !(stringish
        || fmt.is_empty()
        || contains(sch_type)
        || format == fmt
        || is_float_int
        || is_int_float)
    {
        return Res::err(invalid_type(path, fmt, Value::String(format.into())));
    }
    if stringish && !(contains("number") || contains("integer") || fmt.is_empty()) {
        return res;
    }
    if !(contains(sch_type) || is_float_int || is_int_float) {
        return Res::err(invalid_type(
            path,
            &type_name(s),
            Value::String(sch_type.into()),
        ));
    }
    res
}

fn props_validate(s: &Schema, data: &Value, path: &mut String) -> Res {
    let mut main = Res::default();
    if !s.any_of.is_empty() {
        let mut best: Option<Res> = None;
        let mut first_success: Option<Res> = None;
        for sub in &s.any_of {
            let r = validate_node(sub, data, path);
            if r.valid() {
                best = None;
                first_success = Some(r);
                break;
            }
            if best.as_ref().is_none_or(|b| r.matches > b.matches) {
                best = Some(r);
            }
        }
        if first_success.is_none() {
            main.add(OErr::Plain(format!(
                "{} must validate at least one schema (anyOf)",
                quote(path)
            )));
        }
        if let Some(b) = best {
            main.merge(b);
        } else if let Some(f) = first_success {
            main.merge(f);
        }
    }
    if !s.one_of.is_empty() {
        let mut best: Option<Res> = None;
        let mut first_success: Option<Res> = None;
        let mut validated = 0usize;
        for sub in &s.one_of {
            let r = validate_node(sub, data, path);
            if r.valid() {
                validated += 1;
                best = None;
                if first_success.is_none() {
                    first_success = Some(r);
                }
                continue;
            }
            if validated == 0 && best.as_ref().is_none_or(|b| r.matches > b.matches) {
                best = Some(r);
            }
        }
        if validated != 1 {
            let additional = if validated == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {validated} valid alternatives")
            };
            main.add(OErr::Plain(format!(
                "{} must validate one and only one schema (oneOf). {additional}",
                quote(path)
            )));
            if let Some(b) = best {
                main.merge(b);
            }
        } else if let Some(f) = first_success {
            main.merge(f);
        }
    }
    if !s.all_of.is_empty() {
        let mut validated = 0usize;
        for sub in &s.all_of {
            let r = validate_node(sub, data, path);
            if r.valid() {
                validated += 1;
            }
            main.merge(r);
        }
        if validated != s.all_of.len() {
            let additional = if validated == 0 {
                ". None validated"
            } else {
                ""
            };
            main.add(OErr::Plain(format!(
                "{} must validate all the schemas (allOf){additional}",
                quote(path)
            )));
        }
    }
    if let Some(not) = &s.not {
        if validate_node(not, data, path).valid() {
            main.add(OErr::Plain(format!(
                "{} must not validate the schema (not)",
                quote(path)
            )));
        }
    }
    main.inc();
    main
}

fn string_validate(s: &Schema, data: &Value, path: &str) -> Res {
    let Value::String(text) = data else {
        return Res::default();
    };
    let needs_len = s.max_length.is_some() || s.min_length.is_some();
    let len = if needs_len {
        text.chars().count() as i64
    } else {
        0
    };
    if let Some(max) = s.max_length {
        if len > max {
            return Res::err(OErr::Validation {
                code: Code::TooLong,
                name: path.to_string(),
                value: Some(data.clone()),
                valid: Some(max),
                values: Vec::new(),
                message: format!("{path} in {IN} should be at most {max} chars long"),
            });
        }
    }
    if let Some(min) = s.min_length {
        if len < min {
            return Res::err(validation(
                Code::Other,
                path,
                Some(data.clone()),
                format!("{path} in {IN} should be at least {min} chars long"),
            ));
        }
    }
    if let Some(p) = &s.pattern {
        match &p.regex {
            Ok(re) if re.is_match(text) => {}
            Ok(_) => {
                return Res::err(validation(
                    Code::Other,
                    path,
                    Some(data.clone()),
                    format!("{path} in {IN} should match '{}'", p.source),
                ))
            }
            Err(e) => {
                return Res::err(validation(
                    Code::Other,
                    path,
                    Some(data.clone()),
                    format!(
                        "{path} in {IN} should match '{}, but pattern is invalid: {e}'",
                        p.source
                    ),
                ))
            }
        }
    }
    Res::default()
}

/// go-openapi's `IsValueValidAgainstRange` for the formats CRDs keep (none numeric): only an
/// `integer` schema rejects a value that does not print as an `int64`.
fn range_check(v: Kind, type_name: &str, prefix: &str, path: &str) -> Option<OErr> {
    if type_name != "integer" {
        return None;
    }
    let ok = match v {
        Kind::Int(_) => true,
        Kind::Float(f) => format!("{f}").parse::<i64>().is_ok(),
        _ => false,
    };
    (!ok).then(|| {
        OErr::Plain(format!(
            "{prefix} value must be of type {type_name} (default format) in {path}"
        ))
    })
}

fn as_f64(k: Kind) -> f64 {
    match k {
        Kind::Int(i) => i as f64,
        Kind::Float(f) => f,
        _ => 0.0,
    }
}

fn num_value(k: Kind) -> Value {
    match k {
        Kind::Int(i) => Value::from(i),
        Kind::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn float_value(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn number_validate(s: &Schema, k: Kind, _data: &Value, path: &str) -> Res {
    let mut res = Res::default();
    let ty = if !s.int_or_string && (s.ty == "integer" || s.ty == "number") {
        s.ty.as_str()
    } else {
        ""
    };
    if let Some(e) = range_check(k, ty, "Checked", path) {
        res.add(e);
    }
    let mut r_mult = Res::default();
    let mut r_min = Res::default();
    let mut r_max = Res::default();
    if let Some(factor) = s.multiple_of {
        let boundary = range_check(Kind::Float(factor), ty, "MultipleOf", path);
        let native = boundary.is_none();
        if let Some(e) = boundary {
            r_mult.add(e);
        }
        if let Some(e) = multiple_of(k, factor, native, path) {
            r_mult.add(e);
        }
    }
    if let Some(max) = s.maximum {
        let boundary = range_check(Kind::Float(max), ty, "Maximum boundary", path);
        let native = boundary.is_none();
        if let Some(e) = boundary {
            r_max.add(e);
        }
        if let Some(e) = bound(k, max, s.exclusive_maximum, native, true, path) {
            r_max.add(e);
        }
    }
    if let Some(min) = s.minimum {
        let boundary = range_check(Kind::Float(min), ty, "Minimum boundary", path);
        let native = boundary.is_none();
        if let Some(e) = boundary {
            r_min.add(e);
        }
        if let Some(e) = bound(k, min, s.exclusive_minimum, native, false, path) {
            r_min.add(e);
        }
    }
    res.merge(r_mult);
    res.merge(r_min);
    res.merge(r_max);
    res.inc();
    res
}

fn multiple_of(k: Kind, factor: f64, native: bool, path: &str) -> Option<OErr> {
    if let (true, Kind::Int(v)) = (native, k) {
        let f = factor as i64;
        if f <= 0 {
            return Some(validation(
                Code::Other,
                path,
                Some(Value::from(f)),
                format!("factor MultipleOf declared for {path} must be positive: {f}"),
            ));
        }
        let q = v.checked_div(f).unwrap_or(0);
        if q.checked_mul(f) != Some(v) {
            return Some(validation(
                Code::Other,
                path,
                Some(Value::from(v)),
                format!("{path} in {IN} should be a multiple of {f}"),
            ));
        }
        return None;
    }
    let data = as_f64(k);
    if factor <= 0.0 {
        return Some(validation(
            Code::Other,
            path,
            Some(float_value(factor)),
            format!(
                "factor MultipleOf declared for {path} must be positive: {}",
                go_float(factor)
            ),
        ));
    }
    let mult = if factor < 1.0 {
        1.0 / factor * data
    } else {
        data / factor
    };
    if !is_json_integer(mult) {
        return Some(validation(
            Code::Other,
            path,
            Some(num_value(k)),
            format!(
                "{path} in {IN} should be a multiple of {}",
                go_float(factor)
            ),
        ));
    }
    None
}

/// `maximum` (`is_max`) or `minimum`, compared natively on integers (the bound truncated to
/// `int64` as Go converts it) or as floats.
fn bound(
    k: Kind,
    limit: f64,
    exclusive: bool,
    native: bool,
    is_max: bool,
    path: &str,
) -> Option<OErr> {
    let (inc, exc) = if is_max {
        ("less than or equal to", "less than")
    } else {
        ("greater than or equal to", "greater than")
    };
    let word = if exclusive { exc } else { inc };
    if let (true, Kind::Int(v)) = (native, k) {
        let l = limit as i64;
        let fails = if is_max {
            (!exclusive && v > l) || (exclusive && v >= l)
        } else {
            (!exclusive && v < l) || (exclusive && v <= l)
        };
        return fails.then(|| {
            validation(
                Code::Other,
                path,
                Some(Value::from(v)),
                format!("{path} in {IN} should be {word} {l}"),
            )
        });
    }
    let v = as_f64(k);
    let fails = if is_max {
        (!exclusive && v > limit) || (exclusive && v >= limit)
    } else {
        (!exclusive && v < limit) || (exclusive && v <= limit)
    };
    fails.then(|| {
        validation(
            Code::Other,
            path,
            Some(num_value(k)),
            format!("{path} in {IN} should be {word} {}", go_float(limit)),
        )
    })
}

fn slice_validate(s: &Schema, items: &[Value], path: &mut String) -> Res {
    let mut res = Res::default();
    if let Some(item_schema) = &s.items {
        let base = path.len();
        for (i, v) in items.iter().enumerate() {
            path.push('[');
            path.push_str(&i.to_string());
            path.push(']');
            res.merge(validate_node(item_schema, v, path));
            path.truncate(base);
        }
    }
    let size = items.len() as i64;
    if let Some(min) = s.min_items {
        if size < min {
            res.add(validation(
                Code::Other,
                path,
                Some(Value::from(size)),
                format!("{path} in {IN} should have at least {min} items"),
            ));
        }
    }
    if let Some(max) = s.max_items {
        if size > max {
            res.add(OErr::Validation {
                code: Code::MaxItems,
                name: path.clone(),
                value: Some(Value::from(size)),
                valid: Some(max),
                values: Vec::new(),
                message: format!("{path} in {IN} should have at most {max} items"),
            });
        }
    }
    if s.unique_items {
        let dup = items
            .iter()
            .enumerate()
            .any(|(i, v)| items[..i].contains(v));
        if dup {
            res.add(validation(
                Code::Other,
                path,
                None,
                format!("{path} in {IN} shouldn't contain duplicates"),
            ));
        }
    }
    res.inc();
    res
}

/// Go's conversion of the request value to the enum value's type, then `DeepEqual`.
fn enum_matches(data: &Value, e: &Value) -> bool {
    match (kind(data), e) {
        (_, Value::Null) | (None, _) => false,
        (Some(Kind::Int(i)), Value::Number(n)) => match n.as_i64() {
            Some(j) => i == j,
            None => (i as f64) == n.as_f64().unwrap_or(f64::NAN),
        },
        (Some(Kind::Int(i)), Value::String(s)) => {
            // Go converts an integer to the string of that code point.
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            s.chars().eq(std::iter::once(c))
        }
        (Some(Kind::Float(f)), Value::Number(n)) => match n.as_i64() {
            Some(j) => (f as i64) == j,
            None => n.as_f64() == Some(f),
        },
        _ => data == e,
    }
}

fn common_validate(s: &Schema, data: &Value, path: &str) -> Res {
    let Some(values) = &s.enum_ else {
        return Res::default();
    };
    if values.is_empty() || values.iter().any(|e| enum_matches(data, e)) {
        return Res::default();
    }
    let listed: Vec<String> = values.iter().map(crate::error::go_v).collect();
    Res::err(OErr::Validation {
        code: Code::Enum,
        name: path.to_string(),
        value: Some(data.clone()),
        valid: None,
        values: values.clone(),
        message: format!("{path} in {IN} should be one of [{}]", listed.join(" ")),
    })
}

fn object_validate(s: &Schema, m: &Map<String, Value>, path: &mut String) -> Res {
    let mut res = Res::default();
    let n = m.len() as i64;
    if let Some(min) = s.min_properties {
        if n < min {
            res.add(validation(
                Code::Other,
                path,
                Some(Value::from(n)),
                format!("{path} in {IN} should have at least {min} properties"),
            ));
        }
    }
    if let Some(max) = s.max_properties {
        if n > max {
            res.add(OErr::Validation {
                code: Code::TooManyProperties,
                name: path.clone(),
                value: Some(Value::from(n)),
                valid: Some(max),
                values: Vec::new(),
                message: format!("{path} in {IN} should have at most {max} properties"),
            });
        }
    }
    let base = path.len();
    match &s.additional {
        Some(a) if !a.allows => {
            for k in m.keys() {
                if !s.properties.contains_key(k) {
                    res.add(validation(
                        Code::Other,
                        path,
                        Some(Value::String(k.clone())),
                        format!("{path}.{k} in {IN} is a forbidden property"),
                    ));
                }
            }
        }
        Some(a) => {
            if let Some(ap) = &a.schema {
                for (k, v) in m {
                    if !s.properties.contains_key(k) {
                        path.push('.');
                        path.push_str(k);
                        res.merge(validate_node(ap, v, path));
                        path.truncate(base);
                    }
                }
            }
        }
        None => {}
    }
    if !s.properties.is_empty() {
        for (k, v) in m {
            if let Some(ps) = s.properties.get(k) {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                res.merge(validate_node(ps, v, path));
                path.truncate(base);
            }
        }
    }
    for k in &s.required {
        if !m.contains_key(k) {
            let name = format!("{path}.{k}");
            let message = format!("{name} in {IN} is required");
            res.add(validation(Code::Required, &name, None, message));
        }
    }
    res
}

fn join(root: Option<&str>, name: &str) -> String {
    match root {
        Some(r) => format!("{r}.{name}"),
        None => name.to_string(),
    }
}

fn to_field_error(e: OErr, root: Option<&str>) -> FieldError {
    let root_path = root.unwrap_or("<nil>").to_string();
    match e {
        OErr::Plain(message) => error::invalid(&root_path, Value::String(String::new()), message),
        OErr::Validation {
            code,
            name,
            value,
            valid,
            values,
            message,
        } => {
            let field = if !name.is_empty() && name != "." {
                join(root, name.strip_prefix('.').unwrap_or(&name))
            } else {
                root_path
            };
            let value_or_empty = || {
                value
                    .clone()
                    .unwrap_or_else(|| Value::String(String::new()))
            };
            match code {
                Code::Required => FieldError::required(&field, ""),
                Code::Enum => {
                    let listed: Vec<String> = values
                        .iter()
                        .map(|v| {
                            if let Value::String(s) = v {
                                s.clone()
                            } else {
                                go_json(v)
                            }
                        })
                        .collect();
                    error::not_supported(&field, value.unwrap_or(Value::Null), &listed)
                }
                Code::TooLong => error::too_long(&field, valid.unwrap_or(-1)),
                Code::MaxItems | Code::TooManyProperties => {
                    let actual = value.as_ref().and_then(Value::as_i64).unwrap_or(-1);
                    error::too_many(&field, actual, valid.unwrap_or(-1))
                }
                Code::InvalidType => error::type_invalid(&field, value_or_empty(), message),
                Code::Other => error::invalid(&field, value_or_empty(), message),
            }
        }
    }
}
