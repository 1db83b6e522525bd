//! End-to-end: the same API driven by every client version users run — kubectl 1.27 to 1.35,
//! Helm 3 and 4, the Python client — judged against what upstream kube-apiserver answers.
//! The clients come from `.ci/install-clients` (SKIFF_CLIENTS_DIR); under CI=true a missing
//! one fails, elsewhere it is skipped with a note.

mod common;
mod compat;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use compat::{managed_by, Failures, Kubectl, Run};

/// How many kubectl versions run at once: each run is mostly waiting on the server, but the
/// machine has two cores shared with the other test binaries' builds.
const PARALLEL_VERSIONS: usize = 3;

fn deployment(ns: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
"
    )
}

fn configmap(ns: &str, name: &str, data: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n"
    );
    for (k, v) in data {
        yaml.push_str(&format!("  \"{k}\": \"{v}\"\n"));
    }
    yaml
}

/// Whether the `fieldsV1` of `manager`'s entry owns `.data.<key>`.
fn owns_data_key(obj: &serde_json::Value, manager: &str, key: &str) -> bool {
    managed_by(obj, manager).is_some_and(|m| !m["fieldsV1"]["f:data"][format!("f:{key}")].is_null())
}

/// The columns of the first line of a kubectl table.
fn header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect()
}

/// Whether `api-resources` printed a row for `name` with this apiVersion and kind.
fn lists_resource(out: &str, name: &str, api_version: &str, kind: &str) -> bool {
    out.lines().any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        cols.first() == Some(&name) && cols.contains(&api_version) && cols.last() == Some(&kind)
    })
}

/// Every per-version case, against one kubectl, in namespace `ns` of its own.
fn kubectl_version_cases(k: &Kubectl, ns: &str) -> Failures {
    let mut f = Failures::default();
    let created = k.run(&["create", "namespace", ns]);
    if !f.ran("create namespace", &created) {
        return f;
    }

    // Discovery: 1.27-1.29 ask for aggregated discovery as v2beta1, later ones as v2.
    let resources = k.run(&["api-resources"]);
    if f.ran("api-resources", &resources) {
        for (name, gv, kind) in [
            ("deployments", "apps/v1", "Deployment"),
            ("pods", "v1", "Pod"),
            ("configmaps", "v1", "ConfigMap"),
            ("namespaces", "v1", "Namespace"),
            ("services", "v1", "Service"),
        ] {
            f.check(
                lists_resource(&resources.stdout, name, gv, kind),
                &format!("api-resources lists {name} ({gv} {kind})"),
                || resources.show(),
            );
        }
    }

    // Client-side apply: created, then unchanged (an empty three-way patch).
    let first = k.run_in(&["apply", "-f", "-"], &deployment(ns, 2));
    if f.ran("apply (client-side)", &first) {
        f.check(
            first.stdout.trim() == "deployment.apps/web created",
            "apply prints created",
            || first.show(),
        );
        let again = k.run_in(&["apply", "-f", "-"], &deployment(ns, 2));
        f.check(
            again.ok() && again.stdout.trim() == "deployment.apps/web unchanged",
            "apply of the same file is unchanged",
            || again.show(),
        );
    }

    // get renders the server's Table: the kind's own columns, not just NAME and AGE.
    let table = k.run(&["get", "deployments", "-n", ns]);
    if f.ran("get deployments", &table) {
        f.check(
            header(&table.stdout) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
                && table
                    .stdout
                    .lines()
                    .nth(1)
                    .is_some_and(|r| r.starts_with("web ")),
            "get deployments prints the Table's columns and a row",
            || table.show(),
        );
    }

    // diff: exit 1 with the change when the file differs from the live object, 0 when not.
    let same = k.run_in(&["diff", "-f", "-"], &deployment(ns, 2));
    f.check(
        same.code == Some(0) && same.stdout.trim().is_empty(),
        "diff of the live state exits 0 and prints nothing",
        || same.show(),
    );
    let changed = k.run_in(&["diff", "-f", "-"], &deployment(ns, 3));
    f.check(
        changed.code == Some(1)
            && changed
                .stdout
                .lines()
                .any(|l| l.starts_with('-') && l.contains("replicas: 2"))
            && changed
                .stdout
                .lines()
                .any(|l| l.starts_with('+') && l.contains("replicas: 3")),
        "diff of a changed file exits 1 and shows the change",
        || changed.show(),
    );
    match k.get_json(&["deployment", "web", "-n", ns]) {
        Ok(d) => f.check(
            d["spec"]["replicas"] == 2,
            "diff changes nothing (it is a server dry run)",
            || format!("live spec.replicas is {}", d["spec"]["replicas"]),
        ),
        Err(e) => f.check(false, "get deployment after diff", || e),
    }

    // Server-side apply: applied, then applied again with a changed field, owned by kubectl.
    let ssa = k.run_in(
        &["apply", "--server-side", "-f", "-"],
        &configmap(ns, "ssa", &[("mode", "one")]),
    );
    if f.ran("apply --server-side", &ssa) {
        f.check(
            ssa.stdout.trim() == "configmap/ssa serverside-applied",
            "apply --server-side prints serverside-applied",
            || ssa.show(),
        );
        let again = k.run_in(
            &["apply", "--server-side", "-f", "-"],
            &configmap(ns, "ssa", &[("mode", "two")]),
        );
        if f.ran("apply --server-side of a changed field", &again) {
            match k.get_json(&["configmap", "ssa", "-n", ns]) {
                Ok(cm) => {
                    f.check(
                        cm["data"]["mode"] == "two",
                        "apply --server-side changed the field",
                        || format!("live data: {}", cm["data"]),
                    );
                    f.check(
                        managed_by(&cm, "kubectl").is_some_and(|m| m["operation"] == "Apply")
                            && owns_data_key(&cm, "kubectl", "mode"),
                        "managedFields: manager kubectl, operation Apply, owns .data.mode",
                        || format!("managedFields: {}", cm["metadata"]["managedFields"]),
                    );
                }
                Err(e) => f.check(false, "get configmap after apply --server-side", || e),
            }
        }
    }

    // delete --dry-run=server (dryRun travels in the DeleteOptions body) deletes nothing.
    let keep = k.run(&[
        "create",
        "configmap",
        "keep",
        "-n",
        ns,
        "--from-literal=a=1",
    ]);
    if f.ran("create configmap", &keep) {
        let dry = k.run(&["delete", "configmap", "keep", "-n", ns, "--dry-run=server"]);
        f.ran("delete configmap --dry-run=server", &dry);
        match k.get_json(&["configmap", "keep", "-n", ns]) {
            Ok(cm) => f.check(
                cm["metadata"]["deletionTimestamp"].is_null(),
                "configmap is untouched after delete --dry-run=server",
                || format!("metadata: {}", cm["metadata"]),
            ),
            Err(e) => f.check(false, "configmap survives delete --dry-run=server", || e),
        }
    }
    let dry_ns = format!("{ns}-dry");
    let made = k.run(&["create", "namespace", &dry_ns]);
    if f.ran("create namespace", &made) {
        let dry = k.run(&["delete", "namespace", &dry_ns, "--dry-run=server"]);
        f.ran("delete namespace --dry-run=server", &dry);
        match k.get_json(&["namespace", &dry_ns]) {
            Ok(n) => f.check(
                n["metadata"]["deletionTimestamp"].is_null() && n["status"]["phase"] == "Active",
                "namespace is Active after delete --dry-run=server",
                || format!("namespace: {n}"),
            ),
            Err(e) => f.check(false, "namespace survives delete --dry-run=server", || e),
        }
    }

    // create --dry-run=server answers with the object and stores nothing.
    let ghost = k.run(&[
        "create",
        "configmap",
        "ghost",
        "-n",
        ns,
        "--from-literal=a=1",
        "--dry-run=server",
    ]);
    if f.ran("create --dry-run=server", &ghost) {
        f.check(
            ghost.stdout.trim() == "configmap/ghost created (server dry run)",
            "create --dry-run=server prints the server dry run",
            || ghost.show(),
        );
    }
    let after = k.run(&["get", "configmap", "ghost", "-n", ns]);
    f.check(
        !after.ok() && after.stderr.contains("NotFound"),
        "create --dry-run=server stored nothing",
        || after.show(),
    );
    f
}

#[test]
fn every_kubectl_version_discovers_applies_diffs_and_dry_runs() {
    let cluster = compat::shared_cluster();
    let homes = tempfile::tempdir().expect("temp dir");
    let mut versions = Vec::new();
    let mut missing = Vec::new();
    for minor in compat::KUBECTL_MINORS {
        match compat::kubectl(minor) {
            Some(bin) => versions.push((minor, bin)),
            None => missing.extend(compat::missing(&format!("kubectl 1.{minor}"))),
        }
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(u32, Failures)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_VERSIONS {
            s.spawn(|| {
                while let Some((minor, bin)) = versions.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let home = homes.path().join(format!("1.{minor}"));
                    let k = Kubectl::new(bin.clone(), &cluster, &home);
                    let failures = kubectl_version_cases(&k, &format!("kubectl-1-{minor}"));
                    results.lock().unwrap().push((*minor, failures));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(minor, _)| *minor);
    let mut report = Failures(missing);
    for (minor, failures) in results {
        eprintln!(
            "kubectl 1.{minor}: {}",
            if failures.0.is_empty() {
                "all cases pass".to_string()
            } else {
                format!("{} failed", failures.0.len())
            }
        );
        report.0.extend(
            failures
                .0
                .into_iter()
                .map(|f| format!("kubectl 1.{minor}: {f}")),
        );
    }
    report.assert_none("kubectl versions");
}

/// A chart with one ConfigMap whose keys are the values' `data` map.
fn write_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: compat\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "data: {}\n").unwrap();
    std::fs::write(
        chart.join("templates/configmap.yaml"),
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
{{- range $k, $v := .Values.data }}
  {{ $k }}: {{ $v | quote }}
{{- end }}
",
    )
    .unwrap();
    chart
}

/// Installs a chart rendering keys a and b, upgrades to one rendering only a, and checks b is
/// gone; with Helm 4 (server-side apply) also that helm owns the keys it applied.
fn helm_upgrade_drops_a_key(major: u32) {
    let Some(helm) = compat::helm(major) else {
        if let Some(why) = compat::missing(&format!("helm {major}")) {
            panic!("{why}");
        }
        return;
    };
    let cluster = compat::shared_cluster();
    let tmp = tempfile::tempdir().expect("temp dir");
    let chart = write_chart(tmp.path());
    // Helm names its field manager after the program it runs as (`filepath.Base(os.Args[0])`):
    // run it as `helm`, as users do, not as `helm-4`.
    let helm = if helm.is_absolute() {
        let link = tmp.path().join("bin/helm");
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&helm, &link).expect("symlink helm");
        link
    } else {
        helm
    };
    let ns = format!("helm-{major}");
    let k = Kubectl::new(
        compat::default_kubectl(),
        &cluster,
        &tmp.path().join("home"),
    );
    let mut f = Failures::default();
    let helm_run = |args: &[&str]| -> Run {
        let mut cmd = std::process::Command::new(&helm);
        cmd.args(args)
            .args(["--namespace", &ns, "--timeout", "60s"])
            .env("KUBECONFIG", cluster.kubeconfig())
            .env("HOME", tmp.path().join("home"))
            .env("HELM_CACHE_HOME", tmp.path().join("helm/cache"))
            .env("HELM_CONFIG_HOME", tmp.path().join("helm/config"))
            .env("HELM_DATA_HOME", tmp.path().join("helm/data"));
        compat::run(cmd, None)
    };
    let chart = chart.to_str().unwrap();
    let install = helm_run(&[
        "install",
        "rel",
        chart,
        "--create-namespace",
        "--set",
        "data.a=1,data.b=2",
    ]);
    if f.ran(&format!("helm {major} install"), &install) {
        let upgrade = helm_run(&["upgrade", "rel", chart, "--set", "data.a=1"]);
        if f.ran(&format!("helm {major} upgrade"), &upgrade) {
            match k.get_json(&["configmap", "rel-settings", "-n", &ns]) {
                Ok(cm) => {
                    f.check(
                        cm["data"] == serde_json::json!({"a": "1"}),
                        "the key the upgrade no longer renders is removed",
                        || format!("live data: {}", cm["data"]),
                    );
                    if major >= 4 {
                        f.check(
                            managed_by(&cm, "helm").is_some_and(|m| m["operation"] == "Apply")
                                && owns_data_key(&cm, "helm", "a")
                                && !owns_data_key(&cm, "helm", "b"),
                            "helm 4 applies server-side: manager helm, operation Apply, owns .data.a only",
                            || format!("managedFields: {}", cm["metadata"]["managedFields"]),
                        );
                    }
                }
                Err(e) => f.check(false, "get the chart's configmap", || e),
            }
        }
    }
    f.assert_none(&format!("helm {major}"));
}

#[test]
fn helm_4_upgrade_with_server_side_apply_removes_a_dropped_key() {
    helm_upgrade_drops_a_key(4);
}

#[test]
fn helm_3_upgrade_removes_a_dropped_key() {
    helm_upgrade_drops_a_key(3);
}

/// What Helm 4 does, without Helm: two applies by manager `helm`, the second without a key.
#[test]
fn server_side_apply_removes_a_field_its_manager_stopped_applying() {
    let cluster = compat::shared_cluster();
    let tmp = tempfile::tempdir().expect("temp dir");
    let k = Kubectl::new(compat::default_kubectl(), &cluster, tmp.path());
    let ns = "ssa-prune";
    let mut f = Failures::default();
    f.ran("create namespace", &k.run(&["create", "namespace", ns]));
    let apply = ["apply", "--server-side", "--field-manager=helm", "-f", "-"];
    let first = k.run_in(
        &apply,
        &configmap(ns, "settings", &[("a", "1"), ("b", "2")]),
    );
    if f.ran("first apply", &first) {
        let second = k.run_in(&apply, &configmap(ns, "settings", &[("a", "1")]));
        if f.ran("second apply without b", &second) {
            match k.get_json(&["configmap", "settings", "-n", ns]) {
                Ok(cm) => {
                    f.check(
                        cm["data"] == serde_json::json!({"a": "1"}),
                        "b, no longer applied by its only manager, is removed",
                        || format!("live data: {}", cm["data"]),
                    );
                    f.check(
                        owns_data_key(&cm, "helm", "a") && !owns_data_key(&cm, "helm", "b"),
                        "managedFields: helm owns .data.a and not .data.b",
                        || format!("managedFields: {}", cm["metadata"]["managedFields"]),
                    );
                }
                Err(e) => f.check(false, "get configmap", || e),
            }
        }
    }
    f.assert_none("server-side apply prune");
}

#[test]
fn two_field_managers_conflict_until_one_forces_and_then_owns_the_field() {
    let cluster = compat::shared_cluster();
    let tmp = tempfile::tempdir().expect("temp dir");
    let k = Kubectl::new(compat::default_kubectl(), &cluster, tmp.path());
    let ns = "ssa-conflict";
    let mut f = Failures::default();
    f.ran("create namespace", &k.run(&["create", "namespace", ns]));
    let by = |manager: &str, force: bool, data: &[(&str, &str)]| {
        let manager = format!("--field-manager={manager}");
        let mut args = vec!["apply", "--server-side", manager.as_str(), "-f", "-"];
        if force {
            args.push("--force-conflicts");
        }
        k.run_in(&args, &configmap(ns, "shared", data))
    };
    if f.ran("apply by a", &by("a", false, &[("x", "1"), ("y", "1")])) {
        let conflict = by("b", false, &[("x", "2")]);
        f.check(
            !conflict.ok() && conflict.stderr.to_lowercase().contains("conflict"),
            "apply by b changing a's field fails with a conflict",
            || conflict.show(),
        );
        let forced = by("b", true, &[("x", "2")]);
        if f.ran("apply by b --force-conflicts", &forced) {
            match k.get_json(&["configmap", "shared", "-n", ns]) {
                Ok(cm) => {
                    f.check(
                        cm["data"] == serde_json::json!({"x": "2", "y": "1"}),
                        "forced apply took x and left y",
                        || format!("live data: {}", cm["data"]),
                    );
                    f.check(
                        owns_data_key(&cm, "b", "x")
                            && !owns_data_key(&cm, "a", "x")
                            && owns_data_key(&cm, "a", "y"),
                        "managedFields: b owns .data.x, a keeps only .data.y",
                        || format!("managedFields: {}", cm["metadata"]["managedFields"]),
                    );
                }
                Err(e) => f.check(false, "get configmap", || e),
            }
        }
        let yaml = k.run(&[
            "get",
            "configmap",
            "shared",
            "-n",
            ns,
            "-o",
            "yaml",
            "--show-managed-fields",
        ]);
        f.check(
            yaml.ok()
                && yaml.stdout.contains("managedFields:")
                && yaml.stdout.contains("manager: a")
                && yaml.stdout.contains("manager: b"),
            "get -o yaml --show-managed-fields shows both managers",
            || yaml.show(),
        );
    }
    f.assert_none("two managers");
}

#[test]
fn python_client_dry_runs_and_server_side_apply() {
    let Some(python) = compat::python_with("kubernetes") else {
        if let Some(why) = compat::missing("python3 with the kubernetes package") {
            panic!("{why}");
        }
        return;
    };
    let cluster = compat::shared_cluster();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_compat.py");
    let mut cmd = std::process::Command::new(python);
    cmd.arg(script)
        .arg(cluster.kubeconfig())
        .arg("python-client");
    let run = compat::run(cmd, None);
    assert!(run.ok(), "python client checks failed:\n{}", run.show());
}
