//! Upstream's replica calculator (`pkg/controller/podautoscaler/replica_calculator.go`) for
//! resource metrics: how many replicas bring the pods' average usage to the target, with
//! the tolerance, and with pods that are unready, just started or lack metrics handled so
//! they can only damp a change, never cause one. Pure.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};

/// Changes smaller than this ratio are ignored (the controller's `--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;
/// CPU samples within this time after a pod starts may be start-up spikes.
pub const CPU_INITIALIZATION_PERIOD: TimeDelta = TimeDelta::minutes(5);
/// A pod that became ready this soon after starting was never really unready.
pub const INITIAL_READINESS_DELAY: TimeDelta = TimeDelta::seconds(30);

/// A pod as the calculator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    pub name: String,
    /// `status.phase`.
    pub phase: String,
    /// Has a deletion timestamp.
    pub deleting: bool,
    /// The Ready condition: (status is True, lastTransitionTime).
    pub ready: Option<(bool, DateTime<Utc>)>,
    /// `status.startTime`.
    pub start_time: Option<DateTime<Utc>>,
    /// Per container (in spec order): its name and its request of the resource, in
    /// thousandths (millicores, millibytes), when it has one.
    pub requests: Vec<(String, Option<i64>)>,
}

/// One pod's metric: the resource's usage (thousandths), when and over which window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodMetric {
    pub value: i64,
    pub timestamp: DateTime<Utc>,
    pub window: TimeDelta,
}

/// What the calculator found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replicas {
    pub replicas: i32,
    /// Utilization in percent of the requests (utilization targets only).
    pub utilization: Option<i32>,
    /// Average usage per pod, thousandths.
    pub average: i64,
}

/// The target of one resource metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Percent of the pods' requests.
    Utilization(i32),
    /// Thousandths per pod.
    AverageValue(i64),
}

struct Groups {
    ready: usize,
    unready: HashSet<String>,
    missing: HashSet<String>,
    ignored: HashSet<String>,
}

/// Upstream's `groupPods`.
fn group(
    pods: &[PodInfo],
    metrics: &HashMap<String, PodMetric>,
    cpu: bool,
    now: DateTime<Utc>,
) -> Groups {
    let mut g = Groups {
        ready: 0,
        unready: HashSet::new(),
        missing: HashSet::new(),
        ignored: HashSet::new(),
    };
    for pod in pods {
        if pod.deleting || pod.phase == "Failed" {
            g.ignored.insert(pod.name.clone());
            continue;
        }
        if pod.phase == "Pending" {
            g.unready.insert(pod.name.clone());
            continue;
        }
        let Some(metric) = metrics.get(&pod.name) else {
            g.missing.insert(pod.name.clone());
            continue;
        };
        if cpu {
            let unready = match (pod.ready, pod.start_time) {
                (Some((ready, transition)), Some(start)) => {
                    if start + CPU_INITIALIZATION_PERIOD > now {
                        // Still initializing: unready, or ready but sampled before it was.
                        !ready || metric.timestamp < transition + metric.window
                    } else {
                        // Ready again after the readiness delay counts as ready.
                        !ready && start + INITIAL_READINESS_DELAY > transition
                    }
                }
                _ => true,
            };
            if unready {
                g.unready.insert(pod.name.clone());
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

/// Sum of each pod's requests for the resource (`container` only, when named).
fn requests(
    pods: &[PodInfo],
    container: Option<&str>,
    resource: &str,
) -> Result<HashMap<String, i64>, String> {
    let mut out = HashMap::new();
    for pod in pods {
        let mut total: i64 = 0;
        for (name, request) in &pod.requests {
            if container.is_some_and(|c| c != name) {
                continue;
            }
            let Some(r) = request else {
                return Err(format!(
                    "missing request for {resource} in container {name} of Pod {}",
                    pod.name
                ));
            };
            total = total.saturating_add(*r);
        }
        out.insert(pod.name.clone(), total);
    }
    Ok(out)
}

/// Upstream's `GetResourceUtilizationRatio`: (ratio to the target, utilization %, average).
fn utilization_ratio(
    metrics: &HashMap<String, i64>,
    requests: &HashMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut n): (i128, i128, i128) = (0, 0, 0);
    for (pod, value) in metrics {
        let Some(request) = requests.get(pod) else {
            continue;
        };
        used += i128::from(*value);
        requested += i128::from(*request);
        n += 1;
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = i32::try_from(used * 100 / requested).unwrap_or(i32::MAX);
    let average = i64::try_from(used / n.max(1)).unwrap_or(i64::MAX);
    Ok((
        f64::from(utilization) / f64::from(target.max(1)),
        utilization,
        average,
    ))
}

/// Upstream's `GetResourceReplicas` (utilization) and `GetRawResourceReplicas` (average
/// value), for one resource (`cpu` gets the start-up rules) of the pods the target selects.
pub fn calculate(
    current: i32,
    target: Target,
    resource: &str,
    container: Option<&str>,
    pods: &[PodInfo],
    metrics: &HashMap<String, PodMetric>,
    now: DateTime<Utc>,
) -> Result<Replicas, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let g = group(pods, metrics, resource == "cpu", now);
    let mut values: HashMap<String, i64> = metrics
        .iter()
        .filter(|(p, _)| !g.unready.contains(*p) && !g.ignored.contains(*p))
        .filter(|(p, _)| pods.iter().any(|pod| &pod.name == *p))
        .map(|(p, m)| (p.clone(), m.value))
        .collect();
    if values.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let ratio = |values: &HashMap<String, i64>,
                 requests: &HashMap<String, i64>|
     -> Result<(f64, Option<i32>, i64), String> {
        match target {
            Target::Utilization(t) => {
                let (r, u, a) = utilization_ratio(values, requests, t)?;
                Ok((r, Some(u), a))
            }
            Target::AverageValue(t) => {
                let total: i128 = values.values().map(|v| i128::from(*v)).sum();
                let n = values.len() as i128;
                let average = i64::try_from(total / n).unwrap_or(i64::MAX);
                Ok((total as f64 / (t.max(1) as f64 * n as f64), None, average))
            }
        }
    };
    let requests = match target {
        Target::Utilization(_) => requests(pods, container, resource)?,
        Target::AverageValue(_) => HashMap::new(),
    };
    let (usage_ratio, utilization, average) = ratio(&values, &requests)?;
    let unchanged = Replicas {
        replicas: current,
        utilization,
        average,
    };
    let scale_up_with_unready = !g.unready.is_empty() && usage_ratio > 1.0;
    if !scale_up_with_unready && g.missing.is_empty() {
        if (1.0 - usage_ratio).abs() <= TOLERANCE {
            return Ok(unchanged);
        }
        return Ok(Replicas {
            replicas: ceil(usage_ratio * g.ready as f64),
            ..unchanged
        });
    }
    // Missing pods damp the change: on a scale down they are taken as using their whole
    // request (or the target), on a scale up as using nothing.
    for pod in &g.missing {
        let value = if usage_ratio < 1.0 {
            match target {
                Target::Utilization(t) => {
                    let request = requests.get(pod).copied().unwrap_or(0);
                    request.saturating_mul(i64::from(t.max(100))) / 100
                }
                Target::AverageValue(t) => t,
            }
        } else {
            0
        };
        values.insert(pod.clone(), value);
    }
    if scale_up_with_unready {
        for pod in &g.unready {
            values.insert(pod.clone(), 0);
        }
    }
    let (new_ratio, _, _) = ratio(&values, &requests)?;
    if (1.0 - new_ratio).abs() <= TOLERANCE
        || (usage_ratio < 1.0 && new_ratio > 1.0)
        || (usage_ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(unchanged);
    }
    let replicas = ceil(new_ratio * values.len() as f64);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(unchanged);
    }
    Ok(Replicas {
        replicas,
        ..unchanged
    })
}

fn ceil(x: f64) -> i32 {
    let c = x.ceil();
    if c >= f64::from(i32::MAX) {
        i32::MAX
    } else {
        c as i32
    }
}
