//! The workers of one controller: take a key from the [`Queue`], reconcile it inside a span
//! carrying the key, and turn the result into the queue's next step (forget, requeue after,
//! or retry with backoff). Usable without watches, for loops fed by other means and tests.

use crate::metrics::{ControllerMetrics, Metrics};
use crate::queue::Queue;
use crate::{Config, ObjectKey, Outcome};
use futures::FutureExt;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How often the in-progress gauges are sampled, as client-go's `updateUnfinishedWorkLoop`.
const UNFINISHED_EVERY: Duration = Duration::from_millis(500);

/// Failures after which a retried key is logged as a warning rather than at debug level:
/// conflicts and not-yet-visible writes fail once or twice in normal operation.
const WARN_AFTER: u32 = 3;

/// A controller's queue and workers.
pub struct Runner {
    name: String,
    queue: Arc<Queue<ObjectKey>>,
    config: Config,
    metrics: ControllerMetrics,
}

impl Runner {
    /// A runner named `name` (the metrics label and span field) with `config`.
    pub fn new(name: &str, config: Config, metrics: &Metrics) -> Runner {
        let metrics = metrics.controller(name);
        Runner {
            name: name.to_string(),
            queue: Arc::new(Queue::new(config.backoff, Some(metrics.clone()))),
            config,
            metrics,
        }
    }

    /// The queue, to add keys to.
    pub fn queue(&self) -> Arc<Queue<ObjectKey>> {
        self.queue.clone()
    }

    /// Runs `config.workers` workers until the queue shuts down.
    pub async fn run<F, Fut, E>(self, reconcile: F)
    where
        F: Fn(ObjectKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Outcome, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let reconcile = Arc::new(reconcile);
        let sampler = {
            let queue = self.queue.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(UNFINISHED_EVERY);
                loop {
                    tick.tick().await;
                    queue.report_unfinished();
                }
            })
        };
        let workers: Vec<_> = (0..self.config.workers.max(1))
            .map(|_| {
                let (queue, reconcile) = (self.queue.clone(), reconcile.clone());
                let (name, metrics) = (self.name.clone(), self.metrics.clone());
                tokio::spawn(worker(name, queue, metrics, reconcile))
            })
            .collect();
        for w in workers {
            let _ = w.await;
        }
        sampler.abort();
    }
}

async fn worker<F, Fut, E>(
    name: String,
    queue: Arc<Queue<ObjectKey>>,
    metrics: ControllerMetrics,
    reconcile: Arc<F>,
) where
    F: Fn(ObjectKey) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    while let Some(key) = queue.get().await {
        let span = tracing::info_span!("reconciling object", controller = %name, key = %key);
        // A panic is a bug, but it must not leave the key marked processing forever (and
        // the worker gone): it counts as a failure and is retried with backoff.
        let result = match AssertUnwindSafe(reconcile(key.clone()).instrument(span.clone()))
            .catch_unwind()
            .await
        {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err("reconcile panicked".to_string()),
        };
        match result {
            Ok(Outcome::Done) => {
                metrics.success.inc();
                queue.forget(&key);
            }
            Ok(Outcome::RequeueAfter(after)) => {
                metrics.requeue_after.inc();
                queue.forget(&key);
                queue.add_after(key.clone(), after);
            }
            Err(error) => {
                metrics.error.inc();
                metrics.errors.inc();
                let failures = queue.failures(&key) + 1;
                let delay = queue.add_rate_limited(key.clone());
                if failures > WARN_AFTER {
                    tracing::warn!(parent: &span, %error, failures, ?delay, "reconcile failed; retrying");
                } else {
                    tracing::debug!(parent: &span, %error, failures, ?delay, "reconcile failed; retrying");
                }
            }
        }
        queue.done(&key);
    }
}
