//! Upstream's conformance suite as skiff's measure: the API-machinery cases of kubernetes
//! `test/e2e/apimachinery` (v1.33), re-created step by step against one real `skiff server`
//! and driven by kube-rs (a second client besides kubectl). `docs/conformance.md` maps every
//! upstream case to its status here; each test names the upstream file and case it ports.
//!
//! One server serves the whole file (started on first use, killed with the test process);
//! every test works in namespaces of its own, so tests run concurrently. Where upstream waits
//! a fixed time to see that nothing happens, these tests wait for a later event that must come
//! after it instead (a sentinel), so they never sleep.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use hyper::{Method, Request, StatusCode};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, Pod, PodTemplate, ReplicationController, Service,
};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Harness

/// The shared server: its kubeconfig and the tail of its log (printed when a test fails).
struct Server {
    kubeconfig: PathBuf,
    log: &'static Mutex<VecDeque<String>>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start_server("conformance-server"))
}

/// Starts `skiff server` (no node agent: pods stay Pending) from a thread that lives as long as
/// the server, which gets SIGKILL when the test process ends (a static is never dropped).
fn start_server(name: &str) -> Server {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("server data dir");
    let log: &'static Mutex<VecDeque<String>> = Box::leak(Box::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let data = dir.clone();
    std::thread::spawn(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
        cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("RUST_LOG", "info")
            .env("SKIFF_NODE", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent. The parent
        // "thread" that PDEATHSIG watches is this one, which runs until the server exits.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn skiff server");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("skiff is ready") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() == 300 {
                log.pop_front();
            }
            log.push_back(line);
        }
        let _ = child.wait();
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("skiff server did not become ready");
    Server {
        kubeconfig: dir.join("kubeconfig"),
        log,
    }
}

/// Runs one test body on its own runtime with its own kube-rs client; on failure prints the
/// server's recent log.
fn run<F, Fut>(body: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    run_on(server(), body)
}

/// [`run`] against a given server.
fn run_on<F, Fut>(s: &'static Server, body: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let kubeconfig = Kubeconfig::read_from(&s.kubeconfig).expect("read kubeconfig");
            let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kube config");
            let client = Client::try_from(config).expect("kube client");
            body(client).await
        })
    }));
    if let Err(panic) = result {
        let log = s.log.lock().unwrap_or_else(|e| e.into_inner());
        let tail: Vec<&String> = log.iter().rev().take(40).collect();
        eprintln!("--- last server log lines (newest first) ---");
        for line in tail {
            eprintln!("{line}");
        }
        std::panic::resume_unwind(panic);
    }
}

/// Whether a missing prerequisite may skip a test: never under `CI=true`, where it fails.
fn skip_without(prerequisite_met: bool, what: &str) -> bool {
    if prerequisite_met {
        return false;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("prerequisite missing under CI=true: {what}");
    }
    eprintln!("skipped: {what}");
    true
}

/// Creates a namespace of the test's own (upstream's framework does this per test).
async fn namespace(c: &Client, name: &str) -> String {
    let api: Api<Namespace> = Api::all(c.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    name.to_owned()
}

fn obj<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("object literal matches its type")
}

/// Polls `check` (every 50 ms) until it yields a value, failing with `what` after `secs`.
async fn eventually<T, Fut>(secs: u64, what: &str, mut check: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A raw HTTP answer: status, content type and body.
struct Resp {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{} answered non-JSON ({e}): {}", self.status, self.body))
    }
}

/// One request through kube-rs's client (its auth and TLS), returning what came back as is.
async fn raw(c: &Client, method: Method, uri: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .expect("request");
    let res = c.send(req).await.unwrap_or_else(|e| panic!("{uri}: {e}"));
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = res
        .into_body()
        .collect_bytes()
        .await
        .expect("response body");
    Resp {
        status,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(c: &Client, uri: &str) -> Resp {
    raw(c, Method::GET, uri, &[], "").await
}

/// PATCH with `application/apply-patch+yaml` (server-side apply), as client-go's
/// `Patch(types.ApplyPatchType)` sends it.
async fn apply(c: &Client, uri: &str, body: &str) -> Resp {
    raw(
        c,
        Method::PATCH,
        uri,
        &[("content-type", "application/apply-patch+yaml")],
        body,
    )
    .await
}

fn ok(r: &Resp, what: &str) -> Value {
    assert!(r.status.is_success(), "{what}: {} {}", r.status, r.body);
    r.json()
}

async fn create_pod_templates(c: &Client, ns: &str, count: usize, parallel: usize) {
    let api: Api<PodTemplate> = Api::namespaced(c.clone(), ns);
    futures::stream::iter(0..count)
        .for_each_concurrent(parallel, |i| {
            let api = api.clone();
            async move {
                let t: PodTemplate = obj(json!({
                    "metadata": {"name": format!("template-{i:04}")},
                    "template": {"spec": {"containers": [{"name": "test", "image": "test2"}]}}
                }));
                let mut last = None;
                for _ in 0..4 {
                    match api.create(&PostParams::default(), &t).await {
                        Ok(_) => return,
                        Err(e) => last = Some(e),
                    }
                }
                panic!("Unable to create template {i}: {last:?}");
            }
        })
        .await;
}

#[path = "conformance/apply.rs"]
mod apply;
#[path = "conformance/chunking.rs"]
mod chunking;
#[path = "conformance/clientset.rs"]
mod clientset;
#[path = "conformance/discovery.rs"]
mod discovery;
#[path = "conformance/dry_run.rs"]
mod dry_run;
#[path = "conformance/endpoints.rs"]
mod endpoints;
#[path = "conformance/field_validation.rs"]
mod field_validation;
#[path = "conformance/gc.rs"]
mod gc;
#[path = "conformance/namespaces.rs"]
mod namespaces;
#[path = "conformance/quota.rs"]
mod quota;
#[path = "conformance/tables.rs"]
mod tables;
#[path = "conformance/watch.rs"]
mod watch;

// ---------------------------------------------------------------------------------------------
// CustomResourceDefinition fixtures (apiextensions-apiserver `test/integration/fixtures`)

/// `names.SimpleNameGenerator.GenerateName(base)`: the base and five random lowercase
/// alphanumerics, so tests running at once never share a CRD.
fn generate_name(base: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or_default();
    let mut n = nanos
        ^ (u64::from(std::process::id()) << 20)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = base.to_owned();
    for _ in 0..5 {
        out.push(ALPHABET[(n % ALPHABET.len() as u64) as usize] as char);
        n /= ALPHABET.len() as u64;
    }
    out
}

/// `fixtures.AllowAllSchema()`.
fn allow_all_schema() -> Value {
    json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}})
}

/// `fixtures.NewRandomNameV1CustomResourceDefinition(scope)`: one version, `v1beta1`, in
/// `mygroup.example.com`, under a random name.
fn new_random_name_crd(scope: &str) -> Value {
    let g = generate_name("foo") + "a";
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{g}s.mygroup.example.com")},
        "spec": {
            "group": "mygroup.example.com",
            "versions": [{"name": "v1beta1", "served": true, "storage": true, "schema": allow_all_schema()}],
            "names": {"plural": format!("{g}s"), "singular": g, "kind": g, "listKind": format!("{g}List")},
            "scope": scope,
        }
    })
}

/// `fixtures.NewRandomNameMultipleVersionCustomResourceDefinition(scope)`: `v1beta1` and the
/// storage version `v1`, both with the status subresource.
fn new_random_name_multiple_version_crd(scope: &str) -> Value {
    let mut crd = new_random_name_crd(scope);
    crd["spec"]["versions"] = json!([
        {"name": "v1beta1", "served": true, "storage": false, "subresources": {"status": {}}, "schema": allow_all_schema()},
        {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}, "schema": allow_all_schema()},
    ]);
    crd
}

/// The collection path of a CRD's resources in one version (cluster scope, or `ns`).
fn cr_path(crd: &Value, version: &str, ns: Option<&str>) -> String {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    match ns {
        Some(ns) => format!("/apis/{group}/{version}/namespaces/{ns}/{plural}"),
        None => format!("/apis/{group}/{version}/{plural}"),
    }
}

/// `existsInDiscoveryV1`: the CRD's plural is listed in `/apis/<group>/<version>`.
async fn crd_in_discovery(c: &Client, crd: &Value, version: &str) -> bool {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let r = get(c, &format!("/apis/{group}/{version}")).await;
    r.status.is_success()
        && r.json()["resources"].as_array().is_some_and(|rs| {
            rs.iter()
                .any(|r| r["name"] == crd["spec"]["names"]["plural"])
        })
}

/// `fixtures.CreateNewV1CustomResourceDefinition(WatchUnsafe)`: creates the CRD and waits
/// until every served version is in discovery; returns the created CRD.
async fn create_crd(c: &Client, crd: &Value) -> Value {
    let r = raw(
        c,
        Method::POST,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &[("content-type", "application/json")],
        &crd.to_string(),
    )
    .await;
    let created = ok(&r, "creating CustomResourceDefinition");
    for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
        if v["served"] != true {
            continue;
        }
        let version = v["name"].as_str().unwrap_or_default();
        eventually(30, "the CRD's resources in discovery", || async {
            crd_in_discovery(c, crd, version).await.then_some(())
        })
        .await;
    }
    created
}

/// `fixtures.DeleteV1CustomResourceDefinition`: deletes the CRD and waits until none of its
/// versions is in discovery any more.
async fn delete_crd(c: &Client, crd: &Value) {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let r = raw(
        c,
        Method::DELETE,
        &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"),
        &[],
        "",
    )
    .await;
    ok(&r, "deleting CustomResourceDefinition");
    for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
        let version = v["name"].as_str().unwrap_or_default();
        eventually(30, "the CRD's resources gone from discovery", || async {
            (!crd_in_discovery(c, crd, version).await).then_some(())
        })
        .await;
    }
}

#[path = "conformance/crd.rs"]
mod crd;
