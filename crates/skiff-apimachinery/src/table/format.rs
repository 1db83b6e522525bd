//! Cell formatting shared by the row printers, each mirroring an upstream helper.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{arr_at, int_at, str_at};
use crate::quantity::Quantity;
use crate::selector::LabelSelector;

/// Upstream's `layoutContainerCells`: names and images joined with ",".
pub(super) fn containers(obj: &Value, ptr: &str) -> (String, String) {
    let list = arr_at(obj, ptr);
    let names: Vec<&str> = list.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = list.iter().map(|c| str_at(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// Upstream's `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
pub(super) fn format_labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// A `metav1.LabelSelector` as upstream's `selector.String()`; `None` when invalid.
pub(super) fn selector_string(sel: Option<&Value>) -> Option<String> {
    LabelSelector::from_label_selector(sel.unwrap_or(&Value::Null))
        .ok()
        .map(|s| s.to_string())
}

/// Upstream's `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
pub(super) fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        None => "<error>".into(),
        Some(s) if s.is_empty() => "<none>".into(),
        Some(s) => s,
    }
}

pub(super) fn map_len(obj: &Value, ptr: &str) -> usize {
    obj.pointer(ptr)
        .and_then(Value::as_object)
        .map_or(0, Map::len)
}

/// A quantity field as upstream's `Quantity.String()`: canonical (`1000m` prints `1`); a
/// missing one is Go's zero `Quantity`, which prints `0`.
pub(super) fn quantity_at(obj: &Value, ptr: &str) -> String {
    quantity_or(obj, ptr, "0")
}

/// A `*Quantity` field: canonical, or `absent` when missing or null (upstream's nil
/// pointer prints `<nil>`). A value that does not parse prints as stored.
pub(super) fn quantity_or(obj: &Value, ptr: &str, absent: &str) -> String {
    let raw = match obj.pointer(ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return absent.into(),
    };
    Quantity::parse(&raw).map_or(raw, |q| q.to_string())
}

/// Upstream's `GetAccessModesAsString`: fixed order, duplicates dropped.
pub(super) fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The beta storage-class annotation wins over `spec.storageClassName`, as upstream.
pub(super) fn storage_class(obj: &Value) -> String {
    obj.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .or_else(|| obj.pointer("/spec/storageClassName"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

pub(super) fn phase_or_terminating(obj: &Value) -> String {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
        "Terminating".into()
    } else {
        str_at(obj, "/status/phase").into()
    }
}

/// Upstream's `listWithMoreString` with a limit of three.
pub(super) fn list_with_more(items: &[String], empty: &str) -> String {
    if items.len() > 3 {
        return format!("{} + {} more...", items[..3].join(","), items.len() - 3);
    }
    if items.is_empty() {
        return empty.into();
    }
    items.join(",")
}

/// Upstream's `formatEndpoints`: up to three `ip:port` entries, then "+ N more...".
pub(super) fn format_endpoints(obj: &Value) -> String {
    let subsets = arr_at(obj, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    let mut count = 0usize;
    for ss in subsets {
        let addresses: Vec<&str> = arr_at(ss, "/addresses")
            .iter()
            .map(|a| str_at(a, "/ip"))
            .collect();
        let ports = arr_at(ss, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            list.extend(addresses.iter().map(|a| a.to_string()));
            continue;
        }
        for p in ports {
            count += addresses.len();
            let port = int_at(p, "/port");
            list.extend(addresses.iter().map(|a| join_host_port(a, port)));
        }
    }
    if list.len() > 3 {
        list.truncate(3);
        return format!("{} + {} more...", list.join(","), count - 3);
    }
    list.join(",")
}

/// Go's `net.JoinHostPort`: IPv6 hosts are bracketed.
pub(super) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Upstream's `makePortString`: `port[:nodePort]/protocol`, comma separated.
pub(super) fn service_ports(obj: &Value) -> String {
    arr_at(obj, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int_at(p, "/port");
            let proto = str_at(p, "/protocol");
            match int_at(p, "/nodePort") {
                n if n > 0 => format!("{port}:{n}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Load-balancer ingress IPs or hostnames, sorted and deduplicated (a Go string set).
pub(super) fn lb_ingress(obj: &Value) -> String {
    let set: BTreeSet<&str> = arr_at(obj, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, "/ip");
            let host = str_at(i, "/hostname");
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

/// Upstream's `getServiceExternalIP` (server-side tables are wide, so nothing is clipped).
pub(super) fn service_external_ip(obj: &Value) -> String {
    let external: Vec<&str> = arr_at(obj, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match str_at(obj, "/spec/type") {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = lb_ingress(obj);
            if !external.is_empty() {
                let mut all: Vec<&str> = if lb.is_empty() {
                    vec![]
                } else {
                    lb.split(',').collect()
                };
                all.extend(external);
                return all.join(",");
            }
            if lb.is_empty() {
                "<pending>".into()
            } else {
                lb
            }
        }
        "ExternalName" => str_at(obj, "/spec/externalName").into(),
        _ => "<unknown>".into(),
    }
}

/// Upstream's `formatHosts`: the first three non-empty hosts, `*` for none, and
/// "+ N more..." counted over all rules once a rule follows a full list.
pub(super) fn ingress_hosts(rules: &[Value]) -> String {
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == 3 {
            more = true;
        }
        let host = str_at(rule, "/host");
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".into();
    }
    if more {
        return format!("{} + {} more...", list.join(","), rules.len() - 3);
    }
    list.join(",")
}
