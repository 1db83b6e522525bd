//! The etcd v3 backend of [`skiff_store::Store`], as upstream's etcd3 storage does it: the
//! etcd revision is the `resourceVersion`, a create is a transaction that succeeds only
//! while the key's `create_revision` is 0, an update or delete is a compare-and-swap on
//! `mod_revision`, and history is compacted periodically by the same algorithm as
//! kube-apiserver (every 5 minutes by default, one interval of history kept).
//!
//! The `Store` trait reads synchronously, so reads are served from a watch cache kept in
//! memory ([`cache`]): primed by a paged list at one revision and fed by ONE etcd watch on
//! the key prefix. Every get, list and watch of the apiserver is answered from it, so a
//! thousand watchers cost etcd one watch. A write is acknowledged only once the cache holds
//! its revision, so a read after a write sees it.

mod cache;
mod compactor;
pub mod snapshot;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use futures::future::BoxFuture;
use skiff_store::{Error, KeyValue, ListResult, Result, Revision, Store, Watch};
use tokio::task::JoinHandle;

use cache::Cache;

/// How often kube-apiserver compacts etcd by default (`--etcd-compaction-interval`).
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

/// Where and how to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// `http(s)://host:port` of each member.
    pub endpoints: Vec<String>,
    /// Client TLS (`--datastore-cafile/certfile/keyfile`), for `https://` endpoints.
    pub tls: Option<TlsFiles>,
    /// Every key the apiserver writes starts with this; the watch cache watches it.
    pub prefix: String,
    /// Compaction period; history younger than one period is kept. `None` never compacts
    /// (another server or an operator does).
    pub compaction_interval: Option<Duration>,
    /// Events the watch cache keeps for watches that start in the past; older starts get
    /// `410 Gone` (upstream's cacher keeps a window too).
    pub history: usize,
    /// How long a single etcd request (or a write's wait for the cache) may take before it
    /// fails, rather than hanging the client while etcd has no quorum.
    pub request_timeout: Duration,
}

impl EtcdOptions {
    pub fn new(endpoints: Vec<String>) -> EtcdOptions {
        EtcdOptions {
            endpoints,
            tls: None,
            prefix: "/".into(),
            compaction_interval: Some(DEFAULT_COMPACTION_INTERVAL),
            history: 20_000,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// PEM files of the client's TLS setup, k3s's `--datastore-cafile/certfile/keyfile`.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// A [`Store`] on etcd.
pub struct EtcdStore {
    client: Client,
    cache: Arc<Cache>,
    timeout: Duration,
    tasks: Vec<JoinHandle<()>>,
}

/// What an etcd request failure becomes: [`Error::Unavailable`] when etcd could not be
/// reached or could not serve it for now (no connection, no leader, its own request
/// timeout), which the client may retry; otherwise the store's backend error naming etcd.
fn backend(e: etcd_client::Error) -> Error {
    let message = format!("etcd: {e}");
    if unreachable(&e) {
        Error::Unavailable(message)
    } else {
        Error::Backend(message)
    }
}

/// Whether `e` says etcd is out of reach or without quorum, rather than refusing the
/// request itself. etcd answers "no leader", "request timed out" and "leader changed" with
/// gRPC `Unavailable`; a dead member is a transport error or `Unavailable` from the channel.
fn unreachable(e: &etcd_client::Error) -> bool {
    use tonic::Code;
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        // tonic reports a connection that broke under a request (the member died) as
        // `Unknown` "transport error", its source the transport's error.
        etcd_client::Error::GRpcStatus(status) => {
            matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
            ) || std::error::Error::source(status)
                .is_some_and(|source| source.is::<tonic::transport::Error>())
        }
        _ => false,
    }
}

fn timed_out(what: &str, timeout: Duration) -> Error {
    Error::Unavailable(format!("etcd: {what} did not complete within {timeout:?}"))
}

impl EtcdStore {
    /// Connects, primes the watch cache with everything under the prefix at one revision,
    /// starts its watch and (when configured) the compactor.
    pub async fn connect(options: EtcdOptions) -> Result<Arc<EtcdStore>> {
        let client = connect_client(&options).await?;
        let cache = Cache::prime(&client, &options).await?;
        let mut tasks = vec![tokio::spawn(cache::feed(client.clone(), cache.clone()))];
        if let Some(interval) = options.compaction_interval {
            tasks.push(tokio::spawn(compactor::run(
                client.clone(),
                cache.clone(),
                interval,
            )));
        }
        Ok(Arc::new(EtcdStore {
            client,
            cache,
            timeout: options.request_timeout,
            tasks,
        }))
    }

    /// The client this store writes through (for tools that talk to the same etcd).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `txn` and, when it succeeded, waits until the watch cache holds its revision, so
    /// that the write is visible to the reads that follow its acknowledgement.
    fn transact(
        &self,
        key: String,
        txn: Txn,
        done: impl FnOnce(String, TxnResponse, Revision) -> Result<KeyValue> + Send + 'static,
    ) -> BoxFuture<'static, Result<KeyValue>> {
        let mut client = self.client.kv_client();
        let cache = self.cache.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let response = tokio::time::timeout(timeout, client.txn(txn))
                .await
                .map_err(|_| timed_out("a write", timeout))?
                .map_err(backend)?;
            let revision = response.header().map_or(0, |h| h.revision());
            let watched = cache.watches(&key);
            let result = done(key, response, revision)?;
            if watched {
                cache.wait_for(revision, timeout).await?;
            }
            Ok(result)
        })
    }
}

/// A client of etcd as the store connects (TLS, timeouts, requiring a leader), without
/// the store's watch cache: for tools that only talk to etcd, such as a snapshot.
pub async fn connect_client(options: &EtcdOptions) -> Result<Client> {
    let mut connect = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        // As upstream's watches ask (`WithRequireLeader`): a member that lost quorum
        // fails requests with "no leader" at once and cancels the cache's watch, instead
        // of holding them until a timeout while the cache silently goes stale.
        .with_require_leader(true);
    if let Some(tls) = &options.tls {
        connect = connect.with_tls(tls_options(tls).await?);
    }
    let client = tokio::time::timeout(
        options.request_timeout,
        Client::connect(&options.endpoints, Some(connect)),
    )
    .await
    .map_err(|_| timed_out("connecting", options.request_timeout))?
    .map_err(backend)?;
    Ok(client)
}

async fn tls_options(files: &TlsFiles) -> Result<TlsOptions> {
    async fn read(path: &PathBuf) -> Result<Vec<u8>> {
        tokio::fs::read(path)
            .await
            .map_err(|e| Error::Backend(format!("reading {}: {e}", path.display())))
    }
    let mut tls = TlsOptions::new();
    if let Some(ca) = &files.ca {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca).await?));
    }
    match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(read(cert).await?, read(key).await?));
        }
        (None, None) => {}
        _ => {
            return Err(Error::Backend(
                "a client certificate needs both --datastore-certfile and --datastore-keyfile"
                    .into(),
            ))
        }
    }
    Ok(tls)
}

/// The key's current state from the `else` branch of a failed transaction (a get).
fn current(response: &TxnResponse) -> Option<etcd_client::KeyValue> {
    response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => get.kvs().first().cloned(),
        _ => None,
    })
}

/// Why an update or delete transaction failed: the key is gone, or it moved on.
fn refusal(key: String, expected: Option<Revision>, response: &TxnResponse) -> Error {
    match (current(response), expected) {
        (None, _) => Error::NotFound(key),
        (Some(kv), Some(expected)) => Error::Conflict {
            key,
            expected,
            actual: kv.mod_revision(),
        },
        // Only the existence check can fail without an expected revision, and the same
        // transaction found the key: etcd broke its own atomicity.
        (Some(_), None) => Error::Backend(format!("etcd: write to {key} refused, yet it exists")),
    }
}

/// The conditions of an update or delete: the key exists and, with `expected`, was last
/// written at that revision. Existence is checked on its own because a missing key's
/// `mod_revision` is 0, which a caller's `expected` of 0 would match.
fn preconditions(key: &str, expected: Option<Revision>) -> Vec<Compare> {
    let mut compares = vec![Compare::version(key, CompareOp::Greater, 0)];
    if let Some(expected) = expected {
        compares.push(Compare::mod_revision(key, CompareOp::Equal, expected));
    }
    compares
}

impl Store for EtcdStore {
    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.cache.get(key)
    }

    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult> {
        self.cache.list(prefix, start_after, limit)
    }

    fn count_after(&self, prefix: &str, start_after: &str) -> Result<usize> {
        self.cache.count_after(prefix, start_after)
    }

    fn consistent_read(&self) -> Result<()> {
        self.cache.consistent_read()
    }

    fn current_revision(&self) -> Revision {
        self.cache.revision()
    }

    fn compacted_revision(&self) -> Revision {
        self.cache.compacted()
    }

    fn create(&self, key: String, value: Bytes) -> BoxFuture<'static, Result<KeyValue>> {
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), value.to_vec(), None)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        self.transact(key, txn, move |key, response, revision| {
            if !response.succeeded() {
                return Err(Error::AlreadyExists(key));
            }
            Ok(KeyValue {
                key,
                value,
                create_revision: revision,
                mod_revision: revision,
            })
        })
    }

    fn update(
        &self,
        key: String,
        value: Bytes,
        expected: Option<Revision>,
    ) -> BoxFuture<'static, Result<KeyValue>> {
        let txn = Txn::new()
            .when(preconditions(&key, expected))
            .and_then([TxnOp::put(
                key.as_str(),
                value.to_vec(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key.as_str(), None)]);
        self.transact(key, txn, move |key, response, revision| {
            if !response.succeeded() {
                return Err(refusal(key, expected, &response));
            }
            let create_revision = response
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Put(put) => put.prev_key().map(|kv| kv.create_revision()),
                    _ => None,
                })
                .ok_or_else(|| Error::Backend("etcd: update answered without its key".into()))?;
            Ok(KeyValue {
                key,
                value,
                create_revision,
                mod_revision: revision,
            })
        })
    }

    fn delete(
        &self,
        key: String,
        expected: Option<Revision>,
    ) -> BoxFuture<'static, Result<KeyValue>> {
        let txn = Txn::new()
            .when(preconditions(&key, expected))
            .and_then([TxnOp::delete(
                key.as_str(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key.as_str(), None)]);
        self.transact(key, txn, move |key, response, revision| {
            if !response.succeeded() {
                return Err(refusal(key, expected, &response));
            }
            let last = response
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Delete(delete) => delete.prev_kvs().first().cloned(),
                    _ => None,
                })
                .ok_or_else(|| Error::Backend("etcd: delete answered without its key".into()))?;
            Ok(KeyValue {
                key,
                value: Bytes::copy_from_slice(last.value()),
                create_revision: last.create_revision(),
                mod_revision: revision,
            })
        })
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        self.cache.watch(prefix, after)
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'static, Result<()>> {
        let client = self.client.clone();
        let cache = self.cache.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let target = revision.min(cache.revision());
            compactor::compact_etcd(client, target, timeout).await?;
            cache.compact(target);
            Ok(())
        })
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.cache.close();
    }
}

/// The first key after every key starting with `prefix` (etcd's range end for a prefix):
/// the prefix with its last byte below 0xff incremented; empty (the end of the keyspace)
/// when there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A page of at most `limit` keys of `[from, prefix_end)` at `revision` (0: now).
fn page_options(prefix: &str, revision: Revision, limit: i64) -> GetOptions {
    GetOptions::new()
        .with_range(prefix_end(prefix.as_bytes()))
        .with_revision(revision)
        .with_limit(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_etcd_is_unavailable_other_failures_are_backend_errors() {
        use etcd_client::Error as E;
        use tonic::{Code, Status};
        for (error, unavailable) in [
            // A member that lost quorum, with the client's require-leader.
            (
                E::GRpcStatus(Status::new(Code::Unavailable, "etcdserver: no leader")),
                true,
            ),
            (
                E::GRpcStatus(Status::new(
                    Code::Unavailable,
                    "etcdserver: request timed out",
                )),
                true,
            ),
            (E::GRpcStatus(Status::new(Code::DeadlineExceeded, "")), true),
            (E::GRpcStatus(Status::new(Code::Cancelled, "")), true),
            (
                E::IoError(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
                true,
            ),
            // etcd refused the request itself: retrying will not help.
            (
                E::GRpcStatus(Status::new(
                    Code::InvalidArgument,
                    "etcdserver: request is too large",
                )),
                false,
            ),
            (
                E::GRpcStatus(Status::new(Code::PermissionDenied, "")),
                false,
            ),
            (E::WatchError("closed".into()), false),
        ] {
            let message = error.to_string();
            match (backend(error), unavailable) {
                (Error::Unavailable(m), true) | (Error::Backend(m), false) => {
                    assert!(m.starts_with("etcd: "), "{m}")
                }
                (other, _) => panic!("{message} became {other:?}"),
            }
        }
        assert!(matches!(
            timed_out("a write", Duration::from_secs(1)),
            Error::Unavailable(_)
        ));
    }

    #[test]
    fn prefix_end_is_etcds_range_end() {
        for (prefix, end) in [
            (&b"/"[..], &b"0"[..]),
            (b"/registry/", b"/registry0"),
            (b"a\xff", b"b"),
            (b"\xff\xff", b"\0"),
            (b"", b"\0"),
        ] {
            assert_eq!(prefix_end(prefix), end, "{prefix:?}");
        }
    }
}
