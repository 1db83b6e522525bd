//! End to end: the node pulls images from a real registry (Debian's `docker-registry`,
//! the CNCF distribution server) on loopback inside the test's network namespace, filled
//! with `skopeo`; pull policies, failures and events as upstream kubelet shows them.
//! Root only, and skipped with a message when the registry or skopeo is missing.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// The test's network namespace is its own, so this port is free in it.
const PORT: u16 = 5000;

fn skip_reason() -> Option<String> {
    if let Some(why) = node::skip_reason() {
        return Some(why);
    }
    if !Path::new(REGISTRY_BIN).exists() {
        return Some("needs docker-registry (apt-get install docker-registry)".into());
    }
    let skopeo = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("skopeo").is_file()));
    if !skopeo {
        return Some("needs skopeo (apt-get install skopeo)".into());
    }
    None
}

/// A registry process in the cluster's namespace, killed on drop (also when a test fails).
struct Registry {
    child: Child,
    log: PathBuf,
}

impl Registry {
    fn start(c: &node::NodeCluster) -> Registry {
        let dir = c.dir.path().join("registry");
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{PORT}\n",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let log = dir.join("registry.log");
        let child = c
            .in_netns(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start docker-registry");
        let registry = Registry { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.http_get("127.0.0.1", PORT, "/v2/").is_none() {
            assert!(
                Instant::now() < deadline,
                "registry not up: {}",
                std::fs::read_to_string(&registry.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// `skopeo copy` of an OCI archive to `127.0.0.1:PORT/<name>`; the pushed manifest's
    /// digest.
    fn push(&self, c: &node::NodeCluster, archive: &[u8], name: &str) -> String {
        let path = c
            .dir
            .path()
            .join(format!("push-{}.tar", name.replace([':', '/'], "-")));
        std::fs::write(&path, archive).unwrap();
        let digest_file = path.with_extension("digest");
        let out = c
            .in_netns("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false", "--digestfile"])
            .arg(&digest_file)
            .arg(format!("oci-archive:{}", path.display()))
            .arg(format!("docker://127.0.0.1:{PORT}/{name}"))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy: {}\nregistry log: {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        std::fs::read_to_string(&digest_file)
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The busybox test image plus a `/version` file, so two pushes under one tag differ.
fn versioned_busybox(version: &str) -> Vec<u8> {
    use skiff_node::testing::{busybox_layer, oci_archive, LayerBuilder, TestImageConfig};
    let extra = LayerBuilder::new()
        .file("version", 0o644, format!("{version}\n").as_bytes())
        .finish();
    let cfg = TestImageConfig {
        cmd: vec!["sh".into()],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        ..Default::default()
    };
    oci_archive(
        &format!("busybox:{version}"),
        &[busybox_layer().expect("busybox layer"), extra],
        &cfg,
    )
}

fn node_name(c: &node::NodeCluster) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let nodes = c.json(&["get", "nodes"]);
        if let Some(name) = nodes["items"][0]["metadata"]["name"].as_str() {
            return name.to_string();
        }
        assert!(Instant::now() < deadline, "no node:\n{}", c.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pod_yaml(name: &str, node: &str, image: &str, policy: Option<&str>) -> String {
    let policy = policy
        .map(|p| format!("    imagePullPolicy: {p}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {image}\n\
         {policy}    command: [\"sh\", \"-c\", \"cat /version; exec sleep 3600\"]\n"
    )
}

fn running(pod: &serde_json::Value) -> bool {
    pod["status"]["containerStatuses"][0]["state"]["running"].is_object()
}

fn waiting_reason(pod: &serde_json::Value) -> &str {
    pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or_default()
}

fn image_id(pod: &serde_json::Value) -> String {
    pod["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `reason: message` of the events about `pod`.
fn events(c: &node::NodeCluster, pod: &str) -> Vec<String> {
    let list = c.json(&["get", "events"]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == pod)
        .map(|e| {
            format!(
                "{}: {}",
                e["reason"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn wait_event(c: &node::NodeCluster, pod: &str, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let all = events(c, pod);
        if let Some(e) = all.iter().find(|e| e.starts_with(prefix)) {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no event {prefix:?} for {pod}: {all:#?}\nserver log:\n{}",
            c.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn logs(c: &node::NodeCluster, pod: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = c.kubectl_output(&["logs", pod], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !text.is_empty() {
            return text;
        }
        assert!(Instant::now() < deadline, "no logs from {pod}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pods_pull_from_a_registry_by_policy_and_report_failures_and_digests() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = node::NodeCluster::start();
    let registry = Registry::start(&c);
    let v1 = registry.push(&c, &versioned_busybox("v1"), "busybox:v1");
    let node = node_name(&c);
    let image = format!("127.0.0.1:{PORT}/busybox:v1");

    // A pulled image runs, and the status names exactly what was pulled.
    let applied = Instant::now();
    c.kubectl_in(
        &["apply", "-f", "-"],
        &pod_yaml("first", &node, &image, None),
    );
    let pod = c.wait_pod("first", Duration::from_secs(30), running);
    eprintln!("apply to running, with the pull: {:?}", applied.elapsed());
    assert_eq!(image_id(&pod), format!("127.0.0.1:{PORT}/busybox@{v1}"));
    assert_eq!(
        pod["status"]["containerStatuses"][0]["image"],
        image.as_str()
    );
    assert_eq!(logs(&c, "first"), "v1\n");
    wait_event(&c, "first", &format!("Pulling: Pulling image \"{image}\""));
    let pulled = wait_event(
        &c,
        "first",
        &format!("Pulled: Successfully pulled image \"{image}\" in "),
    );
    eprintln!("{pulled}");
    assert!(
        pulled.contains("including waiting). Image size: "),
        "{pulled}"
    );

    // A tag the registry does not have: ErrImagePull with its error, then back-off.
    let missing = format!("127.0.0.1:{PORT}/busybox:nope");
    c.kubectl_in(
        &["apply", "-f", "-"],
        &pod_yaml("missing", &node, &missing, None),
    );
    let pod = c.wait_pod("missing", Duration::from_secs(15), |p| {
        waiting_reason(p) == "ErrImagePull"
    });
    let message = pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains(&format!("{missing}: not found")),
        "{message}"
    );
    c.wait_pod("missing", Duration::from_secs(15), |p| {
        waiting_reason(p) == "ImagePullBackOff"
    });
    let failed = wait_event(
        &c,
        "missing",
        &format!("Failed: Failed to pull image \"{missing}\": "),
    );
    assert!(failed.contains("not found"), "{failed}");
    wait_event(
        &c,
        "missing",
        &format!("BackOff: Back-off pulling image \"{missing}\""),
    );

    // `Never` does not pull a missing image.
    let absent = format!("127.0.0.1:{PORT}/busybox:absent");
    c.kubectl_in(
        &["apply", "-f", "-"],
        &pod_yaml("never", &node, &absent, Some("Never")),
    );
    let pod = c.wait_pod("never", Duration::from_secs(15), |p| {
        waiting_reason(p) == "ErrImageNeverPull"
    });
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        format!("Container image \"{absent}\" is not present with pull policy of Never").as_str()
    );
    wait_event(&c, "never", "ErrImageNeverPull: Container image ");

    // The tag moves: `IfNotPresent` keeps what the node has, `Always` resolves it again.
    let v2 = registry.push(&c, &versioned_busybox("v2"), "busybox:v1");
    assert_ne!(v1, v2);
    c.kubectl_in(
        &["apply", "-f", "-"],
        &pod_yaml("cached", &node, &image, Some("IfNotPresent")),
    );
    let pod = c.wait_pod("cached", Duration::from_secs(30), running);
    assert_eq!(image_id(&pod), format!("127.0.0.1:{PORT}/busybox@{v1}"));
    assert_eq!(logs(&c, "cached"), "v1\n");
    wait_event(
        &c,
        "cached",
        &format!("Pulled: Container image \"{image}\" already present on machine"),
    );
    c.kubectl_in(
        &["apply", "-f", "-"],
        &pod_yaml("fresh", &node, &image, Some("Always")),
    );
    let pod = c.wait_pod("fresh", Duration::from_secs(30), running);
    assert_eq!(image_id(&pod), format!("127.0.0.1:{PORT}/busybox@{v2}"));
    assert_eq!(logs(&c, "fresh"), "v2\n");
    // Containers started before the move still report the image they run.
    let pod = c.json(&["get", "pod", "first"]);
    assert_eq!(image_id(&pod), format!("127.0.0.1:{PORT}/busybox@{v1}"));

    skiff_image_pull_fills_a_store_like_crictl_pull(&c, &registry);
}

/// `skiff image pull` into a store of its own, as `crictl pull` (run from the test of the
/// cluster whose registry it uses, since booting a cluster is the slow part).
fn skiff_image_pull_fills_a_store_like_crictl_pull(c: &node::NodeCluster, registry: &Registry) {
    let digest = registry.push(c, &versioned_busybox("v1"), "tools/busybox:v1");
    let data = tempfile::tempdir().unwrap();
    let pull = |reference: &str| {
        let started = Instant::now();
        let out = c
            .in_netns(env!("CARGO_BIN_EXE_skiff"))
            .args(["image", "pull", reference, "--data-dir"])
            .arg(data.path())
            .output()
            .expect("skiff image pull");
        (out, started.elapsed())
    };
    let (out, took) = pull(&format!("127.0.0.1:{PORT}/tools/busybox:v1"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("skiff image pull (busybox test image): {took:?}: {stdout}");
    assert!(
        stdout.contains(&format!("127.0.0.1:{PORT}/tools/busybox@{digest}")),
        "{stdout}"
    );
    let ls = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["image", "ls", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.contains(&format!("127.0.0.1:{PORT}/tools/busybox:v1")),
        "{ls}"
    );

    let (out, _) = pull(&format!("127.0.0.1:{PORT}/tools/busybox:nope"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
}
