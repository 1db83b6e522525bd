//! Secure by default (decision 0024), as wiring: the data dir's permissions and the lock
//! that keeps one writer per data dir, opening the store behind encryption at rest, and the
//! `skiff secrets rotate` and `skiff certificate rotate` commands.

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
    let (store, source) = encryption::open_store(store, &pki_dir(data_dir)?, encryption_config)
        .context("encryption at rest")?;
    match source {
        encryption::Source::Flag(path) => {
            tracing::info!(config = %path.display(), "encryption at rest from --encryption-provider-config")
        }
        encryption::Source::DataDir { path, generated } => tracing::info!(
            config = %path.display(),
            generated,
            "encryption at rest: Secrets sealed with secretbox"
        ),
    }
    Ok(store)
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
    /// Adds a new encryption key in front of the others and rewrites every Secret with it
    /// (offline: stop the server first). Old keys keep decrypting until removed from the
    /// configuration.
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

/// `skiff secrets rotate`.
pub async fn secrets(args: SecretsArgs) -> anyhow::Result<()> {
    let SecretsCommand::Rotate(args) = args.command;
    prepare_data_dir(&args.data_dir)?;
    let _lock = lock_data_dir(&args.data_dir, "stop the server before rotating keys")?;
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

#[derive(clap::Args)]
pub struct CertificateArgs {
    #[command(subcommand)]
    command: CertificateCommand,
}

#[derive(clap::Subcommand)]
enum CertificateCommand {
    /// Renews the CA (same key, so issued certificates stay valid) and the client
    /// certificates now; the serving certificate is renewed at every start. Offline: stop
    /// the server first.
    Rotate(CertificateRotateArgs),
}

#[derive(clap::Args)]
struct CertificateRotateArgs {
    /// The server's data dir.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = "./skiff-data")]
    data_dir: PathBuf,
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
