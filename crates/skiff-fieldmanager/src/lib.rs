//! Server-side apply field ownership: upstream's structured-merge-diff (field sets, typed
//! merge/compare/remove, the `Updater`) and kube-apiserver's field manager (managedFields
//! entries, conflicts, caps, client-side-apply migration), as pure functions over wire-form
//! JSON objects. No I/O, no clock: the caller passes the time.

mod path;
mod schema;
mod set;

pub use path::{Path, PathElement};
pub use schema::{builtin_type_name, Atom, Field, ListType, Schema, TypeId};
pub use set::Set;

/// What can go wrong managing fields. Conflicts are not here: see the apply result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `fieldsV1` value that does not parse.
    #[error("invalid fieldsV1: {0}")]
    InvalidFields(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
