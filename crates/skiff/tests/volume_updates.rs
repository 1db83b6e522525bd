//! End to end: configMap, secret, projected and downwardAPI volumes of a running pod follow
//! their sources (the kubelet's atomic writer, decision 0037), subPath mounts keep theirs
//! (root, runc; under `CI=true` a missing prerequisite fails).

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::time::{Duration, Instant};

const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello, size: "1"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: one}
---
apiVersion: v1
kind: Pod
metadata:
  name: reader
  labels: {tier: one}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:test
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: settings, mountPath: /etc/settings}
    - {name: settings, mountPath: /etc/greeting, subPath: greeting}
    - {name: creds, mountPath: /etc/creds}
    - {name: all, mountPath: /etc/all}
    - {name: info, mountPath: /etc/info}
  volumes:
  - name: settings
    configMap: {name: settings}
  - name: creds
    secret: {secretName: creds}
  - name: all
    projected:
      sources:
      - configMap: {name: settings, items: [{key: size, path: size}]}
      - secret: {name: creds}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
"#;

fn cat(c: &node::NodeCluster, path: &str) -> String {
    let out = c.kubectl_output(&["exec", "reader", "--", "cat", path], None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How long until `path` in the pod reads `want` (at most 10 s).
fn shows(c: &node::NodeCluster, path: &str, want: &str) -> Duration {
    let started = Instant::now();
    c.wait_for(
        &format!("{path} to read {want:?}"),
        Duration::from_secs(10),
        || (cat(c, path) == want).then_some(()),
    );
    started.elapsed()
}

#[test]
fn mounted_sources_update_in_place_and_subpath_mounts_do_not() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start();
    let node = c.node_name();
    c.load_busybox("busybox:test");
    c.kubectl_in(&["apply", "-f", "-"], &APP.replace("NODE", &node));
    c.wait_pod("reader", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Running"
    });
    assert_eq!(cat(&c, "/etc/settings/greeting"), "hello");
    assert_eq!(cat(&c, "/etc/greeting"), "hello");
    assert_eq!(cat(&c, "/etc/all/size"), "1");
    assert_eq!(cat(&c, "/etc/info/labels"), "tier=\"one\"");

    c.kubectl(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"greeting":"bonjour","size":"2"}}"#,
    ]);
    let took = shows(&c, "/etc/settings/greeting", "bonjour");
    eprintln!("configMap volume updated after {took:?}");
    shows(&c, "/etc/all/size", "2");
    // The kubelet's layout: the file is a link through `..data`.
    let ls = c.kubectl(&["exec", "reader", "--", "ls", "-la", "/etc/settings"]);
    assert!(ls.contains("..data ->"), "{ls}");
    assert!(ls.contains("greeting -> ..data/greeting"), "{ls}");

    c.kubectl(&[
        "patch",
        "secret",
        "creds",
        "-p",
        r#"{"stringData":{"password":"two"}}"#,
    ]);
    shows(&c, "/etc/creds/password", "two");
    shows(&c, "/etc/all/password", "two");

    c.kubectl(&["label", "pod", "reader", "tier=two", "--overwrite"]);
    shows(&c, "/etc/info/labels", "tier=\"two\"");

    // A key removed goes from the volume.
    c.kubectl(&[
        "patch",
        "configmap",
        "settings",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/size"}]"#,
    ]);
    c.wait_for("size to go", Duration::from_secs(10), || {
        let ls = c.kubectl(&["exec", "reader", "--", "ls", "/etc/settings"]);
        (!ls.contains("size")).then_some(())
    });
    // subPath mounts keep what they mounted, as upstream.
    assert_eq!(cat(&c, "/etc/greeting"), "hello");
}
