//! ControllerRevisions, the history of a workload's templates shared by the StatefulSet and
//! DaemonSet controllers (upstream `pkg/controller/history`): naming, hashing, equality,
//! ordering and which revisions a parent owns. Pure; the runners do the API calls.

use crate::meta::{controller_ref, labels, new_controller_ref, selector_matches};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::Value;
use std::collections::BTreeMap;

/// The label holding the hash of a revision's data (upstream `ControllerRevisionHashLabel`).
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// Longest parent-name prefix kept in a revision name, so `prefix-hash` fits in 253 bytes.
const MAX_PREFIX: usize = 223;

/// `prefix-hash`, the prefix cut to 223 bytes as upstream's `ControllerRevisionName`.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut end = prefix.len().min(MAX_PREFIX);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &prefix[..end])
}

/// The bytes a revision's data is hashed and compared by: JSON with every object's keys
/// sorted, as Go's `json.Marshal` of a map writes them, so equal data always gives equal
/// bytes whatever order the API returned the keys in.
pub fn canonical_bytes(data: &Value) -> Vec<u8> {
    serde_json::to_vec(&canonical(data)).unwrap_or_default()
}

/// `value` with the keys of every object sorted.
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// FNV-1 (32 bit, as Go's `fnv.New32`) over the data, then the collision count in decimal,
/// safe-encoded: upstream's `HashControllerRevision`. Bumping the collision count is how a
/// parent gets a fresh name when another object holds the one its data hashes to.
pub fn hash_revision(data: &Value, collision_count: Option<i32>) -> String {
    let mut bytes = canonical_bytes(data);
    if let Some(count) = collision_count {
        bytes.extend_from_slice(count.to_string().as_bytes());
    }
    crate::deployment::hash::safe_encode(&fnv1_32(&bytes).to_string())
}

/// FNV-1, 32 bit: multiply, then xor each byte.
fn fnv1_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, b| {
        hash.wrapping_mul(0x0100_0193) ^ u32::from(*b)
    })
}

/// A revision of `parent` (upstream `NewControllerRevision`): the template's labels plus the
/// hash label, a controller reference to the parent, the data and the revision number. `None`
/// when the parent has no name or uid yet.
pub fn new_revision(
    parent: &ObjectMeta,
    api_version: &str,
    kind: &str,
    template_labels: &BTreeMap<String, String>,
    data: Value,
    revision: i64,
    collision_count: Option<i32>,
) -> Option<ControllerRevision> {
    let owner = new_controller_ref(api_version, kind, parent)?;
    let hash = hash_revision(&data, collision_count);
    let mut labels = template_labels.clone();
    labels.insert(HASH_LABEL.to_string(), hash.clone());
    Some(ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(parent.name.as_deref()?, &hash)),
            namespace: parent.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(canonical(&data))),
        revision,
    })
}

/// The data of a revision (`null` when it has none).
pub fn data(revision: &ControllerRevision) -> &Value {
    static NULL: Value = Value::Null;
    revision.data.as_ref().map(|d| &d.0).unwrap_or(&NULL)
}

/// Whether two revisions hold the same data (upstream `EqualRevision`; its hash-label
/// shortcut never applies, as safe-encoded hashes do not parse as integers).
pub fn equal_revision(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    canonical(data(a)) == canonical(data(b))
}

/// The revisions in `revisions` equal to `needle`, order kept (upstream `FindEqualRevisions`).
pub fn find_equal<'a>(
    revisions: &[&'a ControllerRevision],
    needle: &ControllerRevision,
) -> Vec<&'a ControllerRevision> {
    revisions
        .iter()
        .copied()
        .filter(|r| equal_revision(r, needle))
        .collect()
}

/// Sorts by revision number, ties by creation time then name (upstream `byRevision`).
pub fn sort_revisions(revisions: &mut [&ControllerRevision]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| crate::meta::created(&a.metadata).cmp(&crate::meta::created(&b.metadata)))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// One more than the highest revision number of sorted `revisions`, 1 for none (upstream
/// `nextRevision`); saturates rather than wrapping on a client-written `i64::MAX`.
pub fn next_revision(sorted: &[&ControllerRevision]) -> i64 {
    sorted.last().map_or(1, |r| r.revision.saturating_add(1))
}

/// The revisions of a parent with `uid` (upstream `ListControllerRevisions`): matching the
/// selector, and controlled by the parent or by nothing (orphans the parent may adopt).
pub fn owned_or_orphaned<'a>(
    revisions: &[&'a ControllerRevision],
    selector: &LabelSelector,
    uid: &str,
) -> Vec<&'a ControllerRevision> {
    revisions
        .iter()
        .copied()
        .filter(|r| selector_matches(selector, &labels(&r.metadata)))
        .filter(|r| controller_ref(&r.metadata).is_none_or(|c| c.uid == uid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn rev(name: &str, revision: i64, created: i64, data: Value) -> ControllerRevision {
        ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(
                    Timestamp::from_second(created).expect("valid timestamp"),
                )),
                ..ObjectMeta::default()
            },
            data: Some(RawExtension(data)),
            revision,
        }
    }

    #[test]
    fn revision_names_cut_long_prefixes_to_fit_a_name() {
        assert_eq!(revision_name("web", "abc"), "web-abc");
        let long = "x".repeat(300);
        let name = revision_name(&long, "h");
        assert_eq!(name.len(), 225);
        assert!(name.ends_with("x-h"));
    }

    #[test]
    fn hash_is_fnv1_of_the_canonical_data_and_the_collision_count() {
        // Reference vectors of FNV-1 32 (not FNV-1a, whose "a" is 0xe40c292c).
        assert_eq!(fnv1_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1_32(b"a"), 0x050c_5d7e);
        assert_eq!(
            hash_revision(&json!("a"), Some(7)),
            crate::deployment::hash::safe_encode(&fnv1_32(b"\"a\"7").to_string())
        );
        let a = json!({"b": 1, "a": {"d": 2, "c": 3}});
        let b = json!({"a": {"c": 3, "d": 2}, "b": 1});
        assert_eq!(hash_revision(&a, Some(0)), hash_revision(&b, Some(0)));
        assert_ne!(hash_revision(&a, Some(0)), hash_revision(&a, Some(1)));
        assert_ne!(hash_revision(&a, None), hash_revision(&a, Some(0)));
        assert!(hash_revision(&a, None)
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }

    #[test]
    fn new_revision_is_named_after_parent_and_hash_and_labelled() {
        let parent = ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("u1".into()),
            ..ObjectMeta::default()
        };
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let cr = new_revision(
            &parent,
            "apps/v1",
            "StatefulSet",
            &labels,
            json!({"x": 1}),
            3,
            Some(0),
        )
        .expect("parent has name and uid");
        let hash = hash_revision(&json!({"x": 1}), Some(0));
        assert_eq!(
            cr.metadata.name.as_deref(),
            Some(format!("web-{hash}").as_str())
        );
        assert_eq!(cr.revision, 3);
        let l = cr.metadata.labels.expect("labels");
        assert_eq!(l.get("app").map(String::as_str), Some("web"));
        assert_eq!(l.get(HASH_LABEL), Some(&hash));
        let owner = &cr.metadata.owner_references.expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("StatefulSet", "u1", Some(true))
        );
        let orphan_parent = ObjectMeta {
            uid: None,
            ..parent
        };
        assert!(new_revision(
            &orphan_parent,
            "apps/v1",
            "StatefulSet",
            &labels,
            json!({}),
            1,
            None
        )
        .is_none());
    }

    #[test]
    fn revisions_sort_by_number_then_creation_then_name() {
        let (a, b, c, d) = (
            rev("b", 2, 10, json!(1)),
            rev("a", 2, 10, json!(1)),
            rev("z", 1, 50, json!(1)),
            rev("c", 2, 5, json!(1)),
        );
        let mut all = vec![&a, &b, &c, &d];
        sort_revisions(&mut all);
        let names: Vec<_> = all
            .iter()
            .map(|r| r.metadata.name.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(names, ["z", "c", "a", "b"]);
        assert_eq!(next_revision(&all), 3);
        assert_eq!(next_revision(&[]), 1);
        let max = rev("m", i64::MAX, 0, json!(1));
        assert_eq!(next_revision(&[&max]), i64::MAX);
    }

    #[test]
    fn equal_revisions_compare_data_whatever_the_key_order() {
        let a = rev("a", 1, 0, json!({"x": {"p": 1, "q": 2}}));
        let b = rev("b", 2, 0, json!({"x": {"q": 2, "p": 1}}));
        let c = rev("c", 3, 0, json!({"x": {"q": 3}}));
        assert!(equal_revision(&a, &b));
        assert!(!equal_revision(&a, &c));
        let found: Vec<_> = find_equal(&[&a, &b, &c], &b)
            .iter()
            .map(|r| r.revision)
            .collect();
        assert_eq!(found, [1, 2]);
    }

    #[test]
    fn a_parent_lists_its_own_and_orphaned_matching_revisions() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            ..LabelSelector::default()
        };
        let mk = |name: &str, app: &str, owner: Option<&str>| {
            let mut r = rev(name, 1, 0, json!(1));
            r.metadata.labels = Some([("app".to_string(), app.to_string())].into());
            r.metadata.owner_references = owner.map(|uid| {
                vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "StatefulSet".into(),
                        name: "x".into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    },
                ]
            });
            r
        };
        let (mine, orphan, theirs, other_app) = (
            mk("mine", "web", Some("u1")),
            mk("orphan", "web", None),
            mk("theirs", "web", Some("u2")),
            mk("other", "db", Some("u1")),
        );
        let listed: Vec<_> = owned_or_orphaned(&[&mine, &orphan, &theirs, &other_app], &sel, "u1")
            .iter()
            .map(|r| r.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(listed, ["mine", "orphan"]);
    }
}
