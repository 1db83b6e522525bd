//! The DNS index: Services, EndpointSlices and Pods folded, one watch event at a time, into
//! per-service views that a query reads with hash lookups.
//!
//! Cost model: an event for a Service or an EndpointSlice rebuilds the view of that one
//! service (O(its endpoints)); a Pod event is O(1); only a re-list (`replace_*`) touches
//! everything of its kind.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::{DnsConfig, Error};

/// The label that ties an EndpointSlice to its Service (set by the EndpointSlice controller).
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Which pod names `<a-b-c-d>.<ns>.pod.<domain>` answer, as CoreDNS's `pods` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodRecords {
    /// No pod names (CoreDNS's default without a `pods` line).
    Disabled,
    /// Any well-formed dashed IPv4 in any namespace answers, without looking at pods: what
    /// kubeadm's Corefile configures (`pods insecure`), so what workloads expect.
    #[default]
    Insecure,
    /// Only when a pod with that IP exists in that namespace (`pods verified`); the watcher
    /// then also watches Pods.
    Verified,
}

/// Key of a namespaced object: (namespace, name).
type Key = (String, String);

/// A port as SRV queries match it: `_<name>._<protocol>`, both lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Port {
    pub name: String,
    pub protocol: String,
    pub port: u16,
}

/// What a Service's own name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// ClusterIP, NodePort, LoadBalancer: the cluster IP, if it has an IPv4 one yet.
    ClusterIp(Option<Ipv4Addr>),
    /// `clusterIP: None`: the addresses of its endpoints.
    Headless,
    /// A CNAME to `spec.externalName` (None when that is not a valid DNS name).
    ExternalName(Option<Name>),
}

/// The part of a Service spec that DNS reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceSpec {
    kind: Kind,
    ports: Vec<Port>,
    publish_not_ready: bool,
}

/// The part of an EndpointSlice that DNS reads.
#[derive(Debug, Clone)]
struct Slice {
    endpoints: Vec<SliceEndpoint>,
    ports: Arc<[Port]>,
}

#[derive(Debug, Clone)]
struct SliceEndpoint {
    ip: Ipv4Addr,
    hostname: Option<String>,
    ready: bool,
}

/// One published endpoint address of a service, with its DNS name precomputed.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `<label>.<svc>.<ns>.svc.<domain>.`, the SRV target.
    pub target: Name,
    pub ip: Ipv4Addr,
    /// The ports of the slice it came from.
    pub ports: Arc<[Port]>,
}

/// Everything a query about one service needs, derived from its Service and EndpointSlices
/// and rebuilt whenever one of them changes.
#[derive(Debug, Clone)]
pub(crate) struct ServiceView {
    /// `<svc>.<ns>.svc.<domain>.`
    pub fqdn: Name,
    pub kind: Kind,
    pub ports: Vec<Port>,
    /// Ready endpoints (all of them with `publishNotReadyAddresses`), one per (label, IP).
    pub endpoints: Vec<Endpoint>,
    /// Distinct endpoint IPs in first-seen order: the A answer of a headless service.
    pub addrs: Vec<Ipv4Addr>,
    /// Endpoint label → indexes into `endpoints`.
    pub by_label: HashMap<String, Vec<usize>>,
}

/// The index of cluster names. Fed by watch events, read by [`Records::lookup`].
#[derive(Debug)]
pub struct Records {
    /// Lowercase, fully qualified (`cluster.local.`).
    pub(crate) domain: Name,
    pub(crate) pods_mode: PodRecords,
    pub(crate) ttl: u32,
    /// Bumped on every change; the SOA serial, so a client can tell the zone moved.
    pub(crate) serial: u32,
    specs: HashMap<Key, ServiceSpec>,
    /// namespace → service name → view. Two levels so a lookup borrows `&str` labels
    /// instead of building a key, and so `<ns>.svc.<domain>` existence is one lookup.
    pub(crate) views: HashMap<String, HashMap<String, ServiceView>>,
    /// (namespace, service) → slice name → slice. Slices may arrive before their service.
    slices: HashMap<Key, BTreeMap<String, Slice>>,
    /// (namespace, slice name) → service it is filed under, to move it on relabel.
    slice_owner: HashMap<Key, String>,
    /// Cluster IP → (namespace, service), for PTR.
    pub(crate) ptr: HashMap<Ipv4Addr, Key>,
    /// (namespace, pod) → IP, and (namespace, IP) → how many pods have it; only in
    /// [`PodRecords::Verified`] mode.
    pod_ips: HashMap<Key, Ipv4Addr>,
    pub(crate) pods_by_ip: HashMap<(String, Ipv4Addr), u32>,
}

impl Records {
    /// An empty index for `cfg.domain`.
    pub fn new(cfg: &DnsConfig) -> Result<Self, Error> {
        let domain = parse_domain(&cfg.domain)?;
        Ok(Records {
            domain,
            pods_mode: cfg.pods,
            ttl: cfg.ttl,
            serial: 1,
            specs: HashMap::new(),
            views: HashMap::new(),
            slices: HashMap::new(),
            slice_owner: HashMap::new(),
            ptr: HashMap::new(),
            pod_ips: HashMap::new(),
            pods_by_ip: HashMap::new(),
        })
    }

    /// The cluster domain, lowercase and fully qualified.
    pub fn domain(&self) -> &Name {
        &self.domain
    }

    /// Number of services indexed (for logs and benchmarks).
    pub fn service_count(&self) -> usize {
        self.specs.len()
    }

    /// A Service was added or changed.
    pub fn apply_service(&mut self, svc: &Service) {
        let Some(key) = key_of(&svc.metadata) else {
            return;
        };
        let spec = service_spec(svc);
        if self.specs.get(&key) == Some(&spec) {
            return;
        }
        self.specs.insert(key.clone(), spec);
        self.rebuild(&key);
    }

    /// A Service was deleted.
    pub fn delete_service(&mut self, svc: &Service) {
        if let Some(key) = key_of(&svc.metadata) {
            if self.specs.remove(&key).is_some() {
                self.rebuild(&key);
            }
        }
    }

    /// A re-list: the given Services are all there are.
    pub fn replace_services(&mut self, svcs: impl IntoIterator<Item = Service>) {
        let old: HashSet<Key> = self.specs.keys().cloned().collect();
        let mut seen = HashSet::new();
        for svc in svcs {
            if let Some(key) = key_of(&svc.metadata) {
                seen.insert(key);
                self.apply_service(&svc);
            }
        }
        for key in old.difference(&seen) {
            self.specs.remove(key);
            self.rebuild(key);
        }
    }

    /// An EndpointSlice was added or changed. Slices that are not IPv4 or name no service
    /// are treated as deleted (this cluster answers IPv4 only).
    pub fn apply_endpoint_slice(&mut self, slice: &EndpointSlice) {
        let Some(slice_key) = key_of(&slice.metadata) else {
            return;
        };
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .filter(|_| slice.address_type == "IPv4");
        let Some(service) = service else {
            self.remove_slice(&slice_key);
            return;
        };
        if let Some(old) = self.slice_owner.get(&slice_key) {
            if old != service {
                self.remove_slice(&slice_key);
            }
        }
        self.slice_owner.insert(slice_key.clone(), service.clone());
        let svc_key = (slice_key.0.clone(), service.clone());
        self.slices
            .entry(svc_key.clone())
            .or_default()
            .insert(slice_key.1, slice_data(slice));
        self.rebuild(&svc_key);
    }

    /// An EndpointSlice was deleted.
    pub fn delete_endpoint_slice(&mut self, slice: &EndpointSlice) {
        if let Some(key) = key_of(&slice.metadata) {
            self.remove_slice(&key);
        }
    }

    /// A re-list: the given EndpointSlices are all there are.
    pub fn replace_endpoint_slices(&mut self, slices: impl IntoIterator<Item = EndpointSlice>) {
        let old: HashSet<Key> = self.slice_owner.keys().cloned().collect();
        let mut seen = HashSet::new();
        for slice in slices {
            if let Some(key) = key_of(&slice.metadata) {
                seen.insert(key);
                self.apply_endpoint_slice(&slice);
            }
        }
        for key in old.difference(&seen) {
            self.remove_slice(key);
        }
    }

    /// A Pod was added or changed (matters only in [`PodRecords::Verified`] mode).
    pub fn apply_pod(&mut self, pod: &Pod) {
        let Some(key) = key_of(&pod.metadata) else {
            return;
        };
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        if self.pod_ips.get(&key).copied() == ip {
            return;
        }
        self.forget_pod(&key);
        if let Some(ip) = ip {
            *self.pods_by_ip.entry((key.0.clone(), ip)).or_default() += 1;
            self.pod_ips.insert(key, ip);
        }
        self.bump();
    }

    /// A Pod was deleted.
    pub fn delete_pod(&mut self, pod: &Pod) {
        if let Some(key) = key_of(&pod.metadata) {
            self.forget_pod(&key);
            self.bump();
        }
    }

    /// A re-list: the given Pods are all there are.
    pub fn replace_pods(&mut self, pods: impl IntoIterator<Item = Pod>) {
        self.pod_ips.clear();
        self.pods_by_ip.clear();
        for pod in pods {
            self.apply_pod(&pod);
        }
        self.bump();
    }

    fn forget_pod(&mut self, key: &Key) {
        let Some(ip) = self.pod_ips.remove(key) else {
            return;
        };
        let ip_key = (key.0.clone(), ip);
        if let Some(n) = self.pods_by_ip.get_mut(&ip_key) {
            *n -= 1;
            if *n == 0 {
                self.pods_by_ip.remove(&ip_key);
            }
        }
    }

    fn remove_slice(&mut self, slice_key: &Key) {
        let Some(service) = self.slice_owner.remove(slice_key) else {
            return;
        };
        let svc_key = (slice_key.0.clone(), service);
        if let Some(slices) = self.slices.get_mut(&svc_key) {
            slices.remove(&slice_key.1);
            if slices.is_empty() {
                self.slices.remove(&svc_key);
            }
        }
        self.rebuild(&svc_key);
    }

    fn bump(&mut self) {
        self.serial = self.serial.wrapping_add(1).max(1);
    }

    /// Recomputes the view of one service from its spec and slices: O(its endpoints).
    fn rebuild(&mut self, key: &Key) {
        self.bump();
        let (ns, name) = key;
        let old = self.views.get(ns).and_then(|v| v.get(name));
        if let Some(ServiceView {
            kind: Kind::ClusterIp(Some(ip)),
            ..
        }) = old
        {
            let ip = *ip;
            if self.ptr.get(&ip) == Some(key) {
                self.ptr.remove(&ip);
            }
        }
        let Some(spec) = self.specs.get(key) else {
            if let Some(services) = self.views.get_mut(ns) {
                services.remove(name);
                if services.is_empty() {
                    self.views.remove(ns);
                }
            }
            return;
        };
        let Ok(fqdn) = Name::from_ascii(format!("{name}.{ns}.svc"))
            .and_then(|n| n.append_domain(&self.domain))
        else {
            return;
        };
        let mut view = ServiceView {
            fqdn,
            kind: spec.kind.clone(),
            ports: spec.ports.clone(),
            endpoints: Vec::new(),
            addrs: Vec::new(),
            by_label: HashMap::new(),
        };
        let mut seen_ep = HashSet::new();
        let mut seen_ip = HashSet::new();
        for slice in self.slices.get(key).into_iter().flat_map(|s| s.values()) {
            for ep in &slice.endpoints {
                if !(ep.ready || spec.publish_not_ready) {
                    continue;
                }
                let label = match &ep.hostname {
                    Some(h) => h.to_ascii_lowercase(),
                    None => dashed(ep.ip),
                };
                if !seen_ep.insert((label.clone(), ep.ip)) {
                    continue;
                }
                let Ok(target) = Name::from_ascii(&label).and_then(|l| l.append_name(&view.fqdn))
                else {
                    continue;
                };
                if seen_ip.insert(ep.ip) {
                    view.addrs.push(ep.ip);
                }
                view.by_label
                    .entry(label)
                    .or_default()
                    .push(view.endpoints.len());
                view.endpoints.push(Endpoint {
                    target,
                    ip: ep.ip,
                    ports: slice.ports.clone(),
                });
            }
        }
        if let Kind::ClusterIp(Some(ip)) = view.kind {
            self.ptr.insert(ip, key.clone());
        }
        self.views
            .entry(ns.clone())
            .or_default()
            .insert(name.clone(), view);
    }
}

fn parse_domain(domain: &str) -> Result<Name, Error> {
    let invalid = |source| Error::InvalidDomain {
        domain: domain.to_string(),
        source,
    };
    let mut name = Name::from_ascii(domain.trim_end_matches('.')).map_err(invalid)?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Key> {
    let ns = meta.namespace.as_deref().unwrap_or("default");
    let name = meta.name.as_deref()?;
    Some((ns.to_ascii_lowercase(), name.to_ascii_lowercase()))
}

/// `10.0.0.1` → `10-0-0-1`, the label of an endpoint without a hostname and of a pod.
pub(crate) fn dashed(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{a}-{b}-{c}-{d}")
}

fn port(name: Option<&str>, protocol: Option<&str>, port: Option<i32>) -> Option<Port> {
    Some(Port {
        name: name.unwrap_or("").to_ascii_lowercase(),
        protocol: protocol.unwrap_or("TCP").to_ascii_lowercase(),
        port: u16::try_from(port?).ok()?,
    })
}

fn service_spec(svc: &Service) -> ServiceSpec {
    let spec = svc.spec.as_ref();
    let ty = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
    let cluster_ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or("");
    let kind = if ty == "ExternalName" {
        let target = spec
            .and_then(|s| s.external_name.as_deref())
            .and_then(|n| Name::from_ascii(n.trim_end_matches('.')).ok())
            .filter(|n| n.num_labels() > 0)
            .map(|mut n| {
                n.set_fqdn(true);
                n
            });
        Kind::ExternalName(target)
    } else if cluster_ip == "None" {
        Kind::Headless
    } else {
        Kind::ClusterIp(cluster_ip.parse().ok())
    };
    let ports = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| port(p.name.as_deref(), p.protocol.as_deref(), Some(p.port)))
        .collect();
    ServiceSpec {
        kind,
        ports,
        publish_not_ready: spec
            .and_then(|s| s.publish_not_ready_addresses)
            .unwrap_or(false),
    }
}

fn slice_data(slice: &EndpointSlice) -> Slice {
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| port(p.name.as_deref(), p.protocol.as_deref(), p.port))
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .flat_map(|ep| {
            // Unset means ready: the API says consumers should treat unknown as ready.
            let ready = ep.conditions.as_ref().and_then(|c| c.ready) != Some(false);
            let hostname = ep.hostname.clone().filter(|h| !h.is_empty());
            ep.addresses.iter().filter_map(move |a| {
                Some(SliceEndpoint {
                    ip: a.parse().ok()?,
                    hostname: hostname.clone(),
                    ready,
                })
            })
        })
        .collect();
    Slice { endpoints, ports }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RecordType::{A, PTR};

    const HTTP: &[P] = &[("http", "TCP", 80)];
    const NAME: &str = "db.ns.svc.cluster.local.";

    fn addrs(r: &super::Records, name: &str) -> Vec<String> {
        ask(r, name, A)
            .answers
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn slice_before_its_service_is_used_once_the_service_arrives() {
        let mut r = records();
        r.apply_endpoint_slice(&slice(
            "ns",
            "db-1",
            "db",
            HTTP,
            &[("10.0.0.1", None, None)],
        ));
        assert_eq!(ask(&r, NAME, A).rcode, ResponseCode::NXDomain);
        r.apply_service(&headless("ns", "db", false));
        assert_eq!(addrs(&r, NAME), ["10.0.0.1"]);
    }

    #[test]
    fn endpoint_turning_not_ready_leaves_the_answer() {
        let mut r = records();
        r.apply_service(&headless("ns", "db", false));
        r.apply_endpoint_slice(&slice(
            "ns",
            "db-1",
            "db",
            HTTP,
            &[
                ("10.0.0.1", None, Some(true)),
                ("10.0.0.2", None, Some(true)),
            ],
        ));
        assert_eq!(addrs(&r, NAME), ["10.0.0.1", "10.0.0.2"]);
        r.apply_endpoint_slice(&slice(
            "ns",
            "db-1",
            "db",
            HTTP,
            &[
                ("10.0.0.1", None, Some(true)),
                ("10.0.0.2", None, Some(false)),
            ],
        ));
        assert_eq!(addrs(&r, NAME), ["10.0.0.1"]);
        assert_eq!(
            ask(&r, "10-0-0-2.db.ns.svc.cluster.local.", A).rcode,
            ResponseCode::NXDomain
        );
    }

    #[test]
    fn relabelled_slice_moves_to_its_new_service() {
        let mut r = records();
        r.apply_service(&headless("ns", "db", false));
        r.apply_service(&headless("ns", "cache", false));
        r.apply_endpoint_slice(&slice("ns", "s", "db", HTTP, &[("10.0.0.1", None, None)]));
        r.apply_endpoint_slice(&slice(
            "ns",
            "s",
            "cache",
            HTTP,
            &[("10.0.0.1", None, None)],
        ));
        assert_eq!(ask(&r, NAME, A).rcode, ResponseCode::NXDomain);
        assert_eq!(addrs(&r, "cache.ns.svc.cluster.local."), ["10.0.0.1"]);
    }

    #[test]
    fn deleted_slice_and_service_disappear() {
        let mut r = records();
        let s = slice("ns", "db-1", "db", HTTP, &[("10.0.0.1", None, None)]);
        r.apply_service(&headless("ns", "db", false));
        r.apply_endpoint_slice(&s);
        r.delete_endpoint_slice(&s);
        assert_eq!(ask(&r, NAME, A).rcode, ResponseCode::NXDomain);
        r.apply_service(&cluster_ip("ns", "web", "10.96.0.5", HTTP));
        r.delete_service(&cluster_ip("ns", "web", "10.96.0.5", HTTP));
        r.delete_service(&headless("ns", "db", false));
        assert_eq!(
            ask(&r, "web.ns.svc.cluster.local.", A).rcode,
            ResponseCode::NXDomain
        );
        // The namespace has no services left, so its name is gone too.
        assert_eq!(
            ask(&r, "ns.svc.cluster.local.", A).rcode,
            ResponseCode::NXDomain
        );
        assert_eq!(
            ask(&r, "5.0.96.10.in-addr.arpa.", PTR).rcode,
            ResponseCode::Refused
        );
    }

    #[test]
    fn relist_drops_objects_that_are_gone() {
        let mut r = records();
        r.apply_service(&cluster_ip("ns", "old", "10.96.0.9", HTTP));
        r.apply_service(&headless("ns", "db", false));
        r.apply_endpoint_slice(&slice(
            "ns",
            "db-1",
            "db",
            HTTP,
            &[("10.0.0.1", None, None)],
        ));
        r.replace_services(vec![headless("ns", "db", false)]);
        r.replace_endpoint_slices(vec![slice(
            "ns",
            "db-2",
            "db",
            HTTP,
            &[("10.0.0.2", None, None)],
        )]);
        assert_eq!(
            ask(&r, "old.ns.svc.cluster.local.", A).rcode,
            ResponseCode::NXDomain
        );
        assert_eq!(addrs(&r, NAME), ["10.0.0.2"]);
        assert_eq!(r.service_count(), 1);
    }

    #[test]
    fn changed_cluster_ip_moves_its_ptr() {
        let mut r = records();
        r.apply_service(&cluster_ip("ns", "web", "10.96.0.5", HTTP));
        r.apply_service(&cluster_ip("ns", "web", "10.96.0.6", HTTP));
        assert_eq!(
            ask(&r, "5.0.96.10.in-addr.arpa.", PTR).rcode,
            ResponseCode::Refused
        );
        assert_eq!(ask(&r, "6.0.96.10.in-addr.arpa.", PTR).answers.len(), 1);
        assert_eq!(addrs(&r, "web.ns.svc.cluster.local."), ["10.96.0.6"]);
    }

    #[test]
    fn ipv6_and_unlabelled_slices_are_ignored() {
        let mut r = records();
        r.apply_service(&headless("ns", "db", false));
        let mut v6 = slice("ns", "db-6", "db", HTTP, &[("fd00::1", None, None)]);
        v6.address_type = "IPv6".to_string();
        r.apply_endpoint_slice(&v6);
        let mut orphan = slice("ns", "db-x", "db", HTTP, &[("10.0.0.1", None, None)]);
        orphan.metadata.labels = None;
        r.apply_endpoint_slice(&orphan);
        assert_eq!(ask(&r, NAME, A).rcode, ResponseCode::NXDomain);
    }

    #[test]
    fn the_same_address_in_two_slices_is_answered_once() {
        let mut r = records();
        r.apply_service(&headless("ns", "db", false));
        r.apply_endpoint_slice(&slice("ns", "a", "db", HTTP, &[("10.0.0.1", None, None)]));
        r.apply_endpoint_slice(&slice("ns", "b", "db", HTTP, &[("10.0.0.1", None, None)]));
        assert_eq!(addrs(&r, NAME), ["10.0.0.1"]);
    }

    #[test]
    fn serial_moves_on_every_change() {
        let mut r = records();
        let before = r.serial;
        r.apply_service(&headless("ns", "db", false));
        assert_ne!(r.serial, before);
    }
}
