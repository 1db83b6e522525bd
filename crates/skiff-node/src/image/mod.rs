//! Image content store: blobs by sha256, a name index and unpacked layers shared by all images.
//!
//! Layout under `<data-dir>/images`:
//! - `blobs/sha256/<hex>`: config and layer blobs exactly as received (so a later registry
//!   pull can write the same content addressed files),
//! - `layers/<diffID hex>/`: each layer unpacked once, whiteouts converted to overlayfs form,
//!   used read-only as overlay lower dirs by every container of every image that shares it,
//! - `index.json`: normalized reference (`docker.io/library/busybox:latest`) -> [`ImageRecord`].
//!
//! Images arrive by [`ImageStore::load`] (archives) or [`Puller::pull`] (registries); both
//! end in the same blobs, layers and index.

mod archive;
pub mod auth;
mod layer;
pub mod pull;
mod reference;
mod registry;

pub use auth::Credentials;
pub use pull::{Error as PullError, Pulled, Puller};
pub use reference::{normalize_reference, Reference, ReferenceError};
pub use registry::{RegistryConfig, INSECURE_ENV};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Errors of the image store; each names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the store's files failed.
    #[error("image store I/O on {path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The archive is neither a `docker save` nor an OCI layout tarball, or is inconsistent.
    #[error("invalid image archive: {0}")]
    InvalidArchive(String),
    /// A JSON document (manifest, config, index) did not parse.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// Underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A layer's uncompressed content does not hash to the diffID its config promises.
    #[error("layer digest mismatch: config says {expected}, content is {actual}")]
    DiffIdMismatch {
        /// diffID from the image config.
        expected: String,
        /// sha256 of the uncompressed layer.
        actual: String,
    },
    /// No image with that name or id is in the store.
    #[error("image not found: {0}")]
    NotFound(String),
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// One layer of an image: the blob as stored and the digest of its uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// `sha256:<hex>` of the blob (possibly gzip'd) in `blobs/`.
    pub blob: String,
    /// `sha256:<hex>` of the uncompressed tar; names the unpacked dir in `layers/`.
    pub diff_id: String,
}

/// An image known to the store, as listed by `skiff image ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Normalized reference, e.g. `docker.io/library/collector:v2`, or the id when untagged.
    pub name: String,
    /// Image id: `sha256:<hex>` of the config blob (what `docker images --no-trunc` shows).
    pub id: String,
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// Sum of the layer blob sizes in bytes.
    pub size: u64,
    /// `registry/repository@sha256:<manifest digest>` for a pulled image: exactly what
    /// the registry served, so a pod's `imageID` says so as containerd's does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_digest: Option<String>,
}

impl ImageRecord {
    /// The `imageID` a container of this image reports: the repo digest when pulled,
    /// the config digest when loaded from an archive.
    pub fn image_ref(&self) -> &str {
        self.repo_digest.as_deref().unwrap_or(&self.id)
    }
}

/// The parts of an image config that decide how a container runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// `CMD`.
    pub cmd: Vec<String>,
    /// `ENV`, as `KEY=value`.
    pub env: Vec<String>,
    /// `WORKDIR`, empty when unset.
    pub working_dir: String,
    /// `USER`, as `name`, `uid` or `uid:gid`; empty when unset.
    pub user: String,
}

/// What a runtime needs to build a container's root filesystem from an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// Unpacked layer dirs, bottom first (overlayfs wants them top first: reverse them).
    pub layers: Vec<PathBuf>,
    /// Process defaults from the image.
    pub config: ImageConfig,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: BTreeMap<String, ImageRecord>,
}

/// Handle on the on-disk image store; clones share the same lock, so a clone can move into
/// a blocking task (layer unpacking) while the original keeps serving.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    /// Serializes index read-modify-write and garbage collection within this process.
    lock: Arc<Mutex<()>>,
}

impl ImageStore {
    /// Opens (creating if needed) the store rooted at `root` (usually `<data-dir>/images`).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(dir);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        // Leftovers of a load interrupted by a crash are never referenced: drop them.
        let tmp = root.join("tmp");
        if let Ok(entries) = fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        Ok(Self {
            root,
            lock: Arc::new(Mutex::new(())),
        })
    }

    /// Root directory of the store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Loads a `docker save` or OCI layout tarball (gzip'd or not) and returns the images it
    /// named; layers already present are not unpacked again.
    pub fn load(&self, reader: impl Read) -> Result<Vec<ImageRecord>> {
        let records = archive::load(self, reader)?;
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut index = self.read_index()?;
        for r in &records {
            tracing::info!(image = %r.name, id = %r.id, "image loaded");
            index.images.insert(r.name.clone(), r.clone());
        }
        self.write_index(&index)?;
        Ok(records)
    }

    /// Names a pulled image. A tag that named another image keeps that one under its repo
    /// digest (or id): running containers may still use its layers, which must not be
    /// garbage-collected by a later removal, and it stays addressable as upstream's are.
    pub fn record(&self, record: ImageRecord) -> Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut index = self.read_index()?;
        if let Some(old) = index.images.get(&record.name).cloned() {
            if old.id != record.id {
                let keep_as = old.image_ref().to_string();
                tracing::info!(image = %record.name, previous = %keep_as, "tag moved");
                index.images.entry(keep_as.clone()).or_insert(ImageRecord {
                    name: keep_as,
                    ..old
                });
            }
        }
        index.images.insert(record.name.clone(), record);
        self.write_index(&index)
    }

    /// All images, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        Ok(self.read_index()?.images.into_values().collect())
    }

    /// Finds an image by reference (normalized on the way) or by id (`sha256:...` or a
    /// unique hex prefix of it).
    pub fn get(&self, reference: &str) -> Result<ImageRecord> {
        let index = self.read_index()?;
        find(&index, reference)
            .cloned()
            .ok_or_else(|| Error::NotFound(reference.to_string()))
    }

    /// Removes a name and garbage-collects blobs and layers no other image references.
    ///
    /// Callers must not remove images that running containers use: their layers are
    /// mounted as overlay lower dirs (the agent checks this, as the kubelet does).
    pub fn remove(&self, reference: &str) -> Result<ImageRecord> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut index = self.read_index()?;
        let found = find(&index, reference)
            .cloned()
            .ok_or_else(|| Error::NotFound(reference.to_string()))?;
        index.images.remove(&found.name);
        self.write_index(&index)?;
        self.gc(&index)?;
        tracing::info!(image = %found.name, "image removed");
        Ok(found)
    }

    /// Layer dirs and process defaults of an image, for building a container rootfs.
    pub fn rootfs(&self, reference: &str) -> Result<Rootfs> {
        self.rootfs_of(&self.get(reference)?)
    }

    /// Like [`Self::rootfs`] for a record already in hand, so a container starts from
    /// exactly the image that was resolved for it even if its tag moves meanwhile.
    pub fn rootfs_of(&self, record: &ImageRecord) -> Result<Rootfs> {
        let config_path = self.blob_path(&record.id);
        let raw = fs::read(&config_path).map_err(io_err(&config_path))?;
        let config = archive::parse_config(&raw)?.config;
        let layers = record
            .layers
            .iter()
            .map(|l| self.layer_path(&l.diff_id))
            .collect();
        Ok(Rootfs { layers, config })
    }

    /// Path of a blob given its `sha256:<hex>` digest.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// Path of an unpacked layer given its diffID.
    pub fn layer_path(&self, diff_id: &str) -> PathBuf {
        self.root
            .join("layers")
            .join(diff_id.trim_start_matches("sha256:"))
    }

    /// Copies a blob into the store under its sha256, returning `(digest, size)`.
    ///
    /// Registry pulls will stream into this too.
    pub fn put_blob(&self, mut reader: impl Read) -> Result<(String, u64)> {
        let tmp = self.tmp_dir()?;
        let tmp_file = tmp.path.join("blob");
        let mut out = fs::File::create(&tmp_file).map_err(io_err(&tmp_file))?;
        let mut hashing = HashingReader::new(&mut reader);
        let size = io::copy(&mut hashing, &mut out).map_err(io_err(&tmp_file))?;
        let digest = hashing.digest();
        let dest = self.blob_path(&digest);
        if !dest.exists() {
            fs::rename(&tmp_file, &dest).map_err(io_err(&dest))?;
        }
        Ok((digest, size))
    }

    /// Unpacks a layer blob into `layers/<diffID>` unless it is there already.
    pub fn unpack_layer(&self, blob: &str, expected_diff_id: &str) -> Result<PathBuf> {
        let dest = self.layer_path(expected_diff_id);
        if dest.exists() {
            return Ok(dest);
        }
        let tmp = self.tmp_dir()?;
        let staging = tmp.path.join("layer");
        fs::create_dir(&staging).map_err(io_err(&staging))?;
        let blob_path = self.blob_path(blob);
        let file = fs::File::open(&blob_path).map_err(io_err(&blob_path))?;
        let actual =
            layer::unpack(io::BufReader::new(file), &staging).map_err(io_err(&blob_path))?;
        if actual != expected_diff_id {
            return Err(Error::DiffIdMismatch {
                expected: expected_diff_id.to_string(),
                actual,
            });
        }
        // Another load may have won the race; its copy is identical.
        if fs::rename(&staging, &dest).is_err() && !dest.exists() {
            return Err(Error::Io {
                path: dest,
                source: io::Error::other("cannot move unpacked layer into place"),
            });
        }
        tracing::debug!(diff_id = expected_diff_id, "layer unpacked");
        Ok(dest)
    }

    fn tmp_dir(&self) -> Result<TmpDir> {
        TmpDir::new(&self.root.join("tmp"))
    }

    fn read_index(&self) -> Result<Index> {
        let path = self.root.join("index.json");
        match fs::read(&path) {
            Ok(raw) => serde_json::from_slice(&raw).map_err(|source| Error::Json {
                what: path.display().to_string(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn write_index(&self, index: &Index) -> Result<()> {
        let path = self.root.join("index.json");
        let raw = serde_json::to_vec_pretty(index).map_err(|source| Error::Json {
            what: "index".into(),
            source,
        })?;
        crate::util::write_atomic(&path, &raw).map_err(io_err(&path))
    }

    fn gc(&self, index: &Index) -> Result<()> {
        let mut blobs = BTreeSet::new();
        let mut layers = BTreeSet::new();
        for r in index.images.values() {
            blobs.insert(hex(&r.id).to_string());
            for l in &r.layers {
                blobs.insert(hex(&l.blob).to_string());
                layers.insert(hex(&l.diff_id).to_string());
            }
        }
        remove_unlisted(&self.root.join("blobs/sha256"), &blobs)?;
        remove_unlisted(&self.root.join("layers"), &layers)
    }
}

fn hex(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

fn find<'a>(index: &'a Index, reference: &str) -> Option<&'a ImageRecord> {
    let normalized = normalize_reference(reference);
    if let Some(r) = index.images.get(&normalized) {
        return Some(r);
    }
    // `registry/repo@sha256:...` also names a tag's image when that is what it resolved to.
    if let Some(r) = index
        .images
        .values()
        .find(|r| r.repo_digest.as_deref() == Some(normalized.as_str()))
    {
        return Some(r);
    }
    let wanted = hex(reference);
    if wanted.len() >= 6 && wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut hits = index
            .images
            .values()
            .filter(|r| hex(&r.id).starts_with(wanted));
        let first = hits.next()?;
        // An id prefix naming several tags of one image is still unambiguous.
        if hits.all(|r| r.id == first.id) {
            return Some(first);
        }
    }
    None
}

fn remove_unlisted(dir: &Path, keep: &BTreeSet<String>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(io_err(dir))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let p = e.path();
        let res = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        res.map_err(io_err(&p))?;
    }
    Ok(())
}

/// A scratch directory under `images/tmp`, removed on drop (success or error).
struct TmpDir {
    path: PathBuf,
}

impl TmpDir {
    fn new(parent: &Path) -> Result<Self> {
        let path = parent.join(crate::util::unique_suffix());
        fs::create_dir_all(&path).map_err(io_err(&path))?;
        Ok(Self { path })
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Hashes everything read through it, so digests cost no second pass over the data.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// `sha256:<hex>` of the bytes read so far.
    pub(crate) fn digest(&self) -> String {
        format!("sha256:{:x}", self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
