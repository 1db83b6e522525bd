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

/// Validation of label keys and values, shared by both selector kinds' error messages.
pub(crate) mod validate {
    const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
        and must start and end with an alphanumeric character";
    const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
    const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of \
        alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
        character";
    const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
    const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower \
        case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
        character";
    const DNS1123_SUBDOMAIN_FMT: &str =
        "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

    /// Upstream's `RegexError`: the message, the examples, then the regex.
    fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
        let mut out = format!("{msg} (e.g. ");
        for (i, ex) in examples.iter().enumerate() {
            if i > 0 {
                out.push_str(" or ");
            }
            out.push_str(&format!("'{ex}', "));
        }
        out.push_str(&format!("regex used for validation is '{fmt}')"));
        out
    }

    fn max_len_error(n: usize) -> String {
        format!("must be no more than {n} characters")
    }

    /// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
    fn is_qualified_name_part(s: &str) -> bool {
        let b = s.as_bytes();
        let (Some(first), Some(last)) = (b.first(), b.last()) else {
            return false;
        };
        first.is_ascii_alphanumeric()
            && last.is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    }

    /// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
    fn is_dns1123_subdomain_syntax(s: &str) -> bool {
        s.split('.').all(|label| {
            let b = label.as_bytes();
            let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
            match (b.first(), b.last()) {
                (Some(f), Some(l)) => {
                    alnum(f) && alnum(l) && b.iter().all(|c| alnum(c) || *c == b'-')
                }
                _ => false,
            }
        })
    }

    /// Upstream's `IsQualifiedName` (label keys): an optional DNS subdomain prefix and `/`,
    /// then a name of at most 63 characters.
    pub(crate) fn label_key_errors(key: &str) -> Vec<String> {
        let mut errs = Vec::new();
        let parts: Vec<&str> = key.split('/').collect();
        let name = match parts.as_slice() {
            [name] => *name,
            [prefix, name] => {
                if prefix.is_empty() {
                    errs.push("prefix part must be non-empty".to_string());
                } else {
                    if prefix.len() > 253 {
                        errs.push(format!("prefix part {}", max_len_error(253)));
                    }
                    if !is_dns1123_subdomain_syntax(prefix) {
                        errs.push(format!(
                            "prefix part {}",
                            regex_error(
                                DNS1123_SUBDOMAIN_ERR,
                                DNS1123_SUBDOMAIN_FMT,
                                &["example.com"]
                            )
                        ));
                    }
                }
                *name
            }
            _ => {
                errs.push(format!(
                    "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                    regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
                ));
                return errs;
            }
        };
        if name.is_empty() {
            errs.push("name part must be non-empty".to_string());
        } else if name.len() > 63 {
            errs.push(format!("name part {}", max_len_error(63)));
        }
        if !is_qualified_name_part(name) {
            errs.push(format!(
                "name part {}",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
        }
        errs
    }

    /// Upstream's `IsValidLabelValue`: empty, or a qualified-name part of at most 63 characters.
    pub(crate) fn label_value_errors(value: &str) -> Vec<String> {
        let mut errs = Vec::new();
        if value.len() > 63 {
            errs.push(max_len_error(63));
        }
        if !value.is_empty() && !is_qualified_name_part(value) {
            errs.push(regex_error(
                LABEL_VALUE_ERR,
                LABEL_VALUE_FMT,
                &["MyValue", "my_value", "12345"],
            ));
        }
        errs
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
