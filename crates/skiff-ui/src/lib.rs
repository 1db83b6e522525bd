//! `skiff ui`: the thermostat made visible (decision 0032). A local web page that shows,
//! live, each workload's desired state against its actual state, the ownership trees, and a
//! timeline of the reconcile actions that close the gaps. Like `kubectl proxy` it is an API
//! client with the viewer's own credentials, so RBAC decides what it shows; it adds nothing
//! to the API server.
//!
//! `model`, `timeline` and `render` are pure (wire-form JSON in, summaries, lines and HTML
//! out); `live` keeps the watched objects and turns changes into page operations; `server`
//! serves the page and streams the operations as server-sent events.

pub mod live;
pub mod model;
pub mod render;
pub mod server;
pub mod timeline;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why the UI could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("serving the UI: {0}")]
    Serve(std::io::Error),
}

/// How to run the UI.
pub struct Options {
    /// The loopback port; 0 picks a free one.
    pub port: u16,
    /// The namespace to fall back to where the viewer may not list across namespaces (the
    /// kubeconfig context's, as kubectl uses it).
    pub namespace: String,
    /// What the header says the view is of (server and user).
    pub context: String,
}

/// Serves the UI until `shutdown` completes. `ready` gets the URL to open (with this
/// session's token) once the port is bound.
pub async fn serve(
    client: kube::Client,
    options: Options,
    ready: impl FnOnce(&str),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let at = SocketAddr::from(([127, 0, 0, 1], options.port));
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .map_err(|e| Error::Bind(at, e))?;
    let port = listener.local_addr().map_err(Error::Serve)?.port();
    let hub = live::Hub::new();
    let token = uuid::Uuid::new_v4().simple().to_string();
    let app = Arc::new(server::App {
        hub: hub.clone(),
        hosts: [format!("127.0.0.1:{port}"), format!("localhost:{port}")],
        token: token.clone(),
        context: options.context,
    });
    tokio::spawn(live::start(client, options.namespace, hub));
    ready(&format!("http://127.0.0.1:{port}/?token={token}"));
    // Each server-sent event is a small write: without TCP_NODELAY, Nagle's algorithm holds
    // it back until the browser acknowledges the previous one (a delayed ACK: tens of ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}
