//! End-to-end: CertificateSigningRequests with the real `kubectl` (create, `get csr`,
//! `certificate approve` and `deny`, which write through the approval subresource).

mod common;

use base64::Engine;
use common::Cluster;

/// A CSR manifest for a fresh key, as `openssl req -new` would produce for `CN=<cn>, O=dev`,
/// and that key (PEM).
fn manifest(name: &str, cn: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "dev");
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let request = base64::engine::general_purpose::STANDARD.encode(pem);
    let yaml = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 86400\n  usages:\n  - client auth\n"
    );
    (yaml, key.serialize_pem())
}

#[test]
fn kubectl_creates_lists_approves_and_denies_csrs() {
    let c = Cluster::start();
    let (bob, bob_key) = manifest("bob", "bob");
    let out = c.kubectl_in(&["create", "-f", "-"], &bob);
    assert_eq!(
        out.trim(),
        "certificatesigningrequest.certificates.k8s.io/bob created"
    );
    c.kubectl_in(&["create", "-f", "-"], &manifest("eve", "eve").0);
    let csr = c.json(&["get", "csr", "bob"]);
    let requestor = csr["spec"]["username"].as_str().unwrap().to_owned();
    assert!(!requestor.is_empty());

    let table = c.kubectl(&["get", "csr"]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ],
        "{table}"
    );
    assert_eq!(lines[1][0], "bob", "{table}");
    assert_eq!(
        lines[1][2..],
        [
            "kubernetes.io/kube-apiserver-client",
            &requestor,
            "24h",
            "Pending"
        ],
        "{table}"
    );

    let out = c.kubectl(&["certificate", "approve", "bob"]);
    assert_eq!(
        out.trim(),
        "certificatesigningrequest.certificates.k8s.io/bob approved"
    );
    let out = c.kubectl(&["certificate", "deny", "eve"]);
    assert_eq!(
        out.trim(),
        "certificatesigningrequest.certificates.k8s.io/eve denied"
    );
    let conditions = c.kubectl(&[
        "get",
        "csr",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[*].type}/{.status.conditions[*].reason} {end}",
    ]);
    assert_eq!(
        conditions.trim(),
        "bob=Approved/KubectlApprove eve=Denied/KubectlDeny"
    );
    // The kube-apiserver-client signer issues bob's certificate from the cluster CA.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let cert = loop {
        let cert = c.kubectl(&["get", "csr", "bob", "-o", "jsonpath={.status.certificate}"]);
        if !cert.trim().is_empty() {
            break cert;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bob's certificate never issued"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let pem = base64::engine::general_purpose::STANDARD
        .decode(cert.trim())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("bob.crt");
    std::fs::write(&cert_path, &pem).unwrap();
    let ca = c.kubeconfig().parent().unwrap().join("pki").join("ca.crt");
    let verify = std::process::Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(&ca)
        .arg(&cert_path)
        .output()
        .expect("openssl runs");
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // The certificate is a credential the server accepts: bob is bob, in his group.
    let key_path = dir.path().join("bob.key");
    std::fs::write(&key_path, &bob_key).unwrap();
    let server = c.kubectl(&[
        "config",
        "view",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let whoami = std::process::Command::new("kubectl")
        .env("KUBECONFIG", dir.path().join("none"))
        .arg(format!("--server={}", server.trim()))
        .arg(format!("--certificate-authority={}", ca.display()))
        .arg(format!("--client-certificate={}", cert_path.display()))
        .arg(format!("--client-key={}", key_path.display()))
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ])
        .output()
        .expect("kubectl runs");
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout).trim(),
        "bob [\"dev\",\"system:authenticated\"]",
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    let table = c.kubectl(&["get", "csr", "bob", "--no-headers"]);
    assert!(table.trim_end().ends_with("Approved,Issued"), "{table}");
    let eve = c.json(&["get", "csr", "eve"]);
    assert!(eve["status"].get("certificate").is_none(), "{eve}");

    // A request that is not one is refused with upstream's message and not stored.
    let bad = "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: bad\nspec:\n  request: eA==\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n";
    let err = c.kubectl_err(&["create", "-f", "-"], Some(bad));
    assert!(
        err.contains("The CertificateSigningRequest \"bad\" is invalid: spec.request: Invalid value: []byte{0x78}: PEM block type must be CERTIFICATE REQUEST"),
        "{err}"
    );
    let names = c.kubectl(&["get", "csr", "-o", "name"]);
    assert!(!names.contains("/bad"), "{names}");
}
