//! Snapshots of the SQLite store, and moving state between stores (decision 0053).
//!
//! A snapshot is a plain SQLite database with the store's tables, written by `VACUUM INTO`
//! from a second connection: WAL lets that read transaction run beside a serving writer, so
//! the copy is one consistent revision without stopping the server, and anyone can open it
//! (`sqlite3 FILE .tables`). Restoring replaces the current state in one transaction and
//! moves the revision counter past every revision clients may hold, so their watches get
//! 410 Gone and they re-list instead of missing what the restore changed (etcd's
//! `snapshot restore --bump-revision --mark-compacted`, which upstream recommends).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::{Error, Result, Revision, Store};

/// What a saved snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Keys in the snapshot.
    pub keys: u64,
    /// The store revision the snapshot is of.
    pub revision: Revision,
}

/// What a restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreInfo {
    /// Keys restored.
    pub keys: u64,
    /// The revision the snapshot was taken at.
    pub snapshot_revision: Revision,
    /// The store's revision after the restore: later than any revision before it, and the
    /// oldest a watch may start from.
    pub revision: Revision,
}

/// `path` with `suffix` appended to its file name (`state.db` → `state.db.part`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens an existing store file without creating one.
fn open_existing(db: &Path) -> Result<Connection> {
    if !db.is_file() {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no store at {}", db.display()),
        )));
    }
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// The revision and key count of the store tables in schema `schema` of `conn`, or why
/// they are not a skiff store.
fn describe(conn: &Connection, schema: &str) -> Result<SnapshotInfo> {
    let tables: Vec<String> = conn
        .prepare(&format!(
            "SELECT name FROM {schema}.sqlite_master WHERE type = 'table' ORDER BY name"
        ))
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|e| Error::InvalidSnapshot(format!("not an SQLite database: {e}")))?;
    for table in ["kv", "log", "meta"] {
        if !tables.iter().any(|t| t == table) {
            return Err(Error::InvalidSnapshot(format!(
                "not a skiff store: no {table:?} table (tables: {})",
                tables.join(", ")
            )));
        }
    }
    let revision: Option<i64> = conn
        .query_row(
            &format!("SELECT value FROM {schema}.meta WHERE name = 'revision'"),
            [],
            |r| r.get(0),
        )
        .optional()?;
    let revision =
        revision.ok_or_else(|| Error::InvalidSnapshot("not a skiff store: no revision".into()))?;
    let keys: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM {schema}.kv"), [], |r| {
        r.get(0)
    })?;
    Ok(SnapshotInfo {
        keys: u64::try_from(keys).unwrap_or(0),
        revision,
    })
}

/// Writes a consistent copy of the store file `db` to `out`, while a server may be writing
/// to it. The copy is written beside `out` (`.part`), synced and renamed, so `out` is
/// either the previous file or the whole snapshot; it is 0600, as it holds everything the
/// store does. The result is in rollback-journal mode: one self-contained file.
pub fn save(db: &Path, out: &Path) -> Result<SnapshotInfo> {
    let conn = open_existing(db)?;
    describe(&conn, "main")?;
    let part = with_suffix(out, ".part");
    let _ = std::fs::remove_file(&part);
    // VACUUM INTO accepts an existing empty file: created here, so with our mode.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&part)?;
    let written = (|| {
        let target = part
            .to_str()
            .ok_or_else(|| Error::InvalidSnapshot(format!("{} is not UTF-8", part.display())))?;
        conn.execute("VACUUM INTO ?1", [target])?;
        let copy = Connection::open(&part)?;
        copy.pragma_update(None, "journal_mode", "DELETE")?;
        let info = describe(&copy, "main")?;
        drop(copy);
        std::fs::File::open(&part)?.sync_all()?;
        std::fs::rename(&part, out)?;
        sync_parent(out)?;
        Ok(info)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written
}

fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)?.sync_all()?;
    Ok(())
}

/// Replaces the state of the store file `db` (created if missing) with the snapshot
/// `snapshot`, in one transaction: nothing changes unless the snapshot is a whole, valid
/// skiff store. No server may have `db` open (the caller holds the data dir's lock).
///
/// The history is dropped and the revision becomes one past both the snapshot's and the
/// store's own, marked compacted: clients holding a revision from before the restore get
/// 410 Gone on their next watch and re-list, and new writes never reuse a revision a
/// client has seen.
pub fn restore(db: &Path, snapshot: &Path) -> Result<RestoreInfo> {
    if !snapshot.is_file() {
        return Err(Error::InvalidSnapshot(format!(
            "no snapshot file at {}",
            snapshot.display()
        )));
    }
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut conn = Connection::open(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(crate::sqlite::SCHEMA)?;
    let path = snapshot
        .to_str()
        .ok_or_else(|| Error::InvalidSnapshot(format!("{} is not UTF-8", snapshot.display())))?;
    // Read-only: the snapshot is never modified by a restore.
    conn.execute(
        "ATTACH DATABASE ?1 AS snap",
        [format!("file:{}?mode=ro", uri_path(path))],
    )
    .map_err(|e| Error::InvalidSnapshot(format!("not an SQLite database: {e}")))?;
    let result = (|| {
        let check: String = conn
            .query_row("PRAGMA snap.quick_check", [], |r| r.get(0))
            .map_err(|e| Error::InvalidSnapshot(format!("not an SQLite database: {e}")))?;
        if check != "ok" {
            return Err(Error::InvalidSnapshot(format!("damaged: {check}")));
        }
        let info = describe(&conn, "snap")?;
        let tx = conn.transaction()?;
        let current: i64 =
            tx.query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| {
                r.get(0)
            })?;
        let revision = restored_revision(current, info.revision)?;
        tx.execute("DELETE FROM kv", [])?;
        tx.execute(
            "INSERT INTO kv (key, value, create_rev, mod_rev) \
             SELECT key, value, create_rev, mod_rev FROM snap.kv",
            [],
        )?;
        tx.execute("DELETE FROM log", [])?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE name IN ('revision', 'compacted')",
            [revision],
        )?;
        tx.commit()?;
        Ok(RestoreInfo {
            keys: info.keys,
            snapshot_revision: info.revision,
            revision,
        })
    })();
    let _ = conn.execute("DETACH DATABASE snap", []);
    let info = result?;
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    Ok(info)
}

/// `path` as the path of an SQLite URI filename: the characters URIs give a meaning escaped.
fn uri_path(path: &str) -> String {
    path.replace('%', "%25")
        .replace('?', "%3f")
        .replace('#', "%23")
}

/// The revision a store continues from after a restore or a move: past both what it held
/// and what it receives.
fn restored_revision(current: Revision, incoming: Revision) -> Result<Revision> {
    current
        .max(incoming)
        .checked_add(1)
        .ok_or_else(|| Error::InvalidSnapshot(format!("revision {incoming} is out of range")))
}

/// Starts the (empty) store file `db` after `revision`, marked compacted there: a store
/// that receives another store's state (a move) never hands out a revision a client of the
/// old one has seen, and such a client's watch gets 410 Gone and re-lists.
pub fn start_after(db: &Path, revision: Revision) -> Result<Revision> {
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut conn = Connection::open(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(crate::sqlite::SCHEMA)?;
    let tx = conn.transaction()?;
    let current: i64 = tx.query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| {
        r.get(0)
    })?;
    let next = restored_revision(current, revision)?;
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE name IN ('revision', 'compacted')",
        [next],
    )?;
    tx.commit()?;
    Ok(next)
}

/// Every key under `prefix` with its value, from one consistent listing in pages.
pub fn all(store: &dyn Store, prefix: &str) -> Result<(Vec<(String, Bytes)>, Revision)> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    let mut revision = None;
    loop {
        let page = store.list(prefix, after.as_deref(), Some(1000))?;
        // Pages of a local store or a watch cache are each a snapshot; one moving on
        // between pages would mix revisions, so the whole listing is retried then.
        if *revision.get_or_insert(page.revision) != page.revision {
            return all(store, prefix);
        }
        after = page.items.last().map(|kv| kv.key.clone());
        items.extend(page.items.into_iter().map(|kv| (kv.key, kv.value)));
        if !page.more {
            return Ok((items, revision.unwrap_or(0)));
        }
    }
}

/// Writes `items` into `target` as creates, `parallel` at a time; returns how many. A key
/// already present fails the copy ([`Error::AlreadyExists`]): callers check the target is
/// empty, or empty it, first.
pub async fn copy_into(
    target: &dyn Store,
    items: Vec<(String, Bytes)>,
    parallel: usize,
) -> Result<u64> {
    use futures::stream::{StreamExt, TryStreamExt};
    let count = items.len() as u64;
    futures::stream::iter(
        items
            .into_iter()
            .map(|(key, value)| target.create(key, value)),
    )
    .buffer_unordered(parallel.max(1))
    .try_for_each(|_| async { Ok(()) })
    .await?;
    Ok(count)
}

/// Deletes every key under `prefix` of `target`; returns how many.
pub async fn clear(target: &dyn Store, prefix: &str, parallel: usize) -> Result<u64> {
    use futures::stream::{StreamExt, TryStreamExt};
    let (items, _) = all(target, prefix)?;
    let count = items.len() as u64;
    futures::stream::iter(items.into_iter().map(|(key, _)| target.delete(key, None)))
        .buffer_unordered(parallel.max(1))
        .try_for_each(|_| async { Ok(()) })
        .await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteOptions, SqliteStore};

    fn value(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn uri_paths_escape_what_uris_give_a_meaning() {
        assert_eq!(uri_path("/tmp/a b/snap.db"), "/tmp/a b/snap.db");
        assert_eq!(uri_path("/tmp/what?#100%"), "/tmp/what%3f%23100%25");
    }

    #[test]
    fn restored_revision_is_past_both_and_checked() {
        for (current, incoming, want) in [(0, 0, Some(1)), (10, 4, Some(11)), (4, 10, Some(11))] {
            assert_eq!(restored_revision(current, incoming).ok(), want);
        }
        assert!(restored_revision(i64::MAX, 1).is_err());
    }

    #[tokio::test]
    async fn a_snapshot_saved_beside_the_writer_restores_its_state_and_bumps_the_revision() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let store = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        store
            .create("/registry/a".into(), value("1"))
            .await
            .unwrap();
        store
            .create("/registry/b".into(), value("2"))
            .await
            .unwrap();
        let out = dir.path().join("snap.db");
        // Saved while the store is open and serving.
        let saved = save(&db, &out).unwrap();
        assert_eq!(saved.keys, 2);
        assert_eq!(saved.revision, 2);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!with_suffix(&out, ".part").exists());
        // Changes after the snapshot.
        store
            .update("/registry/a".into(), value("changed"), None)
            .await
            .unwrap();
        store.delete("/registry/b".into(), None).await.unwrap();
        store
            .create("/registry/c".into(), value("3"))
            .await
            .unwrap();
        let before = store.current_revision();
        drop(store);

        let restored = restore(&db, &out).unwrap();
        assert_eq!(restored.keys, 2);
        assert_eq!(restored.snapshot_revision, 2);
        assert_eq!(restored.revision, before + 1);

        let store = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        let (items, revision) = all(store.as_ref(), "/registry/").unwrap();
        assert_eq!(
            items,
            vec![
                ("/registry/a".to_owned(), value("1")),
                ("/registry/b".to_owned(), value("2"))
            ]
        );
        assert_eq!(revision, before + 1);
        // A watch from before the restore is told to re-list.
        assert!(matches!(
            store.watch("/registry/", before),
            Err(Error::Compacted { .. })
        ));
        // New writes continue after the restore's revision.
        let kv = store
            .create("/registry/d".into(), value("4"))
            .await
            .unwrap();
        assert_eq!(kv.mod_revision, before + 2);
    }

    #[test]
    fn a_file_that_is_not_a_skiff_store_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        rt.block_on(store.create("/registry/a".into(), value("1")))
            .unwrap();
        drop(store);

        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, b"this is not a database").unwrap();
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        for bad in [garbage, other, dir.path().join("missing")] {
            let err = restore(&db, &bad).unwrap_err();
            assert!(matches!(err, Error::InvalidSnapshot(_)), "{bad:?}: {err}");
        }
        let store = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        let (items, revision) = all(store.as_ref(), "/").unwrap();
        assert_eq!(items, vec![("/registry/a".to_owned(), value("1"))]);
        assert_eq!(revision, 1);
        // Saving from no store at all is an error, not an empty snapshot.
        assert!(save(&dir.path().join("none.db"), &dir.path().join("x")).is_err());
        assert!(!dir.path().join("none.db").exists());
    }

    #[tokio::test]
    async fn a_move_copies_every_key_and_starts_after_the_source_revision() {
        let dir = tempfile::tempdir().unwrap();
        let source = crate::MemoryStore::new();
        for i in 0..30 {
            source
                .create(format!("/registry/k{i:02}"), value(&i.to_string()))
                .await
                .unwrap();
        }
        let (items, revision) = all(&*source, "/registry/").unwrap();
        assert_eq!(items.len(), 30);
        let db = dir.path().join("state.db");
        assert_eq!(start_after(&db, revision).unwrap(), 31);
        let target = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        assert_eq!(
            copy_into(target.as_ref(), items.clone(), 8).await.unwrap(),
            30
        );
        assert_eq!(all(target.as_ref(), "/registry/").unwrap().0, items);
        assert!(target.list("/registry/", None, None).unwrap().items[0].mod_revision > 31);
        // A second copy into the now full target is refused.
        assert!(matches!(
            copy_into(target.as_ref(), items, 8).await,
            Err(Error::AlreadyExists(_))
        ));
        assert_eq!(clear(target.as_ref(), "/registry/", 8).await.unwrap(), 30);
        assert!(all(target.as_ref(), "/").unwrap().0.is_empty());
    }
}
