//! The scheduler's Prometheus metrics, named as kube-scheduler's (decision 0033):
//!
//! - `scheduler_schedule_attempts_total{result, profile}`: scheduling cycles by outcome
//!   (`scheduled`, `unschedulable`, `error`);
//! - `scheduler_scheduling_attempt_duration_seconds{result, profile}`: one cycle's
//!   filtering and scoring;
//! - `scheduler_pod_scheduling_attempts`: how many cycles a pod took to be scheduled;
//! - `scheduler_pod_scheduling_sli_duration_seconds{attempts}`: end to end, from the pod's
//!   creation to its binding (upstream starts at the pod's first entry in the queue,
//!   which here is its creation as the watch delivers it).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
    profile: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptsLabel {
    attempts: u32,
}

/// What a scheduling cycle came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A node was chosen.
    Scheduled,
    /// No node fits.
    Unschedulable,
    /// The cycle failed (a binding error).
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Scheduled => "scheduled",
            Outcome::Unschedulable => "unschedulable",
            Outcome::Error => "error",
        }
    }
}

/// One outcome's series, resolved once.
#[derive(Clone, Debug)]
struct Series {
    attempts: Counter,
    duration: Histogram,
}

/// The scheduler's metrics; clones share them.
#[derive(Clone, Debug)]
pub struct SchedulerMetrics {
    attempts: Family<ResultLabels, Counter>,
    durations: Family<ResultLabels, Histogram, fn() -> Histogram>,
    pod_attempts: Histogram,
    sli: Family<AttemptsLabel, Histogram, fn() -> Histogram>,
    by_outcome: [Series; 3],
}

fn attempt_histogram() -> Histogram {
    // kube-scheduler's: 1 ms doubling, 15 buckets.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn sli_histogram() -> Histogram {
    // kube-scheduler's: 10 ms doubling, 20 buckets.
    Histogram::new(exponential_buckets(0.01, 2.0, 20))
}

impl Default for SchedulerMetrics {
    fn default() -> SchedulerMetrics {
        let attempts: Family<ResultLabels, Counter> = Family::default();
        let durations: Family<ResultLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(attempt_histogram);
        let series = |o: Outcome| {
            let l = ResultLabels {
                result: o.label(),
                profile: crate::SCHEDULER_NAME,
            };
            Series {
                attempts: attempts.get_or_create_owned(&l),
                duration: durations.get_or_create_owned(&l),
            }
        };
        let by_outcome = [
            series(Outcome::Scheduled),
            series(Outcome::Unschedulable),
            series(Outcome::Error),
        ];
        SchedulerMetrics {
            attempts,
            durations,
            // kube-scheduler's: 1 doubling to 16.
            pod_attempts: Histogram::new(exponential_buckets(1.0, 2.0, 5)),
            sli: Family::new_with_constructor(sli_histogram),
            by_outcome,
        }
    }
}

impl SchedulerMetrics {
    /// Adds the families to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod \
             could not be scheduled, while 'error' means an internal scheduler problem.",
            self.attempts.clone(),
        );
        registry.register(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
            self.durations.clone(),
        );
        registry.register(
            "scheduler_pod_scheduling_attempts",
            "Number of attempts to successfully schedule a pod.",
            self.pod_attempts.clone(),
        );
        registry.register(
            "scheduler_pod_scheduling_sli_duration_seconds",
            "E2e latency for a pod being scheduled, from the time the pod enters the \
             scheduling queue and might involve multiple scheduling attempts.",
            self.sli.clone(),
        );
    }

    /// Records one scheduling cycle.
    pub fn attempt(&self, outcome: Outcome, took: Duration) {
        let s = &self.by_outcome[outcome as usize];
        s.attempts.inc();
        s.duration.observe(took.as_secs_f64());
    }

    /// Records a pod bound after `attempts` cycles, `since_created` after its creation.
    pub fn scheduled(&self, attempts: u32, since_created: Duration) {
        self.pod_attempts.observe(f64::from(attempts));
        self.sli
            .get_or_create(&AttemptsLabel { attempts })
            .observe(since_created.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_by_result_and_profile() {
        let m = SchedulerMetrics::default();
        m.attempt(Outcome::Scheduled, Duration::from_millis(2));
        m.attempt(Outcome::Unschedulable, Duration::from_millis(1));
        m.attempt(Outcome::Unschedulable, Duration::from_millis(1));
        m.scheduled(3, Duration::from_secs(2));
        let mut r = Registry::default();
        m.register(&mut r);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        for line in [
            "scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"default-scheduler\"} 1",
            "scheduler_schedule_attempts_total{result=\"unschedulable\",profile=\"default-scheduler\"} 2",
            "scheduler_schedule_attempts_total{result=\"error\",profile=\"default-scheduler\"} 0",
            "scheduler_pod_scheduling_attempts_count 1",
            "scheduler_pod_scheduling_sli_duration_seconds_count{attempts=\"3\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
