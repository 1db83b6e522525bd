//! Upstream's securityContext cases (`TestValidateSecurityContext`,
//! `TestValidatePodSpec`'s security context cases, `TestValidateSeccompProfileField`-style
//! cases inside `TestValidatePod`, `TestValidateAppArmorProfileFormat`, the AppArmor field
//! and annotation cases of `TestValidatePod`/`TestValidatePodUpdate`, `TestValidateSysctls`,
//! `TestValidateSeccompAnnotationsAndFieldsMatch`) as tables over whole Pods.

use serde_json::{json, Value};

use super::super::{validate, ErrorKind};
use super::{is_valid_sysctl_name, normalize_sysctl, sysctl_namespace, SysctlNamespace};
use crate::defaults::apply_defaults;

/// A defaulted Pod with one container `ctr`, the given pod-level fields merged into its
/// spec, `csc` as the container's securityContext and `annotations` on the pod.
fn pod(spec_extra: Value, csc: Value, annotations: Value) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "annotations": annotations},
        "spec": {"containers": [{"name": "ctr", "image": "img"}]}});
    if !csc.is_null() {
        p["spec"]["containers"][0]["securityContext"] = csc;
    }
    for (k, v) in spec_extra.as_object().cloned().unwrap_or_default() {
        p["spec"][k] = v;
    }
    apply_defaults("", "Pod", &mut p);
    p
}

fn messages(obj: &Value, old: Option<&Value>) -> Vec<String> {
    validate("", "Pod", obj, old)
        .iter()
        .map(|e| e.message())
        .collect()
}

#[test]
fn valid_security_contexts_pass() {
    let cases = [
        (
            "full valid",
            json!({}),
            json!({"capabilities": {"add": ["foo"], "drop": ["bar"]},
            "privileged": false, "seLinuxOptions": {"user": "user", "role": "role",
            "type": "type", "level": "level"}, "runAsUser": 1, "runAsGroup": 1,
            "runAsNonRoot": true, "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": true, "procMount": "Default"}),
        ),
        ("no run as user", json!({}), json!({"privileged": false})),
        ("no capabilities", json!({}), json!({"runAsUser": 1})),
        ("privileged", json!({}), json!({"privileged": true})),
        (
            "uid 0 and max",
            json!({}),
            json!({"runAsUser": 0, "runAsGroup": 2147483647}),
        ),
        (
            "unmasked proc in a user namespace",
            json!({"hostUsers": false}),
            json!({"procMount": "Unmasked"}),
        ),
        (
            "allowPrivilegeEscalation false alone",
            json!({}),
            json!({"allowPrivilegeEscalation": false, "capabilities": {"add": ["SYS_ADMIN"]}}),
        ),
        (
            "seccomp RuntimeDefault",
            json!({}),
            json!({"seccompProfile": {"type": "RuntimeDefault"}}),
        ),
        (
            "seccomp Localhost",
            json!({}),
            json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "filename.json"}}),
        ),
        (
            "apparmor Localhost",
            json!({}),
            json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "my-profile"}}),
        ),
        (
            "pod-level fields",
            json!({"securityContext": {"runAsUser": 1000, "runAsGroup": 1000,
            "fsGroup": 2000, "supplementalGroups": [1, 2147483647], "fsGroupChangePolicy": "OnRootMismatch",
            "supplementalGroupsPolicy": "Strict", "seLinuxChangePolicy": "Recursive",
            "seccompProfile": {"type": "Unconfined"}, "appArmorProfile": {"type": "RuntimeDefault"},
            "sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"},
                {"name": "net/ipv4/ip_local_port_range", "value": "1024 65535"}]}}),
            Value::Null,
        ),
    ];
    for (name, spec, csc) in cases {
        let errs = messages(&pod(spec, csc, json!({})), None);
        assert!(errs.is_empty(), "{name}: {errs:?}");
    }
}

#[test]
fn container_security_context_errors_are_upstreams() {
    let c = "spec.containers[0].securityContext";
    let cases: Vec<(&str, Value, Value, String)> = vec![
        ("negative RunAsUser", json!({}), json!({"runAsUser": -1}),
            format!("{c}.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive")),
        ("RunAsGroup too large", json!({}), json!({"runAsGroup": 2147483648i64}),
            format!("{c}.runAsGroup: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive")),
        ("with CAP_SYS_ADMIN and allowPrivilegeEscalation false", json!({}),
            json!({"allowPrivilegeEscalation": false, "capabilities": {"add": ["CAP_SYS_ADMIN"]}}),
            format!("{c}: Invalid value: core.SecurityContext{{Capabilities:(*core.Capabilities)(0xc000000000), Privileged:(*bool)(nil), SELinuxOptions:(*core.SELinuxOptions)(nil), WindowsOptions:(*core.WindowsSecurityContextOptions)(nil), RunAsUser:(*int64)(nil), RunAsGroup:(*int64)(nil), RunAsNonRoot:(*bool)(nil), ReadOnlyRootFilesystem:(*bool)(nil), AllowPrivilegeEscalation:(*bool)(0xc000000000), ProcMount:(*core.ProcMountType)(nil), SeccompProfile:(*core.SeccompProfile)(nil), AppArmorProfile:(*core.AppArmorProfile)(nil)}}: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN")),
        ("with privileged and allowPrivilegeEscalation false", json!({}),
            json!({"allowPrivilegeEscalation": false, "privileged": true}),
            format!("{c}: Invalid value: core.SecurityContext{{Capabilities:(*core.Capabilities)(nil), Privileged:(*bool)(0xc000000000), SELinuxOptions:(*core.SELinuxOptions)(nil), WindowsOptions:(*core.WindowsSecurityContextOptions)(nil), RunAsUser:(*int64)(nil), RunAsGroup:(*int64)(nil), RunAsNonRoot:(*bool)(nil), ReadOnlyRootFilesystem:(*bool)(nil), AllowPrivilegeEscalation:(*bool)(0xc000000000), ProcMount:(*core.ProcMountType)(nil), SeccompProfile:(*core.SeccompProfile)(nil), AppArmorProfile:(*core.AppArmorProfile)(nil)}}: cannot set `allowPrivilegeEscalation` to false and `privileged` to true")),
        ("with unmasked proc mount type and no user namespace", json!({}),
            json!({"procMount": "Unmasked"}),
            format!("{c}.procMount: Invalid value: \"Unmasked\": `hostUsers` must be false to use `Unmasked`")),
        ("with an unknown proc mount type", json!({}), json!({"procMount": "Masked"}),
            format!("{c}.procMount: Unsupported value: \"Masked\": supported values: \"Default\", \"Unmasked\"")),
        ("seccomp type missing", json!({}), json!({"seccompProfile": {}}),
            format!("{c}.seccompProfile.type: Required value: type is required when seccompProfile is set")),
        ("seccomp type unknown", json!({}), json!({"seccompProfile": {"type": "Docker"}}),
            format!("{c}.seccompProfile.type: Unsupported value: \"Docker\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\"")),
        ("seccomp Localhost without a profile", json!({}), json!({"seccompProfile": {"type": "Localhost"}}),
            format!("{c}.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost")),
        ("seccomp Localhost absolute", json!({}),
            json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "/etc/p.json"}}),
            format!("{c}.seccompProfile.localhostProfile: Invalid value: \"/etc/p.json\": must be a relative path")),
        ("seccomp Localhost with backsteps", json!({}),
            json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "a/../../p.json"}}),
            format!("{c}.seccompProfile.localhostProfile: Invalid value: \"a/../../p.json\": must not contain '..'")),
        ("seccomp profile on RuntimeDefault", json!({}),
            json!({"seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "p.json"}}),
            format!("{c}.seccompProfile.localhostProfile: Invalid value: core.SeccompProfile{{Type:\"RuntimeDefault\", LocalhostProfile:(*string)(0xc000000000)}}: can only be set when seccomp type is Localhost")),
        ("apparmor type missing", json!({}), json!({"appArmorProfile": {}}),
            format!("{c}.appArmorProfile.type: Required value: type is required when appArmorProfile is set")),
        ("apparmor type unknown", json!({}), json!({"appArmorProfile": {"type": "Complain"}}),
            format!("{c}.appArmorProfile.type: Unsupported value: \"Complain\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\"")),
        ("apparmor Localhost without a profile", json!({}), json!({"appArmorProfile": {"type": "Localhost"}}),
            format!("{c}.appArmorProfile.localhostProfile: Required value: must be set when AppArmor type is Localhost")),
        ("apparmor Localhost empty", json!({}),
            json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": ""}}),
            format!("{c}.appArmorProfile.localhostProfile: Required value: must be set when AppArmor type is Localhost")),
        ("apparmor Localhost padded", json!({}),
            json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": " p "}}),
            format!("{c}.appArmorProfile.localhostProfile: Invalid value: \" p \": must not be padded with whitespace")),
        ("apparmor Localhost too long", json!({}),
            json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "a".repeat(4096)}}),
            format!("{c}.appArmorProfile.localhostProfile: Too long: may not be more than 4095 bytes")),
        ("apparmor profile on Unconfined", json!({}),
            json!({"appArmorProfile": {"type": "Unconfined", "localhostProfile": "p"}}),
            format!("{c}.appArmorProfile.localhostProfile: Invalid value: \"p\": can only be set when AppArmor type is Localhost")),
    ];
    for (name, spec, csc, want) in cases {
        let errs = messages(&pod(spec, csc, json!({})), None);
        assert_eq!(errs, vec![want], "{name}");
    }
}

#[test]
fn pod_security_context_errors_are_upstreams() {
    let p = "spec.securityContext";
    let regex = r"^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$";
    let cases: Vec<(&str, Value, Vec<String>)> = vec![
        ("bad supplementalGroups large", json!({"securityContext": {"supplementalGroups": [2147483648i64]}}),
            vec![format!("{p}.supplementalGroups[0]: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive")]),
        ("bad supplementalGroups negative", json!({"securityContext": {"supplementalGroups": [-1]}}),
            vec![format!("{p}.supplementalGroups[0]: Invalid value: -1: must be between 0 and 2147483647, inclusive")]),
        ("bad runAsUser large", json!({"securityContext": {"runAsUser": 2147483648i64}}),
            vec![format!("{p}.runAsUser: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive")]),
        ("bad runAsGroup negative", json!({"securityContext": {"runAsGroup": -1}}),
            vec![format!("{p}.runAsGroup: Invalid value: -1: must be between 0 and 2147483647, inclusive")]),
        ("bad fsGroup", json!({"securityContext": {"fsGroup": -1}}),
            vec![format!("{p}.fsGroup: Invalid value: -1: must be between 0 and 2147483647, inclusive")]),
        ("bad fsGroupChangePolicy", json!({"securityContext": {"fsGroupChangePolicy": "invalid"}}),
            vec![format!("{p}.fsGroupChangePolicy: Unsupported value: \"invalid\": supported values: \"Always\", \"OnRootMismatch\"")]),
        ("bad supplementalGroupsPolicy", json!({"securityContext": {"supplementalGroupsPolicy": "Loose"}}),
            vec![format!("{p}.supplementalGroupsPolicy: Unsupported value: \"Loose\": supported values: \"Merge\", \"Strict\"")]),
        ("bad seLinuxChangePolicy", json!({"securityContext": {"seLinuxChangePolicy": "Never"}}),
            vec![format!("{p}.seLinuxChangePolicy: Unsupported value: \"Never\": supported values: \"MountOption\", \"Recursive\"")]),
        ("shareProcessNamespace with hostPID", json!({"hostPID": true, "shareProcessNamespace": true}),
            vec![format!("{p}.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled")]),
        ("pod seccomp Localhost without a profile", json!({"securityContext": {"seccompProfile": {"type": "Localhost"}}}),
            vec![format!("{p}.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost")]),
        ("pod apparmor type missing", json!({"securityContext": {"appArmorProfile": {"localhostProfile": "x"}}}),
            vec![format!("{p}.appArmorProfile.type: Required value: type is required when appArmorProfile is set")]),
        // TestValidateSysctls.
        ("sysctl name invalid", json!({"securityContext": {"sysctls": [
                {"name": "foo-", "value": "1"}, {"name": "bar..", "value": "1"},
                {"name": "", "value": "1"}, {"name": "kernel.msgmax", "value": "1"},
                {"name": "kernel.msgmax", "value": "2"}]}}),
            vec![
                format!("{p}.sysctls[0].name: Invalid value: \"foo-\": must have at most 253 characters and match regex {regex}"),
                format!("{p}.sysctls[1].name: Invalid value: \"bar..\": must have at most 253 characters and match regex {regex}"),
                format!("{p}.sysctls[2].name: Required value"),
                format!("{p}.sysctls[4].name: Duplicate value: \"kernel.msgmax\""),
            ]),
        ("net sysctl with hostNetwork", json!({"hostNetwork": true, "securityContext": {"sysctls": [
                {"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}]}}),
            vec![format!("{p}.sysctls[0].name: Invalid value: \"net.ipv4.ip_local_port_range\": may not be specified when 'hostNetwork' is true")]),
        ("ipc sysctl with hostIPC", json!({"hostIPC": true, "securityContext": {"sysctls": [
                {"name": "kernel.shmmax", "value": "1"}]}}),
            vec![format!("{p}.sysctls[0].name: Invalid value: \"kernel.shmmax\": may not be specified when 'hostIPC' is true")]),
    ];
    for (name, spec, want) in cases {
        let errs = messages(&pod(spec, Value::Null, json!({})), None);
        assert_eq!(errs, want, "{name}");
    }
}

#[test]
fn errors_are_unprocessable_field_errors() {
    let errs = validate(
        "",
        "Pod",
        &pod(json!({}), json!({"runAsUser": -1}), json!({})),
        None,
    );
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].kind, ErrorKind::Invalid);
    assert_eq!(
        errs[0].field,
        "spec.containers[0].securityContext.runAsUser"
    );
}

#[test]
fn workload_templates_are_checked_too() {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ns"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"},
                "annotations": {"container.apparmor.security.beta.kubernetes.io/nope": "runtime/default"}},
                "spec": {"securityContext": {"runAsUser": -5},
                    "containers": [{"name": "c", "image": "i",
                        "securityContext": {"seccompProfile": {"type": "Localhost"}}}]}}}});
    apply_defaults("apps", "Deployment", &mut d);
    let errs: Vec<String> = validate("apps", "Deployment", &d, None)
        .iter()
        .map(|e| e.message())
        .collect();
    assert_eq!(
        errs,
        vec![
            "spec.template.annotations[container.apparmor.security.beta.kubernetes.io/nope]: Invalid value: \"nope\": container not found",
            "spec.template.spec.containers[0].securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost",
            "spec.template.spec.securityContext.runAsUser: Invalid value: -5: must be between 0 and 2147483647, inclusive",
        ]
    );
}

#[test]
fn profile_annotations_are_upstreams() {
    let cases: Vec<(&str, Value, Value, Vec<&str>)> = vec![
        ("valid seccomp and apparmor annotations", json!({
            "seccomp.security.alpha.kubernetes.io/pod": "runtime/default",
            "container.seccomp.security.alpha.kubernetes.io/ctr": "localhost/foo.json",
            "container.apparmor.security.beta.kubernetes.io/ctr": "localhost/foo"}), Value::Null, vec![]),
        ("docker/default and unconfined", json!({
            "seccomp.security.alpha.kubernetes.io/pod": "docker/default",
            "container.apparmor.security.beta.kubernetes.io/ctr": "unconfined"}), Value::Null, vec![]),
        ("invalid seccomp pod annotation", json!({"seccomp.security.alpha.kubernetes.io/pod": "foo"}), Value::Null,
            vec!["metadata.annotations.seccomp.security.alpha.kubernetes.io/pod: Invalid value: \"foo\": must be a valid seccomp profile"]),
        ("seccomp localhost with backsteps", json!({"container.seccomp.security.alpha.kubernetes.io/ctr": "localhost/../etc/x"}), Value::Null,
            vec!["metadata.annotations.container.seccomp.security.alpha.kubernetes.io/ctr: Invalid value: \"../etc/x\": must not contain '..'"]),
        ("invalid apparmor profile name", json!({"container.apparmor.security.beta.kubernetes.io/ctr": "foo"}), Value::Null,
            vec!["metadata.annotations[container.apparmor.security.beta.kubernetes.io/ctr]: Invalid value: \"foo\": invalid AppArmor profile name: \"foo\""]),
        ("apparmor for a missing container", json!({"container.apparmor.security.beta.kubernetes.io/other": "runtime/default"}), Value::Null,
            vec!["metadata.annotations[container.apparmor.security.beta.kubernetes.io/other]: Invalid value: \"other\": container not found"]),
        // validateSeccompAnnotationsAndFields / validateAppArmorAnnotationsAndFieldsMatchOnCreate.
        ("seccomp annotation and field agree", json!({"container.seccomp.security.alpha.kubernetes.io/ctr": "runtime/default"}),
            json!({"seccompProfile": {"type": "RuntimeDefault"}}), vec![]),
        ("seccomp annotation and field disagree", json!({"container.seccomp.security.alpha.kubernetes.io/ctr": "unconfined"}),
            json!({"seccompProfile": {"type": "RuntimeDefault"}}),
            vec!["spec.containers[0].securityContext.seccompProfile.type: Forbidden: seccomp type in annotation and field must match"]),
        ("seccomp localhost names differ", json!({"container.seccomp.security.alpha.kubernetes.io/ctr": "localhost/a.json"}),
            json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "b.json"}}),
            vec!["spec.containers[0].securityContext.seccompProfile.localhostProfile: Forbidden: seccomp profile in annotation and field must match"]),
        ("apparmor annotation and field disagree", json!({"container.apparmor.security.beta.kubernetes.io/ctr": "unconfined"}),
            json!({"appArmorProfile": {"type": "RuntimeDefault"}}),
            vec!["spec.containers[0].securityContext.appArmorProfile.type: Forbidden: apparmor type in annotation and field must match"]),
        ("apparmor localhost names differ", json!({"container.apparmor.security.beta.kubernetes.io/ctr": "localhost/a"}),
            json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "b"}}),
            vec!["spec.containers[0].securityContext.appArmorProfile.localhostProfile: Forbidden: apparmor profile in annotation and field must match"]),
    ];
    for (name, annotations, csc, want) in cases {
        let errs = messages(&pod(json!({}), csc, annotations), None);
        assert_eq!(errs, want, "{name}");
    }
}

#[test]
fn pod_level_apparmor_field_must_match_each_containers_annotation() {
    let p = pod(
        json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
        Value::Null,
        json!({"container.apparmor.security.beta.kubernetes.io/ctr": "runtime/default"}),
    );
    assert_eq!(
        messages(&p, None),
        vec!["spec.containers[0].securityContext.appArmorProfile.type: Forbidden: apparmor type in annotation and field must match"]
    );
}

#[test]
fn apparmor_annotations_cannot_change_on_update() {
    let key = "container.apparmor.security.beta.kubernetes.io/ctr";
    let with = |v: &str| {
        let mut p = pod(json!({}), Value::Null, json!({key: v}));
        p["metadata"]["uid"] = json!("u");
        p["metadata"]["resourceVersion"] = json!("1");
        p
    };
    let mut without = pod(json!({}), Value::Null, json!({}));
    without["metadata"]["uid"] = json!("u");
    without["metadata"]["resourceVersion"] = json!("1");
    let field = format!("metadata.annotations[{key}]");
    assert_eq!(
        messages(&with("runtime/default"), Some(&without)),
        vec![format!(
            "{field}: Forbidden: may not add AppArmor annotations"
        )]
    );
    assert_eq!(
        messages(&with("unconfined"), Some(&with("runtime/default"))),
        vec![format!(
            "{field}: Forbidden: may not remove or update AppArmor annotations"
        )]
    );
    assert_eq!(
        messages(&without, Some(&with("runtime/default"))),
        vec![format!(
            "{field}: Forbidden: may not remove or update AppArmor annotations"
        )]
    );
    assert!(messages(&with("unconfined"), Some(&with("unconfined"))).is_empty());
}

#[test]
fn sysctl_names_and_namespaces() {
    // TestIsValidSysctlName.
    for good in [
        "a.b.c.d",
        "a",
        "a_b",
        "a-b",
        "abc",
        "abc.def",
        "a/b/c/d",
        "a/b.c",
        &"a".repeat(253),
    ] {
        assert!(is_valid_sysctl_name(good), "{good}");
    }
    for bad in [
        "",
        "*",
        "ä",
        "a_",
        "_",
        "__",
        "_a",
        "_a._b",
        "-",
        ".",
        "a.",
        ".a",
        "a.b.",
        "a*.b",
        "a*b",
        "*a",
        "a.*",
        "*",
        "abc*",
        "a.abc*",
        "a.b.*",
        "Abc",
        "/",
        "/a",
        "a/abc*",
        "a/b/*",
        &"a".repeat(254),
    ] {
        assert!(!is_valid_sysctl_name(bad), "{bad}");
    }
    assert_eq!(
        normalize_sysctl("net/ipv4/ip_forward"),
        "net.ipv4.ip_forward"
    );
    assert_eq!(
        normalize_sysctl("net/ipv4/conf/eno2.100/rp_filter"),
        "net.ipv4.conf.eno2/100.rp_filter"
    );
    assert_eq!(
        normalize_sysctl("net.ipv4.ip_forward"),
        "net.ipv4.ip_forward"
    );
    assert_eq!(sysctl_namespace("net/core/somaxconn"), SysctlNamespace::Net);
    assert_eq!(sysctl_namespace("kernel.sem"), SysctlNamespace::Ipc);
    assert_eq!(sysctl_namespace("fs.mqueue.msg_max"), SysctlNamespace::Ipc);
    assert_eq!(
        sysctl_namespace("kernel.shm_rmid_forced"),
        SysctlNamespace::Ipc
    );
    assert_eq!(sysctl_namespace("vm.swappiness"), SysctlNamespace::Unknown);
}
