//! The endpoint suite on Postgres: one throwaway cluster, a fresh database per case.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_passes_the_endpoint_suite() {
    let Some(cluster) = common::PgCluster::start() else {
        return;
    };
    let mut n = 0;
    macro_rules! pg_case {
        ($name:ident) => {
            n += 1;
            let f = common::postgres_fixture(&cluster, &format!("case_{n}")).await;
            eprintln!("postgres case: {}", stringify!($name));
            common::suite::$name(f).await;
        };
    }
    crate::for_each_case!(pg_case);
    assert!(n > 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_when_postgres_goes_away() {
    let Some(cluster) = common::PgCluster::start() else {
        return;
    };
    let f = common::postgres_fixture(&cluster, "gone").await;
    assert_eq!(common::get(&f.app, "/readyz").await.status.as_u16(), 200);
    drop(cluster);
    let r = common::get(&f.app, "/readyz").await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.text);
    let posted = common::post(&f.app, r#"{"source":"a","action":"b"}"#).await;
    assert_eq!(
        posted.status.as_u16(),
        503,
        "a write that cannot be stored is not acknowledged"
    );
    assert_eq!(
        common::get(&f.app, "/healthz").await.status.as_u16(),
        200,
        "liveness does not depend on storage"
    );
}
