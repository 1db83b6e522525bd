//! Pure garbage-collection planning: from a snapshot of every handled object, the changes,
//! with upstream's decisions (`pkg/controller/garbagecollector/garbagecollector.go`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::HashMap;

/// The finalizer of foreground deletion: the owner waits for its blocking dependents.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of orphan deletion: the owner waits for its dependents to drop it.
pub const ORPHAN: &str = "orphan";

/// The kinds the collector handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Deployment,
    ReplicaSet,
    Pod,
}

impl Kind {
    /// The handled kind an owner reference points to, if any.
    pub fn of_ref(r: &OwnerReference) -> Option<Kind> {
        match (r.api_version.as_str(), r.kind.as_str()) {
            ("apps/v1", "Deployment") => Some(Kind::Deployment),
            ("apps/v1", "ReplicaSet") => Some(Kind::ReplicaSet),
            ("v1", "Pod") => Some(Kind::Pod),
            _ => None,
        }
    }
}

/// What the collector needs to know of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Obj {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

impl Obj {
    /// The summary of an object of `kind`.
    pub fn new(kind: Kind, meta: &ObjectMeta) -> Obj {
        Obj {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
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
    /// Absent from the cache (the API confirms before anything is deleted).
    Dangling,
    /// Exists and is being deleted in the foreground.
    WaitingForDependentsDeletion,
}

/// The snapshot indexed by uid and by owner uid.
struct Graph<'a> {
    by_uid: HashMap<&'a str, &'a Obj>,
    dependents: HashMap<&'a str, Vec<&'a Obj>>,
}

impl<'a> Graph<'a> {
    fn new(objects: &'a [Obj]) -> Graph<'a> {
        let mut by_uid: HashMap<&str, &Obj> = HashMap::new();
        let mut dependents: HashMap<&str, Vec<&Obj>> = HashMap::new();
        for o in objects {
            by_uid.insert(&o.uid, o);
            for r in &o.owners {
                dependents.entry(r.uid.as_str()).or_default().push(o);
            }
        }
        Graph { by_uid, dependents }
    }

    /// The dependents of `owner` (owner references only count within a namespace).
    fn dependents(&self, owner: &Obj) -> Vec<&'a Obj> {
        self.dependents
            .get(owner.uid.as_str())
            .into_iter()
            .flatten()
            .filter(|d| d.namespace == owner.namespace)
            .copied()
            .collect()
    }

    fn classify(&self, dependent: &Obj, r: &OwnerReference) -> Owner {
        if Kind::of_ref(r).is_none() {
            return Owner::Solid;
        }
        match self.by_uid.get(r.uid.as_str()) {
            Some(o) if o.namespace == dependent.namespace => {
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

/// Computes the collector's changes for a snapshot of every handled object.
pub fn plan(objects: &[Obj]) -> Vec<Action> {
    let graph = Graph::new(objects);
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
