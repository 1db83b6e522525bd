//! The identities of skiff's own components (decision 0036) and the in-memory bearer tokens
//! that prove them.
//!
//! Upstream gives each control-plane component a credential of its own: the controller
//! manager and the scheduler client certificates for `system:kube-controller-manager` and
//! `system:kube-scheduler`, each controller a ServiceAccount in `kube-system`
//! (`--use-service-account-credentials`), the kubelet `system:node:<name>` in
//! `system:nodes`, kube-proxy `system:kube-proxy`. skiff's in-process components get the
//! same identities, proven by random tokens that live only in the server's memory (upstream's
//! static token authenticator without the file): nothing to write, rotate or leak, and a
//! restarted server issues new ones.

use std::collections::HashMap;
use std::sync::RwLock;

use skiff_apimachinery::user::{UserInfo, ALL_AUTHENTICATED};

/// Group of every node identity (upstream's `user.NodesGroup`).
pub const NODES_GROUP: &str = "system:nodes";
/// Prefix of a node's user name (upstream's `NodeUserNamePrefix`).
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The namespace of the controllers' ServiceAccounts.
pub const CONTROLLER_NAMESPACE: &str = "kube-system";

/// A node's identity, as the kubelet's client certificate names it.
pub fn node(name: &str) -> UserInfo {
    UserInfo {
        username: format!("{NODE_USER_PREFIX}{name}"),
        groups: vec![NODES_GROUP.into(), ALL_AUTHENTICATED.into()],
        ..UserInfo::default()
    }
}

/// A component with a user of its own (`system:kube-scheduler`, `system:kube-proxy`).
pub fn user(name: &str) -> UserInfo {
    UserInfo {
        username: name.to_owned(),
        groups: vec![ALL_AUTHENTICATED.into()],
        ..UserInfo::default()
    }
}

/// The identity a ServiceAccount token of `namespace/name` stands for, as upstream's
/// `serviceaccount.UserInfo` (without the uid and the pod claims of a bound token).
pub fn service_account(namespace: &str, name: &str) -> UserInfo {
    UserInfo {
        username: format!("system:serviceaccount:{namespace}:{name}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
            ALL_AUTHENTICATED.into(),
        ],
        ..UserInfo::default()
    }
}

/// A controller's identity: its ServiceAccount in `kube-system`, as the controller manager
/// runs each controller with `--use-service-account-credentials`.
pub fn controller(name: &str) -> UserInfo {
    service_account(CONTROLLER_NAMESPACE, name)
}

/// The node a user is, when it is one: upstream's `NodeIdentifier` (the `system:node:`
/// prefix and the `system:nodes` group, both required; an empty name is no node).
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.username.strip_prefix(NODE_USER_PREFIX)?;
    (!name.is_empty() && user.in_group(NODES_GROUP)).then_some(name)
}

/// Bearer tokens issued to in-process components, each standing for one identity.
#[derive(Default)]
pub struct StaticTokens {
    by_token: RwLock<HashMap<String, UserInfo>>,
}

/// Errors issuing a token.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a component token")]
pub struct NoRandomness;

impl StaticTokens {
    /// A new random token (256 bits, hex) for `user`; it authenticates as `user` until the
    /// process ends.
    pub fn issue(&self, user: UserInfo) -> Result<String, NoRandomness> {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| NoRandomness)?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.by_token
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), user);
        Ok(token)
    }

    /// Who `token` stands for, if it is one of these.
    pub fn lookup(&self, token: &str) -> Option<UserInfo> {
        self.by_token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_as_upstream_names_them() {
        let n = node("node-a");
        assert_eq!(n.username, "system:node:node-a");
        assert_eq!(n.groups, ["system:nodes", "system:authenticated"]);
        assert_eq!(node_name(&n), Some("node-a"));
        let c = controller("replicaset-controller");
        assert_eq!(
            c.username,
            "system:serviceaccount:kube-system:replicaset-controller"
        );
        assert!(c.in_group("system:serviceaccounts:kube-system"));
        assert_eq!(node_name(&c), None);
    }

    #[test]
    fn node_name_needs_prefix_group_and_name() {
        // Upstream's node identifier cases: both the prefix and the group, a non-empty name.
        let mut no_group = node("a");
        no_group.groups.clear();
        assert_eq!(node_name(&no_group), None);
        assert_eq!(node_name(&node("")), None);
        let mut other = user("system:nodes-admin");
        other.groups.push(NODES_GROUP.into());
        assert_eq!(node_name(&other), None);
    }

    #[test]
    fn tokens_are_random_and_map_to_their_identity() {
        let tokens = StaticTokens::default();
        let a = tokens.issue(user("system:kube-scheduler")).unwrap();
        let b = tokens.issue(node("n1")).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(tokens.lookup(&a).unwrap().username, "system:kube-scheduler");
        assert_eq!(tokens.lookup(&b).unwrap().username, "system:node:n1");
        assert!(tokens.lookup("nope").is_none());
        assert!(tokens.lookup(&a[..63]).is_none());
    }
}
