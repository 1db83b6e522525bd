//! `pods/exec`, `pods/attach` and `pods/portforward`: checked as upstream's pod registry
//! does (the container exists, the pod has a node), then the upgrade (WebSocket or SPDY) is
//! passed through to the node's kubelet endpoint over `nodeclient` — as `pods/log` — and the two
//! upgraded connections are copied into each other. The protocols themselves are spoken
//! by the node (`skiff-node`'s `streaming.rs`, on `skiff-stream`).

use axum::body::Body;
use axum::http::{header, request, HeaderName, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::podlogs::default_container;
use crate::request::Target;

/// The subresources served here.
pub fn is_streaming(t: &Target) -> bool {
    t.resource.kind == "Pod"
        && t.resource.group.is_empty()
        && t.name.is_some()
        && matches!(
            t.subresource.as_deref(),
            Some("exec" | "attach" | "portforward")
        )
}

/// Headers of the upgrade handshake, passed to the node and back.
const PASSED: [HeaderName; 6] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_PROTOCOL,
    HeaderName::from_static("x-stream-protocol-version"),
];
const RETURNED: [HeaderName; 5] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_ACCEPT,
    header::SEC_WEBSOCKET_PROTOCOL,
    HeaderName::from_static("x-stream-protocol-version"),
];

/// The container a request names, as upstream's `streamLocation`: the `container`
/// parameter, else the only container; it must be one of the pod's.
fn container_of(pod: &Value, name: &str, query: &[(String, String)]) -> Result<String> {
    let given = query
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.clone())
        .filter(|c| !c.is_empty());
    let container = match given {
        Some(c) => c,
        None => default_container(pod, name)?,
    };
    let known = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| pod["spec"][k].as_array())
        .flatten()
        .any(|c| c["name"] == container.as_str());
    if !known {
        return Err(ApiError::BadRequest(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    Ok(container)
}

/// Serves an upgrade request for one of the streaming subresources.
pub async fn proxy(api: &Api, t: &Target, mut parts: request::Parts) -> Result<Response> {
    let name = t.name()?.to_owned();
    let sub = t.subresource.clone().unwrap_or_default();
    let pod = api.get(&Target {
        subresource: None,
        ..t.clone()
    })?;
    let query = parts.uri.query().unwrap_or("").to_owned();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let ns = t.namespace.as_deref().unwrap_or("default");
    let path = match sub.as_str() {
        "portforward" => format!("/portForward/{ns}/{name}"),
        other => {
            let container = container_of(&pod, &name, &pairs)?;
            format!("/{other}/{ns}/{name}/{container}")
        }
    };
    let node_name = pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("pod {name} does not have a host assigned")))?;
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::ServiceUnavailable(format!("error dialing backend: {e}"))
    };
    let crate::nodeclient::Connection {
        mut sender,
        authority,
    } = api
        .nodes
        .connect(api, node_name)
        .await
        .map_err(|e| unreachable(&e))?;
    let mut req = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(format!("{path}?{query}"))
        .header(header::HOST, authority);
    for h in &PASSED {
        for v in parts.headers.get_all(h) {
            req = req.header(h, v);
        }
    }
    let req = req
        .body(Body::empty())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut node_resp = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(&e))?;
    if node_resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The node's refusal (container not found, protocol not supported) goes to the
        // client as it is, as upstream's proxy does.
        let status = node_resp.status();
        let content_type = node_resp.headers().get(header::CONTENT_TYPE).cloned();
        let mut resp = Response::builder().status(status);
        if let Some(ct) = content_type {
            resp = resp.header(header::CONTENT_TYPE, ct);
        }
        return resp
            .body(Body::new(node_resp.into_body()))
            .map_err(|e| ApiError::Internal(e.to_string()));
    }
    let client_upgrade = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::BadRequest("the connection cannot be upgraded".into()))?;
    let node_upgrade = hyper::upgrade::on(&mut node_resp);
    let mut resp = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for h in &RETURNED {
        for v in node_resp.headers().get_all(h) {
            resp = resp.header(h, v);
        }
    }
    tokio::spawn(async move {
        let (client, node) = match tokio::join!(client_upgrade, node_upgrade) {
            (Ok(c), Ok(n)) => (c, n),
            (c, n) => {
                tracing::debug!(client = c.is_ok(), node = n.is_ok(), "upgrade failed");
                return;
            }
        };
        let (mut client, mut node) = (TokioIo::new(client), TokioIo::new(node));
        // One bounded buffer per direction, 64 KiB rather than tokio's default 8 KiB so
        // bulk port-forwarding moves in fewer, larger writes: a slow side stalls the other
        // instead of growing memory. Either side closing ends both.
        let _ =
            tokio::io::copy_bidirectional_with_sizes(&mut client, &mut node, 64 << 10, 64 << 10)
                .await;
    });
    resp.body(Body::empty())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_choice_as_upstream() {
        let pod = json!({"spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "i"}],
        }});
        let q = |c: &str| vec![("container".to_string(), c.to_string())];
        assert_eq!(container_of(&pod, "p", &q("b")).unwrap(), "b");
        assert_eq!(container_of(&pod, "p", &q("i")).unwrap(), "i");
        let err = container_of(&pod, "p", &q("x")).unwrap_err();
        assert_eq!(err.to_string(), "container x is not valid for pod p");
        assert!(container_of(&pod, "p", &[]).is_err());
        let one = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(container_of(&one, "p", &[]).unwrap(), "only");
    }
}
