//! Table-driven tests with a fixed `now`, cells compared with what upstream prints.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};

use super::{column_definitions, human_duration, row_cells};

pub(super) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// An RFC 3339 timestamp `ago` before [`now`].
pub(super) fn ago(ago: Duration) -> String {
    (now() - ago).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(super) fn meta(name: &str) -> Value {
    json!({"name": name, "creationTimestamp": ago(Duration::minutes(5))})
}

#[test]
fn human_duration_matches_upstream_thresholds() {
    let cases = [
        (Duration::seconds(-5), "<invalid>"),
        (Duration::milliseconds(-1500), "0s"),
        (Duration::seconds(0), "0s"),
        (Duration::seconds(5), "5s"),
        (Duration::seconds(119), "119s"),
        (Duration::seconds(120), "2m"),
        (Duration::seconds(192), "3m12s"),
        (Duration::minutes(10), "10m"),
        (Duration::minutes(179), "179m"),
        (Duration::minutes(180), "3h"),
        (Duration::minutes(7 * 60 + 59), "7h59m"),
        (Duration::hours(8), "8h"),
        (Duration::hours(47), "47h"),
        (Duration::hours(51), "2d3h"),
        (Duration::hours(72), "3d"),
        (Duration::days(8), "8d"),
        (Duration::days(729), "729d"),
        (Duration::days(730), "2y"),
        (Duration::days(365 * 3 + 10), "3y10d"),
        (Duration::days(365 * 9), "9y"),
    ];
    for (d, want) in cases {
        assert_eq!(human_duration(d), want, "{d:?}");
    }
}

#[test]
fn every_row_has_one_cell_per_column() {
    let kinds = [
        ("", "Pod"),
        ("", "Node"),
        ("", "Namespace"),
        ("", "Service"),
        ("", "Endpoints"),
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "ServiceAccount"),
        ("", "Event"),
        ("events.k8s.io", "Event"),
        ("", "PersistentVolume"),
        ("", "PersistentVolumeClaim"),
        ("", "ResourceQuota"),
        ("", "LimitRange"),
        ("", "PodTemplate"),
        ("", "ReplicationController"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ControllerRevision"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("coordination.k8s.io", "Lease"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("networking.k8s.io", "Ingress"),
        ("policy", "PodDisruptionBudget"),
        ("storage.k8s.io", "StorageClass"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("gateway.networking.k8s.io", "HTTPRoute"),
        ("", "ComponentStatus"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("autoscaling", "Scale"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("certificates.k8s.io", "ClusterTrustBundle"),
        ("coordination.k8s.io", "LeaseCandidate"),
        ("networking.k8s.io", "IngressClass"),
        ("networking.k8s.io", "ServiceCIDR"),
        ("networking.k8s.io", "IPAddress"),
        ("storage.k8s.io", "VolumeAttributesClass"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSIStorageCapacity"),
        ("node.k8s.io", "RuntimeClass"),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
        ),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicyBinding",
        ),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
        (
            "admissionregistration.k8s.io",
            "MutatingAdmissionPolicyBinding",
        ),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
        ("internal.apiserver.k8s.io", "StorageVersion"),
        ("storagemigration.k8s.io", "StorageVersionMigration"),
        ("resource.k8s.io", "DeviceClass"),
        ("resource.k8s.io", "ResourceClaim"),
        ("resource.k8s.io", "ResourceClaimTemplate"),
        ("resource.k8s.io", "ResourceSlice"),
        ("apiregistration.k8s.io", "APIService"),
    ];
    let obj = json!({"metadata": meta("x")});
    for (group, kind) in kinds {
        let cols = column_definitions(group, kind);
        // Upstream's IPAddress rows carry an AGE cell its columns do not declare.
        let extra_cells = usize::from(kind == "IPAddress");
        assert_eq!(
            row_cells(group, kind, &obj, now()).len(),
            cols.len() + extra_cells,
            "{group}/{kind}"
        );
        // Upstream marks VolumeAttachment's Attacher as a name too, and leaves Scale's and
        // StorageVersionMigration's Name unformatted.
        let want_names = match kind {
            "VolumeAttachment" => 2,
            "Scale" | "StorageVersionMigration" => 0,
            _ => 1,
        };
        let names: Vec<&Value> = cols.iter().filter(|c| c["format"] == "name").collect();
        assert_eq!(names.len(), want_names, "{group}/{kind} name columns");
    }
}

#[test]
fn pod_status_column_follows_container_states() {
    let spec = json!({"containers": [{"name": "app", "image": "app:1"}]});
    let init_spec = json!({"initContainers": [{"name": "init", "image": "busybox"}],
        "containers": [{"name": "app", "image": "app:1"}]});
    let running = json!({"name": "app", "ready": true, "restartCount": 0,
        "state": {"running": {"startedAt": ago(Duration::minutes(5))}}});
    let cases = [
        (
            "pending_without_statuses",
            spec.clone(),
            json!({"phase": "Pending"}),
            None,
            ["0/1", "Pending", "0"],
        ),
        (
            "running_and_ready",
            spec.clone(),
            json!({"phase": "Running", "containerStatuses": [running]}),
            None,
            ["1/1", "Running", "0"],
        ),
        (
            "crash_loop_with_last_restart",
            spec.clone(),
            json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": false,
                "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "finishedAt": ago(Duration::seconds(192))}}}]}),
            None,
            ["0/1", "CrashLoopBackOff", "4 (3m12s ago)"],
        ),
        (
            "image_pull_back_off",
            spec.clone(),
            json!({"phase": "Pending", "containerStatuses": [{"name": "app", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}),
            None,
            ["0/1", "ImagePullBackOff", "0"],
        ),
        (
            "completed",
            spec.clone(),
            json!({"phase": "Succeeded", "containerStatuses": [{"name": "app", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            None,
            ["0/1", "Completed", "0"],
        ),
        (
            "killed_without_reason_shows_signal",
            spec.clone(),
            json!({"phase": "Failed", "containerStatuses": [{"name": "app", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
            None,
            ["0/1", "Signal:9", "0"],
        ),
        (
            "init_container_running",
            init_spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "init", "ready": false,
                "restartCount": 0, "state": {"running": {}}}],
                "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]}),
            None,
            ["0/1", "Init:0/1", "0"],
        ),
        (
            "init_container_failed",
            init_spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "init", "ready": false,
                "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
            None,
            ["0/1", "Init:CrashLoopBackOff", "2"],
        ),
        (
            "terminating",
            spec.clone(),
            json!({"phase": "Running", "containerStatuses": [running]}),
            Some(ago(Duration::seconds(3))),
            ["1/1", "Terminating", "0"],
        ),
    ];
    for (name, spec, status, deletion, want) in cases {
        let mut metadata = meta("web");
        if let Some(d) = deletion {
            metadata["deletionTimestamp"] = json!(d);
        }
        let pod = json!({"metadata": metadata, "spec": spec, "status": status});
        let cells = row_cells("", "Pod", &pod, now());
        let got = [&cells[1], &cells[2], &cells[3]];
        assert_eq!(got, want.map(|w| json!(w)).each_ref(), "{name}");
        assert_eq!(cells[4], json!("5m"), "{name}");
    }
}

#[test]
fn pod_wide_cells_show_ip_node_and_gates() {
    let pod = json!({"metadata": meta("web"),
        "spec": {"nodeName": "node-1", "containers": [{"name": "a"}],
            "readinessGates": [{"conditionType": "example.com/ready"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.9"}],
            "conditions": [{"type": "example.com/ready", "status": "True"}]}});
    let cells = row_cells("", "Pod", &pod, now());
    assert_eq!(
        &cells[5..],
        &[
            json!("10.0.0.9"),
            json!("node-1"),
            json!("<none>"),
            json!("1/1")
        ]
    );
}

#[test]
fn workload_rows_print_like_kubectl_get() {
    let template =
        json!({"spec": {"containers": [{"name": "collector", "image": "collector:v2"}]}});
    let cases = [
        (
            "deployment",
            "apps",
            "Deployment",
            json!({"metadata": meta("collector"), "spec": {"replicas": 3,
                "selector": {"matchLabels": {"app": "collector"}}, "template": template},
                "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
            json!([
                "collector",
                "2/3",
                3,
                2,
                "5m",
                "collector",
                "collector:v2",
                "app=collector"
            ]),
        ),
        (
            "replicaset",
            "apps",
            "ReplicaSet",
            json!({"metadata": meta("collector-7d9f"), "spec": {"replicas": 3,
                "selector": {"matchLabels": {"app": "collector", "pod-template-hash": "7d9f"}},
                "template": template}, "status": {"replicas": 3, "readyReplicas": 3}}),
            json!([
                "collector-7d9f",
                3,
                3,
                3,
                "5m",
                "collector",
                "collector:v2",
                "app=collector,pod-template-hash=7d9f"
            ]),
        ),
        (
            "statefulset",
            "apps",
            "StatefulSet",
            json!({"metadata": meta("mystore"), "spec": {"replicas": 3, "template": template},
                "status": {"readyReplicas": 1}}),
            json!(["mystore", "1/3", "5m", "collector", "collector:v2"]),
        ),
        (
            "daemonset",
            "apps",
            "DaemonSet",
            json!({"metadata": meta("agent"), "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": template}, "status": {"desiredNumberScheduled": 1,
                "currentNumberScheduled": 1, "numberReady": 1, "updatedNumberScheduled": 1,
                "numberAvailable": 1}}),
            json!([
                "agent",
                1,
                1,
                1,
                1,
                1,
                "<none>",
                "5m",
                "collector",
                "collector:v2",
                "a=b"
            ]),
        ),
        (
            "job_running",
            "batch",
            "Job",
            json!({"metadata": meta("pi"), "spec": {"completions": 1, "parallelism": 1,
                "template": template}, "status": {"startTime": ago(Duration::seconds(30))}}),
            json!([
                "pi",
                "Running",
                "0/1",
                "30s",
                "5m",
                "collector",
                "collector:v2",
                "<none>"
            ]),
        ),
        (
            "job_complete",
            "batch",
            "Job",
            json!({"metadata": meta("pi"), "spec": {"completions": 1, "template": template},
                "status": {"succeeded": 1, "startTime": ago(Duration::seconds(60)),
                "completionTime": ago(Duration::seconds(20)),
                "conditions": [{"type": "Complete", "status": "True"}]}}),
            json!([
                "pi",
                "Complete",
                "1/1",
                "40s",
                "5m",
                "collector",
                "collector:v2",
                "<none>"
            ]),
        ),
        (
            "cronjob",
            "batch",
            "CronJob",
            json!({"metadata": meta("hourly"), "spec": {"schedule": "0 * * * *", "suspend": false,
                "jobTemplate": {"spec": {"template": template}}}}),
            json!([
                "hourly",
                "0 * * * *",
                "<none>",
                "False",
                0,
                "<none>",
                "5m",
                "collector",
                "collector:v2",
                "<none>"
            ]),
        ),
    ];
    for (name, group, kind, obj, want) in cases {
        assert_eq!(json!(row_cells(group, kind, &obj, now())), want, "{name}");
    }
}

#[test]
fn core_rows_print_like_kubectl_get() {
    let cases = [
        (
            "article_service",
            "Service",
            json!({"metadata": meta("hello"), "spec": {"type": "ClusterIP",
                "clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12"],
                "selector": {"app": "hello"},
                "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}),
            json!([
                "hello",
                "ClusterIP",
                "10.96.0.12",
                "<none>",
                "80/TCP",
                "5m",
                "app=hello"
            ]),
        ),
        (
            "pending_load_balancer",
            "Service",
            json!({"metadata": meta("web"), "spec": {"type": "LoadBalancer",
                "clusterIPs": ["10.96.0.13"], "ports": [{"port": 443, "nodePort": 31443,
                "protocol": "TCP"}, {"port": 53, "nodePort": 30053, "protocol": "UDP"}]}}),
            json!([
                "web",
                "LoadBalancer",
                "10.96.0.13",
                "<pending>",
                "443:31443/TCP,53:30053/UDP",
                "5m",
                "<none>"
            ]),
        ),
        (
            "headless_service",
            "Service",
            json!({"metadata": meta("mystore"), "spec": {"type": "ClusterIP", "clusterIP": "None",
                "clusterIPs": ["None"], "selector": {"app": "mystore"}}}),
            json!([
                "mystore",
                "ClusterIP",
                "None",
                "<none>",
                "<none>",
                "5m",
                "app=mystore"
            ]),
        ),
        (
            "configmap",
            "ConfigMap",
            json!({"metadata": meta("collector-config"), "data": {"LOG_LEVEL": "info",
                "RETENTION_DAYS": "30", "MAX_BATCH_SIZE": "1000"}}),
            json!(["collector-config", 3, "5m"]),
        ),
        (
            "secret",
            "Secret",
            json!({"metadata": meta("collector-secrets"), "type": "Opaque",
                "data": {"A": "", "B": ""}}),
            json!(["collector-secrets", "Opaque", 2, "5m"]),
        ),
        (
            "namespace",
            "Namespace",
            json!({"metadata": meta("default"), "status": {"phase": "Active"}}),
            json!(["default", "Active", "5m"]),
        ),
        (
            "endpoints_with_more",
            "Endpoints",
            json!({"metadata": meta("web"), "subsets": [{"addresses": [{"ip": "10.0.0.1"},
                {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
                "ports": [{"port": 8080}]}]}),
            json!([
                "web",
                "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 1 more...",
                "5m"
            ]),
        ),
        (
            "endpoints_empty",
            "Endpoints",
            json!({"metadata": meta("web")}),
            json!(["web", "<none>", "5m"]),
        ),
        (
            "node_ready_control_plane",
            "Node",
            json!({"metadata": {"name": "skiff", "creationTimestamp": ago(Duration::days(3)),
                "labels": {"node-role.kubernetes.io/control-plane": ""}},
                "spec": {"unschedulable": true},
                "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.5"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12",
                "kernelVersion": "6.1.0", "containerRuntimeVersion": "skiff://0.1.0"}}}),
            json!([
                "skiff",
                "Ready,SchedulingDisabled",
                "control-plane",
                "3d",
                "v1.33.0",
                "192.168.1.5",
                "<none>",
                "Debian GNU/Linux 12",
                "6.1.0",
                "skiff://0.1.0"
            ]),
        ),
        (
            "pvc_pending",
            "PersistentVolumeClaim",
            json!({"metadata": meta("data-mystore-0"), "spec": {"volumeMode": "Filesystem",
                "resources": {"requests": {"storage": "10Gi"}}}, "status": {"phase": "Pending"}}),
            json!([
                "data-mystore-0",
                "Pending",
                "",
                "",
                "",
                "",
                "<unset>",
                "5m",
                "Filesystem"
            ]),
        ),
        (
            "pvc_bound",
            "PersistentVolumeClaim",
            json!({"metadata": meta("data-mystore-0"), "spec": {"volumeName": "pv-1",
                "storageClassName": "local", "volumeMode": "Filesystem"},
                "status": {"phase": "Bound", "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteOnce"]}}),
            json!([
                "data-mystore-0",
                "Bound",
                "pv-1",
                "10Gi",
                "RWO",
                "local",
                "<unset>",
                "5m",
                "Filesystem"
            ]),
        ),
        (
            "pv_bound",
            "PersistentVolume",
            json!({"metadata": meta("pv-1"), "spec": {"capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "claimRef": {"namespace": "default", "name": "data-mystore-0"},
                "storageClassName": "local", "volumeMode": "Filesystem"},
                "status": {"phase": "Bound"}}),
            json!([
                "pv-1",
                "10Gi",
                "RWO,RWX",
                "Retain",
                "Bound",
                "default/data-mystore-0",
                "local",
                "<unset>",
                "",
                "5m",
                "Filesystem"
            ]),
        ),
        (
            "resource_quota",
            "ResourceQuota",
            json!({"metadata": meta("quota"), "status": {
                "hard": {"requests.cpu": "2", "limits.memory": "2Gi", "pods": "10"},
                "used": {"requests.cpu": "500m", "pods": "3"}}}),
            json!([
                "quota",
                "pods: 3/10, requests.cpu: 500m/2",
                "limits.memory: 0/2Gi",
                "5m"
            ]),
        ),
        (
            "service_account",
            "ServiceAccount",
            json!({"metadata": meta("default")}),
            json!(["default", 0, "5m"]),
        ),
    ];
    for (name, kind, obj, want) in cases {
        assert_eq!(json!(row_cells("", kind, &obj, now())), want, "{name}");
    }
}

#[test]
fn events_print_last_seen_object_and_message() {
    let core = json!({"metadata": meta("web.1"), "type": "Normal", "reason": "Scheduled",
        "involvedObject": {"kind": "Pod", "name": "web"},
        "message": "Successfully assigned default/web to skiff\n",
        "source": {"component": "default-scheduler"},
        "firstTimestamp": ago(Duration::seconds(70)), "lastTimestamp": ago(Duration::seconds(10)),
        "count": 2});
    assert_eq!(
        json!(row_cells("", "Event", &core, now())),
        json!([
            "10s",
            "Normal",
            "Scheduled",
            "pod/web",
            "",
            "default-scheduler",
            "Successfully assigned default/web to skiff",
            "70s",
            2,
            "web.1"
        ])
    );

    let new_api = json!({"metadata": meta("web.2"), "type": "Warning", "reason": "BackOff",
        "regarding": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "note": "Back-off restarting failed container", "reportingController": "kubelet",
        "reportingInstance": "skiff", "eventTime": ago(Duration::seconds(30))});
    assert_eq!(
        json!(row_cells("events.k8s.io", "Event", &new_api, now())),
        json!([
            "30s",
            "Warning",
            "BackOff",
            "pod/web",
            "spec.containers{app}",
            "kubelet, skiff",
            "Back-off restarting failed container",
            "30s",
            1,
            "web.2"
        ])
    );
}

#[test]
fn rbac_lease_and_revision_rows() {
    let binding = json!({"metadata": meta("read"), "roleRef": {"kind": "ClusterRole",
        "name": "view"}, "subjects": [{"kind": "User", "name": "alice"},
        {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
        {"kind": "Group", "name": "devs"}, {"kind": "User", "name": "bob"}]});
    assert_eq!(
        json!(row_cells(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            &binding,
            now()
        )),
        json!([
            "read",
            "ClusterRole/view",
            "5m",
            "alice, bob",
            "devs",
            "tools/ci"
        ])
    );

    let lease = json!({"metadata": meta("skiff"), "spec": {"holderIdentity": "skiff_1"}});
    assert_eq!(
        json!(row_cells("coordination.k8s.io", "Lease", &lease, now())),
        json!(["skiff", "skiff_1", "5m"])
    );

    let revision = json!({"metadata": {"name": "mystore-5d8", "creationTimestamp": ago(Duration::minutes(5)),
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "mystore",
        "controller": true}]}, "revision": 2});
    assert_eq!(
        json!(row_cells("apps", "ControllerRevision", &revision, now())),
        json!(["mystore-5d8", "statefulset.apps/mystore", 2, "5m"])
    );
}

#[test]
fn kinds_without_printer_use_the_default_tables() {
    let role = json!({"metadata": {"name": "reader", "creationTimestamp": "2026-01-10T11:55:00Z"}});
    let cols = column_definitions("rbac.authorization.k8s.io", "Role");
    assert_eq!(cols[1]["name"], "Created At");
    assert_eq!(cols[1]["type"], "date");
    assert_eq!(
        json!(row_cells("rbac.authorization.k8s.io", "Role", &role, now())),
        json!(["reader", "2026-01-10T11:55:00Z"])
    );
    assert_eq!(
        json!(row_cells(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &role,
            now()
        )),
        json!(["reader", "2026-01-10T11:55:00Z"])
    );

    let cols = column_definitions("gateway.networking.k8s.io", "HTTPRoute");
    assert_eq!(cols[1]["name"], "Age");
    assert_eq!(
        json!(row_cells(
            "gateway.networking.k8s.io",
            "HTTPRoute",
            &role,
            now()
        )),
        json!(["reader", "5m"])
    );
}

#[test]
fn column_definitions_mark_wide_columns_with_priority_one() {
    let names = |group, kind| -> Vec<(String, i64)> {
        column_definitions(group, kind)
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or("").to_string(),
                    c["priority"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    };
    let pod = names("", "Pod");
    assert_eq!(
        pod.iter()
            .filter(|(_, p)| *p == 0)
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["Name", "Ready", "Status", "Restarts", "Age"]
    );
    assert_eq!(
        pod.iter()
            .filter(|(_, p)| *p == 1)
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["IP", "Node", "Nominated Node", "Readiness Gates"]
    );
    let deploy = names("apps", "Deployment");
    assert_eq!(
        deploy.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let name_col = &column_definitions("", "Service")[0];
    assert_eq!(name_col["format"], "name");
    assert_eq!(column_definitions("", "Service")[1]["format"], "");
}
