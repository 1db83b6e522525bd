//! Field sets: the trie of path elements a manager owns, with upstream's set algebra and
//! the `fieldsV1` JSON codec (`{"f:spec":{"f:replicas":{}}}`) byte-for-byte as upstream.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::path::{Path, PathElement};
use crate::{Error, Result};

/// A set of field paths, stored as a trie. A path is a *member* when it is owned itself (a
/// leaf, or a list item / map that is owned as a whole: `"."` in `fieldsV1`); `children`
/// holds the owned paths below an element. Children are never empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    /// The empty set.
    pub fn new() -> Self {
        Set::default()
    }

    /// True when no path is a member, at any depth.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds a path (the empty path is ignored: the root is never a member).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.child_mut(first).insert(rest),
        }
    }

    /// Whether `path` is a member.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Marks `pe` (directly below this node) as a member.
    pub(crate) fn insert_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    /// Whether `pe` directly below this node is a member.
    pub(crate) fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The set below `pe`, if any path below it is a member.
    pub fn child(&self, pe: &PathElement) -> Option<&Set> {
        self.children.get(pe)
    }

    /// Attaches `set` below `pe` (merging with what is there); empty sets are dropped.
    pub(crate) fn attach(&mut self, pe: PathElement, set: Set) {
        if set.is_empty() {
            return;
        }
        match self.children.get_mut(&pe) {
            Some(existing) => *existing = existing.union(&set),
            None => {
                self.children.insert(pe, set);
            }
        }
    }

    fn child_mut(&mut self, pe: &PathElement) -> &mut Set {
        self.children.entry(pe.clone()).or_default()
    }

    /// Elements directly below this node that are members.
    pub(crate) fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    /// Elements directly below this node with members under them.
    pub(crate) fn children(&self) -> impl Iterator<Item = (&PathElement, &Set)> {
        self.children.iter()
    }

    /// Paths in either set.
    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            out.attach(pe.clone(), c.clone());
        }
        out
    }

    /// Paths in `self` and not in `other` (a member of `other` does not remove what is below
    /// it in `self`: upstream's `Difference`).
    pub fn difference(&self, other: &Set) -> Set {
        let mut out = Set::new();
        for m in &self.members {
            if !other.members.contains(m) {
                out.members.insert(m.clone());
            }
        }
        for (pe, c) in &self.children {
            match other.children.get(pe) {
                Some(o) => out.attach(pe.clone(), c.difference(o)),
                None => out.attach(pe.clone(), c.clone()),
            }
        }
        out
    }

    /// Paths in `self` that neither are in `other` nor lie below a member of `other`
    /// (upstream's `RecursiveDifference`).
    pub fn recursive_difference(&self, other: &Set) -> Set {
        let mut out = Set::new();
        for m in &self.members {
            if !other.members.contains(m) {
                out.members.insert(m.clone());
            }
        }
        for (pe, c) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            match other.children.get(pe) {
                Some(o) => out.attach(pe.clone(), c.recursive_difference(o)),
                None => out.attach(pe.clone(), c.clone()),
            }
        }
        out
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &Set) -> Set {
        let mut out = Set::new();
        for m in &self.members {
            if other.members.contains(m) {
                out.members.insert(m.clone());
            }
        }
        for (pe, c) in &self.children {
            if let Some(o) = other.children.get(pe) {
                out.attach(pe.clone(), c.intersection(o));
            }
        }
        out
    }

    /// Every member path, in set order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect(&mut prefix, &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        // Upstream iterates members and children merged in element order, members first on
        // a tie, so a path comes before the paths below it.
        let mut ci = self.children.iter().peekable();
        for m in &self.members {
            while let Some((pe, c)) = ci.next_if(|(pe, _)| *pe < m) {
                prefix.push(pe.clone());
                c.collect(prefix, out);
                prefix.pop();
            }
            prefix.push(m.clone());
            out.push(Path(prefix.clone()));
            prefix.pop();
        }
        for (pe, c) in ci {
            prefix.push(pe.clone());
            c.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Number of member paths.
    pub fn len(&self) -> usize {
        self.members.len() + self.children.values().map(Set::len).sum::<usize>()
    }

    /// The `fieldsV1` form: one JSON object per trie node, keys in element order, `"."`
    /// first when the node is itself a member and has children.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        let mut ci = self.children.iter().peekable();
        let mut mi = self.members.iter().peekable();
        loop {
            let next_member = mi.peek().copied();
            let next_child = ci.peek().map(|(pe, _)| *pe);
            match (next_member, next_child) {
                (None, None) => break,
                (Some(m), Some(c)) if m == c => {
                    let (pe, set) = ci.next().expect("peeked");
                    mi.next();
                    out.insert(serialize_element(pe), Value::Object(set.emit(true)));
                }
                (Some(m), c) if c.is_none_or(|c| m < c) => {
                    mi.next();
                    out.insert(serialize_element(m), Value::Object(Map::new()));
                }
                _ => {
                    let (pe, set) = ci.next().expect("peeked");
                    out.insert(serialize_element(pe), Value::Object(set.emit(false)));
                }
            }
        }
        out
    }

    /// Parses `fieldsV1`. Unknown element kinds are skipped, as upstream does, so a newer
    /// writer's sets still load.
    pub fn from_fields_v1(v: &Value) -> Result<Set> {
        let Value::Object(map) = v else {
            return Err(Error::InvalidFields("fieldsV1 must be an object".into()));
        };
        Ok(parse_node(map, 0)?.0)
    }
}

/// Nesting deeper than this in `fieldsV1` is rejected (no recursion limit surprises).
const MAX_DEPTH: usize = 200;

fn parse_node(map: &Map<String, Value>, depth: usize) -> Result<(Set, bool)> {
    if depth > MAX_DEPTH {
        return Err(Error::InvalidFields("fieldsV1 nested too deeply".into()));
    }
    let mut set = Set::new();
    let mut is_member = false;
    for (k, v) in map {
        if k == "." {
            is_member = true;
            continue;
        }
        let pe = match deserialize_element(k)? {
            Some(pe) => pe,
            None => continue,
        };
        let Value::Object(inner) = v else {
            return Err(Error::InvalidFields(format!(
                "value of {k:?} must be an object"
            )));
        };
        let (child, child_member) = parse_node(inner, depth + 1)?;
        if child_member {
            set.members.insert(pe.clone());
        }
        set.attach(pe, child);
    }
    // An empty object is a leaf: the element itself is owned.
    if set.is_empty() {
        is_member = true;
    }
    Ok((set, is_member))
}

/// Compact JSON as Go's encoder writes it (`<`, `>`, `&` escaped), for key and value elements.
fn go_json(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// `f:name`, `k:{"a":1,"b":"x"}`, `v:"x"`, `i:3`.
pub fn serialize_element(pe: &PathElement) -> String {
    match pe {
        PathElement::Field(n) => format!("f:{n}"),
        PathElement::Key(fields) => {
            let mut s = String::from("k:{");
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&go_json(&Value::String(k.clone())));
                s.push(':');
                s.push_str(&go_json(v));
            }
            s.push('}');
            s
        }
        PathElement::Value(v) => format!("v:{}", go_json(v)),
        PathElement::Index(i) => format!("i:{i}"),
    }
}

/// The inverse of [`serialize_element`]; `None` for an unknown kind letter.
pub fn deserialize_element(s: &str) -> Result<Option<PathElement>> {
    let bad = |why: &str| Error::InvalidFields(format!("path element {s:?}: {why}"));
    let (kind, rest) = match (s.get(..1), s.get(1..2), s.get(2..)) {
        (Some(k), Some(":"), Some(rest)) => (k, rest),
        _ => return Err(bad("expected <kind>:<value>")),
    };
    Ok(Some(match kind {
        "f" => PathElement::Field(rest.to_owned()),
        "v" => PathElement::Value(serde_json::from_str(rest).map_err(|e| bad(&e.to_string()))?),
        "k" => {
            let Value::Object(m) =
                serde_json::from_str::<Value>(rest).map_err(|e| bad(&e.to_string()))?
            else {
                return Err(bad("key must be a JSON object"));
            };
            PathElement::key(m.into_iter().collect())
        }
        "i" => PathElement::Index(rest.parse().map_err(|_| bad("bad index"))?),
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(n: &str) -> PathElement {
        PathElement::field(n)
    }

    fn set_of(paths: &[&[PathElement]]) -> Set {
        let mut s = Set::new();
        for p in paths {
            s.insert(p);
        }
        s
    }

    #[test]
    fn fields_v1_round_trips_with_dot_for_owned_items() {
        let text = r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{}}}}}"#;
        let v: Value = serde_json::from_str(text).unwrap();
        let set = Set::from_fields_v1(&v).unwrap();
        let item = PathElement::key(vec![("name".into(), json!("nginx"))]);
        assert!(set.has(&[f("spec"), f("containers"), item.clone()]));
        assert!(set.has(&[f("spec"), f("containers"), item, f("image")]));
        assert!(!set.has(&[f("spec")]));
        assert_eq!(set.to_fields_v1().to_string(), text);
    }

    #[test]
    fn key_fields_serialize_sorted_and_values_as_json() {
        let pe = PathElement::key(vec![
            ("protocol".into(), json!("TCP")),
            ("containerPort".into(), json!(80)),
        ]);
        assert_eq!(
            serialize_element(&pe),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
        assert_eq!(
            serialize_element(&PathElement::Value(json!("a<b"))),
            r#"v:"a\u003cb""#
        );
        assert_eq!(serialize_element(&PathElement::Index(3)), "i:3");
        let back = deserialize_element(r#"k:{"protocol":"TCP","containerPort":80}"#).unwrap();
        assert_eq!(back, Some(pe));
    }

    #[test]
    fn unknown_element_kinds_are_skipped_and_garbage_rejected() {
        let v = json!({"z:whatever": {}, "f:a": {}});
        assert_eq!(Set::from_fields_v1(&v).unwrap(), set_of(&[&[f("a")]]));
        assert!(Set::from_fields_v1(&json!({"fa": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(Set::from_fields_v1(&json!({"k:[1]": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"i:-1": {}})).is_err());
        assert!(Set::from_fields_v1(&json!([])).is_err());
    }

    #[test]
    fn difference_keeps_children_of_removed_members() {
        let a = set_of(&[&[f("a")], &[f("a"), f("b")], &[f("c")]]);
        let b = set_of(&[&[f("a")]]);
        assert_eq!(a.difference(&b), set_of(&[&[f("a"), f("b")], &[f("c")]]));
        assert_eq!(a.recursive_difference(&b), set_of(&[&[f("c")]]));
    }

    #[test]
    fn union_and_intersection() {
        let a = set_of(&[&[f("a"), f("x")], &[f("b")]]);
        let b = set_of(&[&[f("a"), f("y")], &[f("b")]]);
        assert_eq!(a.union(&b).len(), 3);
        assert_eq!(a.intersection(&b), set_of(&[&[f("b")]]));
        assert!(a.intersection(&Set::new()).is_empty());
    }

    #[test]
    fn paths_come_in_element_order_parents_first() {
        let s = set_of(&[&[f("b")], &[f("a"), f("z")], &[f("a")]]);
        let printed: Vec<String> = s.paths().iter().map(|p| p.to_string()).collect();
        assert_eq!(printed, [".a", ".a.z", ".b"]);
    }
}
