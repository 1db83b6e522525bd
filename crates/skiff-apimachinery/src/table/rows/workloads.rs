//! apps and batch: ReplicaSet, Deployment, StatefulSet, DaemonSet, ControllerRevision,
//! Job, CronJob.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::super::format::{containers, format_label_selector, format_labels, selector_string};
use super::super::{arr_at, human_duration, int_at, parse_time, since, str_at};
use super::{age_cell, bool_ptr, condition_true, is_set, name, opt_str};

pub(super) fn row(kind: &str, obj: &Value, now: DateTime<Utc>) -> Option<Vec<Value>> {
    let name = name(obj);
    let age = age_cell(obj, now);
    let cells = match kind {
        "ReplicaSet" => {
            let (names, images) = containers(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(int_at(obj, "/spec/replicas")),
                json!(int_at(obj, "/status/replicas")),
                json!(int_at(obj, "/status/readyReplicas")),
                age,
                json!(names),
                json!(images),
                json!(format_label_selector(obj.pointer("/spec/selector"))),
            ]
        }
        "Deployment" => {
            let (names, images) = containers(obj, "/spec/template/spec/containers");
            let selector = selector_string(obj.pointer("/spec/selector"))
                .unwrap_or_else(|| "<invalid>".into());
            vec![
                name,
                json!(ready_of_desired(obj)),
                json!(int_at(obj, "/status/updatedReplicas")),
                json!(int_at(obj, "/status/availableReplicas")),
                age,
                json!(names),
                json!(images),
                json!(selector),
            ]
        }
        "StatefulSet" => {
            let (names, images) = containers(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(ready_of_desired(obj)),
                age,
                json!(names),
                json!(images),
            ]
        }
        "DaemonSet" => {
            let (names, images) = containers(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(int_at(obj, "/status/desiredNumberScheduled")),
                json!(int_at(obj, "/status/currentNumberScheduled")),
                json!(int_at(obj, "/status/numberReady")),
                json!(int_at(obj, "/status/updatedNumberScheduled")),
                json!(int_at(obj, "/status/numberAvailable")),
                json!(format_labels(
                    obj.pointer("/spec/template/spec/nodeSelector")
                )),
                age,
                json!(names),
                json!(images),
                json!(format_label_selector(obj.pointer("/spec/selector"))),
            ]
        }
        "ControllerRevision" => vec![
            name,
            json!(controller_of(obj)),
            json!(int_at(obj, "/revision")),
            age,
        ],
        "Job" => job(obj, now, name, age),
        "CronJob" => {
            let (names, images) =
                containers(obj, "/spec/jobTemplate/spec/template/spec/containers");
            let last = if is_set(obj, "/status/lastScheduleTime") {
                since(obj.pointer("/status/lastScheduleTime"), now)
            } else {
                "<none>".into()
            };
            vec![
                name,
                json!(str_at(obj, "/spec/schedule")),
                json!(opt_str(obj, "/spec/timeZone", "<none>")),
                json!(bool_ptr(obj, "/spec/suspend")),
                json!(arr_at(obj, "/status/active").len()),
                json!(last),
                age,
                json!(names),
                json!(images),
                json!(format_label_selector(
                    obj.pointer("/spec/jobTemplate/spec/selector")
                )),
            ]
        }
        _ => return None,
    };
    Some(cells)
}

/// READY as `ready/desired` replicas.
fn ready_of_desired(obj: &Value) -> String {
    format!(
        "{}/{}",
        int_at(obj, "/status/readyReplicas"),
        int_at(obj, "/spec/replicas")
    )
}

fn job(obj: &Value, now: DateTime<Utc>, name: Value, age: Value) -> Vec<Value> {
    let succeeded = int_at(obj, "/status/succeeded");
    let completions = match obj.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(obj, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        parse_time(obj.pointer("/status/startTime")),
        parse_time(obj.pointer("/status/completionTime")),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let status = if condition_true(obj, "Complete") {
        "Complete"
    } else if condition_true(obj, "Failed") {
        "Failed"
    } else if is_set(obj, "/metadata/deletionTimestamp") {
        "Terminating"
    } else if condition_true(obj, "Suspended") {
        "Suspended"
    } else if condition_true(obj, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers(obj, "/spec/template/spec/containers");
    vec![
        name,
        json!(status),
        json!(completions),
        json!(duration),
        age,
        json!(names),
        json!(images),
        json!(format_label_selector(obj.pointer("/spec/selector"))),
    ]
}

/// The controller owner as `kind.group/name` in lower case, `<none>` without one.
fn controller_of(obj: &Value) -> String {
    let Some(owner) = arr_at(obj, "/metadata/ownerReferences")
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
    else {
        return "<none>".into();
    };
    let api_version = str_at(owner, "/apiVersion");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = str_at(owner, "/kind");
    let group_kind = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    if group_kind.is_empty() {
        return str_at(owner, "/name").into();
    }
    format!("{}/{}", group_kind.to_lowercase(), str_at(owner, "/name"))
}
