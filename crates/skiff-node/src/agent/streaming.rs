//! The kubelet's streaming endpoints, which the API server passes `pods/exec`,
//! `pods/attach` and `pods/portforward` upgrades through to:
//! `/exec/{namespace}/{pod}/{container}`, `/attach/{namespace}/{pod}/{container}` (the
//! container's main process, through its shim's attach socket) and
//! `/portForward/{namespace}/{pod}` (SPDY, SPDY tunnelled in a WebSocket, or the plain
//! WebSocket channels), over WebSocket or SPDY (the framing is
//! `skiff-stream`'s; this file runs the processes and connections behind it).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use skiff_stream::channel::{Protocol, EXEC_PROTOCOLS};
use skiff_stream::exec::ExecStreams;
use skiff_stream::portforward::{self, Forward};
use skiff_stream::remotecommand::{self, Options, Outcome, Version};
use skiff_stream::session::{self, Output, CHUNK};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::pods::{LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_NAME, LABEL_NAMESPACE, LABEL_UID};
use super::Shared;
use crate::runtime::{ContainerState, Runtime};

/// The routes, merged into the log endpoint's router.
pub(crate) fn routes() -> axum::Router<Arc<Shared>> {
    axum::Router::new()
        .route(
            "/exec/{namespace}/{pod}/{container}",
            axum::routing::get(exec).post(exec),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            axum::routing::get(attach).post(attach),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            axum::routing::get(port_forward).post(port_forward),
        )
}

fn text(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, [("content-type", "text/plain")], msg.into()).into_response()
}

/// The transport a request asked to upgrade to, once negotiated.
enum Transport {
    /// A WebSocket with this subprotocol ("" when the client offered none).
    WebSocket(&'static str),
    /// SPDY/3.1 with this `X-Stream-Protocol-Version`.
    Spdy(&'static str),
}

/// Negotiates the upgrade as upstream's handshakes: WebSocket subprotocols among
/// `ws_served`, SPDY stream protocols among `spdy_served`. Returns the transport and the
/// 101 response, or the error response.
fn negotiate(
    headers: &HeaderMap,
    ws_served: &[&'static str],
    spdy_served: &[&'static str],
) -> Result<(Transport, Response), (StatusCode, String)> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if upgrade == "websocket" {
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err((StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key".into()));
        };
        let offered = values("sec-websocket-protocol");
        let chosen = if offered.is_empty() {
            ""
        } else {
            remotecommand::negotiate(offered.iter().map(String::as_str), ws_served).ok_or_else(
                || {
                    (
                        StatusCode::BAD_REQUEST,
                        format!(
                            "requested protocol(s) are not supported: {offered:?}; supports {ws_served:?}"
                        ),
                    )
                },
            )?
        };
        let mut resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "websocket")
            .header(
                header::SEC_WEBSOCKET_ACCEPT,
                derive_accept_key(key.as_bytes()),
            );
        if !chosen.is_empty() {
            resp = resp.header(header::SEC_WEBSOCKET_PROTOCOL, chosen);
        }
        let resp = resp.body(Body::empty()).expect("static response parts");
        return Ok((Transport::WebSocket(chosen), resp));
    }
    if upgrade.starts_with("spdy/3.1") {
        let offered = values("x-stream-protocol-version");
        let chosen = remotecommand::negotiate(offered.iter().map(String::as_str), spdy_served)
            .ok_or_else(|| {
                (
                    StatusCode::FORBIDDEN,
                    format!(
                        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {spdy_served:?}"
                    ),
                )
            })?;
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "SPDY/3.1")
            .header(
                "X-Stream-Protocol-Version",
                HeaderValue::from_static(chosen),
            )
            .body(Body::empty())
            .expect("static response parts");
        return Ok((Transport::Spdy(chosen), resp));
    }
    Err((
        StatusCode::BAD_REQUEST,
        "Upgrade request required: use WebSocket or SPDY/3.1".into(),
    ))
}

/// The upgraded connection, once the 101 is sent.
async fn upgraded(on: hyper::upgrade::OnUpgrade) -> Option<TokioIo<hyper::upgrade::Upgraded>> {
    match on.await {
        Ok(u) => Some(TokioIo::new(u)),
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            None
        }
    }
}

/// The id of a pod's container when its latest attempt is running. The kubelet looks
/// among running containers only, so one not started yet or exited is `None` ("not
/// found" in its messages); `Err` is the runtime failing.
fn find_container(
    runtime: &dyn Runtime,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<Option<String>, String> {
    let mut attempts: Vec<(u32, String, ContainerState)> = runtime
        .list()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|s| {
            let l = &s.spec.as_ref()?.labels;
            (l.get(LABEL_NAMESPACE).map(String::as_str) == Some(namespace)
                && l.get(LABEL_NAME).map(String::as_str) == Some(pod)
                && l.get(LABEL_CONTAINER).map(String::as_str) == Some(container))
            .then_some(())?;
            Some((l.get(LABEL_ATTEMPT)?.parse().ok()?, s.id, s.state))
        })
        .collect();
    attempts.sort_by_key(|a| a.0);
    Ok(attempts
        .pop()
        .filter(|(_, _, state)| *state == ContainerState::Running)
        .map(|(_, id, _)| id))
}

/// The kubelet's refusal of an exec to a container that is not running (or does not
/// exist): a 500 (its streaming `WriteError` of a plain error), which kubectl prints
/// after `unable to upgrade connection: `.
fn exec_not_found(container: &str) -> String {
    format!("container not found ({container:?})")
}

/// The same refusal for attach, worded as the kubelet's `GetAttach` (with the pod's full
/// name, `name_namespace`).
fn attach_not_found(namespace: &str, pod: &str, container: &str) -> String {
    format!("container {container} not found in pod {pod}_{namespace}")
}

/// The remotecommand options of an exec or attach request's query, validated (the reason
/// when they are not, for a 400).
fn remotecommand_options(req: &Request) -> Result<Options, String> {
    let query = req.uri().query().unwrap_or("");
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let opts = Options::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    opts.validate().map_err(|e| e.to_string())?;
    Ok(opts)
}

async fn exec(
    State(shared): State<Arc<Shared>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    mut req: Request,
) -> Response {
    let opts = match remotecommand_options(&req) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    if opts.command.is_empty() {
        return text(StatusCode::BAD_REQUEST, "command is required");
    }
    let runtime = shared.runtime.clone();
    let (ns, p, c) = (namespace.clone(), pod.clone(), container.clone());
    let found =
        tokio::task::spawn_blocking(move || find_container(runtime.as_ref(), &ns, &p, &c)).await;
    let id = match found {
        Ok(Ok(Some(id))) => id,
        Ok(Ok(None)) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                exec_not_found(&container),
            )
        }
        Ok(Err(e)) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let runtime = shared.runtime.clone();
    serve_streams(&mut req, opts, move |opts, streams| {
        run_exec(runtime, id, opts, streams)
    })
}

/// Negotiates a remotecommand protocol for `req` (exec and attach speak the same ones),
/// answers the upgrade, and once the client has switched runs `session` on its streams.
fn serve_streams<F, Fut>(req: &mut Request, opts: Options, session: F) -> Response
where
    F: FnOnce(Options, ExecStreams) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (transport, resp) = match negotiate(
        req.headers(),
        &EXEC_PROTOCOLS,
        &remotecommand::SPDY_VERSIONS,
    ) {
        Ok(t) => t,
        Err((code, msg)) => return text(code, msg),
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Some(io) = upgraded(on_upgrade).await else {
            return;
        };
        let Some(streams) = open_streams(io, transport, &opts).await else {
            return;
        };
        session(opts, streams).await;
    });
    resp
}

/// The streams of an upgraded connection, over the negotiated transport.
async fn open_streams(
    io: TokioIo<hyper::upgrade::Upgraded>,
    transport: Transport,
    opts: &Options,
) -> Option<ExecStreams> {
    match transport {
        Transport::WebSocket(name) => {
            let proto = Protocol::from_name(name).expect("negotiated among known names");
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
            Some(skiff_stream::exec::websocket(ws, proto, opts))
        }
        Transport::Spdy(name) => {
            let version = Version::from_name(name).expect("negotiated among known names");
            match skiff_stream::exec::spdy(io, version, opts).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::debug!(error = %e, "streams not opened");
                    None
                }
            }
        }
    }
}

/// `kubectl attach`: the client's streams joined to the container's main process through
/// its shim's attach socket (connected before the upgrade, so a failure is a plain HTTP
/// error, as the kubelet's). The session ends when the container exits (a `Success`
/// status, as upstream's) or the client goes; the container is never stopped by it.
async fn attach(
    State(shared): State<Arc<Shared>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    mut req: Request,
) -> Response {
    let opts = match remotecommand_options(&req) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let runtime = shared.runtime.clone();
    let (ns, p, c) = (namespace.clone(), pod.clone(), container.clone());
    let connected = tokio::task::spawn_blocking(move || {
        let id = find_container(runtime.as_ref(), &ns, &p, &c)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e))?
            .ok_or_else(|| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    attach_not_found(&ns, &p, &c),
                )
            })?;
        let socket = runtime
            .attach_socket(&id)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        crate::runtime::shim::connect(&socket).map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("unable to attach to container {c:?}: {e}"),
            )
        })
    })
    .await;
    let conn = match connected {
        Ok(Ok(conn)) => conn,
        Ok(Err((code, msg))) => return text(code, msg),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    serve_streams(&mut req, opts, move |_, streams| async move {
        let conn = match conn
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixStream::from_std(conn))
        {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("unable to attach to container: {e}");
                return streams.finish(&Outcome::Error(msg)).await;
            }
        };
        run_attach(conn, streams).await;
    })
}

/// Copies between the client's streams and the shim's frames until the container's output
/// ends (the shim closes the socket when the container exited) or the client goes.
async fn run_attach(conn: tokio::net::UnixStream, mut streams: ExecStreams) {
    use crate::runtime::shim::{self, FRAME_HEADER};
    let (mut from_shim, to_shim) = conn.into_split();
    let to_shim = Arc::new(tokio::sync::Mutex::new(to_shim));
    let mut pumps = tokio::task::JoinSet::new();
    let had_stdin = streams.stdin.is_some();
    if let Some(mut rx) = streams.stdin.take() {
        let to_shim = to_shim.clone();
        pumps.spawn(async move {
            while let Some(b) = rx.recv().await {
                for chunk in b.chunks(CHUNK) {
                    let bytes = shim::frame(shim::STDIN, chunk);
                    if to_shim.lock().await.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            }
            let bytes = shim::frame(shim::STDIN_CLOSE, &[]);
            let _ = to_shim.lock().await.write_all(&bytes).await;
        });
    }
    if let Some(mut rx) = streams.resize.take() {
        let to_shim = to_shim.clone();
        pumps.spawn(async move {
            while let Some(size) = rx.recv().await {
                let mut data = size.width.to_be_bytes().to_vec();
                data.extend_from_slice(&size.height.to_be_bytes());
                let bytes = shim::frame(shim::RESIZE, &data);
                if to_shim.lock().await.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });
    }
    let (stdout, stderr) = (streams.stdout.clone(), streams.stderr.clone());
    let output = async move {
        loop {
            let mut header = [0u8; FRAME_HEADER];
            if from_shim.read_exact(&mut header).await.is_err() {
                return;
            }
            let Some((kind, len)) = shim::parse_header(header) else {
                return;
            };
            let mut data = vec![0u8; len];
            if from_shim.read_exact(&mut data).await.is_err() {
                return;
            }
            let to = match kind {
                shim::STDOUT => stdout.as_ref(),
                shim::STDERR => stderr.as_ref(),
                _ => None,
            };
            // Each send waits for room: a slow client slows the container's output.
            if let Some(to) = to {
                if to.send(Bytes::from(data)).await.is_err() {
                    return;
                }
            }
        }
    };
    let mut closed = streams.closed.clone();
    let container_ended = tokio::select! {
        () = output => true,
        _ = closed.wait_for(|c| *c) => false,
    };
    pumps.abort_all();
    if !container_ended {
        // The client is gone: under stdinOnce its going closes the container's stdin.
        if had_stdin {
            let bytes = shim::frame(shim::STDIN_CLOSE, &[]);
            let _ = to_shim.lock().await.write_all(&bytes).await;
        }
        tracing::debug!("attach client gone");
        return;
    }
    streams.finish(&Outcome::Success).await;
}

/// Runs the command with the client's streams and reports how it ended. The client going
/// away kills the command.
async fn run_exec(runtime: Arc<dyn Runtime>, id: String, opts: Options, streams: ExecStreams) {
    let argv = opts.command.clone();
    let prepared = {
        let argv = argv.clone();
        let tty = opts.tty;
        tokio::task::spawn_blocking(move || runtime.exec_command(&id, &argv, tty)).await
    };
    let mut prepared = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            let msg = format!("error executing command in container: {e}");
            return streams.finish(&Outcome::Error(msg)).await;
        }
        Err(e) => return streams.finish(&Outcome::Error(e.to_string())).await,
    };
    let piped = |on: bool| {
        if on {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        }
    };
    // With a terminal, runc's stdio is the slave of a pty whose master the agent keeps.
    let pair = if opts.tty {
        match super::pty::open_pair() {
            Ok(p) => Some(p),
            Err(e) => {
                let msg =
                    format!("error executing command in container: allocating a terminal: {e}");
                return streams.finish(&Outcome::Error(msg)).await;
            }
        }
    } else {
        None
    };
    let std_cmd = std::mem::replace(&mut prepared.command, std::process::Command::new("true"));
    let mut command = tokio::process::Command::from(std_cmd);
    command.kill_on_drop(true);
    let master = match pair {
        Some((master, slave)) => {
            let stdio = |fd: &std::os::fd::OwnedFd| fd.try_clone().map(std::process::Stdio::from);
            match (stdio(&slave), stdio(&slave)) {
                (Ok(out), Ok(err)) => {
                    command.stdin(slave).stdout(out).stderr(err);
                }
                (Err(e), _) | (_, Err(e)) => {
                    let msg = format!("error executing command in container: {e}");
                    return streams.finish(&Outcome::Error(msg)).await;
                }
            }
            // SAFETY: only async-signal-safe calls between fork and exec: a new session
            // whose controlling terminal is the slave (stdin), so resizes reach runc.
            unsafe {
                command.pre_exec(|| {
                    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            match super::pty::Pty::new(master) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => {
                    let msg = format!("error executing command in container: {e}");
                    return streams.finish(&Outcome::Error(msg)).await;
                }
            }
        }
        None => {
            command
                .stdin(piped(streams.stdin.is_some()))
                .stdout(piped(streams.stdout.is_some()))
                .stderr(piped(streams.stderr.is_some()));
            None
        }
    };
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("error executing command in container: starting runc: {e}");
            return streams.finish(&Outcome::Error(msg)).await;
        }
    };
    let mut streams = streams;
    let mut pumps = tokio::task::JoinSet::new();
    let mut outputs = tokio::task::JoinSet::new();
    // The slave copies in `command` must close, or the master never sees the end.
    drop(command);
    if let Some(pty) = master {
        if let Some(mut rx) = streams.stdin.take() {
            let pty = pty.clone();
            pumps.spawn(async move {
                while let Some(b) = rx.recv().await {
                    if pty.write_all(&b).await.is_err() {
                        break;
                    }
                }
            });
        }
        if let Some(mut rx) = streams.resize.take() {
            let pty = pty.clone();
            pumps.spawn(async move {
                while let Some(size) = rx.recv().await {
                    pty.resize(size.width, size.height);
                }
            });
        }
        if let Some(out) = streams.stdout.clone() {
            outputs.spawn(async move {
                let mut buf = vec![0u8; CHUNK];
                while let Ok(n) = pty.read(&mut buf).await {
                    if n == 0 || out.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
    if let (Some(mut rx), Some(mut stdin)) = (streams.stdin.take(), child.stdin.take()) {
        pumps.spawn(async move {
            while let Some(b) = rx.recv().await {
                if stdin.write_all(&b).await.is_err() {
                    break;
                }
            }
            // Dropping stdin is the command's EOF.
        });
    }
    if let (Some(out), Some(pipe)) = (streams.stdout.clone(), child.stdout.take()) {
        outputs.spawn(pump(pipe, out));
    }
    if let (Some(out), Some(pipe)) = (streams.stderr.clone(), child.stderr.take()) {
        outputs.spawn(pump(pipe, out));
    }
    let mut closed = streams.closed.clone();
    let status = tokio::select! {
        s = child.wait() => s.ok(),
        _ = closed.wait_for(|c| *c) => None,
    };
    let Some(status) = status else {
        // The client is gone: the command must not outlive it.
        tracing::debug!("exec client gone, killing the command");
        prepared.kill_process();
        let _ = child.kill().await;
        pumps.abort_all();
        outputs.abort_all();
        return;
    };
    pumps.abort_all();
    // The output the command wrote before exiting goes out first; a background child
    // holding the pipes open does not hold up the status for long.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while outputs.join_next().await.is_some() {}
    })
    .await;
    outputs.abort_all();
    let code = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 255,
    };
    let outcome = if code == 0 {
        Outcome::Success
    } else {
        let runc_error = tokio::task::spawn_blocking(move || prepared.runc_error())
            .await
            .ok()
            .flatten();
        match runc_error {
            Some(msg) => Outcome::Error(format!(
                "error executing command in container: OCI runtime exec failed: {msg}: unknown"
            )),
            None => Outcome::ExitCode {
                code,
                command: argv,
            },
        }
    };
    streams.finish(&outcome).await;
}

/// Copies a pipe or socket to a stream until EOF; each send waits for room, so a slow
/// client slows the writer rather than growing a buffer. Each read lands in a buffer that
/// is handed on as it is, never copied (decision 0057).
async fn pump(mut pipe: impl tokio::io::AsyncRead + Unpin, out: Output) {
    let mut buf = bytes::BytesMut::new();
    loop {
        buf.reserve(CHUNK);
        match pipe.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if out.send(buf.split().freeze()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The pod's identity and network namespace (`None`: host network), from its containers'
/// labels and its sandbox.
fn find_pod(
    shared: &Shared,
    namespace: &str,
    pod: &str,
) -> Result<(String, Option<std::path::PathBuf>), String> {
    let uid = shared
        .runtime
        .list()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|s| s.spec)
        .find(|s| {
            s.labels.get(LABEL_NAMESPACE).map(String::as_str) == Some(namespace)
                && s.labels.get(LABEL_NAME).map(String::as_str) == Some(pod)
        })
        .and_then(|s| s.labels.get(LABEL_UID).cloned())
        .ok_or_else(|| "pod does not exist".to_string())?;
    let sandbox = shared
        .sandboxes
        .list()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|s| s.spec.id == uid)
        .ok_or_else(|| "pod does not exist".to_string())?;
    Ok((uid, sandbox.network.map(|n| n.netns_path)))
}

async fn port_forward(
    State(shared): State<Arc<Shared>>,
    Path((namespace, pod)): Path<(String, String)>,
    mut req: Request,
) -> Response {
    let s = shared.clone();
    let (ns, p) = (namespace.clone(), pod.clone());
    let found = tokio::task::spawn_blocking(move || find_pod(&s, &ns, &p)).await;
    let (uid, netns) = match found {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return text(StatusCode::NOT_FOUND, e),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let ws_served = [
        portforward::TUNNEL_PROTOCOL,
        portforward::WEBSOCKET_PROTOCOLS[0],
        portforward::WEBSOCKET_PROTOCOLS[1],
        portforward::WEBSOCKET_PROTOCOLS[2],
        portforward::WEBSOCKET_PROTOCOLS[3],
    ];
    let (transport, resp) = match negotiate(req.headers(), &ws_served, &[portforward::PROTOCOL]) {
        Ok(t) => t,
        Err((code, msg)) => return text(code, msg),
    };
    // The plain WebSocket form names its ports in the query, checked before upgrading.
    let ports = match transport {
        Transport::WebSocket(name) if name != portforward::TUNNEL_PROTOCOL => {
            let query = req.uri().query().unwrap_or("").to_owned();
            let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            match portforward::query_ports(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                Ok(p) => p,
                Err(e) => return text(StatusCode::BAD_REQUEST, e),
            }
        }
        _ => Vec::new(),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Some(io) = upgraded(on_upgrade).await else {
            return;
        };
        let who = format!("pod {pod}_{namespace}, uid {uid}");
        let session = match transport {
            Transport::WebSocket(portforward::TUNNEL_PROTOCOL) => {
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                session::serve(skiff_stream::wsio::into_bytes(ws))
            }
            Transport::WebSocket(name) => {
                let proto = Protocol::from_name(name).expect("negotiated among known names");
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                for f in portforward::websocket(ws, proto, &ports) {
                    tokio::spawn(forward(f, netns.clone(), who.clone()));
                }
                return;
            }
            Transport::Spdy(_) => session::serve(io),
        };
        let mut forwards = portforward::pairs(session);
        while let Some(f) = forwards.recv().await {
            tokio::spawn(forward(f, netns.clone(), who.clone()));
        }
    });
    resp
}

/// One forwarded connection: to 127.0.0.1:port inside the pod's network namespace, as the
/// kubelet does (so a server bound to localhost in the pod is reached too).
async fn forward(f: Forward, netns: Option<std::path::PathBuf>, who: String) {
    let port = f.port;
    let stream = match connect_in(netns, port).await {
        Ok(s) => s,
        Err(e) => {
            let msg = format!(
                "error forwarding port {port} to {who}: failed to connect to localhost:{port} inside the pod's network namespace: {e}"
            );
            let _ = f.error.send(Bytes::from(msg)).await;
            f.error.close().await;
            f.output.close().await;
            return;
        }
    };
    f.error.close().await;
    let (read, mut write) = stream.into_split();
    let mut input = f.input;
    let output = f.output;
    let mut closed = f.closed;
    let from_pod = async move {
        pump(read, output.clone()).await;
        output.close().await;
    };
    tokio::pin!(from_pod);
    // The client's input to the pod, until it ends (FIN or reset of the data stream).
    let to_pod = async {
        while let Some(b) = input.recv().await {
            if write.write_all(&b).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    };
    // The forward ends when the pod closes its side, when the client's connection is gone,
    // or a grace period after the client's input ended (as containerd's forwarder: what
    // the pod still sends then has little time left to go out), so nothing outlives the
    // client.
    tokio::select! {
        () = &mut from_pod => return,
        _ = closed.wait_for(|c| *c) => return,
        () = to_pod => {}
    }
    tokio::select! {
        () = &mut from_pod => {}
        _ = closed.wait_for(|c| *c) => {}
        () = tokio::time::sleep(FORWARD_GRACE) => {
            tracing::debug!(port, "port-forward: the pod still sent after the client's input ended");
        }
    }
}

/// How long a forward still carries the pod's bytes once the client's input ended
/// (containerd's, after socat's default).
const FORWARD_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Connects to 127.0.0.1:`port` in `netns` (the host's when `None`). Entering a network
/// namespace changes the calling thread, so it is done on a thread of its own that ends
/// right after: no runtime thread ever runs in a pod's namespace.
async fn connect_in(
    netns: Option<std::path::PathBuf>,
    port: u16,
) -> std::io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| {
            if let Some(path) = &netns {
                let file = std::fs::File::open(path)?;
                // SAFETY: setns(2) on an open namespace fd, for this thread only (it exits
                // after the connect).
                let rc = unsafe {
                    libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET)
                };
                if rc != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            let s = std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                std::time::Duration::from_secs(10),
            )?;
            s.set_nonblocking(true)?;
            Ok(s)
        })();
        let _ = tx.send(result);
    });
    let s = rx
        .await
        .map_err(|_| std::io::Error::other("connect thread ended"))??;
    tokio::net::TcpStream::from_std(s)
}
