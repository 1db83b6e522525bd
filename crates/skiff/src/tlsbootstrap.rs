//! `skiff agent`'s credential (decision 0044): kubelet TLS bootstrap. The agent keeps a
//! client certificate for `system:node:<name>` in `DIR/pki/kubelet-client-current.pem`;
//! without a valid one it needs a token: a bootstrap token (`skiff token create`) gets it a
//! new certificate from the server, any other token (the admin's, as before) is used as it
//! is. The kubeconfig components read (`DIR/kubeconfig`) names the certificate file, so
//! `kubectl --kubeconfig DIR/kubeconfig` acts as the node too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use skiff_node::agent::clientcert;

/// How the agent authenticates.
pub enum Credential {
    /// The node's client certificate, presented through this resolver, renewed by
    /// [`keep_renewed`].
    Certificate(Arc<clientcert::Resolver>, clientcert::Pair),
    /// A bearer token that is no bootstrap token, in the kubeconfig.
    Token,
}

/// Writes `DIR/kubeconfig` for the agent's components and says how they authenticate:
/// the stored certificate of node `name` while valid, else one asked for with the
/// bootstrap token `token()` gives, else that token itself.
pub async fn credential(
    servers: &Arc<skiff_node::agent::failover::Servers>,
    ca: &str,
    name: &str,
    data_dir: &Path,
    token: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<Credential> {
    let pki = data_dir.join("pki");
    let kubeconfig = data_dir.join("kubeconfig");
    // Clients are built on the first server; they connect to whichever answers.
    let server = servers.first();
    let server = server.as_str();
    let pair = match clientcert::stored(&pki, name) {
        Some(pair) => {
            tracing::info!(node = name, "using the node's client certificate");
            pair
        }
        None => {
            let token = token()?;
            if skiff_auth::bootstrap::parse(&token).is_none() {
                crate::write_kubeconfig(
                    &kubeconfig,
                    &skiff_apiserver::serve::kubeconfig(server, ca, &token),
                )?;
                return Ok(Credential::Token);
            }
            // The kubelet's --bootstrap-kubeconfig: used for the request only.
            let bootstrap = data_dir.join("bootstrap-kubeconfig");
            crate::write_kubeconfig(
                &bootstrap,
                &skiff_apiserver::serve::kubeconfig(server, ca, &token),
            )?;
            let client = bootstrap_client(&bootstrap, servers.clone()).await?;
            tracing::info!(
                node = name,
                "asking for the node's client certificate (TLS bootstrap)"
            );
            let pair = clientcert::request(&client, name, &pki)
                .await
                .context("TLS bootstrap: the node's client certificate")?;
            // Its job done, the token stays out of the data dir.
            let _ = std::fs::remove_file(&bootstrap);
            pair
        }
    };
    crate::write_kubeconfig(
        &kubeconfig,
        &skiff_apiserver::serve::client_certificate_file_kubeconfig(
            server,
            ca,
            &format!("system:node:{name}"),
            &clientcert::path(&pki),
        ),
    )?;
    Ok(Credential::Certificate(
        Arc::new(clientcert::Resolver::new(&pair)?),
        pair,
    ))
}

async fn bootstrap_client(
    kubeconfig: &Path,
    servers: Arc<skiff_node::agent::failover::Servers>,
) -> anyhow::Result<kube::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig)?,
        &Default::default(),
    )
    .await?;
    Ok(clientcert::client(&config, None, Some(servers))?)
}

/// The node's `pki` directory under the agent's data dir.
pub fn pki(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}
