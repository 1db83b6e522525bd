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
