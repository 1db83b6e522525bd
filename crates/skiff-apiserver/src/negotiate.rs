//! Response content negotiation: JSON or Kubernetes protobuf, as kube-apiserver's
//! `NegotiateOutputMediaType` picks from the client's Accept header (decision 0026).
//!
//! The server builds every answer as JSON; when the client prefers protobuf, the finished
//! JSON response is encoded by `skiff-protobuf` at the edge, so no handler knows about it.
//! Kinds without a protobuf form (custom resources, aggregated discovery, metrics) stay JSON
//! when the client also accepts JSON, and are refused with 406 otherwise, as upstream.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;

/// What the client's Accept header asks the server to answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// JSON (or nothing the server knows of, where JSON has always been the answer).
    Json,
    /// Protobuf first, with JSON acceptable as a fallback for kinds protobuf cannot carry.
    Protobuf { json_fallback: bool },
}

/// Marks a response that must reach the client as built: a watch stream (framed for its
/// encoding already) or a body proxied from an extension API server.
#[derive(Clone, Copy)]
pub struct AsBuilt;

/// The serializer the Accept header picks. Media ranges are tried by decreasing `q` (in
/// header order among equals) as goautoneg sorts them; protobuf counts only as the plain
/// object type (a `;as=Table` or `;as=PartialObjectMetadata` protobuf is not served, so the
/// next range decides), and `*/*` or `application/*` take the server's default, JSON.
pub fn output(accept: &str) -> Output {
    let mut ranges: Vec<(f32, &str, bool)> = Vec::new();
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let (mut q, mut converted) = (1.0f32, false);
        for param in parts {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => q = value.trim().parse().unwrap_or(0.0),
                "as" => converted = true,
                _ => {}
            }
        }
        if q > 0.0 && !media.is_empty() {
            ranges.push((q, media, converted));
        }
    }
    // A stable sort keeps header order among equal weights.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    let is_json = |media: &str, converted: bool| {
        !converted
            && [
                "application/json",
                "application/yaml",
                "*/*",
                "application/*",
            ]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
    };
    let first = ranges.iter().position(|(_, media, converted)| {
        is_json(media, *converted)
            || (!converted && media.eq_ignore_ascii_case(skiff_protobuf::CONTENT_TYPE))
    });
    match first {
        Some(i)
            if ranges[i]
                .1
                .eq_ignore_ascii_case(skiff_protobuf::CONTENT_TYPE) =>
        {
            Output::Protobuf {
                json_fallback: ranges[i + 1..].iter().any(|(_, m, c)| is_json(m, *c)),
            }
        }
        _ => Output::Json,
    }
}

/// Upstream's answer when the negotiated serializer cannot encode the kind.
pub fn not_acceptable() -> ApiError {
    ApiError::NotAcceptable(
        "only the following media types are accepted: application/json, application/yaml".into(),
    )
}

/// Re-encodes a finished JSON response as protobuf when the client asked for it and the
/// object has a protobuf form; otherwise the JSON stays (or 406 when JSON is not acceptable).
pub async fn encode_response(output: Output, resp: Response) -> Response {
    let Output::Protobuf { json_fallback } = output else {
        return resp;
    };
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    if !is_json || resp.extensions().get::<AsBuilt>().is_some() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::Internal("reading the response to encode it".into()).into_response();
    };
    let value: Option<Value> = serde_json::from_slice(&bytes).ok();
    let encoded = value.as_ref().and_then(|v| {
        let api_version = v.get("apiVersion")?.as_str()?;
        let kind = v.get("kind")?.as_str()?;
        if !skiff_protobuf::encodes(api_version, kind) {
            return None;
        }
        match skiff_protobuf::encode(v) {
            Ok(encoded) => Some(encoded),
            Err(e) => {
                // A stored object the schema cannot carry is a server defect: say so, and
                // answer in JSON rather than nothing.
                tracing::error!(error = %e, api_version, kind, "protobuf encoding failed");
                None
            }
        }
    });
    match encoded {
        Some(encoded) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(skiff_protobuf::CONTENT_TYPE),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(encoded))
        }
        None if json_fallback || parts.status == StatusCode::NOT_ACCEPTABLE => {
            Response::from_parts(parts, Body::from(bytes))
        }
        None => not_acceptable().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_the_serializer_as_upstream() {
        let pb = |json_fallback| Output::Protobuf { json_fallback };
        let cases = [
            ("", Output::Json),
            ("application/json", Output::Json),
            ("*/*", Output::Json),
            ("application/vnd.kubernetes.protobuf", pb(false)),
            ("application/vnd.kubernetes.protobuf,application/json", pb(true)),
            ("application/vnd.kubernetes.protobuf, */*", pb(true)),
            ("application/json,application/vnd.kubernetes.protobuf", Output::Json),
            // Weights outrank order.
            ("application/json;q=0.5,application/vnd.kubernetes.protobuf", pb(true)),
            ("application/vnd.kubernetes.protobuf;q=0, application/json", Output::Json),
            // A converted protobuf (Table, PartialObjectMetadata) is not served: the next
            // range decides.
            (
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
                Output::Json,
            ),
            ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", Output::Json),
            ("text/html, application/vnd.kubernetes.protobuf", pb(false)),
            ("APPLICATION/VND.KUBERNETES.PROTOBUF", pb(false)),
        ];
        for (accept, want) in cases {
            assert_eq!(output(accept), want, "{accept:?}");
        }
    }

    fn json(code: StatusCode, value: &Value) -> Response {
        crate::http::json_response(code, value)
    }

    async fn body(resp: Response) -> (StatusCode, String, Vec<u8>) {
        let code = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (code, ct, bytes.to_vec())
    }

    #[tokio::test]
    async fn built_in_kinds_are_encoded_and_others_fall_back_or_are_refused() {
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"k": "v"}});
        let widget = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Widget"});
        let pb = Output::Protobuf {
            json_fallback: true,
        };
        let (code, ct, bytes) =
            body(encode_response(pb, json(StatusCode::CREATED, &cm)).await).await;
        assert_eq!(
            (code, ct.as_str()),
            (StatusCode::CREATED, skiff_protobuf::CONTENT_TYPE)
        );
        assert_eq!(skiff_protobuf::decode(&bytes).expect("decode"), cm);

        let (_, ct, _) = body(encode_response(pb, json(StatusCode::OK, &widget)).await).await;
        assert_eq!(ct, "application/json");

        let only = Output::Protobuf {
            json_fallback: false,
        };
        let (code, _, _) = body(encode_response(only, json(StatusCode::OK, &widget)).await).await;
        assert_eq!(code, StatusCode::NOT_ACCEPTABLE);

        // Errors are Status objects, encoded like any other.
        let resp = ApiError::NoRoute.into_response();
        let (code, ct, bytes) = body(encode_response(only, resp).await).await;
        assert_eq!(
            (code, ct.as_str()),
            (StatusCode::NOT_FOUND, skiff_protobuf::CONTENT_TYPE)
        );
        let status = skiff_protobuf::decode(&bytes).expect("decode");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 404);

        let (_, ct, _) = body(encode_response(Output::Json, json(StatusCode::OK, &cm)).await).await;
        assert_eq!(ct, "application/json");
    }
}
