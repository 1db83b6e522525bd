//! End to end: `kubectl exec`, `cp` and `port-forward` through the API server to the node
//! (root + runc, in a network namespace per test), with kubectl 1.33 (WebSocket v5 for
//! exec, SPDY tunnelled in a WebSocket for port-forward) and 1.29 (SPDY for both).

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
    if let Some(why) = node::skip_reason() {
        assert!(!compat::in_ci(), "exec tests need {why}");
        eprintln!("skipped: {why}");
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
