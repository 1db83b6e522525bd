//! Apply conflicts and their HTTP 409 form, worded exactly as kube-apiserver words them.

use std::fmt;

use crate::managed::{ManagerKey, Operation};
use crate::path::Path;

/// One field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owner.
    pub manager: ManagerKey,
    /// The field.
    pub path: Path,
}

/// All conflicts of one apply, sorted by manager then path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts(pub Vec<Conflict>);

/// A `Status` cause for the 409 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCause {
    /// Always `FieldManagerConflict`.
    pub reason: &'static str,
    /// `conflict with "<manager>" ...`.
    pub message: String,
    /// The field path, `.spec.replicas`.
    pub field: String,
}

impl Conflict {
    /// Upstream's `printManager`: `"name"`, plus `with subresource "s"`, plus `using v1`
    /// for updaters (upstream's identity carries no time, so `at <time>` never shows).
    pub fn manager_description(&self) -> String {
        let mut s = format!("{:?}", self.manager.manager);
        if !self.manager.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.manager.subresource);
        }
        if self.manager.operation == Operation::Update {
            s = format!("{s} using {}", self.manager.api_version);
        }
        s
    }
}

impl Conflicts {
    /// One cause per conflict, for the `Status` details.
    pub fn causes(&self) -> Vec<StatusCause> {
        self.0
            .iter()
            .map(|c| StatusCause {
                reason: "FieldManagerConflict",
                message: format!("conflict with {}", c.manager_description()),
                field: c.path.to_string(),
            })
            .collect()
    }

    /// The paths in conflict.
    pub fn paths(&self) -> Vec<&Path> {
        self.0.iter().map(|c| &c.path).collect()
    }
}

impl fmt::Display for Conflicts {
    /// `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`, or
    /// for several, one `conflicts with "m":` line per manager followed by `- <path>` lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [c] => write!(
                f,
                "Apply failed with 1 conflict: conflict with {}: {}",
                c.manager_description(),
                c.path
            ),
            all => {
                let mut lines = Vec::new();
                let mut last: Option<&ManagerKey> = None;
                for c in all {
                    if last != Some(&c.manager) {
                        lines.push(format!("conflicts with {}:", c.manager_description()));
                        last = Some(&c.manager);
                    }
                    lines.push(format!("- {}", c.path));
                }
                write!(
                    f,
                    "Apply failed with {} conflicts: {}",
                    all.len(),
                    lines.join("\n")
                )
            }
        }
    }
}
