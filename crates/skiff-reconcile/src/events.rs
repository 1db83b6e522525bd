//! The one Event recorder of the project: core v1 Events, so `kubectl describe` and
//! `kubectl get events` list what controllers, the scheduler and the kubelet did.
//!
//! Repeats are aggregated as client-go's `EventCorrelator` does: the same (source, involved
//! object, type, reason, message) seen again within [`WINDOW`] bumps the `count`,
//! `lastTimestamp` and `series` of the Event already posted instead of posting another
//! (a reconcile failing every few seconds would otherwise write an object per retry); and a
//! token bucket per source and object (upstream's spam filter: a burst of 25, then one per
//! 5 minutes) drops the rest of a flood.

use k8s_openapi::api::core::v1::{Event, EventSeries, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `Normal` event type.
pub const NORMAL: &str = "Normal";
/// `Warning` event type.
pub const WARNING: &str = "Warning";

/// How long after its last occurrence an event is still aggregated with repeats (client-go's
/// aggregation window).
pub const WINDOW: SignedDuration = SignedDuration::from_secs(600);
/// Events a source may post about one object at once (client-go's spam filter burst).
pub const SPAM_BURST: f64 = 25.0;
/// Seconds per token refilled afterwards (client-go's qps of 1/300).
pub const SPAM_REFILL_SECS: f64 = 300.0;
/// Distinct events and buckets remembered; past it, the oldest half is forgotten (upstream
/// keeps an LRU of 4096). Forgetting only costs one new Event instead of a count bump.
const REMEMBERED: usize = 4096;

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

/// What makes two events the same, as upstream's `getEventKey` (the resourceVersion of the
/// object is left out so an object's updates do not split its events).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    source: String,
    object: String,
    type_: String,
    reason: String,
    message: String,
}

impl EventKey {
    /// The key of an event from `source` about `object`.
    pub fn new(
        source: &str,
        object: &ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> EventKey {
        EventKey {
            source: source.to_string(),
            object: object_key(object),
            type_: type_.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }
}

fn object_key(o: &ObjectReference) -> String {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    format!(
        "{}\x00{}\x00{}\x00{}\x00{}\x00{}",
        s(&o.api_version),
        s(&o.kind),
        s(&o.namespace),
        s(&o.name),
        s(&o.uid),
        s(&o.field_path)
    )
}

/// What to do with an observed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Post a new Event.
    Create,
    /// Bump the Event `name` posted before to `count` occurrences.
    Update {
        /// The posted Event's name.
        name: String,
        /// Occurrences so far, this one included.
        count: i32,
    },
    /// Spam: drop it.
    Drop,
}

#[derive(Debug, Clone)]
struct Seen {
    name: String,
    count: i32,
    last: Timestamp,
}

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Timestamp,
}

/// The pure part of the recorder: decides per event, from what it saw before.
#[derive(Debug, Default)]
pub struct Correlator {
    seen: HashMap<EventKey, Seen>,
    buckets: HashMap<(String, String), Bucket>,
}

impl Correlator {
    /// Decides what to do with `key` observed at `now`; an [`Decision::Update`] is
    /// recorded at once, a [`Decision::Create`] once [`Correlator::created`] names it.
    pub fn observe(&mut self, key: &EventKey, now: Timestamp) -> Decision {
        if !self.take_token(key, now) {
            return Decision::Drop;
        }
        match self.seen.get_mut(key) {
            Some(seen) if now.duration_since(seen.last) <= WINDOW => {
                seen.count = seen.count.saturating_add(1);
                seen.last = now;
                Decision::Update {
                    name: seen.name.clone(),
                    count: seen.count,
                }
            }
            _ => Decision::Create,
        }
    }

    /// Records that `key` was posted as the Event `name` at `now`.
    pub fn created(&mut self, key: EventKey, name: String, now: Timestamp) {
        if self.seen.len() >= REMEMBERED {
            forget_oldest(&mut self.seen, |s| s.last);
        }
        self.seen.insert(
            key,
            Seen {
                name,
                count: 1,
                last: now,
            },
        );
    }

    /// Forgets `key` (its Event is gone: the next one is posted anew).
    pub fn forget(&mut self, key: &EventKey) {
        self.seen.remove(key);
    }

    /// Takes a token from the bucket of the event's source and object.
    fn take_token(&mut self, key: &EventKey, now: Timestamp) -> bool {
        if self.buckets.len() >= REMEMBERED {
            forget_oldest(&mut self.buckets, |b| b.at);
        }
        let bucket = self
            .buckets
            .entry((key.source.clone(), key.object.clone()))
            .or_insert(Bucket {
                tokens: SPAM_BURST,
                at: now,
            });
        let elapsed = now.duration_since(bucket.at).as_secs_f64().max(0.0);
        bucket.tokens = (bucket.tokens + elapsed / SPAM_REFILL_SECS).min(SPAM_BURST);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Drops the older half of `map` by `at`.
fn forget_oldest<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    at: impl Fn(&V) -> Timestamp,
) {
    let mut times: Vec<Timestamp> = map.values().map(&at).collect();
    times.sort();
    let cut = times[times.len() / 2];
    map.retain(|_, v| at(v) > cut);
}

/// Posts Events on behalf of one component (`deployment-controller`, `default-scheduler`,
/// `kubelet` on a node). Cloning shares the correlator.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    source: EventSource,
    instance: String,
    correlator: Arc<Mutex<Correlator>>,
}

impl Recorder {
    /// A recorder that signs its events with `component`.
    pub fn new(client: kube::Client, component: &str) -> Recorder {
        Recorder {
            client,
            source: EventSource {
                component: Some(component.to_string()),
                host: None,
            },
            instance: format!("{component}-skiff"),
            correlator: Arc::default(),
        }
    }

    /// Signs events as coming from `host` too (the kubelet's node), which is also the
    /// reporting instance.
    pub fn with_host(mut self, host: &str) -> Recorder {
        self.source.host = Some(host.to_string());
        self.instance = host.to_string();
        self
    }

    fn source_key(&self) -> String {
        format!(
            "{}\x00{}",
            self.source.component.as_deref().unwrap_or_default(),
            self.source.host.as_deref().unwrap_or_default()
        )
    }

    /// Posts an event, or bumps the one posted before for a repeat. Failures are logged,
    /// never returned: events are best effort, upstream too.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        self.publish_action(object, type_, reason, reason, message)
            .await
    }

    /// [`Recorder::publish`] with upstream's `action` where it differs from the reason (the
    /// scheduler's `Scheduled` event is action `Binding`).
    pub async fn publish_action(
        &self,
        object: &ObjectReference,
        type_: &str,
        reason: &str,
        action: &str,
        message: &str,
    ) {
        let key = EventKey::new(&self.source_key(), object, type_, reason, message);
        let now = Timestamp::now();
        let decision = self
            .correlator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(&key, now);
        // A cluster-scoped object's events live in `default`, as upstream's recorder.
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        match decision {
            Decision::Drop => {
                tracing::debug!(reason, "event dropped by the spam filter");
                return;
            }
            Decision::Update { name, count } => {
                let patch = serde_json::json!({
                    "count": count,
                    "lastTimestamp": Time(now),
                    "series": EventSeries { count: Some(count), last_observed_time: Some(MicroTime(now)) },
                });
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => return,
                    // Gone (expired or deleted) or refused: post a new one.
                    Err(error) => {
                        tracing::debug!(%error, reason, "could not update event; posting anew");
                        self.correlator
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .forget(&key);
                    }
                }
            }
            Decision::Create => {}
        }
        let name = format!(
            "{}.{:x}",
            object.name.as_deref().unwrap_or("object"),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            involved_object: object.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(type_.to_string()),
            source: Some(self.source.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            reporting_component: self.source.component.clone(),
            reporting_instance: Some(self.instance.clone()),
            // The API requires an action of events with an eventTime.
            action: Some(action.to_string()),
            ..Event::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => self
                .correlator
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .created(key, name, now),
            Err(error) => tracing::warn!(%error, reason, "could not record event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn a_repeat_within_ten_minutes_bumps_the_count_of_the_posted_event() {
        let mut c = Correlator::default();
        let key = EventKey::new("rs", &pod("a"), WARNING, "FailedCreate", "quota");
        assert_eq!(c.observe(&key, at(0)), Decision::Create);
        c.created(key.clone(), "a.1".into(), at(0));
        assert_eq!(
            c.observe(&key, at(30)),
            Decision::Update {
                name: "a.1".into(),
                count: 2
            }
        );
        // The window runs from the last occurrence, not the first.
        assert_eq!(
            c.observe(&key, at(30 + 590)),
            Decision::Update {
                name: "a.1".into(),
                count: 3
            }
        );
        assert_eq!(c.observe(&key, at(30 + 590 + 601)), Decision::Create);
    }

    #[test]
    fn events_differing_in_message_reason_or_object_are_not_aggregated() {
        let mut c = Correlator::default();
        let key = EventKey::new("rs", &pod("a"), WARNING, "FailedCreate", "quota");
        c.created(key.clone(), "a.1".into(), at(0));
        for other in [
            EventKey::new("rs", &pod("a"), WARNING, "FailedCreate", "other"),
            EventKey::new("rs", &pod("a"), NORMAL, "FailedCreate", "quota"),
            EventKey::new("rs", &pod("b"), WARNING, "FailedCreate", "quota"),
            EventKey::new("deploy", &pod("a"), WARNING, "FailedCreate", "quota"),
        ] {
            assert_eq!(c.observe(&other, at(1)), Decision::Create);
        }
    }

    #[test]
    fn spam_filter_allows_a_burst_of_25_per_object_then_one_per_five_minutes() {
        let mut c = Correlator::default();
        for i in 0..25 {
            let key = EventKey::new("kubelet", &pod("a"), NORMAL, "Pulled", &format!("m{i}"));
            assert_eq!(c.observe(&key, at(0)), Decision::Create, "event {i}");
        }
        let key = EventKey::new("kubelet", &pod("a"), NORMAL, "Pulled", "more");
        assert_eq!(c.observe(&key, at(1)), Decision::Drop);
        // Another object has its own bucket.
        let other = EventKey::new("kubelet", &pod("b"), NORMAL, "Pulled", "more");
        assert_eq!(c.observe(&other, at(1)), Decision::Create);
        assert_eq!(c.observe(&key, at(301)), Decision::Create);
        assert_eq!(c.observe(&key, at(302)), Decision::Drop);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut c = Correlator::default();
        for i in 0..(3 * REMEMBERED as i64) {
            let key = EventKey::new("x", &pod(&format!("p{i}")), NORMAL, "R", "m");
            c.observe(&key, at(i));
            c.created(key, format!("e{i}"), at(i));
        }
        assert!(c.seen.len() <= REMEMBERED);
        assert!(c.buckets.len() <= REMEMBERED);
    }
}
