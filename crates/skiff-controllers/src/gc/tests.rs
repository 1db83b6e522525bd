//! Table-driven tests of the garbage collector's plan: given these objects, expect exactly
//! these changes; and, for ownership cycles, that applying them the way the API server would
//! deletes every member.

use super::plan::{plan, Action, Kind, Obj, Propagation, FOREGROUND, ORPHAN};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

fn reference(kind: Kind, name: &str) -> OwnerReference {
    let (api_version, kind) = match kind {
        Kind::Deployment => ("apps/v1", "Deployment"),
        Kind::ReplicaSet => ("apps/v1", "ReplicaSet"),
        Kind::Pod => ("v1", "Pod"),
    };
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
        kind,
        namespace: "default".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
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
fn owners_of_unknown_kinds_are_left_alone() {
    let mut pod = obj(Kind::Pod, "p", &["job"], &[], false);
    pod.owners[0].api_version = "batch/v1".into();
    pod.owners[0].kind = "Job".into();
    assert_eq!(plan(&[pod]), vec![]);
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
