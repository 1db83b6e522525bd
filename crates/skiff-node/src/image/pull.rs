//! Pulls an image from an OCI registry into the store, so it lands exactly as a loaded one
//! would: blobs under their digests, layers unpacked once and shared, plus the manifest
//! digest it was resolved to (the repo digest shown as `imageID`).
//!
//! Every blob is checked against the digest its descriptor names before it enters the
//! store, and every layer against its config's diffID when unpacked; a registry (or a
//! proxy) serving other bytes fails the pull instead of running them.

use super::auth::Credentials;
use super::reference::{is_sha256_digest, Reference, ReferenceError};
use super::registry::{http_client, HttpClient, Registry, RegistryConfig, READ_TIMEOUT};
use super::{archive, ImageRecord, ImageStore, LayerRecord};
use http_body_util::BodyExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Why a pull failed; messages read like containerd's, since they end up in pod status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference is malformed.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The registry has no such repository, tag or digest.
    #[error("failed to resolve reference \"{reference}\": {reference}: not found")]
    NotFound {
        /// Normalized reference.
        reference: String,
    },
    /// The registry refused the credentials (or wanted some).
    #[error("pull access denied for {registry}: {message}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// What the registry or token server said.
        message: String,
    },
    /// Nothing answered (DNS, connect, TLS or timeout).
    #[error("failed to do request: GET {url}: {message}")]
    Unreachable {
        /// URL asked for.
        url: String,
        /// Cause, with its chain.
        message: String,
    },
    /// The registry answered with an error status.
    #[error("unexpected status from GET request to {url}: {status}: {message}")]
    Registry {
        /// URL asked for.
        url: String,
        /// HTTP status.
        status: u16,
        /// The registry's error text.
        message: String,
    },
    /// A response body broke off, stalled or could not be written down.
    #[error("reading {url}: {message}")]
    Transfer {
        /// URL being read.
        url: String,
        /// Cause.
        message: String,
    },
    /// Content does not hash to the digest that names it.
    #[error("{what} {expected}: content has digest {actual}")]
    DigestMismatch {
        /// Which document or blob.
        what: &'static str,
        /// Digest asked for.
        expected: String,
        /// sha256 of what arrived.
        actual: String,
    },
    /// A blob is larger or smaller than its descriptor says.
    #[error("blob {digest}: descriptor says {expected} bytes, registry sent {actual}")]
    SizeMismatch {
        /// Blob digest.
        digest: String,
        /// Size in the descriptor.
        expected: u64,
        /// Bytes received (so far, when too many).
        actual: u64,
    },
    /// A manifest or layer type skiff cannot run (Docker schema 1, zstd, ...).
    #[error("unsupported media type {media_type} for {what}")]
    UnsupportedMediaType {
        /// Media type given.
        media_type: String,
        /// What carried it.
        what: &'static str,
    },
    /// A manifest or config does not parse or is inconsistent.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which document.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An index lists no image for this node's platform (Docker's words).
    #[error("no matching manifest for linux/{arch} in the manifest list entries")]
    NoMatchingPlatform {
        /// This node's architecture.
        arch: &'static str,
    },
    /// The pull task ended without an outcome (it panicked or the runtime shut down).
    #[error("pull aborted: {0}")]
    Aborted(String),
    /// The TLS client could not be set up.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The store failed to take the content.
    #[error(transparent)]
    Store(#[from] super::Error),
}

/// Result type of pulls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor of the distribution spec.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the content.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Platform, on index entries.
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// The platform an index entry is for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `linux`, `windows`, or `unknown` for attestations.
    pub os: String,
    /// `v8` for arm64 and the like.
    #[serde(default)]
    pub variant: Option<String>,
}

/// A manifest as fetched: either an index of per-platform manifests or an image manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// OCI image index or Docker manifest list.
    Index(Vec<Descriptor>),
    /// One image: its config and layers, bottom first.
    Image {
        /// Config blob.
        config: Descriptor,
        /// Layer blobs.
        layers: Vec<Descriptor>,
    },
}

/// Parses a manifest by its media type (header or the document's own `mediaType`).
pub fn parse_manifest(media_type: &str, body: &[u8]) -> Result<Manifest> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        #[serde(default)]
        schema_version: u32,
        #[serde(default)]
        manifests: Option<Vec<Descriptor>>,
        #[serde(default)]
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Option<Vec<Descriptor>>,
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| Error::Invalid {
        what: "manifest",
        message: e.to_string(),
    })?;
    let invalid = |message: &str| Error::Invalid {
        what: "manifest",
        message: message.to_string(),
    };
    match media_type {
        OCI_INDEX | DOCKER_LIST => Ok(Manifest::Index(
            raw.manifests
                .ok_or_else(|| invalid("index without manifests"))?,
        )),
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(Manifest::Image {
            config: raw
                .config
                .ok_or_else(|| invalid("manifest without config"))?,
            layers: raw.layers.unwrap_or_default(),
        }),
        // Some registries send OCI documents as plain JSON; the shape tells.
        "" | "application/json" if raw.schema_version == 2 => match (raw.manifests, raw.config) {
            (Some(m), _) => Ok(Manifest::Index(m)),
            (None, Some(config)) => Ok(Manifest::Image {
                config,
                layers: raw.layers.unwrap_or_default(),
            }),
            (None, None) => Err(invalid("neither an index nor an image manifest")),
        },
        other => Err(Error::UnsupportedMediaType {
            media_type: other.to_string(),
            what: "manifest",
        }),
    }
}

/// Picks the manifest for `linux/<arch>` from an index, as Docker and containerd do;
/// attestation entries (`unknown/unknown`) never match.
pub fn select_platform<'a>(entries: &'a [Descriptor], arch: &str) -> Option<&'a Descriptor> {
    let matching = entries.iter().filter(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    });
    // arm64 images may list several variants; v8 is what an arm64 host runs natively.
    let mut best = None;
    for d in matching {
        let variant = d.platform.as_ref().and_then(|p| p.variant.as_deref());
        if best.is_none() || (arch == "arm64" && variant == Some("v8")) {
            best = Some(d);
        }
    }
    best.or_else(|| match entries {
        [only] if only.platform.is_none() => Some(only),
        _ => None,
    })
}

/// `Ok` when `body` hashes to `expected`.
pub fn verify_digest(what: &'static str, expected: &str, body: &[u8]) -> Result<()> {
    let actual = format!("sha256:{:x}", Sha256::digest(body));
    if actual == expected {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            what,
            expected: expected.to_string(),
            actual,
        })
    }
}

/// Layer media types skiff unpacks (gzip'd or plain tar; the unpacker sniffs which).
fn layer_supported(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | ""
    )
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image as now recorded in the store.
    pub record: ImageRecord,
    /// Bytes fetched from the registry (0 when every blob was already present).
    pub downloaded: u64,
    /// Wall time of the pull.
    pub duration: Duration,
}

/// Pulls images; holds the HTTP client so connections and CA certificates are set up once.
#[derive(Clone)]
pub struct Puller {
    http: HttpClient,
    config: RegistryConfig,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Puller {
    /// A puller that reaches registries as `config` says (plain HTTP for insecure ones).
    pub fn new(config: RegistryConfig) -> Result<Self> {
        Ok(Self {
            http: http_client()?,
            config,
        })
    }

    /// Resolves `reference` in its registry and fetches what the store lacks: the tag
    /// is always asked for again (so `Always` sees a moved tag), blobs and layers already
    /// present are reused. The image is then recorded under its normalized name.
    pub async fn pull(
        &self,
        store: &ImageStore,
        reference: &str,
        credentials: Option<Credentials>,
    ) -> Result<Pulled> {
        let started = Instant::now();
        let reference = Reference::parse(reference)?;
        let mut registry = Registry::new(self.http.clone(), &self.config, &reference, credentials);
        let top = registry.manifest(reference.manifest_ref()).await?;
        let top_digest = format!("sha256:{:x}", Sha256::digest(&top.body));
        if let Some(pinned) = &reference.digest {
            verify_digest("manifest", pinned, &top.body)?;
        }
        let (config, layers) = match parse_manifest(&top.media_type, &top.body)? {
            Manifest::Image { config, layers } => (config, layers),
            Manifest::Index(entries) => {
                let arch = archive::host_arch();
                let chosen = select_platform(&entries, arch)
                    .ok_or(Error::NoMatchingPlatform { arch })?
                    .clone();
                if !is_sha256_digest(&chosen.digest) {
                    return Err(Error::Invalid {
                        what: "index",
                        message: format!("bad digest {:?}", chosen.digest),
                    });
                }
                let m = registry.manifest(&chosen.digest).await?;
                verify_digest("manifest", &chosen.digest, &m.body)?;
                let media_type = if m.media_type.is_empty() {
                    chosen.media_type.clone()
                } else {
                    m.media_type
                };
                match parse_manifest(&media_type, &m.body)? {
                    Manifest::Image { config, layers } => (config, layers),
                    Manifest::Index(_) => {
                        return Err(Error::Invalid {
                            what: "index",
                            message: "an index inside an index".into(),
                        })
                    }
                }
            }
        };
        for d in std::iter::once(&config).chain(&layers) {
            if !is_sha256_digest(&d.digest) {
                return Err(Error::Invalid {
                    what: "manifest",
                    message: format!("bad digest {:?}", d.digest),
                });
            }
        }
        if let Some(bad) = layers.iter().find(|l| !layer_supported(&l.media_type)) {
            return Err(Error::UnsupportedMediaType {
                media_type: bad.media_type.clone(),
                what: "layer",
            });
        }
        let mut downloaded = 0;
        let config_raw = match std::fs::read(store.blob_path(&config.digest)) {
            Ok(raw) if verify_digest("config", &config.digest, &raw).is_ok() => raw,
            _ => {
                let raw = read_small_blob(&mut registry, &config.digest).await?;
                verify_digest("config", &config.digest, &raw)?;
                downloaded += raw.len() as u64;
                store.put_blob(raw.as_slice())?;
                raw
            }
        };
        let parsed = archive::parse_config(&config_raw).map_err(|e| Error::Invalid {
            what: "image config",
            message: e.to_string(),
        })?;
        if parsed.diff_ids.len() != layers.len() {
            return Err(Error::Invalid {
                what: "image",
                message: format!(
                    "config lists {} layers, manifest {}",
                    parsed.diff_ids.len(),
                    layers.len()
                ),
            });
        }
        let mut records = Vec::new();
        let mut size = 0;
        for (layer, diff_id) in layers.iter().zip(&parsed.diff_ids) {
            downloaded += fetch_blob(store, &mut registry, layer).await?;
            let (s, blob, diff) = (store.clone(), layer.digest.clone(), diff_id.clone());
            tokio::task::spawn_blocking(move || s.unpack_layer(&blob, &diff))
                .await
                .map_err(|e| Error::Transfer {
                    url: layer.digest.clone(),
                    message: format!("unpacking: {e}"),
                })??;
            size += layer.size;
            records.push(LayerRecord {
                blob: layer.digest.clone(),
                diff_id: diff_id.clone(),
            });
        }
        let record = ImageRecord {
            name: reference.to_string(),
            id: config.digest.clone(),
            layers: records,
            size,
            repo_digest: Some(reference.with_digest(&top_digest)),
        };
        store.record(record.clone())?;
        let duration = started.elapsed();
        tracing::info!(image = %record.name, id = %record.id, digest = %top_digest,
            downloaded, ?duration, "image pulled");
        Ok(Pulled {
            record,
            downloaded,
            duration,
        })
    }
}

/// A config blob, read whole (configs are small; a huge one is refused).
async fn read_small_blob(registry: &mut Registry, digest: &str) -> Result<Vec<u8>> {
    let resp = registry.blob(digest).await?;
    let body = http_body_util::Limited::new(resp.into_body(), 8 << 20)
        .collect()
        .await
        .map_err(|e| Error::Transfer {
            url: digest.to_string(),
            message: e.to_string(),
        })?;
    Ok(body.to_bytes().to_vec())
}

/// Streams a blob into the store unless it is there; returns the bytes downloaded. The
/// content is hashed on the way and moved into place only if it matches its digest.
async fn fetch_blob(store: &ImageStore, registry: &mut Registry, desc: &Descriptor) -> Result<u64> {
    let dest = store.blob_path(&desc.digest);
    if dest.exists() {
        return Ok(0);
    }
    let tmp = store.tmp_dir()?;
    let path = tmp.path.join("blob");
    let io = |e: std::io::Error| Error::Transfer {
        url: desc.digest.clone(),
        message: format!("writing {}: {e}", path.display()),
    };
    let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
    let mut body = registry.blob(&desc.digest).await?.into_body();
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    loop {
        let frame = tokio::time::timeout(READ_TIMEOUT, body.frame())
            .await
            .map_err(|_| Error::Transfer {
                url: desc.digest.clone(),
                message: format!("no data for {}s", READ_TIMEOUT.as_secs()),
            })?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| Error::Transfer {
            url: desc.digest.clone(),
            message: e.to_string(),
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if desc.size > 0 && received > desc.size {
            return Err(Error::SizeMismatch {
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: received,
            });
        }
        hasher.update(&data);
        file.write_all(&data).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    drop(file);
    let actual = format!("sha256:{:x}", hasher.finalize());
    if actual != desc.digest {
        return Err(Error::DigestMismatch {
            what: "blob",
            expected: desc.digest.clone(),
            actual,
        });
    }
    if desc.size > 0 && received != desc.size {
        return Err(Error::SizeMismatch {
            digest: desc.digest.clone(),
            expected: desc.size,
            actual: received,
        });
    }
    if !dest.exists() {
        std::fs::rename(&path, &dest).map_err(super::io_err(&dest))?;
    }
    Ok(received)
}

#[cfg(test)]
#[path = "pull_tests.rs"]
pub(crate) mod registry_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(digest: &str, platform: Option<(&str, &str, Option<&str>)>) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: digest.into(),
            size: 1,
            platform: platform.map(|(os, arch, variant)| Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(Into::into),
            }),
        }
    }

    #[test]
    fn index_selection_picks_linux_on_this_arch_and_skips_attestations() {
        let entries = vec![
            desc("sha256:att", Some(("unknown", "unknown", None))),
            desc("sha256:arm7", Some(("linux", "arm", Some("v7")))),
            desc("sha256:win", Some(("windows", "amd64", None))),
            desc("sha256:amd", Some(("linux", "amd64", None))),
            desc("sha256:arm64v8", Some(("linux", "arm64", Some("v8")))),
        ];
        assert_eq!(
            select_platform(&entries, "amd64").unwrap().digest,
            "sha256:amd"
        );
        assert_eq!(
            select_platform(&entries, "arm64").unwrap().digest,
            "sha256:arm64v8"
        );
        assert_eq!(select_platform(&entries, "s390x"), None);
        let single = vec![desc("sha256:only", None)];
        assert_eq!(
            select_platform(&single, "amd64").unwrap().digest,
            "sha256:only"
        );
    }

    #[test]
    fn manifests_parse_by_media_type_and_schema1_is_refused() {
        let index = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:aa","size":7,"platform":{"architecture":"amd64","os":"linux"}}]}"#;
        let Manifest::Index(entries) = parse_manifest(DOCKER_LIST, index).unwrap() else {
            panic!("not an index");
        };
        assert_eq!(entries[0].size, 7);
        let image = br#"{"schemaVersion":2,"config":{"digest":"sha256:c","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:l","size":3}]}"#;
        let Manifest::Image { config, layers } = parse_manifest(OCI_MANIFEST, image).unwrap()
        else {
            panic!("not an image");
        };
        assert_eq!(config.digest, "sha256:c");
        assert_eq!(layers.len(), 1);
        assert!(matches!(
            parse_manifest("application/json", image),
            Ok(Manifest::Image { .. })
        ));
        let err = parse_manifest(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            br#"{"schemaVersion":1}"#,
        )
        .unwrap_err();
        assert!(matches!(err, Error::UnsupportedMediaType { .. }), "{err}");
        assert!(matches!(
            parse_manifest(OCI_MANIFEST, b"{}"),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn content_that_does_not_hash_to_its_digest_is_refused() {
        let body = b"hello";
        let good = format!("sha256:{:x}", Sha256::digest(body));
        verify_digest("blob", &good, body).unwrap();
        let err = verify_digest("blob", &good, b"hellO").unwrap_err();
        assert!(
            matches!(&err, Error::DigestMismatch { expected, actual, .. }
                if *expected == good && actual.starts_with("sha256:") && *actual != good),
            "{err}"
        );
        assert!(err.to_string().contains(&good));
    }

    #[test]
    fn only_gzip_and_plain_tar_layers_are_accepted() {
        assert!(layer_supported(
            "application/vnd.oci.image.layer.v1.tar+gzip"
        ));
        assert!(layer_supported(
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        ));
        assert!(layer_supported("application/vnd.oci.image.layer.v1.tar"));
        assert!(!layer_supported(
            "application/vnd.oci.image.layer.v1.tar+zstd"
        ));
    }
}
