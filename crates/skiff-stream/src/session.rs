//! The async side: a server end of a SPDY/3.1 connection (streams opened by the client,
//! each answered with SYN_REPLY as spdystream's server does) and the one writer shape both
//! transports share. Every queue is bounded, so a slow peer or a slow process stalls its
//! sender instead of growing memory.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::spdy::{self, Frame, Headers};

/// Messages queued per stream (each at most [`CHUNK`] bytes): the bound on what one
/// stream buffers.
pub const QUEUE: usize = 16;
/// Largest data frame or message written: what one read of a process's output or a
/// forwarded socket gives (64 KiB: fewer frames and wake-ups at bulk rates).
pub const CHUNK: usize = 64 << 10;

/// Something to write on a connection, addressed by stream id (SPDY) or channel (WebSocket).
#[derive(Debug)]
pub enum Out {
    Data(u32, Bytes),
    /// Half-closes the stream (SPDY: an empty data frame with FIN).
    Close(u32),
    /// Ends the connection once everything queued before it is written.
    Finish,
}

/// Writes on one stream of a connection. Cloneable; sends wait while the connection's
/// queue is full.
#[derive(Debug, Clone)]
pub struct Output {
    tx: mpsc::Sender<Out>,
    key: u32,
}

/// The peer is gone: nothing more can be written.
#[derive(Debug, thiserror::Error)]
#[error("the client closed the stream")]
pub struct Gone;

impl Output {
    pub fn new(tx: mpsc::Sender<Out>, key: u32) -> Self {
        Output { tx, key }
    }

    /// Queues `data`, in chunks of at most [`CHUNK`] bytes.
    pub async fn send(&self, mut data: Bytes) -> Result<(), Gone> {
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(CHUNK));
            self.tx
                .send(Out::Data(self.key, chunk))
                .await
                .map_err(|_| Gone)?;
        }
        Ok(())
    }

    /// Half-closes the stream.
    pub async fn close(&self) {
        let _ = self.tx.send(Out::Close(self.key)).await;
    }
}

/// A stream the client opened.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    /// What the client sends; ends at its FIN or RST_STREAM.
    pub input: mpsc::Receiver<Bytes>,
    pub output: Output,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        spdy::header(&self.headers, name)
    }
}

/// A served SPDY connection: the streams the client opens, and whether it is gone.
pub struct Session {
    pub streams: mpsc::Receiver<Stream>,
    /// Turns `true` when the connection ended (client gone or finished).
    pub closed: watch::Receiver<bool>,
    /// For [`Out::Finish`] and writes not tied to a stream.
    pub out: mpsc::Sender<Out>,
}

/// Serves the SPDY connection on `io` until either side ends it.
pub fn serve<IO>(io: IO) -> Session
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel::<Out>(QUEUE);
    let (frames_tx, frames_rx) = mpsc::channel::<Frame>(QUEUE);
    let (streams_tx, streams_rx) = mpsc::channel(QUEUE);
    let (closed_tx, closed_rx) = watch::channel(false);
    let closed_tx = std::sync::Arc::new(closed_tx);
    let c = closed_tx.clone();
    tokio::spawn(async move {
        if let Err(e) = write_loop(write, out_rx, frames_rx).await {
            tracing::debug!(error = %e, "spdy write side ended");
        }
        let _ = c.send(true);
    });
    let out = out_tx.clone();
    tokio::spawn(async move {
        if let Err(e) = read_loop(read, out, frames_tx, streams_tx).await {
            tracing::debug!(error = %e, "spdy read side ended");
        }
        let _ = closed_tx.send(true);
    });
    Session {
        streams: streams_rx,
        closed: closed_rx,
        out: out_tx,
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut read: R,
    out: mpsc::Sender<Out>,
    control: mpsc::Sender<Frame>,
    streams: mpsc::Sender<Stream>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut decoder = spdy::Decoder::new();
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut inputs: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        while let Some(frame) = decoder.decode(&mut buf)? {
            match frame {
                Frame::SynStream {
                    stream,
                    fin,
                    headers,
                    ..
                } => {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    if !fin {
                        inputs.insert(stream, tx);
                    }
                    control
                        .send(Frame::SynReply {
                            stream,
                            fin: false,
                            headers: Vec::new(),
                        })
                        .await?;
                    let s = Stream {
                        id: stream,
                        headers,
                        input: rx,
                        output: Output::new(out.clone(), stream),
                    };
                    if streams.send(s).await.is_err() {
                        control
                            .send(Frame::RstStream {
                                stream,
                                status: spdy::RST_CANCEL,
                            })
                            .await?;
                    }
                }
                Frame::Data { stream, fin, data } => {
                    if let Some(tx) = inputs.get(&stream) {
                        // Waits while the stream's reader is behind: back-pressure reaches
                        // the client through TCP.
                        if !data.is_empty() && tx.send(data).await.is_err() {
                            inputs.remove(&stream);
                        }
                    }
                    if fin {
                        inputs.remove(&stream);
                    }
                }
                Frame::RstStream { stream, .. } => {
                    inputs.remove(&stream);
                }
                Frame::Headers { stream, fin, .. } if fin => {
                    inputs.remove(&stream);
                }
                Frame::Ping(id) => control.send(Frame::Ping(id)).await?,
                Frame::GoAway { .. } => return Ok(()),
                _ => {}
            }
        }
        if read.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut write: W,
    mut out: mpsc::Receiver<Out>,
    mut control: mpsc::Receiver<Frame>,
) -> std::io::Result<()> {
    let mut encoder = spdy::Encoder::new();
    let mut buf = BytesMut::with_capacity(4 << 10);
    loop {
        // Control frames (replies, pings) first, so a busy stream never delays them.
        tokio::select! {
            biased;
            f = control.recv() => match f {
                Some(f) => {
                    encoder.encode(&f, &mut buf);
                    write.write_all(&buf).await?;
                    buf.clear();
                }
                None => break,
            },
            o = out.recv() => match o {
                // The payload goes out beside its header, never copied into a frame
                // buffer first (decision 0057).
                Some(Out::Data(stream, data)) => write_data(&mut write, stream, false, &data).await?,
                Some(Out::Close(stream)) => write_data(&mut write, stream, true, &[]).await?,
                Some(Out::Finish) | None => break,
            },
        }
        // One flush per burst: a writer that buffers (TLS, a WebSocket) sends full records.
        if control.is_empty() && out.is_empty() {
            write.flush().await?;
        }
    }
    write.flush().await?;
    write.shutdown().await
}

/// Writes one data frame: its header and `data` in vectored writes.
async fn write_data<W: AsyncWrite + Unpin>(
    write: &mut W,
    stream: u32,
    fin: bool,
    data: &[u8],
) -> std::io::Result<()> {
    let header = spdy::data_header(stream, fin, data.len());
    let (mut head, mut body): (&[u8], &[u8]) = (&header, data);
    while !head.is_empty() {
        let parts = [std::io::IoSlice::new(head), std::io::IoSlice::new(body)];
        let n = write.write_vectored(&parts).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        if n >= head.len() {
            body = &body[n - head.len()..];
            head = &[];
        } else {
            head = &head[n..];
        }
    }
    write.write_all(body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_are_replied_and_carry_data_both_ways() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut session = serve(server);
        let (mut cr, mut cw) = tokio::io::split(client);
        let mut enc = spdy::Encoder::new();
        let mut buf = BytesMut::new();
        enc.encode(
            &Frame::SynStream {
                stream: 1,
                associated: 0,
                priority: 0,
                fin: false,
                headers: vec![("streamtype".into(), "stdin".into())],
            },
            &mut buf,
        );
        enc.encode(
            &Frame::Data {
                stream: 1,
                fin: true,
                data: Bytes::from_static(b"hi"),
            },
            &mut buf,
        );
        cw.write_all(&buf).await.unwrap();
        let mut s = session.streams.recv().await.unwrap();
        assert_eq!(s.header("streamtype"), Some("stdin"));
        assert_eq!(s.input.recv().await.unwrap(), Bytes::from_static(b"hi"));
        assert!(s.input.recv().await.is_none(), "FIN ends the input");
        s.output.send(Bytes::from_static(b"out")).await.unwrap();
        s.output.close().await;
        session.out.send(Out::Finish).await.unwrap();
        let mut raw = BytesMut::new();
        let mut dec = spdy::Decoder::new();
        let mut frames = Vec::new();
        loop {
            while let Some(f) = dec.decode(&mut raw).unwrap() {
                frames.push(f);
            }
            if cr.read_buf(&mut raw).await.unwrap() == 0 {
                break;
            }
        }
        assert!(matches!(frames[0], Frame::SynReply { stream: 1, .. }));
        assert_eq!(
            frames[1..],
            [
                Frame::Data {
                    stream: 1,
                    fin: false,
                    data: Bytes::from_static(b"out")
                },
                Frame::Data {
                    stream: 1,
                    fin: true,
                    data: Bytes::new()
                }
            ]
        );
    }
}
