//! The API server's own followers of the store (CRDs, admission policies, webhook
//! configurations, APIServices, RBAC): each reads its part of the store, then follows the
//! watch from that revision until the watch ends or fails. One home for what happens then:
//! a pause, a warning, and a fresh read, forever (until the process ends).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// Pause before a failed follower starts again from a fresh read.
pub const RETRY: Duration = Duration::from_millis(500);

/// Runs `follow` again and again, `RETRY` apart, warning with `what` when it fails.
pub async fn forever<F, Fut, E>(what: &str, mut follow: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    loop {
        if let Err(e) = follow().await {
            tracing::warn!(error = %e, "{what}: restarting its watch");
        }
        tokio::time::sleep(RETRY).await;
    }
}
