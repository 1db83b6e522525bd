//! `nodes/{name}/proxy/{path}`: a request passed to the node's kubelet endpoint as it
//! is (method, path, query, body), its answer streamed back, as kube-apiserver's node
//! proxy. It is how Prometheus' standard Kubernetes configuration scrapes every node's
//! `/metrics` and `/metrics/cadvisor` through the API server (decision 0033). RBAC has
//! already allowed `nodes/proxy` with the method's verb; the node sees the API server's
//! own identity (`nodeclient`), never the caller's credentials.

use axum::body::Body;
use axum::http::{header, request};
use axum::response::Response;

use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::request::Target;

/// Headers passed to the node; credentials and hop-by-hop headers are not.
const PASSED: [header::HeaderName; 3] = [header::ACCEPT, header::CONTENT_TYPE, header::USER_AGENT];
/// Headers of the node's answer passed back.
const RETURNED: [header::HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CACHE_CONTROL,
];

/// The node name and the path on the node of `/api/v1/nodes/{name}/proxy[/{path}]`
/// (`/` when none is given), or `None` for any other path.
pub fn parse(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/nodes/")?;
    let (name, rest) = rest.split_once('/')?;
    let on_node = match rest.strip_prefix("proxy")? {
        "" => "/",
        tail if tail.starts_with('/') => tail,
        _ => return None,
    };
    (!name.is_empty()).then_some((name, on_node))
}

/// Passes the request to the node and its answer back.
pub async fn proxy(
    api: &Api,
    node: &str,
    on_node: &str,
    parts: request::Parts,
    body: bytes::Bytes,
) -> Result<Response> {
    // The node must exist: a 404 in the Node's own words otherwise.
    let nodes = api
        .registry
        .get("", "v1", "nodes")
        .ok_or_else(|| ApiError::Internal("no nodes resource".into()))?;
    api.get(&Target {
        resource: nodes,
        namespace: None,
        name: Some(node.to_owned()),
        subresource: None,
    })?;
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::ServiceUnavailable(format!("error trying to reach service: {e}"))
    };
    let mut conn = api
        .nodes
        .connect(api, node)
        .await
        .map_err(|e| unreachable(&e))?;
    let uri = match parts.uri.query() {
        Some(q) => format!("{on_node}?{q}"),
        None => on_node.to_owned(),
    };
    let mut req = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .header(header::HOST, &conn.authority);
    for h in &PASSED {
        for v in parts.headers.get_all(h) {
            req = req.header(h, v);
        }
    }
    let req = req
        .body(Body::from(body))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let resp = conn
        .sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(&e))?;
    let mut out = Response::builder().status(resp.status());
    for h in &RETURNED {
        if let Some(v) = resp.headers().get(h) {
            out = out.header(h, v);
        }
    }
    out.extension(crate::negotiate::AsBuilt)
        .body(Body::new(resp.into_body()))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_proxy_paths() {
        for (path, want) in [
            ("/api/v1/nodes/n1/proxy/metrics", Some(("n1", "/metrics"))),
            (
                "/api/v1/nodes/n1/proxy/metrics/cadvisor",
                Some(("n1", "/metrics/cadvisor")),
            ),
            ("/api/v1/nodes/n1/proxy", Some(("n1", "/"))),
            ("/api/v1/nodes/n1/proxy/", Some(("n1", "/"))),
            ("/api/v1/nodes/n1/proxyx", None),
            ("/api/v1/nodes/n1/status", None),
            ("/api/v1/nodes/n1", None),
            ("/api/v1/nodes//proxy/x", None),
            ("/api/v1/namespaces/d/pods/p/proxy/x", None),
        ] {
            assert_eq!(parse(path), want, "{path}");
        }
    }
}
