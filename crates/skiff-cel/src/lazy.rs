//! JSON objects as CEL maps that convert their fields on first use.
//!
//! Converting a whole object to CEL values before each evaluation cost more than evaluating:
//! a rule reads a few fields, but every field of `self` (and of each element a comprehension
//! copies into its variable) was converted and allocated. A [`JsonMap`] borrows the object and
//! its schema; it lists its fields (under their escaped CEL names) the first time it is read,
//! and converts a field's value the first time that field is read. Its clones share what was
//! converted, so a comprehension's copy of an element costs one reference count.
//!
//! A `JsonMap` is not the `cel` crate's built-in map: it works through `Val`'s traits, which
//! the interpreter and the libraries use for maps, but code that downcasts to `CelMap` does
//! not see it as one. Two such places matter and are handled: a built-in map's `==` (only
//! equal to built-in maps), which `library::rewrite` avoids by putting map and list literals
//! on the right of `==` and `!=`; and converting a result to `cel::Value`, which
//! `convert::val_to_json` replaces. Left: `x in [{...}]` with `x` an object of the input is
//! false, as the built-in list compares its map literal with the built-in map's `==`.

use crate::convert::to_val;
use crate::schema;
use cel::common::traits::{self, Container, Indexer, Iterable, Sizer, Zeroer};
use cel::common::types::{CelBool, CelDouble, CelInt, CelString, CelUInt, Kind, Type, MAP_TYPE};
use cel::common::value::{CowVal, Val};
use cel::ExecutionError;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Objects with more fields than this get a name index; smaller ones are scanned, which is
/// faster than hashing for the handful of fields most objects have.
const INDEXED_FIELDS: usize = 16;

/// A JSON object seen as a CEL `map`, typed by its schema (`None`: dynamic).
#[derive(Clone, Debug)]
pub(crate) struct JsonMap<'a> {
    inner: Arc<Inner<'a>>,
}

#[derive(Debug)]
struct Inner<'a> {
    fields: &'a serde_json::Map<String, Value>,
    schema: Option<&'a Value>,
    /// The fields CEL can reach, in the object's order, listed on first use.
    entries: OnceLock<Entries<'a>>,
}

#[derive(Debug)]
struct Entries<'a> {
    list: Vec<Entry<'a>>,
    /// CEL name to position in `list`, for objects with many fields.
    index: Option<HashMap<&'a str, usize>>,
}

#[derive(Debug)]
struct Entry<'a> {
    /// The name CEL code uses (escaped for declared properties, as upstream).
    key: CelString<'a>,
    json: &'a Value,
    schema: Option<&'a Value>,
    value: OnceLock<Box<dyn Val + 'a>>,
}

impl<'a> Entry<'a> {
    fn value(&self) -> &(dyn Val + 'a) {
        self.value
            .get_or_init(|| to_val(self.json, self.schema))
            .as_ref()
    }
}

impl<'a> JsonMap<'a> {
    pub(crate) fn new(
        fields: &'a serde_json::Map<String, Value>,
        schema: Option<&'a Value>,
    ) -> Self {
        JsonMap {
            inner: Arc::new(Inner {
                fields,
                schema,
                entries: OnceLock::new(),
            }),
        }
    }

    /// The fields as CEL sees them: declared properties under their escaped names (those that
    /// can't be escaped are unreachable, as upstream), other keys as they are, typed by
    /// `additionalProperties` when the schema has it.
    fn entries(&self) -> &Entries<'a> {
        let inner = &*self.inner;
        inner.entries.get_or_init(|| {
            let props = inner.schema.and_then(schema::properties);
            let additional = inner.schema.and_then(schema::additional_properties);
            let list: Vec<Entry<'a>> = inner
                .fields
                .iter()
                .filter_map(|(key, json)| {
                    let (name, schema) = match props.and_then(|p| p.get(key)) {
                        Some(prop) => (schema::escape(key)?, Some(prop)),
                        None => (std::borrow::Cow::Borrowed(key.as_str()), additional),
                    };
                    Some(Entry {
                        key: CelString::from(name),
                        json,
                        schema,
                        value: OnceLock::new(),
                    })
                })
                .collect();
            let index = (list.len() > INDEXED_FIELDS).then(|| {
                let mut index = HashMap::with_capacity(list.len());
                for (i, entry) in list.iter().enumerate() {
                    if let Some(name) = entry.key.as_borrowed() {
                        index.entry(name).or_insert(i);
                    }
                }
                index
            });
            Entries { list, index }
        })
    }

    /// The field CEL calls `name` and its schema, found without listing the fields: `None`
    /// when that takes the listing (an escaped name), `Some(None)` when there is no such field.
    ///
    /// A name without `__` is no escaped name, so it is the field's own key: a declared
    /// property whose name needs no escaping, or an undeclared key.
    #[allow(clippy::type_complexity)]
    fn direct(&self, name: &str) -> Option<Option<(&'a Value, Option<&'a Value>)>> {
        if name.contains("__") {
            return None;
        }
        let inner = &*self.inner;
        let found = if inner.fields.len() <= INDEXED_FIELDS {
            inner.fields.iter().find(|(k, _)| k.as_str() == name)
        } else {
            inner.fields.get_key_value(name)
        };
        let Some((key, json)) = found else {
            return Some(None);
        };
        let props = inner.schema.and_then(schema::properties);
        Some(match props.and_then(|p| p.get(key)) {
            // A declared reserved word is reachable only as `__word__`.
            Some(prop) => {
                (schema::escape(key).as_deref() == Some(name)).then_some((json, Some(prop)))
            }
            None => Some((json, inner.schema.and_then(schema::additional_properties))),
        })
    }

    fn find(&self, name: &str) -> Option<&Entry<'a>> {
        let entries = self.entries();
        match &entries.index {
            // Only escaped names are owned (not in the index), and each of them has a `__`.
            Some(index) if !name.contains("__") => {
                index.get(name).and_then(|&i| entries.list.get(i))
            }
            _ => entries.list.iter().find(|e| e.key.inner() == name),
        }
    }
}

/// Whether `key` is of a type maps can be indexed with (a miss is then "no such key").
fn is_lookup_key(key: &dyn Val) -> bool {
    key.downcast_ref::<CelString>().is_some()
        || key.downcast_ref::<CelInt>().is_some()
        || key.downcast_ref::<CelUInt>().is_some()
        || key.downcast_ref::<CelBool>().is_some()
        || key.downcast_ref::<CelDouble>().is_some()
}

fn no_such_key(key: &dyn Val) -> ExecutionError {
    match key.downcast_ref::<CelString>() {
        Some(s) => ExecutionError::no_such_key(s.inner()),
        None => match cel::Value::try_from(key) {
            Ok(cel::Value::Int(i)) => ExecutionError::no_such_key(&i.to_string()),
            Ok(cel::Value::UInt(u)) => ExecutionError::no_such_key(&u.to_string()),
            Ok(cel::Value::Float(f)) => ExecutionError::no_such_key(&f.to_string()),
            Ok(cel::Value::Bool(b)) => ExecutionError::no_such_key(&b.to_string()),
            _ => ExecutionError::no_such_key(""),
        },
    }
}

impl<'a> Val for JsonMap<'a> {
    fn get_type(&self) -> &Type {
        &MAP_TYPE
    }

    fn cel_type() -> &'static Type {
        &MAP_TYPE
    }

    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn into_indexer<'v>(self: Box<Self>) -> Option<Box<dyn Indexer + 'v>>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }

    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        Some(self)
    }

    fn equals(&self, other: &dyn Val) -> bool {
        // Any map, lazy or built-in, through its traits: same size, and each of our keys
        // present in `other` with an equal value.
        if other.get_type().kind() != Kind::Map {
            return false;
        }
        let (Some(size), Some(indexer)) = (other.as_sizer(), other.as_indexer()) else {
            return false;
        };
        let entries = &self.entries().list;
        *size.size().inner() == entries.len() as i64
            && entries.iter().all(|e| {
                indexer
                    .get(&e.key)
                    .is_ok_and(|theirs| e.value().equals(theirs.as_ref()))
            })
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(self.clone())
    }
}

impl Container for JsonMap<'_> {
    fn contains(&self, key: &dyn Val) -> Result<bool, ExecutionError> {
        match key.downcast_ref::<CelString>() {
            Some(s) => Ok(self.find(s.inner()).is_some()),
            None if is_lookup_key(key) => Ok(false),
            None => Err(ExecutionError::UnsupportedKeyType(
                cel::Value::try_from(key).unwrap_or(cel::Value::Null),
            )),
        }
    }
}

impl<'a> Indexer for JsonMap<'a> {
    fn get<'b, 'v>(&'b self, key: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        match key.downcast_ref::<CelString>() {
            Some(s) => {
                if self.inner.entries.get().is_none() {
                    // Reading a field or two of an object not listed yet: look the field up
                    // directly rather than list them all.
                    if let Some(direct) = self.direct(s.inner()) {
                        return match direct {
                            Some((json, schema)) => Ok(CowVal::Owned(to_val(json, schema))),
                            None => Err(no_such_key(key)),
                        };
                    }
                }
                match self.find(s.inner()) {
                    Some(entry) => Ok(CowVal::Borrowed(entry.value())),
                    None => Err(no_such_key(key)),
                }
            }
            None if is_lookup_key(key) => Err(no_such_key(key)),
            None => Err(ExecutionError::UnexpectedType {
                got: key.get_type().name().to_owned(),
                want: "map key".to_owned(),
            }),
        }
    }

    fn steal<'v>(self: Box<Self>, key: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(key).map(CowVal::into_owned)
    }
}

impl<'a> Iterable for JsonMap<'a> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn traits::Iterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        Box::new(Keys(self.entries().list.iter()))
    }
}

/// The keys of a [`JsonMap`], in the object's order.
struct Keys<'b, 'a>(std::slice::Iter<'b, Entry<'a>>);

impl<'b, 'a: 'v, 'v> traits::Iterator<'b, 'v> for Keys<'b, 'a> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        self.0.next().map(|e| &e.key as &dyn Val)
    }
}

impl Sizer for JsonMap<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.entries().list.len() as i64)
    }
}

impl Zeroer for JsonMap<'_> {
    fn is_zero_value(&self) -> bool {
        self.entries().list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Bindings, Env, Program};
    use serde_json::{json, Value};

    fn schema() -> Value {
        let item = json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 16}, "port": {"type": "integer"}}});
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "items": {"type": "array", "maxItems": 8, "items": item},
                "labels": {"type": "object", "maxProperties": 8,
                    "additionalProperties": {"type": "string", "maxLength": 16}},
                "namespace": {"type": "string"},
                "ratio": {"type": "number"},
            }},
        }})
    }

    fn object() -> Value {
        json!({"spec": {
            "items": [{"name": "a", "port": 80}, {"name": "b", "port": 443}],
            "labels": {"app": "web", "tier": "front"},
            "namespace": "prod",
            "ratio": 1,
        }})
    }

    /// Evaluates `expr` on `self` = [`object`] and `oldSelf` = `old`.
    fn eval(expr: &str, old: &Value) -> Value {
        let env = Env::crd_rule(&schema(), true);
        let program = Program::compile(expr, &env).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let object = object();
        let bindings = Bindings::new().with("self", &object).with("oldSelf", old);
        program
            .eval(&bindings)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    #[test]
    fn objects_of_the_input_equal_maps_of_any_kind_on_either_side() {
        let same = object();
        for expr in [
            "self == oldSelf",
            "self.spec.labels == {'app': 'web', 'tier': 'front'}",
            "{'app': 'web', 'tier': 'front'} == self.spec.labels",
            "[{'name': 'a', 'port': 80}, {'name': 'b', 'port': 443}] == self.spec.items",
            "self.spec.items[0] == {'port': 80, 'name': 'a'}",
            "self.spec.items.filter(i, i.port > 100) == [self.spec.items[1]]",
            "{'x': self.spec.items[0]} == {'x': oldSelf.spec.items[0]}",
            "self.spec.labels != {'app': 'web'}",
            "{'app': 'web'} != self.spec.labels",
            "self.spec.items[0] != self.spec.items[1]",
        ] {
            assert_eq!(eval(expr, &same), json!(true), "{expr}");
        }
        let changed = json!({"spec": {"labels": {"app": "db"}}});
        assert_eq!(eval("self == oldSelf", &changed), json!(false));
        assert_eq!(
            eval("self.spec.labels == oldSelf.spec.labels", &changed),
            json!(false)
        );
    }

    #[test]
    fn objects_of_the_input_iterate_index_and_size_as_maps() {
        let old = json!({});
        for expr in [
            "self.spec.labels.all(k, k in ['app', 'tier'])",
            "size(self.spec.labels) == 2 && self.spec.labels.size() == 2",
            "'app' in self.spec.labels && !('nope' in self.spec.labels)",
            "self.spec.labels['tier'] == 'front'",
            "has(self.spec.labels.app) && !has(self.spec.labels.db)",
            "self.spec.?labels.?db.orValue('none') == 'none'",
            "self.spec.__namespace__ == 'prod'",
            "self.spec.ratio == 1.0 && type(self.spec.ratio) == double",
            "self.spec.items.map(i, i.name).join(',') == 'a,b'",
            "self.spec.items.exists_one(i, i.port == 443)",
            "(self.spec.items + oldSelf.?items.orValue([])).size() == 2",
            "self.spec.items.distinct().size() == 2",
            "optional.ofNonZeroValue(self.spec.labels).hasValue()",
            "type(self.spec) == map",
        ] {
            assert_eq!(eval(expr, &old), json!(true), "{expr}");
        }
    }

    #[test]
    fn objects_of_the_input_convert_back_to_json_as_results() {
        let old = json!({});
        assert_eq!(
            eval("self.spec.items[1]", &old),
            json!({"name": "b", "port": 443})
        );
        assert_eq!(
            eval(
                "{'l': self.spec.labels, 'n': [self.spec.items[0].name]}",
                &old
            ),
            json!({"l": {"app": "web", "tier": "front"}, "n": ["a"]})
        );
    }

    #[test]
    fn large_objects_find_plain_and_escaped_fields() {
        let mut fields = serde_json::Map::new();
        let mut props = serde_json::Map::new();
        for i in 0..40 {
            fields.insert(format!("f{i}"), json!(i));
            props.insert(format!("f{i}"), json!({"type": "integer"}));
        }
        fields.insert("a.b".into(), json!("dotted"));
        props.insert("a.b".into(), json!({"type": "string"}));
        let schema = json!({"type": "object", "properties": props});
        let env = Env::crd_rule(&schema, false);
        let object = Value::Object(fields);
        for expr in [
            "self.f0 == 0 && self.f39 == 39",
            "self.a__dot__b == 'dotted'",
            "size(self) == 41",
        ] {
            let program = Program::compile(expr, &env).unwrap();
            assert_eq!(
                program.eval(&Bindings::new().with("self", &object)),
                Ok(json!(true)),
                "{expr}"
            );
        }
    }
}
