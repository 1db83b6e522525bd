//! Pure part of the service proxy: Services and EndpointSlices in, one nftables script out.
//!
//! The layout follows kube-proxy's nftables mode: a verdict map keyed by
//! `daddr . protocol . port` sends each packet to its service port's chain in one lookup
//! (so cost does not grow with the number of Services), the service chain picks an endpoint
//! chain at random (`numgen random mod N`), and the endpoint chain DNATs. Everything lives in
//! one table, so the proxy owns nothing outside it.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

/// The nftables table (family `ip`) the proxy owns.
pub const TABLE: &str = "skiff-proxy";
/// Packet mark asking for masquerade: a pod reaching itself through its Service would
/// otherwise get its own reply straight back with the wrong source ("hairpin").
const MASQ_MARK: &str = "0x4000";
/// Upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
const DEFAULT_AFFINITY_TIMEOUT: i32 = 10800;

/// What the rules need to know of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node's address: LoadBalancer Services answer on it (as k3s's service LB does).
    pub node_ip: Option<Ipv4Addr>,
    /// This node's pod network (masqueraded without br_netfilter).
    pub pod_cidr: String,
    /// All nodes' pod networks: connections from it to anywhere outside it are not
    /// forwarded (replies to connections from outside are), so pods never reach beyond
    /// the cluster.
    pub cluster_cidr: String,
    /// The service network: a packet still addressed to it after DNAT belongs to no
    /// Service port (or to one the rules do not know yet) and is refused at once.
    pub service_cidr: String,
    /// Whether bridged pod-to-pod packets go through netfilter (`br_netfilter`): when they
    /// do not, replies between pods on the bridge would bypass un-DNAT, so service traffic
    /// from pods is masqueraded instead.
    pub bridge_netfilter: bool,
}

/// One endpoint of a service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// One service port with the endpoints that take its traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// `ns/name:port-name`, for comments and logs.
    pub id: String,
    pub cluster_ip: Ipv4Addr,
    pub protocol: String,
    pub port: u16,
    pub node_port: Option<u16>,
    /// Answer on the node address at `port` (type LoadBalancer).
    pub load_balancer: bool,
    /// Client-IP affinity timeout, when sessionAffinity is ClientIP.
    pub affinity_timeout: Option<i32>,
    pub backends: Vec<Backend>,
}

/// Whether an endpoint takes new connections: ready, or, when no endpoint is, serving while
/// terminating (upstream's ProxyTerminatingEndpoints), so a rollout's last pod still answers.
fn usable_backends(port_name: &str, protocol: &str, slices: &[&EndpointSlice]) -> Vec<Backend> {
    let mut ready = BTreeSet::new();
    let mut terminating = BTreeSet::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && p.protocol.as_deref().unwrap_or("TCP") == protocol
        }) else {
            continue;
        };
        let Some(port) = port.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for e in &slice.endpoints {
            let c = e.conditions.clone().unwrap_or_default();
            let Some(ip) = e.addresses.first().and_then(|a| a.parse().ok()) else {
                continue;
            };
            let backend = Backend { ip, port };
            if c.ready != Some(false) {
                ready.insert(backend);
            } else if c.serving == Some(true) && c.terminating == Some(true) {
                terminating.insert(backend);
            }
        }
    }
    let chosen = if ready.is_empty() { terminating } else { ready };
    chosen.into_iter().collect()
}

/// The proxied ports of every Service: ClusterIP, NodePort and LoadBalancer Services with
/// an IPv4 cluster IP (headless and ExternalName Services have no virtual IP to proxy).
pub fn service_ports(services: &[&Service], slices: &[&EndpointSlice]) -> Vec<ServicePort> {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        if let Some(svc) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
        {
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            by_service.entry((ns, svc.clone())).or_default().push(s);
        }
    }
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let Some(cluster_ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok()) else {
            continue;
        };
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let slices = by_service
            .get(&(ns.clone(), name.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        });
        let load_balancer = spec.type_.as_deref() == Some("LoadBalancer");
        for p in spec.ports.iter().flatten() {
            let port_name = p.name.clone().unwrap_or_default();
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let Ok(port) = u16::try_from(p.port) else {
                continue;
            };
            out.push(ServicePort {
                id: format!("{ns}/{name}:{port_name}"),
                cluster_ip,
                backends: usable_backends(&port_name, &protocol, slices),
                protocol,
                port,
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()),
                load_balancer,
                affinity_timeout,
            });
        }
    }
    out
}

/// A short stable name for a chain or set (nftables names are limited, and Service names
/// may contain characters it would need quoted); the readable id goes in a comment.
fn short(prefix: &str, id: &str) -> String {
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("{prefix}-{h:016x}")
}

fn proto(p: &str) -> &'static str {
    match p {
        "UDP" => "udp",
        "SCTP" => "sctp",
        _ => "tcp",
    }
}

/// The objects one ruleset defines, so the next sync can delete what went away.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub chains: BTreeSet<String>,
    pub sets: BTreeSet<String>,
}

/// A complete ruleset: the script that installs it over `previous`, and what it defines.
///
/// The first sync (`previous == None`) recreates the table; later ones flush and refill the
/// chains and maps in one transaction and keep the affinity sets, so clients keep their
/// endpoint across syncs, as with kube-proxy.
pub fn render(
    node: &NodeConfig,
    ports: &[ServicePort],
    previous: Option<&Names>,
) -> (String, Names) {
    let mut names = Names::default();
    let mut body = String::new();
    let mut service_ips = Vec::new();
    let mut node_ports = Vec::new();
    let mut no_endpoints = Vec::new();
    let mut no_endpoint_node_ports = Vec::new();
    for sp in ports {
        let l4 = proto(&sp.protocol);
        let mut keys = vec![format!("{} . {l4} . {}", sp.cluster_ip, sp.port)];
        if let (true, Some(ip)) = (sp.load_balancer, node.node_ip) {
            keys.push(format!("{ip} . {l4} . {}", sp.port));
        }
        if sp.backends.is_empty() {
            no_endpoints.extend(keys);
            if let Some(np) = sp.node_port {
                no_endpoint_node_ports.push(format!("{l4} . {np}"));
            }
            continue;
        }
        let svc_chain = short("svc", &sp.id);
        for k in keys {
            service_ips.push(format!("{k} : goto {svc_chain}"));
        }
        if let Some(np) = sp.node_port {
            node_ports.push(format!("{l4} . {np} : goto {svc_chain}"));
        }
        let mut svc_rules = Vec::new();
        let mut picks = Vec::new();
        for (i, b) in sp.backends.iter().enumerate() {
            let ep_chain = short("ep", &format!("{}/{}:{}", sp.id, b.ip, b.port));
            let mut ep_rules = vec![format!(
                "ip saddr {} meta mark set meta mark | {MASQ_MARK}",
                b.ip
            )];
            if let Some(timeout) = sp.affinity_timeout {
                let set = short("aff", &format!("{}/{}:{}", sp.id, b.ip, b.port));
                let _ = writeln!(
                    body,
                    "add set ip {TABLE} {set} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
                );
                svc_rules.push(format!("ip saddr @{set} goto {ep_chain}"));
                ep_rules.push(format!("update @{set} {{ ip saddr }}"));
                names.sets.insert(set);
            }
            ep_rules.push(format!("meta l4proto {l4} dnat to {}:{}", b.ip, b.port));
            write_chain(
                &mut body,
                &ep_chain,
                &format!("{} -> {}:{}", sp.id, b.ip, b.port),
                &ep_rules,
            );
            names.chains.insert(ep_chain.clone());
            picks.push(format!("{i} : goto {ep_chain}"));
        }
        svc_rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            picks.len(),
            picks.join(", ")
        ));
        write_chain(&mut body, &svc_chain, &sp.id, &svc_rules);
        names.chains.insert(svc_chain);
    }

    let mut out = String::new();
    match previous {
        None => {
            let _ = writeln!(
                out,
                "add table ip {TABLE}\ndelete table ip {TABLE}\nadd table ip {TABLE}"
            );
        }
        Some(prev) => {
            let _ = writeln!(out, "add table ip {TABLE}");
            for map in ["service-ips", "service-nodeports"] {
                let _ = writeln!(out, "flush map ip {TABLE} {map}");
            }
            for set in ["no-endpoints", "no-endpoint-nodeports"] {
                let _ = writeln!(out, "flush set ip {TABLE} {set}");
            }
            for chain in &prev.chains {
                let _ = writeln!(out, "flush chain ip {TABLE} {chain}");
            }
        }
    }
    // Maps and sets first: the base chains reference them.
    let _ = writeln!(
        out,
        "add map ip {TABLE} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict; }}\n\
         add map ip {TABLE} service-nodeports {{ type inet_proto . inet_service : verdict; }}\n\
         add set ip {TABLE} no-endpoints {{ type ipv4_addr . inet_proto . inet_service; }}\n\
         add set ip {TABLE} no-endpoint-nodeports {{ type inet_proto . inet_service; }}"
    );
    out.push_str(&body);
    let masq_pods = if node.bridge_netfilter {
        String::new()
    } else {
        format!("ip saddr {} ct status dnat masquerade\n", node.pod_cidr)
    };
    let base: [(&str, &str, String); 8] = [
        (
            "services",
            "",
            "ip daddr . meta l4proto . th dport vmap @service-ips\n\
             fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"
                .to_string(),
        ),
        ("nat-prerouting", "type nat hook prerouting priority dstnat; policy accept;", "jump services".into()),
        ("nat-output", "type nat hook output priority -100; policy accept;", "jump services".into()),
        (
            "nat-postrouting",
            "type nat hook postrouting priority srcnat; policy accept;",
            format!("meta mark & {MASQ_MARK} == {MASQ_MARK} meta mark set meta mark ^ {MASQ_MARK} masquerade\n{masq_pods}"),
        ),
        (
            "filter-forward",
            "type filter hook forward priority -110; policy accept;",
            format!(
                "{}{}ip saddr {cidr} ip daddr != {cidr} ct state new drop",
                refuse("ct state new ip daddr . meta l4proto . th dport @no-endpoints"),
                refuse(&format!("ct state new ip daddr {}", node.service_cidr)),
                cidr = node.cluster_cidr,
            ),
        ),
        (
            "filter-output",
            "type filter hook output priority -110; policy accept;",
            "ct state new ip daddr . meta l4proto . th dport @no-endpoints reject".into(),
        ),
        (
            // After the output NAT (-100): a new connection that still goes to a service IP
            // was not DNATed. Only new ones, as kube-proxy's `ct state new` checks: a packet
            // conntrack finds invalid (a stale tuple reused by a client) skips NAT too, and
            // rejecting it would refuse a connection that a retransmitted SYN completes.
            "filter-output-post-nat",
            "type filter hook output priority 0; policy accept;",
            format!("ct state new ip daddr {} reject", node.service_cidr),
        ),
        (
            "filter-input",
            "type filter hook input priority -110; policy accept;",
            format!(
                "{}{}",
                refuse("ct state new ip daddr . meta l4proto . th dport @no-endpoints"),
                refuse("ct state new fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport @no-endpoint-nodeports"),
            ),
        ),
    ];
    for (chain, hook, rules) in &base {
        let _ = writeln!(out, "add chain ip {TABLE} {chain} {{ {hook} }}");
        if previous.is_some() {
            let _ = writeln!(out, "flush chain ip {TABLE} {chain}");
        }
        for rule in rules.lines().filter(|l| !l.trim().is_empty()) {
            let _ = writeln!(out, "add rule ip {TABLE} {chain} {rule}");
        }
    }
    for (name, items) in [
        ("service-ips", &service_ips),
        ("service-nodeports", &node_ports),
        ("no-endpoints", &no_endpoints),
        ("no-endpoint-nodeports", &no_endpoint_node_ports),
    ] {
        if !items.is_empty() {
            let _ = writeln!(
                out,
                "add element ip {TABLE} {name} {{ {} }}",
                items.join(", ")
            );
        }
    }
    if let Some(prev) = previous {
        for chain in prev.chains.difference(&names.chains) {
            let _ = writeln!(out, "delete chain ip {TABLE} {chain}");
        }
        for set in prev.sets.difference(&names.sets) {
            let _ = writeln!(out, "delete set ip {TABLE} {set}");
        }
    }
    (out, names)
}

/// Rules refusing what `matcher` matches: TCP with a reset, anything else with ICMP port
/// unreachable (nft's plain `reject`). A reset is not rate limited, whereas the kernel lets
/// through about one ICMP error a second to a remote address (`icmp_ratelimit`): refused
/// only by ICMP, a pod's or a remote client's connection waited for its SYN retransmits,
/// while the node's own (ICMP over loopback, never limited) was refused at once.
fn refuse(matcher: &str) -> String {
    format!("{matcher} meta l4proto tcp reject with tcp reset\n{matcher} reject\n")
}

fn write_chain(out: &mut String, chain: &str, comment: &str, rules: &[String]) {
    let comment = comment.replace('"', "'");
    let _ = writeln!(
        out,
        "add chain ip {TABLE} {chain} {{ comment \"{comment}\"; }}"
    );
    for rule in rules {
        let _ = writeln!(out, "add rule ip {TABLE} {chain} {rule}");
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
