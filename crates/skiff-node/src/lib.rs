//! Node agent: runs the Pods bound to this node as OCI containers (images, pod networking, volumes, probes, logs).
//!
//! The modules here are the OS-facing lower layers and need no API server:
//! [`image`] (content store), [`runtime`] (containers via runc, plus a fake),
//! [`network`] (pod network namespaces on a bridge), [`sandbox`] (a pod's shared
//! namespace, hostname and DNS files) and [`logs`] (CRI-format log files).

#![warn(missing_docs)]

pub mod image;
pub mod logs;
pub mod network;
pub mod runtime;
pub mod sandbox;
pub mod testing;
mod util;

pub use util::unique_suffix;
