//! The aggregator's loops: one keeps the routing table in step with the stored
//! APIServices (a watch); the other registers the Local APIServices and checks every
//! APIService's availability, on each APIService change and every few seconds, as
//! upstream's autoregister and availability controllers do between them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

use super::register::{self, Change};
use super::status::{self, Condition};
use super::{Aggregator, Result, Route};
use crate::error::ApiError;
use crate::handler::{materialize, Api};
use crate::options::DeleteOptions;
use crate::request::{Params, Target};
use crate::resources::ResourceInfo;

/// How often every APIService's availability is checked without a change prompting it
/// (upstream resyncs every 30 s but retries failures within a few; skiff checks all often,
/// as there are few).
const CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How often the served table is looked at for CRD group-versions that came or went.
const REGISTRY_POLL: Duration = Duration::from_secs(1);
/// How long the discovery GET of an availability check may take (upstream: 5 s).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest discovery document read from a backend.
const MAX_DISCOVERY: usize = 8 << 20;
/// Who the aggregator's own requests come from (upstream's probe identity).
const SELF_USER: &str = "system:kube-aggregator";

fn api_services(api: &Api) -> Result<Arc<ResourceInfo>> {
    Ok(api
        .registry
        .get("apiregistration.k8s.io", "v1", "apiservices")
        .ok_or(ApiError::NoRoute)?)
}

fn stored(api: &Api) -> Result<(Vec<Value>, i64)> {
    let r = api_services(api)?;
    let list = api.store.list(&r.key(None, None), None, None)?;
    let items = list
        .items
        .iter()
        .map(materialize)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((items, list.revision))
}

fn target(api: &Api, name: Option<&str>, subresource: Option<&str>) -> Result<Target> {
    Ok(Target {
        resource: api_services(api)?,
        namespace: None,
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    })
}

/// Runs until the API is dropped.
pub async fn run(api: Arc<Api>) {
    let changed = Arc::new(Notify::new());
    tokio::spawn(watch_routes(api.clone(), changed.clone()));
    check_loop(api, changed).await;
}

/// Keeps `Aggregator::routes` equal to what the stored APIServices say, and wakes the
/// checker on every change.
async fn watch_routes(api: Arc<Api>, changed: Arc<Notify>) {
    crate::follow::forever("aggregator APIServices", || watch_once(&api, &changed)).await
}

async fn watch_once(api: &Api, changed: &Notify) -> Result<()> {
    let r = api_services(api)?;
    let (items, revision) = stored(api)?;
    api.aggregator.set_routes(&items);
    changed.notify_one();
    let mut watch = api.store.watch(&r.key(None, None), revision)?;
    loop {
        match watch.next().await {
            Some(Ok(_)) => {
                // Level-triggered: the table is rebuilt from the whole list, which is short.
                let (items, _) = stored(api)?;
                api.aggregator.set_routes(&items);
                changed.notify_one();
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Ok(()),
        }
    }
}

async fn check_loop(api: Arc<Api>, changed: Arc<Notify>) {
    let mut first_pass = true;
    let mut generation = None;
    let mut last_check = tokio::time::Instant::now();
    loop {
        let now = api.registry.snapshot().generation;
        if generation != Some(now) {
            match sync_registrations(&api, first_pass).await {
                Ok(()) => {
                    first_pass = false;
                    generation = Some(now);
                }
                Err(e) => tracing::warn!(error = %e, "aggregator: registering local APIServices"),
            }
        }
        let due = last_check.elapsed() >= CHECK_INTERVAL;
        let notified = tokio::select! {
            _ = changed.notified() => true,
            _ = tokio::time::sleep(if due { Duration::ZERO } else { REGISTRY_POLL }) => false,
        };
        if notified || due {
            last_check = tokio::time::Instant::now();
            if let Err(e) = check_all(&api).await {
                tracing::warn!(error = %e, "aggregator: checking APIService availability");
            }
        }
    }
}

/// Creates, updates and deletes the automanaged APIServices to match the served table.
async fn sync_registrations(api: &Api, first_pass: bool) -> Result<()> {
    let desired = register::desired(&api.registry.snapshot());
    let (current, _) = stored(api)?;
    let params = Params::default();
    let mut failed = None;
    for change in register::plan(&desired, &current, first_pass) {
        let result = match change {
            Change::Create(obj) => api
                .create(&target(api, None, None)?, &params, obj)
                .await
                .map(|_| ()),
            Change::Update(obj) => {
                let name = crate::object::name(&obj).unwrap_or("").to_owned();
                api.update_with(&target(api, Some(&name), None)?, &params, None, |old| {
                    let mut next = old.clone();
                    next["spec"] = obj["spec"].clone();
                    next["metadata"]["labels"] = obj["metadata"]["labels"].clone();
                    Ok(next)
                })
                .await
                .map(|_| ())
            }
            Change::Delete(name) => api
                .delete(&target(api, Some(&name), None)?, &DeleteOptions::default())
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) | Err(ApiError::AlreadyExists { .. }) | Err(ApiError::NotFound { .. }) => {}
            // The others are still made; this one is tried again on the next pass.
            Err(e) => failed = Some(e),
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn route_key(route: &Route) -> String {
    format!("{}/{}", route.group, route.version)
}

/// Decides and writes the `Available` condition of every APIService, concurrently (a
/// backend that hangs costs its own check the probe timeout, not the others').
async fn check_all(api: &Api) -> Result<()> {
    let (items, _) = stored(api)?;
    let routes = api.aggregator.routes();
    let checks = items.iter().map(|obj| {
        let route = status::ServiceRef::of(obj).and_then(|_| {
            let key = format!(
                "{}/{}",
                obj["spec"]["group"].as_str().unwrap_or(""),
                obj["spec"]["version"].as_str().unwrap_or("")
            );
            routes.get(&key).cloned()
        });
        async move {
            let condition = match &route {
                None if status::ServiceRef::of(obj).is_some() => return Ok(()),
                None => status::local(),
                Some(route) => {
                    let condition = check_remote(api, route).await;
                    if let Some(current) = api.aggregator.routes().get(&route_key(route)) {
                        current
                            .available
                            .store(condition.status == "True", Ordering::Relaxed);
                    }
                    condition
                }
            };
            write_condition(api, obj, &condition).await
        }
    });
    for result in futures::future::join_all(checks).await {
        if let Err(e) = result {
            tracing::warn!(error = %e, "aggregator: writing APIService status");
        }
    }
    Ok(())
}

/// The remote controller's checks, then (when they pass) a fresh copy of the backend's
/// discovery document for the merged discovery.
async fn check_remote(api: &Api, route: &Route) -> Condition {
    let pick = api.aggregator.pick.fetch_add(1, Ordering::Relaxed);
    let backend = match super::proxy::resolve_backend(api, &route.service, pick) {
        Ok(b) => b,
        Err(condition) => return condition,
    };
    let url = format!(
        "{}/apis/{}/{}",
        backend.base_url(),
        route.group,
        route.version
    );
    let probe = match &route.probe {
        Ok(c) => get(c, &url).await.map(|(code, _)| code),
        Err(e) => Err(e.clone()),
    };
    let condition = status::probe_result(&url, probe);
    if condition.status == "True" {
        refresh_discovery(&api.aggregator, route, &url).await;
        let openapi = format!(
            "{}/openapi/v3/apis/{}/{}",
            backend.base_url(),
            route.group,
            route.version
        );
        refresh_openapi(&api.aggregator, route, &openapi).await;
    }
    condition
}

/// Fetches the backend's OpenAPI v3 document of the group-version through the verifying
/// client, as upstream's apiservice-openapi controller does; a backend that has none (404)
/// loses the copy, any other failure keeps it.
async fn refresh_openapi(agg: &Aggregator, route: &Route, url: &str) {
    let Ok(client) = &route.client else {
        return;
    };
    match get(client, url).await {
        Ok((code, body)) if (200..300).contains(&code) => {
            match serde_json::from_slice::<Value>(&body) {
                Ok(doc) if doc.is_object() => agg.set_openapi(&route.name, &body, doc),
                _ => {
                    tracing::debug!(apiservice = %route.name, "OpenAPI answer is not a document")
                }
            }
        }
        Ok((404, _)) => agg.forget_openapi(&route.name),
        Ok((code, _)) => {
            tracing::debug!(apiservice = %route.name, code, "OpenAPI v3 answered an error")
        }
        Err(e) => tracing::debug!(apiservice = %route.name, error = %e, "OpenAPI v3 failed"),
    }
}

/// Fetches the backend's APIResourceList through the verifying client; a failure keeps
/// the last copy (discovery then says Stale once the check fails too).
async fn refresh_discovery(agg: &Aggregator, route: &Route, url: &str) {
    let Ok(client) = &route.client else {
        return;
    };
    match get(client, url).await {
        Ok((code, body)) if (200..300).contains(&code) => {
            match serde_json::from_slice::<Value>(&body) {
                Ok(list) if list["resources"].is_array() => agg.set_discovery(&route.name, list),
                _ => {
                    tracing::debug!(apiservice = %route.name, "discovery answer is not an APIResourceList")
                }
            }
        }
        Ok((code, _)) => {
            tracing::debug!(apiservice = %route.name, code, "discovery answered an error")
        }
        Err(e) => tracing::debug!(apiservice = %route.name, error = %e, "discovery failed"),
    }
}

/// One GET as the aggregator itself, cut at the probe timeout: the status and body.
async fn get(
    client: &super::client::Client,
    url: &str,
) -> std::result::Result<(u16, bytes::Bytes), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let req = hyper::Request::get(uri)
        .header("accept", "application/json")
        .header("x-remote-user", SELF_USER)
        .header("x-remote-group", "system:masters")
        .body(axum::body::Body::empty())
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| super::proxy::error_chain(&e))?;
        let code = resp.status().as_u16();
        let body = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), MAX_DISCOVERY)
            .await
            .map_err(|e| e.to_string())?;
        Ok((code, body))
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("Get {url:?}: context deadline exceeded"))?
}

/// Writes `condition` as the `Available` condition when it differs from the stored one
/// (upstream avoids no-op writes: the checks run often).
async fn write_condition(api: &Api, obj: &Value, condition: &Condition) -> Result<()> {
    let set = |obj: &Value| {
        let mut next = obj.clone();
        crate::crd::set_condition(
            &mut next,
            "Available",
            condition.status,
            condition.reason,
            &condition.message,
        );
        next
    };
    if set(obj)["status"] == obj["status"] {
        return Ok(());
    }
    let name = crate::object::name(obj).unwrap_or("").to_owned();
    let result = api
        .update_with(
            &target(api, Some(&name), Some("status"))?,
            &Params::default(),
            None,
            |old| Ok(set(old)),
        )
        .await;
    match result {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
