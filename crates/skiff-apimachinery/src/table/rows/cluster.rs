//! Cluster machinery groups: rbac, coordination, policy, scheduling, node, certificates,
//! admissionregistration, flowcontrol, apiserver internals, storage migration,
//! resource.k8s.io, and kube-aggregator's APIService. Role and ClusterRole have no printer
//! upstream (NAME, CREATED AT).

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::super::format::list_with_more;
use super::super::{arr_at, human_duration, int_at, str_at};
use super::{age_cell, is_set, name, opt_bool, opt_str};

pub(super) fn row(group: &str, kind: &str, obj: &Value, now: DateTime<Utc>) -> Option<Vec<Value>> {
    let name = name(obj);
    let age = age_cell(obj, now);
    let cells = match (group, kind) {
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
        ("coordination.k8s.io", "LeaseCandidate") => vec![
            name,
            json!(str_at(obj, "/spec/leaseName")),
            json!(str_at(obj, "/spec/binaryVersion")),
            json!(str_at(obj, "/spec/emulationVersion")),
            age,
        ],
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
        ("scheduling.k8s.io", "PriorityClass") => vec![
            name,
            json!(int_at(obj, "/value")),
            json!(opt_bool(obj, "/globalDefault", false)),
            age,
            json!(str_at(obj, "/preemptionPolicy")),
        ],
        ("node.k8s.io", "RuntimeClass") => vec![name, json!(str_at(obj, "/handler")), age],
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            let duration = match obj
                .pointer("/spec/expirationSeconds")
                .and_then(Value::as_i64)
            {
                Some(s) => Duration::try_seconds(s).map_or_else(|| "<none>".into(), human_duration),
                None => "<none>".into(),
            };
            vec![
                name,
                age,
                json!(non_empty_or_none(str_at(obj, "/spec/signerName"))),
                json!(str_at(obj, "/spec/username")),
                json!(duration),
                json!(csr_condition(obj)),
            ]
        }
        ("certificates.k8s.io", "ClusterTrustBundle") => vec![
            name,
            json!(non_empty_or_none(str_at(obj, "/spec/signerName"))),
        ],
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => vec![name, json!(arr_at(obj, "/webhooks").len()), age],
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => vec![
            name,
            json!(arr_at(obj, "/spec/validations").len()),
            json!(param_kind(obj)),
            age,
        ],
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy") => vec![
            name,
            json!(arr_at(obj, "/spec/mutations").len()),
            json!(param_kind(obj)),
            age,
        ],
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicyBinding" | "MutatingAdmissionPolicyBinding",
        ) => vec![
            name,
            json!(str_at(obj, "/spec/policyName")),
            json!(param_ref(obj)),
            age,
        ],
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => {
            let distinguisher = if is_set(obj, "/spec/distinguisherMethod") {
                str_at(obj, "/spec/distinguisherMethod/type")
            } else {
                "<none>"
            };
            let missing = arr_at(obj, "/status/conditions")
                .iter()
                .find(|c| str_at(c, "/type") == "Dangling")
                .map_or("?", |c| str_at(c, "/status"));
            vec![
                name,
                json!(str_at(obj, "/spec/priorityLevelConfiguration/name")),
                json!(int_at(obj, "/spec/matchingPrecedence")),
                json!(distinguisher),
                age,
                json!(missing),
            ]
        }
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => {
            let none = || json!("<none>");
            let (mut shares, mut queues, mut hand, mut limit) = (none(), none(), none(), none());
            if let Some(limited) = obj.pointer("/spec/limited").filter(|l| l.is_object()) {
                shares = json!(int_at(limited, "/nominalConcurrencyShares"));
                if let Some(q) = limited
                    .pointer("/limitResponse/queuing")
                    .filter(|q| q.is_object())
                {
                    queues = json!(int_at(q, "/queues"));
                    hand = json!(int_at(q, "/handSize"));
                    limit = json!(int_at(q, "/queueLengthLimit"));
                }
            }
            vec![
                name,
                json!(str_at(obj, "/spec/type")),
                shares,
                queues,
                hand,
                limit,
                age,
            ]
        }
        ("internal.apiserver.k8s.io", "StorageVersion") => {
            let versions: Vec<String> = arr_at(obj, "/status/storageVersions")
                .iter()
                .map(|v| {
                    format!(
                        "{}={}",
                        str_at(v, "/apiServerID"),
                        str_at(v, "/encodingVersion")
                    )
                })
                .collect();
            vec![
                name,
                json!(opt_str(obj, "/status/commonEncodingVersion", "<unset>")),
                json!(list_with_more(&versions, "<unset>")),
                age,
            ]
        }
        ("storagemigration.k8s.io", "StorageVersionMigration") => vec![
            name,
            json!(format!(
                "{}.{}.{}",
                str_at(obj, "/spec/resource/resource"),
                str_at(obj, "/spec/resource/version"),
                str_at(obj, "/spec/resource/group")
            )),
        ],
        ("resource.k8s.io", "DeviceClass" | "ResourceClaimTemplate") => vec![name, age],
        ("resource.k8s.io", "ResourceClaim") => vec![name, json!(claim_state(obj)), age],
        ("resource.k8s.io", "ResourceSlice") => vec![
            name,
            json!(str_at(obj, "/spec/nodeName")),
            json!(str_at(obj, "/spec/driver")),
            json!(str_at(obj, "/spec/pool/name")),
            age,
        ],
        ("apiregistration.k8s.io", "APIService") => {
            let service = match obj.pointer("/spec/service").filter(|s| s.is_object()) {
                Some(s) => format!("{}/{}", str_at(s, "/namespace"), str_at(s, "/name")),
                None => "Local".into(),
            };
            let available = match arr_at(obj, "/status/conditions")
                .iter()
                .find(|c| str_at(c, "/type") == "Available")
            {
                None => "Unknown".to_string(),
                Some(c) => match (str_at(c, "/status"), str_at(c, "/reason")) {
                    ("True", _) | (_, "") => str_at(c, "/status").to_string(),
                    (status, reason) => format!("{status} ({reason})"),
                },
            };
            vec![name, json!(service), json!(available), age]
        }
        _ => return None,
    };
    Some(cells)
}

fn non_empty_or_none(s: &str) -> &str {
    if s.is_empty() {
        "<none>"
    } else {
        s
    }
}

/// Upstream's `extractCSRStatus`: Denied over Approved over Pending, then ",Failed" and
/// ",Issued".
fn csr_condition(obj: &Value) -> String {
    let has = |ty: &str| {
        arr_at(obj, "/status/conditions")
            .iter()
            .any(|c| str_at(c, "/type") == ty)
    };
    let mut status = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !str_at(obj, "/status/certificate").is_empty() {
        status.push_str(",Issued");
    }
    status
}

/// `apiVersion/kind` of a policy's `paramKind`, `<unset>` without one.
fn param_kind(obj: &Value) -> String {
    match obj.pointer("/spec/paramKind").filter(|p| p.is_object()) {
        Some(p) => format!("{}/{}", str_at(p, "/apiVersion"), str_at(p, "/kind")),
        None => "<unset>".into(),
    }
}

/// A binding's `paramRef`: `namespace/name` (`*/name` without a namespace), else its
/// selector in Go's generated `LabelSelector.String()` form, else `<unset>`.
fn param_ref(obj: &Value) -> String {
    let Some(r) = obj.pointer("/spec/paramRef").filter(|r| r.is_object()) else {
        return "<unset>".into();
    };
    let name = str_at(r, "/name");
    if !name.is_empty() {
        return match str_at(r, "/namespace") {
            "" => format!("*/{name}"),
            ns => format!("{ns}/{name}"),
        };
    }
    match r.get("selector").filter(|s| s.is_object()) {
        Some(selector) => go_label_selector_string(selector),
        None => "<unset>".into(),
    }
}

/// The protobuf-generated `(*metav1.LabelSelector).String()`, which upstream prints for a
/// selector `paramRef`.
fn go_label_selector_string(selector: &Value) -> String {
    let mut labels: Vec<(&String, &str)> = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    let labels: String = labels.iter().map(|(k, v)| format!("{k}: {v},")).collect();
    let expressions: String = arr_at(selector, "/matchExpressions")
        .iter()
        .map(|e| {
            let values: Vec<&str> = arr_at(e, "/values")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                str_at(e, "/key"),
                str_at(e, "/operator"),
                values.join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )
}

/// Upstream's `resourceClaimState`: deleted, pending, allocated, reserved.
fn claim_state(obj: &Value) -> String {
    let deleting = is_set(obj, "/metadata/deletionTimestamp");
    let mut states = Vec::new();
    if deleting {
        states.push("deleted");
    }
    if !is_set(obj, "/status/allocation") {
        if !deleting {
            states.push("pending");
        }
    } else {
        states.push("allocated");
        if !arr_at(obj, "/status/reservedFor").is_empty() {
            states.push("reserved");
        }
    }
    states.join(",")
}
