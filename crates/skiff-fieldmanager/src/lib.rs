//! Server-side apply field ownership: upstream's structured-merge-diff (field sets, typed
//! merge/compare/remove, the `Updater`) and kube-apiserver's field manager (managedFields
//! entries, conflicts, caps, client-side-apply migration), as pure functions over wire-form
//! JSON objects. No I/O, no clock: the caller passes the time.

mod conflict;
mod managed;
mod manager;
mod path;
mod schema;
mod set;
mod typed;

pub use conflict::{Conflict, Conflicts, StatusCause};
pub use managed::{ManagedFields, ManagerEntry, Operation};
pub use manager::{FieldManager, Request, Tracked};
pub use path::{Path, PathElement};
pub use schema::{builtin_type_name, Atom, Field, ListType, Schema, TypeId};
pub use set::Set;
pub use typed::{compare, ensure_named_fields, merge, remove, to_field_set, Comparison};

/// What can go wrong managing fields. Conflicts are not here: see the apply result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `fieldsV1` value that does not parse.
    #[error("invalid fieldsV1: {0}")]
    InvalidFields(String),
    /// A `metadata.managedFields` entry that does not decode (bad operation, no apiVersion,
    /// unknown fieldsType).
    #[error("invalid managedFields: {0}")]
    InvalidManagedFields(String),
    /// An object the schema cannot walk (a keyed list item without its keys, duplicate
    /// keys in an applied configuration, absurd nesting).
    #[error("{0}")]
    InvalidObject(String),
    /// An applied configuration the server refuses (it sets managedFields, or names
    /// another apiVersion or kind than the endpoint's).
    #[error("{0}")]
    InvalidApply(String),
    /// The apply conflicts with other managers: HTTP 409 with [`Conflicts::causes`].
    #[error("{0}")]
    Conflict(Conflicts),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
