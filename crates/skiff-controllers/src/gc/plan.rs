//! Pure garbage-collection planning: from a snapshot of the objects that own or are owned,
//! the changes, with upstream's decisions (`pkg/controller/garbagecollector`:
//! `garbagecollector.go` for what is deleted, `graph_builder.go` for how references are
//! matched to owners).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::HashMap;

/// The finalizer of foreground deletion: the owner waits for its blocking dependents.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of orphan deletion: the owner waits for its dependents to drop it.
pub const ORPHAN: &str = "orphan";

/// A kind by API group, whatever the version: an owner reference written against
/// `apps/v1beta2` still names the `apps/v1` object it was made for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKind {
    /// The API group; empty for the core group.
    pub group: String,
    pub kind: String,
}

impl GroupKind {
    /// The kind `kind` of the group of `api_version` (`apps/v1` → `apps`, `v1` → core).
    pub fn new(api_version: &str, kind: &str) -> GroupKind {
        let group = match api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        };
        GroupKind {
            group: group.to_string(),
            kind: kind.to_string(),
        }
    }

    /// The kind an owner reference points to.
    pub fn of_ref(r: &OwnerReference) -> GroupKind {
        GroupKind::new(&r.api_version, &r.kind)
    }
}

/// Whether each kind the collector watches is namespaced, from API discovery. A reference
/// to a kind not in it (not served, or not listable) is left alone rather than guessed.
pub type Scopes = HashMap<GroupKind, bool>;

/// What the collector needs to know of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Obj {
    pub kind: GroupKind,
    /// The namespace; empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// For the optimistic lock of a JSON merge patch, where strategic merge is not served.
    pub resource_version: String,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

impl Obj {
    /// The summary of an object of `kind`.
    pub fn new(kind: GroupKind, meta: &ObjectMeta) -> Obj {
        Obj {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
        }
    }

    fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Being deleted in the foreground: upstream's `isDeletingDependents`.
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }

    /// Whether a reference of this object blocks the deletion of `owner_uid`.
    pub fn blocks(&self, owner_uid: &str) -> bool {
        self.owners
            .iter()
            .any(|r| r.uid == owner_uid && r.block_owner_deletion == Some(true))
    }

    /// Whether `r` (a reference of a dependent in `namespace`) names this very object: uid,
    /// group, kind and name, and, for a namespaced object, the dependent's namespace (owner
    /// references never cross namespaces).
    fn is_named_by(&self, r: &OwnerReference, namespace: &str) -> bool {
        r.uid == self.uid
            && r.name == self.name
            && GroupKind::of_ref(r) == self.kind
            && (self.namespace.is_empty() || self.namespace == namespace)
    }
}

/// Whether an object matters to the collector at all: it has owners, or it waits for its
/// dependents. Every other object matters only as an owner, by uid.
pub fn is_dependent_or_finalizing(meta: &ObjectMeta) -> bool {
    meta.owner_references
        .as_ref()
        .is_some_and(|r| !r.is_empty())
        || (meta.deletion_timestamp.is_some()
            && meta
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == FOREGROUND || f == ORPHAN))
}

/// Whether a watched change from `before` (absent: an object new to the cache) to `after` can
/// make garbage, and so must queue a pass. Only the owner references, the uid, and the
/// deletion state and finalizers matter. A pod's status update, the most frequent change by
/// far, leaves the graph as it was and queues nothing (the periodic resync still passes).
pub fn may_make_garbage(before: Option<&ObjectMeta>, after: &ObjectMeta) -> bool {
    if !is_dependent_or_finalizing(after) {
        return false;
    }
    before.is_none_or(|b| {
        b.uid != after.uid
            || b.owner_references != after.owner_references
            || b.deletion_timestamp != after.deletion_timestamp
            || b.finalizers != after.finalizers
    })
}

/// How a dependent is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// One change to make through the API.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Delete a dependent, with this propagation. With `unblock`, first set
    /// `blockOwnerDeletion: false` on its blocking owner references (and do not delete if
    /// that fails): the dependent closes an ownership cycle whose other members already wait
    /// for their dependents, and would otherwise wait for one of them forever.
    Delete {
        obj: Obj,
        propagation: Propagation,
        unblock: bool,
    },
    /// Delete a dependent whose owners are all absent from the cache, once the API confirms
    /// they are gone (the cache may simply lag behind a new owner).
    DeleteIfOrphaned { obj: Obj },
    /// Remove the references to these owners from a dependent.
    StripOwners { obj: Obj, owner_uids: Vec<String> },
    /// Remove a finalizer from an owner whose dependents are dealt with.
    RemoveFinalizer { obj: Obj, finalizer: String },
}

/// What an owner reference of a dependent points to, as seen in the cache (upstream's
/// `classifyReferences`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// Exists and is not waiting for its dependents; also an owner of a kind the collector
    /// does not watch, which it leaves alone rather than guessing it is gone.
    Solid,
    /// Absent from the cache, or the uid there is another object's (a namesake, another
    /// kind, another namespace): the API confirms before anything is deleted.
    Dangling,
    /// Exists and is being deleted in the foreground.
    WaitingForDependentsDeletion,
    /// A cluster-scoped dependent naming a namespaced owner, which cannot exist: upstream
    /// leaves such a dependent alone (`namespacedOwnerOfClusterScopedObjectErr`).
    Invalid,
}

/// The snapshot indexed by uid and by owner uid.
struct Graph<'a> {
    scopes: &'a Scopes,
    by_uid: HashMap<&'a str, &'a Obj>,
    dependents: HashMap<&'a str, Vec<&'a Obj>>,
}

impl<'a> Graph<'a> {
    fn new(objects: &'a [Obj], scopes: &'a Scopes) -> Graph<'a> {
        let mut by_uid: HashMap<&str, &Obj> = HashMap::new();
        let mut dependents: HashMap<&str, Vec<&Obj>> = HashMap::new();
        for o in objects {
            by_uid.insert(&o.uid, o);
            for r in &o.owners {
                dependents.entry(r.uid.as_str()).or_default().push(o);
            }
        }
        Graph {
            scopes,
            by_uid,
            dependents,
        }
    }

    /// The dependents whose references name `owner` (in its namespace, or in any for a
    /// cluster-scoped owner).
    fn dependents(&self, owner: &Obj) -> Vec<&'a Obj> {
        let mut out: Vec<&Obj> = self
            .dependents
            .get(owner.uid.as_str())
            .into_iter()
            .flatten()
            .filter(|d| d.owners.iter().any(|r| owner.is_named_by(r, &d.namespace)))
            .copied()
            .collect();
        // A dependent listing the same owner twice is one dependent.
        out.dedup_by(|a, b| a.uid == b.uid);
        out
    }

    fn classify(&self, dependent: &Obj, r: &OwnerReference) -> Owner {
        let Some(&namespaced) = self.scopes.get(&GroupKind::of_ref(r)) else {
            return Owner::Solid;
        };
        if namespaced && dependent.namespace.is_empty() {
            return Owner::Invalid;
        }
        match self.by_uid.get(r.uid.as_str()) {
            Some(o) if o.is_named_by(r, &dependent.namespace) => {
                if o.deleting_dependents() {
                    Owner::WaitingForDependentsDeletion
                } else {
                    Owner::Solid
                }
            }
            _ => Owner::Dangling,
        }
    }
}

/// Computes the collector's changes for a snapshot of the objects that own or are owned
/// (every dependent, every owner being deleted with a finalizer, and every object some
/// reference's uid names), of the kinds in `scopes`.
pub fn plan(objects: &[Obj], scopes: &Scopes) -> Vec<Action> {
    let graph = Graph::new(objects, scopes);
    let mut actions = Vec::new();
    for owner in objects.iter().filter(|o| o.deleting) {
        let deps = graph.dependents(owner);
        if owner.has_finalizer(ORPHAN) {
            if deps.is_empty() {
                actions.push(Action::RemoveFinalizer {
                    obj: owner.clone(),
                    finalizer: ORPHAN.into(),
                });
            }
            for d in deps {
                actions.push(Action::StripOwners {
                    obj: d.clone(),
                    owner_uids: vec![owner.uid.clone()],
                });
            }
        } else if owner.has_finalizer(FOREGROUND) {
            // processDeletingDependentsItem: only dependents whose reference blocks the
            // owner's deletion hold it back; the rest are deleted below but not waited for.
            if !deps.iter().any(|d| d.blocks(&owner.uid)) {
                actions.push(Action::RemoveFinalizer {
                    obj: owner.clone(),
                    finalizer: FOREGROUND.into(),
                });
            }
        }
    }
    for dep in objects
        .iter()
        .filter(|o| !o.deleting && !o.owners.is_empty())
    {
        actions.extend(attempt_to_delete(&graph, dep));
    }
    actions
}

/// upstream's `attemptToDeleteItem` for a dependent not yet being deleted.
fn attempt_to_delete(graph: &Graph, dep: &Obj) -> Option<Action> {
    let owners: Vec<(Owner, &OwnerReference)> = dep
        .owners
        .iter()
        .map(|r| (graph.classify(dep, r), r))
        .collect();
    if owners.iter().any(|(c, _)| *c == Owner::Invalid) {
        return None;
    }
    let uids_of = |class: Owner| -> Vec<String> {
        owners
            .iter()
            .filter(|(c, _)| *c == class)
            .map(|(_, r)| r.uid.clone())
            .collect()
    };
    let solid = !uids_of(Owner::Solid).is_empty();
    let waiting = uids_of(Owner::WaitingForDependentsDeletion);
    if solid {
        // A dependent with an owner left keeps living, but must not hold up the owners
        // waiting for it. Upstream also strips dangling references here after asking the
        // API; a lagging cache is not proof enough, so those are left to a later pass.
        return (!waiting.is_empty()).then(|| Action::StripOwners {
            obj: dep.clone(),
            owner_uids: waiting,
        });
    }
    if waiting.is_empty() {
        return Some(Action::DeleteIfOrphaned { obj: dep.clone() });
    }
    let own_dependents = graph.dependents(dep);
    if !own_dependents.is_empty() {
        // Deleted in the foreground so its own dependents go first. If one of them is
        // already waiting for its dependents, this dependent may close a cycle back to it
        // (upstream's detection, false positives included): stop blocking its owners.
        let unblock = own_dependents.iter().any(|d| d.deleting_dependents())
            && dep
                .owners
                .iter()
                .any(|r| r.block_owner_deletion == Some(true));
        return Some(Action::Delete {
            obj: dep.clone(),
            propagation: Propagation::Foreground,
            unblock,
        });
    }
    let propagation = if dep.has_finalizer(ORPHAN) {
        Propagation::Orphan
    } else if dep.has_finalizer(FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    Some(Action::Delete {
        obj: dep.clone(),
        propagation,
        unblock: false,
    })
}
