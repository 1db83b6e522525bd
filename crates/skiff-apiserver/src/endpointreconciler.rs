//! The `kubernetes` Service's endpoints when several servers share one datastore (decision
//! 0052): kube-apiserver's lease endpoint reconciler (`--endpoint-reconciler-type=lease`,
//! its default) on the APIServerIdentity Leases.
//!
//! Each server keeps its own Lease in `kube-system`, labelled
//! `apiserver.kubernetes.io/identity=kube-apiserver` as upstream's identity Leases are, and
//! renews it every two thirds of its duration (upstream's endpoint reconciler interval is
//! 2/3 of `MasterEndpointReconcileTTL`, 15 s). Upstream keeps the addresses in separate
//! `masterleases` keys with an etcd TTL; skiff's store has no TTLs, so the address a server
//! advertises rides on its identity Lease (annotation [`ADDRESS_ANNOTATION`]) and the Lease's
//! `renewTime + leaseDurationSeconds` is the TTL. Every server, on each tick, writes
//! `default/kubernetes` Endpoints with the address of every server whose Lease is live
//! ([`plan`], pure) and deletes Leases that expired, as upstream's reconciler drops expired
//! master leases. The EndpointSlice follows the Endpoints through the EndpointSlice
//! mirroring of selector-less Services (skiff-controllers' `endpoints`), as before.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::Digest;

/// The label upstream's identity Leases carry, and its value for kube-apiserver.
pub const IDENTITY_LABEL: &str = "apiserver.kubernetes.io/identity";
pub const IDENTITY_VALUE: &str = "kube-apiserver";
/// The host name label upstream's identity Leases carry.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// Where a server's identity Lease says the address it advertises (`ip:port`), what
/// upstream keeps in its `masterleases` keys.
pub const ADDRESS_ANNOTATION: &str = "skiff.io/advertise-address";
/// Upstream's `DefaultEndpointReconcilerTTL`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// This server's identity Lease.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `apiserver-<hash>`, stable across restarts of the same server.
    pub lease_name: String,
    /// `<lease name>_<uuid>`: a new one for each start, as upstream's.
    pub holder: String,
    pub hostname: String,
    /// Where pods reach this server; `None` when they cannot (loopback only).
    pub address: Option<SocketAddr>,
    /// The Lease's duration: how long a dead server's address stays listed.
    pub ttl: Duration,
}

impl Identity {
    /// Upstream names the Lease after a hash of the host name, one kube-apiserver per host;
    /// skiff runs several servers on one host (each its own data dir), so the data dir is
    /// hashed in too: a restarted server takes its own Lease over, as upstream's does.
    pub fn new(hostname: &str, data_dir: &str, address: Option<SocketAddr>, ttl: Duration) -> Self {
        let mut hash = sha2::Sha256::new();
        hash.update(hostname.as_bytes());
        hash.update([0]);
        hash.update(data_dir.as_bytes());
        let digest = hash.finalize();
        let lease_name = format!(
            "apiserver-{}",
            digest[..13]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Identity {
            holder: format!("{lease_name}_{}", uuid::Uuid::new_v4()),
            lease_name,
            hostname: hostname.to_string(),
            address,
            ttl,
        }
    }

    /// How often the Lease is renewed and the endpoints reconciled: upstream's 2/3 of the TTL.
    pub fn interval(&self) -> Duration {
        (self.ttl * 2 / 3).max(Duration::from_millis(100))
    }

    /// The Lease as renewed `now`.
    pub fn lease(&self, now: DateTime<Utc>) -> Value {
        let mut annotations = serde_json::Map::new();
        if let Some(a) = self.address {
            annotations.insert(ADDRESS_ANNOTATION.into(), a.to_string().into());
        }
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {
                "name": self.lease_name, "namespace": "kube-system",
                "labels": {IDENTITY_LABEL: IDENTITY_VALUE, HOSTNAME_LABEL: self.hostname},
                "annotations": annotations,
            },
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.ttl.as_secs().max(1),
                "renewTime": micro_time(now),
            },
        })
    }
}

/// A MicroTime as the API writes it.
pub fn micro_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// What the reconciler reads from one identity Lease.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseView {
    pub name: String,
    pub address: Option<SocketAddr>,
    /// When the Lease stops being live: `renewTime + leaseDurationSeconds`; `None` when
    /// either is missing or unreadable, which counts as expired.
    pub expires: Option<DateTime<Utc>>,
}

impl LeaseView {
    pub fn of(lease: &Value) -> LeaseView {
        let spec = &lease["spec"];
        let renewed = spec["renewTime"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        let expires = renewed
            .zip(spec["leaseDurationSeconds"].as_i64())
            .and_then(|(t, secs)| t.checked_add_signed(chrono::TimeDelta::try_seconds(secs)?));
        LeaseView {
            name: lease["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            address: lease["metadata"]["annotations"][ADDRESS_ANNOTATION]
                .as_str()
                .and_then(|a| a.parse().ok()),
            expires,
        }
    }
}

/// What one reconcile does.
#[derive(Debug, PartialEq)]
pub struct Plan {
    /// The `kubernetes` Endpoints' addresses: every live server's, sorted, once each.
    pub addresses: Vec<SocketAddr>,
    /// Expired identity Leases to delete.
    pub expired: Vec<String>,
}

/// The decision, given the identity Leases read, this server's own identity (always listed:
/// it is alive, whatever the Lease it just wrote reads back as) and the time.
pub fn plan(leases: &[LeaseView], own: &Identity, now: DateTime<Utc>) -> Plan {
    let mut addresses: Vec<SocketAddr> = own.address.into_iter().collect();
    let mut expired = Vec::new();
    for lease in leases {
        if lease.name == own.lease_name {
            continue;
        }
        match lease.expires {
            Some(at) if at > now => addresses.extend(lease.address),
            _ => expired.push(lease.name.clone()),
        }
    }
    addresses.sort_by_key(|a| (a.ip(), a.port()));
    addresses.dedup();
    Plan { addresses, expired }
}

/// The Endpoints' `subsets` for `addresses` (`Null`: none): one subset per port, as
/// upstream's repacking groups addresses sharing their ports, each port named `https`
/// like the Service's.
pub fn subsets(addresses: &[SocketAddr]) -> Value {
    let mut by_port: BTreeMap<u16, Vec<Value>> = BTreeMap::new();
    for a in addresses {
        by_port
            .entry(a.port())
            .or_default()
            .push(json!({"ip": a.ip().to_string()}));
    }
    if by_port.is_empty() {
        return Value::Null;
    }
    by_port
        .into_iter()
        .map(|(port, addresses)| {
            json!({
                "addresses": addresses,
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn view(name: &str, address: Option<&str>, expires: Option<i64>) -> LeaseView {
        LeaseView {
            name: name.into(),
            address: address.map(addr),
            expires: expires.map(at),
        }
    }

    #[test]
    fn live_leases_are_listed_and_expired_ones_removed() {
        let own = Identity::new("host", "/data/a", Some(addr("10.0.0.2:6443")), DEFAULT_TTL);
        let own_lease = || view(&own.lease_name, Some("10.0.0.9:1"), Some(-100));
        // (leases, expected addresses, expected deletions)
        let cases: Vec<(Vec<LeaseView>, Vec<&str>, Vec<&str>)> = vec![
            // Alone: itself only, even before its Lease reads back.
            (vec![], vec!["10.0.0.2:6443"], vec![]),
            // Its own Lease is never judged (it just renewed it) nor taken for its address.
            (vec![own_lease()], vec!["10.0.0.2:6443"], vec![]),
            // Another live server, sorted by address.
            (
                vec![view("b", Some("10.0.0.1:6443"), Some(5))],
                vec!["10.0.0.1:6443", "10.0.0.2:6443"],
                vec![],
            ),
            // Expired exactly now: gone, its Lease deleted.
            (
                vec![view("b", Some("10.0.0.1:6443"), Some(0))],
                vec!["10.0.0.2:6443"],
                vec!["b"],
            ),
            // No renewTime or duration: expired.
            (
                vec![view("b", Some("10.0.0.1:6443"), None)],
                vec!["10.0.0.2:6443"],
                vec!["b"],
            ),
            // A live server pods cannot reach: alive, not listed.
            (
                vec![view("b", None, Some(5))],
                vec!["10.0.0.2:6443"],
                vec![],
            ),
            // The same address twice (a server restarted on another data dir): once.
            (
                vec![
                    view("b", Some("10.0.0.2:6443"), Some(5)),
                    view("c", Some("10.0.0.3:7443"), Some(5)),
                ],
                vec!["10.0.0.2:6443", "10.0.0.3:7443"],
                vec![],
            ),
        ];
        for (leases, addresses, expired) in cases {
            let p = plan(&leases, &own, at(0));
            let want: Vec<SocketAddr> = addresses.into_iter().map(addr).collect();
            assert_eq!(p.addresses, want, "{leases:?}");
            assert_eq!(p.expired, expired, "{leases:?}");
        }
        // A server pods cannot reach lists the others only.
        let hidden = Identity::new("host", "/data/b", None, DEFAULT_TTL);
        let p = plan(&[view("b", Some("10.0.0.1:6443"), Some(5))], &hidden, at(0));
        assert_eq!(p.addresses, vec![addr("10.0.0.1:6443")]);
        assert!(plan(&[], &hidden, at(0)).addresses.is_empty());
    }

    #[test]
    fn subsets_group_addresses_by_port() {
        assert_eq!(subsets(&[]), Value::Null);
        assert_eq!(
            subsets(&[addr("10.0.0.1:6443"), addr("10.0.0.2:6443")]),
            json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                    "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
        );
        assert_eq!(
            subsets(&[addr("127.0.0.1:7000"), addr("127.0.0.1:6443")]),
            json!([
                {"addresses": [{"ip": "127.0.0.1"}],
                 "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]},
                {"addresses": [{"ip": "127.0.0.1"}],
                 "ports": [{"name": "https", "port": 7000, "protocol": "TCP"}]},
            ])
        );
    }

    #[test]
    fn the_lease_reads_back_as_written() {
        let id = Identity::new("host", "/d", Some(addr("10.0.0.2:6443")), DEFAULT_TTL);
        assert!(id.lease_name.starts_with("apiserver-") && id.lease_name.len() == 36);
        assert!(id.holder.starts_with(&format!("{}_", id.lease_name)));
        assert_eq!(
            id.lease_name,
            Identity::new("host", "/d", None, DEFAULT_TTL).lease_name,
            "stable across restarts"
        );
        assert_ne!(
            id.lease_name,
            Identity::new("host", "/e", None, DEFAULT_TTL).lease_name
        );
        assert_eq!(id.interval(), Duration::from_secs(10));
        let lease = id.lease(at(0));
        assert_eq!(lease["metadata"]["labels"][IDENTITY_LABEL], IDENTITY_VALUE);
        assert_eq!(
            LeaseView::of(&lease),
            view(&id.lease_name, Some("10.0.0.2:6443"), Some(15))
        );
        let mut bad = lease.clone();
        bad["spec"]["leaseDurationSeconds"] = json!(i64::MAX);
        assert_eq!(LeaseView::of(&bad).expires, None, "checked arithmetic");
    }
}
