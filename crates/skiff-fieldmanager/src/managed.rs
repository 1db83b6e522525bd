//! `metadata.managedFields` as upstream keeps it in memory: one field set per manager
//! identity (manager, operation, apiVersion for updates, subresource), with its time.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::set::Set;
use crate::{Error, Result};

/// How a manager last wrote its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Server-side apply: the set is what the manager applied.
    Apply,
    /// Any other write: the set is what the manager changed.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// A manager identity, as upstream's `BuildManagerIdentifier`: appliers are one manager
/// whatever apiVersion they apply with; updaters are one per apiVersion.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ManagerKey {
    /// The `fieldManager` (or user-agent derived) name.
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// The apiVersion for Update, empty for Apply.
    pub api_version: String,
    /// The subresource written through, empty for the main resource.
    pub subresource: String,
}

impl ManagerKey {
    /// The identity of a manager writing with `operation` through `subresource`.
    pub fn new(manager: &str, operation: Operation, api_version: &str, subresource: &str) -> Self {
        ManagerKey {
            manager: manager.to_owned(),
            operation,
            api_version: if operation == Operation::Apply {
                String::new()
            } else {
                api_version.to_owned()
            },
            subresource: subresource.to_owned(),
        }
    }
}

/// One manager's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerEntry {
    /// The owned fields.
    pub set: Set,
    /// The apiVersion the set is expressed in.
    pub api_version: String,
    /// When the manager last changed the object (RFC 3339), if known.
    pub time: Option<String>,
}

/// All managers of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagedFields {
    pub(crate) entries: BTreeMap<ManagerKey, ManagerEntry>,
}

impl ManagedFields {
    /// The managers and their entries.
    pub fn entries(&self) -> &BTreeMap<ManagerKey, ManagerEntry> {
        &self.entries
    }

    /// True when no manager owns anything.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decodes `metadata.managedFields` with upstream's checks.
    pub fn decode(v: &Value) -> Result<Self> {
        let bad = |s: String| Error::InvalidManagedFields(s);
        let mut out = ManagedFields::default();
        let Value::Array(items) = v else {
            return match v {
                Value::Null => Ok(out),
                _ => Err(bad("must be a list".into())),
            };
        };
        for (i, item) in items.iter().enumerate() {
            let Value::Object(m) = item else {
                return Err(bad(format!("entry {i} must be an object")));
            };
            let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
            let operation = match s("operation") {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return Err(bad("operation must be `Apply` or `Update`".into())),
            };
            if s("apiVersion").is_empty() {
                return Err(bad("apiVersion must not be empty".into()));
            }
            match s("fieldsType") {
                "FieldsV1" => {}
                "" => {
                    return Err(bad(format!(
                        "missing fieldsType in managed fields entry {i}"
                    )))
                }
                other => {
                    return Err(bad(format!(
                        "invalid fieldsType {other:?} in managed fields entry {i}"
                    )))
                }
            }
            let set = match m.get("fieldsV1") {
                None | Some(Value::Null) => Set::new(),
                Some(f) => Set::from_fields_v1(f)?,
            };
            let key = ManagerKey::new(s("manager"), operation, s("apiVersion"), s("subresource"));
            let time = m.get("time").and_then(Value::as_str).map(str::to_owned);
            out.entries.insert(
                key,
                ManagerEntry {
                    set,
                    api_version: s("apiVersion").to_owned(),
                    time,
                },
            );
        }
        Ok(out)
    }

    /// Encodes as `metadata.managedFields`, sorted as upstream (operation, time, manager,
    /// apiVersion, subresource); `None` when there is no manager, so the field is omitted.
    pub fn encode(&self) -> Option<Value> {
        if self.entries.is_empty() {
            return None;
        }
        let mut list: Vec<(&ManagerKey, &ManagerEntry)> = self.entries.iter().collect();
        list.sort_by(|(pk, pe), (qk, qe)| {
            pk.operation
                .cmp(&qk.operation)
                .then_with(|| seconds(pe.time.as_deref()).cmp(&seconds(qe.time.as_deref())))
                .then_with(|| pk.manager.cmp(&qk.manager))
                .then_with(|| pe.api_version.cmp(&qe.api_version))
                .then_with(|| pk.subresource.cmp(&qk.subresource))
        });
        Some(Value::Array(
            list.into_iter().map(|(k, e)| entry_json(k, e)).collect(),
        ))
    }
}

/// Seconds since the epoch of an RFC 3339 time; absent or unreadable times sort first.
pub(crate) fn seconds(t: Option<&str>) -> i64 {
    t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

/// One wire entry, fields in upstream's order, empty ones omitted.
fn entry_json(k: &ManagerKey, e: &ManagerEntry) -> Value {
    let mut m = Map::new();
    if !k.manager.is_empty() {
        m.insert("manager".into(), Value::from(k.manager.clone()));
    }
    m.insert("operation".into(), Value::from(k.operation.as_str()));
    m.insert("apiVersion".into(), Value::from(e.api_version.clone()));
    if let Some(t) = &e.time {
        m.insert("time".into(), Value::from(t.clone()));
    }
    m.insert("fieldsType".into(), Value::from("FieldsV1"));
    m.insert("fieldsV1".into(), e.set.to_fields_v1());
    if !k.subresource.is_empty() {
        m.insert("subresource".into(), Value::from(k.subresource.clone()));
    }
    Value::Object(m)
}

/// Upstream's reset request: `managedFields: []` or `[{}]` in an update clears ownership.
pub(crate) fn is_reset(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Array(items)) => match items.as_slice() {
            [] => true,
            [Value::Object(m)] => m.is_empty(),
            _ => false,
        },
        _ => false,
    }
}
