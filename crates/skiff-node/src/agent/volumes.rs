//! Pod volumes as plain directories under `<data-dir>/pods/<uid>/volumes/<name>`:
//! emptyDir, configMap, secret, downwardAPI and projected files, and hostPath; and
//! persistentVolumeClaims bound to local directories under `<data-dir>/volumes`, which this
//! node publishes on its Node, creates on first mount and removes once their
//! PersistentVolume is gone (docs/decisions/0011-local-volumes.md).

use super::env::{field_value, Fetched, Sources};
use super::plan::Waiting;
use super::tokens::TokenKey;
use super::Shared;
use crate::runtime::Mount;
use k8s_openapi::api::core::v1::{
    Container, KeyToPath, Node, PersistentVolume, PersistentVolumeClaim, Pod, Volume,
};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use skiff_reconcile::{Config, Harness, ObjectKey, Outcome};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Node annotation naming the directory this node keeps local volumes in: the volume
/// controller provisions under it (only the node knows its data directory).
pub const ANN_VOLUMES_DIR: &str = "skiff.dev/local-volumes-dir";

/// The name of the node's volume reclaim loop on the harness (its workqueue metrics' `name`).
pub(crate) const RECLAIM_CONTROLLER: &str = "volume-reclaim";

/// How often the reclaim runs without a trigger: a directory left by a failed removal or
/// a PersistentVolume deleted while the watch was down is found within this.
const RECLAIM_RESYNC: Duration = Duration::from_secs(60);

/// Errors preparing volumes.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A file or directory could not be written.
    #[error("volume {volume}: {source}")]
    Io {
        /// Volume name.
        volume: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The spec refers to something missing.
    #[error("{0}")]
    Invalid(String),
    /// A persistentVolumeClaim is missing or not bound yet: the pod waits, as upstream's
    /// kubelet waits for the volume to attach rather than failing the container.
    #[error("{0}")]
    ClaimNotReady(String),
    /// The Node could not be annotated with the volumes directory.
    #[error("publishing the volumes directory: {0}")]
    Publish(#[source] kube::Error),
}

/// Where a node's local volumes live.
pub fn volumes_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("volumes")
}

/// Reads the pod's PersistentVolumeClaims and the volumes they are bound to, so mounting
/// stays pure like the ConfigMap and Secret volumes.
pub(crate) async fn fetch_claims(
    client: &kube::Client,
    pod: &Pod,
    out: &mut Fetched,
) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let names: BTreeSet<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect();
    for name in names {
        let Some(claim) = claims.get_opt(name).await? else {
            continue;
        };
        let bound = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty());
        if let Some(volume) = bound {
            if let Some(pv) = volumes.get_opt(&volume).await? {
                out.volumes.insert(volume, pv);
            }
        }
        out.claims.insert(name.to_string(), claim);
    }
    Ok(())
}

/// The directory of a bound claim's volume (`hostPath` or `local`), or why the pod must
/// wait for it, in upstream's words.
fn claim_path(ns: &str, claim: &str, sources: &Fetched) -> Result<PathBuf, VolumeError> {
    let Some(c) = sources.claims.get(claim) else {
        return Err(VolumeError::ClaimNotReady(format!(
            "persistentvolumeclaim \"{claim}\" not found"
        )));
    };
    let phase = c.status.as_ref().and_then(|s| s.phase.as_deref());
    let volume = c.spec.as_ref().and_then(|s| s.volume_name.as_deref());
    let pv = match (phase, volume) {
        (Some("Bound"), Some(v)) => sources.volumes.get(v),
        _ => None,
    };
    let Some(pv) = pv else {
        return Err(VolumeError::ClaimNotReady(format!(
            "error processing PVC {ns}/{claim}: PVC is not bound"
        )));
    };
    let spec = pv.spec.as_ref();
    let path = spec
        .and_then(|s| s.host_path.as_ref().map(|h| h.path.clone()))
        .or_else(|| spec.and_then(|s| s.local.as_ref().map(|l| l.path.clone())));
    match path {
        Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
        _ => Err(VolumeError::Invalid(format!(
            "persistentvolume {} is neither a hostPath nor a local volume",
            pv.metadata.name.as_deref().unwrap_or_default()
        ))),
    }
}

/// Creates a local volume's directory on first mount, world-writable as an emptyDir (and
/// as k3s's local-path helper makes it), so non-root images can write to it.
fn ensure_volume_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
}

/// What a container shows when its volumes cannot be set up: a claim that is missing or
/// unbound keeps it `ContainerCreating` with a `FailedMount` event (retried on the next
/// pass, so it starts once bound); anything else is a config error.
pub(crate) fn not_mounted(shared: &Shared, pod: &Pod, e: VolumeError) -> Waiting {
    match e {
        VolumeError::ClaimNotReady(message) => {
            shared.recorder.event(
                super::events::container_ref(pod, None),
                super::events::WARNING,
                "FailedMount",
                message.clone(),
            );
            Waiting {
                reason: "ContainerCreating".into(),
                message: Some(message),
            }
        }
        other => Waiting {
            reason: "CreateContainerConfigError".into(),
            message: Some(other.to_string()),
        },
    }
}

/// Directories under the volumes dir that no existing PersistentVolume points to.
/// `present` must be read before `volumes` is listed: a directory is made only after its
/// volume exists, so one seen before the list and absent from it belongs to a deleted PV.
pub fn orphan_dirs(present: &[PathBuf], volumes: &[PersistentVolume]) -> Vec<PathBuf> {
    let used: BTreeSet<PathBuf> = volumes
        .iter()
        .filter_map(|v| v.spec.as_ref())
        .filter_map(|s| {
            s.host_path
                .as_ref()
                .map(|h| h.path.clone())
                .or_else(|| s.local.as_ref().map(|l| l.path.clone()))
        })
        .map(|p| PathBuf::from(p.trim_end_matches('/')))
        .collect();
    present
        .iter()
        .filter(|p| !used.contains(*p))
        .cloned()
        .collect()
}

/// Whether `node` lacks the annotation saying where this node keeps local volumes (a
/// Node deleted and registered again loses it, and the volume controller provisions by it).
pub fn needs_volumes_dir(node: Option<&Node>, dir: &Path) -> bool {
    let published = node
        .and_then(|n| n.metadata.annotations.as_ref())
        .and_then(|a| a.get(ANN_VOLUMES_DIR));
    published.map(String::as_str) != Some(&*dir.to_string_lossy())
}

/// The node's volume reclaim, on the reconcile harness: one key, synced when a
/// PersistentVolume or this Node changes, at each resync, and retried with back-off while
/// a step fails. A sync publishes where this node keeps local volumes and removes the
/// directories of deleted PersistentVolumes. The node does it, not the controller, because
/// the directories are on this node's filesystem.
pub(crate) async fn maintain(shared: std::sync::Arc<Shared>) {
    let own = kube::runtime::watcher::Config::default()
        .fields(&format!("metadata.name={}", shared.cfg.node_name));
    let mut controller = Harness::new(RECLAIM_CONTROLLER, shared.client.clone())
        .config(Config {
            workers: 1,
            resync: Some(RECLAIM_RESYNC),
            ..Config::default()
        })
        .metrics(&super::metrics::workqueue())
        .keys()
        .key(ObjectKey::named(RECLAIM_CONTROLLER));
    let node = controller.cache_with::<Node>(own.clone());
    let volumes = controller.cache::<PersistentVolume>();
    let controller = controller
        .triggers::<PersistentVolume>()
        .watches_with::<Node, _>(own, |_| [ObjectKey::named(RECLAIM_CONTROLLER)]);
    let ctx = std::sync::Arc::new(ReclaimCtx {
        shared,
        node,
        volumes,
    });
    controller.run_keys(|_, ctx| reclaim(ctx), ctx).await;
}

/// What a reclaim reads: this Node and every PersistentVolume, from the harness's caches.
struct ReclaimCtx {
    shared: std::sync::Arc<Shared>,
    node: Store<Node>,
    volumes: Store<PersistentVolume>,
}

/// One reclaim pass. The directory listing is read before the volumes cache (see
/// [`orphan_dirs`]); the filesystem work runs on the blocking pool.
async fn reclaim(ctx: std::sync::Arc<ReclaimCtx>) -> Result<Outcome, VolumeError> {
    let dir = volumes_dir(&ctx.shared.cfg.data_dir);
    let name = &ctx.shared.cfg.node_name;
    let node = ctx.node.get(&ObjectRef::new(name));
    if node.is_some() && needs_volumes_dir(node.as_deref(), &dir) {
        let patch = serde_json::json!({"metadata": {"annotations": {
            ANN_VOLUMES_DIR: dir.to_string_lossy(),
        }}});
        Api::<Node>::all(ctx.shared.client.clone())
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(VolumeError::Publish)?;
    }
    let listed = dir.clone();
    let present: Vec<PathBuf> = tokio::task::spawn_blocking(move || {
        std::fs::read_dir(&listed)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    })
    .await
    .unwrap_or_default();
    if present.is_empty() {
        return Ok(Outcome::Done);
    }
    let volumes: Vec<PersistentVolume> =
        ctx.volumes.state().iter().map(|v| (**v).clone()).collect();
    let orphans = orphan_dirs(&present, &volumes);
    if orphans.is_empty() {
        return Ok(Outcome::Done);
    }
    let failed = tokio::task::spawn_blocking(move || {
        let mut failed = None;
        for orphan in orphans {
            match std::fs::remove_dir_all(&orphan) {
                Ok(()) => tracing::info!(path = %orphan.display(),
                    "removed the directory of a deleted volume"),
                Err(source) => {
                    failed = Some(VolumeError::Io {
                        volume: orphan.display().to_string(),
                        source,
                    })
                }
            }
        }
        failed
    })
    .await
    .unwrap_or(None);
    match failed {
        Some(e) => Err(e),
        None => Ok(Outcome::Done),
    }
}

/// Files of a volume: relative path to content.
type Files = BTreeMap<String, Vec<u8>>;

/// Directory holding a pod's volumes (removed with the pod).
pub fn pod_dir(data_dir: &Path, uid: &str) -> PathBuf {
    data_dir.join("pods").join(uid)
}

/// Whether `dir` is the root of a mount (its device differs from its parent's).
fn is_mountpoint(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(dir), dir.parent().map(std::fs::metadata)) {
        (Ok(d), Some(Ok(p))) => d.dev() != p.dev(),
        _ => false,
    }
}

/// Backs an emptyDir with `medium: Memory` by a tmpfs, as the kubelet does: its files count
/// against memory, not disk, and vanish with the pod. `size` is the volume's sizeLimit;
/// without one, tmpfs's default (half the node's memory) applies.
fn mount_tmpfs(dir: &Path, size: Option<u64>) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if is_mountpoint(dir) {
        return Ok(());
    }
    let target = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut options = "mode=0777".to_string();
    if let Some(bytes) = size {
        options.push_str(&format!(",size={bytes}"));
    }
    let options = std::ffi::CString::new(options).expect("no NUL in mount options");
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            options.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Removes a pod's volumes, unmounting memory-backed ones first (a mounted tmpfs would
/// otherwise stay behind, and with it the memory it holds).
pub fn remove_pod_dir(data_dir: &Path, uid: &str) {
    use std::os::unix::ffi::OsStrExt;
    let dir = pod_dir(data_dir, uid);
    for entry in std::fs::read_dir(dir.join("volumes"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        if is_mountpoint(&path) {
            if let Ok(target) = std::ffi::CString::new(path.as_os_str().as_bytes()) {
                // SAFETY: target is a valid NUL-terminated path.
                if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
                    tracing::warn!(path = %path.display(), error = %std::io::Error::last_os_error(), "unmounting a memory volume");
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Writes an API-sourced volume with the kubelet's atomic writer (`atomic`), so running
/// containers see its changes; returns whether its content changed.
pub(crate) fn write_volume(
    dir: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    mode: u32,
    volume: &str,
) -> Result<bool, VolumeError> {
    if let Some(bad) = files.keys().find(|p| super::atomic::check_path(p).is_err()) {
        return Err(VolumeError::Invalid(format!(
            "bad path {bad:?} in volume {volume}"
        )));
    }
    super::atomic::write(dir, files, mode).map_err(|source| VolumeError::Io {
        volume: volume.to_string(),
        source,
    })
}

/// The pod's `fsGroup`, which owns its emptyDir, configMap, secret, downwardAPI and
/// projected volumes (negative ones are refused by validation; ignored here).
fn fs_group(pod: &Pod) -> Option<(u32, bool)> {
    let sc = pod.spec.as_ref()?.security_context.as_ref()?;
    let gid = u32::try_from(sc.fs_group?).ok()?;
    let on_root_mismatch = sc.fs_group_change_policy.as_deref() == Some("OnRootMismatch");
    Some((gid, on_root_mismatch))
}

/// Gives an API-sourced volume rewritten in place to the pod's fsGroup, read-only as the
/// first write did. Always walked, whatever `fsGroupChangePolicy` says: the new version's
/// files are in a new `..<timestamp>` directory while the volume's root already looks
/// right, so `OnRootMismatch` would skip exactly what changed.
pub(crate) fn own_rewritten_volume(pod: &Pod, dir: &Path) -> std::io::Result<()> {
    match fs_group(pod) {
        Some((gid, _)) => set_ownership(dir, gid, true, false),
        None => Ok(()),
    }
}

/// The kubelet's `SetVolumeOwnership`: every file and directory under `dir` gets group
/// `gid` and group read-write (read for read-only volumes), directories also the setgid
/// bit and group search, so files made later inherit the group. With `OnRootMismatch`
/// nothing is walked when the root already has them.
fn set_ownership(
    dir: &Path,
    gid: u32,
    read_only: bool,
    on_root_mismatch: bool,
) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mask = if read_only { 0o440 } else { 0o660 };
    let wanted = |meta: &std::fs::Metadata| {
        let m = if meta.is_dir() { mask | 0o2110 } else { mask };
        (meta.mode() & 0o7777) | m
    };
    if on_root_mismatch {
        let root = std::fs::metadata(dir)?;
        if root.gid() == gid && root.mode() & 0o7777 == wanted(&root) {
            return Ok(());
        }
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p)?;
        std::os::unix::fs::lchown(&p, None, Some(gid))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(wanted(&meta)))?;
        if meta.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(())
}

fn write_files(
    dir: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    mode: u32,
    volume: &str,
) -> Result<(), VolumeError> {
    write_volume(dir, files, mode, volume).map(drop)
}

/// Writes `files` over the current version of the volume, keeping its other files (a
/// renewed token beside the projected ConfigMap and Secret keys).
fn merge_files(
    dir: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    mode: u32,
    volume: &str,
) -> Result<(), VolumeError> {
    if let Some(bad) = files.keys().find(|p| super::atomic::check_path(p).is_err()) {
        return Err(VolumeError::Invalid(format!(
            "bad path {bad:?} in volume {volume}"
        )));
    }
    let merged = |mut current: BTreeMap<String, Vec<u8>>| {
        current.extend(files.clone());
        current
    };
    super::atomic::update(dir, mode, merged)
        .map(drop)
        .map_err(|source| VolumeError::Io {
            volume: volume.to_string(),
            source,
        })
}

fn select(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
) -> BTreeMap<String, Vec<u8>> {
    match items {
        None => data,
        Some(items) => items
            .iter()
            .filter_map(|i| data.get(&i.key).map(|v| (i.path.clone(), v.clone())))
            .collect(),
    }
}

/// A downwardAPI file's content: what an env var may reference, plus the whole label and
/// annotation maps (volumes only, as upstream), one sorted `key="value"` per line as
/// upstream's `fieldpath.FormatMap`.
fn downward_value(pod: &Pod, path: &str, host_ip: &str, pod_ip: Option<&str>) -> Option<String> {
    let map = match path {
        "metadata.labels" => pod.metadata.labels.clone(),
        "metadata.annotations" => pod.metadata.annotations.clone(),
        _ => return field_value(pod, path, host_ip, pod_ip),
    };
    let lines: Vec<String> = map
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
        .collect();
    Some(lines.join("\n"))
}

pub(crate) fn volume_files(
    pod: &Pod,
    v: &Volume,
    sources: &Fetched,
    host_ip: &str,
    pod_ip: Option<&str>,
) -> Result<Option<(Files, u32)>, VolumeError> {
    let missing =
        |what: &str| VolumeError::Invalid(format!("{what} not found for volume {}", v.name));
    let cm = |name: &str| -> Option<BTreeMap<String, Vec<u8>>> {
        sources
            .config_map(name)
            .ok()
            .flatten()
            .map(|d| d.into_iter().map(|(k, v)| (k, v.into_bytes())).collect())
    };
    let secret = |name: &str| sources.secret(name).ok().flatten();
    let mode = |m: Option<i32>| m.map_or(0o644, |m| m as u32);
    if let Some(c) = &v.config_map {
        let data = match cm(&c.name) {
            Some(d) => d,
            None if c.optional == Some(true) => BTreeMap::new(),
            None => return Err(missing(&format!("configmap \"{}\"", c.name))),
        };
        return Ok(Some((select(data, c.items.as_ref()), mode(c.default_mode))));
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = match secret(&name) {
            Some(d) => d,
            None if s.optional == Some(true) => BTreeMap::new(),
            None => return Err(missing(&format!("secret \"{name}\""))),
        };
        return Ok(Some((select(data, s.items.as_ref()), mode(s.default_mode))));
    }
    let downward = |items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile]| {
        items
            .iter()
            .filter_map(|i| {
                let f = i.field_ref.as_ref()?;
                let value = downward_value(pod, &f.field_path, host_ip, pod_ip)?;
                Some((i.path.clone(), value.into_bytes()))
            })
            .collect::<BTreeMap<_, _>>()
    };
    if let Some(d) = &v.downward_api {
        let files = downward(d.items.as_deref().unwrap_or_default());
        return Ok(Some((files, mode(d.default_mode))));
    }
    if let Some(p) = &v.projected {
        let mut files = BTreeMap::new();
        for s in p.sources.iter().flatten() {
            if let Some(c) = &s.config_map {
                if let Some(d) = cm(&c.name) {
                    files.extend(select(d, c.items.as_ref()));
                }
            }
            if let Some(c) = &s.secret {
                if let Some(d) = secret(&c.name) {
                    files.extend(select(d, c.items.as_ref()));
                }
            }
            if let Some(d) = &s.downward_api {
                files.extend(downward(d.items.as_deref().unwrap_or_default()));
            }
            if let Some(t) = &s.service_account_token {
                let token = sources.tokens.get(&TokenKey::of(t)).ok_or_else(|| {
                    VolumeError::Invalid(format!("no service account token for volume {}", v.name))
                })?;
                files.insert(t.path.clone(), token.clone().into_bytes());
            }
        }
        return Ok(Some((files, mode(p.default_mode))));
    }
    Ok(None)
}

/// Rewrites the token files of the pod's projected volumes after a refresh, each with a
/// temporary file and a rename. Volumes not written yet (no container started) are left
/// to [`mounts`].
pub(crate) fn write_tokens(
    data_dir: &Path,
    pod: &Pod,
    tokens: &BTreeMap<TokenKey, String>,
) -> Result<(), VolumeError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let root = pod_dir(data_dir, uid).join("volumes");
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let Some(p) = &v.projected else { continue };
        let dir = root.join(&v.name);
        if !dir.is_dir() {
            continue;
        }
        let files: Files = p
            .sources
            .iter()
            .flatten()
            .filter_map(|s| s.service_account_token.as_ref())
            .filter_map(|t| {
                let token = tokens.get(&TokenKey::of(t))?;
                Some((t.path.clone(), token.clone().into_bytes()))
            })
            .collect();
        if !files.is_empty() {
            let mode = p.default_mode.map_or(0o644, |m| m as u32);
            merge_files(&dir, &files, mode, &v.name)?;
            if let Some((gid, _)) = fs_group(pod) {
                set_ownership(&dir, gid, true, false).map_err(|source| VolumeError::Io {
                    volume: v.name.clone(),
                    source,
                })?;
            }
        }
    }
    Ok(())
}

/// Prepares every volume of the pod and returns the mounts of one container.
pub fn mounts(
    data_dir: &Path,
    pod: &Pod,
    container: &Container,
    sources: &Fetched,
    host_ip: &str,
    pod_ip: Option<&str>,
) -> Result<Vec<Mount>, VolumeError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let root = pod_dir(data_dir, uid).join("volumes");
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
            return Err(VolumeError::Invalid(format!(
                "volumeMount {} refers to no volume",
                m.name
            )));
        };
        let io = |source| VolumeError::Io {
            volume: v.name.clone(),
            source,
        };
        let mut read_only = m.read_only.unwrap_or(false);
        let host = if let Some(c) = &v.persistent_volume_claim {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let p = claim_path(ns, &c.claim_name, sources)?;
            ensure_volume_dir(&p).map_err(io)?;
            read_only |= c.read_only.unwrap_or(false);
            p
        } else if let Some(h) = &v.host_path {
            let p = PathBuf::from(&h.path);
            match h.type_.as_deref() {
                Some("DirectoryOrCreate") => std::fs::create_dir_all(&p).map_err(io)?,
                Some("FileOrCreate") if !p.exists() => {
                    if let Some(parent) = p.parent() {
                        std::fs::create_dir_all(parent).map_err(io)?;
                    }
                    std::fs::write(&p, b"").map_err(io)?;
                }
                _ if !p.exists() && h.type_.as_deref().is_some_and(|t| !t.is_empty()) => {
                    return Err(VolumeError::Invalid(format!(
                        "hostPath {} does not exist",
                        h.path
                    )))
                }
                _ => {}
            }
            p
        } else {
            let dir = root.join(&v.name);
            match volume_files(pod, v, sources, host_ip, pod_ip)? {
                Some((files, mode)) => {
                    write_files(&dir, &files, mode, &v.name)?;
                    if let Some((gid, on_root_mismatch)) = fs_group(pod) {
                        set_ownership(&dir, gid, true, on_root_mismatch).map_err(io)?;
                    }
                }
                None => {
                    if v.empty_dir.is_none() {
                        tracing::warn!(volume = %v.name, "unsupported volume type; using an empty dir");
                    }
                    std::fs::create_dir_all(&dir).map_err(io)?;
                    if let Some(e) = v
                        .empty_dir
                        .as_ref()
                        .filter(|e| e.medium.as_deref() == Some("Memory"))
                    {
                        let size = e
                            .size_limit
                            .as_ref()
                            .and_then(|q| super::pods::quantity_bytes(&q.0));
                        mount_tmpfs(&dir, size).map_err(io)?;
                    }
                    // As the kubelet does: an emptyDir is world-writable, so images that
                    // run as a non-root user can write to it.
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                        .map_err(io)?;
                    if let Some((gid, on_root_mismatch)) = fs_group(pod) {
                        set_ownership(&dir, gid, false, on_root_mismatch).map_err(io)?;
                    }
                }
            }
            dir
        };
        let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if sub.split('/').any(|c| c == "..") => {
                return Err(VolumeError::Invalid(format!("bad subPath {sub:?}")))
            }
            Some(sub) => {
                let p = host.join(sub);
                if !p.exists() {
                    std::fs::create_dir_all(&p).map_err(io)?;
                }
                p
            }
            None => host,
        };
        out.push(Mount {
            host_path: host,
            container_path: m.mount_path.clone(),
            read_only,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(path: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(json!({"metadata": {"name": "v"}, "spec": path})).unwrap()
    }

    fn claim(phase: &str, volume: Option<&str>) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "default"},
            "spec": {"volumeName": volume},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn the_volumes_dir_is_published_until_the_node_shows_it() {
        let dir = Path::new("/var/lib/skiff/volumes");
        let node = |annotations: serde_json::Value| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n", "annotations": annotations}}))
                .unwrap()
        };
        let cases = [
            ("no node cached", None, true),
            ("no annotations", Some(node(json!(null))), true),
            (
                "another annotation only",
                Some(node(json!({"a": "b"}))),
                true,
            ),
            (
                "another directory",
                Some(node(json!({ANN_VOLUMES_DIR: "/old"}))),
                true,
            ),
            (
                "shown",
                Some(node(json!({ANN_VOLUMES_DIR: "/var/lib/skiff/volumes"}))),
                false,
            ),
        ];
        for (name, n, want) in cases {
            assert_eq!(needs_volumes_dir(n.as_ref(), dir), want, "{name}");
        }
    }

    #[test]
    fn downward_volumes_show_whole_label_and_annotation_maps() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {
            "name": "p",
            "labels": {"tier": "one", "app": "web"},
            "annotations": {"note": "say \"hi\""},
        }}))
        .unwrap();
        let v = |path| downward_value(&pod, path, "10.0.0.1", None);
        assert_eq!(v("metadata.labels").unwrap(), "app=\"web\"\ntier=\"one\"");
        assert_eq!(
            v("metadata.annotations").unwrap(),
            "note=\"say \\\"hi\\\"\""
        );
        assert_eq!(v("metadata.labels['tier']").unwrap(), "one");
        assert_eq!(v("status.hostIP").unwrap(), "10.0.0.1");
    }

    #[test]
    fn only_directories_of_deleted_volumes_are_orphans() {
        let present = [
            PathBuf::from("/d/volumes/pvc-a"),
            PathBuf::from("/d/volumes/pvc-b"),
        ];
        let volumes = [
            pv(json!({"hostPath": {"path": "/d/volumes/pvc-a"}})),
            pv(json!({"local": {"path": "/elsewhere"}})),
        ];
        assert_eq!(
            orphan_dirs(&present, &volumes),
            [PathBuf::from("/d/volumes/pvc-b")]
        );
        assert!(orphan_dirs(&present[..1], &volumes).is_empty());
    }

    #[test]
    fn a_claim_mounts_its_bound_volume_and_waits_until_then() {
        let mut fetched = Fetched::default();
        let err = claim_path("default", "data", &fetched).unwrap_err();
        assert!(matches!(err, VolumeError::ClaimNotReady(_)));
        assert_eq!(err.to_string(), "persistentvolumeclaim \"data\" not found");
        fetched.claims.insert("data".into(), claim("Pending", None));
        let err = claim_path("default", "data", &fetched).unwrap_err();
        assert_eq!(
            err.to_string(),
            "error processing PVC default/data: PVC is not bound"
        );
        fetched
            .claims
            .insert("data".into(), claim("Bound", Some("v")));
        assert!(matches!(
            claim_path("default", "data", &fetched),
            Err(VolumeError::ClaimNotReady(_))
        ));
        fetched.volumes.insert(
            "v".into(),
            pv(json!({"hostPath": {"path": "/d/volumes/pvc-a"}})),
        );
        assert_eq!(
            claim_path("default", "data", &fetched).unwrap(),
            PathBuf::from("/d/volumes/pvc-a")
        );
    }

    #[test]
    fn fs_group_owns_the_volume_with_group_access_and_setgid_dirs() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("v");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f"), b"x").unwrap();
        std::fs::set_permissions(root.join("sub/f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The process's own group: chown to it needs no privilege.
        // SAFETY: getegid has no preconditions.
        let gid = unsafe { libc::getegid() };
        set_ownership(&root, gid, false, false).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&root), 0o2775);
        assert_eq!(mode(&root.join("sub/f")), 0o660);
        assert_eq!(std::fs::metadata(root.join("sub/f")).unwrap().gid(), gid);
        // Read-only volumes get group read only.
        std::fs::set_permissions(root.join("sub/f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        set_ownership(&root, gid, true, false).unwrap();
        assert_eq!(mode(&root.join("sub/f")), 0o640);
        // OnRootMismatch: a root already right is not walked.
        std::fs::set_permissions(root.join("sub/f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        set_ownership(&root, gid, true, true).unwrap();
        assert_eq!(mode(&root.join("sub/f")), 0o600);
        // A volume rewritten in place is walked again even under OnRootMismatch: its new
        // files sit under a root that already looks right.
        let pod: Pod = serde_json::from_value(serde_json::json!({"spec": {
            "containers": [],
            "securityContext": {"fsGroup": gid, "fsGroupChangePolicy": "OnRootMismatch"},
        }}))
        .unwrap();
        own_rewritten_volume(&pod, &root).unwrap();
        assert_eq!(mode(&root.join("sub/f")), 0o640);
    }
}
