//! Encryption at rest (decision 0024): the layer between the API's handlers and the
//! [`Store`], so Secrets (and whatever else the configuration lists) are sealed before any
//! backend sees them — SQLite now, etcd later — and opened again on every read, list and
//! watch event.
//!
//! The configuration is upstream's EncryptionConfiguration: given with
//! `--encryption-provider-config`, or generated on first start as `pki/encryption-config.yaml`
//! (mode 0600) with one secretbox key for Secrets and `identity` after it to read Secrets
//! stored before encryption existed. Values are stored as upstream stores them,
//! `k8s:enc:<provider>:v1:<key name>:<ciphertext>`, with the storage key as authenticated
//! data.

mod config;
mod transformer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use futures::future::BoxFuture;
use skiff_store::{KeyValue, ListResult, Revision, Store, Watch};

pub use config::{EncryptionConfiguration, KeysConfiguration, ProviderConfiguration};
pub use transformer::{PrefixTransformers, TransformError, Transformer};

/// The file skiff generates and rotates, under the data dir's `pki/`.
pub const CONFIG_FILE: &str = "encryption-config.yaml";

/// Why encryption cannot start or rotate; one line, for the server's refusal to start.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error("encryption provider configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{0}")]
    Keys(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] skiff_store::Error),
}

/// Which transformer each stored key goes through.
pub struct Encryption {
    /// Resource patterns (`secrets`, `deployments.apps`, `*.apps`, `*.`, `*.*`) in the
    /// configuration's order.
    rules: Vec<(String, Arc<PrefixTransformers>)>,
    /// The group and resource of each built-in storage prefix (`events` holds two).
    storage: HashMap<String, Vec<(String, String)>>,
}

impl Encryption {
    pub fn new(config: &EncryptionConfiguration) -> Result<Encryption, config::ConfigError> {
        let mut storage: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in crate::resources::builtins() {
            storage
                .entry(r.storage.clone())
                .or_default()
                .push((r.group.clone(), r.plural.clone()));
        }
        Ok(Encryption {
            rules: config.transformers()?,
            storage,
        })
    }

    /// The transformer for `key` (`/registry/<storage>/...`), or None when its resource is
    /// not configured: such values pass untouched.
    pub fn transformer(&self, key: &str) -> Option<&Arc<PrefixTransformers>> {
        let rest = key.strip_prefix("/registry/")?;
        let mut parts = rest.split('/');
        let first = parts.next()?;
        let resources: Vec<(&str, &str)> = match self.storage.get(first) {
            Some(grs) => grs.iter().map(|(g, r)| (g.as_str(), r.as_str())).collect(),
            // Custom resources are stored under `<group>/<plural>`.
            None if first.contains('.') => vec![(first, parts.next()?)],
            None => return None,
        };
        resources.iter().find_map(|(g, r)| self.lookup(g, r))
    }

    /// Upstream's lookup order: the exact resource, then its group's wildcard, then `*.*`;
    /// within each, the first configuration listing it.
    fn lookup(&self, group: &str, resource: &str) -> Option<&Arc<PrefixTransformers>> {
        let exact = if group.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}.{group}")
        };
        let group_wildcard = format!("*.{group}");
        [exact.as_str(), group_wildcard.as_str(), "*.*"]
            .iter()
            .find_map(|want| {
                self.rules
                    .iter()
                    .find(|(pattern, _)| pattern == want)
                    .map(|(_, t)| t)
            })
    }

    /// The store prefixes holding configured resources: what a rotation rewrites and the
    /// start-up check reads.
    fn prefixes(&self) -> Vec<String> {
        if self.rules.iter().any(|(p, _)| p == "*.*") {
            return vec!["/registry/".to_owned()];
        }
        let mut out: Vec<String> = Vec::new();
        for (storage, grs) in &self.storage {
            if grs.iter().any(|(g, r)| self.lookup(g, r).is_some()) {
                out.push(format!("/registry/{storage}/"));
            }
        }
        for (pattern, _) in &self.rules {
            // Custom resources of a configured group, or one named custom resource.
            if let Some((resource, group)) = pattern.split_once('.') {
                if group.contains('.') {
                    out.push(if resource == "*" {
                        format!("/registry/{group}/")
                    } else {
                        format!("/registry/{group}/{resource}/")
                    });
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// `value` as stored at `key`.
    pub fn seal(&self, key: &str, value: Bytes) -> Result<Bytes, TransformError> {
        match self.transformer(key) {
            None => Ok(value),
            Some(t) => t
                .transform_to_storage(&value, key.as_bytes())
                .map(Bytes::from),
        }
    }

    /// The value stored at `key`, opened; also whether it should be rewritten (stale). A
    /// value that does not open names the key it was sealed with (`<provider>:<name>`), so
    /// the one object's 500 says which key to restore.
    pub fn open(&self, key: &str, value: Bytes) -> Result<(Bytes, bool), TransformError> {
        match self.transformer(key) {
            None => Ok((value, false)),
            Some(t) => t
                .transform_from_storage(&value, key.as_bytes())
                .map(|(v, stale)| (Bytes::from(v), stale))
                .map_err(|e| match key_id(&value) {
                    Some(id) => TransformError(format!("decrypting with key {id:?}: {}", e.0)),
                    None => e,
                }),
        }
    }

    /// Refuses a configuration that cannot read what the store holds: a key named by stored
    /// values is missing, or a key decrypts none of its values (the wrong bytes under the
    /// right name). A single value that fails among readable ones is a corrupt object, left
    /// to answer 500 on its own. Only a sample is decrypted: each key id's values until one
    /// opens (a right key opens the first, so the start costs one decryption per key id,
    /// not one per object); the store is read a page at a time.
    pub fn verify(&self, store: &dyn Store) -> Result<Verified, EncryptionError> {
        #[derive(Default)]
        struct Tally {
            ok: usize,
            failed: usize,
            first: Option<(String, String)>,
        }
        const PAGE: usize = 500;
        let mut keys: HashMap<String, Tally> = HashMap::new();
        for prefix in self.prefixes() {
            let mut after: Option<String> = None;
            loop {
                let page = store.list(&prefix, after.as_deref(), Some(PAGE))?;
                after = page.items.last().map(|kv| kv.key.clone());
                for kv in page.items {
                    let Some(id) = key_id(&kv.value) else {
                        continue;
                    };
                    let tally = keys.entry(id).or_default();
                    if tally.ok > 0 {
                        continue;
                    }
                    match self.open(&kv.key, kv.value) {
                        Ok(_) => tally.ok += 1,
                        Err(e) => {
                            tally.failed += 1;
                            tally.first.get_or_insert((kv.key, e.0));
                        }
                    }
                }
                if !page.more || after.is_none() {
                    break;
                }
            }
        }
        let verified = Verified {
            key_ids: keys.len(),
            decrypted: keys.values().map(|t| t.ok + t.failed).sum(),
        };
        let mut ids: Vec<_> = keys.into_iter().collect();
        ids.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, tally) in ids {
            if tally.ok == 0 {
                let (key, error) = tally.first.unwrap_or_default();
                return Err(EncryptionError::Keys(format!(
                    "no configured key decrypts the {} object(s) encrypted with key {id:?} (first {key}: {error}); restore that key",
                    tally.failed
                )));
            }
            if tally.failed > 0 {
                let (key, error) = tally.first.unwrap_or_default();
                tracing::warn!(%key, %error, count = tally.failed, "stored objects fail to decrypt");
            }
        }
        Ok(verified)
    }
}

/// What [`Encryption::verify`] read: the key ids found and the values it decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub key_ids: usize,
    pub decrypted: usize,
}

/// The SHA-256 of a configuration file's bytes, in hex: how a running server and an online
/// `skiff secrets rotate` name the version of the file in use.
pub fn config_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `<provider>:<key name>` of an encrypted value (`k8s:enc:secretbox:v1:key1:...`).
fn key_id(value: &[u8]) -> Option<String> {
    let rest = value.strip_prefix(b"k8s:enc:")?;
    let mut parts = rest.splitn(4, |b| *b == b':');
    let provider = std::str::from_utf8(parts.next()?).ok()?;
    let _version = parts.next()?;
    let name = String::from_utf8_lossy(parts.next()?).into_owned();
    Some(format!("{provider}:{name}"))
}

/// Where the configuration came from, for the log line at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--encryption-provider-config`.
    Flag(PathBuf),
    /// The data dir's own file (generated on first start when `generated`).
    DataDir { path: PathBuf, generated: bool },
}

/// Loads the configuration (the flag's file, else the data dir's, generating it on first
/// start), checks it against what `store` holds and returns the store to serve from.
pub fn open_store(
    store: Arc<dyn Store>,
    pki: &Path,
    flag: Option<&Path>,
) -> Result<(Arc<EncryptedStore>, Source), EncryptionError> {
    let (config, source) = match flag {
        Some(path) => (read_config(path)?, Source::Flag(path.to_owned())),
        None => {
            let path = pki.join(CONFIG_FILE);
            let generated = !path.exists();
            if generated {
                refuse_lost_config(store.as_ref(), &path)?;
                write_config(&path, &default_config(&random_secret()?))?;
            }
            (read_config(&path)?, Source::DataDir { path, generated })
        }
    };
    let encryption = Arc::new(
        Encryption::new(&config).map_err(|e| EncryptionError::Config {
            path: config_path(&source).to_owned(),
            message: e.0,
        })?,
    );
    encryption.verify(store.as_ref())?;
    Ok((Arc::new(EncryptedStore::new(store, encryption)), source))
}

fn config_path(source: &Source) -> &Path {
    match source {
        Source::Flag(p) => p,
        Source::DataDir { path, .. } => path,
    }
}

/// Generating a fresh key over Secrets an earlier key sealed would lose them for good; say
/// so instead.
fn refuse_lost_config(store: &dyn Store, path: &Path) -> Result<(), EncryptionError> {
    let list = store.list("/registry/secrets/", None, None)?;
    if let Some(kv) = list
        .items
        .iter()
        .find(|kv| kv.value.starts_with(b"k8s:enc:"))
    {
        return Err(EncryptionError::Keys(format!(
            "{} is missing but the store holds encrypted Secrets (such as {}); restore the file",
            path.display(),
            kv.key
        )));
    }
    Ok(())
}

/// Reads and checks an EncryptionConfiguration file.
pub fn read_config(path: &Path) -> Result<EncryptionConfiguration, EncryptionError> {
    let config_err = |message: String| EncryptionError::Config {
        path: path.to_owned(),
        message,
    };
    let data = std::fs::read_to_string(path).map_err(|e| {
        config_err(format!(
            "error opening encryption provider configuration file: {e}"
        ))
    })?;
    if data.trim().is_empty() {
        return Err(config_err(
            "encryption provider configuration file is empty".into(),
        ));
    }
    let config = EncryptionConfiguration::parse(&data).map_err(|e| config_err(e.0))?;
    // Every key must build: a corrupt key refuses the start here, before any request.
    config.transformers().map_err(|e| config_err(e.0))?;
    Ok(config)
}

/// Writes `config` to `path` atomically, mode 0600 (it holds the keys).
pub fn write_config(path: &Path, config: &EncryptionConfiguration) -> Result<(), EncryptionError> {
    let yaml = serde_yaml::to_string(config).map_err(|e| EncryptionError::Config {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let tmp = path.with_extension("tmp");
    crate::serve::write_private(&tmp, &yaml).map_err(|e| EncryptionError::Keys(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|source| EncryptionError::Io {
        path: path.to_owned(),
        source,
    })
}

/// 32 random bytes, base64: a key for secretbox or AES-256.
fn random_secret() -> Result<String, EncryptionError> {
    use aes_gcm::aead::rand_core::RngCore;
    let mut key = [0u8; 32];
    aes_gcm::aead::OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| EncryptionError::Keys(format!("cannot generate a key: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(key))
}

/// What skiff generates on first start: Secrets sealed with secretbox, plain values still
/// readable (a data dir from before encryption) and rewritten sealed by a rotation.
pub fn default_config(secret: &str) -> EncryptionConfiguration {
    EncryptionConfiguration {
        api_version: config::API_VERSION.into(),
        kind: config::KIND.into(),
        resources: vec![config::ResourceConfiguration {
            resources: vec!["secrets".into()],
            providers: vec![
                ProviderConfiguration {
                    secretbox: Some(KeysConfiguration {
                        keys: vec![config::Key {
                            name: "key1".into(),
                            secret: secret.into(),
                        }],
                    }),
                    ..Default::default()
                },
                ProviderConfiguration {
                    identity: Some(serde_json::json!({})),
                    ..Default::default()
                },
            ],
        }],
    }
}

/// Puts a new random key first in the first provider of every resource entry, the old keys
/// after it (they keep reading what they sealed). Returns the new key's name.
pub fn add_key(config: &mut EncryptionConfiguration) -> Result<String, EncryptionError> {
    let secret = random_secret()?;
    let mut taken: Vec<String> = Vec::new();
    for rc in &config.resources {
        for p in &rc.providers {
            for keys in [&p.aesgcm, &p.aescbc, &p.secretbox].into_iter().flatten() {
                taken.extend(keys.keys.iter().map(|k| k.name.clone()));
            }
        }
    }
    let name = (1..)
        .map(|n| format!("key{n}"))
        .find(|n| !taken.contains(n))
        .expect("an unused name exists");
    for rc in &mut config.resources {
        let first = rc.providers.first_mut();
        let keys = first.and_then(|p| {
            p.secretbox
                .as_mut()
                .or(p.aesgcm.as_mut())
                .or(p.aescbc.as_mut())
        });
        let Some(keys) = keys else {
            return Err(EncryptionError::Keys(format!(
                "the first provider for {} is not aesgcm, aescbc or secretbox: put a keyed provider first to rotate",
                rc.resources.join(", ")
            )));
        };
        keys.keys.insert(
            0,
            config::Key {
                name: name.clone(),
                secret: secret.clone(),
            },
        );
    }
    Ok(name)
}

/// What a rewrite did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// Objects of configured resources read.
    pub read: usize,
    /// Of those, rewritten because another key (or none) had sealed them.
    pub rewritten: usize,
}

/// Rewrites every stored object of a configured resource that the first provider's first
/// key did not seal (upstream's "read and write back every Secret" step of a rotation).
pub async fn rewrite(
    store: &dyn Store,
    encryption: &Encryption,
) -> Result<Rewrite, EncryptionError> {
    let mut done = Rewrite::default();
    for prefix in encryption.prefixes() {
        for kv in store.list(&prefix, None, None)?.items {
            if encryption.transformer(&kv.key).is_none() {
                continue;
            }
            done.read += 1;
            let mut current = kv;
            loop {
                let (value, stale) = encryption
                    .open(&current.key, current.value.clone())
                    .map_err(|e| {
                        EncryptionError::Keys(format!(
                            "unable to transform key {:?}: {e}",
                            current.key
                        ))
                    })?;
                if !stale {
                    break;
                }
                let sealed = encryption
                    .seal(&current.key, value)
                    .map_err(|e| EncryptionError::Keys(e.0))?;
                match store
                    .update(current.key.clone(), sealed, Some(current.mod_revision))
                    .await
                {
                    Ok(_) => {
                        done.rewritten += 1;
                        break;
                    }
                    // Written meanwhile (by a sealed write, most likely): look again.
                    Err(skiff_store::Error::Conflict { .. }) => match store.get(&current.key)? {
                        Some(kv) => current = kv,
                        None => break,
                    },
                    Err(skiff_store::Error::NotFound(_)) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(done)
}

/// The configuration in use, swapped whole by [`EncryptedStore::reload`]; watches read it
/// at each event, so one opened before a rotation still opens values the new key seals.
type Current = Arc<std::sync::RwLock<Arc<Encryption>>>;

fn current(cell: &Current) -> Arc<Encryption> {
    cell.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// A [`Store`] that seals values of configured resources on the way in and opens them on
/// the way out, for every backend.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    encryption: Current,
}

impl EncryptedStore {
    pub fn new(inner: Arc<dyn Store>, encryption: Arc<Encryption>) -> EncryptedStore {
        EncryptedStore {
            inner,
            encryption: Arc::new(std::sync::RwLock::new(encryption)),
        }
    }

    /// Puts a new configuration in use while the server runs (upstream's
    /// `--encryption-provider-config-automatic-reload`): refused, the old one kept, when it
    /// cannot read what the store holds ([`Encryption::verify`]). Writes from here on are
    /// sealed with its first key; reads try all of its keys. Blocking (it reads the store).
    pub fn reload(&self, encryption: Encryption) -> Result<Verified, EncryptionError> {
        let verified = encryption.verify(self.inner.as_ref())?;
        *self.encryption.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(encryption);
        Ok(verified)
    }

    fn seal(&self, key: &str, value: Bytes) -> skiff_store::Result<Bytes> {
        current(&self.encryption)
            .seal(key, value)
            .map_err(|e| skiff_store::Error::Transform(e.0))
    }

    /// A get's error is the transformer's text (upstream's `NewInternalError(err)`).
    fn open(&self, mut kv: KeyValue) -> skiff_store::Result<KeyValue> {
        kv.value = current(&self.encryption)
            .open(&kv.key, kv.value)
            .map_err(|e| skiff_store::Error::Transform(e.0))?
            .0;
        Ok(kv)
    }
}

/// A list names the object that failed, as upstream's `unable to transform key %q`.
fn list_error(key: &str, e: TransformError) -> skiff_store::Error {
    skiff_store::Error::Transform(format!("unable to transform key {key:?}: {e}"))
}

impl Store for EncryptedStore {
    fn get(&self, key: &str) -> skiff_store::Result<Option<KeyValue>> {
        self.inner.get(key)?.map(|kv| self.open(kv)).transpose()
    }

    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> skiff_store::Result<ListResult> {
        let mut list = self.inner.list(prefix, start_after, limit)?;
        let encryption = current(&self.encryption);
        for kv in &mut list.items {
            let value = std::mem::take(&mut kv.value);
            kv.value = encryption
                .open(&kv.key, value)
                .map_err(|e| list_error(&kv.key, e))?
                .0;
        }
        Ok(list)
    }

    fn count_after(&self, prefix: &str, start_after: &str) -> skiff_store::Result<usize> {
        self.inner.count_after(prefix, start_after)
    }

    fn consistent_read(&self) -> skiff_store::Result<()> {
        self.inner.consistent_read()
    }

    fn current_revision(&self) -> Revision {
        self.inner.current_revision()
    }

    fn compacted_revision(&self) -> Revision {
        self.inner.compacted_revision()
    }

    fn create(
        &self,
        key: String,
        value: Bytes,
    ) -> BoxFuture<'static, skiff_store::Result<KeyValue>> {
        let sealed = match self.seal(&key, value.clone()) {
            Ok(v) => v,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let write = self.inner.create(key, sealed);
        Box::pin(async move {
            let mut kv = write.await?;
            kv.value = value;
            Ok(kv)
        })
    }

    fn update(
        &self,
        key: String,
        value: Bytes,
        expected: Option<Revision>,
    ) -> BoxFuture<'static, skiff_store::Result<KeyValue>> {
        let sealed = match self.seal(&key, value.clone()) {
            Ok(v) => v,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let write = self.inner.update(key, sealed, expected);
        Box::pin(async move {
            let mut kv = write.await?;
            kv.value = value;
            Ok(kv)
        })
    }

    fn delete(
        &self,
        key: String,
        expected: Option<Revision>,
    ) -> BoxFuture<'static, skiff_store::Result<KeyValue>> {
        let write = self.inner.delete(key, expected);
        let encryption = self.encryption.clone();
        Box::pin(async move {
            let mut kv = write.await?;
            kv.value = current(&encryption)
                .open(&kv.key, kv.value)
                .map_err(|e| skiff_store::Error::Transform(e.0))?
                .0;
            Ok(kv)
        })
    }

    fn watch(&self, prefix: &str, after: Revision) -> skiff_store::Result<Watch> {
        let watch = self.inner.watch(prefix, after)?;
        let encryption = self.encryption.clone();
        Ok(watch.map_values(Arc::new(move |key: &str, value: Bytes| {
            current(&encryption)
                .open(key, value)
                .map(|(v, _)| v)
                .map_err(|e| list_error(key, e))
        })))
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'static, skiff_store::Result<()>> {
        self.inner.compact(revision)
    }
}

#[cfg(test)]
mod tests;
