//! Secure by default (decision 0024), as wiring: the data dir's permissions and the lock
//! that keeps one writer per data dir, opening the store behind encryption at rest (and
//! following its configuration file while the server runs, decision 0045), and the
//! `skiff secrets rotate`, `skiff certificate rotate` and `skiff token rotate` commands.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use skiff_apiserver::encryption;
use skiff_store::Store;

/// Creates the data dir 0700, or checks an existing one: refused when group or others may
/// write it (they could swap the store or the keys), tightened to 0700 when they may only
/// read it (data dirs made before skiff cared).
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot use data dir {}", dir.display()))?;
    let meta = std::fs::metadata(dir).with_context(|| format!("data dir {}", dir.display()))?;
    let mode = meta.mode() & 0o7777;
    if let Some(reason) = unsafe_dir_reason(mode, meta.uid(), current_uid()) {
        anyhow::bail!("refusing data dir {}: {reason}", dir.display());
    }
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making data dir {} private", dir.display()))?;
        tracing::info!(dir = %dir.display(), from = format!("{mode:o}"), "data dir made 0700");
    }
    let pki = dir.join("pki");
    if pki.exists() {
        std::fs::set_permissions(&pki, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", pki.display()))?;
    }
    Ok(())
}

/// Why a data dir with `mode`, owned by `owner`, must not be used by user `me`; pure, so
/// the rule is tested on its own.
pub fn unsafe_dir_reason(mode: u32, owner: u32, me: u32) -> Option<String> {
    if mode & 0o022 != 0 {
        return Some(format!(
            "it is writable by group or others (mode {:o}); run chmod 700 on it",
            mode & 0o777
        ));
    }
    if owner != me && me != 0 {
        return Some(format!("it is owned by uid {owner}, not by uid {me}"));
    }
    None
}

fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The files that hold secrets, made 0600 whatever an older skiff or umask left: the store
/// and its WAL, the kubeconfig, private keys, the admin token, the encryption keys.
pub fn tighten_credentials(dir: &Path) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = ["state.db", "state.db-wal", "state.db-shm", "kubeconfig"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir.join("pki")) {
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".key") || name.ends_with(".token") || name.ends_with(".yaml") {
                files.push(path);
            }
        }
    }
    for file in files {
        match std::fs::metadata(&file) {
            Ok(meta) if meta.mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private", file.display()))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Held while a process writes the data dir: the server for its lifetime, the offline
/// commands while they run.
pub struct DataDirLock(#[allow(dead_code)] std::fs::File);

/// Takes the data dir's lock, or says who holds it.
pub fn lock_data_dir(dir: &Path, holder: &str) -> anyhow::Result<DataDirLock> {
    let path = dir.join("skiff.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns; released when the file closes.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        anyhow::bail!(
            "another skiff process (a server?) is using data dir {}: {holder}",
            dir.display()
        );
    }
    Ok(DataDirLock(file))
}

/// The SQLite store (its file created 0600 first, so its WAL and shared-memory files,
/// which SQLite creates with the database's mode, are 0600 too).
fn open_sqlite(
    data_dir: &Path,
    metrics: &skiff_store::StoreMetrics,
) -> anyhow::Result<Arc<skiff_store::SqliteStore>> {
    let path = data_dir.join("state.db");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    tighten_credentials(data_dir)?;
    let options = skiff_store::SqliteOptions {
        metrics: metrics.clone(),
        ..Default::default()
    };
    let store = skiff_store::SqliteStore::open(&path, options).context("opening the store")?;
    tighten_credentials(data_dir)?;
    Ok(store)
}

/// The store the API serves from: SQLite behind encryption at rest, recording its commits
/// in `metrics`. A configuration that cannot read what the store holds refuses the start.
pub fn open_store(
    data_dir: &Path,
    encryption_config: Option<&Path>,
    metrics: &skiff_store::StoreMetrics,
) -> anyhow::Result<Arc<dyn Store>> {
    let store = open_sqlite(data_dir, metrics)?;
    encrypt_store(store, data_dir, encryption_config)
}

/// A backend (SQLite, or etcd from `--datastore-endpoint`) behind encryption at rest, its
/// configuration in the data dir: what the API serves from.
pub fn encrypt_store(
    store: Arc<dyn Store>,
    data_dir: &Path,
    encryption_config: Option<&Path>,
) -> anyhow::Result<Arc<dyn Store>> {
    let backend = store.clone();
    let pki = pki_dir(data_dir)?;
    let (store, source) =
        encryption::open_store(store, &pki, encryption_config).context("encryption at rest")?;
    match source {
        encryption::Source::Flag(path) => {
            tracing::info!(config = %path.display(), "encryption at rest from --encryption-provider-config")
        }
        encryption::Source::DataDir { path, generated } => {
            tracing::info!(
                config = %path.display(),
                generated,
                "encryption at rest: Secrets sealed with secretbox"
            );
            follow_config(store.clone(), backend, path, &pki);
        }
    }
    Ok(store)
}

/// Where a running server reports the configuration it follows: one line, the SHA-256 of
/// the file it put in use, then `rewrote <n> of <m>` or `error <reason>`; what an online
/// `skiff secrets rotate` waits for.
const RELOAD_STATUS_FILE: &str = "encryption-config.status";

/// How often the server looks at its configuration file.
const RELOAD_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes `contents` 0600 by rename, so a reader never sees half of it.
fn write_private_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Follows the data dir's encryption configuration while the server runs, as
/// kube-apiserver's `--encryption-provider-config-automatic-reload` (which polls its file;
/// a user's `--encryption-provider-config` file is not followed, as upstream without that
/// flag): a changed file that reads what the store holds is put in use without a restart,
/// then every object its first key did not seal is rewritten with it (the rotation's
/// second step, done here because only `skiff secrets rotate` edits this file). A file
/// that does not load leaves the old configuration in use, with the reason in the status.
fn follow_config(
    store: Arc<encryption::EncryptedStore>,
    backend: Arc<dyn Store>,
    path: PathBuf,
    pki: &Path,
) {
    let status_path = pki.join(RELOAD_STATUS_FILE);
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut seen = std::fs::read(&path)
        .map(|b| encryption::config_digest(&b))
        .unwrap_or_default();
    if let Err(e) = write_private_atomically(&status_path, &format!("{seen} loaded at start\n")) {
        tracing::warn!(error = %e, "writing {}", status_path.display());
    }
    handle.spawn(async move {
        loop {
            tokio::time::sleep(RELOAD_POLL).await;
            let (path2, store2, seen2) = (path.clone(), store.clone(), seen.clone());
            let loaded = tokio::task::spawn_blocking(move || {
                let hash = encryption::config_digest(&std::fs::read(&path2).ok()?);
                (hash != seen2).then(|| (hash, reload(&store2, &path2)))
            })
            .await;
            let Ok(Some((hash, result))) = loaded else {
                continue;
            };
            seen = hash.clone();
            let line = match result {
                Ok(encryption) => match encryption::rewrite(backend.as_ref(), &encryption).await {
                    Ok(done) => {
                        tracing::info!(config = %path.display(), rewritten = done.rewritten, read = done.read, "encryption configuration reloaded");
                        format!("{hash} rewrote {} of {}", done.rewritten, done.read)
                    }
                    Err(e) => format!("{hash} error rewriting: {e}"),
                },
                Err(e) => {
                    tracing::warn!(config = %path.display(), error = %format!("{e:#}"), "encryption configuration not reloaded; the previous one stays in use");
                    format!("{hash} error {e:#}")
                }
            };
            if let Err(e) = write_private_atomically(&status_path, &format!("{line}\n")) {
                tracing::warn!(error = %e, "writing {}", status_path.display());
            }
        }
    });
}

/// Loads `path` into `store` when it differs from what is in use; the configuration put in
/// use is returned for the rewrite (one more [`encryption::Encryption`] of the same file).
fn reload(
    store: &encryption::EncryptedStore,
    path: &Path,
) -> anyhow::Result<encryption::Encryption> {
    let config = encryption::read_config(path)?;
    let make = || {
        encryption::Encryption::new(&config).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    store.reload(make()?)?;
    make()
}

fn pki_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let pki = data_dir.join("pki");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&pki)
        .with_context(|| format!("creating {}", pki.display()))?;
    Ok(pki)
}

#[derive(clap::Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(clap::Subcommand)]
enum SecretsCommand {
    /// Adds a new encryption key in front of the others and rewrites every Secret with it.
    /// With the server running, it puts the key in use without a restart and rewrites
    /// (the data dir's own configuration only); else the rewrite is done here. Old keys
    /// keep decrypting until removed from the configuration.
    Rotate(RotateArgs),
}

#[derive(clap::Args)]
struct RotateArgs {
    /// The server's data dir.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = "./skiff-data")]
    data_dir: PathBuf,
    /// The server's own EncryptionConfiguration, when it runs with one: it is not edited
    /// (put the new key first yourself, as upstream's procedure); everything is rewritten
    /// with its first key.
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
}

/// `skiff secrets rotate`: offline when no server holds the data dir, else online.
pub async fn secrets(args: SecretsArgs) -> anyhow::Result<()> {
    let SecretsCommand::Rotate(args) = args.command;
    prepare_data_dir(&args.data_dir)?;
    let _lock =
        match lock_data_dir(&args.data_dir, "a server is running") {
            Ok(lock) => lock,
            Err(_) if args.encryption_provider_config.is_none() => {
                return rotate_online(&args.data_dir).await;
            }
            Err(e) => return Err(e.context(
                "a server following a --encryption-provider-config file is rotated as upstream: \
                 put the new key first in the file, restart the server, then run this again \
                 with the server stopped (or rewrite the Secrets through the API)",
            )),
        };
    let store = open_sqlite(&args.data_dir, &Default::default())?;
    let (path, config, added) = match &args.encryption_provider_config {
        Some(path) => (path.clone(), encryption::read_config(path)?, None),
        None => {
            let path = pki_dir(&args.data_dir)?.join(encryption::CONFIG_FILE);
            if !path.exists() {
                anyhow::bail!(
                    "{} does not exist: start the server once first",
                    path.display()
                );
            }
            let mut config = encryption::read_config(&path)?;
            // The keys there now must read the store before a new one goes in front.
            encryption::Encryption::new(&config)
                .map_err(anyhow::Error::msg)?
                .verify(store.as_ref())?;
            let name = encryption::add_key(&mut config)?;
            encryption::write_config(&path, &config)?;
            (path, config, Some(name))
        }
    };
    let encryption = encryption::Encryption::new(&config).map_err(anyhow::Error::msg)?;
    encryption.verify(store.as_ref())?;
    let done = encryption::rewrite(store.as_ref(), &encryption).await?;
    if let Some(name) = added {
        println!("added key {name} to {}", path.display());
    }
    println!(
        "rewrote {} of {} objects with the first key; older keys still decrypt until removed from {}",
        done.rewritten,
        done.read,
        path.display()
    );
    Ok(())
}

/// How long an online rotation waits for the server to put the new key in use and
/// rewrite the store with it.
const ONLINE_ROTATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A rotation against the running server: the new key goes first in the data dir's file,
/// which the server follows ([`follow_config`]): it checks the keys read the store, puts
/// them in use and rewrites what the old key sealed; this waits for its status line.
async fn rotate_online(data_dir: &Path) -> anyhow::Result<()> {
    let pki = pki_dir(data_dir)?;
    let path = pki.join(encryption::CONFIG_FILE);
    if !path.exists() {
        anyhow::bail!(
            "{} does not exist: start the server once first",
            path.display()
        );
    }
    let mut config = encryption::read_config(&path)?;
    let name = encryption::add_key(&mut config)?;
    encryption::write_config(&path, &config)?;
    let hash = encryption::config_digest(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    );
    println!(
        "added key {name} to {}; the running server is putting it in use",
        path.display()
    );
    let status_path = pki.join(RELOAD_STATUS_FILE);
    let deadline = std::time::Instant::now() + ONLINE_ROTATION_TIMEOUT;
    loop {
        let status = std::fs::read_to_string(&status_path).unwrap_or_default();
        if let Some(rest) = status.trim().strip_prefix(&hash) {
            let rest = rest.trim();
            if let Some(error) = rest.strip_prefix("error ") {
                anyhow::bail!("the server kept its previous keys: {error}");
            }
            println!(
                "the server {rest} objects with key {name}; older keys still decrypt until removed from {}",
                path.display()
            );
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "the server did not take {} within {:?} (is it a skiff server following this data dir?)",
                path.display(),
                ONLINE_ROTATION_TIMEOUT
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[derive(clap::Args)]
pub struct CertificateArgs {
    #[command(subcommand)]
    command: CertificateCommand,
}

#[derive(clap::Subcommand)]
enum CertificateCommand {
    /// Renews the CA (same key, so issued certificates stay valid) and the client
    /// certificates now; the serving certificate is renewed at every start. With
    /// `--admin-token`, also replaces the admin token. Offline: stop the server first.
    Rotate(CertificateRotateArgs),
}

#[derive(clap::Args)]
struct CertificateRotateArgs {
    /// The server's data dir.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = "./skiff-data")]
    data_dir: PathBuf,
    /// Also replace the admin token (`DIR/pki/admin.token`): the data dir's kubeconfig
    /// gets the new one, and the old one stops authenticating when the server starts.
    #[arg(long)]
    admin_token: bool,
}

/// A new admin token: 32 random bytes as 64 hex digits (the length of the first one).
fn new_admin_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    // SAFETY: getrandom fills the buffer this function owns, at most its length.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if usize::try_from(n).ok() != Some(bytes.len()) {
        anyhow::bail!(
            "cannot read random bytes: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The kubeconfig `contents` with the `token: <old>` credential replaced by `new`
/// (`None` when it does not hold `old`).
fn kubeconfig_with_token(contents: &str, old: &str, new: &str) -> Option<String> {
    let needle = format!("token: {old}");
    contents
        .contains(&needle)
        .then(|| contents.replace(&needle, &format!("token: {new}")))
}

/// Replaces the admin token and the data dir kubeconfig's copy of it.
fn rotate_admin_token(data_dir: &Path, pki: &Path) -> anyhow::Result<()> {
    let path = pki.join("admin.token");
    let old = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (start the server once first)", path.display()))?;
    let old = old.trim();
    let new = new_admin_token()?;
    write_private_atomically(&path, &new).with_context(|| format!("writing {}", path.display()))?;
    let kubeconfig = data_dir.join("kubeconfig");
    if let Ok(contents) = std::fs::read_to_string(&kubeconfig) {
        if let Some(updated) = kubeconfig_with_token(&contents, old, &new) {
            write_private_atomically(&kubeconfig, &updated)
                .with_context(|| format!("writing {}", kubeconfig.display()))?;
        }
    }
    println!(
        "replaced the admin token in {} and {}; the old token stops working when the server starts",
        path.display(),
        kubeconfig.display()
    );
    Ok(())
}

/// `skiff certificate rotate`.
pub fn certificate(args: CertificateArgs) -> anyhow::Result<()> {
    let CertificateCommand::Rotate(args) = args.command;
    prepare_data_dir(&args.data_dir)?;
    let _lock = lock_data_dir(
        &args.data_dir,
        "stop the server before rotating certificates",
    )?;
    let pki = pki_dir(&args.data_dir)?;
    let renewed = skiff_apiserver::serve::rotate_certificates(&pki)?;
    for (name, not_after) in renewed {
        println!("renewed {name}, valid until {not_after}");
    }
    if args.admin_token {
        rotate_admin_token(&args.data_dir, &pki)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_tokens_are_random_and_replace_the_kubeconfigs() {
        let a = new_admin_token().unwrap();
        let b = new_admin_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        let kc = "users:\n- name: admin\n  user:\n    token: abc\n";
        assert_eq!(
            kubeconfig_with_token(kc, "abc", "def").as_deref(),
            Some("users:\n- name: admin\n  user:\n    token: def\n")
        );
        assert_eq!(kubeconfig_with_token(kc, "zzz", "def"), None);
    }

    #[test]
    fn data_dir_rules() {
        let cases = [
            (0o700, 1000, 1000, None),
            (0o755, 1000, 1000, None),
            (0o750, 1000, 1000, None),
            (
                0o770,
                1000,
                1000,
                Some("it is writable by group or others (mode 770); run chmod 700 on it"),
            ),
            (
                0o757,
                1000,
                1000,
                Some("it is writable by group or others (mode 757); run chmod 700 on it"),
            ),
            (
                0o1777,
                0,
                1000,
                Some("it is writable by group or others (mode 777); run chmod 700 on it"),
            ),
            (
                0o700,
                0,
                1000,
                Some("it is owned by uid 0, not by uid 1000"),
            ),
            (0o700, 1000, 0, None),
        ];
        for (mode, owner, me, want) in cases {
            assert_eq!(
                unsafe_dir_reason(mode, owner, me).as_deref(),
                want,
                "{mode:o}"
            );
        }
    }

    #[test]
    fn one_process_per_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_data_dir(dir.path(), "stop it").unwrap();
        let err = lock_data_dir(dir.path(), "stop it")
            .err()
            .unwrap()
            .to_string();
        assert!(err.ends_with("stop it"), "{err}");
        drop(held);
        lock_data_dir(dir.path(), "stop it").unwrap();
    }
}
