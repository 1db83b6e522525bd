//! Pure: the decisions of [`crate::config::build`] as the status the Gateway API defines
//! (condition types, reasons and shapes from upstream's `apis/v1` types), merged with the
//! current status so an unchanged condition keeps its `lastTransitionTime` and an
//! unchanged status renders byte-identical (the controller then writes nothing).

use crate::config::{GatewayReport, ListenerReport, RouteReport, Verdict};
use serde_json::{json, Value};

/// One condition before merging.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

fn verdict(
    type_: &'static str,
    ok_reason: &'static str,
    ok_message: &str,
    v: &Verdict,
) -> Condition {
    match v {
        Ok(()) => Condition {
            type_,
            status: true,
            reason: ok_reason,
            message: ok_message.to_string(),
        },
        Err((reason, message)) => Condition {
            type_,
            status: false,
            reason,
            message: message.clone(),
        },
    }
}

/// Renders conditions, keeping `lastTransitionTime` of those whose status did not change.
pub fn merge_conditions(
    current: Option<&Value>,
    desired: &[Condition],
    generation: i64,
    now: &str,
) -> Value {
    let current = current.and_then(Value::as_array);
    let out: Vec<Value> = desired
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let since = current
                .and_then(|list| list.iter().find(|o| o["type"] == c.type_))
                .filter(|o| o["status"] == status)
                .and_then(|o| o["lastTransitionTime"].as_str())
                .unwrap_or(now);
            json!({
                "type": c.type_,
                "status": status,
                "reason": c.reason,
                "message": c.message,
                "observedGeneration": generation,
                "lastTransitionTime": since,
            })
        })
        .collect();
    Value::Array(out)
}

/// A GatewayClass of skiff's: Accepted, and SupportedVersion of the installed CRDs.
pub fn gateway_class(current: &Value, generation: i64, supported: &Verdict, now: &str) -> Value {
    let version = verdict(
        "SupportedVersion",
        "SupportedVersion",
        "Gateway API CRD version is supported",
        supported,
    );
    let accepted = match supported {
        Ok(()) => Condition {
            type_: "Accepted",
            status: true,
            reason: "Accepted",
            message: "GatewayClass is accepted by skiff".into(),
        },
        Err((_, message)) => Condition {
            type_: "Accepted",
            status: false,
            reason: "UnsupportedVersion",
            message: message.clone(),
        },
    };
    let mut status = current.as_object().cloned().unwrap_or_default();
    status.insert(
        "conditions".into(),
        merge_conditions(
            current.get("conditions"),
            &[accepted, version],
            generation,
            now,
        ),
    );
    status.insert(
        "supportedFeatures".into(),
        SUPPORTED_FEATURES
            .iter()
            .map(|name| serde_json::json!({ "name": name }))
            .collect(),
    );
    Value::Object(status)
}

/// The conformance features (upstream's `pkg/features` names) skiff's data plane
/// implements, in the ascending order the spec requires of `supportedFeatures`.
pub const SUPPORTED_FEATURES: [&str; 23] = [
    "GRPCRoute",
    "Gateway",
    "GatewayHTTPListenerIsolation",
    "GatewayPort8080",
    "HTTPRoute",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteSchemeRedirect",
    "ReferenceGrant",
];

/// A listener's four conditions.
pub fn listener_conditions(l: &ListenerReport) -> Vec<Condition> {
    let accepted = verdict("Accepted", "Accepted", "Listener is accepted", &l.accepted);
    let conflicted = match l.conflicted {
        Some(reason) => Condition {
            type_: "Conflicted",
            status: true,
            reason,
            message: format!(
                "listener conflicts with another listener on port {}",
                l.port
            ),
        },
        None => Condition {
            type_: "Conflicted",
            status: false,
            reason: "NoConflicts",
            message: "No conflicts".into(),
        },
    };
    let resolved = verdict(
        "ResolvedRefs",
        "ResolvedRefs",
        "All references resolved",
        &l.resolved,
    );
    let programmed = if l.programmed() {
        Condition {
            type_: "Programmed",
            status: true,
            reason: "Programmed",
            message: "Listener is served by every node".into(),
        }
    } else {
        Condition {
            type_: "Programmed",
            status: false,
            reason: "Invalid",
            message: "Listener is not valid and is not served".into(),
        }
    };
    vec![accepted, conflicted, resolved, programmed]
}

/// The Gateway's conditions: Accepted from its listeners and addresses, Programmed when a
/// listener is served on at least one node address.
pub fn gateway_conditions(g: &GatewayReport) -> Vec<Condition> {
    let valid = g.listeners.iter().filter(|l| l.programmed()).count();
    let total = g.listeners.len();
    let accepted = if let Some(why) = &g.address_error {
        Condition {
            type_: "Accepted",
            status: false,
            reason: "UnsupportedAddress",
            message: why.clone(),
        }
    } else if valid == total {
        Condition {
            type_: "Accepted",
            status: true,
            reason: "Accepted",
            message: "Gateway is accepted".into(),
        }
    } else if valid > 0 {
        Condition {
            type_: "Accepted",
            status: true,
            reason: "ListenersNotValid",
            message: format!("{} of {total} listeners are not valid", total - valid),
        }
    } else {
        Condition {
            type_: "Accepted",
            status: false,
            reason: "ListenersNotValid",
            message: "Gateway has no valid listeners".into(),
        }
    };
    let programmed = if !accepted.status {
        Condition {
            type_: "Programmed",
            status: false,
            reason: "Invalid",
            message: accepted.message.clone(),
        }
    } else if g.addresses.is_empty() {
        Condition {
            type_: "Programmed",
            status: false,
            reason: "AddressNotAssigned",
            message: "no node has an address yet".into(),
        }
    } else {
        Condition {
            type_: "Programmed",
            status: true,
            reason: "Programmed",
            message: format!("served on {}", g.addresses.join(", ")),
        }
    };
    vec![accepted, programmed]
}

/// The whole `status` of a Gateway.
pub fn gateway(current: &Value, g: &GatewayReport, now: &str) -> Value {
    let listeners_now = current.get("listeners").and_then(Value::as_array);
    let listeners: Vec<Value> = g
        .listeners
        .iter()
        .map(|l| {
            let before = listeners_now
                .and_then(|ls| ls.iter().find(|o| o["name"] == l.name.as_str()))
                .and_then(|o| o.get("conditions"));
            json!({
                "name": l.name,
                "supportedKinds": l.supported_kinds,
                "attachedRoutes": l.attached_routes,
                "conditions": merge_conditions(before, &listener_conditions(l), g.generation, now),
            })
        })
        .collect();
    let addresses: Vec<Value> = g
        .addresses
        .iter()
        .map(|a| json!({"type": "IPAddress", "value": a}))
        .collect();
    json!({
        "addresses": addresses,
        "conditions": merge_conditions(current.get("conditions"), &gateway_conditions(g), g.generation, now),
        "listeners": listeners,
    })
}

/// The whole `status` of an HTTPRoute: other controllers' parents kept, skiff's replaced.
pub fn route(current: &Value, r: &RouteReport, controller_name: &str, now: &str) -> Value {
    let before = current.get("parents").and_then(Value::as_array);
    let mut parents: Vec<Value> = before
        .into_iter()
        .flatten()
        .filter(|p| p["controllerName"] != controller_name)
        .cloned()
        .collect();
    for p in &r.parents {
        let parent_ref = serde_json::to_value(&p.parent).unwrap_or_default();
        let old = before
            .into_iter()
            .flatten()
            .find(|o| o["controllerName"] == controller_name && o["parentRef"] == parent_ref)
            .and_then(|o| o.get("conditions"));
        let conditions = [
            verdict("Accepted", "Accepted", "Route is accepted", &p.accepted),
            verdict(
                "ResolvedRefs",
                "ResolvedRefs",
                "All references resolved",
                &p.resolved,
            ),
        ];
        parents.push(json!({
            "parentRef": parent_ref,
            "controllerName": controller_name,
            "conditions": merge_conditions(old, &conditions, r.generation, now),
        }));
    }
    json!({ "parents": parents })
}

/// SupportedVersion of the installed CRDs: skiff serves the bundle it vendors, and any
/// other v1.x bundle at or above the oldest it was tested with.
pub fn supported_version(bundle_version: Option<&str>) -> Verdict {
    let Some(v) = bundle_version else {
        return Err((
            "UnsupportedVersion",
            "the Gateway API CRDs carry no gateway.networking.k8s.io/bundle-version".into(),
        ));
    };
    match crate::install::parse_version(v) {
        Some((1, minor, _)) if minor >= 1 => Ok(()),
        _ => Err((
            "UnsupportedVersion",
            format!("Gateway API bundle version {v} is not supported (v1.1 or later)"),
        )),
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
