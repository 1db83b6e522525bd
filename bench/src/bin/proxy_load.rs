//! Service proxy load: HTTP through a Service's ClusterIP versus straight to the pod, and
//! the time from a pod turning Ready to its first request through the ClusterIP.
//!
//! Starts its own `skiff server` (with its node) as root in a network namespace of its own,
//! runs one pod of its own making (`proxy-load serve 8080`, this very binary in an image
//! built from the executable and the shared libraries `ldd` lists) behind a ClusterIP
//! Service, and drives it from the node (this process, moved into the namespace):
//!
//! 1. closed-loop GETs from C concurrent clients for D seconds, over keep-alive
//!    connections and then with a new TCP connection per request, alternating the pod IP
//!    and the ClusterIP (two runs of each), so the only difference is the proxy's DNAT
//!    (direct requests come from the node address, see `--same-source`);
//! 2. ready-to-traffic: pods created one at a time as the only endpoints of a second
//!    Service, from the Ready condition seen on a watch to the first response through the
//!    ClusterIP that the new pod answers (a prober retries every millisecond; until the
//!    pod is an endpoint the proxy's reject rule refuses at once).
//!
//! Everything it creates (namespace, containers, cgroups, server) is removed on exit, also
//! on error or Ctrl-C. Prints Markdown.
//!
//! Usage (as root): `proxy-load [--skiff PATH] [--seconds D] [--connections C] [--rounds N]`;
//! `proxy-load serve PORT` is the in-pod HTTP server.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use skiff_bench::http::{self, get_once, load, wait_ready, Mode, Run, Target};
use skiff_bench::node::{self, Node, NODE_IP};
use skiff_bench::{percentile, signed_ms};
use tokio::net::TcpStream;

/// The image the pods run, built from this executable.
const IMAGE: &str = "proxy-load:bench";
/// Where the pods' server listens.
const POD_PORT: u16 = 8080;

#[derive(Parser)]
#[command(about = "Service proxy benchmark: ClusterIP vs pod IP, and ready-to-traffic")]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// The skiff binary (default: `skiff` next to this executable).
    #[arg(long)]
    skiff: Option<PathBuf>,
    /// Length of each load run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients (connections) of each load run.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Pods created one at a time for ready-to-traffic.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Send direct requests from the route's source address (the bridge's, as requests
    /// to the ClusterIP), not from the node address: shows the TIME_WAIT interplay when
    /// one client reaches a pod both ways.
    #[arg(long)]
    same_source: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve `GET` with this host's name on PORT (what the benchmark's pods run).
    Serve { port: u16 },
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.cmd {
        Some(Cmd::Serve { port }) => http::serve(port),
        None => bench(&args),
    }
}

// ---------------------------------------------------------------------------------------
// The benchmark.

fn bench(args: &Args) -> Result<()> {
    let skiff = node::preflight("proxy-load", &["ldd"], args.skiff.as_deref())?;
    let archive = http::self_image(IMAGE, "proxy-load")?;
    eprintln!("image: {} MiB", archive.len() >> 20);
    let node = Node::start(&skiff)?;
    node.load_image(&archive)?;
    eprintln!("server ready in netns {}", node.netns());
    node::block_on(&node, measure(&node, args))
}

async fn measure(node: &Node, args: &Args) -> Result<()> {
    let client = node.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");

    // Part 1: one pod behind a Service.
    services
        .create(&PostParams::default(), &service("web"))
        .await?;
    pods.create(&PostParams::default(), &pod("web-0", "web"))
        .await?;
    let ready = wait_ready(&pods, "web-0", Duration::from_secs(60)).await?;
    let pod_ip: IpAddr = ready
        .status
        .and_then(|s| s.pod_ip)
        .context("web-0 has no podIP")?
        .parse()?;
    let service_ip = cluster_ip(&services, "web").await?;
    // The node reaches both over the bridge from 10.244.0.1, and the pod sees the same
    // (source, port) pairs from either target; but the client's TCP derives initial
    // sequence numbers and timestamps from the destination it knows, so a port reused
    // across targets meets the pod's TIME_WAIT of the other target's connection, fails
    // PAWS and waits a 1 s SYN retransmit. Direct requests come from the node address
    // instead, unless asked, so the two targets never share a connection tuple.
    let direct = Target {
        source: (!args.same_source).then(|| IpAddr::from(NODE_IP)),
        ..Target::to(SocketAddr::new(pod_ip, POD_PORT))
    };
    let via_service = Target::to(SocketAddr::new(service_ip, 80));
    wait_answer(via_service.addr, "web-0", Duration::from_secs(10)).await?;
    eprintln!("pod {pod_ip}, ClusterIP {service_ip}");

    println!(
        "## Service proxy: 1 pod, {} connections, {} s per run, 2 runs per target (direct, ClusterIP, ClusterIP, direct)\n",
        args.connections, args.seconds
    );
    println!("| mode | target | requests/s | p50 | p99 | p99.9 | max | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for (mode, label) in [
        (Mode::KeepAlive, "keep-alive"),
        (Mode::ConnectionPerRequest, "connection per request"),
    ] {
        let (mut d, mut s) = (Run::default(), Run::default());
        // Direct, ClusterIP, ClusterIP, direct: neither goes first into a fuller
        // conntrack table every time.
        for (i, through_service) in [false, true, true, false].into_iter().enumerate() {
            let (target, run) = if through_service {
                (via_service, &mut s)
            } else {
                (direct, &mut d)
            };
            tokio::time::sleep(Duration::from_secs(if i == 0 { 1 } else { 2 })).await;
            run.merge(load(target, mode, args.connections, args.seconds).await);
        }
        for (target, r) in [("pod IP", &mut d), ("ClusterIP", &mut s)] {
            println!(
                "| {label} | {target} | {:.0} | {:.3} ms | {:.3} ms | {:.3} ms | {:.1} ms | {} |",
                r.rate(),
                r.percentile_ms(0.5),
                r.percentile_ms(0.99),
                r.percentile_ms(0.999),
                r.percentile_ms(1.0),
                r.errors
            );
        }
        ratios.push((label, s.rate() / d.rate()));
    }
    println!();
    for (label, ratio) in ratios {
        println!(
            "ClusterIP / pod IP, {label}: {:.1} % (target >= 90 %)",
            ratio * 100.0
        );
    }
    pods.delete("web-0", &DeleteParams::default().grace_period(0))
        .await?;

    // Part 2: ready-to-traffic.
    services
        .create(&PostParams::default(), &service("fresh"))
        .await?;
    let fresh = SocketAddr::new(cluster_ip(&services, "fresh").await?, 80);
    // Until the proxy has the new Service, its ClusterIP is only routed to the bridge:
    // a connection opened then would hang (its conntrack entry keeps the missing DNAT).
    wait_refused(fresh, Duration::from_secs(30)).await?;
    let mut to_traffic = Vec::new();
    let mut to_ready = Vec::new();
    for i in 0..args.rounds {
        let name = format!("fresh-{i}");
        let a = arrival(&client, "fresh", &name, fresh).await?;
        eprintln!(
            "{name} ({}): create->Ready {:.1} ms, Ready->endpoint {:.1} ms, endpoint->traffic {:.1} ms",
            a.pod_ip,
            signed_ms(a.created, a.ready),
            signed_ms(a.ready, a.endpoint),
            signed_ms(a.endpoint, a.answered),
        );
        to_ready.push(a.ready - a.created);
        to_traffic.push(signed_ms(a.ready, a.answered));
        pods.delete(&name, &DeleteParams::default().grace_period(0))
            .await?;
        wait_refused(fresh, Duration::from_secs(30)).await?;
    }
    to_traffic.sort_by(f64::total_cmp);
    to_ready.sort();
    println!(
        "\nready-to-traffic ({} pods): p50 {:.1} ms, max {:.1} ms (target < 1 s); \
         create-to-Ready p50 {:.1} ms",
        args.rounds,
        percentile(&to_traffic, 0.5),
        to_traffic.last().copied().unwrap_or_default(),
        percentile(&to_ready, 0.5).as_secs_f64() * 1000.0,
    );
    Ok(())
}

fn service(app: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": app},
        "spec": {
            "selector": {"app": app},
            "ports": [{"port": 80, "targetPort": POD_PORT}],
        },
    }))
    .expect("a valid Service")
}

/// A pod running this binary's server, Ready once it accepts connections.
fn pod(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "web",
                "image": IMAGE,
                "imagePullPolicy": "Never",
                "args": ["serve", POD_PORT.to_string()],
                "ports": [{"containerPort": POD_PORT}],
                "readinessProbe": {"tcpSocket": {"port": POD_PORT}, "periodSeconds": 1},
            }],
        },
    }))
    .expect("a valid Pod")
}

async fn cluster_ip(services: &Api<Service>, name: &str) -> Result<IpAddr> {
    let svc = services.get(name).await?;
    Ok(svc
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no clusterIP")?
        .parse()?)
}

/// Waits until `addr` answers with `body`.
async fn wait_answer(addr: SocketAddr, body: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if get_once(Target::to(addr))
            .await
            .is_ok_and(|b| b == body.as_bytes())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{addr} did not answer {body} within {timeout:?}")
}

/// Waits until a connection to `addr` is refused (the Service has no endpoints).
async fn wait_refused(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let connect = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr));
        if let Ok(Err(e)) = connect.await {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{addr} still accepts connections after {timeout:?}")
}

/// When each step of a new pod's way into a Service happened.
struct Arrival {
    created: Instant,
    /// A watch saw the pod's Ready condition True.
    ready: Instant,
    /// A watch saw the Service's EndpointSlice list the pod as ready.
    endpoint: Instant,
    /// The pod answered a request through the ClusterIP.
    answered: Instant,
    pod_ip: String,
}

/// Creates pod `name` as the only endpoint of the Service `service` at `addr` and times
/// its arrival.
async fn arrival(
    client: &kube::Client,
    service: &str,
    name: &str,
    addr: SocketAddr,
) -> Result<Arrival> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let prober = {
        let name = name.to_string();
        tokio::spawn(async move {
            loop {
                let once = get_once(Target::to(addr));
                if let Ok(Ok(body)) = tokio::time::timeout(Duration::from_secs(1), once).await {
                    if body == name.as_bytes() {
                        return Instant::now();
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let ready = {
        let (pods, name) = (pods.clone(), name.to_string());
        tokio::spawn(async move {
            let pod = wait_ready(&pods, &name, Duration::from_secs(60)).await?;
            let ip = pod.status.and_then(|s| s.pod_ip).unwrap_or_default();
            anyhow::Ok((Instant::now(), ip))
        })
    };
    let endpoint = {
        let cfg =
            watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
        let mut stream = watcher::watcher(slices, cfg).boxed();
        let name = name.to_string();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                if let Ok(Event::Apply(s) | Event::InitApply(s)) = event {
                    let listed = s.endpoints.iter().any(|e| {
                        e.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(&name)
                            && e.conditions.as_ref().and_then(|c| c.ready) == Some(true)
                    });
                    if listed {
                        return Some(Instant::now());
                    }
                }
            }
            None
        })
    };
    // Let the watches start before the pod exists.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let created = Instant::now();
    pods.create(&PostParams::default(), &pod(name, service))
        .await?;
    let (ready, pod_ip) = ready.await??;
    let within = |what: &'static str| move |_| anyhow::anyhow!("{name}: no {what} within 30 s");
    let endpoint = tokio::time::timeout(Duration::from_secs(30), endpoint)
        .await
        .map_err(within("endpoint"))??
        .context("endpoint watch ended")?;
    let answered = tokio::time::timeout(Duration::from_secs(30), prober)
        .await
        .map_err(within("answer through the ClusterIP"))??;
    Ok(Arrival {
        created,
        ready,
        endpoint,
        answered,
        pod_ip,
    })
}
