//! ValidatingAdmissionPolicy and its bindings, as kube-apiserver's `ValidatingAdmissionPolicy`
//! admission plugin: CEL validations run in the API server itself, matched by the policy's
//! constraints and each binding's resources, with params, match conditions, variables and
//! the binding's `validationActions` (Deny, Warn, Audit).
//!
//! Policies and bindings are compiled once when they change (a watch keeps [`Policies`]
//! current), so a request pays only for the policies that match it, and nothing at all when
//! there are none.

pub mod check;
mod compile;
mod evaluate;

use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::handler::{materialize, Api};
use crate::resources::ResourceInfo;
use crate::webhook::Attributes;

pub use compile::{Bound, CompiledPolicy};

/// The store prefix both policies and bindings live under.
const PREFIX: &str = "/registry/validatingadmissionpolic";

/// The policies and their bindings, compiled.
#[derive(Default)]
pub struct Policies {
    bound: RwLock<Arc<Vec<Bound>>>,
}

impl Policies {
    fn bound(&self) -> Arc<Vec<Bound>> {
        self.bound.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn install(&self, bound: Vec<Bound>) {
        *self.bound.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(bound);
    }

    /// Runs every bound policy that matches the request; the first denial is returned.
    pub async fn validate(
        &self,
        api: &Api,
        attrs: &Attributes<'_>,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<()> {
        let bound = self.bound();
        if bound.is_empty()
            || crate::webhook::matching::is_exempt(&attrs.resource.group, &attrs.resource.kind)
        {
            return Ok(());
        }
        evaluate::run(api, &bound, attrs, object, old).await
    }
}

fn resource(api: &Api, plural: &str) -> Result<Arc<ResourceInfo>> {
    api.registry
        .get("admissionregistration.k8s.io", "v1", plural)
        .ok_or(ApiError::NoRoute)
}

/// Reads and compiles the stored policies and bindings; returns the revision read at.
fn refresh(api: &Api) -> Result<i64> {
    let policies = api.store.list(
        &resource(api, "validatingadmissionpolicies")?.key(None, None),
        None,
        None,
    )?;
    let bindings = api.store.list(
        &resource(api, "validatingadmissionpolicybindings")?.key(None, None),
        None,
        None,
    )?;
    let policies: Vec<Value> = policies
        .items
        .iter()
        .map(materialize)
        .collect::<Result<_>>()?;
    let bindings: Vec<Value> = bindings
        .items
        .iter()
        .map(materialize)
        .collect::<Result<_>>()?;
    api.policies.install(compile::bind(&policies, &bindings));
    Ok(api.store.current_revision())
}

/// Installs the stored policies before the first request is answered.
pub fn load(api: &Api) -> Result<()> {
    refresh(api).map(|_| ())
}

/// Runs until the API is dropped: recompiles whenever a policy or binding changes.
pub async fn run(api: Arc<Api>) {
    crate::follow::forever("admission policies", || follow(&api)).await
}

async fn follow(api: &Arc<Api>) -> Result<()> {
    let revision = {
        let api = api.clone();
        tokio::task::spawn_blocking(move || refresh(&api))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    };
    let mut watch = api.store.watch(PREFIX, revision)?;
    while let Some(event) = watch.next().await {
        event?;
        let api = api.clone();
        tokio::task::spawn_blocking(move || refresh(&api))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
    }
    Ok(())
}
