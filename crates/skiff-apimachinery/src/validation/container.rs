//! Container probe, handler and resource checks (`validateProbe`, `validateHandler`,
//! `ValidateContainerResourceRequirements`).

use serde_json::{Map, Value};

use super::names::{is_qualified_name, is_valid_port_num, IS_NEGATIVE_ERROR_MSG};
use super::pod::{arr, present, s, validate_port_num_or_name};
use super::{child, key, FieldError};
use crate::quantity::Quantity;

/// `validateProbe` (+ the liveness/startup rule that `successThreshold` is 1).
pub(super) fn validate_probe(
    probe: Option<&Value>,
    path: &str,
    success_must_be_one: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(probe) = probe.filter(|p| p.is_object()) else {
        return errs;
    };
    errs.extend(validate_handler(probe, path, false));
    for field in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        if let Some(n) = probe.get(field).and_then(Value::as_i64).filter(|n| *n < 0) {
            errs.push(FieldError::invalid(
                &child(path, field),
                Value::from(n),
                IS_NEGATIVE_ERROR_MSG,
            ));
        }
    }
    if let Some(n) = probe
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .filter(|n| *n <= 0)
    {
        errs.push(FieldError::invalid(
            &child(path, "terminationGracePeriodSeconds"),
            Value::from(n),
            "must be greater than 0",
        ));
    }
    if success_must_be_one {
        let n = probe
            .get("successThreshold")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if n != 1 {
            errs.push(FieldError::invalid(
                &child(path, "successThreshold"),
                Value::from(n),
                "must be 1",
            ));
        }
    } else if present(probe, "terminationGracePeriodSeconds") {
        let n = probe
            .get("terminationGracePeriodSeconds")
            .cloned()
            .unwrap_or(Value::Null);
        errs.push(FieldError::invalid(
            &child(path, "terminationGracePeriodSeconds"),
            n,
            "must not be set for readinessProbes",
        ));
    }
    errs
}

/// `validateHandler`: exactly one of exec, httpGet, tcpSocket, grpc (sleep for lifecycle).
fn validate_handler(h: &Value, path: &str, lifecycle: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let kinds: &[&str] = if lifecycle {
        &["exec", "httpGet", "tcpSocket", "sleep"]
    } else {
        &["exec", "httpGet", "tcpSocket", "grpc"]
    };
    let mut n = 0;
    for kind in kinds.iter().filter(|k| present(h, k)) {
        let p = child(path, kind);
        if n > 0 {
            errs.push(FieldError::forbidden(
                &p,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        n += 1;
        let v = &h[*kind];
        match *kind {
            "exec" if arr(v, "command").is_empty() => {
                errs.push(FieldError::required(&child(&p, "command"), ""))
            }
            "httpGet" => {
                if s(v, "path").is_empty() {
                    errs.push(FieldError::required(&child(&p, "path"), ""));
                }
                errs.extend(validate_port_num_or_name(v.get("port"), &child(&p, "port")));
                let scheme = s(v, "scheme");
                if scheme != "HTTP" && scheme != "HTTPS" {
                    errs.push(FieldError::not_supported(
                        &child(&p, "scheme"),
                        Value::from(scheme),
                        &["HTTP", "HTTPS"],
                    ));
                }
            }
            "tcpSocket" => {
                errs.extend(validate_port_num_or_name(v.get("port"), &child(&p, "port")))
            }
            "grpc" => {
                let port = v.get("port").and_then(Value::as_i64).unwrap_or(0);
                for msg in is_valid_port_num(port) {
                    errs.push(FieldError::invalid(
                        &child(&p, "port"),
                        Value::from(port),
                        msg,
                    ));
                }
            }
            _ => {}
        }
    }
    if n == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    errs
}

/// A quantity in JSON: upstream accepts strings and plain numbers.
fn quantity_of(v: &Value) -> Option<Result<Quantity, crate::quantity::QuantityError>> {
    match v {
        Value::String(s) => Some(Quantity::parse(s)),
        Value::Number(n) => Some(Quantity::parse(&n.to_string())),
        _ => None,
    }
}

/// Native resources (no domain, or a `kubernetes.io` domain) except huge pages may be
/// overcommitted, so their requests may be lower than their limits.
fn overcommit_allowed(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    native && !name.starts_with("hugepages-")
}

fn validate_resource_name(name: &str, path: &str, errs: &mut Vec<FieldError>) {
    for msg in is_qualified_name(name) {
        errs.push(FieldError::invalid(path, Value::from(name), msg));
    }
    if !name.contains('/') {
        let standard = matches!(name, "cpu" | "memory" | "ephemeral-storage")
            || name.starts_with("hugepages-");
        if !standard {
            errs.push(FieldError::invalid(
                path,
                Value::from(name),
                "must be a standard resource for containers",
            ));
        }
    }
}

/// `ValidateContainerResourceRequirements`: names, non-negative quantities, request ≤ limit.
pub(super) fn validate_resources(res: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(res) = res else { return errs };
    let empty = Map::new();
    let limits = res
        .get("limits")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let requests = res
        .get("requests")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let lim_path = child(path, "limits");
    let req_path = child(path, "requests");
    let mut parsed_limits = Vec::new();
    for (name, raw) in limits {
        let p = key(&lim_path, name);
        validate_resource_name(name, &p, &mut errs);
        if let Some(q) = check_quantity(raw, &p, &mut errs) {
            parsed_limits.push((name.as_str(), q));
        }
    }
    for (name, raw) in requests {
        let p = key(&req_path, name);
        validate_resource_name(name, &p, &mut errs);
        let Some(q) = check_quantity(raw, &p, &mut errs) else {
            continue;
        };
        match parsed_limits.iter().find(|(n, _)| *n == name) {
            Some((_, limit)) if q != *limit && !overcommit_allowed(name) => {
                errs.push(FieldError::invalid(
                    &req_path,
                    Value::from(q.to_string()),
                    format!("must be equal to {name} limit of {limit}"),
                ))
            }
            Some((_, limit)) if q.nano_value() > limit.nano_value() => {
                errs.push(FieldError::invalid(
                    &req_path,
                    Value::from(q.to_string()),
                    format!("must be less than or equal to {name} limit of {limit}"),
                ))
            }
            None if !overcommit_allowed(name) => errs.push(FieldError::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            )),
            _ => {}
        }
    }
    errs
}

/// Parses a quantity and reports negatives; malformed ones are reported with upstream's
/// parse message (upstream rejects them while decoding, with a 400 rather than a 422).
fn check_quantity(raw: &Value, path: &str, errs: &mut Vec<FieldError>) -> Option<Quantity> {
    match quantity_of(raw) {
        Some(Ok(q)) => {
            if q.is_negative() {
                errs.push(FieldError::invalid(
                    path,
                    Value::from(q.to_string()),
                    IS_NEGATIVE_ERROR_MSG,
                ));
            }
            Some(q)
        }
        Some(Err(e)) => {
            errs.push(FieldError::invalid(path, raw.clone(), e.to_string()));
            None
        }
        None => {
            errs.push(FieldError::invalid(
                path,
                raw.clone(),
                crate::quantity::QuantityError::Format.to_string(),
            ));
            None
        }
    }
}
