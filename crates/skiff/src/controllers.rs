//! Wiring of the controllers, the scheduler and the gateway controller into `skiff server`.

use crate::Components;
use skiff_auth::components;

/// The controller manager's own identity: it makes the controllers' ServiceAccounts, and
/// each controller acts as its account (decision 0044).
fn controller_manager() -> skiff_apimachinery::user::UserInfo {
    components::user("system:kube-controller-manager")
}

/// The User-Agent every controller's client starts with, as upstream's.
const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// Starts the controllers and the scheduler as API clients of the local server, their
/// metrics in the process registry `registry`. They run in the background: start-up does
/// not wait for them, and they retry until the API answers. Returns the controllers'
/// metrics, for the node lifecycle controllers.
pub async fn start(
    components: &Components,
    registry: &skiff_metrics::Registry,
) -> anyhow::Result<skiff_reconcile::Metrics> {
    let config = components.config().await?;
    tokio::spawn(ensure_service_accounts(components.client_from(
        &config,
        CONTROLLER_MANAGER,
        controller_manager(),
    )?));
    let client = |name: &str| {
        components.client_from(&config, CONTROLLER_MANAGER, components::controller(name))
    };
    let metrics =
        skiff_controllers::spawn_all(client, skiff_reconcile::Metrics::with_registry(registry))?;
    use skiff_controllers::identity;
    // The controllers that give namespaces their in-cluster identity: the `default`
    // ServiceAccount, and the cluster CA (as the controller manager's --root-ca-file).
    let ca_file = components.data_dir.join("pki").join("ca.crt");
    let ca = std::fs::read_to_string(&ca_file)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", ca_file.display()))?;
    tokio::spawn(skiff_controllers::serviceaccount::run(
        client(identity::SERVICE_ACCOUNT)?,
        metrics.clone(),
    ));
    // The kube-apiserver-client signer, with the CA as --cluster-signing-{cert,key}-file.
    let ca_key_file = components.data_dir.join("pki").join("ca.key");
    let ca_key = std::fs::read_to_string(&ca_key_file)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", ca_key_file.display()))?;
    tokio::spawn(skiff_controllers::csrsigning::run(
        client(identity::CERTIFICATE)?,
        metrics.clone(),
        ca.clone(),
        ca_key,
    ));
    tokio::spawn(skiff_controllers::rootca::run(
        client(identity::ROOT_CA)?,
        metrics.clone(),
        ca,
    ));
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
    let config = components.config().await?;
    skiff_controllers::nodelifecycle::spawn(
        |name| components.client_from(&config, CONTROLLER_MANAGER, components::controller(name)),
        options,
        metrics,
    )?;
    Ok(())
}

/// Makes each controller's ServiceAccount in `kube-system` when missing, as upstream's
/// controller client builder does before it gets the account a token: the in-memory tokens
/// need no account, but `kubectl get sa -n kube-system` lists what acts in the cluster.
/// Retried until the namespace exists and every account is there.
async fn ensure_service_accounts(client: kube::Client) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api: kube::Api<ServiceAccount> =
        kube::Api::namespaced(client, components::CONTROLLER_NAMESPACE);
    let mut delay = std::time::Duration::from_millis(100);
    let mut missing: Vec<&str> = skiff_controllers::identity::ALL.to_vec();
    while !missing.is_empty() {
        let mut failed = Vec::new();
        for name in missing {
            let account = ServiceAccount {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match api.create(&Default::default(), &account).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    tracing::debug!(account = name, error = %e, "creating a controller's ServiceAccount");
                    failed.push(name);
                }
            }
        }
        missing = failed;
        if !missing.is_empty() {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(10));
        }
    }
}
