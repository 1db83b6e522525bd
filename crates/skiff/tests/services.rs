//! End to end: Services on a real node (root only; skipped with a message otherwise), each
//! test in a network namespace of its own. Traffic goes through the real kernel rules the
//! proxy writes, DNS through the real cluster DNS server, pods are real containers.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The article's Deployment shape, on the busybox test image: each pod serves its own name
/// on 8080, is ready while it answers and no flag file named after it exists on the
/// host, and keeps
/// serving for 2 s after it is told to stop (preStop sleep), as a graceful server would.
const HELLO: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: 3
  selector:
    matchLabels:
      app: hello
  template:
    metadata:
      labels:
        app: hello
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: busybox:test
        command: ["sh", "-c", "hostname > /www/index.html; exec httpd -f -p 8080 -h /www"]
        ports:
        - name: http
          containerPort: 8080
        readinessProbe:
          exec:
            command: ["sh", "-c", "test ! -e /flags/$(hostname) && printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 127.0.0.1 8080 | grep -q 200"]
          periodSeconds: 1
        lifecycle:
          preStop:
            sleep:
              seconds: 2
        volumeMounts:
        - name: flags
          mountPath: /flags
      volumes:
      - name: flags
        hostPath:
          path: FLAGS
"#;

/// (ready, not ready) addresses of an Endpoints object.
fn addresses(c: &node::NodeCluster, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = c.kubectl_output(&["get", "endpoints", name, "-o", "json"], None);
    let ep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut ready = BTreeSet::new();
    let mut not_ready = BTreeSet::new();
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        for (key, set) in [
            ("addresses", &mut ready),
            ("notReadyAddresses", &mut not_ready),
        ] {
            for a in subset[key].as_array().into_iter().flatten() {
                set.insert(a["ip"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    (ready, not_ready)
}

/// The proxy's ruleset inside the cluster's network namespace (its DNAT targets).
fn proxy_targets(c: &node::NodeCluster) -> String {
    let out = c
        .in_netns("nft")
        .args(["list", "table", "ip", "skiff-proxy"])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Name -> IP of the running hello pods.
fn hello_pods(c: &node::NodeCluster) -> Vec<(String, String)> {
    let pods = c.json(&["get", "pods", "-l", "app=hello"]);
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| {
            Some((
                p["metadata"]["name"].as_str()?.to_string(),
                p["status"]["podIP"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Bodies of `n` requests to `ip:port` from the node; `None` for a failed request.
fn requests(c: &node::NodeCluster, ip: &str, port: u16, n: usize) -> Vec<Option<String>> {
    (0..n)
        .map(|_| c.http_get(ip, port, "/").map(|b| b.trim().to_string()))
        .collect()
}

#[test]
fn services_balance_over_ready_pods_and_follow_changes() {
    let c = node_cluster_or_skip!();
    c.load_busybox_with_getent("busybox:test");
    let flags = c.dir.path().join("flags");
    std::fs::create_dir_all(&flags).unwrap();

    // The article's Service, before anything is labelled app: hello: no endpoints, and a
    // connection to it is refused at once rather than hanging.
    let seed = std::fs::read_to_string(common::seed_manifest("04-service.yaml")).unwrap();
    c.kubectl_in(&["apply", "-f", "-"], &seed);
    let ip = c.kubectl(&["get", "svc", "hello", "-o", "jsonpath={.spec.clusterIP}"]);
    c.wait_for("empty Endpoints", Duration::from_secs(10), || {
        let out = c.kubectl_output(&["get", "endpoints", "hello"], None);
        String::from_utf8_lossy(&out.stdout)
            .contains("<none>")
            .then_some(())
    });
    let started = Instant::now();
    assert_eq!(c.http_get(&ip, 80, "/"), None);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a Service without endpoints must refuse, not time out ({:?})",
        started.elapsed()
    );

    // An address in the service range that no Service has is refused too.
    let started = Instant::now();
    assert_eq!(c.http_get("10.96.255.254", 80, "/"), None);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // From a pod as from the node: five tries take well under the 3 s one timeout would.
    let pod = r#"
apiVersion: v1
kind: Pod
metadata:
  name: refused
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:test
    command: ["sh", "-c", "s=$(date +%s); for i in 1 2 3 4 5; do nc -w 3 IP 80 </dev/null; done; echo ELAPSED=$(($(date +%s)-s)); echo DONE"]
"#;
    c.kubectl_in(&["apply", "-f", "-"], &pod.replace("IP", &ip));
    let logs = c.wait_logs("refused", "DONE", Duration::from_secs(60));
    assert_eq!(logs.matches("Connection refused").count(), 5, "{logs}");
    let elapsed: u64 = logs
        .lines()
        .find_map(|l| l.strip_prefix("ELAPSED="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(
        elapsed <= 1,
        "a pod waited {elapsed} s for 5 refusals: {logs}"
    );
    c.kubectl(&["delete", "pod", "refused", "--wait=false"]);

    let manifest = HELLO.replace("FLAGS", &flags.display().to_string());
    c.kubectl_in(&["apply", "-f", "-"], &manifest);
    c.kubectl(&["rollout", "status", "deploy/hello", "--timeout=90s"]);
    let pods = hello_pods(&c);
    assert_eq!(pods.len(), 3, "{pods:?}");
    let names: BTreeSet<String> = pods.iter().map(|p| p.0.clone()).collect();
    let ips: BTreeSet<String> = pods.iter().map(|p| p.1.clone()).collect();
    c.wait_for("3 ready endpoints", Duration::from_secs(10), || {
        (addresses(&c, "hello").0 == ips).then_some(())
    });
    let slices = c.json(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=hello",
    ]);
    let slice_ips: BTreeSet<String> = slices["items"][0]["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["addresses"][0].as_str().map(String::from))
        .collect();
    assert_eq!(slice_ips, ips, "{slices:#}");

    // `kubectl describe svc` lists them, from the EndpointSlices.
    let describe = c.kubectl(&["describe", "svc", "hello"]);
    for ip in &ips {
        assert!(describe.contains(&format!("{ip}:8080")), "{describe}");
    }

    // From the node, through the cluster IP: every pod answers, nothing fails.
    let bodies = requests(&c, &ip, 80, 60);
    assert!(bodies.iter().all(Option::is_some), "{bodies:?}");
    let seen: BTreeSet<String> = bodies.into_iter().flatten().collect();
    assert_eq!(seen, names, "60 requests should reach all 3 pods");

    // From inside a pod, by name: resolv.conf -> cluster DNS -> proxy -> pods.
    c.kubectl_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:test
    command: ["sh", "-c", "ip=$(getent hosts hello | cut -d' ' -f1); echo \"hello is $ip\" >&2; for i in $(seq 1 30); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 $ip 80 | tail -1 | grep . || echo FAIL; done; echo DONE"]
"#,
    );
    let logs = c.wait_logs("client", "DONE", Duration::from_secs(60));
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.starts_with("hello-") || *l == "FAIL")
        .collect();
    assert_eq!(lines.len(), 30, "{logs}");
    assert!(!logs.contains("FAIL"), "{logs}");
    let seen: BTreeSet<String> = lines.iter().map(|l| l.to_string()).collect();
    assert_eq!(
        seen, names,
        "requests from a pod should reach all 3 pods:\n{logs}"
    );

    // One pod's readiness fails: it leaves the endpoints and gets no more traffic.
    let (sick, sick_ip) = pods[0].clone();
    std::fs::write(flags.join(&sick), "").unwrap();
    c.wait_for("the unready pod to leave", Duration::from_secs(10), || {
        addresses(&c, "hello").1.contains(&sick_ip).then_some(())
    });
    // Endpoints is written before the EndpointSlice the proxy follows: wait for the data
    // plane itself to drop the pod, then no request may reach it.
    c.wait_for(
        "the proxy to drop the unready pod",
        Duration::from_secs(10),
        || (!proxy_targets(&c).contains(&format!("{sick_ip}:8080"))).then_some(()),
    );
    let bodies = requests(&c, &ip, 80, 40);
    assert!(bodies.iter().all(Option::is_some), "{bodies:?}");
    assert!(
        !bodies.iter().flatten().any(|b| *b == sick),
        "the unready pod {sick} still got traffic: {bodies:?}"
    );
    std::fs::remove_file(flags.join(&sick)).unwrap();
    c.wait_for("the pod to be ready again", Duration::from_secs(10), || {
        addresses(&c, "hello").0.contains(&sick_ip).then_some(())
    });

    // A pod is deleted under load: the ReplicaSet replaces it, no request fails.
    let load = node::Load::start(&c, &ip, 80);
    std::thread::sleep(Duration::from_millis(300));
    c.kubectl(&["delete", "pod", &pods[1].0, "--wait=false"]);
    std::thread::sleep(Duration::from_secs(4));
    let (total, failures) = load.finish();
    assert!(
        total > 20,
        "the load generator barely ran ({total} requests)"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed while a pod was deleted: {failures:?}",
        failures.len()
    );

    // A rolling update under load: zero failed requests.
    c.kubectl(&["rollout", "status", "deploy/hello", "--timeout=60s"]);
    let load = node::Load::start(&c, &ip, 80);
    c.kubectl(&["rollout", "restart", "deploy/hello"]);
    c.kubectl(&["rollout", "status", "deploy/hello", "--timeout=90s"]);
    std::thread::sleep(Duration::from_secs(1));
    let (total, failures) = load.finish();
    let after = hello_pods(&c);
    assert!(
        after.iter().all(|p| !names.contains(&p.0)),
        "the rollout should have replaced every pod: {after:?}"
    );
    assert!(
        total > 50,
        "the load generator barely ran ({total} requests)"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed during the rolling update: {failures:?}\nserver log:\n{}",
        failures.len(),
        c.log_text()
    );
    eprintln!("rolling update: {total} requests, 0 failed");

    // sessionAffinity ClientIP: one client, one pod.
    c.kubectl(&[
        "patch",
        "svc",
        "hello",
        "-p",
        r#"{"spec":{"sessionAffinity":"ClientIP"}}"#,
    ]);
    c.wait_for(
        "the proxy to keep affinity sets",
        Duration::from_secs(10),
        || proxy_targets(&c).contains("timeout 3h").then_some(()),
    );
    let bodies: BTreeSet<String> = requests(&c, &ip, 80, 20).into_iter().flatten().collect();
    assert_eq!(
        bodies.len(),
        1,
        "affinity should pin the client: {bodies:?}"
    );
}

#[test]
fn dns_names_headless_services_nodeports_and_load_balancers() {
    let c = node_cluster_or_skip!();
    c.load_busybox_with_getent("busybox:test");
    c.kubectl_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Service
metadata:
  name: hs
spec:
  clusterIP: None
  selector:
    app: db
  ports:
  - name: web
    port: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  labels:
    app: db
spec:
  hostname: db-0
  subdomain: hs
  containers:
  - name: web
    image: busybox:test
    command: ["sh", "-c", "exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata:
  name: front
spec:
  type: LoadBalancer
  selector:
    app: db
  ports:
  - name: http
    port: 8081
    targetPort: 8080
"#,
    );
    let pod = c.wait_pod("db-0", Duration::from_secs(60), |p| {
        p["status"]["podIP"].is_string()
            && p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
    });
    let pod_ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    let front_ip = c.kubectl(&["get", "svc", "front", "-o", "jsonpath={.spec.clusterIP}"]);

    // Cluster DNS, asked from the node at the kube-dns Service address (through the proxy).
    let lookup = |name: &str| -> String {
        let out = c
            .in_netns("busybox")
            .args(["nslookup", name, "10.96.0.10"])
            .output()
            .expect("busybox nslookup");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let answer = c.wait_for("DNS for the headless pod", Duration::from_secs(10), || {
        let a = lookup("db-0.hs.default.svc.cluster.local");
        a.contains(&pod_ip).then_some(a)
    });
    assert!(answer.contains(&pod_ip), "{answer}");
    let a = lookup("hs.default.svc.cluster.local");
    assert!(a.contains(&pod_ip), "headless name lists the pod: {a}");
    let a = lookup("front.default.svc.cluster.local");
    assert!(
        a.contains(&front_ip),
        "service name gives the cluster IP: {a}"
    );
    let a = lookup("kube-dns.kube-system.svc.cluster.local");
    assert!(a.contains("10.96.0.10"), "{a}");
    let dashed = pod_ip.replace('.', "-");
    let a = lookup(&format!("{dashed}.default.pod.cluster.local"));
    assert!(a.contains(&pod_ip), "pod A record: {a}");
    let a = lookup("nothere.default.svc.cluster.local");
    assert!(a.contains("NXDOMAIN"), "unknown names are NXDOMAIN: {a}");

    // Inside a pod, short names resolve through the search path.
    c.kubectl_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: asker
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:test
    command: ["sh", "-c", "cat /etc/resolv.conf; for n in front front.default front.default.svc db-0.hs; do getent hosts $n; ip=$(getent hosts $n | cut -d' ' -f1); printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 $ip 8081 | grep -q 'hello from skiff' && echo VIA-$n; done; echo DONE"]
"#,
    );
    let logs = c.wait_logs("asker", "DONE", Duration::from_secs(60));
    assert!(logs.contains("nameserver 10.96.0.10"), "{logs}");
    // (glibc's resolver, via getent: busybox's static applets cannot use NSS, so its
    // wget crashes on any name, even `http`; nc with numbers does not look anything up.)
    let resolved = |ip: &str, name: &str| {
        logs.lines()
            .any(|l| l.starts_with(&format!("{ip} ")) && l.ends_with(&format!(" {name}")))
    };
    assert!(
        resolved(&front_ip, "front.default.svc.cluster.local"),
        "short names resolve to the cluster IP: {logs}"
    );
    for name in ["front", "front.default", "front.default.svc"] {
        assert!(
            logs.contains(&format!("VIA-{name}\n")),
            "`{name}` should work: {logs}"
        );
    }
    assert!(
        resolved(&pod_ip, "db-0.hs.default.svc.cluster.local"),
        "the headless pod name resolves: {logs}"
    );

    // LoadBalancer: the node address is its external IP, and it answers there and on the
    // NodePort.
    let lb = c.wait_for("the load balancer status", Duration::from_secs(10), || {
        let ip = c.kubectl(&[
            "get",
            "svc",
            "front",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ]);
        (!ip.is_empty()).then_some(ip)
    });
    assert_eq!(lb, node::NODE_IP);
    let table = c.kubectl(&["get", "svc", "front"]);
    assert!(table.contains(node::NODE_IP), "EXTERNAL-IP column: {table}");
    let node_port: u16 = c
        .kubectl(&[
            "get",
            "svc",
            "front",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .parse()
        .unwrap();
    assert!(
        c.http_get(node::NODE_IP, 8081, "/").is_some(),
        "load balancer port"
    );
    assert!(
        c.http_get(node::NODE_IP, node_port, "/").is_some(),
        "node port"
    );
    assert!(c.http_get(&front_ip, 8081, "/").is_some(), "cluster IP");
}
