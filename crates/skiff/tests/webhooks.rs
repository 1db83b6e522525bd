//! End to end: a validating and a mutating admission webhook run as pods behind a Service
//! on a real node (root only), reached by the API server through the Service's endpoints
//! with a `caBundle` the test made, and driven with the real kubectl.
//!
//! The webhook is the test-support binary of `crates/test-webhook`, packaged with its shared
//! libraries into an image. `cargo test --workspace` builds it (that crate's own test needs
//! it); for this test alone, `cargo build -p test-webhook` first. Without it, or without the
//! node's prerequisites, the test is skipped with a message, and fails under `CI=true`.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::time::Duration;

use base64::Engine;
use node::NodeCluster;

/// Where the webhook runs, and the namespace whose ConfigMaps it sees.
const SYSTEM_NS: &str = "webhook-system";
const TEST_NS: &str = "webhook-test";
const SERVICE: &str = "test-webhook";
const IMAGE: &str = "test-webhook:e2e";
/// What the webhook's `/validate` says when it refuses (crates/test-webhook).
const DENIED: &str = "the test webhook refuses data key \"forbidden\"";

/// A CA (its PEM) and a server certificate and key it signed for the Service's DNS names.
fn certificates() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, "skiff webhook test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec![
        format!("{SERVICE}.{SYSTEM_NS}.svc"),
        format!("{SERVICE}.{SYSTEM_NS}.svc.cluster.local"),
    ])
    .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{SERVICE}.{SYSTEM_NS}.svc"));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

fn workload() -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {SERVICE}, namespace: {SYSTEM_NS}}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {SERVICE}}}
  template:
    metadata:
      labels: {{app: {SERVICE}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: webhook
        image: {IMAGE}
        imagePullPolicy: Never
        ports: [{{name: https, containerPort: 8443}}]
        readinessProbe:
          tcpSocket: {{port: 8443}}
          periodSeconds: 1
        volumeMounts: [{{name: certs, mountPath: /certs, readOnly: true}}]
      volumes:
      - name: certs
        secret: {{secretName: webhook-tls}}
---
apiVersion: v1
kind: Service
metadata: {{name: {SERVICE}, namespace: {SYSTEM_NS}}}
spec:
  selector: {{app: {SERVICE}}}
  ports: [{{name: https, port: 443, targetPort: 8443}}]
"#
    )
}

/// The two configurations, on CREATE and UPDATE of ConfigMaps in namespaces labelled
/// `webhook-test: "true"`, each through the Service.
fn configurations(ca_bundle: &str) -> String {
    let hook = |name: &str, path: &str, policy: &str| {
        format!(
            r#"
- name: {name}
  clientConfig:
    service: {{namespace: {SYSTEM_NS}, name: {SERVICE}, path: {path}, port: 443}}
    caBundle: {ca_bundle}
  rules:
  - {{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE, UPDATE]}}
  namespaceSelector:
    matchLabels: {{webhook-test: "true"}}
  failurePolicy: {policy}
  timeoutSeconds: 5
  sideEffects: None
  admissionReviewVersions: [v1]"#
        )
    };
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: test-validate}}
webhooks:{}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: test-mutate}}
webhooks:{}
"#,
        hook("validate.test-webhook.skiff.dev", "/validate", "Fail"),
        hook("mutate.test-webhook.skiff.dev", "/mutate", "Ignore"),
    )
}

/// `kubectl create configmap NAME -n TEST_NS --from-literal=KEY=v`: stderr if refused.
fn create_configmap(c: &NodeCluster, name: &str, key: &str) -> Result<(), String> {
    let literal = format!("--from-literal={key}=v");
    let out = c.kubectl_output(
        &["create", "configmap", name, "-n", TEST_NS, &literal],
        None,
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn delete_configmap(c: &NodeCluster, name: &str) {
    c.kubectl(&["delete", "configmap", name, "-n", TEST_NS, "--wait=false"]);
}

fn label(c: &NodeCluster, name: &str) -> Option<String> {
    let cm = c.json(&["get", "configmap", name, "-n", TEST_NS]);
    cm["metadata"]["labels"]["mutated-by"]
        .as_str()
        .map(str::to_owned)
}

/// The ready addresses of the webhook's Endpoints.
fn ready_addresses(c: &NodeCluster) -> usize {
    let out = c.kubectl_output(
        &["get", "endpoints", SERVICE, "-n", SYSTEM_NS, "-o", "json"],
        None,
    );
    let ep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    ep["subsets"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|ss| ss["addresses"].as_array())
                .map(Vec::len)
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn webhooks_in_a_pod_behind_a_service_validate_and_mutate() {
    let Some(bin) = node::node_and_binary_or_skip("test-webhook") else {
        return;
    };
    let c = NodeCluster::start();
    c.node_name();
    c.load_image(&node::binary_image(&bin, IMAGE));

    // The webhook's certificate, made for its Service's name, in a Secret the pod mounts.
    let (ca, cert, key) = certificates();
    let (cert_file, key_file) = (c.dir.path().join("tls.crt"), c.dir.path().join("tls.key"));
    std::fs::write(&cert_file, &cert).expect("write certificate");
    std::fs::write(&key_file, &key).expect("write key");
    c.kubectl(&["create", "namespace", SYSTEM_NS]);
    c.kubectl(&["create", "namespace", TEST_NS]);
    c.kubectl(&["label", "namespace", TEST_NS, "webhook-test=true"]);
    c.kubectl(&[
        "create",
        "secret",
        "tls",
        "webhook-tls",
        "-n",
        SYSTEM_NS,
        &format!("--cert={}", cert_file.display()),
        &format!("--key={}", key_file.display()),
    ]);
    c.kubectl_in(&["apply", "-f", "-"], &workload());
    c.kubectl(&[
        "rollout",
        "status",
        "-n",
        SYSTEM_NS,
        &format!("deployment/{SERVICE}"),
        "--timeout=90s",
    ]);
    c.wait_for("the webhook's endpoints", Duration::from_secs(30), || {
        (ready_addresses(&c) > 0).then_some(())
    });

    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    c.kubectl_in(&["apply", "-f", "-"], &configurations(&ca_bundle));

    // The validating webhook refuses, with its own message, once the server has the
    // configuration (it arrives by watch: until then the probe is admitted, and removed).
    let attempt = std::cell::Cell::new(0);
    let refused = c.wait_for(
        "the validating webhook to refuse",
        Duration::from_secs(30),
        || {
            attempt.set(attempt.get() + 1);
            let name = format!("probe-{}", attempt.get());
            match create_configmap(&c, &name, "forbidden") {
                Ok(()) => {
                    delete_configmap(&c, &name);
                    None
                }
                Err(stderr) => Some(stderr),
            }
        },
    );
    assert!(
        refused.contains(&format!(
            "admission webhook \"validate.test-webhook.skiff.dev\" denied the request: {DENIED}"
        )),
        "{refused}"
    );

    // The mutating webhook labels what it admits.
    let attempt = std::cell::Cell::new(0);
    c.wait_for(
        "the mutating webhook to label",
        Duration::from_secs(30),
        || {
            attempt.set(attempt.get() + 1);
            let name = format!("allowed-{}", attempt.get());
            create_configmap(&c, &name, "fine").expect("an allowed ConfigMap is created");
            if label(&c, &name).as_deref() == Some("webhook") {
                return Some(());
            }
            delete_configmap(&c, &name);
            None
        },
    );
    // ConfigMaps outside the selected namespaces are not sent to the webhooks.
    c.kubectl(&[
        "create",
        "configmap",
        "elsewhere",
        "--from-literal=forbidden=v",
    ]);
    let cm = c.json(&["get", "configmap", "elsewhere"]);
    assert!(cm["metadata"]["labels"].get("mutated-by").is_none(), "{cm}");

    // The webhook goes away: failurePolicy Fail refuses, Ignore admits unchanged.
    c.kubectl(&[
        "scale",
        "-n",
        SYSTEM_NS,
        &format!("deployment/{SERVICE}"),
        "--replicas=0",
    ]);
    // Gone from the Endpoints is not gone: a terminating pod still answers on the API
    // server's open connections until its process ends.
    c.wait_for("the webhook pod to go", Duration::from_secs(60), || {
        let pods = c.kubectl(&["get", "pods", "-n", SYSTEM_NS, "-o", "name"]);
        (pods.trim().is_empty() && ready_addresses(&c) == 0).then_some(())
    });
    let err = create_configmap(&c, "while-down", "fine").expect_err("failurePolicy Fail refuses");
    assert!(
        err.contains("failed calling webhook \"validate.test-webhook.skiff.dev\""),
        "{err}"
    );
    c.kubectl(&[
        "patch",
        "validatingwebhookconfiguration",
        "test-validate",
        "--type=json",
        "-p",
        r#"[{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]"#,
    ]);
    c.wait_for(
        "failurePolicy Ignore to admit",
        Duration::from_secs(30),
        || create_configmap(&c, "while-down", "forbidden").ok(),
    );
    assert_eq!(label(&c, "while-down"), None, "nothing mutated it");
}
