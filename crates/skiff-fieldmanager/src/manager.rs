//! The field manager: kube-apiserver's chain of managers (version check, last-applied
//! updater and migration, skip-non-applied, caps, manager identity, managedFields updater,
//! strip-meta) around structured-merge-diff's `Updater`, as two functions on wire JSON.

use serde_json::{Map, Value};

use crate::conflict::{Conflict, Conflicts};
use crate::managed::{is_reset, seconds, ManagedFields, ManagerEntry, ManagerKey, Operation};
use crate::path::{values_equal, Path};
use crate::schema::Schema;
use crate::set::Set;
use crate::typed::{compare, ensure_named_fields, merge, remove, to_field_set, Comparison};
use crate::{Error, Result};

/// Upstream's `DefaultMaxUpdateManagers`: more Update entries than this are merged.
pub const MAX_UPDATE_MANAGERS: usize = 10;
/// The bucket the oldest Update entries are merged into.
pub const ANCIENT_CHANGES: &str = "ancient-changes";
/// The manager given an object's fields when it is first applied with no managedFields.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// kubectl's client-side apply annotation.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The only manager whose server-side applies migrate and maintain [`LAST_APPLIED`]
/// (upstream: users opt out by naming another manager).
const KUBECTL: &str = "kubectl";
const CURRENT_OPERATION: &str = "current-operation";

/// Who writes, through which endpoint, and when. `now` is RFC 3339 in seconds
/// (`2024-05-01T10:00:00Z`): the crate never reads a clock.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The `fieldManager` (or the user-agent derived name for non-apply writes).
    pub manager: &'a str,
    /// The apiVersion of the endpoint (`apps/v1`).
    pub api_version: &'a str,
    /// The subresource written (`status`), empty for the main resource.
    pub subresource: &'a str,
    /// The time to record.
    pub now: &'a str,
}

/// Which fields an endpoint tracks ownership of (upstream's reset fields): the main
/// resource of a kind with a status subresource ignores `status`, the status subresource
/// tracks only `status`.
#[derive(Debug, Clone, Default)]
pub enum Tracked {
    /// Every field.
    #[default]
    All,
    /// Every field except those at or below these paths.
    Except(Set),
    /// Only the fields at or below these paths.
    Only(Set),
}

impl Tracked {
    /// The main resource of a kind with a status subresource.
    pub fn main_resource_with_status() -> Self {
        Tracked::Except(set_of(&[&["status"]]))
    }

    /// The `status` subresource.
    pub fn status_subresource() -> Self {
        Tracked::Only(set_of(&[&["status"]]))
    }

    fn filter(&self, s: Set) -> Set {
        match self {
            Tracked::All => s,
            Tracked::Except(x) => s.recursive_difference(x),
            Tracked::Only(x) => s.difference(&s.recursive_difference(x)),
        }
    }
}

fn set_of(paths: &[&[&str]]) -> Set {
    let mut s = Set::new();
    for p in paths {
        s.insert(&Path::fields(p).0);
    }
    s
}

/// Fields never owned (upstream stripmeta): type meta and server-set metadata.
fn strip_set() -> Set {
    set_of(&[
        &["apiVersion"],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ])
}

/// Tracks field ownership for one kind at one endpoint. Cheap to build per request.
#[derive(Debug, Clone)]
pub struct FieldManager {
    schema: Schema,
    tracked: Tracked,
    strip: Set,
}

impl FieldManager {
    /// A manager for objects of `schema`, tracking `tracked` fields.
    pub fn new(schema: Schema, tracked: Tracked) -> Self {
        FieldManager {
            schema,
            tracked,
            strip: strip_set(),
        }
    }

    /// Any write that is not an apply (create, update, patch, and their subresources):
    /// `new` is the object about to be stored, `live` the stored one (`None` on create).
    /// Returns `new` with `metadata.managedFields` recomputed: the fields that changed now
    /// belong to the writer and no longer to anyone else. A request that sends
    /// `managedFields` replaces them (`[]` or `[{}]` clears them); one that omits them keeps
    /// the live ones. On error, upstream keeps the live managedFields and stores anyway.
    pub fn update(&self, live: Option<&Value>, new: Value, req: &Request) -> Result<Value> {
        let mut new = new;
        self.update_in_place(live, &mut new, req)?;
        Ok(new)
    }

    /// [`FieldManager::update`] as upstream's `UpdateNoErrors`, which every non-apply write
    /// goes through: a write is never refused for its managedFields; when they cannot be
    /// computed (a broken entry stored earlier, an object the schema cannot walk), the live
    /// object's managedFields are kept as they were.
    pub fn update_no_errors(&self, live: Option<&Value>, new: Value, req: &Request) -> Value {
        let mut new = new;
        if self.update_in_place(live, &mut new, req).is_err() {
            match live.and_then(managed_fields_of) {
                Some(kept) => {
                    let kept = kept.clone();
                    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.insert("managedFields".into(), kept);
                    }
                }
                None => strip_managed_fields(&mut new),
            }
        }
        new
    }

    fn update_in_place(&self, live: Option<&Value>, new: &mut Value, req: &Request) -> Result<()> {
        let live_managed = || decode_or_empty(live.and_then(managed_fields_of));
        let sent = managed_fields_of(new);
        let managed = if !req.subresource.is_empty() {
            live_managed()
        } else if is_reset(sent) {
            ManagedFields::default()
        } else {
            match sent.map(ManagedFields::decode) {
                Some(Ok(m)) if !m.is_empty() => m,
                _ => live_managed(),
            }
        };
        strip_managed_fields(new);
        let live = live
            .map(without_managed_fields)
            .unwrap_or_else(empty_object);
        let managed = self.update_chain(&live, new, managed, req, req.manager)?;
        set_managed_fields(new, &managed);
        Ok(())
    }

    /// Server-side apply: merges `applied` into `live` (`None`: the object does not exist
    /// yet) and returns the object to store with `metadata.managedFields`. Fails with
    /// [`Error::Conflict`] when the configuration changes a field another manager owns,
    /// unless `force`. Fields this manager applied before and no longer applies are removed
    /// unless another manager owns them.
    pub fn apply(
        &self,
        live: Option<&Value>,
        applied: &Value,
        req: &Request,
        force: bool,
    ) -> Result<Value> {
        if applied
            .get("metadata")
            .and_then(|m| m.get("managedFields"))
            .is_some_and(|v| !v.is_null())
        {
            return Err(Error::InvalidApply(
                "metadata.managedFields must be nil".into(),
            ));
        }
        if let Some(av) = applied.get("apiVersion").and_then(Value::as_str) {
            if av != req.api_version {
                return Err(Error::InvalidApply(format!(
                    "invalid object type: {av}, expected {}",
                    req.api_version
                )));
            }
        }
        if let (Some(k), Some(lk)) = (
            applied.get("kind").and_then(Value::as_str),
            live.and_then(|l| l.get("kind")).and_then(Value::as_str),
        ) {
            if k != lk {
                return Err(Error::InvalidApply(format!(
                    "invalid object type: {k}, expected {lk}"
                )));
            }
        }
        let managed = match live.and_then(managed_fields_of) {
            Some(v) => ManagedFields::decode(v)?,
            None => ManagedFields::default(),
        };
        let live_obj = live
            .map(without_managed_fields)
            .unwrap_or_else(empty_object);

        // lastAppliedManager: kubectl's first server-side apply over a client-side apply.
        let (mut object, managed) =
            match self.apply_chain(&live_obj, applied, managed.clone(), req, force) {
                Err(Error::Conflict(conflicts)) if req.manager == KUBECTL => {
                    let Some(allowed) = self.allowed_by_last_applied(&live_obj, req) else {
                        return Err(Error::Conflict(conflicts));
                    };
                    let remaining: Vec<Conflict> = conflicts
                        .0
                        .iter()
                        .filter(|c| !allowed.has(&c.path.0))
                        .cloned()
                        .collect();
                    if !remaining.is_empty() {
                        return Err(Error::Conflict(Conflicts(remaining)));
                    }
                    self.apply_chain(&live_obj, applied, managed, req, true)?
                }
                other => other?,
            };

        // lastAppliedUpdater: keep kubectl's annotation in step with what was applied.
        if req.manager == KUBECTL && has_last_applied(&object) {
            let text = last_applied_text(applied);
            if let Some(Value::Object(ann)) = object.pointer_mut("/metadata/annotations") {
                ann.insert(LAST_APPLIED.into(), Value::from(text));
            }
        }
        set_managed_fields(&mut object, &managed);
        Ok(object)
    }

    /// skipNonApplied + cap + identity + managedFieldsUpdater + stripMeta + structured
    /// apply. Returns the object (the live one when nothing changed) and the managers.
    fn apply_chain(
        &self,
        live: &Value,
        applied: &Value,
        mut managed: ManagedFields,
        req: &Request,
        force: bool,
    ) -> Result<(Value, ManagedFields)> {
        if managed.is_empty() {
            managed = self.update_chain(&empty_object(), live, managed, req, BEFORE_FIRST_APPLY)?;
        }
        let key = ManagerKey::new(
            req.manager,
            Operation::Apply,
            req.api_version,
            req.subresource,
        );
        let (object, mut managed) =
            self.structured_apply(live, applied, managed, &key, req, force)?;
        self.strip(&mut managed, &key);
        let changed = !values_equal(live, &object);
        if changed {
            if let Some(e) = managed.entries.get_mut(&key) {
                e.time = Some(req.now.to_owned());
            }
        }
        Ok((if changed { object } else { live.clone() }, managed))
    }

    /// cap + identity + managedFieldsUpdater + stripMeta + structured update.
    fn update_chain(
        &self,
        live: &Value,
        new: &Value,
        managed: ManagedFields,
        req: &Request,
        manager: &str,
    ) -> Result<ManagedFields> {
        let key = ManagerKey::new(manager, Operation::Update, req.api_version, req.subresource);
        let current = ManagerKey::new(
            CURRENT_OPERATION,
            Operation::Update,
            req.api_version,
            req.subresource,
        );
        let mut managed = self.structured_update(live, new, managed, &current, req.api_version)?;
        self.strip(&mut managed, &current);
        if let Some(vs) = managed.entries.remove(&current) {
            let set = match managed.entries.get(&key) {
                Some(prev) => vs.set.union(&prev.set),
                None => vs.set,
            };
            managed.entries.insert(
                key,
                ManagerEntry {
                    set,
                    api_version: req.api_version.to_owned(),
                    time: Some(req.now.to_owned()),
                },
            );
        }
        cap_update_managers(&mut managed);
        Ok(managed)
    }

    fn strip(&self, managed: &mut ManagedFields, key: &ManagerKey) {
        if let Some(e) = managed.entries.get_mut(key) {
            e.set = e.set.difference(&self.strip);
            if e.set.is_empty() {
                managed.entries.remove(key);
            }
        }
    }

    /// Upstream `Updater.update`: other managers lose the fields that changed (conflicts
    /// unless `force`) and the fields that were removed.
    fn update_others(
        &self,
        old: &Value,
        new: &Value,
        mut managed: ManagedFields,
        workflow: &ManagerKey,
        force: bool,
    ) -> Result<(ManagedFields, Comparison)> {
        let cmp = compare(&self.schema, old, new)?.filter(&|s| self.tracked.filter(s));
        let changed = cmp.modified.union(&cmp.added);
        let mut conflicts = Vec::new();
        let mut taken = Vec::new();
        for (k, e) in &managed.entries {
            if k == workflow {
                continue;
            }
            let c = e.set.intersection(&changed);
            if !c.is_empty() {
                for path in c.paths() {
                    conflicts.push(Conflict {
                        manager: k.clone(),
                        path,
                    });
                }
                taken.push((k.clone(), c));
            }
        }
        if !force && !conflicts.is_empty() {
            return Err(Error::Conflict(Conflicts(conflicts)));
        }
        for (k, c) in taken {
            if let Some(e) = managed.entries.get_mut(&k) {
                e.set = e.set.difference(&c);
            }
        }
        if !cmp.removed.is_empty() {
            for (k, e) in managed.entries.iter_mut() {
                if k != workflow {
                    e.set = e.set.difference(&cmp.removed);
                }
            }
        }
        managed.entries.retain(|_, e| !e.set.is_empty());
        Ok((managed, cmp))
    }

    /// Upstream `Updater.Update`.
    fn structured_update(
        &self,
        old: &Value,
        new: &Value,
        managed: ManagedFields,
        workflow: &ManagerKey,
        api_version: &str,
    ) -> Result<ManagedFields> {
        let (mut managed, cmp) = self.update_others(old, new, managed, workflow, true)?;
        let prev = managed.entries.remove(workflow);
        let base = prev.as_ref().map(|e| e.set.clone()).unwrap_or_default();
        let set = self.tracked.filter(
            base.difference(&cmp.removed)
                .union(&cmp.modified)
                .union(&cmp.added),
        );
        if !set.is_empty() {
            let time = prev.and_then(|e| e.time);
            managed.entries.insert(
                workflow.clone(),
                ManagerEntry {
                    set,
                    api_version: api_version.to_owned(),
                    time,
                },
            );
        }
        Ok(managed)
    }

    /// Upstream `Updater.Apply`.
    fn structured_apply(
        &self,
        live: &Value,
        applied: &Value,
        mut managed: ManagedFields,
        workflow: &ManagerKey,
        req: &Request,
        force: bool,
    ) -> Result<(Value, ManagedFields)> {
        let merged = merge(&self.schema, live, applied)?;
        let last = managed.entries.get(workflow).map(|e| e.set.clone());
        let set = self.tracked.filter(to_field_set(&self.schema, applied)?);
        let time = managed.entries.get(workflow).and_then(|e| e.time.clone());
        managed.entries.insert(
            workflow.clone(),
            ManagerEntry {
                set,
                api_version: req.api_version.to_owned(),
                time,
            },
        );
        let pruned = self.prune(merged, &managed, last.as_ref())?;
        let (managed, _) = self.update_others(live, &pruned, managed, workflow, force)?;
        Ok((pruned, managed))
    }

    /// Removes what the applier applied last time and not this time, unless another
    /// manager (or the applier's new configuration) owns it (upstream `prune`,
    /// `addBackOwnedItems`, `addBackDanglingItems`).
    fn prune(&self, merged: Value, managed: &ManagedFields, last: Option<&Set>) -> Result<Value> {
        let Some(last) = last.filter(|s| !s.is_empty()) else {
            return Ok(merged);
        };
        let s = &self.schema;
        let last = ensure_named_fields(s, last);
        let pruned = remove(s, &merged, &last);
        let owned = managed
            .entries
            .values()
            .fold(Set::new(), |acc, e| acc.union(&e.set));
        let owned = ensure_named_fields(s, &owned);
        let merged_set = ensure_named_fields(s, &to_field_set(s, &merged)?);
        let pruned_set = ensure_named_fields(s, &to_field_set(s, &pruned)?);
        let pruned = remove(
            s,
            &merged,
            &merged_set.difference(&pruned_set.union(&owned)),
        );
        let pruned_set = ensure_named_fields(s, &to_field_set(s, &pruned)?);
        Ok(remove(
            s,
            &merged,
            &merged_set.difference(&pruned_set).intersection(&last),
        ))
    }

    /// The fields of the last-applied annotation whose values the live object still has:
    /// kubectl owned them client-side, so taking them over is no conflict.
    fn allowed_by_last_applied(&self, live: &Value, req: &Request) -> Option<Set> {
        let text = live
            .pointer("/metadata/annotations")?
            .get(LAST_APPLIED)?
            .as_str()?;
        if text.is_empty() {
            return None;
        }
        let last: Value = serde_json::from_str(text).ok()?;
        if !last.is_object()
            || last.get("apiVersion").and_then(Value::as_str) != Some(req.api_version)
        {
            return None;
        }
        let set = to_field_set(&self.schema, &last).ok()?;
        let cmp = compare(&self.schema, &last, live).ok()?;
        Some(
            set.difference(&cmp.modified)
                .difference(&cmp.added)
                .difference(&cmp.removed),
        )
    }
}

/// Upstream capManagers: beyond [`MAX_UPDATE_MANAGERS`] Update entries, the oldest are
/// merged into one `ancient-changes` entry per apiVersion.
fn cap_update_managers(managed: &mut ManagedFields) {
    let mut updaters: Vec<ManagerKey> = managed
        .entries
        .keys()
        .filter(|k| k.operation == Operation::Update)
        .cloned()
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|a, b| {
        let ta = seconds(managed.entries[a].time.as_deref());
        let tb = seconds(managed.entries[b].time.as_deref());
        ta.cmp(&tb).then_with(|| a.cmp(b))
    });
    let mut first_by_version: std::collections::HashMap<String, ManagerKey> = Default::default();
    let mut length = updaters.len();
    for k in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(entry) = managed.entries.get(&k).cloned() else {
            continue;
        };
        let version = entry.api_version.clone();
        let bucket = ManagerKey::new(ANCIENT_CHANGES, Operation::Update, &version, "");
        match first_by_version.get(&version) {
            Some(first) => {
                if !managed.entries.contains_key(&bucket) {
                    if let Some(s) = managed.entries.remove(first) {
                        managed.entries.insert(bucket.clone(), s);
                    }
                }
                let merged = managed
                    .entries
                    .get(&bucket)
                    .map(|b| b.set.union(&entry.set))
                    .unwrap_or(entry.set);
                managed.entries.remove(&k);
                managed.entries.insert(
                    bucket,
                    ManagerEntry {
                        set: merged,
                        api_version: version,
                        time: entry.time,
                    },
                );
                length -= 1;
            }
            None => {
                first_by_version.insert(version, k);
            }
        }
    }
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn managed_fields_of(obj: &Value) -> Option<&Value> {
    obj.get("metadata")?.get("managedFields")
}

fn decode_or_empty(v: Option<&Value>) -> ManagedFields {
    v.and_then(|v| ManagedFields::decode(v).ok())
        .unwrap_or_default()
}

fn strip_managed_fields(obj: &mut Value) {
    if let Some(Value::Object(m)) = obj.get_mut("metadata") {
        m.remove("managedFields");
    }
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    strip_managed_fields(&mut o);
    o
}

fn set_managed_fields(obj: &mut Value, managed: &ManagedFields) {
    let Value::Object(root) = obj else { return };
    let encoded = managed.encode();
    if encoded.is_none() && !root.contains_key("metadata") {
        return;
    }
    let meta = root.entry("metadata").or_insert_with(empty_object);
    if let Value::Object(m) = meta {
        match encoded {
            Some(v) => {
                m.insert("managedFields".into(), v);
            }
            None => {
                m.remove("managedFields");
            }
        }
    }
}

fn has_last_applied(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

/// The applied configuration as kubectl's annotation holds it: without the annotation
/// itself, keys sorted, compact, newline-terminated (Go's JSON encoder of a map).
fn last_applied_text(applied: &Value) -> String {
    let mut obj = applied.clone();
    if let Some(Value::Object(ann)) = obj.pointer_mut("/metadata/annotations") {
        ann.remove(LAST_APPLIED);
    }
    let mut text = sorted(&obj).to_string();
    text.push('\n');
    text
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
