//! networking.k8s.io and discovery.k8s.io: Ingress, IngressClass, NetworkPolicy,
//! ServiceCIDR, IPAddress, EndpointSlice.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::super::format::{format_label_selector, ingress_hosts, lb_ingress, list_with_more};
use super::super::{arr_at, str_at};
use super::{age_cell, name, opt_str};

pub(super) fn row(kind: &str, obj: &Value, now: DateTime<Utc>) -> Option<Vec<Value>> {
    let name = name(obj);
    let age = age_cell(obj, now);
    let cells = match kind {
        "EndpointSlice" => {
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
        "NetworkPolicy" => vec![
            name,
            json!(format_label_selector(obj.pointer("/spec/podSelector"))),
            age,
        ],
        "Ingress" => {
            let ports = if arr_at(obj, "/spec/tls").is_empty() {
                "80"
            } else {
                "80, 443"
            };
            vec![
                name,
                json!(opt_str(obj, "/spec/ingressClassName", "<none>")),
                json!(ingress_hosts(arr_at(obj, "/spec/rules"))),
                json!(lb_ingress(obj)),
                json!(ports),
                age,
            ]
        }
        "IngressClass" => {
            let parameters = match obj.pointer("/spec/parameters") {
                Some(p) if p.is_object() => {
                    let mut s = str_at(p, "/kind").to_string();
                    // An empty but present apiGroup still adds its dot, as upstream.
                    if let Some(group) = p.get("apiGroup").and_then(Value::as_str) {
                        s.push('.');
                        s.push_str(group);
                    }
                    format!("{s}/{}", str_at(p, "/name"))
                }
                _ => "<none>".into(),
            };
            vec![
                name,
                json!(str_at(obj, "/spec/controller")),
                json!(parameters),
                age,
            ]
        }
        "ServiceCIDR" => {
            let cidrs: Vec<&str> = arr_at(obj, "/spec/cidrs")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            vec![name, json!(cidrs.join(",")), age]
        }
        // Upstream's row carries an AGE cell its columns do not declare; kubectl ignores
        // cells past the last column.
        "IPAddress" => vec![name, json!(ip_address_parent(obj)), age],
        _ => return None,
    };
    Some(cells)
}

/// `resource.group[/namespace]/name` in lower case (the group-resource part), `<none>`
/// without a parent.
fn ip_address_parent(obj: &Value) -> String {
    let Some(parent) = obj.pointer("/spec/parentRef").filter(|p| p.is_object()) else {
        return "<none>".into();
    };
    let resource = str_at(parent, "/resource");
    let group = str_at(parent, "/group");
    let mut s = if group.is_empty() {
        resource.to_lowercase()
    } else {
        format!("{resource}.{group}").to_lowercase()
    };
    let namespace = str_at(parent, "/namespace");
    if !namespace.is_empty() {
        s.push('/');
        s.push_str(namespace);
    }
    s.push('/');
    s.push_str(str_at(parent, "/name"));
    s
}
