//! Pure volume planning: from StorageClasses, PersistentVolumeClaims, PersistentVolumes,
//! Pods and Nodes, the writes that provision, bind and reclaim (upstream's PV controller
//! plus k3s's local-path provisioner, in one pass over the whole state).

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, Pod, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// The StorageClass created when there is none, named as k3s names it.
pub const DEFAULT_CLASS: &str = "local-path";
/// The provisioner of that class, k3s's name, so manifests written for k3s work unchanged.
pub const PROVISIONER: &str = "rancher.io/local-path";
/// Marks the class used by claims that name none (upstream's DefaultStorageClass).
pub const ANN_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// The node a WaitForFirstConsumer claim is provisioned on (written by upstream's scheduler).
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Where a node keeps its local volumes; the node agent publishes it on its Node, since
/// only the node knows its data directory.
pub const ANN_VOLUMES_DIR: &str = "skiff.dev/local-volumes-dir";
/// Which provisioner made a PV (read by the external provisioner's delete path upstream).
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// Set on a claim once the binder has finished binding it.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on both sides when the controller (not the user) made the binding.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// The provisioner expected to serve a claim.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The node label the provisioned PV's node affinity selects on.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// A claim, as the actions name it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClaimKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// Everything the plan looks at, from the caches.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observed<'a> {
    pub classes: &'a [&'a StorageClass],
    pub claims: &'a [&'a PersistentVolumeClaim],
    pub volumes: &'a [&'a PersistentVolume],
    pub pods: &'a [&'a Pod],
    pub nodes: &'a [&'a Node],
}

/// One write through the API. Every action is idempotent, so a pass on a stale cache that
/// repeats one costs a conflict or a no-op, never a wrong state.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create the default StorageClass: there is none.
    CreateClass(Box<StorageClass>),
    /// Write the default class into a claim that names none (upstream's retroactive
    /// default class assignment).
    SetClass { claim: ClaimKey, class: String },
    /// Create a local volume for a claim, pre-bound to it as an external provisioner does.
    Provision {
        claim: ClaimKey,
        node: String,
        volume: Box<PersistentVolume>,
    },
    /// Bind `volume` and `claim` to each other: claimRef and phase Bound on the PV,
    /// volumeName, phase Bound, capacity and access modes on the PVC.
    Bind {
        claim: ClaimKey,
        volume: String,
        capacity: BTreeMap<String, Quantity>,
        access_modes: Vec<String>,
    },
    /// Set a PV's `status.phase` (Available, Bound, Released).
    VolumePhase { volume: String, phase: &'static str },
    /// Set a claim's `status.phase` (Lost: its volume is gone).
    ClaimPhase {
        claim: ClaimKey,
        phase: &'static str,
    },
    /// Delete a PV whose claim is gone and whose reclaim policy is Delete; the node that
    /// holds its directory removes the directory once the PV is gone.
    DeleteVolume { volume: String, claim: ClaimKey },
    /// Tell the user why a claim waits, as an event on it (the runner posts each once).
    Report {
        claim: ClaimKey,
        type_: &'static str,
        reason: &'static str,
        message: String,
    },
}

/// Bytes of a quantity (`1Gi`, `500M`, `1e3`), rounded up as upstream's `Value()`; `None`
/// when it does not parse. Through the one quantity parser.
pub fn quantity_bytes(q: &Quantity) -> Option<i128> {
    skiff_apimachinery::quantity::Quantity::parse(q.0.trim())
        .ok()
        .map(|q| q.value())
}

fn key(c: &PersistentVolumeClaim) -> ClaimKey {
    ClaimKey {
        namespace: c.metadata.namespace.clone().unwrap_or_default(),
        name: c.metadata.name.clone().unwrap_or_default(),
        uid: c.metadata.uid.clone().unwrap_or_default(),
    }
}

fn annotation<'a>(meta: &'a ObjectMeta, k: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(k).map(String::as_str)
}

fn is_default(sc: &StorageClass) -> bool {
    annotation(&sc.metadata, ANN_DEFAULT_CLASS) == Some("true")
}

/// The default class, if one is marked (the newest wins when several are, as upstream).
pub fn default_class<'a>(classes: &[&'a StorageClass]) -> Option<&'a StorageClass> {
    classes
        .iter()
        .copied()
        .filter(|sc| is_default(sc))
        .max_by_key(|sc| crate::meta::created(&sc.metadata))
}

/// The StorageClass created when the cluster has none: k3s's `local-path`.
pub fn default_storage_class() -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(DEFAULT_CLASS.into()),
            annotations: Some(BTreeMap::from([(
                ANN_DEFAULT_CLASS.to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..StorageClass::default()
    }
}

/// The class a claim asks for: its own, or the default when it names none. An explicit
/// `""` means "no class" (only class-less static volumes), as upstream.
fn class_of<'a>(
    c: &'a PersistentVolumeClaim,
    default: Option<&'a StorageClass>,
) -> Option<&'a str> {
    let spec = c.spec.as_ref()?;
    match spec.storage_class_name.as_deref() {
        Some(class) => Some(class),
        None => default.and_then(|d| d.metadata.name.as_deref()),
    }
}

fn phase_of_claim(c: &PersistentVolumeClaim) -> &str {
    c.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn phase_of_volume(v: &PersistentVolume) -> &str {
    v.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn claim_ref(v: &PersistentVolume) -> Option<&ObjectReference> {
    v.spec.as_ref()?.claim_ref.as_ref()
}

/// Whether `r` names `c`: same namespace and name, and same uid once the ref has one (a
/// ref without uid pre-binds a volume to a claim by name).
fn refers_to(r: &ObjectReference, c: &PersistentVolumeClaim) -> bool {
    r.namespace == c.metadata.namespace
        && r.name == c.metadata.name
        && r.uid
            .as_deref()
            .is_none_or(|u| u.is_empty() || Some(u) == c.metadata.uid.as_deref())
}

fn requested(c: &PersistentVolumeClaim) -> Option<&Quantity> {
    c.spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

fn capacity(v: &PersistentVolume) -> Option<i128> {
    v.spec
        .as_ref()?
        .capacity
        .as_ref()?
        .get("storage")
        .and_then(quantity_bytes)
}

/// Whether a free volume satisfies a claim of class `class`: class, volume mode, access
/// modes, label selector and size, as upstream's `FindMatchingVolume`.
fn fits(v: &PersistentVolume, c: &PersistentVolumeClaim, class: &str) -> bool {
    let (Some(vs), Some(cs)) = (v.spec.as_ref(), c.spec.as_ref()) else {
        return false;
    };
    let mode = |m: &Option<String>| m.clone().unwrap_or_else(|| "Filesystem".into());
    let want = requested(c).and_then(quantity_bytes).unwrap_or(0);
    let modes = vs.access_modes.as_deref().unwrap_or_default();
    let selector_ok = cs.selector.as_ref().is_none_or(|s| {
        let empty = s.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty());
        empty || crate::meta::selector_matches(s, &crate::meta::labels(&v.metadata))
    });
    vs.storage_class_name.as_deref().unwrap_or_default() == class
        && mode(&vs.volume_mode) == mode(&cs.volume_mode)
        && cs.access_modes.iter().flatten().all(|m| modes.contains(m))
        && selector_ok
        && capacity(v).is_some_and(|have| have >= want)
}

/// Whether a volume is free to take: not deleting, no claim, not released.
fn is_free(v: &PersistentVolume) -> bool {
    v.metadata.deletion_timestamp.is_none()
        && claim_ref(v).is_none()
        && matches!(phase_of_volume(v), "Available" | "Pending")
}

/// The smallest free volume that fits the claim (upstream picks the smallest fit too, so
/// a big volume is not spent on a small claim).
pub fn best_match<'a>(
    volumes: &[&'a PersistentVolume],
    c: &PersistentVolumeClaim,
    class: &str,
) -> Option<&'a PersistentVolume> {
    volumes
        .iter()
        .copied()
        .filter(|v| is_free(v) && fits(v, c, class))
        .min_by_key(|v| capacity(v).unwrap_or(0))
}

/// The node a claim is wanted on: the scheduler's selected-node annotation, else the node
/// of a live pod that uses it (skiff's scheduler does not write the annotation).
pub fn consumer_node(c: &PersistentVolumeClaim, pods: &[&Pod]) -> Option<String> {
    if let Some(n) = annotation(&c.metadata, ANN_SELECTED_NODE).filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let name = c.metadata.name.as_deref()?;
    pods.iter()
        .filter(|p| p.metadata.namespace == c.metadata.namespace)
        .filter(|p| crate::meta::pod_is_active(p))
        .filter_map(|p| p.spec.as_ref())
        .filter(|s| {
            s.volumes.iter().flatten().any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|p| p.claim_name == name)
            })
        })
        .filter_map(|s| s.node_name.clone().filter(|n| !n.is_empty()))
        .min()
}

/// The directory a node keeps its local volumes in, as it published it.
fn volumes_dir<'a>(nodes: &[&'a Node], node: &str) -> Option<&'a str> {
    nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(node))
        .and_then(|n| annotation(&n.metadata, ANN_VOLUMES_DIR))
        .filter(|d| d.starts_with('/'))
}

/// The PV the local-path provisioner makes for a claim: a directory on `node` (hence the
/// node affinity), pre-bound to the claim, named `pvc-<uid>` as upstream names them.
pub fn provisioned_volume(
    c: &PersistentVolumeClaim,
    sc: &StorageClass,
    node: &str,
    dir: &str,
) -> Option<PersistentVolume> {
    let uid = c.metadata.uid.as_deref()?;
    let spec = c.spec.as_ref()?;
    let name = format!("pvc-{uid}");
    let size = requested(c)?.clone();
    Some(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            annotations: Some(BTreeMap::from([
                (ANN_PROVISIONED_BY.to_string(), sc.provisioner.clone()),
                (ANN_SELECTED_NODE.to_string(), node.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), size)])),
            access_modes: spec.access_modes.clone(),
            persistent_volume_reclaim_policy: Some(
                sc.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: sc.metadata.name.clone(),
            volume_mode: Some(
                spec.volume_mode
                    .clone()
                    .unwrap_or_else(|| "Filesystem".into()),
            ),
            host_path: Some(k8s_openapi::api::core::v1::HostPathVolumeSource {
                path: format!("{}/{name}", dir.trim_end_matches('/')),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: HOSTNAME_LABEL.into(),
                            operator: "In".into(),
                            values: Some(vec![node.to_string()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: c.metadata.namespace.clone(),
                name: c.metadata.name.clone(),
                uid: Some(uid.to_string()),
                resource_version: c.metadata.resource_version.clone(),
                field_path: None,
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    })
}

fn bind(c: &PersistentVolumeClaim, v: &PersistentVolume) -> Action {
    let spec = v.spec.clone().unwrap_or_default();
    Action::Bind {
        claim: key(c),
        volume: v.metadata.name.clone().unwrap_or_default(),
        capacity: spec.capacity.unwrap_or_default(),
        access_modes: spec.access_modes.unwrap_or_default(),
    }
}

fn report(
    c: &PersistentVolumeClaim,
    type_: &'static str,
    reason: &'static str,
    message: String,
) -> Action {
    Action::Report {
        claim: key(c),
        type_,
        reason,
        message,
    }
}

/// What one unbound claim needs.
fn plan_claim(c: &PersistentVolumeClaim, o: &Observed, out: &mut Vec<Action>) {
    let default = default_class(o.classes);
    let named = c
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref());
    let class = class_of(c, default).unwrap_or_default().to_string();
    if named.is_none() && !class.is_empty() {
        out.push(Action::SetClass {
            claim: key(c),
            class: class.clone(),
        });
    }
    // A volume already pointing at this claim (provisioned for it, or pre-bound by the
    // user) is bound first, whatever else fits.
    if let Some(v) = o.volumes.iter().find(|v| {
        v.metadata.deletion_timestamp.is_none() && claim_ref(v).is_some_and(|r| refers_to(r, c))
    }) {
        out.push(bind(c, v));
        return;
    }
    if let Some(wanted) = c
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|n| !n.is_empty())
    {
        match o
            .volumes
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(wanted))
        {
            Some(v) if is_free(v) && fits(v, c, &class) => out.push(bind(c, v)),
            _ => out.push(report(
                c,
                "Warning",
                "FailedBinding",
                format!("volume \"{wanted}\" is not available for this claim"),
            )),
        }
        return;
    }
    let sc = o
        .classes
        .iter()
        .copied()
        .find(|sc| sc.metadata.name.as_deref() == Some(class.as_str()));
    let wait_for_consumer =
        sc.is_some_and(|sc| sc.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
    let consumer = consumer_node(c, o.pods);
    if wait_for_consumer && consumer.is_none() {
        out.push(report(
            c,
            "Normal",
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".into(),
        ));
        return;
    }
    if let Some(v) = best_match(o.volumes, c, &class) {
        out.push(bind(c, v));
        return;
    }
    match sc {
        Some(sc) if sc.provisioner == PROVISIONER || sc.provisioner == "skiff.dev/local-path" => {
            // Immediate binding with nobody using the claim yet: any node that publishes
            // a volumes directory will do (there is one on a single machine).
            let node = consumer.or_else(|| {
                o.nodes
                    .iter()
                    .filter(|n| annotation(&n.metadata, ANN_VOLUMES_DIR).is_some())
                    .filter_map(|n| n.metadata.name.clone())
                    .min()
            });
            let Some(node) = node else {
                out.push(report(
                    c,
                    "Normal",
                    "ExternalProvisioning",
                    format!("waiting for a node to provision the volume on (\"{PROVISIONER}\")"),
                ));
                return;
            };
            let Some(dir) = volumes_dir(o.nodes, &node) else {
                out.push(report(
                    c,
                    "Normal",
                    "ExternalProvisioning",
                    format!("waiting for node \"{node}\" to publish its volumes directory"),
                ));
                return;
            };
            match provisioned_volume(c, sc, &node, dir) {
                Some(v) => out.push(Action::Provision {
                    claim: key(c),
                    node,
                    volume: Box::new(v),
                }),
                None => out.push(report(
                    c,
                    "Warning",
                    "ProvisioningFailed",
                    "the claim requests no storage size".into(),
                )),
            }
        }
        // Another provisioner's class: it is that provisioner's claim.
        Some(_) => {}
        None if class.is_empty() => out.push(report(
            c,
            "Normal",
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set".into(),
        )),
        None => out.push(report(
            c,
            "Warning",
            "ProvisioningFailed",
            format!("storageclass.storage.k8s.io \"{class}\" not found"),
        )),
    }
}

/// What one volume needs: its phase from its claim, or reclaiming once the claim is gone.
fn plan_volume(v: &PersistentVolume, o: &Observed, out: &mut Vec<Action>) {
    if v.metadata.deletion_timestamp.is_some() {
        return;
    }
    let name = v.metadata.name.clone().unwrap_or_default();
    let phase = phase_of_volume(v);
    let set = |phase: &'static str| Action::VolumePhase {
        volume: name.clone(),
        phase,
    };
    let Some(r) = claim_ref(v) else {
        if phase != "Available" {
            out.push(set("Available"));
        }
        return;
    };
    let claim = o
        .claims
        .iter()
        .find(|c| c.metadata.namespace == r.namespace && c.metadata.name == r.name);
    let ref_uid = r.uid.as_deref().unwrap_or_default();
    match claim {
        Some(c) if refers_to(r, c) => {
            let bound_here = c.spec.as_ref().and_then(|s| s.volume_name.as_deref())
                == v.metadata.name.as_deref();
            if bound_here && phase != "Bound" {
                out.push(set("Bound"));
            } else if !bound_here && phase == "Pending" {
                // Pre-bound, waiting for its claim: available to it alone.
                out.push(set("Available"));
            }
        }
        // Pre-bound by name to a claim not created yet.
        None if ref_uid.is_empty() => {
            if phase == "Pending" {
                out.push(set("Available"));
            }
        }
        // The claim it was bound to is gone (or replaced by a namesake): reclaim.
        _ => {
            let policy = v
                .spec
                .as_ref()
                .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
                .unwrap_or("Retain");
            if policy == "Delete" {
                out.push(Action::DeleteVolume {
                    volume: name.clone(),
                    claim: ClaimKey {
                        namespace: r.namespace.clone().unwrap_or_default(),
                        name: r.name.clone().unwrap_or_default(),
                        uid: ref_uid.to_string(),
                    },
                });
            } else if phase != "Released" && phase != "Failed" {
                out.push(set("Released"));
            }
        }
    }
}

/// Computes every write the observed state needs: the default class, then each claim
/// (provision or bind), then each volume (phase, reclaim).
pub fn plan(o: &Observed) -> Vec<Action> {
    let mut out = Vec::new();
    if o.classes.is_empty() {
        out.push(Action::CreateClass(Box::new(default_storage_class())));
    }
    let mut claims: Vec<&PersistentVolumeClaim> = o.claims.to_vec();
    claims.sort_by_key(|c| crate::meta::created(&c.metadata));
    // Volumes taken by an earlier claim of this pass are not offered to a later one.
    let mut taken: Vec<String> = Vec::new();
    for c in claims {
        if c.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let bound_to = c
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .filter(|n| !n.is_empty());
        if phase_of_claim(c) == "Bound" {
            let volume = bound_to.and_then(|n| {
                o.volumes
                    .iter()
                    .find(|v| v.metadata.name.as_deref() == Some(n))
            });
            if volume.is_none() {
                out.push(Action::ClaimPhase {
                    claim: key(c),
                    phase: "Lost",
                });
            }
            continue;
        }
        if phase_of_claim(c) == "Lost" {
            continue;
        }
        let volumes: Vec<&PersistentVolume> = o
            .volumes
            .iter()
            .copied()
            .filter(|v| !taken.iter().any(|t| v.metadata.name.as_deref() == Some(t)))
            .collect();
        let view = Observed {
            volumes: &volumes,
            ..*o
        };
        let before = out.len();
        plan_claim(c, &view, &mut out);
        for a in &out[before..] {
            if let Action::Bind { volume, .. } = a {
                taken.push(volume.clone());
            }
        }
    }
    for v in o.volumes {
        plan_volume(v, o, &mut out);
    }
    out
}
