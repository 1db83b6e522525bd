use super::*;
use crate::api::{ParentRef, RouteGroupKind};
use crate::config::ParentReport;

fn listener(name: &str) -> ListenerReport {
    ListenerReport {
        name: name.into(),
        port: 80,
        accepted: Ok(()),
        conflicted: None,
        resolved: Ok(()),
        supported_kinds: vec![RouteGroupKind {
            group: Some("gateway.networking.k8s.io".into()),
            kind: "HTTPRoute".into(),
        }],
        attached_routes: 2,
    }
}

fn gateway_report(listeners: Vec<ListenerReport>, addresses: &[&str]) -> GatewayReport {
    GatewayReport {
        namespace: "default".into(),
        name: "main-gateway".into(),
        generation: 3,
        address_error: None,
        addresses: addresses.iter().map(|a| a.to_string()).collect(),
        listeners,
    }
}

fn find<'a>(conditions: &'a Value, type_: &str) -> &'a Value {
    conditions
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("{type_} in {conditions}"))
}

#[test]
fn gateway_accepted_and_programmed() {
    let mut conflicted = listener("b");
    conflicted.conflicted = Some("HostnameConflict");
    for (listeners, addresses, accepted, programmed) in [
        (
            vec![listener("a")],
            vec!["10.0.0.1"],
            ("True", "Accepted"),
            ("True", "Programmed"),
        ),
        (
            vec![listener("a"), conflicted.clone()],
            vec!["10.0.0.1"],
            ("True", "ListenersNotValid"),
            ("True", "Programmed"),
        ),
        (
            vec![conflicted.clone()],
            vec!["10.0.0.1"],
            ("False", "ListenersNotValid"),
            ("False", "Invalid"),
        ),
        (
            vec![listener("a")],
            vec![],
            ("True", "Accepted"),
            ("False", "AddressNotAssigned"),
        ),
    ] {
        let status = gateway(
            &Value::Null,
            &gateway_report(listeners, &addresses),
            "2026-12-07T00:00:00Z",
        );
        let c = &status["conditions"];
        assert_eq!(
            (
                find(c, "Accepted")["status"].as_str().unwrap(),
                find(c, "Accepted")["reason"].as_str().unwrap()
            ),
            accepted
        );
        assert_eq!(
            (
                find(c, "Programmed")["status"].as_str().unwrap(),
                find(c, "Programmed")["reason"].as_str().unwrap()
            ),
            programmed
        );
        assert_eq!(find(c, "Accepted")["observedGeneration"], 3);
    }
    let status = gateway(
        &Value::Null,
        &gateway_report(vec![listener("a"), conflicted], &["10.0.0.1"]),
        "t0",
    );
    assert_eq!(
        status["addresses"],
        json!([{"type": "IPAddress", "value": "10.0.0.1"}])
    );
    let l = &status["listeners"][1];
    assert_eq!(l["attachedRoutes"], 2);
    assert_eq!(
        find(&l["conditions"], "Conflicted")["reason"],
        "HostnameConflict"
    );
    assert_eq!(find(&l["conditions"], "Programmed")["status"], "False");
    assert_eq!(
        find(&status["listeners"][0]["conditions"], "Conflicted")["reason"],
        "NoConflicts"
    );
}

#[test]
fn unchanged_conditions_keep_their_time() {
    let g = gateway_report(vec![listener("a")], &["10.0.0.1"]);
    let first = gateway(&Value::Null, &g, "t0");
    assert_eq!(
        gateway(&first, &g, "t1"),
        first,
        "nothing changed, nothing to write"
    );
    let mut moved = g.clone();
    moved.addresses.clear();
    let second = gateway(&first, &moved, "t2");
    assert_eq!(
        find(&second["conditions"], "Accepted")["lastTransitionTime"],
        "t0"
    );
    assert_eq!(
        find(&second["conditions"], "Programmed")["lastTransitionTime"],
        "t2"
    );
}

#[test]
fn route_parents_keep_other_controllers() {
    let current = json!({"parents": [
        {"parentRef": {"name": "theirs"}, "controllerName": "example.com/other", "conditions": []},
        {"parentRef": {"name": "gone"}, "controllerName": "skiff.dev/gateway-controller", "conditions": []},
    ]});
    let r = RouteReport {
        kind: crate::config::RouteKind::Http,
        namespace: "default".into(),
        name: "r".into(),
        generation: 1,
        parents: vec![ParentReport {
            parent: ParentRef {
                name: "main-gateway".into(),
                ..Default::default()
            },
            accepted: Ok(()),
            resolved: Err(("BackendNotFound", "Service default/x not found".into())),
        }],
    };
    let status = route(&current, &r, "skiff.dev/gateway-controller", "t0");
    let parents = status["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0]["controllerName"], "example.com/other");
    assert_eq!(parents[1]["parentRef"], json!({"name": "main-gateway"}));
    let resolved = find(&parents[1]["conditions"], "ResolvedRefs");
    assert_eq!(
        (resolved["status"].as_str(), resolved["reason"].as_str()),
        (Some("False"), Some("BackendNotFound"))
    );
    assert_eq!(
        find(&parents[1]["conditions"], "Accepted")["reason"],
        "Accepted"
    );
}

#[test]
fn class_conditions() {
    for (bundle, accepted, version) in [
        (
            Some("v1.6.1"),
            ("True", "Accepted"),
            ("True", "SupportedVersion"),
        ),
        (
            Some("v1.0.0"),
            ("False", "UnsupportedVersion"),
            ("False", "UnsupportedVersion"),
        ),
        (
            None,
            ("False", "UnsupportedVersion"),
            ("False", "UnsupportedVersion"),
        ),
    ] {
        let s = gateway_class(&Value::Null, 1, &supported_version(bundle), "t0");
        let names: Vec<&str> = s["supportedFeatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted, "ascending, no repeats");
        assert!(names.contains(&"HTTPRouteRequestMirror"));
        let c = &s["conditions"];
        assert_eq!(
            (
                find(c, "Accepted")["status"].as_str().unwrap(),
                find(c, "Accepted")["reason"].as_str().unwrap()
            ),
            accepted,
            "{bundle:?}"
        );
        assert_eq!(
            (
                find(c, "SupportedVersion")["status"].as_str().unwrap(),
                find(c, "SupportedVersion")["reason"].as_str().unwrap()
            ),
            version
        );
    }
}
