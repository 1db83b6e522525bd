//! HTTP load pieces shared by the proxy benchmarks (`proxy-load`, `gateway-load`): the
//! pods' minimal HTTP server, an image holding the benchmark's own executable to run it,
//! and a closed-loop HTTP/1.1 load generator (keep-alive or a connection per request)
//! recording every latency.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::{is_ready, percentile};

// ---------------------------------------------------------------------------------------
// The pod's HTTP server.

/// A minimal HTTP/1.1 server: every request gets this host's name (the pod's name), over
/// keep-alive connections unless the client asks to close. Exits on SIGTERM (it runs as
/// PID 1, which has no default handler).
pub fn serve(port: u16) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let body: Arc<[u8]> = hostname().into_bytes().into();
        let listener = TcpListener::bind(("0.0.0.0", port)).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    tokio::spawn(serve_connection(stream, body.clone()));
                }
                _ = term.recv() => return Ok(()),
            }
        }
    })
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

async fn serve_connection(mut stream: TcpStream, body: Arc<[u8]>) {
    let _ = stream.set_nodelay(true);
    let keep = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let close = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(512);
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // Answer every complete request head buffered (GETs: no bodies).
        let mut closing = false;
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = &buf[..end];
            closing = contains_ignore_case(head, b"connection: close")
                || (head.windows(8).any(|w| w == b"HTTP/1.0")
                    && !contains_ignore_case(head, b"connection: keep-alive"));
            out.extend_from_slice(if closing { &close } else { &keep }.as_bytes());
            out.extend_from_slice(&body);
            buf.drain(..end + 4);
            if closing {
                break;
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if closing {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

// ---------------------------------------------------------------------------------------
// The image.

/// An OCI archive of image `image` whose only layer holds this executable (as `/{name}`,
/// the entrypoint) and the shared libraries it loads, at their paths, dynamic loader
/// included.
pub fn self_image(image: &str, name: &str) -> Result<Vec<u8>> {
    use skiff_node::testing::{oci_archive, LayerBuilder, TestImageConfig};
    let exe = std::env::current_exe()?;
    let out = Command::new("ldd").arg(&exe).output().context("run ldd")?;
    let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // `libc.so.6 => /lib/.../libc.so.6 (0x..)` or `/lib64/ld-linux-x86-64.so.2 (0x..)`.
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| path.to_string())
        })
        .collect();
    files.sort();
    files.dedup();
    let mut dirs: Vec<String> = files
        .iter()
        .flat_map(|f| {
            Path::new(f)
                .ancestors()
                .skip(1)
                .map(|d| d.to_string_lossy().trim_start_matches('/').to_string())
                .filter(|d| !d.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut layer = LayerBuilder::new().dir("etc", 0o755).dir("tmp", 0o1777);
    for d in &dirs {
        layer = layer.dir(d, 0o755);
    }
    for f in &files {
        let content = std::fs::read(f).with_context(|| format!("read {f}"))?;
        layer = layer.file(f.trim_start_matches('/'), 0o755, &content);
    }
    let binary = std::fs::read(&exe).with_context(|| format!("read {}", exe.display()))?;
    layer = layer.file(name, 0o755, &binary);
    let cfg = TestImageConfig {
        entrypoint: vec![format!("/{name}")],
        ..Default::default()
    };
    Ok(oci_archive(image, &[layer.finish()], &cfg))
}

/// Watches pod `name` until its Ready condition is True; returns it as seen then.
pub async fn wait_ready(pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<Pod> {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(pods.clone(), cfg).boxed();
    let found = tokio::time::timeout(timeout, async {
        while let Some(event) = stream.next().await {
            if let Ok(Event::Apply(p) | Event::InitApply(p)) = event {
                if is_ready(&p) {
                    return Some(p);
                }
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(p)) => Ok(p),
        _ => bail!("pod {name} not Ready within {timeout:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The HTTP client.

/// Reads one `200` response from `stream` (bytes past it stay in `buf`); returns its body.
pub async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(Error::new(ErrorKind::InvalidData, head));
            }
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no content-length"))?;
            let total = end + 4 + len;
            while buf.len() < total {
                if stream.read_buf(buf).await? == 0 {
                    return Err(ErrorKind::UnexpectedEof.into());
                }
            }
            let body = buf[end + 4..total].to_vec();
            buf.drain(..total);
            return Ok(body);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Where the load generator sends requests, from which source address, with which
/// `Host` header.
#[derive(Clone, Copy)]
pub struct Target {
    pub addr: SocketAddr,
    /// Source address to bind (the route's choice when `None`).
    pub source: Option<IpAddr>,
    /// The `Host` header sent (what a gateway routes by).
    pub host: &'static str,
}

impl Target {
    /// `addr` with `Host: bench`, from the route's source address.
    pub fn to(addr: SocketAddr) -> Target {
        Target {
            addr,
            source: None,
            host: "bench",
        }
    }

    /// The request head this target gets: keep-alive, or asking the server to close.
    fn request(&self, close: bool) -> Vec<u8> {
        let connection = if close { "Connection: close\r\n" } else { "" };
        format!("GET / HTTP/1.1\r\nHost: {}\r\n{connection}\r\n", self.host).into_bytes()
    }

    async fn connect(&self) -> std::io::Result<TcpStream> {
        let Some(ip) = self.source else {
            return TcpStream::connect(self.addr).await;
        };
        let socket = TcpSocket::new_v4()?;
        // Choose the port at connect time, per destination, as an unbound socket does.
        let on: libc::c_int = 1;
        // SAFETY: a valid socket fd and a c_int option value of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        socket.bind(SocketAddr::new(ip, 0))?;
        socket.connect(self.addr).await
    }
}

/// One GET on a new connection that the server closes; returns the body.
pub async fn get_once(target: Target) -> std::io::Result<Vec<u8>> {
    get_with(target, &target.request(true)).await
}

async fn get_with(target: Target, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = target.connect().await?;
    stream.set_nodelay(true)?;
    stream.write_all(request).await?;
    let mut buf = Vec::with_capacity(512);
    let body = read_response(&mut stream, &mut buf).await?;
    // Wait for the server's FIN, so the server side holds TIME_WAIT, as with a real
    // server closing after `Connection: close`, and the client's ports are not used up.
    let mut rest = [0u8; 64];
    while stream.read(&mut rest).await? > 0 {}
    Ok(body)
}

/// How the load generator connects.
#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    KeepAlive,
    ConnectionPerRequest,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keep-alive",
            Mode::ConnectionPerRequest => "connection per request",
        }
    }
}

/// The outcome of one load run (or several merged).
#[derive(Default)]
pub struct Run {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    /// Request latencies in microseconds.
    pub latencies: Vec<u32>,
}

impl Run {
    pub fn merge(&mut self, other: Run) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
    }

    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        self.latencies.sort_unstable();
        percentile(&self.latencies, p) as f64 / 1000.0
    }
}

/// `connections` closed-loop clients request `target` for `seconds`.
pub async fn load(target: Target, mode: Mode, connections: usize, seconds: u64) -> Run {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let clients: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(client(target, mode, deadline)))
        .collect();
    let mut run = Run::default();
    for c in clients {
        if let Ok(r) = c.await {
            run.merge(r);
        }
    }
    run.elapsed = started.elapsed();
    run
}

async fn client(target: Target, mode: Mode, deadline: Instant) -> Run {
    let mut run = Run {
        latencies: Vec::with_capacity(1 << 16),
        ..Run::default()
    };
    let request = target.request(mode == Mode::ConnectionPerRequest);
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        let t = Instant::now();
        let ok = match mode {
            Mode::ConnectionPerRequest => get_with(target, &request).await.is_ok(),
            Mode::KeepAlive => {
                if conn.is_none() {
                    buf.clear();
                    conn = target.connect().await.ok();
                    if let Some(s) = &conn {
                        let _ = s.set_nodelay(true);
                    }
                }
                match conn.as_mut() {
                    Some(s) => {
                        let ok = s.write_all(&request).await.is_ok()
                            && read_response(s, &mut buf).await.is_ok();
                        if !ok {
                            conn = None;
                        }
                        ok
                    }
                    None => false,
                }
            }
        };
        if ok {
            run.requests += 1;
            run.latencies.push(t.elapsed().as_micros() as u32);
        } else {
            run.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    run
}
