//! Row cells for every kind with an upstream printer except Pod (see `pod.rs`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::format::{
    access_modes, containers, format_endpoints, format_label_selector, format_labels,
    ingress_hosts, lb_ingress, list_with_more, map_len, phase_or_terminating, quantity_at,
    selector_string, service_external_ip, service_ports, storage_class,
};
use super::{age, arr_at, human_duration, int_at, parse_time, since, str_at};

/// The cells for `group`/`kind`, or `None` when upstream has no printer for it.
pub(super) fn row(group: &str, kind: &str, obj: &Value, now: DateTime<Utc>) -> Option<Vec<Value>> {
    let name = json!(str_at(obj, "/metadata/name"));
    let age = json!(age(obj, now));
    let cells = match (group, kind) {
        ("", "Pod") => return Some(super::pod::pod_row(obj, now)),
        ("", "PodTemplate") => {
            let (names, images) = containers(obj, "/template/spec/containers");
            vec![
                name,
                json!(names),
                json!(images),
                json!(format_labels(obj.pointer("/template/metadata/labels"))),
            ]
        }
        ("", "ReplicationController") => {
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
        ("apps", "ReplicaSet") => {
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
        ("apps", "Deployment") => {
            let (names, images) = containers(obj, "/spec/template/spec/containers");
            let selector = selector_string(obj.pointer("/spec/selector"))
                .unwrap_or_else(|| "<invalid>".into());
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int_at(obj, "/status/readyReplicas"),
                    int_at(obj, "/spec/replicas")
                )),
                json!(int_at(obj, "/status/updatedReplicas")),
                json!(int_at(obj, "/status/availableReplicas")),
                age,
                json!(names),
                json!(images),
                json!(selector),
            ]
        }
        ("apps", "StatefulSet") => {
            let (names, images) = containers(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int_at(obj, "/status/readyReplicas"),
                    int_at(obj, "/spec/replicas")
                )),
                age,
                json!(names),
                json!(images),
            ]
        }
        ("apps", "DaemonSet") => {
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
        ("apps", "ControllerRevision") => vec![
            name,
            json!(controller_of(obj)),
            json!(int_at(obj, "/revision")),
            age,
        ],
        ("batch", "Job") => job(obj, now, name, age),
        ("batch", "CronJob") => {
            let (names, images) =
                containers(obj, "/spec/jobTemplate/spec/template/spec/containers");
            let last = match obj.pointer("/status/lastScheduleTime") {
                Some(t) if !t.is_null() => since(Some(t), now),
                _ => "<none>".into(),
            };
            let suspend = match obj.pointer("/spec/suspend").and_then(Value::as_bool) {
                Some(true) => "True",
                Some(false) => "False",
                None => "<unset>",
            };
            vec![
                name,
                json!(str_at(obj, "/spec/schedule")),
                json!(obj
                    .pointer("/spec/timeZone")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>")),
                json!(suspend),
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
        ("", "Service") => {
            let cluster_ip = arr_at(obj, "/spec/clusterIPs")
                .first()
                .and_then(Value::as_str)
                .unwrap_or("<none>");
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
        ("", "Endpoints") => vec![name, json!(format_endpoints(obj)), age],
        ("discovery.k8s.io", "EndpointSlice") => {
            let ports: Vec<String> = arr_at(obj, "/ports")
                .iter()
                .map(|p| {
                    match (
                        p.get("port").and_then(Value::as_i64),
                        p.get("name").and_then(Value::as_str),
                    ) {
                        (Some(n), _) => n.to_string(),
                        (None, Some(n)) => n.to_string(),
                        (None, None) => "*".to_string(),
                    }
                })
                .collect();
            let addresses: Vec<String> = arr_at(obj, "/endpoints")
                .iter()
                .flat_map(|e| {
                    arr_at(e, "/addresses")
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                })
                .collect();
            vec![
                name,
                json!(str_at(obj, "/addressType")),
                json!(list_with_more(&ports, "<unset>")),
                json!(list_with_more(&addresses, "<unset>")),
                age,
            ]
        }
        ("", "Node") => node(obj, name, age),
        ("", "Event") => event(obj, now, false),
        ("events.k8s.io", "Event") => event(obj, now, true),
        ("", "Namespace") => vec![name, json!(str_at(obj, "/status/phase")), age],
        ("", "Secret") => vec![
            name,
            json!(str_at(obj, "/type")),
            json!(map_len(obj, "/data")),
            age,
        ],
        ("", "ConfigMap") => vec![
            name,
            json!(map_len(obj, "/data") + map_len(obj, "/binaryData")),
            age,
        ],
        ("", "ServiceAccount") => vec![name, json!(arr_at(obj, "/secrets").len()), age],
        ("", "PersistentVolume") => {
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
                json!(obj
                    .pointer("/spec/volumeAttributesClassName")
                    .and_then(Value::as_str)
                    .unwrap_or("<unset>")),
                json!(str_at(obj, "/status/reason")),
                age,
                json!(obj
                    .pointer("/spec/volumeMode")
                    .and_then(Value::as_str)
                    .unwrap_or("<unset>")),
            ]
        }
        ("", "PersistentVolumeClaim") => {
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
                json!(obj
                    .pointer("/spec/volumeAttributesClassName")
                    .and_then(Value::as_str)
                    .unwrap_or("<unset>")),
                age,
                json!(obj
                    .pointer("/spec/volumeMode")
                    .and_then(Value::as_str)
                    .unwrap_or("<unset>")),
            ]
        }
        ("", "ResourceQuota") => {
            let (request, limit) = resource_quota(obj);
            vec![name, json!(request), json!(limit), age]
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let role = format!(
                "{}/{}",
                str_at(obj, "/roleRef/kind"),
                str_at(obj, "/roleRef/name")
            );
            let (mut users, mut groups, mut sas) = (vec![], vec![], vec![]);
            for s in arr_at(obj, "/subjects") {
                match str_at(s, "/kind") {
                    "ServiceAccount" => sas.push(format!(
                        "{}/{}",
                        str_at(s, "/namespace"),
                        str_at(s, "/name")
                    )),
                    "User" => users.push(str_at(s, "/name").to_string()),
                    "Group" => groups.push(str_at(s, "/name").to_string()),
                    _ => {}
                }
            }
            vec![
                name,
                json!(role),
                age,
                json!(users.join(", ")),
                json!(groups.join(", ")),
                json!(sas.join(", ")),
            ]
        }
        ("coordination.k8s.io", "Lease") => {
            vec![name, json!(str_at(obj, "/spec/holderIdentity")), age]
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            vec![
                name,
                json!(format_label_selector(obj.pointer("/spec/podSelector"))),
                age,
            ]
        }
        ("networking.k8s.io", "Ingress") => {
            let class = obj
                .pointer("/spec/ingressClassName")
                .and_then(Value::as_str)
                .unwrap_or("<none>");
            let rules = arr_at(obj, "/spec/rules");
            let hosts = ingress_hosts(rules);
            let ports = if arr_at(obj, "/spec/tls").is_empty() {
                "80"
            } else {
                "80, 443"
            };
            vec![
                name,
                json!(class),
                json!(hosts),
                json!(lb_ingress(obj)),
                json!(ports),
                age,
            ]
        }
        ("policy", "PodDisruptionBudget") => {
            let intstr = |p: &str| match obj.pointer(p) {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => "N/A".to_string(),
            };
            vec![
                name,
                json!(intstr("/spec/minAvailable")),
                json!(intstr("/spec/maxUnavailable")),
                json!(int_at(obj, "/status/disruptionsAllowed")),
                age,
            ]
        }
        ("storage.k8s.io", "StorageClass") => {
            let annotations = obj.pointer("/metadata/annotations");
            let default = [
                "storageclass.kubernetes.io/is-default-class",
                "storageclass.beta.kubernetes.io/is-default-class",
            ]
            .iter()
            .any(|k| annotations.and_then(|a| a.get(*k)).and_then(Value::as_str) == Some("true"));
            let mut display = str_at(obj, "/metadata/name").to_string();
            if default {
                display.push_str(" (default)");
            }
            vec![
                json!(display),
                json!(str_at(obj, "/provisioner")),
                json!(obj
                    .pointer("/reclaimPolicy")
                    .and_then(Value::as_str)
                    .unwrap_or("Delete")),
                json!(obj
                    .pointer("/volumeBindingMode")
                    .and_then(Value::as_str)
                    .unwrap_or("Immediate")),
                json!(obj
                    .pointer("/allowVolumeExpansion")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)),
                age,
            ]
        }
        ("scheduling.k8s.io", "PriorityClass") => vec![
            name,
            json!(int_at(obj, "/value")),
            json!(obj
                .pointer("/globalDefault")
                .and_then(Value::as_bool)
                .unwrap_or(false)),
            age,
            json!(str_at(obj, "/preemptionPolicy")),
        ],
        _ => return None,
    };
    Some(cells)
}

fn node(obj: &Value, name: Value, age: Value) -> Vec<Value> {
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
            if let Some(role) = k
                .strip_prefix("node-role.kubernetes.io/")
                .filter(|r| !r.is_empty())
            {
                roles.insert(role.to_string());
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
    let info = |field: &str| {
        let v = str_at(obj, &format!("/status/nodeInfo/{field}"));
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
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

fn condition_true(obj: &Value, ty: &str) -> bool {
    arr_at(obj, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == ty)
        .is_some_and(|c| str_at(c, "/status") == "True")
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
    } else if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
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
        if res.split('.').count() > 1 && res.split('.').next() == Some("limits") {
            limit.push(entry);
        } else {
            request.push(entry);
        }
    }
    (request.join(", "), limit.join(", "))
}

/// Core and events.k8s.io Events share upstream's printer; `new_api` maps the
/// events.k8s.io field names (`note`, `regarding`, `deprecated*`) onto it.
fn event(obj: &Value, now: DateTime<Utc>, new_api: bool) -> Vec<Value> {
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
    let component = [
        str_at(obj, f("/source/component", "/deprecatedSource/component")),
        str_at(obj, "/reportingController"),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .unwrap_or("");
    let host = [
        str_at(obj, f("/source/host", "/deprecatedSource/host")),
        str_at(obj, "/reportingInstance"),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .unwrap_or("");
    let source = if host.is_empty() {
        component.to_string()
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
