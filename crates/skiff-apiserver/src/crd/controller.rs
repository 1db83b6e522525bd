//! Keeps the served resource table and each CRD's status in step with the stored CRDs, as
//! upstream's naming, establishing and finalizing controllers do between them.
//!
//! It runs inside the API server (the apiextensions server is part of kube-apiserver too)
//! and works through the same handler as requests, so its status writes are validated and
//! watched like anyone's. One task handles one CRD at a time: CRDs change rarely, and the
//! naming decisions of a group must not race each other.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{condition_true, names, resources_of, set_condition, FINALIZER};
use crate::error::{ApiError, Result};
use crate::handler::{materialize, Api};
use crate::object;
use crate::options::DeleteOptions;
use crate::request::{Params, Target};
use crate::resources::ResourceInfo;

/// How soon a CRD whose reconcile failed (or whose objects are still going) is tried again.
const RETRY: Duration = Duration::from_millis(500);

fn crds(api: &Api) -> Result<Arc<ResourceInfo>> {
    api.registry
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .ok_or(ApiError::NoRoute)
}

fn stored_crds(api: &Api) -> Result<(Vec<Value>, i64)> {
    let r = crds(api)?;
    let list = api.store.list(&r.key(None, None), None, None)?;
    let items = list
        .items
        .iter()
        .map(materialize)
        .collect::<Result<Vec<_>>>()?;
    Ok((items, list.revision))
}

/// Whether a CRD's resources are served: once its names are accepted, and for as long as
/// it is established (even while a later rename conflicts), until it is deleted.
fn serves(crd: &Value) -> bool {
    condition_true(crd, "NamesAccepted") || condition_true(crd, "Established")
}

/// Serves the stored CRDs that were established, before the first request is answered, so
/// custom resources are there at once after a restart.
pub fn load(api: &Api) -> Result<()> {
    for crd in stored_crds(api)?.0 {
        if serves(&crd) {
            let name = object::name(&crd).unwrap_or_default().to_owned();
            api.registry.set_custom(&name, resources_of(&crd));
        }
    }
    Ok(())
}

/// Runs until the API is dropped: reconciles every CRD on start and on each change.
pub async fn run(api: Arc<Api>) {
    crate::follow::forever("CRD controller", || watch_and_reconcile(&api)).await
}

async fn watch_and_reconcile(api: &Arc<Api>) -> Result<()> {
    let r = crds(api)?;
    let (items, revision) = stored_crds(api)?;
    let mut pending: BTreeSet<String> = items
        .iter()
        .filter_map(|c| object::name(c).map(str::to_owned))
        .collect();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    let mut watch = api.store.watch(&r.key(None, None), revision)?;
    loop {
        while let Some(name) = pending.pop_first() {
            match reconcile(api, &name).await {
                Ok(Outcome::Done) => {}
                Ok(Outcome::Again) => {
                    failed.insert(name);
                }
                Ok(Outcome::GroupChanged(group)) => {
                    // Names were taken or freed: the group's other CRDs may now get theirs.
                    for other in stored_crds(api)?.0 {
                        if other["spec"]["group"] == group.as_str() {
                            if let Some(n) = object::name(&other).filter(|n| *n != name) {
                                pending.insert(n.to_owned());
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(crd = %name, error = %e, "reconciling CRD");
                    failed.insert(name);
                }
            }
        }
        let next = if failed.is_empty() {
            Some(watch.next().await)
        } else {
            tokio::time::timeout(RETRY, watch.next()).await.ok()
        };
        match next {
            None => pending.append(&mut failed),
            Some(Some(Ok(event))) => {
                let name = event.key.rsplit('/').next().unwrap_or("").to_owned();
                if event.kind == skiff_store::EventKind::Deleted {
                    // A deleted CRD frees its names for the rest of its group.
                    if let Ok(old) = serde_json::from_slice::<Value>(&event.value) {
                        let group = old["spec"]["group"].clone();
                        for other in stored_crds(api)?.0 {
                            if other["spec"]["group"] == group {
                                if let Some(n) = object::name(&other) {
                                    pending.insert(n.to_owned());
                                }
                            }
                        }
                    }
                }
                pending.insert(name);
            }
            Some(Some(Err(e))) => return Err(e.into()),
            Some(None) => return Ok(()),
        }
    }
}

/// What one reconcile left to do.
enum Outcome {
    Done,
    /// Try again soon (objects still being deleted).
    Again,
    /// Done, and the accepted names of this group changed.
    GroupChanged(String),
}

fn target(api: &Api, name: &str, subresource: Option<&str>) -> Result<Target> {
    Ok(Target {
        resource: crds(api)?,
        namespace: None,
        name: Some(name.to_owned()),
        subresource: subresource.map(str::to_owned),
    })
}

async fn reconcile(api: &Api, name: &str) -> Result<Outcome> {
    let crd = match api.get(&target(api, name, None)?) {
        Ok(crd) => crd,
        Err(ApiError::NotFound { .. }) => {
            api.registry.set_custom(name, vec![]);
            return Ok(Outcome::Done);
        }
        Err(e) => return Err(e),
    };
    if object::is_deleting(&crd) {
        return finalize(api, name, &crd).await;
    }
    let (others, _) = stored_crds(api)?;
    let naming = names::decide(&crd, &others);
    let mut next = crd.clone();
    next["status"]["acceptedNames"] = naming.accepted;
    let (status, reason, message) = naming.condition;
    set_condition(&mut next, "NamesAccepted", status, reason, &message);
    if status == "True" {
        set_condition(
            &mut next,
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        );
    } else if !condition_true(&next, "Established") {
        set_condition(
            &mut next,
            "Established",
            "False",
            "NotAccepted",
            "not all names are accepted",
        );
    }
    // Serve before the status says Established, so a client that waits for the condition
    // finds the resources there (upstream's establishing controller waits likewise).
    if serves(&next) {
        api.registry.set_custom(name, resources_of(&next));
    } else {
        api.registry.set_custom(name, vec![]);
    }
    if next["status"] == crd["status"] {
        return Ok(Outcome::Done);
    }
    let names_changed = next["status"]["acceptedNames"] != crd["status"]["acceptedNames"];
    let status = next["status"].clone();
    write_status(api, name, status).await?;
    Ok(if names_changed {
        Outcome::GroupChanged(crd["spec"]["group"].as_str().unwrap_or("").to_owned())
    } else {
        Outcome::Done
    })
}

async fn write_status(api: &Api, name: &str, status: Value) -> Result<()> {
    let t = target(api, name, Some("status"))?;
    let result = api
        .update_with(&t, &Params::default(), None, |old| {
            let mut new = old.clone();
            new["status"] = status.clone();
            Ok(new)
        })
        .await;
    match result {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A deleting CRD: its custom resources are deleted (through the handler, so their own
/// finalizers and grace are honoured), then its finalizer is removed and it goes.
async fn finalize(api: &Api, name: &str, crd: &Value) -> Result<Outcome> {
    if !object::finalizers(crd).iter().any(|f| f == FINALIZER) {
        return Ok(Outcome::Done);
    }
    let served = api.registry.custom(name);
    let mut left = 0usize;
    if let Some(r) = served.first() {
        if !condition_true(crd, "Terminating") {
            let mut next = crd.clone();
            set_condition(
                &mut next,
                "Terminating",
                "True",
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
            );
            write_status(api, name, next["status"].clone()).await?;
        }
        let all = Target {
            resource: r.clone(),
            namespace: None,
            name: None,
            subresource: None,
        };
        let list = api.list(&all, &Params::default())?;
        for item in list["items"].as_array().into_iter().flatten() {
            left += 1;
            if object::is_deleting(item) {
                continue;
            }
            let one = Target {
                namespace: object::namespace(item).map(str::to_owned),
                name: object::name(item).map(str::to_owned),
                ..all.clone()
            };
            match api.delete(&one, &DeleteOptions::default()).await {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    if left > 0 {
        return Ok(Outcome::Again);
    }
    let t = target(api, name, None)?;
    let result = api
        .update_with(&t, &Params::default(), None, |old| {
            let mut new = old.clone();
            if let Some(f) = new["metadata"]["finalizers"].as_array_mut() {
                f.retain(|v| v != FINALIZER);
            }
            Ok(new)
        })
        .await;
    match result {
        Ok(_) | Err(ApiError::NotFound { .. }) => {
            api.registry.set_custom(name, vec![]);
            Ok(Outcome::Done)
        }
        Err(e) => Err(e),
    }
}
