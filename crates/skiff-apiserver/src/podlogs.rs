//! `pods/{name}/log`: proxied to the log endpoint of the pod's node (its InternalIP and
//! `daemonEndpoints.kubeletEndpoint.Port`, over `nodeclient`'s HTTPS), streamed back as
//! `text/plain`.

use axum::body::Body;
use axum::response::Response;
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::request::{Params, Target};

/// Query parameters the kubelet's endpoint understands, passed through.
const PASSED: [&str; 7] = [
    "follow",
    "previous",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "limitBytes",
];

/// Serves `GET .../pods/{name}/log` by asking the node the pod runs on.
pub async fn pod_log(api: &Api, t: &Target, p: &Params) -> Result<Response> {
    validate(t.name()?, p)?;
    let pod = api.get(&Target {
        subresource: None,
        ..t.clone()
    })?;
    let name = t.name()?;
    let container = match p.get("container") {
        Some(c) => c.to_owned(),
        None => default_container(&pod, name)?,
    };
    let waiting = || {
        ApiError::BadRequest(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        ))
    };
    let node_name = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty());
    let Some(node_name) = node_name else {
        return Err(waiting());
    };
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for k in PASSED {
            if let Some(v) = p.get(k) {
                query.append_pair(k, v);
            }
        }
        query.finish()
    };
    let ns = t.namespace.as_deref().unwrap_or("default");
    let path = format!("/containerLogs/{ns}/{name}/{container}?{query}");
    let resp = api.nodes.get(api, node_name, &path).await.map_err(|e| {
        ApiError::ServiceUnavailable(format!("cannot reach node {node_name} for logs: {e}"))
    })?;
    if !resp.status().is_success() {
        let body = axum::body::to_bytes(Body::new(resp.into_body()), 64 << 10)
            .await
            .unwrap_or_default();
        return Err(ApiError::BadRequest(
            String::from_utf8_lossy(&body).trim().to_owned(),
        ));
    }
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::new(resp.into_body()))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Where the node's kubelet endpoint listens: its InternalIP (bracketed when IPv6) and
/// `daemonEndpoints.kubeletEndpoint.Port`. `pods/log` and the streaming subresources
/// reach the node there.
pub(crate) fn node_endpoint(api: &Api, node_name: &str) -> Result<(String, u64)> {
    let nodes = api
        .registry
        .get("", "v1", "nodes")
        .ok_or_else(|| ApiError::Internal("no nodes resource".into()))?;
    let node = api.get(&Target {
        resource: nodes,
        namespace: None,
        name: Some(node_name.to_owned()),
        subresource: None,
    })?;
    let address = node["status"]["addresses"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|a| a["type"] == "InternalIP")
                .and_then(|a| a["address"].as_str())
        })
        .ok_or_else(|| ApiError::BadRequest(format!("node {node_name} has no InternalIP")))?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap_or(10250);
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_owned()
    };
    Ok((host, port))
}

pub(crate) fn default_container(pod: &Value, name: &str) -> Result<String> {
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(c) =
        pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"].as_str()
    {
        return Ok(c.to_owned());
    }
    match containers.as_slice() {
        [one] => Ok(one["name"].as_str().unwrap_or_default().to_owned()),
        _ => {
            let names: Vec<&str> = containers
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect();
            Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )))
        }
    }
}

/// `ValidatePodLogOptions`: numbers the node would otherwise have to guard against.
fn validate(name: &str, p: &Params) -> Result<()> {
    let mut causes = Vec::new();
    let mut check = |field: &str, min: i64, message: &str| -> Result<()> {
        if let Some(v) = p.int(field)? {
            if v < min {
                causes.push(crate::error::Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {v}: {message}"),
                    field: field.into(),
                });
            }
        }
        Ok(())
    };
    check("tailLines", 0, "must be greater than or equal to 0")?;
    check("limitBytes", 1, "must be greater than 0")?;
    check("sinceSeconds", 1, "must be greater than 0")?;
    if p.get("sinceSeconds").is_some() && p.get("sinceTime").is_some() {
        causes.push(crate::error::Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
                .into(),
            field: "".into(),
        });
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_kind("", "PodLogOptions", name, causes))
}
