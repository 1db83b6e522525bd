//! End to end: `kubectl exec`, `cp`, `port-forward`, `attach` and `debug` through the API
//! server to the node (root + runc, in a network namespace per test), with kubectl 1.33
//! (WebSocket v5 for exec and attach, SPDY tunnelled in a WebSocket for port-forward) and
//! 1.29 (SPDY for all).

#[allow(unused)]
mod common;
#[allow(unused)]
mod compat;
#[path = "common/node.rs"]
mod node;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:test
    command: ["sh", "-c", "echo hello-through-forward > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
  - name: side
    image: busybox:test
    command: ["sh", "-c", "echo side-container > /tmp/marker; exec sleep 3600"]
"#;

/// Exec and port-forward through the Python client; prints the exec's output, then the
/// body fetched through the forward.
const PYTHON: &str = r#"
from kubernetes import client, config
from kubernetes.stream import portforward, stream
config.load_kube_config()
v1 = client.CoreV1Api()
out = stream(v1.connect_get_namespaced_pod_exec, "shell", "default", container="main",
             command=["echo", "py-hi"], stderr=True, stdin=False, stdout=True, tty=False)
print(out.strip())
pf = portforward(v1.connect_get_namespaced_pod_portforward, "shell", "default", ports="8080")
s = pf.socket(8080)
s.setblocking(True)
s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
data = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    data += d
print(data.split(b"\r\n\r\n", 1)[1].decode().strip())
"#;

fn ready(pod: &serde_json::Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// One kubectl binary run inside the cluster's network namespace.
struct Kubectl<'a> {
    c: &'a node::NodeCluster,
    bin: PathBuf,
}

impl Kubectl<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.c.in_netns(self.bin.to_str().expect("utf-8 path"));
        cmd.args(args).env("KUBECONFIG", self.c.kubeconfig());
        cmd
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let mut input = child.stdin.take().expect("piped stdin");
        if let Some(s) = stdin {
            input.write_all(s).expect("write stdin");
        }
        drop(input);
        child.wait_with_output().expect("kubectl output")
    }

    fn ok(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "{} {args:?}: {}\n{}\nserver log tail:\n{}",
            self.bin.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.c.log_text())
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn md5(path: &Path) -> String {
    let out = Command::new("md5sum").arg(path).output().expect("md5sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// kubectl 1.`minor`, which must exist under CI.
fn kubectl_or_fail(minor: u32) -> Option<PathBuf> {
    let found = compat::kubectl(minor);
    if found.is_none() {
        assert!(
            !compat::in_ci(),
            "kubectl 1.{minor} is missing (run .ci/install-clients)"
        );
        eprintln!("skipping kubectl 1.{minor}: not installed");
    }
    found
}

#[test]
fn exec_cp_and_port_forward_with_kubectl_1_33_and_1_29() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start();
    c.load_busybox("busybox:test");
    c.kubectl_in(&["apply", "-f", "-"], &POD.replace("NODE", &c.node_name()));
    c.wait_pod("shell", Duration::from_secs(60), ready);

    // 10 MB of incompressible bytes for cp.
    let dir = tempfile::tempdir().expect("temp dir");
    let big = dir.path().join("big.bin");
    {
        let mut f = std::fs::File::create(&big).expect("create");
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = Vec::with_capacity(10 << 20);
        while buf.len() < 10 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.extend_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).expect("write");
    }
    let want = md5(&big);

    for minor in [33, 29] {
        let Some(bin) = kubectl_or_fail(minor) else {
            continue;
        };
        eprintln!("kubectl 1.{minor}: {}", bin.display());
        let k = Kubectl { c: &c, bin };

        // Plain exec, and the container choice.
        assert_eq!(
            k.ok(&["exec", "shell", "-c", "main", "--", "echo", "hi"], None),
            "hi\n"
        );
        assert_eq!(
            k.ok(
                &["exec", "shell", "-c", "side", "--", "cat", "/tmp/marker"],
                None
            ),
            "side-container\n"
        );
        // stdin to the end, and stderr kept apart.
        let input = b"line one\nline two\n".repeat(1000);
        assert_eq!(
            k.ok(
                &["exec", "-i", "shell", "-c", "main", "--", "cat"],
                Some(&input)
            )
            .as_bytes(),
            &input[..]
        );
        let out = k.run(
            &[
                "exec",
                "shell",
                "-c",
                "main",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2",
            ],
            None,
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

        // The exit code, with kubectl's message.
        let out = k.run(
            &["exec", "shell", "-c", "main", "--", "sh", "-c", "exit 3"],
            None,
        );
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("command terminated with exit code 3"),
            "{out:?}"
        );

        // A container the pod does not have: upstream's 400 from the API server.
        let out = k.run(&["exec", "shell", "-c", "nope", "--", "true"], None);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("container nope is not valid for pod shell"),
            "{err}"
        );

        // A command that does not exist: an error, not a hang.
        let out = k.run(&["exec", "shell", "-c", "main", "--", "no-such-cmd"], None);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no-such-cmd"), "{err}");

        // -it under `script` (kubectl on a terminal): the command gets a terminal of its own.
        let line = format!(
            "{} exec -it shell -c main -- sh -c 'test -t 0 && test -t 1 && echo tty-yes'",
            k.bin.display()
        );
        let out = c
            .in_netns("script")
            .args(["-qec", &line, "/dev/null"])
            .env("KUBECONFIG", c.kubeconfig())
            .stdin(Stdio::null())
            .output()
            .expect("script");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("tty-yes"),
            "exec -it, kubectl 1.{minor}: {out:?}"
        );

        // cp both ways (tar in the container over exec with stdin).
        let remote = format!("shell:/tmp/big-{minor}.bin");
        k.ok(&["cp", "-c", "main", big.to_str().unwrap(), &remote], None);
        let inside = k.ok(
            &[
                "exec",
                "shell",
                "-c",
                "main",
                "--",
                "md5sum",
                &format!("/tmp/big-{minor}.bin"),
            ],
            None,
        );
        assert_eq!(inside.split_whitespace().next(), Some(want.as_str()));
        let back = dir.path().join(format!("back-{minor}.bin"));
        k.ok(&["cp", "-c", "main", &remote, back.to_str().unwrap()], None);
        assert_eq!(md5(&back), want, "cp from the pod, kubectl 1.{minor}");

        // port-forward, then HTTP through it (twice: a second connection on the same
        // forward).
        let local = 18000 + minor as u16;
        let mut pf = k
            .cmd(&["port-forward", "pod/shell", &format!("{local}:8080")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn port-forward");
        let mut lines = BufReader::new(pf.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        assert!(first.contains("Forwarding from"), "{first:?}");
        for _ in 0..2 {
            let deadline = Instant::now() + Duration::from_secs(10);
            let body = loop {
                if let Some(b) = c.http_get("127.0.0.1", local, "/index.html") {
                    break b;
                }
                assert!(Instant::now() < deadline, "no answer through port-forward");
                std::thread::sleep(Duration::from_millis(100));
            };
            assert_eq!(body, "hello-through-forward\n");
        }
        let _ = pf.kill();
        let _ = pf.wait();
    }

    // The Python client: `stream()` exec (WebSocket v4) and its port-forward (the plain
    // WebSocket channels, ports in the query).
    match compat::python_with("kubernetes") {
        Some(python) => {
            // Bounded: a forward that never ends must fail the test, not hang it.
            let out = c
                .in_netns("timeout")
                .arg("60")
                .arg(&python)
                .args(["-c", PYTHON])
                .env("KUBECONFIG", c.kubeconfig())
                .output()
                .expect("python");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "python client: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(text, "py-hi\nhello-through-forward\n");
        }
        None => {
            assert!(!compat::in_ci(), "the Python kubernetes client is missing");
            eprintln!("skipping the Python client: not installed");
        }
    }

    // A client that goes away mid-exec leaves no process behind in the container.
    let bin = compat::default_kubectl();
    let k = Kubectl { c: &c, bin };
    let mut child = k
        .cmd(&["exec", "shell", "-c", "side", "--", "sleep", "4242"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn exec");
    let count = || {
        k.ok(&["exec", "shell", "-c", "side", "--", "ps"], None)
            .lines()
            .filter(|l| l.contains("sleep 4242"))
            .count()
    };
    c.wait_for("the exec'd sleep", Duration::from_secs(20), || {
        (count() == 1).then_some(())
    });
    let _ = child.kill();
    let _ = child.wait();
    c.wait_for(
        "the exec'd sleep to be killed",
        Duration::from_secs(20),
        || (count() == 0).then_some(()),
    );
}

const ATTACH_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: attached
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:test
    command: ["sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done"]
  - name: echo
    image: busybox:test
    stdin: true
    command: ["sh", "-c", "sleep 3601 & while read l; do echo got-$l; done; wait"]
  - name: term
    image: busybox:test
    stdin: true
    tty: true
    command: ["sh"]
"#;

/// Runs `kubectl args` on a terminal (`script`), typing `input`; returns what appeared on
/// the terminal and whether kubectl succeeded, or panics after `timeout`.
fn on_terminal(k: &Kubectl, args: &str, input: &str, timeout: Duration) -> (String, bool) {
    let line = format!("{} {args}", k.bin.display());
    let mut child =
        k.c.in_netns("script")
            .args(["-qec", &line, "/dev/null"])
            .env("KUBECONFIG", k.c.kubeconfig())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script");
    // Kept open until kubectl is done: `script` ends the session at its input's end.
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).expect("type");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait script") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("script output");
            panic!(
                "{args}: still running after {timeout:?}: {}\n{}\nserver log tail:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail(&k.c.log_text())
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(stdin);
    let out = child.wait_with_output().expect("script output");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (text, status.success())
}

/// Reads `child`'s stdout lines until one contains `marker` (or panics after 30 s).
fn read_until(child: &mut std::process::Child, marker: &str) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(marker) => return line,
            Ok(line) => seen.push_str(&(line + "\n")),
            Err(_) => break,
        }
    }
    panic!("{marker:?} never came; got: {seen}");
}

/// `kubectl attach` (output only, `-i`, and `-it` on a terminal) to containers' main
/// processes, and `kubectl debug -it` with an ephemeral container sharing its target's
/// PID namespace, with kubectl 1.33 (WebSocket v5) and 1.29 (SPDY); then `debug node/x`
/// and `--copy-to`, which make ordinary pods.
#[test]
fn attach_and_debug_with_kubectl_1_33_and_1_29() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start();
    c.load_busybox("busybox:test");
    c.load_busybox("busybox:v1");
    let node_name = c.node_name();
    c.kubectl_in(
        &["apply", "-f", "-"],
        &ATTACH_POD.replace("NODE", &node_name),
    );
    c.wait_pod("attached", Duration::from_secs(60), ready);

    for minor in [33, 29] {
        let Some(bin) = kubectl_or_fail(minor) else {
            continue;
        };
        eprintln!("kubectl 1.{minor}: {}", bin.display());
        let k = Kubectl { c: &c, bin };

        // Output only: what the process writes from now on.
        let mut child = k
            .cmd(&["attach", "attached", "-c", "app"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn attach");
        read_until(&mut child, "tick-");
        let _ = child.kill();
        let _ = child.wait();

        // stdin: the container's `read` gets what kubectl is given.
        let mut child = k
            .cmd(&["attach", "-i", "attached", "-c", "echo"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn attach -i");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(format!("hello-{minor}\n").as_bytes())
            .expect("write");
        read_until(&mut child, &format!("got-hello-{minor}"));
        let _ = child.kill();
        let _ = child.wait();
        drop(stdin);

        // -it on a terminal: the shell's own terminal; its exit ends the session.
        let (text, ok) = on_terminal(
            &k,
            "attach -it attached -c term",
            "test -t 0 && echo tty-$((6*7))\nexit\n",
            Duration::from_secs(60),
        );
        assert!(
            ok && text.contains("tty-42"),
            "attach -it, 1.{minor}: {text}"
        );
        // The shell is restarted (policy Always) before the next client.
        c.wait_pod("attached", Duration::from_secs(60), ready);

        // kubectl debug: an ephemeral container in the target's PID namespace, attached.
        let dbg = format!("dbg-{minor}");
        let (text, ok) = on_terminal(
            &k,
            &format!("debug -it attached --image=busybox:v1 --target=echo -c {dbg} -- sh"),
            "ps | grep -q 'sleep [3]601' && echo target-$((1+1))-seen\nexit\n",
            Duration::from_secs(90),
        );
        assert!(
            ok && text.contains("target-2-seen"),
            "debug -it, 1.{minor}: {text}"
        );
        let pod = c.wait_pod("attached", Duration::from_secs(30), |p| {
            p["status"]["ephemeralContainerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["name"] == dbg.as_str() && s["state"]["terminated"]["exitCode"] == 0)
        });
        let spec = &pod["spec"]["ephemeralContainers"];
        assert!(
            spec.as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == dbg.as_str() && e["targetContainerName"] == "echo"),
            "{spec}"
        );
    }

    // `kubectl run -it --rm`: a pod with stdin and a terminal, attached once running,
    // deleted when its shell exits.
    let k = Kubectl {
        c: &c,
        bin: compat::default_kubectl(),
    };
    let (text, ok) = on_terminal(
        &k,
        "run -it --rm scratch --image=busybox:test --restart=Never -- sh",
        "echo run-$((2+3))\nexit\n",
        Duration::from_secs(90),
    );
    assert!(ok && text.contains("run-5"), "run -it --rm: {text}");
    c.wait_for("the run pod to go", Duration::from_secs(30), || {
        let out = k.run(&["get", "pod", "scratch"], None);
        (!out.status.success()).then_some(())
    });

    // A debugging pod on the node, and a copy of the pod with a container added: both are
    // plain pods.
    let out = k.ok(
        &[
            "debug",
            &format!("node/{node_name}"),
            "--image=busybox:test",
            "--",
            "sh",
            "-c",
            "test -d /host/proc && echo node-debug-ok",
        ],
        None,
    );
    let pod = out
        .split_whitespace()
        .find(|w| w.starts_with("node-debugger-"))
        .unwrap_or_else(|| panic!("no debugging pod named in {out:?}"));
    c.wait_logs(pod, "node-debug-ok", Duration::from_secs(60));
    k.ok(
        &[
            "debug",
            "attached",
            "--copy-to=attached-copy",
            "--container=extra",
            "--image=busybox:test",
            "--",
            "sh",
            "-c",
            "echo copy-ok; exec sleep 3600",
        ],
        None,
    );
    c.wait_for(
        "the copy's added container",
        Duration::from_secs(60),
        || {
            let out = k.run(&["logs", "attached-copy", "-c", "extra"], None);
            String::from_utf8_lossy(&out.stdout)
                .contains("copy-ok")
                .then_some(())
        },
    );
}

const ERRORS_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: plain
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:test
    command: ["sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done"]
---
apiVersion: v1
kind: Pod
metadata:
  name: waiting
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: init
    image: busybox:test
    command: ["sleep", "3600"]
  containers:
  - name: main
    image: busybox:test
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: done
spec:
  nodeName: NODE
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:test
    command: ["true"]
"#;

/// kubectl's error output for `args`, which must fail.
fn failure(k: &Kubectl, args: &[&str]) -> String {
    let out = k.run(args, None);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded: {err}");
    err
}

/// Attach's error cases as upstream answers them, with kubectl 1.33 (WebSocket, falling
/// back to SPDY when the upgrade is refused) and 1.29 (SPDY): a container the pod does not
/// have, a completed pod (kubectl's own checks), a container that is not running (the
/// kubelet's `container c not found in pod p_ns`, through the API server), and `-i` /
/// `-t` to a container without stdin or terminal (the output still streams; kubectl's
/// warning for the terminal).
#[test]
fn attach_errors_as_upstream_with_kubectl_1_33_and_1_29() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start();
    c.load_busybox("busybox:test");
    c.kubectl_in(
        &["apply", "-f", "-"],
        &ERRORS_POD.replace("NODE", &c.node_name()),
    );
    c.wait_pod("plain", Duration::from_secs(60), ready);
    c.wait_pod("done", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Succeeded"
    });
    c.wait_pod("waiting", Duration::from_secs(60), |p| {
        p["status"]["initContainerStatuses"][0]["state"]["running"].is_object()
    });

    for minor in [33, 29] {
        let Some(bin) = kubectl_or_fail(minor) else {
            continue;
        };
        eprintln!("kubectl 1.{minor}: {}", bin.display());
        let k = Kubectl { c: &c, bin };

        let err = failure(&k, &["attach", "plain", "-c", "nope"]);
        // kubectl's own check, worded differently across versions.
        assert!(
            err.contains("cannot attach to the container: container not found (nope)")
                || err.contains(
                    "cannot attach to the container: container nope not found in pod plain"
                ),
            "1.{minor}: {err}"
        );
        let err = failure(&k, &["attach", "done"]);
        assert!(
            err.contains(
                "cannot attach a container in a completed pod; current phase is Succeeded"
            ),
            "1.{minor}: {err}"
        );
        // The pod is Pending (its init container runs): the request reaches the node.
        let err = failure(&k, &["attach", "waiting", "-c", "main"]);
        assert!(
            err.contains(
                "unable to upgrade connection: container main not found in pod waiting_default"
            ),
            "1.{minor}: {err}"
        );
        let err = failure(&k, &["exec", "waiting", "-c", "main", "--", "true"]);
        assert!(
            err.contains(r#"unable to upgrade connection: container not found ("main")"#),
            "1.{minor}: {err}"
        );

        // -i and -t to a container with neither: the output streams as without them (the
        // runtime has no stdin to give the input to), kubectl warns about the terminal.
        for flags in ["-i", "-it"] {
            let mut child = k
                .cmd(&["attach", flags, "plain", "-c", "app"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn attach");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(b"ignored\n").expect("write");
            read_until(&mut child, "tick-");
            let _ = child.kill();
            let out = child.wait_with_output().expect("attach output");
            drop(stdin);
            let err = String::from_utf8_lossy(&out.stderr);
            if flags == "-it" {
                assert!(
                    err.contains("Unable to use a TTY - container app did not allocate one"),
                    "attach -it, 1.{minor}: {err}"
                );
            }
        }
    }
    // The container went on, untouched by the input it had no stdin for.
    let pod = c.wait_pod("plain", Duration::from_secs(10), ready);
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
}

const LEAKY_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: leaky
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:test
    command: ["sh", "-c", "nc -ll -p 9001 -e sleep 4343 & exec nc -ll -p 9000 -e yes pf-leak-marker"]
  - name: ticker
    image: busybox:test
    command: ["sh", "-c", "while true; do echo tick; sleep 0.1; done"]
"#;

/// What the open descriptors of `pid` point at (`socket:[inode]`, `pipe:[inode]`, paths).
fn fd_targets(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The sockets (`socket:[inode]`) of `pid`'s connections to itself on the API port: its
/// client ends (peer port `api_port`) and the server ends whose peer is one of those.
fn internal_api_sockets(pid: u32, api_port: u16) -> Vec<String> {
    // (inode, local port, remote port) of each TCP socket in the process's namespace.
    let mut conns = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |a: &str| {
                a.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if let (Some(l), Some(r), Some(inode)) = (
                f.get(1).and_then(|a| port(a)),
                f.get(2).and_then(|a| port(a)),
                f.get(9),
            ) {
                conns.push((inode.to_string(), l, r));
            }
        }
    }
    let clients: Vec<u16> = conns
        .iter()
        .filter(|(_, _, r)| *r == api_port)
        .map(|(_, l, _)| *l)
        .collect();
    conns
        .into_iter()
        .filter(|(_, l, r)| *r == api_port || (*l == api_port && clients.contains(r)))
        .map(|(inode, _, _)| format!("socket:[{inode}]"))
        .collect()
}

/// Host processes whose whole command line is `argv` (containers' included).
fn processes(argv: &[&str]) -> usize {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want))
                .count()
        })
        .unwrap_or(0)
}

/// A client killed mid-stream leaves nothing behind, for exec, attach and port-forward
/// with kubectl 1.33 and 1.29: the server's open descriptors (client connection, the
/// connection to the node, the process pipes, the attach socket, the pod connection) go
/// back to what they were before, the exec'd `cat` is killed, and the pod's end of a
/// forwarded connection is closed, also when the pod never writes or closes it.
#[test]
fn clients_killed_mid_stream_leave_nothing_behind() {
    if !node::can_run() {
        return;
    }
    let c = node::NodeCluster::start();
    c.load_busybox("busybox:test");
    c.kubectl_in(
        &["apply", "-f", "-"],
        &LEAKY_POD.replace("NODE", &c.node_name()),
    );
    c.wait_pod("leaky", Duration::from_secs(60), ready);
    let pid = c.server_pid();
    let kubeconfig = std::fs::read_to_string(c.kubeconfig()).expect("kubeconfig");
    let api_port: u16 = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .expect("the API port in the kubeconfig");
    let cat = ["cat", "-", "/exec-leak-marker"];
    let yes = ["yes", "pf-leak-marker"];
    let sleeper = ["sleep", "4343"];

    for minor in [33, 29] {
        let Some(bin) = kubectl_or_fail(minor) else {
            continue;
        };
        eprintln!("kubectl 1.{minor}: {}", bin.display());
        let k = Kubectl { c: &c, bin };
        // One complete exec first: the node's first stream asks the API server to authorize
        // its caller (a SubjectAccessReview, then cached) over a pooled connection that
        // stays open, and that is no stream's.
        k.ok(&["exec", "leaky", "-c", "main", "--", "true"], None);
        // What the server opened for a stream, taken while it runs: every one of them must
        // be closed once the client is gone (other descriptors come and go with the
        // server's own work).
        let opened_since = |before: &[String]| -> Vec<String> {
            let mut now = fd_targets(pid);
            now.retain(|t| !before.contains(t));
            // The server's own API clients (the node agent's, controllers') keep pooled
            // connections to the API port open for a while: both ends are the server's
            // and neither is the stream's.
            let internal = internal_api_sockets(pid, api_port);
            now.retain(|t| !internal.contains(t));
            assert!(!now.is_empty(), "the stream opened nothing in the server");
            now
        };
        let all_closed = |live: &[String], what: &str| {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let now = fd_targets(pid);
                let left: Vec<&String> = live.iter().filter(|t| now.contains(t)).collect();
                if left.is_empty() {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "after {what}, 1.{minor}, the server still holds {left:?} of the stream's {live:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        };

        // exec: `cat` echoing stdin, killed once it has answered.
        let before = fd_targets(pid);
        let mut child = k
            .cmd(&["exec", "-i", "leaky", "-c", "main", "--"])
            .args(cat)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn exec");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"echoed\n").expect("write");
        read_until(&mut child, "echoed");
        assert_eq!(processes(&cat), 1, "the exec'd cat runs");
        let live = opened_since(&before);
        let _ = child.kill();
        let _ = child.wait();
        drop(stdin);
        c.wait_for(
            "the exec'd cat to be killed",
            Duration::from_secs(30),
            || (processes(&cat) == 0).then_some(()),
        );
        all_closed(&live, "exec");

        // attach to a container that keeps writing.
        let before = fd_targets(pid);
        let mut child = k
            .cmd(&["attach", "leaky", "-c", "ticker"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn attach");
        read_until(&mut child, "tick");
        let live = opened_since(&before);
        let _ = child.kill();
        let _ = child.wait();
        all_closed(&live, "attach");

        // port-forward to a pod port that sends without end, read for a while and then
        // not at all (every queue on the way is full when the client goes); and to one
        // that never sends nor closes.
        for (port, pod_side) in [(9000, &yes[..]), (9001, &sleeper[..])] {
            let local = 19000 + minor as u16 * 10 + port % 10;
            let mut pf = k
                .cmd(&["port-forward", "pod/leaky", &format!("{local}:{port}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn port-forward");
            let mut lines = BufReader::new(pf.stdout.take().expect("stdout")).lines();
            let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
            assert!(first.contains("Forwarding from"), "{first:?}");
            let before = processes(pod_side);
            let fds_before = fd_targets(pid);
            let mut client = c
                .in_netns("busybox")
                .args(["nc", "127.0.0.1", &local.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn nc");
            c.wait_for(
                &format!("the pod's side of port {port}"),
                Duration::from_secs(30),
                || (processes(pod_side) > before).then_some(()),
            );
            let live = opened_since(&fds_before);
            if port == 9000 {
                // Some of the endless stream, then nothing read any more.
                let mut out = client.stdout.take().expect("stdout");
                let mut buf = vec![0u8; 1 << 20];
                std::io::Read::read_exact(&mut out, &mut buf).expect("read through forward");
                assert!(buf.starts_with(b"pf-leak-marker\n"));
                let _ = pf.kill();
                let _ = pf.wait();
                c.wait_for(
                    "the pod's end of the forwarded connection to close",
                    Duration::from_secs(30),
                    || (processes(pod_side) == 0).then_some(()),
                );
            } else {
                let _ = pf.kill();
                let _ = pf.wait();
            }
            let _ = client.kill();
            let _ = client.wait();
            all_closed(&live, &format!("port-forward to {port}"));
        }
    }
}
