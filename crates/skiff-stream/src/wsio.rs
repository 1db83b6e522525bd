//! A WebSocket as a byte stream: how kubectl 1.31+ tunnels SPDY port-forwarding through a
//! WebSocket (`SPDY/3.1+portforward.k8s.io`), each binary message carrying the next bytes
//! of the SPDY connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{Sink as _, SinkExt, Stream as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use tokio::sync::mpsc;

use crate::channel::{self, Outgoing, Protocol};
use crate::session::Out;

/// The bytes of `ws`'s binary messages, and writes sent back as binary messages
/// ([`WsBytes`]).
pub fn into_bytes<S>(ws: WebSocketStream<S>) -> WsBytes<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    WsBytes {
        ws,
        pending: Bytes::new(),
        eof: false,
        closing: false,
    }
}

/// A WebSocket read and written as a byte stream, in place (decision 0057): a read takes
/// the rest of the current binary message, a write becomes one binary message. No task
/// and no pipe in between, so a forwarded byte is copied once here, and the WebSocket's
/// own bounded write buffer is the only buffer: a slow peer stalls the writer.
pub struct WsBytes<S> {
    ws: WebSocketStream<S>,
    /// What is left of the last binary message read.
    pending: Bytes,
    /// The peer closed (or the connection ended): reads give EOF from now on.
    eof: bool,
    /// The normal closure is queued; shutting down only drives it out.
    closing: bool,
}

fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        other => io::Error::other(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsBytes<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() {
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => this.pending = b,
                Some(Ok(Message::Close(_)))
                | None
                | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => this.eof = true,
                // Pings are answered by the WebSocket itself; nothing else carries bytes.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsBytes<S> {
    /// Sends `parts` as one binary message once the WebSocket takes one.
    fn poll_send(&mut self, cx: &mut Context<'_>, parts: &[&[u8]]) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io_error)?;
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut msg = BytesMut::with_capacity(len);
        for p in parts {
            msg.extend_from_slice(p);
        }
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(msg.freeze()))
            .map_err(io_error)?;
        Poll::Ready(Ok(len))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsBytes<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, &[data])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let parts: Vec<&[u8]> = bufs.iter().map(|b| &b[..]).collect();
        self.get_mut().poll_send(cx, &parts)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_flush(cx)
            .map_err(io_error)
    }

    /// A normal closure (1000), as [`close_normally`] sends; a connection already closed
    /// is shut down.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let closed_ok = |r: Result<(), WsError>| match r {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Ok(()),
            Err(e) => Err(io_error(e)),
        };
        if !this.closing {
            closed_ok(ready!(Pin::new(&mut this.ws).poll_ready(cx)))?;
            this.closing = true;
            let close = Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }));
            closed_ok(Pin::new(&mut this.ws).start_send(close))?;
        }
        Pin::new(&mut this.ws).poll_close(cx).map(closed_ok)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[tokio::test]
    async fn a_websocket_read_and_written_as_bytes() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let mut client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        let mut bytes = into_bytes(server);

        // Message boundaries do not matter to the reader; pings carry no bytes.
        for m in [
            Message::Binary(Bytes::from_static(b"hello ")),
            Message::Ping(Bytes::from_static(b"p")),
            Message::Binary(Bytes::from_static(b"wor")),
            Message::Binary(Bytes::from_static(b"ld")),
        ] {
            client.send(m).await.unwrap();
        }
        let mut got = [0u8; 5];
        bytes.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        let mut got = [0u8; 6];
        bytes.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b" world");

        // A vectored write is one message, the parts joined.
        let parts = [io::IoSlice::new(b"head"), io::IoSlice::new(b"+body")];
        assert_eq!(bytes.write_vectored(&parts).await.unwrap(), 9);
        bytes.flush().await.unwrap();
        let msg = loop {
            match client.next().await.unwrap().unwrap() {
                Message::Pong(_) => continue,
                m => break m,
            }
        };
        assert_eq!(msg, Message::Binary(Bytes::from_static(b"head+body")));

        // Shutting down is a normal closure; the peer's close is the reader's end.
        bytes.shutdown().await.unwrap();
        match client.next().await.unwrap().unwrap() {
            Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Normal),
            other => panic!("{other:?}"),
        }
        // The client's reply goes out with its next write.
        client.flush().await.unwrap();
        assert_eq!(bytes.read(&mut [0u8; 4]).await.unwrap(), 0);
    }
}
