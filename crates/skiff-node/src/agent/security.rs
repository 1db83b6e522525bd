//! A Pod's and a container's securityContext resolved into what the runtime enforces, as
//! the kubelet does before it calls the CRI: the effective context (container fields over
//! the pod's), `runAsNonRoot` checked against the image's user with upstream's messages,
//! the user string containerd would build, the seccomp profile by precedence (container,
//! pod, the node's default), supplemental groups with fsGroup, and the safe sysctls.
//! Pure; the runtime's [`crate::runtime::security`] maps the result onto the OCI spec.

use crate::runtime::{Capabilities, Seccomp, Security};
use k8s_openapi::api::core::v1::{Container, Pod, SeccompProfile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The node's side of the decision (the kubelet's `--seccomp-default` and seccomp dir).
#[derive(Debug, Clone)]
pub(crate) struct NodeSecurity {
    /// RuntimeDefault for containers that set no profile (skiff's default: true).
    pub(crate) seccomp_default: bool,
    /// Where Localhost profiles live (the kubelet's `<root-dir>/seccomp`).
    pub(crate) seccomp_root: PathBuf,
}

/// What a container runs as and under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The user override for the process (`uid`, `uid:gid`, `name:gid`); `None` keeps the
    /// image's `User`.
    pub(crate) user: Option<String>,
    /// Everything else the runtime applies.
    pub(crate) security: Security,
}

/// The sysctls the kubelet allows without `--allowed-unsafe-sysctls`
/// (`pkg/kubelet/sysctl/safe_sysctls.go`).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// upstream's `format.Pod`: `name_namespace(uid)`.
fn format_pod(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// The image's user as the CRI reports it (containerd's `ImageStatus`): a numeric user
/// part is a uid, any other a user name; no user at all is root.
fn image_user(user: &str) -> (Option<i64>, &str) {
    let name = user.split(':').next().unwrap_or_default();
    if name.is_empty() {
        return (Some(0), "");
    }
    match name.parse::<i64>() {
        Ok(uid) => (Some(uid), ""),
        Err(_) => (None, name),
    }
}

fn id32(what: &str, v: i64) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{what} {v} is out of range"))
}

/// The seccomp profile by the kubelet's precedence: the container's, else the pod's, else
/// the node's default. A Localhost profile must name a file under the node's seccomp dir.
fn seccomp(
    container: Option<&SeccompProfile>,
    pod: Option<&SeccompProfile>,
    node: &NodeSecurity,
) -> Result<Seccomp, String> {
    let Some(p) = container.or(pod) else {
        return Ok(if node.seccomp_default {
            Seccomp::RuntimeDefault
        } else {
            Seccomp::Unconfined
        });
    };
    match p.type_.as_str() {
        "RuntimeDefault" => Ok(Seccomp::RuntimeDefault),
        "Unconfined" => Ok(Seccomp::Unconfined),
        "Localhost" => {
            let name = p.localhost_profile.as_deref().unwrap_or_default();
            let rel = Path::new(name);
            if name.is_empty()
                || rel.is_absolute()
                || rel
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(format!(
                    "invalid localhostProfile {name:?}: must be a relative path under the node's seccomp directory"
                ));
            }
            Ok(Seccomp::Localhost(node.seccomp_root.join(rel)))
        }
        other => Err(format!("unsupported seccomp profile type {other:?}")),
    }
}

/// Resolves the container's security settings; `Err` is the message of a
/// `CreateContainerConfigError` (upstream's for `runAsNonRoot`).
pub(crate) fn resolve(
    pod: &Pod,
    c: &Container,
    image_user_str: &str,
    node: &NodeSecurity,
) -> Result<Resolved, String> {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let run_as_group = sc.run_as_group.or(psc.run_as_group);
    let (image_uid, image_name) = image_user(image_user_str);

    // The kubelet's verifyRunAsNonRoot.
    if sc.run_as_non_root.or(psc.run_as_non_root) == Some(true) {
        let pod = format_pod(pod);
        let name = &c.name;
        match (run_as_user, image_uid) {
            (Some(0), _) => {
                return Err(format!(
                    "container's runAsUser breaks non-root policy (pod: {pod:?}, container: {name})"
                ))
            }
            (Some(_), _) => {}
            (None, None) => {
                return Err(format!(
                    "container has runAsNonRoot and image has non-numeric user ({image_name}), cannot verify user is non-root (pod: {pod:?}, container: {name})"
                ))
            }
            (None, Some(0)) => {
                return Err(format!(
                    "container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {name})"
                ))
            }
            (None, Some(_)) => {}
        }
    }

    // containerd's generateUserString over the kubelet's effective user (the pod's, else
    // the image's uid or name); without runAsUser or runAsGroup the image's User stands.
    let user = match (run_as_user, run_as_group) {
        (None, None) => None,
        (u, g) => {
            let who = match (u, image_uid) {
                (Some(u), _) | (None, Some(u)) => id32("runAsUser", u)?.to_string(),
                (None, None) => image_name.to_string(),
            };
            Some(match g {
                Some(g) => format!("{who}:{}", id32("runAsGroup", g)?),
                None => who,
            })
        }
    };

    let mut supplemental_groups = Vec::new();
    for g in psc
        .supplemental_groups
        .iter()
        .flatten()
        .chain(&psc.fs_group)
    {
        let g = id32("supplemental group", *g)?;
        if !supplemental_groups.contains(&g) {
            supplemental_groups.push(g);
        }
    }

    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let mut sysctls = BTreeMap::new();
    for s in psc.sysctls.iter().flatten() {
        // Sysctl names may use '/' as the separator (upstream's NormalizeName).
        let name = if s.name.contains('/') {
            s.name.replace('/', ".")
        } else {
            s.name.clone()
        };
        if !SAFE_SYSCTLS.contains(&name.as_str()) {
            return Err(format!("forbidden sysctl: {:?} not allowlisted", s.name));
        }
        if host_network && name.starts_with("net.") {
            return Err(format!(
                "forbidden sysctl: {:?} not allowed with host net enabled",
                s.name
            ));
        }
        sysctls.insert(name, s.value.clone());
    }

    let privileged = sc.privileged.unwrap_or(false);
    let caps = sc.capabilities.clone().unwrap_or_default();
    let security = Security {
        privileged,
        capabilities: Capabilities {
            add: caps.add.unwrap_or_default(),
            drop: caps.drop.unwrap_or_default(),
        },
        // The kubelet's AddNoNewPrivileges: only an explicit false, never when privileged.
        no_new_privileges: !privileged && sc.allow_privilege_escalation == Some(false),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        seccomp: seccomp(
            sc.seccomp_profile.as_ref(),
            psc.seccomp_profile.as_ref(),
            node,
        )?,
        unmasked_proc: sc.proc_mount.as_deref() == Some("Unmasked"),
        supplemental_groups,
        sysctls,
    };
    Ok(Resolved { user, security })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> NodeSecurity {
        NodeSecurity {
            seccomp_default: true,
            seccomp_root: "/var/lib/skiff/seccomp".into(),
        }
    }

    fn pod(psc: serde_json::Value, csc: serde_json::Value) -> (Pod, Container) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u-1"},
            "spec": {
                "securityContext": psc,
                "containers": [{"name": "app", "image": "busybox", "securityContext": csc}],
            },
        }))
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        (pod, c)
    }

    fn run(
        psc: serde_json::Value,
        csc: serde_json::Value,
        image: &str,
    ) -> Result<Resolved, String> {
        let (p, c) = pod(psc, csc);
        resolve(&p, &c, image, &node())
    }

    /// The kubelet's TestVerifyRunAsNonRoot cases (kuberuntime/security_context_others_test.go).
    #[test]
    fn run_as_non_root_is_checked_against_the_image_user() {
        let root_pod = "(pod: \"web_prod(u-1)\", container: app)";
        let cases: Vec<(&str, serde_json::Value, serde_json::Value, &str, Option<String>)> = vec![
            ("not asked", json!({}), json!({}), "", None),
            ("asked false", json!({}), json!({"runAsNonRoot": false}), "", None),
            (
                "image has no user",
                json!({"runAsNonRoot": true}),
                json!({}),
                "",
                Some(format!("container has runAsNonRoot and image will run as root {root_pod}")),
            ),
            (
                "image user is 0",
                json!({}),
                json!({"runAsNonRoot": true}),
                "0:0",
                Some(format!("container has runAsNonRoot and image will run as root {root_pod}")),
            ),
            (
                "image user non-numeric",
                json!({}),
                json!({"runAsNonRoot": true}),
                "nobody",
                Some(format!("container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root {root_pod}")),
            ),
            ("image user 1000", json!({"runAsNonRoot": true}), json!({}), "1000", None),
            (
                "runAsUser 0",
                json!({"runAsNonRoot": true, "runAsUser": 0}),
                json!({}),
                "1000",
                Some(format!("container's runAsUser breaks non-root policy {root_pod}")),
            ),
            (
                "container runAsUser overrides the image",
                json!({"runAsNonRoot": true}),
                json!({"runAsUser": 1000}),
                "",
                None,
            ),
            (
                "container overrides pod runAsNonRoot",
                json!({"runAsNonRoot": true}),
                json!({"runAsNonRoot": false}),
                "",
                None,
            ),
        ];
        for (name, psc, csc, image, want) in cases {
            let got = run(psc, csc, image).err();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn the_user_string_is_containerds() {
        let cases = [
            (json!({}), json!({}), "nobody", None),
            (json!({"runAsUser": 1000}), json!({}), "", Some("1000")),
            (
                json!({"runAsUser": 1000, "runAsGroup": 3000}),
                json!({}),
                "",
                Some("1000:3000"),
            ),
            (
                json!({"runAsUser": 1000}),
                json!({"runAsUser": 7}),
                "",
                Some("7"),
            ),
            (
                json!({"runAsGroup": 3000}),
                json!({}),
                "nobody",
                Some("nobody:3000"),
            ),
            (
                json!({"runAsGroup": 3000}),
                json!({}),
                "42:5",
                Some("42:3000"),
            ),
            (json!({"runAsGroup": 3000}), json!({}), "", Some("0:3000")),
        ];
        for (psc, csc, image, want) in cases {
            let got = run(psc.clone(), csc.clone(), image).unwrap().user;
            assert_eq!(got.as_deref(), want, "{psc} {csc} {image}");
        }
        let err = run(json!({"runAsUser": -1}), json!({}), "").unwrap_err();
        assert_eq!(err, "runAsUser -1 is out of range");
    }

    #[test]
    fn seccomp_follows_container_then_pod_then_node() {
        let rd = json!({"type": "RuntimeDefault"});
        let un = json!({"type": "Unconfined"});
        let s = |psc, csc| run(psc, csc, "").map(|r| r.security.seccomp);
        assert_eq!(s(json!({}), json!({})), Ok(Seccomp::RuntimeDefault));
        assert_eq!(
            s(json!({"seccompProfile": un}), json!({})),
            Ok(Seccomp::Unconfined)
        );
        assert_eq!(
            s(json!({"seccompProfile": un}), json!({"seccompProfile": rd})),
            Ok(Seccomp::RuntimeDefault)
        );
        assert_eq!(
            s(json!({"seccompProfile": rd}), json!({"seccompProfile": un})),
            Ok(Seccomp::Unconfined)
        );
        assert_eq!(
            s(
                json!({}),
                json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}})
            ),
            Ok(Seccomp::Localhost(
                "/var/lib/skiff/seccomp/profiles/audit.json".into()
            ))
        );
        for bad in ["../etc/shadow", "/etc/x.json", ""] {
            let r = s(
                json!({"seccompProfile": {"type": "Localhost", "localhostProfile": bad}}),
                json!({}),
            );
            assert!(r.is_err(), "{bad}");
        }
        // With --seccomp-default=false, unset means Unconfined as upstream's default.
        let (p, c) = pod(json!({}), json!({}));
        let off = NodeSecurity {
            seccomp_default: false,
            ..node()
        };
        assert_eq!(
            resolve(&p, &c, "", &off).unwrap().security.seccomp,
            Seccomp::Unconfined
        );
    }

    #[test]
    fn container_fields_map_onto_the_runtime() {
        let r = run(
            json!({"supplementalGroups": [5, 2000], "fsGroup": 2000}),
            json!({
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "procMount": "Unmasked",
            }),
            "",
        )
        .unwrap();
        let s = r.security;
        assert_eq!(s.supplemental_groups, vec![5, 2000]);
        assert_eq!(s.capabilities.add, vec!["NET_ADMIN"]);
        assert_eq!(s.capabilities.drop, vec!["ALL"]);
        assert!(s.no_new_privileges && s.readonly_rootfs && s.unmasked_proc && !s.privileged);

        // Unset allowPrivilegeEscalation leaves no_new_privs off (AddNoNewPrivileges), and
        // privileged never gets it.
        let s = run(json!({}), json!({}), "").unwrap().security;
        assert!(!s.no_new_privileges && !s.readonly_rootfs && !s.unmasked_proc);
        let s = run(
            json!({}),
            json!({"privileged": true, "allowPrivilegeEscalation": false}),
            "",
        )
        .unwrap()
        .security;
        assert!(s.privileged && !s.no_new_privileges);
    }

    #[test]
    fn only_safe_sysctls_pass() {
        let r = run(
            json!({"sysctls": [{"name": "net/ipv4/tcp_syncookies", "value": "0"}]}),
            json!({}),
            "",
        )
        .unwrap();
        assert_eq!(
            r.security.sysctls,
            BTreeMap::from([("net.ipv4.tcp_syncookies".to_string(), "0".to_string())])
        );
        assert_eq!(
            run(
                json!({"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}),
                json!({}),
                ""
            )
            .unwrap_err(),
            "forbidden sysctl: \"kernel.msgmax\" not allowlisted"
        );
    }
}
