//! Pod networking with `ip`: one network namespace per pod, a veth pair into a host
//! bridge, an address from the node's podCIDR, and the bridge as default gateway.
//!
//! This is what the CNI `bridge` + `host-local` plugins do, done directly so there is no
//! plugin config to ship; the allocations are kept in `ipam.json` so addresses survive
//! agent restarts and orphans can be found. No NAT rule is installed: pod traffic stays on
//! the node (host <-> pod and pod <-> pod over the bridge).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;

/// Errors of pod network setup and teardown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An `ip` command failed; the message has its stderr.
    #[error("{0}")]
    Command(String),
    /// The allocation file could not be read or written.
    #[error("ipam state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is unusable (bad CIDR, name too long...).
    #[error("invalid network config: {0}")]
    InvalidConfig(String),
    /// Every address of the podCIDR is taken.
    #[error("pod CIDR {0} has no free address")]
    Exhausted(String),
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An IPv4 network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv4Cidr {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// Parses `a.b.c.d/n` (host bits are cleared).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::InvalidConfig(format!("bad CIDR {s:?}"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    /// The n-th address of the network.
    fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + n)
    }

    fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    /// The node-local gateway: the first host address, assigned to the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        self.nth(1)
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Node network settings.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Host bridge name (`skiff0`); at most 15 characters.
    pub bridge: String,
    /// The node's podCIDR.
    pub pod_cidr: Ipv4Cidr,
    /// Where `ipam.json` lives.
    pub state_dir: PathBuf,
    /// Prefix of the netns names this node creates (`skiff-`), so it never touches others'.
    pub netns_prefix: String,
}

/// A pod's network, as set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNetwork {
    /// Pod sandbox id it belongs to.
    pub sandbox_id: String,
    /// `ip netns` name.
    pub netns: String,
    /// Path containers join (`/run/netns/<name>`).
    pub netns_path: PathBuf,
    /// Pod IP.
    pub ip: Ipv4Addr,
    /// Prefix length of the podCIDR.
    pub prefix: u8,
    /// Default gateway (the bridge).
    pub gateway: Ipv4Addr,
    /// Host end of the veth pair.
    pub host_veth: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Allocations {
    /// Last address handed out, so freed addresses are not reused at once (host-local's
    /// round robin: a restarted pod's old IP may still be in peers' caches).
    last: Option<Ipv4Addr>,
    pods: BTreeMap<String, PodNetwork>,
}

/// The bridge's MAC: locally administered (0x02), the rest from the gateway address, so it
/// is stable across restarts and distinct per node.
fn bridge_mac(gateway: Ipv4Addr) -> String {
    let [a, b, c, d] = gateway.octets();
    format!("02:73:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// Sets up and tears down pod networks on one bridge.
#[derive(Debug)]
pub struct Network {
    cfg: NetworkConfig,
    /// Serializes allocation read-modify-write within this process.
    lock: Mutex<()>,
    /// The interface index of the bridge as [`Network::ensure_bridge`] last set it up:
    /// while the bridge is still that one it is not set up again (every pod start asks).
    bridge_ready: std::sync::atomic::AtomicU32,
}

fn ip(args: &[&str]) -> Result<String> {
    crate::util::run("ip", args)
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .map_err(Error::Command)
}

/// Runs several `ip` commands in one process (`ip [-n NETNS] -batch -`), stopping at the
/// first that fails: a pod's network is a handful of commands, and one process instead of
/// one each takes tens of milliseconds off every pod start.
fn ip_batch(netns: Option<&str>, commands: &[String]) -> Result<()> {
    use std::io::Write;
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-batch", "-"]);
    let script = commands.join("\n") + "\n";
    let mut child = std::process::Command::new("ip")
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Command(format!("ip: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| Error::Command(format!("ip -batch: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Command(format!("ip: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command(format!(
            "ip {} <<< {:?}: {} {}",
            args.join(" "),
            commands,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether network interface `name` exists in this process's network namespace.
fn link_exists(name: &str) -> bool {
    ifindex(name).is_some()
}

/// The interface index of `name` in this process's network namespace (`if_nametoindex`,
/// no `ip` process; sysfs would show the namespace it was mounted in, not ours), to tell a
/// bridge set up from one made again.
fn ifindex(name: &str) -> Option<u32> {
    if !valid_ifname(name) {
        return None;
    }
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

impl Network {
    /// Checks the config and creates the state dir; does not touch the host network yet.
    pub fn new(cfg: NetworkConfig) -> Result<Self> {
        if !valid_ifname(&cfg.bridge) {
            return Err(Error::InvalidConfig(format!(
                "bad bridge name {:?}",
                cfg.bridge
            )));
        }
        if !valid_ifname(&cfg.netns_prefix) && !cfg.netns_prefix.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "bad netns prefix {:?}",
                cfg.netns_prefix
            )));
        }
        fs::create_dir_all(&cfg.state_dir).map_err(|source| Error::Io {
            path: cfg.state_dir.clone(),
            source,
        })?;
        Ok(Self {
            cfg,
            lock: Mutex::new(()),
            bridge_ready: Default::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &NetworkConfig {
        &self.cfg
    }

    /// Creates the bridge with the gateway address if missing (idempotent).
    pub fn ensure_bridge(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        let br = &self.cfg.bridge;
        let mac = bridge_mac(self.cfg.pod_cidr.gateway());
        let set_up = self.bridge_ready.load(Ordering::Relaxed);
        if set_up != 0 && ifindex(br) == Some(set_up) {
            return Ok(());
        }
        if !link_exists(br) {
            ip(&["link", "add", br, "type", "bridge"])?;
            tracing::info!(bridge = %br, cidr = %self.cfg.pod_cidr, "bridge created");
        }
        // A bridge without an address of its own takes the lowest MAC among its ports, so
        // it changes whenever a pod's veth joins; every pod's ARP entry for its gateway then
        // points nowhere and replies are lost for seconds. A fixed MAC prevents that.
        ip(&["link", "set", "dev", br, "address", &mac])?;
        let gw = format!(
            "{}/{}",
            self.cfg.pod_cidr.gateway(),
            self.cfg.pod_cidr.prefix
        );
        ip(&["addr", "replace", &gw, "dev", br])?;
        ip(&["link", "set", br, "up"])?;
        if let Some(index) = ifindex(br) {
            self.bridge_ready.store(index, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Deletes the bridge (node shutdown, tests). Pods should be torn down first.
    pub fn remove_bridge(&self) -> Result<()> {
        if ip(&["link", "show", "dev", &self.cfg.bridge]).is_ok() {
            ip(&["link", "del", &self.cfg.bridge])?;
        }
        Ok(())
    }

    fn state_file(&self) -> PathBuf {
        self.cfg.state_dir.join("ipam.json")
    }

    fn load(&self) -> Result<Allocations> {
        let path = self.state_file();
        match fs::read(&path) {
            Ok(raw) => serde_json::from_slice(&raw)
                .map_err(|e| Error::InvalidConfig(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Allocations::default()),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    fn save(&self, a: &Allocations) -> Result<()> {
        let path = self.state_file();
        let raw = serde_json::to_vec_pretty(a).map_err(|e| Error::InvalidConfig(e.to_string()))?;
        crate::util::write_atomic(&path, &raw).map_err(|source| Error::Io { path, source })
    }

    fn allocate(&self, a: &Allocations) -> Result<Ipv4Addr> {
        let cidr = self.cfg.pod_cidr;
        // .0 is the network, .1 the gateway, the last the broadcast address.
        let first = 2;
        let last = cidr.size() - 2;
        let taken: std::collections::BTreeSet<Ipv4Addr> = a.pods.values().map(|p| p.ip).collect();
        let start = a
            .last
            .map(|ip| u32::from(ip).wrapping_sub(u32::from(cidr.addr)) + 1)
            .filter(|n| (first..=last).contains(n))
            .unwrap_or(first);
        (start..=last)
            .chain(first..start)
            .map(|n| cidr.nth(n))
            .find(|ip| !taken.contains(ip))
            .ok_or_else(|| Error::Exhausted(cidr.to_string()))
    }

    /// Creates the pod's netns, veth and address; returns the existing network if this
    /// sandbox already has one (idempotent, so a restarted agent can call it again).
    pub fn setup(&self, sandbox_id: &str) -> Result<PodNetwork> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut allocs = self.load()?;
        if let Some(existing) = allocs.pods.get(sandbox_id) {
            if existing.netns_path.exists() {
                return Ok(existing.clone());
            }
        }
        let netns = format!("{}{sandbox_id}", self.cfg.netns_prefix);
        if netns.len() > 200 || netns.contains('/') || netns.starts_with('.') {
            return Err(Error::InvalidConfig(format!("bad netns name {netns:?}")));
        }
        let hash = Sha256::digest(netns.as_bytes());
        let host_veth = format!(
            "veth{:08x}",
            u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]])
        );
        let ip_addr = match allocs.pods.get(sandbox_id) {
            Some(p) => p.ip,
            None => self.allocate(&allocs)?,
        };
        let pod = PodNetwork {
            sandbox_id: sandbox_id.to_string(),
            netns_path: PathBuf::from("/run/netns").join(&netns),
            netns,
            ip: ip_addr,
            prefix: self.cfg.pod_cidr.prefix,
            gateway: self.cfg.pod_cidr.gateway(),
            host_veth,
        };
        // Record first: a crash halfway leaves an allocation that cleanup can find.
        allocs.last = Some(ip_addr);
        allocs.pods.insert(sandbox_id.to_string(), pod.clone());
        self.save(&allocs)?;
        if let Err(e) = self.plumb(&pod) {
            tracing::warn!(sandbox = sandbox_id, error = %e, "pod network setup failed");
            teardown_links(&pod);
            allocs.pods.remove(sandbox_id);
            self.save(&allocs)?;
            return Err(e);
        }
        tracing::info!(sandbox = sandbox_id, ip = %pod.ip, netns = %pod.netns, "pod network up");
        Ok(pod)
    }

    fn plumb(&self, pod: &PodNetwork) -> Result<()> {
        self.ensure_bridge()?;
        let ns = pod.netns.as_str();
        // Leftovers from a crash between record and plumbing.
        teardown_links(pod);
        // Three processes: the namespace, the host's side, the pod's side (the names
        // are checked: the netns above, the veth is hex, the bridge at construction).
        ip(&["netns", "add", ns])?;
        let (veth, bridge) = (&pod.host_veth, &self.cfg.bridge);
        ip_batch(
            None,
            &[
                format!("link add {veth} type veth peer name eth0 netns {ns}"),
                format!("link set {veth} master {bridge} up"),
            ],
        )?;
        ip_batch(
            Some(ns),
            &[
                format!("addr add {}/{} dev eth0", pod.ip, pod.prefix),
                "link set lo up".into(),
                "link set eth0 up".into(),
                format!("route add default via {} dev eth0", pod.gateway),
            ],
        )
    }

    /// Removes the pod's veth and netns and frees its address (idempotent).
    pub fn teardown(&self, sandbox_id: &str) -> Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut allocs = self.load()?;
        if let Some(pod) = allocs.pods.remove(sandbox_id) {
            teardown_links(&pod);
            self.save(&allocs)?;
            tracing::info!(sandbox = sandbox_id, ip = %pod.ip, "pod network removed");
        }
        Ok(())
    }

    /// Pod networks recorded on disk (for adoption after a restart).
    pub fn list(&self) -> Result<Vec<PodNetwork>> {
        Ok(self.load()?.pods.into_values().collect())
    }
}

/// Deletes the veth and the netns; each step tolerates "already gone".
fn teardown_links(pod: &PodNetwork) {
    if link_exists(&pod.host_veth) {
        let _ = ip(&["link", "del", &pod.host_veth]);
    }
    if pod.netns_path.exists() {
        if let Err(e) = ip(&["netns", "del", &pod.netns]) {
            tracing::warn!(netns = %pod.netns, error = %e, "cannot delete netns");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_mac_is_fixed_local_and_per_node() {
        let mac = bridge_mac(Ipv4Addr::new(10, 244, 0, 1));
        assert_eq!(mac, "02:73:0a:f4:00:01");
        assert_ne!(mac, bridge_mac(Ipv4Addr::new(10, 244, 1, 1)));
    }

    fn network(dir: &std::path::Path) -> Network {
        Network::new(NetworkConfig {
            bridge: "skiff-t".into(),
            pod_cidr: Ipv4Cidr::parse("10.99.0.0/29").unwrap(),
            state_dir: dir.to_path_buf(),
            netns_prefix: "t-".into(),
        })
        .unwrap()
    }

    #[test]
    fn cidr_parsing_clears_host_bits_and_rejects_garbage() {
        let c = Ipv4Cidr::parse("10.1.2.3/24").unwrap();
        assert_eq!(c.to_string(), "10.1.2.0/24");
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 1, 2, 1));
        assert!(Ipv4Cidr::parse("10.1.2.3").is_err());
        assert!(Ipv4Cidr::parse("10.1.2.3/33").is_err());
    }

    #[test]
    fn allocation_skips_network_gateway_broadcast_and_taken_addresses_round_robin() {
        let dir = tempfile::tempdir().unwrap();
        let net = network(dir.path());
        let mut a = Allocations::default();
        let mut got = Vec::new();
        for i in 0..5 {
            let ip = net.allocate(&a).unwrap();
            got.push(ip.octets()[3]);
            a.last = Some(ip);
            a.pods.insert(
                format!("p{i}"),
                PodNetwork {
                    sandbox_id: format!("p{i}"),
                    netns: String::new(),
                    netns_path: PathBuf::new(),
                    ip,
                    prefix: 29,
                    gateway: Ipv4Addr::new(10, 99, 0, 1),
                    host_veth: String::new(),
                },
            );
        }
        assert_eq!(got, [2, 3, 4, 5, 6]);
        assert!(matches!(net.allocate(&a), Err(Error::Exhausted(_))));
        // Freed .3 is reused only after the round robin wraps.
        a.pods.remove("p1");
        assert_eq!(net.allocate(&a).unwrap(), Ipv4Addr::new(10, 99, 0, 3));
    }
}
