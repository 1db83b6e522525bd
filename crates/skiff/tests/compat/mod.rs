//! Finds the client programs the compatibility tests drive (kubectl per minor version, Helm,
//! the Python client, schemathesis), runs them, and shares one server between the tests of a
//! file.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::common::Cluster;

/// The kubectl minor versions every case runs against: the three the server's version skew
/// policy covers below 1.33 and beyond, back to the first that asks for `v2beta1` discovery.
pub const KUBECTL_MINORS: std::ops::RangeInclusive<u32> = 27..=35;

/// `bash .ci/run` sets CI=true; there a missing client is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Where `.ci/install-clients` put the binaries and the Python venv.
pub fn clients_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SKIFF_CLIENTS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/skiff-clients"),
    };
    dir.is_dir().then_some(dir)
}

fn executable(path: PathBuf) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&path).ok()?;
    (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(path)
}

/// kubectl 1.`minor`: from SKIFF_CLIENTS_DIR, else the google-cloud-sdk's versioned copies,
/// else `kubectl` on PATH if that is the version.
pub fn kubectl(minor: u32) -> Option<PathBuf> {
    if let Some(found) =
        clients_dir().and_then(|d| executable(d.join(format!("bin/kubectl-1.{minor}"))))
    {
        return Some(found);
    }
    if let Some(found) = executable(PathBuf::from(format!(
        "/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"
    ))) {
        return Some(found);
    }
    (path_kubectl_minor() == Some(minor)).then(|| PathBuf::from("kubectl"))
}

/// The minor version of `kubectl` on PATH, asked once.
fn path_kubectl_minor() -> Option<u32> {
    static MINOR: OnceLock<Option<u32>> = OnceLock::new();
    *MINOR.get_or_init(|| {
        let out = Command::new("kubectl")
            .args(["version", "--client", "-o", "json"])
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["clientVersion"]["minor"]
            .as_str()?
            .trim_end_matches('+')
            .parse()
            .ok()
    })
}

/// The kubectl for cases that are not about client versions: the server's own minor (1.33)
/// if found, else whatever is on PATH.
pub fn default_kubectl() -> PathBuf {
    kubectl(33).unwrap_or_else(|| PathBuf::from("kubectl"))
}

/// `helm-3` / `helm-4` from SKIFF_CLIENTS_DIR, else `helm` on PATH if it is that major.
pub fn helm(major: u32) -> Option<PathBuf> {
    if let Some(found) = clients_dir().and_then(|d| executable(d.join(format!("bin/helm-{major}"))))
    {
        return Some(found);
    }
    let out = Command::new("helm")
        .args(["version", "--short"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .starts_with(&format!("v{major}."))
        .then(|| PathBuf::from("helm"))
}

/// A Python that can `import module`: the venv of SKIFF_CLIENTS_DIR, else `python3`.
pub fn python_with(module: &str) -> Option<PathBuf> {
    let candidates = clients_dir()
        .map(|d| d.join("venv/bin/python"))
        .into_iter()
        .chain([PathBuf::from("python3")]);
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(python);
        }
    }
    None
}

/// The `schemathesis` command from the venv, else PATH.
pub fn schemathesis() -> Option<PathBuf> {
    if let Some(found) = clients_dir().and_then(|d| executable(d.join("venv/bin/schemathesis"))) {
        return Some(found);
    }
    Command::new("schemathesis")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("schemathesis"))
}

/// A client this machine lacks: fails under CI=true, else says it skipped.
pub fn missing(what: &str) -> Option<String> {
    let why = format!("{what} not found (bash .ci/install-clients installs it)");
    if in_ci() {
        Some(why)
    } else {
        eprintln!("skipped: {why}");
        None
    }
}

/// One server for all the tests of a file that are running at the same time: each takes a
/// handle, and the last to finish stops it (a test starting after that starts a new one,
/// which takes a few milliseconds). Each case keeps to namespaces of its own.
pub fn shared_cluster() -> Arc<Cluster> {
    static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cluster) = shared.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(Cluster::start());
    *shared = Arc::downgrade(&cluster);
    cluster
}

/// What a client run did, with the command line to show in a failure.
pub struct Run {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The whole run, for a failure message.
    pub fn show(&self) -> String {
        format!(
            "$ {}\nexit {:?}\nstdout: {}\nstderr: {}",
            self.command,
            self.code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `cmd` to completion, feeding `stdin`.
pub fn run(mut cmd: Command, stdin: Option<&str>) -> Run {
    let command = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command}: {e}"));
    let mut pipe = child.stdin.take().expect("piped stdin");
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    drop(pipe);
    let out = child.wait_with_output().expect("wait for client");
    Run {
        command,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A kubectl binary bound to a cluster, with a HOME of its own so that its discovery cache
/// is never one another version wrote.
pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    pub home: PathBuf,
}

impl Kubectl {
    pub fn new(bin: PathBuf, cluster: &Cluster, home: &Path) -> Kubectl {
        std::fs::create_dir_all(home).expect("kubectl home");
        Kubectl {
            bin,
            kubeconfig: cluster.kubeconfig(),
            home: home.to_path_buf(),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--request-timeout=30s")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run(self.cmd(args), None)
    }

    pub fn run_in(&self, args: &[&str], stdin: &str) -> Run {
        run(self.cmd(args), Some(stdin))
    }

    /// `get -o json` of one object, managedFields included (kubectl strips them otherwise);
    /// Err with the run if kubectl failed.
    pub fn get_json(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let mut all = vec!["get"];
        all.extend(args);
        all.extend(["-o", "json", "--show-managed-fields"]);
        let run = self.run(&all);
        if !run.ok() {
            return Err(run.show());
        }
        serde_json::from_str(&run.stdout).map_err(|e| format!("{e}: {}", run.show()))
    }
}

/// Collects every failed check of a case, so one run reports all of them.
#[derive(Default)]
pub struct Failures(pub Vec<String>);

impl Failures {
    /// Records `what` failed (with `detail`) unless `ok`.
    pub fn check(&mut self, ok: bool, what: &str, detail: impl FnOnce() -> String) {
        if !ok {
            self.0.push(format!("{what}\n{}", indent(&detail())));
        }
    }

    /// Records a failed run unless it succeeded; returns whether it did.
    pub fn ran(&mut self, what: &str, run: &Run) -> bool {
        self.check(run.ok(), what, || run.show());
        run.ok()
    }

    /// Panics listing every failure, if any.
    pub fn assert_none(self, case: &str) {
        assert!(
            self.0.is_empty(),
            "{case}: {} failed:\n{}",
            self.0.len(),
            self.0
                .iter()
                .map(|f| format!("- {f}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The managedFields entry of `manager`, if the object has one.
pub fn managed_by<'a>(obj: &'a serde_json::Value, manager: &str) -> Option<&'a serde_json::Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|m| m["manager"] == manager)
}
