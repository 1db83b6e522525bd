//! CustomResourceDefinition validation, as upstream's apiextensions
//! `ValidateCustomResourceDefinition` (names, group, scope, versions, subresources, stored
//! versions). The schemas themselves are checked by `skiff-schema`, which the API server
//! runs beside these rules.

use serde_json::Value;

use super::{child, index, FieldError, FIELD_IMMUTABLE};
use crate::validation::names::{is_dns1035_label, is_dns1123_subdomain};

/// Validates a CRD, and on update its transition from `old`.
pub fn validate_crd(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            Value::from(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    errs.extend(validate_spec(spec, "spec"));
    errs.extend(validate_names(
        &obj["status"]["acceptedNames"],
        "status.acceptedNames",
    ));
    if let Some(old) = old {
        let old_spec = &old["spec"];
        if is_established(old) {
            for (ptr, field) in [("/scope", "spec.scope"), ("/names/kind", "spec.names.kind")] {
                if spec.pointer(ptr) != old_spec.pointer(ptr) {
                    errs.push(immutable(field, spec.pointer(ptr)));
                }
            }
        }
        for (ptr, field) in [
            ("/group", "spec.group"),
            ("/names/plural", "spec.names.plural"),
        ] {
            if spec.pointer(ptr) != old_spec.pointer(ptr) {
                errs.push(immutable(field, spec.pointer(ptr)));
            }
        }
    }
    errs.extend(validate_stored_versions(obj));
    errs
}

fn immutable(field: &str, value: Option<&Value>) -> FieldError {
    FieldError::invalid(
        field,
        value.cloned().unwrap_or(Value::Null),
        FIELD_IMMUTABLE,
    )
}

/// Whether a CRD's `Established` condition is true.
pub fn is_established(crd: &Value) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Established" && c["status"] == "True")
}

fn validate_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = spec["group"].as_str().unwrap_or("");
    let group_path = child(path, "group");
    if group.is_empty() {
        errs.push(FieldError::required(&group_path, ""));
    } else {
        let problems = is_dns1123_subdomain(group);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                &group_path,
                Value::from(group),
                problems.join(","),
            ));
        } else if group.split('.').count() < 2 {
            errs.push(FieldError::invalid(
                &group_path,
                Value::from(group),
                "should be a domain with at least one dot",
            ));
        }
    }
    match spec["scope"].as_str().unwrap_or("") {
        "" => errs.push(FieldError::required(&child(path, "scope"), "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(FieldError::not_supported(
            &child(path, "scope"),
            Value::from(other),
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let versions_path = child(path, "versions");
    if versions.is_empty() {
        errs.push(FieldError::invalid(
            &versions_path,
            Value::Array(vec![]),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut unique = true;
    let mut storage = 0;
    for (i, v) in versions.iter().enumerate() {
        let vpath = index(&versions_path, i);
        let name = v["name"].as_str().unwrap_or("");
        if v["storage"].as_bool() == Some(true) {
            storage += 1;
        }
        if !seen.insert(name) {
            unique = false;
        }
        let problems = is_dns1035_label(name);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                &child(&vpath, "name"),
                Value::from(name),
                problems.join(","),
            ));
        }
        if v["schema"]["openAPIV3Schema"].is_null() {
            errs.push(FieldError::required(
                &child(&vpath, "schema.openAPIV3Schema"),
                "schemas are required",
            ));
        }
        errs.extend(validate_subresources(
            &v["subresources"],
            &child(&vpath, "subresources"),
        ));
        for (j, c) in v["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let cpath = index(&child(&vpath, "additionalPrinterColumns"), j);
            errs.extend(validate_column(c, &cpath));
        }
    }
    if !unique {
        errs.push(FieldError::invalid(
            &versions_path,
            Value::Array(versions.to_vec()),
            "must contain unique version names",
        ));
    }
    if !versions.is_empty() && storage != 1 {
        errs.push(FieldError::invalid(
            &versions_path,
            Value::Array(versions.to_vec()),
            "must have exactly one version marked as storage version",
        ));
    }
    let names = &spec["names"];
    let names_path = child(path, "names");
    for field in ["plural", "singular", "kind", "listKind"] {
        if names[field].as_str().unwrap_or("").is_empty() {
            errs.push(FieldError::required(&child(&names_path, field), ""));
        }
    }
    errs.extend(validate_names(names, &names_path));
    match spec["conversion"]["strategy"].as_str().unwrap_or("None") {
        "None" | "Webhook" => {}
        other => errs.push(FieldError::not_supported(
            &child(path, "conversion.strategy"),
            Value::from(other),
            &["None", "Webhook"],
        )),
    }
    errs
}

/// `ValidateCustomResourceDefinitionNames`, for the requested and the accepted names.
fn validate_names(names: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let s = |f: &str| names[f].as_str().unwrap_or("").to_owned();
    for field in ["plural", "singular"] {
        let v = s(field);
        let problems = is_dns1035_label(&v);
        if !v.is_empty() && !problems.is_empty() {
            errs.push(FieldError::invalid(
                &child(path, field),
                Value::from(v),
                problems.join(","),
            ));
        }
    }
    for field in ["kind", "listKind"] {
        let v = s(field);
        let problems = is_dns1035_label(&v.to_lowercase());
        if !v.is_empty() && !problems.is_empty() {
            errs.push(FieldError::invalid(
                &child(path, field),
                Value::from(v),
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    problems.join(",")
                ),
            ));
        }
    }
    for list in ["shortNames", "categories"] {
        for (i, n) in names[list].as_array().into_iter().flatten().enumerate() {
            let n = n.as_str().unwrap_or("");
            let problems = is_dns1035_label(n);
            if !problems.is_empty() {
                errs.push(FieldError::invalid(
                    &index(&child(path, list), i),
                    Value::from(n),
                    problems.join(","),
                ));
            }
        }
    }
    let kind = s("kind");
    if !kind.is_empty() && kind == s("listKind") {
        errs.push(FieldError::invalid(
            &child(path, "listKind"),
            Value::from(kind),
            "kind and listKind may not be the same",
        ));
    }
    errs
}

/// The scale subresource's paths: simple JSON paths under `.spec` and `.status`.
fn validate_subresources(sub: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let scale = &sub["scale"];
    if scale.is_null() {
        return errs;
    }
    let spec_path = scale["specReplicasPath"].as_str().unwrap_or("");
    let field = child(path, "scale.specReplicasPath");
    if spec_path.is_empty() {
        errs.push(FieldError::required(&field, ""));
    } else if !is_simple_path(spec_path) || !spec_path.starts_with(".spec.") {
        errs.push(FieldError::invalid(
            &field,
            Value::from(spec_path),
            "should be a json path under .spec",
        ));
    }
    let status_path = scale["statusReplicasPath"].as_str().unwrap_or("");
    let field = child(path, "scale.statusReplicasPath");
    if status_path.is_empty() {
        errs.push(FieldError::required(&field, ""));
    } else if !is_simple_path(status_path) || !status_path.starts_with(".status.") {
        errs.push(FieldError::invalid(
            &field,
            Value::from(status_path),
            "should be a json path under .status",
        ));
    }
    if let Some(selector) = scale["labelSelectorPath"].as_str() {
        let field = child(path, "scale.labelSelectorPath");
        if !is_simple_path(selector)
            || !(selector.starts_with(".spec.") || selector.starts_with(".status."))
        {
            errs.push(FieldError::invalid(
                &field,
                Value::from(selector),
                "should be a json path under either .spec or .status",
            ));
        }
    }
    errs
}

/// Upstream's `validateSimpleJSONPath`: dotted field names, no indexes or filters.
fn is_simple_path(p: &str) -> bool {
    p.starts_with('.')
        && p[1..]
            .split('.')
            .all(|seg| !seg.is_empty() && !seg.contains(['[', ']', '*', '?', '@', '$']))
}

fn validate_column(c: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if c["name"].as_str().unwrap_or("").is_empty() {
        errs.push(FieldError::required(&child(path, "name"), ""));
    }
    let ty = c["type"].as_str().unwrap_or("");
    if ty.is_empty() {
        errs.push(FieldError::required(&child(path, "type"), ""));
    } else if !["integer", "number", "string", "boolean", "date"].contains(&ty) {
        errs.push(FieldError::not_supported(
            &child(path, "type"),
            Value::from(ty),
            &["integer", "number", "string", "boolean", "date"],
        ));
    }
    if let Some(format) = c["format"].as_str().filter(|f| !f.is_empty()) {
        let formats = [
            "int32",
            "int64",
            "float",
            "double",
            "byte",
            "date",
            "date-time",
            "password",
        ];
        if !formats.contains(&format) {
            errs.push(FieldError::not_supported(
                &child(path, "format"),
                Value::from(format),
                &formats,
            ));
        }
    }
    if c["jsonPath"].as_str().unwrap_or("").is_empty() {
        errs.push(FieldError::required(&child(path, "jsonPath"), ""));
    }
    errs
}

/// `status.storedVersions` must name versions that still exist, and the storage version.
fn validate_stored_versions(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(stored) = obj["status"]["storedVersions"].as_array() else {
        return errs;
    };
    let versions: Vec<&str> = obj["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for (i, v) in stored.iter().enumerate() {
        let name = v.as_str().unwrap_or("");
        if !versions.contains(&name) {
            errs.push(FieldError::invalid(
                &index("status.storedVersions", i),
                Value::from(name),
                "must appear in spec.versions",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                              "schema": {"openAPIV3Schema": {"type": "object"}}}],
            },
        })
    }

    fn messages(obj: &Value, old: Option<&Value>) -> Vec<String> {
        validate_crd(obj, old)
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn a_well_formed_crd_has_no_errors() {
        assert_eq!(messages(&crd(), None), Vec::<String>::new());
    }

    #[test]
    fn the_name_must_be_plural_dot_group() {
        let mut c = crd();
        c["metadata"]["name"] = json!("wrongname");
        assert_eq!(
            messages(&c, None),
            vec![
                "metadata.name: Invalid value: \"wrongname\": must be spec.names.plural+\".\"+spec.group"
            ]
        );
    }

    #[test]
    fn group_needs_a_dot_and_scope_one_of_two() {
        let mut c = crd();
        c["metadata"]["name"] = json!("widgets.example");
        c["spec"]["group"] = json!("example");
        c["spec"]["scope"] = json!("Global");
        assert_eq!(
            messages(&c, None),
            vec![
                "spec.group: Invalid value: \"example\": should be a domain with at least one dot",
                "spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"",
            ]
        );
    }

    #[test]
    fn exactly_one_storage_version() {
        let mut c = crd();
        c["spec"]["versions"] = json!([
            {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}},
            {"name": "v2", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}},
        ]);
        let m = messages(&c, None);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].ends_with("must have exactly one version marked as storage version"),
            "{m:?}"
        );
    }

    #[test]
    fn names_are_required_and_kind_differs_from_list_kind() {
        let mut c = crd();
        c["spec"]["names"] = json!({"plural": "widgets", "kind": "Widget", "listKind": "Widget"});
        assert_eq!(
            messages(&c, None),
            vec![
                "spec.names.singular: Required value",
                "spec.names.listKind: Invalid value: \"Widget\": kind and listKind may not be the same",
            ]
        );
    }

    #[test]
    fn group_and_plural_are_immutable_scope_once_established() {
        let mut old = crd();
        old["status"]["conditions"] = json!([{"type": "Established", "status": "True"}]);
        let mut new = old.clone();
        new["spec"]["scope"] = json!("Cluster");
        assert_eq!(
            messages(&new, Some(&old)),
            vec!["spec.scope: Invalid value: \"Cluster\": field is immutable"]
        );
    }

    #[test]
    fn scale_paths_must_be_simple_paths_under_spec_and_status() {
        let mut c = crd();
        c["spec"]["versions"][0]["subresources"] = json!({"scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".spec.x[0]"}});
        assert_eq!(
            messages(&c, None),
            vec!["spec.versions[0].subresources.scale.statusReplicasPath: Invalid value: \".spec.x[0]\": should be a json path under .status"]
        );
    }

    #[test]
    fn stored_versions_must_still_exist() {
        let mut c = crd();
        c["status"]["storedVersions"] = json!(["v1", "v0"]);
        assert_eq!(
            messages(&c, None),
            vec!["status.storedVersions[1]: Invalid value: \"v0\": must appear in spec.versions"]
        );
    }
}
