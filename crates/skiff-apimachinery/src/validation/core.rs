//! Core-group object validation besides pods: Service, ConfigMap, Secret, Namespace, Node,
//! Event, PersistentVolumeClaim, plus the coordination.k8s.io Lease.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::names::{
    is_config_map_key, is_dns1123_label, is_dns1123_subdomain, is_valid_ip, is_valid_port_num,
    IS_NEGATIVE_ERROR_MSG,
};
use super::pod::{validate_port_num_or_name, validate_protocol};
use super::{child, fmt_go, index, key, non_negative, FieldError, FIELD_IMMUTABLE};

/// Upstream's `MaxSecretSize`, the limit for ConfigMap and Secret payloads.
const MAX_SECRET_SIZE: usize = 1024 * 1024;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn spec_of(obj: &Value) -> &Value {
    static NULL: Value = Value::Null;
    obj.get("spec").unwrap_or(&NULL)
}

pub(super) fn validate_service(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = spec_of(obj);
    let mut errs = Vec::new();
    let ty = s(spec, "type");
    let cluster_ip = s(spec, "clusterIP");
    let headless = cluster_ip == "None";
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);

    if ty == "ExternalName" {
        let name = s(spec, "externalName");
        if name.is_empty() {
            errs.push(FieldError::required("spec.externalName", ""));
        } else {
            for msg in is_dns1123_subdomain(name.trim_end_matches('.')) {
                errs.push(FieldError::invalid(
                    "spec.externalName",
                    Value::from(name),
                    msg,
                ));
            }
        }
        if !cluster_ip.is_empty() {
            errs.push(FieldError::forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
    } else if ports.is_empty() && !headless {
        errs.push(FieldError::required("spec.ports", ""));
    }

    let require_name = ports.len() > 1;
    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let name = s(port, "name");
        if require_name && name.is_empty() {
            errs.push(FieldError::required(&child(&p, "name"), ""));
        } else if !name.is_empty() {
            for msg in is_dns1123_label(name) {
                errs.push(FieldError::invalid(
                    &child(&p, "name"),
                    Value::from(name),
                    msg,
                ));
            }
            if !names.insert(name) {
                errs.push(FieldError::duplicate(&child(&p, "name"), Value::from(name)));
            }
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        for msg in is_valid_port_num(number) {
            errs.push(FieldError::invalid(
                &child(&p, "port"),
                Value::from(number),
                msg,
            ));
        }
        validate_protocol(port, &p, &mut errs);
        errs.extend(validate_port_num_or_name(
            port.get("targetPort"),
            &child(&p, "targetPort"),
        ));
        let node_port = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if ty == "ClusterIP" && node_port != 0 {
            errs.push(FieldError::forbidden(
                &child(&p, "nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
        let protocol = s(port, "protocol");
        if !seen.insert((number, protocol.to_string())) {
            let rendered = format!(
                "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{number}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                fmt_go::quote(protocol)
            );
            errs.push(FieldError::duplicate(&p, port.clone()).rendered(rendered));
        }
    }

    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if ty.is_empty() {
        errs.push(FieldError::required("spec.type", ""));
    } else if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(
            "spec.type",
            Value::from(ty),
            TYPES,
        ));
    }
    match s(spec, "sessionAffinity") {
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        "None" | "ClientIP" => {}
        other => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            Value::from(other),
            &["ClientIP", "None"],
        )),
    }
    if !cluster_ip.is_empty() && !headless {
        for msg in is_valid_ip(cluster_ip) {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                Value::from(cluster_ip),
                msg,
            ));
        }
    }
    if let Some(Value::Array(ips)) = spec.get("clusterIPs") {
        if let Some(first) = ips.first().and_then(Value::as_str) {
            if !cluster_ip.is_empty() && first != cluster_ip {
                errs.push(
                    FieldError::invalid(
                        "spec.clusterIPs[0]",
                        Value::Array(ips.clone()),
                        "must be same as clusterIP",
                    )
                    .rendered(fmt_go::string_slice(ips)),
                );
            }
        }
    }
    for (i, ip) in spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let ip = ip.as_str().unwrap_or("");
        for msg in is_valid_ip(ip) {
            errs.push(FieldError::invalid(
                &index("spec.externalIPs", i),
                Value::from(ip),
                msg,
            ));
        }
    }
    let externally_accessible = ty == "NodePort"
        || ty == "LoadBalancer"
        || spec
            .get("externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
    let etp = s(spec, "externalTrafficPolicy");
    if !etp.is_empty() {
        if !externally_accessible {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                Value::from(etp),
                "may only be set for externally-accessible services",
            ));
        } else if etp != "Cluster" && etp != "Local" {
            errs.push(FieldError::not_supported(
                "spec.externalTrafficPolicy",
                Value::from(etp),
                &["Cluster", "Local"],
            ));
        }
    }

    if let Some(old) = old {
        let old_spec = spec_of(old);
        let type_change_external = s(old_spec, "type") == "ExternalName" || ty == "ExternalName";
        let old_ips = old_spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty());
        if let (Some(old_ips), false) = (old_ips, type_change_external) {
            match spec
                .get("clusterIPs")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
            {
                None => errs.push(
                    FieldError::invalid(
                        "spec.clusterIPs[0]",
                        Value::Null,
                        "primary clusterIP can not be unset",
                    )
                    .rendered("[]string(nil)"),
                ),
                Some(new_ips) if new_ips.first() != old_ips.first() => errs.push(
                    FieldError::invalid(
                        "spec.clusterIPs[0]",
                        Value::Array(new_ips.clone()),
                        "may not change once set",
                    )
                    .rendered(fmt_go::string_slice(new_ips)),
                ),
                _ => {}
            }
        }
    }
    errs
}

/// ConfigMap and Secret data keys become file names: each must be a config key, and a key
/// may not appear in both maps.
fn validate_keys(
    map: Option<&Map<String, Value>>,
    other: Option<&Map<String, Value>>,
    path: &str,
    other_name: &str,
    errs: &mut Vec<FieldError>,
) {
    for k in map.into_iter().flat_map(|m| m.keys()) {
        for msg in is_config_map_key(k) {
            errs.push(FieldError::invalid(
                &key(path, k),
                Value::from(k.as_str()),
                msg,
            ));
        }
        if other.is_some_and(|o| o.contains_key(k)) {
            errs.push(FieldError::invalid(
                &key(path, k),
                Value::from(k.as_str()),
                format!("duplicate of key present in {other_name}"),
            ));
        }
    }
}

/// Fields that freeze once `immutable: true` was stored.
fn validate_immutable_payload(
    obj: &Value,
    old: Option<&Value>,
    fields: &[&str],
    errs: &mut Vec<FieldError>,
) {
    let Some(old) = old else { return };
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    const DETAIL: &str = "field is immutable when `immutable` is set";
    if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden("immutable", DETAIL));
    }
    for f in fields {
        let norm = |v: Option<&Value>| {
            v.filter(|x| x.as_object().is_some_and(|m| !m.is_empty()))
                .cloned()
        };
        if norm(obj.get(*f)) != norm(old.get(*f)) {
            errs.push(FieldError::forbidden(f, DETAIL));
        }
    }
}

pub(super) fn validate_config_map(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let data = obj.get("data").and_then(Value::as_object);
    let binary = obj.get("binaryData").and_then(Value::as_object);
    validate_keys(data, binary, "data", "binaryData", &mut errs);
    validate_keys(binary, data, "binaryData", "data", &mut errs);
    let size: usize = data
        .into_iter()
        .flatten()
        .map(|(_, v)| v.as_str().map_or(0, str::len))
        .sum::<usize>()
        + binary
            .into_iter()
            .flatten()
            .map(|(_, v)| decoded_len(v))
            .sum::<usize>();
    if size > MAX_SECRET_SIZE {
        // Upstream reports it against the root path, which prints as "[]".
        errs.push(FieldError::too_long("[]", MAX_SECRET_SIZE));
    }
    validate_immutable_payload(obj, old, &["data", "binaryData"], &mut errs);
    errs
}

/// The decoded size of a base64 value.
fn decoded_len(v: &Value) -> usize {
    let s = v.as_str().unwrap_or("").trim_end_matches('=');
    s.len() * 3 / 4
}

pub(super) fn validate_secret(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let data = obj.get("data").and_then(Value::as_object);
    validate_keys(data, None, "data", "", &mut errs);
    let size: usize = data
        .into_iter()
        .flatten()
        .map(|(_, v)| decoded_len(v))
        .sum();
    if size > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let ty = s(obj, "type");
    match ty {
        "kubernetes.io/service-account-token"
            if obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty() =>
        {
            errs.push(FieldError::required(
                "metadata.annotations[kubernetes.io/service-account.name]",
                "",
            ))
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => {
            errs.push(FieldError::required("data[.dockercfg]", ""))
        }
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            errs.push(FieldError::required("data[.dockerconfigjson]", ""))
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(FieldError::required(
                "data[username]",
                "either username or password must be present",
            ))
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            errs.push(FieldError::required("data[ssh-privatekey]", ""))
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    errs.push(FieldError::required(&key("data", k), ""));
                }
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        let old_ty = s(old, "type");
        if ty != old_ty {
            errs.push(FieldError::invalid(
                "type",
                Value::from(ty),
                FIELD_IMMUTABLE,
            ));
        }
    }
    validate_immutable_payload(obj, old, &["data"], &mut errs);
    errs
}

pub(super) fn validate_namespace(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, f) in obj
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = f.as_str().unwrap_or("");
        let msgs = if f.contains('/') {
            super::names::is_qualified_name(f)
        } else if f == "kubernetes" {
            vec![]
        } else {
            vec!["name is neither a standard finalizer name nor is it fully qualified".to_string()]
        };
        for msg in msgs {
            errs.push(FieldError::invalid(
                &index("spec.finalizers", i),
                Value::from(f),
                msg,
            ));
        }
    }
    errs
}

pub(super) fn validate_node(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let cidr = obj
        .pointer("/spec/podCIDR")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !cidr.is_empty() {
        let ok = cidr.split_once('/').is_some_and(|(ip, bits)| {
            ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok()
        });
        if !ok {
            errs.push(FieldError::invalid(
                "spec.podCIDRs[0]",
                Value::from(cidr),
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ));
        }
    }
    for (i, t) in obj
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = index("spec.taints", i);
        match s(t, "effect") {
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            "" => errs.push(FieldError::required(&child(&p, "effect"), "")),
            other => errs.push(FieldError::not_supported(
                &child(&p, "effect"),
                Value::from(other),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
        for msg in super::names::is_qualified_name(s(t, "key")) {
            errs.push(FieldError::invalid(
                &child(&p, "key"),
                Value::from(s(t, "key")),
                msg,
            ));
        }
    }
    errs
}

/// Legacy (core/v1) Event rules for events without `eventTime`: the involved object's
/// namespace must match the event's.
pub(super) fn validate_event(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let involved_ns = obj
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let has_event_time = obj.get("eventTime").is_some_and(|t| !t.is_null());
    let mismatch = if has_event_time {
        involved_ns.is_empty() && ns != "default" && ns != "kube-system"
    } else if involved_ns.is_empty() {
        !ns.is_empty() && ns != "default"
    } else {
        ns != involved_ns
    };
    if mismatch {
        errs.push(FieldError::invalid(
            "involvedObject.namespace",
            Value::from(involved_ns),
            "does not match event.namespace",
        ));
    }
    if has_event_time {
        for field in ["reportingInstance", "action", "reason"] {
            if s(obj, field).is_empty() {
                errs.push(FieldError::required(field, ""));
            }
        }
        if s(obj, "reportingComponent").is_empty() && s(obj, "reportingController").is_empty() {
            errs.push(FieldError::required("source", ""));
        }
    }
    errs
}

pub(super) fn validate_pvc(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = spec_of(obj);
    let modes = spec.get("accessModes").and_then(Value::as_array);
    if modes.is_none_or(Vec::is_empty) && spec.get("dataSource").is_none() {
        errs.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    for m in modes.into_iter().flatten() {
        let m = m.as_str().unwrap_or("");
        const MODES: &[&str] = &[
            "ReadOnlyMany",
            "ReadWriteMany",
            "ReadWriteOnce",
            "ReadWriteOncePod",
        ];
        if !MODES.contains(&m) {
            errs.push(FieldError::not_supported(
                "spec.accessModes",
                Value::from(m),
                MODES,
            ));
        }
    }
    match spec.pointer("/resources/requests/storage") {
        None => errs.push(FieldError::required("spec.resources[storage]", "")),
        Some(q) => {
            let parsed = match q {
                Value::String(s) => crate::quantity::Quantity::parse(s).ok(),
                Value::Number(n) => crate::quantity::Quantity::parse(&n.to_string()).ok(),
                _ => None,
            };
            match parsed {
                Some(q) if q.is_negative() => errs.push(FieldError::invalid(
                    "spec.resources.requests[storage]",
                    Value::from(q.to_string()),
                    IS_NEGATIVE_ERROR_MSG,
                )),
                Some(q) if q.nano_value() == 0 => errs.push(FieldError::invalid(
                    "spec.resources.requests[storage]",
                    Value::from("0"),
                    "must be greater than zero",
                )),
                Some(_) => {}
                None => errs.push(FieldError::invalid(
                    "spec.resources.requests[storage]",
                    q.clone(),
                    crate::quantity::QuantityError::Format.to_string(),
                )),
            }
        }
    }
    errs
}

pub(super) fn validate_lease(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = spec_of(obj);
    if let Some(d) = spec.get("leaseDurationSeconds").and_then(Value::as_i64) {
        if d <= 0 {
            errs.push(FieldError::invalid(
                "spec.leaseDurationSeconds",
                Value::from(d),
                "must be greater than 0",
            ));
        }
    }
    non_negative(
        spec,
        "/leaseTransitions",
        "spec.leaseTransitions",
        &mut errs,
    );
    errs
}
