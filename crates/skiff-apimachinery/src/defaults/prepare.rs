//! Object preparation upstream does in registry strategies rather than in defaulting, which
//! the apiserver must call before validation to accept the same writes upstream accepts.

use serde_json::{Map, Value};

/// Upstream's Service `dropTypeDependentFields`: when an update switches a Service to a type
/// that no longer needs a field the server may have filled in (node ports, cluster IPs,
/// `allocateLoadBalancerNodePorts`, `externalTrafficPolicy`, ...) and the client left that
/// field as it was, the field is dropped, so `kubectl patch svc x -p
/// '{"spec":{"type":"ClusterIP"}}'` turns a LoadBalancer back into a ClusterIP Service.
/// Call it before [`carry_over_service_allocations`].
pub fn drop_service_type_dependent_fields(new: &mut Value, old: &Value) {
    let kind = |svc: &Value| {
        svc.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_owned()
    };
    let (old_type, new_type) = (kind(old), kind(new));
    let needs_cluster_ip = |t: &str| t != "ExternalName";
    let needs_node_port = |t: &str| t == "NodePort" || t == "LoadBalancer";
    let externally_accessible = |svc: &Value, t: &str| {
        needs_node_port(t)
            || svc
                .pointer("/spec/externalIPs")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
    };
    let needs_hc_node_port = |svc: &Value, t: &str| {
        t == "LoadBalancer"
            && svc
                .pointer("/spec/externalTrafficPolicy")
                .and_then(Value::as_str)
                == Some("Local")
    };
    let old_spec = old.get("spec").cloned().unwrap_or(Value::Null);
    let same = |new: &Value, key: &str| new.pointer(&format!("/spec/{key}")) == old_spec.get(key);
    let hc_dropped = needs_hc_node_port(old, &old_type)
        && !needs_hc_node_port(new, &new_type)
        && same(new, "healthCheckNodePort");
    let etp_dropped = externally_accessible(old, &old_type)
        && !externally_accessible(new, &new_type)
        && same(new, "externalTrafficPolicy");
    let same_node_ports = {
        let ports = |svc: &Value| -> Vec<Value> {
            svc.pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|p| p["nodePort"].clone()).collect())
                .unwrap_or_default()
        };
        ports(new) == ports(old)
    };
    let same_ips = same(new, "clusterIP") && same(new, "clusterIPs");
    let same_families = same(new, "ipFamilies");
    let same_family_policy = same(new, "ipFamilyPolicy");
    let same_lb_class = same(new, "loadBalancerClass");
    let same_alloc = same(new, "allocateLoadBalancerNodePorts");
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if needs_cluster_ip(&old_type) && !needs_cluster_ip(&new_type) {
        if same_ips {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        if same_families {
            spec.remove("ipFamilies");
        }
        if same_family_policy {
            spec.remove("ipFamilyPolicy");
        }
    }
    if needs_node_port(&old_type) && !needs_node_port(&new_type) && same_node_ports {
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                port.remove("nodePort");
            }
        }
    }
    if hc_dropped {
        spec.remove("healthCheckNodePort");
    }
    if old_type == "LoadBalancer" && new_type != "LoadBalancer" {
        if same_alloc {
            spec.remove("allocateLoadBalancerNodePorts");
        }
        if same_lb_class {
            spec.remove("loadBalancerClass");
        }
    }
    if etp_dropped {
        spec.remove("externalTrafficPolicy");
    }
    // Upstream clears it on any update of a non-LoadBalancer Service; only a change away
    // from LoadBalancer can leave a load balancer's status behind.
    if old_type == "LoadBalancer" && new_type != "LoadBalancer" {
        if let Some(status) = new.get_mut("status").and_then(Value::as_object_mut) {
            status.insert("loadBalancer".into(), Value::Object(Map::new()));
        }
    }
}

/// Upstream's Service `PrepareForUpdate` (`patchAllocatedValues`): a client that replaces a
/// Service without its allocated `clusterIP`/`clusterIPs` or node ports keeps the old ones,
/// so `kubectl replace` of the original manifest does not trip "may not change once set".
pub fn carry_over_service_allocations(new: &mut Value, old: &Value) {
    let needs_cluster_ip =
        |svc: &Value| svc.pointer("/spec/type").and_then(Value::as_str) != Some("ExternalName");
    if !needs_cluster_ip(new) || !needs_cluster_ip(old) {
        return;
    }
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let unset = |spec: &Map<String, Value>, k: &str| match spec.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    for key in ["clusterIP", "clusterIPs"] {
        if unset(spec, key) {
            if let Some(v) = old.pointer(&format!("/spec/{key}")) {
                spec.insert(key.to_string(), v.clone());
            }
        }
    }
    let node_ports = |svc_type: Option<&str>| matches!(svc_type, Some("NodePort" | "LoadBalancer"));
    let new_type = spec.get("type").and_then(Value::as_str).map(str::to_string);
    if !node_ports(new_type.as_deref())
        || !node_ports(old.pointer("/spec/type").and_then(Value::as_str))
    {
        return;
    }
    let old_ports = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            if port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                continue;
            }
            let same = old_ports.iter().find(|o| {
                o.get("port") == port.get("port") && o.get("protocol") == port.get("protocol")
            });
            if let Some(np) = same
                .and_then(|o| o.get("nodePort"))
                .filter(|n| !n.is_null())
            {
                port.insert("nodePort".into(), np.clone());
            }
        }
    }
}

/// Upstream folds a Secret's write-only `stringData` into `data` (base64) when decoding,
/// `stringData` winning on conflicts, and never stores or returns `stringData`.
pub fn fold_secret_string_data(secret: &mut Value) {
    let Some(root) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = root.remove("stringData") else {
        return;
    };
    if string_data.is_empty() {
        return;
    }
    let data = root
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            let s = v.as_str().unwrap_or("");
            data.insert(k, Value::String(base64_encode(s.as_bytes())));
        }
    }
}

/// Upstream's Pod `PrepareForCreate`: whatever status a client sent is replaced by
/// `{phase: Pending, qosClass: <computed>}`.
pub fn prepare_pod_create(pod: &mut Value) {
    let qos = pod_qos_class(pod);
    if let Some(root) = pod.as_object_mut() {
        let mut status = Map::new();
        status.insert("phase".into(), Value::from("Pending"));
        status.insert("qosClass".into(), Value::from(qos));
        root.insert("status".into(), Value::Object(status));
    }
}

/// Upstream's `ComputePodQOS` over regular and init containers: `BestEffort` without any
/// CPU/memory request or limit, `Guaranteed` when every container limits both and requests
/// equal limits, else `Burstable`.
pub fn pod_qos_class(pod: &Value) -> &'static str {
    use std::collections::BTreeMap;
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"].into_iter().flat_map(|k| {
        pod.pointer(&format!("/spec/{k}"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    });
    let positive = |v: &Value| {
        let q = match v {
            Value::String(s) => crate::quantity::Quantity::parse(s).ok(),
            Value::Number(n) => crate::quantity::Quantity::parse(&n.to_string()).ok(),
            _ => None,
        };
        q.map(|q| q.nano_value()).filter(|n| *n > 0)
    };
    for c in containers {
        if let Some(req) = c.pointer("/resources/requests").and_then(Value::as_object) {
            for name in ["cpu", "memory"] {
                if let Some(n) = req.get(name).and_then(positive) {
                    *requests.entry(name).or_insert(0) += n;
                }
            }
        }
        let mut found = 0;
        if let Some(lim) = c.pointer("/resources/limits").and_then(Value::as_object) {
            for name in ["cpu", "memory"] {
                if let Some(n) = lim.get(name).and_then(positive) {
                    *limits.entry(name).or_insert(0) += n;
                    found += 1;
                }
            }
        }
        if found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
        && requests.len() == limits.len()
    {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Standard base64 with padding (the encoding of `[]byte` in Kubernetes JSON).
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Where apps/v1 carries a DaemonSet's template generation (upstream's internal
/// `Spec.TemplateGeneration`, converted to and from this annotation).
pub const DAEMONSET_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// Upstream's DaemonSet `PrepareForCreate`: the template generation starts at 1, whatever
/// the client sent.
pub fn prepare_daemonset_create(ds: &mut Value) {
    set_template_generation(ds, 1);
}

/// Upstream's DaemonSet `PrepareForUpdate`: clients cannot set the template generation; it
/// moves up by one when (and only when) the pod template changes, which is how the
/// controller's `pod-template-generation` label tells old pods from new.
pub fn prepare_daemonset_update(new: &mut Value, old: &Value) {
    let old_generation = old
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DAEMONSET_TEMPLATE_GENERATION))
        .and_then(Value::as_str)
        .and_then(|g| g.parse::<i64>().ok());
    let changed = new.pointer("/spec/template") != old.pointer("/spec/template");
    match (old_generation, changed) {
        (Some(g), true) => set_template_generation(new, g.saturating_add(1)),
        (Some(g), false) => set_template_generation(new, g),
        // Stored before skiff set it: as upstream converts a missing annotation (0).
        (None, true) => set_template_generation(new, 1),
        (None, false) => {
            if let Some(a) = new
                .pointer_mut("/metadata/annotations")
                .and_then(Value::as_object_mut)
            {
                a.remove(DAEMONSET_TEMPLATE_GENERATION);
            }
        }
    }
}

fn set_template_generation(ds: &mut Value, generation: i64) {
    let Some(meta) = ds.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Some(a) = annotations.as_object_mut() {
        a.insert(
            DAEMONSET_TEMPLATE_GENERATION.into(),
            Value::String(generation.to_string()),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn replaced_service_keeps_allocated_ips_and_node_ports() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.5",
            "clusterIPs": ["10.96.0.5"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        let mut new = json!({"spec": {"type": "NodePort",
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]}});
        carry_over_service_allocations(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.5");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.5"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(new["spec"]["ports"][1].get("nodePort"), None);

        let mut external = json!({"spec": {"type": "ExternalName", "externalName": "a.example"}});
        carry_over_service_allocations(&mut external, &old);
        assert_eq!(external["spec"].get("clusterIP"), None);
    }

    #[test]
    fn pod_qos_class_follows_requests_and_limits() {
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "a", "resources": resources}]}});
        let cases = [
            (json!({}), "BestEffort"),
            (json!({"requests": {"cpu": "100m"}}), "Burstable"),
            (
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}),
                "Guaranteed",
            ),
            (
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}),
                "Burstable",
            ),
            (
                json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}),
                "Burstable",
            ),
        ];
        for (resources, want) in cases {
            assert_eq!(pod_qos_class(&pod(resources.clone())), want, "{resources}");
        }
        let mut created =
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running"}});
        prepare_pod_create(&mut created);
        assert_eq!(
            created["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
    }

    #[test]
    fn string_data_folds_into_base64_data() {
        let mut secret = json!({"data": {"a": "b2xk", "keep": "eA=="},
            "stringData": {"a": "new", "user": "admin", "pw": "p4ssw0rd!"}});
        fold_secret_string_data(&mut secret);
        assert_eq!(
            secret,
            json!({"data": {"a": "bmV3", "keep": "eA==", "user": "YWRtaW4=",
            "pw": "cDRzc3cwcmQh"}})
        );
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
    }
}
