//! Writes the Kubernetes JSON form of an object as protobuf, along the same schema the decoder
//! reads with: the inverse of `decode.rs`.
//!
//! Only what the JSON holds is written (a field absent or `null` in JSON is absent on the
//! wire), which a Go client reads back as the same struct: proto2 leaves a missing field at
//! its zero value, and Go's JSON leaves out the same zero values the decoder drops.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::schema::{Field, Kind, Scalar, Schema, Special};
use crate::{Error, Result, MAX_DEPTH};

/// Encodes JSON values against one [`Schema`].
pub(crate) struct Encoder<'s> {
    schema: &'s Schema,
}

impl<'s> Encoder<'s> {
    pub(crate) fn new(schema: &'s Schema) -> Self {
        Self { schema }
    }

    /// The fields of `object` that message `message` declares, in field-number order (the
    /// order Go's generated marshallers write).
    pub(crate) fn message(
        &self,
        message: usize,
        object: &Map<String, Value>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        for field in &self.schema.messages[message].fields {
            if field.inline {
                // An embedded Go struct: its fields sit in the parent's JSON object.
                let Kind::Message(sub) = field.kind else {
                    continue;
                };
                let mut bytes = Vec::new();
                self.message(sub, object, &mut bytes, depth + 1)?;
                put_bytes(out, field.number, &bytes);
                continue;
            }
            match object.get(&field.json_name) {
                Some(Value::Null) if self.is_plain_time(field) => {
                    // Go's JSON prints a zero non-pointer Time as null; its protobuf writes the
                    // empty Timestamp, which reads back as that zero time.
                    put_bytes(out, field.number, &[]);
                }
                None | Some(Value::Null) => {}
                Some(value) => self.field(message, field, value, out, depth)?,
            }
        }
        Ok(())
    }

    /// One present field: a scalar, a message, a repeated field or a map.
    fn field(
        &self,
        message: usize,
        field: &Field,
        value: &Value,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<()> {
        let mismatch = || self.mismatch(message, field);
        match &field.kind {
            Kind::Map { key, value: kind } => {
                let Value::Object(map) = value else {
                    return Err(mismatch());
                };
                // Go marshals map entries in key order; JSON objects here are already sorted
                // unless serde_json keeps insertion order, so sort to be deterministic.
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (k, v) in entries {
                    let mut entry = Vec::new();
                    let key_value = map_key(*key, k).ok_or_else(mismatch)?;
                    scalar(*key, 1, &key_value, &mut entry).ok_or_else(mismatch)??;
                    match (kind.as_ref(), v) {
                        (_, Value::Null) => {}
                        (Kind::Scalar(s), v) => {
                            scalar(*s, 2, v, &mut entry).ok_or_else(mismatch)??
                        }
                        (Kind::Message(sub), v) => {
                            let bytes = self.value(*sub, v, depth + 1)?;
                            put_bytes(&mut entry, 2, &bytes);
                        }
                        (Kind::Map { .. }, _) => return Err(mismatch()),
                    }
                    put_bytes(out, field.number, &entry);
                }
            }
            _ if field.repeated => {
                let Value::Array(items) = value else {
                    return Err(mismatch());
                };
                for item in items {
                    self.single(message, field, item, out, depth)?;
                }
            }
            _ => self.single(message, field, value, out, depth)?,
        }
        Ok(())
    }

    /// One value of a (possibly repeated) scalar or message field.
    fn single(
        &self,
        message: usize,
        field: &Field,
        value: &Value,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<()> {
        match &field.kind {
            Kind::Scalar(s) => {
                scalar(*s, field.number, value, out).ok_or_else(|| self.mismatch(message, field))?
            }
            Kind::Message(sub) => {
                let bytes = self.value(*sub, value, depth + 1)?;
                put_bytes(out, field.number, &bytes);
                Ok(())
            }
            Kind::Map { .. } => Err(self.mismatch(message, field)),
        }
    }

    /// The bytes of one message: its fields, or the wire form of a special type.
    pub(crate) fn value(&self, message: usize, value: &Value, depth: usize) -> Result<Vec<u8>> {
        if depth >= MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        let mut out = Vec::new();
        match self.schema.messages[message].special {
            None => {
                let Value::Object(object) = value else {
                    return Err(self.not_an_object(message));
                };
                self.message(message, object, &mut out, depth)?;
            }
            Some(kind) => self.special(kind, message, value, &mut out, depth)?,
        }
        Ok(out)
    }

    /// The inverse of the decoder's custom JSON forms.
    fn special(
        &self,
        kind: Special,
        message: usize,
        value: &Value,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<()> {
        let bad = || self.not_an_object(message);
        match kind {
            Special::Time | Special::MicroTime => {
                let text = value.as_str().ok_or_else(bad)?;
                let time = chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|_| Error::BadTime(text.to_owned()))?;
                // Go writes both fields of the non-nullable Timestamp, zeros included.
                put_varint_field(out, 1, time.timestamp() as u64);
                let nanos = if kind == Special::MicroTime {
                    time.timestamp_subsec_micros() * 1000
                } else {
                    0
                };
                put_varint_field(out, 2, u64::from(nanos));
            }
            Special::Duration => {
                // No served kind has a metav1.Duration field (only kubelet's configuration,
                // which is not an API object).
                return Err(bad());
            }
            Special::Quantity => {
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return Err(bad()),
                };
                put_bytes(out, 1, text.as_bytes());
            }
            Special::IntOrString => match value {
                Value::Number(n) => {
                    let int = n
                        .as_i64()
                        .and_then(|i| i32::try_from(i).ok())
                        .ok_or_else(bad)?;
                    put_varint_field(out, 1, 0);
                    put_varint_field(out, 2, int as i64 as u64);
                }
                Value::String(s) => {
                    put_varint_field(out, 1, 1);
                    put_bytes(out, 3, s.as_bytes());
                }
                _ => return Err(bad()),
            },
            Special::RawJson => {
                let raw = serde_json::to_vec(value).map_err(Error::RawJson)?;
                put_bytes(out, 1, &raw);
            }
            Special::Slice => self.field_number(message, 1, value, out, depth)?,
            Special::SchemaOrArray | Special::SchemaOrStringArray => match value {
                Value::Array(_) => self.field_number(message, 2, value, out, depth)?,
                _ => self.field_number(message, 1, value, out, depth)?,
            },
            Special::SchemaOrBool => match value {
                Value::Bool(allows) => put_varint_field(out, 1, u64::from(*allows)),
                _ => {
                    // Go's JSONSchemaPropsOrBool reads a schema as "allowed, with this schema".
                    put_varint_field(out, 1, 1);
                    self.field_number(message, 2, value, out, depth)?;
                }
            },
        }
        Ok(())
    }

    /// Writes `value` as the field with this number of `message`.
    fn field_number(
        &self,
        message: usize,
        number: u32,
        value: &Value,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<()> {
        let field = self.schema.messages[message]
            .field(number)
            .ok_or_else(|| Error::Schema(format!("{} lacks field {number}", self.name(message))))?;
        self.field(message, field, value, out, depth)
    }

    /// A singular metav1.Time or MicroTime field that is not a pointer.
    fn is_plain_time(&self, field: &Field) -> bool {
        let Kind::Message(sub) = field.kind else {
            return false;
        };
        !field.pointer
            && !field.repeated
            && matches!(
                self.schema.messages[sub].special,
                Some(Special::Time | Special::MicroTime)
            )
    }

    fn name(&self, message: usize) -> &str {
        &self.schema.messages[message].name
    }

    fn mismatch(&self, message: usize, field: &Field) -> Error {
        Error::JsonType {
            message: self.name(message).to_owned(),
            field: field.json_name.clone(),
        }
    }

    fn not_an_object(&self, message: usize) -> Error {
        Error::JsonType {
            message: self.name(message).to_owned(),
            field: String::new(),
        }
    }
}

/// A JSON map key as the value of the entry's key field (Kubernetes maps are keyed by
/// strings; integer keys are written as JSON strings).
fn map_key(kind: Scalar, key: &str) -> Option<Value> {
    match kind {
        Scalar::String => Some(Value::String(key.to_owned())),
        Scalar::Bool => key.parse::<bool>().ok().map(Value::Bool),
        _ => key
            .parse::<i64>()
            .ok()
            .map(Value::from)
            .or_else(|| key.parse::<u64>().ok().map(Value::from)),
    }
}

/// Writes one scalar as field `number`; `None` when the JSON value does not fit the type.
fn scalar(kind: Scalar, number: u32, value: &Value, out: &mut Vec<u8>) -> Option<Result<()>> {
    let int = || value.as_i64();
    let uint = || value.as_u64();
    match kind {
        Scalar::Bool => put_varint_field(out, number, u64::from(value.as_bool()?)),
        Scalar::Int32 | Scalar::Enum => {
            let v = i32::try_from(int()?).ok()?;
            // Negative int32 are sign-extended to ten bytes, as protobuf specifies.
            put_varint_field(out, number, i64::from(v) as u64);
        }
        Scalar::Int64 => put_varint_field(out, number, int()? as u64),
        Scalar::Uint32 => put_varint_field(out, number, u64::from(u32::try_from(uint()?).ok()?)),
        Scalar::Uint64 => put_varint_field(out, number, uint()?),
        Scalar::Sint32 => {
            let v = i32::try_from(int()?).ok()?;
            put_varint_field(out, number, u64::from(((v << 1) ^ (v >> 31)) as u32));
        }
        Scalar::Sint64 => {
            let v = int()?;
            put_varint_field(out, number, ((v << 1) ^ (v >> 63)) as u64);
        }
        Scalar::Fixed32 => put_fixed32(out, number, u32::try_from(uint()?).ok()?),
        Scalar::Sfixed32 => put_fixed32(out, number, i32::try_from(int()?).ok()? as u32),
        Scalar::Float => put_fixed32(out, number, (value.as_f64()? as f32).to_bits()),
        Scalar::Fixed64 => put_fixed64(out, number, uint()?),
        Scalar::Sfixed64 => put_fixed64(out, number, int()? as u64),
        Scalar::Double => put_fixed64(out, number, value.as_f64()?.to_bits()),
        Scalar::String => put_bytes(out, number, value.as_str()?.as_bytes()),
        Scalar::Bytes => {
            let text = value.as_str()?;
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(bytes) => put_bytes(out, number, &bytes),
                Err(_) => return Some(Err(Error::BadBase64)),
            }
        }
    }
    Some(Ok(()))
}

/// Appends a base-128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_tag(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, u64::from(number) << 3 | u64::from(wire_type));
}

fn put_varint_field(out: &mut Vec<u8>, number: u32, value: u64) {
    put_tag(out, number, 0);
    put_varint(out, value);
}

fn put_fixed32(out: &mut Vec<u8>, number: u32, value: u32) {
    put_tag(out, number, 5);
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_fixed64(out: &mut Vec<u8>, number: u32, value: u64) {
    put_tag(out, number, 1);
    out.extend_from_slice(&value.to_le_bytes());
}

/// A length-delimited field: a string, bytes or an embedded message.
pub(crate) fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_tag(out, number, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_base_128() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0]),
            (1, &[1]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
            (
                -1i64 as u64,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (value, want) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, want, "{value}");
        }
    }

    #[test]
    fn scalars_refuse_json_of_another_type_or_out_of_range() {
        let cases = [
            (Scalar::Int32, Value::from(i64::from(i32::MAX) + 1)),
            (Scalar::Int32, Value::from("1")),
            (Scalar::Bool, Value::from(1)),
            (Scalar::String, Value::from(true)),
            (Scalar::Uint32, Value::from(-1)),
            (Scalar::Int64, Value::from(1.5)),
        ];
        for (kind, value) in cases {
            let mut out = Vec::new();
            assert!(
                scalar(kind, 1, &value, &mut out).is_none(),
                "{kind:?} {value}"
            );
        }
        let mut out = Vec::new();
        assert!(matches!(
            scalar(Scalar::Bytes, 1, &Value::from("%%"), &mut out),
            Some(Err(Error::BadBase64))
        ));
    }

    #[test]
    fn signed_scalars_use_protobuf_encodings() {
        let mut out = Vec::new();
        scalar(Scalar::Sint32, 1, &Value::from(-1), &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(out, [0x08, 0x01]);
        let mut out = Vec::new();
        scalar(Scalar::Int32, 1, &Value::from(-1), &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(out.len(), 11, "negative int32 take ten varint bytes");
    }
}
