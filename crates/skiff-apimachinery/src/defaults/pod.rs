//! Defaults for `PodSpec` and everything nested in it (containers, probes, volumes), as
//! upstream's `SetDefaults_PodSpec`, `SetDefaults_Container` and the generated nested defaults.

use serde_json::{json, Map, Value};

use super::json::{default, default_nonzero, each_obj, ensure_obj, get_obj, template_metadata};

/// Which object carries the spec: a few defaults apply to Pods only, never to templates, so
/// that defaulting a template does not change its hash across upgrades (upstream issue 69445).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Owner {
    /// A `Pod` object's own spec.
    Pod,
    /// A pod template inside a workload or a `PodTemplate`.
    Template,
}

/// Defaults a `PodTemplateSpec` (`{metadata, spec}`) in place.
pub(crate) fn pod_template(template: &mut Map<String, Value>) {
    template_metadata(template);
    pod_spec(ensure_obj(template, "spec"), Owner::Template);
}

/// Defaults a `PodSpec` in place.
pub(crate) fn pod_spec(spec: &mut Map<String, Value>, owner: Owner) {
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "securityContext", json!({}));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        each_obj(spec, key, container);
    }
    each_obj(spec, "volumes", volume);
    if owner == Owner::Pod {
        for key in ["containers", "initContainers"] {
            each_obj(spec, key, requests_from_limits);
        }
        default(spec, "enableServiceLinks", json!(true));
        if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
            for key in ["containers", "initContainers"] {
                each_obj(spec, key, |c| {
                    each_obj(c, "ports", host_port_from_container_port)
                });
            }
        }
    }
}

/// Defaults one container (regular, init or ephemeral).
fn container(c: &mut Map<String, Value>) {
    if super::json::is_unset(c.get("imagePullPolicy")) {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        c.insert("imagePullPolicy".into(), json!(pull_policy_for(image)));
    }
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    // `resources` is a non-pointer struct in Go, so it always serialises, as `{}` when empty.
    ensure_obj(c, "resources");
    each_obj(c, "ports", |p| default(p, "protocol", json!("TCP")));
    each_obj(c, "env", |e| {
        if let Some(from) = get_obj(e, "valueFrom") {
            if let Some(field) = get_obj(from, "fieldRef") {
                default(field, "apiVersion", json!("v1"));
            }
        }
    });
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = get_obj(c, key) {
            probe(p);
        }
    }
    if let Some(lc) = get_obj(c, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(h) = get_obj(lc, key) {
                handler(h);
            }
        }
    }
}

/// Upstream pulls `:latest` (explicit or implied) on every start and anything else only when
/// missing; a digest without a tag names immutable content, so it is `IfNotPresent`.
pub fn pull_policy_for(image: &str) -> &'static str {
    if image_tag(image).as_deref() == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    }
}

/// The tag docker reference parsing would give: the explicit tag, `latest` when there is
/// neither tag nor digest, `None` for a digest-only reference.
fn image_tag(image: &str) -> Option<String> {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    // A ':' before the last '/' belongs to a registry host:port, not to a tag.
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => Some(tag.to_string()),
        None if digest => None,
        None => Some("latest".to_string()),
    }
}

/// Probe timings are plain ints in Go, so `0` counts as unset.
fn probe(p: &mut Map<String, Value>) {
    default_nonzero(p, "timeoutSeconds", json!(1));
    default_nonzero(p, "periodSeconds", json!(10));
    default_nonzero(p, "successThreshold", json!(1));
    default_nonzero(p, "failureThreshold", json!(3));
    handler(p);
}

/// Defaults the action of a probe or lifecycle handler.
fn handler(h: &mut Map<String, Value>) {
    if let Some(http) = get_obj(h, "httpGet") {
        default(http, "path", json!("/"));
        default(http, "scheme", json!("HTTP"));
    }
    if let Some(grpc) = get_obj(h, "grpc") {
        if !grpc.contains_key("service") || grpc.get("service") == Some(&Value::Null) {
            grpc.insert("service".into(), json!(""));
        }
    }
}

/// Every volume source upstream knows; a volume naming none of them becomes an `emptyDir`.
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// Defaults one pod volume and its source.
fn volume(v: &mut Map<String, Value>) {
    let has_source = VOLUME_SOURCES
        .iter()
        .any(|k| v.get(*k).is_some_and(|s| !s.is_null()));
    if !has_source {
        v.insert("emptyDir".into(), json!({}));
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(src) = get_obj(v, key) {
            default(src, "defaultMode", json!(420));
        }
    }
    if let Some(src) = get_obj(v, "downwardAPI") {
        each_obj(src, "items", downward_item);
    }
    if let Some(src) = get_obj(v, "projected") {
        each_obj(src, "sources", |s| {
            if let Some(d) = get_obj(s, "downwardAPI") {
                each_obj(d, "items", downward_item);
            }
            if let Some(t) = get_obj(s, "serviceAccountToken") {
                default(t, "expirationSeconds", json!(3600));
            }
        });
    }
    if let Some(src) = get_obj(v, "hostPath") {
        default_type_unset(src);
    }
    if let Some(src) = get_obj(v, "image") {
        if super::json::is_unset(src.get("pullPolicy")) {
            let image = src.get("reference").and_then(Value::as_str).unwrap_or("");
            src.insert("pullPolicy".into(), json!(pull_policy_for(image)));
        }
    }
    if let Some(src) = get_obj(v, "iscsi") {
        default(src, "iscsiInterface", json!("default"));
    }
    if let Some(eph) = get_obj(v, "ephemeral") {
        if let Some(t) = get_obj(eph, "volumeClaimTemplate") {
            super::pvc_spec(ensure_obj(t, "spec"));
        }
    }
}

/// hostPath `type` defaults to `""` (no check), which Go serialises because it is a pointer.
fn default_type_unset(src: &mut Map<String, Value>) {
    if src.get("type").is_none_or(Value::is_null) {
        src.insert("type".into(), json!(""));
    }
}

/// A downward API item's `fieldRef.apiVersion` defaults to `v1`.
fn downward_item(item: &mut Map<String, Value>) {
    if let Some(f) = get_obj(item, "fieldRef") {
        default(f, "apiVersion", json!("v1"));
    }
}

/// Pods only: a resource with a limit and no request gets the limit as its request.
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(res) = get_obj(c, "resources") else {
        return;
    };
    let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let requests = ensure_obj(res, "requests");
    for (k, v) in limits {
        requests.entry(k).or_insert(v);
    }
}

/// Pods only: with host networking every container port is also a host port.
fn host_port_from_container_port(p: &mut Map<String, Value>) {
    let unset = p
        .get("hostPort")
        .is_none_or(|h| h.is_null() || h.as_i64() == Some(0));
    if unset {
        if let Some(cp) = p.get("containerPort").cloned() {
            p.insert("hostPort".into(), cp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_image_tag() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:v2", "IfNotPresent"),
            ("nginx@sha256:abcd", "IfNotPresent"),
            ("nginx:latest@sha256:abcd", "Always"),
            ("collector:latest", "Always"),
            ("collector:v2", "IfNotPresent"),
        ];
        for (image, want) in cases {
            assert_eq!(pull_policy_for(image), want, "{image}");
        }
    }
}
