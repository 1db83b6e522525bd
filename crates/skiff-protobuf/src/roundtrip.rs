//! Round-trip property over every built-in kind: for an object of each kind with every field
//! set (sample values generated from the schema itself, so a kind added to the protos is
//! covered without a new fixture), `decode(encode(x)) == x`.

use serde_json::{json, Map, Value};

use crate::schema::{Kind, Scalar, Schema, Special};
use crate::{decode, decode_watch_event, encode, encode_watch_event, schema};

/// Builds sample objects with every field of a message set to a non-zero value.
struct Sampler<'s> {
    schema: &'s Schema,
    /// Messages on the path from the root: a recursive type (JSONSchemaProps) is cut at its
    /// second appearance so the sample stays finite.
    path: Vec<usize>,
    /// Alternates the two forms of IntOrString and similar choices across the sample.
    flip: bool,
}

impl Sampler<'_> {
    /// The JSON of one message, or `None` where recursion is cut.
    fn message(&mut self, message: usize) -> Option<Value> {
        if self.path.contains(&message) {
            return None;
        }
        self.path.push(message);
        let value = match self.schema.messages[message].special {
            Some(special) => self.special(special, message),
            None => {
                let mut object = Map::new();
                self.fill(message, &mut object);
                Some(Value::Object(object))
            }
        };
        self.path.pop();
        value
    }

    fn fill(&mut self, message: usize, object: &mut Map<String, Value>) {
        let schema = self.schema;
        for field in &schema.messages[message].fields {
            let value = match &field.kind {
                Kind::Message(sub) if field.inline => {
                    self.path.push(message);
                    self.fill(*sub, object);
                    self.path.pop();
                    continue;
                }
                Kind::Scalar(s) if field.repeated => Some(json!([
                    scalar(*s, field.number),
                    scalar(*s, field.number + 1)
                ])),
                Kind::Scalar(s) => Some(scalar(*s, field.number)),
                Kind::Message(sub) if field.repeated => self.message(*sub).map(|v| json!([v])),
                Kind::Message(sub) => self.message(*sub),
                Kind::Map { key, value } => {
                    let key = match scalar(*key, 1) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    let value = match value.as_ref() {
                        Kind::Scalar(s) => Some(scalar(*s, 2)),
                        Kind::Message(sub) => self.message(*sub),
                        Kind::Map { .. } => None,
                    };
                    value.map(|v| json!({ key: v }))
                }
            };
            match value {
                Some(v) => {
                    object.insert(field.json_name.clone(), v);
                }
                // Where the sample stops, Go's JSON still has null for the fields it keeps.
                None if field.null_when_absent => {
                    object.insert(field.json_name.clone(), Value::Null);
                }
                None => {}
            }
        }
    }

    fn special(&mut self, special: Special, message: usize) -> Option<Value> {
        self.flip = !self.flip;
        let first_message =
            |s: &Self, number: u32| match s.schema.messages[message].field(number).map(|f| &f.kind)
            {
                Some(Kind::Message(sub)) => Some(*sub),
                _ => None,
            };
        Some(match special {
            Special::Time => json!("2024-01-02T03:04:05Z"),
            Special::MicroTime => json!("2024-01-02T03:04:05.123456Z"),
            // No served kind has one; the encoder refuses it.
            Special::Duration => return None,
            Special::Quantity => json!("1500m"),
            Special::IntOrString if self.flip => json!(8080),
            Special::IntOrString => json!("50%"),
            Special::RawJson => json!({"raw": [1, "two", {"three": null}]}),
            Special::Slice => json!(["get", "list"]),
            Special::SchemaOrArray | Special::SchemaOrBool => {
                let sub = first_message(
                    self,
                    if special == Special::SchemaOrBool {
                        2
                    } else {
                        1
                    },
                )?;
                match self.message(sub) {
                    Some(schema) if special == Special::SchemaOrArray && self.flip => {
                        json!([schema])
                    }
                    Some(schema) => schema,
                    None if special == Special::SchemaOrBool => json!(true),
                    None => return None,
                }
            }
            Special::SchemaOrStringArray => json!(["a", "b"]),
        })
    }
}

/// A non-zero sample of each scalar type (zero values are dropped by omitempty).
fn scalar(kind: Scalar, seed: u32) -> Value {
    match kind {
        Scalar::Bool => json!(true),
        Scalar::String => json!(format!("s{seed}")),
        Scalar::Bytes => json!("Ynl0ZXM="),
        Scalar::Float | Scalar::Double => json!(1.5),
        Scalar::Int32
        | Scalar::Int64
        | Scalar::Sint32
        | Scalar::Sint64
        | Scalar::Sfixed32
        | Scalar::Sfixed64 => json!(-i64::from(seed) - 1),
        Scalar::Uint32 | Scalar::Uint64 | Scalar::Fixed32 | Scalar::Fixed64 | Scalar::Enum => {
            json!(seed + 1)
        }
    }
}

/// Every top-level kind: the messages whose field 1 is `metadata`, with their apiVersion.
fn kinds(schema: &Schema) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (index, message) in schema.messages.iter().enumerate() {
        let Some((package, kind)) = message.name.rsplit_once('.') else {
            continue;
        };
        if message.field(1).is_none_or(|f| f.json_name != "metadata") {
            continue;
        }
        let Some((package, version)) = package.rsplit_once('.') else {
            continue;
        };
        let group = match package {
            "k8s.io.api.core" => String::new(),
            "k8s.io.apimachinery.pkg.apis.meta" => "meta.k8s.io".to_owned(),
            "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions" => {
                "apiextensions.k8s.io".to_owned()
            }
            p => match p.strip_prefix("k8s.io.api.") {
                Some("apps" | "batch" | "autoscaling" | "policy") => {
                    p.trim_start_matches("k8s.io.api.").to_owned()
                }
                Some("rbac") => "rbac.authorization.k8s.io".to_owned(),
                Some("flowcontrol") => "flowcontrol.apiserver.k8s.io".to_owned(),
                Some(g) => format!("{g}.k8s.io"),
                None => continue,
            },
        };
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        out.push((index, api_version, kind.to_owned()));
    }
    out
}

#[test]
fn every_built_in_kind_round_trips_through_protobuf() {
    let schema = schema().expect("schema");
    let mut checked = 0;
    for (index, api_version, kind) in kinds(schema) {
        let mut sampler = Sampler {
            schema,
            path: Vec::new(),
            flip: false,
        };
        let Some(Value::Object(mut object)) = sampler.message(index) else {
            panic!("{kind}: no sample");
        };
        object.insert("apiVersion".into(), json!(api_version));
        object.insert("kind".into(), json!(kind));
        let object = Value::Object(object);
        let bytes = encode(&object).unwrap_or_else(|e| panic!("{api_version} {kind}: {e}"));
        assert!(bytes.starts_with(crate::MAGIC));
        let back = decode(&bytes).unwrap_or_else(|e| panic!("{api_version} {kind}: {e}"));
        assert_eq!(back, object, "{api_version} {kind}");
        checked += 1;
    }
    assert!(checked >= 120, "only {checked} kinds");
}

#[test]
fn watch_events_round_trip_with_their_length_prefix() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "resourceVersion": "7",
                     "creationTimestamp": "2024-01-02T03:04:05Z"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {}}]},
        "status": {"phase": "Pending"}
    });
    let frame = encode_watch_event("ADDED", &pod).expect("encode");
    let (len, event) = frame.split_at(4);
    let len = u32::from_be_bytes(len.try_into().expect("four bytes"));
    assert_eq!(len as usize, event.len());
    let (event_type, object) = decode_watch_event(event).expect("decode");
    assert_eq!(event_type, "ADDED");
    assert_eq!(object, pod);
    // The event itself is raw (no k8s\0 prefix); the object inside carries it.
    assert_eq!(event[0], 0x0a, "field 1, type");
}

#[test]
fn objects_without_a_built_in_kind_are_refused() {
    assert!(matches!(
        encode(&json!({"apiVersion": "example.com/v1", "kind": "Widget"})),
        Err(crate::Error::UnknownKind { .. })
    ));
    assert!(matches!(
        encode(&json!({"metadata": {}})),
        Err(crate::Error::MissingTypeMeta)
    ));
    assert!(!crate::encodes("example.com/v1", "Widget"));
    assert!(crate::encodes("v1", "Status"));
    assert!(crate::encodes("apps/v1", "DeploymentList"));
}

#[test]
fn a_value_of_the_wrong_json_type_is_an_error_not_a_panic() {
    let cases = [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "data": ["not", "a", "map"]}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 3}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "3"}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"creationTimestamp": "yesterday"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "not base64!"}}),
    ];
    for case in cases {
        assert!(encode(&case).is_err(), "{case}");
    }
}

#[test]
fn a_null_time_is_the_zero_time_only_where_go_has_no_pointer() {
    let object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "creationTimestamp": null, "deletionTimestamp": null}
    });
    let back = decode(&encode(&object).expect("encode")).expect("decode");
    // creationTimestamp (a metav1.Time) comes back as Go prints its zero value; the nil
    // *Time deletionTimestamp is not invented (a set one would mean "being deleted").
    assert_eq!(
        back,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c", "creationTimestamp": null}})
    );
}
