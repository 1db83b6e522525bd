//! The decoding schema: the vendored proto descriptors joined with the Go-side JSON facts.

use std::collections::HashMap;

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind as ProtoKind, MessageDescriptor};

/// Descriptor set compiled by build.rs from the vendored `proto/` tree.
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s.fds"));

/// JSON names, pointer-ness, omitempty and inlining per field, from tools/gen_fields.py.
static FIELDS: &str = include_str!("fields.txt");

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";
const APIEXTENSIONS: &str = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1";

/// Every message of the descriptor set, prepared for decoding without any name look-up.
pub(crate) struct Schema {
    pub(crate) messages: Vec<Message>,
    by_name: HashMap<String, usize>,
}

/// One proto message.
pub(crate) struct Message {
    pub(crate) name: String,
    /// Set for types whose Go JSON form is not an object of their fields.
    pub(crate) special: Option<Special>,
    /// Sorted by number.
    pub(crate) fields: Vec<Field>,
}

/// Types with a custom Go `MarshalJSON`, which the decoder renders by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    /// metav1.Time: RFC 3339 in seconds, `null` when zero.
    Time,
    /// metav1.MicroTime: RFC 3339 with microseconds, `null` when zero.
    MicroTime,
    /// metav1.Duration: a Go duration string.
    Duration,
    /// resource.Quantity: its canonical string.
    Quantity,
    /// intstr.IntOrString: a JSON number or string.
    IntOrString,
    /// runtime.RawExtension, metav1.FieldsV1, apiextensions JSON: field 1 holds raw JSON.
    RawJson,
    /// A Go named slice (metav1.Verbs, ExtraValue): field 1 `items` is the array itself.
    /// Marked in fields.txt; not guessed from shape, since DownwardAPIProjection has the
    /// same shape but is a struct.
    Slice,
    /// JSONSchemaPropsOrArray: a schema object or an array of schemas.
    SchemaOrArray,
    /// JSONSchemaPropsOrBool: a schema object or a boolean.
    SchemaOrBool,
    /// JSONSchemaPropsOrStringArray: a schema object or an array of strings.
    SchemaOrStringArray,
}

/// One field of a message, with the JSON facts already applied.
pub(crate) struct Field {
    pub(crate) number: u32,
    pub(crate) json_name: String,
    pub(crate) kind: Kind,
    pub(crate) repeated: bool,
    /// The Go field is a pointer or lacks omitempty, so a zero value still appears in JSON.
    pub(crate) keep_zero: bool,
    /// The Go field is a slice, map or pointer without omitempty: Go's JSON has `null` for it
    /// when unset, which protobuf expresses by leaving the field out.
    pub(crate) null_when_absent: bool,
    /// The Go field is a pointer: unset is nil, not the zero value (the encoder writes a
    /// non-pointer metav1.Time that is `null` in JSON as the zero time, as Go does).
    pub(crate) pointer: bool,
    /// The Go field is embedded with `json:",inline"`: its fields belong to the parent object.
    pub(crate) inline: bool,
}

/// Scalar proto types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Float,
    Double,
    String,
    Bytes,
    Enum,
}

/// What a field holds.
pub(crate) enum Kind {
    Scalar(Scalar),
    /// Index into [`Schema::messages`].
    Message(usize),
    /// A proto map; entries are messages with the key as field 1 and the value as field 2.
    Map {
        key: Scalar,
        value: Box<Kind>,
    },
}

/// The Go-side facts about one field, as read from fields.txt.
struct GoField<'a> {
    json_name: Option<&'a str>,
    pointer: bool,
    keep: bool,
    inline: bool,
    /// On field number 0: the message itself is a Go named slice.
    slice: bool,
}

impl Schema {
    /// Decodes the embedded descriptor set and joins it with fields.txt.
    pub(crate) fn load() -> Result<Self, String> {
        let pool =
            DescriptorPool::decode(DESCRIPTORS).map_err(|e| format!("descriptor set: {e}"))?;
        let go_fields = parse_fields(FIELDS)?;
        let by_name: HashMap<String, usize> = pool
            .all_messages()
            .enumerate()
            .map(|(i, m)| (m.full_name().to_owned(), i))
            .collect();
        let mut messages = Vec::with_capacity(by_name.len());
        for message in pool.all_messages() {
            let mut fields = Vec::new();
            for field in message.fields() {
                let go = go_fields.get(&(message.full_name(), field.number()));
                let kind = kind_of(&field, &by_name)?;
                if go.is_some_and(|g| g.inline) && !matches!(kind, Kind::Message(_)) {
                    return Err(format!(
                        "{}.{}: inline field is not a message",
                        message.full_name(),
                        field.name()
                    ));
                }
                fields.push(Field {
                    number: field.number(),
                    json_name: go
                        .and_then(|g| g.json_name)
                        .unwrap_or(field.name())
                        .to_owned(),
                    kind,
                    repeated: field.is_list(),
                    keep_zero: go.is_some_and(|g| g.pointer || g.keep),
                    null_when_absent: go.is_some_and(|g| {
                        g.keep && !g.inline && (g.pointer || field.is_list() || field.is_map())
                    }),
                    pointer: go.is_some_and(|g| g.pointer),
                    inline: go.is_some_and(|g| g.inline),
                });
            }
            fields.sort_by_key(|f| f.number);
            let slice = go_fields
                .get(&(message.full_name(), 0))
                .is_some_and(|g| g.slice);
            let special = if slice {
                Some(Special::Slice)
            } else {
                special_of(&message)
            };
            messages.push(Message {
                name: message.full_name().to_owned(),
                special,
                fields,
            });
        }
        for (message, number) in go_fields.keys() {
            let known = by_name
                .get(*message)
                .is_some_and(|&i| *number == 0 || messages[i].field(*number).is_some());
            if !known {
                return Err(format!(
                    "fields.txt names {message} field {number}, which the protos lack"
                ));
            }
        }
        Ok(Self { messages, by_name })
    }

    /// The index of a message by its full proto name.
    pub(crate) fn message(&self, full_name: &str) -> Option<usize> {
        self.by_name.get(full_name).copied()
    }
}

impl Message {
    pub(crate) fn field(&self, number: u32) -> Option<&Field> {
        self.fields
            .binary_search_by_key(&number, |f| f.number)
            .ok()
            .map(|i| &self.fields[i])
    }
}

/// Parses fields.txt into `(message, number) -> facts`.
fn parse_fields(text: &str) -> Result<HashMap<(&str, u32), GoField<'_>>, String> {
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let parts: Vec<&str> = line.split(' ').collect();
        let [message, number, json_name, flags] = parts[..] else {
            return Err(format!("fields.txt: bad line {line:?}"));
        };
        let number = number
            .parse()
            .map_err(|_| format!("fields.txt: bad number in {line:?}"))?;
        let go = GoField {
            json_name: (json_name != "-").then_some(json_name),
            pointer: flags.contains('p'),
            keep: flags.contains('k'),
            inline: flags.contains('i'),
            slice: flags.contains('s'),
        };
        out.insert((message, number), go);
    }
    Ok(out)
}

fn kind_of(field: &FieldDescriptor, by_name: &HashMap<String, usize>) -> Result<Kind, String> {
    match field.kind() {
        ProtoKind::Message(entry) if field.is_map() => {
            let key = entry.map_entry_key_field();
            let value = entry.map_entry_value_field();
            let Kind::Scalar(key) = kind_of(&key, by_name)? else {
                return Err(format!("{}: map key is not a scalar", field.full_name()));
            };
            Ok(Kind::Map {
                key,
                value: Box::new(kind_of(&value, by_name)?),
            })
        }
        ProtoKind::Message(message) => by_name
            .get(message.full_name())
            .map(|&i| Kind::Message(i))
            .ok_or_else(|| {
                format!(
                    "{}: unknown message {}",
                    field.full_name(),
                    message.full_name()
                )
            }),
        ProtoKind::Double => Ok(Kind::Scalar(Scalar::Double)),
        ProtoKind::Float => Ok(Kind::Scalar(Scalar::Float)),
        ProtoKind::Int32 => Ok(Kind::Scalar(Scalar::Int32)),
        ProtoKind::Int64 => Ok(Kind::Scalar(Scalar::Int64)),
        ProtoKind::Uint32 => Ok(Kind::Scalar(Scalar::Uint32)),
        ProtoKind::Uint64 => Ok(Kind::Scalar(Scalar::Uint64)),
        ProtoKind::Sint32 => Ok(Kind::Scalar(Scalar::Sint32)),
        ProtoKind::Sint64 => Ok(Kind::Scalar(Scalar::Sint64)),
        ProtoKind::Fixed32 => Ok(Kind::Scalar(Scalar::Fixed32)),
        ProtoKind::Fixed64 => Ok(Kind::Scalar(Scalar::Fixed64)),
        ProtoKind::Sfixed32 => Ok(Kind::Scalar(Scalar::Sfixed32)),
        ProtoKind::Sfixed64 => Ok(Kind::Scalar(Scalar::Sfixed64)),
        ProtoKind::Bool => Ok(Kind::Scalar(Scalar::Bool)),
        ProtoKind::String => Ok(Kind::Scalar(Scalar::String)),
        ProtoKind::Bytes => Ok(Kind::Scalar(Scalar::Bytes)),
        ProtoKind::Enum(_) => Ok(Kind::Scalar(Scalar::Enum)),
    }
}

/// Recognises the types whose Go JSON form is custom.
fn special_of(message: &MessageDescriptor) -> Option<Special> {
    let name = message.full_name();
    let (package, short) = name.rsplit_once('.')?;
    let special = match (package, short) {
        (META, "Time") => Special::Time,
        (META, "MicroTime") => Special::MicroTime,
        (META, "Duration") => Special::Duration,
        (META, "FieldsV1") => Special::RawJson,
        ("k8s.io.apimachinery.pkg.api.resource", "Quantity" | "QuantityValue") => Special::Quantity,
        ("k8s.io.apimachinery.pkg.util.intstr", "IntOrString") => Special::IntOrString,
        ("k8s.io.apimachinery.pkg.runtime", "RawExtension") => Special::RawJson,
        (APIEXTENSIONS, "JSON") => Special::RawJson,
        (APIEXTENSIONS, "JSONSchemaPropsOrArray") => Special::SchemaOrArray,
        (APIEXTENSIONS, "JSONSchemaPropsOrBool") => Special::SchemaOrBool,
        (APIEXTENSIONS, "JSONSchemaPropsOrStringArray") => Special::SchemaOrStringArray,
        _ => return None,
    };
    Some(special)
}
