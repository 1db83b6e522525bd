//! End to end: the Gateway API built in. A real `skiff server` with its node (root, runc)
//! in a network namespace of its own; the article's 06-gateway.yaml and 07-httproutes.yaml
//! applied with real kubectl after one GatewayClass `nginx` pointing at skiff's
//! controller; traffic sent with curl from the host side of the node (its address
//! 192.168.254.1) to busybox httpd pods behind Services.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::process::Output;
use std::time::Duration;

/// A gRPC message of one string (prost's derive: no codegen).
#[derive(Clone, PartialEq, prost::Message)]
struct Say {
    #[prost(string, tag = "1")]
    text: String,
}

/// The unary method every path of [`grpc_server`] serves: `"{name}: {text}"`.
struct Echo(&'static str);

impl tonic::server::UnaryService<Say> for Echo {
    type Response = Say;
    type Future = std::future::Ready<Result<tonic::Response<Say>, tonic::Status>>;
    fn call(&mut self, req: tonic::Request<Say>) -> Self::Future {
        let text = req.into_inner().text;
        std::future::ready(Ok(tonic::Response::new(Say {
            text: format!("{}: {text}", self.0),
        })))
    }
}

/// Runs `f` on a thread of its own inside network namespace `netns` (a network namespace
/// is per thread), with a single-threaded runtime.
fn in_netns_thread<F, Fut>(netns: &str, f: F) -> std::thread::JoinHandle<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future,
    Fut::Output: Send + 'static,
{
    let ns = std::fs::File::open(format!("/run/netns/{netns}")).expect("open the netns");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid descriptor changes only this thread's namespace.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f())
    })
}

/// A gRPC server (HTTP/2 only) on the node's address in `netns`, its port returned; it
/// serves until the test process ends.
fn grpc_server(netns: &str, name: &'static str) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    in_netns_thread(netns, move || async move {
        let listener = tokio::net::TcpListener::bind((node::NODE_IP, 0))
            .await
            .expect("bind the gRPC server");
        tx.send(listener.local_addr().unwrap().port()).unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        let codec = tonic_prost::ProstCodec::<Say, Say>::default();
                        let mut grpc = tonic::server::Grpc::new(codec);
                        Ok::<_, std::convert::Infallible>(grpc.unary(Echo(name), req).await)
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    rx.recv().expect("the gRPC server's port")
}

/// One unary gRPC call of `path` with `authority` through the gateway on the node's
/// port 80, from inside `netns`.
fn grpc_call(
    netns: &str,
    authority: &'static str,
    path: &'static str,
) -> Result<String, (tonic::Code, String)> {
    in_netns_thread(netns, move || async move {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node::NODE_IP))
            .unwrap()
            .origin(format!("http://{authority}").parse().unwrap())
            .connect()
            .await
            .map_err(|e| (tonic::Code::Unavailable, e.to_string()))?;
        let mut client = tonic::client::Grpc::new(channel);
        client
            .ready()
            .await
            .map_err(|e| (tonic::Code::Unavailable, e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<Say, Say>::default();
        let req = tonic::Request::new(Say { text: "hi".into() });
        client
            .unary(
                req,
                hyper::http::uri::PathAndQuery::from_static(path),
                codec,
            )
            .await
            .map(|r| r.into_inner().text)
            .map_err(|s| (s.code(), s.message().to_string()))
    })
    .join()
    .expect("gRPC client thread")
}

/// skiff's controllerName (crates/skiff-gateway/src/install.rs).
const CONTROLLER: &str = "skiff.dev/gateway-controller";

/// A Deployment of one busybox httpd pod answering its app name on every path under
/// `/`, `/api/` and `/v2/`, and a Service `name` on port 80 in front of it.
fn web(name: &str, ns: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: web
        image: busybox:test
        command: ["sh", "-c", "for d in /www /www/api /www/v2; do mkdir -p $d; echo {name} > $d/index.html; done; exec httpd -f -p 8080 -h /www"]
        ports:
        - name: http
          containerPort: 8080
        readinessProbe:
          tcpSocket:
            port: 8080
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}
spec:
  selector:
    app: {name}
  ports:
  - name: http
    port: 80
    targetPort: http
"#
    )
}

/// Routes beyond the article's: path, header, redirect, rewrite, canary, a missing Service
/// and a Service in another namespace.
const ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: shop
spec:
  parentRefs:
  - name: main-gateway
  hostnames: ["shop.example.com"]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api}
    backendRefs:
    - {name: api, port: 80}
  - matches:
    - headers:
      - {name: x-version, value: "2"}
    backendRefs:
    - {name: web-v2, port: 80}
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add:
        - {name: x-served-by, value: skiff}
  - matches:
    - path: {type: PathPrefix, value: /old}
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        statusCode: 301
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
  - matches:
    - path: {type: PathPrefix, value: /legacy}
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}
    backendRefs:
    - {name: web-v2, port: 80}
  - backendRefs:
    - {name: web-v1, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: canary
spec:
  parentRefs:
  - name: main-gateway
  hostnames: ["canary.example.com"]
  rules:
  - backendRefs:
    - {name: web-v1, port: 80, weight: 90}
    - {name: web-v2, port: 80, weight: 10}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: missing
spec:
  parentRefs:
  - name: main-gateway
  hostnames: ["missing.example.com"]
  rules:
  - backendRefs:
    - {name: no-such-service, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: elsewhere
spec:
  parentRefs:
  - name: main-gateway
  hostnames: ["elsewhere.example.com"]
  rules:
  - backendRefs:
    - {name: remote, namespace: other, port: 80}
"#;

const GRANT: &str = r#"
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: routes-from-default
  namespace: other
spec:
  from:
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}
  to:
  - {group: "", kind: Service, name: remote}
"#;

/// An HTTPS Gateway: one listener with a certificate Secret, one whose Secret is missing,
/// and a route through the first.
const TLS_GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: secure
spec:
  gatewayClassName: skiff
  listeners:
  - name: https
    protocol: HTTPS
    port: 443
    hostname: "*.secure.example.com"
    tls:
      certificateRefs:
      - name: secure-cert
  - name: bad-cert
    protocol: HTTPS
    port: 443
    hostname: other.example.com
    tls:
      certificateRefs:
      - name: no-such-secret
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: secure-app
spec:
  parentRefs:
  - name: secure
    sectionName: https
  hostnames: ["app.secure.example.com"]
  rules:
  - backendRefs:
    - {name: web-v1, port: 80}
"#;

/// An Ingress as Helm charts ship them: no class, a named Service port, two paths.
const INGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: podinfo
spec:
  rules:
  - host: podinfo.example.com
    http:
      paths:
      - path: /
        pathType: ImplementationSpecific
        backend:
          service:
            name: web-v2
            port:
              name: http
      - path: /api
        pathType: Prefix
        backend:
          service:
            name: api
            port:
              number: 80
"#;

/// A gRPC backend outside the cluster (a selectorless Service and its EndpointSlice on the
/// node's address), a GRPCRoute to its `echo.Echo/Say`, and an HTTPRoute that, being
/// older, keeps a hostname the later GRPCRoute `late` also names.
fn grpc_routes(port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  ports:
  - {{port: 50051}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-1
  labels:
    kubernetes.io/service-name: echo
addressType: IPv4
ports:
- {{port: {port}}}
endpoints:
- addresses: ["{}"]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: echo
spec:
  parentRefs:
  - name: main-gateway
  hostnames: ["grpc.example.com"]
  rules:
  - matches:
    - method: {{service: echo.Echo, method: Say}}
    backendRefs:
    - {{name: echo, port: 50051}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: late
spec:
  parentRefs:
  - name: main-gateway
  hostnames: ["canary.example.com"]
  rules:
  - backendRefs:
    - {{name: echo, port: 50051}}
"#,
        node::NODE_IP
    )
}

/// An Ingress with `tls`: served on 443 with its Secret's certificate, and on 80.
const TLS_INGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop-tls
spec:
  tls:
  - hosts: ["shop.example.net"]
    secretName: shop-cert
  rules:
  - host: shop.example.net
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web-v2
            port:
              number: 80
"#;

fn cluster() -> node::NodeCluster {
    let curl = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("curl").is_file()))
        .unwrap_or(false);
    let why = node::skip_reason().or_else(|| (!curl).then(|| "needs curl".to_string()));
    if let Some(why) = why {
        // Under CI a missing prerequisite is a failure, never a silent pass.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "gateway e2e cannot run: {why}"
        );
        eprintln!("skipped: {why}");
        std::process::exit(0);
    }
    node::NodeCluster::start()
}

/// `curl` run on the host side of the node.
fn curl(c: &node::NodeCluster, args: &[&str]) -> Output {
    c.in_netns("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .expect("run curl")
}

/// Body of `GET http://192.168.254.1{path}` with `Host: host` (and headers), or the
/// status line when not 200.
fn get(c: &node::NodeCluster, host: &str, path: &str, headers: &[&str]) -> String {
    let url = format!("http://{}{path}", node::NODE_IP);
    let host = format!("Host: {host}");
    let mut args = vec!["-H", host.as_str(), "-w", "%{http_code}"];
    for h in headers {
        args.extend(["-H", h]);
    }
    args.push(&url);
    let out = curl(c, &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match text.strip_suffix("200") {
        Some(body) => body.trim().to_string(),
        None => format!(
            "status {}",
            text.get(text.len().saturating_sub(3)..).unwrap_or("")
        ),
    }
}

/// A condition of an HTTPRoute's first parent: (status, reason).
fn route_condition(c: &node::NodeCluster, route: &str, type_: &str) -> Option<(String, String)> {
    let out = c.kubectl_output(&["get", "httproute", route, "-o", "json"], None);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let parent = &r["status"]["parents"][0];
    assert_eq!(parent["controllerName"], CONTROLLER);
    let cond = parent["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .clone();
    Some((
        cond["status"].as_str()?.to_string(),
        cond["reason"].as_str()?.to_string(),
    ))
}

/// Keep-alive GETs through the gateway with `Host: host`, in batches of 250 (one curl
/// each), until `done` is set and one more batch has run; returns how many answered
/// `want` and what the others got.
fn load_until(
    c: &node::NodeCluster,
    host: &str,
    want: &str,
    done: &std::sync::atomic::AtomicBool,
) -> (usize, Vec<String>) {
    let url = format!("http://{}/", node::NODE_IP);
    let host = format!("Host: {host}");
    let (mut served, mut failed) = (0, Vec::new());
    loop {
        let last = done.load(std::sync::atomic::Ordering::Relaxed);
        let mut args = vec!["-sS", "--max-time", "60", "-H", host.as_str()];
        for _ in 0..250 {
            args.push(&url);
        }
        let out = c.in_netns("curl").args(&args).output().expect("run curl");
        let body = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = body.lines().collect();
        served += lines.iter().filter(|l| **l == want).count();
        failed.extend(lines.iter().filter(|l| **l != want).map(|l| l.to_string()));
        if lines.len() != 250 || !out.status.success() {
            failed.push(format!(
                "{} answers of 250: {}",
                lines.len(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        if last {
            return (served, failed);
        }
    }
}

#[test]
fn gateway_api_is_built_in_and_routes_the_articles_hosts() {
    let c = cluster();
    c.load_busybox("busybox:test");
    let long = Duration::from_secs(90);

    // Built in: the standard-channel CRDs, and GatewayClass skiff accepted by skiff.
    c.wait_for("GatewayClass skiff", long, || {
        c.kubectl_output(&["get", "gatewayclass", "skiff"], None)
            .status
            .success()
            .then_some(())
    });
    c.kubectl(&[
        "wait",
        "--for=condition=Accepted",
        "gatewayclass/skiff",
        "--timeout=60s",
    ]);
    let crd = c.json(&["get", "crd", "httproutes.gateway.networking.k8s.io"]);
    assert_eq!(
        crd["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"],
        "v1.6.1"
    );
    let class = c.json(&["get", "gatewayclass", "skiff"]);
    assert_eq!(class["spec"]["controllerName"], CONTROLLER);

    // The walkthrough's one step: a class named as the article's YAML expects.
    c.kubectl_in(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: nginx\nspec:\n  controllerName: {CONTROLLER}\n"
        ),
    );
    c.kubectl(&["create", "namespace", "other"]);
    for (name, ns) in [
        ("collector", "default"),
        ("dashboard", "default"),
        ("api", "default"),
        ("web-v1", "default"),
        ("web-v2", "default"),
        ("remote", "other"),
    ] {
        c.kubectl_in(&["apply", "-f", "-"], &web(name, ns));
    }
    for manifest in ["06-gateway.yaml", "07-httproutes.yaml"] {
        let path = common::seed_manifest(manifest);
        c.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    }
    c.kubectl_in(&["apply", "-f", "-"], ROUTES);
    c.kubectl(&[
        "wait",
        "--for=condition=Programmed",
        "gateway/main-gateway",
        "--timeout=60s",
    ]);
    c.kubectl(&[
        "wait",
        "--for=condition=Accepted",
        "gatewayclass/nginx",
        "--timeout=30s",
    ]);
    for (name, ns) in [
        ("collector", "default"),
        ("dashboard", "default"),
        ("api", "default"),
        ("web-v1", "default"),
        ("web-v2", "default"),
        ("remote", "other"),
    ] {
        c.kubectl(&[
            "rollout",
            "status",
            &format!("deploy/{name}"),
            "-n",
            ns,
            "--timeout=90s",
        ]);
    }

    // kubectl get gateway: upstream's printer columns, with the node's address.
    let table = c.kubectl(&["get", "gateway", "main-gateway"]);
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &row[..4],
        ["main-gateway", "nginx", node::NODE_IP, "True"],
        "{table}"
    );
    let gw = c.json(&["get", "gateway", "main-gateway"]);
    let listener = &gw["status"]["listeners"][0];
    assert_eq!(listener["name"], "http");
    assert_eq!(listener["attachedRoutes"], 6, "{gw:#}");

    // The article: hostnames pick the Service.
    c.wait_for("collector through the gateway", long, || {
        (get(&c, "collector.example.com", "/", &[]) == "collector").then_some(())
    });
    c.wait_for("dashboard through the gateway", long, || {
        (get(&c, "dashboard.example.com", "/", &[]) == "dashboard").then_some(())
    });
    assert_eq!(
        route_condition(&c, "collector-route", "Accepted"),
        Some(("True".into(), "Accepted".into()))
    );
    assert_eq!(
        route_condition(&c, "collector-route", "ResolvedRefs"),
        Some(("True".into(), "ResolvedRefs".into()))
    );

    // Path and header routing, a response header, a redirect, a rewrite.
    c.wait_for("shop routes", long, || {
        (get(&c, "shop.example.com", "/api/", &[]) == "api").then_some(())
    });
    assert_eq!(get(&c, "shop.example.com", "/", &[]), "web-v1");
    assert_eq!(get(&c, "shop.example.com", "/v2/", &[]), "web-v1");
    assert_eq!(
        get(&c, "shop.example.com", "/", &["x-version: 2"]),
        "web-v2"
    );
    let head = curl(
        &c,
        &[
            "-i",
            "-H",
            "Host: shop.example.com",
            "-H",
            "x-version: 2",
            &format!("http://{}/", node::NODE_IP),
        ],
    );
    let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
    assert!(head.contains("x-served-by: skiff"), "{head}");
    let redirect = curl(
        &c,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "-H",
            "Host: shop.example.com",
            &format!("http://{}/old/page?x=1", node::NODE_IP),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&redirect.stdout),
        "301 https://shop.example.com/new/page?x=1"
    );
    // /legacy/ becomes /v2/ on web-v2 (httpd serves /v2/index.html there).
    assert_eq!(get(&c, "shop.example.com", "/legacy/", &[]), "web-v2");

    // No route: 404. A route to a missing Service: 500 and ResolvedRefs False.
    assert_eq!(get(&c, "nothing.example.com", "/", &[]), "status 404");
    assert_eq!(get(&c, "missing.example.com", "/", &[]), "status 500");
    c.wait_for("BackendNotFound", long, || {
        (route_condition(&c, "missing", "ResolvedRefs")
            == Some(("False".into(), "BackendNotFound".into())))
        .then_some(())
    });
    // A broken route takes nothing else down.
    assert_eq!(get(&c, "dashboard.example.com", "/", &[]), "dashboard");

    // Across namespaces only with a ReferenceGrant.
    assert_eq!(get(&c, "elsewhere.example.com", "/", &[]), "status 500");
    assert_eq!(
        route_condition(&c, "elsewhere", "ResolvedRefs"),
        Some(("False".into(), "RefNotPermitted".into()))
    );
    c.kubectl_in(&["apply", "-f", "-"], GRANT);
    c.wait_for("the granted route", long, || {
        (get(&c, "elsewhere.example.com", "/", &[]) == "remote").then_some(())
    });
    c.wait_for("ResolvedRefs after the grant", long, || {
        (route_condition(&c, "elsewhere", "ResolvedRefs")
            == Some(("True".into(), "ResolvedRefs".into())))
        .then_some(())
    });

    // Status settles: nothing is rewritten while traffic flows (an unchanged condition
    // keeps its time, so the controller has nothing to write).
    let versions = || {
        [
            "gateway/main-gateway",
            "httproute/canary",
            "httproute/missing",
            "gatewayclass/nginx",
        ]
        .map(|o| c.kubectl(&["get", o, "-o", "jsonpath={.metadata.resourceVersion}"]))
    };
    let before = versions();

    // A 90/10 canary over 1,000 keep-alive requests: within 2 points.
    let url = format!("http://{}/", node::NODE_IP);
    let mut args = vec!["-H", "Host: canary.example.com"];
    for _ in 0..1000 {
        args.push(&url);
    }
    let out = curl(&c, &args);
    let body = String::from_utf8_lossy(&out.stdout);
    let v1 = body.lines().filter(|l| *l == "web-v1").count();
    let v2 = body.lines().filter(|l| *l == "web-v2").count();
    assert_eq!(v1 + v2, 1000, "{}", String::from_utf8_lossy(&out.stderr));
    assert!((80..=120).contains(&v2), "canary got {v2} of 1000");
    assert_eq!(versions(), before, "status rewritten with nothing changed");

    // Editing the route under keep-alive load (all to v2, then all to v1) fails no request:
    // the table is swapped, never torn down.
    let mut args = vec!["-H", "Host: canary.example.com"];
    for _ in 0..4000 {
        args.push(&url);
    }
    let load = c
        .in_netns("curl")
        .args(["-sS", "--max-time", "60"])
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn curl");
    for weights in [(0, 100), (100, 0)] {
        let patch = format!(
            r#"[{{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":{}}},{{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":{}}}]"#,
            weights.0, weights.1
        );
        c.kubectl(&["patch", "httproute", "canary", "--type=json", "-p", &patch]);
    }
    let out = load.wait_with_output().expect("curl under load");
    let body = String::from_utf8_lossy(&out.stdout);
    let served: Vec<&str> = body.lines().collect();
    assert_eq!(
        served.len(),
        4000,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        served.iter().all(|l| *l == "web-v1" || *l == "web-v2"),
        "a request failed while the route changed"
    );
    c.wait_for("the last weights in effect", long, || {
        (get(&c, "canary.example.com", "/", &[]) == "web-v1").then_some(())
    });

    // A rolling update of web-v1 (all of the canary's traffic now) under keep-alive load
    // through the gateway fails no request: the new pod is an endpoint before the old one
    // leaves, and a refused connection is retried on the next endpoint.
    let done = std::sync::atomic::AtomicBool::new(false);
    let (served, failed) = std::thread::scope(|s| {
        let load = s.spawn(|| load_until(&c, "canary.example.com", "web-v1", &done));
        c.kubectl(&["rollout", "restart", "deploy/web-v1"]);
        c.kubectl(&["rollout", "status", "deploy/web-v1", "--timeout=90s"]);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        load.join().expect("load thread")
    });
    assert!(served >= 500, "only {served} requests during the rollout");
    assert_eq!(
        failed,
        Vec::<String>::new(),
        "requests failed during the rollout"
    );

    // HTTPS: a Secret's certificate picked by SNI; a listener whose Secret is missing is
    // not Programmed, with the reason, and takes nothing else down.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["*.secure.example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (crt_file, key_file) = (c.dir.path().join("tls.crt"), c.dir.path().join("tls.key"));
    std::fs::write(&crt_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    c.kubectl(&[
        "create",
        "secret",
        "tls",
        "secure-cert",
        &format!("--cert={}", crt_file.display()),
        &format!("--key={}", key_file.display()),
    ]);
    c.kubectl_in(&["apply", "-f", "-"], TLS_GATEWAY);
    c.kubectl(&[
        "wait",
        "--for=condition=Programmed",
        "gateway/secure",
        "--timeout=60s",
    ]);
    let secure = c.json(&["get", "gateway", "secure"]);
    let bad = &secure["status"]["listeners"][1];
    assert_eq!(bad["name"], "bad-cert");
    let cond = |l: &serde_json::Value, t: &str| {
        l["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .map(|c| {
                (
                    c["status"].as_str().unwrap().to_string(),
                    c["reason"].as_str().unwrap().to_string(),
                )
            })
    };
    assert_eq!(
        cond(bad, "ResolvedRefs"),
        Some(("False".into(), "InvalidCertificateRef".into())),
        "{secure:#}"
    );
    assert_eq!(
        cond(bad, "Programmed"),
        Some(("False".into(), "Invalid".into()))
    );
    assert_eq!(
        cond(&secure["status"]["listeners"][0], "Programmed"),
        Some(("True".into(), "Programmed".into()))
    );
    let resolve = format!("app.secure.example.com:443:{}", node::NODE_IP);
    c.wait_for("HTTPS through the gateway", long, || {
        let out = curl(
            &c,
            &[
                "--resolve",
                &resolve,
                "--cacert",
                crt_file.to_str().unwrap(),
                "https://app.secure.example.com/",
            ],
        );
        (String::from_utf8_lossy(&out.stdout).trim() == "web-v1").then_some(())
    });

    // Ingress: the default IngressClass skiff serves an Ingress naming no class on the
    // same port, and its status names the node.
    let class = c.json(&["get", "ingressclass", "skiff"]);
    assert_eq!(
        class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );
    c.kubectl_in(&["apply", "-f", "-"], INGRESS);
    c.wait_for("the Ingress through the gateway", long, || {
        (get(&c, "podinfo.example.com", "/", &[]) == "web-v2").then_some(())
    });
    assert_eq!(get(&c, "podinfo.example.com", "/api/", &[]), "api");
    c.wait_for("Ingress status", long, || {
        let ing = c.json(&["get", "ingress", "podinfo"]);
        (ing["status"]["loadBalancer"]["ingress"][0]["ip"] == node::NODE_IP).then_some(())
    });

    // Ingress TLS: its Secret's certificate on 443 by SNI beside the Gateway's HTTPS
    // listeners there (which keep the names they match), and plain HTTP on 80 as well.
    let shop_key = rcgen::KeyPair::generate().unwrap();
    let shop_cert = rcgen::CertificateParams::new(vec!["shop.example.net".to_string()])
        .unwrap()
        .self_signed(&shop_key)
        .unwrap();
    let (shop_crt, shop_key_file) = (c.dir.path().join("shop.crt"), c.dir.path().join("shop.key"));
    std::fs::write(&shop_crt, shop_cert.pem()).unwrap();
    std::fs::write(&shop_key_file, shop_key.serialize_pem()).unwrap();
    c.kubectl(&[
        "create",
        "secret",
        "tls",
        "shop-cert",
        &format!("--cert={}", shop_crt.display()),
        &format!("--key={}", shop_key_file.display()),
    ]);
    c.kubectl_in(&["apply", "-f", "-"], TLS_INGRESS);
    let resolve = format!("shop.example.net:443:{}", node::NODE_IP);
    c.wait_for("the TLS Ingress over HTTPS", long, || {
        let out = curl(
            &c,
            &[
                "--resolve",
                &resolve,
                "--cacert",
                shop_crt.to_str().unwrap(),
                "https://shop.example.net/",
            ],
        );
        (String::from_utf8_lossy(&out.stdout).trim() == "web-v2").then_some(())
    });
    assert_eq!(get(&c, "shop.example.net", "/", &[]), "web-v2");
    // The Gateway's HTTPS listener still answers its own names with its own certificate.
    let out = curl(
        &c,
        &[
            "--resolve",
            &format!("app.secure.example.com:443:{}", node::NODE_IP),
            "--cacert",
            crt_file.to_str().unwrap(),
            "https://app.secure.example.com/",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "web-v1");

    // GRPCRoute: a real gRPC call (tonic) through the gateway to a gRPC server spoken to
    // in h2c; an unrouted method is UNIMPLEMENTED, in gRPC's form.
    let grpc_port = grpc_server(&c.netns, "echo");
    c.kubectl_in(&["apply", "-f", "-"], &grpc_routes(grpc_port));
    let netns = c.netns.clone();
    c.wait_for("a gRPC call through the gateway", long, || {
        (grpc_call(&netns, "grpc.example.com", "/echo.Echo/Say") == Ok("echo: hi".into()))
            .then_some(())
    });
    assert_eq!(
        grpc_call(&netns, "grpc.example.com", "/echo.Echo/Other"),
        Err((tonic::Code::Unimplemented, "no route matches".into()))
    );
    let grpc_condition = |route: &str, type_: &str| {
        let r = c.json(&["get", "grpcroute", route]);
        r["status"]["parents"][0]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|x| x["type"] == type_))
            .map(|x| {
                (
                    x["status"].as_str().unwrap().to_string(),
                    x["reason"].as_str().unwrap().to_string(),
                )
            })
    };
    c.wait_for("GRPCRoute status", long, || {
        (grpc_condition("echo", "Accepted") == Some(("True".into(), "Accepted".into()))
            && grpc_condition("echo", "ResolvedRefs")
                == Some(("True".into(), "ResolvedRefs".into())))
        .then_some(())
    });
    // The older HTTPRoute keeps canary.example.com; the GRPCRoute naming it is refused.
    c.wait_for("the conflicting GRPCRoute refused", long, || {
        (grpc_condition("late", "Accepted") == Some(("False".into(), "HostnameConflict".into())))
            .then_some(())
    });
    assert_eq!(get(&c, "canary.example.com", "/", &[]), "web-v1");

    // Access log lines.
    c.wait_for("an access log line", Duration::from_secs(5), || {
        c.log_text()
            .lines()
            .any(|l| l.contains("skiff_gateway::access") && l.contains("canary.example.com"))
            .then_some(())
    });
}
