//! Calling the webhooks that apply to a request: mutating ones in order with reinvocation,
//! validating ones in parallel, each failure handled per its failurePolicy, as upstream's
//! `generic/webhook.go` (`ShouldCallHook`), `mutating/dispatcher.go` and
//! `validating/dispatcher.go`.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::config::{Hook, Stage};
use super::matching::{self, NamespaceLabels, RuleTarget};
use super::review::{self, Gvk, Gvr, ReviewRequest};
use super::{Attributes, Operation};
use crate::error::{ApiError, Result};
use crate::handler::Api;
use crate::options::DeleteOptions;
use crate::resources::ResourceInfo;

/// How one call went wrong.
enum Failure {
    /// Upstream's `ErrCallingWebhook`: the webhook could not be asked or answered nonsense;
    /// `failurePolicy` decides. The message follows `failed calling webhook "<name>": `.
    Calling(String),
    /// Anything else (a denial, a patch that does not apply, dry run unsupported): the
    /// request fails whatever the policy.
    Fatal(ApiError),
}

/// The request as rules see it, for `r` (the addressed resource or an equivalent one).
fn rule_target<'a>(r: &'a ResourceInfo, attrs: &'a Attributes<'_>) -> RuleTarget<'a> {
    let is_namespace = r.group.is_empty() && r.plural == "namespaces";
    RuleTarget {
        group: &r.group,
        version: &r.version,
        resource: &r.plural,
        subresource: attrs.subresource.unwrap_or(""),
        operation: attrs.operation.as_str(),
        namespace: if is_namespace {
            attrs.name
        } else {
            attrs.namespace.unwrap_or("")
        },
    }
}

/// Other served versions of the same objects (upstream's `EquivalentResourcesFor`): the
/// same storage under another group or version, e.g. `events.k8s.io/v1` events for core
/// events, or another version of a custom resource.
fn equivalents(api: &Api, r: &ResourceInfo) -> Vec<Arc<ResourceInfo>> {
    api.registry
        .all()
        .into_iter()
        .filter(|e| {
            e.storage == r.storage
                && !(e.group == r.group && e.version == r.version && e.plural == r.plural)
        })
        .collect()
}

/// The labels of the stored namespace `name`; 404 when it does not exist, as upstream.
fn stored_namespace_labels(
    api: &Api,
    name: &str,
) -> Result<Option<serde_json::Map<String, Value>>> {
    let namespaces = api
        .registry
        .get("", "v1", "namespaces")
        .ok_or(ApiError::NoRoute)?;
    let kv = api
        .store
        .get(&namespaces.key(None, Some(name)))?
        .ok_or_else(|| ApiError::not_found(&namespaces, name))?;
    let ns: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::Internal(format!("corrupt namespace {name}: {e}")))?;
    Ok(matching::labels(&ns).cloned())
}

/// Upstream's `ShouldCallHook` without match conditions: the resource the webhook matched
/// (`None`: it does not apply). Selector errors count only when a rule matches.
fn matched_resource(
    api: &Api,
    hook: &Hook,
    attrs: &Attributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<Option<Arc<ResourceInfo>>> {
    let target = rule_target(attrs.resource, attrs);
    let namespace_match = match &hook.namespace_selector {
        Err(e) => Err(ApiError::Internal(e.clone())),
        Ok(selector) => match matching::namespace_labels_needed(selector, &target) {
            None => Ok(true),
            Some(NamespaceLabels::Object) => {
                Ok(selector.matches(object.and_then(matching::labels)))
            }
            Some(NamespaceLabels::Stored(name)) => {
                stored_namespace_labels(api, name).map(|labels| selector.matches(labels.as_ref()))
            }
        },
    };
    if matches!(namespace_match, Ok(false)) {
        return Ok(None);
    }
    let object_match = match &hook.object_selector {
        Err(e) => Err(ApiError::Internal(e.clone())),
        Ok(selector) => Ok(matching::object_selector_matches(selector, object, old)),
    };
    if matches!(object_match, Ok(false)) {
        return Ok(None);
    }
    let mut matched = None;
    if hook
        .rules
        .iter()
        .any(|r| matching::rule_matches(r, &target))
    {
        matched = Some(None);
    } else if hook.equivalent {
        let equivalents = equivalents(api, attrs.resource);
        'rules: for rule in &hook.rules {
            for e in &equivalents {
                if matching::rule_matches(rule, &rule_target(e, attrs)) {
                    matched = Some(Some(e.clone()));
                    break 'rules;
                }
            }
        }
    }
    let Some(equivalent) = matched else {
        return Ok(None);
    };
    namespace_match?;
    object_match?;
    Ok(Some(
        equivalent.unwrap_or_else(|| Arc::new(attrs.resource.clone())),
    ))
}

/// One webhook about to be called for one request.
struct Invocation<'a> {
    hook: &'a Hook,
    /// The resource the webhook matched; differs from the request's under matchPolicy
    /// Equivalent.
    resource: Arc<ResourceInfo>,
}

impl Invocation<'_> {
    fn converted(&self, attrs: &Attributes<'_>, obj: Option<&Value>) -> Option<Value> {
        obj.map(|o| to_version(attrs.resource, &self.resource, o))
    }
}

/// An object of resource `from` in the shape of the equivalent resource `to`.
fn to_version(from: &ResourceInfo, to: &ResourceInfo, obj: &Value) -> Value {
    if from.group == to.group && from.version == to.version && from.kind == to.kind {
        return obj.clone();
    }
    crate::convert::from_storage(to, crate::convert::to_storage(from, obj.clone()))
}

fn gvk(r: &ResourceInfo) -> Gvk {
    Gvk {
        group: r.group.clone(),
        version: r.version.clone(),
        kind: r.kind.clone(),
    }
}

fn gvr(r: &ResourceInfo) -> Gvr {
    Gvr {
        group: r.group.clone(),
        version: r.version.clone(),
        resource: r.plural.clone(),
    }
}

/// Everything needed to call the webhooks of one stage for one request.
pub struct Call<'a> {
    pub api: &'a Api,
    pub attrs: &'a Attributes<'a>,
    /// The options object the review carries.
    pub options: Value,
}

impl<'a> Call<'a> {
    /// `CreateOptions`/`UpdateOptions` from the request's parameters.
    pub fn write(api: &'a Api, attrs: &'a Attributes<'a>) -> Call<'a> {
        let kind = match attrs.operation {
            Operation::Create => "CreateOptions",
            _ => "UpdateOptions",
        };
        let options = review::options(kind, attrs.dry_run, attrs.params.get("fieldManager"));
        Call {
            api,
            attrs,
            options,
        }
    }

    /// `DeleteOptions` as the client sent them.
    pub fn delete(api: &'a Api, attrs: &'a Attributes<'a>, o: &DeleteOptions) -> Call<'a> {
        let mut options = review::options("DeleteOptions", o.dry_run, None);
        if let Some(g) = o.grace_period_seconds {
            options["gracePeriodSeconds"] = g.into();
        }
        if let Some(p) = &o.propagation_policy {
            options["propagationPolicy"] = p.clone().into();
        }
        if o.precondition_uid.is_some() || o.precondition_resource_version.is_some() {
            let mut pre = serde_json::Map::new();
            if let Some(u) = &o.precondition_uid {
                pre.insert("uid".into(), u.clone().into());
            }
            if let Some(rv) = &o.precondition_resource_version {
                pre.insert("resourceVersion".into(), rv.clone().into());
            }
            options["preconditions"] = Value::Object(pre);
        }
        Call {
            api,
            attrs,
            options,
        }
    }

    /// `ShouldCallHook`: rules and selectors, then the match conditions.
    fn should_call<'h>(
        &self,
        hook: &'h Hook,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<Option<Invocation<'h>>> {
        let Some(resource) = matched_resource(self.api, hook, self.attrs, object, old)? else {
            return Ok(None);
        };
        let invocation = Invocation { hook, resource };
        if hook.match_conditions.is_empty() {
            return Ok(Some(invocation));
        }
        let object = invocation.converted(self.attrs, object);
        let old = invocation.converted(self.attrs, old);
        let request = self
            .request(&invocation, "", object.as_ref(), old.as_ref())
            .request();
        let null = Value::Null;
        let bindings = skiff_cel::Bindings::new()
            .with("object", object.as_ref().unwrap_or(&null))
            .with("oldObject", old.as_ref().unwrap_or(&null))
            .with("request", &request);
        let mut errors = Vec::new();
        for condition in &hook.match_conditions {
            let result = match &condition.program {
                Err(e) => Err(format!("compilation failed: {e}")),
                Ok(program) => program.eval(&bindings).map_err(|e| e.to_string()),
            };
            match result {
                Ok(Value::Bool(true)) => {}
                // Any false condition skips the webhook, whatever else failed.
                Ok(Value::Bool(false)) => return Ok(None),
                Ok(other) => errors.push(format!(
                    "matchCondition {:?} resulted in a non-boolean value {other}",
                    condition.name
                )),
                Err(e) => errors.push(format!(
                    "matchCondition {:?} resulted in error: {e}",
                    condition.name
                )),
            }
        }
        match errors.as_slice() {
            [] => Ok(Some(invocation)),
            _ if hook.ignore_failures => Ok(None),
            [one] => Err(self.forbidden(one)),
            many => Err(self.forbidden(&format!("[{}]", many.join(", ")))),
        }
    }

    /// Upstream's `NewForbidden` for the request's resource and name.
    fn forbidden(&self, why: &str) -> ApiError {
        let name = if self.attrs.name.is_empty() {
            "Unknown"
        } else {
            self.attrs.name
        };
        ApiError::Forbidden(format!(
            "{} {name:?} is forbidden: {why}",
            self.attrs.resource.qualified()
        ))
    }

    fn request<'r>(
        &'r self,
        invocation: &'r Invocation<'_>,
        uid: &'r str,
        object: Option<&'r Value>,
        old: Option<&'r Value>,
    ) -> ReviewRequest<'r> {
        ReviewRequest {
            uid,
            kind: gvk(&invocation.resource),
            resource: gvr(&invocation.resource),
            request_kind: gvk(self.attrs.resource),
            request_resource: gvr(self.attrs.resource),
            subresource: self.attrs.subresource.unwrap_or(""),
            name: self.attrs.name,
            namespace: self.attrs.namespace.unwrap_or(""),
            operation: self.attrs.operation.as_str(),
            object,
            old_object: old,
            dry_run: self.attrs.dry_run,
            options: self.options.clone(),
            user: &self.attrs.params.user,
        }
    }
}

impl Call<'_> {
    /// Sends one review and checks the response: upstream's `callHook` and
    /// `callAttrMutatingHook` up to the verdict.
    async fn send(
        &self,
        invocation: &Invocation<'_>,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<review::Verdict, Failure> {
        let hook = invocation.hook;
        if self.attrs.dry_run {
            match hook.side_effects.as_deref() {
                None => return Err(Failure::Calling("Webhook SideEffects is nil".into())),
                Some("None" | "NoneOnDryRun") => {}
                Some(_) => {
                    return Err(Failure::Fatal(ApiError::BadRequest(format!(
                        "admission webhook {:?} does not support dry run",
                        hook.name
                    ))))
                }
            }
        }
        let Some(version) = hook.review_version else {
            return Err(Failure::Calling(
                "webhook does not accept known AdmissionReview versions (v1, v1beta1)".into(),
            ));
        };
        let client = hook
            .client
            .as_ref()
            .map_err(|e| Failure::Calling(format!("could not get REST client: {e}")))?;
        let uid = uuid::Uuid::new_v4().to_string();
        let body = self
            .request(invocation, &uid, object, old)
            .review(version)
            .to_string();
        let response = client
            .post(body, hook.timeout)
            .await
            .map_err(|e| Failure::Calling(format!("failed to call webhook: {e}")))?;
        let mutating = hook.stage == Stage::Mutating;
        let verdict = review::verify(&uid, version, mutating, &response)
            .map_err(|e| Failure::Calling(format!("received invalid webhook response: {e}")))?;
        for w in &verdict.warnings {
            self.attrs.params.warn(w.clone());
        }
        if !verdict.allowed {
            return Err(Failure::Fatal(review::denial(
                &hook.name,
                verdict.status.as_ref(),
            )));
        }
        Ok(verdict)
    }

    /// A failure under the webhook's policy: `Ok` when it is ignored.
    fn settle(&self, hook: &Hook, failure: Failure) -> Result<()> {
        match failure {
            Failure::Calling(reason) => {
                let message = format!("failed calling webhook {:?}: {reason}", hook.name);
                if hook.ignore_failures {
                    tracing::warn!(configuration = %hook.configuration, webhook = %hook.name, error = %message, "failed calling webhook, failing open");
                    Ok(())
                } else {
                    tracing::warn!(configuration = %hook.configuration, webhook = %hook.name, error = %message, "failed calling webhook, failing closed");
                    Err(ApiError::Internal(message))
                }
            }
            Failure::Fatal(e) => Err(e),
        }
    }

    /// Calls one mutating webhook and applies its patch; returns whether the object changed.
    async fn mutate_once(
        &self,
        invocation: &Invocation<'_>,
        object: &mut Option<Value>,
        old: Option<&Value>,
    ) -> Result<bool, Failure> {
        let hook = invocation.hook;
        let versioned = invocation.converted(self.attrs, object.as_ref());
        let versioned_old = invocation.converted(self.attrs, old);
        let verdict = self
            .send(invocation, versioned.as_ref(), versioned_old.as_ref())
            .await?;
        let Some(patch) = verdict.patch else {
            return Ok(false);
        };
        if patch.as_array().is_some_and(Vec::is_empty) {
            return Ok(false);
        }
        let Some(mut patched) = versioned else {
            return Err(Failure::Fatal(ApiError::Internal(format!(
                "admission webhook {:?} attempted to modify the object, which is not supported for this operation",
                hook.name
            ))));
        };
        match verdict.patch_type.as_deref() {
            Some("JSONPatch") => {}
            other => {
                return Err(Failure::Calling(format!(
                    "unsupported patch type {:?}",
                    other.unwrap_or_default()
                )))
            }
        }
        let before = patched.clone();
        match review::apply_patch(&mut patched, &patch) {
            Ok(_) => {}
            Err(e @ review::PatchError::Undecodable(_)) => {
                return Err(Failure::Calling(e.to_string()))
            }
            Err(e) => return Err(Failure::Fatal(ApiError::Internal(e.to_string()))),
        }
        if patched == before {
            return Ok(false);
        }
        // Back to the addressed version, through the typed form as upstream decodes the
        // patched JSON into its Go type (unknown fields go, wrong types fail).
        let mut patched = to_version(&invocation.resource, self.attrs.resource, &patched);
        if let Some(decode) = self.attrs.resource.decode {
            patched = decode(&patched)
                .map_err(|e| Failure::Fatal(ApiError::Internal(e.to_string())))?
                .value;
        }
        let changed = object.as_ref() != Some(&patched);
        *object = Some(patched);
        Ok(changed)
    }

    /// The mutating stage: each matching webhook in order, then once more those with
    /// `reinvocationPolicy: IfNeeded` that ran before a later webhook changed the object
    /// (upstream's `webhookReinvokeContext`).
    pub async fn mutate(
        &self,
        hooks: &[Arc<Hook>],
        object: Option<Value>,
        old: Option<&Value>,
    ) -> Result<Option<Value>> {
        let mut object = object;
        let mut previously_invoked: Vec<&str> = Vec::new();
        let mut reinvoke: HashSet<&str> = HashSet::new();
        for round in 0..2 {
            if round == 1 && reinvoke.is_empty() {
                break;
            }
            for hook in hooks {
                let Some(invocation) = self.should_call(hook, object.as_ref(), old)? else {
                    continue;
                };
                // A webhook skipped in the first round is never called in the second.
                if round == 1 && !reinvoke.contains(hook.id.as_str()) {
                    continue;
                }
                let result = self.mutate_once(&invocation, &mut object, old).await;
                if matches!(result, Ok(true)) && round == 0 {
                    reinvoke.extend(previously_invoked.drain(..));
                }
                if hook.reinvoke_if_needed {
                    previously_invoked.push(hook.id.as_str());
                }
                if let Err(failure) = result {
                    self.settle(hook, failure)?;
                }
            }
        }
        Ok(object)
    }

    /// The validating stage: every matching webhook at once; the first failure (in webhook
    /// order) fails the request.
    pub async fn validate(
        &self,
        hooks: &[Arc<Hook>],
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<()> {
        let mut invocations = Vec::new();
        for hook in hooks {
            if let Some(invocation) = self.should_call(hook, object, old)? {
                invocations.push(invocation);
            }
        }
        if invocations.is_empty() {
            return Ok(());
        }
        let calls = invocations.iter().map(|invocation| async move {
            let versioned = invocation.converted(self.attrs, object);
            let versioned_old = invocation.converted(self.attrs, old);
            match self
                .send(invocation, versioned.as_ref(), versioned_old.as_ref())
                .await
            {
                Ok(_) => Ok(()),
                Err(failure) => self.settle(invocation.hook, failure),
            }
        });
        for result in futures::future::join_all(calls).await {
            result?;
        }
        Ok(())
    }
}
