//! Core (`v1`) kinds other than Pod, and Events of both APIs.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::super::format::{
    access_modes, containers, format_endpoints, format_labels, map_len, phase_or_terminating,
    quantity_at, service_external_ip, service_ports, storage_class,
};
use super::super::{arr_at, human_duration, int_at, parse_time, since, str_at};
use super::{age_cell, name, opt_str};

pub(super) fn row(kind: &str, obj: &Value, now: DateTime<Utc>) -> Option<Vec<Value>> {
    let name = name(obj);
    let age = age_cell(obj, now);
    let cells = match kind {
        "PodTemplate" => {
            let (names, images) = containers(obj, "/template/spec/containers");
            vec![
                name,
                json!(names),
                json!(images),
                json!(format_labels(obj.pointer("/template/metadata/labels"))),
            ]
        }
        "ReplicationController" => {
            let (names, images) = containers(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(int_at(obj, "/spec/replicas")),
                json!(int_at(obj, "/status/replicas")),
                json!(int_at(obj, "/status/readyReplicas")),
                age,
                json!(names),
                json!(images),
                json!(format_labels(obj.pointer("/spec/selector"))),
            ]
        }
        "Service" => service(obj, name, age),
        "Endpoints" => vec![name, json!(format_endpoints(obj)), age],
        "Node" => node(obj, name, age),
        "Event" => event(obj, now, false),
        "Namespace" => vec![name, json!(str_at(obj, "/status/phase")), age],
        "Secret" => vec![
            name,
            json!(str_at(obj, "/type")),
            json!(map_len(obj, "/data")),
            age,
        ],
        "ConfigMap" => vec![
            name,
            json!(map_len(obj, "/data") + map_len(obj, "/binaryData")),
            age,
        ],
        "ServiceAccount" => vec![name, json!(arr_at(obj, "/secrets").len()), age],
        "PersistentVolume" => {
            let claim = match obj.pointer("/spec/claimRef") {
                Some(c) if c.is_object() => {
                    format!("{}/{}", str_at(c, "/namespace"), str_at(c, "/name"))
                }
                _ => String::new(),
            };
            vec![
                name,
                json!(quantity_at(obj, "/spec/capacity/storage")),
                json!(access_modes(arr_at(obj, "/spec/accessModes"))),
                json!(str_at(obj, "/spec/persistentVolumeReclaimPolicy")),
                json!(phase_or_terminating(obj)),
                json!(claim),
                json!(storage_class(obj)),
                json!(opt_str(obj, "/spec/volumeAttributesClassName", "<unset>")),
                json!(str_at(obj, "/status/reason")),
                age,
                json!(opt_str(obj, "/spec/volumeMode", "<unset>")),
            ]
        }
        "PersistentVolumeClaim" => {
            let bound = !str_at(obj, "/spec/volumeName").is_empty();
            let (capacity, modes) = if bound {
                (
                    quantity_at(obj, "/status/capacity/storage"),
                    access_modes(arr_at(obj, "/status/accessModes")),
                )
            } else {
                (String::new(), String::new())
            };
            vec![
                name,
                json!(phase_or_terminating(obj)),
                json!(str_at(obj, "/spec/volumeName")),
                json!(capacity),
                json!(modes),
                json!(storage_class(obj)),
                json!(opt_str(obj, "/spec/volumeAttributesClassName", "<unset>")),
                age,
                json!(opt_str(obj, "/spec/volumeMode", "<unset>")),
            ]
        }
        "ResourceQuota" => {
            let (request, limit) = resource_quota(obj);
            vec![name, json!(request), json!(limit), age]
        }
        "ComponentStatus" => component_status(obj, name),
        _ => return None,
    };
    Some(cells)
}

fn service(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    // The v1 → internal conversion fills `clusterIPs` from a lone `clusterIP`.
    let cluster_ip = match arr_at(obj, "/spec/clusterIPs").first() {
        Some(ip) => ip.as_str().unwrap_or(""),
        None => match str_at(obj, "/spec/clusterIP") {
            "" => "<none>",
            ip => ip,
        },
    };
    let ports = service_ports(obj);
    vec![
        name,
        json!(str_at(obj, "/spec/type")),
        json!(cluster_ip),
        json!(service_external_ip(obj)),
        json!(if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports
        }),
        age,
        json!(format_labels(obj.pointer("/spec/selector"))),
    ]
}

fn node(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    // Upstream keys conditions by type, so the last Ready condition wins.
    let ready = arr_at(obj, "/status/conditions")
        .iter()
        .rev()
        .find(|c| str_at(c, "/type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let address = |ty: &str| {
        arr_at(obj, "/status/addresses")
            .iter()
            .find(|a| str_at(a, "/type") == ty)
            .map_or("<none>", |a| str_at(a, "/address"))
            .to_string()
    };
    let info = |field: &str| match str_at(obj, &format!("/status/nodeInfo/{field}")) {
        "" => "<unknown>".to_string(),
        v => v.to_string(),
    };
    vec![
        name,
        json!(status.join(",")),
        json!(roles),
        age,
        json!(str_at(obj, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// REQUEST and LIMIT columns: `resource: used/hard`, sorted by resource name, `limits.*`
/// resources in the LIMIT column.
fn resource_quota(obj: &Value) -> (String, String) {
    let mut names: Vec<&String> = obj
        .pointer("/status/hard")
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    names.sort();
    let (mut request, mut limit) = (Vec::new(), Vec::new());
    for res in names {
        let pointer_key = res.replace('~', "~0").replace('/', "~1");
        let used = quantity_at(obj, &format!("/status/used/{pointer_key}"));
        let hard = quantity_at(obj, &format!("/status/hard/{pointer_key}"));
        let entry = format!("{res}: {used}/{hard}");
        let mut pieces = res.split('.');
        if pieces.next() == Some("limits") && pieces.next().is_some() {
            limit.push(entry);
        } else {
            request.push(entry);
        }
    }
    (request.join(", "), limit.join(", "))
}

/// STATUS, MESSAGE and ERROR from the first `Healthy` condition; no AGE column.
fn component_status(obj: &Value, name: Value) -> Vec<Value> {
    let healthy = arr_at(obj, "/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == "Healthy");
    let (status, message, error) = match healthy {
        None => ("Unknown", "", ""),
        Some(c) => (
            if str_at(c, "/status") == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            },
            str_at(c, "/message"),
            str_at(c, "/error"),
        ),
    };
    vec![name, json!(status), json!(message), json!(error)]
}

/// Core and events.k8s.io Events share upstream's printer; `new_api` maps the
/// events.k8s.io field names (`note`, `regarding`, `deprecated*`, `reportingController`)
/// onto it.
pub(super) fn event(obj: &Value, now: DateTime<Utc>, new_api: bool) -> Vec<Value> {
    let f = |core: &'static str, new: &'static str| if new_api { new } else { core };
    let first = match parse_time(obj.pointer(f("/firstTimestamp", "/deprecatedFirstTimestamp"))) {
        Some(t) => human_duration(now - t),
        None => since(obj.pointer("/eventTime"), now),
    };
    let mut last = match parse_time(obj.pointer(f("/lastTimestamp", "/deprecatedLastTimestamp"))) {
        Some(t) => human_duration(now - t),
        None => first.clone(),
    };
    let mut count = int_at(obj, f("/count", "/deprecatedCount"));
    if obj.pointer("/series").is_some_and(Value::is_object) {
        last = since(obj.pointer("/series/lastObservedTime"), now);
        count = int_at(obj, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let regarding = f("/involvedObject", "/regarding");
    let kind = str_at(obj, &format!("{regarding}/kind")).to_lowercase();
    let object_name = str_at(obj, &format!("{regarding}/name"));
    let target = if object_name.is_empty() {
        kind
    } else {
        format!("{kind}/{object_name}")
    };
    let first_non_empty = |a: &'static str, b: &'static str| {
        [str_at(obj, a), str_at(obj, b)]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("")
            .to_string()
    };
    // Core v1 names the field `reportingComponent`; it is `ReportingController` inside.
    let component = first_non_empty(
        f("/source/component", "/deprecatedSource/component"),
        f("/reportingComponent", "/reportingController"),
    );
    let host = first_non_empty(
        f("/source/host", "/deprecatedSource/host"),
        "/reportingInstance",
    );
    let source = if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(str_at(obj, "/type")),
        json!(str_at(obj, "/reason")),
        json!(target),
        json!(str_at(obj, &format!("{regarding}/fieldPath"))),
        json!(source),
        json!(str_at(obj, f("/message", "/note")).trim()),
        json!(first),
        json!(count),
        json!(str_at(obj, "/metadata/name")),
    ]
}
