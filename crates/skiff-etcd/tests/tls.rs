//! The store on an etcd that serves clients over TLS only and wants their certificates
//! (what `--datastore-cafile/certfile/keyfile` configure).

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use skiff_etcd::testing::{EtcdProcess, ServerTls};
use skiff_etcd::{EtcdOptions, EtcdStore, TlsFiles};
use skiff_store::{model_test, Error};

/// A CA, a serving certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
fn certificates(dir: &Path) -> (ServerTls, TlsFiles) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    };
    let ca_path = dir.join("ca.crt");
    std::fs::write(&ca_path, ca_pem).unwrap();
    let (server_cert, server_key) = leaf("server", ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf("client", ExtendedKeyUsagePurpose::ClientAuth);
    (
        ServerTls {
            ca: ca_path.clone(),
            cert: server_cert,
            key: server_key,
        },
        TlsFiles {
            ca: Some(ca_path),
            cert: Some(client_cert),
            key: Some(client_key),
        },
    )
}

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
