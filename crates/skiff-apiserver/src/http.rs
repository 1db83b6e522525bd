//! The HTTP edge: authentication, content negotiation and routing of every request to
//! discovery, OpenAPI or the generic resource handlers. Errors become `Status` bodies here.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use skiff_apimachinery::user::UserInfo;

use crate::error::{ApiError, Result};
use crate::handler::{resource_version_of, Api};
use crate::options::{self, DeleteOptions};
use crate::request::{Params, Target};
use crate::table::{self, TableOptions};
use crate::{discovery, subresources, watch};

/// Largest request body accepted: upstream's `MaxRequestBodyBytes` (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// How much of an oversized body is read (and dropped) before answering 413, so the client
/// sees the answer rather than a reset of a connection it is still writing to. Beyond this,
/// the connection is closed after the answer.
const MAX_DRAINED: usize = 256 * 1024 * 1024;

/// The state every request sees.
pub struct Server {
    pub api: Arc<Api>,
    pub openapi: crate::openapi::OpenApi,
    /// Bearer tokens that authenticate as the cluster admin.
    pub admin_tokens: Vec<String>,
    /// The address clients reach the server at, for `/api`'s serverAddressByClientCIDRs.
    pub address: String,
}

/// The router serving the whole API.
pub fn router(server: Arc<Server>) -> Router {
    Router::new().fallback(dispatch).with_state(server)
}

/// A JSON response as upstream writes it: `json.Encoder` output, so one trailing newline.
pub fn json_response(code: StatusCode, value: &Value) -> Response {
    json_response_as(code, "application/json", value)
}

/// [`json_response`] under another JSON media type (aggregated discovery's).
fn json_response_as(code: StatusCode, content_type: &str, value: &Value) -> Response {
    let mut body = serde_json::to_vec(value).expect("Value serializes");
    body.push(b'\n');
    let content_type =
        header::HeaderValue::from_str(content_type).expect("media types are header-safe");
    (code, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The identity a connection's verified TLS client certificate names, which serve.rs puts
/// on every request of that connection (none without a certificate).
#[derive(Clone, Default)]
pub struct PeerIdentity(pub Option<Arc<UserInfo>>);

/// Who makes the request: upstream's authenticator union. A client certificate the TLS
/// handshake verified wins; then a bearer token, which must be valid when given (a bad one
/// is a 401, never anonymous); no credentials at all is `system:anonymous`.
///
/// The identity returned is the one the request acts as: its `Impersonate-*` headers, when
/// the authenticated user may impersonate, replace it (upstream's impersonation filter,
/// which runs right after authentication).
pub fn authenticate(server: &Server, parts: &axum::http::request::Parts) -> Result<UserInfo> {
    let user = credentials(server, parts)?;
    crate::authn::impersonate(&server.api, user, &parts.headers)
}

/// The identity the request's credentials prove, before impersonation.
fn credentials(server: &Server, parts: &axum::http::request::Parts) -> Result<UserInfo> {
    if let Some(PeerIdentity(Some(user))) = parts.extensions.get::<PeerIdentity>() {
        return Ok(UserInfo::clone(user));
    }
    let Some(authorization) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(UserInfo::anonymous());
    };
    let token = authorization
        .to_str()
        .ok()
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized)?;
    if server.admin_tokens.iter().any(|a| a == token) {
        return Ok(UserInfo::cluster_admin());
    }
    crate::authn::authenticate_token(&server.api, token)
}

/// The token of an `Authorization: Bearer <token>` header, as upstream's bearertoken
/// authenticator reads it (scheme case-insensitive, surrounding spaces dropped).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Reviews (TokenReview, SubjectAccessReview, ...) have no object metadata, so a Table
/// cannot be made of them: upstream's default table convertor answers 406.
fn refuse_table(accept: &str, path: &str) -> Result<()> {
    if !accept.contains("as=Table") {
        return Ok(());
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let group = segments.get(1).copied().unwrap_or_default();
    let resource = segments.last().copied().unwrap_or_default();
    Err(ApiError::NotAcceptable(format!(
        "the resource {resource}.{group} does not support being converted to a Table"
    )))
}

async fn dispatch(State(server): State<Arc<Server>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let classified =
        server
            .api
            .telemetry
            .classify(&method, &path, req.uri().query(), req.headers());
    let span = tracing::debug_span!("request", %method, %path);
    let _enter = span.enter();
    let warnings = Arc::new(std::sync::Mutex::new(Vec::new()));
    let output = crate::negotiate::output(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    );
    let server_metrics = server.api.clone();
    // A bug must cost one request a 500, never the connection (and its other streams).
    let mut resp = match std::panic::AssertUnwindSafe(handle(server, req, warnings.clone()))
        .catch_unwind()
        .await
    {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => e.into_response(),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(%method, %path, panic = %what, "request handler panicked");
            ApiError::Internal(format!("the server had a problem handling {method} {path}"))
                .into_response()
        }
    };
    add_warnings(
        &mut resp,
        &warnings.lock().unwrap_or_else(|p| p.into_inner()),
    );
    let resp = crate::negotiate::encode_response(output, resp).await;
    let telemetry = &server_metrics.telemetry;
    telemetry.observe(&classified, resp.status(), started.elapsed());
    if classified.is_watch() && resp.status() == StatusCode::OK {
        return crate::metrics::track_body(resp, telemetry.long_running(&classified));
    }
    resp
}

/// `Warning: 299 - "<text>"` headers (RFC 7234, as upstream's `warning` package writes
/// them), which kubectl prints as `Warning: <text>`.
fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        let text = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = header::HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            resp.headers_mut().append(header::WARNING, value);
        }
    }
}

/// Reads a request body up to [`MAX_BODY`]. A larger body is read to its end (up to
/// [`MAX_DRAINED`]) and dropped, then refused with upstream's 413.
async fn read_body(body: Body) -> Result<Bytes> {
    let mut chunks = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut seen: usize = 0;
    while let Some(data) = chunks.next().await {
        let data =
            data.map_err(|e| ApiError::BadRequest(format!("error reading the request body: {e}")))?;
        seen = seen.saturating_add(data.len());
        if seen > MAX_DRAINED {
            break;
        }
        if seen <= MAX_BODY {
            buf.extend_from_slice(&data);
        } else if !buf.is_empty() {
            buf = bytes::BytesMut::new();
        }
    }
    if seen > MAX_BODY {
        return Err(ApiError::TooLarge(format!(
            "Request entity too large: limit is {MAX_BODY}"
        )));
    }
    Ok(buf.freeze())
}

async fn handle(
    server: Arc<Server>,
    req: Request,
    warnings: Arc<std::sync::Mutex<Vec<String>>>,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let user = authenticate(&server, &parts)?;
    // Every request is authorized, as upstream's WithAuthorization filter does.
    server
        .api
        .rbac
        .authorize_request(&user, parts.method.as_str(), &path, parts.uri.query())?;
    // Remote group-versions go to their APIService's backend; local ones pay one lookup.
    if let Some(route) = server.api.aggregator.route(&path) {
        let req = Request::from_parts(parts, body);
        let mut resp = crate::aggregator::forward(&server.api, &route, &user, req).await;
        resp.extensions_mut().insert(crate::negotiate::AsBuilt);
        return Ok(resp);
    }
    let mut params = Params::parse(parts.uri.query());
    params.user = Arc::new(user);
    params.user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| Some(String::new()));
    params.warnings = warnings;
    // Upstream's request-deadline filter refuses a timeout it cannot parse, on every path.
    if let Some(t) = params.get("timeout") {
        if crate::request::parse_go_duration(t).is_none() {
            return Err(ApiError::BadRequest(
                "invalid timeout specified in the request URL".into(),
            ));
        }
    }
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let output = crate::negotiate::output(&accept);
    if parts.method == Method::POST {
        if let Some(review) = crate::authn::Review::parse(&path) {
            refuse_table(&accept, &path)?;
            let content_type = request_content_type(&parts.headers);
            check_media_type(&parts.method, &content_type)?;
            let obj = parse_body(&content_type, &read_body(body).await?)?;
            return crate::authn::review(
                &server.api,
                &server.admin_tokens,
                &params.user,
                review,
                &obj,
            );
        }
    }
    if parts.method == Method::GET {
        if let Some(format) = matches!(path.as_str(), "/api" | "/apis")
            .then(|| discovery::negotiate(&accept))
            .flatten()
        {
            let mut body = discovery::aggregated(&server.api.registry, path == "/api", format);
            if path == "/apis" {
                server.api.aggregator.extend_aggregated(&mut body);
            }
            return Ok(json_response_as(
                StatusCode::OK,
                &format.content_type(),
                &body,
            ));
        }
        if let Some(resp) = non_resource(
            &server,
            &path,
            parts.uri.query().unwrap_or(""),
            &parts.headers,
        ) {
            return resp;
        }
    }
    if parts.method == Method::POST {
        if let Some(review) = crate::authz::Review::parse(&path) {
            refuse_table(&accept, &path)?;
            let content_type = request_content_type(&parts.headers);
            check_media_type(&parts.method, &content_type)?;
            let obj = parse_body(&content_type, &read_body(body).await?)?;
            return crate::authz::review(&server.api, &params.user, &review, obj);
        }
    }
    if let Some((node, on_node)) = crate::nodeproxy::parse(&path) {
        let body = read_body(body).await?;
        return crate::nodeproxy::proxy(&server.api, node, on_node, parts, body).await;
    }
    let target = match Target::parse(&server.api.registry, &path) {
        Some(t) => t?,
        None => return Err(ApiError::NoRoute),
    };
    // Custom resources have no protobuf form: refused before anything is read or written.
    if target.resource.custom.is_some()
        && output
            == (crate::negotiate::Output::Protobuf {
                json_fallback: false,
            })
    {
        return Err(crate::negotiate::not_acceptable());
    }
    if target.resource.create_only {
        // Reviews are answered above; nothing else is served on them.
        return Err(ApiError::MethodNotAllowed(
            "the server does not allow this method on the requested resource".into(),
        ));
    }
    if crate::metricsapi::served(&target.resource) {
        let obj = crate::metricsapi::handle(&server.api, &target, &params, &parts.method)?;
        return Ok(json_response(StatusCode::OK, &obj));
    }
    if let Some(warning) = target
        .resource
        .custom
        .as_ref()
        .and_then(|c| c.deprecation.clone())
    {
        params.warn(warning);
    }
    // exec, attach and portforward upgrade the connection: passed to the node as they are.
    if crate::streaming::is_streaming(&target) {
        return crate::streaming::proxy(&server.api, &target, parts).await;
    }
    let content_type = request_content_type(&parts.headers);
    let body = read_body(body).await?;
    match parts.method {
        Method::POST | Method::PUT | Method::PATCH => {
            let verb = match parts.method {
                Method::POST => options::Verb::Create,
                Method::PUT => options::Verb::Update,
                _ => options::Verb::Patch {
                    apply: content_type == "application/apply-patch+yaml",
                },
            };
            options::validate_write(&params, verb)?;
            check_media_type(&parts.method, &content_type)?;
        }
        Method::GET if target.name.is_none() || params.flag("watch") => {
            options::validate_list(&params)?;
        }
        _ => {}
    }
    let table = TableOptions::from_request(&accept, params.get("includeObject"));
    let api = server.api.clone();
    let r = target.resource.clone();
    // A CertificateSigningRequest's approval is read and written like its status; the
    // strategy (`certificates::merge_subresource`) limits it to Approved/Denied.
    let routed = match target.subresource.as_deref() {
        Some("approval") if crate::certificates::is_csr(&r) => Some("status"),
        // A Pod's ephemeral containers are read and written as the whole Pod, like its
        // status; `handler::merge_for_status` keeps the write to them alone.
        Some("ephemeralcontainers") if r.group.is_empty() && r.kind == "Pod" => Some("status"),
        sub => sub,
    };
    match (parts.method.clone(), target.name.is_some(), routed) {
        // Watches of a collection, or of one object by name (the name becomes a field selector).
        (Method::GET, _, None) if params.flag("watch") => {
            let protobuf = table.is_none()
                && matches!(output, crate::negotiate::Output::Protobuf { .. })
                && skiff_protobuf::encodes(&r.api_version(), &r.kind);
            let rx = watch::start(api, target, params, table, protobuf)?;
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
            });
            let content_type = if protobuf {
                skiff_protobuf::WATCH_CONTENT_TYPE
            } else {
                "application/json"
            };
            // hyper chunks a streamed body on HTTP/1.1 and frames it on HTTP/2 by itself.
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, content_type)
                .extension(crate::negotiate::AsBuilt)
                .body(Body::from_stream(stream.boxed()))
                .expect("static response parts"))
        }
        (Method::GET, false, None) => {
            // "0" means any revision; an exact match is answered from the latest state.
            if params.get("resourceVersionMatch") != Some("Exact") {
                if let Some(rv) = params.int("resourceVersion")?.filter(|rv| *rv > 0) {
                    api.wait_for_revision(rv).await?;
                }
            }
            api.check_consistent_read(&params)?;
            let list = api.list(&target, &params)?;
            match table {
                Some(opts) => Ok(json_response(
                    StatusCode::OK,
                    &table::list_table(&api, &r, &list, &opts),
                )),
                None => Ok(json_response(StatusCode::OK, &list)),
            }
        }
        (Method::GET, true, None | Some("status")) => {
            api.check_consistent_read(&params)?;
            let obj = api.get(&target)?;
            match table {
                Some(opts) => Ok(json_response(
                    StatusCode::OK,
                    &table::table(&api, &r, &[obj], &opts, true),
                )),
                None => Ok(json_response(StatusCode::OK, &obj)),
            }
        }
        (Method::POST, false, None) => {
            let obj = parse_object_body(&mut params, &content_type, &body)?;
            let created = api.create(&target, &params, obj).await?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (Method::PUT, true, None | Some("status")) => {
            let obj = parse_object_body(&mut params, &content_type, &body)?;
            Ok(json_response(
                StatusCode::OK,
                &api.replace(&target, &params, obj).await?,
            ))
        }
        (Method::PATCH, true, None | Some("status")) => {
            let (patched, created) = patch(&api, &target, &params, &content_type, &body).await?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &patched))
        }
        (Method::DELETE, true, None) => {
            let options = delete_options(&params, &content_type, &body)?;
            let (obj, gone) = api.delete(&target, &options).await?;
            let code = if gone {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            Ok(json_response(code, &obj))
        }
        (Method::DELETE, false, None) => {
            let options = delete_options(&params, &content_type, &body)?;
            options::validate_list(&params)?;
            Ok(json_response(
                StatusCode::OK,
                &api.delete_collection(&target, &params, &options).await?,
            ))
        }
        (method, true, Some(sub)) => {
            subresources::handle(&api, &target, &params, method, sub, &content_type, &body).await
        }
        _ => Err(ApiError::MethodNotAllowed(
            "the server does not allow this method on the requested resource".into(),
        )),
    }
}

/// The request body's media type, lower-cased without parameters. No Content-Type is read
/// as JSON, upstream's first serializer (the python client sends bodies without one).
fn request_content_type(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The DeleteOptions of a DELETE: its body when it has one, else its query.
fn delete_options(params: &Params, content_type: &str, body: &[u8]) -> Result<DeleteOptions> {
    if body.is_empty() {
        return DeleteOptions::parse(params, None);
    }
    check_media_type(&Method::DELETE, content_type)?;
    DeleteOptions::parse(params, Some(&parse_body(content_type, body)?))
}

/// The media types a request body may have, as upstream's `NegotiateInputSerializer`: the
/// object serializers for POST, PUT and DELETE, the four patch types for PATCH (checked by
/// [`patch`]).
fn check_media_type(method: &Method, content_type: &str) -> Result<()> {
    let object_types = [
        "application/json",
        "application/yaml",
        skiff_protobuf::CONTENT_TYPE,
    ];
    let patch_types = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ];
    let accepted: &[&str] = if *method == Method::PATCH {
        &patch_types
    } else {
        &object_types
    };
    if accepted.contains(&content_type) {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        accepted.join(", ")
    )))
}

/// Discovery, OpenAPI and health endpoints.
fn non_resource(
    server: &Server,
    path: &str,
    query: &str,
    headers: &axum::http::HeaderMap,
) -> Option<Result<Response>> {
    if let Some(resp) = crate::authn::oidc(&server.api, path) {
        return Some(Ok(resp));
    }
    let registry = &server.api.registry;
    let ok = |v: Value| Some(Ok(json_response(StatusCode::OK, &v)));
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => ok(discovery::version()),
        ["metrics"] => Some(Ok(server.api.telemetry.response())),
        [endpoint, rest @ ..] if crate::health::Endpoint::parse(endpoint).is_some() => {
            let which = crate::health::Endpoint::parse(endpoint)?;
            // A check's name may have slashes (`poststarthook/bootstrap-controller`).
            let joined = rest.join("/");
            let check = (!rest.is_empty()).then_some(joined.as_str());
            let (code, body) = crate::health::respond(&server.api, which, check, query);
            Some(Ok((code, body).into_response()))
        }
        ["api"] => ok(discovery::core_versions(&server.address)),
        ["apis"] => {
            let mut list = discovery::group_list(registry);
            server.api.aggregator.extend_group_list(&mut list);
            ok(list)
        }
        ["api", version] => discovery::resource_list(registry, "", version)
            .map(|v| Ok(json_response(StatusCode::OK, &v))),
        ["apis", group] => server
            .api
            .aggregator
            .group(discovery::group(registry, group), group)
            .map(|v| Ok(json_response(StatusCode::OK, &v))),
        ["apis", group, version] => discovery::resource_list(registry, group, version)
            .map(|v| Ok(json_response(StatusCode::OK, &v))),
        ["openapi", "v3"] => {
            let mut root = server.openapi.root(registry);
            server.api.aggregator.extend_openapi_root(&mut root);
            ok(root)
        }
        ["openapi", "v3", rest @ ..] => {
            let path = rest.join("/");
            let doc = match server.api.aggregator.openapi_document(&path) {
                Some(remote) => remote,
                None => server.openapi.document(registry, &path),
            };
            Some(
                doc.map(|d| json_response(StatusCode::OK, &d))
                    .ok_or(ApiError::NoRoute),
            )
        }
        // kubectl asks for protobuf; a client asking for JSON gets the custom resources'
        // definitions (`openapi::v2_document`).
        ["openapi", "v2"]
            if !headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .contains("protobuf") =>
        {
            ok(crate::openapi::v2_document(registry))
        }
        ["openapi", "v2"] => Some(Ok(openapi_v2())),
        _ => None,
    }
}

/// `/openapi/v2` as kubectl fetches it (protobuf): a valid document with no definitions.
///
/// kubectl only falls back to v2 for kinds no v3 document describes (custom resources, or
/// kinds the server does not serve). An empty v2 document lets it skip client-side
/// validation for those, so an unknown kind gets upstream's "no matches for kind" answer
/// rather than a failed schema download. Every served kind is described in v3.
fn openapi_v2() -> Response {
    // gnostic openapi_v2.Document with only `swagger` (field 1, a string) = "2.0".
    let doc: &'static [u8] = &[0x0a, 0x03, b'2', b'.', b'0'];
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        )],
        doc,
    )
        .into_response()
}

/// Decodes an object body (POST, PUT) as [`parse_body`], noting the fields a JSON body
/// (by path) or a YAML body (by line) repeats in `params` for field validation.
fn parse_object_body(params: &mut Params, content_type: &str, body: &[u8]) -> Result<Value> {
    if content_type == "application/json" {
        let (value, duplicates) = crate::strict::parse_json(body).map_err(|e| {
            ApiError::BadRequest(format!("error decoding the request body as JSON: {e}"))
        })?;
        params.duplicate_fields = duplicates;
        return Ok(value);
    }
    let value = parse_body(content_type, body)?;
    if content_type == "application/yaml" {
        params.yaml_duplicates = crate::strict::yaml_duplicate_keys(body);
    }
    Ok(value)
}

/// Decodes a JSON, YAML or protobuf request body.
pub fn parse_body(content_type: &str, body: &[u8]) -> Result<Value> {
    match content_type {
        "application/yaml" | "application/apply-patch+yaml" => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("error converting YAML to JSON: {e}"))),
        skiff_protobuf::CONTENT_TYPE => skiff_protobuf::decode(body).map_err(|e| match e {
            skiff_protobuf::Error::UnknownKind { .. } => ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({e})"
            )),
            skiff_protobuf::Error::Schema(_) => ApiError::Internal(e.to_string()),
            _ => ApiError::BadRequest(format!("error decoding the request body as protobuf: {e}")),
        }),
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding the request body as JSON: {e}"))),
    }
}

/// Applies a patch of any of the four upstream patch types to the stored object; true when
/// it created the object (an apply of a missing object: 201 as upstream).
pub async fn patch(
    api: &Api,
    t: &Target,
    p: &Params,
    content_type: &str,
    body: &[u8],
) -> Result<(Value, bool)> {
    let r = t.resource.clone();
    let patch_doc = parse_body(content_type, body)?;
    if content_type == "application/apply-patch+yaml" {
        let duplicates = crate::strict::yaml_duplicate_keys(body);
        return crate::apply::server_side_apply(api, t, p, patch_doc, &duplicates).await;
    }
    let precondition = match &patch_doc {
        Value::Object(_) => resource_version_of(&patch_doc)?,
        _ => None,
    };
    let kind = content_type.to_owned();
    if kind == "application/strategic-merge-patch+json"
        && (r.custom.is_some()
            || !skiff_apimachinery::strategic::supports_strategic_merge(&r.group, &r.kind))
    {
        return Err(ApiError::UnsupportedMediaType("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into()));
    }
    api.update_with(t, p, precondition, |old| {
        apply_patch(&r.group, &r.kind, &kind, old, &patch_doc)
    })
    .await
    .map(|v| (v, false))
}

/// One patch application, pure: the old object and the patch give the new object.
pub fn apply_patch(
    group: &str,
    kind: &str,
    content_type: &str,
    old: &Value,
    patch: &Value,
) -> Result<Value> {
    match content_type {
        "application/json-patch+json" => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
            let mut doc = old.clone();
            json_patch::patch(&mut doc, &ops)
                .map_err(|e| ApiError::Invalid {
                    group: String::new(),
                    kind: String::new(),
                    name: String::new(),
                    message: format!("the server rejected our request due to an error in our request: {e}"),
                    causes: vec![],
                })?;
            Ok(doc)
        }
        "application/merge-patch+json" => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest("a merge patch must be a JSON object".into()));
            }
            Ok(skiff_apimachinery::strategic::json_merge_patch(old, patch))
        }
        "application/strategic-merge-patch+json" => {
            skiff_apimachinery::strategic::strategic_merge_patch(old, patch, group, kind).map_err(|e| {
                match e.status_code() {
                    400 => ApiError::BadRequest(e.to_string()),
                    422 => ApiError::Invalid {
                        group: group.to_owned(),
                        kind: kind.to_owned(),
                        name: String::new(),
                        message: e.to_string(),
                        causes: vec![],
                    },
                    _ => ApiError::Internal(e.to_string()),
                }
            })
        }
        other => Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_as_upstream_reads_them() {
        for (header, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("  Bearer   abc  ", Some("abc")),
            ("Bearer ", None),
            ("Basic YTpi", None),
            ("abc", None),
        ] {
            assert_eq!(bearer_token(header), want, "{header:?}");
        }
    }
}
