//! Subresources with their own shape: `scale` (autoscaling/v1 Scale), pod `binding`,
//! pod `log`, namespace `finalize` and ServiceAccount `token` (TokenRequest).

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::http::{apply_patch, parse_body};
use crate::object;
use crate::request::{Params, Target};
use crate::resources::ResourceInfo;

pub async fn handle(
    api: &Api,
    t: &Target,
    p: &Params,
    method: Method,
    sub: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Response> {
    let r = &t.resource;
    let ok = |v: Value| Ok(axum::Json(v).into_response());
    match (sub, method) {
        ("scale", Method::GET) if r.scale_subresource => ok(scale_of(r, &api.get(t)?)),
        ("scale", Method::PUT | Method::PATCH) if r.scale_subresource => {
            let patch_doc = parse_body(content_type, body)?;
            let is_put = content_type == "application/json" || content_type == "application/yaml";
            // Written as the parent object, owned as upstream records it: by the writer,
            // through the scale subresource (hence the target keeps its subresource).
            let updated = api
                .update_with(t, p, None, |old| {
                    let scale = scale_of(r, old);
                    let new_scale = if is_put {
                        patch_doc.clone()
                    } else {
                        apply_patch("autoscaling", "Scale", content_type, &scale, &patch_doc)?
                    };
                    let replicas = new_scale["spec"]["replicas"].as_i64().ok_or_else(|| {
                        ApiError::BadRequest("spec.replicas is required in a Scale".into())
                    })?;
                    let mut new = old.clone();
                    let (spec, _, _) = scale_paths(r);
                    set_at(&mut new, &spec, json!(replicas));
                    Ok(new)
                })
                .await?;
            ok(scale_of(r, &updated))
        }
        ("token", Method::POST) if r.kind == "ServiceAccount" && r.group.is_empty() => {
            crate::authn::token_request(api, t, p, &parse_body(content_type, body)?)
        }
        ("binding", Method::POST) if r.kind == "Pod" && r.group.is_empty() => {
            let binding = parse_body(content_type, body)?;
            let node = binding["target"]["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ApiError::BadRequest("binding target name is required".into()))?
                .to_owned();
            let pod = Target {
                subresource: Some("binding".into()),
                ..t.clone()
            };
            let name = t.name()?.to_owned();
            api.update_with(&pod, p, None, |old| {
                if object::is_deleting(old) {
                    return Err(ApiError::conflict(
                        r,
                        &name,
                        "pod is being deleted, cannot be assigned to a host",
                    ));
                }
                if let Some(current) = old["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                    return Err(ApiError::conflict(
                        r,
                        &name,
                        &format!("pod {name} is already assigned to node \"{current}\""),
                    ));
                }
                let mut new = old.clone();
                new["spec"]["nodeName"] = json!(node);
                set_condition(&mut new, "PodScheduled", "True");
                Ok(new)
            })
            .await?;
            Ok((
                StatusCode::CREATED,
                axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})),
            )
                .into_response())
        }
        ("eviction", Method::POST) if r.kind == "Pod" && r.group.is_empty() => {
            crate::eviction::evict(api, t, p, &parse_body(content_type, body)?).await
        }
        ("log", Method::GET) if r.kind == "Pod" && r.group.is_empty() => {
            crate::podlogs::pod_log(api, t, p).await
        }
        ("finalize", Method::PUT) if r.kind == "Namespace" => {
            let new = parse_body(content_type, body)?;
            ok(api.update_with(t, p, None, |_| Ok(new.clone())).await?)
        }
        _ => Err(ApiError::NoRoute),
    }
}

/// Where a kind keeps its replicas and selector, as JSON pointers: a CRD names them, a
/// built-in workload has `spec.replicas`, `status.replicas` and `spec.selector`.
fn scale_paths(r: &ResourceInfo) -> (String, String, Option<String>) {
    match r.custom.as_ref().and_then(|c| c.scale.as_ref()) {
        Some(s) => (
            crate::crd::pointer(&s.spec_replicas),
            crate::crd::pointer(&s.status_replicas),
            s.label_selector.as_deref().map(crate::crd::pointer),
        ),
        None => ("/spec/replicas".into(), "/status/replicas".into(), None),
    }
}

/// Sets the value at a JSON pointer of object fields, creating the objects on the way.
fn set_at(obj: &mut Value, pointer: &str, value: Value) {
    let mut at = obj;
    for part in pointer.split('/').skip(1) {
        if !at.is_object() {
            *at = json!({});
        }
        at = at
            .as_object_mut()
            .expect("made an object above")
            .entry(part)
            .or_insert(Value::Null);
    }
    *at = value;
}

/// The autoscaling/v1 Scale view of a workload.
fn scale_of(r: &ResourceInfo, obj: &Value) -> Value {
    let (spec, status, selector_path) = scale_paths(r);
    let selector = match (&r.custom, selector_path) {
        // A custom resource keeps its selector as a string already.
        (Some(_), Some(p)) => obj
            .pointer(&p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        (Some(_), None) => String::new(),
        (None, _) => skiff_apimachinery::selector::LabelSelector::from_label_selector(
            &obj["spec"]["selector"],
        )
        .map(|s| s.to_string())
        .unwrap_or_default(),
    };
    let default_replicas = if r.custom.is_some() { 0 } else { 1 };
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer(&spec).and_then(Value::as_i64).unwrap_or(default_replicas)},
        "status": {
            "replicas": obj.pointer(&status).and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// Sets a status condition as the scheduler does, stamping the transition time.
fn set_condition(obj: &mut Value, kind: &str, status: &str) {
    let now = object::now_rfc3339();
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = json!([]);
    }
    let conditions = obj["status"]["conditions"]
        .as_array_mut()
        .expect("made an array above");
    conditions.retain(|c| c["type"] != kind);
    conditions.push(
        json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": now}),
    );
}
