use super::plan::*;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

fn service(spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "hello", "namespace": "default", "labels": {"team": "a"}},
        "spec": spec,
    }))
    .unwrap()
}

fn web() -> Service {
    service(json!({
        "selector": {"app": "hello"},
        "ports": [
            {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
            {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"},
        ],
    }))
}

/// A pod labelled app=hello with a named port `web` on 8080 and the given status.
fn pod(name: &str, ip: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "labels": {"app": "hello"}},
        "spec": {"nodeName": "node1", "containers": [
            {"name": "c", "ports": [{"name": "web", "containerPort": 8080}]}
        ]},
        "status": {"phase": "Running", "podIP": ip, "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}
        ]},
    }))
    .unwrap()
}

fn with(mut pod: Pod, f: impl FnOnce(&mut serde_json::Value)) -> Pod {
    let mut v = serde_json::to_value(&pod).unwrap();
    f(&mut v);
    pod = serde_json::from_value(v).unwrap();
    pod
}

fn ips(v: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> Vec<&str> {
    v.iter().flatten().map(|a| a.ip.as_str()).collect()
}

#[test]
fn ready_pods_are_addresses_and_the_rest_not_ready() {
    let pods = [pod("b", "10.0.0.2", false), pod("a", "10.0.0.1", true)];
    let refs: Vec<&Pod> = pods.iter().collect();
    let subsets = subsets(&web(), &refs);
    assert_eq!(subsets.len(), 1);
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1"]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.2"]);
    let ports = subsets[0].ports.as_ref().unwrap();
    assert_eq!(
        ports
            .iter()
            .map(|p| (p.name.as_deref(), p.port))
            .collect::<Vec<_>>(),
        [(Some("http"), 8080), (Some("metrics"), 9090)]
    );
    let target = subsets[0].addresses.as_ref().unwrap()[0]
        .target_ref
        .as_ref();
    assert_eq!(target.and_then(|t| t.uid.as_deref()), Some("uid-a"));
}

#[test]
fn who_is_listed() {
    // (case, pod, in Endpoints, in slices)
    let base = || pod("p", "10.0.0.9", true);
    let cases: Vec<(&str, Pod, bool, bool)> = vec![
        ("ready pod", base(), true, true),
        (
            "no IP yet",
            with(base(), |v| v["status"]["podIP"] = json!(null)),
            false,
            false,
        ),
        (
            "other labels",
            with(base(), |v| v["metadata"]["labels"] = json!({"app": "x"})),
            false,
            false,
        ),
        (
            "other namespace",
            with(base(), |v| v["metadata"]["namespace"] = json!("other")),
            false,
            false,
        ),
        (
            "terminating",
            with(base(), |v| {
                v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z")
            }),
            false,
            true,
        ),
        (
            "failed, restartPolicy Never",
            with(base(), |v| {
                v["spec"]["restartPolicy"] = json!("Never");
                v["status"]["phase"] = json!("Failed");
            }),
            false,
            false,
        ),
        (
            "failed, restartPolicy Always (will restart)",
            with(base(), |v| v["status"]["phase"] = json!("Failed")),
            true,
            true,
        ),
    ];
    for (case, p, in_endpoints, in_slices) in cases {
        let got = subsets(&web(), &[&p]);
        let listed = got
            .iter()
            .any(|s| !ips(&s.addresses).is_empty() || !ips(&s.not_ready_addresses).is_empty());
        assert_eq!(listed, in_endpoints, "{case}: endpoints");
        let slices = slices_from_pods(&web(), &[&p]);
        assert_eq!(!slices.is_empty(), in_slices, "{case}: slices");
    }
}

#[test]
fn slice_conditions_follow_upstream() {
    let terminating = |ready| {
        with(pod("t", "10.0.0.3", ready), |v| {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z")
        })
    };
    // (case, service, pod, ready, serving, terminating)
    let publish = service(
        json!({"selector": {"app": "hello"}, "publishNotReadyAddresses": true,
                                  "ports": [{"port": 80, "targetPort": 8080}]}),
    );
    let cases = [
        (
            "ready",
            web(),
            pod("r", "10.0.0.1", true),
            true,
            true,
            false,
        ),
        (
            "not ready",
            web(),
            pod("n", "10.0.0.2", false),
            false,
            false,
            false,
        ),
        (
            "terminating ready",
            web(),
            terminating(true),
            false,
            true,
            true,
        ),
        (
            "terminating not ready",
            web(),
            terminating(false),
            false,
            false,
            true,
        ),
        (
            "publishNotReady, not ready",
            publish.clone(),
            pod("n", "10.0.0.2", false),
            true,
            false,
            false,
        ),
        (
            "publishNotReady, terminating",
            publish,
            terminating(true),
            true,
            true,
            true,
        ),
    ];
    for (case, svc, p, ready, serving, term) in cases {
        let slices = slices_from_pods(&svc, &[&p]);
        let c = slices[0].endpoints[0].conditions.clone().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(ready), Some(serving), Some(term)),
            "{case}"
        );
    }
}

#[test]
fn named_target_ports_resolve_per_pod_and_split_slices() {
    let other = with(pod("b", "10.0.0.2", true), |v| {
        v["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8081)
    });
    let missing = with(pod("c", "10.0.0.3", true), |v| {
        v["spec"]["containers"][0]["ports"] = json!([])
    });
    let pods = [pod("a", "10.0.0.1", true), other, missing];
    let refs: Vec<&Pod> = pods.iter().collect();
    let slices = slices_from_pods(&web(), &refs);
    let mut seen: Vec<(Vec<Option<i32>>, Vec<String>)> = slices
        .iter()
        .map(|s| {
            (
                s.ports.iter().map(|p| p.port).collect(),
                s.endpoints.iter().map(|e| e.addresses[0].clone()).collect(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (vec![Some(8080), Some(9090)], vec!["10.0.0.1".to_string()]),
            (vec![Some(8081), Some(9090)], vec!["10.0.0.2".to_string()]),
            // The pod without a `web` port still serves the numeric metrics port.
            (vec![Some(9090)], vec!["10.0.0.3".to_string()]),
        ]
    );
}

#[test]
fn headless_services_publish_hostnames_of_their_subdomain() {
    let svc = service(json!({"selector": {"app": "hello"}, "clusterIP": "None"}));
    let named = with(pod("web-0", "10.0.0.1", true), |v| {
        v["spec"]["hostname"] = json!("web-0");
        v["spec"]["subdomain"] = json!("hello");
    });
    let elsewhere = with(pod("x-0", "10.0.0.2", true), |v| {
        v["spec"]["hostname"] = json!("x-0");
        v["spec"]["subdomain"] = json!("other");
    });
    let slices = slices_from_pods(&svc, &[&named, &elsewhere]);
    assert_eq!(
        slices.len(),
        1,
        "a portless headless service lists its pods"
    );
    let hosts: Vec<_> = slices[0]
        .endpoints
        .iter()
        .map(|e| e.hostname.as_deref())
        .collect();
    assert_eq!(hosts, [Some("web-0"), None]);
    assert_eq!(
        labels(&svc).get(HEADLESS_LABEL).map(String::as_str),
        Some("")
    );
    // A portless ClusterIP service has no endpoints.
    let plain = service(json!({"selector": {"app": "hello"}}));
    assert!(slices_from_pods(&plain, &[&named]).is_empty());
}

#[test]
fn slices_hold_at_most_a_hundred_endpoints() {
    let pods: Vec<Pod> = (0..250)
        .map(|i| {
            pod(
                &format!("p{i}"),
                &format!("10.0.{}.{}", i / 200, i % 200),
                true,
            )
        })
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let sizes: Vec<usize> = slices_from_pods(&web(), &refs)
        .iter()
        .map(|s| s.endpoints.len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
}

#[test]
fn no_selector_means_no_pods_and_mirrored_endpoints() {
    let svc = service(json!({"ports": [{"port": 53}]}));
    assert!(selector(&svc).is_none());
    assert!(subsets(&svc, &[&pod("a", "10.0.0.1", true)]).is_empty());
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "hello", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.0.0.7"}], "notReadyAddresses": [{"ip": "10.0.0.8"}],
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}],
    }))
    .unwrap();
    let slices = slices_from_endpoints(&ep);
    assert_eq!(slices.len(), 1);
    let ready: Vec<_> = slices[0]
        .endpoints
        .iter()
        .map(|e| {
            (
                e.addresses[0].as_str(),
                e.conditions.as_ref().unwrap().ready,
            )
        })
        .collect();
    assert_eq!(ready, [("10.0.0.7", Some(true)), ("10.0.0.8", Some(false))]);
    assert_eq!(slices[0].ports[0].protocol.as_deref(), Some("UDP"));
}

fn stored(name: &str, content: &SliceContent) -> EndpointSlice {
    EndpointSlice {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: content.endpoints.clone(),
        ports: Some(content.ports.clone()),
    }
}

#[test]
fn slice_plans_change_only_what_differs() {
    let a = pod("a", "10.0.0.1", true);
    let b = pod("b", "10.0.0.2", true);
    let one = slices_from_pods(&web(), &[&a]);
    let two = slices_from_pods(&web(), &[&a, &b]);
    // Nothing stored: create.
    assert_eq!(
        plan_slices(one.clone(), &[]),
        [SliceAction::Create(one[0].clone())]
    );
    // Already right: nothing.
    let s1 = stored("hello-abc", &one[0]);
    assert!(plan_slices(one.clone(), &[&s1]).is_empty());
    // Content changed: the same slice is rewritten, not replaced.
    assert_eq!(
        plan_slices(two.clone(), &[&s1]),
        [SliceAction::Update("hello-abc".into(), two[0].clone())]
    );
    // No more endpoints: the slice goes; so does a stray duplicate.
    let s2 = stored("hello-def", &one[0]);
    assert_eq!(
        plan_slices(one, &[&s1, &s2]),
        [SliceAction::Delete("hello-def".into())]
    );
    assert_eq!(
        plan_slices(Vec::new(), &[&s1]),
        [SliceAction::Delete("hello-abc".into())]
    );
}

#[test]
fn slices_say_which_pods_they_list() {
    let content = &slices_from_pods(&web(), &[&pod("a", "10.0.0.1", true)])[0];
    let s = stored("x", content);
    assert!(lists_pod(&s, "a"));
    assert!(!lists_pod(&s, "b"));
}
