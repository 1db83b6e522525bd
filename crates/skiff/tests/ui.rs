//! End-to-end: `skiff ui` in a real headless Chromium (Debian's, driven by Playwright through
//! crates/skiff-ui/browser/driver.py). A Deployment scaled 3 → 5 goes from reconciling to
//! converged on its card with the two pod creations on the timeline naming the controller;
//! a rollout shows two ReplicaSets trading pods; a user bound to one namespace sees only it.
//! These servers run without a node, so the test plays the kubelet's part: it marks pods
//! Running and Ready through `pods/status`, as a kubelet would.
//! The scaling and rollout checks run again in Debian's firefox-esr, driven by Puppeteer over
//! WebDriver BiDi (crates/skiff-ui/browser/driver-firefox.cjs, the same JSON lines).
//! Screenshots are kept under target/tmp/ui-screenshots (their paths are printed).
//! Under CI=true a missing chromium, firefox-esr, Playwright or Puppeteer fails the test.

mod common;
mod compat;

use common::Cluster;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

const CHROMIUM: &str = "/usr/bin/chromium";
const FIREFOX: &str = "/usr/bin/firefox-esr";

/// The browser driver's directory.
fn drivers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../skiff-ui/browser")
}

/// Headless Chromium, or why there is none (a failure under CI=true).
fn browser_or_skip() -> Option<Browser> {
    let python = compat::python_with("playwright");
    let why = match (&python, Path::new(CHROMIUM).exists()) {
        (Some(_), true) => None,
        (None, _) => Some("Playwright for Python"),
        (_, false) => Some("chromium (apt-get install chromium)"),
    };
    if let Some(what) = why {
        if let Some(failure) = compat::missing(what) {
            panic!("{failure}");
        }
        return None;
    }
    let mut driver = Command::new(python?);
    driver.arg(drivers().join("driver.py")).arg(CHROMIUM);
    Some(Browser::start(driver))
}

/// Headless Firefox (Debian's firefox-esr) through Puppeteer's WebDriver BiDi, or why there
/// is none (a failure under CI=true).
fn firefox_or_skip() -> Option<Browser> {
    let modules = compat::clients_dir().map(|d| d.join("node/node_modules"));
    let puppeteer = modules
        .as_ref()
        .filter(|m| m.join("puppeteer/package.json").is_file());
    let why = match (puppeteer, Path::new(FIREFOX).exists()) {
        (Some(_), true) => None,
        (None, _) => Some("Puppeteer (npm, in <clients>/node)"),
        (_, false) => Some("firefox-esr (apt-get install firefox-esr)"),
    };
    if let Some(what) = why {
        if let Some(failure) = compat::missing(what) {
            panic!("{failure}");
        }
        return None;
    }
    let mut driver = Command::new("node");
    driver
        .arg(drivers().join("driver-firefox.cjs"))
        .arg(FIREFOX)
        .env("NODE_PATH", puppeteer?);
    Some(Browser::start(driver))
}

/// A headless Chromium behind the JSON-lines driver; closed on drop.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    /// Starts a JSON-lines driver (driver.py or driver-firefox.cjs).
    fn start(mut driver: Command) -> Browser {
        let mut child = driver
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the browser driver");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut browser = Browser {
            child,
            stdin,
            stdout,
        };
        let hello = browser.read();
        assert_eq!(hello["ready"], true, "browser driver: {hello}");
        browser
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the driver");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("driver said {line:?}"))
    }

    /// Runs one command; panics with the driver's error.
    fn cmd(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").expect("write to the driver");
        let answer = self.read();
        assert_eq!(answer["ok"], true, "{cmd}: {answer}");
        if let Some(errors) = answer["errors"].as_array() {
            assert!(errors.is_empty(), "page errors: {errors:?}");
        }
        answer["value"].clone()
    }

    fn wait(&mut self, selector: &str) {
        self.cmd(json!({"op": "wait", "selector": selector, "timeout": 20000}));
    }

    /// Waits, in the page, until the JavaScript expression `js` is true: checked on every DOM
    /// change, not polled.
    fn wait_until(&mut self, js: &str) {
        self.cmd(json!({"op": "arm", "js": js}));
        self.cmd(json!({"op": "await", "timeout": 20000}));
    }

    fn text(&mut self, selector: &str) -> String {
        self.cmd(json!({"op": "text", "selector": selector}))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn count(&mut self, selector: &str) -> u64 {
        self.cmd(json!({"op": "count", "selector": selector}))
            .as_u64()
            .unwrap_or(0)
    }

    fn screenshot(&mut self, name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(name);
        self.cmd(json!({"op": "screenshot", "path": path, "full": true}));
        println!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "close"}));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `skiff ui`; killed on drop.
struct Ui {
    child: Child,
    url: String,
}

impl Ui {
    fn start(kubeconfig: &Path) -> Ui {
        let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["ui", "--kubeconfig"])
            .arg(kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start skiff ui");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read skiff ui's URL");
        let url = line
            .trim()
            .strip_prefix("skiff ui: serving ")
            .unwrap_or_else(|| panic!("skiff ui printed {line:?}"))
            .to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Ui { child, url }
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn deployment(ns: &str, name: &str, replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  strategy: {{rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: web, image: \"{image}\"}}]
"
    )
}

/// Pod addresses handed out by [`mark_ready`], one per pod.
static NEXT_IP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(10);

/// Plays the kubelet: every pod of `app` in `ns` that exists, is not going and is not yet
/// Ready becomes Running and Ready, with an address of its own. Returns how many it changed.
fn mark_ready(c: &Cluster, ns: &str, app: &str) -> usize {
    let pods = c.json(&["get", "pods", "-n", ns, "-l", &format!("app={app}")]);
    let mut changed = 0;
    for pod in pods["items"].as_array().into_iter().flatten() {
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if ready || pod["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        let name = pod["metadata"]["name"].as_str().unwrap();
        let n = NEXT_IP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ip = format!("10.244.{}.{}", n / 250, n % 250 + 2);
        let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [
            {"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
            "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0,
                "image": pod["spec"]["containers"][0]["image"], "imageID": "",
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}});
        c.kubectl(&[
            "patch",
            "pod",
            name,
            "-n",
            ns,
            "--subresource=status",
            "--type=strategic",
            "-p",
            &status.to_string(),
        ]);
        changed += 1;
    }
    changed
}

fn pod_count(c: &Cluster, ns: &str, app: &str) -> usize {
    c.json(&["get", "pods", "-n", ns, "-l", &format!("app={app}")])["items"]
        .as_array()
        .map_or(0, |a| a.len())
}

/// Waits for a condition on the cluster (the test's side, not the page's).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

const CARD: &str = "#n_Deployment_default_web";

/// A Service for the Deployment's pods and a Gateway routing to it.
const FRONT_DOOR: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: front, namespace: default}
spec:
  gatewayClassName: skiff
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: front}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
";

#[test]
fn scaling_3_to_5_shows_the_gap_closing_and_the_controller_actions() {
    let Some(mut browser) = browser_or_skip() else {
        return;
    };
    scaling_and_rollout(&mut browser, "");
}

/// The same page checks as in Chromium, in Firefox.
#[test]
fn firefox_shows_the_same_scaling_and_rollout() {
    let Some(mut browser) = firefox_or_skip() else {
        return;
    };
    scaling_and_rollout(&mut browser, "firefox-");
}

/// Scale 3 → 5, the YAML view, search, a rollout, Service and Gateway trees and the lost
/// stream, in `browser`; screenshots are named with `shots` first.
fn scaling_and_rollout(browser: &mut Browser, shots: &str) {
    let c = Cluster::start();
    c.kubectl_in(
        &["apply", "-f", "-"],
        &deployment("default", "web", 3, "nginx:1.25"),
    );
    eventually("3 pods", || {
        (pod_count(&c, "default", "web") == 3).then_some(())
    });
    mark_ready(&c, "default", "web");

    let ui = Ui::start(&c.kubeconfig());
    browser.cmd(json!({"op": "goto", "url": ui.url}));
    browser.wait(&format!("{CARD}[data-state=converged]"));
    assert_eq!(browser.text(&format!("{CARD} > .self .desired dd")), "3");
    // The tree: Deployment → ReplicaSet → 3 pods → their container (each kind arrives on
    // its own watch, so the card may converge before the tree is complete).
    eventually("the ReplicaSet and its 3 pods in the tree", || {
        (browser.count(&format!("{CARD} li.k-ReplicaSet")) == 1
            && browser.count(&format!("{CARD} li.k-ReplicaSet li.k-Pod")) == 3)
            .then_some(())
    });
    assert_eq!(browser.count(&format!("{CARD} li.k-Pod .containers li")), 3);

    c.kubectl(&["scale", "deployment", "web", "--replicas=5"]);
    // Reconciling: 5 desired, 3 ready.
    browser.wait_until(&format!(
        "document.querySelector('{CARD}')?.dataset.state === 'reconciling' && \
         document.querySelector('{CARD} > .self .desired dd')?.textContent === '5' && \
         document.querySelector('{CARD} > .self .ready dd')?.textContent === '3'"
    ));
    // The two creations on the timeline, naming the controller and the gap each closed.
    browser.wait_until(
        "[...document.querySelectorAll('#timeline li')].filter(l => \
         /replicaset-controller created pod web-\\S+ — desired 5, actual [34]/.test(l.textContent)).length === 2",
    );
    let timeline = browser.text("#timeline");
    // The user's change of the setpoint, named by its field manager.
    assert!(
        timeline.contains("kubectl scaled deployment web: replicas 3 → 5")
            || timeline.contains("kubectl-scale scaled deployment web: replicas 3 → 5"),
        "{timeline}"
    );
    assert!(timeline.contains("desired 5, actual 3"), "{timeline}");
    assert!(timeline.contains("desired 5, actual 4"), "{timeline}");
    browser.screenshot(&format!("{shots}scale-reconciling.png"));

    eventually("5 pods", || {
        (pod_count(&c, "default", "web") == 5).then_some(())
    });
    assert_eq!(mark_ready(&c, "default", "web"), 2);
    browser.wait_until(&format!(
        "document.querySelector('{CARD}')?.dataset.state === 'converged' && \
         document.querySelector('{CARD} > .self .ready dd')?.textContent === '5'"
    ));
    assert_eq!(
        browser.count(&format!("{CARD} li.k-Pod[data-state=converged]")),
        5
    );
    browser.screenshot(&format!("{shots}scale-converged.png"));

    // Click-through: desired (spec) and actual (status) side by side; Escape closes it.
    browser.cmd(json!({"op": "eval", "js": format!(
        "document.querySelector('{CARD} > .self button.name').focus()")}));
    browser.cmd(json!({"op": "press", "key": "Enter"}));
    browser.wait("dialog#yaml[open]");
    let yaml = browser.text("#yaml-body");
    let (desired, actual) = yaml.split_once("Actual (status)").expect("two sides");
    assert!(desired.contains("replicas: 5"), "{desired}");
    assert!(!desired.contains("readyReplicas"), "{desired}");
    assert!(actual.contains("readyReplicas: 5"), "{actual}");
    assert!(!yaml.contains("managedFields"));
    browser.cmd(json!({"op": "press", "key": "Escape"}));
    browser.wait_until("!document.querySelector('dialog#yaml').open");

    // Search and namespace filter hide what does not match.
    browser.cmd(json!({"op": "fill", "selector": "#q", "value": "no-such-thing"}));
    assert_eq!(browser.count(&format!("{CARD}:visible")), 0);
    browser.cmd(json!({"op": "fill", "selector": "#q", "value": "nginx:1.25"}));
    assert_eq!(browser.count(&format!("{CARD}:visible")), 1);
    browser.cmd(json!({"op": "fill", "selector": "#q", "value": ""}));

    // A rollout: two ReplicaSets trade pods, new up and old down, one surge pod at a time.
    c.kubectl(&["set", "image", "deployment/web", "web=nginx:1.27"]);
    browser.wait_until(&format!(
        "document.querySelectorAll('{CARD} li.k-ReplicaSet').length === 2"
    ));
    let mut traded = false;
    for _ in 0..60 {
        let rs = c.json(&["get", "rs", "-l", "app=web"]);
        let sizes: Vec<i64> = rs["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["spec"]["replicas"].as_i64().unwrap_or(0))
            .collect();
        // Mid-rollout: each ReplicaSet holds at least two pods.
        if sizes.len() == 2 && sizes.iter().all(|s| *s >= 2) && !traded {
            traded = true;
            browser.wait_until(&format!(
                "[...document.querySelectorAll('{CARD} li.k-ReplicaSet')].every(r => \
                 r.querySelectorAll('li.k-Pod').length >= 2)"
            ));
            let shot = browser.screenshot(&format!("{shots}rollout-in-progress.png"));
            if shots.is_empty() && std::env::var_os("SKIFF_UI_DOCS_SCREENSHOT").is_some() {
                let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ui.png");
                std::fs::copy(&shot, &docs).expect("copy the screenshot to docs/");
            }
        }
        let d = c.json(&["get", "deployment", "web"]);
        if d["status"]["updatedReplicas"] == 5
            && d["status"]["availableReplicas"] == 5
            && d["status"]["replicas"] == 5
        {
            break;
        }
        mark_ready(&c, "default", "web");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(traded, "the two ReplicaSets never both held pods");
    browser.wait_until(&format!(
        "document.querySelector('{CARD}')?.dataset.state === 'converged' && \
         document.querySelector('{CARD} > .self .images')?.textContent.includes('nginx:1.27')"
    ));
    let timeline = browser.text("#timeline");
    assert!(
        timeline.contains("deployment-controller scaled replicaset web-"),
        "{timeline}"
    );
    browser.screenshot(&format!("{shots}rollout-done.png"));

    // Service → EndpointSlice → pods, and Gateway → HTTPRoute → Service.
    eventually("the Gateway API", || {
        c.kubectl_output(
            &["get", "crd", "httproutes.gateway.networking.k8s.io"],
            None,
        )
        .status
        .success()
        .then_some(())
    });
    c.kubectl_in(&["apply", "-f", "-"], FRONT_DOOR);
    browser.wait_until(
        "document.querySelectorAll('#n_Service_default_web li.k-EndpointSlice .endpoints li.c-true').length === 5",
    );
    browser.wait("#n_Gateway_default_front li.k-HTTPRoute#n_HTTPRoute_default_web");
    let route = browser.text("#n_HTTPRoute_default_web .backends");
    assert!(route.contains("web:80"), "{route}");
    browser.screenshot(&format!("{shots}service-and-gateway.png"));

    // The page says so when its stream is gone (EventSource then keeps reconnecting).
    drop(ui);
    browser.wait_until("document.body.dataset.live === 'false'");
}

#[test]
fn a_user_bound_to_one_namespace_sees_only_it() {
    let Some(mut browser) = browser_or_skip() else {
        return;
    };
    let c = Cluster::start();
    for (ns, app) in [("team-a", "alpha"), ("team-b", "beta")] {
        c.kubectl(&["create", "namespace", ns]);
        c.kubectl_in(&["apply", "-f", "-"], &deployment(ns, app, 1, "busybox"));
    }
    let alice = c.dir.path().join("alice.kubeconfig");
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args([
            "kubeconfig",
            "--user",
            "alice",
            "--namespace",
            "team-a",
            "--data-dir",
        ])
        .arg(c.dir.path())
        .arg("-o")
        .arg(&alice)
        .output()
        .expect("run skiff kubeconfig");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.kubectl(&[
        "create",
        "rolebinding",
        "alice-view",
        "--clusterrole=view",
        "--user=alice",
        "-n",
        "team-a",
    ]);
    eventually("both pods", || {
        (pod_count(&c, "team-a", "alpha") == 1 && pod_count(&c, "team-b", "beta") == 1)
            .then_some(())
    });

    // The admin sees both namespaces.
    let admin = Ui::start(&c.kubeconfig());
    browser.cmd(json!({"op": "goto", "url": admin.url}));
    browser.wait("#n_Deployment_team-a_alpha li.k-Pod");
    browser.wait("#n_Deployment_team-b_beta li.k-Pod");
    drop(admin);

    // Alice sees team-a with its pods, nothing of team-b, and why.
    let ui = Ui::start(&alice);
    browser.cmd(json!({"op": "goto", "url": ui.url}));
    browser.wait("#n_Deployment_team-a_alpha li.k-Pod");
    browser.wait_until(
        "[...document.querySelectorAll('#notices li')].some(l => l.textContent.includes('Only namespace team-a'))",
    );
    assert_eq!(browser.count("[id*=_team-b_]"), 0);
    assert_eq!(browser.count("#ns option[value=team-b]"), 0);
    let events = browser.text("#timeline");
    assert!(!events.contains("beta"), "{events}");
    // Without the session token the server answers nothing, and only to its own Host.
    let port = ui
        .url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap();
    let status = |host: &str, path: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg(format!("Host: {host}"))
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(status(&format!("127.0.0.1:{port}"), "/events"), "401");
    assert_eq!(status("evil.example:80", "/"), "403");
    let token = ui.url.split("token=").nth(1).unwrap();
    assert_eq!(
        status(&format!("localhost:{port}"), &format!("/?token={token}")),
        "303"
    );
    browser.screenshot("rbac-team-a.png");
}

/// A CRD with a scale subresource: its objects are workloads like a Deployment.
const DATABASE_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: databases.ui.example.com}
spec:
  group: ui.example.com
  scope: Namespaced
  names: {plural: databases, singular: database, kind: Database}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.members, statusReplicasPath: .status.readyMembers}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {members: {type: integer}}}
          status: {type: object, properties: {readyMembers: {type: integer}}}
";

#[test]
fn a_custom_resource_with_a_scale_subresource_is_a_workload_card() {
    let Some(mut browser) = browser_or_skip() else {
        return;
    };
    let c = Cluster::start();
    let ui = Ui::start(&c.kubeconfig());
    browser.cmd(json!({"op": "goto", "url": ui.url}));
    // The CRD arrives after the page: the view picks the kind up from the CRD watch.
    c.kubectl_in(&["apply", "-f", "-"], DATABASE_CRD);
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/databases.ui.example.com",
    ]);
    c.kubectl_in(
        &["apply", "-f", "-"],
        "apiVersion: ui.example.com/v1
kind: Database
metadata: {name: pg, namespace: default}
spec: {members: 1}
",
    );
    // Its id names the group: a custom kind may share a built-in kind's name.
    let card = "[id='n_Database.ui.example.com_default_pg']";
    let state_is = |state: &str, desired: u32, actual: u32| {
        format!(
            "document.querySelector(\"{card}\")?.dataset.state === '{state}' && \
             document.querySelector(\"{card} > .self .desired dd\")?.textContent === '{desired}' && \
             document.querySelector(\"{card} > .self .ready dd\")?.textContent === '{actual}'"
        )
    };
    browser.wait_until(&state_is("reconciling", 1, 0));
    let status = |n: u32| {
        c.kubectl(&[
            "patch",
            "database",
            "pg",
            "--subresource=status",
            "--type=merge",
            "-p",
            &format!("{{\"status\":{{\"readyMembers\":{n}}}}}"),
        ]);
    };
    status(1);
    browser.wait_until(&state_is("converged", 1, 1));

    // Scaled through its scale subresource, as `kubectl scale` does a Deployment.
    c.kubectl(&["scale", "database", "pg", "--replicas=3"]);
    browser.wait_until(&state_is("reconciling", 3, 1));
    browser.wait_until(
        "[...document.querySelectorAll('#timeline li')].some(l => \
         /scaled database pg: replicas 1 → 3/.test(l.textContent))",
    );
    browser.screenshot("custom-resource-reconciling.png");

    // What its operator would make hangs under it: a Deployment it controls.
    let uid = c.json(&["get", "database", "pg"])["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_owned();
    let owned = deployment("default", "pg", 1, "postgres:16").replace(
        "metadata: {name: pg, namespace: default}",
        &format!(
            "metadata: {{name: pg, namespace: default, ownerReferences: [{{apiVersion: \
             ui.example.com/v1, kind: Database, name: pg, uid: {uid}, controller: true}}]}}"
        ),
    );
    c.kubectl_in(&["apply", "-f", "-"], &owned);
    browser.wait(&format!("{card} li.k-Deployment#n_Deployment_default_pg"));
    status(3);
    browser.wait_until(&state_is("converged", 3, 3));
    browser.screenshot("custom-resource-converged.png");

    // The CRD goes, its objects with it, and so does the card.
    c.kubectl(&["delete", "crd", "databases.ui.example.com"]);
    browser.wait_until(&format!("!document.querySelector(\"{card}\")"));
}
