//! Node agent benchmark: pod create-to-Ready latency, the agent's overhead over the
//! runtime's own container start, and the memory the node costs the server.
//!
//! As root, with the busybox test image (`/bin/busybox` from Debian's `busybox-static`):
//!
//! 1. runc alone: `runc create` + `runc start` of a busybox `sleep` container from a fresh
//!    bundle (its own rootfs copy and `config.json` from `runc spec`), R times, no skiff;
//! 2. a `skiff server` with `SKIFF_NODE=off` (no node agent, proxy or DNS), idle: its RSS;
//! 3. a `skiff server` with its node, in a network namespace of its own (see
//!    [`skiff_bench::node`]), image loaded: idle RSS with 0 pods; then N pods bound by
//!    `spec.nodeName` created one at a time, each timed from the create call's return to a
//!    watch event showing its Ready condition True (the watch starts before the creates);
//!    RSS and CPU with those N pods running (server, and the per-container shims); the same
//!    N pods again B at a time, and one at a time through the scheduler (no `nodeName`).
//!
//! Pods are deleted and their containers gone between variants (containers the agent
//! leaves behind are reported and removed). Everything it creates (namespace, containers,
//! cgroups, server, bundles) is removed on exit, also on error or on Ctrl-C while
//! measuring. Prints Markdown.
//!
//! Usage (as root): `pod-startup [--skiff PATH] [--pods N] [--batch B] [--runc-runs R]
//! [--server-log FILE]`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node as NodeObject, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use skiff_bench::node::{self, run, Node};
use skiff_bench::{is_ready, percentile, signed_ms};
use tokio::sync::{mpsc, oneshot};

/// The image the pods run.
const IMAGE: &str = "busybox:bench";
/// What every container runs (as in the runc baseline).
const COMMAND: [&str; 2] = ["sleep", "3600"];

#[derive(Parser)]
#[command(about = "Node agent benchmark: pod create-to-Ready, overhead over runc, RSS")]
struct Args {
    /// The skiff binary (default: `skiff` next to this executable).
    #[arg(long)]
    skiff: Option<PathBuf>,
    /// Pods per variant.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// Pods created at once in the batched variant.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Containers started with runc alone, for the baseline.
    #[arg(long, default_value_t = 20)]
    runc_runs: usize,
    /// Seconds a server idles before its RSS is read.
    #[arg(long, default_value_t = 5)]
    settle: u64,
    /// Write the node's server log here at the end (with `SKIFF_LOG=info,skiff_node=debug`
    /// it shows each pod's steps with timestamps).
    #[arg(long)]
    server_log: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let skiff = node::preflight("pod-startup", &["tar", "cp"], args.skiff.as_deref())?;
    let load_before = load_average();
    let layer = skiff_node::testing::busybox_layer().with_context(|| {
        format!(
            "read {} (install busybox-static)",
            skiff_node::testing::HOST_BUSYBOX
        )
    })?;

    eprintln!("runc alone: {} containers", args.runc_runs);
    let baseline = runc_baseline(&layer, args.runc_runs)?;

    eprintln!("server without a node (SKIFF_NODE=off)");
    let bare_rss = {
        let bare = Node::start_with_env(&skiff, &[("SKIFF_NODE", "off")])?;
        let pid = bare.pid().context("no server pid")?;
        node::block_on(&bare, async {
            tokio::time::sleep(Duration::from_secs(args.settle)).await;
            Ok(Memory::of(pid))
        })?
    };

    let node = Node::start(&skiff)?;
    let archive = skiff_node::testing::busybox_oci_archive(IMAGE)?;
    node.load_image(&archive)?;
    eprintln!("server with its node ready in netns {}", node.netns());
    let results = node::block_on(&node, measure(&node, &args));
    if let Some(path) = &args.server_log {
        std::fs::write(path, node.log().join("\n"))
            .with_context(|| format!("write {}", path.display()))?;
    }
    let results = results?;
    report(
        &args,
        &baseline,
        bare_rss,
        &results,
        [load_before, load_average()],
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Memory.

/// Resident memory of a process, from `/proc/PID/status`, in KiB.
#[derive(Clone, Copy, Default)]
struct Memory {
    rss: u64,
    /// Private anonymous memory (heap, stacks): what the process itself allocated, unlike
    /// the binary's pages that processes of the same executable share.
    anon: u64,
    /// Proportional set size: shared pages divided among the processes sharing them, so
    /// the shims' sum is what they cost together.
    pss: u64,
}

impl Memory {
    fn of(pid: u32) -> Memory {
        let read = |file: &str| std::fs::read_to_string(format!("/proc/{pid}/{file}"));
        let status = read("status").unwrap_or_default();
        let rollup = read("smaps_rollup").unwrap_or_default();
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss: field(&status, "VmRSS:"),
            anon: field(&status, "RssAnon:"),
            pss: field(&rollup, "Pss:"),
        }
    }

    fn add(self, other: Memory) -> Memory {
        Memory {
            rss: self.rss + other.rss,
            anon: self.anon + other.anon,
            pss: self.pss + other.pss,
        }
    }
}

/// CPU time, in seconds, a process used itself and its waited-for children (runc, `ip`,
/// ...) used.
fn cpu_seconds(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, utime,
    // stime, cutime and cstime are 14 to 17.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let sum = |i: usize| ticks.iter().skip(i).take(2).sum::<u64>() as f64 / hz;
    (sum(0), sum(2))
}

/// The server's CPU use while idle, in % of one core: itself and its children.
#[derive(Clone, Copy, Default)]
struct IdleCpu {
    server: f64,
    children: f64,
}

/// Idles `secs` seconds and measures the server's CPU use meanwhile.
async fn idle_cpu(pid: u32, secs: u64) -> IdleCpu {
    let before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let after = cpu_seconds(pid);
    let percent = |a: f64, b: f64| (a - b) / secs as f64 * 100.0;
    IdleCpu {
        server: percent(after.0, before.0),
        children: percent(after.1, before.1),
    }
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The node's container shims (`skiff internal-shim <data-dir>/...`) and their memory.
fn shims(node: &Node) -> (usize, Memory) {
    let dir = node.data_dir().as_os_str().as_encoded_bytes().to_vec();
    let mut found = (0, Memory::default());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.get(1) == Some(&&b"internal-shim"[..])
            && args.get(2).is_some_and(|a| a.starts_with(&dir))
        {
            found.0 += 1;
            found.1 = found.1.add(Memory::of(pid));
        }
    }
    found
}

// ---------------------------------------------------------------------------------------
// The runtime alone.

/// Timings of runc alone, per container.
struct Baseline {
    create: Vec<Duration>,
    start: Vec<Duration>,
    total: Vec<Duration>,
}

/// runc containers of the baseline and their cgroup parent, removed on drop.
struct RuncBench {
    dir: tempfile::TempDir,
    cgroup_parent: String,
    ids: Vec<String>,
}

impl RuncBench {
    fn root(&self) -> PathBuf {
        self.dir.path().join("runc")
    }

    fn runc(&self) -> Command {
        let mut cmd = Command::new("runc");
        cmd.arg("--root").arg(self.root());
        cmd
    }

    /// `runc create` then `runc start` of container `id` from `bundle`; their durations.
    fn create_start(&mut self, id: &str, bundle: &Path) -> Result<(Duration, Duration)> {
        self.ids.push(id.to_string());
        // The container inherits runc's stdio: no pipes, or waiting for their end would
        // wait for the container.
        let log = self.dir.path().join("runc.log");
        let t0 = Instant::now();
        let status = self
            .runc()
            .args(["create", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .status()?;
        let t1 = Instant::now();
        if !status.success() {
            bail!(
                "runc create: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        run(self.runc().args(["start", id]))?;
        Ok((t1 - t0, t1.elapsed()))
    }
}

impl Drop for RuncBench {
    fn drop(&mut self) {
        use skiff_node::runtime::{RuncConfig, RuncRuntime};
        for id in &self.ids {
            let _ = self.runc().args(["delete", "--force", id]).output();
        }
        let mut cfg = RuncConfig::new(self.dir.path().join("runtime"), vec!["true".into()]);
        cfg.cgroup_parent = self.cgroup_parent.clone();
        if let Ok(rt) = RuncRuntime::new(cfg) {
            rt.remove_cgroup_parent();
        }
    }
}

/// Starts `runs` busybox containers with runc alone, each from a fresh bundle (prepared
/// outside the timing), and removes each after.
fn runc_baseline(layer: &[u8], runs: usize) -> Result<Baseline> {
    let mut bench = RuncBench {
        dir: tempfile::tempdir()?,
        cgroup_parent: format!("skiff-bench-runc-{}", skiff_node::unique_suffix()),
        ids: Vec::new(),
    };
    let dir = bench.dir.path().to_path_buf();
    let base = dir.join("base");
    std::fs::create_dir_all(&base)?;
    std::fs::write(dir.join("layer.tar"), layer)?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(dir.join("layer.tar"))
        .arg("-C")
        .arg(&base))?;
    run(Command::new("runc").arg("spec").current_dir(&dir))?;
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(COMMAND);
    config["root"] = json!({"path": "rootfs", "readonly": false});

    let mut out = Baseline {
        create: Vec::new(),
        start: Vec::new(),
        total: Vec::new(),
    };
    for i in 0..runs {
        let id = format!("bench-{i}");
        let bundle = dir.join(&id);
        std::fs::create_dir_all(&bundle)?;
        run(Command::new("cp")
            .arg("-a")
            .arg(&base)
            .arg(bundle.join("rootfs")))?;
        config["hostname"] = json!(id);
        config["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", bench.cgroup_parent));
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&config)?)?;
        let (create, start) = bench.create_start(&id, &bundle)?;
        out.create.push(create);
        out.start.push(start);
        out.total.push(create + start);
        run(bench.runc().args(["delete", "--force", &id]))?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Pods.

/// One variant's create-to-Ready figures.
struct Variant {
    label: String,
    /// From the create call's return to the Ready event, ms (negative if the event came
    /// first, which concurrent creates can do).
    to_ready: Vec<f64>,
    /// The create calls themselves.
    create_calls: Vec<Duration>,
}

/// What was measured on the node.
struct Results {
    node_name: String,
    idle: Memory,
    /// Server and shims with the first variant's pods running.
    loaded: Memory,
    shims: (usize, Memory),
    /// The server once every pod was deleted again.
    after: Memory,
    variants: Vec<Variant>,
    /// Containers still there 30 s after their pods were deleted.
    leaked: Vec<String>,
    /// The server's CPU use idle with 0 and with N pods.
    idle_cpu: (IdleCpu, IdleCpu),
}

/// When pods first showed Ready on a watch that started before they were created.
struct ReadyTimes {
    events: mpsc::UnboundedReceiver<(String, Instant)>,
    seen: HashMap<String, Instant>,
}

impl ReadyTimes {
    /// Starts the watch and returns once its initial list is done.
    async fn watch(pods: Api<Pod>) -> Result<ReadyTimes> {
        let (tx, events) = mpsc::unbounded_channel();
        let (init_tx, init) = oneshot::channel();
        tokio::spawn(async move {
            let mut stream = watcher::watcher(pods, watcher::Config::default()).boxed();
            let mut init_tx = Some(init_tx);
            let mut sent = HashSet::new();
            while let Some(event) = stream.next().await {
                let at = Instant::now();
                match event {
                    Ok(Event::InitDone) => {
                        if let Some(tx) = init_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Apply(p) | Event::InitApply(p)) if is_ready(&p) => {
                        let name = p.metadata.name.unwrap_or_default();
                        if sent.insert(name.clone()) && tx.send((name, at)).is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), init)
            .await
            .context("pod watch: no initial list within 30 s")??;
        Ok(ReadyTimes {
            events,
            seen: HashMap::new(),
        })
    }

    /// When each of `names` turned Ready, in order.
    async fn wait(&mut self, names: &[String], timeout: Duration) -> Result<Vec<Instant>> {
        let deadline = tokio::time::Instant::now() + timeout;
        while let Some(missing) = names.iter().find(|n| !self.seen.contains_key(*n)) {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some((name, at))) => {
                    self.seen.insert(name, at);
                }
                Ok(None) => bail!("pod watch ended"),
                Err(_) => bail!("pod {missing} not Ready within {timeout:?}"),
            }
        }
        Ok(names.iter().map(|n| self.seen[n]).collect())
    }
}

/// A busybox pod running `sleep`, on `node` if given (else the scheduler places it).
fn pod(name: &str, node: Option<&str>) -> Pod {
    let mut spec = json!({
        "terminationGracePeriodSeconds": 0,
        "containers": [{
            "name": "main",
            "image": IMAGE,
            "imagePullPolicy": "Never",
            "command": COMMAND,
        }],
    });
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "pod-startup"}},
        "spec": spec,
    }))
    .expect("a valid Pod")
}

/// Creates pods `prefix-0..n`, `batch` at a time (each batch all at once, the next once
/// all of it is Ready), and times each from its create call's return to Ready.
async fn variant(
    pods: &Api<Pod>,
    ready: &mut ReadyTimes,
    label: String,
    prefix: &str,
    n: usize,
    batch: usize,
    node: Option<&str>,
) -> Result<Variant> {
    let mut out = Variant {
        label,
        to_ready: Vec::new(),
        create_calls: Vec::new(),
    };
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in names.chunks(batch.max(1)) {
        let creates = chunk.iter().map(|name| async move {
            let t0 = Instant::now();
            pods.create(&PostParams::default(), &pod(name, node))
                .await
                .with_context(|| format!("create pod {name}"))?;
            anyhow::Ok((t0, Instant::now()))
        });
        let created = futures::future::try_join_all(creates).await?;
        let readies = ready.wait(chunk, Duration::from_secs(60)).await?;
        for ((name, (t0, t1)), at) in chunk.iter().zip(created).zip(readies) {
            let to_ready = signed_ms(t1, at);
            if to_ready > 500.0 {
                eprintln!("slow: {name} Ready {to_ready:.0} ms after its create returned");
            }
            out.create_calls.push(t1 - t0);
            out.to_ready.push(to_ready);
        }
    }
    Ok(out)
}

/// Deletes every pod and waits until they and their containers are gone. Containers the
/// agent leaves behind for 30 s after their pod is gone are removed here (so the next
/// variant starts clean) and returned.
async fn delete_all(pods: &Api<Pod>, node: &Node) -> Result<Vec<String>> {
    let now = DeleteParams::default().grace_period(0);
    for p in pods.list(&ListParams::default()).await? {
        let name = p.metadata.name.unwrap_or_default();
        match pods.delete(&name, &now).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pods.list(&ListParams::default()).await?.items.is_empty() {
        if Instant::now() > deadline {
            bail!("pods left 60 s after deleting them");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Listing fails while a container is being removed: then look again.
        if let Ok(left) = node.containers() {
            if left.is_empty() {
                return Ok(Vec::new());
            }
            if Instant::now() > deadline {
                eprintln!("containers left 30 s after their pods were gone: {left:?}");
                node.remove_containers();
                return Ok(left);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn measure(node: &Node, args: &Args) -> Result<Results> {
    let pid = node.pid().context("no server pid")?;
    let client = node.client().await?;
    let nodes: Api<NodeObject> = Api::all(client.clone());
    let node_name = nodes
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .find_map(|n| n.metadata.name)
        .context("no Node registered")?;
    let idle_cpu_0 = idle_cpu(pid, args.settle).await;
    let idle = Memory::of(pid);

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut ready = ReadyTimes::watch(pods.clone()).await?;
    let n = args.pods;
    let on = Some(node_name.as_str());
    eprintln!("{n} pods on {node_name}, one at a time");
    let mut variants = vec![
        variant(
            &pods,
            &mut ready,
            "`nodeName`, one at a time".into(),
            "one",
            n,
            1,
            on,
        )
        .await?,
    ];
    let idle_cpu_n = idle_cpu(pid, args.settle).await;
    let shims = shims(node);
    let loaded = Memory::of(pid);
    let mut leaked = delete_all(&pods, node).await?;

    eprintln!("{n} pods on {node_name}, {} at a time", args.batch);
    let label = format!("`nodeName`, {} at a time", args.batch);
    variants.push(variant(&pods, &mut ready, label, "batch", n, args.batch, on).await?);
    leaked.extend(delete_all(&pods, node).await?);

    eprintln!("{n} pods through the scheduler, one at a time");
    let label = "scheduler, one at a time".to_string();
    variants.push(variant(&pods, &mut ready, label, "sched", n, 1, None).await?);
    leaked.extend(delete_all(&pods, node).await?);
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let after = Memory::of(pid);

    Ok(Results {
        node_name,
        idle,
        loaded,
        shims,
        after,
        variants,
        leaked,
        idle_cpu: (idle_cpu_0, idle_cpu_n),
    })
}

// ---------------------------------------------------------------------------------------
// The report.

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(args: &Args, baseline: &Baseline, bare: Memory, results: &Results, load: [String; 2]) {
    println!(
        "## Pod create-to-Ready: busybox `sleep`, image present, {} pods per variant, node {}\n",
        args.pods, results.node_name
    );
    println!(
        "{} cores; load average (1 min) {} at the start, {} at the end\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load[0],
        load[1]
    );
    println!("| variant | p50 | p99 | max | create call p50 |");
    println!("|---|---|---|---|---|");
    for v in &results.variants {
        let mut to_ready = v.to_ready.clone();
        to_ready.sort_by(f64::total_cmp);
        let mut calls = v.create_calls.clone();
        calls.sort();
        println!(
            "| {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} ms |",
            v.label,
            percentile(&to_ready, 0.5),
            percentile(&to_ready, 0.99),
            to_ready.last().copied().unwrap_or_default(),
            ms(percentile(&calls, 0.5)),
        );
    }

    let first = &results.variants[0];
    println!(
        "\n{}, by pods already running: {}",
        first.label,
        first
            .to_ready
            .chunks(10)
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.to_vec();
                c.sort_by(f64::total_cmp);
                format!(
                    "{}–{}: p50 {:.0} ms, max {:.0} ms",
                    i * 10,
                    i * 10 + c.len() - 1,
                    percentile(&c, 0.5),
                    c.last().copied().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    );

    println!(
        "\n## runc alone: {} busybox containers, fresh bundle each\n",
        baseline.total.len()
    );
    println!("| step | p50 | p99 | max |");
    println!("|---|---|---|---|");
    for (step, times) in [
        ("`runc create`", &baseline.create),
        ("`runc start`", &baseline.start),
        ("create + start", &baseline.total),
    ] {
        let mut t = times.clone();
        t.sort();
        println!(
            "| {step} | {:.1} ms | {:.1} ms | {:.1} ms |",
            ms(percentile(&t, 0.5)),
            ms(percentile(&t, 0.99)),
            ms(t.last().copied().unwrap_or_default()),
        );
    }

    let mut sequential = results.variants[0].to_ready.clone();
    sequential.sort_by(f64::total_cmp);
    let mut runc = baseline.total.clone();
    runc.sort();
    let p99 = results
        .variants
        .iter()
        .map(|v| {
            let mut t = v.to_ready.clone();
            t.sort_by(f64::total_cmp);
            percentile(&t, 0.99)
        })
        .fold(0.0, f64::max);
    println!(
        "\nagent overhead per pod (create-to-Ready p50 one at a time - runc create+start p50): \
         {:.0} ms; worst p99 {:.0} ms (target < 1 s)",
        percentile(&sequential, 0.5) - ms(percentile(&runc, 0.5)),
        p99,
    );

    let (count, shim_mem) = results.shims;
    let per_shim = |kib: u64| mib(kib / count.max(1) as u64);
    println!("\n## Memory (VmRSS; RssAnon in brackets: private heap and stacks)\n");
    println!("| process | RSS |");
    println!("|---|---|");
    let row = |what: &str, m: Memory| {
        println!("| {what} | {} ({}) |", mib(m.rss), mib(m.anon));
    };
    row("server, `SKIFF_NODE=off`, idle", bare);
    row("server with its node, 0 pods, idle", results.idle);
    println!(
        "| **node's share** (difference) | **{}** ({}) |",
        mib(results.idle.rss.saturating_sub(bare.rss)),
        mib(results.idle.anon.saturating_sub(bare.anon)),
    );
    row(
        &format!("server with its node, {} pods running", args.pods),
        results.loaded,
    );
    println!(
        "| {count} shims, total | {} ({}); PSS {} |",
        mib(shim_mem.rss),
        mib(shim_mem.anon),
        mib(shim_mem.pss),
    );
    println!(
        "| each shim | {} ({}); PSS {} |",
        per_shim(shim_mem.rss),
        per_shim(shim_mem.anon),
        per_shim(shim_mem.pss),
    );
    row(
        &format!(
            "server after {} pods came and went",
            args.pods * results.variants.len()
        ),
        results.after,
    );
    println!(
        "\n## Server CPU while idle for {} s (% of one core)\n",
        args.settle
    );
    println!("| pods running | server | its children (runc, ...) |");
    println!("|---|---|---|");
    for (pods, cpu) in [(0, results.idle_cpu.0), (args.pods, results.idle_cpu.1)] {
        println!("| {pods} | {:.1} % | {:.1} % |", cpu.server, cpu.children);
    }
    if !results.leaked.is_empty() {
        println!(
            "\n**{} containers outlived their pods** (removed by the benchmark): {:?}",
            results.leaked.len(),
            results.leaked
        );
    }
}
