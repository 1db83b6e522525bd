//! Streaming benchmark (issue 15): what the path kubectl → API server → node costs.
//!
//! As root, with the busybox test image, on a real node in a network namespace of its own
//! (see [`skiff_bench::node`]):
//!
//! 1. exec round trip: `kubectl exec pod -- true`, R times, against `runc exec` of the same
//!    container alone, R times; p50 and p99 of each and the difference;
//! 2. port-forward throughput over one connection: one HTTP GET of M MiB from the pod,
//!    read through `kubectl port-forward`, against the same read straight from the pod IP;
//!    the pod serves a file of that size with busybox `httpd` (sendfile), fast enough not
//!    to be the bottleneck;
//!    the server's RSS before, at its highest while streaming, and after. Rounds alternate
//!    direct and forwarded reads (best of `--rounds`), optionally with a second kubectl
//!    (`--kubectl-spdy`, e.g. 1.29's plain SPDY beside 1.31+'s WebSocket tunnel).
//!
//! Usage (as root): `exec-load [--skiff PATH] [--kubectl PATH] [--kubectl-spdy PATH]
//! [--runs R] [--mib M] [--rounds N]`.
//! Prints Markdown.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use skiff_bench::node::{self, Node};
use skiff_bench::{percentile, rss_kib};

const IMAGE: &str = "busybox:bench";

#[derive(Parser)]
#[command(about = "exec round trip against runc exec; port-forward throughput against direct")]
struct Args {
    /// The skiff binary (default: `skiff` next to this executable).
    #[arg(long)]
    skiff: Option<PathBuf>,
    /// The kubectl to drive.
    #[arg(long, default_value = "kubectl")]
    kubectl: PathBuf,
    /// Round trips of each kind.
    #[arg(long, default_value_t = 100)]
    runs: usize,
    /// MiB read over each connection.
    #[arg(long, default_value_t = 1024)]
    mib: u64,
    /// Port-forward rounds (direct and through each kubectl, alternating); the best of
    /// each is reported, as the machine may be shared.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// A second kubectl measured in the same rounds (e.g. 1.29, plain SPDY, where the
    /// first is 1.31+ tunnelling SPDY in a WebSocket).
    #[arg(long)]
    kubectl_spdy: Option<PathBuf>,
}

fn pod(node_name: &str, mib: u64) -> String {
    let blocks = mib * 16;
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "bench"}},
"spec": {{"nodeName": "{node_name}", "terminationGracePeriodSeconds": 1,
"containers": [{{"name": "main", "image": "{IMAGE}", "command": ["sh", "-c",
"dd if=/dev/zero of=/tmp/big bs=65536 count={blocks} 2>/dev/null && exec httpd -f -p 9000 -h /tmp"]}}]}}}}"#
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    let skiff = node::preflight("exec-load", &["nsenter"], args.skiff.as_deref())?;
    let node = Node::start(&skiff)?;
    let archive = skiff_node::testing::busybox_oci_archive(IMAGE)?;
    node.load_image(&archive)?;
    let kubeconfig = node.data_dir().join("kubeconfig");
    let kubectl = |a: &[&str]| -> Result<String> {
        let out = Command::new(&args.kubectl)
            .args(a)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .context("kubectl")?;
        if !out.status.success() {
            bail!("kubectl {a:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let node_name = kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"])?;
    let manifest = pod(&node_name, args.mib);
    let mut apply = Command::new(&args.kubectl)
        .args(["apply", "-f", "-"])
        .env("KUBECONFIG", &kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    std::io::Write::write_all(
        &mut apply.stdin.take().context("stdin")?,
        manifest.as_bytes(),
    )?;
    if !apply.wait()?.success() {
        bail!("kubectl apply failed");
    }
    kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/bench",
        "--timeout=60s",
    ])?;
    let ip = kubectl(&["get", "pod", "bench", "-o", "jsonpath={.status.podIP}"])?;
    // `Node::containers` prints "<id> (<state>)".
    let id = node
        .containers()?
        .into_iter()
        .filter_map(|c| c.split_whitespace().next().map(str::to_owned))
        .find(|id| id.ends_with("-main"))
        .context("no container of pod bench")?;
    let runc_root = node.data_dir().join("runtime/runc");

    // 1. exec round trips.
    let time = |cmd: &mut Command| -> Result<f64> {
        let start = Instant::now();
        let out = cmd.output()?;
        if !out.status.success() {
            bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(start.elapsed().as_secs_f64() * 1000.0)
    };
    let mut runc = Vec::new();
    let mut kube = Vec::new();
    let mut get = Vec::new();
    for _ in 0..args.runs {
        // The same client's plain API round trip: kubectl's own start-up and one request.
        get.push(time(
            Command::new(&args.kubectl)
                .args(["get", "pod", "bench", "-o", "name"])
                .env("KUBECONFIG", &kubeconfig),
        )?);
        runc.push(time(
            Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["exec", &id, "true"]),
        )?);
        kube.push(time(
            Command::new(&args.kubectl)
                .args(["exec", "bench", "-c", "main", "--", "true"])
                .env("KUBECONFIG", &kubeconfig),
        )?);
    }
    runc.sort_by(f64::total_cmp);
    kube.sort_by(f64::total_cmp);
    get.sort_by(f64::total_cmp);
    println!("## exec round trip ({} runs each)\n", args.runs);
    println!("| | p50 ms | p99 ms |\n|---|---|---|");
    println!(
        "| `runc exec <id> true` | {:.1} | {:.1} |",
        percentile(&runc, 0.5),
        percentile(&runc, 0.99)
    );
    println!(
        "| `kubectl exec bench -- true` | {:.1} | {:.1} |",
        percentile(&kube, 0.5),
        percentile(&kube, 0.99)
    );
    println!(
        "| `kubectl get pod bench` (client start-up + one request) | {:.1} | {:.1} |",
        percentile(&get, 0.5),
        percentile(&get, 0.99)
    );
    println!(
        "| exec minus runc exec | {:.1} | {:.1} |\n",
        percentile(&kube, 0.5) - percentile(&runc, 0.5),
        percentile(&kube, 0.99) - percentile(&runc, 0.99)
    );

    // 2. port-forward throughput, the server's memory watched meanwhile.
    let pid = node.pid().context("no server pid")?;
    let rss_before = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(rss_before));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let bytes = args.mib << 20;
    let load_before = load_average();
    let mut clients = vec![("`kubectl port-forward`".to_string(), args.kubectl.clone())];
    if let Some(old) = &args.kubectl_spdy {
        clients.push((format!("`{}` port-forward", old.display()), old.clone()));
    }
    let mut forwards = Vec::new();
    for (i, (_, bin)) in clients.iter().enumerate() {
        let local = 19000 + i as u16;
        let mut pf = Command::new(bin)
            .args(["port-forward", "pod/bench", &format!("{local}:9000")])
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut lines = BufReader::new(pf.stdout.take().context("stdout")?).lines();
        let first = lines.next().transpose()?.unwrap_or_default();
        if !first.contains("Forwarding from") {
            bail!("port-forward: {first}");
        }
        // The reader is kept: kubectl writes a line per connection, and a closed pipe
        // would end it.
        forwards.push((pf, format!("127.0.0.1:{local}"), lines));
    }
    // Alternating rounds: direct, then through each client, so a burst of load elsewhere
    // hits every measure alike; the best of each is kept.
    let mut best_direct = Duration::MAX;
    let mut best: Vec<Duration> = vec![Duration::MAX; clients.len()];
    let mut failed = None;
    'rounds: for _ in 0..args.rounds.max(1) {
        best_direct = best_direct.min(read_from(&format!("{ip}:9000"), bytes)?);
        for (i, (_, addr, _)) in forwards.iter().enumerate() {
            match read_from(addr, bytes) {
                Ok(d) => best[i] = best[i].min(d),
                Err(e) => {
                    failed = Some(e);
                    break 'rounds;
                }
            }
        }
    }
    for (mut pf, _, _) in forwards {
        let _ = pf.kill();
        let _ = pf.wait();
    }
    if let Some(e) = failed {
        return Err(e);
    }
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let rss_after = rss_kib(pid);
    let load_after = load_average();
    let mbs = |d: Duration| (bytes as f64 / (1 << 20) as f64) / d.as_secs_f64();
    println!(
        "## port-forward throughput ({} MiB over one connection, best of {} alternating rounds)\n",
        args.mib,
        args.rounds.max(1)
    );
    println!("| | seconds | MiB/s | of direct |\n|---|---|---|---|");
    println!(
        "| direct to the pod IP | {:.2} | {:.0} | |",
        best_direct.as_secs_f64(),
        mbs(best_direct)
    );
    for ((name, _), d) in clients.iter().zip(&best) {
        println!(
            "| {name} | {:.2} | {:.0} | {:.0} % |",
            d.as_secs_f64(),
            mbs(*d),
            100.0 * mbs(*d) / mbs(best_direct)
        );
    }
    println!(
        "\nserver RSS: {} MiB before, {} MiB at most while streaming, {} MiB after",
        rss_before >> 10,
        peak.load(Ordering::Relaxed) >> 10,
        rss_after >> 10
    );
    println!("load average (1 min): {load_before} before, {load_after} after");
    drop(node);
    Ok(())
}

/// The 1-minute load average, as /proc/loadavg says it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// GETs the pod's `/big` from `addr` and reads `bytes` of it (the headers are a few bytes
/// more), retrying while the listener comes up; returns how long the read took.
fn read_from(addr: &str, bytes: u64) -> Result<Duration> {
    // The pod writes its file before listening: a few seconds per GiB on a busy disk.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut s = match std::net::TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(e) => bail!("connect {addr}: {e}"),
        };
        std::io::Write::write_all(&mut s, b"GET /big HTTP/1.0\r\n\r\n")?;
        let start = Instant::now();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        while got < bytes {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        if got == 0 && Instant::now() < deadline {
            // The forward answered before the pod's listener was back: try again.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if got < bytes {
            bail!("{addr}: {got} of {bytes} bytes");
        }
        return Ok(start.elapsed());
    }
}
