//! `collector-load`: a load generator for the event collector (ingest rate, GET latency, RSS).
//!
//! Each worker owns one keep-alive HTTP/1.1 connection and sends requests back to back, so the
//! numbers measure the server, not connection setup. Traffic goes only to the URL given, which
//! must be on this machine; every run is bounded in time or count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(name = "collector-load")]
struct Args {
    /// Collector address, host:port (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// POST events for a while and report the sustained rate.
    Ingest {
        /// Events per POST (1 sends a single object, more send an array).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Concurrent connections.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Distinct sources to spread events over.
        #[arg(long, default_value_t = 16)]
        sources: usize,
    },
    /// POST exactly this many events in batches, as fast as possible.
    Fill {
        /// Events in total.
        #[arg(long)]
        total: u64,
        /// Events per POST.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Concurrent connections.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// GET a path repeatedly and report latency percentiles.
    Get {
        /// Path and query to fetch.
        #[arg(long, default_value = "/events?limit=100")]
        path: String,
        /// Concurrent connections.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Print the server's resident memory from /metrics.
    Rss,
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: &str) -> Sender {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to collector");
    stream.set_nodelay(true).ok();
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("http handshake");
    tokio::spawn(conn);
    sender
}

/// Sends one request; returns the status and body.
async fn send(
    s: &mut Sender,
    addr: &str,
    method: &str,
    path: &str,
    body: Option<Bytes>,
) -> (u16, Bytes) {
    s.ready().await.expect("connection ready");
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(body.unwrap_or_default()))
        .expect("request");
    let resp = s.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

fn body_for(batch: usize, worker: usize, seq: u64, sources: usize) -> Bytes {
    let one = |i: usize| {
        format!(
            r#"{{"source":"svc-{}","action":"load.{worker}.{seq}.{i}"}}"#,
            (worker + i) % sources.max(1)
        )
    };
    if batch == 1 {
        Bytes::from(one(0))
    } else {
        let items: Vec<String> = (0..batch).map(one).collect();
        Bytes::from(format!("[{}]", items.join(",")))
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx]) / 1000.0
}

async fn run_timed<F, Fut>(concurrency: usize, seconds: u64, work: F) -> (Vec<u32>, Duration)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (stop, work) = (stop.clone(), work.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                work(w, seq).await;
                lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                seq += 1;
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    let took = start.elapsed();
    all.sort_unstable();
    (all, took)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let addr = args.addr.clone();
    match args.cmd {
        Cmd::Ingest {
            batch,
            concurrency,
            seconds,
            sources,
        } => {
            let senders: Vec<_> = futures_join(concurrency, &addr).await;
            let senders = Arc::new(senders);
            let addr2 = addr.clone();
            let (lat, took) = run_timed(concurrency, seconds, move |w, seq| {
                let (senders, addr) = (senders.clone(), addr2.clone());
                async move {
                    let mut s = senders[w].lock().await;
                    let (status, body) = send(
                        &mut s,
                        &addr,
                        "POST",
                        "/events",
                        Some(body_for(batch, w, seq, sources)),
                    )
                    .await;
                    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
                }
            })
            .await;
            let reqs = lat.len() as f64 / took.as_secs_f64();
            println!(
                "ingest batch={batch} concurrency={concurrency}: {:.0} requests/s, {:.0} events/s, latency p50 {:.2} ms p99 {:.2} ms ({} requests in {:.1} s)",
                reqs,
                reqs * batch as f64,
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                lat.len(),
                took.as_secs_f64()
            );
        }
        Cmd::Fill {
            total,
            batch,
            concurrency,
        } => {
            let sent = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..concurrency {
                let (sent, addr) = (sent.clone(), addr.clone());
                tasks.push(tokio::spawn(async move {
                    let mut s = connect(&addr).await;
                    let mut seq = 0;
                    loop {
                        let before = sent.fetch_add(batch as u64, Ordering::Relaxed);
                        if before >= total {
                            return;
                        }
                        let n = (total - before).min(batch as u64) as usize;
                        let (status, body) = send(
                            &mut s,
                            &addr,
                            "POST",
                            "/events",
                            Some(body_for(n, w, seq, 16)),
                        )
                        .await;
                        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
                        seq += 1;
                    }
                }));
            }
            for t in tasks {
                t.await.expect("worker");
            }
            let took = start.elapsed().as_secs_f64();
            println!(
                "fill: {total} events in {took:.1} s ({:.0} events/s)",
                total as f64 / took
            );
        }
        Cmd::Get {
            path,
            concurrency,
            seconds,
        } => {
            let senders = Arc::new(futures_join(concurrency, &addr).await);
            let addr2 = addr.clone();
            let path2 = path.clone();
            let (lat, took) = run_timed(concurrency, seconds, move |w, _| {
                let (senders, addr, path) = (senders.clone(), addr2.clone(), path2.clone());
                async move {
                    let mut s = senders[w].lock().await;
                    let (status, _) = send(&mut s, &addr, "GET", &path, None).await;
                    assert_eq!(status, 200);
                }
            })
            .await;
            println!(
                "get {path} concurrency={concurrency}: {:.0} requests/s, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
                lat.len() as f64 / took.as_secs_f64(),
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                percentile(&lat, 1.0)
            );
        }
        Cmd::Rss => {
            let mut s = connect(&addr).await;
            let (_, body) = send(&mut s, &addr, "GET", "/metrics", None).await;
            let text = String::from_utf8_lossy(&body);
            let rss = text
                .lines()
                .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            println!("rss: {:.1} MiB", rss / (1024.0 * 1024.0));
        }
    }
}

async fn futures_join(n: usize, addr: &str) -> Vec<tokio::sync::Mutex<Sender>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(tokio::sync::Mutex::new(connect(addr).await));
    }
    out
}
