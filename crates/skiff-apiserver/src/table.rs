//! `meta.k8s.io/v1` Table responses, which `kubectl get` asks for to print upstream's columns.

use serde_json::{json, Value};

use crate::handler::Api;
use crate::resources::ResourceInfo;

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

#[derive(Debug, Clone, Copy)]
pub struct TableOptions {
    pub include: IncludeObject,
}

impl TableOptions {
    /// Table options when the `Accept` header asks for a Table, else None.
    pub fn from_request(accept: &str, include_object: Option<&str>) -> Option<TableOptions> {
        let wants_table = accept
            .split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"));
        wants_table.then_some(TableOptions {
            include: match include_object {
                Some("None") => IncludeObject::None,
                Some("Object") => IncludeObject::Object,
                _ => IncludeObject::Metadata,
            },
        })
    }
}

/// Builds a Table of `objects`; column definitions only when `with_columns` (a watch sends
/// them with its first event only, as upstream).
pub fn table(
    _api: &Api,
    r: &ResourceInfo,
    objects: &[Value],
    opts: &TableOptions,
    with_columns: bool,
) -> Value {
    let now = chrono::Utc::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let cells = match &r.custom {
                Some(c) => {
                    skiff_apimachinery::table::custom_resource_row_cells(&c.columns, obj, now)
                }
                None => skiff_apimachinery::table::row_cells(&r.group, &r.kind, obj, now),
            };
            let mut row = json!({"cells": cells});
            match opts.include {
                IncludeObject::None => {}
                IncludeObject::Object => row["object"] = obj.clone(),
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    })
                }
            }
            row
        })
        .collect();
    let columns = if with_columns {
        match &r.custom {
            Some(c) => skiff_apimachinery::table::custom_resource_column_definitions(&c.columns),
            None => skiff_apimachinery::table::column_definitions(&r.group, &r.kind),
        }
    } else {
        vec![]
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Turns a List response into a Table, keeping its resourceVersion and continue token.
pub fn list_table(api: &Api, r: &ResourceInfo, list: &Value, opts: &TableOptions) -> Value {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut t = table(api, r, &items, opts, true);
    t["metadata"] = list["metadata"].clone();
    t
}
