//! The event type and the validation of incoming event bodies (the article's v2 bug fix).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// Built as the article's v1 (cargo feature `article-v1`, the image `collector:v1`): events with
/// an empty `source` are stored instead of refused. That is the bug the article's v2 fixes, kept
/// buildable so the walkthrough's rolling update from v1 to v2 changes something one can see.
pub const ARTICLE_V1: bool = cfg!(feature = "article-v1");

/// Longest `source` or `action` accepted, so one client cannot store megabytes per row.
pub const MAX_FIELD_LEN: usize = 256;

/// An event as stored: the server assigned `id` and `time`, the client only says who did what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Server-assigned, strictly increasing in insertion order.
    pub id: i64,
    /// Who did it.
    pub source: String,
    /// What they did.
    pub action: String,
    /// When the server stored it (UTC, microsecond precision).
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
}

/// An event accepted for storage but not yet given an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Who did it.
    pub source: String,
    /// What they did.
    pub action: String,
    /// Stamped by the server at ingestion, never taken from the client.
    pub time: DateTime<Utc>,
}

/// Why a body was refused; `field` names the offending field as a JSON path (`[2].source`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEvent {
    /// The body is not JSON at all.
    #[error("body is not valid JSON: {0}")]
    Malformed(String),
    /// The body is JSON but neither an object nor an array of objects.
    #[error("{field}: expected an event object")]
    NotAnObject {
        /// Where the non-object was found.
        field: String,
    },
    /// A batch with no events in it stores nothing and is almost surely a client bug.
    #[error("batch is empty")]
    EmptyBatch,
    /// More events than MAX_BATCH_SIZE.
    #[error("batch has {len} events, more than the maximum of {max}")]
    BatchTooLarge {
        /// Events in the batch.
        len: usize,
        /// The configured MAX_BATCH_SIZE.
        max: usize,
    },
    /// A required field is absent or null.
    #[error("{field} is required")]
    Missing {
        /// Path of the missing field.
        field: String,
    },
    /// A field is present but not a string.
    #[error("{field} must be a string")]
    NotAString {
        /// Path of the field.
        field: String,
    },
    /// A field is an empty (or all-whitespace) string: the bug the article's v2 fixed.
    #[error("{field} must not be empty")]
    Empty {
        /// Path of the field.
        field: String,
    },
    /// A field is longer than MAX_FIELD_LEN bytes.
    #[error("{field} is longer than {MAX_FIELD_LEN} bytes")]
    TooLong {
        /// Path of the field.
        field: String,
    },
    /// A field the server does not accept, such as a client-chosen `id` or `time`.
    #[error("{field} is not a known field (the server sets id and time)")]
    Unknown {
        /// Path of the field.
        field: String,
    },
}

impl InvalidEvent {
    /// The JSON path of the offending field, if one field is to blame.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::NotAnObject { field }
            | Self::Missing { field }
            | Self::NotAString { field }
            | Self::Empty { field }
            | Self::TooLong { field }
            | Self::Unknown { field } => Some(field),
            Self::Malformed(_) | Self::EmptyBatch | Self::BatchTooLarge { .. } => None,
        }
    }
}

/// What a POST body held: one event or a batch; the answer mirrors the shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A single JSON object.
    One(NewEvent),
    /// A JSON array of objects.
    Batch(Vec<NewEvent>),
}

impl Incoming {
    /// All events, in body order.
    pub fn into_events(self) -> Vec<NewEvent> {
        match self {
            Self::One(e) => vec![e],
            Self::Batch(v) => v,
        }
    }
}

/// Parses and validates a body; either every event is valid or none is stored.
pub fn parse_body(
    body: &[u8],
    max_batch: usize,
    now: DateTime<Utc>,
) -> Result<Incoming, InvalidEvent> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| InvalidEvent::Malformed(e.to_string()))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(InvalidEvent::EmptyBatch);
            }
            if items.len() > max_batch {
                return Err(InvalidEvent::BatchTooLarge {
                    len: items.len(),
                    max: max_batch,
                });
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| parse_one(v, &format!("[{i}]."), now))
                .collect::<Result<Vec<_>, _>>()
                .map(Incoming::Batch)
        }
        other => parse_one(&other, "", now).map(Incoming::One),
    }
}

fn parse_one(value: &Value, prefix: &str, now: DateTime<Utc>) -> Result<NewEvent, InvalidEvent> {
    let Value::Object(map) = value else {
        let field = if prefix.is_empty() {
            "body".to_string()
        } else {
            prefix.trim_end_matches('.').to_string()
        };
        return Err(InvalidEvent::NotAnObject { field });
    };
    if let Some(key) = map.keys().find(|k| *k != "source" && *k != "action") {
        return Err(InvalidEvent::Unknown {
            field: format!("{prefix}{key}"),
        });
    }
    let source = string_field(map, "source", prefix)?;
    let action = string_field(map, "action", prefix)?;
    Ok(NewEvent {
        source,
        action,
        time: now,
    })
}

fn string_field(
    map: &serde_json::Map<String, Value>,
    name: &str,
    prefix: &str,
) -> Result<String, InvalidEvent> {
    let field = || format!("{prefix}{name}");
    match map.get(name) {
        None | Some(Value::Null) => Err(InvalidEvent::Missing { field: field() }),
        Some(Value::String(s)) if s.trim().is_empty() && !(ARTICLE_V1 && name == "source") => {
            Err(InvalidEvent::Empty { field: field() })
        }
        Some(Value::String(s)) if s.len() > MAX_FIELD_LEN => {
            Err(InvalidEvent::TooLong { field: field() })
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(InvalidEvent::NotAString { field: field() }),
    }
}

/// Times go out as RFC 3339 in UTC with microseconds, the precision both backends keep.
fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// Drops sub-microsecond precision so that what the server answers equals what it later reads back.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn single_object_parses_as_one_event() {
        let got = parse_body(br#"{"source":"qa","action":"run"}"#, 10, now()).unwrap();
        assert!(matches!(got, Incoming::One(e) if e.source == "qa" && e.action == "run"));
    }

    #[test]
    #[cfg(not(feature = "article-v1"))]
    fn empty_source_is_refused_naming_the_field() {
        let err = parse_body(br#"{"source":"  ","action":"run"}"#, 10, now()).unwrap_err();
        assert_eq!(err.field(), Some("source"));
    }

    #[test]
    #[cfg(feature = "article-v1")]
    fn the_articles_v1_stores_an_empty_source_but_still_refuses_an_empty_action() {
        let got = parse_body(br#"{"source":"","action":"run"}"#, 10, now()).unwrap();
        assert!(matches!(got, Incoming::One(e) if e.source.is_empty()));
        let err = parse_body(br#"{"source":"qa","action":" "}"#, 10, now()).unwrap_err();
        assert_eq!(err.field(), Some("action"));
    }

    #[test]
    fn one_bad_event_in_a_batch_names_its_index() {
        let err = parse_body(
            br#"[{"source":"a","action":"b"},{"source":"a"}]"#,
            10,
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            InvalidEvent::Missing {
                field: "[1].action".into()
            }
        );
    }

    #[test]
    fn client_chosen_time_is_refused() {
        let err = parse_body(br#"{"source":"a","action":"b","time":"x"}"#, 10, now()).unwrap_err();
        assert_eq!(err.field(), Some("time"));
    }

    #[test]
    fn batch_over_the_limit_is_refused() {
        let err = parse_body(
            br#"[{"source":"a","action":"b"},{"source":"a","action":"b"}]"#,
            1,
            now(),
        )
        .unwrap_err();
        assert_eq!(err, InvalidEvent::BatchTooLarge { len: 2, max: 1 });
    }

    #[test]
    fn non_string_and_overlong_fields_are_refused() {
        let err = parse_body(br#"{"source":1,"action":"b"}"#, 1, now()).unwrap_err();
        assert_eq!(
            err,
            InvalidEvent::NotAString {
                field: "source".into()
            }
        );
        let long = format!(
            r#"{{"source":"a","action":"{}"}}"#,
            "x".repeat(MAX_FIELD_LEN + 1)
        );
        let err = parse_body(long.as_bytes(), 1, now()).unwrap_err();
        assert_eq!(
            err,
            InvalidEvent::TooLong {
                field: "action".into()
            }
        );
    }
}
