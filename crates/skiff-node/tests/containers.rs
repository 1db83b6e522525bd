//! End-to-end: real containers under runc in pod sandboxes (needs root; skips otherwise).

mod common;

use skiff_node::runtime::{stop, ContainerState, Resources, Runtime};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn http_get(addr: SocketAddr, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        })();
        match attempt {
            Ok(body) if !body.is_empty() => return body,
            _ if Instant::now() > deadline => panic!("no HTTP answer from {addr}: {attempt:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn pod_serves_http_on_its_ip_and_containers_share_the_pod_network() {
    let node = node_or_skip!();
    let pod = node.sandbox("web");
    let ip = pod.ip().expect("pod ip");
    let httpd = node.spec("httpd", &pod, &["httpd", "-f", "-p", "80", "-h", "/www"]);
    node.run(&httpd);

    let body = http_get(SocketAddr::from((ip, 80)), Duration::from_secs(10));
    assert!(body.contains("hello from skiff"), "{body}");

    // A second container of the pod reaches the first on localhost and sees pod identity.
    let probe = node.spec(
        "probe",
        &pod,
        &[
            "sh",
            "-c",
            "wget -qO- http://127.0.0.1/index.html; hostname; cat /etc/hosts /etc/resolv.conf; \
             echo nofile=$(ulimit -n); grep NoNewPrivs /proc/self/status; \
             echo from-container > /data/out; echo to-stderr >&2",
        ],
    );
    let volume = tempfile::tempdir().unwrap();
    let mut probe = probe;
    // What a container with `allowPrivilegeEscalation: false` gets (upstream sets no flag
    // when the pod says nothing).
    probe.security.no_new_privileges = true;
    probe.mounts.push(skiff_node::runtime::Mount {
        host_path: volume.path().to_path_buf(),
        container_path: "/data".into(),
        read_only: false,
    });
    let id = node.run(&probe);
    let exit = node.wait_exit(&id, Duration::from_secs(10));
    let log = node.log_text(&probe);
    assert_eq!(exit.exit_code, 0, "{log}");
    assert_eq!(exit.reason, "Completed");
    assert!(log.contains(" stdout F hello from skiff\n"), "{log}");
    assert!(log.contains(" stdout F web\n"), "{log}");
    assert!(log.contains(&format!(" stdout F {ip}\tweb\n")), "{log}");
    assert!(log.contains(" stdout F nameserver 10.96.0.10\n"), "{log}");
    assert!(log.contains(" stderr F to-stderr\n"), "{log}");
    assert!(log.contains(" stdout F nofile=20000\n"), "{log}");
    assert!(log.contains(" stdout F NoNewPrivs:\t1\n"), "{log}");
    let written = std::fs::read_to_string(volume.path().join("out")).unwrap();
    assert_eq!(written, "from-container\n");
}

/// Reads a cgroup file of a container under either cgroup version.
fn cgroup_file(parent: &str, id: &str, v1: (&str, &str), v2: &str) -> String {
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let path = if unified {
        format!("/sys/fs/cgroup/{parent}/{id}/{v2}")
    } else {
        format!("/sys/fs/cgroup/{}/{parent}/{id}/{}", v1.0, v1.1)
    };
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

#[test]
fn memory_and_cpu_limits_land_in_the_container_cgroup() {
    let node = node_or_skip!();
    let pod = node.sandbox("limits");
    let mut spec = node.spec("limited", &pod, &["sleep", "1000"]);
    spec.resources = Resources {
        memory_limit: Some(48 << 20),
        cpu_limit_millis: Some(250),
        cpu_request_millis: Some(125),
    };
    let id = node.run(&spec);
    let parent = node.runc_config().cgroup_parent;
    let mem = cgroup_file(
        &parent,
        &id,
        ("memory", "memory.limit_in_bytes"),
        "memory.max",
    );
    assert_eq!(mem, (48u64 << 20).to_string());
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if unified {
        assert_eq!(
            cgroup_file(&parent, &id, ("", ""), "cpu.max"),
            "25000 100000"
        );
    } else {
        assert_eq!(
            cgroup_file(&parent, &id, ("cpu", "cpu.cfs_quota_us"), ""),
            "25000"
        );
        assert_eq!(cgroup_file(&parent, &id, ("cpu", "cpu.shares"), ""), "128");
    }
}

#[test]
fn orphans_are_removed_after_a_restart_including_half_created_ones() {
    let node = node_or_skip!();
    let wanted_pod = node.sandbox("wanted");
    let orphan_pod = node.sandbox("orphan");
    let wanted = node.spec("wanted", &wanted_pod, &["sleep", "1000"]);
    let orphan = node.spec("orphan", &orphan_pod, &["sleep", "1000"]);
    node.run(&wanted);
    node.run(&orphan);
    // A crash in the middle of create leaves a dir that runc never heard of.
    let half = format!("half-{}", node.suffix);
    std::fs::create_dir_all(node.dir.path().join("runtime/containers").join(&half)).unwrap();

    let restarted = skiff_node::runtime::RuncRuntime::new(node.runc_config()).unwrap();
    let mut removed =
        skiff_node::runtime::remove_orphans(&restarted, |c| c.id == wanted.id).unwrap();
    removed.sort();
    let mut expected = vec![half, orphan.id.clone()];
    expected.sort();
    assert_eq!(removed, expected);
    let left: Vec<_> = restarted
        .list()
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(left, vec![wanted.id.clone()]);

    let removed = node
        .sandboxes
        .remove_orphans(|s| s.spec.id == wanted_pod.spec.id)
        .unwrap();
    assert_eq!(removed, vec![orphan_pod.spec.id.clone()]);
    assert!(!orphan_pod.network.as_ref().unwrap().netns_path.exists());
    assert!(wanted_pod.network.as_ref().unwrap().netns_path.exists());
}

#[test]
fn container_over_its_memory_limit_is_oom_killed_with_137() {
    let node = node_or_skip!();
    let pod = node.sandbox("hog");
    let mut spec = node.spec(
        "hog",
        &pod,
        &[
            "sh",
            "-c",
            "x=0123456789abcdef; while true; do x=\"$x$x\"; done",
        ],
    );
    spec.resources = Resources {
        memory_limit: Some(32 << 20),
        cpu_limit_millis: Some(500),
        cpu_request_millis: Some(100),
    };
    let id = node.run(&spec);
    let exit = node.wait_exit(&id, Duration::from_secs(30));
    assert_eq!(exit.exit_code, 137);
    assert_eq!(exit.reason, "OOMKilled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_uses_sigterm_then_sigkill_after_the_grace_period() {
    let node = node_or_skip!();
    let pod = node.sandbox("stop");
    let polite = node.spec(
        "polite",
        &pod,
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; while true; do sleep 0.1; done",
        ],
    );
    // As pid 1 without a handler, sleep ignores SIGTERM: only SIGKILL ends it.
    let stubborn = node.spec("stubborn", &pod, &["sleep", "1000"]);
    node.run(&polite);
    node.run(&stubborn);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // `stop` calls the runtime off the async runtime, through a shared handle: one over
    // the same state dir.
    let runtime: std::sync::Arc<dyn Runtime> =
        std::sync::Arc::new(skiff_node::runtime::RuncRuntime::new(node.runc_config()).unwrap());
    let started = Instant::now();
    let status = stop(&runtime, &polite.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    match status.state {
        ContainerState::Exited(e) => assert_eq!(e.exit_code, 3),
        other => panic!("{other:?}"),
    }
    assert!(node.log_text(&polite).contains(" stdout F got-term\n"));

    let started = Instant::now();
    let status = stop(&runtime, &stubborn.id, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    match status.state {
        ContainerState::Exited(e) => {
            assert_eq!(e.exit_code, 137);
            assert_eq!(e.reason, "Error");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn restarted_runtime_adopts_running_containers_and_cleanup_removes_everything() {
    let node = node_or_skip!();
    let pod = node.sandbox("adopt");
    let spec = node.spec(
        "ticker",
        &pod,
        &["sh", "-c", "while true; do echo tick; sleep 0.1; done"],
    );
    let id = node.run(&spec);
    std::thread::sleep(Duration::from_millis(300));

    // A new runtime object over the same state dir, as after an agent restart.
    let restarted = skiff_node::runtime::RuncRuntime::new(node.runc_config()).unwrap();
    let listed = restarted.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].state, ContainerState::Running);
    assert!(listed[0].started_at.is_some());
    assert!(listed[0].pid.is_some());
    assert_eq!(listed[0].spec.as_ref().unwrap().labels, spec.labels);
    // Its shim outlived the old runtime object and still writes the log.
    let before = node.log_text(&spec).lines().count();
    std::thread::sleep(Duration::from_millis(500));
    assert!(node.log_text(&spec).lines().count() > before);

    restarted.delete(&id).unwrap();
    assert!(restarted.list().unwrap().is_empty());
    let rootfs = node.dir.path().join("runtime/containers").join(&id);
    assert!(!rootfs.exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&id), "rootfs still mounted");
    let runc = std::process::Command::new("runc")
        .arg("--root")
        .arg(node.runc_root())
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&runc.stdout).trim().is_empty());

    node.sandboxes.remove(&pod.spec.id).unwrap();
    assert!(!pod.network.as_ref().unwrap().netns_path.exists());
    assert!(node.sandboxes.list().unwrap().is_empty());
}

#[test]
fn upper_layer_whiteouts_hide_lower_files_in_the_running_container() {
    use skiff_node::testing::{busybox_layer, oci_archive, LayerBuilder, TestImageConfig};
    let node = node_or_skip!();
    let top = LayerBuilder::new()
        .whiteout("www/index.html")
        .opaque("etc")
        .file("etc/passwd", 0o644, b"root:x:0:0::/:/bin/sh\n")
        .finish();
    let archive = oci_archive(
        "skiff-test/layered:1",
        &[busybox_layer().unwrap(), top],
        &TestImageConfig::default(),
    );
    node.images.load(archive.as_slice()).unwrap();
    let pod = node.sandbox("layers");
    let mut spec = node.spec(
        "layered",
        &pod,
        &[
            "sh",
            "-c",
            "ls -A /www; cat /etc/group || echo no-group; cat /etc/passwd",
        ],
    );
    spec.rootfs_layers = node.images.rootfs("skiff-test/layered:1").unwrap().layers;
    let id = node.run(&spec);
    let exit = node.wait_exit(&id, Duration::from_secs(10));
    let log = node.log_text(&spec);
    assert_eq!(exit.exit_code, 0, "{log}");
    assert!(!log.contains("index.html"), "{log}");
    assert!(log.contains(" stdout F no-group\n"), "{log}");
    assert!(log.contains(" stdout F root:x:0:0::/:/bin/sh\n"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_rotate_by_size_and_follow_streams_until_the_container_exits() {
    use skiff_node::logs::{self, LogOptions, Rotation};
    let node = node_or_skip!();
    let pod = node.sandbox("logs");
    let mut spec = node.spec(
        "chatty",
        &pod,
        &[
            "sh",
            "-c",
            "sleep 0.5; for i in $(seq 1 300); do echo line-$i; done; sleep 0.3",
        ],
    );
    // ~15 KB of output rotates 3 times within one follower poll; 5 files keep all of it.
    spec.log_rotation = Rotation {
        max_size: 4096,
        max_files: 5,
    };
    let id = node.run(&spec);

    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let follower = {
        let runtime = skiff_node::runtime::RuncRuntime::new(node.runc_config()).unwrap();
        let id = id.clone();
        tokio::spawn(logs::follow(
            spec.log_path.clone(),
            LogOptions::default(),
            tx,
            move || {
                matches!(
                    runtime.state(&id).map(|s| s.state),
                    Ok(ContainerState::Exited(_)) | Err(_)
                )
            },
        ))
    };
    let mut followed = Vec::new();
    while let Some(line) = rx.recv().await {
        followed.push(String::from_utf8(line).unwrap());
    }
    follower.await.unwrap().unwrap();
    node.wait_exit(&id, Duration::from_secs(10));

    // Every line was streamed once, in order, across rotations.
    let expected: Vec<String> = (1..=300).map(|i| format!("line-{i}\n")).collect();
    assert_eq!(followed, expected);
    assert!(logs::rotated(&spec.log_path, 3).exists());
    assert!(!logs::rotated(&spec.log_path, 5).exists());
    let kept = logs::read(&spec.log_path, &LogOptions::default()).unwrap();
    let kept: Vec<String> = kept
        .into_iter()
        .map(|e| String::from_utf8(e.content).unwrap())
        .collect();
    assert_eq!(kept, expected);
    let tail = logs::read(
        &spec.log_path,
        &LogOptions {
            tail: Some(2),
            timestamps: true,
            ..Default::default()
        },
    )
    .unwrap();
    let rendered = String::from_utf8(tail[1].render(true)).unwrap();
    assert!(rendered.ends_with("Z line-300\n"), "{rendered}");
}

#[test]
fn missing_executable_fails_create_with_runcs_reason_and_leaves_nothing() {
    let node = node_or_skip!();
    let pod = node.sandbox("broken");
    let spec = node.spec("broken", &pod, &["/no/such/binary"]);
    let err = node.runtime.create(&spec).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no such file") || msg.contains("not found"),
        "{msg}"
    );
    assert!(node.runtime.list().unwrap().is_empty());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let rootfs = format!("containers/{}/rootfs", spec.id);
    let leftover: Vec<&str> = mounts.lines().filter(|l| l.contains(&rootfs)).collect();
    assert!(leftover.is_empty(), "{leftover:#?}");
    // The id is free again.
    let fixed = node.spec("broken", &pod, &["true"]);
    let id = node.run(&fixed);
    assert_eq!(node.wait_exit(&id, Duration::from_secs(10)).exit_code, 0);
}

/// Set in the child process of `containers_survive_the_agent_process_exiting`.
const CHILD_SPEC_ENV: &str = "SKIFF_NODE_TEST_CHILD_SPEC";

#[test]
fn containers_survive_the_agent_process_exiting_and_are_adopted() {
    if let Ok(spec_file) = std::env::var(CHILD_SPEC_ENV) {
        // Child: act as an agent that starts a container and dies without cleanup.
        let raw = std::fs::read(&spec_file).unwrap();
        let (cfg_dir, parent, spec): (String, String, skiff_node::runtime::ContainerSpec) =
            serde_json::from_slice(&raw).unwrap();
        let mut cfg = skiff_node::runtime::RuncConfig::new(
            cfg_dir,
            vec![env!("CARGO_BIN_EXE_skiff-node-shim").into()],
        );
        cfg.cgroup_parent = parent;
        let rt = skiff_node::runtime::RuncRuntime::new(cfg).unwrap();
        rt.create(&spec).unwrap();
        rt.start(&spec.id).unwrap();
        std::process::exit(0);
    }
    let node = node_or_skip!();
    let pod = node.sandbox("survive");
    let spec = node.spec(
        "survivor",
        &pod,
        &["sh", "-c", "while true; do echo alive; sleep 0.1; done"],
    );
    let cfg = node.runc_config();
    let spec_file = node.dir.path().join("child-spec.json");
    let payload = (
        cfg.state_dir.clone(),
        cfg.cgroup_parent.clone(),
        spec.clone(),
    );
    std::fs::write(&spec_file, serde_json::to_vec(&payload).unwrap()).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "containers_survive_the_agent_process_exiting_and_are_adopted",
            "--test-threads=1",
        ])
        .env(CHILD_SPEC_ENV, &spec_file)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let listed = node.runtime.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, spec.id);
    assert_eq!(listed[0].state, ContainerState::Running);
    let before = node.log_text(&spec).lines().count();
    std::thread::sleep(Duration::from_millis(500));
    assert!(node.log_text(&spec).lines().count() > before, "log stopped");
    // Exit codes are still recorded by the orphaned shim.
    node.runtime.kill(&spec.id, libc::SIGKILL).unwrap();
    assert_eq!(
        node.wait_exit(&spec.id, Duration::from_secs(10)).exit_code,
        137
    );
}

#[test]
fn exec_runs_with_the_containers_env_cwd_and_user_and_times_out_by_killing() {
    let node = node_or_skip!();
    let pod = node.sandbox("exec");
    let mut spec = node.spec("execd", &pod, &["sleep", "1000"]);
    spec.process.env.push("GREETING=from-spec".into());
    spec.process.cwd = "/tmp".into();
    spec.process.user = Some("1234:5678".into());
    let id = node.run(&spec);
    let argv = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();

    let out = node
        .runtime
        .exec(
            &id,
            &argv(&[
                "sh",
                "-c",
                "echo $GREETING $(pwd) $(id -u):$(id -g); echo err >&2; exit 3",
            ]),
            Some(Duration::from_secs(10)),
        )
        .expect("exec");
    assert_eq!(out.exit_code, 3);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from-spec /tmp 1234:5678\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    let started = Instant::now();
    let err = node
        .runtime
        .exec(&id, &argv(&["sleep", "30"]), Some(Duration::from_secs(1)))
        .expect_err("times out");
    assert_eq!(err.to_string(), "command \"sleep 30\" timed out");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The timed-out command was killed, not left running (a zombie until init reaps it,
    // shown as `[sleep]`).
    let ps = node
        .runtime
        .exec(
            &id,
            &argv(&["ps", "-o", "args"]),
            Some(Duration::from_secs(10)),
        )
        .expect("ps");
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(!ps.contains("sleep 30"), "{ps}");

    // A command that cannot start is a runtime error, not an exit code.
    let err = node
        .runtime
        .exec(
            &id,
            &argv(&["/no/such/binary"]),
            Some(Duration::from_secs(10)),
        )
        .expect_err("no binary");
    assert!(err.to_string().contains("no/such/binary"), "{err}");

    // No per-exec files are left in the container dir.
    let dir = node.dir.path().join("runtime/containers").join(&id);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("exec-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    node.runtime.kill(&id, libc::SIGKILL).unwrap();
    node.wait_exit(&id, Duration::from_secs(10));
    let err = node
        .runtime
        .exec(&id, &argv(&["true"]), None)
        .expect_err("not running");
    assert!(
        matches!(err, skiff_node::runtime::Error::NotRunning(_)),
        "{err}"
    );
}
