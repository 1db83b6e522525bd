//! etcd's snapshot API and skiff's reader of its files, against a real etcd: what the
//! reader finds in a saved snapshot is exactly what etcd held at the time, across branch
//! pages, overflow pages (values larger than a page), updates, deletions and compaction.

use bytes::Bytes;
use skiff_etcd::testing::EtcdProcess;
use skiff_etcd::{snapshot, EtcdOptions, EtcdStore};
use skiff_store::Store;
use std::time::Duration;

#[tokio::test]
async fn a_saved_snapshot_reads_back_as_the_state_etcd_held() {
    let Some(etcd) = EtcdProcess::start_or_skip() else {
        return;
    };
    let mut options = EtcdOptions::new(vec![etcd.endpoint().to_owned()]);
    options.compaction_interval = None;
    let store = EtcdStore::connect(options.clone()).await.unwrap();
    // Enough keys for several levels of pages, some values spanning pages.
    let mut writes = Vec::new();
    for i in 0..2000 {
        let size = if i % 100 == 0 { 10_000 } else { 50 };
        writes.push(store.create(
            format!("/registry/configmaps/default/cm-{i:05}"),
            Bytes::from(vec![b'a' + (i % 26) as u8; size]),
        ));
    }
    futures::future::try_join_all(writes).await.unwrap();
    for i in (0..2000).step_by(7) {
        let key = format!("/registry/configmaps/default/cm-{i:05}");
        store
            .update(key, Bytes::from(format!("updated {i}")), None)
            .await
            .unwrap();
    }
    store.compact(store.current_revision() - 100).await.unwrap();
    for i in (0..2000).step_by(11) {
        let key = format!("/registry/configmaps/default/cm-{i:05}");
        store.delete(key, None).await.unwrap();
    }
    store
        .create(
            "/outside".into(),
            Bytes::from_static(b"not under the prefix"),
        )
        .await
        .unwrap();
    let held = skiff_store::snapshot::all(store.as_ref(), "/registry/")
        .unwrap()
        .0;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd.snapshot");
    let client = skiff_etcd::connect_client(&options).await.unwrap();
    let size = snapshot::save(&client, &file, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().len(), size);
    // A write after the save is not in the file.
    store
        .create("/registry/configmaps/default/later".into(), Bytes::new())
        .await
        .unwrap();

    let data = std::fs::read(&file).unwrap();
    let read = snapshot::read(&data, "/registry/").unwrap();
    assert_eq!(read.len(), held.len());
    assert!(read == held, "the snapshot differs from what etcd held");
    assert!(snapshot::read(&data, "/")
        .unwrap()
        .iter()
        .any(|(k, _)| k == "/outside"));
}
