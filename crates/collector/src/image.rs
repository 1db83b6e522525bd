//! Builds an OCI image archive of the collector without Docker: one layer holding the binary
//! (plus its shared libraries when it is not static), written as an OCI image layout tarball that
//! also carries a docker-save `manifest.json`, so `skiff image load` and `docker load` both take it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Where the binary lives in the image.
pub const ENTRYPOINT: &str = "/collector";
/// Unprivileged user the image runs as (the distroless "nonroot" id).
pub const USER_ID: u64 = 65532;

/// What failed building the image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `ldd` failed on a dynamically linked binary.
    #[error("ldd {0} failed: {1}")]
    Ldd(String, String),
}

/// Busybox applets linked in the busybox image: a shell and the tools the walkthrough uses
/// (a web server for the dashboard, a client, process tools).
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "cat", "echo", "ls", "mkdir", "sleep", "kill", "ps", "httpd", "wget", "nc", "hostname",
    "date", "env", "grep", "cut",
];

/// What the image holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The collector binary as `/collector`, its entrypoint, run as an unprivileged user.
    Collector,
    /// A static busybox as `/bin/busybox` with applet links and `sh` as its command: the
    /// walkthrough's dashboard (`httpd`) and a shell inside the cluster, built offline from
    /// Debian's busybox-static.
    Busybox,
    /// Another program from the host, at its host path, run as the unprivileged user in
    /// `/data`: the walkthrough's in-cluster Prometheus (Debian's `victoria-metrics`) and the
    /// Postgres and Redis of the article's Compose file, built offline from Debian's packages.
    Tool(Tool),
}

/// What a [`Kind::Tool`] image adds to its binary and how it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tool {
    /// Host files or directories (copied whole, symlinks kept) and where they go in the image;
    /// the shared libraries of every executable among them come along.
    pub add: Vec<(PathBuf, String)>,
    /// The entrypoint; the binary's path when `None`.
    pub entrypoint: Option<String>,
    /// The image's `Cmd` (the entrypoint's default arguments).
    pub cmd: Vec<String>,
    /// `NAME=value` environment besides `PATH`.
    pub env: Vec<String>,
}

/// Where `spec`'s binary lives in the image: a tool's at its host path, so a program that finds
/// its data relative to itself (Postgres' share and lib directories) still does.
fn binary_path(spec: &ImageSpec) -> String {
    match spec.kind {
        Kind::Tool(_) => spec.binary.display().to_string(),
        _ => ENTRYPOINT.to_string(),
    }
}

/// Inputs for one image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// What the image is.
    pub kind: Kind,
    /// The built collector binary, or the static busybox.
    pub binary: PathBuf,
    /// Repository name, `collector`.
    pub name: String,
    /// Tag, e.g. `v2`.
    pub tag: String,
    /// Timestamp for every file and the config, for reproducible archives.
    pub mtime: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Shared libraries a dynamic binary needs (absolute paths, loader included); empty when static.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, Error> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(io_err(Path::new("ldd")))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        return Err(Error::Ldd(binary.display().to_string(), text));
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

fn header(
    path: &str,
    size: u64,
    mode: u32,
    uid: u64,
    mtime: u64,
    kind: tar::EntryType,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_mtime(mtime);
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

/// The root filesystem layer as an uncompressed tar.
fn layer(spec: &ImageSpec) -> Result<Vec<u8>, Error> {
    let mut tar = tar::Builder::new(Vec::new());
    let dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, uid: u64| {
        let h = header(path, 0, mode, uid, spec.mtime, tar::EntryType::Directory);
        tar.append(&h, std::io::empty())
            .map_err(io_err(Path::new(path)))
    };
    let file = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let h = header(
            path,
            data.len() as u64,
            mode,
            0,
            spec.mtime,
            tar::EntryType::Regular,
        );
        tar.append(&h, data).map_err(io_err(Path::new(path)))
    };
    if spec.kind == Kind::Busybox {
        return busybox_layer(spec, tar, dir, file);
    }
    for d in ["etc/", "data/", "tmp/"] {
        let (mode, uid) = match d {
            "data/" => (0o755, USER_ID),
            "tmp/" => (0o1777, 0),
            _ => (0o755, 0),
        };
        dir(&mut tar, d, mode, uid)?;
    }
    file(&mut tar, "etc/passwd", 0o644, format!("root:x:0:0:root:/:/sbin/nologin\nnonroot:x:{USER_ID}:{USER_ID}:nonroot:/data:/sbin/nologin\n").as_bytes())?;
    file(
        &mut tar,
        "etc/group",
        0o644,
        format!("root:x:0:\nnonroot:x:{USER_ID}:\n").as_bytes(),
    )?;
    let binary = std::fs::read(&spec.binary).map_err(io_err(&spec.binary))?;
    let mut dirs_done: std::collections::BTreeSet<String> =
        ["etc/", "data/", "tmp/"].map(String::from).into();
    // The parent directories of `rel` not yet in the layer.
    let mut parents = |tar: &mut tar::Builder<Vec<u8>>, rel: &str| -> Result<(), Error> {
        let mut parent = PathBuf::new();
        for part in Path::new(rel)
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
        {
            parent.push(part);
            let p = format!("{}/", parent.display());
            if dirs_done.insert(p.clone()) {
                dir(tar, &p, 0o755, 0)?;
            }
        }
        Ok(())
    };
    let main = binary_path(spec);
    let main = main.trim_start_matches('/');
    parents(&mut tar, main)?;
    file(&mut tar, main, 0o755, &binary)?;
    let mut executables = vec![spec.binary.clone()];
    let mut files_done = std::collections::BTreeSet::from([main.to_string()]);
    if let Kind::Tool(tool) = &spec.kind {
        for (src, dest) in &tool.add {
            for (host, rel) in tree(src, dest.trim_start_matches('/'))? {
                let meta = std::fs::symlink_metadata(&host).map_err(io_err(&host))?;
                if meta.is_dir() {
                    parents(&mut tar, &format!("{rel}/x"))?;
                } else if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(&host).map_err(io_err(&host))?;
                    parents(&mut tar, &rel)?;
                    let mut h = header(&rel, 0, 0o777, 0, spec.mtime, tar::EntryType::Symlink);
                    tar.append_link(&mut h, &rel, &target)
                        .map_err(io_err(&host))?;
                    files_done.insert(rel);
                } else {
                    use std::os::unix::fs::PermissionsExt;
                    let data = std::fs::read(&host).map_err(io_err(&host))?;
                    let mode = meta.permissions().mode() & 0o777;
                    if mode & 0o111 != 0 || data.starts_with(b"\x7fELF") {
                        executables.push(host.clone());
                    }
                    parents(&mut tar, &rel)?;
                    file(&mut tar, &rel, mode, &data)?;
                    files_done.insert(rel);
                }
            }
        }
    }
    let mut libs = std::collections::BTreeSet::new();
    for exe in &executables {
        libs.extend(shared_libraries(exe)?);
    }
    for lib in libs {
        let rel = lib.to_string_lossy().trim_start_matches('/').to_string();
        if !files_done.insert(rel.clone()) {
            continue;
        }
        let data = std::fs::read(&lib).map_err(io_err(&lib))?;
        parents(&mut tar, &rel)?;
        file(&mut tar, &rel, 0o755, &data)?;
    }
    tar.into_inner().map_err(io_err(Path::new("layer")))
}

/// `src` and, when it is a directory, everything under it (sorted, so archives are
/// reproducible), each with its path under `dest`; symlinks are not followed.
fn tree(src: &Path, dest: &str) -> Result<Vec<(PathBuf, String)>, Error> {
    let mut out = vec![(src.to_path_buf(), dest.to_string())];
    let meta = std::fs::symlink_metadata(src).map_err(io_err(src))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(src)
            .map_err(io_err(src))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io_err(src))?;
        entries.sort();
        for e in entries {
            let name = e
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            out.extend(tree(&e, &format!("{dest}/{name}"))?);
        }
    }
    Ok(out)
}

/// The busybox image's root filesystem: `/bin/busybox`, its applet links, `/etc/passwd`,
/// `/tmp` and an empty `/www` for `httpd -h /www`.
fn busybox_layer(
    spec: &ImageSpec,
    mut tar: tar::Builder<Vec<u8>>,
    dir: impl Fn(&mut tar::Builder<Vec<u8>>, &str, u32, u64) -> Result<(), Error>,
    file: impl Fn(&mut tar::Builder<Vec<u8>>, &str, u32, &[u8]) -> Result<(), Error>,
) -> Result<Vec<u8>, Error> {
    for (d, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("tmp/", 0o1777),
        ("www/", 0o755),
    ] {
        dir(&mut tar, d, mode, 0)?;
    }
    let passwd = "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    file(&mut tar, "etc/passwd", 0o644, passwd.as_bytes())?;
    file(
        &mut tar,
        "etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n",
    )?;
    let binary = std::fs::read(&spec.binary).map_err(io_err(&spec.binary))?;
    file(&mut tar, "bin/busybox", 0o755, &binary)?;
    for applet in BUSYBOX_APPLETS {
        let path = format!("bin/{applet}");
        let mut h = header(&path, 0, 0o777, 0, spec.mtime, tar::EntryType::Symlink);
        tar.append_link(&mut h, &path, "busybox")
            .map_err(io_err(Path::new(&path)))?;
    }
    tar.into_inner().map_err(io_err(Path::new("layer")))
}

fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// Writes the image archive to `out` and returns the manifest digest (`sha256:...`).
pub fn build(spec: &ImageSpec, out: &Path) -> Result<String, Error> {
    let layer_tar = layer(spec)?;
    let diff_id = sha256_hex(&layer_tar);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&layer_tar)
        .map_err(io_err(Path::new("layer")))?;
    let layer_gz = gz.finish().map_err(io_err(Path::new("layer")))?;
    let layer_digest = sha256_hex(&layer_gz);
    let created = chrono::DateTime::from_timestamp(spec.mtime as i64, 0)
        .unwrap_or_default()
        .to_rfc3339();
    let runtime = match &spec.kind {
        Kind::Collector => json!({
            "User": format!("{USER_ID}:{USER_ID}"),
            "Entrypoint": [ENTRYPOINT],
            "Env": ["PATH=/", "DATA_DIR=/data", "LISTEN_ADDR=:8080"],
            "ExposedPorts": { "8080/tcp": {} },
            "WorkingDir": "/data",
            "Labels": { "org.opencontainers.image.title": spec.name }
        }),
        Kind::Tool(tool) => {
            let mut env = vec!["PATH=/usr/local/bin:/usr/bin:/bin".to_string()];
            env.extend(tool.env.iter().cloned());
            json!({
                "User": format!("{USER_ID}:{USER_ID}"),
                "Entrypoint": [tool.entrypoint.clone().unwrap_or_else(|| binary_path(spec))],
                "Cmd": tool.cmd,
                "Env": env,
                "WorkingDir": "/data",
                "Labels": { "org.opencontainers.image.title": spec.name }
            })
        }
        Kind::Busybox => json!({
            "Cmd": ["sh"],
            "Env": ["PATH=/bin"],
            "WorkingDir": "/",
            "Labels": { "org.opencontainers.image.title": spec.name }
        }),
    };
    let config = json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": runtime,
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
        "history": [{ "created": created, "created_by": "collector-image" }]
    })
    .to_string()
    .into_bytes();
    let config_digest = sha256_hex(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_digest}"),
            "size": config.len()
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{layer_digest}"),
            "size": layer_gz.len()
        }]
    })
    .to_string()
    .into_bytes();
    let manifest_digest = sha256_hex(&manifest);
    let reference = format!("{}:{}", spec.name, spec.tag);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": reference,
                "org.opencontainers.image.ref.name": spec.tag
            }
        }]
    })
    .to_string()
    .into_bytes();
    let docker_manifest = json!([{
        "Config": format!("blobs/sha256/{config_digest}"),
        "RepoTags": [reference],
        "Layers": [format!("blobs/sha256/{layer_digest}")]
    }])
    .to_string()
    .into_bytes();

    let file = std::fs::File::create(out).map_err(io_err(out))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let mut add = |path: &str, data: &[u8]| {
        let h = header(
            path,
            data.len() as u64,
            0o644,
            0,
            spec.mtime,
            tar::EntryType::Regular,
        );
        tar.append(&h, data).map_err(io_err(out))
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json", &index)?;
    add("manifest.json", &docker_manifest)?;
    add(&format!("blobs/sha256/{layer_digest}"), &layer_gz)?;
    add(&format!("blobs/sha256/{config_digest}"), &config)?;
    add(&format!("blobs/sha256/{manifest_digest}"), &manifest)?;
    let mut w = tar.into_inner().map_err(io_err(out))?;
    w.flush().map_err(io_err(out))?;
    Ok(format!("sha256:{manifest_digest}"))
}
