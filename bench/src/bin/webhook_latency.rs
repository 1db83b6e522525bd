//! What admission webhooks add to a create: ConfigMap creates timed one at a time (the
//! latency a client sees, p50/p99) and from `--clients` clients at once (creates/s), with
//! no webhook, with a validating webhook registered that does not match (its namespace
//! selector excludes the namespace: the cost of deciding not to call), with that webhook
//! matching, and with a mutating webhook matching as well (two round trips and a JSON
//! patch applied).
//!
//! The webhook is the e2e tests' own server (crates/test-webhook, `test-webhook` next to
//! this executable, or `--webhook`), started on 127.0.0.1 with a fresh self-signed
//! certificate whose PEM is the configurations' `caBundle`; the API server calls it over
//! HTTPS at `clientConfig.url`, AdmissionReview v1, as it would a webhook behind a Service.
//! Each configuration is waited on until it acts (a denied probe, a mutated probe) before
//! its phase is timed.
//!
//! Usage: `cargo build --release -p skiff -p skiff-bench -p test-webhook && \
//! target/release/webhook-latency [--creates 500] [--clients 16]`

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::Parser;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;
use skiff_bench::percentile;
use skiff_bench::server::ApiServer;

#[derive(Parser)]
#[command(name = "webhook-latency")]
struct Args {
    /// The skiff binary (default: `skiff` next to this executable).
    #[arg(long)]
    skiff: Option<PathBuf>,
    /// The webhook server (default: `test-webhook` next to this executable).
    #[arg(long)]
    webhook: Option<PathBuf>,
    /// Creates timed one at a time per phase.
    #[arg(long, default_value_t = 500)]
    creates: usize,
    /// Concurrent clients for the throughput run of each phase.
    #[arg(long, default_value_t = 16)]
    clients: usize,
}

/// A binary next to this executable, unless given.
fn beside_me(given: &Option<PathBuf>, name: &str) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("executable directory")?
            .join(name),
    };
    if !path.is_file() {
        bail!(
            "no {name} binary at {} (build it, or pass its path)",
            path.display()
        );
    }
    Ok(path)
}

/// The webhook server on 127.0.0.1 with a fresh certificate; killed on drop.
struct Webhook {
    child: Child,
    url: String,
    ca_bundle: String,
    _dir: tempfile::TempDir,
}

impl Webhook {
    fn start(binary: &PathBuf) -> Result<Webhook> {
        let dir = tempfile::tempdir()?;
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?;
        let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&crt, cert.cert.pem())?;
        std::fs::write(&key, cert.signing_key.serialize_pem())?;
        let mut child = Command::new(binary)
            .env("WEBHOOK_LISTEN", "127.0.0.1:0")
            .env("WEBHOOK_CERT", &crt)
            .env("WEBHOOK_KEY", &key)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start the webhook")?;
        let mut line = String::new();
        BufReader::new(child.stderr.take().context("stderr")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("test-webhook listening on ")
            .with_context(|| format!("the webhook said {line:?}"))?
            .to_owned();
        Ok(Webhook {
            child,
            url: format!("https://{addr}"),
            ca_bundle: base64::engine::general_purpose::STANDARD.encode(cert.cert.pem()),
            _dir: dir,
        })
    }

    /// A webhook configuration of `kind` calling `path` for ConfigMap creates in
    /// namespaces labelled `bench=webhook`.
    fn configuration(&self, kind: &str, path: &str) -> serde_json::Value {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": format!("bench{path}").replace('/', "-")},
            "webhooks": [{
                "name": format!("bench{}.skiff.test", path.replace('/', "-")),
                "clientConfig": {"url": format!("{}{path}", self.url), "caBundle": self.ca_bundle},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                    "resources": ["configmaps"]}],
                "namespaceSelector": {"matchLabels": {"bench": "webhook"}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
            }],
        })
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_map(name: &str, data: serde_json::Value) -> Result<ConfigMap> {
    Ok(serde_json::from_value(
        json!({"metadata": {"name": name}, "data": data}),
    )?)
}

/// One phase's figures.
struct Phase {
    name: &'static str,
    /// Sorted single-client create latencies, ms.
    latencies: Vec<f64>,
    per_second: f64,
}

/// Times `creates` creates one at a time, then `clients` × `creates / clients` at once.
async fn phase(
    name: &'static str,
    cms: &Api<ConfigMap>,
    tag: &str,
    creates: usize,
    clients: usize,
) -> Result<Phase> {
    // Warm connections and caches.
    for i in 0..20 {
        cms.create(
            &PostParams::default(),
            &config_map(&format!("{tag}-warm-{i}"), json!({}))?,
        )
        .await?;
    }
    let mut latencies = Vec::with_capacity(creates);
    for i in 0..creates {
        let cm = config_map(&format!("{tag}-{i}"), json!({"k": "v"}))?;
        let start = Instant::now();
        cms.create(&PostParams::default(), &cm).await?;
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let each = (creates / clients.max(1)).max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients.max(1) {
        let (cms, tag) = (cms.clone(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                let cm = config_map(&format!("{tag}-c{c}-{i}"), json!({"k": "v"}))?;
                cms.create(&PostParams::default(), &cm).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let per_second = (each * clients.max(1)) as f64 / start.elapsed().as_secs_f64();
    Ok(Phase {
        name,
        latencies,
        per_second,
    })
}

/// Retries `probe` until it says the configuration acts (the server picks configurations
/// up from a watch), 10 s at most.
async fn until<F, Fut>(what: &str, mut probe: F) -> Result<()>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    for attempt in 0.. {
        if probe(attempt).await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: not in effect after 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let server = ApiServer::start(beside_me(&args.skiff, "skiff")?);
    let webhook = Webhook::start(&beside_me(&args.webhook, "test-webhook")?)?;
    let client = server.client().await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for (name, labels) in [
        ("plain", json!({})),
        ("hooked", json!({"bench": "webhook"})),
    ] {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))?;
        namespaces.create(&PostParams::default(), &ns).await?;
    }
    let plain: Api<ConfigMap> = Api::namespaced(client.clone(), "plain");
    let hooked: Api<ConfigMap> = Api::namespaced(client.clone(), "hooked");
    let (n, k) = (args.creates, args.clients);

    let mut phases = vec![phase("no webhook", &plain, "none", n, k).await?];

    let admission = |kind: &str, plural: &str| {
        let ar = ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::<DynamicObject>::all_with(client.clone(), &ar)
    };
    let validating = admission(
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
    );
    validating
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                webhook.configuration("ValidatingWebhookConfiguration", "/validate"),
            )?,
        )
        .await?;
    until("the validating webhook", |i| {
        let hooked = hooked.clone();
        async move {
            let probe = config_map(&format!("probe-v-{i}"), json!({"forbidden": "x"}))?;
            Ok(hooked.create(&PostParams::default(), &probe).await.is_err())
        }
    })
    .await?;
    phases.push(phase("validating, not matching", &plain, "skip", n, k).await?);
    phases.push(phase("validating", &hooked, "val", n, k).await?);

    let mutating = admission(
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
    );
    mutating
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                webhook.configuration("MutatingWebhookConfiguration", "/mutate"),
            )?,
        )
        .await?;
    until("the mutating webhook", |i| {
        let hooked = hooked.clone();
        async move {
            let probe = config_map(&format!("probe-m-{i}"), json!({}))?;
            let made = hooked.create(&PostParams::default(), &probe).await?;
            Ok(made
                .metadata
                .labels
                .is_some_and(|l| l.get("mutated-by").map(String::as_str) == Some("webhook")))
        }
    })
    .await?;
    phases.push(phase("mutating + validating", &hooked, "both", n, k).await?);

    let base = percentile(&phases[0].latencies, 0.5);
    println!("ConfigMap creates, {n} one at a time (latency) and {k} clients at once (throughput)");
    println!(
        "{:<26} {:>9} {:>9} {:>12} {:>10}",
        "phase", "p50 ms", "p99 ms", "p50 added", "creates/s"
    );
    for p in &phases {
        let p50 = percentile(&p.latencies, 0.5);
        println!(
            "{:<26} {:>9.2} {:>9.2} {:>+12.2} {:>10.0}",
            p.name,
            p50,
            percentile(&p.latencies, 0.99),
            p50 - base,
            p.per_second
        );
    }
    drop(webhook);
    drop(server);
    Ok(())
}
