use super::*;
use serde_json::json;
use std::process::{Command, Stdio};

fn service(name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )
    .unwrap()
}

/// A slice of `svc` with port `http` = 8080 and endpoints (ip, ready, serving, terminating).
fn slice(svc: &str, endpoints: &[(&str, bool, bool, bool)]) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{svc}-x"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints.iter().map(|(ip, r, s, t)| json!({
            "addresses": [ip], "conditions": {"ready": r, "serving": s, "terminating": t}
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn web(extra: serde_json::Value) -> Service {
    let mut spec = json!({"clusterIP": "10.96.0.20", "selector": {"app": "web"},
                          "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    service("web", spec)
}

fn node() -> NodeConfig {
    NodeConfig {
        node_ip: Some(Ipv4Addr::new(192, 168, 254, 1)),
        pod_cidr: "10.244.0.0/24".into(),
        cluster_cidr: "10.244.0.0/16".into(),
        service_cidr: "10.96.0.0/16".into(),
        bridge_netfilter: true,
    }
}

fn backends(svc: &Service, s: &EndpointSlice) -> Vec<String> {
    service_ports(&[svc], &[s])[0]
        .backends
        .iter()
        .map(|b| format!("{}:{}", b.ip, b.port))
        .collect()
}

#[test]
fn which_endpoints_take_traffic() {
    // (case, endpoints, expected backends)
    type Endpoints<'a> = Vec<(&'a str, bool, bool, bool)>;
    let cases: [(&str, Endpoints, Vec<&str>); 4] = [
        (
            "ready only",
            vec![
                ("10.244.0.2", true, true, false),
                ("10.244.0.3", false, false, false),
            ],
            vec!["10.244.0.2:8080"],
        ),
        (
            "terminating serving ones only when nothing is ready",
            vec![
                ("10.244.0.2", false, true, true),
                ("10.244.0.3", false, false, true),
            ],
            vec!["10.244.0.2:8080"],
        ),
        (
            "ready wins over terminating",
            vec![
                ("10.244.0.2", false, true, true),
                ("10.244.0.4", true, true, false),
            ],
            vec!["10.244.0.4:8080"],
        ),
        ("none", vec![("10.244.0.3", false, false, false)], vec![]),
    ];
    for (case, eps, want) in cases {
        assert_eq!(
            backends(&web(json!({})), &slice("web", &eps)),
            want,
            "{case}"
        );
    }
}

#[test]
fn headless_and_external_name_services_are_not_proxied() {
    let headless = web(json!({"clusterIP": "None"}));
    let external = service(
        "ext",
        json!({"type": "ExternalName", "externalName": "example.com"}),
    );
    assert!(service_ports(&[&headless, &external], &[]).is_empty());
}

#[test]
fn ports_match_slices_by_name_and_protocol() {
    let svc = web(json!({"ports": [
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "http", "port": 80, "protocol": "UDP"},
        {"name": "other", "port": 81, "protocol": "TCP"},
    ]}));
    let s = slice("web", &[("10.244.0.2", true, true, false)]);
    let ports = service_ports(&[&svc], &[&s]);
    let got: Vec<(u16, &str, usize)> = ports
        .iter()
        .map(|p| (p.port, p.protocol.as_str(), p.backends.len()))
        .collect();
    assert_eq!(got, [(80, "TCP", 1), (80, "UDP", 0), (81, "TCP", 0)]);
    // Slices of another Service never leak in.
    let other = slice("db", &[("10.244.0.9", true, true, false)]);
    assert!(service_ports(&[&svc], &[&other])[0].backends.is_empty());
}

#[test]
fn rules_balance_dnat_and_reject_as_kube_proxy() {
    let svc = web(json!({"type": "LoadBalancer", "ports": [
        {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]}));
    let empty = service(
        "empty",
        json!({"clusterIP": "10.96.0.30",
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]}),
    );
    let s = slice(
        "web",
        &[
            ("10.244.0.2", true, true, false),
            ("10.244.0.3", true, true, false),
        ],
    );
    let ports = service_ports(&[&svc, &empty], &[&s]);
    let (script, names) = render(&node(), &ports, None);
    assert!(script.starts_with("add table ip skiff-proxy\ndelete table ip skiff-proxy\n"));
    let has = |needle: &str| assert!(script.contains(needle), "missing {needle:?} in\n{script}");
    has("10.96.0.20 . tcp . 80 : goto svc-");
    has("192.168.254.1 . tcp . 80 : goto svc-"); // the load balancer on the node address
    has("tcp . 30080 : goto svc-");
    has("numgen random mod 2 vmap { 0 : goto ep-");
    has("meta l4proto tcp dnat to 10.244.0.2:8080");
    has("meta l4proto tcp dnat to 10.244.0.3:8080");
    has("ip saddr 10.244.0.2 meta mark set meta mark | 0x4000");
    has("add element ip skiff-proxy no-endpoints { 10.96.0.30 . udp . 53 }");
    has("add element ip skiff-proxy no-endpoint-nodeports { udp . 30053 }");
    has("ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 ct state new drop");
    has("add rule ip skiff-proxy filter-output-post-nat ct state new ip daddr 10.96.0.0/16 reject");
    has("add rule ip skiff-proxy filter-forward ct state new ip daddr 10.96.0.0/16 reject");
    // TCP is reset, not refused by (rate-limited) ICMP, for pods and remote clients.
    has("add rule ip skiff-proxy filter-forward ct state new ip daddr . meta l4proto . th dport @no-endpoints meta l4proto tcp reject with tcp reset");
    has("add rule ip skiff-proxy filter-forward ct state new ip daddr 10.96.0.0/16 meta l4proto tcp reject with tcp reset");
    has("add rule ip skiff-proxy filter-input ct state new ip daddr . meta l4proto . th dport @no-endpoints meta l4proto tcp reject with tcp reset");
    // Every reject is for new connections only, as kube-proxy's `ct state new` checks.
    for line in script
        .lines()
        .filter(|l| l.ends_with(" reject") || l.ends_with(" reject with tcp reset"))
    {
        assert!(line.contains("ct state new "), "{line}");
    }
    assert!(!script.contains("ct status dnat masquerade"));
    assert_eq!(
        names.chains.len(),
        3,
        "one service chain, two endpoint chains"
    );
    assert!(names.sets.is_empty());
}

#[test]
fn client_ip_affinity_remembers_the_client_per_endpoint() {
    let svc = web(json!({"sessionAffinity": "ClientIP"}));
    let s = slice("web", &[("10.244.0.2", true, true, false)]);
    let (script, names) = render(&node(), &service_ports(&[&svc], &[&s]), None);
    assert_eq!(names.sets.len(), 1);
    let set = names.sets.iter().next().unwrap();
    assert!(script.contains("timeout 10800s"), "{script}");
    assert!(
        script.contains(&format!("ip saddr @{set} goto ep-")),
        "{script}"
    );
    assert!(
        script.contains(&format!("update @{set} {{ ip saddr }}")),
        "{script}"
    );
}

#[test]
fn later_syncs_refill_in_place_and_drop_what_went_away() {
    let svc = web(json!({"sessionAffinity": "ClientIP"}));
    let two = slice(
        "web",
        &[
            ("10.244.0.2", true, true, false),
            ("10.244.0.3", true, true, false),
        ],
    );
    let one = slice("web", &[("10.244.0.2", true, true, false)]);
    let (_, first) = render(&node(), &service_ports(&[&svc], &[&two]), None);
    let (script, second) = render(&node(), &service_ports(&[&svc], &[&one]), Some(&first));
    assert!(
        !script.contains("delete table"),
        "affinity state must survive a sync"
    );
    assert!(script.contains("flush map ip skiff-proxy service-ips"));
    let gone: Vec<_> = first.chains.difference(&second.chains).collect();
    assert_eq!(gone.len(), 1);
    assert!(script.contains(&format!("delete chain ip skiff-proxy {}", gone[0])));
    let gone_set = first.sets.difference(&second.sets).next().unwrap();
    assert!(script.contains(&format!("delete set ip skiff-proxy {gone_set}")));
}

#[test]
fn without_br_netfilter_pod_service_traffic_is_masqueraded() {
    let mut n = node();
    n.bridge_netfilter = false;
    let (script, _) = render(&n, &[], None);
    assert!(script.contains("ip saddr 10.244.0.0/24 ct status dnat masquerade"));
}

/// The scripts are valid for the real `nft` (in a throwaway network namespace), first and
/// incremental alike. Needs root and nft; skipped otherwise.
#[test]
fn the_kernel_accepts_the_scripts() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let nft = Command::new("nft").arg("--version").output().is_ok();
    if !root || !nft {
        eprintln!("skipped: needs root and nft");
        return;
    }
    let ns = format!("skiff-rules-{}", std::process::id());
    assert!(Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap()
        .success());
    let apply = |script: &str| {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let svc = web(json!({"type": "NodePort", "sessionAffinity": "ClientIP",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]}));
    let empty = service(
        "empty",
        json!({"clusterIP": "10.96.0.30",
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
    );
    let two = slice(
        "web",
        &[
            ("10.244.0.2", true, true, false),
            ("10.244.0.3", true, true, false),
        ],
    );
    let one = slice("web", &[("10.244.0.3", true, true, false)]);
    let (s1, n1) = render(&node(), &service_ports(&[&svc, &empty], &[&two]), None);
    let first = apply(&s1);
    let (s2, n2) = render(&node(), &service_ports(&[&svc, &empty], &[&one]), Some(&n1));
    let second = apply(&s2);
    let (s3, _) = render(&node(), &service_ports(&[&empty], &[]), Some(&n2));
    let third = apply(&s3);
    let listed = Command::new("ip")
        .args(["netns", "exec", &ns, "nft", "list", "table", "ip", TABLE])
        .output()
        .unwrap();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    assert!(first.0, "first sync rejected: {}\n{s1}", first.1);
    assert!(second.0, "second sync rejected: {}\n{s2}", second.1);
    assert!(third.0, "third sync rejected: {}\n{s3}", third.1);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !table.contains("dnat to"),
        "the removed service left rules:\n{table}"
    );
    assert!(table.contains("10.96.0.30 . udp . 53"), "{table}");
}
