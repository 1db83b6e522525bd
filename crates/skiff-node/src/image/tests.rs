//! Unit tests of the image store on archives built in memory.

use super::*;
use crate::testing::{docker_archive, oci_archive, LayerBuilder, TestImageConfig};
use std::os::unix::fs::FileTypeExt;

fn base_layer() -> Vec<u8> {
    LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/os", 0o644, b"base\n")
        .dir("data", 0o755)
        .file("data/old", 0o644, b"old\n")
        .finish()
}

fn cfg() -> TestImageConfig {
    TestImageConfig {
        entrypoint: vec!["/bin/app".into()],
        cmd: vec!["--serve".into()],
        env: vec!["A=1".into()],
        working_dir: "/srv".into(),
        ..Default::default()
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn oci_archive_is_listed_under_its_normalized_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let loaded = store
        .load(oci_archive("collector:v2", &[base_layer()], &cfg()).as_slice())
        .unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].name, "docker.io/library/collector:v2");
    let listed = store.list().unwrap();
    assert_eq!(listed, loaded);
    assert_eq!(store.get("collector:v2").unwrap().id, loaded[0].id);
    assert_eq!(store.get(&loaded[0].id[7..19]).unwrap().id, loaded[0].id);
}

#[test]
fn gzipped_docker_save_archive_loads_every_tag() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let tar = docker_archive(&["app:1", "app:latest"], &[base_layer()], &cfg());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let loaded = store.load(gz.finish().unwrap().as_slice()).unwrap();
    let names: Vec<_> = loaded.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["docker.io/library/app:1", "docker.io/library/app:latest"]
    );
    let rootfs = store.rootfs("app").unwrap();
    assert_eq!(rootfs.config.entrypoint, ["/bin/app"]);
    assert_eq!(rootfs.config.cmd, ["--serve"]);
    assert_eq!(rootfs.config.working_dir, "/srv");
    assert_eq!(
        std::fs::read(rootfs.layers[0].join("etc/os")).unwrap(),
        b"base\n"
    );
}

#[test]
fn shared_layers_are_unpacked_once_and_survive_removing_one_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let top_a = LayerBuilder::new().file("a", 0o644, b"a").finish();
    let top_b = LayerBuilder::new().file("b", 0o644, b"b").finish();
    store
        .load(oci_archive("a:1", &[base_layer(), top_a], &cfg()).as_slice())
        .unwrap();
    store
        .load(oci_archive("b:1", &[base_layer(), top_b], &cfg()).as_slice())
        .unwrap();
    let count = || {
        std::fs::read_dir(dir.path().join("layers"))
            .unwrap()
            .count()
    };
    assert_eq!(count(), 3);
    let a = store.rootfs("a:1").unwrap();
    let b = store.rootfs("b:1").unwrap();
    assert_eq!(a.layers[0], b.layers[0]);

    store.remove("a:1").unwrap();
    assert_eq!(count(), 2);
    assert!(b.layers.iter().all(|l| l.exists()));
    assert!(matches!(store.get("a:1"), Err(Error::NotFound(_))));
    store.remove("b:1").unwrap();
    assert_eq!(count(), 0);
    let blobs = std::fs::read_dir(dir.path().join("blobs/sha256")).unwrap();
    assert_eq!(blobs.count(), 0);
}

#[test]
fn whiteouts_become_overlay_whiteouts_and_opaque_dirs() {
    if !is_root() {
        eprintln!("skipping: creating overlay whiteouts needs root (mknod, trusted xattrs)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let top = LayerBuilder::new()
        .whiteout("etc/os")
        .opaque("data")
        .file("data/new", 0o644, b"new\n")
        .finish();
    store
        .load(oci_archive("w:1", &[base_layer(), top], &cfg()).as_slice())
        .unwrap();
    let rootfs = store.rootfs("w:1").unwrap();
    let upper = &rootfs.layers[1];
    let meta = std::fs::symlink_metadata(upper.join("etc/os")).unwrap();
    assert!(meta.file_type().is_char_device());
    assert!(!upper.join("etc/.wh.os").exists());
    assert_eq!(
        xattr::get(upper.join("data"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert!(upper.join("data/new").exists());
}

#[test]
fn archive_without_manifest_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let junk = LayerBuilder::new().file("hello", 0o644, b"x").finish();
    assert!(matches!(
        store.load(junk.as_slice()),
        Err(Error::InvalidArchive(_))
    ));
}

#[test]
fn docker_archive_symlink_leaving_the_archive_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("store")).unwrap();
    std::fs::write(dir.path().join("secret"), b"not a layer").unwrap();
    let layer = base_layer();
    let cfg_json = {
        let diff = format!(
            "sha256:{:x}",
            <sha2::Sha256 as sha2::Digest>::digest(&layer)
        );
        serde_json::to_vec(&serde_json::json!({"rootfs": {"diff_ids": [diff]}})).unwrap()
    };
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(cfg_json.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "config.json", cfg_json.as_slice())
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "l/layer.tar", dir.path().join("secret"))
        .unwrap();
    let manifest = br#"[{"Config":"config.json","RepoTags":["evil:1"],"Layers":["l/layer.tar"]}]"#;
    let mut h = tar::Header::new_gnu();
    h.set_size(manifest.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "manifest.json", &manifest[..])
        .unwrap();
    let archive = b.into_inner().unwrap();
    let err = store.load(archive.as_slice()).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArchive(ref m) if m.contains("escapes")),
        "{err}"
    );
}
