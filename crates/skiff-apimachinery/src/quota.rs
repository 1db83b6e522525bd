//! ResourceQuota's arithmetic, as upstream's quota evaluators (pkg/quota/v1/evaluator/core)
//! and the quota admission check (apiserver admission/plugin/resourcequota): what an object
//! uses, which quotas it falls under, and whether a create fits. Pure, so the apiserver's
//! admission and the quota controller count the same way.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::quantity::{Format, Quantity};
use crate::selector::LabelSelector;

/// Quota resource names and their quantities (upstream `ResourceList`), sorted by name so
/// messages list them in upstream's (sorted) order.
pub type ResourceList = BTreeMap<String, Quantity>;

/// What counting or checking an object failed with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// A sum left the range quantities support; the client asked for absurd amounts.
    #[error("quota usage overflows for resource {0}")]
    Overflow(String),
    /// A quota's scope selector cannot be evaluated (upstream's "error matching scopes").
    #[error("error matching scopes of quota {quota}, err: {detail}")]
    Scope { quota: String, detail: String },
    /// The request is refused; the message is upstream's (after `<resource> "name" is
    /// forbidden: `).
    #[error("{0}")]
    Forbidden(String),
}

/// The kind being counted: API group and resource (plural), as quota names address it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub group: &'a str,
    pub resource: &'a str,
}

impl<'a> Resource<'a> {
    pub fn new(group: &'a str, resource: &'a str) -> Resource<'a> {
        Resource { group, resource }
    }

    fn is(&self, group: &str, resource: &str) -> bool {
        self.group == group && self.resource == resource
    }
}

/// `count/pods`, `count/deployments.apps`: the object-count name of any resource.
pub fn object_count_name(r: Resource<'_>) -> String {
    if r.group.is_empty() {
        format!("count/{}", r.resource)
    } else {
        format!("count/{}.{}", r.resource, r.group)
    }
}

/// The kind a `count/<resource>[.<group>]` name counts.
pub fn counted_by(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix("count/")?;
    Some(match rest.split_once('.') {
        Some((resource, group)) => (group.to_owned(), resource.to_owned()),
        None => (String::new(), rest.to_owned()),
    })
}

/// The pre-`count/` names of the core kinds (upstream's legacy object count names).
fn legacy_count_name(r: Resource<'_>) -> Option<&'static str> {
    if !r.group.is_empty() {
        return None;
    }
    Some(match r.resource {
        "pods" => "pods",
        "services" => "services",
        "configmaps" => "configmaps",
        "secrets" => "secrets",
        "replicationcontrollers" => "replicationcontrollers",
        "resourcequotas" => "resourcequotas",
        "persistentvolumeclaims" => "persistentvolumeclaims",
        _ => return None,
    })
}

const POD_COMPUTE: [&str; 11] = [
    "pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "count/pods",
];
const SERVICE_NAMES: [&str; 4] = [
    "services",
    "count/services",
    "services.loadbalancers",
    "services.nodeports",
];
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// An extended resource (`example.com/gpu`): a domain-prefixed name outside kubernetes.io,
/// as upstream's `IsExtendedResourceName`.
fn is_extended(name: &str) -> bool {
    match name.split_once('/') {
        Some((domain, _)) => {
            let native = domain == "kubernetes.io" || domain.ends_with(".kubernetes.io");
            !native && !name.starts_with("requests.")
        }
        None => false,
    }
}

/// Which of the quota resource `names` the evaluator of `r` tracks (upstream's
/// `MatchingResources`).
pub fn matching_resources<'n>(
    r: Resource<'_>,
    names: impl IntoIterator<Item = &'n str>,
) -> Vec<String> {
    let count = object_count_name(r);
    let legacy = legacy_count_name(r);
    names
        .into_iter()
        .filter(|n| {
            if *n == count || Some(*n) == legacy {
                return true;
            }
            if r.is("", "pods") {
                POD_COMPUTE.contains(n)
                    || n.starts_with("hugepages-")
                    || n.starts_with("requests.hugepages-")
                    || n.strip_prefix("requests.").is_some_and(is_extended)
            } else if r.is("", "services") {
                SERVICE_NAMES.contains(n)
            } else if r.is("", "persistentvolumeclaims") {
                *n == "requests.storage"
                    || n.split_once(STORAGE_CLASS_SUFFIX).is_some_and(|(_, res)| {
                        matches!(res, "requests.storage" | "persistentvolumeclaims")
                    })
            } else {
                false
            }
        })
        .map(str::to_owned)
        .collect()
}

/// A `ResourceList` in wire form; entries that are not quantities are skipped (validation
/// refuses them before they are stored).
pub fn parse_list(v: &Value) -> ResourceList {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), Quantity::parse(v.as_str()?).ok()?)))
        .collect()
}

/// A `ResourceList` in wire form.
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, q)| (k.clone(), json!(q.to_string())))
            .collect::<Map<_, _>>(),
    )
}

/// `pods=1,requests.cpu=500m`: upstream's `prettyPrint`, sorted by name.
pub fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn add(a: &ResourceList, b: &ResourceList) -> Result<ResourceList, QuotaError> {
    let mut out = a.clone();
    for (k, v) in b {
        let sum = match out.get(k) {
            Some(cur) => cur
                .checked_add(v)
                .ok_or_else(|| QuotaError::Overflow(k.clone()))?,
            None => *v,
        };
        out.insert(k.clone(), sum);
    }
    Ok(out)
}

fn mask<'a>(list: &ResourceList, names: impl IntoIterator<Item = &'a String>) -> ResourceList {
    names
        .into_iter()
        .filter_map(|n| Some((n.clone(), *list.get(n)?)))
        .collect()
}

/// What one object counts for (upstream's evaluators' `Usage`). `now` decides whether a
/// pod past its deletion grace period still counts.
pub fn usage(r: Resource<'_>, obj: &Value, now: DateTime<Utc>) -> Result<ResourceList, QuotaError> {
    let mut out = ResourceList::new();
    let one = Quantity::from_int(1);
    out.insert(object_count_name(r), one);
    if r.is("", "pods") {
        // Terminal pods keep counting as stored objects (`count/pods`), not as compute.
        if counts_as_compute(obj, now) {
            out = add(&out, &pod_compute_usage(obj)?)?;
        }
        return Ok(out);
    }
    if let Some(legacy) = legacy_count_name(r) {
        out.insert(legacy.to_owned(), one);
    }
    if r.is("", "services") {
        let spec = &obj["spec"];
        let ports = spec["ports"].as_array().map_or(0, Vec::len);
        let ports = i64::try_from(ports).unwrap_or(i64::MAX);
        let mut node_ports = 0;
        let mut balancers = 0;
        match spec["type"].as_str() {
            Some("NodePort") => node_ports = ports,
            Some("LoadBalancer") => {
                balancers = 1;
                // With allocation suppressed only explicit node ports will exist.
                node_ports = if spec["allocateLoadBalancerNodePorts"] == json!(false) {
                    let explicit = spec["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|p| p["nodePort"].as_i64().is_some_and(|n| n != 0))
                        .count();
                    i64::try_from(explicit).unwrap_or(i64::MAX)
                } else {
                    ports
                };
            }
            _ => {}
        }
        out.insert("services.nodeports".into(), Quantity::from_int(node_ports));
        out.insert(
            "services.loadbalancers".into(),
            Quantity::from_int(balancers),
        );
    }
    if r.is("", "persistentvolumeclaims") {
        let class = claim_class(obj);
        if let Some(class) = &class {
            out.insert(
                format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
                one,
            );
        }
        let requested = obj
            .pointer("/spec/resources/requests/storage")
            .and_then(Value::as_str)
            .and_then(|s| Quantity::parse(s).ok());
        // An expansion in progress is charged at the larger of request and allocation.
        let allocated = obj
            .pointer("/status/allocatedResources/storage")
            .and_then(Value::as_str)
            .and_then(|s| Quantity::parse(s).ok());
        let storage = match (requested, allocated) {
            (Some(r), Some(a)) if a > r => Some(a),
            (Some(r), _) => Some(r),
            (None, a) => a,
        };
        if let Some(storage) = storage {
            out.insert("requests.storage".into(), storage);
            if let Some(class) = &class {
                out.insert(
                    format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
                    storage,
                );
            }
        }
    }
    Ok(out)
}

/// A claim's storage class: `spec.storageClassName`, else the beta annotation.
fn claim_class(pvc: &Value) -> Option<String> {
    pvc["spec"]["storageClassName"]
        .as_str()
        .or_else(|| {
            pvc.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
                .and_then(Value::as_str)
        })
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Whether a pod's compute resources count (upstream `QuotaV1Pod`): not once it is
/// Succeeded or Failed, nor once its deletion grace period has run out.
pub fn counts_as_compute(pod: &Value, now: DateTime<Utc>) -> bool {
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    let meta = &pod["metadata"];
    let deletion = meta["deletionTimestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    if let (Some(at), Some(grace)) = (deletion, meta["deletionGracePeriodSeconds"].as_i64()) {
        let until = chrono::Duration::try_seconds(grace)
            .and_then(|g| at.with_timezone(&Utc).checked_add_signed(g));
        if until.is_some_and(|until| now > until) {
            return false;
        }
    }
    true
}

fn container_list(c: &Value, field: &str) -> ResourceList {
    parse_list(&c["resources"][field])
}

/// Keeps, per name, the larger quantity.
fn max_into(acc: &mut ResourceList, other: &ResourceList) {
    for (k, v) in other {
        match acc.get(k) {
            Some(cur) if cur >= v => {}
            _ => {
                acc.insert(k.clone(), *v);
            }
        }
    }
}

/// A pod's effective `requests` or `limits` (upstream `PodRequests`/`PodLimits`): the sum of
/// its containers and sidecars, or the largest init container run beside the sidecars
/// started before it, whichever is more, plus the pod overhead.
pub fn pod_total(pod: &Value, field: &str) -> Result<ResourceList, QuotaError> {
    let spec = &pod["spec"];
    let mut total = ResourceList::new();
    for c in spec["containers"].as_array().into_iter().flatten() {
        total = add(&total, &container_list(c, field))?;
    }
    let mut sidecars = ResourceList::new();
    let mut init_peak = ResourceList::new();
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        let own = container_list(c, field);
        let running = if c["restartPolicy"] == "Always" {
            total = add(&total, &own)?;
            sidecars = add(&sidecars, &own)?;
            sidecars.clone()
        } else {
            add(&own, &sidecars)?
        };
        max_into(&mut init_peak, &running);
    }
    max_into(&mut total, &init_peak);
    let mut overhead = parse_list(&spec["overhead"]);
    if field == "limits" {
        // Overhead raises only limits that are set: an unset limit stays unlimited.
        overhead.retain(|k, _| total.contains_key(k));
    }
    add(&total, &overhead)
}

/// `pods` plus the compute names a pod's requests and limits give (upstream
/// `podComputeUsageHelper`).
fn pod_compute_usage(pod: &Value) -> Result<ResourceList, QuotaError> {
    let requests = pod_total(pod, "requests")?;
    let limits = pod_total(pod, "limits")?;
    Ok(compute_names(&requests, &limits))
}

fn compute_names(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), Quantity::from_int(1));
    for name in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(name) {
            out.insert(name.into(), *q);
            out.insert(format!("requests.{name}"), *q);
        }
        if let Some(q) = limits.get(name) {
            out.insert(format!("limits.{name}"), *q);
        }
    }
    for (name, q) in requests {
        if name.starts_with("hugepages-") {
            out.insert(name.clone(), *q);
            out.insert(format!("requests.{name}"), *q);
        } else if is_extended(name) {
            out.insert(format!("requests.{name}"), *q);
        }
    }
    out
}

/// Names whose presence quota enforces on every container: tracking cpu or memory makes
/// each container state it (upstream's backwards-compatible `Constraints`).
const CONSTRAINED: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// `must specify limits.cpu for: app; requests.memory for: app,sidecar` when a quota
/// tracks compute a container does not state (upstream's pod evaluator `Constraints`).
pub fn constraints(r: Resource<'_>, required: &[String], obj: &Value) -> Result<(), String> {
    if !r.is("", "pods") {
        return Ok(());
    }
    let required: BTreeSet<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|n| CONSTRAINED.contains(n))
        .collect();
    if required.is_empty() {
        return Ok(());
    }
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let spec = &obj["spec"];
    let containers = spec["containers"].as_array().into_iter().flatten();
    let inits = spec["initContainers"].as_array().into_iter().flatten();
    for c in containers.chain(inits) {
        let stated = compute_names(&container_list(c, "requests"), &container_list(c, "limits"));
        for name in &required {
            if !stated.contains_key(*name) {
                let container = c["name"].as_str().unwrap_or_default().to_owned();
                missing.entry(name).or_default().insert(container);
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(name, cs)| {
            format!(
                "{name} for: {}",
                cs.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

/// One scope requirement of a quota: `spec.scopes` entries are `Exists` on that scope.
struct Scope {
    name: String,
    operator: String,
    values: Vec<String>,
}

fn scopes_of(quota: &Value) -> Vec<Scope> {
    let spec = &quota["spec"];
    let plain = spec["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| Scope {
            name: s.as_str().unwrap_or_default().to_owned(),
            operator: "Exists".into(),
            values: vec![],
        });
    let selected = spec["scopeSelector"]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Scope {
            name: e["scopeName"].as_str().unwrap_or_default().to_owned(),
            operator: e["operator"].as_str().unwrap_or_default().to_owned(),
            values: e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        });
    plain.chain(selected).collect()
}

/// A pod with no cpu or memory stated anywhere (QoS class BestEffort).
fn is_best_effort(pod: &Value) -> bool {
    let spec = &pod["spec"];
    let containers = spec["containers"].as_array().into_iter().flatten();
    let inits = spec["initContainers"].as_array().into_iter().flatten();
    !containers.chain(inits).any(|c| {
        ["requests", "limits"].iter().any(|f| {
            let list = container_list(c, f);
            ["cpu", "memory"]
                .iter()
                .any(|n| list.get(*n).is_some_and(|q| !q.is_zero()))
        })
    })
}

/// A pod with an active deadline (scope Terminating).
fn is_terminating(pod: &Value) -> bool {
    pod["spec"]["activeDeadlineSeconds"]
        .as_i64()
        .is_some_and(|s| s >= 0)
}

/// A pod whose affinity terms name other namespaces or a namespace selector.
fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    let affinity = &pod["spec"]["affinity"];
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let a = &affinity[kind];
        let required = a["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten();
        let preferred = a["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| &w["podAffinityTerm"]);
        required.chain(preferred).any(|t| {
            t["namespaces"].as_array().is_some_and(|n| !n.is_empty())
                || !t["namespaceSelector"].is_null()
        })
    })
}

fn pod_matches_scope(pod: &Value, s: &Scope) -> Result<bool, String> {
    Ok(match s.name.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        "PriorityClass" => {
            let class = pod["spec"]["priorityClassName"].as_str().unwrap_or("");
            if s.operator == "Exists" {
                return Ok(!class.is_empty());
            }
            // Upstream matches a label set {PriorityClass: <name>}, the key always present.
            let selector = LabelSelector::from_label_selector(&json!({"matchExpressions": [
                {"key": s.name, "operator": s.operator, "values": s.values}]}))
            .map_err(|e| e.to_string())?;
            let mut labels = Map::new();
            labels.insert(s.name.clone(), json!(class));
            selector.matches(Some(&labels))
        }
        _ => false,
    })
}

/// Whether `quota` applies to the object (upstream's `Matches`): its `status.hard` names
/// something the kind's evaluator tracks and the object is in every scope. Scopes only
/// select pods, so a scoped quota never matches other kinds.
pub fn matches(quota: &Value, r: Resource<'_>, obj: &Value) -> Result<bool, QuotaError> {
    let hard = parse_list(&quota["status"]["hard"]);
    if matching_resources(r, hard.keys().map(String::as_str)).is_empty() {
        return Ok(false);
    }
    for scope in scopes_of(quota) {
        let matched = r.is("", "pods")
            && pod_matches_scope(obj, &scope).map_err(|detail| QuotaError::Scope {
                quota: name_of(quota).to_owned(),
                detail,
            })?;
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}

fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// A quota's new `status.used` after admitting the object.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// Position of the quota in the slice given to [`admit`].
    pub index: usize,
    pub used: ResourceList,
}

/// The admission check of a create (`old` None) or update of `obj` against the
/// namespace's `quotas`, as upstream's quota admission: returns the quotas to charge with
/// their new `status.used`, or the refusal. Trusts `status.used`, as upstream does: the
/// quota controller keeps it true, admission only adds.
pub fn admit(
    quotas: &[Value],
    r: Resource<'_>,
    obj: &Value,
    old: Option<&Value>,
    now: DateTime<Utc>,
) -> Result<Vec<Charge>, QuotaError> {
    let mut interesting = Vec::new();
    for (i, quota) in quotas.iter().enumerate() {
        if !matches(quota, r, obj)? {
            continue;
        }
        let name = name_of(quota);
        let hard = parse_list(&quota["status"]["hard"]);
        let restricted = matching_resources(r, hard.keys().map(String::as_str));
        constraints(r, &restricted, obj)
            .map_err(|e| QuotaError::Forbidden(format!("failed quota: {name}: {e}")))?;
        let used = parse_list(&quota["status"]["used"]);
        let unknown = restricted.iter().any(|n| !used.contains_key(n));
        if unknown {
            return Err(QuotaError::Forbidden(format!(
                "status unknown for quota: {name}, resources: {}",
                restricted.join(",")
            )));
        }
        interesting.push((i, hard, used));
    }
    if interesting.is_empty() {
        return Ok(vec![]);
    }
    let mut delta = usage(r, obj, now)?;
    let negative: Vec<&str> = delta
        .iter()
        .filter(|(_, q)| q.is_negative())
        .map(|(k, _)| k.as_str())
        .collect();
    if !negative.is_empty() {
        return Err(QuotaError::Forbidden(format!(
            "quota usage is negative for resource(s): {}",
            negative.join(",")
        )));
    }
    if let Some(old) = old {
        let before = usage(r, old, now)?;
        for (k, v) in delta.iter_mut() {
            if let Some(prev) = before.get(k) {
                let diff = v
                    .checked_sub(prev)
                    .ok_or_else(|| QuotaError::Overflow(k.clone()))?;
                *v = if diff.is_negative() {
                    Quantity::zero(v.format())
                } else {
                    diff
                };
            }
        }
    }
    delta.retain(|_, q| !q.is_zero());
    if delta.is_empty() {
        return Ok(vec![]);
    }
    let mut charges = Vec::new();
    for (index, hard, used) in interesting {
        let requested = mask(&delta, hard.keys());
        if requested.is_empty() {
            // Nothing this quota limits grows: it keeps its usage and is not written.
            continue;
        }
        let new_used = add(&used, &requested)?;
        let exceeded: Vec<String> = hard
            .iter()
            .filter(|(k, limit)| requested.contains_key(*k) && new_used.get(*k) > Some(limit))
            .map(|(k, _)| k.clone())
            .collect();
        if !exceeded.is_empty() {
            return Err(QuotaError::Forbidden(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                name_of(&quotas[index]),
                pretty(&mask(&requested, &exceeded)),
                pretty(&mask(&used, &exceeded)),
                pretty(&mask(&hard, &exceeded)),
            )));
        }
        charges.push(Charge {
            index,
            used: new_used,
        });
    }
    Ok(charges)
}

/// The kinds whose objects a quota's `hard` names count, for the quota controller.
pub fn counted_kinds(hard: &ResourceList) -> BTreeSet<(String, String)> {
    let mut kinds = BTreeSet::new();
    for name in hard.keys() {
        if let Some(kind) = counted_by(name) {
            kinds.insert(kind);
            continue;
        }
        for (group, resource) in [
            ("", "pods"),
            ("", "services"),
            ("", "persistentvolumeclaims"),
            ("", "configmaps"),
            ("", "secrets"),
            ("", "replicationcontrollers"),
            ("", "resourcequotas"),
        ] {
            let r = Resource::new(group, resource);
            if !matching_resources(r, [name.as_str()]).is_empty() {
                kinds.insert((group.to_owned(), resource.to_owned()));
            }
        }
    }
    kinds
}

/// A quota's true `status.used` (upstream's `CalculateUsage`): every name of `hard`, at
/// zero unless the objects of the namespace that fall under the quota use some. `objects`
/// gives the namespace's objects of a kind, or None when that kind is not known.
pub fn calculate_used<'o>(
    quota: &Value,
    objects: &dyn Fn(&str, &str) -> Option<Vec<&'o Value>>,
    now: DateTime<Utc>,
) -> Result<ResourceList, QuotaError> {
    let hard = parse_list(&quota["spec"]["hard"]);
    let mut used: ResourceList = hard
        .keys()
        .map(|k| (k.clone(), Quantity::zero(Format::DecimalSI)))
        .collect();
    // Matching is decided on `status.hard`, which the controller is about to set to spec.
    let mut as_status = quota.clone();
    as_status["status"]["hard"] = quota["spec"]["hard"].clone();
    for (group, resource) in counted_kinds(&hard) {
        let r = Resource::new(&group, &resource);
        let names = matching_resources(r, hard.keys().map(String::as_str));
        for obj in objects(&group, &resource).into_iter().flatten() {
            if !matches(&as_status, r, obj)? {
                continue;
            }
            let u = usage(r, obj, now)?;
            used = add(&used, &mask(&u, &names))?;
        }
    }
    Ok(used)
}

#[cfg(test)]
mod tests;
