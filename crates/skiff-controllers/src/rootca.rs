//! The root CA publisher, as upstream's `root-ca-cert-publisher`: every namespace has a
//! ConfigMap `kube-root-ca.crt` whose `ca.crt` is the cluster CA, so a pod's projected
//! token volume can verify the API server at `kubernetes.default.svc`. A copy that is
//! deleted, edited or lacks its description annotation is put back.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use kube::runtime::reflector::Store;
use skiff_reconcile::{Harness, Metrics, ObjectKey, Outcome};

use crate::serviceaccount::{is_active, namespace_going};
use crate::Error;

/// The ConfigMap's name (upstream's `RootCACertConfigMapName`).
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
/// The annotation upstream puts on it, and its text.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// What to do about one namespace's ConfigMap.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create it.
    Create(ConfigMap),
    /// Replace it with this (the existing object with data and annotation restored).
    Update(ConfigMap),
}

/// The namespace's `kube-root-ca.crt` as it should be, from what is there (`existing`) and
/// the CA. Creation only in an active namespace (anything else refuses new objects); a
/// changed copy is restored whatever the phase, as upstream.
pub fn plan(active: bool, existing: Option<&ConfigMap>, ca: &str) -> Option<Action> {
    let data = BTreeMap::from([("ca.crt".to_string(), ca.to_string())]);
    let Some(cm) = existing else {
        return active.then(|| {
            Action::Create(ConfigMap {
                metadata: kube::api::ObjectMeta {
                    name: Some(CONFIG_MAP.into()),
                    annotations: Some(BTreeMap::from([(
                        DESCRIPTION_ANNOTATION.to_string(),
                        DESCRIPTION.to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            })
        });
    };
    let described = cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .is_some_and(|d| !d.is_empty());
    if cm.data.as_ref() == Some(&data) && described {
        return None;
    }
    let mut next = cm.clone();
    next.data = Some(data);
    next.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    Some(Action::Update(next))
}

struct Ctx {
    client: kube::Client,
    config_maps: Store<ConfigMap>,
    ca: String,
}

/// Runs the publisher of `ca` (the cluster CA, PEM) until the process exits.
pub async fn run(client: kube::Client, metrics: Metrics, ca: String) {
    let mut controller = Harness::new("root-ca-cert-publisher", client.clone())
        .metrics(&metrics)
        .watch::<Namespace>();
    let ctx = Arc::new(Ctx {
        config_maps: controller.cache(),
        client,
        ca,
    });
    controller
        .watches(|cm: &ConfigMap| {
            cm.metadata
                .namespace
                .as_deref()
                .filter(|_| cm.metadata.name.as_deref() == Some(CONFIG_MAP))
                .map(ObjectKey::named)
        })
        .run(reconcile, ctx)
        .await;
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Outcome, Error> {
    let name = ns.metadata.name.as_deref().ok_or(Error::Missing("name"))?;
    let existing = ctx
        .config_maps
        .get(&ObjectKey::new(Some(name), CONFIG_MAP).to_ref());
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), name);
    match plan(is_active(&ns), existing.as_deref(), &ctx.ca) {
        None => {}
        Some(Action::Create(cm)) => match api.create(&PostParams::default(), &cm).await {
            Ok(_) => tracing::info!(namespace = %name, "published {CONFIG_MAP}"),
            // Made meanwhile: its watch event requeues the namespace.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) if namespace_going(&e) => {}
            Err(e) => return Err(e.into()),
        },
        // A conflict means the cache is behind: the newer copy's event requeues.
        Some(Action::Update(cm)) => {
            match api.replace(CONFIG_MAP, &PostParams::default(), &cm).await {
                Ok(_) => tracing::info!(namespace = %name, "restored {CONFIG_MAP}"),
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn cm(v: serde_json::Value) -> ConfigMap {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_configmap_is_made_and_kept_as_upstream_publishes_it() {
        let good = json!({"metadata": {"name": CONFIG_MAP, "resourceVersion": "7",
                                       "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                          "data": {"ca.crt": CA}});
        let cases: [(
            &str,
            bool,
            Option<serde_json::Value>,
            Option<serde_json::Value>,
        ); 7] = [
            (
                "missing in an active namespace",
                true,
                None,
                Some(json!({"metadata": {"name": CONFIG_MAP,
                                         "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                            "data": {"ca.crt": CA}})),
            ),
            ("missing in a terminating namespace", false, None, None),
            ("as it should be", true, Some(good.clone()), None),
            (
                "data edited",
                true,
                Some(
                    json!({"metadata": {"name": CONFIG_MAP, "resourceVersion": "7",
                                         "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                            "data": {"ca.crt": "other"}}),
                ),
                Some(good.clone()),
            ),
            (
                "a key added",
                true,
                Some(
                    json!({"metadata": {"name": CONFIG_MAP, "resourceVersion": "7",
                                         "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                            "data": {"ca.crt": CA, "extra": "x"}}),
                ),
                Some(good.clone()),
            ),
            (
                "annotation removed, other annotations and labels kept",
                true,
                Some(
                    json!({"metadata": {"name": CONFIG_MAP, "resourceVersion": "7",
                                         "labels": {"a": "b"}, "annotations": {"x": "y"}},
                            "data": {"ca.crt": CA}}),
                ),
                Some(
                    json!({"metadata": {"name": CONFIG_MAP, "resourceVersion": "7",
                                         "labels": {"a": "b"},
                                         "annotations": {"x": "y", DESCRIPTION_ANNOTATION: DESCRIPTION}},
                            "data": {"ca.crt": CA}}),
                ),
            ),
            (
                "edited in a terminating namespace is still restored",
                false,
                Some(
                    json!({"metadata": {"name": CONFIG_MAP, "resourceVersion": "7",
                                         "annotations": {DESCRIPTION_ANNOTATION: ""}},
                            "data": {"ca.crt": CA}}),
                ),
                Some(good.clone()),
            ),
        ];
        for (what, active, existing, want) in cases {
            let existing = existing.map(cm);
            let got = plan(active, existing.as_ref(), CA);
            let want = want.map(|w| match existing {
                None => Action::Create(cm(w)),
                Some(_) => Action::Update(cm(w)),
            });
            assert_eq!(got, want, "{what}");
        }
    }
}
