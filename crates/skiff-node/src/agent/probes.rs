//! Startup, readiness and liveness probes (`exec`, `httpGet` over HTTP or HTTPS, `tcpSocket`,
//! `grpc`) with the kubelet's timing (initial delay, period, timeout, thresholds) and its
//! result texts, which end up in `Unhealthy` events. HTTPS and gRPC clients are in
//! `probeclient`.

use crate::runtime::{Error as RuntimeError, Runtime};
use k8s_openapi::api::core::v1::{Container, HTTPHeader, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Until it passes, the others do not run; failing restarts the container.
    Startup,
    /// Failing clears Ready.
    Readiness,
    /// Failing restarts the container.
    Liveness,
}

impl Kind {
    /// The name the kubelet uses in events (`Liveness probe failed: ...`).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Readiness => "Readiness",
            Kind::Liveness => "Liveness",
        }
    }
}

/// Result of one probe run, as the kubelet's prober distinguishes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Success,
    /// The check ran and failed; the text is the kubelet's probe output.
    Failure(String),
    /// The check could not be run (runtime error); counts as a failure, but upstream's
    /// event says "errored".
    Error(String),
}

impl Outcome {
    /// Whether it counts as passing.
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Success)
    }

    /// The `Unhealthy` event message for a non-success, `None` for success.
    pub fn event_message(&self, kind: Kind) -> Option<String> {
        match self {
            Outcome::Success => None,
            Outcome::Failure(out) => Some(format!("{} probe failed: {out}", kind.label())),
            Outcome::Error(err) => Some(format!("{} probe errored: {err}", kind.label())),
        }
    }
}

/// Results of one probe of one container attempt.
#[derive(Debug, Clone)]
pub struct ProbeState {
    next: Instant,
    successes: i32,
    failures: i32,
    /// Current verdict (liveness starts passing; startup and readiness start failing).
    pub ok: bool,
}

impl ProbeState {
    /// State for a container that started at `started`: the first run is due after
    /// `initialDelaySeconds`, counted from the container's start as upstream.
    pub fn new(kind: Kind, probe: &Probe, started: Instant) -> Self {
        let delay = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
        Self {
            next: started + Duration::from_secs(delay),
            successes: 0,
            failures: 0,
            ok: kind == Kind::Liveness,
        }
    }

    /// Whether the probe should run now; if so, the next run is scheduled a period later.
    pub fn take_due(&mut self, probe: &Probe) -> bool {
        let now = Instant::now();
        if now < self.next {
            return false;
        }
        let period = probe.period_seconds.unwrap_or(10).max(1) as u64;
        self.next = now + Duration::from_secs(period);
        true
    }

    /// When the probe is due next (the worker syncs the pod then).
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Counts one result against the thresholds; returns whether the verdict changed.
    pub fn record(&mut self, probe: &Probe, passed: bool) -> bool {
        let before = self.ok;
        if passed {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= probe.success_threshold.unwrap_or(1).max(1) {
                self.ok = true;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= failure_threshold(probe) {
                self.ok = false;
            }
        }
        before != self.ok
    }

    /// Whether the failure threshold is reached (startup and liveness then restart).
    pub fn gave_up(&self, probe: &Probe) -> bool {
        self.failures >= failure_threshold(probe)
    }
}

fn failure_threshold(probe: &Probe) -> i32 {
    probe.failure_threshold.unwrap_or(3).max(1)
}

/// What a probe runs against.
#[derive(Clone)]
pub struct Target {
    /// Pod IP (default host of httpGet and tcpSocket).
    pub pod_ip: String,
    /// The container spec, for named ports.
    pub container: Container,
    /// Runtime id of the running container, for exec.
    pub container_id: String,
    /// The runtime, for exec.
    pub runtime: Arc<dyn Runtime>,
}

/// Timeout of one probe run (`timeoutSeconds`, default and minimum 1 s).
pub fn timeout(probe: &Probe) -> Duration {
    Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64)
}

/// Runs the probe once, honouring `timeoutSeconds` (an exec that overruns is killed and
/// fails, as upstream since 1.20).
pub async fn run(probe: &Probe, target: &Target) -> Outcome {
    let timeout = timeout(probe);
    if let Some(e) = &probe.exec {
        let argv = e.command.clone().unwrap_or_default();
        return exec(target, argv, timeout).await;
    }
    if let Some(t) = &probe.tcp_socket {
        let host = t.host.clone().unwrap_or_else(|| target.pod_ip.clone());
        let port = match resolve_port(&t.port, &target.container) {
            Ok(p) => p,
            Err(e) => return Outcome::Error(e),
        };
        let addr = format!("{host}:{port}");
        return match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: {}", io_text(&e))),
            Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if let Some(h) = &probe.http_get {
        let host = h.host.clone().unwrap_or_else(|| target.pod_ip.clone());
        let port = match resolve_port(&h.port, &target.container) {
            Ok(p) => p,
            Err(e) => return Outcome::Error(e),
        };
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let headers = h.http_headers.clone().unwrap_or_default();
        let tls = h.scheme.as_deref() == Some("HTTPS");
        let url = url(tls, &host, port, &path);
        return match tokio::time::timeout(
            timeout,
            http_get(tls, &host, port, &path, &headers, "kube-probe/1.33"),
        )
        .await
        {
            Ok(Ok(code)) if (200..400).contains(&code) => Outcome::Success,
            Ok(Ok(code)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
            Ok(Err(e)) => Outcome::Failure(e),
            Err(_) => Outcome::Failure(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while \
                 awaiting headers)"
            )),
        };
    }
    if let Some(g) = &probe.grpc {
        let Some(port) = u16::try_from(g.port).ok().filter(|p| *p > 0) else {
            return Outcome::Error(format!("invalid port number: {}", g.port));
        };
        let service = g.service.as_deref().unwrap_or_default();
        return match super::probeclient::grpc_health(
            &target.pod_ip,
            port,
            service,
            timeout,
            "kube-probe/1.33",
        )
        .await
        {
            Ok(()) => Outcome::Success,
            Err(text) => Outcome::Failure(text),
        };
    }
    Outcome::Error("missing probe handler".into())
}

async fn exec(target: &Target, argv: Vec<String>, timeout: Duration) -> Outcome {
    let rt = target.runtime.clone();
    let id = target.container_id.clone();
    let result = tokio::task::spawn_blocking(move || rt.exec(&id, &argv, Some(timeout))).await;
    match result {
        Ok(Ok(out)) if out.exit_code == 0 => Outcome::Success,
        Ok(Ok(out)) => Outcome::Failure(out.combined()),
        // Upstream reports the timeout text as the probe's output.
        Ok(Err(e @ RuntimeError::ExecTimeout { .. })) => Outcome::Failure(e.to_string()),
        Ok(Err(e)) => Outcome::Error(e.to_string()),
        Err(e) => Outcome::Error(e.to_string()),
    }
}

/// A port by number or by the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let by_number = |n: i32| u16::try_from(n).ok().filter(|p| *p > 0);
    match port {
        IntOrString::Int(n) => by_number(*n).ok_or_else(|| format!("invalid port number: {n}")),
        IntOrString::String(s) => match s.parse::<i32>() {
            Ok(n) => by_number(n).ok_or_else(|| format!("invalid port number: {n}")),
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .and_then(|p| by_number(p.container_port))
                .ok_or_else(|| format!("couldn't find port: {s} in {}", container.name)),
        },
    }
}

fn url(tls: bool, host: &str, port: u16, path: &str) -> String {
    let sep = if path.starts_with('/') { "" } else { "/" };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}:{port}{sep}{path}")
}

/// Go's wording for the common socket errors, so messages read like the kubelet's.
fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "read: connection reset by peer".into(),
        _ => e.to_string(),
    }
}

/// A minimal `GET` (HTTP/1.0, no body read): the status code, or a Go-style error text.
/// Shared by httpGet probes and lifecycle hooks, which only need the status line. With
/// `tls` it goes over TLS without verifying the certificate, as the kubelet.
pub(crate) async fn http_get(
    tls: bool,
    host: &str,
    port: u16,
    path: &str,
    headers: &[HTTPHeader],
    user_agent: &str,
) -> Result<u16, String> {
    let url = url(tls, host, port, path);
    let fail = |what: String| format!("Get \"{url}\": {what}");
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| fail(format!("dial tcp {host}:{port}: {}", io_text(&e))))?;
    let mut s: Box<dyn Stream> = if tls {
        Box::new(
            super::probeclient::tls(host, tcp)
                .await
                .map_err(|e| fail(format!("tls: {e}")))?,
        )
    } else {
        Box::new(tcp)
    };
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let mut req =
        format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: {user_agent}\r\n");
    for hdr in headers {
        req.push_str(&format!("{}: {}\r\n", hdr.name, hdr.value));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| fail(io_text(&e)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 64];
    // The status line may arrive in pieces; 64 bytes always hold its code.
    while head.len() < 16 {
        let n = s.read(&mut buf).await.map_err(|e| fail(io_text(&e)))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/"))
        .ok_or_else(|| fail("malformed HTTP response".into()))
}

/// A connection a probe reads and writes, plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for S {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::{FakeExec, FakeRuntime};
    use k8s_openapi::api::core::v1::{ContainerPort, ExecAction};

    fn probe(json: serde_json::Value) -> Probe {
        serde_json::from_value(json).unwrap()
    }

    fn running_fake() -> Arc<FakeRuntime> {
        Arc::new(FakeRuntime::with_running("c"))
    }

    fn target(rt: Arc<FakeRuntime>) -> Target {
        Target {
            pod_ip: "127.0.0.1".into(),
            container: Container {
                name: "app".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    ..Default::default()
                }]),
                ..Default::default()
            },
            container_id: "c".into(),
            runtime: rt,
        }
    }

    fn exec_probe(cmd: &[&str]) -> Probe {
        Probe {
            exec: Some(ExecAction {
                command: Some(cmd.iter().map(|s| s.to_string()).collect()),
            }),
            timeout_seconds: Some(3),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn exec_probe_passes_on_exit_0_and_fails_with_the_output_otherwise() {
        let rt = running_fake();
        rt.on_exec("cat /tmp/ready", FakeExec::Exit(1, "no such file\n".into()));
        let t = target(rt.clone());
        let out = run(&exec_probe(&["cat", "/tmp/ready"]), &t).await;
        assert_eq!(out, Outcome::Failure("no such file\n".into()));
        assert_eq!(
            out.event_message(Kind::Readiness).unwrap(),
            "Readiness probe failed: no such file\n"
        );
        rt.on_exec("cat /tmp/ready", FakeExec::Exit(0, "ok".into()));
        assert_eq!(
            run(&exec_probe(&["cat", "/tmp/ready"]), &t).await,
            Outcome::Success
        );
    }

    #[tokio::test]
    async fn exec_probe_timeout_is_a_failure_with_upstreams_text() {
        let rt = running_fake();
        rt.on_exec("sleep 10", FakeExec::Hang);
        let out = run(&exec_probe(&["sleep", "10"]), &target(rt.clone())).await;
        assert_eq!(
            out,
            Outcome::Failure("command \"sleep 10\" timed out".into())
        );
        assert!(rt.calls().contains(&crate::runtime::fake::Call::Exec(
            "c".into(),
            vec!["sleep".into(), "10".into()]
        )));
    }

    #[tokio::test]
    async fn exec_in_a_stopped_container_is_an_error_not_a_pass() {
        let rt = running_fake();
        rt.exit("c", 0, "Completed");
        let out = run(&exec_probe(&["true"]), &target(rt)).await;
        assert!(matches!(out, Outcome::Error(_)), "{out:?}");
        assert!(!out.passed());
    }

    #[test]
    fn named_ports_resolve_through_the_container_ports() {
        let t = target(running_fake());
        let named = IntOrString::String("http".into());
        assert_eq!(resolve_port(&named, &t.container), Ok(8080));
        assert_eq!(
            resolve_port(&IntOrString::String("81".into()), &t.container),
            Ok(81)
        );
        assert!(resolve_port(&IntOrString::String("grpc".into()), &t.container).is_err());
        assert!(resolve_port(&IntOrString::Int(0), &t.container).is_err());
    }

    #[tokio::test]
    async fn refused_tcp_probe_fails_with_a_dial_message() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let p = probe(serde_json::json!({"tcpSocket": {"port": port}}));
        let out = run(&p, &target(running_fake())).await;
        assert_eq!(
            out,
            Outcome::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    #[tokio::test]
    async fn http_probe_fails_on_5xx_with_the_status_code() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.0 503 Unavailable\r\n\r\n").await;
            }
        });
        let p = probe(serde_json::json!({"httpGet": {"port": port, "path": "/healthz"}}));
        let out = run(&p, &target(running_fake())).await;
        assert_eq!(
            out,
            Outcome::Failure("HTTP probe failed with statuscode: 503".into())
        );
    }

    /// A local HTTPS server with a self-signed certificate for a name the probe never
    /// dials, answering 200 to any GET.
    async fn tls_server() -> u16 {
        let key = rcgen::generate_simple_self_signed(vec!["pod.invalid".to_string()]).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![key.cert.der().clone()], der)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let ok = buf[..n].starts_with(b"GET /healthz ");
                    let answer: &[u8] = if ok {
                        b"HTTP/1.0 200 OK\r\n\r\nok"
                    } else {
                        b"HTTP/1.0 404 Not Found\r\n\r\n"
                    };
                    let _ = s.write_all(answer).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn https_probes_use_tls_without_verifying_the_certificate() {
        let port = tls_server().await;
        let https = probe(serde_json::json!({
            "httpGet": {"port": port, "path": "/healthz", "scheme": "HTTPS"}
        }));
        assert_eq!(run(&https, &target(running_fake())).await, Outcome::Success);
        let missing = probe(serde_json::json!({
            "httpGet": {"port": port, "path": "/missing", "scheme": "HTTPS"}
        }));
        assert_eq!(
            run(&missing, &target(running_fake())).await,
            Outcome::Failure("HTTP probe failed with statuscode: 404".into())
        );
        // Plain HTTP to a TLS port gets no HTTP answer.
        let plain = probe(serde_json::json!({"httpGet": {"port": port, "path": "/healthz"}}));
        assert!(!run(&plain, &target(running_fake())).await.passed());
    }

    /// A local gRPC server for `grpc.health.v1.Health/Check` over h2c: the service names
    /// `""`/`ok` are SERVING, `down` NOT_SERVING, `missing` answers NotFound, `noimpl`
    /// Unimplemented, `slow` never answers in time; the frames are written by hand.
    async fn grpc_server() -> u16 {
        use http_body_util::{BodyExt, StreamBody};
        use hyper::body::Frame;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let path = req.uri().path().to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        // [0, len(4), 0x0a, n, name...]
                        let name =
                            String::from_utf8_lossy(body.get(7..).unwrap_or_default()).into_owned();
                        let (status, message, payload): (&str, &str, &[u8]) =
                            match (path.as_str(), name.as_str()) {
                                ("/grpc.health.v1.Health/Check", "" | "ok") => {
                                    ("0", "", &[0, 0, 0, 0, 2, 8, 1])
                                }
                                ("/grpc.health.v1.Health/Check", "down") => {
                                    ("0", "", &[0, 0, 0, 0, 2, 8, 2])
                                }
                                ("/grpc.health.v1.Health/Check", "missing") => {
                                    ("5", "unknown service", &[])
                                }
                                ("/grpc.health.v1.Health/Check", "slow") => {
                                    tokio::time::sleep(Duration::from_secs(5)).await;
                                    ("0", "", &[0, 0, 0, 0, 2, 8, 1])
                                }
                                _ => ("12", "unknown service grpc.health.v1.Health", &[]),
                            };
                        let mut trailers = hyper::HeaderMap::new();
                        trailers.insert("grpc-status", status.parse().unwrap());
                        trailers.insert("grpc-message", message.parse().unwrap());
                        let frames: Vec<Result<Frame<bytes::Bytes>, std::convert::Infallible>> = vec![
                            Ok(Frame::data(bytes::Bytes::from_static(payload))),
                            Ok(Frame::trailers(trailers)),
                        ];
                        let response = hyper::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(StreamBody::new(futures::stream::iter(frames)))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service),
                );
            }
        });
        port
    }

    #[tokio::test]
    async fn grpc_probes_call_the_health_service_and_only_serving_passes() {
        let port = grpc_server().await;
        let grpc = |service: Option<&str>| {
            probe(serde_json::json!({"grpc": {"port": port, "service": service}}))
        };
        let t = target(running_fake());
        assert_eq!(run(&grpc(None), &t).await, Outcome::Success);
        assert_eq!(run(&grpc(Some("ok")), &t).await, Outcome::Success);
        let cases = [
            (
                "down",
                "service unhealthy (responded with \"NOT_SERVING\")".to_string(),
            ),
            (
                "missing",
                "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
                    .to_string(),
            ),
            (
                "noimpl",
                "error: this server does not implement the grpc health protocol \
                 (grpc.health.v1.Health): unknown service grpc.health.v1.Health"
                    .to_string(),
            ),
            (
                "slow",
                "timeout: health rpc did not complete within 1s".to_string(),
            ),
        ];
        for (service, want) in cases {
            assert_eq!(
                run(&grpc(Some(service)), &t).await,
                Outcome::Failure(want),
                "{service}"
            );
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = listener.local_addr().unwrap().port();
        drop(listener);
        let p = probe(serde_json::json!({"grpc": {"port": closed}}));
        match run(&p, &t).await {
            Outcome::Failure(text) => assert!(
                text.starts_with(&format!(
                    "error: failed to connect service at \"127.0.0.1:{closed}\""
                )),
                "{text}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn thresholds_flip_the_verdict_and_periods_space_the_runs() {
        let p = probe(serde_json::json!({
            "exec": {"command": ["true"]},
            "initialDelaySeconds": 5, "periodSeconds": 2, "failureThreshold": 2
        }));
        let mut s = ProbeState::new(Kind::Liveness, &p, Instant::now());
        assert!(!s.take_due(&p), "not before the initial delay");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(s.take_due(&p));
        assert!(!s.take_due(&p), "not again within the period");
        assert!(!s.record(&p, false));
        assert!(s.ok && !s.gave_up(&p), "one failure is below the threshold");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(s.take_due(&p));
        assert!(s.record(&p, false));
        assert!(!s.ok && s.gave_up(&p));
        assert!(s.record(&p, true));
        assert!(s.ok && !s.gave_up(&p));
    }

    #[test]
    fn startup_and_readiness_start_failing_liveness_passing() {
        let p = Probe::default();
        let now = Instant::now();
        assert!(!ProbeState::new(Kind::Startup, &p, now).ok);
        assert!(!ProbeState::new(Kind::Readiness, &p, now).ok);
        assert!(ProbeState::new(Kind::Liveness, &p, now).ok);
    }
}
