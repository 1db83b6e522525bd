//! LimitRange admission, pure, as upstream's LimitRanger plugin
//! (plugin/pkg/admission/limitranger): container defaults (`default`, `defaultRequest`)
//! filled into pods, and `min`, `max` and `maxLimitRequestRatio` checked for containers,
//! pods and PersistentVolumeClaims with upstream's messages.

use serde_json::{json, Map, Value};

use crate::quantity::Quantity;
use crate::quota::{parse_list, pod_total, ResourceList};

/// The pod annotation that records what LimitRanger filled in.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

fn items<'a>(ranges: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    ranges
        .iter()
        .flat_map(|r| r["spec"]["limits"].as_array().into_iter().flatten())
        .filter(move |i| i["type"] == kind)
}

/// Fills each container's missing limits and requests from the `Container` items'
/// `default` and `defaultRequest` (upstream's `mergeContainerResources`), and records
/// what was set in the `kubernetes.io/limit-ranger` annotation. Returns true if the pod
/// changed.
pub fn apply_defaults(ranges: &[Value], pod: &mut Value) -> bool {
    let mut limits = Map::new();
    let mut requests = Map::new();
    for item in items(ranges, "Container") {
        for (field, into) in [("default", &mut limits), ("defaultRequest", &mut requests)] {
            if let Some(m) = item[field].as_object() {
                into.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
    if limits.is_empty() && requests.is_empty() {
        return false;
    }
    let mut notes = Vec::new();
    for (field, kind) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        let Some(containers) = pod["spec"][field].as_array_mut() else {
            continue;
        };
        for c in containers {
            let name = c["name"].as_str().unwrap_or_default().to_owned();
            let mut set = |which: &str, defaults: &Map<String, Value>| -> Vec<String> {
                if !c["resources"].is_object() {
                    c["resources"] = json!({});
                }
                if !c["resources"][which].is_object() {
                    c["resources"][which] = json!({});
                }
                let mut added = Vec::new();
                if let Some(current) = c["resources"][which].as_object_mut() {
                    for (k, v) in defaults {
                        if !current.contains_key(k) {
                            current.insert(k.clone(), v.clone());
                            added.push(k.clone());
                        }
                    }
                }
                added.sort();
                added
            };
            let set_requests = set("requests", &requests);
            let set_limits = set("limits", &limits);
            // Upstream leaves the emptied maps out of the wire form.
            for which in ["requests", "limits"] {
                if c["resources"][which].as_object().is_some_and(Map::is_empty) {
                    if let Some(r) = c["resources"].as_object_mut() {
                        r.remove(which);
                    }
                }
            }
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {kind} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!("{} limit for {kind} {name}", set_limits.join(", ")));
            }
        }
    }
    if notes.is_empty() {
        return false;
    }
    if !pod["metadata"]["annotations"].is_object() {
        pod["metadata"]["annotations"] = json!({});
    }
    pod["metadata"]["annotations"][ANNOTATION] =
        json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    true
}

/// Upstream compares in thousandths when every value fits, else in units: both are exact
/// on skiff's nano-precision quantities, so whole quantities are compared.
fn min_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let Some(req) = requests.get(name) else {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if req < enforced {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but request is {req}"
        ));
    }
    match limits.get(name) {
        Some(lim) if lim < enforced => Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but limit is {lim}"
        )),
        _ => None,
    }
}

fn max_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let Some(lim) = limits.get(name) else {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No limit is specified"
        ));
    };
    if lim > enforced {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but limit is {lim}"
        ));
    }
    match requests.get(name) {
        Some(req) if req > enforced => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {req}"
        )),
        _ => None,
    }
}

/// The max for kinds whose limits are not user input (claims): the request is checked.
fn max_request_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
) -> Option<String> {
    match requests.get(name) {
        None => Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No request is specified"
        )),
        Some(req) if req > enforced => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {req}"
        )),
        _ => None,
    }
}

fn ratio_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let req = requests.get(name).filter(|q| !q.is_zero());
    let lim = limits.get(name).filter(|q| !q.is_zero());
    let Some(req) = req else {
        return Some(format!("{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"));
    };
    let Some(lim) = lim else {
        return Some(format!("{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"));
    };
    // Ratios of huge values lose precision in floats as upstream's do; only the display
    // and the comparison use them.
    let observed = lim.nano_value() as f64 / req.nano_value() as f64;
    let allowed = enforced.nano_value() as f64 / 1e9;
    if observed > allowed {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {observed:.6}"
        ));
    }
    None
}

fn check_item(
    item: &Value,
    kind: &str,
    requests: &ResourceList,
    limits: &ResourceList,
    errors: &mut Vec<String>,
) {
    for (name, q) in parse_list(&item["min"]) {
        errors.extend(min_constraint(kind, &name, &q, requests, limits));
    }
    for (name, q) in parse_list(&item["max"]) {
        errors.extend(max_constraint(kind, &name, &q, requests, limits));
    }
    for (name, q) in parse_list(&item["maxLimitRequestRatio"]) {
        errors.extend(ratio_constraint(kind, &name, &q, requests, limits));
    }
}

/// The pod's violations of the `Container` and `Pod` items (upstream's
/// `PodValidateLimitFunc`), in item order, each rendered as upstream.
pub fn validate_pod(ranges: &[Value], pod: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    for range in ranges {
        for item in range["spec"]["limits"].as_array().into_iter().flatten() {
            match item["type"].as_str() {
                Some("Container") => {
                    let spec = &pod["spec"];
                    let containers = spec["containers"].as_array().into_iter().flatten();
                    let inits = spec["initContainers"].as_array().into_iter().flatten();
                    for c in containers.chain(inits) {
                        let requests = parse_list(&c["resources"]["requests"]);
                        let limits = parse_list(&c["resources"]["limits"]);
                        check_item(item, "Container", &requests, &limits, &mut errors);
                    }
                }
                Some("Pod") => {
                    // A sum past the quantity range cannot be under any max.
                    let requests = pod_total(pod, "requests").unwrap_or_default();
                    let limits = pod_total(pod, "limits").unwrap_or_default();
                    check_item(item, "Pod", &requests, &limits, &mut errors);
                }
                _ => {}
            }
        }
    }
    errors
}

/// The claim's violations of the `PersistentVolumeClaim` items: `min` against its requests
/// and `max` against its requests (a claim's limits are not user input).
pub fn validate_claim(ranges: &[Value], pvc: &Value) -> Vec<String> {
    let requests = parse_list(&pvc["spec"]["resources"]["requests"]);
    let mut errors = Vec::new();
    for item in items(ranges, "PersistentVolumeClaim") {
        for (name, q) in parse_list(&item["min"]) {
            errors.extend(min_constraint(
                "PersistentVolumeClaim",
                &name,
                &q,
                &requests,
                &ResourceList::new(),
            ));
        }
        for (name, q) in parse_list(&item["max"]) {
            errors.extend(max_request_constraint(
                "PersistentVolumeClaim",
                &name,
                &q,
                &requests,
            ));
        }
    }
    errors
}

/// Upstream's aggregate of errors: one as itself, several as `[a, b]`.
pub fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(items: Value) -> Vec<Value> {
        vec![json!({"metadata": {"name": "lr"}, "spec": {"limits": items}})]
    }

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn defaults_fill_only_what_containers_leave_out_and_are_recorded() {
        let ranges = range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "512Mi"},
            "defaultRequest": {"cpu": "250m", "memory": "256Mi"}}]));
        let mut p = pod(json!([
            {"name": "bare"},
            {"name": "partial", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}
        ]));
        assert!(apply_defaults(&ranges, &mut p));
        assert_eq!(
            p["spec"]["containers"][0]["resources"],
            json!({"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}})
        );
        assert_eq!(
            p["spec"]["containers"][1]["resources"],
            json!({"requests": {"cpu": "1", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}})
        );
        assert_eq!(
            p["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container bare; cpu, memory limit for container bare; memory request for container partial; memory limit for container partial"
        );
        let mut complete = p.clone();
        assert!(
            !apply_defaults(&ranges, &mut complete),
            "nothing left to fill"
        );
    }

    #[test]
    fn no_container_items_change_nothing() {
        let ranges = range(json!([{"type": "Pod", "max": {"cpu": "1"}}]));
        let mut p = pod(json!([{"name": "a"}]));
        assert!(!apply_defaults(&ranges, &mut p));
        assert_eq!(p, pod(json!([{"name": "a"}])));
    }

    #[test]
    fn pod_validation_table() {
        let c = |req: Value, lim: Value| json!([{"name": "a", "resources": {"requests": req, "limits": lim}}]);
        let cases: Vec<(&str, Value, Value, Vec<&str>)> = vec![
            ("within", json!([{"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}}]),
             c(json!({"cpu": "200m"}), json!({"cpu": "500m"})), vec![]),
            ("limit over max", json!([{"type": "Container", "max": {"cpu": "1"}}]),
             c(json!({"cpu": "1"}), json!({"cpu": "2"})),
             vec!["maximum cpu usage per Container is 1, but limit is 2"]),
            ("no limit under a max", json!([{"type": "Container", "max": {"memory": "1Gi"}}]),
             c(json!({"memory": "1Gi"}), json!({})),
             vec!["maximum memory usage per Container is 1Gi.  No limit is specified"]),
            ("request under min", json!([{"type": "Container", "min": {"cpu": "100m"}}]),
             c(json!({"cpu": "50m"}), json!({"cpu": "1"})),
             vec!["minimum cpu usage per Container is 100m, but request is 50m"]),
            ("no request under a min", json!([{"type": "Container", "min": {"cpu": "100m"}}]),
             c(json!({}), json!({})),
             vec!["minimum cpu usage per Container is 100m.  No request is specified"]),
            ("ratio over", json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]),
             c(json!({"cpu": "100m"}), json!({"cpu": "300m"})),
             vec!["cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000"]),
            ("ratio without request", json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]),
             c(json!({}), json!({"cpu": "300m"})),
             vec!["cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"]),
            ("pod max sums containers",
             json!([{"type": "Pod", "max": {"cpu": "1"}}]),
             json!([{"name": "a", "resources": {"requests": {"cpu": "600m"}, "limits": {"cpu": "600m"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "600m"}, "limits": {"cpu": "600m"}}}]),
             vec!["maximum cpu usage per Pod is 1, but limit is 1200m"]),
            ("several errors in order",
             json!([{"type": "Container", "max": {"cpu": "1", "memory": "1Gi"}}]),
             c(json!({"cpu": "2", "memory": "2Gi"}), json!({"cpu": "2", "memory": "2Gi"})),
             vec!["maximum cpu usage per Container is 1, but limit is 2",
                  "maximum memory usage per Container is 1Gi, but limit is 2Gi"]),
        ];
        for (name, items, containers, want) in cases {
            let got = validate_pod(&range(items), &pod(containers));
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(aggregate(&["a".into(), "b".into()]), "[a, b]");
    }

    #[test]
    fn claims_are_held_to_min_and_max_of_their_requests() {
        let ranges = range(json!([{"type": "PersistentVolumeClaim",
            "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]));
        let claim = |s: &str| json!({"spec": {"resources": {"requests": {"storage": s}}}});
        assert!(validate_claim(&ranges, &claim("5Gi")).is_empty());
        assert_eq!(
            validate_claim(&ranges, &claim("20Gi")),
            vec!["maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
        );
        assert_eq!(
            validate_claim(&ranges, &claim("500Mi")),
            vec!["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
        );
    }
}
