//! Service networking's Prometheus metrics, under the names of the upstream components
//! each part stands in for (decision 0033):
//!
//! - the service proxy as kube-proxy: `kubeproxy_sync_proxy_rules_duration_seconds` (one
//!   rules sync: render and `nft -f`) and `kubeproxy_sync_proxy_rules_last_timestamp_seconds`
//!   (when rules were last applied);
//! - cluster DNS as CoreDNS: `coredns_dns_requests_total{server, zone, proto, family, type}`
//!   and `coredns_dns_responses_total{server, zone, rcode}` (NXDOMAIN among them).
//!
//! Every label value is static or made once per server, so a query records without
//! allocating.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use skiff_metrics::Name;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The service proxy's metrics; clones share them.
#[derive(Clone, Debug)]
pub struct ProxyMetrics {
    sync_duration: Histogram,
    last_sync: Gauge<f64, AtomicU64>,
}

impl Default for ProxyMetrics {
    fn default() -> ProxyMetrics {
        ProxyMetrics {
            // kube-proxy's: 1 ms doubling, 15 buckets.
            sync_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            last_sync: Gauge::default(),
        }
    }
}

impl ProxyMetrics {
    /// Adds the families to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            self.sync_duration.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            self.last_sync.clone(),
        );
    }

    /// Records one applied sync that took `took`.
    pub fn synced(&self, took: Duration) {
        self.sync_duration.observe(took.as_secs_f64());
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_sync.set(now.as_secs_f64());
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    server: Name,
    zone: &'static str,
    proto: &'static str,
    family: &'static str,
    #[prometheus(flatten)]
    kind: TypeLabel,
}

/// `type`, a keyword in Rust, as its own label set.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct TypeLabel(&'static str);

impl prometheus_client::encoding::EncodeLabelSet for TypeLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        ("type", self.0).encode(encoder.encode_label())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    server: Name,
    zone: &'static str,
    rcode: &'static str,
}

/// Cluster DNS's metrics; clones share them.
#[derive(Clone, Debug)]
pub struct DnsMetrics {
    requests: Family<RequestLabels, Counter>,
    responses: Family<ResponseLabels, Counter>,
    server: Name,
}

impl Default for DnsMetrics {
    fn default() -> DnsMetrics {
        DnsMetrics {
            requests: Family::default(),
            responses: Family::default(),
            server: Name(Arc::from("dns://:53")),
        }
    }
}

/// The transport a query came over, as CoreDNS's `proto` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

/// CoreDNS's `type` label: the common types by name, the rest `other`.
pub fn type_label(t: Option<RecordType>) -> &'static str {
    match t {
        Some(RecordType::A) => "A",
        Some(RecordType::AAAA) => "AAAA",
        Some(RecordType::SRV) => "SRV",
        Some(RecordType::PTR) => "PTR",
        Some(RecordType::CNAME) => "CNAME",
        Some(RecordType::TXT) => "TXT",
        Some(RecordType::MX) => "MX",
        Some(RecordType::NS) => "NS",
        Some(RecordType::SOA) => "SOA",
        Some(RecordType::HTTPS) => "HTTPS",
        _ => "other",
    }
}

/// CoreDNS's `rcode` label: the RFC names.
pub fn rcode_label(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "other",
    }
}

impl DnsMetrics {
    /// The metrics of the server listening on `listen` (its `server` label,
    /// `dns://<address>` as CoreDNS's).
    pub fn for_server(&self, listen: std::net::SocketAddr) -> DnsMetrics {
        DnsMetrics {
            server: Name(Arc::from(format!("dns://{listen}"))),
            ..self.clone()
        }
    }

    /// Adds the families to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "coredns_dns_requests",
            "Counter of DNS requests made per zone, protocol and family.",
            self.requests.clone(),
        );
        registry.register(
            "coredns_dns_responses",
            "Counter of response status codes.",
            self.responses.clone(),
        );
    }

    /// Records one answered query.
    pub fn answered(
        &self,
        proto: Proto,
        ipv6: bool,
        query: Option<RecordType>,
        rcode: ResponseCode,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                server: self.server.clone(),
                zone: ".",
                proto: match proto {
                    Proto::Udp => "udp",
                    Proto::Tcp => "tcp",
                },
                family: if ipv6 { "2" } else { "1" },
                kind: TypeLabel(type_label(query)),
            })
            .inc();
        self.responses
            .get_or_create(&ResponseLabels {
                server: self.server.clone(),
                zone: ".",
                rcode: rcode_label(rcode),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(register: impl FnOnce(&mut Registry)) -> String {
        let mut r = Registry::default();
        register(&mut r);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn dns_requests_and_rcodes_as_coredns() {
        let m = DnsMetrics::default().for_server("10.244.0.1:53".parse().unwrap());
        m.answered(
            Proto::Udp,
            false,
            Some(RecordType::A),
            ResponseCode::NoError,
        );
        m.answered(
            Proto::Udp,
            false,
            Some(RecordType::A),
            ResponseCode::NXDomain,
        );
        m.answered(
            Proto::Tcp,
            false,
            Some(RecordType::SRV),
            ResponseCode::NXDomain,
        );
        let out = text(|r| m.register(r));
        for line in [
            "coredns_dns_requests_total{server=\"dns://10.244.0.1:53\",zone=\".\",proto=\"udp\",family=\"1\",type=\"A\"} 2",
            "coredns_dns_requests_total{server=\"dns://10.244.0.1:53\",zone=\".\",proto=\"tcp\",family=\"1\",type=\"SRV\"} 1",
            "coredns_dns_responses_total{server=\"dns://10.244.0.1:53\",zone=\".\",rcode=\"NXDOMAIN\"} 2",
            "coredns_dns_responses_total{server=\"dns://10.244.0.1:53\",zone=\".\",rcode=\"NOERROR\"} 1",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
    }

    #[test]
    fn proxy_sync_duration_and_timestamp() {
        let m = ProxyMetrics::default();
        m.synced(Duration::from_millis(4));
        let out = text(|r| m.register(r));
        assert!(
            out.contains("kubeproxy_sync_proxy_rules_duration_seconds_count 1"),
            "{out}"
        );
        let ts = out
            .lines()
            .find_map(|l| l.strip_prefix("kubeproxy_sync_proxy_rules_last_timestamp_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap();
        assert!(ts > 1.7e9, "{out}");
    }
}
