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
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use skiff_bench::node::{self, Node, NODE_IP};
use skiff_bench::{is_ready, percentile, signed_ms};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

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
        Some(Cmd::Serve { port }) => serve(port),
        None => bench(&args),
    }
}

// ---------------------------------------------------------------------------------------
// The pod's HTTP server.

/// A minimal HTTP/1.1 server: every request gets this host's name (the pod's name), over
/// keep-alive connections unless the client asks to close. Exits on SIGTERM (it runs as
/// PID 1, which has no default handler).
fn serve(port: u16) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let body: Arc<[u8]> = hostname().into_bytes().into();
        let listener = TcpListener::bind(("0.0.0.0", port)).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    tokio::spawn(serve_connection(stream, body.clone()));
                }
                _ = term.recv() => return Ok(()),
            }
        }
    })
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

async fn serve_connection(mut stream: TcpStream, body: Arc<[u8]>) {
    let _ = stream.set_nodelay(true);
    let keep = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let close = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(512);
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // Answer every complete request head buffered (GETs: no bodies).
        let mut closing = false;
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = &buf[..end];
            closing = contains_ignore_case(head, b"connection: close")
                || (head.windows(8).any(|w| w == b"HTTP/1.0")
                    && !contains_ignore_case(head, b"connection: keep-alive"));
            out.extend_from_slice(if closing { &close } else { &keep }.as_bytes());
            out.extend_from_slice(&body);
            buf.drain(..end + 4);
            if closing {
                break;
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if closing {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

// ---------------------------------------------------------------------------------------
// The HTTP client.

/// Reads one `200` response from `stream` (bytes past it stay in `buf`); returns its body.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(Error::new(ErrorKind::InvalidData, head));
            }
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no content-length"))?;
            let total = end + 4 + len;
            while buf.len() < total {
                if stream.read_buf(buf).await? == 0 {
                    return Err(ErrorKind::UnexpectedEof.into());
                }
            }
            let body = buf[end + 4..total].to_vec();
            buf.drain(..total);
            return Ok(body);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Where the load generator sends requests, and from which source address.
#[derive(Clone, Copy)]
struct Target {
    addr: SocketAddr,
    /// Source address to bind (the route's choice when `None`).
    source: Option<IpAddr>,
}

impl Target {
    fn to(addr: SocketAddr) -> Target {
        Target { addr, source: None }
    }

    async fn connect(&self) -> std::io::Result<TcpStream> {
        let Some(ip) = self.source else {
            return TcpStream::connect(self.addr).await;
        };
        let socket = TcpSocket::new_v4()?;
        // Choose the port at connect time, per destination, as an unbound socket does.
        let on: libc::c_int = 1;
        // SAFETY: a valid socket fd and a c_int option value of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        socket.bind(SocketAddr::new(ip, 0))?;
        socket.connect(self.addr).await
    }
}

/// One GET on a new connection that the server closes; returns the body.
async fn get_once(target: Target) -> std::io::Result<Vec<u8>> {
    let mut stream = target.connect().await?;
    stream.set_nodelay(true)?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await?;
    let mut buf = Vec::with_capacity(512);
    let body = read_response(&mut stream, &mut buf).await?;
    // Wait for the server's FIN, so the server side holds TIME_WAIT, as with a real
    // server closing after `Connection: close`, and the client's ports are not used up.
    let mut rest = [0u8; 64];
    while stream.read(&mut rest).await? > 0 {}
    Ok(body)
}

/// How the load generator connects.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    KeepAlive,
    ConnectionPerRequest,
}

/// The outcome of one load run.
#[derive(Default)]
struct Run {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    /// Request latencies in microseconds.
    latencies: Vec<u32>,
}

impl Run {
    fn merge(&mut self, other: Run) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
    }

    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        self.latencies.sort_unstable();
        percentile(&self.latencies, p) as f64 / 1000.0
    }
}

/// `connections` closed-loop clients request `addr` for `seconds`.
async fn load(target: Target, mode: Mode, connections: usize, seconds: u64) -> Run {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let clients: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(client(target, mode, deadline)))
        .collect();
    let mut run = Run::default();
    for c in clients {
        if let Ok(r) = c.await {
            run.merge(r);
        }
    }
    run.elapsed = started.elapsed();
    run
}

async fn client(target: Target, mode: Mode, deadline: Instant) -> Run {
    let mut run = Run {
        latencies: Vec::with_capacity(1 << 16),
        ..Run::default()
    };
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        let t = Instant::now();
        let ok = match mode {
            Mode::ConnectionPerRequest => get_once(target).await.is_ok(),
            Mode::KeepAlive => {
                if conn.is_none() {
                    buf.clear();
                    conn = target.connect().await.ok();
                    if let Some(s) = &conn {
                        let _ = s.set_nodelay(true);
                    }
                }
                match conn.as_mut() {
                    Some(s) => {
                        let ok = s
                            .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                            .await
                            .is_ok()
                            && read_response(s, &mut buf).await.is_ok();
                        if !ok {
                            conn = None;
                        }
                        ok
                    }
                    None => false,
                }
            }
        };
        if ok {
            run.requests += 1;
            run.latencies.push(t.elapsed().as_micros() as u32);
        } else {
            run.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    run
}

// ---------------------------------------------------------------------------------------
// The image.

/// An OCI archive of an image whose only layer holds this executable (as `/proxy-load`)
/// and the shared libraries it loads, at their paths, dynamic loader included.
fn image_archive() -> Result<Vec<u8>> {
    use skiff_node::testing::{oci_archive, LayerBuilder, TestImageConfig};
    let exe = std::env::current_exe()?;
    let out = Command::new("ldd").arg(&exe).output().context("run ldd")?;
    let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // `libc.so.6 => /lib/.../libc.so.6 (0x..)` or `/lib64/ld-linux-x86-64.so.2 (0x..)`.
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| path.to_string())
        })
        .collect();
    files.sort();
    files.dedup();
    let mut dirs: Vec<String> = files
        .iter()
        .flat_map(|f| {
            Path::new(f)
                .ancestors()
                .skip(1)
                .map(|d| d.to_string_lossy().trim_start_matches('/').to_string())
                .filter(|d| !d.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut layer = LayerBuilder::new().dir("etc", 0o755).dir("tmp", 0o1777);
    for d in &dirs {
        layer = layer.dir(d, 0o755);
    }
    for f in &files {
        let content = std::fs::read(f).with_context(|| format!("read {f}"))?;
        layer = layer.file(f.trim_start_matches('/'), 0o755, &content);
    }
    let binary = std::fs::read(&exe).with_context(|| format!("read {}", exe.display()))?;
    layer = layer.file("proxy-load", 0o755, &binary);
    let cfg = TestImageConfig {
        entrypoint: vec!["/proxy-load".into()],
        ..Default::default()
    };
    Ok(oci_archive(IMAGE, &[layer.finish()], &cfg))
}

// ---------------------------------------------------------------------------------------
// The benchmark.

fn bench(args: &Args) -> Result<()> {
    let skiff = node::preflight("proxy-load", &["ldd"], args.skiff.as_deref())?;
    let archive = image_archive()?;
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
        addr: SocketAddr::new(pod_ip, POD_PORT),
        source: (!args.same_source).then(|| IpAddr::from(NODE_IP)),
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

/// Watches pod `name` until its Ready condition is True; returns it as seen then.
async fn wait_ready(pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<Pod> {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(pods.clone(), cfg).boxed();
    let found = tokio::time::timeout(timeout, async {
        while let Some(event) = stream.next().await {
            if let Ok(Event::Apply(p) | Event::InitApply(p)) = event {
                if is_ready(&p) {
                    return Some(p);
                }
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(p)) => Ok(p),
        _ => bail!("pod {name} not Ready within {timeout:?}"),
    }
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
