//! Pod sandboxes: what the containers of one pod share (network namespace and IP,
//! hostname, `/etc/hosts`, `/etc/resolv.conf`), kept on disk under `<dir>/<id>/`.

use crate::network::{self, Network, PodNetwork};
use crate::runtime::SandboxRef;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::PathBuf;

/// Errors of sandbox operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Network setup or teardown failed.
    #[error(transparent)]
    Network(#[from] network::Error),
    /// Sandbox files could not be written or read.
    #[error("sandbox files {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The id cannot be used as a name.
    #[error("invalid sandbox: {0}")]
    Invalid(String),
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// DNS settings for `/etc/resolv.conf` (the kubelet's `ClusterFirst` gives cluster DNS
/// and the `<ns>.svc.cluster.local` search path).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// `nameserver` lines.
    pub nameservers: Vec<String>,
    /// `search` domains.
    pub searches: Vec<String>,
    /// `options`, e.g. `ndots:5`.
    pub options: Vec<String>,
}

/// What a pod needs at the sandbox level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Unique id (e.g. derived from the pod uid); used in netns and file names.
    pub id: String,
    /// Pod name: the hostname.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Share the host's network namespace (`hostNetwork: true`).
    pub host_network: bool,
    /// DNS settings.
    pub dns: DnsConfig,
    /// Extra `/etc/hosts` entries (`hostAliases`): (ip, hostnames).
    pub host_aliases: Vec<(String, Vec<String>)>,
}

/// A created sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSandbox {
    /// What it was created from.
    pub spec: SandboxSpec,
    /// Its network, unless host network.
    pub network: Option<PodNetwork>,
    /// Directory holding `hosts`, `resolv.conf` and `hostname`.
    pub dir: PathBuf,
}

impl PodSandbox {
    /// The pod IP, if it has its own network.
    pub fn ip(&self) -> Option<std::net::Ipv4Addr> {
        self.network.as_ref().map(|n| n.ip)
    }

    /// What each container of the pod joins.
    pub fn container_ref(&self) -> SandboxRef {
        SandboxRef {
            id: self.spec.id.clone(),
            netns_path: self.network.as_ref().map(|n| n.netns_path.clone()),
            hostname: self.spec.name.clone(),
            etc_hosts: Some(self.dir.join("hosts")),
            resolv_conf: Some(self.dir.join("resolv.conf")),
            etc_hostname: Some(self.dir.join("hostname")),
        }
    }
}

/// The kubelet's managed `/etc/hosts` for a pod.
pub fn hosts_file(spec: &SandboxSpec, ip: Option<std::net::Ipv4Addr>) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    if let Some(ip) = ip {
        s.push_str(&format!("{ip}\t{}\n", spec.name));
    }
    if !spec.host_aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for (ip, names) in &spec.host_aliases {
            s.push_str(&format!("{ip}\t{}\n", names.join("\t")));
        }
    }
    s
}

/// `/etc/resolv.conf` content for the DNS settings.
pub fn resolv_conf(dns: &DnsConfig) -> String {
    let mut s = String::new();
    for ns in &dns.nameservers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !dns.searches.is_empty() {
        s.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    if !dns.options.is_empty() {
        s.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    s
}

/// Creates and removes sandboxes.
#[derive(Debug)]
pub struct SandboxManager {
    dir: PathBuf,
    network: Network,
}

impl SandboxManager {
    /// Sandboxes are stored under `dir` (e.g. `<data-dir>/sandboxes`).
    pub fn new(dir: impl Into<PathBuf>, network: Network) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(Self { dir, network })
    }

    /// The network it uses.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Creates the sandbox (idempotent: an existing one is returned with its network
    /// re-checked).
    pub fn create(&self, spec: &SandboxSpec) -> Result<PodSandbox> {
        if crate::runtime::validate_id(&spec.id).is_err() {
            return Err(Error::Invalid(format!("bad sandbox id {:?}", spec.id)));
        }
        let dir = self.dir.join(&spec.id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let network = if spec.host_network {
            None
        } else {
            Some(self.network.setup(&spec.id)?)
        };
        let sandbox = PodSandbox {
            spec: spec.clone(),
            network,
            dir: dir.clone(),
        };
        let files = [
            ("hosts", hosts_file(spec, sandbox.ip())),
            ("resolv.conf", resolv_conf(&spec.dns)),
            ("hostname", format!("{}\n", spec.name)),
        ];
        for (name, content) in files {
            let p = dir.join(name);
            crate::util::write_atomic(&p, content.as_bytes()).map_err(io_err(&p))?;
        }
        let raw = serde_json::to_vec_pretty(&sandbox).map_err(|e| Error::Invalid(e.to_string()))?;
        let p = dir.join("sandbox.json");
        crate::util::write_atomic(&p, &raw).map_err(io_err(&p))?;
        Ok(sandbox)
    }

    /// Removes the network and files of a sandbox (idempotent). Its containers must be
    /// deleted first.
    pub fn remove(&self, id: &str) -> Result<()> {
        if crate::runtime::validate_id(id).is_err() {
            return Err(Error::Invalid(format!("bad sandbox id {id:?}")));
        }
        self.network.teardown(id)?;
        let dir = self.dir.join(id);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(())
    }

    /// Removes every sandbox `keep` rejects (networks without a sandbox record are always
    /// removed); returns the removed ids. Delete their containers first.
    pub fn remove_orphans(&self, keep: impl Fn(&PodSandbox) -> bool) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for s in self.list()? {
            let recorded = s.dir.join("sandbox.json").exists();
            if recorded && keep(&s) {
                continue;
            }
            tracing::info!(sandbox = %s.spec.id, "removing orphan sandbox");
            self.remove(&s.spec.id)?;
            removed.push(s.spec.id);
        }
        Ok(removed)
    }

    /// The recorded sandbox of pod `id`, read alone (a pod's sync asks for its own, and
    /// reading every pod's record each time made idle syncs O(pods²)).
    pub fn get(&self, id: &str) -> Option<PodSandbox> {
        crate::runtime::validate_id(id).ok()?;
        let raw = fs::read(self.dir.join(id).join("sandbox.json")).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    /// Sandboxes on disk, plus networks whose sandbox dir is missing (orphans to remove).
    pub fn list(&self) -> Result<Vec<PodSandbox>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir)
            .map_err(io_err(&self.dir))?
            .flatten()
        {
            if let Ok(raw) = fs::read(e.path().join("sandbox.json")) {
                if let Ok(s) = serde_json::from_slice::<PodSandbox>(&raw) {
                    out.push(s);
                }
            }
        }
        for n in self.network.list()? {
            if !out.iter().any(|s| s.spec.id == n.sandbox_id) {
                out.push(PodSandbox {
                    spec: SandboxSpec {
                        id: n.sandbox_id.clone(),
                        name: String::new(),
                        namespace: String::new(),
                        host_network: false,
                        dns: DnsConfig::default(),
                        host_aliases: Vec::new(),
                    },
                    dir: self.dir.join(&n.sandbox_id),
                    network: Some(n),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_resolv_conf_match_the_kubelets() {
        let spec = SandboxSpec {
            id: "p".into(),
            name: "web-0".into(),
            namespace: "default".into(),
            host_network: false,
            dns: DnsConfig {
                nameservers: vec!["10.96.0.10".into()],
                searches: vec![
                    "default.svc.cluster.local".into(),
                    "svc.cluster.local".into(),
                ],
                options: vec!["ndots:5".into()],
            },
            host_aliases: vec![("1.2.3.4".into(), vec!["a".into(), "b".into()])],
        };
        let hosts = hosts_file(&spec, Some("10.0.0.5".parse().unwrap()));
        assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(hosts.contains("10.0.0.5\tweb-0\n"));
        assert!(hosts.ends_with("# Entries added by HostAliases.\n1.2.3.4\ta\tb\n"));
        assert_eq!(
            resolv_conf(&spec.dns),
            "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n"
        );
    }
}
