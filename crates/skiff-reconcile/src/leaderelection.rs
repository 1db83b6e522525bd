//! Leader election on a `coordination.k8s.io` Lease, with client-go's `leaderelection`
//! semantics (a `LeaseLock`): of several servers on one datastore, the one holding the
//! Lease runs the controllers, the others wait to take over.
//!
//! A candidate reads the Lease every `retry_period` (with client-go's jitter). It takes the
//! Lease when there is none, when it names no holder, or when its record has not changed
//! for `leaseDurationSeconds` as measured on the candidate's own clock since it last saw it
//! change (client-go's `observedTime`: the holder's `renewTime` is never compared with the
//! local clock, so clock skew between servers does not matter). Every write is a
//! compare-and-swap on the Lease's resourceVersion, so two candidates never both win. The
//! leader renews every `retry_period`; when no renewal succeeds within `renew_deadline` it
//! has lost the Lease (and, being shorter than the lease duration, knows so before anyone
//! else may take it).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};

/// client-go's `JitterFactor`: waits between attempts last up to 1.2 × `retry_period`.
const JITTER_FACTOR: f64 = 1.2;

/// The three durations of client-go's `LeaderElectionConfig` (kube-controller-manager's
/// `--leader-elect-lease-duration`, `--leader-elect-renew-deadline`,
/// `--leader-elect-retry-period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long others wait, after the record last changed, before taking the Lease.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    pub retry_period: Duration,
}

impl Timing {
    /// client-go's `NewLeaderElector` checks: a leader must give up before its Lease can
    /// expire for others, and must get at least one jittered attempt within its deadline.
    pub fn validate(&self) -> Result<(), String> {
        if self.lease_duration.as_secs() < 1 {
            return Err("leaseDuration must be at least one second".into());
        }
        if self.lease_duration <= self.renew_deadline {
            return Err("leaseDuration must be greater than renewDeadline".into());
        }
        if self.retry_period.is_zero() {
            return Err("retryPeriod must be greater than zero".into());
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return Err("renewDeadline must be greater than retryPeriod*JitterFactor".into());
        }
        Ok(())
    }
}

/// The election record: the Lease spec's fields client-go reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub holder: String,
    pub lease_duration_seconds: i32,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub transitions: i32,
}

impl Record {
    fn from_lease(lease: &Lease) -> Record {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or_default(),
            acquire_time: spec.acquire_time.map(|t| t.0),
            renew_time: spec.renew_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or_default(),
        }
    }

    fn spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.map(MicroTime),
            renew_time: self.renew_time.map(MicroTime),
            lease_transitions: Some(self.transitions),
            ..Default::default()
        }
    }
}

/// What a candidate does with the Lease (client-go's `tryAcquireOrRenew`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// There is no Lease: create it, holding it.
    Create(Record),
    /// Take or renew the Lease with this record (a compare-and-swap on what was read).
    Update(Record),
    /// Another candidate holds a Lease that has not expired.
    Wait,
}

/// The decision for `identity` given the Lease's `current` record and the instant this
/// candidate last saw that record change, at `now` (monotonic) and `wall` (what is
/// written as acquire and renew times).
pub fn plan(
    current: Option<(&Record, Instant)>,
    identity: &str,
    lease_duration: Duration,
    now: Instant,
    wall: Timestamp,
) -> Plan {
    let seconds = i32::try_from(lease_duration.as_secs()).unwrap_or(i32::MAX);
    let Some((current, observed)) = current else {
        return Plan::Create(Record {
            holder: identity.to_owned(),
            lease_duration_seconds: seconds,
            acquire_time: Some(wall),
            renew_time: Some(wall),
            transitions: 0,
        });
    };
    let held_by_other = !current.holder.is_empty() && current.holder != identity;
    let expires =
        observed + Duration::from_secs(u64::try_from(current.lease_duration_seconds).unwrap_or(0));
    if held_by_other && expires > now {
        return Plan::Wait;
    }
    let renewing = current.holder == identity;
    Plan::Update(Record {
        holder: identity.to_owned(),
        lease_duration_seconds: seconds,
        acquire_time: if renewing {
            current.acquire_time
        } else {
            Some(wall)
        },
        renew_time: Some(wall),
        transitions: if renewing {
            current.transitions
        } else {
            current.transitions.saturating_add(1)
        },
    })
}

/// One candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// The record last read and when it was first seen so (client-go's observedTime).
    observed: Option<(Record, Instant)>,
}

impl Elector {
    /// A candidate `identity` for Lease `namespace/name`, writing through `client`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: None,
        }
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "acquired the lease");
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(lease = %self.name, error = %e, "acquiring the lease")
                }
            }
            tokio::time::sleep(jittered(self.timing.retry_period)).await;
        }
    }

    /// Renews the Lease every retry period and returns once leadership is lost: no renewal
    /// succeeded within the renew deadline.
    pub async fn hold(&mut self) {
        loop {
            let deadline = tokio::time::Instant::now() + self.timing.renew_deadline;
            loop {
                match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                    Ok(Ok(true)) => break,
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(lease = %self.name, error = %e, "renewing the lease")
                    }
                    Err(_) => {}
                }
                let next = tokio::time::Instant::now() + self.timing.retry_period;
                if next >= deadline {
                    tracing::error!(lease = %self.name, identity = %self.identity, "leaderelection lost");
                    return;
                }
                tokio::time::sleep_until(next).await;
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// One read and, when the plan says so, one write; whether this candidate holds the
    /// Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let now = Instant::now();
        let record = current.as_ref().map(Record::from_lease);
        if let Some(record) = &record {
            if self.observed.as_ref().map(|(r, _)| r) != Some(record) {
                self.observed = Some((record.clone(), now));
            }
        }
        let step = plan(
            record
                .as_ref()
                .zip(self.observed.as_ref().map(|(_, at)| *at)),
            &self.identity,
            self.timing.lease_duration,
            now,
            Timestamp::now(),
        );
        let written = match (step, current) {
            (Plan::Wait, _) => return Ok(false),
            (Plan::Create(record), _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(record.spec()),
                };
                (
                    self.api.create(&PostParams::default(), &lease).await,
                    record,
                )
            }
            (Plan::Update(record), Some(mut lease)) => {
                lease.spec = Some(record.spec());
                (
                    self.api
                        .replace(&self.name, &PostParams::default(), &lease)
                        .await,
                    record,
                )
            }
            (Plan::Update(_), None) => return Ok(false),
        };
        match written {
            (Ok(_), record) => {
                self.observed = Some((record, Instant::now()));
                Ok(true)
            }
            // Another candidate wrote first: it holds the Lease.
            (Err(kube::Error::Api(e)), _) if e.code == 409 => Ok(false),
            (Err(e), _) => Err(e),
        }
    }
}

/// `period` stretched by a random part of client-go's jitter factor, so candidates that
/// started together do not keep colliding.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + fastrand::f64() * (JITTER_FACTOR - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(5);

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn record(holder: &str, acquired: i64, renewed: i64, transitions: i32) -> Record {
        Record {
            holder: holder.into(),
            lease_duration_seconds: 5,
            acquire_time: Some(at(acquired)),
            renew_time: Some(at(renewed)),
            transitions,
        }
    }

    /// client-go's TestTryAcquireOrRenew cases for a LeaseLock, with `observed` seconds
    /// since this candidate saw the record change.
    #[test]
    fn acquire_or_renew_as_client_go() {
        let start = Instant::now();
        let now = start + Duration::from_secs(100);
        /// A case's name, the Lease's record with how many seconds ago it was seen to
        /// change, and the plan.
        type Case = (&'static str, Option<(Record, u64)>, Plan);
        let cases: Vec<Case> = vec![
            (
                "no lease: create it holding it",
                None,
                Plan::Create(record("me", 100, 100, 0)),
            ),
            (
                "another's lease seen changing within its duration: wait",
                Some((record("other", 10, 98, 3), 2)),
                Plan::Wait,
            ),
            (
                "another's lease unchanged for its duration: take it, one more transition",
                Some((record("other", 10, 90, 3), 5)),
                Plan::Update(record("me", 100, 100, 4)),
            ),
            (
                "a released lease (no holder): take it at once",
                Some((record("", 10, 98, 3), 0)),
                Plan::Update(record("me", 100, 100, 4)),
            ),
            (
                "our own lease: renew, keeping acquire time and transitions",
                Some((record("me", 40, 98, 2), 1)),
                Plan::Update(record("me", 40, 100, 2)),
            ),
            (
                "our own expired lease: still ours to renew",
                Some((record("me", 40, 60, 2), 40)),
                Plan::Update(record("me", 40, 100, 2)),
            ),
        ];
        for (name, current, want) in cases {
            let current = current.map(|(r, ago)| (r, now - Duration::from_secs(ago)));
            let got = plan(
                current.as_ref().map(|(r, seen)| (r, *seen)),
                "me",
                LEASE,
                now,
                at(100),
            );
            assert_eq!(got, want, "{name}");
        }
    }

    /// The renew time in the record is the holder's clock: a holder whose clock runs far
    /// behind still keeps its lease while it renews, because candidates time the lease
    /// from when they saw the record change.
    #[test]
    fn clock_skew_does_not_steal_a_renewed_lease() {
        let now = Instant::now() + Duration::from_secs(100);
        let stale_clock = record("other", -3600, -3600, 0);
        assert_eq!(
            plan(Some((&stale_clock, now)), "me", LEASE, now, at(100)),
            Plan::Wait
        );
    }

    #[test]
    fn timing_is_checked_as_client_go_does() {
        let timing = |lease, renew, retry| Timing {
            lease_duration: Duration::from_millis(lease),
            renew_deadline: Duration::from_millis(renew),
            retry_period: Duration::from_millis(retry),
        };
        for (t, ok) in [
            (timing(5000, 3000, 2000), true),
            (timing(15000, 10000, 2000), true),
            (timing(5000, 5000, 2000), false),
            (timing(5000, 2400, 2000), false),
            (timing(5000, 3000, 0), false),
            (timing(500, 300, 100), false),
        ] {
            assert_eq!(t.validate().is_ok(), ok, "{t:?}");
        }
    }
}
