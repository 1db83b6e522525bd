//! Label selectors: the `-l` string grammar, `metav1.LabelSelector` conversion and matching.

use std::fmt;

use serde_json::{Map, Value};

use super::validate::{aggregate, invalid, label_key_errors, label_value_errors};
use super::SelectorError;

/// How a requirement relates a label key to its values (upstream `selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `key=value`
    Equals,
    /// `key==value`
    DoubleEquals,
    /// `key!=value` (also matches objects without the key)
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)` (also matches objects without the key)
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>5` (integer comparison; used by node affinity)
    GreaterThan,
    /// `key<5`
    LessThan,
}

impl Operator {
    /// Upstream's string form, used in "expected:" parse errors.
    fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// One `key op values` term; a selector is the AND of its requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key, validated as a qualified name.
    pub key: String,
    /// The operator.
    pub op: Operator,
    /// The values; sorted and de-duplicated when parsed from a string, as upstream's set.
    pub values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement with upstream's `NewRequirement` checks, so a bad
    /// `matchExpressions` entry is refused with the same message.
    pub fn new(key: &str, op: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        let mut errs = Vec::new();
        let key_errs = label_key_errors(key);
        if !key_errs.is_empty() {
            errs.push(invalid("key", key, &key_errs.join("; ")));
        }
        match op {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(
                "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
                    .to_string(),
            ),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errs.push(format!(
                    "values: Invalid value: {values:?}: exact-match compatibility requires one single value"
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(format!(
                "values: Invalid value: {values:?}: values set must be empty for exists and does not exist"
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {values:?}: for 'Gt', 'Lt' operators, exactly one value is required"
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid(
                            &format!("values[{i}]"),
                            v,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let v_errs = label_value_errors(v);
            if !v_errs.is_empty() {
                errs.push(invalid(
                    &format!("values[{i}][{key}]"),
                    v,
                    &v_errs.join("; "),
                ));
            }
        }
        if errs.is_empty() {
            Ok(Requirement {
                key: key.to_string(),
                op,
                values,
            })
        } else {
            Err(SelectorError::InvalidRequirement(aggregate(&errs)))
        }
    }

    /// Whether this requirement holds for a label set (upstream `Requirement.Matches`).
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.matches_by(|k| json_label(labels, k))
    }

    /// [`Requirement::matches`] over any label store: `get` gives a label's value (typed
    /// objects' `BTreeMap<String, String>` labels need no JSON copy).
    pub fn matches_by<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let value = || get(&self.key);
        let has_value = |v: &str| self.values.iter().any(|x| x == v);
        match self.op {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value().is_some_and(has_value)
            }
            Operator::NotIn | Operator::NotEquals => !value().is_some_and(has_value),
            Operator::Exists => value().is_some(),
            Operator::DoesNotExist => value().is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = value().and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [wanted] = self.values.as_slice() else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.op == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }
}

/// A label's value in JSON `metadata.labels`. Label values are strings once validated; any
/// other value still counts as present (for `Exists`) with an empty value.
fn json_label<'a>(labels: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    labels?.get(key).map(|v| v.as_str().unwrap_or_default())
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.op {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        f.write_str(op)?;
        let set = matches!(self.op, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        let mut values = self.values.clone();
        values.sort();
        f.write_str(&values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its requirements, or upstream's `Nothing()`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// Sorted by key, as upstream sorts after parsing, so `Display` is canonical.
    requirements: Vec<Requirement>,
    /// Upstream's `labels.Nothing()`: matches no object. Distinct from an empty selector.
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object (an empty `-l`, or `selector: {}`).
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// The selector that matches no object: what upstream's `LabelSelectorAsSelector` returns
    /// for a nil `*metav1.LabelSelector` (e.g. a PodDisruptionBudget without a selector).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the `-l`/`labelSelector=` grammar: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
    /// `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, comma-separated, with upstream's errors.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let mut parser = Parser {
            items: lex(s),
            pos: 0,
        };
        let mut requirements = parser.parse().map_err(SelectorError::LabelSyntax)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` in JSON form, as upstream's `LabelSelectorAsSelector`:
    /// `null` (or an absent selector) becomes [`LabelSelector::nothing`], `{}` becomes
    /// [`LabelSelector::everything`]. Callers that treat a missing selector as "select all"
    /// (e.g. a Service without `spec.selector` selects nothing, but a NetworkPolicy
    /// `podSelector: {}` selects all) decide by passing `null` or `{}`.
    pub fn from_label_selector(v: &Value) -> Result<LabelSelector, SelectorError> {
        let obj = match v {
            Value::Null => return Ok(LabelSelector::nothing()),
            Value::Object(o) => o,
            other => {
                return Err(SelectorError::MalformedLabelSelector(format!(
                    "expected an object, got {other}"
                )))
            }
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let v = v.as_str().ok_or_else(|| {
                        SelectorError::MalformedLabelSelector(format!(
                            "matchLabels[{k}] must be a string"
                        ))
                    })?;
                    requirements.push(Requirement::new(k, Operator::Equals, vec![v.to_string()])?);
                }
            }
            Some(_) => {
                return Err(SelectorError::MalformedLabelSelector(
                    "matchLabels must be an object".to_string(),
                ))
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for expr in exprs {
                    requirements.push(expression_requirement(expr)?);
                }
            }
            Some(_) => {
                return Err(SelectorError::MalformedLabelSelector(
                    "matchExpressions must be a list".to_string(),
                ))
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Builds the selector matching exactly a label set (upstream `SelectorFromSet`), e.g. a
    /// Service's or ReplicationController's `spec.selector` map. An empty map gives
    /// [`LabelSelector::everything`], as upstream; controllers that treat an empty Service
    /// selector as "no endpoints" must check for it themselves.
    pub fn from_map(labels: &Map<String, Value>) -> LabelSelector {
        let mut requirements: Vec<Requirement> = labels
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                op: Operator::Equals,
                values: vec![v.as_str().unwrap_or_default().to_string()],
            })
            .collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// Whether an object with these labels (`metadata.labels`, absent = `None`) is selected.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.matches_by(|k| json_label(labels, k))
    }

    /// [`LabelSelector::matches`] over any label store (see [`Requirement::matches_by`]).
    pub fn matches_by<'a>(&self, get: impl Fn(&str) -> Option<&'a str> + Copy) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches_by(get))
    }

    /// True when the selector does not restrict anything (upstream `Empty()`); `nothing()` is
    /// not empty.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True only for [`LabelSelector::nothing`] (upstream `MatchesNothing`).
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The single value `key` must have, if the selector pins it (upstream
    /// `RequiresExactMatch`); lets the server use an index for `app=x`.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.op, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelSelector::parse(s)
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn expression_requirement(expr: &Value) -> Result<Requirement, SelectorError> {
    let malformed = |m: &str| SelectorError::MalformedLabelSelector(m.to_string());
    let key = expr
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("matchExpressions[].key must be a string"))?;
    let op_str = expr
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let op = match op_str {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => return Err(SelectorError::InvalidOperator(other.to_string())),
    };
    let values = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("matchExpressions[].values must be strings"))?,
        Some(_) => return Err(malformed("matchExpressions[].values must be a list")),
    };
    Requirement::new(key, op, values)
}

// ---- lexer -------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosePar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Ident,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosePar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Tokenizes the whole string up front, ending with `Tok::End`, as upstream's `scan`.
/// Splits only at ASCII bytes, so every literal is a valid `&str` slice.
fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_whitespace(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            out.push((Tok::End, String::new()));
            return out;
        }
        let start = pos;
        if is_special(b[pos]) {
            // Longest run of special characters that still forms an operator.
            let mut last: Option<(Tok, usize)> = None;
            while pos < b.len() && is_special(b[pos]) {
                match keyword(&s[start..=pos]) {
                    Some(t) => last = Some((t, pos + 1)),
                    None if last.is_some() => break,
                    None => {}
                }
                pos += 1;
            }
            match last {
                Some((t, end)) => {
                    pos = end;
                    out.push((t, s[start..end].to_string()));
                }
                None => out.push((
                    Tok::Error,
                    format!("error expected: keyword found '{}'", &s[start..pos]),
                )),
            }
        } else {
            while pos < b.len() && !is_special(b[pos]) && !is_whitespace(b[pos]) {
                pos += 1;
            }
            let lit = &s[start..pos];
            out.push((keyword(lit).unwrap_or(Tok::Ident), lit.to_string()));
        }
    }
}

// ---- parser ------------------------------------------------------------------------------

/// Whether `in`/`notin` are keywords (after a key) or plain identifiers (as values).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

const BINARY_OPERATORS: [Operator; 7] = [
    Operator::In,
    Operator::NotIn,
    Operator::Equals,
    Operator::DoubleEquals,
    Operator::NotEquals,
    Operator::GreaterThan,
    Operator::LessThan,
];

impl Parser {
    fn peek(&self, ctx: Context) -> (Tok, String) {
        let (tok, lit) = self
            .items
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::End, String::new()));
        match tok {
            Tok::In | Tok::NotIn if ctx == Context::Values => (Tok::Ident, lit),
            _ => (tok, lit),
        }
    }

    fn next(&mut self, ctx: Context) -> (Tok, String) {
        let item = self.peek(ctx);
        self.pos += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.peek(Context::Values);
            match tok {
                Tok::Ident | Tok::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.next(Context::Values);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.peek(Context::Values);
                            if t2 != Tok::Ident && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.key_and_inferred_operator()?;
        if let Some(op) = op {
            return Requirement::new(&key, op, Vec::new()).map_err(|e| e.to_string());
        }
        let op = self.operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => self.exact_value()?,
        };
        let mut values: Vec<String> = values;
        values.sort();
        values.dedup();
        Requirement::new(&key, op, values).map_err(|e| e.to_string())
    }

    /// Reads `[!]key`; returns the operator when it is implied (`key` alone, or `!key`).
    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.next(Context::Values);
        if tok == Tok::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.next(Context::Values);
        }
        if tok != Tok::Ident {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = label_key_errors(&lit);
        if !errs.is_empty() {
            return Err(invalid("<nil>", &lit, &errs.join("; ")));
        }
        let (next, _) = self.peek(Context::Values);
        if (next == Tok::End || next == Tok::Comma) && op.is_none() {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.next(Context::KeyAndOperator);
        Ok(match tok {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => {
                let expected: Vec<&str> = BINARY_OPERATORS.iter().map(|o| o.as_str()).collect();
                return Err(format!("found '{lit}', expected: {}", expected.join(", ")));
            }
        })
    }

    /// `(a,b,c)`; empty members are the empty string, so `()` is `{""}` as upstream.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.next(Context::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.peek(Context::Values);
        match tok {
            Tok::Ident | Tok::Comma => {
                let set = self.identifier_list()?;
                let (tok, _) = self.next(Context::Values);
                if tok != Tok::ClosePar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            Tok::ClosePar => {
                self.next(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut set: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.next(Context::Values);
            match tok {
                Tok::Ident => {
                    set.push(lit);
                    let (t2, l2) = self.peek(Context::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosePar => return Ok(set),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        set.push(String::new());
                    }
                    let (t2, _) = self.peek(Context::Values);
                    if t2 == Tok::ClosePar {
                        set.push(String::new());
                        return Ok(set);
                    }
                    if t2 == Tok::Comma {
                        set.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.peek(Context::Values);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.next(Context::Values);
        if tok == Tok::Ident {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn parse_round_trips_to_upstream_canonical_string() {
        let cases = [
            ("", ""),
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x!=a", "x!=a"),
            ("  x = a ,  y", "x=a,y"),
            ("b=1,a=2", "a=2,b=1"),
            ("x in (c,a,b)", "x in (a,b,c)"),
            ("x notin (a)", "x notin (a)"),
            ("!x", "!x"),
            ("x", "x"),
            (
                "x in (foo,,baz),y,z notin ()",
                "x in (,baz,foo),y,z notin ()",
            ),
            ("x>1,y<2", "x>1,y<2"),
            ("x=", "x="),
            ("x in (in)", "x in (in)"),
            ("example.com/app=web", "example.com/app=web"),
            ("x in (a,a,b)", "x in (a,b)"),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.to_string(), want, "input {input:?}");
        }
    }

    #[test]
    fn parse_rejects_bad_syntax_with_upstream_messages() {
        let cases = [
            ("x=a||y=b", "Invalid value: \"a||y\""),
            (
                "x in",
                "unable to parse requirement: found '' expected: '('",
            ),
            ("x=a,", "found '', expected: identifier after ','"),
            ("x y", "found 'y', expected: in, notin, =, ==, !=, gt, lt"),
            (
                "=a",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            ("x in (a", "found '', expected: ',' or ')'"),
            ("!x=a", "found '=', expected: ',' or 'end of string'"),
            (
                "x>a",
                "for 'Gt', 'Lt' operators, the value must be an integer",
            ),
        ];
        for (input, want) in cases {
            let err = LabelSelector::parse(input).expect_err(input).to_string();
            assert!(
                err.contains(want),
                "input {input:?}: got {err:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn parse_validates_label_keys_and_values() {
        let err = LabelSelector::parse("a$=b")
            .expect_err("bad key")
            .to_string();
        assert!(
            err.starts_with("unable to parse requirement: <nil>: Invalid value: \"a$\": name part must consist of alphanumeric characters"),
            "{err}"
        );
        let err = LabelSelector::parse("a=b c")
            .expect_err("space in value")
            .to_string();
        assert!(
            err.contains("found 'c', expected: ',' or 'end of string'"),
            "{err}"
        );
        let err = LabelSelector::parse("a=-b")
            .expect_err("bad value")
            .to_string();
        assert!(
            err.contains("values[0][a]: Invalid value: \"-b\": a valid label must be"),
            "{err}"
        );
        let long = format!("a={}", "v".repeat(64));
        let err = LabelSelector::parse(&long)
            .expect_err("long value")
            .to_string();
        assert!(err.contains("must be no more than 63 characters"), "{err}");
        let err = LabelSelector::parse("Example.com/a=b")
            .expect_err("bad prefix")
            .to_string();
        assert!(
            err.contains("prefix part a lowercase RFC 1123 subdomain"),
            "{err}"
        );
        assert!(LabelSelector::parse("/a").is_err());
        assert!(LabelSelector::parse("a/b/c").is_err());
        assert!(LabelSelector::parse("app.kubernetes.io/name in (web, api)").is_ok());
    }

    #[test]
    fn matches_follows_upstream_operator_semantics() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=api", false),
            ("app!=api", true),
            ("missing!=x", true),
            ("app in (api,web)", true),
            ("app notin (web)", false),
            ("missing notin (web)", true),
            ("missing in (web)", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=web,tier=back", false),
            ("n>4", true),
            ("n<5", false),
            ("missing>1", false),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(Some(&l)), want, "selector {sel:?}");
        }
        let s = LabelSelector::parse("app!=web").expect("valid");
        assert!(s.matches(None), "no labels at all satisfies !=");
    }

    #[test]
    fn from_label_selector_converts_match_labels_and_expressions() {
        let sel = LabelSelector::from_label_selector(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "back"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        }))
        .expect("valid");
        assert_eq!(sel.to_string(), "app=web,!canary,tier in (back,front)");
        assert!(sel.matches(Some(&labels(json!({"app": "web", "tier": "front"})))));
        assert!(!sel.matches(Some(&labels(
            json!({"app": "web", "tier": "front", "canary": "1"})
        ))));
        assert_eq!(sel.requires_exact_match("app"), Some("web"));
    }

    #[test]
    fn empty_selector_matches_everything_and_null_matches_nothing() {
        let all = LabelSelector::from_label_selector(&json!({})).expect("valid");
        assert!(all.is_empty());
        assert!(all.matches(None));
        let none = LabelSelector::from_label_selector(&Value::Null).expect("valid");
        assert!(!none.is_empty());
        assert!(none.matches_nothing());
        assert!(!none.matches(Some(&labels(json!({"a": "b"})))));
        assert_eq!(none.to_string(), "");
    }

    #[test]
    fn from_label_selector_rejects_bad_operators_and_values() {
        let err = LabelSelector::from_label_selector(&json!({
            "matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]
        }))
        .expect_err("Gt not allowed");
        assert_eq!(
            err.to_string(),
            "\"Gt\" is not a valid label selector operator"
        );
        let err = LabelSelector::from_label_selector(&json!({
            "matchExpressions": [{"key": "a", "operator": "In", "values": []}]
        }))
        .expect_err("In needs values");
        assert!(
            err.to_string().contains("values set can't be empty"),
            "{err}"
        );
        let err = LabelSelector::from_label_selector(&json!({
            "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
        }))
        .expect_err("Exists takes no values");
        assert!(
            err.to_string().contains("values set must be empty"),
            "{err}"
        );
        assert!(LabelSelector::from_label_selector(&json!({"matchLabels": {"a": "b c"}})).is_err());
    }
}
