//! Pod priority (upstream's `plugin/pkg/admission/priority` and `pkg/apis/scheduling`):
//! the system PriorityClasses every cluster has, and the Priority admission plugin's
//! decisions as pure functions over the stored classes. A pod's `priorityClassName`
//! resolves to `spec.priority` and `spec.preemptionPolicy` when it is created, so the
//! scheduler's queue and the node's graceful shutdown (which read only `spec.priority`)
//! treat a pod naming `system-node-critical` as critical.

use serde_json::{json, Value};

/// Upstream's `HighestUserDefinablePriority`: no class outside the `system-` prefix may
/// exceed it.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;

/// Upstream's `SystemCriticalPriority`, `system-cluster-critical`'s value.
pub const SYSTEM_CRITICAL_PRIORITY: i64 = 2_000_000_000;

/// Upstream's `SystemPriorityClassPrefix`: names reserved for the system classes.
pub const SYSTEM_PRIORITY_CLASS_PREFIX: &str = "system-";

/// Upstream's `DefaultPriorityWhenNoDefaultClassExists`.
pub const DEFAULT_PRIORITY: i64 = 0;

/// The preemption policy of a pod when no class says otherwise (and PriorityClass's
/// default).
pub const PREEMPT_LOWER_PRIORITY: &str = "PreemptLowerPriority";

/// One of the classes created at cluster start (upstream's `SystemPriorityClasses`).
#[derive(Debug, Clone, Copy)]
pub struct SystemClass {
    pub name: &'static str,
    pub value: i64,
    pub description: &'static str,
}

/// `system-node-critical` and `system-cluster-critical`, as upstream creates them.
pub const SYSTEM_CLASSES: [SystemClass; 2] = [
    SystemClass {
        name: "system-node-critical",
        value: SYSTEM_CRITICAL_PRIORITY + 1000,
        description: "Used for system critical pods that must not be moved from their current node.",
    },
    SystemClass {
        name: "system-cluster-critical",
        value: SYSTEM_CRITICAL_PRIORITY,
        description: "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    },
];

impl SystemClass {
    /// The PriorityClass object the server creates at start.
    pub fn object(&self) -> Value {
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": self.name}, "value": self.value,
            "description": self.description})
    }
}

/// Upstream's `IsKnownSystemPriorityClass`: a class named like a system class must have
/// its value and be no global default (descriptions, labels and the rest are free).
pub fn is_known_system_class(name: &str, value: i64, global_default: bool) -> Result<(), String> {
    let Some(spc) = SYSTEM_CLASSES.iter().find(|c| c.name == name) else {
        return Err(format!("{name} is not a known system priority class"));
    };
    if spc.value != value {
        return Err(format!(
            "value of {} PriorityClass must be {}",
            spc.name, spc.value
        ));
    }
    if global_default {
        return Err(format!(
            "globalDefault of {} PriorityClass must be false",
            spc.name
        ));
    }
    Ok(())
}

fn name(class: &Value) -> &str {
    class["metadata"]["name"].as_str().unwrap_or_default()
}

fn value(class: &Value) -> i64 {
    class["value"].as_i64().unwrap_or(0)
}

fn is_global_default(class: &Value) -> bool {
    class["globalDefault"].as_bool().unwrap_or(false)
}

/// Upstream's `getDefaultPriorityClass`: the global default class; should a race have
/// made several, the one of the lowest value.
pub fn default_class(classes: &[Value]) -> Option<&Value> {
    classes
        .iter()
        .filter(|c| is_global_default(c))
        .min_by_key(|c| value(c))
}

/// What a new pod resolves to: the class name to record (empty for none), its priority
/// and its preemption policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub class_name: String,
    pub priority: i64,
    pub preemption_policy: Option<String>,
}

/// Upstream's `getDefaultPriority`: the global default class, else priority 0 with
/// `PreemptLowerPriority`.
pub fn default_priority(classes: &[Value]) -> Resolved {
    match default_class(classes) {
        Some(c) => Resolved {
            class_name: name(c).to_string(),
            priority: value(c),
            preemption_policy: c["preemptionPolicy"].as_str().map(str::to_string),
        },
        None => Resolved {
            class_name: String::new(),
            priority: DEFAULT_PRIORITY,
            preemption_policy: Some(PREEMPT_LOWER_PRIORITY.into()),
        },
    }
}

/// The Priority plugin's admission of a pod create (`admitPod`): the named class (or the
/// global default when none is named) gives `spec.priority` and `spec.preemptionPolicy`;
/// a missing class, or a priority or policy the pod set that differs from the class's,
/// is refused with upstream's reason (answered as 403 Forbidden).
pub fn admit_pod_create(pod: &mut Value, classes: &[Value]) -> Result<(), String> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let named = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let resolved = if named.is_empty() {
        default_priority(classes)
    } else {
        let class = classes
            .iter()
            .find(|c| name(c) == named)
            .ok_or_else(|| format!("no PriorityClass with name {named} was found"))?;
        Resolved {
            class_name: named,
            priority: value(class),
            preemption_policy: class["preemptionPolicy"].as_str().map(str::to_string),
        }
    };
    if resolved.class_name.is_empty() {
        spec.remove("priorityClassName");
    } else {
        spec.insert("priorityClassName".into(), json!(resolved.class_name));
    }
    if let Some(given) = spec.get("priority").filter(|p| !p.is_null()) {
        if given.as_i64() != Some(resolved.priority) {
            return Err(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; \
                 priority admission controller computed {} from the given PriorityClass name",
                resolved.priority
            ));
        }
    }
    spec.insert("priority".into(), json!(resolved.priority));
    if let Some(policy) = resolved.preemption_policy {
        if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str) {
            if given != policy {
                return Err(format!(
                    "the string value of PreemptionPolicy ({given}) must not be provided in pod \
                     spec; priority admission controller computed {policy} from the given \
                     PriorityClass name"
                ));
            }
        }
        spec.insert("preemptionPolicy".into(), json!(policy));
    }
    Ok(())
}

/// The plugin on a pod update: a priority and policy the update leaves out are kept from
/// the stored pod (they were set at create; pod validation forbids changing them), so a
/// `kubectl replace` of the original manifest is not refused for dropping them.
pub fn admit_pod_update(pod: &mut Value, old: &Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["priority", "preemptionPolicy"] {
        let missing = spec.get(field).is_none_or(Value::is_null);
        if let Some(was) = old["spec"].get(field).filter(|v| !v.is_null()) {
            if missing {
                spec.insert(field.into(), was.clone());
            }
        }
    }
}

/// The plugin's validation of a PriorityClass create or update
/// (`validatePriorityClass`): only one global default may exist; marking a class default
/// while another is refused, re-saving the default itself is not.
pub fn validate_class(class: &Value, classes: &[Value], update: bool) -> Result<(), String> {
    if !is_global_default(class) {
        return Ok(());
    }
    match default_class(classes) {
        Some(d) if !update || name(d) != name(class) => Err(format!(
            "PriorityClass {} is already marked as default. Only one default can exist",
            name(d)
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
