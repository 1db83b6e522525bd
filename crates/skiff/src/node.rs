//! Wiring of the node agent into `skiff server` (not yet).

use crate::Components;

/// Starts the node agent for this host as an API client of the local server.
pub async fn start(_components: &Components) -> anyhow::Result<()> {
    Ok(())
}
