//! Core v1 Events for controller actions, so `kubectl describe` lists them.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// The object an event is about, as `involvedObject` (uid included: describe filters on it).
pub fn reference(api_version: &str, kind: &str, meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.to_string()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// Records events on behalf of one component (`deployment-controller`, ...).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: &'static str,
}

impl Recorder {
    /// A recorder that signs its events with `component`.
    pub fn new(client: kube::Client, component: &'static str) -> Recorder {
        Recorder { client, component }
    }

    /// Posts an event; failures are logged, never fatal (events are best effort upstream too).
    pub async fn publish(
        &self,
        object: &ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let now = Timestamp::now();
        let name = format!(
            "{}.{:x}",
            object.name.as_deref().unwrap_or("object"),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: object.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(type_.to_string()),
            source: Some(EventSource {
                component: Some(self.component.to_string()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            reporting_component: Some(self.component.to_string()),
            reporting_instance: Some(format!("{}-skiff", self.component)),
            action: Some(reason.to_string()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(error) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(%error, reason, "could not record event");
        }
    }
}
