//! Node agent: runs the Pods bound to this node as OCI containers (images, pod networking, volumes, probes, logs).
//!
//! The modules here are the OS-facing lower layers and need no API server:
//! [`image`] (content store), [`runtime`] (containers via runc, plus a fake),
//! [`network`] (pod network namespaces on a bridge), [`sandbox`] (a pod's shared
//! namespace, hostname and DNS files) and [`logs`] (CRI-format log files).
//!
//! How the pod sync loop composes them (one pod, one container):
//!
//! ```no_run
//! use skiff_node::{image::ImageStore, logs, network::*, runtime::*, sandbox::*};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let images = ImageStore::open("/var/lib/skiff/images")?;
//! images.load(std::fs::File::open("collector.tar")?)?; // `skiff image load`
//! let net = Network::new(NetworkConfig {
//!     bridge: "skiff0".into(),
//!     pod_cidr: Ipv4Cidr::parse("10.244.0.0/24")?,
//!     state_dir: "/var/lib/skiff/network".into(),
//!     netns_prefix: "skiff-".into(),
//! })?;
//! let sandboxes = SandboxManager::new("/var/lib/skiff/sandboxes", net)?;
//! let pod = sandboxes.create(&SandboxSpec {
//!     id: "uid-1234".into(),
//!     name: "collector-0".into(),
//!     namespace: "default".into(),
//!     host_network: false,
//!     dns: DnsConfig::default(),
//!     host_aliases: vec![],
//! })?;
//! let rootfs = images.rootfs("collector:v2")?;
//! let spec = ContainerSpec {
//!     id: "uid-1234-collector-0".into(),
//!     image: "collector:v2".into(),
//!     rootfs_layers: rootfs.layers,
//!     process: ProcessSpec::resolve(&rootfs.config, &[], &[], &[], None, None)?,
//!     sandbox: pod.container_ref(),
//!     mounts: vec![],
//!     resources: Resources { memory_limit: Some(128 << 20), ..Default::default() },
//!     log_path: logs::pod_log_path(
//!         "/var/lib/skiff/logs/pods".as_ref(), "default", "collector-0", "uid-1234",
//!         "collector", 0,
//!     ),
//!     log_rotation: logs::Rotation::default(),
//!     labels: Default::default(),
//!     security: Default::default(),
//!     stdio: Default::default(),
//!     pid_namespace: None,
//! };
//! let runtime = RuncRuntime::new(RuncConfig::new(
//!     "/var/lib/skiff/runtime",
//!     vec!["/usr/bin/skiff".into(), "internal-shim".into()],
//! ))?;
//! runtime.create(&spec)?;
//! runtime.start(&spec.id)?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod agent;
pub mod cleanup;
pub mod image;
pub mod logs;
pub mod network;
pub mod runtime;
pub mod sandbox;
pub mod testing;
mod util;

pub use util::unique_suffix;
