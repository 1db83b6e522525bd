//! Page update latency of `skiff ui`: the time from an API change (a Deployment scaled
//! through its `scale` subresource) to the moment the page in a headless Chromium shows the
//! new desired count, measured in the browser (a MutationObserver stamps the moment the card
//! changes; the clock is the same machine's). p50/p99 over `--changes` changes, with
//! `--pods` other pods in the view (1,000 by default: pods of a Deployment the server has no
//! node for, so they stay Pending, each a node of the tree). Also the time the page takes to
//! show the first snapshot, the browser's JS heap before and after, and (`--churn-seconds`)
//! the page's memory after a garbage collection each minute of continuous churn.
//!
//! Starts its own `skiff server` (no node) and `skiff ui`; needs Debian's chromium and
//! Playwright for Python (the venv of .ci/install-clients, or `python3`).
//!
//! Usage: `cargo run --release -p skiff-bench --bin ui-latency -- [--skiff PATH]
//! [--changes 100] [--pods 1000] [--churn-seconds 600]`

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use skiff_bench::percentile;

#[derive(Parser)]
#[command(name = "ui-latency")]
struct Args {
    /// The skiff binary (default: `skiff` next to this executable).
    #[arg(long)]
    skiff: Option<PathBuf>,
    /// How many changes are timed.
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Pods in the view besides the measured Deployment's.
    #[arg(long, default_value_t = 1000)]
    pods: i32,
    /// After the timed changes, this long of churn (the probe scaled 1 ↔ 3 every 200 ms),
    /// with the page's memory after a garbage collection sampled each minute.
    #[arg(long, default_value_t = 0)]
    churn_seconds: u64,
}

/// The JSON-lines browser driver shared with the e2e test.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    fn start() -> Result<Browser> {
        let driver =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/skiff-ui/browser/driver.py");
        let venv = std::env::var_os("SKIFF_CLIENTS_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/skiff-clients"))
            })
            .map(|d| d.join("venv/bin/python"))
            .filter(|p| p.is_file());
        let python = venv.unwrap_or_else(|| PathBuf::from("python3"));
        let mut child = Command::new(&python)
            .arg(driver)
            .arg("/usr/bin/chromium")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the browser driver with {}", python.display()))?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut b = Browser {
            child,
            stdin,
            stdout,
        };
        let hello = b.read()?;
        if hello["ready"] != true {
            bail!("browser driver: {hello}");
        }
        Ok(b)
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        serde_json::from_str(&line).with_context(|| {
            format!(
                "the browser driver said {line:?} (is Playwright installed: .ci/install-clients?)"
            )
        })
    }

    fn cmd(&mut self, cmd: Value) -> Result<Value> {
        writeln!(self.stdin, "{cmd}")?;
        let answer = self.read()?;
        if answer["ok"] != true {
            bail!("{cmd}: {answer}");
        }
        Ok(answer["value"].clone())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "close"}));
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

fn deployment(name: &str, replicas: i32) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let skiff = args.skiff.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .unwrap_or_default()
            .with_file_name("skiff")
    });
    if !skiff.is_file() {
        bail!("no skiff binary at {} (pass --skiff)", skiff.display());
    }
    let dir = tempfile::tempdir()?;
    let mut server = Command::new(&skiff)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("SKIFF_NODE", "off")
        .stderr(Stdio::piped())
        .spawn()
        .context("starting skiff server")?;
    let mut lines = BufReader::new(server.stderr.take().context("stderr")?).lines();
    let server = Killed(server);
    for line in lines.by_ref() {
        if line?.contains("skiff is ready") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let kubeconfig = dir.path().join("kubeconfig");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &Default::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    if args.pods > 0 {
        deployments
            .create(&pp, &deployment("crowd", args.pods)?)
            .await?;
        let started = Instant::now();
        loop {
            let n = pods
                .list_metadata(&kube::api::ListParams::default().labels("app=crowd"))
                .await?
                .items
                .len();
            if n as i32 >= args.pods {
                break;
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!("only {n} of {} pods after 5 minutes", args.pods);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!(
            "{} pods in {:.1}s",
            args.pods,
            started.elapsed().as_secs_f64()
        );
    }
    deployments.create(&pp, &deployment("probe", 1)?).await?;

    let mut ui = Command::new(&skiff)
        .args(["ui", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting skiff ui")?;
    let mut first = String::new();
    BufReader::new(ui.stdout.take().context("stdout")?).read_line(&mut first)?;
    let ui = Killed(ui);
    let url = first
        .trim()
        .strip_prefix("skiff ui: serving ")
        .with_context(|| format!("skiff ui printed {first:?}"))?
        .to_owned();

    let mut browser = Browser::start()?;
    let card = "#n_Deployment_default_probe";
    let desired = |n: i32| {
        format!("document.querySelector('{card} > .self .desired dd')?.textContent === '{n}'")
    };
    let crowd = format!(
        "document.querySelectorAll('#n_Deployment_default_crowd li.k-Pod').length >= {}",
        args.pods
    );
    // The first snapshot: from navigation to every pod on the page.
    let t0 = epoch_ms();
    browser.cmd(json!({"op": "goto", "url": url}))?;
    browser.cmd(json!({"op": "arm", "js": format!("{} && ({crowd})", desired(1))}))?;
    let shown = browser.cmd(json!({"op": "await", "timeout": 120000}))?;
    let snapshot_ms = shown.as_f64().unwrap_or(0.0) - t0;
    let heap = |b: &mut Browser| -> Result<f64> {
        Ok(b.cmd(json!({"op": "eval", "js": "performance.memory ? performance.memory.usedJSHeapSize : 0"}))?
            .as_f64()
            .unwrap_or(0.0)
            / 1048576.0)
    };
    let heap_before = heap(&mut browser)?;

    // The reference: the same change seen by a plain kube-rs watch in this process, so the
    // page's share (watch → model → SSE → DOM) shows apart from the API's and the load's.
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(i32, f64)>();
    let watched = deployments.clone();
    let reference = tokio::spawn(async move {
        use futures::StreamExt;
        let config = kube::runtime::watcher::Config::default().fields("metadata.name=probe");
        let mut last = None;
        let mut stream = kube::runtime::watcher(watched, config).boxed();
        while let Some(Ok(event)) = stream.next().await {
            if let kube::runtime::watcher::Event::InitDone = event {
                // Listed: changes from now on are seen.
                let _ = seen_tx.send((0, 0.0));
            }
            if let kube::runtime::watcher::Event::Apply(d) = event {
                let r = d.spec.and_then(|s| s.replicas).unwrap_or(1);
                if last != Some(r) {
                    last = Some(r);
                    let _ = seen_tx.send((r, epoch_ms()));
                }
            }
        }
    });
    seen_rx.recv().await.context("the reference watch ended")?;
    let mut latencies = Vec::with_capacity(args.changes);
    let mut watch_latencies = Vec::with_capacity(args.changes);
    // Per change: the page's time after the reference watch's.
    let mut shares = Vec::with_capacity(args.changes);
    let mut replicas = 1;
    for _ in 0..args.changes {
        replicas = if replicas == 1 { 2 } else { 1 };
        browser.cmd(json!({"op": "arm", "js": desired(replicas)}))?;
        let sent = epoch_ms();
        deployments
            .patch_scale(
                "probe",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await?;
        let seen = browser
            .cmd(json!({"op": "await", "timeout": 10000}))?
            .as_f64()
            .unwrap_or(0.0);
        latencies.push(seen - sent);
        loop {
            let (r, at) = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
                .await?
                .context("the reference watch ended")?;
            if r == replicas {
                watch_latencies.push(at - sent);
                shares.push(seen - at);
                break;
            }
        }
        // Let the controllers' follow-up writes (pods, statuses) land between changes.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let heap_after = heap(&mut browser)?;
    reference.abort();
    let mut samples = Vec::new();
    if args.churn_seconds > 0 {
        let memory = |b: &mut Browser| -> Result<(f64, u64)> {
            let m = b.cmd(json!({"op": "memory"}))?;
            Ok((
                m["heap"].as_f64().unwrap_or(0.0) / 1048576.0,
                m["elements"].as_u64().unwrap_or(0),
            ))
        };
        samples.push((0, memory(&mut browser)?));
        let started = Instant::now();
        let mut next = 60;
        let mut r = 1;
        while started.elapsed() < Duration::from_secs(args.churn_seconds) {
            r = if r == 1 { 3 } else { 1 };
            deployments
                .patch_scale(
                    "probe",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"replicas": r}})),
                )
                .await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if started.elapsed() >= Duration::from_secs(next) {
                samples.push((next, memory(&mut browser)?));
                next += 60;
            }
        }
        let end = started.elapsed().as_secs();
        if samples.last().is_none_or(|(t, _)| *t != end) {
            samples.push((end, memory(&mut browser)?));
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    watch_latencies.sort_by(|a, b| a.total_cmp(b));
    shares.sort_by(|a, b| a.total_cmp(b));
    println!("| measure | value |");
    println!("|---|---|");
    println!("| pods in the view | {} |", args.pods + 2);
    println!("| first snapshot shown (navigation → all pods on the page) | {snapshot_ms:.0} ms |");
    println!(
        "| page update after a scale, p50 / p99 / max over {} changes | {:.1} / {:.1} / {:.1} ms |",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
    println!(
        "| the same change on a kube-rs watch (reference), p50 / p99 | {:.1} / {:.1} ms |",
        percentile(&watch_latencies, 0.5),
        percentile(&watch_latencies, 0.99),
    );
    println!(
        "| the page's share (page time − watch time, per change), p50 / p99 | {:.1} / {:.1} ms |",
        percentile(&shares, 0.5),
        percentile(&shares, 0.99),
    );
    println!(
        "| browser JS heap before / after the changes | {heap_before:.1} / {heap_after:.1} MiB |"
    );
    if !samples.is_empty() {
        let row: Vec<String> = samples
            .iter()
            .map(|(t, (mib, elements))| format!("{t} s: {mib:.1} MiB, {elements} elements"))
            .collect();
        println!(
            "| churn: page memory after GC over {} s | {} |",
            args.churn_seconds,
            row.join("; ")
        );
    }
    drop(browser);
    drop(ui);
    drop(server);
    Ok(())
}
