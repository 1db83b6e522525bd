//! Wiring of the controllers and the scheduler into `skiff server`.

use crate::Components;

/// Starts the controllers and the scheduler as API clients of the local server. They run in
/// the background: start-up does not wait for them, and they retry until the API answers.
pub async fn start(components: &Components) -> anyhow::Result<()> {
    // kube's TLS client needs a process-wide crypto provider; ignore "already installed".
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = kube::config::Kubeconfig::read_from(&components.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    skiff_controllers::spawn_all(client.clone());
    tokio::spawn(skiff_scheduler::run(client));
    tracing::info!("controllers and scheduler started");
    Ok(())
}
