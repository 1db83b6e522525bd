//! Cases of upstream's noderestriction admission_test.go (TestAdmitPod, TestAdmitNode,
//! TestAdmitLease, TestAdmitServiceAccount..., with its names: mynode, othernode, pods
//! `mypod` bound to mynode and `otherpod` bound to othernode).

use super::*;
use serde_json::json;

struct Fake;

impl Lookup for Fake {
    fn pod(&self, _ns: &str, name: &str) -> Option<Value> {
        let node = match name {
            "mypod" => "mynode",
            "otherpod" => "othernode",
            "unboundpod" => "",
            _ => return None,
        };
        Some(
            json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("{name}-uid"), "labels": {"a": "b"}},
                    "spec": {"nodeName": node}}),
        )
    }

    fn node_uid(&self, name: &str) -> Option<String> {
        (name == "mynode").then(|| "mynode-uid".into())
    }
}

/// `(group, resource, subresource)`, the operation, namespace, name, object and old object.
fn req<'a>(
    (group, resource, sub): (&'a str, &'a str, &'a str),
    op: Operation,
    ns: &'a str,
    name: &'a str,
    obj: Option<&'a Value>,
    old: Option<&'a Value>,
) -> Request<'a> {
    Request {
        group,
        resource,
        subresource: sub,
        operation: op,
        namespace: ns,
        name,
        object: obj,
        old,
    }
}

fn mirror(node: &str, owner_uid: &str) -> Value {
    json!({"metadata": {"name": "m", "annotations": {"kubernetes.io/config.mirror": ""},
        "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": owner_uid, "controller": true}]},
        "spec": {"nodeName": node}})
}

fn check(r: &Request<'_>) -> std::result::Result<(), Refusal> {
    decide("mynode", "system:node:mynode", r, &Fake)
}

fn refused(r: &Request<'_>) -> String {
    match check(r) {
        Err(Refusal::Forbidden(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn pods() {
    use Operation::*;
    // Mirror pods of its own, with nothing referenced.
    let ok = mirror("mynode", "mynode-uid");
    assert_eq!(
        check(&req(("", "pods", ""), Create, "ns", "", Some(&ok), None)),
        Ok(())
    );
    let other = mirror("othernode", "mynode-uid");
    assert_eq!(
        refused(&req(("", "pods", ""), Create, "ns", "", Some(&other), None)),
        "node \"mynode\" can only create pods with spec.nodeName set to itself"
    );
    let mut plain = ok.clone();
    plain["metadata"]["annotations"] = json!({});
    assert_eq!(
        refused(&req(("", "pods", ""), Create, "ns", "", Some(&plain), None)),
        "pod does not have \"kubernetes.io/config.mirror\" annotation, node \"mynode\" can only create mirror pods"
    );
    let wrong_uid = mirror("mynode", "other-uid");
    assert_eq!(
        refused(&req(
            ("", "pods", ""),
            Create,
            "ns",
            "",
            Some(&wrong_uid),
            None
        )),
        "node mynode UID mismatch: expected other-uid got mynode-uid"
    );
    let mut with_secret = ok.clone();
    with_secret["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": "foo"}}]);
    assert_eq!(
        refused(&req(
            ("", "pods", ""),
            Create,
            "ns",
            "",
            Some(&with_secret),
            None
        )),
        "node \"mynode\" can not create pods that reference secrets"
    );
    let mut with_sa = ok.clone();
    with_sa["spec"]["serviceAccountName"] = json!("foo");
    assert_eq!(
        refused(&req(
            ("", "pods", ""),
            Create,
            "ns",
            "",
            Some(&with_sa),
            None
        )),
        "node \"mynode\" can not create pods that reference a service account"
    );
    let mut with_pvc = ok.clone();
    with_pvc["spec"]["volumes"] =
        json!([{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]);
    assert_eq!(
        refused(&req(
            ("", "pods", ""),
            Create,
            "ns",
            "",
            Some(&with_pvc),
            None
        )),
        "node \"mynode\" can not create pods that reference persistentvolumeclaims"
    );
    // Delete: its own pods only; a missing pod is a 404.
    assert_eq!(
        check(&req(("", "pods", ""), Delete, "ns", "mypod", None, None)),
        Ok(())
    );
    assert_eq!(
        refused(&req(("", "pods", ""), Delete, "ns", "otherpod", None, None)),
        "node \"mynode\" can only delete pods with spec.nodeName set to itself"
    );
    assert_eq!(
        check(&req(("", "pods", ""), Delete, "ns", "missing", None, None)),
        Err(Refusal::PodNotFound("missing".into()))
    );
    // No updates of pods, any subresource but status and eviction refused.
    let pod = Fake.pod("ns", "mypod").unwrap();
    assert_eq!(
        refused(&req(
            ("", "pods", ""),
            Update,
            "ns",
            "mypod",
            Some(&pod),
            Some(&pod)
        )),
        "unexpected operation \"UPDATE\", node \"mynode\" can only create and delete mirror pods"
    );
    assert_eq!(
        refused(&req(
            ("", "pods", "exec"),
            Create,
            "ns",
            "mypod",
            None,
            None
        )),
        "unexpected pod subresource \"exec\", only 'status' and 'eviction' are allowed"
    );
}

#[test]
fn pod_status_and_eviction() {
    use Operation::*;
    let mine = Fake.pod("ns", "mypod").unwrap();
    let theirs = Fake.pod("ns", "otherpod").unwrap();
    assert_eq!(
        check(&req(
            ("", "pods", "status"),
            Update,
            "ns",
            "mypod",
            Some(&mine),
            Some(&mine)
        )),
        Ok(())
    );
    assert_eq!(
        refused(&req(
            ("", "pods", "status"),
            Update,
            "ns",
            "otherpod",
            Some(&theirs),
            Some(&theirs)
        )),
        "node \"mynode\" can only update pod status for pods with spec.nodeName set to itself"
    );
    let mut relabeled = mine.clone();
    relabeled["metadata"]["labels"]["a"] = json!("c");
    assert_eq!(
        refused(&req(
            ("", "pods", "status"),
            Update,
            "ns",
            "mypod",
            Some(&relabeled),
            Some(&mine)
        )),
        "node \"mynode\" cannot update labels through pod status"
    );
    let eviction = json!({"metadata": {"name": "otherpod"}});
    assert_eq!(
        check(&req(
            ("", "pods", "eviction"),
            Create,
            "ns",
            "mypod",
            Some(&eviction),
            None
        )),
        Ok(())
    );
    assert_eq!(
        refused(&req(
            ("", "pods", "eviction"),
            Create,
            "ns",
            "",
            Some(&eviction),
            None
        )),
        "node mynode can only evict pods with spec.nodeName set to itself"
    );
    assert_eq!(
        refused(&req(
            ("", "pods", "eviction"),
            Create,
            "ns",
            "",
            Some(&json!({})),
            None
        )),
        "could not determine pod from request data"
    );
}

#[test]
fn nodes() {
    use Operation::*;
    let node = |labels: Value, taints: Value| json!({"metadata": {"name": "mynode", "labels": labels}, "spec": {"taints": taints}});
    let base = node(json!({"kubernetes.io/hostname": "mynode"}), json!([]));
    assert_eq!(
        check(&req(("", "nodes", ""), Create, "", "", Some(&base), None)),
        Ok(())
    );
    let mut other = base.clone();
    other["metadata"]["name"] = json!("othernode");
    assert_eq!(
        refused(&req(("", "nodes", ""), Create, "", "", Some(&other), None)),
        "node \"mynode\" is not allowed to modify node \"othernode\""
    );
    assert_eq!(
        refused(&req(
            ("", "nodes", ""),
            Update,
            "",
            "othernode",
            Some(&other),
            Some(&other)
        )),
        "node \"mynode\" is not allowed to modify node \"othernode\""
    );
    assert_eq!(
        refused(&req(("", "nodes", ""), Delete, "", "othernode", None, None)),
        "node \"mynode\" is not allowed to modify node \"othernode\""
    );
    // Labels: node-restriction.kubernetes.io/ never, unknown kubernetes.io/k8s.io never,
    // the kubelet's own and node.kubernetes.io/ ones and any other domain yes.
    let restricted = node(
        json!({"node-restriction.kubernetes.io/foo": "bar", "foo.node-restriction.kubernetes.io/x": "y"}),
        json!([]),
    );
    assert_eq!(
        refused(&req(("", "nodes", ""), Create, "", "", Some(&restricted), None)),
        "node \"mynode\" is not allowed to set the following labels: foo.node-restriction.kubernetes.io/x, node-restriction.kubernetes.io/foo"
    );
    let unknown = node(
        json!({"kubernetes.io/role": "master", "example.com/ok": "1", "node.kubernetes.io/instance-type": "x", "kubelet.kubernetes.io/x": "y"}),
        json!([]),
    );
    assert_eq!(
        refused(&req(
            ("", "nodes", ""),
            Create,
            "",
            "",
            Some(&unknown),
            None
        )),
        "node \"mynode\" is not allowed to set the following labels: kubernetes.io/role"
    );
    let fine = node(
        json!({"example.com/ok": "1", "topology.kubernetes.io/zone": "z"}),
        json!([]),
    );
    assert_eq!(
        check(&req(
            ("", "nodes", ""),
            Update,
            "",
            "mynode",
            Some(&fine),
            Some(&base)
        )),
        Ok(())
    );
    let relabel = node(
        json!({"node-restriction.kubernetes.io/foo": "bar"}),
        json!([]),
    );
    assert_eq!(
        refused(&req(
            ("", "nodes", ""),
            Update,
            "",
            "mynode",
            Some(&relabel),
            Some(&base)
        )),
        "is not allowed to modify labels: node-restriction.kubernetes.io/foo"
    );
    // Taints are the node lifecycle controller's, not the node's.
    let tainted = node(
        json!({"kubernetes.io/hostname": "mynode"}),
        json!([{"key": "k", "effect": "NoSchedule"}]),
    );
    assert_eq!(
        refused(&req(
            ("", "nodes", ""),
            Update,
            "",
            "mynode",
            Some(&base),
            Some(&tainted)
        )),
        "node \"mynode\" is not allowed to modify taints"
    );
    assert_eq!(
        check(&req(
            ("", "nodes", "status"),
            Update,
            "",
            "mynode",
            Some(&tainted),
            Some(&tainted)
        )),
        Ok(())
    );
}

#[test]
fn leases_tokens_and_claims() {
    use Operation::*;
    let lease = |name: &str| json!({"metadata": {"name": name}});
    let mine = lease("mynode");
    let theirs = lease("othernode");
    assert_eq!(
        check(&req(
            ("coordination.k8s.io", "leases", ""),
            Create,
            "kube-node-lease",
            "",
            Some(&mine),
            None
        )),
        Ok(())
    );
    assert_eq!(
        refused(&req(
            ("coordination.k8s.io", "leases", ""),
            Create,
            "kube-node-lease",
            "",
            Some(&theirs),
            None
        )),
        "can only access node lease with the same name as the requesting node"
    );
    assert_eq!(
        refused(&req(
            ("coordination.k8s.io", "leases", ""),
            Update,
            "foo",
            "mynode",
            Some(&mine),
            Some(&mine)
        )),
        "can only access leases in the \"kube-node-lease\" system namespace"
    );
    assert_eq!(
        check(&req(
            ("coordination.k8s.io", "leases", ""),
            Update,
            "kube-node-lease",
            "mynode",
            Some(&mine),
            Some(&mine)
        )),
        Ok(())
    );

    let token = |bound: Value| json!({"spec": {"boundObjectRef": bound}});
    let good =
        token(json!({"apiVersion": "v1", "kind": "Pod", "name": "mypod", "uid": "mypod-uid"}));
    assert_eq!(
        check(&req(
            ("", "serviceaccounts", "token"),
            Create,
            "ns",
            "default",
            Some(&good),
            None
        )),
        Ok(())
    );
    let unbound = json!({"spec": {}});
    assert_eq!(
        refused(&req(
            ("", "serviceaccounts", "token"),
            Create,
            "ns",
            "default",
            Some(&unbound),
            None
        )),
        "node requested token not bound to a pod"
    );
    let no_uid = token(json!({"apiVersion": "v1", "kind": "Pod", "name": "mypod"}));
    assert_eq!(
        refused(&req(
            ("", "serviceaccounts", "token"),
            Create,
            "ns",
            "default",
            Some(&no_uid),
            None
        )),
        "node requested token with a pod binding without a uid"
    );
    let stale = token(json!({"apiVersion": "v1", "kind": "Pod", "name": "mypod", "uid": "old"}));
    assert!(refused(&req(
        ("", "serviceaccounts", "token"),
        Create,
        "ns",
        "default",
        Some(&stale),
        None
    ))
    .starts_with("the UID in the bound object reference (old) does not match"));
    let elsewhere = token(
        json!({"apiVersion": "v1", "kind": "Pod", "name": "otherpod", "uid": "otherpod-uid"}),
    );
    assert_eq!(
        refused(&req(
            ("", "serviceaccounts", "token"),
            Create,
            "ns",
            "default",
            Some(&elsewhere),
            None
        )),
        "node requested token bound to a pod scheduled on a different node"
    );

    let pvc = json!({"metadata": {"name": "c", "resourceVersion": "1"}, "spec": {"x": 1}, "status": {"capacity": {"storage": "1Gi"}}});
    let mut grown = pvc.clone();
    grown["status"]["capacity"]["storage"] = json!("2Gi");
    grown["metadata"]["resourceVersion"] = json!("2");
    assert_eq!(
        check(&req(
            ("", "persistentvolumeclaims", "status"),
            Update,
            "ns",
            "c",
            Some(&grown),
            Some(&pvc)
        )),
        Ok(())
    );
    let mut relabeled = pvc.clone();
    relabeled["metadata"]["labels"] = json!({"a": "b"});
    assert!(refused(&req(
        ("", "persistentvolumeclaims", "status"),
        Update,
        "ns",
        "c",
        Some(&relabeled),
        Some(&pvc)
    ))
    .starts_with("node \"mynode\" is not allowed to update fields other than"));
    assert_eq!(
        refused(&req(
            ("", "persistentvolumeclaims", ""),
            Update,
            "ns",
            "c",
            Some(&pvc),
            Some(&pvc)
        )),
        "may only update PVC status"
    );
}

#[test]
fn other_users_and_nameless_nodes() {
    let r = req(
        ("", "nodes", ""),
        Operation::Delete,
        "",
        "othernode",
        None,
        None,
    );
    assert_eq!(
        decide("", "system:node:", &r, &Fake),
        Err(Refusal::Forbidden(
            "could not determine node from user \"system:node:\"".into()
        ))
    );
    // Services and the rest are not the plugin's business.
    let r = req(
        ("", "services", ""),
        Operation::Delete,
        "ns",
        "s",
        None,
        None,
    );
    assert_eq!(check(&r), Ok(()));
}
