//! Where the cluster's state lives: the embedded SQLite file by default, or etcd with
//! k3s's `--datastore-*` flags (decision 0031).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use skiff_store::Store;

#[derive(clap::Args)]
pub struct DatastoreArgs {
    /// etcd's client URLs, `http(s)://host:port[,...]` (k3s's flag). Without it the state
    /// is the SQLite file in the data dir.
    #[arg(long, value_delimiter = ',')]
    datastore_endpoint: Vec<String>,
    /// The CA certificate (PEM) that signed etcd's serving certificates.
    #[arg(long, requires = "datastore_endpoint")]
    datastore_cafile: Option<PathBuf>,
    /// This server's client certificate (PEM) for etcd.
    #[arg(long, requires = "datastore_endpoint")]
    datastore_certfile: Option<PathBuf>,
    /// The key (PEM) of `--datastore-certfile`.
    #[arg(long, requires = "datastore_endpoint")]
    datastore_keyfile: Option<PathBuf>,
    /// How often etcd's history is compacted, keeping one interval of it for watches
    /// (kube-apiserver's flag); 0 never compacts.
    #[arg(long, default_value = "5m", value_parser = interval)]
    etcd_compaction_interval: Duration,
    /// The cluster's shared secret (k3s's `--token`): the first server on the datastore
    /// publishes the cluster's keys sealed with it, servers started later with the same
    /// token join with them.
    #[arg(
        long,
        env = "SKIFF_SERVER_TOKEN",
        hide_env_values = true,
        requires = "datastore_endpoint"
    )]
    token: Option<String>,
}

fn interval(s: &str) -> Result<Duration, String> {
    skiff_apiserver::request::parse_go_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration such as 5m or 0"))
}

impl DatastoreArgs {
    /// Whether the state is in etcd, where several servers may share it (and so elect
    /// which one runs the controllers).
    pub fn shared(&self) -> bool {
        !self.datastore_endpoint.is_empty()
    }

    /// `--token`, when servers share the cluster's keys through the datastore.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref().filter(|t| !t.is_empty())
    }

    /// The etcd store when `--datastore-endpoint` is given (connected, its watch cache
    /// primed), else `None`: the caller opens SQLite.
    pub async fn connect(&self) -> anyhow::Result<Option<Arc<dyn Store>>> {
        if self.datastore_endpoint.is_empty() {
            return Ok(None);
        }
        check_endpoints(&self.datastore_endpoint)?;
        let mut options = etcd_options(
            self.datastore_endpoint.clone(),
            &self.datastore_cafile,
            &self.datastore_certfile,
            &self.datastore_keyfile,
        );
        options.compaction_interval = Some(self.etcd_compaction_interval).filter(|d| !d.is_zero());
        let store = skiff_etcd::EtcdStore::connect(options)
            .await
            .with_context(|| {
                format!(
                    "connecting to etcd at {}",
                    self.datastore_endpoint.join(",")
                )
            })?;
        tracing::info!(endpoints = %self.datastore_endpoint.join(","), "state in etcd");
        Ok(Some(store))
    }
}

/// Refuses endpoints that are not etcd client URLs.
pub fn check_endpoints(endpoints: &[String]) -> anyhow::Result<()> {
    for endpoint in endpoints {
        anyhow::ensure!(
            endpoint.starts_with("http://") || endpoint.starts_with("https://"),
            "--datastore-endpoint {endpoint:?}: expected http(s)://host:port"
        );
    }
    Ok(())
}

/// How skiff reaches etcd at `endpoints` (with k3s's TLS files, or TLS without them for
/// `https://` endpoints): every key under kube-apiserver's `--etcd-prefix`, `/registry/`.
pub fn etcd_options(
    endpoints: Vec<String>,
    ca: &Option<PathBuf>,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> skiff_etcd::EtcdOptions {
    let https = endpoints.iter().any(|e| e.starts_with("https://"));
    let mut options = skiff_etcd::EtcdOptions::new(endpoints);
    // kube-apiserver's `--etcd-prefix`: every key skiff writes is under it.
    options.prefix = "/registry/".into();
    if ca.is_some() || cert.is_some() || key.is_some() || https {
        options.tls = Some(skiff_etcd::TlsFiles {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    options
}
