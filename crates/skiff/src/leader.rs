//! Leader election of the controllers and the scheduler (decision 0042). On etcd, several
//! `skiff server`s may serve one cluster; only the one holding the
//! `kube-system/kube-controller-manager` Lease runs the controllers, the scheduler and the
//! gateway controller, as kube-controller-manager's `--leader-elect`. With SQLite the data
//! dir's lock already allows one server, so nothing is elected.

use std::future::Future;
use std::time::Duration;

use skiff_auth::components;
use skiff_reconcile::leaderelection::{Elector, Timing};

use crate::Components;

/// The Lease, and the name upstream's controller manager elects under.
const LEASE: &str = "kube-controller-manager";

/// kube-controller-manager's `--leader-elect-*` flags, shorter than upstream's defaults
/// (15s, 10s, 2s) so a survivor takes over within seconds.
#[derive(clap::Args)]
pub struct LeaderElectionArgs {
    /// How long the other servers wait, after the Lease last changed, before they take it
    /// over (with etcd as the datastore).
    #[arg(long, default_value = "5s", value_parser = crate::go_duration)]
    leader_elect_lease_duration: Duration,
    /// How long the leader keeps trying to renew the Lease before it gives up leading.
    #[arg(long, default_value = "3s", value_parser = crate::go_duration)]
    leader_elect_renew_deadline: Duration,
    /// How often the leader renews the Lease and the others try to take it.
    #[arg(long, default_value = "2s", value_parser = crate::go_duration)]
    leader_elect_retry_period: Duration,
}

impl LeaderElectionArgs {
    /// The durations, checked as client-go checks them.
    pub fn timing(&self) -> anyhow::Result<Timing> {
        let timing = Timing {
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
        };
        timing
            .validate()
            .map_err(|e| anyhow::anyhow!("--leader-elect-*: {e}"))?;
        Ok(timing)
    }
}

/// A candidate's identity, as upstream's: the host name and a suffix unique to this
/// process (upstream's is a UUID), so a restarted server is a new candidate and waits for
/// its predecessor's Lease to expire.
fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{host}_{}-{started:x}", std::process::id())
}

/// Runs `start` (which starts the controllers) in the background once this server holds
/// the Lease. Losing the Lease ends the process, as kube-controller-manager exits on
/// "leaderelection lost": controllers another server may now run must not keep acting
/// here, and a service manager starts the server again as a candidate.
pub async fn spawn(
    components: &Components,
    timing: Timing,
    start: impl Future<Output = anyhow::Result<()>> + Send + 'static,
) -> anyhow::Result<()> {
    let client = components
        .client(LEASE, components::user("system:kube-controller-manager"))
        .await?;
    let identity = identity();
    let mut elector = Elector::new(client, "kube-system", LEASE, &identity, timing);
    tokio::spawn(async move {
        tracing::info!(lease = LEASE, %identity, "waiting for the leader lease");
        elector.acquire().await;
        if let Err(e) = start.await {
            tracing::error!(error = %e, "starting the controllers");
            std::process::exit(1);
        }
        elector.hold().await;
        tracing::error!(
            lease = LEASE,
            "lost the leader lease; exiting so that no other server's controllers run twice"
        );
        std::process::exit(1);
    });
    Ok(())
}
