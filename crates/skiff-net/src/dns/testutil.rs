//! Object builders and a question helper shared by the DNS tests.

use std::sync::{Arc, RwLock};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};

use super::{DnsConfig, Records, SharedRecords};

/// `(name, protocol, port)`.
pub type P<'a> = (&'a str, &'a str, i32);

fn ports(ports: &[P]) -> Value {
    ports
        .iter()
        .map(|(name, proto, port)| json!({"name": name, "protocol": proto, "port": port}))
        .collect()
}

pub fn cluster_ip(ns: &str, name: &str, ip: &str, p: &[P]) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": ports(p)},
    }))
    .expect("service")
}

pub fn headless(ns: &str, name: &str, publish_not_ready: bool) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": publish_not_ready},
    }))
    .expect("service")
}

pub fn external(ns: &str, name: &str, target: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"type": "ExternalName", "externalName": target},
    }))
    .expect("service")
}

/// An endpoint: `(ip, hostname, ready condition)`.
pub type E<'a> = (&'a str, Option<&'a str>, Option<bool>);

pub fn slice(ns: &str, name: &str, service: &str, p: &[P], eps: &[E]) -> EndpointSlice {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|(ip, host, ready)| {
            let mut ep = json!({"addresses": [ip]});
            if let Some(h) = host {
                ep["hostname"] = json!(h);
            }
            if let Some(r) = ready {
                ep["conditions"] = json!({"ready": r});
            }
            ep
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {
            "namespace": ns, "name": name,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": ports(p),
        "endpoints": endpoints,
    }))
    .expect("slice")
}

pub fn pod(ns: &str, name: &str, ip: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "status": {"podIP": ip},
    }))
    .expect("pod")
}

pub fn records() -> Records {
    Records::new(&DnsConfig::default()).expect("records")
}

pub fn shared(r: Records) -> SharedRecords {
    Arc::new(RwLock::new(r))
}

/// What a question got, in comparable form: records as zone-file lines, sorted.
#[derive(Debug, PartialEq, Eq)]
pub struct Got {
    pub rcode: ResponseCode,
    pub answers: Vec<String>,
    pub additionals: Vec<String>,
    /// Whether the authority section holds the SOA (negative answers).
    pub soa: bool,
}

pub fn ask(r: &Records, name: &str, qtype: RecordType) -> Got {
    let name = Name::from_ascii(name).expect("query name");
    let answer = r.lookup(&name, qtype);
    let lines = |rs: &[hickory_proto::rr::Record]| {
        let mut v: Vec<String> = rs.iter().map(|r| r.to_string()).collect();
        v.sort();
        v
    };
    Got {
        rcode: answer.rcode,
        answers: lines(&answer.answers),
        additionals: lines(&answer.additionals),
        soa: answer
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA),
    }
}
