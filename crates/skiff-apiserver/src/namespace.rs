//! Namespace termination: deleting a namespace marks it `Terminating`, then everything in it
//! is deleted and, once it is empty, its `kubernetes` finalizer is removed and it goes.
//!
//! Upstream runs this in kube-controller-manager's namespace controller; here it is a task
//! beside the API that works through the same handler (so grace periods and finalizers of
//! the contents are honoured), resumed at start for namespaces left terminating.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::handler::Api;
use crate::object;
use crate::options::DeleteOptions;
use crate::request::{Params, Target};

/// How often a terminating namespace is checked again while content remains.
const RETRY: Duration = Duration::from_secs(1);

/// The finalizer that keeps a namespace until its content is gone.
pub const FINALIZER: &str = "kubernetes";

/// Whether a namespace still waits for its content to be deleted.
pub fn has_finalizer(ns: &Value) -> bool {
    ns["spec"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|v| v == FINALIZER))
}

/// Runs until the API is dropped: empties each namespace sent on `queue`, then finalizes it.
/// A namespace sent again while its cleanup runs (a repeated DELETE, the resume at start)
/// joins that cleanup instead of starting a second one.
pub async fn run(api: Arc<Api>, mut queue: mpsc::UnboundedReceiver<String>) {
    let active = Active::default();
    while let Some(name) = queue.recv().await {
        let Some(claim) = active.claim(&name) else {
            tracing::debug!(namespace = %name, "namespace already being emptied");
            continue;
        };
        let api = api.clone();
        tokio::spawn(async move {
            let _claim = claim;
            // Level-triggered: each pass looks at what is left, until the namespace is gone.
            loop {
                match terminate(&api, &name).await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(namespace = %name, error = %e, "terminating namespace")
                    }
                }
                tokio::time::sleep(RETRY).await;
            }
        });
    }
}

/// Empties `ns` and, once nothing is left, finalizes it; true when done.
async fn terminate(api: &Api, ns: &str) -> Result<bool, ApiError> {
    if !empty(api, ns).await? {
        return Ok(false);
    }
    finalize(api, ns).await?;
    Ok(true)
}

/// The namespaces whose cleanup is running.
#[derive(Clone, Default)]
struct Active(Arc<Mutex<HashSet<String>>>);

/// Holds a namespace's cleanup slot; dropping it (the task ends) frees the slot.
struct Claim {
    active: Active,
    name: String,
}

impl Active {
    /// The slot of `name`, unless a cleanup of it already holds it.
    fn claim(&self, name: &str) -> Option<Claim> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(name.to_owned()).then(|| Claim {
            active: self.clone(),
            name: name.to_owned(),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut set = self.active.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.name);
    }
}

/// Deletes everything in `ns`; true once nothing is left.
async fn empty(api: &Api, ns: &str) -> Result<bool, ApiError> {
    let mut left = 0;
    // One pass per stored collection: events.k8s.io shares core Events' storage, and a
    // CRD's versions share one.
    for r in api.registry.per_storage().iter().filter(|r| r.namespaced) {
        let target = Target {
            resource: r.clone(),
            namespace: Some(ns.to_owned()),
            name: None,
            subresource: None,
        };
        let list = api.list(&target, &Params::default())?;
        for item in list["items"].as_array().into_iter().flatten() {
            left += 1;
            if object::is_deleting(item) {
                continue;
            }
            let one = Target {
                name: object::name(item).map(str::to_owned),
                ..target.clone()
            };
            match api.delete(&one, &DeleteOptions::default()).await {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(left == 0)
}

/// Removes the `kubernetes` finalizer, which deletes the (already deleting) namespace.
async fn finalize(api: &Api, ns: &str) -> Result<(), ApiError> {
    let Some(namespaces) = api.registry.get("", "v1", "namespaces") else {
        return Ok(());
    };
    let target = Target {
        resource: namespaces,
        namespace: None,
        name: Some(ns.to_owned()),
        subresource: Some("finalize".into()),
    };
    match api
        .update_with(&target, &Params::default(), None, |old| {
            let mut new = old.clone();
            if let Some(f) = new["spec"]["finalizers"].as_array_mut() {
                f.retain(|v| v != FINALIZER);
            }
            Ok(new)
        })
        .await
    {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_deleted_again_while_its_cleanup_runs_gets_no_second_cleanup() {
        let active = Active::default();
        let first = active.claim("team-a");
        assert!(first.is_some());
        assert!(
            active.claim("team-a").is_none(),
            "second DELETE joins the first"
        );
        assert!(
            active.claim("team-b").is_some(),
            "other namespaces are independent"
        );
        drop(first);
        assert!(
            active.claim("team-a").is_some(),
            "a later termination starts afresh"
        );
    }
}
