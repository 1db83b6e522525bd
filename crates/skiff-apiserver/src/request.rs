//! What a REST request addresses and asks for: the parsed path and query parameters.

use std::collections::HashMap;
use std::sync::Arc;

use skiff_apimachinery::selector::{FieldSelector, LabelSelector};
use skiff_apimachinery::user::UserInfo;

use crate::error::{ApiError, Result};
use crate::resources::{Registry, ResourceInfo};

/// The resource, namespace, name and subresource a path names.
#[derive(Clone)]
pub struct Target {
    pub resource: Arc<ResourceInfo>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    /// Parses `/api/v1/...` and `/apis/<group>/<version>/...` resource paths; None when the
    /// path is not a resource path at all (discovery, OpenAPI, health).
    pub fn parse(registry: &Registry, path: &str) -> Option<Result<Target>> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segs.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
            ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, tail @ ..]
                if !tail.is_empty() && !matches!(tail[0], "status" | "finalize") =>
            {
                (Some((*ns).to_owned()), tail)
            }
            _ => (None, rest),
        };
        let (plural, name, subresource) = match rest {
            [plural] => (*plural, None, None),
            [plural, name] => (*plural, Some(*name), None),
            [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
            _ => return Some(Err(ApiError::NoRoute)),
        };
        let Some(resource) = registry.get(group, version, plural) else {
            return Some(Err(ApiError::NoRoute));
        };
        if namespace.is_some() && !resource.namespaced {
            return Some(Err(ApiError::NoRoute));
        }
        Some(Ok(Target {
            resource,
            namespace,
            name: name.map(str::to_owned),
            subresource: subresource.map(str::to_owned),
        }))
    }

    /// The name, which every single-object verb needs.
    pub fn name(&self) -> Result<&str> {
        self.name
            .as_deref()
            .ok_or_else(|| ApiError::MethodNotAllowed("name is required".into()))
    }

    pub fn key(&self) -> String {
        self.resource
            .key(self.namespace.as_deref(), self.name.as_deref())
    }
}

/// Query parameters of a request, with typed accessors for the ones the API defines, the
/// client's User-Agent (which names the field manager of writes that give none) and who
/// makes the request.
#[derive(Clone)]
pub struct Params {
    pub query: HashMap<String, String>,
    /// Every value of a key the query repeats (`dryRun=All&dryRun=All`), in order; `query`
    /// keeps the last one. List-valued options are judged by all of them, as upstream's.
    pub repeated: HashMap<String, Vec<String>>,
    pub user_agent: Option<String>,
    /// Fields the request body repeated (see `strict.rs`), for field validation.
    pub duplicate_fields: Vec<String>,
    /// A YAML body's repeated keys as go-yaml names them (`line 5: key "name" already set
    /// in map`, see `strict.rs`), for field validation.
    pub yaml_duplicates: Vec<String>,
    /// Warnings for the response's `Warning` headers, collected while handling.
    pub warnings: Arc<std::sync::Mutex<Vec<String>>>,
    /// Who makes the request (after impersonation): what admission webhooks and policies
    /// see as `userInfo`. The server's own writes are [`loopback_user`]'s.
    pub user: Arc<UserInfo>,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            query: HashMap::new(),
            repeated: HashMap::new(),
            user_agent: None,
            duplicate_fields: Vec::new(),
            yaml_duplicates: Vec::new(),
            warnings: Arc::default(),
            user: Arc::new(loopback_user()),
        }
    }
}

/// The identity of the server's own requests (bootstrap objects, in-process controllers):
/// upstream's loopback client, `system:apiserver` in `system:masters`.
pub fn loopback_user() -> UserInfo {
    UserInfo {
        username: "system:apiserver".into(),
        groups: vec![
            skiff_apimachinery::user::ALL_AUTHENTICATED.into(),
            skiff_apimachinery::user::SYSTEM_MASTERS.into(),
        ],
        ..UserInfo::default()
    }
}

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let mut params = Params::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let (k, v) = (k.into_owned(), v.into_owned());
            if let Some(previous) = params.query.insert(k.clone(), v.clone()) {
                params
                    .repeated
                    .entry(k)
                    .or_insert_with(|| vec![previous])
                    .push(v);
            }
        }
        params
    }

    /// Every non-empty value given for `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        match self.repeated.get(key) {
            Some(values) => values.iter().filter(|v| !v.is_empty()).cloned().collect(),
            None => self
                .get(key)
                .map(|v| vec![v.to_owned()])
                .unwrap_or_default(),
        }
    }

    /// Adds a warning for the client (upstream's `warning.AddWarning`), once.
    pub fn warn(&self, message: String) {
        let mut w = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
        if !w.contains(&message) {
            w.push(message);
        }
    }

    /// Whether the query names `key` at all, even with an empty value.
    pub fn has(&self, key: &str) -> bool {
        self.query.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::BadRequest(format!("invalid {key}: {v:?}")))
            })
            .transpose()
    }

    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }

    pub fn label_selector(&self) -> Result<LabelSelector> {
        match self.get("labelSelector") {
            None => Ok(LabelSelector::everything()),
            Some(s) => LabelSelector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string())),
        }
    }

    pub fn field_selector(&self, r: &ResourceInfo) -> Result<FieldSelector> {
        let Some(s) = self.get("fieldSelector") else {
            return Ok(FieldSelector::everything());
        };
        let parsed = FieldSelector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        match &r.custom {
            Some(custom) => {
                // Upstream's CR field label conversion: the name, the namespace of a
                // namespaced kind, and the version's selectableFields.
                for req in parsed.requirements() {
                    let field = req.field.as_str();
                    let ok = field == "metadata.name"
                        || (r.namespaced && field == "metadata.namespace")
                        || custom.selectable_fields.iter().any(|f| f == field);
                    if !ok {
                        return Err(ApiError::BadRequest(format!(
                            "field label not supported: {field}"
                        )));
                    }
                }
                Ok(parsed)
            }
            None => parsed
                .validate_for(&r.group, &r.plural)
                .map_err(|e| ApiError::BadRequest(e.to_string())),
        }
    }
}

/// Parses a Go duration (`time.ParseDuration`: `30s`, `1m30s`, `1.5h`, `100ms`, `0`), as
/// the `timeout` query parameter is written; None when it is not one.
pub fn parse_go_duration(s: &str) -> Option<std::time::Duration> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let negative = s.starts_with('-');
    if unsigned == "0" {
        return Some(std::time::Duration::ZERO);
    }
    if unsigned.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = unsigned;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    if negative {
        return Some(std::time::Duration::ZERO);
    }
    std::time::Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn go_durations_parse_as_time_parse_duration() {
        let cases = [
            ("32s", Some(Duration::from_secs(32))),
            ("1m30s", Some(Duration::from_secs(90))),
            ("1.5h", Some(Duration::from_secs(5400))),
            ("100ms", Some(Duration::from_millis(100))),
            ("0", Some(Duration::ZERO)),
            ("-5s", Some(Duration::ZERO)),
            ("invalid", None),
            ("10", None),
            ("", None),
            ("s", None),
            ("1x", None),
            ("1e400h", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration(input), want, "{input:?}");
        }
    }
}
