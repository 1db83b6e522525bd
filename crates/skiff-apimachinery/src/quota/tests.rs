//! Cases after upstream's quota evaluator tests (pkg/quota/v1/evaluator/core/*_test.go) and
//! resource quota admission tests (admission_test.go).

use super::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

const PODS: Resource<'static> = Resource {
    group: "",
    resource: "pods",
};
const SERVICES: Resource<'static> = Resource {
    group: "",
    resource: "services",
};
const CLAIMS: Resource<'static> = Resource {
    group: "",
    resource: "persistentvolumeclaims",
};

fn list(pairs: &[(&str, &str)]) -> ResourceList {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity::parse(v).unwrap()))
        .collect()
}

fn pod(containers: Value) -> Value {
    json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": containers}})
}

fn container(name: &str, requests: Value, limits: Value) -> Value {
    json!({"name": name, "resources": {"requests": requests, "limits": limits}})
}

fn quota(name: &str, hard: Value, used: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"hard": hard},
           "status": {"hard": hard, "used": used}})
}

#[test]
fn pod_usage_counts_compute_of_containers_init_containers_and_overhead() {
    let cases: Vec<(&str, Value, ResourceList)> = vec![
        (
            "best effort",
            pod(json!([{"name": "a"}])),
            list(&[("pods", "1"), ("count/pods", "1")]),
        ),
        (
            "requests and limits",
            pod(json!([container(
                "a",
                json!({"cpu": "100m", "memory": "1Gi"}),
                json!({"cpu": "200m", "memory": "2Gi"})
            )])),
            list(&[
                ("pods", "1"),
                ("count/pods", "1"),
                ("cpu", "100m"),
                ("requests.cpu", "100m"),
                ("memory", "1Gi"),
                ("requests.memory", "1Gi"),
                ("limits.cpu", "200m"),
                ("limits.memory", "2Gi"),
            ]),
        ),
        (
            "containers sum",
            pod(json!([
                container("a", json!({"cpu": "100m"}), json!({})),
                container("b", json!({"cpu": "1"}), json!({}))
            ])),
            list(&[
                ("pods", "1"),
                ("count/pods", "1"),
                ("cpu", "1100m"),
                ("requests.cpu", "1100m"),
            ]),
        ),
        (
            "an init container larger than the sum wins",
            json!({"spec": {"initContainers": [container("i", json!({"cpu": "2"}), json!({}))],
                            "containers": [container("a", json!({"cpu": "1"}), json!({}))]}}),
            list(&[
                ("pods", "1"),
                ("count/pods", "1"),
                ("cpu", "2"),
                ("requests.cpu", "2"),
            ]),
        ),
        (
            "sidecars run beside the containers and later init containers",
            json!({"spec": {"initContainers": [
                      {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
                      container("i", json!({"cpu": "1500m"}), json!({}))],
                   "containers": [container("a", json!({"cpu": "1"}), json!({}))]}}),
            list(&[
                ("pods", "1"),
                ("count/pods", "1"),
                ("cpu", "2500m"),
                ("requests.cpu", "2500m"),
            ]),
        ),
        (
            "overhead is added",
            json!({"spec": {"overhead": {"cpu": "250m"},
                   "containers": [container("a", json!({"cpu": "1"}), json!({}))]}}),
            list(&[
                ("pods", "1"),
                ("count/pods", "1"),
                ("cpu", "1250m"),
                ("requests.cpu", "1250m"),
            ]),
        ),
        (
            "extended resources and hugepages",
            pod(json!([container(
                "a",
                json!({"example.com/gpu": "2", "hugepages-2Mi": "4Mi"}),
                json!({})
            )])),
            list(&[
                ("pods", "1"),
                ("count/pods", "1"),
                ("requests.example.com/gpu", "2"),
                ("hugepages-2Mi", "4Mi"),
                ("requests.hugepages-2Mi", "4Mi"),
            ]),
        ),
        (
            "a succeeded pod counts only as an object",
            json!({"spec": {"containers": [container("a", json!({"cpu": "1"}), json!({}))]},
                   "status": {"phase": "Succeeded"}}),
            list(&[("count/pods", "1")]),
        ),
        (
            "a pod past its grace period counts only as an object",
            json!({"metadata": {"deletionTimestamp": "2025-12-31T23:59:00Z", "deletionGracePeriodSeconds": 30},
                   "spec": {"containers": [{"name": "a"}]}}),
            list(&[("count/pods", "1")]),
        ),
        (
            "a pod within its grace period still counts",
            json!({"metadata": {"deletionTimestamp": "2025-12-31T23:59:50Z", "deletionGracePeriodSeconds": 30},
                   "spec": {"containers": [{"name": "a"}]}}),
            list(&[("pods", "1"), ("count/pods", "1")]),
        ),
    ];
    for (name, obj, want) in cases {
        assert_eq!(usage(PODS, &obj, now()).unwrap(), want, "{name}");
    }
}

#[test]
fn service_usage_counts_node_ports_and_load_balancers() {
    let svc = |spec: Value| json!({"spec": spec});
    let ports = json!([{"port": 80}, {"port": 443, "nodePort": 30001}]);
    let cases = vec![
        (
            "cluster IP",
            svc(json!({"type": "ClusterIP", "ports": ports})),
            ("0", "0"),
        ),
        (
            "node port",
            svc(json!({"type": "NodePort", "ports": ports})),
            ("2", "0"),
        ),
        (
            "load balancer",
            svc(json!({"type": "LoadBalancer", "ports": ports})),
            ("2", "1"),
        ),
        (
            "load balancer without node port allocation",
            svc(
                json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": ports}),
            ),
            ("1", "1"),
        ),
    ];
    for (name, obj, (node_ports, balancers)) in cases {
        let want = list(&[
            ("services", "1"),
            ("count/services", "1"),
            ("services.nodeports", node_ports),
            ("services.loadbalancers", balancers),
        ]);
        assert_eq!(usage(SERVICES, &obj, now()).unwrap(), want, "{name}");
    }
}

#[test]
fn claim_usage_counts_storage_per_class() {
    let pvc = json!({"spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "10Gi"}}}});
    assert_eq!(
        usage(CLAIMS, &pvc, now()).unwrap(),
        list(&[
            ("persistentvolumeclaims", "1"),
            ("count/persistentvolumeclaims", "1"),
            (
                "gold.storageclass.storage.k8s.io/persistentvolumeclaims",
                "1"
            ),
            ("requests.storage", "10Gi"),
            ("gold.storageclass.storage.k8s.io/requests.storage", "10Gi"),
        ])
    );
    let expanding = json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}},
        "status": {"allocatedResources": {"storage": "5Gi"}}});
    assert_eq!(
        usage(CLAIMS, &expanding, now()).unwrap()["requests.storage"].to_string(),
        "5Gi"
    );
}

#[test]
fn any_kind_counts_as_an_object_of_its_group() {
    let deployments = Resource::new("apps", "deployments");
    assert_eq!(
        usage(deployments, &json!({}), now()).unwrap(),
        list(&[("count/deployments.apps", "1")])
    );
    assert_eq!(
        usage(Resource::new("", "configmaps"), &json!({}), now()).unwrap(),
        list(&[("configmaps", "1"), ("count/configmaps", "1")])
    );
    assert_eq!(
        counted_by("count/deployments.apps"),
        Some(("apps".into(), "deployments".into()))
    );
    assert_eq!(
        counted_by("count/widgets.example.com"),
        Some(("example.com".into(), "widgets".into()))
    );
}

#[test]
fn the_exceeded_message_is_upstreams() {
    let quotas = [quota("q", json!({"pods": "4"}), json!({"pods": "4"}))];
    let err = admit(&quotas, PODS, &pod(json!([{"name": "a"}])), None, now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "exceeded quota: q, requested: pods=1, used: pods=4, limited: pods=4"
    );
}

#[test]
fn admission_table() {
    let small = pod(json!([container(
        "a",
        json!({"cpu": "100m", "memory": "1Gi"}),
        json!({"cpu": "200m", "memory": "2Gi"})
    )]));
    type Want = Result<Vec<(usize, ResourceList)>, &'static str>;
    let cases: Vec<(&str, Vec<Value>, Value, Want)> = vec![
        ("no quotas", vec![], small.clone(), Ok(vec![])),
        (
            "below the limit charges the quota",
            vec![quota("q", json!({"cpu": "1", "memory": "10Gi", "pods": "5"}),
                json!({"cpu": "500m", "memory": "5Gi", "pods": "3"}))],
            small.clone(),
            Ok(vec![(0, list(&[("cpu", "600m"), ("memory", "6Gi"), ("pods", "4")]))]),
        ),
        (
            "over on cpu names only cpu",
            vec![quota("q", json!({"cpu": "150m", "pods": "5"}), json!({"cpu": "100m", "pods": "1"}))],
            small.clone(),
            Err("exceeded quota: q, requested: cpu=100m, used: cpu=100m, limited: cpu=150m"),
        ),
        (
            "several exceeded names are sorted",
            vec![quota("q", json!({"requests.memory": "1Gi", "limits.cpu": "100m"}),
                json!({"requests.memory": "512Mi", "limits.cpu": "0"}))],
            small.clone(),
            Err("exceeded quota: q, requested: limits.cpu=200m,requests.memory=1Gi, used: limits.cpu=0,requests.memory=512Mi, limited: limits.cpu=100m,requests.memory=1Gi"),
        ),
        (
            "a quota without usage stats refuses",
            vec![quota("q", json!({"pods": "5"}), json!({}))],
            small.clone(),
            Err("status unknown for quota: q, resources: pods"),
        ),
        (
            "a quota not yet processed (no status.hard) is ignored",
            vec![json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "0"}}})],
            small.clone(),
            Ok(vec![]),
        ),
        (
            "a quota of other kinds is ignored",
            vec![quota("q", json!({"services": "0"}), json!({"services": "0"}))],
            small.clone(),
            Ok(vec![]),
        ),
        (
            "compute tracked but not stated",
            vec![quota("q", json!({"limits.cpu": "10", "requests.memory": "10Gi"}),
                json!({"limits.cpu": "0", "requests.memory": "0"}))],
            pod(json!([container("app", json!({}), json!({})), container("side", json!({"memory": "1Gi"}), json!({}))])),
            Err("failed quota: q: must specify limits.cpu for: app,side; requests.memory for: app"),
        ),
        (
            "BestEffort scope matches a pod without compute",
            vec![json!({"metadata": {"name": "be"}, "spec": {"scopes": ["BestEffort"]},
                "status": {"hard": {"pods": "1"}, "used": {"pods": "1"}}})],
            pod(json!([{"name": "a"}])),
            Err("exceeded quota: be, requested: pods=1, used: pods=1, limited: pods=1"),
        ),
        (
            "BestEffort scope skips a pod with compute",
            vec![json!({"metadata": {"name": "be"}, "spec": {"scopes": ["BestEffort"]},
                "status": {"hard": {"pods": "1"}, "used": {"pods": "1"}}})],
            small.clone(),
            Ok(vec![]),
        ),
        (
            "NotBestEffort scope takes a pod with compute",
            vec![json!({"metadata": {"name": "nbe"}, "spec": {"scopes": ["NotBestEffort"]},
                "status": {"hard": {"pods": "2"}, "used": {"pods": "1"}}})],
            small.clone(),
            Ok(vec![(0, list(&[("pods", "2")]))]),
        ),
        (
            "Terminating scope needs an active deadline",
            vec![json!({"metadata": {"name": "t"}, "spec": {"scopes": ["Terminating"]},
                "status": {"hard": {"pods": "0"}, "used": {"pods": "0"}}})],
            small.clone(),
            Ok(vec![]),
        ),
        (
            "PriorityClass In selects by class",
            vec![json!({"metadata": {"name": "pc"}, "spec": {"scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}},
                "status": {"hard": {"pods": "0"}, "used": {"pods": "0"}}})],
            json!({"spec": {"priorityClassName": "high", "containers": [{"name": "a"}]}}),
            Err("exceeded quota: pc, requested: pods=1, used: pods=0, limited: pods=0"),
        ),
        (
            "PriorityClass NotIn skips the class",
            vec![json!({"metadata": {"name": "pc"}, "spec": {"scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "NotIn", "values": ["high"]}]}},
                "status": {"hard": {"pods": "0"}, "used": {"pods": "0"}}})],
            json!({"spec": {"priorityClassName": "high", "containers": [{"name": "a"}]}}),
            Ok(vec![]),
        ),
        (
            "PriorityClass Exists skips a pod without a class",
            vec![json!({"metadata": {"name": "pc"}, "spec": {"scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "Exists"}]}},
                "status": {"hard": {"pods": "0"}, "used": {"pods": "0"}}})],
            pod(json!([{"name": "a"}])),
            Ok(vec![]),
        ),
        (
            "a terminal pod only charges its object count",
            vec![quota("q", json!({"pods": "0", "count/pods": "5"}), json!({"pods": "0", "count/pods": "0"}))],
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Failed"}}),
            Ok(vec![(0, list(&[("pods", "0"), ("count/pods", "1")]))]),
        ),
        (
            "two quotas are both charged",
            vec![quota("a", json!({"pods": "5"}), json!({"pods": "1"})),
                 quota("b", json!({"count/pods": "5"}), json!({"count/pods": "2"}))],
            pod(json!([{"name": "a"}])),
            Ok(vec![(0, list(&[("pods", "2")])), (1, list(&[("count/pods", "3")]))]),
        ),
    ];
    for (name, quotas, obj, want) in cases {
        let got = admit(&quotas, PODS, &obj, None, now())
            .map(|cs| {
                cs.into_iter()
                    .map(|c| (c.index, c.used))
                    .collect::<Vec<_>>()
            })
            .map_err(|e| e.to_string());
        assert_eq!(got, want.map_err(str::to_owned), "{name}");
    }
}

#[test]
fn services_and_object_counts_are_checked_by_name() {
    let quotas = [quota(
        "objects",
        json!({"services.loadbalancers": "1", "count/deployments.apps": "2", "configmaps": "1"}),
        json!({"services.loadbalancers": "1", "count/deployments.apps": "1", "configmaps": "0"}),
    )];
    let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
    assert_eq!(
        admit(&quotas, SERVICES, &lb, None, now()).unwrap_err().to_string(),
        "exceeded quota: objects, requested: services.loadbalancers=1, used: services.loadbalancers=1, limited: services.loadbalancers=1"
    );
    let cluster_ip = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
    assert_eq!(
        admit(&quotas, SERVICES, &cluster_ip, None, now()).unwrap(),
        vec![]
    );
    let charged = admit(
        &quotas,
        Resource::new("apps", "deployments"),
        &json!({}),
        None,
        now(),
    )
    .unwrap();
    assert_eq!(charged[0].used["count/deployments.apps"].to_string(), "2");
    // An update charges only what grows: ClusterIP -> LoadBalancer needs a balancer.
    assert!(admit(&quotas, SERVICES, &lb, Some(&cluster_ip), now()).is_err());
    assert_eq!(
        admit(&quotas, SERVICES, &lb, Some(&lb), now()).unwrap(),
        vec![]
    );
}

#[test]
fn calculated_usage_counts_every_hard_name_from_zero() {
    let q = json!({"metadata": {"name": "q"}, "spec": {"hard": {
        "pods": "10", "requests.cpu": "4", "count/deployments.apps": "3", "services": "2"}}});
    let pods = [
        pod(json!([container("a", json!({"cpu": "1"}), json!({}))])),
        pod(json!([container("a", json!({"cpu": "500m"}), json!({}))])),
        json!({"spec": {"containers": [container("a", json!({"cpu": "1"}), json!({}))]}, "status": {"phase": "Succeeded"}}),
    ];
    let deployments = [json!({}), json!({})];
    let objects = |group: &str, resource: &str| -> Option<Vec<&Value>> {
        match (group, resource) {
            ("", "pods") => Some(pods.iter().collect()),
            ("apps", "deployments") => Some(deployments.iter().collect()),
            _ => None,
        }
    };
    let used = calculate_used(&q, &objects, now()).unwrap();
    assert_eq!(
        pretty(&used),
        "count/deployments.apps=2,pods=2,requests.cpu=1500m,services=0"
    );
    let kinds = counted_kinds(&parse_list(&q["spec"]["hard"]));
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        vec![
            ("".to_owned(), "pods".to_owned()),
            ("".to_owned(), "services".to_owned()),
            ("apps".to_owned(), "deployments".to_owned())
        ]
    );
}

#[test]
fn scoped_quotas_count_only_their_pods() {
    let q = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10"}, "scopes": ["BestEffort"]}});
    let pods = [
        pod(json!([{"name": "a"}])),
        pod(json!([container("a", json!({"cpu": "1"}), json!({}))])),
    ];
    let objects = |_: &str, r: &str| (r == "pods").then(|| pods.iter().collect());
    assert_eq!(
        pretty(&calculate_used(&q, &objects, now()).unwrap()),
        "pods=1"
    );
}

#[test]
fn absurd_requests_overflow_instead_of_wrapping() {
    let near_max = "170000000000E";
    assert!(Quantity::parse(near_max).is_ok());
    let huge = pod(json!([
        container("a", json!({"cpu": near_max}), json!({})),
        container("b", json!({"cpu": near_max}), json!({}))
    ]));
    assert_eq!(
        usage(PODS, &huge, now()),
        Err(QuotaError::Overflow("cpu".into()))
    );
}
