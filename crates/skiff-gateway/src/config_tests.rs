//! Table tests of routing and attachment. Cases marked "conformance" are the expectations
//! of the Gateway API conformance suite (kubernetes-sigs/gateway-api conformance/tests),
//! with its manifests reduced to what the decision needs.

use super::*;
use serde_json::{json, Value};

const CTRL: &str = "skiff.dev/gateway-controller";

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("test object decodes")
}

/// The objects of one case; `build` borrows them.
#[derive(Default)]
struct World {
    classes: Vec<GatewayClass>,
    gateways: Vec<Gateway>,
    routes: Vec<HttpRoute>,
    grpc_routes: Vec<GrpcRoute>,
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
    grants: Vec<ReferenceGrant>,
    namespaces: Vec<Namespace>,
    secrets: Vec<Secret>,
    ingresses: Vec<k8s_openapi::api::networking::v1::Ingress>,
    ingress_classes: Vec<k8s_openapi::api::networking::v1::IngressClass>,
}

impl World {
    fn new() -> World {
        World {
            classes: vec![
                obj(json!({"metadata": {"name": "nginx"}, "spec": {"controllerName": CTRL}})),
                obj(
                    json!({"metadata": {"name": "other"}, "spec": {"controllerName": "example.com/other"}}),
                ),
            ],
            ..World::default()
        }
    }

    fn gateway(mut self, ns: &str, name: &str, listeners: Value) -> World {
        self.gateways.push(obj(json!({
            "metadata": {"name": name, "namespace": ns, "generation": 1},
            "spec": {"gatewayClassName": "nginx", "listeners": listeners},
        })));
        self
    }

    fn route(mut self, ns: &str, name: &str, spec: Value) -> World {
        let created = format!("2026-01-01T00:00:{:02}Z", self.routes.len());
        self.routes.push(obj(json!({
            "metadata": {"name": name, "namespace": ns, "generation": 2, "creationTimestamp": created},
            "spec": spec,
        })));
        self
    }

    /// A GRPCRoute, created after every route added before it.
    fn grpc_route(mut self, ns: &str, name: &str, spec: Value) -> World {
        let created = format!(
            "2026-01-01T00:00:{:02}Z",
            self.routes.len() + self.grpc_routes.len()
        );
        self.grpc_routes.push(obj(json!({
            "metadata": {"name": name, "namespace": ns, "generation": 1, "creationTimestamp": created},
            "spec": spec,
        })));
        self
    }

    /// A Service `name` on port 8080 (port name `http`) with `ready` and one not-ready
    /// endpoint on 9090.
    fn service(mut self, ns: &str, name: &str, ready: &[&str]) -> World {
        self.services.push(obj(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 9090}]},
        })));
        let mut endpoints: Vec<Value> = ready
            .iter()
            .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
            .collect();
        endpoints.push(json!({"addresses": ["10.9.9.9"], "conditions": {"ready": false}}));
        self.slices.push(obj(json!({
            "metadata": {"name": format!("{name}-abc"), "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "metrics", "port": 9100}, {"name": "http", "port": 9090}],
            "endpoints": endpoints,
        })));
        self
    }

    fn build(&self) -> (Table, Report) {
        build(&Inputs {
            controller_name: CTRL,
            classes: self.classes.iter().collect(),
            gateways: self.gateways.iter().collect(),
            routes: self.routes.iter().collect(),
            grpc_routes: self.grpc_routes.iter().collect(),
            services: self.services.iter().collect(),
            slices: self.slices.iter().collect(),
            grants: self.grants.iter().collect(),
            namespaces: self.namespaces.iter().collect(),
            secrets: self.secrets.iter().collect(),
            ingresses: self.ingresses.iter().collect(),
            ingress_classes: self.ingress_classes.iter().collect(),
            node_addresses: vec!["192.168.254.1".into()],
        })
    }
}

/// Where a request goes: the first backend's upstream name, its error, or "404".
fn route_to(table: &Table, port: u16, host: &str, path: &str, headers: &[(&str, &str)]) -> String {
    route_method(table, port, "GET", host, path, headers)
}

fn route_method(
    table: &Table,
    port: u16,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut map = hyper::HeaderMap::new();
    for (k, v) in headers {
        map.append(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let view = RequestView {
        host,
        path,
        query,
        method,
        headers: &map,
    };
    match table.ports.get(&port).and_then(|p| p.route(&view)) {
        None => "404".into(),
        Some(e) => match e.action.backends.first().map(|b| &b.target) {
            Some(Ok(u)) => u.name.split(':').next().unwrap().to_string(),
            Some(Err(why)) => format!("500 {why}"),
            None => "no backends".into(),
        },
    }
}

fn http_listener() -> Value {
    json!([{"name": "http", "protocol": "HTTP", "port": 80}])
}

fn backend(name: &str) -> Value {
    json!([{"name": name, "port": 8080}])
}

#[test]
fn article_routes_by_hostname() {
    let w = World::new()
        .gateway("default", "main-gateway", http_listener())
        .service("default", "collector", &["10.244.0.5"])
        .service("default", "dashboard", &["10.244.0.6"])
        .route(
            "default",
            "collector-route",
            json!({
                "parentRefs": [{"name": "main-gateway"}],
                "hostnames": ["collector.example.com"],
                "rules": [{"backendRefs": [{"name": "collector", "port": 80}]}],
            }),
        )
        .route(
            "default",
            "dashboard-route",
            json!({
                "parentRefs": [{"name": "main-gateway"}],
                "hostnames": ["dashboard.example.com"],
                "rules": [{"backendRefs": backend("dashboard")}],
            }),
        );
    let (table, report) = w.build();
    // The article's collector route names port 80, which the Service here lacks.
    assert!(route_to(&table, 80, "collector.example.com", "/", &[])
        .starts_with("500 Service default/collector has no port 80"));
    assert_eq!(
        route_to(&table, 80, "dashboard.example.com", "/x", &[]),
        "default/dashboard"
    );
    assert_eq!(route_to(&table, 80, "other.example.com", "/", &[]), "404");
    assert_eq!(
        route_to(&table, 8080, "dashboard.example.com", "/", &[]),
        "404"
    );
    let g = &report.gateways[0];
    assert_eq!(g.listeners[0].attached_routes, 2);
    assert!(g.listeners[0].programmed());
    assert_eq!(report.routes.len(), 2);
    assert_eq!(report.routes[0].parents[0].accepted, Ok(()));
    assert_eq!(
        report.routes[0].parents[0].resolved.as_ref().unwrap_err().0,
        "BackendNotFound"
    );
    assert_eq!(report.routes[1].parents[0].resolved, Ok(()));
}

#[test]
fn endpoints_are_ready_ones_on_the_named_port() {
    let w = World::new()
        .gateway("default", "gw", http_listener())
        .service("default", "web", &["10.244.0.7", "10.244.0.8"])
        .route(
            "default",
            "r",
            json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": backend("web")}]}),
        );
    let (table, _) = w.build();
    let map = hyper::HeaderMap::new();
    let view = RequestView {
        host: "x",
        path: "/",
        query: None,
        method: "GET",
        headers: &map,
    };
    let entry = table.ports[&80].route(&view).unwrap();
    let up = entry.action.backends[0].target.as_ref().unwrap();
    let want: Vec<SocketAddr> = vec![
        "10.244.0.7:9090".parse().unwrap(),
        "10.244.0.8:9090".parse().unwrap(),
    ];
    assert_eq!(up.endpoints, want);
    let picks: Vec<_> = (0..4).map(|_| up.at(up.start(), 0).unwrap()).collect();
    assert_eq!(picks, [want[0], want[1], want[0], want[1]]);
    // A retry goes to the next endpoint.
    let start = up.start();
    assert_ne!(up.at(start, 1), up.at(start, 0));
}

#[test]
fn terminating_endpoints_serve_only_when_none_is_ready() {
    use k8s_openapi::api::discovery::v1::EndpointConditions;
    let c = |ready, serving, terminating| EndpointConditions {
        ready,
        serving,
        terminating,
    };
    for (conditions, want) in [
        (None, EndpointState::Ready),
        (
            Some(c(Some(true), Some(true), Some(false))),
            EndpointState::Ready,
        ),
        (
            Some(c(Some(false), Some(true), Some(true))),
            EndpointState::Draining,
        ),
        (
            Some(c(Some(false), Some(false), Some(true))),
            EndpointState::Out,
        ),
        (Some(c(Some(false), None, None)), EndpointState::Out),
        (
            Some(c(Some(false), Some(true), Some(false))),
            EndpointState::Out,
        ),
    ] {
        assert_eq!(endpoint_state(conditions.as_ref()), want, "{conditions:?}");
    }
    let slice = |endpoints: Value| -> EndpointSlice {
        obj(json!({
            "metadata": {"name": "web-abc", "namespace": "infra",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 9090}],
            "endpoints": endpoints,
        }))
    };
    let old = json!({"addresses": ["10.244.0.5"], "conditions": {"ready": false, "serving": true, "terminating": true}});
    let gone = json!({"addresses": ["10.244.0.6"], "conditions": {"ready": false, "serving": false, "terminating": true}});
    let new = json!({"addresses": ["10.244.0.7"], "conditions": {"ready": true, "serving": true, "terminating": false}});
    for (endpoints, want) in [
        (json!([old, gone, new]), vec!["10.244.0.7:9090"]),
        (json!([old, gone]), vec!["10.244.0.5:9090"]),
        (json!([gone]), vec![]),
    ] {
        let mut w = World::new().gateway("infra", "gw", http_listener()).route(
            "infra",
            "r",
            json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": backend("web")}]}),
        );
        w.services.push(obj(json!({
            "metadata": {"name": "web", "namespace": "infra"},
            "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 9090}]},
        })));
        w.slices.push(slice(endpoints));
        let (table, _) = w.build();
        let map = hyper::HeaderMap::new();
        let view = RequestView {
            host: "x",
            path: "/",
            query: None,
            method: "GET",
            headers: &map,
        };
        let entry = table.ports[&80].route(&view).unwrap();
        let up = entry.action.backends[0].target.as_ref().unwrap();
        let want: Vec<SocketAddr> = want.iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(up.endpoints, want);
    }
}

#[test]
fn conformance_matching_across_routes() {
    let w = World::new()
        .gateway("infra", "same-namespace", http_listener())
        .service("infra", "v1", &["10.0.0.1"])
        .service("infra", "v2", &["10.0.0.2"])
        .route(
            "infra",
            "matching-part1",
            json!({
                "parentRefs": [{"name": "same-namespace"}],
                "hostnames": ["example.com", "example.net"],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}},
                                       {"headers": [{"name": "version", "value": "one"}]}],
                           "backendRefs": backend("v1")}],
            }),
        )
        .route(
            "infra",
            "matching-part2",
            json!({
                "parentRefs": [{"name": "same-namespace"}],
                "hostnames": ["*.com"],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}},
                                       {"headers": [{"name": "version", "value": "two"}]}],
                           "backendRefs": backend("v2")}],
            }),
        );
    let (table, _) = w.build();
    for (host, path, headers, want) in [
        ("example.com", "/", vec![], "infra/v1"),
        ("example.com", "/example", vec![], "infra/v1"),
        ("example.net", "/example", vec![], "infra/v1"),
        (
            "example.com",
            "/example",
            vec![("Version", "one")],
            "infra/v1",
        ),
        ("example.com", "/v2", vec![], "infra/v2"),
        ("example.net", "/v2", vec![], "infra/v1"),
        ("example.com", "/v2/example", vec![], "infra/v2"),
        ("example.com", "/", vec![("Version", "two")], "infra/v2"),
    ] {
        assert_eq!(
            route_to(&table, 80, host, path, &headers),
            want,
            "{host}{path} {headers:?}"
        );
    }
}

#[test]
fn conformance_listener_hostname_matching() {
    let w = World::new()
        .gateway("infra", "gw", json!([
            {"name": "listener-1", "protocol": "HTTP", "port": 80, "hostname": "bar.com"},
            {"name": "listener-2", "protocol": "HTTP", "port": 80, "hostname": "foo.bar.com"},
            {"name": "listener-3", "protocol": "HTTP", "port": 80, "hostname": "*.bar.com"},
            {"name": "listener-4", "protocol": "HTTP", "port": 80, "hostname": "*.foo.com"},
        ]))
        .service("infra", "v1", &["10.0.0.1"])
        .service("infra", "v2", &["10.0.0.2"])
        .service("infra", "v3", &["10.0.0.3"])
        .route("infra", "backend-v1", json!({"parentRefs": [{"name": "gw", "sectionName": "listener-1"}], "rules": [{"backendRefs": backend("v1")}]}))
        .route("infra", "backend-v2", json!({"parentRefs": [{"name": "gw", "sectionName": "listener-2"}], "rules": [{"backendRefs": backend("v2")}]}))
        .route("infra", "backend-v3", json!({"parentRefs": [{"name": "gw", "sectionName": "listener-3"}, {"name": "gw", "sectionName": "listener-4"}], "rules": [{"backendRefs": backend("v3")}]}));
    let (table, report) = w.build();
    for (host, want) in [
        ("bar.com", "infra/v1"),
        ("foo.bar.com", "infra/v2"),
        ("baz.bar.com", "infra/v3"),
        ("boo.bar.com", "infra/v3"),
        ("multiple.prefixes.bar.com", "infra/v3"),
        ("multiple.prefixes.foo.com", "infra/v3"),
        ("foo.com", "404"),
        ("no.matching.host", "404"),
    ] {
        assert_eq!(route_to(&table, 80, host, "/", &[]), want, "{host}");
    }
    let attached: Vec<i64> = report.gateways[0]
        .listeners
        .iter()
        .map(|l| l.attached_routes)
        .collect();
    assert_eq!(attached, [1, 1, 1, 1]);
}

#[test]
fn listener_isolation_never_falls_through() {
    // conformance GatewayHTTPListenerIsolation: a request for a host whose most specific
    // listener has no matching route is a 404, not a route of a wider listener.
    let w = World::new()
        .gateway("infra", "gw", json!([
            {"name": "empty", "protocol": "HTTP", "port": 80},
            {"name": "wild", "protocol": "HTTP", "port": 80, "hostname": "*.example.com"},
            {"name": "abc", "protocol": "HTTP", "port": 80, "hostname": "abc.example.com"},
        ]))
        .service("infra", "v1", &["10.0.0.1"])
        .service("infra", "v2", &["10.0.0.2"])
        .service("infra", "v3", &["10.0.0.3"])
        .route("infra", "a", json!({"parentRefs": [{"name": "gw", "sectionName": "empty"}], "rules": [{"matches": [{"path": {"value": "/empty"}}], "backendRefs": backend("v1")}]}))
        .route("infra", "b", json!({"parentRefs": [{"name": "gw", "sectionName": "wild"}], "rules": [{"matches": [{"path": {"value": "/wild"}}], "backendRefs": backend("v2")}]}))
        .route("infra", "c", json!({"parentRefs": [{"name": "gw", "sectionName": "abc"}], "rules": [{"matches": [{"path": {"value": "/abc"}}], "backendRefs": backend("v3")}]}));
    let (table, _) = w.build();
    for (host, path, want) in [
        ("zzz.com", "/empty", "infra/v1"),
        ("zzz.com", "/wild", "404"),
        ("bar.example.com", "/wild", "infra/v2"),
        ("bar.example.com", "/empty", "404"),
        ("abc.example.com", "/abc", "infra/v3"),
        ("abc.example.com", "/wild", "404"),
    ] {
        assert_eq!(route_to(&table, 80, host, path, &[]), want, "{host}{path}");
    }
}

#[test]
fn conformance_path_and_precedence() {
    // conformance HTTPRouteMatching and HTTPRouteExactPathMatching, plus the spec's
    // ordering: Exact, RegularExpression, longest PathPrefix, method, headers, query.
    let w = World::new()
        .gateway("infra", "gw", http_listener())
        .service("infra", "root", &["10.0.0.1"])
        .service("infra", "v2", &["10.0.0.2"])
        .service("infra", "exact", &["10.0.0.3"])
        .service("infra", "regex", &["10.0.0.4"])
        .service("infra", "post", &["10.0.0.5"])
        .service("infra", "hdr", &["10.0.0.6"])
        .service("infra", "hdr2", &["10.0.0.7"])
        .service("infra", "qry", &["10.0.0.8"])
        .route("infra", "r1", json!({"parentRefs": [{"name": "gw"}], "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": backend("root")},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/v2/"}}], "backendRefs": backend("v2")},
        ]}))
        .route("infra", "r2", json!({"parentRefs": [{"name": "gw"}], "rules": [
            {"matches": [{"path": {"type": "Exact", "value": "/v2/exact"}}], "backendRefs": backend("exact")},
            {"matches": [{"path": {"type": "RegularExpression", "value": "/v2/[0-9]+"}}], "backendRefs": backend("regex")},
            {"matches": [{"path": {"value": "/v2"}, "method": "POST"}], "backendRefs": backend("post")},
            {"matches": [{"path": {"value": "/v2"}, "headers": [{"name": "x-a", "value": "1"}]}], "backendRefs": backend("hdr")},
            {"matches": [{"path": {"value": "/v2"}, "headers": [{"name": "x-a", "value": "1"}, {"name": "x-b", "type": "RegularExpression", "value": "b+"}]}], "backendRefs": backend("hdr2")},
            {"matches": [{"path": {"value": "/v2"}, "queryParams": [{"name": "q", "value": "yes please"}]}], "backendRefs": backend("qry")},
        ]}));
    let (table, _) = w.build();
    for (method, target, headers, want) in [
        ("GET", "/", vec![], "infra/root"),
        ("GET", "/v2example", vec![], "infra/root"),
        ("GET", "/v2", vec![], "infra/v2"),
        ("GET", "/v2/", vec![], "infra/v2"),
        ("GET", "/v2/exact", vec![], "infra/exact"),
        ("GET", "/v2/exact/", vec![], "infra/v2"),
        ("GET", "/v2/123", vec![], "infra/regex"),
        ("GET", "/v2/123x", vec![], "infra/v2"),
        ("POST", "/v2/x", vec![("x-a", "1")], "infra/post"),
        ("GET", "/v2/x", vec![("x-a", "1")], "infra/hdr"),
        (
            "GET",
            "/v2/x",
            vec![("X-A", "1"), ("x-b", "bbb")],
            "infra/hdr2",
        ),
        (
            "GET",
            "/v2/x",
            vec![("x-a", "2"), ("x-b", "bbb")],
            "infra/v2",
        ),
        ("GET", "/v2/x?q=yes%20please", vec![], "infra/qry"),
        ("GET", "/v2/x?q=yes+please&q=no", vec![], "infra/qry"),
        ("GET", "/v2/x?Q=yes+please", vec![], "infra/v2"),
    ] {
        assert_eq!(
            route_method(&table, 80, method, "h", target, &headers),
            want,
            "{method} {target} {headers:?}"
        );
    }
}

#[test]
fn hostname_precedence_across_routes() {
    // HTTPRoute hostnames doc: the route with the most specific matching hostname wins,
    // and a wider route still serves what the specific one does not match.
    let w = World::new()
        .gateway("infra", "gw", http_listener())
        .service("infra", "exact", &["10.0.0.1"])
        .service("infra", "wild", &["10.0.0.2"])
        .service("infra", "any", &["10.0.0.3"])
        .route("infra", "any", json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": backend("any")}]}))
        .route("infra", "wild", json!({"parentRefs": [{"name": "gw"}], "hostnames": ["*.example.com"], "rules": [{"backendRefs": backend("wild")}]}))
        .route("infra", "exact", json!({"parentRefs": [{"name": "gw"}], "hostnames": ["foo.example.com"], "rules": [{"matches": [{"path": {"value": "/only"}}], "backendRefs": backend("exact")}]}));
    let (table, _) = w.build();
    for (host, path, want) in [
        ("foo.example.com", "/only", "infra/exact"),
        ("foo.example.com", "/other", "infra/wild"),
        ("a.b.example.com", "/", "infra/wild"),
        ("example.com", "/", "infra/any"),
    ] {
        assert_eq!(route_to(&table, 80, host, path, &[]), want, "{host}{path}");
    }
}

#[test]
fn conformance_hostname_intersection() {
    for (listener, route, want) in [
        (None, vec![], vec![None]),
        (
            Some("very.specific.com"),
            vec![],
            vec![Some("very.specific.com")],
        ),
        (
            Some("very.specific.com"),
            vec!["non.matching.com", "*.nonmatchingwildcard.io"],
            vec![],
        ),
        (
            Some("very.specific.com"),
            vec!["non.matching.com", "very.specific.com"],
            vec![Some("very.specific.com")],
        ),
        (
            Some("*.wildcard.io"),
            vec!["bar.wildcard.io", "foo.bar.wildcard.io", "wildcard.io"],
            vec![Some("bar.wildcard.io"), Some("foo.bar.wildcard.io")],
        ),
        (
            Some("very.specific.com"),
            vec!["*.specific.com"],
            vec![Some("very.specific.com")],
        ),
        (
            Some("*.anotherwildcard.io"),
            vec!["*.anotherwildcard.io"],
            vec![Some("*.anotherwildcard.io")],
        ),
        (
            Some("*.io"),
            vec!["*.anotherwildcard.io"],
            vec![Some("*.anotherwildcard.io")],
        ),
        (None, vec!["Foo.COM"], vec![Some("foo.com")]),
    ] {
        let route: Vec<String> = route.into_iter().map(String::from).collect();
        let want: Vec<Option<String>> = want.into_iter().map(|h| h.map(String::from)).collect();
        assert_eq!(
            effective_hostnames(listener, &route),
            want,
            "{listener:?} {route:?}"
        );
    }
}

#[test]
fn attachment_verdicts() {
    let mut w = World::new()
        .gateway("gw-ns", "gw", json!([
            {"name": "same", "protocol": "HTTP", "port": 80},
            {"name": "all", "protocol": "HTTP", "port": 8080, "allowedRoutes": {"namespaces": {"from": "All"}}},
            {"name": "selected", "protocol": "HTTP", "port": 8081, "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "a"}}}}},
            {"name": "specific", "protocol": "HTTP", "port": 8082, "hostname": "only.example.com"},
        ]))
        .service("gw-ns", "web", &["10.0.0.1"])
        .service("apps", "web", &["10.0.0.2"])
        .route("gw-ns", "no-section", json!({"parentRefs": [{"name": "gw", "sectionName": "nope"}], "rules": [{"backendRefs": backend("web")}]}))
        .route("gw-ns", "no-port", json!({"parentRefs": [{"name": "gw", "port": 9999}], "rules": [{"backendRefs": backend("web")}]}))
        .route("apps", "not-allowed", json!({"parentRefs": [{"name": "gw", "namespace": "gw-ns", "sectionName": "same"}], "rules": [{"backendRefs": backend("web")}]}))
        .route("apps", "selected", json!({"parentRefs": [{"name": "gw", "namespace": "gw-ns", "sectionName": "selected"}], "rules": [{"backendRefs": backend("web")}]}))
        .route("gw-ns", "host-miss", json!({"parentRefs": [{"name": "gw", "sectionName": "specific"}], "hostnames": ["other.example.com"], "rules": [{"backendRefs": backend("web")}]}))
        .route("gw-ns", "cross-ns", json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web", "namespace": "apps", "port": 8080}]}]}))
        .route("gw-ns", "bad-kind", json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"group": "example.com", "kind": "Bucket", "name": "b"}]}]}))
        .route("gw-ns", "other-class", json!({"parentRefs": [{"name": "elsewhere"}], "rules": []}));
    w.namespaces.push(obj(
        json!({"metadata": {"name": "apps", "labels": {"team": "a"}}}),
    ));
    let verdicts = |w: &World| -> Vec<(String, Option<&'static str>, Option<&'static str>)> {
        let (_, report) = w.build();
        report
            .routes
            .iter()
            .map(|r| {
                let p = &r.parents[0];
                (
                    r.name.clone(),
                    p.accepted.as_ref().err().map(|e| e.0),
                    p.resolved.as_ref().err().map(|e| e.0),
                )
            })
            .collect()
    };
    let got = verdicts(&w);
    let want: Vec<(String, Option<&str>, Option<&str>)> = vec![
        ("no-section".into(), Some("NoMatchingParent"), None),
        ("no-port".into(), Some("NoMatchingParent"), None),
        ("not-allowed".into(), Some("NotAllowedByListeners"), None),
        ("selected".into(), None, None),
        ("host-miss".into(), Some("NoMatchingListenerHostname"), None),
        ("cross-ns".into(), None, Some("RefNotPermitted")),
        ("bad-kind".into(), None, Some("InvalidKind")),
    ];
    assert_eq!(got, want);
    // conformance HTTPRouteReferenceGrant: a grant in the Service's namespace lets it be.
    w.grants.push(obj(json!({
        "metadata": {"name": "g", "namespace": "apps"},
        "spec": {"from": [{"group": GROUP, "kind": "HTTPRoute", "namespace": "gw-ns"}],
                 "to": [{"group": "", "kind": "Service", "name": "web"}]},
    })));
    assert_eq!(verdicts(&w)[5], ("cross-ns".into(), None, None));
    // A grant for another name does not.
    w.grants[0].spec.to[0].name = Some("other".into());
    assert_eq!(verdicts(&w)[5].2, Some("RefNotPermitted"));
}

#[test]
fn listener_verdicts() {
    let w = World::new()
        .gateway("infra", "gw", json!([
            {"name": "a", "protocol": "HTTP", "port": 80, "hostname": "x.example.com"},
            {"name": "b", "protocol": "HTTP", "port": 80, "hostname": "x.example.com"},
            {"name": "c", "protocol": "HTTP", "port": 81},
            {"name": "d", "protocol": "TCP", "port": 81},
            {"name": "e", "protocol": "UDP", "port": 82},
            {"name": "f", "protocol": "HTTP", "port": 83, "allowedRoutes": {"kinds": [{"kind": "HTTPRoute"}, {"kind": "TCPRoute"}]}},
            {"name": "g", "protocol": "HTTP", "port": 84},
        ]))
        .gateway("infra", "newer", json!([{"name": "h", "protocol": "HTTPS", "port": 84}]));
    let (table, report) = w.build();
    let l = &report.gateways[0].listeners;
    assert_eq!(l[0].conflicted, Some("HostnameConflict"));
    assert_eq!(l[1].conflicted, Some("HostnameConflict"));
    assert_eq!(l[2].conflicted, Some("ProtocolConflict"));
    assert_eq!(l[3].accepted.as_ref().unwrap_err().0, "UnsupportedProtocol");
    assert_eq!(l[4].accepted.as_ref().unwrap_err().0, "UnsupportedProtocol");
    assert_eq!(l[5].resolved.as_ref().unwrap_err().0, "InvalidRouteKinds");
    assert_eq!(
        l[5].supported_kinds,
        vec![RouteGroupKind {
            group: Some(GROUP.into()),
            kind: "HTTPRoute".into()
        }]
    );
    assert!(l[6].programmed());
    assert!(!l[0].programmed() && !l[5].programmed());
    // The older Gateway keeps port 84 for HTTP.
    assert_eq!(
        report.gateways[1].listeners[0]
            .accepted
            .as_ref()
            .unwrap_err()
            .0,
        "PortUnavailable"
    );
    // Every served listener listens, with or without routes (then 404).
    assert_eq!(table.ports.keys().copied().collect::<Vec<_>>(), [84]);
    // A Gateway of another class is not reported.
    assert_eq!(report.gateways.len(), 2);
}

#[test]
fn weighted_split_is_exact_per_window_and_interleaved() {
    let w = World::new()
        .gateway("infra", "gw", http_listener())
        .service("infra", "v1", &["10.0.0.1"])
        .service("infra", "v2", &["10.0.0.2"])
        .route("infra", "canary", json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [
            {"name": "v1", "port": 8080, "weight": 90}, {"name": "v2", "port": 8080, "weight": 10}]}]}));
    let (table, _) = w.build();
    let map = hyper::HeaderMap::new();
    let view = RequestView {
        host: "x",
        path: "/",
        query: None,
        method: "GET",
        headers: &map,
    };
    let entry = table.ports[&80].route(&view).unwrap();
    let picks: Vec<u64> = (0..1000)
        .map(|_| entry.action.pick().unwrap().weight)
        .collect();
    assert_eq!(picks.iter().filter(|w| **w == 10).count(), 100);
    // Never ten canary requests in a row.
    assert!(picks.windows(10).all(|w| w.contains(&90)));
    // Weight 0 everywhere: nothing to pick (the proxy answers 500).
    let w = World::new()
        .gateway("infra", "gw", http_listener())
        .service("infra", "v1", &["10.0.0.1"])
        .route("infra", "zero", json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "v1", "port": 8080, "weight": 0}]}]}));
    let (table, _) = w.build();
    assert!(table.ports[&80]
        .route(&view)
        .unwrap()
        .action
        .pick()
        .is_none());
}

#[test]
fn unsupported_filter_rejects_the_route_only() {
    let w = World::new()
        .gateway("infra", "gw", http_listener())
        .service("infra", "v1", &["10.0.0.1"])
        .route("infra", "ext", json!({"parentRefs": [{"name": "gw"}], "hostnames": ["m.example.com"], "rules": [{
            "filters": [{"type": "ExtensionRef", "extensionRef": {"group": "example.com", "kind": "Thing", "name": "t"}}],
            "backendRefs": backend("v1")}]}))
        .route("infra", "fine", json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": backend("v1")}]}));
    let (table, report) = w.build();
    assert_eq!(
        report.routes[0].parents[0].accepted.as_ref().unwrap_err().0,
        "UnsupportedValue"
    );
    assert_eq!(report.routes[0].parents[0].resolved, Ok(()));
    // The rule's requests fail with a 500 instead of skipping the filter; the other route
    // still serves.
    assert!(route_to(&table, 80, "m.example.com", "/", &[])
        .starts_with("500 filter type \"ExtensionRef\""));
    assert_eq!(route_to(&table, 80, "x.example.com", "/", &[]), "infra/v1");
}

#[test]
fn request_mirrors_resolve_or_are_dropped() {
    // Conformance HTTPRouteRequestMirror / HTTPRouteRequestPercentageMirror: the rule
    // serves its backend, and mirrors to another; a mirror to a missing Service is
    // dropped with ResolvedRefs False BackendNotFound, the route still Accepted.
    let mirror = |name: &str, extra: Value| {
        let mut m = json!({"backendRef": {"name": name, "port": 8080}});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"type": "RequestMirror", "requestMirror": m})
    };
    let w = World::new()
        .gateway("infra", "gw", http_listener())
        .service("infra", "v1", &["10.0.0.1"])
        .service("infra", "v2", &["10.0.0.2"])
        .route(
            "infra",
            "mirrored",
            json!({"parentRefs": [{"name": "gw"}], "hostnames": ["m.example.com"], "rules": [{
            "filters": [mirror("v2", json!({})), mirror("v2", json!({"percent": 20})),
                        mirror("v2", json!({"fraction": {"numerator": 1, "denominator": 3}}))],
            "backendRefs": backend("v1")}]}),
        )
        .route(
            "infra",
            "gone",
            json!({"parentRefs": [{"name": "gw"}], "hostnames": ["g.example.com"], "rules": [{
            "filters": [mirror("nope", json!({}))], "backendRefs": backend("v1")}]}),
        );
    let (table, report) = w.build();
    assert_eq!(report.routes[0].parents[0].accepted, Ok(()));
    assert_eq!(report.routes[0].parents[0].resolved, Ok(()));
    assert_eq!(report.routes[1].parents[0].accepted, Ok(()));
    assert_eq!(
        report.routes[1].parents[0].resolved.as_ref().unwrap_err().0,
        "BackendNotFound"
    );
    assert_eq!(route_to(&table, 80, "m.example.com", "/", &[]), "infra/v1");
    assert_eq!(route_to(&table, 80, "g.example.com", "/", &[]), "infra/v1");
    let map = hyper::HeaderMap::new();
    let view = |host| RequestView {
        host,
        path: "/",
        query: None,
        method: "GET",
        headers: &map,
    };
    let entry = table.ports[&80].route(&view("g.example.com")).unwrap();
    assert!(entry.action.mirrors.is_empty());
    let entry = table.ports[&80].route(&view("m.example.com")).unwrap();
    let counts: Vec<usize> = entry
        .action
        .mirrors
        .iter()
        .map(|m| (0..300).filter(|_| m.take()).count())
        .collect();
    assert_eq!(counts, [300, 60, 100]);
    assert_eq!(&*entry.action.mirrors[0].upstream.name, "infra/v2:8080");
    // Spread evenly: 20 % never mirrors two requests in a row.
    let m = &entry.action.mirrors[1];
    let picks: Vec<bool> = (0..100).map(|_| m.take()).collect();
    assert!(picks.windows(2).all(|w| !(w[0] && w[1])));
}

#[test]
fn timeouts_parse_as_gateway_api_durations() {
    for (text, want) in [
        ("10s", Some(Duration::from_secs(10))),
        ("500ms", Some(Duration::from_millis(500))),
        ("1h30m", Some(Duration::from_secs(5400))),
        ("1m1s1ms", Some(Duration::from_millis(61_001))),
        ("0s", None),
    ] {
        assert_eq!(parse_duration(text), Ok(want), "{text}");
    }
    for bad in [
        "",
        "10",
        "s",
        "1.5s",
        "123456s",
        "1h1h1h1h1h",
        "10us",
        "-1s",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    let w = World::new()
        .gateway("infra", "gw", http_listener())
        .service("infra", "v1", &["10.0.0.1"])
        .route(
            "infra",
            "slow",
            json!({"parentRefs": [{"name": "gw"}], "rules": [{
            "timeouts": {"request": "2s", "backendRequest": "500ms"},
            "backendRefs": backend("v1")}]}),
        );
    let (table, _) = w.build();
    let map = hyper::HeaderMap::new();
    let view = RequestView {
        host: "a.example.com",
        path: "/",
        query: None,
        method: "GET",
        headers: &map,
    };
    let entry = table.ports[&80].route(&view).unwrap();
    assert_eq!(
        entry.action.timeouts,
        Timeouts {
            request: Some(Duration::from_secs(2)),
            backend_request: Some(Duration::from_millis(500)),
        }
    );
}

/// A `kubernetes.io/tls` Secret for `host` (self-signed).
fn tls_secret(ns: &str, name: &str, host: &str) -> Secret {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    obj(json!({
        "metadata": {"name": name, "namespace": ns},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64(cert.pem().as_bytes()),
            "tls.key": base64(key.serialize_pem().as_bytes()),
        },
    }))
}

fn base64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn https_listeners_pick_certificates_by_sni() {
    let https = |name: &str, host: Option<&str>, secret: Value| {
        let mut l = json!({"name": name, "protocol": "HTTPS", "port": 443,
                           "tls": {"certificateRefs": [secret]}});
        if let Some(h) = host {
            l["hostname"] = json!(h);
        }
        l
    };
    let mut w = World::new().gateway(
        "infra",
        "gw",
        json!([
            https("a", Some("a.example.com"), json!({"name": "a-cert"})),
            https("wild", Some("*.example.com"), json!({"name": "wild-cert"})),
            https("missing", Some("m.example.com"), json!({"name": "nope"})),
            https("broken", Some("b.example.com"), json!({"name": "broken"})),
            https(
                "remote",
                Some("r.example.com"),
                json!({"name": "r-cert", "namespace": "certs"})
            ),
            https(
                "kind",
                Some("k.example.com"),
                json!({"name": "x", "kind": "ConfigMap"})
            ),
        ]),
    );
    w.secrets
        .push(tls_secret("infra", "a-cert", "a.example.com"));
    w.secrets
        .push(tls_secret("infra", "wild-cert", "*.example.com"));
    w.secrets
        .push(tls_secret("certs", "r-cert", "r.example.com"));
    let mut broken = tls_secret("infra", "broken", "b.example.com");
    broken.data.as_mut().unwrap().insert(
        "tls.key".into(),
        k8s_openapi::ByteString(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
        ),
    );
    w.secrets.push(broken);
    let reasons = |w: &World| -> Vec<Option<&'static str>> {
        w.build().1.gateways[0]
            .listeners
            .iter()
            .map(|l| l.resolved.as_ref().err().map(|e| e.0))
            .collect()
    };
    assert_eq!(
        reasons(&w),
        [
            None,
            None,
            Some("InvalidCertificateRef"),
            Some("InvalidCertificateRef"),
            Some("RefNotPermitted"),
            Some("InvalidCertificateRef"),
        ]
    );
    w.grants.push(obj(json!({
        "metadata": {"name": "g", "namespace": "certs"},
        "spec": {"from": [{"group": GROUP, "kind": "Gateway", "namespace": "infra"}],
                 "to": [{"group": "", "kind": "Secret"}]},
    })));
    assert_eq!(reasons(&w)[4], None);
    let (table, _) = w.build();
    let tls = table.ports[&443].tls.as_ref().expect("port 443 is TLS");
    let subject = |sni: Option<&str>| {
        let cert = tls.resolve(sni).expect("a certificate");
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.cert[0].as_ref()).unwrap();
        parsed
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(subject(Some("a.example.com")), "DNSName(a.example.com)");
    assert_eq!(subject(Some("A.Example.com")), "DNSName(a.example.com)");
    assert_eq!(subject(Some("z.example.com")), "DNSName(*.example.com)");
    assert_eq!(subject(Some("r.example.com")), "DNSName(r.example.com)");
    // m.example.com's listener is not served: the wildcard's certificate answers.
    assert_eq!(subject(Some("m.example.com")), "DNSName(*.example.com)");
}

/// GRPCRoute matching (conformance GRPCExactMethodMatching, GRPCRouteHeaderMatching and
/// the spec's precedence: service characters, then method characters, then headers).
#[test]
fn grpc_routes_match_service_method_and_headers() {
    let w = World::new()
        .gateway("infra", "gw", http_listener())
        .service("infra", "exact", &["10.0.0.1"])
        .service("infra", "service", &["10.0.0.2"])
        .service("infra", "method", &["10.0.0.3"])
        .service("infra", "regex", &["10.0.0.4"])
        .service("infra", "header", &["10.0.0.5"])
        .service("infra", "fallback", &["10.0.0.6"])
        .grpc_route("infra", "g", json!({
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["grpc.example.com"],
            "rules": [
                {"backendRefs": backend("fallback")},
                {"matches": [{"method": {"service": "echo.Echo"}}], "backendRefs": backend("service")},
                {"matches": [{"method": {"method": "Ping"}}], "backendRefs": backend("method")},
                {"matches": [{"method": {"service": "echo.Echo", "method": "Say"}}], "backendRefs": backend("exact")},
                {"matches": [{"method": {"type": "RegularExpression", "service": "re\\.[a-z]+", "method": "Get.*"}}], "backendRefs": backend("regex")},
                {"matches": [{"method": {"service": "echo.Echo", "method": "Say"}, "headers": [{"name": "x-tier", "value": "gold"}]}], "backendRefs": backend("header")},
            ]}));
    let (table, report) = w.build();
    assert_eq!(report.routes[0].kind, RouteKind::Grpc);
    assert!(report.routes[0].parents[0].accepted.is_ok());
    let call = |path: &str, headers: &[(&str, &str)]| {
        route_method(&table, 80, "POST", "grpc.example.com", path, headers)
    };
    for (path, headers, want) in [
        ("/echo.Echo/Say", &[][..], "infra/exact"),
        ("/echo.Echo/Say", &[("x-tier", "gold")][..], "infra/header"),
        ("/echo.Echo/Other", &[][..], "infra/service"),
        // The service's characters outrank a method-only match.
        ("/echo.Echo/Ping", &[][..], "infra/service"),
        ("/other.Svc/Ping", &[][..], "infra/method"),
        ("/re.abc/GetThing", &[][..], "infra/regex"),
        ("/re.ABC/GetThing", &[][..], "infra/fallback"),
        ("/echo.EchoMore/Say", &[][..], "infra/fallback"),
    ] {
        assert_eq!(call(path, headers), want, "{path} {headers:?}");
    }
    // Backends of a GRPCRoute speak HTTP/2 whatever the port's appProtocol.
    let view_headers = hyper::HeaderMap::new();
    let view = RequestView {
        host: "grpc.example.com",
        path: "/echo.Echo/Say",
        query: None,
        method: "POST",
        headers: &view_headers,
    };
    let e = table.ports[&80].route(&view).unwrap();
    assert!(e.action.backends[0].target.as_ref().unwrap().h2c);
    // Supported kinds of an HTTP listener: both route kinds.
    let kinds: Vec<&str> = report.gateways[0].listeners[0]
        .supported_kinds
        .iter()
        .map(|k| k.kind.as_str())
        .collect();
    assert_eq!(kinds, ["HTTPRoute", "GRPCRoute"]);
}

/// An HTTPRoute and a GRPCRoute with intersecting hostnames on one listener: the older
/// is accepted, the other is Accepted False; disjoint hostnames coexist. A cross-namespace
/// backend of a GRPCRoute needs a grant from GRPCRoutes, not HTTPRoutes.
#[test]
fn grpc_and_http_routes_never_share_a_hostname() {
    let mut w = World::new()
        .gateway("infra", "gw", json!([{"name": "http", "protocol": "HTTP", "port": 80,
            "allowedRoutes": {"namespaces": {"from": "All"}}}]))
        .service("infra", "web", &["10.0.0.1"])
        .service("apps", "grpc", &["10.0.0.2"])
        .route("infra", "web", json!({"parentRefs": [{"name": "gw"}], "hostnames": ["*.example.com"], "rules": [{"backendRefs": backend("web")}]}))
        .grpc_route("infra", "late", json!({"parentRefs": [{"name": "gw"}], "hostnames": ["grpc.example.com"], "rules": [{"backendRefs": backend("web")}]}))
        .grpc_route("infra", "apart", json!({"parentRefs": [{"name": "gw"}], "hostnames": ["grpc.example.org"], "rules": [{"backendRefs": [{"name": "grpc", "namespace": "apps", "port": 8080}]}]}));
    let verdicts = |w: &World| {
        let (table, report) = w.build();
        let v: Vec<(String, Option<&'static str>, Option<&'static str>)> = report
            .routes
            .iter()
            .map(|r| {
                let p = &r.parents[0];
                (
                    r.name.clone(),
                    p.accepted.as_ref().err().map(|e| e.0),
                    p.resolved.as_ref().err().map(|e| e.0),
                )
            })
            .collect();
        (v, report.gateways[0].listeners[0].attached_routes, table)
    };
    let (v, attached, table) = verdicts(&w);
    assert_eq!(
        v,
        [
            ("web".to_string(), None, None),
            ("late".to_string(), Some("HostnameConflict"), None),
            ("apart".to_string(), None, Some("RefNotPermitted")),
        ]
    );
    assert_eq!(attached, 2);
    assert_eq!(
        route_to(&table, 80, "grpc.example.com", "/", &[]),
        "infra/web"
    );
    // A grant from HTTPRoutes does not cover a GRPCRoute; one from GRPCRoutes does.
    w.grants.push(obj(json!({
        "metadata": {"name": "g", "namespace": "apps"},
        "spec": {"from": [{"group": GROUP, "kind": "HTTPRoute", "namespace": "infra"}],
                 "to": [{"group": "", "kind": "Service"}]},
    })));
    assert_eq!(verdicts(&w).0[2].2, Some("RefNotPermitted"));
    w.grants[0].spec.from[0].kind = "GRPCRoute".into();
    assert_eq!(verdicts(&w).0[2], ("apart".to_string(), None, None));
}

/// The SAN of the certificate port 443 presents for `sni`.
fn served_name(table: &Table, sni: Option<&str>) -> Option<String> {
    let cert = table.ports[&443].tls.as_ref()?.resolve(sni)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.cert[0].as_ref()).unwrap();
    let san = parsed.subject_alternative_name().unwrap().unwrap();
    Some(san.value.general_names[0].to_string())
}

/// An Ingress with `tls` is served on 443 too, behind its Secrets' certificates by SNI
/// (beside a Gateway's HTTPS listener there, whose own names keep their certificate);
/// a missing Secret leaves its hosts without one; port 443 as a plain HTTP listener
/// serves no Ingress TLS.
#[test]
fn ingress_tls_serves_on_443_by_sni() {
    let ingress_class = || -> k8s_openapi::api::networking::v1::IngressClass {
        obj(
            json!({"metadata": {"name": "skiff", "annotations": {crate::ingress::DEFAULT_CLASS_ANNOTATION: "true"}},
                   "spec": {"controller": crate::ingress::INGRESS_CONTROLLER}}),
        )
    };
    let ingress = json!({"metadata": {"name": "shop", "namespace": "apps"}, "spec": {
        "tls": [{"hosts": ["shop.example.com", "*.shop.example.com"], "secretName": "shop-tls"},
                {"hosts": ["gone.example.com"], "secretName": "no-such-secret"}],
        "rules": [{"host": "shop.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 8080}}}}]}}]}});
    let mut w = World::new()
        .gateway(
            "infra",
            "gw",
            json!([{"name": "https", "protocol": "HTTPS", "port": 443,
            "hostname": "gw.example.com", "tls": {"certificateRefs": [{"name": "gw-cert"}]}}]),
        )
        .service("apps", "web", &["10.0.0.1"]);
    w.ingress_classes.push(ingress_class());
    w.ingresses.push(obj(ingress.clone()));
    w.secrets
        .push(tls_secret("apps", "shop-tls", "shop.example.com"));
    w.secrets
        .push(tls_secret("infra", "gw-cert", "gw.example.com"));
    let (table, report) = w.build();
    assert_eq!(report.ingresses, [("apps".to_string(), "shop".to_string())]);
    for port in [80, 443] {
        assert_eq!(
            route_to(&table, port, "shop.example.com", "/x", &[]),
            "apps/web"
        );
    }
    let shop = Some("DNSName(shop.example.com)".to_string());
    assert_eq!(served_name(&table, Some("shop.example.com")), shop);
    assert_eq!(served_name(&table, Some("a.shop.example.com")), shop);
    assert_eq!(
        served_name(&table, Some("gw.example.com")),
        Some("DNSName(gw.example.com)".into())
    );
    // gone.example.com's Secret is missing: no certificate of its own (the first is
    // offered, whose name the client refuses).
    assert_ne!(served_name(&table, Some("gone.example.com")), None);
    assert_ne!(
        served_name(&table, Some("gone.example.com")),
        Some("DNSName(gone.example.com)".into())
    );

    // Without tls: port 80 only.
    let mut plain = World::new().service("apps", "web", &["10.0.0.1"]);
    plain.ingress_classes.push(ingress_class());
    let mut no_tls = ingress.clone();
    no_tls["spec"].as_object_mut().unwrap().remove("tls");
    plain.ingresses.push(obj(no_tls));
    let (table, _) = plain.build();
    assert_eq!(table.ports.keys().copied().collect::<Vec<_>>(), [80]);

    // Port 443 is a Gateway's plain HTTP listener: the Ingress serves on 80 only.
    let mut taken = World::new()
        .gateway(
            "infra",
            "gw",
            json!([{"name": "h", "protocol": "HTTP", "port": 443}]),
        )
        .service("apps", "web", &["10.0.0.1"]);
    taken.ingress_classes.push(ingress_class());
    taken.ingresses.push(obj(ingress));
    taken
        .secrets
        .push(tls_secret("apps", "shop-tls", "shop.example.com"));
    let (table, _) = taken.build();
    assert!(table.ports[&443].tls.is_none());
    assert_eq!(route_to(&table, 443, "shop.example.com", "/", &[]), "404");
    assert_eq!(
        route_to(&table, 80, "shop.example.com", "/", &[]),
        "apps/web"
    );
}
