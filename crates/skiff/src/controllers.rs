//! Wiring of the controllers and the scheduler into `skiff server`.

use crate::Components;

/// Starts the controllers and the scheduler as API clients of the local server. They run in
/// the background: start-up does not wait for them, and they retry until the API answers.
pub async fn start(components: &Components) -> anyhow::Result<()> {
    let client = components.client().await?;
    skiff_controllers::spawn_all(client.clone());
    tokio::spawn(skiff_scheduler::run(client));
    tracing::info!("controllers and scheduler started");
    Ok(())
}
