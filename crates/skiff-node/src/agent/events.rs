//! Core v1 Events about pods and their containers, signed `kubelet` as upstream's, so
//! `kubectl describe pod` and `kubectl get events` show probe failures, hook failures
//! and kills.
//!
//! Posting goes through the project's one recorder (`skiff-reconcile`), so a repeat of the
//! same event (a readiness probe failing every period) bumps the `count` of the one already
//! posted instead of posting another, as client-go's event correlator does.

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
pub use skiff_reconcile::events::{NORMAL, WARNING};
use tokio::sync::mpsc;

/// The pod (and, with `container`, the container) an event is about; `fieldPath` is how
/// upstream ties a container event to its container (`spec.containers{name}`).
pub fn container_ref(pod: &Pod, container: Option<&str>) -> ObjectReference {
    let m = &pod.metadata;
    let field_path = container.map(|name| {
        let init = pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten())
            .any(|c| c.name == name);
        let list = if init { "initContainers" } else { "containers" };
        format!("spec.{list}{{{name}}}")
    });
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        field_path,
    }
}

/// One event to post.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    /// What it is about.
    pub object: ObjectReference,
    /// [`NORMAL`] or [`WARNING`].
    pub type_: &'static str,
    /// Machine-readable reason (`Unhealthy`, `Killing`, ...).
    pub reason: &'static str,
    /// Human text.
    pub message: String,
}

/// Hands events to a background poster, so recording never waits on the API server (a
/// probe or a kill must not be slowed by it) and tests can read what would be posted.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<PendingEvent>,
}

impl Recorder {
    /// A recorder whose events are posted as the kubelet of `node`, by a spawned task.
    pub fn spawn(client: kube::Client, node: String) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let recorder = skiff_reconcile::Recorder::new(client, "kubelet").with_host(&node);
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                let PendingEvent {
                    object,
                    type_,
                    reason,
                    message,
                } = e;
                recorder.publish(&object, type_, reason, &message).await;
            }
        });
        Self { tx }
    }

    /// A recorder that only queues, and the queue (for tests).
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<PendingEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    /// Records an event (best effort, as upstream: it may be lost).
    pub fn event(
        &self,
        object: ObjectReference,
        type_: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) {
        let _ = self.tx.send(PendingEvent {
            object,
            type_,
            reason,
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_events_point_at_the_container_by_field_path() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {
                "initContainers": [{"name": "setup"}],
                "containers": [{"name": "app"}]
            }
        }))
        .unwrap();
        let r = container_ref(&pod, Some("app"));
        assert_eq!(r.field_path.as_deref(), Some("spec.containers{app}"));
        assert_eq!(r.uid.as_deref(), Some("u1"));
        assert_eq!(r.kind.as_deref(), Some("Pod"));
        let r = container_ref(&pod, Some("setup"));
        assert_eq!(r.field_path.as_deref(), Some("spec.initContainers{setup}"));
        assert_eq!(container_ref(&pod, None).field_path, None);
    }
}
