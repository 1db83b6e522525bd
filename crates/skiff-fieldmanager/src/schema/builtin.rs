//! The built-in kinds' schema: a static table (`builtin.txt`) of every type of the GA API
//! groups in Kubernetes 1.33, with upstream's list types, list-map keys, atomic maps and
//! field defaults as upstream's structured-merge-diff schema for those types has them
//! (the same facts as `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type` and the patch-strategy fallbacks in the OpenAPI v3 spec).
//!
//! Format, one line each: `T <name>` opens a struct (flags `atomic`, `elem=<type>`), or
//! `T <name> =<type>` names a non-struct type; ` <field> <type> [=<json default>]` is a
//! field of the struct above. A type is `s:<scalar>`, `deduced`, `atomicany`, a type name,
//! `L<atomic|set|map:k1,k2> <item type>` or `M<sep|atomic> <value type>` (`_` for spaces
//! in flags).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::{Atom, Field, ListType, Schema, TypeId, ATOMIC, DEDUCED, SCALAR};

const TABLE: &str = include_str!("builtin.txt");

/// API groups whose kinds are in the table, by the package name upstream files them under.
const GROUPS: &[(&str, &str)] = &[
    ("", "core"),
    ("admissionregistration.k8s.io", "admissionregistration"),
    ("apps", "apps"),
    ("autoscaling", "autoscaling"),
    ("batch", "batch"),
    ("certificates.k8s.io", "certificates"),
    ("coordination.k8s.io", "coordination"),
    ("discovery.k8s.io", "discovery"),
    ("events.k8s.io", "events"),
    ("flowcontrol.apiserver.k8s.io", "flowcontrol"),
    ("networking.k8s.io", "networking"),
    ("node.k8s.io", "node"),
    ("policy", "policy"),
    ("rbac.authorization.k8s.io", "rbac"),
    ("scheduling.k8s.io", "scheduling"),
    ("storage.k8s.io", "storage"),
];

/// The table's name for a built-in kind (`apps/v1`, `Deployment` → `apps.v1.Deployment`),
/// or `None` when the kind is not a built-in of the table (custom resources).
pub fn builtin_type_name(api_version: &str, kind: &str) -> Option<String> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let package = GROUPS.iter().find(|(g, _)| *g == group)?.1;
    let name = format!("{package}.{version}.{kind}");
    table().lookup(&name).map(|_| name)
}

fn table() -> &'static Schema {
    static TABLE_SCHEMA: OnceLock<Schema> = OnceLock::new();
    TABLE_SCHEMA.get_or_init(|| parse(TABLE))
}

impl Schema {
    /// The schema of a built-in kind, or `None` for kinds not in the table (use
    /// [`Schema::from_openapi_v3`] or [`Schema::deduced`] for those).
    pub fn builtin(api_version: &str, kind: &str) -> Option<Schema> {
        let name = builtin_type_name(api_version, kind)?;
        table().rooted_at(&name)
    }
}

/// A struct being read: its id, fields so far, `elem` and `atomic` flags.
type OpenStruct = (TypeId, HashMap<String, Field>, Option<TypeId>, bool);

/// Parses the table. The table is ours and tested, so a malformed line is skipped rather
/// than failing at run time.
fn parse(text: &str) -> Schema {
    let mut schema = Schema::with_base();
    // First pass: an id per named type, so fields can refer to types defined later.
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("T ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            let id = schema.push(Atom::Scalar);
            schema.name(name, id);
        }
    }
    let mut current: Option<OpenStruct> = None;
    let finish = |schema: &mut Schema, cur: Option<OpenStruct>| {
        if let Some((id, fields, elem, atomic)) = cur {
            schema.set(
                id,
                Atom::Map {
                    fields,
                    elem,
                    atomic,
                },
            );
        }
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("T ") {
            finish(&mut schema, current.take());
            let mut words = rest.split_whitespace();
            let name = words.next().unwrap_or_default();
            let Some(id) = schema.lookup(name) else {
                continue;
            };
            let mut elem = None;
            let mut atomic = false;
            let mut alias = None;
            for w in words {
                if w == "atomic" {
                    atomic = true;
                } else if let Some(t) = w.strip_prefix("elem=") {
                    elem = Some(parse_type(&mut schema, &mut t.split('_')));
                } else if let Some(t) = w.strip_prefix('=') {
                    alias = Some(parse_type(&mut schema, &mut t.split('_')));
                }
            }
            match alias {
                Some(t) => {
                    let atom = schema.atom(t).clone();
                    schema.set(id, atom);
                }
                None => current = Some((id, HashMap::new(), elem, atomic)),
            }
        } else if let Some(rest) = line.strip_prefix(' ') {
            let (decl, default) = match rest.split_once(" =") {
                Some((d, json)) => (d, serde_json::from_str::<Value>(json).ok()),
                None => (rest, None),
            };
            let mut words = decl.split_whitespace();
            let Some(name) = words.next() else { continue };
            let ty = parse_type(&mut schema, &mut words);
            if let Some((_, fields, _, _)) = current.as_mut() {
                fields.insert(name.to_owned(), Field { ty, default });
            }
        }
    }
    finish(&mut schema, current.take());
    schema
}

fn parse_type<'a>(schema: &mut Schema, words: &mut impl Iterator<Item = &'a str>) -> TypeId {
    let Some(w) = words.next() else {
        return DEDUCED;
    };
    if w.starts_with("s:") {
        return SCALAR;
    }
    match w {
        "deduced" => return DEDUCED,
        "atomicany" => return ATOMIC,
        _ => {}
    }
    if let Some(rel) = w.strip_prefix('L') {
        let list_type = match rel {
            "set" => ListType::Set,
            "atomic" => ListType::Atomic,
            _ => match rel.strip_prefix("map:") {
                Some(keys) => ListType::Map(keys.split(',').map(str::to_owned).collect()),
                None => ListType::Atomic,
            },
        };
        let elem = parse_type(schema, words);
        return schema.push(Atom::List { elem, list_type });
    }
    if let Some(rel) = w.strip_prefix('M') {
        let elem = parse_type(schema, words);
        return schema.push(Atom::Map {
            fields: HashMap::new(),
            elem: Some(elem),
            atomic: rel == "atomic",
        });
    }
    schema.lookup(w).unwrap_or(DEDUCED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(schema: &'a Schema, ty: TypeId, name: &str) -> &'a Field {
        match schema.atom(ty) {
            Atom::Map { fields, .. } => &fields[name],
            other => panic!("{name}: not a map: {other:?}"),
        }
    }

    fn path_type(schema: &Schema, names: &[&str]) -> TypeId {
        let mut ty = schema.root();
        for n in names {
            ty = match schema.atom(ty) {
                Atom::List { elem, .. } if *n == "[]" => *elem,
                _ => field(schema, ty, n).ty,
            };
        }
        ty
    }

    fn list_type(schema: &Schema, names: &[&str]) -> ListType {
        match schema.atom(path_type(schema, names)) {
            Atom::List { list_type, .. } => list_type.clone(),
            other => panic!("{names:?}: not a list: {other:?}"),
        }
    }

    fn keys(k: &[&str]) -> ListType {
        ListType::Map(k.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn every_kind_skiff_serves_is_in_the_table() {
        for (av, kind) in [
            ("v1", "Namespace"),
            ("v1", "Pod"),
            ("v1", "Service"),
            ("v1", "Endpoints"),
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "Event"),
            ("v1", "Node"),
            ("v1", "ServiceAccount"),
            ("v1", "PersistentVolume"),
            ("v1", "PersistentVolumeClaim"),
            ("v1", "ResourceQuota"),
            ("v1", "LimitRange"),
            ("v1", "ReplicationController"),
            ("v1", "PodTemplate"),
            ("apps/v1", "Deployment"),
            ("apps/v1", "ReplicaSet"),
            ("apps/v1", "StatefulSet"),
            ("apps/v1", "DaemonSet"),
            ("apps/v1", "ControllerRevision"),
            ("batch/v1", "Job"),
            ("batch/v1", "CronJob"),
            ("coordination.k8s.io/v1", "Lease"),
            ("discovery.k8s.io/v1", "EndpointSlice"),
            ("events.k8s.io/v1", "Event"),
            ("rbac.authorization.k8s.io/v1", "Role"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("networking.k8s.io/v1", "Ingress"),
            ("networking.k8s.io/v1", "IngressClass"),
            ("networking.k8s.io/v1", "NetworkPolicy"),
            ("policy/v1", "PodDisruptionBudget"),
            ("autoscaling/v2", "HorizontalPodAutoscaler"),
            ("scheduling.k8s.io/v1", "PriorityClass"),
            ("storage.k8s.io/v1", "StorageClass"),
        ] {
            assert!(Schema::builtin(av, kind).is_some(), "{av} {kind}");
        }
        assert!(Schema::builtin("example.com/v1", "Pod").is_none());
        assert!(Schema::builtin("v1", "NoSuchKind").is_none());
    }

    #[test]
    fn pod_spec_lists_are_keyed_as_upstream() {
        let s = Schema::builtin("v1", "Pod").unwrap();
        let c = ["spec", "containers", "[]"];
        assert_eq!(list_type(&s, &["spec", "containers"]), keys(&["name"]));
        assert_eq!(list_type(&s, &["spec", "initContainers"]), keys(&["name"]));
        assert_eq!(
            list_type(&s, &["spec", "ephemeralContainers"]),
            keys(&["name"])
        );
        assert_eq!(
            list_type(&s, &[&c[..], &["ports"]].concat()),
            keys(&["containerPort", "protocol"])
        );
        assert_eq!(list_type(&s, &[&c[..], &["env"]].concat()), keys(&["name"]));
        assert_eq!(
            list_type(&s, &[&c[..], &["envFrom"]].concat()),
            ListType::Atomic
        );
        assert_eq!(
            list_type(&s, &[&c[..], &["volumeMounts"]].concat()),
            keys(&["mountPath"])
        );
        assert_eq!(list_type(&s, &["spec", "volumes"]), keys(&["name"]));
        assert_eq!(list_type(&s, &["spec", "tolerations"]), ListType::Atomic);
        assert_eq!(
            list_type(&s, &["spec", "imagePullSecrets"]),
            keys(&["name"])
        );
        assert_eq!(list_type(&s, &["spec", "hostAliases"]), keys(&["ip"]));
        assert_eq!(
            list_type(&s, &["spec", "topologySpreadConstraints"]),
            keys(&["topologyKey", "whenUnsatisfiable"])
        );
        assert_eq!(list_type(&s, &["spec", "resourceClaims"]), keys(&["name"]));
        assert_eq!(list_type(&s, &["spec", "readinessGates"]), ListType::Atomic);
        let port = path_type(&s, &[&c[..], &["ports", "[]"]].concat());
        assert_eq!(
            field(&s, port, "protocol").default,
            Some(Value::from("TCP"))
        );
    }

    #[test]
    fn metadata_service_selectors_and_data_are_as_upstream() {
        let s = Schema::builtin("v1", "Service").unwrap();
        assert_eq!(
            list_type(&s, &["spec", "ports"]),
            keys(&["port", "protocol"])
        );
        assert_eq!(list_type(&s, &["metadata", "finalizers"]), ListType::Set);
        assert_eq!(
            list_type(&s, &["metadata", "ownerReferences"]),
            keys(&["uid"])
        );
        let d = Schema::builtin("apps/v1", "Deployment").unwrap();
        let sel = path_type(&d, &["spec", "selector"]);
        assert!(
            matches!(d.atom(sel), Atom::Map { atomic: true, .. }),
            "LabelSelector is atomic"
        );
        assert_eq!(
            list_type(&d, &["spec", "template", "spec", "containers"]),
            keys(&["name"])
        );
        let cm = Schema::builtin("v1", "ConfigMap").unwrap();
        assert!(matches!(
            cm.atom(path_type(&cm, &["data"])),
            Atom::Map { atomic: false, .. }
        ));
        let role = Schema::builtin("rbac.authorization.k8s.io/v1", "Role").unwrap();
        assert_eq!(list_type(&role, &["rules"]), ListType::Atomic);
        let node = Schema::builtin("v1", "Node").unwrap();
        assert_eq!(list_type(&node, &["spec", "taints"]), ListType::Atomic);
        assert_eq!(list_type(&node, &["status", "conditions"]), keys(&["type"]));
        let es = Schema::builtin("discovery.k8s.io/v1", "EndpointSlice").unwrap();
        assert_eq!(list_type(&es, &["endpoints"]), ListType::Atomic);
        let job = Schema::builtin("batch/v1", "Job").unwrap();
        assert_eq!(
            list_type(&job, &["spec", "template", "spec", "containers"]),
            keys(&["name"])
        );
    }
}
