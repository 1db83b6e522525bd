//! The process a container runs: merging a Pod's command/args/env/workingDir with the
//! image defaults (Kubernetes rules), and resolving a user name inside the rootfs.

use super::{Error, Result};
use crate::image::ImageConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `PATH` used when neither the image nor the Pod sets one (the same as Docker's).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolved process: exactly what runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// argv.
    pub args: Vec<String>,
    /// Environment as `KEY=value`.
    pub env: Vec<String>,
    /// Working directory (absolute).
    pub cwd: String,
    /// `uid`, `uid:gid`, `name` or `name:group`; `None` runs as root.
    pub user: Option<String>,
}

impl ProcessSpec {
    /// Applies the Kubernetes rules: `command` replaces the image's ENTRYPOINT (and drops its
    /// CMD), `args` replaces CMD; Pod env overrides image env by name; `working_dir` overrides
    /// WORKDIR; `user` (from `runAsUser`/`runAsGroup`) overrides USER.
    pub fn resolve(
        image: &ImageConfig,
        command: &[String],
        args: &[String],
        env: &[(String, String)],
        working_dir: Option<&str>,
        user: Option<String>,
    ) -> Result<Self> {
        let argv: Vec<String> = match (command.is_empty(), args.is_empty()) {
            (false, _) => command.iter().chain(args).cloned().collect(),
            (true, false) => image.entrypoint.iter().chain(args).cloned().collect(),
            (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
        };
        if argv.is_empty() {
            return Err(Error::InvalidSpec(
                "no command: neither the pod nor the image sets one".into(),
            ));
        }
        let mut merged: Vec<String> = Vec::new();
        let key = |kv: &str| kv.split('=').next().unwrap_or_default().to_string();
        for kv in image
            .env
            .iter()
            .cloned()
            .chain(env.iter().map(|(k, v)| format!("{k}={v}")))
        {
            let k = key(&kv);
            merged.retain(|e| key(e) != k);
            merged.push(kv);
        }
        if !merged.iter().any(|e| key(e) == "PATH") {
            merged.insert(0, DEFAULT_PATH.to_string());
        }
        let cwd = working_dir
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .or_else(|| Some(image.working_dir.clone()).filter(|d| !d.is_empty()))
            .unwrap_or_else(|| "/".to_string());
        let user = user.or_else(|| Some(image.user.clone()).filter(|u| !u.is_empty()));
        Ok(Self {
            args: argv,
            env: merged,
            cwd,
            user,
        })
    }
}

/// Numeric identity of the process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Identity {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) additional_gids: Vec<u32>,
}

/// Resolves `user` against the container's `/etc/passwd` and `/etc/group`, as runc's
/// `user.GetExecUser` does: numeric ids need no entry, names must exist.
pub(crate) fn resolve_user(rootfs: &Path, user: Option<&str>) -> Result<Identity> {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok(Identity::default());
    };
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == u || f[2] == u));
    let uid = match (u.parse::<u32>(), &entry) {
        (Ok(n), _) => n,
        (Err(_), Some(f)) => f[2]
            .parse()
            .map_err(|_| Error::InvalidSpec(format!("bad uid for {u} in /etc/passwd")))?,
        (Err(_), None) => {
            return Err(Error::InvalidSpec(format!(
                "user {u:?} not found in the image's /etc/passwd"
            )))
        }
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    Error::InvalidSpec(format!("group {g:?} not found in the image's /etc/group"))
                })?,
        },
        None => entry.as_ref().and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    // containerd's WithAdditionalGIDs: the groups of /etc/group that list the user.
    let name = entry
        .as_ref()
        .map(|f| f[0].to_string())
        .unwrap_or_else(|| u.to_string());
    let additional_gids = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
        .filter_map(|f| f[2].parse().ok())
        .collect();
    Ok(Identity {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            env: vec!["PATH=/bin".into(), "A=image".into()],
            working_dir: "/app".into(),
            user: "nobody".into(),
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn command_replaces_entrypoint_and_drops_image_cmd() {
        let p = ProcessSpec::resolve(&image(), &s(&["sh"]), &[], &[], None, None).unwrap();
        assert_eq!(p.args, ["sh"]);
        let p = ProcessSpec::resolve(&image(), &[], &s(&["x"]), &[], None, None).unwrap();
        assert_eq!(p.args, ["/entry", "x"]);
        let p = ProcessSpec::resolve(&image(), &[], &[], &[], None, None).unwrap();
        assert_eq!(p.args, ["/entry", "default"]);
    }

    #[test]
    fn pod_env_overrides_image_env_and_path_defaults() {
        let env = vec![("A".to_string(), "pod".to_string())];
        let p = ProcessSpec::resolve(&image(), &[], &[], &env, Some("/w"), None).unwrap();
        assert_eq!(p.env, ["PATH=/bin", "A=pod"]);
        assert_eq!(p.cwd, "/w");
        assert_eq!(p.user.as_deref(), Some("nobody"));
        let bare = ImageConfig {
            cmd: vec!["x".into()],
            ..Default::default()
        };
        let p = ProcessSpec::resolve(&bare, &[], &[], &[], None, None).unwrap();
        assert_eq!(p.env, [DEFAULT_PATH]);
        assert_eq!(p.cwd, "/");
    }

    #[test]
    fn missing_command_is_an_error() {
        let r = ProcessSpec::resolve(&ImageConfig::default(), &[], &[], &[], None, None);
        assert!(matches!(r, Err(Error::InvalidSpec(_))));
    }

    #[test]
    fn user_names_resolve_through_the_rootfs_passwd() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "staff:x:50:\nwheel:x:10:root,app\naudio:x:29:appx\n",
        )
        .unwrap();
        let id = resolve_user(dir.path(), Some("app")).unwrap();
        assert_eq!((id.uid, id.gid), (1000, 1001));
        // The groups listing the user by name come along, for a numeric user too.
        assert_eq!(id.additional_gids, vec![10]);
        assert_eq!(
            resolve_user(dir.path(), Some("1000"))
                .unwrap()
                .additional_gids,
            vec![10]
        );
        let id = resolve_user(dir.path(), Some("app:staff")).unwrap();
        assert_eq!((id.uid, id.gid), (1000, 50));
        let id = resolve_user(dir.path(), Some("4242:7")).unwrap();
        assert_eq!((id.uid, id.gid), (4242, 7));
        assert!(resolve_user(dir.path(), Some("ghost")).is_err());
        assert_eq!(resolve_user(dir.path(), None).unwrap(), Identity::default());
    }
}
