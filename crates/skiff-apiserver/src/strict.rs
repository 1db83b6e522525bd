//! JSON request bodies parsed with the paths of their duplicate fields, which a plain parse
//! silently collapses (last one wins): upstream's strict decoding reports them as
//! `duplicate field "spec.replicas"` under `fieldValidation=Strict` and warns under `Warn`.
//! An apply body is YAML, and upstream names its repeated keys as go-yaml's strict decoder
//! does, by line (`line 11: key "foo" already set in map`): [`yaml_duplicate_keys`].

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `body`, returning the value (duplicates resolved last-wins, as Go's decoder) and
/// the dotted paths of fields that appeared more than once, in order of appearance.
pub fn parse_json(body: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut duplicates = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Seed {
        path: String::new(),
        duplicates: &mut duplicates,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, duplicates))
}

struct Seed<'a> {
    path: String,
    duplicates: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = Seed {
                path: format!("{}[{}]", self.path, items.len()),
                duplicates: &mut *self.duplicates,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            let value = map.next_value_seed(Seed {
                path: path.clone(),
                duplicates: &mut *self.duplicates,
            })?;
            if out.insert(key, value).is_some() && !self.duplicates.contains(&path) {
                self.duplicates.push(path);
            }
        }
        Ok(Value::Object(out))
    }
}

/// The repeated keys of a YAML (or JSON, which is YAML) document's mappings, as go-yaml's
/// strict decoder reports them: `line N: key "foo" already set in map`, N the line of the
/// repeat, in document order. Keys compare as go-yaml resolves them (`1` is not `"1"`);
/// merge keys (`<<`) and non-scalar keys are not compared. Only the first document counts,
/// as upstream decodes only that one. A body the parser refuses has nothing to report: the
/// body was already decoded, so that error has been given.
pub fn yaml_duplicate_keys(body: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    let mut finder = DuplicateKeys::default();
    let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
    if parser.load(&mut finder, false).is_err() {
        return Vec::new();
    }
    finder.found
}

/// go-yaml's strict decoding error for repeated keys, when there are any: `yaml: unmarshal
/// errors:` and an indented line per key.
pub fn yaml_error(duplicates: &[String]) -> Option<String> {
    (!duplicates.is_empty())
        .then(|| format!("yaml: unmarshal errors:\n  {}", duplicates.join("\n  ")))
}

/// One open collection while walking the parser's events.
enum Open {
    /// A mapping: the keys seen, and whether the next node is a key.
    Map {
        keys: std::collections::HashSet<String>,
        at_key: bool,
    },
    Seq,
}

#[derive(Default)]
struct DuplicateKeys {
    open: Vec<Open>,
    found: Vec<String>,
    /// Nodes still open inside a non-scalar key (not compared).
    in_complex_key: usize,
}

impl DuplicateKeys {
    /// A node starts (or is a scalar): when it is a key, note it; when it is a value, the
    /// mapping's next node is a key again.
    fn node(&mut self, key: Option<String>, line: usize) {
        if let Some(Open::Map { keys, at_key }) = self.open.last_mut() {
            if *at_key {
                if let Some(key) = key {
                    if !keys.insert(key.clone()) {
                        self.found
                            .push(format!("line {line}: key {key} already set in map"));
                    }
                }
            }
            *at_key = !*at_key;
        }
    }
}

impl yaml_rust2::parser::MarkedEventReceiver for DuplicateKeys {
    fn on_event(&mut self, ev: yaml_rust2::Event, mark: yaml_rust2::scanner::Marker) {
        use yaml_rust2::Event;
        if self.in_complex_key > 0 {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.in_complex_key += 1,
                Event::MappingEnd | Event::SequenceEnd => {
                    self.in_complex_key -= 1;
                    if self.in_complex_key == 0 {
                        // The complex key is done; its value comes next.
                        if let Some(Open::Map { at_key, .. }) = self.open.last_mut() {
                            *at_key = false;
                        }
                    }
                }
                _ => {}
            }
            return;
        }
        match ev {
            Event::Scalar(value, style, _, tag) => {
                // A merge key (`<<`) merges; it is not a field of its own.
                let merge = value == "<<" && style == yaml_rust2::scanner::TScalarStyle::Plain;
                let key = (!merge).then(|| go_key(&value, style, tag.is_some()));
                self.node(key, mark.line());
            }
            Event::Alias(_) => self.node(None, mark.line()),
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_key = matches!(self.open.last(), Some(Open::Map { at_key: true, .. }));
                if is_key {
                    self.in_complex_key = 1;
                    return;
                }
                self.node(None, mark.line());
                self.open.push(match ev {
                    Event::MappingStart(..) => Open::Map {
                        keys: Default::default(),
                        at_key: true,
                    },
                    _ => Open::Seq,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.open.pop();
            }
            Event::DocumentEnd => {
                // Only the first document is decoded upstream.
                self.open.clear();
                self.open.push(Open::Seq);
            }
            _ => {}
        }
    }
}

/// A scalar key as go-yaml prints it with `%#v` after resolving it: plain integers and
/// booleans bare, everything else a quoted string.
fn go_key(value: &str, style: yaml_rust2::scanner::TScalarStyle, tagged: bool) -> String {
    let plain = style == yaml_rust2::scanner::TScalarStyle::Plain && !tagged;
    if plain {
        if let Ok(n) = value.parse::<i64>() {
            return n.to_string();
        }
        if let Some(b) = match value {
            "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
            "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
            _ => None,
        } {
            return b.to_string();
        }
    }
    serde_json::Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_fields_are_found_with_their_paths() {
        let body = br#"{"spec": {"unknownField": "foo", "replicas": 2, "replicas": 3,
            "template": {"spec": {"containers": [{"name": "a", "name": "b"}]}}}}"#;
        let (value, dups) = parse_json(body).unwrap();
        assert_eq!(
            value["spec"]["replicas"], 3,
            "the last one wins, as Go's decoder"
        );
        assert_eq!(
            dups,
            ["spec.replicas", "spec.template.spec.containers[0].name"]
        );
    }

    /// Upstream's bodies (test/integration/apiserver/field_validation_test.go): the apply
    /// body (JSON, which is YAML) and the YAML create body, with its expected lines.
    #[test]
    fn yaml_duplicates_are_named_by_line_as_go_yaml_does() {
        // Upstream's applyInvalidBody (test/integration/apiserver/apply), name filled in.
        let apply_invalid_body = include_str!("../testdata/apply-repeated-keys-deployment.json");
        assert_eq!(
            yaml_duplicate_keys(apply_invalid_body.as_bytes()),
            [
                r#"line 10: key "paused" already set in map"#,
                r#"line 27: key "imagePullPolicy" already set in map"#
            ]
        );
        let invalid_body_yaml = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: dupename
  name: deployment
  unknownMeta: metaVal
  labels:
    app: nginx
spec:
  unknown1: val1
  unknownDupe: valDupe
  unknownDupe: valDupe2
  paused: true
  paused: false
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:latest
        unknownNested: val1
        imagePullPolicy: Always
        imagePullPolicy: Never";
        assert_eq!(
            yaml_duplicate_keys(invalid_body_yaml.as_bytes()),
            [
                r#"line 5: key "name" already set in map"#,
                r#"line 12: key "unknownDupe" already set in map"#,
                r#"line 14: key "paused" already set in map"#,
                r#"line 28: key "imagePullPolicy" already set in map"#
            ]
        );
        let cases: &[(&str, &[&str])] = &[
            ("a: 1\nb: 2\n", &[]),
            (
                "a: 1\na: 2\na: 3\n",
                &[
                    "line 2: key \"a\" already set in map",
                    "line 3: key \"a\" already set in map",
                ],
            ),
            // The same key in different mappings is no repeat.
            ("a: {x: 1}\nb: {x: 1}\n", &[]),
            (
                "l:\n- n: 1\n  n: 2\n- n: 3\n",
                &["line 3: key \"n\" already set in map"],
            ),
            // JSON is YAML: a one-line body reports line 1.
            (
                "{\"a\": {\"b\": 1, \"b\": 2}}",
                &["line 1: key \"b\" already set in map"],
            ),
            // Keys resolve before comparing: 1 and "1" differ, 1 and 1 do not.
            ("1: a\n\"1\": b\n", &[]),
            ("1: a\n1: b\n", &["line 2: key 1 already set in map"]),
            (
                "true: a\nyes: b\n",
                &["line 2: key true already set in map"],
            ),
            // A value that is a mapping keeps the parent's keys apart from its own.
            (
                "a:\n  a: 1\nb: 2\nb: 3\n",
                &["line 4: key \"b\" already set in map"],
            ),
            // Complex keys and merge keys are not compared; anchors and aliases are values.
            ("? [x]\n: 1\n? [x]\n: 2\nz: 3\n", &[]),
            ("base: &b {x: 1}\nc:\n  <<: *b\n  <<: *b\n  y: *b\n", &[]),
            // Only the first document is decoded.
            ("a: 1\n---\na: 2\na: 3\n", &[]),
            // What the parser refuses reports nothing (the decode already failed).
            ("a: [\n", &[]),
        ];
        for (body, want) in cases {
            assert_eq!(yaml_duplicate_keys(body.as_bytes()), *want, "{body:?}");
        }
    }

    #[test]
    fn values_parse_as_serde_json_does() {
        let body = br#"{"a": [1, -2, 3.5, true, null, "s", {}], "b": {"c": []}}"#;
        let (value, dups) = parse_json(body).unwrap();
        assert_eq!(value, serde_json::from_slice::<Value>(body).unwrap());
        assert!(dups.is_empty());
        assert!(parse_json(b"{} trailing").is_err());
        assert!(parse_json(b"{\"a\":").is_err());
    }
}
