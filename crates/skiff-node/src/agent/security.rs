//! A Pod's and a container's securityContext resolved into what the runtime enforces, as
//! the kubelet does before it calls the CRI: the effective context (container fields over
//! the pod's), `runAsNonRoot` checked against the image's user with upstream's messages,
//! the user string containerd would build, the seccomp profile by precedence (container,
//! pod, the node's default), supplemental groups with fsGroup, the safe sysctls, the
//! AppArmor profile (field, then the deprecated annotation) and the SELinux label, and the
//! kubelet's AppArmor admission ([`apparmor_admission`]). Pure but for [`HostLsm`]'s
//! detection; the runtime's [`crate::runtime::security`] maps the result onto the OCI spec.

use crate::runtime::security::{AppArmor, AppArmorProfileData, APPARMOR_DEFAULT_PROFILE};
use crate::runtime::{Capabilities, Seccomp, Security};
use k8s_openapi::api::core::v1::{AppArmorProfile, Container, Pod, SELinuxOptions, SeccompProfile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The deprecated per-container AppArmor annotation (`container.apparmor...<name>`).
const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// The reason of a pod the kubelet refuses for AppArmor (`AppArmorNotAdmittedReason`).
pub(crate) const APPARMOR_NOT_ADMITTED_REASON: &str = "AppArmor";

/// Which Linux security modules the host enforces, detected once per process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HostLsm {
    /// AppArmor is on (`/sys/module/apparmor/parameters/enabled` says `Y`, as runc's
    /// `apparmor.IsEnabled`), and skiff's default profile was loaded.
    pub(crate) apparmor: bool,
    /// SELinux is on (selinuxfs mounted with an `enforce` file, as go-selinux's
    /// `GetEnabled`).
    pub(crate) selinux: bool,
}

impl HostLsm {
    /// The host's modules, detected (and the default AppArmor profile loaded) on first
    /// use, off the async runtime.
    pub(crate) async fn current() -> HostLsm {
        static LSM: OnceLock<HostLsm> = OnceLock::new();
        if let Some(l) = LSM.get() {
            return *l;
        }
        let detected = tokio::task::spawn_blocking(HostLsm::detect)
            .await
            .unwrap_or_default();
        *LSM.get_or_init(|| detected)
    }

    /// Reads the host's state and loads moby's default AppArmor profile as
    /// [`APPARMOR_DEFAULT_PROFILE`] (`apparmor_parser -Kr`, as containerd). Blocking.
    fn detect() -> HostLsm {
        let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.starts_with('Y'));
        let selinux = Path::new("/sys/fs/selinux/enforce").exists();
        if apparmor {
            let own = std::fs::read_to_string("/proc/self/attr/current").unwrap_or_default();
            let data = AppArmorProfileData::for_host(
                APPARMOR_DEFAULT_PROFILE,
                |m| Path::new("/etc/apparmor.d").join(m).exists(),
                &own,
            );
            let profile = crate::runtime::security::apparmor_default_profile(&data);
            if let Err(e) = load_apparmor_profile(&profile) {
                // Containers asking for RuntimeDefault then fail to create with runc's
                // error, naming the missing profile.
                tracing::warn!(error = %e, "loading the default AppArmor profile");
            }
        }
        HostLsm { apparmor, selinux }
    }
}

/// `apparmor_parser -Kr` with the profile on stdin (replace, and skip the cache that may
/// sit on a read-only filesystem).
fn load_apparmor_profile(profile: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("apparmor_parser")
        .arg("-Kr")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(profile.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// The node's side of the decision (the kubelet's `--seccomp-default` and seccomp dir).
#[derive(Debug, Clone)]
pub(crate) struct NodeSecurity {
    /// RuntimeDefault for containers that set no profile (skiff's default: true).
    pub(crate) seccomp_default: bool,
    /// Where Localhost profiles live (the kubelet's `<root-dir>/seccomp`).
    pub(crate) seccomp_root: PathBuf,
    /// The host's security modules.
    pub(crate) lsm: HostLsm,
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

/// The AppArmor profile the pod asks for a container: the container's field, else the
/// pod's, else the deprecated annotation (the kubelet's `apparmor.GetProfile`).
fn requested_apparmor(pod: &Pod, c: &Container) -> Option<AppArmorProfile> {
    let field = c
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.clone())
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.security_context.as_ref())
                .and_then(|s| s.app_armor_profile.clone())
        });
    field.or_else(|| {
        let annotation = pod
            .metadata
            .annotations
            .as_ref()?
            .get(&format!("{APPARMOR_ANNOTATION_PREFIX}{}", c.name))?;
        Some(match annotation.as_str() {
            "runtime/default" => AppArmorProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            },
            "unconfined" => AppArmorProfile {
                type_: "Unconfined".into(),
                localhost_profile: None,
            },
            other => AppArmorProfile {
                type_: "Localhost".into(),
                localhost_profile: other.strip_prefix("localhost/").map(str::to_string),
            },
        })
    })
}

/// Every container of the pod: init, regular and ephemeral (as plain containers).
fn all_containers(pod: &Pod) -> Vec<Container> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let mut out: Vec<Container> = spec.init_containers.clone().unwrap_or_default();
    out.extend(spec.containers.iter().cloned());
    for e in spec.ephemeral_containers.iter().flatten() {
        out.push(Container {
            name: e.name.clone(),
            security_context: e.security_context.clone(),
            ..Default::default()
        });
    }
    out
}

/// The kubelet's AppArmor admission (`appArmorAdmitHandler`): a pending pod that needs a
/// profile (any container's other than Unconfined) on a host without AppArmor is refused,
/// the message `Err` carries going into its Failed status with reason
/// [`APPARMOR_NOT_ADMITTED_REASON`]. Running and finished pods are not checked again.
pub(crate) fn apparmor_admission(pod: &Pod, host_apparmor: bool) -> Result<(), String> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if !matches!(phase, None | Some("Pending")) || host_apparmor {
        return Ok(());
    }
    let required = all_containers(pod)
        .iter()
        .filter_map(|c| requested_apparmor(pod, c))
        .any(|p| p.type_ != "Unconfined");
    if required {
        Err("Cannot enforce AppArmor: AppArmor is not enabled on the host".into())
    } else {
        Ok(())
    }
}

/// What the runtime applies: on an AppArmor host the requested profile, and for a
/// container that asked for nothing the runtime's default unless privileged (as
/// containerd); on other hosts nothing (admission refused pods that needed a profile).
fn apparmor(pod: &Pod, c: &Container, privileged: bool, host: bool) -> Option<AppArmor> {
    if !host {
        return None;
    }
    match requested_apparmor(pod, c) {
        None if privileged => None,
        None => Some(AppArmor::RuntimeDefault),
        Some(p) => match p.type_.as_str() {
            "RuntimeDefault" => Some(AppArmor::RuntimeDefault),
            "Localhost" => p.localhost_profile.map(AppArmor::Localhost),
            _ => None,
        },
    }
}

/// containerd's SELinux process label from `seLinuxOptions` when the host enforces SELinux:
/// each part the pod gives over the container defaults (`system_u:system_r:container_t:s0`);
/// none when SELinux is off (containerd's `label.InitLabels` is a no-op then) or nothing
/// is given.
fn selinux_label(options: Option<&SELinuxOptions>, host: bool) -> Option<String> {
    let o = options.filter(|_| host)?;
    let part = |v: &Option<String>, d: &str| {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(d)
            .to_string()
    };
    Some(format!(
        "{}:{}:{}:{}",
        part(&o.user, "system_u"),
        part(&o.role, "system_r"),
        part(&o.type_, "container_t"),
        part(&o.level, "s0")
    ))
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
        apparmor: apparmor(pod, c, privileged, node.lsm.apparmor),
        selinux_label: selinux_label(
            sc.se_linux_options
                .as_ref()
                .or(psc.se_linux_options.as_ref()),
            node.lsm.selinux,
        ),
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
            lsm: HostLsm::default(),
        }
    }

    fn annotated(
        annotations: serde_json::Value,
        psc: serde_json::Value,
        csc: serde_json::Value,
        phase: Option<&str>,
    ) -> (Pod, Container) {
        let (mut p, c) = pod(psc, csc);
        p.metadata.annotations = serde_json::from_value(annotations).unwrap();
        p.status = phase.map(|ph| k8s_openapi::api::core::v1::PodStatus {
            phase: Some(ph.into()),
            ..Default::default()
        });
        (p, c)
    }

    #[test]
    fn apparmor_admission_is_the_kubelets() {
        let refused =
            Err("Cannot enforce AppArmor: AppArmor is not enabled on the host".to_string());
        let cases = [
            (
                "nothing asked",
                json!(null),
                json!({}),
                json!({}),
                Some("Pending"),
                false,
                Ok(()),
            ),
            (
                "container RuntimeDefault",
                json!(null),
                json!({}),
                json!({"appArmorProfile": {"type": "RuntimeDefault"}}),
                Some("Pending"),
                false,
                refused.clone(),
            ),
            (
                "pod Localhost",
                json!(null),
                json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}),
                json!({}),
                None,
                false,
                refused.clone(),
            ),
            (
                "Unconfined is never required",
                json!(null),
                json!({"appArmorProfile": {"type": "Unconfined"}}),
                json!({}),
                Some("Pending"),
                false,
                Ok(()),
            ),
            (
                "container Unconfined over pod RuntimeDefault",
                json!(null),
                json!({"appArmorProfile": {"type": "RuntimeDefault"}}),
                json!({"appArmorProfile": {"type": "Unconfined"}}),
                Some("Pending"),
                false,
                Ok(()),
            ),
            (
                "deprecated annotation",
                json!({"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"}),
                json!({}),
                json!({}),
                Some("Pending"),
                false,
                refused.clone(),
            ),
            (
                "deprecated annotation unconfined",
                json!({"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}),
                json!({}),
                json!({}),
                Some("Pending"),
                false,
                Ok(()),
            ),
            (
                "a running pod is not checked again",
                json!(null),
                json!({}),
                json!({"appArmorProfile": {"type": "RuntimeDefault"}}),
                Some("Running"),
                false,
                Ok(()),
            ),
            (
                "a host with AppArmor admits",
                json!(null),
                json!({}),
                json!({"appArmorProfile": {"type": "RuntimeDefault"}}),
                Some("Pending"),
                true,
                Ok(()),
            ),
        ];
        for (name, ann, psc, csc, phase, host, want) in cases {
            let (p, _) = annotated(ann, psc, csc, phase);
            assert_eq!(apparmor_admission(&p, host), want, "{name}");
        }
    }

    #[test]
    fn apparmor_and_selinux_resolve_as_containerd_on_hosts_that_have_them() {
        let with = |apparmor, selinux| NodeSecurity {
            lsm: HostLsm { apparmor, selinux },
            ..node()
        };
        let cases = [
            (
                "nothing: the runtime default",
                json!(null),
                json!({}),
                json!({}),
                Some(AppArmor::RuntimeDefault),
            ),
            (
                "privileged asking nothing: unconfined",
                json!(null),
                json!({}),
                json!({"privileged": true}),
                None,
            ),
            (
                "privileged asking RuntimeDefault gets it",
                json!(null),
                json!({}),
                json!({"privileged": true, "appArmorProfile": {"type": "RuntimeDefault"}}),
                Some(AppArmor::RuntimeDefault),
            ),
            (
                "pod Localhost",
                json!(null),
                json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-x"}}),
                json!({}),
                Some(AppArmor::Localhost("k8s-x".into())),
            ),
            (
                "container Unconfined",
                json!(null),
                json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-x"}}),
                json!({"appArmorProfile": {"type": "Unconfined"}}),
                None,
            ),
            (
                "annotation localhost",
                json!({"container.apparmor.security.beta.kubernetes.io/app": "localhost/k8s-y"}),
                json!({}),
                json!({}),
                Some(AppArmor::Localhost("k8s-y".into())),
            ),
            (
                "field over annotation",
                json!({"container.apparmor.security.beta.kubernetes.io/app": "localhost/k8s-y"}),
                json!({}),
                json!({"appArmorProfile": {"type": "Unconfined"}}),
                None,
            ),
        ];
        for (name, ann, psc, csc, want) in cases {
            let (p, c) = annotated(ann, psc, csc, None);
            let r = resolve(&p, &c, "", &with(true, false)).unwrap();
            assert_eq!(r.security.apparmor, want, "{name}");
            let r = resolve(&p, &c, "", &with(false, false)).unwrap();
            assert_eq!(r.security.apparmor, None, "{name} without AppArmor");
        }

        let (p, c) = pod(
            json!({"seLinuxOptions": {"level": "s0:c1,c2"}}),
            json!({"seLinuxOptions": {"type": "spc_t"}}),
        );
        // The container's options replace the pod's as a whole, as the kubelet's
        // effective context does.
        let r = resolve(&p, &c, "", &with(false, true)).unwrap();
        assert_eq!(
            r.security.selinux_label.as_deref(),
            Some("system_u:system_r:spc_t:s0")
        );
        let (p, c) = pod(json!({"seLinuxOptions": {"level": "s0:c1,c2"}}), json!({}));
        let r = resolve(&p, &c, "", &with(false, true)).unwrap();
        assert_eq!(
            r.security.selinux_label.as_deref(),
            Some("system_u:system_r:container_t:s0:c1,c2")
        );
        let r = resolve(&p, &c, "", &with(false, false)).unwrap();
        assert_eq!(
            r.security.selinux_label, None,
            "SELinux off: no label, as containerd"
        );
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
