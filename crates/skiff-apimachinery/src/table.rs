//! `kubectl get` tables: upstream's column definitions and row cells per kind, so the
//! apiserver can answer `Accept: application/json;as=Table` exactly as upstream prints.
//!
//! Upstream generates server-side tables with `Wide: true`, so [`row_cells`] always returns
//! the wide cells too; kubectl hides columns with `priority > 0` unless `-o wide`. Column
//! descriptions are shortened from upstream's swagger docs (kubectl never shows them).
//!
//! Custom resources whose CRD declares `additionalPrinterColumns` (Gateway API kinds do)
//! should use [`custom_resource_column_definitions`] and [`custom_resource_row_cells`];
//! [`column_definitions`] gives them upstream's fallback NAME, AGE.
//!
//! Built-in kinds without a printer (Role, ClusterRole, LimitRange, CSIStorageCapacity,
//! CustomResourceDefinition, ...) get the default NAME, CREATED AT table. A few upstream
//! tables are irregular and kept so: IPAddress rows carry one cell more than its columns,
//! VolumeAttachment marks two columns with the "name" format, Scale and
//! StorageVersionMigration none.

mod columns;
mod custom;
mod format;
mod pod;
mod rows;

use chrono::{DateTime, Duration, Utc};

pub use custom::{custom_resource_column_definitions, custom_resource_row_cells};
use serde_json::{json, Value};

/// Upstream's `ObjectMeta.name` doc, the description of every Name column.
const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// Upstream's `ObjectMeta.creationTimestamp` doc, the description of every Age column.
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// API groups served by Kubernetes itself. Kinds of these groups without a printer use the
/// apiserver's default table (NAME, CREATED AT); kinds of any other group are custom
/// resources, whose default table is NAME, AGE.
const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "resource.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "internal.apiserver.k8s.io",
    "storagemigration.k8s.io",
];

/// Upstream's `columnDefinitions` for a kind's table.
pub fn column_definitions(group: &str, kind: &str) -> Vec<Value> {
    if let Some(cols) = columns::columns(group, kind) {
        return cols;
    }
    let name = json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESC, "priority": 0});
    let created = |name: &str| json!({"name": name, "type": "date", "format": "", "description": AGE_DESC, "priority": 0});
    if is_built_in(group) {
        vec![name, created("Created At")]
    } else {
        vec![name, created("Age")]
    }
}

fn is_built_in(group: &str) -> bool {
    BUILT_IN_GROUPS.contains(&group)
}

/// The cells of one row, in the order of [`column_definitions`], wide cells included.
pub fn row_cells(group: &str, kind: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    match rows::row(group, kind, obj, now) {
        Some(cells) => cells,
        None if is_built_in(group) => {
            // Upstream's default table convertor prints RFC 3339 in UTC, zero time included.
            let created = parse_time(obj.pointer("/metadata/creationTimestamp"))
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
            vec![json!(str_at(obj, "/metadata/name")), json!(created)]
        }
        None => vec![json!(str_at(obj, "/metadata/name")), json!(age(obj, now))],
    }
}

/// The order in which a list's rows are printed, as indexes into `objects`: upstream
/// prints FlowSchemas by matching precedence, then name; every other kind in list order.
pub fn row_order(group: &str, kind: &str, objects: &[Value]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..objects.len()).collect();
    if (group, kind) == ("flowcontrol.apiserver.k8s.io", "FlowSchema") {
        order.sort_by_key(|&i| {
            let fs = &objects[i];
            (
                int_at(fs, "/spec/matchingPrecedence"),
                str_at(fs, "/metadata/name"),
            )
        });
    }
    order
}

/// Upstream's `duration.HumanDuration`: about two significant figures, tolerating up to a
/// second of clock skew before calling a negative duration invalid.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Go's zero `time.Time`, 0001-01-01T00:00:00Z, in Unix seconds.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Parses a `metav1.Time`/`MicroTime` string; absent, null or malformed count as zero time.
/// Go's zero time (`0001-01-01T00:00:00Z`) counts as zero too, as upstream's `IsZero`.
fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| t.timestamp() != GO_ZERO_TIME_UNIX)
}

/// Upstream's `translateTimestampSince`: `<unknown>` for a zero time.
fn since(v: Option<&Value>, now: DateTime<Utc>) -> String {
    match parse_time(v) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// The AGE cell.
fn age(obj: &Value, now: DateTime<Utc>) -> String {
    since(obj.pointer("/metadata/creationTimestamp"), now)
}

/// The string at a JSON pointer, `""` when absent (Go's zero value).
fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The integer at a JSON pointer, `0` when absent.
fn int_at(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// The array at a JSON pointer, empty when absent.
fn arr_at<'a>(obj: &'a Value, ptr: &str) -> &'a [Value] {
    obj.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upstream_tests;
