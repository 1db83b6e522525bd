//! Server-side apply (`application/apply-patch+yaml`) with field ownership: the applied
//! configuration is merged into the live object by the kind's schema and its fields are
//! owned by the `fieldManager`; changing another manager's field is a 409 unless `force`,
//! and fields the manager no longer applies are removed unless someone else owns them
//! (see `managed.rs` and the `skiff-fieldmanager` crate).

use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::handler::{Api, Fields};
use crate::managed::Writer;
use crate::request::{Params, Target};

/// Applies `applied` at `t`, creating the object when it does not exist; true when created.
pub async fn server_side_apply(
    api: &Api,
    t: &Target,
    p: &Params,
    applied: Value,
) -> Result<(Value, bool)> {
    if !applied.is_object() {
        return Err(ApiError::BadRequest(
            "the applied configuration must be an object".into(),
        ));
    }
    if let Some(name) = crate::object::name(&applied) {
        if Some(name) != t.name.as_deref() {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                t.name.as_deref().unwrap_or_default()
            )));
        }
    }
    let writer = Writer {
        resource: &t.resource,
        subresource: t.subresource.as_deref(),
        params: p,
    };
    match api.read(t) {
        Err(ApiError::NotFound { .. }) if t.subresource.is_none() => {
            let mut obj = writer.apply(None, &applied)?;
            if crate::object::name(&obj).is_none() {
                crate::object::meta_mut(&mut obj)
                    .insert("name".into(), Value::from(t.name()?.to_owned()));
            }
            let collection = Target {
                name: None,
                ..t.clone()
            };
            match api.create_with(&collection, p, obj, Fields::Applied).await {
                // Lost a race with another creator: apply over what it made.
                Err(ApiError::AlreadyExists { .. }) => update(api, t, p, &writer, &applied).await,
                other => other.map(|v| (v, true)),
            }
        }
        Err(e) => Err(e),
        Ok(_) => update(api, t, p, &writer, &applied).await,
    }
}

async fn update(
    api: &Api,
    t: &Target,
    p: &Params,
    writer: &Writer<'_>,
    applied: &Value,
) -> Result<(Value, bool)> {
    api.update_fields(t, p, None, Fields::Applied, |old| {
        writer.apply(Some(old), applied)
    })
    .await
    .map(|v| (v, false))
}
