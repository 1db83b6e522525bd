//! CustomResourceDefinitions served as APIs, as kube-apiserver's apiextensions server does:
//! an established CRD adds rows to the resource table, so its custom resources go through
//! the same generic verbs, discovery, OpenAPI, watch and tables as built-in kinds.
//!
//! `names` decides which names a CRD may have (conflicts within its group); `controller`
//! keeps each CRD's status and the served table in step with the stored CRDs, and deletes a
//! CRD's objects before the CRD itself goes.

mod controller;
pub mod names;
pub mod rules;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::resources::ResourceInfo;

pub use controller::{load, run};

/// The finalizer that keeps a CRD until its custom resources are deleted.
pub const FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// What a custom resource row carries beyond a built-in one: its CRD's rules.
pub struct Custom {
    /// The CRD's name (`<plural>.<group>`).
    pub crd: String,
    /// The version objects are stored in; every served version shares that storage
    /// (conversion `None` changes only `apiVersion`).
    pub storage_version: String,
    /// This version's `openAPIV3Schema`, as written.
    pub schema: Value,
    /// This version's `additionalPrinterColumns`.
    pub columns: Vec<Value>,
    /// This version's scale subresource paths, when it has one.
    pub scale: Option<ScalePaths>,
    /// The warning for a deprecated version.
    pub deprecation: Option<String>,
    /// This version's `selectableFields`, as field selector labels (`spec.color`): what a
    /// field selector may name beside `metadata.name` (and `metadata.namespace`).
    pub selectable_fields: Vec<String>,
    /// Server-side apply's view of the schema.
    pub fields: skiff_fieldmanager::Schema,
    /// The checked schema that validates, defaults and prunes objects; `None` only for a
    /// CRD stored before its schema was checked (it is then served without validation).
    pub structural: Option<skiff_schema::Structural>,
    /// The schema's `x-kubernetes-validations`, compiled.
    pub rules: rules::Rules,
}

/// Where the scale subresource reads and writes its numbers (simple JSON paths).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

impl ScalePaths {
    fn of(scale: &Value) -> Option<ScalePaths> {
        Some(ScalePaths {
            spec_replicas: scale["specReplicasPath"].as_str()?.to_owned(),
            status_replicas: scale["statusReplicasPath"].as_str()?.to_owned(),
            label_selector: scale["labelSelectorPath"].as_str().map(str::to_owned),
        })
    }
}

/// A simple JSON path (`.spec.replicas`) as a JSON pointer (`/spec/replicas`).
pub fn pointer(path: &str) -> String {
    path.replace('.', "/")
}

/// Upstream's OpenAPI definition name of a custom kind: the group reversed, then the
/// version and kind (`io.k8s.networking.gateway.v1.Gateway`).
fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// Kubernetes' version priority (`v1` > `v1beta2` > `v1beta1` > `v1alpha1` > others
/// alphabetically), as a sort key: a group's versions in discovery sort by it, the first is
/// preferred.
pub fn version_priority(v: &str) -> (bool, u8, u64, u64, String) {
    let parse = |s: &str| -> Option<(u64, u8, u64)> {
        let rest = s.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 3, 0));
        }
        let (level, n) = if let Some(n) = tail.strip_prefix("beta") {
            (2, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, n)
        } else {
            return None;
        };
        Some((major, level, n.parse().ok()?))
    };
    match parse(v) {
        // Higher versions sort first, so each part is inverted for an ascending sort.
        Some((major, level, minor)) => (
            false,
            3 - level,
            u64::MAX - major,
            u64::MAX - minor,
            String::new(),
        ),
        None => (true, 0, 0, 0, v.to_owned()),
    }
}

/// The resources an established CRD serves: one per served version, by its accepted
/// names, preferred version first.
pub fn resources_of(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let names = &crd["status"]["acceptedNames"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let group = s(&spec["group"]);
    let plural = s(&names["plural"]);
    let kind = s(&names["kind"]);
    if plural.is_empty() || kind.is_empty() {
        return vec![];
    }
    let crd_name = s(&crd["metadata"]["name"]);
    let versions: Vec<&Value> = spec["versions"].as_array().into_iter().flatten().collect();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"] == true)
        .map(|v| s(&v["name"]))
        .unwrap_or_default();
    let mut served: Vec<&Value> = versions
        .into_iter()
        .filter(|v| v["served"] == true)
        .collect();
    served.sort_by_key(|v| version_priority(v["name"].as_str().unwrap_or("")));
    served
        .into_iter()
        .map(|v| {
            let version = s(&v["name"]);
            let schema = v["schema"]["openAPIV3Schema"].clone();
            let deprecation =
                (v["deprecated"] == true).then(|| match v["deprecationWarning"].as_str() {
                    Some(w) => w.to_owned(),
                    None => format!("{group}/{version} {kind} is deprecated"),
                });
            let structural = match skiff_schema::Structural::new(&schema, "") {
                Ok(s) => Some(s),
                Err(errs) => {
                    tracing::warn!(crd = %crd_name, version = %version, errors = ?errs, "serving a CRD version whose schema is not structural without validation");
                    None
                }
            };
            let rules = structural
                .as_ref()
                .map(|s| rules::compile(s, "").0)
                .unwrap_or_default();
            let custom = Custom {
                crd: crd_name.clone(),
                structural,
                rules,
                storage_version: storage_version.clone(),
                fields: skiff_fieldmanager::Schema::from_openapi_v3(&schema),
                schema,
                columns: v["additionalPrinterColumns"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                scale: ScalePaths::of(&v["subresources"]["scale"]),
                deprecation,
                selectable_fields: selectable_fields(v),
            };
            ResourceInfo {
                group: group.clone(),
                version: version.clone(),
                kind: kind.clone(),
                plural: plural.clone(),
                singular: s(&names["singular"]),
                namespaced: spec["scope"] == "Namespaced",
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                status_subresource: v["subresources"]["status"].is_object(),
                scale_subresource: custom.scale.is_some(),
                generation: true,
                storage: format!("{group}/{plural}"),
                schema_name: definition_name(&group, &version, &kind),
                schema: None,
                decode: None,
                custom: Some(Arc::new(custom)),
                create_only: false,
            }
        })
        .collect()
}

/// A version's `selectableFields` as field selector labels: the JSON paths without their
/// leading dot, in declared order, each once.
pub fn selectable_fields(version: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in version["selectableFields"].as_array().into_iter().flatten() {
        let label = f["jsonPath"].as_str().unwrap_or_default();
        let label = label.strip_prefix('.').unwrap_or(label).to_owned();
        if !label.is_empty() && !out.contains(&label) {
            out.push(label);
        }
    }
    out
}

/// Most selectable fields a version may declare (upstream's `MaxSelectableFields`).
const MAX_SELECTABLE_FIELDS: usize = 8;

/// Upstream's `ValidFieldPath` without array notation, on a version's schema as written:
/// `.a.b` steps through `properties` (or `additionalProperties`), giving the field label
/// (`a.b`) and the schema it reaches, or the reason it is not a path.
fn selectable_path<'a>(schema: &'a Value, path: &str) -> Result<(String, &'a Value), String> {
    let mut node = schema;
    let mut label: Vec<&str> = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if rest.starts_with('[') {
            return Err("array notation is not allowed".into());
        }
        let Some(after) = rest.strip_prefix('.') else {
            let token = &rest[..rest.find(['.', '[', ']']).unwrap_or(rest.len()).max(1)];
            return Err(format!("expected [ or . but got: {token}"));
        };
        if after.is_empty() {
            return Err("unexpected end of JSON path".into());
        }
        // The next token: a name, or a delimiter standing alone.
        let end = after.find(['.', '[', ']']).unwrap_or(after.len()).max(1);
        let name = &after[..end];
        rest = &after[end..];
        node = if node["properties"].is_object() {
            node["properties"]
                .get(name)
                .ok_or_else(|| "does not refer to a valid field".to_owned())?
        } else if node["additionalProperties"].is_object() {
            &node["additionalProperties"]
        } else {
            return Err("does not refer to a valid field".into());
        };
        label.push(name);
    }
    Ok((label.join("."), node))
}

/// The errors of a version's `selectableFields` (upstream's
/// `ValidateCustomResourceSelectableFields`): each `jsonPath` a simple path into the schema,
/// not into `metadata`, to a string, boolean or integer field, each once, at most 8.
pub fn selectable_field_errors(
    version: &Value,
    base: &str,
) -> Vec<skiff_apimachinery::validation::FieldError> {
    use skiff_apimachinery::validation::FieldError;
    let Some(fields) = version["selectableFields"]
        .as_array()
        .filter(|f| !f.is_empty())
    else {
        return Vec::new();
    };
    let at = format!("{base}.selectableFields");
    let schema = &version["schema"]["openAPIV3Schema"];
    if !schema.is_object() {
        return vec![FieldError::invalid(
            &at,
            Value::from(""),
            "may only be set when `version.schema.openAPIV3Schema` is not included",
        )];
    }
    let mut errs = Vec::new();
    let mut unique: Vec<String> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let field = format!("{at}[{i}].jsonPath");
        let path = f["jsonPath"].as_str().unwrap_or_default();
        if path.is_empty() {
            errs.push(FieldError::required(&field, ""));
            continue;
        }
        let invalid = |detail: String| FieldError::invalid(&field, Value::from(path), detail);
        let (label, found) = match selectable_path(schema, path) {
            Ok(found) => found,
            Err(e) => {
                errs.push(invalid(format!("is an invalid path: {e}")));
                continue;
            }
        };
        if label.split('.').next() == Some("metadata") {
            errs.push(invalid("must not point to fields in metadata".into()));
        }
        if !matches!(
            found["type"].as_str(),
            Some("string" | "boolean" | "integer")
        ) {
            errs.push(invalid(
                "must point to a field of type string, boolean or integer. Enum string fields \
                 and strings with formats are allowed."
                    .into(),
            ));
        }
        if unique.contains(&label) {
            errs.push(FieldError::duplicate(&field, Value::from(path)));
        } else {
            unique.push(label);
        }
    }
    if unique.len() > MAX_SELECTABLE_FIELDS {
        errs.push(FieldError::too_many(
            &at,
            unique.len(),
            MAX_SELECTABLE_FIELDS,
        ));
    }
    errs
}

/// The structural-schema errors of every version of a CRD being written, with their
/// paths in the CRD (`spec.versions[0].schema.openAPIV3Schema...`), and those of its
/// versions' `selectableFields`.
pub fn validate_schemas(crd: &Value) -> Vec<crate::error::Cause> {
    let mut errs = Vec::new();
    for (i, v) in crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        errs.extend(
            selectable_field_errors(v, &format!("spec.versions[{i}]"))
                .iter()
                .map(|e| crate::error::Cause {
                    reason: e.kind.reason().to_owned(),
                    message: e.body(),
                    field: e.field.clone(),
                }),
        );
        let schema = &v["schema"]["openAPIV3Schema"];
        if schema.is_null() {
            continue;
        }
        let base = format!("spec.versions[{i}].schema.openAPIV3Schema");
        if v["subresources"]["status"].is_object() {
            if let Some(e) = status_root_error(schema, &format!("spec.versions[{i}].schema")) {
                errs.push(crate::error::Cause {
                    reason: e.kind.reason().to_owned(),
                    message: e.body(),
                    field: e.field.clone(),
                });
            }
        }
        match skiff_schema::Structural::new(schema, &base) {
            Ok(structural) => {
                let (_, rule_errors) = rules::compile(&structural, &base);
                errs.extend(rule_errors.iter().map(rules::RuleError::cause));
            }
            Err(e) => errs.extend(e.iter().map(|e| crate::error::Cause {
                reason: e.kind.reason().to_owned(),
                message: e.body(),
                field: e.field.clone(),
            })),
        }
    }
    errs
}

/// The root schema fields upstream allows beside the status subresource (its
/// `allowedFieldsAtRootSchema`, by Go field name as its message lists them), so that the
/// status schema, extracted as `properties.status`, loses none of its validation.
const ALLOWED_AT_ROOT_WITH_STATUS: [(&str, &str); 22] = [
    ("description", "Description"),
    ("type", "Type"),
    ("format", "Format"),
    ("title", "Title"),
    ("maximum", "Maximum"),
    ("exclusiveMaximum", "ExclusiveMaximum"),
    ("minimum", "Minimum"),
    ("exclusiveMinimum", "ExclusiveMinimum"),
    ("maxLength", "MaxLength"),
    ("minLength", "MinLength"),
    ("pattern", "Pattern"),
    ("maxItems", "MaxItems"),
    ("minItems", "MinItems"),
    ("uniqueItems", "UniqueItems"),
    ("multipleOf", "MultipleOf"),
    ("required", "Required"),
    ("items", "Items"),
    ("properties", "Properties"),
    ("externalDocs", "ExternalDocs"),
    ("example", "Example"),
    (
        "x-kubernetes-preserve-unknown-fields",
        "XPreserveUnknownFields",
    ),
    ("x-kubernetes-validations", "XValidations"),
];

/// The schema fields in upstream's `JSONSchemaProps` order, which decides which offending
/// field is reported first.
const SCHEMA_FIELD_ORDER: [&str; 44] = [
    "id",
    "$schema",
    "$ref",
    "description",
    "type",
    "nullable",
    "format",
    "title",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "properties",
    "additionalProperties",
    "patternProperties",
    "dependencies",
    "additionalItems",
    "definitions",
    "externalDocs",
    "example",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

/// Upstream's check of a version's root schema when its status subresource is enabled: a
/// type other than `object`, or the first field set (not a zero value) outside
/// [`ALLOWED_AT_ROOT_WITH_STATUS`], is one error. `base` is the version's `schema` path.
pub fn status_root_error(
    schema: &Value,
    base: &str,
) -> Option<skiff_apimachinery::validation::FieldError> {
    use skiff_apimachinery::validation::FieldError;
    let object = schema.as_object()?;
    let is_zero = |v: &Value| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    };
    for field in SCHEMA_FIELD_ORDER {
        let Some(value) = object.get(field).filter(|v| !is_zero(v)) else {
            continue;
        };
        if field == "type" {
            if value != "object" {
                return Some(FieldError::invalid(
                    &format!("{base}.openAPIV3Schema.type"),
                    value.clone(),
                    r#"only "object" is allowed as the type at the root of the schema if the status subresource is enabled"#,
                ));
            }
            continue;
        }
        if !ALLOWED_AT_ROOT_WITH_STATUS
            .iter()
            .any(|(json, _)| *json == field)
        {
            let names: Vec<&str> = ALLOWED_AT_ROOT_WITH_STATUS
                .iter()
                .map(|(_, go)| *go)
                .collect();
            return Some(FieldError::invalid(
                &format!("{base}.openAPIV3Schema"),
                schema.clone(),
                format!(
                    "only [{}] fields are allowed at the root of the schema if the status subresource is enabled",
                    names.join(" ")
                ),
            ));
        }
    }
    None
}

/// A CRD's condition of `ty`, if set.
pub fn condition<'a>(crd: &'a Value, ty: &str) -> Option<&'a Value> {
    crd["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

/// Whether a CRD's condition of `ty` is `True`.
pub fn condition_true(crd: &Value, ty: &str) -> bool {
    condition(crd, ty).is_some_and(|c| c["status"] == "True")
}

/// Sets a condition, keeping its transition time when its status does not change.
pub fn set_condition(crd: &mut Value, ty: &str, status: &str, reason: &str, message: &str) {
    let now = crate::object::now_rfc3339();
    let since = match condition(crd, ty) {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let new = json!({"type": ty, "status": status, "lastTransitionTime": since,
                     "reason": reason, "message": message});
    if !crd["status"]["conditions"].is_array() {
        crd["status"]["conditions"] = json!([]);
    }
    if let Some(conditions) = crd["status"]["conditions"].as_array_mut() {
        match conditions.iter_mut().find(|c| c["type"] == ty) {
            Some(c) => *c = new,
            None => conditions.push(new),
        }
    }
}

/// Upstream's CRD strategy on create: status starts empty but for the storage version,
/// and the cleanup finalizer is added.
pub fn prepare_create(crd: &mut Value) {
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    crd["status"] = json!({
        "conditions": [],
        "acceptedNames": {"plural": "", "kind": ""},
        "storedVersions": storage,
    });
    add_finalizer(crd);
}

fn add_finalizer(crd: &mut Value) {
    let meta = crate::object::meta_mut(crd);
    let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = finalizers.as_array_mut() {
        if !list.iter().any(|f| f == FINALIZER) {
            list.push(json!(FINALIZER));
        }
    }
}

/// Upstream's CRD strategy on update: the storage version joins `storedVersions`.
pub fn prepare_update(crd: &mut Value) {
    let storage = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == true)
        .map(|v| v["name"].clone());
    if let Some(storage) = storage {
        if !crd["status"]["storedVersions"].is_array() {
            crd["status"]["storedVersions"] = json!([]);
        }
        if let Some(stored) = crd["status"]["storedVersions"].as_array_mut() {
            if !stored.contains(&storage) {
                stored.push(storage);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_kubernetes_prioritizes_them() {
        let mut v = vec![
            "v1alpha1",
            "v2",
            "foo1",
            "v1beta1",
            "v1",
            "v11alpha2",
            "v1beta2",
            "foo10",
            "v12alpha1",
            "v10beta3",
            "v10",
        ];
        v.sort_by_key(|s| version_priority(s));
        // Upstream's documented order (CRD versioning docs).
        assert_eq!(
            v,
            vec![
                "v10",
                "v2",
                "v1",
                "v10beta3",
                "v1beta2",
                "v1beta1",
                "v12alpha1",
                "v11alpha2",
                "v1alpha1",
                "foo1",
                "foo10"
            ]
        );
    }

    #[test]
    fn a_crd_serves_each_served_version_under_its_accepted_names() {
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false, "deprecated": true},
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}},
                    {"name": "v0", "served": false, "storage": false},
                ]},
            "status": {"acceptedNames": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]}},
        });
        let rs = resources_of(&crd);
        let versions: Vec<&str> = rs.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(versions, ["v1", "v1beta1"]);
        assert!(rs[0].status_subresource && rs[0].scale_subresource && !rs[0].namespaced);
        assert_eq!(rs[0].storage, "example.com/widgets");
        assert_eq!(rs[0].schema_name, "com.example.v1.Widget");
        assert_eq!(rs[0].short_names, ["wd"]);
        let c = rs[1].custom.as_ref().unwrap();
        assert_eq!(c.storage_version, "v1");
        assert_eq!(
            c.deprecation.as_deref(),
            Some("example.com/v1beta1 Widget is deprecated")
        );
    }

    #[test]
    fn a_root_schema_beside_the_status_subresource_is_restricted_as_upstream() {
        // Upstream's validation_test.go cases for `subresources.status`: (root schema, the
        // field of the error and the start of its message, or none).
        let only = "only [Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations] fields are allowed";
        let cases = [
            (
                json!({"type": "object", "properties": {"spec": {}, "status": {}}, "required": ["spec"], "description": "d", "x-kubernetes-preserve-unknown-fields": true}),
                None,
            ),
            (
                json!({"type": "object", "nullable": false, "uniqueItems": false, "additionalProperties": null}),
                None,
            ),
            (
                json!({"type": "string"}),
                Some((
                    "s.openAPIV3Schema.type",
                    "only \"object\" is allowed as the type",
                )),
            ),
            (
                json!({"type": "object", "additionalProperties": {"type": "string"}}),
                Some(("s.openAPIV3Schema", only)),
            ),
            (
                json!({"type": "object", "anyOf": [{"required": ["a"]}]}),
                Some(("s.openAPIV3Schema", only)),
            ),
            (
                json!({"type": "object", "x-kubernetes-embedded-resource": true}),
                Some(("s.openAPIV3Schema", only)),
            ),
            // The first field set, in upstream's field order: `type` before `enum` and `anyOf`.
            (
                json!({"anyOf": [{}], "enum": [1], "type": "integer"}),
                Some(("s.openAPIV3Schema.type", "only \"object\"")),
            ),
        ];
        for (schema, want) in cases {
            let got = status_root_error(&schema, "s");
            match (got, want) {
                (None, None) => {}
                (Some(e), Some((field, message))) => {
                    assert_eq!(e.field, field, "{schema}");
                    assert!(e.body().contains(message), "{schema}: {}", e.body());
                }
                (got, want) => panic!("{schema}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn nothing_is_served_before_names_are_accepted() {
        let crd = json!({"spec": {"group": "example.com", "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}});
        assert!(resources_of(&crd).is_empty());
    }

    /// Upstream's selectable-field declaration rules (`ValidateCustomResourceSelectableFields`
    /// and its table in validation_test.go), on the shirt schema of the selectable-fields
    /// integration test.
    #[test]
    fn selectable_fields_must_be_simple_paths_to_scalars_each_once_at_most_eight() {
        let version = |paths: &[&str]| {
            json!({"name": "v1", "selectableFields": paths.iter().map(|p| json!({"jsonPath": p})).collect::<Vec<_>>(),
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
                    "spec": {"type": "object", "properties": {
                        "color": {"type": "string"}, "quantity": {"type": "integer"},
                        "size": {"type": "string", "enum": ["S", "M", "L", "XL"]},
                        "branded": {"type": "boolean"}, "price": {"type": "number"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "inner": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}, "d": {"type": "string"}}}}}}}}})
        };
        let at = "spec.versions[0].selectableFields";
        let cases: &[(&str, Vec<&str>, Vec<String>)] = &[
            (
                "the integration test's four",
                vec![
                    ".spec.color",
                    ".spec.quantity",
                    ".spec.size",
                    ".spec.branded",
                ],
                vec![],
            ),
            ("a map value", vec![".spec.labels.team"], vec![]),
            (
                "empty",
                vec![""],
                vec![format!("{at}[0].jsonPath: Required value")],
            ),
            (
                "unknown field",
                vec![".spec.nosuch"],
                vec![format!(
                    r#"{at}[0].jsonPath: Invalid value: ".spec.nosuch": is an invalid path: does not refer to a valid field"#
                )],
            ),
            (
                "no leading dot",
                vec!["spec.color"],
                vec![format!(
                    r#"{at}[0].jsonPath: Invalid value: "spec.color": is an invalid path: expected [ or . but got: spec"#
                )],
            ),
            (
                "array notation",
                vec![".spec.tags[0]"],
                vec![format!(
                    r#"{at}[0].jsonPath: Invalid value: ".spec.tags[0]": is an invalid path: array notation is not allowed"#
                )],
            ),
            (
                "trailing dot",
                vec![".spec."],
                vec![format!(
                    r#"{at}[0].jsonPath: Invalid value: ".spec.": is an invalid path: unexpected end of JSON path"#
                )],
            ),
            (
                "metadata",
                vec![".metadata.name"],
                vec![format!(
                    r#"{at}[0].jsonPath: Invalid value: ".metadata.name": must not point to fields in metadata"#
                )],
            ),
            (
                "a number",
                vec![".spec.price"],
                vec![format!(
                    r#"{at}[0].jsonPath: Invalid value: ".spec.price": must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed."#
                )],
            ),
            (
                "an object",
                vec![".spec"],
                vec![format!(
                    r#"{at}[0].jsonPath: Invalid value: ".spec": must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed."#
                )],
            ),
            (
                "twice",
                vec![".spec.color", ".spec.color"],
                vec![format!(
                    r#"{at}[1].jsonPath: Duplicate value: ".spec.color""#
                )],
            ),
            (
                "nine",
                vec![
                    ".spec.color",
                    ".spec.quantity",
                    ".spec.size",
                    ".spec.branded",
                    ".spec.labels.x",
                    ".spec.inner.a",
                    ".spec.inner.b",
                    ".spec.inner.c",
                    ".spec.inner.d",
                ],
                vec![format!("{at}: Too many: 9: must have at most 8 items")],
            ),
        ];
        for (name, paths, want) in cases {
            let got: Vec<String> = selectable_field_errors(&version(paths), "spec.versions[0]")
                .iter()
                .map(|e| e.message())
                .collect();
            assert_eq!(&got, want, "{name}");
        }
        let no_schema = json!({"name": "v1", "selectableFields": [{"jsonPath": ".spec.color"}]});
        assert_eq!(
            selectable_field_errors(&no_schema, "spec.versions[0]")[0].message(),
            format!(
                r#"{at}: Invalid value: "": may only be set when `version.schema.openAPIV3Schema` is not included"#
            )
        );
        assert_eq!(
            selectable_fields(&version(&[".spec.color", ".spec.size", ".spec.color"])),
            ["spec.color", "spec.size"]
        );
    }
}
