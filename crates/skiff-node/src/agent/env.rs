//! A container's environment and argv from the pod spec: `value`, `fieldRef`,
//! `configMapKeyRef`, `secretKeyRef`, `envFrom`, and `$(VAR)` expansion as upstream.

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
};
use std::collections::BTreeMap;

/// Errors resolving a container's environment.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A referenced ConfigMap/Secret or key is missing (and not optional).
    #[error("{0}")]
    Missing(String),
    /// The API could not be read.
    #[error("reading {what}: {source}")]
    Api {
        /// What was read.
        what: String,
        /// Underlying error.
        #[source]
        source: kube::Error,
    },
}

/// Looks up ConfigMaps and Secrets of the pod's namespace (the API, or a map in tests).
pub trait Sources {
    /// Data of a ConfigMap (`binaryData` excluded), `None` if it does not exist.
    fn config_map(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, EnvError>;
    /// Decoded data of a Secret, `None` if it does not exist.
    fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, EnvError>;
}

/// ConfigMaps and Secrets fetched ahead of time, so resolution stays pure.
#[derive(Debug, Default, Clone)]
pub struct Fetched {
    /// By name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// By name.
    pub secrets: BTreeMap<String, Secret>,
    /// The pod's PersistentVolumeClaims, by name (absent: not found).
    pub claims: BTreeMap<String, PersistentVolumeClaim>,
    /// The PersistentVolumes those claims are bound to, by name.
    pub volumes: BTreeMap<String, PersistentVolume>,
}

impl Sources for Fetched {
    fn config_map(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, EnvError> {
        Ok(self
            .config_maps
            .get(name)
            .map(|c| c.data.clone().unwrap_or_default()))
    }
    fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, EnvError> {
        Ok(self.secrets.get(name).map(|s| {
            let mut out: BTreeMap<String, Vec<u8>> = s
                .data
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in s.string_data.clone().unwrap_or_default() {
                out.insert(k, v.into_bytes());
            }
            out
        }))
    }
}

/// Names of the ConfigMaps and Secrets a pod refers to (env and volumes).
pub fn referenced(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    let Some(spec) = &pod.spec else {
        return (cms, secrets);
    };
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        for e in c.env.iter().flatten() {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref())
            {
                cms.push(r.name.clone());
            }
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
            {
                secrets.push(r.name.clone());
            }
        }
        for f in c.env_from.iter().flatten() {
            if let Some(r) = &f.config_map_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &f.secret_ref {
                secrets.push(r.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            cms.push(c.name.clone());
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.push(s);
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &p.config_map {
                cms.push(c.name.clone());
            }
            if let Some(s) = &p.secret {
                secrets.push(s.name.clone());
            }
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// `$(VAR)` expansion as upstream's `expansion.Expand`: defined names are replaced, `$$`
/// escapes, anything else stays as written.
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + end];
                        match vars(name) {
                            Some(v) => out.push_str(&v),
                            None => out.push_str(&input[i..i + 3 + end]),
                        }
                        i += 3 + end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = input[i..].chars().next().unwrap_or('$');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// A `fieldRef` value.
pub fn field_value(pod: &Pod, path: &str, host_ip: &str, pod_ip: Option<&str>) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        path.strip_prefix(prefix)
            .and_then(|k| k.strip_suffix("']"))
            .and_then(|k| map.and_then(|m| m.get(k)).cloned())
    };
    Some(match path {
        "metadata.name" => m.name.clone()?,
        "metadata.namespace" => m.namespace.clone()?,
        "metadata.uid" => m.uid.clone()?,
        "spec.nodeName" => spec?.node_name.clone()?,
        "spec.serviceAccountName" => spec?
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "status.podIP" | "status.podIPs" => pod_ip.unwrap_or_default().to_string(),
        p if p.starts_with("metadata.labels['") => {
            return keyed("metadata.labels['", m.labels.as_ref())
        }
        p if p.starts_with("metadata.annotations['") => {
            return keyed("metadata.annotations['", m.annotations.as_ref())
        }
        _ => return None,
    })
}

/// The container's environment, in order, with references resolved and `$(VAR)` expanded.
pub fn resolve_env(
    pod: &Pod,
    c: &Container,
    sources: &dyn Sources,
    host_ip: &str,
    pod_ip: Option<&str>,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(n, _)| *n != k);
        env.push((k, v));
    };
    for f in c.env_from.iter().flatten() {
        let prefix = f.prefix.clone().unwrap_or_default();
        if let Some(r) = &f.config_map_ref {
            match sources.config_map(&r.name)? {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut env, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => {
                    return Err(EnvError::Missing(format!(
                        "configmap \"{}\" not found",
                        r.name
                    )))
                }
            }
        }
        if let Some(r) = &f.secret_ref {
            match sources.secret(&r.name)? {
                Some(data) => {
                    for (k, v) in data {
                        set(
                            &mut env,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v).into(),
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => {
                    return Err(EnvError::Missing(format!(
                        "secret \"{}\" not found",
                        r.name
                    )))
                }
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_value(pod, &f.field_path, host_ip, pod_ip).unwrap_or_default()
            } else if let Some(r) = &from.config_map_key_ref {
                match sources
                    .config_map(&r.name)?
                    .and_then(|d| d.get(&r.key).cloned())
                {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(EnvError::Missing(format!(
                            "couldn't find key {} in ConfigMap {}",
                            r.key, r.name
                        )))
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                match sources
                    .secret(&r.name)?
                    .and_then(|d| d.get(&r.key).cloned())
                {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(EnvError::Missing(format!(
                            "couldn't find key {} in Secret {}",
                            r.key, r.name
                        )))
                    }
                }
            } else {
                String::new()
            }
        } else {
            let current = env.clone();
            let lookup = |n: &str| current.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            expand(e.value.as_deref().unwrap_or_default(), &lookup)
        };
        set(&mut env, e.name.clone(), value);
    }
    Ok(env)
}

/// `command` and `args` with `$(VAR)` expanded from the container's environment.
pub fn expand_argv(c: &Container, env: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let lookup = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let ex = |v: &Option<Vec<String>>| {
        v.iter()
            .flatten()
            .map(|s| expand(s, &lookup))
            .collect::<Vec<_>>()
    };
    (ex(&c.command), ex(&c.args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansion_replaces_known_names_and_keeps_the_rest() {
        let vars = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &vars), "x-$(B)-$(A)-$");
        assert_eq!(expand("$(A", &vars), "$(A");
    }

    #[test]
    fn env_resolves_references_in_order() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i",
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                "env": [
                    {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "GREETING", "value": "hi $(NAME) on $(CM_k)"},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                    {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": true}}}
                ],
                "command": ["echo", "$(GREETING)"]}]}
        }))
        .unwrap();
        let mut fetched = Fetched::default();
        fetched.config_maps.insert(
            "cm".into(),
            serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": {"k": "v"}}))
                .unwrap(),
        );
        fetched.secrets.insert(
            "s".into(),
            serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {"pw": "c2VjcmV0"}}))
                .unwrap(),
        );
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let env = resolve_env(&pod, c, &fetched, "10.0.0.1", Some("10.244.0.2")).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CM_k"), Some("v"));
        assert_eq!(get("NAME"), Some("p"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("GREETING"), Some("hi p on v"));
        assert_eq!(get("PASS"), Some("secret"));
        assert_eq!(get("OPT"), None);
        assert_eq!(expand_argv(c, &env).0, vec!["echo", "hi p on v"]);
    }
}
