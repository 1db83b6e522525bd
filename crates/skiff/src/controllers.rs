//! Wiring of the controllers, the scheduler and the gateway controller into `skiff server`.

use crate::Components;

/// Starts the controllers and the scheduler as API clients of the local server. They run in
/// the background: start-up does not wait for them, and they retry until the API answers.
pub async fn start(components: &Components) -> anyhow::Result<()> {
    skiff_controllers::spawn_all(components.client("kube-controller-manager").await?);
    tokio::spawn(skiff_scheduler::run(
        components.client("kube-scheduler").await?,
    ));
    // The Gateway API is built in: CRDs, GatewayClass `skiff` and the status controller
    // (each node runs the data plane with its service networking, see net.rs).
    tokio::spawn(skiff_gateway::run_control_plane(
        components.client("gateway-controller").await?,
    ));
    tracing::info!("controllers and scheduler started");
    Ok(())
}
