//! The table of resources the server serves: one row per kind, driving every generic
//! handler (REST verbs, discovery, OpenAPI, typed decoding) so no kind has its own copy.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1 as admissionregistration;
use k8s_openapi::api::authentication::v1 as authentication;
use k8s_openapi::api::authorization::v1 as authorization;
use k8s_openapi::api::autoscaling::v1 as autoscaling_v1;
use k8s_openapi::api::certificates::v1 as certificates;
use k8s_openapi::api::node::v1 as node;
use k8s_openapi::api::{
    apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    events::v1 as events, networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
    scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// How a body failed to decode into its typed form.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A field has the wrong JSON type (or an invalid value for its type).
    #[error("{0}")]
    Type(String),
}

/// A typed round trip of one object: the normalised value and the fields the type lacks.
pub struct Decoded {
    pub value: Value,
    pub unknown_fields: Vec<String>,
}

type DecodeFn = fn(&Value) -> Result<Decoded, DecodeError>;
type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// One served resource (plural) of one group-version.
#[derive(Clone)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The URL segment and storage name, e.g. `deployments`.
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    pub scale_subresource: bool,
    /// Whether `metadata.generation` tracks spec changes (upstream strategies that do).
    pub generation: bool,
    /// Storage prefix under `/registry/`; two resources may share it (core and
    /// events.k8s.io Events are one collection in two shapes).
    pub storage: String,
    /// The OpenAPI definition name, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub schema_name: String,
    pub schema: Option<SchemaFn>,
    pub decode: Option<DecodeFn>,
    /// The CRD rules of a custom resource; `None` for built-in kinds.
    pub custom: Option<Arc<crate::crd::Custom>>,
    /// A kind only ever created and answered, never stored (TokenReview,
    /// SelfSubjectReview): discovery and OpenAPI offer `create` alone, and its handler is
    /// not the generic one.
    pub create_only: bool,
}

impl ResourceInfo {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` style name used in upstream error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The store key of one object, or the prefix of a namespace's (or all) objects.
    pub fn key(&self, namespace: Option<&str>, name: Option<&str>) -> String {
        let mut key = format!("/registry/{}/", self.storage);
        if let Some(ns) = namespace.filter(|_| self.namespaced) {
            key.push_str(ns);
            key.push('/');
        }
        if let Some(name) = name {
            key.push_str(name);
        }
        key
    }
}

/// Lets generic code ask a k8s-openapi type whether it is namespaced.
trait Scope {
    const NAMESPACED: bool;
}
impl Scope for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scope for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

fn decode<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Decoded, DecodeError> {
    let typed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        DecodeError::Type(format!("{path}: {}", e.into_inner()))
    })?;
    let normalised = serde_json::to_value(&typed).map_err(|e| DecodeError::Type(e.to_string()))?;
    let mut unknown_fields = Vec::new();
    unknown(value, &normalised, "", &mut unknown_fields);
    Ok(Decoded {
        value: normalised,
        unknown_fields,
    })
}

/// Collects paths present (and non-null) in `original` but dropped by the typed round trip.
fn unknown(original: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(o), Value::Object(t)) => {
            for (k, v) in o {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match t.get(k) {
                    Some(tv) => unknown(v, tv, &child, out),
                    None if !v.is_null() => out.push(child),
                    None => {}
                }
            }
        }
        (Value::Array(o), Value::Array(t)) => {
            for (i, (ov, tv)) in o.iter().zip(t).enumerate() {
                unknown(ov, tv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Extra facts about a built-in kind that its k8s-openapi type does not carry.
struct Extra {
    short: &'static [&'static str],
    all: bool,
    status: bool,
    scale: bool,
    generation: bool,
    create_only: bool,
}

const PLAIN: Extra = Extra {
    short: &[],
    all: false,
    status: false,
    scale: false,
    generation: false,
    create_only: false,
};

/// A review kind: created and answered, never stored.
const CREATE_ONLY: Extra = Extra {
    create_only: true,
    ..PLAIN
};

fn builtin<T>(extra: Extra) -> ResourceInfo
where
    T: k8s_openapi::Resource + DeserializeOwned + Serialize + schemars::JsonSchema,
    T::Scope: Scope,
{
    ResourceInfo {
        group: T::GROUP.into(),
        version: T::VERSION.into(),
        kind: T::KIND.into(),
        plural: T::URL_PATH_SEGMENT.into(),
        singular: T::KIND.to_lowercase(),
        namespaced: <T::Scope as Scope>::NAMESPACED,
        short_names: extra.short.iter().map(|s| s.to_string()).collect(),
        categories: if extra.all {
            vec!["all".into()]
        } else {
            vec![]
        },
        status_subresource: extra.status,
        scale_subresource: extra.scale,
        generation: extra.generation,
        storage: T::URL_PATH_SEGMENT.into(),
        schema_name: T::schema_name().into_owned(),
        schema: Some(|g| g.subschema_for::<T>()),
        decode: Some(decode::<T>),
        custom: None,
        create_only: extra.create_only,
    }
}

fn short(names: &'static [&'static str]) -> Extra {
    Extra {
        short: names,
        ..PLAIN
    }
}

/// Workloads: in `all`, with status, spec generation and (optionally) scale.
fn workload(names: &'static [&'static str], scale: bool) -> Extra {
    Extra {
        short: names,
        all: true,
        status: true,
        scale,
        generation: true,
        create_only: false,
    }
}

/// Every built-in resource, in discovery order.
pub fn builtins() -> Vec<ResourceInfo> {
    let mut events_v1 = builtin::<events::Event>(short(&["ev"]));
    events_v1.storage = "events".into();
    vec![
        builtin::<core::Namespace>(Extra {
            status: true,
            ..short(&["ns"])
        }),
        builtin::<core::Pod>(Extra {
            all: true,
            status: true,
            ..short(&["po"])
        }),
        builtin::<core::Service>(Extra {
            all: true,
            status: true,
            ..short(&["svc"])
        }),
        builtin::<core::Endpoints>(short(&["ep"])),
        builtin::<core::ConfigMap>(short(&["cm"])),
        builtin::<core::Secret>(PLAIN),
        builtin::<core::Event>(short(&["ev"])),
        builtin::<core::Node>(Extra {
            status: true,
            ..short(&["no"])
        }),
        builtin::<core::ServiceAccount>(short(&["sa"])),
        builtin::<core::PersistentVolume>(Extra {
            status: true,
            ..short(&["pv"])
        }),
        builtin::<core::PersistentVolumeClaim>(Extra {
            status: true,
            ..short(&["pvc"])
        }),
        builtin::<core::ResourceQuota>(Extra {
            status: true,
            ..short(&["quota"])
        }),
        builtin::<core::LimitRange>(short(&["limits"])),
        builtin::<core::ReplicationController>(workload(&["rc"], true)),
        builtin::<core::PodTemplate>(PLAIN),
        builtin::<apps::Deployment>(workload(&["deploy"], true)),
        builtin::<apps::ReplicaSet>(workload(&["rs"], true)),
        builtin::<apps::StatefulSet>(workload(&["sts"], true)),
        builtin::<apps::DaemonSet>(workload(&["ds"], false)),
        builtin::<apps::ControllerRevision>(PLAIN),
        builtin::<batch::Job>(workload(&[], false)),
        builtin::<batch::CronJob>(workload(&["cj"], false)),
        builtin::<coordination::Lease>(PLAIN),
        builtin::<discovery::EndpointSlice>(PLAIN),
        events_v1,
        builtin::<rbac::Role>(PLAIN),
        builtin::<rbac::ClusterRole>(PLAIN),
        builtin::<rbac::RoleBinding>(PLAIN),
        builtin::<rbac::ClusterRoleBinding>(PLAIN),
        builtin::<networking::Ingress>(Extra {
            status: true,
            generation: true,
            ..short(&["ing"])
        }),
        builtin::<networking::IngressClass>(PLAIN),
        builtin::<networking::NetworkPolicy>(Extra {
            generation: true,
            ..short(&["netpol"])
        }),
        builtin::<policy::PodDisruptionBudget>(Extra {
            status: true,
            generation: true,
            ..short(&["pdb"])
        }),
        builtin::<autoscaling::HorizontalPodAutoscaler>(workload(&["hpa"], false)),
        // Served beside v2 (which comes first: the preferred version), stored as v2.
        builtin::<autoscaling_v1::HorizontalPodAutoscaler>(workload(&["hpa"], false)),
        builtin::<scheduling::PriorityClass>(short(&["pc"])),
        builtin::<storage::StorageClass>(short(&["sc"])),
        builtin::<apiextensions::CustomResourceDefinition>(Extra {
            status: true,
            generation: true,
            ..short(&["crd", "crds"])
        }),
        builtin::<admissionregistration::MutatingWebhookConfiguration>(Extra {
            generation: true,
            ..PLAIN
        }),
        builtin::<admissionregistration::ValidatingWebhookConfiguration>(Extra {
            generation: true,
            ..PLAIN
        }),
        builtin::<admissionregistration::ValidatingAdmissionPolicy>(Extra {
            status: true,
            generation: true,
            ..PLAIN
        }),
        builtin::<admissionregistration::ValidatingAdmissionPolicyBinding>(Extra {
            generation: true,
            ..PLAIN
        }),
        builtin::<apiregistration::APIService>(Extra {
            status: true,
            ..PLAIN
        }),
        builtin::<authentication::TokenReview>(CREATE_ONLY),
        builtin::<authentication::SelfSubjectReview>(CREATE_ONLY),
        // Answered by authz.rs before routing; rows here so discovery lists them.
        builtin::<authorization::SubjectAccessReview>(CREATE_ONLY),
        builtin::<authorization::SelfSubjectAccessReview>(CREATE_ONLY),
        builtin::<authorization::LocalSubjectAccessReview>(CREATE_ONLY),
        builtin::<authorization::SelfSubjectRulesReview>(CREATE_ONLY),
        builtin::<certificates::CertificateSigningRequest>(Extra {
            status: true,
            ..short(&["csr"])
        }),
        builtin::<node::RuntimeClass>(PLAIN),
        builtin::<storage::CSINode>(PLAIN),
    ]
    .into_iter()
    .chain(crate::metricsapi::resources())
    .collect()
}

/// Lookup of served resources by group, version and plural: the built-in kinds, plus the
/// custom resources of established CRDs, which come and go while the server runs.
///
/// Readers take a snapshot (an `Arc`) under a short read lock, so a CRD being installed
/// never blocks a request for longer than a pointer copy.
pub struct Registry {
    builtin: Vec<Arc<ResourceInfo>>,
    current: std::sync::RwLock<Arc<Snapshot>>,
}

/// One consistent view of every served resource.
#[derive(Default)]
pub struct Snapshot {
    resources: Vec<Arc<ResourceInfo>>,
    by_path: HashMap<(String, String, String), Arc<ResourceInfo>>,
    /// The custom resources of each CRD (by the CRD's name), in the order they were added.
    custom: Vec<(String, Vec<Arc<ResourceInfo>>)>,
    /// Counts the changes to the served custom resources, for caches built from a snapshot
    /// (OpenAPI documents) to tell they are stale.
    pub generation: u64,
}

impl Snapshot {
    fn build(
        builtin: &[Arc<ResourceInfo>],
        custom: Vec<(String, Vec<Arc<ResourceInfo>>)>,
        generation: u64,
    ) -> Snapshot {
        let resources: Vec<Arc<ResourceInfo>> = builtin
            .iter()
            .chain(custom.iter().flat_map(|(_, rs)| rs.iter()))
            .cloned()
            .collect();
        let by_path = resources
            .iter()
            .map(|r| {
                (
                    (r.group.clone(), r.version.clone(), r.plural.clone()),
                    r.clone(),
                )
            })
            .collect();
        Snapshot {
            resources,
            by_path,
            custom,
            generation,
        }
    }
}

impl Registry {
    pub fn new(resources: Vec<ResourceInfo>) -> Registry {
        let builtin: Vec<Arc<ResourceInfo>> = resources.into_iter().map(Arc::new).collect();
        let snapshot = Snapshot::build(&builtin, vec![], 0);
        Registry {
            builtin,
            current: std::sync::RwLock::new(Arc::new(snapshot)),
        }
    }

    /// The current view; cheap, and stable for as long as the caller holds it.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Serves `resources` for the CRD `crd` (replacing what it served before); an empty list
    /// stops serving it.
    pub fn set_custom(&self, crd: &str, resources: Vec<ResourceInfo>) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut custom: Vec<(String, Vec<Arc<ResourceInfo>>)> = current
            .custom
            .iter()
            .filter(|(name, _)| name != crd)
            .cloned()
            .collect();
        if !resources.is_empty() {
            custom.push((
                crd.to_owned(),
                resources.into_iter().map(Arc::new).collect(),
            ));
        }
        let generation = current.generation.wrapping_add(1);
        *current = Arc::new(Snapshot::build(&self.builtin, custom, generation));
    }

    /// What the CRD `crd` serves now, if anything.
    pub fn custom(&self, crd: &str) -> Vec<Arc<ResourceInfo>> {
        self.snapshot()
            .custom
            .iter()
            .find(|(name, _)| name == crd)
            .map(|(_, rs)| rs.clone())
            .unwrap_or_default()
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.snapshot().get(group, version, plural)
    }

    /// The resource serving `kind` in `group`, whichever version.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.snapshot()
            .resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)
            .cloned()
    }

    /// One resource per stored collection (a CRD's versions, and core and events.k8s.io
    /// Events, share one), for work that must visit every stored object once.
    pub fn per_storage(&self) -> Vec<Arc<ResourceInfo>> {
        let mut seen = std::collections::HashSet::new();
        self.all()
            .into_iter()
            .filter(|r| seen.insert(r.storage.clone()))
            .collect()
    }

    /// Every served resource, built-in first.
    pub fn all(&self) -> Vec<Arc<ResourceInfo>> {
        self.snapshot().resources.clone()
    }

    /// Group-versions in discovery order (core first), each with its resources.
    pub fn group_versions(&self) -> Vec<(String, String, Vec<Arc<ResourceInfo>>)> {
        self.snapshot().group_versions()
    }
}

impl Snapshot {
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.by_path
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
            .cloned()
    }

    /// Group-versions in discovery order (core first), each with its resources.
    pub fn group_versions(&self) -> Vec<(String, String, Vec<Arc<ResourceInfo>>)> {
        let mut out: Vec<(String, String, Vec<Arc<ResourceInfo>>)> = Vec::new();
        for r in &self.resources {
            match out
                .iter_mut()
                .find(|(g, v, _)| *g == r.group && *v == r.version)
            {
                Some((_, _, list)) => list.push(r.clone()),
                None => out.push((r.group.clone(), r.version.clone(), vec![r.clone()])),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_round_trip_reports_unknown_fields_with_their_paths() {
        let reg = Registry::new(builtins());
        let deploy = reg.get("apps", "v1", "deployments").unwrap();
        let body = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "bogus": 1},
            "spec": {"replicas": 1, "selector": {}, "template": {"spec": {"containers": [{"name": "a", "imagex": "b"}]}}}
        });
        let decoded = (deploy.decode.unwrap())(&body).unwrap();
        assert_eq!(
            decoded.unknown_fields,
            vec!["metadata.bogus", "spec.template.spec.containers[0].imagex"]
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let reg = Registry::new(builtins());
        let deploy = reg.get("apps", "v1", "deployments").unwrap();
        let body = serde_json::json!({"metadata": {"name": "x"}, "spec": {"replicas": "three", "selector": {}}});
        let Err(DecodeError::Type(msg)) = (deploy.decode.unwrap())(&body) else {
            panic!("expected a type error")
        };
        assert!(msg.starts_with("spec.replicas: invalid type"), "{msg}");
    }

    #[test]
    fn keys_are_scoped_by_namespace_only_for_namespaced_kinds() {
        let reg = Registry::new(builtins());
        let pods = reg.get("", "v1", "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), Some("a")),
            "/registry/pods/default/a"
        );
        assert_eq!(pods.key(None, None), "/registry/pods/");
        let nodes = reg.get("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(Some("default"), Some("n")), "/registry/nodes/n");
    }
}
