//! The Gateway API is built in: the vendored upstream standard-channel bundle
//! (`vendor/gateway-api/standard-install.yaml`) is installed when skiff starts, and
//! upgraded when skiff carries a newer bundle than the cluster has, never downgraded
//! (the bundle's `gateway.networking.k8s.io/bundle-version` annotation decides, as
//! upstream's own safe-upgrades policy does). Then the default GatewayClass `skiff` is
//! created once (a user may edit or delete it afterwards; it is not recreated over them
//! while it exists).

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Deserialize;
use serde_json::json;

/// The upstream bundle skiff ships.
pub const BUNDLE: &str = include_str!("../../../vendor/gateway-api/standard-install.yaml");
/// The annotation carrying a bundle's release.
pub const BUNDLE_VERSION: &str = "gateway.networking.k8s.io/bundle-version";
/// skiff's `controllerName`: GatewayClasses naming it are served by skiff.
pub const CONTROLLER_NAME: &str = "skiff.dev/gateway-controller";
/// The GatewayClass skiff creates.
pub const DEFAULT_CLASS: &str = "skiff";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("vendored Gateway API bundle: {0}")]
    Bundle(String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// `v1.6.1` (or `v1.6.1-rc1`, whose suffix is ignored) as numbers.
pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.strip_prefix('v')?;
    let v = v.split('-').next()?;
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Whether an object already in the cluster should be replaced by the bundle's.
pub fn needs_upgrade(installed: Option<&str>, vendored: &str) -> bool {
    match (installed.and_then(parse_version), parse_version(vendored)) {
        (Some(have), Some(want)) => have < want,
        // Unannotated or unreadable (installed by hand from elsewhere): left alone.
        _ => false,
    }
}

/// The bundle's documents, parsed.
pub fn documents() -> Result<Vec<DynamicObject>, Error> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(BUNDLE) {
        let value =
            serde_json::Value::deserialize(doc).map_err(|e| Error::Bundle(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        out.push(serde_json::from_value(value).map_err(|e| Error::Bundle(e.to_string()))?);
    }
    Ok(out)
}

fn api_for(client: &kube::Client, obj: &DynamicObject) -> Result<Api<DynamicObject>, Error> {
    let types = obj
        .types
        .as_ref()
        .ok_or_else(|| Error::Bundle("a document without apiVersion/kind".into()))?;
    let gvk = GroupVersionKind::try_from(types).map_err(|e| Error::Bundle(e.to_string()))?;
    Ok(Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk)))
}

/// Installs or upgrades every object of the bundle (CRDs, the safe-upgrades policy).
pub async fn install_bundle(client: &kube::Client) -> Result<(), Error> {
    for obj in documents()? {
        let api = api_for(client, &obj)?;
        let name = obj.metadata.name.clone().unwrap_or_default();
        let vendored = obj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(BUNDLE_VERSION))
            .cloned()
            .unwrap_or_default();
        match api.get_opt(&name).await? {
            None => {
                api.create(&PostParams::default(), &obj).await?;
                tracing::info!(%name, version = %vendored, "Gateway API object installed");
            }
            Some(current) => {
                let installed = current
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(BUNDLE_VERSION));
                if needs_upgrade(installed.map(String::as_str), &vendored) {
                    let mut next = obj.clone();
                    next.metadata.resource_version = current.metadata.resource_version.clone();
                    api.replace(&name, &PostParams::default(), &next).await?;
                    tracing::info!(%name, from = ?installed, to = %vendored, "Gateway API object upgraded");
                }
            }
        }
    }
    Ok(())
}

/// Creates GatewayClass `skiff` unless it exists.
pub async fn ensure_default_class(client: &kube::Client) -> Result<(), Error> {
    let api: Api<crate::api::GatewayClass> = Api::all(client.clone());
    if api.get_opt(DEFAULT_CLASS).await?.is_some() {
        return Ok(());
    }
    let class: crate::api::GatewayClass = serde_json::from_value(json!({
        "metadata": {"name": DEFAULT_CLASS},
        "spec": {"controllerName": CONTROLLER_NAME},
    }))
    .map_err(|e| Error::Bundle(e.to_string()))?;
    match api.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates IngressClass `skiff`, marked default, unless it exists: Ingresses naming no
/// class are then served by skiff, as k3s's Traefik serves them.
pub async fn ensure_ingress_class(client: &kube::Client) -> Result<(), Error> {
    use k8s_openapi::api::networking::v1::IngressClass;
    let api: Api<IngressClass> = Api::all(client.clone());
    if api.get_opt(DEFAULT_CLASS).await?.is_some() {
        return Ok(());
    }
    let class: IngressClass = serde_json::from_value(json!({
        "metadata": {"name": DEFAULT_CLASS,
                     "annotations": {crate::ingress::DEFAULT_CLASS_ANNOTATION: "true"}},
        "spec": {"controller": crate::ingress::INGRESS_CONTROLLER},
    }))
    .map_err(|e| Error::Bundle(e.to_string()))?;
    match api.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Installs the bundle and the default class, retrying until the API takes them (it may
/// still be starting, and a new CRD is served only once established).
pub async fn run(client: kube::Client) {
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        let result = match install_bundle(&client).await {
            Ok(()) => match ensure_default_class(&client).await {
                Ok(()) => ensure_ingress_class(&client).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return,
            Err(error) => {
                tracing::debug!(%error, "Gateway API not installed yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("v1.6.1"), Some((1, 6, 1)));
        assert_eq!(parse_version("v1.5.0-rc1"), Some((1, 5, 0)));
        assert_eq!(parse_version("1.5.0"), None);
        for (installed, vendored, want) in [
            (None, "v1.6.1", false),
            (Some("v1.5.0"), "v1.6.1", true),
            (Some("v1.6.1"), "v1.6.1", false),
            (Some("v1.7.0"), "v1.6.1", false),
            (Some("garbage"), "v1.6.1", false),
        ] {
            assert_eq!(needs_upgrade(installed, vendored), want, "{installed:?}");
        }
    }

    #[test]
    fn bundle_parses_and_is_annotated() {
        let docs = documents().unwrap();
        let names: Vec<_> = docs
            .iter()
            .filter_map(|d| d.metadata.name.clone())
            .collect();
        for want in [
            "gatewayclasses.gateway.networking.k8s.io",
            "gateways.gateway.networking.k8s.io",
            "httproutes.gateway.networking.k8s.io",
            "referencegrants.gateway.networking.k8s.io",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        for d in &docs {
            let v = d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(BUNDLE_VERSION));
            assert!(
                v.and_then(|v| parse_version(v)).is_some(),
                "{:?}",
                d.metadata.name
            );
        }
    }
}
