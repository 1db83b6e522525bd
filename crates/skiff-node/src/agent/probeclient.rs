//! The network clients of probes beyond plain TCP: TLS that does not verify the server's
//! certificate (the kubelet's `InsecureSkipVerify` for `scheme: HTTPS` httpGet probes and
//! hooks: pods serve self-signed certificates for names the kubelet never dials), and the
//! gRPC health check (`grpc.health.v1.Health/Check` over HTTP/2 without TLS, as the
//! kubelet's grpc probe) with upstream's result texts.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;

/// A TLS client that skips certificate verification, built once.
fn insecure_connector() -> tokio_rustls::TlsConnector {
    static CONNECTOR: std::sync::OnceLock<tokio_rustls::TlsConnector> = std::sync::OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(skiff_auth::tls::InsecureVerifier::new(provider))
                .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        })
        .clone()
}

/// Wraps `tcp` in TLS towards `host`, without verifying the certificate. An IP address
/// sends no SNI, as Go's client.
pub(crate) async fn tls(
    host: &str,
    tcp: tokio::net::TcpStream,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    insecure_connector().connect(name, tcp).await
}

/// Go's `Duration.String()`, as the kubelet prints its timeouts.
fn go(d: Duration) -> String {
    skiff_apimachinery::duration::go_string(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus` names.
fn status_name(n: u64) -> String {
    match n {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        n => n.to_string(),
    }
}

/// The gRPC message of a `HealthCheckRequest{service}`: protobuf field 1 (string), in a
/// length-prefixed, uncompressed gRPC frame.
pub fn health_request(service: &str) -> Bytes {
    let mut msg = BytesMut::new();
    if !service.is_empty() {
        msg.put_u8(0x0a);
        put_varint(&mut msg, service.len() as u64);
        msg.put_slice(service.as_bytes());
    }
    let mut frame = BytesMut::with_capacity(5 + msg.len());
    frame.put_u8(0);
    frame.put_u32(msg.len() as u32);
    frame.put_slice(&msg);
    frame.freeze()
}

fn put_varint(out: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        out.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

fn get_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return None;
        }
        let b = buf.get_u8();
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// The `status` (field 1, varint) of a gRPC-framed `HealthCheckResponse`; unknown fields
/// are skipped, a missing status is UNKNOWN (proto3's default).
pub fn health_status(body: &[u8]) -> Result<u64, String> {
    let bad = || "malformed health response".to_string();
    if body.len() < 5 || body[0] != 0 {
        return Err(bad());
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let mut msg = body
        .get(5..5usize.checked_add(len).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    let mut status = 0;
    while msg.has_remaining() {
        let key = get_varint(&mut msg).ok_or_else(bad)?;
        match key & 7 {
            0 => {
                let v = get_varint(&mut msg).ok_or_else(bad)?;
                if key >> 3 == 1 {
                    status = v;
                }
            }
            1 if msg.remaining() >= 8 => msg.advance(8),
            5 if msg.remaining() >= 4 => msg.advance(4),
            2 => {
                let n =
                    usize::try_from(get_varint(&mut msg).ok_or_else(bad)?).map_err(|_| bad())?;
                if msg.remaining() < n {
                    return Err(bad());
                }
                msg.advance(n);
            }
            _ => return Err(bad()),
        }
    }
    Ok(status)
}

/// One gRPC health check of `service` at `host:port` within `timeout`: `Ok` with
/// upstream's "service healthy" when SERVING, `Err` with the kubelet's failure text
/// otherwise.
pub async fn grpc_health(
    host: &str,
    port: u16,
    service: &str,
    timeout: Duration,
    user_agent: &str,
) -> Result<(), String> {
    let addr = format!("{host}:{port}");
    let deadline = tokio::time::Instant::now() + timeout;
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host, port)).await?;
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok::<_, std::io::Error>(sender)
    };
    let mut sender = match tokio::time::timeout_at(deadline, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("error: failed to connect service at {addr:?}: {e}")),
        Err(_) => {
            return Err(format!(
                "timeout: failed to connect service {addr:?} within {}",
                go(timeout)
            ))
        }
    };
    let request = hyper::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", user_agent)
        .body(Full::new(health_request(service)))
        .map_err(|e| format!("error: health rpc probe failed: {e}"))?;
    let call = async {
        let response = sender.send_request(request).await?;
        let (head, body) = response.into_parts();
        let collected = body.collect().await?;
        let trailers = collected.trailers().cloned();
        Ok::<_, hyper::Error>((head, trailers, collected.to_bytes()))
    };
    let (head, trailers, body) = match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("error: health rpc probe failed: {e}")),
        Err(_) => {
            return Err(format!(
                "timeout: health rpc did not complete within {}",
                go(timeout)
            ))
        }
    };
    // The status is in the trailers, or in the headers of a trailers-only response.
    let field = |name: &str| {
        trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .or_else(|| head.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let code = field("grpc-status");
    let message = field("grpc-message").unwrap_or_default();
    match code.as_deref() {
        Some("0") => {}
        Some("12") => {
            return Err(format!(
                "error: this server does not implement the grpc health protocol \
                 (grpc.health.v1.Health): {message}"
            ))
        }
        Some("4") => {
            return Err(format!(
                "timeout: health rpc did not complete within {}",
                go(timeout)
            ))
        }
        Some(code) => {
            return Err(format!(
                "error: health rpc probe failed: rpc error: code = {} desc = {message}",
                grpc_code_name(code)
            ))
        }
        None => {
            return Err(format!(
                "error: health rpc probe failed: rpc error: code = Unknown desc = HTTP status \
                 {} without grpc-status",
                head.status.as_u16()
            ))
        }
    }
    match health_status(&body) {
        Ok(1) => Ok(()),
        Ok(status) => Err(format!(
            "service unhealthy (responded with {:?})",
            status_name(status)
        )),
        Err(e) => Err(format!("error: health rpc probe failed: {e}")),
    }
}

/// gRPC's names of its status codes, as Go's `codes.Code.String()`.
fn grpc_code_name(code: &str) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    code.parse::<usize>()
        .ok()
        .and_then(|n| NAMES.get(n))
        .map_or_else(|| format!("Code({code})"), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_messages_are_protobuf_in_grpc_frames() {
        assert_eq!(&health_request("")[..], [0, 0, 0, 0, 0]);
        assert_eq!(
            &health_request("db")[..],
            [0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']
        );
        let cases: &[(&[u8], Result<u64, ()>)] = &[
            (&[0, 0, 0, 0, 2, 0x08, 1], Ok(1)),
            (&[0, 0, 0, 0, 2, 0x08, 2], Ok(2)),
            (&[0, 0, 0, 0, 0], Ok(0)),
            // An unknown string field before the status is skipped.
            (&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 3], Ok(3)),
            (&[0, 0, 0, 0, 9, 0x08, 1], Err(())),
            (&[1, 0, 0, 0, 2, 0x08, 1], Err(())),
            (&[0, 0, 0], Err(())),
            (&[0, 0, 0, 0, 1, 0x08], Err(())),
            (&[0, 0, 0, 0, 2, 0x0f, 1], Err(())),
        ];
        for (body, want) in cases {
            assert_eq!(health_status(body).map_err(drop), *want, "{body:?}");
        }
        assert_eq!(grpc_code_name("5"), "NotFound");
        assert_eq!(grpc_code_name("99"), "Code(99)");
    }
}
