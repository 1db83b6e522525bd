//! exec and attach over either transport, as one shape: the stdin the client sends, the
//! stdout/stderr written back, terminal resizes, and the final status. The node's handler
//! works on [`ExecStreams`] and never sees which protocol the client spoke.

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::channel::{self, Incoming, Protocol};
use crate::remotecommand::{
    self, decode_sizes, Options, Outcome, TerminalSize, Version, ERROR, RESIZE, STDERR, STDIN,
    STDOUT,
};
use crate::session::{self, Out, Output, QUEUE};

/// How long the client has to open every stream it asked for (the kubelet's
/// `streamCreationTimeout` default is 30 s).
pub const STREAM_CREATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The streams of one exec or attach.
pub struct ExecStreams {
    /// What the client types; ends when it closes stdin (SPDY FIN, v5 close signal).
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    pub stdout: Option<Output>,
    /// `None` with a TTY, whose output is all on stdout.
    pub stderr: Option<Output>,
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
    /// Turns `true` when the client is gone: the process must then be killed.
    pub closed: watch::Receiver<bool>,
    error: Option<Output>,
    version: Version,
    out: mpsc::Sender<Out>,
}

impl ExecStreams {
    /// Writes the outcome on the error stream as the negotiated version wants it and ends
    /// the connection once everything queued is written.
    pub async fn finish(self, outcome: &Outcome) {
        if let Some(error) = &self.error {
            if let Some(bytes) = remotecommand::error_stream_bytes(self.version, outcome) {
                let _ = error.send(Bytes::from(bytes)).await;
            }
            error.close().await;
        }
        for o in [&self.stdout, &self.stderr].into_iter().flatten() {
            o.close().await;
        }
        let _ = self.out.send(Out::Finish).await;
        // Wait for the writer to drain, so the status reaches the client before the
        // connection drops; a client that stopped reading is given up on.
        let mut closed = self.closed;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !*closed.borrow_and_update() {
                if closed.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
    }

    pub fn version(&self) -> Version {
        self.version
    }
}

/// Serves exec/attach on an upgraded WebSocket that negotiated `proto`.
pub fn websocket<S>(ws: WebSocketStream<S>, proto: Protocol, opts: &Options) -> ExecStreams
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut source) = ws.split();
    let (out_tx, out_rx) = mpsc::channel::<Out>(QUEUE);
    let (closed_tx, closed_rx) = watch::channel(false);
    let closed_tx = std::sync::Arc::new(closed_tx);
    let c = closed_tx.clone();
    tokio::spawn(async move {
        crate::wsio::write_channels(sink, proto, out_rx).await;
        let _ = c.send(true);
    });
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(QUEUE);
    let (resize_tx, resize_rx) = mpsc::channel::<TerminalSize>(QUEUE);
    let wants_resize = opts.tty && proto.version.has_resize();
    tokio::spawn(async move {
        let mut stdin = Some(stdin_tx);
        let mut resize = Some(resize_tx);
        let mut sizes = Vec::new();
        while let Some(Ok(msg)) = source.next().await {
            let payload: Vec<u8> = match msg {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            match channel::decode(proto, &payload) {
                Ok(Incoming::Data {
                    channel: STDIN,
                    data,
                }) => {
                    if let Some(tx) = &stdin {
                        if !data.is_empty() && tx.send(Bytes::from(data)).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Ok(Incoming::Data {
                    channel: RESIZE,
                    data,
                }) => {
                    sizes.extend_from_slice(&data);
                    if sizes.len() > 64 << 10 {
                        resize = None;
                        sizes.clear();
                    }
                    match decode_sizes(&mut sizes) {
                        Ok(list) => {
                            for s in list {
                                if let Some(tx) = &resize {
                                    let _ = tx.send(s).await;
                                }
                            }
                        }
                        Err(_) => resize = None,
                    }
                }
                Ok(Incoming::Close { channel: STDIN }) => stdin = None,
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "bad channel message"),
            }
        }
        let _ = closed_tx.send(true);
    });
    let output = |wanted: bool, ch: u8| wanted.then(|| Output::new(out_tx.clone(), ch as u32));
    let streams = ExecStreams {
        stdin: opts.stdin.then_some(stdin_rx),
        stdout: output(opts.stdout, STDOUT),
        stderr: output(opts.separate_stderr(), STDERR),
        resize: wants_resize.then_some(resize_rx),
        closed: closed_rx,
        error: Some(Output::new(out_tx.clone(), ERROR as u32)),
        version: proto.version,
        out: out_tx.clone(),
    };
    // As the kubelet: an empty message on the first writable channel tells the client the
    // streams are ready.
    let first = if opts.stdout {
        STDOUT
    } else if opts.separate_stderr() {
        STDERR
    } else {
        ERROR
    };
    let _ = out_tx.try_send(Out::Data(first as u32, Bytes::new()));
    streams
}

/// Serves exec/attach on an upgraded SPDY connection that negotiated `version`: waits for
/// the client to open the streams `opts` asks for (identified by their `streamtype`).
pub async fn spdy<IO>(io: IO, version: Version, opts: &Options) -> Result<ExecStreams, String>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut session = session::serve(io);
    let mut expected = usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.separate_stderr())
        + usize::from(version.has_error_stream())
        + usize::from(opts.tty && version.has_resize());
    let mut streams = ExecStreams {
        stdin: None,
        stdout: None,
        stderr: None,
        resize: None,
        closed: session.closed.clone(),
        error: None,
        version,
        out: session.out.clone(),
    };
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    while expected > 0 {
        let s = tokio::time::timeout_at(deadline, session.streams.recv())
            .await
            .map_err(|_| "timed out waiting for client to create streams".to_string())?
            .ok_or_else(|| "the client closed the connection".to_string())?;
        match s.header("streamtype") {
            Some("error") => streams.error = Some(s.output),
            Some("stdin") => streams.stdin = Some(s.input),
            Some("stdout") => streams.stdout = Some(s.output),
            Some("stderr") => streams.stderr = Some(s.output),
            Some("resize") => {
                let (tx, rx) = mpsc::channel(QUEUE);
                streams.resize = Some(rx);
                let mut input = s.input;
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some(b) = input.recv().await {
                        buf.extend_from_slice(&b);
                        let Ok(sizes) = decode_sizes(&mut buf) else {
                            return;
                        };
                        for size in sizes {
                            if tx.send(size).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
            other => return Err(format!("unexpected stream type: {other:?}")),
        }
        expected -= 1;
    }
    Ok(streams)
}
