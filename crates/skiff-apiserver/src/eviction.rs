//! `pods/eviction` (policy/v1 Eviction): a delete that honours PodDisruptionBudgets, as
//! upstream's eviction REST (`pkg/registry/core/pod/storage/eviction.go`). `kubectl drain`
//! uses it and retries while it answers 429.
//!
//! A pod that is already finished, pending or terminating is deleted at once; otherwise its
//! one matching budget (more than one is refused) must allow a disruption: the budget's
//! status is decremented and the pod recorded in `disruptedPods` by compare-and-swap, and
//! only then is the pod deleted, gracefully, with the eviction's `deleteOptions`. The
//! disruption controller (skiff-controllers `disruption`) keeps the budget's status true.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use skiff_apimachinery::selector::LabelSelector;

use crate::error::{ApiError, Result};
use crate::handler::{materialize, Api};
use crate::options::DeleteOptions;
use crate::request::{Params, Target};

/// How many evicted pods a budget may wait on before the controller confirms them
/// (upstream's `MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;

/// Upstream's `canIgnorePDB`: pods that are finished, pending or already terminating
/// disrupt nothing.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed" | "Pending")
    ) || !pod["metadata"]["deletionTimestamp"].is_null()
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The budgets of `pdbs` whose selector matches `pod` (a budget without a selector matches
/// nothing; an empty one, everything).
pub fn matching_budgets<'a>(pod: &Value, pdbs: &'a [Value]) -> Vec<&'a Value> {
    let labels = pod["metadata"]["labels"].as_object();
    pdbs.iter()
        .filter(|pdb| {
            let selector = &pdb["spec"]["selector"];
            !selector.is_null()
                && LabelSelector::from_label_selector(selector).is_ok_and(|s| s.matches(labels))
        })
        .collect()
}

/// The 429 upstream answers when a budget forbids the eviction, with its cause.
fn too_many_requests(cause: String) -> ApiError {
    ApiError::Relayed {
        code: 429,
        reason: "TooManyRequests".into(),
        message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        details: Some(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]})),
    }
}

/// Upstream's `checkAndDecrement` on a budget as stored now: the budget with one disruption
/// fewer and `pod_name` recorded as disrupted at `now`, or why not. `None` when the pod may
/// go without spending a disruption (an unready pod while the budget is met, as the
/// default `IfHealthyBudget` policy, or any unready pod under `AlwaysAllow`).
pub fn check_and_decrement(pdb: &Value, pod: &Value, now: &str) -> Result<Option<Value>> {
    let name = pdb["metadata"]["name"].as_str().unwrap_or_default();
    let status = &pdb["status"];
    let observed = status["observedGeneration"].as_i64().unwrap_or(0);
    let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(0);
    if observed < generation {
        return Err(too_many_requests(format!(
            "The disruption budget {name} is still being processed by the server."
        )));
    }
    let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
    let (current, desired) = (
        status["currentHealthy"].as_i64().unwrap_or(0),
        status["desiredHealthy"].as_i64().unwrap_or(0),
    );
    if !pod_ready(pod) {
        let policy = pdb["spec"]["unhealthyPodEvictionPolicy"]
            .as_str()
            .unwrap_or("IfHealthyBudget");
        if policy == "AlwaysAllow" || (current >= desired && desired > 0) {
            return Ok(None);
        }
    }
    if allowed < 0 {
        return Err(ApiError::Forbidden(
            "pdb disruptions allowed is negative".into(),
        ));
    }
    let disrupted = status["disruptedPods"].as_object().map_or(0, Map::len);
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(ApiError::Forbidden(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller".into(),
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(format!(
            "The disruption budget {name} needs {desired} healthy pods and has {current} currently"
        )));
    }
    let mut new = pdb.clone();
    let left = allowed - 1;
    new["status"]["disruptionsAllowed"] = json!(left);
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    if !new["status"]["disruptedPods"].is_object() {
        new["status"]["disruptedPods"] = json!({});
    }
    new["status"]["disruptedPods"][pod_name] = json!(now);
    if left == 0 {
        set_disruption_allowed_false(&mut new, now);
    }
    Ok(Some(new))
}

/// `DisruptionAllowed=False` (InsufficientPods), as upstream sets it when the last
/// disruption is spent.
fn set_disruption_allowed_false(pdb: &mut Value, now: &str) {
    let observed = pdb["status"]["observedGeneration"].clone();
    let condition = json!({"type": "DisruptionAllowed", "status": "False",
        "reason": "InsufficientPods", "message": "", "observedGeneration": observed,
        "lastTransitionTime": now});
    let conditions = pdb["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<Value> = Vec::new();
    let mut found = false;
    for c in conditions {
        if c["type"] == "DisruptionAllowed" {
            found = true;
            if c["status"] == "False" {
                out.push(c);
            } else {
                out.push(condition.clone());
            }
        } else {
            out.push(c);
        }
    }
    if !found {
        out.push(condition);
    }
    pdb["status"]["conditions"] = Value::Array(out);
}

/// POST `pods/{name}/eviction`.
pub async fn evict(api: &Api, t: &Target, p: &Params, eviction: &Value) -> Result<Response> {
    let name = t.name()?.to_owned();
    if eviction["metadata"]["name"].as_str() != Some(name.as_str()) {
        return Err(ApiError::BadRequest(
            "name in URL does not match name in Eviction object".into(),
        ));
    }
    let pod_target = Target {
        subresource: None,
        ..t.clone()
    };
    let nr = crate::plugins::noderestriction::Request {
        group: "",
        resource: "pods",
        subresource: "eviction",
        operation: crate::webhook::Operation::Create,
        namespace: t.namespace.as_deref().unwrap_or_default(),
        name: &name,
        object: Some(eviction),
        old: None,
    };
    crate::plugins::noderestriction::check(api, &p.user, &t.resource, &nr)?;
    let pod = api.get(&pod_target)?;
    let options = DeleteOptions::parse(p, eviction.get("deleteOptions").filter(|o| !o.is_null()))?;
    if !can_ignore_budget(&pod) {
        let ns = t.namespace.clone().unwrap_or_default();
        let r = api
            .registry
            .get("policy", "v1", "poddisruptionbudgets")
            .ok_or_else(|| ApiError::Internal("poddisruptionbudgets are not served".into()))?;
        let pdbs: Vec<Value> = api
            .store
            .list(&r.key(Some(&ns), None), None, None)?
            .items
            .iter()
            .map(materialize)
            .collect::<Result<_>>()?;
        let matching = matching_budgets(&pod, &pdbs);
        if matching.len() > 1 {
            return Err(ApiError::Internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
            ));
        }
        if let Some(pdb) = matching.first() {
            let pdb_target = Target {
                resource: r.clone(),
                namespace: Some(ns.clone()),
                name: pdb["metadata"]["name"].as_str().map(str::to_owned),
                subresource: Some("status".into()),
            };
            let now = crate::object::now_rfc3339();
            let mut spend = true;
            if !options.dry_run {
                api.update_with(&pdb_target, p, None, |current| {
                    match check_and_decrement(current, &pod, &now)? {
                        Some(new) => Ok(new),
                        None => {
                            spend = false;
                            Ok(current.clone())
                        }
                    }
                })
                .await?;
            } else {
                check_and_decrement(pdb, &pod, &now)?;
            }
            tracing::debug!(pod = %name, budget_spent = spend, "eviction allowed by its budget");
        }
    }
    match api.delete(&pod_target, &options).await {
        Ok(_) => {}
        // Gone meanwhile: evicted all the same.
        Err(ApiError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(status: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "generation": 1},
               "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
               "status": status})
    }

    fn pod(ready: bool) -> Value {
        json!({"metadata": {"name": "web-1", "labels": {"app": "web"}},
               "status": {"phase": "Running",
                          "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    fn cause(e: ApiError) -> (u16, String) {
        match e {
            ApiError::Relayed { code, details, .. } => (
                code,
                details.unwrap()["causes"][0]["message"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ),
            other => (0, other.to_string()),
        }
    }

    /// Upstream's eviction_test.go TestEviction / TestEvictionIgnorePDB cases, on the
    /// decision.
    #[test]
    fn budgets_allow_or_refuse_evictions_as_upstream() {
        let now = "2026-01-01T00:00:00Z";
        // Allowed: one disruption spent, the pod recorded.
        let ok = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": 1,
                            "currentHealthy": 3, "desiredHealthy": 2}));
        let new = check_and_decrement(&ok, &pod(true), now).unwrap().unwrap();
        assert_eq!(new["status"]["disruptionsAllowed"], 0);
        assert_eq!(new["status"]["disruptedPods"]["web-1"], now);
        assert_eq!(new["status"]["conditions"][0]["reason"], "InsufficientPods");
        // None left: 429 with upstream's cause.
        let none = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": 0,
                              "currentHealthy": 2, "desiredHealthy": 2}));
        assert_eq!(
            cause(check_and_decrement(&none, &pod(true), now).unwrap_err()),
            (
                429,
                "The disruption budget web needs 2 healthy pods and has 2 currently".into()
            )
        );
        // Not yet processed by the controller.
        let stale = json!({"metadata": {"name": "web", "generation": 2},
                           "status": {"observedGeneration": 1, "disruptionsAllowed": 5}});
        assert_eq!(
            cause(check_and_decrement(&stale, &pod(true), now).unwrap_err()),
            (
                429,
                "The disruption budget web is still being processed by the server.".into()
            )
        );
        // An unready pod while the budget is met goes without spending a disruption...
        assert_eq!(check_and_decrement(&none, &pod(false), now).unwrap(), None);
        // ... but not when the budget is not met.
        let short = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": 0,
                               "currentHealthy": 1, "desiredHealthy": 2}));
        assert_eq!(
            cause(check_and_decrement(&short, &pod(false), now).unwrap_err()).0,
            429
        );
        // AlwaysAllow lets any unready pod go.
        let mut always = short.clone();
        always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        assert_eq!(
            check_and_decrement(&always, &pod(false), now).unwrap(),
            None
        );
        // Negative disruptions allowed: forbidden.
        let negative = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": -1,
                                  "currentHealthy": 3, "desiredHealthy": 2}));
        assert!(matches!(
            check_and_decrement(&negative, &pod(true), now),
            Err(ApiError::Forbidden(m)) if m == "pdb disruptions allowed is negative"
        ));
    }

    #[test]
    fn finished_pending_and_terminating_pods_ignore_budgets() {
        for phase in ["Succeeded", "Failed", "Pending"] {
            assert!(
                can_ignore_budget(&json!({"status": {"phase": phase}})),
                "{phase}"
            );
        }
        assert!(can_ignore_budget(
            &json!({"metadata": {"deletionTimestamp": "x"},
                                          "status": {"phase": "Running"}})
        ));
        assert!(!can_ignore_budget(&json!({"status": {"phase": "Running"}})));
    }

    #[test]
    fn budgets_match_by_selector() {
        let p = pod(true);
        let pdbs = vec![
            json!({"metadata": {"name": "match"}, "spec": {"selector": {"matchLabels": {"app": "web"}}}}),
            json!({"metadata": {"name": "other"}, "spec": {"selector": {"matchLabels": {"app": "db"}}}}),
            json!({"metadata": {"name": "none"}, "spec": {}}),
            json!({"metadata": {"name": "all"}, "spec": {"selector": {}}}),
        ];
        let names: Vec<&str> = matching_budgets(&p, &pdbs)
            .iter()
            .map(|b| b["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["match", "all"]);
    }
}
