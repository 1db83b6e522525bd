//! End to end: `skiff killall` and `skiff uninstall` on a real node (root, runc, nft;
//! under `CI=true` a missing prerequisite fails), in a network namespace of its own.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A Deployment of two pods, one with a memory-backed emptyDir (a tmpfs mount under the
/// data dir), behind a Service (nftables rules).
const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 2
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox:test
        command: ["sh", "-c", "echo up > /cache/index.html; exec httpd -f -p 8080 -h /cache"]
        volumeMounts: [{name: cache, mountPath: /cache}]
      volumes:
      - name: cache
        emptyDir: {medium: Memory}
---
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  selector: {app: app}
  ports: [{port: 80, targetPort: 8080}]
"#;

fn cluster() -> Option<node::NodeCluster> {
    let why = node::skip_reason().or_else(|| {
        let nft = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("nft").is_file()));
        (!nft).then(|| "needs nft".to_string())
    });
    match why {
        Some(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("prerequisite missing under CI=true: {why}")
        }
        Some(why) => {
            eprintln!("skipped: {why}");
            None
        }
        None => Some(node::NodeCluster::start()),
    }
}

/// When the app's containers started, per the API, once both pods are Ready with a
/// running container on disk each; `None` before.
fn running(c: &node::NodeCluster) -> Option<Vec<String>> {
    let pods = c.json(&["get", "pods", "-l", "app=app"]);
    let items = pods["items"].as_array()?;
    let ready: Vec<String> = items
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .filter_map(|p| {
            p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
                .as_str()
                .map(String::from)
        })
        .collect();
    let ids = c.container_ids();
    let on_disk = ids.len() == 2
        && ids.iter().all(|id| {
            let pid = c
                .dir
                .path()
                .join("runtime/containers")
                .join(id)
                .join("init.pid");
            std::fs::read_to_string(pid)
                .ok()
                .and_then(|p| p.trim().parse().ok())
                .is_some_and(alive)
        });
    (ready.len() == 2 && on_disk).then_some(ready)
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped by its parent) runs nothing.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Every live process whose command line names `dir`.
fn processes_of(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| alive(*pid) && *pid != std::process::id())
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            line.contains(&needle).then(|| format!("{pid}: {line}"))
        })
        .collect()
}

fn nft_tables(c: &node::NodeCluster) -> String {
    let out = c.in_netns("nft").args(["list", "tables"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skiff(c: &node::NodeCluster, args: &[&str]) -> std::process::Output {
    c.in_netns(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .output()
        .expect("run skiff")
}

#[test]
fn killall_leaves_nothing_of_skiff_and_a_restart_runs_the_pods_again() {
    let Some(mut c) = cluster() else { return };
    let dir: PathBuf = c.dir.path().to_path_buf();
    let dir_arg = dir.to_string_lossy().into_owned();
    c.node_name();
    c.load_busybox("busybox:test");
    c.kubectl_in(&["apply", "-f", "-"], APP);
    let started = c.wait_for("the app's pods to run", Duration::from_secs(60), || {
        running(&c)
    });
    let settings = skiff_node::cleanup::NodeSettings::load(&dir).expect("the node's settings");
    let init_pids: Vec<u32> = c
        .container_ids()
        .iter()
        .map(|id| c.container_pid(id))
        .collect();
    let ipam = std::fs::read_to_string(dir.join("network/ipam.json")).expect("ipam.json");
    let netns: Vec<String> = serde_json::from_str::<serde_json::Value>(&ipam).unwrap()["pods"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["netns"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(netns.len(), 2, "{ipam}");
    let mountinfo = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!skiff_node::cleanup::mounts_under(&mountinfo(), &dir).is_empty());
    c.wait_for("the proxy's table", Duration::from_secs(10), || {
        nft_tables(&c).contains("skiff-proxy").then_some(())
    });

    let out = skiff(&c, &["killall", "--data-dir", &dir_arg]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "killall: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("stopped skiff process"), "{stdout}");
    c.crash(); // reaps the server the test started

    // ps: no server, shim or container of this node.
    assert_eq!(processes_of(&dir), Vec::<String>::new());
    for pid in &init_pids {
        assert!(!alive(*pid), "container process {pid} still runs");
    }
    // mount: nothing under the data dir.
    assert_eq!(
        skiff_node::cleanup::mounts_under(&mountinfo(), &dir),
        Vec::<PathBuf>::new()
    );
    // ip netns: no pod network namespace.
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for ns in &netns {
        assert!(!listed.contains(ns.as_str()), "{ns} still in:\n{listed}");
    }
    // nft list tables: no skiff table; and no bridge.
    assert!(!nft_tables(&c).contains("skiff"), "{}", nft_tables(&c));
    let bridge = c
        .in_netns("ip")
        .args(["link", "show", "dev", &settings.bridge])
        .output()
        .unwrap();
    assert!(!bridge.status.success(), "the bridge is still there");
    // The cgroup tree: no parent cgroup in any hierarchy.
    let roots = std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten();
    for root in roots
        .map(|e| e.path())
        .chain([PathBuf::from("/sys/fs/cgroup")])
    {
        let parent = root.join(&settings.cgroup_parent);
        assert!(!parent.exists(), "{} still exists", parent.display());
    }
    // A second killall finds nothing to do and says so without failing.
    let again = skiff(&c, &["killall", "--data-dir", &dir_arg]);
    assert!(again.status.success(), "{again:?}");

    // A server on the same data dir runs the pods again, from the API.
    c.boot();
    let restarted = c.wait_for(
        "the app's pods to run again",
        Duration::from_secs(60),
        || running(&c).filter(|now| now.iter().all(|t| !started.contains(t))),
    );
    assert_eq!(restarted.len(), 2);

    // uninstall refuses what is not a data dir, and leaves it alone.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("keep"), "x").unwrap();
    let refused = skiff(
        &c,
        &["uninstall", "--data-dir", &other.path().to_string_lossy()],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a skiff data dir"),
        "{refused:?}"
    );
    assert!(other.path().join("keep").exists());

    // uninstall: the same clean-up, then the data dir is gone.
    let out = skiff(&c, &["uninstall", "--data-dir", &dir_arg]);
    assert!(
        out.status.success(),
        "uninstall: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    c.crash();
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert_eq!(processes_of(&dir), Vec::<String>::new());
    assert!(!nft_tables(&c).contains("skiff"));
}
