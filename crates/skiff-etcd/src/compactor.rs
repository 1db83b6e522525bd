//! Periodic compaction of etcd's history, kube-apiserver's algorithm: every interval, one
//! server (whichever wins a compare-and-swap on the version of `compact_rev_key`) records
//! the current revision and compacts to the revision recorded one interval earlier, so one
//! interval of history stays watchable and several servers compact once between them.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use skiff_store::{Result, Revision};

use crate::cache::Cache;
use crate::{backend, current, timed_out};

/// The key kube-apiserver's compactors coordinate on (outside `/registry/`): its version
/// counts compactions, its value is the revision the latest one compacted to.
const COMPACT_REV_KEY: &str = "compact_rev_key";

pub(crate) async fn run(client: Client, cache: Arc<Cache>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; nothing is compacted before one interval has passed.
    ticker.tick().await;
    let (mut round, mut recorded) = (0, 0);
    loop {
        ticker.tick().await;
        match step(&client, round, recorded, interval).await {
            Ok(next) => {
                (round, recorded) = (next.round, next.recorded);
                if let Some(revision) = next.compacted {
                    tracing::debug!(revision, "etcd compacted");
                    cache.compact(revision);
                }
            }
            Err(e) => tracing::warn!(error = %e, "compacting etcd failed"),
        }
    }
}

struct Step {
    /// The version of `compact_rev_key` the next round expects.
    round: i64,
    /// The revision the next round compacts to.
    recorded: Revision,
    /// The revision etcd was compacted to in this round, by this server or another.
    compacted: Option<Revision>,
}

async fn step(client: &Client, round: i64, recorded: Revision, timeout: Duration) -> Result<Step> {
    let txn = Txn::new()
        .when([Compare::version(COMPACT_REV_KEY, CompareOp::Equal, round)])
        .and_then([TxnOp::put(COMPACT_REV_KEY, recorded.to_string(), None)])
        .or_else([TxnOp::get(COMPACT_REV_KEY, None)]);
    let response = tokio::time::timeout(timeout, client.kv_client().txn(txn))
        .await
        .map_err(|_| timed_out("compaction", timeout))?
        .map_err(backend)?;
    let now = response.header().map_or(0, |h| h.revision());
    if !response.succeeded() {
        // Another server compacted in this round: follow its count, and its recorded value
        // is what it compacted to.
        let kv = current(&response);
        return Ok(Step {
            round: kv.as_ref().map_or(0, |kv| kv.version()),
            recorded: now,
            compacted: kv
                .and_then(|kv| kv.value_str().ok()?.parse().ok())
                .filter(|r: &Revision| *r > 0),
        });
    }
    if recorded == 0 {
        // The first round only records where the next one compacts to.
        return Ok(Step {
            round: round + 1,
            recorded: now,
            compacted: None,
        });
    }
    compact_etcd(client.clone(), recorded, timeout).await?;
    Ok(Step {
        round: round + 1,
        recorded: now,
        compacted: Some(recorded),
    })
}

/// Compacts etcd to `revision`; one already compacted further is fine.
pub(crate) async fn compact_etcd(
    client: Client,
    revision: Revision,
    timeout: Duration,
) -> Result<()> {
    if revision <= 0 {
        return Ok(());
    }
    match tokio::time::timeout(timeout, client.kv_client().compact(revision, None))
        .await
        .map_err(|_| timed_out("compaction", timeout))?
    {
        Ok(_) => Ok(()),
        Err(e) if is_compacted(&e) => Ok(()),
        Err(e) => Err(backend(e)),
    }
}

/// etcd's `ErrCompacted`: the revision asked for is older than its history.
pub(crate) fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(status)
        if status.message().contains("required revision has been compacted"))
}
