//! A container's environment and argv from the pod spec: `value`, `fieldRef`,
//! `configMapKeyRef`, `secretKeyRef`, `envFrom`, `$(VAR)` expansion, and the variables of
//! Services (`KUBERNETES_SERVICE_HOST`, docker-link style `*_PORT_*`), as upstream.

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service,
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
    /// The variables of the Services the pod sees ([`service_env`]), in order.
    fn service_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
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
    /// The pod's projected ServiceAccount tokens.
    pub tokens: BTreeMap<super::tokens::TokenKey, String>,
    /// The variables of the Services the pod sees ([`service_env`]).
    pub service_env: Vec<(String, String)>,
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
    fn service_env(&self) -> Vec<(String, String)> {
        self.service_env.clone()
    }
}

/// Whether a Service has a cluster IP (not headless, not unset), upstream's `IsServiceIPSet`.
fn has_cluster_ip(s: &Service) -> bool {
    s.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// upstream's `makeEnvVariableName`: upper case, `-` as `_`.
fn env_name(s: &str) -> String {
    s.to_uppercase().replace('-', "_")
}

/// The variables the kubelet gives a pod in `namespace` for `services` (upstream's
/// `getServiceEnvVarMap` and `envvars.FromServices`): the `kubernetes` Service of `default`
/// always, the namespace's own Services when `enableServiceLinks` is not false (a
/// namespace Service of the same name wins), each with a cluster IP:
/// `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT` (first port), `<NAME>_SERVICE_PORT_<PORT>`
/// per named port, and the docker-link `<NAME>_PORT`, `<NAME>_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR]`.
pub fn service_env(
    namespace: &str,
    enable_service_links: bool,
    services: &[Service],
) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for s in services.iter().filter(|s| has_cluster_ip(s)) {
        let Some(name) = s.metadata.name.as_deref() else {
            continue;
        };
        let ns = s.metadata.namespace.as_deref().unwrap_or_default();
        if ns == "default" && name == "kubernetes" {
            chosen.entry(name).or_insert(s);
        } else if ns == namespace && enable_service_links {
            chosen.insert(name, s);
        }
    }
    let mut out = Vec::new();
    for (name, s) in chosen {
        let Some(spec) = &s.spec else { continue };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let ports = spec.ports.as_deref().unwrap_or_default();
        let prefix = env_name(name);
        out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        if let Some(first) = ports.first() {
            out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        }
        for p in ports {
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{prefix}_SERVICE_PORT_{}", env_name(n)),
                    p.port.to_string(),
                ));
            }
        }
        let host = |port: i32| match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(_)) => format!("[{ip}]:{port}"),
            _ => format!("{ip}:{port}"),
        };
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let lower = proto.to_lowercase();
            let url = format!("{lower}://{}", host(p.port));
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((pp.clone(), url));
            out.push((format!("{pp}_PROTO"), lower));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.clone()));
        }
    }
    out
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
    let services = sources.service_env();
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
            let lookup = |n: &str| {
                current
                    .iter()
                    .chain(services.iter())
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
            };
            expand(e.value.as_deref().unwrap_or_default(), &lookup)
        };
        set(&mut env, e.name.clone(), value);
    }
    // Service variables come last, and never over a variable the container declares.
    for (k, v) in services {
        if !env.iter().any(|(n, _)| *n == k) {
            env.push((k, v));
        }
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

    fn service(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
                                      "spec": {"clusterIP": ip, "ports": ports}}))
        .unwrap()
    }

    #[test]
    fn services_give_upstreams_variables() {
        // Upstream's envvars TestFromServices.
        let services = [
            service(
                "ns",
                "foo-bar",
                "1.2.3.4",
                json!([{"port": 8080, "protocol": "TCP"}]),
            ),
            service(
                "ns",
                "abc-123",
                "5.6.7.8",
                json!([
                {"name": "u-d-p", "port": 8081, "protocol": "UDP"},
                {"name": "t-c-p", "port": 8081, "protocol": "TCP"}]),
            ),
            service(
                "ns",
                "q-u-u-x",
                "9.8.7.6",
                json!([
                {"port": 8082, "protocol": "TCP"}, {"name": "8083", "port": 8083, "protocol": "TCP"}]),
            ),
            service("ns", "svrc-clusterip-none", "None", json!([{"port": 8082}])),
            service("ns", "svrc-clusterip-empty", "", json!([{"port": 8082}])),
            service(
                "ns",
                "super-ipv6",
                "2001:DB8::",
                json!([
                {"name": "u-d-p", "port": 8084, "protocol": "UDP"},
                {"name": "t-c-p", "port": 8084, "protocol": "TCP"}]),
            ),
        ];
        let env = service_env("ns", true, &services);
        let of = |prefix: &str| -> Vec<(String, String)> {
            env.iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .cloned()
                .collect()
        };
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            of("FOO_BAR_"),
            pairs(&[
                ("FOO_BAR_SERVICE_HOST", "1.2.3.4"),
                ("FOO_BAR_SERVICE_PORT", "8080"),
                ("FOO_BAR_PORT", "tcp://1.2.3.4:8080"),
                ("FOO_BAR_PORT_8080_TCP", "tcp://1.2.3.4:8080"),
                ("FOO_BAR_PORT_8080_TCP_PROTO", "tcp"),
                ("FOO_BAR_PORT_8080_TCP_PORT", "8080"),
                ("FOO_BAR_PORT_8080_TCP_ADDR", "1.2.3.4"),
            ])
        );
        assert_eq!(
            of("ABC_123_"),
            pairs(&[
                ("ABC_123_SERVICE_HOST", "5.6.7.8"),
                ("ABC_123_SERVICE_PORT", "8081"),
                ("ABC_123_SERVICE_PORT_U_D_P", "8081"),
                ("ABC_123_SERVICE_PORT_T_C_P", "8081"),
                ("ABC_123_PORT", "udp://5.6.7.8:8081"),
                ("ABC_123_PORT_8081_UDP", "udp://5.6.7.8:8081"),
                ("ABC_123_PORT_8081_UDP_PROTO", "udp"),
                ("ABC_123_PORT_8081_UDP_PORT", "8081"),
                ("ABC_123_PORT_8081_UDP_ADDR", "5.6.7.8"),
                ("ABC_123_PORT_8081_TCP", "tcp://5.6.7.8:8081"),
                ("ABC_123_PORT_8081_TCP_PROTO", "tcp"),
                ("ABC_123_PORT_8081_TCP_PORT", "8081"),
                ("ABC_123_PORT_8081_TCP_ADDR", "5.6.7.8"),
            ])
        );
        assert_eq!(
            of("Q_U_U_X_")[..4],
            pairs(&[
                ("Q_U_U_X_SERVICE_HOST", "9.8.7.6"),
                ("Q_U_U_X_SERVICE_PORT", "8082"),
                ("Q_U_U_X_SERVICE_PORT_8083", "8083"),
                ("Q_U_U_X_PORT", "tcp://9.8.7.6:8082"),
            ])[..]
        );
        assert!(
            of("SVRC_").is_empty(),
            "headless and IP-less services give nothing"
        );
        assert!(env.contains(&("SUPER_IPV6_PORT".into(), "udp://[2001:DB8::]:8084".into())));
        assert!(env.contains(&("SUPER_IPV6_PORT_8084_TCP_ADDR".into(), "2001:DB8::".into())));
    }

    #[test]
    fn the_kubernetes_service_is_always_there_and_links_follow_enable_service_links() {
        let services = [
            service(
                "default",
                "kubernetes",
                "10.96.0.1",
                json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
            ),
            service("default", "other", "10.96.0.9", json!([{"port": 80}])),
            service("ns", "web", "10.96.0.5", json!([{"port": 80}])),
            service("elsewhere", "db", "10.96.0.6", json!([{"port": 5432}])),
        ];
        let names = |env: Vec<(String, String)>| -> Vec<String> {
            let mut n: Vec<String> = env
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k.ends_with("_SERVICE_HOST"))
                .collect();
            n.sort();
            n
        };
        assert_eq!(
            names(service_env("ns", true, &services)),
            ["KUBERNETES_SERVICE_HOST", "WEB_SERVICE_HOST"]
        );
        assert_eq!(
            names(service_env("ns", false, &services)),
            ["KUBERNETES_SERVICE_HOST"]
        );
        assert_eq!(
            names(service_env("default", false, &services)),
            ["KUBERNETES_SERVICE_HOST"]
        );
        assert_eq!(
            names(service_env("default", true, &services)),
            ["KUBERNETES_SERVICE_HOST", "OTHER_SERVICE_HOST"]
        );
        let env = service_env("ns", false, &services);
        for want in [
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
        ] {
            assert!(env.contains(&(want.0.into(), want.1.into())), "{want:?}");
        }
    }

    #[test]
    fn declared_variables_win_over_service_variables_and_may_refer_to_them() {
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}))
                .unwrap();
        let c: Container = serde_json::from_value(json!({"name": "c", "env": [
            {"name": "KUBERNETES_SERVICE_PORT", "value": "1"},
            {"name": "API", "value": "$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"}]}))
        .unwrap();
        let sources = Fetched {
            service_env: vec![
                ("KUBERNETES_SERVICE_HOST".into(), "10.96.0.1".into()),
                ("KUBERNETES_SERVICE_PORT".into(), "443".into()),
            ],
            ..Default::default()
        };
        let env = resolve_env(&pod, &c, &sources, "192.168.1.1", None).unwrap();
        assert_eq!(
            env,
            [
                ("KUBERNETES_SERVICE_PORT".to_string(), "1".to_string()),
                ("API".into(), "10.96.0.1:1".into()),
                ("KUBERNETES_SERVICE_HOST".into(), "10.96.0.1".into()),
            ]
        );
    }

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
