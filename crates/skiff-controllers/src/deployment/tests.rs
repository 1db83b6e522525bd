//! Table-driven tests of the Deployment plan: fenceposts, rollout steps, revisions, conditions.

use super::plan::{plan, resolve_fenceposts, Action, REVISION};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, DeploymentStrategy,
    ReplicaSet, ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

fn ios(s: &str) -> IntOrString {
    match s.parse::<i32>() {
        Ok(n) => IntOrString::Int(n),
        Err(_) => IntOrString::String(s.into()),
    }
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("valid timestamp")
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn deployment(replicas: i32, surge: &str, unavailable: &str, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(ios(surge)),
                    max_unavailable: Some(ios(unavailable)),
                }),
            }),
            template: template(image),
            ..Default::default()
        }),
        status: None,
    }
}

/// A ReplicaSet of `d` for `image`, `replicas` all available.
fn rs(d: &Deployment, image: &str, replicas: i32, created: i64, revision: i64) -> ReplicaSet {
    let mut d = d.clone();
    if let Some(s) = d.spec.as_mut() {
        s.template = template(image);
    }
    let mut rs = super::plan::new_replicaset(&d, replicas, revision).expect("rs");
    rs.metadata.creation_timestamp = Some(Time(ts(created)));
    rs.status = Some(ReplicaSetStatus {
        replicas,
        ready_replicas: Some(replicas),
        available_replicas: Some(replicas),
        ..Default::default()
    });
    rs
}

fn scales(actions: &[Action]) -> Vec<(String, i32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Create(rs) => Some((
                "new".to_string(),
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1),
            )),
            Action::Scale { rs, to, .. } if rs.starts_with("web-") => Some(("old".into(), *to)),
            _ => None,
        })
        .collect()
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let cases = [
        (10, "25%", "25%", (3, 2)),
        (3, "25%", "25%", (1, 0)),
        (1, "25%", "25%", (1, 0)),
        (4, "1", "0", (1, 0)),
        (4, "0", "0", (0, 1)),
        (10, "0%", "0%", (0, 1)),
        (10, "30%", "30%", (3, 3)),
        (5, "2", "50%", (2, 2)),
        (5, "100%", "0", (5, 0)),
    ];
    for (replicas, surge, unavailable, want) in cases {
        let d = deployment(replicas, surge, unavailable, "v2");
        assert_eq!(
            resolve_fenceposts(&d),
            want,
            "{replicas} {surge} {unavailable}"
        );
    }
}

#[test]
fn first_rolling_step_per_surge_and_unavailable_mix() {
    // (replicas, maxSurge, maxUnavailable, expected new RS size then old RS target).
    type Case<'a> = (i32, &'a str, &'a str, &'a [(&'a str, i32)]);
    let cases: &[Case] = &[
        (4, "1", "0", &[("new", 1)]),
        (4, "0", "1", &[("new", 0), ("old", 3)]),
        (4, "2", "2", &[("new", 2), ("old", 2)]),
        (10, "25%", "25%", &[("new", 3), ("old", 8)]),
        (3, "0%", "0%", &[("new", 0), ("old", 2)]),
        (3, "100%", "0", &[("new", 3)]),
        (3, "0", "100%", &[("new", 0), ("old", 0)]),
    ];
    for (replicas, surge, unavailable, want) in cases {
        let d = deployment(*replicas, surge, unavailable, "v2");
        let old = rs(&d, "v1", *replicas, 10, 1);
        let got = plan(&d, &[&old], ts(1000));
        let want: Vec<(String, i32)> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(
            scales(&got.actions),
            want,
            "{replicas} {surge} {unavailable}"
        );
    }
}

/// Applies plan actions to the fake cluster, then lets every pod start (or stop) at once.
fn simulate(d: &mut Deployment, rss: &mut Vec<ReplicaSet>, actions: Vec<Action>, t: i64) {
    for action in actions {
        match action {
            Action::Create(mut rs) => {
                rs.metadata.uid = Some(format!("rs-{t}"));
                rs.metadata.creation_timestamp = Some(Time(ts(t)));
                rs.status = Some(ReplicaSetStatus::default());
                rss.push(*rs);
            }
            Action::Scale { rs, to, .. } => {
                for r in rss
                    .iter_mut()
                    .filter(|r| r.metadata.name.as_deref() == Some(&rs))
                {
                    if let Some(s) = r.spec.as_mut() {
                        s.replicas = Some(to);
                    }
                }
            }
            Action::SetRevision { rs, revision } => {
                for r in rss
                    .iter_mut()
                    .filter(|r| r.metadata.name.as_deref() == Some(&rs))
                {
                    r.metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(REVISION.into(), revision.to_string());
                }
            }
            Action::SetDeploymentRevision(revision) => {
                d.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(REVISION.into(), revision.to_string());
            }
            Action::Delete { rs } => rss.retain(|r| r.metadata.name.as_deref() != Some(&rs)),
            Action::Status(s) => d.status = Some(*s),
        }
    }
}

fn kubelet(rss: &mut [ReplicaSet]) {
    for r in rss.iter_mut() {
        let n = r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        r.status = Some(ReplicaSetStatus {
            replicas: n,
            ready_replicas: Some(n),
            available_replicas: Some(n),
            ..Default::default()
        });
    }
}

#[test]
fn rolling_update_stays_within_surge_and_unavailable_for_every_mix() {
    let mixes = [
        (4, "1", "0"),
        (4, "0", "1"),
        (4, "2", "2"),
        (10, "25%", "25%"),
        (10, "50%", "10%"),
        (3, "0%", "0%"),
        (3, "100%", "0"),
        (3, "0", "100%"),
        (1, "25%", "25%"),
    ];
    for (replicas, surge, unavailable) in mixes {
        let mut d = deployment(replicas, surge, unavailable, "v2");
        let (max_surge, max_unavailable) = resolve_fenceposts(&d);
        let mut rss = vec![rs(&d, "v1", replicas, 10, 1)];
        let mut done = false;
        for step in 0..50 {
            let refs: Vec<&ReplicaSet> = rss.iter().collect();
            let p = plan(&d, &refs, ts(1000 + step));
            if p.actions.is_empty() {
                done = true;
                break;
            }
            simulate(&mut d, &mut rss, p.actions, 1000 + step);
            let total: i32 = rss.iter().filter_map(|r| r.spec.as_ref()?.replicas).sum();
            assert!(
                total <= replicas + max_surge,
                "{surge}/{unavailable}: {total} pods"
            );
            kubelet(&mut rss);
            let available: i32 = rss
                .iter()
                .filter_map(|r| r.status.as_ref()?.available_replicas)
                .sum();
            assert!(
                available >= replicas - max_unavailable,
                "{surge}/{unavailable}: only {available} available"
            );
        }
        assert!(done, "{surge}/{unavailable}: rollout did not settle");
        let sizes: Vec<i32> = rss
            .iter()
            .filter_map(|r| r.spec.as_ref()?.replicas)
            .collect();
        assert_eq!(sizes, vec![0, replicas], "{surge}/{unavailable}");
        let cond = d
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Progressing"))
            .and_then(|c| c.reason.clone());
        assert_eq!(cond.as_deref(), Some("NewReplicaSetAvailable"));
    }
}

#[test]
fn recreate_scales_old_to_zero_and_waits_for_its_pods_before_creating() {
    let mut d = deployment(3, "1", "1", "v2");
    if let Some(s) = d.spec.as_mut() {
        s.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
    }
    let mut old = rs(&d, "v1", 3, 10, 1);
    assert_eq!(
        scales(&plan(&d, &[&old], ts(1000)).actions),
        vec![("old".to_string(), 0)]
    );
    if let Some(s) = old.spec.as_mut() {
        s.replicas = Some(0);
    }
    assert_eq!(
        scales(&plan(&d, &[&old], ts(1000)).actions),
        vec![],
        "old pods still running"
    );
    old.status = Some(ReplicaSetStatus::default());
    assert_eq!(
        scales(&plan(&d, &[&old], ts(1000)).actions),
        vec![("new".to_string(), 3)]
    );
}

#[test]
fn undo_reuses_the_matching_replicaset_with_the_next_revision() {
    let d = deployment(2, "1", "0", "v1");
    let v1 = rs(&d, "v1", 0, 10, 1);
    let v2 = rs(&d, "v2", 2, 20, 2);
    let got = plan(&d, &[&v1, &v2], ts(1000));
    let v1_name = v1.metadata.name.clone().unwrap_or_default();
    assert!(got.actions.iter().all(|a| !matches!(a, Action::Create(_))));
    assert!(got.actions.contains(&Action::SetRevision {
        rs: v1_name.clone(),
        revision: 3
    }));
    assert!(got.actions.contains(&Action::SetDeploymentRevision(3)));
    assert!(got.actions.contains(&Action::Scale {
        rs: v1_name,
        from: 0,
        to: 1
    }));
}

#[test]
fn new_replicaset_copies_the_template_verbatim_plus_the_hash_label() {
    let d = deployment(2, "1", "0", "v1");
    let rs = super::plan::new_replicaset(&d, 2, 1).expect("rs");
    let spec = rs.spec.expect("spec");
    let hash = rs
        .metadata
        .name
        .as_deref()
        .and_then(|n| n.strip_prefix("web-"))
        .expect("name");
    let labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone());
    assert_eq!(
        labels
            .and_then(|l| l.get("pod-template-hash").cloned())
            .as_deref(),
        Some(hash)
    );
    assert!(super::hash::equal_ignore_hash(
        &spec.template.expect("template"),
        &template("v1")
    ));
    let annotations = rs.metadata.annotations.expect("annotations");
    assert_eq!(annotations.get(REVISION).map(String::as_str), Some("1"));
}

#[test]
fn revision_history_limit_deletes_oldest_empty_replicasets() {
    let mut d = deployment(1, "1", "0", "v4");
    if let Some(s) = d.spec.as_mut() {
        s.revision_history_limit = Some(1);
    }
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        ..Default::default()
    });
    let v1 = rs(&d, "v1", 0, 10, 1);
    let v2 = rs(&d, "v2", 0, 20, 2);
    let v3 = rs(&d, "v3", 0, 30, 3);
    let v4 = rs(&d, "v4", 1, 40, 4);
    let got = plan(&d, &[&v1, &v2, &v3, &v4], ts(1000));
    let deleted: Vec<&Action> = got
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Delete { .. }))
        .collect();
    let name = |r: &ReplicaSet| r.metadata.name.clone().unwrap_or_default();
    assert_eq!(
        deleted,
        vec![
            &Action::Delete { rs: name(&v1) },
            &Action::Delete { rs: name(&v2) }
        ]
    );
}

#[test]
fn paused_deployment_creates_no_replicaset() {
    let mut d = deployment(2, "1", "0", "v2");
    if let Some(s) = d.spec.as_mut() {
        s.paused = Some(true);
    }
    let old = rs(&d, "v1", 2, 10, 1);
    assert_eq!(scales(&plan(&d, &[&old], ts(1000)).actions), vec![]);
}

#[test]
fn stalled_rollout_times_out_after_progress_deadline() {
    let mut d = deployment(2, "1", "0", "v2");
    if let Some(s) = d.spec.as_mut() {
        s.progress_deadline_seconds = Some(60);
    }
    let old = rs(&d, "v1", 2, 10, 1);
    let mut new = rs(&d, "v2", 1, 20, 2);
    new.status = Some(ReplicaSetStatus {
        replicas: 1,
        ..Default::default()
    });
    let progressing = DeploymentCondition {
        type_: "Progressing".into(),
        status: "True".into(),
        reason: Some("ReplicaSetUpdated".into()),
        last_update_time: Some(Time(ts(900))),
        last_transition_time: Some(Time(ts(900))),
        message: None,
    };
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(3),
        updated_replicas: Some(1),
        ready_replicas: Some(2),
        available_replicas: Some(2),
        conditions: Some(vec![progressing]),
        ..Default::default()
    });
    let before = plan(&d, &[&old, &new], ts(950));
    assert_eq!(
        before
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Status(_)))
            .count(),
        1
    );
    let after = plan(&d, &[&old, &new], ts(1000));
    let status = after.actions.iter().find_map(|a| match a {
        Action::Status(s) => Some(s.clone()),
        _ => None,
    });
    let reason = status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Progressing"))
        .and_then(|c| c.reason);
    assert_eq!(reason.as_deref(), Some("ProgressDeadlineExceeded"));
}

/// Sets the desired/max-replicas annotations as if `rs` was last scaled for `replicas`
/// with `max` = replicas + maxSurge.
fn scaled_for(mut rs: ReplicaSet, replicas: i32, max: i32) -> ReplicaSet {
    let a = rs.metadata.annotations.get_or_insert_with(Default::default);
    a.insert(super::plan::DESIRED_REPLICAS.into(), replicas.to_string());
    a.insert(super::plan::MAX_REPLICAS.into(), max.to_string());
    rs
}

fn sizes(actions: &[Action]) -> Vec<(String, i32, i32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Scale { rs, from, to } => Some((rs.clone(), *from, *to)),
            _ => None,
        })
        .collect()
}

#[test]
fn scaling_mid_rollout_spreads_replicas_proportionally() {
    // Upstream's documented example: 10 replicas, maxSurge 3, a rollout stuck with 8 old
    // and 5 new pods; scaled to 15, the 5 extra go 3 to the old and 2 to the new.
    let d10 = deployment(10, "3", "2", "v2");
    let mut old = scaled_for(rs(&d10, "v1", 8, 10, 1), 10, 13);
    let mut new = scaled_for(rs(&d10, "v2", 5, 20, 2), 10, 13);
    if let Some(s) = new.status.as_mut() {
        s.available_replicas = Some(0);
        s.ready_replicas = Some(0);
    }
    let d15 = deployment(15, "3", "2", "v2");
    let names = |r: &ReplicaSet| r.metadata.name.clone().unwrap_or_default();
    let got = sizes(&plan(&d15, &[&old, &new], ts(1000)).actions);
    assert_eq!(
        got,
        vec![(names(&old), 8, 11), (names(&new), 5, 7)],
        "{got:?}"
    );
    // Scaled down to 5 instead (allowed 5 + 2 = 7 of 13): the larger, older set gives most,
    // rounding leftovers go to the largest.
    let d5 = deployment(5, "2", "2", "v2");
    let got = sizes(&plan(&d5, &[&old, &new], ts(1000)).actions);
    let total: i32 = got.iter().map(|(_, _, to)| to).sum();
    assert_eq!(total, 7, "{got:?}");
    assert_eq!(got[0], (names(&old), 8, 4), "{got:?}");
    // Once every set carries the new count, the rollout goes on as usual (no scaling event).
    old = scaled_for(old, 15, 18);
    new = scaled_for(new, 15, 18);
    if let Some(s) = old.spec.as_mut() {
        s.replicas = Some(11);
    }
    if let Some(s) = new.spec.as_mut() {
        s.replicas = Some(7);
    }
    let got = sizes(&plan(&d15, &[&old, &new], ts(1000)).actions);
    assert!(
        got.iter().all(|(_, from, to)| from != to || to == &0),
        "{got:?}"
    );
}

#[test]
fn scaling_a_settled_deployment_resizes_its_only_replicaset() {
    let d3 = deployment(3, "1", "0", "v1");
    let only = scaled_for(rs(&d3, "v1", 3, 10, 1), 3, 4);
    let d6 = deployment(6, "1", "0", "v1");
    let got = sizes(&plan(&d6, &[&only], ts(1000)).actions);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].1, got[0].2), (3, 6));
}
