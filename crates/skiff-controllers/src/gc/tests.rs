//! Table-driven tests of the garbage collector's plan: given these objects, expect exactly
//! these changes; and, for ownership cycles, that applying them the way the API server would
//! deletes every member.

use super::plan::{self, Action, GroupKind, Obj, Propagation, Scopes, FOREGROUND, ORPHAN};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The kinds of these tests: built-in ones of several groups and scopes, and custom
/// resources (a namespaced `Widget` and a cluster-scoped `Cluster`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Deployment,
    ReplicaSet,
    Pod,
    Job,
    Node,
    Widget,
    Cluster,
}

impl Kind {
    fn api_version_kind(self) -> (&'static str, &'static str) {
        match self {
            Kind::Deployment => ("apps/v1", "Deployment"),
            Kind::ReplicaSet => ("apps/v1", "ReplicaSet"),
            Kind::Pod => ("v1", "Pod"),
            Kind::Job => ("batch/v1", "Job"),
            Kind::Node => ("v1", "Node"),
            Kind::Widget => ("example.com/v1", "Widget"),
            Kind::Cluster => ("example.com/v1alpha1", "Cluster"),
        }
    }

    fn group_kind(self) -> GroupKind {
        let (api_version, kind) = self.api_version_kind();
        GroupKind::new(api_version, kind)
    }

    fn namespaced(self) -> bool {
        !matches!(self, Kind::Node | Kind::Cluster)
    }
}

/// What discovery would report for the test kinds.
fn scopes() -> Scopes {
    use Kind::*;
    [Deployment, ReplicaSet, Pod, Job, Node, Widget, Cluster]
        .into_iter()
        .map(|k| (k.group_kind(), k.namespaced()))
        .collect()
}

fn plan(objects: &[Obj]) -> Vec<Action> {
    plan::plan(objects, &scopes())
}

fn reference(kind: Kind, name: &str) -> OwnerReference {
    let (api_version, kind) = kind.api_version_kind();
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// An object owned by the ReplicaSets `owners`.
fn obj(kind: Kind, name: &str, owners: &[&str], finalizers: &[&str], deleting: bool) -> Obj {
    Obj {
        kind: kind.group_kind(),
        namespace: if kind.namespaced() { "default" } else { "" }.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        resource_version: String::new(),
        owners: owners
            .iter()
            .map(|o| reference(Kind::ReplicaSet, o))
            .collect(),
        finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
        deleting,
    }
}

/// A pod owned by the pod `owner`, as in upstream's "should not be blocked by dependency
/// circle".
fn pod(name: &str, owner: &str) -> Obj {
    Obj {
        owners: vec![reference(Kind::Pod, owner)],
        ..obj(Kind::Pod, name, &[], &[], false)
    }
}

/// `o` as the API server leaves it after a foreground delete.
fn in_foreground(o: &Obj) -> Obj {
    Obj {
        finalizers: vec![FOREGROUND.into()],
        deleting: true,
        ..o.clone()
    }
}

/// `o` with its owner references no longer blocking.
fn unblocked(o: &Obj) -> Obj {
    let mut o = o.clone();
    for r in &mut o.owners {
        r.block_owner_deletion = Some(false);
    }
    o
}

fn delete(o: &Obj, propagation: Propagation) -> Action {
    Action::Delete {
        obj: o.clone(),
        propagation,
        unblock: false,
    }
}

fn remove_foreground(o: &Obj) -> Action {
    Action::RemoveFinalizer {
        obj: o.clone(),
        finalizer: FOREGROUND.into(),
    }
}

#[test]
fn dependents_of_a_vanished_owner_are_deleted_after_confirmation() {
    let pod = obj(Kind::Pod, "p", &["rs"], &[], false);
    assert_eq!(
        plan(std::slice::from_ref(&pod)),
        vec![Action::DeleteIfOrphaned { obj: pod }]
    );
}

#[test]
fn dependents_of_a_live_owner_are_kept() {
    let rs = obj(Kind::ReplicaSet, "rs", &[], &[], false);
    let pod = obj(Kind::Pod, "p", &["rs"], &[], false);
    assert_eq!(plan(&[rs, pod]), vec![]);
}

#[test]
fn foreground_deletes_dependents_then_drops_the_finalizer() {
    let rs = obj(Kind::ReplicaSet, "rs", &[], &[FOREGROUND], true);
    let pod = obj(Kind::Pod, "p", &["rs"], &[], false);
    let terminating = obj(Kind::Pod, "t", &["rs"], &[], true);
    // A dependent without dependents of its own goes in the background (upstream's
    // attemptToDeleteItem default case); the owner waits for both pods.
    assert_eq!(
        plan(&[rs.clone(), pod.clone(), terminating]),
        vec![delete(&pod, Propagation::Background)]
    );
    assert_eq!(
        plan(std::slice::from_ref(&rs)),
        vec![remove_foreground(&rs)]
    );
}

#[test]
fn foreground_deletes_dependents_with_dependents_in_the_foreground() {
    let deploy = obj(Kind::Deployment, "d", &[], &[FOREGROUND], true);
    let mut rs = obj(Kind::ReplicaSet, "rs", &[], &[], false);
    rs.owners = vec![reference(Kind::Deployment, "d")];
    let pod = obj(Kind::Pod, "p", &["rs"], &[], false);
    assert_eq!(
        plan(&[deploy, rs.clone(), pod]),
        vec![delete(&rs, Propagation::Foreground)]
    );
}

#[test]
fn foreground_waits_only_for_blocking_dependents() {
    let rs = obj(Kind::ReplicaSet, "rs", &[], &[FOREGROUND], true);
    let terminating = unblocked(&obj(Kind::Pod, "t", &["rs"], &[], true));
    assert_eq!(
        plan(&[rs.clone(), terminating]),
        vec![remove_foreground(&rs)]
    );
}

#[test]
fn foreground_keeps_dependents_with_another_owner_and_drops_the_reference() {
    let rs = obj(Kind::ReplicaSet, "rs", &[], &[FOREGROUND], true);
    let other = obj(Kind::ReplicaSet, "other", &[], &[], false);
    let pod = obj(Kind::Pod, "p", &["rs", "other"], &[], false);
    assert_eq!(
        plan(&[rs, other, pod.clone()]),
        vec![Action::StripOwners {
            obj: pod,
            owner_uids: vec!["uid-rs".into()],
        }]
    );
}

#[test]
fn orphan_strips_owner_references_then_drops_the_finalizer() {
    let rs = obj(Kind::ReplicaSet, "rs", &[], &[ORPHAN], true);
    let pod = obj(Kind::Pod, "p", &["rs"], &[], false);
    assert_eq!(
        plan(&[rs.clone(), pod.clone()]),
        vec![Action::StripOwners {
            obj: pod,
            owner_uids: vec!["uid-rs".into()]
        }]
    );
    assert_eq!(
        plan(std::slice::from_ref(&rs)),
        vec![Action::RemoveFinalizer {
            obj: rs,
            finalizer: ORPHAN.into()
        }]
    );
}

#[test]
fn owners_of_kinds_not_served_are_left_alone() {
    let mut pod = obj(Kind::Pod, "p", &["gadget"], &[], false);
    pod.owners[0].api_version = "unknown.example/v1".into();
    pod.owners[0].kind = "Gadget".into();
    assert_eq!(plan(&[pod]), vec![]);
}

/// `o` owned by the objects `owners` (of their kinds) instead.
fn owned_by(o: Obj, owners: &[(Kind, &str)]) -> Obj {
    Obj {
        owners: owners.iter().map(|(k, n)| reference(*k, n)).collect(),
        ..o
    }
}

#[test]
fn dependents_of_a_vanished_owner_of_any_kind_are_deleted_after_confirmation() {
    let table = [
        (Kind::Job, Kind::Pod),
        (Kind::Widget, Kind::Deployment),
        (Kind::Cluster, Kind::Widget),
        (Kind::Node, Kind::Pod),
    ];
    for (owner, dependent) in table {
        let dep = owned_by(obj(dependent, "d", &[], &[], false), &[(owner, "o")]);
        assert_eq!(
            plan(std::slice::from_ref(&dep)),
            vec![Action::DeleteIfOrphaned { obj: dep.clone() }],
            "{owner:?} owning {dependent:?}"
        );
        let live = obj(owner, "o", &[], &[], false);
        assert_eq!(plan(&[live, dep]), vec![], "{owner:?} alive");
    }
}

/// upstream's graph is keyed by uid but a reference names its owner by group, kind, name and
/// namespace too: an object under that uid that is not the one named (a namesake created
/// again, another kind, another namespace) leaves the owner absent.
#[test]
fn an_owner_whose_identity_differs_from_the_reference_counts_as_absent() {
    let dep = owned_by(
        obj(Kind::Pod, "p", &[], &[], false),
        &[(Kind::ReplicaSet, "rs")],
    );
    let rs = obj(Kind::ReplicaSet, "rs", &[], &[], false);
    let table: Vec<(&str, Obj)> = vec![
        (
            "uid mismatch: recreated with a new uid",
            Obj {
                uid: "uid-rs-2".into(),
                ..rs.clone()
            },
        ),
        (
            "same uid, another kind",
            Obj {
                kind: Kind::Deployment.group_kind(),
                ..rs.clone()
            },
        ),
        (
            "same uid, another name",
            Obj {
                name: "other".into(),
                ..rs.clone()
            },
        ),
        (
            "same uid, another namespace",
            Obj {
                namespace: "elsewhere".into(),
                ..rs.clone()
            },
        ),
    ];
    for (name, owner) in table {
        assert_eq!(
            plan(&[owner, dep.clone()]),
            vec![Action::DeleteIfOrphaned { obj: dep.clone() }],
            "{name}"
        );
    }
}

#[test]
fn a_reference_in_another_api_version_of_the_group_names_the_owner() {
    let mut dep = owned_by(
        obj(Kind::Pod, "p", &[], &[], false),
        &[(Kind::ReplicaSet, "rs")],
    );
    dep.owners[0].api_version = "apps/v1beta2".into();
    let rs = obj(Kind::ReplicaSet, "rs", &[], &[], false);
    assert_eq!(plan(&[rs, dep]), vec![]);
}

#[test]
fn namespaced_dependents_of_a_cluster_scoped_owner_follow_it_in_every_namespace() {
    let node = obj(Kind::Node, "n", &[], &[], false);
    let a = owned_by(obj(Kind::Pod, "a", &[], &[], false), &[(Kind::Node, "n")]);
    let b = Obj {
        namespace: "other".into(),
        ..owned_by(obj(Kind::Pod, "b", &[], &[], false), &[(Kind::Node, "n")])
    };
    assert_eq!(plan(&[node.clone(), a.clone(), b.clone()]), vec![]);

    let foreground = in_foreground(&node);
    assert_eq!(
        plan(&[foreground.clone(), a.clone(), b.clone()]),
        vec![
            delete(&a, Propagation::Background),
            delete(&b, Propagation::Background)
        ]
    );
    assert_eq!(
        plan(std::slice::from_ref(&foreground)),
        vec![remove_foreground(&foreground)]
    );

    let orphaning = Obj {
        finalizers: vec![ORPHAN.into()],
        deleting: true,
        ..node
    };
    assert_eq!(
        plan(&[orphaning, a.clone(), b.clone()]),
        vec![
            Action::StripOwners {
                obj: a,
                owner_uids: vec!["uid-n".into()]
            },
            Action::StripOwners {
                obj: b,
                owner_uids: vec!["uid-n".into()]
            },
        ]
    );
}

/// upstream's `namespacedOwnerOfClusterScopedObjectErr`: a cluster-scoped object cannot
/// have a namespaced owner; it is never deleted for it, nor waited for.
#[test]
fn a_cluster_scoped_dependent_of_a_namespaced_owner_is_invalid_and_left_alone() {
    let dep = owned_by(
        obj(Kind::Cluster, "c", &[], &[], false),
        &[(Kind::Widget, "w")],
    );
    assert_eq!(plan(std::slice::from_ref(&dep)), vec![]);
    let also_cluster_owner = owned_by(dep.clone(), &[(Kind::Widget, "w"), (Kind::Node, "n")]);
    assert_eq!(plan(&[also_cluster_owner]), vec![]);
    let w = in_foreground(&obj(Kind::Widget, "w", &[], &[], false));
    assert_eq!(plan(&[w.clone(), dep]), vec![remove_foreground(&w)]);
}

#[test]
fn foreground_deletion_of_a_custom_resource_deletes_its_built_in_dependents() {
    let w = in_foreground(&obj(Kind::Widget, "w", &[], &[], false));
    let deploy = owned_by(
        obj(Kind::Deployment, "d", &[], &[], false),
        &[(Kind::Widget, "w")],
    );
    let rs = owned_by(
        obj(Kind::ReplicaSet, "rs", &[], &[], false),
        &[(Kind::Deployment, "d")],
    );
    assert_eq!(
        plan(&[w, deploy.clone(), rs]),
        vec![delete(&deploy, Propagation::Foreground)]
    );
}

/// Each step of upstream's resolution of the three-pod cycle (pod1 owned by pod3, pod2 by
/// pod1, pod3 by pod2) after `DELETE pod1` in the foreground: given the pods, exactly these
/// writes.
#[test]
fn a_three_pod_cycle_is_unblocked_where_it_closes() {
    let (p1, p2, p3) = (
        pod("pod1", "pod3"),
        pod("pod2", "pod1"),
        pod("pod3", "pod2"),
    );
    let p1_fg = in_foreground(&p1);
    let p2_fg = in_foreground(&p2);
    let p3_fg = in_foreground(&unblocked(&p3));
    let table: Vec<(&str, Vec<Obj>, Vec<Action>)> = vec![
        (
            "pod2 has a dependent not yet deleting: foreground, still blocking",
            vec![p1_fg.clone(), p2.clone(), p3.clone()],
            vec![delete(&p2, Propagation::Foreground)],
        ),
        (
            "pod3's dependent pod1 waits for its dependents: unblock pod3, then delete it",
            vec![p1_fg.clone(), p2_fg.clone(), p3.clone()],
            vec![Action::Delete {
                obj: p3.clone(),
                propagation: Propagation::Foreground,
                unblock: true,
            }],
        ),
        (
            "pod2 no longer has a blocking dependent",
            vec![p1_fg.clone(), p2_fg.clone(), p3_fg.clone()],
            vec![remove_foreground(&p2_fg)],
        ),
        (
            "pod2 is gone: pod1's last blocking dependent",
            vec![p1_fg.clone(), p3_fg.clone()],
            vec![remove_foreground(&p1_fg)],
        ),
        (
            "pod1 is gone: pod3's last blocking dependent",
            vec![p3_fg.clone()],
            vec![remove_foreground(&p3_fg)],
        ),
    ];
    for (name, objects, want) in table {
        assert_eq!(plan(&objects), want, "{name}");
    }
}

#[test]
fn a_two_pod_cycle_is_unblocked_where_it_closes() {
    let (a, b) = (pod("a", "b"), pod("b", "a"));
    let a_fg = in_foreground(&a);
    let b_fg = in_foreground(&unblocked(&b));
    let table: Vec<(&str, Vec<Obj>, Vec<Action>)> = vec![
        (
            "b's dependent a waits for its dependents: unblock b, then delete it",
            vec![a_fg.clone(), b.clone()],
            vec![Action::Delete {
                obj: b.clone(),
                propagation: Propagation::Foreground,
                unblock: true,
            }],
        ),
        (
            "a no longer has a blocking dependent; b waits for a",
            vec![a_fg.clone(), b_fg.clone()],
            vec![remove_foreground(&a_fg)],
        ),
        (
            "a is gone",
            vec![b_fg.clone()],
            vec![remove_foreground(&b_fg)],
        ),
    ];
    for (name, objects, want) in table {
        assert_eq!(plan(&objects), want, "{name}");
    }
}

/// A cycle where one member is not being deleted: the member not deleting is the one that
/// closes the cycle, whichever it is, and only it is unblocked.
#[test]
fn a_cycle_is_unblocked_at_its_member_not_yet_deleting() {
    let (p1, p2, p3) = (
        pod("pod1", "pod3"),
        pod("pod2", "pod1"),
        pod("pod3", "pod2"),
    );
    let cases = [
        (
            vec![p1.clone(), in_foreground(&p2), in_foreground(&p3)],
            &p1,
        ),
        (
            vec![in_foreground(&p1), p2.clone(), in_foreground(&p3)],
            &p2,
        ),
    ];
    for (objects, member) in cases {
        assert_eq!(
            plan(&objects),
            vec![Action::Delete {
                obj: member.clone(),
                propagation: Propagation::Foreground,
                unblock: true,
            }],
            "{}",
            member.name
        );
    }
}

/// A cycle that is not being deleted at all is left alone: every member has a live owner.
#[test]
fn a_cycle_nobody_deletes_is_kept() {
    let (p1, p2, p3) = (
        pod("pod1", "pod3"),
        pod("pod2", "pod1"),
        pod("pod3", "pod2"),
    );
    assert_eq!(plan(&[p1, p2, p3]), vec![]);
}

/// Applies `actions` to `objects` the way the API server would (the runner's API calls).
fn apply(objects: &mut Vec<Obj>, actions: &[Action]) {
    let finalize =
        |objects: &mut Vec<Obj>| objects.retain(|o| !o.deleting || !o.finalizers.is_empty());
    for action in actions {
        match action {
            Action::Delete {
                obj,
                propagation,
                unblock,
            } => {
                let Some(o) = objects.iter_mut().find(|o| o.uid == obj.uid) else {
                    continue;
                };
                if *unblock {
                    *o = Obj {
                        deleting: o.deleting,
                        finalizers: o.finalizers.clone(),
                        ..unblocked(o)
                    };
                }
                if !o.deleting {
                    o.deleting = true;
                    match propagation {
                        Propagation::Foreground => o.finalizers.push(FOREGROUND.into()),
                        Propagation::Orphan => o.finalizers.push(ORPHAN.into()),
                        Propagation::Background => {}
                    }
                }
            }
            Action::DeleteIfOrphaned { obj } => {
                let gone = obj
                    .owners
                    .iter()
                    .all(|r| !objects.iter().any(|o| o.uid == r.uid));
                if let (true, Some(o)) = (gone, objects.iter_mut().find(|o| o.uid == obj.uid)) {
                    o.deleting = true;
                }
            }
            Action::StripOwners { obj, owner_uids } => {
                if let Some(o) = objects.iter_mut().find(|o| o.uid == obj.uid) {
                    o.owners.retain(|r| !owner_uids.contains(&r.uid));
                }
            }
            Action::RemoveFinalizer { obj, finalizer } => {
                if let Some(o) = objects.iter_mut().find(|o| o.uid == obj.uid) {
                    o.finalizers.retain(|f| f != finalizer);
                }
            }
        }
        finalize(objects);
    }
}

#[test]
fn foreground_deletion_of_any_cycle_member_deletes_the_whole_cycle() {
    let cycles = [
        vec![pod("a", "b"), pod("b", "a")],
        vec![
            pod("pod1", "pod3"),
            pod("pod2", "pod1"),
            pod("pod3", "pod2"),
        ],
        vec![pod("w", "z"), pod("x", "w"), pod("y", "x"), pod("z", "y")],
    ];
    for cycle in cycles {
        for start in 0..cycle.len() {
            let mut objects = cycle.clone();
            objects[start] = in_foreground(&objects[start]);
            let mut passes = 0;
            while !objects.is_empty() {
                passes += 1;
                assert!(
                    passes <= 20,
                    "stuck deleting {cycle:?} from {start}: {objects:?}"
                );
                let actions = plan(&objects);
                assert!(!actions.is_empty(), "deadlock from {start}: {objects:?}");
                apply(&mut objects, &actions);
            }
        }
    }
}

/// Which watched changes queue a pass: only those that can make garbage.
#[test]
fn only_changes_to_owners_or_deletion_queue_a_pass() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    let meta = |owners: &[&str], finalizers: &[&str], deleting: bool| ObjectMeta {
        name: Some("p".into()),
        uid: Some("uid-p".into()),
        owner_references: Some(
            owners
                .iter()
                .map(|o| reference(Kind::ReplicaSet, o))
                .collect(),
        ),
        finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
        deletion_timestamp: deleting.then_some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
        ..ObjectMeta::default()
    };
    let owned = meta(&["rs"], &[], false);
    let mut relabelled = owned.clone();
    relabelled.resource_version = Some("7".into());
    let mut recreated = owned.clone();
    recreated.uid = Some("uid-p2".into());
    let cases: &[(&str, Option<&ObjectMeta>, &ObjectMeta, bool)] = &[
        ("a new dependent", None, &owned, true),
        (
            "a dependent's status or labels changed",
            Some(&owned),
            &relabelled,
            false,
        ),
        (
            "its owners changed",
            Some(&owned),
            &meta(&["rs2"], &[], false),
            true,
        ),
        (
            "owners added to a free object",
            Some(&meta(&[], &[], false)),
            &owned,
            true,
        ),
        (
            "owners removed",
            Some(&owned),
            &meta(&[], &[], false),
            false,
        ),
        ("recreated with a new uid", Some(&owned), &recreated, true),
        ("a free object changed", None, &meta(&[], &[], false), false),
        (
            "an owner enters foreground deletion",
            Some(&meta(&[], &[], false)),
            &meta(&[], &[FOREGROUND], true),
            true,
        ),
        (
            "a dependent is being deleted",
            Some(&owned),
            &meta(&["rs"], &[], true),
            true,
        ),
        (
            "a finalizing owner changes nothing that matters",
            Some(&meta(&[], &[ORPHAN], true)),
            &meta(&[], &[ORPHAN], true),
            false,
        ),
    ];
    for (name, before, after, want) in cases {
        assert_eq!(plan::may_make_garbage(*before, after), *want, "{name}");
    }
}
