//! Wiring of the controllers, the scheduler and the gateway controller into `skiff server`.

use crate::Components;
use skiff_auth::components;

/// The controllers' identity: upstream's controller manager user, bound to its role and to
/// every controller role (decision 0036).
fn controller_manager() -> skiff_apimachinery::user::UserInfo {
    components::user("system:kube-controller-manager")
}

/// Starts the controllers and the scheduler as API clients of the local server, their
/// metrics in the process registry `registry`. They run in the background: start-up does
/// not wait for them, and they retry until the API answers. Returns the controllers'
/// metrics, for the node lifecycle controllers.
pub async fn start(
    components: &Components,
    registry: &skiff_metrics::Registry,
) -> anyhow::Result<skiff_reconcile::Metrics> {
    let client = components
        .client("kube-controller-manager", controller_manager())
        .await?;
    let metrics = skiff_controllers::spawn_all(
        client.clone(),
        skiff_reconcile::Metrics::with_registry(registry),
    );
    // The controllers that give namespaces their in-cluster identity: the `default`
    // ServiceAccount, and the cluster CA (as the controller manager's --root-ca-file).
    let ca_file = components.data_dir.join("pki").join("ca.crt");
    let ca = std::fs::read_to_string(&ca_file)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", ca_file.display()))?;
    tokio::spawn(skiff_controllers::serviceaccount::run(
        client.clone(),
        metrics.clone(),
    ));
    // The kube-apiserver-client signer, with the CA as --cluster-signing-{cert,key}-file.
    let ca_key_file = components.data_dir.join("pki").join("ca.key");
    let ca_key = std::fs::read_to_string(&ca_key_file)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", ca_key_file.display()))?;
    tokio::spawn(skiff_controllers::csrsigning::run(
        client.clone(),
        metrics.clone(),
        ca.clone(),
        ca_key,
    ));
    tokio::spawn(skiff_controllers::rootca::run(client, metrics.clone(), ca));
    let scheduler_metrics = skiff_scheduler::metrics::SchedulerMetrics::default();
    registry.register(|r| scheduler_metrics.register(r));
    tokio::spawn(skiff_scheduler::run_with_metrics(
        components
            .client("kube-scheduler", components::user("system:kube-scheduler"))
            .await?,
        scheduler_metrics,
    ));
    // The Gateway API is built in: CRDs, GatewayClass `skiff` and the status controller
    // (each node runs the data plane with its service networking, see net.rs).
    tokio::spawn(skiff_gateway::run_control_plane(
        components
            .client(
                "gateway-controller",
                components::controller("gateway-controller"),
            )
            .await?,
    ));
    tracing::info!("controllers and scheduler started");
    Ok(metrics)
}

/// Starts the node lifecycle, taint-eviction and pod GC controllers (decision 0023): a node
/// unheard of for `grace` is NotReady and its pods are replaced elsewhere.
pub async fn start_node_lifecycle(
    components: &Components,
    grace: std::time::Duration,
    metrics: skiff_reconcile::Metrics,
) -> anyhow::Result<()> {
    let options = skiff_controllers::nodelifecycle::Options {
        grace,
        ..Default::default()
    };
    skiff_controllers::nodelifecycle::spawn(
        components
            .client("kube-controller-manager", controller_manager())
            .await?,
        options,
        metrics,
    );
    Ok(())
}
