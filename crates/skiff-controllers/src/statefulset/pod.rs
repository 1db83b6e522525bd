//! A StatefulSet's members, pure (upstream `stateful_set_utils.go`): ordinals and names,
//! identity and storage of a pod, its claims, the claims' ownership under the retention
//! policy, readiness, and the revision patch.

use crate::meta::{labels, new_controller_ref, pod_is_available, pod_ready_since};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The label with the pod's own name, so a Service can select one member.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with the pod's ordinal (upstream's PodIndexLabel, on by default since 1.32).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label naming the ControllerRevision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Most pods or claims created in one pass in Parallel mode (upstream's `MaxBatchSize`).
pub const MAX_BATCH: usize = 500;

/// The retention policy of the set's claims, defaults applied (both Retain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub delete_when_deleted: bool,
    pub delete_when_scaled: bool,
}

/// The set's retention policy; anything but `Delete` reads as Retain, as upstream's default
/// branch does.
pub fn retention(set: &StatefulSet) -> Retention {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let is_delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    Retention {
        delete_when_deleted: is_delete(policy.and_then(|p| p.when_deleted.as_ref())),
        delete_when_scaled: is_delete(policy.and_then(|p| p.when_scaled.as_ref())),
    }
}

/// The parent name and ordinal in a pod name `<parent>-<ordinal>` (upstream's
/// `(.*)-([0-9]+)$`); the ordinal is `None` when it does not fit in an i32.
pub fn parent_and_ordinal(name: &str) -> Option<(&str, Option<i32>)> {
    let (parent, digits) = name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, digits.parse::<i32>().ok()))
}

/// The ordinal of a pod, `None` for a name without a valid one.
pub fn ordinal(pod: &Pod) -> Option<i32> {
    parent_and_ordinal(pod.metadata.name.as_deref()?)?.1
}

/// Whether the pod's name makes it a member of `set` (upstream `isMemberOf`).
pub fn is_member(set: &StatefulSet, pod: &Pod) -> bool {
    let parent = pod
        .metadata
        .name
        .as_deref()
        .and_then(parent_and_ordinal)
        .map(|(p, _)| p);
    parent.is_some() && parent == set.metadata.name.as_deref()
}

/// `spec.replicas`, 1 when unset, never negative.
pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

/// `spec.ordinals.start`, 0 when unset, never negative.
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0)
}

/// The ordinals the set wants, `start ..= start + replicas - 1`, widened to i64 so a start near
/// `i32::MAX` cannot overflow; ordinals past i32 are never named.
pub fn ordinal_range(set: &StatefulSet) -> std::ops::Range<i64> {
    let start = i64::from(start_ordinal(set));
    let end = start
        .saturating_add(i64::from(replicas(set)))
        .min(i64::from(i32::MAX).saturating_add(1));
    start..end
}

/// Whether a pod with `ordinal` is within the set's wanted range (upstream
/// `podInOrdinalRange`).
pub fn in_range(set: &StatefulSet, ordinal: i32) -> bool {
    ordinal_range(set).contains(&i64::from(ordinal))
}

/// `<set>-<ordinal>`.
pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!(
        "{}-{ordinal}",
        set.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `<template>-<set>-<ordinal>`, e.g. `data-mystore-0`.
pub fn claim_name(template: &str, set: &StatefulSet, ordinal: i32) -> String {
    format!(
        "{template}-{}-{ordinal}",
        set.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The set's claim templates.
pub fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or_default()
}

/// The claims of the pod with `ordinal`, with the name of the template each comes from
/// (upstream `getPersistentVolumeClaims`): the template, named and namespaced for the pod,
/// labelled with the set's matchLabels on top of its own labels.
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<(String, PersistentVolumeClaim)> {
    let match_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    claim_templates(set)
        .iter()
        .filter_map(|t| {
            let template = t.metadata.name.clone()?;
            let mut claim = t.clone();
            claim.status = None;
            let mut l = labels(&claim.metadata);
            l.extend(match_labels.clone());
            claim.metadata = ObjectMeta {
                name: Some(claim_name(&template, set, ordinal)),
                namespace: set.metadata.namespace.clone(),
                labels: (!l.is_empty()).then_some(l),
                annotations: claim.metadata.annotations.take(),
                ..ObjectMeta::default()
            };
            Some((template, claim))
        })
        .collect()
}

/// Whether the pod has the name, namespace and labels of its ordinal (upstream
/// `identityMatches`). Hostname and subdomain are set once at creation and are immutable.
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(name) = pod.metadata.name.as_deref() else {
        return false;
    };
    let Some((parent, Some(ord))) = parent_and_ordinal(name) else {
        return false;
    };
    let l = labels(&pod.metadata);
    Some(parent) == set.metadata.name.as_deref()
        && name == pod_name(set, ord)
        && pod.metadata.namespace == set.metadata.namespace
        && l.get(POD_NAME_LABEL).map(String::as_str) == Some(name)
        && l.get(POD_INDEX_LABEL) == Some(&ord.to_string())
}

/// The identity labels a member with `ordinal` carries.
pub fn identity_labels(set: &StatefulSet, ordinal: i32) -> BTreeMap<String, String> {
    [
        (POD_NAME_LABEL.to_string(), pod_name(set, ordinal)),
        (POD_INDEX_LABEL.to_string(), ordinal.to_string()),
    ]
    .into()
}

/// Whether the pod's volumes reference each of its claims (upstream `storageMatches`).
pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(ord) = ordinal(pod) else {
        return false;
    };
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    claims_for(set, ord).iter().all(|(template, claim)| {
        volumes.iter().any(|v| {
            &v.name == template
                && v.persistent_volume_claim.as_ref().map(|c| &c.claim_name)
                    == claim.metadata.name.as_ref()
        })
    })
}

/// The set as of a revision (upstream `ApplyRevision`): the revision's data is
/// `{"spec":{"template":{..., "$patch":"replace"}}}`, so applying it replaces the template.
/// Data that holds no template leaves the set as it is.
pub fn apply_revision(set: &StatefulSet, data: &Value) -> StatefulSet {
    let mut out = set.clone();
    let Some(mut template) = data.pointer("/spec/template").cloned() else {
        return out;
    };
    if let Some(m) = template.as_object_mut() {
        m.remove("$patch");
    }
    if let (Some(spec), Ok(t)) = (
        out.spec.as_mut(),
        serde_json::from_value::<PodTemplateSpec>(template),
    ) {
        spec.template = t;
    }
    out
}

/// The data of the set's revision (upstream `getPatch`): a strategic merge patch that puts
/// the template back, which is also what `kubectl rollout undo` sends.
pub fn revision_data(set: &StatefulSet) -> Value {
    let mut template = set
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(&s.template).ok())
        .unwrap_or_else(|| json!({}));
    if let Some(m) = template.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    crate::history::canonical(&json!({ "spec": { "template": template } }))
}

/// A new member with `ordinal` made from `set` at `revision` (upstream `newStatefulSetPod` and
/// `setPodRevision`): the template's metadata and spec, a controller reference, the identity
/// labels, hostname and subdomain from the headless Service, and a volume per claim in place
/// of any template volume of that name.
pub fn new_pod(set: &StatefulSet, ordinal: i32, revision: &str) -> Option<Pod> {
    let spec = set.spec.as_ref()?;
    let name = pod_name(set, ordinal);
    let tmeta = spec.template.metadata.clone().unwrap_or_default();
    let mut l = tmeta.labels.unwrap_or_default();
    l.extend(identity_labels(set, ordinal));
    l.insert(REVISION_LABEL.into(), revision.into());
    let mut pod_spec = spec.template.spec.clone().unwrap_or_default();
    pod_spec.hostname = Some(name.clone());
    pod_spec.subdomain = spec.service_name.clone().filter(|s| !s.is_empty());
    let claims = claims_for(set, ordinal);
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(template, claim)| Volume {
            name: template.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.clone().unwrap_or_default(),
                read_only: None,
            }),
            ..Volume::default()
        })
        .collect();
    volumes.extend(
        pod_spec
            .volumes
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !claims.iter().any(|(t, _)| t == &v.name)),
    );
    pod_spec.volumes = (!volumes.is_empty()).then_some(volumes);
    Some(Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(l),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![new_controller_ref(
                "apps/v1",
                "StatefulSet",
                &set.metadata,
            )?]),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec),
        status: None,
    })
}

/// The revision a pod was made from (its `controller-revision-hash` label).
pub fn pod_revision(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_LABEL)
        .map(String::as_str)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// Phase Failed or Succeeded: the pod will never run again and is replaced.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Failed" | "Succeeded"))
}

/// Phase Pending.
pub fn is_pending(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Pending") | None)
}

/// Being deleted.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Phase Running with the Ready condition true (upstream `isRunningAndReady`).
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == Some("Running") && pod_ready_since(pod).is_some()
}

/// Running, ready, and ready for minReadySeconds (upstream `isRunningAndAvailable`).
pub fn is_running_and_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    phase(pod) == Some("Running") && pod_is_available(pod, min_ready_seconds, now)
}

/// Not (running, ready, available and not terminating) (upstream `isUnavailable`).
pub fn is_unavailable(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    is_terminating(pod) || !is_running_and_available(pod, min_ready_seconds, now)
}

/// Whether `claim` lists an owner with `uid`.
pub fn has_owner(claim: &PersistentVolumeClaim, uid: &str) -> bool {
    claim
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|r| r.uid == uid)
}

/// Whether the claim is owned by an earlier pod of the same name (upstream
/// `hasStaleOwnerRef`): garbage collection will delete it, so it must not be reused.
pub fn has_stale_pod_owner(claim: &PersistentVolumeClaim, pod_name: &str, pod_uid: &str) -> bool {
    claim
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|r| r.kind == "Pod" && r.name == pod_name && r.uid != pod_uid)
}

/// A plain (non-controller) reference, as upstream's `setOwnerRef` adds to claims.
pub fn owner_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: None,
        block_owner_deletion: None,
    })
}

/// The owner references `claim` should have under the retention policy (upstream
/// `updateClaimOwnerRefForSetAndPod`): a reference to the set when the claim goes with the
/// set, to the pod when it goes with a scaled-down pod. Other owners are kept. `None` when
/// the claim already matches (upstream `claimOwnerMatchesSetAndPod`).
pub fn wanted_claim_owners(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> Option<Vec<OwnerReference>> {
    let set_uid = set.metadata.uid.as_deref()?;
    let pod_uid = pod.metadata.uid.as_deref();
    let policy = retention(set);
    let scaled_down = ordinal(pod).is_none_or(|o| !in_range(set, o));
    let want_set = policy.delete_when_deleted && !(policy.delete_when_scaled && scaled_down);
    let want_pod = policy.delete_when_scaled && scaled_down;
    let mut refs = claim.metadata.owner_references.clone().unwrap_or_default();
    let before = refs.clone();
    refs.retain(|r| r.uid != set_uid && Some(r.uid.as_str()) != pod_uid);
    if want_set {
        refs.push(owner_ref("apps/v1", "StatefulSet", &set.metadata)?);
    }
    if want_pod {
        // Without a uid (not created yet) the pod reference waits for the next pass.
        if let Some(r) = owner_ref("v1", "Pod", &pod.metadata) {
            refs.push(r);
        }
    }
    let had = |uid: Option<&str>| uid.is_some_and(|u| before.iter().any(|r| r.uid == u));
    let matches = had(Some(set_uid)) == want_set && (pod_uid.is_none() || had(pod_uid) == want_pod);
    (!matches).then_some(refs)
}
