//! Event expiry: Events are deleted an hour after they were last seen, as upstream's
//! apiserver does (`--event-ttl=1h`), so a busy cluster's event history stays bounded.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::handler::{materialize, Api};
use crate::object;

/// How long an Event lives after it was last updated.
pub const EVENT_TTL: Duration = Duration::from_secs(3600);
/// How often expired Events are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// When an Event was last touched: its series/last timestamp, event time, or creation.
fn last_seen(event: &Value) -> Option<DateTime<Utc>> {
    [
        event.pointer("/series/lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.pointer("/metadata/creationTimestamp"),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
    .filter_map(|s| DateTime::parse_from_rfc3339(s).ok())
    .map(|t| t.with_timezone(&Utc))
    .max()
}

/// Whether an Event has outlived the TTL at `now`.
pub fn expired(event: &Value, now: DateTime<Utc>) -> bool {
    let ttl = chrono::Duration::from_std(EVENT_TTL).expect("TTL fits");
    last_seen(event).is_some_and(|t| now - t > ttl)
}

/// Sweeps expired Events until the API is dropped.
pub async fn run(api: Arc<Api>) {
    let Some(events) = api.registry.get("", "v1", "events") else {
        return;
    };
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let Ok(list) = api.store.list(&events.key(None, None), None, None) else {
            continue;
        };
        let now = Utc::now();
        for kv in list.items {
            let Ok(event) = materialize(&kv) else {
                continue;
            };
            if expired(&event, now) {
                let _ = api
                    .store
                    .delete(kv.key.clone(), Some(kv.mod_revision))
                    .await;
                tracing::debug!(
                    name = object::name(&event).unwrap_or_default(),
                    "expired event"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_expire_an_hour_after_they_were_last_seen() {
        let now: DateTime<Utc> = "2026-01-01T12:00:00Z".parse().unwrap();
        let old = json!({"metadata": {"creationTimestamp": "2026-01-01T10:00:00Z"}, "lastTimestamp": "2026-01-01T10:30:00Z"});
        let recurring = json!({"metadata": {"creationTimestamp": "2026-01-01T09:00:00Z"}, "series": {"lastObservedTime": "2026-01-01T11:30:00.000000Z"}});
        assert!(expired(&old, now));
        assert!(!expired(&recurring, now));
    }
}
