//! The `meta.k8s.io/v1` options of each verb (CreateOptions, UpdateOptions, PatchOptions,
//! DeleteOptions, ListOptions), read from the query or (for DELETE) the body and validated
//! as upstream's `apimachinery/pkg/apis/meta/v1/validation` and `internalversion/validation`
//! do, so a bogus value is refused before anything is read or written.
//!
//! Upstream answers an invalid option with `422 Invalid` on the options kind
//! (`CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ...`), built by the
//! handlers in `apiserver/pkg/endpoints/handlers/{create,update,patch,delete,get}.go`.

use serde_json::Value;

use crate::error::{ApiError, Cause, Result};
use crate::request::Params;

/// The one value `dryRun` may take.
const DRY_RUN_ALL: &str = "All";
/// Upstream's `FieldManagerMaxLength`.
const FIELD_MANAGER_MAX: usize = 128;

/// How unknown and duplicate fields in a body are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Dropped silently.
    Ignore,
    /// Dropped, each reported in a `Warning` header (upstream's default).
    #[default]
    Warn,
    /// The request fails.
    Strict,
}

impl FieldValidation {
    /// The parsed `fieldValidation` parameter; [`validate_write`] has refused bad values.
    pub fn of(p: &Params) -> FieldValidation {
        match p.get("fieldValidation") {
            Some("Ignore") => FieldValidation::Ignore,
            Some("Strict") => FieldValidation::Strict,
            _ => FieldValidation::Warn,
        }
    }
}

/// Which write verb the options belong to; decides the options kind in errors and whether
/// `force` and a missing `fieldManager` are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Update,
    Patch { apply: bool },
}

impl Verb {
    fn options_kind(self) -> &'static str {
        match self {
            Verb::Create => "CreateOptions",
            Verb::Update => "UpdateOptions",
            Verb::Patch { .. } => "PatchOptions",
        }
    }
}

/// A field error as upstream's `field.Error`, rendered as `path: message`.
fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

/// `field.NotSupported` with Go's rendering of the bad value and the supported list.
fn not_supported(field: &str, bad: String, supported: &[&str]) -> Cause {
    let supported: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    cause(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {bad}: supported values: {}",
            supported.join(", ")
        ),
    )
}

fn forbidden(field: &str, message: &str) -> Cause {
    cause(
        "FieldValueForbidden",
        field,
        format!("Forbidden: {message}"),
    )
}

/// Go's `%#v` of a `[]string`, as upstream prints a bad `dryRun`.
fn go_string_slice(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// `422 Invalid` on an options kind of meta.k8s.io, with upstream's aggregate message.
fn invalid(kind: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid_kind("meta.k8s.io", kind, "", causes)
}

fn check_dry_run(values: &[String], out: &mut Vec<Cause>) {
    if values.iter().any(|v| v != DRY_RUN_ALL) {
        out.push(not_supported(
            "dryRun",
            go_string_slice(values),
            &[DRY_RUN_ALL],
        ));
    }
}

/// A list-valued query parameter (`dryRun`) as the list upstream decodes: every value
/// given, an empty one counting as absent.
fn all_values(p: &Params, key: &str) -> Vec<String> {
    p.all(key)
}

/// `ValidateCreateOptions` / `ValidateUpdateOptions` / `ValidatePatchOptions`.
pub fn validate_write(p: &Params, verb: Verb) -> Result<()> {
    let mut causes = Vec::new();
    check_dry_run(&all_values(p, "dryRun"), &mut causes);
    let manager = p.get("fieldManager");
    if let Some(m) = manager {
        if m.chars().count() > FIELD_MANAGER_MAX {
            causes.push(cause(
                "FieldValueTooLong",
                "fieldManager",
                format!("Too long: may not be more than {FIELD_MANAGER_MAX} bytes"),
            ));
        }
        if let Some(bad) = m
            .chars()
            .find(|c| c.is_control() || !(' '..='~').contains(c))
        {
            causes.push(cause(
                "FieldValueInvalid",
                "fieldManager",
                format!("Invalid value: {m:?}: invalid characters: {bad:?}"),
            ));
        }
    }
    match verb {
        Verb::Patch { apply: true } if manager.is_none() => {
            causes.push(cause(
                "FieldValueRequired",
                "fieldManager",
                "Required value: is required for apply patch".into(),
            ));
        }
        Verb::Patch { apply: false } if p.has("force") => {
            causes.push(forbidden(
                "force",
                "may not be specified for non-apply patch",
            ));
        }
        _ => {}
    }
    if let Some(v) = p.get("fieldValidation") {
        if !matches!(v, "Ignore" | "Warn" | "Strict") {
            causes.push(not_supported(
                "fieldValidation",
                format!("{v:?}"),
                &["", "Ignore", "Strict", "Warn"],
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(verb.options_kind(), causes))
    }
}

/// `DeleteOptions`, from the body when there is one (upstream then ignores the query), else
/// from the query.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    /// The request's `Warning` headers (its `Params::warnings`), for what admission
    /// webhooks called by the delete have to say.
    pub warnings: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Who deletes (its `Params::user`); `None` for the server's own deletes.
    pub user: Option<std::sync::Arc<skiff_apimachinery::user::UserInfo>>,
}

impl DeleteOptions {
    /// Parses and validates (`ValidateDeleteOptions`) the options of a DELETE.
    pub fn parse(p: &Params, body: Option<&Value>) -> Result<DeleteOptions> {
        let mut causes = Vec::new();
        let opts = match body {
            Some(b) => {
                if !b.is_object() {
                    return Err(ApiError::BadRequest(
                        "the body of a delete must be a DeleteOptions object".into(),
                    ));
                }
                let dry_run: Vec<String> = match &b["dryRun"] {
                    Value::Null => vec![],
                    Value::Array(items) => items
                        .iter()
                        .map(|v| match v {
                            Value::String(s) => Ok(s.clone()),
                            other => Err(ApiError::BadRequest(format!(
                                "json: cannot unmarshal {} into Go struct field DeleteOptions.dryRun of type string",
                                json_type(other)
                            ))),
                        })
                        .collect::<Result<_>>()?,
                    other => {
                        return Err(ApiError::BadRequest(format!(
                            "json: cannot unmarshal {} into Go struct field DeleteOptions.dryRun of type []string",
                            json_type(other)
                        )))
                    }
                };
                check_dry_run(&dry_run, &mut causes);
                let grace = match &b["gracePeriodSeconds"] {
                    Value::Null => None,
                    v => Some(v.as_i64().ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "json: cannot unmarshal {} into Go struct field DeleteOptions.gracePeriodSeconds of type int64",
                            json_type(v)
                        ))
                    })?),
                };
                let string_at = |ptr: &str, field: &str| -> Result<Option<String>> {
                    match b.pointer(ptr) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => Ok(Some(s.clone())),
                        Some(v) => Err(ApiError::BadRequest(format!(
                            "json: cannot unmarshal {} into Go struct field {field} of type string",
                            json_type(v)
                        ))),
                    }
                };
                if b.get("orphanDependents").is_some_and(|v| !v.is_null())
                    && b.get("propagationPolicy").is_some_and(|v| !v.is_null())
                {
                    causes.push(cause(
                        "FieldValueInvalid",
                        "propagationPolicy",
                        format!(
                            "Invalid value: {}: orphanDependents and deletionPropagation cannot be both set",
                            b["propagationPolicy"]
                        ),
                    ));
                }
                let mut policy =
                    string_at("/propagationPolicy", "DeleteOptions.propagationPolicy")?;
                // The deprecated boolean: true orphans, false deletes dependents in the background.
                if policy.is_none() {
                    policy = b["orphanDependents"]
                        .as_bool()
                        .map(|orphan| if orphan { "Orphan" } else { "Background" }.to_owned());
                }
                DeleteOptions {
                    dry_run: !dry_run.is_empty(),
                    grace_period_seconds: grace,
                    propagation_policy: policy,
                    precondition_uid: string_at("/preconditions/uid", "Preconditions.uid")?,
                    precondition_resource_version: string_at(
                        "/preconditions/resourceVersion",
                        "Preconditions.resourceVersion",
                    )?,
                    ..DeleteOptions::default()
                }
            }
            None => {
                let dry_run = all_values(p, "dryRun");
                check_dry_run(&dry_run, &mut causes);
                DeleteOptions {
                    dry_run: !dry_run.is_empty(),
                    grace_period_seconds: p.int("gracePeriodSeconds")?,
                    propagation_policy: p.get("propagationPolicy").map(str::to_owned).or_else(
                        || match p.get("orphanDependents") {
                            Some("true") => Some("Orphan".to_owned()),
                            Some("false") => Some("Background".to_owned()),
                            _ => None,
                        },
                    ),
                    ..DeleteOptions::default()
                }
            }
        };
        if let Some(policy) = &opts.propagation_policy {
            if !matches!(policy.as_str(), "Foreground" | "Background" | "Orphan") {
                causes.push(not_supported(
                    "propagationPolicy",
                    format!("{policy:?}"),
                    &["Foreground", "Background", "Orphan", "nil"],
                ));
            }
        }
        if causes.is_empty() {
            Ok(DeleteOptions {
                warnings: p.warnings.clone(),
                user: Some(p.user.clone()),
                ..opts
            })
        } else {
            Err(invalid("DeleteOptions", causes))
        }
    }
}

/// Go's name of a JSON value's type in `json: cannot unmarshal` errors.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `ValidateListOptions` (list and watch), plus the resourceVersion's syntax, which upstream
/// checks when it parses it.
pub fn validate_list(p: &Params) -> Result<()> {
    let watch = p.flag("watch");
    let rv = p.get("resourceVersion");
    if let Some(rv) = rv {
        if rv.parse::<u64>().is_err() {
            return Err(ApiError::BadRequest(format!(
                "resourceVersion: Invalid value: {rv:?}: strconv.ParseUint: parsing {rv:?}: invalid syntax"
            )));
        }
    }
    let mut causes = Vec::new();
    let matching = p.get("resourceVersionMatch");
    let initial = p.has("sendInitialEvents");
    let continued = p.get("continue").is_some();
    if watch {
        if initial && matching != Some("NotOlderThan") {
            causes.push(forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if let Some(m) = matching {
            if !initial {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if m != "NotOlderThan" {
                causes.push(not_supported(
                    "resourceVersionMatch",
                    format!("{m:?}"),
                    &["NotOlderThan"],
                ));
            }
            if continued {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        if let Some(m) = matching {
            if rv.is_none() {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if continued {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if m != "Exact" && m != "NotOlderThan" {
                causes.push(not_supported(
                    "resourceVersionMatch",
                    format!("{m:?}"),
                    &["Exact", "NotOlderThan", ""],
                ));
            }
            if m == "Exact" && rv == Some("0") {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if initial {
            causes.push(forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid("ListOptions", causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(Some(q))
    }

    fn message(e: ApiError) -> String {
        e.to_string()
    }

    #[test]
    fn unknown_dry_run_is_refused_on_every_write_verb() {
        for verb in [Verb::Create, Verb::Update, Verb::Patch { apply: false }] {
            let e = validate_write(&params("dryRun=Bogus"), verb).unwrap_err();
            assert_eq!(e.code().as_u16(), 422);
            assert!(message(e).ends_with(
                "\"\" is invalid: dryRun: Unsupported value: []string{\"Bogus\"}: supported values: \"All\""
            ));
        }
        assert!(validate_write(&params("dryRun=All"), Verb::Create).is_ok());
        // Every value of a repeated parameter counts, not only the last.
        let e = validate_write(&params("dryRun=Bogus&dryRun=All"), Verb::Create).unwrap_err();
        assert!(
            e.to_string()
                .contains(r#"[]string{"Bogus", "All"}: supported values: "All""#),
            "{e}"
        );
        assert!(validate_write(&params("dryRun=All&dryRun=All"), Verb::Create).is_ok());
    }

    #[test]
    fn unknown_field_validation_is_refused() {
        let e = validate_write(&params("fieldValidation=Bogus"), Verb::Create).unwrap_err();
        assert_eq!(
            message(e),
            "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Bogus\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        );
        for ok in ["Ignore", "Warn", "Strict"] {
            assert!(
                validate_write(&params(&format!("fieldValidation={ok}")), Verb::Update).is_ok()
            );
        }
    }

    #[test]
    fn apply_needs_a_field_manager_and_only_apply_may_force() {
        let e = validate_write(&params(""), Verb::Patch { apply: true }).unwrap_err();
        assert_eq!(
            message(e),
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
        let e = validate_write(&params("force=true"), Verb::Patch { apply: false }).unwrap_err();
        assert!(message(e).contains("force: Forbidden: may not be specified for non-apply patch"));
        let long = "m".repeat(129);
        let e = validate_write(&params(&format!("fieldManager={long}")), Verb::Create).unwrap_err();
        assert!(message(e).contains("fieldManager: Too long"));
    }

    #[test]
    fn delete_options_come_from_the_body_before_the_query() {
        let body = serde_json::json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"], "propagationPolicy": "Foreground"});
        let o = DeleteOptions::parse(&params(""), Some(&body)).unwrap();
        assert!(o.dry_run);
        assert_eq!(o.propagation_policy.as_deref(), Some("Foreground"));
        // With a body, the query is not read (as upstream's delete handler).
        let o = DeleteOptions::parse(&params("dryRun=All"), Some(&serde_json::json!({}))).unwrap();
        assert!(!o.dry_run);
        let o = DeleteOptions::parse(&params("dryRun=All&gracePeriodSeconds=0"), None).unwrap();
        assert!(o.dry_run);
        assert_eq!(o.grace_period_seconds, Some(0));
    }

    #[test]
    fn bad_delete_options_are_refused() {
        let e = DeleteOptions::parse(&params("propagationPolicy=Bogus"), None).unwrap_err();
        assert_eq!(
            message(e),
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Bogus\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
        );
        let body = serde_json::json!({"dryRun": ["Bogus"]});
        assert_eq!(
            DeleteOptions::parse(&params(""), Some(&body))
                .unwrap_err()
                .code()
                .as_u16(),
            422
        );
        let body = serde_json::json!({"dryRun": "All"});
        assert_eq!(
            DeleteOptions::parse(&params(""), Some(&body))
                .unwrap_err()
                .code()
                .as_u16(),
            400
        );
        let body = serde_json::json!({"orphanDependents": true, "propagationPolicy": "Orphan"});
        assert!(
            message(DeleteOptions::parse(&params(""), Some(&body)).unwrap_err())
                .contains("orphanDependents and deletionPropagation cannot be both set")
        );
        let body = serde_json::json!({"orphanDependents": true});
        let o = DeleteOptions::parse(&params(""), Some(&body)).unwrap();
        assert_eq!(o.propagation_policy.as_deref(), Some("Orphan"));
    }

    #[test]
    fn list_options_as_upstream() {
        assert_eq!(
            validate_list(&params("resourceVersion=abc"))
                .unwrap_err()
                .code()
                .as_u16(),
            400
        );
        let e = validate_list(&params("resourceVersion=1&resourceVersionMatch=Bogus")).unwrap_err();
        assert_eq!(
            message(e),
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"Bogus\": supported values: \"Exact\", \"NotOlderThan\", \"\""
        );
        assert!(
            message(validate_list(&params("resourceVersionMatch=Exact")).unwrap_err())
                .contains("resourceVersionMatch is forbidden unless resourceVersion is provided")
        );
        assert!(validate_list(&params("resourceVersion=0&resourceVersionMatch=Exact")).is_err());
        assert!(validate_list(&params("resourceVersion=5&resourceVersionMatch=Exact")).is_ok());
        assert!(validate_list(&params("sendInitialEvents=true")).is_err());
        assert!(validate_list(&params(
            "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
        ))
        .is_ok());
        assert!(validate_list(&params("watch=true&sendInitialEvents=true")).is_err());
        assert!(validate_list(&params("watch=true&resourceVersionMatch=NotOlderThan")).is_err());
    }
}
