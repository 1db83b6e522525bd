//! The cluster's network layout, in one place: the service network (and the addresses
//! reserved in it for the `kubernetes` Service and cluster DNS), the pod network every node
//! takes a /24 of, and the cluster domain. The API server allocates from it, the node writes
//! pods' resolv.conf from it, the service proxy routes it and DNS answers for it; each used
//! to carry its own copy of these numbers.

use std::net::Ipv4Addr;

/// The cluster network. [`ClusterNetwork::default`] is kubeadm's conventional layout, which
/// is what skiff runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNetwork {
    /// The service network's address; ClusterIPs are allocated within it.
    pub service_net: Ipv4Addr,
    /// Its prefix length.
    pub service_prefix: u8,
    /// All nodes' pod networks together.
    pub cluster_net: Ipv4Addr,
    /// Its prefix length.
    pub cluster_prefix: u8,
    /// The DNS domain of Services and pods.
    pub domain: String,
}

impl Default for ClusterNetwork {
    fn default() -> Self {
        ClusterNetwork {
            service_net: Ipv4Addr::new(10, 96, 0, 0),
            service_prefix: 16,
            cluster_net: Ipv4Addr::new(10, 244, 0, 0),
            cluster_prefix: 16,
            domain: "cluster.local".into(),
        }
    }
}

impl ClusterNetwork {
    /// `10.96.0.0/16`: what the proxy routes and rejects when no Service answers.
    pub fn service_cidr(&self) -> String {
        format!("{}/{}", self.service_net, self.service_prefix)
    }

    /// `10.244.0.0/16`: every node's pod network together.
    pub fn cluster_cidr(&self) -> String {
        format!("{}/{}", self.cluster_net, self.cluster_prefix)
    }

    /// The service network's `n`th address (`None` past its end).
    pub fn service_ip(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.service_prefix.min(32)));
        (u64::from(n) < size).then(|| Ipv4Addr::from(u32::from(self.service_net) + n))
    }

    /// The `kubernetes` Service's ClusterIP: the service network's first address, as
    /// upstream's API server reserves it.
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        self.service_ip(1).unwrap_or(self.service_net)
    }

    /// Cluster DNS's ClusterIP (`.10`, kubeadm's choice), the nameserver every pod is given.
    pub fn dns_service_ip(&self) -> Ipv4Addr {
        self.service_ip(10).unwrap_or(self.service_net)
    }

    /// Node `index`'s pod network: the `index`th /24 of the cluster network (the server's
    /// own node takes 0, agents 1 and up), `None` past its end.
    pub fn node_pod_cidr(&self, index: u32) -> Option<String> {
        let subnets = 1u64 << 24u32.saturating_sub(u32::from(self.cluster_prefix.min(24)));
        (u64::from(index) < subnets).then(|| {
            let net = Ipv4Addr::from(u32::from(self.cluster_net) + (index << 8));
            format!("{net}/24")
        })
    }

    /// Whether `ip` is in the service network.
    pub fn in_service_net(&self, ip: Ipv4Addr) -> bool {
        let bits = u32::from(self.service_prefix.min(32));
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        u32::from(ip) & mask == u32::from(self.service_net) & mask
    }

    /// A pod's DNS search path in namespace `ns`, as the kubelet writes it.
    pub fn search_path(&self, ns: &str) -> [String; 3] {
        let d = &self.domain;
        [format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_is_kubeadms() {
        let n = ClusterNetwork::default();
        assert_eq!(n.service_cidr(), "10.96.0.0/16");
        assert_eq!(n.cluster_cidr(), "10.244.0.0/16");
        assert_eq!(n.kubernetes_service_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(n.dns_service_ip(), Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(n.service_ip(65535), Some(Ipv4Addr::new(10, 96, 255, 255)));
        assert_eq!(n.service_ip(65536), None);
        assert!(n.in_service_net(Ipv4Addr::new(10, 96, 3, 4)));
        assert_eq!(n.node_pod_cidr(0).as_deref(), Some("10.244.0.0/24"));
        assert_eq!(n.node_pod_cidr(255).as_deref(), Some("10.244.255.0/24"));
        assert_eq!(n.node_pod_cidr(256), None);
        assert!(!n.in_service_net(Ipv4Addr::new(10, 97, 0, 1)));
        assert_eq!(
            n.search_path("web"),
            [
                "web.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
    }
}
