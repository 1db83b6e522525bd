//! The schema model that decides how each part of an object merges and is owned: granular
//! or atomic maps, `atomic` / `set` / `map` (keyed) lists, scalars, and upstream's
//! "deduced" type for objects without a schema. Built from the static table of built-in
//! kinds ([`Schema::builtin`]) or from a CRD's OpenAPI v3 schema ([`Schema::from_openapi_v3`]).

mod builtin;
mod openapi;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

pub use builtin::builtin_type_name;

/// Index of a type in a [`Schema`].
pub type TypeId = usize;

/// The deduced type: maps granular (keys owned one by one), lists atomic, anything else a
/// leaf. Upstream's `__untyped_deduced_`, used for objects and fields with no schema.
pub const DEDUCED: TypeId = 0;
/// A value owned as a whole whatever its shape (upstream's `__untyped_atomic_`).
pub const ATOMIC: TypeId = 1;
/// A scalar leaf.
pub const SCALAR: TypeId = 2;

/// How a list's items are identified and merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced and owned as a whole (`x-kubernetes-list-type: atomic`, the default).
    Atomic,
    /// Scalars merged as a set, each value owned (`set`).
    Set,
    /// Maps merged by these key fields, each item owned (`map`).
    Map(Vec<String>),
}

/// A field of a struct-like map.
#[derive(Debug, Clone)]
pub struct Field {
    /// The field's type.
    pub ty: TypeId,
    /// The default upstream records for it: used for absent associative-list keys (a
    /// container port without `protocol` is keyed as `"TCP"`), and `{}` marks Go struct
    /// fields that are always present on upstream's typed objects.
    pub default: Option<Value>,
}

/// One type.
#[derive(Debug, Clone)]
pub enum Atom {
    /// A leaf: owned as a whole, replaced on apply.
    Scalar,
    /// A map or struct: named `fields`, other keys of type `elem` (deduced when `None`);
    /// `atomic` maps are leaves (`x-kubernetes-map-type: atomic`).
    Map {
        /// Declared fields (upstream "named fields").
        fields: HashMap<String, Field>,
        /// Type of undeclared keys.
        elem: Option<TypeId>,
        /// Owned and replaced as a whole.
        atomic: bool,
    },
    /// A list.
    List {
        /// Item type.
        elem: TypeId,
        /// Identity and merge of items.
        list_type: ListType,
    },
    /// The deduced type (see [`DEDUCED`]).
    Deduced,
    /// Any value, owned as a whole (see [`ATOMIC`]).
    AtomicAny,
}

/// A set of types, addressed by [`TypeId`]. Cheap to share behind an `Arc`; build once per
/// kind (built-ins) or per CRD version.
#[derive(Debug, Clone)]
pub struct Schema {
    types: Arc<Vec<Atom>>,
    root: TypeId,
    names: Arc<HashMap<String, TypeId>>,
}

/// What a value is, once its type and its actual shape are considered together.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape<'a> {
    /// Owned as a whole.
    Leaf,
    /// A granular map.
    Map {
        fields: Option<&'a HashMap<String, Field>>,
        elem: Option<TypeId>,
    },
    /// A granular list.
    List {
        elem: TypeId,
        list_type: &'a ListType,
    },
}

impl Schema {
    /// A schema whose root is deduced: for kinds with no schema at all.
    pub fn deduced() -> Self {
        Schema::with_base()
    }

    fn with_base() -> Self {
        Schema {
            types: Arc::new(vec![Atom::Deduced, Atom::AtomicAny, Atom::Scalar]),
            root: DEDUCED,
            names: Arc::new(HashMap::new()),
        }
    }

    pub(crate) fn push(&mut self, atom: Atom) -> TypeId {
        let types = Arc::make_mut(&mut self.types);
        types.push(atom);
        types.len() - 1
    }

    pub(crate) fn set(&mut self, ty: TypeId, atom: Atom) {
        if let Some(slot) = Arc::make_mut(&mut self.types).get_mut(ty) {
            *slot = atom;
        }
    }

    pub(crate) fn name(&mut self, name: &str, ty: TypeId) {
        Arc::make_mut(&mut self.names).insert(name.to_owned(), ty);
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<TypeId> {
        self.names.get(name).copied()
    }

    pub(crate) fn with_root(&self, root: TypeId) -> Schema {
        Schema {
            root,
            ..self.clone()
        }
    }

    /// The type of the whole object.
    pub fn root(&self) -> TypeId {
        self.root
    }

    /// The same types with another root (a named type), if it exists.
    pub fn rooted_at(&self, name: &str) -> Option<Schema> {
        Some(self.with_root(self.lookup(name)?))
    }

    /// The atom of a type (unknown ids are deduced, so a bad id never panics).
    pub fn atom(&self, ty: TypeId) -> &Atom {
        self.types.get(ty).unwrap_or(&Atom::Deduced)
    }

    /// How `value` of type `ty` is walked: a value whose shape does not fit its type (a
    /// string where a map is declared) is treated as a leaf rather than an error.
    pub(crate) fn shape<'a>(&'a self, ty: TypeId, value: &Value) -> Shape<'a> {
        match (self.atom(ty), value) {
            (
                Atom::Map {
                    atomic: false,
                    fields,
                    elem,
                },
                Value::Object(_),
            ) => Shape::Map {
                fields: Some(fields),
                elem: *elem,
            },
            (Atom::List { elem, list_type }, Value::Array(_)) if *list_type != ListType::Atomic => {
                Shape::List {
                    elem: *elem,
                    list_type,
                }
            }
            (Atom::Deduced, Value::Object(_)) => Shape::Map {
                fields: None,
                elem: Some(DEDUCED),
            },
            _ => Shape::Leaf,
        }
    }

    /// Type of `key` in a map shape, and whether it is a declared (named) field.
    pub(crate) fn field_type<'a>(
        fields: Option<&'a HashMap<String, Field>>,
        elem: Option<TypeId>,
        key: &str,
    ) -> (TypeId, Option<&'a Field>) {
        match fields.and_then(|f| f.get(key)) {
            Some(f) => (f.ty, Some(f)),
            None => (elem.unwrap_or(DEDUCED), None),
        }
    }

    /// Whether a map (or list item) type declares this field, so a set naming a path below
    /// it also treats the field itself as owned (upstream `EnsureNamedFieldsAreMembers`).
    pub(crate) fn named_field(&self, ty: TypeId, name: &str) -> bool {
        matches!(self.atom(ty), Atom::Map { fields, .. } if fields.contains_key(name))
    }

    /// The type of the child at a path element when walking without a value.
    pub(crate) fn child_type(&self, ty: TypeId, pe: &crate::path::PathElement) -> TypeId {
        use crate::path::PathElement;
        match (self.atom(ty), pe) {
            (Atom::Map { fields, elem, .. }, PathElement::Field(n)) => fields
                .get(n)
                .map(|f| f.ty)
                .unwrap_or(elem.unwrap_or(DEDUCED)),
            (Atom::List { elem, .. }, _) => *elem,
            (Atom::Deduced, PathElement::Field(_)) => DEDUCED,
            _ => ATOMIC,
        }
    }
}
