//! Port forwarding over SPDY (`portforward.k8s.io`), also when tunnelled in a WebSocket:
//! the client opens two streams per connection it forwards, `streamtype: error` and
//! `streamtype: data`, both naming the `port` and sharing a `requestid`. Once both are
//! there the pair is handed over; errors are written as text on the error stream.
//!
//! And the kubelet's plain WebSocket form (the Python client's): the ports are in the
//! query (`?ports=80,443` or `port` repeated), one connection each, on channels `2i`
//! (data) and `2i+1` (error), each opened by a message with the port (u16, little
//! endian).

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::channel::{self, Incoming, Protocol};
use crate::session::{Out, Output, Session, Stream, QUEUE};

/// The protocol name in `X-Stream-Protocol-Version` (SPDY) and, prefixed by `SPDY/3.1+`,
/// the WebSocket subprotocol that tunnels it.
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol of kubectl 1.31+'s tunnelled port-forward.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The plain WebSocket port-forward subprotocols, as the kubelet serves them.
pub const WEBSOCKET_PROTOCOLS: [&str; 4] = [
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// The ports of a plain WebSocket port-forward request, from its query pairs (`ports`
/// comma-separated, or `port` repeated), with upstream's messages.
pub fn query_ports<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (k, v) in pairs {
        if k != "port" && k != "ports" {
            continue;
        }
        for p in v.split(',') {
            let port = p
                .parse::<u16>()
                .map_err(|e| format!("unable to parse {p:?} as a port: {e}"))?;
            if port == 0 {
                return Err(format!("port {p:?} must be > 0"));
            }
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    Ok(ports)
}

/// Serves a plain WebSocket port-forward: one [`Forward`] per port, at once.
pub fn websocket<S>(ws: WebSocketStream<S>, proto: Protocol, ports: &[u16]) -> Vec<Forward>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut source) = ws.split();
    let (out_tx, out_rx) = mpsc::channel::<Out>(QUEUE);
    let (closed_tx, closed) = watch::channel(false);
    let closed_tx = std::sync::Arc::new(closed_tx);
    let c = closed_tx.clone();
    tokio::spawn(async move {
        crate::wsio::write_channels(sink, proto, out_rx).await;
        let _ = c.send(true);
    });
    let mut inputs = Vec::new();
    let mut forwards = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (tx, rx) = mpsc::channel(QUEUE);
        inputs.push(tx);
        let data = (2 * i) as u32;
        // Each channel opens with its port, as the kubelet writes it.
        for ch in [data, data + 1] {
            let _ = out_tx.try_send(Out::Data(ch, Bytes::copy_from_slice(&port.to_le_bytes())));
        }
        forwards.push(Forward {
            port: *port,
            input: rx,
            output: Output::new(out_tx.clone(), data),
            error: Output::new(out_tx.clone(), data + 1),
            closed: closed.clone(),
        });
    }
    tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            let payload: Vec<u8> = match msg {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            if let Ok(Incoming::Data { channel, data }) = channel::decode(proto, &payload) {
                // Only data channels carry bytes for the pod.
                let Some(tx) = inputs
                    .get(channel as usize / 2)
                    .filter(|_| channel % 2 == 0)
                else {
                    continue;
                };
                if !data.is_empty() && tx.send(Bytes::from(data)).await.is_err() {
                    continue;
                }
            }
        }
        // Dropping the inputs ends every forward's way to the pod; the connection is gone.
        let _ = closed_tx.send(true);
    });
    drop(out_tx);
    forwards
}

/// One forwarded connection.
pub struct Forward {
    pub port: u16,
    /// The client's bytes for the pod port.
    pub input: mpsc::Receiver<Bytes>,
    /// Bytes back to the client.
    pub output: Output,
    /// Where a failure to connect is reported (as text, then the stream is closed).
    pub error: Output,
    /// Turns `true` when the client's connection is gone: the forward must end then,
    /// whatever the pod does.
    pub closed: watch::Receiver<bool>,
}

/// Parses a `port` header as upstream: a number in 1..=65535.
pub fn parse_port(value: Option<&str>) -> Result<u16, String> {
    let v = value.ok_or_else(|| "port header is required".to_string())?;
    match v.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port: {v:?}")),
    }
}

/// The request a stream belongs to: its `requestid`, or for clients that send none (before
/// 1.7), the error stream's id (the data stream is the one opened right after it).
fn request_id(s: &Stream) -> String {
    match s.header("requestid") {
        Some(id) => id.to_owned(),
        None if s.header("streamtype") == Some("data") => s.id.saturating_sub(2).to_string(),
        None => s.id.to_string(),
    }
}

/// Pairs the session's streams into forwarded connections, until the client goes.
pub fn pairs(mut session: Session) -> mpsc::Receiver<Forward> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
        while let Some(s) = session.streams.recv().await {
            let id = request_id(&s);
            let entry = pending.entry(id.clone()).or_default();
            match s.header("streamtype") {
                Some("error") => entry.0 = Some(s),
                Some("data") => entry.1 = Some(s),
                other => {
                    tracing::debug!(?other, "port-forward stream of unknown type");
                    continue;
                }
            }
            if !matches!(entry, (Some(_), Some(_))) {
                continue;
            }
            let Some((Some(error), Some(data))) = pending.remove(&id) else {
                continue;
            };
            let port = match parse_port(data.header("port")) {
                Ok(p) => p,
                Err(e) => {
                    let _ = error.output.send(Bytes::from(e)).await;
                    error.output.close().await;
                    data.output.close().await;
                    continue;
                }
            };
            let forward = Forward {
                port,
                input: data.input,
                output: data.output,
                error: error.output,
                closed: session.closed.clone(),
            };
            if tx.send(forward).await.is_err() {
                break;
            }
        }
        // Keep the session's writer until the last forward is done with it.
        drop(session);
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_ports_as_upstream() {
        assert_eq!(query_ports([("ports", "80,443")]), Ok(vec![80, 443]));
        assert_eq!(
            query_ports([("port", "80"), ("port", "81")]),
            Ok(vec![80, 81])
        );
        assert!(query_ports([("ports", "x")])
            .unwrap_err()
            .contains("unable to parse"));
        assert!(query_ports([("ports", "0")]).is_err());
        assert_eq!(
            query_ports([("other", "1")]),
            Err("query parameter \"port\" is required".into())
        );
    }

    #[test]
    fn ports_are_checked() {
        assert_eq!(parse_port(Some("80")), Ok(80));
        assert!(parse_port(Some("0")).is_err());
        assert!(parse_port(Some("65536")).is_err());
        assert!(parse_port(Some("x")).is_err());
        assert!(parse_port(None).is_err());
    }
}
