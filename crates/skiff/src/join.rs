//! `skiff server --token` on etcd: servers of one cluster share its keys through the
//! datastore, as k3s servers join (decision 0042). The first server publishes its `pki`
//! dir (CA, ServiceAccount signing key, encryption key, admin token, client certificates:
//! everything there is cluster-wide; each server makes its own serving certificate at
//! start) sealed with the token; later servers fetch it before they load any key.

use std::path::{Path, PathBuf};

use anyhow::Context;
use skiff_store::Store;

/// Where bootstrap data lives: under the prefix the watch cache holds, so a read after
/// the write sees it, in a group no API resource is stored under.
const PREFIX: &str = "/registry/skiff.io/bootstrap/";

/// A token's bootstrap data.
fn key(token: &str) -> String {
    format!("{PREFIX}{}", skiff_auth::join::token_id(token))
}

/// Writes the cluster's keys from the datastore into `pki`, replacing this server's own;
/// `false` when no server has published them yet (this one is the first). Keys published
/// under another token are a refusal, as k3s refuses a server whose token differs: it
/// would otherwise start as the first server of a second cluster on the same data, with
/// keys that open none of its Secrets.
pub async fn fetch(store: &dyn Store, token: &str, pki: &Path) -> anyhow::Result<bool> {
    let Some(kv) = store.get(&key(token))? else {
        if !store.list(PREFIX, None, Some(1))?.items.is_empty() {
            anyhow::bail!(
                "the datastore holds the keys of a cluster whose servers were given another --token"
            );
        }
        return Ok(false);
    };
    let (token, pki) = (token.to_owned(), pki.to_owned());
    // PBKDF2 and file writes: off the async runtime.
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let files = skiff_auth::join::open(&token, &kv.value)?;
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&pki)
                .with_context(|| format!("creating {}", pki.display()))?;
        }
        for (name, contents) in files {
            write_private(&pki, &name, &contents)?;
        }
        Ok(())
    })
    .await??;
    Ok(true)
}

/// Publishes `pki`'s files sealed with `token` for the servers that join later. Another
/// server that published first (both started as the first) leaves this one with keys of
/// its own: an error, and the next start fetches the cluster's.
pub async fn publish(store: &dyn Store, token: &str, pki: &Path) -> anyhow::Result<()> {
    let (token_owned, pki) = (token.to_owned(), pki.to_owned());
    let sealed = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let mut files = std::collections::BTreeMap::new();
        for entry in
            std::fs::read_dir(&pki).with_context(|| format!("reading {}", pki.display()))?
        {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                continue;
            }
            files.insert(name, std::fs::read(entry.path())?);
        }
        Ok(skiff_auth::join::seal(&token_owned, &files)?)
    })
    .await??;
    match store.create(key(token), sealed.into()).await {
        Ok(_) => Ok(()),
        Err(skiff_store::Error::AlreadyExists(_)) => anyhow::bail!(
            "another server published the cluster's keys at the same time; start this one again to join with them"
        ),
        Err(e) => Err(e).context("publishing the cluster's keys"),
    }
}

/// Writes one fetched file, owner-only, replacing it atomically. Names come from the
/// datastore, so only plain file names are accepted.
fn write_private(dir: &Path, name: &str, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !is_plain_name(name) {
        anyhow::bail!("the cluster's bootstrap data names a file {name:?}");
    }
    let path = dir.join(name);
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_names_are_written() {
        for (name, ok) in [
            ("ca.crt", true),
            ("encryption-config.yaml", true),
            ("", false),
            (".", false),
            ("..", false),
            ("../kubeconfig", false),
            ("/etc/passwd", false),
            ("a/b", false),
        ] {
            assert_eq!(is_plain_name(name), ok, "{name:?}");
        }
    }

    #[tokio::test]
    async fn the_first_server_publishes_and_the_next_fetches_the_same_keys() {
        let store = skiff_store::MemoryStore::new();
        let first = tempfile::tempdir().unwrap();
        // The joining server's pki dir does not exist yet.
        let second_dir = tempfile::tempdir().unwrap();
        let second = second_dir.path().join("pki");
        std::fs::write(first.path().join("ca.key"), "KEY").unwrap();
        std::fs::write(first.path().join("admin.token"), "T").unwrap();

        assert!(!fetch(store.as_ref(), "tok", first.path()).await.unwrap());
        publish(store.as_ref(), "tok", first.path()).await.unwrap();
        // A second first server, with keys of its own, loses the race.
        let rival = tempfile::tempdir().unwrap();
        std::fs::write(rival.path().join("ca.key"), "OWN").unwrap();
        let err = publish(store.as_ref(), "tok", rival.path())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("at the same time"), "{err}");
        assert!(fetch(store.as_ref(), "tok", second.as_path())
            .await
            .unwrap());
        assert_eq!(
            std::fs::read_to_string(second.as_path().join("ca.key")).unwrap(),
            "KEY"
        );
        assert_eq!(
            std::fs::read_to_string(second.as_path().join("admin.token")).unwrap(),
            "T"
        );
        // A server given another token is refused, its keys left as they were.
        let other = tempfile::tempdir().unwrap();
        let err = fetch(store.as_ref(), "other", other.path())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("another --token"), "{err}");
        assert!(std::fs::read_dir(other.path()).unwrap().next().is_none());
    }
}
