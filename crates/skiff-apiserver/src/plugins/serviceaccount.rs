//! The ServiceAccount admission plugin, as upstream's (plugin/pkg/admission/serviceaccount):
//! a new pod runs as `default` unless it names a ServiceAccount, the account must exist
//! (`default` is waited for a moment: the ServiceAccount controller makes it just after its
//! namespace), and unless `automountServiceAccountToken` is false (pod first, then
//! account) every container gets the projected `kube-api-access-<random>` volume (a bound
//! token, the cluster CA, the namespace) at `/var/run/secrets/kubernetes.io/serviceaccount`.
//!
//! Enabled by the server (`Api::service_accounts`), off in a bare `Api`: as upstream's
//! integration test servers run without it, the API alone has no controller to make the
//! accounts pods need.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::request::Target;
use crate::webhook::{Attributes, Operation};

/// The account a pod runs as when it names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Where the token volume is mounted (upstream's `DefaultAPITokenMountPath`).
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Prefix of the token volume's name (upstream's `ServiceAccountVolumeName`).
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The projected token's lifetime: upstream's `WarnOnlyBoundTokenExpirationSeconds`, an
/// hour and a bit, which the API server recognizes as the admission default.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// The annotation marking a mirror (static) pod, whose spec is never changed.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Whether the plugin runs (the server turns it on).
#[derive(Default)]
pub struct ServiceAccountAdmission {
    enabled: AtomicBool,
}

impl ServiceAccountAdmission {
    /// Turns the plugin on or off.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }
}

/// Only creates of pods concern the plugin (ephemeral containers are not served).
fn applies(api: &Api, attrs: &Attributes<'_>) -> bool {
    api.service_accounts.enabled()
        && attrs.resource.group.is_empty()
        && attrs.resource.plural == "pods"
        && attrs.subresource.is_none()
        && attrs.operation == Operation::Create
}

fn is_mirror_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION))
}

fn account_name(pod: &Value) -> &str {
    pod.pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Sets `serviceAccountName` when empty (from the deprecated `serviceAccount`, as the v1
/// conversion reads it, else `default`) and mirrors it into `serviceAccount`, as the v1
/// conversion writes it.
pub fn default_account(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let named = |k: &str| {
        spec.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let name = named("serviceAccountName")
        .or_else(|| named("serviceAccount"))
        .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.to_string());
    spec.insert("serviceAccountName".into(), json!(name));
    spec.insert("serviceAccount".into(), json!(name));
}

/// Whether the token is mounted: the pod's `automountServiceAccountToken` wins, then the
/// account's, else yes.
pub fn should_automount(account: &Value, pod: &Value) -> bool {
    pod.pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            account
                .get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true)
}

/// The projected volume source upstream's `TokenVolumeSource` gives the token volume.
pub fn token_volume_source() -> Value {
    json!({
        "defaultMode": 0o644,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ],
    })
}

/// Mounts the token volume read-only at [`TOKEN_MOUNT_PATH`] in every init container and
/// container that has nothing mounted there, and adds the volume if one of them needs it
/// and the pod has no `kube-api-access-*` volume yet (whose name is then reused). `suffix`
/// is the generated part of a new volume's name.
pub fn mount_token(pod: &mut Value, suffix: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(str::to_string);
    let has_volume = existing.is_some();
    let volume = existing.unwrap_or_else(|| format!("{VOLUME_PREFIX}{suffix}"));
    let mount = json!({"name": volume, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            let taken = mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH));
            if !taken {
                mounts.push(mount.clone());
                needed = true;
            }
        }
    }
    if needed && !has_volume {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(volumes) = volumes.as_array_mut() {
            volumes.push(json!({"name": volume, "projected": token_volume_source()}));
        }
    }
}

/// Copies the account's `imagePullSecrets` to a pod that names none.
pub fn inherit_pull_secrets(account: &Value, pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let has = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let theirs: Vec<Value> = account
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name"))
        .map(|n| json!({"name": n}))
        .collect();
    if !has && !theirs.is_empty() {
        spec.insert("imagePullSecrets".into(), Value::Array(theirs));
    }
}

/// The account, or upstream's `serviceaccount "name" not found`.
fn lookup(api: &Api, ns: &str, name: &str) -> std::result::Result<Value, String> {
    let resource = api
        .registry
        .get("", "v1", "serviceaccounts")
        .ok_or_else(|| "serviceaccounts are not served".to_string())?;
    let target = Target {
        resource,
        namespace: Some(ns.into()),
        name: Some(name.into()),
        subresource: None,
    };
    match api.get(&target) {
        Ok(sa) => Ok(sa),
        Err(ApiError::NotFound { .. }) => Err(format!("serviceaccount \"{name}\" not found")),
        Err(e) => Err(e.to_string()),
    }
}

/// Upstream's 403 for an account that cannot be read.
fn not_found(attrs: &Attributes<'_>, ns: &str, name: &str, why: &str) -> ApiError {
    ApiError::denied(
        attrs.resource,
        attrs.name,
        &format!("error looking up service account {ns}/{name}: {why}"),
    )
}

/// The account, waited for when it is `default` (ten tries 100–200 ms apart, as upstream:
/// the controller makes it right after the namespace).
async fn lookup_waiting(api: &Api, ns: &str, name: &str) -> std::result::Result<Value, String> {
    let tries = if name == DEFAULT_SERVICE_ACCOUNT {
        10
    } else {
        1
    };
    let pause = Duration::from_millis(100 + u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 100));
    let mut last = String::new();
    for i in 0..tries {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        match lookup(api, ns, name) {
            Ok(sa) => return Ok(sa),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The mutating half: defaults the account, checks it exists, mounts the token, inherits
/// pull secrets.
pub async fn admit(api: &Api, attrs: &Attributes<'_>, pod: &mut Value) -> Result<()> {
    let Some(ns) = attrs.namespace.filter(|_| applies(api, attrs)) else {
        return Ok(());
    };
    if is_mirror_pod(pod) {
        return validate(api, attrs, pod);
    }
    default_account(pod);
    let name = account_name(pod).to_string();
    let account = lookup_waiting(api, ns, &name)
        .await
        .map_err(|why| not_found(attrs, ns, &name, &why))?;
    if should_automount(&account, pod) {
        mount_token(pod, &crate::object::name_suffix());
    }
    inherit_pull_secrets(&account, pod);
    validate(api, attrs, pod)
}

/// The validating half (also after the mutating webhooks): a pod names an account that
/// exists; a mirror pod names none.
pub fn validate(api: &Api, attrs: &Attributes<'_>, pod: &Value) -> Result<()> {
    let Some(ns) = attrs.namespace.filter(|_| applies(api, attrs)) else {
        return Ok(());
    };
    let name = account_name(pod);
    if is_mirror_pod(pod) {
        if !name.is_empty() {
            return Err(ApiError::denied(
                attrs.resource,
                attrs.name,
                "a mirror pod may not reference service accounts",
            ));
        }
        return Ok(());
    }
    if name.is_empty() {
        let pod_name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(ApiError::denied(
            attrs.resource,
            attrs.name,
            &format!("no service account specified for pod {ns}/{pod_name}"),
        ));
    }
    lookup(api, ns, name).map_err(|why| not_found(attrs, ns, name, &why))?;
    Ok(())
}

#[cfg(test)]
mod tests;
