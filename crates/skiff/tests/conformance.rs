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

// ---------------------------------------------------------------------------------------------
// Watchers (test/e2e/apimachinery/watch.go)

const WATCH_LABEL: &str = "watch-this-configmap";

type Events = Pin<Box<dyn Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Send>>;

/// `watchConfigMaps`: a watch on the namespace's configmaps whose label is one of `values`.
async fn watch_configmaps(api: &Api<ConfigMap>, rv: &str, values: &[&str]) -> Events {
    let selector = format!("{WATCH_LABEL} in ({})", values.join(","));
    let wp = WatchParams::default().labels(&selector).disable_bookmarks();
    api.watch(&wp, rv)
        .await
        .unwrap_or_else(|e| panic!("watch {selector} from {rv:?}: {e}"))
        .boxed()
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Kind {
    Added,
    Modified,
    Deleted,
}

/// The next event of the watch (bookmarks skipped), within a minute as upstream's `expectEvent`.
async fn next_event(w: &mut Events) -> (Kind, ConfigMap) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(60), w.next())
            .await
            .expect("timed out waiting for a watch notification")
            .expect("watch closed unexpectedly")
            .expect("watch stream error");
        return match ev {
            WatchEvent::Added(o) => (Kind::Added, o),
            WatchEvent::Modified(o) => (Kind::Modified, o),
            WatchEvent::Deleted(o) => (Kind::Deleted, o),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("watch error event: {e:?}"),
        };
    }
}

/// `expectEvent`: the next notification has this type and (when given) exactly this object.
/// Taking the *next* one rather than the next matching one also proves `expectNoEvent` for
/// everything in between.
async fn expect_event(w: &mut Events, kind: Kind, want: Option<&ConfigMap>) -> ConfigMap {
    let (got_kind, got) = next_event(w).await;
    assert_eq!(
        got_kind, kind,
        "unexpected notification: {got_kind:?} {got:?}"
    );
    if let Some(want) = want {
        assert_eq!(&got, want, "{kind:?} notification carries another object");
    }
    got
}

/// `updateConfigMap`: read, mutate, write back (retrying on conflict).
async fn update_configmap(
    api: &Api<ConfigMap>,
    name: &str,
    mutate: impl Fn(&mut ConfigMap),
) -> ConfigMap {
    for _ in 0..5 {
        let mut cm = api.get(name).await.expect("get configmap");
        mutate(&mut cm);
        match api.replace(name, &PostParams::default(), &cm).await {
            Ok(cm) => return cm,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => panic!("update configmap {name}: {e}"),
        }
    }
    panic!("update configmap {name}: conflicts five times");
}

fn set_data(cm: &mut ConfigMap, key: &str, value: &str) {
    cm.data
        .get_or_insert_with(Default::default)
        .insert(key.into(), value.into());
}

fn labelled_configmap(name: &str, value: &str) -> ConfigMap {
    obj(json!({"metadata": {"name": name, "labels": {WATCH_LABEL: value}}}))
}

/// watch.go "should observe add, update, and delete watch notifications on configmaps"
/// (Conformance): three label-selected watchers each see exactly their configmaps' events.
#[test]
fn watch_should_observe_add_update_and_delete_watch_notifications_on_configmaps() {
    run(|c| async move {
        let ns = namespace(&c, "cf-watch-multi").await;
        let api: Api<ConfigMap> = Api::namespaced(c, &ns);
        let (a, b) = ("multiple-watchers-A", "multiple-watchers-B");
        let mut watch_a = watch_configmaps(&api, "", &[a]).await;
        let mut watch_b = watch_configmaps(&api, "", &[b]).await;
        let mut watch_ab = watch_configmaps(&api, "", &[a, b]).await;
        let pp = PostParams::default();

        let cm_a = api
            .create(&pp, &labelled_configmap("e2e-watch-test-configmap-a", a))
            .await
            .unwrap();
        expect_event(&mut watch_a, Kind::Added, Some(&cm_a)).await;
        expect_event(&mut watch_ab, Kind::Added, Some(&cm_a)).await;

        let cm_a = update_configmap(&api, "e2e-watch-test-configmap-a", |cm| {
            set_data(cm, "mutation", "1")
        })
        .await;
        expect_event(&mut watch_a, Kind::Modified, Some(&cm_a)).await;
        expect_event(&mut watch_ab, Kind::Modified, Some(&cm_a)).await;

        let cm_a = update_configmap(&api, "e2e-watch-test-configmap-a", |cm| {
            set_data(cm, "mutation", "2")
        })
        .await;
        expect_event(&mut watch_a, Kind::Modified, Some(&cm_a)).await;
        expect_event(&mut watch_ab, Kind::Modified, Some(&cm_a)).await;

        api.delete("e2e-watch-test-configmap-a", &DeleteParams::default())
            .await
            .unwrap();
        expect_event(&mut watch_a, Kind::Deleted, None).await;
        expect_event(&mut watch_ab, Kind::Deleted, None).await;

        let cm_b = api
            .create(&pp, &labelled_configmap("e2e-watch-test-configmap-b", b))
            .await
            .unwrap();
        // watch B saw nothing of A: its first notification is B's.
        expect_event(&mut watch_b, Kind::Added, Some(&cm_b)).await;
        expect_event(&mut watch_ab, Kind::Added, Some(&cm_b)).await;

        api.delete("e2e-watch-test-configmap-b", &DeleteParams::default())
            .await
            .unwrap();
        expect_event(&mut watch_b, Kind::Deleted, None).await;
        expect_event(&mut watch_ab, Kind::Deleted, None).await;

        // Sentinel for `expectNoEvent(watchA, ..., B)`: A's next notification is this one.
        let sentinel = api
            .create(&pp, &labelled_configmap("e2e-watch-test-sentinel", a))
            .await
            .unwrap();
        expect_event(&mut watch_a, Kind::Added, Some(&sentinel)).await;
    });
}

/// watch.go "should be able to start watching from a specific resource version" (Conformance):
/// a watch from the first update's resourceVersion sees only the later changes.
#[test]
fn watch_should_be_able_to_start_watching_from_a_specific_resource_version() {
    run(|c| async move {
        let ns = namespace(&c, "cf-watch-from-rv").await;
        let api: Api<ConfigMap> = Api::namespaced(c, &ns);
        let name = "e2e-watch-test-resource-version";
        let label = "from-resource-version";
        api.create(&PostParams::default(), &labelled_configmap(name, label))
            .await
            .unwrap();
        let first = update_configmap(&api, name, |cm| set_data(cm, "mutation", "1")).await;
        let second = update_configmap(&api, name, |cm| set_data(cm, "mutation", "2")).await;
        api.delete(name, &DeleteParams::default()).await.unwrap();

        let rv = first.metadata.resource_version.clone().unwrap();
        let mut w = watch_configmaps(&api, &rv, &[label]).await;
        expect_event(&mut w, Kind::Modified, Some(&second)).await;
        expect_event(&mut w, Kind::Deleted, None).await;
    });
}

/// watch.go "should be able to restart watching from the last resource version observed by the
/// previous watch" (Conformance).
#[test]
fn watch_should_be_able_to_restart_watching_from_the_last_resource_version_observed_by_the_previous_watch(
) {
    run(|c| async move {
        let ns = namespace(&c, "cf-watch-restart").await;
        let api: Api<ConfigMap> = Api::namespaced(c, &ns);
        let name = "e2e-watch-test-watch-closed";
        let label = "watch-closed-and-restarted";
        let mut broken = watch_configmaps(&api, "", &[label]).await;
        let created = api
            .create(&PostParams::default(), &labelled_configmap(name, label))
            .await
            .unwrap();
        update_configmap(&api, name, |cm| set_data(cm, "mutation", "1")).await;

        expect_event(&mut broken, Kind::Added, Some(&created)).await;
        let last = expect_event(&mut broken, Kind::Modified, None).await;
        drop(broken);

        let second = update_configmap(&api, name, |cm| set_data(cm, "mutation", "2")).await;
        let rv = last.metadata.resource_version.clone().unwrap();
        let mut restarted = watch_configmaps(&api, &rv, &[label]).await;
        api.delete(name, &DeleteParams::default()).await.unwrap();

        expect_event(&mut restarted, Kind::Modified, Some(&second)).await;
        expect_event(&mut restarted, Kind::Deleted, None).await;
    });
}

/// watch.go "should observe an object deletion if it stops meeting the requirements of the
/// selector" (Conformance).
#[test]
fn watch_should_observe_an_object_deletion_if_it_stops_meeting_the_requirements_of_the_selector() {
    run(|c| async move {
        let ns = namespace(&c, "cf-watch-label").await;
        let api: Api<ConfigMap> = Api::namespaced(c, &ns);
        let name = "e2e-watch-test-label-changed";
        let label = "label-changed-and-restored";
        let mut w = watch_configmaps(&api, "", &[label]).await;
        let created = api
            .create(&PostParams::default(), &labelled_configmap(name, label))
            .await
            .unwrap();
        let first = update_configmap(&api, name, |cm| set_data(cm, "mutation", "1")).await;
        update_configmap(&api, name, |cm| {
            cm.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(WATCH_LABEL.into(), "wrong-value".into());
        })
        .await;
        expect_event(&mut w, Kind::Added, Some(&created)).await;
        expect_event(&mut w, Kind::Modified, Some(&first)).await;
        expect_event(&mut w, Kind::Deleted, None).await;

        // Not seen: the object no longer matches. The next notification must be the restore.
        update_configmap(&api, name, |cm| set_data(cm, "mutation", "2")).await;
        let restored = update_configmap(&api, name, |cm| {
            cm.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(WATCH_LABEL.into(), label.into());
        })
        .await;
        let third = update_configmap(&api, name, |cm| set_data(cm, "mutation", "3")).await;
        api.delete(name, &DeleteParams::default()).await.unwrap();

        expect_event(&mut w, Kind::Added, Some(&restored)).await;
        expect_event(&mut w, Kind::Modified, Some(&third)).await;
        expect_event(&mut w, Kind::Deleted, None).await;
    });
}

/// watch.go "should receive events on concurrent watches in same order" (Conformance): 100
/// watches, each started at the resourceVersion of the previous event, agree on every event
/// while a writer creates, updates and deletes configmaps every 5 ms.
#[test]
fn watch_should_receive_events_on_concurrent_watches_in_same_order() {
    run(|c| async move {
        let ns = namespace(&c, "cf-watch-order").await;
        let api: Api<ConfigMap> = Api::namespaced(c, &ns);
        let list = api.list(&ListParams::default()).await.unwrap();
        let mut rv = list.metadata.resource_version.unwrap();

        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let producer = tokio::spawn(produce_configmap_events(api.clone(), stop.clone()));

        let wp = WatchParams::default().disable_bookmarks();
        let mut watches = Vec::new();
        for _ in 0..100 {
            watches.push(api.watch(&wp, &rv).await.expect("watch").boxed());
            rv = next_rv(&mut watches[0]).await;
            for w in &mut watches[1..] {
                let got = next_rv(w).await;
                assert_eq!(got, rv, "resource version mismatch");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        producer.await.expect("producer");
    });
}

async fn next_rv(w: &mut Events) -> String {
    let (_, cm) = tokio::time::timeout(Duration::from_secs(10), next_event(w))
        .await
        .expect("timed out waiting for watch event");
    cm.metadata.resource_version.expect("resourceVersion")
}

/// `produceConfigMapEvents`: a random create, update or delete every 5 ms until stopped.
async fn produce_configmap_events(
    api: Api<ConfigMap>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut existing: Vec<usize> = Vec::new();
    let mut i = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tick.tick().await;
        let op = if existing.is_empty() { 0 } else { random(3) };
        match op {
            0 => {
                let cm: ConfigMap = obj(json!({"metadata": {"name": format!("cm-{i}")}}));
                api.create(&PostParams::default(), &cm)
                    .await
                    .expect("create configmap");
                existing.push(i);
                i += 1;
            }
            1 => {
                let name = format!("cm-{}", existing[random(existing.len())]);
                let cm: ConfigMap = obj(json!({"metadata": {"name": name}}));
                api.replace(&name, &PostParams::default(), &cm)
                    .await
                    .expect("update configmap");
            }
            _ => {
                let idx = random(existing.len());
                let name = format!("cm-{}", existing.remove(idx));
                api.delete(&name, &DeleteParams::default())
                    .await
                    .expect("delete configmap");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// FieldValidation (test/e2e/apimachinery/field_validation.go)

/// field_validation.go "should detect unknown and duplicate fields of a typed object"
/// (Conformance): a strict create names both problems in one decoding error.
#[test]
#[ignore = "issue 10: strict decoding reports the unknown field but not the duplicate \"spec.replicas\""]
fn field_validation_should_detect_unknown_and_duplicate_fields_of_a_typed_object() {
    run(|c| async move {
        let ns = namespace(&c, "cf-fv-typed").await;
        let body = r#"{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "my-dep", "labels": {"app": "nginx"}},
        "spec": {
            "unknownField": "foo",
            "replicas": 2,
            "replicas": 3,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}
            }
        }
    }"#;
        let uri = format!(
            "/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=field_validation_mgr&fieldValidation=Strict"
        );
        let r = raw(
            &c,
            Method::POST,
            &uri,
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.contains(
                r#"strict decoding error: unknown field "spec.unknownField", duplicate field "spec.replicas""#
            ),
            "error missing unknown/duplicate field, got: {message}"
        );
    });
}

/// field_validation.go "should detect unknown metadata fields of a typed object" (Conformance).
#[test]
fn field_validation_should_detect_unknown_metadata_fields_of_a_typed_object() {
    run(|c| async move {
        let ns = namespace(&c, "cf-fv-meta").await;
        let body = r#"{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "my-dep", "unknownMeta": "foo", "labels": {"app": "nginx"}},
        "spec": {
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}
            }
        }
    }"#;
        let uri = format!(
            "/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=field_validation_mgr&fieldValidation=Strict"
        );
        let r = raw(
            &c,
            Method::POST,
            &uri,
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.contains(r#"strict decoding error: unknown field "metadata.unknownMeta""#),
            "error missing unknown metadata field, got: {message}"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// ServerSideApply (test/e2e/apimachinery/apply.go)

fn nginx_deployment(
    name: &str,
    replicas: Option<i32>,
    extra_pod_spec: Value,
    ports: bool,
) -> String {
    let mut container =
        json!({"name": "nginx", "image": "registry.k8s.io/e2e-test-images/nginx:1.15-4"});
    if ports {
        container["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
    }
    let mut pod_spec = json!({"containers": [container]});
    if let (Some(p), Some(extra)) = (pod_spec.as_object_mut(), extra_pod_spec.as_object()) {
        p.extend(extra.clone());
    }
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "nginx"}},
        "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": pod_spec}
    });
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": "nginx"}},
        "spec": spec
    })
    .to_string()
}

/// apply.go "should create an applied object if it does not already exist": apply creates; a
/// second manager re-applies the same without conflict; both own exactly the applied fields.
#[test]
fn server_side_apply_should_create_an_applied_object_if_it_does_not_already_exist() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ssa-create").await;
        let cases = [
            (
                "pods",
                "test-pod",
                r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test-pod"},
                   "spec": {"containers": [{"name": "test-container", "image": "test-image"}]}}"#,
                json!({"f:spec":{"f:containers":{"k:{\"name\":\"test-container\"}":{".":{},"f:image":{},"f:name":{}}}}}),
            ),
            (
                "services",
                "test-svc",
                r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "test-svc"},
                   "spec": {"ports": [{"port": 8080, "protocol": "UDP"}]}}"#,
                json!({"f:spec":{"f:ports":{"k:{\"port\":8080,\"protocol\":\"UDP\"}":{".":{},"f:port":{},"f:protocol":{}}}}}),
            ),
        ];
        for (resource, name, body, managed) in cases {
            let base = format!("/api/v1/namespaces/{ns}/{resource}/{name}");
            ok(
                &apply(&c, &format!("{base}?fieldManager=apply_test"), body).await,
                "create object using Apply patch",
            );
            ok(&get(&c, &base).await, "retrieve object");
            let obj = ok(
                &apply(&c, &format!("{base}?fieldManager=apply_test_2"), body).await,
                "re-apply object using Apply patch",
            );
            let entries = obj["metadata"]["managedFields"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for manager in ["apply_test", "apply_test_2"] {
                let entry = entries
                    .iter()
                    .find(|e| e["manager"] == manager)
                    .unwrap_or_else(|| panic!("no managedFields entry for {manager}: {entries:?}"));
                assert_eq!(entry["operation"], "Apply", "{entry}");
                assert_eq!(entry["fieldsV1"], managed, "managed fields of {manager}");
            }
        }
    });
}

/// apply.go "should work for subresources": an apply of status to the main resource leaves
/// status alone; the same apply to `/status` sets it.
#[test]
fn server_side_apply_should_work_for_subresources() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ssa-sub").await;
        let base = format!("/api/v1/namespaces/{ns}/pods/test-pod");
        let body = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test-pod"},
            "spec": {"containers": [{"name": "nginx", "image": "registry.k8s.io/e2e-test-images/nginx:1.15-4"}]}}"#;
        let status = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test-pod"},
            "status": {"conditions": [{"type": "MyStatus", "status": "True"}]}}"#;
        ok(
            &apply(&c, &format!("{base}?fieldManager=apply_test"), body).await,
            "create",
        );
        ok(&get(&c, &base).await, "retrieve");
        ok(
            &apply(&c, &format!("{base}?fieldManager=apply_test2"), status).await,
            "apply status to the main resource",
        );
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let has_my_status = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "MyStatus"))
        };
        let pod = pods.get("test-pod").await.unwrap();
        assert!(
            !has_my_status(&pod),
            "Apply should not update subresources unless the endpoint is specifically specified"
        );
        ok(
            &apply(
                &c,
                &format!("{base}/status?fieldManager=apply_test2"),
                status,
            )
            .await,
            "apply status to /status",
        );
        let pod = pods.get("test-pod").await.unwrap();
        assert!(has_my_status(&pod), "Expected pod to have applied status");
    });
}

/// apply.go "should remove a field if it is owned but removed in the apply request".
#[test]
fn server_side_apply_should_remove_a_field_if_it_is_owned_but_removed_in_the_apply_request() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ssa-remove").await;
        let uri =
            format!("/apis/apps/v1/namespaces/{ns}/deployments/deployment?fieldManager=apply_test");
        ok(
            &apply(
                &c,
                &uri,
                &nginx_deployment("deployment", Some(3), json!({}), true),
            )
            .await,
            "create object using Apply patch",
        );
        ok(
            &apply(
                &c,
                &uri,
                &nginx_deployment("deployment", Some(3), json!({}), false),
            )
            .await,
            "remove container port using Apply patch",
        );
        let d: Deployment = Api::namespaced(c, &ns).get("deployment").await.unwrap();
        let ports = d.spec.unwrap().template.spec.unwrap().containers[0]
            .ports
            .clone();
        assert!(
            ports.unwrap_or_default().is_empty(),
            "Expected no container ports"
        );
    });
}

/// apply.go "should not remove a field if an owner unsets the field but other managers still
/// have ownership of the field".
#[test]
fn server_side_apply_should_not_remove_a_field_if_an_owner_unsets_the_field_but_other_managers_still_have_ownership_of_the_field(
) {
    run(|c| async move {
        let ns = namespace(&c, "cf-ssa-shared").await;
        let name = "deployment-shared-unset";
        let base = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
        let full = nginx_deployment(name, Some(3), json!({"hostname": "test-hostname"}), false);
        for manager in ["shared_owner_1", "shared_owner_2"] {
            ok(
                &apply(&c, &format!("{base}?fieldManager={manager}"), &full).await,
                "create object using Apply patch",
            );
        }
        let patched = ok(
            &apply(
                &c,
                &format!("{base}?fieldManager=shared_owner_1"),
                &nginx_deployment(name, None, json!({}), false),
            )
            .await,
            "apply without replicas and hostname",
        );
        assert_eq!(patched["spec"]["replicas"], 3, "deployment.spec.replicas");
        assert_eq!(
            patched["spec"]["template"]["spec"]["hostname"], "test-hostname",
            "deployment.spec.template.spec.hostname"
        );
    });
}

/// apply.go "should ignore conflict errors if force apply is used": after another writer changes
/// `spec.replicas`, a re-apply conflicts (409 naming the field); with `force=true` it succeeds.
#[test]
fn server_side_apply_should_ignore_conflict_errors_if_force_apply_is_used() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ssa-force").await;
        let base = format!("/apis/apps/v1/namespaces/{ns}/deployments/deployment");
        let body = nginx_deployment("deployment", Some(3), json!({}), false);
        ok(
            &apply(&c, &format!("{base}?fieldManager=apply_test"), &body).await,
            "create object using Apply patch",
        );
        let patched = raw(
            &c,
            Method::PATCH,
            &base,
            &[("content-type", "application/merge-patch+json")],
            r#"{"spec":{"replicas": 5}}"#,
        )
        .await;
        ok(&patched, "merge patch replicas");

        let conflict = apply(&c, &format!("{base}?fieldManager=apply_test"), &body).await;
        assert_eq!(
            conflict.status,
            StatusCode::CONFLICT,
            "Expecting to get conflicts when applying object: {}",
            conflict.body
        );
        let status = conflict.json();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "Conflict");
        let causes = status["details"]["causes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !causes.is_empty(),
            "Expecting to get at least one conflict when applying object, got: {status}"
        );
        assert!(
            causes
                .iter()
                .any(|c| c["field"] == ".spec.replicas" && c["reason"] == "FieldManagerConflict"),
            "no conflict on .spec.replicas: {status}"
        );
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Apply failed with 1 conflict: conflict with ")
                && message.ends_with("using apps/v1: .spec.replicas"),
            "conflict message: {message}"
        );

        let forced = apply(
            &c,
            &format!("{base}?force=true&fieldManager=apply_test"),
            &body,
        )
        .await;
        let forced = ok(&forced, "apply object with force");
        assert_eq!(forced["spec"]["replicas"], 3);
    });
}

/// apply.go "should give up ownership of a field if forced applied by a controller": after an
/// update takes `spec.replicas`, an apply that omits it leaves the controller's value.
#[test]
fn server_side_apply_should_give_up_ownership_of_a_field_if_forced_applied_by_a_controller() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ssa-giveup").await;
        let name = "deployment-shared-map-item-removal";
        let base =
            format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}?fieldManager=test_applier");
        ok(
            &apply(
                &c,
                &base,
                &nginx_deployment(name, Some(3), json!({}), false),
            )
            .await,
            "create object using Apply patch",
        );
        let api: Api<Deployment> = Api::namespaced(c.clone(), &ns);
        let mut d = api.get(name).await.unwrap();
        d.spec.as_mut().unwrap().replicas = Some(4);
        api.replace(name, &PostParams::default(), &d).await.unwrap();

        let patched = ok(
            &apply(&c, &base, &nginx_deployment(name, None, json!({}), false)).await,
            "apply without replicas",
        );
        assert_eq!(patched["spec"]["replicas"], 4, "deployment.spec.replicas");
    });
}

// ---------------------------------------------------------------------------------------------
// Dry-run

fn kubectl(args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &server().kubeconfig)
        .output()
        .expect("run kubectl")
}

fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has_kubectl() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// test/e2e/kubectl/kubectl.go "Kubectl server-side dry-run should check if kubectl can dry-run
/// update Pods" (Conformance, sig-cli): `kubectl patch --dry-run=server` changes nothing.
#[test]
fn kubectl_server_side_dry_run_should_check_if_kubectl_can_dry_run_update_pods() {
    if skip_without(has_kubectl(), "kubectl on PATH") {
        return;
    }
    run(|c| async move {
        let ns = namespace(&c, "cf-dryrun-kubectl").await;
        let pod = "e2e-test-httpd-pod";
        let httpd = "registry.k8s.io/e2e-test-images/httpd:2.4.38-4";
        kubectl_ok(&[
            "-n",
            &ns,
            "run",
            pod,
            &format!("--image={httpd}"),
            &format!("--labels=run={pod}"),
        ]);
        let patch = format!(
            r#"{{"spec":{{"containers":[{{"name": "{pod}","image": "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"}}]}}}}"#
        );
        kubectl_ok(&[
            "-n",
            &ns,
            "patch",
            "pod",
            pod,
            "-p",
            &patch,
            "--dry-run=server",
        ]);
        let got: Pod = Api::namespaced(c, &ns).get(pod).await.unwrap();
        assert_eq!(
            got.spec.unwrap().containers[0].image.as_deref(),
            Some(httpd),
            "the pod's image changed"
        );
        kubectl_ok(&["-n", &ns, "delete", "pods", pod]);
    });
}

/// Not an upstream e2e case (upstream covers it in integration tests): kubectl sends `dryRun`
/// in the DeleteOptions body of `kubectl delete --dry-run=server`; nothing may be deleted.
#[test]
fn dry_run_delete_from_the_delete_options_body_deletes_nothing() {
    run(|c| async move {
        let ns = namespace(&c, "cf-dryrun-delete").await;
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), &ns);
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "keep"}})),
        )
        .await
        .unwrap();
        let r = raw(
            &c,
            Method::DELETE,
            &format!("/api/v1/namespaces/{ns}/configmaps/keep"),
            &[("content-type", "application/json")],
            r#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background","dryRun":["All"]}"#,
        )
        .await;
        ok(&r, "dry-run delete");
        assert!(
            cms.get_opt("keep").await.unwrap().is_some(),
            "a dry-run delete deleted the configmap"
        );
        let r = raw(
            &c,
            Method::DELETE,
            &format!("/api/v1/namespaces/{ns}"),
            &[("content-type", "application/json")],
            r#"{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}"#,
        )
        .await;
        ok(&r, "dry-run delete of the namespace");
        let nsobj: Namespace = Api::all(c.clone()).get(&ns).await.unwrap();
        assert!(
            nsobj.metadata.deletion_timestamp.is_none(),
            "a dry-run delete marked the namespace for deletion"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Servers with support for Table transformation (test/e2e/apimachinery/table_conversion.go)

const TABLE_V1BETA1: &str = "application/json;as=Table;v=v1beta1;g=meta.k8s.io";

/// `printTable`: kubectl's table printer for the columns of priority 0.
fn print_table(table: &Value) -> String {
    let cols = table["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shown: Vec<usize> = (0..cols.len())
        .filter(|i| cols[*i]["priority"].as_i64().unwrap_or(0) == 0)
        .collect();
    let mut out = shown
        .iter()
        .map(|i| cols[*i]["name"].as_str().unwrap_or_default().to_uppercase())
        .collect::<Vec<_>>()
        .join("   ");
    for row in table["rows"].as_array().cloned().unwrap_or_default() {
        out.push('\n');
        let cells: Vec<String> = shown
            .iter()
            .map(|i| match &row["cells"][*i] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join("   "));
    }
    out
}

/// table_conversion.go "should return pod details".
#[test]
fn table_should_return_pod_details() {
    run(|c| async move {
        let ns = namespace(&c, "cf-table-pod").await;
        let pod: Pod = obj(json!({
            "metadata": {"name": "pod-1"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "agnhost-container",
                    "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                    "args": ["porter"],
                    "ports": [{"containerPort": 8080}],
                    "env": [{"name": "SERVE_PORT_8080", "value": "foo"}]
                }]
            }
        }));
        Api::<Pod>::namespaced(c.clone(), &ns)
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
        let r = raw(
            &c,
            Method::GET,
            &format!("/api/v1/namespaces/{ns}/pods/pod-1"),
            &[("accept", TABLE_V1BETA1)],
            "",
        )
        .await;
        let table = ok(&r, "get pod in Table form");
        let cols = table["columnDefinitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(cols.len() > 2, "{table}");
        let rows = table["rows"].as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 1, "{table}");
        assert_eq!(rows[0]["cells"].as_array().map(Vec::len), Some(cols.len()));
        assert_eq!(cols[0]["name"], "Name");
        assert_eq!(rows[0]["cells"][0], "pod-1");
        let out = print_table(&table);
        assert!(
            out.starts_with("NAME ") || out.starts_with("NAME\t"),
            "{out}"
        );
        assert!(out.contains("\npod-1 "), "{out}");
    });
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

/// table_conversion.go "should return chunks of table results for list calls".
#[test]
fn table_should_return_chunks_of_table_results_for_list_calls() {
    run(|c| async move {
        let ns = namespace(&c, "cf-table-chunks").await;
        create_pod_templates(&c, &ns, 20, 5).await;
        let uri = format!("/api/v1/namespaces/{ns}/podtemplates");
        let r = raw(
            &c,
            Method::GET,
            &format!("{uri}?limit=2"),
            &[("accept", TABLE_V1BETA1)],
            "",
        )
        .await;
        let page = ok(&r, "get pod templates in Table form");
        let rows = page["rows"].as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 2, "{page}");
        assert_ne!(
            page["metadata"]["resourceVersion"].as_str().unwrap_or(""),
            ""
        );
        let token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert_ne!(token, "", "{page}");
        assert_eq!(rows[0]["cells"][0], "template-0000");
        assert_eq!(rows[1]["cells"][0], "template-0001");

        let r = raw(
            &c,
            Method::GET,
            &format!("{uri}?continue={token}"),
            &[("accept", TABLE_V1BETA1)],
            "",
        )
        .await;
        let page = ok(&r, "get the next page in Table form");
        let rows = page["rows"].as_array().cloned().unwrap_or_default();
        assert!(!rows.is_empty(), "{page}");
        assert_eq!(rows[0]["cells"][0], "template-0002");
    });
}

/// table_conversion.go "should return generic metadata details across all namespaces for
/// nodes". Upstream's clusters have nodes; this server runs none, so the test registers one
/// that nothing can be scheduled on (unschedulable and tainted NoSchedule).
#[test]
fn table_should_return_generic_metadata_details_across_all_namespaces_for_nodes() {
    run(|c| async move {
        let nodes: Api<Node> = Api::all(c.clone());
        let node: Node = obj(json!({
            "metadata": {"name": "cf-table-node"},
            "spec": {
                "unschedulable": true,
                "taints": [{"key": "conformance.skiff/no-pods", "effect": "NoSchedule"}]
            }
        }));
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let r = raw(
            &c,
            Method::GET,
            "/api/v1/nodes",
            &[("accept", TABLE_V1BETA1)],
            "",
        )
        .await;
        let table = ok(&r, "get nodes in Table form across all namespaces");
        let cols = table["columnDefinitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(cols.len() >= 2, "{table}");
        let rows = table["rows"].as_array().cloned().unwrap_or_default();
        assert!(!rows.is_empty(), "{table}");
        assert_eq!(rows[0]["cells"].as_array().map(Vec::len), Some(cols.len()));
        assert_eq!(cols[0]["name"], "Name");
        assert_ne!(
            table["metadata"]["resourceVersion"].as_str().unwrap_or(""),
            ""
        );
        assert!(
            print_table(&table).starts_with("NAME "),
            "{}",
            print_table(&table)
        );
        nodes
            .delete("cf-table-node", &DeleteParams::default())
            .await
            .unwrap();
    });
}

/// table_conversion.go "should return a 406 for a backend which does not implement metadata"
/// (Conformance): a SelfSubjectAccessReview asked for as a Table answers 406.
#[test]
#[ignore = "issue 14: authorization.k8s.io (selfsubjectaccessreviews) is not served, 404"]
fn table_should_return_a_406_for_a_backend_which_does_not_implement_metadata() {
    run(|c| async move {
        let sar = r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview",
            "spec":{"nonResourceAttributes":{"path":"/","verb":"get"}}}"#;
        let r = raw(
            &c,
            Method::POST,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json;as=Table;v=v1;g=meta.k8s.io"),
            ],
            sar,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{}", r.body);
        assert_eq!(r.json()["code"], 406, "{}", r.body);
    });
}

// ---------------------------------------------------------------------------------------------
// Discovery (test/e2e/apimachinery/discovery.go, aggregated_discovery.go)

/// The group-version-resources upstream's discovery tests require of every cluster.
const EXPECTED_GVR: &[(&str, &str, &str)] = &[
    (
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
    ),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
    ("apiregistration.k8s.io", "v1", "apiservices"),
    ("apps", "v1", "deployments"),
    ("authentication.k8s.io", "v1", "tokenreviews"),
    ("authorization.k8s.io", "v1", "selfsubjectaccessreviews"),
    ("autoscaling", "v1", "horizontalpodautoscalers"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("batch", "v1", "jobs"),
    ("certificates.k8s.io", "v1", "certificatesigningrequests"),
    ("coordination.k8s.io", "v1", "leases"),
    ("discovery.k8s.io", "v1", "endpointslices"),
    ("events.k8s.io", "v1", "events"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("node.k8s.io", "v1", "runtimeclasses"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("scheduling.k8s.io", "v1", "priorityclasses"),
    ("storage.k8s.io", "v1", "csinodes"),
];

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// discovery.go "should accurately determine present and missing resources"
/// (`IsResourceEnabled`: a 404 group-version means not enabled, not an error).
#[test]
fn discovery_should_accurately_determine_present_and_missing_resources() {
    run(|c| async move {
        let enabled = |list: &Value, resource: &str| {
            list["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["name"] == resource))
        };
        let core = ok(&get(&c, "/api/v1").await, "/api/v1");
        assert!(
            enabled(&core, "namespaces"),
            "namespace.v1 should always be present"
        );
        let apps = ok(&get(&c, "/apis/apps/v1").await, "/apis/apps/v1");
        assert!(
            enabled(&apps, "deployments"),
            "deployments.v1.apps should always be present"
        );
        assert!(
            !enabled(&apps, "please-dont-ever-create-this"),
            "please-dont-ever-create-this.v1.apps should never be present"
        );
        let missing = get(&c, "/apis/not-these-apps/v1").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    });
}

/// discovery.go "should validate PreferredVersion for each APIGroup" (Conformance).
#[test]
fn discovery_should_validate_preferred_version_for_each_api_group() {
    run(|c| async move {
        let list = ok(&get(&c, "/apis/").await, "/apis/");
        assert_eq!(list["kind"], "APIGroupList");
        let groups = list["groups"].as_array().cloned().unwrap_or_default();
        assert!(!groups.is_empty(), "Missing APIGroups");
        for group in groups {
            let name = group["name"].as_str().unwrap_or_default();
            if name.ends_with(".example.com") {
                continue;
            }
            let path = format!("/apis/{name}/");
            let check = ok(&get(&c, &path).await, &path);
            assert_eq!(check["kind"], "APIGroup", "{check}");
            let versions = check["versions"].as_array().cloned().unwrap_or_default();
            assert!(!versions.is_empty(), "No version found for {name}");
            let preferred = &check["preferredVersion"]["groupVersion"];
            assert!(
                versions.iter().any(|v| &v["groupVersion"] == preferred),
                "Failed to find a valid version for PreferredVersion {preferred} in {versions:?}"
            );
        }
    });
}

/// discovery.go "should locate the groupVersion and a resource within each APIGroup"
/// (Conformance).
#[test]
#[ignore = "issues 10, 11, 14: admissionregistration, apiregistration, authentication, authorization, certificates, node.k8s.io, autoscaling/v1 and storage csinodes are not served"]
fn discovery_should_locate_the_group_version_and_a_resource_within_each_api_group() {
    run(|c| async move {
        let mut missing = Vec::new();
        let mut cases = vec![("", "v1", "namespaces")];
        cases.extend(
            EXPECTED_GVR
                .iter()
                .copied()
                .filter(|(g, _, _)| !g.is_empty()),
        );
        for (group, version, resource) in cases {
            let path = if group.is_empty() {
                format!("/api/{version}")
            } else {
                format!("/apis/{group}/{version}")
            };
            let r = get(&c, &path).await;
            if !r.status.is_success() {
                missing.push(format!("{path}: {}", r.status));
                continue;
            }
            let list = r.json();
            let gv = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            assert_eq!(list["groupVersion"], gv.as_str(), "{path}");
            let found = list["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["name"] == resource));
            if !found {
                missing.push(format!("{path}: no {resource}"));
            }
        }
        assert!(missing.is_empty(), "Fail to access: {missing:#?}");
    });
}

fn gvr_present_aggregated(list: &Value, group: &str, version: &str, resource: &str) -> bool {
    list["items"].as_array().is_some_and(|groups| {
        groups.iter().any(|g| {
            g["metadata"]["name"].as_str().unwrap_or("") == group
                && g["versions"].as_array().is_some_and(|vs| {
                    vs.iter().any(|v| {
                        v["version"] == version
                            && v["resources"]
                                .as_array()
                                .is_some_and(|rs| rs.iter().any(|r| r["resource"] == resource))
                    })
                })
        })
    })
}

/// aggregated_discovery.go "should support raw aggregated discovery endpoint Accept headers"
/// (Conformance).
#[test]
#[ignore = "issues 10, 11, 14: admissionregistration, apiregistration, authentication, authorization, certificates, node.k8s.io, autoscaling/v1 and storage csinodes are not served"]
fn aggregated_discovery_should_support_raw_aggregated_discovery_endpoint_accept_headers() {
    run(|c| async move {
        let r = raw(&c, Method::GET, "/apis", &[("accept", AGGREGATED)], "").await;
        let list = ok(&r, "raw aggregated discovery document");
        assert_eq!(list["kind"], "APIGroupDiscoveryList", "{}", r.content_type);
        let missing: Vec<_> = EXPECTED_GVR
            .iter()
            .filter(|(g, v, res)| !gvr_present_aggregated(&list, g, v, res))
            .collect();
        assert!(
            missing.is_empty(),
            "Expected gvrs to exist in discovery: {missing:?}"
        );
        let r = raw(&c, Method::GET, "/api", &[("accept", AGGREGATED)], "").await;
        let legacy = ok(&r, "raw aggregated discovery document of /api");
        assert!(
            gvr_present_aggregated(&legacy, "", "v1", "namespaces"),
            "Expected legacy gvr api v1 namespaces to exist in discovery"
        );
    });
}

/// aggregated_discovery.go "should support aggregated discovery interface" (Conformance):
/// client-go's `GroupsAndMaybeResources` (aggregated first, with its legacy fallback).
#[test]
#[ignore = "issues 10, 11, 14: admissionregistration, apiregistration, authentication, authorization, certificates, node.k8s.io, autoscaling/v1 and storage csinodes are not served"]
fn aggregated_discovery_should_support_aggregated_discovery_interface() {
    run(|c| async move {
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        let mut resources: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for root in ["/api", "/apis"] {
            let r = raw(&c, Method::GET, root, &[("accept", accept)], "").await;
            let doc = ok(&r, root);
            assert!(
                r.content_type.contains("as=APIGroupDiscoveryList"),
                "{root} did not answer aggregated discovery: {}",
                r.content_type
            );
            for g in doc["items"].as_array().cloned().unwrap_or_default() {
                for v in g["versions"].as_array().cloned().unwrap_or_default() {
                    let key = (
                        g["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                        v["version"].as_str().unwrap_or("").to_owned(),
                    );
                    let names = v["resources"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|r| r["resource"].as_str().map(str::to_owned))
                        .collect();
                    resources.insert(key, names);
                }
            }
        }
        let mut expected = EXPECTED_GVR.to_vec();
        expected.push(("", "v1", "namespaces"));
        let missing: Vec<_> = expected
            .iter()
            .filter(|(g, v, res)| {
                !resources
                    .get(&(g.to_string(), v.to_string()))
                    .is_some_and(|rs| rs.iter().any(|r| r == res))
            })
            .collect();
        assert!(missing.is_empty(), "Expected to be present: {missing:?}");
    });
}

// ---------------------------------------------------------------------------------------------
// Servers with support for API chunking (test/e2e/apimachinery/chunking.go)

/// chunking.go "should return chunks of results for list calls" (Conformance): 400 pod
/// templates listed three times in pages of random size, each page at the first page's
/// resourceVersion with a true `remainingItemCount`; then all at once.
#[test]
#[ignore = "issue 10: paged lists carry no metadata.remainingItemCount"]
fn chunking_should_return_chunks_of_results_for_list_calls() {
    run(|c| async move {
        const TOTAL: usize = 400;
        let ns = namespace(&c, "cf-chunking").await;
        create_pod_templates(&c, &ns, TOTAL, 20).await;
        let api: Api<PodTemplate> = Api::namespaced(c, &ns);
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..3 {
            let mut found = 0;
            let mut last_rv = String::new();
            let mut token: Option<String> = None;
            loop {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let limit = (rng % (TOTAL as u64 / 10)) as u32 + 1;
                let mut lp = ListParams::default().limit(limit);
                if let Some(t) = &token {
                    lp = lp.continue_token(t);
                }
                let list = api.list(&lp).await.expect("list pod templates");
                assert!(list.items.len() <= limit as usize);
                let rv = list.metadata.resource_version.clone().unwrap_or_default();
                if last_rv.is_empty() {
                    last_rv = rv.clone();
                }
                assert_eq!(
                    rv, last_rv,
                    "every page reports the first page's resourceVersion"
                );
                let more = list.metadata.continue_.clone().filter(|t| !t.is_empty());
                match &more {
                    None => assert_eq!(list.metadata.remaining_item_count, None),
                    Some(_) => {
                        let remaining = list
                            .metadata
                            .remaining_item_count
                            .expect("remainingItemCount on a page with more");
                        assert_eq!(remaining as usize + list.items.len() + found, TOTAL);
                    }
                }
                for item in &list.items {
                    assert_eq!(
                        item.metadata.name.as_deref(),
                        Some(format!("template-{found:04}").as_str())
                    );
                    found += 1;
                }
                match more {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
            assert_eq!(found, TOTAL);
        }
        let all = api
            .list(&ListParams::default().limit(TOTAL as u32 + 1))
            .await
            .unwrap();
        assert_eq!(all.items.len(), TOTAL);
    });
}

// ---------------------------------------------------------------------------------------------
// server version (test/e2e/apimachinery/server_version.go)

/// server_version.go "should find the server version" (Conformance).
#[test]
fn server_version_should_find_the_server_version() {
    run(|c| async move {
        let v = c.apiserver_version().await.expect("ServerVersion");
        let major_digit: String = v
            .major
            .chars()
            .filter(|ch| ('1'..='9').contains(ch))
            .take(1)
            .collect();
        assert_eq!(major_digit, v.major, "major version {:?}", v.major);
        let minor: String = v.minor.chars().filter(char::is_ascii_digit).collect();
        let minor: u32 = minor.parse().expect("numeric minor version");
        assert!(minor > 0, "minor version {:?}", v.minor);
    });
}

// ---------------------------------------------------------------------------------------------
// health handlers (test/e2e/apimachinery/health_handlers.go)

/// health_handlers.go "should contain necessary checks": `/healthz`, `/livez` and `/readyz`
/// with `verbose=1` list every check kube-apiserver has.
#[test]
#[ignore = "issue 10: verbose=1 answers a bare ok, listing no checks"]
fn health_handlers_should_contain_necessary_checks() {
    run(|c| async move {
        let hooks = [
            "[+]poststarthook/start-apiextensions-informers ok",
            "[+]poststarthook/start-apiextensions-controllers ok",
            "[+]poststarthook/crd-informer-synced ok",
            "[+]poststarthook/bootstrap-controller ok",
            "[+]poststarthook/start-system-namespaces-controller ok",
            "[+]poststarthook/scheduling/bootstrap-system-priority-classes ok",
            "[+]poststarthook/start-cluster-authentication-info-controller ok",
            "[+]poststarthook/start-kube-aggregator-informers ok",
            "[+]poststarthook/apiservice-registration-controller ok",
            "[+]poststarthook/apiservice-status-available-controller ok",
            "[+]poststarthook/kube-apiserver-autoregistration ok",
            "[+]autoregister-completion ok",
            "[+]poststarthook/apiservice-openapi-controller ok",
        ];
        let common = [
            "[+]ping ok",
            "[+]log ok",
            "[+]etcd ok",
            "[+]poststarthook/generic-apiserver-start-informers ok",
        ];
        let healthz: Vec<&str> = common
            .iter()
            .chain(["[+]poststarthook/start-apiserver-admission-initializer ok"].iter())
            .chain(hooks.iter())
            .copied()
            .collect();
        let livez: Vec<&str> = common
            .iter()
            .chain(["[+]poststarthook/start-kube-apiserver-admission-initializer ok"].iter())
            .chain(hooks.iter())
            .copied()
            .collect();
        let mut readyz = livez.clone();
        readyz.push("[+]informer-sync ok");
        for (path, required) in [
            ("/healthz?verbose=1", healthz),
            ("/livez?verbose=1", livez),
            ("/readyz?verbose=1", readyz),
        ] {
            let r = eventually(30, path, || async {
                let r = get(&c, path).await;
                (r.status == StatusCode::OK).then_some(r)
            })
            .await;
            let lines: Vec<&str> = r.body.split('\n').collect();
            let missing: Vec<&&str> = required
                .iter()
                .filter(|want| !lines.contains(want))
                .collect();
            assert!(
                missing.is_empty(),
                "missing required {path} checks: {missing:?} in: {}",
                r.body
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// client-go protocol (test/e2e/apimachinery/protocol.go)

/// "client-go should negotiate watch and report errors with accept <accept>": a watch by
/// name from a list's resourceVersion opens under that Accept header and its first event is
/// the created object (or a 410).
async fn negotiate_watch(c: Client, accept: &str, ns: &str) {
    let ns = namespace(&c, ns).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), &ns);
    let before = api.list(&ListParams::default()).await.unwrap();
    let name = "e2e-client-go-test-negotiation";
    api.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": name}})),
    )
    .await
    .unwrap();
    let rv = before.metadata.resource_version.unwrap();
    let uri = format!(
        "/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3D{name}&timeoutSeconds=30"
    );
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header("accept", accept);
    req = req.header("user-agent", "conformance");
    let res = c
        .send(req.body(kube::client::Body::from(Vec::new())).unwrap())
        .await
        .expect("watch");
    assert_eq!(res.status(), StatusCode::OK, "watch with accept {accept}");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // A JSON watch stream: one event per line. (Upstream also accepts protobuf framing; skiff
    // answers JSON, which client-go decodes by the response's content type.)
    assert!(
        ct.starts_with("application/json"),
        "content type {ct} for accept {accept}"
    );
    let mut body = res.into_body();
    let mut buf = Vec::new();
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        use hyper::body::Body as _;
        loop {
            if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                return String::from_utf8_lossy(&buf[..pos]).into_owned();
            }
            let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
                .await
                .expect("watch closed before an event")
                .expect("watch body");
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
            }
        }
    })
    .await
    .expect("no watch event within 30s");
    let event: Value = serde_json::from_str(&line).expect("watch event is JSON");
    match event["type"].as_str() {
        Some("ADDED") | Some("MODIFIED") => assert_eq!(event["object"]["metadata"]["name"], name),
        Some("ERROR") => assert!(event["object"]["code"] == 410, "unexpected error: {event}"),
        other => panic!("unexpected type {other:?}: {event}"),
    }
}

/// protocol.go "client-go should negotiate watch and report errors with accept
/// \"application/json\"".
#[test]
fn protocol_should_negotiate_watch_and_report_errors_with_accept_json() {
    run(|c| negotiate_watch(c, "application/json", "cf-proto-json"));
}

/// protocol.go "... with accept \"application/vnd.kubernetes.protobuf\"".
#[test]
#[ignore = "issue 10: a watch asking only for protobuf gets 406 (responses are JSON only)"]
fn protocol_should_negotiate_watch_and_report_errors_with_accept_protobuf() {
    run(|c| negotiate_watch(c, "application/vnd.kubernetes.protobuf", "cf-proto-pb"));
}

/// protocol.go "... with accept \"application/vnd.kubernetes.protobuf,application/json\"".
#[test]
fn protocol_should_negotiate_watch_and_report_errors_with_accept_protobuf_then_json() {
    run(|c| {
        negotiate_watch(
            c,
            "application/vnd.kubernetes.protobuf,application/json",
            "cf-proto-pb-json",
        )
    });
}

/// protocol.go "... with accept \"application/json,application/vnd.kubernetes.protobuf\"".
#[test]
fn protocol_should_negotiate_watch_and_report_errors_with_accept_json_then_protobuf() {
    run(|c| {
        negotiate_watch(
            c,
            "application/json,application/vnd.kubernetes.protobuf",
            "cf-proto-json-pb",
        )
    });
}

// ---------------------------------------------------------------------------------------------
// Namespaces (test/e2e/apimachinery/namespace.go)

/// `WaitForDefaultServiceAccountInNamespace`, which the upstream namespace tests call.
async fn wait_for_default_service_account(c: &Client, ns: &str) {
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(c.clone(), ns);
    eventually(60, "the default service account", || async {
        sas.get_opt("default").await.ok().flatten()
    })
    .await;
}

async fn wait_namespace_gone(c: &Client, ns: &str, secs: u64) {
    let api: Api<Namespace> = Api::all(c.clone());
    eventually(secs, "the namespace to be removed", || async {
        api.get_opt(ns)
            .await
            .ok()
            .and_then(|o| o.is_none().then_some(()))
    })
    .await;
}

/// namespace.go "should ensure that all pods are removed when a namespace is deleted"
/// (Conformance). No node runs here, so the pod stays Pending rather than Running.
#[test]
#[ignore = "issue 14: new namespaces get no default ServiceAccount"]
fn namespaces_should_ensure_that_all_pods_are_removed_when_a_namespace_is_deleted() {
    run(|c| async move {
        let ns = namespace(&c, "nsdeletetest-pods").await;
        wait_for_default_service_account(&c, &ns).await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let pod: Pod = obj(json!({
            "metadata": {"name": "test-pod"},
            "spec": {"containers": [{"name": "nginx", "image": "registry.k8s.io/pause:3.10"}]}
        }));
        pods.create(&PostParams::default(), &pod).await.unwrap();
        Api::<Namespace>::all(c.clone())
            .delete(&ns, &DeleteParams::default())
            .await
            .unwrap();
        wait_namespace_gone(&c, &ns, 90).await;
        namespace(&c, &ns).await;
        assert!(
            pods.get_opt("test-pod").await.unwrap().is_none(),
            "the pod outlived its namespace"
        );
    });
}

/// namespace.go "should ensure that all services are removed when a namespace is deleted"
/// (Conformance).
#[test]
#[ignore = "issue 14: new namespaces get no default ServiceAccount"]
fn namespaces_should_ensure_that_all_services_are_removed_when_a_namespace_is_deleted() {
    run(|c| async move {
        let ns = namespace(&c, "nsdeletetest-svcs").await;
        wait_for_default_service_account(&c, &ns).await;
        let svcs: Api<Service> = Api::namespaced(c.clone(), &ns);
        let svc: Service = obj(json!({
            "metadata": {"name": "test-service"},
            "spec": {"selector": {"foo": "bar", "baz": "blah"}, "ports": [{"port": 80, "targetPort": 80}]}
        }));
        svcs.create(&PostParams::default(), &svc).await.unwrap();
        Api::<Namespace>::all(c.clone())
            .delete(&ns, &DeleteParams::default())
            .await
            .unwrap();
        wait_namespace_gone(&c, &ns, 60).await;
        namespace(&c, &ns).await;
        assert!(
            svcs.get_opt("test-service").await.unwrap().is_none(),
            "the service outlived its namespace"
        );
    });
}

/// namespace.go "should patch a Namespace" (Conformance).
#[test]
fn namespaces_should_patch_a_namespace() {
    run(|c| async move {
        let name = namespace(&c, "nspatchtest-cf").await;
        let api: Api<Namespace> = Api::all(c.clone());
        let created = api.get(&name).await.unwrap();
        let patch = json!({"metadata": {"labels": {"testLabel": "testValue"}}});
        let patched = api
            .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .expect("patch Namespace");
        let rv = |n: &Namespace| -> u64 {
            n.metadata
                .resource_version
                .as_deref()
                .unwrap_or("")
                .parse()
                .expect("numeric resourceVersion")
        };
        assert!(
            rv(&created) < rv(&patched),
            "patched object should have a larger resource version"
        );
        let got = api.get(&name).await.unwrap();
        assert_eq!(
            got.metadata
                .labels
                .unwrap_or_default()
                .get("testLabel")
                .map(String::as_str),
            Some("testValue"),
            "namespace not patched"
        );
    });
}

/// namespace.go "should apply changes to a namespace status" (Conformance).
#[test]
#[ignore = "issue 10: a patch of namespaces/status drops its metadata (annotation) changes"]
fn namespaces_should_apply_changes_to_a_namespace_status() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ns-status").await;
        let api: Api<Namespace> = Api::all(c.clone());
        let status = ok(
            &get(&c, &format!("/api/v1/namespaces/{ns}/status")).await,
            "read namespace status",
        );
        assert_eq!(status["status"]["phase"], "Active");

        let condition = json!({"type": "StatusPatch", "status": "True", "reason": "E2E", "message": "Patched by an e2e test"});
        let patch = json!({"metadata": {"annotations": {"e2e-patched-ns-status": ns}}, "status": {"conditions": [condition]}});
        let patched = api
            .patch_status(&ns, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch status");
        assert_eq!(
            patched
                .metadata
                .annotations
                .clone()
                .unwrap_or_default()
                .get("e2e-patched-ns-status"),
            Some(&ns),
            "patched object should have the applied annotation"
        );
        let conds = patched
            .status
            .clone()
            .unwrap()
            .conditions
            .unwrap_or_default();
        let last = conds.last().expect("a condition");
        assert_eq!(last.reason.as_deref(), Some("E2E"));
        assert_eq!(last.message.as_deref(), Some("Patched by an e2e test"));

        let mut current = api.get_status(&ns).await.unwrap();
        let mut conds = current
            .status
            .clone()
            .unwrap_or_default()
            .conditions
            .unwrap_or_default();
        conds.push(obj(json!({"type": "StatusUpdate", "status": "True", "reason": "E2E", "message": "Updated by an e2e test"})));
        current
            .status
            .get_or_insert_with(Default::default)
            .conditions = Some(conds);
        let updated = api
            .replace_status(&ns, &PostParams::default(), &current)
            .await
            .expect("update namespace status");
        let conds = updated.status.unwrap().conditions.unwrap_or_default();
        let last = conds.last().expect("a condition");
        assert_eq!(last.type_, "StatusUpdate");
        assert_eq!(last.message.as_deref(), Some("Updated by an e2e test"));
    });
}

/// namespace.go "should apply an update to a Namespace" (Conformance).
#[test]
fn namespaces_should_apply_an_update_to_a_namespace() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ns-update").await;
        let api: Api<Namespace> = Api::all(c.clone());
        let mut got = api.get(&ns).await.unwrap();
        got.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(ns.clone(), "updated".into());
        let updated = api
            .replace(&ns, &PostParams::default(), &got)
            .await
            .expect("update Namespace");
        assert_eq!(
            updated
                .metadata
                .labels
                .unwrap_or_default()
                .get(&ns)
                .map(String::as_str),
            Some("updated")
        );
    });
}

/// namespace.go "should apply a finalizer to a Namespace" (Conformance): PUT
/// `namespaces/{name}/finalize` adds, then removes, a spec finalizer.
#[test]
fn namespaces_should_apply_a_finalizer_to_a_namespace() {
    run(|c| async move {
        let ns = namespace(&c, "e2e-ns-cffin").await;
        let api: Api<Namespace> = Api::all(c.clone());
        let fake = "e2e.example.com/fakeFinalizer";
        let finalize = |body: Namespace| {
            let c = c.clone();
            let ns = ns.clone();
            async move {
                let r = raw(
                    &c,
                    Method::PUT,
                    &format!("/api/v1/namespaces/{ns}/finalize"),
                    &[("content-type", "application/json")],
                    &serde_json::to_string(&body).unwrap(),
                )
                .await;
                let v = ok(&r, "finalize");
                serde_json::from_value::<Namespace>(v).expect("a Namespace")
            }
        };
        let finalizers = |n: &Namespace| -> Vec<String> {
            n.spec
                .clone()
                .unwrap_or_default()
                .finalizers
                .unwrap_or_default()
        };
        let mut got = api.get(&ns).await.unwrap();
        got.spec
            .get_or_insert_with(Default::default)
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(fake.into());
        let updated = finalize(got).await;
        assert!(
            finalizers(&updated).iter().any(|f| f == fake),
            "Finalizer {fake} was not found: {:?}",
            finalizers(&updated)
        );

        let mut got = api.get(&ns).await.unwrap();
        let kept: Vec<String> = finalizers(&got).into_iter().filter(|f| f != fake).collect();
        got.spec.get_or_insert_with(Default::default).finalizers = Some(kept);
        let updated = finalize(got).await;
        assert!(
            !finalizers(&updated).iter().any(|f| f == fake),
            "Finalizer {fake} was found: {:?}",
            finalizers(&updated)
        );
    });
}

/// namespace.go "should delete fast enough (90 percent of 100 namespaces in 150 seconds)":
/// upstream's 10 s pause before the deletes is left out.
#[test]
fn namespaces_should_delete_fast_enough_90_percent_of_100_namespaces_in_150_seconds() {
    run(|c| async move {
        let api: Api<Namespace> = Api::all(c.clone());
        futures::stream::iter(0..100)
            .for_each_concurrent(10, |n| {
                let c = c.clone();
                async move {
                    namespace(&c, &format!("nslifetest-{n}")).await;
                }
            })
            .await;
        let all = api.list(&ListParams::default()).await.unwrap();
        let doomed: Vec<String> = all
            .items
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .filter(|n| n.contains("nslifetest"))
            .collect();
        assert_eq!(doomed.len(), 100);
        futures::stream::iter(doomed)
            .for_each_concurrent(10, |n| {
                let api = api.clone();
                async move {
                    api.delete(&n, &DeleteParams::default())
                        .await
                        .expect("delete namespace");
                }
            })
            .await;
        eventually(150, "at most 10 nslifetest namespaces left", || async {
            let left = api
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .filter(|n| {
                    n.metadata
                        .name
                        .as_deref()
                        .unwrap_or("")
                        .contains("nslifetest")
                })
                .count();
            (left <= 10).then_some(())
        })
        .await;
    });
}

// ---------------------------------------------------------------------------------------------
// Garbage collector (test/e2e/apimachinery/garbage_collector.go)

fn gc_pod_template(labels: &Value) -> Value {
    json!({
        "metadata": {"labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "nginx", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53"}]
        }
    })
}

/// `newOwnerRC`.
fn owner_rc(name: &str, replicas: i32, labels: Value) -> ReplicationController {
    obj(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": labels, "template": gc_pod_template(&labels)}
    }))
}

/// `getUniqLabel`.
fn uniq_labels(key: &str, value: &str) -> Value {
    json!({key: value})
}

/// `waitForReplicas`: the RC's status reports all its replicas.
async fn wait_for_replicas(rcs: &Api<ReplicationController>, name: &str) {
    eventually(60, "the rc to create its pods", || async {
        let rc = rcs.get(name).await.ok()?;
        let want = rc.spec.as_ref()?.replicas.unwrap_or(1);
        (rc.status.as_ref()?.replicas == want).then_some(())
    })
    .await;
}

fn uid_precondition(uid: &Option<String>) -> Preconditions {
    Preconditions {
        uid: uid.clone(),
        resource_version: None,
    }
}

async fn count<K>(api: &Api<K>) -> usize
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .expect("list")
        .items
        .len()
}

/// garbage_collector.go "should delete pods created by rc when not orphaning" (Conformance).
#[test]
#[ignore = "issue 12: no ReplicationController controller, the rc never creates pods"]
fn gc_should_delete_pods_created_by_rc_when_not_orphaning() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-rc-delete").await;
        let rcs: Api<ReplicationController> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let rc = rcs
            .create(
                &PostParams::default(),
                &owner_rc("simpletest.rc", 2, uniq_labels("gctest", "delete_pods")),
            )
            .await
            .unwrap();
        eventually(30, "the rc to create some pods", || async {
            (count(&pods).await > 0).then_some(())
        })
        .await;
        let dp = DeleteParams::background().preconditions(uid_precondition(&rc.metadata.uid));
        rcs.delete("simpletest.rc", &dp)
            .await
            .expect("delete the rc");
        eventually(60, "all pods to be garbage collected", || async {
            (count(&rcs).await == 0 && count(&pods).await == 0).then_some(())
        })
        .await;
    });
}

/// garbage_collector.go "should orphan pods created by rc if delete options say so"
/// (Conformance). Upstream then waits 30 s to see the GC delete no pod; here the orphan
/// finalizer's work is checked directly: the RC is only gone after its pods were released.
#[test]
#[ignore = "issue 12: no ReplicationController controller, the rc never creates pods"]
fn gc_should_orphan_pods_created_by_rc_if_delete_options_say_so() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-rc-orphan").await;
        let rcs: Api<ReplicationController> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let rc = rcs
            .create(
                &PostParams::default(),
                &owner_rc("simpletest.rc", 10, uniq_labels("gctest", "orphan_pods")),
            )
            .await
            .unwrap();
        wait_for_replicas(&rcs, "simpletest.rc").await;
        let dp = DeleteParams::orphan().preconditions(uid_precondition(&rc.metadata.uid));
        rcs.delete("simpletest.rc", &dp)
            .await
            .expect("delete the rc");
        eventually(120, "the rc to be deleted", || async {
            (count(&rcs).await == 0).then_some(())
        })
        .await;
        let left = pods.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(left.len(), 10, "expect 10 pods");
        for p in &left {
            assert!(
                p.metadata
                    .owner_references
                    .clone()
                    .unwrap_or_default()
                    .is_empty(),
                "pod still owned: {:?}",
                p.metadata
            );
            assert!(p.metadata.deletion_timestamp.is_none());
        }
    });
}

/// garbage_collector.go "should orphan pods created by rc if deleteOptions.OrphanDependents is
/// nil" (v1 ReplicationControllers orphan by default).
#[test]
#[ignore = "issue 12: no ReplicationController controller, the rc never creates pods"]
fn gc_should_orphan_pods_created_by_rc_if_delete_options_orphan_dependents_is_nil() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-rc-nil").await;
        let rcs: Api<ReplicationController> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let rc = rcs
            .create(
                &PostParams::default(),
                &owner_rc(
                    "simpletest.rc",
                    2,
                    uniq_labels("gctest", "orphan_pods_nil_option"),
                ),
            )
            .await
            .unwrap();
        wait_for_replicas(&rcs, "simpletest.rc").await;
        let dp = DeleteParams::default().preconditions(uid_precondition(&rc.metadata.uid));
        rcs.delete("simpletest.rc", &dp)
            .await
            .expect("delete the rc");
        eventually(60, "the rc to be deleted", || async {
            (count(&rcs).await == 0).then_some(())
        })
        .await;
        let left = pods.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(left.len(), 2, "expect 2 pods");
        for p in &left {
            assert!(
                p.metadata
                    .owner_references
                    .clone()
                    .unwrap_or_default()
                    .is_empty(),
                "pod still owned: {:?}",
                p.metadata
            );
        }
    });
}

/// `newOwnerDeployment`.
fn owner_deployment(name: &str, labels: Value) -> Deployment {
    obj(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": gc_pod_template(&labels)}
    }))
}

/// garbage_collector.go "should delete RS created by deployment when not orphaning"
/// (Conformance).
#[test]
fn gc_should_delete_rs_created_by_deployment_when_not_orphaning() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-deploy-delete").await;
        let deploys: Api<Deployment> = Api::namespaced(c.clone(), &ns);
        let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let d = deploys
            .create(
                &PostParams::default(),
                &owner_deployment("simpletest.deployment", uniq_labels("gctest", "delete_rs")),
            )
            .await
            .unwrap();
        eventually(60, "the Deployment to create a ReplicaSet", || async {
            (count(&rss).await > 0).then_some(())
        })
        .await;
        let dp = DeleteParams::background().preconditions(uid_precondition(&d.metadata.uid));
        deploys
            .delete("simpletest.deployment", &dp)
            .await
            .expect("delete the deployment");
        eventually(60, "all rs and pods to be garbage collected", || async {
            (count(&deploys).await == 0 && count(&rss).await == 0 && count(&pods).await == 0)
                .then_some(())
        })
        .await;
    });
}

/// garbage_collector.go "should orphan RS created by deployment when
/// deleteOptions.PropagationPolicy is Orphan" (Conformance).
#[test]
fn gc_should_orphan_rs_created_by_deployment_when_delete_options_propagation_policy_is_orphan() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-deploy-orphan").await;
        let deploys: Api<Deployment> = Api::namespaced(c.clone(), &ns);
        let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let d = deploys
            .create(
                &PostParams::default(),
                &owner_deployment("simpletest.deployment", uniq_labels("gctest", "orphan_rs")),
            )
            .await
            .unwrap();
        let rs = eventually(60, "the Deployment to create a ReplicaSet", || async {
            rss.list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()
        })
        .await;
        let rs_name = rs.metadata.name.clone().unwrap();
        let generation = rs.metadata.generation.unwrap_or(0);
        let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        eventually(60, ".status.replicas to equal .spec.replicas", || async {
            let rs = rss.get(&rs_name).await.ok()?;
            let st = rs.status?;
            (st.observed_generation.unwrap_or(0) >= generation && st.replicas == want).then_some(())
        })
        .await;
        let dp = DeleteParams::orphan().preconditions(uid_precondition(&d.metadata.uid));
        deploys
            .delete("simpletest.deployment", &dp)
            .await
            .expect("delete the deployment");
        eventually(60, "the Deployment to be deleted", || async {
            (count(&deploys).await == 0).then_some(())
        })
        .await;
        assert_eq!(count(&rss).await, 1, "ReplicaSets left");
        assert_eq!(count(&pods).await, 2, "Pods left");
        for rs in rss.list(&ListParams::default()).await.unwrap().items {
            let controller = rs
                .metadata
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .find(|o| o.controller == Some(true));
            assert!(
                controller.is_none(),
                "Found ReplicaSet with non nil ownerRef {controller:?}"
            );
        }
    });
}

/// garbage_collector.go "should keep the rc around until all its pods are deleted if the
/// deleteOptions says so" (Conformance): foreground deletion.
#[test]
#[ignore = "issue 12: no ReplicationController controller, the rc never creates pods"]
fn gc_should_keep_the_rc_around_until_all_its_pods_are_deleted_if_the_delete_options_says_so() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-rc-foreground").await;
        let rcs: Api<ReplicationController> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let rc = rcs
            .create(
                &PostParams::default(),
                &owner_rc(
                    "simpletest.rc",
                    10,
                    uniq_labels("gctest", "delete_pods_foreground"),
                ),
            )
            .await
            .unwrap();
        wait_for_replicas(&rcs, "simpletest.rc").await;
        let dp = DeleteParams::foreground().preconditions(uid_precondition(&rc.metadata.uid));
        rcs.delete("simpletest.rc", &dp)
            .await
            .expect("delete the rc");
        eventually(60, "the rc to be deleted", || async {
            rcs.get_opt("simpletest.rc")
                .await
                .ok()?
                .is_none()
                .then_some(())
        })
        .await;
        let left = pods.list(&ListParams::default()).await.unwrap().items;
        assert!(left.is_empty(), "expected no pods, got {}", left.len());
    });
}

/// garbage_collector.go "should not delete dependents that have both valid owner and owner
/// that's waiting for dependents to be deleted" (Conformance).
#[test]
#[ignore = "issue 12: no ReplicationController controller, the rc never creates pods"]
fn gc_should_not_delete_dependents_that_have_both_valid_owner_and_owner_thats_waiting_for_dependents_to_be_deleted(
) {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-two-owners").await;
        let rcs: Api<ReplicationController> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let replicas = 10;
        let half = replicas as usize / 2;
        let rc1 = rcs
            .create(
                &PostParams::default(),
                &owner_rc(
                    "simpletest-rc-to-be-deleted",
                    replicas,
                    uniq_labels("gctest_d", "valid_and_pending_owners_d"),
                ),
            )
            .await
            .unwrap();
        let rc2 = rcs
            .create(
                &PostParams::default(),
                &owner_rc(
                    "simpletest-rc-to-stay",
                    0,
                    uniq_labels("gctest_s", "valid_and_pending_owners_s"),
                ),
            )
            .await
            .unwrap();
        wait_for_replicas(&rcs, "simpletest-rc-to-be-deleted").await;
        let all = pods.list(&ListParams::default()).await.unwrap().items;
        let patch = json!({"metadata": {"ownerReferences": [{
            "apiVersion": "v1", "kind": "ReplicationController",
            "name": rc2.metadata.name, "uid": rc2.metadata.uid
        }]}});
        for p in all.iter().take(half) {
            pods.patch(
                p.metadata.name.as_deref().unwrap(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
            .expect("strategic merge patch of ownerReferences");
        }
        let dp = DeleteParams::foreground().preconditions(uid_precondition(&rc1.metadata.uid));
        rcs.delete("simpletest-rc-to-be-deleted", &dp)
            .await
            .expect("delete the rc");
        eventually(90, "the rc to be deleted", || async {
            rcs.get_opt("simpletest-rc-to-be-deleted")
                .await
                .ok()?
                .is_none()
                .then_some(())
        })
        .await;
        let left = pods.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(left.len(), half, "expected {half} pods");
        for p in &left {
            assert!(p.metadata.deletion_timestamp.is_none(), "{:?}", p.metadata);
            assert_eq!(
                p.metadata.owner_references.as_ref().map(Vec::len),
                Some(1),
                "{:?}",
                p.metadata
            );
        }
    });
}

/// garbage_collector.go "should not be blocked by dependency circle" (Conformance).
#[test]
#[ignore = "issue 10: foreground deletion of an ownership cycle deadlocks, every pod keeps foregroundDeletion"]
fn gc_should_not_be_blocked_by_dependency_circle() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-circle").await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let mut uids = Vec::new();
        for name in ["pod1", "pod2", "pod3"] {
            let pod: Pod = obj(json!({
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "nginx", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53"}]}
            }));
            let p = pods.create(&PostParams::default(), &pod).await.unwrap();
            uids.push(p.metadata.uid.unwrap());
        }
        let add_ref = |name: &str, uid: &str| {
            json!({"metadata": {"ownerReferences": [{
                "apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true
            }]}})
        };
        let pp = PatchParams::default();
        pods.patch("pod1", &pp, &Patch::Strategic(&add_ref("pod3", &uids[2])))
            .await
            .unwrap();
        pods.patch("pod2", &pp, &Patch::Strategic(&add_ref("pod1", &uids[0])))
            .await
            .unwrap();
        pods.patch("pod3", &pp, &Patch::Strategic(&add_ref("pod2", &uids[1])))
            .await
            .unwrap();
        let dp = DeleteParams::foreground().preconditions(Preconditions {
            uid: Some(uids[0].clone()),
            resource_version: None,
        });
        pods.delete("pod1", &dp).await.expect("delete pod1");
        eventually(90, "all pods to be deleted", || async {
            (count(&pods).await == 0).then_some(())
        })
        .await;
    });
}

/// chunking.go "should support continue listing from the last key if the original version has
/// been compacted away, though the list is inconsistent [Slow]" (Conformance). Upstream waits
/// for etcd's periodic compaction; skiff compacts once its history holds more than 20,000
/// revisions, so this test writes that many on a server of its own (the shared server's other
/// tests watch from recent revisions).
#[test]
#[ignore = "issue 10: paged lists carry no remainingItemCount, and the 410 for an expired continue token carries no inconsistent continue token"]
fn chunking_should_support_continue_listing_from_the_last_key_if_the_original_version_has_been_compacted_away_though_the_list_is_inconsistent(
) {
    static OWN: OnceLock<Server> = OnceLock::new();
    run_on(
        OWN.get_or_init(|| start_server("conformance-compaction")),
        |c| async move {
            const TOTAL: usize = 400;
            let ns = namespace(&c, "cf-chunking-compacted").await;
            create_pod_templates(&c, &ns, TOTAL, 20).await;
            let api: Api<PodTemplate> = Api::namespaced(c.clone(), &ns);
            let remaining_ok = |list: &kube::core::ObjectList<PodTemplate>, found: usize| match list
                .metadata
                .continue_
                .as_deref()
                .filter(|t| !t.is_empty())
            {
                None => assert_eq!(list.metadata.remaining_item_count, None),
                Some(_) => {
                    let remaining = list
                        .metadata
                        .remaining_item_count
                        .expect("remainingItemCount on a page with more");
                    assert_eq!(remaining as usize + list.items.len() + found, TOTAL);
                }
            };

            let one_tenth = (TOTAL / 10) as u32;
            let list = api
                .list(&ListParams::default().limit(one_tenth))
                .await
                .unwrap();
            remaining_ok(&list, 0);
            let first_token = list.metadata.continue_.clone().expect("a continue token");
            let first_rv = list.metadata.resource_version.clone().unwrap();

            // Write until the first page's revision is compacted and the token expires.
            let cms: Api<ConfigMap> = Api::namespaced(c.clone(), &ns);
            let uri = format!(
                "/api/v1/namespaces/{ns}/podtemplates?limit={one_tenth}&continue={first_token}"
            );
            let mut written = 0;
            let inconsistent = loop {
                let r = get(&c, &uri).await;
                if r.status == StatusCode::GONE {
                    let status = r.json();
                    assert_eq!(status["reason"], "Expired", "{status}");
                    let token = status["metadata"]["continue"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned();
                    assert_ne!(token, "", "expect non empty continue token: {status}");
                    break token;
                }
                ok(&r, "the second page before the token expired");
                assert!(
                    written < 40_000,
                    "the continue token never expired after {written} writes"
                );
                futures::stream::iter(written..written + 2_000)
                    .for_each_concurrent(32, |i| {
                        let cms = cms.clone();
                        async move {
                            let cm: ConfigMap =
                                obj(json!({"metadata": {"name": format!("w-{i}")}}));
                            cms.create(&PostParams::default(), &cm)
                                .await
                                .expect("write");
                        }
                    })
                    .await;
                written += 2_000;
            };

            let lp = ListParams::default()
                .limit(one_tenth)
                .continue_token(&inconsistent);
            let list = api
                .list(&lp)
                .await
                .expect("list with the inconsistent continue token");
            let rv = list.metadata.resource_version.clone().unwrap();
            assert_ne!(rv, first_rv);
            assert_eq!(list.items.len(), one_tenth as usize);
            let mut found = one_tenth as usize;
            remaining_ok(&list, found);
            for item in &list.items {
                assert_eq!(
                    item.metadata.name.as_deref(),
                    Some(format!("template-{found:04}").as_str())
                );
                found += 1;
            }
            let mut token = list.metadata.continue_.clone();
            while let Some(t) = token.filter(|t| !t.is_empty()) {
                let list = api
                    .list(&ListParams::default().limit(one_tenth).continue_token(&t))
                    .await
                    .unwrap();
                remaining_ok(&list, found);
                assert!(list.items.len() <= one_tenth as usize);
                assert_eq!(list.metadata.resource_version.as_deref(), Some(rv.as_str()));
                for item in &list.items {
                    assert_eq!(
                        item.metadata.name.as_deref(),
                        Some(format!("template-{found:04}").as_str())
                    );
                    found += 1;
                }
                token = list.metadata.continue_.clone();
            }
            assert_eq!(found, TOTAL);
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Generated clientset (test/e2e/apimachinery/generated_clientset.go)

/// generated_clientset.go "should create v1 cronJobs, delete cronJobs, watch cronJobs".
#[test]
fn generated_clientset_should_create_v1_cronjobs_delete_cronjobs_watch_cronjobs() {
    run(|c| async move {
        use k8s_openapi::api::batch::v1::CronJob;
        let ns = namespace(&c, "cf-clientset-cronjob").await;
        let api: Api<CronJob> = Api::namespaced(c, &ns);
        let value = format!("{}", std::process::id());
        let selector = format!("time={value}");
        let cronjob: CronJob = obj(json!({
            "metadata": {"name": "cronjob-cf", "labels": {"time": value}},
            "spec": {
                "schedule": "*/1 * * * ?",
                "concurrencyPolicy": "Allow",
                "jobTemplate": {"spec": {
                    "parallelism": 1,
                    "completions": 1,
                    "template": {"spec": {
                        "restartPolicy": "OnFailure",
                        "volumes": [{"name": "data", "emptyDir": {}}],
                        "containers": [{
                            "name": "c",
                            "image": "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
                            "volumeMounts": [{"mountPath": "/data", "name": "data"}]
                        }]
                    }}
                }}
            }
        }));
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap();
        assert!(list.items.is_empty());
        let rv = list.metadata.resource_version.unwrap();
        let mut w = api
            .watch(&WatchParams::default().labels(&selector), &rv)
            .await
            .expect("set up watch")
            .boxed();
        let created = api
            .create(&PostParams::default(), &cronjob)
            .await
            .expect("create cronJob");
        let at = created.metadata.resource_version.clone().unwrap();
        let list = api
            .list(&ListParams::default().labels(&selector).at(&at))
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1, "the cronJob is in kubernetes");
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(30), w.next())
                .await
                .expect("observe cronJob creation")
                .expect("watch closed unexpectedly")
                .expect("watch error");
            match ev {
                WatchEvent::Added(_) => break,
                WatchEvent::Bookmark(_) => continue,
                other => panic!("expected ADDED, got {other:?}"),
            }
        }
        api.delete("cronjob-cf", &DeleteParams::background())
            .await
            .expect("delete cronJob");
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap();
        assert!(
            list.items.is_empty(),
            "the cronJob is still listed after its delete"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Server request timeout (test/e2e/apimachinery/request_timeout.go)

/// request_timeout.go "should return HTTP status code 400 if the user specifies an invalid
/// timeout in the request URL".
#[test]
#[ignore = "issue 10: ?timeout=invalid is served (200) instead of refused with 400"]
fn request_timeout_should_return_http_status_code_400_if_the_user_specifies_an_invalid_timeout_in_the_request_url(
) {
    run(|c| async move {
        let r = get(&c, "/version?timeout=invalid").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(
            r.body.contains("invalid timeout specified in the request URL"),
            "expected HTTP status message to contain: invalid timeout specified in the request URL, but got: {}",
            r.body
        );
    });
}

/// request_timeout.go "the request should be served with a default timeout if the specified
/// timeout in the request URL exceeds maximum allowed".
#[test]
fn request_timeout_the_request_should_be_served_with_a_default_timeout_if_the_specified_timeout_in_the_request_url_exceeds_maximum_allowed(
) {
    run(|c| async move {
        let r = get(&c, "/version?timeout=3m").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    });
}

/// request_timeout.go "default timeout should be used if the specified timeout in the request
/// URL is 0s".
#[test]
fn request_timeout_default_timeout_should_be_used_if_the_specified_timeout_in_the_request_url_is_0s(
) {
    run(|c| async move {
        let r = get(&c, "/version?timeout=0s").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    });
}

// ---------------------------------------------------------------------------------------------
// CustomResourceDefinition resources (test/e2e/apimachinery/custom_resource_definition.go)

/// custom_resource_definition.go "should include custom resource definition resources in
/// discovery documents" (Conformance): the apiextensions.k8s.io group, its v1 version as the
/// preferred one, and `customresourcedefinitions` in its resource list.
#[test]
fn crd_should_include_custom_resource_definition_resources_in_discovery_documents() {
    run(|c| async move {
        let list = ok(&get(&c, "/apis").await, "/apis");
        let group = list["groups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["name"] == "apiextensions.k8s.io"))
            .cloned()
            .expect("apiextensions.k8s.io API group in /apis");
        assert!(
            group["versions"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| v["version"] == "v1")),
            "apiextensions.k8s.io/v1 in /apis: {group}"
        );
        assert_eq!(group["preferredVersion"]["version"], "v1", "{group}");

        let group = ok(
            &get(&c, "/apis/apiextensions.k8s.io").await,
            "/apis/apiextensions.k8s.io",
        );
        assert!(
            group["versions"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| v["version"] == "v1")),
            "{group}"
        );
        assert_eq!(group["preferredVersion"]["version"], "v1", "{group}");

        let resources = ok(
            &get(&c, "/apis/apiextensions.k8s.io/v1").await,
            "/apis/apiextensions.k8s.io/v1",
        );
        assert!(
            resources["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["name"] == "customresourcedefinitions")),
            "customresourcedefinitions in /apis/apiextensions.k8s.io/v1: {resources}"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// OpenAPIV3 (test/e2e/apimachinery/openapiv3.go)

/// openapiv3.go "should round trip OpenAPI V3 for all built-in group versions": every built-in
/// group-version's document (groups ending in k8s.io, and apps, autoscaling, batch, policy)
/// is fetched from the `/openapi/v3` root and decodes as an OpenAPI 3.0 document. Upstream
/// decodes into kube-openapi's Go types and re-encodes; here the document must decode as
/// JSON with the shape those types require and survive the same round trip.
#[test]
fn openapiv3_should_round_trip_openapi_v3_for_all_built_in_group_versions() {
    run(|c| async move {
        let root = ok(&get(&c, "/openapi/v3").await, "/openapi/v3");
        let paths = root["paths"]
            .as_object()
            .cloned()
            .expect("paths in the /openapi/v3 root");
        let builtin = ["apps", "autoscaling", "batch", "policy"];
        let mut checked = 0;
        for (path, entry) in paths {
            // "apis/<group>/<version>"; the core group ("api/v1") is skipped as upstream does.
            let Some(rest) = path.strip_prefix("apis/") else {
                continue;
            };
            let Some((group, _version)) = rest.split_once('/') else {
                continue;
            };
            if !group.ends_with("k8s.io") && !builtin.contains(&group) {
                continue;
            }
            let url = entry["serverRelativeURL"]
                .as_str()
                .expect("serverRelativeURL")
                .to_owned();
            let r = raw(&c, Method::GET, &url, &[("accept", "application/json")], "").await;
            let spec = ok(&r, &url);
            assert!(
                spec["openapi"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("3.")),
                "{url}: openapi version {}",
                spec["openapi"]
            );
            assert!(spec["paths"].is_object(), "{url}: paths");
            assert!(
                spec["components"]["schemas"].is_object(),
                "{url}: components.schemas"
            );
            let again: Value =
                serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
            assert_eq!(again, spec, "{url} does not round trip");
            checked += 1;
        }
        assert!(checked > 0, "no built-in group version in /openapi/v3");
    });
}

// ---------------------------------------------------------------------------------------------
// ResourceQuota (test/e2e/apimachinery/resource_quota.go): the cases that need no quota
// controller or admission (those are issue 14's and not re-created here).

fn hard(rq: &k8s_openapi::api::core::v1::ResourceQuota, resource: &str) -> Option<String> {
    rq.spec
        .as_ref()?
        .hard
        .as_ref()?
        .get(resource)
        .map(|q| q.0.clone())
}

/// resource_quota.go "should be able to update and delete ResourceQuota." (Conformance).
#[test]
fn resource_quota_should_be_able_to_update_and_delete_resource_quota() {
    run(|c| async move {
        use k8s_openapi::api::core::v1::ResourceQuota;
        let ns = namespace(&c, "cf-rq-update").await;
        let api: Api<ResourceQuota> = Api::namespaced(c, &ns);
        let mut rq: ResourceQuota = obj(json!({
            "metadata": {"name": "test-quota"},
            "spec": {"hard": {"cpu": "1", "memory": "500Mi"}}
        }));
        api.create(&PostParams::default(), &rq)
            .await
            .expect("create ResourceQuota");
        let got = api.get("test-quota").await.unwrap();
        assert_eq!(hard(&got, "cpu").as_deref(), Some("1"));
        assert_eq!(hard(&got, "memory").as_deref(), Some("500Mi"));

        // Upstream updates its original object (no resourceVersion): an unconditional update.
        rq.spec = Some(obj(json!({"hard": {"cpu": "2", "memory": "1Gi"}})));
        let updated = api
            .replace("test-quota", &PostParams::default(), &rq)
            .await
            .expect("update ResourceQuota");
        assert_eq!(hard(&updated, "cpu").as_deref(), Some("2"));
        assert_eq!(hard(&updated, "memory").as_deref(), Some("1Gi"));
        let got = api.get("test-quota").await.unwrap();
        assert_eq!(hard(&got, "cpu").as_deref(), Some("2"));
        assert_eq!(hard(&got, "memory").as_deref(), Some("1Gi"));

        api.delete("test-quota", &DeleteParams::default())
            .await
            .expect("delete ResourceQuota");
        match api.get("test-quota").await {
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            other => panic!("Expected `not found` error, got: {other:?}"),
        }
    });
}

/// resource_quota.go "should manage the lifecycle of a ResourceQuota" (Conformance): create,
/// list across namespaces by label, strategic merge patch, deletecollection by label.
#[test]
fn resource_quota_should_manage_the_lifecycle_of_a_resource_quota() {
    run(|c| async move {
        use k8s_openapi::api::core::v1::ResourceQuota;
        let ns = namespace(&c, "cf-rq-lifecycle").await;
        let name = "e2e-quota-cflif";
        let selector = format!("e2e-rq-label={name}");
        let api: Api<ResourceQuota> = Api::namespaced(c.clone(), &ns);
        let rq: ResourceQuota = obj(json!({
            "metadata": {"name": name, "labels": {"e2e-rq-label": name}},
            "spec": {"hard": {"cpu": "1", "memory": "500Mi"}}
        }));
        api.create(&PostParams::default(), &rq)
            .await
            .expect("create ResourceQuota");
        let got = api.get(name).await.unwrap();
        assert_eq!(hard(&got, "cpu").as_deref(), Some("1"));
        assert_eq!(hard(&got, "memory").as_deref(), Some("500Mi"));

        let all: Api<ResourceQuota> = Api::all(c.clone());
        let listed = all
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1, "Failed to find ResourceQuota {name}");

        let patch = json!({"metadata": {"labels": {name: "patched"}}, "spec": {"hard": {"memory": "750Mi"}}});
        let patched = api
            .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .expect("patch ResourceQuota");
        assert_eq!(
            patched
                .metadata
                .labels
                .clone()
                .unwrap_or_default()
                .get(name)
                .map(String::as_str),
            Some("patched")
        );
        assert_eq!(hard(&patched, "memory").as_deref(), Some("750Mi"));

        api.delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&selector),
        )
        .await
        .expect("delete a collection of ResourceQuotas");
        match api.get(name).await {
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            other => panic!("Expected `not found` error, got: {other:?}"),
        }
    });
}
