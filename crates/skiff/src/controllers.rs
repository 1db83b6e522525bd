//! Wiring of the controllers and the scheduler into `skiff server` (none yet).

use crate::Components;

/// Starts the controllers and the scheduler as API clients of the local server.
pub async fn start(_components: &Components) -> anyhow::Result<()> {
    Ok(())
}
