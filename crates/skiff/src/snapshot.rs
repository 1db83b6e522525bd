//! `skiff snapshot save|restore` and `skiff datastore migrate` (decision 0053).
//!
//! SQLite: a snapshot is taken from the store file by a second connection while the server
//! serves (WAL: a consistent read beside the writer), and restored into the data dir while
//! no server holds it. etcd: saved through etcd's snapshot API, restored logically (every
//! key under `/registry/` written back through etcd's transactions). A move copies every
//! key from one store to the other while the server is stopped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use skiff_store::snapshot as store_snapshot;
use skiff_store::Store;

use crate::datastore::{check_endpoints, etcd_options};
use crate::security::lock_data_dir;

/// Every key skiff writes is under kube-apiserver's `--etcd-prefix`.
const PREFIX: &str = "/registry/";

/// Writes in flight at once while copying or clearing.
const PARALLEL: usize = 64;

/// The Lease the server running the controllers holds on etcd (decision 0042).
const LEADER_LEASE: &str = "/registry/leases/kube-system/kube-controller-manager";

/// Refuses to go on while a server writes to etcd: a restore or a move must not race the
/// cluster it replaces. While any server runs on etcd, one of them leads and renews the
/// controllers' Lease every few seconds, so nothing written under `/registry/` for twice
/// the Lease's duration means no server runs (the wait is on etcd's own events, so clock
/// skew between hosts does not matter). A datastore where no server ever led needs no
/// wait.
async fn ensure_no_server(store: &dyn Store) -> anyhow::Result<()> {
    let Some(lease) = store.get(LEADER_LEASE)? else {
        return Ok(());
    };
    let seconds = serde_json::from_slice::<serde_json::Value>(&lease.value)
        .ok()
        .and_then(|v| v["spec"]["leaseDurationSeconds"].as_u64())
        .unwrap_or(15)
        .clamp(1, 60);
    let window = std::time::Duration::from_secs(2 * seconds);
    eprintln!(
        "Checking that no server writes to etcd ({} s, twice the controllers' Lease)...",
        window.as_secs()
    );
    let mut watch = store.watch(PREFIX, store.current_revision())?;
    match tokio::time::timeout(window, watch.next()).await {
        Err(_) => Ok(()),
        Ok(Some(Ok(event))) => anyhow::bail!(
            "a server is writing to etcd ({} changed just now): stop every server on it first",
            event.key
        ),
        Ok(Some(Err(e))) => Err(e).context("watching etcd"),
        Ok(None) => anyhow::bail!("the watch on etcd ended"),
    }
}

#[derive(clap::Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(clap::Subcommand)]
enum SnapshotCommand {
    /// Save the cluster's state to FILE while the server serves: a plain SQLite database
    /// (`sqlite3 FILE .tables`), or etcd's own snapshot with `--datastore-endpoint`.
    /// Secrets stay sealed as they are at rest; restoring needs the data dir's keys.
    Save(SnapshotFileArgs),
    /// Replace the cluster's state with FILE's. SQLite: the server must be stopped.
    /// etcd: every key under /registry/ is replaced through transactions; stop every
    /// server on that etcd first.
    Restore(SnapshotFileArgs),
}

#[derive(clap::Args)]
struct SnapshotFileArgs {
    /// The snapshot file.
    file: PathBuf,
    /// The server's data dir (its SQLite store; with etcd, nothing is read from it).
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = "./skiff-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    etcd: EtcdFlags,
}

/// k3s's `--datastore-*` flags, for the side of a command that is etcd.
#[derive(clap::Args)]
struct EtcdFlags {
    /// etcd's client URLs, `http(s)://host:port[,...]`, as `skiff server` was given them.
    #[arg(long, value_delimiter = ',')]
    datastore_endpoint: Vec<String>,
    /// The CA certificate (PEM) that signed etcd's serving certificates.
    #[arg(long)]
    datastore_cafile: Option<PathBuf>,
    /// The client certificate (PEM) for etcd.
    #[arg(long)]
    datastore_certfile: Option<PathBuf>,
    /// The key (PEM) of `--datastore-certfile`.
    #[arg(long)]
    datastore_keyfile: Option<PathBuf>,
}

impl EtcdFlags {
    fn options(&self, endpoints: Vec<String>) -> anyhow::Result<skiff_etcd::EtcdOptions> {
        check_endpoints(&endpoints)?;
        let mut options = etcd_options(
            endpoints,
            &self.datastore_cafile,
            &self.datastore_certfile,
            &self.datastore_keyfile,
        );
        // A tool never compacts: the servers do.
        options.compaction_interval = None;
        Ok(options)
    }

    fn tls(&self) -> bool {
        self.datastore_cafile.is_some()
            || self.datastore_certfile.is_some()
            || self.datastore_keyfile.is_some()
    }

    /// The etcd store at `endpoints`, its watch cache primed with `/registry/`.
    async fn store(&self, endpoints: Vec<String>) -> anyhow::Result<Arc<skiff_etcd::EtcdStore>> {
        let joined = endpoints.join(",");
        skiff_etcd::EtcdStore::connect(self.options(endpoints)?)
            .await
            .with_context(|| format!("connecting to etcd at {joined}"))
    }
}

fn state_db(data_dir: &Path) -> PathBuf {
    data_dir.join("state.db")
}

pub async fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    match args.command {
        SnapshotCommand::Save(args) if args.etcd.datastore_endpoint.is_empty() => {
            let started = Instant::now();
            let db = state_db(&args.data_dir);
            let file = args.file.clone();
            let info = tokio::task::spawn_blocking(move || store_snapshot::save(&db, &file))
                .await?
                .with_context(|| {
                    format!(
                        "saving a snapshot of {}",
                        state_db(&args.data_dir).display()
                    )
                })?;
            println!(
                "Snapshot saved at {}: {} keys at revision {}, {} bytes, in {} ms.",
                args.file.display(),
                info.keys,
                info.revision,
                std::fs::metadata(&args.file)?.len(),
                started.elapsed().as_millis()
            );
            Ok(())
        }
        SnapshotCommand::Save(args) => {
            let started = Instant::now();
            let endpoints = args.etcd.datastore_endpoint.clone();
            let options = args.etcd.options(endpoints.clone())?;
            let client = skiff_etcd::connect_client(&options)
                .await
                .with_context(|| format!("connecting to etcd at {}", endpoints.join(",")))?;
            let size = skiff_etcd::snapshot::save(&client, &args.file, options.request_timeout)
                .await
                .context("saving etcd's snapshot")?;
            // Read back at once: the file is whole (its hash matches) and holds the keys.
            let items = read_etcd_snapshot(args.file.clone()).await?;
            println!(
                "Snapshot saved at {}: etcd's snapshot, {size} bytes, {} keys under {PREFIX}, \
                 in {} ms.",
                args.file.display(),
                items.len(),
                started.elapsed().as_millis()
            );
            Ok(())
        }
        SnapshotCommand::Restore(args) if args.etcd.datastore_endpoint.is_empty() => {
            let _lock = lock_data_dir(&args.data_dir, "stop the server before a restore")?;
            let started = Instant::now();
            let db = state_db(&args.data_dir);
            create_private(&db)?;
            let file = args.file.clone();
            let info = tokio::task::spawn_blocking(move || store_snapshot::restore(&db, &file))
                .await?
                .with_context(|| format!("restoring {}", args.file.display()))?;
            println!(
                "Restored {} keys from {} (revision {}) in {} ms; the store continues at \
                 revision {}, so clients holding a later one re-list.",
                info.keys,
                args.file.display(),
                info.snapshot_revision,
                started.elapsed().as_millis(),
                info.revision
            );
            Ok(())
        }
        SnapshotCommand::Restore(args) => {
            let items = read_etcd_snapshot(args.file.clone()).await?;
            let target = args
                .etcd
                .store(args.etcd.datastore_endpoint.clone())
                .await?;
            ensure_no_server(target.as_ref()).await?;
            let started = Instant::now();
            let removed = store_snapshot::clear(target.as_ref(), PREFIX, PARALLEL)
                .await
                .context("removing etcd's current keys")?;
            let written = store_snapshot::copy_into(target.as_ref(), items, PARALLEL)
                .await
                .context("writing the snapshot's keys into etcd")?;
            println!(
                "Restored {written} keys from {} into etcd (replacing {removed}) in {} ms; etcd \
                 is at revision {}.",
                args.file.display(),
                started.elapsed().as_millis(),
                target.current_revision()
            );
            Ok(())
        }
    }
}

/// The keys under `/registry/` of the etcd snapshot `file`, read off the async runtime.
async fn read_etcd_snapshot(file: PathBuf) -> anyhow::Result<Vec<(String, bytes::Bytes)>> {
    tokio::task::spawn_blocking(move || {
        let data = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        skiff_etcd::snapshot::read(&data, PREFIX)
            .with_context(|| format!("reading {}", file.display()))
    })
    .await?
}

/// Creates `path` 0600 if missing, so the SQLite files made beside it are 0600 too.
fn create_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(())
}

#[derive(clap::Args)]
pub struct DatastoreArgs {
    #[command(subcommand)]
    command: DatastoreCommand,
}

#[derive(clap::Subcommand)]
enum DatastoreCommand {
    /// Move the cluster's state to another store, with the server stopped: from the data
    /// dir's SQLite to etcd (`--to etcd://host:port[,...]`), or from etcd
    /// (`--datastore-endpoint`) back to SQLite (`--to sqlite://[PATH]`, by default the data
    /// dir's). Objects keep everything but their resourceVersions, which are the new
    /// store's revisions (as with k3s).
    Migrate(MigrateArgs),
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// Where the state goes: `etcd://host:port[,host:port...]` (https with the TLS flags)
    /// or `sqlite://[PATH]`.
    #[arg(long)]
    to: String,
    /// The server's data dir: its SQLite store, and its lock (no server may run).
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = "./skiff-data")]
    data_dir: PathBuf,
    /// Replace whatever the target holds under /registry/; without it a target that holds
    /// anything there is refused.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    etcd: EtcdFlags,
}

/// Where `--to` sends the state.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// etcd client URLs.
    Etcd(Vec<String>),
    /// An SQLite store file; `None` is the data dir's.
    Sqlite(Option<PathBuf>),
}

/// Parses `--to`: `etcd://host:port[,host:port...]` (each endpoint `http://`, or
/// `https://` when `tls`), or `sqlite://[PATH]`.
fn parse_target(to: &str, tls: bool) -> Result<Target, String> {
    if let Some(hosts) = to.strip_prefix("etcd://") {
        let scheme = if tls { "https" } else { "http" };
        let endpoints = hosts
            .split(',')
            .map(|host| {
                let valid = host
                    .rsplit_once(':')
                    .is_some_and(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok())
                    && !host.contains('/');
                if valid {
                    Ok(format!("{scheme}://{host}"))
                } else {
                    Err(format!(
                        "--to {to:?}: {host:?} is not host:port (etcd://host:port[,host:port...])"
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Target::Etcd(endpoints));
    }
    if let Some(path) = to.strip_prefix("sqlite://") {
        return Ok(Target::Sqlite(
            Some(path).filter(|p| !p.is_empty()).map(PathBuf::from),
        ));
    }
    Err(format!(
        "--to {to:?}: expected etcd://host:port[,...] or sqlite://[PATH]"
    ))
}

pub async fn datastore(args: DatastoreArgs) -> anyhow::Result<()> {
    let DatastoreCommand::Migrate(args) = args.command;
    let target = parse_target(&args.to, args.etcd.tls()).map_err(anyhow::Error::msg)?;
    let from_etcd = !args.etcd.datastore_endpoint.is_empty();
    match (&target, from_etcd) {
        (Target::Etcd(_), true) => anyhow::bail!(
            "the state is already in etcd (--datastore-endpoint); a move goes between SQLite \
             and etcd"
        ),
        (Target::Sqlite(_), false) => anyhow::bail!(
            "the state is already in SQLite; give --datastore-endpoint to move it from etcd"
        ),
        _ => {}
    }
    let _lock = lock_data_dir(
        &args.data_dir,
        "stop the server before moving its state: writes during a move would be lost",
    )?;
    let (source, source_name): (Arc<dyn Store>, String) = if from_etcd {
        let endpoints = args.etcd.datastore_endpoint.clone();
        let name = format!("etcd at {}", endpoints.join(","));
        let store = args.etcd.store(endpoints).await?;
        ensure_no_server(store.as_ref()).await?;
        (store, name)
    } else {
        let db = state_db(&args.data_dir);
        anyhow::ensure!(
            db.is_file(),
            "no SQLite store at {}: nothing to move",
            db.display()
        );
        let store = skiff_store::SqliteStore::open(&db, Default::default())
            .with_context(|| format!("opening {}", db.display()))?;
        (store, format!("SQLite at {}", db.display()))
    };
    // Timed from here: the copy, not connecting or the check that no server runs.
    let started = Instant::now();
    let (items, revision) = store_snapshot::all(source.as_ref(), PREFIX)?;
    drop(source);

    let (target, target_name, replaced): (Arc<dyn Store>, String, u64) = match target {
        Target::Etcd(endpoints) => {
            let name = format!("etcd at {}", endpoints.join(","));
            let store = args.etcd.store(endpoints).await?;
            let replaced = empty_or_overwrite(store.as_ref(), &name, args.overwrite).await?;
            (store, name, replaced)
        }
        Target::Sqlite(path) => {
            let db = path.unwrap_or_else(|| state_db(&args.data_dir));
            let name = format!("SQLite at {}", db.display());
            create_private(&db)?;
            let store = skiff_store::SqliteStore::open(&db, Default::default())
                .with_context(|| format!("opening {}", db.display()))?;
            let replaced = empty_or_overwrite(store.as_ref(), &name, args.overwrite).await?;
            drop(store);
            // New revisions start past the source's: a client's watch from an old one is
            // 410 Gone (it re-lists) rather than silently waiting for a revision to come.
            let start = db.clone();
            tokio::task::spawn_blocking(move || store_snapshot::start_after(&start, revision))
                .await??;
            let store = skiff_store::SqliteStore::open(&db, Default::default())
                .with_context(|| format!("opening {}", db.display()))?;
            (store, name, replaced)
        }
    };
    let moved = store_snapshot::copy_into(target.as_ref(), items, PARALLEL)
        .await
        .with_context(|| format!("writing into {target_name}"))?;
    let replaced = if replaced > 0 {
        format!(" (replacing {replaced} keys it held)")
    } else {
        String::new()
    };
    println!(
        "Moved {moved} keys from {source_name} (revision {revision}) to {target_name}{replaced} \
         in {} ms. resourceVersions are the new store's: clients re-list.",
        started.elapsed().as_millis()
    );
    let now = target.current_revision();
    if now < revision {
        // etcd's revision only grows by writes: it cannot be moved past the source's as
        // SQLite's is, so a watch resumed from an old resourceVersion would wait for it.
        println!(
            "The target is at revision {now}, below the source's {revision}: restart every \
             agent and client that holds a watch, so that they list again."
        );
    }
    Ok(())
}

/// Refuses a target that holds keys under `/registry/`, or with `overwrite` deletes them;
/// returns how many were deleted.
async fn empty_or_overwrite(
    target: &dyn Store,
    name: &str,
    overwrite: bool,
) -> anyhow::Result<u64> {
    let held = target.list(PREFIX, None, Some(1))?;
    if held.items.is_empty() {
        return Ok(0);
    }
    anyhow::ensure!(
        overwrite,
        "{name} already holds a cluster's state (e.g. {}); --overwrite replaces it",
        held.items[0].key
    );
    Ok(store_snapshot::clear(target, PREFIX, PARALLEL).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(seconds: u64) -> bytes::Bytes {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "spec": {"holderIdentity": "server-1", "leaseDurationSeconds": seconds},
        }))
        .unwrap()
        .into()
    }

    #[tokio::test]
    async fn a_datastore_someone_writes_to_is_refused_a_quiet_one_is_not() {
        // No server ever led: no wait at all.
        let store = skiff_store::MemoryStore::new();
        ensure_no_server(store.as_ref()).await.unwrap();
        // A leader's Lease of 1 s: quiet for 2 s is no server.
        store.create(LEADER_LEASE.into(), lease(1)).await.unwrap();
        let quiet = Instant::now();
        ensure_no_server(store.as_ref()).await.unwrap();
        assert!(quiet.elapsed() >= std::time::Duration::from_secs(2));
        // A leader renewing (any write under /registry/) within the window: refused.
        let writer = store.clone();
        let leader = tokio::spawn(async move {
            loop {
                writer
                    .update(LEADER_LEASE.into(), lease(1), None)
                    .await
                    .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        let err = ensure_no_server(store.as_ref()).await.unwrap_err();
        leader.abort();
        assert!(
            err.to_string().contains("stop every server on it first"),
            "{err}"
        );
    }

    #[test]
    fn targets_parse_as_etcd_endpoints_or_an_sqlite_path() {
        for (to, tls, want) in [
            (
                "etcd://127.0.0.1:2379",
                false,
                Ok(Target::Etcd(vec!["http://127.0.0.1:2379".into()])),
            ),
            (
                "etcd://e1:2379,e2:2379",
                true,
                Ok(Target::Etcd(vec![
                    "https://e1:2379".into(),
                    "https://e2:2379".into(),
                ])),
            ),
            (
                "etcd://[::1]:2379",
                false,
                Ok(Target::Etcd(vec!["http://[::1]:2379".into()])),
            ),
            ("sqlite://", false, Ok(Target::Sqlite(None))),
            (
                "sqlite:///var/lib/skiff/state.db",
                false,
                Ok(Target::Sqlite(Some("/var/lib/skiff/state.db".into()))),
            ),
            (
                "sqlite://relative/state.db",
                false,
                Ok(Target::Sqlite(Some("relative/state.db".into()))),
            ),
        ] {
            assert_eq!(parse_target(to, tls), want, "{to}");
        }
        for bad in [
            "etcd://",
            "etcd://e1",
            "etcd://e1:port",
            "etcd://e1:99999",
            "etcd://e1:2379,",
            "etcd://:2379",
            "etcd://e1:2379/path",
            "http://e1:2379",
            "postgres://db",
            "",
        ] {
            let err = parse_target(bad, false).unwrap_err();
            assert!(err.starts_with("--to "), "{bad}: {err}");
        }
    }
}
