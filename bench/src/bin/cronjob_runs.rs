//! CronJob controller over time on a real node: a CronJob firing every minute, watched for
//! M minutes. Counts the Jobs it made per scheduled minute (each minute must have exactly
//! one: no missed and no duplicate runs), how late each was created after its scheduled
//! time, and whether each completed; checks `lastScheduleTime` and `lastSuccessfulTime`.
//!
//! Usage (as root): `cronjob-runs [--skiff PATH] [--minutes M]`. Prints Markdown; exits
//! non-zero when a minute was missed or run twice.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use skiff_bench::node::{self, Node};

const IMAGE: &str = "busybox:bench";

#[derive(Parser)]
#[command(about = "CronJob benchmark: every-minute schedule, no missed or duplicate runs")]
struct Args {
    /// The skiff binary (default: `skiff` next to this executable).
    #[arg(long)]
    skiff: Option<PathBuf>,
    /// How many scheduled minutes to watch.
    #[arg(long, default_value_t = 10)]
    minutes: u32,
}

fn cronjob() -> Result<CronJob> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick"},
        "spec": {"schedule": "* * * * *", "successfulJobsHistoryLimit": 100,
            "failedJobsHistoryLimit": 100,
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "work", "image": IMAGE, "command": ["true"]}]}}}}}
    }))?)
}

/// The scheduled minute a Job stands for: upstream names a CronJob's Jobs
/// `<cronjob>-<scheduled time in minutes since the epoch>`.
fn scheduled_minute(job: &Job) -> Option<i64> {
    job.metadata
        .name
        .as_deref()?
        .strip_prefix("tick-")?
        .parse()
        .ok()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let skiff = node::preflight("cronjob-runs", &[], args.skiff.as_deref())?;
    let node = Node::start(&skiff)?;
    node.load_image(&skiff_node::testing::busybox_oci_archive(IMAGE)?)?;
    let (jobs, cj, first, last) = node::block_on(&node, async {
        let client = node.client().await?;
        let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
        let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
        cjs.create(&PostParams::default(), &cronjob()?).await?;
        let created = Timestamp::now().as_second() / 60;
        // The first minute that starts after the create, and the last one watched.
        let (first, last) = (created + 1, created + i64::from(args.minutes));
        // Wait until the last watched minute's run has had 30 s to complete.
        let until = (last * 60 + 30 - Timestamp::now().as_second()).max(0) as u64;
        eprintln!("watching minutes {first}..={last} ({until} s)");
        tokio::time::sleep(Duration::from_secs(until)).await;
        let items = jobs.list(&ListParams::default()).await?.items;
        let cj = cjs.get("tick").await?;
        Ok((items, cj, first, last))
    })?;
    let mut per_minute: BTreeMap<i64, Vec<&Job>> = BTreeMap::new();
    for j in &jobs {
        if let Some(m) = scheduled_minute(j) {
            per_minute.entry(m).or_default().push(j);
        }
    }
    let mut delays = Vec::new();
    let (mut missed, mut doubled, mut incomplete) = (Vec::new(), Vec::new(), 0);
    for minute in first..=last {
        match per_minute.get(&minute).map(Vec::as_slice) {
            None | Some([]) => missed.push(minute),
            Some([j]) => {
                if !skiff_bench::job_complete(j) {
                    incomplete += 1;
                }
                let made = j
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .context("a Job without creationTimestamp")?;
                delays.push(made.0.as_second() - minute * 60);
            }
            Some(_) => doubled.push(minute),
        }
    }
    delays.sort_unstable();
    let status = cj.status.unwrap_or_default();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| scheduled minutes watched | {} |", args.minutes);
    println!(
        "| Jobs made in them | {} |",
        delays.len() + doubled.len() * 2
    );
    println!("| missed minutes | {} |", missed.len());
    println!("| minutes run twice | {} |", doubled.len());
    println!("| runs not Complete 30 s after their minute | {incomplete} |");
    println!(
        "| creation after scheduled time, median / max | {} s / {} s |",
        skiff_bench::percentile(&delays, 0.5),
        delays.last().copied().unwrap_or_default()
    );
    println!(
        "| lastScheduleTime / lastSuccessfulTime | {} / {} |",
        status
            .last_schedule_time
            .map_or("-".into(), |t| t.0.to_string()),
        status
            .last_successful_time
            .map_or("-".into(), |t| t.0.to_string())
    );
    if !missed.is_empty() || !doubled.is_empty() {
        bail!("missed minutes {missed:?}, minutes run twice {doubled:?}");
    }
    Ok(())
}
