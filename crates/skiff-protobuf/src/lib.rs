//! Decodes Kubernetes protobuf request bodies into the JSON the same object has on the JSON wire.
//!
//! kubectl's typed clients send `application/vnd.kubernetes.protobuf` bodies; skiff works on
//! JSON, so the HTTP edge turns such a body into JSON with [`decode`] and carries on as if the
//! client had sent JSON. Responses stay JSON, which those clients accept.
//!
//! The wire structure comes from the upstream `generated.proto` files vendored under `proto/`
//! (compiled into the binary by build.rs); what the Go types add on top — JSON names, inlined
//! embedded structs, pointer versus omitempty fields — comes from `src/fields.txt`, generated
//! from the Go struct tags by `tools/gen_fields.py`. Types with a custom Go JSON form (Time,
//! Quantity, IntOrString, RawExtension, ...) are rendered by hand in `special.rs`.

mod decode;
mod schema;
mod special;
mod wire;

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::decode::Decoder;
use crate::schema::Schema;

/// The media type of Kubernetes protobuf bodies, as sent in `Content-Type`.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf object starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

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
