//! End to end: containers get what their securityContext asks on a real node with runc
//! (root only; skipped with a message otherwise): user and groups with fsGroup-owned
//! volumes, capabilities over containerd's default set, seccomp RuntimeDefault (skiff's
//! default), Unconfined and Localhost, no_new_privs, a read-only root, privileged, and
//! runAsNonRoot refused with the kubelet's CreateContainerConfigError.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::time::{Duration, Instant};

/// containerd's default capabilities as a mask: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL,
/// SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE,
/// SETFCAP (Docker's well-known `00000000a80425fb`).
const DEFAULT_CAPS: u64 = 0xa804_25fb;
const CAP_NET_ADMIN: u64 = 1 << 12;

/// The logs of one container once its script printed `END`.
fn logs(c: &node::NodeCluster, pod: &str, container: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.kubectl_output(&["logs", pod, "-c", container], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("END") {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no END in the logs of {pod}/{container}: {text}{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            c.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of `field` in a `/proc/self/status` dump.
fn status_field<'a>(text: &'a str, field: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {field} in {text}"))
}

fn cap_eff(text: &str) -> u64 {
    u64::from_str_radix(status_field(text, "CapEff"), 16).expect("hex CapEff")
}

/// Prints the process's security state, then idles.
const REPORT: &str = "grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status; ";

#[test]
fn user_groups_and_fs_group_owned_volumes() {
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    let node = c.node_name();
    c.kubectl_in(
        &["apply", "-f", "-"],
        &format!(
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: conf}}
data: {{key: value}}
---
apiVersion: v1
kind: Pod
metadata: {{name: ids}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  securityContext: {{runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000]}}
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: conf, configMap: {{name: conf}}}}
  containers:
  - name: app
    image: busybox:test
    command: ["sh", "-c", "id; busybox stat -c 'scratch %g %A' /scratch; touch /scratch/f && busybox stat -c 'file %g' /scratch/f; busybox stat -L -c 'conf %g' /conf/key; echo END; sleep 3600"]
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: conf, mountPath: /conf}}
"#
        ),
    );
    let out = logs(&c, "ids", "app");
    let id = out.lines().next().unwrap_or_default();
    assert!(id.starts_with("uid=1000 gid=3000 groups="), "{out}");
    let groups = id.split("groups=").nth(1).unwrap_or_default();
    assert!(groups.contains("2000") && groups.contains("4000"), "{out}");
    // The emptyDir is the fsGroup's, setgid, so the file made in it is too.
    assert!(out.contains("scratch 2000 drwxrwsrwx"), "{out}");
    assert!(out.contains("file 2000"), "{out}");
    assert!(out.contains("conf 2000"), "{out}");
}

#[test]
fn capabilities_seccomp_and_privileges() {
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    let node = c.node_name();
    let dir = c.dir.path().join("seccomp");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let unshare = "busybox unshare -U true && echo unshare=ok || echo unshare=denied; ";
    let container = |name: &str, sc: &str, script: &str| {
        format!(
            "  - name: {name}\n    image: busybox:test\n    securityContext: {sc}\n    command: [\"sh\", \"-c\", \"{REPORT}{script}echo END; sleep 3600\"]\n"
        )
    };
    let mut pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: confined}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 0\n  containers:\n"
    );
    pod += &container("default", "{}", unshare);
    pod += &container("dropall", "{capabilities: {drop: [ALL]}}", "");
    pod += &container("netadmin", "{capabilities: {add: [NET_ADMIN]}}", "");
    pod += &container(
        "unconfined",
        "{seccompProfile: {type: Unconfined}}",
        unshare,
    );
    pod += &container(
        "localhost",
        "{seccompProfile: {type: Localhost, localhostProfile: no-mkdir.json}}",
        "mkdir /tmp/d && echo mkdir=ok || echo mkdir=denied; ",
    );
    pod += &container("nnp", "{allowPrivilegeEscalation: false}", "");
    pod += &container(
        "readonly",
        "{readOnlyRootFilesystem: true}",
        "touch /x && echo root=writable || echo root=readonly; ",
    );
    pod += &container("privileged", "{privileged: true}", "");
    c.kubectl_in(&["apply", "-f", "-"], &pod);

    // Default: containerd's set, the RuntimeDefault filter, which refuses unshare(2).
    let out = logs(&c, "confined", "default");
    assert_eq!(cap_eff(&out), DEFAULT_CAPS, "{out}");
    assert_eq!(
        u64::from_str_radix(status_field(&out, "CapBnd"), 16).unwrap(),
        DEFAULT_CAPS,
        "{out}"
    );
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000000", "{out}");
    assert_eq!(status_field(&out, "Seccomp"), "2", "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0", "{out}");
    assert!(out.contains("unshare=denied"), "{out}");

    let out = logs(&c, "confined", "dropall");
    assert_eq!(cap_eff(&out), 0, "{out}");
    let out = logs(&c, "confined", "netadmin");
    assert_eq!(cap_eff(&out), DEFAULT_CAPS | CAP_NET_ADMIN, "{out}");

    // Unconfined: no filter, the same call goes through.
    let out = logs(&c, "confined", "unconfined");
    assert_eq!(status_field(&out, "Seccomp"), "0", "{out}");
    assert!(out.contains("unshare=ok"), "{out}");

    let out = logs(&c, "confined", "localhost");
    assert_eq!(status_field(&out, "Seccomp"), "2", "{out}");
    assert!(out.contains("mkdir=denied"), "{out}");

    let out = logs(&c, "confined", "nnp");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1", "{out}");

    let out = logs(&c, "confined", "readonly");
    assert!(out.contains("root=readonly"), "{out}");

    // Privileged: every capability the node itself holds (the test runs as the same
    // root), no filter.
    let out = logs(&c, "confined", "privileged");
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        cap_eff(&out),
        u64::from_str_radix(status_field(&own, "CapBnd"), 16).unwrap(),
        "{out}"
    );
    assert_eq!(status_field(&out, "Seccomp"), "0", "{out}");
}

#[test]
fn run_as_non_root_refuses_a_root_image_with_create_container_config_error() {
    use skiff_node::testing::{busybox_layer, oci_archive, TestImageConfig};
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    let cfg = TestImageConfig {
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into()],
        user: "1000".into(),
        ..Default::default()
    };
    c.load_image(&oci_archive(
        "busybox:user1000",
        &[busybox_layer().expect("busybox layer")],
        &cfg,
    ));
    let node = c.node_name();
    c.kubectl_in(
        &["apply", "-f", "-"],
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: rootimage}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  securityContext: {{runAsNonRoot: true}}
  containers:
  - {{name: app, image: "busybox:test", command: ["sleep", "3600"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: userimage}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  securityContext: {{runAsNonRoot: true}}
  containers:
  - {{name: app, image: "busybox:user1000", command: ["sh", "-c", "id; echo END; sleep 3600"]}}
"#
        ),
    );
    let pod = c.wait_pod("rootimage", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CreateContainerConfigError"
    });
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        format!(
            "container has runAsNonRoot and image will run as root (pod: \"rootimage_default({uid})\", container: app)"
        ),
        "{pod:#}"
    );
    let table = c.kubectl(&["get", "pod", "rootimage"]);
    assert!(table.contains("CreateContainerConfigError"), "{table}");

    // The image's own user is honoured and passes the check.
    let out = logs(&c, "userimage", "app");
    assert!(out.starts_with("uid=1000 gid=0"), "{out}");
}

/// Figure: how long pods take to start with the RuntimeDefault filter and without,
/// alternating, so both see the same machine.
#[test]
fn pod_start_time_with_and_without_seccomp() {
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    let node = c.node_name();
    let mut times: [Vec<Duration>; 2] = [vec![], vec![]];
    for round in 0..5 {
        for (i, profile) in ["RuntimeDefault", "Unconfined"].iter().enumerate() {
            let name = format!("start-{}-{round}", profile.to_lowercase());
            let started = Instant::now();
            c.kubectl_in(
                &["apply", "-f", "-"],
                &format!(
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 0\n  securityContext: {{seccompProfile: {{type: {profile}}}}}\n  containers:\n  - {{name: app, image: busybox:test, command: [sleep, '3600']}}\n"
                ),
            );
            c.wait_pod(&name, Duration::from_secs(30), |p| {
                p["status"]["containerStatuses"][0]["state"]["running"].is_object()
            });
            times[i].push(started.elapsed());
            c.kubectl(&["delete", "pod", &name, "--wait=false"]);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (with, without) = (median(&mut times[0]), median(&mut times[1]));
    eprintln!(
        "pod start (apply to Running), median of 5: RuntimeDefault {with:?}, Unconfined {without:?}; all: {times:?}"
    );
}

/// The API refuses a bad securityContext with upstream's 422 before any node sees it
/// (decision 0045): kubectl prints upstream's field paths and messages, and nothing is
/// stored. Needs no node, so it runs as any user.
#[test]
fn bad_security_contexts_are_refused_with_upstreams_422() {
    let c = common::Cluster::start();
    let pod = |sc: &str, pod_sc: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: bad}}\nspec:\n  securityContext: {pod_sc}\n  containers:\n  - name: app\n    image: busybox\n    securityContext: {sc}\n"
        )
    };
    let cases = [
        (
            pod("{runAsUser: -1}", "{}"),
            "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
        ),
        (
            pod("{allowPrivilegeEscalation: false, privileged: true}", "{}"),
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ),
        (
            pod("{seccompProfile: {type: Localhost}}", "{}"),
            "spec.containers[0].securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost",
        ),
        (
            pod("{procMount: Unmasked}", "{}"),
            "spec.containers[0].securityContext.procMount: Invalid value: \"Unmasked\": `hostUsers` must be false to use `Unmasked`",
        ),
        (
            pod("{appArmorProfile: {type: Localhost}}", "{}"),
            "spec.containers[0].securityContext.appArmorProfile.localhostProfile: Required value: must be set when AppArmor type is Localhost",
        ),
        (
            pod("{}", "{sysctls: [{name: 'bad..name', value: '1'}]}"),
            "spec.securityContext.sysctls[0].name: Invalid value: \"bad..name\": must have at most 253 characters",
        ),
        (
            pod("{}", "{fsGroup: 2147483648}"),
            "spec.securityContext.fsGroup: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive",
        ),
    ];
    for (manifest, want) in cases {
        let err = c.kubectl_err(&["apply", "-f", "-"], Some(&manifest));
        assert!(
            err.contains("The Pod \"bad\" is invalid") && err.contains(want),
            "{manifest}\nwanted {want}\ngot {err}"
        );
    }
    // The 422 itself, as a client sees it, and nothing was stored.
    let out = c.kubectl_output(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods",
            "-f",
            "-",
            "-v=6",
        ],
        Some(
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad"},"spec":{"containers":[{"name":"app","image":"busybox","securityContext":{"runAsGroup":-3}}]}}"#,
        ),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("422 Unprocessable Entity"), "{stderr}");
    let listed = c.json(&["get", "pods"]);
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
}

/// AppArmor as the kubelet and containerd (decision 0045). On a host without AppArmor (no
/// `Y` in /sys/module/apparmor/parameters/enabled) a pod asking for a profile is refused
/// by the node's admission: phase Failed, reason `AppArmor`, the kubelet's message, a
/// Warning event, and no container made; a pod asking for Unconfined runs. On a host with
/// AppArmor the RuntimeDefault pod runs confined by skiff's default profile instead.
#[test]
fn apparmor_profiles_are_enforced_or_the_pod_is_refused() {
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    let node = c.node_name();
    let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.starts_with('Y'));
    c.kubectl_in(
        &["apply", "-f", "-"],
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: confined}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  restartPolicy: Never
  containers:
  - name: app
    image: busybox:test
    command: [sh, -c, "cat /proc/self/attr/current; echo; echo END; sleep 3600"]
    securityContext: {{appArmorProfile: {{type: RuntimeDefault}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: unconfined}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  securityContext: {{appArmorProfile: {{type: Unconfined}}}}
  containers:
  - name: app
    image: busybox:test
    command: [sh, -c, "echo END; sleep 3600"]
"#
        ),
    );
    c.wait_logs("unconfined", "END", Duration::from_secs(60));
    if enabled {
        let text = c.wait_logs("confined", "END", Duration::from_secs(60));
        assert!(text.contains("skiff-default (enforce)"), "{text}");
        return;
    }
    let status = c.wait_for("the pod to be refused", Duration::from_secs(30), || {
        let pod = c.json(&["get", "pod", "confined"]);
        (pod["status"]["phase"] == "Failed").then(|| pod["status"].clone())
    });
    assert_eq!(status["reason"], "AppArmor", "{status}");
    assert_eq!(
        status["message"],
        "Pod was rejected: Cannot enforce AppArmor: AppArmor is not enabled on the host",
        "{status}"
    );
    let events = c.wait_for("the AppArmor event", Duration::from_secs(30), || {
        let text = c.kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=confined,reason=AppArmor",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        (!text.is_empty()).then_some(text)
    });
    assert_eq!(
        events,
        "Cannot enforce AppArmor: AppArmor is not enabled on the host"
    );
    // Nothing of the refused pod exists on the node.
    let ids = c.container_ids();
    // Container ids start with the pod uid's first 12 hex digits.
    let refused: String = c.json(&["get", "pod", "confined"])["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .filter(|ch| *ch != '-')
        .take(12)
        .collect();
    assert!(!ids.is_empty(), "the unconfined pod's container exists");
    assert!(
        !ids.iter().any(|id| id.starts_with(&refused)),
        "containers of a refused pod: {ids:?}"
    );
}
