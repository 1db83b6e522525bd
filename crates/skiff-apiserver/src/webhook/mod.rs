//! Admission webhooks: `MutatingWebhookConfiguration` and `ValidatingWebhookConfiguration`
//! called with AdmissionReview v1, as kube-apiserver's webhook admission plugins do.
//!
//! The handler calls [`Webhooks::mutate`] after the built-in mutations (defaults, registry
//! logic) and before validation, [`Webhooks::validate`] after validation and the admission
//! policies, on create and update, and [`Webhooks::admit_delete`] before a delete.
//!
//! The configurations are held in memory, compiled (`config`), and refreshed by a watch on
//! the store ([`run`]), so a request with no webhook configurations costs one read lock.
//! `matching` decides which webhooks apply, `review` builds and checks AdmissionReviews,
//! `client` makes the HTTPS calls and `dispatch` runs the stages.

mod client;
pub(crate) mod config;
mod dispatch;
pub(crate) mod matching;
pub(crate) mod review;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::handler::{materialize, Api};
use crate::options::DeleteOptions;
use crate::request::Params;
use crate::resources::ResourceInfo;
use config::{Hook, Stage};
use dispatch::Call;

/// How soon a failed watch of the configurations is restarted.
const RETRY: Duration = Duration::from_millis(500);

/// The admission operation, as AdmissionReview names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// What is being admitted: upstream's `admission.Attributes`.
pub struct Attributes<'a> {
    pub resource: &'a ResourceInfo,
    pub subresource: Option<&'a str>,
    pub operation: Operation,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub dry_run: bool,
    /// The request's parameters: warnings for the response are added here.
    pub params: &'a Params,
}

/// The compiled webhooks of every stored configuration, in calling order (configuration
/// name, then position), as upstream's configuration managers sort them.
#[derive(Default)]
struct Active {
    mutating: Vec<Arc<Hook>>,
    validating: Vec<Arc<Hook>>,
}

/// The webhook admission plugins' state.
#[derive(Default)]
pub struct Webhooks {
    active: RwLock<Arc<Active>>,
}

impl Webhooks {
    fn active(&self) -> Arc<Active> {
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn install(&self, active: Active) {
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(active);
    }

    /// Runs the mutating webhooks that match; returns the (possibly patched) object.
    pub async fn mutate(
        &self,
        api: &Api,
        attrs: &Attributes<'_>,
        object: Value,
        old: Option<&Value>,
    ) -> Result<Value> {
        let active = self.active();
        if active.mutating.is_empty() || exempt(attrs.resource) {
            return Ok(object);
        }
        let patched = Call::write(api, attrs)
            .mutate(&active.mutating, Some(object), old)
            .await?;
        patched.ok_or_else(|| ApiError::Internal("a mutating webhook removed the object".into()))
    }

    /// Runs the validating webhooks that match; an error denies the request.
    pub async fn validate(
        &self,
        api: &Api,
        attrs: &Attributes<'_>,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<()> {
        let active = self.active();
        if active.validating.is_empty() || exempt(attrs.resource) {
            return Ok(());
        }
        Call::write(api, attrs)
            .validate(&active.validating, object, old)
            .await
    }

    /// Admission of a DELETE: mutating webhooks (which may not patch: there is no new
    /// object), then validating ones, each sent the stored object as `oldObject` and the
    /// DeleteOptions.
    pub async fn admit_delete(
        &self,
        api: &Api,
        attrs: &Attributes<'_>,
        old: &Value,
        options: &DeleteOptions,
    ) -> Result<()> {
        let active = self.active();
        if (active.mutating.is_empty() && active.validating.is_empty()) || exempt(attrs.resource) {
            return Ok(());
        }
        let call = Call::delete(api, attrs, options);
        call.mutate(&active.mutating, None, Some(old)).await?;
        call.validate(&active.validating, None, Some(old)).await
    }
}

/// Admission configuration kinds are never sent to webhooks.
fn exempt(r: &ResourceInfo) -> bool {
    matching::is_exempt(&r.group, &r.kind)
}

/// A stored configuration: its store key, mod revision and object.
type Stored = (String, i64, Value);

/// The stored configurations of one stage, and the revision they were read at.
fn stored(api: &Api, stage: Stage) -> Result<(Vec<Stored>, i64)> {
    let r = resource(api, stage)?;
    let list = api.store.list(&r.key(None, None), None, None)?;
    let mut items = Vec::with_capacity(list.items.len());
    for kv in &list.items {
        items.push((kv.key.clone(), kv.mod_revision, materialize(kv)?));
    }
    Ok((items, list.revision))
}

fn resource(api: &Api, stage: Stage) -> Result<Arc<ResourceInfo>> {
    let plural = match stage {
        Stage::Mutating => "mutatingwebhookconfigurations",
        Stage::Validating => "validatingwebhookconfigurations",
    };
    api.registry
        .get("admissionregistration.k8s.io", "v1", plural)
        .ok_or(ApiError::NoRoute)
}

/// Compiled configurations by store key, reused while their revision is unchanged so their
/// clients keep their pooled connections.
type Compiled = HashMap<String, (i64, Vec<Arc<Hook>>)>;

/// Reads both stages' configurations and installs them; compiling (CEL, certificates, the
/// system trust store) runs off the async runtime.
async fn refresh(api: &Arc<Api>, compiled: &mut Compiled) -> Result<i64> {
    let (mutating, rev_m) = stored(api, Stage::Mutating)?;
    let (validating, rev_v) = stored(api, Stage::Validating)?;
    let mut todo = Vec::new();
    let mut keep: Compiled = HashMap::new();
    for (stage, items) in [
        (Stage::Mutating, &mutating),
        (Stage::Validating, &validating),
    ] {
        for (key, revision, config) in items {
            match compiled.remove(key) {
                Some((r, hooks)) if r == *revision => {
                    keep.insert(key.clone(), (r, hooks));
                }
                _ => todo.push((stage, key.clone(), *revision, config.clone())),
            }
        }
    }
    if !todo.is_empty() {
        let api2 = api.clone();
        let built = tokio::task::spawn_blocking(move || {
            todo.into_iter()
                .map(|(stage, key, revision, config)| {
                    let hooks = config::hooks_of(stage, &config, &api2.registry, &api2.store)
                        .into_iter()
                        .map(Arc::new)
                        .collect();
                    (key, (revision, hooks))
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ApiError::Internal(format!("compiling webhook configurations: {e}")))?;
        keep.extend(built);
    }
    *compiled = keep;
    let mut active = Active::default();
    for (stage, items) in [
        (Stage::Mutating, &mutating),
        (Stage::Validating, &validating),
    ] {
        // Keys sort as names do within one prefix: calling order is by configuration name.
        let mut keys: Vec<&String> = items.iter().map(|(k, _, _)| k).collect();
        keys.sort();
        for key in keys {
            if let Some((_, hooks)) = compiled.get(key) {
                let list = match stage {
                    Stage::Mutating => &mut active.mutating,
                    Stage::Validating => &mut active.validating,
                };
                list.extend(hooks.iter().cloned());
            }
        }
    }
    api.webhooks.install(active);
    Ok(rev_m.min(rev_v))
}

/// Installs the stored configurations before the first request is answered, so webhooks
/// apply at once after a restart ([`run`] keeps them current from then on).
pub fn load(api: &Api) -> Result<()> {
    let mut active = Active::default();
    for stage in [Stage::Mutating, Stage::Validating] {
        let (mut items, _) = stored(api, stage)?;
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let list = match stage {
            Stage::Mutating => &mut active.mutating,
            Stage::Validating => &mut active.validating,
        };
        for (_, _, config) in items {
            list.extend(
                config::hooks_of(stage, &config, &api.registry, &api.store)
                    .into_iter()
                    .map(Arc::new),
            );
        }
    }
    api.webhooks.install(active);
    Ok(())
}

/// Keeps the in-memory webhooks in step with the stored configurations until the API is
/// dropped.
pub async fn run(api: Arc<Api>) {
    let mut compiled = Compiled::new();
    loop {
        if let Err(e) = watch_and_refresh(&api, &mut compiled).await {
            tracing::warn!(error = %e, "webhook configurations: restarting the watch");
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn watch_and_refresh(api: &Arc<Api>, compiled: &mut Compiled) -> Result<()> {
    let mutating = resource(api, Stage::Mutating)?;
    let validating = resource(api, Stage::Validating)?;
    let revision = refresh(api, compiled).await?;
    let mut watch_m = api.store.watch(&mutating.key(None, None), revision)?;
    let mut watch_v = api.store.watch(&validating.key(None, None), revision)?;
    loop {
        let event = tokio::select! {
            e = watch_m.next() => e,
            e = watch_v.next() => e,
        };
        match event {
            Some(Ok(_)) => {
                refresh(api, compiled).await?;
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Ok(()),
        }
    }
}
