//! Upstream's node_authorizer_test.go cases (TestNodeAuthorizer, selector authorization
//! enabled) over the same shape of data: two nodes, pods `pod<i>-node<n>` in `ns0`, each
//! with its own ConfigMap, Secret, claim (bound to a volume) and ServiceAccount, and a
//! Secret shared by all.

use super::*;
use serde_json::json;

struct Fake {
    pods: Vec<Value>,
    /// claim (ns0) -> volume
    volumes: Vec<(String, String)>,
}

impl Graph for Fake {
    fn related(&self, node: &str, kind: Kind, namespace: &str, name: &str) -> bool {
        let on_node = self
            .pods
            .iter()
            .filter(|p| p["spec"]["nodeName"] == node && p["metadata"]["namespace"] == namespace);
        match kind {
            Kind::Pod => self
                .pods
                .iter()
                .any(|p| p["metadata"]["name"] == name && p["spec"]["nodeName"] == node),
            Kind::PersistentVolume => self
                .pods
                .iter()
                .filter(|p| p["spec"]["nodeName"] == node)
                .any(|p| {
                    pod_references(p).iter().any(|(k, claim)| {
                        *k == Kind::PersistentVolumeClaim
                            && self.volumes.iter().any(|(c, v)| c == claim && v == name)
                    })
                }),
            Kind::VolumeAttachment => name == format!("attachment0-{node}"),
            _ => on_node.into_iter().any(|p| {
                pod_references(p)
                    .iter()
                    .any(|(k, n)| *k == kind && n == name)
            }),
        }
    }
}

fn sample() -> Fake {
    let mut pods = Vec::new();
    let mut volumes = Vec::new();
    for node in ["node0", "node1"] {
        for i in 0..2 {
            let pod = format!("pod{i}-{node}");
            pods.push(json!({
                "metadata": {"name": pod, "namespace": "ns0"},
                "spec": {
                    "nodeName": node,
                    "serviceAccountName": format!("svcacct{i}-{node}"),
                    "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "secret0-shared", "key": "k"}}}]}],
                    "volumes": [
                        {"name": "cm", "configMap": {"name": format!("configmap0-{pod}")}},
                        {"name": "s", "secret": {"secretName": format!("secret0-{pod}")}},
                        {"name": "v", "persistentVolumeClaim": {"claimName": format!("pvc0-{pod}")}},
                    ],
                },
            }));
            volumes.push((format!("pvc0-{pod}"), format!("pv0-{pod}-ns0")));
        }
    }
    Fake { pods, volumes }
}

fn node0() -> UserInfo {
    UserInfo {
        username: "system:node:node0".into(),
        groups: vec!["system:nodes".into()],
        ..UserInfo::default()
    }
}

fn attrs(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes::resource(node0(), verb, group, resource, ns, name).with_subresource(sub)
}

/// name, verb, group, resource, subresource, namespace, object name, field selector, allowed
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    bool,
);

#[test]
fn upstream_cases() {
    let g = sample();
    let lease = "coordination.k8s.io";
    let storage = "storage.k8s.io";
    let cases: &[Case] = &[
        (
            "allowed configmap",
            "get",
            "",
            "configmaps",
            "",
            "ns0",
            "configmap0-pod0-node0",
            None,
            true,
        ),
        (
            "allowed secret via pod",
            "get",
            "",
            "secrets",
            "",
            "ns0",
            "secret0-pod0-node0",
            None,
            true,
        ),
        (
            "list allowed secret via pod",
            "list",
            "",
            "secrets",
            "",
            "ns0",
            "secret0-pod0-node0",
            None,
            true,
        ),
        (
            "watch allowed secret via pod",
            "watch",
            "",
            "secrets",
            "",
            "ns0",
            "secret0-pod0-node0",
            None,
            true,
        ),
        (
            "disallowed list many secrets",
            "list",
            "",
            "secrets",
            "",
            "ns0",
            "",
            None,
            false,
        ),
        (
            "disallowed watch many secrets",
            "watch",
            "",
            "secrets",
            "",
            "ns0",
            "",
            None,
            false,
        ),
        (
            "disallowed list secrets from all namespaces with name",
            "list",
            "",
            "secrets",
            "",
            "",
            "secret0-pod0-node0",
            None,
            false,
        ),
        (
            "allowed shared secret via pod",
            "get",
            "",
            "secrets",
            "",
            "ns0",
            "secret0-shared",
            None,
            true,
        ),
        (
            "allowed pvc",
            "get",
            "",
            "persistentvolumeclaims",
            "",
            "ns0",
            "pvc0-pod0-node0",
            None,
            true,
        ),
        (
            "allowed pv",
            "get",
            "",
            "persistentvolumes",
            "",
            "",
            "pv0-pod0-node0-ns0",
            None,
            true,
        ),
        (
            "disallowed configmap",
            "get",
            "",
            "configmaps",
            "",
            "ns0",
            "configmap0-pod0-node1",
            None,
            false,
        ),
        (
            "disallowed secret via pod",
            "get",
            "",
            "secrets",
            "",
            "ns0",
            "secret0-pod0-node1",
            None,
            false,
        ),
        (
            "disallowed pvc",
            "get",
            "",
            "persistentvolumeclaims",
            "",
            "ns0",
            "pvc0-pod0-node1",
            None,
            false,
        ),
        (
            "disallowed pv",
            "get",
            "",
            "persistentvolumes",
            "",
            "",
            "pv0-pod0-node1-ns0",
            None,
            false,
        ),
        (
            "allowed attachment",
            "get",
            storage,
            "volumeattachments",
            "",
            "",
            "attachment0-node0",
            None,
            true,
        ),
        (
            "allowed svcacct token create",
            "create",
            "",
            "serviceaccounts",
            "token",
            "ns0",
            "svcacct0-node0",
            None,
            true,
        ),
        (
            "disallowed svcacct token create - serviceaccount not attached to node",
            "create",
            "",
            "serviceaccounts",
            "token",
            "ns0",
            "svcacct0-node1",
            None,
            false,
        ),
        (
            "disallowed svcacct token create - no subresource",
            "create",
            "",
            "serviceaccounts",
            "",
            "ns0",
            "svcacct0-node0",
            None,
            false,
        ),
        (
            "disallowed svcacct token create - non create",
            "update",
            "",
            "serviceaccounts",
            "token",
            "ns0",
            "svcacct0-node0",
            None,
            false,
        ),
        (
            "disallowed get lease in namespace other than kube-node-lease",
            "get",
            lease,
            "leases",
            "",
            "foo",
            "node0",
            None,
            false,
        ),
        (
            "disallowed create lease in namespace other than kube-node-lease",
            "create",
            lease,
            "leases",
            "",
            "foo",
            "node0",
            None,
            false,
        ),
        (
            "disallowed update lease in namespace other than kube-node-lease",
            "update",
            lease,
            "leases",
            "",
            "foo",
            "node0",
            None,
            false,
        ),
        (
            "disallowed patch lease in namespace other than kube-node-lease",
            "patch",
            lease,
            "leases",
            "",
            "foo",
            "node0",
            None,
            false,
        ),
        (
            "disallowed delete lease in namespace other than kube-node-lease",
            "delete",
            lease,
            "leases",
            "",
            "foo",
            "node0",
            None,
            false,
        ),
        (
            "disallowed get another node's lease",
            "get",
            lease,
            "leases",
            "",
            "kube-node-lease",
            "node1",
            None,
            false,
        ),
        (
            "disallowed update another node's lease",
            "update",
            lease,
            "leases",
            "",
            "kube-node-lease",
            "node1",
            None,
            false,
        ),
        (
            "disallowed patch another node's lease",
            "patch",
            lease,
            "leases",
            "",
            "kube-node-lease",
            "node1",
            None,
            false,
        ),
        (
            "disallowed delete another node's lease",
            "delete",
            lease,
            "leases",
            "",
            "kube-node-lease",
            "node1",
            None,
            false,
        ),
        (
            "disallowed list node leases",
            "list",
            lease,
            "leases",
            "",
            "kube-node-lease",
            "",
            None,
            false,
        ),
        (
            "disallowed watch node leases",
            "watch",
            lease,
            "leases",
            "",
            "kube-node-lease",
            "",
            None,
            false,
        ),
        (
            "allowed get node lease",
            "get",
            lease,
            "leases",
            "",
            "kube-node-lease",
            "node0",
            None,
            true,
        ),
        (
            "allowed create node lease",
            "create",
            lease,
            "leases",
            "",
            "kube-node-lease",
            "node0",
            None,
            true,
        ),
        (
            "allowed update node lease",
            "update",
            lease,
            "leases",
            "",
            "kube-node-lease",
            "node0",
            None,
            true,
        ),
        (
            "allowed patch node lease",
            "patch",
            lease,
            "leases",
            "",
            "kube-node-lease",
            "node0",
            None,
            true,
        ),
        (
            "allowed delete node lease",
            "delete",
            lease,
            "leases",
            "",
            "kube-node-lease",
            "node0",
            None,
            true,
        ),
        (
            "disallowed CSINode with subresource",
            "get",
            storage,
            "csinodes",
            "csiDrivers",
            "",
            "node0",
            None,
            false,
        ),
        (
            "disallowed get another node's CSINode",
            "get",
            storage,
            "csinodes",
            "",
            "",
            "node1",
            None,
            false,
        ),
        (
            "disallowed update another node's CSINode",
            "update",
            storage,
            "csinodes",
            "",
            "",
            "node1",
            None,
            false,
        ),
        (
            "disallowed patch another node's CSINode",
            "patch",
            storage,
            "csinodes",
            "",
            "",
            "node1",
            None,
            false,
        ),
        (
            "disallowed delete another node's CSINode",
            "delete",
            storage,
            "csinodes",
            "",
            "",
            "node1",
            None,
            false,
        ),
        (
            "disallowed list CSINodes",
            "list",
            storage,
            "csinodes",
            "",
            "",
            "",
            None,
            false,
        ),
        (
            "disallowed watch CSINodes",
            "watch",
            storage,
            "csinodes",
            "",
            "",
            "",
            None,
            false,
        ),
        (
            "allowed get CSINode",
            "get",
            storage,
            "csinodes",
            "",
            "",
            "node0",
            None,
            true,
        ),
        (
            "allowed create CSINode",
            "create",
            storage,
            "csinodes",
            "",
            "",
            "node0",
            None,
            true,
        ),
        (
            "allowed update CSINode",
            "update",
            storage,
            "csinodes",
            "",
            "",
            "node0",
            None,
            true,
        ),
        (
            "allowed patch CSINode",
            "patch",
            storage,
            "csinodes",
            "",
            "",
            "node0",
            None,
            true,
        ),
        (
            "allowed delete CSINode",
            "delete",
            storage,
            "csinodes",
            "",
            "",
            "node0",
            None,
            true,
        ),
        (
            "get related pod",
            "get",
            "",
            "pods",
            "",
            "ns0",
            "pod0-node0",
            None,
            true,
        ),
        (
            "get unrelated pod",
            "get",
            "",
            "pods",
            "",
            "ns0",
            "pod0-node1",
            None,
            false,
        ),
        (
            "list related pods",
            "list",
            "",
            "pods",
            "",
            "",
            "",
            Some("spec.nodeName=node0"),
            true,
        ),
        (
            "list related pods - alternate selector",
            "list",
            "",
            "pods",
            "",
            "",
            "",
            Some("spec.nodeName==node0"),
            true,
        ),
        (
            "list single related pod",
            "list",
            "",
            "pods",
            "",
            "ns0",
            "pod0-node0",
            None,
            true,
        ),
        (
            "list unrelated pods",
            "list",
            "",
            "pods",
            "",
            "",
            "",
            None,
            false,
        ),
        (
            "list another node's pods",
            "list",
            "",
            "pods",
            "",
            "",
            "",
            Some("spec.nodeName=node1"),
            false,
        ),
        (
            "watch related pods",
            "watch",
            "",
            "pods",
            "",
            "",
            "",
            Some("spec.nodeName=node0"),
            true,
        ),
        (
            "watch single related pod",
            "watch",
            "",
            "pods",
            "",
            "ns0",
            "pod0-node0",
            None,
            true,
        ),
        (
            "watch unrelated pods",
            "watch",
            "",
            "pods",
            "",
            "",
            "",
            None,
            false,
        ),
        (
            "create unnamed pod",
            "create",
            "",
            "pods",
            "",
            "ns0",
            "",
            None,
            true,
        ),
        (
            "create pod proxy subresource forbidden",
            "create",
            "",
            "pods",
            "proxy",
            "ns0",
            "",
            None,
            false,
        ),
        (
            "delete related pod",
            "delete",
            "",
            "pods",
            "",
            "ns0",
            "pod0-node0",
            None,
            true,
        ),
        (
            "delete unrelated pod (NodeRestriction's)",
            "delete",
            "",
            "pods",
            "",
            "ns0",
            "pod0-node1",
            None,
            true,
        ),
        (
            "delete pod proxy subresource forbidden",
            "delete",
            "",
            "pods",
            "proxy",
            "ns0",
            "pod0-node0",
            None,
            false,
        ),
        (
            "update related pod status",
            "update",
            "",
            "pods",
            "status",
            "ns0",
            "pod0-node0",
            None,
            true,
        ),
        (
            "update unrelated pod status (NodeRestriction's)",
            "update",
            "",
            "pods",
            "status",
            "ns0",
            "pod0-node1",
            None,
            true,
        ),
        (
            "patch related pod status",
            "patch",
            "",
            "pods",
            "status",
            "ns0",
            "pod0-node0",
            None,
            true,
        ),
        (
            "get pod status",
            "get",
            "",
            "pods",
            "status",
            "ns0",
            "pod0-node0",
            None,
            false,
        ),
        (
            "create related pod eviction",
            "create",
            "",
            "pods",
            "eviction",
            "ns0",
            "pod0-node0",
            None,
            true,
        ),
        (
            "get related node",
            "get",
            "",
            "nodes",
            "",
            "",
            "node0",
            None,
            true,
        ),
        (
            "get unrelated node",
            "get",
            "",
            "nodes",
            "",
            "",
            "node1",
            None,
            false,
        ),
        (
            "list single related node",
            "list",
            "",
            "nodes",
            "",
            "",
            "node0",
            None,
            true,
        ),
        (
            "list single unrelated node",
            "list",
            "",
            "nodes",
            "",
            "",
            "node1",
            None,
            false,
        ),
        (
            "list all nodes",
            "list",
            "",
            "nodes",
            "",
            "",
            "",
            None,
            false,
        ),
        (
            "watch all nodes",
            "watch",
            "",
            "nodes",
            "",
            "",
            "",
            None,
            false,
        ),
        ("create node", "create", "", "nodes", "", "", "", None, true),
        (
            "patch node status",
            "patch",
            "",
            "nodes",
            "status",
            "",
            "node0",
            None,
            true,
        ),
        // The system:node rules, for what the graph does not subdivide.
        (
            "list services (node rules)",
            "list",
            "",
            "services",
            "",
            "",
            "",
            None,
            true,
        ),
        (
            "create events (node rules)",
            "create",
            "",
            "events",
            "",
            "ns0",
            "",
            None,
            true,
        ),
        (
            "delete deployments (nothing)",
            "delete",
            "apps",
            "deployments",
            "",
            "ns0",
            "d",
            None,
            false,
        ),
    ];
    for (name, verb, group, resource, sub, ns, obj, selector, allowed) in cases {
        let a = attrs(verb, group, resource, sub, ns, obj);
        let d = authorize(&a, *selector, &g).expect("a node has an opinion or a reason");
        assert_eq!(d.allowed, *allowed, "{name}: {d:?}");
    }
}

#[test]
fn reasons_are_upstreams() {
    let g = sample();
    let d = authorize(
        &attrs("get", "", "secrets", "", "ns0", "secret0-pod0-node1"),
        None,
        &g,
    )
    .unwrap();
    assert_eq!(
        d.reason,
        "no relationship found between node 'node0' and this object"
    );
    let d = authorize(&attrs("get", "", "nodes", "", "", "node1"), None, &g).unwrap();
    assert_eq!(
        d.reason,
        "node 'node0' cannot read 'node1', only its own Node object"
    );
    let d = authorize(&attrs("list", "", "pods", "", "", ""), None, &g).unwrap();
    assert_eq!(
        d.reason,
        "can only list/watch pods with spec.nodeName field selector"
    );
}

#[test]
fn only_nodes_are_judged() {
    let g = sample();
    let mut a = attrs("get", "", "secrets", "", "ns0", "secret0-pod0-node0");
    a.user.groups.clear();
    assert_eq!(authorize(&a, None, &g), None);
    // In the group without a name: no opinion, upstream's reason.
    a.user = UserInfo {
        username: "system:node:".into(),
        groups: vec!["system:nodes".into()],
        ..UserInfo::default()
    };
    let d = authorize(&a, None, &g).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.reason, "unknown node for user \"system:node:\"");
}

#[test]
fn pod_references_cover_env_volumes_and_accounts() {
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {
            "serviceAccountName": "sa",
            "imagePullSecrets": [{"name": "pull"}],
            "initContainers": [{"envFrom": [{"configMapRef": {"name": "cm-env"}}]}],
            "containers": [{"env": [{"valueFrom": {"configMapKeyRef": {"name": "cm-key"}}}]}],
            "volumes": [
                {"name": "proj", "projected": {"sources": [{"secret": {"name": "ps"}}, {"configMap": {"name": "kube-root-ca.crt"}}]}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}},
                {"name": "csi", "csi": {"nodePublishSecretRef": {"name": "csi-secret"}}},
            ],
        },
    });
    let refs = pod_references(&pod);
    for want in [
        (Kind::ServiceAccount, "sa"),
        (Kind::Secret, "pull"),
        (Kind::ConfigMap, "cm-env"),
        (Kind::ConfigMap, "cm-key"),
        (Kind::Secret, "ps"),
        (Kind::ConfigMap, "kube-root-ca.crt"),
        (Kind::PersistentVolumeClaim, "p-scratch"),
        (Kind::Secret, "csi-secret"),
    ] {
        assert!(
            refs.iter().any(|(k, n)| *k == want.0 && n == want.1),
            "{want:?} in {refs:?}"
        );
    }
}

#[test]
fn field_selector_requirements() {
    assert!(selects(Some("spec.nodeName=n"), "spec.nodeName", "n"));
    assert!(selects(Some("a=b,spec.nodeName==n"), "spec.nodeName", "n"));
    assert!(!selects(Some("spec.nodeName!=n"), "spec.nodeName", "n"));
    assert!(!selects(Some("spec.nodeName=m"), "spec.nodeName", "n"));
    assert!(!selects(None, "spec.nodeName", "n"));
}
