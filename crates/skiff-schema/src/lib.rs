//! OpenAPI v3 structural schemas of CustomResourceDefinitions, as upstream's
//! apiextensions-apiserver does them: the schema checks at CRD write time, and validation,
//! defaulting and pruning of custom resources, all on wire-form JSON.
//!
//! A [`Structural`] is parsed and checked once per CRD version ([`Structural::new`]), with
//! patterns compiled and flags precomputed, and is cheap to clone (an `Arc`). Per object:
//!
//! 1. on decode (read and write): [`Structural::prune`] drops unknown fields (reported as
//!    upstream's `unknown field "spec.foo"` warnings), then [`Structural::apply_defaults`];
//! 2. on write: [`Structural::validate`] (OpenAPI, embedded resources, list-type
//!    uniqueness), then the CEL rules the integrator finds with [`Structural::rule_sites`]
//!    and evaluates at each [`RuleVisit`] of [`Structural::walk_rules`].
//!
//! What stays with the API server: the root `metadata` (ObjectMeta validation and coercion of
//! its unknown fields), `apiVersion`/`kind` matching, CRD names/versions/scope, the
//! status-subresource restriction on root schema fields, and scale subresource paths.
//! Ratcheting of unchanged fields on update (upstream's CRDValidationRatcheting, GA in
//! 1.33) is [`Structural::ratchets`].

mod cel;
mod check;
mod error;
mod formats;
mod openapi;
mod schema;
mod walk;

use std::sync::Arc;

use serde_json::Value;

pub use cel::{Rule, RuleSite, RuleVisit};
pub use error::{ErrorKind, FieldError};

use schema::Schema;

/// A checked structural schema, ready to validate, default and prune objects.
#[derive(Debug, Clone)]
pub struct Structural {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: Schema,
    sites: Vec<RuleSite>,
    has_embedded: bool,
    has_list_sets: bool,
    has_defaults: bool,
}

impl Structural {
    /// Parses `schema` (a version's `schema.openAPIV3Schema`) and checks it as upstream does
    /// when a CRD is written: structural rules (`ValidateStructural`), the CRD schema rules
    /// (supported keywords and types, `metadata` restrictions, embedded resources,
    /// int-or-string, list and map types, `x-kubernetes-validations` fields) and defaults
    /// (each validates and is pruned). `base` prefixes error paths, e.g.
    /// `spec.versions[0].schema.openAPIV3Schema`.
    pub fn new(schema: &Value, base: &str) -> Result<Structural, Vec<FieldError>> {
        let mut parse_errs = Vec::new();
        let mut root = schema::parse(schema, base, &mut parse_errs);
        if !parse_errs.is_empty() {
            return Err(parse_errs);
        }
        let mut errs = Vec::new();
        if root.nullable {
            errs.push(FieldError::forbidden(
                &format!("{base}.nullable"),
                "nullable cannot be true at the root",
            ));
        }
        let structural = check::structural(&root, base);
        if structural.is_empty() {
            check::defaults(&root, base, &mut errs);
        } else {
            errs.extend(structural);
        }
        errs.extend(check::openapi_schema(&root, base));
        if !errs.is_empty() {
            return Err(errs);
        }
        let mut sites = Vec::new();
        cel::collect(&mut root, schema, "", true, None, &mut sites);
        Ok(Structural {
            inner: Arc::new(Inner {
                has_embedded: walk::has_embedded(&root),
                has_list_sets: walk::has_list_sets(&root),
                has_defaults: walk::has_defaults(&root),
                root,
                sites,
            }),
        })
    }

    /// Validates a whole custom resource: upstream's OpenAPI schema validation (type,
    /// required, enum, pattern, bounds, lengths, sizes, formats, allOf/anyOf/oneOf/not,
    /// nullable, additionalProperties, int-or-string), TypeMeta/ObjectMeta of embedded
    /// resources, and `x-kubernetes-list-type` set/map uniqueness. Not CEL rules (see
    /// [`Structural::walk_rules`]) and not the root `metadata`.
    pub fn validate(&self, object: &Value) -> Vec<FieldError> {
        let root = &self.inner.root;
        let mut errs = openapi::validate(root, object, None);
        if self.inner.has_embedded {
            walk::embedded_meta(&mut walk::FieldPath::default(), root, object, &mut errs);
        }
        if self.inner.has_list_sets {
            walk::list_sets_and_maps(&mut walk::FieldPath::default(), root, object, &mut errs);
        }
        errs
    }

    /// Validation ratcheting (upstream's CRDValidationRatcheting): on update, whether the
    /// error at `field` (a path as [`Structural::validate`] prints it) is forgiven because
    /// the value it concerns did not change: some node on the way from the root to it, with
    /// the old object's node correlated as upstream correlates them (object fields by name,
    /// `x-kubernetes-list-type: map` items by their keys; other lists' items not at all),
    /// exists in both and is equal. Invalid data that was stored before a schema tightened
    /// can thus be carried through updates of other fields.
    pub fn ratchets(&self, field: &str, object: &Value, old: &Value) -> bool {
        let mut schema = Some(&self.inner.root);
        let (mut new_v, mut old_v) = (Some(object), Some(old));
        let mut rest = field;
        loop {
            if let (Some(n), Some(o)) = (new_v, old_v) {
                if n == o {
                    return true;
                }
            }
            if rest.is_empty() {
                return false;
            }
            let step;
            if let Some(after) = rest.strip_prefix('[') {
                let Some(end) = after.find(']') else {
                    return false;
                };
                step = &after[..end];
                rest = &after[end + 1..];
                match schema.map(|s| s.ty.as_str()) {
                    Some("array") => {
                        let s = schema.expect("matched");
                        let Ok(i) = step.parse::<usize>() else {
                            return false;
                        };
                        new_v = new_v.and_then(|n| n.get(i));
                        old_v = match (s.list_type.as_deref(), new_v) {
                            (Some("map"), Some(item)) => {
                                old_v.and_then(Value::as_array).and_then(|items| {
                                    items.iter().find(|o| {
                                        s.list_map_keys.iter().all(|k| o.get(k) == item.get(k))
                                    })
                                })
                            }
                            _ => None,
                        };
                        schema = s.items.as_deref();
                    }
                    _ => {
                        new_v = new_v.and_then(|n| n.get(step));
                        old_v = old_v.and_then(|o| o.get(step));
                        schema = schema.and_then(|s| s.field(step));
                    }
                }
            } else {
                let name = rest.strip_prefix('.').unwrap_or(rest);
                let end = name.find(['.', '[']).unwrap_or(name.len());
                step = &name[..end];
                rest = &name[end..];
                new_v = new_v.and_then(|n| n.get(step));
                old_v = old_v.and_then(|o| o.get(step));
                schema = schema.and_then(|s| s.field(step));
            }
            if new_v.is_none() {
                return false;
            }
        }
    }

    /// Drops `null`s the schema neither allows nor defaults, then applies `default`s,
    /// including inside list items and `additionalProperties` values (upstream's
    /// `PruneNonNullableNullsWithoutDefaults` and `Default`, run on every decode).
    pub fn apply_defaults(&self, object: &mut Value) {
        let root = &self.inner.root;
        walk::prune_nulls(object, Some(root));
        if self.inner.has_defaults {
            walk::apply_defaults(object, root);
        }
    }

    /// Drops fields the schema does not specify, keeping `apiVersion`, `kind` and `metadata`
    /// at the root and in embedded resources, and everything under
    /// `x-kubernetes-preserve-unknown-fields` that the schema does not specify. Returns the
    /// pruned paths, sorted, as upstream's warnings name them (`spec.foo`,
    /// `spec.items[0].bar`; the warning is `unknown field "spec.foo"`).
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        walk::prune(
            object,
            Some(&self.inner.root),
            true,
            &mut String::new(),
            &mut pruned,
        );
        pruned.sort();
        pruned
    }

    /// Every schema node carrying `x-kubernetes-validations`, in schema order; compile each
    /// site's rules once against its `schema`.
    pub fn rule_sites(&self) -> &[RuleSite] {
        &self.inner.sites
    }

    /// Walks `object` beside the schema and calls `visit` for every non-null value at a rule
    /// site, with its field path and the correlated value in `old` (`None` on create, for
    /// new list entries and map keys, and where upstream does not correlate: list items of
    /// `set`/`atomic` lists and fields of `x-kubernetes-map-type: atomic` maps). Subtrees
    /// without rules are skipped.
    pub fn walk_rules(
        &self,
        object: &Value,
        old: Option<&Value>,
        visit: &mut dyn FnMut(RuleVisit<'_>),
    ) {
        let mut path = String::new();
        cel::walk(
            &self.inner.root,
            &self.inner.sites,
            object,
            old,
            &mut path,
            visit,
        );
    }

    /// The wire-JSON type of the root (`object` unless the schema is only
    /// preserve-unknown-fields).
    pub fn root_type(&self) -> &str {
        &self.inner.root.ty
    }
}

#[cfg(test)]
mod tests;
