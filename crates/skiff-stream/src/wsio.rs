//! A WebSocket as a byte stream: how kubectl 1.31+ tunnels SPDY port-forwarding through a
//! WebSocket (`SPDY/3.1+portforward.k8s.io`), each binary message carrying the next bytes
//! of the SPDY connection.

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use tokio::sync::mpsc;

use crate::channel::{self, Outgoing, Protocol};
use crate::session::{Out, CHUNK};

/// The bytes of `ws`'s binary messages, and writes sent back as binary messages. The
/// pipe between is bounded ([`CHUNK`] each way), so neither side buffers more.
pub fn into_bytes<S>(ws: WebSocketStream<S>) -> DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mine, theirs) = tokio::io::duplex(CHUNK);
    let (mut pipe_read, mut pipe_write) = tokio::io::split(mine);
    let (mut sink, mut source) = ws.split();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            if pipe_write.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = pipe_write.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match pipe_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = Message::Binary(buf[..n].to_vec().into());
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        }
        close_normally(&mut sink).await;
    });
    theirs
}

/// The sending half of a WebSocket.
pub(crate) type Sink<S> = futures::stream::SplitSink<WebSocketStream<S>, Message>;

/// Sends each [`Out`] of `rx` as its channel's frame in `proto` until `Finish`, the end of
/// the queue or a failed send, then closes normally. A WebSocket channel has no half-close
/// from the server's side, so `Close` of one stream sends nothing.
pub(crate) async fn write_channels<S>(
    mut sink: Sink<S>,
    proto: Protocol,
    mut rx: mpsc::Receiver<Out>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(o) = rx.recv().await {
        let msg = match o {
            Out::Data(channel, data) => match channel::encode(proto, channel as u8, &data) {
                Outgoing::Binary(b) => Message::Binary(b.into()),
                Outgoing::Text(t) => Message::Text(t.into()),
            },
            Out::Close(_) => continue,
            Out::Finish => break,
        };
        if sink.send(msg).await.is_err() {
            break;
        }
    }
    close_normally(&mut sink).await;
}

/// A normal closure (1000): clients read a close without a status (1005) as an error of
/// every stream still open. Best effort: the peer may be gone already.
pub(crate) async fn close_normally<S>(sink: &mut Sink<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = sink.close().await;
}
