//! Who a request comes from: upstream's `user.Info` (k8s.io/apiserver/pkg/authentication/user),
//! the one type authentication produces and authorization, admission (webhook and policy
//! `userInfo`), impersonation and the aggregator's `X-Remote-*` headers consume.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Group every authenticated identity is in.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// Group of the anonymous identity.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// Name of the anonymous identity.
pub const ANONYMOUS: &str = "system:anonymous";
/// Group that bypasses authorization (bound to `cluster-admin` by the bootstrap policy).
pub const SYSTEM_MASTERS: &str = "system:masters";

/// An authenticated (or anonymous) identity, in the wire shape of `authentication.k8s.io/v1`
/// `UserInfo` (the field names TokenReview, SelfSubjectReview and AdmissionReview use).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserInfo {
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The identity of an unauthenticated request, as upstream's anonymous authenticator.
    pub fn anonymous() -> UserInfo {
        UserInfo {
            username: ANONYMOUS.into(),
            groups: vec![ALL_UNAUTHENTICATED.into()],
            ..UserInfo::default()
        }
    }

    /// The cluster administrator the bootstrap kubeconfig's token stands for (the name
    /// upstream's kubeadm and kind give it), in `system:masters`.
    pub fn cluster_admin() -> UserInfo {
        UserInfo {
            username: "kubernetes-admin".into(),
            groups: vec![SYSTEM_MASTERS.into(), ALL_AUTHENTICATED.into()],
            ..UserInfo::default()
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_omits_empty_fields() {
        let v = serde_json::to_value(UserInfo::anonymous()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"username": "system:anonymous", "groups": ["system:unauthenticated"]})
        );
        let admin = UserInfo::cluster_admin();
        assert!(admin.in_group(SYSTEM_MASTERS));
        assert!(!admin.in_group(ALL_UNAUTHENTICATED));
    }
}
