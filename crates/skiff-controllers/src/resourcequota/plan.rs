//! What the quota controller writes, pure: a quota's `status.hard` follows `spec.hard` and
//! `status.used` follows the objects counted, except that a lower count is trusted only
//! once the quota has not been charged for a while (admission charges before the object is
//! stored, so a count from a cache a moment behind would undo a charge and let one object
//! too many in).

use std::time::Duration;

use serde_json::{json, Value};
use skiff_apimachinery::quota::{parse_list, to_json, ResourceList};

/// How long a quota must go uncharged before a lower usage is written over its charges.
pub const SETTLE: Duration = Duration::from_secs(2);

/// The controller's decision for one quota.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Status is true already.
    Nothing,
    /// Write this `status` (`hard` and `used`).
    WriteStatus(Value),
    /// Usage went down but the quota was charged moments ago: look again after this long.
    Wait(Duration),
}

fn same(a: &ResourceList, b: &ResourceList) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|o| o.nano_value() == v.nano_value()))
}

/// `quota` as cached, `counted` its usage computed from the objects, `unchanged_for` how
/// long the quota has kept its current resourceVersion.
pub fn plan(quota: &Value, counted: &ResourceList, unchanged_for: Duration) -> Action {
    let spec_hard = &quota["spec"]["hard"];
    let status = &quota["status"];
    let processed =
        parse_list(&status["hard"]) == parse_list(spec_hard) && status["hard"].is_object();
    let recorded = parse_list(&status["used"]);
    let status = json!({"hard": spec_hard.clone(), "used": to_json(counted)});
    if !processed {
        // New or changed limits: admission ignored the quota until now (or held it to the
        // old limits), so the count is the usage.
        return Action::WriteStatus(status);
    }
    if same(&recorded, counted) {
        return Action::Nothing;
    }
    let lower = recorded.iter().any(|(k, v)| {
        counted
            .get(k)
            .is_none_or(|c| c.nano_value() < v.nano_value())
    });
    if lower && unchanged_for < SETTLE {
        return Action::Wait(SETTLE - unchanged_for);
    }
    Action::WriteStatus(status)
}
