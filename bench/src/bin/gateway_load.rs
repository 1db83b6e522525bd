//! Gateway benchmark (issue 16): skiff's built-in Gateway against Debian's nginx as a
//! reverse proxy to the same pods, on the same run.
//!
//! Starts its own `skiff server` (with its node) as root in a network namespace of its own
//! (see [`skiff_bench::node`]), runs P pods of its own making (`gateway-load serve 8080`,
//! this very binary, answering its pod name) behind a Service, a Gateway of class `skiff`
//! with an HTTP listener on port 80 of the node address and an HTTPRoute for `Host: bench`
//! to the Service; and an nginx (`worker_processes` = cores, upstream keep-alive, access
//! log off as the gateway's) on port 8081 of the node address proxying to the same pods.
//! Then, from the node (this process):
//!
//! 1. closed-loop GETs from C clients for D seconds, keep-alive and a connection per
//!    request, nginx / gateway / gateway / nginx, per client count: requests/s, p50, p99;
//! 2. route change to traffic: from the create of a new HTTPRoute to its first answer
//!    through the gateway (a prober retries every millisecond);
//! 3. endpoint change to traffic: from a new pod's Ready (watch) to its first answer
//!    through the gateway, as the only endpoint of its Service;
//! 4. memory: the routing table for 1,000 HTTPRoutes built in this process (bytes held,
//!    from a counting allocator), and the server's RSS before and after 1,000 HTTPRoutes
//!    exist and serve; then a route change to traffic with them in place.
//!
//! Everything it creates (namespace, containers, cgroups, server, nginx) is removed on
//! exit, also on error or Ctrl-C. Prints Markdown.
//!
//! Usage (as root): `gateway-load [--skiff PATH] [--seconds D] [--clients 16,64]
//! [--pods P] [--routes N] [--rounds R]`; `gateway-load serve PORT` is the in-pod server.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use skiff_bench::http::{self, get_once, load, wait_ready, Mode, Run, Target};
use skiff_bench::node::{self, Node, NODE_IP};
use skiff_bench::{percentile, rss_kib, signed_ms};
use skiff_gateway::api::{Gateway, HttpRoute};

/// Heap bytes currently allocated by this process, for the routing table's size.
static HEAP: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting live bytes.
struct Counting;

// SAFETY: every call is passed through to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HEAP.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The image the pods run, built from this executable.
const IMAGE: &str = "gateway-load:bench";
/// Where the pods' server listens.
const POD_PORT: u16 = 8080;
/// The gateway's listener port.
const GATEWAY_PORT: u16 = 80;
/// nginx's port.
const NGINX_PORT: u16 = 8081;

#[derive(Parser)]
#[command(
    about = "Gateway benchmark: skiff's Gateway against nginx, route and endpoint changes, memory"
)]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// The skiff binary (default: `skiff` next to this executable).
    #[arg(long)]
    skiff: Option<PathBuf>,
    /// The nginx binary.
    #[arg(long, default_value = "nginx")]
    nginx: PathBuf,
    /// Length of each load run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent client counts, one load matrix each.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    clients: Vec<usize>,
    /// Pods behind the benchmark's Service.
    #[arg(long, default_value_t = 2)]
    pods: usize,
    /// HTTPRoutes for the memory measurement.
    #[arg(long, default_value_t = 1000)]
    routes: usize,
    /// Route changes and pod arrivals timed.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
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

fn bench(args: &Args) -> Result<()> {
    let nginx = args.nginx.to_string_lossy().into_owned();
    let skiff = node::preflight("gateway-load", &["ldd", &nginx], args.skiff.as_deref())?;
    table_memory(args.routes)?;
    let archive = http::self_image(IMAGE, "gateway-load")?;
    eprintln!("image: {} MiB", archive.len() >> 20);
    // No access log lines from either proxy: nginx's is off too.
    let node = Node::start_with_env(&skiff, &[("RUST_LOG", "info,skiff_gateway::access=off")])?;
    node.load_image(&archive)?;
    eprintln!("server ready in netns {}", node.netns());
    node::block_on(&node, measure(&node, args))
}

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

fn service(app: &str) -> Service {
    obj(json!({
        "metadata": {"name": app},
        "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 80, "targetPort": POD_PORT}]},
    }))
}

fn pod(name: &str, app: &str) -> Pod {
    obj(json!({
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
}

fn route(name: &str, host: &str, backend: &str) -> HttpRoute {
    obj(json!({
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "bench"}],
            "hostnames": [host],
            "rules": [{"backendRefs": [{"name": backend, "port": 80}]}],
        },
    }))
}

/// The `Host` header `host` for the load generator's targets (they take `'static`).
fn host(host: String) -> &'static str {
    Box::leak(host.into_boxed_str())
}

fn gateway_target(h: &'static str) -> Target {
    Target {
        host: h,
        ..Target::to(SocketAddr::new(IpAddr::from(NODE_IP), GATEWAY_PORT))
    }
}

/// The routing table of `routes` HTTPRoutes (each its own hostname, to one Service with
/// two endpoints) as the data plane holds it: bytes allocated by `config::build` and
/// still held by the table it returns.
fn table_memory(routes: usize) -> Result<()> {
    use skiff_gateway::config::{build, Inputs};
    let class: skiff_gateway::api::GatewayClass =
        obj(json!({"metadata": {"name": "skiff"}, "spec": {"controllerName": "x/y"}}));
    let gw: Gateway = obj(
        json!({"metadata": {"name": "bench", "namespace": "default"},
        "spec": {"gatewayClassName": "skiff", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}}),
    );
    let svc: Service = obj(json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80}]}}));
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice = obj(json!({
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": POD_PORT}],
        "endpoints": [{"addresses": ["10.244.0.2"]}, {"addresses": ["10.244.0.3"]}]}));
    let objects: Vec<HttpRoute> = (0..routes)
        .map(|i| {
            let mut r = route(&format!("r-{i}"), &format!("r-{i}.bench"), "web");
            r.metadata.namespace = Some("default".into());
            r
        })
        .collect();
    let inputs = Inputs {
        controller_name: "x/y",
        classes: vec![&class],
        gateways: vec![&gw],
        routes: objects.iter().collect(),
        services: vec![&svc],
        slices: vec![&slice],
        ..Default::default()
    };
    let before = HEAP.load(Ordering::Relaxed);
    let started = Instant::now();
    let (table, report) = build(&inputs);
    let took = started.elapsed();
    drop(report);
    let held = HEAP.load(Ordering::Relaxed) - before;
    let entries: usize = table.ports.values().map(|p| p.len()).sum();
    if entries != routes {
        bail!("table has {entries} entries for {routes} routes");
    }
    println!(
        "## Gateway: routing table of {routes} HTTPRoutes (in process)\n\n\
         {:.2} MiB held ({} bytes per route), built in {:.1} ms\n",
        held as f64 / (1 << 20) as f64,
        held / routes.max(1) as isize,
        took.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// nginx as a reverse proxy to `upstreams`, in `dir`, stopped on drop.
struct Nginx {
    child: Child,
}

impl Nginx {
    fn start(binary: &Path, dir: &Path, upstreams: &[SocketAddr]) -> Result<Nginx> {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let servers: String = upstreams
            .iter()
            .map(|a| format!("    server {a};\n"))
            .collect();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes {workers};\nuser root;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n  access_log off;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               keepalive_requests 100000000;\n  keepalive_timeout 75s;\n\
               upstream web {{\n{servers}    keepalive 64;\n    keepalive_requests 100000000;\n  }}\n\
               server {{\n    listen {}:{NGINX_PORT} backlog=4096;\n\
                 location / {{\n      proxy_pass http://web;\n      proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n\
                   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                   proxy_set_header X-Forwarded-Proto $scheme;\n    }}\n  }}\n}}\n",
            IpAddr::from(NODE_IP)
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf)?;
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {}", binary.display()))?;
        Ok(Nginx { child })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM to the master: it stops its workers, then itself.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill with a pid of our own child and a valid signal.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

/// Waits until `target` answers 200 with a body `accept` takes.
async fn wait_answer(
    target: Target,
    accept: impl Fn(&[u8]) -> bool,
    timeout: Duration,
) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let once = tokio::time::timeout(Duration::from_secs(1), get_once(target));
        if let Ok(Ok(body)) = once.await {
            if accept(&body) {
                return Ok(Instant::now());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{} (Host {}) did not answer within {timeout:?}",
                target.addr,
                target.host
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn measure(node: &Node, args: &Args) -> Result<()> {
    let client = node.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let gateways: Api<Gateway> = Api::namespaced(client.clone(), "default");
    let routes: Api<HttpRoute> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    // The pods, the Service, the Gateway and its route.
    services.create(&pp, &service("web")).await?;
    let mut upstreams = Vec::new();
    for i in 0..args.pods {
        pods.create(&pp, &pod(&format!("web-{i}"), "web")).await?;
    }
    for i in 0..args.pods {
        let p = wait_ready(&pods, &format!("web-{i}"), Duration::from_secs(60)).await?;
        let ip: IpAddr = p
            .status
            .and_then(|s| s.pod_ip)
            .context("a ready pod without podIP")?
            .parse()?;
        upstreams.push(SocketAddr::new(ip, POD_PORT));
    }
    // The Gateway API's CRDs are installed just after start: retry until served.
    let gw: Gateway = obj(json!({"metadata": {"name": "bench"}, "spec": {
        "gatewayClassName": "skiff",
        "listeners": [{"name": "http", "protocol": "HTTP", "port": GATEWAY_PORT}]}}));
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = gateways.create(&pp, &gw).await {
        if Instant::now() > deadline {
            bail!("Gateway not created: {e}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    routes.create(&pp, &route("bench", "bench", "web")).await?;
    let is_web = |b: &[u8]| b.starts_with(b"web-");
    let gateway = gateway_target("bench");
    wait_answer(gateway, is_web, Duration::from_secs(60)).await?;
    let nginx_dir = tempfile::tempdir()?;
    let _nginx = Nginx::start(&args.nginx, nginx_dir.path(), &upstreams)?;
    let nginx = Target {
        host: "bench",
        ..Target::to(SocketAddr::new(IpAddr::from(NODE_IP), NGINX_PORT))
    };
    wait_answer(nginx, is_web, Duration::from_secs(10))
        .await
        .map_err(|e| {
            let log =
                std::fs::read_to_string(nginx_dir.path().join("error.log")).unwrap_or_default();
            e.context(format!("nginx error log:\n{log}"))
        })?;
    eprintln!("pods {upstreams:?}; gateway :{GATEWAY_PORT}, nginx :{NGINX_PORT}");

    // Part 1: throughput and latency.
    println!(
        "## Gateway against nginx: {} pods, {} s per run, 2 runs per proxy (nginx, gateway, gateway, nginx)\n",
        args.pods, args.seconds
    );
    println!("| mode | clients | proxy | requests/s | p50 | p99 | p99.9 | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut verdicts = Vec::new();
    for mode in [Mode::KeepAlive, Mode::ConnectionPerRequest] {
        for &clients in &args.clients {
            let (mut n, mut g) = (Run::default(), Run::default());
            for through_gateway in [false, true, true, false] {
                let (target, run) = if through_gateway {
                    (gateway, &mut g)
                } else {
                    (nginx, &mut n)
                };
                // Let the previous run's connections close (TIME_WAIT is the server's).
                tokio::time::sleep(Duration::from_secs(1)).await;
                run.merge(load(target, mode, clients, args.seconds).await);
            }
            let row = |name: &str, r: &mut Run| {
                let (p50, p99) = (r.percentile_ms(0.5), r.percentile_ms(0.99));
                println!(
                    "| {} | {clients} | {name} | {:.0} | {p50:.3} ms | {p99:.3} ms | {:.3} ms | {} |",
                    mode.label(),
                    r.rate(),
                    r.percentile_ms(0.999),
                    r.errors
                );
                (r.rate(), p99)
            };
            let (nr, np99) = row("nginx", &mut n);
            let (gr, gp99) = row("skiff gateway", &mut g);
            verdicts.push(format!(
                "{}, {clients} clients: gateway/nginx requests/s {:.1} %, p99 {:.3} ms vs {:.3} ms",
                mode.label(),
                gr / nr * 100.0,
                gp99,
                np99
            ));
        }
    }
    println!();
    for v in verdicts {
        println!("- {v}");
    }

    // Part 2: route change to traffic.
    let mut route_ms = Vec::new();
    for i in 0..args.rounds {
        route_ms.push(route_to_traffic(&routes, &format!("new-{i}"), "web").await?);
    }
    // Part 3: endpoint change to traffic.
    services.create(&pp, &service("fresh")).await?;
    routes
        .create(&pp, &route("fresh", "fresh", "fresh"))
        .await?;
    let fresh = gateway_target("fresh");
    let mut endpoint_ms = Vec::new();
    for i in 0..args.rounds {
        let name = format!("fresh-{i}");
        // Nothing serves `fresh` now: the gateway answers 503 (no ready endpoints).
        wait_status(fresh, "503", Duration::from_secs(30)).await?;
        endpoint_ms.push(pod_to_traffic(&pods, fresh, &name).await?);
        pods.delete(&name, &DeleteParams::default().grace_period(0))
            .await?;
    }
    route_ms.sort_by(f64::total_cmp);
    endpoint_ms.sort_by(f64::total_cmp);
    println!(
        "\n## Gateway: changes to traffic ({} rounds)\n\n\
         - route created to its first answer: p50 {:.1} ms, max {:.1} ms (target < 1 s)\n\
         - pod Ready to its first answer through the gateway: p50 {:.1} ms, max {:.1} ms (target < 1 s)",
        args.rounds,
        percentile(&route_ms, 0.5),
        route_ms.last().copied().unwrap_or_default(),
        percentile(&endpoint_ms, 0.5),
        endpoint_ms.last().copied().unwrap_or_default(),
    );

    // Part 4: memory with many routes.
    let pid = node.pid().context("no server pid")?;
    let settle = move || async move {
        // The server gives freed heap back every few seconds (crates/skiff/src/memory.rs).
        tokio::time::sleep(Duration::from_secs(6)).await;
        rss_kib(pid)
    };
    let before = settle().await;
    let started = Instant::now();
    let created: Vec<()> = futures::stream::iter(0..args.routes)
        .map(|i| {
            let routes = routes.clone();
            async move {
                let r = route(&format!("r-{i}"), &format!("r-{i}.bench"), "web");
                routes.create(&PostParams::default(), &r).await.map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let last = gateway_target(host(format!("r-{}.bench", args.routes.saturating_sub(1))));
    wait_answer(last, is_web, Duration::from_secs(120)).await?;
    let all_serving = started.elapsed();
    let first = gateway_target("r-0.bench");
    wait_answer(first, is_web, Duration::from_secs(10)).await?;
    let after = settle().await;
    let at_scale = route_to_traffic(&routes, "one-more", "web").await?;
    let mut load_at_scale = load(gateway, Mode::KeepAlive, 16, args.seconds).await;
    println!(
        "\n## Gateway: {} HTTPRoutes\n\n\
         - server RSS (API server, store, controllers and data plane): {:.1} MiB before, {:.1} MiB with them (+{:.1} MiB)\n\
         - {} routes created (16 at a time) to the last serving: {:.1} s\n\
         - one more route created to its first answer: {at_scale:.1} ms\n\
         - keep-alive, 16 clients, with them in place: {:.0} requests/s, p99 {:.3} ms",
        created.len(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0,
        created.len(),
        all_serving.as_secs_f64(),
        load_at_scale.rate(),
        load_at_scale.percentile_ms(0.99),
    );
    Ok(())
}

/// Creates HTTPRoute `name` for Host `{name}.bench` to `backend`; milliseconds from the
/// create to the first answer through the gateway.
async fn route_to_traffic(routes: &Api<HttpRoute>, name: &str, backend: &str) -> Result<f64> {
    let h = host(format!("{name}.bench"));
    let target = gateway_target(h);
    let prober = tokio::spawn(wait_answer(
        target,
        |b| b.starts_with(b"web-"),
        Duration::from_secs(30),
    ));
    let created = Instant::now();
    routes
        .create(&PostParams::default(), &route(name, h, backend))
        .await?;
    let answered = prober.await??;
    Ok(signed_ms(created, answered))
}

/// Creates pod `name` as the only endpoint of Service `fresh`; milliseconds from its Ready
/// (seen on a watch) to its first answer through the gateway.
async fn pod_to_traffic(pods: &Api<Pod>, target: Target, name: &str) -> Result<f64> {
    let want = name.to_string();
    let prober = tokio::spawn(wait_answer(
        target,
        move |b| b == want.as_bytes(),
        Duration::from_secs(60),
    ));
    let ready = {
        let (pods, name) = (pods.clone(), name.to_string());
        tokio::spawn(async move {
            wait_ready(&pods, &name, Duration::from_secs(60)).await?;
            anyhow::Ok(Instant::now())
        })
    };
    // Let the watch start before the pod exists.
    tokio::time::sleep(Duration::from_millis(200)).await;
    pods.create(&PostParams::default(), &pod(name, "fresh"))
        .await?;
    let ready = ready.await??;
    let answered = prober.await??;
    Ok(signed_ms(ready, answered))
}

/// Waits until `target` answers with status `code` (not 200).
async fn wait_status(target: Target, code: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let want = format!("http/1.1 {code}");
    while Instant::now() < deadline {
        if let Err(e) = get_once(target).await {
            if e.to_string().starts_with(&want) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!(
        "{} (Host {}) did not answer {code} within {timeout:?}",
        target.addr,
        target.host
    )
}
