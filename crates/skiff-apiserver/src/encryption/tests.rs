//! The storage layer over the model store: what reaches the backend, what comes back.

use super::*;
use skiff_store::MemoryStore;

const SECRET: &str = "/registry/secrets/default/db";
const PLAIN: &[u8] = br#"{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}"#;

fn setup() -> (Arc<MemoryStore>, Arc<Encryption>, EncryptedStore) {
    let inner = MemoryStore::new();
    let config = default_config(&random_secret().unwrap());
    let encryption = Arc::new(Encryption::new(&config).unwrap());
    let store = EncryptedStore::new(inner.clone(), encryption.clone());
    (inner, encryption, store)
}

#[tokio::test]
async fn secrets_are_sealed_in_the_backend_and_open_on_every_read() {
    let (inner, _, store) = setup();
    let created = store
        .create(SECRET.into(), Bytes::from_static(PLAIN))
        .await
        .unwrap();
    assert_eq!(created.value, PLAIN);
    let stored = inner.get(SECRET).unwrap().unwrap().value;
    assert!(
        stored.starts_with(b"k8s:enc:secretbox:v1:key1:"),
        "{stored:?}"
    );
    assert!(!stored.windows(12).any(|w| w == b"aHVudGVyMg=="));
    assert_eq!(store.get(SECRET).unwrap().unwrap().value, PLAIN);
    let list = store.list("/registry/secrets/", None, None).unwrap();
    assert_eq!(list.items[0].value, PLAIN);
    // Other resources pass untouched.
    let cm = "/registry/configmaps/default/c";
    store
        .create(cm.into(), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(inner.get(cm).unwrap().unwrap().value, &b"{}"[..]);
    let updated = store
        .update(SECRET.into(), Bytes::from_static(b"{\"v\":2}"), None)
        .await
        .unwrap();
    assert_eq!(updated.value, &b"{\"v\":2}"[..]);
    let deleted = store.delete(SECRET.into(), None).await.unwrap();
    assert_eq!(deleted.value, &b"{\"v\":2}"[..]);
}

#[tokio::test]
async fn watch_events_are_opened() {
    let (_, _, store) = setup();
    let mut watch = store.watch("/registry/secrets/", 0).unwrap();
    store
        .create(SECRET.into(), Bytes::from_static(PLAIN))
        .await
        .unwrap();
    store
        .update(SECRET.into(), Bytes::from_static(b"{}"), None)
        .await
        .unwrap();
    let e = watch.next().await.unwrap().unwrap();
    assert_eq!(e.value, PLAIN);
    let e = watch.next().await.unwrap().unwrap();
    assert_eq!(
        (e.value.as_ref(), e.prev_value.as_deref()),
        (&b"{}"[..], Some(PLAIN))
    );
}

#[tokio::test]
async fn a_corrupt_object_fails_alone() {
    let (inner, _, store) = setup();
    store
        .create(SECRET.into(), Bytes::from_static(PLAIN))
        .await
        .unwrap();
    let other = "/registry/secrets/default/other";
    store
        .create(other.into(), Bytes::from_static(PLAIN))
        .await
        .unwrap();
    let mut watch = store
        .watch("/registry/secrets/", inner.current_revision())
        .unwrap();
    // Flip the last byte of one stored value, as a bad disk or a hand edit would.
    let mut bad = inner.get(SECRET).unwrap().unwrap().value.to_vec();
    *bad.last_mut().unwrap() ^= 1;
    inner.update(SECRET.into(), bad.into(), None).await.unwrap();

    let err = store.get(SECRET).unwrap_err();
    assert_eq!(
        err.to_string(),
        "decrypting with key \"secretbox:key1\": output array was not large enough for encryption"
    );
    assert_eq!(store.get(other).unwrap().unwrap().value, PLAIN);
    let err = store.list("/registry/secrets/", None, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to transform key \"/registry/secrets/default/db\": decrypting with key \"secretbox:key1\": output array was not large enough for encryption"
    );
    // The watch reports it once and ends.
    assert!(matches!(
        watch.next().await,
        Some(Err(skiff_store::Error::Transform(_)))
    ));
    assert!(watch.next().await.is_none());
}

#[tokio::test]
async fn verify_refuses_a_missing_or_wrong_key() {
    let (inner, _, store) = setup();
    store
        .create(SECRET.into(), Bytes::from_static(PLAIN))
        .await
        .unwrap();
    // The same key name with other bytes decrypts nothing.
    let other = Encryption::new(&default_config(&random_secret().unwrap())).unwrap();
    let err = other.verify(inner.as_ref()).unwrap_err().to_string();
    assert!(
        err.starts_with("no configured key decrypts the 1 object(s) encrypted with key \"secretbox:key1\" (first /registry/secrets/default/db:"),
        "{err}"
    );
    // And a generated file must not replace a lost one.
    let err = refuse_lost_config(inner.as_ref(), Path::new("/d/pki/encryption-config.yaml"))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "/d/pki/encryption-config.yaml is missing but the store holds encrypted Secrets (such as /registry/secrets/default/db); restore the file");
}

#[tokio::test]
async fn rotation_rewrites_with_the_new_key_and_old_keys_still_read() {
    let inner = MemoryStore::new();
    // A Secret from before encryption, stored plain.
    inner
        .create(
            "/registry/secrets/a/plain".into(),
            Bytes::from_static(PLAIN),
        )
        .await
        .unwrap();
    let mut config = default_config(&random_secret().unwrap());
    let old = Arc::new(Encryption::new(&config).unwrap());
    old.verify(inner.as_ref()).unwrap();
    let store = EncryptedStore::new(inner.clone(), old.clone());
    store
        .create(SECRET.into(), Bytes::from_static(PLAIN))
        .await
        .unwrap();

    assert_eq!(add_key(&mut config).unwrap(), "key2");
    let keys = &config.resources[0].providers[0]
        .secretbox
        .as_ref()
        .unwrap()
        .keys;
    assert_eq!(
        keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["key2", "key1"]
    );
    let new = Arc::new(Encryption::new(&config).unwrap());
    // Before the rewrite the new configuration reads everything (key1 is still there).
    new.verify(inner.as_ref()).unwrap();
    let done = rewrite(inner.as_ref(), &new).await.unwrap();
    assert_eq!(
        done,
        Rewrite {
            read: 2,
            rewritten: 2
        }
    );
    for kv in inner.list("/registry/secrets/", None, None).unwrap().items {
        assert!(
            kv.value.starts_with(b"k8s:enc:secretbox:v1:key2:"),
            "{kv:?}"
        );
        assert_eq!(
            new.open(&kv.key, kv.value).unwrap(),
            (Bytes::from_static(PLAIN), false)
        );
    }
    // A second rewrite has nothing to do.
    assert_eq!(rewrite(inner.as_ref(), &new).await.unwrap().rewritten, 0);
}

#[test]
fn which_keys_are_encrypted() {
    let config = EncryptionConfiguration::parse(
        r#"
kind: EncryptionConfiguration
apiVersion: apiserver.config.k8s.io/v1
resources:
  - resources: [configmaps, "*.apps", "widgets.example.com"]
    providers: [{identity: {}}]
"#,
    )
    .unwrap();
    let e = Encryption::new(&config).unwrap();
    let covered = |k: &str| e.transformer(k).is_some();
    assert!(covered("/registry/configmaps/ns/a"));
    assert!(covered("/registry/deployments/ns/a"));
    assert!(covered("/registry/example.com/widgets/ns/a"));
    assert!(!covered("/registry/example.com/gadgets/ns/a"));
    assert!(!covered("/registry/secrets/ns/a"));
    assert!(!covered("/registry/pods/ns/a"));
    assert_eq!(
        e.prefixes(),
        [
            "/registry/configmaps/",
            "/registry/controllerrevisions/",
            "/registry/daemonsets/",
            "/registry/deployments/",
            "/registry/example.com/widgets/",
            "/registry/replicasets/",
            "/registry/statefulsets/",
        ]
    );
}

#[tokio::test]
async fn verify_decrypts_a_sample_per_key_id() {
    let (inner, encryption, store) = setup();
    for i in 0..1200 {
        store
            .create(
                format!("/registry/secrets/default/s{i:04}"),
                Bytes::from_static(PLAIN),
            )
            .await
            .unwrap();
    }
    // One key id, 1,200 values over three pages: one decryption.
    assert_eq!(
        encryption.verify(inner.as_ref()).unwrap(),
        Verified {
            key_ids: 1,
            decrypted: 1
        }
    );
    // Values that fail before the first that opens are counted, and do not refuse.
    for i in 0..3 {
        let key = format!("/registry/secrets/default/s{i:04}");
        let mut bad = inner.get(&key).unwrap().unwrap().value.to_vec();
        *bad.last_mut().unwrap() ^= 1;
        inner.update(key, bad.into(), None).await.unwrap();
    }
    assert_eq!(
        encryption.verify(inner.as_ref()).unwrap(),
        Verified {
            key_ids: 1,
            decrypted: 4
        }
    );
}

#[tokio::test]
async fn a_reload_puts_new_keys_in_use_for_writes_reads_and_open_watches() {
    let inner = MemoryStore::new();
    let mut config = default_config(&random_secret().unwrap());
    let store = EncryptedStore::new(inner.clone(), Arc::new(Encryption::new(&config).unwrap()));
    store
        .create(SECRET.into(), Bytes::from_static(PLAIN))
        .await
        .unwrap();
    let mut watch = store
        .watch("/registry/secrets/", inner.current_revision())
        .unwrap();

    // A configuration without the key the store needs is refused; the old one stays.
    let stranger = Encryption::new(&default_config(&random_secret().unwrap())).unwrap();
    let err = store.reload(stranger).unwrap_err().to_string();
    assert!(err.starts_with("no configured key decrypts"), "{err}");
    assert_eq!(store.get(SECRET).unwrap().unwrap().value, PLAIN);

    // key2 in front of key1: accepted, one sample decrypted.
    assert_eq!(add_key(&mut config).unwrap(), "key2");
    let verified = store.reload(Encryption::new(&config).unwrap()).unwrap();
    assert_eq!(verified.key_ids, 1);
    // New writes are sealed with key2; key1's value still reads.
    let other = "/registry/secrets/default/after";
    store
        .create(other.into(), Bytes::from_static(PLAIN))
        .await
        .unwrap();
    assert!(inner
        .get(other)
        .unwrap()
        .unwrap()
        .value
        .starts_with(b"k8s:enc:secretbox:v1:key2:"));
    assert_eq!(store.get(SECRET).unwrap().unwrap().value, PLAIN);
    assert_eq!(store.get(other).unwrap().unwrap().value, PLAIN);
    // The watch opened before the reload opens what key2 sealed.
    let e = watch.next().await.unwrap().unwrap();
    assert_eq!((e.key.as_str(), e.value.as_ref()), (other, PLAIN));
}
