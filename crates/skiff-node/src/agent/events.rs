//! Core v1 Events about pods and their containers, signed `kubelet` as upstream's, so
//! `kubectl describe pod` and `kubectl get events` show probe failures, hook failures
//! and kills.
//!
//! A repeat of the same event (a readiness probe failing every period) bumps the
//! `count` of the one already posted instead of posting another, as client-go's event
//! correlator does; otherwise a failing probe would write an object per period.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::HashMap;
use tokio::sync::mpsc;

/// `Normal` event type.
pub const NORMAL: &str = "Normal";
/// `Warning` event type.
pub const WARNING: &str = "Warning";

/// How many distinct events are remembered for aggregation before the memory is reset.
const REMEMBERED: usize = 4096;

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
        tokio::spawn(async move {
            let mut poster = Poster {
                client,
                node,
                posted: HashMap::new(),
            };
            while let Some(e) = rx.recv().await {
                poster.post(e).await;
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

struct Poster {
    client: kube::Client,
    node: String,
    /// Posted events by (namespace, object uid, fieldPath, type, reason, message):
    /// the event's name and count so far.
    posted: HashMap<String, (String, i32)>,
}

impl Poster {
    /// Posts an event, or bumps the count of the same one posted before. Failures are
    /// logged and otherwise ignored: events are best effort, upstream too.
    async fn post(&mut self, e: PendingEvent) {
        let PendingEvent {
            object,
            type_,
            reason,
            message,
        } = e;
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let key = format!(
            "{namespace}\x00{}\x00{}\x00{type_}\x00{reason}\x00{message}",
            object.uid.as_deref().unwrap_or_default(),
            object.field_path.as_deref().unwrap_or_default()
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Timestamp::now();
        if let Some((name, count)) = self.posted.get(&key).cloned() {
            let patch = serde_json::json!({
                "count": count + 1,
                "lastTimestamp": Time(now),
            });
            if api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                self.posted.insert(key, (name, count + 1));
                return;
            }
            // Gone (expired or deleted): post a new one.
        }
        let name = format!(
            "{}.{:x}",
            object.name.as_deref().unwrap_or("object"),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: object,
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(type_.to_string()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            // The API requires it of events with an eventTime.
            action: Some(reason.to_string()),
            ..Event::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                if self.posted.len() >= REMEMBERED {
                    self.posted.clear();
                }
                self.posted.insert(key, (name, 1));
            }
            Err(error) => tracing::warn!(%error, reason, "could not record event"),
        }
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
