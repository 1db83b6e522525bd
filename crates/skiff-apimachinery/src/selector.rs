//! Label and field selectors with upstream's syntax, validation messages and matching rules.
//!
//! Label selectors follow `k8s.io/apimachinery/pkg/labels/selector.go` (the `-l` grammar,
//! `metav1.LabelSelector` conversion); field selectors follow `pkg/fields/selector.go` plus the
//! per-kind field-label tables of `pkg/apis/*/conversion.go` and the registries'
//! `ToSelectableFields`, so `kubectl get -l/--field-selector` behaves exactly as against a real
//! apiserver, including its 400 messages.

mod field;
mod label;

pub use field::{supported_fields, FieldOp, FieldRequirement, FieldSelector};
pub use label::{LabelSelector, Operator, Requirement};

/// Why a selector was rejected. The apiserver answers every variant with 400 Bad Request and
/// the `Display` text as the Status message, which mirrors upstream's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector string does not follow the grammar, or a key/value is invalid
    /// (e.g. `unable to parse requirement: <nil>: Invalid value: "a$": name part must ...`).
    #[error("{0}")]
    LabelSyntax(String),
    /// A requirement built from a `metav1.LabelSelector` is invalid (bad key, value, or
    /// value count for the operator).
    #[error("{0}")]
    InvalidRequirement(String),
    /// A `matchExpressions[].operator` other than In, NotIn, Exists, DoesNotExist.
    #[error("{0:?} is not a valid label selector operator")]
    InvalidOperator(String),
    /// A `metav1.LabelSelector` that is not an object of the expected shape.
    #[error("invalid label selector: {0}")]
    MalformedLabelSelector(String),
    /// The field selector string has a term without `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldSyntax {
        /// The whole selector as sent.
        selector: String,
        /// The term that could not be split.
        term: String,
    },
    /// A backslash in a field selector value is followed by something other than `\`, `,`, `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// A field selector value contains an unescaped `,` or `=`.
    #[error("invalid field selector: unescaped character in value: {0}")]
    UnescapedCharacter(char),
    /// The field is not selectable for this resource; the message is the one upstream's
    /// field-label conversion function for the kind returns.
    #[error("{0}")]
    UnsupportedField(String),
}

/// Validation of label keys and values, shared by both selector kinds' error messages; the
/// rules themselves are `validation::names`, so selectors and objects agree.
pub(crate) mod validate {
    /// Upstream's `IsQualifiedName` as applied to label keys.
    pub(crate) fn label_key_errors(key: &str) -> Vec<String> {
        crate::validation::names::is_qualified_name(key)
    }

    /// Upstream's `IsValidLabelValue`.
    pub(crate) fn label_value_errors(value: &str) -> Vec<String> {
        crate::validation::names::is_valid_label_value(value)
    }

    /// Upstream's `field.Invalid(path, value, detail).Error()` for a string value.
    pub(crate) fn invalid(path: &str, value: &str, detail: &str) -> String {
        format!("{path}: Invalid value: {value:?}: {detail}")
    }

    /// Upstream's aggregate error text: one error alone, several in brackets.
    pub(crate) fn aggregate(errs: &[String]) -> String {
        match errs {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        }
    }
}
