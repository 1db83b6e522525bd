//! Pure part of the Endpoints and EndpointSlice controllers: from a Service and the pods
//! of its namespace to the addresses it should list, as upstream's
//! `pkg/controller/endpoint` and `pkg/controller/endpointslice` compute them.

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages an EndpointSlice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// `managed-by` value of slices built from pods (a Service with a selector).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// `managed-by` value of slices mirrored from a selector-less Service's Endpoints.
pub const MIRRORED_BY: &str = "endpointslicemirroring-controller.k8s.io";
/// Label upstream puts on the Endpoints and slices of headless Services.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Upstream's default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The pod selector of a Service; `None` when it has none (its Endpoints are then the
/// user's, and only mirrored into slices).
pub fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
}

/// Whether the Service selects a pod with these labels.
pub fn selects(service: &Service, labels: Option<&BTreeMap<String, String>>) -> bool {
    selector(service).is_some_and(|sel| {
        sel.iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    })
}

fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

fn publish_not_ready(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Whether the pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Upstream's `ShouldPodBeInEndpoints`: no IP or a finished pod that will not restart is
/// never listed; a terminating pod only when `include_terminating`.
fn listable(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    if status
        .and_then(|s| s.pod_ip.as_deref())
        .unwrap_or("")
        .is_empty()
    {
        return false;
    }
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    let restart = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let finished = match restart {
        "Never" => matches!(phase, "Failed" | "Succeeded"),
        "OnFailure" => phase == "Succeeded",
        _ => false,
    };
    !finished && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// Upstream's `FindPort`: the pod port a service port's targetPort names. A name is looked
/// up among the pod's container ports of the same protocol; `None` when it has no such port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec.as_ref()?.containers.iter().find_map(|c| {
                c.ports.iter().flatten().find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

/// One pod's entry: where it is, and whether it takes traffic.
#[derive(Clone, Debug, PartialEq)]
struct Member {
    ip: String,
    hostname: Option<String>,
    node_name: Option<String>,
    target: ObjectReference,
    ready: bool,
    serving: bool,
    terminating: bool,
}

/// A resolved port: (name, port, protocol, appProtocol).
type Port = (String, i32, String, Option<String>);

fn member(service: &Service, pod: &Pod) -> Member {
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let svc_name = service.metadata.name.as_deref();
    // A pod's hostname is published only under the Service its subdomain names.
    let hostname = spec
        .filter(|s| s.subdomain.as_deref().is_some() && s.subdomain.as_deref() == svc_name)
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty());
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let serving = pod_ready(pod);
    Member {
        ip: status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        hostname,
        node_name: spec.and_then(|s| s.node_name.clone()),
        target: ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        },
        ready: publish_not_ready(service) || (serving && !terminating),
        serving,
        terminating,
    }
}

fn ports_of(service: &Service, pod: &Pod) -> Vec<Port> {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_deref());
    ports
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            let target = find_port(pod, p)?;
            Some((
                p.name.clone().unwrap_or_default(),
                target,
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            ))
        })
        .collect()
}

/// Members grouped by their resolved port set (pods of one Service may name ports that
/// resolve differently), each group sorted by IP so output is stable.
fn groups(
    service: &Service,
    pods: &[&Pod],
    include_terminating: bool,
) -> BTreeMap<Vec<Port>, Vec<Member>> {
    let mut out: BTreeMap<Vec<Port>, Vec<Member>> = BTreeMap::new();
    let has_ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    for pod in pods {
        if pod.metadata.namespace != service.metadata.namespace
            || !selects(service, pod.metadata.labels.as_ref())
            || !listable(pod, include_terminating || publish_not_ready(service))
        {
            continue;
        }
        let ports = ports_of(service, pod);
        // A pod that has none of the service's ports is not an endpoint; a portless headless
        // Service still lists its pods (for DNS).
        if ports.is_empty() && (has_ports || !is_headless(service)) {
            continue;
        }
        out.entry(ports).or_default().push(member(service, pod));
    }
    for members in out.values_mut() {
        members.sort_by(|a, b| a.ip.cmp(&b.ip).then(a.target.name.cmp(&b.target.name)));
    }
    out
}

/// The `subsets` of a selector Service's Endpoints: ready pods under `addresses`, the rest
/// under `notReadyAddresses`, terminating pods left out (unless publishNotReadyAddresses).
pub fn subsets(service: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    groups(service, pods, false)
        .into_iter()
        .map(|(ports, members)| {
            let address = |m: &Member| EndpointAddress {
                ip: m.ip.clone(),
                hostname: m.hostname.clone(),
                node_name: m.node_name.clone(),
                target_ref: Some(m.target.clone()),
            };
            let ready: Vec<_> = members.iter().filter(|m| m.ready).map(address).collect();
            let not_ready: Vec<_> = members.iter().filter(|m| !m.ready).map(address).collect();
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol, app_protocol)| EndpointPort {
                            name: (!name.is_empty()).then_some(name),
                            port,
                            protocol: Some(protocol),
                            app_protocol,
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

/// What one EndpointSlice should hold (its metadata is the caller's).
#[derive(Clone, Debug, PartialEq)]
pub struct SliceContent {
    pub ports: Vec<SlicePort>,
    pub endpoints: Vec<Endpoint>,
}

fn slice_port((name, port, protocol, app_protocol): Port) -> SlicePort {
    SlicePort {
        name: Some(name),
        port: Some(port),
        protocol: Some(protocol),
        app_protocol,
    }
}

/// The slices of a selector Service: every listable pod, terminating ones included with
/// their conditions, at most [`MAX_ENDPOINTS_PER_SLICE`] per slice, one port set per slice.
pub fn slices_from_pods(service: &Service, pods: &[&Pod]) -> Vec<SliceContent> {
    let mut out = Vec::new();
    for (ports, members) in groups(service, pods, true) {
        let ports: Vec<SlicePort> = ports.into_iter().map(slice_port).collect();
        for chunk in members.chunks(MAX_ENDPOINTS_PER_SLICE) {
            out.push(SliceContent {
                ports: ports.clone(),
                endpoints: chunk
                    .iter()
                    .map(|m| Endpoint {
                        addresses: vec![m.ip.clone()],
                        conditions: Some(EndpointConditions {
                            ready: Some(m.ready),
                            serving: Some(m.serving),
                            terminating: Some(m.terminating),
                        }),
                        hostname: m.hostname.clone(),
                        node_name: m.node_name.clone(),
                        target_ref: Some(m.target.clone()),
                        ..Endpoint::default()
                    })
                    .collect(),
            });
        }
    }
    out
}

/// The slices mirroring a selector-less Service's hand-written Endpoints, as upstream's
/// EndpointSlice mirroring controller does (addresses ready, notReadyAddresses not).
pub fn slices_from_endpoints(endpoints: &Endpoints) -> Vec<SliceContent> {
    let mut out = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports: Vec<SlicePort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| {
                slice_port((
                    p.name.clone().unwrap_or_default(),
                    p.port,
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    p.app_protocol.clone(),
                ))
            })
            .collect();
        let listed = |a: &EndpointAddress, ready: bool| Endpoint {
            addresses: vec![a.ip.clone()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(ready),
                terminating: Some(false),
            }),
            hostname: a.hostname.clone(),
            node_name: a.node_name.clone(),
            target_ref: a.target_ref.clone(),
            ..Endpoint::default()
        };
        let all: Vec<Endpoint> = subset
            .addresses
            .iter()
            .flatten()
            .map(|a| listed(a, true))
            .chain(
                subset
                    .not_ready_addresses
                    .iter()
                    .flatten()
                    .map(|a| listed(a, false)),
            )
            .collect();
        for chunk in all.chunks(MAX_ENDPOINTS_PER_SLICE) {
            out.push(SliceContent {
                ports: ports.clone(),
                endpoints: chunk.to_vec(),
            });
        }
    }
    out
}

/// A change to the slices of one Service.
#[derive(Clone, Debug, PartialEq)]
pub enum SliceAction {
    Create(SliceContent),
    /// Replace the content of the named slice.
    Update(String, SliceContent),
    Delete(String),
}

/// Matches desired slice contents with the existing slices (by name order, so the same
/// slice keeps being rewritten instead of churning names) and lists only real changes.
pub fn plan_slices(desired: Vec<SliceContent>, existing: &[&EndpointSlice]) -> Vec<SliceAction> {
    let mut existing: Vec<&EndpointSlice> = existing.to_vec();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    // Keep slices whose content is already desired; reuse the others for what is left.
    let mut wanted = desired;
    let mut spare = Vec::new();
    for slice in existing {
        let content = SliceContent {
            ports: slice.ports.clone().unwrap_or_default(),
            endpoints: slice.endpoints.clone(),
        };
        match wanted.iter().position(|w| *w == content) {
            Some(i) => {
                wanted.remove(i);
            }
            None => spare.push(slice.metadata.name.clone().unwrap_or_default()),
        }
    }
    let mut actions = Vec::new();
    let mut spare = spare.into_iter();
    for content in wanted {
        match spare.next() {
            Some(name) => actions.push(SliceAction::Update(name, content)),
            None => actions.push(SliceAction::Create(content)),
        }
    }
    actions.extend(spare.map(SliceAction::Delete));
    actions
}

/// Labels of the Endpoints and slices of a Service: its own, plus upstream's markers.
pub fn labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

/// Whether a slice lists the pod `name`, so a pod that stopped matching can still find the
/// Services it must leave.
pub fn lists_pod(slice: &EndpointSlice, name: &str) -> bool {
    slice
        .endpoints
        .iter()
        .any(|e| e.target_ref.as_ref().and_then(|t| t.name.as_deref()) == Some(name))
}
