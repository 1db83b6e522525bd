//! Watch streams: newline-delimited `{"type","object"}` events as upstream serves them (or
//! length-prefixed protobuf `WatchEvent` frames for clients that ask for protobuf), filtered
//! by selectors, with bookmarks, initial events and timeouts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use skiff_apimachinery::selector::{FieldSelector, LabelSelector};
use skiff_store::{Event, EventKind};
use tokio::sync::mpsc;

use crate::error::{ApiError, Result};
use crate::handler::{materialize, Api};
use crate::object;
use crate::request::{Params, Target};
use crate::table::TableOptions;

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);
/// Watches without `timeoutSeconds` end after about this long, so clients re-establish them
/// (upstream uses a randomised 30-60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Everything that decides which events a watch sends and how.
struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
    table: Option<TableOptions>,
    /// Frames events as protobuf rather than JSON lines.
    protobuf: bool,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(object::labels(obj)) && self.fields.matches(obj)
    }
}

/// Starts a watch and returns the stream of encoded events (JSON lines, or protobuf frames
/// when `protobuf`: the caller checked the kind has a protobuf form).
pub fn start(
    api: Arc<Api>,
    t: Target,
    p: Params,
    table: Option<TableOptions>,
    protobuf: bool,
) -> Result<mpsc::Receiver<Bytes>> {
    let r = t.resource.clone();
    let mut fields = p.field_selector(&r)?;
    if let Some(name) = &t.name {
        fields = FieldSelector::parse(&format!("metadata.name={name}"))
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let filter = Filter {
        labels: p.label_selector()?,
        fields,
        table,
        protobuf,
    };
    let prefix = r.key(t.namespace.as_deref(), None);
    let send_initial = p.flag("sendInitialEvents");
    if send_initial && p.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::Invalid {
            group: "meta.k8s.io".into(),
            kind: "ListOptions".into(),
            name: String::new(),
            message: "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".into(),
            causes: vec![],
        });
    }
    let bookmarks = p.flag("allowWatchBookmarks");
    let timeout = p
        .int("timeoutSeconds")?
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or(DEFAULT_TIMEOUT);
    let requested = match p.get("resourceVersion") {
        None | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<i64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv}")))?,
        ),
    };
    // With no resourceVersion (or "0"), or with sendInitialEvents, the watch starts with
    // the current state as ADDED events; otherwise it replays changes after the given one.
    let (initial, after) = match (send_initial, requested) {
        (false, Some(rv)) => (Vec::new(), rv),
        _ => {
            let list = api.store.list(&prefix, None, None)?;
            let objs = list
                .items
                .iter()
                .map(materialize)
                .collect::<Result<Vec<_>>>()?;
            // Selectors apply to the stored shape; conversion happens on the way out.
            (objs, list.revision)
        }
    };
    let (tx, rx) = mpsc::channel(64);
    let watch = match api.store.watch(&prefix, after) {
        Ok(w) => Some(w),
        Err(skiff_store::Error::Compacted {
            requested,
            compacted,
        }) => {
            let status = ApiError::Gone(format!(
                "too old resource version: {requested} ({compacted})"
            ))
            .status();
            let _ = tx.try_send(frame(protobuf, "ERROR", &status));
            None
        }
        Err(e) => return Err(e.into()),
    };
    let Some(mut watch) = watch else {
        return Ok(rx);
    };
    tokio::spawn(async move {
        let mut first = true;
        let send = |kind: &str, obj: &Value, first: &mut bool| -> Option<Bytes> {
            let obj = crate::convert::from_storage(&r, obj.clone());
            let obj = match &filter.table {
                Some(opts) if kind != "BOOKMARK" && kind != "ERROR" => {
                    let t = crate::table::table(&api, &r, std::slice::from_ref(&obj), opts, *first);
                    *first = false;
                    t
                }
                _ => obj,
            };
            Some(frame(filter.protobuf, kind, &obj))
        };
        for obj in initial.iter().filter(|o| filter.matches(o)) {
            let Some(l) = send("ADDED", obj, &mut first) else {
                continue;
            };
            if tx.send(l).await.is_err() {
                return;
            }
        }
        if send_initial {
            let mut mark = bookmark(&r.api_version(), &r.kind, after);
            mark["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            if tx
                .send(frame(filter.protobuf, "BOOKMARK", &mark))
                .await
                .is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let mark = bookmark(&r.api_version(), &r.kind, watch.progress().max(after));
                    if tx.send(frame(filter.protobuf, "BOOKMARK", &mark)).await.is_err() {
                        return;
                    }
                }
                event = watch.next() => {
                    let event = match event {
                        None => return,
                        Some(Ok(e)) => e,
                        // A value the storage layer cannot decrypt is upstream's 500;
                        // anything else means the watcher must re-list.
                        Some(Err(e @ skiff_store::Error::Transform(_))) => {
                            let _ = tx.send(frame(protobuf, "ERROR", &ApiError::from(e).status())).await;
                            return;
                        }
                        Some(Err(e)) => {
                            let status = ApiError::Gone(e.to_string()).status();
                            let _ = tx.send(frame(protobuf, "ERROR", &status)).await;
                            return;
                        }
                    };
                    // A watch from a revision the store has not reached yet starts there
                    // (upstream's cacher sends only events newer than the one asked for).
                    if event.revision <= after {
                        continue;
                    }
                    let Some((kind, obj)) = classify(&filter, &event) else { continue };
                    let Some(l) = send(kind, &obj, &mut first) else { continue };
                    if tx.send(l).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}

/// Decides what a store event means to this watcher: an object that starts matching is
/// ADDED, stops matching is DELETED, as upstream's watch cache does.
fn classify(filter: &Filter, event: &Event) -> Option<(&'static str, Value)> {
    let parse = |b: &Bytes| -> Option<Value> {
        let kv = skiff_store::KeyValue {
            key: event.key.clone(),
            value: b.clone(),
            create_revision: event.create_revision,
            mod_revision: event.revision,
        };
        materialize(&kv).ok()
    };
    let new = parse(&event.value)?;
    let now = filter.matches(&new);
    let before = match (&event.kind, &event.prev_value) {
        (EventKind::Created, _) => false,
        (EventKind::Deleted, _) => now,
        (_, Some(prev)) => parse(prev).is_some_and(|o| filter.matches(&o)),
        (_, None) => false,
    };
    let kind = match (event.kind, before, now) {
        (EventKind::Deleted, true, _) => "DELETED",
        (EventKind::Deleted, false, _) => return None,
        (_, false, true) => "ADDED",
        (_, true, true) => "MODIFIED",
        (_, true, false) => "DELETED",
        (_, false, false) => return None,
    };
    Some((kind, new))
}

fn bookmark(api_version: &str, kind: &str, revision: i64) -> Value {
    json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"resourceVersion": revision.to_string(), "creationTimestamp": null},
    })
}

/// One event on the wire: a JSON line, or a protobuf frame. An object the protobuf schema
/// cannot carry (a server defect) becomes an ERROR event with a 500 Status, so the client
/// re-lists instead of missing the change silently.
fn frame(protobuf: bool, kind: &str, obj: &Value) -> Bytes {
    if !protobuf {
        let mut buf =
            serde_json::to_vec(&json!({"type": kind, "object": obj})).expect("Value serializes");
        buf.push(b'\n');
        return Bytes::from(buf);
    }
    match skiff_protobuf::encode_watch_event(kind, obj) {
        Ok(frame) => Bytes::from(frame),
        Err(e) => {
            tracing::error!(error = %e, "protobuf encoding of a watch event failed");
            let status = ApiError::Internal(format!("encoding a watch event: {e}")).status();
            skiff_protobuf::encode_watch_event("ERROR", &status)
                .map(Bytes::from)
                .unwrap_or_default()
        }
    }
}
