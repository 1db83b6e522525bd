//! Pure storage-protection decisions, as upstream's `pvcprotection` and `pvprotection`
//! controllers: a claim keeps its finalizer while a pod that has not finished uses it, a
//! volume while it is bound, so deleting either never pulls data from under a running pod.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Held by every claim until no pod uses it (upstream's `PVCProtectionFinalizer`).
pub const PVC_FINALIZER: &str = "kubernetes.io/pvc-protection";
/// Held by every volume until it is not bound (upstream's `PVProtectionFinalizer`).
pub const PV_FINALIZER: &str = "kubernetes.io/pv-protection";

/// The one change an object needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Add the protection finalizer (an object created before the admission step, or by a
    /// client that removed it while the object is not being deleted).
    AddFinalizer,
    /// Remove it: the object is being deleted and nothing uses it any more.
    RemoveFinalizer,
}

fn has(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// Adds the finalizer to a live object, removes it from a deleted one once `in_use` says
/// nothing holds it (evaluated only then: it may cost an API call).
fn decide(meta: &ObjectMeta, finalizer: &str, in_use: impl FnOnce() -> bool) -> Option<Action> {
    match (meta.deletion_timestamp.is_some(), has(meta, finalizer)) {
        (false, false) => Some(Action::AddFinalizer),
        (true, true) if !in_use() => Some(Action::RemoveFinalizer),
        _ => None,
    }
}

/// Whether `pod` is done with its volumes: finished, or deleted with no grace left (upstream's
/// `podIsShutDown`: processed by the kubelet, or force-deleted; waiting for such a pod could
/// deadlock with a pod finalizer that waits for the claim).
pub fn pod_is_done(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let forced = pod.metadata.deletion_timestamp.is_some()
        && pod.metadata.deletion_grace_period_seconds == Some(0);
    matches!(phase, Some("Succeeded" | "Failed")) || forced
}

/// The claims `pod` mounts: `persistentVolumeClaim` volumes, and the claim of each generic
/// ephemeral volume (named `<pod>-<volume>`).
pub fn claims_of(pod: &Pod) -> Vec<String> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| match (&v.persistent_volume_claim, &v.ephemeral) {
            (Some(c), _) => Some(c.claim_name.clone()),
            (None, Some(_)) => Some(format!("{pod_name}-{}", v.name)),
            (None, None) => None,
        })
        .collect()
}

/// Whether a pod that is not done mounts `claim`. Unlike upstream, a pod not yet scheduled
/// counts too: skiff's scheduler and node do not refuse a claim being deleted, so such a pod
/// could still start on it.
pub fn claim_in_use(claim: &PersistentVolumeClaim, pods: &[&Pod]) -> bool {
    let (ns, name) = (&claim.metadata.namespace, &claim.metadata.name);
    pods.iter().any(|p| {
        p.metadata.namespace == *ns
            && !pod_is_done(p)
            && claims_of(p).iter().any(|c| Some(c) == name.as_ref())
    })
}

/// What a claim needs, given the pods of its namespace.
pub fn plan_claim(claim: &PersistentVolumeClaim, pods: &[&Pod]) -> Option<Action> {
    decide(&claim.metadata, PVC_FINALIZER, || claim_in_use(claim, pods))
}

/// Whether a volume is bound: upstream reads `status.phase == Bound` alone, but skiff's
/// binder reclaims a volume whose claim is gone without passing through `Released`, so the
/// claim it is bound to must also still exist.
pub fn volume_in_use(volume: &PersistentVolume, claims: &[&PersistentVolumeClaim]) -> bool {
    let bound = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    bound
        && claims.iter().any(|c| {
            c.metadata.namespace == r.namespace
                && c.metadata.name == r.name
                && r.uid
                    .as_ref()
                    .is_none_or(|u| c.metadata.uid.as_ref() == Some(u))
        })
}

/// What a volume needs, given every claim.
pub fn plan_volume(volume: &PersistentVolume, claims: &[&PersistentVolumeClaim]) -> Option<Action> {
    decide(&volume.metadata, PV_FINALIZER, || {
        volume_in_use(volume, claims)
    })
}
