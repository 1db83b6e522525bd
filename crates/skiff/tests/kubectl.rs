//! End-to-end: a real `skiff server` driven by the real `kubectl`.

mod common;

use common::{seed_manifest, Cluster};

#[test]
fn server_writes_kubeconfig_and_is_ready_fast() {
    let c = Cluster::start();
    assert!(c.kubeconfig().exists());
    let version = c.kubectl(&["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(v["serverVersion"]["minor"], "33");
    let ns = c.kubectl(&["get", "ns", "-o", "name"]);
    for want in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(&format!("namespace/{want}")), "{ns}");
    }
}

#[test]
fn deployment_applies_with_upstream_defaults_and_reads_back_in_every_format() {
    let c = Cluster::start();
    let path = seed_manifest("03-deployment.yaml");
    let out = c.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    assert_eq!(out.trim(), "deployment.apps/collector created");
    let d = c.json(&["get", "deploy", "collector"]);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(
        d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        "25%"
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(d["metadata"]["generation"], 1);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
    let table = c.kubectl(&["get", "deploy"]);
    assert!(
        table.starts_with("NAME        READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{table}"
    );
    let wide = c.kubectl(&["get", "deploy", "-o", "wide"]);
    assert!(
        wide.contains("CONTAINERS   IMAGES         SELECTOR"),
        "{wide}"
    );
    assert!(wide.contains("collector:v2   app=collector"), "{wide}");
    let yaml = c.kubectl(&["get", "deploy", "collector", "-o", "yaml"]);
    assert!(yaml.contains("kind: Deployment") && yaml.contains("resourceVersion:"));
    assert_eq!(
        c.kubectl(&["get", "deploy", "-o", "name"]).trim(),
        "deployment.apps/collector"
    );
    let jp = c.kubectl(&[
        "get",
        "deploy",
        "collector",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(jp, "3");
    let cc = c.kubectl(&[
        "get",
        "deploy",
        "-o",
        "custom-columns=N:.metadata.name,R:.spec.replicas",
    ]);
    assert!(cc.contains("collector   3"), "{cc}");
}

#[test]
fn apply_twice_is_unchanged_and_a_changed_field_is_configured() {
    let c = Cluster::start();
    let path = seed_manifest("03-deployment.yaml");
    let path = path.to_str().unwrap();
    c.kubectl(&["apply", "-f", path]);
    assert_eq!(
        c.kubectl(&["apply", "-f", path]).trim(),
        "deployment.apps/collector unchanged"
    );
    let changed = std::fs::read_to_string(path)
        .unwrap()
        .replace("replicas: 3", "replicas: 5");
    assert_eq!(
        c.kubectl_in(&["apply", "-f", "-"], &changed).trim(),
        "deployment.apps/collector configured"
    );
    let d = c.json(&["get", "deploy", "collector"]);
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 2);
}

#[test]
fn every_seed_manifest_applies() {
    let c = Cluster::start();
    for (file, want) in [
        ("01-pod.yaml", "pod/collector created"),
        ("02-replicaset.yaml", "replicaset.apps/collector created"),
        ("03-deployment.yaml", "deployment.apps/collector created"),
        ("04-service.yaml", "service/hello created"),
        ("05-statefulset.yaml", "statefulset.apps/mystore created"),
        ("08-configmap.yaml", "configmap/collector-config created"),
        ("09-secret.yaml", "secret/collector-secrets created"),
    ] {
        let out = c.kubectl(&["apply", "-f", seed_manifest(file).to_str().unwrap()]);
        assert_eq!(out.trim(), want, "{file}");
    }
    // The Gateway API is built in (issue 16): the article's Gateway and routes apply as
    // they are.
    for (file, want) in [
        (
            "06-gateway.yaml",
            "gateway.gateway.networking.k8s.io/main-gateway created",
        ),
        (
            "07-httproutes.yaml",
            "httproute.gateway.networking.k8s.io/collector-route created\nhttproute.gateway.networking.k8s.io/dashboard-route created",
        ),
    ] {
        let out = c.kubectl(&["apply", "-f", seed_manifest(file).to_str().unwrap()]);
        assert_eq!(out.trim(), want, "{file}");
    }
    let svc = c.json(&["get", "svc", "hello"]);
    let ip = svc["spec"]["clusterIP"].as_str().unwrap();
    assert!(ip.starts_with("10.96."), "{ip}");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
    let secret = c.json(&["get", "secret", "collector-secrets"]);
    assert_eq!(secret["type"], "Opaque");
    let pod = c.json(&["get", "pod", "collector"]);
    assert_eq!(pod["status"]["qosClass"], "BestEffort");
    let pods = c.kubectl(&["get", "pods"]);
    assert!(
        pods.starts_with("NAME ") && pods.contains("READY   STATUS"),
        "{pods}"
    );
    let all = c.kubectl(&["get", "all"]);
    for want in [
        "pod/collector",
        "service/hello",
        "deployment.apps/collector",
        "statefulset.apps/mystore",
    ] {
        assert!(all.contains(want), "{all}");
    }
}

#[test]
fn label_annotate_patch_and_scale_move_generation_only_on_spec_changes() {
    let c = Cluster::start();
    c.kubectl(&[
        "apply",
        "-f",
        seed_manifest("03-deployment.yaml").to_str().unwrap(),
    ]);
    c.kubectl(&["label", "deploy", "collector", "tier=backend"]);
    c.kubectl(&["annotate", "deploy", "collector", "owner=team-a"]);
    let d = c.json(&["get", "deploy", "collector"]);
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["metadata"]["labels"]["tier"], "backend");
    assert_eq!(d["metadata"]["annotations"]["owner"], "team-a");
    assert_eq!(
        c.kubectl(&["scale", "deploy", "collector", "--replicas=2"])
            .trim(),
        "deployment.apps/collector scaled"
    );
    c.kubectl(&["set", "image", "deploy/collector", "collector=collector:v3"]);
    c.kubectl(&[
        "patch",
        "deploy",
        "collector",
        "--type=merge",
        "-p",
        r#"{"spec":{"minReadySeconds":5}}"#,
    ]);
    c.kubectl(&[
        "patch",
        "deploy",
        "collector",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/paused","value":true}]"#,
    ]);
    let err = c.kubectl_err(
        &[
            "patch",
            "deploy",
            "collector",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/nope","value":1}]"#,
        ],
        None,
    );
    assert!(
        err.contains("the server rejected our request due to an error in our request"),
        "{err}"
    );
    let d = c.json(&["get", "deploy", "collector"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "collector:v3"
    );
    assert_eq!(d["spec"]["minReadySeconds"], 5);
    assert_eq!(d["spec"]["paused"], true);
    assert_eq!(d["metadata"]["generation"], 5);
    c.kubectl(&["label", "deploy", "collector", "tier-"]);
    let d = c.json(&["get", "deploy", "collector"]);
    assert!(d["metadata"]["labels"].get("tier").is_none());
}

#[test]
fn bad_input_gets_upstream_errors_and_stores_nothing() {
    let c = Cluster::start();
    let bad_name = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n";
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(bad_name));
    assert!(err.contains("The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{err}");

    let no_image = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  selector:\n    matchLabels: {app: d}\n  template:\n    metadata:\n      labels: {app: d}\n    spec:\n      containers:\n      - name: c\n";
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(no_image));
    assert!(
        err.contains("spec.template.spec.containers[0].image: Required value"),
        "{err}"
    );

    let unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: u\ndatax:\n  a: b\n";
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(unknown));
    assert!(
        err.contains("strict decoding error: unknown field \"datax\""),
        "{err}"
    );

    let wrong_type =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: w\nspec:\n  replicas: three\n";
    let err = c.kubectl_err(&["apply", "--validate=false", "-f", "-"], Some(wrong_type));
    assert!(err.contains("spec.replicas"), "{err}");

    let missing_ns = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\n  namespace: nope\n";
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(missing_ns));
    assert!(err.contains("namespaces \"nope\" not found"), "{err}");

    let names = c.kubectl(&["get", "cm,deploy", "-A", "-o", "name"]);
    for name in ["Bad_Name", "/d\n", "/u\n", "/w\n", "/m\n"] {
        assert!(!names.contains(name), "{name} was stored: {names}");
    }

    c.kubectl_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cas\ndata:\n  a: b\n",
    );
    let mut stale = c.json(&["get", "cm", "cas"]);
    c.kubectl(&["label", "cm", "cas", "x=y"]);
    stale["data"]["a"] = "changed".into();
    let err = c.kubectl_err(&["replace", "-f", "-"], Some(&stale.to_string()));
    assert!(err.contains("the object has been modified"), "{err}");
    assert_eq!(c.json(&["get", "cm", "cas"])["data"]["a"], "b");
}

#[test]
fn delete_removes_and_get_watch_streams_changes() {
    let c = Cluster::start();
    let mut watch = c
        .kubectl_cmd(&[
            "get",
            "cm",
            "-w",
            "--output-watch-events",
            "--request-timeout=30s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    c.kubectl_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w1\n",
    );
    c.kubectl(&["label", "cm", "w1", "a=b"]);
    assert_eq!(
        c.kubectl(&["delete", "cm", "w1"]).trim(),
        "configmap \"w1\" deleted"
    );
    std::thread::sleep(std::time::Duration::from_millis(800));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("w1"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(events, vec!["ADDED", "MODIFIED", "DELETED"], "{text}");
    let err = c.kubectl_err(&["get", "cm", "w1"], None);
    assert!(err.contains("configmaps \"w1\" not found"), "{err}");
}

#[test]
fn list_pages_with_chunk_size_and_selectors_filter() {
    let c = Cluster::start();
    let mut docs = String::new();
    for i in 0..7 {
        docs.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: page-{i}\n  labels: {{parity: {}}}\n",
            if i % 2 == 0 { "even" } else { "odd" }
        ));
    }
    c.kubectl_in(&["apply", "-f", "-"], &docs);
    let names = c.kubectl(&["get", "cm", "--chunk-size=2", "-o", "name"]);
    assert_eq!(
        names.lines().filter(|l| l.contains("page-")).count(),
        7,
        "{names}"
    );
    let even = c.kubectl(&["get", "cm", "-l", "parity in (even)", "-o", "name"]);
    assert_eq!(even.lines().count(), 4, "{even}");
    let one = c.kubectl(&[
        "get",
        "cm",
        "--field-selector",
        "metadata.name=page-3",
        "-o",
        "name",
    ]);
    assert_eq!(one.trim(), "configmap/page-3");
}

#[test]
fn explain_prints_upstream_documentation() {
    let c = Cluster::start();
    let out = c.kubectl(&["explain", "deployment.spec.strategy"]);
    assert!(out.contains("KIND:       Deployment"), "{out}");
    assert!(
        out.contains("rollingUpdate\t<RollingUpdateDeployment>"),
        "{out}"
    );
}

#[test]
fn describe_shows_the_events_of_an_object() {
    let c = Cluster::start();
    c.kubectl(&[
        "apply",
        "-f",
        seed_manifest("01-pod.yaml").to_str().unwrap(),
    ]);
    let uid = c.kubectl(&["get", "pod", "collector", "-o", "jsonpath={.metadata.uid}"]);
    let event = format!(
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: collector.1\ninvolvedObject:\n  apiVersion: v1\n  kind: Pod\n  name: collector\n  namespace: default\n  uid: {uid}\nreason: Scheduled\nmessage: Successfully assigned default/collector to node-a\ntype: Normal\nsource:\n  component: default-scheduler\ncount: 1\n"
    );
    c.kubectl_in(&["apply", "-f", "-"], &event);
    let out = c.kubectl(&["describe", "pod", "collector"]);
    assert!(
        out.contains("Successfully assigned default/collector to node-a"),
        "{out}"
    );
    assert!(out.contains("Scheduled"), "{out}");
}

#[test]
fn deleting_a_namespace_deletes_its_content_first() {
    let c = Cluster::start();
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: doomed\n";
    c.kubectl_in(&["apply", "-f", "-"], ns);
    c.kubectl_in(
        &["apply", "-n", "doomed", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: b\n",
    );
    assert_eq!(
        c.kubectl(&["delete", "namespace", "doomed"]).trim(),
        "namespace \"doomed\" deleted"
    );
    let err = c.kubectl_err(&["get", "namespace", "doomed"], None);
    assert!(err.contains("namespaces \"doomed\" not found"), "{err}");
    let left = c.kubectl(&["get", "cm,secret", "-n", "doomed", "-o", "name"]);
    assert!(left.trim().is_empty(), "{left}");
    // Re-created, the namespace starts empty of the old content (the root CA publisher
    // gives it a fresh kube-root-ca.crt, as upstream's does).
    c.kubectl_in(&["apply", "-f", "-"], ns);
    let err = c.kubectl_err(&["get", "cm", "a", "-n", "doomed"], None);
    assert!(err.contains("configmaps \"a\" not found"), "{err}");
}

#[test]
fn events_written_through_either_api_are_one_collection() {
    let c = Cluster::start();
    let event = "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: e1\neventTime: \"2026-01-01T00:00:00.000000Z\"\nreportingController: skiff/test\nreportingInstance: test-1\naction: Testing\nreason: Tested\nnote: hello from events.k8s.io\ntype: Normal\nregarding:\n  kind: Pod\n  name: p\n  namespace: default\n";
    c.kubectl_in(&["apply", "-f", "-"], event);
    let core = c.json(&["get", "events.v1.", "e1"]);
    assert_eq!(core["message"], "hello from events.k8s.io");
    assert_eq!(core["involvedObject"]["name"], "p");
    let new = c.json(&["get", "events.v1.events.k8s.io", "e1"]);
    assert_eq!(new["note"], "hello from events.k8s.io");
    assert_eq!(new["regarding"]["kind"], "Pod");
}

#[test]
fn status_subresource_changes_only_status() {
    let c = Cluster::start();
    c.kubectl(&[
        "apply",
        "-f",
        seed_manifest("04-service.yaml").to_str().unwrap(),
    ]);
    c.kubectl(&[
        "patch", "svc", "hello", "--subresource=status", "--type=merge",
        "-p", r#"{"spec":{"sessionAffinity":"ClientIP"},"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.1"}]}}}"#,
    ]);
    let svc = c.json(&["get", "svc", "hello"]);
    assert_eq!(
        svc["status"]["loadBalancer"]["ingress"][0]["ip"],
        "192.0.2.1"
    );
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    // and the main resource ignores status
    c.kubectl(&[
        "patch",
        "svc",
        "hello",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{}}}"#,
    ]);
    assert_eq!(
        c.json(&["get", "svc", "hello"])["status"]["loadBalancer"]["ingress"][0]["ip"],
        "192.0.2.1"
    );
}

#[test]
fn kubectl_create_and_run_work_with_protobuf_bodies() {
    let c = Cluster::start();
    assert_eq!(
        c.kubectl(&["create", "namespace", "shop"]).trim(),
        "namespace/shop created"
    );
    c.kubectl(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "shop",
        "--from-literal=LOG_LEVEL=debug",
    ]);
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "shop",
        "--from-literal=password=hunter2",
    ]);
    c.kubectl(&[
        "create",
        "deployment",
        "web",
        "-n",
        "shop",
        "--image=nginx:1.27",
        "--replicas=2",
        "--port=80",
    ]);
    c.kubectl(&["expose", "deployment", "web", "-n", "shop", "--port=80"]);
    c.kubectl(&[
        "run",
        "debug",
        "-n",
        "shop",
        "--image=busybox",
        "--",
        "sleep",
        "3600",
    ]);
    assert_eq!(
        c.json(&["get", "cm", "cfg", "-n", "shop"])["data"]["LOG_LEVEL"],
        "debug"
    );
    assert_eq!(
        c.json(&["get", "secret", "s", "-n", "shop"])["data"]["password"],
        "aHVudGVyMg=="
    );
    let d = c.json(&["get", "deploy", "web", "-n", "shop"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    let svc = c.json(&["get", "svc", "web", "-n", "shop"]);
    assert_eq!(svc["spec"]["selector"]["app"], "web");
    assert_eq!(
        c.json(&["get", "pod", "debug", "-n", "shop"])["spec"]["containers"][0]["args"][1],
        "3600"
    );
}

#[test]
fn the_kubernetes_service_exists_as_on_every_cluster() {
    let c = Cluster::start();
    let svc = c.json(&["get", "svc", "kubernetes"]);
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1", "{svc:#}");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443, "{svc:#}");
    // Listening on loopback only, pods cannot reach it: no endpoints rather than wrong ones.
    let ep = c.json(&["get", "endpoints", "kubernetes"]);
    assert!(ep["subsets"].is_null(), "{ep:#}");
    let table = c.kubectl(&["get", "svc", "kubernetes"]);
    assert!(
        table.contains("10.96.0.1") && table.contains("443/TCP"),
        "{table}"
    );
}
