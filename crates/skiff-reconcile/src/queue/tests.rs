//! The queue and its workers on tokio's paused clock: dedup, one reconcile per key at a
//! time, per-key backoff with reset, requeue-after, bounded workers.

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::runner::Runner;
use crate::{Config, ObjectKey, Outcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Some("ns"), name)
}

fn config(workers: usize) -> Config {
    Config {
        workers,
        resync: None,
        backoff: Backoff {
            jitter: 0.0,
            ..Backoff::default()
        },
    }
}

/// What a test reconcile saw: per key, when each reconcile started and ended.
#[derive(Default)]
struct Log {
    runs: Mutex<HashMap<ObjectKey, Vec<(Instant, Instant)>>>,
    running: Mutex<HashMap<ObjectKey, usize>>,
    most_at_once: Mutex<usize>,
    overlapped: Mutex<bool>,
}

impl Log {
    fn start(&self, key: &ObjectKey) {
        let mut running = self.running.lock().unwrap();
        let n = running.entry(key.clone()).or_default();
        *n += 1;
        if *n > 1 {
            *self.overlapped.lock().unwrap() = true;
        }
        let total: usize = running.values().sum();
        let mut most = self.most_at_once.lock().unwrap();
        *most = (*most).max(total);
    }

    fn end(&self, key: &ObjectKey, started: Instant) {
        *self.running.lock().unwrap().get_mut(key).unwrap() -= 1;
        self.runs
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .push((started, Instant::now()));
    }

    fn starts(&self, key: &ObjectKey) -> Vec<Instant> {
        let runs = self.runs.lock().unwrap();
        runs.get(key)
            .map(|r| r.iter().map(|(s, _)| *s).collect())
            .unwrap_or_default()
    }
}

/// Starts a runner whose reconcile sleeps `work`, then answers `outcome(key, attempt)`.
fn start(
    workers: usize,
    work: Duration,
    outcome: impl Fn(&ObjectKey, usize) -> Result<Outcome, String> + Send + Sync + 'static,
) -> (Arc<Queue<ObjectKey>>, Arc<Log>) {
    let runner = Runner::new("test", config(workers), &Metrics::new());
    let queue = runner.queue();
    let log = Arc::new(Log::default());
    let (l, outcome) = (log.clone(), Arc::new(outcome));
    tokio::spawn(runner.run(move |key: ObjectKey| {
        let (log, outcome) = (l.clone(), outcome.clone());
        async move {
            let started = Instant::now();
            log.start(&key);
            tokio::time::sleep(work).await;
            log.end(&key, started);
            // 1 for the first reconcile of the key.
            let attempt = log.starts(&key).len();
            outcome(&key, attempt)
        }
    }));
    (queue, log)
}

#[tokio::test(start_paused = true)]
async fn a_key_added_many_times_while_queued_is_reconciled_once() {
    let (queue, log) = start(1, Duration::from_millis(10), |_, _| Ok(Outcome::Done));
    queue.add(key("blocker"));
    for _ in 0..5 {
        queue.add(key("a"));
    }
    assert_eq!(queue.len(), 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.starts(&key("a")).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_key_is_never_reconciled_twice_at_once_and_changes_meanwhile_are_not_lost() {
    let (queue, log) = start(4, Duration::from_millis(100), |_, _| Ok(Outcome::Done));
    queue.add(key("a"));
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Added while processing: held back until the first reconcile is done, then run once.
    for _ in 0..3 {
        queue.add(key("a"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!*log.overlapped.lock().unwrap());
    let starts = log.starts(&key("a"));
    assert_eq!(starts.len(), 2);
    assert!(starts[1] - starts[0] >= Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_per_key_and_success_resets_the_delay() {
    // Fails four times, succeeds, then (added again) fails once more.
    let (queue, log) = start(2, Duration::ZERO, |k, attempt| {
        if k.name == "a" && attempt != 5 {
            Err("boom".into())
        } else {
            Ok(Outcome::Done)
        }
    });
    queue.add(key("a"));
    queue.add(key("b"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let starts = log.starts(&key("a"));
    assert_eq!(starts.len(), 5, "retried until it succeeded");
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    let ms = Duration::from_millis;
    assert_eq!(gaps, vec![ms(5), ms(10), ms(20), ms(40)]);
    assert_eq!(queue.failures(&key("a")), 0);
    assert_eq!(log.starts(&key("b")).len(), 1, "other keys are unaffected");
    queue.add(key("a"));
    tokio::time::sleep(ms(1)).await;
    assert_eq!(queue.failures(&key("a")), 1, "counting starts again");
    tokio::time::sleep(ms(5)).await;
    assert_eq!(
        log.starts(&key("a")).len(),
        7,
        "first retry after the base delay"
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_at_the_maximum() {
    let runner = Runner::new(
        "test",
        Config {
            backoff: Backoff {
                base: Duration::from_millis(5),
                max: Duration::from_secs(1),
                jitter: 0.0,
            },
            ..config(1)
        },
        &Metrics::new(),
    );
    let queue = runner.queue();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let s = starts.clone();
    tokio::spawn(runner.run(move |_key: ObjectKey| {
        s.lock().unwrap().push(Instant::now());
        async { Err::<Outcome, _>("boom") }
    }));
    queue.add(key("a"));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let starts = starts.lock().unwrap();
    let last = starts.windows(2).last().map(|w| w[1] - w[0]).unwrap();
    assert_eq!(last, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn requeue_after_brings_the_key_back_after_the_delay() {
    let (queue, log) = start(1, Duration::ZERO, |_, attempt| {
        Ok(if attempt < 3 {
            Outcome::RequeueAfter(Duration::from_secs(7))
        } else {
            Outcome::Done
        })
    });
    queue.add(key("a"));
    tokio::time::sleep(Duration::from_secs(60)).await;
    let starts = log.starts(&key("a"));
    assert_eq!(starts.len(), 3);
    assert_eq!(starts[1] - starts[0], Duration::from_secs(7));
    assert_eq!(starts[2] - starts[1], Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn an_earlier_deadline_replaces_a_later_one_and_an_add_comes_first() {
    let queue: Queue<ObjectKey> = Queue::new(Backoff::default(), None);
    queue.add_after(key("a"), Duration::from_secs(10));
    queue.add_after(key("a"), Duration::from_secs(2));
    queue.add_after(key("a"), Duration::from_secs(5));
    assert_eq!(queue.waiting(), 1);
    let t0 = Instant::now();
    assert_eq!(queue.get().await, Some(key("a")));
    assert_eq!(Instant::now() - t0, Duration::from_secs(2));
    queue.done(&key("a"));
    queue.add_after(key("b"), Duration::from_secs(3));
    queue.add(key("c"));
    assert_eq!(queue.get().await, Some(key("c")));
    assert_eq!(Instant::now() - t0, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn distinct_keys_run_concurrently_up_to_the_worker_limit() {
    let (queue, log) = start(3, Duration::from_secs(1), |_, _| Ok(Outcome::Done));
    let t0 = Instant::now();
    queue.add_all((0..9).map(|i| key(&format!("k{i}"))));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(*log.most_at_once.lock().unwrap(), 3);
    let last_end = log
        .runs
        .lock()
        .unwrap()
        .values()
        .flatten()
        .map(|(_, end)| *end)
        .max()
        .unwrap();
    assert_eq!(last_end - t0, Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_reconcile_is_retried_and_does_not_lose_its_worker() {
    let (queue, log) = start(1, Duration::ZERO, |k, attempt| {
        if k.name == "a" && attempt == 1 {
            panic!("bug");
        }
        Ok(Outcome::Done)
    });
    queue.add(key("a"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    queue.add(key("b"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.starts(&key("a")).len(), 2);
    assert_eq!(log.starts(&key("b")).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn shut_down_stops_the_workers() {
    let runner = Runner::new("test", config(2), &Metrics::new());
    let queue = runner.queue();
    let run = tokio::spawn(runner.run(|_key: ObjectKey| async { Ok::<_, String>(Outcome::Done) }));
    queue.add(key("a"));
    tokio::time::sleep(Duration::from_millis(10)).await;
    queue.shut_down();
    tokio::time::timeout(Duration::from_secs(1), run)
        .await
        .expect("workers stop")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn queue_metrics_follow_adds_retries_and_work() {
    let metrics = Metrics::new();
    let runner = Runner::new("metered", config(1), &metrics);
    let queue = runner.queue();
    tokio::spawn(runner.run(|key: ObjectKey| async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        if key.name == "bad" {
            Err("boom")
        } else {
            Ok(Outcome::Done)
        }
    }));
    queue.add(key("bad"));
    queue.add(key("good"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let text = metrics.encode();
    assert!(
        text.contains("workqueue_depth{name=\"metered\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("workqueue_longest_running_processor_seconds{name=\"metered\"} 0.5"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let text = metrics.encode();
    assert!(
        text.contains("workqueue_adds_total{name=\"metered\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("workqueue_retries_total{name=\"metered\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("controller_runtime_reconcile_errors_total{controller=\"metered\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "controller_runtime_reconcile_total{controller=\"metered\",result=\"success\"} 1"
        ),
        "{text}"
    );
}
