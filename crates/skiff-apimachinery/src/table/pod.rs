//! The Pod row: READY, STATUS and RESTARTS computed from container statuses as upstream's
//! `printPod`, which users read as the pod's state (`Init:0/1`, `CrashLoopBackOff`, ...).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age, arr_at, human_duration, parse_time, str_at};

/// A sidecar: an init container with `restartPolicy: Always`, counted with the main ones.
fn is_restartable(init_containers: &[Value], name: &str) -> bool {
    init_containers
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|c| c.get("restartPolicy"))
        .and_then(Value::as_str)
        == Some("Always")
}

fn condition_true(obj: &Value, ty: &str) -> bool {
    arr_at(obj, "/status/conditions").iter().any(|c| {
        c.get("type").and_then(Value::as_str) == Some(ty)
            && c.get("status").and_then(Value::as_str) == Some("True")
    })
}

/// Keeps the latest `lastState.terminated.finishedAt` seen, for "N (5m ago)".
fn note_last_restart(status: &Value, last: &mut Option<DateTime<Utc>>) {
    if let Some(t) = parse_time(status.pointer("/lastState/terminated/finishedAt")) {
        if last.is_none_or(|l| l < t) {
            *last = Some(t);
        }
    }
}

/// `Signal:9` / `ExitCode:1` for a terminated state without a reason.
fn terminated_code(terminated: &Value) -> String {
    let signal = terminated
        .get("signal")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if signal != 0 {
        format!("Signal:{signal}")
    } else {
        let code = terminated
            .get("exitCode")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        format!("ExitCode:{code}")
    }
}

fn nonempty<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The Pod row cells: NAME READY STATUS RESTARTS AGE IP NODE NOMINATED-NODE READINESS-GATES.
pub(super) fn pod_row(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let init_specs = arr_at(obj, "/spec/initContainers");
    let mut total = arr_at(obj, "/spec/containers").len();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;

    let phase = str_at(obj, "/status/phase");
    let mut reason = nonempty(obj, "/status/reason").unwrap_or(phase).to_string();
    for c in arr_at(obj, "/status/conditions") {
        if c.get("type").and_then(Value::as_str) == Some("PodScheduled")
            && c.get("reason").and_then(Value::as_str) == Some("SchedulingGated")
        {
            reason = "SchedulingGated".into();
        }
    }
    total += init_specs
        .iter()
        .filter(|c| c.get("restartPolicy").and_then(Value::as_str) == Some("Always"))
        .count();

    let mut initializing = false;
    for (i, st) in arr_at(obj, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        restarts += st.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        note_last_restart(st, &mut last_restart);
        let sidecar = is_restartable(
            init_specs,
            st.get("name").and_then(Value::as_str).unwrap_or(""),
        );
        if sidecar {
            sidecar_restarts += st.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            note_last_restart(st, &mut last_sidecar_restart);
        }
        let terminated = st.pointer("/state/terminated").filter(|t| t.is_object());
        if terminated.is_some_and(|t| t.get("exitCode").and_then(Value::as_i64).unwrap_or(0) == 0) {
            continue;
        }
        if sidecar && st.get("started").and_then(Value::as_bool) == Some(true) {
            if st.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match nonempty(t, "/reason") {
                Some(r) => format!("Init:{r}"),
                None => format!("Init:{}", terminated_code(t)),
            }
        } else if let Some(w) =
            nonempty(st, "/state/waiting/reason").filter(|r| *r != "PodInitializing")
        {
            format!("Init:{w}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(obj, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for st in arr_at(obj, "/status/containerStatuses").iter().rev() {
            restarts += st.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            note_last_restart(st, &mut last_restart);
            let terminated = st.pointer("/state/terminated").filter(|t| t.is_object());
            if let Some(w) = nonempty(st, "/state/waiting/reason") {
                reason = w.to_string();
            } else if let Some(t) = terminated {
                reason = match nonempty(t, "/reason") {
                    Some(r) => r.to_string(),
                    None => terminated_code(t),
                };
            } else if st.get("ready").and_then(Value::as_bool) == Some(true)
                && st.pointer("/state/running").is_some_and(Value::is_object)
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(obj, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }

    let deleting = obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null());
    if deleting && str_at(obj, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => {
            format!("{restarts} ({} ago)", human_duration(now - t))
        }
        _ => restarts.to_string(),
    };

    let or_none = |s: &str| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s.to_string()
        }
    };
    // The v1 → internal conversion fills `podIPs` from a lone `podIP`.
    let pod_ip = match arr_at(obj, "/status/podIPs").first() {
        Some(ip) => ip.get("ip").and_then(Value::as_str).unwrap_or(""),
        None => str_at(obj, "/status/podIP"),
    };
    let gates = arr_at(obj, "/spec/readinessGates");
    let readiness = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr_at(obj, "/status/conditions");
        let true_count = gates
            .iter()
            .filter(|g| {
                let ty = g.get("conditionType").and_then(Value::as_str);
                conditions
                    .iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == ty)
                    .and_then(|c| c.get("status"))
                    .and_then(Value::as_str)
                    == Some("True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        json!(str_at(obj, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(age(obj, now)),
        json!(or_none(pod_ip)),
        json!(or_none(str_at(obj, "/spec/nodeName"))),
        json!(or_none(str_at(obj, "/status/nominatedNodeName"))),
        json!(readiness),
    ]
}
