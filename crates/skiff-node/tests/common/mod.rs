//! Shared setup for the end-to-end tests: a throwaway node (image store, runc runtime,
//! sandboxes on a private bridge and podCIDR) that removes everything it made on drop.

#![allow(dead_code)]

use skiff_node::image::ImageStore;
use skiff_node::network::{Ipv4Cidr, Network, NetworkConfig};
use skiff_node::runtime::{
    ContainerSpec, ContainerState, ExitInfo, ProcessSpec, Resources, RuncConfig, RuncRuntime,
    Runtime,
};
use skiff_node::sandbox::{DnsConfig, PodSandbox, SandboxManager, SandboxSpec};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "skiff-test/busybox:1";

/// Why these tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (mounts, network namespaces, cgroups)".into());
    }
    for tool in ["runc", "ip"] {
        let found = std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success() || tool == "ip");
        if !found {
            return Some(format!(
                "`{tool}` not installed (apt-get install runc iproute2)"
            ));
        }
    }
    if !Path::new(skiff_node::testing::HOST_BUSYBOX).exists() {
        return Some("/bin/busybox missing (apt-get install busybox-static)".into());
    }
    None
}

/// Skips the calling test with a clear message when it cannot run.
#[macro_export]
macro_rules! node_or_skip {
    () => {
        match common::Node::new() {
            Some(n) => n,
            None => return,
        }
    };
}

/// A node with private names: bridge `skb<suffix>`, netns `skt<suffix>-*`, cgroup
/// `skiff-test-<suffix>`, podCIDR `10.2xx.<n>.0/24` from pid and test counter.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub images: ImageStore,
    pub runtime: RuncRuntime,
    pub sandboxes: SandboxManager,
    pub suffix: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Node {
    pub fn new() -> Option<Self> {
        if let Some(why) = skip_reason() {
            // Straight to the stderr handle: libtest's capture only swallows eprintln!.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: skiff-node end-to-end test: {why}"
            );
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let suffix = format!("{:x}{n}", pid % 0xfffff);
        let dir = tempfile::tempdir().expect("tempdir");
        let images = ImageStore::open(dir.path().join("images")).expect("image store");
        let archive = skiff_node::testing::busybox_oci_archive(IMAGE).expect("busybox image");
        images.load(archive.as_slice()).expect("load busybox");
        let runtime = RuncRuntime::new(runc_config(dir.path(), &suffix)).expect("runtime");
        // Distinct per process and per test, so parallel runs never overlap subnets.
        let cidr = format!(
            "10.{}.{}.0/24",
            200 + pid % 50,
            (pid / 50) % 25 * 10 + n % 10
        );
        let network = Network::new(NetworkConfig {
            bridge: format!("skb{suffix}"),
            pod_cidr: Ipv4Cidr::parse(&cidr).expect("cidr"),
            state_dir: dir.path().join("network"),
            netns_prefix: format!("skt{suffix}-"),
        })
        .expect("network");
        let sandboxes =
            SandboxManager::new(dir.path().join("sandboxes"), network).expect("sandboxes");
        Some(Self {
            dir,
            images,
            runtime,
            sandboxes,
            suffix,
        })
    }

    pub fn runc_config(&self) -> RuncConfig {
        runc_config(self.dir.path(), &self.suffix)
    }

    pub fn sandbox(&self, name: &str) -> PodSandbox {
        self.sandboxes
            .create(&SandboxSpec {
                id: format!("{name}-{}", self.suffix),
                name: name.into(),
                namespace: "default".into(),
                host_network: false,
                dns: DnsConfig {
                    nameservers: vec!["10.96.0.10".into()],
                    searches: vec!["default.svc.cluster.local".into()],
                    options: vec!["ndots:5".into()],
                },
                host_aliases: vec![],
            })
            .expect("sandbox")
    }

    pub fn spec(&self, id: &str, sandbox: &PodSandbox, args: &[&str]) -> ContainerSpec {
        let rootfs = self.images.rootfs(IMAGE).expect("rootfs");
        let command: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let process =
            ProcessSpec::resolve(&rootfs.config, &command, &[], &[], None, None).expect("process");
        ContainerSpec {
            id: format!("{id}-{}", self.suffix),
            image: IMAGE.into(),
            rootfs_layers: rootfs.layers,
            process,
            sandbox: sandbox.container_ref(),
            mounts: vec![],
            resources: Resources::default(),
            log_path: self.dir.path().join(format!("logs/{id}/0.log")),
            log_rotation: Default::default(),
            labels: Default::default(),
            security: Default::default(),
            stdio: Default::default(),
            pid_namespace: None,
        }
    }

    /// Creates and starts; returns the runtime id.
    pub fn run(&self, spec: &ContainerSpec) -> String {
        self.runtime.create(spec).expect("create");
        self.runtime.start(&spec.id).expect("start");
        spec.id.clone()
    }

    pub fn wait_exit(&self, id: &str, timeout: Duration) -> ExitInfo {
        let deadline = Instant::now() + timeout;
        loop {
            match self.runtime.state(id).expect("state").state {
                ContainerState::Exited(e) => return e,
                s if Instant::now() > deadline => panic!("{id} still {s:?} after {timeout:?}"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    pub fn log_text(&self, spec: &ContainerSpec) -> String {
        std::fs::read_to_string(&spec.log_path).unwrap_or_default()
    }

    pub fn runc_root(&self) -> PathBuf {
        self.dir.path().join("runtime/runc")
    }
}

fn runc_config(dir: &Path, suffix: &str) -> RuncConfig {
    let mut cfg = RuncConfig::new(
        dir.join("runtime"),
        vec![env!("CARGO_BIN_EXE_skiff-node-shim").into()],
    );
    cfg.cgroup_parent = format!("skiff-test-{suffix}");
    cfg
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(list) = self.runtime.list() {
            for c in list {
                if let Err(e) = self.runtime.delete(&c.id) {
                    eprintln!("cleanup: deleting {}: {e}", c.id);
                }
            }
        }
        if let Ok(list) = self.sandboxes.list() {
            for s in list {
                if let Err(e) = self.sandboxes.remove(&s.spec.id) {
                    eprintln!("cleanup: removing sandbox {}: {e}", s.spec.id);
                }
            }
        }
        if let Err(e) = self.sandboxes.network().remove_bridge() {
            eprintln!("cleanup: removing bridge: {e}");
        }
        self.runtime.remove_cgroup_parent();
    }
}
