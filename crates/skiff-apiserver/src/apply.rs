//! Server-side apply (`application/apply-patch+yaml`), in its simplest faithful form: the
//! applied configuration is merged into the live object (strategically for built-in kinds),
//! creating it when absent. Field ownership (`managedFields`) is not tracked yet, so
//! conflicts between managers are not detected and fields dropped from a later apply are
//! not removed.

use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::http::apply_patch;
use crate::request::{Params, Target};

pub async fn server_side_apply(
    api: &Api,
    t: &Target,
    p: &Params,
    applied: Value,
) -> Result<(Value, bool)> {
    if p.get("fieldManager").is_none() {
        return Err(ApiError::BadRequest(
            "PATCH, application/apply-patch+yaml requests must have a fieldManager".into(),
        ));
    }
    let r = t.resource.clone();
    match api.read(t) {
        Err(ApiError::NotFound { .. }) => {
            let collection = Target {
                name: None,
                ..t.clone()
            };
            api.create(&collection, p, applied).await.map(|v| (v, true))
        }
        Err(e) => Err(e),
        Ok(_) => {
            let content_type =
                if skiff_apimachinery::strategic::supports_strategic_merge(&r.group, &r.kind) {
                    "application/strategic-merge-patch+json"
                } else {
                    "application/merge-patch+json"
                };
            api.update_with(t, p, None, |old| {
                apply_patch(&r.group, &r.kind, content_type, old, &applied)
            })
            .await
            .map(|v| (v, false))
        }
    }
}
