//! End-to-end RBAC with the real kubectl: the article's "RBAC rules so the intern can't
//! accidentally delete production". A Role in staging for the interns group, `kubectl auth
//! can-i` (with `--as` and `--list`), the intern's own kubeconfig refused in production with
//! upstream's 403, bindings to missing roles, escalation prevention, aggregated roles and
//! what anonymous requests may see.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::Cluster;

/// Polls `check` until it holds (RBAC changes reach the authorizer through a watch).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `kubectl auth can-i <args>`: its answer line ("yes" or "no").
fn can_i(c: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend(args);
    stdout(&c.kubectl_output(&all, None)).trim().to_owned()
}

fn staging_role_for_interns(c: &Cluster) {
    c.kubectl(&["create", "namespace", "staging"]);
    c.kubectl(&["create", "namespace", "production"]);
    c.kubectl(&[
        "create",
        "role",
        "dev",
        "-n",
        "staging",
        "--verb=get,list,create",
        "--resource=deployments,pods",
    ]);
    c.kubectl(&[
        "create",
        "rolebinding",
        "interns",
        "-n",
        "staging",
        "--role=dev",
        "--group=interns",
    ]);
}

const AS_INTERN: [&str; 4] = ["--as", "intern", "--as-group", "interns"];

#[test]
fn can_i_answers_for_the_intern() {
    let c = Cluster::start();
    staging_role_for_interns(&c);
    let ask = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(AS_INTERN);
        can_i(&c, &all)
    };
    eventually("the interns' binding", || {
        ask(&["create", "deploy", "-n", "staging"]) == "yes"
    });
    assert_eq!(ask(&["delete", "deploy", "-n", "production"]), "no");
    assert_eq!(ask(&["delete", "deploy", "-n", "staging"]), "no");
    assert_eq!(ask(&["list", "pods", "-n", "staging"]), "yes");
    assert_eq!(ask(&["list", "pods", "-n", "production"]), "no");
    // The admin may do anything, anywhere.
    assert_eq!(can_i(&c, &["delete", "deploy", "-n", "production"]), "yes");

    let mut list = vec!["auth", "can-i", "--list", "-n", "staging"];
    list.extend(AS_INTERN);
    let table = c.kubectl(&list);
    let row = |resource: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(resource))
            .unwrap_or_else(|| panic!("no {resource} row in\n{table}"))
            .to_owned()
    };
    assert!(
        row("deployments.apps").ends_with("[get list create]"),
        "{table}"
    );
    assert!(row("pods").ends_with("[get list create]"), "{table}");
    // What every authenticated user has (system:basic-user, system:discovery).
    assert!(row("selfsubjectaccessreviews.authorization.k8s.io").contains("[create]"));
    assert!(table.contains("[/api/*]"), "{table}");
    // Nothing in production but what every user has.
    let mut list = vec!["auth", "can-i", "--list", "-n", "production"];
    list.extend(AS_INTERN);
    let table = c.kubectl(&list);
    assert!(!table.contains("deployments.apps"), "{table}");
}

#[test]
fn the_interns_kubeconfig_works_in_staging_and_is_refused_in_production() {
    let c = Cluster::start();
    staging_role_for_interns(&c);
    c.kubectl(&[
        "create",
        "deployment",
        "x",
        "-n",
        "production",
        "--image=busybox",
    ]);
    let intern_kubeconfig = c.dir.path().join("intern.kubeconfig");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args([
            "kubeconfig",
            "--user",
            "intern",
            "--group",
            "interns",
            "--data-dir",
        ])
        .arg(c.dir.path())
        .arg("-o")
        .arg(&intern_kubeconfig)
        .status()
        .expect("run skiff kubeconfig");
    assert!(status.success());
    let intern = |args: &[&str]| {
        std::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &intern_kubeconfig)
            .output()
            .expect("run kubectl")
    };
    eventually("the intern may list in staging", || {
        intern(&["get", "deploy", "-n", "staging"]).status.success()
    });
    let out = intern(&[
        "create",
        "deployment",
        "web",
        "-n",
        "staging",
        "--image=busybox",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = intern(&["get", "deploy", "-n", "staging", "-o", "name"]);
    assert_eq!(stdout(&out).trim(), "deployment.apps/web");
    let out = intern(&["delete", "deploy", "x", "-n", "production"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        r#"Error from server (Forbidden): deployments.apps "x" is forbidden: User "intern" cannot delete resource "deployments" in API group "apps" in the namespace "production""#
    );
    // Production's deployment is still there.
    c.kubectl(&["get", "deploy", "x", "-n", "production"]);
    let out = intern(&["auth", "can-i", "delete", "deploy", "-n", "production"]);
    assert_eq!(stdout(&out).trim(), "no");
}

#[test]
fn a_binding_to_a_missing_role_grants_nothing() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "staging"]);
    c.kubectl(&[
        "create",
        "rolebinding",
        "ghost",
        "-n",
        "staging",
        "--role=missing",
        "--user=ghost",
    ]);
    // A role the binding does not name, to know the index has caught up.
    c.kubectl(&[
        "create",
        "role",
        "present",
        "-n",
        "staging",
        "--verb=get",
        "--resource=pods",
    ]);
    c.kubectl(&[
        "create",
        "rolebinding",
        "other",
        "-n",
        "staging",
        "--role=present",
        "--user=other",
    ]);
    eventually("the bindings", || {
        can_i(&c, &["get", "pods", "-n", "staging", "--as", "other"]) == "yes"
    });
    // kubectl shows the authorizer's reason, as with upstream's RBAC.
    assert_eq!(
        can_i(&c, &["get", "pods", "-n", "staging", "--as", "ghost"]),
        r#"no - RBAC: role.rbac.authorization.k8s.io "missing" not found"#
    );
    // Creating the role later makes the binding count.
    c.kubectl(&[
        "create",
        "role",
        "missing",
        "-n",
        "staging",
        "--verb=get",
        "--resource=pods",
    ]);
    eventually("the role the binding names", || {
        can_i(&c, &["get", "pods", "-n", "staging", "--as", "ghost"]) == "yes"
    });
}

#[test]
fn writers_of_roles_cannot_escalate() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "dev"]);
    c.kubectl(&[
        "create",
        "role",
        "role-maker",
        "-n",
        "dev",
        "--verb=create",
        "--resource=roles",
    ]);
    c.kubectl(&[
        "create",
        "rolebinding",
        "maker",
        "-n",
        "dev",
        "--role=role-maker",
        "--user=maker",
    ]);
    let as_maker = ["-n", "dev", "--as", "maker"];
    eventually("the maker's binding", || {
        can_i(&c, &["create", "roles", "-n", "dev", "--as", "maker"]) == "yes"
    });
    let mut args = vec![
        "create",
        "role",
        "deleter",
        "--verb=delete",
        "--resource=deployments",
    ];
    args.extend(as_maker);
    let err = c.kubectl_err(&args, None);
    assert!(
        err.contains(r#"roles.rbac.authorization.k8s.io "deleter" is forbidden: user "maker" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#),
        "{err}"
    );
    assert!(
        err.contains(r#"{APIGroups:["apps"], Resources:["deployments"], Verbs:["delete"]}"#),
        "{err}"
    );
    assert!(c
        .kubectl_err(&["get", "role", "deleter", "-n", "dev"], None)
        .contains("NotFound"));
    // Rules it holds, it may grant.
    let mut args = vec![
        "create",
        "role",
        "copy",
        "--verb=create",
        "--resource=roles",
    ];
    args.extend(as_maker);
    c.kubectl(&args);
}

#[test]
fn aggregated_roles_pick_up_labelled_roles() {
    let c = Cluster::start();
    c.kubectl_in(
        &["apply", "-f", "-"],
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: secrets-view
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
"#,
    );
    let rule = serde_json::json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]});
    // view, and through it edit and admin, which aggregate view and edit.
    for role in ["view", "edit", "admin"] {
        eventually(&format!("{role} to gain the secrets rule"), || {
            c.json(&["get", "clusterrole", role])["rules"]
                .as_array()
                .is_some_and(|rules| rules.contains(&rule))
        });
    }
    c.kubectl(&["create", "namespace", "team"]);
    c.kubectl(&[
        "create",
        "rolebinding",
        "viewers",
        "-n",
        "team",
        "--clusterrole=view",
        "--user=v",
    ]);
    eventually("the viewer's binding", || {
        can_i(&c, &["list", "secrets", "-n", "team", "--as", "v"]) == "yes"
    });
    assert_eq!(
        can_i(&c, &["list", "pods", "-n", "team", "--as", "v"]),
        "yes"
    );
    assert_eq!(
        can_i(&c, &["delete", "pods", "-n", "team", "--as", "v"]),
        "no"
    );
}

#[test]
fn anonymous_requests_see_health_and_version_only() {
    let c = Cluster::start();
    // kubectl always presents credentials (it prompts for a password when its kubeconfig
    // has none), so the anonymous identity is reached through impersonation: what RBAC
    // grants system:anonymous in system:unauthenticated.
    let anonymous = |path: &str| {
        c.kubectl_output(
            &[
                "get",
                "--raw",
                path,
                "--as",
                "system:anonymous",
                "--as-group",
                "system:unauthenticated",
            ],
            None,
        )
    };
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let out = anonymous(path);
        assert!(out.status.success(), "{path}: {}", stderr(&out));
    }
    let out = anonymous("/api/v1/namespaces/default/pods");
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        r#"Error from server (Forbidden): pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    // Discovery is for authenticated users only, as upstream since 1.14.
    let out = anonymous("/apis");
    assert_eq!(
        stderr(&out).trim(),
        r#"Error from server (Forbidden): forbidden: User "system:anonymous" cannot get path "/apis""#
    );
}

/// Sets the verbs of the rule on `pods` in ClusterRole `role` (an admin's edit; the
/// bootstrap reconciliation only runs at start).
fn set_pod_verbs(c: &Cluster, role: &str, verbs: &[&str]) {
    let mut obj = c.json(&["get", "clusterrole", role]);
    let rules = obj["rules"].as_array_mut().expect("rules");
    let pods = rules
        .iter_mut()
        .find(|r| r["resources"] == serde_json::json!(["pods"]))
        .expect("a rule on pods");
    pods["verbs"] = serde_json::json!(verbs);
    c.kubectl_in(&["replace", "-f", "-"], &obj.to_string());
}

#[test]
fn each_controller_acts_as_its_own_service_account() {
    // kube-controller-manager's --use-service-account-credentials: every controller has
    // its own identity, so taking a right from one leaves the others working.
    let c = Cluster::start();
    eventually("the controllers' ServiceAccounts", || {
        c.kubectl_output(
            &["get", "sa", "-n", "kube-system", "replicaset-controller"],
            None,
        )
        .status
        .success()
    });
    let rs_role = "system:controller:replicaset-controller";
    // The controller manager's user is on no controller role's binding.
    let binding = c.json(&["get", "clusterrolebinding", rs_role]);
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "replicaset-controller",
            "namespace": "kube-system"}])
    );
    set_pod_verbs(&c, rs_role, &["list", "watch", "patch", "delete"]);
    eventually("the ReplicaSet controller refused pod creation", || {
        can_i(
            &c,
            &[
                "create",
                "pods",
                "--as",
                "system:serviceaccount:kube-system:replicaset-controller",
            ],
        ) == "no"
    });
    c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
    ]);
    c.kubectl(&["create", "job", "batch", "--image=busybox"]);
    // The deployment controller makes the ReplicaSet and the job controller its pod, while
    // the ReplicaSet controller's creates are refused with its own name in the 403.
    let denied = r#"User "system:serviceaccount:kube-system:replicaset-controller" cannot create resource "pods" in API group "" in the namespace "default""#;
    eventually("a FailedCreate naming the ReplicaSet controller", || {
        c.kubectl(&[
            "get",
            "events",
            "--field-selector",
            "reason=FailedCreate",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .contains(denied)
    });
    eventually("the job's pod", || {
        !c.kubectl(&["get", "pods", "-l", "job-name=batch", "-o", "name"])
            .trim()
            .is_empty()
    });
    assert_eq!(
        c.kubectl(&["get", "pods", "-l", "app=web", "-o", "name"])
            .trim(),
        ""
    );
    let rs = c.json(&["get", "rs", "-l", "app=web", "--show-managed-fields"]);
    let rs = &rs["items"][0];
    // managedFields name the controller manager, as upstream's (the part of the
    // User-Agent before its first `/`); the Event names the controller.
    let managers: Vec<&str> = rs["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|f| f["manager"].as_str())
        .collect();
    assert!(
        managers.contains(&"kube-controller-manager"),
        "{managers:?}"
    );
    let reporting = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "reason=FailedCreate",
        "-o",
        "jsonpath={.items[*].reportingComponent}",
    ]);
    assert!(reporting.contains("replicaset-controller"), "{reporting}");
    // Given the right back, the ReplicaSet controller catches up.
    set_pod_verbs(&c, rs_role, &["list", "watch", "patch", "create", "delete"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while c
        .kubectl(&["get", "pods", "-l", "app=web", "-o", "name"])
        .lines()
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the ReplicaSet's pods after the fix"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const RECONCILE: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: default}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: deploy-watcher}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: deploy-watcher}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: deploy-watcher}
subjects:
- {kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}
"#;

#[test]
fn auth_reconcile_creates_adds_and_removes_only_when_asked() {
    let c = Cluster::start();
    let out = c.kubectl_in(&["auth", "reconcile", "-f", "-"], RECONCILE);
    for line in [
        "role.rbac.authorization.k8s.io/reader reconciled",
        "rolebinding.rbac.authorization.k8s.io/reader reconciled",
        "clusterrole.rbac.authorization.k8s.io/deploy-watcher reconciled",
        "clusterrolebinding.rbac.authorization.k8s.io/deploy-watcher reconciled",
    ] {
        assert!(out.contains(line), "{out}");
    }
    eventually("alice may list pods", || {
        can_i(&c, &["list", "pods", "--as", "alice"]) == "yes"
    });
    assert_eq!(
        can_i(
            &c,
            &["watch", "deployments", "--as", "x", "--as-group", "devs"]
        ),
        "yes"
    );
    // A changed file: rules and subjects are added, nothing is taken away.
    let changed = RECONCILE
        .replace("verbs: [get, list]", "verbs: [get, list, watch]")
        .replace("name: alice,", "name: bob,");
    let dry = c.kubectl_in(
        &["auth", "reconcile", "-f", "-", "--dry-run=client"],
        &changed,
    );
    assert!(
        dry.contains("role.rbac.authorization.k8s.io/reader reconciled (dry run)"),
        "{dry}"
    );
    assert_eq!(can_i(&c, &["watch", "pods", "--as", "alice"]), "no");
    c.kubectl_in(&["auth", "reconcile", "-f", "-"], &changed);
    let subjects = c.kubectl(&[
        "get",
        "rolebinding",
        "reader",
        "-o",
        "jsonpath={.subjects[*].name}",
    ]);
    assert_eq!(subjects, "alice bob");
    eventually("bob may watch pods", || {
        can_i(&c, &["watch", "pods", "--as", "bob"]) == "yes"
    });
    assert_eq!(can_i(&c, &["list", "pods", "--as", "alice"]), "yes");
    // Asked to, it removes what the file does not hold.
    c.kubectl_in(
        &[
            "auth",
            "reconcile",
            "-f",
            "-",
            "--remove-extra-subjects",
            "--remove-extra-permissions",
        ],
        &changed,
    );
    let subjects = c.kubectl(&[
        "get",
        "rolebinding",
        "reader",
        "-o",
        "jsonpath={.subjects[*].name}",
    ]);
    assert_eq!(subjects, "bob");
    eventually("alice lost her binding", || {
        can_i(&c, &["list", "pods", "--as", "alice"]) == "no"
    });
    // Bad input is refused with upstream's message and stores nothing.
    let broken = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n\
        metadata: {name: broken, namespace: default}\n\
        rules:\n- apiGroups: [\"\"]\n  resources: [pods]\n  verbs: []\n";
    let err = c.kubectl_err(&["auth", "reconcile", "-f", "-"], Some(broken));
    assert!(
        err.contains(
            r#"The Role "broken" is invalid: rules[0].verbs: Required value: verbs must contain at least one value"#
        ),
        "{err}"
    );
    assert!(!c
        .kubectl_output(&["get", "role", "broken"], None)
        .status
        .success());
}
