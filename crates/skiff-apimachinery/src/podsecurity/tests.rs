//! Cases after upstream's pod-security-admission policy tests (check_*_test.go) and the
//! messages its admission returns.

use super::*;
use serde_json::json;

fn spec_check(level: Level, spec: Value) -> String {
    describe(&check(level, &json!({}), &spec))
}

#[test]
fn a_privileged_pod_violates_restricted_with_upstreams_message() {
    let spec = json!({"containers": [{"name": "nginx", "image": "nginx",
        "securityContext": {"privileged": true}}]});
    assert_eq!(
        spec_check(Level::Restricted, spec.clone()),
        "privileged (container \"nginx\" must not set securityContext.privileged=true), \
allowPrivilegeEscalation != false (container \"nginx\" must set securityContext.allowPrivilegeEscalation=false), \
unrestricted capabilities (container \"nginx\" must set securityContext.capabilities.drop=[\"ALL\"]), \
runAsNonRoot != true (pod or container \"nginx\" must set securityContext.runAsNonRoot=true), \
seccompProfile (pod or container \"nginx\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
    assert_eq!(
        spec_check(Level::Baseline, spec.clone()),
        "privileged (container \"nginx\" must not set securityContext.privileged=true)"
    );
    assert_eq!(spec_check(Level::Privileged, spec), "");
}

#[test]
fn a_restricted_pod_passes_every_level() {
    let spec = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
        "volumes": [{"name": "v", "emptyDir": {}}, {"name": "c", "configMap": {"name": "x"}}]});
    assert_eq!(spec_check(Level::Restricted, spec.clone()), "");
    assert_eq!(spec_check(Level::Baseline, spec), "");
}

#[test]
fn baseline_checks_table() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("host namespaces", json!({"hostNetwork": true, "hostIPC": true, "containers": [{"name": "a"}]}),
         "host namespaces (hostNetwork=true, hostIPC=true)"),
        ("host ports", json!({"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]},
                                               {"name": "b", "ports": [{"containerPort": 81, "hostPort": 9090}]}]}),
         "hostPort (containers \"a\", \"b\" use hostPorts 8080, 9090)"),
        ("hostPath", json!({"containers": [{"name": "a"}], "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}),
         "hostPath volumes (volume \"host\")"),
        ("capabilities", json!({"containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN", "SYS_ADMIN"]}}}]}),
         "non-default capabilities (container \"a\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add)"),
        ("seccomp unconfined", json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "a", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]}),
         "seccompProfile (pod and container \"a\" must not set securityContext.seccompProfile.type to \"Unconfined\")"),
        ("sysctls", json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "kernel.msgmax", "value": "1"}]},
            "containers": [{"name": "a"}]}),
         "forbidden sysctls (kernel.msgmax)"),
        ("procMount", json!({"containers": [{"name": "a", "securityContext": {"procMount": "Unmasked"}}]}),
         "procMount (container \"a\" must not set securityContext.procMount to \"Unmasked\")"),
        ("procMount in a user namespace", json!({"hostUsers": false, "containers": [{"name": "a", "securityContext": {"procMount": "Unmasked"}}]}),
         ""),
        ("seLinux", json!({"securityContext": {"seLinuxOptions": {"type": "spc_t"}},
            "containers": [{"name": "a", "securityContext": {"seLinuxOptions": {"user": "root", "type": "container_t"}}}]}),
         "seLinuxOptions (pod and container \"a\" set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user \"root\")"),
        ("hostProcess", json!({"containers": [{"name": "a", "securityContext": {"windowsOptions": {"hostProcess": true}}}]}),
         "hostProcess (container \"a\" must not set securityContext.windowsOptions.hostProcess=true)"),
        ("appArmor", json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}, "containers": [{"name": "a"}]}),
         "forbidden AppArmor profile (\"Unconfined\")"),
    ];
    for (name, spec, want) in cases {
        assert_eq!(spec_check(Level::Baseline, spec), want, "{name}");
    }
}

#[test]
fn restricted_checks_table() {
    let ok_ctx = json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
    let base = |mut spec: Value| {
        spec["securityContext"] =
            json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}});
        spec
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("runAsNonRoot false on a container", base(json!({"containers": [{"name": "a",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": false}}]})),
         "runAsNonRoot != true (container \"a\" must not set securityContext.runAsNonRoot=false)"),
        ("runAsUser 0", base(json!({"containers": [{"name": "a",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsUser": 0}}]})),
         "runAsUser=0 (container \"a\" must not set runAsUser=0)"),
        ("restricted volumes", base(json!({"containers": [{"name": "a", "securityContext": ok_ctx.clone()}],
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}, {"name": "n", "nfs": {"server": "x", "path": "/"}}, {"name": "ok", "secret": {"secretName": "s"}}]})),
         "restricted volume types (volumes \"h\", \"n\" use restricted volume types \"hostPath\", \"nfs\")"),
        ("added capabilities", base(json!({"containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}}]})),
         "unrestricted capabilities (container \"a\" must not include \"CHOWN\" in securityContext.capabilities.add)"),
        ("a container's unconfined seccomp", base(json!({"containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "Unconfined"}}}]})),
         "seccompProfile (container \"a\" must not set securityContext.seccompProfile.type to \"Unconfined\")"),
        ("init and ephemeral containers are checked", base(json!({"initContainers": [{"name": "init"}],
            "containers": [{"name": "a", "securityContext": ok_ctx.clone()}]})),
         "allowPrivilegeEscalation != false (container \"init\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"init\" must set securityContext.capabilities.drop=[\"ALL\"])"),
    ];
    for (name, spec, want) in cases {
        assert_eq!(spec_check(Level::Restricted, spec), want, "{name}");
    }
}

/// Upstream's `TestPolicyToEvaluate` cases.
#[test]
fn namespace_labels_choose_the_policy() {
    let cases: Vec<(&str, Value, [&str; 3], bool)> = vec![
        (
            "simple enforce",
            json!({"enforce": "baseline"}),
            ["baseline:latest", "baseline:latest", "privileged:latest"],
            false,
        ),
        (
            "simple warn",
            json!({"warn": "restricted"}),
            [
                "privileged:latest",
                "restricted:latest",
                "privileged:latest",
            ],
            false,
        ),
        (
            "simple audit",
            json!({"audit": "baseline"}),
            ["privileged:latest", "privileged:latest", "baseline:latest"],
            false,
        ),
        (
            "enforce & warn",
            json!({"enforce": "baseline", "warn": "restricted"}),
            ["baseline:latest", "restricted:latest", "privileged:latest"],
            false,
        ),
        (
            "enforce version",
            json!({"enforce": "baseline", "enforce-version": "v1.22"}),
            ["baseline:v1.22", "baseline:v1.22", "privileged:latest"],
            false,
        ),
        (
            "enforce version & warn-version",
            json!({"enforce": "baseline", "enforce-version": "v1.22", "warn-version": "latest"}),
            ["baseline:v1.22", "baseline:latest", "privileged:latest"],
            false,
        ),
        (
            "enforce & warn-version",
            json!({"enforce": "baseline", "warn-version": "v1.23"}),
            ["baseline:latest", "baseline:v1.23", "privileged:latest"],
            false,
        ),
        (
            "fully specd",
            json!({"enforce": "baseline", "enforce-version": "v1.20",
            "warn": "restricted", "warn-version": "v1.21", "audit": "restricted", "audit-version": "v1.22"}),
            ["baseline:v1.20", "restricted:v1.21", "restricted:v1.22"],
            false,
        ),
        (
            "enforce no warn",
            json!({"enforce": "baseline", "warn": "privileged"}),
            ["baseline:latest", "privileged:latest", "privileged:latest"],
            false,
        ),
        (
            "enforce warn error",
            json!({"enforce": "baseline", "warn": "foo"}),
            ["baseline:latest", "privileged:latest", "privileged:latest"],
            true,
        ),
        (
            "enforce error",
            json!({"enforce": "foo"}),
            [
                "restricted:latest",
                "privileged:latest",
                "privileged:latest",
            ],
            true,
        ),
    ];
    for (name, labels, [enforce, warn, audit], errs) in cases {
        let labels: serde_json::Map<String, Value> = labels
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (format!("{LABEL_PREFIX}{k}"), v.clone()))
            .collect();
        let (p, errors) = policy(Some(&labels));
        assert_eq!(
            [
                p.enforce.to_string(),
                p.warn.to_string(),
                p.audit.to_string()
            ],
            [enforce, warn, audit],
            "{name}"
        );
        assert_eq!(!errors.is_empty(), errs, "{name}: {errors:?}");
    }
    let (p, errors) = policy(None);
    assert_eq!(p.enforce.level, Level::Privileged);
    assert!(errors.is_empty());
    let foo = json!({"pod-security.kubernetes.io/enforce": "foo"});
    assert_eq!(
        policy(foo.as_object()).1,
        vec!["metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"foo\": must be one of privileged, baseline, restricted"]
    );
    for bad in ["foo", "", "v2.0", "v1", "1.1", "v1.01", "v1.", "v1.-1"] {
        assert!(!valid_version(bad), "{bad:?}");
    }
    for good in ["latest", "v1.0", "v1.20", "v1.10000"] {
        assert!(valid_version(good), "{good:?}");
    }
}

#[test]
fn workload_templates_are_found() {
    let deploy = json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "x"}]}}}});
    let (_, spec) = pod_template("apps", "Deployment", &deploy).unwrap();
    assert_eq!(spec["containers"][0]["name"], "x");
    let cron =
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostPID": true}}}}}});
    let (_, spec) = pod_template("batch", "CronJob", &cron).unwrap();
    assert_eq!(spec["hostPID"], true);
    assert!(pod_template("", "ConfigMap", &json!({})).is_none());
}
