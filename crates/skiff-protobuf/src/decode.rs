//! Walks encoded messages along the schema and builds their Kubernetes JSON form.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::schema::{Field, Kind, Scalar, Schema, Special};
use crate::wire::{self, Fields};
use crate::{special, Error, Result, MAX_DEPTH};

/// Decodes messages against one [`Schema`].
pub(crate) struct Decoder<'s> {
    schema: &'s Schema,
}

/// The `runtime.Unknown` envelope around every protobuf object.
pub(crate) struct Unknown<'a> {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) raw: &'a [u8],
    pub(crate) content_encoding: String,
}

impl<'s> Decoder<'s> {
    pub(crate) fn new(schema: &'s Schema) -> Self {
        Self { schema }
    }

    pub(crate) fn schema(&self) -> &'s Schema {
        self.schema
    }

    /// Reads `runtime.Unknown`: typeMeta (1: apiVersion, kind), raw (2), contentEncoding (3).
    pub(crate) fn envelope<'a>(&self, buf: &'a [u8]) -> Result<Unknown<'a>> {
        let mut unknown = Unknown {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
            content_encoding: String::new(),
        };
        for item in Fields::new(buf) {
            match item? {
                (1, wire::Value::Bytes(type_meta)) => {
                    for item in Fields::new(type_meta) {
                        match item? {
                            (1, wire::Value::Bytes(b)) => unknown.api_version = lossy(b),
                            (2, wire::Value::Bytes(b)) => unknown.kind = lossy(b),
                            _ => {}
                        }
                    }
                }
                (2, wire::Value::Bytes(raw)) => unknown.raw = raw,
                (3, wire::Value::Bytes(b)) => unknown.content_encoding = lossy(b),
                _ => {}
            }
        }
        Ok(unknown)
    }

    /// The JSON value of one message: an object, or the custom form of a special type.
    pub(crate) fn value(&self, message: usize, buf: &[u8], depth: usize) -> Result<Value> {
        if depth >= MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        match self.schema.messages[message].special {
            None => {
                let mut object = Map::new();
                self.fill(message, buf, &mut object, depth)?;
                Ok(Value::Object(object))
            }
            Some(kind) => self.special(kind, message, buf, depth),
        }
    }

    /// Adds the fields of one message to `out` (which, for inlined structs, is the parent's).
    pub(crate) fn fill(
        &self,
        message: usize,
        buf: &[u8],
        out: &mut Map<String, Value>,
        depth: usize,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        let schema_message = &self.schema.messages[message];
        for item in Fields::new(buf) {
            let (number, value) = item?;
            // Unknown fields come from newer clients; protobuf's contract is to skip them.
            let Some(field) = schema_message.field(number) else {
                continue;
            };
            let wire_type = || Error::WireType {
                message: schema_message.name.clone(),
                field: number,
            };
            match &field.kind {
                Kind::Scalar(scalar) if field.repeated => {
                    let array = array_at(out, &field.json_name).ok_or_else(wire_type)?;
                    match value {
                        wire::Value::Bytes(packed) if is_packable(*scalar) => {
                            unpack(*scalar, packed, array)?
                        }
                        value => array.push(scalar_value(*scalar, value).ok_or_else(wire_type)??),
                    }
                }
                Kind::Scalar(scalar) => {
                    let value = scalar_value(*scalar, value).ok_or_else(wire_type)??;
                    set_scalar(out, field, value);
                }
                Kind::Message(sub) => {
                    let wire::Value::Bytes(bytes) = value else {
                        return Err(wire_type());
                    };
                    let merge_into_existing = self.schema.messages[*sub].special.is_none()
                        && matches!(out.get(&field.json_name), Some(Value::Object(_)));
                    if field.inline {
                        self.fill(*sub, bytes, out, depth + 1)?;
                    } else if field.repeated {
                        let element = self.value(*sub, bytes, depth + 1)?;
                        array_at(out, &field.json_name)
                            .ok_or_else(wire_type)?
                            .push(element);
                    } else if merge_into_existing {
                        // A message field seen twice merges, as protobuf specifies.
                        if let Some(Value::Object(existing)) = out.get_mut(&field.json_name) {
                            self.fill(*sub, bytes, existing, depth + 1)?;
                        }
                    } else {
                        let element = self.value(*sub, bytes, depth + 1)?;
                        out.insert(field.json_name.clone(), element);
                    }
                }
                Kind::Map {
                    key,
                    value: value_kind,
                } => {
                    let wire::Value::Bytes(entry) = value else {
                        return Err(wire_type());
                    };
                    let (key, value) =
                        self.map_entry(*key, value_kind, entry, depth)
                            .map_err(|e| match e {
                                Error::WireType { .. } => wire_type(),
                                e => e,
                            })?;
                    if !out.contains_key(&field.json_name) {
                        out.insert(field.json_name.clone(), Value::Object(Map::new()));
                    }
                    match out.get_mut(&field.json_name) {
                        Some(Value::Object(map)) => {
                            map.insert(key, value);
                        }
                        _ => return Err(wire_type()),
                    }
                }
            }
        }
        for field in schema_message.fields.iter().filter(|f| f.null_when_absent) {
            if !out.contains_key(&field.json_name) {
                out.insert(field.json_name.clone(), Value::Null);
            }
        }
        Ok(())
    }

    /// Decodes one map entry (key = field 1, value = field 2); a missing part is its zero value.
    fn map_entry(
        &self,
        key_kind: Scalar,
        value_kind: &Kind,
        buf: &[u8],
        depth: usize,
    ) -> Result<(String, Value)> {
        let wire_type = || Error::WireType {
            message: "map entry".to_owned(),
            field: 0,
        };
        let mut key = None;
        let mut value = None;
        for item in Fields::new(buf) {
            match item? {
                (1, wire) => key = Some(scalar_value(key_kind, wire).ok_or_else(wire_type)??),
                (2, wire) => {
                    value = Some(match value_kind {
                        Kind::Scalar(scalar) => {
                            scalar_value(*scalar, wire).ok_or_else(wire_type)??
                        }
                        Kind::Message(sub) => {
                            let wire::Value::Bytes(bytes) = wire else {
                                return Err(wire_type());
                            };
                            self.value(*sub, bytes, depth + 1)?
                        }
                        Kind::Map { .. } => return Err(wire_type()),
                    })
                }
                _ => {}
            }
        }
        let key = match key.unwrap_or_else(|| zero(key_kind)) {
            Value::String(key) => key,
            other => other.to_string(),
        };
        let value = match (value, value_kind) {
            (Some(value), _) => value,
            (None, Kind::Scalar(scalar)) => zero(*scalar),
            (None, Kind::Message(sub)) => self.value(*sub, &[], depth + 1)?,
            (None, Kind::Map { .. }) => return Err(wire_type()),
        };
        Ok((key, value))
    }

    /// Renders a type whose Go JSON form is custom.
    fn special(&self, kind: Special, message: usize, buf: &[u8], depth: usize) -> Result<Value> {
        match kind {
            Special::Time | Special::MicroTime => {
                // Go writes nothing for the zero time and reads nothing back as the zero
                // time, whose JSON form is null.
                if buf.is_empty() {
                    return Ok(Value::Null);
                }
                let (mut seconds, mut nanos) = (0i64, 0i32);
                for item in Fields::new(buf) {
                    match item? {
                        (1, wire::Value::Varint(v)) => seconds = v as i64,
                        (2, wire::Value::Varint(v)) => nanos = v as i32,
                        _ => {}
                    }
                }
                let text = special::format_time(seconds, nanos, kind == Special::MicroTime)
                    .ok_or(Error::TimeOutOfRange { seconds, nanos })?;
                Ok(Value::String(text))
            }
            Special::Duration => {
                let mut nanos = 0i64;
                for item in Fields::new(buf) {
                    if let (1, wire::Value::Varint(v)) = item? {
                        nanos = v as i64;
                    }
                }
                Ok(Value::String(special::format_duration(nanos)))
            }
            Special::Quantity => {
                let mut text = None;
                for item in Fields::new(buf) {
                    if let (1, wire::Value::Bytes(b)) = item? {
                        text = Some(lossy(b));
                    }
                }
                Ok(Value::String(text.unwrap_or_else(|| "0".to_owned())))
            }
            Special::IntOrString => {
                let (mut is_string, mut int, mut string) = (false, 0i32, String::new());
                for item in Fields::new(buf) {
                    match item? {
                        (1, wire::Value::Varint(v)) => is_string = v == 1,
                        (2, wire::Value::Varint(v)) => int = v as i32,
                        (3, wire::Value::Bytes(b)) => string = lossy(b),
                        _ => {}
                    }
                }
                Ok(if is_string {
                    Value::String(string)
                } else {
                    Value::from(int)
                })
            }
            Special::RawJson => {
                let mut raw: &[u8] = &[];
                for item in Fields::new(buf) {
                    if let (1, wire::Value::Bytes(b)) = item? {
                        raw = b;
                    }
                }
                self.raw_json(raw, depth)
            }
            Special::Slice => {
                let mut fields = self.fields_by_number(message, buf, depth)?;
                Ok(fields
                    .remove(&1)
                    .unwrap_or_else(|| Value::Array(Vec::new())))
            }
            Special::SchemaOrArray => {
                // Go: the array when it has elements, else the schema (null when unset).
                let mut fields = self.fields_by_number(message, buf, depth)?;
                Ok(fields
                    .remove(&2)
                    .or_else(|| fields.remove(&1))
                    .unwrap_or(Value::Null))
            }
            Special::SchemaOrBool => {
                // Go: the schema when set, else the boolean.
                let mut fields = self.fields_by_number(message, buf, depth)?;
                Ok(fields
                    .remove(&2)
                    .unwrap_or_else(|| fields.remove(&1).unwrap_or(Value::Bool(false))))
            }
            Special::SchemaOrStringArray => {
                // Go: the strings when there are any, else the schema, else null.
                let mut fields = self.fields_by_number(message, buf, depth)?;
                Ok(fields
                    .remove(&2)
                    .or_else(|| fields.remove(&1))
                    .unwrap_or(Value::Null))
            }
        }
    }

    /// The fields of a message keyed by number, for the specials that choose among fields.
    fn fields_by_number(
        &self,
        message: usize,
        buf: &[u8],
        depth: usize,
    ) -> Result<std::collections::HashMap<u32, Value>> {
        let mut object = Map::new();
        self.fill(message, buf, &mut object, depth)?;
        let fields = &self.schema.messages[message].fields;
        Ok(fields
            .iter()
            .filter_map(|f| object.remove(&f.json_name).map(|v| (f.number, v)))
            .filter(|(_, v)| !v.is_null() && !matches!(v, Value::Array(a) if a.is_empty()))
            .collect())
    }

    /// Raw JSON as a value; a nested Kubernetes protobuf object is decoded in turn.
    fn raw_json(&self, raw: &[u8], depth: usize) -> Result<Value> {
        if raw.is_empty() {
            Ok(Value::Null)
        } else if raw.starts_with(crate::MAGIC) {
            crate::decode_object(self, raw, depth + 1)
        } else {
            serde_json::from_slice(raw).map_err(Error::RawJson)
        }
    }
}

/// Sets a singular scalar, leaving out the zero value of plain omitempty Go fields: Go writes
/// those on the protobuf wire even when zero, but never in JSON.
fn set_scalar(out: &mut Map<String, Value>, field: &Field, value: Value) {
    if field.keep_zero || !is_zero(&value) {
        out.insert(field.json_name.clone(), value);
    } else if out.contains_key(&field.json_name) {
        out.remove(&field.json_name);
    }
}

/// The array under `name`, created when absent; `None` if something else is there.
fn array_at<'m>(out: &'m mut Map<String, Value>, name: &str) -> Option<&'m mut Vec<Value>> {
    if !out.contains_key(name) {
        out.insert(name.to_owned(), Value::Array(Vec::new()));
    }
    match out.get_mut(name) {
        Some(Value::Array(array)) => Some(array),
        _ => None,
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn zero(scalar: Scalar) -> Value {
    match scalar {
        Scalar::Bool => Value::Bool(false),
        Scalar::String | Scalar::Bytes => Value::String(String::new()),
        _ => Value::from(0),
    }
}

fn is_packable(scalar: Scalar) -> bool {
    !matches!(scalar, Scalar::String | Scalar::Bytes)
}

/// Expands a packed repeated scalar.
fn unpack(scalar: Scalar, mut packed: &[u8], array: &mut Vec<Value>) -> Result<()> {
    let malformed = || Error::Malformed("truncated packed field");
    while !packed.is_empty() {
        let value = match scalar {
            Scalar::Fixed32 | Scalar::Sfixed32 | Scalar::Float => {
                let (head, tail) = packed.split_first_chunk::<4>().ok_or_else(malformed)?;
                packed = tail;
                wire::Value::Fixed32(u32::from_le_bytes(*head))
            }
            Scalar::Fixed64 | Scalar::Sfixed64 | Scalar::Double => {
                let (head, tail) = packed.split_first_chunk::<8>().ok_or_else(malformed)?;
                packed = tail;
                wire::Value::Fixed64(u64::from_le_bytes(*head))
            }
            _ => wire::Value::Varint(wire::read_varint(&mut packed)?),
        };
        array.push(
            scalar_value(scalar, value).ok_or(Error::Malformed("packed field of wrong type"))??,
        );
    }
    Ok(())
}

/// A scalar's JSON value; `None` when the wire type does not fit the declared type.
/// The `as` casts truncate exactly as protobuf specifies for 32-bit varints.
fn scalar_value(scalar: Scalar, value: wire::Value<'_>) -> Option<Result<Value>> {
    use wire::Value as W;
    let json = match (scalar, value) {
        (Scalar::Bool, W::Varint(v)) => Value::Bool(v != 0),
        (Scalar::Int32 | Scalar::Enum, W::Varint(v)) => Value::from(v as i32),
        (Scalar::Int64, W::Varint(v)) => Value::from(v as i64),
        (Scalar::Uint32, W::Varint(v)) => Value::from(v as u32),
        (Scalar::Uint64, W::Varint(v)) => Value::from(v),
        (Scalar::Sint32, W::Varint(v)) => Value::from(((v >> 1) as i32) ^ -((v & 1) as i32)),
        (Scalar::Sint64, W::Varint(v)) => Value::from(((v >> 1) as i64) ^ -((v & 1) as i64)),
        (Scalar::Fixed32, W::Fixed32(v)) => Value::from(v),
        (Scalar::Sfixed32, W::Fixed32(v)) => Value::from(v as i32),
        (Scalar::Fixed64, W::Fixed64(v)) => Value::from(v),
        (Scalar::Sfixed64, W::Fixed64(v)) => Value::from(v as i64),
        (Scalar::Float, W::Fixed32(v)) => return Some(float(f64::from(f32::from_bits(v)))),
        (Scalar::Double, W::Fixed64(v)) => return Some(float(f64::from_bits(v))),
        (Scalar::String, W::Bytes(b)) => Value::String(lossy(b)),
        (Scalar::Bytes, W::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        _ => return None,
    };
    Some(Ok(json))
}

fn float(value: f64) -> Result<Value> {
    Number::from_f64(value)
        .map(Value::Number)
        .ok_or(Error::NonFiniteFloat)
}

/// Go's JSON encoder replaces invalid UTF-8 with U+FFFD; so does this.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
