//! `skiff agent --server URL1,URL2,...` (decision 0052): the agent's API clients move to
//! the next server when the one they use refuses connections or does not answer in time.
//!
//! The switch sits in the client's connector: every client of the agent is built on the
//! first URL (kube's base-URI layer, its connection pool key), and [`FailoverConnector`]
//! opens each new connection to the server the agent currently uses instead, trying the
//! next ones in turn when that fails and sticking with the first that answers. TLS is
//! checked against the server actually dialled (the rewritten URI is what the TLS
//! connector sees). A server dying breaks its open connections; requests on them fail
//! once, and the next connection goes to a survivor. kube's watcher, which every watch of
//! the node is, then resumes from the last resourceVersion it saw, on whichever server
//! the connection reached (the servers share one etcd, so the versions mean the same).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;

/// How long one server may take to accept a connection before the next one is tried,
/// when there are several.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The servers given, and which one new connections go to.
#[derive(Debug)]
pub struct Servers {
    urls: Vec<Uri>,
    current: AtomicUsize,
}

/// A server URL that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No URL at all.
    #[error("--server is empty")]
    Empty,
    /// One that is not `https://host[:port]`.
    #[error("--server {url:?} is not an https://host:port URL")]
    Invalid {
        /// The URL as given.
        url: String,
    },
}

impl Servers {
    /// The servers of a comma-separated `--server` (empty items ignored), in order.
    pub fn parse(list: &str) -> Result<Servers, Error> {
        let urls = list
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| {
                u.parse::<Uri>()
                    .ok()
                    .filter(|uri| uri.scheme_str() == Some("https") && uri.authority().is_some())
                    .ok_or_else(|| Error::Invalid { url: u.to_string() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if urls.is_empty() {
            return Err(Error::Empty);
        }
        Ok(Servers {
            urls,
            current: AtomicUsize::new(0),
        })
    }

    /// The first server's URL: the one clients are built on.
    pub fn first(&self) -> String {
        self.urls[0].to_string().trim_end_matches('/').to_string()
    }

    /// The URL new connections go to now.
    pub fn current(&self) -> &Uri {
        &self.urls[self.current.load(Ordering::Relaxed) % self.urls.len()]
    }

    /// How many servers there are (at least one).
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Never: [`Servers::parse`] refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }
}

/// The order in which servers are tried for one connection: the current one, then each
/// following one, wrapping around, each once.
pub fn attempt_order(current: usize, count: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |i| (current % count.max(1) + i) % count)
}

/// `uri` (a request's, built on the first server) pointed at `server` instead: scheme and
/// authority from `server`, the path and query kept.
pub fn retarget(uri: &Uri, server: &Uri) -> Uri {
    let mut parts = uri.clone().into_parts();
    parts.scheme = server.scheme().cloned();
    parts.authority = server.authority().cloned();
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(hyper::http::uri::PathAndQuery::from_static("/"));
    }
    Uri::from_parts(parts).unwrap_or_else(|_| server.clone())
}

/// A connector that dials the current server of [`Servers`] and moves on when it fails.
#[derive(Clone)]
pub struct FailoverConnector<C> {
    inner: C,
    servers: Arc<Servers>,
}

impl<C> FailoverConnector<C> {
    /// `inner` (the TLS connector) dialling `servers`.
    pub fn new(inner: C, servers: Arc<Servers>) -> Self {
        FailoverConnector { inner, servers }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower::Service<Uri> for FailoverConnector<C>
where
    C: tower::Service<Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // The clone answers the connection; `self.inner` was the one made ready.
        let inner = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, inner);
        let servers = self.servers.clone();
        Box::pin(async move {
            let start = servers.current.load(Ordering::Relaxed);
            let mut last: Option<BoxError> = None;
            for (n, i) in attempt_order(start, servers.len()).enumerate() {
                let target = retarget(&uri, &servers.urls[i]);
                if n > 0 {
                    use tower::ServiceExt;
                    if let Err(e) = ready.ready().await {
                        return Err(e.into());
                    }
                }
                let attempt = ready.call(target);
                let outcome = if servers.len() > 1 {
                    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
                        Ok(outcome) => outcome.map_err(Into::into),
                        Err(_) => Err(format!("no connection within {CONNECT_TIMEOUT:?}").into()),
                    }
                } else {
                    attempt.await.map_err(Into::into)
                };
                match outcome {
                    Ok(conn) => {
                        if i != start {
                            let moved = servers
                                .current
                                .compare_exchange(start, i, Ordering::Relaxed, Ordering::Relaxed)
                                .is_ok();
                            if moved {
                                tracing::warn!(
                                    from = %servers.urls[start],
                                    to = %servers.urls[i],
                                    "API server unreachable; using the next one"
                                );
                            }
                        }
                        return Ok(conn);
                    }
                    Err(e) => {
                        tracing::debug!(server = %servers.urls[i], error = %e, "cannot connect");
                        last = Some(e);
                    }
                }
            }
            Err(last.unwrap_or_else(|| "no API server to connect to".into()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_parse_as_https_urls() {
        let s = Servers::parse("https://10.0.0.1:6443, https://10.0.0.2:6443,").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.first(), "https://10.0.0.1:6443");
        assert_eq!(
            s.current(),
            &"https://10.0.0.1:6443".parse::<Uri>().unwrap()
        );
        for bad in [
            "",
            " , ",
            "http://10.0.0.1:6443",
            "10.0.0.1:6443",
            "https://",
        ] {
            assert!(Servers::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_server_is_tried_once_from_the_current_one() {
        let order = |current, count| attempt_order(current, count).collect::<Vec<_>>();
        let cases: [(usize, usize, &[usize]); 5] = [
            (0, 1, &[0]),
            (0, 3, &[0, 1, 2]),
            (1, 3, &[1, 2, 0]),
            (2, 3, &[2, 0, 1]),
            // A stale index past the end wraps instead of panicking.
            (4, 3, &[1, 2, 0]),
        ];
        for (current, count, want) in cases {
            assert_eq!(order(current, count), want, "current {current} of {count}");
        }
        assert_eq!(order(0, 0), Vec::<usize>::new());
    }

    #[test]
    fn requests_are_retargeted_keeping_path_and_query() {
        let server: Uri = "https://10.0.0.2:7443".parse().unwrap();
        let cases = [
            (
                "https://10.0.0.1:6443/api/v1/pods?watch=1&resourceVersion=42",
                "https://10.0.0.2:7443/api/v1/pods?watch=1&resourceVersion=42",
            ),
            ("https://10.0.0.1:6443", "https://10.0.0.2:7443/"),
            ("https://10.0.0.1:6443/", "https://10.0.0.2:7443/"),
        ];
        for (from, want) in cases {
            assert_eq!(retarget(&from.parse().unwrap(), &server).to_string(), want);
        }
    }

    /// A connector over a fake dialer: servers listed as down refuse.
    #[derive(Clone)]
    struct Fake {
        down: Arc<std::sync::Mutex<Vec<String>>>,
        dialled: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl tower::Service<Uri> for Fake {
        type Response = String;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<String, std::io::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, uri: Uri) -> Self::Future {
            let host = uri.authority().unwrap().to_string();
            self.dialled.lock().unwrap().push(host.clone());
            let refused = self.down.lock().unwrap().contains(&host);
            std::future::ready(if refused {
                Err(std::io::ErrorKind::ConnectionRefused.into())
            } else {
                Ok(host)
            })
        }
    }

    #[tokio::test]
    async fn a_refusing_server_moves_connections_to_the_next() {
        use tower::ServiceExt;
        let servers = Arc::new(Servers::parse("https://a:1,https://b:2,https://c:3").unwrap());
        let fake = Fake {
            down: Default::default(),
            dialled: Default::default(),
        };
        let mut c = FailoverConnector::new(fake.clone(), servers.clone());
        let uri: Uri = "https://a:1/api".parse().unwrap();
        let connect = |c: &mut FailoverConnector<Fake>| c.clone().oneshot(uri.clone());
        assert_eq!(connect(&mut c).await.unwrap(), "a:1");
        fake.down.lock().unwrap().push("a:1".into());
        assert_eq!(connect(&mut c).await.unwrap(), "b:2");
        assert_eq!(servers.current().authority().unwrap().as_str(), "b:2");
        // a comes back: the agent stays on b until b fails, then wraps round to a.
        fake.down.lock().unwrap().clear();
        assert_eq!(connect(&mut c).await.unwrap(), "b:2");
        fake.down
            .lock()
            .unwrap()
            .extend(["b:2".into(), "c:3".into()]);
        assert_eq!(connect(&mut c).await.unwrap(), "a:1");
        // All down: the last error, and the current server unchanged.
        fake.down.lock().unwrap().push("a:1".into());
        let err = connect(&mut c).await.unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        assert_eq!(servers.current().authority().unwrap().as_str(), "a:1");
        assert_eq!(
            fake.dialled.lock().unwrap().as_slice(),
            ["a:1", "a:1", "b:2", "b:2", "b:2", "c:3", "a:1", "a:1", "b:2", "c:3"]
        );
    }
}
