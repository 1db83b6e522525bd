//! Pulls from an in-process fake registry on loopback (plain HTTP, as for any loopback
//! registry): token auth, index selection, layer reuse, tag moves and tampered content.

use super::*;
use crate::image::{ImageStore, RegistryConfig};
use crate::testing::LayerBuilder;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// What the fake registry serves and how it guards it.
#[derive(Default)]
pub(crate) struct Fake {
    /// Path (`/v2/...`) -> (content type, body).
    content: Mutex<HashMap<String, (String, Vec<u8>)>>,
    /// Require `Bearer tok` obtained from `/token` (Docker Hub's scheme).
    bearer: bool,
    /// Require `Basic` with this header value.
    basic: Option<String>,
    /// GETs per path, to see what a pull re-fetched.
    hits: Mutex<HashMap<String, usize>>,
    addr: Mutex<String>,
}

async fn serve(State(fake): State<Arc<Fake>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    *fake.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if path == "/token" {
        let scope_ok = req
            .uri()
            .query()
            .is_some_and(|q| q.contains("scope=repository%3Alib%2Fapp%3Apull"));
        if !scope_ok {
            return StatusCode::BAD_REQUEST.into_response();
        }
        return (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"token":"tok"}"#,
        )
            .into_response();
    }
    if fake.bearer && auth != "Bearer tok" {
        let addr = fake.addr.lock().unwrap().clone();
        let challenge = format!(
            r#"Bearer realm="http://{addr}/token",service="fake",scope="repository:lib/app:pull""#
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        )
            .into_response();
    }
    if let Some(want) = &fake.basic {
        if &auth != want {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    r#"Basic realm="fake""#.to_string(),
                )],
                "",
            )
                .into_response();
        }
    }
    match fake.content.lock().unwrap().get(&path) {
        Some((ct, body)) => {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            (h, body.clone()).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        )
            .into_response(),
    }
}

pub(crate) async fn start(fake: Fake) -> (Arc<Fake>, String) {
    let fake = Arc::new(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    *fake.addr.lock().unwrap() = addr.clone();
    let app = axum::Router::new().fallback(serve).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, addr)
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Publishes an image (one gzip'd layer per entry) as `lib/app:<tag>` behind an index
/// that also lists an arm64 image and an attestation; returns the index digest.
pub(crate) fn publish(fake: &Fake, tag: &str, layers: &[Vec<u8>], cmd: &str) -> String {
    let mut content = fake.content.lock().unwrap();
    let mut put = |digest: &str, ct: &str, body: Vec<u8>| {
        let kind = if ct.contains("manifest") || ct.contains("index") {
            "manifests"
        } else {
            "blobs"
        };
        content.insert(format!("/v2/lib/app/{kind}/{digest}"), (ct.into(), body));
    };
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": [cmd]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let mut layer_descs = Vec::new();
    for l in layers {
        let gz = gzip(l);
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": sha(&gz), "size": gz.len(),
        }));
        put(&sha(&gz), "application/octet-stream", gz);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(&config), "size": config.len()},
        "layers": layer_descs,
    }))
    .unwrap();
    let manifest_digest = sha(&manifest);
    put(&sha(&config), "application/octet-stream", config);
    put(&manifest_digest, OCI_MANIFEST, manifest.clone());
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", "1".repeat(64)),
             "size": 1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": OCI_MANIFEST, "digest": manifest_digest,
             "size": manifest.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", "2".repeat(64)),
             "size": 1, "platform": {"os": "unknown", "architecture": "unknown"}},
        ],
    }))
    .unwrap();
    let index_digest = sha(&index);
    put(&index_digest, OCI_INDEX, index.clone());
    content.insert(
        format!("/v2/lib/app/manifests/{tag}"),
        (OCI_INDEX.into(), index),
    );
    index_digest
}

pub(crate) fn base() -> Vec<u8> {
    LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/os", 0o644, b"base\n")
        .finish()
}

fn top(text: &[u8]) -> Vec<u8> {
    LayerBuilder::new().file("app", 0o755, text).finish()
}

pub(crate) fn hits(fake: &Fake, prefix: &str) -> usize {
    fake.hits
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test]
async fn pull_with_token_auth_resolves_the_index_and_lands_like_a_loaded_image() {
    let (fake, addr) = start(Fake {
        bearer: true,
        ..Fake::default()
    })
    .await;
    let index_digest = publish(&fake, "v1", &[base(), top(b"one")], "run");
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let puller = Puller::new(RegistryConfig::default()).unwrap();

    let pulled = puller
        .pull(&store, &format!("{addr}/lib/app:v1"), None)
        .await
        .unwrap();
    assert_eq!(pulled.record.name, format!("{addr}/lib/app:v1"));
    assert_eq!(
        pulled.record.image_ref(),
        format!("{addr}/lib/app@{index_digest}")
    );
    assert!(pulled.downloaded > 0);
    assert_eq!(hits(&fake, "/token"), 1, "one token for the whole pull");
    let rootfs = store.rootfs(&format!("{addr}/lib/app:v1")).unwrap();
    assert_eq!(rootfs.config.cmd, ["run"]);
    assert_eq!(
        std::fs::read(rootfs.layers[0].join("etc/os")).unwrap(),
        b"base\n"
    );
    assert_eq!(std::fs::read(rootfs.layers[1].join("app")).unwrap(), b"one");
    // Found by its repo digest too.
    assert_eq!(
        store
            .get(&format!("{addr}/lib/app@{index_digest}"))
            .unwrap()
            .id,
        pulled.record.id
    );

    // Pulling again asks for the tag but fetches no blob.
    let blobs_before = hits(&fake, "/v2/lib/app/blobs/");
    let again = puller
        .pull(&store, &format!("{addr}/lib/app:v1"), None)
        .await
        .unwrap();
    assert_eq!(again.downloaded, 0);
    assert_eq!(hits(&fake, "/v2/lib/app/blobs/"), blobs_before);
    assert_eq!(again.record, pulled.record);
}

#[tokio::test]
async fn a_moved_tag_gets_the_new_image_reusing_shared_layers_and_keeps_the_old_by_digest() {
    let (fake, addr) = start(Fake::default()).await;
    let first = publish(&fake, "v1", &[base(), top(b"one")], "run");
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let puller = Puller::new(RegistryConfig::default()).unwrap();
    let reference = format!("{addr}/lib/app:v1");
    let old = puller.pull(&store, &reference, None).await.unwrap();

    let second = publish(&fake, "v1", &[base(), top(b"two")], "run");
    let base_blob = old.record.layers[0].blob.clone();
    let new = puller.pull(&store, &reference, None).await.unwrap();
    assert_ne!(new.record.id, old.record.id);
    assert_eq!(new.record.image_ref(), format!("{addr}/lib/app@{second}"));
    assert_eq!(
        hits(&fake, &format!("/v2/lib/app/blobs/{base_blob}")),
        1,
        "the shared base layer is fetched once"
    );
    assert_eq!(store.get(&reference).unwrap().id, new.record.id);
    let kept = store.get(&format!("{addr}/lib/app@{first}")).unwrap();
    assert_eq!(kept.id, old.record.id);
    assert!(store
        .rootfs_of(&kept)
        .unwrap()
        .layers
        .iter()
        .all(|l| l.exists()));
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_fails_the_pull_and_stores_nothing() {
    let (fake, addr) = start(Fake::default()).await;
    publish(&fake, "v1", &[base()], "run");
    let layer_digest = sha(&gzip(&base()));
    fake.content
        .lock()
        .unwrap()
        .get_mut(&format!("/v2/lib/app/blobs/{layer_digest}"))
        .expect("layer published")
        .1 = gzip(b"not what the digest names");
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let puller = Puller::new(RegistryConfig::default()).unwrap();
    let err = puller
        .pull(&store, &format!("{addr}/lib/app:v1"), None)
        .await
        .unwrap_err();
    // Shorter than its descriptor, so it fails on the digest, not the size.
    assert!(
        matches!(&err, Error::DigestMismatch { expected, .. } if *expected == layer_digest),
        "{err}"
    );
    assert!(store.list().unwrap().is_empty());
    assert!(!store.blob_path(&layer_digest).exists());
}

#[tokio::test]
async fn a_missing_tag_is_not_found_and_basic_auth_needs_credentials() {
    let basic = Credentials {
        username: "u".into(),
        password: "p".into(),
    };
    let (fake, addr) = start(Fake {
        basic: Some(basic.basic_header()),
        ..Fake::default()
    })
    .await;
    publish(&fake, "v1", &[base()], "run");
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let puller = Puller::new(RegistryConfig::default()).unwrap();

    let err = puller
        .pull(&store, &format!("{addr}/lib/app:v1"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");

    let err = puller
        .pull(&store, &format!("{addr}/lib/app:nope"), Some(basic.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "failed to resolve reference \"{addr}/lib/app:nope\": {addr}/lib/app:nope: not found"
        )
    );
    puller
        .pull(&store, &format!("{addr}/lib/app:v1"), Some(basic))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_registry_says_which_url_failed() {
    // A port nothing listens on: bind, note it, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let puller = Puller::new(RegistryConfig::default()).unwrap();
    let err = puller
        .pull(&store, &format!("{addr}/lib/app:v1"), None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::Unreachable { .. }) && text.contains(&format!("http://{addr}/v2/")),
        "{text}"
    );
}
