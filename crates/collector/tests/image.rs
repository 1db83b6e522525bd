//! The OCI archive built from the collector binary: layout, digests, and a runnable root fs.

use std::collections::HashMap;
use std::io::Read;
use std::process::Command;

use collector::image::{build, ImageSpec, Kind, Tool};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn entries(path: &std::path::Path) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

fn sha(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

#[test]
fn archive_is_an_oci_layout_with_docker_manifest_and_a_runnable_root_fs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("collector.tar");
    let spec = ImageSpec {
        kind: Kind::Collector,
        binary: env!("CARGO_BIN_EXE_collector").into(),
        name: "collector".into(),
        tag: "v2".into(),
        mtime: 0,
    };
    let digest = build(&spec, &out).unwrap();
    let files = entries(&out);
    assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);

    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let desc = &index["manifests"][0];
    assert_eq!(desc["digest"], digest);
    assert_eq!(
        desc["annotations"]["io.containerd.image.name"],
        "collector:v2"
    );
    let manifest_blob = &files[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))];
    assert_eq!(
        sha(manifest_blob),
        digest.trim_start_matches("sha256:"),
        "blobs are content addressed"
    );
    let manifest: Value = serde_json::from_slice(manifest_blob).unwrap();
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let layer_gz = &files[&format!("blobs/sha256/{layer_digest}")];
    assert_eq!(sha(layer_gz), layer_digest);
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let config: Value =
        serde_json::from_slice(&files[&format!("blobs/sha256/{config_digest}")]).unwrap();
    assert_eq!(config["config"]["Entrypoint"][0], "/collector");

    let mut layer = Vec::new();
    flate2::read::GzDecoder::new(&layer_gz[..])
        .read_to_end(&mut layer)
        .unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        format!("sha256:{}", sha(&layer)),
        "diff_id is the uncompressed digest"
    );

    let docker: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(docker[0]["RepoTags"][0], "collector:v2");
    assert_eq!(
        docker[0]["Layers"][0],
        format!("blobs/sha256/{layer_digest}")
    );

    // The layer alone must be enough to run the binary: unpack it and run it chrooted (root only).
    let rootfs = dir.path().join("rootfs");
    tar::Archive::new(&layer[..]).unpack(&rootfs).unwrap();
    assert!(rootfs.join("collector").is_file());
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: chroot run of the image needs root");
        return;
    }
    let run = Command::new("chroot")
        .arg(&rootfs)
        .args(["/collector", "--version"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "binary does not run from the image alone: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("collector"));
}

#[test]
fn same_inputs_give_the_same_digest() {
    let dir = tempfile::tempdir().unwrap();
    // Any dynamic binary will do; a small one keeps the test fast.
    let spec = ImageSpec {
        kind: Kind::Collector,
        binary: "/bin/true".into(),
        name: "collector".into(),
        tag: "t".into(),
        mtime: 7,
    };
    let a = build(&spec, &dir.path().join("a.tar")).unwrap();
    let b = build(&spec, &dir.path().join("b.tar")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn busybox_image_has_the_applet_links_and_a_shell_command() {
    let dir = tempfile::tempdir().unwrap();
    // Any file stands in for busybox: the layout, not the binary, is under test.
    let spec = ImageSpec {
        kind: Kind::Busybox,
        binary: "/bin/true".into(),
        name: "busybox".into(),
        tag: "latest".into(),
        mtime: 0,
    };
    let out = dir.path().join("busybox.tar");
    build(&spec, &out).unwrap();
    let files = entries(&out);
    let docker: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(docker[0]["RepoTags"][0], "busybox:latest");
    let config: Value =
        serde_json::from_slice(&files[docker[0]["Config"].as_str().unwrap()]).unwrap();
    assert_eq!(config["config"]["Cmd"][0], "sh");
    assert!(config["config"]["Entrypoint"].is_null());
    let layer_gz = &files[docker[0]["Layers"][0].as_str().unwrap()];
    let mut layer = Vec::new();
    flate2::read::GzDecoder::new(&layer_gz[..])
        .read_to_end(&mut layer)
        .unwrap();
    let mut links = HashMap::new();
    for e in tar::Archive::new(&layer[..]).entries().unwrap() {
        let e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let target = e.link_name().unwrap().map(|l| l.display().to_string());
        links.insert(path, target);
    }
    assert_eq!(links["bin/busybox"], None);
    for applet in ["sh", "httpd", "kill"] {
        assert_eq!(links[&format!("bin/{applet}")].as_deref(), Some("busybox"));
    }
}

#[test]
fn a_tool_image_holds_its_binary_at_its_path_what_it_adds_and_their_libraries() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("share");
    std::fs::create_dir_all(extra.join("sub")).unwrap();
    std::fs::write(extra.join("sub/data.txt"), "x").unwrap();
    std::os::unix::fs::symlink("sub/data.txt", extra.join("link")).unwrap();
    // /bin/true stands in for the program: where things land and how it runs is under test.
    let spec = ImageSpec {
        kind: Kind::Tool(Tool {
            add: vec![
                (extra.clone(), "/usr/share/tool".into()),
                ("/bin/false".into(), "/usr/local/bin/entry".into()),
            ],
            entrypoint: Some("/usr/local/bin/entry".into()),
            cmd: vec!["serve".into(), "--flag".into()],
            env: vec!["TZ=UTC".into()],
        }),
        binary: "/bin/true".into(),
        name: "victoria-metrics".into(),
        tag: "latest".into(),
        mtime: 0,
    };
    let out = dir.path().join("vm.tar");
    build(&spec, &out).unwrap();
    let files = entries(&out);
    let docker: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(docker[0]["RepoTags"][0], "victoria-metrics:latest");
    let config: Value =
        serde_json::from_slice(&files[docker[0]["Config"].as_str().unwrap()]).unwrap();
    assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/entry");
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["serve", "--flag"])
    );
    assert_eq!(config["config"]["Env"][1], "TZ=UTC");
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["WorkingDir"], "/data");
    let layer_gz = &files[docker[0]["Layers"][0].as_str().unwrap()];
    let mut layer = Vec::new();
    flate2::read::GzDecoder::new(&layer_gz[..])
        .read_to_end(&mut layer)
        .unwrap();
    let mut links = HashMap::new();
    for e in tar::Archive::new(&layer[..]).entries().unwrap() {
        let e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let target = e.link_name().unwrap().map(|l| l.display().to_string());
        links.insert(path, target);
    }
    let mut paths: Vec<&String> = links.keys().collect();
    paths.sort();
    for want in [
        "bin/true",
        "usr/local/bin/entry",
        "usr/share/tool/",
        "usr/share/tool/sub/data.txt",
        "data/",
    ] {
        assert!(links.contains_key(want), "{want} in {paths:?}");
    }
    assert_eq!(
        links["usr/share/tool/link"].as_deref(),
        Some("sub/data.txt")
    );
    assert!(!links.contains_key("collector"), "{paths:?}");
    // /bin/true's C library came along, once.
    assert!(paths.iter().any(|p| p.contains("libc.so")), "{paths:?}");
}
