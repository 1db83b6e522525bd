//! Answers one question from the index: which name form a query is (service, SRV,
//! endpoint, pod, ...), and the records, NXDOMAIN or NODATA it gets, following CoreDNS's
//! `kubernetes` plugin and the Kubernetes DNS specification.
//!
//! A name exists when it or a name below it has a record: so a headless service with no
//! ready endpoint is NXDOMAIN (as in CoreDNS), `<ns>.svc.<domain>` is NODATA while the
//! namespace has a service, and every negative answer carries the zone's SOA.

use std::net::Ipv4Addr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::records::{Kind, PodRecords, Port, Records, ServiceView};

/// Version of the Kubernetes DNS schema served, answered at `dns-version.<domain>` TXT as
/// the specification asks.
const SCHEMA_VERSION: &str = "1.1.0";
/// TTL of the schema version record (the specification's example value).
const SCHEMA_TTL: u32 = 28800;
/// How many in-zone CNAMEs (ExternalName services naming other services) are followed.
const MAX_CNAME_CHAIN: usize = 8;

/// The answer to one question, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// NOERROR (with or without records), NXDOMAIN, or REFUSED outside the zone.
    pub rcode: ResponseCode,
    /// Whether the answer is from this zone (the AA bit); false for REFUSED.
    pub authoritative: bool,
    pub answers: Vec<Record>,
    /// The SOA on negative answers.
    pub authorities: Vec<Record>,
    /// Addresses of SRV targets; droppable when the packet is too large.
    pub additionals: Vec<Record>,
}

impl Answer {
    /// A name this server does not serve.
    pub fn refused() -> Self {
        Answer {
            rcode: ResponseCode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }

    fn records(answers: Vec<Record>, additionals: Vec<Record>) -> Self {
        Answer {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers,
            authorities: Vec::new(),
            additionals,
        }
    }
}

/// What a name holds, before the question's type picks from it.
enum Node {
    /// The name does not exist: NXDOMAIN.
    Missing,
    /// The name exists but holds no records of any type (an empty non-terminal): NODATA.
    Empty,
    /// A CNAME, which answers every type.
    Alias(Name),
    /// Records by type; `additionals` go with the SRV answer.
    Records {
        a: Vec<Ipv4Addr>,
        srv: Vec<(SRV, Option<(Name, Ipv4Addr)>)>,
        txt: Option<(String, u32)>,
        soa: bool,
    },
}

impl Node {
    fn a(addrs: Vec<Ipv4Addr>) -> Node {
        if addrs.is_empty() {
            return Node::Missing;
        }
        Node::Records {
            a: addrs,
            srv: Vec::new(),
            txt: None,
            soa: false,
        }
    }
}

impl Records {
    /// Answers `qname`/`qtype`. Names are matched case-insensitively; records carry the
    /// question's spelling of the name, so resolvers that randomise case still match.
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Answer {
        self.lookup_chain(qname, qtype, 0)
    }

    fn lookup_chain(&self, qname: &Name, qtype: RecordType, depth: usize) -> Answer {
        if !self.domain.zone_of(qname) {
            return self.reverse(qname, qtype);
        }
        let lower = qname.to_lowercase();
        let node = self.node(&lower);
        let mut answer =
            match node {
                Node::Missing => return self.negative(ResponseCode::NXDomain),
                Node::Empty => return self.negative(ResponseCode::NoError),
                Node::Alias(target) => {
                    let cname = Record::from_rdata(
                        qname.clone(),
                        self.ttl,
                        RData::CNAME(CNAME(target.clone())),
                    );
                    let mut answer = Answer::records(vec![cname], Vec::new());
                    if qtype != RecordType::CNAME
                        && depth < MAX_CNAME_CHAIN
                        && self.domain.zone_of(&target)
                    {
                        let next = self.lookup_chain(&target, qtype, depth + 1);
                        answer.answers.extend(next.answers);
                        answer.additionals.extend(next.additionals);
                        if answer.answers.len() == 1 {
                            answer.authorities = next.authorities;
                        }
                    }
                    return answer;
                }
                Node::Records { a, srv, txt, soa } => {
                    let mut answer = Answer::records(Vec::new(), Vec::new());
                    let any = qtype == RecordType::ANY;
                    if any || qtype == RecordType::A {
                        answer.answers.extend(a.iter().map(|ip| {
                            Record::from_rdata(qname.clone(), self.ttl, RData::A(A(*ip)))
                        }));
                    }
                    if any || qtype == RecordType::SRV {
                        let mut extras = std::collections::HashSet::new();
                        for (rdata, extra) in srv {
                            if let Some((name, ip)) = extra.filter(|e| extras.insert(e.clone())) {
                                answer.additionals.push(Record::from_rdata(
                                    name,
                                    self.ttl,
                                    RData::A(A(ip)),
                                ));
                            }
                            answer.answers.push(Record::from_rdata(
                                qname.clone(),
                                self.ttl,
                                RData::SRV(rdata),
                            ));
                        }
                    }
                    if let Some((text, ttl)) = txt.filter(|_| any || qtype == RecordType::TXT) {
                        answer.answers.push(Record::from_rdata(
                            qname.clone(),
                            ttl,
                            RData::TXT(TXT::new(vec![text])),
                        ));
                    }
                    if soa && (any || qtype == RecordType::SOA) {
                        answer.answers.push(self.soa());
                    }
                    answer
                }
            };
        if answer.answers.is_empty() {
            answer = self.negative(ResponseCode::NoError);
        }
        answer
    }

    /// What the in-zone name `lower` (lowercase) holds.
    fn node(&self, lower: &Name) -> Node {
        let relative = usize::from(lower.num_labels() - self.domain.num_labels());
        let mut labels = Vec::with_capacity(relative);
        for label in lower.iter().take(relative) {
            match std::str::from_utf8(label) {
                Ok(l) => labels.push(l),
                Err(_) => return Node::Missing,
            }
        }
        match labels.as_slice() {
            [] => Node::Records {
                a: Vec::new(),
                srv: Vec::new(),
                txt: None,
                soa: true,
            },
            ["dns-version"] => Node::Records {
                a: Vec::new(),
                srv: Vec::new(),
                txt: Some((SCHEMA_VERSION.to_string(), SCHEMA_TTL)),
                soa: false,
            },
            ["svc"] => Node::Empty,
            [ns, "svc"] if self.views.contains_key(*ns) => Node::Empty,
            [svc, ns, "svc"] => match self.view(ns, svc) {
                Some(view) => self.service_node(view),
                None => Node::Missing,
            },
            [proto, svc, ns, "svc"] if proto.starts_with('_') => match self.view(ns, svc) {
                Some(view) if !srv_records(view, None, Some(&proto[1..])).is_empty() => Node::Empty,
                _ => Node::Missing,
            },
            [endpoint, svc, ns, "svc"] => match self.view(ns, svc) {
                Some(view) => Node::a(
                    view.by_label
                        .get(*endpoint)
                        .into_iter()
                        .flatten()
                        .map(|&i| view.endpoints[i].ip)
                        .collect(),
                ),
                None => Node::Missing,
            },
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                match self.view(ns, svc) {
                    Some(view) => {
                        let srv = srv_records(view, Some(&port[1..]), Some(&proto[1..]));
                        if srv.is_empty() {
                            Node::Missing
                        } else {
                            Node::Records {
                                a: Vec::new(),
                                srv,
                                txt: None,
                                soa: false,
                            }
                        }
                    }
                    None => Node::Missing,
                }
            }
            ["pod"] | [_, "pod"] if self.pods_mode != PodRecords::Disabled => Node::Empty,
            [ip, ns, "pod"] => match (self.pods_mode, parse_dashed(ip)) {
                (PodRecords::Insecure, Some(ip)) => Node::a(vec![ip]),
                (PodRecords::Verified, Some(ip))
                    if self.pods_by_ip.contains_key(&(ns.to_string(), ip)) =>
                {
                    Node::a(vec![ip])
                }
                _ => Node::Missing,
            },
            _ => Node::Missing,
        }
    }

    fn view(&self, ns: &str, svc: &str) -> Option<&ServiceView> {
        self.views.get(ns)?.get(svc)
    }

    /// What `<svc>.<ns>.svc.<domain>` holds.
    fn service_node(&self, view: &ServiceView) -> Node {
        let a = match &view.kind {
            Kind::ExternalName(Some(target)) => return Node::Alias(target.clone()),
            Kind::ExternalName(None) | Kind::ClusterIp(None) => return Node::Missing,
            Kind::ClusterIp(Some(ip)) => vec![*ip],
            Kind::Headless => view.addrs.clone(),
        };
        if a.is_empty() {
            return Node::Missing;
        }
        Node::Records {
            a,
            srv: srv_records(view, None, None),
            txt: None,
            soa: false,
        }
    }

    /// PTR for cluster IPs; anything else outside the zone is refused.
    fn reverse(&self, qname: &Name, qtype: RecordType) -> Answer {
        let Some(ip) = parse_reverse(qname) else {
            return Answer::refused();
        };
        let Some((ns, svc)) = self.ptr.get(&ip) else {
            return Answer::refused();
        };
        let Some(view) = self.view(ns, svc) else {
            return Answer::refused();
        };
        if !matches!(qtype, RecordType::PTR | RecordType::ANY) {
            return Answer::records(Vec::new(), Vec::new());
        }
        let ptr = Record::from_rdata(qname.clone(), self.ttl, RData::PTR(PTR(view.fqdn.clone())));
        Answer::records(vec![ptr], Vec::new())
    }

    /// NXDOMAIN or NODATA, with the SOA that tells resolvers how long to remember it.
    fn negative(&self, rcode: ResponseCode) -> Answer {
        Answer {
            rcode,
            authoritative: true,
            answers: Vec::new(),
            authorities: vec![self.soa()],
            additionals: Vec::new(),
        }
    }

    /// The zone's SOA, CoreDNS's values: `ns.dns.<domain>`, `hostmaster.<domain>`, negative
    /// TTL equal to the answer TTL.
    fn soa(&self) -> Record {
        let label = |l: &str| {
            Name::from_ascii(l)
                .and_then(|n| n.append_domain(&self.domain))
                .unwrap_or_else(|_| self.domain.clone())
        };
        let soa = SOA::new(
            label("ns.dns"),
            label("hostmaster"),
            self.serial,
            7200,
            1800,
            86400,
            self.ttl,
        );
        Record::from_rdata(self.domain.clone(), self.ttl, RData::SOA(soa))
    }
}

/// SRV records of a service for `_<port>._<proto>` (None: every port), each with the A
/// record of its target. Weights are CoreDNS's: 100 split evenly, rounded down.
fn srv_records(
    view: &ServiceView,
    port: Option<&str>,
    proto: Option<&str>,
) -> Vec<(SRV, Option<(Name, Ipv4Addr)>)> {
    let matches = |p: &Port| {
        port.is_none_or(|want| !p.name.is_empty() && p.name == want)
            && proto.is_none_or(|want| p.protocol == want)
    };
    let mut found: Vec<(u16, Name, Ipv4Addr)> = Vec::new();
    match &view.kind {
        Kind::ClusterIp(Some(ip)) => {
            for p in view.ports.iter().filter(|p| matches(p)) {
                found.push((p.port, view.fqdn.clone(), *ip));
            }
        }
        Kind::Headless => {
            for ep in &view.endpoints {
                for p in ep.ports.iter().filter(|p| matches(p)) {
                    found.push((p.port, ep.target.clone(), ep.ip));
                }
            }
        }
        Kind::ClusterIp(None) | Kind::ExternalName(_) => {}
    }
    let weight = u16::try_from(100 / found.len().max(1)).unwrap_or(0);
    found
        .into_iter()
        .map(|(port, target, ip)| {
            (
                SRV::new(0, weight, port, target.clone()),
                Some((target, ip)),
            )
        })
        .collect()
}

/// `10-0-0-1` → 10.0.0.1; None for anything but four canonical decimal octets.
pub(crate) fn parse_dashed(label: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = label.split('-');
    for slot in &mut octets {
        *slot = octet(parts.next()?.as_bytes())?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// `1.0.0.10.in-addr.arpa.` → 10.0.0.1.
fn parse_reverse(qname: &Name) -> Option<Ipv4Addr> {
    let labels: Vec<&[u8]> = qname.iter().collect();
    let [d, c, b, a, in_addr, arpa] = labels.as_slice() else {
        return None;
    };
    if !in_addr.eq_ignore_ascii_case(b"in-addr") || !arpa.eq_ignore_ascii_case(b"arpa") {
        return None;
    }
    Some(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?))
}

/// One decimal octet as names spell it: `0`..`255`, no sign, no leading zero.
fn octet(part: &[u8]) -> Option<u8> {
    let canonical = !part.is_empty()
        && part.len() <= 3
        && part.iter().all(u8::is_ascii_digit)
        && (part.len() == 1 || part[0] != b'0');
    if !canonical {
        return None;
    }
    std::str::from_utf8(part).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use RecordType::{A, AAAA, CNAME as Cname, NS, SOA as Soa, SRV as Srv, TXT as Txt};

    const NX: ResponseCode = ResponseCode::NXDomain;
    const OK: ResponseCode = ResponseCode::NoError;
    const REFUSED: ResponseCode = ResponseCode::Refused;

    /// The cluster of CoreDNS's kubernetes plugin tests, give or take.
    fn cluster() -> Records {
        let mut r = records();
        let http: &[P] = &[("http", "TCP", 80)];
        r.apply_service(&cluster_ip("testns", "svc1", "10.0.0.1", http));
        r.apply_endpoint_slice(&slice(
            "testns",
            "svc1-abc",
            "svc1",
            http,
            &[("172.0.1.1", None, None)],
        ));
        r.apply_service(&cluster_ip(
            "testns",
            "multi",
            "10.0.0.7",
            &[
                ("http", "TCP", 80),
                ("https", "TCP", 443),
                ("dns", "UDP", 53),
                ("", "TCP", 8080),
            ],
        ));
        r.apply_service(&cluster_ip(
            "default",
            "kubernetes",
            "10.96.0.1",
            &[("https", "TCP", 443)],
        ));
        r.apply_service(&headless("testns", "hdls1", false));
        r.apply_endpoint_slice(&slice(
            "testns",
            "hdls1-a",
            "hdls1",
            http,
            &[
                ("172.0.0.2", None, Some(true)),
                ("172.0.0.3", None, None),
                ("172.0.0.9", None, Some(false)),
            ],
        ));
        r.apply_endpoint_slice(&slice(
            "testns",
            "hdls1-b",
            "hdls1",
            http,
            &[
                ("172.0.0.4", Some("dup-name"), None),
                ("172.0.0.5", Some("dup-name"), None),
            ],
        ));
        r.apply_service(&headless("testns", "web", false));
        r.apply_endpoint_slice(&slice(
            "testns",
            "web-x",
            "web",
            &[("http", "TCP", 8080)],
            &[
                ("10.1.0.10", Some("web-0"), Some(true)),
                ("10.1.0.11", Some("web-1"), Some(false)),
            ],
        ));
        r.apply_service(&headless("testns", "pnr", true));
        r.apply_endpoint_slice(&slice(
            "testns",
            "pnr-x",
            "pnr",
            http,
            &[("10.2.0.1", None, Some(false))],
        ));
        r.apply_service(&headless("testns", "notready", false));
        r.apply_endpoint_slice(&slice(
            "testns",
            "nr-x",
            "notready",
            http,
            &[("10.3.0.1", None, Some(false))],
        ));
        r.apply_service(&external("testns", "external", "ext.interwebs.test"));
        r.apply_service(&external(
            "testns",
            "ext-to-svc",
            "svc1.testns.svc.cluster.local",
        ));
        r
    }

    struct Case {
        name: &'static str,
        qtype: RecordType,
        rcode: ResponseCode,
        answers: &'static [&'static str],
        additionals: &'static [&'static str],
    }

    const fn case(
        name: &'static str,
        qtype: RecordType,
        rcode: ResponseCode,
        answers: &'static [&'static str],
    ) -> Case {
        Case {
            name,
            qtype,
            rcode,
            answers,
            additionals: &[],
        }
    }

    #[test]
    fn every_name_form_answers_like_coredns() {
        let cases = [
            // ClusterIP service.
            case("svc1.testns.svc.cluster.local.", A, OK, &["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"]),
            case("kubernetes.default.svc.cluster.local.", A, OK, &["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]),
            // Case-insensitive; the answer keeps the question's spelling.
            case("SVC1.TestNS.svc.Cluster.Local.", A, OK, &["SVC1.TestNS.svc.Cluster.Local. 5 IN A 10.0.0.1"]),
            // IPv4-only cluster: the name exists, AAAA is NODATA.
            case("svc1.testns.svc.cluster.local.", AAAA, OK, &[]),
            case("svc1.testns.svc.cluster.local.", Txt, OK, &[]),
            Case {
                name: "_http._tcp.svc1.testns.svc.cluster.local.",
                qtype: Srv,
                rcode: OK,
                answers: &["_http._tcp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local."],
                additionals: &["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"],
            },
            Case {
                name: "_https._tcp.multi.testns.svc.cluster.local.",
                qtype: Srv,
                rcode: OK,
                answers: &["_https._tcp.multi.testns.svc.cluster.local. 5 IN SRV 0 100 443 multi.testns.svc.cluster.local."],
                additionals: &["multi.testns.svc.cluster.local. 5 IN A 10.0.0.7"],
            },
            Case {
                name: "_dns._udp.multi.testns.svc.cluster.local.",
                qtype: Srv,
                rcode: OK,
                answers: &["_dns._udp.multi.testns.svc.cluster.local. 5 IN SRV 0 100 53 multi.testns.svc.cluster.local."],
                additionals: &["multi.testns.svc.cluster.local. 5 IN A 10.0.0.7"],
            },
            // SRV at the service name: every port, weight split.
            Case {
                name: "multi.testns.svc.cluster.local.",
                qtype: Srv,
                rcode: OK,
                answers: &[
                    "multi.testns.svc.cluster.local. 5 IN SRV 0 25 443 multi.testns.svc.cluster.local.",
                    "multi.testns.svc.cluster.local. 5 IN SRV 0 25 53 multi.testns.svc.cluster.local.",
                    "multi.testns.svc.cluster.local. 5 IN SRV 0 25 80 multi.testns.svc.cluster.local.",
                    "multi.testns.svc.cluster.local. 5 IN SRV 0 25 8080 multi.testns.svc.cluster.local.",
                ],
                additionals: &["multi.testns.svc.cluster.local. 5 IN A 10.0.0.7"],
            },
            // Wrong protocol or unknown port: no such name.
            case("_http._udp.svc1.testns.svc.cluster.local.", Srv, NX, &[]),
            case("_nope._tcp.svc1.testns.svc.cluster.local.", Srv, NX, &[]),
            // An SRV name asked for A: exists, NODATA. Its `_tcp` parent: empty non-terminal.
            case("_http._tcp.svc1.testns.svc.cluster.local.", A, OK, &[]),
            case("_tcp.svc1.testns.svc.cluster.local.", A, OK, &[]),
            case("_sctp.svc1.testns.svc.cluster.local.", A, NX, &[]),
            // Endpoint names work under ClusterIP services too (CoreDNS does the same).
            case("172-0-1-1.svc1.testns.svc.cluster.local.", A, OK, &["172-0-1-1.svc1.testns.svc.cluster.local. 5 IN A 172.0.1.1"]),
            // Headless: ready endpoints only (ready unset counts as ready).
            case(
                "hdls1.testns.svc.cluster.local.",
                A,
                OK,
                &[
                    "hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2",
                    "hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3",
                    "hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
                    "hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
                ],
            ),
            case("hdls1.testns.svc.cluster.local.", AAAA, OK, &[]),
            case("172-0-0-2.hdls1.testns.svc.cluster.local.", A, OK, &["172-0-0-2.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2"]),
            case("172-0-0-9.hdls1.testns.svc.cluster.local.", A, NX, &[]),
            case(
                "dup-name.hdls1.testns.svc.cluster.local.",
                A,
                OK,
                &[
                    "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
                    "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
                ],
            ),
            // With a hostname, the dashed-IP name does not exist (CoreDNS: one name each).
            case("172-0-0-4.hdls1.testns.svc.cluster.local.", A, NX, &[]),
            case("bogusendpoint.hdls1.testns.svc.cluster.local.", A, NX, &[]),
            Case {
                name: "_http._tcp.hdls1.testns.svc.cluster.local.",
                qtype: Srv,
                rcode: OK,
                answers: &[
                    "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 25 80 172-0-0-2.hdls1.testns.svc.cluster.local.",
                    "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 25 80 172-0-0-3.hdls1.testns.svc.cluster.local.",
                    "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 25 80 dup-name.hdls1.testns.svc.cluster.local.",
                    "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 25 80 dup-name.hdls1.testns.svc.cluster.local.",
                ],
                additionals: &[
                    "172-0-0-2.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2",
                    "172-0-0-3.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3",
                    "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
                    "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
                ],
            },
            // StatefulSet-style: hostname names, not-ready pod-1 absent.
            case("web-0.web.testns.svc.cluster.local.", A, OK, &["web-0.web.testns.svc.cluster.local. 5 IN A 10.1.0.10"]),
            case("web-1.web.testns.svc.cluster.local.", A, NX, &[]),
            Case {
                name: "_http._tcp.web.testns.svc.cluster.local.",
                qtype: Srv,
                rcode: OK,
                answers: &["_http._tcp.web.testns.svc.cluster.local. 5 IN SRV 0 100 8080 web-0.web.testns.svc.cluster.local."],
                additionals: &["web-0.web.testns.svc.cluster.local. 5 IN A 10.1.0.10"],
            },
            // publishNotReadyAddresses publishes not-ready endpoints.
            case("pnr.testns.svc.cluster.local.", A, OK, &["pnr.testns.svc.cluster.local. 5 IN A 10.2.0.1"]),
            case("10-2-0-1.pnr.testns.svc.cluster.local.", A, OK, &["10-2-0-1.pnr.testns.svc.cluster.local. 5 IN A 10.2.0.1"]),
            // A headless service with no ready endpoint has no records: NXDOMAIN (CoreDNS).
            case("notready.testns.svc.cluster.local.", A, NX, &[]),
            // ExternalName: a CNAME, for any type; an in-zone target is followed.
            case("external.testns.svc.cluster.local.", Cname, OK, &["external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."]),
            case("external.testns.svc.cluster.local.", A, OK, &["external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."]),
            case(
                "ext-to-svc.testns.svc.cluster.local.",
                A,
                OK,
                &[
                    "ext-to-svc.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.",
                    "svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1",
                ],
            ),
            // Missing service, missing namespace, too many labels.
            case("svc0.testns.svc.cluster.local.", A, NX, &[]),
            case("svc0.svc-nons.svc.cluster.local.", A, NX, &[]),
            case("a.b.c.d.svc1.testns.svc.cluster.local.", A, NX, &[]),
            case("foo.cluster.local.", NS, NX, &[]),
            // Empty non-terminals: NODATA.
            case("svc.cluster.local.", A, OK, &[]),
            case("testns.svc.cluster.local.", A, OK, &[]),
            case("pod.cluster.local.", A, OK, &[]),
            case("svc1.testns.svc.cluster.local.", Soa, OK, &[]),
            // Pods (insecure mode): any well-formed dashed IPv4.
            case("10-244-0-5.testns.pod.cluster.local.", A, OK, &["10-244-0-5.testns.pod.cluster.local. 5 IN A 10.244.0.5"]),
            case("10-244-0-5.testns.pod.cluster.local.", AAAA, OK, &[]),
            case("10-244-0-256.testns.pod.cluster.local.", A, NX, &[]),
            case("10-244-05.testns.pod.cluster.local.", A, NX, &[]),
            case("10-244-0-05.testns.pod.cluster.local.", A, NX, &[]),
            // Schema version (spec 2.2).
            case("dns-version.cluster.local.", Txt, OK, &["dns-version.cluster.local. 28800 IN TXT 1.1.0"]),
            // Outside the zone: refused, never forwarded.
            case("example.com.", A, REFUSED, &[]),
            case("cluster.local.example.com.", A, REFUSED, &[]),
            // PTR of a cluster IP; other reverse names are not ours.
            case("1.0.0.10.in-addr.arpa.", RecordType::PTR, OK, &["1.0.0.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."]),
            case("9.9.9.10.in-addr.arpa.", RecordType::PTR, REFUSED, &[]),
        ];
        let r = cluster();
        let mut failures = Vec::new();
        for c in &cases {
            let got = ask(&r, c.name, c.qtype);
            let want = Got {
                rcode: c.rcode,
                answers: c.answers.iter().map(|s| s.to_string()).collect(),
                additionals: c.additionals.iter().map(|s| s.to_string()).collect(),
                // Every negative in-zone answer carries the SOA; positive ones and REFUSED don't.
                soa: c.rcode != REFUSED && c.answers.is_empty(),
            };
            if got != want {
                failures.push(format!(
                    "{} {:?}:\n  got  {got:?}\n  want {want:?}",
                    c.name, c.qtype
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} cases failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn apex_answers_soa_with_coredns_values() {
        let got = ask(&cluster(), "cluster.local.", Soa);
        assert_eq!(got.rcode, OK);
        assert_eq!(got.answers.len(), 1);
        let soa = &got.answers[0];
        assert!(
            soa.starts_with(
                "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "
            ),
            "{soa}"
        );
        assert!(soa.ends_with(" 7200 1800 86400 5"), "{soa}");
    }

    #[test]
    fn verified_pod_names_need_a_pod_with_that_ip_in_that_namespace() {
        let mut r = Records::new(&crate::dns::DnsConfig {
            pods: PodRecords::Verified,
            ..Default::default()
        })
        .expect("records");
        r.apply_pod(&pod("testns", "p", "10.244.0.5"));
        assert_eq!(
            ask(&r, "10-244-0-5.testns.pod.cluster.local.", A)
                .answers
                .len(),
            1
        );
        assert_eq!(ask(&r, "10-244-0-5.other.pod.cluster.local.", A).rcode, NX);
        assert_eq!(ask(&r, "10-244-0-6.testns.pod.cluster.local.", A).rcode, NX);
        r.delete_pod(&pod("testns", "p", "10.244.0.5"));
        assert_eq!(ask(&r, "10-244-0-5.testns.pod.cluster.local.", A).rcode, NX);
    }

    #[test]
    fn disabled_pod_names_do_not_exist() {
        let r = Records::new(&crate::dns::DnsConfig {
            pods: PodRecords::Disabled,
            ..Default::default()
        })
        .expect("records");
        assert_eq!(ask(&r, "10-244-0-5.testns.pod.cluster.local.", A).rcode, NX);
        assert_eq!(ask(&r, "pod.cluster.local.", A).rcode, NX);
    }

    #[test]
    fn custom_domain_serves_its_names_and_refuses_cluster_local() {
        let mut r = Records::new(&crate::dns::DnsConfig {
            domain: "Skiff.Internal.".to_string(),
            ..Default::default()
        })
        .expect("records");
        r.apply_service(&cluster_ip("ns", "s", "10.0.0.3", &[]));
        assert_eq!(
            ask(&r, "s.ns.svc.skiff.internal.", A).answers,
            ["s.ns.svc.skiff.internal. 5 IN A 10.0.0.3"]
        );
        assert_eq!(ask(&r, "s.ns.svc.cluster.local.", A).rcode, REFUSED);
    }

    #[test]
    fn parse_dashed_accepts_only_canonical_ipv4() {
        assert_eq!(parse_dashed("10-0-0-1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(parse_dashed("0-0-0-0"), Some(Ipv4Addr::UNSPECIFIED));
        for bad in [
            "10-0-0",
            "10-0-0-1-2",
            "10-0-0-+1",
            "10--0-1",
            "a-b-c-d",
            "10-0-0-1000",
            "",
        ] {
            assert_eq!(parse_dashed(bad), None, "{bad}");
        }
    }
}
