//! End to end: kubelet TLS bootstrap (decision 0044). `skiff token create` makes a
//! bootstrap token; `skiff agent` joins with it from another "host" (a network namespace on
//! a shared link), asks for a `kube-apiserver-client-kubelet` certificate for
//! `system:node:<name>`, which the controllers approve (`nodeclient`) and sign, and then
//! acts as the node with it; a node's own renewal request is approved as `selfnodeclient`;
//! a restarted agent needs no token. Root only (fails under CI without it).

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::process::Command;
use std::time::Duration;

/// `skiff token create` against the server's data dir.
fn token_create(c: &node::NodeCluster, extra: &[&str]) -> std::process::Output {
    // The server's API is reached inside its network namespace.
    Command::new("ip")
        .args(["netns", "exec", &c.netns, env!("CARGO_BIN_EXE_skiff")])
        .args(["token", "create", "--data-dir"])
        .arg(c.dir.path())
        .args(extra)
        .output()
        .expect("skiff token create")
}

/// kubectl in the agent's network namespace with the agent's own kubeconfig.
fn as_agent(b: &node::AgentNode, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", &b.netns, "kubectl", "--kubeconfig"])
        .arg(b.dir.path().join("kubeconfig"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("kubectl output")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A PEM certificate request for `cn` in `system:nodes`.
fn node_request(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

#[test]
fn an_agent_joins_with_a_bootstrap_token_and_its_own_certificate() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start_listening("0.0.0.0:0");

    // Bad flags change nothing.
    let bad = token_create(&c, &["--ttl", "soon"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("--ttl \"soon\""),
        "{}",
        text(&bad.stderr)
    );
    let bad = token_create(&c, &["--groups", "system:masters"]);
    assert!(!bad.status.success());

    let out = token_create(&c, &["--description", "node-b", "--ttl", "1h"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    let (id, secret) = token.split_once('.').expect("id.secret");
    assert_eq!((id.len(), secret.len()), (6, 16), "{token}");
    let stored = c.json(&[
        "get",
        "secret",
        "-n",
        "kube-system",
        &format!("bootstrap-token-{id}"),
    ]);
    assert_eq!(stored["type"], "bootstrap.kubernetes.io/token");

    // The token is `system:bootstrap:<id>` in `system:bootstrappers`, which may ask for
    // certificates and nothing else.
    let whoami = c.json(&["auth", "whoami", "--token", &token]);
    assert_eq!(
        whoami["status"]["userInfo"]["username"],
        format!("system:bootstrap:{id}")
    );
    let groups = whoami["status"]["userInfo"]["groups"].to_string();
    assert!(groups.contains("\"system:bootstrappers\""), "{groups}");
    let denied = c.kubectl_output(&["get", "pods", "--token", &token], None);
    assert!(!denied.status.success());
    assert!(
        text(&denied.stderr).contains(&format!(
            r#"User "system:bootstrap:{id}" cannot list resource "pods""#
        )),
        "{}",
        text(&denied.stderr)
    );
    // A token whose secret half is wrong is a 401.
    let forged = format!("{id}.0000000000000000");
    let out = c.kubectl_output(&["get", "pods", "--token", &forged], None);
    assert!(
        text(&out.stderr).contains("Unauthorized"),
        "{}",
        text(&out.stderr)
    );

    let mut b = node::AgentNode::join_with_token(&c, "node-b", "10.244.1.0/24", &token);
    c.wait_for("node-b to be Ready", Duration::from_secs(30), || {
        let n = c.json(&["get", "node", "node-b"]);
        n["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
            .then_some(())
    });

    // The request the token made, approved by the controllers as upstream's approver and
    // signed.
    let csrs = c.json(&["get", "csr"]);
    let csr = csrs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet")
        .unwrap_or_else(|| panic!("no kubelet client CSR: {csrs:#}"))
        .clone();
    assert_eq!(csr["spec"]["username"], format!("system:bootstrap:{id}"));
    let approved = &csr["status"]["conditions"][0];
    assert_eq!(approved["type"], "Approved", "{csr:#}");
    assert_eq!(approved["reason"], "AutoApproved");
    assert_eq!(
        approved["message"],
        "Auto approving kubelet client certificate after SubjectAccessReview."
    );
    assert!(csr["status"]["certificate"].is_string(), "{csr:#}");

    // The agent acts as the node with its certificate: its kubeconfig names the file.
    let out = as_agent(&b, &["auth", "whoami", "-o", "json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], "system:node:node-b");
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        serde_json::json!(["system:nodes", "system:authenticated"])
    );
    let kubeconfig = std::fs::read_to_string(b.dir.path().join("kubeconfig")).unwrap();
    assert!(
        !kubeconfig.contains(&token),
        "the token stays out of the kubeconfig"
    );
    assert!(
        kubeconfig.contains("kubelet-client-current.pem"),
        "{kubeconfig}"
    );

    // The node's own renewal request is approved as `selfnodeclient`.
    let request = node_request("system:node:node-b");
    let csr = serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "node-b-renewal"},
        "spec": {
            "request": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD, request),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
        },
    });
    let out = as_agent(&b, &["create", "-f", "-"], Some(&csr.to_string()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let renewal = c.wait_for("the renewal signed", Duration::from_secs(20), || {
        let r = c.json(&["get", "csr", "node-b-renewal"]);
        r["status"]["certificate"].is_string().then_some(r)
    });
    assert_eq!(
        renewal["status"]["conditions"][0]["message"],
        "Auto approving self kubelet client certificate after SubjectAccessReview."
    );
    // Another node's name is not its to ask for: it waits for a person.
    let other = serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "node-c-by-b"},
        "spec": {
            "request": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD, node_request("system:node:node-c")),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
        },
    });
    let out = as_agent(&b, &["create", "-f", "-"], Some(&other.to_string()));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Restarted without its token (deleted), the agent comes back with its certificate.
    c.kubectl(&[
        "delete",
        "secret",
        "-n",
        "kube-system",
        &format!("bootstrap-token-{id}"),
    ]);
    b.power_off();
    b.power_on();
    let out = as_agent(
        &b,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    );
    assert_eq!(
        text(&out.stdout),
        "system:node:node-b",
        "{}",
        text(&out.stderr)
    );
    let log = b.log.lock().unwrap().join("\n");
    assert!(log.contains("using the node's client certificate"), "{log}");
    let pending = c.json(&["get", "csr", "node-c-by-b"]);
    assert!(pending["status"]["conditions"].is_null(), "{pending:#}");
}
