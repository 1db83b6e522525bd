//! Kubernetes protobuf bodies to and from the JSON the same object has on the JSON wire.
//!
//! kubectl's typed clients send `application/vnd.kubernetes.protobuf` bodies and ask for the
//! same in return; skiff works on JSON, so the HTTP edge turns such a body into JSON with
//! [`decode`], carries on as if the client had sent JSON, and encodes the answer with
//! [`encode`] (or a watch event with [`encode_watch_event`]) when the client prefers protobuf.
//!
//! The wire structure comes from the upstream `generated.proto` files vendored under `proto/`
//! (compiled into the binary by build.rs); what the Go types add on top — JSON names, inlined
//! embedded structs, pointer versus omitempty fields — comes from `src/fields.txt`, generated
//! from the Go struct tags by `tools/gen_fields.py`. Types with a custom Go JSON form (Time,
//! Quantity, IntOrString, RawExtension, ...) are rendered by hand in `special.rs`.

mod decode;
mod encode;
#[cfg(test)]
mod roundtrip;
mod schema;
mod special;
mod wire;

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::decode::Decoder;
use crate::encode::Encoder;
use crate::schema::Schema;

/// The media type of Kubernetes protobuf bodies, as sent in `Content-Type`.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf object starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The media type of a protobuf watch stream: length-prefixed `metav1.WatchEvent` frames.
pub const WATCH_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";

/// Why a body could not be decoded. All but [`Error::Schema`] are the client's fault (a 400 or
/// 415 at the HTTP edge).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body lacks the `k8s\0` prefix, so it is not a Kubernetes protobuf object.
    #[error("body does not start with the Kubernetes protobuf prefix k8s\\0")]
    MissingMagic,
    /// The bytes do not follow the protobuf wire format.
    #[error("malformed protobuf: {0}")]
    Malformed(&'static str),
    /// A field's wire type contradicts the type its schema declares.
    #[error("field {field} of {message} has a wire type that does not match its schema")]
    WireType {
        /// Full proto name of the message holding the field.
        message: String,
        /// Field number.
        field: u32,
    },
    /// The envelope names a content encoding (such as gzip) that Kubernetes never uses.
    #[error("unsupported content encoding {0:?}")]
    ContentEncoding(String),
    /// The envelope's apiVersion and kind name no type this crate has a schema for.
    #[error("no protobuf schema for kind {kind:?} in {api_version:?}")]
    UnknownKind {
        /// apiVersion from the envelope.
        api_version: String,
        /// kind from the envelope.
        kind: String,
    },
    /// Messages nest deeper than [`MAX_DEPTH`]; refused to keep the stack bounded.
    #[error("objects nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A RawExtension, FieldsV1 or JSON field holds bytes that are not JSON.
    #[error("embedded raw JSON is invalid")]
    RawJson(#[source] serde_json::Error),
    /// A Time or MicroTime lies outside what RFC 3339 can express.
    #[error("time out of range: {seconds}s {nanos}ns")]
    TimeOutOfRange {
        /// Seconds since the Unix epoch.
        seconds: i64,
        /// Nanoseconds within the second.
        nanos: i32,
    },
    /// A float or double is NaN or infinite, which JSON cannot carry.
    #[error("non-finite floating point number")]
    NonFiniteFloat,
    /// A JSON value does not have the type its protobuf field declares (encoding only; the
    /// server's own objects are validated, so this is a server defect when it happens).
    #[error("JSON field {field:?} of {message} does not fit its protobuf type")]
    JsonType {
        /// Full proto name of the message holding the field.
        message: String,
        /// JSON name of the field; empty when the value itself is not an object.
        field: String,
    },
    /// A Time or MicroTime in JSON is not RFC 3339.
    #[error("time {0:?} is not RFC 3339")]
    BadTime(String),
    /// A bytes field in JSON is not standard base64.
    #[error("bytes field is not base64")]
    BadBase64,
    /// The JSON object to encode lacks `apiVersion` or `kind`.
    #[error("object has no apiVersion and kind")]
    MissingTypeMeta,
    /// The embedded descriptor set or fields.txt is inconsistent: a build defect, not bad input.
    #[error("embedded protobuf schema failed to load: {0}")]
    Schema(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Deepest message nesting accepted (JSONSchemaProps is recursive, so input could be deep).
pub const MAX_DEPTH: usize = 100;

/// The schema, built on first use and shared by every request after that.
static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();

fn schema() -> Result<&'static Schema> {
    SCHEMA
        .get_or_init(Schema::load)
        .as_ref()
        .map_err(|e| Error::Schema(e.clone()))
}

/// Builds the schema now, so the first protobuf request does not pay for it (a few ms).
pub fn preload() -> Result<()> {
    schema().map(|_| ())
}

/// Decodes a Kubernetes protobuf object (`k8s\0` + `runtime.Unknown` envelope) into the JSON
/// object the same Kubernetes object is on the JSON wire, `apiVersion` and `kind` included.
pub fn decode(body: &[u8]) -> Result<Value> {
    decode_object(&Decoder::new(schema()?), body, 0)
}

/// True when objects of this apiVersion and kind have a protobuf form: the built-in kinds.
/// Custom resources have none, so a client asking only for protobuf gets 406 for them.
pub fn encodes(api_version: &str, kind: &str) -> bool {
    schema().is_ok_and(|s| message_for(s, api_version, kind).is_some())
}

/// Encodes a JSON object of a built-in kind as a Kubernetes protobuf object: `k8s\0` and a
/// `runtime.Unknown` whose typeMeta names the kind and whose raw bytes are the message.
pub fn encode(object: &Value) -> Result<Vec<u8>> {
    let schema = schema()?;
    let Some(map) = object.as_object() else {
        return Err(Error::MissingTypeMeta);
    };
    let text = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        return Err(Error::MissingTypeMeta);
    };
    let message = message_for(schema, api_version, kind).ok_or_else(|| Error::UnknownKind {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
    })?;
    let mut raw = Vec::new();
    Encoder::new(schema).message(message, map, &mut raw, 0)?;
    let mut type_meta = Vec::new();
    encode::put_bytes(&mut type_meta, 1, api_version.as_bytes());
    encode::put_bytes(&mut type_meta, 2, kind.as_bytes());
    let mut out = Vec::with_capacity(raw.len() + type_meta.len() + 16);
    out.extend_from_slice(MAGIC);
    encode::put_bytes(&mut out, 1, &type_meta);
    encode::put_bytes(&mut out, 2, &raw);
    // contentEncoding and contentType: empty, written as Go's non-nullable strings are.
    encode::put_bytes(&mut out, 3, b"");
    encode::put_bytes(&mut out, 4, b"");
    Ok(out)
}

/// One frame of a protobuf watch stream, as kube-apiserver writes it: a 4-byte big-endian
/// length, then `metav1.WatchEvent{type, object: RawExtension{raw: <encoded object>}}`
/// without an envelope of its own (the stream serializer is the raw one; only the object
/// inside carries `k8s\0` and its kind).
pub fn encode_watch_event(event_type: &str, object: &Value) -> Result<Vec<u8>> {
    let object = encode(object)?;
    let mut raw_extension = Vec::with_capacity(object.len() + 8);
    encode::put_bytes(&mut raw_extension, 1, &object);
    let mut event = Vec::with_capacity(raw_extension.len() + event_type.len() + 8);
    encode::put_bytes(&mut event, 1, event_type.as_bytes());
    encode::put_bytes(&mut event, 2, &raw_extension);
    let len = u32::try_from(event.len()).map_err(|_| Error::Malformed("frame over 4 GiB"))?;
    let mut frame = Vec::with_capacity(event.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&event);
    Ok(frame)
}

/// Reads one watch frame's event (the bytes after the length prefix): its type and object.
/// The inverse of [`encode_watch_event`], for clients and tests.
pub fn decode_watch_event(event: &[u8]) -> Result<(String, Value)> {
    let decoder = Decoder::new(schema()?);
    let (mut event_type, mut object) = (String::new(), Value::Null);
    for item in wire::Fields::new(event) {
        match item? {
            (1, wire::Value::Bytes(b)) => event_type = String::from_utf8_lossy(b).into_owned(),
            (2, wire::Value::Bytes(raw_extension)) => {
                for item in wire::Fields::new(raw_extension) {
                    if let (1, wire::Value::Bytes(raw)) = item? {
                        object = decode_object(&decoder, raw, 0)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok((event_type, object))
}

/// Decodes one enveloped object; also used for objects nested in a RawExtension.
fn decode_object(decoder: &Decoder<'_>, body: &[u8], depth: usize) -> Result<Value> {
    let envelope = body.strip_prefix(MAGIC).ok_or(Error::MissingMagic)?;
    let unknown = decoder.envelope(envelope)?;
    if !unknown.content_encoding.is_empty() {
        return Err(Error::ContentEncoding(unknown.content_encoding));
    }
    let message =
        message_for(decoder.schema(), &unknown.api_version, &unknown.kind).ok_or_else(|| {
            Error::UnknownKind {
                api_version: unknown.api_version.clone(),
                kind: unknown.kind.clone(),
            }
        })?;
    let mut object = Map::new();
    object.insert("apiVersion".to_owned(), Value::String(unknown.api_version));
    object.insert("kind".to_owned(), Value::String(unknown.kind));
    decoder.fill(message, unknown.raw, &mut object, depth)?;
    Ok(Value::Object(object))
}

/// The proto message for an apiVersion and kind. Kubernetes registers the meta/v1 option
/// types (DeleteOptions, ...) in every group version, hence the fallback to meta/v1.
fn message_for(schema: &Schema, api_version: &str, kind: &str) -> Option<usize> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let package = match group {
        "" => "k8s.io.api.core".to_owned(),
        "apiextensions.k8s.io" => {
            "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions".to_owned()
        }
        "meta.k8s.io" => "k8s.io.apimachinery.pkg.apis.meta".to_owned(),
        "internal.apiserver.k8s.io" => "k8s.io.api.apiserverinternal".to_owned(),
        // Only built-in groups have protobuf schemas; a custom group must not borrow one
        // because its first label happens to match (say `apps.example.com`).
        g if g.contains('.') && !g.ends_with(".k8s.io") => return None,
        g => format!("k8s.io.api.{}", g.split('.').next().unwrap_or(g)),
    };
    schema
        .message(&format!("{package}.{version}.{kind}"))
        .or_else(|| schema.message(&format!("k8s.io.apimachinery.pkg.apis.meta.v1.{kind}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Special;

    /// Every vendored API package, by the apiVersion clients send for it.
    const API_VERSIONS: &[(&str, &str)] = &[
        ("v1", "k8s.io.api.core.v1"),
        (
            "admissionregistration.k8s.io/v1",
            "k8s.io.api.admissionregistration.v1",
        ),
        ("apps/v1", "k8s.io.api.apps.v1"),
        ("authentication.k8s.io/v1", "k8s.io.api.authentication.v1"),
        ("authorization.k8s.io/v1", "k8s.io.api.authorization.v1"),
        ("autoscaling/v1", "k8s.io.api.autoscaling.v1"),
        ("autoscaling/v2", "k8s.io.api.autoscaling.v2"),
        ("batch/v1", "k8s.io.api.batch.v1"),
        ("certificates.k8s.io/v1", "k8s.io.api.certificates.v1"),
        ("coordination.k8s.io/v1", "k8s.io.api.coordination.v1"),
        ("discovery.k8s.io/v1", "k8s.io.api.discovery.v1"),
        ("events.k8s.io/v1", "k8s.io.api.events.v1"),
        (
            "flowcontrol.apiserver.k8s.io/v1",
            "k8s.io.api.flowcontrol.v1",
        ),
        ("networking.k8s.io/v1", "k8s.io.api.networking.v1"),
        ("node.k8s.io/v1", "k8s.io.api.node.v1"),
        ("policy/v1", "k8s.io.api.policy.v1"),
        ("rbac.authorization.k8s.io/v1", "k8s.io.api.rbac.v1"),
        ("scheduling.k8s.io/v1", "k8s.io.api.scheduling.v1"),
        ("storage.k8s.io/v1", "k8s.io.api.storage.v1"),
        (
            "apiextensions.k8s.io/v1",
            "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1",
        ),
        ("meta.k8s.io/v1", "k8s.io.apimachinery.pkg.apis.meta.v1"),
    ];

    #[test]
    fn every_object_kind_of_the_vendored_groups_is_found_by_api_version() {
        let schema = schema().expect("schema");
        let mut found = 0;
        for message in &schema.messages {
            let Some((package, kind)) = message.name.rsplit_once('.') else {
                continue;
            };
            // Top-level kinds are the messages whose field 1 is `metadata`.
            let is_kind = message.field(1).is_some_and(|f| f.json_name == "metadata");
            if !is_kind || package.starts_with("k8s.io.apimachinery.pkg.apis.meta") {
                continue;
            }
            let (api_version, _) = API_VERSIONS
                .iter()
                .find(|(_, p)| *p == package)
                .unwrap_or_else(|| panic!("no apiVersion for package {package}"));
            let index = message_for(schema, api_version, kind);
            assert_eq!(index.map(|i| &schema.messages[i].name), Some(&message.name));
            found += 1;
        }
        assert!(found > 100, "only {found} kinds");
    }

    #[test]
    fn meta_option_kinds_resolve_in_any_group() {
        let schema = schema().expect("schema");
        for (api_version, _) in API_VERSIONS {
            let index = message_for(schema, api_version, "DeleteOptions").expect("DeleteOptions");
            assert_eq!(
                schema.messages[index].name,
                "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"
            );
        }
    }

    #[test]
    fn only_go_named_slices_are_treated_as_arrays() {
        let schema = schema().expect("schema");
        let mut slices: Vec<&str> = schema
            .messages
            .iter()
            .filter(|m| m.special == Some(Special::Slice))
            .map(|m| m.name.as_str())
            .collect();
        slices.sort_unstable();
        assert_eq!(
            slices,
            [
                "k8s.io.api.authentication.v1.ExtraValue",
                "k8s.io.api.authorization.v1.ExtraValue",
                "k8s.io.api.certificates.v1.ExtraValue",
                "k8s.io.apimachinery.pkg.apis.meta.v1.Verbs",
            ]
        );
    }
}
