//! Reads `docker save` and OCI image layout tarballs into the content store.
//!
//! Both formats need random access (the manifest may come after the layers in the stream),
//! so the outer tarball is first spooled into a scratch dir; blobs then move into the store.

use super::{
    io_err, normalize_reference, Error, ImageConfig, ImageRecord, ImageStore, LayerRecord, Result,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Image config fields used by skiff; the rest of the document is kept in the blob.
#[derive(Debug, Deserialize)]
struct RawConfig {
    #[serde(default)]
    config: Option<RawProcessConfig>,
    rootfs: RawRootfs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawProcessConfig {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawRootfs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// One entry of `docker save`'s `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct OciIndex {
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Debug, Deserialize)]
struct OciManifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// Parsed image config: process defaults and the diffIDs of its layers.
pub(crate) struct ParsedConfig {
    pub(crate) config: ImageConfig,
    pub(crate) diff_ids: Vec<String>,
}

pub(crate) fn parse_config(raw: &[u8]) -> Result<ParsedConfig> {
    let c: RawConfig = serde_json::from_slice(raw).map_err(|source| Error::Json {
        what: "image config".into(),
        source,
    })?;
    let p = c.config.unwrap_or_default();
    Ok(ParsedConfig {
        config: ImageConfig {
            entrypoint: p.entrypoint.unwrap_or_default(),
            cmd: p.cmd.unwrap_or_default(),
            env: p.env.unwrap_or_default(),
            working_dir: p.working_dir.unwrap_or_default(),
            user: p.user.unwrap_or_default(),
        },
        diff_ids: c.rootfs.diff_ids,
    })
}

pub(crate) fn load(store: &ImageStore, reader: impl Read) -> Result<Vec<ImageRecord>> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let tmp = store.tmp_dir()?;
    let outer = tmp.path.join("archive");
    let gzipped = reader
        .fill_buf()
        .map_err(io_err("<input>"))?
        .starts_with(&[0x1f, 0x8b]);
    let plain: Box<dyn Read> = if gzipped {
        Box::new(flate2::bufread::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    tar::Archive::new(plain)
        .unpack(&outer)
        .map_err(|e| Error::InvalidArchive(format!("cannot read tarball: {e}")))?;
    let records = if outer.join("manifest.json").exists() {
        load_docker(store, &outer)?
    } else if outer.join("index.json").exists() {
        load_oci(store, &outer)?
    } else {
        return Err(Error::InvalidArchive(
            "neither manifest.json (docker save) nor index.json (OCI layout) found".into(),
        ));
    };
    drop(tmp);
    if records.is_empty() {
        return Err(Error::InvalidArchive("archive holds no image".into()));
    }
    Ok(records)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let raw = fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&raw).map_err(|source| Error::Json {
        what: path.display().to_string(),
        source,
    })
}

/// Resolves a path named inside the archive, refusing anything that leaves it, also
/// through symlinks (`docker save` links duplicate layers, which must stay inside).
fn inside(root: &Path, rel: &str) -> Result<PathBuf> {
    let escapes = || Error::InvalidArchive(format!("path escapes archive: {rel}"));
    if rel.split('/').any(|c| c == "..") || rel.starts_with('/') {
        return Err(escapes());
    }
    let real = root
        .join(rel)
        .canonicalize()
        .map_err(|_| Error::InvalidArchive(format!("missing from archive: {rel}")))?;
    let real_root = root.canonicalize().map_err(io_err(root))?;
    if !real.starts_with(&real_root) {
        return Err(escapes());
    }
    Ok(real)
}

fn load_docker(store: &ImageStore, outer: &Path) -> Result<Vec<ImageRecord>> {
    let entries: Vec<DockerManifestEntry> = read_json(&outer.join("manifest.json"))?;
    let mut records = Vec::new();
    for entry in entries {
        let layer_paths = entry
            .layers
            .iter()
            .map(|l| inside(outer, l))
            .collect::<Result<Vec<_>>>()?;
        let image = import(store, &inside(outer, &entry.config)?, &layer_paths)?;
        let tags = entry.repo_tags.unwrap_or_default();
        records.extend(named(image, tags));
    }
    Ok(records)
}

fn load_oci(store: &ImageStore, outer: &Path) -> Result<Vec<ImageRecord>> {
    let index: OciIndex = read_json(&outer.join("index.json"))?;
    let mut records = Vec::new();
    for desc in index.manifests {
        let names: Vec<String> = image_name(&desc.annotations).into_iter().collect();
        let manifest_desc = pick_manifest(outer, desc)?;
        let manifest: OciManifest = read_json(&blob_in(outer, &manifest_desc.digest)?)?;
        let layer_paths = manifest
            .layers
            .iter()
            .map(|l| blob_in(outer, &l.digest))
            .collect::<Result<Vec<_>>>()?;
        let image = import(
            store,
            &blob_in(outer, &manifest.config.digest)?,
            &layer_paths,
        )?;
        records.extend(named(image, names));
    }
    Ok(records)
}

/// Name of an image in an OCI index entry: containerd's full name, or `ref.name` when it is
/// a full reference (it may also be just a tag, which names nothing on its own).
fn image_name(annotations: &BTreeMap<String, String>) -> Option<String> {
    if let Some(n) = annotations.get("io.containerd.image.name") {
        return Some(n.clone());
    }
    annotations
        .get("org.opencontainers.image.ref.name")
        .filter(|n| n.contains(':') || n.contains('/'))
        .cloned()
}

/// Follows nested indexes down to the linux/amd64 manifest (or the only one).
fn pick_manifest(outer: &Path, mut desc: Descriptor) -> Result<Descriptor> {
    for _ in 0..4 {
        let is_index =
            desc.media_type.contains("image.index") || desc.media_type.contains("manifest.list");
        if !is_index {
            return Ok(desc);
        }
        let nested: OciIndex = read_json(&blob_in(outer, &desc.digest)?)?;
        let mut candidates = nested.manifests.into_iter();
        let mut fallback = None;
        desc = loop {
            match candidates.next() {
                Some(d) => {
                    let native = d
                        .platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == host_arch());
                    if native {
                        break d;
                    }
                    if fallback.is_none() && d.platform.is_none() {
                        fallback = Some(d);
                    }
                }
                None => {
                    break fallback.ok_or_else(|| {
                        Error::InvalidArchive(format!(
                            "no linux/{} manifest in index {}",
                            host_arch(),
                            desc.digest
                        ))
                    })?
                }
            }
        };
    }
    Err(Error::InvalidArchive(
        "image indexes nested too deep".into(),
    ))
}

/// This host's architecture in OCI's words (`amd64`, `arm64`).
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn blob_in(outer: &Path, digest: &str) -> Result<PathBuf> {
    let (alg, hex) = digest
        .split_once(':')
        .ok_or_else(|| Error::InvalidArchive(format!("bad digest {digest}")))?;
    let hex_ok = hex.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex_ok || !alg.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::InvalidArchive(format!("bad digest {digest}")));
    }
    inside(outer, &format!("blobs/{alg}/{hex}"))
}

/// Stores the config and layer blobs and unpacks each layer; returns an unnamed record.
fn import(store: &ImageStore, config_path: &Path, layer_paths: &[PathBuf]) -> Result<ImageRecord> {
    let raw = fs::read(config_path).map_err(io_err(config_path))?;
    let parsed = parse_config(&raw)?;
    if parsed.diff_ids.len() != layer_paths.len() {
        return Err(Error::InvalidArchive(format!(
            "config lists {} layers, manifest {}",
            parsed.diff_ids.len(),
            layer_paths.len()
        )));
    }
    let (id, _) = store.put_blob(raw.as_slice())?;
    let mut layers = Vec::new();
    let mut size = 0;
    for (path, diff_id) in layer_paths.iter().zip(&parsed.diff_ids) {
        let file = fs::File::open(path).map_err(io_err(path))?;
        let (blob, blob_size) = store.put_blob(file)?;
        store.unpack_layer(&blob, diff_id)?;
        size += blob_size;
        layers.push(LayerRecord {
            blob,
            diff_id: diff_id.clone(),
        });
    }
    Ok(ImageRecord {
        name: id.clone(),
        id,
        layers,
        size,
        repo_digest: None,
    })
}

/// One record per tag; an untagged image is recorded under its id.
fn named(image: ImageRecord, names: Vec<String>) -> Vec<ImageRecord> {
    if names.is_empty() {
        return vec![image];
    }
    names
        .into_iter()
        .map(|n| ImageRecord {
            name: normalize_reference(&n),
            ..image.clone()
        })
        .collect()
}
