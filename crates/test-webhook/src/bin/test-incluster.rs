//! Test support, not part of skiff: an in-cluster kube-rs client that the end-to-end test
//! `crates/skiff/tests/incluster.rs` runs as a pod. `kube::Client::try_default()` finds
//! the API as every in-cluster client does (`KUBERNETES_SERVICE_HOST`/`_PORT`, the token
//! and `ca.crt` under `/var/run/secrets/kubernetes.io/serviceaccount`); the client then
//! lists the pods of its namespace and, given a name, tries to delete that pod. Each
//! outcome is one line on stdout for the test to read from the pod's log:
//! `list ok <count>`, `list refused <code>: <message>`, `delete ok`,
//! `delete refused <code>: <message>`, or `error: <why>`.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};

fn outcome<T>(what: &str, result: Result<T, kube::Error>, ok: impl Fn(T) -> String) {
    match result {
        Ok(v) => println!("{what} ok{}", ok(v)),
        Err(kube::Error::Api(s)) => println!("{what} refused {}: {}", s.code, s.message),
        Err(e) => println!("{what} error: {e}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    println!(
        "server {}:{}",
        std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default(),
        std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default()
    );
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            println!("error: no in-cluster client: {e}");
            return;
        }
    };
    let pods: Api<Pod> = Api::default_namespaced(client);
    outcome("list", pods.list(&ListParams::default()).await, |l| {
        format!(" {}", l.items.len())
    });
    if let Some(name) = std::env::args().nth(1) {
        outcome(
            "delete",
            pods.delete(&name, &DeleteParams::default()).await,
            |_| String::new(),
        );
    }
}
