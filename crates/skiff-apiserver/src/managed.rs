//! Field ownership (`metadata.managedFields`) on every write, as kube-apiserver's field
//! manager does it: non-apply writes go through `UpdateNoErrors`, server-side apply through
//! `Apply` with conflicts. The logic lives in `skiff-fieldmanager`; this module picks the
//! schema, the tracked fields of the endpoint, the manager's name and the time.

use serde_json::Value;
use skiff_fieldmanager::{FieldManager, Request, Schema, Tracked};

use crate::error::{ApiError, Cause, Result};
use crate::object;
use crate::request::Params;
use crate::resources::ResourceInfo;

/// Upstream's `FieldManagerMaxLength`, which also bounds a name taken from the User-Agent.
const MAX_MANAGER: usize = 128;

/// Who is writing through which endpoint of which kind.
pub struct Writer<'a> {
    pub resource: &'a ResourceInfo,
    /// The subresource written (`status`, `scale`), `None` for the main resource.
    pub subresource: Option<&'a str>,
    pub params: &'a Params,
}

impl Writer<'_> {
    fn field_manager(&self) -> FieldManager {
        let r = self.resource;
        let schema = match &r.custom {
            Some(c) => c.fields.clone(),
            None => Schema::builtin(&r.api_version(), &r.kind).unwrap_or_else(Schema::deduced),
        };
        let tracked = match self.subresource {
            Some("status") => Tracked::status_subresource(),
            _ if r.status_subresource => Tracked::main_resource_with_status(),
            _ => Tracked::All,
        };
        FieldManager::new(schema, tracked)
    }

    /// `fieldManager`, else upstream's `prefixFromUserAgent` (`kubectl/v1.33.0 (...)` →
    /// `kubectl`), so writes by clients that name no manager are still attributed.
    fn manager(&self) -> String {
        if let Some(m) = self.params.get("fieldManager") {
            return m.to_owned();
        }
        // Writes the API server makes itself (default namespaces, the kubernetes Service)
        // carry no User-Agent: upstream records them as kube-apiserver's.
        let Some(agent) = self.params.user_agent.as_deref() else {
            return "kube-apiserver".into();
        };
        let prefix: String = agent
            .split('/')
            .next()
            .unwrap_or("")
            .chars()
            .take(MAX_MANAGER)
            .collect();
        if prefix.is_empty() {
            "unknown".into()
        } else {
            prefix
        }
    }

    fn subresource_name(&self) -> &str {
        self.subresource
            .filter(|s| matches!(*s, "status" | "scale" | "ephemeralcontainers"))
            .unwrap_or("")
    }

    /// Runs `f` with this write's field-manager request, stamped now.
    fn with_request<T>(&self, f: impl FnOnce(&FieldManager, &Request) -> T) -> T {
        let now = object::now_rfc3339();
        let manager = self.manager();
        let api_version = self.resource.api_version();
        let req = Request {
            manager: &manager,
            api_version: &api_version,
            subresource: self.subresource_name(),
            now: &now,
        };
        f(&self.field_manager(), &req)
    }

    /// `new` with its managedFields after a create (`live` None) or update: the fields that
    /// changed belong to this writer (operation Update). Never fails, as upstream.
    pub fn track(&self, live: Option<&Value>, new: Value) -> Value {
        self.with_request(|fm, req| fm.update_no_errors(live, new, req))
    }

    /// Server-side apply of `applied` over `live` (None: the object does not exist yet):
    /// the object to store, with managedFields. Conflicts are a 409 naming each field and
    /// manager, unless `force=true`.
    pub fn apply(&self, live: Option<&Value>, applied: &Value) -> Result<Value> {
        let force = self.params.flag("force");
        self.with_request(|fm, req| fm.apply(live, applied, req, force))
            .map_err(|e| match e {
                skiff_fieldmanager::Error::Conflict(conflicts) => ApiError::ApplyConflict {
                    message: conflicts.to_string(),
                    causes: conflicts
                        .causes()
                        .into_iter()
                        .map(|c| Cause {
                            reason: c.reason.to_string(),
                            message: c.message,
                            field: c.field,
                        })
                        .collect(),
                },
                skiff_fieldmanager::Error::InvalidManagedFields(m) => {
                    ApiError::Internal(format!("failed to decode managed fields: {m}"))
                }
                other => ApiError::BadRequest(other.to_string()),
            })
    }
}
