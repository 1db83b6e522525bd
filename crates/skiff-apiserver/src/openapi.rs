//! OpenAPI v3 documents, one per group-version, generated from the k8s-openapi types.
//!
//! kubectl relies on them twice: `explain` renders `components.schemas`, and `apply`
//! decides from each kind's PATCH operation (its `x-kubernetes-group-version-kind` and a
//! `fieldValidation` parameter) that the server validates fields itself, so it skips
//! client-side validation. Documents are built on first request and cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::resources::{Registry, ResourceInfo};

/// Lazily built documents by path (`api/v1`, `apis/apps/v1`), for one generation of the
/// served resources: a CRD change starts a new cache.
#[derive(Default)]
pub struct OpenApi {
    docs: Mutex<(u64, HashMap<String, Arc<Value>>)>,
}

/// The hash a group-version's document is published under: fixed for built-in groups,
/// new with every change to the custom resources for the others, so clients that cache
/// documents by URL (kubectl does) fetch a changed schema.
fn document_hash(resources: &[Arc<ResourceInfo>], generation: u64) -> String {
    if resources.iter().any(|r| r.custom.is_some()) {
        format!("{generation:040X}")
    } else {
        crate::VERSION_HASH.to_owned()
    }
}

/// The document path of a group-version.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

impl OpenApi {
    /// `/openapi/v3`: where each group-version's document lives.
    pub fn root(&self, registry: &Registry) -> Value {
        let snapshot = registry.snapshot();
        let paths: Map<String, Value> = snapshot
            .group_versions()
            .iter()
            .map(|(g, v, resources)| {
                let path = gv_path(g, v);
                let hash = document_hash(resources, snapshot.generation);
                let url = format!("/openapi/v3/{path}?hash={hash}");
                (path, json!({"serverRelativeURL": url}))
            })
            .collect();
        json!({"paths": paths})
    }

    /// The document for one group-version path, or None if no such group-version.
    pub fn document(&self, registry: &Registry, path: &str) -> Option<Arc<Value>> {
        let snapshot = registry.snapshot();
        {
            let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
            if docs.0 != snapshot.generation {
                *docs = (snapshot.generation, HashMap::new());
            }
            if let Some(doc) = docs.1.get(path) {
                return Some(doc.clone());
            }
        }
        let (_, version, resources) = snapshot
            .group_versions()
            .into_iter()
            .find(|(g, v, _)| gv_path(g, v) == path)?;
        let doc = Arc::new(build(&version, &resources));
        let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        if docs.0 == snapshot.generation {
            docs.1.insert(path.to_owned(), doc.clone());
        }
        Some(doc)
    }
}

/// `/openapi/v2` as JSON: the definitions of the served custom resources, one per served
/// version, as upstream's CRD OpenAPI v2 builder publishes them. Built-in kinds are
/// described in the v3 documents only (kubectl reads v3; v2 is what clients that still
/// read Swagger, and upstream's CRD publishing tests, look custom resources up in).
pub fn v2_document(registry: &Registry) -> Value {
    let snapshot = registry.snapshot();
    let mut definitions = Map::new();
    for (_, _, resources) in snapshot.group_versions() {
        for r in &resources {
            if let Some(c) = &r.custom {
                definitions.insert(r.schema_name.clone(), v2_definition(r, &c.schema));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": crate::discovery::version()["gitVersion"]},
        "paths": {},
        "definitions": definitions,
    })
}

/// One custom resource version's v2 definition (upstream's `buildKubeNative` for v2): a
/// schema that keeps unknown fields at its root, or none, is published as a bare object
/// (kubectl would otherwise validate against it); any other is converted to v2 and gains
/// `metadata`, `apiVersion` and `kind`.
fn v2_definition(r: &ResourceInfo, schema: &Value) -> Value {
    let bare = !schema.is_object() || schema["x-kubernetes-preserve-unknown-fields"] == true;
    let mut d = if bare {
        json!({"type": "object"})
    } else {
        let mut s = to_v2(schema);
        if !s["properties"].is_object() {
            s["properties"] = json!({});
        }
        s["properties"]["metadata"] = json!({
            "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "description": OBJECT_META_DESCRIPTION,
        });
        custom_schema_type_meta(&mut s["properties"]);
        s
    };
    d["x-kubernetes-group-version-kind"] =
        json!([{"group": r.group, "version": r.version, "kind": r.kind}]);
    if let Some(fields) = r.custom.as_deref().and_then(selectable_fields) {
        d["x-kubernetes-selectable-fields"] = fields;
    }
    d
}

/// A custom kind's `selectableFields` as upstream publishes them in OpenAPI (v2 and v3):
/// `[{"fieldPath": "spec.color"}, ...]`, or nothing when it declares none.
fn selectable_fields(c: &crate::crd::Custom) -> Option<Value> {
    (!c.selectable_fields.is_empty()).then(|| {
        c.selectable_fields
            .iter()
            .map(|f| json!({ "fieldPath": f }))
            .collect()
    })
}

/// Upstream's `ToStructuralOpenAPIV2`, on the schema as written: v2 has no `allOf`,
/// `anyOf`, `oneOf`, `not` or `nullable`; a nullable or unknown-preserving node loses its
/// `properties` and `items` (a nullable one its type too), and an array left without
/// items its type; a nullable property is no longer required.
fn to_v2(schema: &Value) -> Value {
    let Some(object) = schema.as_object() else {
        return schema.clone();
    };
    let mut s: Map<String, Value> = object
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "allOf" | "anyOf" | "oneOf" | "not"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let nullable = s.remove("nullable") == Some(Value::Bool(true));
    if nullable {
        s.remove("type");
    }
    if nullable || s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        s.remove("properties");
        s.remove("items");
    }
    if s.get("type") == Some(&json!("array")) && !s.contains_key("items") {
        s.remove("type");
    }
    if let Some(Value::Object(props)) = s.get_mut("properties") {
        let nullable_props: Vec<String> = props
            .iter()
            .filter(|(_, p)| p["nullable"] == true)
            .map(|(k, _)| k.clone())
            .collect();
        for p in props.values_mut() {
            *p = to_v2(p);
        }
        if let Some(Value::Array(required)) = s.get_mut("required") {
            required.retain(|f| !nullable_props.iter().any(|n| f == n.as_str()));
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = s.get_mut(key) {
            if sub.is_object() {
                *sub = to_v2(sub);
            }
        }
    }
    Value::Object(s)
}

fn build(version: &str, resources: &[Arc<ResourceInfo>]) -> Value {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    for r in resources {
        if let Some(schema) = r.schema {
            schema(&mut generator);
        }
    }
    let metadata_ref = resources.iter().any(|r| r.custom.is_some()).then(|| {
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>()
    });
    let mut schemas = generator.take_definitions(true);
    for r in resources {
        if let (Some(c), Some(meta)) = (&r.custom, &metadata_ref) {
            schemas.insert(
                r.schema_name.clone(),
                custom_schema(&c.schema, meta.as_value()),
            );
        }
    }
    let mut paths = Map::new();
    for r in resources {
        let gvk = json!({"group": r.group, "version": version, "kind": r.kind});
        if let Some(Value::Object(schema)) = schemas.get_mut(&r.schema_name) {
            schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
            if let Some(fields) = r.custom.as_deref().and_then(selectable_fields) {
                schema.insert("x-kubernetes-selectable-fields".into(), fields);
            }
        }
        let (collection, item) = resource_paths(r);
        let reference = json!({"$ref": format!("#/components/schemas/{}", r.schema_name)});
        let body = json!({"content": {"application/json": {"schema": reference}}});
        let op = |verb: &str, params: Vec<Value>, with_body: bool| {
            let mut op = json!({
                "operationId": format!("{verb}{}", r.kind),
                "tags": [r.api_version()],
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
            });
            if with_body {
                op["requestBody"] = body.clone();
            }
            op
        };
        let write_params = || {
            ["dryRun", "fieldManager", "fieldValidation"]
                .iter()
                .map(|n| query_param(n))
                .collect::<Vec<_>>()
        };
        let mut patch_params = write_params();
        patch_params.push(typed_query_param("force", "boolean"));
        let list_params = || {
            let mut params: Vec<Value> = [
                "labelSelector",
                "fieldSelector",
                "resourceVersion",
                "resourceVersionMatch",
                "continue",
            ]
            .iter()
            .map(|n| query_param(n))
            .collect();
            for (name, ty) in [
                ("limit", "integer"),
                ("timeoutSeconds", "integer"),
                ("watch", "boolean"),
                ("allowWatchBookmarks", "boolean"),
                ("sendInitialEvents", "boolean"),
            ] {
                params.push(typed_query_param(name, ty));
            }
            params
        };
        let delete_params = || {
            vec![
                query_param("dryRun"),
                typed_query_param("gracePeriodSeconds", "integer"),
                query_param("propagationPolicy"),
            ]
        };
        let mut patch = op("patch", patch_params, false);
        // Strategic merge patch is served but not declared: kubectl (1.29+) takes a declared
        // one as the sign that the schemas carry `x-kubernetes-patch-merge-key`, and would
        // then merge lists these generated schemas leave unannotated as atomic (a second
        // `kubectl apply` of an unchanged Deployment would no longer be "unchanged").
        patch["requestBody"] = json!({"content": {
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
            "application/json-patch+json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
        }, "required": true});
        let mut delete_collection = op(
            "deletecollection",
            [delete_params(), list_params()].concat(),
            false,
        );
        delete_collection["operationId"] = json!(format!("deleteCollection{}", r.kind));
        let mut collection_path = json!({
            "get": op("list", list_params(), false),
            "post": op("post", write_params(), true),
            "delete": delete_collection,
        });
        let mut item_path = json!({
            "get": op("get", vec![], false),
            "put": op("put", write_params(), true),
            "patch": patch,
            "delete": op("delete", delete_params(), false),
        });
        // Path parameters at the path level, as upstream's documents declare them.
        let namespace = path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        );
        let name = path_param("name", &format!("name of the {}", r.kind));
        if r.namespaced {
            collection_path["parameters"] = json!([namespace.clone()]);
            item_path["parameters"] = json!([name, namespace]);
        } else {
            item_path["parameters"] = json!([name]);
        }
        if r.create_only {
            // Reviews are only POSTed to their collection.
            collection_path = json!({"post": op("post", write_params(), true)});
            paths.insert(collection, collection_path);
            continue;
        }
        paths.insert(collection, collection_path);
        paths.insert(item, item_path);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// A CRD version's schema as upstream publishes it: `metadata` is ObjectMeta, and
/// `apiVersion` and `kind` are described even where the CRD leaves them out.
fn custom_schema(schema: &Value, metadata: &Value) -> Value {
    let mut s = schema.clone();
    if !s.is_object() {
        s = json!({"type": "object"});
    }
    if !s["properties"].is_object() {
        s["properties"] = json!({});
    }
    // As upstream publishes it: the reference wrapped in `allOf` (OpenAPI 3.0 ignores a
    // `$ref`'s siblings) beside the field's own description, which `kubectl explain` shows.
    s["properties"]["metadata"] = json!({
        "allOf": [metadata],
        "description": OBJECT_META_DESCRIPTION,
    });
    custom_schema_type_meta(&mut s["properties"]);
    s
}

/// The description upstream gives a custom resource's `metadata`.
const OBJECT_META_DESCRIPTION: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// `apiVersion` and `kind`, described in a custom resource's published properties where
/// its CRD leaves them out.
fn custom_schema_type_meta(props: &mut Value) {
    for (field, description) in [
        (
            "apiVersion",
            "APIVersion defines the versioned schema of this representation of an object.",
        ),
        (
            "kind",
            "Kind is a string value representing the REST resource this object represents.",
        ),
    ] {
        if !props[field].is_object() {
            props[field] = json!({"type": "string", "description": description});
        }
    }
}

fn resource_paths(r: &ResourceInfo) -> (String, String) {
    let base = format!("/{}", gv_path(&r.group, &r.version));
    let scope = if r.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let collection = format!("{base}{scope}/{}", r.plural);
    let item = format!("{collection}/{{name}}");
    (collection, item)
}

fn typed_query_param(name: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true,
           "schema": {"type": "string", "uniqueItems": true}})
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

#[cfg(test)]
mod v2_tests {
    use super::*;

    #[test]
    fn v2_drops_what_swagger_cannot_say_as_upstream() {
        // (schema as written, as published in v2)
        let cases = [
            (json!({"type": "string"}), json!({"type": "string"})),
            (
                json!({"type": "object", "oneOf": [{"required": ["a"]}], "properties": {"a": {"type": "integer", "not": {"minimum": 3}}}}),
                json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
            ),
            (
                json!({"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "object", "nullable": true, "properties": {"x": {}}}, "b": {"type": "string"}}}),
                json!({"type": "object", "required": ["b"], "properties": {"a": {}, "b": {"type": "string"}}}),
            ),
            (
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"a": {}}}),
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            ),
            (
                json!({"type": "array", "x-kubernetes-preserve-unknown-fields": true, "items": {"type": "string"}}),
                json!({"x-kubernetes-preserve-unknown-fields": true}),
            ),
            (
                json!({"type": "object", "additionalProperties": {"type": "string", "anyOf": [{}]}}),
                json!({"type": "object", "additionalProperties": {"type": "string"}}),
            ),
        ];
        for (written, published) in cases {
            assert_eq!(to_v2(&written), published, "{written}");
        }
    }

    #[test]
    fn a_schema_preserving_unknown_fields_at_its_root_is_a_bare_object() {
        let r = crate::resources::builtins()
            .into_iter()
            .find(|r| r.kind == "ConfigMap")
            .unwrap();
        let gvk = json!([{"group": "", "version": "v1", "kind": "ConfigMap"}]);
        let d = v2_definition(
            &r,
            &json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"spec": {}}}),
        );
        assert_eq!(
            d,
            json!({"type": "object", "x-kubernetes-group-version-kind": gvk})
        );
        let d = v2_definition(
            &r,
            &json!({"type": "object", "description": "d", "properties": {"spec": {"type": "object"}}}),
        );
        assert_eq!(d["description"], "d");
        assert_eq!(d["properties"]["spec"], json!({"type": "object"}));
        assert_eq!(d["properties"]["kind"]["type"], "string");
        assert!(d["properties"]["metadata"]["$ref"].is_string());
        assert_eq!(d["x-kubernetes-group-version-kind"], gvk);
    }
}
