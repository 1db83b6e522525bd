//! Webhook configurations as the dispatchers use them: each stored
//! `MutatingWebhookConfiguration` or `ValidatingWebhookConfiguration` flattened into its
//! webhooks, with upstream's defaults filled in, selectors parsed, match conditions compiled
//! and an HTTPS client built, once per stored revision rather than once per request.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use skiff_apimachinery::selector::LabelSelector;

use super::client::{Endpoint, HookClient};
use crate::resources::Registry;

/// Upstream's default `timeoutSeconds`.
const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
/// The largest `timeoutSeconds` upstream's validation allows; larger stored values are cut.
const MAX_TIMEOUT_SECONDS: u64 = 30;

/// Which admission stage a webhook belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Mutating,
    Validating,
}

/// One `rules[]` entry (`RuleWithOperations`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rule {
    pub operations: Vec<String>,
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    pub resources: Vec<String>,
    /// `*` (the default), `Cluster` or `Namespaced`.
    pub scope: Option<String>,
}

/// One `matchConditions[]` entry, compiled; a compile error is kept so the webhook fails per
/// its failure policy instead of being silently skipped.
pub struct MatchCondition {
    pub name: String,
    pub program: Result<skiff_cel::Program, String>,
}

/// One webhook of a configuration, ready to match and call.
pub struct Hook {
    pub stage: Stage,
    /// The configuration's name (hooks are called in configuration-name order).
    pub configuration: String,
    pub name: String,
    /// Identity for reinvocation bookkeeping: unique within one stage.
    pub id: String,
    pub rules: Vec<Rule>,
    /// Parse errors are kept and reported when the webhook's rules match (upstream's
    /// `GetParsedNamespaceSelector` error becomes an internal error there).
    pub namespace_selector: Result<LabelSelector, String>,
    pub object_selector: Result<LabelSelector, String>,
    /// `matchPolicy: Equivalent` (the default) rather than `Exact`.
    pub equivalent: bool,
    /// `failurePolicy: Ignore` (the default is Fail).
    pub ignore_failures: bool,
    pub side_effects: Option<String>,
    pub timeout: Duration,
    /// `reinvocationPolicy: IfNeeded` (mutating only).
    pub reinvoke_if_needed: bool,
    /// The AdmissionReview version to send: the first of `admissionReviewVersions` this
    /// server speaks, or None when it speaks none of them.
    pub review_version: Option<&'static str>,
    pub match_conditions: Vec<MatchCondition>,
    /// The client, or why none could be built (a bad caBundle or URL): a call then fails.
    pub client: Result<HookClient, String>,
}

/// Flattens one stored configuration into its webhooks.
pub fn hooks_of(
    stage: Stage,
    config: &Value,
    registry: &Registry,
    store: &Arc<dyn skiff_store::Store>,
) -> Vec<Hook> {
    let configuration = config
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(webhooks) = config.get("webhooks").and_then(Value::as_array) else {
        return Vec::new();
    };
    webhooks
        .iter()
        .enumerate()
        .map(|(i, w)| hook(stage, &configuration, i, w, registry, store))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub fn rule(v: &Value) -> Rule {
    Rule {
        operations: strings(&v["operations"]),
        api_groups: strings(&v["apiGroups"]),
        api_versions: strings(&v["apiVersions"]),
        resources: strings(&v["resources"]),
        scope: v["scope"].as_str().map(str::to_owned),
    }
}

/// A `metav1.LabelSelector`; absent means `{}` (upstream defaults both selectors to it).
pub fn selector(v: &Value) -> Result<LabelSelector, String> {
    if v.is_null() {
        return Ok(LabelSelector::everything());
    }
    LabelSelector::from_label_selector(v).map_err(|e| e.to_string())
}

fn hook(
    stage: Stage,
    configuration: &str,
    index: usize,
    w: &Value,
    registry: &Registry,
    store: &Arc<dyn skiff_store::Store>,
) -> Hook {
    let name = w["name"].as_str().unwrap_or_default().to_owned();
    let timeout = w["timeoutSeconds"]
        .as_u64()
        .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
        .clamp(1, MAX_TIMEOUT_SECONDS);
    let review_version =
        strings(&w["admissionReviewVersions"])
            .iter()
            .find_map(|v| match v.as_str() {
                "v1" => Some("v1"),
                "v1beta1" => Some("v1beta1"),
                _ => None,
            });
    let match_conditions = w["matchConditions"]
        .as_array()
        .map(|conditions| {
            // Admission expressions are bounded at run time only, as upstream's.
            let env = skiff_cel::Env::admission(&skiff_cel::AdmissionVariables::default())
                .with_cost_limit(u64::MAX);
            conditions
                .iter()
                .map(|c| MatchCondition {
                    name: c["name"].as_str().unwrap_or_default().to_owned(),
                    program: skiff_cel::Program::compile(
                        c["expression"].as_str().unwrap_or_default(),
                        &env,
                    )
                    .map_err(|e| e.to_string()),
                })
                .collect()
        })
        .unwrap_or_default();
    Hook {
        stage,
        configuration: configuration.to_owned(),
        id: format!("{configuration}/{index}/{name}"),
        name,
        rules: w["rules"]
            .as_array()
            .map(|r| r.iter().map(rule).collect())
            .unwrap_or_default(),
        namespace_selector: selector(&w["namespaceSelector"]),
        object_selector: selector(&w["objectSelector"]),
        equivalent: w["matchPolicy"].as_str() != Some("Exact"),
        ignore_failures: w["failurePolicy"].as_str() == Some("Ignore"),
        side_effects: w["sideEffects"].as_str().map(str::to_owned),
        timeout: Duration::from_secs(timeout),
        reinvoke_if_needed: stage == Stage::Mutating
            && w["reinvocationPolicy"].as_str() == Some("IfNeeded"),
        review_version,
        match_conditions,
        client: client(&w["clientConfig"], registry, store),
    }
}

/// The client of a `clientConfig`: a `url`, or a `service` reached through its endpoints.
fn client(
    cc: &Value,
    registry: &Registry,
    store: &Arc<dyn skiff_store::Store>,
) -> Result<HookClient, String> {
    let ca_bundle = match cc["caBundle"].as_str().filter(|s| !s.is_empty()) {
        None => None,
        Some(b64) => {
            use base64::Engine;
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| format!("illegal base64 data in caBundle: {e}"))?,
            )
        }
    };
    let endpoint = match (
        cc["url"].as_str(),
        cc.get("service").filter(|s| !s.is_null()),
    ) {
        (Some(url), _) => Endpoint::url(url)?,
        (None, Some(svc)) => {
            let services = registry
                .get("", "v1", "services")
                .ok_or("services are not served")?;
            let endpoints = registry
                .get("", "v1", "endpoints")
                .ok_or("endpoints are not served")?;
            let namespace = svc["namespace"].as_str().unwrap_or_default();
            let name = svc["name"].as_str().unwrap_or_default();
            Endpoint::Service {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                port: svc["port"].as_u64().unwrap_or(443) as u16,
                path: svc["path"].as_str().unwrap_or_default().to_owned(),
                service_key: services.key(Some(namespace), Some(name)),
                endpoints_key: endpoints.key(Some(namespace), Some(name)),
                store: store.clone(),
            }
        }
        (None, None) => return Err("webhook clientConfig has neither url nor service".into()),
    };
    HookClient::new(endpoint, ca_bundle.as_deref())
}
