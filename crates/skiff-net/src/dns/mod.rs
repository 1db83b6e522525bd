//! Cluster DNS: answers the names of the Kubernetes DNS specification from Services,
//! EndpointSlices and Pods, as CoreDNS's `kubernetes` plugin does, so that pods find each
//! other by `<svc>.<ns>.svc.cluster.local` without running CoreDNS.
//!
//! The pieces, each usable alone:
//! - [`Records`]: the pure index. Objects in (one watch event at a time), answers out
//!   ([`Records::lookup`]); no I/O, table-tested.
//! - [`Server`] / [`serve`]: UDP and TCP listeners answering from a [`SharedRecords`].
//! - [`keep_current`]: kube-rs watchers that fold watch events into a [`SharedRecords`].
//! - [`run`]: all three wired together, what the `skiff` binary calls.
//! - [`publish`]: the `kube-system/kube-dns` Service and Endpoints that point pods at it.
//!
//! Names outside the cluster domain are answered REFUSED, as CoreDNS does for a zone it is
//! not configured for. There is no forwarder: this server never sends a query anywhere, so a
//! pod that needs internet names must list another nameserver (or a later forwarder plugs in
//! at the REFUSED branch of `server::respond`).

mod lookup;
pub mod publish;
mod records;
mod server;
mod watch;

#[cfg(test)]
mod testutil;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

pub use lookup::Answer;
pub use records::{PodRecords, Records};
pub use server::{serve, Server};
pub use watch::{keep_current, run, run_with_metrics};

/// The index as the server and the watchers share it. A std `RwLock` rather than a
/// copy-on-write swap because one watch event must cost O(that object), not a copy of the
/// whole index; lookups hold the read lock only while building an answer (microseconds,
/// never across an `.await`).
pub type SharedRecords = Arc<RwLock<Records>>;

/// Time to live of every answer and of negative answers (the SOA minimum), as CoreDNS's
/// default: short, because pods come and go and nothing invalidates a client's cache.
pub const DEFAULT_TTL: u32 = 5;

/// How the cluster DNS is set up; `DnsConfig::default()` is upstream's default cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Where to answer, UDP and TCP on the same port (production: the node bridge, port 53).
    pub listen: SocketAddr,
    /// The cluster domain, `cluster.local` unless the cluster was set up otherwise.
    pub domain: String,
    /// Which `<a-b-c-d>.<ns>.pod.<domain>` names exist.
    pub pods: PodRecords,
    /// TTL of answers, seconds.
    pub ttl: u32,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 53)),
            domain: "cluster.local".to_string(),
            pods: PodRecords::Insecure,
            ttl: DEFAULT_TTL,
        }
    }
}

/// What can fail in the cluster DNS. Watch errors are not here: the watchers retry with
/// backoff forever and only log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configured cluster domain is not a valid DNS name.
    #[error("invalid cluster domain {domain:?}")]
    InvalidDomain {
        domain: String,
        #[source]
        source: hickory_proto::ProtoError,
    },
    /// A listening socket could not be bound.
    #[error("binding DNS {proto} socket on {addr}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Result of this module's fallible functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;
