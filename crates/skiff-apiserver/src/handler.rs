//! The generic REST verbs, driven by the resource table: every kind goes through these.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use skiff_store::{KeyValue, Store};

use crate::admission;
use crate::error::{ApiError, Result};
use crate::managed::Writer;
use crate::object::{self, meta_mut};
use crate::options::DeleteOptions;
use crate::request::{Params, Target};
use crate::resources::{Registry, ResourceInfo};
use crate::webhook::{Attributes, Operation};

/// How many times a server-side read-modify-write retries on a conflict it caused itself.
const CONFLICT_RETRIES: usize = 16;
/// How long a read for a revision the store has not reached waits for it (upstream's
/// `blockTimeout` in the watch cache).
const TOO_LARGE_RV_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Shared state of the API: the store and the tables that drive handling.
pub struct Api {
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub admission: admission::Admission,
    /// Admission webhooks (mutating before validation, validating after).
    pub webhooks: crate::webhook::Webhooks,
    /// ValidatingAdmissionPolicies and their bindings.
    pub policies: crate::policy::Policies,
    /// Which post-start hooks have finished, for `/healthz`, `/livez` and `/readyz`.
    pub health: crate::health::Health,
    /// Namespaces marked for deletion, for the termination task to empty.
    pub terminating: tokio::sync::mpsc::UnboundedSender<String>,
    /// APIServices: the routes of remote group-versions and their discovery.
    pub aggregator: crate::aggregator::Aggregator,
    /// The ServiceAccount token issuer (authentication of bearer tokens, TokenRequest).
    pub authn: crate::authn::Authn,
    /// The RBAC index every request is authorized against.
    pub rbac: crate::authz::Rbac,
    /// Resource metrics the collector scraped from the nodes (`metrics.k8s.io`).
    pub metrics: crate::metricsapi::Metrics,
    /// The API server's Prometheus metrics and the process registry `/metrics` serves.
    pub telemetry: crate::metrics::ApiMetrics,
    /// The DefaultTolerationSeconds admission plugin's periods.
    pub default_tolerations: crate::plugins::tolerations::DefaultTolerationSeconds,
    /// The ServiceAccount admission plugin's switch (the server turns it on).
    pub service_accounts: crate::plugins::serviceaccount::ServiceAccountAdmission,
    /// The client to nodes' kubelet endpoints (HTTPS with the kubelet client certificate).
    pub nodes: crate::nodeclient::NodeClient,
}

/// Namespaces upstream refuses to delete (`NamespaceLifecycle` admission).
const PROTECTED_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// How a write's `metadata.managedFields` come about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fields {
    /// Computed here: what the write changed belongs to its manager (operation Update).
    Track,
    /// Already computed by a server-side apply.
    Applied,
}

/// Parses a stored value and stamps it with its resourceVersion.
pub fn materialize(kv: &KeyValue) -> Result<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::Internal(format!("corrupt object at {}: {e}", kv.key)))?;
    object::set_resource_version(&mut obj, kv.mod_revision);
    Ok(obj)
}

/// Serializes an object in the shape it is stored in, without server-stamped fields; an
/// object too large to store is refused (see [`check_stored_size`]).
pub(crate) fn encode(r: &ResourceInfo, obj: &Value) -> Result<Bytes> {
    let mut stored = crate::convert::to_storage(r, obj.clone());
    object::strip_server_fields(&mut stored);
    let bytes = serde_json::to_vec(&stored).expect("a Value always serializes");
    check_stored_size(r.custom.is_none(), obj, bytes.len())?;
    Ok(Bytes::from(bytes))
}

/// The largest object etcd stores: its default `--max-request-bytes`, 1.5 MiB.
pub const MAX_STORED_BYTES: usize = 1536 * 1024;

/// Refuses an object larger than etcd would store, as kube-apiserver does: 413 with etcd's
/// message. Upstream stores built-in kinds as protobuf and custom resources as JSON, so the
/// size that counts is that form's. A Kubernetes object's protobuf is smaller than its JSON
/// (tags for quoted names, raw bytes for base64), so it is only computed for the rare object
/// whose JSON is over the limit.
pub(crate) fn check_stored_size(built_in: bool, obj: &Value, json_len: usize) -> Result<()> {
    if json_len <= MAX_STORED_BYTES {
        return Ok(());
    }
    let stored_len = match built_in {
        true => skiff_protobuf::encode(obj).map_or(json_len, |pb| pb.len()),
        false => json_len,
    };
    if stored_len <= MAX_STORED_BYTES {
        return Ok(());
    }
    Err(ApiError::TooLarge(
        "Request entity too large: etcdserver: request is too large".into(),
    ))
}

impl Api {
    /// The current object at the target, or 404.
    pub fn read(&self, t: &Target) -> Result<(Value, KeyValue)> {
        let name = t.name()?;
        let kv = self
            .store
            .get(&t.key())?
            .ok_or_else(|| ApiError::not_found(&t.resource, name))?;
        let obj = crate::convert::from_storage(&t.resource, materialize(&kv)?);
        Ok((obj, kv))
    }

    pub fn get(&self, t: &Target) -> Result<Value> {
        Ok(self.read(t)?.0)
    }

    /// Refuses a read that must be current while the store cannot vouch for that (a cache
    /// that lost its etcd): upstream serves a get or list without `resourceVersion` from
    /// etcd's quorum, so it fails while etcd is unreachable, whereas `resourceVersion=0`
    /// accepts any state and is still answered.
    pub fn check_consistent_read(&self, p: &Params) -> Result<()> {
        if p.get("resourceVersion").unwrap_or_default().is_empty() {
            self.store.consistent_read()?;
        }
        Ok(())
    }

    /// Waits until the store has reached `revision`, for reads that must not be older than it
    /// (a list with `resourceVersion`); upstream's watch cache waits 3 s, then answers 504
    /// "Too large resource version".
    pub async fn wait_for_revision(&self, revision: i64) -> Result<()> {
        let current = self.store.current_revision();
        if revision <= current {
            return Ok(());
        }
        let mut watch = self.store.watch("", current)?;
        let reached = tokio::time::timeout(TOO_LARGE_RV_WAIT, async {
            while let Some(Ok(event)) = watch.next().await {
                if event.revision >= revision {
                    return true;
                }
            }
            false
        })
        .await;
        match reached {
            Ok(true) => Ok(()),
            _ => Err(ApiError::TooLargeResourceVersion {
                requested: revision,
                current: self.store.current_revision(),
            }),
        }
    }

    /// A list with selectors and `limit`/`continue` paging.
    pub fn list(&self, t: &Target, p: &Params) -> Result<Value> {
        let r = &t.resource;
        let labels = p.label_selector()?;
        let fields = p.field_selector(r)?;
        let limit = p.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
        let prefix = t.resource.key(t.namespace.as_deref(), None);
        // A continued list answers with the revision of its first page: later pages are read
        // at the latest state, so a client that watches from there replays every change made
        // since the first page and misses none (reporting the later page's revision lost the
        // changes to objects already listed). Once that revision is compacted, the token has
        // expired, as upstream's does.
        let (mut start, mut revision) = match p.get("continue") {
            Some(token) => {
                let (rv, key) = decode_continue(token)?;
                // A token whose revision is compacted has expired; upstream answers with a
                // token that continues from the same key at the latest revision (-1), for
                // clients that accept an inconsistent list.
                if rv == INCONSISTENT_CONTINUE {
                    (Some(key), None)
                } else if rv < self.store.compacted_revision() {
                    return Err(ApiError::ExpiredContinue {
                        token: encode_continue(INCONSISTENT_CONTINUE, &key),
                    });
                } else {
                    (Some(key), Some(rv))
                }
            }
            None => (None, None),
        };
        let mut items = Vec::new();
        let mut next = None;
        loop {
            let page =
                self.store
                    .list(&prefix, start.as_deref(), limit.map(|l| l - items.len()))?;
            revision.get_or_insert(page.revision);
            let last = page.items.last().map(|kv| kv.key.clone());
            for kv in &page.items {
                let obj = materialize(kv)?;
                if labels.matches(object::labels(&obj)) && fields.matches(&obj) {
                    items.push(crate::convert::from_storage(r, obj));
                }
            }
            let full = limit.is_some_and(|l| items.len() >= l);
            match (page.more, full) {
                (true, true) => {
                    next = last;
                    break;
                }
                (true, false) => start = last,
                (false, _) => break,
            }
        }
        let revision = revision.unwrap_or_default();
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if let Some(key) = next {
            metadata["continue"] = json!(encode_continue(revision, &key));
            // Upstream counts what is left only when no selector filters it.
            if p.get("labelSelector").is_none() && p.get("fieldSelector").is_none() {
                metadata["remainingItemCount"] = json!(self.store.count_after(&prefix, &key)?);
            }
        }
        Ok(json!({
            "kind": r.list_kind(),
            "apiVersion": r.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }

    /// POST to a collection.
    pub async fn create(&self, t: &Target, p: &Params, obj: Value) -> Result<Value> {
        self.create_with(t, p, obj, Fields::Track).await
    }

    /// A create whose managedFields are tracked for the writer, or were already computed
    /// by a server-side apply.
    pub async fn create_with(
        &self,
        t: &Target,
        p: &Params,
        mut obj: Value,
        fields: Fields,
    ) -> Result<Value> {
        let r = t.resource.clone();
        check_kind(&r, &mut obj)?;
        let ns = self.namespace_for(t, &obj)?;
        let meta = meta_mut(&mut obj);
        if let Some(ns) = &ns {
            meta.insert("namespace".into(), json!(ns));
        }
        if meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(base) if !base.is_empty() => {
                    let name = format!("{base}{}", object::name_suffix());
                    meta.insert("name".into(), json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &r,
                        "",
                        vec![crate::error::Cause {
                            reason: "FieldValueRequired".into(),
                            message: "name or generateName is required".into(),
                            field: "metadata.name".into(),
                        }],
                    ))
                }
            }
        }
        let obj = self.admission.decode(&r, obj, p)?;
        let mut obj = match fields {
            Fields::Track => Writer {
                resource: &r,
                subresource: None,
                params: p,
            }
            .track(None, obj),
            Fields::Applied => obj,
        };
        object::strip_server_fields(&mut obj);
        let meta = meta_mut(&mut obj);
        for owned in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            meta.remove(owned);
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
        if r.generation {
            meta.insert("generation".into(), json!(1));
        }
        let name = object::name(&obj).unwrap_or_default().to_owned();
        if let Some(ns) = &ns {
            self.require_namespace(&r, &name, ns)?;
        }
        self.admission.on_create(self, &r, p, &mut obj)?;
        crate::authn::fill_legacy_token(self, &r, &mut obj)?;
        let attrs = Attributes {
            resource: &r,
            subresource: None,
            operation: Operation::Create,
            namespace: ns.as_deref(),
            name: &name,
            dry_run: p.dry_run(),
            params: p,
        };
        self.admit_builtin(&attrs, &mut obj)?;
        crate::plugins::serviceaccount::admit(self, &attrs, &mut obj).await?;
        let mut obj = self.webhooks.mutate(self, &attrs, obj, None).await?;
        let guard = self.admission.reserve(&r, &mut obj)?;
        self.admission.validate(&r, &obj, None)?;
        self.validating_admission(&attrs, Some(&obj), None).await?;
        crate::plugins::quota::charge(self, &attrs, &obj, None).await?;
        let key = r.key(ns.as_deref(), Some(&name));
        if p.dry_run() {
            return Ok(obj);
        }
        match self.store.create(key, encode(&r, &obj)?).await {
            Ok(kv) => {
                guard.commit();
                object::set_resource_version(&mut obj, kv.mod_revision);
                Ok(obj)
            }
            Err(skiff_store::Error::AlreadyExists(_)) => Err(ApiError::already_exists(&r, &name)),
            Err(e) => Err(e.into()),
        }
    }

    /// PUT of a whole object (or of its status subresource).
    pub async fn replace(&self, t: &Target, p: &Params, mut obj: Value) -> Result<Value> {
        let r = t.resource.clone();
        let name = t.name()?.to_owned();
        check_kind(&r, &mut obj)?;
        if let Some(body_name) = object::name(&obj) {
            if body_name != name {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
        }
        let ns = self.namespace_for(t, &obj)?;
        let meta = meta_mut(&mut obj);
        meta.insert("name".into(), json!(name));
        if let Some(ns) = &ns {
            meta.insert("namespace".into(), json!(ns));
        }
        let precondition = resource_version_of(&obj)?;
        self.update_with(t, p, precondition, |_| Ok(obj.clone()))
            .await
    }

    /// Read, transform, validate and compare-and-swap, retrying when another writer won and
    /// the client gave no resourceVersion of its own.
    pub async fn update_with(
        &self,
        t: &Target,
        p: &Params,
        precondition: Option<i64>,
        transform: impl FnMut(&Value) -> Result<Value>,
    ) -> Result<Value> {
        self.update_fields(t, p, precondition, Fields::Track, transform)
            .await
    }

    /// [`Api::update_with`], saying how the new object's managedFields come about.
    pub async fn update_fields(
        &self,
        t: &Target,
        p: &Params,
        precondition: Option<i64>,
        fields: Fields,
        mut transform: impl FnMut(&Value) -> Result<Value>,
    ) -> Result<Value> {
        let r = t.resource.clone();
        let name = t.name()?.to_owned();
        for _ in 0..CONFLICT_RETRIES {
            let (old, kv) = self.read(t)?;
            if precondition.is_some_and(|rv| rv != kv.mod_revision) {
                return Err(ApiError::modified(&r, &name));
            }
            let proposed = transform(&old)?;
            let mut new = merge_for_subresource(&r, t.subresource.as_deref(), &old, proposed);
            check_kind(&r, &mut new)?;
            let mut new = self.admission.decode(&r, new, p)?;
            preserve_server_fields(&r, &old, &mut new);
            self.admission
                .on_update(&r, t.subresource.as_deref(), &old, &mut new)?;
            let attrs = Attributes {
                resource: &r,
                subresource: t.subresource.as_deref(),
                operation: Operation::Update,
                namespace: t.namespace.as_deref(),
                name: &name,
                dry_run: p.dry_run(),
                params: p,
            };
            self.admit_builtin_update(&attrs, &mut new, &old)?;
            let mut new = self.webhooks.mutate(self, &attrs, new, Some(&old)).await?;
            // Upstream's binding and finalize endpoints write without the field manager.
            let tracked = matches!(
                t.subresource.as_deref(),
                None | Some("status" | "scale" | "approval" | "ephemeralcontainers")
            );
            if fields == Fields::Track && tracked {
                new = Writer {
                    resource: &r,
                    subresource: t.subresource.as_deref(),
                    params: p,
                }
                .track(Some(&old), new);
            }
            // A binding only sets spec.nodeName, which pod-update validation forbids for
            // ordinary updates; upstream's binding path validates the pod, not the update.
            match t.subresource.as_deref() {
                Some("binding") => self.admission.validate(&r, &new, None)?,
                Some("ephemeralcontainers") => self
                    .admission
                    .validate_ephemeral_containers(&r, &new, &old)?,
                _ => self.admission.validate(&r, &new, Some(&old))?,
            }
            self.validating_admission(&attrs, Some(&new), Some(&old))
                .await?;
            crate::plugins::quota::charge(self, &attrs, &new, Some(&old)).await?;
            let mut old_cmp = old.clone();
            object::strip_server_fields(&mut old_cmp);
            let mut new_cmp = new.clone();
            object::strip_server_fields(&mut new_cmp);
            if old_cmp == new_cmp || p.dry_run() {
                object::set_resource_version(&mut new, kv.mod_revision);
                return Ok(new);
            }
            let waiting_for_content = is_namespace(&r) && crate::namespace::has_finalizer(&new);
            if object::is_deleting(&new)
                && object::finalizers(&new).is_empty()
                && !waiting_for_content
            {
                return self
                    .finish_delete(&r, &t.key(), new, kv.mod_revision, &name)
                    .await;
            }
            match self
                .store
                .update(t.key(), encode(&r, &new)?, Some(kv.mod_revision))
                .await
            {
                Ok(kv) => {
                    self.admission.on_updated(&r, &old, &new);
                    object::set_resource_version(&mut new, kv.mod_revision);
                    return Ok(new);
                }
                Err(skiff_store::Error::Conflict { .. }) if precondition.is_none() => continue,
                Err(skiff_store::Error::Conflict { .. }) => {
                    return Err(ApiError::modified(&r, &name))
                }
                Err(skiff_store::Error::NotFound(_)) => return Err(ApiError::not_found(&r, &name)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::modified(&r, &name))
    }

    /// The validating stage of admission, after an object passed validation: the built-in
    /// plugins (LimitRanger, PodSecurity), admission policies, then validating webhooks.
    /// ResourceQuota follows apart, last, because it charges.
    pub async fn validating_admission(
        &self,
        attrs: &Attributes<'_>,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<()> {
        crate::authz::check_escalation(self, attrs, object, old)?;
        self.validate_builtin(attrs, object, old)?;
        self.policies.validate(self, attrs, object, old).await?;
        self.webhooks.validate(self, attrs, object, old).await
    }

    async fn finish_delete(
        &self,
        r: &ResourceInfo,
        key: &str,
        obj: Value,
        revision: i64,
        name: &str,
    ) -> Result<Value> {
        match self.store.delete(key.to_owned(), Some(revision)).await {
            Ok(kv) => {
                self.admission.on_deleted(r, &obj);
                let mut obj = obj;
                object::set_resource_version(&mut obj, kv.mod_revision);
                Ok(obj)
            }
            Err(skiff_store::Error::Conflict { .. }) => Err(ApiError::modified(r, name)),
            Err(skiff_store::Error::NotFound(_)) => Err(ApiError::not_found(r, name)),
            Err(e) => Err(e.into()),
        }
    }

    /// DELETE of one object: immediate, or marked for graceful deletion / finalizers.
    /// Returns the object and whether it is gone already (200) or still pending (202).
    pub async fn delete(&self, t: &Target, o: &DeleteOptions) -> Result<(Value, bool)> {
        let r = t.resource.clone();
        let name = t.name()?.to_owned();
        // Upstream's namespace lifecycle admission keeps the namespaces the system needs.
        if is_namespace(&r) && PROTECTED_NAMESPACES.contains(&name.as_str()) {
            return Err(ApiError::denied(
                &r,
                &name,
                "this namespace may not be deleted",
            ));
        }
        // Upstream's `DefaultGarbageCollectionPolicy`: core v1 ReplicationControllers orphan
        // their pods when the client names no policy (kept for backwards compatibility);
        // every other kind deletes dependents in the background.
        let policy = o.propagation_policy.clone().or_else(|| {
            (r.group.is_empty() && r.kind == "ReplicationController").then(|| "Orphan".to_owned())
        });
        let grace = o.grace_period_seconds;
        let pre_uid = o.precondition_uid.as_deref();
        let pre_rv = o
            .precondition_resource_version
            .as_deref()
            .map(|s| s.parse::<i64>().unwrap_or(-1));
        for _ in 0..CONFLICT_RETRIES {
            let (mut obj, kv) = self.read(t)?;
            if pre_uid.is_some_and(|u| Some(u) != object::meta_str(&obj, "uid")) {
                return Err(ApiError::conflict(
                    &r,
                    &name,
                    &format!(
                        "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                        pre_uid.unwrap_or_default(),
                        object::meta_str(&obj, "uid").unwrap_or_default()
                    ),
                ));
            }
            if pre_rv.is_some_and(|rv| rv != kv.mod_revision) {
                return Err(ApiError::modified(&r, &name));
            }
            let mut params = Params {
                warnings: o.warnings.clone(),
                ..Params::default()
            };
            if let Some(user) = &o.user {
                params.user = user.clone();
            }
            let attrs = Attributes {
                resource: &r,
                subresource: None,
                operation: Operation::Delete,
                namespace: t.namespace.as_deref(),
                name: &name,
                dry_run: o.dry_run,
                params: &params,
            };
            crate::plugins::noderestriction::check_attrs(self, &attrs, None, Some(&obj))?;
            self.webhooks.admit_delete(self, &attrs, &obj, o).await?;
            let mut finalizers = object::finalizers(&obj);
            match policy.as_deref() {
                Some("Orphan") => add_unique(&mut finalizers, "orphan"),
                Some("Foreground") => add_unique(&mut finalizers, "foregroundDeletion"),
                _ => {}
            }
            let graceful = admission::grace_period(&r, &obj, grace);
            let namespace_content = is_namespace(&r) && crate::namespace::has_finalizer(&obj);
            if finalizers.is_empty() && graceful.is_none() && !namespace_content {
                if o.dry_run {
                    return Ok((obj, true));
                }
                match self
                    .finish_delete(&r, &t.key(), obj, kv.mod_revision, &name)
                    .await
                {
                    Err(ApiError::Conflict { .. }) if pre_rv.is_none() => continue,
                    other => {
                        self.revoke_cached_tokens(&r);
                        return other.map(|o| (o, true));
                    }
                }
            }
            let meta = meta_mut(&mut obj);
            if !finalizers.is_empty() {
                meta.insert("finalizers".into(), json!(finalizers));
            }
            let already = meta.contains_key("deletionTimestamp");
            let seconds = graceful.unwrap_or(0);
            let current_grace = meta
                .get("deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if !already || current_grace.is_some_and(|g| seconds < g) {
                // A client's grace period can be any int64; past chrono's range it is
                // clamped to the largest instant rather than overflowing.
                let at = chrono::Duration::try_seconds(seconds)
                    .and_then(|d| chrono::Utc::now().checked_add_signed(d))
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
                meta.insert(
                    "deletionTimestamp".into(),
                    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                );
                meta.insert("deletionGracePeriodSeconds".into(), json!(seconds));
            }
            if namespace_content {
                obj["status"]["phase"] = json!("Terminating");
            }
            if o.dry_run {
                return Ok((obj, false));
            }
            match self
                .store
                .update(t.key(), encode(&r, &obj)?, Some(kv.mod_revision))
                .await
            {
                Ok(kv) => {
                    object::set_resource_version(&mut obj, kv.mod_revision);
                    self.revoke_cached_tokens(&r);
                    if namespace_content {
                        let _ = self.terminating.send(name.clone());
                    }
                    return Ok((obj, false));
                }
                Err(skiff_store::Error::Conflict { .. }) if pre_rv.is_none() => continue,
                // Deleted meanwhile by someone else (a concurrent delete, a finalizer).
                Err(skiff_store::Error::NotFound(_)) => return Err(ApiError::not_found(&r, &name)),
                Err(e) => return Err(ApiError::from(e)),
            }
        }
        Err(ApiError::modified(&r, &name))
    }

    /// Forgets every cached token authentication once an object a token can be bound to
    /// (its ServiceAccount, legacy Secret or pod) is deleted or starts terminating, so
    /// revocation takes effect at once on this server instead of after the cache's 10 s
    /// (upstream's TTL, which still bounds it for deletions seen only by another server).
    /// Deletions of these kinds are rare; the cache refills on the next request.
    fn revoke_cached_tokens(&self, r: &ResourceInfo) {
        if r.group.is_empty() && matches!(r.plural.as_str(), "serviceaccounts" | "secrets" | "pods")
        {
            self.authn.forget_tokens();
        }
    }

    /// DELETE of a collection: every object the selectors match, one by one.
    pub async fn delete_collection(
        &self,
        t: &Target,
        p: &Params,
        options: &DeleteOptions,
    ) -> Result<Value> {
        // Upstream's namespace storage has no DeleteCollection: one call must not be able
        // to take every namespace away.
        if is_namespace(&t.resource) {
            return Err(ApiError::MethodNotAllowed(
                "the server does not allow this method on the requested resource".into(),
            ));
        }
        let list = self.list(t, p)?;
        let mut deleted = Vec::new();
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            let target = Target {
                name: object::name(&item).map(str::to_owned),
                namespace: object::namespace(&item).map(str::to_owned),
                ..t.clone()
            };
            match self.delete(&target, options).await {
                Ok((obj, _)) => deleted.push(obj),
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({
            "kind": t.resource.list_kind(),
            "apiVersion": t.resource.api_version(),
            "metadata": {"resourceVersion": self.store.current_revision().to_string()},
            "items": deleted,
        }))
    }

    /// The namespace an object belongs in: the URL's, which a body may repeat but not contradict.
    fn namespace_for(&self, t: &Target, obj: &Value) -> Result<Option<String>> {
        if !t.resource.namespaced {
            return Ok(None);
        }
        let url = t.namespace.clone();
        match (url, object::namespace(obj)) {
            (Some(u), Some(b)) if u != b => Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            )),
            (Some(u), _) => Ok(Some(u)),
            (None, Some(b)) => Ok(Some(b.to_owned())),
            (None, None) => Err(ApiError::BadRequest(
                "the server could not find the requested resource".into(),
            )),
        }
    }

    /// Upstream's NamespaceLifecycle admission on create: 404 unless the namespace exists,
    /// 403 while it is being terminated.
    fn require_namespace(&self, r: &ResourceInfo, name: &str, ns: &str) -> Result<()> {
        let Some(namespaces) = self.registry.get("", "v1", "namespaces") else {
            return Ok(());
        };
        match self.store.get(&namespaces.key(None, Some(ns)))? {
            Some(kv) => {
                let obj = materialize(&kv)?;
                if object::is_deleting(&obj) {
                    return Err(ApiError::denied_with(
                        r,
                        name,
                        &format!("unable to create new content in namespace {ns} because it is being terminated"),
                        vec![crate::error::Cause {
                            reason: "NamespaceTerminating".into(),
                            message: format!("namespace {ns} is being terminated"),
                            field: "metadata.namespace".into(),
                        }],
                    ));
                }
                Ok(())
            }
            None => Err(ApiError::not_found(&namespaces, ns)),
        }
    }
}

fn is_namespace(r: &ResourceInfo) -> bool {
    r.group.is_empty() && r.kind == "Namespace"
}

fn add_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|f| f == item) {
        list.push(item.to_owned());
    }
}

/// Fills in or checks `apiVersion` and `kind` against the resource addressed.
fn check_kind(r: &ResourceInfo, obj: &mut Value) -> Result<()> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    };
    let api_version = r.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )))
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(r.kind));
        }
        Some(k) if k == r.kind => {}
        Some(k) => {
            return Err(ApiError::BadRequest(format!(
                "{k} in version \"{}\" cannot be handled as a {}: the object kind does not match the resource",
                r.version, r.kind
            )))
        }
    }
    Ok(())
}

/// `metadata.resourceVersion` as a compare-and-swap precondition, if the client sent one.
pub fn resource_version_of(obj: &Value) -> Result<Option<i64>> {
    match object::meta_str(obj, "resourceVersion").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {s:?}"))),
    }
}

/// What an update may change depends on the endpoint: the main resource keeps the stored
/// status, the status subresource changes only status.
fn merge_for_subresource(
    r: &ResourceInfo,
    sub: Option<&str>,
    old: &Value,
    mut new: Value,
) -> Value {
    if is_namespace(r) {
        // A namespace's finalizers change only through `finalize`, and only they do.
        return match sub {
            Some("finalize") => {
                let mut merged = old.clone();
                merged["spec"]["finalizers"] = new["spec"]["finalizers"].take();
                merged
            }
            _ => {
                let mut kept = merge_for_status(r, sub, old, new);
                kept["spec"]["finalizers"] = old["spec"]["finalizers"].clone();
                kept
            }
        };
    }
    merge_for_status(r, sub, old, new)
}

/// Kinds whose upstream status strategy (`PrepareForUpdate`) copies only the old spec, so
/// their status endpoint also writes labels and annotations.
fn status_write_keeps_metadata(r: &ResourceInfo) -> bool {
    r.group.is_empty()
        && matches!(
            r.kind.as_str(),
            "Namespace" | "Node" | "Pod" | "Service" | "PersistentVolume" | "PersistentVolumeClaim"
        )
}

/// The status subresource changes only status; the main resource keeps the stored status.
fn merge_for_status(r: &ResourceInfo, sub: Option<&str>, old: &Value, mut new: Value) -> Value {
    match sub {
        Some("binding") => new,
        // Upstream's `dropNonEphemeralContainerUpdates`: the write changes the ephemeral
        // containers and nothing else (the precondition's resourceVersion was checked).
        Some("ephemeralcontainers") => {
            let mut merged = old.clone();
            match new
                .pointer_mut("/spec/ephemeralContainers")
                .map(Value::take)
            {
                Some(list) if !list.is_null() => merged["spec"]["ephemeralContainers"] = list,
                _ => {
                    if let Some(spec) = merged.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.remove("ephemeralContainers");
                    }
                }
            }
            merged
        }
        Some(sub @ ("status" | "approval")) if crate::certificates::is_csr(r) => {
            crate::certificates::merge_subresource(sub, old, &new)
        }
        Some("status") => {
            let mut merged = old.clone();
            match new.get_mut("status").map(Value::take) {
                Some(status) => merged["status"] = status,
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            // Upstream's status strategies of these kinds reset only the spec: metadata a
            // status write carries (labels, annotations) is kept. Other kinds' strategies
            // reset metadata too (`ResetObjectMetaForStatus`).
            if status_write_keeps_metadata(r) {
                for field in ["labels", "annotations"] {
                    match new.pointer(&format!("/metadata/{field}")) {
                        Some(v) if !v.is_null() => {
                            meta_mut(&mut merged).insert(field.into(), v.clone());
                        }
                        _ => {
                            meta_mut(&mut merged).remove(field);
                        }
                    }
                }
            }
            merged
        }
        _ if r.status_subresource => {
            if let Some(map) = new.as_object_mut() {
                match old.get("status") {
                    Some(s) => {
                        map.insert("status".into(), s.clone());
                    }
                    None => {
                        map.remove("status");
                    }
                }
            }
            new
        }
        _ => new,
    }
}

/// Fields clients cannot change: identity, timestamps, deletion state; generation moves
/// when (and only when) the spec changes.
fn preserve_server_fields(r: &ResourceInfo, old: &Value, new: &mut Value) {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let spec_changed = match &r.custom {
        Some(_) => content_changed(old, new, r.status_subresource),
        None => old.get("spec") != new.get("spec"),
    };
    let meta = meta_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    if r.generation {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let generation = if spec_changed {
            generation + 1
        } else {
            generation
        };
        meta.insert("generation".into(), json!(generation));
    } else {
        meta.remove("generation");
    }
}

/// Upstream's custom resource strategy: any change but metadata (and status, when that is a
/// subresource) makes a new generation.
fn content_changed(old: &Value, new: &Value, status_apart: bool) -> bool {
    let counts = |k: &str| {
        let envelope = matches!(k, "metadata" | "apiVersion" | "kind");
        !(envelope || (status_apart && k == "status"))
    };
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    o.iter()
        .filter(|(k, _)| counts(k))
        .any(|(k, v)| n.get(k) != Some(v))
        || n.keys().filter(|k| counts(k)).any(|k| !o.contains_key(k))
}

const CONTINUE_VERSION: &str = "meta.k8s.io/v1";
/// The revision of a continue token that lists on from the latest state (upstream's -1).
const INCONSISTENT_CONTINUE: i64 = -1;

/// Upstream's continue token: base64 of `{"v","rv","start"}`.
fn encode_continue(revision: i64, last_key: &str) -> String {
    use base64::Engine;
    let token = json!({"v": CONTINUE_VERSION, "rv": revision, "start": format!("{last_key}\u{0}")});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(i64, String)> {
    use base64::Engine;
    let bad = || ApiError::BadRequest("continue key is not valid".into());
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v["v"] != CONTINUE_VERSION {
        return Err(bad());
    }
    let start = v["start"].as_str().ok_or_else(bad)?;
    let rv = v["rv"].as_i64().ok_or_else(bad)?;
    Ok((rv, start.trim_end_matches('\u{0}').to_owned()))
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use serde_json::json;

    fn config_map(bytes: usize) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
               "data": {"k": "x".repeat(bytes)}})
    }

    fn secret(bytes: usize) -> Value {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(vec![7u8; bytes]);
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
               "data": {"k": data}})
    }

    fn json_len(v: &Value) -> usize {
        serde_json::to_vec(v).expect("serializes").len()
    }

    #[test]
    fn objects_over_etcds_limit_are_refused_in_their_stored_form() {
        let mib = 1024 * 1024;
        let cases = [
            ("1 MiB configmap", true, config_map(mib), true),
            ("2 MiB configmap", true, config_map(2 * mib), false),
            // 1.4 MiB of bytes is 1.9 MiB of base64 JSON, but 1.4 MiB stored as protobuf.
            ("1.4 MiB secret", true, secret(14 * mib / 10), true),
            ("1.6 MiB secret", true, secret(16 * mib / 10), false),
            // A custom resource is stored as JSON: its JSON size counts.
            (
                "1.4 MiB bytes in a custom resource",
                false,
                secret(14 * mib / 10),
                false,
            ),
        ];
        for (name, built_in, obj, allowed) in cases {
            let got = check_stored_size(built_in, &obj, json_len(&obj));
            assert_eq!(got.is_ok(), allowed, "{name}");
            if let Err(e) = got {
                assert_eq!(e.code(), axum::http::StatusCode::PAYLOAD_TOO_LARGE);
                assert!(
                    e.to_string().contains("etcdserver: request is too large"),
                    "{e}"
                );
            }
        }
    }
}
