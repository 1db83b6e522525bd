//! The store on an etcd that serves clients over TLS only and wants their certificates
//! (what `--datastore-cafile/certfile/keyfile` configure).

use skiff_etcd::testing::{certificates, EtcdProcess};
use skiff_etcd::{EtcdOptions, EtcdStore, TlsFiles};
use skiff_store::{model_test, Error};

#[tokio::test]
async fn mutual_tls_to_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = certificates(dir.path());
    let Some(etcd) = EtcdProcess::start_tls_or_skip(&server) else {
        return;
    };
    assert!(etcd.endpoint().starts_with("https://"));
    let options = |tls: Option<TlsFiles>| {
        let mut options = EtcdOptions::new(vec![etcd.endpoint().to_owned()]);
        options.compaction_interval = None;
        options.request_timeout = std::time::Duration::from_secs(5);
        options.tls = tls;
        options
    };
    model_test::crud_and_cas(
        EtcdStore::connect(options(Some(client.clone())))
            .await
            .unwrap(),
    )
    .await;
    // Without a client certificate etcd refuses the connection: a clear error, no store.
    // (etcd closes the handshake, which the client cannot tell from a member going away,
    // so it is the "unavailable" kind.)
    let anonymous = TlsFiles {
        cert: None,
        key: None,
        ..client
    };
    match EtcdStore::connect(options(Some(anonymous))).await {
        Err(Error::Unavailable(m) | Error::Backend(m)) => assert!(m.starts_with("etcd: "), "{m}"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("connected without a client certificate"),
    }
}
