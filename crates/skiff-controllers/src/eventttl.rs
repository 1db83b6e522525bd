//! Event expiry: an Event is deleted an hour after it was last seen, as upstream's API
//! server does with `--event-ttl=1h` (there through an etcd lease on each Event). Here a
//! controller on the harness does it: each Event is requeued for the moment it expires and
//! deleted then, with its resourceVersion as precondition, so an Event the recorder bumped
//! meanwhile (a repeat, with a new lastTimestamp) lives on. A restart loses nothing: the
//! first pass over the cache finds whatever expired while skiff was down.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Preconditions};
use skiff_reconcile::{Harness, Metrics, Outcome};

use crate::Error;

/// How long an Event lives after it was last updated (upstream's `--event-ttl` default).
pub const EVENT_TTL: Duration = Duration::from_secs(3600);

/// When an Event was last touched: the latest of its series' last observation, its
/// lastTimestamp, eventTime and creation.
pub fn last_seen(event: &Event) -> Option<Timestamp> {
    [
        event
            .series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref())
            .map(|t| t.0),
        event.last_timestamp.as_ref().map(|t| t.0),
        event.event_time.as_ref().map(|t| t.0),
        event.metadata.creation_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max()
}

/// What to do with an Event at `now`: delete it, or look again after the returned wait.
/// An Event with no time at all is kept (nothing says how old it is).
pub fn plan(event: &Event, now: Timestamp) -> Option<Duration> {
    let ttl = SignedDuration::try_from(EVENT_TTL).ok()?;
    let expires = last_seen(event)?.checked_add(ttl).ok()?;
    let left = now.duration_until(expires);
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

struct Ctx {
    client: kube::Client,
}

/// Runs the controller until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
    });
    Harness::new("event-ttl-controller", client)
        .metrics(&metrics)
        .watch::<Event>()
        .run(reconcile, ctx)
        .await;
}

async fn reconcile(event: Arc<Event>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let Some(left) = plan(&event, Timestamp::now()) else {
        return Ok(Outcome::Done);
    };
    if !left.is_zero() {
        return Ok(Outcome::RequeueAfter(left));
    }
    let ns = event.metadata.namespace.as_deref().unwrap_or("default");
    let name = event
        .metadata
        .name
        .as_deref()
        .ok_or(Error::Missing("name"))?;
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), ns);
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: event.metadata.resource_version.clone(),
            uid: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => tracing::debug!(%name, "expired event"),
        // Gone already, or renewed since the cache saw it: its next change requeues it.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(error) => return Err(error.into()),
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: serde_json::Value) -> Event {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn events_expire_an_hour_after_they_were_last_seen() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let cases = [
            (
                "last seen 90 minutes ago",
                json!({"metadata": {"creationTimestamp": "2026-01-01T10:00:00Z"},
                       "lastTimestamp": "2026-01-01T10:30:00Z", "involvedObject": {}}),
                Some(Duration::ZERO),
            ),
            (
                "a series observed 30 minutes ago",
                json!({"metadata": {"creationTimestamp": "2026-01-01T09:00:00Z"},
                       "series": {"count": 3, "lastObservedTime": "2026-01-01T11:30:00.000000Z"},
                       "involvedObject": {}}),
                Some(Duration::from_secs(1800)),
            ),
            (
                "an events.k8s.io event with only eventTime",
                json!({"metadata": {}, "eventTime": "2026-01-01T11:59:00.000000Z",
                       "involvedObject": {}}),
                Some(Duration::from_secs(3540)),
            ),
            (
                "no time at all",
                json!({"metadata": {}, "involvedObject": {}}),
                None,
            ),
        ];
        for (name, e, want) in cases {
            assert_eq!(plan(&event(e), now), want, "{name}");
        }
    }
}
