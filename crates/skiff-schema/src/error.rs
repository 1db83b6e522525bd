//! Field errors of schemas and of the custom resources checked against them: upstream's
//! `field.Error`, which is skiff-apimachinery's [`FieldError`]. The data they hold is decoded
//! JSON (`interface{}` upstream), so the constructors here print values the way Go prints
//! those ([`FieldError::untyped`]), and take upstream's negative "unknown" limits.

use serde_json::Value;

pub(crate) use skiff_apimachinery::validation::fmt_go::{go_float, go_json, go_v, quote};
pub use skiff_apimachinery::validation::{ErrorKind, FieldError};

/// `field.Invalid(path, value, detail)`.
pub(crate) fn invalid(field: &str, value: Value, detail: impl Into<String>) -> FieldError {
    FieldError::invalid(field, value, detail).untyped()
}

/// `field.TypeInvalid(path, value, detail)`.
pub(crate) fn type_invalid(field: &str, value: Value, detail: impl Into<String>) -> FieldError {
    FieldError::type_invalid(field, value, detail).untyped()
}

/// `field.NotSupported(path, value, valid)`.
pub(crate) fn not_supported(field: &str, value: Value, valid: &[String]) -> FieldError {
    FieldError::not_supported(field, value, valid).untyped()
}

/// `field.Duplicate(path, value)`.
pub(crate) fn duplicate(field: &str, value: Value) -> FieldError {
    FieldError::duplicate(field, value).untyped()
}

/// `field.TooMany(path, actual, max)`; a negative count or limit is left out as upstream does.
pub(crate) fn too_many(field: &str, actual: i64, max: i64) -> FieldError {
    let mut e = FieldError::too_many(field, actual.max(0) as usize, max.max(0) as usize);
    if max < 0 {
        e.detail = "has too many items".to_string();
    }
    if actual < 0 {
        e.value = None;
    }
    e
}

/// `field.TooLong(path, value, max)` (the value is never printed); a negative limit is left
/// out as upstream does.
pub(crate) fn too_long(field: &str, max: i64) -> FieldError {
    let mut e = FieldError::too_long(field, max.max(0) as usize);
    if max < 0 {
        e.detail = "value is too long".to_string();
    }
    e
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn messages_match_upstream_layout() {
        let e = type_invalid(
            "spec.replicas",
            json!("string"),
            "spec.replicas in body must be of type integer: \"string\"",
        );
        assert_eq!(
            e.message(),
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        );
        assert_eq!(
            FieldError::required("spec.foo", "").message(),
            "spec.foo: Required value"
        );
        assert_eq!(
            not_supported("spec.x", json!("c"), &["a".into(), "b".into()]).message(),
            r#"spec.x: Unsupported value: "c": supported values: "a", "b""#
        );
        assert_eq!(
            too_many("spec.l", 5, 3).message(),
            "spec.l: Too many: 5: must have at most 3 items"
        );
        assert_eq!(
            too_long("spec.s", 5).message(),
            "spec.s: Too long: may not be more than 5 bytes"
        );
    }
}
