//! Table-driven tests: realistic bad manifests produce upstream's exact messages, and the
//! article's manifests validate clean after defaulting.

use serde_json::{json, Value};

use super::{validate, ErrorKind, FieldError};
use crate::defaults::apply_defaults;

/// The article's manifests (`/work/shared/seed/manifests`), hand-converted from YAML.
fn article_manifests() -> Vec<(&'static str, &'static str, Value)> {
    let collector_container = json!({"name": "collector", "image": "collector:latest",
        "ports": [{"containerPort": 8080}]});
    vec![
        (
            "",
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "collector"},
            "spec": {"containers": [collector_container]}}),
        ),
        (
            "apps",
            "ReplicaSet",
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "collector"}, "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "collector"}},
            "template": {"metadata": {"labels": {"app": "collector"}},
                "spec": {"containers": [collector_container]}}}}),
        ),
        ("apps", "Deployment", article_deployment()),
        (
            "",
            "Service",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello"},
            "spec": {"selector": {"app": "hello"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        ),
        (
            "apps",
            "StatefulSet",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "mystore"}, "spec": {"serviceName": "mystore", "replicas": 3,
            "selector": {"matchLabels": {"app": "mystore"}},
            "template": {"metadata": {"labels": {"app": "mystore"}}, "spec": {"containers": [
                {"name": "mystore", "image": "mystore:latest", "ports": [{"containerPort": 9000}],
                 "volumeMounts": [{"name": "data", "mountPath": "/var/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "10Gi"}}}}]}}),
        ),
        (
            "gateway.networking.k8s.io",
            "Gateway",
            json!({"apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway", "metadata": {"name": "main-gateway"}, "spec": {
            "gatewayClassName": "nginx",
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}}),
        ),
        (
            "gateway.networking.k8s.io",
            "HTTPRoute",
            json!({"apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute", "metadata": {"name": "collector-route"}, "spec": {
            "parentRefs": [{"name": "main-gateway"}], "hostnames": ["collector.example.com"],
            "rules": [{"backendRefs": [{"name": "collector", "port": 80}]}]}}),
        ),
        (
            "",
            "ConfigMap",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "collector-config"},
            "data": {"LOG_LEVEL": "info", "RETENTION_DAYS": "30", "MAX_BATCH_SIZE": "1000"}}),
        ),
        (
            "",
            "Secret",
            json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "collector-secrets"}, "type": "Opaque",
            "data": {"POSTGRES_PASSWORD": "cGFzc3dvcmQxMjM=",
                "POSTGRES_CONNECTION_STRING": "cG9zdGdyZXM6Ly9jb2xsZWN0b3I6cGFzc3dvcmQxMjNAcG9zdGdyZXM6NTQzMi9ldmVudHM="}}),
        ),
        // The probes and Prometheus annotations fragments, placed where the article puts them.
        (
            "",
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "collector",
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
                "prometheus.io/path": "/metrics"}},
            "spec": {"containers": [{"name": "collector", "image": "collector:v2",
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                    "initialDelaySeconds": 5, "periodSeconds": 10},
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080},
                    "initialDelaySeconds": 5, "periodSeconds": 5}}]}}),
        ),
    ]
}

fn article_deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "collector"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "collector"}},
            "template": {"metadata": {"labels": {"app": "collector"}},
                "spec": {"containers": [{"name": "collector", "image": "collector:v2",
                    "ports": [{"containerPort": 8080}]}]}}}})
}

/// Defaults an object and gives it the namespace the apiserver would, as before validation.
fn prepared(group: &str, kind: &str, mut obj: Value) -> Value {
    apply_defaults(group, kind, &mut obj);
    if kind == "Job" {
        crate::defaults::generate_job_selector(&mut obj, "8d1f3a52-0c47-4d7e-9a5e-2f1c6b9e4a10");
    }
    let cluster_scoped = matches!(
        kind,
        "Namespace" | "Node" | "PersistentVolume" | "ClusterRole" | "ClusterRoleBinding"
    );
    if !cluster_scoped {
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.entry("namespace").or_insert(json!("default"));
        }
    }
    obj
}

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

#[test]
fn article_manifests_validate_clean() {
    for (group, kind, obj) in article_manifests() {
        let obj = prepared(group, kind, obj);
        assert_eq!(
            messages(&validate(group, kind, &obj, None)),
            Vec::<String>::new(),
            "{kind}"
        );
    }
}

/// Applies `edit` to a manifest, then expects exactly `want` (in upstream's order).
fn check(name: &str, group: &str, kind: &str, obj: Value, want: &[&str]) {
    let obj = prepared(group, kind, obj);
    assert_eq!(messages(&validate(group, kind, &obj, None)), want, "{name}");
}

fn deployment_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut d = article_deployment();
    edit(&mut d);
    d
}

fn pod_with(containers: Value) -> Value {
    json!({"metadata": {"name": "web"}, "spec": {"containers": containers}})
}

#[test]
fn bad_manifests_get_upstream_messages() {
    let cases: Vec<(&str, &str, &str, Value, Vec<&str>)> = vec![
        (
            "bad_name",
            "apps",
            "Deployment",
            deployment_with(|d| d["metadata"]["name"] = json!("Bad_Name")),
            vec![r#"metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#],
        ),
        (
            "missing_name",
            "",
            "ConfigMap",
            json!({"metadata": {}, "data": {}}),
            vec!["metadata.name: Required value: name or generateName is required"],
        ),
        (
            "missing_image",
            "apps",
            "Deployment",
            deployment_with(|d| {
                if let Some(c) = d.pointer_mut("/spec/template/spec/containers/0").and_then(Value::as_object_mut) {
                    c.remove("image");
                }
            }),
            vec!["spec.template.spec.containers[0].image: Required value"],
        ),
        (
            "selector_mismatch",
            "apps",
            "Deployment",
            deployment_with(|d| d["spec"]["template"]["metadata"]["labels"] = json!({"app": "web"})),
            vec![r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#],
        ),
        (
            "missing_selector",
            "apps",
            "Deployment",
            deployment_with(|d| {
                if let Some(s) = d["spec"].as_object_mut() {
                    s.remove("selector");
                }
            }),
            vec![
                "spec.selector: Required value",
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"collector"}: `selector` does not match template `labels`"#,
            ],
        ),
        (
            "negative_replicas",
            "apps",
            "Deployment",
            deployment_with(|d| d["spec"]["replicas"] = json!(-1)),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            "both_rolling_update_bounds_zero",
            "apps",
            "Deployment",
            deployment_with(|d| d["spec"]["strategy"] = json!({"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}})),
            vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"],
        ),
        (
            "deployment_template_must_restart_always",
            "apps",
            "Deployment",
            deployment_with(|d| d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never")),
            vec![r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#],
        ),
        (
            "port_out_of_range",
            "",
            "Pod",
            pod_with(json!([{"name": "app", "image": "app:1", "ports": [{"containerPort": 70000}]}])),
            vec!["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"],
        ),
        (
            "port_name_too_long",
            "",
            "Pod",
            pod_with(json!([{"name": "app", "image": "app:1",
                "ports": [{"containerPort": 80, "name": "http-metrics-port"}]}])),
            vec![r#"spec.containers[0].ports[0].name: Invalid value: "http-metrics-port": must be no more than 15 characters"#],
        ),
        (
            "duplicate_container_name",
            "",
            "Pod",
            pod_with(json!([{"name": "app", "image": "a:1"}, {"name": "app", "image": "b:1"}])),
            vec![r#"spec.containers[1].name: Duplicate value: "app""#],
        ),
        (
            "no_containers",
            "",
            "Pod",
            pod_with(json!([])),
            vec!["spec.containers: Required value"],
        ),
        (
            "unsupported_restart_policy",
            "",
            "Pod",
            json!({"metadata": {"name": "web"}, "spec": {"restartPolicy": "Sometimes",
                "containers": [{"name": "app", "image": "app:1"}]}}),
            vec![r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#],
        ),
        (
            "mount_of_missing_volume",
            "",
            "Pod",
            pod_with(json!([{"name": "app", "image": "app:1",
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}])),
            vec![r#"spec.containers[0].volumeMounts[0].name: Not found: "data""#],
        ),
        (
            "request_above_limit",
            "",
            "Pod",
            pod_with(json!([{"name": "app", "image": "app:1",
                "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}}])),
            vec![r#"spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1"#],
        ),
        (
            "probe_without_handler",
            "",
            "Pod",
            pod_with(json!([{"name": "app", "image": "app:1", "readinessProbe": {"periodSeconds": 5}}])),
            vec!["spec.containers[0].readinessProbe: Required value: must specify a handler type"],
        ),
        (
            "env_name_with_equals",
            "",
            "Pod",
            pod_with(json!([{"name": "app", "image": "app:1", "env": [{"name": "A=B", "value": "x"}]}])),
            vec![r#"spec.containers[0].env[0].name: Invalid value: "A=B": environment variable name may not contain '='"#],
        ),
        (
            "bad_label_value",
            "",
            "Pod",
            json!({"metadata": {"name": "web", "labels": {"app": "my app"}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]}}),
            vec![r#"metadata.labels: Invalid value: "my app": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#],
        ),
        (
            "job_without_restart_policy",
            "batch",
            "Job",
            json!({"metadata": {"name": "pi"}, "spec": {"template": {"spec": {
                "containers": [{"name": "pi", "image": "perl:5.34"}]}}}}),
            vec![r#"spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#],
        ),
        (
            "service_type_unsupported",
            "",
            "Service",
            json!({"metadata": {"name": "hello"}, "spec": {"type": "Foo", "ports": [{"port": 80}]}}),
            vec![r#"spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#],
        ),
        (
            "service_without_ports",
            "",
            "Service",
            json!({"metadata": {"name": "hello"}, "spec": {"selector": {"app": "hello"}}}),
            vec!["spec.ports: Required value"],
        ),
        (
            "service_ports_need_names",
            "",
            "Service",
            json!({"metadata": {"name": "hello"}, "spec": {"ports": [{"port": 80}, {"port": 443}]}}),
            vec!["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"],
        ),
        (
            "service_name_must_start_with_letter",
            "",
            "Service",
            json!({"metadata": {"name": "1hello"}, "spec": {"ports": [{"port": 80}]}}),
            vec![r#"metadata.name: Invalid value: "1hello": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#],
        ),
        (
            "config_map_bad_key",
            "",
            "ConfigMap",
            json!({"metadata": {"name": "cfg"}, "data": {"bad key": "x"}}),
            vec![r#"data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"#],
        ),
        (
            "namespace_name_is_a_label",
            "",
            "Namespace",
            json!({"metadata": {"name": "Prod"}}),
            vec![r#"metadata.name: Invalid value: "Prod": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"#],
        ),
        (
            "role_rule_without_verbs",
            "rbac.authorization.k8s.io",
            "Role",
            json!({"metadata": {"name": "reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
            vec!["rules[0].verbs: Required value: verbs must contain at least one value"],
        ),
        (
            "statefulset_pod_spec_is_checked_only_when_pods_are_created",
            "apps",
            "StatefulSet",
            json!({"metadata": {"name": "db"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
                    {"name": "db", "volumeMounts": [{"name": "logs", "mountPath": "/l"}]}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}}),
            vec![],
        ),
        (
            "statefulset_selector_mismatch",
            "apps",
            "StatefulSet",
            json!({"metadata": {"name": "db"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [
                    {"name": "db", "image": "db:1"}]}}}}),
            vec![r#"spec.template.metadata.labels: Invalid value: map[string]string{"a":"c"}: `selector` does not match template `labels`"#],
        ),
    ];
    for (name, group, kind, obj, want) in cases {
        check(name, group, kind, obj, &want);
    }
}

/// name, group, kind, new object, old object, expected messages.
type UpdateCase<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a Value,
    &'a Value,
    Vec<&'a str>,
);

#[test]
fn updates_keep_immutable_fields() {
    let deploy = prepared("apps", "Deployment", article_deployment());
    let mut moved = deploy.clone();
    moved["spec"]["selector"] = json!({"matchLabels": {"app": "web"}});
    moved["spec"]["template"]["metadata"]["labels"] = json!({"app": "web"});

    let pod = prepared(
        "",
        "Pod",
        pod_with(json!([{"name": "app", "image": "app:1"}])),
    );
    let mut new_image = pod.clone();
    new_image["spec"]["containers"][0]["image"] = json!("app:2");
    let mut new_port = pod.clone();
    new_port["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);

    let svc = |ip: &str| {
        let mut s = prepared(
            "",
            "Service",
            json!({"metadata": {"name": "hello"},
            "spec": {"ports": [{"port": 80}]}}),
        );
        s["spec"]["clusterIP"] = json!(ip);
        s["spec"]["clusterIPs"] = json!([ip]);
        s
    };

    let cm = |immutable: bool, level: &str| {
        prepared(
            "",
            "ConfigMap",
            json!({"metadata": {"name": "cfg"}, "immutable": immutable,
            "data": {"LOG_LEVEL": level}}),
        )
    };

    let sts = prepared(
        "apps",
        "StatefulSet",
        json!({"metadata": {"name": "db"}, "spec": {
        "serviceName": "db", "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "db", "image": "db:1"}]}}}}),
    );
    let mut sts_renamed = sts.clone();
    sts_renamed["spec"]["serviceName"] = json!("other");
    let mut sts_scaled = sts.clone();
    sts_scaled["spec"]["replicas"] = json!(5);

    let (svc2, svc2b, svc3) = (svc("10.96.0.2"), svc("10.96.0.2"), svc("10.96.0.3"));
    let (cm_info, cm_debug, icm_info, icm_debug) = (
        cm(false, "info"),
        cm(false, "debug"),
        cm(true, "info"),
        cm(true, "debug"),
    );
    let mut renamed = deploy.clone();
    renamed["metadata"]["name"] = json!("other");

    let cases: Vec<UpdateCase> = vec![
        ("deployment_selector_immutable", "apps", "Deployment", &moved, &deploy,
            vec![r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#]),
        ("name_immutable", "apps", "Deployment", &renamed, &deploy,
            vec![r#"metadata.name: Invalid value: "other": field is immutable"#]),
        ("pod_image_may_change", "", "Pod", &new_image, &pod, vec![]),
        ("service_cluster_ip_kept", "", "Service", &svc2b, &svc2, vec![]),
        ("service_cluster_ip_immutable", "", "Service", &svc3, &svc2,
            vec![r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.0.3"}: may not change once set"#]),
        ("mutable_config_map_changes", "", "ConfigMap", &cm_debug, &cm_info, vec![]),
        ("immutable_config_map_frozen", "", "ConfigMap", &icm_debug, &icm_info,
            vec!["data: Forbidden: field is immutable when `immutable` is set"]),
        ("statefulset_scale_allowed", "apps", "StatefulSet", &sts_scaled, &sts, vec![]),
        ("statefulset_other_fields_forbidden", "apps", "StatefulSet", &sts_renamed, &sts,
            vec!["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]),
    ];
    for (name, group, kind, new, old, want) in cases {
        assert_eq!(
            messages(&validate(group, kind, new, Some(old))),
            want,
            "{name}"
        );
    }

    let errs = validate("", "Pod", &new_port, Some(&pod));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].kind, ErrorKind::Forbidden);
    assert!(errs[0].to_string().starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"), "{}", errs[0]);
}

#[test]
fn error_kinds_carry_upstream_reasons_and_bodies() {
    let cases = [
        (ErrorKind::Required, "FieldValueRequired"),
        (ErrorKind::Invalid, "FieldValueInvalid"),
        (ErrorKind::NotSupported, "FieldValueNotSupported"),
        (ErrorKind::Duplicate, "FieldValueDuplicate"),
        (ErrorKind::Forbidden, "FieldValueForbidden"),
        (ErrorKind::TooLong, "FieldValueTooLong"),
        (ErrorKind::TooMany, "FieldValueTooMany"),
        (ErrorKind::NotFound, "FieldValueNotFound"),
    ];
    for (kind, reason) in cases {
        assert_eq!(kind.reason(), reason);
    }
    let too_long = FieldError::too_long("metadata.annotations", 262144);
    assert_eq!(
        too_long.to_string(),
        "metadata.annotations: Too long: may not be more than 262144 bytes"
    );
    assert_eq!(
        too_long.body(),
        "Too long: may not be more than 262144 bytes"
    );
    let null = FieldError::invalid("spec.x", Value::Null, "bad");
    assert_eq!(null.to_string(), r#"spec.x: Invalid value: "null": bad"#);
}

#[test]
fn namespace_scope_is_enforced_for_built_in_kinds() {
    let mut cm = json!({"metadata": {"name": "cfg"}});
    apply_defaults("", "ConfigMap", &mut cm);
    assert_eq!(
        messages(&validate("", "ConfigMap", &cm, None)),
        ["metadata.namespace: Required value"]
    );
    let ns = json!({"metadata": {"name": "prod", "namespace": "default"}});
    assert_eq!(
        messages(&validate("", "Namespace", &ns, None)),
        ["metadata.namespace: Forbidden: not allowed on this type"]
    );
    let cr = json!({"metadata": {"name": "route"}});
    assert!(validate("gateway.networking.k8s.io", "HTTPRoute", &cr, None).is_empty());
}

#[test]
fn common_manifests_validate_clean() {
    let template = json!({"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [
        {"name": "agent", "image": "agent:1.0", "args": ["--v=2"],
         "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                 {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LOG_LEVEL"}}}],
         "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
         "ports": [{"name": "metrics", "containerPort": 9100}],
         "volumeMounts": [{"name": "cfg", "mountPath": "/etc/agent"}, {"name": "tmp", "mountPath": "/tmp"}],
         "startupProbe": {"tcpSocket": {"port": "metrics"}},
         "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}}],
        "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "tmp", "emptyDir": {}}]}});
    let mut job_template = template.clone();
    job_template["spec"]["restartPolicy"] = json!("Never");
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "apps",
            "DaemonSet",
            json!({"metadata": {"name": "agent"}, "spec": {
            "selector": {"matchLabels": {"app": "agent"}}, "template": template}}),
        ),
        (
            "batch",
            "Job",
            json!({"metadata": {"name": "migrate"}, "spec": {"template": job_template}}),
        ),
        (
            "batch",
            "CronJob",
            json!({"metadata": {"name": "report"}, "spec": {"schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": job_template}}}}),
        ),
        (
            "",
            "Service",
            json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort",
            "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"},
            {"name": "https", "port": 443, "nodePort": 30443}]}}),
        ),
        (
            "",
            "Service",
            json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None",
            "selector": {"app": "db"}}}),
        ),
        (
            "",
            "Service",
            json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName",
            "externalName": "db.example.com"}}),
        ),
        ("", "Namespace", json!({"metadata": {"name": "shop"}})),
        (
            "",
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ),
        (
            "",
            "Secret",
            json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": "Y3J0", "tls.key": "a2V5"}}),
        ),
        (
            "",
            "Event",
            json!({"metadata": {"name": "web.17c3a1b2c3d4e5f6"}, "type": "Normal",
            "reason": "Scheduled", "message": "assigned", "involvedObject": {"kind": "Pod",
            "name": "web", "namespace": "default"}, "source": {"component": "default-scheduler"}}),
        ),
        (
            "coordination.k8s.io",
            "Lease",
            json!({"metadata": {"name": "skiff-scheduler"},
            "spec": {"holderIdentity": "skiff", "leaseDurationSeconds": 15}}),
        ),
        (
            "rbac.authorization.k8s.io",
            "Role",
            json!({"metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            json!({"metadata": {"name": "metrics"},
            "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"metadata": {"name": "read-pods"},
            "roleRef": {"kind": "Role", "name": "pod-reader", "apiGroup": "rbac.authorization.k8s.io"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "ci"}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            json!({"metadata": {"name": "metrics"},
            "roleRef": {"kind": "ClusterRole", "name": "metrics"},
            "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}]}),
        ),
        (
            "",
            "Node",
            json!({"metadata": {"name": "skiff", "labels": {"kubernetes.io/hostname": "skiff"}},
            "spec": {"podCIDR": "10.244.0.0/24"}}),
        ),
    ];
    for (group, kind, obj) in cases {
        let obj = prepared(group, kind, obj);
        assert_eq!(
            messages(&validate(group, kind, &obj, None)),
            Vec::<String>::new(),
            "{kind}"
        );
    }
}

#[test]
fn cron_job_schedule_and_time_zone_get_upstream_messages() {
    let cron = |schedule: &str, tz: Option<&str>| {
        let mut obj = json!({"metadata": {"name": "report"}, "spec": {"schedule": schedule,
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}}}});
        if let Some(tz) = tz {
            obj["spec"]["timeZone"] = json!(tz);
        }
        obj
    };
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "bogus schedule",
            cron("bogus", None),
            &["spec.schedule: Invalid value: \"bogus\": expected exactly 5 fields, found 1: [bogus]"],
        ),
        (
            "unknown descriptor",
            cron("@fortnightly", None),
            &["spec.schedule: Invalid value: \"@fortnightly\": unrecognized descriptor: @fortnightly"],
        ),
        (
            "TZ in schedule and timeZone",
            cron("TZ=UTC 0 * * * *", Some("UTC")),
            &["spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use both timeZone field and TZ or CRON_TZ in schedule"],
        ),
        (
            "empty time zone",
            cron("0 * * * *", Some("")),
            &["spec.timeZone: Invalid value: \"\": timeZone must be nil or non-empty string"],
        ),
        (
            "Local time zone",
            cron("0 * * * *", Some("Local")),
            &["spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"],
        ),
        (
            "unknown time zone",
            cron("0 * * * *", Some("Mars/Olympus")),
            &["spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus"],
        ),
        ("descriptor with a time zone", cron("@hourly", Some("Europe/Paris")), &[]),
        ("every minute", cron("*/1 * * * *", None), &[]),
    ];
    for (name, obj, want) in cases {
        check(name, "batch", "CronJob", obj, want);
    }
}
