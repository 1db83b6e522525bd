//! The kubelet's pod admission that the node does before running anything of a pod: today
//! its AppArmor handler (decision 0045). A refused pod is failed as the kubelet's
//! `rejectPod` does: a Warning event with the reason and message, and the status phase
//! `Failed` with that reason and `Pod was rejected: <message>`; nothing of it is created,
//! and as a terminal pod it is never started later.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};

use super::security::{apparmor_admission, HostLsm, APPARMOR_NOT_ADMITTED_REASON};
use super::Shared;

/// Whether the node runs `pod`; a refused pod's status is written here.
pub(super) async fn admitted(shared: &Shared, pod: &Pod) -> bool {
    let lsm = HostLsm::current().await;
    let Err(message) = apparmor_admission(pod, lsm.apparmor) else {
        return true;
    };
    tracing::info!(reason = APPARMOR_NOT_ADMITTED_REASON, %message, "pod rejected");
    shared.recorder.event(
        super::events::container_ref(pod, None),
        "Warning",
        APPARMOR_NOT_ADMITTED_REASON,
        message.clone(),
    );
    let api: Api<Pod> = Api::namespaced(
        shared.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let patch =
        serde_json::json!({"status": rejected_status(APPARMOR_NOT_ADMITTED_REASON, &message)});
    if let Err(e) = api
        .patch_status(
            pod.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        // The next sync tries again: the pod is still pending.
        tracing::warn!(error = %e, "writing a rejected pod's status");
    }
    false
}

/// The status fields `rejectPod` sets.
fn rejected_status(reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "phase": "Failed",
        "reason": reason,
        "message": format!("Pod was rejected: {message}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_pod_fails_with_the_kubelets_status() {
        assert_eq!(
            rejected_status(
                "AppArmor",
                "Cannot enforce AppArmor: AppArmor is not enabled on the host"
            ),
            serde_json::json!({"phase": "Failed", "reason": "AppArmor",
                "message": "Pod was rejected: Cannot enforce AppArmor: AppArmor is not enabled on the host"})
        );
    }
}
