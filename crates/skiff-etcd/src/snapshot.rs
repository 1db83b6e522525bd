//! etcd snapshots (decision 0053): saved through etcd's own snapshot API, read back for a
//! logical restore.
//!
//! [`save`] streams `Maintenance.Snapshot` to a file: etcd's consistent copy of its bbolt
//! database followed by its SHA-256, byte for byte what `etcdctl snapshot save` writes, so
//! `etcdutl snapshot restore` takes it as it takes etcdctl's. Restoring a member from it
//! is an offline operation on the member's data dir that no client API offers; skiff's
//! restore is logical instead: [`read`] reads the newest value of every live key from the
//! file's `key` bucket, and the caller writes them back into etcd through transactions.
//! The reader knows just enough of bbolt's page layout (meta, branch and leaf pages,
//! inline buckets) to walk one bucket.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::Client;
use sha2::Digest;
use skiff_store::{Error, Result};

/// Saves etcd's snapshot of its whole keyspace to `out` (written beside it as `.part`,
/// synced and renamed, 0600); returns its size in bytes. `timeout` bounds the wait for
/// each chunk, not the whole transfer.
pub async fn save(client: &Client, out: &Path, timeout: Duration) -> Result<u64> {
    use tokio::io::AsyncWriteExt;
    let mut part_name = out.as_os_str().to_owned();
    part_name.push(".part");
    let part = std::path::PathBuf::from(part_name);
    let _ = tokio::fs::remove_file(&part).await;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&part)
        .await?;
    let written = async {
        let mut maintenance = client.maintenance_client();
        let mut stream = tokio::time::timeout(timeout, maintenance.snapshot())
            .await
            .map_err(|_| crate::timed_out("a snapshot", timeout))?
            .map_err(crate::backend)?;
        let mut size = 0u64;
        while let Some(chunk) = tokio::time::timeout(timeout, stream.message())
            .await
            .map_err(|_| crate::timed_out("a snapshot", timeout))?
            .map_err(crate::backend)?
        {
            file.write_all(chunk.blob()).await?;
            size += chunk.blob().len() as u64;
        }
        file.sync_all().await?;
        tokio::fs::rename(&part, out).await?;
        Ok::<_, Error>(size)
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&part).await;
    }
    written
}

/// The newest value of every live key starting with `prefix` in the etcd snapshot
/// `data` (a snapshot file's contents), in key order. A trailing SHA-256, as etcd's
/// snapshot API appends, must match.
pub fn read(data: &[u8], prefix: &str) -> Result<Vec<(String, Bytes)>> {
    let db = strip_hash(data)?;
    let meta = newest_meta(db)?;
    let key_bucket = find(db, meta.page_size, Page::At(meta.root), b"key")?
        .ok_or_else(|| invalid("no \"key\" bucket: not an etcd snapshot"))?;
    let root = bucket_root(db, key_bucket)?;
    // Revisions sort in key order, so a later write of a key replaces an earlier one.
    let mut live: BTreeMap<Vec<u8>, Option<Bytes>> = BTreeMap::new();
    let mut failure = None;
    walk(
        db,
        meta.page_size,
        root,
        0,
        &mut |revision, value, _| match kv_from_revision(revision, value) {
            Ok((key, value)) if key.starts_with(prefix.as_bytes()) => {
                live.insert(key, value);
            }
            Ok(_) => {}
            Err(e) => {
                failure.get_or_insert(e);
            }
        },
    )?;
    if let Some(e) = failure {
        return Err(e);
    }
    live.into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
        .map(|(key, value)| {
            String::from_utf8(key)
                .map(|key| (key, value))
                .map_err(|e| invalid(format!("a key is not UTF-8: {e}")))
        })
        .collect()
}

fn invalid(why: impl std::fmt::Display) -> Error {
    Error::InvalidSnapshot(format!("etcd snapshot: {why}"))
}

/// bbolt's page header: id u64, flags u16, count u16, overflow u32.
const PAGE_HEADER: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const BUCKET_LEAF: u32 = 0x01;
const MAGIC: u32 = 0xED0C_DAED;

/// The database without etcd's trailing SHA-256, checked. bbolt files are whole pages
/// (multiples of 512 bytes), so 32 bytes more means a hash follows, as etcdutl decides.
fn strip_hash(data: &[u8]) -> Result<&[u8]> {
    if data.len() % 512 != 32 {
        return Ok(data);
    }
    let (db, hash) = data.split_at(data.len() - 32);
    if sha2::Sha256::digest(db).as_slice() != hash {
        return Err(invalid("its SHA-256 does not match: the file is damaged"));
    }
    Ok(db)
}

fn u16_at(db: &[u8], at: usize) -> Result<u16> {
    db.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| invalid("truncated"))
}

fn u32_at(db: &[u8], at: usize) -> Result<u32> {
    db.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| invalid("truncated"))
}

fn u64_at(db: &[u8], at: usize) -> Result<u64> {
    db.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| invalid("truncated"))
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Meta {
    page_size: usize,
    root: u64,
    txid: u64,
}

/// The meta page at `offset`, if it is a valid one (magic, version 2, FNV-1a checksum).
fn meta_at(db: &[u8], offset: usize) -> Option<Meta> {
    let flags = u16_at(db, offset + 8).ok()?;
    let m = offset + PAGE_HEADER;
    let fields = db.get(m..m + 64)?;
    if flags & META_PAGE == 0 || u32_at(fields, 0).ok()? != MAGIC || u32_at(fields, 4).ok()? != 2 {
        return None;
    }
    let checksum = fields[..56].iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    if checksum != u64_at(fields, 56).ok()? {
        return None;
    }
    Some(Meta {
        page_size: usize::try_from(u32_at(fields, 8).ok()?).ok()?,
        root: u64_at(fields, 16).ok()?,
        txid: u64_at(fields, 48).ok()?,
    })
}

/// bbolt keeps two meta pages (0 and 1) and commits by writing the older: the valid one
/// with the higher transaction id is current.
fn newest_meta(db: &[u8]) -> Result<Meta> {
    let first = meta_at(db, 0);
    // The second meta page is one page in; with the first damaged, the page size is
    // unknown, so each size bbolt allows is tried.
    let second = match first {
        Some(m) => meta_at(db, m.page_size),
        None => (9..=16).find_map(|shift| meta_at(db, 1 << shift)),
    };
    [first, second]
        .into_iter()
        .flatten()
        .filter(|m| m.page_size >= 512)
        .max_by_key(|m| m.txid)
        .ok_or_else(|| invalid("no valid bbolt meta page: not an etcd snapshot"))
}

/// Where a page is: a page id of the file, or an inline bucket's page at a byte offset.
#[derive(Debug, Clone, Copy)]
enum Page {
    At(u64),
    Inline(usize),
}

fn page_offset(page_size: usize, page: Page) -> Result<usize> {
    match page {
        Page::Inline(offset) => Ok(offset),
        Page::At(id) => usize::try_from(id)
            .ok()
            .and_then(|id| id.checked_mul(page_size))
            .ok_or_else(|| invalid("page id out of range")),
    }
}

/// What [`walk`] calls with each leaf element: key, value, element flags.
type Visit<'a> = dyn FnMut(&[u8], &[u8], u32) + 'a;

/// Calls `visit(key, value, flags)` for every leaf element under `page`, in key order.
fn walk(
    db: &[u8],
    page_size: usize,
    page: Page,
    depth: usize,
    visit: &mut Visit<'_>,
) -> Result<()> {
    // A B+tree of a sane file is shallow; a cycle in a damaged one must not recurse forever.
    if depth > 64 {
        return Err(invalid("page tree too deep: the file is damaged"));
    }
    let start = page_offset(page_size, page)?;
    let flags = u16_at(db, start + 8)?;
    let count = usize::from(u16_at(db, start + 10)?);
    for i in 0..count {
        let element = start + PAGE_HEADER + i * 16;
        if flags & BRANCH_PAGE != 0 {
            let child = u64_at(db, element + 8)?;
            walk(db, page_size, Page::At(child), depth + 1, visit)?;
        } else if flags & LEAF_PAGE != 0 {
            let element_flags = u32_at(db, element)?;
            let pos = u32_at(db, element + 4)? as usize;
            let ksize = u32_at(db, element + 8)? as usize;
            let vsize = u32_at(db, element + 12)? as usize;
            let key_at = element + pos;
            let key = db
                .get(key_at..key_at + ksize)
                .ok_or_else(|| invalid("truncated"))?;
            let value = db
                .get(key_at + ksize..key_at + ksize + vsize)
                .ok_or_else(|| invalid("truncated"))?;
            visit(key, value, element_flags);
        } else {
            return Err(invalid(format!("page with flags {flags:#x} in a tree")));
        }
    }
    Ok(())
}

/// The offset of the bucket header named `name` among the buckets under `page`.
fn find(db: &[u8], page_size: usize, page: Page, name: &[u8]) -> Result<Option<usize>> {
    let mut found = None;
    walk(db, page_size, page, 0, &mut |key, value, flags| {
        if flags & BUCKET_LEAF != 0 && key == name {
            let offset = value.as_ptr() as usize - db.as_ptr() as usize;
            found = Some(offset);
        }
    })?;
    Ok(found)
}

/// The root page of the bucket whose header (root u64, sequence u64) is at `header`: a
/// page of the file, or, for a root of 0, an inline page right after the header.
fn bucket_root(db: &[u8], header: usize) -> Result<Page> {
    match u64_at(db, header)? {
        0 => Ok(Page::Inline(header + 16)),
        id => Ok(Page::At(id)),
    }
}

/// An etcd revision key: 8 bytes main revision, `_`, 8 bytes sub revision (big endian),
/// and a trailing `t` when the revision deleted the key.
fn is_tombstone(revision: &[u8]) -> Result<bool> {
    match revision.len() {
        17 if revision[8] == b'_' => Ok(false),
        18 if revision[8] == b'_' && revision[17] == b't' => Ok(true),
        _ => Err(invalid(format!("{revision:?} is not an etcd revision key"))),
    }
}

/// The key and (unless the revision deleted it) the value of an `mvccpb.KeyValue`.
fn kv_from_revision(revision: &[u8], mut message: &[u8]) -> Result<(Vec<u8>, Option<Bytes>)> {
    use prost::encoding::{decode_key, decode_varint, WireType};
    let deleted = is_tombstone(revision)?;
    let (mut key, mut value) = (None, None);
    let bad = |e: prost::DecodeError| invalid(format!("a stored KeyValue: {e}"));
    while !message.is_empty() {
        let (field, wire) = decode_key(&mut message).map_err(bad)?;
        match wire {
            WireType::Varint => {
                decode_varint(&mut message).map_err(bad)?;
            }
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut message).map_err(bad)?)
                    .ok()
                    .filter(|len| *len <= message.len())
                    .ok_or_else(|| invalid("a stored KeyValue is truncated"))?;
                let (bytes, rest) = message.split_at(len);
                match field {
                    1 => key = Some(bytes.to_vec()),
                    5 => value = Some(Bytes::copy_from_slice(bytes)),
                    _ => {}
                }
                message = rest;
            }
            other => return Err(invalid(format!("unexpected wire type {other:?}"))),
        }
    }
    let key = key.ok_or_else(|| invalid("a stored KeyValue has no key"))?;
    Ok((
        key,
        if deleted {
            None
        } else {
            Some(value.unwrap_or_default())
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leaf element: key, value, flags.
    type Element = (Vec<u8>, Vec<u8>, u32);

    /// A KeyValue message as etcd stores it.
    fn kv_message(key: &[u8], value: &[u8], revision: u64) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::bytes::encode(1, &key.to_vec(), &mut out);
        prost::encoding::int64::encode(2, &(revision as i64), &mut out);
        prost::encoding::int64::encode(3, &(revision as i64), &mut out);
        if !value.is_empty() {
            prost::encoding::bytes::encode(5, &value.to_vec(), &mut out);
        }
        out
    }

    fn revision_key(main: u64, tombstone: bool) -> Vec<u8> {
        let mut key = main.to_be_bytes().to_vec();
        key.push(b'_');
        key.extend(0u64.to_be_bytes());
        if tombstone {
            key.push(b't');
        }
        key
    }

    fn page_header(id: u64, flags: u16, count: u16) -> Vec<u8> {
        let mut page = id.to_le_bytes().to_vec();
        page.extend(flags.to_le_bytes());
        page.extend(count.to_le_bytes());
        page.extend(0u32.to_le_bytes());
        page
    }

    /// A leaf page (header, elements, then keys and values) with `items`.
    fn leaf(id: u64, items: &[Element]) -> Vec<u8> {
        let mut page = page_header(id, LEAF_PAGE, items.len() as u16);
        let mut data: Vec<u8> = Vec::new();
        for (i, (key, value, flags)) in items.iter().enumerate() {
            let pos = (items.len() - i) * 16 + data.len();
            page.extend(flags.to_le_bytes());
            page.extend((pos as u32).to_le_bytes());
            page.extend((key.len() as u32).to_le_bytes());
            page.extend((value.len() as u32).to_le_bytes());
            data.extend(key);
            data.extend(value);
        }
        page.extend(data);
        page
    }

    fn meta_page(id: u64, page_size: u32, root: u64, txid: u64) -> Vec<u8> {
        let mut meta = MAGIC.to_le_bytes().to_vec();
        meta.extend(2u32.to_le_bytes());
        meta.extend(page_size.to_le_bytes());
        meta.extend(0u32.to_le_bytes());
        meta.extend(root.to_le_bytes());
        meta.extend(0u64.to_le_bytes());
        meta.extend(0u64.to_le_bytes()); // freelist
        meta.extend(8u64.to_le_bytes()); // high water
        meta.extend(txid.to_le_bytes());
        let checksum = meta.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        meta.extend(checksum.to_le_bytes());
        let mut page = page_header(id, META_PAGE, 0);
        page.extend(meta);
        page
    }

    /// A bbolt file of 512-byte pages: metas 0 and 1 (1 newer, naming root page 3; 0
    /// stale, naming page 2), the root bucket's leaf on page 3 with an inline `meta`
    /// bucket and the `key` bucket rooted at page 5, a branch on page 5 over leaves 6 and 7.
    fn database(key_leaves: [Vec<Element>; 2]) -> Vec<u8> {
        const SIZE: usize = 512;
        let mut inline = 0u64.to_le_bytes().to_vec();
        inline.extend(0u64.to_le_bytes());
        inline.extend(leaf(0, &[(b"consistent_index".to_vec(), vec![0; 8], 0)]));
        let mut key_bucket = 5u64.to_le_bytes().to_vec();
        key_bucket.extend(0u64.to_le_bytes());
        let mut branch = page_header(5, BRANCH_PAGE, 2);
        for (i, child) in [6u64, 7].into_iter().enumerate() {
            branch.extend((((2 - i) * 16 + i * 17) as u32).to_le_bytes());
            branch.extend(17u32.to_le_bytes());
            branch.extend(child.to_le_bytes());
        }
        branch.extend(&key_leaves[0][0].0);
        branch.extend(&key_leaves[1][0].0);
        let pages = [
            meta_page(0, SIZE as u32, 2, 4),
            meta_page(1, SIZE as u32, 3, 5),
            leaf(2, &[]),
            leaf(
                3,
                &[
                    (b"key".to_vec(), key_bucket, BUCKET_LEAF),
                    (b"meta".to_vec(), inline, BUCKET_LEAF),
                ],
            ),
            vec![],
            branch,
            leaf(6, &key_leaves[0]),
            leaf(7, &key_leaves[1]),
        ];
        let mut db = Vec::new();
        for page in pages {
            assert!(page.len() <= SIZE);
            db.extend(&page);
            db.resize(db.len() + SIZE - page.len(), 0);
        }
        db
    }

    fn sample() -> Vec<u8> {
        let put = |rev, key: &str, value: &str| {
            (
                revision_key(rev, false),
                kv_message(key.as_bytes(), value.as_bytes(), rev),
                0,
            )
        };
        let del = |rev, key: &str| {
            (
                revision_key(rev, true),
                kv_message(key.as_bytes(), b"", rev),
                0,
            )
        };
        database([
            vec![
                put(2, "/registry/a", "a1"),
                put(3, "/registry/b", "b1"),
                put(4, "/other", "x"),
            ],
            vec![
                put(5, "/registry/a", "a2"),
                del(6, "/registry/b"),
                put(7, "/registry/c", "c1"),
                del(8, "/registry/c"),
                put(9, "/registry/c", "c2"),
            ],
        ])
    }

    #[test]
    fn the_newest_value_of_each_live_key_under_the_prefix_is_read() {
        let db = sample();
        let items = read(&db, "/registry/").unwrap();
        assert_eq!(
            items,
            vec![
                ("/registry/a".to_owned(), Bytes::from_static(b"a2")),
                ("/registry/c".to_owned(), Bytes::from_static(b"c2")),
            ]
        );
        assert_eq!(read(&db, "/").unwrap().len(), 3);
        // With etcd's trailing hash, as the snapshot API sends it.
        let mut hashed = db.clone();
        hashed.extend(sha2::Sha256::digest(&db));
        assert_eq!(read(&hashed, "/registry/").unwrap(), items);
    }

    #[test]
    fn damaged_or_foreign_files_are_refused() {
        let db = sample();
        let mut bad_hash = db.clone();
        bad_hash.extend([0u8; 32]);
        let mut bad_metas = db.clone();
        bad_metas[16] ^= 0xff;
        bad_metas[512 + 16] ^= 0xff;
        let truncated = db[..512 * 6].to_vec();
        for (name, data) in [
            ("hash", bad_hash),
            ("metas", bad_metas),
            ("truncated", truncated),
            ("empty", vec![]),
            ("text", b"hello".to_vec()),
        ] {
            let err = read(&data, "/").unwrap_err();
            assert!(matches!(err, Error::InvalidSnapshot(_)), "{name}: {err}");
        }
        // Only one meta damaged: the other one is used.
        let mut one_meta = db.clone();
        one_meta[512 + 16] ^= 0xff;
        assert!(
            read(&one_meta, "/").is_err(),
            "meta 0 names the stale empty root"
        );
        let mut other_meta = db;
        other_meta[16] ^= 0xff;
        assert_eq!(read(&other_meta, "/").unwrap().len(), 3);
    }

    #[test]
    fn revision_keys_say_whether_they_deleted() {
        assert!(!is_tombstone(&revision_key(5, false)).unwrap());
        assert!(is_tombstone(&revision_key(5, true)).unwrap());
        assert!(is_tombstone(b"short").is_err());
    }
}
