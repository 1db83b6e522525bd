//! Cluster DNS load: builds an index of 1,000 services (500 ClusterIP, 500 headless with 20
//! ready endpoints each: 10,000 endpoints) in 10 namespaces, serves it in-process on
//! 127.0.0.1 (or targets a given server), and fires queries from N closed-loop UDP clients
//! for D seconds. The query mix imitates pods with `ndots:5`: most lookups are search-path
//! misses (NXDOMAIN) and ClusterIP names, some headless A and SRV. Also times building the
//! index and one incremental EndpointSlice update. Prints Markdown.
//!
//! Usage: `cargo run --release -p skiff-bench --bin dns-load -- [clients] [seconds] [addr]`
//! (with `addr`, queries go to that server, which must hold the same objects).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use skiff_net::dns::{DnsConfig, Records, Server};
use tokio::net::UdpSocket;

const NAMESPACES: usize = 10;
const SERVICES: usize = 1_000;
const ENDPOINTS_PER_HEADLESS: usize = 20;

fn service(i: usize) -> Service {
    let headless = i % 2 == 1;
    serde_json::from_value(json!({
        "metadata": {"namespace": format!("ns-{}", i % NAMESPACES), "name": format!("svc-{i}")},
        "spec": {
            "clusterIP": if headless { "None".to_string() } else {
                format!("10.96.{}.{}", i / 250, i % 250 + 1)
            },
            "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
        },
    }))
    .expect("service")
}

fn slice(i: usize, generation: usize) -> EndpointSlice {
    let endpoints: Vec<_> = (0..ENDPOINTS_PER_HEADLESS)
        .map(|e| {
            let n = i * ENDPOINTS_PER_HEADLESS + e + generation;
            json!({"addresses": [format!("10.{}.{}.{}", 64 + n / 65536, (n / 256) % 256, n % 256)],
                   "hostname": format!("pod-{e}"),
                   "conditions": {"ready": true}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {
            "namespace": format!("ns-{}", i % NAMESPACES), "name": format!("svc-{i}-abcde"),
            "labels": {"kubernetes.io/service-name": format!("svc-{i}")},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": endpoints,
    }))
    .expect("slice")
}

/// The query mix, by weight: what a pod resolving `svc-N` with the usual search path asks.
fn queries() -> Vec<(String, RecordType)> {
    let mut qs = Vec::new();
    for i in (0..SERVICES).step_by(7) {
        let ns = i % NAMESPACES;
        let other = (ns + 1) % NAMESPACES;
        if i % 2 == 0 {
            qs.push((format!("svc-{i}.ns-{ns}.svc.cluster.local."), RecordType::A));
            qs.push((format!("svc-{i}.ns-{ns}.svc.cluster.local."), RecordType::A));
            qs.push((
                format!("svc-{i}.ns-{ns}.svc.cluster.local."),
                RecordType::AAAA,
            ));
        } else {
            qs.push((format!("svc-{i}.ns-{ns}.svc.cluster.local."), RecordType::A));
            qs.push((
                format!("pod-3.svc-{i}.ns-{ns}.svc.cluster.local."),
                RecordType::A,
            ));
            qs.push((
                format!("_http._tcp.svc-{i}.ns-{ns}.svc.cluster.local."),
                RecordType::SRV,
            ));
        }
        // Search-path misses: `svc-N.ns-M` tried under the pod's own namespace first.
        qs.push((
            format!("svc-{i}.ns-{ns}.ns-{other}.svc.cluster.local."),
            RecordType::A,
        ));
        qs.push((
            format!("svc-{i}.ns-{ns}.svc.svc.cluster.local."),
            RecordType::A,
        ));
    }
    qs
}

fn encode(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    m.to_vec().expect("encode")
}

struct Totals {
    answered: AtomicU64,
    nxdomain: AtomicU64,
    lost: AtomicU64,
}

async fn client(
    addr: SocketAddr,
    qs: Arc<Vec<Vec<u8>>>,
    start: usize,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
) -> Vec<u32> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    sock.connect(addr).await.expect("connect");
    let mut buf = vec![0u8; 4096];
    let mut lat = Vec::with_capacity(1 << 16);
    let mut i = start;
    while !stop.load(Ordering::Relaxed) {
        let mut q = qs[i % qs.len()].clone();
        // A fresh ID per query, so a late reply to a lost one is not mistaken for this one.
        q[..2].copy_from_slice(&(i as u16).to_be_bytes());
        i += 1;
        let t = Instant::now();
        sock.send(&q).await.expect("send");
        loop {
            match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
                Ok(Ok(n)) if n >= 12 && buf[..2] == q[..2] => {
                    lat.push(t.elapsed().as_micros() as u32);
                    totals.answered.fetch_add(1, Ordering::Relaxed);
                    if buf[3] & 0x0f == ResponseCode::NXDomain.low() {
                        totals.nxdomain.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
                Ok(Ok(_)) => continue,
                _ => {
                    totals.lost.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
    lat
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clients: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let target: Option<SocketAddr> = args.get(3).map(|s| s.parse().expect("addr"));

    let cfg = DnsConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..DnsConfig::default()
    };
    let mut records = Records::new(&cfg).expect("records");
    let services: Vec<Service> = (0..SERVICES).map(service).collect();
    let slices: Vec<EndpointSlice> = (0..SERVICES)
        .filter(|i| i % 2 == 1)
        .map(|i| slice(i, 0))
        .collect();
    let endpoints: usize = slices.iter().map(|s| s.endpoints.len()).sum();
    let t = Instant::now();
    records.replace_services(services);
    records.replace_endpoint_slices(slices);
    let build = t.elapsed();
    // One incremental update: a headless service's slice changes all its addresses.
    let changed = slice(SERVICES - 1, 7);
    let t = Instant::now();
    records.apply_endpoint_slice(&changed);
    let update = t.elapsed();
    records.apply_endpoint_slice(&slice(SERVICES - 1, 0));

    let records = Arc::new(RwLock::new(records));
    let addr = match target {
        Some(a) => a,
        None => {
            let server = Server::bind(cfg.listen, records.clone())
                .await
                .expect("bind");
            let a = server.local_addr();
            tokio::spawn(server.run());
            a
        }
    };

    let qs: Arc<Vec<Vec<u8>>> = Arc::new(queries().iter().map(|(n, t)| encode(n, *t)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals {
        answered: AtomicU64::new(0),
        nxdomain: AtomicU64::new(0),
        lost: AtomicU64::new(0),
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(client(
                addr,
                qs.clone(),
                c * 97,
                stop.clone(),
                totals.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("client"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let answered = totals.answered.load(Ordering::Relaxed);
    let nx = totals.nxdomain.load(Ordering::Relaxed);
    let lost = totals.lost.load(Ordering::Relaxed);

    println!(
        "index: {SERVICES} services ({} headless), {endpoints} endpoints, {NAMESPACES} namespaces; \
         {} distinct queries, {:.0}% NXDOMAIN; {clients} UDP clients, {seconds} s{}",
        SERVICES / 2,
        qs.len(),
        100.0 * nx as f64 / answered.max(1) as f64,
        if target.is_some() { ", external server" } else { ", server in-process" },
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| queries answered per second | {:.0} |",
        answered as f64 / elapsed
    );
    println!(
        "| latency p50 / p99 / max | {:.3} ms / {:.3} ms / {:.3} ms |",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!("| lost (no reply within 1 s) | {lost} |");
    println!(
        "| index build (1,000 services, {endpoints} endpoints) | {:.1} ms |",
        build.as_secs_f64() * 1e3
    );
    println!(
        "| one EndpointSlice update (20 endpoints) | {:.1} µs |",
        update.as_secs_f64() * 1e6
    );
}
