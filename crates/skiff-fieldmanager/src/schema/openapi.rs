//! Schemas of custom resources, from a CRD version's `openAPIV3Schema`, reading the same
//! extensions upstream's structural schema converter reads.

use std::collections::HashMap;

use serde_json::Value;

use super::{Atom, Field, ListType, Schema, TypeId, ATOMIC, DEDUCED, SCALAR};

/// Nesting deeper than this is treated as deduced (schemas are client input).
const MAX_DEPTH: usize = 64;

impl Schema {
    /// Builds the schema of a custom resource from its OpenAPI v3 schema. `apiVersion`,
    /// `kind` and `metadata` get the built-in ObjectMeta type, as upstream adds them.
    /// Unknown or malformed parts degrade to the deduced type (never an error: the CRD
    /// was validated when it was written).
    pub fn from_openapi_v3(schema: &Value) -> Schema {
        let mut out = Schema::with_base();
        let root = convert(&mut out, schema, 0);
        let meta = Schema::builtin("v1", "ConfigMap").and_then(|cm| match cm.atom(cm.root()) {
            Atom::Map { fields, .. } => fields.get("metadata").map(|f| (cm.clone(), f.ty)),
            _ => None,
        });
        if let Some((cm, meta_ty)) = meta {
            let meta_id = import(&mut out, &cm, meta_ty, &mut HashMap::new());
            if let Atom::Map {
                fields,
                elem,
                atomic,
            } = out.atom(root).clone()
            {
                let mut fields = fields;
                // The root's metadata is always ObjectMeta, whatever the schema says.
                fields.insert(
                    "metadata".into(),
                    Field {
                        ty: meta_id,
                        default: None,
                    },
                );
                add_object_fields(&mut fields, meta_id);
                out.set(
                    root,
                    Atom::Map {
                        fields,
                        elem,
                        atomic,
                    },
                );
            }
        }
        out.with_root(root)
    }
}

/// Copies type `ty` of `from` (and what it reaches) into `to`.
fn import(
    to: &mut Schema,
    from: &Schema,
    ty: TypeId,
    seen: &mut HashMap<TypeId, TypeId>,
) -> TypeId {
    if ty <= SCALAR {
        return ty;
    }
    if let Some(id) = seen.get(&ty) {
        return *id;
    }
    let id = to.push(Atom::Scalar);
    seen.insert(ty, id);
    let atom = match from.atom(ty).clone() {
        Atom::Map {
            fields,
            elem,
            atomic,
        } => Atom::Map {
            fields: fields
                .into_iter()
                .map(|(k, f)| {
                    (
                        k,
                        Field {
                            ty: import(to, from, f.ty, seen),
                            default: f.default,
                        },
                    )
                })
                .collect(),
            elem: elem.map(|e| import(to, from, e, seen)),
            atomic,
        },
        Atom::List { elem, list_type } => Atom::List {
            elem: import(to, from, elem, seen),
            list_type,
        },
        other => other,
    };
    to.set(id, atom);
    id
}

/// The fields every object has whatever its schema lists, as upstream adds them to a root
/// or an embedded resource: `apiVersion` and `kind` as scalars, and `metadata` of type
/// `metadata` unless the schema gives one.
fn add_object_fields(fields: &mut HashMap<String, Field>, metadata: TypeId) {
    for (name, ty) in [
        ("apiVersion", SCALAR),
        ("kind", SCALAR),
        ("metadata", metadata),
    ] {
        fields
            .entry(name.into())
            .or_insert(Field { ty, default: None });
    }
}

fn convert(out: &mut Schema, s: &Value, depth: usize) -> TypeId {
    let Value::Object(m) = s else { return DEDUCED };
    if depth > MAX_DEPTH {
        return DEDUCED;
    }
    if m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return SCALAR;
    }
    let preserve = m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "object" => {
            if m.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic") {
                return ATOMIC;
            }
            let mut fields = HashMap::new();
            if let Some(Value::Object(props)) = m.get("properties") {
                for (name, p) in props {
                    let ty = convert(out, p, depth + 1);
                    let default = p.get("default").cloned();
                    fields.insert(name.clone(), Field { ty, default });
                }
            }
            let elem = match m.get("additionalProperties") {
                Some(ap @ Value::Object(_)) => Some(convert(out, ap, depth + 1)),
                _ if preserve => Some(DEDUCED),
                _ => None,
            };
            if m.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true)) {
                add_object_fields(&mut fields, DEDUCED);
            }
            out.push(Atom::Map {
                fields,
                elem,
                atomic: false,
            })
        }
        "array" => {
            let elem = m
                .get("items")
                .map(|i| convert(out, i, depth + 1))
                .unwrap_or(DEDUCED);
            let list_type = match m.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => ListType::Set,
                Some("map") => {
                    let keys: Vec<String> = m
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|ks| {
                            ks.iter()
                                .filter_map(|k| k.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    if keys.is_empty() {
                        ListType::Atomic
                    } else {
                        ListType::Map(keys)
                    }
                }
                _ => ListType::Atomic,
            };
            out.push(Atom::List { elem, list_type })
        }
        "" if preserve => DEDUCED,
        "" if m.contains_key("properties") => convert(
            out,
            &{
                let mut c = m.clone();
                c.insert("type".into(), Value::from("object"));
                Value::Object(c)
            },
            depth,
        ),
        "" => DEDUCED,
        _ => SCALAR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crd_schema_reads_list_and_map_extensions() {
        let s = Schema::from_openapi_v3(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "items": {"type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "plain": {"type": "array", "items": {"type": "string"}},
                    "sel": {"type": "object", "x-kubernetes-map-type": "atomic"},
                    "port": {"x-kubernetes-int-or-string": true},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}
            }
        }));
        let Atom::Map { fields, .. } = s.atom(s.root()) else {
            panic!()
        };
        assert!(fields.contains_key("metadata"));
        let Atom::Map { fields: spec, .. } = s.atom(fields["spec"].ty) else {
            panic!()
        };
        assert!(
            matches!(s.atom(spec["items"].ty), Atom::List { list_type: ListType::Map(k), .. } if k == &["name"])
        );
        assert!(matches!(
            s.atom(spec["tags"].ty),
            Atom::List {
                list_type: ListType::Set,
                ..
            }
        ));
        assert!(matches!(
            s.atom(spec["plain"].ty),
            Atom::List {
                list_type: ListType::Atomic,
                ..
            }
        ));
        assert_eq!(spec["sel"].ty, ATOMIC);
        assert_eq!(spec["port"].ty, SCALAR);
        assert!(matches!(
            s.atom(spec["free"].ty),
            Atom::Map {
                elem: Some(DEDUCED),
                ..
            }
        ));
    }

    #[test]
    fn malformed_schemas_degrade_to_deduced() {
        for bad in [
            json!(null),
            json!(3),
            json!({"type": 7}),
            json!({"type": "array", "items": 1}),
        ] {
            let _ = Schema::from_openapi_v3(&bad);
        }
    }
}
