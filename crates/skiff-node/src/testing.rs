//! Builds image archives in memory so tests need no registry and no network.
//!
//! The busybox image takes the static binary from Debian's `busybox-static` package
//! (`/bin/busybox`); unit tests build tiny layers by hand with [`LayerBuilder`].

use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::path::Path;

/// Where Debian's `busybox-static` installs the binary.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Applets linked into the busybox test image.
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "ls", "httpd", "mkdir", "head", "tail", "dd", "true", "false",
    "env", "hostname", "id", "ps", "kill", "wget", "seq", "yes", "trap", "printf", "date", "ip",
    "ifconfig", "nc", "grep", "sed", "wc", "rm", "touch", "pwd", "test", "tar", "md5sum",
];

/// Builds one layer tarball (uncompressed) entry by entry.
pub struct LayerBuilder {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        Self {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    }

    /// Adds a directory.
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.builder
            .append_data(&mut h, path, io::empty())
            .expect("writing to a Vec cannot fail");
        self
    }

    /// Adds a regular file.
    pub fn file(mut self, path: &str, mode: u32, content: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, content.len() as u64);
        self.builder
            .append_data(&mut h, path, content)
            .expect("writing to a Vec cannot fail");
        self
    }

    /// Adds a symlink.
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder
            .append_link(&mut h, path, target)
            .expect("writing to a Vec cannot fail");
        self
    }

    /// Marks `path` deleted (an OCI whiteout file `.wh.<name>`).
    pub fn whiteout(self, path: &str) -> Self {
        let p = Path::new(path);
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let wh = match (p.parent(), name) {
            (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
                format!("{}/.wh.{name}", parent.display())
            }
            (_, name) => format!(".wh.{}", name.unwrap_or_default()),
        };
        self.file(&wh, 0o644, b"")
    }

    /// Marks `dir` opaque: lower layers' contents of it are hidden.
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), 0o644, b"")
    }

    /// The finished tarball.
    pub fn finish(self) -> Vec<u8> {
        self.builder
            .into_inner()
            .expect("writing to a Vec cannot fail")
    }
}

/// Process defaults written into a test image's config.
#[derive(Debug, Clone, Default)]
pub struct TestImageConfig {
    /// `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// `CMD`.
    pub cmd: Vec<String>,
    /// `ENV`.
    pub env: Vec<String>,
    /// `WORKDIR`.
    pub working_dir: String,
    /// `USER` (empty: root, as an image without one).
    pub user: String,
}

fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

fn config_json(layers: &[Vec<u8>], cfg: &TestImageConfig) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": if cfg.entrypoint.is_empty() { None } else { Some(&cfg.entrypoint) },
            "Cmd": cfg.cmd,
            "Env": cfg.env,
            "WorkingDir": cfg.working_dir,
            "User": cfg.user,
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .expect("serializing a json! value cannot fail")
}

fn append(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data)
        .expect("writing to a Vec cannot fail");
}

/// An OCI image layout tarball with the given (uncompressed) layers, gzip'd inside as
/// registries serve them, named `name` via the standard annotations.
pub fn oci_archive(name: &str, layers: &[Vec<u8>], cfg: &TestImageConfig) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let config = config_json(layers, cfg);
    let config_hex = sha256_hex(&config);
    append(&mut b, &format!("blobs/sha256/{config_hex}"), &config);
    let mut layer_descs = Vec::new();
    for l in layers {
        let gz = gzip(l);
        let hex = sha256_hex(&gz);
        append(&mut b, &format!("blobs/sha256/{hex}"), &gz);
        layer_descs.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{hex}"),
            "size": gz.len(),
        }));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_hex}"),
            "size": config.len(),
        },
        "layers": layer_descs,
    }))
    .expect("serializing a json! value cannot fail");
    let manifest_hex = sha256_hex(&manifest);
    append(&mut b, &format!("blobs/sha256/{manifest_hex}"), &manifest);
    let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_hex}"),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))
    .expect("serializing a json! value cannot fail");
    append(&mut b, "index.json", &index);
    append(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    b.into_inner().expect("writing to a Vec cannot fail")
}

/// A `docker save` tarball (legacy layout: `<id>/layer.tar`, `manifest.json` with RepoTags).
pub fn docker_archive(tags: &[&str], layers: &[Vec<u8>], cfg: &TestImageConfig) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let config = config_json(layers, cfg);
    let config_name = format!("{}.json", sha256_hex(&config));
    append(&mut b, &config_name, &config);
    let mut layer_paths = Vec::new();
    for l in layers {
        let path = format!("{}/layer.tar", sha256_hex(l));
        append(&mut b, &path, l);
        layer_paths.push(path);
    }
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": tags,
        "Layers": layer_paths,
    }]))
    .expect("serializing a json! value cannot fail");
    append(&mut b, "manifest.json", &manifest);
    b.into_inner().expect("writing to a Vec cannot fail")
}

/// The busybox layer: `/bin/busybox` from the host plus applet links, `/etc/passwd`,
/// `/tmp` and `/www/index.html` (served by `httpd -f -h /www`).
pub fn busybox_layer() -> io::Result<Vec<u8>> {
    let busybox = std::fs::read(HOST_BUSYBOX)?;
    let mut layer = LayerBuilder::new()
        .dir("bin", 0o755)
        .dir("etc", 0o755)
        .dir("tmp", 0o1777)
        .dir("www", 0o755)
        .file("bin/busybox", 0o755, &busybox)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")
        .file("www/index.html", 0o644, b"hello from skiff\n");
    for applet in APPLETS {
        layer = layer.symlink(&format!("bin/{applet}"), "busybox");
    }
    Ok(layer.finish())
}

/// An OCI archive of a busybox image named `name`, with `PATH` set and `sh` as its command.
pub fn busybox_oci_archive(name: &str) -> io::Result<Vec<u8>> {
    let cfg = TestImageConfig {
        cmd: vec!["sh".into()],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        ..Default::default()
    };
    Ok(oci_archive(name, &[busybox_layer()?], &cfg))
}
