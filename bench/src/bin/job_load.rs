//! Job controller benchmark on a real node: a Job of C completions with parallelism P (time
//! from create to Complete), then J Jobs of one pod each created at once (time until all
//! are Complete, and the server's CPU time meanwhile).
//!
//! The controllers run inside `skiff server`, so the CPU figure is the whole server's
//! (API server, store, scheduler, node agent and every controller): an upper bound on the
//! controllers' share. Pods run `true` in the busybox test image.
//!
//! With `--hollow-nodes N` the server runs no node agent; N hollow nodes (API objects kept
//! alive, with a fake kubelet that completes each pod at once, as kubemark's) stand in, so
//! the CPU figure is the control plane's alone: the controllers, scheduler, API server and
//! store, without runc and the pod network.
//!
//! Usage (as root): `job-load [--skiff PATH] [--completions C] [--parallelism P]
//! [--jobs J] [--hollow-nodes N]`. Prints Markdown.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::TryStreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use skiff_bench::cpu_seconds;
use skiff_bench::hollow::{self, PodOutcome};
use skiff_bench::node::{self, Node};

const IMAGE: &str = "busybox:bench";

#[derive(Parser)]
#[command(about = "Job controller benchmark: one wide Job, then many small Jobs")]
struct Args {
    /// The skiff binary (default: `skiff` next to this executable).
    #[arg(long)]
    skiff: Option<PathBuf>,
    /// Completions of the wide Job.
    #[arg(long, default_value_t = 100)]
    completions: i32,
    /// Its parallelism.
    #[arg(long, default_value_t = 10)]
    parallelism: i32,
    /// Jobs of one pod created at once.
    #[arg(long, default_value_t = 1000)]
    jobs: usize,
    /// Run no node agent; this many hollow nodes complete the pods instead.
    #[arg(long)]
    hollow_nodes: Option<usize>,
    /// Give up after this many seconds per phase.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
}

fn job(name: &str, completions: i32, parallelism: i32) -> Result<Job> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"completions": completions, "parallelism": parallelism,
            "template": {"spec": {"restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "work", "image": IMAGE, "command": ["true"]}]}}}
    }))?)
}

/// Watches until `n` Jobs are Complete; returns when. A watch, not polled lists: listing
/// 1,000 Jobs five times a second would be most of the server CPU this bench measures.
async fn wait_complete(api: &Api<Job>, n: usize, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut complete = std::collections::HashSet::new();
    let stream = watcher::watcher(api.clone(), watcher::Config::default());
    futures::pin_mut!(stream);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while complete.len() < n {
        let event = tokio::select! {
            e = stream.try_next() => e?,
            _ = &mut deadline => bail!("only {} of {n} Jobs complete after {timeout:?}", complete.len()),
        };
        if let Some(Event::Apply(j) | Event::InitApply(j)) = event {
            if skiff_bench::job_complete(&j) {
                complete.insert(j.metadata.name.unwrap_or_default());
            }
        }
    }
    Ok(started.elapsed())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let skiff = node::preflight("job-load", &[], args.skiff.as_deref())?;
    let node = match args.hollow_nodes {
        Some(_) => Node::start_with_env(&skiff, &[("SKIFF_NODE", "off")])?,
        None => {
            let node = Node::start(&skiff)?;
            node.load_image(&skiff_node::testing::busybox_oci_archive(IMAGE)?)?;
            node
        }
    };
    let pid = node.pid().context("no server pid")?;
    let timeout = Duration::from_secs(args.timeout);
    let (wide, many) = node::block_on(&node, async {
        let client = node.client().await?;
        // Both kept for the whole run; the process ends with them.
        let _hollow = match args.hollow_nodes {
            Some(n) => Some((
                hollow::start_nodes(&client, n).await,
                hollow::fake_kubelet(client.clone(), None, None, PodOutcome::Succeed),
            )),
            None => None,
        };
        let wide_api: Api<Job> = Api::namespaced(client.clone(), "default");
        let cpu0 = cpu_seconds(pid);
        let started = Instant::now();
        wide_api
            .create(
                &PostParams::default(),
                &job("wide", args.completions, args.parallelism)?,
            )
            .await?;
        wait_complete(&wide_api, 1, timeout).await?;
        let wide = (started.elapsed(), cpu_seconds(pid) - cpu0);
        // Printed at once: the second phase may not finish on a slow node.
        eprintln!(
            "wide Job complete after {:.1} s (server CPU {:.1} s)",
            wide.0.as_secs_f64(),
            wide.1
        );

        let ns = "many";
        let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
        let api: Api<Job> = Api::namespaced(client.clone(), ns);
        let cpu0 = cpu_seconds(pid);
        let started = Instant::now();
        let pp = PostParams::default();
        let jobs: Vec<Job> = (0..args.jobs)
            .map(|i| job(&format!("one-{i}"), 1, 1))
            .collect::<Result<_>>()?;
        for chunk in jobs.chunks(64) {
            let made = futures::future::join_all(chunk.iter().map(|j| api.create(&pp, j))).await;
            for m in made {
                m?;
            }
        }
        let created = started.elapsed();
        wait_complete(&api, args.jobs, timeout).await?;
        let many = (created, started.elapsed(), cpu_seconds(pid) - cpu0);
        Ok((wide, many))
    })?;
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| Job of {} completions, parallelism {}: create to Complete | {:.1} s |",
        args.completions,
        args.parallelism,
        wide.0.as_secs_f64()
    );
    println!("| server CPU meanwhile | {:.1} s |", wide.1);
    println!(
        "| {} one-pod Jobs: all created | {:.1} s |",
        args.jobs,
        many.0.as_secs_f64()
    );
    println!(
        "| {} one-pod Jobs: create to all Complete | {:.1} s |",
        args.jobs,
        many.1.as_secs_f64()
    );
    println!(
        "| server CPU meanwhile ({}) | {:.1} s |",
        match args.hollow_nodes {
            Some(_) => "API, store, scheduler, controllers",
            None => "API, store, scheduler, node agent, controllers",
        },
        many.2
    );
    Ok(())
}
