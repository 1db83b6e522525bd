//! From the metrics' proposal to the replica count actually set, as upstream's
//! `normalizeDesiredReplicas(WithBehaviors)`: stabilization windows over recent
//! recommendations, scaling policies over recent scale events, and min/max, each with the
//! AbleToScale and ScalingLimited reasons upstream gives. Pure: the history is passed in.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

/// The scale-down stabilization window without `behavior` (the controller's
/// `--horizontal-pod-autoscaler-downscale-stabilization`).
pub const DEFAULT_DOWNSCALE_WINDOW: TimeDelta = TimeDelta::minutes(5);

/// What one HPA's earlier syncs left behind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Recommendations (replicas, when).
    pub recommendations: Vec<(i32, DateTime<Utc>)>,
    /// Scale-ups and scale-downs made (replicas changed by, when).
    pub ups: Vec<(i32, DateTime<Utc>)>,
    pub downs: Vec<(i32, DateTime<Utc>)>,
}

/// One scaling policy: `Pods` or `Percent`, its value, its period.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Policy {
    percent: bool,
    value: i32,
    period: TimeDelta,
}

/// One direction's rules, defaults filled in as upstream's `GenerateHPAScale*Rules`.
#[derive(Debug, Clone, PartialEq)]
struct Rules {
    window: TimeDelta,
    select: String,
    policies: Vec<Policy>,
}

fn rules(v: &Value, up: bool) -> Rules {
    let default_policies = if up {
        vec![
            Policy {
                percent: false,
                value: 4,
                period: TimeDelta::seconds(15),
            },
            Policy {
                percent: true,
                value: 100,
                period: TimeDelta::seconds(15),
            },
        ]
    } else {
        vec![Policy {
            percent: true,
            value: 100,
            period: TimeDelta::seconds(15),
        }]
    };
    let policies = v["policies"]
        .as_array()
        .filter(|p| !p.is_empty())
        .map(|ps| {
            ps.iter()
                .map(|p| Policy {
                    percent: p["type"] == "Percent",
                    value: p["value"].as_i64().unwrap_or(0).clamp(0, i32::MAX as i64) as i32,
                    period: TimeDelta::seconds(p["periodSeconds"].as_i64().unwrap_or(0)),
                })
                .collect()
        })
        .unwrap_or(default_policies);
    let window = v["stabilizationWindowSeconds"]
        .as_i64()
        .map(TimeDelta::seconds)
        .unwrap_or(if up {
            TimeDelta::zero()
        } else {
            DEFAULT_DOWNSCALE_WINDOW
        });
    Rules {
        window,
        select: v["selectPolicy"].as_str().unwrap_or("Max").to_owned(),
        policies,
    }
}

/// A condition to set: (type, status, reason, message).
pub type Condition = (&'static str, &'static str, &'static str, String);

/// The outcome: the replicas to set and the AbleToScale and ScalingLimited conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub replicas: i32,
    pub conditions: Vec<Condition>,
}

fn changed_within(events: &[(i32, DateTime<Utc>)], period: TimeDelta, now: DateTime<Utc>) -> i32 {
    events
        .iter()
        .filter(|(_, at)| *at > now - period)
        .fold(0i32, |sum, (n, _)| sum.saturating_add(*n))
}

/// Upstream's `calculateScaleUpLimitWithScalingRules`.
fn scale_up_limit(current: i32, h: &History, r: &Rules, now: DateTime<Utc>) -> i32 {
    if r.select == "Disabled" {
        return current;
    }
    let min = r.select == "Min";
    let mut result = if min { i32::MAX } else { i32::MIN };
    for p in &r.policies {
        let start = current - changed_within(&h.ups, p.period, now)
            + changed_within(&h.downs, p.period, now);
        let proposed = if p.percent {
            (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
        } else {
            start.saturating_add(p.value)
        };
        result = if min {
            result.min(proposed)
        } else {
            result.max(proposed)
        };
    }
    result
}

/// Upstream's `calculateScaleDownLimitWithBehaviors`.
fn scale_down_limit(current: i32, h: &History, r: &Rules, now: DateTime<Utc>) -> i32 {
    if r.select == "Disabled" {
        return current;
    }
    let min = r.select == "Min";
    let mut result = if min { i32::MIN } else { i32::MAX };
    for p in &r.policies {
        let start = current - changed_within(&h.ups, p.period, now)
            + changed_within(&h.downs, p.period, now);
        let proposed = if p.percent {
            (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
        } else {
            start.saturating_sub(p.value)
        };
        // "Min" picks the policy allowing the smallest change: the highest floor.
        result = if min {
            result.max(proposed)
        } else {
            result.min(proposed)
        };
    }
    result
}

/// Upstream's `normalizeDesiredReplicasWithBehaviors` (the defaults of an absent
/// `behavior` filled in, which is what the API defaults to on write). Records this sync's
/// recommendation in `history`.
pub fn normalize(
    behavior: &Value,
    history: &mut History,
    current: i32,
    proposed: i32,
    min_replicas: i32,
    max_replicas: i32,
    now: DateTime<Utc>,
) -> Normalized {
    let up = rules(&behavior["scaleUp"], true);
    let down = rules(&behavior["scaleDown"], false);
    // Stabilization: the lowest recommendation of the scale-up window, the highest of the
    // scale-down window, and the current count between them.
    let (mut up_rec, mut down_rec) = (proposed, proposed);
    for (rec, at) in &history.recommendations {
        if *at > now - up.window {
            up_rec = up_rec.min(*rec);
        }
        if *at > now - down.window {
            down_rec = down_rec.max(*rec);
        }
    }
    let longest = up.window.max(down.window);
    history
        .recommendations
        .retain(|(_, at)| *at > now - longest);
    history.recommendations.push((proposed, now));
    let stabilized = current.max(up_rec).min(down_rec);
    let mut conditions = Vec::new();
    conditions.push(if stabilized == proposed {
        (
            "AbleToScale",
            "True",
            "ReadyForNewScale",
            "recommended size matches current size".to_owned(),
        )
    } else if stabilized > proposed {
        (
            "AbleToScale",
            "True",
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation".to_owned(),
        )
    } else {
        (
            "AbleToScale",
            "True",
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent recommendation".to_owned(),
        )
    });
    const WITHIN: (&str, &str) = (
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    );
    let (replicas, (reason, message)) = if stabilized > current {
        let limit = scale_up_limit(current, history, &up, now).max(current);
        let (allowed, why) = if max_replicas > limit {
            (
                limit,
                (
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                ),
            )
        } else {
            (
                max_replicas,
                (
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                ),
            )
        };
        if stabilized > allowed {
            (allowed, why)
        } else {
            (stabilized, WITHIN)
        }
    } else if stabilized < current {
        let limit = scale_down_limit(current, history, &down, now).min(current);
        let (allowed, why) = if min_replicas < limit {
            (
                limit,
                (
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                ),
            )
        } else {
            (
                min_replicas,
                (
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                ),
            )
        };
        if stabilized < allowed {
            (allowed, why)
        } else {
            (stabilized, WITHIN)
        }
    } else {
        (stabilized, WITHIN)
    };
    conditions.push((
        "ScalingLimited",
        if replicas == stabilized {
            "False"
        } else {
            "True"
        },
        reason,
        message.to_owned(),
    ));
    Normalized {
        replicas,
        conditions,
    }
}

/// Records a scale from `from` to `to` replicas made at `now`, forgetting events older than
/// the longest policy period.
pub fn record_scale(
    behavior: &Value,
    history: &mut History,
    from: i32,
    to: i32,
    now: DateTime<Utc>,
) {
    let longest = |r: &Rules| {
        r.policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or_default()
    };
    let (up, down) = (
        rules(&behavior["scaleUp"], true),
        rules(&behavior["scaleDown"], false),
    );
    history.ups.retain(|(_, at)| *at > now - longest(&up));
    history.downs.retain(|(_, at)| *at > now - longest(&down));
    if to > from {
        history.ups.push((to - from, now));
    } else if to < from {
        history.downs.push((from - to, now));
    }
}
