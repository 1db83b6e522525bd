//! A Compose file converted to Kubernetes manifests, as `kompose convert` does, so a reader's
//! existing `compose.yaml` is the first step onto skiff (decision 0040).
//!
//! Pure: the only input besides the file's text is the `env_file`s it names, read through the
//! caller's closure. Per service: a Deployment (a Pod for `restart: "no"`/`on-failure`, as
//! kompose), a Service when it has ports, a PersistentVolumeClaim per volume it mounts and a
//! ConfigMap per `env_file`; everything labelled `io.kompose.service: <name>` as kompose does.
//! Keys this subset does not convert are reported as warnings, never silently dropped; what
//! cannot run here (bind mounts, port ranges, neither image nor build) is an error.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;

/// The label kompose puts on every object, and selects a service's pods by.
pub const SERVICE_LABEL: &str = "io.kompose.service";
/// The size kompose requests for each volume's claim.
const CLAIM_SIZE: &str = "100Mi";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ComposeError {
    #[error("compose file: {0}")]
    Parse(String),
    #[error("service {service:?}: {message}")]
    Service { service: String, message: String },
}

fn err(service: &str, message: impl Into<String>) -> ComposeError {
    ComposeError::Service {
        service: service.to_string(),
        message: message.into(),
    }
}

/// The manifests (in apply order: ConfigMaps and claims before what mounts them) and the
/// warnings about what was not converted.
#[derive(Debug, Default)]
pub struct Conversion {
    pub objects: Vec<Value>,
    pub warnings: Vec<String>,
}

impl Conversion {
    /// The manifests as one YAML stream, `---` separated, as `kompose convert --stdout`.
    pub fn to_yaml(&self) -> String {
        self.objects
            .iter()
            .map(|o| serde_yaml::to_string(o).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    services: BTreeMap<String, Service>,
    #[serde(default)]
    volumes: BTreeMap<String, Option<Yaml>>,
    #[serde(flatten)]
    other: BTreeMap<String, Yaml>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Service {
    image: Option<String>,
    build: Option<Yaml>,
    ports: Vec<Yaml>,
    expose: Vec<Yaml>,
    environment: Option<Environment>,
    env_file: Option<OneOrMany>,
    depends_on: Option<DependsOn>,
    command: Option<Words>,
    entrypoint: Option<Words>,
    volumes: Vec<Yaml>,
    restart: Option<String>,
    deploy: Option<Deploy>,
    healthcheck: Option<Healthcheck>,
    #[serde(flatten)]
    other: BTreeMap<String, Yaml>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Environment {
    Map(BTreeMap<String, Option<Yaml>>),
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, Yaml>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Words {
    Shell(String),
    List(Vec<String>),
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Deploy {
    replicas: Option<i32>,
    #[serde(flatten)]
    other: BTreeMap<String, Yaml>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Healthcheck {
    test: Option<Words>,
    interval: Option<String>,
    timeout: Option<String>,
    retries: Option<i32>,
    start_period: Option<String>,
    disable: bool,
    #[serde(flatten)]
    other: BTreeMap<String, Yaml>,
}

/// One published port: `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]` or the long form.
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    pub host_ip: Option<String>,
    pub published: Option<u16>,
    pub target: u16,
    pub udp: bool,
}

fn port_number(s: &str) -> Result<u16, String> {
    if s.contains('-') {
        return Err(format!("port range {s:?} is not supported: list each port"));
    }
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port {s:?}")),
    }
}

fn protocol_is_udp(p: &str) -> Result<bool, String> {
    match p.to_ascii_lowercase().as_str() {
        "tcp" => Ok(false),
        "udp" => Ok(true),
        other => Err(format!("unsupported protocol {other:?} (tcp or udp)")),
    }
}

/// Parses the short port syntax, as compose's loader does.
pub fn parse_port(short: &str) -> Result<Port, String> {
    let (spec, udp) = match short.rsplit_once('/') {
        Some((spec, proto)) => (spec, protocol_is_udp(proto)?),
        None => (short, false),
    };
    let mut parts = spec.rsplitn(3, ':');
    let target = port_number(parts.next().unwrap_or_default())?;
    let published = match parts.next() {
        Some("") | None => None,
        Some(p) => Some(port_number(p)?),
    };
    let host_ip = parts
        .next()
        .map(|ip| ip.trim_start_matches('[').trim_end_matches(']').to_string());
    Ok(Port {
        host_ip,
        published,
        target,
        udp,
    })
}

fn port_entry(entry: &Yaml) -> Result<Port, String> {
    match entry {
        Yaml::Number(n) => parse_port(&n.to_string()),
        Yaml::String(s) => parse_port(s),
        Yaml::Mapping(_) => {
            #[derive(Deserialize)]
            struct Long {
                target: u16,
                published: Option<Yaml>,
                host_ip: Option<String>,
                protocol: Option<String>,
            }
            let long: Long = serde_yaml::from_value(entry.clone()).map_err(|e| e.to_string())?;
            let published = match long.published {
                None => None,
                Some(Yaml::Number(n)) => Some(port_number(&n.to_string())?),
                Some(Yaml::String(s)) => Some(port_number(&s)?),
                Some(other) => return Err(format!("invalid published port {other:?}")),
            };
            Ok(Port {
                host_ip: long.host_ip,
                published,
                target: port_number(&long.target.to_string())?,
                udp: long
                    .protocol
                    .as_deref()
                    .map(protocol_is_udp)
                    .transpose()?
                    .unwrap_or(false),
            })
        }
        other => Err(format!("invalid port {other:?}")),
    }
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Splits a string command into words as a POSIX shell would (quotes and backslashes), as
/// compose does for `command: "a b"`.
pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(format!("unterminated quote in {s:?}")),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => w.extend(chars.next()),
                        Some(c) => w.push(c),
                        None => return Err(format!("unterminated quote in {s:?}")),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

fn words(w: &Words) -> Result<Vec<String>, String> {
    match w {
        Words::Shell(s) => shell_words(s),
        Words::List(l) => Ok(l.clone()),
    }
}

/// A compose duration (`1m30s`, `500ms`) in whole seconds, rounded up as a probe needs.
pub fn duration_seconds(s: &str) -> Result<i32, String> {
    let bad = || format!("invalid duration {s:?}");
    let mut micros: u64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let per = match &rest[..unit_len] {
            "us" => 1,
            "ms" => 1_000,
            "s" | "" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        micros = n
            .checked_mul(per)
            .and_then(|v| micros.checked_add(v))
            .ok_or_else(bad)?;
    }
    i32::try_from(micros.div_ceil(1_000_000)).map_err(|_| bad())
}

/// A Kubernetes name from a compose name: kompose turns `_` into `-`; what is still not a
/// DNS-1123 label is refused.
fn k8s_name(name: &str) -> Result<String, String> {
    let n = name.replace('_', "-").to_ascii_lowercase();
    let ok = !n.is_empty()
        && n.len() <= 63
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !n.starts_with('-')
        && !n.ends_with('-');
    if ok {
        Ok(n)
    } else {
        Err(format!("{name:?} is not a valid Kubernetes name"))
    }
}

fn labels(name: &str) -> Value {
    json!({ SERVICE_LABEL: name })
}

fn warn_unknown(warnings: &mut Vec<String>, place: &str, other: &BTreeMap<String, Yaml>) {
    for key in other.keys().filter(|k| !k.starts_with("x-")) {
        warnings.push(format!("{place}: unsupported key {key:?} ignored"));
    }
}

/// Parses `KEY=VALUE` lines of an env file (comments and blank lines skipped, `export `
/// prefixes and surrounding quotes removed) as compose does.
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            out.insert(k.trim().to_string(), v.to_string());
        }
    }
    out
}

/// Converts a Compose file. `read_env_file` reads an `env_file` path as written in the file
/// (relative to the Compose file's directory, the caller's business).
pub fn convert(
    text: &str,
    read_env_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<Conversion, ComposeError> {
    let file: File = serde_yaml::from_str(text).map_err(|e| ComposeError::Parse(e.to_string()))?;
    let mut out = Conversion::default();
    for key in file.other.keys() {
        match key.as_str() {
            "version" | "name" => {}
            k if k.starts_with("x-") => {}
            k => out
                .warnings
                .push(format!("unsupported top-level key {k:?} ignored")),
        }
    }
    if file.services.is_empty() {
        return Err(ComposeError::Parse("no services".into()));
    }
    for (name, svc) in &file.services {
        convert_service(name, svc, &file, read_env_file, &mut out)?;
    }
    Ok(out)
}

fn convert_service(
    compose_name: &str,
    svc: &Service,
    file: &File,
    read_env_file: &dyn Fn(&str) -> std::io::Result<String>,
    out: &mut Conversion,
) -> Result<(), ComposeError> {
    let e = |m: String| err(compose_name, m);
    let name = k8s_name(compose_name).map_err(e)?;
    let warnings = &mut out.warnings;
    warn_unknown(warnings, &format!("service {compose_name:?}"), &svc.other);
    let image = match (&svc.image, &svc.build) {
        (Some(image), _) => image.clone(),
        // kompose names a build-only service's image after the service.
        (None, Some(_)) => {
            warnings.push(format!(
                "service {compose_name:?}: build is not run; image {name:?} is used (load it with `skiff image load`)"
            ));
            name.clone()
        }
        (None, None) => return Err(e("neither image nor build".into())),
    };
    match &svc.depends_on {
        Some(DependsOn::List(l)) => l.iter().try_for_each(|d| depends(file, compose_name, d))?,
        Some(DependsOn::Map(m)) => m.keys().try_for_each(|d| depends(file, compose_name, d))?,
        None => {}
    }

    // Environment: `environment` over `env_file`, as compose; env files become ConfigMaps
    // referenced key by key, as kompose.
    let mut env: BTreeMap<String, Value> = BTreeMap::new();
    let env_files = match &svc.env_file {
        Some(OneOrMany::One(f)) => vec![f.clone()],
        Some(OneOrMany::Many(l)) => l.clone(),
        None => vec![],
    };
    for path in &env_files {
        let text = read_env_file(path)
            .map_err(|io| e(format!("env_file {path:?} cannot be read: {io}")))?;
        let base = path.rsplit('/').next().unwrap_or(path);
        let cm_name = k8s_name(&format!(
            "{name}-{}",
            base.replace('.', "-").trim_matches('-')
        ))
        .map_err(e)?;
        let data = parse_env_file(&text);
        for key in data.keys() {
            env.insert(
                key.clone(),
                json!({"name": key, "valueFrom": {"configMapKeyRef": {"name": cm_name, "key": key}}}),
            );
        }
        out.objects.push(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": cm_name, "labels": labels(&name)},
            "data": data,
        }));
    }
    let warnings = &mut out.warnings;
    let mut set = |k: &str, v: Option<String>| {
        match v {
        Some(v) => {
            env.insert(k.to_string(), json!({"name": k, "value": v}));
        }
        None => warnings.push(format!(
            "service {compose_name:?}: environment {k:?} has no value (taken from the shell by compose) and is left out"
        )),
    }
    };
    match &svc.environment {
        Some(Environment::Map(m)) => m
            .iter()
            .for_each(|(k, v)| set(k, v.as_ref().and_then(scalar))),
        Some(Environment::List(l)) => l.iter().for_each(|kv| match kv.split_once('=') {
            Some((k, v)) => set(k, Some(v.to_string())),
            None => set(kv, None),
        }),
        None => {}
    }

    // `expose`d ports are reachable from other services only: kompose gives them a Service
    // port too, on the same number.
    let mut ports = svc
        .ports
        .iter()
        .map(port_entry)
        .collect::<Result<Vec<_>, _>>()
        .map_err(e)?;
    for exposed in &svc.expose {
        let p = port_entry(exposed).map_err(e)?;
        if p.published.is_some() || p.host_ip.is_some() {
            return Err(e(format!("expose {exposed:?} takes a container port only")));
        }
        if !ports.iter().any(|q| q.target == p.target && q.udp == p.udp) {
            ports.push(p);
        }
    }

    // Volumes: named and anonymous ones become claims; bind mounts cannot follow a pod.
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    for (i, v) in svc.volumes.iter().enumerate() {
        let (source, target, read_only) = volume_entry(v).map_err(e)?;
        let claim = match source {
            Some(s) if s.starts_with(['/', '.', '~']) => {
                return Err(e(format!(
                "bind mount {s:?} is not supported: a pod may run on any node; use a named volume"
            )))
            }
            Some(s) => {
                if !file.volumes.contains_key(&s) {
                    return Err(e(format!("refers to undefined volume {s:?}")));
                }
                k8s_name(&s).map_err(e)?
            }
            None => format!("{name}-claim{i}"),
        };
        let mut mount = json!({"name": claim, "mountPath": target});
        let mut volume = json!({"name": claim, "persistentVolumeClaim": {"claimName": claim}});
        if read_only {
            mount["readOnly"] = json!(true);
            volume["persistentVolumeClaim"]["readOnly"] = json!(true);
        }
        mounts.push(mount);
        volumes.push(volume);
        out.objects.push(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "labels": labels(&claim)},
            "spec": {
                "accessModes": [if read_only { "ReadOnlyMany" } else { "ReadWriteOnce" }],
                "resources": {"requests": {"storage": CLAIM_SIZE}},
            },
        }));
    }

    let mut container = json!({"name": name, "image": image});
    let c = container.as_object_mut().expect("object");
    if let Some(ep) = &svc.entrypoint {
        c.insert("command".into(), json!(words(ep).map_err(e)?));
    }
    if let Some(cmd) = &svc.command {
        c.insert("args".into(), json!(words(cmd).map_err(e)?));
    }
    if !env.is_empty() {
        c.insert("env".into(), json!(env.into_values().collect::<Vec<_>>()));
    }
    if !ports.is_empty() {
        let cports: Vec<Value> = ports
            .iter()
            .map(|p| {
                let mut v = json!({"containerPort": p.target, "protocol": if p.udp { "UDP" } else { "TCP" }});
                if let Some(ip) = &p.host_ip {
                    v["hostIP"] = json!(ip);
                }
                v
            })
            .collect();
        c.insert("ports".into(), json!(cports));
    }
    if let Some(hc) = &svc.healthcheck {
        if let Some(probe) = probe(compose_name, hc, &mut out.warnings).map_err(e)? {
            c.insert("livenessProbe".into(), probe);
        }
    }
    if !mounts.is_empty() {
        c.insert("volumeMounts".into(), json!(mounts));
    }

    if !ports.is_empty() {
        let sports: Vec<Value> = ports
            .iter()
            .map(|p| {
                let port = p.published.unwrap_or(p.target);
                let mut v = json!({"name": if p.udp { format!("{port}-udp") } else { port.to_string() }, "port": port, "targetPort": p.target});
                if p.udp {
                    v["protocol"] = json!("UDP");
                }
                v
            })
            .collect();
        out.objects.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": labels(&name)},
            "spec": {"ports": sports, "selector": labels(&name)},
        }));
    }

    let restart = match svc.restart.as_deref() {
        None | Some("always") | Some("unless-stopped") => "Always",
        Some("no") => "Never",
        Some(r) if r == "on-failure" || r.starts_with("on-failure:") => "OnFailure",
        Some(r) => return Err(e(format!("unsupported restart {r:?}"))),
    };
    let mut pod_spec = json!({"containers": [container], "restartPolicy": restart});
    if !volumes.is_empty() {
        pod_spec["volumes"] = json!(volumes);
    }
    if restart != "Always" {
        // kompose: a service that is not restarted runs once, as a Pod.
        out.objects.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels(&name)},
            "spec": pod_spec,
        }));
        return Ok(());
    }
    let replicas = match &svc.deploy {
        Some(d) => {
            warn_unknown(
                &mut out.warnings,
                &format!("service {compose_name:?} deploy"),
                &d.other,
            );
            d.replicas.unwrap_or(1)
        }
        None => 1,
    };
    if replicas < 0 {
        return Err(e(format!("deploy.replicas {replicas} is negative")));
    }
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": labels(&name)},
        "template": {"metadata": {"labels": labels(&name)}, "spec": pod_spec},
    });
    if !volumes.is_empty() {
        // kompose: a claim is ReadWriteOnce, so old and new pods must not overlap.
        spec["strategy"] = json!({"type": "Recreate"});
    }
    out.objects.push(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(&name)},
        "spec": spec,
    }));
    Ok(())
}

fn depends(file: &File, service: &str, on: &str) -> Result<(), ComposeError> {
    if file.services.contains_key(on) {
        Ok(())
    } else {
        Err(err(service, format!("depends on undefined service {on:?}")))
    }
}

/// `(source, target, read_only)` of a short (`src:dst[:ro]`) or long volume entry.
fn volume_entry(v: &Yaml) -> Result<(Option<String>, String, bool), String> {
    match v {
        Yaml::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            match parts.as_slice() {
                [target] => Ok((None, target.to_string(), false)),
                [source, target] => Ok((Some(source.to_string()), target.to_string(), false)),
                [source, target, mode] => Ok((
                    Some(source.to_string()),
                    target.to_string(),
                    mode.split(',').any(|m| m == "ro"),
                )),
                _ => Err(format!("invalid volume {s:?}")),
            }
        }
        Yaml::Mapping(_) => {
            #[derive(Deserialize)]
            struct Long {
                #[serde(rename = "type")]
                kind: String,
                source: Option<String>,
                target: String,
                #[serde(default)]
                read_only: bool,
            }
            let l: Long = serde_yaml::from_value(v.clone()).map_err(|e| e.to_string())?;
            match l.kind.as_str() {
                "volume" => Ok((l.source, l.target, l.read_only)),
                "bind" => Err(format!(
                    "bind mount {:?} is not supported: a pod may run on any node; use a named volume",
                    l.source.unwrap_or_default()
                )),
                other => Err(format!("volume type {other:?} is not supported")),
            }
        }
        other => Err(format!("invalid volume {other:?}")),
    }
}

/// A healthcheck as a liveness probe, as kompose: `CMD` runs the command, `CMD-SHELL` (or a
/// string) through `/bin/sh -c`; `NONE` or `disable` means none.
fn probe(
    service: &str,
    hc: &Healthcheck,
    warnings: &mut Vec<String>,
) -> Result<Option<Value>, String> {
    warn_unknown(
        warnings,
        &format!("service {service:?} healthcheck"),
        &hc.other,
    );
    let command = match &hc.test {
        _ if hc.disable => return Ok(None),
        None => return Ok(None),
        Some(Words::Shell(s)) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        Some(Words::List(l)) => match l.split_first() {
            Some((first, rest)) if first == "CMD" => rest.to_vec(),
            Some((first, rest)) if first == "CMD-SHELL" => {
                vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
            }
            Some((first, _)) if first == "NONE" => return Ok(None),
            _ => {
                return Err(format!(
                    "healthcheck test {l:?} must start with CMD, CMD-SHELL or NONE"
                ))
            }
        },
    };
    let mut p = json!({"exec": {"command": command}});
    if let Some(i) = &hc.interval {
        p["periodSeconds"] = json!(duration_seconds(i)?);
    }
    if let Some(t) = &hc.timeout {
        p["timeoutSeconds"] = json!(duration_seconds(t)?);
    }
    if let Some(s) = &hc.start_period {
        p["initialDelaySeconds"] = json!(duration_seconds(s)?);
    }
    if let Some(r) = hc.retries {
        if r < 1 {
            return Err(format!("healthcheck retries {r} must be at least 1"));
        }
        p["failureThreshold"] = json!(r);
    }
    Ok(Some(p))
}

#[cfg(test)]
mod tests;
