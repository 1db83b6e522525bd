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
    let props = &mut s["properties"];
    props["metadata"] = metadata.clone();
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
    s
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
