//! `collector get URL`: a minimal HTTP/1.0 GET that prints the response body.
//!
//! The collector image holds nothing but the binary, so a pod running it has no shell, curl or
//! wget. This lets `kubectl exec` show what a pod sees: a Service by its short name (`hello`,
//! resolved through the pod's DNS search path by the C library) or its FQDN.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// How long connecting and reading may each take before the request fails.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A URL split into what the request needs.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// Host name or address, as written.
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path and query, `/` when absent.
    pub path: String,
}

/// Why a URL cannot be fetched.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Only plain `http://` is spoken.
    #[error("{0}: only http:// URLs are supported")]
    Scheme(String),
    /// No host between `http://` and the path.
    #[error("{0}: no host")]
    NoHost(String),
    /// The port is not a number from 1 to 65535.
    #[error("{0}: bad port")]
    Port(String),
}

/// Splits `http://host[:port][/path]`.
pub fn parse_url(url: &str) -> Result<Target, UrlError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| UrlError::Scheme(url.into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| UrlError::Port(url.into()))?,
        ),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(UrlError::NoHost(url.into()));
    }
    Ok(Target {
        host: host.into(),
        port,
        path: path.into(),
    })
}

fn fetch(t: &Target) -> std::io::Result<Vec<u8>> {
    let mut last = None;
    for addr in (t.host.as_str(), t.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(mut s) => {
                s.set_read_timeout(Some(TIMEOUT))?;
                let request = format!("GET {} HTTP/1.0\r\nHost: {}\r\n\r\n", t.path, t.host);
                s.write_all(request.as_bytes())?;
                let mut out = Vec::new();
                s.read_to_end(&mut out)?;
                return Ok(out);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("name resolved to no address")))
}

/// Runs `collector get URL`: the body on stdout; exit 0 for a 2xx answer, 1 otherwise.
pub fn main(args: &[String]) -> ExitCode {
    let [url] = args else {
        eprintln!("usage: collector get http://HOST[:PORT]/PATH");
        return ExitCode::from(2);
    };
    let target = match parse_url(url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("collector get: {e}");
            return ExitCode::from(2);
        }
    };
    let response = match fetch(&target) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("collector get {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let split = response.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match split {
        Some(i) => (&response[..i], &response[i + 4..]),
        None => (&response[..], &[][..]),
    };
    let status = String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or_default())
        .trim()
        .to_string();
    let _ = std::io::stdout().write_all(body);
    let ok = status
        .split_whitespace()
        .nth(1)
        .is_some_and(|c| c.starts_with('2'));
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("collector get {url}: {status}");
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        let t = |host: &str, port, path: &str| {
            Ok(Target {
                host: host.into(),
                port,
                path: path.into(),
            })
        };
        let cases = [
            ("http://hello", t("hello", 80, "/")),
            ("http://hello/events", t("hello", 80, "/events")),
            (
                "http://hello.default.svc.cluster.local:8080/events?limit=1",
                t("hello.default.svc.cluster.local", 8080, "/events?limit=1"),
            ),
            ("http://10.96.0.1:80/", t("10.96.0.1", 80, "/")),
            (
                "https://hello",
                Err(UrlError::Scheme("https://hello".into())),
            ),
            ("http:///x", Err(UrlError::NoHost("http:///x".into()))),
            ("http://h:0/", Err(UrlError::Port("http://h:0/".into()))),
            (
                "http://h:99999/",
                Err(UrlError::Port("http://h:99999/".into())),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(parse_url(url), want, "{url}");
        }
    }
}
