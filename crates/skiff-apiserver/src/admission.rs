//! What the server does to an object between decoding and storing it: typed decoding,
//! defaulting, validation, and the registry logic upstream keeps per kind (Pod status on
//! create, Service IP and node port allocation, graceful deletion of pods).

use skiff_apimachinery::network::ClusterNetwork;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use skiff_store::Store;

use crate::error::{ApiError, Cause, Result};
use crate::handler::{materialize, Api};
use crate::request::Params;
use crate::resources::{Registry, ResourceInfo};

const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

/// Per-kind admission state: the allocators for Service IPs and node ports.
pub struct Admission {
    allocations: Arc<Mutex<Allocations>>,
    /// The service network ClusterIPs come from.
    network: ClusterNetwork,
}

#[derive(Default)]
struct Allocations {
    ips: HashSet<Ipv4Addr>,
    node_ports: HashSet<i64>,
}

/// Allocations made for an object that is not stored yet; released unless committed.
pub struct Reservation {
    allocations: Arc<Mutex<Allocations>>,
    ips: Vec<Ipv4Addr>,
    node_ports: Vec<i64>,
    committed: bool,
}

impl Reservation {
    pub fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.committed {
            let mut a = lock(&self.allocations);
            for ip in &self.ips {
                a.ips.remove(ip);
            }
            for port in &self.node_ports {
                a.node_ports.remove(port);
            }
        }
    }
}

fn lock(a: &Mutex<Allocations>) -> std::sync::MutexGuard<'_, Allocations> {
    a.lock().unwrap_or_else(|p| p.into_inner())
}

fn service_ips(svc: &Value) -> impl Iterator<Item = Ipv4Addr> + '_ {
    let spec = &svc["spec"];
    spec["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&spec["clusterIP"]))
        .filter_map(|v| v.as_str()?.parse().ok())
}

fn node_ports(svc: &Value) -> impl Iterator<Item = i64> + '_ {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64())
}

impl Admission {
    /// Rebuilds the allocators from the stored Services, so allocations survive restarts.
    pub fn load(store: &dyn Store, registry: &Registry) -> Result<Admission> {
        let mut allocations = Allocations::default();
        if let Some(services) = registry.get("", "v1", "services") {
            for kv in store.list(&services.key(None, None), None, None)?.items {
                let svc = materialize(&kv)?;
                allocations.ips.extend(service_ips(&svc));
                allocations.node_ports.extend(node_ports(&svc));
            }
        }
        Ok(Admission {
            allocations: Arc::new(Mutex::new(allocations)),
            network: ClusterNetwork::default(),
        })
    }

    /// Typed round trip, then upstream defaulting. Wrong types are a 400; unknown fields
    /// and the body's duplicate fields fail under `fieldValidation=Strict`, become
    /// `Warning`s under `Warn` (the default) and are dropped silently under `Ignore`.
    pub fn decode(&self, r: &ResourceInfo, obj: Value, p: &Params) -> Result<Value> {
        let cannot = |detail: String| {
            ApiError::BadRequest(format!(
                "{} in version \"{}\" cannot be handled as a {}: {detail}",
                r.kind, r.version, r.kind
            ))
        };
        let mut obj = match (r.decode, &r.custom) {
            (Some(decode), _) => {
                let decoded = decode(&obj).map_err(|e| cannot(e.to_string()))?;
                let unknown = decoded
                    .unknown_fields
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""));
                report_problems(p, unknown, &cannot)?;
                decoded.value
            }
            (None, Some(custom)) => {
                let mut obj = obj;
                let mut problems = decode_object_meta(&mut obj).map_err(cannot)?;
                if let Some(schema) = &custom.structural {
                    problems.extend(schema.prune(&mut obj));
                    schema.apply_defaults(&mut obj);
                }
                let unknown = problems.iter().map(|f| format!("unknown field \"{f}\""));
                report_problems(p, unknown, &cannot)?;
                obj
            }
            (None, None) => obj,
        };
        drop_empty_metadata(&mut obj);
        skiff_apimachinery::defaults::apply_defaults(&r.group, &r.kind, &mut obj);
        Ok(obj)
    }

    /// Registry logic on create: initial status as upstream's strategies set it.
    pub fn on_create(
        &self,
        _api: &Api,
        r: &ResourceInfo,
        p: &Params,
        obj: &mut Value,
    ) -> Result<()> {
        use skiff_apimachinery::defaults;
        match (r.group.as_str(), r.kind.as_str()) {
            ("", "Pod") => defaults::prepare_pod_create(obj),
            ("", "Secret") => defaults::fold_secret_string_data(obj),
            ("apps", "DaemonSet") => defaults::prepare_daemonset_create(obj),
            ("batch", "Job") => {
                let uid = crate::object::meta_str(obj, "uid")
                    .unwrap_or_default()
                    .to_owned();
                defaults::generate_job_selector(obj, &uid);
            }
            ("", "Namespace") => {
                obj["status"] = json!({"phase": "Active"});
                let finalizers = obj["spec"]["finalizers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if !finalizers.iter().any(|f| f == crate::namespace::FINALIZER) {
                    let mut finalizers = finalizers;
                    finalizers.push(json!(crate::namespace::FINALIZER));
                    obj["spec"]["finalizers"] = json!(finalizers);
                }
            }
            ("", "Node") => {}
            ("", "PersistentVolumeClaim") | ("", "PersistentVolume") => {
                obj["status"] = json!({"phase": "Pending"});
                // upstream's StorageObjectInUseProtection admission plugin.
                let protection = if r.kind == "PersistentVolume" {
                    "kubernetes.io/pv-protection"
                } else {
                    "kubernetes.io/pvc-protection"
                };
                let mut all = crate::object::finalizers(obj);
                if !all.iter().any(|f| f == protection) {
                    all.push(protection.to_string());
                    obj["metadata"]["finalizers"] = json!(all);
                }
            }
            ("", "Service") => obj["status"] = json!({"loadBalancer": {}}),
            (crate::certificates::GROUP, crate::certificates::KIND) => {
                crate::certificates::prepare_create(obj, &p.user)
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => crate::crd::prepare_create(obj),
            _ if r.status_subresource => {
                if let Some(m) = obj.as_object_mut() {
                    m.remove("status");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Allocates what a new object needs from shared pools (Service IPs, node ports).
    pub fn reserve(&self, r: &ResourceInfo, obj: &mut Value) -> Result<Reservation> {
        let mut reservation = Reservation {
            allocations: self.allocations.clone(),
            ips: vec![],
            node_ports: vec![],
            committed: false,
        };
        if (r.group.as_str(), r.kind.as_str()) != ("", "Service") {
            return Ok(reservation);
        }
        let name = crate::object::name(obj).unwrap_or_default().to_owned();
        let mut a = lock(&self.allocations);
        let spec_type = obj["spec"]["type"]
            .as_str()
            .unwrap_or("ClusterIP")
            .to_owned();
        if spec_type != "ExternalName" {
            let requested = obj["spec"]["clusterIP"].as_str().unwrap_or("").to_owned();
            let ip = match requested.as_str() {
                "None" => None,
                "" => Some(free_ip(&self.network, &a).ok_or_else(|| {
                    ApiError::Internal("failed to allocate a serviceIP: range is full".into())
                })?),
                s => {
                    let ip: Ipv4Addr = s.parse().map_err(|_| invalid_ip(r, &name, s))?;
                    // Upstream's allocator errors (ErrNotInRange, ErrAllocated), reported on
                    // spec.clusterIPs with Go's %#v of the list.
                    let why = if !self.network.in_service_net(ip) {
                        Some(format!(
                            "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                            self.network.service_cidr()
                        ))
                    } else if a.ips.contains(&ip) {
                        Some("provided IP is already allocated".to_string())
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        return Err(ApiError::invalid(
                            r,
                            &name,
                            vec![Cause {
                                reason: "FieldValueInvalid".into(),
                                message: format!(
                                    "Invalid value: []string{{\"{s}\"}}: failed to allocate IP {ip}: {why}"
                                ),
                                field: "spec.clusterIPs".into(),
                            }],
                        ));
                    }
                    Some(ip)
                }
            };
            if let Some(ip) = ip {
                a.ips.insert(ip);
                reservation.ips.push(ip);
                obj["spec"]["clusterIP"] = json!(ip.to_string());
                obj["spec"]["clusterIPs"] = json!([ip.to_string()]);
            } else {
                obj["spec"]["clusterIPs"] = json!(["None"]);
            }
        }
        if matches!(spec_type.as_str(), "NodePort" | "LoadBalancer") {
            if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
                for port in ports {
                    let wanted = port["nodePort"].as_i64();
                    let chosen = match wanted {
                        Some(p) if !a.node_ports.contains(&p) => p,
                        Some(p) => {
                            return Err(ApiError::invalid(
                                r,
                                &name,
                                vec![Cause {
                                    reason: "FieldValueInvalid".into(),
                                    message: format!(
                                        "Invalid value: {p}: provided port is already allocated"
                                    ),
                                    field: "spec.ports[0].nodePort".into(),
                                }],
                            ))
                        }
                        None => NODE_PORTS
                            .clone()
                            .find(|p| !a.node_ports.contains(p))
                            .ok_or_else(|| ApiError::Internal("node port range is full".into()))?,
                    };
                    a.node_ports.insert(chosen);
                    reservation.node_ports.push(chosen);
                    port["nodePort"] = json!(chosen);
                }
            }
        }
        Ok(reservation)
    }

    /// Registry logic on update: fields the server assigned stay assigned.
    pub fn on_update(
        &self,
        r: &ResourceInfo,
        subresource: Option<&str>,
        old: &Value,
        new: &mut Value,
    ) -> Result<()> {
        use skiff_apimachinery::defaults;
        match (r.group.as_str(), r.kind.as_str()) {
            ("apps", "DaemonSet") if subresource.is_none() => {
                defaults::prepare_daemonset_update(new, old)
            }
            ("", "Service") => {
                // Only the main resource's strategy drops them; a status write keeps spec.
                if subresource.is_none() {
                    defaults::drop_service_type_dependent_fields(new, old);
                }
                defaults::carry_over_service_allocations(new, old);
            }
            ("", "Secret") => defaults::fold_secret_string_data(new),
            ("apiextensions.k8s.io", "CustomResourceDefinition") if subresource.is_none() => {
                crate::crd::prepare_update(new)
            }
            _ => {}
        }
        Ok(())
    }

    /// Upstream validation; any error is a 422 naming the fields. Custom resources are
    /// held to their CRD's schema, and CRDs' schemas to the structural rules.
    pub fn validate(&self, r: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Result<()> {
        let errors = skiff_apimachinery::validation::validate(&r.group, &r.kind, obj, old);
        let mut causes: Vec<Cause> = errors
            .iter()
            .map(|e| Cause {
                reason: e.kind.reason().to_owned(),
                message: e.body(),
                field: e.field.clone(),
            })
            .collect();
        match (&r.custom, r.group.as_str(), r.kind.as_str()) {
            (Some(custom), _, _) => {
                if let Some(schema) = &custom.structural {
                    // On update an error in a value left unchanged is forgiven (ratcheting).
                    let changed = |e: &&skiff_schema::FieldError| {
                        old.is_none_or(|old| !schema.ratchets(&e.field, obj, old))
                    };
                    causes.extend(schema.validate(obj).iter().filter(changed).map(|e| Cause {
                        reason: e.kind.reason().to_owned(),
                        message: e.body(),
                        field: e.field.clone(),
                    }));
                    causes.extend(custom.rules.validate(schema, obj, old));
                }
            }
            (None, "apiextensions.k8s.io", "CustomResourceDefinition") => {
                causes.extend(crate::crd::validate_schemas(obj))
            }
            (None, crate::certificates::GROUP, crate::certificates::KIND) => causes.extend(
                crate::certificates::validate(obj, old)
                    .iter()
                    .map(|e| Cause {
                        reason: e.kind.reason().to_owned(),
                        message: e.body(),
                        field: e.field.clone(),
                    }),
            ),
            (None, "admissionregistration.k8s.io", kind) => {
                causes.extend(crate::policy::check::validate_expressions(kind, obj, old))
            }
            _ => {}
        }
        if causes.is_empty() {
            return Ok(());
        }
        let name = crate::object::name(obj).unwrap_or_default().to_owned();
        Err(ApiError::invalid(r, &name, causes))
    }

    /// The validation of a write to a Pod's `ephemeralcontainers` subresource
    /// (`ValidatePodEphemeralContainersUpdate`); any error is a 422 as [`Self::validate`].
    pub fn validate_ephemeral_containers(
        &self,
        r: &ResourceInfo,
        new: &Value,
        old: &Value,
    ) -> Result<()> {
        let errors =
            skiff_apimachinery::validation::validate_pod_ephemeral_containers_update(new, old);
        if errors.is_empty() {
            return Ok(());
        }
        let causes = errors
            .iter()
            .map(|e| Cause {
                reason: e.kind.reason().to_owned(),
                message: e.body(),
                field: e.field.clone(),
            })
            .collect();
        let name = crate::object::name(new).unwrap_or_default().to_owned();
        Err(ApiError::invalid(r, &name, causes))
    }

    /// Returns to the shared pools what an update let go of (node ports of a Service that
    /// became a ClusterIP, ...), once the update is stored.
    pub fn on_updated(&self, r: &ResourceInfo, old: &Value, new: &Value) {
        if (r.group.as_str(), r.kind.as_str()) == ("", "Service") {
            let kept_ips: HashSet<_> = service_ips(new).collect();
            let kept_ports: HashSet<i64> = node_ports(new).collect();
            let mut a = lock(&self.allocations);
            for ip in service_ips(old).filter(|ip| !kept_ips.contains(ip)) {
                a.ips.remove(&ip);
            }
            for port in node_ports(old).filter(|p| !kept_ports.contains(p)) {
                a.node_ports.remove(&port);
            }
        }
    }

    /// Returns what a deleted object held in the shared pools.
    pub fn on_deleted(&self, r: &ResourceInfo, obj: &Value) {
        if (r.group.as_str(), r.kind.as_str()) == ("", "Service") {
            let mut a = lock(&self.allocations);
            for ip in service_ips(obj) {
                a.ips.remove(&ip);
            }
            for port in node_ports(obj) {
                a.node_ports.remove(&port);
            }
        }
    }
}

fn invalid_ip(r: &ResourceInfo, name: &str, s: &str) -> ApiError {
    ApiError::invalid(
        r,
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: \"{s}\": must be a valid IP address"),
            field: "spec.clusterIPs[0]".into(),
        }],
    )
}

/// A free ClusterIP, neither the network's nor its last address, nor one reserved for the
/// `kubernetes` Service and cluster DNS (so neither is handed out at random).
fn free_ip(net: &ClusterNetwork, a: &Allocations) -> Option<Ipv4Addr> {
    let reserved = [net.kubernetes_service_ip(), net.dns_service_ip()];
    let hosts = (1u32 << (32 - u32::from(net.service_prefix.clamp(8, 30)))) - 2;
    // Start at a random offset so a deleted Service's IP is not handed out again at once.
    let start = (uuid::Uuid::new_v4().as_u128() % u128::from(hosts)) as u32;
    (0..hosts).find_map(|i| {
        let ip = net.service_ip((start + i) % hosts + 1)?;
        (!reserved.contains(&ip) && ip.octets()[3] != 255 && !a.ips.contains(&ip)).then_some(ip)
    })
}

/// Every list and map of ObjectMeta is `omitempty` upstream: an emptied one (labels `{}`,
/// the last owner reference removed) is not stored, so clients that test for presence see
/// what they would on upstream.
fn drop_empty_metadata(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|_, v| match v {
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        });
    }
}

/// The deletion grace period a pod gets, or None when it goes at once: unscheduled or
/// finished pods, and an explicit zero, are deleted immediately, as upstream.
pub fn grace_period(r: &ResourceInfo, obj: &Value, requested: Option<i64>) -> Option<i64> {
    if (r.group.as_str(), r.kind.as_str()) != ("", "Pod") {
        return None;
    }
    let scheduled = obj["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !scheduled || finished {
        return None;
    }
    let grace = requested
        .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30);
    // A negative period means the shortest graceful one, as upstream's pod strategy.
    match grace {
        0 => None,
        g if g < 0 => Some(1),
        g => Some(g),
    }
}

/// Unknown or duplicate fields, handled per `fieldValidation`: an error under `Strict`,
/// `Warning`s under `Warn` (the default), nothing under `Ignore`. A YAML body's repeated
/// keys lead, as go-yaml's one error (`yaml: unmarshal errors:` and a line per key) when
/// strict and as a warning per line otherwise, as upstream.
fn report_problems(
    p: &Params,
    unknown: impl Iterator<Item = String>,
    cannot: &dyn Fn(String) -> ApiError,
) -> Result<()> {
    let rest = unknown.chain(
        p.duplicate_fields
            .iter()
            .map(|f| format!("duplicate field \"{f}\"")),
    );
    match crate::options::FieldValidation::of(p) {
        crate::options::FieldValidation::Strict => {
            let problems: Vec<String> = crate::strict::yaml_error(&p.yaml_duplicates)
                .into_iter()
                .chain(rest)
                .collect();
            if !problems.is_empty() {
                return Err(cannot(format!(
                    "strict decoding error: {}",
                    problems.join(", ")
                )));
            }
        }
        crate::options::FieldValidation::Warn => {
            for problem in p.yaml_duplicates.iter().cloned().chain(rest) {
                p.warn(problem);
            }
        }
        crate::options::FieldValidation::Ignore => {}
    }
    Ok(())
}

/// A custom resource's `metadata` through its typed form, as upstream coerces it: a wrong
/// type fails the decode, unknown fields are dropped and returned (`metadata.foo`).
pub(crate) fn decode_object_meta(obj: &mut Value) -> std::result::Result<Vec<String>, String> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let Some(meta) = obj.get("metadata") else {
        return Ok(vec![]);
    };
    let typed: ObjectMeta = serde_path_to_error::deserialize(meta)
        .map_err(|e| format!("metadata.{}: {}", e.path(), e.inner()))?;
    let normalised = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    const FIELDS: [&str; 15] = [
        "annotations",
        "creationTimestamp",
        "deletionGracePeriodSeconds",
        "deletionTimestamp",
        "finalizers",
        "generateName",
        "generation",
        "labels",
        "managedFields",
        "name",
        "namespace",
        "ownerReferences",
        "resourceVersion",
        "selfLink",
        "uid",
    ];
    let unknown: Vec<String> = meta
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| !v.is_null() && !FIELDS.contains(&k.as_str()))
        .map(|(k, _)| format!("metadata.{k}"))
        .collect();
    obj["metadata"] = normalised;
    Ok(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emptied_metadata_lists_and_maps_are_not_stored() {
        let mut obj = serde_json::json!({"metadata": {"name": "a", "labels": {}, "ownerReferences": [],
            "finalizers": [], "annotations": {"k": "v"}}});
        drop_empty_metadata(&mut obj);
        assert_eq!(
            obj,
            serde_json::json!({"metadata": {"name": "a", "annotations": {"k": "v"}}})
        );
    }

    #[test]
    fn free_ips_skip_reserved_and_allocated_addresses() {
        let mut a = Allocations::default();
        let net = ClusterNetwork::default();
        for _ in 0..1000 {
            let ip = free_ip(&net, &a).unwrap();
            assert!(net.in_service_net(ip), "{ip}");
            assert!(ip != net.kubernetes_service_ip() && ip != net.dns_service_ip());
            assert!(a.ips.insert(ip), "{ip} handed out twice");
        }
    }
}
