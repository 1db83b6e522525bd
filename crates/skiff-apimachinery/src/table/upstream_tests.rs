//! Cases ported from upstream's `printers_test.go` (and kube-aggregator's APIService
//! convertor) for the kinds beyond the everyday workloads: objects without a creation
//! timestamp, so AGE prints `<unknown>` as in upstream's fixtures.

use serde_json::{json, Value};

use super::tests::{meta, now};
use super::{column_definitions, row_cells, row_order};

const G_AUTOSCALING: &str = "autoscaling";
const G_ADMISSION: &str = "admissionregistration.k8s.io";
const G_FLOW: &str = "flowcontrol.apiserver.k8s.io";

/// Asserts each case's cells; `obj` gets `metadata.name` when it has no metadata.
fn check(group: &str, kind: &str, cases: Vec<(&str, Value, Value)>) {
    for (name, mut obj, want) in cases {
        if obj.get("metadata").is_none() {
            obj["metadata"] = json!({"name": "x"});
        }
        assert_eq!(
            json!(row_cells(group, kind, &obj, now())),
            want,
            "{kind}: {name}"
        );
    }
}

/// An HPA of `some-rc` with min 2, max 10, 4 current replicas and these metrics.
fn hpa(metrics: Value, current: Value) -> Value {
    json!({"metadata": {"name": "some-hpa"},
        "spec": {"scaleTargetRef": {"kind": "ReplicationController", "name": "some-rc"},
            "minReplicas": 2, "maxReplicas": 10, "metrics": metrics},
        "status": {"currentReplicas": 4, "desiredReplicas": 5, "currentMetrics": current}})
}

fn hpa_row(targets: &str) -> Value {
    json!([
        "some-hpa",
        "ReplicationController/some-rc",
        targets,
        "2",
        10,
        4,
        "<unknown>"
    ])
}

#[test]
fn hpa_targets_print_current_over_target_per_metric() {
    let ext_avg = json!([{"type": "External", "external": {"metric": {"name": "m"},
        "target": {"type": "AverageValue", "averageValue": "100m"}}}]);
    let ext_val = json!([{"type": "External", "external": {"metric": {"name": "m"},
        "target": {"type": "Value", "value": "100m"}}}]);
    let pods = json!([{"type": "Pods", "pods": {"metric": {"name": "m"},
        "target": {"type": "AverageValue", "averageValue": "100m"}}}]);
    let object = json!([{"type": "Object", "object": {"metric": {"name": "m"},
        "describedObject": {"kind": "Service", "name": "some-service"},
        "target": {"type": "Value", "value": "100m"}}}]);
    let res_val = json!([{"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "AverageValue", "averageValue": "100m"}}}]);
    let res_util = json!([{"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    let cres_val = json!([{"type": "ContainerResource", "containerResource": {"name": "cpu",
        "container": "application",
        "target": {"type": "AverageValue", "averageValue": "100m"}}}]);
    let cres_util = json!([{"type": "ContainerResource", "containerResource": {"name": "cpu",
        "container": "application",
        "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    let none = json!([]);

    let mut unset_min = hpa(json!([]), none.clone());
    unset_min["spec"]
        .as_object_mut()
        .map(|s| s.remove("minReplicas"));
    let cases = vec![
        (
            "min_replicas_unset",
            unset_min,
            json!([
                "some-hpa",
                "ReplicationController/some-rc",
                "<none>",
                "<unset>",
                10,
                4,
                "<unknown>"
            ]),
        ),
        (
            "external_average_value_no_current",
            hpa(ext_avg.clone(), none.clone()),
            hpa_row("<unknown>/100m (avg)"),
        ),
        (
            "external_average_value",
            hpa(
                ext_avg,
                json!([{"type": "External", "external": {"metric": {"name": "m"},
                    "current": {"averageValue": "50m"}}}]),
            ),
            hpa_row("50m/100m (avg)"),
        ),
        (
            "external_value_no_current",
            hpa(ext_val.clone(), none.clone()),
            hpa_row("<unknown>/100m"),
        ),
        (
            "external_value",
            hpa(
                ext_val,
                json!([{"type": "External", "external": {"metric": {"name": "m"},
                    "current": {"value": "50m"}}}]),
            ),
            hpa_row("50m/100m"),
        ),
        (
            "pods_no_current",
            hpa(pods.clone(), none.clone()),
            hpa_row("<unknown>/100m"),
        ),
        (
            "pods",
            hpa(
                pods,
                json!([{"type": "Pods", "pods": {"metric": {"name": "m"},
                    "current": {"averageValue": "50m"}}}]),
            ),
            hpa_row("50m/100m"),
        ),
        (
            "object_no_current",
            hpa(object.clone(), none.clone()),
            hpa_row("<unknown>/100m"),
        ),
        (
            "object",
            hpa(
                object,
                json!([{"type": "Object", "object": {"metric": {"name": "m"},
                    "describedObject": {"kind": "Service", "name": "some-service"},
                    "current": {"value": "50m"}}}]),
            ),
            hpa_row("50m/100m"),
        ),
        (
            "resource_value_no_current",
            hpa(res_val.clone(), none.clone()),
            hpa_row("cpu: <unknown>/100m"),
        ),
        (
            "resource_value",
            hpa(
                res_val,
                json!([{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageValue": "50m"}}}]),
            ),
            hpa_row("cpu: 50m/100m"),
        ),
        (
            "resource_utilization_no_current",
            hpa(res_util.clone(), none.clone()),
            hpa_row("cpu: <unknown>/80%"),
        ),
        (
            "resource_utilization",
            hpa(
                res_util,
                json!([{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 50, "averageValue": "40m"}}}]),
            ),
            hpa_row("cpu: 50%/80%"),
        ),
        (
            "container_resource_value_no_current",
            hpa(cres_val.clone(), none.clone()),
            hpa_row("cpu: <unknown>/100m"),
        ),
        (
            "container_resource_value",
            hpa(
                cres_val,
                json!([{"type": "ContainerResource", "containerResource": {"name": "cpu",
                    "container": "application", "current": {"averageValue": "50m"}}}]),
            ),
            hpa_row("cpu: 50m/100m"),
        ),
        (
            "container_resource_utilization_no_current",
            hpa(cres_util.clone(), none.clone()),
            hpa_row("cpu: <unknown>/80%"),
        ),
        (
            "container_resource_utilization",
            hpa(
                cres_util,
                json!([{"type": "ContainerResource", "containerResource": {"name": "cpu",
                    "container": "application",
                    "current": {"averageUtilization": 50, "averageValue": "40m"}}}]),
            ),
            hpa_row("cpu: 50%/80%"),
        ),
        (
            "multiple_specs_show_two_then_more",
            hpa(
                json!([
                    {"type": "Pods", "pods": {"metric": {"name": "some-pods-metric"},
                        "target": {"type": "AverageValue", "averageValue": "100m"}}},
                    {"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80}}},
                    {"type": "Pods", "pods": {"metric": {"name": "other-pods-metric"},
                        "target": {"type": "AverageValue", "averageValue": "400m"}}}
                ]),
                json!([
                    {"type": "Pods", "pods": {"metric": {"name": "some-pods-metric"},
                        "current": {"averageValue": "50m"}}},
                    {"type": "Resource", "resource": {"name": "cpu",
                        "current": {"averageUtilization": 50, "averageValue": "40m"}}}
                ]),
            ),
            hpa_row("50m/100m, cpu: 50%/80% + 1 more..."),
        ),
    ];
    check(G_AUTOSCALING, "HorizontalPodAutoscaler", cases);
}

#[test]
fn hpa_quantities_print_canonical_and_v1_objects_convert() {
    let cases = vec![
        (
            "target_written_as_a_fraction_prints_milli",
            hpa(
                json!([{"type": "Resource", "resource": {"name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "0.5"}}}]),
                json!([{"type": "Resource", "resource": {"name": "memory",
                    "current": {"averageValue": "1000m"}}}]),
            ),
            hpa_row("memory: 1/500m"),
        ),
        (
            "v1_cpu_target_and_current",
            json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "some-hpa"},
                "spec": {"scaleTargetRef": {"kind": "ReplicationController", "name": "some-rc"},
                    "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 80},
                "status": {"currentReplicas": 4, "currentCPUUtilizationPercentage": 50}}),
            hpa_row("cpu: 50%/80%"),
        ),
        (
            "v1_without_target",
            json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "some-hpa"},
                "spec": {"scaleTargetRef": {"kind": "ReplicationController", "name": "some-rc"},
                    "minReplicas": 2, "maxReplicas": 10},
                "status": {"currentReplicas": 4}}),
            hpa_row("<none>"),
        ),
        (
            "unknown_metric_type",
            hpa(json!([{"type": "Bogus"}]), json!([])),
            hpa_row("<unknown type>"),
        ),
    ];
    check(G_AUTOSCALING, "HorizontalPodAutoscaler", cases);
    check(
        G_AUTOSCALING,
        "Scale",
        vec![(
            "scale",
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 3},
                "status": {"replicas": 2}}),
            json!(["web", 3, 2, "<unknown>"]),
        )],
    );
}

#[test]
fn csr_prints_signer_requestor_duration_and_condition() {
    let csr = |spec: Value, status: Value| json!({"metadata": {"name": "csr1"}, "spec": spec, "status": status});
    let row = |signer: &str, user: &str, duration: &str, condition: &str| {
        json!(["csr1", "<unknown>", signer, user, duration, condition])
    };
    let cases = vec![
        (
            "pending_without_signer",
            csr(json!({}), json!({})),
            row("<none>", "", "<none>", "Pending"),
        ),
        (
            "signer_requestor_and_duration",
            csr(
                json!({"signerName": "example.com/signer", "username": "CSR Requestor",
                    "expirationSeconds": 7200}),
                json!({}),
            ),
            row("example.com/signer", "CSR Requestor", "120m", "Pending"),
        ),
        (
            "approved",
            csr(
                json!({"username": "CSR Requestor", "expirationSeconds": 600}),
                json!({"conditions": [{"type": "Approved"}]}),
            ),
            row("<none>", "CSR Requestor", "10m", "Approved"),
        ),
        (
            "approved_and_issued",
            csr(
                json!({"username": "CSR Requestor"}),
                json!({"conditions": [{"type": "Approved"}], "certificate": "Y2VydA=="}),
            ),
            row("<none>", "CSR Requestor", "<none>", "Approved,Issued"),
        ),
        (
            "denied_wins_over_approved",
            csr(
                json!({"username": "CSR Requestor"}),
                json!({"conditions": [{"type": "Approved"}, {"type": "Denied"}]}),
            ),
            row("<none>", "CSR Requestor", "<none>", "Denied"),
        ),
        (
            "approved_then_failed",
            csr(
                json!({"username": "CSR Requestor"}),
                json!({"conditions": [{"type": "Approved"}, {"type": "Failed"}]}),
            ),
            row("<none>", "CSR Requestor", "<none>", "Approved,Failed"),
        ),
    ];
    check("certificates.k8s.io", "CertificateSigningRequest", cases);
    check(
        "certificates.k8s.io",
        "ClusterTrustBundle",
        vec![
            ("no_signer", json!({"spec": {}}), json!(["x", "<none>"])),
            (
                "signer",
                json!({"spec": {"signerName": "foo.com/bar"}}),
                json!(["x", "foo.com/bar"]),
            ),
        ],
    );
}

#[test]
fn networking_rows_print_class_cidrs_and_parent() {
    check(
        "networking.k8s.io",
        "IngressClass",
        vec![
            (
                "parameters_with_group",
                json!({"spec": {"controller": "example.com/controller", "parameters":
                    {"apiGroup": "example.com", "kind": "customgroup", "name": "example"}}}),
                json!([
                    "x",
                    "example.com/controller",
                    "customgroup.example.com/example",
                    "<unknown>"
                ]),
            ),
            (
                "parameters_without_group",
                json!({"spec": {"controller": "example.com/controller", "parameters":
                    {"kind": "customgroup", "name": "example"}}}),
                json!([
                    "x",
                    "example.com/controller",
                    "customgroup/example",
                    "<unknown>"
                ]),
            ),
            (
                "no_parameters",
                json!({"spec": {"controller": "example.com/controller"}}),
                json!(["x", "example.com/controller", "<none>", "<unknown>"]),
            ),
        ],
    );
    check(
        "networking.k8s.io",
        "ServiceCIDR",
        vec![
            (
                "ipv4",
                json!({"spec": {"cidrs": ["10.1.0.0/16"]}}),
                json!(["x", "10.1.0.0/16", "<unknown>"]),
            ),
            (
                "dual_stack",
                json!({"spec": {"cidrs": ["10.1.0.0/16", "fd00:1:1::/64"]}}),
                json!(["x", "10.1.0.0/16,fd00:1:1::/64", "<unknown>"]),
            ),
        ],
    );
    check(
        "networking.k8s.io",
        "IPAddress",
        vec![
            (
                "service_parent",
                json!({"spec": {"parentRef": {"group": "", "resource": "services",
                    "namespace": "foo", "name": "foo.bar"}}}),
                json!(["x", "services/foo/foo.bar", "<unknown>"]),
            ),
            (
                "cluster_scoped_parent_with_group",
                json!({"spec": {"parentRef": {"group": "mygroup", "resource": "Gateway",
                    "name": "gw"}}}),
                json!(["x", "gateway.mygroup/gw", "<unknown>"]),
            ),
            (
                "no_parent",
                json!({"spec": {}}),
                json!(["x", "<none>", "<unknown>"]),
            ),
        ],
    );
}

#[test]
fn storage_and_node_rows_print_driver_fields() {
    check(
        "storage.k8s.io",
        "CSIDriver",
        vec![
            (
                "defaults",
                json!({"spec": {}}),
                json!([
                    "x",
                    true,
                    false,
                    false,
                    "<unset>",
                    false,
                    "<none>",
                    "<unknown>"
                ]),
            ),
            (
                "all_set",
                json!({"spec": {"attachRequired": false, "podInfoOnMount": true,
                    "storageCapacity": true, "tokenRequests": [{"audience": "a"},
                    {"audience": "b"}], "requiresRepublish": true,
                    "volumeLifecycleModes": ["Persistent", "Ephemeral"]}}),
                json!([
                    "x",
                    false,
                    true,
                    true,
                    "a,b",
                    true,
                    "Persistent,Ephemeral",
                    "<unknown>"
                ]),
            ),
        ],
    );
    check(
        "storage.k8s.io",
        "VolumeAttachment",
        vec![(
            "attached",
            json!({"spec": {"attacher": "ebs.csi", "nodeName": "node-1",
                "source": {"persistentVolumeName": "pv-1"}}, "status": {"attached": true}}),
            json!(["x", "ebs.csi", "pv-1", "node-1", true, "<unknown>"]),
        )],
    );
    check(
        "storage.k8s.io",
        "CSINode",
        vec![(
            "two_drivers",
            json!({"spec": {"drivers": [{"name": "a"}, {"name": "b"}]}}),
            json!(["x", 2, "<unknown>"]),
        )],
    );
    check(
        "storage.k8s.io",
        "VolumeAttributesClass",
        vec![(
            "driver",
            json!({"driverName": "fake"}),
            json!(["x", "fake", "<unknown>"]),
        )],
    );
    check(
        "node.k8s.io",
        "RuntimeClass",
        vec![(
            "handler",
            json!({"handler": "runc"}),
            json!(["x", "runc", "<unknown>"]),
        )],
    );
}

#[test]
fn admission_rows_count_webhooks_rules_and_params() {
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        check(
            G_ADMISSION,
            kind,
            vec![
                ("none", json!({}), json!(["x", 0, "<unknown>"])),
                (
                    "two",
                    json!({"webhooks": [{"name": "a"}, {"name": "b"}]}),
                    json!(["x", 2, "<unknown>"]),
                ),
            ],
        );
    }
    check(
        G_ADMISSION,
        "ValidatingAdmissionPolicy",
        vec![
            (
                "param_kind",
                json!({"spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                    "validations": [{"expression": "true"}]}}),
                json!(["x", 1, "v1/ConfigMap", "<unknown>"]),
            ),
            (
                "no_param_kind",
                json!({"spec": {}}),
                json!(["x", 0, "<unset>", "<unknown>"]),
            ),
        ],
    );
    check(
        G_ADMISSION,
        "MutatingAdmissionPolicy",
        vec![(
            "mutations",
            json!({"spec": {"mutations": [{}, {}]}}),
            json!(["x", 2, "<unset>", "<unknown>"]),
        )],
    );
    let binding = |param_ref: Value| json!({"spec": {"policyName": "p", "paramRef": param_ref}});
    for kind in [
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicyBinding",
    ] {
        check(
            G_ADMISSION,
            kind,
            vec![
                (
                    "namespaced_param",
                    binding(json!({"namespace": "ns", "name": "cfg"})),
                    json!(["x", "p", "ns/cfg", "<unknown>"]),
                ),
                (
                    "param_without_namespace",
                    binding(json!({"name": "cfg"})),
                    json!(["x", "p", "*/cfg", "<unknown>"]),
                ),
                (
                    "param_selector_prints_go_struct",
                    binding(json!({"selector": {"matchLabels": {"b": "2", "a": "1"},
                        "matchExpressions": [{"key": "k", "operator": "In",
                            "values": ["x", "y"]}]}})),
                    json!([
                        "x",
                        "p",
                        "&LabelSelector{MatchLabels:map[string]string{a: 1,b: 2,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:k,Operator:In,Values:[x y],},},}",
                        "<unknown>"
                    ]),
                ),
                (
                    "no_param",
                    json!({"spec": {"policyName": "p"}}),
                    json!(["x", "p", "<unset>", "<unknown>"]),
                ),
            ],
        );
    }
}

#[test]
fn flowcontrol_rows_and_flow_schema_order() {
    check(
        G_FLOW,
        "FlowSchema",
        vec![
            (
                "distinguisher_and_dangling",
                json!({"spec": {"priorityLevelConfiguration": {"name": "workload-low"},
                    "matchingPrecedence": 1000, "distinguisherMethod": {"type": "ByUser"}},
                    "status": {"conditions": [{"type": "Dangling", "status": "False"}]}}),
                json!(["x", "workload-low", 1000, "ByUser", "<unknown>", "False"]),
            ),
            (
                "no_distinguisher_unknown_dangling",
                json!({"spec": {"priorityLevelConfiguration": {"name": "exempt"},
                    "matchingPrecedence": 1}}),
                json!(["x", "exempt", 1, "<none>", "<unknown>", "?"]),
            ),
        ],
    );
    check(
        G_FLOW,
        "PriorityLevelConfiguration",
        vec![
            (
                "exempt",
                json!({"spec": {"type": "Exempt"}}),
                json!([
                    "x",
                    "Exempt",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<unknown>"
                ]),
            ),
            (
                "limited_queuing",
                json!({"spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 30,
                    "limitResponse": {"type": "Queue", "queuing": {"queues": 64,
                    "handSize": 6, "queueLengthLimit": 50}}}}}),
                json!(["x", "Limited", 30, 64, 6, 50, "<unknown>"]),
            ),
            (
                "limited_reject",
                json!({"spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 5,
                    "limitResponse": {"type": "Reject"}}}}),
                json!(["x", "Limited", 5, "<none>", "<none>", "<none>", "<unknown>"]),
            ),
        ],
    );
    let fs = |name: &str, precedence: i64| json!({"metadata": {"name": name}, "spec": {"matchingPrecedence": precedence}});
    let list = [fs("b", 500), fs("z", 100), fs("a", 500), fs("exempt", 1)];
    assert_eq!(row_order(G_FLOW, "FlowSchema", &list), vec![3, 1, 2, 0]);
    assert_eq!(row_order("", "Pod", &list), vec![0, 1, 2, 3]);
}

#[test]
fn apiserver_internal_and_migration_rows() {
    let sv = |id: &str| json!({"apiServerID": id, "encodingVersion": "v1"});
    check(
        "internal.apiserver.k8s.io",
        "StorageVersion",
        vec![
            (
                "empty",
                json!({"status": {}}),
                json!(["x", "<unset>", "<unset>", "<unknown>"]),
            ),
            (
                "four_servers",
                json!({"status": {"commonEncodingVersion": "v1",
                    "storageVersions": [sv("1"), sv("2"), sv("3"), sv("4")]}}),
                json!(["x", "v1", "1=v1,2=v1,3=v1 + 1 more...", "<unknown>"]),
            ),
        ],
    );
    check(
        "storagemigration.k8s.io",
        "StorageVersionMigration",
        vec![(
            "resource",
            json!({"spec": {"resource": {"group": "apps", "version": "v1",
                "resource": "deployments"}}}),
            json!(["x", "deployments.v1.apps"]),
        )],
    );
    check(
        "coordination.k8s.io",
        "LeaseCandidate",
        vec![(
            "candidate",
            json!({"spec": {"leaseName": "kube-scheduler", "binaryVersion": "1.33.0",
                "emulationVersion": "1.33.0"}}),
            json!(["x", "kube-scheduler", "1.33.0", "1.33.0", "<unknown>"]),
        )],
    );
    check(
        "",
        "ComponentStatus",
        vec![
            (
                "healthy",
                json!({"conditions": [{"type": "Healthy", "status": "True",
                    "message": "ok"}]}),
                json!(["x", "Healthy", "ok", ""]),
            ),
            (
                "unhealthy",
                json!({"conditions": [{"type": "Healthy", "status": "False",
                    "error": "connection refused"}]}),
                json!(["x", "Unhealthy", "", "connection refused"]),
            ),
            ("unknown", json!({}), json!(["x", "Unknown", "", ""])),
        ],
    );
}

#[test]
fn resource_claims_print_their_state() {
    let deleted = json!({"name": "x", "deletionTimestamp": "2026-01-10T11:00:00Z"});
    let allocated = json!({"allocation": {"devices": {}}});
    check(
        "resource.k8s.io",
        "ResourceClaim",
        vec![
            ("pending", json!({}), json!(["x", "pending", "<unknown>"])),
            (
                "deleted_before_allocation",
                json!({"metadata": deleted.clone()}),
                json!(["x", "deleted", "<unknown>"]),
            ),
            (
                "allocated_and_reserved",
                json!({"status": {"allocation": {"devices": {}},
                    "reservedFor": [{"resource": "pods", "name": "p", "uid": "1"}]}}),
                json!(["x", "allocated,reserved", "<unknown>"]),
            ),
            (
                "deleted_while_allocated",
                json!({"metadata": deleted, "status": allocated}),
                json!(["x", "deleted,allocated", "<unknown>"]),
            ),
        ],
    );
    check(
        "resource.k8s.io",
        "ResourceSlice",
        vec![(
            "node_slice",
            json!({"spec": {"nodeName": "worker", "driver": "gpu.example.com",
                "pool": {"name": "worker", "generation": 1, "resourceSliceCount": 1}}}),
            json!(["x", "worker", "gpu.example.com", "worker", "<unknown>"]),
        )],
    );
    for kind in ["DeviceClass", "ResourceClaimTemplate"] {
        check(
            "resource.k8s.io",
            kind,
            vec![("plain", json!({}), json!(["x", "<unknown>"]))],
        );
    }
}

#[test]
fn apiservices_print_service_and_availability() {
    let cases = vec![
        (
            "local_available",
            json!({"spec": {}, "status": {"conditions": [{"type": "Available",
                "status": "True", "reason": "Local"}]}}),
            json!(["x", "Local", "True", "<unknown>"]),
        ),
        (
            "service_unavailable_with_reason",
            json!({"spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
                "status": {"conditions": [{"type": "Available", "status": "False",
                "reason": "FailedDiscoveryCheck"}]}}),
            json!([
                "x",
                "kube-system/metrics-server",
                "False (FailedDiscoveryCheck)",
                "<unknown>"
            ]),
        ),
        (
            "no_condition",
            json!({"spec": {}}),
            json!(["x", "Local", "Unknown", "<unknown>"]),
        ),
    ];
    check("apiregistration.k8s.io", "APIService", cases);
}

#[test]
fn conversions_upstream_applies_before_printing() {
    // A Service with only `clusterIP`, a Pod with only `podIP`: v1 → internal conversion
    // fills the plural fields upstream prints from.
    let svc = json!({"metadata": meta("web"), "spec": {"type": "ClusterIP",
        "clusterIP": "10.96.0.20", "ports": [{"port": 80, "protocol": "TCP"}]}});
    assert_eq!(
        row_cells("", "Service", &svc, now())[2],
        json!("10.96.0.20")
    );
    let pod = json!({"metadata": meta("web"), "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.7"}});
    assert_eq!(row_cells("", "Pod", &pod, now())[5], json!("10.0.0.7"));

    // Core Events name the reporting controller `reportingComponent`.
    let event = json!({"metadata": meta("web.1"), "type": "Normal", "reason": "Pulled",
        "involvedObject": {"kind": "Pod", "name": "web"}, "message": "pulled",
        "reportingComponent": "kubelet", "reportingInstance": "node-1",
        "eventTime": "2026-01-10T11:59:00.000000Z"});
    assert_eq!(
        row_cells("", "Event", &event, now())[5],
        json!("kubelet, node-1")
    );

    // Quantities print canonical, as `Quantity.String()`.
    let quota = json!({"metadata": meta("q"), "status": {"hard": {"cpu": "2000m",
        "limits.memory": "1024Mi"}, "used": {"cpu": "0.5", "limits.memory": "512Mi"}}});
    assert_eq!(
        json!(row_cells("", "ResourceQuota", &quota, now())),
        json!(["q", "cpu: 500m/2", "limits.memory: 512Mi/1Gi", "5m"])
    );

    // Go's zero time is "unknown", not two thousand years.
    let zero = json!({"metadata": {"name": "z", "creationTimestamp": "0001-01-01T00:00:00Z"}});
    assert_eq!(
        row_cells("", "Namespace", &zero, now())[2],
        json!("<unknown>")
    );
}

#[test]
fn irregular_upstream_tables_are_kept() {
    // IPAddress declares no AGE column, yet its rows carry an age cell.
    assert_eq!(
        column_definitions("networking.k8s.io", "IPAddress").len(),
        2
    );
    // VolumeAttachment's Attacher column has the "name" format too.
    let va = column_definitions("storage.k8s.io", "VolumeAttachment");
    assert_eq!(va[1]["format"], "name");
    // Scale and StorageVersionMigration's Name columns have no format.
    assert_eq!(column_definitions("autoscaling", "Scale")[0]["format"], "");
    assert_eq!(
        column_definitions("storagemigration.k8s.io", "StorageVersionMigration")[0]["format"],
        ""
    );
    // ComponentStatus and ClusterTrustBundle have no AGE.
    let names = |g, k| -> Vec<String> {
        column_definitions(g, k)
            .iter()
            .map(|c| c["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        names("", "ComponentStatus"),
        ["Name", "Status", "Message", "Error"]
    );
    assert_eq!(
        names("autoscaling", "HorizontalPodAutoscaler"),
        [
            "Name",
            "Reference",
            "Targets",
            "MinPods",
            "MaxPods",
            "Replicas",
            "Age"
        ]
    );
    assert_eq!(
        names("certificates.k8s.io", "CertificateSigningRequest"),
        [
            "Name",
            "Age",
            "SignerName",
            "Requestor",
            "RequestedDuration",
            "Condition"
        ]
    );
    // Kinds whose storage uses the default convertor upstream.
    for (g, k) in [
        ("", "LimitRange"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("storage.k8s.io", "CSIStorageCapacity"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ] {
        assert_eq!(names(g, k), ["Name", "Created At"], "{g}/{k}");
    }
}
