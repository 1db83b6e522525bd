//! Given a quota and the counted usage, expect exactly this write.

use super::plan::{plan, Action, SETTLE};
use serde_json::{json, Value};
use skiff_apimachinery::quota::parse_list;
use std::time::Duration;

fn quota(spec: Value, status: Value) -> Value {
    json!({"metadata": {"name": "q", "namespace": "ns"}, "spec": {"hard": spec}, "status": status})
}

#[test]
fn quota_plan_table() {
    let long = Duration::from_secs(60);
    let cases: Vec<(&str, Value, Value, Duration, Action)> = vec![
        (
            "a new quota gets hard and used",
            quota(json!({"pods": "4"}), json!(null)),
            json!({"pods": "3"}),
            Duration::ZERO,
            Action::WriteStatus(json!({"hard": {"pods": "4"}, "used": {"pods": "3"}})),
        ),
        (
            "a changed spec is copied at once",
            quota(
                json!({"pods": "6"}),
                json!({"hard": {"pods": "4"}, "used": {"pods": "4"}}),
            ),
            json!({"pods": "4"}),
            Duration::ZERO,
            Action::WriteStatus(json!({"hard": {"pods": "6"}, "used": {"pods": "4"}})),
        ),
        (
            "true status is left alone",
            quota(
                json!({"cpu": "2"}),
                json!({"hard": {"cpu": "2"}, "used": {"cpu": "500m"}}),
            ),
            json!({"cpu": "0.5"}),
            Duration::ZERO,
            Action::Nothing,
        ),
        (
            "more usage than recorded is written at once",
            quota(
                json!({"pods": "4"}),
                json!({"hard": {"pods": "4"}, "used": {"pods": "2"}}),
            ),
            json!({"pods": "3"}),
            Duration::ZERO,
            Action::WriteStatus(json!({"hard": {"pods": "4"}, "used": {"pods": "3"}})),
        ),
        (
            "less usage right after a charge waits for the caches",
            quota(
                json!({"pods": "4"}),
                json!({"hard": {"pods": "4"}, "used": {"pods": "4"}}),
            ),
            json!({"pods": "3"}),
            Duration::from_millis(500),
            Action::Wait(SETTLE - Duration::from_millis(500)),
        ),
        (
            "less usage on a settled quota frees it (a delete)",
            quota(
                json!({"pods": "4"}),
                json!({"hard": {"pods": "4"}, "used": {"pods": "4"}}),
            ),
            json!({"pods": "3"}),
            long,
            Action::WriteStatus(json!({"hard": {"pods": "4"}, "used": {"pods": "3"}})),
        ),
    ];
    for (name, q, counted, age, want) in cases {
        assert_eq!(plan(&q, &parse_list(&counted), age), want, "{name}");
    }
}
