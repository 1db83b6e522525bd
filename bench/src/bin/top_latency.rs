//! `kubectl top` latency with many pods (issue 18: under 100 ms with 100 pods).
//!
//! Starts a server with its node, runs a Deployment of P pods (`sleep` in the busybox test
//! image), waits until `kubectl top pod` lists every one, then times R runs each of `kubectl
//! top pod`, `kubectl top node` and, as the baseline of kubectl's own start-up plus one
//! request, `kubectl get pods`, and the API server's own answer to the PodMetrics list
//! `kubectl top pod` reads, from an in-process client. The metrics API answers from the API server's memory (the
//! last scrape of each node's Summary), so `top` should cost little over `get`.
//!
//! Usage (as root): `top-latency [--skiff PATH] [--kubectl PATH] [--pods P] [--runs R]`.
//! Prints Markdown.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use skiff_bench::node::{self, Node};
use skiff_bench::percentile;

const IMAGE: &str = "busybox:bench";

#[derive(Parser)]
#[command(about = "kubectl top latency with many pods")]
struct Args {
    /// The skiff binary (default: `skiff` next to this executable).
    #[arg(long)]
    skiff: Option<PathBuf>,
    /// The kubectl to drive.
    #[arg(long, default_value = "kubectl")]
    kubectl: PathBuf,
    /// Pods to run.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Timed runs of each command.
    #[arg(long, default_value_t = 20)]
    runs: usize,
}

fn deployment(pods: usize) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: idle}}
spec:
  replicas: {pods}
  selector: {{matchLabels: {{app: idle}}}}
  template:
    metadata: {{labels: {{app: idle}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: idle
        image: {IMAGE}
        command: ["sleep", "3600"]
        resources: {{requests: {{cpu: 1m, memory: 1Mi}}}}
"#
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    let skiff = node::preflight("top-latency", &[], args.skiff.as_deref())?;
    let node = Node::start(&skiff)?;
    node.load_image(&skiff_node::testing::busybox_oci_archive(IMAGE)?)?;
    let kubeconfig = node.data_dir().join("kubeconfig");
    let kubectl_cmd = |a: &[&str]| {
        let mut cmd = Command::new(&args.kubectl);
        cmd.args(a).env("KUBECONFIG", &kubeconfig);
        cmd
    };
    let kubectl = |a: &[&str]| -> Result<String> {
        let out = kubectl_cmd(a).output().context("kubectl")?;
        if !out.status.success() {
            bail!("kubectl {a:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let mut apply = kubectl_cmd(&["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    std::io::Write::write_all(
        &mut apply.stdin.take().context("stdin")?,
        deployment(args.pods).as_bytes(),
    )?;
    if !apply.wait()?.success() {
        bail!("kubectl apply failed");
    }
    let started = Instant::now();
    kubectl(&["rollout", "status", "deployment/idle", "--timeout=1200s"])?;
    eprintln!("{} pods running after {:.1?}", args.pods, started.elapsed());
    // Every pod in `top` (the API server scrapes each node every 10 s).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows = kubectl(&["top", "pod", "--no-headers"])
            .map(|o| o.lines().count())
            .unwrap_or(0);
        if rows >= args.pods {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {rows} of {} pods in kubectl top after 120 s",
                args.pods
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let time = |a: &[&str]| -> Result<Vec<f64>> {
        let mut ms = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            let t = Instant::now();
            kubectl(a)?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        Ok(ms)
    };
    let get = time(&["get", "pods"])?;
    let top_pod = time(&["top", "pod"])?;
    let top_node = time(&["top", "node"])?;
    // The API server's own answer to what `kubectl top pod` lists, without kubectl's start-up.
    let api = node::block_on(&node, async {
        let client = node.client().await?;
        let mut ms = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            let req =
                hyper::http::Request::get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods")
                    .body(Vec::new())?;
            let t = Instant::now();
            let body = client.request_text(req).await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            if body.matches("\"containers\"").count() < args.pods {
                bail!("PodMetrics list short of {} pods", args.pods);
            }
        }
        ms.sort_by(f64::total_cmp);
        Ok(ms)
    })?;
    println!(
        "| {} pods, {} runs each | p50 | p99 |",
        args.pods, args.runs
    );
    println!("|---|---:|---:|");
    for (what, ms) in [
        ("`kubectl get pods` (kubectl start-up + one request)", &get),
        ("`kubectl top pod`", &top_pod),
        ("`kubectl top node`", &top_node),
        (
            "the API server's PodMetrics list (what `top pod` reads)",
            &api,
        ),
    ] {
        println!(
            "| {what} | {:.1} ms | {:.1} ms |",
            percentile(ms, 0.5),
            percentile(ms, 0.99)
        );
    }
    Ok(())
}
