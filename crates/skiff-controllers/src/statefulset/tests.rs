//! Table tests of the StatefulSet plan, after upstream's `stateful_set_control_test.go` and
//! `stateful_set_utils_test.go`: single passes ("given these objects, expect these writes"),
//! and whole scenarios run on a small in-memory cluster that applies the writes and plays the
//! kubelet (pods become Running and Ready, terminating pods go away) and the garbage collector.

use super::plan::{max_unavailable, plan, Action, Observed, Why};
use super::pod::{
    apply_revision, identity_matches, new_pod, parent_and_ordinal, pod_revision, revision_data,
    storage_matches, wanted_claim_owners, POD_INDEX_LABEL, POD_NAME_LABEL,
};
use crate::history;
use k8s_openapi::api::apps::v1::{
    ControllerRevision, RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetOrdinals,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetStatus,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
    Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

const UID: &str = "set-uid";

fn app() -> BTreeMap<String, String> {
    [("app".to_string(), "web".to_string())].into()
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("valid timestamp")
}

/// `web`, `replicas` pods of image `img`, claim template `data`, OrderedReady, RollingUpdate.
fn set(replicas: i32) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some(UID.into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some("web".into()),
            selector: LabelSelector {
                match_labels: Some(app()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(app()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "c".into(),
                        image: Some("img:1".into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    ..ObjectMeta::default()
                },
                ..PersistentVolumeClaim::default()
            }]),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(0),
                    max_unavailable: None,
                }),
            }),
            pod_management_policy: Some("OrderedReady".into()),
            revision_history_limit: Some(10),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

fn spec_mut(s: &mut StatefulSet) -> &mut StatefulSetSpec {
    s.spec.as_mut().expect("test sets have a spec")
}

fn with_image(mut s: StatefulSet, image: &str) -> StatefulSet {
    if let Some(ps) = spec_mut(&mut s).template.spec.as_mut() {
        ps.containers[0].image = Some(image.into());
    }
    s.metadata.generation = s.metadata.generation.map(|g| g + 1);
    s
}

fn parallel(mut s: StatefulSet) -> StatefulSet {
    spec_mut(&mut s).pod_management_policy = Some("Parallel".into());
    s
}

fn policy(mut s: StatefulSet, when_deleted: &str, when_scaled: &str) -> StatefulSet {
    spec_mut(&mut s).persistent_volume_claim_retention_policy =
        Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
            when_deleted: Some(when_deleted.into()),
            when_scaled: Some(when_scaled.into()),
        });
    s
}

/// A small cluster: applies writes, plays kubelet and garbage collector.
struct World {
    set: StatefulSet,
    pods: Vec<Pod>,
    claims: Vec<PersistentVolumeClaim>,
    revisions: Vec<ControllerRevision>,
    now: i64,
    next_uid: u32,
    /// Pod writes in order: `+web-0`, `-web-2`.
    log: Vec<String>,
    /// Whether new pods become ready (false: they stay Pending).
    kubelet_ready: bool,
}

impl World {
    fn new(set: StatefulSet) -> World {
        World {
            set,
            pods: Vec::new(),
            claims: Vec::new(),
            revisions: Vec::new(),
            now: 1000,
            next_uid: 0,
            log: Vec::new(),
            kubelet_ready: true,
        }
    }

    fn uid(&mut self) -> String {
        self.next_uid += 1;
        format!("uid-{}", self.next_uid)
    }

    fn plan(&self) -> super::plan::Plan {
        let pods: Vec<&Pod> = self.pods.iter().collect();
        let claims: Vec<&PersistentVolumeClaim> = self.claims.iter().collect();
        let revisions: Vec<&ControllerRevision> = self.revisions.iter().collect();
        plan(&Observed {
            set: &self.set,
            pods: &pods,
            claims: &claims,
            revisions: &revisions,
            now: ts(self.now),
        })
    }

    fn apply(&mut self, action: Action) {
        let now = Time(ts(self.now));
        match action {
            Action::AdoptPod { pod } => {
                let owner =
                    crate::meta::new_controller_ref("apps/v1", "StatefulSet", &self.set.metadata);
                if let Some(p) = self.pod_mut(&pod) {
                    p.metadata.owner_references = owner.map(|o| vec![o]);
                }
            }
            Action::ReleasePod { pod } => {
                if let Some(p) = self.pod_mut(&pod) {
                    p.metadata.owner_references = None;
                }
            }
            Action::AdoptRevision { name } => {
                let owner =
                    crate::meta::new_controller_ref("apps/v1", "StatefulSet", &self.set.metadata);
                if let Some(r) = self
                    .revisions
                    .iter_mut()
                    .find(|r| r.metadata.name.as_deref() == Some(&name))
                {
                    r.metadata.owner_references = owner.map(|o| vec![o]);
                }
            }
            Action::CreateRevision(r) => {
                let mut r = *r;
                r.metadata.uid = Some(self.uid());
                r.metadata.creation_timestamp = Some(now);
                self.revisions.push(r);
            }
            Action::SetRevisionNumber { name, revision } => {
                if let Some(r) = self
                    .revisions
                    .iter_mut()
                    .find(|r| r.metadata.name.as_deref() == Some(&name))
                {
                    r.revision = revision;
                }
            }
            Action::DeleteRevision { name } => {
                self.revisions
                    .retain(|r| r.metadata.name.as_deref() != Some(&name));
            }
            Action::CreateClaim { claim, .. } => {
                let mut claim = *claim;
                claim.metadata.uid = Some(self.uid());
                self.claims.push(claim);
            }
            Action::CreatePod(p) => {
                let mut p = *p;
                self.log
                    .push(format!("+{}", p.metadata.name.clone().unwrap_or_default()));
                p.metadata.uid = Some(self.uid());
                p.status = Some(PodStatus {
                    phase: Some("Pending".into()),
                    ..PodStatus::default()
                });
                self.pods.push(p);
            }
            Action::DeletePod { pod, .. } => {
                self.log.push(format!("-{pod}"));
                if let Some(p) = self.pod_mut(&pod) {
                    p.metadata.deletion_timestamp = Some(now);
                }
            }
            Action::SetPodLabels { pod, labels } => {
                if let Some(p) = self.pod_mut(&pod) {
                    p.metadata
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .extend(labels);
                }
            }
            Action::SetClaimOwners { claim, owners } => {
                if let Some(c) = self
                    .claims
                    .iter_mut()
                    .find(|c| c.metadata.name.as_deref() == Some(&claim))
                {
                    c.metadata.owner_references = (!owners.is_empty()).then_some(owners);
                }
            }
            Action::Status(s) => self.set.status = Some(s),
        }
    }

    fn pod_mut(&mut self, name: &str) -> Option<&mut Pod> {
        self.pods
            .iter_mut()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    }

    fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    }

    /// The kubelet and the garbage collector: terminating pods go, pending pods become
    /// Running and Ready, claims whose owners are all gone are deleted.
    fn settle_cluster(&mut self) {
        self.now += 1;
        self.pods
            .retain(|p| p.metadata.deletion_timestamp.is_none());
        if self.kubelet_ready {
            for p in &mut self.pods {
                if super::pod::is_pending(p) {
                    *p = ready(p.clone(), self.now);
                }
            }
        }
        let mut live: Vec<String> = self
            .pods
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        if self.set.metadata.deletion_timestamp.is_none() {
            live.extend(self.set.metadata.uid.clone());
        }
        self.claims.retain(|c| {
            let owners = c.metadata.owner_references.as_deref().unwrap_or_default();
            owners.is_empty() || owners.iter().any(|o| live.contains(&o.uid))
        });
    }

    /// Plans and applies until a pass writes nothing and no pod is in transition; returns
    /// the passes taken.
    fn run(&mut self) -> usize {
        for pass in 0..200 {
            let plan = self.plan();
            let idle = plan.actions.is_empty();
            for a in plan.actions {
                self.apply(a);
            }
            if idle
                && self
                    .pods
                    .iter()
                    .all(|p| !super::pod::is_pending(p) || !self.kubelet_ready)
                && self
                    .pods
                    .iter()
                    .all(|p| p.metadata.deletion_timestamp.is_none())
            {
                return pass;
            }
            self.settle_cluster();
        }
        panic!("no steady state after 200 passes; log {:?}", self.log);
    }

    fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self
            .pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        n.sort();
        n
    }

    fn status(&self) -> StatefulSetStatus {
        self.set.status.clone().unwrap_or_default()
    }
}

fn ready(mut p: Pod, since: i64) -> Pod {
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(ts(since))),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    });
    p
}

fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::AdoptPod { pod } => format!("adopt {pod}"),
            Action::ReleasePod { pod } => format!("release {pod}"),
            Action::AdoptRevision { name } => format!("adopt revision {name}"),
            Action::CreateRevision(r) => format!("create revision {}", r.revision),
            Action::SetRevisionNumber { revision, .. } => format!("renumber revision {revision}"),
            Action::DeleteRevision { name } => format!("delete revision {name}"),
            Action::CreateClaim { claim, .. } => {
                format!(
                    "create claim {}",
                    claim.metadata.name.clone().unwrap_or_default()
                )
            }
            Action::CreatePod(p) => {
                format!("create {}", p.metadata.name.clone().unwrap_or_default())
            }
            Action::DeletePod { pod, why, .. } => format!("delete {pod} ({why:?})"),
            Action::SetPodLabels { pod, .. } => format!("label {pod}"),
            Action::SetClaimOwners { claim, owners } => format!(
                "own {claim} by [{}]",
                owners
                    .iter()
                    .map(|o| o.kind.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Action::Status(_) => "status".into(),
        })
        .collect()
}

#[test]
fn a_new_set_records_its_revision_then_creates_the_first_claim_and_pod() {
    let w = World::new(set(3));
    assert_eq!(
        kinds(&w.plan().actions),
        [
            "create revision 1",
            "create claim data-web-0",
            "create web-0",
            "status"
        ]
    );
}

#[test]
fn ordered_ready_creates_in_order_one_at_a_time_waiting_for_ready() {
    let mut w = World::new(set(3));
    w.kubelet_ready = false;
    for a in w.plan().actions {
        w.apply(a);
    }
    // web-0 is Pending: nothing more is created, the status counts it.
    assert_eq!(kinds(&w.plan().actions), ["status"]);
    w.kubelet_ready = true;
    w.run();
    assert_eq!(w.log, ["+web-0", "+web-1", "+web-2"]);
    let s = w.status();
    assert_eq!(
        (
            s.replicas,
            s.ready_replicas,
            s.available_replicas,
            s.current_replicas,
            s.updated_replicas
        ),
        (3, Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(s.current_revision, s.update_revision);
    assert_eq!(s.observed_generation, Some(1));
    let claims: Vec<_> = w
        .claims
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(claims, ["data-web-0", "data-web-1", "data-web-2"]);
}

#[test]
fn parallel_creates_every_missing_pod_in_one_pass() {
    let w = World::new(parallel(set(3)));
    assert_eq!(
        kinds(&w.plan().actions),
        [
            "create revision 1",
            "create claim data-web-0",
            "create web-0",
            "create claim data-web-1",
            "create web-1",
            "create claim data-web-2",
            "create web-2",
            "status"
        ]
    );
}

#[test]
fn scale_down_removes_the_highest_ordinal_first_one_at_a_time() {
    let mut w = World::new(set(4));
    w.run();
    w.log.clear();
    spec_mut(&mut w.set).replicas = Some(1);
    assert_eq!(kinds(&w.plan().actions), ["delete web-3 (ScaleDown)"]);
    w.run();
    assert_eq!(w.log, ["-web-3", "-web-2", "-web-1"]);
    assert_eq!(w.names(), ["web-0"]);
    // Claims are retained by default.
    assert_eq!(w.claims.len(), 4);
}

#[test]
fn parallel_scale_down_removes_all_condemned_at_once() {
    let mut w = World::new(parallel(set(3)));
    w.run();
    spec_mut(&mut w.set).replicas = Some(0);
    assert_eq!(
        kinds(&w.plan().actions),
        [
            "delete web-2 (ScaleDown)",
            "delete web-1 (ScaleDown)",
            "delete web-0 (ScaleDown)"
        ]
    );
}

#[test]
fn ordered_scale_down_waits_while_a_member_is_unhealthy() {
    let mut w = World::new(set(3));
    w.run();
    spec_mut(&mut w.set).replicas = Some(2);
    if let Some(p) = w.pod_mut("web-0") {
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            ..PodStatus::default()
        });
    }
    assert_eq!(kinds(&w.plan().actions), ["status"]);
}

#[test]
fn failed_and_succeeded_pods_are_deleted_and_recreated_with_their_claim() {
    for phase in ["Failed", "Succeeded"] {
        let mut w = World::new(set(2));
        w.run();
        let old_uid = w.pod("web-0").and_then(|p| p.metadata.uid.clone());
        if let Some(p) = w.pod_mut("web-0") {
            p.status = Some(PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            });
        }
        assert_eq!(
            kinds(&w.plan().actions),
            ["delete web-0 (Finished)", "status"],
            "{phase}"
        );
        w.run();
        let p = w.pod("web-0").expect("web-0 recreated");
        assert_ne!(p.metadata.uid, old_uid, "{phase}");
        assert_eq!(w.claims.len(), 2, "{phase}: the claim is reused");
    }
}

#[test]
fn a_deleted_member_comes_back_with_its_name_and_claim() {
    let mut w = World::new(set(3));
    w.run();
    w.log.clear();
    let claim_uid = w.claims[0].metadata.uid.clone();
    w.pods
        .retain(|p| p.metadata.name.as_deref() != Some("web-0"));
    assert_eq!(kinds(&w.plan().actions), ["create web-0", "status"]);
    w.run();
    assert_eq!(w.log, ["+web-0"]);
    let volumes = w
        .pod("web-0")
        .and_then(|p| p.spec.clone())
        .and_then(|s| s.volumes)
        .unwrap_or_default();
    assert_eq!(
        volumes[0]
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some("data-web-0")
    );
    assert_eq!(w.claims[0].metadata.uid, claim_uid);
}

#[test]
fn a_member_has_identity_labels_hostname_subdomain_and_its_claim_volume() {
    let mut s = set(1);
    if let Some(ps) = spec_mut(&mut s).template.spec.as_mut() {
        ps.volumes = Some(vec![
            Volume {
                name: "data".into(),
                ..Volume::default()
            },
            Volume {
                name: "scratch".into(),
                ..Volume::default()
            },
        ]);
    }
    let p = new_pod(&s, 7, "web-abc").expect("pod");
    let l = p.metadata.labels.clone().unwrap_or_default();
    assert_eq!(p.metadata.name.as_deref(), Some("web-7"));
    assert_eq!(l.get(POD_NAME_LABEL).map(String::as_str), Some("web-7"));
    assert_eq!(l.get(POD_INDEX_LABEL).map(String::as_str), Some("7"));
    assert_eq!(
        l.get("controller-revision-hash").map(String::as_str),
        Some("web-abc")
    );
    assert_eq!(l.get("app").map(String::as_str), Some("web"));
    let spec = p.spec.clone().unwrap_or_default();
    assert_eq!(spec.hostname.as_deref(), Some("web-7"));
    assert_eq!(spec.subdomain.as_deref(), Some("web"));
    let vols: Vec<(String, Option<String>)> = spec
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| (v.name, v.persistent_volume_claim.map(|c| c.claim_name)))
        .collect();
    // The claim replaces the template volume of the same name (upstream `updateStorage`).
    assert_eq!(
        vols,
        [
            ("data".to_string(), Some("data-web-7".to_string())),
            ("scratch".to_string(), None)
        ]
    );
    let owner = &p.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("StatefulSet", Some(true))
    );
    assert!(identity_matches(&s, &p));
    assert!(storage_matches(&s, &p));
}

#[test]
fn identity_and_storage_matches_as_upstream() {
    let s = set(3);
    let good = new_pod(&s, 1, "r").expect("pod");
    let edit = |f: &dyn Fn(&mut Pod)| {
        let mut p = good.clone();
        f(&mut p);
        p
    };
    let cases: Vec<(&str, Pod, bool, bool)> = vec![
        ("a new member", good.clone(), true, true),
        (
            "other namespace",
            edit(&|p| p.metadata.namespace = Some("x".into())),
            false,
            true,
        ),
        (
            "no pod-name label",
            edit(&|p| {
                if let Some(l) = p.metadata.labels.as_mut() {
                    l.remove(POD_NAME_LABEL);
                }
            }),
            false,
            true,
        ),
        (
            "wrong pod-index label",
            edit(&|p| {
                if let Some(l) = p.metadata.labels.as_mut() {
                    l.insert(POD_INDEX_LABEL.into(), "2".into());
                }
            }),
            false,
            true,
        ),
        (
            "other parent",
            edit(&|p| p.metadata.name = Some("db-1".into())),
            false,
            true,
        ),
        (
            "no volumes",
            edit(&|p| {
                if let Some(s) = p.spec.as_mut() {
                    s.volumes = None
                }
            }),
            true,
            false,
        ),
        (
            "claim of another ordinal",
            edit(&|p| {
                if let Some(v) = p.spec.as_mut().and_then(|s| s.volumes.as_mut()) {
                    if let Some(c) = v[0].persistent_volume_claim.as_mut() {
                        c.claim_name = "data-web-2".into()
                    }
                }
            }),
            true,
            false,
        ),
    ];
    for (name, pod, identity, storage) in cases {
        assert_eq!(identity_matches(&s, &pod), identity, "{name}: identity");
        assert_eq!(storage_matches(&s, &pod), storage, "{name}: storage");
    }
}

#[test]
fn pod_names_parse_into_parent_and_ordinal() {
    type Parsed = Option<(&'static str, Option<i32>)>;
    let cases: &[(&str, Parsed)] = &[
        ("web-0", Some(("web", Some(0)))),
        ("my-web-12", Some(("my-web", Some(12)))),
        ("web-", None),
        ("web", None),
        ("web-1a", None),
        ("web-99999999999", Some(("web", None))),
    ];
    for (name, want) in cases {
        assert_eq!(parent_and_ordinal(name), *want, "{name}");
    }
}

#[test]
fn ordinals_start_offsets_names_and_scale_down() {
    let mut s = set(2);
    spec_mut(&mut s).ordinals = Some(StatefulSetOrdinals { start: Some(5) });
    let mut w = World::new(s);
    w.run();
    assert_eq!(w.names(), ["web-5", "web-6"]);
    let claims: Vec<_> = w
        .claims
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(claims, ["data-web-5", "data-web-6"]);
    // Moving the start condemns the pods below it.
    spec_mut(&mut w.set).ordinals = Some(StatefulSetOrdinals { start: Some(6) });
    w.run();
    assert_eq!(w.names(), ["web-6", "web-7"]);
}

#[test]
fn ordinals_start_near_the_top_does_not_overflow() {
    let mut s = set(3);
    spec_mut(&mut s).ordinals = Some(StatefulSetOrdinals {
        start: Some(i32::MAX - 1),
    });
    let w = World::new(parallel(s));
    let created: Vec<_> = kinds(&w.plan().actions)
        .into_iter()
        .filter(|k| k.starts_with("create web"))
        .collect();
    assert_eq!(
        created,
        [
            format!("create web-{}", i32::MAX - 1),
            format!("create web-{}", i32::MAX)
        ]
    );
}

#[test]
fn rolling_update_replaces_from_the_highest_ordinal_and_completes() {
    let mut w = World::new(set(3));
    w.run();
    let first = w.status().update_revision;
    w.set = with_image(w.set.clone(), "img:2");
    w.log.clear();
    w.run();
    assert_eq!(
        w.log,
        ["-web-2", "+web-2", "-web-1", "+web-1", "-web-0", "+web-0"]
    );
    let s = w.status();
    assert_ne!(s.update_revision, first);
    assert_eq!(s.current_revision, s.update_revision);
    assert_eq!((s.current_replicas, s.updated_replicas), (Some(3), Some(3)));
    assert_eq!(s.observed_generation, Some(2));
    assert!(w
        .pods
        .iter()
        .all(|p| pod_revision(p) == s.update_revision.as_deref()));
    let numbers: Vec<i64> = w.revisions.iter().map(|r| r.revision).collect();
    assert_eq!(numbers, [1, 2]);
}

#[test]
fn a_partition_keeps_lower_ordinals_at_the_current_revision() {
    let mut w = World::new(set(4));
    w.run();
    let current = w.status().current_revision;
    if let Some(ru) = spec_mut(&mut w.set)
        .update_strategy
        .as_mut()
        .and_then(|u| u.rolling_update.as_mut())
    {
        ru.partition = Some(2);
    }
    w.set = with_image(w.set.clone(), "img:2");
    w.run();
    let s = w.status();
    let rev = |w: &World, n: &str| w.pod(n).and_then(pod_revision).map(str::to_string);
    assert_eq!(rev(&w, "web-0"), current);
    assert_eq!(rev(&w, "web-1"), current);
    assert_eq!(rev(&w, "web-2"), s.update_revision);
    assert_eq!(rev(&w, "web-3"), s.update_revision);
    assert_eq!(
        s.current_revision, current,
        "a partitioned rollout is not complete"
    );
    assert_eq!((s.current_replicas, s.updated_replicas), (Some(2), Some(2)));
    // A deleted pod below the partition comes back at the current revision.
    w.pods
        .retain(|p| p.metadata.name.as_deref() != Some("web-0"));
    w.run();
    assert_eq!(rev(&w, "web-0"), current);
}

#[test]
fn on_delete_leaves_pods_until_they_are_deleted() {
    let mut w = World::new(set(2));
    spec_mut(&mut w.set).update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    w.run();
    w.set = with_image(w.set.clone(), "img:2");
    w.log.clear();
    w.run();
    assert_eq!(w.log, Vec::<String>::new());
    let s = w.status();
    assert_ne!(s.current_revision, s.update_revision);
    w.pods
        .retain(|p| p.metadata.name.as_deref() != Some("web-1"));
    w.run();
    assert_eq!(
        w.pod("web-1").and_then(pod_revision),
        s.update_revision.as_deref()
    );
    assert_eq!(
        w.pod("web-0").and_then(pod_revision),
        s.current_revision.as_deref()
    );
}

#[test]
fn max_unavailable_replaces_that_many_outdated_pods_at_once() {
    let mut s = parallel(set(5));
    if let Some(ru) = spec_mut(&mut s)
        .update_strategy
        .as_mut()
        .and_then(|u| u.rolling_update.as_mut())
    {
        ru.max_unavailable = Some(IntOrString::Int(2));
    }
    let mut w = World::new(s);
    w.run();
    w.set = with_image(w.set.clone(), "img:2");
    let deletes: Vec<_> = kinds(&w.plan().actions)
        .into_iter()
        .filter(|k| k.starts_with("delete"))
        .collect();
    assert_eq!(deletes, ["delete web-4 (Update)", "delete web-3 (Update)"]);
    // With one member down already, only one more goes.
    if let Some(p) = w.pod_mut("web-0") {
        p.status = Some(PodStatus {
            phase: Some("Pending".into()),
            ..PodStatus::default()
        });
    }
    let deletes: Vec<_> = kinds(&w.plan().actions)
        .into_iter()
        .filter(|k| k.starts_with("delete"))
        .collect();
    assert_eq!(deletes, ["delete web-4 (Update)"]);
    w.run();
    let st = w.status();
    assert_eq!(st.current_revision, st.update_revision);
}

#[test]
fn max_unavailable_resolves_counts_and_percentages_rounding_up() {
    let cases: &[(Option<IntOrString>, i32, i32)] = &[
        (None, 5, 1),
        (Some(IntOrString::Int(3)), 5, 3),
        (Some(IntOrString::Int(0)), 5, 1),
        (Some(IntOrString::String("50%".into())), 5, 3),
        (Some(IntOrString::String("10%".into())), 5, 1),
        (Some(IntOrString::String("100%".into())), 4, 4),
        (Some(IntOrString::String("bad".into())), 4, 1),
    ];
    for (value, replicas, want) in cases {
        assert_eq!(
            max_unavailable(value.as_ref(), *replicas),
            *want,
            "{value:?} of {replicas}"
        );
    }
}

#[test]
fn rollback_renumbers_the_equal_revision_instead_of_creating_one() {
    let mut w = World::new(set(1));
    w.run();
    let original = w.set.clone();
    w.set = with_image(w.set.clone(), "img:2");
    w.run();
    // `kubectl rollout undo`: the first revision's template comes back.
    let mut undone = original.clone();
    undone.metadata.generation = Some(3);
    undone.status = w.set.status.clone();
    w.set = undone;
    assert_eq!(
        kinds(&w.plan().actions)[0],
        "renumber revision 3",
        "the old revision becomes revision 3"
    );
    w.run();
    let mut numbers: Vec<(i64, bool)> = w
        .revisions
        .iter()
        .map(|r| (r.revision, history::equal_revision(r, &w.revisions[0])))
        .collect();
    numbers.sort();
    assert_eq!(numbers, [(2, false), (3, true)]);
    assert_eq!(
        w.pod("web-0").and_then(pod_revision),
        w.revisions[0].metadata.name.as_deref()
    );
}

#[test]
fn revisions_beyond_the_history_limit_are_deleted_oldest_first_keeping_live_ones() {
    let mut w = World::new(set(1));
    spec_mut(&mut w.set).revision_history_limit = Some(1);
    for image in ["img:2", "img:3", "img:4"] {
        w.run();
        w.set = with_image(w.set.clone(), image);
    }
    w.run();
    let mut numbers: Vec<i64> = w.revisions.iter().map(|r| r.revision).collect();
    numbers.sort();
    // Revision 4 is live (current and update), 3 is the one kept in history.
    assert_eq!(numbers, [3, 4]);
}

#[test]
fn a_revision_name_held_by_other_data_bumps_the_collision_count() {
    let s = set(1);
    let mut w = World::new(s.clone());
    let name_for = |count: i32| {
        history::new_revision(
            &s.metadata,
            "apps/v1",
            "StatefulSet",
            &app(),
            revision_data(&s),
            1,
            Some(count),
        )
        .and_then(|r| r.metadata.name)
        .unwrap_or_default()
    };
    let squatter = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name_for(0)),
            namespace: Some("ns".into()),
            ..ObjectMeta::default()
        },
        data: Some(k8s_openapi::apimachinery::pkg::runtime::RawExtension(
            serde_json::json!({"other": 1}),
        )),
        revision: 1,
    };
    w.revisions.push(squatter);
    let p = w.plan();
    let created = p.actions.iter().find_map(|a| match a {
        Action::CreateRevision(r) => r.metadata.name.clone(),
        _ => None,
    });
    assert_eq!(created, Some(name_for(1)));
    let status = p.actions.iter().find_map(|a| match a {
        Action::Status(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(status.and_then(|s| s.collision_count), Some(1));
}

#[test]
fn revision_data_applied_to_a_set_gives_back_its_template() {
    let old = set(1);
    let new = with_image(old.clone(), "img:2");
    let data = revision_data(&old);
    assert_eq!(
        data.pointer("/spec/template/$patch"),
        Some(&serde_json::json!("replace"))
    );
    let restored = apply_revision(&new, &data);
    assert_eq!(
        restored.spec.map(|s| s.template),
        old.spec.map(|s| s.template)
    );
    // Data without a template changes nothing.
    let same = apply_revision(&new, &serde_json::json!({"spec": {}}));
    assert_eq!(same, new);
}

fn owner(kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: if kind == "Pod" { "v1" } else { "apps/v1" }.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: None,
        block_owner_deletion: None,
    }
}

#[test]
fn claim_owners_follow_the_retention_policy() {
    // (whenDeleted, whenScaled, pod scaled down, existing owner kinds, wanted owner kinds or
    // None when the claim already matches); upstream TestClaimOwnerMatchesSetAndPod and
    // TestUpdateClaimOwnerRefForSetAndPod.
    type Case = (
        &'static str,
        &'static str,
        bool,
        &'static [&'static str],
        Option<&'static [&'static str]>,
    );
    let cases: &[Case] = &[
        ("Retain", "Retain", false, &[], None),
        ("Retain", "Retain", false, &["StatefulSet"], Some(&[])),
        ("Retain", "Retain", true, &["Pod"], Some(&[])),
        ("Delete", "Retain", false, &[], Some(&["StatefulSet"])),
        ("Delete", "Retain", false, &["StatefulSet"], None),
        ("Delete", "Retain", true, &["StatefulSet"], None),
        (
            "Delete",
            "Retain",
            true,
            &["StatefulSet", "Pod"],
            Some(&["StatefulSet"]),
        ),
        ("Retain", "Delete", false, &[], None),
        ("Retain", "Delete", true, &[], Some(&["Pod"])),
        ("Retain", "Delete", true, &["Pod"], None),
        ("Retain", "Delete", false, &["Pod"], Some(&[])),
        ("Delete", "Delete", false, &[], Some(&["StatefulSet"])),
        ("Delete", "Delete", true, &["StatefulSet"], Some(&["Pod"])),
        ("Delete", "Delete", true, &["Pod"], None),
        ("Other", "Other", false, &["StatefulSet"], Some(&[])),
        ("Other", "Other", false, &["Unrelated"], None),
    ];
    for (deleted, scaled, down, has, want) in cases {
        let s = policy(set(2), deleted, scaled);
        let ord = if *down { 5 } else { 1 };
        let mut p = new_pod(&s, ord, "r").expect("pod");
        p.metadata.uid = Some("pod-uid".into());
        let refs: Vec<OwnerReference> = has
            .iter()
            .map(|k| match *k {
                "StatefulSet" => owner(k, "web", UID),
                "Pod" => owner(k, &format!("web-{ord}"), "pod-uid"),
                _ => owner(k, "x", "other-uid"),
            })
            .collect();
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(format!("data-web-{ord}")),
                owner_references: Some(refs),
                ..ObjectMeta::default()
            },
            ..PersistentVolumeClaim::default()
        };
        let got = wanted_claim_owners(&claim, &s, &p).map(|refs| {
            refs.iter()
                .filter(|r| r.uid != "other-uid")
                .map(|r| r.kind.clone())
                .collect::<Vec<_>>()
        });
        let want = want.map(|w| w.iter().map(|k| k.to_string()).collect::<Vec<_>>());
        assert_eq!(
            got, want,
            "whenDeleted={deleted} whenScaled={scaled} down={down} has={has:?}"
        );
    }
}

#[test]
fn when_scaled_delete_hands_claims_to_their_pods_and_gc_removes_them() {
    let mut w = World::new(policy(set(3), "Retain", "Delete"));
    w.run();
    spec_mut(&mut w.set).replicas = Some(1);
    w.run();
    let claims: Vec<_> = w
        .claims
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(claims, ["data-web-0"]);
    // Scaling up again makes fresh claims.
    spec_mut(&mut w.set).replicas = Some(2);
    w.run();
    assert_eq!(w.claims.len(), 2);
}

#[test]
fn when_deleted_delete_creates_claims_owned_by_the_set() {
    let w = World::new(policy(set(1), "Delete", "Retain"));
    let claim = w.plan().actions.into_iter().find_map(|a| match a {
        Action::CreateClaim { claim, .. } => Some(*claim),
        _ => None,
    });
    let refs = claim
        .and_then(|c| c.metadata.owner_references)
        .unwrap_or_default();
    assert_eq!(
        refs.iter()
            .map(|r| (r.kind.as_str(), r.uid.as_str()))
            .collect::<Vec<_>>(),
        [("StatefulSet", UID)]
    );
}

#[test]
fn a_stale_or_terminating_claim_holds_back_its_pod() {
    let stale_owner = owner("Pod", "web-0", "old-pod");
    let cases: Vec<(&str, StatefulSet, PersistentVolumeClaim)> = vec![
        (
            "claim owned by the previous web-0 under whenScaled=Delete",
            policy(set(1), "Retain", "Delete"),
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data-web-0".into()),
                    namespace: Some("ns".into()),
                    owner_references: Some(vec![stale_owner]),
                    ..ObjectMeta::default()
                },
                ..PersistentVolumeClaim::default()
            },
        ),
        (
            "claim being deleted",
            set(1),
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data-web-0".into()),
                    namespace: Some("ns".into()),
                    deletion_timestamp: Some(Time(ts(1))),
                    ..ObjectMeta::default()
                },
                ..PersistentVolumeClaim::default()
            },
        ),
    ];
    for (name, s, claim) in cases {
        let mut w = World::new(s);
        w.claims.push(claim);
        let k = kinds(&w.plan().actions);
        assert!(
            !k.iter().any(|a| a.starts_with("create web")),
            "{name}: {k:?}"
        );
    }
}

#[test]
fn orphan_members_are_adopted_and_non_matching_pods_released() {
    let mut w = World::new(set(2));
    w.run();
    let mut orphan = w.pod("web-1").cloned().expect("web-1");
    orphan.metadata.owner_references = None;
    w.pods
        .retain(|p| p.metadata.name.as_deref() != Some("web-1"));
    w.pods.push(orphan);
    if let Some(p) = w.pod_mut("web-0") {
        p.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
    }
    let mut k = kinds(&w.plan().actions);
    k.truncate(2);
    k.sort();
    assert_eq!(k, ["adopt web-1", "release web-0"]);
    // A pod of another name is not a member, whatever its labels.
    let mut stranger = ready(new_pod(&set(1), 0, "r").expect("pod"), 1);
    stranger.metadata.name = Some("db-0".into());
    stranger.metadata.owner_references = None;
    w.pods.push(stranger);
    assert!(!kinds(&w.plan().actions).contains(&"adopt db-0".to_string()));
}

#[test]
fn a_set_being_deleted_only_reports_status() {
    let mut w = World::new(set(3));
    w.run();
    w.set.metadata.deletion_timestamp = Some(Time(ts(5)));
    spec_mut(&mut w.set).replicas = Some(5);
    assert_eq!(kinds(&w.plan().actions), Vec::<String>::new());
    w.pods.pop();
    assert_eq!(kinds(&w.plan().actions), ["status"]);
}

#[test]
fn min_ready_seconds_holds_the_next_pod_until_available_and_requeues() {
    let mut s = set(2);
    spec_mut(&mut s).min_ready_seconds = Some(10);
    let mut w = World::new(s);
    for a in w.plan().actions {
        w.apply(a);
    }
    w.settle_cluster();
    // web-0 ready since now: not available for 10 s.
    let p = w.plan();
    assert!(!kinds(&p.actions).iter().any(|k| k == "create web-1"));
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(11)));
    let s = p.actions.iter().find_map(|a| match a {
        Action::Status(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(
        s.map(|s| (s.ready_replicas, s.available_replicas)),
        Some((Some(1), Some(0)))
    );
    w.now += 10;
    assert!(kinds(&w.plan().actions).iter().any(|k| k == "create web-1"));
}

#[test]
fn pods_of_a_set_with_ordinals_past_the_range_are_condemned_not_members() {
    let mut w = World::new(set(1));
    w.run();
    assert!(super::pod::in_range(&w.set, 0));
    assert!(!super::pod::in_range(&w.set, 1));
    let mut extra = ready(new_pod(&w.set, 3, "r").expect("pod"), 1);
    extra.metadata.uid = Some("x".into());
    w.pods.push(extra);
    assert_eq!(
        kinds(&w.plan().actions),
        ["delete web-3 (ScaleDown)", "status"]
    );
    let why = w.plan().actions.into_iter().find_map(|a| match a {
        Action::DeletePod { why, uid, .. } => Some((why, uid)),
        _ => None,
    });
    assert_eq!(why, Some((Why::ScaleDown, Some("x".to_string()))));
}
