//! A minimal client of the OCI distribution API: `GET` of manifests and blobs, with
//! Docker's token auth, Basic auth and redirects; everything a pull needs and nothing else.
//!
//! HTTPS always, except for registries Docker also treats as insecure: loopback ones
//! (`127.0.0.0/8`, `::1`, `localhost`) and those listed in [`INSECURE_ENV`].

use super::auth::{parse_challenge, Challenge, Credentials};
use super::pull::{Error, Result};
use super::reference::Reference;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

/// Comma-separated `host:port` list of registries spoken to over plain HTTP.
pub const INSECURE_ENV: &str = "SKIFF_INSECURE_REGISTRIES";

/// Media types of everything a manifest request may answer, most wanted first.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// A registry name that does not resolve in this long is reported unreachable. The pull
/// is retried with back-off anyway, so failing fast costs a retry, while waiting out the
/// resolver (several seconds per nameserver) leaves the pod showing nothing meanwhile.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
/// TCP connects slower than this fail (TLS and the response head have their own limit).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Response heads slower than this mean the registry is not answering.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// A body that sends nothing for this long is abandoned.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Manifests and indexes are small; a larger one is refused rather than buffered.
const MAX_MANIFEST: usize = 4 << 20;
const MAX_REDIRECTS: usize = 5;

/// Which registries may be reached over plain HTTP; built once from the environment.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// `host:port` entries from [`INSECURE_ENV`].
    pub insecure: Vec<String>,
}

impl RegistryConfig {
    /// Reads [`INSECURE_ENV`].
    pub fn from_env() -> Self {
        let insecure = std::env::var(INSECURE_ENV)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        Self { insecure }
    }

    /// `http` for loopback and listed registries, `https` for every other one.
    pub fn scheme(&self, registry: &str) -> &'static str {
        let registry = registry.to_lowercase();
        if is_loopback(&registry) || self.insecure.contains(&registry) {
            "http"
        } else {
            "https"
        }
    }
}

/// Whether a `host[:port]` is a loopback address or `localhost`.
fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(crate) type HttpClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<TimedResolver>>, Empty<Bytes>>;

/// The system resolver (getaddrinfo, as Docker's), bounded by [`RESOLVE_TIMEOUT`].
#[derive(Clone)]
pub(crate) struct TimedResolver(GaiResolver);

impl tower_service::Service<Name> for TimedResolver {
    type Response = <GaiResolver as tower_service::Service<Name>>::Response;
    type Error = std::io::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().to_string();
        let lookup = self.0.call(name);
        Box::pin(async move {
            tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "dial tcp: lookup {host}: no answer in {}s",
                            RESOLVE_TIMEOUT.as_secs()
                        ),
                    ))
                })
        })
    }
}

/// Builds the HTTP(S) client: rustls with ring and the system's CA certificates, as the
/// rest of skiff uses (no OpenSSL).
pub(crate) fn http_client() -> Result<HttpClient> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(b) => b,
        Err(e) => {
            // Without roots HTTPS pulls fail with a certificate error naming the cause;
            // plain-HTTP registries still work.
            tracing::warn!(error = %e, "no CA certificates found; HTTPS registries will fail");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Tls(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let mut http = HttpConnector::new_with_resolver(TimedResolver(GaiResolver::new()));
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let connector = builder.https_or_http().enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// A registry session for one repository: remembers the `Authorization` that worked, so
/// the token is fetched once per pull rather than once per blob.
pub(crate) struct Registry {
    http: HttpClient,
    base: String,
    reference: Reference,
    credentials: Option<Credentials>,
    authorization: Option<String>,
}

/// A fetched manifest (or index).
pub(crate) struct ManifestBytes {
    /// `Content-Type`, or the document's own `mediaType` when the header is generic.
    pub(crate) media_type: String,
    /// The document exactly as sent (its sha256 is its digest).
    pub(crate) body: Bytes,
}

impl Registry {
    pub(crate) fn new(
        http: HttpClient,
        config: &RegistryConfig,
        reference: &Reference,
        credentials: Option<Credentials>,
    ) -> Self {
        let base = format!(
            "{}://{}/v2/{}",
            config.scheme(&reference.registry),
            reference.api_host(),
            reference.repository
        );
        Self {
            http,
            base,
            reference: reference.clone(),
            credentials,
            authorization: None,
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>`.
    pub(crate) async fn manifest(&mut self, reference: &str) -> Result<ManifestBytes> {
        let url = format!("{}/manifests/{reference}", self.base);
        let resp = self.get(&url, Some(MANIFEST_ACCEPT)).await?;
        let header_type = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_string())
            .unwrap_or_default();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_MANIFEST)
            .collect()
            .await
            .map_err(|e| Error::Transfer {
                url: url.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        let media_type = if header_type.contains("vnd.") {
            header_type
        } else {
            #[derive(serde::Deserialize)]
            struct Sniff {
                #[serde(default, rename = "mediaType")]
                media_type: String,
            }
            serde_json::from_slice::<Sniff>(&body)
                .map(|s| s.media_type)
                .unwrap_or(header_type)
        };
        Ok(ManifestBytes { media_type, body })
    }

    /// `GET /v2/<repo>/blobs/<digest>`: the response, for the caller to stream and verify.
    pub(crate) async fn blob(&mut self, digest: &str) -> Result<Response<Incoming>> {
        let url = format!("{}/blobs/{digest}", self.base);
        self.get(&url, None).await
    }

    /// A `GET` that answers one auth challenge and follows redirects; any final status
    /// but 200 becomes an [`Error`] carrying the registry's own message.
    async fn get(&mut self, url: &str, accept: Option<&str>) -> Result<Response<Incoming>> {
        let mut url = url.to_string();
        let mut authorized = false;
        let mut redirects = 0;
        // Credentials go only to the registry; a redirect elsewhere (a CDN for blobs)
        // carries a signed URL instead.
        let mut to_registry = true;
        loop {
            let auth = self.authorization.clone().filter(|_| to_registry);
            let resp = self.send(&url, accept, auth.as_deref()).await?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && to_registry && !authorized {
                let challenge = resp
                    .headers()
                    .get(hyper::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                if let Some(challenge) = challenge {
                    self.authorization = Some(self.authorize(challenge).await?);
                    authorized = true;
                    continue;
                }
            }
            if status.is_redirection() {
                let location = resp
                    .headers()
                    .get(hyper::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                if let Some(location) = location {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(Error::Transfer {
                            url,
                            message: "too many redirects".into(),
                        });
                    }
                    let next = resolve(&url, &location);
                    to_registry = to_registry && origin(&next) == origin(&url);
                    url = next;
                    continue;
                }
            }
            if status == StatusCode::OK {
                return Ok(resp);
            }
            return Err(self.status_error(&url, status, resp).await);
        }
    }

    async fn send(
        &self,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Response<Incoming>> {
        let mut req = Request::get(url).header(hyper::header::USER_AGENT, "skiff");
        if let Some(a) = accept {
            req = req.header(hyper::header::ACCEPT, a);
        }
        if let Some(a) = authorization {
            req = req.header(hyper::header::AUTHORIZATION, a);
        }
        let req = req.body(Empty::new()).map_err(|e| Error::Transfer {
            url: url.to_string(),
            message: e.to_string(),
        })?;
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.http.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(Error::Unreachable {
                url: url.to_string(),
                message: error_chain(&e),
            }),
            Err(_) => Err(Error::Unreachable {
                url: url.to_string(),
                message: format!("no response in {}s", RESPONSE_TIMEOUT.as_secs()),
            }),
        }
    }

    /// Answers a challenge: the `Authorization` value to retry with.
    async fn authorize(&self, challenge: Challenge) -> Result<String> {
        let (realm, service, scope) = match challenge {
            Challenge::Basic => {
                return self
                    .credentials
                    .as_ref()
                    .map(Credentials::basic_header)
                    .ok_or_else(|| Error::Unauthorized {
                        registry: self.reference.registry.clone(),
                        message: "the registry wants a user name and password and the pod \
                                  has no imagePullSecret for it"
                            .into(),
                    });
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => (realm, service, scope),
        };
        let scope =
            scope.unwrap_or_else(|| format!("repository:{}:pull", self.reference.repository));
        let mut url = format!("{realm}?scope={}", query_escape(&scope));
        if let Some(s) = service {
            url.push_str(&format!("&service={}", query_escape(&s)));
        }
        let basic = self.credentials.as_ref().map(Credentials::basic_header);
        let resp = self.send(&url, None, basic.as_deref()).await?;
        let status = resp.status();
        if status != StatusCode::OK {
            let message = match self.status_error(&url, status, resp).await {
                Error::Registry { message, .. } => message,
                other => other.to_string(),
            };
            return Err(Error::Unauthorized {
                registry: self.reference.registry.clone(),
                message: format!("token request answered {status}: {message}"),
            });
        }
        #[derive(serde::Deserialize)]
        struct Token {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let body = http_body_util::Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| Error::Transfer {
                url: url.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        let t: Token = serde_json::from_slice(&body).map_err(|e| Error::Unauthorized {
            registry: self.reference.registry.clone(),
            message: format!("bad token response: {e}"),
        })?;
        let token = if t.token.is_empty() {
            t.access_token
        } else {
            t.token
        };
        if token.is_empty() {
            return Err(Error::Unauthorized {
                registry: self.reference.registry.clone(),
                message: "token response holds no token".into(),
            });
        }
        Ok(format!("Bearer {token}"))
    }

    /// Turns a non-200 answer into an error with the registry's message (the OCI error
    /// body `{"errors":[{"code","message"}]}` when there is one).
    async fn status_error(&self, url: &str, status: StatusCode, resp: Response<Incoming>) -> Error {
        let body = http_body_util::Limited::new(resp.into_body(), 64 << 10)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        #[derive(serde::Deserialize)]
        struct Errors {
            errors: Vec<OciError>,
        }
        #[derive(serde::Deserialize)]
        struct OciError {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let message = match serde_json::from_slice::<Errors>(&body) {
            Ok(e) if !e.errors.is_empty() => e
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            _ => String::from_utf8_lossy(&body[..body.len().min(512)])
                .trim()
                .to_string(),
        };
        match status {
            StatusCode::NOT_FOUND => Error::NotFound {
                reference: self.reference.to_string(),
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Unauthorized {
                registry: self.reference.registry.clone(),
                message: format!("{status}: {message}"),
            },
            _ => Error::Registry {
                url: url.to_string(),
                status: status.as_u16(),
                message,
            },
        }
    }
}

/// `scheme://host[:port]` of a URL, to tell whether a redirect leaves the registry.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// A `Location` value made absolute against the URL that answered it.
fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{}{location}", origin(base))
    } else {
        let dir = base.rsplit_once('/').map_or(base, |(d, _)| d);
        format!("{dir}/{location}")
    }
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The error and its causes on one line: hyper's top-level message alone ("client error
/// (Connect)") does not say what failed.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_listed_registries_are_spoken_to_over_http() {
        let config = RegistryConfig {
            insecure: vec!["reg.lan:5000".into()],
        };
        assert_eq!(config.scheme("127.0.0.1:5000"), "http");
        assert_eq!(config.scheme("127.3.4.5"), "http");
        assert_eq!(config.scheme("localhost:5000"), "http");
        assert_eq!(config.scheme("[::1]:5000"), "http");
        assert_eq!(config.scheme("reg.lan:5000"), "http");
        assert_eq!(config.scheme("reg.lan:5001"), "https");
        assert_eq!(config.scheme("docker.io"), "https");
        assert_eq!(config.scheme("10.0.0.1:5000"), "https");
    }

    #[test]
    fn redirects_resolve_against_the_answering_url_and_origin_tells_hosts_apart() {
        let base = "http://127.0.0.1:5000/v2/a/blobs/sha256:x";
        assert_eq!(
            resolve(base, "/v2/a/blobs/y"),
            "http://127.0.0.1:5000/v2/a/blobs/y"
        );
        assert_eq!(
            resolve(base, "https://cdn.io/b?s=1"),
            "https://cdn.io/b?s=1"
        );
        assert_eq!(origin(base), "http://127.0.0.1:5000");
        assert_ne!(origin("https://cdn.io/b?s=1"), origin(base));
        assert_eq!(
            query_escape("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }
}
