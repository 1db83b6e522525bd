//! End to end: a pod's in-cluster identity, with a real node (root and runc). New
//! namespaces get their `default` ServiceAccount and `kube-root-ca.crt` (and get them back
//! when deleted); ServiceAccount admission projects the token volume; the node fills it
//! with a TokenRequest token bound to the pod and gives containers `KUBERNETES_SERVICE_*`;
//! and a kube-rs in-cluster client (`crates/test-webhook`'s `test-incluster`, packaged with
//! its shared libraries) reaches the API through the `kubernetes` Service, lists pods when
//! a RoleBinding lets its ServiceAccount, and gets RBAC's 403 otherwise.
//! A server on its default loopback-only address is reached the same way: it also serves
//! on the pod bridge's gateway, the `kubernetes` endpoint (decision 0022).
//!
//! `cargo build -p test-webhook` first. Without it, or without the node's prerequisites,
//! the test is skipped with a message, and fails under `CI=true`.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::time::Duration;

use node::NodeCluster;

const IMAGE: &str = "test-incluster:e2e";
const NS: &str = "team";
const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A pod running the client as `account`; `delete` is the pod it then tries to delete.
fn client_pod(name: &str, account: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {NS}}}
spec:
  serviceAccountName: {account}
  restartPolicy: Never
  {extra}
  containers:
  - name: client
    image: {IMAGE}
    imagePullPolicy: Never
    args: [{name}]
"#
    )
}

/// Whether `kubectl get <what> -n <ns>` finds it.
fn exists(c: &NodeCluster, ns: &str, what: &[&str]) -> bool {
    let mut args = vec!["get", "-n", ns];
    args.extend(what);
    c.kubectl_output(&args, None).status.success()
}

#[test]
fn in_cluster_clients_use_their_service_account_as_rbac_allows() {
    let Some(bin) = node::node_and_binary_or_skip("test-incluster") else {
        return;
    };
    let c = NodeCluster::start_listening("0.0.0.0:0");
    c.node_name();
    c.load_image(&node::binary_image(&bin, IMAGE));
    let ca = std::fs::read_to_string(c.dir.path().join("pki/ca.crt")).expect("the cluster CA");

    // A new namespace gets its default ServiceAccount and the cluster CA within seconds,
    // and gets them back when they are deleted or changed.
    c.kubectl(&["create", "namespace", NS]);
    let soon = Duration::from_secs(10);
    c.wait_for("the default ServiceAccount", soon, || {
        exists(&c, NS, &["serviceaccount", "default"]).then_some(())
    });
    let root_ca = || {
        let out = c.kubectl_output(
            &[
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-n",
                NS,
                "-o",
                "json",
            ],
            None,
        );
        let cm: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (cm["data"]["ca.crt"] == ca.as_str()
            && cm["metadata"]["annotations"]["kubernetes.io/description"]
                .as_str()
                .is_some_and(|d| d.contains("kube-apiserver")))
        .then_some(cm)
    };
    let published = c.wait_for("kube-root-ca.crt with the cluster CA", soon, root_ca);
    c.kubectl(&["delete", "serviceaccount", "default", "-n", NS]);
    c.kubectl(&["delete", "configmap", "kube-root-ca.crt", "-n", NS]);
    c.wait_for("the default ServiceAccount again", soon, || {
        exists(&c, NS, &["serviceaccount", "default"]).then_some(())
    });
    let again = c.wait_for("kube-root-ca.crt again", soon, root_ca);
    assert_ne!(again["metadata"]["uid"], published["metadata"]["uid"]);
    c.kubectl(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        NS,
        "--type=merge",
        "-p",
        r#"{"data":{"ca.crt":"tampered"}}"#,
    ]);
    c.wait_for("kube-root-ca.crt restored", soon, root_ca);

    // Admission: a missing account is refused with upstream's message.
    let out = c.kubectl_output(
        &["apply", "-f", "-"],
        Some(&client_pod("ghost", "ghost", "")),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"pods "ghost" is forbidden: error looking up service account team/ghost: serviceaccount "ghost" not found"#),
        "{err}"
    );

    // No RoleBinding yet: the token authenticates, RBAC refuses.
    c.kubectl(&["create", "serviceaccount", "reader", "-n", NS]);
    c.kubectl_in(&["apply", "-f", "-"], &client_pod("refused", "reader", ""));
    let pod = c.json(&["get", "pod", "refused", "-n", NS]);
    let volume = pod["spec"]["volumes"]
        .as_array()
        .and_then(|v| {
            v.iter().find(|v| {
                v["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("kube-api-access-"))
            })
        })
        .cloned()
        .unwrap_or_else(|| panic!("no token volume: {pod:#}"));
    assert_eq!(
        volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3607
    );
    assert_eq!(
        pod["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
        MOUNT
    );
    assert_eq!(
        pod["spec"]["containers"][0]["volumeMounts"][0]["readOnly"],
        true
    );
    let logs = c.wait_logs_in(NS, "refused", "list ", Duration::from_secs(60));
    assert!(logs.contains("server 10.96.0.1:443"), "{logs}");
    assert!(
        logs.contains(r#"list refused 403: pods is forbidden: User "system:serviceaccount:team:reader" cannot list resource "pods" in API group "" in the namespace "team""#),
        "{logs}"
    );

    // A Role that reads pods, bound to the account: listing works, deleting does not.
    c.kubectl(&[
        "create",
        "role",
        "pod-reader",
        "-n",
        NS,
        "--verb=get,list,watch",
        "--resource=pods",
    ]);
    c.kubectl(&[
        "create",
        "rolebinding",
        "reader-reads",
        "-n",
        NS,
        "--role=pod-reader",
        "--serviceaccount=team:reader",
    ]);
    c.kubectl_in(&["apply", "-f", "-"], &client_pod("allowed", "reader", ""));
    let logs = c.wait_logs_in(NS, "allowed", "delete ", Duration::from_secs(60));
    assert!(logs.contains("list ok "), "{logs}");
    assert!(
        logs.contains(r#"delete refused 403: pods "allowed" is forbidden: User "system:serviceaccount:team:reader" cannot delete resource "pods" in API group "" in the namespace "team""#),
        "{logs}"
    );

    // automountServiceAccountToken: false leaves the pod without a token.
    c.kubectl_in(
        &["apply", "-f", "-"],
        &client_pod("tokenless", "reader", "automountServiceAccountToken: false"),
    );
    let pod = c.json(&["get", "pod", "tokenless", "-n", NS]);
    assert!(pod["spec"]["volumes"].is_null(), "{pod:#}");
    let logs = c.wait_logs_in(NS, "tokenless", "error", Duration::from_secs(60));
    assert!(logs.contains("no in-cluster client"), "{logs}");
}

/// A server on its default loopback-only address still has an API pods reach: it serves it
/// on the pod bridge's gateway too, which is the `kubernetes` Service's endpoint.
#[test]
fn loopback_only_server_is_reached_through_the_kubernetes_service() {
    let Some(bin) = node::node_and_binary_or_skip("test-incluster") else {
        return;
    };
    let c = NodeCluster::start();
    c.node_name();
    c.load_image(&node::binary_image(&bin, IMAGE));
    let gateway = skiff_node::network::Ipv4Cidr::parse(
        &skiff_apimachinery::network::ClusterNetwork::default()
            .node_pod_cidr(0)
            .expect("the first pod network"),
    )
    .expect("a CIDR")
    .gateway()
    .to_string();
    let endpoints = c.json(&["get", "endpoints", "kubernetes", "-n", "default"]);
    assert_eq!(
        endpoints["subsets"][0]["addresses"][0]["ip"], gateway,
        "{endpoints:#}"
    );

    c.kubectl(&["create", "namespace", NS]);
    c.wait_for(
        "the default ServiceAccount",
        Duration::from_secs(10),
        || exists(&c, NS, &["serviceaccount", "default"]).then_some(()),
    );
    c.kubectl(&[
        "create",
        "rolebinding",
        "default-views",
        "-n",
        NS,
        "--clusterrole=view",
        "--serviceaccount=team:default",
    ]);
    c.kubectl_in(
        &["apply", "-f", "-"],
        &client_pod("loopback", "default", ""),
    );
    let logs = c.wait_logs_in(NS, "loopback", "list ", Duration::from_secs(60));
    assert!(logs.contains("server 10.96.0.1:443"), "{logs}");
    assert!(logs.contains("list ok "), "{logs}");
}
