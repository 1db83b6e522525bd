//! Port forwarding over SPDY (`portforward.k8s.io`), also when tunnelled in a WebSocket:
//! the client opens two streams per connection it forwards, `streamtype: error` and
//! `streamtype: data`, both naming the `port` and sharing a `requestid`. Once both are
//! there the pair is handed over; errors are written as text on the error stream.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::session::{Output, Session, Stream, QUEUE};

/// The protocol name in `X-Stream-Protocol-Version` (SPDY) and, prefixed by `SPDY/3.1+`,
/// the WebSocket subprotocol that tunnels it.
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol of kubectl 1.31+'s tunnelled port-forward.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// One forwarded connection.
pub struct Forward {
    pub port: u16,
    /// The client's bytes for the pod port.
    pub input: mpsc::Receiver<Bytes>,
    /// Bytes back to the client.
    pub output: Output,
    /// Where a failure to connect is reported (as text, then the stream is closed).
    pub error: Output,
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
    fn ports_are_checked() {
        assert_eq!(parse_port(Some("80")), Ok(80));
        assert!(parse_port(Some("0")).is_err());
        assert!(parse_port(Some("65536")).is_err());
        assert!(parse_port(Some("x")).is_err());
        assert!(parse_port(None).is_err());
    }
}
