//! `skiff killall` and `skiff uninstall` (decision 0037): stop the server or agent of a
//! data dir and everything its node runs, leaving nothing of skiff on the host; uninstall
//! then deletes the data. The clean-up itself is `skiff_node::cleanup`, shared with the
//! e2e harness.

use anyhow::Context;
use skiff_node::cleanup::{self, NodeSettings};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a server or agent gets to stop on SIGTERM (its graceful node shutdown
/// included) before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub struct KillallArgs {
    /// The data dir of the server or agent to stop.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = "./skiff-data")]
    data_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct UninstallArgs {
    /// The data dir to stop and delete (no default: it is deleted).
    #[arg(long)]
    data_dir: PathBuf,
}

/// `skiff killall`.
pub fn killall(args: KillallArgs) -> anyhow::Result<()> {
    let dir = data_dir(&args.data_dir)?;
    stop_everything(&dir)
}

/// `skiff uninstall`: killall, then the data dir goes, under its lock so nothing starts
/// on it meanwhile.
pub fn uninstall(args: UninstallArgs) -> anyhow::Result<()> {
    let dir = data_dir(&args.data_dir)?;
    stop_everything(&dir)?;
    let lock = crate::security::lock_data_dir(&dir, "stop it before uninstalling")?;
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    drop(lock);
    println!("removed {}", dir.display());
    Ok(())
}

/// The data dir as an absolute path, refused unless it is a skiff data dir: killall
/// unmounts everything under it, and uninstall deletes it.
fn data_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = std::path::absolute(dir).with_context(|| format!("data dir {}", dir.display()))?;
    let entries: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("data dir {}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let names: Vec<&str> = entries.iter().map(String::as_str).collect();
    if !cleanup::is_data_dir(&names) {
        anyhow::bail!(
            "refusing {}: not a skiff data dir (no skiff.lock or {})",
            dir.display(),
            cleanup::SETTINGS_FILE
        );
    }
    Ok(dir)
}

fn stop_everything(dir: &Path) -> anyhow::Result<()> {
    for pid in cleanup::stop_lock_holders(&dir.join("skiff.lock"), STOP_GRACE) {
        println!("stopped skiff process {pid}");
    }
    if !cleanup::lock_holders(&dir.join("skiff.lock")).is_empty() {
        anyhow::bail!("a skiff process on {} did not stop", dir.display());
    }
    let recorded = NodeSettings::load(dir);
    let settings = recorded.clone().unwrap_or_default();
    let mut report = cleanup::remove_pods(dir, &settings);
    // The bridge and tables are only this data dir's if its node ran here.
    if recorded.is_some() {
        let network = skiff_apimachinery::network::ClusterNetwork::default().cluster_cidr();
        let net =
            cleanup::remove_host_network(&settings, &[skiff_net::proxy::rules::TABLE], &network);
        report.removed.extend(net.removed);
        report.failed.extend(net.failed);
    }
    for line in &report.removed {
        println!("removed {line}");
    }
    if !report.failed.is_empty() {
        anyhow::bail!("could not remove:\n  {}", report.failed.join("\n  "));
    }
    Ok(())
}
