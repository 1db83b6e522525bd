//! Table-driven tests: manifests in, what upstream 1.33 stores out.

use serde_json::{json, Value};

use super::apply_defaults;

fn defaulted(group: &str, kind: &str, mut obj: Value) -> Value {
    apply_defaults(group, kind, &mut obj);
    obj
}

/// The container every article workload defaults to, given its image and pull policy.
fn article_container(name: &str, image: &str, pull: &str, port: i64) -> Value {
    json!({
        "name": name, "image": image, "imagePullPolicy": pull,
        "ports": [{"containerPort": port, "protocol": "TCP"}],
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File"
    })
}

fn template_spec_defaults(containers: Value) -> Value {
    json!({
        "containers": containers,
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30
    })
}

#[test]
fn article_deployment_defaults_like_kubectl_get_deploy_o_yaml() {
    let input = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "collector"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "collector"}},
            "template": {
                "metadata": {"labels": {"app": "collector"}},
                "spec": {"containers": [{"name": "collector", "image": "collector:v2",
                    "ports": [{"containerPort": 8080}]}]}
            }
        }
    });
    let want = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "collector"},
        "spec": {
            "progressDeadlineSeconds": 600,
            "replicas": 3,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "collector"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                "type": "RollingUpdate"},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "collector"}},
                "spec": template_spec_defaults(json!([
                    article_container("collector", "collector:v2", "IfNotPresent", 8080)
                ]))
            }
        }
    });
    assert_eq!(defaulted("apps", "Deployment", input), want);
}

#[test]
fn article_workloads_get_upstream_defaults() {
    let containers = json!([{"name": "collector", "image": "collector:latest",
        "ports": [{"containerPort": 8080}]}]);
    let latest = json!([article_container(
        "collector",
        "collector:latest",
        "Always",
        8080
    )]);
    let cases = [
        (
            "pod_gets_template_defaults_plus_service_links",
            "",
            "Pod",
            json!({"metadata": {"name": "collector"}, "spec": {"containers": containers}}),
            json!({"metadata": {"name": "collector"}, "spec": {
                "containers": latest, "dnsPolicy": "ClusterFirst", "enableServiceLinks": true,
                "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "securityContext": {}, "terminationGracePeriodSeconds": 30}}),
        ),
        (
            "replicaset_defaults_template_only",
            "apps",
            "ReplicaSet",
            json!({"spec": {"replicas": 3, "selector": {"matchLabels": {"app": "collector"}},
                "template": {"metadata": {"labels": {"app": "collector"}},
                    "spec": {"containers": containers}}}}),
            json!({"spec": {"replicas": 3, "selector": {"matchLabels": {"app": "collector"}},
                "template": {"metadata": {"creationTimestamp": null,
                    "labels": {"app": "collector"}},
                    "spec": template_spec_defaults(latest.clone())}}}),
        ),
        (
            "replicaset_replicas_default_to_one",
            "apps",
            "ReplicaSet",
            json!({"spec": {"template": {"spec": {"containers": []}}}}),
            json!({"spec": {"replicas": 1, "template": {"metadata": {"creationTimestamp": null},
                "spec": template_spec_defaults(json!([]))}}}),
        ),
    ];
    for (name, group, kind, input, want) in cases {
        assert_eq!(defaulted(group, kind, input), want, "{name}");
    }
}

#[test]
fn article_statefulset_claims_are_stamped_and_pending() {
    let input = json!({"spec": {
        "serviceName": "mystore", "replicas": 3,
        "selector": {"matchLabels": {"app": "mystore"}},
        "template": {"metadata": {"labels": {"app": "mystore"}}, "spec": {"containers": [
            {"name": "mystore", "image": "mystore:latest", "ports": [{"containerPort": 9000}],
             "volumeMounts": [{"name": "data", "mountPath": "/var/data"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}]
    }});
    let mut container = article_container("mystore", "mystore:latest", "Always", 9000);
    container["volumeMounts"] = json!([{"name": "data", "mountPath": "/var/data"}]);
    let want = json!({"spec": {
        "serviceName": "mystore", "replicas": 3,
        "podManagementPolicy": "OrderedReady",
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        "revisionHistoryLimit": 10,
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "selector": {"matchLabels": {"app": "mystore"}},
        "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "mystore"}},
            "spec": template_spec_defaults(json!([container]))},
        "volumeClaimTemplates": [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"creationTimestamp": null, "name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "10Gi"}}, "volumeMode": "Filesystem"},
            "status": {"phase": "Pending"}}]
    }});
    assert_eq!(defaulted("apps", "StatefulSet", input), want);
}

#[test]
fn core_objects_get_upstream_defaults() {
    let cases = [
        (
            "service_clusterip_defaults",
            "Service",
            json!({"spec": {"selector": {"app": "hello"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
            json!({"spec": {"selector": {"app": "hello"},
                "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster",
                "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]},
                "status": {"loadBalancer": {}}}),
        ),
        (
            "service_target_port_defaults_to_port",
            "Service",
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 443, "protocol": "UDP"}]}}),
            json!({"spec": {"ports": [{"port": 443, "targetPort": 443, "protocol": "UDP"}],
                "sessionAffinity": "None", "type": "LoadBalancer",
                "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
                "allocateLoadBalancerNodePorts": true,
                "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]},
                "status": {"loadBalancer": {}}}),
        ),
        (
            "external_name_service_has_no_ip_families",
            "Service",
            json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
            json!({"spec": {"type": "ExternalName", "externalName": "example.com",
                "sessionAffinity": "None"}, "status": {"loadBalancer": {}}}),
        ),
        (
            "secret_type_defaults_to_opaque",
            "Secret",
            json!({"data": {"a": "Yg=="}}),
            json!({"data": {"a": "Yg=="}, "type": "Opaque"}),
        ),
        (
            "namespace_gets_name_label_and_phase",
            "Namespace",
            json!({"metadata": {"name": "shop"}}),
            json!({"metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}},
                "spec": {}, "status": {"phase": "Active"}}),
        ),
        (
            "pvc_is_filesystem_and_pending",
            "PersistentVolumeClaim",
            json!({"spec": {"accessModes": ["ReadWriteOnce"]}}),
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
                "resources": {}}, "status": {"phase": "Pending"}}),
        ),
        (
            "pv_is_retained_filesystem_and_pending",
            "PersistentVolume",
            json!({"spec": {"capacity": {"storage": "1Gi"}}}),
            json!({"spec": {"capacity": {"storage": "1Gi"}, "volumeMode": "Filesystem",
                "persistentVolumeReclaimPolicy": "Retain"}, "status": {"phase": "Pending"}}),
        ),
        (
            "replication_controller_selector_and_labels_from_template",
            "ReplicationController",
            json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {}}}}),
            json!({"metadata": {"labels": {"a": "b"}}, "spec": {"replicas": 1,
                "selector": {"a": "b"}, "template": {"metadata": {"creationTimestamp": null,
                "labels": {"a": "b"}}, "spec": template_spec_defaults(Value::Null)}}}),
        ),
    ];
    for (name, kind, input, mut want) in cases {
        if let Some(spec) = want.pointer_mut("/spec/template/spec") {
            spec.as_object_mut().map(|s| s.remove("containers"));
        }
        assert_eq!(defaulted("", kind, input), want, "{name}");
    }
}

#[test]
fn pod_only_defaults_do_not_touch_templates() {
    let spec = json!({"hostNetwork": true, "containers": [{"name": "c", "image": "i:1",
        "ports": [{"containerPort": 53}],
        "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}}}]});
    let pod = defaulted("", "Pod", json!({"spec": spec.clone()}));
    assert_eq!(
        pod.pointer("/spec/containers/0/resources/requests"),
        Some(&json!({"memory": "1Gi", "cpu": "1"}))
    );
    assert_eq!(
        pod.pointer("/spec/containers/0/ports/0/hostPort"),
        Some(&json!(53))
    );
    let tpl = defaulted("", "PodTemplate", json!({"template": {"spec": spec}}));
    assert_eq!(
        tpl.pointer("/template/spec/containers/0/resources/requests"),
        Some(&json!({"memory": "1Gi"}))
    );
    assert_eq!(
        tpl.pointer("/template/spec/containers/0/ports/0/hostPort"),
        None
    );
    assert_eq!(tpl.pointer("/template/spec/enableServiceLinks"), None);
}

#[test]
fn probes_volumes_and_env_get_nested_defaults() {
    let pod = defaulted(
        "",
        "Pod",
        json!({"spec": {
            "containers": [{"name": "c", "image": "i",
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                    "initialDelaySeconds": 5, "periodSeconds": 10},
                "readinessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 5},
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}],
            "volumes": [{"name": "a"}, {"name": "b", "configMap": {"name": "cm"}},
                {"name": "c", "secret": {"secretName": "s", "defaultMode": 256}},
                {"name": "d", "hostPath": {"path": "/x"}}]
        }}),
    );
    assert_eq!(
        pod.pointer("/spec/containers/0/livenessProbe"),
        Some(&json!({
        "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
        "initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 1,
        "successThreshold": 1, "failureThreshold": 3}))
    );
    assert_eq!(
        pod.pointer("/spec/containers/0/readinessProbe/httpGet/path"),
        Some(&json!("/"))
    );
    assert_eq!(
        pod.pointer("/spec/containers/0/readinessProbe/periodSeconds"),
        Some(&json!(5))
    );
    assert_eq!(
        pod.pointer("/spec/containers/0/env/0/valueFrom/fieldRef/apiVersion"),
        Some(&json!("v1"))
    );
    assert_eq!(
        pod.pointer("/spec/volumes"),
        Some(&json!([
        {"name": "a", "emptyDir": {}},
        {"name": "b", "configMap": {"name": "cm", "defaultMode": 420}},
        {"name": "c", "secret": {"secretName": "s", "defaultMode": 256}},
        {"name": "d", "hostPath": {"path": "/x", "type": ""}}]))
    );
}

#[test]
fn batch_objects_get_upstream_defaults() {
    let job = defaulted(
        "batch",
        "Job",
        json!({"metadata": {"name": "pi"}, "spec": {
        "template": {"metadata": {"labels": {"x": "y"}}, "spec": {"containers": []}}}}),
    );
    assert_eq!(job["metadata"]["labels"], json!({"x": "y"}));
    for (field, want) in [
        ("completions", json!(1)),
        ("parallelism", json!(1)),
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
        ("podReplacementPolicy", json!("TerminatingOrFailed")),
    ] {
        assert_eq!(job["spec"][field], want, "{field}");
    }
    // Upstream defaults the template to Always too; Job validation then rejects it.
    assert_eq!(
        job["spec"]["template"]["spec"]["restartPolicy"],
        json!("Always")
    );

    let parallel = defaulted("batch", "Job", json!({"spec": {"parallelism": 3}}));
    assert_eq!(parallel["spec"].get("completions"), None);

    let cron = defaulted(
        "batch",
        "CronJob",
        json!({"spec": {"schedule": "* * * * *",
        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}}}}}),
    );
    assert_eq!(cron["spec"]["concurrencyPolicy"], json!("Allow"));
    assert_eq!(cron["spec"]["successfulJobsHistoryLimit"], json!(3));
    assert_eq!(cron["spec"]["failedJobsHistoryLimit"], json!(1));
    assert_eq!(cron["spec"]["suspend"], json!(false));
    assert_eq!(
        cron["spec"]["jobTemplate"]["metadata"],
        json!({"creationTimestamp": null})
    );
    assert_eq!(
        cron["spec"]["jobTemplate"]["spec"]["backoffLimit"],
        json!(6)
    );
    assert_eq!(
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"],
        json!("OnFailure")
    );
}

#[test]
fn daemonset_and_other_groups_get_upstream_defaults() {
    let ds = defaulted("apps", "DaemonSet", json!({"spec": {}}));
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], json!(10));

    let rb = defaulted(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        json!({
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "u"},
            {"kind": "ServiceAccount", "name": "default", "namespace": "x"}]}),
    );
    assert_eq!(
        rb["roleRef"]["apiGroup"],
        json!("rbac.authorization.k8s.io")
    );
    assert_eq!(
        rb["subjects"][0]["apiGroup"],
        json!("rbac.authorization.k8s.io")
    );
    assert_eq!(rb["subjects"][1].get("apiGroup"), None);

    let slice = defaulted(
        "discovery.k8s.io",
        "EndpointSlice",
        json!({"ports": [{"port": 80}]}),
    );
    assert_eq!(
        slice["ports"],
        json!([{"port": 80, "name": "", "protocol": "TCP"}])
    );

    let lease = json!({"spec": {"holderIdentity": "a"}});
    assert_eq!(
        defaulted("coordination.k8s.io", "Lease", lease.clone()),
        lease
    );
}

#[test]
fn job_selector_is_generated_from_the_uid_unless_manual() {
    let mut job = json!({"metadata": {"name": "pi"}, "spec": {"template": {"metadata":
        {"labels": {"x": "y"}}, "spec": {"restartPolicy": "Never"}}}});
    super::generate_job_selector(&mut job, "uid-1");
    assert_eq!(
        job["spec"]["selector"],
        json!({"matchLabels":
        {"batch.kubernetes.io/controller-uid": "uid-1"}})
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"],
        json!({"x": "y",
        "job-name": "pi", "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "uid-1", "batch.kubernetes.io/controller-uid": "uid-1"})
    );

    let mut manual = json!({"metadata": {"name": "pi"}, "spec": {"manualSelector": true,
        "selector": {"matchLabels": {"x": "y"}}}});
    let before = manual.clone();
    super::generate_job_selector(&mut manual, "uid-1");
    assert_eq!(manual, before);
}

#[test]
fn job_backoff_limit_is_unbounded_with_a_per_index_limit() {
    let job = defaulted(
        "batch",
        "Job",
        json!({"spec": {"completionMode": "Indexed", "completions": 3, "backoffLimitPerIndex": 1}}),
    );
    assert_eq!(job["spec"]["backoffLimit"], json!(i32::MAX));
    let explicit = defaulted(
        "batch",
        "Job",
        json!({"spec": {"backoffLimitPerIndex": 1, "backoffLimit": 4}}),
    );
    assert_eq!(explicit["spec"]["backoffLimit"], json!(4));
}

#[test]
fn daemonset_template_generation_follows_template_changes_only() {
    use super::{prepare_daemonset_create, prepare_daemonset_update};
    let gen = |ds: &serde_json::Value| {
        ds.pointer("/metadata/annotations/deprecated.daemonset.template.generation")
            .cloned()
    };
    let mut created = serde_json::json!({"metadata": {"name": "d",
        "annotations": {"deprecated.daemonset.template.generation": "7"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a"}]}}}});
    prepare_daemonset_create(&mut created);
    assert_eq!(
        gen(&created),
        Some(serde_json::json!("1")),
        "a client's value is ignored"
    );

    let mut same = created.clone();
    same["spec"]["minReadySeconds"] = serde_json::json!(5);
    same["metadata"]["annotations"]["deprecated.daemonset.template.generation"] =
        serde_json::json!("9");
    prepare_daemonset_update(&mut same, &created);
    assert_eq!(
        gen(&same),
        Some(serde_json::json!("1")),
        "not settable, not moved by spec"
    );

    let mut changed = created.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = serde_json::json!("b");
    prepare_daemonset_update(&mut changed, &created);
    assert_eq!(gen(&changed), Some(serde_json::json!("2")));

    let mut legacy_old = created.clone();
    legacy_old["metadata"]["annotations"] = serde_json::json!({});
    let mut legacy_new = legacy_old.clone();
    prepare_daemonset_update(&mut legacy_new, &legacy_old);
    assert_eq!(gen(&legacy_new), None);
}
