//! The store's read semantics over an in-memory sorted map and event history: the one
//! home of them for every backend that keeps its state in memory ([`crate::MemoryStore`]
//! and etcd's watch cache), so paging, counting and watch replay cannot drift apart.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::hub::{Hub, Watch};
use crate::{Error, Event, KeyValue, ListResult, Result, Revision};

/// [`crate::Store::list`] over `kv` at `revision`: keys under `prefix` in key order,
/// strictly after `start_after`, at most `limit` of them (`more` when it cut the list).
pub fn list(
    kv: &BTreeMap<String, KeyValue>,
    revision: Revision,
    prefix: &str,
    start_after: Option<&str>,
    limit: Option<usize>,
) -> ListResult {
    // One past the limit tells whether more follow; a client's huge limit must not wrap.
    let mut items: Vec<KeyValue> = kv
        .range(prefix.to_owned()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .filter(|(k, _)| start_after.is_none_or(|s| k.as_str() > s))
        .map(|(_, v)| v.clone())
        .take(limit.map_or(usize::MAX, |l| l.saturating_add(1)))
        .collect();
    let more = limit.is_some_and(|l| items.len() > l);
    if let Some(l) = limit {
        items.truncate(l);
    }
    ListResult {
        items,
        revision,
        more,
    }
}

/// [`crate::Store::count_after`] over `kv`, walking only the keys it counts.
pub fn count_after(kv: &BTreeMap<String, KeyValue>, prefix: &str, start_after: &str) -> usize {
    let from = if start_after >= prefix {
        Bound::Excluded(start_after)
    } else {
        Bound::Included(prefix)
    };
    kv.range::<str, _>((from, Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(prefix))
        .count()
}

/// [`crate::Store::watch`] from `after`: registers on `hub` and replays the events of
/// `history` (oldest first) that the live stream will not carry. The caller must hold the
/// lock under which it also applies and publishes writes, so that nothing falls between
/// the replay and the live stream; `compacted` is the oldest revision a watch may start at.
pub fn watch<'a>(
    hub: &Arc<Hub>,
    history: impl IntoIterator<Item = &'a Event>,
    compacted: Revision,
    prefix: &str,
    after: Revision,
) -> Result<Watch> {
    if after < compacted {
        return Err(Error::Compacted {
            requested: after,
            compacted,
        });
    }
    let (mut watch, live_after) = hub.subscribe(prefix)?;
    watch.set_backlog(
        history
            .into_iter()
            .filter(|e| e.revision > after && e.revision <= live_after)
            .filter(|e| e.key.starts_with(prefix))
            .cloned()
            .collect(),
    );
    Ok(watch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: &[&str]) -> BTreeMap<String, KeyValue> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                let kv = KeyValue {
                    key: (*k).to_owned(),
                    value: bytes::Bytes::new(),
                    create_revision: i as Revision + 1,
                    mod_revision: i as Revision + 1,
                };
                ((*k).to_owned(), kv)
            })
            .collect()
    }

    fn keys(r: &ListResult) -> Vec<&str> {
        r.items.iter().map(|kv| kv.key.as_str()).collect()
    }

    #[test]
    fn list_pages_within_the_prefix() {
        let kv = map(&["/a", "/b/1", "/b/2", "/b/3", "/c"]);
        // (start_after, limit, keys listed, more)
        type Case<'a> = (Option<&'a str>, Option<usize>, &'a [&'a str], bool);
        let cases: &[Case] = &[
            (None, None, &["/b/1", "/b/2", "/b/3"], false),
            (None, Some(2), &["/b/1", "/b/2"], true),
            (Some("/b/2"), Some(2), &["/b/3"], false),
            (Some("/b/3"), None, &[], false),
            (Some("/a"), None, &["/b/1", "/b/2", "/b/3"], false),
            // A limit at the top of usize must not wrap to "take nothing".
            (None, Some(usize::MAX), &["/b/1", "/b/2", "/b/3"], false),
        ];
        for (start_after, limit, want, more) in cases {
            let r = list(&kv, 7, "/b/", *start_after, *limit);
            assert_eq!(keys(&r), *want, "{start_after:?} {limit:?}");
            assert_eq!(r.more, *more, "{start_after:?} {limit:?}");
            assert_eq!(r.revision, 7);
        }
    }

    #[test]
    fn count_after_counts_only_the_prefix() {
        let kv = map(&["/a", "/b/1", "/b/2", "/b/3", "/c"]);
        let cases = [("/b/1", 2), ("/b/3", 0), ("/a", 3), ("/z", 0), ("", 3)];
        for (start_after, want) in cases {
            assert_eq!(count_after(&kv, "/b/", start_after), want, "{start_after}");
        }
    }

    #[test]
    fn watch_refuses_compacted_starts() {
        let hub = Hub::new(5);
        assert!(matches!(
            watch(&hub, &[], 5, "/", 4),
            Err(Error::Compacted {
                requested: 4,
                compacted: 5
            })
        ));
        assert!(watch(&hub, &[], 5, "/", 5).is_ok());
    }
}
